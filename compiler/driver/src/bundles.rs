//! Writing a compile's output directory: one signed `<node>.bundle` per node
//! and a signed `index.json` listing them (`schema/docs/bundles.md`).
//!
//! Generation rule: the previous `OUT/index.json`, if any, is verified with
//! the signing keys' public halves (a bad one is an error). A node whose
//! `rules_sha256` equals its previous entry keeps its generation and is only
//! re-sealed with the new issue and expiry times (a refresh). A changed or
//! new node gets the caller's generation, which must be greater than its
//! previous one, or else one more than the highest generation of the
//! previous index (1 when there is none). Same inputs, same bytes.
//!
//! [`write_bundles_keeping`] keeps unchanged nodes' previous bundle files
//! as they are instead of re-sealing them (a publisher that writes each
//! compile into a new directory uses it).
//!
//! Files are written to a temporary name in OUT and renamed; the index is
//! written after every bundle, and bundles of nodes that are gone are removed
//! only after it, so a reader never finds an index naming a missing bundle.
//! Durability costs one sync of the file system per step, not one per file:
//! every bundle's temporary file is written, synced at once, renamed; the
//! index likewise (see [`sync_data`]). If sealing or writing any bundle
//! fails, the temporary files are removed and nothing was renamed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rayon::prelude::*;
use ringfence_bundle::{
    MAX_BUNDLE_BYTES, SigningKey, Trust, VerifyError, format_time, rules_sha256, seal_bundle,
    seal_index, sha256_hex, valid_file_name, verify_index,
};
use ringfence_schema::bundle::{
    BUNDLE_FORMAT, BackendRef, BundleFile, BundlePayload, IR_FILE, IndexEntry, IndexPayload,
    SourceRef,
};
use ringfence_schema::ir::Os;

/// The index file in an output directory.
pub const INDEX_FILE: &str = "index.json";
/// Suffix of a node's bundle file.
pub const BUNDLE_SUFFIX: &str = ".bundle";
/// Suffix of the temporary files renamed into place.
const TMP_SUFFIX: &str = ".ringfence-tmp";

/// One node's compiled output, ready to seal.
#[derive(Clone, Debug)]
pub struct NodeOutput {
    /// Cluster of the node.
    pub cluster: String,
    /// Node name; its bundle is `<node>.bundle`.
    pub node: String,
    /// The node's operating system.
    pub os: Os,
    /// The backend that rendered the files.
    pub backend: BackendRef,
    /// `(name, content)`: the rendered artifacts plus [`IR_FILE`], any order.
    pub files: Vec<(String, String)>,
}

impl From<BundlePayload> for NodeOutput {
    /// The output a bundle was sealed from: its node and its files' content.
    fn from(p: BundlePayload) -> Self {
        NodeOutput {
            cluster: p.cluster,
            node: p.node,
            os: p.os,
            backend: p.backend,
            files: p.files.into_iter().map(|f| (f.name, f.content)).collect(),
        }
    }
}

/// Where and how to write.
pub struct WriteOptions<'a> {
    /// The output directory (created if missing).
    pub out: &'a Path,
    /// Every key signs every bundle and the index (e.g. old and new during a
    /// rotation).
    pub keys: &'a [&'a SigningKey],
    /// The compile's time (an input: the compiler never reads the clock).
    pub issued_at: SystemTime,
    /// How long bundles stay valid after `issued_at`.
    pub expires: Duration,
    /// Generation for changed and new nodes (`--generation`); default one
    /// more than the previous index's highest.
    pub generation: Option<u64>,
    /// The intent's origin.
    pub source: SourceRef,
    /// Hex SHA-256 of the inventory.
    pub inventory_sha256: String,
}

/// What happened to one node's bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Change {
    /// Not in the previous index.
    New,
    /// Rules differ from the previous index: a new generation.
    Changed,
    /// Same rules: same generation, re-sealed with new times (a refresh).
    Unchanged,
    /// In the previous index but no longer compiled: its bundle was deleted.
    Removed,
}

impl Change {
    /// `new`, `changed`, `unchanged` or `removed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::New => "new",
            Change::Changed => "changed",
            Change::Unchanged => "unchanged",
            Change::Removed => "removed",
        }
    }
}

