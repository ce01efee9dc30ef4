//! Write the 1,000-node synthetic cluster and flows over it, for timing
//! `ringfence analyze` end to end (`bench/analyze.sh`):
//!
//! `synth_flows DIR [FLOWS] [CONVERSATIONS]` writes `DIR/intent/intent.kdl`,
//! `DIR/inventory/<cluster>.json` and `DIR/flows.jsonl` (default 10,000,000
//! flows over 200,000 conversations).

#[path = "../benches/flowgen/mod.rs"]
mod flowgen;

use std::io::Write;
use std::path::PathBuf;

use ringfence_core::synth::{Params, generate};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| {
        eprintln!("usage: synth_flows DIR [FLOWS] [CONVERSATIONS]");
        std::process::exit(2)
    }));
    let n_flows = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    let n_convs = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let s = generate(&Params::benchmark());
    s.write(&dir)?;
    // One flow at a time: 100 million flows need no memory.
    let mut w = std::io::BufWriter::new(std::fs::File::create(dir.join("flows.jsonl"))?);
    let mut result = Ok(());
    flowgen::each_flow(&s, n_flows, n_convs, |f| {
        if result.is_ok() {
            result = flowgen::write_record(&f, &mut w);
        }
    });
    result?;
    w.flush()
}
