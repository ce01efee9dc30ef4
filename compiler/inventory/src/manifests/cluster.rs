//! From manifest objects to an inventory cluster, so that `check`, `matrix`,
//! `explain` and `plan` work before anything is deployed.
//!
//! - **Pods.** A `Pod` object is a pod. A workload (Deployment, StatefulSet,
//!   DaemonSet, ReplicaSet, ReplicationController, Job, CronJob) that no
//!   object of the manifests names as its owner stands for one pod of its
//!   template (its labels and container ports). Finished pods (`Succeeded`,
//!   `Failed`) are left out. Every pod runs on one synthetic node.
//! - **Addresses.** A pod keeps the addresses its manifest gives
//!   (`status.podIPs`); one without gets a stable synthetic IPv6 address in
//!   [`SYNTHETIC_PREFIX`]: the prefix and 96 bits of SHA-256 of
//!   `namespace/name`, so an address depends on the pod alone. The synthetic
//!   node has that prefix as its pod range, so externals never include
//!   synthetic pods, and IPv4 ranges policies name never match them.
//! - **Groups.** A pod's owner is its top owner found in the manifests
//!   (following `ownerReferences`: the controller reference, else the first),
//!   else the owner its (or its owner's) `ownerReferences` name, else none
//!   (the pod stands for itself). Node owners (static pods) do not count.
//! - **Namespaces.** `Namespace` objects, and every namespace an object is
//!   in; each carries `kubernetes.io/metadata.name` as the API server sets it.
//!   Objects without a namespace are in `default`.
//! - **Ingress.** `Ingress` (networking.k8s.io) and OpenShift `Route` objects
//!   name services; the pods those services select are reached by the
//!   cluster's ingress controller on the service's target port (a named one
//!   resolved on each pod) when the pod declares that TCP container port. The
//!   controller itself is a synthetic pod ([`INGRESS_CONTROLLER`] in
//!   [`INGRESS_CONTROLLER_NAMESPACE`], no labels), present when some backend is.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv6Addr};

use sha2::{Digest, Sha256};

use super::Manifest;
use crate::error::InventoryError;
use crate::fields::{Field, Object};
use crate::kubectl::{container_ports, pod_ips, service};
use crate::model::{
    Cluster, IngressBackend, Labels, Namespace, Node, Os, Owner, Pod, Proto, Service, TargetPort,
};

/// Where synthetic pod addresses come from (a unique local IPv6 prefix).
pub const SYNTHETIC_PREFIX: &str = "fd52:4600::/32";
/// The node every pod of a manifest inventory runs on (address `fd52:4600::1`).
pub const SYNTHETIC_NODE: &str = "synthetic-node";
/// The namespace of the synthetic ingress controller pod.
pub const INGRESS_CONTROLLER_NAMESPACE: &str = "ingress-controller-ns";
/// The name of the synthetic ingress controller pod.
pub const INGRESS_CONTROLLER: &str = "ingress-controller";

/// The label the API server puts on every namespace.
const NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Kinds that stand for pods of a template: (kind, path of the template).
const WORKLOADS: [(&str, &str); 7] = [
    ("Deployment", "spec.template"),
    ("StatefulSet", "spec.template"),
    ("DaemonSet", "spec.template"),
    ("ReplicaSet", "spec.template"),
    ("ReplicationController", "spec.template"),
    ("Job", "spec.template"),
    ("CronJob", "spec.jobTemplate.spec.template"),
];

/// What a manifest must hold, for values of the wrong type.
const HELP: &str = "write the object as the Kubernetes API defines it";

