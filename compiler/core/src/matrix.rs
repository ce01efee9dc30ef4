//! `matrix`: every allowed connection between workloads, grouped by owner.
//!
//! Groups: pods by owner (Deployment, StatefulSet, DaemonSet, Job; else the
//! pod), nodes (`name[Node]`), externals (`name[External]`). A group pair is
//! listed with the ports allowed for *every* member pair (both sides, every
//! address family both have), computed symbolically from the compiled chains
//! — the ones the per-node IRs hold — with interval algebra over ports. An
//! external counts as allowed only when all of its addresses are.
//!
//! Lines: `FROM => TO : PROTO PORTS`, one per protocol, ports merged into
//! ranges (`TCP 80,9090-9100`; ICMP has none). Exposures add lines from
//! externals through NodePort and LoadBalancer entry points, with the
//! entry-point port: `internet[External] => shop/frontend[Deployment] : TCP
//! 30080 (NodePort shop/frontend)`.
//!
//! A [`Select`] keeps only some group pairs; pairs it drops are not
//! evaluated at all.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;

use ringfence_intent::model::{Proto, WorkloadKind};
use ringfence_inventory::model::TrafficPolicy;
use ringfence_schema::ir::ExposureKind;
use ringfence_schema::net::PortRange;
use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::compiled::{Compiled, PORT_PROTOS, ProtoPorts};
use crate::idx::{ChainIdx, EndpointIdx, SetIdx, WorkloadIdx, index_type};
use crate::interval::{Addrs, PortSet};

/// Every allowed connection, sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Matrix {
    /// One entry per (from, to, protocol, entry point).
    pub connections: Vec<Connection>,
}

/// One line of the matrix.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Connection {
    /// The consumer group.
    pub from: String,
    /// The provider group.
    pub to: String,
    /// Through a NodePort or LoadBalancer entry point (ports are then its ports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<Entry>,
    /// tcp, udp, sctp or icmp.
    pub proto: Proto,
    /// Allowed ports, merged; empty for icmp.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortRange>,
}

/// A NodePort or LoadBalancer entry point.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Entry {
    /// node-port or load-balancer.
    pub kind: ExposureKind,
    /// The service, `namespace/name`.
    pub service: String,
}

/// Which lines to compute: every list empty keeps everything.
///
/// A pattern matches a group by its whole name (`shop/web[Deployment]`), its
/// name without the kind (`shop/web`), or a prefix ending in `/`
/// (a namespace or `cluster/namespace`, given without the `/`).
#[derive(Clone, Debug, Default)]
pub struct Select {
    /// Consumer groups (any of them).
    pub from: Vec<String>,
    /// Provider groups (any of them).
    pub to: Vec<String>,
    /// Namespaces one side must be in (any of them).
    pub namespaces: Vec<String>,
}

impl Select {
    fn matches(pattern: &str, group: &str) -> bool {
        let name = group.rsplit_once('[').map_or(group, |(n, _)| n);
        group == pattern
            || name == pattern
            || name
                .strip_prefix(pattern)
                .is_some_and(|rest| rest.starts_with('/'))
    }

    fn in_namespace(ns: &str, group: &str) -> bool {
        let name = group.rsplit_once('[').map_or(group, |(n, _)| n);
        let mut parts = name.rsplit('/');
        parts.next();
        parts.next() == Some(ns)
    }

    fn keeps_from(&self, group: &str) -> bool {
        self.from.is_empty() || self.from.iter().any(|p| Self::matches(p, group))
    }

    fn keeps_to(&self, group: &str) -> bool {
        self.to.is_empty() || self.to.iter().any(|p| Self::matches(p, group))
    }

    fn keeps(&self, from: &str, to: &str) -> bool {
        self.keeps_from(from)
            && self.keeps_to(to)
            && (self.namespaces.is_empty()
                || self
                    .namespaces
                    .iter()
                    .any(|ns| Self::in_namespace(ns, from) || Self::in_namespace(ns, to)))
    }
}

