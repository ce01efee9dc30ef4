//! Reads one cluster from `kubectl get nodes,namespaces,pods,services -A -o json`.
//!
//! Only the fields the compiler uses are read; unknown fields and other kinds
//! of object are ignored. Every problem in the file is reported, not just the
//! first.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;

use serde_json::Value;

use crate::error::InventoryError;
use crate::fields::{Field, Object};
use crate::model::{
    Cluster, ContainerPort, Labels, Namespace, Node, Os, Pod, Proto, Service, ServicePort,
    ServiceType, TargetPort, TrafficPolicy,
};
use crate::names;
use crate::owner::{self, OwnerRef};
use crate::prune;

/// The List annotation that names the cluster.
pub const CLUSTER_ANNOTATION: &str = "ringfence.io/cluster";

/// What an inventory file must be.
const LIST_HELP: &str = "give the output of `kubectl get nodes,namespaces,pods,services -A -o json` \
                         or `ringfence inventory pull`";

/// What to do about a field kubectl always writes.
const REEXPORT: &str = "kubectl always writes it: re-export the cluster with \
                        `kubectl get nodes,namespaces,pods,services -A -o json`";

/// What to do about a field of the wrong type.
const AS_KUBECTL_WRITES: &str = "kubectl writes it with that type: give its unmodified output \
                                 (`kubectl get nodes,namespaces,pods,services -A -o json`)";

/// Parses one kubectl `List` into a cluster. `source_name` is the file it came
/// from: errors name it, and its stem names the cluster unless the List has a
/// `ringfence.io/cluster` annotation.
pub fn parse_list(json: &str, source_name: &str) -> Result<Cluster, InventoryError> {
    match fast::parse(json, source_name) {
        Some((cluster, _)) => Ok(cluster),
        None => read_list(json, source_name),
    }
}

/// The general reader: every field through [`Field`], so that every problem
/// names its file, object and field ([`fast`] reads the Lists it accepts).
pub(crate) fn read_list(json: &str, source_name: &str) -> Result<Cluster, InventoryError> {
    let doc = prune::parse(json, &prune::LIST).map_err(|e| InventoryError::Json {
        file: source_name.to_owned(),
        line: e.line(),
        column: e.column(),
        message: strip_position(&e),
        help: LIST_HELP,
    })?;
    let list_object = Object {
        file: source_name,
        name: "the List".to_owned(),
        help: AS_KUBECTL_WRITES,
    };
    let list = list_object.root(&doc);
    let not_a_list = |problem: String| InventoryError::Document {
        file: source_name.to_owned(),
        problem,
        help: LIST_HELP,
    };
    match doc.get("kind") {
        _ if !doc.is_object() => {
            return Err(not_a_list("not a kubectl List: not a JSON object".into()));
        }
        Some(Value::String(kind)) if kind == "List" => {}
        Some(Value::String(kind)) => {
            return Err(not_a_list(format!("not a kubectl List: kind is {kind:?}")));
        }
        _ => return Err(not_a_list("not a kubectl List: it has no `kind`".into())),
    }
    if !matches!(doc.get("items"), Some(Value::Array(_))) {
        return Err(list
            .key("items")
            .error("is missing or not an array", LIST_HELP));
    }
    let annotation = list.at("metadata.annotations").key(CLUSTER_ANNOTATION);
    let name = match annotation.str()? {
        Some(name) if !name.trim().is_empty() => {
            if !names::is_cluster_name(name) {
                return Err(annotation.error(
                    format!("is {name:?}, not a usable cluster name"),
                    format!("a cluster name has {}", names::CLUSTER_NAME),
                ));
            }
            name.to_owned()
        }
        Some(_) => {
            return Err(annotation.error(
                "is empty",
                "set it to the cluster's name, or remove it to use the file name",
            ));
        }
        None => {
            let stem = Path::new(source_name)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    annotation.error(
                        "is missing and the source has no file name to name the cluster after",
                        "set the annotation to the cluster's name",
                    )
                })?;
            if !names::is_cluster_name(&stem) {
                return Err(annotation.error(
                    format!("is missing and the file name {stem:?} is not a usable cluster name"),
                    format!(
                        "set the annotation to the cluster's name ({})",
                        names::CLUSTER_NAME
                    ),
                ));
            }
            stem
        }
    };

    let mut cluster = Cluster {
        name,
        source: source_name.to_owned(),
        ..Cluster::default()
    };
    let mut errors = Vec::new();
    let items = doc["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    // Pods are read after nodes so that host-network pods can take their node's addresses.
    let mut pods = Vec::new();
    let mut node_ips = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let read = match item.get("kind").and_then(Value::as_str) {
            Some("Node") => read_node(item, source_name, i).map(|(node, internal)| {
                node_ips.insert(node.name.clone(), internal);
                cluster.nodes.push(node);
            }),
            Some("Namespace") => {
                read_namespace(item, source_name, i).map(|n| cluster.namespaces.push(n))
            }
            Some("Pod") => {
                pods.push((i, item));
                Ok(())
            }
            Some("Service") => read_service(item, source_name, i).map(|s| cluster.services.push(s)),
            Some(_) => Ok(()),
            None => {
                let object = Object {
                    file: source_name,
                    name: format!("items[{i}]"),
                    help: AS_KUBECTL_WRITES,
                };
                Err(object.root(item).key("kind").error(
                    "is missing or not a string",
                    "every item of a kubectl List has a kind; re-export the cluster",
                ))
            }
        };
        if let Err(e) = read {
            errors.push(e);
        }
    }
    for (i, item) in pods {
        match read_pod(item, source_name, i, &node_ips) {
            Ok(pod) => cluster.pods.push(pod),
            Err(e) => errors.push(e),
        }
    }

    finish(cluster, errors)
}

