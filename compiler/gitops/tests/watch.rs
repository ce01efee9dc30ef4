//! `watch` as a library against real repositories (the `git` binary), the
//! real nftables plugin and signed bundles: only touched nodes are rendered
//! and get a new generation, failures are recorded, the inventory and the
//! expiry trigger republication, URLs are mirrored, old generations pruned,
//! and one directory has one publisher.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use ringfence_bundle::{SigningKey, Trust, parse_time, verify_index};
use ringfence_gitops::publish::Publication;
use ringfence_gitops::status::CommitStatus;
use ringfence_gitops::watch::{Event, PollResult, RepoLocation, WatchConfig, WatchError, Watcher};
use ringfence_schema::bundle::IndexPayload;

use crate::git::{git, workspace};

fn fixture() -> PathBuf {
    workspace().join("tests/fixtures/gitops")
}

pub(crate) fn key() -> SigningKey {
    ringfence_testkit::keys::key(7)
}

/// A bare server repository and a working clone holding the lab intent
/// under `policies/`, pushed once.
pub(crate) struct Lab {
    pub(crate) tmp: tempfile::TempDir,
    pub(crate) bare: PathBuf,
    work: PathBuf,
}

impl Lab {
    pub(crate) fn new() -> Lab {
        let tmp = tempfile::tempdir().unwrap();
        let (bare, work) = ringfence_testkit::git::server_and_work(
            tmp.path(),
            &[(&fixture().join("intent/10-lab.kdl"), "policies/10-lab.kdl")],
        );
        let lab = Lab { tmp, bare, work };
        lab.push("the lab intent");
        lab
    }

    fn edit(&self, from: &str, to: &str) {
        let p = self.work.join("policies/10-lab.kdl");
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains(from), "no `{from}`");
        std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
    }

    /// Commit everything and push; the commit id.
    fn push(&self, msg: &str) -> String {
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "--allow-empty", "-m", msg]);
        git(&self.work, &["push", "-q", "origin", "main"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    pub(crate) fn out(&self) -> PathBuf {
        self.tmp.path().join("out")
    }

    pub(crate) fn config(&self, repo: RepoLocation) -> WatchConfig {
        WatchConfig {
            repo,
            branch: "main".into(),
            path: "policies".into(),
            inventory: vec![fixture().join("inventory.json")],
            trivy: Vec::new(),
            keys: vec![key()],
            out: self.out(),
            keep: 5,
            expires: Duration::from_secs(7 * 86_400),
            failpoint: None,
            live: None,
        }
    }

    fn open(&self) -> (Watcher, Vec<String>) {
        let mut events = Vec::new();
        let w = Watcher::open(
            self.config(RepoLocation::Path(self.bare.clone())),
            &mut |e| events.push(format!("{e:?}")),
        )
        .unwrap();
        (w, events)
    }

    /// A lab watched, its first commit published.
    fn published() -> (Lab, Watcher) {
        let lab = Lab::new();
        let (mut w, _) = lab.open();
        poll_at(&mut w, t0());
        (lab, w)
    }

    /// [`Lab::open`], whose log must say `what`.
    fn open_saying(&self, what: &str) -> Watcher {
        let (w, events) = self.open();
        assert!(events.iter().any(|e| e.contains(what)), "{events:?}");
        w
    }
}

pub(crate) fn t0() -> SystemTime {
    parse_time("2026-03-01T12:00:00Z").unwrap()
}

fn poll_at(w: &mut Watcher, at: SystemTime) -> (PollResult, Vec<Event>) {
    let mut events = Vec::new();
    let r = w.poll(&move || at, &mut |e| events.push(e)).unwrap();
    (r, events)
}

fn index(out: &Path, n: u64) -> IndexPayload {
    let bytes = std::fs::read(Publication::new(out).dir(n).join("index.json")).unwrap();
    verify_index(&bytes, &Trust::new([key().trusted()], 1)).unwrap()
}

/// Generation `n`'s directory holds its index and exactly the bundles it
/// lists, each with the digest listed.
fn whole(out: &Path, n: u64) {
    let dir = Publication::new(out).dir(n);
    let idx = index(out, n);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want: Vec<String> = idx
        .nodes
        .iter()
        .map(|e| format!("{}.bundle", e.node))
        .collect();
    want.push("index.json".into());
    want.sort();
    assert_eq!(names, want, "generation {n}");
    for e in &idx.nodes {
        let bytes = std::fs::read(dir.join(format!("{}.bundle", e.node))).unwrap();
        assert_eq!(
            ringfence_bundle::sha256_hex(&bytes),
            e.sha256,
            "{} in {n}",
            e.node
        );
    }
}

fn generations(idx: &IndexPayload) -> Vec<(String, u64)> {
    idx.nodes
        .iter()
        .map(|e| (e.node.clone(), e.generation))
        .collect()
}

fn published(events: &[Event]) -> Vec<(u64, usize, usize)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Published {
                generation,
                changed,
                rendered,
                ..
            } => Some((*generation, *changed, *rendered)),
            _ => None,
        })
        .collect()
}

