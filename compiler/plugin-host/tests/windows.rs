//! The Windows backend's allow-only lowering means exactly
//! `NodeIr::evaluate`: `rules.json` is parsed back and evaluated with
//! block-wins semantics (a flow passes iff some outbound allow rule matches
//! it leaving its source and some inbound allow rule matches it reaching its
//! destination; the default is block) over many random flows of random IRs.
//! Flows arriving on a NodePort or LoadBalancer exposure are let in iff
//! every target kube-proxy may pick admits them (`NodeIr::evaluate_exposure`,
//! intersected over the targets).

use std::net::IpAddr;

use proptest::prelude::{ProptestConfig, TestCaseError, any, proptest};
use ringfence_plugin_host::Capability;
use ringfence_schema::ir::Action::{Allow, Deny};
use ringfence_schema::ir::Direction::{Egress, Ingress};
use ringfence_schema::ir::EndpointKind::{HostPod, Node, Pod};
use ringfence_schema::ir::*;
use ringfence_schema::net::{AddressSet, Proto};
use serde::Deserialize;

use crate::common::*;
use ringfence_testkit::text::assert_contains;

/// `rules.json`, read independently of the plugin's own types.
#[derive(Deserialize)]
struct RuleSet {
    group: String,
    generation: String,
    rules: Vec<FwRule>,
}

#[derive(Deserialize)]
struct FwRule {
    name: String,
    direction: String,
    protocol: String,
    local_address: Vec<String>,
    remote_address: Vec<String>,
    #[serde(default)]
    local_port: Vec<String>,
    #[serde(default)]
    remote_port: Vec<String>,
}

fn addr_matches(items: &[String], a: IpAddr) -> bool {
    items.iter().any(|item| {
        if item == "Any" {
            return true;
        }
        if let Some((lo, hi)) = item.split_once('-') {
            let (lo, hi): (IpAddr, IpAddr) = (lo.parse().unwrap(), hi.parse().unwrap());
            return lo.is_ipv4() == a.is_ipv4() && lo <= a && a <= hi;
        }
        let net: ipnet::IpNet = if item.contains('/') {
            item.parse().unwrap()
        } else {
            ipnet::IpNet::from(item.parse::<IpAddr>().unwrap())
        };
        net.contains(&a)
    })
}

fn port_matches(items: &[String], port: Option<u16>) -> bool {
    if items.is_empty() {
        return true;
    }
    let Some(p) = port else { return false };
    items.iter().any(|i| match i.split_once('-') {
        Some((a, b)) => a.parse::<u16>().unwrap() <= p && p <= b.parse().unwrap(),
        None => i.parse::<u16>().unwrap() == p,
    })
}

fn proto_matches(rule: &str, proto: Proto, dst: IpAddr) -> bool {
    match rule {
        "Any" => true,
        "TCP" => proto == Proto::Tcp,
        "UDP" => proto == Proto::Udp,
        "132" => proto == Proto::Sctp,
        "ICMPv4" => proto == Proto::Icmp && dst.is_ipv4(),
        "ICMPv6" => proto == Proto::Icmp && dst.is_ipv6(),
        other => panic!("unexpected protocol {other}"),
    }
}

/// Block-wins, one direction: some allow rule of `direction` lets the flow
/// through on its host (`src`'s when outbound, `dst`'s when inbound).
fn through(
    rs: &RuleSet,
    direction: &str,
    (src, dst): (IpAddr, IpAddr),
    proto: Proto,
    port: Option<u16>,
) -> bool {
    let outbound = direction == "Outbound";
    let (local, remote) = if outbound { (src, dst) } else { (dst, src) };
    rs.rules.iter().any(|r| {
        let dst_port = if outbound {
            &r.remote_port
        } else {
            &r.local_port
        };
        r.direction == direction
            && proto_matches(&r.protocol, proto, dst)
            && addr_matches(&r.local_address, local)
            && addr_matches(&r.remote_address, remote)
            && port_matches(dst_port, port)
    })
}

fn outbound(rs: &RuleSet, src: IpAddr, dst: IpAddr, proto: Proto, port: Option<u16>) -> bool {
    through(rs, "Outbound", (src, dst), proto, port)
}

fn inbound(rs: &RuleSet, src: IpAddr, dst: IpAddr, proto: Proto, port: Option<u16>) -> bool {
    through(rs, "Inbound", (src, dst), proto, port)
}

