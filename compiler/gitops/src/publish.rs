//! The publication directory `OUT` that agents read:
//!
//! ```text
//! OUT/current -> generations/<n>    what agents read (a symlink)
//! OUT/generations/<n>/              <node>.bundle files and index.json
//! OUT/status.json                   what watch has done (see `status`)
//! OUT/.mirror/                      bare mirror of a remote repository
//! OUT/.lock                         held by the running watch
//! ```
//!
//! A generation is written completely into `generations/<n>.tmp/` (every
//! file synced, by the driver's bundle writer), renamed to `generations/<n>/`
//! and only then made current by replacing the `current` symlink through a
//! rename, so a reader resolving `current` finds one whole generation. The
//! bundle writer runs against a copy of the previous generation's signed
//! index, so a node whose rules did not change keeps its bundle generation
//! — and its bundle file, hard-linked, unless everything is re-sealed to
//! renew the expiry —; a changed or new node gets `n`, the publication
//! number, which grows with every publication.
//!
//! The directory of the oldest generation beyond those kept is not removed
//! but becomes the new one's: its index and its entries not in the previous
//! generation are removed, and a bundle file that is still the previous
//! generation's (the same hard link) stays, so a publication that re-renders
//! a few nodes touches a few names instead of linking every node's bundle
//! anew and unlinking as many. Nothing in it is written in place: a file is replaced
//! by a rename or a new link, since its bundles are shared with the
//! generations kept.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use ringfence_bundle::PathError;
use ringfence_driver::bundles::{INDEX_FILE, WriteSummary};
use ringfence_driver::{DriverError, Warned};

/// The directory of generations.
pub const GENERATIONS: &str = "generations";
/// The symlink to the current generation.
pub const CURRENT: &str = "current";
/// Suffix of a generation being written.
const TMP: &str = ".tmp";

/// A test-only fault injection point: the process aborts there, as a crash
/// would (`RINGFENCE_WATCH_FAILPOINT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failpoint {
    /// After the generation is written, before it is renamed into place.
    BeforeRename,
    /// After the rename, before `current` is switched.
    BeforeSwitch,
    /// After the switch, before the status file records it.
    BeforeStatus,
}

impl std::str::FromStr for Failpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "before-rename" => Ok(Failpoint::BeforeRename),
            "before-switch" => Ok(Failpoint::BeforeSwitch),
            "before-status" => Ok(Failpoint::BeforeStatus),
            _ => Err(format!(
                "unknown failpoint `{s}` (before-rename, before-switch, before-status)"
            )),
        }
    }
}

/// Abort the process if `at` is the armed failpoint.
pub(crate) fn failpoint(armed: Option<Failpoint>, at: Failpoint) {
    if armed == Some(at) {
        // A crash, not an error: no destructor, no cleanup.
        std::process::abort();
    }
}

/// Why publishing failed. The current generation is untouched.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Sealing refused or failed.
    #[error(transparent)]
    Seal(#[from] DriverError),
    /// `current` is not a symlink to a generation.
    #[error(
        "{path}: not a symlink to generations/<n>; it is managed by ringfence watch, move it away",
        path = .0.display()
    )]
    Current(PathBuf),
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] PathError),
}

fn sync_dir(dir: &Path) -> Result<(), PublishError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| PathError::at(dir)(e).into())
}

/// The publication directory.
#[derive(Clone, Debug)]
pub struct Publication {
    out: PathBuf,
}

/// What one publication wrote.
#[derive(Debug)]
pub struct Generation {
    /// Its number.
    pub number: u64,
    /// Its directory.
    pub dir: PathBuf,
    /// What the bundle writer did per node.
    pub summary: WriteSummary,
    /// The older generation whose directory it took over (gone, as pruned).
    pub reused: Option<u64>,
}

impl Publication {
    /// The publication directory `out` (created on first publication).
    pub fn new(out: &Path) -> Publication {
        Publication {
            out: out.to_path_buf(),
        }
    }

