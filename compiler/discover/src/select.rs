//! Writing a group as an inventory filter: the smallest label set that
//! selects exactly the group's workloads, checked against the whole
//! inventory; else name globs; else names.
//!
//! Addresses are never needed: every pod and node has a name, and pod
//! names in one namespace are unique, so the names fallback is always exact
//! (but only for the pods that exist now: the comment says so).

use std::collections::BTreeSet;

use ringfence_inventory::model::{Inventory, Labels, Pod};
use ringfence_inventory::names::Glob;
use serde::Serialize;

use crate::book::{Book, EntityKind};
use crate::group::Unit;

/// Labels that change with every rollout or name a single pod: never
/// used to select a group.
const VOLATILE: [&str; 11] = [
    "pod-template-hash",
    "controller-revision-hash",
    "pod-template-generation",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
    "job-name",
    "batch.kubernetes.io/job-name",
    "kubernetes.io/hostname",
    "security.ringfence.io/quarantine",
];

/// Label keys people name applications by, most preferred first.
const PREFERRED: [&str; 8] = [
    "app.kubernetes.io/name",
    "app",
    "k8s-app",
    "name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "component",
    "tier",
];

/// Candidates tried in pairs (and a few less in triples).
const PAIR_CANDIDATES: usize = 12;
const TRIPLE_CANDIDATES: usize = 8;

/// A predicate of a discovered filter, in the intent language.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Pred {
    Cluster(String),
    Namespace(String),
    Kind(&'static str),
    /// `label "KEY" "VALUE"…` (any of the values).
    Label(String, Vec<String>),
    /// `name "GLOB"…`.
    Name(Vec<String>),
}

/// How a group was written as a filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Selection {
    /// By labels (plus namespace and kind).
    Labels,
    /// A whole namespace.
    Namespace,
    /// Every object of a kind (all nodes, all pods of a cluster).
    Kind,
    /// A whole cluster.
    Cluster,
    /// By name globs (`cart-*`): no label set selects exactly these workloads.
    NameGlobs,
    /// By pod or node names: neither labels nor globs select exactly these.
    Names,
}

impl Selection {
    /// What the comment above the filter says.
    pub(crate) fn comment(self) -> Option<&'static str> {
        match self {
            Selection::NameGlobs => {
                Some("No label set selects exactly these workloads: selected by name globs.")
            }
            Selection::Names => Some(
                "Neither labels nor name globs select exactly these: selected by the names \
                 of today's pods (new replicas will not match; label them and edit this filter).",
            ),
            _ => None,
        }
    }
}

/// A filter for a group, and a name people would recognise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Selected {
    pub(crate) preds: Vec<Pred>,
    pub(crate) how: Selection,
    pub(crate) base_name: String,
}

impl Selected {
    /// `preds`, after `cluster NAME` when the rest also selects objects
    /// elsewhere.
    fn new(
        mut preds: Vec<Pred>,
        cluster: Option<String>,
        how: Selection,
        base_name: String,
    ) -> Self {
        if let Some(name) = cluster {
            preds.insert(0, Pred::Cluster(name));
        }
        Selected {
            preds,
            how,
            base_name,
        }
    }
}

/// A bit per candidate object.
type Mask = Vec<bool>;

fn and(a: &Mask, b: &Mask) -> Mask {
    a.iter().zip(b).map(|(x, y)| *x && *y).collect()
}

fn rank(key: &str) -> usize {
    PREFERRED
        .iter()
        .position(|k| *k == key)
        .unwrap_or(PREFERRED.len())
}

