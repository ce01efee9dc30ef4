//! `OUT/status.json`: what `watch` has done, for operators and for itself
//! (it resumes from it). Written through a temporary file, synced and
//! renamed, so a crash leaves the old state or the new one.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ringfence_bundle::PathError;
use serde::{Deserialize, Serialize};

/// Version of the status file format.
pub const STATUS_FORMAT: u32 = 1;
/// The status file's name in the publication directory.
pub const STATUS_FILE: &str = "status.json";
/// History entries kept (the oldest are dropped first).
pub const HISTORY_LIMIT: usize = 500;

/// The publisher's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Always [`STATUS_FORMAT`].
    pub format: u32,
    /// The repository followed (path or URL).
    pub repository: String,
    /// The branch followed.
    pub branch: String,
    /// The intent directory inside the repository.
    pub path: String,
    /// The last commit processed, published or not.
    pub last_processed: Option<String>,
    /// The last commit published.
    pub last_published: Option<Published>,
    /// The highest generation ever made current: the next is one more, so
    /// generations only grow, even after `current` was moved back by hand.
    #[serde(default)]
    pub highest_generation: u64,
    /// An inventory digest the last published commit failed to compile
    /// against (not retried until the inventory changes again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_inventory: Option<String>,
    /// Every commit processed, oldest first (at most [`HISTORY_LIMIT`]).
    pub history: Vec<Entry>,
}

impl Status {
    /// Nothing processed or published yet: the directory is not yet the
    /// publication of the source it names (a first run that failed before
    /// its first commit leaves such a file), so another source may take it.
    pub fn is_unused(&self) -> bool {
        self.last_processed.is_none()
            && self.last_published.is_none()
            && self.highest_generation == 0
            && self.history.is_empty()
    }
}

/// A published generation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// The commit.
    pub commit: String,
    /// The generation directory, `OUT/generations/<generation>`.
    pub generation: u64,
    /// When it was published (RFC 3339).
    pub published_at: String,
    /// The inventory it was compiled against (a change republishes).
    pub inventory_sha256: String,
    /// The issue time of the oldest bundle in it (unchanged nodes keep
    /// their bundle files; all are re-sealed when half the validity passed).
    pub oldest_issued_at: String,
}

/// What happened to one commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommitStatus {
    /// Its bundles are published.
    Published,
    /// It did not check, compile or render: nothing was published for it.
    Failed,
}

/// One history entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The commit.
    pub commit: String,
    /// Its subject line.
    pub summary: String,
    /// Published or failed.
    pub status: CommitStatus,
    /// When it was processed (RFC 3339).
    pub at: String,
    /// The generation published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// Nodes whose rules changed (new or changed bundles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes_changed: Option<usize>,
    /// Nodes rendered (the others came from the render cache).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes_rendered: Option<usize>,
    /// Why it failed, in one line; for a commit published again, why
    /// (`inventory changed`, `expiry refresh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The diagnostics, as `ringfence check --format json` writes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<serde_json::Value>,
}

/// Why the status file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] PathError),
    /// The file is not a status file of this version.
    #[error("{path}: not a ringfence watch status file ({err}); move it away to start afresh", path = .path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The parse error.
        err: serde_json::Error,
    },
}

impl Status {
    /// Read `dir/status.json`; `None` if there is none.
    pub fn read(dir: &Path) -> Result<Option<Status>, StatusError> {
        let path = dir.join(STATUS_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(PathError { path, err }.into()),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|err| StatusError::Malformed { path, err })
    }

    /// Write `dir/status.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<(), StatusError> {
        let path = dir.join(STATUS_FILE);
        let tmp = dir.join(format!(".{STATUS_FILE}.tmp"));
        let mut text = serde_json::to_vec_pretty(self).expect("a status always serialises");
        text.push(b'\n');
        let mut f = fs::File::create(&tmp).map_err(PathError::at(&tmp))?;
        f.write_all(&text).map_err(PathError::at(&tmp))?;
        f.sync_all().map_err(PathError::at(&tmp))?;
        fs::rename(&tmp, &path).map_err(PathError::at(&path))?;
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| PathError::at(dir)(e).into())
    }

    /// Append a history entry, dropping the oldest past the limit.
    pub fn record(&mut self, e: Entry) {
        self.history.push(e);
        if self.history.len() > HISTORY_LIMIT {
            let drop = self.history.len() - HISTORY_LIMIT;
            self.history.drain(..drop);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_a_foreign_file() {
        let dir = std::env::temp_dir().join(format!("rf-status-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(Status::read(&dir).unwrap().is_none());
        let mut s = Status {
            format: STATUS_FORMAT,
            repository: "r".into(),
            ..Status::default()
        };
        for i in 0..HISTORY_LIMIT + 3 {
            s.record(Entry {
                commit: i.to_string(),
                summary: String::new(),
                status: CommitStatus::Published,
                at: String::new(),
                generation: None,
                nodes_changed: None,
                nodes_rendered: None,
                reason: None,
                diagnostics: None,
            });
        }
        assert_eq!(s.history.len(), HISTORY_LIMIT);
        assert_eq!(s.history[0].commit, "3");
        s.write(&dir).unwrap();
        assert_eq!(Status::read(&dir).unwrap(), Some(s));

        std::fs::write(dir.join(STATUS_FILE), "{\"format\": 1}").unwrap();
        let e = Status::read(&dir).unwrap_err();
        assert!(matches!(e, StatusError::Malformed { .. }), "{e}");
        assert!(e.to_string().contains("move it away"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