/// One node in a [`WriteSummary`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeWritten {
    /// Node name.
    pub node: String,
    /// Its generation now (for a removed node, its last one).
    pub generation: u64,
    /// Its generation in the previous index, if listed there.
    pub previous_generation: Option<u64>,
    /// What happened.
    pub change: Change,
    /// Hex SHA-256 of the bundle file written (`None` when removed).
    pub sha256: Option<String>,
}

/// The result of [`write_bundles`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteSummary {
    /// Every node written or removed, sorted by name.
    pub nodes: Vec<NodeWritten>,
    /// Hex SHA-256 of the `index.json` written.
    pub index_sha256: String,
}

/// Why an output directory could not be written. Nothing is written when
/// any check before the first file fails.
#[derive(Debug, thiserror::Error)]
pub enum BundleWriteError {
    /// No signing key given.
    #[error("no signing key: bundles must be signed by at least one key (--key)")]
    NoKeys,
    /// The issue or expiry time cannot be written as RFC 3339.
    #[error(
        "issue time or expiry ({what}) is outside 1970..9999 and cannot be written; check --time and --expires"
    )]
    Time {
        /// Which time.
        what: String,
    },
    /// A zero validity period.
    #[error("--expires must be longer than zero: a bundle that expires when issued is useless")]
    ZeroExpiry,
    /// Generation 0 requested.
    #[error("--generation 0: generations start at 1")]
    ZeroGeneration,
    /// A node name that cannot be a file name.
    #[error(
        "node `{0}`: a node name must be [a-z0-9._-]+ and not start with `.` to name its bundle file"
    )]
    NodeName(String),
    /// Two outputs for one node.
    #[error("node `{0}` was compiled twice; node names must be unique across clusters")]
    DuplicateNode(String),
    /// A file name that cannot be in a bundle.
    #[error("node `{node}`: file name `{file}` must be [a-z0-9._-]+ and not start with `.`")]
    FileName {
        /// Node.
        node: String,
        /// File.
        file: String,
    },
    /// Two files with one name.
    #[error("node `{node}`: file `{file}` appears twice")]
    DuplicateFile {
        /// Node.
        node: String,
        /// File.
        file: String,
    },
    /// No IR file.
    #[error("node `{node}`: no {IR_FILE}; every bundle carries its node's IR")]
    MissingIr {
        /// Node.
        node: String,
    },
    /// The previous index does not verify with the signing keys.
    #[error(
        "{path}: the previous index does not verify with the signing key(s): {err}. It was tampered with, or signed by another key; to rotate keys, sign one compile with both the old and the new key. Refusing to guess generations"
    )]
    PreviousIndex {
        /// The index file.
        path: PathBuf,
        /// Why it was refused.
        #[source]
        err: VerifyError,
    },
    /// Bundles without an index: generations would restart from 1.
    #[error(
        "{dir} holds {count} bundle file(s) but no {INDEX_FILE}, so their generations are unknown; pass --generation N above the generation the agents have applied, or empty the directory"
    )]
    NoPreviousIndex {
        /// The output directory.
        dir: PathBuf,
        /// How many `.bundle` files it holds.
        count: usize,
    },
    /// `--generation` does not grow for a changed node.
    #[error(
        "--generation {given} is not greater than node `{node}`'s previous generation {previous}; agents would refuse it as old. Pass a larger --generation, or omit it"
    )]
    GenerationNotGreater {
        /// Node.
        node: String,
        /// `--generation`.
        given: u64,
        /// Its generation in the previous index.
        previous: u64,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {err}", path = .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        #[source]
        err: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BundleWriteError + '_ {
    move |err| BundleWriteError::Io {
        path: path.to_path_buf(),
        err,
    }
}

/// A node's output, checked and with its files sealed-ready.
struct Prepared<'n> {
    out: &'n NodeOutput,
    /// Sorted by name, with digest and size but no content: the content is
    /// copied only for a bundle that is sealed (see [`Prepared::files`]).
    files: Vec<ringfence_schema::bundle::BundleFile>,
    rules_sha256: String,
}

impl Prepared<'_> {
    /// The bundle's files, with their content.
    fn files(self) -> Vec<ringfence_schema::bundle::BundleFile> {
        let out = self.out;
        self.files
            .into_iter()
            .map(|mut f| {
                f.content = out
                    .files
                    .iter()
                    .find(|(name, _)| *name == f.name)
                    .map(|(_, c)| c.clone())
                    .unwrap_or_default();
                f
            })
            .collect()
    }
}

