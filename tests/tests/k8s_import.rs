//! Kubernetes network policies, imported and enforced: the upstream network
//! policy e2e model (namespaces x, y, z, pods a, b, c on two nodes, each
//! serving ports 80 and 81 over TCP and UDP, two hosts outside), one policy
//! case at a time imported with `ringfence import k8s`, compiled and signed,
//! enforced by one agent per node, and every pod pair (and the outside
//! hosts) probed for real. What gets through must be what the Kubernetes
//! semantics give for the case, written out here case by case from the
//! specification. (SCTP cannot be probed here: this kernel has no SCTP; the
//! translation of SCTP is checked in ringfence-netpol's property test.)

use std::net::IpAddr;
use std::process::Command;

use ringfence_e2e::bin::{binary, compile, run, start_agent, wait_applied};
use ringfence_e2e::{
    NodeSpec, OutsideSpec, PodSpec, Probe, Spec, Topology, listen, probe_all_retrying,
};
use ringfence_schema::net::Proto;
use serde_json::{Value, json};

const NAMESPACES: [&str; 3] = ["x", "y", "z"];
const PODS: [&str; 3] = ["a", "b", "c"];
const NODES: [(&str, &str, &str); 2] = [
    ("n1", "10.77.0.11", "10.78.1.0/24"),
    ("n2", "10.77.0.12", "10.78.2.0/24"),
];
const OUTSIDE: [(&str, &str); 2] = [("out7", "192.168.77.7"), ("out8", "192.168.77.8")];
const PROBES: [(Proto, u16); 4] = [
    (Proto::Tcp, 80),
    (Proto::Tcp, 81),
    (Proto::Udp, 80),
    (Proto::Udp, 81),
];

/// A pod's node and address: x on n1, y on n2, z split.
fn place(ns: usize, pod: usize) -> (usize, String) {
    let node = match ns {
        0 => 0,
        1 => 1,
        _ => pod % 2,
    };
    let host = 10 + ns * 3 + pod;
    (node, format!("10.78.{}.{host}", node + 1))
}

/// The kubectl List of the model.
fn inventory() -> Value {
    let mut items = Vec::new();
    for (name, addr, cidr) in NODES {
        items.push(json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/os": "linux"}},
            "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
            "status": {"addresses": [{"type": "InternalIP", "address": addr}],
                       "nodeInfo": {"operatingSystem": "linux"}}}));
    }
    for (n, ns) in NAMESPACES.iter().enumerate() {
        items.push(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"ns": ns, "kubernetes.io/metadata.name": ns}}}));
        for (p, pod) in PODS.iter().enumerate() {
            let (node, ip) = place(n, p);
            let ports: Vec<Value> = ["TCP", "UDP"]
                .iter()
                .flat_map(|proto| {
                    [80, 81].map(|port| {
                        json!({"name": format!("serve-{port}-{}", proto.to_lowercase()),
                               "containerPort": port, "protocol": proto})
                    })
                })
                .collect();
            items.push(json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod, "namespace": ns, "labels": {"pod": pod}},
                "spec": {"nodeName": NODES[node].0, "containers": [{"name": "c", "ports": ports}]},
                "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}));
        }
    }
    json!({"apiVersion": "v1", "kind": "List",
           "metadata": {"annotations": {"ringfence.io/cluster": "e2e"}}, "items": items})
}

/// One end of a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Pod(&'static str, &'static str),
    Out(&'static str),
}

use End::{Out, Pod};

/// A case: policies and what Kubernetes lets through.
struct Case {
    name: &'static str,
    yaml: &'static str,
    allowed: fn(End, End, Proto, u16) -> bool,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "default-deny-ingress",
            yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Ingress]
",
            allowed: |_, dst, _, _| !matches!(dst, Pod("x", _)),
        },
        Case {
            name: "ingress-from-pod-on-port",
            yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-from-b, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{podSelector: {matchLabels: {pod: b}}}]
    ports: [{port: 80}]
",
            allowed: |src, dst, proto, port| match dst {
                Pod("x", "a") => src == Pod("x", "b") && proto == Proto::Tcp && port == 80,
                _ => true,
            },
        },
        Case {
            name: "namespace-and-pod-selector",
            yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-from-y-c, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {ns: 'y'}}
      podSelector: {matchLabels: {pod: c}}
",
            allowed: |src, dst, _, _| match dst {
                Pod("x", "a") => src == Pod("y", "c"),
                _ => true,
            },
        },
        Case {
            name: "egress-to-namespace-on-named-port",
            yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-z-udp-81, namespace: 'y'}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {matchLabels: {ns: z}}}]
    ports: [{protocol: UDP, port: serve-81-udp}]
",
            allowed: |src, dst, proto, port| match src {
                Pod("y", _) => matches!(dst, Pod("z", _)) && proto == Proto::Udp && port == 81,
                _ => true,
            },
        },
        Case {
            name: "port-range",
            yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: udp-range, namespace: z}
spec:
  podSelector: {matchLabels: {pod: b}}
  ingress:
  - ports: [{protocol: UDP, port: 80, endPort: 81}]
",
            allowed: |_, dst, proto, _| match dst {
                Pod("z", "b") => proto == Proto::Udp,
                _ => true,
            },
        },
        Case {
            name: "egress-section-isolates-both-ways",
            yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: c-egress, namespace: x}
spec:
  podSelector: {matchLabels: {pod: c}}
  egress:
  - to: [{podSelector: {}}]
",
            allowed: |src, dst, _, _| {
                if dst == Pod("x", "c") {
                    return false;
                }
                if src == Pod("x", "c") {
                    return matches!(dst, Pod("x", _));
                }
                true
            },
        },
        Case {
            name: "ip-block-with-except",
            yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: out-but-8, namespace: z}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 192.168.77.0/24, except: [192.168.77.8/32]}}]
