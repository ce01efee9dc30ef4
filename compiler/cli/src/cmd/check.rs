//! `ringfence check`: read intent (working tree, a revision or the index),
//! validate it, and report every problem at once. Exit 0 clean (warnings
//! allowed), 1 errors found, 2 could not run.
//!
//! With `--rev`, DIR may be a bare repository (a Git server's). `--path`
//! names the intent directory inside the repository DIR (pushed objects
//! still in a pre-receive hook's quarantine included). Reading and checking
//! is the driver pipeline's `check`, as for every other command.

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use anyhow::bail;
use ringfence_driver::{IntentFrom, Pipeline};
use ringfence_intent::model::SourceFile;
use ringfence_intent::{render_human, to_json};
use ringfence_schema::bundle::SourceRef;
use ringfence_source::Selector;

use crate::Exit;
use crate::cmd::{annotate, output, stdin};
use crate::flags::{CheckArgs, CheckFormat};

/// The most `check -` reads from standard input.
const STDIN_CAP: u64 = 16 << 20;

pub(crate) fn run(args: CheckArgs) -> anyhow::Result<Exit> {
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
    let pipeline = Pipeline::new();
    let stdin = stdin::is_stdin(&args.dir);
    let mut checked = if stdin {
        if args.rev.is_some() || args.staged {
            bail!(
                "`check -` reads one file from standard input: --rev and --staged need a directory"
            );
        }
        pipeline.check_files(
            vec![SourceFile {
                path: "<stdin>".to_string(),
                text: Arc::from(stdin::read_text(STDIN_CAP)?),
            }],
            SourceRef::default(),
            None,
        )
    } else {
        if matches!(sel, Selector::WorkingTree) && !args.dir.exists() {
            bail!(
                "{}: no such file or directory (give the intent directory as DIR)",
                args.dir.display()
            );
        }
        let from = match (&sel, &args.path) {
            (Selector::Rev(rev), Some(path)) => IntentFrom::Repo {
                repo: &args.dir,
                subdir: path,
                rev,
            },
            _ => IntentFrom::Dir(&args.dir, sel.clone()),
        };
        pipeline.check(&from)?
    };
    // Pinned plugins are on disk only in a working tree: their digests are
    // checked there, by the rule `render` and `compile` apply.
    if let (Selector::WorkingTree, Some(c), false) = (&sel, &checked.output, stdin) {
        let pins = ringfence_driver::render::check_pins(&c.intent, &args.dir);
        checked.diagnostics.extend(pins.0);
    }
    let (diags, files) = (&checked.diagnostics, &checked.files);

    let stdout = std::io::stdout();
    let terminal = stdout.is_terminal();
    let mut out = stdout.lock();
    if args.format != CheckFormat::Txt {
        let doc = to_json(diags, files);
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
        Exit::Findings
    } else {
        Exit::Clean
    })
}