fn prepare(nodes: &[NodeOutput]) -> Result<Vec<Prepared<'_>>, BundleWriteError> {
    let mut seen = BTreeSet::new();
    let mut prepared = Vec::with_capacity(nodes.len());
    for n in nodes {
        if !valid_file_name(&n.node) {
            return Err(BundleWriteError::NodeName(n.node.clone()));
        }
        if !seen.insert(n.node.as_str()) {
            return Err(BundleWriteError::DuplicateNode(n.node.clone()));
        }
        let mut names = BTreeSet::new();
        for (name, _) in &n.files {
            if !valid_file_name(name) {
                return Err(BundleWriteError::FileName {
                    node: n.node.clone(),
                    file: name.clone(),
                });
            }
            if !names.insert(name.as_str()) {
                return Err(BundleWriteError::DuplicateFile {
                    node: n.node.clone(),
                    file: name.clone(),
                });
            }
        }
        if !names.contains(IR_FILE) {
            return Err(BundleWriteError::MissingIr {
                node: n.node.clone(),
            });
        }
        prepared.push(n);
    }
    // Digesting up to a few hundred KB per node is the costly part: in parallel.
    let mut prepared: Vec<Prepared<'_>> = prepared
        .into_par_iter()
        .map(|out| {
            let mut files: Vec<_> = out
                .files
                .iter()
                .map(|(name, content)| BundleFile {
                    name: name.clone(),
                    sha256: sha256_hex(content.as_bytes()),
                    size: content.len() as u64,
                    content: String::new(),
                })
                .collect();
            files.sort_by(|a, b| a.name.cmp(&b.name));
            let rules_sha256 = rules_sha256(&files);
            Prepared {
                out,
                files,
                rules_sha256,
            }
        })
        .collect();
    prepared.sort_by(|a, b| a.out.node.cmp(&b.out.node));
    Ok(prepared)
}

/// Read and verify `OUT/index.json`; `None` when there is none.
fn previous_index(
    out: &Path,
    keys: &[&SigningKey],
) -> Result<Option<IndexPayload>, BundleWriteError> {
    let path = out.join(INDEX_FILE);
    let file = match fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&path)(e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_BUNDLE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(&path))?;
    let trust = Trust::new(keys.iter().map(|k| k.trusted()), 1);
    verify_index(&bytes, &trust)
        .map(Some)
        .map_err(|err| BundleWriteError::PreviousIndex { path, err })
}

/// How many `*.bundle` files `dir` holds (0 if it does not exist).
fn count_bundles(dir: &Path) -> Result<usize, BundleWriteError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut count = 0;
    for entry in entries {
        let name = entry.map_err(io_err(dir))?.file_name();
        if name.to_string_lossy().ends_with(BUNDLE_SUFFIX) {
            count += 1;
        }
    }
    Ok(count)
}

/// The temporary name `dir/name` is written under before its rename.
fn tmp_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}{TMP_SUFFIX}"))
}

/// Write `bytes` to the temporary file of `dir/name`, unsynced; [`rename`]
/// puts it in place after [`sync_data`].
fn write_tmp(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), BundleWriteError> {
    let tmp = tmp_path(dir, name);
    // A leftover of an interrupted run is replaced, never followed if a link.
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(&tmp)(e)),
        _ => {}
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))
}

/// Rename the temporary file of `dir/name` into place.
fn rename(dir: &Path, name: &str) -> Result<(), BundleWriteError> {
    let target = dir.join(name);
    fs::rename(tmp_path(dir, name), &target).map_err(io_err(&target))
}

/// Make everything written into `dir` so far durable (file data and the
/// directory's earlier renames): one `syncfs` of its file system on Linux,
/// one `fsync` per named file and of the directory elsewhere.
fn sync_data(dir: &Path, names: &[&str]) -> Result<(), BundleWriteError> {
    let d = fs::File::open(dir).map_err(io_err(dir))?;
    #[cfg(target_os = "linux")]
    {
        let _ = names;
        rustix::fs::syncfs(&d).map_err(|e| io_err(dir)(e.into()))
    }
    #[cfg(not(target_os = "linux"))]
    {
        for name in names {
            let tmp = tmp_path(dir, name);
            fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(io_err(&tmp))?;
        }
        d.sync_all().map_err(io_err(dir))
    }
}