/// What a member looks like from the other side, per address family: an
/// address, or an external's addresses (of that family).
#[derive(Clone)]
enum Spec {
    Ip(IpAddr),
    Set(Addrs),
}

struct Member {
    workload: WorkloadIdx,
    /// [IPv4, IPv6].
    specs: [Option<Spec>; 2],
    /// Per family: (atom of its address, egress chain as a consumer,
    /// provider kind).
    sides: [Option<(AtomIdx, Option<ChainIdx>, ProviderIdx)>; 2],
}

fn fam(a: &IpAddr) -> usize {
    usize::from(a.is_ipv6())
}

/// How a member judges traffic to it (see [`Engine::ingress`]).
#[derive(Clone, PartialEq, Eq, Hash)]
enum Provider {
    /// No chain: everything passes.
    All,
    /// Nothing reaches it (a node-side member without an address).
    Nothing,
    /// A pod's ingress chain.
    Chain(ChainIdx),
    /// A node: its chain (if managed), except the ports host-network pods own.
    Node(Option<ChainIdx>, Vec<(Proto, u16)>),
    /// A host-network pod: only its ports, each judged by the chain of
    /// whoever owns it on that address (if managed).
    Host(Vec<(Proto, u16, Option<ChainIdx>)>),
}

/// A consumer profile: per family (atom, egress chain).
type ConsumerProfile = [Option<(AtomIdx, Option<ChainIdx>)>; 2];
/// A provider profile: per family (atom, provider kind).
type ProviderProfile = [Option<(AtomIdx, ProviderIdx)>; 2];
/// A result's lines: (protocol, ports), in protocol order.
type ProtoLines = Vec<(Proto, Vec<PortRange>)>;
/// Exposure lines by (from, to): (entry point, protocol, ports), sorted.
type ExposureLines<'s> = HashMap<(&'s str, &'s str), Vec<(Entry, Proto, Vec<PortRange>)>>;

/// A group of the matrix with its members' distinct profiles.
struct Group<'a> {
    name: &'a str,
    members: Vec<Member>,
    external: bool,
    /// Distinct consumer profiles: per family (atom, egress chain).
    consumers: Vec<ConsumerProfile>,
    /// Distinct provider profiles: per family (atom, provider kind).
    providers: Vec<ProviderProfile>,
}

index_type!(
    /// An atom: a position in `Engine::atoms`.
    AtomIdx
);

index_type!(
    /// A provider kind: a position in `Engine::providers`.
    ProviderIdx
);

index_type!(
    /// An interned result: a position in `Engine::results`.
    ResultIdx
);

/// Not computed yet, in `Engine`'s dense tables.
const UNSET: ResultIdx = ResultIdx(u32::MAX);

/// The matrix evaluator. A chain's verdict for a peer depends only on
/// which of the compiled sets hold the peer, so addresses are classed into
/// *atoms* (equal set membership) and every verdict is computed once per
/// (chain, atom), interned, and looked up in dense tables; group pairs whose
/// members share profiles cost a few array reads.
struct Engine<'c> {
    c: &'c Compiled,
    /// Per atom: a representative peer.
    atoms: Vec<Spec>,
    providers: Vec<Provider>,
    /// Interned results; `results[0]` is empty, `results[1]` everything.
    results: Vec<ProtoPorts>,
    result_ids: FxHashMap<ProtoPorts, ResultIdx>,
    /// Egress chain (slot) × atom → result.
    egress_slots: FxHashMap<Option<ChainIdx>, usize>,
    egress: Vec<Vec<ResultIdx>>,
    /// Provider kind × atom → result.
    ingress: Vec<Vec<ResultIdx>>,
    inter: FxHashMap<(ResultIdx, ResultIdx), ResultIdx>,
    cache: FxHashMap<(ChainIdx, AtomIdx), ProtoPorts>,
    /// Per result: its lines (protocol, ports), made on first use.
    lines: Vec<Option<ProtoLines>>,
}

