//! Slice: cut the cluster-wide chains into one [`NodeIr`] per node, and keep
//! the cluster-wide tables [`Compiled`] evaluates with.
//!
//! A node's IR holds its endpoints (pods, host-network pods, itself), the
//! exposures it serves with their remote target endpoints (`local: false`,
//! ingress only), and exactly the chains, sets and policies those reference,
//! each list sorted.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::OnceLock;

use rayon::prelude::*;
use ringfence_intent::model::{Proto, WorkloadKind};
use ringfence_inventory::model::{ServiceType, TrafficPolicy};
use ringfence_schema::ir::{
    Chain, Endpoint, EndpointKind, Exposure, ExposureKind, ExposureTarget, IR_VERSION, NodeIr,
    PolicyInfo,
};
use ringfence_schema::net::AddressSet;
use rustc_hash::FxHashMap;

use crate::chains::Chains;
use crate::classes::Classes;
use crate::compiled::{
    Compiled, CompiledExposure, CompiledWorkload, EpInfo, IngressEntry, Lookups, SvcData, Via,
    VipTarget,
};
use crate::idx::{ChainIdx, ClassIdx, ClusterIdx, EndpointIdx, PolicyIdx, SetIdx, WorkloadIdx};
use crate::interval::Addrs;
use crate::live::LiveIndex;
use crate::membership::Membership;
use crate::order::{Ordered, group_label};
use crate::resolve::Resolved;
use crate::resolve::union_all;
use crate::world::{ClusterRange, Src, World, host_ports};

/// Build every node's IR and the cluster-wide tables; with `follow`, what
/// following a live inventory needs.
pub(crate) fn slice(
    world: &World<'_>,
    m: &Membership,
    classes: Classes,
    r: Resolved,
    ord: Ordered,
    chains: Chains,
    follow: bool,
) -> Compiled {
    let n = world.len();

    // Endpoints in their final (IR) form, indexed like `ord.endpoints`.
    let mut endpoints = Vec::with_capacity(ord.endpoints.len());
    let mut ep_info = Vec::with_capacity(ord.endpoints.len());
    let mut wl_endpoint = vec![None; n];
    for (i, e) in ord.endpoints.into_iter().enumerate() {
        let ingress = chains.group_chain[e.ingress.index()];
        let egress = e.egress.map(|g| chains.group_chain[g.index()]);
        let exposed = e
            .exposed
            .map(|g| chains.group_chain[g.index()])
            .filter(|&c| c != ingress);
        endpoints.push(Endpoint {
            name: e.name,
            kind: e.kind,
            workload: e.label,
            local: true,
            addresses: e.addresses,
            ports: e.ports,
            ingress: chains.chains[ingress.index()].chain.id.clone(),
            egress: egress.map(|c| chains.chains[c.index()].chain.id.clone()),
        });
        ep_info.push(EpInfo {
            workload: e.workload,
            cluster: e.cluster,
            node: e.node,
            ingress,
            egress,
            exposed,
        });
        wl_endpoint[e.workload.index()] = Some(EndpointIdx::new(i));
    }

    // Sets of real addresses (each class replaced by its pods' addresses),
    // and in IR form, built once for every set a chain uses; beside them,
    // the workload table and the exposures.
    let mut used = vec![false; r.sets.addrs.len()];
    for c in &chains.chains {
        for f in &c.fast {
            if let Some(s) = f.peer {
                used[s.index()] = true;
            }
        }
    }
    // Per used set: the clusters whose pod ranges stand for their pods in it.
    let mut wide = vec![Vec::new(); used.len()];
    if world.pod_spaces.iter().any(Option::is_some) {
        let names: Vec<String> = world.inv.clusters.iter().map(|c| c.name.clone()).collect();
        wide = r.sets.every_pod_of(world.intent, &names);
        for (i, w) in wide.iter_mut().enumerate() {
            w.retain(|c| used[i] && world.pod_spaces[c.index()].is_some());
        }
    }
    let ((cat, exposures), (real, ir_sets)) = rayon::join(
        || {
            let cat = catalog(world, m, &wl_endpoint);
            let exposures = exposures(world, &cat, &ep_info);
            (cat, exposures)
        },
        || real_sets(world, &classes, &r, &chains, &used, &wide),
    );

    // Local pods no scope manages, per node (known, so not unknown).
    let mut unmanaged: HashMap<WorkloadIdx, Vec<IpAddr>> = HashMap::new();
    for pods in &classes.pods {
        for &p in pods {
            let wl = world.wl(p);
            if wl_endpoint[p.index()].is_none()
                && let Some(node) = wl.node
            {
                unmanaged.entry(node).or_default().extend(&wl.addrs);
            }
        }
    }

    // Endpoints per node.
    let mut by_node: HashMap<WorkloadIdx, Vec<EndpointIdx>> = HashMap::new();
    for (i, e) in ep_info.iter().enumerate() {
        by_node.entry(e.node).or_default().push(EndpointIdx::new(i));
    }
    let node_ids: Vec<WorkloadIdx> = world.clusters.iter().flat_map(|c| c.nodes.iter()).collect();
    let node_irs = || -> Vec<NodeIr> {
        node_ids
            .par_iter()
            .map(|&nw| {
                let local = by_node.get(&nw).map_or(&[][..], Vec::as_slice);
                let mut ir = node_ir(
                    world,
                    m,
                    &chains,
                    &r.infos.list,
                    &ir_sets,
                    &endpoints,
                    &ep_info,
                    &exposures,
                    nw,
                    local,
                );
                if let Some(u) = unmanaged.get(&nw) {
                    ir.unmanaged = u.clone();
                    ir.unmanaged.sort();
                    ir.unmanaged.dedup();
                }
                ir
            })
            .collect()
    };
    let live = || {
        let mut live = LiveIndex::new(world, &classes, &ep_info, &exposures);
        let chain_ids: Vec<&str> = chains.chains.iter().map(|c| c.chain.id.as_str()).collect();
        live.finish(
            &r.sets.addrs,
            wide.clone(),
            &used,
            &chains.set_names,
            &chain_ids,
        );
        live
    };
    let (node_irs, live) = match follow {
        true => {
            let (irs, live) = rayon::join(node_irs, live);
            (irs, Some(live))
        }
        false => (node_irs(), None),
    };

    Compiled {
        clusters: world.inv.clusters.iter().map(|c| c.name.clone()).collect(),
        scopes: world.intent.scopes.iter().map(|s| s.name.clone()).collect(),
        cat,
        endpoints,
        ep_info,
        wl_endpoint,
        chains: chains.chains,
        sets: real,
        analysis: r.sets.addrs,
        set_names: chains.set_names,
        live,
        policies: r.infos.list,
        exposures,
        node_irs,
        ranges: world.clusters.clone(),
        lookups: OnceLock::new(),
    }
}

