//! Realistic bundles for tests and the benchmark: an IR with one ingress
//! chain per local pod and a shared peer set, rendered the way the nftables
//! backend does (self-replacing table, named interval sets, a verdict map
//! dispatching to per-pod chains, `counter` and `comment "<rule id>"` on
//! every rule from the IR, one nft rule per address family), then sealed.

use std::fmt::Write as _;

use ringfence_bundle::{
    SigningKey, bundle_file, rules_sha256, seal_bundle, seal_index, sha256_hex,
};
use ringfence_schema::bundle::{
    BUNDLE_FORMAT, BackendRef, BundlePayload, IndexEntry, IndexPayload, SourceKind, SourceRef,
};
use ringfence_schema::ir::{NodeIr, Os};
use serde_json::json;

/// What to generate.
#[derive(Clone, Debug)]
pub(crate) struct Spec {
    pub(crate) node: String,
    pub(crate) generation: u64,
    /// Local pods; pod 0 is 10.251.2.2.
    pub(crate) pods: usize,
    /// Peer addresses beyond 10.251.1.0/24 and 10.251.9.9.
    pub(crate) peers: usize,
    /// TCP ports the peers may reach on every pod.
    pub(crate) ports: Vec<u16>,
    pub(crate) issued_at: String,
    pub(crate) expires_at: String,
}

impl Spec {
    pub(crate) fn small(generation: u64, ports: &[u16]) -> Self {
        Spec {
            node: "n1".into(),
            generation,
            pods: 1,
            peers: 0,
            ports: ports.to_vec(),
            issued_at: "2019-01-01T00:00:00Z".into(),
            expires_at: "2099-01-01T00:00:00Z".into(),
        }
    }
}

pub(crate) fn pod_addr(i: usize) -> String {
    if i == 0 {
        "10.251.2.2".into()
    } else {
        format!("10.252.{}.{}", i / 250, i % 250 + 1)
    }
}

fn peers_v4(s: &Spec) -> Vec<String> {
    let mut v = vec!["10.251.1.0/24".to_string(), "10.251.9.9".to_string()];
    v.extend((0..s.peers).map(|i| format!("10.253.{}.{}", i / 250, i % 250 + 1)));
    v
}

/// The rule ids of pod `i`.
pub(crate) fn rule_ids(s: &Spec, i: usize) -> (String, String) {
    let ports: Vec<String> = s.ports.iter().map(u16::to_string).collect();
    (
        format!("p{i}-web-{}", ports.join("-")),
        format!("p{i}-catch-all"),
    )
}