",
            allowed: |src, dst, _, _| match src {
                Pod("z", _) => dst == Out("out7"),
                _ => true,
            },
        },
        Case {
            name: "admin-pass-then-deny",
            yaml: "
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: guard-x}
spec:
  priority: 10
  subject: {namespaces: {matchLabels: {ns: x}}}
  ingress:
  - action: Pass
    from: [{namespaces: {matchLabels: {ns: 'y'}}}]
  - action: Deny
    from: [{namespaces: {}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-y-a, namespace: x}
spec:
  podSelector: {}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {ns: 'y'}}, podSelector: {matchLabels: {pod: a}}}]
",
            allowed: |src, dst, _, _| match dst {
                // y is passed to the NetworkPolicy (y/a only); other pods are denied;
                // outside hosts match no ANP peer and the NetworkPolicy isolates.
                Pod("x", _) => src == Pod("y", "a"),
                _ => true,
            },
        },
        Case {
            name: "baseline-for-the-unisolated",
            yaml: "
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  ingress:
  - action: Deny
    from: [{namespaces: {matchLabels: {ns: z}}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: open, namespace: 'y'}
spec:
  podSelector: {}
  ingress: [{}]
",
            allowed: |src, dst, _, _| match (src, dst) {
                // y is isolated and its policy allows all; x and z fall to the baseline.
                (_, Pod("y", _)) => true,
                (Pod("z", _), Pod(..)) => false,
                _ => true,
            },
        },
    ]
}

#[test]
fn imported_policies_are_enforced_as_kubernetes_specifies() {
    let tmp = tempfile::tempdir().unwrap();
    let inv = tmp.path().join("e2e.json");
    std::fs::write(&inv, serde_json::to_string_pretty(&inventory()).unwrap()).unwrap();
    let rf = binary("ringfence");
    run(Command::new(&rf)
        .arg("keygen")
        .arg("--out")
        .arg(tmp.path().join("k")));
    let key = tmp.path().join("k.pub");

    let mut ends: Vec<(End, IpAddr, String)> = Vec::new();
    let mut spec = Spec::default();
    for (name, addr, cidr) in NODES {
        spec.nodes.push(NodeSpec {
            name: name.into(),
            addresses: vec![addr.parse().unwrap()],
            pod_cidrs: vec![cidr.into()],
            pods: Vec::new(),
        });
    }
    for (n, ns) in NAMESPACES.iter().enumerate() {
        for (p, pod) in PODS.iter().enumerate() {
            let (node, ip) = place(n, p);
            spec.nodes[node].pods.push(PodSpec {
                name: format!("{ns}/{pod}"),
                ips: vec![ip.parse().unwrap()],
            });
            ends.push((Pod(ns, pod), ip.parse().unwrap(), format!("{ns}/{pod}")));
        }
    }
    for (name, ip) in OUTSIDE {
        spec.outside.push(OutsideSpec {
            name: name.into(),
            ips: vec![ip.parse().unwrap()],
        });
        ends.push((Out(name), ip.parse().unwrap(), name.into()));
    }
    let t = Topology::build(&spec);
    for (end, _, name) in &ends {
        let ns = match end {
            Pod(..) => t.pod(name),
            Out(_) => t.outside(name),
        };
        listen(ns, &[80, 81]);
    }

    let mut failures = Vec::new();
    for case in cases() {
        let dir = tmp.path().join(case.name);
        let manifests = dir.join("manifests");
        std::fs::create_dir_all(&manifests).unwrap();
        std::fs::write(manifests.join("policies.yaml"), case.yaml).unwrap();
        let intent = dir.join("intent");
        run(Command::new(&rf)
            .args(["import", "k8s"])
            .arg(&manifests)
            .arg("--out")
            .arg(&intent));
        let out = dir.join("bundles");
        compile(&intent, &inv, &tmp.path().join("k.key"), &out);
        let mut agents = Vec::new();
        for (name, _, _) in NODES {
            let state = dir.join(format!("state-{name}"));
            agents.push(start_agent(name, t.node(name), &out, &key, &state));
            wait_applied(&state);
        }

        let mut probes = Vec::new();
        let mut keys = Vec::new();
        for (src, _, src_name) in &ends {
            for (dst, dst_ip, _) in &ends {
                if src == dst || matches!((src, dst), (Out(_), Out(_))) {
                    continue;
                }
                let from_ns = match src {
                    Pod(..) => t.pod(src_name),
                    Out(_) => t.outside(src_name),
                };
                for (proto, port) in PROBES {
                    probes.push(Probe {
                        from_ns: from_ns.to_string(),
                        to: *dst_ip,
                        proto,
                        port,
                    });
                    keys.push((*src, *dst, proto, port));
                }
            }
        }
        let got = probe_all_retrying(&probes);
        for a in &mut agents {
            let _ = a.kill();
            let _ = a.wait();
        }
        let mut blocked = 0;
        for ((src, dst, proto, port), ok) in keys.iter().zip(&got) {
            let want = (case.allowed)(*src, *dst, *proto, *port);
            blocked += usize::from(!ok);
            if *ok != want {
                failures.push(format!(
                    "{}: {src:?} -> {dst:?} {proto}/{port}: {}, Kubernetes says {}",
                    case.name,
                    if *ok { "got through" } else { "dropped" },
                    if want { "allowed" } else { "denied" }
                ));
            }
        }
        assert!(blocked > 0, "{}: nothing was blocked", case.name);
    }
    assert!(
        failures.is_empty(),
        "{} probes differ from Kubernetes semantics:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
