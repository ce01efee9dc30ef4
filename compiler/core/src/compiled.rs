//! The compiled result and its fast matcher.
//!
//! [`Compiled`] keeps the cluster-wide chains the per-node IRs were cut
//! from, so `explain`, `matrix` and flow analysis evaluate exactly what the
//! nodes enforce: the same rules, in the same order, with the same sets.
//! [`Compiled::verdict`] looks endpoints up by address in hash maps and walks
//! chains whose sets are interval sets, so it runs millions of times per
//! second.

use std::net::IpAddr;
use std::sync::OnceLock;

use ipnet::IpNet;
use ringfence_intent::model::{Action, Mode, Proto, ScopeId, WorkloadKind};
use ringfence_inventory::model::{ServicePort, ServiceType, TrafficPolicy};
use ringfence_schema::ir::{Endpoint, ExposureKind, NodeIr, PolicyInfo, ProtoPort, Rule};
use ringfence_schema::net::ports_match;
use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::chains::CompiledChain;
use crate::idx::{ChainIdx, ClusterIdx, EndpointIdx, RuleIdx, WorkloadIdx, WorkloadRange};
use crate::interval::{Addrs, PortSet};
use crate::live::LiveIndex;
use crate::world::ClusterRange;

/// Everything the compiler produced: the per-node IRs and the cluster-wide
/// tables they were sliced from.
pub struct Compiled {
    pub(crate) clusters: Vec<String>,
    /// Scope names, in priority order (indexes of [`CompiledWorkload::scope`]).
    pub(crate) scopes: Vec<String>,
    pub(crate) cat: Vec<CompiledWorkload>,
    pub(crate) endpoints: Vec<Endpoint>,
    pub(crate) ep_info: Vec<EpInfo>,
    pub(crate) wl_endpoint: Vec<Option<EndpointIdx>>,
    pub(crate) chains: Vec<CompiledChain>,
    /// Real addresses of every set (classes replaced by their pods' addresses).
    pub(crate) sets: Vec<Addrs>,
    /// What the rules were built from: addresses and classes.
    pub(crate) analysis: Vec<Addrs>,
    pub(crate) set_names: Vec<String>,
    /// What following a live inventory needs ([`crate::compile_live`]).
    pub(crate) live: Option<LiveIndex>,
    pub(crate) policies: Vec<PolicyInfo>,
    pub(crate) exposures: Vec<CompiledExposure>,
    /// The per-node IRs, indexed by [`NodeIdx`](crate::idx::NodeIdx).
    pub(crate) node_irs: Vec<NodeIr>,
    /// Each cluster's workloads (for the service lookups).
    pub(crate) ranges: Vec<ClusterRange>,
    /// Built on first use: rendering and sealing never evaluate.
    pub(crate) lookups: OnceLock<Lookups>,
}

/// Address lookups for evaluation; the first cluster wins on overlap.
pub(crate) struct Lookups {
    pub(crate) egress_ip: FxHashMap<IpAddr, EndpointIdx>,
    pub(crate) ingress_ip: FxHashMap<IpAddr, IngressEntry>,
    pub(crate) vips: FxHashMap<(IpAddr, Proto, u16), VipTarget>,
}

/// A workload, as explain and matrix need it.
#[derive(Clone, Debug)]
pub(crate) struct CompiledWorkload {
    pub(crate) kind: WorkloadKind,
    pub(crate) cluster: Option<ClusterIdx>,
    pub(crate) namespace: String,
    pub(crate) name: String,
    /// The matrix group label.
    pub(crate) group: String,
    /// Pods: (owner kind, owner name).
    pub(crate) owner: Option<(String, String)>,
    pub(crate) addrs: Vec<IpAddr>,
    pub(crate) nets: Vec<IpNet>,
    pub(crate) node: Option<WorkloadIdx>,
    pub(crate) host_network: bool,
    /// Host-network pods: the ports they are told apart by.
    pub(crate) host_ports: Vec<ProtoPort>,
    pub(crate) endpoint: Option<EndpointIdx>,
    /// The most specific scope that contains it.
    pub(crate) scope: Option<ScopeId>,
    pub(crate) service: Option<SvcData>,
}

