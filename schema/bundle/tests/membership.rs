//! One test per attack on a membership document, each asserting the exact
//! [`Reason`] it is refused with (schema/docs/membership.md), and
//! that a membership key cannot stand in for the policy key.

use crate::common::*;
use ringfence_bundle::{
    Applied, Document, MembershipExpect, Reason, Trust, VerifiedMembership, seal_delta,
    seal_envelope, seal_snapshot, verify_bundle, verify_membership,
};
use ringfence_schema::ir::NodeIr;
use ringfence_schema::membership::{
    Changes, DELTA_PAYLOAD_TYPE, DeltaPayload, MEMBERSHIP_FORMAT, MemberEndpoint, Membership,
    SNAPSHOT_JSON_PAYLOAD_TYPE, SNAPSHOT_PAYLOAD_TYPE, SetChange, SetMembers, SnapshotPayload,
};

/// A live IR: one live set, one fixed set, an ingress and an egress chain.
fn ir() -> NodeIr {
    serde_json::from_str(
        r#"{"ir_version":3,"cluster":"prod-eu1","node":"n1","os":"linux","backend":"nftables",
        "addresses":["192.168.0.10"],"live":true,
        "endpoints":[{"workload":"n1[Node]","kind":"node","local":true,"ingress":"in_n","egress":"eg_n",
          "members":[{"name":"node/n1","addresses":["192.168.0.10"]}]}],
        "chains":[
          {"id":"eg_a","direction":"egress","mode":"enforce","rules":[{"id":"all","policy":"p","action":"allow","proto":"any"}]},
          {"id":"eg_n","direction":"egress","mode":"enforce","rules":[{"id":"all","policy":"p","action":"allow","proto":"any"}]},
          {"id":"in_a","direction":"ingress","mode":"enforce","rules":[
            {"id":"web","policy":"p","action":"allow","peer":"web_1","proto":"tcp","ports":["80"]},
            {"id":"all","policy":"p","action":"deny","proto":"any"}]},
          {"id":"in_n","direction":"ingress","mode":"enforce","rules":[
            {"id":"ext","policy":"p","action":"allow","peer":"ext_1","proto":"tcp","ports":["22"]},
            {"id":"all","policy":"p","action":"allow","proto":"any"}]}],
        "sets":[{"name":"ext_1","v4":["192.0.2.0/24"]},{"name":"web_1","live":true}],
        "policies":[{"id":"p","name":"p","scope":"s","rank":"default","action":"allow","file":"f.kdl","line":1,"column":1}]}"#,
    )
    .unwrap()
}

fn membership() -> Membership {
    Membership {
        sets: vec![SetMembers {
            name: "web_1".into(),
            addresses: vec!["10.0.1.5".parse().unwrap()],
        }],
        endpoints: vec![MemberEndpoint {
            name: "pod/shop/web-1".into(),
            workload: "shop/web[Deployment]".into(),
            addresses: vec!["10.0.1.5".parse().unwrap()],
            ingress: Some("in_a".into()),
            egress: Some("eg_a".into()),
        }],
        targets: Vec::new(),
    }
}

fn snapshot(seq: u64) -> SnapshotPayload {
    SnapshotPayload {
        format: MEMBERSHIP_FORMAT,
        cluster: "prod-eu1".into(),
        node: "n1".into(),
        generation: 3,
        sequence: seq,
        issued_at: "2026-01-01T00:00:00Z".into(),
        expires_at: "2026-01-08T00:00:00Z".into(),
        membership: membership(),
    }
}

fn delta(seq: u64, previous: &str, changes: Changes) -> DeltaPayload {
    DeltaPayload {
        format: MEMBERSHIP_FORMAT,
        cluster: "prod-eu1".into(),
        node: "n1".into(),
        generation: 3,
        sequence: seq,
        previous: previous.into(),
        issued_at: "2026-01-01T00:00:00Z".into(),
        expires_at: "2026-01-08T00:00:00Z".into(),
        changes,
    }
}

fn add(set: &str, a: &str) -> Changes {
    Changes {
        sets: vec![SetChange {
            name: set.into(),
            add: vec![a.parse().unwrap()],
            remove: Vec::new(),
        }],
        ..Changes::default()
    }
}

