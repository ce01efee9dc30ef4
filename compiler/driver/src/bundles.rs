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
//! compile into a new directory uses it). Both run a [`Sealer`], which
//! also seals nodes one at a time as they are rendered
//! (`Pipeline::render_seal`), so no more than a few nodes' files are held.
//!
//! Files are written to a temporary name in OUT and renamed; the index is
//! written after every bundle, and bundles of nodes that are gone are removed
//! only after it, so a reader never finds an index naming a missing bundle.
//! Durability costs one sync of the file system per step, not one per file:
//! every bundle's temporary file is written, synced at once, renamed; the
//! index likewise (see [`sync_data`]). If sealing or writing any bundle
//! fails, the temporary files are removed and nothing was renamed;
//! [`write_bundles`] checks every node's output before writing anything.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use rayon::prelude::*;
use ringfence_bundle::{
    MAX_BUNDLE_BYTES, PathError, SigningKey, Trust, VerifyError, format_time, rules_digest,
    seal_bundle, seal_index, sha256_hex, valid_file_name, verify_index,
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
    /// The rendered artifacts plus [`IR_FILE`].
    pub files: Files,
}

/// A node's files: `(name, content)` sorted by name, with the SHA-256 of
/// each content computed once, when first asked for, and kept (a clone
/// keeps it too). Nothing can change a file once built, so the digests
/// stay the files' own:
///
/// ```compile_fail
/// use ringfence_driver::bundles::Files;
/// let files = Files::new(vec![("rules.nft".into(), "a".into())]);
/// files.digests();
/// files.as_slice()[0].1.push('b');
/// ```
#[derive(Clone, Debug)]
pub struct Files {
    files: Vec<(String, String)>,
    digests: OnceLock<Vec<String>>,
}

impl Files {
    /// `files`, sorted by name. Names are checked when sealed.
    pub fn new(mut files: Vec<(String, String)>) -> Files {
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Files {
            files,
            digests: OnceLock::new(),
        }
    }

    /// The files, sorted by name.
    pub fn as_slice(&self) -> &[(String, String)] {
        &self.files
    }

    /// The files, sorted by name.
    pub fn iter(&self) -> std::slice::Iter<'_, (String, String)> {
        self.files.iter()
    }

    /// Hex SHA-256 of each file's content, in the order of [`Files::iter`].
    pub fn digests(&self) -> &[String] {
        self.digests.get_or_init(|| {
            self.files
                .iter()
                .map(|(_, content)| sha256_hex(content.as_bytes()))
                .collect()
        })
    }
}

impl<'a> IntoIterator for &'a Files {
    type Item = &'a (String, String);
    type IntoIter = std::slice::Iter<'a, (String, String)>;

    fn into_iter(self) -> Self::IntoIter {
        self.files.iter()
    }
}

impl From<BundlePayload> for NodeOutput {
    /// The output a bundle was sealed from: its node and its files' content.
    fn from(p: BundlePayload) -> Self {
        NodeOutput {
            cluster: p.cluster,
            node: p.node,
            os: p.os,
            backend: p.backend,
            files: Files::new(p.files.into_iter().map(|f| (f.name, f.content)).collect()),
        }
    }
}

/// Where bundles go, who signs them, and their times and generation: what
/// [`WriteOptions`] and the pipeline's `Seal` share.
#[derive(Clone, Copy)]
pub struct Output<'a> {
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
}

/// Where and how to write.
pub struct WriteOptions<'a> {
    /// Where, who signs, times and generation.
    pub output: Output<'a>,
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
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] PathError),
}

