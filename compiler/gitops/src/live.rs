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
//! A snapshot is written whole under a temporary name and renamed into
//! place; a delta is written under its own new name (a reader takes deltas
//! up to `head` only); `head` is rewritten in place, last, so a reader that
//! sees sequence `s` there finds every document up to `s`. (A read racing
//! that write may see a mix of the old and new number: `head` is a hint; an
//! agent misled by it finds no such delta, the snapshot no newer than what
//! it has, and goes on at its next poll.) A
//! snapshot starts a chain: for a node's first document, for a new bundle
//! generation, after a restart of `watch`, and when half the documents'
//! validity has passed. Older deltas are removed then (an agent that missed
//! them takes the snapshot).
//!
//! Nothing is fsynced: membership is rebuilt from the live cluster after any
//! restart, which starts every chain again with a snapshot past the old
//! `head` (and past any delta found), so a document a crash lost or tore
//! costs an agent one snapshot (a torn one fails its signature check), never
//! a wrong state. A batch's documents are sealed and written in parallel,
//! and announced to long polls once all are in place.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, SystemTime};

use rayon::prelude::*;
use ringfence_bundle::{SigningKey, format_time, seal_delta, seal_snapshot};
use ringfence_schema::membership::{
    Changes, DeltaPayload, MEMBERSHIP_FORMAT, Membership, SnapshotPayload,
};

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

/// One node's chain as last written: no membership (the live state has
/// it), only what the next document links to.
struct Chain {
    generation: u64,
    sequence: u64,
    digest: String,
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

/// What a node is sent.
#[derive(Clone, Debug)]
pub enum Next {
    /// These changes, as a delta when its chain goes on (else a snapshot).
    Changes(Changes),
    /// A snapshot.
    Whole,
}

/// A node's next document.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// The node.
    pub node: String,
    /// Its cluster.
    pub cluster: String,
    /// The bundle generation the document extends.
    pub generation: u64,
    /// What it is sent.
    pub next: Next,
}

/// A document to seal, decided from the chain before sealing.
enum ToSeal {
    Delta {
        sequence: u64,
        previous: String,
        changes: Changes,
    },
    /// After sequence `before` (or any delta a crash left behind `head`).
    Snapshot { before: u64 },
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

    /// Whether `node`'s chain goes on with a delta for bundle generation
    /// `generation` at `now` (else it starts again with a snapshot: see the
    /// module doc).
    pub fn continues(&self, node: &str, generation: u64, now: SystemTime) -> bool {
        self.chains.get(node).is_some_and(|c| {
            c.generation == generation
                && now.duration_since(c.issued).unwrap_or_default() < self.expires / 2
        })
    }

