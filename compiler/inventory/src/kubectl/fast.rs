//! The fast path of [`parse_list`](super::parse_list): each item of the List
//! deserialised straight into typed, borrowing structs (no `serde_json::Value`,
//! no field paths) and read into the model with the same rules as the general
//! reader as soon as it is parsed. One pass finds where each item is; runs of
//! items are then read in parallel and joined in file order.
//!
//! It only ever answers for a List the general reader accepts: any value of
//! an unexpected type, anything the rules refuse, a duplicate or a shared
//! address gives `None`, and the general reader then reads the file again
//! and explains every problem with its file, object and field.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use rayon::prelude::*;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{CLUSTER_ANNOTATION, dedup_in_order, finish, pod_of};
use crate::model::{
    Cluster, ContainerPort, Labels, Namespace, Node, Os, Pod, Proto, Service, ServicePort,
    ServiceType, TargetPort, TrafficPolicy,
};
use crate::names;
use crate::owner::OwnerRef;

type Str<'a> = Cow<'a, str>;

#[derive(Deserialize)]
struct List<'a> {
    #[serde(borrow)]
    kind: Str<'a>,
    /// Each item's text, found (and its syntax checked) in the first pass.
    #[serde(borrow)]
    items: Vec<&'a RawValue>,
    #[serde(default, borrow)]
    metadata: Option<ListMeta<'a>>,
}

/// Items per parallel run: enough to amortise a task, small enough to share
/// a few thousand pods between cores.
const RUN: usize = 512;

/// The items of a run, each read into the model as soon as it is parsed: one
/// typed item in memory at a time. Pods take their node's addresses afterwards.
#[derive(Default)]
struct Items {
    nodes: Vec<(Node, Vec<IpAddr>)>,
    namespaces: Vec<Namespace>,
    pods: Vec<Pod>,
    services: Vec<Service>,
}

impl Items {
    /// Reads `raw` items in parallel runs, joined in order; `None` if any
    /// item does not parse or the rules refuse it.
    fn read(raw: &[&RawValue]) -> Option<Items> {
        let runs: Vec<Items> = raw
            .par_chunks(RUN)
            .map(|run| {
                let mut items = Items::default();
                for r in run {
                    items.add(serde_json::from_str(r.get()).ok()?)?;
                }
                Some(items)
            })
            .collect::<Option<_>>()?;
        // Sized once: growing by doubling would copy the pods several times.
        let mut all = Items {
            nodes: Vec::with_capacity(runs.iter().map(|r| r.nodes.len()).sum()),
            namespaces: Vec::with_capacity(runs.iter().map(|r| r.namespaces.len()).sum()),
            pods: Vec::with_capacity(runs.iter().map(|r| r.pods.len()).sum()),
            services: Vec::with_capacity(runs.iter().map(|r| r.services.len()).sum()),
        };
        for run in runs {
            all.nodes.extend(run.nodes);
            all.namespaces.extend(run.namespaces);
            all.pods.extend(run.pods);
            all.services.extend(run.services);
        }
        Some(all)
    }

    /// Reads one item; `None` if the rules refuse it.
    fn add(&mut self, item: Item<'_>) -> Option<()> {
        let mut meta = item.metadata;
        let meta = meta.as_mut();
        let (mut spec, status) = (item.spec, item.status.as_ref());
        match &*item.kind {
            "Node" => self.nodes.push(node(meta?, spec.as_ref(), status)?),
            "Namespace" => {
                let meta = meta?;
                self.namespaces.push(Namespace {
                    name: name_of(meta.name.as_deref(), NameRule::Label)?,
                    labels: labels(&mut meta.labels),
                });
            }
            "Pod" => self.pods.push(pod(meta?, spec.as_ref(), status)?),
            "Service" => {
                let spec = spec.get_or_insert_default();
                self.services.push(service(meta?, spec, status)?);
            }
            _ => {}
        }
        Some(())
    }
}

#[derive(Deserialize)]
struct ListMeta<'a> {
    #[serde(default, borrow)]
    annotations: Option<BTreeMap<Str<'a>, Str<'a>>>,
}

/// Every field read from a Node, Namespace, Pod or Service (as `prune::ITEM`).
#[derive(Deserialize)]
struct Item<'a> {
    #[serde(borrow)]
    kind: Str<'a>,
    #[serde(default, borrow)]
    metadata: Option<Meta<'a>>,
    #[serde(default, borrow)]
    spec: Option<Spec<'a>>,
    #[serde(default, borrow)]
    status: Option<Status<'a>>,
}

