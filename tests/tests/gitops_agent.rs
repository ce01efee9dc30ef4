//! GitOps end to end: a cluster of network namespaces (the e2e harness), an
//! intent repository, `ringfence watch` publishing, and one
//! `ringfence-agent run --source OUT/current` per node in its namespace.
//! A pushed change is published, applied by the agents, and the probes
//! change exactly as `ringfence plan` said they would. Requires root.

#[path = "gitops_common/mod.rs"]
mod common;

use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Lab, edit, ringfence, text};
use ringfence_e2e::bin::binary;
use ringfence_e2e::{NodeSpec, PodSpec, Probe, Spec, Topology, listen, probe_all};
use ringfence_schema::net::Proto;

/// The pods of the lab fixture: (group as `matrix` names it, pod, address, port).
const PODS: [(&str, &str, &str, u16); 3] = [
    (
        "shop/web[Deployment]",
        "shop/web-5d8f7b9c6d-a1b2c",
        "10.244.1.2",
        80,
    ),
    (
        "shop/api[Deployment]",
        "shop/api-5d8f7b9c6d-d3f4g",
        "10.244.2.2",
        8080,
    ),
    (
        "shop/db[Deployment]",
        "shop/db-5d8f7b9c6d-h5j6k",
        "10.244.2.3",
        5432,
    ),
];

fn spec() -> Spec {
    let pod = |i: usize| PodSpec {
        name: PODS[i].1.to_string(),
        ips: vec![PODS[i].2.parse().unwrap()],
    };
    Spec {
        nodes: vec![
            NodeSpec {
                name: "lab-n1".into(),
                addresses: vec!["10.30.0.11".parse().unwrap()],
                pod_cidrs: vec!["10.244.1.0/24".into()],
                pods: vec![pod(0)],
            },
            NodeSpec {
                name: "lab-n2".into(),
                addresses: vec!["10.30.0.12".parse().unwrap()],
                pod_cidrs: vec!["10.244.2.0/24".into()],
                pods: vec![pod(1), pod(2)],
            },
        ],
        outside: Vec::new(),
    }
}

/// An agent following `OUT/current` for one node, killed on drop.
struct Agent {
    child: Child,
    state: std::path::PathBuf,
}

impl Agent {
    fn start(lab: &Lab, node: &str, netns: &str, source: &Path) -> Agent {
        let state = lab.tmp.join(&format!("state-{node}"));
        let child = Command::new(binary("ringfence-agent"))
            .args(["run", "--node", node, "--netns", netns, "--interval", "1"])
            .arg("--source")
            .arg(source)
            .arg("--trust")
            .arg(lab.tmp.join("ci.pub"))
            .arg("--state")
            .arg(&state)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ringfence-agent starts");
        Agent { child, state }
    }

    /// The generation in force.
    fn generation(&self) -> Option<u64> {
        let out = Command::new(binary("ringfence-agent"))
            .args(["status", "--format", "json", "--state"])
            .arg(&self.state)
            .output()
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["generation"].as_u64()
    }

    /// Wait until `generation` is in force.
    fn wait_for(&self, generation: u64) {
        let start = Instant::now();
        while self.generation() != Some(generation) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{}: generation {generation} not applied (in force: {:?})",
                self.state.display(),
                self.generation()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every pod to every other pod, on each pod's port: (from group, to group, port).
fn pairs() -> Vec<(usize, usize, u16)> {
    let mut v = Vec::new();
    for from in 0..PODS.len() {
        for to in 0..PODS.len() {
            if from != to {
                for (_, _, _, port) in PODS {
                    v.push((from, to, port));
                }
            }
        }
    }
    v
}

/// The pairs a probe result reached.
fn allowed(probed: &[bool]) -> Vec<(usize, usize, u16)> {
    pairs()
        .into_iter()
        .zip(probed)
        .filter(|(_, ok)| **ok)
        .map(|(p, _)| p)
        .collect()
}

fn probe(t: &Topology) -> Vec<bool> {
    let probes: Vec<Probe> = pairs()
        .into_iter()
        .map(|(from, to, port)| Probe {
            from_ns: t.pod(PODS[from].1).to_string(),
            to: PODS[to].2.parse::<IpAddr>().unwrap(),
            proto: Proto::Tcp,
            port,
        })
        .collect();
    probe_all(&probes, Duration::from_millis(700))
}

/// Whether a plan's list holds (from, to, tcp, port).
fn listed(list: &serde_json::Value, from: &str, to: &str, port: u16) -> bool {
    list.as_array().unwrap().iter().any(|c| {
        c["from"] == from
            && c["to"] == to
            && c["proto"] == "tcp"
            && c["via"].is_null()
            && c["ports"].as_array().unwrap().iter().any(|r| {
                let r = r.as_str().unwrap();
                let (a, b) = r.split_once('-').unwrap_or((r, r));
                (a.parse::<u16>().unwrap()..=b.parse::<u16>().unwrap()).contains(&port)
            })
    })
}

#[test]
fn a_push_changes_the_probes_exactly_as_planned() {
    let lab = Lab::new("e2e");
    let out = lab.tmp.join("out");
    lab.push("the lab intent");
    let r = lab.watch_once(&out, None);
    assert!(r.status.success(), "{}", text(&r));

    let t = Topology::build(&spec());
    for (_, _, _, port) in PODS {
        for (_, pod, _, _) in PODS {
            listen(t.pod(pod), &[port]);
        }
    }
    let source = out.join("current");
    let agents = [
        Agent::start(&lab, "lab-n1", t.node("lab-n1"), &source),
        Agent::start(&lab, "lab-n2", t.node("lab-n2"), &source),
    ];
    for a in &agents {
        a.wait_for(1);
    }
    let before = probe(&t);
    // The first intent: web → api:8080 and api → db:5432, nothing else.
    assert_eq!(allowed(&before), [(0, 1, 8080), (1, 2, 5432)]);

    // The change: the database is for the front end now, not the API.
    edit(
        &lab.intent(),
        "allow \"api-to-db\" from=\"api\"",
        "allow \"web-to-db\" from=\"web\"",
    );
    lab.push("the web front end reads the database directly");
    let plan = ringfence(&[
        "plan",
        lab.work.join("policies").to_str().unwrap(),
        "--from",
        "HEAD~1",
        "--to",
        "HEAD",
        "--inventory",
        lab.inventory().to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(plan.status.success(), "{}", text(&plan));
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let conn = &plan["connectivity"];

    let r = lab.watch_once(&out, None);
    assert!(r.status.success(), "{}", text(&r));
    for a in &agents {
        a.wait_for(2);
    }
    let after = probe(&t);

    // What the plan predicts, probe by probe.
    let predicted: Vec<bool> = pairs()
        .into_iter()
        .zip(&before)
        .map(|((from, to, port), was)| {
            let (f, t) = (PODS[from].0, PODS[to].0);
            if listed(&conn["allowed"], f, t, port) {
                true
            } else if listed(&conn["denied"], f, t, port) {
                false
            } else {
                *was
            }
        })
        .collect();
    assert_ne!(predicted, before, "the plan predicts a change: {plan}");
    assert_eq!(after, predicted, "plan: {plan}");
    assert_eq!(allowed(&after), [(0, 1, 8080), (0, 2, 5432)]);
    // The plan names the policies responsible.
    assert_eq!(
        conn["allowed"][0]["now"]["ingress"]["policy"]["id"],
        "shop/web-to-db"
    );
    assert_eq!(
        conn["denied"][0]["now"]["ingress"]["policy"]["id"],
        "shop/catch-all-ingress"
    );
}
