//! Live inventory for `watch`: one cluster kept current from a stream of
//! watch events, and per node a signed membership chain next to the
//! generations (`schema/docs/membership.md`):
//!
//! ```text
//! OUT/membership/<node>/snapshot       the newest snapshot
//! OUT/membership/<node>/<seq>.delta    the deltas after it, chained
//! OUT/membership/<node>/head           the newest sequence (a hint, not signed)
//! OUT/generations/<n>/membership       -> ../../membership (so `current/` has it)
//! ```
//!
//! A file is written whole under a temporary name and renamed into place;
//! `head` is written last, so a reader that sees sequence `s` there finds
//! every document up to `s`. A snapshot starts a chain: for a node's first
//! document, for a new bundle generation, after a restart of `watch`, and
//! when half the documents' validity has passed. Older deltas are removed
//! then (an agent that missed them takes the snapshot).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, SystemTime};

use ringfence_bundle::{SigningKey, format_time, seal_delta, seal_snapshot};
use ringfence_schema::membership::{DeltaPayload, MEMBERSHIP_FORMAT, Membership, SnapshotPayload};

/// The membership directory, in `OUT` and (as a link) in each generation.
pub const MEMBERSHIP: &str = "membership";
/// A node's newest snapshot.
pub const SNAPSHOT_FILE: &str = "snapshot";
/// A node's newest sequence number.
pub const HEAD_FILE: &str = "head";
/// How long the stream must be quiet before the first list is complete.
const QUIET: Duration = Duration::from_millis(150);

/// The file name of delta `seq`.
pub fn delta_file(seq: u64) -> String {
    format!("{seq}.delta")
}

/// Lines of a watch-event stream, read by a thread: a file is followed as
/// it grows (like `tail -f`); `-` is standard input, until it ends.
pub struct EventReader {
    rx: Receiver<String>,
    ended: bool,
}

/// What the reader has.
pub enum Feed {
    /// Lines, in order.
    Lines(Vec<String>),
    /// Nothing came for a while (after a wait) or the stream ended.
    Quiet {
        /// Standard input was closed.
        ended: bool,
    },
}

