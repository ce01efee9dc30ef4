//! Kubernetes network policies as read and validated, in the terms the
//! translation needs: who the policy is for, which peers and ports each rule
//! names, and where the rule came from.

use ipnet::IpNet;
use ringfence_intent::model::{PortRange, Proto};

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Req {
    /// The label has one of these values (sorted, deduplicated).
    In(String, Vec<String>),
    /// The label is absent or has none of these values.
    NotIn(String, Vec<String>),
    /// The label is present.
    Exists(String),
    /// The label is absent.
    DoesNotExist(String),
}

impl Req {
    pub(crate) fn key(&self) -> &str {
        match self {
            Req::In(k, _) | Req::NotIn(k, _) | Req::Exists(k) | Req::DoesNotExist(k) => k,
        }
    }
}

/// A label selector: all of its requirements (sorted, deduplicated); none
/// selects everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Selector(pub(crate) Vec<Req>);

impl Selector {
    pub(crate) fn is_everything(&self) -> bool {
        self.0.is_empty()
    }
}

/// Which namespaces a set of pods is in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Namespaces {
    /// The policy's own namespace (a NetworkPolicy peer without a namespace selector).
    Own(String),
    /// Namespaces a selector picks (empty selector: all of them).
    Selected(Selector),
}

/// A set of pods: the pods a selector picks in some namespaces.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Pods {
    pub(crate) namespaces: Namespaces,
    pub(crate) pods: Selector,
}

/// What a rule's peer is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Peer {
    /// Every address (a NetworkPolicy rule without peers).
    Any,
    /// Pods.
    Pods(Pods),
    /// A NetworkPolicy `ipBlock`: these prefixes (cidr minus except), outside the cluster.
    Block {
        /// The prefixes.
        nets: Vec<IpNet>,
        /// `cidr` and `except` as written, for the name.
        written: String,
    },
    /// An (Baseline)AdminNetworkPolicy `networks` peer: these prefixes,
    /// inside the cluster (pods, nodes) and outside it.
    Networks(Vec<IpNet>),
    /// Nodes a selector picks.
    Nodes(Selector),
}

/// The ports of one protocol a rule names. Numbers and names both empty:
/// every port of the protocol.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PortGroup {
    /// `Any` only for names that take their container port's protocol.
    pub(crate) proto: Option<Proto>,
    pub(crate) numbers: Vec<PortRange>,
    pub(crate) names: Vec<String>,
}

/// What a rule does to what it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allow,
    Deny,
    Pass,
}

impl Verdict {
    pub(crate) fn word(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::Pass => "pass",
        }
    }
}

/// Ingress or egress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Dir {
    Ingress,
    Egress,
}

impl Dir {
    pub(crate) fn word(self) -> &'static str {
        match self {
            Dir::Ingress => "ingress",
            Dir::Egress => "egress",
        }
    }
}

/// Where a rule came from.
#[derive(Clone, Debug)]
pub(crate) struct Source {
    /// `NetworkPolicy shop/web`, `AdminNetworkPolicy deny-all (priority 10)`.
    pub(crate) object: String,
    /// The file it was read from.
    pub(crate) file: String,
    /// The rule: `spec.ingress[0]`.
    pub(crate) rule: String,
    /// The rule's `name`, if it has one.
    pub(crate) rule_name: Option<String>,
}

/// One rule of one policy.
#[derive(Clone, Debug)]
pub(crate) struct Rule {
    pub(crate) source: Source,
    /// Stem of the names of the policies it becomes (`shop.web.ingress-0`).
    pub(crate) stem: String,
    pub(crate) dir: Dir,
    pub(crate) verdict: Verdict,
    /// The pods the policy is for.
    pub(crate) subject: Pods,
    /// The peers, each with its field path (`from[1]`); `Any` alone when the
    /// rule names none.
    pub(crate) peers: Vec<(Peer, String)>,
    /// The ports per protocol; empty: every port of every protocol.
    pub(crate) ports: Vec<PortGroup>,
}

/// A NetworkPolicy's effect on isolation: the pods it selects, for which
/// directions.
#[derive(Clone, Debug)]
pub(crate) struct Isolation {
    pub(crate) namespace: String,
    pub(crate) subject: Pods,
    pub(crate) dirs: Vec<Dir>,
    pub(crate) source: String,
}

/// Which tier an administrator policy is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Tier {
    /// Before NetworkPolicies (AdminNetworkPolicy, ClusterNetworkPolicy Admin).
    Admin,
    /// After them (BaselineAdminNetworkPolicy, ClusterNetworkPolicy Baseline).
    Baseline,
}

/// A cluster-wide policy's rules, with its place in its tier.
#[derive(Clone, Debug)]
pub(crate) struct Cluster {
    pub(crate) tier: Tier,
    /// Lower first; BaselineAdminNetworkPolicy has none and goes first.
    pub(crate) priority: Option<i64>,
    /// `AdminNetworkPolicy x`, for messages about priorities.
    pub(crate) object: String,
    pub(crate) file: String,
    pub(crate) rules: Vec<Rule>,
}

/// Everything read from the manifests.
#[derive(Debug, Default)]
pub(crate) struct Policies {
    /// NetworkPolicy rules, by namespace.
    pub(crate) namespaced: std::collections::BTreeMap<String, Vec<Rule>>,
    pub(crate) isolation: Vec<Isolation>,
    pub(crate) cluster: Vec<Cluster>,
}