/// A node's output checked: node and file names valid, no duplicate file,
/// an [`IR_FILE`].
fn check_output(n: &NodeOutput) -> Result<(), BundleWriteError> {
    if !valid_file_name(&n.node) {
        return Err(BundleWriteError::NodeName(n.node.clone()));
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
    Ok(())
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
        Err(e) => return Err(PathError::at(&path)(e).into()),
    };
    let mut bytes = Vec::new();
    file.take(MAX_BUNDLE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(PathError::at(&path))?;
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
        Err(e) => return Err(PathError::at(dir)(e).into()),
    };
    let mut count = 0;
    for entry in entries {
        let name = entry.map_err(PathError::at(dir))?.file_name();
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
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(PathError::at(&tmp)(e).into()),
        _ => {}
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(PathError::at(&tmp))?;
    f.write_all(bytes)
        .map_err(|e| PathError::at(&tmp)(e).into())
}

/// Rename the temporary file of `dir/name` into place.
fn rename(dir: &Path, name: &str) -> Result<(), BundleWriteError> {
    let target = dir.join(name);
    fs::rename(tmp_path(dir, name), &target).map_err(|e| PathError::at(&target)(e).into())
}

/// Make everything written into `dir` so far durable (file data and the
/// directory's earlier renames): one `syncfs` of its file system on Linux,
/// one `fsync` per named file and of the directory elsewhere.
fn sync_data(dir: &Path, names: &[&str]) -> Result<(), BundleWriteError> {
    let d = fs::File::open(dir).map_err(PathError::at(dir))?;
    #[cfg(target_os = "linux")]
    {
        let _ = names;
        rustix::fs::syncfs(&d).map_err(|e| PathError::at(dir)(e.into()).into())
    }
    #[cfg(not(target_os = "linux"))]
    {
        for name in names {
            let tmp = tmp_path(dir, name);
            fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(PathError::at(&tmp))?;
        }
        d.sync_all().map_err(|e| PathError::at(dir)(e).into())
    }
}

/// Write `bytes` to `dir/name` durably through a temporary file and a rename.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), BundleWriteError> {
    write_tmp(dir, name, bytes)?;
    sync_data(dir, &[name])?;
    rename(dir, name)
}

/// Write every node's bundle and the index into `opts.output.out`.
pub fn write_bundles(
    nodes: &[NodeOutput],
    opts: &WriteOptions<'_>,
) -> Result<WriteSummary, BundleWriteError> {
    write(nodes, opts, None)
}

/// [`write_bundles`], keeping unchanged nodes' bundle files: a node whose
/// `rules_sha256` equals its entry in the previous index (the one in
/// `opts.output.out`) gets the file that entry names from `keep_from` (the
/// directory that index describes), hard-linked or copied, instead of a
/// re-sealed one: the same bytes, generation, issue and expiry times. Its
/// agent sees nothing new (an HTTP source answers `304`), and a reader
/// pairing the new index with the old file still finds it listed. A file
/// that is missing or does not have the digest the index lists is re-sealed
/// instead (a file this process hashed before is hashed again only when
/// its size or modification time changed). Callers re-seal everything
/// (with [`write_bundles`]) often enough that kept bundles do not expire.
pub fn write_bundles_keeping(
    nodes: &[NodeOutput],
    opts: &WriteOptions<'_>,
    keep_from: &Path,
) -> Result<WriteSummary, BundleWriteError> {
    write(nodes, opts, Some(keep_from))
}

/// Kept bundle files this process has hashed, by (device, inode): the
/// size, modification time and SHA-256 they had. A file kept again with the
/// same size and modification time is linked without being read. A stamp is
/// remembered only for a file last modified a second or more before the
/// publication's issue time, so no later write can leave the same
/// modification time behind; a changed or unknown file is hashed again.
static HASHED: LazyLock<Mutex<HashMap<(u64, u64), Stamp>>> = LazyLock::new(Mutex::default);

/// At most this many stamps are held; past it they are forgotten at once.
const MAX_STAMPS: usize = 1 << 16;

#[derive(Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: SystemTime,
    sha256: String,
}

impl Stamp {
    fn of(m: &fs::Metadata, sha256: &str) -> Option<((u64, u64), Stamp)> {
        use std::os::unix::fs::MetadataExt as _;
        let stamp = Stamp {
            len: m.len(),
            modified: m.modified().ok()?,
            sha256: sha256.to_string(),
        };
        Some(((m.dev(), m.ino()), stamp))
    }
}