/// [`Compiled::lookups`]: endpoints and services by address.
pub(crate) fn lookups(c: &Compiled) -> Lookups {
    let (endpoints, ep_info) = (&c.endpoints, &c.ep_info);
    // Address lookups for fast evaluation; the first cluster wins on overlap.
    let mut egress_ip: FxHashMap<IpAddr, EndpointIdx> = FxHashMap::default();
    let mut ingress_ip: FxHashMap<IpAddr, IngressEntry> = FxHashMap::default();
    for (i, e) in endpoints.iter().enumerate() {
        let i = EndpointIdx::new(i);
        let cluster = ep_info[i.index()].cluster;
        for &a in &e.addresses {
            if e.egress.is_some() {
                egress_ip.entry(a).or_insert(i);
            }
            let entry = ingress_ip.entry(a).or_insert_with(|| IngressEntry {
                cluster,
                endpoint: None,
                host_pods: Vec::new(),
            });
            if entry.cluster != cluster {
                continue;
            }
            match e.kind {
                EndpointKind::HostPod => {
                    for pp in &e.ports {
                        entry.host_pods.push((*pp, i));
                    }
                }
                _ => {
                    entry.endpoint.get_or_insert(i);
                }
            }
        }
    }
    for entry in ingress_ip.values_mut() {
        // The first host pod by name wins a port, as in `NodeIr::ingress_endpoint`.
        entry.host_pods.sort_by(|a, b| {
            (a.0, &endpoints[a.1.index()].name).cmp(&(b.0, &endpoints[b.1.index()].name))
        });
        entry.host_pods.dedup_by_key(|x| x.0);
    }
    Lookups {
        egress_ip,
        ingress_ip,
        vips: vips(&c.ranges, &c.cat),
    }
}

/// What set `a` holds besides the pods it lists: its own addresses, and the
/// pod space of each cluster in `wide` (the clusters it holds every pod of).
pub(crate) fn fixed_part(a: &Addrs, wide: &[ClusterIdx], spaces: &[Option<Addrs>]) -> Addrs {
    let spaces = wide.iter().map(|c| {
        let space = spaces[c.index()].clone();
        space.expect("a wide set's cluster has a pod space")
    });
    union_all(std::iter::once(a.addresses_only()).chain(spaces))
}

