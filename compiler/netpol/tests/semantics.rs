//! Property: on the upstream network policy e2e model (namespaces x, y, z
//! with pods a, b, c serving ports 80 and 81 over TCP, UDP and SCTP) and
//! random NetworkPolicies, AdminNetworkPolicies and a
//! BaselineAdminNetworkPolicy, the imported intent compiled against the
//! manifests decides every probe (every pod pair, addresses outside the
//! cluster both ways, each protocol and port) exactly as a direct
//! evaluation of the Kubernetes API's semantics, written here from the
//! specification and reading the policy objects themselves, decides.

use std::net::IpAddr;

use ipnet::IpNet;
use proptest::prelude::*;
use ringfence_intent::model::{Proto, SourceFile};
use ringfence_inventory::manifests::{Manifest, cluster};
use ringfence_inventory::model::Inventory;
use ringfence_netpol::{Options, translate};
use serde_json::{Value, json};

// ---- the e2e model --------------------------------------------------------

const NAMESPACES: [&str; 3] = ["x", "y", "z"];
const PODS: [&str; 3] = ["a", "b", "c"];
/// Addresses outside the cluster the probes use.
const OUTSIDE: [&str; 4] = ["10.0.0.5", "10.1.2.3", "192.168.1.5", "2001:db8::7"];

fn model() -> Vec<Manifest> {
    let mut out = Vec::new();
    let mut push = |value: Value| {
        out.push(Manifest {
            file: "model.yaml".into(),
            place: format!("document {}", out.len() + 1),
            value,
        })
    };
    for ns in NAMESPACES {
        push(json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": ns, "labels": {"ns": ns}}}));
        for pod in PODS {
            let mut ports = Vec::new();
            for (proto, p) in [("TCP", "tcp"), ("UDP", "udp"), ("SCTP", "sctp")] {
                for n in [80, 81] {
                    ports.push(json!({"name": format!("serve-{n}-{p}"), "containerPort": n, "protocol": proto}));
                }
            }
            push(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": pod, "namespace": ns},
                        "spec": {"template": {"metadata": {"labels": {"pod": pod}},
                                              "spec": {"containers": [{"name": "c", "ports": ports}]}}}}));
        }
    }
    out
}

// ---- the specification, evaluated directly -------------------------------

#[derive(Clone, Copy, Debug)]
enum End<'a> {
    Pod(&'a str, &'a str, IpAddr),
    Outside(IpAddr),
}

/// A connection as a side sees it: the destination end, protocol and port.
type Conn<'a> = (End<'a>, Proto, u16);

impl End<'_> {
    fn ip(&self) -> IpAddr {
        match self {
            End::Pod(_, _, ip) | End::Outside(ip) => *ip,
        }
    }
}

fn ns_labels(ns: &str) -> Vec<(String, String)> {
    vec![
        ("ns".into(), ns.into()),
        ("kubernetes.io/metadata.name".into(), ns.into()),
    ]
}

fn pod_labels(pod: &str) -> Vec<(String, String)> {
    vec![("pod".into(), pod.into())]
}

/// A label selector matches labels (absent selector: `absent` decides).
fn selects(sel: Option<&Value>, labels: &[(String, String)], absent: bool) -> bool {
    let Some(sel) = sel.filter(|v| !v.is_null()) else {
        return absent;
    };
    let get = |k: &str| labels.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            if get(k) != v.as_str() {
                return false;
            }
        }
    }
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let k = e["key"].as_str().unwrap();
        let vals: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|v| v.as_str().unwrap()).collect())
            .unwrap_or_default();
        let ok = match e["operator"].as_str().unwrap() {
            "In" => get(k).is_some_and(|v| vals.contains(&v)),
            "NotIn" => get(k).is_none_or(|v| !vals.contains(&v)),
            "Exists" => get(k).is_some(),
            _ => get(k).is_none(),
        };
        if !ok {
            return false;
        }
    }
    true
}

fn proto_name(p: Proto) -> &'static str {
    match p {
        Proto::Tcp => "TCP",
        Proto::Udp => "UDP",
        _ => "SCTP",
    }
}

/// The container port named `name` on the destination, as (protocol, number).
fn named_port(dst: End<'_>, name: &str) -> Option<(&'static str, u16)> {
    let End::Pod(..) = dst else { return None };
    let (n, p) = name.strip_prefix("serve-")?.split_once('-')?;
    let proto = match p {
        "tcp" => "TCP",
        "udp" => "UDP",
        "sctp" => "SCTP",
        _ => return None,
    };
    Some((proto, n.parse().ok()?))
}

