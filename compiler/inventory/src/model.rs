//! The inventory model: what the compiler knows about clusters.
//!
//! Loaded from `kubectl get nodes,namespaces,pods,services -A -o json`
//! (one `List` per cluster) or from manifests (see [`crate::manifests`]);
//! every list is sorted so that output built from it is deterministic.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
pub use ringfence_schema::ir::Os;
pub use ringfence_schema::net::Proto;

/// Labels or annotations.
pub type Labels = BTreeMap<String, String>;

/// Every cluster the compiler was given.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inventory {
    /// Clusters, sorted by name; names are unique.
    pub clusters: Vec<Cluster>,
}

/// One cluster.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cluster {
    /// The cluster's name: the List's `ringfence.io/cluster` annotation, else the file stem.
    pub name: String,
    /// The file it was read from (for messages).
    pub source: String,
    /// Nodes, sorted by name.
    pub nodes: Vec<Node>,
    /// Namespaces, sorted by name.
    pub namespaces: Vec<Namespace>,
    /// Pods, sorted by (namespace, name). Pods that have finished
    /// (`Succeeded`, `Failed`) or have no address yet are kept but have no IPs.
    pub pods: Vec<Pod>,
    /// Services, sorted by (namespace, name).
    pub services: Vec<Service>,
    /// Pods the ingress controller forwards to (from Ingress and Route
    /// manifests), sorted by (namespace, pod).
    pub ingress: Vec<IngressBackend>,
}

/// A pod an Ingress or Route sends traffic to, through the cluster's ingress
/// controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngressBackend {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// TCP ports the controller reaches it on (target ports it declares), sorted.
    pub ports: Vec<u16>,
    /// The Ingress and Route objects leading to it (`Ingress shop/web`), sorted.
    pub via: Vec<String>,
}

/// A node.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// `metadata.name`.
    pub name: String,
    /// `status.nodeInfo.operatingSystem`, else the `kubernetes.io/os` label.
    pub os: Os,
    /// `status.addresses` of type InternalIP and ExternalIP, in that order.
    pub addresses: Vec<IpAddr>,
    /// `metadata.labels`.
    pub labels: Labels,
    /// `spec.podCIDRs` (or `spec.podCIDR`).
    pub pod_cidrs: Vec<IpNet>,
}

/// A namespace.
#[derive(Clone, Debug, PartialEq)]
pub struct Namespace {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: Labels,
}

/// A pod.
#[derive(Clone, Debug, PartialEq)]
pub struct Pod {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: Labels,
    /// `spec.nodeName`, once scheduled.
    pub node: Option<String>,
    /// `status.podIPs` (or `status.podIP`). For host-network pods, the node's addresses.
    pub ips: Vec<IpAddr>,
    /// `spec.hostNetwork`.
    pub host_network: bool,
    /// Container ports of every container.
    pub ports: Vec<ContainerPort>,
    /// The owning workload, derived from `metadata.ownerReferences`.
    pub owner: Option<Owner>,
    /// Container images (`spec.containers[].image`).
    pub images: Vec<String>,
    /// Highest CVSS score of its images from Trivy reports (0 when unknown).
    pub cvss: f64,
    /// `status.phase`.
    pub phase: String,
}

/// A port a container declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerPort {
    /// Its name, if any (services may target it by name).
    pub name: Option<String>,
    /// `containerPort`.
    pub port: u16,
    /// `protocol` (TCP by default).
    pub proto: Proto,
}

/// What owns a pod, as `matrix` groups it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Owner {
    /// `Deployment` (a ReplicaSet's owner, its pod-template hash stripped),
    /// `StatefulSet`, `DaemonSet`, `Job`, `ReplicaSet`, `CronJob`, …
    pub kind: String,
    /// The owner's name.
    pub name: String,
}

/// Kubernetes service type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceType {
    /// Cluster-internal virtual IP.
    ClusterIp,
    /// ClusterIP plus a port on every node.
    NodePort,
    /// NodePort plus external load balancer addresses.
    LoadBalancer,
    /// A DNS alias; no endpoints.
    ExternalName,
}

/// `spec.externalTrafficPolicy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TrafficPolicy {
    /// Any node forwards to any backing pod (source NATed to the node).
    #[default]
    Cluster,
    /// Only nodes with a local backing pod serve it (source preserved).
    Local,
}

/// A service.
#[derive(Clone, Debug, PartialEq)]
pub struct Service {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: Labels,
    /// `spec.type`.
    pub kind: ServiceType,
    /// `spec.selector` (empty: no automatically managed backends).
    pub selector: Labels,
    /// `spec.clusterIPs` (or `spec.clusterIP`), without `None`.
    pub cluster_ips: Vec<IpAddr>,
    /// `spec.ports`.
    pub ports: Vec<ServicePort>,
    /// `status.loadBalancer.ingress[].ip`.
    pub lb_ingress: Vec<IpAddr>,
    /// `spec.externalTrafficPolicy`.
    pub external_traffic_policy: TrafficPolicy,
}

/// One port of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    /// `name`.
    pub name: Option<String>,
    /// `protocol` (TCP by default).
    pub proto: Proto,
    /// `port`.
    pub port: u16,
    /// `targetPort` (defaults to `port`).
    pub target: TargetPort,
    /// `nodePort`, for NodePort and LoadBalancer services.
    pub node_port: Option<u16>,
}

/// A service's `targetPort`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TargetPort {
    /// A port number.
    Number(u16),
    /// The name of a container port, looked up in each backing pod.
    Name(String),
}

impl Pod {
    /// The port a service's target port means on this pod, if it has it.
    pub fn resolve_target(&self, target: &TargetPort, proto: Proto) -> Option<u16> {
        match target {
            TargetPort::Number(n) => Some(*n),
            TargetPort::Name(name) => self
                .ports
                .iter()
                .find(|p| p.proto == proto && p.name.as_deref() == Some(name))
                .map(|p| p.port),
        }
    }
}

impl Service {
    /// Whether `pod` backs this service (same namespace, selector matches).
    pub fn selects(&self, pod: &Pod) -> bool {
        !self.selector.is_empty()
            && pod.namespace == self.namespace
            && self
                .selector
                .iter()
                .all(|(k, v)| pod.labels.get(k) == Some(v))
    }
}