/// Block-wins evaluation of the rule set: allowed out and allowed in.
fn passes(rs: &RuleSet, src: IpAddr, dst: IpAddr, proto: Proto, port: Option<u16>) -> bool {
    outbound(rs, src, dst, proto, port) && inbound(rs, src, dst, proto, port)
}

/// Whether a flow arrives on an exposure (what `NodeIr::evaluate_exposure`
/// looks up; it returns no verdicts both for "none" and for "no targets").
fn on_exposure(ir: &NodeIr, dst: IpAddr, proto: Proto, port: Option<u16>) -> bool {
    ir.exposures.iter().any(|x| {
        x.proto == proto
            && Some(x.port) == port
            && match x.kind {
                ExposureKind::NodePort => ir.addresses.contains(&dst),
                ExposureKind::LoadBalancer => x.addresses.contains(&dst),
            }
    })
}

/// The meaning the Windows backend gives an exposure: a flow passes iff
/// every target kube-proxy may pick admits it (none if there is no target).
fn exposure_passes(ir: &NodeIr, src: IpAddr, dst: IpAddr, proto: Proto, port: u16) -> bool {
    let verdicts = ir.evaluate_exposure(src, dst, proto, port);
    !verdicts.is_empty() && verdicts.iter().all(|(_, v)| v.is_some_and(|v| v.passes()))
}

/// Compare `rules.json` with the IR on one flow: `NodeIr::evaluate`, or for
/// a flow arriving on an exposure, inbound with [`exposure_passes`] and
/// outbound with the source's egress side.
fn compare(
    ir: &NodeIr,
    rs: &RuleSet,
    src: IpAddr,
    dst: IpAddr,
    proto: Proto,
    port: Option<u16>,
) -> Result<(), String> {
    let flow = format!("{proto} {src} -> {dst} port {port:?}");
    if !on_exposure(ir, dst, proto, port) {
        let want = ir.evaluate(src, dst, proto, port).passes();
        let got = passes(rs, src, dst, proto, port);
        if want != got {
            return Err(format!(
                "{flow}: NodeIr::evaluate says {want}, rules.json says {got}"
            ));
        }
        return Ok(());
    }
    let p = port.expect("exposures have ports");
    let want = exposure_passes(ir, src, dst, proto, p);
    let got = inbound(rs, src, dst, proto, port);
    if want != got {
        return Err(format!(
            "{flow} (an exposure): every target admits it: {want}, rules.json inbound says {got}"
        ));
    }
    let want = ir
        .evaluate(src, dst, proto, port)
        .egress
        .is_none_or(|s| s.passes());
    let got = outbound(rs, src, dst, proto, port);
    if want != got {
        return Err(format!(
            "{flow} (an exposure): the egress side says {want}, rules.json outbound says {got}"
        ));
    }
    Ok(())
}

fn render_windows(ir: &NodeIr) -> Result<(RuleSet, String), String> {
    let out = windows().render(ir).map_err(|e| e.to_string())?;
    let names: Vec<&str> = out.artifacts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["rules.json", "rules.ps1"]);
    let rs: RuleSet = serde_json::from_str(&out.artifacts[0].content).unwrap();
    Ok((rs, out.artifacts[1].content.clone()))
}

