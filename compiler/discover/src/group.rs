//! Units: the policy objects discovery writes about, by granularity, and
//! the merging of units that behave alike.
//!
//! - `cluster`: one unit per cluster (no clustering);
//! - `namespace`: one unit per namespace (its pods), one for the nodes;
//! - `coarse`: a service and the workloads it selects are one unit;
//! - `fine`: each workload (pods by owner) and each service is a unit.
//!
//! The nodes of a cluster are one unit at every granularity, externals a
//! unit per prefix. Then, at `coarse` and `fine`, units of the same
//! namespace (externals: any) whose conversations are alike merge (see
//! [`Units::merge_alike`]).

use std::collections::BTreeMap;

use ringfence_inventory::model::Proto;
use rustc_hash::FxHashMap;

use crate::Granularity;
use crate::aggregate::{ConvKey, Evidence};
use crate::book::{Book, Entity, EntityId, EntityKind, NO_SERVICE, Peer, Via};

/// Index of a unit in [`Units::units`].
pub(crate) type UnitId = u32;

/// Units that may merge: (kind tag, cluster, namespace).
type Class<'n> = (u8, Option<usize>, Option<&'n str>);

/// What a unit stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum UnitKind {
    /// Pods of one or more owner workloads of one namespace (at `coarse`,
    /// with the services that select them).
    Workloads,
    /// A service, written `service:NAMESPACE/NAME`.
    Service(EntityId),
    /// One or more nodes of a cluster.
    Nodes,
    /// All pods of a namespace.
    Namespace,
    /// All pods of a cluster.
    ClusterPods,
    /// Everything in a cluster.
    Cluster,
    /// Addresses outside the inventory.
    External,
    /// The nodes of a service's cluster, as the entry point of its node
    /// port: what a consumer inside a cluster connects to.
    NodePortEntry(EntityId),
}

/// A policy object.
#[derive(Clone, Debug)]
pub(crate) struct Unit<'a> {
    pub(crate) kind: UnitKind,
    pub(crate) cluster: Option<usize>,
    pub(crate) namespace: Option<&'a str>,
    /// Member entities, sorted.
    pub(crate) entities: Vec<EntityId>,
    /// Member prefixes of an external unit, sorted.
    pub(crate) prefixes: Vec<Peer>,
    /// False once merged into another unit.
    pub(crate) alive: bool,
}

/// The edges between units: (consumer, provider, protocol) → port → evidence.
pub(crate) type Edges = BTreeMap<(UnitId, UnitId, Proto), BTreeMap<u16, Evidence>>;

/// Units and how entities and prefixes map to them.
pub(crate) struct Units<'a> {
    pub(crate) units: Vec<Unit<'a>>,
    pub(crate) granularity: Granularity,
    of_entity: Vec<UnitId>,
    of_ext: FxHashMap<Peer, UnitId>,
    svc_ref: FxHashMap<EntityId, UnitId>,
    entry_ref: FxHashMap<EntityId, UnitId>,
    /// (service, protocol, service port) → node port.
    node_ports: FxHashMap<(EntityId, Proto, u16), u16>,
}

/// Above this many units in one class, only identical behaviour merges
/// (the similarity search compares pairs).
const MAX_CLASS_FOR_SIMILARITY: usize = 2000;
/// Features shared by more units than this do not seed similarity pairs.
const MAX_FEATURE_FANOUT: usize = 256;
/// Merge rounds (each may enable more, as peers merge).
const MAX_ROUNDS: usize = 16;

