//! `write_bundles_keeping`: a new output directory next to the previous one
//! keeps unchanged nodes' bundle files byte for byte (same generation, same
//! times), re-seals changed ones, and re-seals a kept file that is missing
//! or does not have the digest the previous index lists (even when it was
//! rewritten in place, same file and size). A kept file is hashed again only
//! when its size or modification time changed.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use ringfence_bundle::{Expectations, SigningKey, Trust, verify_bundle, verify_index};
use ringfence_driver::bundles::{
    Change, NodeOutput, WriteOptions, WriteSummary, write_bundles, write_bundles_keeping,
};

use crate::nodes;

fn node(name: &str, rules: &str) -> NodeOutput {
    nodes::node("c", name, rules)
}

/// Generation `g` of commit `commit-{g}`, valid a day.
fn opts<'a>(out: &'a Path, keys: &'a [&'a SigningKey], time: &str, g: u64) -> WriteOptions<'a> {
    let mut o = nodes::opts(out, keys, time);
    o.output.expires = Duration::from_secs(86_400);
    o.output.generation = Some(g);
    o.source.commit = Some(format!("commit-{g}"));
    o
}

/// When each of `n1`, `n2`, `n3` in `dir` was issued, and its generation
/// (`2026-01-01T00:00:00Z g1`); each verified for its node against the
/// index there.
fn sealed(dir: &Path, trust: &Trust) -> Vec<String> {
    let index = verify_index(&fs::read(dir.join("index.json")).unwrap(), trust).unwrap();
    ["n1", "n2", "n3"]
        .into_iter()
        .map(|n| {
            let bytes = fs::read(dir.join(format!("{n}.bundle"))).unwrap();
            let expect = Expectations {
                node: Some(n),
                index: Some(&index),
                ..Expectations::default()
            };
            let v = verify_bundle(&bytes, trust, &expect).unwrap();
            format!("{} g{}", v.payload.issued_at, v.payload.generation)
        })
        .collect()
}

/// Generation `g` into `to`, keeping from `from` (whose index it starts
/// from), issued at `time`.
fn keep(
    nodes: &[NodeOutput],
    keys: &[&SigningKey],
    from: &Path,
    to: &Path,
    time: &str,
    g: u64,
) -> WriteSummary {
    fs::create_dir(to).unwrap();
    fs::copy(from.join("index.json"), to.join("index.json")).unwrap();
    write_bundles_keeping(nodes, &opts(to, keys, time, g), from).unwrap()
}

/// One byte of the payload of the bundle at `path` changed where it lies:
/// same file, same size. The file, still open.
fn flip_in_place(path: &Path) -> fs::File {
    use std::os::unix::fs::FileExt;
    let bytes = fs::read(path).unwrap();
    let at = bytes
        .windows(11)
        .position(|w| w == b"\"payload\":\"")
        .unwrap()
        + 20;
    let flipped = if bytes[at] == b'A' { b'B' } else { b'A' };
    let ino = fs::metadata(path).unwrap().ino();
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&[flipped], at as u64).unwrap();
    let m = fs::metadata(path).unwrap();
    assert_eq!((m.ino(), m.len()), (ino, bytes.len() as u64));
    f
}

#[test]
fn unchanged_nodes_keep_their_files_changed_ones_are_sealed() {
    let k = ringfence_testkit::keys::key(3);
    let keys = [&k];
    let trust = Trust::new([k.trusted()], 1);
    let tmp = tempfile::tempdir().unwrap();
    let (one, two, three) = (
        tmp.path().join("1"),
        tmp.path().join("2"),
        tmp.path().join("3"),
    );
    let first = [node("n1", "a"), node("n2", "b"), node("n3", "c")];
    write_bundles(&first, &opts(&one, &keys, "2026-01-01T00:00:00Z", 1)).unwrap();

    // n2 changes; n1 and n3 are kept from 1/.
    let second = [node("n1", "a"), node("n2", "b2"), node("n3", "c")];
    let s = keep(&second, &keys, &one, &two, "2026-01-02T00:00:00Z", 2);
    let got: Vec<(&str, u64, Change)> = s
        .nodes
        .iter()
        .map(|n| (n.node.as_str(), n.generation, n.change))
        .collect();
    assert_eq!(
        got,
        [
            ("n1", 1, Change::Unchanged),
            ("n2", 2, Change::Changed),
            ("n3", 1, Change::Unchanged)
        ]
    );
    for n in ["n1.bundle", "n3.bundle"] {
        assert_eq!(
            fs::read(one.join(n)).unwrap(),
            fs::read(two.join(n)).unwrap()
        );
        // Hard-linked: no copy of the bytes.
        let (a, b) = (
            fs::metadata(one.join(n)).unwrap(),
            fs::metadata(two.join(n)).unwrap(),
        );
        assert_eq!(a.ino(), b.ino());
    }
    // The new index lists the kept files and verifies them.
    let index = verify_index(&fs::read(two.join("index.json")).unwrap(), &trust).unwrap();
    assert_eq!(index.source.commit.as_deref(), Some("commit-2"));
    assert_eq!(
        sealed(&two, &trust),
        [
            "2026-01-01T00:00:00Z g1",
            "2026-01-02T00:00:00Z g2",
            "2026-01-01T00:00:00Z g1"
        ]
    );

    // A kept file that was altered on disk is not propagated: re-sealed.
    fs::remove_file(two.join("n3.bundle")).unwrap();
    fs::write(two.join("n3.bundle"), b"not the bundle the index lists\n").unwrap();
    fs::remove_file(two.join("n1.bundle")).unwrap();
    let s = keep(&second, &keys, &two, &three, "2026-01-03T00:00:00Z", 3);
    assert!(s.nodes.iter().all(|n| n.change == Change::Unchanged));
    // n2 kept (issued on the 2nd); n1 (missing) and n3 (altered) re-sealed.
    assert_eq!(
        sealed(&three, &trust),
        [
            "2026-01-03T00:00:00Z g1",
            "2026-01-02T00:00:00Z g2",
            "2026-01-03T00:00:00Z g1"
        ]
    );
}