/// A random Windows IR: pods, the node and host-network pods over a small
/// address space, so sets, ranges and flows collide often.
fn random_ir(seed: u64) -> NodeIr {
    let mut rng = rng(seed);
    let v4 = |rng: &mut Rng| format!("10.0.{}.{}", rng.index(4), rng.index(256));
    let v6 = |rng: &mut Rng| format!("fd00::{:x}", rng.index(1024));
    let mut sets: Vec<AddressSet> = Vec::new();
    for i in 0..4 {
        let mut nets = Vec::new();
        for _ in 0..rng.index(6) {
            nets.push(match rng.index(5) {
                0 => format!("{}/{}", v4(&mut rng), 22 + rng.index(11)),
                1 => format!("{}/{}", v6(&mut rng), 118 + rng.index(11)),
                2 => "0.0.0.0/0".into(),
                _ => format!("{}/32", v4(&mut rng)),
            });
        }
        let nets: Vec<&str> = nets.iter().map(String::as_str).collect();
        sets.push(set(&format!("s{i}"), &nets));
    }
    let mut rule_n = 0;
    let mut chains = Vec::new();
    for (prefix, dir) in [("in", Ingress), ("out", Egress)] {
        for c in 0..3 {
            let mut rules = Vec::new();
            for _ in 0..rng.index(7) {
                rule_n += 1;
                let proto = *rng.pick(&[
                    Proto::Tcp,
                    Proto::Tcp,
                    Proto::Udp,
                    Proto::Any,
                    Proto::Icmp,
                    Proto::Sctp,
                ]);
                let mut port_list = Vec::new();
                if proto.has_ports() && rng.chance(if proto == Proto::Sctp { 10 } else { 70 }) {
                    for _ in 0..1 + rng.index(3) {
                        let a = rng.index(200) as u16;
                        let b = a + rng.index(3) as u16 * rng.index(50) as u16;
                        port_list.push(if a == b {
                            a.to_string()
                        } else {
                            format!("{a}-{b}")
                        });
                    }
                }
                let ports: Vec<&str> = port_list.iter().map(String::as_str).collect();
                let peer = (!rng.chance(25)).then(|| format!("s{}", rng.index(4)));
                let action = if rng.chance(50) { Allow } else { Deny };
                let mut r = rule(
                    &format!("r{rule_n}"),
                    action,
                    peer.as_deref(),
                    proto,
                    &ports,
                );
                r.log = rng.chance(5);
                rules.push(r);
            }
            rule_n += 1;
            rules.push(all(
                &format!("r{rule_n}"),
                if rng.chance(50) { Allow } else { Deny },
            ));
            let mode = if rng.chance(10) {
                Mode::Analyze
            } else {
                Mode::Enforce
            };
            chains.push(chain(&format!("{prefix}{c}"), dir, mode, rules));
        }
    }
    let node_addrs = ["10.0.3.1", "fd00::301"];
    let mut endpoints = vec![endpoint(
        "node/w1",
        Node,
        true,
        &node_addrs,
        &format!("in{}", rng.index(3)),
        Some(&format!("out{}", rng.index(3))),
    )];
    for i in 0..2 + rng.index(4) {
        // Sometimes two pods claim one address: the first (by name) wins.
        let a4 = if rng.chance(15) {
            "10.0.0.9".to_string()
        } else {
            v4(&mut rng)
        };
        let a6 = v6(&mut rng);
        endpoints.push(endpoint(
            &format!("pod/app/p{i}"),
            Pod,
            rng.chance(90),
            &[&a4, &a6],
            &format!("in{}", rng.index(3)),
            Some(&format!("out{}", rng.index(3))),
        ));
    }
    for i in 0..rng.index(3) {
        let mut hp = endpoint(
            &format!("hostpod/sys/h{i}"),
            HostPod,
            true,
            &node_addrs,
            &format!("in{}", rng.index(3)),
            None,
        );
        let mut ports: Vec<ProtoPort> = (0..1 + rng.index(3))
            .map(|_| {
                let proto = rng.pick(&["tcp", "udp", "sctp"]);
                format!("{proto}/{}", rng.index(200)).try_into().unwrap()
            })
            .collect();
        ports.sort();
        ports.dedup();
        hp.ports = ports;
        endpoints.push(hp);
    }
    // Non-local endpoints have no egress.
    for e in &mut endpoints {
        if !e.local {
            e.egress = None;
        }
    }
    let exposures = random_exposures(&mut rng, &endpoints);
    ir(
        Os::Windows,
        "w1",
        &node_addrs,
        endpoints,
        chains,
        sets,
        exposures,
    )
}

