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

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::net::{AddressSet, PortRange, Proto, ports_match};

/// Version of the IR format. Bumped on any incompatible change.
pub const IR_VERSION: u32 = 1;

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
    /// Endpoints judged on this node, sorted by name.
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
}

impl NodeVerdict<'_> {
    /// Whether the node lets the flow through (sides it does not judge pass).
    pub fn passes(&self) -> bool {
        self.egress.is_none_or(|s| s.passes()) && self.ingress.is_none_or(|s| s.passes())
    }

    /// Whether the policy allows the flow on every side this node judges.
    pub fn allows(&self) -> bool {
        self.egress.is_none_or(|s| s.action() == Action::Allow)
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
        NodeVerdict { egress, ingress }
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
        for e in &self.endpoints {
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
        }
        Ok(())
    }
}
