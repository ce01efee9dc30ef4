//! Reading real-shaped kubectl output, and every way it can be wrong.

use std::net::IpAddr;

use serde_json::{Value, json};

use super::*;
use crate::model::Owner;

const LAB: &str = include_str!("../../tests/fixtures/lab.json");

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn lab() -> Cluster {
    parse_list(LAB, "inventories/lab.json").unwrap()
}

#[test]
fn cluster_is_named_after_the_file_stem_without_the_annotation() {
    let c = lab();
    assert_eq!(c.name, "lab");
    assert_eq!(c.source, "inventories/lab.json");
}

#[test]
fn cluster_annotation_names_the_cluster() {
    let mut doc: Value = serde_json::from_str(LAB).unwrap();
    doc["metadata"]["annotations"] = json!({ CLUSTER_ANNOTATION: "lab-west" });
    let c = parse_list(&doc.to_string(), "inventories/lab.json").unwrap();
    assert_eq!(c.name, "lab-west");
}

#[test]
fn nodes_read_os_addresses_and_pod_cidrs() {
    let c = lab();
    let names: Vec<&str> = c.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["lab-1", "lab-2"]);
    let n1 = &c.nodes[0];
    assert_eq!(n1.os, Os::Linux);
    // InternalIPs first, then ExternalIPs; hostnames ignored.
    assert_eq!(
        n1.addresses,
        ips(&["192.168.49.2", "fd00:49::2", "203.0.113.7"])
    );
    assert_eq!(
        n1.pod_cidrs,
        [
            "10.244.0.0/24".parse().unwrap(),
            "fd00:10:244::/64".parse().unwrap()
        ]
    );
    assert_eq!(n1.labels["node-role.kubernetes.io/control-plane"], "");
    // Only a label for the OS, only `podCIDR`.
    let n2 = &c.nodes[1];
    assert_eq!(n2.os, Os::Linux);
    assert_eq!(n2.addresses, ips(&["192.168.49.3"]));
    assert_eq!(n2.pod_cidrs, ["10.244.1.0/24".parse().unwrap()]);
}

#[test]
fn namespaces_are_sorted_with_labels() {
    let c = lab();
    let names: Vec<&str> = c.namespaces.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["kube-system", "web"]);
    assert_eq!(c.namespaces[1].labels["team"], "storefront");
}

/// `namespace/name` of each.
fn qualified<'a>(objects: impl Iterator<Item = (&'a String, &'a String)>) -> Vec<String> {
    objects.map(|(ns, name)| format!("{ns}/{name}")).collect()
}

#[test]
fn pods_are_sorted_and_read_fully() {
    let c = lab();
    assert_eq!(
        qualified(c.pods.iter().map(|p| (&p.namespace, &p.name))),
        [
            "kube-system/etcd-lab-1",
            "kube-system/kube-proxy-8xk2m",
            "web/migrate-28930140-7q2xw",
            "web/web-6f7c9d8b4f-q8w7e",
            "web/web-6f7c9d8b4f-x2k9p",
        ]
    );
    let web = &c.pods[4];
    assert_eq!(web.node.as_deref(), Some("lab-2"));
    assert_eq!(web.ips, ips(&["10.244.1.17", "fd00:10:244:1::17"]));
    assert!(!web.host_network);
    assert_eq!(web.phase, "Running");
    assert_eq!(
        web.owner,
        Some(Owner {
            kind: "Deployment".into(),
            name: "web".into()
        })
    );
    // Ports of the containers and of the native sidecar, not of the plain init container.
    assert_eq!(
        web.ports,
        [
            ContainerPort {
                name: Some("http".into()),
                port: 8080,
                proto: Proto::Tcp
            },
            ContainerPort {
                name: Some("statsd".into()),
                port: 8125,
                proto: Proto::Udp
            },
            ContainerPort {
                name: Some("envoy-prom".into()),
                port: 15090,
                proto: Proto::Tcp
            },
        ]
    );
    assert_eq!(
        web.images,
        [
            "registry.example.com/web/web:1.8.0",
            "envoyproxy/envoy:v1.30.1"
        ]
    );
    assert_eq!(web.cvss, 0.0);
}

