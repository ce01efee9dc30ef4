//! `ringfence compile`: signed per-node bundles and a signed index (or, with
//! `--emit ir`, the per-node IR as JSON).

use std::fs;
use std::io::Write;
use std::time::SystemTime;

use anyhow::{Context, bail};
use ringfence_bundle::{SigningKey, parse_time};
use ringfence_driver::bundles::{Change, Output};
use ringfence_driver::{Pipeline, Seal};

use crate::Exit;
use crate::cmd::{common, stdin};
use crate::flags::{CompileArgs, Emit};

pub(crate) fn run(mut args: CompileArgs) -> anyhow::Result<Exit> {
    let _stdin = stdin::inventory(&mut args.inventory, None)?;
    // Validate flags before reading anything.
    let issued_at = match &args.time {
        Some(t) => parse_time(t)
            .map_err(anyhow::Error::msg)
            .context("--time")?,
        // The one clock read: here in the CLI, never in the compiler.
        None => SystemTime::now(),
    };
    let expires = humantime::parse_duration(&args.expires)
        .map_err(|e| anyhow::anyhow!("--expires `{}`: {e} (e.g. 24h, 7d)", args.expires))?;
    if args.emit == Emit::Bundles && args.key.is_empty() {
        bail!("signed bundles need --key KEYFILE (from `ringfence keygen`), or use --emit ir");
    }
    let keys = match common::signing_keys(&args.key)? {
        Ok(k) => k,
        Err(outcome) => return Ok(outcome),
    };

    let pipeline = match args.emit {
        Emit::Ir => Pipeline::new(),
        Emit::Bundles => Pipeline::rendering(),
    };
    let session = match common::compile(&pipeline, &args.source, &args.inventory)? {
        Ok(s) => s,
        Err(outcome) => return Ok(outcome),
    };
    if args.emit == Emit::Ir {
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
        return Ok(Exit::Clean);
    }
    let key_refs: Vec<&SigningKey> = keys.iter().collect();
    // Each node is sealed as soon as it is rendered, then dropped.
    let stage = crate::cmd::progress::stage(format!(
        "rendering and signing {} bundles",
        session.compiled.nodes().len()
    ));
    let sealed = pipeline.render_seal(
        &session,
        &Seal {
            output: Output {
                out: &args.out,
                keys: &key_refs,
                issued_at,
                expires,
                generation: args.generation,
            },
            repository: None,
            keep_from: None,
        },
    )?;
    drop(stage);
    let summary = match common::shown(sealed) {
        Ok(s) => s,
        Err(outcome) => return Ok(outcome),
    };
    let mut out = std::io::stdout().lock();
    for n in &summary.nodes {
        let what = match n.change {
            Change::New => "new",
            Change::Changed => "changed",
            Change::Unchanged => "unchanged",
            Change::Removed => "removed",
        };
        writeln!(out, "{} generation {} ({what})", n.node, n.generation)?;
    }
    writeln!(out, "index.json sha256 {}", summary.index_sha256)?;
    common::leave_to_exit(session);
    Ok(Exit::Clean)
}