/// The smallest set of `label KEY VALUES…` predicates whose conjunction
/// over `labels` (the candidates) is exactly `target`.
fn label_search(labels: &[&Labels], target: &Mask) -> Option<Vec<(String, Vec<String>)>> {
    let members: Vec<usize> = (0..labels.len()).filter(|&i| target[i]).collect();
    let first = *members.first()?;
    let mut cands: Vec<(String, Vec<String>, Mask)> = Vec::new();
    for key in labels[first].keys() {
        if VOLATILE.contains(&key.as_str()) || key.starts_with("ns:") {
            continue;
        }
        let values: Option<BTreeSet<&String>> =
            members.iter().map(|&m| labels[m].get(key)).collect();
        let Some(values) = values else {
            continue;
        };
        let mask: Mask = labels
            .iter()
            .map(|l| l.get(key).is_some_and(|v| values.contains(v)))
            .collect();
        cands.push((key.clone(), values.into_iter().cloned().collect(), mask));
    }
    cands.sort_by(|a, b| (a.1.len(), rank(&a.0), &a.0).cmp(&(b.1.len(), rank(&b.0), &b.0)));
    let pick = |idx: &[usize]| {
        Some(
            idx.iter()
                .map(|&i| (cands[i].0.clone(), cands[i].1.clone()))
                .collect(),
        )
    };
    if let Some(i) = (0..cands.len()).find(|&i| cands[i].2 == *target) {
        return pick(&[i]);
    }
    let n2 = cands.len().min(PAIR_CANDIDATES);
    for i in 0..n2 {
        for j in i + 1..n2 {
            if and(&cands[i].2, &cands[j].2) == *target {
                return pick(&[i, j]);
            }
        }
    }
    let n3 = cands.len().min(TRIPLE_CANDIDATES);
    for i in 0..n3 {
        for j in i + 1..n3 {
            let ij = and(&cands[i].2, &cands[j].2);
            if let Some(k) = (j + 1..n3).find(|&k| and(&ij, &cands[k].2) == *target) {
                return pick(&[i, j, k]);
            }
        }
    }
    // All together, then drop what is not needed, least preferred first.
    let all = |keep: &[usize]| {
        keep.iter()
            .fold(vec![true; labels.len()], |m, &i| and(&m, &cands[i].2))
    };
    let mut keep: Vec<usize> = (0..cands.len()).collect();
    if cands.is_empty() || all(&keep) != *target {
        return None;
    }
    for i in (0..cands.len()).rev() {
        let rest: Vec<usize> = keep.iter().copied().filter(|&k| k != i).collect();
        if all(&rest) == *target {
            keep = rest;
        }
    }
    pick(&keep)
}

fn labels_match(labels: &Labels, preds: &[(String, Vec<String>)]) -> bool {
    preds
        .iter()
        .all(|(k, vs)| labels.get(k).is_some_and(|v| vs.contains(v)))
}

/// The range of a cluster's pods (sorted by namespace) in a namespace.
fn ns_range(pods: &[Pod], ns: &str) -> std::ops::Range<usize> {
    let lo = pods.partition_point(|p| p.namespace.as_str() < ns);
    let hi = pods.partition_point(|p| p.namespace.as_str() <= ns);
    lo..hi
}

/// Whether pods of other clusters (in namespace `ns`) match `f`: the
/// filter then needs a `cluster` predicate.
fn elsewhere(inv: &Inventory, cluster: usize, ns: Option<&str>, f: impl Fn(&Pod) -> bool) -> bool {
    inv.clusters.iter().enumerate().any(|(i, c)| {
        i != cluster
            && match ns {
                Some(ns) => c.pods[ns_range(&c.pods, ns)].iter().any(&f),
                None => c.pods.iter().any(&f),
            }
    })
}

/// A name people would recognise for a set of pods: a preferred label's
/// common value, else the workload names.
fn pods_name(pods: &[&Pod], workloads: &[&str]) -> String {
    for key in PREFERRED {
        let vals: BTreeSet<Option<&String>> = pods.iter().map(|p| p.labels.get(key)).collect();
        if let [Some(v)] = vals.into_iter().collect::<Vec<_>>()[..] {
            return v.clone();
        }
    }
    join_names(workloads)
}

pub(crate) fn join_names(names: &[&str]) -> String {
    let mut v: Vec<&str> = names.to_vec();
    v.sort_unstable();
    v.dedup();
    match v.len() {
        0 => "group".into(),
        1..=3 => v.join("-"),
        n => format!("{}-{}-and-{}-more", v[0], v[1], n - 2),
    }
}