#[test]
fn host_network_pods_have_their_nodes_addresses() {
    let c = lab();
    // From status.podIPs, which Kubernetes sets to the host's address.
    let proxy = &c.pods[1];
    assert!(proxy.host_network);
    assert_eq!(proxy.ips, ips(&["192.168.49.2"]));
    assert_eq!(proxy.owner.as_ref().unwrap().kind, "DaemonSet");
    // No podIPs yet: the node's InternalIPs.
    let etcd = &c.pods[0];
    assert!(etcd.host_network);
    assert_eq!(etcd.ips, ips(&["192.168.49.2", "fd00:49::2"]));
    assert_eq!(
        etcd.owner,
        Some(Owner {
            kind: "Node".into(),
            name: "lab-1".into()
        })
    );
}

#[test]
fn finished_and_pending_pods_have_no_addresses() {
    let c = lab();
    let job = &c.pods[2];
    assert_eq!(job.phase, "Succeeded");
    assert!(job.ips.is_empty(), "a finished pod's IP may be reused");
    assert_eq!(
        job.owner,
        Some(Owner {
            kind: "Job".into(),
            name: "migrate-28930140".into()
        })
    );
    let pending = &c.pods[3];
    assert_eq!(pending.phase, "Pending");
    assert_eq!(pending.node, None);
    assert!(pending.ips.is_empty());
}

#[test]
fn services_read_types_ports_and_addresses() {
    let c = lab();
    assert_eq!(
        qualified(c.services.iter().map(|s| (&s.namespace, &s.name))),
        [
            "default/kubernetes",
            "web/billing-db",
            "web/web",
            "web/web-headless"
        ]
    );

    let api = &c.services[0];
    assert_eq!(api.kind, ServiceType::ClusterIp);
    assert!(api.selector.is_empty());
    assert_eq!(api.ports[0].target, TargetPort::Number(6443));

    let external = &c.services[1];
    assert_eq!(external.kind, ServiceType::ExternalName);
    assert!(external.cluster_ips.is_empty() && external.ports.is_empty());

    let web = &c.services[2];
    assert_eq!(web.kind, ServiceType::LoadBalancer);
    assert_eq!(web.cluster_ips, ips(&["10.96.44.10", "fd00:10:96::2c0a"]));
    assert_eq!(
        web.lb_ingress,
        ips(&["198.51.100.80"]),
        "hostname-only ingress skipped"
    );
    assert_eq!(web.external_traffic_policy, TrafficPolicy::Local);
    assert_eq!(
        web.ports,
        [
            ServicePort {
                name: Some("http".into()),
                proto: Proto::Tcp,
                port: 80,
                target: TargetPort::Name("http".into()),
                node_port: Some(31080),
            },
            ServicePort {
                name: Some("statsd".into()),
                proto: Proto::Udp,
                port: 8125,
                target: TargetPort::Number(8125),
                node_port: Some(31125),
            },
        ]
    );
    // The named target port resolves in the backing pods.
    let pod = &c.pods[4];
    assert!(web.selects(pod));
    assert_eq!(
        pod.resolve_target(&web.ports[0].target, Proto::Tcp),
        Some(8080)
    );

    let headless = &c.services[3];
    assert!(headless.cluster_ips.is_empty());
    // Without targetPort, the port itself.
    assert_eq!(headless.ports[0].target, TargetPort::Number(8080));
    assert_eq!(headless.external_traffic_policy, TrafficPolicy::Cluster);
}

#[test]
fn output_does_not_depend_on_item_order() {
    let mut doc: Value = serde_json::from_str(LAB).unwrap();
    doc["items"].as_array_mut().unwrap().reverse();
    assert_eq!(
        parse_list(&doc.to_string(), "inventories/lab.json").unwrap(),
        lab()
    );
}

/// Parses the lab fixture after `edit`, expecting an error whose message starts with `expected`.
fn rejects(edit: impl FnOnce(&mut Value), expected: &str) {
    let mut doc: Value = serde_json::from_str(LAB).unwrap();
    edit(&mut doc);
    let err = parse_list(&serde_json::to_string_pretty(&doc).unwrap(), "inv/lab.json")
        .expect_err(expected);
    let message = err.to_string();
    assert!(
        message.starts_with(expected),
        "got:      {message}\nexpected: {expected}"
    );
    assert!(message.contains("; "), "no advice in: {message}");
}

