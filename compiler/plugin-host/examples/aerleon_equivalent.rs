//! Render, with the real nftables plugin, the ringfence equivalent of the
//! Aerleon policy `bench/aerleon/gen.py` writes (same addresses, same terms)
//! and write it to the file named by the first argument. Used by
//! `bench/aerleon/run.sh`.
//!
//! Aerleon's terms match source *and* destination tokens in one `INPUT`
//! chain. In ringfence the destination is the endpoint: every address of a
//! destination token is a local endpoint whose ingress chain holds, in
//! order, the terms with that destination (then a catch-all deny), and the
//! source token is the rule's peer set.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ringfence_plugin_host::{Host, Limits};
use ringfence_schema::ir::*;
use ringfence_schema::net::{AddressSet, PortRange, Proto};

const TOKENS: usize = 50;
const V4: usize = 400;
const V6: usize = 100;
const TERMS: usize = 200;

fn v4(t: usize, j: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        10,
        t as u8,
        (j / 128) as u8,
        (2 * (j % 128)) as u8,
    ))
}

fn v6(t: usize, j: usize) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(
        0x2001,
        0xdb8,
        t as u16,
        0,
        0,
        0,
        0,
        (2 * j + 1) as u16,
    ))
}

fn token(t: usize) -> Vec<IpAddr> {
    (0..V4)
        .map(|j| v4(t, j))
        .chain((0..V6).map(|j| v6(t, j)))
        .collect()
}

fn ports(i: usize) -> Vec<PortRange> {
    let i = i as u16;
    vec![
        PortRange {
            start: 1000 + 10 * i,
            end: 1005 + 10 * i,
        },
        PortRange {
            start: 20000 + i,
            end: 20002 + i,
        },
    ]
}

fn main() {
    let out = std::env::args()
        .nth(1)
        .expect("usage: aerleon_equivalent OUT.nft");
    let sets: Vec<AddressSet> = (0..TOKENS)
        .map(|t| {
            AddressSet::new(
                format!("net{t:02}"),
                token(t).into_iter().map(ipnet::IpNet::from),
            )
        })
        .collect();
    let mut policies = Vec::new();
    let mut chains: Vec<Chain> = (0..TOKENS)
        .map(|b| Chain {
            id: format!("dst{b:02}"),
            direction: Direction::Ingress,
            mode: Mode::Enforce,
            rules: Vec::new(),
        })
        .collect();
    let policy = |id: &str, action| PolicyInfo {
        id: id.into(),
        name: id.into(),
        scope: "bench".into(),
        rank: Rank::Default,
        action,
        file: "bench.pol".into(),
        line: 1,
        column: 1,
    };
    for i in 0..TERMS {
        chains[(7 * i) % TOKENS].rules.push(Rule {
            id: format!("t{i}"),
            policy: format!("t{i:03}"),
            action: Action::Allow,
            peer: Some(format!("net{:02}", i % TOKENS)),
            proto: Proto::Tcp,
            ports: ports(i),
            log: false,
        });
        policies.push(policy(&format!("t{i:03}"), Action::Allow));
    }
    for c in &mut chains {
        c.rules.push(Rule {
            id: format!("{}-default", c.id),
            policy: "default-deny".into(),
            action: Action::Deny,
            peer: None,
            proto: Proto::Any,
            ports: Vec::new(),
            log: false,
        });
    }
    policies.push(policy("default-deny", Action::Deny));
    policies.sort_by(|a, b| a.id.cmp(&b.id));
    let mut endpoints: Vec<Endpoint> = (0..TOKENS)
        .flat_map(|b| {
            token(b).into_iter().map(move |a| Endpoint {
                name: format!("pod/net{b:02}/{a}"),
                kind: EndpointKind::Pod,
                workload: format!("net{b:02}"),
                local: true,
                addresses: vec![a],
                ports: Vec::new(),
                ingress: format!("dst{b:02}"),
                egress: None,
            })
        })
        .collect();
    endpoints.sort_by(|a, b| a.name.cmp(&b.name));
    let ir = NodeIr {
        ir_version: IR_VERSION,
        cluster: "bench".into(),
        node: "aerleon-equivalent".into(),
        os: Os::Linux,
        backend: "nftables".into(),
        addresses: Vec::new(),
        pod_cidrs: Vec::new(),
        unknown_pods: ringfence_schema::ir::Action::Deny,
        unmanaged: Vec::new(),
        live: false,
        endpoints,
        exposures: Vec::new(),
        chains,
        sets,
        policies,
    };
    ir.validate().expect("valid IR");
    let host = Host::new(Limits::default()).expect("host starts");
    let started = std::time::Instant::now();
    let rendered = host
        .builtin("nftables")
        .unwrap()
        .render(&ir)
        .expect("renders");
    eprintln!(
        "ringfence: rendered in {:.3} s",
        started.elapsed().as_secs_f64()
    );
    std::fs::write(&out, &rendered.artifacts[0].content).expect("writes the output");
}
