//! `follow` against the testkit's API server (real HTTP/1.1 list and
//! chunked watch on 127.0.0.1), its changes applied to a `LiveCluster` as
//! `watch --kube` applies them: creates, changes and deletes arrive by the
//! watch; a `410 Gone` relists and drops a pod deleted in the gap; a
//! dropped connection resumes the watch without a relist; refused
//! credentials are reported, naming the server.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use ringfence_inventory::Scores;
use ringfence_inventory::events::{Incoming, LiveCluster};
use ringfence_kube::{FollowOptions, Following, follow};
use ringfence_testkit::kubeapi::{Edit, KubeApi};
use serde_json::{Value, json};

const TOKEN: &str = "t0k3n";

fn node(name: &str, ip: &str) -> Value {
    json!({
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}},
        "spec": {"podCIDR": "10.244.1.0/24"},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]}
    })
}

fn namespace(name: &str) -> Value {
    json!({"kind": "Namespace", "metadata": {"name": name}})
}

fn pod(name: &str, ip: &str) -> Value {
    json!({
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"),
                     "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "web:1"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}
    })
}

fn service() -> Value {
    json!({
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP"}],
                 "clusterIP": "10.96.0.10"}
    })
}

/// A server holding a node, a namespace, a service and pods `a` and `b`.
fn server() -> KubeApi {
    let api = KubeApi::start(TOKEN);
    api.put([
        node("n1", "10.30.0.11"),
        namespace("shop"),
        service(),
        pod("a", "10.244.1.2"),
        pod("b", "10.244.1.3"),
    ]);
    api
}

fn start(api: &KubeApi, dir: &Path, token: &str) -> Following {
    let kubeconfig = dir.join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, "lab", token);
    follow(&FollowOptions {
        context: None,
        kubeconfig: Some(kubeconfig),
    })
    .unwrap()
}

/// The followed cluster: what the feed delivered, applied.
struct Fed {
    f: Following,
    cluster: LiveCluster,
    problems: Vec<String>,
}

impl Fed {
    fn new(f: Following) -> Fed {
        let mut cluster = LiveCluster::new("lab", &f.server, Scores::default());
        cluster.begin_relist(None);
        Fed {
            f,
            cluster,
            problems: Vec::new(),
        }
    }

    /// Pod name → addresses.
    fn pods(&self) -> BTreeMap<String, Vec<String>> {
        self.cluster
            .cluster()
            .pods
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.ips.iter().map(|a| a.to_string()).collect(),
                )
            })
            .collect()
    }

    /// Apply what comes until no relist is open and the pods are `want`.
    fn until(&mut self, want: &[(&str, &str)]) {
        let want: BTreeMap<String, Vec<String>> = want
            .iter()
            .map(|(n, ip)| (n.to_string(), vec![ip.to_string()]))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.cluster.relisting() || self.pods() != want {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.f.changes.recv_timeout(left) {
                Ok(Incoming::Change(c)) => {
                    self.cluster.apply(c).unwrap();
                }
                Ok(Incoming::Problem(p)) => self.problems.push(p),
                Err(RecvTimeoutError::Timeout) => panic!(
                    "pods {:?}, relisting {}, want {want:?}; problems: {:?}",
                    self.pods(),
                    self.cluster.relisting(),
                    self.problems
                ),
                Err(RecvTimeoutError::Disconnected) => panic!("the feed ended"),
            }
        }
    }
}

/// A feed following `api` (state in `dir`) once it has listed pods `a` and `b`.
fn listed(api: &KubeApi, dir: &Path) -> Fed {
    let mut fed = Fed::new(start(api, dir, TOKEN));
    fed.until(&[("a", "10.244.1.2"), ("b", "10.244.1.3")]);
    fed
}