    /// Write each node's next document: a delta of its changes when its
    /// chain goes on, else a snapshot of `whole(node)` (its membership now).
    /// Empty changes write nothing. Documents are sealed and written in
    /// parallel; returns what was written, in `batch` order.
    pub fn publish(
        &mut self,
        batch: Vec<Outgoing>,
        now: SystemTime,
        whole: impl Fn(&str) -> Option<Membership> + Sync,
    ) -> std::io::Result<Vec<(String, Written)>> {
        let issued_at = format_time(now).ok_or_else(clock)?;
        let expires_at = format_time(now + self.expires).ok_or_else(clock)?;
        let plans: Vec<(Outgoing, ToSeal)> = batch
            .into_iter()
            .filter_map(|mut s| {
                let chain = self.chains.get(&s.node);
                let plan = match std::mem::replace(&mut s.next, Next::Whole) {
                    Next::Changes(c) if c.is_empty() => return None,
                    Next::Changes(changes) if self.continues(&s.node, s.generation, now) => {
                        let c = chain.expect("a chain that goes on exists");
                        ToSeal::Delta {
                            sequence: c.sequence + 1,
                            previous: c.digest.clone(),
                            changes,
                        }
                    }
                    _ => ToSeal::Snapshot {
                        before: chain
                            .map(|c| c.sequence)
                            .or_else(|| self.floor.get(&s.node).copied())
                            .unwrap_or(0),
                    },
                };
                Some((s, plan))
            })
            .collect();
        let keys: Vec<&SigningKey> = self.keys.iter().collect();
        let dir = &self.dir;
        type Sealed = Result<(Outgoing, u64, String, Written), (String, u64, std::io::Error)>;
        let sealed: Vec<Sealed> = plans
            .into_par_iter()
            .map(|(s, plan)| {
                let node_dir = dir.join(&s.node);
                // On a failure: the node and the highest sequence it may
                // have reached on disk.
                let failed = |at: u64| {
                    let node = s.node.clone();
                    move |e| (node, at, e)
                };
                match plan {
                    ToSeal::Delta {
                        sequence,
                        previous,
                        changes,
                    } => {
                        let p = DeltaPayload {
                            format: MEMBERSHIP_FORMAT,
                            cluster: s.cluster.clone(),
                            node: s.node.clone(),
                            generation: s.generation,
                            sequence,
                            previous,
                            issued_at: issued_at.clone(),
                            expires_at: expires_at.clone(),
                            changes,
                        };
                        let (bytes, digest) = seal_delta(&p, &keys);
                        fs::write(node_dir.join(delta_file(sequence)), &bytes)
                            .and_then(|()| write_head(&node_dir, sequence))
                            .map_err(failed(sequence))?;
                        Ok((s, sequence, digest, Written::Delta(sequence, bytes.len())))
                    }
                    ToSeal::Snapshot { before } => {
                        let membership = whole(&s.node).ok_or_else(|| {
                            failed(before)(std::io::Error::other(format!(
                                "no membership for node {}",
                                s.node
                            )))
                        })?;
                        // Past any delta a crash left behind `head`: an agent
                        // may read it, and must never find two documents of
                        // one sequence.
                        let sequence =
                            before.max(highest_delta(&node_dir).map_err(failed(before))?) + 1;
                        let p = SnapshotPayload {
                            format: MEMBERSHIP_FORMAT,
                            cluster: s.cluster.clone(),
                            node: s.node.clone(),
                            generation: s.generation,
                            sequence,
                            issued_at: issued_at.clone(),
                            expires_at: expires_at.clone(),
                            membership,
                        };
                        let (bytes, digest) = seal_snapshot(&p, &keys);
                        drop(p);
                        write_snapshot(&node_dir, sequence, &bytes).map_err(failed(sequence))?;
                        Ok((s, sequence, digest, Written::Snapshot(sequence)))
                    }
                }
            })
            .collect();
        let mut out = Vec::with_capacity(sealed.len());
        let mut first_error = None;
        for r in sealed {
            match r {
                Ok((s, sequence, digest, w)) => {
                    self.chains.insert(
                        s.node.clone(),
                        Chain {
                            generation: s.generation,
                            sequence,
                            digest,
                            issued: match w {
                                Written::Snapshot(_) => now,
                                Written::Delta(..) => self.chains[&s.node].issued,
                            },
                        },
                    );
                    out.push((s.node, w));
                }
                Err((node, at, e)) => {
                    // The node starts again with a snapshot, past whatever
                    // may have been written.
                    self.chains.remove(&node);
                    let floor = self.floor.entry(node).or_default();
                    *floor = (*floor).max(at);
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(out),
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

/// Write node directory `dir`'s snapshot at `sequence`: the snapshot, its
/// `head`, then the deltas before it go (they lead nowhere now).
fn write_snapshot(dir: &Path, sequence: u64, bytes: &[u8]) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    write_atomic(dir, SNAPSHOT_FILE, bytes)?;
    write_head(dir, sequence)?;
    for e in fs::read_dir(dir)? {
        let path = e?.path();
        if path.extension().is_some_and(|x| x == "delta") {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Point `dir`'s `head` at `sequence`, rewriting the file in place: a
/// node's sequences only grow, so the new number covers the old one. A new
/// file renamed over the old one per delta cost the file system an inode, a
/// block allocation and the old inode's eviction (with a discard where the
/// disk takes them) for every node of every batch. A missing head, or a
/// longer one (never written by us), is replaced whole.
fn write_head(dir: &Path, sequence: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let text = format!("{sequence}\n");
    match fs::OpenOptions::new().write(true).open(dir.join(HEAD_FILE)) {
        Ok(f) if f.metadata()?.len() <= text.len() as u64 => f.write_all_at(text.as_bytes(), 0),
        _ => write_atomic(dir, HEAD_FILE, text.as_bytes()),
    }
}

/// Write `name` in `dir` whole: a temporary file renamed into place. Not
/// synced: see the module doc.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `head` keeps its inode while its number grows (in place), and a head
    /// longer than the new number is replaced whole, never left with a tail.
    #[test]
    fn head_is_rewritten_in_place_and_never_keeps_a_tail() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let head = dir.path().join(HEAD_FILE);
        let read = || fs::read_to_string(&head).unwrap();
        write_head(dir.path(), 9).unwrap();
        let inode = fs::metadata(&head).unwrap().ino();
        for (n, text) in [(10, "10\n"), (11, "11\n"), (1000, "1000\n")] {
            write_head(dir.path(), n).unwrap();
            assert_eq!(read(), text);
            assert_eq!(fs::metadata(&head).unwrap().ino(), inode);
        }
        fs::write(&head, "123456789\n").unwrap();
        write_head(dir.path(), 1001).unwrap();
        assert_eq!(read(), "1001\n");
    }
}
