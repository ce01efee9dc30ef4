//! The address book: which inventory object an address (and port) is.
//!
//! Built once from the inventory, read by every worker. Pods are grouped
//! into *entities* by owner workload (a Deployment's pods are one entity);
//! each service and each node is an entity of its own. Addresses outside the
//! inventory are external and grouped by prefix (/24, /64): see [`Peer`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use ringfence_flows::Flow;
use ringfence_inventory::model::{Inventory, Pod, Proto, Service, ServiceType};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::aggregate::addr_key;

/// Index of an entity in [`Book::entities`].
pub(crate) type EntityId = u32;
/// Index of an object in [`Book::objects`].
pub(crate) type ObjId = u32;
/// "No service" in a conversation key.
pub(crate) const NO_SERVICE: EntityId = EntityId::MAX;

/// Prefix length external IPv4 addresses are grouped by.
pub(crate) const EXT_V4_BITS: u8 = 24;
/// Prefix length external IPv6 addresses are grouped by.
pub(crate) const EXT_V6_BITS: u8 = 64;

/// One side of a conversation: an inventory entity or an external prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Peer {
    /// A workload, service or node.
    Entity(EntityId),
    /// An IPv4 /24 outside the inventory (its network address).
    V4(u32),
    /// An IPv6 /64 outside the inventory (its upper 64 bits).
    V6(u64),
}

impl Peer {
    /// The external prefix of an address.
    pub(crate) fn external(ip: IpAddr) -> Peer {
        match ip {
            IpAddr::V4(a) => Peer::V4(u32::from(a) & !((1u32 << (32 - EXT_V4_BITS)) - 1)),
            IpAddr::V6(a) => Peer::V6((u128::from(a) >> 64) as u64),
        }
    }

    /// The prefix of an external peer.
    pub(crate) fn prefix(self) -> Option<IpNet> {
        match self {
            Peer::Entity(_) => None,
            Peer::V4(n) => Some(IpNet::V4(
                Ipv4Net::new(Ipv4Addr::from(n), EXT_V4_BITS).expect("valid prefix length"),
            )),
            Peer::V6(n) => Some(IpNet::V6(
                Ipv6Net::new(Ipv6Addr::from(u128::from(n) << 64), EXT_V6_BITS)
                    .expect("valid prefix length"),
            )),
        }
    }
}

/// How a flow reached its provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Via {
    /// Addressed to the provider itself.
    Direct,
    /// Through a service's clusterIP (or named by the observer).
    ClusterIp,
    /// Through a node port.
    NodePort,
    /// Through a load-balancer address.
    LoadBalancer,
}

/// What kind of entity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum EntityKind {
    /// The pods of one owner (or one pod without owner).
    Workload,
    /// A Kubernetes service.
    Service,
    /// A node.
    Node,
}

/// A workload, service or node.
#[derive(Debug)]
pub(crate) struct Entity<'a> {
    pub(crate) kind: EntityKind,
    /// Index into `Inventory::clusters`.
    pub(crate) cluster: usize,
    /// `None` for nodes.
    pub(crate) namespace: Option<&'a str>,
    /// Owner name, pod name (no owner), service or node name.
    pub(crate) name: &'a str,
    /// `Deployment`, `StatefulSet`, … ; `Pod` for a pod without owner.
    pub(crate) owner_kind: &'a str,
    /// Pods (indices into the cluster's pods) of a workload.
    pub(crate) pods: Vec<usize>,
    /// Index of the service or node in its cluster.
    pub(crate) index: usize,
}

/// What kind of object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ObjKind {
    Pod,
    Service,
    Node,
}

/// A pod, service or node: what exclusions and examples look at.
#[derive(Debug)]
pub(crate) struct Obj {
    pub(crate) kind: ObjKind,
    pub(crate) cluster: usize,
    pub(crate) index: usize,
    pub(crate) entity: EntityId,
}

/// What an address is in the inventory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    PodIp,
    ClusterIp,
    LbIp,
    NodeIp,
    /// The address belongs to objects of several clusters.
    Ambiguous,
}

