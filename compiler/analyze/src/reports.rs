//! `--reports DIR`: the agents' compliance reports (`schema/docs/reports.md`)
//! folded into the analysis — their rule counters into the per-policy
//! statistics, their state into a drift summary per node, compared with the
//! analysed version's IR for that node.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use ringfence_core::Compiled;
use ringfence_schema::ir::Action;
use ringfence_schema::report::{ComplianceReport, RuleCounter};

use crate::analysis::{AgentHits, Compliance, DriftCount, NodeCompliance, Unreadable};
use crate::error::AnalyzeError;
use crate::policies::PolicyTable;

/// The largest report read (a report lists every rule's counters).
const MAX_REPORT_BYTES: u64 = 64 << 20;

/// The reports of a directory: each `*.json` file, read or not.
#[derive(Clone, Debug)]
pub struct Reports {
    /// (file name, the report or why it could not be read), by file name.
    pub files: Vec<(String, Result<ComplianceReport, String>)>,
}

impl Reports {
    /// Read every `*.json` of `dir`. A file that is not a compliance report
    /// is kept as unreadable; a directory that cannot be listed or holds no
    /// `*.json` is an error.
    pub fn read_dir(dir: &Path) -> Result<Reports, AnalyzeError> {
        let entries = std::fs::read_dir(dir).map_err(|source| AnalyzeError::Reports {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Err(AnalyzeError::NoReports(dir.to_path_buf()));
        }
        let files = paths
            .into_iter()
            .map(|p| {
                let name = p
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                // Regular files only, capped: a FIFO or a huge file among
                // the reports is unreadable, never waited on or read whole.
                let r = ringfence_bundle::read_capped(&p, MAX_REPORT_BYTES + 1)
                    .map_err(|e| e.to_string())
                    .and_then(|b| match b.len() as u64 > MAX_REPORT_BYTES {
                        true => Err(format!("larger than {MAX_REPORT_BYTES} bytes")),
                        false => Ok(b),
                    })
                    .and_then(|b| {
                        serde_json::from_slice::<ComplianceReport>(&b).map_err(|e| {
                            format!("not a compliance report (schema/docs/reports.md): {e}")
                        })
                    });
                (name, r)
            })
            .collect();
        Ok(Reports { files })
    }
}

/// A report's status as it is written in JSON: the key `ringfence report`
/// and the analysis both count nodes by.
pub fn status_name(s: ringfence_schema::report::Status) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// What the agents counted for one policy key, over every node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyCount {
    /// Packets over every counter of the key on every node.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
    /// Nodes with at least one counter of the key (even at zero).
    pub nodes_counting: u64,
    /// Nodes whose counters of the key saw at least one packet.
    pub nodes_hit: u64,
}

/// The reports folded: the compliance summary and the counters summed per
/// policy key.
#[derive(Clone, Debug, Default)]
pub struct Folded<K> {
    /// Per node, statuses, unreadable files, unknown policies.
    pub compliance: Compliance,
    /// Counters per policy key.
    pub policies: BTreeMap<K, PolicyCount>,
}

/// Fold the reports into per-node compliance — the one fold behind
/// `ringfence report` and `ringfence analyze --reports`.
///
/// `key` names the policy a counter is summed under; `None` makes the
/// counter's policy unknown (`Compliance::unknown_policies`). With
/// `compiled`, each node is compared with that version's IR for it
/// (`current`, `unknown_rules`, `missing_rules`); without, no node is
/// current and every counted rule is unknown.
pub fn fold_reports<K: Ord + Clone>(
    reports: &Reports,
    compiled: Option<&Compiled>,
    mut key: impl FnMut(&RuleCounter) -> Option<K>,
) -> Folded<K> {
    let mut out = Compliance::default();
    let mut policies: BTreeMap<K, PolicyCount> = BTreeMap::new();
    let mut unknown_policies = BTreeSet::new();
    // The rule ids of each node's IR, by (cluster, node) and by node alone.
    let mut by_node: HashMap<(&str, &str), BTreeSet<&str>> = HashMap::new();
    let mut by_name: HashMap<&str, (&str, &str)> = HashMap::new();
    for ir in compiled.into_iter().flat_map(|c| c.nodes()) {
        let rules = ir
            .chains
            .iter()
            .flat_map(|c| &c.rules)
            .map(|r| r.id.as_str())
            .collect();
        by_node.insert((ir.cluster.as_str(), ir.node.as_str()), rules);
        by_name
            .entry(ir.node.as_str())
            .or_insert((ir.cluster.as_str(), ir.node.as_str()));
    }
    for (file, r) in &reports.files {
        let r = match r {
            Ok(r) => r,
            Err(error) => {
                out.unreadable.push(Unreadable {
                    file: file.clone(),
                    error: error.clone(),
                });
                continue;
            }
        };
        *out.statuses.entry(status_name(r.status)).or_default() += 1;
        let node_key = match &r.applied {
            Some(a) => Some((a.cluster.as_str(), r.node.as_str())),
            None => by_name.get(r.node.as_str()).copied(),
        };
        let expected = node_key.and_then(|k| by_node.get(&k));
        let mut counted: BTreeSet<&str> = BTreeSet::new();
        // Per key of this node: whether any of its counters saw a packet.
        let mut node_policies: BTreeMap<K, bool> = BTreeMap::new();
        let (mut allowed_packets, mut denied_packets) = (0, 0);
        for c in &r.counters {
            counted.insert(c.rule.as_str());
            match c.action {
                Action::Allow => allowed_packets += c.packets,
                Action::Deny => denied_packets += c.packets,
            }
            match key(c) {
                Some(k) => {
                    *node_policies.entry(k.clone()).or_default() |= c.packets > 0;
                    let p = policies.entry(k).or_default();
                    p.packets += c.packets;
                    p.bytes += c.bytes;
                }
                None => {
                    unknown_policies.insert(c.policy.clone());
                }
            }
        }
        for (k, any) in node_policies {
            let p = policies.entry(k).or_default();
            p.nodes_counting += 1;
            p.nodes_hit += u64::from(any);
        }
        let (unknown_rules, missing_rules) = match expected {
            Some(e) => (
                counted.difference(e).count() as u64,
                e.difference(&counted).count() as u64,
            ),
            None => (counted.len() as u64, 0),
        };
        out.nodes.push(NodeCompliance {
            file: file.clone(),
            node: r.node.clone(),
            status: r.status,
            generation: r.applied.as_ref().map(|a| a.generation),
            commit: r.applied.as_ref().and_then(|a| a.commit.clone()),
            applied_at: r.applied.as_ref().map(|a| a.applied_at.clone()),
            current: expected.is_some() && unknown_rules == 0 && missing_rules == 0,
            drift: DriftCount {
                missing: r.drift.missing.len() as u64,
                extra: r.drift.extra.len() as u64,
                changed: r.drift.changed.len() as u64,
            },
            unknown_rules,
            missing_rules,
            allowed_packets,
            denied_packets,
            apply_failures: r.apply_failures,
            verification_failures: r.verification_failures.values().sum(),
            last_error: r.last_error.clone(),
        });
    }
    out.unknown_policies = unknown_policies.into_iter().collect();
    Folded {
        compliance: out,
        policies,
    }
}