/// A filter for a unit of workloads (one namespace of one cluster).
pub(crate) fn workloads(book: &Book<'_>, unit: &Unit<'_>) -> Selected {
    let ci = unit.cluster.expect("workloads are in a cluster");
    let ns = unit.namespace.expect("workloads are in a namespace");
    let c = &book.inv.clusters[ci];
    let range = ns_range(&c.pods, ns);
    let candidates = &c.pods[range.clone()];
    let mut target: Mask = vec![false; candidates.len()];
    let mut names: Vec<&str> = Vec::new();
    let mut globs: Vec<String> = Vec::new();
    for &e in &unit.entities {
        let en = &book.entities[e as usize];
        if en.kind != EntityKind::Workload {
            continue;
        }
        names.push(en.name);
        globs.push(if en.owner_kind == "Pod" {
            en.name.to_string()
        } else {
            format!("{}-*", en.name)
        });
        for &p in &en.pods {
            target[p - range.start] = true;
        }
    }
    let members: Vec<&Pod> = candidates
        .iter()
        .zip(&target)
        .filter(|(_, t)| **t)
        .map(|(p, _)| p)
        .collect();
    let base_name = pods_name(&members, &names);
    let mut preds = vec![Pred::Namespace(ns.to_string())];
    let (how, cluster_needed);
    let labels: Vec<&Labels> = candidates.iter().map(|p| &p.labels).collect();
    if let Some(found) = label_search(&labels, &target) {
        // Services carry labels too: keep them out.
        if c.services
            .iter()
            .any(|s| s.namespace == ns && labels_match(&s.labels, &found))
        {
            preds.push(Pred::Kind("pod"));
        }
        cluster_needed = elsewhere(book.inv, ci, Some(ns), |p| labels_match(&p.labels, &found))
            || (!preds.contains(&Pred::Kind("pod"))
                && book.inv.clusters.iter().enumerate().any(|(i, o)| {
                    i != ci
                        && o.services
                            .iter()
                            .any(|s| s.namespace == ns && labels_match(&s.labels, &found))
                }));
        preds.extend(found.into_iter().map(|(k, v)| Pred::Label(k, v)));
        how = Selection::Labels;
    } else {
        preds.push(Pred::Kind("pod"));
        globs.sort();
        globs.dedup();
        let compiled: Vec<Glob> = globs.iter().map(|g| Glob::new(g)).collect();
        let by_glob = |p: &Pod| compiled.iter().any(|g| g.matches(&p.name));
        let glob_mask: Mask = candidates.iter().map(by_glob).collect();
        if glob_mask == target {
            cluster_needed = elsewhere(book.inv, ci, Some(ns), by_glob);
            preds.push(Pred::Name(globs));
            how = Selection::NameGlobs;
        } else {
            let exact: Vec<String> = members.iter().map(|p| p.name.clone()).collect();
            cluster_needed = elsewhere(book.inv, ci, Some(ns), |p| exact.contains(&p.name));
            preds.push(Pred::Name(exact));
            how = Selection::Names;
        }
    }
    Selected::new(
        preds,
        cluster_needed.then(|| c.name.clone()),
        how,
        base_name,
    )
}

