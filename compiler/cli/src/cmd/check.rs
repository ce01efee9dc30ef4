//! `ringfence check`: read intent (working tree, a revision or the index),
//! validate it, and report every problem at once. Exit 0 clean (warnings
//! allowed), 1 errors found, 2 could not run.
//!
//! With `--rev`, DIR may be a bare repository (a Git server's). `--path`
//! names the intent directory inside the repository DIR (pushed objects
//! still in a pre-receive hook's quarantine included). Reading and checking
//! is the driver pipeline's `check`, as for every other command.

use std::io::{IsTerminal, Write};

use anyhow::bail;
use ringfence_driver::{IntentFrom, Pipeline};
use ringfence_intent::{render_human, to_json};
use ringfence_source::Selector;

use crate::Outcome;
use crate::flags::{CheckArgs, Format};

pub(crate) fn run(args: CheckArgs) -> anyhow::Result<Outcome> {
    let sel = match (&args.rev, args.staged) {
        (Some(rev), _) => Selector::Rev(rev.clone()),
        (None, true) => Selector::Index,
        (None, false) => Selector::WorkingTree,
    };
    if args.format == Format::Html {
        bail!("`ringfence check` writes txt or json, not html");
    }
    let where_ = match &sel {
        Selector::WorkingTree => String::new(),
        Selector::Rev(rev) => format!(" at revision {rev}"),
        Selector::Index => " in the Git index".to_string(),
    };
    let from = match (&sel, &args.path) {
        (Selector::Rev(rev), Some(path)) => IntentFrom::Repo {
            repo: &args.dir,
            subdir: path,
            rev,
        },
        _ => IntentFrom::Dir(&args.dir, sel.clone()),
    };
    let checked = Pipeline::new().check(&from)?;
    let (diags, files) = (&checked.diagnostics, &checked.files);

    let stdout = std::io::stdout();
    let terminal = stdout.is_terminal();
    let mut out = stdout.lock();
    if args.format == Format::Json {
        serde_json::to_writer_pretty(&mut out, &to_json(diags, files))?;
        writeln!(out)?;
    } else {
        let color = terminal && std::env::var_os("NO_COLOR").is_none();
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .filter(|_| terminal)
            .unwrap_or(80);
        write!(out, "{}", render_human(diags, files, color, width))?;
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        let contents = match &checked.output {
            Some(c) => format!(
                " ({}, {}, {})",
                plural(c.intent.scopes.len(), "scope"),
                plural(c.intent.filters.len(), "filter"),
                plural(c.intent.policies.len(), "policy").replace("policys", "policies"),
            ),
            None => String::new(),
        };
        writeln!(
            out,
            "checked {}{where_}{contents}: {}, {}",
            plural(files.len(), "file"),
            plural(diags.error_count(), "error"),
            plural(diags.warning_count(), "warning"),
        )?;
    }
    out.flush()?;
    Ok(if diags.has_errors() {
        Outcome::Findings
    } else {
        Outcome::Clean
    })
}
