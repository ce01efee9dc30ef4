//! `ringfence matrix`: every allowed connection between workloads.
//!
//! With an inventory made of manifests, `--format txt` prints np-guard
//! netpol-analyzer's `list` lines (see `ringfence_core::connlist`), so the
//! connectivity of a set of manifests can be diffed with that tool's.

use std::io::Write;

use ringfence_driver::Pipeline;

use crate::Outcome;
use crate::cmd::{common, output, stdin};
use crate::flags::{Format, MatrixArgs};

pub(crate) fn run(mut args: MatrixArgs) -> anyhow::Result<Outcome> {
    let inv = &mut args.inventory;
    let _stdin = stdin::materialize(
        &mut [&mut inv.inventory, &mut inv.trivy],
        "--inventory, --trivy",
    )?;
    let pipeline = Pipeline::new();
    let session = match common::compile(&pipeline, &args.source, &args.inventory)? {
        Ok(s) => s,
        Err(outcome) => return Ok(outcome),
    };
    let manifests = !session.inventory.clusters.is_empty()
        && session
            .inventory
            .clusters
            .iter()
            .all(|c| c.name == ringfence_inventory::MANIFESTS_CLUSTER);
    if manifests && args.format == Format::Txt {
        let mut out = std::io::stdout().lock();
        for line in session.compiled.connlist(&session.inventory) {
            writeln!(out, "{line}")?;
        }
        out.flush()?;
    } else {
        let select = ringfence_core::Select {
            from: args.from,
            to: args.to,
            namespaces: args.namespace,
        };
        output::emit(args.format, &session.compiled.matrix_of(&select))?;
    }
    Ok(Outcome::Clean)
}
