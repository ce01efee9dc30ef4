//! Live inventories: pods that come and go change membership, not rules.
//!
//! A compile sorts pods into classes (see the crate doc): the rules depend on
//! which classes exist, a pod's addresses only fill them. Given a
//! [`Compiled`] made by [`crate::compile_live`], this module
//!
//! - places a pod in its class without compiling again ([`Compiled::classify`]),
//!   evaluating every scope and filter query on that one pod;
//! - builds a node's IR in the live form ([`Compiled::live_ir`]): its rules for
//!   the classes it has (or had: a node keeps the chains of a class whose
//!   last pod left until the next compile), with set declarations instead of
//!   pod addresses;
//! - keeps every node's [`Membership`] up to date as pods change
//!   ([`LiveState::apply`]), giving for each node the [`Changes`] to send, or
//!   saying that the node needs new rules (the first pod of a class it lacks).
//!   A set's contents are the same on every node that declares it, and so
//!   is an exposure's list of targets (but for which of them a node lists):
//!   both are kept once, and every node's IR is shared (`Arc`) with whoever
//!   renders it; a node keeps only its own endpoints.
//!
//! A pod of a class the compile has not seen, and any change of a node,
//! namespace or service, needs a compile: [`Compiled::classify`] says
//! [`Placed::NewClass`] and the caller compiles again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use ringfence_intent::model::{Intent, Os};
use ringfence_inventory::model::{Inventory, Labels, Pod, Service, TrafficPolicy};
use ringfence_schema::ir::{EndpointKind, Exposure, NodeIr};
use ringfence_schema::membership::{
    Changes, MemberEndpoint, MemberTarget, Membership, SetChange, SetMembers, TargetRef,
};
use ringfence_schema::net::AddressSet;

use crate::classes::{ClassKey, Classes};
use crate::compiled::{Compiled, CompiledExposure, EpInfo};
use crate::idx::{
    ChainIdx, ClassIdx, ClusterIdx, ExposureIdx, NodeIdx, PolicyIdx, SetIdx, WorkloadIdx,
};
use crate::interval::Addrs;
use crate::membership::{OnePod, matches_one};
use crate::order::pod_label;
use crate::slice::{fixed_part, listed, sort_exposures};
use crate::world::World;

/// The panic of a live method called on a snapshot compile (a caller's bug).
const LIVE_ONLY: &str = "a live inventory needs a compile made by `compile_live`";

/// Where a pod belongs, as far as rules are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placed {
    /// In this class of the compile.
    Class(ClassIdx),
    /// In no set and no dispatch map: no address yet, or finished.
    Nowhere,
    /// A class the compile has not seen, a host-network pod (whose
    /// addresses are its node's, fixed in the rules), or an address inside
    /// an external (externals exclude the clusters' addresses, so a pod
    /// there changes an external's prefixes): compile again.
    NewClass,
}

/// A pod the compile cannot place ([`Placed::NewClass`]): compile again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeedsCompile;

/// A pod as live membership needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LivePod {
    /// Its cluster (in [`Compiled::clusters`]).
    pub cluster: ClusterIdx,
    /// `namespace/name`.
    pub name: String,
    /// Its group as `matrix` prints it.
    pub workload: String,
    /// `spec.nodeName`.
    pub node: Option<String>,
    /// Its addresses, sorted and unique.
    pub ips: Vec<IpAddr>,
    /// Its class.
    pub class: ClassIdx,
}

impl LivePod {
    /// The key pods are known by: (cluster, `namespace/name`).
    pub fn key(&self) -> (ClusterIdx, String) {
        (self.cluster, self.name.clone())
    }

    fn endpoint_name(&self) -> String {
        format!("pod/{}", self.name)
    }
}

/// What a compile needs to serve live membership (built by `slice`).
pub(crate) struct LiveIndex {
    intent: Intent,
    clusters: Vec<ClusterCtx>,
    index: HashMap<ClassKey, ClassIdx>,
    /// Per class: the (used) sets holding it, but those holding every pod
    /// of its cluster (as its pod ranges).
    class_sets: Vec<Vec<SetIdx>>,
    /// Per class: its cluster.
    class_cluster: Vec<ClusterIdx>,
    /// Per set: the clusters whose pod ranges it holds for their pods.
    set_wide: Vec<Vec<ClusterIdx>>,
    /// Per cluster: its pod ranges, standing for its pods in sets that hold
    /// them all ([`crate::world::World::pod_spaces`]).
    pod_spaces: Vec<Option<Addrs>>,
    /// Per class: its ingress and egress chains, if it is managed.
    class_chains: Vec<Option<(ChainIdx, Option<ChainIdx>)>>,
    /// Per class: the chain judging traffic through an exposure, when it is
    /// not the ingress chain.
    class_exposed: Vec<Option<ChainIdx>>,
    /// Per class: (exposure, target port) of the exposures reaching it.
    class_targets: Vec<Vec<(ExposureIdx, u16)>>,
    /// Per exposure: its key and the classes it reaches (with their port).
    x_keys: Vec<String>,
    x_classes: Vec<Vec<(ClassIdx, u16)>>,
    /// Node name → its IR and the classes of its pods.
    nodes: HashMap<String, (NodeIdx, BTreeSet<ClassIdx>)>,
    /// Set name → index; chain id → index.
    set_index: HashMap<String, SetIdx>,
    chain_index: HashMap<String, ChainIdx>,
    /// The initial pods.
    pods: Vec<LivePod>,
}

struct ClusterCtx {
    name: String,
    /// Addresses some external holds: a pod address there needs a compile.
    externals: crate::interval::Addrs,
    ns_labels: HashMap<String, Labels>,
    /// Node name → OS.
    nodes: HashMap<String, Os>,
    /// Services by workload (ascending): namespace and service.
    services: Vec<(WorkloadIdx, Service)>,
}