/// A filter for a unit of nodes (one cluster).
pub(crate) fn nodes(book: &Book<'_>, unit: &Unit<'_>) -> Selected {
    let ci = unit.cluster.expect("nodes are in a cluster");
    let c = &book.inv.clusters[ci];
    let mut target: Mask = vec![false; c.nodes.len()];
    for &e in &unit.entities {
        target[book.entities[e as usize].index] = true;
    }
    let others_have_nodes = book
        .inv
        .clusters
        .iter()
        .enumerate()
        .any(|(i, o)| i != ci && !o.nodes.is_empty());
    let mut preds = vec![Pred::Kind("node")];
    let members: Vec<&str> = c
        .nodes
        .iter()
        .zip(&target)
        .filter(|(_, t)| **t)
        .map(|(n, _)| n.name.as_str())
        .collect();
    let (how, base_name, cluster_needed) =
        if target.iter().all(|t| *t) {
            (Selection::Kind, "nodes".to_string(), others_have_nodes)
        } else {
            let labels: Vec<&Labels> = c.nodes.iter().map(|n| &n.labels).collect();
            match label_search(&labels, &target) {
                Some(found) => {
                    let needed = book.inv.clusters.iter().enumerate().any(|(i, o)| {
                        i != ci && o.nodes.iter().any(|n| labels_match(&n.labels, &found))
                    });
                    let name = match &found[..] {
                        [(k, v)] if v.len() == 1 => {
                            let role = k
                                .strip_prefix("node-role.kubernetes.io/")
                                .filter(|r| !r.is_empty());
                            format!("nodes-{}", role.unwrap_or(&v[0]))
                        }
                        _ => format!("nodes-{}", join_names(&members)),
                    };
                    preds.extend(found.into_iter().map(|(k, v)| Pred::Label(k, v)));
                    (Selection::Labels, name, needed)
                }
                None => {
                    let names: Vec<String> = members.iter().map(|n| n.to_string()).collect();
                    let needed =
                        book.inv.clusters.iter().enumerate().any(|(i, o)| {
                            i != ci && o.nodes.iter().any(|n| names.contains(&n.name))
                        });
                    preds.push(Pred::Name(names));
                    (
                        Selection::Names,
                        format!("nodes-{}", join_names(&members)),
                        needed,
                    )
                }
            }
        };
    Selected::new(
        preds,
        cluster_needed.then(|| c.name.clone()),
        how,
        base_name,
    )
}

/// All nodes of a cluster (a node port's entry points).
pub(crate) fn all_nodes(book: &Book<'_>, cluster: usize) -> Selected {
    let mut preds = vec![Pred::Kind("node")];
    if book
        .inv
        .clusters
        .iter()
        .enumerate()
        .any(|(i, o)| i != cluster && !o.nodes.is_empty())
    {
        preds.insert(0, Pred::Cluster(book.inv.clusters[cluster].name.clone()));
    }
    Selected {
        preds,
        how: Selection::Kind,
        base_name: "nodes".into(),
    }
}

/// All pods of a namespace.
pub(crate) fn namespace(book: &Book<'_>, cluster: usize, ns: &str) -> Selected {
    let mut preds = vec![Pred::Namespace(ns.to_string()), Pred::Kind("pod")];
    if elsewhere(book.inv, cluster, Some(ns), |_| true) {
        preds.insert(0, Pred::Cluster(book.inv.clusters[cluster].name.clone()));
    }
    Selected {
        preds,
        how: Selection::Namespace,
        base_name: format!("ns-{ns}"),
    }
}

/// All pods of a cluster.
pub(crate) fn cluster_pods(book: &Book<'_>, cluster: usize) -> Selected {
    let mut preds = vec![Pred::Kind("pod")];
    let name = &book.inv.clusters[cluster].name;
    let base_name = if elsewhere(book.inv, cluster, None, |_| true) {
        preds.insert(0, Pred::Cluster(name.clone()));
        format!("{name}-pods")
    } else {
        "all-pods".into()
    };
    Selected {
        preds,
        how: Selection::Kind,
        base_name,
    }
}