/// The classes set `a` lists pod by pod: those of clusters not in `wide`.
pub(crate) fn listed<'a>(
    a: &'a Addrs,
    wide: &'a [ClusterIdx],
    cluster: impl Fn(ClassIdx) -> ClusterIdx + 'a,
) -> impl Iterator<Item = ClassIdx> + 'a {
    a.classes().filter(move |&c| !wide.contains(&cluster(c)))
}

/// Every set with its classes replaced by their pods' addresses, and the IR
/// form of each set a chain uses (`used`).
fn real_sets(
    world: &World<'_>,
    classes: &Classes,
    r: &Resolved,
    chains: &Chains,
    used: &[bool],
    wide: &[Vec<ClusterIdx>],
) -> (Vec<Addrs>, Vec<Option<AddressSet>>) {
    let class_addrs: Vec<Addrs> = classes
        .pods
        .par_iter()
        .map(|pods| Addrs::from_ips(pods.iter().flat_map(|&p| &world.wl(p).addrs)))
        .collect();
    let real: Vec<Addrs> = r
        .sets
        .addrs
        .par_iter()
        .enumerate()
        .map(|(i, a)| {
            if !used[i] || (a.ids.is_empty() && wide[i].is_empty()) {
                return a.addresses_only();
            }
            let pods = listed(a, &wide[i], |c| classes.keys[c.index()].cluster)
                .map(|c| class_addrs[c.index()].clone());
            union_all(std::iter::once(fixed_part(a, &wide[i], &world.pod_spaces)).chain(pods))
        })
        .collect();
    let ir_sets: Vec<Option<AddressSet>> = real
        .par_iter()
        .enumerate()
        .map(|(i, a)| {
            used[i].then(|| AddressSet {
                name: chains.set_names[i].clone(),
                v4: a.v4_prefixes(),
                v6: a.v6_prefixes(),
                live: listed(&r.sets.addrs[i], &wide[i], |c| {
                    classes.keys[c.index()].cluster
                })
                .next()
                .is_some(),
            })
        })
        .collect();
    (real, ir_sets)
}

/// The owned copy of the workload table that explain and matrix use.
fn catalog(
    world: &World<'_>,
    m: &Membership,
    wl_endpoint: &[Option<EndpointIdx>],
) -> Vec<CompiledWorkload> {
    world
        .ids()
        .map(|w| {
            let wl = world.wl(w);
            let (owner, host_network, service) = match wl.kind {
                WorkloadKind::Pod => {
                    let pod = world.pod(w);
                    (
                        pod.owner.as_ref().map(|o| (o.kind.clone(), o.name.clone())),
                        pod.host_network,
                        None,
                    )
                }
                WorkloadKind::Service => {
                    let s = world.service(w);
                    let targets = world
                        .backing(w)
                        .iter()
                        .map(|&p| {
                            let pod = world.pod(p);
                            s.ports
                                .iter()
                                .map(|sp| pod.resolve_target(&sp.target, sp.proto))
                                .collect()
                        })
                        .collect();
                    (
                        None,
                        false,
                        Some(SvcData {
                            kind: s.kind,
                            external_traffic_policy: s.external_traffic_policy,
                            ports: s.ports.clone(),
                            cluster_ips: s.cluster_ips.clone(),
                            lb_ingress: s.lb_ingress.clone(),
                            backing: world.backing(w).to_vec(),
                            targets,
                        }),
                    )
                }
                _ => (None, false, None),
            };
            CompiledWorkload {
                kind: wl.kind,
                cluster: wl.cluster,
                namespace: wl.namespace.unwrap_or("").to_string(),
                name: wl.name.to_string(),
                group: group_label(world, w),
                owner,
                addrs: wl.addrs.clone(),
                nets: wl.nets.to_vec(),
                node: wl.node,
                host_network,
                host_ports: match wl.kind {
                    WorkloadKind::Pod if host_network => host_ports(world.pod(w)),
                    _ => Vec::new(),
                },
                endpoint: wl_endpoint[w.index()],
                scope: m.most_specific[w.index()],
                service,
            }
        })
        .collect()
}

