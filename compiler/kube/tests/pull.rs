//! `pull` against a real HTTP/1.1 server on 127.0.0.1 that answers the
//! Kubernetes list paths with real-shaped JSON, page by page.

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use ringfence_kube::{PullError, PullOptions, pull};
use ringfence_testkit::kubeapi::{RequestHead, read_request};
use serde_json::{Value, json};

/// One request as the server saw it.
#[derive(Clone, Debug)]
struct Request {
    path: String,
    query: BTreeMap<String, String>,
    authorization: Option<String>,
}

/// A small API server: `answer` maps a request to (status, JSON body).
struct ApiServer {
    port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

type Answer = dyn Fn(&Request) -> (u16, Value) + Send + Sync;

impl ApiServer {
    fn start(answer: impl Fn(&Request) -> (u16, Value) + Send + Sync + 'static) -> ApiServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let answer: Arc<Answer> = Arc::new(answer);
        let (log, stopped) = (requests.clone(), stop.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (answer, log) = (answer.clone(), log.clone());
                thread::spawn(move || serve_connection(stream, &*answer, &log));
            }
        });
        ApiServer {
            port,
            requests,
            stop,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        // Wake the accept loop so that it sees the flag and ends.
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Serves keep-alive HTTP/1.1 GETs on one connection until the client closes it.
fn serve_connection(stream: TcpStream, answer: &Answer, log: &Mutex<Vec<Request>>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    while let Some(RequestHead {
        target,
        authorization,
    }) = read_request(&mut reader)
    {
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let request = Request {
            path: path.to_owned(),
            query: query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
            authorization,
        };
        log.lock().unwrap().push(request.clone());
        let (status, body) = answer(&request);
        let body = body.to_string();
        let reason = match status {
            200 => "OK",
            403 => "Forbidden",
            _ => "Error",
        };
        let response = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

// Real-shaped objects, as the API server returns them inside a list (no kind or apiVersion).

fn node(name: &str, ip: &str, cidr: &str) -> Value {
    json!({
        "metadata": {
            "name": name,
            "uid": format!("uid-{name}"),
            "resourceVersion": "48213",
            "creationTimestamp": "2024-10-14T08:14:03Z",
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
            "managedFields": [{
                "manager": "kubelet", "operation": "Update", "apiVersion": "v1",
                "time": "2024-10-14T08:14:03Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {".": {}}}}
            }]
        },
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
        "status": {
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "nodeInfo": {
                "machineID": "8b2f0f4b0c6a4a5c9d6f5e4d3c2b1a09",
                "systemUUID": "8b2f0f4b-0c6a-4a5c-9d6f-5e4d3c2b1a09",
                "bootID": "0d1b6a36-7a55-4f0b-a5a6-3a4b7a7a1e51",
                "kernelVersion": "6.1.0-21-cloud-amd64",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "containerRuntimeVersion": "containerd://1.7.13",
                "kubeletVersion": "v1.30.1",
                "kubeProxyVersion": "v1.30.1",
                "operatingSystem": "linux",
                "architecture": "amd64"
            }
        }
    })
}

fn namespace(name: &str) -> Value {
    json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"}
    })
}

fn pod(ns: &str, name: &str, node: &str, ip: &str) -> Value {
    json!({
        "metadata": {
            "name": name,
            "generateName": "web-6f7c9d8b4f-",
            "namespace": ns,
            "labels": {"app": "web", "pod-template-hash": "6f7c9d8b4f"},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-6f7c9d8b4f",
                "uid": "a4d1e6b0-5c3f-4e2d-9b8a-7f6e5d4c3b2a", "controller": true, "blockOwnerDeletion": true
            }],
            "managedFields": [{"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1"}]
        },
        "spec": {
            "containers": [{
                "name": "web",
                "image": "registry.example.com/web/web:1.8.0",
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
            }],
            "nodeName": node
        },
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}
    })
}

fn service(ns: &str, name: &str, ip: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": ip,
            "clusterIPs": [ip],
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]
        },
        "status": {"loadBalancer": {}}
    })
}

