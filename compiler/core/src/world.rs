//! The workload table: every pod, service and node of every cluster and every
//! declared external, with the attributes queries test, plus the indexes that
//! make label, namespace and service-selector lookups cheap.
//!
//! Workloads are numbered cluster by cluster (nodes, then pods, then
//! services, each in inventory order), externals last. Every later stage
//! refers to workloads by that number.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;
use rayon::prelude::*;
use ringfence_intent::model::{ExternalId, Intent, Os, WorkloadKind};
use ringfence_inventory::model::{Inventory, Labels, Pod, Service};
use ringfence_schema::ir::{EndpointKind, ProtoPort};

use crate::bits::Bits;
use crate::idx::{ClusterIdx, WorkloadIdx, WorkloadRange};
use crate::interval::Addrs;

/// Where a workload comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Src {
    /// `inventory.clusters[c].nodes[i]`.
    Node(ClusterIdx, u32),
    /// `inventory.clusters[c].pods[i]`.
    Pod(ClusterIdx, u32),
    /// `inventory.clusters[c].services[i]`.
    Service(ClusterIdx, u32),
    /// `intent.externals[i]`.
    External(ExternalId),
}

/// One workload and the attributes queries see.
#[derive(Clone, Debug)]
pub(crate) struct Wl<'a> {
    pub(crate) kind: WorkloadKind,
    pub(crate) src: Src,
    pub(crate) cluster: Option<ClusterIdx>,
    pub(crate) namespace: Option<&'a str>,
    pub(crate) name: &'a str,
    pub(crate) labels: Option<&'a Labels>,
    /// Pods: the labels of their namespace (matched as `ns:KEY`).
    pub(crate) ns_labels: Option<&'a Labels>,
    /// Pods: their node; nodes: themselves.
    pub(crate) node: Option<WorkloadIdx>,
    /// Pods: `spec.nodeName`; nodes: their name.
    pub(crate) node_name: Option<&'a str>,
    pub(crate) os: Option<Os>,
    /// Pods: IPs; services: cluster IPs and load-balancer IPs; nodes: addresses.
    pub(crate) addrs: Vec<IpAddr>,
    /// Externals: their prefixes, minus every address the clusters own.
    pub(crate) nets: Cow<'a, [IpNet]>,
    pub(crate) cvss: f64,
}

/// The workloads of one cluster.
#[derive(Clone, Debug)]
pub(crate) struct ClusterRange {
    pub(crate) nodes: WorkloadRange,
    pub(crate) pods: WorkloadRange,
    pub(crate) services: WorkloadRange,
}

impl ClusterRange {
    /// All its workloads: nodes, pods and services.
    pub(crate) fn all(&self) -> WorkloadRange {
        WorkloadRange {
            start: self.nodes.start,
            end: self.services.end,
        }
    }
}

/// Each cluster's [`World::pod_spaces`] entry: its nodes' pod ranges, if
/// they overlap no other cluster's and hold the addresses of all its pods
/// but host-network ones, and of nothing else.
fn pod_spaces(inv: &Inventory, w: &[Wl<'_>], clusters: &[ClusterRange]) -> Vec<Option<Addrs>> {
    let ranges: Vec<Addrs> = inv
        .clusters
        .iter()
        .map(|c| Addrs::from_nets(c.nodes.iter().flat_map(|n| &n.pod_cidrs)))
        .collect();
    let fits = |ci: usize, own: &Addrs| {
        let pods = clusters[ci].pods;
        !own.is_empty()
            && !(ranges.iter().enumerate()).any(|(o, r)| o != ci && r.intersects(own))
            && w.iter().enumerate().all(|(i, wl)| {
                let pod_here = pods.contains(WorkloadIdx::new(i))
                    && match wl.src {
                        Src::Pod(k, j) => !inv.clusters[k.index()].pods[j as usize].host_network,
                        _ => false,
                    };
                wl.addrs.iter().all(|&a| own.contains(a) == pod_here)
            })
    };
    (ranges.iter().enumerate())
        .map(|(ci, own)| fits(ci, own).then(|| own.clone()))
        .collect()
}

/// Workloads by label: key → value → workloads.
type LabelIndex<'a> = HashMap<&'a str, HashMap<&'a str, Vec<WorkloadIdx>>>;

/// File workload `i` under each of its `labels`.
fn index_labels<'a>(index: &mut LabelIndex<'a>, labels: Option<&'a Labels>, i: WorkloadIdx) {
    for (k, v) in labels.into_iter().flatten() {
        let by_value = index.entry(k.as_str()).or_default();
        by_value.entry(v.as_str()).or_default().push(i);
    }
}