/// `rules.nft` and `ir.json`.
pub(crate) fn render(s: &Spec) -> (String, String) {
    let ports: Vec<String> = s.ports.iter().map(u16::to_string).collect();
    let ports = ports.join(", ");
    let mut nft =
        String::from("table inet ringfence\ndelete table inet ringfence\ntable inet ringfence {\n");
    let _ = writeln!(
        nft,
        "    set peers_web_v4 {{\n        type ipv4_addr; flags interval;\n        elements = {{ {} }}\n    }}",
        peers_v4(s).join(", ")
    );
    nft.push_str(
        "    set peers_web_v6 {\n        type ipv6_addr; flags interval;\n        elements = { fd00:251:1::/64 }\n    }\n",
    );
    let mut chains = Vec::new();
    let mut endpoints = Vec::new();
    for i in 0..s.pods {
        let (allow, catch) = rule_ids(s, i);
        let _ = writeln!(
            nft,
            "    chain ing_p{i} {{\n        ip saddr @peers_web_v4 tcp dport {{ {ports} }} counter accept comment \"{allow}\"\n        ip6 saddr @peers_web_v6 tcp dport {{ {ports} }} counter accept comment \"{allow}\"\n        counter drop comment \"{catch}\"\n    }}"
        );
        chains.push(json!({
            "id": format!("ing_p{i}"), "direction": "ingress", "mode": "enforce",
            "rules": [
                {"id": allow, "policy": "shop/web", "action": "allow", "peer": "peers_web",
                 "proto": "tcp", "ports": s.ports.iter().map(u16::to_string).collect::<Vec<_>>()},
                {"id": catch, "policy": "shop/catch-all-ingress", "action": "deny", "proto": "any"},
            ],
        }));
        // One group per pod: each has its own chain.
        endpoints.push(json!({
            "workload": "shop/web[Deployment]", "kind": "pod", "local": true,
            "ingress": format!("ing_p{i}"),
            "members": [{"name": format!("pod/shop/web-{i:04}"), "addresses": [pod_addr(i)]}],
        }));
    }
    let dispatch: Vec<String> = (0..s.pods)
        .map(|i| format!("{} : jump ing_p{i}", pod_addr(i)))
        .collect();
    let _ = writeln!(
        nft,
        "    map pods_in_v4 {{\n        type ipv4_addr : verdict;\n        elements = {{ {} }}\n    }}",
        dispatch.join(", ")
    );
    nft.push_str(
        "    chain forward {\n        type filter hook forward priority filter; policy accept;\n        ct state established,related accept\n        ct state invalid drop\n        ip daddr vmap @pods_in_v4\n    }\n}\n",
    );
    chains.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let v4: Vec<String> = peers_v4(s)
        .into_iter()
        .map(|p| {
            if p.contains('/') {
                p
            } else {
                format!("{p}/32")
            }
        })
        .collect();
    let ir = json!({
        "ir_version": 3, "cluster": "test", "node": s.node, "os": "linux", "backend": "nftables",
        "addresses": ["10.251.0.1"],
        "endpoints": endpoints,
        "chains": chains,
        "sets": [{"name": "peers_web", "v4": v4, "v6": ["fd00:251:1::/64"]}],
        "policies": [
            {"id": "shop/catch-all-ingress", "name": "catch-all-ingress", "scope": "shop", "rank": "catch-all",
             "action": "deny", "file": "shop.kdl", "line": 1, "column": 1},
            {"id": "shop/web", "name": "web", "scope": "shop", "rank": "default",
             "action": "allow", "file": "shop.kdl", "line": 3, "column": 5},
        ],
    });
    let ir: NodeIr = serde_json::from_value(ir).expect("fixture IR deserialises");
    ir.validate().expect("fixture IR is valid");
    (nft, serde_json::to_string_pretty(&ir).unwrap())
}

/// A signed bundle carrying `rules` and `ir`.
pub(crate) fn seal(s: &Spec, rules: String, ir: String, key: &SigningKey) -> Vec<u8> {
    let payload = BundlePayload {
        format: BUNDLE_FORMAT,
        cluster: "test".into(),
        node: s.node.clone(),
        os: Os::Linux,
        backend: BackendRef {
            name: "nftables".into(),
            version: "0.1.0".into(),
            sha256: "00".repeat(32),
        },
        generation: s.generation,
        issued_at: s.issued_at.clone(),
        expires_at: s.expires_at.clone(),
        source: SourceRef {
            repository: Some("git@example.invalid:shop/policies.git".into()),
            commit: Some(format!("{:040x}", s.generation)),
            tree: None,
            kind: SourceKind::Commit,
        },
        inventory_sha256: "11".repeat(32),
        files: vec![bundle_file("ir.json", ir), bundle_file("rules.nft", rules)],
    };
    seal_bundle(&payload, &[key])
}

/// Render and seal.
pub(crate) fn bundle(s: &Spec, key: &SigningKey) -> Vec<u8> {
    let (nft, ir) = render(s);
    seal(s, nft, ir, key)
}

/// A signed index listing `bundles` (node, generation, bytes, files digest).
pub(crate) fn index(entries: &[(&Spec, &[u8])], key: &SigningKey) -> Vec<u8> {
    let nodes = entries
        .iter()
        .map(|(s, bytes)| {
            let (nft, ir) = render(s);
            IndexEntry {
                node: s.node.clone(),
                generation: s.generation,
                sha256: sha256_hex(bytes),
                rules_sha256: rules_sha256(&[
                    bundle_file("ir.json", ir),
                    bundle_file("rules.nft", nft),
                ]),
            }
        })
        .collect();
    seal_index(
        &IndexPayload {
            format: BUNDLE_FORMAT,
            issued_at: "2026-01-01T00:00:00Z".into(),
            source: SourceRef::default(),
            inventory_sha256: "11".repeat(32),
            nodes,
        },
        &[key],
    )
}
