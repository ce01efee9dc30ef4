//! What several commands share: reading and compiling intent, and showing
//! diagnostics on stderr.

use std::io::IsTerminal;

use ringfence_bundle::{KeyError, SigningKey, load_signing_key};
use ringfence_driver::bundles::NodeOutput;
use ringfence_driver::render::{Backends, BackendsError, render_all};
use ringfence_driver::{IntentFrom, Session, SessionError};
use ringfence_intent::Diagnostics;
use ringfence_intent::model::SourceFile;
use ringfence_plugin_host::Limits;
use ringfence_source::Selector;

use crate::Outcome;
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

/// Read, check and compile; warnings go to stderr. `Err(Outcome::Findings)`
/// when the intent has errors (already shown).
pub(crate) fn compile(
    source: &SourceArgs,
    inv: &InventoryArgs,
) -> anyhow::Result<Result<Session, Outcome>> {
    compile_from(&intent_from(source), inv)
}

/// [`compile`] from any intent location.
pub(crate) fn compile_from(
    from: &IntentFrom<'_>,
    inv: &InventoryArgs,
) -> anyhow::Result<Result<Session, Outcome>> {
    let stage = crate::cmd::progress::stage("reading and compiling intent against the inventory");
    let compiled = ringfence_driver::session::compile(from, &inv.inventory, &inv.trivy);
    drop(stage);
    match compiled {
        Ok(s) => {
            eprint_diagnostics(&s.warnings, &s.files);
            Ok(Ok(s))
        }
        Err(SessionError::Invalid { files, diagnostics }) => {
            eprint_diagnostics(&diagnostics, &files);
            Ok(Err(Outcome::Findings))
        }
        Err(e) => Err(e.into()),
    }
}

/// Render every node of a session; errors (shown) give `Err(Outcome::Findings)`.
pub(crate) fn render(session: &Session) -> anyhow::Result<Result<Vec<NodeOutput>, Outcome>> {
    let backends = match Backends::load(&session.intent, session.dir.as_deref(), Limits::default())
    {
        Ok(b) => b,
        Err(BackendsError::Invalid(d)) => {
            eprint_diagnostics(&d, &session.files);
            return Ok(Err(Outcome::Findings));
        }
        Err(e) => return Err(e.into()),
    };
    let stage = crate::cmd::progress::stage(format!(
        "rendering {} nodes",
        session.compiled.nodes().len()
    ));
    let (nodes, diags) = render_all(session, &backends);
    drop(stage);
    eprint_diagnostics(&diags, &session.files);
    if diags.has_errors() {
        return Ok(Err(Outcome::Findings));
    }
    Ok(Ok(nodes))
}

/// Load signing keys; a key others can read is a refusal (shown), `Err(Findings)`.
pub(crate) fn signing_keys(
    paths: &[std::path::PathBuf],
) -> anyhow::Result<Result<Vec<SigningKey>, Outcome>> {
    let mut keys = Vec::with_capacity(paths.len());
    for k in paths {
        match load_signing_key(k) {
            Ok(key) => keys.push(key),
            Err(e @ KeyError::Permissions(..)) => {
                #[allow(clippy::print_stderr)] // a refusal, explained
                {
                    eprintln!("error: {e}");
                }
                return Ok(Err(Outcome::Findings));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Ok(keys))
}
