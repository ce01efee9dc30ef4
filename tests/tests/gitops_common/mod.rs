//! What the GitOps end-to-end tests share: temp dirs, the real `git`
//! binary, the `ringfence` binary on PATH, and a repository holding the
//! example intent.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use ringfence_e2e::bin::{binary, repo_root};

/// A directory removed when dropped.
pub(crate) struct TempDir(pub(crate) PathBuf);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl TempDir {
    /// A fresh empty directory under the system temp dir.
    pub(crate) fn new(label: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "rf-{label}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    /// A path inside.
    pub(crate) fn join(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// PATH with the directory of the `ringfence` binary first.
pub(crate) fn path_with_ringfence() -> String {
    let bin = binary("ringfence");
    let dir = bin.parent().unwrap().display().to_string();
    format!("{dir}:{}", std::env::var("PATH").unwrap_or_default())
}

/// A `git` command in `dir` with an identity and ringfence on PATH.
pub(crate) fn git_cmd(dir: &Path) -> Command {
    let mut c = ringfence_testkit::git::git_command(dir);
    c.env("PATH", path_with_ringfence()).env("NO_COLOR", "1");
    c
}

/// Run git; its output, whatever the exit status.
pub(crate) fn git_out(dir: &Path, args: &[&str]) -> Output {
    git_cmd(dir).args(args).output().expect("git runs")
}

/// Run git, panicking on failure; trimmed stdout.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let mut c = git_cmd(dir);
    c.args(args);
    ringfence_testkit::git::run(c)
}

/// The `ringfence` binary with arguments; its output.
pub(crate) fn ringfence(args: &[&str]) -> Output {
    Command::new(binary("ringfence"))
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .expect("ringfence runs")
}

/// Stdout and stderr of an output, as text.
pub(crate) fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Copy `policies-example/*.kdl` into `dir`.
pub(crate) fn copy_example(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for e in std::fs::read_dir(repo_root().join("policies-example")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "kdl") {
            std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// A working repository (branch `main`) with the example intent under
/// `policies/` committed, and `ringfence.path` set to it.
pub(crate) fn example_repo(tmp: &TempDir, name: &str) -> PathBuf {
    let root = tmp.join(name);
    std::fs::create_dir_all(&root).unwrap();
    git(&root, &["init", "-q", "-b", "main"]);
    git(&root, &["config", "ringfence.path", "policies"]);
    copy_example(&root.join("policies"));
    git(&root, &["add", "-A"]);
    git(&root, &["commit", "-q", "-m", "the example intent"]);
    root
}

/// Replace `from` by `to` in a file; it must occur.
pub(crate) fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{} has no `{from}`", file.display());
    std::fs::write(file, text.replacen(from, to, 1)).unwrap();
}

/// A line of intent that does not check: an unknown filter reference.
pub(crate) const BROKEN: (&str, &str) = (
    "allow \"frontend-to-cart\" from=\"frontend\"",
    "allow \"frontend-to-cart\" from=\"no-such-filter\"",
);

/// The line of the broken reference in `20-shop.kdl`.
pub(crate) fn broken_line() -> usize {
    let text = std::fs::read_to_string(repo_root().join("policies-example/20-shop.kdl")).unwrap();
    text.lines()
        .position(|l| l.contains(BROKEN.0))
        .expect("the example has the line")
        + 1
}

/// A bare server repository with a working clone holding the lab intent
/// (`tests/fixtures/gitops`) under `policies/`, and a signing key pair.
pub(crate) struct Lab {
    /// The temp dir holding everything.
    pub(crate) tmp: TempDir,
    /// The bare repository.
    pub(crate) bare: PathBuf,
    /// The working clone.
    pub(crate) work: PathBuf,
}

impl Lab {
    /// Set up, without pushing anything.
    pub(crate) fn new(label: &str) -> Lab {
        let tmp = TempDir::new(label);
        let (bare, work) = ringfence_testkit::git::server_and_work(
            &tmp.0,
            &[(
                &repo_root().join("tests/fixtures/gitops/intent/10-lab.kdl"),
                "policies/10-lab.kdl",
            )],
        );
        let out = ringfence(&["keygen", "--out", tmp.join("ci").to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
        Lab { tmp, bare, work }
    }

    /// The intent file.
    pub(crate) fn intent(&self) -> PathBuf {
        self.work.join("policies/10-lab.kdl")
    }

    /// Commit everything and push to `main`; the commit id.
    pub(crate) fn push(&self, msg: &str) -> String {
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "--no-verify", "-m", msg]);
        git(&self.work, &["push", "-q", "origin", "main"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// The inventory of the lab cluster.
    pub(crate) fn inventory(&self) -> PathBuf {
        repo_root().join("tests/fixtures/gitops/inventory.json")
    }

    /// A copy of the inventory's first Pod of `app`, to rename and place.
    pub(crate) fn pod_of(&self, app: &str) -> serde_json::Value {
        let list: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.inventory()).unwrap()).unwrap();
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["kind"] == "Pod" && o["metadata"]["labels"]["app"] == app)
            .unwrap()
            .clone()
    }

    /// `ringfence watch --once` publishing into `out`, with an optional failpoint.
    pub(crate) fn watch_once(&self, out: &Path, failpoint: Option<&str>) -> Output {
        let mut c = Command::new(binary("ringfence"));
        // A failpoint aborts: any core file lands in the temp dir.
        c.current_dir(&self.tmp.0);
        c.env("NO_COLOR", "1").args([
            "watch",
            "--repo",
            self.bare.to_str().unwrap(),
            "--branch",
            "main",
            "--path",
            "policies",
            "--inventory",
            self.inventory().to_str().unwrap(),
            "--key",
            self.tmp.join("ci.key").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--once",
        ]);
        match failpoint {
            Some(f) => c.env("RINGFENCE_WATCH_FAILPOINT", f),
            None => c.env_remove("RINGFENCE_WATCH_FAILPOINT"),
        };
        c.output().expect("ringfence runs")
    }

    /// `ringfence verify` of every bundle under `dir` against its index.
    pub(crate) fn verify_all(&self, dir: &Path) {
        for node in ["lab-n1", "lab-n2"] {
            let out = ringfence(&[
                "verify",
                dir.join(format!("{node}.bundle")).to_str().unwrap(),
                "--trust",
                self.tmp.join("ci.pub").to_str().unwrap(),
                "--index",
                dir.join("index.json").to_str().unwrap(),
            ]);
            assert!(out.status.success(), "{}: {}", dir.display(), text(&out));
        }
    }
}