fn zlib(b: &[u8]) -> Vec<u8> {
    miniz_oxide::deflate::compress_to_vec_zlib(b, 6)
}

/// The membership key: not the policy key.
fn mkey() -> ringfence_bundle::SigningKey {
    key_n(42)
}

fn mtrust() -> Trust {
    Trust::new([mkey().trusted()], 1)
}

fn expect<'a>(ir: &'a NodeIr, applied: Option<Applied<'a>>) -> MembershipExpect<'a> {
    MembershipExpect {
        node: "n1",
        generation: 3,
        ir: Some(ir),
        now: now(),
        applied,
    }
}

fn verify(bytes: &[u8], e: &MembershipExpect<'_>) -> Result<VerifiedMembership, Reason> {
    verify_membership(bytes, &mtrust(), e).map_err(|e| e.reason)
}

/// Why snapshot 1, changed by `edit`, is refused for `ir`.
fn refused_snapshot(ir: &NodeIr, edit: impl FnOnce(&mut SnapshotPayload)) -> Reason {
    let mut s = snapshot(1);
    edit(&mut s);
    let (b, _) = seal_snapshot(&s, &[&mkey()]);
    verify(&b, &expect(ir, None)).unwrap_err()
}

#[test]
fn a_snapshot_then_its_delta_verify_and_apply() {
    let ir = ir();
    let (s, sd) = seal_snapshot(&snapshot(10), &[&mkey()]);
    let v = verify(&s, &expect(&ir, None)).unwrap();
    assert_eq!(v.digest, sd);
    assert_eq!(v.signers, [mkey().keyid]);
    let m = v.document.apply_to(&Membership::default()).unwrap();
    assert_eq!(m, membership());
    let (d, dd) = seal_delta(&delta(11, &sd, add("web_1", "10.0.1.6")), &[&mkey()]);
    let applied = Applied {
        sequence: 10,
        digest: &sd,
    };
    let v = verify(&d, &expect(&ir, Some(applied))).unwrap();
    assert_eq!(v.digest, dd);
    let m = v.document.apply_to(&m).unwrap();
    assert_eq!(m.sets[0].addresses.len(), 2);
    // A snapshot may jump ahead (after a gap, or a restart of the publisher).
    let (s2, _) = seal_snapshot(&snapshot(50), &[&mkey()]);
    assert!(matches!(
        verify(&s2, &expect(&ir, Some(applied))).unwrap().document,
        Document::Snapshot(_)
    ));
}

#[test]
fn replayed_reordered_and_missing_documents_are_refused() {
    let ir = ir();
    let (_, sd) = seal_snapshot(&snapshot(10), &[&mkey()]);
    let at = |sequence| Applied {
        sequence,
        digest: &sd,
    };
    // The same snapshot (or an older one) again: a replay.
    for seq in [9, 10] {
        let (s, _) = seal_snapshot(&snapshot(seq), &[&mkey()]);
        assert_eq!(
            verify(&s, &expect(&ir, Some(at(10)))).unwrap_err(),
            Reason::Replay
        );
    }
    // A delta older than what is applied: reordered.
    let (d, _) = seal_delta(&delta(10, &sd, add("web_1", "10.0.1.6")), &[&mkey()]);
    assert_eq!(
        verify(&d, &expect(&ir, Some(at(10)))).unwrap_err(),
        Reason::Replay
    );
    // One skipped: a gap (the agent fetches a snapshot).
    let (d, _) = seal_delta(&delta(12, &sd, add("web_1", "10.0.1.6")), &[&mkey()]);
    assert_eq!(
        verify(&d, &expect(&ir, Some(at(10)))).unwrap_err(),
        Reason::Gap
    );
    // A delta before any snapshot: a gap too.
    assert_eq!(verify(&d, &expect(&ir, None)).unwrap_err(), Reason::Gap);
    // The right sequence after another history: a broken chain.
    let (d, _) = seal_delta(
        &delta(11, &"00".repeat(32), add("web_1", "10.0.1.6")),
        &[&mkey()],
    );
    assert_eq!(
        verify(&d, &expect(&ir, Some(at(10)))).unwrap_err(),
        Reason::BrokenChain
    );
}

