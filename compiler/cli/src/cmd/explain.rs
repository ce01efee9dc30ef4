//! `ringfence explain`: the verdict on one connection and the deciding
//! policy on each side. A deny is an answer, not a failure: exit 0 either way.

use std::io::Write;

use anyhow::Context;
use ringfence_driver::Pipeline;
use ringfence_schema::net::Proto;

use crate::Outcome;
use crate::cmd::common;
use crate::flags::{ExplainArgs, Format};

pub(crate) fn run(args: ExplainArgs) -> anyhow::Result<Outcome> {
    if args.format == Format::Html {
        anyhow::bail!("`ringfence explain` writes txt or json, not html");
    }
    let proto: Proto = args
        .proto
        .parse()
        .map_err(anyhow::Error::msg)
        .context("--proto")?;
    if proto == Proto::Any {
        anyhow::bail!("--proto: a connection has one protocol (tcp, udp, sctp or icmp)");
    }
    let pipeline = Pipeline::new();
    let session = match common::compile(&pipeline, &args.source, &args.inventory)? {
        Ok(s) => s,
        Err(outcome) => return Ok(outcome),
    };
    let c = &session.compiled;
    let from = c
        .peer(&args.from)
        .with_context(|| format!("--from {}", args.from))?;
    let to = c
        .peer(&args.to)
        .with_context(|| format!("--to {}", args.to))?;
    let explanation = c.explain(&from, &to, proto, args.port)?;
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &explanation)?;
            writeln!(out)?;
        }
        _ => write!(out, "{explanation}")?,
    }
    Ok(Outcome::Clean)
}
