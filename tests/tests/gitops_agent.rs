//! GitOps end to end: a cluster of network namespaces (the e2e harness), an
//! intent repository, `ringfence watch` publishing, and one
//! `ringfence-agent run --source OUT/current` per node in its namespace.
//! A pushed change is published, applied by the agents, and the probes
//! change exactly as `ringfence plan` said they would. With a live
//! inventory (`watch --inventory-events --serve`), pod churn reaches the
//! agents as membership, through restarts of watch and of an agent.
//! Requires root.

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

/// An agent following a source for one node, killed on drop; its log
/// (kept across restarts) is `state-NODE.log`.
struct Agent {
    child: Child,
    state: std::path::PathBuf,
}

impl Agent {
    fn start(lab: &Lab, node: &str, netns: &str, source: &Path) -> Agent {
        let state = lab.tmp.join(&format!("state-{node}"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(lab.tmp.join(&format!("state-{node}.log")))
            .unwrap();
        let child = Command::new(binary("ringfence-agent"))
            .args(["run", "--node", node, "--netns", netns, "--interval", "1"])
            .arg("--source")
            .arg(source)
            .arg("--trust")
            .arg(lab.tmp.join("ci.pub"))
            .arg("--state")
            .arg(&state)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("ringfence-agent starts");
        Agent { child, state }
    }

    /// `ringfence-agent status --format json`.
    fn status(&self) -> Option<serde_json::Value> {
        let out = Command::new(binary("ringfence-agent"))
            .args(["status", "--format", "json", "--state"])
            .arg(&self.state)
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    /// The generation in force.
    fn generation(&self) -> Option<u64> {
        self.status()?["generation"].as_u64()
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

/// `ringfence watch` of the lab following `events` (its cluster left to the
/// intent) and serving `out` on `addr`; killed (SIGKILL) on drop. Its log,
/// kept across restarts, is `watch.log`.
struct Watch(Child);

impl Watch {
    fn start(lab: &Lab, events: &Path, out: &Path, addr: &str) -> Watch {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(lab.tmp.join("watch.log"))
            .unwrap();
        let child = Command::new(binary("ringfence"))
            .env("NO_COLOR", "1")
            .args(["watch", "--repo", lab.bare.to_str().unwrap()])
            .args(["--branch", "main", "--path", "policies", "--interval", "1"])
            .arg("--inventory-events")
            .arg(events)
            .arg("--key")
            .arg(lab.tmp.join("ci.key"))
            .arg("--out")
            .arg(out)
            .args(["--serve", addr])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("ringfence watch starts");
        Watch(child)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The lab pod of app `app` as pod `name` at `ip`, as a watch event line.
fn pod_event(lab: &Lab, kind: &str, app: &str, name: &str, ip: &str) -> String {
    let list: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lab.inventory()).unwrap()).unwrap();
    let mut pod = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "Pod" && o["metadata"]["labels"]["app"] == app)
        .unwrap()
        .clone();
    pod["metadata"]["name"] = name.into();
    pod["status"]["podIP"] = ip.into();
    pod["status"]["podIPs"] = serde_json::json!([{ "ip": ip }]);
    format!("{}\n", serde_json::json!({"type": kind, "object": pod}))
}

fn append(events: &Path, lines: &[String]) {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(events)
        .unwrap();
    f.write_all(lines.concat().as_bytes()).unwrap();
}

/// The newest membership sequence watch published for `node` (0: none).
fn head(out: &Path, node: &str) -> u64 {
    std::fs::read_to_string(out.join("membership").join(node).join("head"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Every agent has applied what watch published last, still on bundle
/// generation 1; then the probes that get through are `allowed`.
fn converged(
    lab: &Lab,
    t: &Topology,
    out: &Path,
    agents: &[(&str, &Agent)],
    allowed: &[(usize, usize, u16)],
) {
    let start = Instant::now();
    loop {
        let at: Vec<(u64, Option<u64>, Option<u64>)> = agents
            .iter()
            .map(|(node, a)| {
                let s = a.status().unwrap_or_default();
                (
                    head(out, node),
                    s["generation"].as_u64(),
                    s["membership"]["sequence"].as_u64(),
                )
            })
            .collect();
        if at
            .iter()
            .all(|&(h, g, s)| h > 0 && g == Some(1) && s == Some(h))
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "(head, generation, sequence) per node: {at:?}\nwatch: {}",
            std::fs::read_to_string(lab.tmp.join("watch.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let got: Vec<(usize, usize, u16)> = pairs()
        .into_iter()
        .zip(probe(t))
        .filter(|(_, ok)| *ok)
        .map(|(p, _)| p)
        .collect();
    assert_eq!(got, allowed);
}

#[test]
fn pod_churn_reaches_the_kernel_through_restarts_of_watch_and_of_an_agent() {
    let lab = Lab::new("e2e-live");
    lab.push("the lab intent");
    let out = lab.tmp.join("out");
    let events = lab.tmp.join("events.jsonl");
    let list: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lab.inventory()).unwrap()).unwrap();
    let initial: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| format!("{}\n", serde_json::json!({"type": "ADDED", "object": o})))
        .collect();
    std::fs::write(&events, initial.concat()).unwrap();
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let mut watch = Watch::start(&lab, &events, &out, &addr);

    let t = Topology::build(&spec());
    for (_, _, _, port) in PODS {
        for (_, pod, _, _) in PODS {
            listen(t.pod(pod), &[port]);
        }
    }
    let source = std::path::PathBuf::from(format!("http://{addr}"));
    let mut n1 = Agent::start(&lab, "lab-n1", t.node("lab-n1"), &source);
    let n2 = Agent::start(&lab, "lab-n2", t.node("lab-n2"), &source);
    let base = [(0, 1, 8080), (1, 2, 5432)];
    let reused = [(0, 1, 8080), (0, 2, 8080)];
    converged(&lab, &t, &out, &[("lab-n1", &n1), ("lab-n2", &n2)], &base);

    // db goes away and its address is given to a second api pod: web may
    // now call it on 8080, api may no longer reach it on 5432.
    let db = PODS[2].2;
    append(
        &events,
        &[
            pod_event(&lab, "DELETED", "db", "db-5d8f7b9c6d-h5j6k", db),
            pod_event(&lab, "ADDED", "api", "api-5d8f7b9c6d-x1", db),
        ],
    );
    converged(&lab, &t, &out, &[("lab-n1", &n1), ("lab-n2", &n2)], &reused);

    // watch dies mid-stream; while it is down the address goes back to a
    // db pod. Restarted, it reads the stream again and goes on after its
    // last published sequence: nothing replayed, nothing lost.
    let before = (head(&out, "lab-n1"), head(&out, "lab-n2"));
    drop(watch);
    append(
        &events,
        &[
            pod_event(&lab, "DELETED", "api", "api-5d8f7b9c6d-x1", db),
            pod_event(&lab, "ADDED", "db", "db-5d8f7b9c6d-x2", db),
        ],
    );
    watch = Watch::start(&lab, &events, &out, &addr);
    converged(&lab, &t, &out, &[("lab-n1", &n1), ("lab-n2", &n2)], &base);
    assert!(head(&out, "lab-n1") > before.0 && head(&out, "lab-n2") > before.1);

    // lab-n1's agent dies; the address changes owner while it is down. Its
    // kernel keeps the last membership (web may not call the address on
    // 8080) until it restarts and catches up.
    drop(n1);
    let h1 = head(&out, "lab-n1");
    append(
        &events,
        &[
            pod_event(&lab, "DELETED", "db", "db-5d8f7b9c6d-x2", db),
            pod_event(&lab, "ADDED", "api", "api-5d8f7b9c6d-x3", db),
        ],
    );
    let start = Instant::now();
    while head(&out, "lab-n1") == h1 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "nothing published for lab-n1"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let web_to_db = Probe {
        from_ns: t.pod(PODS[0].1).to_string(),
        to: db.parse().unwrap(),
        proto: Proto::Tcp,
        port: 8080,
    };
    assert_eq!(
        probe_all(&[web_to_db], Duration::from_millis(700)),
        [false],
        "lab-n1 changed with its agent down"
    );
    n1 = Agent::start(&lab, "lab-n1", t.node("lab-n1"), &source);
    converged(&lab, &t, &out, &[("lab-n1", &n1), ("lab-n2", &n2)], &reused);

    // No document was refused (a replay or a doubled change would be), and
    // pod churn never needed a new bundle.
    for node in ["lab-n1", "lab-n2"] {
        let log = std::fs::read_to_string(lab.tmp.join(&format!("state-{node}.log"))).unwrap();
        assert!(!log.contains("membership refused"), "{node}: {log}");
        assert!(!log.contains("not applied"), "{node}: {log}");
    }
    drop(watch);
}
