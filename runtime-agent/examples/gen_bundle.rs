//! Write a realistic signed bundle for the benchmark (`bench/agent.sh`):
//! `gen_bundle OUT_DIR GENERATION PODS PEERS` writes `OUT_DIR/n1.bundle`,
//! and its `index.json`, signed by `OUT_DIR/k.key` (created with `k.pub` on
//! first use).

use std::path::Path;

use ringfence_bundle::{generate_keypair, load_signing_key};

// Shared with the integration tests; the benchmark needs only part of it.
#[allow(dead_code)]
#[path = "../tests/it/fixture.rs"]
mod fixture;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, out, generation, pods, peers] = &args[..] else {
        eprintln!("usage: gen_bundle OUT_DIR GENERATION PODS PEERS");
        std::process::exit(2);
    };
    let out = Path::new(out);
    std::fs::create_dir_all(out).expect("create OUT_DIR");
    if !out.join("k.key").exists() {
        generate_keypair(&out.join("k")).expect("write a key pair");
    }
    let key = load_signing_key(&out.join("k.key")).expect("read k.key");
    let generation: u64 = generation.parse().expect("GENERATION is a number");
    let spec = fixture::Spec {
        pods: pods.parse().expect("PODS is a number"),
        peers: peers.parse().expect("PEERS is a number"),
        // Alternate the allowed port so each generation really changes the rules.
        ..fixture::Spec::small(generation, &[8080 + (generation % 2) as u16, 9090])
    };
    let (nft, ir) = fixture::render(&spec);
    std::fs::write(out.join("rules.nft"), &nft).expect("write rules.nft");
    let bytes = fixture::seal(&spec, nft, ir, &key);
    std::fs::write(out.join("n1.bundle"), &bytes).expect("write n1.bundle");
    // The agent's `run` requires the signed index of its source.
    std::fs::write(
        out.join("index.json"),
        fixture::index(&[(&spec, &bytes)], &key),
    )
    .expect("write index.json");
}