#[test]
fn only_touched_nodes_are_rendered_and_get_a_new_generation() {
    let lab = Lab::new();
    let (mut w, _) = lab.open();
    let (r, ev) = poll_at(&mut w, t0());
    assert_eq!((r.processed, r.published, r.failed), (1, 1, 0));
    assert_eq!(published(&ev), [(1, 2, 2)]);

    // api and db both run on lab-n2: only that node's rules change.
    lab.edit("ports=5432", "ports=\"5432-5433\"");
    let c2 = lab.push("db on two ports");
    let (r, ev) = poll_at(&mut w, t0());
    assert_eq!((r.processed, r.published), (1, 1));
    assert_eq!(published(&ev), [(2, 1, 1)], "{ev:?}");
    let idx = index(&lab.out(), 2);
    assert_eq!(
        generations(&idx),
        [("lab-n1".to_string(), 1), ("lab-n2".to_string(), 2)]
    );
    assert_eq!(idx.source.commit.as_deref(), Some(c2.as_str()));
    assert_eq!(
        std::fs::read_link(lab.out().join("current")).unwrap(),
        Path::new("generations/2")
    );

    // Nothing new: nothing done.
    let (r, ev) = poll_at(&mut w, t0());
    assert_eq!(r, PollResult::default());
    assert!(ev.is_empty(), "{ev:?}");

    // A restart renders nothing either: the cache is seeded from the bundles.
    drop(w);
    let mut w = lab.open_saying("Seeded { bundles: 2 }");
    lab.edit("ports=8080", "ports=\"8080-8081\"");
    lab.push("api on two ports");
    lab.edit("ports=\"8080-8081\"", "ports=8080");
    lab.push("api back on one port");
    let (_, ev) = poll_at(&mut w, t0());
    // Both nodes change and are rendered once; the revert is all cache hits.
    assert_eq!(published(&ev), [(3, 2, 2), (4, 2, 0)], "{ev:?}");
}

#[test]
fn a_failed_commit_is_recorded_and_the_previous_generation_stays() {
    let (lab, mut w) = Lab::published();
    lab.edit("from=\"api\" to=\"db\"", "from=\"nobody\" to=\"db\"");
    let bad = lab.push("broken reference");
    let (r, ev) = poll_at(&mut w, t0());
    assert_eq!((r.processed, r.published, r.failed), (1, 0, 1));
    let Event::Failed { reason, report, .. } = &ev[0] else {
        panic!("{ev:?}")
    };
    assert!(
        reason.starts_with("1 error(s); first: 10-lab.kdl:"),
        "{reason}"
    );
    assert!(reason.contains("`nobody`"), "{reason}");
    assert!(report.contains("10-lab.kdl:"), "{report}");

    let s = w.status();
    assert_eq!(s.last_processed.as_deref(), Some(bad.as_str()));
    assert_eq!(s.last_published.as_ref().unwrap().generation, 1);
    let last = s.history.last().unwrap();
    assert_eq!(last.status, CommitStatus::Failed);
    assert_eq!(last.summary, "broken reference");
    assert_eq!(last.diagnostics.as_ref().unwrap()["errors"], 1);
    assert_eq!(
        std::fs::read_link(lab.out().join("current")).unwrap(),
        Path::new("generations/1")
    );
    // A commit without intent fails too, with the reason.
    std::fs::remove_file(lab.work.join("policies/10-lab.kdl")).unwrap();
    lab.push("intent moved away");
    let (r, ev) = poll_at(&mut w, t0());
    assert_eq!(r.failed, 1);
    assert!(format!("{ev:?}").contains("does not exist"), "{ev:?}");
}

