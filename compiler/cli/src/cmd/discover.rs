//! `ringfence discover`: writes intent from observed flows
//! (`schema/docs/discovery.md`). The intent files go under `--out`; the
//! summary goes to stdout (text or JSON), unreadable flow lines to stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use ringfence_discover::{
    Discoverer, Discovery, Exclusions, Granularity, Options, PortGeneralization, Summary,
};
use serde::Serialize;

use crate::Exit;
use crate::cmd::flows::{self, Source};
use crate::cmd::{output, progress, stdin};
use crate::flags::{self, DiscoverArgs, Format};

/// The first line of every file discovery writes: how a rerun knows which
/// files in `--out` it may replace.
const MARK: &str = "// Discovered by `ringfence discover`";

pub(crate) fn run(mut args: DiscoverArgs) -> anyhow::Result<Exit> {
    let started = Instant::now();
    let (mut source, window) = flows::source(&args.flows)?;
    let _stdin = flows::stdin(&mut source, &mut args.inventory)?;
    if args.scope.as_deref().is_some_and(|s| s.trim().is_empty()) {
        bail!("`--scope` needs the name of a scope declared in your intent");
    }
    let exclusions = match &args.exclude {
        Some(path) => Exclusions::load(path)?,
        None => Exclusions::default(),
    };
    let table = flows::connect(&source)?;
    // The engine aggregates while the inventory loads.
    if let Some(t) = &table {
        t.ask_early(&Discoverer::table_read(&window));
    }
    let stale = our_files(&args.out)?;
    let inventory = ringfence_inventory::load(&args.inventory.inventory, &args.inventory.trivy)?;
    let opts = Options {
        granularity: match args.granularity {
            flags::Granularity::Cluster => Granularity::Cluster,
            flags::Granularity::Namespace => Granularity::Namespace,
            flags::Granularity::Coarse => Granularity::Coarse,
            flags::Granularity::Fine => Granularity::Fine,
        },
        port_generalization: match args.port_generalization {
            flags::PortGeneralization::Off => PortGeneralization::Off,
            flags::PortGeneralization::Low => PortGeneralization::Low,
            flags::PortGeneralization::Medium => PortGeneralization::Medium,
            flags::PortGeneralization::High => PortGeneralization::High,
        },
        exclusions,
        min_flows: args.min_flows,
        scope: args.scope.clone(),
    };
    let stage = progress::stage(match &source {
        Source::Files(files) => format!("discovering from {} flow file(s)", files.len()),
        Source::Table(url) => format!("discovering from the conversations of {url}"),
    });
    let mut discoverer = Discoverer::new(&inventory, opts)?;
    match (&source, &table) {
        (_, Some(t)) => discoverer.read_table(t, &window)?,
        (Source::Files(files), None) => {
            discoverer.read_files(files, &flows::read_options(window))?
        }
        (Source::Table(_), None) => unreachable!("a table source is connected above"),
    }
    let Discovery { files, mut summary } = discoverer.finish();
    drop(stage);
    for f in &mut summary.inputs.files {
        stdin::unmask_path(&mut f.path);
    }
    for e in &mut summary.inputs.errors {
        stdin::unmask_path(&mut e.path);
    }
    write(&args.out, &stale, &files)?;
    let elapsed = started.elapsed().as_secs_f64();
    #[allow(clippy::print_stderr)] // logs go to stderr; the summary is the result
    {
        for e in &summary.inputs.errors {
            eprintln!("warning: {e}");
        }
        let bad = summary.flows.unparsable;
        if bad > summary.inputs.errors.len() as u64 {
            eprintln!(
                "warning: {bad} unreadable lines in all ({} shown)",
                summary.inputs.errors.len()
            );
        }
        eprintln!("wrote {} files to {}", files.len(), args.out.display());
    }
    let mut out = std::io::stdout().lock();
    #[derive(Serialize)]
    struct Report<'a> {
        out: &'a Path,
        #[serde(flatten)]
        summary: &'a Summary,
        elapsed_seconds: f64,
    }
    let report = Report {
        out: &args.out,
        summary: &summary,
        elapsed_seconds: elapsed,
    };
    match args.format {
        Format::Json => output::structured(&mut out, false, &report)?,
        Format::Yaml => output::structured(&mut out, true, &report)?,
        Format::Txt => {
            write!(out, "{}", summary.to_text())?;
            writeln!(out, "Intent written to {}", args.out.display())?;
            writeln!(out, "Time taken: {elapsed:.2} s")?;
        }
    }
    Ok(Exit::Clean)
}

/// The `.kdl` files under `dir` that an earlier discovery wrote (they will
/// be replaced). Any other `.kdl` file there is refused: discovery would
/// mix its intent with someone's.
fn our_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut ours = Vec::new();
    if !dir.exists() {
        return Ok(ours);
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).with_context(|| format!("{}: cannot list", d.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "kdl") {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("{}: cannot read", path.display()))?;
                if !text.starts_with(MARK) {
                    bail!(
                        "{}: not written by `ringfence discover`; give `--out` an empty directory \
                         (or one holding only an earlier discovery)",
                        path.display()
                    );
                }
                ours.push(path);
            }
        }
    }
    Ok(ours)
}

fn write(
    dir: &Path,
    stale: &[PathBuf],
    files: &[ringfence_discover::OutputFile],
) -> anyhow::Result<()> {
    for path in stale {
        std::fs::remove_file(path).with_context(|| format!("{}: cannot remove", path.display()))?;
    }
    for f in files {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("{}: cannot create", parent.display()))?;
        }
        std::fs::write(&path, &f.text)
            .with_context(|| format!("{}: cannot write", path.display()))?;
    }
    Ok(())
}
