//! Hostile and oversized input through the binary: a clear diagnostic or
//! refusal, never a crash or a write outside the output directory.

use std::fs;

use crate::cli::{code, p, ringfence, text};
use ringfence_testkit::text::assert_contains;

/// A 4 KB file of nested blocks (and its `not`, `scope` and comment
/// variants) aborted `check` and `fmt` with a stack overflow.
#[test]
fn nested_kdl_is_a_diagnostic_not_a_crash() {
    let hostile = [
        "a {".repeat(3000) + &"}".repeat(3000),
        format!(
            "filter \"f\" {{\n{}\n}}\n",
            "not {".repeat(20_000) + &"}".repeat(20_000)
        ),
        "scope \"s\" {".repeat(3000) + &"}".repeat(3000),
        format!("/*{}*/\n", "*".repeat(100_000)),
    ];
    for (i, kdl) in hostile.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.kdl"), kdl).unwrap();
        let out = ringfence(&["check", p(dir.path())]);
        let all = text(&out.stdout) + &text(&out.stderr);
        let comment = i == 3;
        // The comment is valid KDL (but no intent): exit 0; the rest: 1.
        assert_eq!(code(&out), if comment { 0 } else { 1 }, "case {i}: {all}");
        if !comment {
            assert!(all.contains("ringfence::limit"), "case {i}: {all}");
            assert!(
                all.contains("a.kdl:1:") || all.contains("a.kdl:2:"),
                "case {i}: {all}"
            );
        }
        let out = ringfence(&["fmt", "--check", p(dir.path())]);
        assert!(code(&out) <= 1, "fmt case {i}: {}", text(&out.stderr));
    }
}

/// The example inventory with `edit` applied, written into `dir`.
fn example_inventory(dir: &std::path::Path, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = fs::read_to_string(root.join("policies-example/inventory/prod-eu1.json")).unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    edit(&mut doc);
    let path = dir.join("prod-eu1.json");
    fs::write(&path, doc.to_string()).unwrap();
    p(&path).to_owned()
}

fn example() -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    p(&root.join("policies-example")).to_owned()
}

/// Every file under `dir`, relative, sorted.
fn tree(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            out.push(path.strip_prefix(dir).unwrap().display().to_string());
            if path.is_dir() {
                todo.push(path);
            }
        }
    }
    out.sort();
    out
}

/// A Node named `../../x` or `/abs/path` made `render` write outside `--out`,
/// and a List annotated with cluster `..` made `discover` do the same; the
/// names are refused where the inventory is read, by every command.
#[test]
fn names_in_the_inventory_never_become_paths_outside_out() {
    for bad in ["../../escaped-node", "/abs/path", ".."] {
        let tmp = tempfile::tempdir().unwrap();
        let inv = example_inventory(tmp.path(), |d| {
            let items = d["items"].as_array_mut().unwrap();
            let node = items.iter().find(|o| o["kind"] == "Node").unwrap();
            let old = node["metadata"]["name"].as_str().unwrap().to_owned();
            for o in items.iter_mut() {
                if o["kind"] == "Node" && o["metadata"]["name"] == old.as_str() {
                    o["metadata"]["name"] = bad.into();
                }
                if o["kind"] == "Pod" && o["spec"]["nodeName"] == old.as_str() {
                    o["spec"]["nodeName"] = bad.into();
                }
            }
        });
        let out = tmp.path().join("r/a/b");
        fs::create_dir_all(&out).unwrap();
        for cmd in [
            vec!["render", &example(), "--inventory", &inv, "--out", p(&out)],
            vec![
                "compile",
                &example(),
                "--inventory",
                &inv,
                "--emit",
                "ir",
                "--out",
                p(&out),
            ],
            vec!["matrix", &example(), "--inventory", &inv],
        ] {
            let o = ringfence(&cmd);
            let err = text(&o.stderr);
            assert_eq!(code(&o), 2, "{cmd:?}: {err}");
            assert!(
                err.contains(&format!(
                    "`metadata.name` is {bad:?}, not a valid Node name"
                )),
                "{cmd:?}: {err}"
            );
        }
        assert_eq!(
            tree(tmp.path()),
            ["prod-eu1.json", "r", "r/a", "r/a/b"],
            "{bad}"
        );
    }

    let tmp = tempfile::tempdir().unwrap();
    let inv = example_inventory(tmp.path(), |d| {
        d["metadata"]["annotations"]["ringfence.io/cluster"] = "..".into();
    });
    let flows = std::path::Path::new(&example()).join("flows/one-day.jsonl");
    let out = tmp.path().join("r/a/b");
    let o = ringfence(&[
        "discover",
        "--inventory",
        &inv,
        "--flows",
        p(&flows),
        "--out",
        p(&out),
    ]);
    let err = text(&o.stderr);
    assert_eq!(code(&o), 2, "{err}");
    assert_contains(
        &err,
        "`metadata.annotations.ringfence.io/cluster` is \"..\", not a usable cluster name",
    );
    assert_eq!(tree(tmp.path()), ["prod-eu1.json"]);
}

