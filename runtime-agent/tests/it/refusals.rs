//! Verification comes first: with an applier that panics ("must not be
//! reached"), every bad bundle is refused with its reason and apply never
//! runs. Needs no root.

use std::path::Path;
use std::time::SystemTime;

use ringfence_agent::agent::{Agent, BundleOutcome};
use ringfence_agent::applier::{Applier, ApplyError};
use ringfence_agent::live::Snapshot;
use ringfence_agent::state::StateDir;
use ringfence_bundle::{SigningKey, Trust};
use ringfence_schema::report::Status;

use crate::fixture::{Spec, bundle, index};
use crate::support::{config, open_state};

struct MustNotBeReached;

impl Applier for MustNotBeReached {
    fn name(&self) -> &'static str {
        "must-not-be-reached"
    }
    fn files(&self) -> &'static [&'static str] {
        &["rules.nft"]
    }
    fn check(&self, _: &Path) -> Result<(), ApplyError> {
        panic!("check must not be reached for a refused bundle")
    }
    fn apply(&self, _: &Path, _: u64) -> Result<(), ApplyError> {
        panic!("apply must not be reached for a refused bundle")
    }
    fn read(&self) -> Result<Option<Snapshot>, ApplyError> {
        Ok(None)
    }
    fn deny_files(&self) -> Result<Vec<(&'static str, &'static str)>, ApplyError> {
        panic!("deny_files must not be reached")
    }
    fn remove(&self) -> Result<(), ApplyError> {
        panic!("remove must not be reached")
    }
}

/// An agent of node n1 trusting `key` whose applier must not be reached.
fn refusing_agent(key: &SigningKey, dir: StateDir) -> Agent {
    Agent::new(
        config(Trust::new([key.trusted()], 1)),
        dir,
        Box::new(MustNotBeReached),
    )
}

#[test]
fn apply_is_never_reached_when_verification_fails() {
    let key = SigningKey::from_seed([1; 32]);
    let other = SigningKey::from_seed([2; 32]);
    let state = tempfile::tempdir().unwrap();
    let mut agent = refusing_agent(&key, open_state(state.path()));
    let now = SystemTime::now();
    let good = bundle(&Spec::small(3, &[80]), &key);
    let corrupted = ringfence_testkit::keys::tampered(&good, 40);
    let expired = bundle(
        &Spec {
            expires_at: "2020-01-01T00:00:00Z".into(),
            ..Spec::small(3, &[80])
        },
        &key,
    );
    let other_node = bundle(
        &Spec {
            node: "n2".into(),
            ..Spec::small(3, &[80])
        },
        &key,
    );
    let unindexed = index(&[(&Spec::small(2, &[80]), b"x".as_slice())], &key);
    // (expected reason, bundle, index)
    type Case = (&'static str, Vec<u8>, Option<Vec<u8>>);
    let cases: Vec<Case> = vec![
        ("bad-signature", corrupted, None),
        ("truncated", good[..good.len() / 2].to_vec(), None),
        ("unknown-key", bundle(&Spec::small(3, &[80]), &other), None),
        ("expired", expired, None),
        ("wrong-node", other_node, None),
        ("not-in-index", good.clone(), Some(unindexed)),
        ("unknown-key", good.clone(), Some(index(&[], &other))),
    ];
    for (reason, bytes, idx) in &cases {
        match agent.offer(bytes, idx.as_deref(), now) {
            BundleOutcome::Refused(e) => assert_eq!(e.reason.code(), *reason, "{e}"),
            o => panic!("{reason}: {o:?}"),
        }
    }
    let report = agent.report(now);
    assert_eq!(report.verification_failures["unknown-key"], 2);
    assert_eq!(report.verification_failures["expired"], 1);
    assert_eq!(report.apply_failures, 0);
    assert!(report.last_error.unwrap().contains("unknown-key"));
    // The last refused bytes, offered again, are not counted twice.
    let (_, bytes, idx) = cases.last().unwrap();
    assert!(matches!(
        agent.offer(bytes, idx.as_deref(), now),
        BundleOutcome::Refused(_)
    ));
    assert_eq!(agent.report(now).verification_failures["unknown-key"], 2);
    // A refusal does not make the status `failed` (nothing was attempted),
    // and its error stays while the source serves the same bytes unchanged.
    agent.clear_error();
    let report = agent.report(now);
    assert_eq!(report.status, Status::NoBundle);
    assert!(
        report
            .last_error
            .unwrap()
            .starts_with("bundle refused: unknown-key")
    );
}

#[test]
fn a_bundle_for_another_os_is_refused_before_apply() {
    // A Linux applier needs rules.nft; a bundle without it never gets applied.
    let key = SigningKey::from_seed([1; 32]);
    let spec = Spec::small(1, &[80]);
    let (_, ir) = crate::fixture::render(&spec);
    let payload = ringfence_schema::bundle::BundlePayload {
        format: 1,
        cluster: "test".into(),
        node: "n1".into(),
        os: ringfence_schema::ir::Os::Windows,
        backend: ringfence_schema::bundle::BackendRef {
            name: "windows-firewall".into(),
            version: "0".into(),
            sha256: "00".repeat(32),
        },
        generation: 1,
        issued_at: "2026-01-01T00:00:00Z".into(),
        expires_at: "2099-01-01T00:00:00Z".into(),
        source: Default::default(),
        inventory_sha256: "11".repeat(32),
        files: vec![
            ringfence_bundle::bundle_file(
                "ir.json",
                ir.replace("\"os\": \"linux\"", "\"os\": \"windows\""),
            ),
            ringfence_bundle::bundle_file("rules.ps1", "New-NetFirewallRule".into()),
        ],
    };
    let bytes = ringfence_bundle::seal_bundle(&payload, &[&key]);
    let state = tempfile::tempdir().unwrap();
    let mut agent = refusing_agent(&key, open_state(state.path()));
    match agent.offer(&bytes, None, SystemTime::now()) {
        BundleOutcome::Refused(e) => {
            assert_eq!(e.reason.code(), "missing-file");
            assert!(e.detail.contains("rules.nft"), "{e}");
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn the_committed_generation_is_a_floor_even_if_its_bundle_no_longer_verifies() {
    // The committed bundle was signed by a key no longer trusted (rotation):
    // it cannot be loaded, but nothing older than it may be applied either.
    let old_key = SigningKey::from_seed([3; 32]);
    let key = SigningKey::from_seed([1; 32]);
    let state = tempfile::tempdir().unwrap();
    let dir = open_state(state.path());
    let committed = bundle(&Spec::small(9, &[80]), &old_key);
    let rel = dir
        .store_bundle(9, &ringfence_bundle::sha256_hex(&committed), &committed)
        .unwrap();
    dir.commit(&ringfence_agent::state::Current {
        bundle: rel,
        generation: 9,
        bundle_sha256: ringfence_bundle::sha256_hex(&committed),
        rules_sha256: String::new(),
        applied_at: "2026-01-01T00:00:00Z".into(),
        snapshot: Snapshot::default(),
    })
    .unwrap();
    let mut agent = refusing_agent(&key, dir);
    let now = SystemTime::now();
    let e = agent.load(now).unwrap_err();
    assert!(e.contains("unknown-key"), "{e}");
    match agent.offer(&bundle(&Spec::small(8, &[80]), &key), None, now) {
        BundleOutcome::Refused(e) => assert_eq!(e.reason.code(), "old-generation", "{e}"),
        o => panic!("{o:?}"),
    }
}