#[derive(Default, Deserialize)]
struct Meta<'a> {
    #[serde(default, borrow)]
    name: Option<Str<'a>>,
    #[serde(default, borrow)]
    namespace: Option<Str<'a>>,
    #[serde(default)]
    labels: Option<Labels>,
    #[serde(default, borrow, rename = "ownerReferences")]
    owner_references: Option<Vec<OwnerRefIn<'a>>>,
}

#[derive(Deserialize)]
struct OwnerRefIn<'a> {
    #[serde(default, borrow)]
    kind: Option<Str<'a>>,
    #[serde(default, borrow)]
    name: Option<Str<'a>>,
    #[serde(default)]
    controller: Option<bool>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec<'a> {
    #[serde(default, borrow)]
    node_name: Option<Str<'a>>,
    #[serde(default)]
    host_network: Option<bool>,
    #[serde(default, borrow)]
    containers: Option<Vec<Container<'a>>>,
    #[serde(default, borrow)]
    init_containers: Option<Vec<Container<'a>>>,
    #[serde(default, borrow, rename = "podCIDR")]
    pod_cidr: Option<Str<'a>>,
    #[serde(default, borrow, rename = "podCIDRs")]
    pod_cidrs: Option<Vec<Str<'a>>>,
    #[serde(default, borrow, rename = "type")]
    kind: Option<Str<'a>>,
    #[serde(default)]
    selector: Option<Labels>,
    #[serde(default, borrow, rename = "clusterIP")]
    cluster_ip: Option<Str<'a>>,
    #[serde(default, borrow, rename = "clusterIPs")]
    cluster_ips: Option<Vec<Str<'a>>>,
    #[serde(default, borrow)]
    ports: Option<Vec<ServicePortIn<'a>>>,
    #[serde(default, borrow)]
    external_traffic_policy: Option<Str<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Container<'a> {
    #[serde(default, borrow)]
    image: Option<Str<'a>>,
    #[serde(default, borrow)]
    ports: Option<Vec<ContainerPortIn<'a>>>,
    #[serde(default, borrow)]
    restart_policy: Option<Str<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerPortIn<'a> {
    #[serde(default)]
    container_port: Option<u16>,
    #[serde(default, borrow)]
    name: Option<Str<'a>>,
    #[serde(default, borrow)]
    protocol: Option<Str<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServicePortIn<'a> {
    #[serde(default)]
    port: Option<u16>,
    #[serde(default, borrow)]
    target_port: Option<TargetIn<'a>>,
    #[serde(default, borrow)]
    name: Option<Str<'a>>,
    #[serde(default, borrow)]
    protocol: Option<Str<'a>>,
    #[serde(default)]
    node_port: Option<u16>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TargetIn<'a> {
    Number(u16),
    Name(#[serde(borrow)] Str<'a>),
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Status<'a> {
    #[serde(default, borrow)]
    phase: Option<Str<'a>>,
    #[serde(default, borrow, rename = "podIP")]
    pod_ip: Option<Str<'a>>,
    #[serde(default, borrow, rename = "podIPs")]
    pod_ips: Option<Vec<PodIpIn<'a>>>,
    #[serde(default, borrow)]
    addresses: Option<Vec<AddressIn<'a>>>,
    #[serde(default, borrow)]
    node_info: Option<NodeInfo<'a>>,
    #[serde(default, borrow)]
    load_balancer: Option<LoadBalancer<'a>>,
}

#[derive(Deserialize)]
struct PodIpIn<'a> {
    #[serde(default, borrow)]
    ip: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct AddressIn<'a> {
    #[serde(default, borrow, rename = "type")]
    kind: Option<Str<'a>>,
    #[serde(default, borrow)]
    address: Option<Str<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeInfo<'a> {
    #[serde(default, borrow)]
    operating_system: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct LoadBalancer<'a> {
    #[serde(default, borrow)]
    ingress: Option<Vec<PodIpIn<'a>>>,
}

