//! Where intent is read from: the working tree, a Git revision or the Git
//! index. This is the only crate that reads intent files; it returns their
//! text and where it came from, and knows nothing of the language.
//!
//! Intent is every `*.kdl` file under the intent directory, recursively,
//! sorted by path (relative to the directory, `/`-separated). Only regular
//! files count: symbolic links are skipped in every mode, so the working
//! tree and a commit of it read the same files. Git modes read blobs through
//! git2 only, never the file system.
//!
//! Inside Git hooks the environment Git sets is honoured as Git does:
//! `GIT_INDEX_FILE` (the index `git commit -a` or `git commit PATH` is about
//! to commit) for the index, and `GIT_OBJECT_DIRECTORY` /
//! `GIT_ALTERNATE_OBJECT_DIRECTORIES` (where a `pre-receive` hook finds the
//! pushed objects, still in quarantine) for revisions.
//!
//! [`repo`] has what the GitOps tools need besides intent: hooks, config,
//! a branch's new commits, mirrors.

use std::path::{Path, PathBuf};

use git2::{ObjectType, Repository, Tree, TreeWalkMode, TreeWalkResult};
use ringfence_schema::bundle::{SourceKind, SourceRef};

pub mod repo;

/// Which state of the intent to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// Files on disk, as they are now.
    WorkingTree,
    /// A Git revision (anything `git rev-parse` accepts: `HEAD`, a branch, a commit id).
    Rev(String),
    /// The Git index (what `git commit` would commit).
    Index,
}

/// One intent file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceText {
    /// Path relative to the intent directory, `/`-separated.
    pub path: String,
    /// Its text.
    pub text: String,
}

/// The intent files of one state, sorted by path, and where they came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The files, sorted by path.
    pub files: Vec<SourceText>,
    /// Repository, commit and tree, or working tree / index.
    pub source: SourceRef,
}

/// Why intent could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The intent directory does not exist or is not a directory.
    #[error("{}: not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// A file or directory could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file is not UTF-8 text.
    #[error("{path}: not UTF-8 text (intent files must be UTF-8)")]
    NotUtf8 {
        /// The file, relative to the intent directory.
        path: String,
    },
    /// `--rev` or `--staged` outside a Git repository.
    #[error("{}: not inside a Git repository (needed to read a revision or the index)", .0.display())]
    NoRepository(PathBuf),
    /// The revision does not resolve to a commit.
    #[error("revision `{rev}` not found: {source}")]
    Revision {
        /// The revision as given.
        rev: String,
        /// git2's reason.
        source: git2::Error,
    },
    /// The intent directory does not exist at that revision.
    #[error("`{dir}` does not exist (as a directory) at revision `{rev}`")]
    NotInRevision {
        /// The directory, relative to the repository root.
        dir: String,
        /// The revision.
        rev: String,
    },
    /// The index has unresolved merge conflicts under the intent directory.
    #[error("{path}: unmerged in the Git index (resolve the conflict and `git add` it)")]
    Unmerged {
        /// The file, relative to the intent directory.
        path: String,
    },
    /// The repository has no index (a bare repository).
    #[error("{}: a bare repository has no index to read staged files from", .0.display())]
    Bare(PathBuf),
    /// The branch does not exist.
    #[error("branch `{branch}` not found in {}: {source}", repo.display())]
    Branch {
        /// The branch name.
        branch: String,
        /// The repository.
        repo: PathBuf,
        /// git2's reason.
        source: git2::Error,
    },
    /// A mirror directory holds another repository.
    #[error("{} mirrors {url}, not the repository asked for; use another directory", mirror.display())]
    MirrorOf {
        /// The mirror.
        mirror: PathBuf,
        /// The URL it mirrors.
        url: String,
    },
    /// Any other Git failure.
    #[error("{what}: {source}")]
    Git {
        /// What was being done.
        what: String,
        /// git2's error.
        source: git2::Error,
    },
}

pub(crate) fn git(what: impl Into<String>) -> impl FnOnce(git2::Error) -> SourceError {
    let what = what.into();
    move |source| SourceError::Git { what, source }
}