/// Every workload, and lookups over them.
pub(crate) struct World<'a> {
    pub(crate) intent: &'a Intent,
    pub(crate) inv: &'a Inventory,
    pub(crate) w: Vec<Wl<'a>>,
    pub(crate) clusters: Vec<ClusterRange>,
    /// Per cluster, its pod space: its nodes' pod ranges, when they hold
    /// every address of its pods (but host-network ones) and no other
    /// workload's. A set holding every pod of the cluster holds these ranges
    /// instead, and pods coming and going change nothing in it.
    pub(crate) pod_spaces: Vec<Option<Addrs>>,
    pub(crate) externals: WorkloadRange,
    /// For each service (by its position among its cluster's services,
    /// flattened over clusters via [`World::svc_slot`]): its backing pods.
    backing: Vec<Vec<WorkloadIdx>>,
    /// For each pod workload: the services it backs.
    services_of: HashMap<WorkloadIdx, Vec<WorkloadIdx>>,
    /// label key → value → workloads (ascending).
    label_index: LabelIndex<'a>,
    /// `ns:KEY` labels of pods: key → value → workloads.
    ns_label_index: LabelIndex<'a>,
    /// namespace → workloads.
    ns_index: HashMap<&'a str, Vec<WorkloadIdx>>,
    /// Which workloads can carry an endpoint (see [`World::endpoint_kind`]).
    pub(crate) capable: Bits<WorkloadIdx>,
}

