//! `ringfence matrix`: every allowed connection between workloads.
//!
//! With an inventory made of manifests, `--format txt` prints np-guard
//! netpol-analyzer's `list` lines (see `ringfence_core::connlist`), so the
//! connectivity of a set of manifests can be diffed with that tool's.

use std::io::Write;

use crate::Outcome;
use crate::cmd::common;
use crate::flags::{Format, MatrixArgs};

pub(crate) fn run(args: MatrixArgs) -> anyhow::Result<Outcome> {
    if args.format == Format::Html {
        anyhow::bail!("`ringfence matrix` writes txt or json, not html");
    }
    let session = match common::compile(&args.source, &args.inventory)? {
        Ok(s) => s,
        Err(outcome) => return Ok(outcome),
    };
    let manifests = !session.inventory.clusters.is_empty()
        && session
            .inventory
            .clusters
            .iter()
            .all(|c| c.name == ringfence_inventory::MANIFESTS_CLUSTER);
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &session.compiled.matrix())?;
            writeln!(out)?;
        }
        _ if manifests => {
            for line in session.compiled.connlist(&session.inventory) {
                writeln!(out, "{line}")?;
            }
        }
        _ => write!(out, "{}", session.compiled.matrix())?,
    }
    Ok(Outcome::Clean)
}
