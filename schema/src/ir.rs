//! The per-node IR: everything one node must enforce, and what it means.
//!
//! A node enforces policy for its *endpoints*: its pods, its host-network
//! pods and itself. Each endpoint has an ingress chain (judging traffic to it,
//! by source address) and usually an egress chain (judging traffic from it, by
//! destination address). A chain is an ordered list of rules; the first rule
//! that matches decides, and the last rule of every chain matches everything
//! (the catch-all), so a chain always decides. Chains are shared by endpoints
//! that have the same policy. A flow between two endpoints is allowed only if
//! the consumer's egress chain and the provider's ingress chain both allow it.
//!
//! Rules name address sets instead of carrying addresses, so a backend can
//! render each set once. Every rule carries a stable id and the id of the
//! policy it came from; [`PolicyInfo`] traces that policy to its file and line.
//!
//! [`NodeIr::evaluate`] is the reference meaning of an IR: backends must
//! enforce exactly what it returns (see `schema/docs/ir.md`).
//!
//! An IR comes in two forms. The **full** form holds everything the node
//! enforces. The **live** form (`live: true`) holds only what changes with
//! intent — chains, set declarations, the node and its host-network pods,
//! exposures — while the pods (their endpoints, their addresses in sets,
//! the targets of exposures) arrive at run time as the node's
//! [`Membership`](crate::membership::Membership); [`NodeIr::with_membership`]
//! joins the two back into the full form.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use ipnet::IpNet;

use crate::membership::Membership;
use crate::net::{AddressSet, PortRange, Proto, ports_match};

/// Version of the IR format. Bumped on any incompatible change. 2: names
/// of sets come from what they stand for (not their addresses), the live
/// form, pod ranges and unknown pods. 3: a run of adjacent prefixes in a
/// set is written as the address range it covers (`"first-last"`), and
/// endpoints in groups of what they share.
pub const IR_VERSION: u32 = 3;

/// Everything one node enforces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeIr {
    /// Always [`IR_VERSION`].
    pub ir_version: u32,
    /// Cluster the node belongs to.
    pub cluster: String,
    /// Node name (Kubernetes `metadata.name`).
    pub node: String,
    /// Operating system of the node.
    pub os: Os,
    /// Name of the backend that renders this IR (e.g. `nftables`).
    pub backend: String,
    /// The node's own addresses (InternalIP, ExternalIP).
    pub addresses: Vec<IpAddr>,
    /// The node's pod address ranges (`spec.podCIDRs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pod_cidrs: Vec<IpNet>,
    /// What forwarded traffic from or to an *unknown pod* gets: an address
    /// in `pod_cidrs` that no local endpoint and no `unmanaged` entry claims
    /// (a pod that started after its membership was computed). Traffic
    /// between such a pod and the node itself is not affected.
    #[serde(default = "deny")]
    pub unknown_pods: Action,
    /// Addresses of local pods that no scope manages: known, so never
    /// unknown; their traffic passes. Sorted. (Live form: in the membership.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmanaged: Vec<IpAddr>,
    /// The live form: pod endpoints, the pod addresses of `live` sets, pod
    /// exposure targets and `unmanaged` come from the node's membership.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub live: bool,
    /// Endpoints judged on this node, sorted by name (written in groups).
    #[serde(with = "endpoint_groups")]
    pub endpoints: Vec<Endpoint>,
    /// NodePort and LoadBalancer entry points this node serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exposures: Vec<Exposure>,
    /// Rule chains, sorted by id.
    pub chains: Vec<Chain>,
    /// Address sets referenced by rules, sorted by name.
    pub sets: Vec<AddressSet>,
    /// Every policy a rule refers to, sorted by id.
    pub policies: Vec<PolicyInfo>,
}

fn deny() -> Action {
    Action::Deny
}

/// Operating system of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Os {
    /// Linux nodes (nftables by default).
    Linux,
    /// Windows nodes (Windows firewall by default).
    Windows,
}

impl Os {
    /// The lowercase name used in intent and inventory.
    pub fn as_str(self) -> &'static str {
        match self {
            Os::Linux => "linux",
            Os::Windows => "windows",
        }
    }
}

