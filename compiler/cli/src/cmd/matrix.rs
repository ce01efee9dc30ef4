//! `ringfence matrix`: every allowed connection between workloads.

use std::io::Write;

use ringfence_driver::Pipeline;

use crate::Outcome;
use crate::cmd::common;
use crate::flags::{Format, MatrixArgs};

pub(crate) fn run(args: MatrixArgs) -> anyhow::Result<Outcome> {
    if args.format == Format::Html {
        anyhow::bail!("`ringfence matrix` writes txt or json, not html");
    }
    let pipeline = Pipeline::new();
    let session = match common::compile(&pipeline, &args.source, &args.inventory)? {
        Ok(s) => s,
        Err(outcome) => return Ok(outcome),
    };
    let matrix = session.compiled.matrix();
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &matrix)?;
            writeln!(out)?;
        }
        _ => write!(out, "{matrix}")?,
    }
    Ok(Outcome::Clean)
}
