use super::*;
use crate::model::{Owner, Proto, TargetPort};

fn objects(yaml: &str) -> Vec<Manifest> {
    parse(yaml, "app.yaml").unwrap()
}

/// The error parsing `text` as `file` gives.
fn refused(text: &str, file: &str) -> String {
    parse(text, file).unwrap_err().to_string()
}

fn built(yaml: &str) -> crate::model::Cluster {
    cluster(&objects(yaml), "manifests").unwrap()
}

#[test]
fn yaml_documents_lists_and_json_are_read_with_their_place() {
    let yaml = "\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
# a comment only document is skipped
---
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Service, metadata: {name: a, namespace: shop}}
- {apiVersion: v1, kind: Service, metadata: {name: b}}
";
    let got = objects(yaml);
    let summary: Vec<(String, String, String)> = got
        .iter()
        .map(|m| {
            (
                m.place.clone(),
                m.kind().to_owned(),
                m.describe(m.kind() != "Namespace"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "document 1".into(),
                "Namespace".into(),
                "Namespace shop".into()
            ),
            (
                "document 3, items[0]".into(),
                "Service".into(),
                "Service shop/a".into()
            ),
            (
                "document 3, items[1]".into(),
                "Service".into(),
                "Service default/b".into()
            ),
        ]
    );
    let json = r#"{"kind": "PodList", "items": [{"kind": "Pod", "metadata": {"name": "p"}}]}"#;
    let got = parse(json, "pods.json").unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].place, "document 1, items[0]");
    assert_eq!(got[0].file, "pods.json");
}

