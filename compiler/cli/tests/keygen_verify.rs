//! `ringfence keygen` and `ringfence verify` as a user runs them: the real
//! binary, real files, exit codes 0 (ok), 1 (refused), 2 (could not run).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use ringfence_bundle::{SigningKey, parse_time, sha256_hex};
use ringfence_driver::bundles::{NodeOutput, WriteOptions, write_bundles};
use ringfence_schema::bundle::{BackendRef, SourceKind, SourceRef};
use ringfence_schema::ir::Os;

use crate::cli::{code, p, ringfence};

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// A compile of two nodes into `out`, signed by `key`, issued at `time`.
fn compile(out: &Path, key: &SigningKey, time: &str, rules: &str) {
    let nodes: Vec<NodeOutput> = ["prod-eu1-linux-a", "prod-eu1-linux-b"]
        .iter()
        .map(|n| NodeOutput {
            cluster: "prod-eu1".into(),
            node: n.to_string(),
            os: Os::Linux,
            backend: BackendRef {
                name: "nftables".into(),
                version: "0.1.0".into(),
                sha256: "ab".repeat(32),
            },
            files: vec![
                (
                    // A valid empty IR: verification parses and validates it.
                    "ir.json".into(),
                    format!(
                        "{{\"ir_version\":2,\"cluster\":\"prod-eu1\",\"node\":\"{n}\",\"os\":\"linux\",\"backend\":\"nftables\",\"addresses\":[],\"endpoints\":[],\"chains\":[],\"sets\":[],\"policies\":[]}}"
                    ),
                ),
                (
                    "rules.nft".into(),
                    format!("table inet ringfence {{\n\tchain c {{\n\t\tcounter comment \"{rules}\"\n\t}}\n}}\n"),
                ),
            ],
        })
        .collect();
    write_bundles(
        &nodes,
        &WriteOptions {
            out,
            keys: &[key],
            issued_at: parse_time(time).unwrap(),
            expires: Duration::from_secs(7 * 86_400),
            generation: None,
            source: SourceRef {
                repository: None,
                commit: Some("abc123".into()),
                tree: None,
                kind: SourceKind::Commit,
            },
            inventory_sha256: "11".repeat(32),
        },
    )
    .unwrap();
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

#[test]
fn verify_accepts_a_good_bundle_with_a_one_line_summary() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::from_seed([1; 32]);
    let out = dir.path().join("out");
    compile(&out, &key, "2026-01-01T00:00:00Z", "a");
    let trust = write_pub(dir.path(), "k.pub", &key);
    let bundle = out.join("prod-eu1-linux-a.bundle");
    let index = out.join("index.json");
    let o = ringfence(&[
        "verify",
        p(&bundle),
        "--trust",
        &trust,
        "--node",
        "prod-eu1-linux-a",
        "--min-generation",
        "1",
        "--index",
        p(&index),
        "--now",
        "2026-01-02T00:00:00Z",
    ]);
    assert_eq!(code(&o), 0, "{o:?}");
    assert_eq!(
        stdout(&o),
        format!(
            "ok: node prod-eu1-linux-a generation 1 (nftables 0.1.0) from commit abc123, expires 2026-01-08T00:00:00Z, signed by {}\n",
            key.keyid
        )
    );

    let o = ringfence(&[
        "verify",
        p(&bundle),
        "--trust",
        &trust,
        "--now",
        "2026-01-02T00:00:00Z",
        "--format",
        "json",
    ]);
    assert_eq!(code(&o), 0, "{o:?}");
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["generation"], 1);
    assert_eq!(v["sha256"], sha256_hex(&fs::read(&bundle).unwrap()));
    assert_eq!(v["signers"][0], key.keyid.as_str());
}

