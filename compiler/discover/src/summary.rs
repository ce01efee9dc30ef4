//! The summary of a discovery run: what was read, what became policy and
//! what was left out, as text or JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ringfence_flows::ReadStats;
use serde::Serialize;

use crate::select::Selection;

/// What a run did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// The settings it ran with.
    pub settings: Settings,
    /// Every flow read, and where it went.
    pub flows: FlowCounts,
    /// Conversations (consumer, provider, protocol, port) found.
    pub conversations: ConversationCounts,
    /// The groups written as filters and externals.
    pub groups: Vec<Group>,
    /// The policies written.
    pub policies: Vec<PolicySummary>,
    /// Policies removed because broader ones cover them.
    pub redundant_removed: usize,
    /// Units merged because they behave alike.
    pub merged_units: usize,
    /// The files written, relative to the output directory.
    pub files: Vec<String>,
    /// Things to know about the result.
    pub notes: Vec<String>,
    /// Per input file: format and line counts.
    pub inputs: ReadStats,
}

/// The settings of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Settings {
    /// `cluster`, `namespace`, `coarse` or `fine`.
    pub granularity: String,
    /// `off`, `low`, `medium` or `high`.
    pub port_generalization: String,
    /// Conversations seen fewer times were left out.
    pub min_flows: u64,
    /// `--scope`, if given.
    pub scope: Option<String>,
    /// The exclusion rules, by name.
    pub exclusions: Vec<String>,
}

/// Where the flows went. `read` = `dropped_by_network` + `excluded` +
/// `unknown_addresses` + `ambiguous_addresses` + `outside_inventory` +
/// `replies_detected` + `below_min_flows` + `covered`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FlowCounts {
    /// Input lines.
    pub lines: u64,
    /// Flow records read.
    pub read: u64,
    /// Lines that could not be read.
    pub unparsable: u64,
    /// Records marked as replies by their source (Hubble), skipped.
    pub replies_marked: u64,
    /// Lines that are not flows (other events, footers, other protocols).
    pub not_flows: u64,
    /// Flows the network dropped: not evidence of a needed conversation.
    pub dropped_by_network: u64,
    /// Flows an exclusion rule matched.
    pub excluded: u64,
    /// Per exclusion rule.
    pub excluded_by: BTreeMap<String, u64>,
    /// Flows with an in-cluster address no object has.
    pub unknown_addresses: u64,
    /// Flows with an address several clusters use.
    pub ambiguous_addresses: u64,
    /// Flows with neither end in the inventory.
    pub outside_inventory: u64,
    /// Flows recognised as replies (to an ephemeral port, reverse conversation seen).
    pub replies_detected: u64,
    /// Flows of conversations seen fewer than `--min-flows` times.
    pub below_min_flows: u64,
    /// Flows that a written policy allows.
    pub covered: u64,
}

/// Conversations found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ConversationCounts {
    /// Kept, and turned into policy.
    pub kept: u64,
    /// Replies taken out.
    pub replies: u64,
    /// Below `--min-flows`.
    pub below_min_flows: u64,
}

/// A group: a filter or an external.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Group {
    /// Its name.
    pub name: String,
    /// `filter` or `external`.
    pub kind: String,
    /// How a filter selects its members.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selected_by: Option<Selection>,
    /// The query (filters) or the ranges (externals).
    pub query: String,
    /// The workloads, nodes or ranges in it.
    pub members: Vec<String>,
    /// The file declaring it.
    pub file: String,
}

/// A policy written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicySummary {
    /// Its scope.
    pub scope: String,
    /// Its name in the scope.
    pub name: String,
    /// The file holding it.
    pub file: String,
    /// Consumer reference.
    pub from: String,
    /// Provider reference.
    pub to: String,
    /// Protocol.
    pub proto: String,
    /// Ports (empty: all).
    pub ports: String,
    /// Flows it covers.
    pub flows: u64,
    /// First seen (RFC 3339).
    pub first_seen: String,
    /// Last seen (RFC 3339).
    pub last_seen: String,
}

/// At most this many members are listed per group in text.
const TEXT_MEMBERS: usize = 8;

impl Summary {
    /// Human-readable form.
    pub fn to_text(&self) -> String {
        let f = &self.flows;
        let mut t = String::new();
        let s = &self.settings;
        let _ = writeln!(
            t,
            "Discovery: granularity {}, port generalization {}, min-flows {}{}{}",
            s.granularity,
            s.port_generalization,
            s.min_flows,
            s.scope
                .as_ref()
                .map(|n| format!(", scope {n}"))
                .unwrap_or_default(),
            if s.exclusions.is_empty() {
                String::new()
            } else {
                format!(", exclusions {}", s.exclusions.join(", "))
            }
        );
        let _ = writeln!(
            t,
            "Read {} file{}: {} lines, {} flows, {} unparsable, {} replies skipped, {} other lines.",
            self.inputs.files.len(),
            if self.inputs.files.len() == 1 {
                ""
            } else {
                "s"
            },
            f.lines,
            f.read,
            f.unparsable,
            f.replies_marked,
            f.not_flows
        );
        let _ = writeln!(t, "Flows: {} read", f.read);
        let mut line = |n: u64, what: String| {
            let _ = writeln!(t, "  {n:>12}  {what}");
        };
        line(f.covered, "covered by the policies written".into());
        let by: Vec<String> = f
            .excluded_by
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        line(
            f.excluded,
            if by.is_empty() {
                "excluded".into()
            } else {
                format!("excluded ({})", by.join(", "))
            },
        );
        line(
            f.below_min_flows,
            format!(
                "below --min-flows {} ({} conversations)",
                s.min_flows, self.conversations.below_min_flows
            ),
        );
        line(
            f.dropped_by_network,
            "dropped by the network (not made policy)".into(),
        );
        line(
            f.replies_detected,
            format!("replies ({} conversations)", self.conversations.replies),
        );
        line(
            f.unknown_addresses,
            "with an in-cluster address not in the inventory".into(),
        );
        line(
            f.ambiguous_addresses,
            "with an address several clusters use".into(),
        );
        line(
            f.outside_inventory,
            "with neither end in the inventory".into(),
        );
        let _ = writeln!(t, "Groups ({}):", self.groups.len());
        for g in &self.groups {
            let how = g
                .selected_by
                .map(|h| {
                    format!(
                        ", by {}",
                        serde_json::to_value(h)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            let mut members: Vec<&str> = g
                .members
                .iter()
                .take(TEXT_MEMBERS)
                .map(String::as_str)
                .collect();
            let more = g.members.len().saturating_sub(TEXT_MEMBERS);
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            if members.is_empty() {
                members.push("-");
            }
            let _ = writeln!(t, "  {} ({}{how}): {}", g.name, g.kind, g.query);
            let _ = writeln!(t, "      {}{more}", members.join(", "));
        }
        let _ = writeln!(
            t,
            "Policies ({}, {} redundant removed, {} units merged):",
            self.policies.len(),
            self.redundant_removed,
            self.merged_units
        );
        for p in &self.policies {
            let ports = if p.ports.is_empty() {
                String::new()
            } else {
                format!(" {}", p.ports)
            };
            let _ = writeln!(
                t,
                "  {}/{}: {} -> {} {}{ports} ({} flow{})",
                p.scope,
                p.name,
                p.from,
                p.to,
                p.proto,
                p.flows,
                if p.flows == 1 { "" } else { "s" }
            );
        }
        let _ = writeln!(t, "Files: {}", self.files.join(", "));
        for n in &self.notes {
            let _ = writeln!(t, "Note: {n}");
        }
        t
    }
}
