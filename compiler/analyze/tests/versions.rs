//! Two versions of the intent in a real Git repository (made with git2):
//! the second narrows `app/web-to-api` from tcp 80 and 443 to tcp 80, and
//! exactly the flows to 443 change verdict.

use std::path::Path;

use git2::Repository;
use ringfence_analyze::{Observed, Version};
use ringfence_driver::{IntentFrom, Pipeline, Session};
use ringfence_intent::model::Proto::{Tcp, Udp};
use ringfence_schema::flow::NetworkVerdict::Allowed;
use ringfence_schema::ir::Action;
use ringfence_testkit::git::commit_all;
use ringfence_testkit::synth::kubectl_list;

use crate::common::*;

fn commit(repo: &Repository, dir: &Path, ports: &str, msg: &str) {
    let intent = intent_(ports);
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(dir.join("policies/intent.kdl"), &*intent.files[0].text).unwrap();
    commit_all(repo, msg);
}

fn session(repo: &Path, rev: &str, inventory: &Path) -> Session {
    let from = IntentFrom::Repo {
        repo,
        subdir: "policies",
        rev,
    };
    Pipeline::new()
        .session(&from, &[inventory.to_path_buf()], &[])
        .unwrap_or_else(|e| panic!("{rev}: {e}"))
        .output
        .unwrap_or_else(|| panic!("{rev} does not compile"))
}

fn version<'a>(s: &'a Session, label: &'a str) -> Version<'a> {
    Version::new(label, &s.intent, &s.compiled, &s.warnings.0)
}

#[test]
fn narrowing_a_policy_changes_exactly_its_flows() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(dir.path()).unwrap();
    let inv = dir.path().join("inventory.json");
    let inventory = inventory_();
    std::fs::write(
        &inv,
        serde_json::to_string(&kubectl_list(&inventory.clusters[0])).unwrap(),
    )
    .unwrap();
    commit(
        &repo,
        dir.path(),
        "80,443",
        "web may call api on 80 and 443",
    );
    commit(&repo, dir.path(), "80", "narrow web-to-api to 80");

    let base = session(dir.path(), "HEAD~1", &inv);
    let narrowed = session(dir.path(), "HEAD", &inv);

    // Everything the scenario does, plus web to api on both ports, through
    // the cluster IP and already translated.
    let mut flows: Vec<Observed> = Vec::new();
    let mut minute = 0;
    let mut add = |src: &str, dst: &str, proto, port| {
        flows.push(flow(src, dst, proto, Some(port), Some(Allowed), minute));
        minute += 1;
    };
    for src in ["10.0.1.1", "10.0.1.4"] {
        add(src, "10.96.0.10", Tcp, 80);
        add(src, "10.96.0.10", Tcp, 443);
        add(src, "10.0.1.2", Tcp, 8080);
        add(src, "10.0.1.2", Tcp, 8443);
        add(src, "10.0.1.3", Tcp, 5432);
        add(src, "10.0.1.2", Tcp, 23);
    }
    add("10.0.1.2", "10.0.1.3", Tcp, 5432);
    add("10.0.3.1", "10.0.2.1", Tcp, 9999);
    add("10.0.3.1", "192.0.2.1", Udp, 53);
    add("192.0.2.7", "10.0.1.9", Tcp, 22);
    add("192.0.2.8", "192.168.0.1", Tcp, 30080);

    let (now, before) = (version(&narrowed, "HEAD"), version(&base, "HEAD~1"));
    let analysis = analyse(now, Some(before), &flows);

    let changes = analysis.changes.as_ref().expect("changes with --against");
    // web-1 and web-2, each through the cluster IP (443) and translated (8443).
    assert_eq!(changes.conversations, 4, "{changes:#?}");
    assert_eq!(changes.flows, 4);
    for c in &analysis.conversations {
        let to_443 = c.dst == ip("10.96.0.10") && c.port == Some(443)
            || c.dst == ip("10.0.1.2") && c.port == Some(8443);
        let before = c.against.as_ref().unwrap();
        if to_443 {
            assert_eq!(
                (before.verdict, c.judgement.verdict),
                (Action::Allow, Action::Deny),
                "{c:#?}"
            );
            assert_eq!(before.ingress.policy_id(), Some("app/web-to-api"));
            assert_eq!(
                c.judgement.ingress.policy_id(),
                Some("app/catch-all-ingress")
            );
        } else {
            // Same verdict; the rules may be renamed (their content moved).
            assert_eq!(before.verdict, c.judgement.verdict, "{c:#?}");
            assert_eq!(
                before.egress.policy_id(),
                c.judgement.egress.policy_id(),
                "{c:#?}"
            );
            assert_eq!(
                before.ingress.policy_id(),
                c.judgement.ingress.policy_id(),
                "{c:#?}"
            );
        }
    }
    // One group per workload pair and before/after.
    assert_eq!(changes.groups.len(), 1, "{:#?}", changes.groups);
    let g = &changes.groups[0];
    assert_eq!(
        (g.from.as_str(), g.to.as_str(), g.ports.as_slice()),
        ("app/web[Deployment]", "app/api-1[Pod]", &[443, 8443][..])
    );
    assert_eq!(g.before.egress.as_deref(), Some("app/web-to-api"));
    assert_eq!(g.after.egress.as_deref(), Some("app/catch-all-egress"));
    assert_eq!(g.conversations, 4);
    assert!(analysis.has_findings(), "a change is a finding");

    // The same version against itself changes nothing.
    let (now, before) = (version(&base, "HEAD~1"), version(&base, "HEAD~1"));
    let none = analyse(now, Some(before), &flows);
    assert_eq!(none.changes.unwrap().conversations, 0);
}
