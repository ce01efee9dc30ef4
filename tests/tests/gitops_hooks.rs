//! The Git hooks with the real `git` binary: a pre-commit hook stops a
//! broken commit (staged, and `commit -a` through a temporary index),
//! `--chain` keeps an existing hook and runs it first, and a bare
//! repository's pre-receive hook refuses a push of broken intent with the
//! diagnostics (file:line) shown to the pusher.

use std::os::unix::fs::PermissionsExt;
use std::process::Output;

use ringfence_testkit::text::assert_contains;

use crate::gitops_common::{
    BROKEN, TempDir, broken_line, copy_example, edit, example_repo, git, git_out, ringfence, text,
};

fn install(args: &[&str]) -> Output {
    let mut argv = vec!["hooks", "install"];
    argv.extend_from_slice(args);
    ringfence(&argv)
}

#[test]
fn pre_commit_stops_a_broken_commit() {
    let tmp = TempDir::new("precommit");
    let repo = example_repo(&tmp, "work");
    let r = repo.to_str().unwrap();
    let out = install(&["--repo", r]);
    assert!(out.status.success(), "{}", text(&out));
    assert_contains(&text(&out), "pre-commit hook installed");
    let hook = repo.join(".git/hooks/pre-commit");
    assert!(std::fs::metadata(&hook).unwrap().permissions().mode() & 0o111 != 0);

    // Staged and committed: refused, with the file and line.
    let shop = repo.join("policies/20-shop.kdl");
    edit(&shop, BROKEN.0, BROKEN.1);
    git(&repo, &["add", "policies/20-shop.kdl"]);
    let out = git_out(&repo, &["commit", "-m", "broken"]);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert_contains(&t, &format!("20-shop.kdl:{}:", broken_line()));
    assert_contains(&t, "no filter, external or scope named `no-such-filter`");
    assert_contains(&t, "does not check");
    assert_eq!(git(&repo, &["rev-list", "--count", "HEAD"]), "1");

    // Unstaged, `commit -a`: git hands the hook a temporary index.
    git(&repo, &["reset", "-q"]);
    let out = git_out(&repo, &["commit", "-a", "-m", "broken too"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(git(&repo, &["rev-list", "--count", "HEAD"]), "1");

    // Fixed: the commit goes through.
    edit(&shop, BROKEN.1, BROKEN.0);
    edit(&shop, "ports=7070", "ports=\"7070-7071\"");
    let out = git_out(&repo, &["commit", "-a", "-m", "fine"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(git(&repo, &["rev-list", "--count", "HEAD"]), "2");

    // A commit that touches no intent is not held up by it.
    std::fs::write(repo.join("README.md"), "notes\n").unwrap();
    git(&repo, &["add", "README.md"]);
    git(&repo, &["commit", "-q", "-m", "docs"]);

    // Installing again changes nothing.
    let before = std::fs::read(&hook).unwrap();
    let out = install(&["--repo", r]);
    assert!(out.status.success(), "{}", text(&out));
    assert_contains(&text(&out), "already installed, unchanged");
    assert_eq!(std::fs::read(&hook).unwrap(), before);
}

#[test]
fn an_existing_hook_is_refused_or_chained_never_overwritten() {
    let tmp = TempDir::new("chain");
    let repo = example_repo(&tmp, "work");
    let r = repo.to_str().unwrap();
    let hook = repo.join(".git/hooks/pre-commit");
    let ran = repo.join("old-hook-ran");
    let old = format!(
        "#!/bin/sh\necho ran >> '{}'\n[ ! -e '{}' ]\n",
        ran.display(),
        repo.join("veto").display()
    );
    std::fs::write(&hook, &old).unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();

    let out = install(&["--repo", r]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_contains(&text(&out), "--chain");
    assert_eq!(std::fs::read_to_string(&hook).unwrap(), old);

    let out = install(&["--repo", r, "--chain"]);
    assert!(out.status.success(), "{}", text(&out));
    let kept = repo.join(".git/hooks/pre-commit.ringfence-chained");
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), old);
    assert_contains(&text(&out), "kept as");

    // Both run, the old one first: a broken commit is still refused...
    let shop = repo.join("policies/20-shop.kdl");
    edit(&shop, BROKEN.0, BROKEN.1);
    let out = git_out(&repo, &["commit", "-a", "-m", "broken"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert_contains(&text(&out), "no-such-filter");
    assert_eq!(std::fs::read_to_string(&ran).unwrap(), "ran\n");

    // ...and the old hook's veto stops a good one before ringfence runs.
    edit(&shop, BROKEN.1, BROKEN.0);
    std::fs::write(repo.join("veto"), "").unwrap();
    let out = git_out(&repo, &["commit", "-a", "-m", "vetoed"]);
    assert!(!out.status.success(), "{}", text(&out));
    std::fs::remove_file(repo.join("veto")).unwrap();

    // Re-installing keeps the chain; a second foreign hook is not stacked.
    let out = install(&["--repo", r, "--chain"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), old);
    std::fs::write(&hook, "#!/bin/sh\nexit 0\n").unwrap();
    let out = install(&["--repo", r, "--chain"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_contains(&text(&out), "already kept");
}

#[test]
fn pre_receive_refuses_a_push_of_broken_intent() {
    let tmp = TempDir::new("prereceive");
    let bare = ringfence_testkit::git::bare(&tmp.0);
    git(&bare, &["config", "ringfence.path", "policies"]);
    let b = bare.to_str().unwrap();
    // The client-side hook needs a working tree.
    let out = install(&["--repo", b]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_contains(&text(&out), "--server");
    let out = install(&["--server", "--repo", b]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(bare.join("hooks/pre-receive").exists());

    let repo = example_repo(&tmp, "work");
    git(&repo, &["remote", "add", "origin", b]);

    // A valid push is accepted (the new objects are still in quarantine).
    let out = git_out(&repo, &["push", "origin", "main"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("remote: ringfence: main") && t.contains("checks"),
        "{t}"
    );

    // A broken one is refused; the pusher reads file:line.
    let shop = repo.join("policies/20-shop.kdl");
    edit(&shop, BROKEN.0, BROKEN.1);
    git(
        &repo,
        &["commit", "-q", "-a", "-m", "broken", "--no-verify"],
    );
    let out = git_out(&repo, &["push", "origin", "main"]);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert_contains(&t, "pre-receive hook declined");
    assert_contains(&t, "push refused");
    assert_contains(
        &t,
        &format!("remote:     ╭─[20-shop.kdl:{}:", broken_line()),
    );
    assert_contains(&t, "no filter, external or scope named `no-such-filter`");
    let server_tip = git(&bare, &["rev-parse", "main"]);
    assert_ne!(server_tip, git(&repo, &["rev-parse", "HEAD"]));

    // Other branches: not checked when ringfence.branches leaves them out;
    // deleting a branch is not checked.
    git(&bare, &["config", "ringfence.branches", "main release/*"]);
    let out = git_out(&repo, &["push", "origin", "HEAD:refs/heads/wip"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = git_out(&repo, &["push", "origin", "HEAD:refs/heads/release/1"]);
    assert!(!out.status.success(), "{}", text(&out));
    let out = git_out(&repo, &["push", "origin", "--delete", "wip"]);
    assert!(out.status.success(), "{}", text(&out));

    // A branch without intent is accepted unchecked.
    git(&repo, &["checkout", "-q", "--orphan", "docs"]);
    git(&repo, &["rm", "-rq", "--cached", "."]);
    std::fs::write(repo.join("README.md"), "docs only\n").unwrap();
    git(&repo, &["add", "README.md"]);
    git(&repo, &["commit", "-q", "-m", "docs", "--no-verify"]);
    git(&bare, &["config", "--unset", "ringfence.branches"]);
    let out = git_out(&repo, &["push", "origin", "docs"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert_contains(&t, "no intent under 'policies', not checked");

    // Fixed: accepted, the server has the tip.
    git(&repo, &["checkout", "-q", "-f", "main"]);
    edit(&shop, BROKEN.1, BROKEN.0);
    git(&repo, &["commit", "-q", "-a", "-m", "fixed"]);
    let out = git_out(&repo, &["push", "origin", "main"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        git(&bare, &["rev-parse", "main"]),
        git(&repo, &["rev-parse", "HEAD"])
    );
}

/// Git quotes names that are not plain ASCII (and those with quotes,
/// backslashes or control characters), so a listing grepped for `.kdl$`
/// missed `é.kdl` and everything under `intención/`, and broken intent was
/// committed and pushed. Both hooks check such names, and a name that only
/// holds `.kdl` before a newline is not taken for intent.
#[test]
fn hooks_check_intent_whatever_its_file_names() {
    let cases = [
        ("intención", "a.kdl"),
        ("policies", "é.kdl"),
        ("my intent", "a b.kdl"),
        ("policies", "q\"uote's.kdl"),
        ("policies", "back\\slash.kdl"),
        ("policies", "new\nline.kdl"),
        ("policies", "tab\t.kdl"),
        ("日本", "規則.kdl"),
    ];
    for (i, (dir, file)) in cases.iter().enumerate() {
        let tmp = TempDir::new(&format!("names{i}"));
        let bare = ringfence_testkit::git::bare(&tmp.0);
        git(&bare, &["config", "ringfence.path", dir]);
        let out = install(&["--server", "--repo", bare.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));

        let repo = tmp.join("work");
        std::fs::create_dir_all(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        git(&repo, &["config", "ringfence.path", dir]);
        git(&repo, &["remote", "add", "origin", bare.to_str().unwrap()]);
        let out = install(&["--repo", repo.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
        let case = format!("{dir}/{file:?}");

        // A file whose name holds `.kdl` only before a newline is no intent.
        std::fs::create_dir_all(repo.join(dir)).unwrap();
        std::fs::write(repo.join(dir).join("notes.kdl\nold"), "not intent {\n").unwrap();
        git(&repo, &["add", "-A"]);
        let out = git_out(&repo, &["commit", "-m", "notes"]);
        assert!(out.status.success(), "{case}: {}", text(&out));

        // Good intent under the name: it checks, the commit and push pass.
        copy_example(&repo.join(dir));
        std::fs::rename(
            repo.join(dir).join("20-shop.kdl"),
            repo.join(dir).join(file),
        )
        .unwrap();
        git(&repo, &["add", "-A"]);
        let out = git_out(&repo, &["commit", "-m", "intent"]);
        assert!(out.status.success(), "{case}: {}", text(&out));
        let out = git_out(&repo, &["push", "origin", "main"]);
        let t = text(&out);
        assert!(out.status.success() && t.contains("checks"), "{case}: {t}");

        // Broken: the pre-commit hook refuses it...
        let broken = repo.join(dir).join(file);
        edit(&broken, BROKEN.0, BROKEN.1);
        git(&repo, &["add", "-A"]);
        let refused = |out: Output, says: [&str; 2]| {
            let t = text(&out);
            assert!(!out.status.success(), "{case}: {t}");
            assert!(says.iter().all(|s| t.contains(s)), "{case}: {t}");
        };
        refused(
            git_out(&repo, &["commit", "-m", "broken"]),
            ["no-such-filter", "does not check"],
        );

        // ...and so does the pre-receive hook when the client skips its own.
        git(&repo, &["commit", "-q", "-m", "broken", "--no-verify"]);
        refused(
            git_out(&repo, &["push", "origin", "main"]),
            ["push refused", "no-such-filter"],
        );
    }
}