/// Fold the reports for the analysis: agent hits per policy of `table` (a
/// node counts when its counters of the policy saw a packet), and the
/// compliance summary against `compiled`.
pub(crate) fn fold(
    reports: &Reports,
    compiled: &Compiled,
    table: &PolicyTable,
) -> (Vec<AgentHits>, Compliance) {
    let f = fold_reports(reports, Some(compiled), |c| table.get(&c.policy));
    let mut hits = vec![AgentHits::default(); table.len()];
    for (p, n) in f.policies {
        hits[p as usize] = AgentHits {
            packets: n.packets,
            bytes: n.bytes,
            nodes: n.nodes_hit,
        };
    }
    (hits, f.compliance)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(node: &str, counters: &[(&str, &str, u64)]) -> ComplianceReport {
        let counters: Vec<_> = counters
            .iter()
            .map(|(rule, policy, packets)| {
                serde_json::json!({"rule": rule, "policy": policy, "action": "allow",
                                   "packets": packets, "bytes": packets * 10})
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "format": 1, "node": node, "generated_at": "2026-01-01T00:00:00Z",
            "status": "in-sync", "counters": counters, "apply_failures": 2,
            "drift": {"missing": [], "extra": [], "changed": []},
            "verification_failures": {"expired": 1, "signature": 3},
        }))
        .unwrap()
    }

    #[test]
    fn a_policy_counts_nodes_with_a_counter_and_nodes_with_packets() {
        let reports = Reports {
            files: vec![
                (
                    "a.json".into(),
                    Ok(report("a", &[("r1", "p", 0), ("r2", "p", 4)])),
                ),
                (
                    "b.json".into(),
                    Ok(report("b", &[("r1", "p", 0), ("r3", "q", 1)])),
                ),
                ("c.json".into(), Err("not a compliance report".into())),
            ],
        };
        let f = fold_reports(&reports, None, |c| {
            (c.policy != "q").then(|| c.policy.clone())
        });
        let p = PolicyCount {
            packets: 4,
            bytes: 40,
            nodes_counting: 2,
            nodes_hit: 1,
        };
        assert_eq!(
            f.policies.into_iter().collect::<Vec<_>>(),
            [("p".to_string(), p)]
        );
        assert_eq!(f.compliance.unknown_policies, ["q"]);
        assert_eq!(f.compliance.unreadable.len(), 1);
        assert_eq!(f.compliance.statuses["in-sync"], 2);
        let b = &f.compliance.nodes[1];
        assert_eq!((b.apply_failures, b.verification_failures), (2, 4));
        // Without a compile no node is current and every counted rule is unknown.
        assert_eq!((b.current, b.unknown_rules, b.missing_rules), (false, 2, 0));
    }

    #[test]
    fn a_fifo_or_an_oversized_report_is_unreadable_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("a.json");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let big = std::fs::File::create(dir.path().join("b.json")).unwrap();
        big.set_len(MAX_REPORT_BYTES + 10).unwrap();
        let r = Reports::read_dir(dir.path()).unwrap();
        let errors: Vec<&str> = r
            .files
            .iter()
            .map(|(_, r)| r.as_ref().unwrap_err().as_str())
            .collect();
        assert!(errors[0].contains("not a regular file"), "{errors:?}");
        assert!(errors[1].contains("larger than"), "{errors:?}");
    }
}
