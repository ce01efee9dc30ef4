//! Order: for every endpoint and direction, the ordered list of what applies
//! (quarantine, implicit rules, policies, the catch-all), as a signature.
//!
//! Endpoints with equal signatures get the same chain, so chains are built
//! and compressed once per group rather than once per pod. A signature holds
//! everything a chain's content depends on: the policies in global order,
//! the target ports a pod's named ports resolve to, the catch-all, the mode.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use rayon::prelude::*;
use ringfence_intent::model::{Action, Direction, Mode, Proto, WorkloadKind};
use ringfence_schema::ir::{EndpointKind, ProtoPort};
use ringfence_schema::net::ports_match;
use rustc_hash::FxHashMap;

use crate::chains::expand;
use crate::classes::Classes;
use crate::compress::PeerRef;
use crate::idx::{ClusterIdx, GroupIdx, PlanIdx, PolicyIdx, SetIdx, WorkloadIdx};
use crate::interval::Addrs;
use crate::membership::{Membership, dir_index};
use crate::resolve::{Resolved, SetKey, resolve_named, service_port_selected};
use crate::world::{World, host_ports};

/// One entry of a chain signature.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Item {
    /// The quarantine rules of the chain's direction (exceptions, then deny).
    Quarantine,
    /// The implicit allow from the cluster's nodes to a service's target port.
    SvcReturn {
        /// Key into [`Resolved::svc_returns`].
        key: (WorkloadIdx, u32),
        proto: Proto,
        port: u16,
    },
    /// On a node's egress: deny its own traffic to pods whose node-return
    /// rule would admit it although their other rules deny it (see
    /// [`guard_node_returns`]).
    Guard {
        /// The guard's policy info, located at the denying policy.
        info: PolicyIdx,
        /// The pods' addresses (one family).
        set: SetIdx,
        proto: Proto,
        port: u16,
        log: bool,
    },
    /// A policy's rules on a consumer's egress chain.
    Egress(PlanIdx),
    /// A policy's rules on a provider's ingress chain: its port numbers (or
    /// every port) if the endpoint is a provider member (`direct`), the ports
    /// its port names give on the endpoint (`named`), plus the target ports
    /// of provided services it backs (`via`).
    Ingress {
        plan: PlanIdx,
        direct: bool,
        named: Vec<(Proto, u16)>,
        via: Vec<(Proto, u16)>,
    },
    /// The catch-all (its policy info and action).
    CatchAll(PolicyIdx, Action),
}

/// Everything a chain's content depends on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Sig {
    pub(crate) direction: Direction,
    pub(crate) mode: Mode,
    pub(crate) items: Vec<Item>,
}

/// An endpoint before slicing: chains are still group indexes.
#[derive(Clone, Debug)]
pub(crate) struct Ep {
    pub(crate) workload: WorkloadIdx,
    pub(crate) kind: EndpointKind,
    pub(crate) cluster: ClusterIdx,
    /// Its node's workload.
    pub(crate) node: WorkloadIdx,
    pub(crate) name: String,
    pub(crate) label: String,
    pub(crate) addresses: Vec<IpAddr>,
    pub(crate) ports: Vec<ProtoPort>,
    pub(crate) ingress: GroupIdx,
    pub(crate) egress: Option<GroupIdx>,
    /// The group judging traffic that enters through an exposure, when it
    /// is not `ingress` (see [`guard_node_returns`]).
    pub(crate) exposed: Option<GroupIdx>,
}

/// The endpoints and the distinct chain signatures they use.
pub(crate) struct Ordered {
    pub(crate) endpoints: Vec<Ep>,
    /// The distinct signatures, by [`GroupIdx`].
    pub(crate) groups: Vec<Sig>,
}

/// Owner kinds `matrix` groups pods by (the workload kinds, as manifests and
/// `ownerReferences` name them).
const GROUPED_OWNERS: [&str; 7] = [
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "ReplicaSet",
    "ReplicationController",
];

