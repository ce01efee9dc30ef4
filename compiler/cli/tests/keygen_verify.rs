//! `ringfence keygen` and `ringfence verify` as a user runs them: the real
//! binary, real files, exit codes 0 (ok), 1 (refused), 2 (could not run).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use ringfence_bundle::{SigningKey, sha256_hex};
use ringfence_driver::bundles::{NodeOutput, write_bundles};

use crate::cli::{code, p, ringfence};
use crate::nodes;

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// A compile of two nodes into `out`, signed by `key`, issued at `time`.
fn compile(out: &Path, key: &SigningKey, time: &str, rules: &str) {
    let nodes: Vec<NodeOutput> = ["prod-eu1-linux-a", "prod-eu1-linux-b"]
        .iter()
        .map(|n| nodes::node("prod-eu1", n, rules))
        .collect();
    write_bundles(&nodes, &nodes::opts(out, &[key], time)).unwrap();
}

fn write_pub(dir: &Path, name: &str, key: &SigningKey) -> String {
    let path = dir.join(name);
    fs::write(&path, key.trusted().to_pem()).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn keygen_prints_the_key_id_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("ci");
    let o = ringfence(&["keygen", "--out", p(&prefix)]);
    assert_eq!(code(&o), 0, "{o:?}");
    let keyid = stdout(&o).trim().to_string();
    assert_eq!(keyid.len(), 64);
    let private = dir.path().join("ci.key");
    let mode = fs::metadata(&private).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let public = ringfence_bundle::load_trusted_key(&dir.path().join("ci.pub")).unwrap();
    assert_eq!(public.keyid, keyid);
    assert_eq!(
        ringfence_bundle::load_signing_key(&private).unwrap().keyid,
        keyid
    );

    let before = fs::read(&private).unwrap();
    let o = ringfence(&["keygen", "--out", p(&prefix)]);
    assert_eq!(code(&o), 1, "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("already exists"),
        "{o:?}"
    );
    assert_eq!(
        fs::read(&private).unwrap(),
        before,
        "the key was not replaced"
    );

    let o = ringfence(&["keygen", "--out", p(&dir.path().join("missing/dir/k"))]);
    assert_eq!(code(&o), 2, "{o:?}");
}

#[test]
fn a_private_key_others_can_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let o = ringfence(&["keygen", "--out", p(&dir.path().join("k"))]);
    assert_eq!(code(&o), 0);
    let private = dir.path().join("k.key");
    fs::set_permissions(&private, fs::Permissions::from_mode(0o644)).unwrap();
    let err = ringfence_bundle::load_signing_key(&private).err().unwrap();
    assert!(
        err.is_refusal() && err.to_string().contains("chmod 600"),
        "{err}"
    );
}

/// A compile into `DIR/out` signed by the key of seed 1, and that key's
/// public half in `DIR/k.pub`.
struct Signed {
    dir: tempfile::TempDir,
    key: SigningKey,
    out: PathBuf,
    trust: String,
    /// The bundle of `prod-eu1-linux-a`.
    bundle: PathBuf,
}

fn signed(time: &str) -> Signed {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::from_seed([1; 32]);
    let out = dir.path().join("out");
    compile(&out, &key, time, "a");
    let trust = write_pub(dir.path(), "k.pub", &key);
    let bundle = out.join("prod-eu1-linux-a.bundle");
    Signed {
        dir,
        key,
        out,
        trust,
        bundle,
    }
}

/// `ringfence verify BUNDLE --trust TRUST ARGS…` on the signed bundle.
fn verify(s: &Signed, args: &[&str]) -> Output {
    let mut all = vec!["verify", p(&s.bundle), "--trust", &s.trust];
    all.extend(args);
    ringfence(&all)
}

/// [`verify`] at `now` with `--format json`: the run and its document.
fn verify_json(s: &Signed, now: &str) -> (Output, serde_json::Value) {
    let o = verify(s, &["--now", now, "--format", "json"]);
    let v = serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{e}: {o:?}"));
    (o, v)
}