/// A workload as flow analysis places addresses: see [`Compiled::catalog`].
#[derive(Clone, Copy, Debug)]
pub struct WorkloadView<'a> {
    /// Pod, service, node or external.
    pub kind: WorkloadKind,
    /// The group `matrix` prints it under (`shop/cart[Deployment]`,
    /// `worker-1[Node]`, `internet[External]`, `shop/cart[Service]`).
    pub group: &'a str,
    /// The most specific scope that contains it (the last in priority order).
    pub scope: Option<&'a str>,
    /// Its addresses: pod IPs, node addresses, a service's cluster and
    /// load-balancer IPs; empty for externals.
    pub addrs: &'a [IpAddr],
    /// An external's prefixes (after removing what the clusters own).
    pub nets: &'a [IpNet],
    /// A pod on the host network (its addresses are its node's).
    pub host_network: bool,
}

/// What a service workload needs for translation.
#[derive(Clone, Debug)]
pub(crate) struct SvcData {
    pub(crate) kind: ServiceType,
    pub(crate) external_traffic_policy: TrafficPolicy,
    pub(crate) ports: Vec<ServicePort>,
    pub(crate) cluster_ips: Vec<IpAddr>,
    pub(crate) lb_ingress: Vec<IpAddr>,
    /// Backing pods.
    pub(crate) backing: Vec<WorkloadIdx>,
    /// Per backing pod, per service port: the resolved target port.
    pub(crate) targets: Vec<Vec<Option<u16>>>,
}

/// Where an endpoint lives and which chains judge it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EpInfo {
    pub(crate) workload: WorkloadIdx,
    pub(crate) cluster: ClusterIdx,
    /// Its node's workload.
    pub(crate) node: WorkloadIdx,
    pub(crate) ingress: ChainIdx,
    pub(crate) egress: Option<ChainIdx>,
    /// The chain judging traffic through an exposure, if not `ingress`
    /// (`ingress` without the node-return rules).
    pub(crate) exposed: Option<ChainIdx>,
}

impl EpInfo {
    /// The chain judging traffic that enters through an exposure.
    pub(crate) fn exposure_chain(&self) -> ChainIdx {
        self.exposed.unwrap_or(self.ingress)
    }
}

/// A NodePort or LoadBalancer entry point, cluster-wide: what each node's
/// [`Exposure`](ringfence_schema::ir::Exposure) is cut from.
#[derive(Clone, Debug)]
pub(crate) struct CompiledExposure {
    pub(crate) cluster: ClusterIdx,
    pub(crate) service: WorkloadIdx,
    pub(crate) kind: ExposureKind,
    pub(crate) proto: Proto,
    pub(crate) addresses: Vec<IpAddr>,
    pub(crate) port: u16,
    pub(crate) external_traffic_policy: TrafficPolicy,
    /// (endpoint, target port) of every backing pod that has an endpoint.
    pub(crate) targets: Vec<(EndpointIdx, u16)>,
    /// Node workloads serving it, ascending.
    pub(crate) nodes: Vec<WorkloadIdx>,
}

/// Who receives traffic sent to one address.
#[derive(Clone, Debug)]
pub(crate) struct IngressEntry {
    pub(crate) cluster: ClusterIdx,
    /// The pod or node endpoint with that address.
    pub(crate) endpoint: Option<EndpointIdx>,
    /// Host-network pods listening on the address, by port (sorted).
    pub(crate) host_pods: Vec<(ProtoPort, EndpointIdx)>,
}

/// How a service address was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    /// A cluster IP: translated on the consumer's node, so both sides see
    /// the backing pod and its target port.
    ClusterIp,
    /// A node port: the consumer's egress sees the node address and node
    /// port; the receiving node judges the target's ingress.
    NodePort,
    /// A load-balancer address: as a node port, with the service port.
    LoadBalancer,
}

/// A service address and where traffic to it goes.
#[derive(Clone, Debug)]
pub(crate) struct VipTarget {
    pub(crate) service: WorkloadIdx,
    pub(crate) via: Via,
    /// (backing pod workload, target port).
    pub(crate) targets: Vec<(WorkloadIdx, u16)>,
}