/// Write `bytes` to `dir/name` durably through a temporary file and a rename.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), BundleWriteError> {
    write_tmp(dir, name, bytes)?;
    sync_data(dir, &[name])?;
    rename(dir, name)
}

/// Write every node's bundle and the index into `opts.out`.
pub fn write_bundles(
    nodes: &[NodeOutput],
    opts: &WriteOptions<'_>,
) -> Result<WriteSummary, BundleWriteError> {
    write(nodes, opts, None)
}

/// [`write_bundles`], keeping unchanged nodes' bundle files: a node whose
/// `rules_sha256` equals its entry in the previous index (the one in
/// `opts.out`) gets the file that entry names from `keep_from` (the
/// directory that index describes), hard-linked or copied, instead of a
/// re-sealed one: the same bytes, generation, issue and expiry times. Its
/// agent sees nothing new (an HTTP source answers `304`), and a reader
/// pairing the new index with the old file still finds it listed. A file
/// that is missing or does not have the digest the index lists is re-sealed
/// instead. Callers re-seal everything (with [`write_bundles`]) often
/// enough that kept bundles do not expire.
pub fn write_bundles_keeping(
    nodes: &[NodeOutput],
    opts: &WriteOptions<'_>,
    keep_from: &Path,
) -> Result<WriteSummary, BundleWriteError> {
    write(nodes, opts, Some(keep_from))
}

/// Link (or copy) `from/name` into `to/name` if its SHA-256 is `sha256`;
/// `false` when it is missing or differs.
fn keep_file(from: &Path, to: &Path, name: &str, sha256: &str) -> Result<bool, BundleWriteError> {
    let src = from.join(name);
    let bytes = match fs::read(&src) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err(&src)(e)),
    };
    if sha256_hex(&bytes) != sha256 {
        return Ok(false);
    }
    let target = to.join(name);
    match fs::remove_file(&target) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(&target)(e)),
        _ => {}
    }
    if fs::hard_link(&src, &target).is_err() {
        write_atomic(to, name, &bytes)?;
    }
    Ok(true)
}

