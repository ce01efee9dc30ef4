//! `ringfence discover` as a user runs it: the real binary on a synthesized
//! shop (inventory, flows in three formats, exclusions), exit codes 0 (ran)
//! and 2 (could not run), reruns into the same directory.

use std::path::Path;
use std::process::Output;

use crate::cli::{code, p, ringfence, stderr_has, text};
use ringfence_testkit::shop;
use ringfence_testkit::text::assert_contains;

fn discover(inputs: &shop::Inputs, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["discover", "--inventory", p(&inputs.inventory)];
    args.extend(inputs.flows.iter().flat_map(|f| ["--flows", p(f)]));
    args.extend([
        "--exclude",
        p(&inputs.exclude),
        "--out",
        p(out),
        "--min-flows",
        "2",
    ]);
    args.extend(extra);
    ringfence(&args)
}

#[test]
fn writes_intent_and_a_summary() {
    let inputs = shop::shop().write(3);
    let out = inputs.dir.path().join("discovered");
    let o = discover(&inputs, &out, &[]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let stdout = text(&o.stdout);
    assert_contains(
        &stdout,
        "Discovery: granularity coarse, port generalization medium, min-flows 2, exclusions kubelet-probes",
    );
    assert_contains(&stdout, "Time taken: ");
    for f in [
        "00-externals.kdl",
        "prod.kdl",
        "prod/shop.kdl",
        "prod/island.kdl",
        "prod/batch.kdl",
    ] {
        let t = std::fs::read_to_string(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(
            t.starts_with("// Discovered by `ringfence discover`"),
            "{f}"
        );
    }
    // The conntrack listing has no times: the summary says which date it got.
    assert_contains(&stdout, "conntrack.txt: conntrack listings carry no time");
    stderr_has(&o, "wrote ");

    // JSON, rerun into the same directory (the earlier files are replaced).
    let o = discover(
        &inputs,
        &out,
        &["--format", "json", "--granularity", "fine"],
    );
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["settings"]["granularity"], "fine");
    assert!(v["elapsed_seconds"].as_f64().unwrap() >= 0.0);
    let f = &v["flows"];
    let sum: u64 = [
        "dropped_by_network",
        "excluded",
        "unknown_addresses",
        "ambiguous_addresses",
        "outside_inventory",
        "replies_detected",
        "below_min_flows",
        "covered",
    ]
    .iter()
    .map(|k| f[k].as_u64().unwrap())
    .sum();
    assert_eq!(sum, f["read"].as_u64().unwrap());
    let shop_file = std::fs::read_to_string(out.join("prod/shop.kdl")).unwrap();
    assert!(
        shop_file.contains("Granularity fine"),
        "rewritten by the second run"
    );
}

#[test]
fn refuses_to_mix_with_someone_elses_intent() {
    let inputs = shop::shop().write(1);
    let out = inputs.dir.path().join("repo");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("10-prod.kdl"),
        "scope \"prod\" {\n    query {\n        cluster \"prod\"\n    }\n}\n",
    )
    .unwrap();
    let o = discover(&inputs, &out, &[]);
    assert_eq!(code(&o), 2);
    stderr_has(&o, "10-prod.kdl: not written by `ringfence discover`");
    assert!(
        std::fs::read_to_string(out.join("10-prod.kdl"))
            .unwrap()
            .starts_with("scope"),
        "left alone"
    );
}

#[test]
fn bad_inputs_exit_2_naming_file_and_line() {
    let inputs = shop::shop().write(1);
    let out = inputs.dir.path().join("out");
    std::fs::write(
        &inputs.exclude,
        "exclude \"x\" {\n    protocol \"tcp\"\n}\n",
    )
    .unwrap();
    let o = discover(&inputs, &out, &[]);
    assert_eq!(code(&o), 2);
    stderr_has(
        &o,
        "exclude.kdl:2:5: unknown field `protocol` in exclusion `x`",
    );

    std::fs::write(&inputs.exclude, shop::EXCLUDE).unwrap();
    let bad = inputs.dir.path().join("flows.csv");
    std::fs::write(&bad, "\ntime,src,dst\n").unwrap();
    let o = ringfence(&[
        "discover",
        "--inventory",
        p(&inputs.inventory),
        "--flows",
        p(&bad),
        "--out",
        p(&out),
    ]);
    assert_eq!(code(&o), 2);
    stderr_has(
        &o,
        "flows.csv:2: cannot tell the flow format: `time,src,dst`",
    );
    assert!(!out.join("prod.kdl").exists(), "nothing written");
}
