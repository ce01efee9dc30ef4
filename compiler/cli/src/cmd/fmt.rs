//! `ringfence fmt`: rewrite intent files in the canonical layout, keeping
//! comments. `--check` writes nothing and lists the files that would change;
//! `--diff` writes nothing and prints the changes as a unified diff. `fmt -`
//! formats standard input to standard output. A file with syntax errors is
//! never rewritten: its errors are reported and the command exits 1.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use ringfence_intent::model::SourceFile;
use ringfence_intent::{Diagnostics, format_source, render_human};
use ringfence_source::Selector;

use crate::Exit;
use crate::cmd::stdin;
use crate::flags::FmtArgs;

/// The most `fmt -` reads from standard input.
const STDIN_CAP: u64 = 16 << 20;

pub(crate) fn run(args: FmtArgs) -> anyhow::Result<Exit> {
    if stdin::is_stdin(&args.dir) {
        return standard_input(&args);
    }
    if !args.dir.exists() {
        anyhow::bail!("{}: no such file or directory", args.dir.display());
    }
    let snap = ringfence_source::read(&args.dir, &Selector::WorkingTree)
        .with_context(|| format!("reading intent from {}", args.dir.display()))?;
    let mut broken = Diagnostics::default();
    let mut changed = Vec::new();
    for (id, f) in snap.files.iter().enumerate() {
        match format_source(id, &f.text) {
            Ok(new) if new != f.text => changed.push((f.path.as_str(), new)),
            Ok(_) => {}
            Err(d) => broken.extend(d.0),
        }
    }
    let mut out = std::io::stdout().lock();
    if !broken.0.is_empty() {
        let files: Vec<SourceFile> = snap
            .files
            .iter()
            .map(|f| SourceFile::new(&f.path, &f.text))
            .collect();
        broken.sort();
        write!(out, "{}", render_human(&broken, &files, false, 80))?;
    }
    for (path, new) in &changed {
        if args.check {
            writeln!(out, "{path}")?;
        } else if args.diff {
            let old = &snap
                .files
                .iter()
                .find(|f| f.path == *path)
                .expect("read")
                .text;
            out.write_all(diff(path, old, new).as_bytes())?;
        } else {
            write_atomically(&args.dir.join(path), new)?;
            writeln!(out, "formatted {path}")?;
        }
    }
    out.flush()?;
    let unformatted = (args.check || args.diff) && !changed.is_empty();
    Ok(if broken.has_errors() || unformatted {
        Exit::Findings
    } else {
        Exit::Clean
    })
}

/// `fmt -`: standard input formatted to standard output (or, with `--check`
/// and `--diff`, only judged). Errors go to stderr, and nothing to stdout.
fn standard_input(args: &FmtArgs) -> anyhow::Result<Exit> {
    let text = stdin::read_text(STDIN_CAP)?;
    let new = match format_source(0, &text) {
        Ok(new) => new,
        Err(mut d) => {
            let files = [SourceFile::new("<stdin>", &text)];
            d.sort();
            #[allow(clippy::print_stderr)] // diagnostics
            {
                eprint!("{}", render_human(&d, &files, false, 80));
            }
            return Ok(Exit::Findings);
        }
    };
    let mut out = std::io::stdout().lock();
    if args.diff {
        out.write_all(diff("<stdin>", &text, &new).as_bytes())?;
    } else if !args.check {
        out.write_all(new.as_bytes())?;
    }
    out.flush()?;
    Ok(if (args.check || args.diff) && new != text {
        Exit::Findings
    } else {
        Exit::Clean
    })
}

/// A unified diff from `old` to `new`, three lines of context.
fn diff(path: &str, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string()
}

/// Replace a file through a temporary file and a rename, keeping its mode, so
/// an interrupted run never leaves it half written.
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .map_or_else(Default::default, |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.ringfence-fmt"));
    let perms = std::fs::metadata(path)
        .with_context(|| path.display().to_string())?
        .permissions();
    std::fs::write(&tmp, text).with_context(|| tmp.display().to_string())?;
    std::fs::set_permissions(&tmp, perms).with_context(|| tmp.display().to_string())?;
    std::fs::rename(&tmp, path).with_context(|| path.display().to_string())?;
    Ok(())
}
