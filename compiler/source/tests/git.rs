//! Reading intent from real Git repositories made with git2 in temp dirs:
//! a commit, a dirty working tree, a staged change, a sub-directory, a bare
//! repository, and the failure paths.

use std::path::Path;

use git2::Repository;
use ringfence_schema::bundle::SourceKind;
use ringfence_source::{Selector, SourceError, read, read_repo};
use ringfence_testkit::git::{commit_all, stage, write};

fn paths(s: &ringfence_source::Snapshot) -> Vec<&str> {
    s.files.iter().map(|f| f.path.as_str()).collect()
}

fn text_of<'a>(s: &'a ringfence_source::Snapshot, path: &str) -> &'a str {
    &s.files.iter().find(|f| f.path == path).unwrap().text
}

/// A repository with intent in `policies/` (nested dirs, a non-intent file).
fn repo() -> (tempfile::TempDir, Repository) {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(dir.path()).unwrap();
    write(dir.path(), "policies/20-b.kdl", b"b 1\n");
    write(dir.path(), "policies/10-a.kdl", b"a 1\n");
    write(dir.path(), "policies/apps/30-c.kdl", b"c 1\n");
    write(dir.path(), "policies/README.md", b"not intent\n");
    write(dir.path(), "other/x.kdl", b"outside\n");
    (dir, repo)
}

#[test]
fn rev_reads_the_commit_not_the_dirty_working_tree() {
    let (dir, repo) = repo();
    let first = commit_all(&repo, "one");
    write(dir.path(), "policies/10-a.kdl", b"a 2 (dirty)\n");
    write(dir.path(), "policies/40-new.kdl", b"untracked\n");

    let at_head = read(&dir.path().join("policies"), &Selector::Rev("HEAD".into())).unwrap();
    assert_eq!(paths(&at_head), ["10-a.kdl", "20-b.kdl", "apps/30-c.kdl"]);
    assert_eq!(text_of(&at_head, "10-a.kdl"), "a 1\n");
    assert_eq!(at_head.source.kind, SourceKind::Commit);
    assert_eq!(
        at_head.source.commit.as_deref(),
        Some(first.to_string().as_str())
    );
    let tree = repo
        .find_commit(first)
        .unwrap()
        .tree()
        .unwrap()
        .get_path(Path::new("policies"))
        .unwrap()
        .id();
    assert_eq!(
        at_head.source.tree.as_deref(),
        Some(tree.to_string().as_str())
    );

    let worktree = read(&dir.path().join("policies"), &Selector::WorkingTree).unwrap();
    assert_eq!(
        paths(&worktree),
        ["10-a.kdl", "20-b.kdl", "40-new.kdl", "apps/30-c.kdl"]
    );
    assert_eq!(text_of(&worktree, "10-a.kdl"), "a 2 (dirty)\n");
    assert_eq!(worktree.source.kind, SourceKind::WorkingTree);
    assert!(worktree.source.commit.is_none());

    // Any revspec: the first commit by id, after a second commit.
    commit_all(&repo, "two");
    let old = read(
        &dir.path().join("policies"),
        &Selector::Rev(first.to_string()),
    )
    .unwrap();
    assert_eq!(text_of(&old, "10-a.kdl"), "a 1\n");
    let prev = read(
        &dir.path().join("policies"),
        &Selector::Rev("HEAD~1".into()),
    )
    .unwrap();
    assert_eq!(prev, old);
}

#[test]
fn index_reads_staged_changes_only() {
    let (dir, repo) = repo();
    commit_all(&repo, "one");
    write(dir.path(), "policies/10-a.kdl", b"a staged\n");
    stage(&repo, "policies/10-a.kdl");
    write(dir.path(), "policies/10-a.kdl", b"a unstaged\n");
    write(dir.path(), "policies/50-untracked.kdl", b"u\n");

    let staged = read(&dir.path().join("policies"), &Selector::Index).unwrap();
    assert_eq!(paths(&staged), ["10-a.kdl", "20-b.kdl", "apps/30-c.kdl"]);
    assert_eq!(text_of(&staged, "10-a.kdl"), "a staged\n");
    assert_eq!(staged.source.kind, SourceKind::Index);
}

#[test]
fn a_sub_directory_of_the_intent_and_the_repository_root() {
    let (dir, repo) = repo();
    commit_all(&repo, "one");
    let apps = read(
        &dir.path().join("policies/apps"),
        &Selector::Rev("HEAD".into()),
    )
    .unwrap();
    assert_eq!(paths(&apps), ["30-c.kdl"]);
    let all = read(dir.path(), &Selector::Rev("HEAD".into())).unwrap();
    assert_eq!(
        paths(&all),
        [
            "other/x.kdl",
            "policies/10-a.kdl",
            "policies/20-b.kdl",
            "policies/apps/30-c.kdl"
        ]
    );
}