impl<'a> World<'a> {
    /// Build the table and its indexes.
    pub(crate) fn new(intent: &'a Intent, inv: &'a Inventory) -> Self {
        // Sized once: regrowing would copy every pod's row several times.
        let rows: usize = inv
            .clusters
            .iter()
            .map(|c| c.nodes.len() + c.pods.len() + c.services.len())
            .sum();
        let mut w: Vec<Wl<'a>> = Vec::with_capacity(rows + intent.externals.len());
        let mut clusters = Vec::new();
        for (ci, c) in inv.clusters.iter().enumerate() {
            let ci = ClusterIdx::new(ci);
            let node_base = w.len();
            for (i, n) in c.nodes.iter().enumerate() {
                w.push(Wl {
                    kind: WorkloadKind::Node,
                    src: Src::Node(ci, i as u32),
                    cluster: Some(ci),
                    namespace: None,
                    name: &n.name,
                    labels: Some(&n.labels),
                    ns_labels: None,
                    node: Some(WorkloadIdx::new(node_base + i)),
                    node_name: Some(&n.name),
                    os: Some(n.os),
                    addrs: n.addresses.clone(),
                    nets: Cow::Borrowed(&[]),
                    cvss: 0.0,
                });
            }
            let nodes = WorkloadRange::new(node_base, w.len());
            let pod_base = w.len();
            // A row per pod, on every core (in order).
            w.par_extend(c.pods.par_iter().enumerate().map(|(i, p)| {
                let node = p.node.as_deref().and_then(|name| {
                    c.nodes
                        .binary_search_by(|n| n.name.as_str().cmp(name))
                        .ok()
                        .map(|k| nodes.nth(k))
                });
                let ns_labels = c
                    .namespaces
                    .binary_search_by(|n| n.name.as_str().cmp(&p.namespace))
                    .ok()
                    .map(|k| &c.namespaces[k].labels);
                Wl {
                    kind: WorkloadKind::Pod,
                    src: Src::Pod(ci, i as u32),
                    cluster: Some(ci),
                    namespace: Some(&p.namespace),
                    name: &p.name,
                    labels: Some(&p.labels),
                    ns_labels,
                    node,
                    node_name: p.node.as_deref(),
                    os: node.map(|k| c.nodes[k.index() - node_base].os),
                    addrs: p.ips.clone(),
                    nets: Cow::Borrowed(&[]),
                    cvss: p.cvss,
                }
            }));
            let pods = WorkloadRange::new(pod_base, w.len());
            let svc_base = w.len();
            for (i, s) in c.services.iter().enumerate() {
                let mut addrs = s.cluster_ips.clone();
                addrs.extend(&s.lb_ingress);
                w.push(Wl {
                    kind: WorkloadKind::Service,
                    src: Src::Service(ci, i as u32),
                    cluster: Some(ci),
                    namespace: Some(&s.namespace),
                    name: &s.name,
                    labels: Some(&s.labels),
                    ns_labels: None,
                    node: None,
                    node_name: None,
                    os: None,
                    addrs,
                    nets: Cow::Borrowed(&[]),
                    cvss: 0.0,
                });
            }
            let services = WorkloadRange::new(svc_base, w.len());
            clusters.push(ClusterRange {
                nodes,
                pods,
                services,
            });
        }
        // Externals name what is outside the clusters: `0.0.0.0/0` means the
        // world minus pod ranges and the addresses of pods, nodes and services.
        let cluster_space = Addrs::from_nets(
            inv.clusters
                .iter()
                .flat_map(|c| c.nodes.iter().flat_map(|n| &n.pod_cidrs)),
        )
        .union(&Addrs::from_ips(w.iter().flat_map(|wl| &wl.addrs)));
        let pod_spaces = pod_spaces(inv, &w, &clusters);
        let ext_base = w.len();
        for (i, e) in intent.externals.iter().enumerate() {
            let own = Addrs::from_nets(&e.nets);
            let outside = own.difference(&cluster_space);
            let nets = if outside == own {
                Cow::Borrowed(e.nets.as_slice())
            } else {
                let v4 = outside.v4_prefixes().into_iter().map(IpNet::V4);
                Cow::Owned(
                    v4.chain(outside.v6_prefixes().into_iter().map(IpNet::V6))
                        .collect(),
                )
            };
            w.push(Wl {
                kind: WorkloadKind::External,
                src: Src::External(ExternalId::new(i)),
                cluster: None,
                namespace: None,
                name: &e.name,
                labels: Some(&e.labels),
                ns_labels: None,
                node: None,
                node_name: None,
                os: None,
                addrs: Vec::new(),
                nets,
                cvss: 0.0,
            });
        }
        let externals = WorkloadRange::new(ext_base, w.len());

        // Own labels on one side, namespaces and their labels on the other.
        let (label_index, (ns_label_index, ns_index)) = rayon::join(
            || {
                let mut label_index = LabelIndex::new();
                for (i, wl) in w.iter().enumerate() {
                    index_labels(&mut label_index, wl.labels, WorkloadIdx::new(i));
                }
                label_index
            },
            || {
                let mut ns_label_index = LabelIndex::new();
                let mut ns_index: HashMap<&str, Vec<WorkloadIdx>> = HashMap::new();
                for (i, wl) in w.iter().enumerate() {
                    let i = WorkloadIdx::new(i);
                    index_labels(&mut ns_label_index, wl.ns_labels, i);
                    if let Some(ns) = wl.namespace {
                        ns_index.entry(ns).or_default().push(i);
                    }
                }
                (ns_label_index, ns_index)
            },
        );

        let mut world = World {
            intent,
            inv,
            w,
            clusters,
            pod_spaces,
            externals,
            backing: Vec::new(),
            services_of: HashMap::new(),
            label_index,
            ns_label_index,
            ns_index,
            capable: Bits::new(0),
        };
        world.index_services();
        world.capable = Bits::from_indexes(
            world.w.len(),
            world.ids().filter(|&i| world.endpoint_kind(i).is_some()),
        );
        world
    }

    fn index_services(&mut self) {
        let mut backing = Vec::new();
        let mut services_of: HashMap<WorkloadIdx, Vec<WorkloadIdx>> = HashMap::new();
        for (ci, c) in self.inv.clusters.iter().enumerate() {
            let range = &self.clusters[ci];
            for (si, s) in c.services.iter().enumerate() {
                // Pods are sorted by namespace: only that slice can match.
                let lo = c.pods.partition_point(|p| p.namespace < s.namespace);
                let hi = c.pods.partition_point(|p| p.namespace <= s.namespace);
                let pods: Vec<WorkloadIdx> = (lo..hi)
                    .filter(|&k| s.selects(&c.pods[k]))
                    .map(|k| range.pods.nth(k))
                    .collect();
                let sw = range.services.nth(si);
                for &p in &pods {
                    services_of.entry(p).or_default().push(sw);
                }
                backing.push(pods);
            }
        }
        self.backing = backing;
        self.services_of = services_of;
    }

