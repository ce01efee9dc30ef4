//! Agents' compliance reports folded into the analysis: their counters
//! become per-policy hits, their state a drift summary per node, compared
//! with the analysed version's IR for the node.

use ringfence_analyze::{AnalyzeError, Analyzer, Condition, Input, Options, Reports};
use ringfence_schema::report::{
    AppliedBundle, ComplianceReport, Drift, REPORT_FORMAT, RuleCounter, Status,
};

use crate::common::*;
use ringfence_testkit::text::assert_contains;

fn report(node: &str, status: Status, counters: Vec<RuleCounter>) -> ComplianceReport {
    ComplianceReport {
        format: REPORT_FORMAT,
        node: node.to_string(),
        generated_at: "2024-05-01T13:00:00Z".into(),
        status,
        applied: Some(AppliedBundle {
            cluster: "c1".into(),
            generation: 7,
            bundle_sha256: "ab".repeat(32),
            commit: Some("3f9c2e1".into()),
            applied_at: "2024-05-01T11:00:00Z".into(),
            expires_at: "2024-05-08T11:00:00Z".into(),
            backend: "nftables".into(),
        }),
        drift: Drift::default(),
        counters,
        verification_failures: Default::default(),
        apply_failures: 0,
        last_error: None,
    }
}

#[test]
fn reports_fold_into_policies_and_nodes() {
    let v = build(intent_("80"), &inventory_());
    let c = &v.compiled;
    let counters = |node: &str| -> Vec<RuleCounter> {
        let ir = c.nodes().iter().find(|n| n.node == node).unwrap();
        ir.chains
            .iter()
            .flat_map(|ch| &ch.rules)
            .map(|r| RuleCounter {
                rule: r.id.clone(),
                policy: r.policy.clone(),
                action: r.action,
                // Only `app/never-used` and the catch-alls count packets.
                packets: match r.policy.as_str() {
                    "app/never-used" => 5,
                    p if p.contains("catch-all") => 2,
                    _ => 0,
                },
                bytes: if r.policy == "app/never-used" { 500 } else { 0 },
            })
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, r: &ComplianceReport| {
        std::fs::write(dir.path().join(name), serde_json::to_vec(r).unwrap()).unwrap();
    };
    // n1 enforces exactly this version.
    write("n1.json", &report("n1", Status::InSync, counters("n1")));
    // n2 drifted: one rule gone from the kernel, one from another version.
    let mut n2 = counters("n2");
    n2.pop();
    n2.push(RuleCounter {
        rule: "old-rule-0123456789ab".into(),
        policy: "app/retired".into(),
        action: ringfence_schema::ir::Action::Allow,
        packets: 9,
        bytes: 900,
    });
    let mut r2 = report("n2", Status::Drifted, n2);
    r2.drift.missing.push("rule in_x/r-1".into());
    r2.drift.changed.push("set s elements -10.0.0.1".into());
    write("n2.json", &r2);
    std::fs::write(dir.path().join("junk.json"), b"{\"not\": \"a report\"}").unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"ignored").unwrap();

    let reports = Reports::read_dir(dir.path()).unwrap();
    assert_eq!(reports.files.len(), 3, "only *.json");
    let a = Analyzer::new(v.version("HEAD"), None, Options::default());
    let t = a.tally();
    let analysis = a.finish(t, Input::default(), Some(&reports));

    let comp = analysis.compliance.as_ref().unwrap();
    assert_eq!(comp.nodes.len(), 2);
    let (n1, n2) = (&comp.nodes[0], &comp.nodes[1]);
    assert_eq!((n1.node.as_str(), n1.current), ("n1", true));
    assert_eq!((n1.unknown_rules, n1.missing_rules), (0, 0));
    assert_eq!((n2.node.as_str(), n2.current), ("n2", false));
    assert_eq!((n2.unknown_rules, n2.missing_rules), (1, 1));
    assert_eq!(
        (n2.drift.missing, n2.drift.extra, n2.drift.changed),
        (1, 0, 1)
    );
    assert_eq!(n2.generation, Some(7));
    assert_eq!(comp.statuses["in-sync"], 1);
    assert_eq!(comp.statuses["drifted"], 1);
    assert_eq!(comp.unreadable.len(), 1);
    assert_eq!(comp.unreadable[0].file, "junk.json");
    assert!(comp.unreadable[0].error.contains("not a compliance report"));
    assert_eq!(comp.unknown_policies, ["app/retired"]);

    // Counted by agents: not "no traffic" although no flow was given.
    let p = |id: &str| {
        analysis
            .policies
            .iter()
            .find(|p| p.policy.id == id)
            .unwrap()
    };
    let never = p("app/never-used");
    let hits = never.agents.unwrap();
    assert!(hits.packets >= 5 && hits.nodes >= 1, "{hits:?}");
    assert!(!never.conditions.contains(&Condition::NoTraffic));
    assert_eq!(p("top/top-db").conditions, [Condition::NoTraffic]);
    assert!(analysis.has_findings(), "a drifted node is a finding");
    let text = analysis.to_string();
    assert!(text.contains("  n2: drifted, generation 7, not on this version (1 rule(s) unknown, 1 missing), drift: 1 missing, 0 extra, 1 changed"), "{text}");
    assert_contains(&text, "  junk.json: unreadable: not a compliance report");
}

#[test]
fn a_report_directory_must_hold_reports() {
    let dir = tempfile::tempdir().unwrap();
    let e = Reports::read_dir(dir.path()).unwrap_err();
    assert!(matches!(e, AnalyzeError::NoReports(_)));
    assert!(
        e.to_string().contains("no compliance reports (*.json)"),
        "{e}"
    );
    let missing = dir.path().join("nope");
    let e = Reports::read_dir(&missing).unwrap_err();
    assert!(
        e.to_string()
            .contains("nope: cannot read the report directory"),
        "{e}"
    );
}
