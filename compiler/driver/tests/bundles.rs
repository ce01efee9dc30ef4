//! `write_bundles` on real directories: determinism, the generation rule,
//! removed nodes, refusals of a bad previous state, that what it writes
//! verifies, and that the digests a node's files remember are their own.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use ringfence_bundle::{
    Expectations, Reason, Trust, parse_time, sha256_hex, verify_bundle, verify_index,
};
use ringfence_driver::bundles::{
    BundleWriteError, Change, Files, NodeOutput, WriteSummary, write_bundles, write_bundles_keeping,
};
use ringfence_testkit::keys::key;

use crate::nodes::{self, opts};

fn node(name: &str, rules: &str) -> NodeOutput {
    nodes::node("prod-eu1", name, rules)
}

fn cluster(rules: &[(&str, &str)]) -> Vec<NodeOutput> {
    rules.iter().map(|(n, r)| node(n, r)).collect()
}

/// Every file in a directory, by name.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn changes(s: &WriteSummary) -> Vec<(&str, u64, Change)> {
    s.nodes
        .iter()
        .map(|n| (n.node.as_str(), n.generation, n.change))
        .collect()
}

#[test]
fn same_inputs_give_byte_identical_directories() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let k = key(1);
    let nodes = cluster(&[("n2", "b"), ("n1", "a"), ("n3", "c")]);
    let sa = write_bundles(&nodes, &opts(a.path(), &[&k], "2026-01-01T00:00:00Z")).unwrap();
    let sb = write_bundles(&nodes, &opts(b.path(), &[&k], "2026-01-01T00:00:00Z")).unwrap();
    assert_eq!(sa, sb);
    let files = snapshot(a.path());
    assert_eq!(files, snapshot(b.path()));
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        ["index.json", "n1.bundle", "n2.bundle", "n3.bundle"]
    );
    // Running again over its own output changes nothing at all.
    let again = write_bundles(&nodes, &opts(a.path(), &[&k], "2026-01-01T00:00:00Z")).unwrap();
    assert_eq!(snapshot(a.path()), files);
    assert!(again.nodes.iter().all(|n| n.change == Change::Unchanged));
    assert_eq!(again.index_sha256, sa.index_sha256);
}

#[test]
fn written_bundles_verify_against_the_written_index() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(1);
    write_bundles(
        &cluster(&[("n1", "a"), ("n2", "b")]),
        &opts(dir.path(), &[&k], "2026-01-01T00:00:00Z"),
    )
    .unwrap();
    let trust = Trust::new([k.trusted()], 1);
    let index = verify_index(&fs::read(dir.path().join("index.json")).unwrap(), &trust).unwrap();
    assert_eq!(index.nodes.len(), 2);
    let bytes = fs::read(dir.path().join("n2.bundle")).unwrap();
    let v = verify_bundle(
        &bytes,
        &trust,
        &Expectations {
            node: Some("n2"),
            min_generation: Some(1),
            now: Some(parse_time("2026-01-07T23:59:59Z").unwrap()),
            index: Some(&index),
        },
    )
    .unwrap();
    assert_eq!(v.payload.generation, 1);
    assert_eq!(v.payload.expires_at, "2026-01-08T00:00:00Z");
    assert_eq!(
        v.file("rules.nft"),
        Some("table inet ringfence {\n\tchain c {\n\t\tcounter comment \"b\"\n\t}\n}\n")
    );
    assert_eq!(
        v.payload
            .files
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>(),
        ["ir.json", "rules.nft"]
    );
}

