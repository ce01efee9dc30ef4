//! `ringfence check`: read intent (working tree, a revision or the index),
//! validate it, and report every problem at once. Exit 0 clean (warnings
//! allowed), 1 errors found, 2 could not run.
//!
//! With `--rev`, DIR may be a bare repository (a Git server's). `--path`
//! names the intent directory inside the repository DIR, which is read
//! through `ringfence_source::read_repo` (pushed objects still in a
//! pre-receive hook's quarantine included).

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use anyhow::{Context, bail};
use ringfence_intent::model::SourceFile;
use ringfence_intent::{load, render_human, to_json};
use ringfence_source::Selector;

use crate::Outcome;
use crate::cmd::{annotate, output, stdin};
use crate::flags::{CheckArgs, CheckFormat};

/// The most `check -` reads from standard input.
const STDIN_CAP: u64 = 16 << 20;

pub(crate) fn run(args: CheckArgs) -> anyhow::Result<Outcome> {
    let sel = match (&args.rev, args.staged) {
        (Some(rev), _) => Selector::Rev(rev.clone()),
        (None, true) => Selector::Index,
        (None, false) => Selector::WorkingTree,
    };
    let where_ = match &sel {
        Selector::WorkingTree => String::new(),
        Selector::Rev(rev) => format!(" at revision {rev}"),
        Selector::Index => " in the Git index".to_string(),
    };
    let files: Vec<SourceFile> = if stdin::is_stdin(&args.dir) {
        if args.rev.is_some() || args.staged {
            bail!(
                "`check -` reads one file from standard input: --rev and --staged need a directory"
            );
        }
        vec![SourceFile {
            path: "<stdin>".to_string(),
            text: Arc::from(stdin::read_text(STDIN_CAP)?),
        }]
    } else {
        if matches!(sel, Selector::WorkingTree) && !args.dir.exists() {
            bail!(
                "{}: no such file or directory (give the intent directory as DIR)",
                args.dir.display()
            );
        }
        let snap = match (&sel, &args.path) {
            (Selector::Rev(rev), Some(path)) => ringfence_source::read_repo(&args.dir, path, rev),
            _ => ringfence_source::read(&args.dir, &sel),
        }
        .with_context(|| format!("reading intent from {}{where_}", args.dir.display()))?;
        if snap.files.is_empty() {
            bail!(
                "{}: no *.kdl intent files{where_} (give the intent directory as DIR)",
                args.dir.display()
            );
        }
        snap.files
            .into_iter()
            .map(|f| SourceFile {
                path: f.path,
                text: Arc::from(f.text),
            })
            .collect()
    };
    let mut checked = load(files.clone());
    // Pinned plugins are on disk only in a working tree: their digests are
    // checked there, by the rule `render` and `compile` apply.
    if let (Selector::WorkingTree, Some(intent), false) =
        (&sel, &checked.intent, stdin::is_stdin(&args.dir))
    {
        let pins = ringfence_driver::render::check_pins(intent, &args.dir);
        checked.diagnostics.extend(pins.0);
    }
    let diags = &checked.diagnostics;

    let stdout = std::io::stdout();
    let terminal = stdout.is_terminal();
    let mut out = stdout.lock();
    if args.format != CheckFormat::Txt {
        let doc = to_json(diags, &files);
        match args.format {
            CheckFormat::Json => output::structured(&mut out, false, &doc)?,
            CheckFormat::Yaml => output::structured(&mut out, true, &doc)?,
            CheckFormat::Github => out.write_all(annotate::github(&doc).as_bytes())?,
            _ => output::structured(&mut out, false, &annotate::sarif(&doc))?,
        }
    } else {
        let color = terminal && std::env::var_os("NO_COLOR").is_none();
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .filter(|_| terminal)
            .unwrap_or(80);
        write!(out, "{}", render_human(diags, &files, color, width))?;
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        let contents = match &checked.intent {
            Some(i) => format!(
                " ({}, {}, {})",
                plural(i.scopes.len(), "scope"),
                plural(i.filters.len(), "filter"),
                plural(i.policies.len(), "policy").replace("policys", "policies"),
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
