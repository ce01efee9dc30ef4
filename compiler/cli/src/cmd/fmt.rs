//! `ringfence fmt`: rewrite intent files in the canonical layout, keeping
//! comments. `--check` writes nothing and lists the files that would change.
//! A file with syntax errors is never rewritten: its errors are reported and
//! the command exits 1.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use ringfence_intent::model::SourceFile;
use ringfence_intent::{Diagnostics, format_source, render_human};
use ringfence_source::Selector;

use crate::Outcome;
use crate::flags::FmtArgs;

pub(crate) fn run(args: FmtArgs) -> anyhow::Result<Outcome> {
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
            .map(|f| SourceFile {
                path: f.path.clone(),
                text: Arc::from(f.text.as_str()),
            })
            .collect();
        broken.sort();
        write!(out, "{}", render_human(&broken, &files, false, 80))?;
    }
    for (path, new) in &changed {
        if args.check {
            writeln!(out, "{path}")?;
        } else {
            write_atomically(&args.dir.join(path), new)?;
            writeln!(out, "formatted {path}")?;
        }
    }
    out.flush()?;
    let unformatted = args.check && !changed.is_empty();
    Ok(if broken.has_errors() || unformatted {
        Outcome::Findings
    } else {
        Outcome::Clean
    })
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
