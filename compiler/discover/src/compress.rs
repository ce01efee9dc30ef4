//! From edges to policy atoms: port generalization, hierarchical
//! compression and redundant-policy removal.
//!
//! An *atom* allows one consumer unit to reach one provider unit on one
//! protocol and one port range. Compression (CSW's "all or almost all"):
//! when at least [`COMPRESS_SHARE`] of the workloads of a namespace (and at
//! least two) have the same atom towards the same peer, the namespace takes
//! their place; likewise namespaces of a cluster for all its pods. Then an
//! atom covered by a broader one (a namespace or cluster side, a wider port
//! range, the intra-cluster allow) is removed and its evidence moves there.

use std::collections::{BTreeMap, BTreeSet};

use ringfence_inventory::model::Proto;
use ringfence_schema::net::PortRange;

use crate::Granularity;
use crate::aggregate::Evidence;
use crate::book::{Book, EntityKind};
use crate::group::{Edges, UnitId, UnitKind, Units};
use crate::ports::{PortGeneralization, generalize};

/// The share of children that must have an atom for their parent to take
/// it over: 9 in 10 ("all or almost all").
pub const COMPRESS_SHARE: (usize, usize) = (9, 10);

/// One allowed (consumer, provider, protocol, port range).
#[derive(Clone, Debug)]
pub(crate) struct Atom {
    pub(crate) consumer: UnitId,
    pub(crate) provider: UnitId,
    pub(crate) proto: Proto,
    /// `None`: every port (icmp, or the intra-cluster allow).
    pub(crate) ports: Option<PortRange>,
    pub(crate) ev: Evidence,
    /// How many observed ports this stands for (more than one: generalized).
    pub(crate) folded: usize,
    /// How it was made, for its comment.
    pub(crate) notes: Vec<String>,
}

impl Atom {
    fn key(&self) -> (UnitId, UnitId, Proto, Option<PortRange>) {
        (self.consumer, self.provider, self.proto, self.ports)
    }
}

/// The evidence of all ports of an edge together.
fn sum(ports: &BTreeMap<u16, Evidence>) -> Evidence {
    let mut it = ports.values();
    let mut ev = it.next().expect("an edge has a port").clone();
    for e in it {
        ev.merge(e);
    }
    ev
}

/// Atoms of the edges, ports generalized. At `cluster` granularity, the
/// traffic inside a cluster becomes one allow of everything.
pub(crate) fn atoms(units: &Units<'_>, edges: &Edges, level: PortGeneralization) -> Vec<Atom> {
    let mut out = Vec::new();
    let mut intra: BTreeMap<UnitId, Atom> = BTreeMap::new();
    for ((c, p, proto), ports) in edges {
        if c == p && units.units[*c as usize].kind == UnitKind::Cluster {
            let ev = sum(ports);
            match intra.get_mut(c) {
                Some(a) => {
                    a.ev.merge(&ev);
                    a.folded += ports.len();
                }
                None => {
                    intra.insert(
                        *c,
                        Atom {
                            consumer: *c,
                            provider: *p,
                            proto: Proto::Any,
                            ports: None,
                            ev,
                            folded: ports.len(),
                            notes: vec![
                                "everything inside the cluster (granularity cluster)".into(),
                            ],
                        },
                    );
                }
            }
            continue;
        }
        if !proto.has_ports() {
            out.push(Atom {
                consumer: *c,
                provider: *p,
                proto: *proto,
                ports: None,
                ev: sum(ports),
                folded: 1,
                notes: Vec::new(),
            });
            continue;
        }
        for (range, ev, n) in generalize(ports, level) {
            out.push(Atom {
                consumer: *c,
                provider: *p,
                proto: *proto,
                ports: Some(range),
                ev,
                folded: n,
                notes: Vec::new(),
            });
        }
    }
    out.extend(intra.into_values());
    out
}

/// Which side of atoms compression replaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Consumer,
    Provider,
}

