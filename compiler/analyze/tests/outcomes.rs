//! Tables of flows with known verdicts and outcomes: every ordering rule
//! (quarantine, absolute before default, child default before parent
//! default, catch-all of the most specific scope, implicit catch-all,
//! analyze mode, not-managed sides, services) and each outcome.

use crate::common::*;
use ringfence_analyze::{Condition, Outcome, Usage};
use ringfence_intent::model::Proto::{Tcp, Udp};
use ringfence_schema::flow::NetworkVerdict::{Allowed, Dropped};
use ringfence_schema::ir::Action;

struct Row {
    what: &'static str,
    src: &'static str,
    dst: &'static str,
    port: u16,
    net: Option<ringfence_schema::flow::NetworkVerdict>,
    verdict: Action,
    /// Deciding policy per side, `-` when not managed.
    egress: &'static str,
    ingress: &'static str,
    outcome: Outcome,
}

const ROWS: &[Row] = &[
    Row {
        what: "a child default allows both sides (through the cluster IP)",
        src: "10.0.1.1",
        dst: "10.96.0.10",
        port: 80,
        net: Some(Allowed),
        verdict: ALLOW,
        egress: "app/web-to-api",
        ingress: "app/web-to-api",
        outcome: Outcome::Permitted,
    },
    Row {
        what: "the same, already translated by the observer",
        src: "10.0.1.4",
        dst: "10.0.1.2",
        port: 8080,
        net: Some(Allowed),
        verdict: ALLOW,
        egress: "app/web-to-api",
        ingress: "app/web-to-api",
        outcome: Outcome::Permitted,
    },
    Row {
        what: "an absolute parent deny beats a child default allow",
        src: "10.0.1.1",
        dst: "10.0.1.2",
        port: 23,
        net: Some(Dropped),
        verdict: DENY,
        egress: "top/no-telnet",
        ingress: "top/no-telnet",
        outcome: Outcome::Rejected,
    },
    Row {
        what: "a child default deny comes before the parent's default allow",
        src: "10.0.1.1",
        dst: "10.0.1.3",
        port: 5432,
        net: Some(Dropped),
        verdict: DENY,
        egress: "app/deny-db-from-web",
        ingress: "app/deny-db-from-web",
        outcome: Outcome::Rejected,
    },
    Row {
        what: "the parent's default allow where the child says nothing; dropped anyway",
        src: "10.0.1.2",
        dst: "10.0.1.3",
        port: 5432,
        net: Some(Dropped),
        verdict: ALLOW,
        egress: "top/top-db",
        ingress: "top/top-db",
        outcome: Outcome::Misdropped,
    },
    Row {
        what: "the catch-all of the most specific scope; the network let it through",
        src: "10.0.1.1",
        dst: "10.0.1.3",
        port: 6379,
        net: Some(Allowed),
        verdict: DENY,
        egress: "app/catch-all-egress",
        ingress: "app/catch-all-ingress",
        outcome: Outcome::Escaped,
    },
    Row {
        what: "no catch-all up the tree: the implicit allow of the top scope",
        src: "10.0.3.1",
        dst: "192.0.2.7",
        port: 443,
        net: None,
        verdict: ALLOW,
        egress: "top/implicit-catch-all-egress",
        ingress: "-",
        outcome: Outcome::Allowed,
    },
    Row {
        what: "analyze mode: denied by policy, passed by the network",
        src: "10.0.3.1",
        dst: "10.0.2.1",
        port: 9999,
        net: Some(Allowed),
        verdict: DENY,
        egress: "top/implicit-catch-all-egress",
        ingress: "lab/catch-all-ingress",
        outcome: Outcome::Escaped,
    },
    Row {
        what: "quarantine comes before everything",
        src: "10.0.1.9",
        dst: "10.0.1.2",
        port: 8080,
        net: None,
        verdict: DENY,
        egress: "quarantine/deny-egress",
        ingress: "app/catch-all-ingress",
        outcome: Outcome::WouldBlock,
    },
    Row {
        what: "a quarantine exception lets corp in",
        src: "192.0.2.7",
        dst: "10.0.1.9",
        port: 22,
        net: Some(Allowed),
        verdict: ALLOW,
        egress: "-",
        ingress: "quarantine/from-corp",
        outcome: Outcome::Permitted,
    },
    Row {
        what: "an external through a node port (egress not managed)",
        src: "192.0.2.8",
        dst: "192.168.0.2",
        port: 30080,
        net: Some(Allowed),
        verdict: ALLOW,
        egress: "-",
        ingress: "app/corp-to-web",
        outcome: Outcome::Permitted,
    },
    Row {
        what: "an unknown source to a port nobody opened",
        src: "203.0.113.5",
        dst: "10.0.1.1",
        port: 8080,
        net: Some(Dropped),
        verdict: DENY,
        egress: "-",
        ingress: "app/catch-all-ingress",
        outcome: Outcome::Rejected,
    },
];

