//! `ringfence import k8s`: Kubernetes network policies into intent files.
//!
//! Nothing is written unless every object translates: the files are
//! written into a temporary directory inside the output directory and moved
//! into place only when all of them are written.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use ringfence_netpol::{Options, Report};

use crate::Exit;
use crate::cmd::output;
use crate::flags::{Format, ImportK8sArgs};

pub(crate) fn k8s(args: ImportK8sArgs) -> anyhow::Result<Exit> {
    let objects = match ringfence_inventory::manifests::read(&args.paths) {
        Ok(o) => o,
        Err(e) => {
            let report = Report {
                problems: ringfence_netpol::Problem::from_inventory(&e),
                ..Report::default()
            };
            print_report(&report, args.format, None)?;
            return Ok(Exit::Findings);
        }
    };
    let opts = Options {
        scope: args.scope.clone(),
        cluster: args.cluster.clone(),
    };
    let imported = match ringfence_netpol::translate(&objects, &opts) {
        Ok(i) => i,
        Err(report) => {
            print_report(&report, args.format, None)?;
            return Ok(Exit::Findings);
        }
    };
    write_all(&args.out, &imported.files)?;
    print_report(&imported.report, args.format, Some(&args.out))?;
    Ok(Exit::Clean)
}

/// Write every file, or none: into `out/.ringfence-import`, then renamed.
fn write_all(out: &Path, files: &[(String, String)]) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create it", out.display()))?;
    let existing = std::fs::read_dir(out)
        .with_context(|| format!("{}: cannot read it", out.display()))?
        .filter_map(Result::ok)
        .find(|e| e.path().extension().is_some_and(|x| x == "kdl"));
    if let Some(e) = existing {
        anyhow::bail!(
            "{}: already holds intent ({}); give an empty or new directory",
            out.display(),
            e.file_name().to_string_lossy()
        );
    }
    let tmp = out.join(".ringfence-import");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)
            .with_context(|| format!("{}: cannot remove it", tmp.display()))?;
    }
    std::fs::create_dir(&tmp).with_context(|| format!("{}: cannot create it", tmp.display()))?;
    for (name, text) in files {
        // Names come from this program (`00-cluster.kdl`, `10-ns-<namespace>.kdl`),
        // namespaces being DNS labels; refuse anything else all the same.
        if name.contains(['/', '\\']) || name.starts_with('.') {
            anyhow::bail!("refusing to write {name:?}: not a plain file name");
        }
        std::fs::write(tmp.join(name), text)
            .with_context(|| format!("{}: cannot write it", tmp.join(name).display()))?;
    }
    for (name, _) in files {
        std::fs::rename(tmp.join(name), out.join(name))
            .with_context(|| format!("{}: cannot write it", out.join(name).display()))?;
    }
    std::fs::remove_dir(&tmp).with_context(|| format!("{}: cannot remove it", tmp.display()))?;
    Ok(())
}

fn print_report(report: &Report, format: Format, out: Option<&Path>) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    if format != Format::Txt {
        output::structured(&mut stdout, format == Format::Yaml, report)?;
        stdout.flush()?;
        return Ok(());
    }
    if !report.problems.is_empty() {
        #[allow(clippy::print_stderr)] // the refusal, explained
        {
            for p in &report.problems {
                eprintln!("error: {p}");
            }
            eprintln!("{} problem(s): nothing written", report.problems.len());
        }
        return Ok(());
    }
    let read: Vec<String> = report
        .read
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    writeln!(
        stdout,
        "read {}",
        if read.is_empty() {
            "no policy".to_string()
        } else {
            read.join(", ")
        }
    )?;
    for f in &report.written {
        let dir = out.map_or(String::new(), |d| format!("{}/", d.display()));
        writeln!(stdout, "wrote {dir}{} ({} policies)", f.file, f.policies)?;
    }
    Ok(())
}