    /// `OUT/generations/<n>`.
    pub fn dir(&self, n: u64) -> PathBuf {
        self.out.join(GENERATIONS).join(n.to_string())
    }

    /// The generation `current` points to, if any.
    pub fn current(&self) -> Result<Option<u64>, PublishError> {
        let link = self.out.join(CURRENT);
        let target = match fs::read_link(&link) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(_) => return Err(PublishError::Current(link)),
        };
        target
            .strip_prefix(GENERATIONS)
            .ok()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse().ok())
            .map(Some)
            .ok_or(PublishError::Current(link))
    }

    /// Generation numbers present, ascending, and leftover `*.tmp` names.
    fn list(&self) -> Result<(Vec<u64>, Vec<String>), PublishError> {
        let gens = self.out.join(GENERATIONS);
        let entries = match fs::read_dir(&gens) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
            Err(e) => return Err(PathError::at(&gens)(e).into()),
        };
        let (mut numbers, mut tmps) = (Vec::new(), Vec::new());
        for e in entries {
            let name = e.map_err(PathError::at(&gens))?.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(TMP) {
                tmps.push(name.into_owned());
            } else if let Ok(n) = name.parse::<u64>() {
                numbers.push(n);
            }
        }
        numbers.sort_unstable();
        tmps.sort();
        Ok((numbers, tmps))
    }

    /// After a crash: remove half-written `*.tmp` generations and complete
    /// generations that never became current (numbers above it). Returns
    /// what was removed.
    pub fn recover(&self) -> Result<Vec<String>, PublishError> {
        let current = self.current()?;
        let (numbers, tmps) = self.list()?;
        let gens = self.out.join(GENERATIONS);
        let mut removed = Vec::new();
        let orphans = numbers
            .into_iter()
            .filter(|&n| current.is_none_or(|c| n > c))
            .map(|n| n.to_string());
        for name in tmps.into_iter().chain(orphans) {
            let p = gens.join(&name);
            fs::remove_dir_all(&p).map_err(PathError::at(&p))?;
            removed.push(name);
        }
        Ok(removed)
    }

    /// Write generation `n` with `seal` and make it current. `seal` writes
    /// into the directory it is given, which holds a copy of `previous`'s
    /// signed index (so unchanged nodes keep their generation); unless
    /// `reseal_all`, it is also given `previous`'s directory, whose bundles of
    /// unchanged nodes it keeps as they are. When `seal` reports errors,
    /// nothing is made current. With `keep` (as [`Publication::prune`] will
    /// be given), the oldest generation beyond those kept lends its directory.
    pub fn publish(
        &self,
        n: u64,
        previous: Option<u64>,
        keep: Option<usize>,
        reseal_all: bool,
        armed: Option<Failpoint>,
        seal: impl FnOnce(&Path, Option<&Path>) -> Result<Warned<WriteSummary>, DriverError>,
    ) -> Result<Warned<Generation>, PublishError> {
        let gens = self.out.join(GENERATIONS);
        fs::create_dir_all(&gens).map_err(PathError::at(&gens))?;
        let tmp = gens.join(format!("{n}{TMP}"));
        match fs::remove_dir_all(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(PathError::at(&tmp)(e).into());
            }
            _ => {}
        }
        let reused = match (previous, keep) {
            (Some(p), Some(keep)) => self.reuse(p, keep, &tmp)?,
            _ => None,
        };
        if reused.is_none() {
            fs::create_dir(&tmp).map_err(PathError::at(&tmp))?;
        }
        // The writer takes generations over from the index it finds in its
        // output directory: give it the previous generation's.
        if let Some(p) = previous {
            let from = self.dir(p).join(INDEX_FILE);
            match fs::copy(&from, tmp.join(INDEX_FILE)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(PathError::at(&from)(e).into());
                }
                _ => {}
            }
        }
        let keep_from = previous.filter(|_| !reseal_all).map(|p| self.dir(p));
        let sealed = seal(&tmp, keep_from.as_deref())?;
        let Some(summary) = sealed.output else {
            return Ok(Warned {
                output: None,
                diagnostics: sealed.diagnostics,
                files: sealed.files,
            });
        };
        failpoint(armed, Failpoint::BeforeRename);
        let dir = self.dir(n);
        fs::rename(&tmp, &dir).map_err(PathError::at(&dir))?;
        sync_dir(&gens)?;
        failpoint(armed, Failpoint::BeforeSwitch);
        self.switch(n)?;
        Ok(Warned {
            output: Some(Generation {
                number: n,
                dir,
                summary,
                reused,
            }),
            diagnostics: sealed.diagnostics,
            files: sealed.files,
        })
    }

    /// Move the oldest generation to `tmp` when, with `previous` no longer
    /// current, more than `keep` older ones would be left, and remove its
    /// index and its entries that `previous` does not have (or start `tmp`
    /// empty if they cannot all be removed). Its number; `None` (and no
    /// `tmp`) when there is none to take.
    fn reuse(&self, previous: u64, keep: usize, tmp: &Path) -> Result<Option<u64>, PublishError> {
        let (numbers, _) = self.list()?;
        let older: Vec<u64> = numbers.into_iter().filter(|&g| g <= previous).collect();
        let Some(&oldest) = older
            .first()
            .filter(|&&g| g < previous && older.len() > keep)
        else {
            return Ok(None);
        };
        let names = |dir: &Path| -> io::Result<std::collections::HashSet<std::ffi::OsString>> {
            fs::read_dir(dir)?
                .map(|e| e.map(|e| e.file_name()))
                .collect()
        };
        let prev = self.dir(previous);
        let mut wanted = names(&prev).map_err(PathError::at(&prev))?;
        // The previous index is copied in as a new file, not over the old one.
        wanted.remove(std::ffi::OsStr::new(INDEX_FILE));
        let from = self.dir(oldest);
        fs::rename(&from, tmp).map_err(PathError::at(&from))?;
        let cleared = names(tmp).and_then(|have| {
            have.difference(&wanted)
                .try_for_each(|name| fs::remove_file(tmp.join(name)))
        });
        if cleared.is_err() {
            // Something it should not hold (a directory?): a new one instead.
            fs::remove_dir_all(tmp).map_err(PathError::at(tmp))?;
            fs::create_dir(tmp).map_err(PathError::at(tmp))?;
        }
        Ok(Some(oldest))
    }

    /// Point `current` at generation `n`: a new symlink renamed over it.
    fn switch(&self, n: u64) -> Result<(), PublishError> {
        let tmp = self.out.join(format!(".{CURRENT}{TMP}"));
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(PathError::at(&tmp)(e).into());
            }
            _ => {}
        }
        let target = Path::new(GENERATIONS).join(n.to_string());
        std::os::unix::fs::symlink(&target, &tmp).map_err(PathError::at(&tmp))?;
        let link = self.out.join(CURRENT);
        fs::rename(&tmp, &link).map_err(PathError::at(&link))?;
        sync_dir(&self.out)
    }

    /// Remove generations older than the current one, but the newest `keep`
    /// of them. Returns the numbers removed.
    pub fn prune(&self, keep: usize) -> Result<Vec<u64>, PublishError> {
        let Some(current) = self.current()? else {
            return Ok(Vec::new());
        };
        let (numbers, _) = self.list()?;
        let older: Vec<u64> = numbers.into_iter().filter(|&n| n < current).collect();
        let drop = older.len().saturating_sub(keep);
        let mut removed = Vec::new();
        for &n in &older[..drop] {
            let p = self.dir(n);
            fs::remove_dir_all(&p).map_err(PathError::at(&p))?;
            removed.push(n);
        }
        Ok(removed)
    }
}