/// The cluster the objects describe (objects of other kinds are ignored).
/// Every problem is reported.
pub fn cluster(objects: &[Manifest], name: &str) -> Result<Cluster, InventoryError> {
    let mut errors = Vec::new();
    let ns_of = |m: &Manifest| m.namespace().unwrap_or("default").to_owned();

    // Owners: (kind, namespace, name) → the object, for pods and workloads.
    let mut index: HashMap<(String, String, String), &Manifest> = HashMap::new();
    for m in objects {
        let kind = m.kind();
        if kind == "Pod" || WORKLOADS.iter().any(|(k, _)| *k == kind) {
            let key = (kind.to_owned(), ns_of(m), m.name().to_owned());
            if index.insert(key, m).is_some() {
                errors.push(InventoryError::DuplicateObject {
                    file: m.file.clone(),
                    object: m.describe(true),
                });
            }
        }
    }
    // Objects some object names as its owner (those stand for no pod of their own).
    let mut owners: HashSet<(String, String, String)> = HashSet::new();
    for m in index.values() {
        if let Some((kind, owner)) = owner_ref(&m.value) {
            owners.insert((kind, ns_of(m), owner));
        }
    }

    let mut pods = Vec::new();
    let mut services = Vec::new();
    let mut namespaces: BTreeMap<String, Labels> = BTreeMap::new();
    let mut routes: Vec<(&Manifest, String, Vec<Backend>)> = Vec::new();
    for m in objects {
        let kind = m.kind();
        let namespace = ns_of(m);
        let object = Object {
            file: &m.file,
            name: m.describe(kind != "Namespace"),
            help: HELP,
        };
        let root = object.root(&m.value);
        let read = match kind {
            "Namespace" => root.at("metadata.labels").labels().map(|labels| {
                namespaces
                    .entry(m.name().to_owned())
                    .or_default()
                    .extend(labels);
            }),
            "Pod" => read_pod(&root, m, &namespace, &index).map(|p| pods.extend(p)),
            "Service" => root
                .at("metadata.labels")
                .labels()
                .and_then(|labels| service(&root, m.name().to_owned(), namespace.clone(), labels))
                .map(|s| services.push(s)),
            "Ingress" => ingress_backends(&root).map(|b| routes.push((m, namespace.clone(), b))),
            "Route" => route_backends(&root).map(|b| routes.push((m, namespace.clone(), b))),
            _ => match WORKLOADS.iter().find(|(k, _)| *k == kind) {
                Some((_, template)) => {
                    let key = (kind.to_owned(), namespace.clone(), m.name().to_owned());
                    if owners.contains(&key) {
                        Ok(())
                    } else {
                        template_pod(&root, template, m, &namespace, &index).map(|p| pods.push(p))
                    }
                }
                None => Ok(()),
            },
        };
        if let Err(e) = read {
            errors.push(e);
        }
        if kind != "Namespace" && !kind.is_empty() {
            namespaces.entry(namespace).or_default();
        }
    }

    let mut ingress = ingress(&routes, &services, &pods);
    if !ingress.is_empty() {
        namespaces
            .entry(INGRESS_CONTROLLER_NAMESPACE.to_owned())
            .or_default();
        pods.push(Pod {
            namespace: INGRESS_CONTROLLER_NAMESPACE.to_owned(),
            name: INGRESS_CONTROLLER.to_owned(),
            labels: Labels::new(),
            node: None,
            ips: Vec::new(),
            host_network: false,
            ports: Vec::new(),
            owner: None,
            images: Vec::new(),
            cvss: 0.0,
            phase: "Running".to_owned(),
        });
    }

    // Addresses: what the manifests say, else synthetic (unique, stable).
    let mut taken: HashSet<IpAddr> = pods.iter().flat_map(|p| p.ips.iter().copied()).collect();
    taken.insert(node_address());
    pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    for p in &mut pods {
        p.node = Some(SYNTHETIC_NODE.to_owned());
        if p.ips.is_empty() {
            p.ips
                .push(synthetic_address(&p.namespace, &p.name, &mut taken));
        }
    }
    let file = objects.first().map_or_else(String::new, |m| m.file.clone());
    let pod_names: Vec<_> = pods.iter().map(|p| (&p.namespace, &p.name)).collect();
    errors.extend(duplicates("Pod", &pod_names, &file));
    services.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let service_names: Vec<_> = services.iter().map(|s| (&s.namespace, &s.name)).collect();
    errors.extend(duplicates("Service", &service_names, &file));
    ingress.sort_by(|a, b| (&a.namespace, &a.pod).cmp(&(&b.namespace, &b.pod)));
    if let Some(e) = InventoryError::from_list(errors) {
        return Err(e);
    }

    let nodes = if pods.is_empty() {
        Vec::new()
    } else {
        vec![Node {
            name: SYNTHETIC_NODE.to_owned(),
            os: Os::Linux,
            addresses: vec![node_address()],
            labels: Labels::from([
                (
                    "kubernetes.io/hostname".to_owned(),
                    SYNTHETIC_NODE.to_owned(),
                ),
                ("kubernetes.io/os".to_owned(), "linux".to_owned()),
            ]),
            pod_cidrs: vec![SYNTHETIC_PREFIX.parse().expect("a prefix")],
        }]
    };
    let namespaces = namespaces
        .into_iter()
        .map(|(name, mut labels)| {
            labels.insert(NAME_LABEL.to_owned(), name.clone());
            Namespace { name, labels }
        })
        .collect();
    Ok(Cluster {
        name: name.to_owned(),
        source: objects
            .first()
            .map_or_else(|| name.to_owned(), |m| m.file.clone()),
        nodes,
        namespaces,
        pods,
        services,
        ingress,
    })
}

fn node_address() -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0xfd52, 0x4600, 0, 0, 0, 0, 0, 1))
}

