//! The result of an analysis, as `--format json` prints it; text and HTML
//! render the same value.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ringfence_core::explain::SideInfo;
use ringfence_schema::ir::{Action, PolicyInfo};
use ringfence_schema::net::Proto;
use ringfence_schema::report::Status;
use serde::Serialize;

use crate::outcome::Outcome;

/// Everything `ringfence analyze` found.
#[derive(Clone, Debug, Serialize)]
pub struct Analysis {
    /// The policy version analysed (a revision, a commit, a directory).
    pub version: String,
    /// The version compared with (`--against`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub against: Option<String>,
    /// What was read.
    pub input: Input,
    /// Flows, packets and bytes per outcome.
    pub totals: Totals,
    /// Flows per outcome over time.
    pub timeline: Timeline,
    /// Flows between scopes, per outcome.
    pub graph: Vec<Edge>,
    /// Every policy of the version with its statistics, in global order.
    pub policies: Vec<PolicyStats>,
    /// Every distinct conversation, judged; sorted by source, destination,
    /// protocol and port.
    pub conversations: Vec<Conversation>,
    /// With `--against`: the conversations whose verdict differs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<Changes>,
    /// With `--reports`: what the agents report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compliance: Option<Compliance>,
}

/// The flow files read.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Input {
    /// One entry per file, in the order given.
    pub files: Vec<InputFile>,
    /// The first unreadable lines (at most 20), `file:line: why`.
    pub errors: Vec<String>,
    /// Earliest `first_seen` of any flow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    /// Latest `last_seen` of any flow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
}

/// One flow file.
#[derive(Clone, Debug, Serialize)]
pub struct InputFile {
    /// The path as given.
    pub path: String,
    /// `ringfence`, `hubble` or `conntrack`; absent for an empty file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Lines read.
    pub lines: u64,
    /// Flows analysed.
    pub flows: u64,
    /// Lines skipped on purpose (replies, other event types, protocols without policy).
    pub skipped: u64,
    /// Lines that could not be read.
    pub unreadable: u64,
    /// The time every flow of a conntrack listing was dated with (the file's
    /// modification time), when the listing carries none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assumed_time: Option<String>,
}

/// Flows and bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Count {
    /// Flow records.
    pub flows: u64,
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

impl Count {
    pub(crate) fn add(&mut self, o: &Count) {
        self.flows += o.flows;
        self.packets += o.packets;
        self.bytes += o.bytes;
    }
}

/// The totals.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    /// Every flow.
    pub all: Count,
    /// Distinct conversations (source, destination, protocol, port).
    pub conversations: u64,
    /// Per outcome (every outcome present, zeros included).
    pub outcomes: BTreeMap<Outcome, Count>,
}

/// Flows per outcome over time, in buckets of equal width.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Timeline {
    /// Width of a bucket.
    pub bucket_seconds: i64,
    /// The buckets, oldest first, from the first flow to the last.
    pub buckets: Vec<Bucket>,
}

/// One bucket of the timeline.
#[derive(Clone, Debug, Serialize)]
pub struct Bucket {
    /// Start of the bucket (RFC 3339).
    pub start: String,
    /// Flows per outcome (outcomes with none left out).
    pub flows: BTreeMap<Outcome, u64>,
}

/// Flows from one scope to another.
#[derive(Clone, Debug, Serialize)]
pub struct Edge {
    /// The consumers' scope (or external, `(no scope)`, `(unknown)`).
    pub from: String,
    /// The providers' scope.
    pub to: String,
    /// Flows per outcome (outcomes with none left out).
    pub flows: BTreeMap<Outcome, u64>,
    /// Bytes, all outcomes.
    pub bytes: u64,
}

/// A condition of a policy worth a look.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Condition {
    /// No flow (and no agent counter) hit it.
    NoTraffic,
    /// Earlier policies decide everything it matches (`ringfence::shadowed-policy`).
    Overshadowed,
    /// Most members of its consumer or provider side never used it.
    Broad,
}

impl Condition {
    /// The name used in text, JSON and HTML.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::NoTraffic => "no traffic",
            Condition::Overshadowed => "overshadowed",
            Condition::Broad => "broad",
        }
    }
}

