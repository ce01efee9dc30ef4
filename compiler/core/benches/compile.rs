//! Compile a synthetic cluster into every per-node IR and print time and
//! peak memory per stage.
//!
//! `cargo bench -p ringfence-core --bench compile [-- NODES PODS POLICIES [EXPOSED_EVERY]]`
//! (default: 1,000 nodes, 30,000 pods, 500 policies, every 100th service
//! exposed as a NodePort, every 200th as a LoadBalancer).
//!
//! Memory: the peak resident set size (`VmHWM` in `/proc/self/status`),
//! reset before each stage by writing `5` to `/proc/self/clear_refs`, so each
//! row is the peak *during* that stage (including what earlier stages keep
//! alive); "total" is the process peak over the whole run. Times are wall
//! clock around each stage, measured by the harness, never by the compiler.

use std::time::{Duration, Instant};

use ringfence_core::{Stage, compile_observed};
use ringfence_testkit::synth::{Params, describe, generate};

fn status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn reset_peak() {
    // Resets VmHWM to the current RSS (Linux ≥ 4.0); harmless if unsupported.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("?".to_string(), |k| format!("{:.0} MiB", k as f64 / 1024.0))
}

fn main() {
    let p = Params::from_args(std::env::args().skip(1));
    let t = Instant::now();
    let s = generate(&p);
    println!("input: {} (generated in {:.2?})", describe(&s), t.elapsed());

    let process_peak_before = status_kib("VmHWM:");
    let mut rows: Vec<(&str, Duration, Option<u64>)> = Vec::new();
    let mut last = Instant::now();
    reset_peak();
    let start = last;
    let (compiled, diags) = compile_observed(&s.intent, &s.inventory, |stage: Stage| {
        let now = Instant::now();
        rows.push((stage.name(), now - last, status_kib("VmHWM:")));
        reset_peak();
        last = Instant::now();
    });
    let total = start.elapsed();
    let compiled = compiled.expect("the synthetic intent compiles");
    let irs = compiled.nodes();
    let rules: usize = irs
        .iter()
        .flat_map(|n| &n.chains)
        .map(|c| c.rules.len())
        .sum();
    let sets: usize = irs.iter().map(|n| n.sets.len()).sum();
    let endpoints: usize = irs.iter().map(|n| n.endpoints.len()).sum();
    println!(
        "output: {} node IRs, {endpoints} endpoints, {rules} rules, {sets} set references; {} diagnostics",
        irs.len(),
        diags.len()
    );
    println!();
    println!("| stage | time | peak RSS during stage |");
    println!("|---|---:|---:|");
    for (name, d, kib) in &rows {
        println!(
            "| {name} | {:.0} ms | {} |",
            d.as_secs_f64() * 1000.0,
            mib(*kib)
        );
    }
    println!(
        "| total | {:.0} ms | {} (highest stage peak; {} before compiling) |",
        total.as_secs_f64() * 1000.0,
        mib(status_kib("VmHWM:").max(rows.iter().filter_map(|r| r.2).max())),
        mib(process_peak_before),
    );

    // The matcher explain, matrix and flow analysis share: random pod-to-pod
    // and pod-to-service flows, one thread.
    let ips: Vec<std::net::IpAddr> = s
        .inventory
        .clusters
        .iter()
        .flat_map(|c| c.pods.iter().flat_map(|p| p.ips.iter().copied()))
        .chain(s.inventory.clusters.iter().flat_map(|c| {
            c.services
                .iter()
                .flat_map(|s| s.cluster_ips.iter().copied())
        }))
        .collect();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let flows: Vec<_> = (0..2_000_000)
        .map(|_| {
            let src = ips[next() as usize % ips.len()];
            let dst = ips[next() as usize % ips.len()];
            let port = [80u16, 443, 8000, 8010, 8049, 9100, 53, 5432][next() as usize % 8];
            (src, dst, port)
        })
        .collect();
    if p.pods <= 5000 {
        let t = Instant::now();
        let m = compiled.matrix();
        println!(
            "matrix: {} lines in {:.0} ms",
            m.connections.len(),
            t.elapsed().as_secs_f64() * 1000.0
        );
    }
    let t = Instant::now();
    let mut allowed = 0usize;
    for &(src, dst, port) in &flows {
        allowed += usize::from(
            compiled
                .verdict(src, dst, ringfence_intent::model::Proto::Tcp, Some(port))
                .allowed(),
        );
    }
    let d = t.elapsed();
    println!();
    println!(
        "verdict: {} flows in {:.0} ms = {:.1} M flows/s on one thread ({allowed} allowed)",
        flows.len(),
        d.as_secs_f64() * 1000.0,
        flows.len() as f64 / d.as_secs_f64() / 1e6
    );
}