#[derive(Clone, Copy, Debug)]
struct IpEntry {
    obj: ObjId,
    role: Role,
}

/// A flow's two sides, in inventory terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// The consumer.
    pub(crate) src: Peer,
    /// The consumer's object, if it is in the inventory.
    pub(crate) src_obj: Option<ObjId>,
    /// The provider: the backend when known, else what was addressed.
    pub(crate) dst: Peer,
    /// The provider's object, if it is in the inventory.
    pub(crate) dst_obj: Option<ObjId>,
    /// The port on `dst` (0 for icmp).
    pub(crate) port: u16,
    /// The service addressed, or [`NO_SERVICE`].
    pub(crate) svc: EntityId,
    /// The service's object.
    pub(crate) svc_obj: Option<ObjId>,
    /// The service port addressed.
    pub(crate) svc_port: u16,
    /// How the provider was reached.
    pub(crate) via: Via,
}

/// Why a flow could not be placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unplaced {
    /// An address inside the cluster's ranges that no object has (a pod
    /// gone since the inventory was taken).
    Unknown(IpAddr),
    /// An address several clusters use.
    Ambiguous(IpAddr),
    /// Neither side is in the inventory.
    Outside,
}

/// The address book of an inventory.
pub(crate) struct Book<'a> {
    pub(crate) inv: &'a Inventory,
    pub(crate) entities: Vec<Entity<'a>>,
    pub(crate) objects: Vec<Obj>,
    /// The object of each pod, per cluster.
    pod_obj: Vec<Vec<ObjId>>,
    /// The object of each service, per cluster.
    svc_obj: Vec<Vec<ObjId>>,
    /// The object of each node, per cluster.
    node_obj: Vec<Vec<ObjId>>,
    /// Addresses by [`addr_key`] (cheaper to hash than `IpAddr`).
    ips: FxHashMap<u128, IpEntry>,
    /// (cluster, proto, node port) → (service object, service port).
    node_ports: FxHashMap<(usize, Proto, u16), (ObjId, u16)>,
    /// (node object, proto, port) → host-network pod object.
    host_ports: FxHashMap<(ObjId, Proto, u16), ObjId>,
    /// (service, protocol, service port) → target port.
    targets: FxHashMap<(EntityId, Proto, u16), u16>,
    /// `namespace/name` → service objects (one per cluster that has it).
    services_by_name: FxHashMap<String, Vec<ObjId>>,
    /// /24s and /64s inside the clusters (pod CIDRs, service addresses).
    inside_v4: FxHashSet<u32>,
    inside_v6: FxHashSet<u64>,
    /// Cluster ranges wider than /16 (IPv4) or /48 (IPv6).
    inside_wide: Vec<IpNet>,
}