#[test]
fn the_inventory_and_the_expiry_republish_the_last_commit() {
    let lab = Lab::new();
    let inv = lab.tmp.path().join("inventory.json");
    std::fs::copy(fixture().join("inventory.json"), &inv).unwrap();
    let mut cfg = lab.config(RepoLocation::Path(lab.bare.clone()));
    cfg.inventory = vec![inv.clone()];
    cfg.expires = Duration::from_secs(3600);
    let mut w = Watcher::open(cfg, &mut |_| {}).unwrap();
    poll_at(&mut w, t0());

    // Before half the validity: nothing. After: a refresh that renders and
    // changes nothing (same generations, later expiry).
    let (r, _) = poll_at(&mut w, t0() + Duration::from_secs(1700));
    assert_eq!(r, PollResult::default());
    let (r, ev) = poll_at(&mut w, t0() + Duration::from_secs(1800));
    assert_eq!((r.processed, r.published), (0, 1));
    assert_eq!(published(&ev), [(2, 0, 0)]);
    assert!(matches!(
        &ev[0],
        Event::Published {
            trigger: "expiry refresh",
            ..
        }
    ));
    assert_eq!(
        generations(&index(&lab.out(), 2)),
        [("lab-n1".to_string(), 1), ("lab-n2".to_string(), 1)]
    );

    // The database moves to lab-n1: the inventory changed, both nodes too.
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&inv).unwrap()).unwrap();
    for item in doc["items"].as_array_mut().unwrap() {
        if item["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("db-")
        {
            assert_eq!(item["spec"]["nodeName"], "lab-n2");
            item["spec"]["nodeName"] = "lab-n1".into();
        }
    }
    std::fs::write(&inv, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let (r, ev) = poll_at(&mut w, t0() + Duration::from_secs(1801));
    assert_eq!(r.published, 1);
    assert!(
        matches!(
            &ev[0],
            Event::Published {
                trigger: "inventory changed",
                changed: 2,
                ..
            }
        ),
        "{ev:?}"
    );
    let s = w.status();
    assert_eq!(
        s.history.last().unwrap().reason.as_deref(),
        Some("inventory changed")
    );
    assert_eq!(s.history.len(), 3);
}

#[test]
fn a_url_is_mirrored_and_old_generations_are_pruned() {
    let lab = Lab::new();
    let url = format!("file://{}", lab.bare.display());
    let mut cfg = lab.config(RepoLocation::Url(url.clone()));
    cfg.keep = 1;
    let mut w = Watcher::open(cfg, &mut |_| {}).unwrap();
    poll_at(&mut w, t0());
    for i in 0..3 {
        lab.edit("ports=8080", &format!("ports=\"8080-{}\"", 8081 + i));
        lab.push(&format!("widen {i}"));
        // What a generation about to be taken over holds beyond the current
        // one's names (a node since removed, say) does not survive.
        let oldest = Publication::new(&lab.out()).dir(i as u64);
        let side = lab.out().join(format!("index-{i}"));
        let inode = (i > 0).then(|| {
            std::fs::write(oldest.join("gone.bundle"), b"stale").unwrap();
            std::fs::hard_link(oldest.join("index.json"), &side).unwrap();
            (
                std::fs::metadata(&oldest).unwrap().ino(),
                std::fs::read(&side).unwrap(),
            )
        });
        let (r, ev) = poll_at(&mut w, t0());
        assert_eq!(r.published, 1);
        let dir = Publication::new(&lab.out()).dir(i as u64 + 2);
        if let Some((dir_ino, old_index)) = inode {
            assert_eq!(
                std::fs::metadata(&dir).unwrap().ino(),
                dir_ino,
                "taken over"
            );
            // Its index is a new file: the old one was not written over.
            assert_eq!(std::fs::read(&side).unwrap(), old_index);
        }
        lab.edit(&format!("ports=\"8080-{}\"", 8081 + i), "ports=8080");
        // From the third on, each takes over the directory of the one pruned:
        // it holds exactly its index and bundles, whatever that one held.
        if i > 0 {
            assert!(
                ev.iter().any(
                    |e| matches!(e, Event::Pruned { generations } if generations == &[i as u64])
                ),
                "{ev:?}"
            );
        }
        whole(&lab.out(), i as u64 + 2);
    }
    assert!(lab.out().join(".mirror/HEAD").exists());
    let mut dirs: Vec<String> = std::fs::read_dir(lab.out().join("generations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    assert_eq!(dirs, ["3", "4"]);
    assert_eq!(
        index(&lab.out(), 4).source.repository.as_deref(),
        Some(url.as_str())
    );
}

#[test]
fn a_rewritten_branch_publishes_its_tip() {
    let lab = Lab::new();
    let (mut w, _) = lab.open();
    lab.edit("ports=8080", "ports=8081");
    lab.push("one");
    poll_at(&mut w, t0());
    git(&lab.work, &["reset", "-q", "--hard", "HEAD~1"]);
    lab.edit("ports=8080", "ports=8082");
    git(&lab.work, &["commit", "-q", "-am", "two"]);
    git(&lab.work, &["push", "-q", "-f", "origin", "main"]);
    let tip = git(&lab.work, &["rev-parse", "HEAD"]);
    let (r, ev) = poll_at(&mut w, t0());
    assert!(
        matches!(&ev[0], Event::Rewritten { tip: t, .. } if *t == tip),
        "{ev:?}"
    );
    assert_eq!((r.processed, r.published), (1, 1));
}

#[test]
fn one_publisher_per_directory_and_source() {
    let lab = Lab::new();
    let (mut w, _) = lab.open();
    let e = Watcher::open(
        lab.config(RepoLocation::Path(lab.bare.clone())),
        &mut |_| {},
    )
    .err()
    .unwrap();
    assert!(matches!(e, WatchError::Locked(_)), "{e}");
    // A commit processed makes the directory this source's.
    poll_at(&mut w, t0());
    drop(w);
    let mut other = lab.config(RepoLocation::Path(lab.bare.clone()));
    other.branch = "release".into();
    let e = Watcher::open(other, &mut |_| {}).err().unwrap();
    assert!(matches!(e, WatchError::OtherSource { .. }), "{e}");
    assert!(e.to_string().contains("use another --out"), "{e}");
    // A missing branch is an error of the poll, not a failed commit.
    let mut cfg = lab.config(RepoLocation::Path(lab.bare.clone()));
    cfg.out = lab.tmp.path().join("out2");
    cfg.branch = "nope".into();
    let mut w = Watcher::open(cfg, &mut |_| {}).unwrap();
    let e = w.poll(&t0, &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("branch `nope` not found"), "{e}");
}

/// A first run that fails before processing a commit (a repository that
/// is not there, a branch that is not there) left a status file naming its
/// source, and every later run with the right source was refused.
#[test]
fn a_run_that_processed_nothing_claims_nothing() {
    let lab = Lab::new();
    let mut wrong = lab.config(RepoLocation::Path(lab.tmp.path().join("no-such-repo")));
    wrong.branch = "nope".into();
    let mut w = Watcher::open(wrong, &mut |_| {}).unwrap();
    assert!(w.poll(&t0, &mut |_| {}).is_err());
    drop(w);
    assert!(!lab.out().join("status.json").exists());
    // A status file of such a run (written by earlier versions) is no claim either.
    std::fs::write(
        lab.out().join("status.json"),
        r#"{"format": 1, "repository": "/elsewhere", "branch": "x", "path": ".",
            "last_processed": null, "last_published": null, "history": []}"#,
    )
    .unwrap();
    let (mut w, _) = lab.open();
    let (r, _) = poll_at(&mut w, t0());
    assert_eq!(r.published, 1);
    let s = w.status();
    assert_eq!(s.branch, "main");
    assert_eq!(s.repository, lab.bare.display().to_string());
}

#[test]
fn generations_only_grow_even_when_current_is_moved_back() {
    let (lab, mut w) = Lab::published();
    lab.edit("ports=8080", "ports=8081");
    lab.push("two");
    poll_at(&mut w, t0());
    drop(w);
    // An operator points `current` back at generation 1 by hand.
    let out = lab.out();
    std::fs::remove_file(out.join("current")).unwrap();
    std::os::unix::fs::symlink("generations/1", out.join("current")).unwrap();
    let mut w = lab.open_saying("Adopted { generation: 1");
    lab.edit("ports=8081", "ports=8082");
    lab.push("three");
    let (_, ev) = poll_at(&mut w, t0());
    // Not 2 again: agents may hold generation 2 and would refuse it as old.
    assert_eq!(published(&ev), [(3, 2, 2)], "{ev:?}");
    assert_eq!(
        generations(&index(&out, 3)),
        [("lab-n1".to_string(), 3), ("lab-n2".to_string(), 3)]
    );
}

/// The lab inventory as `kubectl get … --watch --output-watch-events -o json`
/// prints it: one ADDED line per object.
pub(crate) fn events_of_lab() -> String {
    let list: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture().join("inventory.json")).unwrap()).unwrap();
    let mut out = String::new();
    for item in list["items"].as_array().unwrap() {
        out.push_str(&serde_json::json!({"type": "ADDED", "object": item}).to_string());
        out.push('\n');
    }
    out
}

