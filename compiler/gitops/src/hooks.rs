//! Installing the Git hooks that run `ringfence check`: the client-side
//! `pre-commit` (staged intent) and the server-side `pre-receive` (the new
//! tip of every pushed branch). The scripts are `deploy/git/pre-commit` and
//! `deploy/git/pre-receive`, embedded here.
//!
//! An existing hook is never overwritten silently: one that is not ours is
//! refused, or with `chain` moved aside to `<hook>.ringfence-chained`, which
//! our script runs first. Ours is recognised by its marker line and simply
//! rewritten, so installing twice changes nothing.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ringfence_bundle::PathError;
use ringfence_source::SourceError;
use ringfence_source::repo::hooks_dir;

/// The client-side hook script.
pub const PRE_COMMIT: &str = include_str!("../../../deploy/git/pre-commit");
/// The server-side hook script.
pub const PRE_RECEIVE: &str = include_str!("../../../deploy/git/pre-receive");
/// Suffix of a hook that was there before and runs before ours.
pub const CHAINED_SUFFIX: &str = ".ringfence-chained";

/// Which hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// `pre-commit`: checks the staged intent.
    PreCommit,
    /// `pre-receive`: checks every pushed branch's new tip.
    PreReceive,
}

impl Hook {
    /// The hook's file name.
    pub fn name(self) -> &'static str {
        match self {
            Hook::PreCommit => "pre-commit",
            Hook::PreReceive => "pre-receive",
        }
    }

    /// The script installed.
    pub fn script(self) -> &'static str {
        match self {
            Hook::PreCommit => PRE_COMMIT,
            Hook::PreReceive => PRE_RECEIVE,
        }
    }

    /// The line that marks a hook as ours.
    fn marker(self) -> String {
        format!("# ringfence-hook: {}", self.name())
    }
}

/// What an installation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Installed {
    /// There was no hook; ours is installed.
    Fresh,
    /// Ours was there already, identical.
    Unchanged,
    /// Ours was there in another version; it was rewritten.
    Updated,
    /// Another hook was there; it was moved to this path and runs first.
    Chained(PathBuf),
}

/// The result of [`install`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Installation {
    /// The hook file.
    pub path: PathBuf,
    /// What happened.
    pub installed: Installed,
    /// Whether the repository is bare.
    pub bare: bool,
}

/// Why a hook was not installed. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The repository could not be found or read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A pre-commit hook in a bare repository (where nobody commits).
    #[error(
        "{0}: a bare repository has no commits made in it; install the pre-receive hook with --server"
    )]
    Bare(PathBuf),
    /// A hook that is not ours is there.
    #[error(
        "{path}: a {hook} hook is already installed and is not ringfence's; nothing was changed. Rerun with --chain to keep it (it moves to {hook}{CHAINED_SUFFIX} and runs first), or call `ringfence check` from it yourself",
        path = .path.display()
    )]
    Exists {
        /// The hook file.
        path: PathBuf,
        /// Its name.
        hook: &'static str,
    },
    /// `--chain` but a chained hook is already kept.
    #[error(
        "{path}: a chained hook is already kept there, and {hook} is not ringfence's either; nothing was changed. Merge the two by hand",
        path = .chained.display()
    )]
    ChainTaken {
        /// The chained hook's path.
        chained: PathBuf,
        /// The hook's name.
        hook: &'static str,
    },
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] PathError),
}

/// Install `hook` into the repository containing `dir` (its hooks
/// directory, honouring `core.hooksPath`). With `chain`, a foreign hook is
/// kept and run first instead of refused.
pub fn install(dir: &Path, hook: Hook, chain: bool) -> Result<Installation, HookError> {
    let hooks = hooks_dir(dir)?;
    if hook == Hook::PreCommit && hooks.bare {
        return Err(HookError::Bare(dir.to_path_buf()));
    }
    fs::create_dir_all(&hooks.path).map_err(PathError::at(&hooks.path))?;
    let path = hooks.path.join(hook.name());
    let chained = hooks.path.join(format!("{}{CHAINED_SUFFIX}", hook.name()));
    let done = |installed| Installation {
        path: path.clone(),
        installed,
        bare: hooks.bare,
    };

    let existing = match fs::symlink_metadata(&path) {
        Ok(_) => Some(fs::read(&path).unwrap_or_default()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(PathError::at(&path)(e).into()),
    };
    let installed = match existing {
        None => Installed::Fresh,
        Some(bytes) if String::from_utf8_lossy(&bytes).contains(&hook.marker()) => {
            if bytes == hook.script().as_bytes() && is_executable(&path) {
                return Ok(done(Installed::Unchanged));
            }
            Installed::Updated
        }
        Some(_) if !chain => {
            return Err(HookError::Exists {
                path,
                hook: hook.name(),
            });
        }
        Some(_) => {
            if fs::symlink_metadata(&chained).is_ok() {
                return Err(HookError::ChainTaken {
                    chained,
                    hook: hook.name(),
                });
            }
            // A rename keeps the old hook's mode (and a symlink stays one).
            fs::rename(&path, &chained).map_err(PathError::at(&chained))?;
            Installed::Chained(chained.clone())
        }
    };
    write_executable(&hooks.path, hook.name(), hook.script())?;
    Ok(done(installed))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 == 0o111)
}

/// Write `dir/name` (mode 0755) through a temporary file and a rename.
fn write_executable(dir: &Path, name: &str, text: &str) -> Result<(), HookError> {
    let tmp = dir.join(format!(".{name}.ringfence-tmp"));
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(PathError::at(&tmp))?;
    f.write_all(text.as_bytes()).map_err(PathError::at(&tmp))?;
    f.set_permissions(fs::Permissions::from_mode(0o755))
        .map_err(PathError::at(&tmp))?;
    f.sync_all().map_err(PathError::at(&tmp))?;
    let target = dir.join(name);
    fs::rename(&tmp, &target).map_err(|e| PathError::at(&target)(e).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_carry_their_markers() {
        for h in [Hook::PreCommit, Hook::PreReceive] {
            assert!(h.script().starts_with("#!/bin/sh\n"), "{}", h.name());
            assert!(h.script().contains(&h.marker()), "{}", h.name());
        }
        assert!(!PRE_COMMIT.contains(&Hook::PreReceive.marker()));
    }
}