const EMPTY: ResultIdx = ResultIdx(0);
const FULL: ResultIdx = ResultIdx(1);

impl<'c> Engine<'c> {
    fn new(c: &'c Compiled) -> Self {
        let mut e = Engine {
            c,
            atoms: Vec::new(),
            providers: Vec::new(),
            results: Vec::new(),
            result_ids: FxHashMap::default(),
            egress_slots: FxHashMap::default(),
            egress: Vec::new(),
            ingress: Vec::new(),
            inter: FxHashMap::default(),
            cache: FxHashMap::default(),
            lines: Vec::new(),
        };
        e.result(ProtoPorts::none());
        e.result(ProtoPorts::all());
        e
    }

    fn result(&mut self, r: ProtoPorts) -> ResultIdx {
        if let Some(&i) = self.result_ids.get(&r) {
            return i;
        }
        let i = ResultIdx::new(self.results.len());
        self.result_ids.insert(r.clone(), i);
        self.results.push(r);
        self.lines.push(None);
        i
    }

    /// The atom of every address: addresses held by exactly the same
    /// compiled sets share one.
    fn ip_atoms(&mut self, ips: &[IpAddr]) -> HashMap<IpAddr, AtomIdx> {
        let mut v4: Vec<(u32, usize)> = Vec::new();
        let mut v6: Vec<(u128, usize)> = Vec::new();
        for (i, a) in ips.iter().enumerate() {
            match a {
                IpAddr::V4(x) => v4.push((u32::from(*x), i)),
                IpAddr::V6(x) => v6.push((u128::from(*x), i)),
            }
        }
        v4.sort_unstable();
        v6.sort_unstable();
        let mut held: Vec<Vec<SetIdx>> = vec![Vec::new(); ips.len()];
        for (s, set) in self.c.sets.iter().enumerate() {
            let s = SetIdx::new(s);
            for &(lo, hi) in set.v4.ranges() {
                let from = v4.partition_point(|x| x.0 < lo);
                for x in v4[from..].iter().take_while(|x| x.0 <= hi) {
                    held[x.1].push(s);
                }
            }
            for &(lo, hi) in set.v6.ranges() {
                let from = v6.partition_point(|x| x.0 < lo);
                for x in v6[from..].iter().take_while(|x| x.0 <= hi) {
                    held[x.1].push(s);
                }
            }
        }
        let mut index: HashMap<(bool, Vec<SetIdx>), AtomIdx> = HashMap::new();
        let mut out = HashMap::with_capacity(ips.len());
        for (a, sets) in ips.iter().zip(held) {
            let atom = *index.entry((a.is_ipv6(), sets)).or_insert_with(|| {
                self.atoms.push(Spec::Ip(*a));
                AtomIdx::new(self.atoms.len() - 1)
            });
            out.insert(*a, atom);
        }
        out
    }

    fn provider(&mut self, p: Provider, index: &mut HashMap<Provider, ProviderIdx>) -> ProviderIdx {
        *index.entry(p.clone()).or_insert_with(|| {
            self.providers.push(p);
            ProviderIdx::new(self.providers.len() - 1)
        })
    }