/// Every NodePort and LoadBalancer entry point of every cluster.
fn exposures(
    world: &World<'_>,
    cat: &[CompiledWorkload],
    ep_info: &[EpInfo],
) -> Vec<CompiledExposure> {
    let mut out = Vec::new();
    for (ci, c) in world.clusters.iter().enumerate() {
        for s in c.services.iter() {
            let Some(svc) = &cat[s.index()].service else {
                continue;
            };
            if !matches!(svc.kind, ServiceType::NodePort | ServiceType::LoadBalancer) {
                continue;
            }
            for (k, sp) in svc.ports.iter().enumerate() {
                let Some(node_port) = sp.node_port else {
                    continue;
                };
                let targets: Vec<(EndpointIdx, u16)> = svc
                    .backing
                    .iter()
                    .zip(&svc.targets)
                    .filter_map(|(&p, tps): (&WorkloadIdx, &Vec<Option<u16>>)| {
                        Some((cat[p.index()].endpoint?, tps[k]?))
                    })
                    .collect();
                if targets.is_empty() {
                    continue;
                }
                let nodes: Vec<WorkloadIdx> = match svc.external_traffic_policy {
                    TrafficPolicy::Cluster => c.nodes.iter().collect(),
                    TrafficPolicy::Local => {
                        let set: BTreeSet<WorkloadIdx> = targets
                            .iter()
                            .map(|&(e, _)| ep_info[e.index()].node)
                            .collect();
                        set.into_iter().collect()
                    }
                };
                let mut push = |kind, addresses: Vec<IpAddr>, port| {
                    out.push(CompiledExposure {
                        cluster: ClusterIdx::new(ci),
                        service: s,
                        kind,
                        proto: sp.proto,
                        addresses,
                        port,
                        external_traffic_policy: svc.external_traffic_policy,
                        targets: targets.clone(),
                        nodes: nodes.clone(),
                    })
                };
                push(ExposureKind::NodePort, Vec::new(), node_port);
                if svc.kind == ServiceType::LoadBalancer && !svc.lb_ingress.is_empty() {
                    let mut lb = svc.lb_ingress.clone();
                    lb.sort();
                    lb.dedup();
                    push(ExposureKind::LoadBalancer, lb, sp.port);
                }
            }
        }
    }
    out
}

/// Service addresses a consumer may address: (address, protocol, port) →
/// where the traffic is translated to.
fn vips(
    ranges: &[ClusterRange],
    cat: &[CompiledWorkload],
) -> FxHashMap<(IpAddr, Proto, u16), VipTarget> {
    let mut out: FxHashMap<(IpAddr, Proto, u16), VipTarget> = FxHashMap::default();
    for c in ranges {
        for s in c.services.iter() {
            let Some(svc) = &cat[s.index()].service else {
                continue;
            };
            for (k, sp) in svc.ports.iter().enumerate() {
                let targets: Vec<(WorkloadIdx, u16)> = svc
                    .backing
                    .iter()
                    .zip(&svc.targets)
                    .filter(|(p, _)| !cat[p.index()].addrs.is_empty())
                    .filter_map(|(&p, tps)| Some((p, tps[k]?)))
                    .collect();
                let mut add =
                    |addr: IpAddr, port: u16, via: Via, targets: Vec<(WorkloadIdx, u16)>| {
                        if !targets.is_empty() {
                            out.entry((addr, sp.proto, port)).or_insert(VipTarget {
                                service: s,
                                via,
                                targets,
                            });
                        }
                    };
                for &a in &svc.cluster_ips {
                    add(a, sp.port, Via::ClusterIp, targets.clone());
                }
                let Some(node_port) = sp.node_port else {
                    continue;
                };
                if !matches!(svc.kind, ServiceType::NodePort | ServiceType::LoadBalancer) {
                    continue;
                }
                if svc.kind == ServiceType::LoadBalancer {
                    for &a in &svc.lb_ingress {
                        add(a, sp.port, Via::LoadBalancer, targets.clone());
                    }
                }
                for node in c.nodes.iter() {
                    let here: Vec<(WorkloadIdx, u16)> = match svc.external_traffic_policy {
                        TrafficPolicy::Cluster => targets.clone(),
                        TrafficPolicy::Local => targets
                            .iter()
                            .copied()
                            .filter(|&(p, _)| cat[p.index()].node == Some(node))
                            .collect(),
                    };
                    for &a in &cat[node.index()].addrs {
                        add(a, node_port, Via::NodePort, here.clone());
                    }
                }
            }
        }
    }
    out
}

/// Exposures in IR order: by service, kind, protocol, port and addresses.
pub(crate) fn sort_exposures(xs: &mut [Exposure]) {
    xs.sort_by(|a, b| {
        (&a.service, a.kind, a.proto, a.port, &a.addresses).cmp(&(
            &b.service,
            b.kind,
            b.proto,
            b.port,
            &b.addresses,
        ))
    });
}