struct Spec<'a> {
    objects: &'a [Manifest],
}

impl Spec<'_> {
    fn of_kind<'s>(&'s self, kind: &'s str) -> impl Iterator<Item = &'s Value> + 's {
        self.objects
            .iter()
            .filter(move |m| m.kind() == kind)
            .map(|m| &m.value)
    }

    /// NetworkPolicy peer matches the other end (`own`: the policy's namespace).
    fn np_peer(peer: &Value, own: &str, other: End<'_>) -> bool {
        if let Some(b) = peer.get("ipBlock") {
            let End::Outside(ip) = other else {
                return false;
            };
            let cidr: IpNet = b["cidr"].as_str().unwrap().parse().unwrap();
            let except = b
                .get("except")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|e| e.as_str().unwrap().parse::<IpNet>().unwrap().contains(&ip));
            return cidr.contains(&ip) && !except;
        }
        let End::Pod(ns, pod, _) = other else {
            return false;
        };
        let ns_ok = match peer.get("namespaceSelector") {
            Some(s) if !s.is_null() => selects(Some(s), &ns_labels(ns), true),
            _ => ns == own,
        };
        ns_ok && selects(peer.get("podSelector"), &pod_labels(pod), true)
    }

    fn np_ports(ports: Option<&Value>, dst: End<'_>, proto: Proto, port: u16) -> bool {
        let Some(list) = ports.and_then(Value::as_array).filter(|l| !l.is_empty()) else {
            return true;
        };
        list.iter().any(|p| {
            let pp = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            if pp != proto_name(proto) {
                return false;
            }
            match p.get("port") {
                None => true,
                Some(Value::String(name)) => {
                    named_port(dst, name) == Some((proto_name(proto), port))
                }
                Some(n) => {
                    let lo = n.as_u64().unwrap() as u16;
                    let hi = p
                        .get("endPort")
                        .and_then(Value::as_u64)
                        .map_or(lo, |e| e as u16);
                    (lo..=hi).contains(&port)
                }
            }
        })
    }

    fn admin_subject(subject: &Value, ns: &str, pod: &str) -> bool {
        if let Some(n) = subject.get("namespaces") {
            return selects(Some(n), &ns_labels(ns), true);
        }
        let p = &subject["pods"];
        selects(Some(&p["namespaceSelector"]), &ns_labels(ns), true)
            && selects(Some(&p["podSelector"]), &pod_labels(pod), true)
    }

    fn admin_peer(peer: &Value, other: End<'_>) -> bool {
        if let Some(nets) = peer.get("networks").and_then(Value::as_array) {
            // Networks match every address in them, pods' included.
            return nets.iter().any(|n| {
                n.as_str()
                    .unwrap()
                    .parse::<IpNet>()
                    .unwrap()
                    .contains(&other.ip())
            });
        }
        let End::Pod(ns, pod, _) = other else {
            return false;
        };
        Self::admin_subject(peer, ns, pod)
    }

    fn admin_ports(ports: Option<&Value>, dst: End<'_>, proto: Proto, port: u16) -> bool {
        let Some(list) = ports.and_then(Value::as_array) else {
            return true;
        };
        list.iter().any(|p| {
            if let Some(n) = p.get("portNumber") {
                n.get("protocol").and_then(Value::as_str).unwrap_or("TCP") == proto_name(proto)
                    && n["port"].as_u64() == Some(u64::from(port))
            } else if let Some(r) = p.get("portRange") {
                r.get("protocol").and_then(Value::as_str).unwrap_or("TCP") == proto_name(proto)
                    && (r["start"].as_u64().unwrap()..=r["end"].as_u64().unwrap())
                        .contains(&u64::from(port))
            } else {
                named_port(dst, p["namedPort"].as_str().unwrap()) == Some((proto_name(proto), port))
            }
        })
    }

    /// `Some(true/false)` if an admin policy decides, `None` to go on.
    fn admin(
        &self,
        kind: &str,
        (pod, dir, other): (End<'_>, &str, End<'_>),
        (dst, proto, port): Conn<'_>,
    ) -> Option<bool> {
        let End::Pod(ns, name, _) = pod else {
            return None;
        };
        let mut list: Vec<&Value> = self.of_kind(kind).collect();
        list.sort_by_key(|p| p["spec"].get("priority").and_then(Value::as_i64));
        let peer_key = if dir == "ingress" { "from" } else { "to" };
        for p in list {
            if !Self::admin_subject(&p["spec"]["subject"], ns, name) {
                continue;
            }
            for r in p["spec"]
                .get(dir)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let hit = r[peer_key]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| Self::admin_peer(x, other))
                    && Self::admin_ports(r.get("ports"), dst, proto, port);
                if hit {
                    return match r["action"].as_str().unwrap() {
                        "Allow" => Some(true),
                        "Deny" => Some(false),
                        // Pass: on to the NetworkPolicies.
                        _ => None,
                    };
                }
            }
        }
        None
    }

    /// The decision of `pod`'s side `dir` for traffic with `other` end.
    fn side(&self, pod: End<'_>, dir: &str, other: End<'_>, conn: Conn<'_>) -> bool {
        let (dst, proto, port) = conn;
        let End::Pod(ns, name, _) = pod else {
            return true;
        };
        if let Some(d) = self.admin("AdminNetworkPolicy", (pod, dir, other), conn) {
            return d;
        }
        let mut isolated = false;
        let mut allowed = false;
        for np in self.of_kind("NetworkPolicy") {
            let own = np["metadata"]["namespace"].as_str().unwrap();
            let spec = &np["spec"];
            if own != ns || !selects(spec.get("podSelector"), &pod_labels(name), true) {
                continue;
            }
            let types: Vec<&str> = match spec.get("policyTypes").and_then(Value::as_array) {
                Some(t) => t.iter().map(|x| x.as_str().unwrap()).collect(),
                None => {
                    let mut t = vec!["Ingress"];
                    if spec
                        .get("egress")
                        .and_then(Value::as_array)
                        .is_some_and(|e| !e.is_empty())
                    {
                        t.push("Egress");
                    }
                    t
                }
            };
            let ty = if dir == "ingress" {
                "Ingress"
            } else {
                "Egress"
            };
            if !types.contains(&ty) {
                continue;
            }
            isolated = true;
            let peer_key = if dir == "ingress" { "from" } else { "to" };
            for r in spec
                .get(dir)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let peers_ok = match r.get(peer_key).and_then(Value::as_array) {
                    None => true,
                    Some(l) if l.is_empty() => true,
                    Some(l) => l.iter().any(|p| Self::np_peer(p, own, other)),
                };
                if peers_ok && Self::np_ports(r.get("ports"), dst, proto, port) {
                    allowed = true;
                }
            }
        }
        if isolated {
            return allowed;
        }
        self.admin("BaselineAdminNetworkPolicy", (pod, dir, other), conn)
            .unwrap_or(true)
    }

    fn allowed(&self, src: End<'_>, dst: End<'_>, proto: Proto, port: u16) -> bool {
        let conn = (dst, proto, port);
        self.side(src, "egress", dst, conn) && self.side(dst, "ingress", src, conn)
    }
}

