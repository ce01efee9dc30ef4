//! `ringfence explain`: the verdict on one connection and the deciding
//! policy on each side. A deny is an answer, not a failure: exit 0 either way.

use anyhow::Context;
use ringfence_driver::Pipeline;
use ringfence_schema::net::Proto;

use crate::Exit;
use crate::cmd::{common, output};
use crate::flags::ExplainArgs;

pub(crate) fn run(mut args: ExplainArgs) -> anyhow::Result<Exit> {
    let proto: Proto = args
        .proto
        .parse()
        .map_err(anyhow::Error::msg)
        .context("--proto")?;
    if proto == Proto::Any {
        anyhow::bail!("--proto: a connection has one protocol (tcp, udp, sctp or icmp)");
    }
    let pipeline = Pipeline::new();
    let session = match common::compile_args(&pipeline, &args.source, &mut args.inventory)? {
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
    output::emit(args.format, &c.explain(&from, &to, proto, args.port)?)?;
    Ok(Exit::Clean)
}