/// One error per `namespace/name` that follows itself in `sorted`.
fn duplicates(kind: &str, sorted: &[(&String, &String)], file: &str) -> Vec<InventoryError> {
    sorted
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| InventoryError::DuplicateObject {
            file: file.to_owned(),
            object: format!("{kind} {}/{}", w[0].0, w[0].1),
        })
        .collect()
}

/// `fd52:4600::/32` and 96 bits of SHA-256 of `namespace/name` (of
/// `namespace/name#k` for the k-th try if taken).
fn synthetic_address(namespace: &str, name: &str, taken: &mut HashSet<IpAddr>) -> IpAddr {
    for k in 0u32.. {
        let mut h = Sha256::new();
        h.update(namespace.as_bytes());
        h.update(b"/");
        h.update(name.as_bytes());
        if k > 0 {
            h.update(format!("#{k}").as_bytes());
        }
        let d = h.finalize();
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&[0xfd, 0x52, 0x46, 0x00]);
        b[4..].copy_from_slice(&d[..12]);
        let ip = IpAddr::V6(Ipv6Addr::from(b));
        if taken.insert(ip) {
            return ip;
        }
    }
    unreachable!("some try is free")
}

/// The owner an object's `ownerReferences` name: the controller reference,
/// else the first; none for a node (static pods).
fn owner_ref(v: &serde_json::Value) -> Option<(String, String)> {
    let refs = v.pointer("/metadata/ownerReferences")?.as_array()?;
    let r = refs
        .iter()
        .find(|r| r.get("controller").and_then(serde_json::Value::as_bool) == Some(true))
        .or_else(|| refs.first())?;
    let kind = r.get("kind")?.as_str()?;
    let name = r.get("name")?.as_str()?;
    (kind != "Node" && !name.is_empty()).then(|| (kind.to_owned(), name.to_owned()))
}

/// The group owner of an object: its top owner in the manifests, else the
/// owner named by the last one found; `None` when it has no owner.
fn top_owner(
    m: &Manifest,
    namespace: &str,
    index: &HashMap<(String, String, String), &Manifest>,
) -> Option<Owner> {
    let mut next = owner_ref(&m.value)?;
    let mut seen = HashSet::new();
    loop {
        let key = (next.0.clone(), namespace.to_owned(), next.1.clone());
        match index.get(&key) {
            Some(o) if seen.insert(key) => match owner_ref(&o.value) {
                Some(n) => next = n,
                None => break,
            },
            _ => break,
        }
    }
    Some(Owner {
        kind: next.0,
        name: next.1,
    })
}

/// A `Pod` object; none when it has finished.
fn read_pod(
    root: &Field<'_>,
    m: &Manifest,
    namespace: &str,
    index: &HashMap<(String, String, String), &Manifest>,
) -> Result<Option<Pod>, InventoryError> {
    let name = root
        .at("metadata.name")
        .required_str("every object has a name")?;
    let phase = root
        .at("status.phase")
        .str()?
        .unwrap_or("Running")
        .to_owned();
    if matches!(phase.as_str(), "Succeeded" | "Failed") {
        return Ok(None);
    }
    let ips = pod_ips(root)?;
    let (ports, images) = container_ports(root)?;
    Ok(Some(Pod {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        labels: root.at("metadata.labels").labels()?,
        node: None,
        ips,
        // Analysed like any pod (the network policy API leaves host-network pods undefined).
        host_network: false,
        ports,
        owner: top_owner(m, namespace, index),
        images,
        cvss: 0.0,
        phase,
    }))
}

/// The pod a workload stands for: `<name>-<kind>` with its template's labels
/// and container ports, owned by the workload's group owner.
fn template_pod(
    root: &Field<'_>,
    template: &str,
    m: &Manifest,
    namespace: &str,
    index: &HashMap<(String, String, String), &Manifest>,
) -> Result<Pod, InventoryError> {
    let name = root
        .at("metadata.name")
        .required_str("every object has a name")?;
    let t = root.at(template);
    if t.value().is_none() {
        return Err(t.error("is missing", "a workload needs a pod template"));
    }
    let (ports, images) = container_ports(&t)?;
    let owner = top_owner(m, namespace, index).unwrap_or_else(|| Owner {
        kind: m.kind().to_owned(),
        name: name.to_owned(),
    });
    Ok(Pod {
        namespace: namespace.to_owned(),
        name: format!("{name}-{}", m.kind().to_ascii_lowercase()),
        labels: t.at("metadata.labels").labels()?,
        node: None,
        ips: Vec::new(),
        host_network: false,
        ports,
        owner: Some(owner),
        images,
        cvss: 0.0,
        phase: "Running".to_owned(),
    })
}