/// The decision of one side: which endpoint's chain, which rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The judging endpoint (see [`Compiled::endpoint`]).
    pub endpoint: EndpointIdx,
    /// The deciding chain.
    pub chain: ChainIdx,
    /// Position of the deciding rule in the chain.
    pub rule: RuleIdx,
    /// The rule's action.
    pub action: Action,
    /// The chain's mode.
    pub mode: Mode,
}

impl Decision {
    /// Whether the traffic gets through this side (allowed, or analyze mode).
    pub fn passes(&self) -> bool {
        self.action == Action::Allow || self.mode == Mode::Analyze
    }
}

/// One side of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// No endpoint judges this side (an external, a workload in no scope, an
    /// unknown address): it allows.
    NotManaged,
    /// A chain decided.
    Decided(Decision),
}

impl Side {
    /// The policy action on this side (`allow` when not managed).
    pub fn action(&self) -> Action {
        match self {
            Side::NotManaged => Action::Allow,
            Side::Decided(d) => d.action,
        }
    }

    /// Whether the traffic gets through this side.
    pub fn passes(&self) -> bool {
        match self {
            Side::NotManaged => true,
            Side::Decided(d) => d.passes(),
        }
    }
}

/// A service translation applied to a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// How the service was addressed.
    pub via: Via,
    /// The backing pod the verdict is about (the first denied, else the first).
    pub target: IpAddr,
    /// Its target port.
    pub port: u16,
    /// With `externalTrafficPolicy: Cluster` through a node port or load
    /// balancer: the target's ingress judging the node-translated source.
    pub node_hop: Option<Side>,
}

impl Translation {
    /// How `explain` and `analyze` show it, for a flow that addressed
    /// `addr:port`: `cluster IP 172.20.0.1:80 -> 10.0.0.1:8080`.
    pub fn describe(&self, addr: IpAddr, port: Option<u16>) -> String {
        let via = match self.via {
            Via::ClusterIp => "cluster IP",
            Via::NodePort => "node port",
            Via::LoadBalancer => "load balancer",
        };
        format!(
            "{via} {addr}:{} -> {}:{}",
            port.unwrap_or(0),
            self.target,
            self.port
        )
    }
}

/// Both sides of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowVerdict {
    /// The consumer's egress chain.
    pub egress: Side,
    /// The provider's ingress chain.
    pub ingress: Side,
    /// Set when the destination was a service address.
    pub translation: Option<Translation>,
}

impl FlowVerdict {
    /// Whether policy allows the flow on every side.
    pub fn allowed(&self) -> bool {
        self.egress.action() == Action::Allow
            && self.ingress.action() == Action::Allow
            && self
                .translation
                .and_then(|t| t.node_hop)
                .is_none_or(|s| s.action() == Action::Allow)
    }

    /// Whether the network lets it through (denies in analyze mode pass).
    pub fn passes(&self) -> bool {
        self.egress.passes()
            && self.ingress.passes()
            && self
                .translation
                .and_then(|t| t.node_hop)
                .is_none_or(|s| s.passes())
    }
}

/// Allowed ports per protocol: what a chain lets through for a peer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ProtoPorts {
    /// tcp, udp, sctp.
    pub(crate) ports: [PortSet; 3],
    pub(crate) icmp: bool,
}

/// The protocols with ports, in the order [`ProtoPorts::ports`] holds them.
pub(crate) const PORT_PROTOS: [Proto; 3] = [Proto::Tcp, Proto::Udp, Proto::Sctp];

impl ProtoPorts {
    pub(crate) fn all() -> Self {
        ProtoPorts {
            ports: [PortSet::full(), PortSet::full(), PortSet::full()],
            icmp: true,
        }
    }

    pub(crate) fn none() -> Self {
        ProtoPorts {
            ports: [PortSet::empty(), PortSet::empty(), PortSet::empty()],
            icmp: false,
        }
    }

    pub(crate) fn intersect(&mut self, o: &ProtoPorts) {
        for i in 0..3 {
            self.ports[i] = self.ports[i].intersection(&o.ports[i]);
        }
        self.icmp &= o.icmp;
    }

