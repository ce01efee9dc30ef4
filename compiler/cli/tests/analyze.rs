//! `ringfence analyze` as a user runs it: the real binary on intent in a
//! real Git repository (two commits), flow files in the three formats (one
//! committed in the repository), compliance reports; exit codes 0 (nothing
//! to look at), 1 (findings, invalid intent) and 2 (could not run).

use std::path::PathBuf;
use std::process::Output;

use git2::Repository;
use ringfence_testkit::git::commit_all;
use ringfence_testkit::synth::kubectl_list;
use serde_json::Value;

use crate::cli::{code, item, p, ringfence, stderr_has, stdout_has, text};
use crate::common;
use ringfence_testkit::text::assert_contains;

fn record(src: &str, dst: &str, port: u16, verdict: &str, minute: u32) -> String {
    format!(
        "{{\"src_ip\":\"{src}\",\"dst_ip\":\"{dst}\",\"proto\":\"tcp\",\"dst_port\":{port},\
         \"packets\":4,\"bytes\":400,\"first_seen\":\"2024-05-01T12:{minute:02}:00Z\",\
         \"last_seen\":\"2024-05-01T12:{minute:02}:09Z\",\"verdict\":\"{verdict}\"}}\n"
    )
}

/// A repository whose first commit lets web call api on 80 and 443 and
/// whose second narrows that to 80; the inventory and three flow files.
struct Setup {
    dir: tempfile::TempDir,
    inventory: PathBuf,
    flows: Vec<PathBuf>,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let repo = Repository::init(root).unwrap();
        std::fs::create_dir_all(root.join("policies")).unwrap();
        std::fs::create_dir_all(root.join("flows")).unwrap();

        // Flows everyone agrees on, committed with the intent.
        let mut jsonl = String::new();
        for (i, src) in ["10.0.1.1", "10.0.1.4"].iter().enumerate() {
            jsonl += &record(src, "10.96.0.10", 80, "allowed", i as u32);
            jsonl += &record(src, "10.0.1.2", 8080, "allowed", 2 + i as u32);
        }
        jsonl += &record("10.0.1.2", "10.0.1.3", 5432, "allowed", 5);
        std::fs::write(root.join("flows/captured.jsonl"), &jsonl).unwrap();
        let write_intent = |ports: &str| {
            std::fs::write(
                root.join("policies/intent.kdl"),
                &*common::intent_(ports).files[0].text,
            )
            .unwrap();
        };
        write_intent("80,443");
        commit_all(&repo, "web may call api on 80 and 443");
        write_intent("80");
        commit_all(&repo, "narrow web-to-api to 80");

        let inventory = root.join("inventory.json");
        let inv = common::inventory_();
        std::fs::write(
            &inventory,
            serde_json::to_string(&kubectl_list(&inv.clusters[0])).unwrap(),
        )
        .unwrap();
        // Traffic to 443 (8443 on the pod), seen by Hubble and by conntrack
        // (translated from the cluster IP).
        let hubble = root.join("hubble.json");
        std::fs::write(&hubble, include_str!("fixtures/analyze/hubble.json")).unwrap();
        let conntrack = root.join("conntrack.txt");
        std::fs::write(&conntrack, include_str!("fixtures/analyze/conntrack.txt")).unwrap();
        Setup {
            flows: vec![root.join("flows/captured.jsonl"), hubble, conntrack],
            inventory,
            dir,
        }
    }

    fn policies(&self) -> PathBuf {
        self.dir.path().join("policies")
    }

    fn analyze(&self, flows: &[PathBuf], extra: &[&str]) -> Output {
        let policies = self.policies();
        let mut args = vec!["analyze", p(&policies), "--inventory", p(&self.inventory)];
        args.extend(flows.iter().flat_map(|f| ["--flows", p(f)]));
        args.extend(extra);
        ringfence(&args)
    }
}