impl fmt::Display for Os {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Os {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "linux" => Ok(Os::Linux),
            "windows" => Ok(Os::Windows),
            _ => Err(format!(
                "unknown operating system `{s}` (expected linux or windows)"
            )),
        }
    }
}

/// What kind of thing an endpoint is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndpointKind {
    /// A pod with its own addresses.
    Pod,
    /// A host-network pod: it shares the node's addresses and is told apart by
    /// its ports. Its egress is the node's (the kernel cannot tell them apart).
    HostPod,
    /// The node itself.
    Node,
}

/// A protocol and port, written `tcp/9100`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct ProtoPort {
    /// tcp, udp or sctp.
    pub proto: Proto,
    /// The port.
    pub port: u16,
}

impl fmt::Display for ProtoPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.proto, self.port)
    }
}

impl From<ProtoPort> for String {
    fn from(p: ProtoPort) -> String {
        p.to_string()
    }
}

impl TryFrom<String> for ProtoPort {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let (proto, port) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not proto/port"))?;
        let proto: Proto = proto.parse()?;
        if !proto.has_ports() {
            return Err(format!("`{s}`: {proto} has no ports"));
        }
        let port = port.parse().map_err(|_| format!("`{s}`: bad port"))?;
        Ok(ProtoPort { proto, port })
    }
}

/// Something a node enforces policy for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Unique within the IR: `pod/<namespace>/<name>`, `node/<name>`.
    pub name: String,
    /// Pod, host-network pod or node.
    pub kind: EndpointKind,
    /// The owning workload as `matrix` prints it, e.g. `shop/cart[Deployment]`.
    pub workload: String,
    /// False for endpoints on other nodes that this node judges only for
    /// traffic entering through one of its [`Exposure`]s.
    pub local: bool,
    /// The endpoint's addresses. For host-network pods and nodes, the node's.
    pub addresses: Vec<IpAddr>,
    /// Host-network pods only: the ports that identify the pod on the node's addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ProtoPort>,
    /// Chain judging traffic to the endpoint (peer = source address).
    pub ingress: String,
    /// Chain judging traffic from the endpoint (peer = destination address).
    /// `None` for host-network pods (their egress is the node's) and for
    /// endpoints that are not local.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<String>,
}

/// `#[serde(with = "endpoint_groups")]` for [`NodeIr::endpoints`] (IR
/// version 3): each run of endpoints, in name order, that share everything
/// but their names and addresses is written as one group, so what a
/// workload's pods share is written once (it was three quarters of a large
/// IR). Read back, the groups are flattened in order.
mod endpoint_groups {
    use std::fmt;
    use std::net::IpAddr;

    use serde::de::{self, Deserializer, SeqAccess, Visitor};
    use serde::ser::{SerializeSeq, Serializer};
    use serde::{Deserialize, Serialize};

    use super::{Endpoint, EndpointKind, ProtoPort};

    /// Whether `a` and `b` can share a group.
    fn alike(a: &Endpoint, b: &Endpoint) -> bool {
        a.kind == b.kind
            && a.local == b.local
            && a.ingress == b.ingress
            && a.egress == b.egress
            && a.workload == b.workload
            && a.ports == b.ports
    }