/// The cluster, and whether the List says it is one (it has a
/// [`CLUSTER_ANNOTATION`], a `Node`, or no items at all: `is_kubectl_list`
/// of the crate root, answered in the same pass); `None` for the general
/// reader to read and explain.
pub(crate) fn parse(json: &str, source_name: &str) -> Option<(Cluster, bool)> {
    let list: List<'_> = serde_json::from_str(json).ok()?;
    if list.kind != "List" {
        return None;
    }
    let annotation = list
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(CLUSTER_ANNOTATION));
    let name = match annotation {
        Some(name) if !name.trim().is_empty() => name.to_string(),
        Some(_) => return None,
        None => Path::new(source_name)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())?,
    };
    if !names::is_cluster_name(&name) {
        return None;
    }
    let any = !list.items.is_empty();
    let Items {
        nodes,
        namespaces,
        mut pods,
        services,
    } = Items::read(&list.items)?;
    // Host-network pods share their node's addresses (a finished pod has none).
    let node_ips: BTreeMap<&str, &Vec<IpAddr>> = nodes
        .iter()
        .map(|(n, internal)| (n.name.as_str(), internal))
        .collect();
    for pod in &mut pods {
        if pod.host_network
            && pod.ips.is_empty()
            && !finished(&pod.phase)
            && let Some(addresses) = pod.node.as_deref().and_then(|n| node_ips.get(n))
        {
            pod.ips.clone_from(addresses);
        }
    }
    let names_a_cluster = annotation.is_some() || !any || !nodes.is_empty();
    let cluster = Cluster {
        name,
        source: source_name.to_owned(),
        nodes: nodes.into_iter().map(|(n, _)| n).collect(),
        namespaces,
        pods,
        services,
        ..Cluster::default()
    };
    Some((finish(cluster, Vec::new()).ok()?, names_a_cluster))
}

/// A finished pod's address may already belong to another pod.
fn finished(phase: &str) -> bool {
    matches!(phase, "Succeeded" | "Failed")
}

#[derive(Clone, Copy)]
enum NameRule {
    Subdomain,
    Label,
}

/// A required, valid object name.
fn name_of(name: Option<&str>, rule: NameRule) -> Option<String> {
    let name = name.filter(|n| !n.is_empty())?;
    let valid = match rule {
        NameRule::Subdomain => names::is_dns_subdomain(name),
        NameRule::Label => names::is_dns_label(name),
    };
    valid.then(|| name.to_owned())
}

/// Labels (or a selector), read owned: taken, not copied.
fn labels(map: &mut Option<Labels>) -> Labels {
    map.take().unwrap_or_default()
}

fn ip(s: &Option<Str<'_>>) -> Option<Option<IpAddr>> {
    match s {
        None => Some(None),
        Some(s) => s.parse().ok().map(Some),
    }
}

fn net(s: &str) -> Option<IpNet> {
    s.parse().ok()
}

fn node(
    meta: &mut Meta<'_>,
    spec: Option<&Spec<'_>>,
    status: Option<&Status<'_>>,
) -> Option<(Node, Vec<IpAddr>)> {
    let name = name_of(meta.name.as_deref(), NameRule::Subdomain)?;
    let labels = labels(&mut meta.labels);
    let os = status
        .and_then(|s| s.node_info.as_ref())
        .and_then(|i| i.operating_system.as_deref())
        .or_else(|| labels.get("kubernetes.io/os").map(String::as_str));
    let os = match os? {
        "linux" => Os::Linux,
        "windows" => Os::Windows,
        _ => return None,
    };
    let mut internal = Vec::new();
    let mut external = Vec::new();
    for a in status
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
    {
        let list = match a.kind.as_deref() {
            Some("InternalIP") => &mut internal,
            Some("ExternalIP") => &mut external,
            _ => continue,
        };
        list.push(ip(&a.address)??);
    }
    dedup_in_order(&mut internal);
    let mut addresses = internal.clone();
    addresses.extend(external);
    dedup_in_order(&mut addresses);
    let mut pod_cidrs = Vec::new();
    for c in spec
        .and_then(|s| s.pod_cidrs.as_ref())
        .into_iter()
        .flatten()
    {
        pod_cidrs.push(net(c)?);
    }
    if pod_cidrs.is_empty()
        && let Some(c) = spec.and_then(|s| s.pod_cidr.as_deref())
    {
        pod_cidrs.push(net(c)?);
    }
    let node = Node {
        name,
        os,
        addresses,
        labels,
        pod_cidrs,
    };
    Some((node, internal))
}

/// Name, namespace and labels of a namespaced object.
fn namespaced(meta: &mut Meta<'_>, rule: NameRule) -> Option<(String, String, Labels)> {
    Some((
        name_of(meta.name.as_deref(), rule)?,
        name_of(meta.namespace.as_deref(), NameRule::Label)?,
        labels(&mut meta.labels),
    ))
}

fn protocol(p: Option<&str>) -> Option<Proto> {
    match p {
        None | Some("TCP") => Some(Proto::Tcp),
        Some("UDP") => Some(Proto::Udp),
        Some("SCTP") => Some(Proto::Sctp),
        Some(_) => None,
    }
}

