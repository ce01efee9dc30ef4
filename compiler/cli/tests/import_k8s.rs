//! `ringfence import k8s` as a user runs it: a directory of manifests in,
//! intent out (all or nothing), the report as text, JSON or YAML, exit codes
//! 0 / 1 / 2; and `matrix -o txt` on the same manifests as inventory.

use std::path::Path;

use crate::cli::{code, p, ringfence, stderr_has, stdout_has, text};
use ringfence_testkit::text::assert_contains;

const APP: &str = include_str!("fixtures/import-k8s/app.yaml");

const POLICY: &str = include_str!("fixtures/import-k8s/db-from-web.yaml");

fn manifests(dir: &Path, policy: &str) -> std::path::PathBuf {
    let m = dir.join("manifests");
    std::fs::create_dir_all(m.join("policies")).unwrap();
    std::fs::write(m.join("app.yaml"), APP).unwrap();
    std::fs::write(m.join("policies/np.yaml"), policy).unwrap();
    m
}

fn kdl_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn import_writes_intent_that_checks_and_matrix_prints_analyzer_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let m = manifests(tmp.path(), POLICY);
    let out = tmp.path().join("intent");
    let o = ringfence(&["import", "k8s", p(&m), "--out", p(&out), "-o", "json"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["read"]["NetworkPolicy"], 1, "{report}");
    assert_eq!(report["problems"].as_array().map(Vec::len), Some(0));
    assert_eq!(
        kdl_files(&out),
        ["00-cluster.kdl", "10-ns-shop.kdl"],
        "{report}"
    );
    let ns = std::fs::read_to_string(out.join("10-ns-shop.kdl")).unwrap();
    assert_contains(&ns, "// NetworkPolicy shop/db-from-web, spec.ingress[0]");
    let o = ringfence(&["check", p(&out)]);
    assert_eq!(code(&o), 0, "{}", text(&o.stdout));
    let o = ringfence(&["fmt", p(&out), "--check"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stdout));

    let o = ringfence(&["matrix", p(&out), "--inventory", p(&m), "-o", "txt"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let lines: Vec<String> = text(&o.stdout).lines().map(str::to_owned).collect();
    // db is isolated for ingress: web on 5432 only; web is open to all.
    assert!(
        lines.contains(&"shop/web[Deployment] => shop/db[Deployment] : TCP 5432".to_owned()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"shop/db[Deployment] => shop/web[Deployment] : All Connections".to_owned()),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("[External] => shop/db")),
        "{lines:?}"
    );
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted);

    // The report as YAML reads back as the JSON one.
    let again = tmp.path().join("again");
    let o = ringfence(&["import", "k8s", p(&m), "--out", p(&again), "-o", "yaml"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    stdout_has(&o, "NetworkPolicy: 1");
}

#[test]
fn a_refused_object_writes_nothing_and_an_occupied_directory_is_not_touched() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = POLICY.replace("port: 5432", "port: 70000");
    let m = manifests(tmp.path(), &bad);
    let out = tmp.path().join("intent");
    let o = ringfence(&["import", "k8s", p(&m), "--out", p(&out)]);
    assert_eq!(code(&o), 1);
    stderr_has(
        &o,
        "np.yaml: NetworkPolicy shop/db-from-web: `spec.ingress[0].ports[0].port`",
    );
    stderr_has(&o, "nothing written");
    assert!(kdl_files(&out).iter().all(|f| !f.ends_with(".kdl")));

    let good = manifests(&tmp.path().join("good"), POLICY);
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("mine.kdl"), "// mine\n").unwrap();
    let o = ringfence(&["import", "k8s", p(&good), "--out", p(&out)]);
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("already holds intent (mine.kdl)"));
    assert_eq!(kdl_files(&out), ["mine.kdl"]);
    assert_eq!(
        std::fs::read_to_string(out.join("mine.kdl")).unwrap(),
        "// mine\n"
    );
}