#[test]
fn only_changed_nodes_get_a_new_generation() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(1);
    let s1 = write_bundles(
        &cluster(&[("n1", "a"), ("n2", "b"), ("n3", "c")]),
        &opts(dir.path(), &[&k], "2026-01-01T00:00:00Z"),
    )
    .unwrap();
    assert_eq!(
        changes(&s1),
        [
            ("n1", 1, Change::New),
            ("n2", 1, Change::New),
            ("n3", 1, Change::New)
        ]
    );
    let first = snapshot(dir.path());

    let s2 = write_bundles(
        &cluster(&[("n1", "a"), ("n2", "B"), ("n3", "c")]),
        &opts(dir.path(), &[&k], "2026-01-02T00:00:00Z"),
    )
    .unwrap();
    assert_eq!(
        changes(&s2),
        [
            ("n1", 1, Change::Unchanged),
            ("n2", 2, Change::Changed),
            ("n3", 1, Change::Unchanged)
        ]
    );
    assert_eq!(s2.nodes[1].previous_generation, Some(1));
    // An unchanged node is re-sealed with the new times: a refresh.
    let refreshed = fs::read(dir.path().join("n1.bundle")).unwrap();
    assert_ne!(refreshed, first["n1.bundle"]);
    let trust = Trust::new([k.trusted()], 1);
    let v = verify_bundle(&refreshed, &trust, &Expectations::default()).unwrap();
    assert_eq!(
        (v.payload.generation, v.payload.issued_at.as_str()),
        (1, "2026-01-02T00:00:00Z")
    );
    let old = verify_bundle(&first["n1.bundle"], &trust, &Expectations::default()).unwrap();
    assert_eq!(v.rules_sha256(), old.rules_sha256());

    // A new node and another change: one more than the highest generation.
    let s3 = write_bundles(
        &cluster(&[("n1", "A"), ("n2", "B"), ("n3", "c"), ("n4", "d")]),
        &opts(dir.path(), &[&k], "2026-01-03T00:00:00Z"),
    )
    .unwrap();
    assert_eq!(
        changes(&s3),
        [
            ("n1", 3, Change::Changed),
            ("n2", 2, Change::Unchanged),
            ("n3", 1, Change::Unchanged),
            ("n4", 3, Change::New)
        ]
    );
}

#[test]
fn explicit_generation_must_grow_for_changed_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(1);
    let keys = [&k];
    let mut o = opts(dir.path(), &keys, "2026-01-01T00:00:00Z");
    o.output.generation = Some(5);
    let s = write_bundles(&cluster(&[("n1", "a"), ("n2", "b")]), &o).unwrap();
    assert_eq!(
        changes(&s),
        [("n1", 5, Change::New), ("n2", 5, Change::New)]
    );
    let before = snapshot(dir.path());

    let keys = [&k];
    let mut o = opts(dir.path(), &keys, "2026-01-02T00:00:00Z");
    o.output.generation = Some(5);
    let err = write_bundles(&cluster(&[("n1", "a"), ("n2", "changed")]), &o).unwrap_err();
    assert!(
        matches!(&err, BundleWriteError::GenerationNotGreater { node, given: 5, previous: 5 } if node == "n2"),
        "{err}"
    );
    assert!(err.to_string().contains("--generation 5"), "{err}");
    // Refused before anything was written.
    assert_eq!(snapshot(dir.path()), before);

    // Unchanged nodes keep theirs whatever --generation says; a larger one works.
    o.output.generation = Some(9);
    let s = write_bundles(&cluster(&[("n1", "a"), ("n2", "changed")]), &o).unwrap();
    assert_eq!(
        changes(&s),
        [("n1", 5, Change::Unchanged), ("n2", 9, Change::Changed)]
    );

    o.output.generation = Some(0);
    assert!(matches!(
        write_bundles(&cluster(&[("n1", "a")]), &o),
        Err(BundleWriteError::ZeroGeneration)
    ));
}

#[test]
fn removed_nodes_lose_their_bundle_and_index_entry() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(1);
    write_bundles(
        &cluster(&[("n1", "a"), ("n2", "b"), ("n3", "c")]),
        &opts(dir.path(), &[&k], "2026-01-01T00:00:00Z"),
    )
    .unwrap();
    let s = write_bundles(
        &cluster(&[("n1", "a"), ("n3", "c")]),
        &opts(dir.path(), &[&k], "2026-01-02T00:00:00Z"),
    )
    .unwrap();
    assert_eq!(
        changes(&s),
        [
            ("n1", 1, Change::Unchanged),
            ("n2", 1, Change::Removed),
            ("n3", 1, Change::Unchanged)
        ]
    );
    assert_eq!(s.nodes[1].sha256, None);
    assert_eq!(
        snapshot(dir.path()).keys().collect::<Vec<_>>(),
        ["index.json", "n1.bundle", "n3.bundle"]
    );
    let index = verify_index(
        &fs::read(dir.path().join("index.json")).unwrap(),
        &Trust::new([k.trusted()], 1),
    )
    .unwrap();
    assert_eq!(
        index
            .nodes
            .iter()
            .map(|n| n.node.as_str())
            .collect::<Vec<_>>(),
        ["n1", "n3"]
    );
}