#[test]
fn a_kept_file_rewritten_in_place_is_resealed() {
    let k = ringfence_testkit::keys::key(3);
    let keys = [&k];
    let trust = Trust::new([k.trusted()], 1);
    let tmp = tempfile::tempdir().unwrap();
    let (one, two) = (tmp.path().join("1"), tmp.path().join("2"));
    let nodes = [node("n1", "a"), node("n2", "b"), node("n3", "c")];
    write_bundles(&nodes, &opts(&one, &keys, "2026-01-01T00:00:00Z", 1)).unwrap();

    let ino = fs::metadata(one.join("n2.bundle")).unwrap().ino();
    flip_in_place(&one.join("n2.bundle"));
    let s = keep(&nodes, &keys, &one, &two, "2026-01-02T00:00:00Z", 2);
    assert!(s.nodes.iter().all(|n| n.change == Change::Unchanged));
    // n1 and n3 kept (issued on the 1st); n2 re-sealed, not linked.
    assert_eq!(
        sealed(&two, &trust),
        [
            "2026-01-01T00:00:00Z g1",
            "2026-01-02T00:00:00Z g1",
            "2026-01-01T00:00:00Z g1"
        ]
    );
    assert_ne!(fs::metadata(two.join("n2.bundle")).unwrap().ino(), ino);
}

#[test]
fn a_kept_file_is_hashed_again_only_when_its_size_or_time_changed() {
    let k = ringfence_testkit::keys::key(3);
    let keys = [&k];
    let trust = Trust::new([k.trusted()], 1);
    let tmp = tempfile::tempdir().unwrap();
    let dir = |g: u64| tmp.path().join(g.to_string());
    let nodes = [node("n1", "a"), node("n2", "b"), node("n3", "c")];
    write_bundles(&nodes, &opts(&dir(1), &keys, "2026-01-01T00:00:00Z", 1)).unwrap();
    // Modified long before the next publication: once hashed, remembered.
    let long_ago = ringfence_bundle::parse_time("2026-01-01T00:00:00Z").unwrap();
    for n in ["n1", "n2", "n3"] {
        let f = fs::File::open(dir(1).join(format!("{n}.bundle"))).unwrap();
        f.set_modified(long_ago).unwrap();
    }
    let next = |g: u64, time: &str| keep(&nodes, &keys, &dir(g - 1), &dir(g), time, g);
    let kept = ["2026-01-01T00:00:00Z g1"; 3];
    next(2, "2026-01-02T00:00:00Z");
    assert_eq!(sealed(&dir(2), &trust), kept);

    // One byte of n2 changed in place (same file, same size): its time
    // moved, so it is hashed again and re-sealed.
    flip_in_place(&dir(2).join("n2.bundle"));
    next(3, "2026-01-03T00:00:00Z");
    assert_eq!(
        sealed(&dir(3), &trust),
        [kept[0], "2026-01-03T00:00:00Z g1", kept[2]]
    );

    // What the memory trusts: a change whose writer also put the old time
    // back is not read again, so the file is kept as it is; an agent
    // refuses it (its digest is not the index's) and keeps what it had.
    flip_in_place(&dir(3).join("n3.bundle"))
        .set_modified(long_ago)
        .unwrap();
    next(4, "2026-01-04T00:00:00Z");
    let index = verify_index(&fs::read(dir(4).join("index.json")).unwrap(), &trust).unwrap();
    let expect = Expectations {
        node: Some("n3"),
        index: Some(&index),
        ..Expectations::default()
    };
    let n3 = fs::read(dir(4).join("n3.bundle")).unwrap();
    assert!(verify_bundle(&n3, &trust, &expect).is_err());
}