/// Where children are counted: their workloads per namespace, their
/// namespaces per cluster.
struct Family<'u, 'a> {
    units: &'u mut Units<'a>,
    book: &'u Book<'a>,
    /// Workload units per (cluster, namespace).
    ns_children: BTreeMap<(usize, &'a str), usize>,
    /// Namespaces with workloads per cluster.
    cluster_children: BTreeMap<usize, usize>,
    /// (cluster, namespace) pairs that have workloads.
    ns_with_pods: BTreeSet<(usize, &'a str)>,
    ns_unit: BTreeMap<(usize, &'a str), UnitId>,
    cluster_unit: BTreeMap<usize, UnitId>,
}

impl<'a> Family<'_, 'a> {
    /// The parent of a unit at this level: the namespace of a workload
    /// unit, the cluster of a namespace unit.
    fn parent(&self, u: UnitId, to_cluster: bool) -> Option<(usize, Option<&'a str>)> {
        let un = &self.units.units[u as usize];
        match (un.kind, to_cluster) {
            (UnitKind::Workloads, false) => Some((un.cluster?, Some(un.namespace?))),
            // The only workload of its namespace speaks for the namespace.
            (UnitKind::Workloads, true)
                if self.ns_children.get(&(un.cluster?, un.namespace?)) == Some(&1) =>
            {
                Some((un.cluster?, None))
            }
            (UnitKind::Namespace, true)
                if self.ns_with_pods.contains(&(un.cluster?, un.namespace?)) =>
            {
                Some((un.cluster?, None))
            }
            _ => None,
        }
    }

    fn children(&self, parent: (usize, Option<&'a str>)) -> usize {
        match parent {
            (c, Some(ns)) => self.ns_children.get(&(c, ns)).copied().unwrap_or(0),
            (c, None) => self.cluster_children.get(&c).copied().unwrap_or(0),
        }
    }

    fn parent_unit(&mut self, parent: (usize, Option<&'a str>)) -> UnitId {
        let book = self.book;
        let pods_of = |c: usize, ns: Option<&str>| {
            book.entities
                .iter()
                .enumerate()
                .filter(|(_, e)| {
                    e.kind == EntityKind::Workload
                        && e.cluster == c
                        && (ns.is_none() || e.namespace == ns)
                })
                .map(|(i, _)| i as u32)
                .collect::<Vec<_>>()
        };
        match parent {
            (c, Some(ns)) => {
                if let Some(&u) = self.ns_unit.get(&(c, ns)) {
                    return u;
                }
                let u = self
                    .units
                    .add(UnitKind::Namespace, c, Some(ns), pods_of(c, Some(ns)));
                self.ns_unit.insert((c, ns), u);
                u
            }
            (c, None) => {
                if let Some(&u) = self.cluster_unit.get(&c) {
                    return u;
                }
                let u = self
                    .units
                    .add(UnitKind::ClusterPods, c, None, pods_of(c, None));
                self.cluster_unit.insert(c, u);
                u
            }
        }
    }
}

/// Compress atoms (consumer side, then provider side; namespaces, then
/// clusters). Nothing to do at `cluster` granularity.
pub(crate) fn compress<'a>(atoms: Vec<Atom>, units: &mut Units<'a>, book: &Book<'a>) -> Vec<Atom> {
    if units.granularity == Granularity::Cluster {
        return atoms;
    }
    let mut ns_children: BTreeMap<(usize, &'a str), usize> = BTreeMap::new();
    let mut ns_unit = BTreeMap::new();
    for (id, u) in units.units.iter().enumerate() {
        match (u.kind, u.cluster, u.namespace) {
            (UnitKind::Workloads, Some(c), Some(ns)) if u.alive => {
                *ns_children.entry((c, ns)).or_default() += 1
            }
            (UnitKind::Namespace, Some(c), Some(ns)) => {
                ns_unit.insert((c, ns), id as UnitId);
            }
            _ => {}
        }
    }
    let mut cluster_children: BTreeMap<usize, usize> = BTreeMap::new();
    let mut seen: Vec<(usize, &str)> = book
        .entities
        .iter()
        .filter(|e| e.kind == EntityKind::Workload)
        .filter_map(|e| Some((e.cluster, e.namespace?)))
        .collect();
    seen.sort_unstable();
    seen.dedup();
    for (c, _) in &seen {
        *cluster_children.entry(*c).or_default() += 1;
    }
    let mut fam = Family {
        units,
        book,
        ns_children,
        cluster_children,
        ns_with_pods: seen.into_iter().collect(),
        ns_unit,
        cluster_unit: BTreeMap::new(),
    };
    let mut atoms = atoms;
    for side in [Side::Consumer, Side::Provider] {
        for to_cluster in [false, true] {
            atoms = compress_level(atoms, side, to_cluster, &mut fam);
        }
    }
    atoms
}

fn compress_level<'a>(
    atoms: Vec<Atom>,
    side: Side,
    to_cluster: bool,
    fam: &mut Family<'_, 'a>,
) -> Vec<Atom> {
    let this = |a: &Atom| match side {
        Side::Consumer => a.consumer,
        Side::Provider => a.provider,
    };
    // Atoms alike but for this side, grouped by the parent of this side.
    type Group<'a> = BTreeMap<(usize, Option<&'a str>), Vec<usize>>;
    let mut groups: BTreeMap<(UnitId, Proto, Option<PortRange>), Group<'a>> = BTreeMap::new();
    for (i, a) in atoms.iter().enumerate() {
        let other = match side {
            Side::Consumer => a.provider,
            Side::Provider => a.consumer,
        };
        if let Some((c, ns)) = fam.parent(this(a), to_cluster) {
            groups
                .entry((other, a.proto, a.ports))
                .or_default()
                .entry((c, ns))
                .or_default()
                .push(i);
        }
    }
    let mut replaced = vec![false; atoms.len()];
    let mut added = Vec::new();
    for by_parent in groups.values() {
        for (&(c, ns), idx) in by_parent {
            let parent = (c, ns);
            let (had, of) = (idx.len(), fam.children(parent));
            if of < 2 || had < 2 || had * COMPRESS_SHARE.1 < of * COMPRESS_SHARE.0 {
                continue;
            }
            let unit = fam.parent_unit(parent);
            let mut a = atoms[idx[0]].clone();
            for &i in &idx[1..] {
                a.ev.merge(&atoms[i].ev);
                a.folded = a.folded.max(atoms[i].folded);
                replaced[i] = true;
            }
            replaced[idx[0]] = true;
            let what = match ns {
                Some(ns) => format!("workloads of namespace {ns}"),
                None => "namespaces of the cluster".into(),
            };
            a.notes = vec![format!(
                "compressed: {had} of {of} {what} had this {}",
                if side == Side::Consumer {
                    "egress"
                } else {
                    "ingress"
                }
            )];
            match side {
                Side::Consumer => a.consumer = unit,
                Side::Provider => a.provider = unit,
            }
            added.push(a);
        }
    }
    atoms
        .into_iter()
        .zip(replaced)
        .filter(|(_, r)| !r)
        .map(|(a, _)| a)
        .chain(added)
        .collect()
}

/// How broad a unit is, for the order of redundancy removal.
fn breadth(units: &Units<'_>, u: UnitId) -> u32 {
    match units.units[u as usize].kind {
        UnitKind::Cluster => 4,
        UnitKind::ClusterPods => 3,
        UnitKind::Namespace => 2,
        _ => 1,
    }
}

/// Whether every workload of `small` is in `big`.
fn contains(units: &Units<'_>, big: UnitId, small: UnitId) -> bool {
    if big == small {
        return true;
    }
    let (b, s) = (&units.units[big as usize], &units.units[small as usize]);
    if b.cluster.is_none() || b.cluster != s.cluster {
        return false;
    }
    match b.kind {
        UnitKind::Cluster => s.kind != UnitKind::External,
        UnitKind::ClusterPods => matches!(s.kind, UnitKind::Workloads | UnitKind::Namespace),
        UnitKind::Namespace => s.kind == UnitKind::Workloads && s.namespace == b.namespace,
        _ => false,
    }
}

fn covers(units: &Units<'_>, b: &Atom, a: &Atom) -> bool {
    contains(units, b.consumer, a.consumer)
        && contains(units, b.provider, a.provider)
        && (b.proto == Proto::Any || b.proto == a.proto)
        && match (b.ports, a.ports) {
            (None, _) => true,
            (Some(r), Some(s)) => r.start <= s.start && s.end <= r.end,
            (Some(_), None) => false,
        }
}

/// Remove atoms covered by broader ones, moving their evidence there.
/// Returns the atoms left, sorted, and how many were removed.
///
/// Broadest first, so a covering atom is kept before what it covers. Only
/// an atom with a broad side (namespace, cluster) can cover another unit's
/// atom; an atom between plain units covers only atoms between the same
/// units (with a wider port range): those are looked up by their units.
pub(crate) fn remove_redundant(atoms: Vec<Atom>, units: &Units<'_>) -> (Vec<Atom>, usize) {
    let width = |a: &Atom| {
        a.ports
            .map_or(u32::from(u16::MAX) + 1, |r| u32::from(r.end - r.start))
    };
    let sides = |a: &Atom| breadth(units, a.consumer) + breadth(units, a.provider);
    let mut atoms = atoms;
    atoms.sort_by(|a, b| {
        sides(b)
            .cmp(&sides(a))
            .then(width(b).cmp(&width(a)))
            .then(a.key().cmp(&b.key()))
    });
    let mut kept: Vec<Atom> = Vec::with_capacity(atoms.len());
    let mut same: BTreeMap<(UnitId, UnitId, Proto, Option<PortRange>), usize> = BTreeMap::new();
    let mut broad_sided: Vec<usize> = Vec::new();
    let mut wide: BTreeMap<(UnitId, UnitId, Proto), Vec<usize>> = BTreeMap::new();
    let mut removed = 0;
    for a in atoms {
        let covering = broad_sided
            .iter()
            .chain(
                wide.get(&(a.consumer, a.provider, a.proto))
                    .into_iter()
                    .flatten(),
            )
            .find(|&&i| covers(units, &kept[i], &a))
            .copied();
        if let Some(i) = covering {
            kept[i].ev.merge(&a.ev);
            kept[i].folded = kept[i].folded.max(a.folded);
            removed += 1;
            continue;
        }
        if let Some(&i) = same.get(&a.key()) {
            kept[i].ev.merge(&a.ev);
            continue;
        }
        let i = kept.len();
        same.insert(a.key(), i);
        if sides(&a) > 2 {
            broad_sided.push(i);
        } else if width(&a) > 0 {
            wide.entry((a.consumer, a.provider, a.proto))
                .or_default()
                .push(i);
        }
        kept.push(a);
    }
    kept.sort_by_key(Atom::key);
    (kept, removed)
}

#[cfg(test)]
mod tests {
    use ringfence_inventory::model::{Cluster, Inventory};

    use super::*;
    use crate::aggregate::tests::conversations;
    use crate::book::tests::{flow, node, pod, service};
    use crate::exclude::Exclusions;

    /// Namespaces n0..n9 with two workloads each (10.244.N.1, .2), coredns
    /// in kube-system (10.244.20.1), prometheus in mon (10.244.21.1).
    fn inventory() -> Inventory {
        let mut pods = Vec::new();
        for n in 0..10 {
            for w in 1..=2 {
                let name = format!("w{w}");
                pods.push(pod(
                    &format!("n{n}"),
                    &format!("{name}-0"),
                    Some(("StatefulSet", &name)),
                    &format!("10.244.{n}.{w}"),
                    &[("app", &name)],
                ));
            }
        }
        pods.push(pod(
            "kube-system",
            "coredns-1",
            Some(("Deployment", "coredns")),
            "10.244.20.1",
            &[("k8s-app", "kube-dns")],
        ));
        pods.push(pod(
            "mon",
            "prometheus-0",
            Some(("StatefulSet", "prometheus")),
            "10.244.21.1",
            &[("app", "prometheus")],
        ));
        pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Inventory {
            clusters: vec![Cluster {
                name: "prod".into(),
                source: "prod.json".into(),
                nodes: vec![node("worker-1", "192.168.1.10", "10.244.0.0/16")],
                namespaces: vec![],
                pods,
                services: vec![service(
                    "kube-system",
                    "kube-dns",
                    "10.96.0.10",
                    &[("k8s-app", "kube-dns")],
                    &[(53, 53, None)],
                )],
                ingress: vec![],
            }],
        }
    }

    fn run(flows: &[(String, &str, u16)]) -> Vec<String> {
        let inv = inventory();
        let flows = flows.iter().map(|(s, d, p)| flow(s, d, *p)).collect();
        let convs = conversations(&inv, flows, &Exclusions::default(), 1, 1).convs;
        let book = Book::new(&inv);
        let mut units = Units::new(&book, Granularity::Coarse, &convs);
        let edges = units.edges(&convs);
        let a = atoms(&units, &edges, PortGeneralization::Off);
        let a = compress(a, &mut units, &book);
        let (a, removed) = remove_redundant(a, &units);
        let name = |u: UnitId| {
            let un = &units.units[u as usize];
            match un.kind {
                UnitKind::Namespace => format!("ns:{}", un.namespace.unwrap()),
                UnitKind::ClusterPods => "all-pods".into(),
                _ => format!(
                    "{}/{}",
                    un.namespace.unwrap_or("-"),
                    book.entities[un.entities[0] as usize].name
                ),
            }
        };
        let mut out: Vec<String> = a
            .iter()
            .map(|a| {
                format!(
                    "{} -> {} {}/{} [{} flows] {}",
                    name(a.consumer),
                    name(a.provider),
                    a.proto,
                    a.ports.map(|r| r.to_string()).unwrap_or_default(),
                    a.ev.flows,
                    a.notes.join("; ")
                )
            })
            .collect();
        out.push(format!("removed {removed}"));
        out
    }

    #[test]
    fn almost_all_workloads_of_a_namespace_compress_to_it() {
        // In n0, w1 and w2 call DNS; in n1 only w1 does (1 of 2: no).
        let flows = vec![
            ("10.244.0.1".to_string(), "10.96.0.10", 53),
            ("10.244.0.2".to_string(), "10.96.0.10", 53),
            ("10.244.1.1".to_string(), "10.96.0.10", 53),
        ];
        assert_eq!(
            run(&flows),
            [
                "n1/w1 -> kube-system/coredns tcp/53 [1 flows] ",
                "ns:n0 -> kube-system/coredns tcp/53 [2 flows] compressed: 2 of 2 workloads of namespace n0 had this egress",
                "removed 0",
            ]
        );
    }

    #[test]
    fn almost_all_namespaces_compress_to_the_cluster_and_cover_the_rest() {
        // Every workload calls DNS, except w2 of n9; coredns calls itself;
        // prometheus scrapes both workloads of n3 (provider side).
        let mut flows = Vec::new();
        for n in 0..10 {
            for w in 1..=2 {
                if (n, w) != (9, 2) {
                    flows.push((format!("10.244.{n}.{w}"), "10.96.0.10", 53));
                }
            }
        }
        flows.push(("10.244.20.1".to_string(), "10.96.0.10", 53));
        flows.push(("10.244.21.1".to_string(), "10.96.0.10", 53));
        flows.push(("10.244.21.1".to_string(), "10.244.3.1", 9090));
        flows.push(("10.244.21.1".to_string(), "10.244.3.2", 9090));
        assert_eq!(
            run(&flows),
            [
                "mon/prometheus -> ns:n3 tcp/9090 [2 flows] compressed: 2 of 2 workloads of namespace n3 had this ingress",
                "all-pods -> kube-system/coredns tcp/53 [21 flows] compressed: 11 of 12 namespaces of the cluster had this egress",
                "removed 1",
            ]
        );
    }
}
