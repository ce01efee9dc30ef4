//! `ringfence watch --inventory-events -` as a user runs it: the events on
//! standard input, the cluster they describe taken from the intent at the
//! branch's tip unless `--events-cluster` names it.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::SystemTime;

use ringfence_bundle::{Document, MembershipExpect, Trust, load_trusted_key, verify_membership};
use ringfence_testkit::git::{commit_all, init, write};

use crate::cli::{code, p, ringfence, stderr_has, text};

fn example() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies-example")
}

/// The example inventory as `kubectl get … --watch --output-watch-events
/// -o json` prints it: one ADDED line per object.
fn example_events() -> String {
    let list: serde_json::Value =
        serde_json::from_slice(&std::fs::read(example().join("inventory/prod-eu1.json")).unwrap())
            .unwrap();
    let mut out = String::new();
    for item in list["items"].as_array().unwrap() {
        out += &serde_json::json!({"type": "ADDED", "object": item}).to_string();
        out.push('\n');
    }
    out
}

/// `watch --once` of `repo`'s `main` into `out`, the events on stdin.
fn watch_stdin(repo: &Path, key: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringfence"))
        .args(["watch", "--once", "--repo", p(repo), "--branch", "main"])
        .args(["--inventory-events", "-", "--key", p(key), "--out", p(out)])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ringfence");
    let mut stdin = child.stdin.take().unwrap();
    // The process may refuse before reading: a closed pipe is fine then.
    let _ = stdin.write_all(example_events().as_bytes());
    drop(stdin);
    child.wait_with_output().unwrap()
}

#[test]
fn events_on_stdin_describe_the_one_cluster_the_tips_scopes_name() {
    let (dir, repo) = init();
    let root = dir.path();
    for e in std::fs::read_dir(example()).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "kdl") {
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            write(root, &name, std::fs::read(&path).unwrap());
        }
    }
    commit_all(&repo, "the example");
    let keys = tempfile::tempdir().unwrap();
    let prefix = keys.path().join("k");
    assert_eq!(code(&ringfence(&["keygen", "--out", p(&prefix)])), 0);
    let key = keys.path().join("k.key");

    // One cluster (prod-eu1): no flag needed.
    let out = keys.path().join("one");
    let o = watch_stdin(root, &key, &out, &[]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let node = "prod-eu1-linux-a";
    let snap = std::fs::read(out.join("membership").join(node).join("snapshot")).unwrap();
    let trust = Trust::new([load_trusted_key(&keys.path().join("k.pub")).unwrap()], 1);
    let expect = MembershipExpect {
        node,
        generation: 1,
        ir: None,
        now: SystemTime::now(),
        applied: None,
    };
    let v = verify_membership(&snap, &trust, &expect).unwrap();
    let Document::Snapshot(s) = v.document else {
        panic!("not a snapshot")
    };
    assert_eq!(s.cluster, "prod-eu1");
    assert!(!s.membership.endpoints.is_empty(), "{:?}", s.membership);

    // A second cluster at the tip: ambiguous, refused before anything is
    // published, naming what was found and what to do.
    write(
        root,
        "30-staging.kdl",
        "scope \"staging\" {\n    query {\n        cluster \"staging-eu1\"\n    }\n}\n",
    );
    commit_all(&repo, "a staging cluster");
    let out = keys.path().join("two");
    let o = watch_stdin(root, &key, &out, &[]);
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));
    stderr_has(&o, "they name prod-eu1, staging-eu1");
    stderr_has(&o, "pass --events-cluster NAME");
    assert!(!out.join("current").exists());
    assert!(!out.join("membership").exists());

    // Named: published.
    let o = watch_stdin(root, &key, &out, &["--events-cluster", "prod-eu1"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(out.join("membership").join(node).join("snapshot").is_file());
}