#[test]
fn bad_documents_name_the_file_and_what_is_wrong() {
    let e = refused("kind: Pod\n---\na: [1, 2\n", "bad.yaml");
    assert!(
        e.starts_with("bad.yaml: document 2 (from line 2) is not valid YAML"),
        "{e}"
    );
    let e = refused("- 1\n- 2\n", "list.yaml");
    assert!(
        e.contains("list.yaml: document 1 is a list, not a Kubernetes object"),
        "{e}"
    );
    // YAML 1.1 reads `y` as true, as the API server's YAML does: refused, not
    // read as the namespace `default`.
    let e = refused(
        "kind: Pod\nmetadata: {name: a}\n---\nkind: Pod\nmetadata: {name: a, namespace: y}\n",
        "ns.yaml",
    );
    assert_eq!(
        e,
        "ns.yaml: document 2: `metadata.namespace` is a boolean, expected a string; quote it: \
         YAML reads unquoted y, n, yes, no, on, off and numbers as other types, and so does the \
         API server"
    );
    let e = refused("kind: Pod\nmetadata: {name: 0700}\n", "n.yaml");
    assert!(e.contains("`metadata.name` is a number"), "{e}");
    let e = refused("{\"kind\": ", "x.json");
    assert!(e.starts_with("x.json:1:"), "{e}");
    // Duplicate keys would silently drop a value.
    let e = refused("kind: Pod\nkind: Service\n", "dup.yaml");
    assert!(
        e.contains("dup.yaml: document 1 (from line 1) is not valid YAML"),
        "{e}"
    );
    // An alias bomb is refused, not expanded.
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 0..9 {
        let prev = if i == 0 {
            "a".to_string()
        } else {
            format!("b{}", i - 1)
        };
        bomb.push_str(&format!("b{i}: &b{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
    }
    assert!(parse(&bomb, "bomb.yaml").is_err());
}

#[test]
fn directories_are_walked_in_order_without_hidden_entries_or_links() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("b/c")).unwrap();
    std::fs::create_dir_all(d.join(".git")).unwrap();
    std::fs::write(
        d.join("b/c/z.yml"),
        "kind: Namespace\nmetadata: {name: z}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("a.json"),
        r#"{"kind": "Namespace", "metadata": {"name": "a"}}"#,
    )
    .unwrap();
    std::fs::write(d.join("README.md"), "not yaml: [").unwrap();
    std::fs::write(
        d.join(".git/x.yaml"),
        "kind: Namespace\nmetadata: {name: git}\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(d, d.join("b/loop")).unwrap();
    let got = read(&[d.to_path_buf()]).unwrap();
    let names: Vec<&str> = got.iter().map(Manifest::name).collect();
    assert_eq!(names, ["a", "z"]);
    let e = read(&[d.join("missing")]).unwrap_err().to_string();
    assert!(e.contains("missing: cannot read it"), "{e}");
}

const APP: &str = include_str!("testdata/app.yaml");

#[test]
fn workloads_stand_for_one_pod_of_their_template() {
    let c = built(APP);
    let pods: Vec<(String, String, Option<Owner>)> = c
        .pods
        .iter()
        .map(|p| (p.namespace.clone(), p.name.clone(), p.owner.clone()))
        .collect();
    let owner = |kind: &str, name: &str| {
        Some(Owner {
            kind: kind.into(),
            name: name.into(),
        })
    };
    assert_eq!(
        pods,
        [
            ("default".into(), "lonely".into(), None),
            (
                "ops".into(),
                "report-cronjob".into(),
                owner("CronJob", "report")
            ),
            (
                "shop".into(),
                "web-deployment".into(),
                owner("Deployment", "web")
            ),
        ]
    );
    let web = &c.pods[2];
    assert_eq!(web.labels.get("app").map(String::as_str), Some("web"));
    let ports: Vec<(Option<&str>, u16, Proto)> = web
        .ports
        .iter()
        .map(|p| (p.name.as_deref(), p.port, p.proto))
        .collect();
    assert_eq!(
        ports,
        [
            (Some("http"), 8080, Proto::Tcp),
            (Some("dns"), 53, Proto::Udp)
        ]
    );
    // One synthetic node runs them all, with the synthetic range as its pod range.
    assert_eq!(c.nodes.len(), 1);
    assert_eq!(c.nodes[0].name, SYNTHETIC_NODE);
    assert_eq!(c.nodes[0].pod_cidrs[0].to_string(), SYNTHETIC_PREFIX);
    assert!(
        c.pods
            .iter()
            .all(|p| p.node.as_deref() == Some(SYNTHETIC_NODE))
    );
    // Namespaces: declared ones keep their labels, all carry their name label.
    let ns: Vec<(&str, Vec<(&str, &str)>)> = c
        .namespaces
        .iter()
        .map(|n| {
            (
                n.name.as_str(),
                n.labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        ns,
        [
            ("default", vec![("kubernetes.io/metadata.name", "default")]),
            ("ops", vec![("kubernetes.io/metadata.name", "ops")]),
            (
                "shop",
                vec![("kubernetes.io/metadata.name", "shop"), ("team", "shop")]
            ),
        ]
    );
}

#[test]
fn synthetic_addresses_are_stable_unique_and_in_the_documented_range() {
    let a = built(APP);
    let prefix: ipnet::IpNet = SYNTHETIC_PREFIX.parse().unwrap();
    let mut seen = std::collections::HashSet::new();
    for p in &a.pods {
        assert_eq!(p.ips.len(), 1, "{}", p.name);
        assert!(prefix.contains(&p.ips[0]), "{} {}", p.name, p.ips[0]);
        assert!(seen.insert(p.ips[0]), "{} reuses {}", p.name, p.ips[0]);
        assert!(!a.nodes[0].addresses.contains(&p.ips[0]));
    }
    // An address depends on the pod alone: other objects do not move it.
    let more = format!(
        "{APP}---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: aaa, namespace: shop}}\n\
         spec: {{template: {{metadata: {{labels: {{x: \"y\"}}}}, spec: {{containers: []}}}}}}\n"
    );
    let b = built(&more);
    for p in &a.pods {
        let q = b.pods.iter().find(|q| q.name == p.name).unwrap();
        assert_eq!(p.ips, q.ips, "{}", p.name);
    }
    // sha256("shop/web-deployment")[..12] after fd52:4600::, computed independently:
    // printf 'shop/web-deployment' | sha256sum
    let web = a.pods.iter().find(|p| p.name == "web-deployment").unwrap();
    assert_eq!(web.ips[0].to_string(), expected_web_address());
}

/// The address of `shop/web-deployment` (see the test above).
fn expected_web_address() -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(b"shop/web-deployment");
    format!(
        "fd52:4600:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}",
        u16::from_be_bytes([d[0], d[1]]),
        u16::from_be_bytes([d[2], d[3]]),
        u16::from_be_bytes([d[4], d[5]]),
        u16::from_be_bytes([d[6], d[7]]),
        u16::from_be_bytes([d[8], d[9]]),
        u16::from_be_bytes([d[10], d[11]]),
    )
}

#[test]
fn pods_keep_their_addresses_and_group_under_their_top_owner() {
    let yaml = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec: {template: {metadata: {labels: {app: web}}, spec: {containers: []}}}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web-5d9f8
  namespace: shop
  ownerReferences: [{kind: Deployment, name: web, controller: true}]
spec: {template: {metadata: {labels: {app: web}}, spec: {containers: []}}}
---
apiVersion: v1
kind: Pod
metadata:
  name: web-5d9f8-abcde
  namespace: shop
  labels: {app: web}
  ownerReferences: [{kind: ReplicaSet, name: web-5d9f8, controller: true}]
spec: {containers: []}
status: {podIP: 10.244.1.7, podIPs: [{ip: 10.244.1.7}]}
---
apiVersion: v1
kind: Pod
metadata:
  name: orphan-6c7d8-xyz
  namespace: shop
  ownerReferences: [{kind: ReplicaSet, name: orphan-6c7d8, controller: true}]
spec: {containers: []}
---
apiVersion: v1
kind: Pod
metadata:
  name: kube-proxy-n1
  namespace: kube-system
  ownerReferences: [{kind: Node, name: n1, controller: true}]
spec: {containers: []}
";
    let c = built(yaml);
    let got: Vec<(String, Option<Owner>, String)> = c
        .pods
        .iter()
        .map(|p| (p.name.clone(), p.owner.clone(), p.ips[0].to_string()))
        .collect();
    // The Deployment and its ReplicaSet have a pod: they stand for none of their own.
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0].0, "kube-proxy-n1");
    assert_eq!(got[0].1, None);
    assert_eq!(got[1].0, "orphan-6c7d8-xyz");
    assert_eq!(
        got[1].1,
        Some(Owner {
            kind: "ReplicaSet".into(),
            name: "orphan-6c7d8".into()
        })
    );
    assert_eq!(got[2].0, "web-5d9f8-abcde");
    assert_eq!(
        got[2].1,
        Some(Owner {
            kind: "Deployment".into(),
            name: "web".into()
        })
    );
    assert_eq!(got[2].2, "10.244.1.7");
}

