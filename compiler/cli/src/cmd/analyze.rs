//! `ringfence analyze`: judge observed flows against a policy version (and
//! optionally compare with another), fold in the agents' compliance reports,
//! and write the analysis as text, JSON or one self-contained HTML page.
//! Exit 1 when something needs a look: escaped or misdropped flows, verdicts
//! that change against `--against`, nodes not in sync or not on the version.

use std::io::Write;

use anyhow::Context;
use ringfence_analyze::{Analyzer, Options, Reports, Version};
use ringfence_driver::{IntentFrom, Pipeline, Session};
use ringfence_source::Selector;

use crate::Exit;
use crate::cmd::flows::{self, Source};
use crate::cmd::{common, output, progress, stdin};
use crate::flags::{AnalyzeArgs, AnalyzeFormat};

/// How the analysed version is named: the revision and its commit, or the
/// directory's working tree.
fn label(s: &Session, rev: Option<&str>, dir: &std::path::Path) -> String {
    let commit = s.source.commit.as_deref().map(|c| &c[..c.len().min(12)]);
    match (rev, commit) {
        (Some(r), Some(c)) if r != c => format!("{r} ({c})"),
        (Some(r), _) => r.to_string(),
        (None, _) => format!("{} (working tree)", dir.display()),
    }
}

fn version<'a>(s: &'a Session, label: &'a str) -> Version<'a> {
    Version::new(label, &s.intent, &s.compiled, &s.warnings.0)
}

pub(crate) fn run(mut args: AnalyzeArgs) -> anyhow::Result<Exit> {
    // Cheap checks first: the flags and the report directory, then the
    // table, before compiling anything.
    let (mut source, window) = flows::source(&args.flows)?;
    let _stdin = flows::stdin(&mut source, &mut args.inventory)?;
    let table = flows::connect(&source)?;
    // The engine aggregates while the policy compiles.
    if let Some(t) = &table {
        t.ask_early(&Analyzer::table_read(&window));
    }
    let reports = match &args.reports {
        Some(dir) => Some(Reports::read_dir(dir).context("--reports")?),
        None => None,
    };
    let pipeline = Pipeline::new();
    let session = match common::compile(&pipeline, &args.source, &args.inventory)? {
        Ok(s) => s,
        Err(outcome) => return Ok(outcome),
    };
    let against = match &args.against {
        Some(rev) => {
            let from = IntentFrom::Dir(&args.source.dir, Selector::Rev(rev.clone()));
            match common::compile_from(&pipeline, &from, &args.inventory)
                .with_context(|| format!("--against {rev}"))?
            {
                Ok(s) => Some(s),
                Err(outcome) => return Ok(outcome),
            }
        }
        None => None,
    };
    let main_label = label(&session, args.source.rev.as_deref(), &args.source.dir);
    let against_label = against
        .as_ref()
        .map(|s| label(s, args.against.as_deref(), &args.source.dir));
    let analyzer = Analyzer::new(
        version(&session, &main_label),
        against
            .as_ref()
            .zip(against_label.as_deref())
            .map(|(s, l)| version(s, l)),
        Options::default(),
    );
    let stage = progress::stage(match &source {
        Source::Files(files) => format!("reading and judging flows ({} file(s))", files.len()),
        Source::Table(url) => format!("judging the conversations of {url}"),
    });
    let (tally, input) = match (&source, &table) {
        (_, Some(t)) => analyzer.read_table(t, &window)?,
        (Source::Files(files), None) => analyzer.read(files, &flows::read_options(window))?,
        (Source::Table(_), None) => unreachable!("a table source is connected above"),
    };
    drop(stage);
    let mut analysis = analyzer.finish(tally, input, reports.as_ref());
    for f in &mut analysis.input.files {
        f.path = stdin::unmask(&f.path);
    }
    for e in &mut analysis.input.errors {
        *e = stdin::unmask(e);
    }

    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("--out {}: cannot create the file", path.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    match args.format {
        AnalyzeFormat::Txt => write!(out, "{analysis}")?,
        AnalyzeFormat::Json => output::structured(&mut out, false, &analysis)?,
        AnalyzeFormat::Yaml => output::structured(&mut out, true, &analysis)?,
        AnalyzeFormat::Html => {
            out.write_all(ringfence_analyze::html::render(&analysis).as_bytes())?
        }
    }
    out.flush()?;
    Ok(if analysis.has_findings() {
        Exit::Findings
    } else {
        Exit::Clean
    })
}