/// How `matrix` names the group a workload belongs to: `ns/owner[Kind]`,
/// `ns/pod[Pod]`, `node[Node]`, `name[External]`, `ns/name[Service]`; with
/// several clusters, prefixed by `cluster/`.
pub(crate) fn group_label(world: &World<'_>, w: WorkloadIdx) -> String {
    let wl = world.wl(w);
    let body = match wl.kind {
        WorkloadKind::Pod => pod_label(world.pod(w)),
        WorkloadKind::Service => {
            format!("{}/{}[Service]", wl.namespace.unwrap_or(""), wl.name)
        }
        WorkloadKind::Node => format!("{}[Node]", wl.name),
        WorkloadKind::External => return format!("{}[External]", wl.name),
    };
    match wl.cluster {
        Some(c) if world.inv.clusters.len() > 1 => {
            format!("{}/{body}", world.inv.clusters[c.index()].name)
        }
        _ => body,
    }
}

/// A pod's group, without the cluster: `ns/owner[Kind]` or `ns/pod[Pod]`.
pub(crate) fn pod_label(pod: &ringfence_inventory::model::Pod) -> String {
    match &pod.owner {
        Some(o) if GROUPED_OWNERS.contains(&o.kind.as_str()) => {
            format!("{}/{}[{}]", pod.namespace, o.name, o.kind)
        }
        _ => format!("{}/{}[Pod]", pod.namespace, pod.name),
    }
}

/// The endpoint name of a workload: `pod/<ns>/<name>` or `node/<name>`.
pub(crate) fn endpoint_name(world: &World<'_>, w: WorkloadIdx) -> String {
    let wl = world.wl(w);
    match wl.kind {
        WorkloadKind::Node => format!("node/{}", wl.name),
        _ => format!("pod/{}/{}", wl.namespace.unwrap_or(""), wl.name),
    }
}

/// Compute every endpoint's signatures and group them. A pod's signatures
/// follow from its class (see [`crate::classes`]), so they are computed once
/// per class, on its first managed pod, and the other pods share its groups.
pub(crate) fn order(world: &World<'_>, m: &Membership, r: &Resolved, classes: &Classes) -> Ordered {
    let managed: Vec<WorkloadIdx> = m.managed.ones().collect();
    // Per managed endpoint: the position in `managed` whose signatures it
    // shares (its own, for the first of a class and for unclassed ones).
    let mut first_of_class: Vec<Option<usize>> = vec![None; classes.keys.len()];
    let like: Vec<usize> = managed
        .iter()
        .enumerate()
        .map(|(i, &w)| match classes.of[w.index()] {
            Some(c) => *first_of_class[c.index()].get_or_insert(i),
            None => i,
        })
        .collect();
    let computed: Vec<WorkloadIdx> = (0..managed.len())
        .filter(|&i| like[i] == i)
        .map(|i| managed[i])
        .collect();
    let lists = applicable(world, m, r, &computed);
    let mut sigs = computed
        .par_iter()
        .zip(lists.par_iter())
        .map(|(&w, applies)| {
            let kind = world
                .endpoint_kind(w)
                .expect("managed workloads can be endpoints");
            let ingress = signature(world, m, r, w, Direction::Ingress, applies);
            let egress = (kind != EndpointKind::HostPod)
                .then(|| signature(world, m, r, w, Direction::Egress, applies));
            (ingress, egress)
        })
        .collect::<Vec<(Sig, Option<Sig>)>>()
        .into_iter();
    let mut index: FxHashMap<Sig, GroupIdx> = FxHashMap::default();
    let mut groups: Vec<Sig> = Vec::new();
    let mut intern = |s: Sig| -> GroupIdx {
        if let Some(&g) = index.get(&s) {
            return g;
        }
        let g = GroupIdx::new(groups.len());
        index.insert(s.clone(), g);
        groups.push(s);
        g
    };
    // Interned in endpoint order (a class's first pod comes before the rest),
    // so groups are numbered as if every endpoint had been computed.
    let mut grouped: Vec<(GroupIdx, Option<GroupIdx>)> = Vec::with_capacity(managed.len());
    for (i, &l) in like.iter().enumerate() {
        let g = match l == i {
            true => {
                let (ingress, egress) = sigs.next().expect("one per computed endpoint");
                (intern(ingress), egress.map(&mut intern))
            }
            false => grouped[l],
        };
        grouped.push(g);
    }
    // Names and labels are formatted per endpoint: on every core.
    let endpoints = managed
        .par_iter()
        .zip(grouped)
        .map(|(&w, (ingress, egress))| {
            let wl = world.wl(w);
            let kind = world
                .endpoint_kind(w)
                .expect("managed workloads can be endpoints");
            let ports = match kind {
                EndpointKind::HostPod => host_ports(world.pod(w)),
                _ => Vec::new(),
            };
            Ep {
                workload: w,
                kind,
                cluster: wl.cluster.expect("endpoints belong to a cluster"),
                node: wl.node.expect("endpoints have a node"),
                name: endpoint_name(world, w),
                label: group_label(world, w),
                addresses: wl.addrs.clone(),
                ports,
                ingress,
                egress,
                exposed: None,
            }
        })
        .collect();
    Ordered { endpoints, groups }
}