    pub(crate) fn is_empty(&self) -> bool {
        !self.icmp && self.ports.iter().all(PortSet::is_empty)
    }
}

impl Compiled {
    /// The per-node IRs, sorted by (cluster, node).
    pub fn nodes(&self) -> &[NodeIr] {
        &self.node_irs
    }

    pub(crate) fn lookups(&self) -> &Lookups {
        self.lookups.get_or_init(|| crate::slice::lookups(self))
    }

    /// Take the per-node IRs.
    pub fn into_nodes(self) -> Vec<NodeIr> {
        self.node_irs
    }

    /// Move the per-node IRs out, keeping the rest (`watch` keeps a node's
    /// live IR, or this one, itself): [`Compiled::nodes`] is empty after.
    pub fn take_nodes(&mut self) -> Vec<NodeIr> {
        std::mem::take(&mut self.node_irs)
    }

    /// Names of the clusters, sorted.
    pub fn clusters(&self) -> &[String] {
        &self.clusters
    }

    /// Every workload of the inventory and every external, with its group,
    /// addresses and most specific scope, in a fixed order.
    pub fn catalog(&self) -> impl ExactSizeIterator<Item = WorkloadView<'_>> + '_ {
        self.cat.iter().map(|w| WorkloadView {
            kind: w.kind,
            group: &w.group,
            scope: w.scope.map(|s| self.scopes[s.index()].as_str()),
            addrs: &w.addrs,
            nets: &w.nets,
            host_network: w.host_network,
        })
    }

