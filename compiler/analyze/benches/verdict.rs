//! The verdict step of `ringfence analyze` against the 1,000-node synthetic
//! cluster: flows per second per core, cache hits and misses, and the
//! finish (statistics, graph, timeline) after it.
//!
//! `cargo bench -p ringfence-analyze --bench verdict [-- FLOWS CONVERSATIONS]`
//! (default: 10,000,000 flows over 200,000 distinct conversations).
//!
//! Flows are generated up front (not timed): conversations between pods,
//! to services through their cluster IPs, through node ports, from
//! externals and to the internet, drawn with a skew (a few conversations
//! carry most flows, as in real traffic), spread over one hour, a third
//! each with network verdict allowed, dropped and unknown. Times are wall
//! clock around each step, measured here, never by the library.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use ringfence_analyze::{Analyzer, Input, Observed, Options, Version};
use ringfence_core::synth::{Params, describe, generate};
use ringfence_intent::model::Proto;
use ringfence_schema::flow::NetworkVerdict;

/// CPU time of the calling thread (`/proc/thread-self/schedstat`), so that
/// other processes sharing the cores do not count.
fn thread_cpu() -> Duration {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    Duration::from_nanos(
        s.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
    )
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

type Conv = (IpAddr, IpAddr, Proto, Option<u16>);

fn conversations(s: &ringfence_core::synth::Synth, n: usize, rng: &mut Rng) -> Vec<Conv> {
    let c = &s.inventory.clusters[0];
    let pods: Vec<&ringfence_inventory::model::Pod> =
        c.pods.iter().filter(|p| !p.ips.is_empty()).collect();
    let nodes: Vec<IpAddr> = c.nodes.iter().map(|n| n.addresses[0]).collect();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let src = pods[rng.below(pods.len())].ips[0];
        let conv = match rng.below(10) {
            // Pod to service, through its cluster IP.
            0..=4 => {
                let svc = &c.services[rng.below(c.services.len())];
                let Some(sp) = svc.ports.first() else {
                    continue;
                };
                (src, svc.cluster_ips[0], sp.proto, Some(sp.port))
            }
            // Pod to pod on a declared port (or a random one).
            5..=7 => {
                let dst = pods[rng.below(pods.len())];
                let port = dst
                    .ports
                    .first()
                    .map_or(1024 + rng.below(40_000) as u16, |p| p.port);
                (src, dst.ips[0], Proto::Tcp, Some(port))
            }
            // An external client to a node port.
            8 => {
                let exposed: Vec<_> = c
                    .services
                    .iter()
                    .filter_map(|s| s.ports.first()?.node_port)
                    .collect();
                if exposed.is_empty() {
                    continue;
                }
                let client = IpAddr::V4(Ipv4Addr::new(198, 51, 100, rng.below(250) as u8 + 1));
                (
                    client,
                    nodes[rng.below(nodes.len())],
                    Proto::Tcp,
                    Some(exposed[rng.below(exposed.len())]),
                )
            }
            // A pod to the internet.
            _ => {
                let dst = IpAddr::V4(Ipv4Addr::new(203, 0, 113, rng.below(250) as u8 + 1));
                (src, dst, Proto::Tcp, Some(443))
            }
        };
        out.push(conv);
    }
    out
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n_flows = args.first().copied().unwrap_or(10_000_000);
    let n_convs = args.get(1).copied().unwrap_or(200_000);

    let t = Instant::now();
    let s = generate(&Params::benchmark());
    println!("input: {} (generated in {:.2?})", describe(&s), t.elapsed());
    let t = Instant::now();
    let (compiled, warnings) = ringfence_core::compile(&s.intent, &s.inventory);
    let compiled = compiled.expect("the synthetic intent compiles");
    println!("compiled in {:.2?}", t.elapsed());

    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let convs = conversations(&s, n_convs, &mut rng);
    let start: i64 = 1_714_564_800 * 1_000_000_000;
    let flows: Vec<Observed> = (0..n_flows)
        .map(|i| {
            // Skewed: the square of a uniform number favours low indexes.
            let u = rng.next() as f64 / u64::MAX as f64;
            let (src, dst, proto, port) = convs[((u * u) * convs.len() as f64) as usize];
            let t = start + (i as i64 * 3_600_000_000_000 / n_flows as i64);
            Observed {
                src,
                dst,
                proto,
                port,
                orig: None,
                packets: 1 + rng.next() % 20,
                bytes: rng.next() % 100_000,
                first_ns: t,
                last_ns: t + 1_000_000_000,
                verdict: [
                    Some(NetworkVerdict::Allowed),
                    Some(NetworkVerdict::Dropped),
                    None,
                ][i % 3],
            }
        })
        .collect();
    println!(
        "flows: {} over {} conversations (generated, not timed)",
        flows.len(),
        convs.len()
    );

    let version = Version {
        label: "synthetic",
        intent: &s.intent,
        compiled: &compiled,
        warnings: &warnings,
    };
    let a = Analyzer::new(version, None, Options::default());

    // One thread: the verdict step per core.
    let (t, cpu) = (Instant::now(), thread_cpu());
    let mut tally = a.tally();
    for f in &flows {
        tally.add(f);
    }
    let (d, cpu) = (t.elapsed(), thread_cpu() - cpu);
    let distinct = tally.conversations();
    println!();
    println!(
        "verdict step, 1 thread: {} flows in {:.0} ms CPU ({:.0} ms wall) = {:.2} M flows/s per core ({distinct} distinct, each judged once)",
        flows.len(),
        cpu.as_secs_f64() * 1e3,
        d.as_secs_f64() * 1e3,
        flows.len() as f64 / cpu.as_secs_f64() / 1e6
    );

    // Every thread: one tally per chunk, merged.
    let threads = rayon::current_num_threads();
    let t = Instant::now();
    let chunk = flows.len().div_ceil(threads);
    let tallies: Vec<_> = flows
        .par_chunks(chunk)
        .map(|c| {
            let cpu = thread_cpu();
            let mut t = a.tally();
            for f in c {
                t.add(f);
            }
            (t, thread_cpu() - cpu)
        })
        .collect();
    let step = t.elapsed();
    let cpu: Duration = tallies.iter().map(|t| t.1).sum();
    let mut merged = None;
    for (t, _) in tallies {
        match &mut merged {
            None => merged = Some(t),
            Some(m) => m.merge(t),
        }
    }
    let merged = merged.expect("a tally");
    let merge = t.elapsed() - step;
    println!(
        "verdict step, {threads} threads: {:.0} ms wall = {:.2} M flows/s; {:.0} ms CPU = {:.2} M flows/s per core; merge {:.0} ms",
        step.as_secs_f64() * 1e3,
        flows.len() as f64 / step.as_secs_f64() / 1e6,
        cpu.as_secs_f64() * 1e3,
        flows.len() as f64 / cpu.as_secs_f64() / 1e6,
        merge.as_secs_f64() * 1e3
    );

    let t = Instant::now();
    let analysis = a.finish(merged, Input::default(), None);
    let d = t.elapsed();
    println!(
        "finish: {} conversations, {} policies, {} scope edges, {} timeline buckets in {:.0} ms",
        analysis.conversations.len(),
        analysis.policies.len(),
        analysis.graph.len(),
        analysis.timeline.buckets.len(),
        d.as_secs_f64() * 1e3
    );
    let t = Instant::now();
    let html = ringfence_analyze::html::render(&analysis);
    println!(
        "html: {} KiB in {:.0} ms",
        html.len() / 1024,
        t.elapsed().as_secs_f64() * 1e3
    );
    for (o, c) in &analysis.totals.outcomes {
        println!("  {o}: {} flows", c.flows);
    }

    // Misses only: every flow a new conversation (the cost of judging).
    let cold: Vec<Observed> = (0..1_000_000)
        .map(|i| {
            let (src, dst, proto, _) = convs[i % convs.len()];
            Observed {
                src,
                dst,
                proto,
                port: Some(20_000 + (i / convs.len()) as u16),
                ..flows[i]
            }
        })
        .collect();
    let cpu = thread_cpu();
    let mut tally = a.tally();
    for f in &cold {
        tally.add(f);
    }
    let cpu = thread_cpu() - cpu;
    println!(
        "all misses, 1 thread: {} distinct flows in {:.0} ms CPU = {:.2} M flows/s",
        tally.conversations(),
        cpu.as_secs_f64() * 1e3,
        cold.len() as f64 / cpu.as_secs_f64() / 1e6
    );
}