/// Set one field of one item (a dotted path) and expect `expected`.
fn rejects_field(kind: &str, name: &str, field: &str, value: Value, expected: &str) {
    rejects(
        |d| {
            let mut v = item(d, kind, name);
            for key in field.split('.') {
                v = match key.parse::<usize>() {
                    Ok(i) => &mut v[i],
                    Err(_) => &mut v[key],
                };
            }
            *v = value;
        },
        expected,
    );
}

fn item<'a>(doc: &'a mut Value, kind: &str, name: &str) -> &'a mut Value {
    doc["items"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|i| i["kind"] == kind && i["metadata"]["name"] == name)
        .unwrap()
}

#[test]
fn missing_required_fields_are_named() {
    rejects(
        |d| {
            item(d, "Pod", "web-6f7c9d8b4f-x2k9p")["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("namespace");
        },
        "inv/lab.json: Pod web-6f7c9d8b4f-x2k9p: `metadata.namespace` is missing; pods are namespaced: export with `-A`",
    );
    rejects(
        |d| {
            item(d, "Service", "web")["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("namespace");
        },
        "inv/lab.json: Service web: `metadata.namespace` is missing; services are namespaced: export with `-A`",
    );
    rejects(
        |d| {
            item(d, "Node", "lab-2")["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("name");
        },
        "inv/lab.json: Node items[1]: `metadata.name` is missing; kubectl always writes it",
    );
    rejects(
        |d| {
            item(d, "Service", "web")["metadata"]["name"] = json!("");
        },
        "inv/lab.json: Service items[10]: `metadata.name` is empty; ",
    );
    rejects(
        |d| {
            item(d, "Node", "lab-2")["metadata"]["labels"]
                .as_object_mut()
                .unwrap()
                .remove("kubernetes.io/os");
        },
        "inv/lab.json: Node lab-2: `status.nodeInfo.operatingSystem` is missing, and so is the label `kubernetes.io/os`; ",
    );
    rejects(
        |d| {
            item(d, "Pod", "web-6f7c9d8b4f-x2k9p")["spec"]["containers"][0]["ports"][1]
                .as_object_mut()
                .unwrap()
                .remove("containerPort");
        },
        "inv/lab.json: Pod web/web-6f7c9d8b4f-x2k9p: `spec.containers[0].ports[1].containerPort` is missing; ",
    );
    rejects(
        |d| {
            d["items"][3].as_object_mut().unwrap().remove("kind");
        },
        "inv/lab.json: items[3]: `kind` is missing or not a string; ",
    );
}

/// Node, pod, namespace, service and cluster names become file and
/// directory names (`render`, `compile`, `discover`): a name that is not
/// Kubernetes' is refused where it is read, with the field and the rule.
#[test]
fn names_that_could_be_paths_are_refused() {
    // (kind, item, field, message): `{bad}` stands for the name, `{bad:?}`
    // for it quoted.
    let fields = [
        (
            "Node",
            "lab-2",
            "/metadata/name",
            "Node {bad}: `metadata.name` is {bad:?}, not a valid Node name (lowercase letters",
        ),
        (
            "Pod",
            "web-6f7c9d8b4f-x2k9p",
            "/spec/nodeName",
            "Pod web/web-6f7c9d8b4f-x2k9p: `spec.nodeName` is {bad:?}, not a valid Node name",
        ),
        (
            "Namespace",
            "web",
            "/metadata/name",
            "Namespace {bad}: `metadata.name` is {bad:?}, not a valid Namespace name",
        ),
        (
            "Service",
            "web",
            "/metadata/namespace",
            "Service {bad}/web: `metadata.namespace` is {bad:?}, not a valid Namespace name",
        ),
        (
            "Service",
            "web",
            "/metadata/name",
            "Service web/{bad}: `metadata.name` is {bad:?}, not a valid Service name",
        ),
    ];
    for bad in ["../../escaped-node", "/abs/path", "..", "a/b", "Upper"] {
        for (kind, name, field, message) in fields {
            let message = message
                .replace("{bad:?}", &format!("{bad:?}"))
                .replace("{bad}", bad);
            rejects(
                |d| *item(d, kind, name).pointer_mut(field).unwrap() = json!(bad),
                &format!("inv/lab.json: {message}"),
            );
        }
    }
    for bad in ["..", ".", "../x", "/abs/path", "a b"] {
        rejects(
            |d| d["metadata"]["annotations"] = json!({ CLUSTER_ANNOTATION: bad }),
            &format!(
                "inv/lab.json: the List: `metadata.annotations.ringfence.io/cluster` is {bad:?}, not a usable cluster name; a cluster name has letters"
            ),
        );
    }
    // Without the annotation, the file name must make a usable name.
    let err = parse_list(LAB, "inv/my lab.json").unwrap_err().to_string();
    assert!(
        err.contains("is missing and the file name \"my lab\" is not a usable cluster name"),
        "{err}"
    );
}

/// Two pods with one address were accepted silently, and each got the
/// other's rules; host-network pods do share their node's.
#[test]
fn two_pods_with_one_address_are_refused() {
    rejects(
        |d| {
            let ip = item(d, "Pod", "web-6f7c9d8b4f-x2k9p")["status"]["podIPs"][0]["ip"].clone();
            item(d, "Pod", "web-6f7c9d8b4f-q8w7e")["status"]["podIPs"] = json!([{ "ip": ip }]);
            item(d, "Pod", "web-6f7c9d8b4f-q8w7e")["status"]["podIP"] = ip;
        },
        "inv/lab.json: Pod web/web-6f7c9d8b4f-q8w7e and Pod web/web-6f7c9d8b4f-x2k9p both have the address 10.244.1.17; ",
    );
    let c = lab();
    let node_ip = ips(&["192.168.49.2"])[0];
    let sharing = c
        .pods
        .iter()
        .filter(|p| p.host_network && p.ips.contains(&node_ip))
        .count();
    assert_eq!(
        sharing, 2,
        "the lab's two host-network pods share lab-1's address"
    );
}

#[test]
fn unparsable_addresses_are_named() {
    for (kind, name, field, value, expected) in [
        (
            "Pod",
            "web-6f7c9d8b4f-x2k9p",
            "status.podIPs.1.ip",
            json!("fd00::zz"),
            "inv/lab.json: Pod web/web-6f7c9d8b4f-x2k9p: `status.podIPs[1].ip` is not an IP address: \"fd00::zz\"; write an IPv4 or IPv6 address",
        ),
        (
            "Node",
            "lab-1",
            "status.addresses.2.address",
            json!("203.0.113.300"),
            "inv/lab.json: Node lab-1: `status.addresses[2].address` is not an IP address: \"203.0.113.300\"; ",
        ),
        (
            "Node",
            "lab-1",
            "spec.podCIDRs.1",
            json!("fd00:10:244::/129"),
            "inv/lab.json: Node lab-1: `spec.podCIDRs[1]` is not an address prefix: \"fd00:10:244::/129\"; ",
        ),
        (
            "Service",
            "web",
            "spec.clusterIPs.0",
            json!("10.96.44"),
            "inv/lab.json: Service web/web: `spec.clusterIPs[0]` is not an IP address: \"10.96.44\"; ",
        ),
        (
            "Service",
            "web",
            "status.loadBalancer.ingress.0.ip",
            json!("lb"),
            "inv/lab.json: Service web/web: `status.loadBalancer.ingress[0].ip` is not an IP address: \"lb\"; ",
        ),
    ] {
        rejects_field(kind, name, field, value, expected);
    }
}

#[test]
fn ports_out_of_range_are_named() {
    for (kind, name, field, value, expected) in [
        (
            "Service",
            "web",
            "spec.ports.0.nodePort",
            json!(70000),
            "inv/lab.json: Service web/web: `spec.ports[0].nodePort` is out of range: 70000; ports are whole numbers from 1 to 65535",
        ),
        (
            "Service",
            "web",
            "spec.ports.1.targetPort",
            json!(0),
            "inv/lab.json: Service web/web: `spec.ports[1].targetPort` is out of range: 0; ",
        ),
        (
            "Service",
            "kubernetes",
            "spec.ports.0.port",
            json!("443"),
            "inv/lab.json: Service default/kubernetes: `spec.ports[0].port` is a string, expected a port number; kubectl writes it with that type",
        ),
    ] {
        rejects_field(kind, name, field, value, expected);
    }
    rejects(
        |d| {
            item(d, "Pod", "kube-proxy-8xk2m")["spec"]["containers"][0]["ports"] =
                json!([{"containerPort": -1}])
        },
        "inv/lab.json: Pod kube-system/kube-proxy-8xk2m: `spec.containers[0].ports[0].containerPort` is out of range: -1; ",
    );
}

#[test]
fn bad_values_are_named() {
    for (kind, name, field, value, expected) in [
        (
            "Service",
            "web",
            "spec.type",
            json!("Ingress"),
            "inv/lab.json: Service web/web: `spec.type` is \"Ingress\"; use ClusterIP, NodePort, LoadBalancer or ExternalName",
        ),
        (
            "Service",
            "web",
            "spec.externalTrafficPolicy",
            json!("Global"),
            "inv/lab.json: Service web/web: `spec.externalTrafficPolicy` is \"Global\"; use Cluster or Local",
        ),
        (
            "Service",
            "web",
            "spec.ports.0.protocol",
            json!("ICMP"),
            "inv/lab.json: Service web/web: `spec.ports[0].protocol` is \"ICMP\"; use TCP, UDP or SCTP",
        ),
        (
            "Node",
            "lab-1",
            "status.nodeInfo.operatingSystem",
            json!("plan9"),
            "inv/lab.json: Node lab-1: `status.nodeInfo.operatingSystem` is \"plan9\", which ringfence has no backend for; ",
        ),
        (
            "Namespace",
            "web",
            "metadata.labels.team",
            json!(7),
            "inv/lab.json: Namespace web: `metadata.labels.team` is a number, expected a string; ",
        ),
        (
            "Pod",
            "kube-proxy-8xk2m",
            "spec.hostNetwork",
            json!("yes"),
            "inv/lab.json: Pod kube-system/kube-proxy-8xk2m: `spec.hostNetwork` is a string, expected true or false; ",
        ),
        (
            "Service",
            "web",
            "spec.ports.0.targetPort",
            json!(""),
            "inv/lab.json: Service web/web: `spec.ports[0].targetPort` is neither a port number nor a container port name; ",
        ),
    ] {
        rejects_field(kind, name, field, value, expected);
    }
    rejects(
        |d| {
            item(d, "Pod", "web-6f7c9d8b4f-x2k9p")["metadata"]["ownerReferences"][0]
                .as_object_mut()
                .unwrap()
                .remove("name");
        },
        "inv/lab.json: Pod web/web-6f7c9d8b4f-x2k9p: `metadata.ownerReferences[0].name` is missing; ",
    );
    rejects(
        |d| d["metadata"]["annotations"] = json!({ CLUSTER_ANNOTATION: " " }),
        "inv/lab.json: the List: `metadata.annotations.ringfence.io/cluster` is empty; ",
    );
}

#[test]
fn duplicates_are_named() {
    rejects(
        |d| {
            let copy = item(d, "Service", "web").clone();
            d["items"].as_array_mut().unwrap().push(copy);
        },
        "inv/lab.json: Service web/web appears twice in the List; ",
    );
}

#[test]
fn every_problem_in_the_file_is_reported() {
    let mut doc: Value = serde_json::from_str(LAB).unwrap();
    item(&mut doc, "Pod", "kube-proxy-8xk2m")["status"]["podIPs"][0]["ip"] = json!("x");
    item(&mut doc, "Service", "web")["spec"]["ports"][0]["port"] = json!(0);
    let err = parse_list(&doc.to_string(), "inv/lab.json").unwrap_err();
    let problems: Vec<String> = err.problems().iter().map(|p| p.to_string()).collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].starts_with("inv/lab.json: Service web/web: `spec.ports[0].port`"));
    assert!(
        problems[1]
            .starts_with("inv/lab.json: Pod kube-system/kube-proxy-8xk2m: `status.podIPs[0].ip`")
    );
    assert!(err.to_string().starts_with("2 problems:\n  inv/lab.json: "));
}

#[test]
fn documents_that_are_not_lists_are_refused() {
    let cases = [
        (
            "{\n  \"kind\": \"List\",\n  \"items\": [,]\n}",
            "inv/lab.json:3:13: not valid JSON: expected value; give the output of `kubectl get nodes,namespaces,pods,services -A -o json`",
        ),
        (
            "[]",
            "inv/lab.json: not a kubectl List: not a JSON object; ",
        ),
        (
            r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}"#,
            "inv/lab.json: not a kubectl List: kind is \"Pod\"; ",
        ),
        (
            r#"{"items": []}"#,
            "inv/lab.json: not a kubectl List: it has no `kind`; ",
        ),
        (
            r#"{"kind": "List", "items": {}}"#,
            "inv/lab.json: the List: `items` is missing or not an array; ",
        ),
    ];
    for (json, expected) in cases {
        let message = parse_list(json, "inv/lab.json").unwrap_err().to_string();
        assert!(
            message.starts_with(expected),
            "got:      {message}\nexpected: {expected}"
        );
    }
}

