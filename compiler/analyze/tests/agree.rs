//! Analysis, `explain` and the per-node IRs never disagree: a large random
//! sample of flows over a synthetic cluster (pods, nodes, service cluster
//! IPs, node ports, load balancers, externals, unknown addresses; tcp, udp,
//! icmp; IPv4 and IPv6) is analysed, and every conversation's verdict and
//! deciding rules are compared with `Compiled::explain` between the two
//! addresses and with `NodeIr::evaluate` (or `evaluate_exposure`) on the
//! nodes that judge each side.

use std::net::IpAddr;

use ringfence_analyze::{Conversation, Observed};
use ringfence_core::explain::SideInfo;
use ringfence_intent::model::Proto;
use ringfence_schema::flow::NetworkVerdict;
use ringfence_schema::ir::{Action, NodeIr};
use ringfence_testkit::synth::{Params, generate};

use crate::common::{Built, analyse, build};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.next() as usize % v.len()]
    }
}

/// What flows are drawn from.
struct Pools {
    /// Addresses of every kind the cluster has.
    addrs: Vec<IpAddr>,
    /// Ports worth trying.
    ports: Vec<u16>,
    /// Service entry points: [cluster IPs with their ports, load balancers
    /// and node addresses with their service ports and node ports].
    services: [Vec<(IpAddr, Proto, u16)>; 2],
}

fn pools(b: &Built, inv: &ringfence_inventory::model::Inventory) -> Pools {
    let mut addrs: Vec<IpAddr> = Vec::new();
    let mut ports: Vec<u16> = vec![22, 53, 80, 443, 1, 65535, 9100, 5432];
    let mut services = [Vec::new(), Vec::new()];
    for c in &inv.clusters {
        addrs.extend(c.nodes.iter().flat_map(|n| n.addresses.iter().copied()));
        addrs.extend(c.pods.iter().flat_map(|p| p.ips.iter().copied()));
        ports.extend(c.pods.iter().flat_map(|p| p.ports.iter().map(|x| x.port)));
        for s in &c.services {
            addrs.extend(s.cluster_ips.iter().chain(&s.lb_ingress).copied());
            for sp in &s.ports {
                ports.push(sp.port);
                ports.extend(sp.node_port);
                services[0].extend(s.cluster_ips.iter().map(|&a| (a, sp.proto, sp.port)));
                services[1].extend(s.lb_ingress.iter().map(|&a| (a, sp.proto, sp.port)));
                if let Some(np) = sp.node_port {
                    for n in &c.nodes {
                        services[1].extend(n.addresses.iter().map(|&a| (a, sp.proto, np)));
                    }
                }
            }
        }
    }
    for w in b.compiled.catalog() {
        for n in w.nets {
            // The first addresses of every external prefix.
            let a = match n {
                ipnet::IpNet::V4(n) => IpAddr::V4((u32::from(n.network()) + 1).into()),
                ipnet::IpNet::V6(n) => IpAddr::V6((u128::from(n.network()) + 1).into()),
            };
            addrs.push(a);
        }
    }
    addrs.extend(
        ["198.51.100.77", "2001:db8:ffff::9", "10.255.255.1"].map(|a| a.parse::<IpAddr>().unwrap()),
    );
    addrs.sort();
    addrs.dedup();
    ports.sort();
    ports.dedup();
    Pools {
        addrs,
        ports,
        services,
    }
}

