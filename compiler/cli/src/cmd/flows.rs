//! Flow sources on the command line (`--flows FILE…|URL`, `--since`,
//! `--until`) and `ringfence flows load`: flow files into a ClickHouse
//! table, in batches, parsed in parallel.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use ringfence_flows::clickhouse::{ClickHouseError, Table, TableUrl};
use ringfence_flows::{Flow, ReadOptions, Timestamp, Window, fold_files};

use crate::Exit;
use crate::cmd::stdin::{self, Stdin};
use crate::flags::{FlowArgs, InventoryArgs, LoadArgs};

/// Where the flows of a run are.
pub(crate) enum Source {
    /// Flow files.
    Files(Vec<PathBuf>),
    /// One ClickHouse table.
    Table(TableUrl),
}

fn time(flag: &str, value: Option<&String>) -> anyhow::Result<Option<Timestamp>> {
    value
        .map(|v| v.parse::<Timestamp>().map_err(anyhow::Error::msg))
        .transpose()
        .with_context(|| format!("--{flag}"))
}

/// The window of `--since` and `--until`.
pub(crate) fn window(since: Option<&String>, until: Option<&String>) -> anyhow::Result<Window> {
    Window::new(time("since", since)?, time("until", until)?).map_err(anyhow::Error::msg)
}

/// The flow source and window the flags name.
pub(crate) fn source(args: &FlowArgs) -> anyhow::Result<(Source, Window)> {
    let window = window(args.since.as_ref(), args.until.as_ref())?;
    let tables = args.flows.iter().filter(|f| TableUrl::is_table(f)).count();
    let source = match (tables, args.flows.as_slice()) {
        (0, files) => Source::Files(files.iter().map(PathBuf::from).collect()),
        (1, [url]) => Source::Table(url.parse().map_err(ClickHouseError::Url)?),
        _ => bail!(
            "--flows takes flow files or one clickhouse:// table, not both nor several tables"
        ),
    };
    Ok((source, window))
}

/// [`stdin::inventory`] with the flow files, when the source is files.
pub(crate) fn stdin(source: &mut Source, inv: &mut InventoryArgs) -> anyhow::Result<Stdin> {
    match source {
        Source::Files(files) => stdin::inventory(inv, Some(files)),
        Source::Table(_) => stdin::inventory(inv, None),
    }
}

/// The table of a table source, connected (before anything is compiled).
pub(crate) fn connect(source: &Source) -> anyhow::Result<Option<Table>> {
    Ok(match source {
        Source::Table(url) => Some(Table::connect(url)?),
        Source::Files(_) => None,
    })
}

/// How flow files are read: within `window`, otherwise the defaults.
pub(crate) fn read_options(window: Window) -> ReadOptions {
    ReadOptions {
        window,
        ..ReadOptions::default()
    }
}

/// One worker's batch of flows on their way into the table.
struct Loader {
    batch: Vec<Flow>,
    loaded: u64,
}

pub(crate) fn load(args: LoadArgs) -> anyhow::Result<Exit> {
    let started = Instant::now();
    let url: TableUrl = args.into.parse().map_err(ClickHouseError::Url)?;
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let (table, created) = Table::create(&url)?;
    #[allow(clippy::print_stderr)] // progress goes to stderr
    if created {
        eprintln!("created {url} (ringfence's layout, schema/docs/flows.md)");
    }
    let opts = read_options(window(args.since.as_ref(), args.until.as_ref())?);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<ClickHouseError>> = Mutex::new(None);
    let send = |l: &mut Loader| {
        if l.batch.is_empty() || failed.load(Ordering::Relaxed) {
            l.batch.clear();
            return;
        }
        match table.insert(&l.batch) {
            Ok(()) => l.loaded += l.batch.len() as u64,
            Err(e) => {
                failed.store(true, Ordering::Relaxed);
                first_error.lock().expect("not poisoned").get_or_insert(e);
            }
        }
        l.batch.clear();
    };
    let (loaders, stats) = fold_files(
        &args.files,
        &opts,
        || Loader {
            batch: Vec::with_capacity(args.batch.min(1 << 20)),
            loaded: 0,
        },
        |l, f| {
            l.batch.push(f);
            if l.batch.len() >= args.batch {
                send(l);
            }
        },
    )?;
    let mut loaded = 0;
    for mut l in loaders {
        send(&mut l);
        loaded += l.loaded;
    }
    if let Some(e) = first_error.into_inner().expect("not poisoned") {
        return Err(anyhow::Error::new(e).context(format!(
            "{loaded} flows were inserted before the failure; loading again inserts them again"
        )));
    }
    let total = stats.total();
    let secs = started.elapsed().as_secs_f64();
    #[allow(clippy::print_stderr)] // warnings go to stderr
    for e in &stats.errors {
        eprintln!("warning: {e}");
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Loaded {loaded} flows from {} files into {url} in {secs:.1} s ({:.0} flows/s); \
         skipped {} lines that are not flows, {} outside the window, {} unreadable",
        stats.files.len(),
        loaded as f64 / secs.max(1e-9),
        total.replies + total.ignored,
        total.outside_window,
        total.unparsable
    )?;
    if let Some(hint) = table.merge_hint()? {
        writeln!(out, "hint: {hint}")?;
    }
    Ok(Exit::Clean)
}