#[test]
fn an_empty_list_is_an_empty_cluster() {
    let c = parse_list(
        r#"{"apiVersion": "v1", "kind": "List", "items": [], "metadata": {"resourceVersion": ""}}"#,
        "empty.json",
    )
    .unwrap();
    assert_eq!(
        c,
        Cluster {
            name: "empty".into(),
            source: "empty.json".into(),
            ..Cluster::default()
        }
    );
}

/// The lab fixture after `edit`, as text.
fn edited(edit: impl FnOnce(&mut Value)) -> String {
    let mut doc: Value = serde_json::from_str(LAB).unwrap();
    edit(&mut doc);
    doc.to_string()
}

#[test]
fn the_typed_reader_reads_what_the_general_reader_reads() {
    let docs = [
        LAB.to_owned(),
        edited(|d| d["items"].as_array_mut().unwrap().reverse()),
        edited(|d| d["metadata"]["annotations"] = json!({ CLUSTER_ANNOTATION: "lab-west" })),
        // null is absent, as Kubernetes has it.
        edited(|d| item(d, "Pod", "web-6f7c9d8b4f-x2k9p")["spec"]["hostNetwork"] = Value::Null),
    ];
    for doc in docs {
        let general = read_list(&doc, "inventories/lab.json").unwrap();
        assert_eq!(
            fast::parse(&doc, "inventories/lab.json"),
            Some((general, true))
        );
    }
}

