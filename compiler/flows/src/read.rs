//! Reading flow files: a streaming iterator ([`FlowReader`]) and a parallel
//! fold over large files ([`fold_files`]). Neither holds more than a few
//! chunks of input at a time, whatever the size of the files.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::clickhouse::TableStats;
use crate::error::{FlowError, LineError};
use crate::flow::Flow;
use crate::input::{DETECT_LINES, FlowFormat, ParseCtx, Parsed, detect_line, parse_line};
use crate::time::Timestamp;
use crate::window::Window;

/// How to read flow files.
#[derive(Clone, Debug)]
pub struct ReadOptions {
    /// Read every file in this format instead of telling it from its first lines.
    pub format: Option<FlowFormat>,
    /// Time given to records that carry none (conntrack listings). Without
    /// it, each file's modification time is used.
    pub default_time: Option<Timestamp>,
    /// How many unreadable lines [`fold_files`] keeps for messages (all are counted).
    pub max_errors: usize,
    /// Worker threads for [`fold_files`]; 0 means one per available core.
    pub threads: usize,
    /// Bytes handed to a worker at a time by [`fold_files`].
    pub chunk_size: usize,
    /// Only flows that started in this window are read; the others are counted.
    pub window: Window,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            format: None,
            default_time: None,
            max_errors: 20,
            threads: 0,
            chunk_size: 4 << 20,
            window: Window::default(),
        }
    }
}

/// What a file's lines turned out to be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Lines read, blank ones included.
    pub lines: u64,
    /// Flows read.
    pub flows: u64,
    /// Replies skipped (Hubble `is_reply`): the answer half of a flow.
    pub replies: u64,
    /// Lines that are not flows: other Hubble events, L7 records, protocols
    /// without policy (gre, igmp), conntrack footers.
    pub ignored: u64,
    /// Lines that could not be read.
    pub unparsable: u64,
    /// Flows that started outside the window read (`--since`, `--until`).
    pub outside_window: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.lines += o.lines;
        self.flows += o.flows;
        self.replies += o.replies;
        self.ignored += o.ignored;
        self.unparsable += o.unparsable;
        self.outside_window += o.outside_window;
    }

    fn count(&mut self, outcome: &Result<Parsed, String>) {
        self.lines += 1;
        match outcome {
            Ok(Parsed::Flow(_)) => self.flows += 1,
            Ok(Parsed::Reply) => self.replies += 1,
            Ok(Parsed::Ignored) => self.ignored += 1,
            Ok(Parsed::Outside) => self.outside_window += 1,
            Ok(Parsed::Blank) => {}
            Err(_) => self.unparsable += 1,
        }
    }
}

/// One file read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileStats {
    /// The file.
    pub path: PathBuf,
    /// Its format; `None` for a file with no lines.
    pub format: Option<FlowFormat>,
    /// What its lines were.
    #[serde(flatten)]
    pub counts: Counts,
    /// The time given to its records because they carry none (conntrack
    /// listings: the file's modification time unless one was given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assumed_time: Option<String>,
}

/// One flow table read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TableInput {
    /// The table (`clickhouse://…`, without the password).
    pub url: String,
    /// Its layout (`ringfence`, `theia`).
    pub layout: &'static str,
    /// What its rows were.
    #[serde(flatten)]
    pub stats: TableStats,
}

/// Everything [`fold_files`] (or a table read) read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReadStats {
    /// Per file, in the order given.
    pub files: Vec<FileStats>,
    /// The first unreadable lines, by file then line.
    pub errors: Vec<LineError>,
    /// Per flow table.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<TableInput>,
}

impl ReadStats {
    /// The counts of all files and tables together (a table's rows count as
    /// lines, its skipped flows as ignored, its unreadable rows as
    /// unparsable).
    pub fn total(&self) -> Counts {
        let mut t = Counts::default();
        for f in &self.files {
            t.add(&f.counts);
        }
        for tb in &self.tables {
            let s = &tb.stats;
            t.add(&Counts {
                lines: s.rows,
                flows: s.flows - s.skipped,
                ignored: s.skipped,
                unparsable: s.unreadable,
                ..Counts::default()
            });
        }
        t
    }
}