impl LiveIndex {
    /// The exposure chain a node running `class` needs: only when an
    /// exposure reaches the class and it differs from the ingress chain.
    fn exposed_chain(&self, class: ClassIdx) -> Option<ChainIdx> {
        let c = class.index();
        self.class_exposed[c].filter(|_| !self.class_targets[c].is_empty())
    }

    pub(crate) fn new(
        world: &World<'_>,
        classes: &Classes,
        ep_info: &[EpInfo],
        exposures: &[CompiledExposure],
    ) -> Self {
        let clusters = world
            .inv
            .clusters
            .iter()
            .zip(&world.clusters)
            .map(|(c, range)| ClusterCtx {
                name: c.name.clone(),
                externals: crate::resolve::union_all(
                    world
                        .externals
                        .iter()
                        .map(|e| crate::interval::Addrs::from_nets(world.wl(e).nets.iter())),
                ),
                ns_labels: c
                    .namespaces
                    .iter()
                    .map(|n| (n.name.clone(), n.labels.clone()))
                    .collect(),
                nodes: c.nodes.iter().map(|n| (n.name.clone(), n.os)).collect(),
                services: range
                    .services
                    .iter()
                    .map(|s| (s, world.service(s).clone()))
                    .collect(),
            })
            .collect();
        let n = classes.keys.len();
        let mut class_chains = vec![None; n];
        let mut class_exposed = vec![None; n];
        for e in ep_info {
            if let Some(c) = classes.of[e.workload.index()] {
                class_chains[c.index()] = Some((e.ingress, e.egress));
                class_exposed[c.index()] = e.exposed;
            }
        }
        let mut class_targets = vec![Vec::new(); n];
        let mut x_classes = vec![Vec::new(); exposures.len()];
        let mut x_keys = Vec::with_capacity(exposures.len());
        for (xi, x) in exposures.iter().enumerate() {
            for &(e, port) in &x.targets {
                let w = ep_info[e.index()].workload;
                if let Some(c) = classes.of[w.index()] {
                    class_targets[c.index()].push((ExposureIdx::new(xi), port));
                    x_classes[xi].push((c, port));
                }
            }
            let svc = world.wl(x.service);
            x_keys.push(
                Exposure {
                    service: format!("{}/{}", svc.namespace.unwrap_or(""), svc.name),
                    kind: x.kind,
                    proto: x.proto,
                    addresses: Vec::new(),
                    port: x.port,
                    targets: Vec::new(),
                }
                .key(),
            );
        }
        class_targets.iter_mut().for_each(sort_dedup);
        x_classes.iter_mut().for_each(sort_dedup);
        let mut nodes: HashMap<String, (NodeIdx, BTreeSet<ClassIdx>)> = HashMap::new();
        let node_ws = world.clusters.iter().flat_map(|c| c.nodes.iter());
        for (at, nw) in node_ws.enumerate() {
            let name = world.wl(nw).name.to_string();
            nodes.insert(name, (NodeIdx::new(at), BTreeSet::new()));
        }
        let mut pods = Vec::new();
        for (c, members) in classes.pods.iter().enumerate() {
            let c = ClassIdx::new(c);
            for &p in members {
                let wl = world.wl(p);
                let pod = world.pod(p);
                if let Some(node) = &pod.node
                    && let Some(entry) = nodes.get_mut(node.as_str())
                {
                    entry.1.insert(c);
                }
                let mut ips = wl.addrs.clone();
                ips.sort();
                ips.dedup();
                pods.push(LivePod {
                    cluster: wl.cluster.expect("pods have a cluster"),
                    name: format!("{}/{}", pod.namespace, pod.name),
                    workload: label(
                        world.inv.clusters.len(),
                        &world.inv.clusters[wl.cluster.expect("cluster").index()].name,
                        pod,
                    ),
                    node: pod.node.clone(),
                    ips,
                    class: c,
                });
            }
        }
        LiveIndex {
            intent: world.intent.clone(),
            clusters,
            index: classes
                .keys
                .iter()
                .enumerate()
                .map(|(i, k)| (k.clone(), ClassIdx::new(i)))
                .collect(),
            class_sets: vec![Vec::new(); n],
            class_cluster: classes.keys.iter().map(|k| k.cluster).collect(),
            set_wide: Vec::new(),
            pod_spaces: world.pod_spaces.clone(),
            class_chains,
            class_exposed,
            class_targets,
            x_keys,
            x_classes,
            nodes,
            set_index: HashMap::new(),
            chain_index: HashMap::new(),
            pods,
        }
    }

    /// Fill what needs the final set and chain names.
    pub(crate) fn finish(
        &mut self,
        analysis: &[crate::interval::Addrs],
        wide: Vec<Vec<ClusterIdx>>,
        used: &[bool],
        set_names: &[String],
        chain_ids: &[&str],
    ) {
        for (i, a) in analysis.iter().enumerate() {
            if !used[i] {
                continue;
            }
            for c in listed(a, &wide[i], |c| self.class_cluster[c.index()]) {
                self.class_sets[c.index()].push(SetIdx::new(i));
            }
        }
        self.set_wide = wide;
        self.set_index = set_names
            .iter()
            .enumerate()
            .filter(|(i, _)| used[*i])
            .map(|(i, n)| (n.clone(), SetIdx::new(i)))
            .collect();
        self.chain_index = chain_ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.to_string(), ChainIdx::new(i)))
            .collect();
    }
}

/// A pod's group as `matrix` prints it.
fn label(clusters: usize, cluster: &str, pod: &Pod) -> String {
    let body = pod_label(pod);
    if clusters > 1 {
        format!("{cluster}/{body}")
    } else {
        body
    }
}

impl Compiled {
    fn live(&self) -> &LiveIndex {
        self.live.as_ref().expect(LIVE_ONLY)
    }