    /// Every workload of the catalog (`cat`), with its index.
    pub(crate) fn workloads(&self) -> impl Iterator<Item = (WorkloadIdx, &CompiledWorkload)> + '_ {
        WorkloadRange::new(0, self.cat.len()).iter().zip(&self.cat)
    }

    /// An endpoint by index (from a [`Decision`]).
    pub fn endpoint(&self, i: EndpointIdx) -> &Endpoint {
        &self.endpoints[i.index()]
    }

    /// The node an endpoint is on.
    pub fn endpoint_node(&self, i: EndpointIdx) -> &str {
        &self.cat[self.ep_info[i.index()].node.index()].name
    }

    /// The deciding rule of a decision.
    pub fn rule(&self, d: &Decision) -> &Rule {
        &self.chains[d.chain.index()].chain.rules[d.rule.index()]
    }

    /// The chain id of a decision.
    pub fn chain_id(&self, d: &Decision) -> &str {
        &self.chains[d.chain.index()].chain.id
    }

    /// The policy a decision traces to.
    pub fn policy(&self, d: &Decision) -> &PolicyInfo {
        let f = &self.chains[d.chain.index()].fast[d.rule.index()];
        &self.policies[f.policy.index()]
    }

    /// The first rule of a chain matching a flow (every chain ends with a
    /// rule matching everything).
    pub(crate) fn first_match(
        &self,
        chain: ChainIdx,
        peer: IpAddr,
        proto: Proto,
        port: Option<u16>,
    ) -> RuleIdx {
        let rules = &self.chains[chain.index()].fast;
        RuleIdx::new(
            rules
                .iter()
                .position(|r| {
                    r.proto.matches(proto)
                        && ports_match(&r.ports, port)
                        && r.peer.is_none_or(|s| self.sets[s.index()].contains(peer))
                })
                .unwrap_or(rules.len() - 1),
        )
    }

    pub(crate) fn decide(
        &self,
        endpoint: EndpointIdx,
        chain: ChainIdx,
        peer: IpAddr,
        proto: Proto,
        port: Option<u16>,
    ) -> Side {
        let rule = self.first_match(chain, peer, proto, port);
        let c = &self.chains[chain.index()];
        Side::Decided(Decision {
            endpoint,
            chain,
            rule,
            action: c.fast[rule.index()].action,
            mode: c.chain.mode,
        })
    }

    /// The egress side of traffic from `src` to `dst`.
    pub(crate) fn egress_side(
        &self,
        src: IpAddr,
        dst: IpAddr,
        proto: Proto,
        port: Option<u16>,
    ) -> Side {
        match self.lookups().egress_ip.get(&src) {
            Some(&e) => {
                let chain = self.ep_info[e.index()]
                    .egress
                    .expect("egress endpoints have a chain");
                self.decide(e, chain, dst, proto, port)
            }
            None => Side::NotManaged,
        }
    }

    /// The endpoint that receives traffic to `dst` on `proto`/`port`: a
    /// host-network pod listening there wins over the node.
    pub(crate) fn ingress_endpoint(
        &self,
        dst: IpAddr,
        proto: Proto,
        port: Option<u16>,
    ) -> Option<EndpointIdx> {
        let entry = self.lookups().ingress_ip.get(&dst)?;
        if let Some(port) = port
            && let Ok(i) = entry
                .host_pods
                .binary_search_by(|(pp, _)| (pp.proto, pp.port).cmp(&(proto, port)))
        {
            return Some(entry.host_pods[i].1);
        }
        entry.endpoint
    }

    /// The ingress side of traffic from `src` to `dst`.
    pub(crate) fn ingress_side(
        &self,
        src: IpAddr,
        dst: IpAddr,
        proto: Proto,
        port: Option<u16>,
    ) -> Side {
        match self.ingress_endpoint(dst, proto, port) {
            Some(e) => self.decide(e, self.ep_info[e.index()].ingress, src, proto, port),
            None => Side::NotManaged,
        }
    }

    /// Both sides of a flow as the nodes see it, without service translation.
    pub fn verdict_direct(
        &self,
        src: IpAddr,
        dst: IpAddr,
        proto: Proto,
        port: Option<u16>,
    ) -> FlowVerdict {
        FlowVerdict {
            egress: self.egress_side(src, dst, proto, port),
            ingress: self.ingress_side(src, dst, proto, port),
            translation: None,
        }
    }

    /// Both sides of a flow from `src` to `dst` as the consumer addressed it.
    /// A service address (cluster IP, node port, load-balancer IP) is
    /// translated to each backing pod; the flow is allowed only if it is
    /// allowed to every one, and the verdict names the first that denies.
    ///
    /// Addresses are assumed unique across clusters; where they are not, the
    /// first cluster by name owns the address.
    pub fn verdict(
        &self,
        src: IpAddr,
        dst: IpAddr,
        proto: Proto,
        port: Option<u16>,
    ) -> FlowVerdict {
        if let Some(p) = port
            && let Some(v) = self.lookups().vips.get(&(dst, proto, p))
        {
            return self.verdict_via(src, dst, proto, p, v);
        }
        self.verdict_direct(src, dst, proto, port)
    }

    fn verdict_via(
        &self,
        src: IpAddr,
        dst: IpAddr,
        proto: Proto,
        port: u16,
        v: &VipTarget,
    ) -> FlowVerdict {
        let traffic_policy = self.cat[v.service.index()]
            .service
            .as_ref()
            .map_or(TrafficPolicy::Cluster, |s| s.external_traffic_policy);
        let mut first = None;
        for &(pod, tp) in &v.targets {
            let Some(target) = same_family(&self.cat[pod.index()].addrs, src) else {
                continue;
            };
            let egress = match v.via {
                Via::ClusterIp => self.egress_side(src, target, proto, Some(tp)),
                Via::NodePort | Via::LoadBalancer => self.egress_side(src, dst, proto, Some(port)),
            };
            let ingress = match self.cat[pod.index()].endpoint {
                Some(e) => {
                    let info = &self.ep_info[e.index()];
                    let chain = match v.via {
                        Via::ClusterIp => info.ingress,
                        Via::NodePort | Via::LoadBalancer => info.exposure_chain(),
                    };
                    self.decide(e, chain, src, proto, Some(tp))
                }
                None => Side::NotManaged,
            };
            let node_hop = (v.via != Via::ClusterIp && traffic_policy == TrafficPolicy::Cluster)
                .then(|| {
                    let hop_src = match v.via {
                        Via::NodePort => Some(dst),
                        _ => self.cat[pod.index()]
                            .node
                            .and_then(|n| same_family(&self.cat[n.index()].addrs, target)),
                    }?;
                    Some(match self.cat[pod.index()].endpoint {
                        Some(e) => self.decide(
                            e,
                            self.ep_info[e.index()].ingress,
                            hop_src,
                            proto,
                            Some(tp),
                        ),
                        None => Side::NotManaged,
                    })
                })
                .flatten();
            let fv = FlowVerdict {
                egress,
                ingress,
                translation: Some(Translation {
                    via: v.via,
                    target,
                    port: tp,
                    node_hop,
                }),
            };
            if !fv.allowed() {
                return fv;
            }
            first.get_or_insert(fv);
        }
        first.unwrap_or_else(|| self.verdict_direct(src, dst, proto, Some(port)))
    }

    /// What a chain allows for one peer address, per protocol.
    pub(crate) fn chain_allows_ip(&self, chain: ChainIdx, peer: IpAddr) -> ProtoPorts {
        let mut remaining = ProtoPorts::all();
        let mut allowed = ProtoPorts::none();
        for r in &self.chains[chain.index()].fast {
            if !r.peer.is_none_or(|s| self.sets[s.index()].contains(peer)) {
                continue;
            }
            let ports = PortSet::from_port_ranges(&r.ports);
            for (i, &p) in PORT_PROTOS.iter().enumerate() {
                if r.proto.matches(p) {
                    let decided = remaining.ports[i].intersection(&ports);
                    if r.action == Action::Allow {
                        allowed.ports[i] = allowed.ports[i].union(&decided);
                    }
                    remaining.ports[i] = remaining.ports[i].difference(&ports);
                }
            }
            if r.proto.matches(Proto::Icmp) && remaining.icmp {
                allowed.icmp = r.action == Action::Allow;
                remaining.icmp = false;
            }
            if remaining.is_empty() {
                break;
            }
        }
        allowed
    }

    /// What a chain allows for *every* address of a set, per protocol.
    pub(crate) fn chain_allows_all(&self, chain: ChainIdx, peers: &Addrs) -> ProtoPorts {
        let full = Addrs::full();
        let mut allowed = ProtoPorts::all();
        // Per class: boxes (addresses × ports) not yet decided.
        let mut remaining: [Vec<(Addrs, PortSet)>; 4] = [
            vec![(peers.clone(), PortSet::full())],
            vec![(peers.clone(), PortSet::full())],
            vec![(peers.clone(), PortSet::full())],
            vec![(peers.clone(), PortSet::full())],
        ];
        for r in &self.chains[chain.index()].fast {
            let peer = r.peer.map_or(&full, |s| &self.sets[s.index()]);
            let ports = PortSet::from_port_ranges(&r.ports);
            for c in 0..4 {
                let proto = if c < 3 { PORT_PROTOS[c] } else { Proto::Icmp };
                if !r.proto.matches(proto) || remaining[c].is_empty() {
                    continue;
                }
                let rule_ports = if c < 3 {
                    ports.clone()
                } else {
                    PortSet::full()
                };
                let mut next = Vec::new();
                for (a, ps) in std::mem::take(&mut remaining[c]) {
                    let hit_ports = ps.intersection(&rule_ports);
                    if hit_ports.is_empty() || !a.intersects(peer) {
                        next.push((a, ps));
                        continue;
                    }
                    if r.action == Action::Deny {
                        if c < 3 {
                            allowed.ports[c] = allowed.ports[c].difference(&hit_ports);
                        } else {
                            allowed.icmp = false;
                        }
                    }
                    let outside = a.difference(peer);
                    if !outside.is_empty() {
                        next.push((outside, ps.clone()));
                    }
                    let rest = ps.difference(&rule_ports);
                    if !rest.is_empty() {
                        next.push((a.intersection(peer), rest));
                    }
                }
                remaining[c] = next;
            }
            if remaining.iter().all(Vec::is_empty) {
                break;
            }
        }
        allowed
    }
}

/// The first address of `addrs` in the family of `like`.
pub(crate) fn same_family(addrs: &[IpAddr], like: IpAddr) -> Option<IpAddr> {
    addrs
        .iter()
        .copied()
        .find(|a| a.is_ipv4() == like.is_ipv4())
}
