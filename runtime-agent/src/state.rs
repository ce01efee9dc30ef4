//! The state directory: the one module that writes it.
//!
//! ```text
//! <state>/current.json      the commit point: which bundle is in force, its
//!                           generation, and the table snapshot taken right
//!                           after it was confirmed
//! <state>/bundles/          verified bundle files (the current one and the
//!                           two before it)
//! <state>/staged/           the rule files of the bundle being applied
//! <state>/report.json       the last compliance report
//! <state>/membership.json   the last membership document applied: its
//!                           generation, sequence, digest and the membership
//! <state>/lock              held (flock) by the one agent using the directory
//! ```
//!
//! One agent per directory: [`StateDir::open`] takes an exclusive lock that
//! lives as long as the process, and a second agent on the same directory
//! stops at start ([`StateDir::inspect`], for `status`, reads without it).
//! Files are read capped and only when regular.
//!
//! Every file is replaced atomically: write a temporary file, fsync it,
//! rename it over the old one, fsync the directory. `current.json` is written
//! only after a confirmed apply, so a crash at any point leaves either the
//! old or the new commit, never a mix; the snapshot travels inside it for
//! the same reason.
//!
//! `membership.json` alone is replaced atomically but not synced: it changes
//! with every pod event, and two syncs each time would cap how fast a node
//! follows the cluster. Nothing is lost by it. A process restart reads it
//! from the page cache. After a power loss the kernel's sets are empty and
//! the record is behind the cluster however it was written, and an older,
//! torn or missing record only makes the agent take a fresh snapshot, or
//! follow on from an older sequence.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ringfence_bundle::{MAX_BUNDLE_BYTES, read_capped};
use ringfence_schema::membership::Membership;

use serde::{Deserialize, Serialize};

use crate::live::Snapshot;

/// What `current.json` records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Current {
    /// The bundle file, relative to the state directory.
    pub bundle: String,
    /// Its generation: the lowest an agent accepts from now on.
    pub generation: u64,
    /// Hex SHA-256 of the bundle file.
    pub bundle_sha256: String,
    /// Digest of its rules (`ringfence_bundle::rules_sha256`).
    pub rules_sha256: String,
    /// When it was applied (RFC 3339).
    pub applied_at: String,
    /// Our table as read back right after the apply was confirmed.
    pub snapshot: Snapshot,
}

/// What `membership.json` records: the last membership document applied,
/// so a restart continues its chain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberCommit {
    /// The bundle generation it fills.
    pub generation: u64,
    /// Its sequence: nothing at or below it is accepted again.
    pub sequence: u64,
    /// Hex SHA-256 of its payload (what the next delta names).
    pub digest: String,
    /// When it was issued (RFC 3339).
    pub issued_at: String,
    /// When it was applied (RFC 3339).
    pub applied_at: String,
    /// The membership it leads to.
    pub membership: Membership,
}

/// A state-directory operation failed.
#[derive(Debug, thiserror::Error)]
#[error("state directory: {path}: {err}", path = .path.display())]
pub struct StateError {
    /// The file or directory.
    pub path: PathBuf,
    /// What went wrong.
    pub err: String,
}

fn err(path: &Path, e: impl ToString) -> StateError {
    StateError {
        path: path.to_path_buf(),
        err: e.to_string(),
    }
}

/// An opened state directory.
#[derive(Clone, Debug)]
pub struct StateDir {
    root: PathBuf,
    /// The exclusive lock, released when the last clone is dropped.
    _lock: Option<Arc<fs::File>>,
}

/// The largest `current.json` read (it holds the snapshot of a table).
const MAX_CURRENT_BYTES: u64 = 256 << 20;

/// How many bundle files to keep (the current one included).
const KEEP_BUNDLES: usize = 3;

