//! The namespace harness itself: routing works pod-to-pod (same node and
//! across nodes, IPv4 and IPv6), pod-to-node and to outside hosts, and an
//! nftables drop in a node's forward hook is seen by the probes.

use std::time::Duration;

use ringfence_e2e::bin::in_netns;
use ringfence_e2e::{NodeSpec, OutsideSpec, PodSpec, Probe, Spec, Topology, listen, probe_all};
use ringfence_schema::net::Proto;

fn spec() -> Spec {
    let pod = |name: &str, ips: &[&str]| PodSpec {
        name: name.into(),
        ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
    };
    // Node n: fabric addresses 10.10.0.1n and fd00:10::1n, pods in
    // 10.244.n.0/24 and fd00:244:n::/64.
    let node = |name: &str, n: u8, pods: Vec<PodSpec>| NodeSpec {
        name: name.into(),
        addresses: [format!("10.10.0.1{n}"), format!("fd00:10::1{n}")]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect(),
        pod_cidrs: vec![format!("10.244.{n}.0/24"), format!("fd00:244:{n}::/64")],
        pods,
    };
    Spec {
        nodes: vec![
            node(
                "a",
                1,
                vec![
                    pod("x/a1", &["10.244.1.2", "fd00:244:1::2"]),
                    pod("x/a2", &["10.244.1.3", "fd00:244:1::3"]),
                ],
            ),
            node("b", 2, vec![pod("x/b1", &["10.244.2.2", "fd00:244:2::2"])]),
        ],
        outside: vec![OutsideSpec {
            name: "internet".into(),
            ips: vec!["198.51.100.7".parse().unwrap()],
        }],
    }
}

#[test]
fn probes_see_routing_and_nftables() {
    let t = Topology::build(&spec());
    for (_, ns) in t.pod_ns.iter().chain(&t.outside_ns) {
        listen(ns, &[80, 5353]);
    }
    listen(t.node("b"), &[9100]);
    let p = |from: &str, to: &str, proto, port| Probe {
        from_ns: from.into(),
        to: to.parse().unwrap(),
        proto,
        port,
    };
    let a1 = t.pod("x/a1").to_string();
    let probes = vec![
        p(&a1, "10.244.1.3", Proto::Tcp, 80),    // same node
        p(&a1, "10.244.2.2", Proto::Tcp, 80),    // across nodes
        p(&a1, "fd00:244:2::2", Proto::Tcp, 80), // IPv6 across nodes
        p(&a1, "10.244.2.2", Proto::Udp, 5353),  // UDP
        p(&a1, "10.10.0.12", Proto::Tcp, 9100),  // a node's own (host-network) port
        p(&a1, "198.51.100.7", Proto::Tcp, 80),  // outside
        p(t.outside("internet"), "10.244.2.2", Proto::Tcp, 80),
        p(&a1, "10.244.2.2", Proto::Tcp, 81), // nobody listens: refused, not through
    ];
    let want = [true, true, true, true, true, true, true, false];
    assert_eq!(probe_all(&probes, Duration::from_millis(800)), want);

    // Drop TCP 80 to b1 in node b's forward hook: only those probes change.
    in_netns(
        t.node("b"),
        &[
            "nft",
            "add table inet t; add chain inet t f { type filter hook forward priority 0; }; add rule inet t f tcp dport 80 ip daddr 10.244.2.2 drop",
        ],
    );
    let got = probe_all(&probes, Duration::from_millis(800));
    assert_eq!(got, [true, false, true, true, true, true, false, false]);
}