/// Link (or copy) `from/name` into `to/name` if its SHA-256 is `sha256`
/// (hashed unless [`HASHED`] knows the file unchanged); `false` when it is
/// missing or differs. `now`: the publication's issue time.
fn keep_file(
    from: &Path,
    to: &Path,
    name: &str,
    sha256: &str,
    now: SystemTime,
) -> Result<bool, BundleWriteError> {
    use std::os::unix::fs::MetadataExt as _;
    let src = from.join(name);
    let meta = match fs::metadata(&src) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(PathError::at(&src)(e).into()),
    };
    let stamp = Stamp::of(&meta, sha256);
    let known = stamp.as_ref().is_some_and(|(id, st)| {
        HASHED.lock().unwrap_or_else(|p| p.into_inner()).get(id) == Some(st)
    });
    let mut bytes = None;
    if !known {
        let b = fs::read(&src).map_err(PathError::at(&src))?;
        if sha256_hex(&b) != sha256 {
            return Ok(false);
        }
        // Remembered once settled, and only if it is what was read.
        let settled = |(_, st): &(_, Stamp)| {
            st.modified + Duration::from_secs(1) <= now && st.len == b.len() as u64
        };
        if let Some((id, st)) = stamp.filter(settled) {
            let mut hashed = HASHED.lock().unwrap_or_else(|p| p.into_inner());
            if hashed.len() >= MAX_STAMPS {
                hashed.clear();
            }
            hashed.insert(id, st);
        }
        bytes = Some(b);
    }
    let target = to.join(name);
    // Already this very file (a directory taken over from an older
    // publication that shares it): nothing to do.
    if let Ok(t) = fs::symlink_metadata(&target)
        && (t.dev(), t.ino()) == (meta.dev(), meta.ino())
    {
        return Ok(true);
    }
    // Linked first: in a new directory, removing a name it does not hold
    // costs a directory search per node.
    let linked = match fs::hard_link(&src, &target) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            match fs::remove_file(&target) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(PathError::at(&target)(e).into());
                }
                _ => {}
            }
            fs::hard_link(&src, &target)
        }
        r => r,
    };
    if linked.is_err() {
        // Copied instead: bytes read now are checked, as above.
        let bytes = match bytes {
            Some(b) => b,
            None => {
                let b = fs::read(&src).map_err(PathError::at(&src))?;
                if sha256_hex(&b) != sha256 {
                    return Ok(false);
                }
                b
            }
        };
        write_atomic(to, name, &bytes)?;
    }
    Ok(true)
}

fn write(
    nodes: &[NodeOutput],
    opts: &WriteOptions<'_>,
    keep_from: Option<&Path>,
) -> Result<WriteSummary, BundleWriteError> {
    // Every output is checked before anything is written.
    for n in nodes {
        check_output(n)?;
    }
    let sealer = Sealer::new(opts, keep_from, nodes.iter().map(|n| n.node.as_str()))?;
    let sealed = nodes.par_iter().map(|n| sealer.seal(n)).collect();
    sealer.finish(sealed)
}

/// One node's bundle from [`Sealer::seal`], for [`Sealer::finish`].
#[derive(Debug)]
pub struct Sealing {
    node: String,
    result: Result<Sealed, BundleWriteError>,
}

/// One node sealed: its bundle's temporary file written (or its previous
/// bundle kept), not yet renamed into place.
#[derive(Debug)]
struct Sealed {
    entry: IndexEntry,
    written: NodeWritten,
    /// Its bundle file's name, and whether a temporary file of it was written.
    file: String,
    renamed: bool,
}

/// Writing an output directory one node at a time: [`Sealer::new`] runs
/// every check that needs no node's files (keys, times, node names, the
/// previous index); [`Sealer::seal`] checks one node's output, decides its
/// generation and writes its bundle to a temporary file, from any thread, so
/// a caller can drop each node's files as soon as they are sealed;
/// [`Sealer::finish`] renames them all into place and writes the index, or
/// removes them if any node failed. The output is the same bytes as
/// [`write_bundles`] gives.
pub struct Sealer<'a> {
    opts: &'a WriteOptions<'a>,
    keep_from: Option<&'a Path>,
    issued_at: String,
    expires_at: String,
    /// The previous index's entries, by node.
    before: BTreeMap<String, IndexEntry>,
    /// The generation of a changed or new node without `--generation`.
    next: u64,
    /// The nodes to be sealed, sorted.
    nodes: Vec<String>,
}

