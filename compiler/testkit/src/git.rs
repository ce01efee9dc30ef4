//! Real Git repositories for tests: made and committed to with git2, or
//! driven by the real `git` binary where a test needs what the binary does
//! (hooks, pushes, the index file it picks).

use std::path::{Path, PathBuf};
use std::process::Command;

use git2::{Commit, IndexAddOption, Oid, Repository, RepositoryInitOptions, Signature};

/// Write `text` to `root/rel`, creating its directories.
pub fn write(root: &Path, rel: &str, text: impl AsRef<[u8]>) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("a file has a parent")).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A new repository in a temp dir (removed on drop) on branch `main`.
pub fn init() -> (tempfile::TempDir, Repository) {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init_opts(
        dir.path(),
        RepositoryInitOptions::new().initial_head("main"),
    )
    .unwrap();
    (dir, repo)
}

/// Stage `rel` (relative to the working tree).
pub fn stage(repo: &Repository, rel: &str) {
    let mut index = repo.index().unwrap();
    index.add_path(Path::new(rel)).unwrap();
    index.write().unwrap();
}

/// Commit the index on `HEAD` (its parent, if any: the current `HEAD`);
/// the commit id.
pub fn commit_index(repo: &Repository, msg: &str) -> Oid {
    let tree = repo
        .find_tree(repo.index().unwrap().write_tree().unwrap())
        .unwrap();
    let sig = Signature::now("t", "t@example.invalid").unwrap();
    let parent: Vec<Commit<'_>> = repo
        .head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .into_iter()
        .collect();
    let parents: Vec<&Commit<'_>> = parent.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, msg, &tree, &parents)
        .unwrap()
}

/// Stage everything in the working tree and commit it; the commit id.
pub fn commit_all(repo: &Repository, msg: &str) -> Oid {
    let mut index = repo.index().unwrap();
    index.add_all(["*"], IndexAddOption::DEFAULT, None).unwrap();
    index.write().unwrap();
    commit_index(repo, msg)
}

/// Write one file, stage it and commit it; the commit id.
pub fn commit_file(repo: &Repository, rel: &str, text: &str, msg: &str) -> Oid {
    write(repo.workdir().expect("not bare"), rel, text);
    stage(repo, rel);
    commit_index(repo, msg)
}

/// The `git` binary, run in `dir` with an identity set.
pub fn git_command(dir: &Path) -> Command {
    let mut c = Command::new("git");
    c.current_dir(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"]);
    c
}

/// Run a `git` command, panicking with its output when it fails; its
/// trimmed stdout.
pub fn run(mut command: Command) -> String {
    let out = crate::cmd::run(&mut command);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `git ARGS` in `dir` (see [`run`]).
pub fn git(dir: &Path, args: &[&str]) -> String {
    let mut c = git_command(dir);
    c.args(args);
    run(c)
}

/// A bare repository `dir/server.git` on branch `main`; its path.
pub fn bare(dir: &Path) -> PathBuf {
    let bare = dir.join("server.git");
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "-q", "--bare", "-b", "main"]);
    bare
}

/// A bare repository `dir/server.git` and a working repository `dir/work`
/// pushing to it as `origin`, both on `main`, with each `(file, rel)` of
/// `files` copied to `work/rel`, nothing committed; `(bare, work)`.
pub fn server_and_work(dir: &Path, files: &[(&Path, &str)]) -> (PathBuf, PathBuf) {
    let bare = bare(dir);
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    for (file, rel) in files {
        write(&work, rel, std::fs::read(file).unwrap());
    }
    git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
    (bare, work)
}