/// Everything in a cluster (pods, services, nodes).
pub(crate) fn cluster(book: &Book<'_>, cluster: usize) -> Selected {
    let name = &book.inv.clusters[cluster].name;
    Selected {
        preds: vec![Pred::Cluster(name.clone())],
        how: Selection::Cluster,
        base_name: format!("cluster-{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::tests::{labels, pod, shop};
    use crate::group::UnitKind;

    fn unit<'a>(book: &Book<'a>, names: &[&str]) -> Unit<'a> {
        let entities: Vec<u32> = names
            .iter()
            .map(|n| {
                book.entities
                    .iter()
                    .position(|e| e.kind == EntityKind::Workload && e.name == *n)
                    .unwrap() as u32
            })
            .collect();
        let en = &book.entities[entities[0] as usize];
        Unit {
            kind: UnitKind::Workloads,
            cluster: Some(en.cluster),
            namespace: en.namespace,
            entities,
            prefixes: vec![],
            alive: true,
        }
    }

    #[test]
    fn label_search_prefers_few_predicates_and_values() {
        let l = [
            labels(&[("app", "cart"), ("tier", "backend"), ("team", "a")]),
            labels(&[("app", "cart"), ("tier", "backend"), ("team", "b")]),
            labels(&[("app", "cart"), ("tier", "batch"), ("team", "a")]),
            labels(&[("app", "web"), ("tier", "backend"), ("team", "a")]),
        ];
        let refs: Vec<&Labels> = l.iter().collect();
        // The first two: app=cart alone matches three; app=cart + tier=backend is exact.
        let found = label_search(&refs, &vec![true, true, false, false]).unwrap();
        assert_eq!(
            found,
            [
                ("app".into(), vec!["cart".into()]),
                ("tier".into(), vec!["backend".into()])
            ]
        );
        // All three carts: one label.
        let found = label_search(&refs, &vec![true, true, true, false]).unwrap();
        assert_eq!(found, [("app".into(), vec!["cart".into()])]);
        // The first and the last: two single-valued labels together.
        let found = label_search(&refs, &vec![true, false, false, true]).unwrap();
        assert_eq!(
            found,
            [
                ("tier".into(), vec!["backend".into()]),
                ("team".into(), vec!["a".into()])
            ]
        );
        // The second and the last cannot be told from the first by labels.
        assert_eq!(label_search(&refs, &vec![false, true, false, true]), None);
    }

    #[test]
    fn workloads_by_labels_globs_and_names() {
        let mut inv = shop();
        // A service labelled like its pods needs `kind "pod"`.
        inv.clusters[0].services[0].labels = labels(&[("app", "cart")]);
        let book = Book::new(&inv);
        let s = workloads(&book, &unit(&book, &["cart"]));
        assert_eq!(
            s.preds,
            [
                Pred::Namespace("shop".into()),
                Pred::Kind("pod"),
                Pred::Label("app".into(), vec!["cart".into()])
            ]
        );
        assert_eq!((s.how, s.base_name.as_str()), (Selection::Labels, "cart"));
        let s = workloads(&book, &unit(&book, &["frontend", "redis"]));
        assert_eq!(
            s.preds,
            [
                Pred::Namespace("shop".into()),
                Pred::Label("app".into(), vec!["frontend".into(), "redis".into()])
            ]
        );
        assert_eq!(s.base_name, "frontend-redis");
        // Unlabelled pods: globs by owner name; bare pods by their name.
        let mut inv = shop();
        for p in &mut inv.clusters[0].pods {
            p.labels.clear();
        }
        inv.clusters[0]
            .pods
            .push(pod("shop", "debug", None, "10.244.1.99", &[]));
        let book = Book::new(&inv);
        let s = workloads(&book, &unit(&book, &["frontend", "debug"]));
        assert_eq!(
            s.preds,
            [
                Pred::Namespace("shop".into()),
                Pred::Kind("pod"),
                Pred::Name(vec!["debug".into(), "frontend-*".into()])
            ]
        );
        assert_eq!(s.how, Selection::NameGlobs);
        // A glob that would take another workload's pods: names.
        let mut inv = shop();
        for p in &mut inv.clusters[0].pods {
            p.labels.clear();
        }
        inv.clusters[0].pods.push(pod(
            "shop",
            "cart-v2-x",
            Some(("Deployment", "cart-v2")),
            "10.244.1.98",
            &[],
        ));
        inv.clusters[0]
            .pods
            .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let book = Book::new(&inv);
        let s = workloads(&book, &unit(&book, &["cart"]));
        assert_eq!(s.preds.last(), Some(&Pred::Name(vec!["cart-7d-a".into()])));
        assert_eq!(s.how, Selection::Names);
        assert!(s.how.comment().unwrap().contains("new replicas"));
    }

    #[test]
    fn a_second_cluster_adds_the_cluster_predicate() {
        let mut inv = shop();
        let mut other = inv.clusters[0].clone();
        other.name = "staging".into();
        inv.clusters.push(other);
        let book = Book::new(&inv);
        let s = workloads(&book, &unit(&book, &["cart"]));
        assert_eq!(s.preds[0], Pred::Cluster("prod".into()));
        let s = cluster_pods(&book, 0);
        assert_eq!(
            (s.preds, s.base_name),
            (
                vec![Pred::Cluster("prod".into()), Pred::Kind("pod")],
                "prod-pods".into()
            )
        );
    }
}