/// What applies to one endpoint, in global order: plans on its egress, and
/// (plan, service it is reached through, or `None` for direct) on its ingress.
#[derive(Default)]
struct Applies {
    egress: Vec<PlanIdx>,
    ingress: Vec<(PlanIdx, Option<WorkloadIdx>)>,
}

/// What applies to each endpoint of `of`, walking every plan's members once
/// (in global order) instead of testing every plan against every endpoint:
/// the work is the size of the chains, not endpoints × policies. Members
/// not in `of` are passed over.
fn applicable(world: &World<'_>, m: &Membership, r: &Resolved, of: &[WorkloadIdx]) -> Vec<Applies> {
    let mut slot = vec![u32::MAX; world.len()];
    for (i, &w) in of.iter().enumerate() {
        slot[w.index()] = i as u32;
    }
    let mut out: Vec<Applies> = (0..of.len()).map(|_| Applies::default()).collect();
    for &pi in &r.order {
        let p = &r.plans[pi.index()];
        if !p.egress_rules.is_empty() {
            for w in p.egress.ones() {
                if let Some(a) = out.get_mut(slot[w.index()] as usize) {
                    a.egress.push(pi);
                }
            }
        }
        if p.ingress_peer.has_rules() {
            for w in p.ingress_direct.ones() {
                if let Some(a) = out.get_mut(slot[w.index()] as usize) {
                    a.ingress.push((pi, None));
                }
            }
            let scope = &m.scopes[p.scope.index()];
            for &s in &p.provider_services {
                for &b in world.backing(s) {
                    if m.managed.get(b)
                        && scope.get(b)
                        && let Some(a) = out.get_mut(slot[b.index()] as usize)
                    {
                        a.ingress.push((pi, Some(s)));
                    }
                }
            }
        }
    }
    out
}

fn signature(
    world: &World<'_>,
    m: &Membership,
    r: &Resolved,
    w: WorkloadIdx,
    d: Direction,
    applies: &Applies,
) -> Sig {
    let scope = m.most_specific[w.index()];
    let mode = scope.map_or(Mode::Enforce, |s| r.modes[s.index()]);
    let mut items = Vec::new();
    if m.quarantined.get(w) {
        items.push(Item::Quarantine);
        return Sig {
            direction: d,
            mode,
            items,
        };
    }
    let is_pod = world.wl(w).kind == WorkloadKind::Pod;
    match d {
        Direction::Egress => items.extend(applies.egress.iter().map(|&pi| Item::Egress(pi))),
        Direction::Ingress => {
            if is_pod {
                svc_returns(world, m, r, w, world.services_of(w), &mut items);
            }
            // Entries of one plan are adjacent: direct first, then services.
            for group in applies.ingress.chunk_by(|a, b| a.0 == b.0) {
                let pi = group[0].0;
                let p = &r.plans[pi.index()];
                let member = group.iter().any(|&(_, s)| s.is_none());
                // Port names resolve on the endpoint itself, when it is a pod.
                let named = if member && !p.named.is_empty() && is_pod {
                    resolve_named(world.pod(w), p.proto, &p.named)
                } else {
                    Vec::new()
                };
                let direct = member && (p.named.is_empty() || !p.ports.is_empty());
                let mut via: Vec<(Proto, u16)> = group
                    .iter()
                    .filter_map(|&(_, s)| s)
                    .flat_map(|s| translated(world, w, s, p.proto, &p.ports, &p.named))
                    .collect();
                if direct || !named.is_empty() || !via.is_empty() {
                    via.sort_unstable();
                    via.dedup();
                    items.push(Item::Ingress {
                        plan: pi,
                        direct,
                        named,
                        via,
                    });
                }
            }
        }
    }
    let di = dir_index(d);
    let catch_all = match m.catch_all[di][w.index()] {
        Some(s) => {
            let k = world
                .intent
                .catch_alls
                .iter()
                .position(|c| c.scope == s && c.direction == d)
                .expect("a catch-all scope declares one");
            Item::CatchAll(r.catch_all_infos[k], world.intent.catch_alls[k].action)
        }
        None => {
            let s = scope.expect("managed, not quarantined: in some scope");
            let top = Membership::top(world, s);
            Item::CatchAll(r.implicit_infos[&(top, di)], Action::Allow)
        }
    };
    items.push(catch_all);
    Sig {
        direction: d,
        mode,
        items,
    }
}

