//! `ringfence report DIR`: summarise the compliance reports of many nodes
//! (`report.json` files the agents wrote or POSTed, one per node): status,
//! generation, drift and failures per node, then the policies with the most
//! hits across the fleet. Exit 1 when a node is not in sync or a report is
//! unreadable.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::bail;
use ringfence_analyze::{Reports, Unreadable, fold_reports, status_name};
use ringfence_schema::ir::Action;
use ringfence_schema::report::Status;
use serde::Serialize;

use crate::Exit;
use crate::flags::{Format, ReportArgs};

/// How many policies the text output lists.
const TOP: usize = 10;

/// One node's line.
#[derive(Debug, Serialize)]
struct NodeLine {
    file: String,
    node: String,
    status: Status,
    generation: Option<u64>,
    commit: Option<String>,
    applied_at: Option<String>,
    drift: usize,
    apply_failures: u64,
    verification_failures: u64,
    last_error: Option<String>,
}

/// Hits of one policy, summed over its rules on every node.
#[derive(Debug, Serialize)]
struct PolicyHits {
    policy: String,
    action: Action,
    packets: u64,
    bytes: u64,
    nodes: usize,
}

#[derive(Debug, Serialize)]
struct Summary {
    nodes: Vec<NodeLine>,
    statuses: BTreeMap<String, u64>,
    policies: Vec<PolicyHits>,
    unreadable: Vec<Unreadable>,
}

/// The reports folded by analyze's fold (`fold_reports`), policies keyed by
/// (policy, action) as the agents name them, no compile to compare with;
/// a policy's node count is the nodes with a counter of it, hit or not.
fn summarise(reports: &Reports) -> Summary {
    let f = fold_reports(reports, None, |c| Some((c.policy.clone(), c.action)));
    let mut nodes: Vec<NodeLine> = f
        .compliance
        .nodes
        .into_iter()
        .map(|n| NodeLine {
            file: n.file,
            node: n.node,
            status: n.status,
            generation: n.generation,
            commit: n.commit,
            applied_at: n.applied_at,
            drift: n.drift.total() as usize,
            apply_failures: n.apply_failures,
            verification_failures: n.verification_failures,
            last_error: n.last_error,
        })
        .collect();
    nodes.sort_by(|a, b| a.node.cmp(&b.node).then(a.file.cmp(&b.file)));
    let mut policies: Vec<PolicyHits> = f
        .policies
        .into_iter()
        .map(|((policy, action), n)| PolicyHits {
            policy,
            action,
            packets: n.packets,
            bytes: n.bytes,
            nodes: n.nodes_counting as usize,
        })
        .collect();
    policies.sort_by(|a, b| {
        b.packets
            .cmp(&a.packets)
            .then(a.policy.cmp(&b.policy))
            .then(a.action.cmp(&b.action))
    });
    Summary {
        nodes,
        statuses: f.compliance.statuses,
        policies,
        unreadable: f.compliance.unreadable,
    }
}

fn text(s: &Summary) -> String {
    let mut out = String::new();
    let w = s
        .nodes
        .iter()
        .map(|n| n.node.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        out,
        "{:w$}  {:10}  {:>10}  {:12}  {:>5}  {:>10}  {:>11}  LAST ERROR",
        "NODE", "STATUS", "GENERATION", "COMMIT", "DRIFT", "APPLY-FAIL", "VERIFY-FAIL"
    );
    for n in &s.nodes {
        let _ = writeln!(
            out,
            "{:w$}  {:10}  {:>10}  {:12}  {:>5}  {:>10}  {:>11}  {}",
            n.node,
            status_name(n.status),
            n.generation.map_or("-".into(), |g| g.to_string()),
            n.commit.as_deref().map_or("-", |c| &c[..c.len().min(12)]),
            n.drift,
            n.apply_failures,
            n.verification_failures,
            n.last_error.as_deref().unwrap_or("")
        );
    }
    let counts: Vec<String> = s.statuses.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let _ = writeln!(out, "\n{} node(s): {}", s.nodes.len(), counts.join(", "));
    if !s.policies.is_empty() {
        let _ = writeln!(out, "\nTop policies by hits:");
        for p in s.policies.iter().take(TOP) {
            let _ = writeln!(
                out,
                "  {:>12} packets  {:>14} bytes  {:5}  {}  ({} node(s))",
                p.packets, p.bytes, p.action, p.policy, p.nodes
            );
        }
    }
    for u in &s.unreadable {
        let _ = writeln!(out, "\nunreadable: {}: {}", u.file, u.error);
    }
    out
}

