//! What the GitOps tools need from a repository besides its intent: where
//! its hooks live, a configuration value, a branch's first-parent history,
//! and a bare mirror of a remote repository.

use std::path::{Path, PathBuf};

use git2::{FetchOptions, Oid, Repository};

use crate::{SourceError, git};

/// Where a repository's hooks are installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HooksDir {
    /// The hooks directory (`core.hooksPath`, else `<common git dir>/hooks`).
    pub path: PathBuf,
    /// Whether the repository is bare.
    pub bare: bool,
    /// The working tree's root (`None` when bare).
    pub workdir: Option<PathBuf>,
}

/// The repository containing `dir` and where its hooks live. Honours
/// `core.hooksPath` (relative to the working tree, as Git does) and linked
/// worktrees (their hooks are the main repository's).
pub fn hooks_dir(dir: &Path) -> Result<HooksDir, SourceError> {
    let repo =
        Repository::discover(dir).map_err(|_| SourceError::NoRepository(dir.to_path_buf()))?;
    let workdir = repo.workdir().map(Path::to_path_buf);
    let configured = repo
        .config()
        .and_then(|mut c| c.snapshot())
        .map_err(git("read the repository configuration"))?
        .get_path("core.hooksPath")
        .ok();
    let path = match configured {
        Some(p) if p.is_absolute() => p,
        Some(p) => workdir.as_deref().unwrap_or(repo.path()).join(p),
        None => repo.commondir().join("hooks"),
    };
    Ok(HooksDir {
        path,
        bare: repo.is_bare(),
        workdir,
    })
}

/// One commit of a branch's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitInfo {
    /// Full hex id.
    pub id: String,
    /// The first line of its message.
    pub summary: String,
}

/// The commits a follower of a branch has not seen yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCommits {
    /// The branch's tip.
    pub tip: String,
    /// Commits after `since` on the tip's first-parent chain, oldest first
    /// (just the tip when `since` is not on that chain).
    pub commits: Vec<CommitInfo>,
    /// Whether `since` was found on the first-parent chain (false on a first
    /// run and after the branch was rewritten).
    pub continued: bool,
}

/// The commits of `branch` in the repository at `repo` (bare or not) that
/// follow `since` on the tip's first-parent chain, oldest first. Merges
/// count as one commit each (their second parents are not walked). Without
/// `since`, or when `since` is not on the chain (a force-push), only the tip.
pub fn new_commits(
    repo: &Path,
    branch: &str,
    since: Option<&str>,
) -> Result<NewCommits, SourceError> {
    let repository = Repository::open(repo).map_err(git(format!("{}: open", repo.display())))?;
    let reference = format!("refs/heads/{branch}");
    let tip = repository
        .find_reference(&reference)
        .and_then(|r| r.peel_to_commit())
        .map_err(|source| SourceError::Branch {
            branch: branch.to_string(),
            repo: repo.to_path_buf(),
            source,
        })?;
    let info = |c: &git2::Commit<'_>| CommitInfo {
        id: c.id().to_string(),
        summary: String::from_utf8_lossy(c.summary_bytes().unwrap_or_default()).into_owned(),
    };
    let since = match since.map(Oid::from_str) {
        Some(Ok(id)) => Some(id),
        Some(Err(_)) | None => None,
    };
    let mut walked = Vec::new();
    let mut continued = false;
    if let Some(since) = since {
        let mut at = Some(tip.clone());
        while let Some(c) = at {
            if c.id() == since {
                continued = true;
                break;
            }
            walked.push(info(&c));
            at = c.parents().next();
        }
    }
    let commits = if continued {
        walked.reverse();
        walked
    } else {
        vec![info(&tip)]
    };
    Ok(NewCommits {
        tip: tip.id().to_string(),
        commits,
        continued,
    })
}

/// A string value of the repository's configuration (`git config --get`).
pub fn config_string(repo: &Path, key: &str) -> Result<Option<String>, SourceError> {
    let repository = Repository::open(repo).map_err(git(format!("{}: open", repo.display())))?;
    let config = repository
        .config()
        .and_then(|mut c| c.snapshot())
        .map_err(git("read the repository configuration"))?;
    match config.get_string(key) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(source) => Err(SourceError::Git {
            what: format!("read {key}"),
            source,
        }),
    }
}

/// Update `mirror`, a bare repository (created on first use), with `branch`
/// of the repository at `url`: `+refs/heads/<branch>:refs/heads/<branch>`.
/// A mirror made for another URL is refused rather than mixed.
pub fn fetch_mirror(url: &str, mirror: &Path, branch: &str) -> Result<(), SourceError> {
    let repository = if mirror.join("HEAD").exists() {
        Repository::open_bare(mirror).map_err(git(format!("{}: open", mirror.display())))?
    } else {
        let r = Repository::init_bare(mirror)
            .map_err(git(format!("{}: create the mirror", mirror.display())))?;
        r.remote("origin", url)
            .map_err(git(format!("{}: record the remote", mirror.display())))?;
        r
    };
    let mut remote = repository
        .find_remote("origin")
        .map_err(git(format!("{}: find the remote", mirror.display())))?;
    if remote.url().ok() != Some(url) {
        return Err(SourceError::MirrorOf {
            mirror: mirror.to_path_buf(),
            url: remote.url().unwrap_or_default().to_string(),
        });
    }
    let refspec = format!("+refs/heads/{branch}:refs/heads/{branch}");
    let mut opts = FetchOptions::new();
    opts.download_tags(git2::AutotagOption::None);
    remote
        .fetch(&[refspec.as_str()], Some(&mut opts), None)
        .map_err(git(format!("fetch {branch} from {url}")))?;
    // A refspec that matches nothing fetches nothing, successfully.
    repository
        .find_reference(&format!("refs/heads/{branch}"))
        .map(|_| ())
        .map_err(|source| SourceError::Branch {
            branch: branch.to_string(),
            repo: PathBuf::from(url),
            source,
        })
}