    /// How member `w` (with spec `spec` in this family) judges traffic to it.
    fn provider_of(&self, w: WorkloadIdx, spec: &Spec) -> Provider {
        let c = self.c;
        let wl = &c.cat[w.index()];
        match wl.kind {
            WorkloadKind::External => Provider::All,
            WorkloadKind::Pod if !wl.host_network => match c.wl_endpoint[w.index()] {
                Some(e) => Provider::Chain(c.ep_info[e.index()].ingress),
                None => Provider::All,
            },
            _ => {
                let Spec::Ip(dst) = spec else {
                    return Provider::Nothing;
                };
                if wl.kind == WorkloadKind::Node {
                    let chain = c.wl_endpoint[w.index()].map(|e| c.ep_info[e.index()].ingress);
                    let owned = c
                        .lookups()
                        .ingress_ip
                        .get(dst)
                        .map(|e| {
                            e.host_pods
                                .iter()
                                .map(|(pp, _)| (pp.proto, pp.port))
                                .collect()
                        })
                        .unwrap_or_default();
                    return Provider::Node(chain, owned);
                }
                let ports = c
                    .endpoints_ports(w)
                    .into_iter()
                    .filter(|(proto, _)| PORT_PROTOS.contains(proto))
                    .map(|(proto, port)| {
                        let owner = c.ingress_endpoint(*dst, proto, Some(port));
                        (proto, port, owner.map(|e| c.ep_info[e.index()].ingress))
                    })
                    .collect();
                Provider::Host(ports)
            }
        }
    }

    /// What `chain` allows from (or to) every address of `atom`.
    fn allows(&self, chain: ChainIdx, atom: AtomIdx) -> ProtoPorts {
        match &self.atoms[atom.index()] {
            Spec::Ip(ip) => self.c.chain_allows_ip(chain, *ip),
            Spec::Set(a) => self.c.chain_allows_all(chain, a),
        }
    }

    /// [`Engine::allows`], remembered (for the exposure lines).
    fn allows_cached(&mut self, chain: ChainIdx, atom: AtomIdx) -> ProtoPorts {
        if let Some(r) = self.cache.get(&(chain, atom)) {
            return r.clone();
        }
        let r = self.allows(chain, atom);
        self.cache.insert((chain, atom), r.clone());
        r
    }

    fn egress(&mut self, chain: Option<ChainIdx>, atom: AtomIdx) -> ResultIdx {
        let n = self.egress_slots.len();
        let slot = *self.egress_slots.entry(chain).or_insert(n);
        if slot == self.egress.len() {
            self.egress.push(vec![UNSET; self.atoms.len()]);
        }
        let r = self.egress[slot][atom.index()];
        if r != UNSET {
            return r;
        }
        let r = match chain {
            Some(ch) => {
                let pp = self.allows(ch, atom);
                self.result(pp)
            }
            None => FULL,
        };
        self.egress[slot][atom.index()] = r;
        r
    }

    fn ingress(&mut self, provider: ProviderIdx, atom: AtomIdx) -> ResultIdx {
        while self.ingress.len() <= provider.index() {
            self.ingress.push(vec![UNSET; self.atoms.len()]);
        }
        let r = self.ingress[provider.index()][atom.index()];
        if r != UNSET {
            return r;
        }
        let pp = match &self.providers[provider.index()] {
            Provider::All => ProtoPorts::all(),
            Provider::Nothing => ProtoPorts::none(),
            Provider::Chain(ch) => self.allows(*ch, atom),
            Provider::Node(ch, owned) => {
                let mut r = ch.map_or_else(ProtoPorts::all, |ch| self.allows(ch, atom));
                for &(proto, port) in owned {
                    if let Some(i) = PORT_PROTOS.iter().position(|&x| x == proto) {
                        r.ports[i] = r.ports[i].difference(&PortSet::range(port, port));
                    }
                }
                r
            }
            Provider::Host(ports) => {
                let mut r = ProtoPorts::none();
                for &(proto, port, owner) in ports {
                    let i = PORT_PROTOS
                        .iter()
                        .position(|&x| x == proto)
                        .expect("port protocols only");
                    if owner.is_none_or(|ch| self.allows(ch, atom).ports[i].contains(port)) {
                        r.ports[i] = r.ports[i].union(&PortSet::range(port, port));
                    }
                }
                r
            }
        };
        let r = self.result(pp);
        self.ingress[provider.index()][atom.index()] = r;
        r
    }