#[test]
fn tampered_previous_index_is_refused_not_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(1);
    let nodes = cluster(&[("n1", "a")]);
    write_bundles(&nodes, &opts(dir.path(), &[&k], "2026-01-01T00:00:00Z")).unwrap();
    let path = dir.path().join("index.json");
    let text = fs::read_to_string(&path).unwrap();
    // Change one base64 character inside the payload.
    let at = text.find("\"payload\":\"").unwrap() + 40;
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    fs::write(&path, &bytes).unwrap();
    let before = snapshot(dir.path());

    let err = write_bundles(&nodes, &opts(dir.path(), &[&k], "2026-01-02T00:00:00Z")).unwrap_err();
    match &err {
        BundleWriteError::PreviousIndex { path: p, err: e } => {
            assert_eq!(p, &path);
            assert!(
                matches!(e.reason, Reason::BadSignature | Reason::Malformed),
                "{e}"
            );
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("index.json"), "{err}");
    assert_eq!(snapshot(dir.path()), before);

    // A truncated index is refused just the same.
    fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = write_bundles(&nodes, &opts(dir.path(), &[&k], "2026-01-02T00:00:00Z")).unwrap_err();
    assert!(
        matches!(&err, BundleWriteError::PreviousIndex { err, .. } if err.reason == Reason::Truncated),
        "{err}"
    );
}

#[test]
fn key_rotation_goes_through_a_compile_signed_by_both_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (key(1), key(2));
    let nodes = cluster(&[("n1", "a")]);
    write_bundles(&nodes, &opts(dir.path(), &[&old], "2026-01-01T00:00:00Z")).unwrap();
    // Straight to the new key: the previous index is not signed by it.
    let err =
        write_bundles(&nodes, &opts(dir.path(), &[&new], "2026-01-02T00:00:00Z")).unwrap_err();
    assert!(
        matches!(&err, BundleWriteError::PreviousIndex { err, .. } if err.reason == Reason::UnknownKey),
        "{err}"
    );
    // Old and new together, then the new key alone.
    write_bundles(
        &nodes,
        &opts(dir.path(), &[&old, &new], "2026-01-02T00:00:00Z"),
    )
    .unwrap();
    let bytes = fs::read(dir.path().join("n1.bundle")).unwrap();
    let both = Trust::new([old.trusted(), new.trusted()], 2);
    assert_eq!(
        verify_bundle(&bytes, &both, &Expectations::default())
            .unwrap()
            .signers
            .len(),
        2
    );
    let s = write_bundles(&nodes, &opts(dir.path(), &[&new], "2026-01-03T00:00:00Z")).unwrap();
    assert_eq!(changes(&s), [("n1", 1, Change::Unchanged)]);
}

#[test]
fn bundles_without_an_index_need_an_explicit_generation() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(1);
    let nodes = cluster(&[("n1", "a")]);
    write_bundles(&nodes, &opts(dir.path(), &[&k], "2026-01-01T00:00:00Z")).unwrap();
    fs::remove_file(dir.path().join("index.json")).unwrap();
    let err = write_bundles(&nodes, &opts(dir.path(), &[&k], "2026-01-02T00:00:00Z")).unwrap_err();
    assert!(
        matches!(err, BundleWriteError::NoPreviousIndex { count: 1, .. }),
        "{err}"
    );
    let keys = [&k];
    let mut o = opts(dir.path(), &keys, "2026-01-02T00:00:00Z");
    o.output.generation = Some(7);
    let s = write_bundles(&nodes, &o).unwrap();
    assert_eq!(changes(&s), [("n1", 7, Change::New)]);
}

#[test]
fn bad_outputs_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let k = key(1);
    let keys = [&k];
    let o = opts(&out, &keys, "2026-01-01T00:00:00Z");
    /// `n1` with its files edited.
    fn edited(edit: impl FnOnce(&mut Vec<(String, String)>)) -> NodeOutput {
        let mut n = node("n1", "a");
        let mut files = n.files.as_slice().to_vec();
        edit(&mut files);
        n.files = Files::new(files);
        n
    }
    let no_ir = edited(|f| f.retain(|(n, _)| n != "ir.json"));
    let bad_file = edited(|f| f.push(("../escape".into(), "x".into())));
    let dup_file = edited(|f| f.push(("rules.nft".into(), "x".into())));
    let cases: Vec<(Vec<NodeOutput>, &str)> = vec![
        (vec![no_ir], "no ir.json"),
        (vec![bad_file], "`../escape`"),
        (vec![dup_file], "appears twice"),
        (vec![node("../n1", "a")], "node `../n1`"),
        (vec![node("n1", "a"), node("n1", "b")], "compiled twice"),
    ];
    for (nodes, want) in cases {
        let err = write_bundles(&nodes, &o).unwrap_err();
        assert!(err.to_string().contains(want), "{want}: {err}");
    }
    assert!(matches!(
        write_bundles(
            &cluster(&[("n1", "a")]),
            &opts(&out, &[], "2026-01-01T00:00:00Z")
        ),
        Err(BundleWriteError::NoKeys)
    ));
    let keys = [&k];
    let mut zero = opts(&out, &keys, "2026-01-01T00:00:00Z");
    zero.output.expires = Duration::ZERO;
    assert!(matches!(
        write_bundles(&cluster(&[("n1", "a")]), &zero),
        Err(BundleWriteError::ZeroExpiry)
    ));
    let keys = [&k];
    let mut far = opts(&out, &keys, "2026-01-01T00:00:00Z");
    far.output.expires = Duration::from_secs(10_000 * 365 * 86_400);
    assert!(matches!(
        write_bundles(&cluster(&[("n1", "a")]), &far),
        Err(BundleWriteError::Time { .. })
    ));
    assert!(
        !out.exists(),
        "nothing may be written for a refused compile"
    );
}

