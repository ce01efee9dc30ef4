//! The agent's compliance report (`schema/docs/reports.md`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ir::Action;

/// Version of the report format.
pub const REPORT_FORMAT: u32 = 1;

/// What one node enforces and how it is going, written by the agent to
/// `<state>/report.json` and optionally POSTed to a collector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplianceReport {
    /// Always [`REPORT_FORMAT`].
    pub format: u32,
    /// The node.
    pub node: String,
    /// When the report was made (RFC 3339, UTC).
    pub generated_at: String,
    /// Overall state.
    pub status: Status,
    /// The bundle in force, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<AppliedBundle>,
    /// Differences between the table in the kernel and the bundle.
    pub drift: Drift,
    /// Hit counters of every rule, in rule order.
    pub counters: Vec<RuleCounter>,
    /// Verification failures since start, by reason code.
    #[serde(default)]
    pub verification_failures: BTreeMap<String, u64>,
    /// Apply failures since start.
    #[serde(default)]
    pub apply_failures: u64,
    /// The last error, if the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Overall state of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The applied bundle is in force, unchanged.
    InSync,
    /// The kernel's table differs from the applied bundle.
    Drifted,
    /// No bundle applied yet.
    NoBundle,
    /// The last apply failed; the previous rules (if any) are in force.
    Failed,
    /// The bundle in force is past its expiry and no newer one was accepted.
    /// It is still enforced (an agent never fails open).
    Expired,
}

/// The bundle in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedBundle {
    /// Cluster.
    pub cluster: String,
    /// Generation.
    pub generation: u64,
    /// Hex SHA-256 of the bundle file.
    pub bundle_sha256: String,
    /// Commit the intent came from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// When the agent applied it (RFC 3339, UTC).
    pub applied_at: String,
    /// When it expires (RFC 3339, UTC).
    pub expires_at: String,
    /// Backend name.
    pub backend: String,
}

/// Differences between intended and live rules, by rule or set name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    /// Intended but absent.
    pub missing: Vec<String>,
    /// Present but not intended.
    pub extra: Vec<String>,
    /// Present with different content.
    pub changed: Vec<String>,
}

impl Drift {
    /// No difference.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty() && self.changed.is_empty()
    }
}

/// Hits of one rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleCounter {
    /// Rule id.
    pub rule: String,
    /// Policy id.
    pub policy: String,
    /// The rule's action.
    pub action: Action,
    /// Packets matched.
    pub packets: u64,
    /// Bytes matched.
    pub bytes: u64,
}