    fn intersect(&mut self, a: ResultIdx, b: ResultIdx) -> ResultIdx {
        match (a, b) {
            (EMPTY, _) | (_, EMPTY) => EMPTY,
            (FULL, x) | (x, FULL) => x,
            (a, b) if a == b => a,
            (a, b) => {
                let key = (a.min(b), a.max(b));
                if let Some(&r) = self.inter.get(&key) {
                    return r;
                }
                let mut r = self.results[a.index()].clone();
                r.intersect(&self.results[b.index()]);
                let r = self.result(r);
                self.inter.insert(key, r);
                r
            }
        }
    }

    /// Both sides for one consumer and one provider profile, over the
    /// families both have (nothing if none).
    fn pair(&mut self, c: &ConsumerProfile, p: &ProviderProfile) -> ResultIdx {
        let mut acc = None;
        for f in 0..2 {
            let (Some((c_atom, eg)), Some((p_atom, pk))) = (c[f], p[f]) else {
                continue;
            };
            let e = self.egress(eg, p_atom);
            let r = if e == EMPTY {
                EMPTY
            } else {
                let i = self.ingress(pk, c_atom);
                self.intersect(e, i)
            };
            acc = Some(match acc {
                None => r,
                Some(a) => self.intersect(a, r),
            });
            if acc == Some(EMPTY) {
                break;
            }
        }
        acc.unwrap_or(EMPTY)
    }

    /// The lines of a result, in protocol order.
    fn lines(&mut self, r: ResultIdx) -> &[(Proto, Vec<PortRange>)] {
        let results = &self.results;
        self.lines[r.index()].get_or_insert_with(|| {
            let a = &results[r.index()];
            let mut v: Vec<(Proto, Vec<PortRange>)> = PORT_PROTOS
                .iter()
                .enumerate()
                .filter(|(i, _)| !a.ports[*i].is_empty())
                .map(|(i, &proto)| (proto, ranges(&a.ports[i])))
                .collect();
            if a.icmp {
                v.push((Proto::Icmp, Vec::new()));
            }
            v
        })
    }
}

/// One line of the matrix, borrowed while it is produced (see [`Connection`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Line<'a> {
    /// The consumer group.
    pub from: &'a str,
    /// The provider group.
    pub to: &'a str,
    /// Through a NodePort or LoadBalancer entry point.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<&'a Entry>,
    /// tcp, udp, sctp or icmp.
    pub proto: Proto,
    /// Allowed ports, merged; empty for icmp.
    #[serde(skip_serializing_if = "<[PortRange]>::is_empty")]
    pub ports: &'a [PortRange],
}

impl Line<'_> {
    /// The owned line.
    pub fn to_connection(&self) -> Connection {
        Connection {
            from: self.from.to_string(),
            to: self.to.to_string(),
            via: self.via.cloned(),
            proto: self.proto,
            ports: self.ports.to_vec(),
        }
    }
}

impl Compiled {
    /// Every allowed connection between workload groups (see [`crate::matrix`]).
    pub fn matrix(&self) -> Matrix {
        self.matrix_of(&Select::default())
    }

    /// The lines of [`Compiled::matrix`] that `select` keeps.
    pub fn matrix_of(&self, select: &Select) -> Matrix {
        let mut connections = Vec::new();
        let _ = self.matrix_each(select, |l| {
            connections.push(l.to_connection());
            Ok::<(), std::convert::Infallible>(())
        });
        Matrix { connections }
    }

