//! `ringfence matrix`: every allowed connection between workloads.

use ringfence_driver::Pipeline;

use crate::Outcome;
use crate::cmd::{common, output, stdin};
use crate::flags::MatrixArgs;

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
    let select = ringfence_core::Select {
        from: args.from,
        to: args.to,
        namespaces: args.namespace,
    };
    output::emit(args.format, &session.compiled.matrix_of(&select))?;
    Ok(Outcome::Clean)
}