#[test]
fn wrong_node_wrong_generation_and_expired_are_refused() {
    let ir = ir();
    assert_eq!(
        refused_snapshot(&ir, |s| s.node = "n2".into()),
        Reason::WrongNode
    );
    assert_eq!(
        refused_snapshot(&ir, |s| s.generation = 2),
        Reason::WrongGeneration
    );
    assert_eq!(
        refused_snapshot(&ir, |s| s.expires_at = "2026-01-01T12:00:00Z".into()),
        Reason::Expired
    );
    assert_eq!(
        refused_snapshot(&ir, |s| s.expires_at = s.issued_at.clone()),
        Reason::Malformed
    );
}

#[test]
fn names_the_bundle_does_not_declare_are_refused() {
    let ir = ir();
    // A set the bundle does not have; a fixed (not live) set; a chain it
    // does not have; a chain used the wrong way; the node's own address.
    let mut cases: Vec<Membership> = Vec::new();
    let mut m = membership();
    m.sets[0].name = "admins_9".into();
    cases.push(m);
    let mut m = membership();
    m.sets[0].name = "ext_1".into();
    cases.push(m);
    let mut m = membership();
    m.endpoints[0].ingress = Some("in_allow_everything".into());
    cases.push(m);
    let mut m = membership();
    m.endpoints[0].egress = Some("in_a".into());
    cases.push(m);
    let mut m = membership();
    m.endpoints[0].addresses = vec!["192.168.0.10".parse().unwrap()];
    cases.push(m);
    for (i, m) in cases.into_iter().enumerate() {
        assert_eq!(
            refused_snapshot(&ir, |s| s.membership = m),
            Reason::Undeclared,
            "case {i}"
        );
    }
    // The same through a delta.
    let (_, sd) = seal_snapshot(&snapshot(1), &[&mkey()]);
    let (d, _) = seal_delta(&delta(2, &sd, add("admins_9", "203.0.113.9")), &[&mkey()]);
    let at = Applied {
        sequence: 1,
        digest: &sd,
    };
    assert_eq!(
        verify(&d, &expect(&ir, Some(at))).unwrap_err(),
        Reason::Undeclared
    );
}

#[test]
fn changes_that_do_not_fit_are_inconsistent() {
    let ir = ir();
    let (_, sd) = seal_snapshot(&snapshot(1), &[&mkey()]);
    let at = Applied {
        sequence: 1,
        digest: &sd,
    };
    // Adding an address that is there, removing one that is not.
    for ch in [
        add("web_1", "10.0.1.5"),
        Changes {
            sets: vec![SetChange {
                name: "web_1".into(),
                add: Vec::new(),
                remove: vec!["10.0.9.9".parse().unwrap()],
            }],
            ..Changes::default()
        },
    ] {
        let (d, _) = seal_delta(&delta(2, &sd, ch), &[&mkey()]);
        let v = verify(&d, &expect(&ir, Some(at))).unwrap();
        let e = v.document.apply_to(&membership()).unwrap_err();
        assert_eq!(e.reason, Reason::Inconsistent, "{e}");
    }
}

