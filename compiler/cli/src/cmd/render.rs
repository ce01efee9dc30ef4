//! `ringfence render`: every node's rendered rules, unsigned, one folder per
//! node (`OUT/<node>/rules.nft`, `OUT/<node>/rules.ps1`, …) for review.

use std::fs;

use anyhow::Context;
use ringfence_driver::Pipeline;

use crate::Exit;
use crate::cmd::common;
use crate::flags::RenderArgs;

pub(crate) fn run(mut args: RenderArgs) -> anyhow::Result<Exit> {
    let pipeline = Pipeline::rendering();
    let session = match common::compile_args(&pipeline, &args.source, &mut args.inventory)? {
        Ok(s) => s,
        Err(outcome) => return Ok(outcome),
    };
    let nodes = match common::render(&pipeline, &session)? {
        Ok(n) => n,
        Err(outcome) => return Ok(outcome),
    };
    for n in &nodes {
        let dir = args.out.join(&n.node);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for (name, content) in &n.files {
            let path = dir.join(name);
            fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    let mut out = std::io::stdout().lock();
    for n in &nodes {
        use std::io::Write;
        let names: Vec<&str> = n.files.iter().map(|(name, _)| name.as_str()).collect();
        writeln!(
            out,
            "{}/{}: {} {} -> {}",
            n.cluster,
            n.node,
            n.backend.name,
            n.backend.version,
            names.join(" ")
        )?;
    }
    common::leave_to_exit((session, nodes));
    Ok(Exit::Clean)
}
