//! Loading inventories from files: several clusters, Trivy reports, the
//! example cluster the example intent is written for, and load-time errors.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ringfence_inventory::model::{Os, Owner, Proto, ServiceType, TargetPort, TrafficPolicy};
use ringfence_inventory::{InventoryError, MANIFESTS_CLUSTER, digest, load, load_digested};

fn example(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../policies-example")
        .join(path)
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

#[test]
fn the_example_cluster_has_what_the_example_intent_needs() {
    let inventory = load(
        &[example("inventory/prod-eu1.json")],
        &[
            example("trivy/legacy-reports.json"),
            example("trivy/frontend.json"),
        ],
    )
    .unwrap();
    assert_eq!(inventory.clusters.len(), 1);
    let c = &inventory.clusters[0];
    assert_eq!(c.name, "prod-eu1");

    // Three nodes, one of them Windows (IPv4 only); Linux nodes are dual-stack.
    let nodes: Vec<(&str, Os)> = c.nodes.iter().map(|n| (n.name.as_str(), n.os)).collect();
    assert_eq!(
        nodes,
        [
            ("prod-eu1-linux-a", Os::Linux),
            ("prod-eu1-linux-b", Os::Linux),
            ("prod-eu1-win-a", Os::Windows)
        ]
    );
    assert_eq!(c.nodes[0].addresses, ips(&["10.10.0.11", "fd00:10::11"]));
    assert_eq!(c.nodes[2].addresses, ips(&["10.10.0.21"]));
    assert_eq!(c.nodes[2].pod_cidrs, ["10.244.3.0/24".parse().unwrap()]);

    let namespaces: Vec<&str> = c.namespaces.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        namespaces,
        [
            "default",
            "invoicing",
            "kube-system",
            "monitoring",
            "payments",
            "shop",
            "shop-data"
        ]
    );

    let pod = |ns: &str, prefix: &str| {
        let found: Vec<_> = c
            .pods
            .iter()
            .filter(|p| p.namespace == ns && p.name.starts_with(prefix))
            .collect();
        assert!(!found.is_empty(), "no pod {ns}/{prefix}*");
        found
    };

    // Host-network pods have their node's addresses.
    let exporters = pod("monitoring", "node-exporter-");
    assert_eq!(exporters.len(), 2);
    for e in &exporters {
        assert!(e.host_network);
        let node = c
            .nodes
            .iter()
            .find(|n| Some(&n.name) == e.node.as_ref())
            .unwrap();
        assert_eq!(e.ips, node.addresses);
        assert_eq!(
            e.owner,
            Some(Owner {
                kind: "DaemonSet".into(),
                name: "node-exporter".into()
            })
        );
    }

    // Every running Linux pod is dual-stack inside its node's pod CIDRs.
    for p in c
        .pods
        .iter()
        .filter(|p| p.phase == "Running" && !p.host_network)
    {
        let node = c
            .nodes
            .iter()
            .find(|n| Some(&n.name) == p.node.as_ref())
            .unwrap();
        let families = if node.os == Os::Linux { 2 } else { 1 };
        assert_eq!(p.ips.len(), families, "{}/{}", p.namespace, p.name);
        for ip in &p.ips {
            assert!(
                node.pod_cidrs.iter().any(|n| n.contains(ip)),
                "{ip} of {}",
                p.name
            );
        }
    }

    // Trivy: legacy-reports is critical (quarantined), the frontend medium, the rest unscored.
    assert_eq!(pod("shop", "legacy-reports-")[0].cvss, 9.8);
    for f in pod("shop", "frontend-") {
        assert_eq!(f.cvss, 5.3);
    }
    assert_eq!(pod("shop", "cart-")[0].cvss, 0.0);
    let critical: Vec<&str> = c
        .pods
        .iter()
        .filter(|p| p.cvss >= 9.0)
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(critical, ["legacy-reports-5c689d88bb-r8kfw"]);

    // Owners as `matrix` groups them.
    let frontends = pod("shop", "frontend-");
    assert_eq!(frontends.len(), 2);
    assert_ne!(
        frontends[0].node, frontends[1].node,
        "one frontend per Linux node"
    );
    for f in &frontends {
        assert_eq!(
            f.owner,
            Some(Owner {
                kind: "Deployment".into(),
                name: "frontend".into()
            })
        );
    }
    assert_eq!(
        pod("shop-data", "postgres-0")[0].owner,
        Some(Owner {
            kind: "StatefulSet".into(),
            name: "postgres".into()
        })
    );
    let loadgen = pod("shop", "loadgen-")[0];
    assert_eq!(loadgen.phase, "Succeeded");
    assert!(loadgen.ips.is_empty());
    assert_eq!(
        loadgen.owner,
        Some(Owner {
            kind: "Job".into(),
            name: "loadgen-28930140".into()
        })
    );
    let debug = pod("default", "debug-shell")[0];
    assert_eq!(debug.owner, None);
    assert_eq!(debug.labels["security.ringfence.io/quarantine"], "true");
    let invoicing = pod("invoicing", "invoicing-")[0];
    assert_eq!(invoicing.node.as_deref(), Some("prod-eu1-win-a"));
    assert_eq!(invoicing.ips, ips(&["10.244.3.11"]));

    // The LoadBalancer: node port, ingress address, and a named target port.
    let frontend = c
        .services
        .iter()
        .find(|s| s.namespace == "shop" && s.name == "frontend")
        .unwrap();
    assert_eq!(frontend.kind, ServiceType::LoadBalancer);
    assert_eq!(frontend.cluster_ips, ips(&["10.96.10.10"]));
    assert_eq!(frontend.lb_ingress, ips(&["198.51.100.200"]));
    assert_eq!(frontend.external_traffic_policy, TrafficPolicy::Cluster);
    let http = &frontend.ports[0];
    assert_eq!((http.port, http.node_port), (80, Some(30080)));
    assert_eq!(http.target, TargetPort::Name("http".into()));
    for f in &frontends {
        assert!(frontend.selects(f));
        assert_eq!(f.resolve_target(&http.target, Proto::Tcp), Some(8080));
    }

    let svc = |ns: &str, name: &str| {
        c.services
            .iter()
            .find(|s| s.namespace == ns && s.name == name)
            .unwrap()
    };
    let invoicing_svc = svc("invoicing", "invoicing");
    assert_eq!(invoicing_svc.kind, ServiceType::NodePort);
    assert_eq!(invoicing_svc.ports[0].node_port, Some(31443));
    assert_eq!(invoicing_svc.external_traffic_policy, TrafficPolicy::Local);
    assert!(
        svc("shop-data", "postgres").cluster_ips.is_empty(),
        "headless"
    );
    assert!(svc("default", "kubernetes").selector.is_empty());
    let dns = svc("kube-system", "kube-dns");
    let dns_ports: Vec<(Proto, u16)> = dns.ports.iter().map(|p| (p.proto, p.port)).collect();
    assert!(dns_ports.contains(&(Proto::Udp, 53)) && dns_ports.contains(&(Proto::Tcp, 53)));
    assert_eq!(c.pods.iter().filter(|p| dns.selects(p)).count(), 2);
    // Every service with a selector has backing pods, and its target ports resolve in them.
    for s in c.services.iter().filter(|s| !s.selector.is_empty()) {
        let backends: Vec<_> = c.pods.iter().filter(|p| s.selects(p)).collect();
        assert!(
            !backends.is_empty(),
            "{}/{} has no pods",
            s.namespace,
            s.name
        );
        for p in &s.ports {
            for b in &backends {
                let port = b.resolve_target(&p.target, p.proto);
                assert!(
                    b.ports
                        .iter()
                        .any(|cp| Some(cp.port) == port && cp.proto == p.proto),
                    "{}/{} port {} does not resolve in {}",
                    s.namespace,
                    s.name,
                    p.port,
                    b.name
                );
            }
        }
    }
}