#[test]
fn every_ordering_rule_and_outcome() {
    let v = build(intent_("80"), &inventory_());
    let flows: Vec<_> = ROWS
        .iter()
        .enumerate()
        .map(|(i, r)| flow(r.src, r.dst, Tcp, Some(r.port), r.net, i as i64))
        .collect();
    let a = analyse(v.version("HEAD"), None, &flows);
    assert_eq!(a.conversations.len(), ROWS.len());
    for (r, f) in ROWS.iter().zip(&flows) {
        let c = a
            .conversations
            .iter()
            .find(|c| c.src == f.src && c.dst == f.dst && c.port == f.port)
            .unwrap_or_else(|| panic!("{}: no conversation", r.what));
        let policy =
            |s: &ringfence_core::explain::SideInfo| s.policy_id().unwrap_or("-").to_string();
        assert_eq!(
            (
                c.judgement.verdict,
                policy(&c.judgement.egress).as_str(),
                policy(&c.judgement.ingress).as_str(),
            ),
            (r.verdict, r.egress, r.ingress),
            "{}: {c:#?}",
            r.what
        );
        assert_eq!(
            c.outcomes.keys().copied().collect::<Vec<_>>(),
            [r.outcome],
            "{}",
            r.what
        );
        // The same as `explain` between the two addresses.
        let cc = &v.compiled;
        let x = cc
            .explain(
                &cc.peer(r.src).unwrap(),
                &cc.peer(r.dst).unwrap(),
                Tcp,
                Some(r.port),
            )
            .unwrap();
        assert_eq!(
            (x.verdict, &x.egress, &x.ingress),
            (
                c.judgement.verdict,
                &c.judgement.egress,
                &c.judgement.ingress
            ),
            "{}",
            r.what
        );
    }
    // Each outcome once per row that has it.
    for o in Outcome::ALL {
        let want = ROWS.iter().filter(|r| r.outcome == o).count() as u64;
        assert_eq!(a.totals.outcomes[&o].flows, want, "{o}");
    }
    assert!(
        a.has_findings(),
        "escaped and misdropped flows are findings"
    );

    // Places and the scope graph.
    let c = |src: &str, port: u16| {
        a.conversations
            .iter()
            .find(|c| c.src == ip(src) && c.port == Some(port))
            .unwrap()
    };
    let web_api = c("10.0.1.1", 80);
    assert_eq!(
        (web_api.from.as_str(), web_api.to.as_str()),
        ("app/web[Deployment]", "app/api-1[Pod]")
    );
    assert_eq!(
        web_api.judgement.via.as_deref(),
        Some("cluster IP 10.96.0.10:80 -> 10.0.1.2:8080")
    );
    let corp = c("192.0.2.8", 30080);
    assert_eq!(
        (corp.from.as_str(), corp.from_scope.as_str()),
        ("corp[External]", "corp[External]")
    );
    assert_eq!(corp.to_scope, "app");
    assert!(
        corp.judgement
            .via
            .as_deref()
            .unwrap()
            .starts_with("node port 192.168.0.2:30080 -> ")
    );
    assert_eq!(c("203.0.113.5", 8080).from_scope, "(unknown)");
    let edge = |from: &str, to: &str| {
        a.graph
            .iter()
            .find(|e| e.from == from && e.to == to)
            .unwrap_or_else(|| panic!("no edge {from} -> {to}"))
    };
    assert_eq!(edge("app", "app").flows[&Outcome::Rejected], 2);
    assert_eq!(edge("top", "lab").flows[&Outcome::Escaped], 1);
}