impl<'a> Book<'a> {
    pub(crate) fn new(inv: &'a Inventory) -> Book<'a> {
        let mut b = Book {
            inv,
            entities: Vec::new(),
            objects: Vec::new(),
            pod_obj: Vec::new(),
            svc_obj: Vec::new(),
            node_obj: Vec::new(),
            ips: FxHashMap::default(),
            node_ports: FxHashMap::default(),
            host_ports: FxHashMap::default(),
            services_by_name: FxHashMap::default(),
            targets: FxHashMap::default(),
            inside_v4: FxHashSet::default(),
            inside_v6: FxHashSet::default(),
            inside_wide: Vec::new(),
        };
        for (ci, c) in inv.clusters.iter().enumerate() {
            // Workloads: pods grouped by owner, in pod order (sorted by namespace, name).
            let mut by_owner: FxHashMap<(&str, &str, &str), EntityId> = FxHashMap::default();
            let mut pod_objs = Vec::with_capacity(c.pods.len());
            for (pi, p) in c.pods.iter().enumerate() {
                let (kind, name) = match &p.owner {
                    Some(o) => (o.kind.as_str(), o.name.as_str()),
                    None => ("Pod", p.name.as_str()),
                };
                let next = b.entities.len() as EntityId;
                let e = *by_owner
                    .entry((p.namespace.as_str(), kind, name))
                    .or_insert(next);
                if e == next {
                    b.entities.push(Entity {
                        kind: EntityKind::Workload,
                        cluster: ci,
                        namespace: Some(&p.namespace),
                        name,
                        owner_kind: kind,
                        pods: Vec::new(),
                        index: 0,
                    });
                }
                b.entities[e as usize].pods.push(pi);
                pod_objs.push(b.push_obj(ObjKind::Pod, ci, pi, e));
            }
            let mut svc_objs = Vec::with_capacity(c.services.len());
            for (si, s) in c.services.iter().enumerate() {
                let e = b.push_entity(EntityKind::Service, ci, Some(&s.namespace), &s.name, si);
                let o = b.push_obj(ObjKind::Service, ci, si, e);
                svc_objs.push(o);
                b.services_by_name
                    .entry(format!("{}/{}", s.namespace, s.name))
                    .or_default()
                    .push(o);
            }
            let mut node_objs = Vec::with_capacity(c.nodes.len());
            for (ni, n) in c.nodes.iter().enumerate() {
                let e = b.push_entity(EntityKind::Node, ci, None, &n.name, ni);
                node_objs.push(b.push_obj(ObjKind::Node, ci, ni, e));
            }
            // Addresses. Host-network pods share their node's addresses and
            // are told apart by port below.
            for (pi, p) in c.pods.iter().enumerate() {
                if p.host_network {
                    continue;
                }
                for ip in &p.ips {
                    b.add_ip(*ip, pod_objs[pi], Role::PodIp);
                }
            }
            for (si, s) in c.services.iter().enumerate() {
                for ip in &s.cluster_ips {
                    b.add_ip(*ip, svc_objs[si], Role::ClusterIp);
                    b.add_inside(IpNet::from(*ip));
                }
                for ip in &s.lb_ingress {
                    b.add_ip(*ip, svc_objs[si], Role::LbIp);
                }
                if matches!(s.kind, ServiceType::NodePort | ServiceType::LoadBalancer) {
                    for sp in &s.ports {
                        if let Some(np) = sp.node_port {
                            b.node_ports
                                .insert((ci, sp.proto, np), (svc_objs[si], sp.port));
                        }
                    }
                }
            }
            for (ni, n) in c.nodes.iter().enumerate() {
                for ip in &n.addresses {
                    b.add_ip(*ip, node_objs[ni], Role::NodeIp);
                }
                for net in &n.pod_cidrs {
                    b.add_inside(*net);
                }
            }
            for (pi, p) in c.pods.iter().enumerate() {
                let Some(node) = p.node.as_deref().filter(|_| p.host_network) else {
                    continue;
                };
                let Ok(ni) = c.nodes.binary_search_by(|n| n.name.as_str().cmp(node)) else {
                    continue;
                };
                for cp in &p.ports {
                    b.host_ports
                        .insert((node_objs[ni], cp.proto, cp.port), pod_objs[pi]);
                }
            }
            b.pod_obj.push(pod_objs);
            b.svc_obj.push(svc_objs);
            b.node_obj.push(node_objs);
        }
        b.resolve_targets();
        b
    }

    fn push_entity(
        &mut self,
        kind: EntityKind,
        cluster: usize,
        namespace: Option<&'a str>,
        name: &'a str,
        index: usize,
    ) -> EntityId {
        self.entities.push(Entity {
            kind,
            cluster,
            namespace,
            name,
            owner_kind: match kind {
                EntityKind::Service => "Service",
                _ => "Node",
            },
            pods: Vec::new(),
            index,
        });
        (self.entities.len() - 1) as EntityId
    }

    fn push_obj(&mut self, kind: ObjKind, cluster: usize, index: usize, entity: EntityId) -> ObjId {
        self.objects.push(Obj {
            kind,
            cluster,
            index,
            entity,
        });
        (self.objects.len() - 1) as ObjId
    }

    fn add_ip(&mut self, ip: IpAddr, obj: ObjId, role: Role) {
        let cluster = self.objects[obj as usize].cluster;
        match self.ips.get_mut(&addr_key(ip)) {
            None => {
                self.ips.insert(addr_key(ip), IpEntry { obj, role });
            }
            // A node address also listed by one of its own objects keeps the
            // first role; only another cluster makes it ambiguous.
            Some(e) if self.objects[e.obj as usize].cluster != cluster => {
                e.role = Role::Ambiguous;
            }
            Some(_) => {}
        }
    }

    fn add_inside(&mut self, net: IpNet) {
        match net.trunc() {
            IpNet::V4(n) if n.prefix_len() >= 16 => {
                let lo = u32::from(n.network()) >> 8;
                let hi = u32::from(n.broadcast()) >> 8;
                self.inside_v4.extend((lo..=hi).map(|x| x << 8));
            }
            IpNet::V6(n) if n.prefix_len() >= 48 => {
                let lo = (u128::from(n.network()) >> 64) as u64;
                let hi = (u128::from(n.broadcast()) >> 64) as u64;
                self.inside_v6.extend(lo..=hi);
            }
            n => self.inside_wide.push(n),
        }
    }

    /// Whether an address lies in a range the clusters use.
    fn inside(&self, ip: IpAddr) -> bool {
        let hit = match Peer::external(ip) {
            Peer::V4(n) => self.inside_v4.contains(&n),
            Peer::V6(n) => self.inside_v6.contains(&n),
            Peer::Entity(_) => false,
        };
        hit || self.inside_wide.iter().any(|n| n.contains(&ip))
    }

    pub(crate) fn entity_of(&self, obj: ObjId) -> EntityId {
        self.objects[obj as usize].entity
    }

    pub(crate) fn pod(&self, obj: ObjId) -> Option<&'a Pod> {
        let o = &self.objects[obj as usize];
        (o.kind == ObjKind::Pod).then(|| &self.inv.clusters[o.cluster].pods[o.index])
    }