    #[derive(Serialize)]
    struct GroupOut<'a> {
        workload: &'a str,
        kind: EndpointKind,
        local: bool,
        #[serde(skip_serializing_if = "<[ProtoPort]>::is_empty")]
        ports: &'a [ProtoPort],
        ingress: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        egress: Option<&'a str>,
        members: Members<'a>,
    }

    struct Members<'a>(&'a [Endpoint]);

    #[derive(Serialize)]
    struct MemberOut<'a> {
        name: &'a str,
        addresses: &'a [IpAddr],
    }

    impl Serialize for Members<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(self.0.len()))?;
            for e in self.0 {
                seq.serialize_element(&MemberOut {
                    name: &e.name,
                    addresses: &e.addresses,
                })?;
            }
            seq.end()
        }
    }

    pub(super) fn serialize<S: Serializer>(v: &[Endpoint], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for group in v.chunk_by(alike) {
            let e = &group[0];
            seq.serialize_element(&GroupOut {
                workload: &e.workload,
                kind: e.kind,
                local: e.local,
                ports: &e.ports,
                ingress: &e.ingress,
                egress: e.egress.as_deref(),
                members: Members(group),
            })?;
        }
        seq.end()
    }

    #[derive(Deserialize)]
    struct GroupIn {
        workload: String,
        kind: EndpointKind,
        local: bool,
        #[serde(default)]
        ports: Vec<ProtoPort>,
        ingress: String,
        #[serde(default)]
        egress: Option<String>,
        members: Vec<MemberIn>,
    }

    #[derive(Deserialize)]
    struct MemberIn {
        name: String,
        addresses: Vec<IpAddr>,
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Endpoint>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<Endpoint>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence of endpoint groups")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Endpoint>, A::Error> {
                let mut out = Vec::new();
                while let Some(g) = seq.next_element::<GroupIn>()? {
                    if g.members.is_empty() {
                        return Err(de::Error::custom(format!(
                            "the endpoint group of `{}` has no members",
                            g.workload
                        )));
                    }
                    out.extend(g.members.into_iter().map(|m| Endpoint {
                        name: m.name,
                        kind: g.kind,
                        workload: g.workload.clone(),
                        local: g.local,
                        addresses: m.addresses,
                        ports: g.ports.clone(),
                        ingress: g.ingress.clone(),
                        egress: g.egress.clone(),
                    }));
                }
                Ok(out)
            }
        }
        d.deserialize_seq(V)
    }

    #[cfg(test)]
    mod tests {
        use super::super::NodeIr;
        use super::*;
        use crate::net::Proto;

        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Only {
            #[serde(with = "super")]
            endpoints: Vec<Endpoint>,
        }

        fn pod(name: &str, workload: &str, ip: &str, ingress: &str) -> Endpoint {
            Endpoint {
                name: name.into(),
                kind: EndpointKind::Pod,
                workload: workload.into(),
                local: true,
                addresses: vec![ip.parse().unwrap()],
                ports: Vec::new(),
                ingress: ingress.into(),
                egress: Some("eg_a".into()),
            }
        }

        /// Runs of alike endpoints share a group; anything that differs
        /// (workload, chains, locality, ports) starts a new one; reading
        /// gives back the same endpoints in the same order.
        #[test]
        fn alike_runs_are_grouped_and_read_back_in_order() {
            let mut host = pod(
                "pod/kube/agent",
                "kube/agent[DaemonSet]",
                "192.168.0.1",
                "in_h",
            );
            host.kind = EndpointKind::HostPod;
            host.egress = None;
            host.ports = vec![ProtoPort::try_from("tcp/9100".to_string()).unwrap()];
            let mut remote = pod("pod/shop/web-3", "shop/web[Deployment]", "10.0.1.3", "in_w");
            remote.local = false;
            remote.egress = None;
            let endpoints = vec![
                host,
                pod("pod/shop/web-1", "shop/web[Deployment]", "10.0.0.1", "in_w"),
                pod("pod/shop/web-2", "shop/web[Deployment]", "10.0.0.2", "in_w"),
                remote,
                pod("pod/shop/web-4", "shop/web[Deployment]", "10.0.0.4", "in_x"),
            ];
            let only = Only { endpoints };
            let json = serde_json::to_string(&only).unwrap();
            assert_eq!(
                json,
                concat!(
                    r#"{"endpoints":["#,
                    r#"{"workload":"kube/agent[DaemonSet]","kind":"host-pod","local":true,"ports":["tcp/9100"],"ingress":"in_h","members":[{"name":"pod/kube/agent","addresses":["192.168.0.1"]}]},"#,
                    r#"{"workload":"shop/web[Deployment]","kind":"pod","local":true,"ingress":"in_w","egress":"eg_a","members":[{"name":"pod/shop/web-1","addresses":["10.0.0.1"]},{"name":"pod/shop/web-2","addresses":["10.0.0.2"]}]},"#,
                    r#"{"workload":"shop/web[Deployment]","kind":"pod","local":false,"ingress":"in_w","members":[{"name":"pod/shop/web-3","addresses":["10.0.1.3"]}]},"#,
                    r#"{"workload":"shop/web[Deployment]","kind":"pod","local":true,"ingress":"in_x","egress":"eg_a","members":[{"name":"pod/shop/web-4","addresses":["10.0.0.4"]}]}"#,
                    "]}"
                )
            );
            assert_eq!(serde_json::from_str::<Only>(&json).unwrap(), only);
            assert_eq!(only.endpoints[0].ports[0].proto, Proto::Tcp);
        }

        #[test]
        fn a_group_without_members_is_refused() {
            let json = r#"{"endpoints":[{"workload":"w","kind":"pod","local":true,"ingress":"in_a","members":[]}]}"#;
            let e = serde_json::from_str::<Only>(json).unwrap_err().to_string();
            assert!(
                e.contains("the endpoint group of `w` has no members"),
                "{e}"
            );
            // An IR of version 2 (endpoints one by one) is not misread.
            let v2 = r#"{"ir_version":2,"cluster":"c","node":"n","os":"linux","backend":"nftables","addresses":[],
                "endpoints":[{"name":"node/n","kind":"node","workload":"n[Node]","local":true,"addresses":[],"ingress":"in_a"}],
                "chains":[],"sets":[],"policies":[]}"#;
            let e = serde_json::from_str::<NodeIr>(v2).unwrap_err().to_string();
            assert!(e.contains("missing field `members`"), "{e}");
        }
    }
}