    fn live_mut(&mut self) -> &mut LiveIndex {
        self.live.as_mut().expect(LIVE_ONLY)
    }

    /// Place `pod` of cluster `cluster` among this compile's classes.
    pub fn classify(&self, cluster: &str, pod: &Pod) -> Placed {
        let live = self.live();
        if pod.ips.is_empty() {
            return Placed::Nowhere;
        }
        if pod.host_network {
            return Placed::NewClass;
        }
        let Some(ci) = live.clusters.iter().position(|c| c.name == cluster) else {
            return Placed::NewClass;
        };
        let ctx = &live.clusters[ci];
        if pod.ips.iter().any(|a| ctx.externals.contains(*a)) {
            return Placed::NewClass;
        }
        // Pod ranges stand for a cluster's pods only while they hold
        // exactly its pods' addresses.
        for (k, space) in live.pod_spaces.iter().enumerate() {
            if let Some(space) = space
                && pod.ips.iter().any(|&a| space.contains(a) != (k == ci))
            {
                return Placed::NewClass;
            }
        }
        let os = pod.node.as_deref().and_then(|n| ctx.nodes.get(n)).copied();
        let one = OnePod {
            cluster: &ctx.name,
            namespace: &pod.namespace,
            name: &pod.name,
            labels: &pod.labels,
            ns_labels: ctx.ns_labels.get(&pod.namespace),
            node_name: pod.node.as_deref(),
            os,
            addrs: &pod.ips,
            cvss: pod.cvss,
        };
        let (scopes, filters) = matches_one(&live.intent, &one);
        let quarantined = live
            .intent
            .quarantine
            .as_ref()
            .is_some_and(|q| q.filters.iter().any(|f| filters.binary_search(f).is_ok()));
        let services = ctx
            .services
            .iter()
            .filter(|(_, s)| s.selects(pod))
            .map(|(w, s)| {
                let ports = s
                    .ports
                    .iter()
                    .map(|sp| pod.resolve_target(&sp.target, sp.proto))
                    .collect();
                (*w, ports)
            })
            .collect();
        let key = ClassKey {
            cluster: ClusterIdx::new(ci),
            capable: os.is_some(),
            quarantined,
            scopes,
            filters,
            services,
            named: crate::classes::named_ports(&crate::classes::port_names(&live.intent), pod),
        };
        match live.index.get(&key) {
            Some(&c) => Placed::Class(c),
            None => Placed::NewClass,
        }
    }

    /// `pod` as live membership needs it, if it is in a known class.
    pub fn live_pod(&self, cluster: &str, pod: &Pod) -> Result<Option<LivePod>, NeedsCompile> {
        match self.classify(cluster, pod) {
            Placed::Nowhere => Ok(None),
            Placed::NewClass => Err(NeedsCompile),
            Placed::Class(class) => {
                let ci = self
                    .live()
                    .clusters
                    .iter()
                    .position(|c| c.name == cluster)
                    .expect("classified");
                let mut ips = pod.ips.clone();
                ips.sort();
                ips.dedup();
                Ok(Some(LivePod {
                    cluster: ClusterIdx::new(ci),
                    name: format!("{}/{}", pod.namespace, pod.name),
                    workload: label(self.live().clusters.len(), cluster, pod),
                    node: pod.node.clone(),
                    ips,
                    class,
                }))
            }
        }
    }

    /// The pods of the compile's inventory.
    pub fn live_pods(&self) -> &[LivePod] {
        &self.live().pods
    }

    /// The classes of the pods a node ran at compile time.
    pub fn node_classes(&self, node: &str) -> BTreeSet<ClassIdx> {
        self.live()
            .nodes
            .get(node)
            .map(|(_, c)| c.clone())
            .unwrap_or_default()
    }

    /// Names of the nodes, in compile order.
    pub fn node_names(&self) -> impl Iterator<Item = &str> {
        self.node_irs.iter().map(|n| n.node.as_str())
    }

    /// Node `node`'s IR in the live form, with the chains of `classes` (a
    /// superset of [`Compiled::node_classes`]). `None` for an unknown node,
    /// and once the IRs are taken ([`Compiled::take_nodes`]).
    pub fn live_ir(&self, node: &str, classes: &BTreeSet<ClassIdx>) -> Option<NodeIr> {
        let (at, _) = self.live().nodes.get(node)?;
        self.live_ir_from(self.node_irs.get(at.index())?, classes)
    }

