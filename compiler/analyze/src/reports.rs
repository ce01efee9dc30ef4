//! `--reports DIR`: the agents' compliance reports (`schema/docs/reports.md`)
//! folded into the analysis — their rule counters into the per-policy
//! statistics, their state into a drift summary per node, compared with the
//! analysed version's IR for that node.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use ringfence_core::Compiled;
use ringfence_schema::ir::Action;
use ringfence_schema::report::ComplianceReport;

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

/// Fold the reports: agent hits per policy of `table`, and the compliance
/// summary.
pub(crate) fn fold(
    reports: &Reports,
    compiled: &Compiled,
    table: &PolicyTable,
) -> (Vec<AgentHits>, Compliance) {
    let mut hits = vec![AgentHits::default(); table.len()];
    let mut out = Compliance::default();
    let mut unknown_policies = BTreeSet::new();
    // The rule ids of each node's IR, by (cluster, node) and by node alone.
    let mut by_node: HashMap<(&str, &str), BTreeSet<&str>> = HashMap::new();
    let mut by_name: HashMap<&str, (&str, &str)> = HashMap::new();
    for ir in compiled.nodes() {
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
        let key = match &r.applied {
            Some(a) => Some((a.cluster.as_str(), r.node.as_str())),
            None => by_name.get(r.node.as_str()).copied(),
        };
        let expected = key.and_then(|k| by_node.get(&k));
        let mut counted: BTreeSet<&str> = BTreeSet::new();
        let mut counted_by_policy: BTreeMap<u32, bool> = BTreeMap::new();
        let (mut allowed_packets, mut denied_packets) = (0, 0);
        for c in &r.counters {
            counted.insert(c.rule.as_str());
            match c.action {
                Action::Allow => allowed_packets += c.packets,
                Action::Deny => denied_packets += c.packets,
            }
            match table.get(&c.policy) {
                Some(p) => {
                    let h = &mut hits[p as usize];
                    h.packets += c.packets;
                    h.bytes += c.bytes;
                    *counted_by_policy.entry(p).or_default() |= c.packets > 0;
                }
                None => {
                    unknown_policies.insert(c.policy.clone());
                }
            }
        }
        for (p, any) in counted_by_policy {
            if any {
                hits[p as usize].nodes += 1;
            }
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
            last_error: r.last_error.clone(),
        });
    }
    out.unknown_policies = unknown_policies.into_iter().collect();
    (hits, out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