fn write(dir: &Path, name: &str, json: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, json).unwrap();
    path
}

const EMPTY: &str =
    r#"{"apiVersion": "v1", "kind": "List", "items": [], "metadata": {"resourceVersion": ""}}"#;

fn named(cluster: &str) -> String {
    format!(
        r#"{{"apiVersion": "v1", "kind": "List", "items": [],
            "metadata": {{"annotations": {{"ringfence.io/cluster": "{cluster}"}}}}}}"#
    )
}

#[test]
fn several_clusters_are_sorted_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        write(dir.path(), "west.json", EMPTY),
        write(dir.path(), "east.json", EMPTY),
        write(dir.path(), "x.json", &named("central")),
    ];
    let inventory = load(&files, &[]).unwrap();
    let names: Vec<&str> = inventory.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["central", "east", "west"]);
}

#[test]
fn two_files_for_one_cluster_is_an_error_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let first = write(dir.path(), "prod-eu1.json", EMPTY);
    let second = write(dir.path(), "backup.json", &named("prod-eu1"));
    let message = load(&[first.clone(), second.clone()], &[])
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        format!(
            "cluster `prod-eu1` is described by both {} and {}; give each cluster one file, or \
             set distinct `ringfence.io/cluster` annotations on their Lists",
            first.display(),
            second.display()
        )
    );
}