    /// [`Compiled::live_ir`] of `from`'s node, made from `from`: the
    /// compile's IR of that node, or a live IR made from it for a subset of
    /// `classes` (the result is the same).
    fn live_ir_from(&self, from: &NodeIr, classes: &BTreeSet<ClassIdx>) -> Option<NodeIr> {
        let live = self.live();
        let (_, base) = live.nodes.get(&from.node)?;
        let mut ir = from.clone();
        ir.live = true;
        // Held for the whole watch session: what the pods took is given back.
        ir.unmanaged = Vec::new();
        ir.endpoints.retain(|e| e.kind != EndpointKind::Pod);
        ir.endpoints.shrink_to_fit();
        let fixed: BTreeSet<String> = ir.endpoints.iter().map(|e| e.name.clone()).collect();
        for x in &mut ir.exposures {
            x.targets.retain(|t| fixed.contains(&t.endpoint));
            x.targets.shrink_to_fit();
        }
        let mut chains: BTreeSet<ChainIdx> =
            ir.chains.iter().map(|c| live.chain_index[&c.id]).collect();
        let mut added = false;
        for &c in classes.difference(base) {
            if let Some((ingress, egress)) = live.class_chains[c.index()] {
                added |= chains.insert(ingress);
                if let Some(e) = egress {
                    added |= chains.insert(e);
                }
            }
            if let Some(x) = live.exposed_chain(c) {
                added |= chains.insert(x);
            }
            for &(x, _) in &live.class_targets[c.index()] {
                let gx = &self.exposures[x.index()];
                let key = &live.x_keys[x.index()];
                if gx.external_traffic_policy == TrafficPolicy::Local
                    && !ir.exposures.iter().any(|e| &e.key() == key)
                {
                    let svc = &self.cat[gx.service.index()];
                    ir.exposures.push(Exposure {
                        service: format!("{}/{}", svc.namespace, svc.name),
                        kind: gx.kind,
                        proto: gx.proto,
                        addresses: gx.addresses.clone(),
                        port: gx.port,
                        targets: Vec::new(),
                    });
                    added = true;
                }
            }
        }
        if added {
            sort_exposures(&mut ir.exposures);
            let mut sets: BTreeSet<SetIdx> = BTreeSet::new();
            let mut policies: BTreeSet<PolicyIdx> = BTreeSet::new();
            for &c in &chains {
                for f in &self.chains[c.index()].fast {
                    sets.extend(f.peer);
                    policies.insert(f.policy);
                }
            }
            ir.chains = chains
                .iter()
                .map(|&c| self.chains[c.index()].chain.clone())
                .collect();
            ir.chains.sort_by(|a, b| a.id.cmp(&b.id));
            ir.sets = sets.into_iter().map(|s| self.live_set(s)).collect();
            ir.sets.sort_by(|a, b| a.name.cmp(&b.name));
            let mut pols: Vec<_> = policies
                .into_iter()
                .map(|p| self.policies[p.index()].clone())
                .collect();
            pols.sort_by(|a, b| a.id.cmp(&b.id));
            pols.dedup_by(|a, b| a.id == b.id);
            ir.policies = pols;
        } else {
            for s in &mut ir.sets {
                if s.live {
                    *s = self.live_set(live.set_index[&s.name]);
                }
            }
        }
        Some(ir)
    }

    /// A set as the live form declares it: what is not pods.
    fn live_set(&self, s: SetIdx) -> AddressSet {
        let live = self.live();
        let a = &self.analysis[s.index()];
        let wide = &live.set_wide[s.index()];
        let fixed = fixed_part(a, wide, &live.pod_spaces);
        AddressSet {
            name: self.set_names[s.index()].clone(),
            v4: fixed.v4_prefixes(),
            v6: fixed.v6_prefixes(),
            live: listed(a, wide, |c| live.class_cluster[c.index()])
                .next()
                .is_some(),
        }
    }

    /// The classes whose chains a live IR has (for a node's first live IR
    /// and after a restart: read back from a published IR).
    pub fn ir_classes(&self, ir: &NodeIr) -> BTreeSet<ClassIdx> {
        let chains: BTreeSet<ChainIdx> = ir
            .chains
            .iter()
            .filter_map(|c| self.live().chain_index.get(&c.id).copied())
            .collect();
        (0..self.live().class_chains.len())
            .map(ClassIdx::new)
            .filter(|&c| match self.live().class_chains[c.index()] {
                Some((i, e)) => {
                    chains.contains(&i)
                        && e.is_none_or(|e| chains.contains(&e))
                        && self
                            .live()
                            .exposed_chain(c)
                            .is_none_or(|x| chains.contains(&x))
                }
                None => true,
            })
            .collect()
    }

    /// Whether a node running a pod of `class` needs chains its live IR lacks.
    pub fn needs_rules(&self, ir: &NodeIr, class: ClassIdx) -> bool {
        let Some((i, e)) = self.live().class_chains[class.index()] else {
            return false;
        };
        let has = |c: ChainIdx| ir.chain(&self.chains[c.index()].chain.id).is_some();
        let chains =
            has(i) && e.is_none_or(has) && self.live().exposed_chain(class).is_none_or(has);
        let exposures = self.live().class_targets[class.index()]
            .iter()
            .all(|&(x, _)| {
                self.exposures[x.index()].external_traffic_policy != TrafficPolicy::Local
                    || ir
                        .exposures
                        .iter()
                        .any(|e| e.key() == self.live().x_keys[x.index()])
            });
        !(chains && exposures)
    }

    /// Node `ir`'s whole membership (a live IR of this compile) with `pods`.
    pub fn membership(&self, ir: &NodeIr, pods: &LivePods) -> Membership {
        let targets: HashMap<String, Targets> = ir
            .exposures
            .iter()
            .filter_map(|x| {
                let key = x.key();
                let t = self.exposure_targets(&key, pods)?;
                Some((key, t))
            })
            .collect();
        let mut m = Membership {
            sets: Vec::new(),
            endpoints: self.member_endpoints(ir, pods),
            targets: node_targets(ir, &targets),
        };
        for s in ir.sets.iter().filter(|s| s.live) {
            let Some(addresses) = self.set_members(&s.name, pods) else {
                continue;
            };
            if !addresses.is_empty() {
                m.sets.push(SetMembers {
                    name: s.name.clone(),
                    addresses,
                });
            }
        }
        m
    }

    /// The addresses of live set `name` (the same on every node declaring
    /// it), sorted; `None` for a set that is not this compile's.
    fn set_members(&self, name: &str, pods: &LivePods) -> Option<Vec<IpAddr>> {
        let &si = self.live().set_index.get(name)?;
        let mut addresses: Vec<IpAddr> = self.analysis[si.index()]
            .classes()
            .flat_map(|c| pods.of_class(c))
            .flat_map(|p| p.ips.iter().copied())
            .collect();
        addresses.sort();
        addresses.dedup();
        Some(addresses)
    }