/// Answers `kind` lists from `objects`, `limit` at a time, with opaque continue tokens.
fn paged(kind: &str, objects: &[Value], request: &Request) -> (u16, Value) {
    let limit: usize = request
        .query
        .get("limit")
        .expect("pull sets a limit")
        .parse()
        .unwrap();
    let start = match request.query.get("continue") {
        // Tokens look like the API server's: base64 with padding (so they need URL encoding).
        Some(token) => token
            .strip_prefix("eyJzdGFydCI6")
            .unwrap()
            .trim_end_matches('=')
            .parse()
            .unwrap(),
        None => 0,
    };
    let end = (start + limit).min(objects.len());
    let mut metadata = json!({"resourceVersion": "91234"});
    if end < objects.len() {
        metadata["continue"] = json!(format!("eyJzdGFydCI6{end}=="));
        metadata["remainingItemCount"] = json!(objects.len() - end);
    }
    (
        200,
        json!({"kind": format!("{kind}List"), "apiVersion": "v1", "metadata": metadata, "items": objects[start..end]}),
    )
}

struct Cluster {
    nodes: Vec<Value>,
    namespaces: Vec<Value>,
    pods: Vec<Value>,
    services: Vec<Value>,
}

fn lab() -> Cluster {
    Cluster {
        // Deliberately unsorted: the output is sorted.
        nodes: vec![
            node("lab-3", "192.168.49.4", "10.244.2.0/24"),
            node("lab-1", "192.168.49.2", "10.244.0.0/24"),
            node("lab-2", "192.168.49.3", "10.244.1.0/24"),
        ],
        namespaces: vec![namespace("web"), namespace("default")],
        pods: (0..5)
            .map(|i| {
                pod(
                    "web",
                    &format!("web-6f7c9d8b4f-p{i}"),
                    "lab-1",
                    &format!("10.244.0.{}", 10 + i),
                )
            })
            .rev()
            .collect(),
        services: vec![
            service("web", "web", "10.96.44.10"),
            service("default", "api", "10.96.0.20"),
        ],
    }
}

fn serve(cluster: Cluster) -> ApiServer {
    ApiServer::start(move |r| match r.path.as_str() {
        "/api/v1/nodes" => paged("Node", &cluster.nodes, r),
        "/api/v1/namespaces" => paged("Namespace", &cluster.namespaces, r),
        "/api/v1/pods" => paged("Pod", &cluster.pods, r),
        "/api/v1/services" => paged("Service", &cluster.services, r),
        other => (
            404,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                             "message": format!("the server could not find the requested resource ({other})"),
                             "reason": "NotFound", "code": 404}),
        ),
    })
}

fn kubeconfig(dir: &std::path::Path, server: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: lab-cluster
  cluster:
    server: {server}
- name: staging-cluster
  cluster:
    server: {server}
contexts:
- name: lab
  context:
    cluster: lab-cluster
    user: lab-admin
    namespace: web
- name: staging
  context:
    cluster: staging-cluster
    user: lab-admin
current-context: lab
users:
- name: lab-admin
  user:
    token: lab-token-3f9a
"
        ),
    )
    .unwrap();
    path
}

/// Why `pull` refused `opts`.
fn refused(opts: PullOptions) -> String {
    pull(&opts).unwrap_err().to_string()
}

fn names(list: &Value, kind: &str) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == kind)
        .map(|i| match i["metadata"]["namespace"].as_str() {
            Some(ns) => format!("{ns}/{}", i["metadata"]["name"].as_str().unwrap()),
            None => i["metadata"]["name"].as_str().unwrap().to_owned(),
        })
        .collect()
}