// ---- random policies -------------------------------------------------------

fn pod_selector() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({})),
        Just(json!({"matchLabels": {"pod": "a"}})),
        Just(json!({"matchLabels": {"pod": "b"}})),
        Just(json!({"matchExpressions": [{"key": "pod", "operator": "In", "values": ["a", "c"]}]})),
        Just(json!({"matchExpressions": [{"key": "pod", "operator": "NotIn", "values": ["b"]}]})),
        Just(json!({"matchExpressions": [{"key": "pod", "operator": "Exists"}]})),
        Just(json!({"matchExpressions": [{"key": "nope", "operator": "DoesNotExist"}]})),
    ]
}

fn ns_selector() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({})),
        Just(json!({"matchLabels": {"ns": "y"}})),
        Just(json!({"matchLabels": {"kubernetes.io/metadata.name": "z"}})),
        Just(json!({"matchExpressions": [{"key": "ns", "operator": "In", "values": ["x", "y"]}]})),
        Just(
            json!({"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["x"]}]})
        ),
    ]
}

fn np_peer() -> impl Strategy<Value = Value> {
    prop_oneof![
        pod_selector().prop_map(|p| json!({"podSelector": p})),
        ns_selector().prop_map(|n| json!({"namespaceSelector": n})),
        (ns_selector(), pod_selector())
            .prop_map(|(n, p)| json!({"namespaceSelector": n, "podSelector": p})),
        Just(json!({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}})),
        Just(json!({"ipBlock": {"cidr": "192.168.0.0/16"}})),
        Just(json!({"ipBlock": {"cidr": "0.0.0.0/0"}})),
        Just(json!({"ipBlock": {"cidr": "2001:db8::/32"}})),
    ]
}