    /// Node `ir`'s endpoints, sorted by name.
    fn member_endpoints(&self, ir: &NodeIr, pods: &LivePods) -> Vec<MemberEndpoint> {
        let mut endpoints: Vec<MemberEndpoint> = pods
            .on_node(&ir.node)
            .filter_map(|p| self.member_endpoint(ir, p))
            .collect();
        endpoints.sort_by(|a, b| a.name.cmp(&b.name));
        endpoints
    }

    /// The targets of exposure `key` with `pods`, as every node holding it
    /// shares them; `None` for an exposure reaching none of this compile's
    /// classes.
    fn exposure_targets(&self, key: &str, pods: &LivePods) -> Option<Targets> {
        let x = self.live().x_keys.iter().position(|k| k == key)?;
        let mut by_endpoint = BTreeMap::new();
        for &(c, port) in &self.live().x_classes[x] {
            for p in pods.of_class(c) {
                if let Some(t) = self.target(ExposureIdx::new(x), port, p) {
                    by_endpoint
                        .entry(t.endpoint.clone())
                        .or_insert((t, p.node.clone()));
                }
            }
        }
        Some(Targets {
            local: self.exposures[x].external_traffic_policy == TrafficPolicy::Local,
            by_endpoint,
        })
    }

    /// `p`'s endpoint on its node (whose live IR is `ir`), if the IR has its chains.
    fn member_endpoint(&self, ir: &NodeIr, p: &LivePod) -> Option<MemberEndpoint> {
        if p.node.as_deref() != Some(ir.node.as_str()) || p.ips.is_empty() {
            return None;
        }
        let (ingress, egress) = match self.live().class_chains[p.class.index()] {
            Some((i, e)) => {
                let i = &self.chains[i.index()].chain.id;
                let e = e.map(|e| &self.chains[e.index()].chain.id);
                if ir.chain(i).is_none() || e.is_some_and(|e| ir.chain(e).is_none()) {
                    return None;
                }
                (Some(i.clone()), e.cloned())
            }
            None => (None, None),
        };
        Some(MemberEndpoint {
            name: p.endpoint_name(),
            workload: p.workload.clone(),
            addresses: p.ips.clone(),
            ingress,
            egress,
        })
    }

    /// `p` as a target of exposure `x` (to target `port`), whatever the
    /// node ([`Targets::listed`] says which nodes list it); `None` for an
    /// unmanaged class.
    fn target(&self, x: ExposureIdx, port: u16, p: &LivePod) -> Option<MemberTarget> {
        let (i, _) = self.live().class_chains[p.class.index()]?;
        Some(MemberTarget {
            exposure: self.live().x_keys[x.index()].clone(),
            endpoint: p.endpoint_name(),
            workload: p.workload.clone(),
            addresses: p.ips.clone(),
            port,
            ingress: self.chains[i.index()].chain.id.clone(),
            chain: self.live().class_exposed[p.class.index()]
                .map(|x| self.chains[x.index()].chain.id.clone()),
        })
    }
}

/// One exposure's targets, kept once for every node holding it: each pod
/// of a class it reaches, with the pod's node.
#[derive(Clone, Debug, Default)]
struct Targets {
    /// `externalTrafficPolicy: Local`: a node lists only the pods it runs.
    local: bool,
    /// By endpoint name: the target and its pod's node.
    by_endpoint: BTreeMap<String, (MemberTarget, Option<String>)>,
}

impl Targets {
    /// `entry` (a target and its pod's node) if the node whose live IR is
    /// `ir` lists it: it has the chains the target names, and runs the pod
    /// if the exposure is local.
    fn listed<'a>(
        &self,
        ir: &NodeIr,
        entry: Option<&'a (MemberTarget, Option<String>)>,
    ) -> Option<&'a MemberTarget> {
        let (t, node) = entry?;
        let lists = (!self.local || node.as_deref() == Some(ir.node.as_str()))
            && ir.chain(&t.ingress).is_some()
            && t.chain.as_ref().is_none_or(|c| ir.chain(c).is_some());
        lists.then_some(t)
    }
}

/// The targets node `ir` lists, of its exposures' `targets`, sorted by
/// (exposure, endpoint).
fn node_targets(ir: &NodeIr, targets: &HashMap<String, Targets>) -> Vec<MemberTarget> {
    let mut out: Vec<MemberTarget> = ir
        .exposures
        .iter()
        .filter_map(|x| targets.get(&x.key()))
        .flat_map(|ts| {
            (ts.by_endpoint.values()).filter_map(|entry| ts.listed(ir, Some(entry)).cloned())
        })
        .collect();
    out.sort_by(|a, b| (&a.exposure, &a.endpoint).cmp(&(&b.exposure, &b.endpoint)));
    out
}

/// The pods a live state knows, by key, class, node and address.
#[derive(Clone, Debug, Default)]
pub struct LivePods {
    by_key: HashMap<(ClusterIdx, String), LivePod>,
    by_class: HashMap<ClassIdx, BTreeSet<(ClusterIdx, String)>>,
    by_node: HashMap<String, BTreeSet<(ClusterIdx, String)>>,
    by_ip: HashMap<IpAddr, BTreeSet<(ClusterIdx, String)>>,
}

impl LivePods {
    /// The pods of a compile's inventory, moved out of it
    /// ([`Compiled::live_pods`] is empty afterwards).
    pub fn from_compiled(c: &mut Compiled) -> LivePods {
        let mut pods = LivePods::default();
        for p in std::mem::take(&mut c.live_mut().pods) {
            pods.put(p);
        }
        pods
    }

    /// Add or replace a pod; returns what it replaced.
    pub fn put(&mut self, p: LivePod) -> Option<LivePod> {
        let key = p.key();
        let old = self.remove(&key);
        self.by_class
            .entry(p.class)
            .or_default()
            .insert(key.clone());
        if let Some(n) = &p.node {
            self.by_node
                .entry(n.clone())
                .or_default()
                .insert(key.clone());
        }
        for a in &p.ips {
            self.by_ip.entry(*a).or_default().insert(key.clone());
        }
        self.by_key.insert(key, p);
        old
    }