/// Sorts a cluster's objects and adds the problems only the whole list shows
/// (duplicates, addresses owned twice) to `errors`.
fn finish(
    mut cluster: Cluster,
    mut errors: Vec<InventoryError>,
) -> Result<Cluster, InventoryError> {
    let source_name = cluster.source.clone();
    cluster.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    cluster.namespaces.sort_by(|a, b| a.name.cmp(&b.name));
    cluster
        .pods
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    cluster
        .services
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let duplicate = |kind: &str, object: String| InventoryError::DuplicateObject {
        file: source_name.to_owned(),
        object: format!("{kind} {object}"),
    };
    for w in cluster.nodes.windows(2).filter(|w| w[0].name == w[1].name) {
        errors.push(duplicate("Node", w[0].name.clone()));
    }
    for w in cluster
        .namespaces
        .windows(2)
        .filter(|w| w[0].name == w[1].name)
    {
        errors.push(duplicate("Namespace", w[0].name.clone()));
    }
    for w in cluster
        .pods
        .windows(2)
        .filter(|w| (&w[0].namespace, &w[0].name) == (&w[1].namespace, &w[1].name))
    {
        errors.push(duplicate(
            "Pod",
            format!("{}/{}", w[0].namespace, w[0].name),
        ));
    }
    for w in cluster
        .services
        .windows(2)
        .filter(|w| (&w[0].namespace, &w[0].name) == (&w[1].namespace, &w[1].name))
    {
        errors.push(duplicate(
            "Service",
            format!("{}/{}", w[0].namespace, w[0].name),
        ));
    }

    // Pods on the pod network have addresses of their own; host-network pods
    // share their node's.
    let mut owners: HashMap<IpAddr, &Pod> = HashMap::with_capacity(cluster.pods.len());
    for pod in cluster.pods.iter().filter(|p| !p.host_network) {
        for &ip in &pod.ips {
            if let Some(first) = owners.insert(ip, pod) {
                errors.push(InventoryError::SharedAddress {
                    file: source_name.to_owned(),
                    address: ip,
                    first: format!("Pod {}/{}", first.namespace, first.name),
                    second: format!("Pod {}/{}", pod.namespace, pod.name),
                });
            }
        }
    }

    match InventoryError::from_list(errors) {
        Some(e) => Err(e),
        None => Ok(cluster),
    }
}

/// serde_json appends " at line L column C"; the error already says where.
pub(crate) fn strip_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// Names an item for messages: `Pod shop/frontend-x`, else `Pod items[4]`.
fn object_name(item: &Value, kind: &str, namespaced: bool, index: usize) -> String {
    let name = item.pointer("/metadata/name").and_then(Value::as_str);
    let namespace = item.pointer("/metadata/namespace").and_then(Value::as_str);
    match (name, namespace) {
        (Some(n), Some(ns)) if namespaced && !n.is_empty() && !ns.is_empty() => {
            format!("{kind} {ns}/{n}")
        }
        (Some(n), _) if !n.is_empty() => format!("{kind} {n}"),
        _ => format!("{kind} items[{index}]"),
    }
}