#[test]
fn verify_accepts_a_good_bundle_with_a_one_line_summary() {
    let s = signed("2026-01-01T00:00:00Z");
    let index = s.out.join("index.json");
    let o = verify(
        &s,
        &[
            "--node",
            "prod-eu1-linux-a",
            "--min-generation",
            "1",
            "--index",
            p(&index),
            "--now",
            "2026-01-02T00:00:00Z",
        ],
    );
    assert_eq!(code(&o), 0, "{o:?}");
    assert_eq!(
        stdout(&o),
        format!(
            "ok: node prod-eu1-linux-a generation 1 (nftables 0.1.0) from commit abc123, expires 2026-01-08T00:00:00Z, signed by {}\n",
            s.key.keyid
        )
    );

    let (o, v) = verify_json(&s, "2026-01-02T00:00:00Z");
    assert_eq!(code(&o), 0, "{o:?}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["generation"], 1);
    assert_eq!(v["sha256"], sha256_hex(&fs::read(&s.bundle).unwrap()));
    assert_eq!(v["signers"][0], s.key.keyid.as_str());
}

#[test]
fn verify_refuses_with_the_precise_reason_and_exit_1() {
    let s = signed("2026-01-01T00:00:00Z");
    let (dir, bundle, trust) = (s.dir.path(), &s.bundle, &s.trust);
    let other = dir.join("other");
    compile(&other, &s.key, "2026-01-02T00:00:00Z", "b");
    let stranger = write_pub(dir, "stranger.pub", &SigningKey::from_seed([9; 32]));
    let bytes = fs::read(bundle).unwrap();
    let truncated = dir.join("cut.bundle");
    fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let tampered = dir.join("tampered.bundle");
    fs::write(&tampered, ringfence_testkit::keys::tampered(&bytes, 100)).unwrap();
    let now = ["--now", "2026-01-02T00:00:00Z"];
    let other_index = other.join("index.json");

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![p(&tampered), "--trust", trust], "bad-signature: "),
        (vec![p(bundle), "--trust", &stranger], "unknown-key: "),
        (vec![p(&truncated), "--trust", trust], "truncated: "),
        (
            vec![p(bundle), "--trust", trust, "--node", "prod-eu1-linux-b"],
            "wrong-node: ",
        ),
        (
            vec![p(bundle), "--trust", trust, "--min-generation", "2"],
            "old-generation: ",
        ),
        (
            vec![p(bundle), "--trust", trust, "--index", p(&other_index)],
            "not-in-index: ",
        ),
        (
            vec![p(bundle), "--trust", trust, "--index", p(&tampered)],
            "unsupported-format: index ",
        ),
    ];
    for (args, want) in cases {
        let mut all = vec!["verify"];
        all.extend(&args);
        all.extend(now);
        let o = ringfence(&all);
        assert_eq!(code(&o), 1, "{args:?}: {o:?}");
        assert!(stdout(&o).starts_with(want), "{args:?}: {}", stdout(&o));
    }

    let (o, v) = verify_json(&s, "2026-01-08T00:00:00Z");
    assert_eq!(code(&o), 1, "{o:?}");
    assert_eq!(
        (v["ok"].as_bool(), v["reason"].as_str()),
        (Some(false), Some("expired"))
    );
}

#[test]
fn verify_reads_the_clock_without_now() {
    let s = signed("2001-01-01T00:00:00Z");
    let o = verify(&s, &[]);
    assert_eq!(code(&o), 1, "{o:?}");
    assert!(stdout(&o).starts_with("expired: "), "{}", stdout(&o));
}

#[test]
fn verify_threshold_counts_distinct_trusted_signers() {
    let s = signed("2026-01-01T00:00:00Z");
    let tb = write_pub(s.dir.path(), "b.pub", &SigningKey::from_seed([2; 32]));
    // Two trusted keys, one signature: a threshold of 2 refuses, 1 accepts.
    for (threshold, exit, says) in [("2", 1, "threshold: "), ("1", 0, "ok: ")] {
        let o = verify(
            &s,
            &[
                "--trust",
                &tb,
                "--threshold",
                threshold,
                "--now",
                "2026-01-02T00:00:00Z",
            ],
        );
        assert_eq!(code(&o), exit, "{o:?}");
        assert!(stdout(&o).starts_with(says), "{}", stdout(&o));
    }
}

#[test]
fn verify_that_cannot_run_exits_2() {
    let s = signed("2026-01-01T00:00:00Z");
    let (dir, bundle, trust) = (s.dir.path(), &s.bundle, &s.trust);
    let not_a_key = dir.join("junk.pub");
    fs::write(&not_a_key, "hello").unwrap();
    let (absent_bundle, absent_pub) = (dir.join("absent.bundle"), dir.join("absent.pub"));
    let cases: Vec<Vec<&str>> = vec![
        vec![p(&absent_bundle), "--trust", trust],
        vec![p(bundle), "--trust", p(&absent_pub)],
        vec![p(bundle), "--trust", p(&not_a_key)],
        vec![p(bundle), "--trust", trust, "--threshold", "0"],
        vec![
            p(bundle),
            "--trust",
            trust,
            "--trust",
            trust,
            "--threshold",
            "2",
        ],
        vec![p(bundle), "--trust", trust, "--now", "yesterday"],
        vec![p(bundle), "--trust", trust, "--format", "html"],
    ];
    for args in cases {
        let mut all = vec!["verify"];
        all.extend(&args);
        let o = ringfence(&all);
        assert_eq!(code(&o), 2, "{args:?}: {o:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).starts_with("error: "),
            "{o:?}"
        );
    }
}