#[test]
fn ingress_and_routes_reach_the_declared_target_ports_of_selected_pods() {
    let yaml = include_str!("testdata/ingress.yaml");
    let c = built(yaml);
    let got: Vec<(String, Vec<u16>, Vec<String>)> = c
        .ingress
        .iter()
        .map(|b| (b.pod.clone(), b.ports.clone(), b.via.clone()))
        .collect();
    // api's target port 7001 is not declared by its pod: not reached.
    assert_eq!(
        got,
        [(
            "web-deployment".into(),
            vec![8080, 9090],
            vec!["Ingress shop/front".into(), "Route shop/admin".into()]
        )]
    );
    let ctl = c
        .pods
        .iter()
        .find(|p| p.name == INGRESS_CONTROLLER)
        .expect("the ingress controller pod");
    assert_eq!(ctl.namespace, INGRESS_CONTROLLER_NAMESPACE);
    assert!(ctl.labels.is_empty());
    assert!(
        c.namespaces
            .iter()
            .any(|n| n.name == INGRESS_CONTROLLER_NAMESPACE)
    );
    // Services are read as from kubectl.
    let web = c.services.iter().find(|s| s.name == "web").unwrap();
    assert_eq!(web.ports[0].target, TargetPort::Name("http".into()));
}

#[test]
fn duplicates_and_bad_fields_are_errors_naming_file_object_and_field() {
    let yaml = "\
kind: Deployment
apiVersion: apps/v1
metadata: {name: web, namespace: shop}
spec: {template: {spec: {containers: [{name: w, ports: [{containerPort: 70000}]}]}}}
---
kind: Deployment
apiVersion: apps/v1
metadata: {name: web, namespace: shop}
spec: {template: {spec: {containers: []}}}
---
kind: StatefulSet
apiVersion: apps/v1
metadata: {name: db, namespace: shop}
spec: {}
";
    let e = cluster(&objects(yaml), "manifests")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("app.yaml: Deployment shop/web appears twice"),
        "{e}"
    );
    assert!(
        e.contains(
            "app.yaml: Deployment shop/web: `spec.template.spec.containers[0].ports[0].containerPort` is out of range: 70000"
        ),
        "{e}"
    );
    assert!(
        e.contains("app.yaml: StatefulSet shop/db: `spec.template` is missing"),
        "{e}"
    );
}
