//! The nftables output enforces exactly `NodeIr::evaluate`: random IRs over
//! a real topology of network namespaces, loaded with `nft -f` into the
//! node, probed with real TCP and UDP connections and compared probe by
//! probe with the reference semantics.
//!
//! Topology (one "node" namespace routing between the others, IPv4 + IPv6):
//!
//! ```text
//!  p1 10.99.1.2 ─┐                        ┌─ ext 10.99.9.2 (outside)
//!  p2 10.99.2.2 ─┼─ node (10.99.9.1) ─────┤
//!  p3 10.99.3.2 ─┘   host-network pod     └─ far 10.99.8.2 (pod on another node)
//! ```
//!
//! Every namespace listens on the probe ports; ICMP echo is probed too. Forward (pod↔pod, pod↔ext,
//! pod↔far), input (→ node, → host-network pod) and output (node →) are all
//! covered; exposures are tested with kube-proxy's DNAT emulated by an nft
//! nat table in the node.

use std::net::IpAddr;

use ringfence_schema::ir::Action::{Allow, Deny};
use ringfence_schema::ir::Direction::{Egress, Ingress};
use ringfence_schema::ir::EndpointKind::{HostPod, Node, Pod};
use ringfence_schema::ir::*;
use ringfence_schema::net::{AddressSet, Proto};

use crate::common::netns::{self, Listener, Netns, Probe, addr, probe, probe_many, veth};
use crate::common::*;

const PORTS: [u16; 4] = [80, 443, 8080, 9100];