    /// The lines of [`Compiled::matrix_of`], in the same (sorted) order,
    /// handed to `emit` one at a time as they are computed: memory does not
    /// grow with the output. Stops at the first error `emit` returns.
    pub fn matrix_each<E>(
        &self,
        select: &Select,
        mut emit: impl FnMut(Line<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut engine = Engine::new(self);
        let groups = self.matrix_groups(&mut engine);
        let exposures = self.exposure_lines(&groups, select, &mut engine);
        for from in groups.iter().filter(|g| select.keeps_from(g.name)) {
            for to in &groups {
                if !select.keeps(from.name, to.name) || (from.external && to.external) {
                    continue;
                }
                let r = if std::ptr::eq(from, to) {
                    diagonal(&mut engine, from)
                } else {
                    let mut acc = None;
                    'pairs: for c in &from.consumers {
                        for p in &to.providers {
                            let r = engine.pair(c, p);
                            let a = match acc {
                                None => r,
                                Some(a) => engine.intersect(a, r),
                            };
                            acc = Some(a);
                            if a == EMPTY {
                                break 'pairs;
                            }
                        }
                    }
                    acc
                };
                if let Some(r) = r {
                    for (proto, ports) in engine.lines(r) {
                        emit(Line {
                            from: from.name,
                            to: to.name,
                            via: None,
                            proto: *proto,
                            ports,
                        })?;
                    }
                }
                if from.external
                    && let Some(lines) = exposures.get(&(from.name, to.name))
                {
                    for (entry, proto, ports) in lines {
                        emit(Line {
                            from: from.name,
                            to: to.name,
                            via: Some(entry),
                            proto: *proto,
                            ports,
                        })?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The groups, sorted by name, with their members' profiles.
    fn matrix_groups<'s>(&'s self, engine: &mut Engine<'_>) -> Vec<Group<'s>> {
        let mut by_name: BTreeMap<&str, Vec<Member>> = BTreeMap::new();
        let mut ips = Vec::new();
        for (w, wl) in self.workloads() {
            let mut specs = [None, None];
            match wl.kind {
                WorkloadKind::Pod | WorkloadKind::Node => {
                    for a in &wl.addrs {
                        if specs[fam(a)].is_none() {
                            specs[fam(a)] = Some(Spec::Ip(*a));
                            ips.push(*a);
                        }
                    }
                }
                WorkloadKind::External => {
                    let a = Addrs::from_nets(wl.nets.iter());
                    if !a.v4.is_empty() {
                        let v4 = Addrs {
                            v4: a.v4.clone(),
                            ..Addrs::default()
                        };
                        specs[0] = Some(Spec::Set(v4));
                    }
                    if !a.v6.is_empty() {
                        let v6 = Addrs {
                            v6: a.v6,
                            ..Addrs::default()
                        };
                        specs[1] = Some(Spec::Set(v6));
                    }
                }
                WorkloadKind::Service => continue,
            }
            if specs.iter().all(Option::is_none) {
                continue;
            }
            by_name.entry(&wl.group).or_default().push(Member {
                workload: w,
                specs,
                sides: [None, None],
            });
        }
        ips.sort_unstable();
        ips.dedup();
        let ip_atoms = engine.ip_atoms(&ips);
        let mut provider_index = HashMap::new();
        by_name
            .into_iter()
            .map(|(name, mut members)| {
                for m in &mut members {
                    for f in 0..2 {
                        let Some(spec) = &m.specs[f] else { continue };
                        let (atom, eg) = match spec {
                            Spec::Ip(a) => (
                                ip_atoms[a],
                                self.lookups()
                                    .egress_ip
                                    .get(a)
                                    .and_then(|&e| self.ep_info[e.index()].egress),
                            ),
                            Spec::Set(_) => {
                                engine.atoms.push(spec.clone());
                                (AtomIdx::new(engine.atoms.len() - 1), None)
                            }
                        };
                        let p = engine.provider_of(m.workload, spec);
                        let pk = engine.provider(p, &mut provider_index);
                        m.sides[f] = Some((atom, eg, pk));
                    }
                }
                let consumers = distinct(
                    members
                        .iter()
                        .map(|m| m.sides.map(|s| s.map(|(a, eg, _)| (a, eg)))),
                );
                let providers = distinct(
                    members
                        .iter()
                        .map(|m| m.sides.map(|s| s.map(|(a, _, pk)| (a, pk)))),
                );
                let external = members
                    .iter()
                    .all(|m| self.cat[m.workload.index()].kind == WorkloadKind::External);
                Group {
                    name,
                    members,
                    external,
                    consumers,
                    providers,
                }
            })
            .collect()
    }

    /// Lines from externals through NodePort and LoadBalancer entry points,
    /// by (from, to), sorted.
    fn exposure_lines<'s>(
        &'s self,
        groups: &[Group<'s>],
        select: &Select,
        engine: &mut Engine<'_>,
    ) -> ExposureLines<'s> {
        // (from, to, entry, proto) → ports.
        let mut lines: BTreeMap<(&str, &str, Entry, Proto), Vec<PortRange>> = BTreeMap::new();
        for x in &self.exposures {
            let svc = &self.cat[x.service.index()];
            let entry = Entry {
                kind: x.kind,
                service: format!("{}/{}", svc.namespace, svc.name),
            };
            let class = PORT_PROTOS.iter().position(|&p| p == x.proto);
            let Some(class) = class else { continue };
            // The cluster's node addresses, which a pod sees with
            // externalTrafficPolicy Cluster.
            let nodes = (x.external_traffic_policy == TrafficPolicy::Cluster).then(|| {
                Addrs::from_ips(
                    self.cat
                        .iter()
                        .filter(|w| w.kind == WorkloadKind::Node && w.cluster == Some(x.cluster))
                        .flat_map(|w| w.addrs.iter()),
                )
            });
            let mut by_group: BTreeMap<&str, Vec<(EndpointIdx, u16)>> = BTreeMap::new();
            for &(e, tp) in &x.targets {
                let w = self.ep_info[e.index()].workload;
                by_group
                    .entry(&self.cat[w.index()].group)
                    .or_default()
                    .push((e, tp));
            }
            for from in groups.iter().filter(|g| g.external) {
                for (&to, targets) in by_group
                    .iter()
                    .filter(|(to, _)| select.keeps(from.name, to))
                {
                    let ok = from.members.iter().all(|m| {
                        targets.iter().all(|&(e, tp)| {
                            // The hop through the node is judged by the pod's
                            // own ingress; the entry by its exposure chain.
                            let chain = self.ep_info[e.index()].ingress;
                            let entry = self.ep_info[e.index()].exposure_chain();
                            let w = self.ep_info[e.index()].workload;
                            let fams: Vec<usize> = (0..2)
                                .filter(|&f| {
                                    m.specs[f].is_some()
                                        && self.cat[w.index()].addrs.iter().any(|a| fam(a) == f)
                                })
                                .collect();
                            !fams.is_empty()
                                && fams.iter().all(|&f| {
                                    let atom = m.sides[f].expect("family").0;
                                    let allowed = engine.allows_cached(entry, atom);
                                    let hop = nodes.as_ref().is_none_or(|n| {
                                        let part = if f == 0 {
                                            Addrs {
                                                v4: n.v4.clone(),
                                                ..Addrs::default()
                                            }
                                        } else {
                                            Addrs {
                                                v6: n.v6.clone(),
                                                ..Addrs::default()
                                            }
                                        };
                                        part.is_empty()
                                            || self.chain_allows_all(chain, &part).ports[class]
                                                .contains(tp)
                                    });
                                    allowed.ports[class].contains(tp) && hop
                                })
                        })
                    });
                    if ok {
                        lines
                            .entry((from.name, to, entry.clone(), x.proto))
                            .or_default()
                            .push(PortRange::single(x.port));
                    }
                }
            }
        }
        let mut out: ExposureLines<'s> = HashMap::new();
        for ((from, to, entry, proto), mut ports) in lines {
            ringfence_schema::net::normalize_ports(&mut ports);
            out.entry((from, to))
                .or_default()
                .push((entry, proto, ports));
        }
        out
    }
}

/// A group with itself: every pair of distinct members.
fn diagonal(engine: &mut Engine<'_>, g: &Group<'_>) -> Option<ResultIdx> {
    let mut acc = None;
    for c in &g.members {
        for p in &g.members {
            if c.workload == p.workload {
                continue;
            }
            let cs = c.sides.map(|s| s.map(|(a, eg, _)| (a, eg)));
            let ps = p.sides.map(|s| s.map(|(a, _, pk)| (a, pk)));
            let r = engine.pair(&cs, &ps);
            let a = match acc {
                None => r,
                Some(a) => engine.intersect(a, r),
            };
            acc = Some(a);
            if a == EMPTY {
                return acc;
            }
        }
    }
    acc
}

/// The items, sorted, each once.
fn distinct<T: Ord>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut v: Vec<T> = items.collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn ranges(p: &PortSet) -> Vec<PortRange> {
    p.ranges()
        .iter()
        .map(|&(start, end)| PortRange { start, end })
        .collect()
}

impl Compiled {
    /// The declared ports of a host-network pod (tcp, udp, sctp).
    fn endpoints_ports(&self, pod: WorkloadIdx) -> Vec<(Proto, u16)> {
        match self.wl_endpoint[pod.index()] {
            Some(e) => self.endpoints[e.index()]
                .ports
                .iter()
                .map(|pp| (pp.proto, pp.port))
                .collect(),
            None => self.cat[pod.index()]
                .host_ports
                .iter()
                .map(|pp| (pp.proto, pp.port))
                .collect(),
        }
    }
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} => {} : ", self.from, self.to)?;
        self.write_allowed(f)
    }
}

impl Line<'_> {
    /// What follows ` : `: `TCP 80,9090-9100`, `ICMP`, `TCP 30080 (NodePort ns/svc)`.
    fn write_allowed(&self, f: &mut impl fmt::Write) -> fmt::Result {
        f.write_str(&self.proto.as_str().to_ascii_uppercase())?;
        for (i, r) in self.ports.iter().enumerate() {
            f.write_char(if i == 0 { ' ' } else { ',' })?;
            write!(f, "{r}")?;
        }
        if let Some(e) = &self.via {
            let kind = match e.kind {
                ExposureKind::NodePort => "NodePort",
                ExposureKind::LoadBalancer => "LoadBalancer",
            };
            write!(f, " ({kind} {})", e.service)?;
        }
        Ok(())
    }
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Line {
            from: &self.from,
            to: &self.to,
            via: self.via.as_ref(),
            proto: self.proto,
            ports: &self.ports,
        }
        .fmt(f)
    }
}

