//! `ringfence watch --once` against a local bare repository: three pushes
//! (valid, invalid, valid) give exactly two generations whether watch runs
//! after each push or once after all three; a crash at any point of a
//! publication (a test-only failpoint aborts the process) leaves the
//! previous generation current, intact and verifiable, and the next run
//! recovers.

#[path = "gitops_common/mod.rs"]
mod common;

use std::path::Path;

use ringfence_testkit::text::assert_contains;

use common::{Lab, edit, text};

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