/// A node, and its InternalIP addresses (for its host-network pods).
pub(crate) fn read_node(
    item: &Value,
    file: &str,
    index: usize,
) -> Result<(Node, Vec<IpAddr>), InventoryError> {
    let object = Object {
        file,
        name: object_name(item, "Node", false, index),
        help: AS_KUBECTL_WRITES,
    };
    let root = object.root(item);
    let name = required_name(&root.at("metadata.name"), NameRule::Subdomain, "Node")?;
    let labels = root.at("metadata.labels").labels()?;

    let os_field = root.at("status.nodeInfo.operatingSystem");
    let os_label = root.at("metadata.labels").key("kubernetes.io/os");
    let (os_name, field) = match os_field.str()? {
        Some(os) => (os, os_field),
        None => match os_label.str()? {
            Some(os) => (os, os_label),
            None => {
                return Err(os_field.error(
                    "is missing, and so is the label `kubernetes.io/os`",
                    "the kubelet reports it; re-export the cluster, or label the node \
                     kubernetes.io/os=linux or windows",
                ));
            }
        },
    };
    let os = match os_name {
        "linux" => Os::Linux,
        "windows" => Os::Windows,
        other => {
            return Err(field.error(
                format!("is {other:?}, which ringfence has no backend for"),
                "ringfence enforces on linux and windows nodes only; leave other nodes out \
                 of the inventory",
            ));
        }
    };

    let mut internal = Vec::new();
    let mut external = Vec::new();
    for a in root.at("status.addresses").items()? {
        let kind = a.key("type").str()?;
        let list = match kind {
            Some("InternalIP") => &mut internal,
            Some("ExternalIP") => &mut external,
            _ => continue,
        };
        match a.key("address").ip()? {
            Some(ip) => list.push(ip),
            None => return Err(a.key("address").error("is missing", REEXPORT)),
        }
    }
    dedup_in_order(&mut internal);
    let mut addresses = internal.clone();
    addresses.extend(external);
    dedup_in_order(&mut addresses);

    let mut pod_cidrs = Vec::new();
    for c in root.at("spec.podCIDRs").items()? {
        pod_cidrs.extend(c.net()?);
    }
    if pod_cidrs.is_empty() {
        pod_cidrs.extend(root.at("spec.podCIDR").net()?);
    }

    Ok((
        Node {
            name,
            os,
            addresses,
            labels,
            pod_cidrs,
        },
        internal,
    ))
}

pub(crate) fn read_namespace(
    item: &Value,
    file: &str,
    index: usize,
) -> Result<Namespace, InventoryError> {
    let object = Object {
        file,
        name: object_name(item, "Namespace", false, index),
        help: AS_KUBECTL_WRITES,
    };
    let root = object.root(item);
    Ok(Namespace {
        name: required_name(&root.at("metadata.name"), NameRule::Label, "Namespace")?,
        labels: root.at("metadata.labels").labels()?,
    })
}

/// Kubernetes' rule for an object's name.
#[derive(Clone, Copy)]
enum NameRule {
    /// DNS subdomain: Nodes, Pods.
    Subdomain,
    /// DNS label: Namespaces, Services.
    Label,
}

/// A required object name, checked against its kind's rule.
fn required_name(field: &Field<'_>, rule: NameRule, kind: &str) -> Result<String, InventoryError> {
    let name = field.required_str(REEXPORT)?;
    let (valid, what) = match rule {
        NameRule::Subdomain => (names::is_dns_subdomain(name), names::DNS_SUBDOMAIN),
        NameRule::Label => (names::is_dns_label(name), names::DNS_LABEL),
    };
    if !valid {
        return Err(field.error(
            format!("is {name:?}, not a valid {kind} name ({what})"),
            "the API server accepts no such name: give kubectl's unmodified output",
        ));
    }
    Ok(name.to_owned())
}

/// A namespaced object's name, namespace and labels; `kind` names it in
/// messages (`Pod`, `Service`), `rule` checks its name.
fn namespaced(
    root: &Field<'_>,
    kind: &str,
    rule: NameRule,
) -> Result<(String, String, Labels), InventoryError> {
    let name = required_name(&root.at("metadata.name"), rule, kind)?;
    let namespace = root.at("metadata.namespace");
    namespace.required_str(&format!(
        "{}s are namespaced: export with `-A` (all namespaces) so that kubectl writes it",
        kind.to_lowercase()
    ))?;
    let namespace = required_name(&namespace, NameRule::Label, "Namespace")?;
    Ok((name, namespace, root.at("metadata.labels").labels()?))
}