fn flows(rng: &mut Rng, pools: &Pools, n: usize) -> Vec<Observed> {
    let (addrs, ports) = (&pools.addrs[..], &pools.ports[..]);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let src = rng.pick(addrs);
        // A third of the flows go to a service entry point.
        let (dst, proto, port) = if rng.next().is_multiple_of(3) {
            let kind = (rng.next() % 2) as usize;
            let (a, proto, port) = rng.pick(&pools.services[kind]);
            (a, proto, Some(port))
        } else {
            let proto = match rng.next() % 10 {
                0..=6 => Proto::Tcp,
                7 | 8 => Proto::Udp,
                _ => Proto::Icmp,
            };
            (
                rng.pick(addrs),
                proto,
                proto.has_ports().then(|| rng.pick(ports)),
            )
        };
        if src == dst || src.is_ipv4() != dst.is_ipv4() {
            continue;
        }
        // Some flows carry the address the consumer used before a NAT.
        let orig = (port.is_some() && rng.next().is_multiple_of(8)).then(|| {
            let mut o = rng.pick(addrs);
            while o.is_ipv4() != dst.is_ipv4() {
                o = rng.pick(addrs);
            }
            (o, Some(rng.pick(ports)))
        });
        out.push(Observed {
            src,
            dst,
            proto,
            port,
            orig,
            packets: 1,
            bytes: 100,
            first_ns: 0,
            last_ns: 0,
            verdict: [
                None,
                Some(NetworkVerdict::Allowed),
                Some(NetworkVerdict::Dropped),
            ][rng.next() as usize % 3],
        });
    }
    out
}

fn ir<'a>(b: &'a Built, node: &str) -> &'a NodeIr {
    b.compiled
        .nodes()
        .iter()
        .find(|n| n.node == node)
        .unwrap_or_else(|| panic!("no IR for node {node}"))
}

/// `cluster IP 10.96.0.10:80 -> 10.0.1.2:8080` → (10.0.1.2, 8080).
fn target(via: &str) -> (IpAddr, u16) {
    let t = via.rsplit_once("-> ").unwrap().1;
    let (a, p) = t.rsplit_once(':').unwrap();
    (a.parse().unwrap(), p.parse().unwrap())
}

/// `node port 192.168.0.2:30080 -> …` → (192.168.0.2, 30080).
fn addressed(via: &str) -> (IpAddr, u16) {
    let a = via
        .split(" -> ")
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap();
    let (a, p) = a.rsplit_once(':').unwrap();
    (a.parse().unwrap(), p.parse().unwrap())
}

/// A side decided on a node's IR must name the same rule as the analysis.
fn same_rule(ctx: &str, side: &str, info: &SideInfo, got: Option<&ringfence_schema::ir::Rule>) {
    let got = got.unwrap_or_else(|| panic!("{ctx}: the IR does not judge {side}"));
    assert_eq!(Some(&got.id), info.rule.as_ref(), "{ctx}: {side} rule");
    assert_eq!(Some(got.action), info.action, "{ctx}: {side} action");
}