/// NodePort and LoadBalancer exposures over `endpoints`. Half of them have
/// targets that agree (one ingress chain, one target port), the others
/// targets picked at random, which usually disagree; some have no target.
/// Ports collide with rule ports and host-network pods' ports, LB addresses
/// with endpoint addresses, and exposures with each other.
fn random_exposures(rng: &mut Rng, endpoints: &[Endpoint]) -> Vec<Exposure> {
    let mut out = Vec::new();
    for i in 0..rng.index(4) {
        let kind = if rng.chance(50) {
            ExposureKind::NodePort
        } else {
            ExposureKind::LoadBalancer
        };
        let proto = *rng.pick(&[Proto::Tcp, Proto::Tcp, Proto::Udp, Proto::Sctp]);
        let proto = if proto == Proto::Sctp && !rng.chance(20) {
            Proto::Tcp
        } else {
            proto
        };
        let port = if rng.chance(50) {
            30000 + rng.index(3) as u16
        } else {
            rng.index(200) as u16
        };
        let mut addresses = Vec::new();
        if kind == ExposureKind::LoadBalancer {
            for _ in 0..1 + rng.index(2) {
                addresses.push(match rng.index(4) {
                    0 => ip(&format!("198.51.100.{}", rng.index(3))),
                    1 => ip(&format!("2001:db8::{}", rng.index(3))),
                    2 => {
                        let e = rng.pick(endpoints);
                        *rng.pick(&e.addresses)
                    }
                    _ => ip(&format!("10.0.{}.{}", rng.index(4), rng.index(256))),
                });
            }
            addresses.sort();
            addresses.dedup();
        }
        let mut targets = Vec::new();
        let n = rng.index(4);
        if i % 2 == 0 {
            // Agreeing targets: endpoints sharing the first one's chain, one port.
            let first = rng.pick(endpoints);
            let port = rng.index(200) as u16;
            for e in endpoints
                .iter()
                .filter(|e| e.ingress == first.ingress)
                .take(n)
            {
                targets.push(ExposureTarget {
                    endpoint: e.name.clone(),
                    port,
                    chain: None,
                });
            }
        } else {
            for _ in 0..n {
                let endpoint = rng.pick(endpoints).name.clone();
                let port = rng.index(200) as u16;
                // Sometimes judged by another ingress chain (as pods with a
                // node-return rule are).
                let chain = (rng.index(3) == 0).then(|| rng.pick(endpoints).ingress.clone());
                targets.push(ExposureTarget {
                    endpoint,
                    port,
                    chain,
                });
            }
        }
        targets.sort();
        targets.dedup();
        out.push(Exposure {
            service: format!("app/svc{i}"),
            kind,
            proto,
            addresses,
            port,
            targets,
        });
    }
    out
}

/// Addresses worth probing: every endpoint address, every set boundary and
/// its neighbours, and a few random ones.
fn interesting(ir: &NodeIr, rng: &mut Rng) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = ir
        .endpoints
        .iter()
        .flat_map(|e| e.addresses.clone())
        .collect();
    for s in &ir.sets {
        for n in &s.v4 {
            let (a, b) = (u32::from(n.network()), u32::from(n.broadcast()));
            for x in [a.wrapping_sub(1), a, b, b.wrapping_add(1)] {
                v.push(IpAddr::V4(x.into()));
            }
        }
        for n in &s.v6 {
            let (a, b) = (u128::from(n.network()), u128::from(n.broadcast()));
            for x in [a.wrapping_sub(1), a, b, b.wrapping_add(1)] {
                v.push(IpAddr::V6(x.into()));
            }
        }
    }
    for _ in 0..8 {
        v.push(ip(&format!("10.0.{}.{}", rng.index(4), rng.index(256))));
        v.push(ip(&format!("fd00::{:x}", rng.index(1024))));
    }
    v.push(ip("192.0.2.1"));
    v.push(ip("2001:db8::1"));
    v.extend(ir.exposures.iter().flat_map(|x| x.addresses.clone()));
    v.sort();
    v.dedup();
    v
}

