//! One test per attack on a bundle or index, each asserting the exact
//! [`Reason`] it is refused with (schema/docs/bundles.md).

use crate::common::*;
use ringfence_bundle::{
    Expectations, MAX_BUNDLE_BYTES, Reason, Trust, VerifyError, bundle_file, seal_bundle,
    seal_envelope, seal_index, verify_bundle, verify_index,
};
use ringfence_schema::bundle::{BUNDLE_PAYLOAD_TYPE, INDEX_PAYLOAD_TYPE};

fn refused(bytes: &[u8], trust: &Trust, expect: &Expectations<'_>) -> VerifyError {
    match verify_bundle(bytes, trust, expect) {
        Ok(v) => panic!(
            "accepted: node {} generation {}",
            v.payload.node, v.payload.generation
        ),
        Err(e) => e,
    }
}

/// `bytes` refused for `reason` under the usual trust and expectations.
fn refused_as(bytes: &[u8], reason: Reason) -> VerifyError {
    let e = refused(bytes, &trust(), &expect());
    assert_eq!(e.reason, reason, "{e}");
    e
}

#[test]
fn the_untouched_bundle_verifies() {
    let bytes = bundle();
    let v = verify_bundle(&bytes, &trust(), &expect()).unwrap();
    assert_eq!(v.payload, payload());
    assert_eq!(v.signers, [key().keyid]);
    assert_eq!(v.file("rules.nft"), Some(RULES));
    assert_eq!(
        v.rules_sha256(),
        ringfence_bundle::rules_sha256(&payload().files)
    );
    // Same input, same bytes: ed25519 signatures are deterministic.
    assert_eq!(bytes, bundle());
}

#[test]
fn flipped_byte_in_the_payload_is_a_bad_signature() {
    let bytes = bundle();
    let original = unb64(&envelope(&bytes).payload);
    // Every byte position, one bit each: the payload is what is signed.
    for i in (0..original.len()).step_by(7) {
        let mut env = envelope(&bytes);
        let mut p = original.clone();
        p[i] ^= 0x01;
        env.payload = b64(&p);
        let e = refused(&file(&env), &trust(), &expect());
        assert_eq!(e.reason, Reason::BadSignature, "byte {i}: {e}");
        assert!(e.detail.contains(&key().keyid), "{e}");
    }
}

#[test]
fn flipped_byte_in_a_signature_is_a_bad_signature() {
    let bytes = bundle();
    for i in 0..64 {
        let mut env = envelope(&bytes);
        let mut sig = unb64(&env.signatures[0].sig);
        sig[i] ^= 0x80;
        env.signatures[0].sig = b64(&sig);
        let e = refused(&file(&env), &trust(), &expect());
        assert_eq!(e.reason, Reason::BadSignature, "signature byte {i}: {e}");
    }
    // A signature that is not even base64 of 64 bytes is just as bad.
    let mut env = envelope(&bytes);
    env.signatures[0].sig = "not base64!".into();
    refused_as(&file(&env), Reason::BadSignature);
}

#[test]
fn tampered_rule_file_resigned_by_the_trusted_key_fails_its_digest() {
    // The signature is valid (the trusted key signed it), so only the file
    // digest can catch content that differs from its manifest entry.
    let mut p = payload();
    let rules = p.files.iter_mut().find(|f| f.name == "rules.nft").unwrap();
    rules.content = rules.content.replace("policy drop", "policy acce");
    assert_eq!(
        rules.content.len() as u64,
        rules.size,
        "same size, other bytes"
    );
    let bytes = seal_bundle(&p, &[&key()]);
    let e = refused_as(&bytes, Reason::DigestMismatch);
    assert!(e.detail.contains("for file rules.nft"), "{e}");

    // A size that disagrees is caught the same way.
    let mut p = payload();
    p.files[1]
        .content
        .push_str("add rule inet ringfence input accept\n");
    let e = refused_as(&seal_bundle(&p, &[&key()]), Reason::DigestMismatch);
    assert!(e.detail.contains("rules.nft"), "{e}");
}