/// The container ports and images of a pod spec's running containers
/// (`root` is the pod, or a workload's pod template).
pub(crate) fn container_ports(
    root: &Field<'_>,
) -> Result<(Vec<ContainerPort>, Vec<String>), InventoryError> {
    let mut ports = Vec::new();
    let mut images: Vec<String> = Vec::new();
    for c in running_containers(root)? {
        if let Some(image) = c.key("image").str()?
            && !images.iter().any(|i| i == image)
        {
            images.push(image.to_owned());
        }
        for p in c.key("ports").items()? {
            let port = p.key("containerPort").port()?.ok_or_else(|| {
                p.key("containerPort")
                    .error("is missing", "every container port needs a number")
            })?;
            ports.push(ContainerPort {
                name: p.key("name").str()?.map(str::to_owned),
                port,
                proto: protocol(&p.key("protocol"))?,
            });
        }
    }
    Ok((ports, images))
}

/// A pod's addresses: `status.podIPs`, else `status.podIP`, each once.
pub(crate) fn pod_ips(root: &Field<'_>) -> Result<Vec<IpAddr>, InventoryError> {
    let mut ips = Vec::new();
    for p in root.at("status.podIPs").items()? {
        ips.extend(p.key("ip").ip()?);
    }
    if ips.is_empty() {
        ips.extend(root.at("status.podIP").ip()?);
    }
    dedup_in_order(&mut ips);
    Ok(ips)
}

pub(crate) fn read_pod(
    item: &Value,
    file: &str,
    index: usize,
    node_ips: &BTreeMap<String, Vec<IpAddr>>,
) -> Result<Pod, InventoryError> {
    let object = Object {
        file,
        name: object_name(item, "Pod", true, index),
        help: AS_KUBECTL_WRITES,
    };
    let root = object.root(item);
    let named = namespaced(&root, "Pod", NameRule::Subdomain)?;
    let node_field = root.at("spec.nodeName");
    let node = match node_field.str()? {
        Some(_) => Some(required_name(&node_field, NameRule::Subdomain, "Node")?),
        None => None,
    };
    let host_network = root.at("spec.hostNetwork").bool()?;
    let phase = root
        .at("status.phase")
        .str()?
        .unwrap_or("Pending")
        .to_owned();

    let mut ips = pod_ips(&root)?;
    if host_network
        && ips.is_empty()
        && let Some(addresses) = node.as_deref().and_then(|n| node_ips.get(n))
    {
        ips.clone_from(addresses);
    }
    // A finished pod's address may already belong to another pod.
    if matches!(phase.as_str(), "Succeeded" | "Failed") {
        ips.clear();
    }

    let containers = container_ports(&root)?;

    let mut refs = Vec::new();
    for r in root.at("metadata.ownerReferences").items()? {
        refs.push(OwnerRef {
            kind: r.key("kind").required_str(REEXPORT)?,
            name: r.key("name").required_str(REEXPORT)?,
            controller: r.key("controller").bool()?,
        });
    }
    Ok(pod_of(
        named,
        node,
        host_network,
        phase,
        ips,
        containers,
        &refs,
    ))
}

/// A pod from what a reader (this one or [`fast`]) read of it: name,
/// namespace and labels, its containers' ports and images, and its owner
/// derived from its references and labels; its CVSS score is not known yet.
pub(crate) fn pod_of(
    (name, namespace, labels): (String, String, Labels),
    node: Option<String>,
    host_network: bool,
    phase: String,
    ips: Vec<IpAddr>,
    (ports, images): (Vec<ContainerPort>, Vec<String>),
    refs: &[OwnerRef<'_>],
) -> Pod {
    let owner = owner::derive(refs, &labels);
    Pod {
        namespace,
        name,
        labels,
        node,
        ips,
        host_network,
        ports,
        owner,
        images,
        cvss: 0.0,
        phase,
    }
}

/// The containers that run for the pod's life: `spec.containers`, and init
/// containers with `restartPolicy: Always` (native sidecars, which serve ports).
fn running_containers<'v>(root: &Field<'v>) -> Result<Vec<Field<'v>>, InventoryError> {
    let mut containers = root.at("spec.containers").items()?;
    for c in root.at("spec.initContainers").items()? {
        if c.key("restartPolicy").str()? == Some("Always") {
            containers.push(c);
        }
    }
    Ok(containers)
}