#[test]
fn verify_refuses_with_the_precise_reason_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::from_seed([1; 32]);
    let (out, other) = (dir.path().join("out"), dir.path().join("other"));
    compile(&out, &key, "2026-01-01T00:00:00Z", "a");
    compile(&other, &key, "2026-01-02T00:00:00Z", "b");
    let trust = write_pub(dir.path(), "k.pub", &key);
    let stranger = write_pub(dir.path(), "stranger.pub", &SigningKey::from_seed([9; 32]));
    let bundle = out.join("prod-eu1-linux-a.bundle");
    let bytes = fs::read(&bundle).unwrap();
    let truncated = dir.path().join("cut.bundle");
    fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let tampered = dir.path().join("tampered.bundle");
    let mut t = bytes.clone();
    let at = bytes
        .windows(11)
        .position(|w| w == b"\"payload\":\"")
        .unwrap()
        + 100;
    t[at] = if t[at] == b'A' { b'B' } else { b'A' };
    fs::write(&tampered, &t).unwrap();
    let now = ["--now", "2026-01-02T00:00:00Z"];
    let other_index = other.join("index.json");

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![p(&tampered), "--trust", &trust], "bad-signature: "),
        (vec![p(&bundle), "--trust", &stranger], "unknown-key: "),
        (vec![p(&truncated), "--trust", &trust], "truncated: "),
        (
            vec![p(&bundle), "--trust", &trust, "--node", "prod-eu1-linux-b"],
            "wrong-node: ",
        ),
        (
            vec![p(&bundle), "--trust", &trust, "--min-generation", "2"],
            "old-generation: ",
        ),
        (
            vec![p(&bundle), "--trust", &trust, "--index", p(&other_index)],
            "not-in-index: ",
        ),
        (
            vec![p(&bundle), "--trust", &trust, "--index", p(&tampered)],
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

    let o = ringfence(&[
        "verify",
        p(&bundle),
        "--trust",
        &trust,
        "--now",
        "2026-01-08T00:00:00Z",
        "--format",
        "json",
    ]);
    assert_eq!(code(&o), 1, "{o:?}");
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        (v["ok"].as_bool(), v["reason"].as_str()),
        (Some(false), Some("expired"))
    );
}

#[test]
fn verify_reads_the_clock_without_now() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::from_seed([1; 32]);
    let out = dir.path().join("out");
    compile(&out, &key, "2001-01-01T00:00:00Z", "a");
    let trust = write_pub(dir.path(), "k.pub", &key);
    let o = ringfence(&[
        "verify",
        p(&out.join("prod-eu1-linux-a.bundle")),
        "--trust",
        &trust,
    ]);
    assert_eq!(code(&o), 1, "{o:?}");
    assert!(stdout(&o).starts_with("expired: "), "{}", stdout(&o));
}

#[test]
fn verify_threshold_counts_distinct_trusted_signers() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        SigningKey::from_seed([1; 32]),
        SigningKey::from_seed([2; 32]),
    );
    let out = dir.path().join("out");
    compile(&out, &a, "2026-01-01T00:00:00Z", "a");
    let (ta, tb) = (
        write_pub(dir.path(), "a.pub", &a),
        write_pub(dir.path(), "b.pub", &b),
    );
    let bundle = out.join("prod-eu1-linux-a.bundle");
    let o = ringfence(&[
        "verify",
        p(&bundle),
        "--trust",
        &ta,
        "--trust",
        &tb,
        "--threshold",
        "2",
        "--now",
        "2026-01-02T00:00:00Z",
    ]);
    assert_eq!(code(&o), 1, "{o:?}");
    assert!(stdout(&o).starts_with("threshold: "), "{}", stdout(&o));
    let o = ringfence(&[
        "verify",
        p(&bundle),
        "--trust",
        &ta,
        "--trust",
        &tb,
        "--threshold",
        "1",
        "--now",
        "2026-01-02T00:00:00Z",
    ]);
    assert_eq!(code(&o), 0, "{o:?}");
}

#[test]
fn verify_that_cannot_run_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::from_seed([1; 32]);
    let out = dir.path().join("out");
    compile(&out, &key, "2026-01-01T00:00:00Z", "a");
    let trust = write_pub(dir.path(), "k.pub", &key);
    let bundle = out.join("prod-eu1-linux-a.bundle");
    let not_a_key = dir.path().join("junk.pub");
    fs::write(&not_a_key, "hello").unwrap();
    let (absent_bundle, absent_pub) = (
        dir.path().join("absent.bundle"),
        dir.path().join("absent.pub"),
    );
    let cases: Vec<Vec<&str>> = vec![
        vec![p(&absent_bundle), "--trust", &trust],
        vec![p(&bundle), "--trust", p(&absent_pub)],
        vec![p(&bundle), "--trust", p(&not_a_key)],
        vec![p(&bundle), "--trust", &trust, "--threshold", "0"],
        vec![
            p(&bundle),
            "--trust",
            &trust,
            "--trust",
            &trust,
            "--threshold",
            "2",
        ],
        vec![p(&bundle), "--trust", &trust, "--now", "yesterday"],
        vec![p(&bundle), "--trust", &trust, "--format", "html"],
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
