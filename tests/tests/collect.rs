//! The report path of the Kubernetes deployment, end to end: a real agent
//! applies the example's bundle in a network namespace and POSTs its report
//! (`--report-to`) to a real `ringfence collect`, and `ringfence report`
//! reads the collected directory.

use std::process::Command;

use ringfence_e2e::bin::{binary, ip, repo_root, run};
use ringfence_testkit::listen::spawn_listening;

/// A network namespace, deleted on drop.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn an_agent_report_reaches_the_collector_and_report() {
    let tmp = tempfile::tempdir().unwrap();
    let rf = binary("ringfence");
    let example = repo_root().join("policies-example");
    let key = tmp.path().join("ci");
    run(Command::new(&rf).arg("keygen").arg("--out").arg(&key));
    let bundles = tmp.path().join("bundles");
    run(Command::new(&rf)
        .arg("compile")
        .arg(&example)
        .arg("--inventory")
        .arg(example.join("inventory/prod-eu1.json"))
        .arg("--key")
        .arg(key.with_extension("key"))
        .arg("--out")
        .arg(&bundles));

    // The collector, on a port the kernel picks.
    let reports = tmp.path().join("reports");
    let (mut collector, addr) = spawn_listening(
        Command::new(&rf)
            .arg("collect")
            .args(["--listen", "127.0.0.1:0", "--dir"])
            .arg(&reports),
    );

    let ns = Netns(format!("rf{}collect", std::process::id()));
    ip(&["netns", "add", &ns.0]);
    let node = "prod-eu1-linux-a";
    let agent = Command::new(binary("ringfence-agent"))
        .args(["run", "--once", "--node", node, "--netns", &ns.0])
        .arg("--source")
        .arg(&bundles)
        .arg("--trust")
        .arg(key.with_extension("pub"))
        .arg("--state")
        .arg(tmp.path().join("state"))
        .arg("--report-to")
        .arg(format!("http://{addr}/reports"))
        .output()
        .unwrap();
    let _ = collector.kill();
    let _ = collector.wait();
    assert!(
        agent.status.success(),
        "{}",
        String::from_utf8_lossy(&agent.stderr)
    );

    // One file, the agent's report, as `ringfence report` reads it.
    assert_eq!(std::fs::read_dir(&reports).unwrap().count(), 1);
    let out = run(Command::new(&rf)
        .arg("report")
        .arg(&reports)
        .args(["-o", "json"]));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["nodes"][0]["node"], node);
    assert_eq!(s["nodes"][0]["status"], "in-sync");
    assert_eq!(s["nodes"][0]["generation"], 1);
}
