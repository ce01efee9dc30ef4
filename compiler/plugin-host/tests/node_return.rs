//! A NodePort's implicit node-return rule admits only what came in through
//! the exposure: compiled from intent by the real compiler, rendered by the
//! real nftables plugin, loaded into two node namespaces with kube-proxy's
//! DNAT and masquerade emulated, and probed with real TCP connections.
//!
//! ```text
//!  ext 192.0.2.10 ── n2 (node, 10.10.0.12) ── n1 (node, 10.10.0.11) ── db pod 10.244.1.12
//! ```
//!
//! Intent: an absolute `deny from="nodes" to="scope:apps"` and a default
//! allow from the external `corp` to the NodePort service `ns-a/db` (port 443
//! → 8080, node port 30120, `externalTrafficPolicy: Cluster`). The nodes and
//! their host-network pods stay denied however they address the pod; `corp`
//! gets in directly and through either node's node port.

use std::net::IpAddr;

use ringfence_core::compile;
use ringfence_schema::ir::NodeIr;
use ringfence_testkit::fixtures::node_return;

use crate::common::netns::{self, Listener, Netns, Probe, addr, probe, veth};
use crate::common::*;

const N1: &str = "10.10.0.11";
const N2: &str = "10.10.0.12";
const DB: &str = "10.244.1.12";
const EXT: &str = "192.0.2.10";

fn irs() -> (NodeIr, NodeIr) {
    let (intent, inv) = node_return();
    let (compiled, diags) = compile(&intent, &inv);
    let compiled = compiled.unwrap_or_else(|| panic!("compiles: {diags:?}"));
    let irs = compiled.into_nodes();
    let ir = |n: &str| {
        irs.iter()
            .find(|ir| ir.node == n)
            .expect("a node IR")
            .clone()
    };
    (ir("n1"), ir("n2"))
}

/// kube-proxy on a node: its node port to the pod, masqueraded.
fn kube_proxy(node_addr: &str) -> String {
    format!(
        "table ip kubeproxy {{\n\
         \tchain pre {{ type nat hook prerouting priority dstnat; policy accept;\n\
         \t\tip daddr {node_addr} tcp dport 30120 dnat to {DB}:8080\n\t}}\n\
         \tchain out {{ type nat hook output priority -100; policy accept;\n\
         \t\tip daddr {node_addr} tcp dport 30120 dnat to {DB}:8080\n\t}}\n\
         \tchain post {{ type nat hook postrouting priority srcnat; policy accept;\n\
         \t\tct status dnat masquerade\n\t}}\n}}\n"
    )
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tcp(src: &str, dst: &str, port: u16) -> Probe {
    Probe {
        proto: "tcp",
        src: ip(src),
        dst: ip(dst),
        port,
    }
}

#[test]
fn node_return_admits_forwarded_node_port_traffic_only() {
    if netns::unavailable() {
        return;
    }
    let (ir1, ir2) = irs();
    // The pod's chain starts with the node-return rule; each node's egress
    // chain starts with the guard that keeps the absolute deny for its own traffic.
    for ir in [&ir1, &ir2] {
        let node = ir.endpoint(&format!("node/{}", ir.node)).unwrap();
        let eg = ir.chain(node.egress.as_deref().unwrap()).unwrap();
        assert_eq!(
            eg.rules[0].policy, "apps/no-nodes/node-guard",
            "{}",
            ir.node
        );
        assert_eq!(eg.rules[0].action, ringfence_schema::ir::Action::Deny);
    }
    let db = ir1.endpoint("pod/ns-a/db-0").unwrap();
    assert_eq!(
        ir1.chain(&db.ingress).unwrap().rules[0].policy,
        "svc/ns-a/db/443"
    );
    // Traffic through the node port is judged without it.
    for ir in [&ir1, &ir2] {
        let target = &ir.exposures[0].targets[0];
        let chain = ir.chain(target.chain.as_deref().unwrap()).unwrap();
        assert!(chain.rules.iter().all(|r| r.policy != "svc/ns-a/db/443"));
    }

    let ext = Netns::new("ext");
    let n2 = Netns::new("n2");
    let n1 = Netns::new("n1");
    let pod = Netns::new("db");
    veth(&ext, "eth0", &n2, "to-ext");
    veth(&n2, "to-n1", &n1, "to-n2");
    veth(&n1, "to-db", &pod, "eth0");
    addr(&ext, "eth0", &format!("{EXT}/24"));
    addr(&n2, "to-ext", "192.0.2.1/24");
    addr(&n2, "to-n1", &format!("{N2}/24"));
    addr(&n1, "to-n2", &format!("{N1}/24"));
    addr(&n1, "to-db", "10.244.1.1/24");
    addr(&pod, "eth0", &format!("{DB}/24"));
    ext.exec(&["ip", "route", "add", "default", "via", "192.0.2.1"]);
    n2.exec(&["ip", "route", "add", "10.244.1.0/24", "via", N1]);
    n1.exec(&["ip", "route", "add", "192.0.2.0/24", "via", N2]);
    pod.exec(&["ip", "route", "add", "default", "via", "10.244.1.1"]);
    for n in [&n1, &n2] {
        n.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    }
    let _listener = Listener::start(&pod, &[ip(DB)], &[8080]);
    // Resolve neighbours before any ruleset is loaded.
    assert!(probe(&n1, &[tcp(N1, DB, 8080)])[0], "the topology routes");
    assert!(probe(&ext, &[tcp(EXT, DB, 8080)])[0], "the topology routes");

    for (ns, ir, a) in [(&n1, &ir1, N1), (&n2, &ir2, N2)] {
        ns.nft_file(&render_nft(ir), false)
            .unwrap_or_else(|e| panic!("nft -f: {e}"));
        ns.nft_file(&kube_proxy(a), false)
            .unwrap_or_else(|e| panic!("nft -f: {e}"));
        let _ = ns.try_exec(&["conntrack", "-F"]);
    }

    let cases = [
        (
            &ext,
            tcp(EXT, N2, 30120),
            true,
            "corp through n2's node port (forwarded to n1, masqueraded)",
        ),
        (
            &ext,
            tcp(EXT, N1, 30120),
            true,
            "corp through n1's node port",
        ),
        (&ext, tcp(EXT, DB, 8080), true, "corp to the pod directly"),
        (
            &n1,
            tcp(N1, DB, 8080),
            false,
            "n1 itself (or a host-network pod on it)",
        ),
        (
            &n2,
            tcp(N2, DB, 8080),
            false,
            "n2 itself, which n1 cannot tell from forwarded traffic",
        ),
        (
            &n1,
            tcp(N1, N1, 30120),
            false,
            "n1 itself through its own node port",
        ),
        (
            &n2,
            tcp(N2, N1, 30120),
            false,
            "n2 itself through n1's node port",
        ),
    ];
    let mut wrong = Vec::new();
    for (ns, p, want, what) in &cases {
        let got = probe(ns, std::slice::from_ref(p))[0];
        if got != *want {
            wrong.push(format!(
                "{what}: {} -> {}:{} expected {want}, got {got}",
                p.src, p.dst, p.port
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