#[test]
fn truncation_at_every_offset_is_refused_as_truncated() {
    let bytes = bundle();
    assert!(bytes.len() > 500);
    for cut in 0..bytes.len() {
        let e = refused(&bytes[..cut], &trust(), &expect());
        assert_eq!(
            e.reason,
            Reason::Truncated,
            "cut at {cut} of {}: {e}",
            bytes.len()
        );
    }
    assert!(verify_bundle(&bytes, &trust(), &expect()).is_ok());
}

#[test]
fn bytes_after_the_envelope_are_malformed() {
    let mut bytes = bundle();
    bytes.extend_from_slice(b"{}\n");
    refused_as(&bytes, Reason::Malformed);
}

#[test]
fn signature_by_an_untrusted_key_is_an_unknown_key() {
    let evil = key_n(66);
    let bytes = seal_bundle(&payload(), &[&evil]);
    let e = refused_as(&bytes, Reason::UnknownKey);
    assert!(e.detail.contains(&evil.keyid), "{e}");

    // An attacker's signature labelled with the trusted key id is a bad one.
    let mut env = envelope(&bytes);
    env.signatures[0].keyid = key().keyid;
    refused_as(&file(&env), Reason::BadSignature);

    // No signature at all.
    let unsigned = seal_bundle(&payload(), &[]);
    let e = refused_as(&unsigned, Reason::UnknownKey);
    assert!(e.detail.contains("nobody"), "{e}");
}

#[test]
fn replay_of_an_older_generation_is_refused() {
    let old = seal_bundle(&payload_for("n1", 2, "2026-01-01T00:00:00Z"), &[&key()]);
    let e = refused_as(&old, Reason::OldGeneration);
    assert!(e.detail.contains("generation 2 is older than 3"), "{e}");
}

#[test]
fn bundle_for_another_node_is_refused() {
    let other = seal_bundle(&payload_for("n2", 3, "2026-01-01T00:00:00Z"), &[&key()]);
    let e = refused_as(&other, Reason::WrongNode);
    assert!(
        e.detail.contains("`n2`") && e.detail.contains("`n1`"),
        "{e}"
    );
}

#[test]
fn expired_bundle_is_refused_from_its_expiry_instant_on() {
    let bytes = bundle();
    for at in ["2026-01-08T00:00:00Z", "2027-01-01T00:00:00Z"] {
        let expect = Expectations {
            now: Some(t(at)),
            ..expect()
        };
        let e = refused(&bytes, &trust(), &expect);
        assert_eq!(e.reason, Reason::Expired, "{at}: {e}");
    }
    let just_before = Expectations {
        now: Some(t("2026-01-07T23:59:59Z")),
        ..expect()
    };
    assert!(verify_bundle(&bytes, &trust(), &just_before).is_ok());
}

#[test]
fn future_payload_type_is_unsupported_even_when_signed() {
    let body = serde_json::to_vec(&payload()).unwrap();
    let bytes = seal_envelope("application/vnd.ringfence.bundle.v2+json", &body, &[&key()]);
    let e = refused_as(&bytes, Reason::UnsupportedFormat);
    assert!(e.detail.contains("v2"), "{e}");
    // An index is not a bundle, nor the other way round.
    let e = verify_index(&bundle(), &trust()).unwrap_err();
    assert_eq!(e.reason, Reason::UnsupportedFormat, "{e}");
}

#[test]
fn future_format_field_is_unsupported_even_with_unknown_fields() {
    // A v2 payload may carry fields v1 has never heard of: the verifier must
    // say "format 2", not "unreadable payload".
    let mut value = serde_json::to_value(payload()).unwrap();
    value["format"] = 2.into();
    value["attestations"] = serde_json::json!([{"kind": "slsa"}]);
    value.as_object_mut().unwrap().remove("files");
    let body = serde_json::to_vec(&value).unwrap();
    let bytes = seal_envelope(BUNDLE_PAYLOAD_TYPE, &body, &[&key()]);
    let e = refused_as(&bytes, Reason::UnsupportedFormat);
    assert!(e.detail.contains("format 2"), "{e}");

    let mut index = serde_json::to_value(index_of("2026-01-01T00:00:00Z", vec![])).unwrap();
    index["format"] = 2.into();
    index["snapshot"] = 1.into();
    let bytes = seal_envelope(
        INDEX_PAYLOAD_TYPE,
        &serde_json::to_vec(&index).unwrap(),
        &[&key()],
    );
    let e = verify_index(&bytes, &trust()).unwrap_err();
    assert_eq!(e.reason, Reason::UnsupportedFormat, "{e}");
}