    pub(crate) fn service(&self, e: EntityId) -> &'a Service {
        let en = &self.entities[e as usize];
        &self.inv.clusters[en.cluster].services[en.index]
    }

    /// A short name for an object, for evidence (`shop/cart-5f9c-x2`, `node/worker-1`).
    pub(crate) fn obj_name(&self, obj: ObjId) -> String {
        let o = &self.objects[obj as usize];
        let c = &self.inv.clusters[o.cluster];
        match o.kind {
            ObjKind::Pod => format!("{}/{}", c.pods[o.index].namespace, c.pods[o.index].name),
            ObjKind::Service => format!(
                "service {}/{}",
                c.services[o.index].namespace, c.services[o.index].name
            ),
            ObjKind::Node => format!("node {}", c.nodes[o.index].name),
        }
    }

    /// What an address names, for evidence: its object, else the address.
    pub(crate) fn describe(&self, ip: IpAddr) -> String {
        match self.ips.get(&addr_key(ip)) {
            Some(e) if e.role != Role::Ambiguous => self.obj_name(e.obj),
            _ => ip.to_string(),
        }
    }

    /// A source address: its object (a node for node addresses: a source
    /// port says nothing about which host-network pod sent it).
    fn source(&self, ip: IpAddr) -> Result<(Peer, Option<ObjId>), Unplaced> {
        match self.ips.get(&addr_key(ip)) {
            Some(e) if e.role == Role::Ambiguous => Err(Unplaced::Ambiguous(ip)),
            Some(e) => Ok((Peer::Entity(self.entity_of(e.obj)), Some(e.obj))),
            None if self.inside(ip) => Err(Unplaced::Unknown(ip)),
            None => Ok((Peer::external(ip), None)),
        }
    }

    /// A destination address and port as policy sees it: a node address is
    /// the host-network pod listening on that port, if one declares it.
    fn backend(
        &self,
        ip: IpAddr,
        proto: Proto,
        port: u16,
    ) -> Result<(Peer, Option<ObjId>), Unplaced> {
        match self.ips.get(&addr_key(ip)) {
            Some(e) if e.role == Role::Ambiguous => Err(Unplaced::Ambiguous(ip)),
            Some(e) if e.role == Role::NodeIp => {
                let obj = self
                    .host_ports
                    .get(&(e.obj, proto, port))
                    .copied()
                    .unwrap_or(e.obj);
                Ok((Peer::Entity(self.entity_of(obj)), Some(obj)))
            }
            Some(e) => Ok((Peer::Entity(self.entity_of(e.obj)), Some(e.obj))),
            None if self.inside(ip) => Err(Unplaced::Unknown(ip)),
            None => Ok((Peer::external(ip), None)),
        }
    }

    /// Place a flow in the inventory.
    pub(crate) fn resolve(&self, f: &Flow) -> Result<Resolved, Unplaced> {
        let proto = f.proto;
        let (src, src_obj) = self.source(f.src_ip)?;
        let dport = f.dst_port.unwrap_or(0);
        // What the consumer addressed, and the backend if a NAT showed it.
        let (addr_ip, addr_port, backend) = match f.orig_dst_ip {
            Some(o) => (o, f.orig_dst_port.unwrap_or(dport), Some((f.dst_ip, dport))),
            None => (f.dst_ip, dport, None),
        };
        let mut svc: Option<(ObjId, u16, Via)> = None;
        if let Some(name) = &f.dst_service {
            // Hubble names the service; its destination is the backend.
            if let Some(objs) = self.services_by_name.get(&**name) {
                let o = self.pick_cluster(objs, f.dst_ip);
                let e = self.entity_of(o);
                let sp = self.service_port_for_target(e, proto, f.dst_ip, dport);
                // From outside the cluster, a service is reached through a
                // node port or a load balancer, never its clusterIP.
                let via = match (src, self.service(e).kind) {
                    (Peer::Entity(_), _) => Via::ClusterIp,
                    (_, ServiceType::LoadBalancer) => Via::LoadBalancer,
                    (_, ServiceType::NodePort) => Via::NodePort,
                    _ => Via::ClusterIp,
                };
                return self.finish(
                    src,
                    src_obj,
                    f.dst_ip,
                    proto,
                    dport,
                    Some((o, sp, via)),
                    true,
                );
            }
        }
        match self.ips.get(&addr_key(addr_ip)) {
            Some(e) if e.role == Role::ClusterIp => svc = Some((e.obj, addr_port, Via::ClusterIp)),
            Some(e) if e.role == Role::LbIp => svc = Some((e.obj, addr_port, Via::LoadBalancer)),
            Some(e) if e.role == Role::NodeIp => {
                let c = self.objects[e.obj as usize].cluster;
                if let Some(&(o, sp)) = self.node_ports.get(&(c, proto, addr_port)) {
                    svc = Some((o, sp, Via::NodePort));
                }
            }
            _ => {}
        }
        match (svc, backend) {
            (Some(s), Some((ip, port))) => {
                self.finish(src, src_obj, ip, proto, port, Some(s), true)
            }
            (Some(s), None) => self.finish(src, src_obj, addr_ip, proto, addr_port, Some(s), false),
            // A NAT to something that is not a service: policy sees the result.
            (None, Some((ip, port))) => self.finish(src, src_obj, ip, proto, port, None, true),
            (None, None) => self.finish(src, src_obj, addr_ip, proto, addr_port, None, true),
        }
    }

    #[allow(clippy::too_many_arguments)] // one place that assembles a Resolved
    fn finish(
        &self,
        src: Peer,
        src_obj: Option<ObjId>,
        dst_ip: IpAddr,
        proto: Proto,
        port: u16,
        svc: Option<(ObjId, u16, Via)>,
        dst_is_backend: bool,
    ) -> Result<Resolved, Unplaced> {
        let (svc_e, svc_obj, svc_port, via) = match svc {
            Some((o, sp, via)) => (self.entity_of(o), Some(o), sp, via),
            None => (NO_SERVICE, None, 0, Via::Direct),
        };
        let (dst, dst_obj, port) = if dst_is_backend {
            let (d, o) = self.backend(dst_ip, proto, port)?;
            (d, o, port)
        } else {
            // Addressed to a service, backend unseen: the service stands for
            // its pods, on the target port of the port addressed.
            (
                Peer::Entity(svc_e),
                svc_obj,
                self.target_port(svc_e, proto, svc_port),
            )
        };
        if !matches!(src, Peer::Entity(_)) && !matches!(dst, Peer::Entity(_)) {
            return Err(Unplaced::Outside);
        }
        Ok(Resolved {
            src,
            src_obj,
            dst,
            dst_obj,
            port,
            svc: svc_e,
            svc_obj,
            svc_port,
            via,
        })
    }

    /// Of the same-named services of several clusters, the one whose
    /// cluster holds the backend address.
    fn pick_cluster(&self, objs: &[ObjId], backend: IpAddr) -> ObjId {
        if objs.len() > 1
            && let Some(e) = self.ips.get(&addr_key(backend))
            && let Some(o) = objs.iter().find(|o| {
                self.objects[**o as usize].cluster == self.objects[e.obj as usize].cluster
            })
        {
            return *o;
        }
        objs[0]
    }

    /// The target port a service port leads to (named targets looked up in
    /// the first backing pod that has them); the port itself if unknown.
    pub(crate) fn target_port(&self, svc: EntityId, proto: Proto, port: u16) -> u16 {
        self.targets
            .get(&(svc, proto, port))
            .copied()
            .unwrap_or(port)
    }

    /// Every service port's target port, resolved once.
    fn resolve_targets(&mut self) {
        for (e, en) in self.entities.iter().enumerate() {
            if en.kind != EntityKind::Service {
                continue;
            }
            let c = &self.inv.clusters[en.cluster];
            let s = &c.services[en.index];
            let lo = c.pods.partition_point(|p| p.namespace < s.namespace);
            let hi = c.pods.partition_point(|p| p.namespace <= s.namespace);
            for sp in &s.ports {
                let target = c.pods[lo..hi]
                    .iter()
                    .filter(|p| s.selects(p))
                    .find_map(|p| p.resolve_target(&sp.target, sp.proto));
                if let Some(t) = target {
                    self.targets.insert((e as EntityId, sp.proto, sp.port), t);
                }
            }
        }
    }

    /// The service port whose target is `port` on the backend at `ip`.
    fn service_port_for_target(&self, svc: EntityId, proto: Proto, ip: IpAddr, port: u16) -> u16 {
        let s = self.service(svc);
        let pod = self.ips.get(&addr_key(ip)).and_then(|e| self.pod(e.obj));
        s.ports
            .iter()
            .filter(|sp| sp.proto == proto)
            .find(|sp| match pod {
                Some(p) => p.resolve_target(&sp.target, proto) == Some(port),
                None => self.target_port(svc, proto, sp.port) == port,
            })
            .map_or(port, |sp| sp.port)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use ringfence_flows::Timestamp;
    use ringfence_inventory::model::{
        Cluster, ContainerPort, Namespace, Node, Os, Owner, ServicePort, TargetPort, TrafficPolicy,
    };

    use super::*;

    pub(crate) fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub(crate) fn pod(
        ns: &str,
        name: &str,
        owner: Option<(&str, &str)>,
        ip: &str,
        l: &[(&str, &str)],
    ) -> Pod {
        Pod {
            namespace: ns.into(),
            name: name.into(),
            labels: labels(l),
            node: Some("worker-1".into()),
            ips: if ip.is_empty() {
                vec![]
            } else {
                vec![ip.parse().unwrap()]
            },
            host_network: false,
            ports: vec![],
            owner: owner.map(|(k, n)| Owner {
                kind: k.into(),
                name: n.into(),
            }),
            images: vec![],
            cvss: 0.0,
            phase: "Running".into(),
        }
    }

    pub(crate) fn service(
        ns: &str,
        name: &str,
        ip: &str,
        sel: &[(&str, &str)],
        ports: &[(u16, u16, Option<u16>)],
    ) -> Service {
        Service {
            namespace: ns.into(),
            name: name.into(),
            labels: BTreeMap::new(),
            kind: if ports.iter().any(|p| p.2.is_some()) {
                ServiceType::NodePort
            } else {
                ServiceType::ClusterIp
            },
            selector: labels(sel),
            cluster_ips: vec![ip.parse().unwrap()],
            ports: ports
                .iter()
                .map(|&(port, target, node_port)| ServicePort {
                    name: None,
                    proto: Proto::Tcp,
                    port,
                    target: TargetPort::Number(target),
                    node_port,
                })
                .collect(),
            lb_ingress: vec![],
            external_traffic_policy: TrafficPolicy::Cluster,
        }
    }

    pub(crate) fn node(name: &str, ip: &str, cidr: &str) -> Node {
        Node {
            name: name.into(),
            os: Os::Linux,
            addresses: vec![ip.parse().unwrap()],
            labels: labels(&[("kubernetes.io/os", "linux")]),
            pod_cidrs: vec![cidr.parse().unwrap()],
        }
    }

    /// A small shop: frontend (2 pods) → cart (service 80 → 8080) → redis;
    /// a host-network agent listening on 9100; frontend exposed on node port 30080.
    pub(crate) fn shop() -> Inventory {
        let mut agent = pod(
            "mon",
            "agent-x1",
            Some(("DaemonSet", "agent")),
            "192.168.1.10",
            &[("app", "agent")],
        );
        agent.host_network = true;
        agent.ports = vec![ContainerPort {
            name: None,
            port: 9100,
            proto: Proto::Tcp,
        }];
        Inventory {
            clusters: vec![Cluster {
                name: "prod".into(),
                source: "prod.json".into(),
                nodes: vec![node("worker-1", "192.168.1.10", "10.244.1.0/24")],
                namespaces: ["mon", "shop"]
                    .iter()
                    .map(|n| Namespace {
                        name: n.to_string(),
                        labels: BTreeMap::new(),
                    })
                    .collect(),
                pods: vec![
                    agent,
                    pod(
                        "shop",
                        "cart-7d-a",
                        Some(("Deployment", "cart")),
                        "10.244.1.20",
                        &[("app", "cart"), ("pod-template-hash", "7d")],
                    ),
                    pod(
                        "shop",
                        "frontend-5f-a",
                        Some(("Deployment", "frontend")),
                        "10.244.1.10",
                        &[("app", "frontend")],
                    ),
                    pod(
                        "shop",
                        "frontend-5f-b",
                        Some(("Deployment", "frontend")),
                        "10.244.1.11",
                        &[("app", "frontend")],
                    ),
                    pod(
                        "shop",
                        "redis-0",
                        Some(("StatefulSet", "redis")),
                        "10.244.1.30",
                        &[("app", "redis")],
                    ),
                ],
                services: vec![
                    service(
                        "shop",
                        "cart",
                        "10.96.0.20",
                        &[("app", "cart")],
                        &[(80, 8080, None)],
                    ),
                    service(
                        "shop",
                        "frontend",
                        "10.96.0.10",
                        &[("app", "frontend")],
                        &[(80, 8080, Some(30080))],
                    ),
                ],
                ingress: vec![],
            }],
        }
    }

    pub(crate) fn flow(src: &str, dst: &str, port: u16) -> Flow {
        Flow {
            src_ip: src.parse().unwrap(),
            dst_ip: dst.parse().unwrap(),
            proto: Proto::Tcp,
            src_port: Some(40_000),
            dst_port: Some(port),
            orig_dst_ip: None,
            orig_dst_port: None,
            dst_service: None,
            packets: 1,
            bytes: 100,
            first_seen: Timestamp::from_unix_secs(1_714_564_800),
            last_seen: Timestamp::from_unix_secs(1_714_564_800),
            verdict: None,
            node: None,
        }
    }

    fn name(b: &Book<'_>, p: Peer) -> String {
        match p {
            Peer::Entity(e) => b.entities[e as usize].name.to_string(),
            ext => ext.prefix().unwrap().to_string(),
        }
    }

    #[test]
    fn pods_group_by_owner() {
        let inv = shop();
        let b = Book::new(&inv);
        let fe: Vec<_> = b.entities.iter().filter(|e| e.name == "frontend").collect();
        assert_eq!(fe.len(), 2, "the workload and the service");
        assert_eq!(fe[0].pods, [2, 3]);
        assert_eq!(fe[0].kind, EntityKind::Workload);
    }

    #[test]
    fn resolves_pods_services_node_ports_host_ports_and_externals() {
        let inv = shop();
        let b = Book::new(&inv);
        // Pod to service clusterIP, backend unseen: the service, on its target port.
        let r = b.resolve(&flow("10.244.1.10", "10.96.0.20", 80)).unwrap();
        assert_eq!(
            (name(&b, r.src), name(&b, r.dst), r.port),
            ("frontend".into(), "cart".into(), 8080)
        );
        assert_eq!((r.svc_port, r.via), (80, Via::ClusterIp));
        assert_eq!(b.entities[r.svc as usize].kind, EntityKind::Service);
        // conntrack: the backend is known.
        let mut f = flow("10.244.1.10", "10.244.1.20", 8080);
        f.orig_dst_ip = Some("10.96.0.20".parse().unwrap());
        f.orig_dst_port = Some(80);
        let r = b.resolve(&f).unwrap();
        assert_eq!(
            b.entities[match r.dst {
                Peer::Entity(e) => e as usize,
                _ => panic!(),
            }]
            .kind,
            EntityKind::Workload
        );
        assert_eq!((r.port, r.svc_port), (8080, 80));
        // Hubble names the service; the destination is the backend pod.
        let mut f = flow("10.244.1.10", "10.244.1.20", 8080);
        f.dst_service = Some(Arc::from("shop/cart"));
        let r = b.resolve(&f).unwrap();
        assert_eq!(
            (name(&b, r.dst), r.port, r.svc_port, r.via),
            ("cart".into(), 8080, 80, Via::ClusterIp)
        );
        // Hubble names the service for a client outside: it came through the node port.
        let mut f = flow("198.51.100.7", "10.244.1.10", 8080);
        f.dst_service = Some(Arc::from("shop/frontend"));
        let r = b.resolve(&f).unwrap();
        assert_eq!((r.via, r.svc_port, r.port), (Via::NodePort, 80, 8080));
        // A node port from the internet.
        let r = b
            .resolve(&flow("198.51.100.7", "192.168.1.10", 30080))
            .unwrap();
        assert_eq!(name(&b, r.src), "198.51.100.0/24");
        assert_eq!((r.via, r.svc_port, r.port), (Via::NodePort, 80, 8080));
        // The node address on the agent's port is the host-network agent; elsewhere the node.
        let r = b
            .resolve(&flow("10.244.1.10", "192.168.1.10", 9100))
            .unwrap();
        assert_eq!(name(&b, r.dst), "agent");
        let r = b
            .resolve(&flow("10.244.1.10", "192.168.1.10", 10250))
            .unwrap();
        assert_eq!(name(&b, r.dst), "worker-1");
        // IPv6 externals group by /64.
        let r = b
            .resolve(&flow("10.244.1.10", "2001:db8:1:2::9", 443))
            .unwrap();
        assert_eq!(name(&b, r.dst), "2001:db8:1:2::/64");
    }

    #[test]
    fn unknown_inside_addresses_and_outside_flows_are_unplaced() {
        let inv = shop();
        let b = Book::new(&inv);
        assert_eq!(
            b.resolve(&flow("10.244.1.99", "10.244.1.20", 8080)),
            Err(Unplaced::Unknown("10.244.1.99".parse().unwrap()))
        );
        assert_eq!(
            b.resolve(&flow("10.96.0.77", "10.244.1.20", 8080)),
            Err(Unplaced::Unknown("10.96.0.77".parse().unwrap())),
            "a /24 holding service addresses is inside"
        );
        assert_eq!(
            b.resolve(&flow("198.51.100.7", "203.0.113.5", 443)),
            Err(Unplaced::Outside)
        );
    }
}