#[test]
fn policy_statistics_and_conditions() {
    let v = build(intent_("80"), &inventory_());
    let mut flows = vec![
        // web-1 → api three times over ten minutes, web-2 never.
        flow("10.0.1.1", "10.96.0.10", Tcp, Some(80), Some(Allowed), 0),
        flow("10.0.1.1", "10.96.0.10", Tcp, Some(80), Some(Allowed), 5),
        flow("10.0.1.1", "10.96.0.10", Tcp, Some(80), Some(Allowed), 10),
        // api → db: top/top-db, one of many consumers.
        flow("10.0.1.2", "10.0.1.3", Tcp, Some(5432), Some(Allowed), 3),
        // DNS to nowhere: the implicit catch-all.
        flow("10.0.3.1", "10.0.9.9", Udp, Some(53), None, 4),
    ];
    flows[1].bytes = 5000;
    let a = analyse(v.version("HEAD"), None, &flows);
    let p = |id: &str| {
        a.policies
            .iter()
            .find(|p| p.policy.id == id)
            .unwrap_or_else(|| panic!("no policy {id}"))
    };
    let w = p("app/web-to-api");
    assert_eq!((w.hits.flows, w.hits.packets, w.hits.bytes), (3, 30, 7000));
    assert_eq!(w.first_hit.as_deref(), Some("2024-05-01T12:00:00Z"));
    assert_eq!(w.last_hit.as_deref(), Some("2024-05-01T12:10:05Z"));
    assert_eq!(w.outcomes[&Outcome::Permitted], 3);
    // Consumers: web-1 and web-2; one used it.
    assert_eq!(
        w.consumers,
        Some(Usage {
            seen: 1,
            members: 2
        })
    );
    assert_eq!(
        w.providers,
        Some(Usage {
            seen: 1,
            members: 1
        })
    );
    assert!(w.conditions.is_empty(), "{:?}", w.conditions);

    let db = p("top/top-db");
    assert_eq!(db.hits.flows, 1);
    let consumers = db.consumers.unwrap();
    assert_eq!(consumers.seen, 1);
    assert!(consumers.members >= 4, "{consumers:?}");
    assert_eq!(db.conditions, [Condition::Broad]);

    assert_eq!(p("app/never-used").conditions, [Condition::NoTraffic]);
    let shadowed = p("app/web-telnet");
    assert_eq!(shadowed.conditions, [Condition::Overshadowed]);
    assert_eq!(shadowed.shadowed_by, ["top/no-telnet"]);
    // Catch-alls are listed but never "no traffic".
    assert!(p("app/catch-all-ingress").conditions.is_empty());
    assert_eq!(p("top/implicit-catch-all-egress").hits.flows, 1);

    // Global order: absolute, then default (child scope first), then catch-alls.
    let ids: Vec<&str> = a.policies.iter().map(|p| p.policy.id.as_str()).collect();
    let pos = |id| ids.iter().position(|x| *x == id).unwrap();
    assert!(pos("top/no-telnet") < pos("app/web-to-api"));
    assert!(pos("app/web-to-api") < pos("top/top-db"));
    assert!(pos("top/top-db") < pos("app/catch-all-ingress"));

    // The timeline covers the ten minutes, one-minute buckets.
    assert_eq!(a.timeline.bucket_seconds, 60);
    assert_eq!(a.timeline.buckets.len(), 11);
    assert_eq!(a.timeline.buckets[0].start, "2024-05-01T12:00:00Z");
    let total: u64 = a
        .timeline
        .buckets
        .iter()
        .flat_map(|b| b.flows.values())
        .sum();
    assert_eq!(total, 5);
    assert!(!a.has_findings(), "nothing escaped or misdropped");
}

#[test]
fn results_do_not_depend_on_workers_or_order() {
    let v = build(intent_("80"), &inventory_());
    let mut flows: Vec<_> = ROWS
        .iter()
        .cycle()
        .take(ROWS.len() * 7)
        .enumerate()
        .map(|(i, r)| flow(r.src, r.dst, Tcp, Some(r.port), r.net, (i * 13 % 50) as i64))
        .collect();
    let one = serde_json::to_string(&analyse(v.version("HEAD"), None, &flows)).unwrap();
    flows.reverse();
    let a = ringfence_analyze::Analyzer::new(v.version("HEAD"), None, Default::default());
    let mut tallies: Vec<_> = (0..3).map(|_| a.tally()).collect();
    for (i, f) in flows.iter().enumerate() {
        tallies[i % 3].add(f);
    }
    let mut t = tallies.pop().unwrap();
    for other in tallies {
        t.merge(other);
    }
    let three = serde_json::to_string(&a.finish(t, Default::default(), None)).unwrap();
    assert_eq!(one, three);
}