fn write(
    nodes: &[NodeOutput],
    opts: &WriteOptions<'_>,
    keep_from: Option<&Path>,
) -> Result<WriteSummary, BundleWriteError> {
    if opts.keys.is_empty() {
        return Err(BundleWriteError::NoKeys);
    }
    if opts.expires.is_zero() {
        return Err(BundleWriteError::ZeroExpiry);
    }
    if opts.generation == Some(0) {
        return Err(BundleWriteError::ZeroGeneration);
    }
    let issued_at = format_time(opts.issued_at).ok_or_else(|| BundleWriteError::Time {
        what: "issue time".into(),
    })?;
    let expires_at = opts
        .issued_at
        .checked_add(opts.expires)
        .and_then(format_time)
        .ok_or_else(|| BundleWriteError::Time {
            what: "expiry".into(),
        })?;
    let prepared = prepare(nodes)?;

    let previous = previous_index(opts.out, opts.keys)?;
    if previous.is_none() && opts.generation.is_none() {
        let count = count_bundles(opts.out)?;
        if count > 0 {
            return Err(BundleWriteError::NoPreviousIndex {
                dir: opts.out.to_path_buf(),
                count,
            });
        }
    }
    let before: BTreeMap<&str, &IndexEntry> = previous
        .iter()
        .flat_map(|p| &p.nodes)
        .map(|e| (e.node.as_str(), e))
        .collect();
    let next = before.values().map(|e| e.generation).max().unwrap_or(0) + 1;

    // Decide every generation before writing anything.
    let mut plan = Vec::with_capacity(prepared.len());
    for p in &prepared {
        let prev = before.get(p.out.node.as_str());
        let (generation, change) = match prev {
            Some(e) if e.rules_sha256 == p.rules_sha256 => (e.generation, Change::Unchanged),
            Some(e) => match opts.generation {
                Some(given) if given <= e.generation => {
                    return Err(BundleWriteError::GenerationNotGreater {
                        node: p.out.node.clone(),
                        given,
                        previous: e.generation,
                    });
                }
                given => (given.unwrap_or(next), Change::Changed),
            },
            None => (opts.generation.unwrap_or(next), Change::New),
        };
        let kept = match (change, keep_from, prev) {
            (Change::Unchanged, Some(_), Some(e)) => Some(e.sha256.clone()),
            _ => None,
        };
        plan.push((generation, change, prev.map(|e| e.generation), kept));
    }

    fs::create_dir_all(opts.out).map_err(io_err(opts.out))?;
    // Seal and write in parallel, each bundle's bytes dropped once on disk;
    // the first error in node order is reported, not the first to happen.
    let files: Vec<String> = prepared
        .iter()
        .map(|p| format!("{}{BUNDLE_SUFFIX}", p.out.node))
        .collect();
    type Sealed = (IndexEntry, NodeWritten, bool);
    let results: Vec<Result<Sealed, BundleWriteError>> = prepared
        .into_par_iter()
        .zip(plan)
        .zip(&files)
        .map(
            |((p, (generation, change, previous_generation, kept)), file)| {
                let node = p.out.node.clone();
                if let (Some(sha256), Some(from)) = (kept, keep_from)
                    && keep_file(from, opts.out, file, &sha256)?
                {
                    let entry = IndexEntry {
                        node: node.clone(),
                        generation,
                        sha256: sha256.clone(),
                        rules_sha256: p.rules_sha256,
                    };
                    let written = NodeWritten {
                        node,
                        generation,
                        previous_generation,
                        change,
                        sha256: Some(sha256),
                    };
                    return Ok((entry, written, false));
                }
                let rules_sha256 = p.rules_sha256.clone();
                let payload = BundlePayload {
                    format: BUNDLE_FORMAT,
                    cluster: p.out.cluster.clone(),
                    node: node.clone(),
                    os: p.out.os,
                    backend: p.out.backend.clone(),
                    generation,
                    issued_at: issued_at.clone(),
                    expires_at: expires_at.clone(),
                    source: opts.source.clone(),
                    inventory_sha256: opts.inventory_sha256.clone(),
                    files: p.files(),
                };
                let bytes = seal_bundle(&payload, opts.keys);
                write_tmp(opts.out, file, &bytes)?;
                let sha256 = sha256_hex(&bytes);
                let entry = IndexEntry {
                    node: node.clone(),
                    generation,
                    sha256: sha256.clone(),
                    rules_sha256,
                };
                let written = NodeWritten {
                    node,
                    generation,
                    previous_generation,
                    change,
                    sha256: Some(sha256),
                };
                Ok((entry, written, true))
            },
        )
        .collect();
    if results.iter().any(Result::is_err) {
        // Nothing renamed yet: remove what was written, report the first error.
        for file in &files {
            let _ = fs::remove_file(tmp_path(opts.out, file));
        }
    }
    let mut entries = Vec::with_capacity(results.len());
    let mut written = Vec::with_capacity(results.len());
    let mut names = Vec::with_capacity(results.len());
    for (r, file) in results.into_iter().zip(&files) {
        let (e, w, sealed) = r?;
        entries.push(e);
        written.push(w);
        if sealed {
            names.push(file.as_str());
        }
    }
    sync_data(opts.out, &names)?;
    for name in &names {
        rename(opts.out, name)?;
    }
    let current: BTreeSet<String> = entries.iter().map(|e| e.node.clone()).collect();

    let index = seal_index(
        &IndexPayload {
            format: BUNDLE_FORMAT,
            issued_at,
            source: opts.source.clone(),
            inventory_sha256: opts.inventory_sha256.clone(),
            nodes: entries,
        },
        opts.keys,
    );
    // The bundles' renames are durable with the index's data, before its rename.
    write_atomic(opts.out, INDEX_FILE, &index)?;

    for (node, e) in &before {
        if current.contains(*node) {
            continue;
        }
        let path = opts.out.join(format!("{node}{BUNDLE_SUFFIX}"));
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(BundleWriteError::Io { path, err }),
        }
        written.push(NodeWritten {
            node: node.to_string(),
            generation: e.generation,
            previous_generation: Some(e.generation),
            change: Change::Removed,
            sha256: None,
        });
    }
    // The renames and removals are durable only once the directory is synced.
    fs::File::open(opts.out)
        .and_then(|d| d.sync_all())
        .map_err(io_err(opts.out))?;
    written.sort_by(|a, b| a.node.cmp(&b.node));
    Ok(WriteSummary {
        nodes: written,
        index_sha256: sha256_hex(&index),
    })
}
