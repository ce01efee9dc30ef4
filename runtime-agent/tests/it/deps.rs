//! The agent stays small: no wasmtime, git2, kube or tokio in its
//! dependency tree.

use std::process::Command;

use ringfence_testkit::cmd::run;

#[test]
fn dependency_tree_has_no_heavy_stacks() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let out = run(Command::new(cargo).args([
        "tree",
        "--offline",
        "-p",
        "ringfence-agent",
        "-e",
        "normal",
        "--prefix",
        "none",
        "--manifest-path",
        manifest,
    ]));
    let tree = String::from_utf8(out.stdout).unwrap();
    assert!(tree.contains("ringfence-bundle"), "{tree}");
    for banned in ["wasmtime", "git2", "kube", "tokio"] {
        let hits: Vec<&str> = tree
            .lines()
            .filter(|l| {
                l.split_whitespace()
                    .next()
                    .is_some_and(|c| c.starts_with(banned))
            })
            .collect();
        assert!(hits.is_empty(), "{banned} in the agent's tree: {hits:?}");
    }
}