/// Tell the format from the first lines: `Ok(None)` if there is nothing to
/// decide on (no line, or only blank lines and footers before the end).
fn detect<'a>(
    path: &Path,
    lines: impl Iterator<Item = &'a str>,
    at_end: bool,
) -> Result<Option<FlowFormat>, FlowError> {
    let mut n = 0u64;
    for line in lines.take(DETECT_LINES) {
        n += 1;
        match detect_line(line) {
            Ok(Some(f)) => return Ok(Some(f)),
            Ok(None) => {}
            Err(found) => {
                return Err(FlowError::UnknownFormat {
                    path: path.to_owned(),
                    line: n,
                    found,
                });
            }
        }
    }
    if at_end || n < DETECT_LINES as u64 {
        Ok(None)
    } else {
        Err(FlowError::UnknownFormat {
            path: path.to_owned(),
            line: n,
            found: format!("no flow in the first {DETECT_LINES} lines"),
        })
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> FlowError + '_ {
    move |source| FlowError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The time for records without one, and whether it was assumed.
fn default_time(
    path: &Path,
    format: Option<FlowFormat>,
    opts: &ReadOptions,
    file: Option<&File>,
) -> Result<(Option<Timestamp>, Option<String>), FlowError> {
    if format != Some(FlowFormat::Conntrack) {
        return Ok((opts.default_time, None));
    }
    let t = match (opts.default_time, file) {
        (Some(t), _) => Some(t),
        (None, Some(f)) => {
            let m = f
                .metadata()
                .and_then(|m| m.modified())
                .map_err(io_err(path))?;
            Some(Timestamp::from_system_time(m))
        }
        (None, None) => None,
    };
    Ok((t, t.map(|t| t.to_rfc3339())))
}

/// Reads one flow file line by line: an iterator of flows and unreadable
/// lines (which the caller may report and skip). Memory stays constant.
pub struct FlowReader<R> {
    input: R,
    stats: FileStats,
    ctx: ParseCtx,
    pending: VecDeque<String>,
    line: u64,
    buf: Vec<u8>,
}

impl FlowReader<BufReader<File>> {
    /// Open a file and tell its format (unless `opts.format` forces one).
    pub fn open(path: impl AsRef<Path>, opts: &ReadOptions) -> Result<Self, FlowError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(io_err(path))?;
        let mut r = FlowReader::start(path, BufReader::new(file), opts)?;
        let (t, assumed) = default_time(path, r.stats.format, opts, Some(r.input.get_ref()))?;
        r.ctx.default_time = t;
        r.stats.assumed_time = assumed;
        Ok(r)
    }
}

impl<R: BufRead> FlowReader<R> {
    /// Read from any buffered input; `path` names it in messages. Conntrack
    /// input needs `opts.default_time` (there is no file to take a time from).
    pub fn new(path: impl Into<PathBuf>, input: R, opts: &ReadOptions) -> Result<Self, FlowError> {
        let path = path.into();
        let mut r = FlowReader::start(&path, input, opts)?;
        let (t, assumed) = default_time(&path, r.stats.format, opts, None)?;
        r.ctx.default_time = t;
        r.stats.assumed_time = assumed;
        Ok(r)
    }

    fn start(path: &Path, mut input: R, opts: &ReadOptions) -> Result<Self, FlowError> {
        let mut pending = VecDeque::new();
        let mut buf = Vec::new();
        let mut format = opts.format;
        if format.is_none() {
            let mut at_end = false;
            while pending.len() < DETECT_LINES {
                match read_line(&mut input, &mut buf).map_err(io_err(path))? {
                    Some(l) => pending.push_back(l),
                    None => {
                        at_end = true;
                        break;
                    }
                }
            }
            format = detect(path, pending.iter().map(String::as_str), at_end)?;
        }
        Ok(FlowReader {
            input,
            stats: FileStats {
                path: path.to_owned(),
                format,
                counts: Counts::default(),
                assumed_time: None,
            },
            ctx: ParseCtx::new(opts.default_time, opts.window),
            pending,
            line: 0,
            buf,
        })
    }

    /// The file's format (`None`: the file has no lines).
    pub fn format(&self) -> Option<FlowFormat> {
        self.stats.format
    }

    /// What has been read so far.
    pub fn stats(&self) -> &FileStats {
        &self.stats
    }
}

/// One line without its end-of-line; `None` at the end. Invalid UTF-8 is
/// replaced (and then fails to parse as any format, with its line number).
fn read_line(input: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<Option<String>> {
    buf.clear();
    if input.read_until(b'\n', buf)? == 0 {
        return Ok(None);
    }
    let l = trim_eol(buf);
    Ok(Some(String::from_utf8_lossy(l).into_owned()))
}

fn trim_eol(l: &[u8]) -> &[u8] {
    let l = l.strip_suffix(b"\n").unwrap_or(l);
    l.strip_suffix(b"\r").unwrap_or(l)
}

impl<R: BufRead> Iterator for FlowReader<R> {
    type Item = Result<Flow, LineError>;

    fn next(&mut self) -> Option<Self::Item> {
        let format = self.stats.format?;
        loop {
            let line = match self.pending.pop_front() {
                Some(l) => l,
                None => match read_line(&mut self.input, &mut self.buf) {
                    Ok(Some(l)) => l,
                    Ok(None) => return None,
                    Err(e) => {
                        self.line += 1;
                        self.stats.counts.lines += 1;
                        self.stats.counts.unparsable += 1;
                        return Some(Err(self.error(format, format!("read failed: {e}"))));
                    }
                },
            };
            self.line += 1;
            let outcome = parse_line(format, &line, &mut self.ctx);
            self.stats.counts.count(&outcome);
            match outcome {
                Ok(Parsed::Flow(f)) => return Some(Ok(*f)),
                Ok(_) => {}
                Err(message) => return Some(Err(self.error(format, message))),
            }
        }
    }
}

impl<R> FlowReader<R> {
    fn error(&self, format: FlowFormat, message: String) -> LineError {
        LineError {
            path: self.stats.path.clone(),
            line: self.line,
            format,
            message,
        }
    }
}

/// A file being read by [`fold_files`].
struct FileCtx {
    index: usize,
    path: PathBuf,
    format: FlowFormat,
    default_time: Option<Timestamp>,
}

/// A run of whole lines of one file.
struct Chunk {
    file: Arc<FileCtx>,
    first_line: u64,
    data: Vec<u8>,
}

/// What a worker gives back: its accumulator, counts per file index and the
/// first errors it met.
type WorkerResult<A> = (A, Vec<Counts>, Vec<LineError>);

/// Fold every flow of `paths` into accumulators, in parallel.
///
/// Files are read one after the other, each in chunks of whole lines that
/// worker threads parse and fold: each worker owns one accumulator, made by
/// `init`, for the whole run. The accumulators come back in no particular
/// order, and which flows each saw depends on scheduling: combine them with
/// an order-independent merge. Unreadable lines are counted per file and the
/// first `opts.max_errors` (by file, then line) are kept. A file that cannot
/// be opened or whose format cannot be told stops the run.
pub fn fold_files<A, I, F>(
    paths: &[PathBuf],
    opts: &ReadOptions,
    init: I,
    fold: F,
) -> Result<(Vec<A>, ReadStats), FlowError>
where
    A: Send,
    I: Fn() -> A + Sync,
    F: Fn(&mut A, Flow) + Sync,
{
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let mut files: Vec<FileStats> = Vec::with_capacity(paths.len());
    let (tx, rx) = sync_channel::<Chunk>(threads * 2);
    let rx = Mutex::new(rx);
    let (produced, results) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| s.spawn(|| work(&rx, &init, &fold, opts.max_errors, opts.window)))
            .collect();
        let produced = produce(paths, opts, &tx, &mut files);
        drop(tx);
        let results: Vec<WorkerResult<A>> = workers
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect();
        (produced, results)
    });
    produced?;
    let mut accs = Vec::with_capacity(results.len());
    let mut errors = Vec::new();
    for (acc, counts, errs) in results {
        accs.push(acc);
        for (i, c) in counts.iter().enumerate() {
            files[i].counts.add(c);
        }
        errors.extend(errs);
    }
    errors.sort();
    errors.truncate(opts.max_errors);
    Ok((
        accs,
        ReadStats {
            files,
            errors,
            tables: Vec::new(),
        },
    ))
}

