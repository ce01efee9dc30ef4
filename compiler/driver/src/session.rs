//! One compile: intent read from somewhere, checked, resolved against the
//! inventory. Every command that needs compiled policy starts here, so they
//! all read, check and compile the same way.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ringfence_core::Compiled;
use ringfence_intent::model::{Intent, SourceFile};
use ringfence_intent::{Diagnostics, Severity};
use ringfence_inventory::model::Inventory;
use ringfence_schema::bundle::SourceRef;
use ringfence_source::{Selector, Snapshot};

/// Where intent is read from.
#[derive(Clone, Debug)]
pub enum IntentFrom<'a> {
    /// A directory (possibly inside a Git repository) in some state.
    Dir(&'a Path, Selector),
    /// A directory of a repository (bare or not) at a revision.
    Repo {
        /// The repository.
        repo: &'a Path,
        /// The intent directory inside it (`""` or `.` for the root).
        subdir: &'a str,
        /// The revision.
        rev: &'a str,
    },
}

impl IntentFrom<'_> {
    fn describe(&self) -> String {
        match self {
            IntentFrom::Dir(dir, Selector::WorkingTree) => dir.display().to_string(),
            IntentFrom::Dir(dir, Selector::Rev(rev)) => {
                format!("{} at revision {rev}", dir.display())
            }
            IntentFrom::Dir(dir, Selector::Index) => format!("{} in the Git index", dir.display()),
            IntentFrom::Repo { repo, subdir, rev } => {
                format!("{}:{subdir} at revision {rev}", repo.display())
            }
        }
    }
}

/// Intent that was read and checked, errors or not.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The files, sorted by path.
    pub files: Vec<SourceFile>,
    /// Where they came from.
    pub source: SourceRef,
    /// The intent, if it has no errors.
    pub intent: Option<Intent>,
    /// Every error and warning of checking.
    pub diagnostics: Diagnostics,
}

/// A successful compile.
pub struct Session {
    /// The intent files, sorted by path (diagnostic spans point into them).
    pub files: Vec<SourceFile>,
    /// Where intent came from.
    pub source: SourceRef,
    /// The intent.
    pub intent: Intent,
    /// The inventory.
    pub inventory: Inventory,
    /// Digest of the inventory files (as recorded in bundles).
    pub inventory_sha256: String,
    /// The compiled policy.
    pub compiled: Compiled,
    /// Warnings of checking and compiling (never errors).
    pub warnings: Diagnostics,
    /// The intent directory on disk, when intent was read from the working tree.
    pub dir: Option<PathBuf>,
}

/// Why a compile did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Intent could not be read.
    #[error("reading intent from {what}: {source}")]
    Source {
        /// Where from.
        what: String,
        /// Why.
        #[source]
        source: ringfence_source::SourceError,
    },
    /// There is no intent there.
    #[error("{0}: no *.kdl intent files (give the intent directory)")]
    Empty(String),
    /// The inventory could not be loaded.
    #[error(transparent)]
    Inventory(#[from] ringfence_inventory::InventoryError),
    /// An inventory file could not be read for its digest.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The intent has errors (checking or compiling); nothing was compiled.
    #[error("the intent has {} error(s)", .diagnostics.error_count())]
    Invalid {
        /// The files, to render the diagnostics against.
        files: Vec<SourceFile>,
        /// Every diagnostic, errors included.
        diagnostics: Diagnostics,
    },
}

/// Read and check intent.
pub fn check(from: &IntentFrom<'_>) -> Result<Checked, SessionError> {
    let what = from.describe();
    let snap: Snapshot = match from {
        IntentFrom::Dir(dir, sel) => ringfence_source::read(dir, sel),
        IntentFrom::Repo { repo, subdir, rev } => ringfence_source::read_repo(repo, subdir, rev),
    }
    .map_err(|source| SessionError::Source {
        what: what.clone(),
        source,
    })?;
    if snap.files.is_empty() {
        return Err(SessionError::Empty(what));
    }
    let files: Vec<SourceFile> = snap
        .files
        .into_iter()
        .map(|f| SourceFile {
            path: f.path,
            text: Arc::from(f.text),
        })
        .collect();
    let checked = ringfence_intent::load(files.clone());
    Ok(Checked {
        files,
        source: snap.source,
        intent: checked.intent,
        diagnostics: checked.diagnostics,
    })
}

/// Load the inventory and its digest.
pub fn inventory(
    paths: &[PathBuf],
    trivy: &[PathBuf],
) -> Result<(Inventory, String), SessionError> {
    let inv = ringfence_inventory::load(paths, trivy)?;
    let digest = ringfence_inventory::digest(paths).map_err(|e| {
        SessionError::Io(
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            e,
        )
    })?;
    Ok((inv, digest))
}

/// Read, check and compile.
pub fn compile(
    from: &IntentFrom<'_>,
    inventory_files: &[PathBuf],
    trivy: &[PathBuf],
) -> Result<Session, SessionError> {
    let checked = check(from)?;
    let (inventory, inventory_sha256) = inventory(inventory_files, trivy)?;
    compile_checked(checked, inventory, inventory_sha256, from)
}

/// Compile intent that was already read and checked.
pub fn compile_checked(
    checked: Checked,
    inventory: Inventory,
    inventory_sha256: String,
    from: &IntentFrom<'_>,
) -> Result<Session, SessionError> {
    let Checked {
        files,
        source,
        intent,
        mut diagnostics,
    } = checked;
    let Some(intent) = intent else {
        return Err(SessionError::Invalid { files, diagnostics });
    };
    let (compiled, d) = ringfence_core::compile(&intent, &inventory);
    diagnostics.extend(d);
    diagnostics.sort();
    let Some(compiled) = compiled.filter(|_| !diagnostics.has_errors()) else {
        return Err(SessionError::Invalid { files, diagnostics });
    };
    debug_assert!(
        diagnostics
            .0
            .iter()
            .all(|d| d.severity == Severity::Warning)
    );
    let dir = match from {
        IntentFrom::Dir(dir, Selector::WorkingTree) => Some(dir.to_path_buf()),
        _ => None,
    };
    Ok(Session {
        files,
        source,
        intent,
        inventory,
        inventory_sha256,
        compiled,
        warnings: diagnostics,
        dir,
    })
}