/// A service an Ingress or Route sends to, and the port it names (none: all).
struct Backend {
    service: String,
    port: Option<TargetPort>,
}

/// A `port` that is a number or a name (`servicePort`, `targetPort`).
fn int_or_string(f: &Field<'_>) -> Result<Option<TargetPort>, InventoryError> {
    match f.value() {
        None => Ok(None),
        Some(serde_json::Value::String(s)) if s.is_empty() => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(match s.parse::<u16>() {
            Ok(n) => TargetPort::Number(n),
            Err(_) => TargetPort::Name(s.clone()),
        })),
        Some(_) => Ok(f.port()?.map(TargetPort::Number)),
    }
}

/// An Ingress backend (`service: {name, port: {name|number}}`, or the older
/// `serviceName`/`servicePort`); none for a resource backend.
fn backend(f: &Field<'_>) -> Result<Option<Backend>, InventoryError> {
    let svc = f.key("service");
    if svc.value().is_some() {
        let port = svc.key("port");
        let port = match port.key("name").str()? {
            Some(n) if !n.is_empty() => Some(TargetPort::Name(n.to_owned())),
            _ => port.key("number").port()?.map(TargetPort::Number),
        };
        return Ok(Some(Backend {
            service: svc
                .key("name")
                .required_str("a service backend names its service")?
                .to_owned(),
            port,
        }));
    }
    match f.key("serviceName").str()? {
        Some(name) if !name.is_empty() => Ok(Some(Backend {
            service: name.to_owned(),
            port: int_or_string(&f.key("servicePort"))?,
        })),
        _ => Ok(None),
    }
}

fn ingress_backends(root: &Field<'_>) -> Result<Vec<Backend>, InventoryError> {
    let spec = root.key("spec");
    let mut out = Vec::new();
    for f in [spec.key("defaultBackend"), spec.key("backend")] {
        if f.value().is_some() {
            out.extend(backend(&f)?);
        }
    }
    for rule in spec.key("rules").items()? {
        for path in rule.at("http.paths").items()? {
            out.extend(backend(&path.key("backend"))?);
        }
    }
    Ok(out)
}

fn route_backends(root: &Field<'_>) -> Result<Vec<Backend>, InventoryError> {
    let spec = root.key("spec");
    let port = int_or_string(&spec.at("port.targetPort"))?;
    let mut out = Vec::new();
    let mut targets = vec![spec.key("to")];
    targets.extend(spec.key("alternateBackends").items()?);
    for t in targets {
        if matches!(t.key("kind").str()?, None | Some("Service"))
            && let Some(name) = t.key("name").str()?.filter(|n| !n.is_empty())
        {
            out.push(Backend {
                service: name.to_owned(),
                port: port.clone(),
            });
        }
    }
    Ok(out)
}

/// Which pods the ingress controller reaches, on which TCP ports.
fn ingress(
    routes: &[(&Manifest, String, Vec<Backend>)],
    services: &[Service],
    pods: &[Pod],
) -> Vec<IngressBackend> {
    let mut out: BTreeMap<(String, String), (BTreeSet<u16>, BTreeSet<String>)> = BTreeMap::new();
    for (m, namespace, backends) in routes {
        let via = m.describe(true);
        for b in backends {
            let Some(svc) = services
                .iter()
                .find(|s| &s.namespace == namespace && s.name == b.service)
            else {
                continue;
            };
            // The pod port each matching service port leads to.
            let mut targets: Vec<&TargetPort> = Vec::new();
            for sp in &svc.ports {
                match &b.port {
                    None => targets.push(&sp.target),
                    Some(want) => {
                        let by_name =
                            matches!(want, TargetPort::Name(n) if sp.name.as_deref() == Some(n));
                        let by_number = matches!(want, TargetPort::Number(n) if *n == sp.port);
                        if by_name || by_number || &sp.target == want {
                            targets.push(&sp.target);
                            break;
                        }
                    }
                }
            }
            for pod in pods.iter().filter(|p| svc.selects(p)) {
                for t in &targets {
                    let Some(port) = pod.resolve_target(t, Proto::Tcp) else {
                        continue;
                    };
                    let declared = pod
                        .ports
                        .iter()
                        .any(|c| c.port == port && c.proto == Proto::Tcp);
                    if declared {
                        let e = out
                            .entry((pod.namespace.clone(), pod.name.clone()))
                            .or_default();
                        e.0.insert(port);
                        e.1.insert(via.clone());
                    }
                }
            }
        }
    }
    out.into_iter()
        .map(|((namespace, pod), (ports, via))| IngressBackend {
            namespace,
            pod,
            ports: ports.into_iter().collect(),
            via: via.into_iter().collect(),
        })
        .collect()
}
