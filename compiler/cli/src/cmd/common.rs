//! What several commands share: running the driver's pipeline and showing
//! its diagnostics on stderr, and loading signing keys.

use std::io::IsTerminal;

use ringfence_bundle::{KeyError, SigningKey, load_signing_key};
use ringfence_driver::bundles::NodeOutput;
use ringfence_driver::{IntentFrom, Pipeline, Session, Warned};
use ringfence_intent::Diagnostics;
use ringfence_intent::model::SourceFile;
use ringfence_source::Selector;

use crate::Exit;
use crate::cmd::stdin;
use crate::flags::{InventoryArgs, SourceArgs};

/// Render diagnostics for stderr (colour on a terminal, unless NO_COLOR).
pub(crate) fn eprint_diagnostics(diags: &Diagnostics, files: &[SourceFile]) {
    if diags.0.is_empty() {
        return;
    }
    let terminal = std::io::stderr().is_terminal();
    let color = terminal && std::env::var_os("NO_COLOR").is_none();
    #[allow(clippy::print_stderr)] // diagnostics are logs: stderr
    {
        eprint!(
            "{}",
            ringfence_intent::render_human(diags, files, color, 80)
        );
    }
}

/// Where `SourceArgs` say intent is.
pub(crate) fn intent_from(source: &SourceArgs) -> IntentFrom<'_> {
    let sel = match &source.rev {
        Some(rev) => Selector::Rev(rev.clone()),
        None => Selector::WorkingTree,
    };
    IntentFrom::Dir(&source.dir, sel)
}

/// A stage's value, its diagnostics shown on stderr; `Err(Exit::Findings)`
/// when errors stopped it.
pub(crate) fn shown<T>(w: Warned<T>) -> Result<T, Exit> {
    eprint_diagnostics(&w.diagnostics, &w.files);
    w.output.ok_or(Exit::Findings)
}

/// Read, check and compile; diagnostics go to stderr. `Err(Exit::Findings)`
/// when the intent has errors.
pub(crate) fn compile(
    pipeline: &Pipeline,
    source: &SourceArgs,
    inv: &InventoryArgs,
) -> anyhow::Result<Result<Session, Exit>> {
    compile_from(pipeline, &intent_from(source), inv)
}

/// The start of most commands: `-` among `--inventory` and `--trivy` read
/// from standard input, then [`compile`].
pub(crate) fn compile_args(
    pipeline: &Pipeline,
    source: &SourceArgs,
    inv: &mut InventoryArgs,
) -> anyhow::Result<Result<Session, Exit>> {
    let _stdin = stdin::inventory(inv, None)?;
    compile(pipeline, source, inv)
}

/// [`compile`] from any intent location.
pub(crate) fn compile_from(
    pipeline: &Pipeline,
    from: &IntentFrom<'_>,
    inv: &InventoryArgs,
) -> anyhow::Result<Result<Session, Exit>> {
    let stage = crate::cmd::progress::stage("reading and compiling intent against the inventory");
    let compiled = pipeline.session(from, &inv.inventory, &inv.trivy);
    drop(stage);
    Ok(shown(compiled?))
}

/// Render every node of a session; errors (shown) give `Err(Exit::Findings)`.
pub(crate) fn render(
    pipeline: &Pipeline,
    session: &Session,
) -> anyhow::Result<Result<Vec<NodeOutput>, Exit>> {
    let stage = crate::cmd::progress::stage(format!(
        "rendering {} nodes",
        session.compiled.nodes().len()
    ));
    let rendered = pipeline.render(session);
    drop(stage);
    Ok(shown(rendered?))
}

/// Load signing keys; a key others can read is a refusal (shown), `Err(Findings)`.
pub(crate) fn signing_keys(
    paths: &[std::path::PathBuf],
) -> anyhow::Result<Result<Vec<SigningKey>, Exit>> {
    let mut keys = Vec::with_capacity(paths.len());
    for k in paths {
        match load_signing_key(k) {
            Ok(key) => keys.push(key),
            Err(e @ KeyError::Permissions(..)) => {
                #[allow(clippy::print_stderr)] // a refusal, explained
                {
                    eprintln!("error: {e}");
                }
                return Ok(Err(Exit::Findings));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Ok(keys))
}

/// End of a command that compiled: its big structures (the session, the
/// rendered nodes) are left to the process's exit, which returns their memory
/// at once, instead of being freed value by value. Only for values whose drop
/// does nothing but free memory.
pub(crate) fn leave_to_exit<T>(big: T) {
    std::mem::forget(big);
}