    /// Number of workloads.
    pub(crate) fn len(&self) -> usize {
        self.w.len()
    }

    /// Every workload, ascending.
    pub(crate) fn ids(&self) -> impl Iterator<Item = WorkloadIdx> + use<> {
        WorkloadRange::new(0, self.len()).iter()
    }

    /// The workload `i` is.
    #[inline]
    pub(crate) fn wl(&self, i: WorkloadIdx) -> &Wl<'a> {
        &self.w[i.index()]
    }

    /// Position of a service workload in the flattened service tables.
    fn svc_slot(&self, svc: WorkloadIdx) -> usize {
        let mut before = 0;
        for c in &self.clusters {
            if c.services.contains(svc) {
                return before + svc.index() - c.services.start.index();
            }
            before += c.services.len();
        }
        panic!("workload {svc:?} is not a service")
    }

    /// The pods a service workload selects.
    pub(crate) fn backing(&self, svc: WorkloadIdx) -> &[WorkloadIdx] {
        &self.backing[self.svc_slot(svc)]
    }

    /// The services a pod workload backs.
    pub(crate) fn services_of(&self, pod: WorkloadIdx) -> &[WorkloadIdx] {
        self.services_of.get(&pod).map_or(&[], Vec::as_slice)
    }

    /// The inventory pod of a pod workload.
    pub(crate) fn pod(&self, i: WorkloadIdx) -> &'a Pod {
        match self.wl(i).src {
            Src::Pod(c, k) => &self.inv.clusters[c.index()].pods[k as usize],
            _ => panic!("workload {i:?} is not a pod"),
        }
    }

    /// The inventory service of a service workload.
    pub(crate) fn service(&self, i: WorkloadIdx) -> &'a Service {
        match self.wl(i).src {
            Src::Service(c, k) => &self.inv.clusters[c.index()].services[k as usize],
            _ => panic!("workload {i:?} is not a service"),
        }
    }

    /// What endpoint a workload would be on its node, if it can be one:
    /// scheduled pods with addresses on a known node, host-network pods that
    /// declare ports, and nodes.
    pub(crate) fn endpoint_kind(&self, i: WorkloadIdx) -> Option<EndpointKind> {
        let wl = self.wl(i);
        match wl.kind {
            WorkloadKind::Node => Some(EndpointKind::Node),
            WorkloadKind::Pod => {
                wl.node?;
                let pod = self.pod(i);
                if wl.addrs.is_empty() {
                    None
                } else if pod.host_network {
                    (!host_ports(pod).is_empty()).then_some(EndpointKind::HostPod)
                } else {
                    Some(EndpointKind::Pod)
                }
            }
            _ => None,
        }
    }

    /// Workloads whose label `key` has one of `values` (any value if empty).
    /// `ns:KEY` also matches pods whose namespace has the label `KEY`.
    pub(crate) fn label_members(&self, key: &str, values: &[String]) -> Bits<WorkloadIdx> {
        let mut b = Bits::new(self.len());
        let mut add = |by_value: Option<&HashMap<&str, Vec<WorkloadIdx>>>| {
            let Some(by_value) = by_value else { return };
            if values.is_empty() {
                by_value.values().flatten().for_each(|&i| b.set(i));
            } else {
                values
                    .iter()
                    .filter_map(|v| by_value.get(v.as_str()))
                    .flatten()
                    .for_each(|&i| b.set(i));
            }
        };
        add(self.label_index.get(key));
        if let Some(k) = key.strip_prefix("ns:") {
            add(self.ns_label_index.get(k));
        }
        b
    }

    /// Workloads in one of these namespaces.
    pub(crate) fn namespace_members(&self, names: &[String]) -> Bits<WorkloadIdx> {
        let mut b = Bits::new(self.len());
        for n in names {
            if let Some(ws) = self.ns_index.get(n.as_str()) {
                ws.iter().for_each(|&i| b.set(i));
            }
        }
        b
    }
}

/// The ports a host-network pod is told apart by: its container ports with
/// tcp, udp or sctp, sorted and unique.
pub(crate) fn host_ports(pod: &Pod) -> Vec<ProtoPort> {
    let mut v: Vec<ProtoPort> = pod
        .ports
        .iter()
        .filter(|p| p.proto.has_ports())
        .map(|p| ProtoPort {
            proto: p.proto,
            port: p.port,
        })
        .collect();
    v.sort();
    v.dedup();
    v
}