    /// Remove a pod by key.
    pub fn remove(&mut self, key: &(ClusterIdx, String)) -> Option<LivePod> {
        let old = self.by_key.remove(key)?;
        if let Some(s) = self.by_class.get_mut(&old.class) {
            s.remove(key);
        }
        if let Some(n) = &old.node
            && let Some(s) = self.by_node.get_mut(n)
        {
            s.remove(key);
        }
        for a in &old.ips {
            if let Some(s) = self.by_ip.get_mut(a) {
                s.remove(key);
                if s.is_empty() {
                    self.by_ip.remove(a);
                }
            }
        }
        Some(old)
    }

    /// A pod by key.
    pub fn get(&self, key: &(ClusterIdx, String)) -> Option<&LivePod> {
        self.by_key.get(key)
    }

    /// Every pod, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &LivePod> {
        self.by_key.values()
    }

    /// Number of pods.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The pods of a class, by key.
    pub fn of_class(&self, c: ClassIdx) -> impl Iterator<Item = &LivePod> {
        self.by_class
            .get(&c)
            .into_iter()
            .flatten()
            .filter_map(|k| self.by_key.get(k))
    }

    /// The pods on a node, by key.
    pub fn on_node(&self, node: &str) -> impl Iterator<Item = &LivePod> {
        self.by_node
            .get(node)
            .into_iter()
            .flatten()
            .filter_map(|k| self.by_key.get(k))
    }
}

/// One node as the live state keeps it.
#[derive(Clone, Debug)]
pub struct LiveNode {
    /// The classes whose chains its IR has.
    pub classes: BTreeSet<ClassIdx>,
    /// Its IR, live form: shared with the session that renders it.
    pub ir: Arc<NodeIr>,
    /// Its endpoints: its membership but the sets and targets, which are
    /// kept once for every node ([`LiveState::membership`]).
    pub local: Membership,
}

/// A change of one pod.
#[derive(Clone, Debug)]
pub enum PodChange {
    /// The pod now is this (created, moved, readdressed, relabelled within
    /// a known class).
    Put(LivePod),
    /// The pod is gone, or has no address any more.
    Remove((ClusterIdx, String)),
}

/// What [`LiveState::apply`] found.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    /// Per node whose rules stay: its membership changes (nodes with none
    /// are absent).
    pub changes: BTreeMap<String, Changes>,
    /// Nodes that need new rules (a class they lack): their IR and
    /// membership in the state are new.
    pub rules: BTreeSet<String>,
}

/// Every node's live IR and membership, kept up to date as pods change.
#[derive(Clone, Debug, Default)]
pub struct LiveState {
    pods: LivePods,
    nodes: BTreeMap<String, LiveNode>,
    /// Live set name → nodes whose IR declares it.
    set_nodes: HashMap<String, BTreeSet<String>>,
    /// Exposure key → nodes whose IR has it.
    exposure_nodes: HashMap<String, BTreeSet<String>>,
    /// Live set name → its addresses (sorted): a set's contents do not
    /// depend on the node, so they are kept once, not per node (the
    /// cluster scope's set holds every pod, on most nodes).
    sets: HashMap<String, Vec<IpAddr>>,
    /// Exposure key → its targets, kept once like the sets' contents (a
    /// node lists some of them: [`Targets::listed`]).
    targets: HashMap<String, Targets>,
}

impl LiveState {
    /// The state of a fresh compile: every node with the classes of its
    /// pods, and `pods` (the compile's own, or newer ones of known classes).
    pub fn new(c: &Compiled, pods: LivePods) -> LiveState {
        Self::resume(c, pods, |_| None)
    }

    /// The state when nodes keep rules they were published with: `irs`
    /// gives a node's published live IR (after a restart), whose classes
    /// are kept when it still fits this compile.
    pub fn resume(c: &Compiled, pods: LivePods, irs: impl Fn(&str) -> Option<NodeIr>) -> LiveState {
        let mut s = LiveState {
            pods,
            ..LiveState::default()
        };
        let names: Vec<String> = c.node_names().map(str::to_string).collect();
        for n in names {
            let mut classes = c.node_classes(&n);
            classes.extend(s.pods.on_node(&n).map(|p| p.class));
            if let Some(old) = irs(&n) {
                let kept = c.ir_classes(&old);
                let with = {
                    let mut all = classes.clone();
                    all.extend(kept.iter().copied());
                    all
                };
                if c.live_ir(&n, &with).as_ref() == Some(&old) {
                    classes = with;
                }
            }
            s.set_node(c, &n, classes);
        }
        s
    }

    /// A node's state.
    pub fn node(&self, name: &str) -> Option<&LiveNode> {
        self.nodes.get(name)
    }

    /// A node's whole membership: its live sets' contents and its
    /// endpoints and targets.
    pub fn membership(&self, name: &str) -> Option<Membership> {
        let node = self.nodes.get(name)?;
        let mut m = node.local.clone();
        m.targets = node_targets(&node.ir, &self.targets);
        m.sets = node
            .ir
            .sets
            .iter()
            .filter(|s| s.live)
            .filter_map(|s| {
                let addresses = self.sets.get(&s.name)?;
                (!addresses.is_empty()).then(|| SetMembers {
                    name: s.name.clone(),
                    addresses: addresses.clone(),
                })
            })
            .collect();
        Some(m)
    }

    /// Every node's state, by name.
    pub fn nodes(&self) -> impl Iterator<Item = (&String, &LiveNode)> {
        self.nodes.iter()
    }

    /// The pods.
    pub fn pods(&self) -> &LivePods {
        &self.pods
    }