/// Read the intent under `dir` in the state `sel` selects. For Git states,
/// `dir` may be anywhere inside a repository's working tree (or be a bare
/// repository).
pub fn read(dir: &Path, sel: &Selector) -> Result<Snapshot, SourceError> {
    match sel {
        Selector::WorkingTree => read_working_tree(dir),
        Selector::Rev(rev) => {
            let (repo, subdir) = discover(dir)?;
            add_env_alternates(&repo)?;
            read_rev(&repo, &subdir, rev)
        }
        Selector::Index => {
            let (repo, subdir) = discover(dir)?;
            read_index(&repo, &subdir)
        }
    }
}

/// Read the intent under `subdir` (relative to the repository root, `/`
/// separated, `""` or `.` for the root) at revision `rev` of the repository at
/// `repo`, bare or not.
pub fn read_repo(repo: &Path, subdir: &str, rev: &str) -> Result<Snapshot, SourceError> {
    let repository = Repository::open(repo).map_err(git(format!("{}: open", repo.display())))?;
    add_env_alternates(&repository)?;
    // `.`, `./policies/` and `policies` name the same directory.
    let subdir: Vec<&str> = subdir
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    read_rev(&repository, &subdir.join("/"), rev)
}

/// Make objects Git announces through the environment readable: during a
/// `pre-receive` hook the pushed objects are in a quarantine directory that
/// only `GIT_OBJECT_DIRECTORY` and `GIT_ALTERNATE_OBJECT_DIRECTORIES` name.
fn add_env_alternates(repo: &Repository) -> Result<(), SourceError> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("GIT_OBJECT_DIRECTORY") {
        dirs.push(d.into());
    }
    if let Some(list) = std::env::var_os("GIT_ALTERNATE_OBJECT_DIRECTORIES") {
        dirs.extend(std::env::split_paths(&list));
    }
    if dirs.is_empty() {
        return Ok(());
    }
    let odb = repo.odb().map_err(git("open the object database"))?;
    for d in dirs.iter().filter(|d| d.is_dir()) {
        odb.add_disk_alternate(&d.to_string_lossy())
            .map_err(git(format!("{}: add as object directory", d.display())))?;
    }
    Ok(())
}

/// The repository holding `dir`, and `dir` relative to its root.
fn discover(dir: &Path) -> Result<(Repository, String), SourceError> {
    if !dir.is_dir() {
        return Err(SourceError::NotADirectory(dir.to_path_buf()));
    }
    let repo =
        Repository::discover(dir).map_err(|_| SourceError::NoRepository(dir.to_path_buf()))?;
    let canon = |p: &Path| {
        p.canonicalize().map_err(|source| SourceError::Io {
            path: p.to_path_buf(),
            source,
        })
    };
    let dir = canon(dir)?;
    let base = match repo.workdir() {
        Some(w) => canon(w)?,
        None => canon(repo.path())?,
    };
    let rel = dir
        .strip_prefix(&base)
        .map_err(|_| SourceError::NoRepository(dir.clone()))?;
    let subdir = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/");
    Ok((repo, subdir))
}

fn repo_path(repo: &Repository) -> String {
    repo.workdir()
        .unwrap_or_else(|| repo.path())
        .display()
        .to_string()
}

fn text(path: String, bytes: Vec<u8>) -> Result<SourceText, SourceError> {
    match String::from_utf8(bytes) {
        Ok(text) => Ok(SourceText { path, text }),
        Err(_) => Err(SourceError::NotUtf8 { path }),
    }
}

fn is_intent(name: &str) -> bool {
    name.ends_with(".kdl")
}

fn read_working_tree(dir: &Path) -> Result<Snapshot, SourceError> {
    if !dir.is_dir() {
        return Err(SourceError::NotADirectory(dir.to_path_buf()));
    }
    let mut files = Vec::new();
    walk(dir, "", &mut files)?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    // libgit2 is opened only when there may be a repository to name.
    let repository = if may_be_in_repository(dir) {
        Repository::discover(dir).ok().map(|r| repo_path(&r))
    } else {
        None
    };
    Ok(Snapshot {
        files,
        source: SourceRef {
            repository,
            commit: None,
            tree: None,
            kind: SourceKind::WorkingTree,
        },
    })
}

/// Whether `dir` or a directory above it holds `.git` or is itself a Git
/// directory (has `HEAD`), the only places [`Repository::discover`] finds one.
fn may_be_in_repository(dir: &Path) -> bool {
    let Ok(dir) = dir.canonicalize() else {
        return true;
    };
    dir.ancestors()
        .any(|d| d.join(".git").exists() || d.join("HEAD").is_file())
}