/// How much of one side of a policy was used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Endpoints on whose chain the policy decided at least one flow.
    pub seen: u64,
    /// Endpoints on whose chain (of that direction) the policy has a rule.
    pub members: u64,
}

/// What the agents counted for one policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AgentHits {
    /// Packets over every rule of the policy on every node.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
    /// Nodes that counted at least one packet.
    pub nodes: u64,
}

/// One policy and its statistics.
#[derive(Clone, Debug, Serialize)]
pub struct PolicyStats {
    /// The policy (id, name, scope, rank, action, and where it is written).
    #[serde(flatten)]
    pub policy: PolicyInfo,
    /// Flows it decided (on either side; once per flow).
    pub hits: Count,
    /// First flow it decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_hit: Option<String>,
    /// Last flow it decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_hit: Option<String>,
    /// Flows it decided, per outcome (outcomes with none left out).
    pub outcomes: BTreeMap<Outcome, u64>,
    /// Its consumer side (egress chains), when it has rules there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumers: Option<Usage>,
    /// Its provider side (ingress chains), when it has rules there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub providers: Option<Usage>,
    /// With `--reports`: what the agents counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agents: Option<AgentHits>,
    /// Overshadowed: the policies that decide its flows first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shadowed_by: Vec<String>,
    /// Conditions found.
    pub conditions: Vec<Condition>,
}

/// The verdict of one version on a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Judgement {
    /// `allow` only if every side allows.
    pub verdict: Action,
    /// Whether the network lets it through under this version (a deny in
    /// analyze mode passes).
    pub passes: bool,
    /// The consumer's egress decision.
    pub egress: SideInfo,
    /// The provider's ingress decision.
    pub ingress: SideInfo,
    /// Through a node port or load balancer with `externalTrafficPolicy:
    /// Cluster`: the target's ingress judging the node-translated source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_hop: Option<SideInfo>,
    /// The service translation applied (`cluster IP 10.96.0.10:53 -> 10.1.2.7:53`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

/// One distinct conversation: identical flows aggregated.
#[derive(Clone, Debug, Serialize)]
pub struct Conversation {
    /// Source address.
    pub src: IpAddr,
    /// Destination address (after NAT, when observed).
    pub dst: IpAddr,
    /// Protocol.
    pub proto: Proto,
    /// Destination port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The destination the consumer used, when a NAT rewrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orig_dst: Option<IpAddr>,
    /// Its port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orig_port: Option<u16>,
    /// The consumer's group (`shop/cart[Deployment]`), or the address.
    pub from: String,
    /// The provider's group (the backend after translation), or the address.
    pub to: String,
    /// The consumer's scope.
    pub from_scope: String,
    /// The provider's scope.
    pub to_scope: String,
    /// The verdict of the analysed version.
    #[serde(flatten)]
    pub judgement: Judgement,
    /// The verdict of the `--against` version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub against: Option<Judgement>,
    /// Flows, packets, bytes.
    pub count: Count,
    /// First seen.
    pub first_seen: String,
    /// Last seen.
    pub last_seen: String,
    /// Flows per outcome (outcomes with none left out).
    pub outcomes: BTreeMap<Outcome, u64>,
}

impl Conversation {
    /// Flows of one outcome.
    pub fn flows(&self, o: Outcome) -> u64 {
        self.outcomes.get(&o).copied().unwrap_or(0)
    }
}

/// A verdict in brief: what decides, per side.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Brief {
    /// Allow or deny.
    pub verdict: Action,
    /// Whether the network lets it through.
    pub passes: bool,
    /// The deciding policy of the consumer's egress (absent: not managed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress: Option<String>,
    /// The deciding policy of the provider's ingress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress: Option<String>,
    /// The deciding policy of the node-translated leg.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_hop: Option<String>,
}

/// Conversations whose verdict differs between the two versions.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Changes {
    /// Conversations that change.
    pub conversations: u64,
    /// Their flows.
    pub flows: u64,
    /// Grouped by workload pair and deciding policies, most flows first.
    pub groups: Vec<ChangeGroup>,
}