/// A port number of 1–65535.
fn port(p: Option<u16>) -> Option<Option<u16>> {
    match p {
        Some(0) => None,
        p => Some(p),
    }
}

/// A pod; a host-network pod without addresses of its own gets its node's later.
fn pod(meta: &mut Meta<'_>, spec: Option<&Spec<'_>>, status: Option<&Status<'_>>) -> Option<Pod> {
    let named = namespaced(meta, NameRule::Subdomain)?;
    let node = match spec.and_then(|s| s.node_name.as_deref()) {
        Some(n) => Some(name_of(Some(n), NameRule::Subdomain)?),
        None => None,
    };
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let phase = status
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
        .to_owned();
    let mut ips = Vec::new();
    for p in status
        .and_then(|s| s.pod_ips.as_ref())
        .into_iter()
        .flatten()
    {
        ips.extend(ip(&p.ip)?);
    }
    if ips.is_empty() {
        ips.extend(ip(&status.and_then(|s| s.pod_ip.clone()))?);
    }
    dedup_in_order(&mut ips);
    if finished(&phase) {
        ips.clear();
    }

    let mut ports = Vec::new();
    let mut images: Vec<String> = Vec::new();
    let containers = spec
        .and_then(|s| s.containers.as_ref())
        .into_iter()
        .flatten();
    let sidecars = spec
        .and_then(|s| s.init_containers.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    for c in containers.chain(sidecars) {
        if let Some(image) = c.image.as_deref()
            && !images.iter().any(|i| i == image)
        {
            images.push(image.to_owned());
        }
        for p in c.ports.iter().flatten() {
            ports.push(ContainerPort {
                name: p.name.as_deref().map(str::to_owned),
                port: port(p.container_port)??,
                proto: protocol(p.protocol.as_deref())?,
            });
        }
    }

    let mut refs = Vec::new();
    for r in meta.owner_references.iter().flatten() {
        refs.push(OwnerRef {
            kind: r.kind.as_deref().filter(|k| !k.is_empty())?,
            name: r.name.as_deref().filter(|n| !n.is_empty())?,
            controller: r.controller.unwrap_or(false),
        });
    }
    Some(pod_of(
        named,
        node,
        host_network,
        phase,
        ips,
        (ports, images),
        &refs,
    ))
}

fn service(
    meta: &mut Meta<'_>,
    spec: &mut Spec<'_>,
    status: Option<&Status<'_>>,
) -> Option<Service> {
    let selector = labels(&mut spec.selector);
    let (name, namespace, labels) = namespaced(meta, NameRule::Label)?;
    let kind = match spec.kind.as_deref() {
        None | Some("ClusterIP") => ServiceType::ClusterIp,
        Some("NodePort") => ServiceType::NodePort,
        Some("LoadBalancer") => ServiceType::LoadBalancer,
        Some("ExternalName") => ServiceType::ExternalName,
        Some(_) => return None,
    };
    let mut cluster_ips = Vec::new();
    let ip_fields = match &spec.cluster_ips {
        Some(ips) if !ips.is_empty() => ips.as_slice(),
        _ => spec.cluster_ip.as_slice(),
    };
    for f in ip_fields {
        if matches!(&**f, "None" | "") {
            continue;
        }
        cluster_ips.push(f.parse().ok()?);
    }
    dedup_in_order(&mut cluster_ips);

    let mut ports = Vec::new();
    for p in spec.ports.iter().flatten() {
        let number = port(p.port)??;
        let target = match &p.target_port {
            None => TargetPort::Number(number),
            Some(TargetIn::Name(name)) if !name.is_empty() => TargetPort::Name(name.to_string()),
            Some(TargetIn::Number(n)) => TargetPort::Number(port(Some(*n))??),
            Some(TargetIn::Name(_)) => return None,
        };
        ports.push(ServicePort {
            name: p.name.as_deref().map(str::to_owned),
            proto: protocol(p.protocol.as_deref())?,
            port: number,
            target,
            node_port: port(p.node_port)?,
        });
    }
    let mut lb_ingress = Vec::new();
    let ingress = status
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref());
    for i in ingress.into_iter().flatten() {
        lb_ingress.extend(ip(&i.ip)?);
    }
    let external_traffic_policy = match spec.external_traffic_policy.as_deref() {
        None | Some("Cluster") => TrafficPolicy::Cluster,
        Some("Local") => TrafficPolicy::Local,
        Some(_) => return None,
    };
    Some(Service {
        namespace,
        name,
        labels,
        kind,
        selector,
        cluster_ips,
        ports,
        lb_ingress,
        external_traffic_policy,
    })
}
