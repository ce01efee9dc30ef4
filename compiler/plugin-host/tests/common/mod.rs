//! Shared by the integration tests: one host with the real built-in
//! plugins, IR builders, a small PRNG, and `nft -c` in a throwaway netns.

#![allow(dead_code, unreachable_pub)] // helpers shared by the test modules; each uses a part

pub mod fixtures;
pub mod netns;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::OnceLock;

use ringfence_plugin_host::{Host, Limits, Plugin};
use ringfence_schema::ir::*;
use ringfence_schema::net::{AddressSet, PortRange, Proto};

/// One host per test binary: compiling the plugins once is enough.
pub fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| Host::with_cache(Limits::default(), None).expect("host starts"))
}

pub fn nft() -> &'static Plugin {
    host().builtin("nftables").expect("nftables is built in")
}

pub fn windows() -> &'static Plugin {
    host()
        .builtin("windows-firewall")
        .expect("windows-firewall is built in")
}

/// `plugins/dist/<rel>`.
pub fn dist(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../plugins/dist")
        .join(rel)
}

/// Render with the real nftables plugin and return `rules.nft`.
pub fn render_nft(ir: &NodeIr) -> String {
    let out = nft().render(ir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.artifacts.len(), 1);
    assert_eq!(out.artifacts[0].name, "rules.nft");
    out.artifacts[0].content.clone()
}

pub use ringfence_testkit::rng::Rng;

/// The test kit's generator, seeded as these tests always were, so failures
/// reproduce by seed.
pub fn rng(seed: u64) -> Rng {
    Rng::new(seed ^ 0x9e37_79b9_7f4a_7c15)
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn set(name: &str, nets: &[&str]) -> AddressSet {
    AddressSet::new(name, nets.iter().map(|n| n.parse().unwrap()))
}

pub fn ports(spec: &[&str]) -> Vec<PortRange> {
    let mut v: Vec<PortRange> = spec.iter().map(|s| s.parse().unwrap()).collect();
    ringfence_schema::net::normalize_ports(&mut v);
    v
}

pub fn rule(
    id: &str,
    action: Action,
    peer: Option<&str>,
    proto: Proto,
    port_spec: &[&str],
) -> Rule {
    Rule {
        id: id.into(),
        policy: format!("app/{id}"),
        action,
        peer: peer.map(str::to_owned),
        proto,
        ports: ports(port_spec),
        log: false,
    }
}

/// A catch-all rule.
pub fn all(id: &str, action: Action) -> Rule {
    rule(id, action, None, Proto::Any, &[])
}

pub fn chain(id: &str, direction: Direction, mode: Mode, rules: Vec<Rule>) -> Chain {
    Chain {
        id: id.into(),
        direction,
        mode,
        rules,
    }
}

pub fn endpoint(
    name: &str,
    kind: EndpointKind,
    local: bool,
    addrs: &[&str],
    ingress: &str,
    egress: Option<&str>,
) -> Endpoint {
    Endpoint {
        name: name.into(),
        kind,
        workload: name.into(),
        local,
        addresses: addrs.iter().map(|a| ip(a)).collect(),
        ports: Vec::new(),
        ingress: ingress.into(),
        egress: egress.map(str::to_owned),
    }
}

/// A NodePort or LoadBalancer entry point to `targets` (endpoint, port).
pub fn exposure(
    service: &str,
    kind: ExposureKind,
    proto: Proto,
    addresses: &[&str],
    port: u16,
    targets: &[(&str, u16)],
) -> Exposure {
    Exposure {
        service: service.into(),
        kind,
        proto,
        addresses: addresses.iter().map(|a| ip(a)).collect(),
        port,
        targets: targets
            .iter()
            .map(|&(endpoint, port)| ExposureTarget {
                endpoint: endpoint.into(),
                port,
                chain: None,
            })
            .collect(),
    }
}

/// Assemble an IR: sort everything, derive the policy table, validate.
pub fn ir(
    os: Os,
    node: &str,
    addresses: &[&str],
    mut endpoints: Vec<Endpoint>,
    mut chains: Vec<Chain>,
    mut sets: Vec<AddressSet>,
    exposures: Vec<Exposure>,
) -> NodeIr {
    endpoints.sort_by(|a, b| a.name.cmp(&b.name));
    chains.sort_by(|a, b| a.id.cmp(&b.id));
    sets.sort_by(|a, b| a.name.cmp(&b.name));
    let mut policies: Vec<PolicyInfo> = chains
        .iter()
        .flat_map(|c| &c.rules)
        .map(|r| PolicyInfo {
            id: r.policy.clone(),
            name: r.policy.clone(),
            scope: "app".into(),
            rank: Rank::Default,
            action: r.action,
            file: "app.kdl".into(),
            line: 1,
            column: 1,
        })
        .collect();
    policies.sort_by(|a, b| a.id.cmp(&b.id));
    policies.dedup_by(|a, b| a.id == b.id);
    let ir = NodeIr {
        ir_version: IR_VERSION,
        cluster: "test".into(),
        node: node.into(),
        os,
        backend: match os {
            Os::Linux => "nftables".into(),
            Os::Windows => "windows-firewall".into(),
        },
        addresses: addresses.iter().map(|a| ip(a)).collect(),
        pod_cidrs: Vec::new(),
        unknown_pods: Action::Deny,
        unmanaged: Vec::new(),
        live: false,
        endpoints,
        exposures,
        chains,
        sets,
        policies,
    };
    ir.validate()
        .unwrap_or_else(|e| panic!("test IR is invalid: {e}"));
    ir
}