#[test]
fn unreadable_files_and_bad_reports_are_all_reported() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let good = write(dir.path(), "good.json", EMPTY);
    let bad_trivy = write(dir.path(), "scan.json", r#"{"SchemaVersion": 2}"#);
    let err = load(&[missing.clone(), good], std::slice::from_ref(&bad_trivy)).unwrap_err();
    let problems: Vec<String> = err.problems().iter().map(|p| p.to_string()).collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].starts_with(&format!("{}: cannot read it: ", missing.display())),
        "{}",
        problems[0]
    );
    assert!(matches!(err.problems()[0], InventoryError::Read { .. }));
    assert!(
        problems[1].starts_with(&format!(
            "{}: the Trivy report: `ArtifactName` is missing; scan a container image",
            bad_trivy.display()
        )),
        "{}",
        problems[1]
    );
}

#[test]
fn digest_covers_the_example_inventory() {
    let file = example("inventory/prod-eu1.json");
    let d = digest(std::slice::from_ref(&file)).unwrap();
    assert_eq!(d.len(), 64);
    assert!(
        d.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert_eq!(digest(&[file]).unwrap(), d, "stable");
}

/// A List of one Namespace and one Pod, with `extra` items after them.
fn pod_list(extra: &str) -> String {
    format!(
        r#"{{"apiVersion": "v1", "kind": "List", "items": [
            {{"apiVersion": "v1", "kind": "Namespace", "metadata": {{"name": "shop"}}}},
            {{"apiVersion": "v1", "kind": "Pod",
              "metadata": {{"name": "web-1", "namespace": "shop", "labels": {{"app": "web"}}}},
              "spec": {{"nodeName": "n1", "containers": [{{"name": "c", "image": "web:1"}}]}},
              "status": {{"phase": "Running", "podIP": "10.0.0.7"}}}}{extra}]}}"#
    )
}

#[test]
fn a_list_is_a_cluster_when_it_has_a_node_and_manifests_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    // No Node, no annotation: objects written as a List, read as manifests.
    let objects = write(dir.path(), "objects.json", &pod_list(""));
    let inv = load(std::slice::from_ref(&objects), &[]).unwrap();
    let names: Vec<&str> = inv.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, [MANIFESTS_CLUSTER]);
    assert_eq!(inv.clusters[0].pods[0].name, "web-1");
    // With a Node it is kubectl's export of the cluster the file is named after.
    let node = r#", {"kind": "Node", "metadata": {"name": "n1"},
        "status": {"nodeInfo": {"operatingSystem": "linux"},
                   "addresses": [{"type": "InternalIP", "address": "192.168.0.1"}]}}"#;
    let cluster = write(dir.path(), "lab.json", &pod_list(node));
    let inv = load(std::slice::from_ref(&cluster), &[]).unwrap();
    let c = &inv.clusters[..];
    assert_eq!((c.len(), c[0].name.as_str()), (1, "lab"));
    assert_eq!((c[0].nodes.len(), c[0].pods.len()), (1, 1));
    assert_eq!(c[0].pods[0].ips, ips(&["10.0.0.7"]));
    // A Node the reader refuses (no OS) is still a cluster's, and explained.
    let bad = write(
        dir.path(),
        "bad.json",
        &pod_list(r#", {"kind": "Node", "metadata": {"name": "n1"}}"#),
    );
    let message = load(&[bad], &[]).unwrap_err().to_string();
    assert!(message.contains("kubernetes.io/os"), "{message}");
}

#[test]
fn load_digested_hashes_what_it_read_as_digest_does() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "west.json", EMPTY);
    let b = write(dir.path(), "objects.json", &pod_list(""));
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    write(
        &manifests,
        "ns.yaml",
        "kind: Namespace\nmetadata:\n  name: extra\n",
    );
    let files = [a, b, manifests, example("inventory/prod-eu1.json")];
    let (inv, sha256) = load_digested(&files, &[]).unwrap();
    assert_eq!(sha256, digest(&files).unwrap());
    assert_eq!(inv, load(&files, &[]).unwrap());
    let (_, reversed) = load_digested(&[files[1].clone(), files[0].clone()], &[]).unwrap();
    assert_ne!(reversed, sha256, "order counts");
    let err = load_digested(&[dir.path().join("missing.json")], &[]).unwrap_err();
    assert!(matches!(err, InventoryError::Read { .. }), "{err}");
}