/// The services of the conversations `keep` selects, each once, in order.
fn services(convs: &[(ConvKey, Evidence)], keep: impl Fn(&ConvKey) -> bool) -> Vec<EntityId> {
    let mut out: Vec<EntityId> = convs
        .iter()
        .filter(|(k, _)| keep(k))
        .map(|(k, _)| k.svc)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

impl<'a> Units<'a> {
    /// Units for a granularity, plus a unit per external prefix and per
    /// service a conversation reaches by its name.
    pub(crate) fn new(
        book: &Book<'a>,
        granularity: Granularity,
        convs: &[(ConvKey, Evidence)],
    ) -> Self {
        let mut u = Units {
            units: Vec::new(),
            granularity,
            of_entity: vec![UnitId::MAX; book.entities.len()],
            of_ext: FxHashMap::default(),
            svc_ref: FxHashMap::default(),
            entry_ref: FxHashMap::default(),
            node_ports: FxHashMap::default(),
        };
        match granularity {
            Granularity::Fine => {
                for (e, en) in book.entities.iter().enumerate() {
                    let kind = match en.kind {
                        EntityKind::Workload => UnitKind::Workloads,
                        EntityKind::Service => UnitKind::Service(e as EntityId),
                        EntityKind::Node => continue,
                    };
                    let id = u.push_entity(book, kind, e as EntityId);
                    u.of_entity[e] = id;
                    if en.kind == EntityKind::Service {
                        u.svc_ref.insert(e as EntityId, id);
                    }
                }
                u.nodes_per_cluster(book);
            }
            Granularity::Coarse => {
                u.coarse(book);
                u.nodes_per_cluster(book);
            }
            Granularity::Namespace => {
                let mut by_ns: BTreeMap<(usize, Option<&'a str>), Vec<EntityId>> = BTreeMap::new();
                for (e, en) in book.entities.iter().enumerate() {
                    by_ns
                        .entry((en.cluster, en.namespace))
                        .or_default()
                        .push(e as EntityId);
                }
                for ((c, ns), es) in by_ns {
                    let kind = if ns.is_some() {
                        UnitKind::Namespace
                    } else {
                        UnitKind::Nodes
                    };
                    let id = u.push(kind, Some(c), ns, es);
                    u.claim(id);
                }
            }
            Granularity::Cluster => u.per_cluster(book, UnitKind::Cluster, |_| true),
        }
        // Externals, and services reached by name.
        let mut exts: Vec<Peer> = convs
            .iter()
            .flat_map(|(k, _)| [k.src, k.dst])
            .filter(|p| !matches!(p, Peer::Entity(_)))
            .collect();
        exts.sort_unstable();
        exts.dedup();
        for p in exts {
            let id = u.push(UnitKind::External, None, None, Vec::new());
            u.units[id as usize].prefixes.push(p);
            u.of_ext.insert(p, id);
        }
        for s in services(convs, |k| u.by_service_name(k)) {
            if !u.svc_ref.contains_key(&s) {
                let id = u.push_entity(book, UnitKind::Service(s), s);
                u.svc_ref.insert(s, id);
            }
        }
        // Consumers inside a cluster that went through a node port: their
        // egress sees the node's address and the node port.
        for s in services(convs, Units::through_node_port) {
            let id = u.push_entity(book, UnitKind::NodePortEntry(s), s);
            u.entry_ref.insert(s, id);
            for sp in &book.service(s).ports {
                if let Some(np) = sp.node_port {
                    u.node_ports.insert((s, sp.proto, sp.port), np);
                }
            }
        }
        u
    }

    /// Whether a conversation came from inside a cluster through a node port.
    fn through_node_port(k: &ConvKey) -> bool {
        matches!(k.src, Peer::Entity(_)) && k.via == Via::NodePort
    }

    /// A service and the workloads it selects are one unit.
    fn coarse(&mut self, book: &Book<'a>) {
        let n = book.entities.len();
        let mut parent: Vec<usize> = (0..n).collect();
        fn find(p: &mut [usize], mut x: usize) -> usize {
            while p[x] != x {
                p[x] = p[p[x]];
                x = p[x];
            }
            x
        }
        // Workloads by (cluster, namespace), to find what each service selects.
        let mut workloads: FxHashMap<(usize, &str), Vec<usize>> = FxHashMap::default();
        for (e, en) in book.entities.iter().enumerate() {
            if en.kind == EntityKind::Workload {
                workloads
                    .entry((en.cluster, en.namespace.unwrap_or("")))
                    .or_default()
                    .push(e);
            }
        }
        for (e, en) in book.entities.iter().enumerate() {
            if en.kind != EntityKind::Service {
                continue;
            }
            let s = book.service(e as EntityId);
            let pods = &book.inv.clusters[en.cluster].pods;
            for &w in workloads
                .get(&(en.cluster, s.namespace.as_str()))
                .into_iter()
                .flatten()
            {
                if book.entities[w].pods.iter().any(|&p| s.selects(&pods[p])) {
                    let (a, b) = (find(&mut parent, e), find(&mut parent, w));
                    parent[a.max(b)] = a.min(b);
                }
            }
        }
        let mut groups: BTreeMap<usize, Vec<EntityId>> = BTreeMap::new();
        for e in 0..n {
            let r = find(&mut parent, e);
            groups.entry(r).or_default().push(e as EntityId);
        }
        for (_, es) in groups {
            let first = &book.entities[es[0] as usize];
            let kind = match first.kind {
                EntityKind::Node => continue,
                EntityKind::Service if es.len() == 1 => UnitKind::Service(es[0]),
                _ => UnitKind::Workloads,
            };
            let id = self.push(kind, Some(first.cluster), first.namespace, es.clone());
            self.claim(id);
            if let UnitKind::Service(s) = kind {
                self.svc_ref.insert(s, id);
            }
        }
    }

    /// The nodes of a cluster are one unit: pods move between nodes, so
    /// which node talked to which pod (kubelet probes go to the node's own
    /// pods) is incidental.
    fn nodes_per_cluster(&mut self, book: &Book<'a>) {
        self.per_cluster(book, UnitKind::Nodes, |en| en.kind == EntityKind::Node);
    }

    /// One unit of `kind` per cluster, of the entities `take` takes.
    fn per_cluster(&mut self, book: &Book<'a>, kind: UnitKind, take: impl Fn(&Entity<'a>) -> bool) {
        let mut by_cluster: BTreeMap<usize, Vec<EntityId>> = BTreeMap::new();
        for (e, en) in book.entities.iter().enumerate() {
            if take(en) {
                by_cluster
                    .entry(en.cluster)
                    .or_default()
                    .push(e as EntityId);
            }
        }
        for (c, es) in by_cluster {
            let id = self.push(kind, Some(c), None, es);
            self.claim(id);
        }
    }

    fn push(
        &mut self,
        kind: UnitKind,
        cluster: Option<usize>,
        namespace: Option<&'a str>,
        entities: Vec<EntityId>,
    ) -> UnitId {
        self.units.push(Unit {
            kind,
            cluster,
            namespace,
            entities,
            prefixes: Vec::new(),
            alive: true,
        });
        (self.units.len() - 1) as UnitId
    }

    /// A unit of the one entity `e`, in its cluster and namespace.
    fn push_entity(&mut self, book: &Book<'a>, kind: UnitKind, e: EntityId) -> UnitId {
        let en = &book.entities[e as usize];
        self.push(kind, Some(en.cluster), en.namespace, vec![e])
    }

    /// Make unit `id` the unit of each of its entities.
    fn claim(&mut self, id: UnitId) {
        for &e in &self.units[id as usize].entities {
            self.of_entity[e as usize] = id;
        }
    }

    /// Add a unit made by compression (all pods of a namespace or cluster).
    pub(crate) fn add(
        &mut self,
        kind: UnitKind,
        cluster: usize,
        namespace: Option<&'a str>,
        entities: Vec<EntityId>,
    ) -> UnitId {
        self.push(kind, Some(cluster), namespace, entities)
    }

    /// Whether a conversation is written to its service by name.
    fn by_service_name(&self, k: &ConvKey) -> bool {
        k.svc != NO_SERVICE
            && (self.granularity == Granularity::Fine
                || matches!(k.via, Via::NodePort | Via::LoadBalancer))
    }

    /// The unit of a peer.
    pub(crate) fn of(&self, p: Peer) -> UnitId {
        match p {
            Peer::Entity(e) => self.of_entity[e as usize],
            ext => self.of_ext[&ext],
        }
    }

    /// A conversation's consumer unit, provider unit and provider port.
    /// Traffic to a service by name is written to the service, on the
    /// service port: at `fine` always, else when it came through a node
    /// port or a load balancer (only a service policy opens those paths).
    pub(crate) fn place(&self, k: &ConvKey) -> (UnitId, UnitId, u16) {
        let c = self.of(k.src);
        if self.by_service_name(k) {
            (c, self.svc_ref[&k.svc], k.svc_port)
        } else {
            (c, self.of(k.dst), k.port)
        }
    }

    /// Edges between the current units. A consumer inside a cluster that
    /// went through a node port also gets an edge to the nodes on the node
    /// port: its egress judges the node's address, not the backend.
    pub(crate) fn edges(&self, convs: &[(ConvKey, Evidence)]) -> Edges {
        let mut out = Edges::new();
        let mut add = |key: (UnitId, UnitId, Proto), port: u16, ev: &Evidence| {
            out.entry(key)
                .or_default()
                .entry(port)
                .and_modify(|e| e.merge(ev))
                .or_insert_with(|| ev.clone());
        };
        for (k, ev) in convs {
            let (c, p, port) = self.place(k);
            add((c, p, k.proto), port, ev);
            if Units::through_node_port(k) {
                let node_port = self.node_ports.get(&(k.svc, k.proto, k.svc_port));
                add(
                    (c, self.entry_ref[&k.svc], k.proto),
                    *node_port.unwrap_or(&k.svc_port),
                    ev,
                );
            }
        }
        out
    }

    /// Merge units that behave alike: same class (kind, cluster and
    /// namespace; externals form one class), and a Jaccard similarity of
    /// their (direction, peer unit, protocol, port) sets of at least
    /// `threshold` (1.0: identical behaviour only, which invents nothing).
    /// Returns how many merges happened.
    pub(crate) fn merge_alike(&mut self, convs: &[(ConvKey, Evidence)], threshold: f64) -> usize {
        if !matches!(self.granularity, Granularity::Coarse | Granularity::Fine) && threshold < 1.0 {
            return 0;
        }
        let mut merges = 0;
        for _ in 0..MAX_ROUNDS {
            let features = self.features(convs);
            let mut classes: BTreeMap<Class<'_>, Vec<UnitId>> = BTreeMap::new();
            for (id, u) in self.units.iter().enumerate() {
                let tag = match u.kind {
                    UnitKind::Workloads => 0u8,
                    UnitKind::Nodes => 1,
                    UnitKind::External => 2,
                    _ => continue,
                };
                if !u.alive || features[id].is_empty() {
                    continue;
                }
                // Only `coarse` and `fine` merge inventory units; externals always may.
                if tag != 2 && !matches!(self.granularity, Granularity::Coarse | Granularity::Fine)
                {
                    continue;
                }
                classes
                    .entry((tag, u.cluster, u.namespace))
                    .or_default()
                    .push(id as UnitId);
            }
            let mut round = 0;
            for members in classes.values() {
                let mut same: BTreeMap<&[u64], Vec<UnitId>> = BTreeMap::new();
                for &m in members {
                    same.entry(&features[m as usize]).or_default().push(m);
                }
                for group in same.values().filter(|g| g.len() > 1) {
                    for &b in &group[1..] {
                        self.merge(group[0], b);
                        round += 1;
                    }
                }
            }
            if round == 0 && threshold < 1.0 {
                for members in classes.values() {
                    round += self.merge_similar(members, &features, threshold);
                }
            }
            merges += round;
            if round == 0 {
                break;
            }
        }
        merges
    }

    /// One round of pairwise merges above `threshold`, best pairs first,
    /// each unit in at most one pair.
    fn merge_similar(
        &mut self,
        members: &[UnitId],
        features: &[Vec<u64>],
        threshold: f64,
    ) -> usize {
        if members.len() < 2 || members.len() > MAX_CLASS_FOR_SIMILARITY {
            return 0;
        }
        let mut index: BTreeMap<u64, Vec<UnitId>> = BTreeMap::new();
        for &m in members {
            for &f in &features[m as usize] {
                index.entry(f).or_default().push(m);
            }
        }
        let mut pairs: Vec<(u64, UnitId, UnitId)> = Vec::new();
        for &a in members {
            let mut shared: BTreeMap<UnitId, usize> = BTreeMap::new();
            for f in &features[a as usize] {
                let us = &index[f];
                if us.len() > MAX_FEATURE_FANOUT {
                    continue;
                }
                for &b in us.iter().filter(|&&b| b > a) {
                    *shared.entry(b).or_default() += 1;
                }
            }
            for (b, s) in shared {
                let union = features[a as usize].len() + features[b as usize].len() - s;
                let j = s as f64 / union as f64;
                if j >= threshold {
                    // Sort by similarity, best first, exactly (no float keys).
                    let key = u64::MAX - ((s as u64) << 32) / union as u64;
                    pairs.push((key, a, b));
                }
            }
        }
        pairs.sort_unstable();
        let mut taken = vec![false; self.units.len()];
        let mut n = 0;
        for (_, a, b) in pairs {
            if !taken[a as usize] && !taken[b as usize] {
                taken[a as usize] = true;
                taken[b as usize] = true;
                self.merge(a, b);
                n += 1;
            }
        }
        n
    }

    /// Each unit's behaviour: sorted (direction, peer, protocol, port) codes.
    /// A backend reached through a service by name also gets the inbound
    /// side, so workloads behind different services do not look alike.
    fn features(&self, convs: &[(ConvKey, Evidence)]) -> Vec<Vec<u64>> {
        let code = |dir: u64, peer: UnitId, proto: Proto, port: u16| {
            dir << 62 | u64::from(peer) << 24 | (proto as u64) << 16 | u64::from(port)
        };
        let mut f: Vec<Vec<u64>> = vec![Vec::new(); self.units.len()];
        for (k, _) in convs {
            let (c, p, port) = self.place(k);
            f[c as usize].push(code(0, p, k.proto, port));
            f[p as usize].push(code(1, c, k.proto, port));
            let backend = self.of(k.dst);
            if backend != p {
                f[backend as usize].push(code(2, c, k.proto, port));
            }
        }
        for v in &mut f {
            v.sort_unstable();
            v.dedup();
        }
        f
    }

    fn merge(&mut self, a: UnitId, b: UnitId) {
        let (a, b) = (a.min(b), a.max(b));
        let moved = std::mem::take(&mut self.units[b as usize].entities);
        let prefixes = std::mem::take(&mut self.units[b as usize].prefixes);
        self.units[b as usize].alive = false;
        for &e in &moved {
            self.of_entity[e as usize] = a;
        }
        for &p in &prefixes {
            self.of_ext.insert(p, a);
        }
        let ua = &mut self.units[a as usize];
        ua.entities.extend(moved);
        ua.entities.sort_unstable();
        ua.prefixes.extend(prefixes);
        ua.prefixes.sort_unstable();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::{Aggregator, finish};
    use crate::book::tests::{flow, shop};
    use crate::exclude::Exclusions;

    fn convs(book: &Book<'_>, flows: &[(&str, &str, u16)]) -> Vec<(ConvKey, Evidence)> {
        let ex = Exclusions::default();
        let masks = ex.masks(book);
        let agg = Aggregator::new(book, &ex, &masks);
        let mut acc = agg.new_acc();
        for (s, d, p) in flows {
            agg.fold(&mut acc, flow(s, d, *p));
        }
        finish(vec![acc], 1).convs
    }

    fn describe(book: &Book<'_>, u: &Units<'_>, e: &Edges) -> Vec<String> {
        let name = |id: UnitId| {
            let un = &u.units[id as usize];
            let names: Vec<String> = un
                .entities
                .iter()
                .map(|&e| {
                    let en = &book.entities[e as usize];
                    match en.kind {
                        EntityKind::Service => format!("svc:{}", en.name),
                        _ => en.name.to_string(),
                    }
                })
                .chain(un.prefixes.iter().map(|p| p.prefix().unwrap().to_string()))
                .collect();
            let kind = match un.kind {
                UnitKind::Service(_) => "Service".to_string(),
                k => format!("{k:?}"),
            };
            format!("{kind}[{}]", names.join(","))
        };
        e.iter()
            .map(|((c, p, proto), ports)| {
                let ports: Vec<String> = ports.keys().map(|p| p.to_string()).collect();
                format!("{} -> {} {proto}/{}", name(*c), name(*p), ports.join(","))
            })
            .collect()
    }

    const FLOWS: &[(&str, &str, u16)] = &[
        ("10.244.1.10", "10.96.0.20", 80),       // frontend -> service cart
        ("10.244.1.20", "10.244.1.30", 6379),    // cart -> redis
        ("198.51.100.7", "192.168.1.10", 30080), // internet -> node port of frontend
        ("10.244.1.10", "192.168.1.10", 9100),   // frontend -> host-network agent
    ];

    #[test]
    fn granularities_place_conversations() {
        let inv = shop();
        let book = Book::new(&inv);
        let c = convs(&book, FLOWS);
        let placed = |g| {
            let u = Units::new(&book, g, &c);
            describe(&book, &u, &u.edges(&c))
        };
        assert_eq!(
            placed(Granularity::Fine),
            [
                "Workloads[cart] -> Workloads[redis] tcp/6379",
                "Workloads[frontend] -> Workloads[agent] tcp/9100",
                "Workloads[frontend] -> Service[svc:cart] tcp/80",
                "External[198.51.100.0/24] -> Service[svc:frontend] tcp/80",
            ]
        );
        assert_eq!(
            placed(Granularity::Coarse),
            [
                "Workloads[cart,svc:cart] -> Workloads[redis] tcp/6379",
                "Workloads[frontend,svc:frontend] -> Workloads[agent] tcp/9100",
                "Workloads[frontend,svc:frontend] -> Workloads[cart,svc:cart] tcp/8080",
                "External[198.51.100.0/24] -> Service[svc:frontend] tcp/80",
            ]
        );
        let shop = "Namespace[cart,frontend,redis,svc:cart,svc:frontend]";
        assert_eq!(
            placed(Granularity::Namespace),
            [
                format!("{shop} -> Namespace[agent] tcp/9100"),
                format!("{shop} -> {shop} tcp/6379,8080"),
                "External[198.51.100.0/24] -> Service[svc:frontend] tcp/80".into(),
            ]
        );
        assert_eq!(
            placed(Granularity::Cluster),
            [
                "Cluster[agent,cart,frontend,redis,svc:cart,svc:frontend,worker-1] -> \
                 Cluster[agent,cart,frontend,redis,svc:cart,svc:frontend,worker-1] tcp/6379,8080,9100",
                "External[198.51.100.0/24] -> Service[svc:frontend] tcp/80",
            ]
        );
    }

    #[test]
    fn identical_behaviour_merges_and_invents_nothing() {
        let inv = shop();
        let book = Book::new(&inv);
        let c = convs(
            &book,
            &[
                ("198.51.100.7", "192.168.1.10", 30080),
                ("198.51.101.7", "192.168.1.10", 30080),
                ("2001:db8::1", "192.168.1.10", 30080),
                ("203.0.113.9", "192.168.1.10", 30080),
                ("203.0.113.9", "10.244.1.30", 6379),
                ("10.244.1.20", "192.168.1.10", 9100),
                ("10.244.1.10", "192.168.1.10", 9100),
            ],
        );
        let mut u = Units::new(&book, Granularity::Fine, &c);
        assert_eq!(u.merge_alike(&c, 1.0), 3);
        assert_eq!(
            describe(&book, &u, &u.edges(&c)),
            [
                "Workloads[cart,frontend] -> Workloads[agent] tcp/9100",
                "External[198.51.100.0/24,198.51.101.0/24,2001:db8::/64] -> Service[svc:frontend] tcp/80",
                "External[203.0.113.0/24] -> Workloads[redis] tcp/6379",
                "External[203.0.113.0/24] -> Service[svc:frontend] tcp/80",
            ]
        );
    }

    #[test]
    fn similar_behaviour_merges_above_the_threshold_only() {
        let inv = shop();
        let book = Book::new(&inv);
        // cart calls four ports of the node (9100 is the host-network agent's),
        // frontend three of them (J = 0.75).
        let mut f: Vec<(&str, &str, u16)> = Vec::new();
        for p in [9100, 9101, 9102, 9103] {
            f.push(("10.244.1.20", "192.168.1.10", p));
            if p != 9103 {
                f.push(("10.244.1.10", "192.168.1.10", p));
            }
        }
        let c = convs(&book, &f);
        let mut u = Units::new(&book, Granularity::Coarse, &c);
        assert_eq!(u.merge_alike(&c, 0.8), 0);
        assert_eq!(u.merge_alike(&c, 0.75), 1);
        assert_eq!(
            describe(&book, &u, &u.edges(&c)),
            [
                "Workloads[cart,frontend,svc:cart,svc:frontend] -> Workloads[agent] tcp/9100",
                "Workloads[cart,frontend,svc:cart,svc:frontend] -> Nodes[worker-1] tcp/9101,9102,9103",
            ]
        );
        // Namespace units never merge.
        let mut u = Units::new(&book, Granularity::Namespace, &c);
        assert_eq!(u.merge_alike(&c, 0.5), 0);
    }
}
