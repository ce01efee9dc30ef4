//! The test kit's own checks: `ringfence-synth` writes files that read back
//! as what the generators made, and refuses bad arguments; the flow writer's
//! records read back through the real flow reader as the flows generated.

use std::path::Path;
use std::process::{Command, Output};

use ringfence_flows::{FlowReader, ReadOptions};
use ringfence_testkit::flowgen;
use ringfence_testkit::synth::{Params, generate};

fn synth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringfence-synth"))
        .args(args)
        .output()
        .expect("ringfence-synth runs")
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn the_cluster_command_writes_what_the_generator_makes() {
    let dir = tempfile::tempdir().unwrap();
    let o = synth(&["cluster", p(dir.path()), "--small"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = generate(&Params::small());
    let kdl = std::fs::read_to_string(dir.path().join("intent/intent.kdl")).unwrap();
    assert_eq!(kdl, s.kdl());
    for (cluster, json) in s.kubectl_json() {
        let path = dir.path().join(format!("inventory/{cluster}.json"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), json);
        let inv = ringfence_inventory::load(&[path], &[]).unwrap();
        assert_eq!(
            inv.clusters[0].pods.len(),
            s.inventory.clusters[0].pods.len()
        );
    }
    let checked = ringfence_intent::load(s.intent.files.clone());
    assert!(
        !checked.diagnostics.has_errors(),
        "{:?}",
        checked.diagnostics
    );
}

#[test]
fn the_callgraph_command_writes_discoverys_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let o = synth(&[
        "callgraph",
        p(dir.path()),
        "--records",
        "500",
        "--workloads",
        "20",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("20 workloads"));
    let inv = ringfence_inventory::load(&[dir.path().join("bench.json")], &[]).unwrap();
    assert!(inv.clusters[0].pods.len() >= 20);
    let mut records = 0;
    for f in ["flows.jsonl", "hubble.json", "conntrack.txt"] {
        let reader = FlowReader::open(dir.path().join(f), &ReadOptions::default()).unwrap();
        for flow in reader {
            flow.unwrap_or_else(|e| panic!("{f}: {e}"));
            records += 1;
        }
    }
    assert_eq!(records, 500);
}

#[test]
fn bad_arguments_exit_2_with_the_usage() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec![],
        vec!["cluster"],
        vec!["nonsense", p(dir.path())],
        vec!["cluster", p(dir.path()), "--big"],
        vec!["flows", p(dir.path()), "many"],
        vec!["callgraph", p(dir.path()), "--records"],
    ] {
        let o = synth(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("usage: ringfence-synth"),
            "{args:?}"
        );
    }
}

#[test]
fn flow_records_read_back_as_generated() {
    let s = generate(&Params::small());
    let (convs, flows) = flowgen::flows(&s, 300, 20);
    assert_eq!(convs.len(), 20);
    let flows: Vec<_> = flows.collect();
    let mut text = Vec::new();
    flowgen::write_jsonl(flows.clone(), &mut text).unwrap();
    let back: Vec<_> = FlowReader::new("flows.jsonl", text.as_slice(), &ReadOptions::default())
        .unwrap()
        .map(|f| f.unwrap())
        .collect();
    assert_eq!(back, flows);
    // The same arguments, the same flows.
    assert_eq!(flowgen::flows(&s, 300, 20).1.collect::<Vec<_>>(), flows);
}

#[test]
fn the_churn_command_writes_a_trace_whose_addresses_name_one_event() {
    let dir = tempfile::tempdir().unwrap();
    let o = synth(&["churn", p(dir.path()), "--small"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
    let (list, trace, tsv) = (read("list.jsonl"), read("churn.jsonl"), read("churn.tsv"));
    // The list and then the trace read as a watch stream; every event counts.
    let inv =
        ringfence_inventory::events::read_stream(&list, "cluster-0", "list", Default::default())
            .unwrap()
            .cluster();
    assert!(
        inv.nodes
            .iter()
            .all(|n| n.os == ringfence_intent::model::Os::Linux)
    );
    let rolled = |p: &&ringfence_inventory::model::Pod| {
        p.namespace == "ns-001" && p.labels.get("app").map(String::as_str) == Some("app-000")
    };
    assert_eq!(inv.pods.iter().filter(rolled).count(), 20);
    let after = ringfence_inventory::events::read_stream(
        &format!("{list}{trace}"),
        "cluster-0",
        "stream",
        Default::default(),
    )
    .unwrap();
    let rows: Vec<Vec<&str>> = tsv
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(rows.len(), 200);
    assert_eq!(trace.lines().count(), 200);
    let count = |k: &str| rows.iter().filter(|r| r[2] == k).count();
    assert_eq!((count("rollout-create"), count("rollout-delete")), (20, 20));
    assert_eq!(count("reschedule-create"), count("reschedule-delete"));
    assert!(count("create") > 20 && count("delete") > 20, "{tsv}");
    // Due times at the rate; each address in one event only, and only pods
    // of the first list are deleted.
    assert!(
        rows.iter()
            .enumerate()
            .all(|(i, r)| r[1] == (i * 100).to_string())
    );
    let mut seen = std::collections::BTreeSet::new();
    for r in &rows {
        for a in r[5].split(',') {
            assert!(seen.insert(a.to_string()), "{a} in two events");
        }
        if r[2].ends_with("delete") {
            assert!(list.contains(&format!("\"name\":\"{}\"", r[3].split('/').nth(1).unwrap())));
        }
    }
    // Creates add pods, deletes remove them.
    assert_eq!(
        after.pod_count(),
        inv.pods.len() + count("create") - count("delete")
    );
    // The same trace again.
    let again = tempfile::tempdir().unwrap();
    assert!(
        synth(&["churn", p(again.path()), "--small"])
            .status
            .success()
    );
    assert_eq!(
        std::fs::read_to_string(again.path().join("churn.jsonl")).unwrap(),
        trace
    );
}