#[test]
fn lists_then_follows_creates_changes_and_deletes() {
    let api = server();
    let dir = tempfile::tempdir().unwrap();
    let mut fed = listed(&api, dir.path());
    assert_eq!(fed.f.cluster.as_deref(), Some("lab"));
    assert_eq!(fed.f.server, format!("{}/", api.url()));
    let c = fed.cluster.cluster();
    assert_eq!(c.nodes.len(), 1);
    assert_eq!(c.namespaces.len(), 1);
    assert_eq!(c.services.len(), 1);

    api.put([pod("c", "10.244.1.4")]);
    fed.until(&[
        ("a", "10.244.1.2"),
        ("b", "10.244.1.3"),
        ("c", "10.244.1.4"),
    ]);
    api.put([pod("a", "10.244.1.9")]);
    fed.until(&[
        ("a", "10.244.1.9"),
        ("b", "10.244.1.3"),
        ("c", "10.244.1.4"),
    ]);
    api.delete("Pod", "shop", "b");
    fed.until(&[("a", "10.244.1.9"), ("c", "10.244.1.4")]);

    // One list per kind; every change came by a watch from the list's version.
    assert_eq!(api.lists("pods"), 1, "{:?}", api.requests());
    let requests = api.requests();
    let pod_list = requests
        .iter()
        .find(|r| r.starts_with("/api/v1/pods?") && !r.contains("watch"))
        .unwrap();
    assert!(pod_list.contains("limit=500"), "{pod_list}");
    let pod_watch = requests
        .iter()
        .find(|r| r.starts_with("/api/v1/pods?") && r.contains("watch=true"))
        .unwrap();
    for part in [
        "resourceVersion=",
        "allowWatchBookmarks=true",
        "timeoutSeconds=",
    ] {
        assert!(pod_watch.contains(part), "{part} missing: {pod_watch}");
    }
    assert!(fed.problems.is_empty(), "{:?}", fed.problems);
}

#[test]
fn a_410_relists_and_drops_the_pod_deleted_in_the_gap() {
    let api = server();
    let dir = tempfile::tempdir().unwrap();
    let mut fed = listed(&api, dir.path());
    // While no watch sees it, b goes and c comes; the history is compacted.
    api.expire(vec![
        Edit::Delete("Pod", "shop".into(), "b".into()),
        Edit::Put(pod("c", "10.244.1.4")),
    ]);
    fed.until(&[("a", "10.244.1.2"), ("c", "10.244.1.4")]);
    assert_eq!(api.lists("pods"), 2, "{:?}", api.requests());
    assert!(
        fed.problems.iter().any(|p| p.contains("watching pods from")
            && p.contains("410")
            && p.contains("listing them again")),
        "{:?}",
        fed.problems
    );
    // The relist kept what stayed: the node, namespace and service.
    let c = fed.cluster.cluster();
    assert_eq!(
        (c.nodes.len(), c.namespaces.len(), c.services.len()),
        (1, 1, 1)
    );
}

#[test]
fn a_dropped_watch_resumes_from_its_version_without_a_relist() {
    let api = server();
    let dir = tempfile::tempdir().unwrap();
    let mut fed = listed(&api, dir.path());
    let watches = |api: &KubeApi| {
        api.requests()
            .iter()
            .filter(|r| r.starts_with("/api/v1/pods?") && r.contains("watch=true"))
            .count()
    };
    let before = watches(&api);
    api.drop_watches();
    api.put([pod("c", "10.244.1.4")]);
    api.delete("Pod", "shop", "a");
    fed.until(&[("b", "10.244.1.3"), ("c", "10.244.1.4")]);
    assert!(watches(&api) > before, "{:?}", api.requests());
    assert_eq!(api.lists("pods"), 1, "{:?}", api.requests());
}

#[test]
fn refused_credentials_are_reported_naming_the_server_and_what_to_do() {
    let api = server();
    let dir = tempfile::tempdir().unwrap();
    let f = start(&api, dir.path(), "wrong");
    let p = loop {
        match f.changes.recv_timeout(Duration::from_secs(20)).unwrap() {
            Incoming::Problem(p) => break p,
            Incoming::Change(c) => assert!(
                matches!(c, ringfence_inventory::events::Change::Relist(_)),
                "nothing but a relist's start may come: {c:?}"
            ),
        }
    };
    for part in [
        api.url().as_str(),
        "401",
        "refused the credentials of context `test`",
    ] {
        assert!(p.contains(part), "`{part}` missing: {p}");
    }
}

#[test]
fn an_unknown_context_is_refused_before_anything_runs() {
    let api = server();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, "lab", TOKEN);
    let e = follow(&FollowOptions {
        context: Some("prod".into()),
        kubeconfig: Some(kubeconfig),
    })
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "context `prod` is not in the kubeconfig; pass --context with one of: test"
    );
    assert!(api.requests().is_empty());
}