/// How traffic from outside reaches a service through this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExposureKind {
    /// `<any node address>:<nodePort>`.
    NodePort,
    /// `<load balancer ingress IP>:<service port>`.
    LoadBalancer,
}

/// A NodePort or LoadBalancer entry point. Traffic arriving on it is
/// translated (by kube-proxy) to one of the targets; the node judges it with
/// the target endpoint's ingress chain, using the original source address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exposure {
    /// The service, `<namespace>/<name>`.
    pub service: String,
    /// NodePort or LoadBalancer.
    pub kind: ExposureKind,
    /// tcp, udp or sctp.
    pub proto: Proto,
    /// LoadBalancer: the ingress addresses. NodePort: empty (every node address).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<IpAddr>,
    /// Destination port before translation (the node port, or the service port).
    pub port: u16,
    /// Where the traffic goes after translation.
    pub targets: Vec<ExposureTarget>,
}

/// One backend of an exposure.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExposureTarget {
    /// Name of the endpoint (present in [`NodeIr::endpoints`]).
    pub endpoint: String,
    /// The target port on that endpoint.
    pub port: u16,
    /// The chain that judges traffic entering through the exposure, when it
    /// is not the endpoint's `ingress`: the same rules without the implicit
    /// node-return rules, which admit only what other nodes forward (so a
    /// node cannot reach the target through a node port on their strength).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
}

/// Which way a chain looks at traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Traffic to the endpoint; a rule's peer is the source address.
    Ingress,
    /// Traffic from the endpoint; a rule's peer is the destination address.
    Egress,
}

/// Whether a chain's verdicts are enforced.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Denies drop traffic.
    #[default]
    Enforce,
    /// Denies are counted (and logged if asked) but traffic passes.
    Analyze,
}

/// Allow or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Let the traffic through (this side agrees).
    Allow,
    /// Drop the traffic.
    Deny,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
        })
    }
}

/// An ordered list of rules; first match wins; the last rule matches everything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    /// Unique within the IR; stable for the same content. Matches `[a-z0-9_]+`,
    /// at most 48 bytes, so backends may use it as an identifier.
    pub id: String,
    /// Ingress or egress.
    pub direction: Direction,
    /// Enforce or analyze.
    pub mode: Mode,
    /// The rules, in evaluation order.
    pub rules: Vec<Rule>,
}