#[test]
fn index_from_another_compile_refuses_the_bundle() {
    // Compile A at 01-01 and compile B at 01-02: same rules, other bytes.
    let a = payload_for("n1", 3, "2026-01-01T00:00:00Z");
    let b = payload_for("n1", 3, "2026-01-02T00:00:00Z");
    let (a_bytes, b_bytes) = (seal_bundle(&a, &[&key()]), seal_bundle(&b, &[&key()]));
    let n2 = payload_for("n2", 3, "2026-01-02T00:00:00Z");
    let n2_bytes = seal_bundle(&n2, &[&key()]);
    let index_b = seal_index(
        &index_of(
            "2026-01-02T00:00:00Z",
            vec![entry(&b, &b_bytes), entry(&n2, &n2_bytes)],
        ),
        &[&key()],
    );
    let index_b = verify_index(&index_b, &trust()).unwrap();
    let with_b = Expectations {
        index: Some(&index_b),
        now: Some(t("2026-01-03T00:00:00Z")),
        ..expect()
    };
    assert!(verify_bundle(&b_bytes, &trust(), &with_b).is_ok());
    let e = refused(&a_bytes, &trust(), &with_b);
    assert_eq!(e.reason, Reason::NotInIndex, "{e}");
    assert!(e.detail.contains("different compiles"), "{e}");

    // A node the index does not list at all.
    let n3 = payload_for("n3", 3, "2026-01-02T00:00:00Z");
    let e = refused(
        &seal_bundle(&n3, &[&key()]),
        &trust(),
        &Expectations {
            node: Some("n3"),
            ..with_b.clone()
        },
    );
    assert_eq!(e.reason, Reason::NotInIndex, "{e}");
    assert!(e.detail.contains("does not list node `n3`"), "{e}");
}

#[test]
fn index_listing_the_bundle_at_another_generation_refuses_it() {
    let p = payload();
    let bytes = bundle();
    let mut listed = entry(&p, &bytes);
    listed.generation = 4;
    let index = index_of("2026-01-01T00:00:00Z", vec![listed]);
    let e = refused(
        &bytes,
        &trust(),
        &Expectations {
            index: Some(&index),
            ..expect()
        },
    );
    assert_eq!(e.reason, Reason::NotInIndex, "{e}");
}

#[test]
fn tampered_index_is_refused() {
    let index = index_of("2026-01-01T00:00:00Z", vec![entry(&payload(), &bundle())]);
    let bytes = seal_index(&index, &[&key()]);
    assert_eq!(verify_index(&bytes, &trust()).unwrap(), index);
    let mut env = envelope(&bytes);
    let text = String::from_utf8(unb64(&env.payload)).unwrap();
    env.payload = b64(text
        .replace("\"generation\":3", "\"generation\":9")
        .as_bytes());
    let e = verify_index(&file(&env), &trust()).unwrap_err();
    assert_eq!(e.reason, Reason::BadSignature, "{e}");
    let evil = seal_index(&index, &[&key_n(66)]);
    assert_eq!(
        verify_index(&evil, &trust()).unwrap_err().reason,
        Reason::UnknownKey
    );
}

#[test]
fn index_with_duplicate_nodes_is_malformed() {
    let e1 = entry(&payload(), &bundle());
    let index = index_of("2026-01-01T00:00:00Z", vec![e1.clone(), e1]);
    let e = verify_index(&seal_index(&index, &[&key()]), &trust()).unwrap_err();
    assert_eq!(e.reason, Reason::Malformed, "{e}");
}

