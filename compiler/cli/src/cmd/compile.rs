//! `ringfence compile`: signed per-node bundles (or the per-node IR).

use std::fs;

use anyhow::Context;

use crate::Outcome;
use crate::cmd::common;
use crate::flags::{CompileArgs, Emit};

pub(crate) fn run(args: CompileArgs) -> anyhow::Result<Outcome> {
    let session = match common::compile(&args.source, &args.inventory)? {
        Ok(s) => s,
        Err(outcome) => return Ok(outcome),
    };
    match args.emit {
        Emit::Ir => {
            fs::create_dir_all(&args.out)
                .with_context(|| format!("creating {}", args.out.display()))?;
            for ir in session.compiled.nodes() {
                let path = args.out.join(format!("{}.ir.json", ir.node));
                let mut text = serde_json::to_string_pretty(ir)?;
                text.push('\n');
                fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            }
            #[allow(clippy::print_stderr)] // a log line
            {
                eprintln!(
                    "wrote the IR of {} nodes to {}",
                    session.compiled.nodes().len(),
                    args.out.display()
                );
            }
            Ok(Outcome::Clean)
        }
        Emit::Bundles => anyhow::bail!("signed bundles need the rendering backends (being built)"),
    }
}