impl fmt::Display for Matrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.connections {
            writeln!(f, "{c}")?;
        }
        Ok(())
    }
}

/// One group pair of the matrix on one line (`matrix --summary`): every
/// protocol and entry point the pair's lines allow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PairSummary {
    /// The consumer group.
    pub from: String,
    /// The provider group.
    pub to: String,
    /// What the lines say after ` : `, in their order (`TCP 80,443`, `ICMP`,
    /// `TCP 30080 (NodePort shop/web)`).
    pub allowed: Vec<String>,
}

impl fmt::Display for PairSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} => {} : {}",
            self.from,
            self.to,
            self.allowed.join("; ")
        )
    }
}

impl Compiled {
    /// [`Compiled::matrix_each`], one [`PairSummary`] per group pair.
    pub fn matrix_summary_each<E>(
        &self,
        select: &Select,
        mut emit: impl FnMut(PairSummary) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut cur: Option<PairSummary> = None;
        self.matrix_each(select, |l| {
            let mut allowed = String::new();
            let _ = l.write_allowed(&mut allowed);
            match &mut cur {
                Some(s) if s.from == l.from && s.to == l.to => s.allowed.push(allowed),
                _ => {
                    let next = PairSummary {
                        from: l.from.to_string(),
                        to: l.to.to_string(),
                        allowed: vec![allowed],
                    };
                    if let Some(done) = cur.replace(next) {
                        emit(done)?;
                    }
                }
            }
            Ok(())
        })?;
        match cur {
            Some(s) => emit(s),
            None => Ok(()),
        }
    }
}