#[test]
fn threshold_two_of_three_needs_two_distinct_signers() {
    let (a, b, c) = (key_n(1), key_n(2), key_n(3));
    let trust = Trust::new([a.trusted(), b.trusted(), c.trusted()], 2);
    let one = seal_bundle(&payload(), &[&a]);
    let e = refused(&one, &trust, &expect());
    assert_eq!(e.reason, Reason::Threshold, "{e}");
    assert!(
        e.detail.contains("1 valid signature(s)") && e.detail.contains("2 required"),
        "{e}"
    );

    let two = seal_bundle(&payload(), &[&c, &a]);
    let v = verify_bundle(&two, &trust, &expect()).unwrap();
    let mut want = vec![a.keyid.clone(), c.keyid.clone()];
    want.sort();
    assert_eq!(v.signers, want);

    // Two signatures of which one is from an untrusted key are still one.
    let mixed = seal_bundle(&payload(), &[&a, &key_n(66)]);
    assert_eq!(refused(&mixed, &trust, &expect()).reason, Reason::Threshold);
    // A valid and a broken trusted signature: the broken one is reported.
    let mut env = envelope(&two);
    env.signatures[1].sig = env.signatures[0].sig.clone();
    assert_eq!(
        refused(&file(&env), &trust, &expect()).reason,
        Reason::BadSignature
    );
}

#[test]
fn duplicate_signatures_by_one_key_count_once() {
    let (a, b) = (key_n(1), key_n(2));
    let trust = Trust::new([a.trusted(), b.trusted()], 2);
    let once = seal_bundle(&payload(), &[&a]);
    let mut env = envelope(&once);
    let sig = env.signatures[0].clone();
    env.signatures.extend([sig.clone(), sig]);
    let e = refused(&file(&env), &trust, &expect());
    assert_eq!(e.reason, Reason::Threshold, "{e}");
    // The sealer itself never writes one key twice.
    let twice = seal_bundle(&payload(), &[&a, &a]);
    assert_eq!(envelope(&twice).signatures.len(), 1);
    // Trusting the same key twice does not lower the bar either.
    let same = Trust::new([a.trusted(), a.trusted()], 2);
    assert_eq!(refused(&once, &same, &expect()).reason, Reason::Threshold);
}

#[test]
fn file_names_that_escape_or_repeat_are_malformed() {
    for bad in ["../etc/passwd", "a/b", ".hidden", "Rules.nft", ""] {
        let mut p = payload();
        p.files.push(bundle_file(bad, "x".into()));
        p.files.sort_by(|a, b| a.name.cmp(&b.name));
        let e = refused(&seal_bundle(&p, &[&key()]), &trust(), &expect());
        assert_eq!(e.reason, Reason::Malformed, "`{bad}`: {e}");
    }
    let mut p = payload();
    p.files.push(bundle_file("rules.nft", "x".into()));
    let e = refused_as(&seal_bundle(&p, &[&key()]), Reason::Malformed);
    assert!(e.detail.contains("sorted and unique"), "{e}");
}

#[test]
fn a_bundle_without_its_ir_is_missing_a_file() {
    let mut p = payload();
    p.files.retain(|f| f.name != "ir.json");
    refused_as(&seal_bundle(&p, &[&key()]), Reason::MissingFile);
}

#[test]
fn an_oversized_file_is_refused_before_parsing() {
    let mut bytes = bundle();
    bytes.resize(MAX_BUNDLE_BYTES + 1, b' ');
    refused_as(&bytes, Reason::TooLarge);
}

#[test]
fn signed_nonsense_is_malformed_not_a_panic() {
    for body in [
        &b"not json"[..],
        b"{\"format\":\"1\"}",
        b"{}",
        b"{\"format\":1}",
    ] {
        let bytes = seal_envelope(BUNDLE_PAYLOAD_TYPE, body, &[&key()]);
        let e = refused(&bytes, &trust(), &expect());
        assert_eq!(
            e.reason,
            Reason::Malformed,
            "{}: {e}",
            String::from_utf8_lossy(body)
        );
    }
    // Signed times that do not parse, or a validity that ends before it starts.
    let mut p = payload();
    p.expires_at = "next week".into();
    assert_eq!(
        refused(&seal_bundle(&p, &[&key()]), &trust(), &expect()).reason,
        Reason::Malformed
    );
    let mut p = payload();
    p.expires_at = p.issued_at.clone();
    assert_eq!(
        refused(&seal_bundle(&p, &[&key()]), &trust(), &expect()).reason,
        Reason::Malformed
    );
}