/// One rule of a chain.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rule {
    /// Stable id of this rule: the same intent gives the same id. Counters and
    /// drift reports name rules by it. Matches `[a-z0-9_-]+`, at most 32 bytes.
    pub id: String,
    /// Id of the policy it implements (see [`PolicyInfo`]).
    pub policy: String,
    /// Allow or deny.
    pub action: Action,
    /// Name of the address set the peer must be in; `None` matches every address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// Protocol; `any` matches every protocol.
    pub proto: Proto,
    /// Destination ports; empty matches every port. Only with tcp, udp or sctp.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortRange>,
    /// Log matches.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub log: bool,
}

/// Where a policy sits in the global order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rank {
    /// Quarantine: before everything.
    Quarantine,
    /// Absolute policies: highest scope first.
    Absolute,
    /// Default policies: most specific scope first.
    Default,
    /// A scope's catch-all: most specific scope first.
    CatchAll,
    /// Generated by the compiler from intent semantics (e.g. the return path
    /// of a NodePort, or the allow-all of a scope with no catch-all).
    Implicit,
}

/// Where a policy came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyInfo {
    /// Unique id: `<scope>/<name>` for policies, `<scope>/catch-all-ingress`, …
    pub id: String,
    /// The policy's name as written (or generated from its position).
    pub name: String,
    /// Scope that owns it (`quarantine` for quarantine rules).
    pub scope: String,
    /// Rank in the global order.
    pub rank: Rank,
    /// Its action.
    pub action: Action,
    /// Intent file, relative to the intent directory.
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

/// The decision of one side of a flow on one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SideVerdict<'a> {
    /// The endpoint whose chain decided.
    pub endpoint: &'a Endpoint,
    /// The chain that decided.
    pub chain: &'a Chain,
    /// The first matching rule.
    pub rule: &'a Rule,
}

impl SideVerdict<'_> {
    /// What the policy says (regardless of analyze mode).
    pub fn action(&self) -> Action {
        self.rule.action
    }

    /// Whether the node lets the traffic through on this side: allowed, or
    /// denied by a chain in analyze mode.
    pub fn passes(&self) -> bool {
        self.rule.action == Action::Allow || self.chain.mode == Mode::Analyze
    }
}

/// What one node does to one flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeVerdict<'a> {
    /// The consumer side, if the source is a local endpoint with an egress chain.
    pub egress: Option<SideVerdict<'a>>,
    /// The provider side, if the destination is an endpoint of this node.
    pub ingress: Option<SideVerdict<'a>>,
    /// An unknown pod's address (source, else destination) when the node
    /// drops unknown pods: the flow is dropped whatever the sides say.
    pub unknown: Option<IpAddr>,
}

impl NodeVerdict<'_> {
    /// Whether the node lets the flow through (sides it does not judge pass).
    pub fn passes(&self) -> bool {
        self.unknown.is_none()
            && self.egress.is_none_or(|s| s.passes())
            && self.ingress.is_none_or(|s| s.passes())
    }

    /// Whether the policy allows the flow on every side this node judges.
    pub fn allows(&self) -> bool {
        self.unknown.is_none()
            && self.egress.is_none_or(|s| s.action() == Action::Allow)
            && self.ingress.is_none_or(|s| s.action() == Action::Allow)
    }
}

impl NodeIr {
    /// Look up an address set by name.
    pub fn set(&self, name: &str) -> Option<&AddressSet> {
        self.sets
            .binary_search_by(|s| s.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.sets[i])
    }

    /// Look up a chain by id.
    pub fn chain(&self, id: &str) -> Option<&Chain> {
        self.chains
            .binary_search_by(|c| c.id.as_str().cmp(id))
            .ok()
            .map(|i| &self.chains[i])
    }

    /// Look up a policy by id.
    pub fn policy(&self, id: &str) -> Option<&PolicyInfo> {
        self.policies
            .binary_search_by(|p| p.id.as_str().cmp(id))
            .ok()
            .map(|i| &self.policies[i])
    }

    /// Look up an endpoint by name.
    pub fn endpoint(&self, name: &str) -> Option<&Endpoint> {
        self.endpoints
            .binary_search_by(|e| e.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.endpoints[i])
    }

