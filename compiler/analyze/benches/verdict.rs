//! The verdict step of `ringfence analyze` against the 1,000-node synthetic
//! cluster: flows per second per core, cache hits and misses, and the
//! finish (statistics, graph, timeline) after it.
//!
//! `cargo bench -p ringfence-analyze --bench verdict [-- FLOWS CONVERSATIONS]`
//! (default: 10,000,000 flows over 200,000 distinct conversations).
//!
//! Flows are generated up front (not timed, `ringfence_testkit::flowgen`). Then: the verdict
//! step on one thread and on every thread (CPU time per thread, so other
//! processes on the machine do not count), the finish, the HTML page, a run
//! where every flow is a new conversation, and the same flows written as
//! JSON Lines and read back through `Analyzer::read` (parsing included).
//! Times are measured here, never by the library.

use std::time::{Duration, Instant};

use rayon::prelude::*;
use ringfence_analyze::{Analyzer, Input, Observed, Options, Version};
use ringfence_testkit::flowgen;
use ringfence_testkit::synth::{Params, describe, generate};

/// CPU time of the whole process (user and system, every thread), from
/// `/proc/self/stat` in clock ticks (assumed 100 per second).
fn process_cpu() -> Duration {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at `)`.
    let rest = s.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    Duration::from_millis(f.iter().sum::<u64>() * 10)
}

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

    let (convs, flows) = flowgen::flows(&s, n_flows, n_convs);
    let flows: Vec<Observed> = flows.map(|f| Observed::from(&f)).collect();
    println!(
        "flows: {} over {} conversations (generated, not timed)",
        flows.len(),
        convs.len()
    );

    let version = Version::new("synthetic", &s.intent, &compiled, &warnings);
    let a = Analyzer::new(version, None, Options::default());

    // One thread: the verdict step per core.
    let (t, cpu) = (Instant::now(), thread_cpu());
    let mut tally = a.tally();
    for f in &flows {
        tally.add(f);
    }
    tally.flush();
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
    tally.flush();
    let cpu = thread_cpu() - cpu;
    println!(
        "all misses, 1 thread: {} distinct flows in {:.0} ms CPU = {:.2} M flows/s",
        tally.conversations(),
        cpu.as_secs_f64() * 1e3,
        cold.len() as f64 / cpu.as_secs_f64() / 1e6
    );

    // Parsing included: the flows as a JSON Lines file, read back through
    // the same path the command takes (parallel chunks, one tally each).
    let dir = std::env::temp_dir().join(format!("ringfence-analyze-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("flows.jsonl");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
        flowgen::write_jsonl(flowgen::flows(&s, n_flows, n_convs).1, &mut w).expect("write flows");
        std::io::Write::flush(&mut w).expect("flush");
    }
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    drop(flows);
    let (t, cpu0) = (Instant::now(), process_cpu());
    let (tally, input) = a
        .read(
            std::slice::from_ref(&path),
            &ringfence_flows::ReadOptions::default(),
        )
        .expect("read flows");
    let (read, read_cpu) = (t.elapsed(), process_cpu() - cpu0);
    let flows_read: u64 = input.files.iter().map(|f| f.flows).sum();
    let t = Instant::now();
    let analysis = a.finish(tally, input, None);
    let finish = t.elapsed();
    println!();
    println!(
        "from a file ({:.0} MiB of JSON Lines): parse + verdict of {flows_read} flows in {:.0} ms wall = {:.2} M flows/s ({:.0} ms CPU on {threads} threads = {:.2} M flows/s per core); finish {:.0} ms; end to end {:.0} ms",
        size as f64 / 1048576.0,
        read.as_secs_f64() * 1e3,
        flows_read as f64 / read.as_secs_f64() / 1e6,
        read_cpu.as_secs_f64() * 1e3,
        flows_read as f64 / read_cpu.as_secs_f64() / 1e6,
        finish.as_secs_f64() * 1e3,
        (read + finish).as_secs_f64() * 1e3,
    );
    assert_eq!(analysis.totals.all.flows, flows_read);
    let _ = std::fs::remove_dir_all(&dir);
}