pub(crate) fn run(args: ReportArgs) -> anyhow::Result<Exit> {
    let s = summarise(&Reports::read_dir(&args.dir)?);
    if s.nodes.is_empty() && s.unreadable.is_empty() {
        bail!(
            "{}: no *.json compliance reports (agents write <state>/report.json; collect one per node)",
            args.dir.display()
        );
    }
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Txt => out.write_all(text(&s).as_bytes())?,
        f => crate::cmd::output::structured(&mut out, f == Format::Yaml, &s)?,
    }
    out.flush()?;
    let clean = s.unreadable.is_empty() && s.nodes.iter().all(|n| n.status == Status::InSync);
    Ok(if clean { Exit::Clean } else { Exit::Findings })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(node: &str, status: Status, hits: &[(&str, Action, u64)]) -> String {
        let counters: Vec<_> = hits
            .iter()
            .enumerate()
            .map(|(i, (p, a, n))| {
                serde_json::json!({"rule": format!("r{i}"), "policy": p, "action": a, "packets": n, "bytes": n * 60})
            })
            .collect();
        serde_json::json!({
            "format": 1, "node": node, "generated_at": "2026-01-01T00:00:00Z", "status": status,
            "applied": {"cluster": "c", "generation": 7, "bundle_sha256": "ab", "commit": "0123456789abcdef0123",
                        "applied_at": "2026-01-01T00:00:00Z", "expires_at": "2026-01-08T00:00:00Z", "backend": "nftables"},
            "drift": {"missing": [], "extra": ["rule ing@1"], "changed": []},
            "counters": counters,
            "verification_failures": {"expired": 2},
            "apply_failures": 1,
        })
        .to_string()
    }

    #[test]
    fn summarises_a_directory_of_reports() {
        let dir = std::env::temp_dir().join(format!("rf-report-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let write = |n: &str, t: String| std::fs::write(dir.join(n), t).unwrap();
        write(
            "b.json",
            report(
                "node-b",
                Status::Drifted,
                &[
                    ("shop/web", Action::Allow, 5),
                    ("shop/catch-all", Action::Deny, 9),
                ],
            ),
        );
        write(
            "a.json",
            report("node-a", Status::InSync, &[("shop/web", Action::Allow, 10)]),
        );
        write("c.json", "{\"format\": 1".into());
        write("notes.txt", "ignored".into());
        let s = summarise(&Reports::read_dir(&dir).unwrap());
        let names: Vec<&str> = s.nodes.iter().map(|n| n.node.as_str()).collect();
        assert_eq!(names, ["node-a", "node-b"]);
        assert_eq!(s.statuses["drifted"], 1);
        assert_eq!(s.nodes[1].drift, 1);
        assert_eq!(s.nodes[1].verification_failures, 2);
        let top: Vec<(&str, u64, usize)> = s
            .policies
            .iter()
            .map(|p| (p.policy.as_str(), p.packets, p.nodes))
            .collect();
        assert_eq!(top, [("shop/web", 15, 2), ("shop/catch-all", 9, 1)]);
        assert_eq!(s.unreadable.len(), 1);
        assert!(s.unreadable[0].error.contains("not a compliance report"));
        let t = text(&s);
        assert!(t.contains("node-b  drifted"), "{t}");
        assert!(t.contains("Top policies by hits:"), "{t}");
        assert!(t.contains("unreadable: c.json"), "{t}");
        let json: serde_json::Value = serde_json::to_value(&s).unwrap();
        assert_eq!(json["nodes"][0]["commit"], "0123456789abcdef0123");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
