//! `ringfence watch --once` against a local bare repository: three pushes
//! (valid, invalid, valid) give exactly two generations whether watch runs
//! after each push or once after all three; a crash at any point of a
//! publication (a test-only failpoint aborts the process) leaves the
//! previous generation current, intact and verifiable, and the next run
//! recovers. With `--kube`, against the testkit's list+watch API server:
//! pods created on the server reach the published membership, one deleted
//! during a `410 Gone` gap leaves it, and `--once` fails in bounded time
//! when the server is down.

use std::path::Path;
use std::process::Command;

use ringfence_testkit::kubeapi::{Edit, KubeApi};
use ringfence_testkit::text::assert_contains;

use crate::gitops_common::{Lab, edit, text};

const GOOD_1: (&str, &str) = ("ports=8080", "ports=\"8080-8081\"");
const BAD: (&str, &str) = ("from=\"api\" to=\"db\"", "from=\"nobody\" to=\"db\"");

fn status(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("status.json")).unwrap()).unwrap()
}

fn generation_dirs(out: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(out.join("generations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn current(out: &Path) -> String {
    std::fs::read_link(out.join("current"))
        .unwrap()
        .display()
        .to_string()
}

/// The three pushes after the base commit; their ids.
fn three_pushes(lab: &Lab) -> [String; 3] {
    edit(&lab.intent(), GOOD_1.0, GOOD_1.1);
    let a = lab.push("api on two ports");
    edit(&lab.intent(), BAD.0, BAD.1);
    let b = lab.push("a broken reference");
    edit(&lab.intent(), BAD.1, BAD.0);
    edit(&lab.intent(), "ports=5432", "ports=\"5432-5433\"");
    let c = lab.push("fixed, and db on two ports");
    [a, b, c]
}

fn statuses(out: &Path) -> Vec<(String, String)> {
    status(out)["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["commit"].as_str().unwrap().to_string(),
                e["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn valid_invalid_valid_gives_two_generations() {
    let lab = Lab::new("watch3");
    let out = lab.tmp.join("out");
    edit(&lab.intent(), GOOD_1.0, GOOD_1.1);
    let a = lab.push("api on two ports");
    let r = lab.watch_once(&out, None);
    assert!(r.status.success(), "{}", text(&r));
    edit(&lab.intent(), BAD.0, BAD.1);
    let b = lab.push("a broken reference");
    let r = lab.watch_once(&out, None);
    assert_eq!(r.status.code(), Some(1), "{}", text(&r));
    let t = text(&r);
    assert_contains(&t, "not published: 1 error(s); first: 10-lab.kdl:");
    assert_contains(&t, "╭─[10-lab.kdl:");
    assert_eq!(current(&out), "generations/1");
    edit(&lab.intent(), BAD.1, BAD.0);
    let c = lab.push("fixed");
    let r = lab.watch_once(&out, None);
    assert!(r.status.success(), "{}", text(&r));

    assert_eq!(generation_dirs(&out), ["1", "2"]);
    assert_eq!(current(&out), "generations/2");
    lab.verify_all(&out.join("current"));
    let s = status(&out);
    assert_eq!(s["last_processed"], c.as_str());
    assert_eq!(s["last_published"]["commit"], c.as_str());
    assert_eq!(s["last_published"]["generation"], 2);
    assert_eq!(
        statuses(&out),
        [
            (a, "published".to_string()),
            (b, "failed".to_string()),
            (c, "published".to_string())
        ]
    );
    let failed = &s["history"][1];
    assert!(
        failed["reason"].as_str().unwrap().contains("`nobody`"),
        "{failed}"
    );
    assert_eq!(
        failed["diagnostics"]["diagnostics"][0]["file"],
        "10-lab.kdl"
    );
}

#[test]
fn one_run_processes_every_new_commit_in_order() {
    let lab = Lab::new("watchall");
    let out = lab.tmp.join("out");
    let base = lab.push("the lab intent");
    let r = lab.watch_once(&out, None);
    assert!(r.status.success(), "{}", text(&r));
    let [a, b, c] = three_pushes(&lab);
    let r = lab.watch_once(&out, None);
    assert_eq!(r.status.code(), Some(1), "{}", text(&r));
    assert!(
        String::from_utf8_lossy(&r.stdout)
            .starts_with("3 commit(s) processed: 2 published, 1 failed; current: generation 3"),
        "{}",
        text(&r)
    );
    assert_eq!(
        statuses(&out),
        [
            (base, "published".to_string()),
            (a, "published".to_string()),
            (b, "failed".to_string()),
            (c.clone(), "published".to_string())
        ]
    );
    // The base commit's generation and the two valid pushes' (the second
    // against the first: the node untouched by it keeps its generation).
    assert_eq!(generation_dirs(&out), ["1", "2", "3"]);
    lab.verify_all(&out.join("generations/2"));
    lab.verify_all(&out.join("current"));
    assert_eq!(status(&out)["last_published"]["commit"], c.as_str());
}

#[test]
fn a_crash_mid_publish_leaves_the_previous_generation_and_the_next_run_recovers() {
    let lab = Lab::new("watchcrash");
    let out = lab.tmp.join("out");
    lab.push("the lab intent");
    assert!(lab.watch_once(&out, None).status.success());
    let before = std::fs::read(out.join("current/lab-n2.bundle")).unwrap();

    edit(&lab.intent(), GOOD_1.0, GOOD_1.1);
    let next = lab.push("api on two ports");
    for point in ["before-rename", "before-switch"] {
        let r = lab.watch_once(&out, Some(point));
        assert_eq!(
            r.status.code(),
            None,
            "{point}: aborted by a signal\n{}",
            text(&r)
        );
        // The previous generation is still what agents read, whole.
        assert_eq!(current(&out), "generations/1", "{point}");
        assert_eq!(
            std::fs::read(out.join("current/lab-n2.bundle")).unwrap(),
            before
        );
        lab.verify_all(&out.join("current"));
        assert_eq!(status(&out)["last_published"]["generation"], 1);
    }
    // What the crashes left behind: generation 2, complete but never current.
    assert_eq!(generation_dirs(&out), ["1", "2"]);

    let r = lab.watch_once(&out, None);
    let t = text(&r);
    assert!(r.status.success(), "{t}");
    assert_contains(&t, "removed leftovers of an interrupted run: generations/2");
    assert_contains(&t, "published");
    assert_eq!(current(&out), "generations/2");
    lab.verify_all(&out.join("current"));
    assert_eq!(status(&out)["last_published"]["commit"], next.as_str());

    // A crash after the switch, before the status records it: the next run
    // adopts the generation agents may already read, and publishes nothing new.
    edit(&lab.intent(), "ports=5432", "ports=\"5432-5433\"");
    let last = lab.push("db on two ports");
    let r = lab.watch_once(&out, Some("before-status"));
    assert_eq!(r.status.code(), None, "{}", text(&r));
    assert_eq!(current(&out), "generations/3");
    assert_eq!(status(&out)["last_published"]["generation"], 2);
    let r = lab.watch_once(&out, None);
    let t = text(&r);
    assert!(r.status.success(), "{t}");
    assert!(
        t.contains("generation 3") && t.contains("recorded it"),
        "{t}"
    );
    assert!(
        String::from_utf8_lossy(&r.stdout).starts_with("0 commit(s) processed"),
        "{t}"
    );
    let s = status(&out);
    assert_eq!(s["last_published"]["generation"], 3);
    assert_eq!(s["last_processed"], last.as_str());
    assert_eq!(generation_dirs(&out), ["1", "2", "3"]);
}

/// The lab with its intent pushed; its API server (every object of the lab
/// inventory, served by the testkit's list+watch server); a kubeconfig
/// reaching it; and where watch publishes.
fn kube_lab(tag: &str) -> (Lab, KubeApi, std::path::PathBuf, std::path::PathBuf) {
    let lab = Lab::new(tag);
    lab.push("the lab intent");
    let api = KubeApi::start("t0k3n");
    let list: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lab.inventory()).unwrap()).unwrap();
    api.put(list["items"].as_array().unwrap().iter().cloned());
    let kubeconfig = lab.tmp.join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, "lab", "t0k3n");
    let out = lab.tmp.join("out");
    (lab, api, kubeconfig, out)
}

/// `ringfence watch` of the lab with `--kube --kubeconfig F` and `extra`.
fn watch_kube(lab: &Lab, kubeconfig: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(ringfence_e2e::bin::binary("ringfence"));
    c.env("NO_COLOR", "1")
        .args(["watch", "--repo", lab.bare.to_str().unwrap()])
        .args(["--branch", "main", "--path", "policies"])
        .args(["--kube", "--kubeconfig", kubeconfig.to_str().unwrap()])
        .args(["--key", lab.tmp.join("ci.key").to_str().unwrap()])
        .args(["--out", out.to_str().unwrap()])
        .args(extra);
    c
}

/// Every node's membership as published in `out` (snapshot and deltas,
/// verified in order with the lab key), as JSON text.
fn memberships(lab: &Lab, out: &Path) -> Vec<String> {
    use ringfence_bundle::{Applied, MembershipExpect, Trust, load_trusted_key, verify_index};
    let trust = Trust::new([load_trusted_key(&lab.tmp.join("ci.pub")).unwrap()], 1);
    let Ok(index) = std::fs::read(out.join("current/index.json")) else {
        return Vec::new();
    };
    let index = verify_index(&index, &trust).unwrap();
    let mut all = Vec::new();
    for entry in index.nodes {
        let dir = out.join("membership").join(&entry.node);
        let (Ok(head), Ok(snap)) = (
            std::fs::read_to_string(dir.join("head")),
            std::fs::read(dir.join("snapshot")),
        ) else {
            continue;
        };
        let head: u64 = head.trim().parse().unwrap();
        let expect = MembershipExpect {
            node: &entry.node,
            generation: entry.generation,
            ir: None,
            now: std::time::SystemTime::now(),
            applied: None,
        };
        let Ok(v) = ringfence_bundle::verify_membership(&snap, &trust, &expect) else {
            continue; // a newer generation's snapshot is being written
        };
        let mut m = v.document.apply_to(&Default::default()).unwrap();
        let (mut seq, mut digest) = (v.document.sequence(), v.digest);
        while seq < head {
            let Ok(bytes) = std::fs::read(dir.join(format!("{}.delta", seq + 1))) else {
                break;
            };
            let expect = MembershipExpect {
                applied: Some(Applied {
                    sequence: seq,
                    digest: &digest,
                }),
                ..expect
            };
            let v = ringfence_bundle::verify_membership(&bytes, &trust, &expect).unwrap();
            m = v.document.apply_to(&m).unwrap();
            seq = v.document.sequence();
            digest = v.digest;
        }
        all.push(serde_json::to_string(&m).unwrap());
    }
    all
}

/// Wait (20 s at most) until `ok` holds of the published memberships.
fn wait_for(lab: &Lab, out: &Path, what: &str, ok: impl Fn(&[String]) -> bool) {
    let start = std::time::Instant::now();
    loop {
        let m = memberships(lab, out);
        if ok(&m) {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "{what}; memberships: {m:?}\nwatch: {}",
            std::fs::read_to_string(lab.tmp.join("watch.log")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The lab's api pod as `name` at `ip` (a new UID).
fn api_pod(lab: &Lab, name: &str, ip: &str) -> serde_json::Value {
    let mut pod = lab.pod_of("api");
    pod["metadata"]["name"] = name.into();
    pod["metadata"]["uid"] = format!("uid-{name}").into();
    pod["status"]["podIP"] = ip.into();
    pod["status"]["podIPs"] = serde_json::json!([{ "ip": ip }]);
    pod
}

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn watch_kube_publishes_a_pod_created_on_the_server_and_drops_one_deleted_in_a_410_gap() {
    let (lab, api, kubeconfig, out) = kube_lab("kube");
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let log = std::fs::File::create(lab.tmp.join("watch.log")).unwrap();
    let _watch = Killed(
        watch_kube(
            &lab,
            &kubeconfig,
            &out,
            &["--interval", "1", "--serve", &addr],
        )
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap(),
    );
    // The api pod of the list is a member somewhere.
    wait_for(&lab, &out, "the listed api pod", |m| {
        m.iter().any(|m| m.contains("\"10.244.2.2\""))
    });
    // A second api pod, created on the server, arrives by the watch.
    api.put([api_pod(&lab, "api-5d8f7b9c6d-zz9zz", "10.244.2.9")]);
    wait_for(&lab, &out, "the created pod", |m| {
        m.iter().any(|m| m.contains("\"10.244.2.9\""))
    });
    // Deleted while no watch sees it, the history compacted: the watch
    // ends with 410 Gone, the relist lacks it, it leaves every node.
    api.expire(vec![Edit::Delete(
        "Pod",
        "shop".into(),
        "api-5d8f7b9c6d-zz9zz".into(),
    )]);
    wait_for(&lab, &out, "the pod deleted in the gap gone", |m| {
        !m.is_empty()
            && !m.iter().any(|m| m.contains("\"10.244.2.9\""))
            && m.iter().any(|m| m.contains("\"10.244.2.2\""))
    });
    assert_eq!(api.lists("pods"), 2, "{:?}", api.requests());
    let log = std::fs::read_to_string(lab.tmp.join("watch.log")).unwrap();
    assert_contains(&log, &format!("watch: live inventory from {}/", api.url()));
    assert_contains(&log, "410");
    assert_contains(&log, "listing them again");
}

#[test]
fn watch_kube_once_publishes_the_listed_cluster_and_fails_in_time_when_the_server_is_down() {
    let (lab, api, kubeconfig, out) = kube_lab("kube-once");
    let r = watch_kube(&lab, &kubeconfig, &out, &["--once"])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", text(&r));
    assert_contains(&text(&r), "live cluster listed: 3 pod(s)");
    assert_contains(&text(&r), "1 published, 0 failed");
    assert!(
        memberships(&lab, &out)
            .iter()
            .any(|m| m.contains("\"10.244.2.2\""))
    );

    // The server gone: a bounded wait, then exit 2 naming the server.
    let url = api.url();
    drop(api);
    let started = std::time::Instant::now();
    let r = watch_kube(
        &lab,
        &kubeconfig,
        &lab.tmp.join("out2"),
        &["--once", "--kube-timeout", "2s"],
    )
    .output()
    .unwrap();
    assert_eq!(r.status.code(), Some(2), "{}", text(&r));
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    let t = text(&r);
    assert_contains(
        &t,
        &format!("{url}/: no complete list of nodes, namespaces, pods and services after 2s"),
    );
    assert_contains(&t, "--kube-timeout");
}
