//! `ringfence-synth`: the benchmarks' input files, written as a user has
//! them (the test kit's generators, on disk).
//!
//! ```text
//! ringfence-synth cluster DIR [--small]
//!     DIR/intent/intent.kdl and DIR/inventory/<cluster>.json: the synthetic
//!     cluster (1,000 nodes, 30,000 pods, 500 policies; --small: 4 nodes)
//! ringfence-synth churn DIR [--small]
//!     the cluster with Linux nodes only and one Deployment scaled to 300
//!     pods, DIR/list.jsonl (it as watch events), DIR/churn.jsonl (60 s of
//!     pod events at 50/s; --small: 4 nodes, 20 s at 10/s) and
//!     DIR/churn.tsv (each event's due time, kind, pod, node, addresses)
//! ringfence-synth flows DIR [FLOWS] [CONVERSATIONS]
//!     the cluster, and DIR/flows.jsonl: FLOWS flow records (10,000,000)
//!     over CONVERSATIONS conversations (200,000)
//! ringfence-synth callgraph DIR [--records N] [--workloads N]
//!     discovery's input: DIR/bench.json, DIR/exclude.kdl and N records
//!     (10,000,000) over N workloads (5,000) in three flow formats
//! ```
//!
//! A binary of the test kit rather than an example (it is a tool the bench
//! scripts run, with its own test) or a hidden `ringfence` subcommand (the
//! shipped binary would link the generators, and the test kit would stop
//! being a dev-dependency only). Exit 0 when written, 2 on a usage or
//! write error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use ringfence_testkit::churn::{self, ChurnParams};
use ringfence_testkit::synth::{Params, generate};
use ringfence_testkit::{callgraph, flowgen};

const USAGE: &str = "usage: ringfence-synth cluster DIR [--small]
       ringfence-synth churn DIR [--small]
       ringfence-synth flows DIR [FLOWS] [CONVERSATIONS]
       ringfence-synth callgraph DIR [--records N] [--workloads N]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            #[allow(clippy::print_stderr)] // the binary's one error sink
            {
                eprintln!("ringfence-synth: {e}");
            }
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let (command, rest) = args.split_first().ok_or(USAGE)?;
    let (dir, rest) = rest.split_first().ok_or(USAGE)?;
    let dir = PathBuf::from(dir);
    let io = |e: std::io::Error| format!("{}: {e}", dir.display());
    match command.as_str() {
        "cluster" => {
            let params = match rest {
                [] => Params::benchmark(),
                [small] if small == "--small" => Params::small(),
                _ => return Err(USAGE.into()),
            };
            generate(&params).write(&dir).map_err(io)
        }
        "churn" => {
            let small = match rest {
                [] => false,
                [small] if small == "--small" => true,
                _ => return Err(USAGE.into()),
            };
            let params = churn::cluster_params(small);
            let trace = if small {
                ChurnParams::small()
            } else {
                ChurnParams::benchmark()
            };
            churn::churn(&params, generate(&params), &trace)
                .write(&dir)
                .map_err(io)
        }
        "flows" => {
            let number = |i: usize, default: usize| match rest.get(i) {
                None => Ok(default),
                Some(n) => n
                    .parse()
                    .map_err(|_| format!("`{n}` is not a number\n{USAGE}")),
            };
            let (n_flows, n_convs) = (number(0, 10_000_000)?, number(1, 200_000)?);
            if rest.len() > 2 {
                return Err(USAGE.into());
            }
            let s = generate(&Params::benchmark());
            s.write(&dir).map_err(io)?;
            let (_, flows) = flowgen::flows(&s, n_flows, n_convs);
            let file = std::fs::File::create(dir.join("flows.jsonl")).map_err(io)?;
            let mut w = std::io::BufWriter::new(file);
            flowgen::write_jsonl(flows, &mut w).map_err(io)?;
            w.flush().map_err(io)
        }
        "callgraph" => {
            let (mut records, mut workloads) = (10_000_000u64, 5000usize);
            let mut it = rest.iter();
            while let Some(flag) = it.next() {
                let value = it.next().and_then(|v| v.parse::<u64>().ok());
                match (flag.as_str(), value) {
                    ("--records", Some(n)) => records = n,
                    ("--workloads", Some(n)) if n > 0 => workloads = n as usize,
                    _ => return Err(USAGE.into()),
                }
            }
            let summary = callgraph::write(&dir, records, workloads).map_err(io)?;
            #[allow(clippy::print_stderr)] // a log line
            {
                eprintln!("{summary}");
            }
            Ok(())
        }
        _ => Err(USAGE.into()),
    }
}