    fn set_node(&mut self, c: &Compiled, n: &str, classes: BTreeSet<ClassIdx>) {
        // From the node's IR when it has one (its classes only grow), so
        // the compile's IRs need not be kept.
        let ir = match self.nodes.get(n) {
            Some(old) => c.live_ir_from(&old.ir, &classes),
            None => c.live_ir(n, &classes),
        };
        let Some(ir) = ir else {
            return;
        };
        if let Some(old) = self.nodes.get(n) {
            for s in old.ir.sets.iter().filter(|s| s.live) {
                if let Some(v) = self.set_nodes.get_mut(&s.name) {
                    v.remove(n);
                }
            }
            for x in &old.ir.exposures {
                if let Some(v) = self.exposure_nodes.get_mut(&x.key()) {
                    v.remove(n);
                }
            }
        }
        for s in ir.sets.iter().filter(|s| s.live) {
            self.set_nodes
                .entry(s.name.clone())
                .or_default()
                .insert(n.to_string());
            if !self.sets.contains_key(&s.name)
                && let Some(a) = c.set_members(&s.name, &self.pods)
            {
                self.sets.insert(s.name.clone(), a);
            }
        }
        for x in &ir.exposures {
            let key = x.key();
            if !self.targets.contains_key(&key)
                && let Some(t) = c.exposure_targets(&key, &self.pods)
            {
                self.targets.insert(key.clone(), t);
            }
            self.exposure_nodes
                .entry(key)
                .or_default()
                .insert(n.to_string());
        }
        let local = Membership {
            endpoints: c.member_endpoints(&ir, &self.pods),
            ..Membership::default()
        };
        let ir = Arc::new(ir);
        self.nodes
            .insert(n.to_string(), LiveNode { classes, ir, local });
    }

    /// Apply pod changes (classified by `c`, the compile the state was
    /// made from). A pod's old addresses leave every set and entry in the
    /// same [`Changes`] as its new ones (or a new owner's) arrive.
    pub fn apply(&mut self, c: &Compiled, changes: Vec<PodChange>) -> Applied {
        let mut out = Applied::default();
        // (set index, address), (exposure, pod key) and endpoints touched.
        let mut set_addrs: BTreeSet<(SetIdx, IpAddr)> = BTreeSet::new();
        let mut targets: BTreeSet<(ExposureIdx, (ClusterIdx, String))> = BTreeSet::new();
        let mut endpoints: BTreeSet<(String, (ClusterIdx, String))> = BTreeSet::new();
        let touch = |p: &LivePod,
                     set_addrs: &mut BTreeSet<(SetIdx, IpAddr)>,
                     targets: &mut BTreeSet<(ExposureIdx, (ClusterIdx, String))>,
                     endpoints: &mut BTreeSet<(String, (ClusterIdx, String))>| {
            for &s in &c.live().class_sets[p.class.index()] {
                for &a in &p.ips {
                    set_addrs.insert((s, a));
                }
            }
            for &(x, _) in &c.live().class_targets[p.class.index()] {
                targets.insert((x, p.key()));
            }
            if let Some(n) = &p.node {
                endpoints.insert((n.clone(), p.key()));
            }
        };
        for ch in changes {
            let (key, new) = match ch {
                PodChange::Put(p) => (p.key(), Some(p)),
                PodChange::Remove(k) => (k, None),
            };
            let old = match new {
                Some(p) => {
                    touch(&p, &mut set_addrs, &mut targets, &mut endpoints);
                    if let Some(n) = p.node.clone()
                        && let Some(node) = self.nodes.get(&n)
                        && !node.classes.contains(&p.class)
                        && c.needs_rules(&node.ir, p.class)
                    {
                        out.rules.insert(n);
                    } else if let Some(n) = p.node.clone()
                        && let Some(node) = self.nodes.get_mut(&n)
                    {
                        node.classes.insert(p.class);
                    }
                    self.pods.put(p)
                }
                None => self.pods.remove(&key),
            };
            if let Some(o) = &old {
                touch(o, &mut set_addrs, &mut targets, &mut endpoints);
            }
        }
        for n in &out.rules {
            let mut classes = self.nodes[n].classes.clone();
            classes.extend(self.pods.on_node(n).map(|p| p.class));
            self.set_node(c, n, classes);
        }

        let mut per_node: BTreeMap<String, Gather> = BTreeMap::new();
        // Sets: an address is in a set while a pod of one of its classes has it.
        for &(si, a) in &set_addrs {
            let name = &c.set_names[si.index()];
            let Some(holders) = self.set_nodes.get(name) else {
                continue;
            };
            let set = &c.analysis[si.index()];
            let present = self.pods.with_ip(a).any(|p| set.has_class(p.class));
            let members = self.sets.entry(name.clone()).or_default();
            match (members.binary_search(&a), present) {
                (Err(i), true) => members.insert(i, a),
                (Ok(i), false) => {
                    members.remove(i);
                }
                _ => continue,
            }
            for n in holders.iter().filter(|n| !out.rules.contains(*n)) {
                let g = per_node.entry(n.clone()).or_default();
                let e = g.sets.entry(name.clone()).or_default();
                if present { e.0.push(a) } else { e.1.push(a) }
            }
        }
        for (n, key) in &endpoints {
            if out.rules.contains(n) {
                continue;
            }
            let Some(node) = self.nodes.get(n) else {
                continue;
            };
            let name = format!("pod/{}", key.1);
            let now = self
                .pods
                .get(key)
                .and_then(|p| c.member_endpoint(&node.ir, p));
            let m = &node.local;
            let was = m
                .endpoints
                .binary_search_by(|e| e.name.cmp(&name))
                .ok()
                .map(|i| &m.endpoints[i]);
            match (was, now) {
                (was, Some(e)) if was != Some(&e) => {
                    per_node
                        .entry(n.clone())
                        .or_default()
                        .endpoints
                        .insert(name, e);
                }
                (Some(_), None) => {
                    per_node
                        .entry(n.clone())
                        .or_default()
                        .endpoints_removed
                        .insert(name);
                }
                _ => {}
            }
        }
        for (x, key) in &targets {
            let xkey = &c.live().x_keys[x.index()];
            let (Some(holders), Some(shared)) =
                (self.exposure_nodes.get(xkey), self.targets.get_mut(xkey))
            else {
                continue;
            };
            let endpoint = format!("pod/{}", key.1);
            let now = self.pods.get(key).and_then(|p| {
                let &(_, port) = c.live().class_targets[p.class.index()]
                    .iter()
                    .find(|(xi, _)| xi == x)?;
                Some((c.target(*x, port, p)?, p.node.clone()))
            });
            let was = match &now {
                Some(t) => shared.by_endpoint.insert(endpoint.clone(), t.clone()),
                None => shared.by_endpoint.remove(&endpoint),
            };
            for n in holders.iter().filter(|n| !out.rules.contains(*n)) {
                let ir = &self.nodes[n].ir;
                match (
                    shared.listed(ir, was.as_ref()),
                    shared.listed(ir, now.as_ref()),
                ) {
                    (was, Some(t)) if was != Some(t) => {
                        per_node
                            .entry(n.clone())
                            .or_default()
                            .targets
                            .insert((xkey.clone(), endpoint.clone()), t.clone());
                    }
                    (Some(_), None) => {
                        per_node
                            .entry(n.clone())
                            .or_default()
                            .targets_removed
                            .insert(TargetRef {
                                exposure: xkey.clone(),
                                endpoint: endpoint.clone(),
                            });
                    }
                    _ => {}
                }
            }
        }
        let mut afresh = Vec::new();
        for (n, g) in per_node {
            let ch = g.into_changes();
            if ch.is_empty() {
                continue;
            }
            let node = self.nodes.get_mut(&n).expect("touched nodes exist");
            // The sets' contents and the targets moved above; the node's
            // own endpoints move here. Changes computed from the state
            // always apply; if they did not, the node starts afresh from a
            // snapshot rather than drift.
            let own = Changes {
                endpoints_removed: ch.endpoints_removed.clone(),
                endpoints: ch.endpoints.clone(),
                ..Changes::default()
            };
            match node.local.apply(&own) {
                Ok(()) => {
                    out.changes.insert(n, ch);
                }
                Err(_) => afresh.push(n),
            }
        }
        for n in afresh {
            let classes = self.nodes[&n].classes.clone();
            self.set_node(c, &n, classes);
            out.rules.insert(n);
        }
        out
    }
}