impl StateDir {
    /// Open (and create) a state directory and lock it for this process.
    pub fn open(root: &Path) -> Result<Self, StateError> {
        for d in [root.to_path_buf(), root.join("bundles")] {
            fs::create_dir_all(&d).map_err(|e| err(&d, e))?;
        }
        let path = root.join("lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| err(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(err(
                    &path,
                    "in use by another ringfence-agent: give each agent its own --state directory",
                ));
            }
            Err(fs::TryLockError::Error(e)) => return Err(err(&path, e)),
        }
        Ok(StateDir {
            root: root.to_path_buf(),
            _lock: Some(Arc::new(file)),
        })
    }

    /// A state directory to read only (`status`): no lock, nothing created.
    pub fn inspect(root: &Path) -> Self {
        StateDir {
            root: root.to_path_buf(),
            _lock: None,
        }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of `current.json`.
    pub fn current_path(&self) -> PathBuf {
        self.root.join("current.json")
    }

    /// Path of `membership.json`.
    pub fn membership_path(&self) -> PathBuf {
        self.root.join("membership.json")
    }

    /// The last membership document applied, if any.
    pub fn membership(&self) -> Result<Option<MemberCommit>, StateError> {
        read_json(&self.membership_path())
    }

    /// Record an applied membership document (atomically, not synced: see
    /// the module doc).
    pub fn commit_membership(&self, m: &MemberCommit) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(m).map_err(|e| err(&self.root, e))?;
        replace(&self.membership_path(), &bytes, false)
    }

    /// Path of `report.json`.
    pub fn report_path(&self) -> PathBuf {
        self.root.join("report.json")
    }

    /// The commit in force, if any.
    pub fn current(&self) -> Result<Option<Current>, StateError> {
        read_json(&self.current_path())
    }

    /// Read a stored bundle file (a path from [`Current::bundle`]).
    pub fn read_bundle(&self, rel: &str) -> Result<Vec<u8>, StateError> {
        let p = self.root.join(rel);
        read_capped(&p, MAX_BUNDLE_BYTES as u64 + 1).map_err(|e| err(&p, e))
    }

    /// The highest generation among the stored bundle files (their names
    /// start with it): a floor that survives a lost or corrupt
    /// `current.json`, since only verified bundles are ever stored.
    pub fn stored_floor(&self) -> Option<u64> {
        let dir = self.root.join("bundles");
        fs::read_dir(&dir)
            .ok()?
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                let (generation, rest) = name.split_once('-')?;
                (generation.len() == 20 && rest.ends_with(".bundle"))
                    .then(|| generation.parse().ok())?
            })
            .max()
    }

    /// Store a verified bundle's bytes durably; returns its relative path.
    pub fn store_bundle(
        &self,
        generation: u64,
        sha256: &str,
        bytes: &[u8],
    ) -> Result<String, StateError> {
        let rel = format!("bundles/{generation:020}-{}.bundle", &sha256[..16]);
        write_atomic(&self.root.join(&rel), bytes)?;
        Ok(rel)
    }

    /// Write `files` (name, content) into a fresh `staged/` directory.
    pub fn stage<'a>(
        &self,
        files: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<PathBuf, StateError> {
        let dir = self.root.join("staged");
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(&dir, e)),
        }
        fs::create_dir_all(&dir).map_err(|e| err(&dir, e))?;
        for (name, content) in files {
            // Names come from a verified bundle, `[a-z0-9._-]+`; refuse anything
            // that could leave the directory all the same.
            if name.is_empty() || name.starts_with('.') || name.contains('/') {
                return Err(err(&dir.join(name), "not a plain file name"));
            }
            let p = dir.join(name);
            fs::write(&p, content).map_err(|e| err(&p, e))?;
        }
        Ok(dir)
    }

    /// Switch the commit pointer: the new current bundle and its snapshot.
    /// Older bundle files beyond the last few are then removed.
    pub fn commit(&self, current: &Current) -> Result<(), StateError> {
        let bytes = serde_json::to_vec_pretty(current).map_err(|e| err(&self.root, e))?;
        write_atomic(&self.current_path(), &bytes)?;
        self.prune(&current.bundle);
        Ok(())
    }

    /// Write the last report.
    pub fn write_report(&self, json: &[u8]) -> Result<(), StateError> {
        write_atomic(&self.report_path(), json)
    }

    /// Keep the newest bundle files (names sort by generation) and the current one.
    fn prune(&self, keep: &str) {
        let dir = self.root.join("bundles");
        let Ok(rd) = fs::read_dir(&dir) else { return };
        let mut names: Vec<String> = rd
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".bundle"))
            .collect();
        names.sort();
        let old = names.len().saturating_sub(KEEP_BUNDLES);
        for n in &names[..old] {
            if format!("bundles/{n}") != keep {
                // Best effort: a leftover file costs disk, not correctness.
                let _ = fs::remove_file(dir.join(n));
            }
        }
    }
}

