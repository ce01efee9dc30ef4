//! Seal every bundle of a 1,000-node synthetic cluster (50–200 KB of rules
//! and IR each), and verify one 1 MB bundle. Run with
//! `cargo bench -p ringfence-bundle`; prints one line per figure.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ringfence_bundle::{Expectations, Trust, bundle_file, parse_time, seal_bundle, verify_bundle};
use ringfence_testkit::payload::payload;
use ringfence_testkit::rng::Rng;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let key = ringfence_testkit::keys::key(7);

    // 1,000 nodes, sizes spread over 50–200 KB.
    let mut sizes = Rng::new(99);
    let nodes: Vec<_> = (0..1000)
        .map(|i| payload(i, 50_000 + sizes.below(150_000) as usize))
        .collect();
    let content: usize = nodes
        .iter()
        .flat_map(|p| &p.files)
        .map(|f| f.content.len())
        .sum();

    let mut seal_rounds = Vec::new();
    let mut digest_rounds = Vec::new();
    let mut out_bytes = 0;
    for _ in 0..3 {
        // Digesting the files (what the compiler does per node first)…
        let start = Instant::now();
        for p in &nodes {
            for f in &p.files {
                black_box(bundle_file(&f.name, f.content.clone()));
            }
        }
        digest_rounds.push(start.elapsed());
        // …then serialising and signing the payload.
        let start = Instant::now();
        out_bytes = 0;
        for p in &nodes {
            out_bytes += black_box(seal_bundle(p, &[&key])).len();
        }
        seal_rounds.push(start.elapsed());
    }
    let seal = median(seal_rounds);
    let digest = median(digest_rounds);
    println!(
        "seal 1000 bundles ({:.1} MB content, {:.1} MB sealed), one thread: digest files {:.0} ms + seal {:.0} ms = {:.0} ms ({:.2} ms/bundle)",
        content as f64 / 1e6,
        out_bytes as f64 / 1e6,
        digest.as_secs_f64() * 1e3,
        seal.as_secs_f64() * 1e3,
        (digest + seal).as_secs_f64() * 1e3,
        (digest + seal).as_secs_f64() * 1e3 / 1000.0,
    );

    // One 1 MB bundle file (base64 and JSON escapes make ~690 KB of content
    // into 1 MB), verified as an agent does.
    let big = payload(5000, 690_000);
    let bytes = seal_bundle(&big, &[&key]);
    let trust = Trust::new([key.trusted()], 1);
    let expect = Expectations {
        node: Some(&big.node),
        min_generation: Some(42),
        now: Some(parse_time("2026-01-02T00:00:00Z").unwrap()),
        index: None,
    };
    verify_bundle(&bytes, &trust, &expect).expect("the benchmark bundle verifies");
    let mut rounds = Vec::new();
    for _ in 0..100 {
        let start = Instant::now();
        black_box(verify_bundle(black_box(&bytes), &trust, &expect).unwrap());
        rounds.push(start.elapsed());
    }
    let min = *rounds.iter().min().unwrap();
    let max = *rounds.iter().max().unwrap();
    println!(
        "verify one {:.2} MB bundle: median {:.2} ms, min {:.2} ms, max {:.2} ms (100 runs; goal < 10 ms)",
        bytes.len() as f64 / 1e6,
        median(rounds).as_secs_f64() * 1e3,
        min.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
    );
}