/// The (protocol, target port) pairs a policy opens on pod `w` through service `s`.
fn translated(
    world: &World<'_>,
    w: WorkloadIdx,
    s: WorkloadIdx,
    proto: Proto,
    ports: &[ringfence_schema::net::PortRange],
    named: &[String],
) -> Vec<(Proto, u16)> {
    let pod = world.pod(w);
    world
        .service(s)
        .ports
        .iter()
        .filter(|sp| service_port_selected(sp, proto, ports, named))
        .filter_map(|sp| {
            pod.resolve_target(&sp.target, sp.proto)
                .map(|tp| (sp.proto, tp))
        })
        .collect()
}

/// Implicit node-return allows for pod `w`: for each NodePort/LoadBalancer
/// (externalTrafficPolicy Cluster) port of a service it backs, when an allow
/// policy of a scope it is in provides that port.
fn svc_returns(
    world: &World<'_>,
    m: &Membership,
    r: &Resolved,
    w: WorkloadIdx,
    services: &[WorkloadIdx],
    items: &mut Vec<Item>,
) {
    let pod = world.pod(w);
    for &s in services {
        for (k, sp) in world.service(s).ports.iter().enumerate() {
            let Some(ret) = r.svc_returns.get(&(s, k as u32)) else {
                continue;
            };
            let provided = ret
                .providers
                .iter()
                .any(|&pi| m.scopes[r.plans[pi.index()].scope.index()].get(w));
            if !provided {
                continue;
            }
            if let Some(port) = pod.resolve_target(&sp.target, sp.proto) {
                items.push(Item::SvcReturn {
                    key: (s, k as u32),
                    proto: sp.proto,
                    port,
                });
            }
        }
    }
}

