//! Seal a small bundle and verify it; the attack tests live in `attacks.rs`.

use ringfence_bundle::{
    Expectations, Reason, SigningKey, Trust, bundle_file, seal_bundle, verify_bundle,
};
use ringfence_schema::bundle::{BUNDLE_FORMAT, BackendRef, BundlePayload, SourceRef};
use ringfence_schema::ir::Os;

fn payload() -> BundlePayload {
    BundlePayload {
        format: BUNDLE_FORMAT,
        cluster: "c".into(),
        node: "n1".into(),
        os: Os::Linux,
        backend: BackendRef {
            name: "nftables".into(),
            version: "0.1.0".into(),
            sha256: "00".repeat(32),
        },
        generation: 3,
        issued_at: "2026-01-01T00:00:00Z".into(),
        expires_at: "2026-01-08T00:00:00Z".into(),
        source: SourceRef::default(),
        inventory_sha256: "11".repeat(32),
        files: vec![
            bundle_file("ir.json", "{}".into()),
            bundle_file("rules.nft", "table inet ringfence {}\n".into()),
        ],
    }
}

#[test]
fn sealed_bundle_verifies_and_is_deterministic() {
    let key = SigningKey::from_seed([7; 32]);
    let a = seal_bundle(&payload(), &[&key]);
    assert_eq!(a, seal_bundle(&payload(), &[&key]));
    let trust = Trust::new([key.trusted()], 1);
    let now = ringfence_bundle::parse_time("2026-01-02T00:00:00Z").unwrap();
    let expect = Expectations {
        node: Some("n1"),
        min_generation: Some(3),
        now: Some(now),
        index: None,
    };
    let v = verify_bundle(&a, &trust, &expect).unwrap();
    assert_eq!(v.payload.generation, 3);
    assert_eq!(v.signers, [key.keyid.clone()]);
    let other = Expectations {
        node: Some("n2"),
        ..expect.clone()
    };
    assert_eq!(
        verify_bundle(&a, &trust, &other).unwrap_err().reason,
        Reason::WrongNode
    );
    let evil = Trust::new([SigningKey::from_seed([8; 32]).trusted()], 1);
    assert_eq!(
        verify_bundle(&a, &evil, &expect).unwrap_err().reason,
        Reason::UnknownKey
    );
}