/// Read every file into chunks of whole lines and hand them to the workers.
fn produce(
    paths: &[PathBuf],
    opts: &ReadOptions,
    tx: &SyncSender<Chunk>,
    files: &mut Vec<FileStats>,
) -> Result<(), FlowError> {
    let chunk_size = opts.chunk_size.max(1 << 10);
    for (index, path) in paths.iter().enumerate() {
        let mut file = File::open(path).map_err(io_err(path))?;
        files.push(FileStats {
            path: path.clone(),
            format: None,
            counts: Counts::default(),
            assumed_time: None,
        });
        let mut ctx: Option<Arc<FileCtx>> = None;
        let mut carry: Vec<u8> = Vec::new();
        let mut line = 1u64;
        loop {
            let mut buf = Vec::with_capacity(chunk_size + carry.len());
            buf.append(&mut carry);
            let at_end = fill(&mut file, &mut buf, chunk_size).map_err(io_err(path))?;
            if buf.is_empty() {
                break;
            }
            if !at_end {
                match memchr::memrchr(b'\n', &buf) {
                    Some(i) => carry = buf.split_off(i + 1),
                    None => {
                        // One line longer than a chunk: keep reading.
                        carry = buf;
                        continue;
                    }
                }
            }
            let fctx = match &ctx {
                Some(c) => c.clone(),
                None => {
                    let format = match opts.format {
                        Some(f) => Some(f),
                        None => {
                            let text = String::from_utf8_lossy(&buf);
                            detect(path, text.lines(), at_end)?
                        }
                    };
                    let Some(format) = format else {
                        // Nothing but blank lines.
                        files[index].counts.lines = buf.split(|&b| b == b'\n').count() as u64
                            - u64::from(buf.ends_with(b"\n"));
                        break;
                    };
                    let (default_time, assumed) =
                        default_time(path, Some(format), opts, Some(&file))?;
                    files[index].format = Some(format);
                    files[index].assumed_time = assumed;
                    let c = Arc::new(FileCtx {
                        index,
                        path: path.clone(),
                        format,
                        default_time,
                    });
                    ctx = Some(c.clone());
                    c
                }
            };
            let lines =
                memchr::memchr_iter(b'\n', &buf).count() as u64 + u64::from(!buf.ends_with(b"\n"));
            let chunk = Chunk {
                file: fctx,
                first_line: line,
                data: buf,
            };
            line += lines;
            if tx.send(chunk).is_err() {
                // Every worker is gone: they panicked, which join reports.
                return Ok(());
            }
            if at_end {
                break;
            }
        }
    }
    Ok(())
}