/// A pod event line.
pub(crate) fn pod_event(kind: &str, name: &str, app: &str, node: &str, ip: &str) -> String {
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"),
                     "labels": {"app": app}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}
    });
    format!("{}\n", serde_json::json!({"type": kind, "object": pod}))
}

/// Following `events`, signed by the test key, the cluster left to the intent.
fn live_config(events: &Path) -> ringfence_gitops::watch::LiveConfig {
    ringfence_gitops::watch::LiveConfig {
        source: ringfence_gitops::watch::LiveSource::Events(events.to_path_buf()),
        cluster: None,
        membership_keys: vec![key()],
        membership_expires: Duration::from_secs(3600),
    }
}

/// The lab with its events file written (`lab.events`).
fn live_lab() -> (Lab, PathBuf) {
    let lab = Lab::new();
    let events = lab.tmp.path().join("lab.events");
    std::fs::write(&events, events_of_lab()).unwrap();
    (lab, events)
}

/// A watcher of the lab's repository following `events` (no inventory
/// files; the cluster is the one the lab's scopes name).
fn open_live(lab: &Lab, events: &Path) -> Watcher {
    let mut cfg = lab.config(RepoLocation::Path(lab.bare.clone()));
    cfg.inventory = Vec::new();
    cfg.live = Some(live_config(events));
    Watcher::open(cfg, &mut |_| {}).unwrap()
}

