//! `ringfence plan`: compile two revisions against the same inventory and
//! say what changes, per node and as connectivity. The plan is information:
//! exit 0 whatever it says; 1 when a revision does not check (its
//! diagnostics on stderr), 2 when it cannot run.

use anyhow::Context;
use ringfence_core::diff::{Revision, plan};
use ringfence_driver::{IntentFrom, Pipeline, Session};
use ringfence_source::Selector;

use crate::Exit;
use crate::cmd::common::eprint_diagnostics;
use crate::cmd::{output, stdin};
use crate::flags::PlanArgs;

pub(crate) fn run(mut args: PlanArgs) -> anyhow::Result<Exit> {
    let _stdin = stdin::inventory(&mut args.inventory, None)?;
    let pipeline = Pipeline::new();
    let inventory = pipeline.inventory(&args.inventory.inventory, &args.inventory.trivy)?;
    let mut compiled: Vec<Session> = Vec::with_capacity(2);
    for rev in [&args.from, &args.to] {
        let from = IntentFrom::Dir(&args.dir, Selector::Rev(rev.clone()));
        let checked = pipeline
            .check(&from)
            .with_context(|| format!("revision {rev}"))?;
        let session = pipeline.compile(checked, inventory.clone());
        match session.output {
            Some(s) => compiled.push(s),
            None => {
                #[allow(clippy::print_stderr)] // which revision the diagnostics are about
                {
                    eprintln!(
                        "revision {rev} does not check ({} error(s)):",
                        session.diagnostics.error_count()
                    );
                }
                eprint_diagnostics(&session.diagnostics, &session.files);
                return Ok(Exit::Findings);
            }
        }
    }
    let revision = |rev: &str, s: &Session| Revision {
        rev: rev.to_string(),
        commit: s.source.commit.clone(),
    };
    let p = plan(
        &compiled[0].compiled,
        &compiled[1].compiled,
        revision(&args.from, &compiled[0]),
        revision(&args.to, &compiled[1]),
    );
    output::emit(args.format, &p)?;
    Ok(Exit::Clean)
}