fn walk(dir: &Path, rel: &str, out: &mut Vec<SourceText>) -> Result<(), SourceError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SourceError::Io { path, source }
    };
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(io(&path))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let child = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        if kind.is_dir() {
            if name != ".git" {
                walk(&path, &child, out)?;
            }
        } else if kind.is_file() && is_intent(&name) {
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            out.push(text(child, bytes)?);
        }
    }
    Ok(())
}

fn read_rev(repo: &Repository, subdir: &str, rev: &str) -> Result<Snapshot, SourceError> {
    let commit = repo
        .revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map_err(|source| SourceError::Revision {
            rev: rev.to_string(),
            source,
        })?;
    let root = commit.tree().map_err(git(format!("{rev}: read tree")))?;
    let tree: Tree<'_> = if subdir.is_empty() {
        root
    } else {
        let not_found = || SourceError::NotInRevision {
            dir: subdir.to_string(),
            rev: rev.to_string(),
        };
        let entry = root.get_path(Path::new(subdir)).map_err(|_| not_found())?;
        if entry.kind() != Some(ObjectType::Tree) {
            return Err(not_found());
        }
        repo.find_tree(entry.id())
            .map_err(git(format!("{rev}:{subdir}: read tree")))?
    };
    let mut blobs = Vec::new();
    tree.walk(TreeWalkMode::PreOrder, |parent, entry| {
        let name = entry.name().unwrap_or_default();
        // Regular files only (0o100644, 0o100755); links are skipped.
        let regular = matches!(entry.filemode(), 0o100644 | 0o100755);
        if regular && entry.kind() == Some(ObjectType::Blob) && is_intent(name) {
            blobs.push((format!("{parent}{name}"), entry.id()));
        }
        TreeWalkResult::Ok
    })
    .map_err(git(format!("{rev}: walk tree")))?;
    let mut files = Vec::with_capacity(blobs.len());
    for (path, id) in blobs {
        let blob = repo
            .find_blob(id)
            .map_err(git(format!("{rev}:{path}: read blob")))?;
        files.push(text(path, blob.content().to_vec())?);
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Snapshot {
        files,
        source: SourceRef {
            repository: Some(repo_path(repo)),
            commit: Some(commit.id().to_string()),
            tree: Some(tree.id().to_string()),
            kind: SourceKind::Commit,
        },
    })
}

fn read_index(repo: &Repository, subdir: &str) -> Result<Snapshot, SourceError> {
    if repo.is_bare() {
        return Err(SourceError::Bare(repo.path().to_path_buf()));
    }
    // `git commit -a` and `git commit PATH` run the hook against a
    // temporary index that only GIT_INDEX_FILE names.
    let index = match std::env::var_os("GIT_INDEX_FILE") {
        // Relative to the current directory, as Git reads it.
        Some(f) => {
            let f = PathBuf::from(f);
            git2::Index::open(&f).map_err(git(format!("{}: read the index", f.display())))?
        }
        None => repo.index().map_err(git("read the index"))?,
    };
    let prefix = if subdir.is_empty() {
        String::new()
    } else {
        format!("{subdir}/")
    };
    let mut files = Vec::new();
    for entry in index.iter() {
        let path = String::from_utf8_lossy(&entry.path).into_owned();
        let Some(rel) = path.strip_prefix(&prefix) else {
            continue;
        };
        let name = rel.rsplit('/').next().unwrap_or(rel);
        if !is_intent(name) {
            continue;
        }
        // Stage bits (12-13 of flags) are non-zero for conflicted entries.
        if (entry.flags >> 12) & 0x3 != 0 {
            return Err(SourceError::Unmerged {
                path: rel.to_string(),
            });
        }
        if !matches!(entry.mode, 0o100644 | 0o100755) {
            continue;
        }
        let blob = repo
            .find_blob(entry.id)
            .map_err(git(format!("index:{path}: read blob")))?;
        files.push(text(rel.to_string(), blob.content().to_vec())?);
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Snapshot {
        files,
        source: SourceRef {
            repository: Some(repo_path(repo)),
            commit: None,
            tree: None,
            kind: SourceKind::Index,
        },
    })
}