#[allow(clippy::too_many_arguments)]
fn node_ir(
    world: &World<'_>,
    m: &Membership,
    chains: &Chains,
    policies: &[PolicyInfo],
    ir_sets: &[Option<AddressSet>],
    endpoints: &[Endpoint],
    ep_info: &[EpInfo],
    exposures: &[CompiledExposure],
    nw: WorkloadIdx,
    local: &[EndpointIdx],
) -> NodeIr {
    let wl = world.wl(nw);
    let cluster = wl.cluster.expect("nodes belong to a cluster");
    // The node's endpoints (whether local), and below, those its exposures
    // reach on other nodes.
    let mut eps: Vec<(EndpointIdx, bool)> = local.iter().map(|&e| (e, true)).collect();
    let mut used_chains: BTreeSet<ChainIdx> = BTreeSet::new();
    for &e in local {
        used_chains.insert(ep_info[e.index()].ingress);
        used_chains.extend(ep_info[e.index()].egress);
    }
    let mut xs = Vec::new();
    for x in exposures
        .iter()
        .filter(|x| x.cluster == cluster && x.nodes.binary_search(&nw).is_ok())
    {
        let mut targets: Vec<ExposureTarget> = Vec::new();
        for &(e, port) in &x.targets {
            if x.external_traffic_policy == TrafficPolicy::Local && ep_info[e.index()].node != nw {
                continue;
            }
            let ep = &endpoints[e.index()];
            eps.push((e, false));
            used_chains.insert(ep_info[e.index()].ingress);
            used_chains.extend(ep_info[e.index()].exposed);
            targets.push(ExposureTarget {
                endpoint: ep.name.clone(),
                port,
                chain: ep_info[e.index()]
                    .exposed
                    .map(|c| chains.chains[c.index()].chain.id.clone()),
            });
        }
        targets.sort();
        targets.dedup();
        let svc = world.wl(x.service);
        xs.push(Exposure {
            service: format!("{}/{}", svc.namespace.unwrap_or(""), svc.name),
            kind: x.kind,
            proto: x.proto,
            addresses: x.addresses.clone(),
            port: x.port,
            targets,
        });
    }
    sort_exposures(&mut xs);

    let mut used_sets: BTreeSet<SetIdx> = BTreeSet::new();
    let mut used_policies: BTreeSet<PolicyIdx> = BTreeSet::new();
    let mut node_chains: Vec<Chain> = Vec::with_capacity(used_chains.len());
    for &c in &used_chains {
        let c = &chains.chains[c.index()];
        for f in &c.fast {
            used_sets.extend(f.peer);
            used_policies.insert(f.policy);
        }
        node_chains.push(c.chain.clone());
    }
    node_chains.sort_by(|a, b| a.id.cmp(&b.id));
    let mut sets: Vec<AddressSet> = used_sets
        .into_iter()
        .map(|s| ir_sets[s.index()].clone().expect("used sets are built"))
        .collect();
    sets.sort_by(|a, b| a.name.cmp(&b.name));
    let mut pols: Vec<PolicyInfo> = used_policies
        .into_iter()
        .map(|p| policies[p.index()].clone())
        .collect();
    pols.sort_by(|a, b| a.id.cmp(&b.id));
    pols.dedup_by(|a, b| a.id == b.id);

    // By name, each once, local if it is (endpoints are nearly in name order
    // already: the sort is close to linear).
    eps.sort_by(|a, b| {
        let name = |e: EndpointIdx| endpoints[e.index()].name.as_str();
        name(a.0).cmp(name(b.0)).then(b.1.cmp(&a.1))
    });
    eps.dedup_by_key(|&mut (e, _)| e);
    let endpoints: Vec<Endpoint> = eps
        .into_iter()
        .map(|(e, local)| match local {
            true => endpoints[e.index()].clone(),
            false => Endpoint {
                local: false,
                egress: None,
                ..endpoints[e.index()].clone()
            },
        })
        .collect();

    let node = match wl.src {
        Src::Node(c, i) => &world.inv.clusters[c.index()].nodes[i as usize],
        _ => unreachable!("node workloads come from nodes"),
    };
    let scope = m.most_specific[nw.index()];
    NodeIr {
        ir_version: IR_VERSION,
        cluster: world.inv.clusters[cluster.index()].name.clone(),
        node: node.name.clone(),
        os: node.os,
        backend: world.intent.backend(scope, node.os).to_string(),
        addresses: node.addresses.clone(),
        pod_cidrs: node.pod_cidrs.clone(),
        unknown_pods: world.intent.unknown_pods(scope),
        unmanaged: Vec::new(),
        live: false,
        endpoints,
        exposures: xs,
        chains: node_chains,
        sets,
        policies: pols,
    }
}