#[test]
fn the_what_if_of_a_change_in_a_repository() {
    let s = Setup::new();
    let o = s.analyze(
        &s.flows,
        &["--rev", "HEAD", "--against", "HEAD~1", "--format", "json"],
    );
    assert_eq!(code(&o), 1, "a change is a finding: {}", text(&o.stderr));
    let a: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        a["version"].as_str().unwrap().starts_with("HEAD ("),
        "{}",
        a["version"]
    );
    assert!(a["against"].as_str().unwrap().starts_with("HEAD~1 ("));
    let formats: Vec<&str> = a["input"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["format"].as_str().unwrap())
        .collect();
    assert_eq!(formats, ["ringfence", "hubble", "conntrack"]);
    assert_eq!(a["totals"]["all"]["flows"], 7);
    // Exactly the two conversations to 443 (8443 on the pod) change.
    assert_eq!(a["changes"]["conversations"], 2, "{:#}", a["conversations"]);
    for c in a["conversations"].as_array().unwrap() {
        let port = c["port"].as_u64().unwrap();
        let changed = c["verdict"] != c["against"]["verdict"];
        assert_eq!(changed, port == 443 || port == 8443, "{c:#}");
    }
    let g = &a["changes"]["groups"][0];
    assert_eq!(g["before"]["ingress"], "app/web-to-api");
    assert_eq!(g["after"]["ingress"], "app/catch-all-ingress");
    // The conntrack entry was judged at the backend the cluster IP chose.
    let nat = item(&a["conversations"], |c| c["orig_dst"] == "10.96.0.10");
    assert_eq!(
        (nat["dst"].as_str(), nat["port"].as_u64()),
        (Some("10.0.1.2"), Some(8443))
    );

    // Text says the same for people.
    let o = s.analyze(&s.flows, &["--rev", "HEAD", "--against", "HEAD~1"]);
    assert_eq!(code(&o), 1);
    stdout_has(&o, "changes against HEAD~1 (");
    stdout_has(&o, "app/web[Deployment] -> app/api-1[Pod] tcp/");
}

#[test]
fn agreed_traffic_is_clean_and_html_goes_to_a_file() {
    let s = Setup::new();
    // Before the narrowing, every flow is permitted: nothing to look at.
    let o = s.analyze(&s.flows, &["--rev", "HEAD~1"]);
    assert_eq!(code(&o), 0, "{}\n{}", text(&o.stdout), text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.starts_with("analysis of HEAD~1 ("), "{out}");
    assert_contains(&out, "permitted               7");

    let page = s.dir.path().join("out/analysis.html");
    std::fs::create_dir_all(page.parent().unwrap()).unwrap();
    let o = s.analyze(&s.flows, &["--format", "html", "--out", p(&page)]);
    assert_eq!(code(&o), 1, "the working tree (narrowed) lets flows escape");
    assert!(o.stdout.is_empty(), "the page goes to --out");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("id=\"total-escaped\">2<"));
    assert!(!html.contains("http://") && !html.contains("https://"));
}

#[test]
fn reports_add_compliance() {
    let s = Setup::new();
    let reports = s.dir.path().join("reports");
    std::fs::create_dir_all(&reports).unwrap();
    std::fs::write(
        reports.join("n1.json"),
        r#"{"format":1,"node":"n1","generated_at":"2024-05-01T13:00:00Z","status":"drifted",
            "drift":{"missing":["rule x/y"],"extra":[],"changed":[]},
            "counters":[{"rule":"r-1","policy":"app/web-to-api","action":"allow","packets":12,"bytes":1200}]}"#,
    )
    .unwrap();
    let o = s.analyze(
        &s.flows[..1],
        &["--reports", p(&reports), "--format", "json"],
    );
    assert_eq!(
        code(&o),
        1,
        "a drifted node is a finding: {}",
        text(&o.stderr)
    );
    let a: Value = serde_json::from_slice(&o.stdout).unwrap();
    let n = &a["compliance"]["nodes"][0];
    assert_eq!(
        (n["node"].as_str(), n["status"].as_str()),
        (Some("n1"), Some("drifted"))
    );
    assert_eq!(n["current"], false);
    assert_eq!(n["drift"]["missing"], 1);
    let p = item(&a["policies"], |p| p["id"] == "app/web-to-api");
    assert_eq!(p["agents"]["packets"], 12);
}

#[test]
fn bad_input_says_what_and_where() {
    let s = Setup::new();
    // A flow file that is not there.
    let missing = s.dir.path().join("nope.jsonl");
    let o = s.analyze(&[missing], &[]);
    assert_eq!(code(&o), 2);
    stderr_has(&o, "nope.jsonl");
    // A file in no flow format.
    let csv = s.dir.path().join("flows.csv");
    std::fs::write(&csv, "time,src,dst\n").unwrap();
    let o = s.analyze(&[csv], &[]);
    assert_eq!(code(&o), 2);
    stderr_has(&o, "flows.csv:1: cannot tell the flow format");
    // A report directory without reports.
    let empty = s.dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = s.analyze(&s.flows, &["--reports", p(&empty)]);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("--reports: ")
            && text(&o.stderr).contains("no compliance reports"),
        "{}",
        text(&o.stderr)
    );
    // A revision that does not exist.
    let o = s.analyze(&s.flows, &["--against", "no-such-rev"]);
    assert_eq!(code(&o), 2);
    stderr_has(&o, "no-such-rev");
    // Intent with errors: shown, exit 1, nothing analysed.
    std::fs::write(
        s.policies().join("broken.kdl"),
        "scope \"x\" {\n  query {\n",
    )
    .unwrap();
    let o = s.analyze(&s.flows, &[]);
    assert_eq!(code(&o), 1);
    assert!(o.stdout.is_empty());
    stderr_has(&o, "broken.kdl");
}