/// The namespaces, their addresses and listeners.
struct Topo {
    node: Netns,
    /// (name, namespace, v4, v6) of every probe source/destination except the node.
    hosts: Vec<(&'static str, Netns, IpAddr, IpAddr)>,
    _listeners: Vec<Listener>,
}

const NODE_V4: &str = "10.99.9.1";
const NODE_V6: &str = "fd99:9::1";

impl Topo {
    fn new() -> Topo {
        let node = Netns::new("node");
        node.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        node.exec(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
        let mut hosts = Vec::new();
        for (name, net) in [("p1", 1), ("p2", 2), ("p3", 3), ("ext", 9), ("far", 8)] {
            let ns = Netns::new(name);
            let dev = format!("to-{name}");
            veth(&node, &dev, &ns, "eth0");
            addr(&node, &dev, &format!("10.99.{net}.1/24"));
            addr(&node, &dev, &format!("fd99:{net}::1/64"));
            addr(&ns, "eth0", &format!("10.99.{net}.2/24"));
            addr(&ns, "eth0", &format!("fd99:{net}::2/64"));
            ns.exec(&[
                "ip",
                "route",
                "add",
                "default",
                "via",
                &format!("10.99.{net}.1"),
            ]);
            ns.exec(&[
                "ip",
                "-6",
                "route",
                "add",
                "default",
                "via",
                &format!("fd99:{net}::1"),
            ]);
            let v4 = ip(&format!("10.99.{net}.2"));
            let v6 = ip(&format!("fd99:{net}::2"));
            hosts.push((name, ns, v4, v6));
        }
        // Listeners bind the probed addresses, so UDP replies come from the
        // address the probe was sent to (and match its conntrack entry).
        let mut listeners: Vec<Listener> = hosts
            .iter()
            .map(|(_, ns, a, b)| Listener::start(ns, &[*a, *b], &PORTS))
            .collect();
        listeners.push(Listener::start(&node, &[ip(NODE_V4), ip(NODE_V6)], &PORTS));
        // Resolve every neighbour before any ruleset is loaded, so the
        // first probes are not lost in address resolution.
        let mut from_node = Vec::new();
        for (_, ns, a, b) in &hosts {
            let warm: Vec<Probe> = [a, b]
                .into_iter()
                .map(|x| Probe {
                    proto: "udp",
                    src: *x,
                    dst: ip(&gateway(x)),
                    port: 9,
                })
                .collect();
            probe(ns, &warm);
            for x in [a, b] {
                let src = if x.is_ipv4() {
                    ip(NODE_V4)
                } else {
                    ip(NODE_V6)
                };
                from_node.push(Probe {
                    proto: "udp",
                    src,
                    dst: *x,
                    port: 80,
                });
            }
        }
        probe(&node, &from_node);
        Topo {
            node,
            hosts,
            _listeners: listeners,
        }
    }

    /// (namespace, v4, v6) of every probe endpoint, the node included.
    fn all(&self) -> Vec<(&str, &Netns, IpAddr, IpAddr)> {
        let mut v: Vec<_> = self
            .hosts
            .iter()
            .map(|(n, ns, a, b)| (*n, ns, *a, *b))
            .collect();
        v.push(("node", &self.node, ip(NODE_V4), ip(NODE_V6)));
        v
    }

    fn load(&self, text: &str) {
        self.node
            .nft_file(text, false)
            .unwrap_or_else(|e| panic!("nft -f failed: {e}\n{text}"));
        // Connections of an earlier ruleset must not count as established.
        let _ = self.node.try_exec(&["conntrack", "-F"]);
        let _ = self.node.try_exec(&["conntrack", "-f", "ipv6", "-F"]);
    }
}

/// A random IR over the topology: shared chains with random rules over
/// random sets, analyze mode, a host-network pod on random ports.
fn random_ir(seed: u64) -> NodeIr {
    let mut rng = rng(seed);
    let atoms = [
        "10.99.1.2/32",
        "10.99.2.2/32",
        "10.99.3.2/32",
        "10.99.9.2/32",
        "10.99.8.2/32",
        "10.99.9.1/32",
        "10.99.0.0/16",
        "10.99.1.0/24",
        "0.0.0.0/0",
        "fd99:1::2/128",
        "fd99:2::2/128",
        "fd99:3::2/128",
        "fd99:9::2/128",
        "fd99:8::2/128",
        "fd99:9::1/128",
        "fd99::/16",
        "::/0",
    ];
    let sets: Vec<AddressSet> = (0..5)
        .map(|i| {
            let n = 1 + rng.index(4);
            let nets: Vec<&str> = (0..n).map(|_| *rng.pick(&atoms)).collect();
            set(&format!("s{i}"), &nets)
        })
        .collect();
    let port_specs: [&[&str]; 7] = [
        &["80"],
        &["443"],
        &["8080"],
        &["9100"],
        &["8000-8100"],
        &["1-1024"],
        &["80", "9000-9200"],
    ];
    let mut chains = Vec::new();
    let mut n = 0;
    for (prefix, dir) in [("in", Ingress), ("out", Egress)] {
        for c in 0..3 {
            let mut rules = Vec::new();
            for _ in 0..1 + rng.index(6) {
                n += 1;
                let proto = *rng.pick(&[
                    Proto::Tcp,
                    Proto::Tcp,
                    Proto::Udp,
                    Proto::Udp,
                    Proto::Any,
                    Proto::Icmp,
                ]);
                let ports: &[&str] = if proto.has_ports() && rng.chance(70) {
                    rng.pick::<&[&str]>(&port_specs)
                } else {
                    &[]
                };
                let peer = (!rng.chance(25)).then(|| format!("s{}", rng.index(sets.len())));
                let action = if rng.chance(50) { Allow } else { Deny };
                let mut r = rule(&format!("r{n}"), action, peer.as_deref(), proto, ports);
                r.log = rng.chance(10);
                rules.push(r);
            }
            n += 1;
            rules.push(all(
                &format!("r{n}"),
                if rng.chance(50) { Allow } else { Deny },
            ));
            let mode = if rng.chance(20) {
                Mode::Analyze
            } else {
                Mode::Enforce
            };
            chains.push(chain(&format!("{prefix}{c}"), dir, mode, rules));
        }
    }
    let mut pick_in = || format!("in{}", rng.index(3));
    let (i1, i2, i3, i4, i5, i6) = (
        pick_in(),
        pick_in(),
        pick_in(),
        pick_in(),
        pick_in(),
        pick_in(),
    );
    let mut pick_out = || format!("out{}", rng.index(3));
    let (o1, o2, o3, o4) = (pick_out(), pick_out(), pick_out(), pick_out());
    let mut hp = endpoint(
        "hostpod/kube-system/hp",
        HostPod,
        true,
        &[NODE_V4, NODE_V6],
        &i5,
        None,
    );
    let hp_ports = ["tcp/9100", "udp/9100", "tcp/8080", "udp/443"];
    hp.ports = hp_ports
        .iter()
        .filter(|_| rng.chance(50))
        .map(|p| p.to_string().try_into().unwrap())
        .collect();
    hp.ports.sort();
    let far = endpoint(
        "pod/default/far",
        Pod,
        false,
        &["10.99.8.2", "fd99:8::2"],
        &i6,
        None,
    );
    let io = [(&i1, &o1), (&i2, &o2), (&i3, &o3), (&i4, &o4)].map(|(i, o)| (&i[..], Some(&o[..])));
    topo_ir(io, vec![hp, far], chains, sets, Vec::new())
}

/// Node `n1` of [`Topo`]: pods p1, p2, p3 and the node itself, with the
/// (ingress, egress) chains `io` gives them in that order, and `more`.
fn topo_ir(
    io: [(&str, Option<&str>); 4],
    more: Vec<Endpoint>,
    chains: Vec<Chain>,
    sets: Vec<AddressSet>,
    exposures: Vec<Exposure>,
) -> NodeIr {
    let own = [
        ("pod/default/p1", Pod, ["10.99.1.2", "fd99:1::2"]),
        ("pod/default/p2", Pod, ["10.99.2.2", "fd99:2::2"]),
        ("pod/default/p3", Pod, ["10.99.3.2", "fd99:3::2"]),
        ("node/n1", Node, [NODE_V4, NODE_V6]),
    ];
    let mut endpoints: Vec<Endpoint> = own
        .iter()
        .zip(io)
        .map(|((name, kind, addrs), (i, o))| endpoint(name, *kind, true, addrs, i, o))
        .collect();
    endpoints.extend(more);
    ir(
        Os::Linux,
        "n1",
        &[NODE_V4, NODE_V6],
        endpoints,
        chains,
        sets,
        exposures,
    )
}

fn proto_of(p: &str) -> Proto {
    if p == "tcp" { Proto::Tcp } else { Proto::Udp }
}

/// Probe every pair, both families, tcp and udp, every port; return the
/// mismatches with `expected` described.
fn check_all(t: &Topo, ir: &NodeIr, label: &str) -> Vec<String> {
    let all = t.all();
    let mut mismatches = Vec::new();
    let mut outcomes = [0usize; 2];
    let mut batches = Vec::new();
    for (sname, sns, s4, s6) in &all {
        let mut probes = Vec::new();
        for (dname, _, d4, d6) in &all {
            if sname == dname {
                continue;
            }
            for (src, dst) in [(*s4, *d4), (*s6, *d6)] {
                probes.push(Probe {
                    proto: "icmp",
                    src,
                    dst,
                    port: 0,
                });
                for proto in ["tcp", "udp"] {
                    for port in PORTS {
                        probes.push(Probe {
                            proto,
                            src,
                            dst,
                            port,
                        });
                    }
                }
            }
        }
        batches.push((*sns, probes));
    }
    let results = probe_many(&batches);
    for ((_, probes), got) in batches.iter().zip(results) {
        for (p, got) in probes.iter().zip(got) {
            let v = match p.proto {
                "icmp" => ir.evaluate(p.src, p.dst, Proto::Icmp, None),
                proto => ir.evaluate(p.src, p.dst, proto_of(proto), Some(p.port)),
            };
            outcomes[usize::from(v.passes())] += 1;
            if v.passes() != got {
                mismatches.push(format!(
                    "{label}: {} {} -> {}:{} expected {} (egress {:?}, ingress {:?}), got {}",
                    p.proto,
                    p.src,
                    p.dst,
                    p.port,
                    if v.passes() { "pass" } else { "drop" },
                    v.egress.map(|s| (&s.chain.id, &s.rule.id, s.chain.mode)),
                    v.ingress.map(|s| (&s.chain.id, &s.rule.id, s.chain.mode)),
                    if got { "pass" } else { "drop" },
                ));
            }
        }
    }
    eprintln!(
        "{label}: {} probes expected to pass, {} to drop",
        outcomes[1], outcomes[0]
    );
    assert!(
        outcomes[0] > 0 && outcomes[1] > 0,
        "{label}: a useful IR both passes and drops traffic"
    );
    mismatches
}

fn report(mismatches: Vec<String>) {
    if !mismatches.is_empty() {
        let n = mismatches.len();
        let shown: Vec<String> = mismatches.into_iter().take(25).collect();
        panic!(
            "{n} probes disagree with NodeIr::evaluate:\n{}",
            shown.join("\n")
        );
    }
}

#[test]
fn hand_written_ir_is_enforced_exactly() {
    if netns::unavailable() {
        return;
    }
    let t = Topo::new();
    // p1 serves web to ext; p2 only reaches p1 on 8080; the node may not reach p3;
    // the host-network pod answers 9100 to pods only; p3's ingress is in analyze mode.
    let mut hp = endpoint(
        "hostpod/kube-system/hp",
        HostPod,
        true,
        &[NODE_V4, NODE_V6],
        "hp_in",
        None,
    );
    hp.ports = vec!["tcp/9100".to_string().try_into().unwrap()];
    let io = [
        ("p1_in", Some("pods_out")),
        ("p2_in", Some("p2_out")),
        ("p3_in", Some("pods_out")),
        ("node_in", Some("node_out")),
    ];
    let ir = topo_ir(
        io,
        vec![hp],
        vec![
            chain(
                "p1_in",
                Ingress,
                Mode::Enforce,
                vec![
                    rule("web", Allow, Some("ext"), Proto::Tcp, &["80", "443"]),
                    rule("from-p2", Allow, Some("p2"), Proto::Any, &[]),
                    all("p1-in-deny", Deny),
                ],
            ),
            chain(
                "p2_in",
                Ingress,
                Mode::Enforce,
                vec![all("p2-in-allow", Allow)],
            ),
            chain(
                "p3_in",
                Ingress,
                Mode::Analyze,
                vec![all("p3-in-deny", Deny)],
            ),
            chain(
                "pods_out",
                Egress,
                Mode::Enforce,
                vec![
                    rule("no-udp", Deny, None, Proto::Udp, &[]),
                    all("pods-out-allow", Allow),
                ],
            ),
            chain(
                "p2_out",
                Egress,
                Mode::Enforce,
                vec![
                    rule("p2-to-p1-8080", Allow, Some("p1"), Proto::Tcp, &["8080"]),
                    rule("p2-to-node", Allow, Some("node"), Proto::Any, &[]),
                    all("p2-out-deny", Deny),
                ],
            ),
            chain(
                "node_in",
                Ingress,
                Mode::Enforce,
                vec![
                    rule("node-from-pods", Allow, Some("pods"), Proto::Any, &[]),
                    all("node-in-deny", Deny),
                ],
            ),
            chain(
                "node_out",
                Egress,
                Mode::Enforce,
                vec![
                    rule("node-not-p3", Deny, Some("p3"), Proto::Any, &[]),
                    all("node-out-allow", Allow),
                ],
            ),
            chain(
                "hp_in",
                Ingress,
                Mode::Enforce,
                vec![
                    rule("scrape", Allow, Some("pods"), Proto::Tcp, &["9100"]),
                    all("hp-deny", Deny),
                ],
            ),
        ],
        vec![
            set("ext", &["10.99.9.2/32", "fd99:9::2/128"]),
            set("node", &["10.99.9.1/32", "fd99:9::1/128"]),
            set("p1", &["10.99.1.2/32", "fd99:1::2/128"]),
            set("p2", &["10.99.2.2/32", "fd99:2::2/128"]),
            set("p3", &["10.99.3.2/32", "fd99:3::2/128"]),
            set(
                "pods",
                &[
                    "10.99.1.0/24",
                    "10.99.2.0/24",
                    "10.99.3.0/24",
                    "fd99:1::/64",
                    "fd99:2::/64",
                    "fd99:3::/64",
                ],
            ),
        ],
        Vec::new(),
    );
    let text = render_nft(&ir);
    t.load(&text);
    report(check_all(&t, &ir, "hand-written"));
}

#[test]
fn random_irs_are_enforced_exactly() {
    if netns::unavailable() {
        return;
    }
    let t = Topo::new();
    let mut mismatches = Vec::new();
    for seed in 1..=5 {
        let ir = random_ir(seed);
        let text = render_nft(&ir);
        t.load(&text);
        mismatches.extend(check_all(&t, &ir, &format!("seed {seed}")));
    }
    report(mismatches);
}

/// Each exposure with its target `pick` (mod the number of targets), that
/// target's endpoint, and the addresses the exposure is reached at.
fn picked(
    ir: &NodeIr,
    pick: usize,
) -> impl Iterator<Item = (&Exposure, &ExposureTarget, &Endpoint, Vec<IpAddr>)> {
    ir.exposures.iter().map(move |x| {
        let t = &x.targets[pick % x.targets.len()];
        let e = ir.endpoint(&t.endpoint).unwrap();
        let dsts = match x.kind {
            ExposureKind::NodePort => ir.addresses.clone(),
            ExposureKind::LoadBalancer => x.addresses.clone(),
        };
        (x, t, e, dsts)
    })
}

/// kube-proxy's DNAT for each exposure, each sending to target `pick` (mod
/// the number of targets): an nft nat table in the node.
fn kube_proxy(ir: &NodeIr, pick: usize) -> String {
    let mut s = String::from(
        "table inet kubeproxy\ndelete table inet kubeproxy\ntable inet kubeproxy {\n\tchain pre {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n",
    );
    for (x, t, e, dsts) in picked(ir, pick) {
        for d in dsts {
            let Some(to) = e.addresses.iter().find(|a| a.is_ipv4() == d.is_ipv4()) else {
                continue;
            };
            let (fam, to) = if d.is_ipv4() {
                ("ip", format!("{to}:{}", t.port))
            } else {
                ("ip6", format!("[{to}]:{}", t.port))
            };
            s += &format!(
                "\t\t{fam} daddr {d} {} dport {} dnat {fam} to {to}\n",
                x.proto, x.port
            );
        }
    }
    s += "\t}\n}\n";
    s
}

#[test]
fn exposures_are_judged_by_the_target_after_dnat() {
    if netns::unavailable() {
        return;
    }
    let t = Topo::new();
    // The load balancer address is routed to the node.
    for (_, ns, v4, _) in &t.hosts {
        ns.exec(&["ip", "route", "add", "10.99.7.100/32", "via", &gateway(v4)]);
    }
    let mut mismatches = Vec::new();
    let mut outcomes = [0usize; 2];
    for seed in 11..=13 {
        let mut ir = random_ir(seed);
        ir.exposures = vec![
            exposure(
                "default/web",
                ExposureKind::NodePort,
                Proto::Tcp,
                &[],
                30080,
                &[("pod/default/p1", 8080), ("pod/default/far", 8080)],
            ),
            exposure(
                "default/dns",
                ExposureKind::NodePort,
                Proto::Udp,
                &[],
                30053,
                &[("pod/default/p2", 443)],
            ),
            exposure(
                "default/lb",
                ExposureKind::LoadBalancer,
                Proto::Tcp,
                &["10.99.7.100"],
                80,
                &[("pod/default/p3", 80)],
            ),
        ];
        ir.validate().unwrap();
        let text = render_nft(&ir);
        t.load(&text);
        for pick in 0..2 {
            t.node
                .nft_file(&kube_proxy(&ir, pick), false)
                .unwrap_or_else(|e| panic!("{e}"));
            let _ = t.node.try_exec(&["conntrack", "-F"]);
            let _ = t.node.try_exec(&["conntrack", "-f", "ipv6", "-F"]);
            let mut batches = Vec::new();
            let mut expects = Vec::new();
            for (sname, sns, s4, s6) in &t.hosts {
                if !["ext", "p2", "p3"].contains(sname) {
                    continue;
                }
                let mut probes = Vec::new();
                let mut expect = Vec::new();
                for (x, target, e, dsts) in picked(&ir, pick) {
                    for d in dsts {
                        let src = if d.is_ipv4() { *s4 } else { *s6 };
                        // Hairpin (a pod reaching itself through the node) needs
                        // masquerading, which kube-proxy does and this test does not.
                        if e.addresses.contains(&src) {
                            continue;
                        }
                        let proto = if x.proto == Proto::Tcp { "tcp" } else { "udp" };
                        let verdicts = ir.evaluate_exposure(src, d, x.proto, x.port);
                        let v = verdicts
                            .iter()
                            .find(|(t, _)| *t == target)
                            .expect("the picked target is the exposure's");
                        let want = v.1.is_none_or(|s| s.passes());
                        outcomes[usize::from(want)] += 1;
                        expect.push((want, v.1.map(|s| s.rule.id.clone())));
                        probes.push(Probe {
                            proto,
                            src,
                            dst: d,
                            port: x.port,
                        });
                    }
                }
                batches.push((sns, probes));
                expects.push(expect);
            }
            let results = probe_many(&batches);
            for (((_, probes), expect), got) in batches.iter().zip(expects).zip(results) {
                for ((p, (want, rule)), got) in probes.iter().zip(expect).zip(got) {
                    if want != got {
                        mismatches.push(format!(
                            "seed {seed} target #{pick}: {} {} -> {}:{} expected {want} (rule {rule:?}), got {got}",
                            p.proto, p.src, p.dst, p.port
                        ));
                    }
                }
            }
        }
    }
    assert!(
        outcomes[0] > 0 && outcomes[1] > 0,
        "exposure probes both pass and drop: {outcomes:?}"
    );
    report(mismatches);
}

/// The node-side address of a host's link: `10.99.N.1`, `fd99:N::1`.
fn gateway(a: &IpAddr) -> String {
    let s = a.to_string();
    match a {
        IpAddr::V4(_) => format!("{}.1", s.rsplit_once('.').unwrap().0),
        IpAddr::V6(_) => format!("{}1", s.strip_suffix('2').unwrap()),
    }
}

#[test]
fn loading_twice_is_idempotent_and_other_tables_are_untouched() {
    if netns::unavailable() {
        return;
    }
    let ns = Netns::new("idem");
    let other = "table inet other {\n\tset keep { type ipv4_addr; elements = { 192.0.2.1 } }\n\tchain c {\n\t\ttype filter hook input priority 10; policy accept;\n\t\tip saddr @keep counter drop\n\t}\n}\ntable ip nat {\n\tchain pre {\n\t\ttype nat hook prerouting priority dstnat;\n\t\ttcp dport 30080 dnat to 10.0.0.1:80\n\t}\n}\n";
    ns.nft_file(other, false).unwrap();
    let list_other = || {
        format!(
            "{}{}",
            ns.exec(&["nft", "list", "table", "inet", "other"]),
            ns.exec(&["nft", "list", "table", "ip", "nat"])
        )
    };
    let before = list_other();
    let a = render_nft(&fixtures::full(Os::Linux));
    let b = render_nft(&fixtures::basic(Os::Linux));
    ns.nft_file(&a, false).unwrap();
    let first = ns.exec(&["nft", "list", "table", "inet", "ringfence"]);
    ns.nft_file(&a, false).unwrap();
    assert_eq!(
        ns.exec(&["nft", "list", "table", "inet", "ringfence"]),
        first,
        "second load changes nothing"
    );
    // Replacing with another IR and back leaves nothing of the other behind.
    ns.nft_file(&b, false).unwrap();
    assert_ne!(
        ns.exec(&["nft", "list", "table", "inet", "ringfence"]),
        first
    );
    ns.nft_file(&a, false).unwrap();
    assert_eq!(
        ns.exec(&["nft", "list", "table", "inet", "ringfence"]),
        first
    );
    assert_eq!(list_other(), before, "other tables untouched");
    let tables = ns.exec(&["nft", "list", "tables"]);
    assert_eq!(
        tables.lines().collect::<Vec<_>>(),
        ["table inet other", "table ip nat", "table inet ringfence"]
    );
}
