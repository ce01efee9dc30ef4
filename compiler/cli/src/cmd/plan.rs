//! `ringfence plan`: compile two revisions against the same inventory and
//! say what changes, per node and as connectivity. The plan is information:
//! exit 0 whatever it says; 1 when a revision does not check (its
//! diagnostics on stderr), 2 when it cannot run.

use ringfence_driver::session::{self, IntentFrom, Session, SessionError};
use ringfence_gitops::plan::{Revision, plan};
use ringfence_source::Selector;

use crate::Outcome;
use crate::cmd::common::eprint_diagnostics;
use crate::cmd::{output, stdin};
use crate::flags::PlanArgs;

pub(crate) fn run(mut args: PlanArgs) -> anyhow::Result<Outcome> {
    let inv = &mut args.inventory;
    let _stdin = stdin::materialize(
        &mut [&mut inv.inventory, &mut inv.trivy],
        "--inventory, --trivy",
    )?;
    let (inventory, digest) = session::inventory(&args.inventory.inventory, &args.inventory.trivy)?;
    let mut compiled: Vec<Session> = Vec::with_capacity(2);
    for rev in [&args.from, &args.to] {
        let from = IntentFrom::Dir(&args.dir, Selector::Rev(rev.clone()));
        let result = session::check(&from).and_then(|checked| {
            session::compile_checked(checked, inventory.clone(), digest.clone(), &from)
        });
        match result {
            Ok(s) => compiled.push(s),
            Err(SessionError::Invalid { files, diagnostics }) => {
                #[allow(clippy::print_stderr)] // which revision the diagnostics are about
                {
                    eprintln!(
                        "revision {rev} does not check ({} error(s)):",
                        diagnostics.error_count()
                    );
                }
                eprint_diagnostics(&diagnostics, &files);
                return Ok(Outcome::Findings);
            }
            Err(e) => return Err(anyhow::Error::new(e).context(format!("revision {rev}"))),
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
    Ok(Outcome::Clean)
}