/// The lab fixture with `n` more pods (copies of one, each with its own name
/// and address), enough for the typed reader to read in several runs.
fn with_pods(n: u32) -> Value {
    let mut doc: Value = serde_json::from_str(LAB).unwrap();
    let pod = item(&mut doc, "Pod", "web-6f7c9d8b4f-x2k9p").clone();
    let items = doc["items"].as_array_mut().unwrap();
    for i in 0..n {
        let mut p = pod.clone();
        p["metadata"]["name"] = json!(format!("web-6f7c9d8b4f-{i:05}"));
        let ip = format!("10.200.{}.{}", i / 250, i % 250 + 1);
        p["status"]["podIP"] = json!(ip);
        p["status"]["podIPs"] = json!([{ "ip": ip }]);
        items.insert(items.len() / 2, p);
    }
    doc
}

#[test]
fn items_read_in_parallel_runs_keep_their_order_and_refusals() {
    let doc = with_pods(3 * 512 + 7).to_string();
    let general = read_list(&doc, "inventories/lab.json").unwrap();
    assert_eq!(
        fast::parse(&doc, "inventories/lab.json"),
        Some((general, true))
    );
    // A refused item in a late run: the general reader explains it.
    let mut doc = with_pods(3 * 512 + 7);
    doc["items"][1400]["status"]["podIPs"][0]["ip"] = json!("10.200.999.1");
    let doc = doc.to_string();
    assert_eq!(fast::parse(&doc, "inventories/lab.json"), None);
    let err = parse_list(&doc, "inventories/lab.json").unwrap_err();
    assert!(err.to_string().contains("`status.podIPs[0].ip`"), "{err}");
}

#[test]
fn lists_the_typed_reader_leaves_alone_read_as_before() {
    let docs = [
        // Another kind whose fields have other types than a Service's.
        edited(|d| {
            d["items"].as_array_mut().unwrap().push(json!({
                "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "shop"},
                "spec": {"selector": {"matchLabels": {"app": "web"}}}
            }))
        }),
        // A null element of a list.
        edited(|d| {
            let pod = item(d, "Pod", "web-6f7c9d8b4f-x2k9p");
            pod["status"]["podIPs"]
                .as_array_mut()
                .unwrap()
                .push(Value::Null);
        }),
        // A duplicated member: the last one counts.
        LAB.replacen(
            "\"kind\": \"List\"",
            "\"kind\": \"Nope\", \"kind\": \"List\"",
            1,
        ),
    ];
    for doc in docs {
        assert_eq!(fast::parse(&doc, "inventories/lab.json"), None, "{doc}");
        assert_eq!(
            parse_list(&doc, "inventories/lab.json").unwrap(),
            read_list(&doc, "inventories/lab.json").unwrap()
        );
    }
}