impl LivePods {
    /// Pods holding address `a`.
    pub fn with_ip(&self, a: IpAddr) -> impl Iterator<Item = &LivePod> {
        self.by_ip
            .get(&a)
            .into_iter()
            .flatten()
            .filter_map(|k| self.by_key.get(k))
    }
}

/// Changes for one node, gathered before they are put in canonical form.
#[derive(Default)]
struct Gather {
    sets: BTreeMap<String, (Vec<IpAddr>, Vec<IpAddr>)>,
    endpoints_removed: BTreeSet<String>,
    endpoints: BTreeMap<String, MemberEndpoint>,
    targets_removed: BTreeSet<TargetRef>,
    targets: BTreeMap<(String, String), MemberTarget>,
}

impl Gather {
    fn into_changes(self) -> Changes {
        Changes {
            sets: self
                .sets
                .into_iter()
                .map(|(name, (mut add, mut remove))| {
                    add.sort();
                    remove.sort();
                    SetChange { name, add, remove }
                })
                .collect(),
            endpoints_removed: self.endpoints_removed.into_iter().collect(),
            endpoints: self.endpoints.into_values().collect(),
            targets_removed: self.targets_removed.into_iter().collect(),
            targets: self.targets.into_values().collect(),
        }
    }
}

/// The pod changes that turn the pods of `old` into those of `new` (both
/// inventories of the clusters `c` was compiled for), or `Err` with the
/// first pod that needs a compile (a new class, a host-network pod).
pub fn pod_changes(
    c: &Compiled,
    old: &Inventory,
    new: &Inventory,
) -> Result<Vec<PodChange>, String> {
    let mut out = Vec::new();
    for nc in &new.clusters {
        let oc = old.clusters.iter().find(|o| o.name == nc.name);
        let mut seen = BTreeSet::new();
        for p in &nc.pods {
            let key = format!("{}/{}", p.namespace, p.name);
            seen.insert(key.clone());
            let before = oc.and_then(|o| {
                o.pods
                    .iter()
                    .find(|q| q.namespace == p.namespace && q.name == p.name)
            });
            if before == Some(p) {
                continue;
            }
            match c.live_pod(&nc.name, p) {
                Ok(Some(lp)) => out.push(PodChange::Put(lp)),
                Ok(None) => {
                    if let Some(ci) = c.clusters().iter().position(|x| *x == nc.name) {
                        out.push(PodChange::Remove((ClusterIdx::new(ci), key)));
                    }
                }
                Err(NeedsCompile) => {
                    return Err(format!("pod {key} of cluster {} needs a compile", nc.name));
                }
            }
        }
        if let Some(o) = oc {
            for p in &o.pods {
                let key = format!("{}/{}", p.namespace, p.name);
                if !seen.contains(&key)
                    && let Some(ci) = c.clusters().iter().position(|x| *x == nc.name)
                {
                    out.push(PodChange::Remove((ClusterIdx::new(ci), key)));
                }
            }
        }
    }
    Ok(out)
}

/// Sort a list and drop repeats.
fn sort_dedup<T: Ord>(v: &mut Vec<T>) {
    v.sort_unstable();
    v.dedup();
}