/// The JSON document at `p`, or `None` if there is no file.
fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> Result<Option<T>, StateError> {
    match read_capped(p, MAX_CURRENT_BYTES) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| err(p, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err(p, e)),
    }
}

/// Replace `path` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    replace(path, bytes, true)
}

/// Replace `path` atomically: a reader finds the old bytes or the new,
/// never a mix. `durable`: also on disk before this returns (file and
/// directory synced), so a power loss keeps it.
fn replace(path: &Path, bytes: &[u8], durable: bool) -> Result<(), StateError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| err(path, "no file name"))?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = fs::File::create(&tmp).map_err(|e| err(&tmp, e))?;
    f.write_all(bytes).map_err(|e| err(&tmp, e))?;
    if durable {
        f.sync_all().map_err(|e| err(&tmp, e))?;
    }
    drop(f);
    fs::rename(&tmp, path).map_err(|e| err(path, e))?;
    if !durable {
        return Ok(());
    }
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| err(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rf-state-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn commit_round_trips_and_prunes_old_bundles() {
        let root = tmp("commit");
        let s = StateDir::open(&root).unwrap();
        assert_eq!(s.current().unwrap(), None);
        let mut last = String::new();
        for g in 1..=5u64 {
            last = s.store_bundle(g, &"ab".repeat(32), b"x").unwrap();
            let c = Current {
                bundle: last.clone(),
                generation: g,
                bundle_sha256: "ab".repeat(32),
                rules_sha256: "cd".repeat(32),
                applied_at: "2026-01-01T00:00:00Z".into(),
                snapshot: Snapshot::default(),
            };
            s.commit(&c).unwrap();
            assert_eq!(s.current().unwrap(), Some(c));
        }
        let left = fs::read_dir(root.join("bundles")).unwrap().count();
        assert_eq!(left, KEEP_BUNDLES);
        assert_eq!(s.read_bundle(&last).unwrap(), b"x");
        // No temporary file is left behind.
        assert!(!root.join(".current.json.tmp").exists());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn stage_refuses_paths_and_a_corrupt_pointer_names_the_file() {
        let root = tmp("stage");
        let s = StateDir::open(&root).unwrap();
        let dir = s.stage([("rules.nft", "x")]).unwrap();
        assert_eq!(fs::read_to_string(dir.join("rules.nft")).unwrap(), "x");
        assert!(s.stage([("../evil", "x")]).is_err());
        fs::write(s.current_path(), "{").unwrap();
        let e = s.current().unwrap_err().to_string();
        assert!(e.contains("current.json"), "{e}");
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn one_agent_per_directory_and_the_floor_outlives_current_json() {
        let root = tmp("lock");
        let s = StateDir::open(&root).unwrap();
        let e = StateDir::open(&root).unwrap_err().to_string();
        assert!(e.contains("in use by another ringfence-agent"), "{e}");
        // `status` reads without the lock.
        assert_eq!(StateDir::inspect(&root).current().unwrap(), None);
        assert_eq!(s.stored_floor(), None);
        s.store_bundle(7, &"ab".repeat(32), b"x").unwrap();
        s.store_bundle(12, &"cd".repeat(32), b"y").unwrap();
        fs::write(root.join("bundles/junk-1.bundle"), "").unwrap();
        assert_eq!(s.stored_floor(), Some(12));
        drop(s);
        assert!(
            StateDir::open(&root).is_ok(),
            "released with the last handle"
        );
        fs::remove_dir_all(&root).unwrap();
    }
}