#[test]
fn leftovers_of_an_interrupted_run_are_replaced_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let victim = dir.path().join("victim");
    fs::write(&victim, "keep me").unwrap();
    std::os::unix::fs::symlink(&victim, out.join(".n1.bundle.ringfence-tmp")).unwrap();
    fs::write(out.join(".index.json.ringfence-tmp"), "half an index").unwrap();
    let k = key(1);
    let keys = [&k];
    write_bundles(
        &cluster(&[("n1", "a")]),
        &opts(&out, &keys, "2026-01-01T00:00:00Z"),
    )
    .unwrap();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "keep me");
    assert_eq!(
        snapshot(&out).keys().collect::<Vec<_>>(),
        ["index.json", "n1.bundle"]
    );
}

#[test]
fn a_bundle_that_cannot_be_written_leaves_the_directory_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let k = key(1);
    let keys = [&k];
    let nodes = |rules| cluster(&[("n1", rules), ("n2", rules), ("n3", rules)]);
    write_bundles(&nodes("a"), &opts(&out, &keys, "2026-01-01T00:00:00Z")).unwrap();
    let before = snapshot(&out);
    // A directory where n2's temporary file goes: it cannot be replaced.
    let blocker = out.join(".n2.bundle.ringfence-tmp");
    fs::create_dir(&blocker).unwrap();
    let err = write_bundles(&nodes("b"), &opts(&out, &keys, "2026-01-02T00:00:00Z")).unwrap_err();
    assert!(matches!(err, BundleWriteError::Io(_)), "{err}");
    fs::remove_dir(&blocker).unwrap();
    // No bundle renamed, no new index, no temporary file of n1 or n3 left.
    assert_eq!(snapshot(&out), before);
}

#[test]
fn remembered_digests_are_the_files_own() {
    let fresh = |n: &NodeOutput| -> Vec<String> {
        n.files
            .iter()
            .map(|(_, content)| sha256_hex(content.as_bytes()))
            .collect()
    };
    let tmp = tempfile::tempdir().unwrap();
    let (one, two) = (tmp.path().join("1"), tmp.path().join("2"));
    let k = key(1);
    let trust = Trust::new([k.trusted()], 1);
    let nodes = cluster(&[("n1", "a"), ("n2", "b")]);
    let want: Vec<Vec<String>> = nodes.iter().map(fresh).collect();
    write_bundles(&nodes, &opts(&one, &[&k], "2026-01-01T00:00:00Z")).unwrap();
    // The digests sealed are the remembered ones, and they are the files' own.
    for (n, want) in nodes.iter().zip(&want) {
        assert_eq!(n.files.digests(), want.as_slice());
        let bytes = fs::read(one.join(format!("{}.bundle", n.node))).unwrap();
        let v = verify_bundle(&bytes, &trust, &Expectations::default()).unwrap();
        let sealed: Vec<&str> = v.payload.files.iter().map(|f| f.sha256.as_str()).collect();
        assert_eq!(sealed, *want);
    }
    // A clone carries them; a publication round keeping from the first
    // leaves them as they were.
    let clones = nodes.clone();
    fs::create_dir(&two).unwrap();
    fs::copy(one.join("index.json"), two.join("index.json")).unwrap();
    write_bundles_keeping(&clones, &opts(&two, &[&k], "2026-01-02T00:00:00Z"), &one).unwrap();
    for ((n, c), want) in nodes.iter().zip(&clones).zip(&want) {
        assert_eq!(n.files.digests(), want.as_slice());
        assert_eq!(c.files.digests(), want.as_slice());
        assert_eq!(fresh(c), *want);
    }
}