    /// The first rule of `chain` that matches a flow with `peer`, `proto` and
    /// destination `port` (`None` for protocols without ports).
    pub fn first_match<'a>(
        &'a self,
        chain: &'a Chain,
        peer: IpAddr,
        proto: Proto,
        port: Option<u16>,
    ) -> Option<&'a Rule> {
        chain.rules.iter().find(|r| {
            r.proto.matches(proto)
                && ports_match(&r.ports, port)
                && r.peer
                    .as_deref()
                    .is_none_or(|s| self.set(s).is_some_and(|s| s.contains(peer)))
        })
    }

    /// The local endpoint that sends traffic from `src`, if it has an egress chain.
    /// A node address maps to the node (host-network pods send as the node).
    pub fn egress_endpoint(&self, src: IpAddr) -> Option<&Endpoint> {
        self.endpoints
            .iter()
            .find(|e| e.local && e.egress.is_some() && e.addresses.contains(&src))
    }

    /// The local endpoint that receives traffic to `dst` on `proto`/`port`:
    /// a host-network pod listening on that port wins over the node.
    pub fn ingress_endpoint(
        &self,
        dst: IpAddr,
        proto: Proto,
        port: Option<u16>,
    ) -> Option<&Endpoint> {
        let local = || {
            self.endpoints
                .iter()
                .filter(|e| e.local && e.addresses.contains(&dst))
        };
        local()
            .find(|e| {
                e.kind == EndpointKind::HostPod
                    && port
                        .is_some_and(|p| e.ports.iter().any(|pp| pp.proto == proto && pp.port == p))
            })
            .or_else(|| local().find(|e| e.kind != EndpointKind::HostPod))
    }

    fn side<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        chain: &str,
        peer: IpAddr,
        proto: Proto,
        port: Option<u16>,
    ) -> Option<SideVerdict<'a>> {
        let chain = self.chain(chain)?;
        let rule = self.first_match(chain, peer, proto, port)?;
        Some(SideVerdict {
            endpoint,
            chain,
            rule,
        })
    }

    /// What this node does to a flow from `src` to `dst` that it sees directly
    /// (not through an exposure). This is the reference semantics backends
    /// must enforce.
    pub fn evaluate(
        &self,
        src: IpAddr,
        dst: IpAddr,
        proto: Proto,
        port: Option<u16>,
    ) -> NodeVerdict<'_> {
        let egress = self
            .egress_endpoint(src)
            .and_then(|e| self.side(e, e.egress.as_deref()?, dst, proto, port));
        let ingress = self
            .ingress_endpoint(dst, proto, port)
            .and_then(|e| self.side(e, &e.ingress, src, proto, port));
        // Traffic between a pod and its own node is not checked (kubelet
        // probes reach a pod before its membership arrives).
        let local = self.addresses.contains(&src) || self.addresses.contains(&dst);
        let unknown = [src, dst]
            .into_iter()
            .find(|&a| !local && self.unknown_pods == Action::Deny && self.is_unknown(a));
        NodeVerdict {
            egress,
            ingress,
            unknown,
        }
    }

    /// Whether `addr` is an unknown pod here: inside the node's pod ranges,
    /// and neither a local endpoint's address nor an unmanaged pod's.
    pub fn is_unknown(&self, addr: IpAddr) -> bool {
        self.pod_cidrs.iter().any(|n| n.contains(&addr))
            && self.unmanaged.binary_search(&addr).is_err()
            && !self
                .endpoints
                .iter()
                .any(|e| e.local && e.addresses.contains(&addr))
    }

    /// What this node does to a flow from `src` arriving on an exposure
    /// (`dst`:`port` before translation), for each target it may be sent to.
    pub fn evaluate_exposure(
        &self,
        src: IpAddr,
        dst: IpAddr,
        proto: Proto,
        port: u16,
    ) -> Vec<(&ExposureTarget, Option<SideVerdict<'_>>)> {
        let Some(x) = self.exposures.iter().find(|x| {
            x.proto == proto
                && x.port == port
                && match x.kind {
                    ExposureKind::NodePort => self.addresses.contains(&dst),
                    ExposureKind::LoadBalancer => x.addresses.contains(&dst),
                }
        }) else {
            return Vec::new();
        };
        x.targets
            .iter()
            .map(|t| {
                let v = self.endpoint(&t.endpoint).and_then(|e| {
                    let chain = t.chain.as_deref().unwrap_or(&e.ingress);
                    self.side(e, chain, src, proto, Some(t.port))
                });
                (t, v)
            })
            .collect()
    }

    /// Check the structural invariants every IR the compiler emits satisfies.
    /// Backends may rely on them; they should refuse an IR that fails here.
    pub fn validate(&self) -> Result<(), String> {
        if self.ir_version != IR_VERSION {
            return Err(format!(
                "IR version {} is not supported (expected {IR_VERSION})",
                self.ir_version
            ));
        }
        let sorted = |names: Vec<&str>, what: &str| -> Result<(), String> {
            match names.windows(2).find(|w| w[0] >= w[1]) {
                Some(w) => Err(format!("{what} are not sorted and unique at `{}`", w[1])),
                None => Ok(()),
            }
        };
        sorted(self.sets.iter().map(|s| s.name.as_str()).collect(), "sets")?;
        sorted(
            self.chains.iter().map(|c| c.id.as_str()).collect(),
            "chains",
        )?;
        sorted(
            self.endpoints.iter().map(|e| e.name.as_str()).collect(),
            "endpoints",
        )?;
        sorted(
            self.policies.iter().map(|p| p.id.as_str()).collect(),
            "policies",
        )?;
        let ident = |s: &str, extra: &str, max: usize| {
            !s.is_empty()
                && s.len() <= max
                && s.bytes().all(|b| {
                    b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || b == b'_'
                        || extra.as_bytes().contains(&b)
                })
        };
        for s in &self.sets {
            if !ident(&s.name, "", 48) {
                return Err(format!("set name `{}` is not [a-z0-9_]{{1,48}}", s.name));
            }
        }
        for c in &self.chains {
            if !ident(&c.id, "", 48) {
                return Err(format!("chain id `{}` is not [a-z0-9_]{{1,48}}", c.id));
            }
            let last = c
                .rules
                .last()
                .ok_or_else(|| format!("chain `{}` has no rules", c.id))?;
            if last.peer.is_some() || last.proto != Proto::Any || !last.ports.is_empty() {
                return Err(format!(
                    "chain `{}` does not end with a rule that matches everything",
                    c.id
                ));
            }
            for r in &c.rules {
                if !ident(&r.id, "-", 32) {
                    return Err(format!("rule id `{}` is not [a-z0-9_-]{{1,32}}", r.id));
                }
                if let Some(p) = &r.peer
                    && self.set(p).is_none()
                {
                    return Err(format!("rule `{}` refers to unknown set `{p}`", r.id));
                }
                if !r.ports.is_empty() && !r.proto.has_ports() {
                    return Err(format!(
                        "rule `{}` has ports with protocol {}",
                        r.id, r.proto
                    ));
                }
                if self.policy(&r.policy).is_none() {
                    return Err(format!(
                        "rule `{}` refers to unknown policy `{}`",
                        r.id, r.policy
                    ));
                }
            }
        }
        let mut checked: Option<(&str, Option<&str>)> = None;
        for e in &self.endpoints {
            // Endpoints come in runs sharing chains: each run is checked once.
            let chains = (e.ingress.as_str(), e.egress.as_deref());
            if checked.replace(chains) == Some(chains) {
                continue;
            }
            let check = |id: &str, dir: Direction| match self.chain(id) {
                Some(c) if c.direction == dir => Ok(()),
                Some(_) => Err(format!(
                    "endpoint `{}` uses chain `{id}` in the wrong direction",
                    e.name
                )),
                None => Err(format!(
                    "endpoint `{}` refers to unknown chain `{id}`",
                    e.name
                )),
            };
            check(&e.ingress, Direction::Ingress)?;
            if let Some(eg) = &e.egress {
                check(eg, Direction::Egress)?;
            }
        }
        let mut keys: Vec<String> = Vec::with_capacity(self.exposures.len());
        for x in &self.exposures {
            for t in &x.targets {
                if self.endpoint(&t.endpoint).is_none() {
                    return Err(format!(
                        "exposure of `{}` targets unknown endpoint `{}`",
                        x.service, t.endpoint
                    ));
                }
                if let Some(c) = &t.chain
                    && self
                        .chain(c)
                        .is_none_or(|c| c.direction != Direction::Ingress)
                {
                    return Err(format!(
                        "exposure of `{}` judges with `{c}`, which is not an ingress chain",
                        x.service
                    ));
                }
            }
            keys.push(x.key());
        }
        keys.sort();
        if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("two exposures are `{}`", w[0]));
        }
        if self.unmanaged.windows(2).any(|w| w[0] >= w[1]) {
            return Err("unmanaged addresses are not sorted and unique".into());
        }
        if self.live {
            if let Some(e) = self.endpoints.iter().find(|e| e.kind == EndpointKind::Pod) {
                return Err(format!(
                    "endpoint `{}` is a pod in a live IR (pods come with the membership)",
                    e.name
                ));
            }
            if !self.unmanaged.is_empty() {
                return Err(
                    "a live IR lists unmanaged pods (they come with the membership)".into(),
                );
            }
        }
        Ok(())
    }

    /// The full form of a live IR: its pods, their set addresses and
    /// exposure targets taken from `m` (which must have passed
    /// [`Membership::check`] against this IR). A full IR is returned as is.
    pub fn with_membership(&self, m: &Membership) -> NodeIr {
        let mut ir = self.clone();
        if !ir.live {
            return ir;
        }
        ir.live = false;
        for s in &m.sets {
            if let Ok(i) = ir.sets.binary_search_by(|x| x.name.as_str().cmp(&s.name)) {
                let set = &mut ir.sets[i];
                let nets = set
                    .v4
                    .iter()
                    .map(|n| IpNet::V4(*n))
                    .chain(set.v6.iter().map(|n| IpNet::V6(*n)))
                    .chain(s.addresses.iter().map(|a| IpNet::from(*a)));
                let live = set.live;
                *set = AddressSet::new(std::mem::take(&mut set.name), nets.collect::<Vec<_>>());
                set.live = live;
            }
        }
        for e in &m.endpoints {
            match &e.ingress {
                Some(ingress) => ir.endpoints.push(Endpoint {
                    name: e.name.clone(),
                    kind: EndpointKind::Pod,
                    workload: e.workload.clone(),
                    local: true,
                    addresses: e.addresses.clone(),
                    ports: Vec::new(),
                    ingress: ingress.clone(),
                    egress: e.egress.clone(),
                }),
                None => ir.unmanaged.extend(&e.addresses),
            }
        }
        ir.unmanaged.sort();
        ir.unmanaged.dedup();
        let keys: Vec<String> = ir.exposures.iter().map(|x| x.key()).collect();
        for t in &m.targets {
            if !ir.endpoints.iter().any(|e| e.name == t.endpoint) {
                ir.endpoints.push(Endpoint {
                    name: t.endpoint.clone(),
                    kind: EndpointKind::Pod,
                    workload: t.workload.clone(),
                    local: false,
                    addresses: t.addresses.clone(),
                    ports: Vec::new(),
                    ingress: t.ingress.clone(),
                    egress: None,
                });
            }
            if let Some(x) = keys
                .iter()
                .position(|k| *k == t.exposure)
                .map(|i| &mut ir.exposures[i])
            {
                x.targets.push(ExposureTarget {
                    endpoint: t.endpoint.clone(),
                    port: t.port,
                    chain: t.chain.clone(),
                });
                x.targets.sort();
                x.targets.dedup();
            }
        }
        ir.endpoints.sort_by(|a, b| a.name.cmp(&b.name));
        ir
    }
}

impl Exposure {
    /// The exposure's key within a node, as membership names it:
    /// `<namespace>/<service>/<kind>/<proto>/<port>`.
    pub fn key(&self) -> String {
        let kind = match self.kind {
            ExposureKind::NodePort => "node-port",
            ExposureKind::LoadBalancer => "load-balancer",
        };
        format!("{}/{kind}/{}/{}", self.service, self.proto, self.port)
    }
}