#[test]
fn bare_repository_by_path_and_subdir() {
    let (dir, repo) = repo();
    let id = commit_all(&repo, "one");
    let bare_dir = tempfile::tempdir().unwrap();
    let bare = Repository::init_bare(bare_dir.path()).unwrap();
    let mut remote = bare.remote_anonymous(dir.path().to_str().unwrap()).unwrap();
    remote
        .fetch(&["+refs/heads/*:refs/heads/*"], None, None)
        .unwrap();
    let branch = repo.head().unwrap().shorthand().unwrap().to_string();

    let snap = read_repo(bare_dir.path(), "policies", &branch).unwrap();
    assert_eq!(paths(&snap), ["10-a.kdl", "20-b.kdl", "apps/30-c.kdl"]);
    assert_eq!(snap.source.commit.as_deref(), Some(id.to_string().as_str()));
    let root = read_repo(bare_dir.path(), "", &id.to_string()).unwrap();
    assert_eq!(root.files.len(), 4);
    let dot = read_repo(bare_dir.path(), ".", &id.to_string()).unwrap();
    assert_eq!(dot, root);
    let slashed = read_repo(bare_dir.path(), "./policies/", &branch).unwrap();
    assert_eq!(slashed, snap);
    // A bare repository has no index.
    assert!(matches!(
        read(bare_dir.path(), &Selector::Index),
        Err(SourceError::Bare(_))
    ));
}

#[test]
fn failures_name_what_went_wrong() {
    let (dir, repo) = repo();
    commit_all(&repo, "one");
    let policies = dir.path().join("policies");

    let e = read(&policies, &Selector::Rev("no-such-branch".into())).unwrap_err();
    assert!(matches!(e, SourceError::Revision { .. }), "{e}");
    assert!(e.to_string().contains("no-such-branch"));

    std::fs::create_dir_all(dir.path().join("later")).unwrap();
    let e = read(&dir.path().join("later"), &Selector::Rev("HEAD".into())).unwrap_err();
    assert!(matches!(e, SourceError::NotInRevision { .. }), "{e}");

    write(dir.path(), "policies/bad.kdl", b"a \xff\xfe\n");
    let e = read(&policies, &Selector::WorkingTree).unwrap_err();
    assert!(e.to_string().contains("bad.kdl"), "{e}");
    commit_all(&repo, "binary");
    let e = read(&policies, &Selector::Rev("HEAD".into())).unwrap_err();
    assert!(
        matches!(e, SourceError::NotUtf8 { ref path } if path == "bad.kdl"),
        "{e}"
    );

    let outside = tempfile::tempdir().unwrap();
    let e = read(outside.path(), &Selector::Index).unwrap_err();
    assert!(matches!(e, SourceError::NoRepository(_)), "{e}");
    let e = read(&outside.path().join("missing"), &Selector::WorkingTree).unwrap_err();
    assert!(matches!(e, SourceError::NotADirectory(_)), "{e}");
}

#[test]
fn symlinks_are_skipped_in_every_mode() {
    let (dir, repo) = repo();
    std::os::unix::fs::symlink("10-a.kdl", dir.path().join("policies/99-link.kdl")).unwrap();
    commit_all(&repo, "with a link");
    let policies = dir.path().join("policies");
    let wt = read(&policies, &Selector::WorkingTree).unwrap();
    let head = read(&policies, &Selector::Rev("HEAD".into())).unwrap();
    let idx = read(&policies, &Selector::Index).unwrap();
    assert_eq!(paths(&wt), ["10-a.kdl", "20-b.kdl", "apps/30-c.kdl"]);
    assert_eq!(paths(&wt), paths(&head));
    assert_eq!(paths(&wt), paths(&idx));
}

#[test]
fn the_working_tree_names_its_repository_and_a_plain_directory_none() {
    let (dir, repo) = repo();
    let workdir = repo.workdir().unwrap().display().to_string();
    let apps = read(&dir.path().join("policies/apps"), &Selector::WorkingTree).unwrap();
    assert_eq!(apps.source.repository.as_deref(), Some(workdir.as_str()));
    // A bare repository's directory is a repository too.
    let bare = tempfile::tempdir().unwrap();
    Repository::init_bare(bare.path()).unwrap();
    let in_bare = read(bare.path(), &Selector::WorkingTree).unwrap();
    assert!(in_bare.source.repository.is_some());

    // A plain directory of intent files is read without any repository.
    let plain = tempfile::tempdir().unwrap();
    write(plain.path(), "policies/10-a.kdl", b"a 1\n");
    let snap = read(&plain.path().join("policies"), &Selector::WorkingTree).unwrap();
    assert_eq!(paths(&snap), ["10-a.kdl"]);
    assert_eq!(text_of(&snap, "10-a.kdl"), "a 1\n");
    assert_eq!(snap.source.repository, None);
    assert_eq!(snap.source.kind, SourceKind::WorkingTree);
}