impl EventReader {
    /// Start reading `path` (`-`: standard input).
    pub fn spawn(path: &Path) -> std::io::Result<EventReader> {
        let (tx, rx) = mpsc::channel();
        let input: Box<dyn Read + Send> = if path == Path::new("-") {
            Box::new(std::io::stdin())
        } else {
            Box::new(fs::File::open(path)?)
        };
        let follow = path != Path::new("-");
        std::thread::spawn(move || {
            let mut r = BufReader::new(input);
            let mut line = String::new();
            loop {
                match r.read_line(&mut line) {
                    Ok(0) if follow => std::thread::sleep(Duration::from_millis(20)),
                    Ok(0) | Err(_) => return,
                    // A line still being written waits for its end.
                    Ok(_) if !line.ends_with('\n') && follow => {}
                    Ok(_) => {
                        if tx.send(std::mem::take(&mut line)).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(EventReader { rx, ended: false })
    }

    /// Every line available now; with `wait`, wait that long for one first.
    pub fn take(&mut self, wait: Duration) -> Feed {
        let mut lines = Vec::new();
        loop {
            match self.rx.try_recv() {
                Ok(l) => lines.push(l),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.ended = true;
                    break;
                }
            }
        }
        if !lines.is_empty() {
            return Feed::Lines(lines);
        }
        if self.ended || wait.is_zero() {
            return Feed::Quiet { ended: self.ended };
        }
        match self.rx.recv_timeout(wait) {
            Ok(l) => Feed::Lines(vec![l]),
            Err(RecvTimeoutError::Timeout) => Feed::Quiet { ended: false },
            Err(RecvTimeoutError::Disconnected) => {
                self.ended = true;
                Feed::Quiet { ended: true }
            }
        }
    }

    /// How long to wait for the first list to be complete.
    pub fn quiet() -> Duration {
        QUIET
    }
}

/// One node's chain as last written.
struct Chain {
    generation: u64,
    sequence: u64,
    digest: String,
    membership: Membership,
    issued: SystemTime,
}

/// What was written for a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Written {
    /// A snapshot at this sequence.
    Snapshot(u64),
    /// A delta at this sequence, of this many bytes.
    Delta(u64, usize),
}

/// The membership chains of every node, written into `OUT/membership`.
pub struct Chains {
    dir: PathBuf,
    keys: Vec<SigningKey>,
    expires: Duration,
    chains: HashMap<String, Chain>,
    /// Per node, the sequence found in `head` at start (a restart goes on
    /// after it).
    floor: HashMap<String, u64>,
}

impl Chains {
    /// The chains under `out`, going on after the sequences published before.
    pub fn open(out: &Path, keys: Vec<SigningKey>, expires: Duration) -> std::io::Result<Chains> {
        let dir = out.join(MEMBERSHIP);
        fs::create_dir_all(&dir)?;
        let mut floor = HashMap::new();
        for e in fs::read_dir(&dir)? {
            let e = e?;
            let head = e.path().join(HEAD_FILE);
            if let Ok(text) = fs::read_to_string(&head)
                && let Ok(n) = text.trim().parse::<u64>()
            {
                floor.insert(e.file_name().to_string_lossy().into_owned(), n);
            }
        }
        Ok(Chains {
            dir,
            keys,
            expires,
            chains: HashMap::new(),
            floor,
        })
    }

    /// Each node's head as found at start.
    pub fn heads(&self) -> impl Iterator<Item = (&str, u64)> {
        self.floor.iter().map(|(n, h)| (n.as_str(), *h))
    }

    /// The membership directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bring node `node` (of `cluster`, bundle generation `generation`) to
    /// membership `m`: nothing if its chain has it, else a delta, or a
    /// snapshot when the chain cannot go on (see the module doc).
    pub fn publish(
        &mut self,
        cluster: &str,
        node: &str,
        generation: u64,
        m: &Membership,
        now: SystemTime,
    ) -> std::io::Result<Option<Written>> {
        let issued_at = format_time(now).ok_or_else(clock)?;
        let expires_at = format_time(now + self.expires).ok_or_else(clock)?;
        let keys: Vec<&SigningKey> = self.keys.iter().collect();
        let node_dir = self.dir.join(node);
        let half = self.expires / 2;
        match self.chains.get_mut(node) {
            Some(c)
                if c.generation == generation
                    && now.duration_since(c.issued).unwrap_or_default() < half =>
            {
                if c.membership == *m {
                    return Ok(None);
                }
                let p = DeltaPayload {
                    format: MEMBERSHIP_FORMAT,
                    cluster: cluster.to_string(),
                    node: node.to_string(),
                    generation,
                    sequence: c.sequence + 1,
                    previous: c.digest.clone(),
                    issued_at,
                    expires_at,
                    changes: Membership::diff(&c.membership, m),
                };
                let (bytes, digest) = seal_delta(&p, &keys);
                write_atomic(&node_dir, &delta_file(p.sequence), &bytes)?;
                write_atomic(&node_dir, HEAD_FILE, format!("{}\n", p.sequence).as_bytes())?;
                c.sequence = p.sequence;
                c.digest = digest;
                c.membership = m.clone();
                Ok(Some(Written::Delta(p.sequence, bytes.len())))
            }
            _ => {
                // Past any delta a crash left behind `head`: an agent may
                // read it, and must never find two documents of one sequence.
                let before = self
                    .chains
                    .get(node)
                    .map(|c| c.sequence)
                    .or_else(|| self.floor.get(node).copied())
                    .unwrap_or(0)
                    .max(highest_delta(&node_dir)?);
                let p = SnapshotPayload {
                    format: MEMBERSHIP_FORMAT,
                    cluster: cluster.to_string(),
                    node: node.to_string(),
                    generation,
                    sequence: before + 1,
                    issued_at,
                    expires_at,
                    membership: m.clone(),
                };
                let (bytes, digest) = seal_snapshot(&p, &keys);
                fs::create_dir_all(&node_dir)?;
                write_atomic(&node_dir, SNAPSHOT_FILE, &bytes)?;
                write_atomic(&node_dir, HEAD_FILE, format!("{}\n", p.sequence).as_bytes())?;
                // Deltas before the snapshot lead nowhere now.
                for e in fs::read_dir(&node_dir)? {
                    let path = e?.path();
                    if path.extension().is_some_and(|x| x == "delta") {
                        fs::remove_file(&path)?;
                    }
                }
                self.chains.insert(
                    node.to_string(),
                    Chain {
                        generation,
                        sequence: p.sequence,
                        digest,
                        membership: m.clone(),
                        issued: now,
                    },
                );
                Ok(Some(Written::Snapshot(p.sequence)))
            }
        }
    }

    /// Link `membership` into a generation directory being written.
    pub fn link_into(generation_dir: &Path) -> std::io::Result<()> {
        let link = generation_dir.join(MEMBERSHIP);
        match fs::symlink_metadata(&link) {
            Ok(_) => Ok(()),
            Err(_) => std::os::unix::fs::symlink(Path::new("../..").join(MEMBERSHIP), &link),
        }
    }
}

/// The highest sequence of a delta file in `dir` (0: none, or no `dir`).
fn highest_delta(dir: &Path) -> std::io::Result<u64> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut highest = 0;
    for e in entries {
        let name = e?.file_name();
        if let Some(n) = name.to_str().and_then(|n| n.strip_suffix(".delta"))
            && let Ok(n) = n.parse::<u64>()
        {
            highest = highest.max(n);
        }
    }
    Ok(highest)
}

fn clock() -> std::io::Error {
    std::io::Error::other("the clock reads a time documents cannot record")
}

/// Write `name` in `dir` whole: a temporary file, synced, renamed.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(name))
}

/// Counts of what following the stream did, for the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Followed {
    /// Events read.
    pub events: usize,
    /// Pods changed.
    pub pods: usize,
    /// Nodes sent membership, by the kind of document.
    pub written: BTreeMap<String, Written>,
    /// Nodes re-rendered for a pod that needs rules they lack.
    pub rerendered: Vec<String>,
}