impl<'a> Sealer<'a> {
    /// Check the options, the names of the nodes to be sealed (valid,
    /// unique) and the previous index in `opts.output.out`; create `opts.output.out`.
    pub fn new<'n>(
        opts: &'a WriteOptions<'a>,
        keep_from: Option<&'a Path>,
        nodes: impl IntoIterator<Item = &'n str>,
    ) -> Result<Sealer<'a>, BundleWriteError> {
        if opts.output.keys.is_empty() {
            return Err(BundleWriteError::NoKeys);
        }
        if opts.output.expires.is_zero() {
            return Err(BundleWriteError::ZeroExpiry);
        }
        if opts.output.generation == Some(0) {
            return Err(BundleWriteError::ZeroGeneration);
        }
        let issued_at =
            format_time(opts.output.issued_at).ok_or_else(|| BundleWriteError::Time {
                what: "issue time".into(),
            })?;
        let expires_at = opts
            .output
            .issued_at
            .checked_add(opts.output.expires)
            .and_then(format_time)
            .ok_or_else(|| BundleWriteError::Time {
                what: "expiry".into(),
            })?;
        let mut names = BTreeSet::new();
        for node in nodes {
            if !valid_file_name(node) {
                return Err(BundleWriteError::NodeName(node.to_string()));
            }
            if !names.insert(node.to_string()) {
                return Err(BundleWriteError::DuplicateNode(node.to_string()));
            }
        }
        let previous = previous_index(opts.output.out, opts.output.keys)?;
        if previous.is_none() && opts.output.generation.is_none() {
            let count = count_bundles(opts.output.out)?;
            if count > 0 {
                return Err(BundleWriteError::NoPreviousIndex {
                    dir: opts.output.out.to_path_buf(),
                    count,
                });
            }
        }
        let before: BTreeMap<String, IndexEntry> = previous
            .into_iter()
            .flat_map(|p| p.nodes)
            .map(|e| (e.node.clone(), e))
            .collect();
        let next = before.values().map(|e| e.generation).max().unwrap_or(0) + 1;
        fs::create_dir_all(opts.output.out).map_err(PathError::at(opts.output.out))?;
        Ok(Sealer {
            opts,
            keep_from,
            issued_at,
            expires_at,
            before,
            next,
            nodes: names.into_iter().collect(),
        })
    }

    /// Seal one node's output (one of the nodes given to [`Sealer::new`])
    /// into its bundle's temporary file, or keep its previous bundle. Only a
    /// bundle sealed anew copies the files.
    pub fn seal(&self, out: &NodeOutput) -> Sealing {
        debug_assert!(self.nodes.binary_search(&out.node).is_ok());
        Sealing {
            node: out.node.clone(),
            result: self.seal_node(out),
        }
    }

    fn seal_node(&self, out: &NodeOutput) -> Result<Sealed, BundleWriteError> {
        check_output(out)?;
        let opts = self.opts;
        let digests = out.files.digests();
        let rules_sha256 = rules_digest(
            out.files
                .iter()
                .zip(digests)
                .map(|((name, _), sha256)| (name.as_str(), sha256.as_str())),
        );
        let node = out.node.clone();
        let file = format!("{node}{BUNDLE_SUFFIX}");
        let prev = self.before.get(&node);
        let (generation, change) = match prev {
            Some(e) if e.rules_sha256 == rules_sha256 => (e.generation, Change::Unchanged),
            Some(e) => match opts.output.generation {
                Some(given) if given <= e.generation => {
                    return Err(BundleWriteError::GenerationNotGreater {
                        node,
                        given,
                        previous: e.generation,
                    });
                }
                given => (given.unwrap_or(self.next), Change::Changed),
            },
            None => (opts.output.generation.unwrap_or(self.next), Change::New),
        };
        let previous_generation = prev.map(|e| e.generation);
        let kept = match (change, self.keep_from, prev) {
            (Change::Unchanged, Some(from), Some(e)) => keep_file(
                from,
                opts.output.out,
                &file,
                &e.sha256,
                opts.output.issued_at,
            )?
            .then(|| e.sha256.clone()),
            _ => None,
        };
        let (sha256, renamed) = match kept {
            Some(sha256) => (sha256, false),
            None => {
                let files = out
                    .files
                    .iter()
                    .zip(digests)
                    .map(|((name, content), sha256)| BundleFile {
                        name: name.clone(),
                        sha256: sha256.clone(),
                        size: content.len() as u64,
                        content: content.clone(),
                    })
                    .collect();
                let payload = BundlePayload {
                    format: BUNDLE_FORMAT,
                    cluster: out.cluster.clone(),
                    node: node.clone(),
                    os: out.os,
                    backend: out.backend.clone(),
                    generation,
                    issued_at: self.issued_at.clone(),
                    expires_at: self.expires_at.clone(),
                    source: opts.source.clone(),
                    inventory_sha256: opts.inventory_sha256.clone(),
                    files,
                };
                let bytes = seal_bundle(&payload, opts.output.keys);
                drop(payload);
                write_tmp(opts.output.out, &file, &bytes)?;
                (sha256_hex(&bytes), true)
            }
        };
        Ok(Sealed {
            entry: IndexEntry {
                node: node.clone(),
                generation,
                sha256: sha256.clone(),
                rules_sha256,
            },
            written: NodeWritten {
                node,
                generation,
                previous_generation,
                change,
                sha256: Some(sha256),
            },
            file,
            renamed,
        })
    }

    /// Give up: remove the temporary files of `sealed` (nothing was renamed).
    pub fn abandon(self, sealed: Vec<Sealing>) {
        self.remove_tmp(&sealed);
    }

    fn remove_tmp<'s>(&self, sealed: impl IntoIterator<Item = &'s Sealing>) {
        for s in sealed {
            let _ = fs::remove_file(tmp_path(
                self.opts.output.out,
                &format!("{}{BUNDLE_SUFFIX}", s.node),
            ));
        }
    }

    /// Put every sealed bundle in place and write the index, then remove the
    /// bundles of nodes no longer compiled. If any node failed, nothing is
    /// renamed: the temporary files are removed and the first failure in
    /// node order is returned.
    pub fn finish(self, mut sealed: Vec<Sealing>) -> Result<WriteSummary, BundleWriteError> {
        sealed.sort_by(|a, b| a.node.cmp(&b.node));
        if sealed.iter().any(|s| s.result.is_err()) {
            self.remove_tmp(&sealed);
        }
        let done = sealed
            .into_iter()
            .map(|s| s.result)
            .collect::<Result<Vec<Sealed>, _>>()?;
        let opts = self.opts;
        let names: Vec<&str> = done
            .iter()
            .filter(|s| s.renamed)
            .map(|s| s.file.as_str())
            .collect();
        sync_data(opts.output.out, &names)?;
        for name in &names {
            rename(opts.output.out, name)?;
        }
        let current: BTreeSet<&str> = done.iter().map(|s| s.entry.node.as_str()).collect();
        let mut written = Vec::with_capacity(done.len());
        let mut entries = Vec::with_capacity(done.len());
        for (node, e) in &self.before {
            if current.contains(node.as_str()) {
                continue;
            }
            written.push(NodeWritten {
                node: node.clone(),
                generation: e.generation,
                previous_generation: Some(e.generation),
                change: Change::Removed,
                sha256: None,
            });
        }
        for s in done {
            entries.push(s.entry);
            written.push(s.written);
        }
        let index = seal_index(
            &IndexPayload {
                format: BUNDLE_FORMAT,
                issued_at: self.issued_at,
                source: opts.source.clone(),
                inventory_sha256: opts.inventory_sha256.clone(),
                nodes: entries,
            },
            opts.output.keys,
        );
        // The bundles' renames are durable with the index's data, before its rename.
        write_atomic(opts.output.out, INDEX_FILE, &index)?;
        for w in written.iter().filter(|w| w.change == Change::Removed) {
            let path = opts.output.out.join(format!("{}{BUNDLE_SUFFIX}", w.node));
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(PathError { path, err }.into()),
            }
        }
        // The renames and removals are durable only once the directory is synced.
        fs::File::open(opts.output.out)
            .and_then(|d| d.sync_all())
            .map_err(PathError::at(opts.output.out))?;
        written.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(WriteSummary {
            nodes: written,
            index_sha256: sha256_hex(&index),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;

    /// A kept bundle is linked into a new directory, stays where it is
    /// already linked, and replaces whatever else holds its name (a file, a
    /// symlink: never followed).
    #[test]
    fn a_kept_bundle_is_linked_over_whatever_holds_its_name() {
        let (from, to) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let bytes = b"bundle bytes";
        fs::write(from.path().join("n1.bundle"), bytes).unwrap();
        let sha = sha256_hex(bytes);
        let now = SystemTime::now();
        let ino = |p: &Path| fs::symlink_metadata(p).unwrap().ino();
        let (src, target) = (from.path().join("n1.bundle"), to.path().join("n1.bundle"));
        assert!(keep_file(from.path(), to.path(), "n1.bundle", &sha, now).unwrap());
        assert_eq!(ino(&target), ino(&src));
        // Again, as in a directory taken over: the same link stays.
        assert!(keep_file(from.path(), to.path(), "n1.bundle", &sha, now).unwrap());
        assert_eq!(ino(&target), ino(&src));
        let victim = to.path().join("victim");
        for occupant in ["file", "symlink"] {
            fs::remove_file(&target).unwrap();
            match occupant {
                "file" => fs::write(&target, b"stale").unwrap(),
                _ => {
                    fs::write(&victim, b"keep me").unwrap();
                    std::os::unix::fs::symlink(&victim, &target).unwrap();
                }
            }
            assert!(keep_file(from.path(), to.path(), "n1.bundle", &sha, now).unwrap());
            assert_eq!(ino(&target), ino(&src), "{occupant}");
        }
        assert_eq!(fs::read(&victim).unwrap(), b"keep me");
        // Another digest: not kept, nothing touched.
        assert!(!keep_file(from.path(), to.path(), "n1.bundle", &"0".repeat(64), now).unwrap());
    }
}
