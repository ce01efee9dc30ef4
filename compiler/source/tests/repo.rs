//! The GitOps helpers against real repositories (git2, temp dirs): a
//! branch's new commits along the first-parent chain, hooks directories,
//! configuration and mirrors. (`GIT_INDEX_FILE` and the quarantine
//! variables are exercised by real `git commit` and `git push` runs in
//! `compiler/gitops/tests`: setting the environment here would need unsafe.)

use git2::{Repository, Signature};
use ringfence_source::SourceError;
use ringfence_source::repo::{config_string, fetch_mirror, hooks_dir, new_commits};
use ringfence_testkit::git::{commit_file, init};

fn ids(n: &ringfence_source::repo::NewCommits) -> Vec<String> {
    n.commits.iter().map(|c| c.id.clone()).collect()
}

#[test]
fn new_commits_follow_the_first_parent_chain_oldest_first() {
    let (dir, repo) = init();
    let a = commit_file(&repo, "a.kdl", "a 1\n", "one");
    let b = commit_file(&repo, "a.kdl", "a 2\n", "two\n\nbody");
    let c = commit_file(&repo, "a.kdl", "a 3\n", "three");

    let first = new_commits(dir.path(), "main", None).unwrap();
    assert_eq!(
        ids(&first),
        [c.to_string()],
        "a first run takes the tip only"
    );
    assert!(!first.continued);

    let after_a = new_commits(dir.path(), "main", Some(&a.to_string())).unwrap();
    assert_eq!(ids(&after_a), [b.to_string(), c.to_string()]);
    assert_eq!(after_a.commits[0].summary, "two");
    assert!(after_a.continued);
    assert_eq!(after_a.tip, c.to_string());

    let none = new_commits(dir.path(), "main", Some(&c.to_string())).unwrap();
    assert!(none.commits.is_empty() && none.continued);

    // A merge counts once; the merged branch's commits are not walked.
    let main_tip = repo.find_commit(c).unwrap();
    repo.branch("side", &main_tip, false).unwrap();
    repo.set_head("refs/heads/side").unwrap();
    let s = commit_file(&repo, "s.kdl", "s 1\n", "side work");
    repo.set_head("refs/heads/main").unwrap();
    repo.checkout_head(Some(git2::build::CheckoutBuilder::new().force()))
        .unwrap();
    let sig = Signature::now("t", "t@example.invalid").unwrap();
    let side = repo.find_commit(s).unwrap();
    let mut idx = repo.merge_commits(&main_tip, &side, None).unwrap();
    let tree = repo.find_tree(idx.write_tree_to(&repo).unwrap()).unwrap();
    let m = repo
        .commit(
            Some("HEAD"),
            &sig,
            &sig,
            "merge side",
            &tree,
            &[&main_tip, &side],
        )
        .unwrap();
    let merged = new_commits(dir.path(), "main", Some(&c.to_string())).unwrap();
    assert_eq!(ids(&merged), [m.to_string()]);

    // History rewritten: the last seen commit is not on the chain any more.
    let gone = "1111111111111111111111111111111111111111";
    let rewritten = new_commits(dir.path(), "main", Some(gone)).unwrap();
    assert_eq!(ids(&rewritten), [m.to_string()]);
    assert!(!rewritten.continued);

    let e = new_commits(dir.path(), "nope", None).unwrap_err();
    assert!(matches!(e, SourceError::Branch { .. }), "{e}");
    assert!(e.to_string().contains("branch `nope` not found"), "{e}");
}

#[test]
fn hooks_dir_and_config() {
    let (dir, repo) = init();
    let h = hooks_dir(dir.path()).unwrap();
    assert_eq!(
        h.path.canonicalize().unwrap(),
        dir.path().join(".git/hooks").canonicalize().unwrap()
    );
    assert!(!h.bare);
    assert_eq!(config_string(dir.path(), "ringfence.path").unwrap(), None);
    repo.config()
        .unwrap()
        .set_str("core.hooksPath", "ci/hooks")
        .unwrap();
    repo.config()
        .unwrap()
        .set_str("ringfence.path", "policies")
        .unwrap();
    let h = hooks_dir(&dir.path().join(".git")).unwrap();
    assert!(h.path.ends_with("ci/hooks"));
    assert!(
        h.path.starts_with(dir.path().canonicalize().unwrap()) || h.path.starts_with(dir.path())
    );
    assert_eq!(
        config_string(dir.path(), "ringfence.path")
            .unwrap()
            .as_deref(),
        Some("policies")
    );

    let bare = tempfile::tempdir().unwrap();
    Repository::init_bare(bare.path()).unwrap();
    let h = hooks_dir(bare.path()).unwrap();
    assert!(h.bare && h.workdir.is_none());
    assert_eq!(
        h.path.canonicalize().unwrap(),
        bare.path().join("hooks").canonicalize().unwrap()
    );

    let outside = tempfile::tempdir().unwrap();
    assert!(matches!(
        hooks_dir(outside.path()),
        Err(SourceError::NoRepository(_))
    ));
}

#[test]
fn a_mirror_follows_one_branch_of_one_url() {
    let (dir, repo) = init();
    let a = commit_file(&repo, "a.kdl", "a 1\n", "one");
    let url = format!("file://{}", dir.path().display());
    let out = tempfile::tempdir().unwrap();
    let mirror = out.path().join(".mirror");
    fetch_mirror(&url, &mirror, "main").unwrap();
    assert_eq!(
        ids(&new_commits(&mirror, "main", None).unwrap()),
        [a.to_string()]
    );

    let b = commit_file(&repo, "a.kdl", "a 2\n", "two");
    fetch_mirror(&url, &mirror, "main").unwrap();
    let n = new_commits(&mirror, "main", Some(&a.to_string())).unwrap();
    assert_eq!(ids(&n), [b.to_string()]);

    let other = tempfile::tempdir().unwrap();
    let e = fetch_mirror(
        &format!("file://{}", other.path().display()),
        &mirror,
        "main",
    )
    .unwrap_err();
    assert!(matches!(e, SourceError::MirrorOf { .. }), "{e}");

    let e = fetch_mirror(&url, &mirror, "no-such-branch").unwrap_err();
    assert!(e.to_string().contains("no-such-branch"), "{e}");
}