#[test]
fn every_reason_has_a_distinct_stable_code() {
    let codes: std::collections::BTreeSet<&str> = Reason::ALL.iter().map(|r| r.code()).collect();
    assert_eq!(codes.len(), Reason::ALL.len());
    // Each family is refused for 15 of them; 9 are shared by every envelope.
    let count = |f: fn(Reason) -> bool| Reason::ALL.into_iter().filter(|r| f(*r)).count();
    assert_eq!(count(Reason::of_bundles), 15);
    assert_eq!(count(Reason::of_membership), 15);
    assert_eq!(count(|r| r.of_bundles() && r.of_membership()), 9);
    assert_eq!(Reason::BadSignature.to_string(), "bad-signature");
    assert_eq!(Reason::NotInIndex.code(), "not-in-index");
}

/// Issue 15 §1: a stolen key (or a pinned backend) re-signs a bundle whose
/// rules reach beyond `table inet ringfence`: the screen refuses it, with
/// the line, before any agent could load it.
#[test]
fn rules_reaching_beyond_our_table_are_unsafe_rules() {
    for (extra, line) in [
        (
            "table inet ringfence {\n    chain rt_bypass {\n        counter comment \"{\"\n    }\n}\ndelete table ip victim\n",
            "line 13",
        ),
        ("define brace = \"{\"\nflush table ip victim\n", "line 8"),
        (
            "table inet ringfence {\n    include \"/etc/shadow\"\n}\n",
            "line 9",
        ),
    ] {
        let mut p = payload();
        p.files[1] = bundle_file("rules.nft", format!("{RULES}{extra}"));
        let e = refused_as(&seal_bundle(&p, &[&key()]), Reason::UnsafeRules);
        assert!(e.detail.starts_with(&format!("rules.nft {line},")), "{e}");
    }
}

/// Issue 16 §4: `verify` refuses the `ir.json` an agent would refuse: one
/// that does not parse, is invalid, or is another node's.
#[test]
fn an_ir_the_agent_cannot_use_is_malformed() {
    for (ir, why) in [
        ("{\"node\":\"n1\"}".to_string(), "missing field"),
        (ir("n2"), "for node `n2`"),
        (ir("n1").replace("\"chains\":[]", "\"chains\":[{\"id\":\"Bad Id\",\"direction\":\"ingress\",\"mode\":\"enforce\",\"rules\":[]}]"), "chain id"),
    ] {
        let mut p = payload();
        p.files[0] = bundle_file("ir.json", ir);
        let e = refused_as(&seal_bundle(&p, &[&key()]), Reason::Malformed);
        assert!(e.detail.contains(why), "{e}");
    }
}

/// Issue 15 §9: a bundle issued later than the clock allows (beyond
/// `MAX_CLOCK_SKEW`) is refused; within the allowance it is accepted.
#[test]
fn a_bundle_from_the_future_is_not_yet_valid() {
    let at = |now: &str| Expectations {
        now: Some(t(now)),
        ..expect()
    };
    let bytes = bundle(); // issued 2026-01-01T00:00:00Z
    assert!(verify_bundle(&bytes, &trust(), &at("2025-12-31T23:55:00Z")).is_ok());
    let e = refused(&bytes, &trust(), &at("2025-12-31T23:54:59Z"));
    assert_eq!(e.reason, Reason::NotYetValid, "{e}");
    assert!(e.detail.contains("issued at 2026-01-01T00:00:00Z"), "{e}");
}

/// Issue 16 §4: one threshold rule for `verify` and the agent: distinct
/// keys count, a key given twice does not raise the bar it can meet.
#[test]
fn threshold_counts_distinct_keys() {
    let k = key().trusted();
    let e = Trust::checked(vec![k.clone(), k.clone()], 2).unwrap_err();
    assert!(e.contains("--threshold 2 with 1 distinct"), "{e}");
    assert!(Trust::checked(vec![k.clone()], 0).is_err());
    let t = Trust::checked(vec![k, key_n(9).trusted()], 2).unwrap();
    assert_eq!(t.threshold(), 2);
}