/// The live lab, watched, its first commit published.
fn live_published() -> (Lab, PathBuf, Watcher) {
    let (lab, events) = live_lab();
    let mut w = open_live(&lab, &events);
    let (r, ev) = poll_at(&mut w, t0());
    assert_eq!((r.published, r.failed), (1, 0), "{ev:?}");
    (lab, events, w)
}

#[test]
fn the_events_cluster_is_the_one_the_tips_scopes_name_or_an_error() {
    let lab = Lab::new();
    let events = lab.tmp.path().join("stream");
    std::fs::write(&events, events_of_lab()).unwrap();
    let open = || {
        let mut cfg = lab.config(RepoLocation::Path(lab.bare.clone()));
        cfg.live = Some(live_config(&events));
        Watcher::open(cfg, &mut |_| {}).err().expect("refused")
    };
    // Two clusters at the tip: which one is ambiguous.
    lab.edit(r#"cluster "lab""#, r#"cluster "lab" "lab-b""#);
    let tip = lab.push("two clusters");
    let e = open();
    assert!(matches!(e, WatchError::EventsCluster { .. }), "{e}");
    let msg = e.to_string();
    for part in [
        &tip[..12],
        "main",
        "they name lab, lab-b",
        "--events-cluster",
    ] {
        assert!(msg.contains(part), "`{part}` missing: {msg}");
    }
    // None at all.
    lab.edit(r#"cluster "lab" "lab-b""#, r#"kind "pod" "node""#);
    lab.push("no cluster");
    let msg = open().to_string();
    assert!(msg.contains("they name none"), "{msg}");
    // Nothing was claimed or written by the refused runs.
    assert!(!lab.out().join("membership").exists());
    assert!(
        !lab.out()
            .join(ringfence_gitops::status::STATUS_FILE)
            .exists(),
        "a refused start publishes nothing"
    );
    // Named explicitly, any intent will do.
    let mut cfg = lab.config(RepoLocation::Path(lab.bare.clone()));
    cfg.live = Some(ringfence_gitops::watch::LiveConfig {
        cluster: Some("lab".into()),
        ..live_config(&events)
    });
    assert!(Watcher::open(cfg, &mut |_| {}).is_ok());
}

/// Every membership document of `node`, verified in order from the
/// snapshot, and the membership they lead to.
fn follow_chain(
    out: &Path,
    node: &str,
    generation: u64,
) -> (ringfence_schema::membership::Membership, u64) {
    use ringfence_bundle::{Applied, MembershipExpect, verify_membership};
    let dir = out.join("membership").join(node);
    let trust = Trust::new([key().trusted()], 1);
    let head: u64 = std::fs::read_to_string(dir.join("head"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let now = t0() + Duration::from_secs(60);
    let snap = std::fs::read(dir.join("snapshot")).unwrap();
    let expect = MembershipExpect {
        node,
        generation,
        ir: None,
        now,
        applied: None,
    };
    let v = verify_membership(&snap, &trust, &expect).unwrap();
    let mut m = v.document.apply_to(&Default::default()).unwrap();
    let (mut seq, mut digest) = (v.document.sequence(), v.digest);
    while seq < head {
        let bytes = std::fs::read(dir.join(format!("{}.delta", seq + 1))).unwrap();
        let expect = MembershipExpect {
            applied: Some(Applied {
                sequence: seq,
                digest: &digest,
            }),
            ..expect
        };
        let v = verify_membership(&bytes, &trust, &expect).unwrap();
        m = v.document.apply_to(&m).unwrap();
        seq = v.document.sequence();
        digest = v.digest;
    }
    (m, seq)
}

/// Append `text` to the events file watch follows, and give its reader a
/// moment.
fn append(events: &Path, text: &str) {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(events)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
}

/// Pod `name` of `app` on `node` at `ip` appears, then goes.
fn added(events: &Path, name: &str, app: &str, node: &str, ip: &str) {
    append(events, &pod_event("ADDED", name, app, node, ip));
}

fn deleted(events: &Path, name: &str, app: &str, node: &str, ip: &str) {
    append(events, &pod_event("DELETED", name, app, node, ip));
}

fn in_some_set(m: &ringfence_schema::membership::Membership, ip: &str) -> bool {
    let a: std::net::IpAddr = ip.parse().unwrap();
    m.sets.iter().any(|s| s.addresses.contains(&a))
}

#[test]
fn live_events_become_signed_membership_and_new_classes_rerender_one_node() {
    let (lab, events, mut w) = live_published();
    let out = lab.out();
    // Generation 1 holds live IRs; each node starts its chain with a snapshot.
    let (m1, s1) = follow_chain(&out, "lab-n1", 1);
    assert_eq!(s1, 1);
    assert!(
        in_some_set(&m1, "10.244.2.2"),
        "api's address in web's egress sets: {m1:?}"
    );
    assert!(out.join("current/membership/lab-n1/snapshot").is_file());

    // A second api pod: a known class on a node that has its chains, so
    // only membership: lab-n1's api set gains it, no new generation.
    added(&events, "api-2", "api", "lab-n2", "10.244.2.10");
    let (r, ev) = poll_at(&mut w, t0());
    assert_eq!(r.published, 0, "{ev:?}");
    assert!(published(&ev).is_empty(), "{ev:?}");
    let (m1, s1) = follow_chain(&out, "lab-n1", 1);
    assert_eq!(s1, 2);
    assert!(in_some_set(&m1, "10.244.2.10"), "{m1:?}");

    // Gone: its address leaves every set at once.
    deleted(&events, "api-2", "api", "lab-n2", "10.244.2.10");
    poll_at(&mut w, t0());
    let (m1, s1) = follow_chain(&out, "lab-n1", 1);
    assert_eq!(s1, 3);
    assert!(!in_some_set(&m1, "10.244.2.10"), "{m1:?}");

    // Its address reused by a db pod: db's rights, not api's.
    added(&events, "db-2", "db", "lab-n2", "10.244.2.10");
    poll_at(&mut w, t0());
    let (m1, _) = follow_chain(&out, "lab-n1", 1);
    assert!(
        !in_some_set(&m1, "10.244.2.10"),
        "web may not reach db: {m1:?}"
    );

    // The first web pod on lab-n2: lab-n2 lacks web's chains, so lab-n2
    // alone is rendered again, as a new generation with a new snapshot.
    added(&events, "web-2", "web", "lab-n2", "10.244.2.11");
    let (r, ev) = poll_at(&mut w, t0());
    assert_eq!(published(&ev), [(2, 1, 1)], "{ev:?}");
    assert_eq!(r.failed, 0);
    assert_eq!(
        generations(&index(&out, 2)),
        [("lab-n1".to_string(), 1), ("lab-n2".to_string(), 2)]
    );
    let (m2, _) = follow_chain(&out, "lab-n2", 2);
    assert!(
        m2.endpoints
            .iter()
            .any(|e| e.name == "pod/shop/web-2" && e.egress.is_some()),
        "{m2:?}"
    );
}

#[test]
fn nodes_whose_rules_stay_get_their_deltas_before_a_node_is_rendered_again() {
    let (lab, events, mut w) = live_published();
    // One batch: a second api pod (membership only for lab-n1, which holds
    // api's set) and the first web pod on lab-n2 (which lacks web's chains).
    let mut batch = pod_event("ADDED", "api-3", "api", "lab-n2", "10.244.2.12");
    batch.push_str(&pod_event("ADDED", "web-3", "web", "lab-n2", "10.244.2.13"));
    append(&events, &batch);
    let (r, ev) = poll_at(&mut w, t0());
    assert_eq!(r.failed, 0, "{ev:?}");
    assert_eq!(published(&ev), [(2, 1, 1)], "{ev:?}");
    let first_deltas = ev.iter().position(
        |e| matches!(e, Event::Members { pods: 2, deltas, snapshots: 0, .. } if *deltas > 0),
    );
    let rendered = ev.iter().position(|e| matches!(e, Event::Published { .. }));
    assert!(
        first_deltas.is_some() && first_deltas < rendered,
        "the deltas come before the re-render: {ev:?}"
    );
    // lab-n1 kept its bundle and went on with a delta; lab-n2 starts over.
    assert_eq!(
        generations(&index(&lab.out(), 2)),
        [("lab-n1".to_string(), 1), ("lab-n2".to_string(), 2)]
    );
    let (m1, s1) = follow_chain(&lab.out(), "lab-n1", 1);
    assert_eq!(s1, 2);
    assert!(in_some_set(&m1, "10.244.2.12"), "{m1:?}");
    let (m2, _) = follow_chain(&lab.out(), "lab-n2", 2);
    assert!(
        m2.endpoints.iter().any(|e| e.name == "pod/shop/web-3"),
        "{m2:?}"
    );
}

/// Follow events between polls, as `--serve` does, until generation `n` is
/// published (at most 10 s); the events logged go to `ev`.
fn follow_until_generation(w: &mut Watcher, out: &Path, n: u64, ev: &mut Vec<Event>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !Publication::new(out).dir(n).join("index.json").is_file() {
        assert!(Instant::now() < deadline, "no generation {n}: {ev:?}");
        w.follow_events(&t0, &mut |e| ev.push(e)).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn between_polls_a_node_that_needs_new_chains_is_rendered_again_without_a_poll() {
    let (lab, events, mut w) = live_published();
    let out = lab.out();
    // A second api pod (a delta for lab-n1) and the first web pod on lab-n2
    // (which lacks web's chains), followed between polls as `--serve` does.
    let mut batch = pod_event("ADDED", "api-3", "api", "lab-n2", "10.244.2.12");
    batch.push_str(&pod_event("ADDED", "web-3", "web", "lab-n2", "10.244.2.13"));
    append(&events, &batch);
    let mut ev = Vec::new();
    follow_until_generation(&mut w, &out, 2, &mut ev);
    assert_eq!(published(&ev), [(2, 1, 1)], "{ev:?}");
    assert_eq!(
        generations(&index(&out, 2)),
        [("lab-n1".to_string(), 1), ("lab-n2".to_string(), 2)]
    );
    let (m1, s1) = follow_chain(&out, "lab-n1", 1);
    assert_eq!(s1, 2);
    assert!(in_some_set(&m1, "10.244.2.12"), "{m1:?}");
    // lab-n2 got no delta on its old generation (which would have taken
    // sequence 2): its new chain starts there with a snapshot.
    let (m2, s2) = follow_chain(&out, "lab-n2", 2);
    assert_eq!(s2, 2);
    assert!(
        m2.endpoints.iter().any(|e| e.name == "pod/shop/web-3"),
        "{m2:?}"
    );
    // Right after, the first api pod on lab-n1: rendered again too.
    added(&events, "api-4", "api", "lab-n1", "10.244.2.14");
    follow_until_generation(&mut w, &out, 3, &mut ev);
    assert_eq!(
        generations(&index(&out, 3)),
        [("lab-n1".to_string(), 3), ("lab-n2".to_string(), 2)]
    );
    let (m1, _) = follow_chain(&out, "lab-n1", 3);
    assert!(
        m1.endpoints.iter().any(|e| e.name == "pod/shop/api-4"),
        "{m1:?}"
    );
}

#[test]
fn a_restarted_watch_goes_on_after_every_sequence_a_crash_left() {
    let (lab, events) = live_lab();
    let open = || open_live(&lab, &events);
    let out = lab.out();
    let dir = out.join("membership/lab-n1");
    let mut w = open();
    poll_at(&mut w, t0());
    added(&events, "api-2", "api", "lab-n2", "10.244.2.10");
    poll_at(&mut w, t0());
    assert_eq!(follow_chain(&out, "lab-n1", 1).1, 2);
    // A crash after writing delta 3, before `head` named it; events go on
    // while watch is down.
    drop(w);
    std::fs::copy(dir.join("2.delta"), dir.join("3.delta")).unwrap();
    deleted(&events, "api-2", "api", "lab-n2", "10.244.2.10");
    added(&events, "api-3", "api", "lab-n2", "10.244.2.12");
    // Restarted: the stream is read again and a snapshot starts a chain
    // past the leftover, which is gone. The bundle generation stays.
    let mut w = open();
    let (r, ev) = poll_at(&mut w, t0());
    assert_eq!(r.failed, 0, "{ev:?}");
    assert_eq!(generations(&index(&out, 2))[0], ("lab-n1".to_string(), 1));
    assert!(!dir.join("3.delta").exists());
    let (m, seq) = follow_chain(&out, "lab-n1", 1);
    assert_eq!(seq, 4);
    assert!(!in_some_set(&m, "10.244.2.10"), "{m:?}");
    assert!(in_some_set(&m, "10.244.2.12"), "{m:?}");
    // And goes on with deltas from there.
    deleted(&events, "api-3", "api", "lab-n2", "10.244.2.12");
    poll_at(&mut w, t0());
    let (m, seq) = follow_chain(&out, "lab-n1", 1);
    assert_eq!(seq, 5);
    assert!(dir.join("5.delta").is_file());
    assert!(!in_some_set(&m, "10.244.2.12"), "{m:?}");
}