/// Guard every implicit node-return rule at its senders.
///
/// A pod's node-return rule admits the cluster's nodes on a NodePort
/// target port, ahead of every policy, because traffic kube-proxy forwards
/// from another node's node port arrives with that node's address. The pod's
/// node cannot tell it from the other node's own traffic (or a host-network
/// pod's); the sending node can. So each node's egress chain denies, first,
/// its own traffic to those pods on that port when the pods' ingress
/// *without* the node-return rule denies the node's address: the policy that
/// denies (an absolute `deny from="nodes"`, a catch-all) keeps its meaning,
/// and only traffic the node forwarded through an exposure (judged there by
/// the target's ingress with the original source) still uses the rule.
/// Pods whose chain is in analyze mode are not guarded (they drop nothing).
///
/// Traffic entering through an exposure is judged with its original source,
/// so the node-return rule has no business there (it would let a node in
/// through a node port): such pods get an exposure group, their ingress
/// without the node-return rules.
pub(crate) fn guard_node_returns(r: &mut Resolved, o: &mut Ordered, classes: &Classes) {
    let mut exposed: HashMap<GroupIdx, GroupIdx> = HashMap::new();
    let mut index: FxHashMap<Sig, GroupIdx> = FxHashMap::default();
    let mut intern = |groups: &mut Vec<Sig>, sig: Sig| -> GroupIdx {
        *index.entry(sig.clone()).or_insert_with(|| {
            groups.push(sig);
            GroupIdx::new(groups.len() - 1)
        })
    };
    for ei in 0..o.endpoints.len() {
        let g = o.endpoints[ei].ingress;
        let x = match exposed.get(&g) {
            Some(&x) => x,
            None => {
                let sig = &o.groups[g.index()];
                let x = if sig
                    .items
                    .iter()
                    .any(|i| matches!(i, Item::SvcReturn { .. }))
                {
                    let mut sig = sig.clone();
                    sig.items.retain(|i| !matches!(i, Item::SvcReturn { .. }));
                    intern(&mut o.groups, sig)
                } else {
                    g
                };
                exposed.insert(g, x);
                x
            }
        };
        o.endpoints[ei].exposed = (x != g).then_some(x);
    }
    // Ingress groups with a node-return rule → (cluster, [v4, v6] addresses).
    let mut targets: BTreeMap<GroupIdx, (ClusterIdx, [Addrs; 2])> = BTreeMap::new();
    for e in &o.endpoints {
        let sig = &o.groups[e.ingress.index()];
        // Host-network pods share the node's addresses: not guarded.
        if e.kind != EndpointKind::Pod
            || sig.mode != Mode::Enforce
            || !sig
                .items
                .iter()
                .any(|i| matches!(i, Item::SvcReturn { .. }))
        {
            continue;
        }
        let t = targets
            .entry(e.ingress)
            .or_insert_with(|| (e.cluster, Default::default()));
        // A classed pod stands for its class (membership fills the set).
        match classes.of[e.workload.index()] {
            Some(c) => {
                for fam in &mut t.1 {
                    *fam = fam.union(&Addrs::class(c));
                }
            }
            None => {
                for a in &e.addresses {
                    let fam = usize::from(a.is_ipv6());
                    t.1[fam] = t.1[fam].union(&Addrs::from_ips(&[*a]));
                }
            }
        }
    }
    if targets.is_empty() {
        return;
    }
    let returns: BTreeSet<PolicyIdx> = r.svc_returns.values().map(|x| x.info).collect();
    // Each group's rules in order, the node-return rules left out.
    let rules: BTreeMap<GroupIdx, Vec<_>> = targets
        .keys()
        .map(|&g| {
            let mut rules = expand(&o.groups[g.index()], r);
            rules.retain(|x| !returns.contains(&x.policy));
            (g, rules)
        })
        .collect();
    // Denying info → guard info.
    let mut infos: BTreeMap<PolicyIdx, PolicyIdx> = BTreeMap::new();
    for ei in 0..o.endpoints.len() {
        let e = &o.endpoints[ei];
        let Some(eg) = e.egress else { continue };
        if e.kind != EndpointKind::Node
            || o.groups[eg.index()].items.first() == Some(&Item::Quarantine)
        {
            continue;
        }
        // (guard info, proto, port, log) → destination addresses.
        let mut deny: BTreeMap<(PolicyIdx, Proto, u16, bool), Addrs> = BTreeMap::new();
        for (g, (cluster, addrs)) in &targets {
            if *cluster != e.cluster {
                continue;
            }
            for item in &o.groups[g.index()].items {
                let Item::SvcReturn { proto, port, .. } = *item else {
                    continue;
                };
                for a in &e.addresses {
                    let fam = usize::from(a.is_ipv6());
                    if addrs[fam].is_empty() {
                        continue;
                    }
                    let Some(hit) = rules[g].iter().find(|x| {
                        x.proto.matches(proto)
                            && ports_match(&x.ports, Some(port))
                            && match &x.peer {
                                PeerRef::Any => true,
                                PeerRef::Set(s) => r.sets.addrs[s.index()].contains(*a),
                                PeerRef::New(s, _) => s.contains(*a),
                            }
                    }) else {
                        continue;
                    };
                    if hit.action != Action::Deny {
                        continue;
                    }
                    let info = *infos.entry(hit.policy).or_insert_with(|| {
                        let id = format!("{}/node-guard", r.infos.list[hit.policy.index()].id);
                        r.infos
                            .derive(hit.policy, id, "node-guard".into(), Action::Deny)
                    });
                    let d = deny.entry((info, proto, port, hit.log)).or_default();
                    *d = d.union(&addrs[fam]);
                }
            }
        }
        if deny.is_empty() {
            continue;
        }
        let mut sig = o.groups[eg.index()].clone();
        let guards: Vec<Item> = deny
            .into_iter()
            .map(|((info, proto, port, log), a)| Item::Guard {
                info,
                set: {
                    let def = format!("node-guard {a:?}");
                    r.sets
                        .intern(SetKey::NodeGuard(a.clone()), || def, a, "node_guard")
                },
                proto,
                port,
                log,
            })
            .collect();
        sig.items.splice(0..0, guards);
        o.endpoints[ei].egress = Some(intern(&mut o.groups, sig));
    }
}