pub(crate) fn read_service(
    item: &Value,
    file: &str,
    index: usize,
) -> Result<Service, InventoryError> {
    let object = Object {
        file,
        name: object_name(item, "Service", true, index),
        help: AS_KUBECTL_WRITES,
    };
    let root = object.root(item);
    let (name, namespace, labels) = namespaced(&root, "Service", NameRule::Label)?;
    service(&root, name, namespace, labels)
}

/// A service's spec and status (`root` is the Service object).
pub(crate) fn service(
    root: &Field<'_>,
    name: String,
    namespace: String,
    labels: Labels,
) -> Result<Service, InventoryError> {
    let kind_field = root.at("spec.type");
    let kind = match kind_field.str()? {
        None | Some("ClusterIP") => ServiceType::ClusterIp,
        Some("NodePort") => ServiceType::NodePort,
        Some("LoadBalancer") => ServiceType::LoadBalancer,
        Some("ExternalName") => ServiceType::ExternalName,
        Some(other) => {
            return Err(kind_field.error(
                format!("is {other:?}"),
                "use ClusterIP, NodePort, LoadBalancer or ExternalName",
            ));
        }
    };
    let selector = root.at("spec.selector").labels()?;

    let mut cluster_ips = Vec::new();
    let mut ip_fields = root.at("spec.clusterIPs").items()?;
    if ip_fields.is_empty() {
        ip_fields.push(root.at("spec.clusterIP"));
    }
    for f in ip_fields {
        // "None" marks a headless service; ExternalName services have none.
        if matches!(f.str()?, Some("None" | "")) {
            continue;
        }
        cluster_ips.extend(f.ip()?);
    }
    dedup_in_order(&mut cluster_ips);

    let mut ports = Vec::new();
    for p in root.at("spec.ports").items()? {
        let port = p.key("port").port()?.ok_or_else(|| {
            p.key("port")
                .error("is missing", "every service port needs a number")
        })?;
        let target_field = p.key("targetPort");
        let target = match target_field.value() {
            None => TargetPort::Number(port),
            Some(Value::String(name)) if !name.is_empty() => TargetPort::Name(name.clone()),
            Some(Value::Number(_)) => TargetPort::Number(target_field.port()?.unwrap_or(port)),
            Some(_) => {
                return Err(target_field.error(
                    "is neither a port number nor a container port name",
                    "write a number (8080) or the name of a container port (\"http\")",
                ));
            }
        };
        ports.push(ServicePort {
            name: p.key("name").str()?.map(str::to_owned),
            proto: protocol(&p.key("protocol"))?,
            port,
            target,
            node_port: p.key("nodePort").port()?,
        });
    }

    let mut lb_ingress = Vec::new();
    for i in root.at("status.loadBalancer.ingress").items()? {
        // Some load balancers publish a hostname only; it has no address to enforce on.
        lb_ingress.extend(i.key("ip").ip()?);
    }

    let policy_field = root.at("spec.externalTrafficPolicy");
    let external_traffic_policy = match policy_field.str()? {
        None | Some("Cluster") => TrafficPolicy::Cluster,
        Some("Local") => TrafficPolicy::Local,
        Some(other) => {
            return Err(policy_field.error(format!("is {other:?}"), "use Cluster or Local"));
        }
    };

    Ok(Service {
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

/// A port's `protocol` (TCP when absent).
pub(crate) fn protocol(field: &Field<'_>) -> Result<Proto, InventoryError> {
    match field.str()? {
        None | Some("TCP") => Ok(Proto::Tcp),
        Some("UDP") => Ok(Proto::Udp),
        Some("SCTP") => Ok(Proto::Sctp),
        Some(other) => Err(field.error(format!("is {other:?}"), "use TCP, UDP or SCTP")),
    }
}

pub(crate) fn dedup_in_order(ips: &mut Vec<IpAddr>) {
    let mut seen = Vec::with_capacity(ips.len());
    ips.retain(|ip| {
        let new = !seen.contains(ip);
        seen.push(*ip);
        new
    });
}

pub(crate) mod fast;
#[cfg(test)]
mod tests;
