//! Shared fixtures: pinned keys, a small bundle, and envelope surgery.

#![allow(dead_code)] // each test binary uses its own subset

use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ringfence_bundle::{
    Expectations, SigningKey, Trust, bundle_file, parse_time, rules_sha256, seal_bundle, sha256_hex,
};
use ringfence_schema::bundle::{
    BUNDLE_FORMAT, BackendRef, BundlePayload, Envelope, IndexEntry, IndexPayload, SourceKind,
    SourceRef,
};
use ringfence_schema::ir::Os;

/// The compile-time key every fixture is signed with.
pub(crate) fn key() -> SigningKey {
    key_n(7)
}

/// Another key, seeded differently.
pub(crate) use ringfence_testkit::keys::key as key_n;

/// Trust in the fixture key alone.
pub(crate) fn trust() -> Trust {
    Trust::new([key().trusted()], 1)
}

pub(crate) fn t(s: &str) -> SystemTime {
    parse_time(s).unwrap()
}

/// Inside the fixture's validity window.
pub(crate) fn now() -> SystemTime {
    t("2026-01-02T00:00:00Z")
}

/// What the agent of `n1`, at generation 3, expects today.
pub(crate) fn expect() -> Expectations<'static> {
    Expectations {
        node: Some("n1"),
        min_generation: Some(3),
        now: Some(now()),
        index: None,
    }
}

pub(crate) const RULES: &str = "table inet ringfence {\n\tchain input {\n\t\ttype filter hook input priority 0; policy drop;\n\t\tct state established,related accept\n\t\ttcp dport 443 ip saddr 10.0.0.0/8 accept\n\t}\n}\n";

pub(crate) fn payload() -> BundlePayload {
    payload_for("n1", 3, "2026-01-01T00:00:00Z")
}

pub(crate) fn payload_for(node: &str, generation: u64, issued_at: &str) -> BundlePayload {
    let expires = add_days(issued_at, 7);
    BundlePayload {
        format: BUNDLE_FORMAT,
        cluster: "prod-eu1".into(),
        node: node.into(),
        os: Os::Linux,
        backend: BackendRef {
            name: "nftables".into(),
            version: "0.1.0".into(),
            sha256: "ab".repeat(32),
        },
        generation,
        issued_at: issued_at.into(),
        expires_at: expires,
        source: SourceRef {
            repository: Some("https://git.example.invalid/net/intent.git".into()),
            commit: Some("abc1234def5678abc1234def5678abc1234def56".into()),
            tree: Some("0123456789abcdef0123456789abcdef01234567".into()),
            kind: SourceKind::Commit,
        },
        inventory_sha256: "11".repeat(32),
        files: vec![
            bundle_file("ir.json", ir(node)),
            bundle_file("rules.nft", RULES.to_string()),
        ],
    }
}

/// A valid, empty IR of `node` (verification parses and validates it).
pub(crate) fn ir(node: &str) -> String {
    format!(
        r#"{{"ir_version":3,"cluster":"prod-eu1","node":"{node}","os":"linux","backend":"nftables","addresses":[],"endpoints":[],"chains":[],"sets":[],"policies":[]}}"#
    )
}

fn add_days(issued_at: &str, days: u64) -> String {
    let at = t(issued_at) + std::time::Duration::from_secs(days * 86_400);
    ringfence_bundle::format_time(at).unwrap()
}

/// The fixture bundle's bytes, signed by the fixture key.
pub(crate) fn bundle() -> Vec<u8> {
    seal_bundle(&payload(), &[&key()])
}

/// The index entry of a sealed bundle.
pub(crate) fn entry(p: &BundlePayload, bytes: &[u8]) -> IndexEntry {
    IndexEntry {
        node: p.node.clone(),
        generation: p.generation,
        sha256: sha256_hex(bytes),
        rules_sha256: rules_sha256(&p.files),
    }
}

pub(crate) fn index_of(issued_at: &str, entries: Vec<IndexEntry>) -> IndexPayload {
    IndexPayload {
        format: BUNDLE_FORMAT,
        issued_at: issued_at.into(),
        source: payload().source,
        inventory_sha256: "11".repeat(32),
        nodes: entries,
    }
}

/// Parse a sealed file back into its envelope.
pub(crate) fn envelope(bytes: &[u8]) -> Envelope {
    serde_json::from_slice(bytes).unwrap()
}

/// Write an envelope the way the sealer does (compact JSON, one newline).
pub(crate) fn file(env: &Envelope) -> Vec<u8> {
    let mut out = serde_json::to_vec(env).unwrap();
    out.push(b'\n');
    out
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

pub(crate) fn unb64(s: &str) -> Vec<u8> {
    STANDARD.decode(s).unwrap()
}