fn np_port() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({"port": 80})),
        Just(json!({"protocol": "UDP", "port": 81})),
        Just(json!({"protocol": "SCTP"})),
        Just(json!({"port": 80, "endPort": 81})),
        Just(json!({"port": "serve-81-tcp"})),
        Just(json!({"protocol": "UDP", "port": "serve-80-udp"})),
        Just(json!({"port": "serve-80-udp"})),
    ]
}

fn np_rule() -> impl Strategy<Value = Value> {
    (
        prop::option::of(prop::collection::vec(np_peer(), 0..3)),
        prop::option::of(prop::collection::vec(np_port(), 0..3)),
    )
        .prop_map(|(peers, ports)| {
            let mut r = json!({});
            if let Some(p) = peers {
                r["peers"] = json!(p);
            }
            if let Some(p) = ports {
                r["ports"] = json!(p);
            }
            r
        })
}

fn network_policy(i: usize) -> impl Strategy<Value = Value> {
    (
        prop::sample::select(NAMESPACES.to_vec()),
        pod_selector(),
        prop_oneof![
            Just(None),
            Just(Some(vec!["Ingress"])),
            Just(Some(vec!["Egress"])),
            Just(Some(vec!["Ingress", "Egress"]))
        ],
        prop::option::of(prop::collection::vec(np_rule(), 0..3)),
        prop::option::of(prop::collection::vec(np_rule(), 0..3)),
    )
        .prop_map(move |(ns, sel, types, ingress, egress)| {
            let mut spec = json!({"podSelector": sel});
            if let Some(t) = types {
                spec["policyTypes"] = json!(t);
            }
            let rules = |rs: Vec<Value>, key: &str| -> Value {
                json!(
                    rs.into_iter()
                        .map(|mut r| {
                            if let Some(p) = r.as_object_mut().unwrap().remove("peers") {
                                r[key] = p;
                            }
                            r
                        })
                        .collect::<Vec<_>>()
                )
            };
            if let Some(r) = ingress {
                spec["ingress"] = rules(r, "from");
            }
            if let Some(r) = egress {
                spec["egress"] = rules(r, "to");
            }
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                   "metadata": {"name": format!("np{i}"), "namespace": ns}, "spec": spec})
        })
}

fn admin_peer(egress: bool) -> BoxedStrategy<Value> {
    let base = prop_oneof![
        ns_selector().prop_map(|n| json!({"namespaces": n})),
        (ns_selector(), pod_selector())
            .prop_map(|(n, p)| json!({"pods": {"namespaceSelector": n, "podSelector": p}})),
    ];
    if egress {
        prop_oneof![
            base,
            Just(json!({"networks": ["10.0.0.0/8"]})),
            Just(json!({"networks": ["0.0.0.0/0", "::/0"]})),
            Just(json!({"networks": ["fd52:4600::/32"]})),
        ]
        .boxed()
    } else {
        base.boxed()
    }
}

fn admin_ports(networks: bool) -> BoxedStrategy<Option<Value>> {
    let mut ports = vec![
        json!({"portNumber": {"port": 80}}),
        json!({"portNumber": {"protocol": "UDP", "port": 81}}),
        json!({"portRange": {"protocol": "SCTP", "start": 80, "end": 81}}),
    ];
    if !networks {
        ports.push(json!({"namedPort": "serve-81-udp"}));
    }
    prop::option::of(prop::collection::vec(prop::sample::select(ports), 1..3))
        .prop_map(|p| p.map(|v| json!(v)))
        .boxed()
}

fn admin_rule(egress: bool, actions: Vec<&'static str>) -> impl Strategy<Value = Value> {
    (
        prop::sample::select(actions),
        prop::collection::vec(admin_peer(egress), 1..3),
    )
        .prop_flat_map(move |(action, peers)| {
            let networks = peers.iter().any(|p| p.get("networks").is_some());
            admin_ports(networks).prop_map(move |ports| {
                let key = if egress { "to" } else { "from" };
                let mut r = json!({"action": action, key: peers.clone()});
                if let Some(p) = ports {
                    r["ports"] = p;
                }
                r
            })
        })
}

fn admin_subject() -> impl Strategy<Value = Value> {
    prop_oneof![
        ns_selector().prop_map(|n| json!({"namespaces": n})),
        (ns_selector(), pod_selector())
            .prop_map(|(n, p)| json!({"pods": {"namespaceSelector": n, "podSelector": p}})),
    ]
}

