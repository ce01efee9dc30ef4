//! `ringfence matrix`: every allowed connection between workloads.

use crate::Outcome;
use crate::cmd::{common, output, stdin};
use crate::flags::MatrixArgs;

pub(crate) fn run(mut args: MatrixArgs) -> anyhow::Result<Outcome> {
    let inv = &mut args.inventory;
    let _stdin = stdin::materialize(
        &mut [&mut inv.inventory, &mut inv.trivy],
        "--inventory, --trivy",
    )?;
    let session = match common::compile(&args.source, &args.inventory)? {
        Ok(s) => s,
        Err(outcome) => return Ok(outcome),
    };
    output::emit(args.format, &session.compiled.matrix())?;
    Ok(Outcome::Clean)
}