fn check(b: &Built, c: &Conversation) -> &'static str {
    let j = &c.judgement;
    let ctx = format!(
        "{} -> {} {} {:?} (orig {:?})",
        c.src, c.dst, c.proto, c.port, c.orig_dst
    );
    // explain between the addresses the verdict was taken on: the one the
    // translation names, else the destination.
    let (to, port) = match j.via.as_deref() {
        Some(via) => {
            let (a, p) = addressed(via);
            assert!(
                a == c.dst || Some(a) == c.orig_dst,
                "{ctx}: translated {a} is neither address"
            );
            (a, Some(p))
        }
        None => (c.dst, c.port),
    };
    let cc = &b.compiled;
    let x = cc
        .explain(
            &cc.peer(&c.src.to_string()).unwrap(),
            &cc.peer(&to.to_string()).unwrap(),
            c.proto,
            port,
        )
        .unwrap_or_else(|e| panic!("{ctx}: {e}"));
    assert_eq!(x.verdict, j.verdict, "{ctx}");
    assert_eq!(x.passes, j.passes, "{ctx}");
    assert_eq!(x.egress, j.egress, "{ctx}");
    assert_eq!(x.ingress, j.ingress, "{ctx}");
    assert_eq!(x.node_hop, j.node_hop, "{ctx}");

    // The per-node IRs.
    let kind = match j.via.as_deref() {
        None => {
            if let Some(node) = &j.egress.node {
                let v = ir(b, node).evaluate(c.src, c.dst, c.proto, c.port);
                same_rule(&ctx, "egress", &j.egress, v.egress.map(|s| s.rule));
            }
            if let Some(node) = &j.ingress.node {
                let v = ir(b, node).evaluate(c.src, c.dst, c.proto, c.port);
                same_rule(&ctx, "ingress", &j.ingress, v.ingress.map(|s| s.rule));
            }
            "direct"
        }
        Some(via) if via.starts_with("cluster IP") => {
            // Translated on the consumer's node: both sides see the backend.
            let (t, tp) = target(via);
            for (side, info) in [("egress", &j.egress), ("ingress", &j.ingress)] {
                let Some(node) = &info.node else { continue };
                let v = ir(b, node).evaluate(c.src, t, c.proto, Some(tp));
                let s = if side == "egress" {
                    v.egress
                } else {
                    v.ingress
                };
                same_rule(&ctx, side, info, s.map(|s| s.rule));
            }
            "cluster IP"
        }
        Some(via) => {
            // The consumer's node sees the entry point; the target's node
            // judges the target's ingress for traffic arriving on it.
            let port = port.expect("entry points have ports");
            if let Some(node) = &j.egress.node {
                let v = ir(b, node).evaluate(c.src, to, c.proto, Some(port));
                same_rule(&ctx, "egress", &j.egress, v.egress.map(|s| s.rule));
            }
            let (t, tp) = target(via);
            if let Some(node) = &j.ingress.node {
                // A node port is served by the node addressed; a load
                // balancer by every node with a target (the target's does).
                let receiver = if via.starts_with("node port") {
                    b.compiled
                        .nodes()
                        .iter()
                        .find(|n| n.addresses.contains(&to))
                        .unwrap_or_else(|| panic!("{ctx}: no node has {to}"))
                } else {
                    ir(b, node)
                };
                let served = receiver.evaluate_exposure(c.src, to, c.proto, port);
                let endpoint = j.ingress.endpoint.as_deref().unwrap();
                let (_, s) = served
                    .iter()
                    .find(|(x, _)| x.endpoint == endpoint && x.port == tp)
                    .unwrap_or_else(|| panic!("{ctx}: {} does not serve {t}:{tp}", receiver.node));
                same_rule(&ctx, "ingress", &j.ingress, s.map(|s| s.rule));
            }
            "entry point"
        }
    };
    // A side the analysis calls not managed is judged by no node.
    if !j.egress.managed && j.via.is_none() {
        assert!(
            b.compiled
                .nodes()
                .iter()
                .all(|n| n.evaluate(c.src, c.dst, c.proto, c.port).egress.is_none()),
            "{ctx}: egress is judged somewhere"
        );
    }
    kind
}

fn agree(p: Params, n: usize, seed: u64) {
    let s = generate(&p);
    let b = build(s.intent, &s.inventory);
    let pools = pools(&b, &s.inventory);
    let mut rng = Rng(seed);
    let flows = flows(&mut rng, &pools, n);
    let a = analyse(b.version("synthetic"), None, &flows);
    assert_eq!(a.totals.all.flows, n as u64);
    let mut kinds = std::collections::BTreeMap::<&str, usize>::new();
    let mut verdicts = [0usize; 2];
    for c in &a.conversations {
        *kinds.entry(check(&b, c)).or_default() += 1;
        verdicts[usize::from(c.judgement.verdict == Action::Deny)] += 1;
    }
    // The sample reaches every kind of path and both verdicts.
    for k in ["direct", "cluster IP", "entry point"] {
        assert!(kinds.get(k).copied().unwrap_or(0) > 500, "{kinds:?}");
    }
    assert!(verdicts[0] > 100 && verdicts[1] > 100, "{verdicts:?}");
}

#[test]
fn analysis_explain_and_node_irs_agree_on_a_small_cluster() {
    agree(Params::small(), 60_000, 0x9e37_79b9_7f4a_7c15);
}

#[test]
fn analysis_explain_and_node_irs_agree_on_a_larger_cluster() {
    let p = Params {
        nodes: 40,
        pods: 800,
        namespaces: 8,
        policies: 120,
        externals: 6,
        exposed_every: 3,
        ..Params::small()
    };
    agree(p, 60_000, 42);
}
