//! `write_bundles` for a 1,000-node synthetic cluster (50–200 KB of rules and
//! IR per node): digest, seal, sign and write every bundle and the index,
//! on all cores. Run with `cargo bench -p ringfence-driver`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ringfence_bundle::parse_time;
use ringfence_driver::bundles::{NodeOutput, Output, WriteOptions, write_bundles};
use ringfence_schema::bundle::SourceRef;
use ringfence_testkit::payload::payload;
use ringfence_testkit::rng::Rng;

fn main() {
    let key = ringfence_testkit::keys::key(7);
    let mut sizes = Rng::new(99);
    let nodes: Vec<NodeOutput> = (0..1000)
        .map(|i| NodeOutput::from(payload(i, 50_000 + sizes.below(150_000) as usize)))
        .collect();
    let dir = std::env::temp_dir().join(format!("ringfence-bench-{}", std::process::id()));
    let keys = [&key];
    let mut rounds = Vec::new();
    for round in 0..3u64 {
        // A fresh directory each round: every node is new, all are written.
        let out = dir.join(round.to_string());
        let opts = WriteOptions {
            output: Output {
                out: &out,
                keys: &keys,
                issued_at: parse_time("2026-01-01T00:00:00Z").unwrap(),
                expires: Duration::from_secs(7 * 86_400),
                generation: None,
            },
            source: SourceRef::default(),
            inventory_sha256: "11".repeat(32),
        };
        let start = Instant::now();
        black_box(write_bundles(&nodes, &opts).expect("write"));
        rounds.push(start.elapsed());
    }
    std::fs::remove_dir_all(&dir).expect("clean up");
    rounds.sort();
    println!(
        "write_bundles 1000 nodes on {} thread(s): median {:.0} ms, min {:.0} ms (3 runs, fresh directory each)",
        rayon::current_num_threads(),
        rounds[1].as_secs_f64() * 1e3,
        rounds[0].as_secs_f64() * 1e3,
    );
}
