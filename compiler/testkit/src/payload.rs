//! Plausible synthetic bundle content for the sealing benchmarks: nftables
//! rules with address sets and an IR-shaped JSON document, of a chosen
//! size, from a seeded generator.

use ringfence_bundle::bundle_file;
use ringfence_schema::bundle::{BUNDLE_FORMAT, BackendRef, BundlePayload, SourceKind, SourceRef};
use ringfence_schema::ir::Os;

use crate::rng::Rng;

const POLICIES: [&str; 6] = [
    "shop/frontend-to-api",
    "shop/api-to-db",
    "payments/gateway-egress",
    "invoicing/windows-smb",
    "platform/dns",
    "platform/monitoring",
];

fn ip(rng: &mut Rng) -> String {
    format!(
        "10.{}.{}.{}",
        rng.below(64),
        rng.below(256),
        1 + rng.below(254)
    )
}

/// nftables text of about `size` bytes: sets of pod addresses, then chains.
fn rules_nft(rng: &mut Rng, size: usize) -> String {
    let mut out = String::with_capacity(size + 1024);
    out.push_str("table inet ringfence {\n");
    let mut set = 0;
    while out.len() < size / 2 {
        out.push_str(&format!(
            "\tset ep_{set} {{\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = {{ "
        ));
        for i in 0..(8 + rng.below(40)) {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&ip(rng));
        }
        out.push_str(" }\n\t}\n");
        set += 1;
    }
    let mut chain = 0;
    while out.len() < size {
        out.push_str(&format!(
            "\tchain ingress_{chain} {{\n\t\ttype filter hook input priority filter; policy drop;\n\t\tct state established,related accept\n"
        ));
        for r in 0..(10 + rng.below(30)) {
            let policy = POLICIES[rng.index(POLICIES.len())];
            out.push_str(&format!(
                "\t\tip saddr @ep_{} tcp dport {{ {}, {} }} ct state new accept comment \"{policy} rule {r}\"\n",
                rng.below(set),
                1 + rng.below(1024),
                8000 + rng.below(1000),
            ));
        }
        out.push_str("\t\tcounter log prefix \"ringfence drop \" drop\n\t}\n");
        chain += 1;
    }
    out.push_str("}\n");
    out
}

/// IR-shaped JSON of about `size` bytes.
fn ir_json(rng: &mut Rng, node: &str, size: usize) -> String {
    let mut out = String::with_capacity(size + 512);
    out.push_str(&format!(
        "{{\"ir_version\":3,\"cluster\":\"prod-eu1\",\"node\":\"{node}\",\"os\":\"linux\",\"backend\":\"nftables\",\"chains\":["
    ));
    let mut first = true;
    while out.len() < size {
        if !first {
            out.push(',');
        }
        first = false;
        let policy = POLICIES[rng.index(POLICIES.len())];
        out.push_str(&format!(
            "{{\"id\":\"r{}\",\"policy\":\"{policy}\",\"action\":\"allow\",\"peer\":\"set-{}\",\"proto\":\"tcp\",\"ports\":[{{\"start\":{},\"end\":{}}}],\"log\":false,\"addresses\":[\"{}\",\"{}\"]}}",
            rng.next() % 100_000,
            rng.below(500),
            1 + rng.below(1024),
            1024 + rng.below(1024),
            ip(rng),
            ip(rng),
        ));
    }
    out.push_str("]}");
    out
}

/// Node `i`'s payload with about `size` bytes of rules and IR (2:1).
pub fn payload(i: usize, size: usize) -> BundlePayload {
    let mut rng = Rng::new(i as u64 + 1);
    let node = format!("prod-eu1-linux-{i:04}");
    let rules = rules_nft(&mut rng, size * 2 / 3);
    let ir = ir_json(&mut rng, &node, size / 3);
    BundlePayload {
        format: BUNDLE_FORMAT,
        cluster: "prod-eu1".into(),
        node,
        os: Os::Linux,
        backend: BackendRef {
            name: "nftables".into(),
            version: "0.1.0".into(),
            sha256: "ab".repeat(32),
        },
        generation: 42,
        issued_at: "2026-01-01T00:00:00Z".into(),
        expires_at: "2026-01-08T00:00:00Z".into(),
        source: SourceRef {
            repository: Some("https://git.example.invalid/net/intent.git".into()),
            commit: Some("abc1234def5678abc1234def5678abc1234def56".into()),
            tree: None,
            kind: SourceKind::Commit,
        },
        inventory_sha256: "11".repeat(32),
        files: vec![bundle_file("ir.json", ir), bundle_file("rules.nft", rules)],
    }
}