fn check_seed(seed: u64, flows: usize) -> Result<(), String> {
    let ir = random_ir(seed);
    let (rs, script) = match render_windows(&ir) {
        Ok(x) => x,
        Err(e) => {
            let sctp_ports = ir
                .chains
                .iter()
                .flat_map(|c| &c.rules)
                .any(|r| r.proto == Proto::Sctp && !r.ports.is_empty())
                || ir
                    .endpoints
                    .iter()
                    .any(|e| e.ports.iter().any(|p| p.proto == Proto::Sctp))
                || ir.exposures.iter().any(|x| x.proto == Proto::Sctp);
            if e.contains("SCTP") && sctp_ports {
                return Ok(()); // a refusal the backend documents
            }
            return Err(format!("seed {seed}: unexpected refusal: {e}"));
        }
    };
    assert!(rs.group.starts_with("ringfence-") && rs.group.ends_with(&rs.generation));
    assert!(
        rs.rules
            .iter()
            .all(|r| r.name.starts_with(&format!("rf-{}-", rs.generation)))
    );
    assert!(script.contains(&rs.group));
    let mut rng = rng(seed ^ 0xabcdef);
    let addrs = interesting(&ir, &mut rng);
    let mut ports: Vec<u16> = vec![0, 1, 65535];
    for r in ir.chains.iter().flat_map(|c| &c.rules) {
        for p in &r.ports {
            ports.extend([
                p.start.saturating_sub(1),
                p.start,
                p.end,
                p.end.saturating_add(1),
            ]);
        }
    }
    for e in &ir.endpoints {
        ports.extend(e.ports.iter().map(|p| p.port));
    }
    for x in &ir.exposures {
        ports.push(x.port);
        ports.extend(x.targets.iter().map(|t| t.port));
    }
    for i in 0..flows {
        // A third of the flows go to an exposure (if any), the rest anywhere.
        let to_exposure = (i % 3 == 1 && !ir.exposures.is_empty()).then(|| {
            let x = rng.pick(&ir.exposures);
            let dsts = match x.kind {
                ExposureKind::NodePort => &ir.addresses,
                ExposureKind::LoadBalancer => &x.addresses,
            };
            (*rng.pick(dsts), x.proto, x.port)
        });
        let (src, dst, proto, port) = match to_exposure {
            Some((dst, proto, port)) => {
                let same_family: Vec<IpAddr> = addrs
                    .iter()
                    .copied()
                    .filter(|a| a.is_ipv4() == dst.is_ipv4())
                    .collect();
                (*rng.pick(&same_family), dst, proto, Some(port))
            }
            None => {
                let src = *rng.pick(&addrs);
                let same_family: Vec<IpAddr> = addrs
                    .iter()
                    .copied()
                    .filter(|a| a.is_ipv4() == src.is_ipv4())
                    .collect();
                let dst = *rng.pick(&same_family);
                let proto = *rng.pick(&[Proto::Tcp, Proto::Udp, Proto::Sctp, Proto::Icmp]);
                let port = proto.has_ports().then(|| {
                    if i % 4 == 0 {
                        rng.index(65536) as u16
                    } else {
                        *rng.pick(&ports)
                    }
                });
                (src, dst, proto, port)
            }
        };
        compare(&ir, &rs, src, dst, proto, port).map_err(|e| format!("seed {seed}: {e}"))?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn lowering_equals_first_match_semantics(seed in any::<u64>()) {
        check_seed(seed, 3000).map_err(TestCaseError::fail)?;
    }
}

#[test]
fn fixtures_lower_exactly_and_deterministically() {
    let ir = fixtures::basic(Os::Windows);
    let (rs, script) = render_windows(&ir).unwrap();
    let (again, script2) = render_windows(&ir).unwrap();
    assert_eq!(rs.group, again.group, "group name is a function of the IR");
    assert_eq!(script, script2);
    let names: Vec<&str> = rs.rules.iter().map(|r| r.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.dedup();
    assert_eq!(names.len(), sorted.len(), "rule names are unique");
    // A shaded deny (internet:22 on the node after nothing) and an allow with a
    // deny exception both come out exact.
    for (src, dst, proto, port) in [
        ("203.0.113.9", "10.0.1.5", Proto::Tcp, Some(80)),
        ("203.0.113.9", "10.0.1.5", Proto::Tcp, Some(22)),
        ("10.0.1.5", "10.0.1.6", Proto::Tcp, Some(5432)),
        ("10.0.1.5", "10.0.1.6", Proto::Udp, Some(5432)),
        ("10.0.1.6", "10.0.1.5", Proto::Tcp, Some(80)),
        ("203.0.113.9", "192.168.0.10", Proto::Tcp, Some(22)),
        ("203.0.113.9", "192.168.0.10", Proto::Tcp, Some(23)),
        ("fd00:1::5", "2001:db8::1", Proto::Udp, Some(53)),
        ("fd00:1::5", "2001:db8::1", Proto::Icmp, None),
    ] {
        let (src, dst) = (ip(src), ip(dst));
        assert_eq!(
            passes(&rs, src, dst, proto, port),
            ir.evaluate(src, dst, proto, port).passes(),
            "{proto} {src} -> {dst} {port:?}"
        );
    }
    // The full fixture (host-network pod, analyze mode, logging) renders; the
    // telemetry it cannot keep is reported once, by the host, from the
    // capabilities the plugin declares (not repeated by the plugin).
    let full = fixtures::full(Os::Windows);
    let out = windows().render(&full).unwrap();
    assert!(out.warnings.iter().all(
        |w| !w.message.contains("analyze mode") && w.rule.as_deref() != Some("api-deny-logged")
    ));
    let gaps = windows().check(&full);
    assert!(gaps.iter().all(|p| !p.changes_meaning()), "{gaps:?}");
    assert!(gaps.iter().any(|p| p.capability == Capability::AnalyzeMode));
    assert!(gaps.iter().any(
        |p| p.capability == Capability::Logging && p.rule.as_deref() == Some("api-deny-logged")
    ));
    for seed in 0..20 {
        check_seed(seed, 2000).unwrap();
    }
}

#[test]
fn refusals_name_what_cannot_be_expressed() {
    let mut ir = fixtures::full(Os::Windows);
    ir.exposures[1].proto = Proto::Sctp;
    ir.validate().unwrap();
    let e = windows().render(&ir).unwrap_err().to_string();
    assert!(
        e.contains("SCTP") && e.contains("service shop/api-lb") && e.contains("sctp/443"),
        "{e}"
    );

    let mut ir = fixtures::basic(Os::Windows);
    let c = ir.chains.iter_mut().find(|c| c.id == "web_in").unwrap();
    c.rules
        .insert(0, rule("sctp-some", Allow, None, Proto::Sctp, &["9000"]));
    ir.policies.push(PolicyInfo {
        id: "app/sctp-some".into(),
        ..ir.policies[0].clone()
    });
    ir.policies.sort_by(|a, b| a.id.cmp(&b.id));
    ir.validate().unwrap();
    let e = windows().render(&ir).unwrap_err().to_string();
    assert!(
        e.contains("SCTP") && e.contains("app/sctp-some") && e.contains("`n1`"),
        "{e}"
    );

    let e = windows()
        .render(&fixtures::basic(Os::Linux))
        .unwrap_err()
        .to_string();
    assert_contains(&e, "renders Windows nodes");
}

/// A Windows node like the example's: it serves a NodePort of a local pod,
/// and a NodePort and a LoadBalancer of two remote pods whose ingress chains
/// differ, while its own ingress chain admits every node on every port.
fn exposed_ir() -> NodeIr {
    let node_addrs = ["10.10.0.21", "fd00:10::21"];
    let frontends = [("pod/shop/fe-a", 8080), ("pod/shop/fe-b", 8080)];
    ir(
        Os::Windows,
        "win-a",
        &node_addrs,
        vec![
            endpoint(
                "node/win-a",
                Node,
                true,
                &node_addrs,
                "node_in",
                Some("node_out"),
            ),
            endpoint(
                "pod/inv/inv",
                Pod,
                true,
                &["10.244.3.11"],
                "inv_in",
                Some("inv_out"),
            ),
            endpoint(
                "pod/shop/fe-a",
                Pod,
                false,
                &["10.244.1.13", "fd00:244:1::13"],
                "fe_a_in",
                None,
            ),
            endpoint(
                "pod/shop/fe-b",
                Pod,
                false,
                &["10.244.2.12", "fd00:244:2::12"],
                "fe_b_in",
                None,
            ),
        ],
        vec![
            chain(
                "node_in",
                Ingress,
                Mode::Enforce,
                vec![
                    rule("node-from-nodes", Allow, Some("nodes"), Proto::Any, &[]),
                    all("node-in-default", Deny),
                ],
            ),
            chain(
                "node_out",
                Egress,
                Mode::Enforce,
                vec![all("node-out-default", Allow)],
            ),
            chain(
                "inv_in",
                Ingress,
                Mode::Enforce,
                vec![
                    rule("inv-from-corp", Allow, Some("corp"), Proto::Tcp, &["8443"]),
                    all("inv-in-default", Deny),
                ],
            ),
            chain(
                "inv_out",
                Egress,
                Mode::Enforce,
                vec![all("inv-out-default", Allow)],
            ),
            chain(
                "fe_a_in",
                Ingress,
                Mode::Enforce,
                vec![
                    rule("fe-a-web", Allow, Some("internet"), Proto::Tcp, &["8080"]),
                    all("fe-a-default", Deny),
                ],
            ),
            chain(
                "fe_b_in",
                Ingress,
                Mode::Enforce,
                vec![
                    rule("fe-b-web", Allow, Some("corp"), Proto::Tcp, &["8080"]),
                    rule("fe-b-nodes", Allow, Some("nodes"), Proto::Tcp, &[]),
                    all("fe-b-default", Deny),
                ],
            ),
        ],
        vec![
            set("corp", &["192.0.2.0/24", "2001:db8:c0::/48"]),
            set("internet", &["0.0.0.0/0", "::/0"]),
            set(
                "nodes",
                &["10.10.0.11/32", "10.10.0.21/32", "fd00:10::21/128"],
            ),
        ],
        vec![
            exposure(
                "inv/inv",
                ExposureKind::NodePort,
                Proto::Tcp,
                &[],
                31443,
                &[("pod/inv/inv", 8443)],
            ),
            exposure(
                "shop/frontend",
                ExposureKind::NodePort,
                Proto::Tcp,
                &[],
                30080,
                &frontends,
            ),
            exposure(
                "shop/frontend",
                ExposureKind::LoadBalancer,
                Proto::Tcp,
                &["198.51.100.200"],
                80,
                &frontends,
            ),
        ],
    )
}

#[test]
fn exposures_admit_what_every_target_admits() {
    let ir = exposed_ir();
    let out = windows().render(&ir).unwrap();
    let warned: Vec<&str> = out
        .warnings
        .iter()
        .map(|w| w.message.as_str())
        .filter(|m| m.contains("admit different sources"))
        .collect();
    assert_eq!(warned.len(), 2, "one per disagreeing exposure: {warned:?}");
    assert!(warned.iter().all(|m| m.contains("service shop/frontend")));
    assert!(warned.iter().any(|m| m.contains("NodePort tcp/30080")));
    assert!(warned.iter().any(|m| m.contains("LoadBalancer tcp/80")));
    let (rs, script) = render_windows(&ir).unwrap();
    // The LB address is a local address of inbound rules; NodePorts are on
    // the node's addresses.
    assert!(rs.rules.iter().any(|r| r.direction == "Inbound"
        && r.local_address == ["198.51.100.200"]
        && r.local_port == ["80"]));
    assert_contains(&script, "LocalPort=@('31443')");
    let corp = ip("192.0.2.7");
    let outside = ip("203.0.113.9");
    let node = ip("10.10.0.21");
    let other_node = ip("10.10.0.11");
    let lb = ip("198.51.100.200");
    for (src, dst, port, want) in [
        // One target: its chain on its target port.
        (corp, node, 31443, true),
        (outside, node, 31443, false),
        // The node's own chain admits nodes on every port, but not through
        // an exposure whose target refuses them.
        (other_node, node, 31443, false),
        (other_node, node, 22, true),
        // Targets disagree: only what both admit (fe-a: anyone; fe-b: corp, nodes).
        (corp, node, 30080, true),
        (outside, node, 30080, false),
        (other_node, node, 30080, true),
        (corp, lb, 80, true),
        (outside, lb, 80, false),
        // Not an exposure port on the LB address: the node does not judge it.
        (outside, lb, 443, true),
    ] {
        assert_eq!(
            inbound(&rs, src, dst, Proto::Tcp, Some(port)),
            want,
            "{src} -> {dst}:{port}"
        );
        compare(&ir, &rs, src, dst, Proto::Tcp, Some(port)).unwrap();
    }
    // Everything else too, over the interesting addresses and ports.
    let mut rng = rng(7);
    let addrs = interesting(&ir, &mut rng);
    for &src in &addrs {
        for &dst in addrs.iter().filter(|d| d.is_ipv4() == src.is_ipv4()) {
            for port in [22, 79, 80, 81, 443, 8080, 8443, 30080, 31443] {
                compare(&ir, &rs, src, dst, Proto::Tcp, Some(port)).unwrap();
            }
            compare(&ir, &rs, src, dst, Proto::Icmp, None).unwrap();
        }
    }

    // Targets that agree: no warning, and the full range of the common chain.
    let mut agree = ir.clone();
    agree.exposures[1].targets.truncate(1);
    agree.exposures[2].targets.truncate(1);
    let out = windows().render(&agree).unwrap();
    assert!(
        !out.warnings
            .iter()
            .any(|w| w.message.contains("admit different sources")),
        "{:?}",
        out.warnings
    );
    let (rs, _) = render_windows(&agree).unwrap();
    assert!(inbound(&rs, outside, node, Proto::Tcp, Some(30080)));
    assert!(inbound(&rs, outside, lb, Proto::Tcp, Some(80)));

    // No target (externalTrafficPolicy Local, no local pod): nothing gets in.
    let mut none = ir.clone();
    none.exposures[0].targets.clear();
    let (rs, _) = render_windows(&none).unwrap();
    assert!(!inbound(&rs, corp, node, Proto::Tcp, Some(31443)));
}