#[test]
fn envelope_attacks_are_refused_like_a_bundles() {
    let ir = ir();
    let (good, _) = seal_snapshot(&snapshot(1), &[&mkey()]);
    // Cut anywhere: truncated.
    for cut in [1, good.len() / 2, good.len() - 1] {
        assert_eq!(
            verify(&good[..cut], &expect(&ir, None)).unwrap_err(),
            Reason::Truncated
        );
    }
    // A flipped payload byte: bad signature.
    let mut env = envelope(&good);
    let mut p = unb64(&env.payload);
    p[20] ^= 1;
    env.payload = b64(&p);
    assert_eq!(
        verify(&file(&env), &expect(&ir, None)).unwrap_err(),
        Reason::BadSignature
    );
    // Signed by the policy key only: unknown to the membership trust.
    let (by_policy, _) = seal_snapshot(&snapshot(1), &[&key()]);
    assert_eq!(
        verify(&by_policy, &expect(&ir, None)).unwrap_err(),
        Reason::UnknownKey
    );
    // Two keys required, one signed.
    let two = Trust::new([mkey().trusted(), key_n(43).trusted()], 2);
    assert_eq!(
        verify_membership(&good, &two, &expect(&ir, None))
            .unwrap_err()
            .reason,
        Reason::Threshold
    );
    // A bundle is not a membership document.
    assert_eq!(
        verify(&bundle(), &expect(&ir, None)).unwrap_err(),
        Reason::UnsupportedFormat
    );
    // A newer format.
    let mut s = serde_json::to_value(snapshot(1)).unwrap();
    s["format"] = 2.into();
    let b = seal_envelope(
        SNAPSHOT_PAYLOAD_TYPE,
        &zlib(&serde_json::to_vec(&s).unwrap()),
        &[&mkey()],
    );
    assert_eq!(
        verify(&b, &expect(&ir, None)).unwrap_err(),
        Reason::UnsupportedFormat
    );
    // A snapshot of the first type (uncompressed JSON), as a publisher older
    // than its agents writes it: verified, with the digest of what is signed.
    let json = serde_json::to_vec(&snapshot(1)).unwrap();
    let b = seal_envelope(SNAPSHOT_JSON_PAYLOAD_TYPE, &json, &[&mkey()]);
    let v = verify(&b, &expect(&ir, None)).unwrap();
    assert_eq!(v.document, Document::Snapshot(snapshot(1)));
    assert_eq!(v.digest, ringfence_bundle::sha256_hex(&json));
    // Uncompressed JSON, or a cut stream, under the snapshot type.
    let z = zlib(&json);
    for payload in [&json[..], &z[..z.len() - 4]] {
        let b = seal_envelope(SNAPSHOT_PAYLOAD_TYPE, payload, &[&mkey()]);
        assert_eq!(
            verify(&b, &expect(&ir, None)).unwrap_err(),
            Reason::Malformed
        );
    }
    // A signed bomb: 64 KiB that would inflate past the cap.
    let bomb = zlib(&vec![b' '; ringfence_bundle::MAX_BUNDLE_BYTES + 1]);
    assert!(bomb.len() < 100 << 10, "{}", bomb.len());
    let b = seal_envelope(SNAPSHOT_PAYLOAD_TYPE, &bomb, &[&mkey()]);
    assert_eq!(
        verify(&b, &expect(&ir, None)).unwrap_err(),
        Reason::TooLarge
    );
    // A delta payload under the snapshot type, and a snapshot's under the
    // delta type.
    let d = serde_json::to_vec(&delta(2, "x", Changes::default())).unwrap();
    let b = seal_envelope(SNAPSHOT_PAYLOAD_TYPE, &zlib(&d), &[&mkey()]);
    assert_eq!(
        verify(&b, &expect(&ir, None)).unwrap_err(),
        Reason::Malformed
    );
    let b = seal_envelope(DELTA_PAYLOAD_TYPE, &json, &[&mkey()]);
    assert_eq!(
        verify(&b, &expect(&ir, None)).unwrap_err(),
        Reason::Malformed
    );
    // Not canonical (unsorted addresses).
    let unsorted = vec!["10.0.1.9".parse().unwrap(), "10.0.1.5".parse().unwrap()];
    assert_eq!(
        refused_snapshot(&ir, |s| s.membership.sets[0].addresses = unsorted),
        Reason::Malformed
    );
}

#[test]
fn a_membership_key_cannot_sign_rules() {
    // A bundle sealed with the membership key (rules of its own): an agent
    // that trusts that key for membership only refuses it.
    let bytes = ringfence_bundle::seal_bundle(&payload(), &[&mkey()]);
    let e = verify_bundle(&bytes, &trust(), &crate::common::expect()).unwrap_err();
    assert_eq!(e.reason, ringfence_bundle::Reason::UnknownKey, "{e}");
    // And every reason has a distinct, stable code.
    let mut codes: Vec<&str> = Reason::ALL.iter().map(|r| r.code()).collect();
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), Reason::ALL.len());
}