/// Read until `buf` holds `want` more bytes or the input ends (`true`).
fn fill(file: &mut File, buf: &mut Vec<u8>, want: usize) -> io::Result<bool> {
    let target = buf.len() + want;
    while buf.len() < target {
        let n = file
            .by_ref()
            .take((target - buf.len()) as u64)
            .read_to_end(buf)?;
        if n == 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

fn work<A, I, F>(
    rx: &Mutex<Receiver<Chunk>>,
    init: &I,
    fold: &F,
    max_errors: usize,
    window: Window,
) -> WorkerResult<A>
where
    I: Fn() -> A,
    F: Fn(&mut A, Flow),
{
    let mut acc = init();
    let mut counts: Vec<Counts> = Vec::new();
    let mut errors: Vec<LineError> = Vec::new();
    let mut ctx = ParseCtx::new(None, window);
    loop {
        // The guard is dropped before parsing: only the receive is serialised.
        let chunk = match rx.lock().map(|r| r.recv()) {
            Ok(Ok(c)) => c,
            _ => break,
        };
        let f = &chunk.file;
        if counts.len() <= f.index {
            counts.resize(f.index + 1, Counts::default());
        }
        ctx.default_time = f.default_time;
        let c = &mut counts[f.index];
        let mut line_no = chunk.first_line;
        let data = &chunk.data;
        // UTF-8 is checked once per chunk; line by line only if that fails.
        let text = std::str::from_utf8(data).ok();
        let mut start = 0;
        while start < data.len() {
            let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |i| start + i);
            let raw = trim_eol(&data[start..end]);
            let line = match text {
                Some(t) => Ok(&t[start..start + raw.len()]),
                None => std::str::from_utf8(raw),
            };
            let outcome = match line {
                Ok(line) => parse_line(f.format, line, &mut ctx),
                Err(e) => Err(format!("not UTF-8 text ({e})")),
            };
            c.count(&outcome);
            match outcome {
                Ok(Parsed::Flow(flow)) => fold(&mut acc, *flow),
                Ok(_) => {}
                Err(message) => {
                    errors.push(LineError {
                        path: f.path.clone(),
                        line: line_no,
                        format: f.format,
                        message,
                    });
                    if errors.len() > 2 * max_errors.max(1) {
                        errors.sort();
                        errors.truncate(max_errors);
                    }
                }
            }
            line_no += 1;
            start = end + 1;
        }
    }
    errors.sort();
    errors.truncate(max_errors);
    (acc, counts, errors)
}