/// Changed conversations of one workload pair with the same before and after.
#[derive(Clone, Debug, Serialize)]
pub struct ChangeGroup {
    /// The consumers' group.
    pub from: String,
    /// The providers' group.
    pub to: String,
    /// Protocol.
    pub proto: Proto,
    /// The ports concerned, ascending.
    pub ports: Vec<u16>,
    /// The verdict of the `--against` version.
    pub before: Brief,
    /// The verdict of the analysed version.
    pub after: Brief,
    /// Conversations.
    pub conversations: u64,
    /// Flows.
    pub flows: u64,
    /// Bytes.
    pub bytes: u64,
}

/// The agents' compliance reports.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Compliance {
    /// One entry per readable report, by file name.
    pub nodes: Vec<NodeCompliance>,
    /// Reports that could not be read.
    pub unreadable: Vec<Unreadable>,
    /// Nodes per status.
    pub statuses: BTreeMap<String, u64>,
    /// Policies counted by agents that the analysed version does not have.
    pub unknown_policies: Vec<String>,
}

/// One node's report, compared with the analysed version.
#[derive(Clone, Debug, Serialize)]
pub struct NodeCompliance {
    /// Report file name.
    pub file: String,
    /// Node.
    pub node: String,
    /// Status the agent reports.
    pub status: Status,
    /// Generation in force.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// Commit the bundle in force came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// When the bundle in force was applied (RFC 3339, as the agent wrote
    /// it); `ringfence report` shows it, the analysis does not.
    #[serde(skip)]
    pub applied_at: Option<String>,
    /// Whether the node enforces the analysed version: every rule of the
    /// version's IR for the node is counted and no other rule is.
    pub current: bool,
    /// Drift items the agent reports (missing, extra, changed).
    pub drift: DriftCount,
    /// Rules the node counts that the version's IR for it does not have.
    pub unknown_rules: u64,
    /// Rules of the version's IR for the node that the node does not count.
    pub missing_rules: u64,
    /// Packets counted by allow rules.
    pub allowed_packets: u64,
    /// Packets counted by deny rules (dropped, or logged in analyze mode).
    pub denied_packets: u64,
    /// Failed applies the agent counted; `ringfence report` shows them, the
    /// analysis does not.
    #[serde(skip)]
    pub apply_failures: u64,
    /// Bundles the agent refused, over every reason; `ringfence report`
    /// shows them, the analysis does not.
    #[serde(skip)]
    pub verification_failures: u64,
    /// The agent's last error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl NodeCompliance {
    /// The status as the report spells it (`in-sync`, …).
    pub fn status_word(&self) -> String {
        serde_json::to_value(self.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Why the node is not on the analysed version: (rules it counts that
    /// the version lacks, rules of the version it does not count).
    pub fn off_version(&self) -> Option<(u64, u64)> {
        (!self.current).then_some((self.unknown_rules, self.missing_rules))
    }
}

/// Drift items by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DriftCount {
    /// Intended but absent.
    pub missing: u64,
    /// Present but not intended.
    pub extra: u64,
    /// Present with other content.
    pub changed: u64,
}

impl DriftCount {
    /// All items.
    pub fn total(&self) -> u64 {
        self.missing + self.extra + self.changed
    }
}

/// A report file that could not be read.
#[derive(Clone, Debug, Serialize)]
pub struct Unreadable {
    /// File name.
    pub file: String,
    /// Why.
    pub error: String,
}

impl Analysis {
    /// Whether the analysis found something to act on: escaped or misdropped
    /// flows, verdicts that change against the other version, nodes that are
    /// not in sync or not on the analysed version, unreadable reports.
    pub fn has_findings(&self) -> bool {
        let unexpected = Outcome::ALL
            .iter()
            .filter(|o| o.is_unexpected())
            .any(|o| self.totals.outcomes.get(o).is_some_and(|c| c.flows > 0));
        let changed = self.changes.as_ref().is_some_and(|c| c.conversations > 0);
        let drifted = self.compliance.as_ref().is_some_and(|c| {
            !c.unreadable.is_empty()
                || c.nodes
                    .iter()
                    .any(|n| n.status != Status::InSync || !n.current)
        });
        unexpected || changed || drifted
    }

    /// Policies with a condition, in global order.
    pub fn with_condition(&self, c: Condition) -> impl Iterator<Item = &PolicyStats> {
        self.policies
            .iter()
            .filter(move |p| p.conditions.contains(&c))
    }
}