/// `explain --port 0` answered as if a connection could use port 0.
#[test]
fn explain_refuses_port_0() {
    let inv = std::path::Path::new(&example()).join("inventory/prod-eu1.json");
    let o = ringfence(&[
        "explain",
        &example(),
        "--inventory",
        p(&inv),
        "--from",
        "external:internet",
        "--to",
        "shop/frontend",
        "--port",
        "0",
    ]);
    let err = text(&o.stderr);
    assert_eq!(code(&o), 2, "{err}");
    assert_contains(&err, "invalid value '0' for '--port <PORT>'");
    assert_contains(&err, "1..=65535");
    assert!(o.stdout.is_empty());
}

/// `ringfence matrix` of the example with `extra` flags: its stdout (exit 0).
fn example_matrix(extra: &[&str]) -> String {
    let ex = example();
    let inv = std::path::Path::new(&ex).join("inventory/prod-eu1.json");
    let mut args = vec!["matrix", &ex, "--inventory", p(&inv)];
    args.extend_from_slice(extra);
    let o = ringfence(&args);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    text(&o.stdout)
}

/// At the size of a real cluster the matrix is read a piece at a time:
/// `--from`, `--to` and `--namespace` keep whole lines, repeatable.
#[test]
fn matrix_filters_by_group_and_namespace() {
    let run = example_matrix;
    let all = run(&[]);
    let from_internet = run(&["--from", "internet"]);
    let lines_where = |keep: fn(&&str) -> bool| -> String {
        all.lines().filter(keep).map(|l| format!("{l}\n")).collect()
    };
    assert_eq!(
        from_internet,
        lines_where(|l| l.starts_with("internet[External] => "))
    );
    assert!(from_internet.contains("(NodePort shop/frontend)"));
    let into_shop = run(&["--to", "shop", "--to", "shop-data"]);
    assert!(!into_shop.is_empty());
    assert!(into_shop.lines().all(|l| {
        let to = l.split(" => ").nth(1).unwrap();
        to.starts_with("shop/") || to.starts_with("shop-data/")
    }));
    let invoicing = run(&["--namespace", "invoicing"]);
    assert_eq!(invoicing, lines_where(|l| l.contains("invoicing/")));
    assert_eq!(run(&["--from", "nobody"]), "");
}

/// `--summary` folds the lines of each group pair into one, in the same
/// order, as text and as a document; the streamed JSON is the matrix.
#[test]
fn matrix_summary_has_one_line_per_group_pair() {
    let run = example_matrix;
    let all = run(&[]);
    let mut folded: Vec<(String, Vec<String>)> = Vec::new();
    for l in all.lines() {
        let (pair, allowed) = l.split_once(" : ").unwrap();
        match folded.last_mut() {
            Some((p, a)) if p == pair => a.push(allowed.to_string()),
            _ => folded.push((pair.to_string(), vec![allowed.to_string()])),
        }
    }
    let want: String = folded
        .iter()
        .map(|(p, a)| format!("{p} : {}\n", a.join("; ")))
        .collect();
    let summary = run(&["--summary"]);
    assert_eq!(summary, want);
    assert!(summary.lines().count() < all.lines().count());
    let doc: serde_json::Value = serde_json::from_str(&run(&["--summary", "-o", "json"])).unwrap();
    let pairs = doc["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), folded.len());
    assert_eq!(
        pairs[0]["allowed"].as_array().unwrap().len(),
        folded[0].1.len()
    );
    let doc: serde_json::Value = serde_json::from_str(&run(&["-o", "json"])).unwrap();
    assert_eq!(
        doc["connections"].as_array().unwrap().len(),
        all.lines().count()
    );
}