fn admin_policy(
    kind: &'static str,
    name: String,
    priority: Option<i64>,
) -> impl Strategy<Value = Value> {
    let actions = if kind == "AdminNetworkPolicy" {
        vec!["Allow", "Deny", "Pass"]
    } else {
        vec!["Allow", "Deny"]
    };
    (
        admin_subject(),
        prop::collection::vec(admin_rule(false, actions.clone()), 0..3),
        prop::collection::vec(admin_rule(true, actions), 0..3),
    )
        .prop_map(move |(subject, ingress, egress)| {
            let mut spec = json!({"subject": subject});
            if let Some(p) = priority {
                spec["priority"] = json!(p);
            }
            if !ingress.is_empty() {
                spec["ingress"] = json!(ingress);
            }
            if !egress.is_empty() {
                spec["egress"] = json!(egress);
            }
            json!({"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": kind,
                   "metadata": {"name": name}, "spec": spec})
        })
}

fn policies() -> impl Strategy<Value = Vec<Value>> {
    (
        prop::collection::vec(Just(()), 0..5).prop_flat_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, _)| network_policy(i))
                .collect::<Vec<_>>()
        }),
        prop::collection::vec(Just(()), 0..3).prop_flat_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, _)| {
                    admin_policy(
                        "AdminNetworkPolicy",
                        format!("anp{i}"),
                        Some(10 * i as i64 + 5),
                    )
                })
                .collect::<Vec<_>>()
        }),
        prop::option::of(admin_policy(
            "BaselineAdminNetworkPolicy",
            "default".into(),
            None,
        )),
    )
        .prop_map(|(mut nps, anps, banp)| {
            nps.extend(anps);
            nps.extend(banp);
            nps
        })
}

// ---- the check ---------------------------------------------------------------

fn check(policies: &[Value]) -> Result<(), TestCaseError> {
    let mut objects = model();
    for (i, p) in policies.iter().enumerate() {
        objects.push(Manifest {
            file: "policies.yaml".into(),
            place: format!("document {}", i + 1),
            value: p.clone(),
        });
    }
    let imported = translate(&objects, &Options::default())
        .map_err(|r| TestCaseError::fail(format!("refused: {:?}", r.problems)))?;
    let files: Vec<SourceFile> = imported
        .files
        .iter()
        .map(|(p, t)| SourceFile {
            path: p.clone(),
            text: t.as_str().into(),
        })
        .collect();
    let intent = ringfence_intent::load(files).intent.expect("checks clean");
    let inventory = Inventory {
        clusters: vec![cluster(&objects, "manifests").unwrap()],
    };
    let (compiled, diags) = ringfence_core::compile(&intent, &inventory);
    let compiled = compiled.unwrap_or_else(|| panic!("{diags:?}"));
    let spec = Spec { objects: &objects };
    let mut ends: Vec<End<'_>> = Vec::new();
    for p in &inventory.clusters[0].pods {
        let name = p.name.trim_end_matches("-deployment");
        let ns = NAMESPACES.iter().find(|n| **n == p.namespace).unwrap();
        let pod = PODS.iter().find(|x| **x == name).unwrap();
        ends.push(End::Pod(ns, pod, p.ips[0]));
    }
    let outside: Vec<End<'_>> = OUTSIDE
        .iter()
        .map(|a| End::Outside(a.parse().unwrap()))
        .collect();
    let text = || {
        imported
            .files
            .iter()
            .map(|(p, t)| format!("=== {p}\n{t}"))
            .collect::<String>()
    };
    for &src in ends.iter().chain(&outside) {
        for &dst in ends.iter().chain(&outside) {
            if matches!((src, dst), (End::Outside(_), End::Outside(_))) || src.ip() == dst.ip() {
                continue;
            }
            for proto in [Proto::Tcp, Proto::Udp, Proto::Sctp] {
                for port in [80u16, 81] {
                    let want = spec.allowed(src, dst, proto, port);
                    let got = compiled
                        .verdict_direct(src.ip(), dst.ip(), proto, Some(port))
                        .allowed();
                    prop_assert_eq!(
                        got,
                        want,
                        "{:?} -> {:?} {:?} {}\n{}",
                        src,
                        dst,
                        proto,
                        port,
                        text()
                    );
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn imported_policies_decide_as_kubernetes_specifies(p in policies()) {
        check(&p)?;
    }
}