#[test]
fn pull_reads_every_page_of_every_resource() {
    let server = serve(lab());
    let dir = tempfile::tempdir().unwrap();
    let options = PullOptions {
        kubeconfig: Some(kubeconfig(dir.path(), &server.url())),
        page_size: 2,
        ..PullOptions::default()
    };
    let json = pull(&options).unwrap();

    let list: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["apiVersion"], "v1");
    // The cluster of the current context names the cluster.
    assert_eq!(
        list["metadata"]["annotations"]["ringfence.io/cluster"],
        "lab-cluster"
    );
    // Every object of every page, sorted kind by kind, as kubectl prints them.
    assert_eq!(names(&list, "Node"), ["lab-1", "lab-2", "lab-3"]);
    assert_eq!(names(&list, "Namespace"), ["default", "web"]);
    assert_eq!(
        names(&list, "Pod"),
        (0..5)
            .map(|i| format!("web/web-6f7c9d8b4f-p{i}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(names(&list, "Service"), ["default/api", "web/web"]);
    let kinds: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.is_sorted_by_key(|k| {
        ["Node", "Namespace", "Pod", "Service"]
            .iter()
            .position(|x| x == k)
    }));
    for item in list["items"].as_array().unwrap() {
        assert_eq!(item["apiVersion"], "v1", "{item}");
        assert!(
            item["metadata"].get("managedFields").is_none(),
            "kubectl hides managedFields"
        );
    }
    assert!(
        json.ends_with("}\n") && json.contains("\n  \"items\": ["),
        "pretty JSON"
    );

    // It loads as an inventory.
    let cluster = ringfence_inventory::parse_list(&json, "pulled.json").unwrap();
    assert_eq!(cluster.name, "lab-cluster");
    assert_eq!(
        (
            cluster.nodes.len(),
            cluster.namespaces.len(),
            cluster.pods.len(),
            cluster.services.len()
        ),
        (3, 2, 5, 2)
    );
    assert_eq!(cluster.pods[0].owner.as_ref().unwrap().name, "web");
    assert_eq!(
        cluster.pods[4].ips,
        ["10.244.0.14".parse::<std::net::IpAddr>().unwrap()]
    );

    // Pagination: limit on every request, continue tokens honoured; credentials sent.
    let requests = server.requests();
    let pages: Vec<(String, Option<String>)> = requests
        .iter()
        .map(|r| (r.path.clone(), r.query.get("continue").cloned()))
        .collect();
    assert_eq!(
        pages,
        [
            ("/api/v1/nodes".into(), None),
            ("/api/v1/nodes".into(), Some("eyJzdGFydCI62==".into())),
            ("/api/v1/namespaces".into(), None),
            ("/api/v1/pods".into(), None),
            ("/api/v1/pods".into(), Some("eyJzdGFydCI62==".into())),
            ("/api/v1/pods".into(), Some("eyJzdGFydCI64==".into())),
            ("/api/v1/services".into(), None),
        ]
    );
    for r in &requests {
        assert_eq!(r.query["limit"], "2");
        assert_eq!(r.authorization.as_deref(), Some("Bearer lab-token-3f9a"));
    }

    // Pulling again gives the same bytes.
    assert_eq!(pull(&options).unwrap(), json);
}

#[test]
fn context_and_cluster_options_choose_the_name() {
    let server = serve(lab());
    let dir = tempfile::tempdir().unwrap();
    let file = kubeconfig(dir.path(), &server.url());
    let name = |context: Option<&str>, cluster: Option<&str>| {
        let json = pull(&PullOptions {
            kubeconfig: Some(file.clone()),
            context: context.map(str::to_owned),
            cluster: cluster.map(str::to_owned),
            ..PullOptions::default()
        })
        .unwrap();
        ringfence_inventory::parse_list(&json, "x.json")
            .unwrap()
            .name
    };
    assert_eq!(name(Some("staging"), None), "staging-cluster");
    assert_eq!(name(Some("staging"), Some("prod-eu1")), "prod-eu1");
    assert_eq!(name(None, Some("prod-eu1")), "prod-eu1");
    // One request per resource: everything fits in a default page.
    assert_eq!(server.requests().len(), 12);
}

/// The name goes into the List, and from there into file and directory
/// names: one that is not a cluster name is refused before any request.
#[test]
fn a_cluster_name_that_is_no_name_is_refused() {
    let server = serve(lab());
    let dir = tempfile::tempdir().unwrap();
    let file = kubeconfig(dir.path(), &server.url());
    let message = refused(PullOptions {
        kubeconfig: Some(file.clone()),
        cluster: Some("../x".into()),
        ..PullOptions::default()
    });
    assert!(
        message.starts_with("--cluster is named \"../x\", which cannot name a cluster in the inventory; pass --cluster NAME (letters, digits"),
        "{message}"
    );
    // An EKS context's cluster is an ARN.
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace(
            "cluster: lab-cluster",
            "cluster: arn:aws:eks:eu-west-1:1:cluster/lab",
        )
        .replace(
            "- name: lab-cluster",
            "- name: arn:aws:eks:eu-west-1:1:cluster/lab",
        );
    std::fs::write(&file, text).unwrap();
    let message = refused(PullOptions {
        kubeconfig: Some(file),
        ..PullOptions::default()
    });
    assert!(
        message.starts_with(
            "the cluster of context `lab` is named \"arn:aws:eks:eu-west-1:1:cluster/lab\""
        ),
        "{message}"
    );
    assert!(server.requests().is_empty());
}

#[test]
fn a_forbidden_list_says_which_resource_and_what_to_grant() {
    let server = ApiServer::start(|r| {
        if r.path == "/api/v1/pods" {
            (
                403,
                json!({
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "pods is forbidden: User \"system:serviceaccount:ci:reader\" cannot list resource \"pods\" in API group \"\" at the cluster scope",
                    "reason": "Forbidden", "details": {"kind": "pods"}, "code": 403
                }),
            )
        } else {
            (
                200,
                json!({"kind": "List", "apiVersion": "v1", "metadata": {}, "items": []}),
            )
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let err = pull(&PullOptions {
        kubeconfig: Some(kubeconfig(dir.path(), &server.url())),
        ..PullOptions::default()
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            PullError::List {
                resource: "pods",
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    let expected = format!(
        "listing pods from {}/: 403 Forbidden: pods is forbidden: User \"system:serviceaccount:ci:reader\" cannot list resource \"pods\" in API group \"\" at the cluster scope; the user of context `lab` may not list pods in all namespaces; grant get and list on nodes, namespaces, pods and services (a ClusterRole)",
        server.url()
    );
    assert_eq!(message, expected);
}

#[test]
fn an_unreachable_server_is_named() {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let err = pull(&PullOptions {
        kubeconfig: Some(kubeconfig(dir.path(), &url)),
        ..PullOptions::default()
    })
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("listing nodes from {url}/: ")),
        "{message}"
    );
    assert!(
        message
            .ends_with("; check that the server address of context `lab` is right and reachable"),
        "{message}"
    );
    assert!(message.to_lowercase().contains("connect"), "{message}");
}

#[test]
fn kubeconfig_problems_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let message = refused(PullOptions {
        kubeconfig: Some(missing.clone()),
        ..PullOptions::default()
    });
    assert_eq!(
        message,
        format!(
            "{}: cannot load the kubeconfig: No such file or directory (os error 2); pass \
             --kubeconfig FILE, or set $KUBECONFIG",
            missing.display()
        )
    );

    let empty = dir.path().join("empty");
    std::fs::write(&empty, "apiVersion: v1\nkind: Config\n").unwrap();
    let message = refused(PullOptions {
        kubeconfig: Some(empty),
        ..PullOptions::default()
    });
    assert_eq!(
        message,
        "the kubeconfig has no contexts; point --kubeconfig at a kubeconfig file \
         (`kubectl config view` shows yours)"
    );

    let file = kubeconfig(dir.path(), "http://127.0.0.1:9");
    let message = refused(PullOptions {
        kubeconfig: Some(file),
        context: Some("prod".into()),
        ..PullOptions::default()
    });
    assert_eq!(
        message,
        "context `prod` is not in the kubeconfig; pass --context with one of: lab, staging"
    );
}

#[test]
fn pulling_the_example_cluster_gives_the_same_inventory() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../policies-example/inventory/prod-eu1.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let list: Value = serde_json::from_str(&text).unwrap();
    // Served as the API server lists them: without kind and apiVersion per item.
    let of_kind = |kind: &str| -> Vec<Value> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["kind"] == kind)
            .map(|i| {
                let mut i = i.clone();
                let o = i.as_object_mut().unwrap();
                o.remove("kind");
                o.remove("apiVersion");
                i
            })
            .collect()
    };
    let server = serve(Cluster {
        nodes: of_kind("Node"),
        namespaces: of_kind("Namespace"),
        pods: of_kind("Pod"),
        services: of_kind("Service"),
    });
    let dir = tempfile::tempdir().unwrap();
    let pulled = pull(&PullOptions {
        kubeconfig: Some(kubeconfig(dir.path(), &server.url())),
        cluster: Some("prod-eu1".into()),
        page_size: 4,
        ..PullOptions::default()
    })
    .unwrap();
    let original = ringfence_inventory::parse_list(&text, "prod-eu1.json").unwrap();
    let again = ringfence_inventory::parse_list(&pulled, "prod-eu1.json").unwrap();
    assert_eq!(again, original);
    // The example is written as kubectl writes, so only key order may differ.
    let pulled: Value = serde_json::from_str(&pulled).unwrap();
    assert_eq!(
        pulled["items"].as_array().unwrap().len(),
        list["items"].as_array().unwrap().len()
    );
}
