//! GitOps end to end: a cluster of network namespaces (the e2e harness), an
//! intent repository, `ringfence watch` publishing, and one
//! `ringfence-agent run --source OUT/current` per node in its namespace.
//! A pushed change is published, applied by the agents, and the probes
//! change exactly as `ringfence plan` said they would. With a live
//! inventory (`watch --inventory-events --serve`), pod churn reaches the
//! agents as membership, through restarts of watch and of an agent; and
//! through create, reschedule, scale-up, delete and IP reuse the probes
//! agree with `ringfence matrix` of each moment, timed from the event.
//! Requires root.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::gitops_common::{Lab, edit, ringfence, text};
use ringfence_e2e::bin::binary;
use ringfence_e2e::{
    NodeSpec, PodSpec, Probe, Spec, Topology, listen, probe_all, probe_all_retrying, probe_each,
};
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
    state: PathBuf,
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

/// Whether a plan's or matrix's list holds (from, to, proto, port).
fn listed(list: &serde_json::Value, from: &str, to: &str, proto: &str, port: u16) -> bool {
    list.as_array().unwrap().iter().any(|c| {
        c["from"] == from
            && c["to"] == to
            && c["proto"] == proto
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
            if listed(&conn["allowed"], f, t, "tcp", port) {
                true
            } else if listed(&conn["denied"], f, t, "tcp", port) {
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

/// A pod of the lab, of the Deployment of app `app`.
#[derive(Clone, Debug)]
struct Pod {
    app: &'static str,
    name: &'static str,
    node: &'static str,
    ip: &'static str,
}

fn pod(app: &'static str, name: &'static str, node: &'static str, ip: &'static str) -> Pod {
    Pod {
        app,
        name,
        node,
        ip,
    }
}

impl Pod {
    /// `namespace/name`, as the topology names it.
    fn key(&self) -> String {
        format!("shop/{}", self.name)
    }

    /// Its group, as `matrix` names it.
    fn group(&self) -> String {
        format!("shop/{}[Deployment]", self.app)
    }

    /// The Pod object: the fixture's pod of its app, renamed and placed.
    fn object(&self, lab: &Lab) -> serde_json::Value {
        let mut pod = lab.pod_of(self.app);
        pod["metadata"]["name"] = self.name.into();
        pod["spec"]["nodeName"] = self.node.into();
        pod["status"]["podIP"] = self.ip.into();
        pod["status"]["podIPs"] = serde_json::json!([{ "ip": self.ip }]);
        pod
    }
}

/// A live lab's publication: the events file (the fixture's inventory as
/// `ADDED` events, to be appended to), watch's output, a free address for
/// `--serve`, and the agents' source there.
struct Live {
    events: PathBuf,
    out: PathBuf,
    addr: String,
    source: PathBuf,
}

impl Live {
    fn new(lab: &Lab) -> Live {
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
        Live {
            events,
            out: lab.tmp.join("out"),
            source: PathBuf::from(format!("http://{addr}")),
            addr,
        }
    }
}

/// A lab pod as a watch event line.
fn pod_event(lab: &Lab, kind: &str, pod: &Pod) -> String {
    format!(
        "{}\n",
        serde_json::json!({"type": kind, "object": pod.object(lab)})
    )
}

/// An address changes owner: `from` is deleted, then `to` added, in one append.
fn hand_over(lab: &Lab, events: &Path, from: Pod, to: Pod) {
    append(
        events,
        &[
            pod_event(lab, "DELETED", &from),
            pod_event(lab, "ADDED", &to),
        ],
    );
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
    let Live {
        events,
        out,
        addr,
        source,
    } = Live::new(&lab);
    let mut watch = Watch::start(&lab, &events, &out, &addr);

    let t = Topology::build(&spec());
    for (_, _, _, port) in PODS {
        for (_, pod, _, _) in PODS {
            listen(t.pod(pod), &[port]);
        }
    }
    let mut n1 = Agent::start(&lab, "lab-n1", t.node("lab-n1"), &source);
    let n2 = Agent::start(&lab, "lab-n2", t.node("lab-n2"), &source);
    let base = [(0, 1, 8080), (1, 2, 5432)];
    let reused = [(0, 1, 8080), (0, 2, 8080)];
    converged(&lab, &t, &out, &[("lab-n1", &n1), ("lab-n2", &n2)], &base);

    // db goes away and its address is given to a second api pod: web may
    // now call it on 8080, api may no longer reach it on 5432.
    let db = PODS[2].2;
    hand_over(
        &lab,
        &events,
        pod("db", "db-5d8f7b9c6d-h5j6k", "lab-n2", db),
        pod("api", "api-5d8f7b9c6d-x1", "lab-n2", db),
    );
    converged(&lab, &t, &out, &[("lab-n1", &n1), ("lab-n2", &n2)], &reused);

    // watch dies mid-stream; while it is down the address goes back to a
    // db pod. Restarted, it reads the stream again and goes on after its
    // last published sequence: nothing replayed, nothing lost.
    let before = (head(&out, "lab-n1"), head(&out, "lab-n2"));
    drop(watch);
    hand_over(
        &lab,
        &events,
        pod("api", "api-5d8f7b9c6d-x1", "lab-n2", db),
        pod("db", "db-5d8f7b9c6d-x2", "lab-n2", db),
    );
    watch = Watch::start(&lab, &events, &out, &addr);
    converged(&lab, &t, &out, &[("lab-n1", &n1), ("lab-n2", &n2)], &base);
    assert!(head(&out, "lab-n1") > before.0 && head(&out, "lab-n2") > before.1);

    // lab-n1's agent dies; the address changes owner while it is down. Its
    // kernel keeps the last membership (web may not call the address on
    // 8080) until it restarts and catches up.
    drop(n1);
    let h1 = head(&out, "lab-n1");
    hand_over(
        &lab,
        &events,
        pod("db", "db-5d8f7b9c6d-x2", "lab-n2", db),
        pod("api", "api-5d8f7b9c6d-x3", "lab-n2", db),
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

/// The ports every pod of the churn test serves, over TCP and UDP: web's,
/// api's and db's.
const PORTS: [u16; 3] = [80, 8080, 5432];
/// How long one probe waits.
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);
/// The latency goal for a pod event that is membership only (event
/// appended → applied in every node's kernel; probes get one timeout more).
const DELTA_BOUND: Duration = Duration::from_secs(1);
/// The bound for an event that re-renders a node: watch compiles the
/// commit again, renders and signs that node's bundle (well under a
/// second for the lab), then the agent fetches it at its next pass
/// (`--interval 1`: up to 1 s), loads the table and takes the new
/// generation's snapshot; 4 s leaves room for a loaded machine.
const RERENDER_BOUND: Duration = Duration::from_secs(4);

/// What one event did: how long until the kernels held its result and the
/// probes agreed with the matrix, and which nodes got a new bundle.
#[derive(Debug)]
struct Timing {
    applied: Duration,
    agreed: Duration,
    rerendered: Vec<&'static str>,
}

/// `ringfence matrix` of the lab's intent on the inventory of `pods`
/// (written as a kubectl List), its connections.
fn matrix(lab: &Lab, pods: &[Pod], label: &str) -> serde_json::Value {
    let mut list: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lab.inventory()).unwrap()).unwrap();
    let items = list["items"].as_array_mut().unwrap();
    items.retain(|o| o["kind"] != "Pod");
    items.extend(pods.iter().map(|p| p.object(lab)));
    let file = lab.tmp.join(&format!("inventory-{label}.json"));
    std::fs::write(&file, list.to_string()).unwrap();
    let out = ringfence(&[
        "matrix",
        lab.work.join("policies").to_str().unwrap(),
        "--inventory",
        file.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    m["connections"].clone()
}

/// Every pod to every other pod on every port, over TCP and UDP, with
/// whether `matrix` allows it.
fn probes(t: &Topology, pods: &[Pod], matrix: &serde_json::Value) -> Vec<(Probe, bool)> {
    let mut v = Vec::new();
    for from in pods {
        for to in pods.iter().filter(|p| p.name != from.name) {
            for port in PORTS {
                for (proto, name) in [(Proto::Tcp, "tcp"), (Proto::Udp, "udp")] {
                    let probe = Probe {
                        from_ns: t.pod(&from.key()).to_string(),
                        to: to.ip.parse().unwrap(),
                        proto,
                        port,
                    };
                    v.push((
                        probe,
                        listed(matrix, &from.group(), &to.group(), name, port),
                    ));
                }
            }
        }
    }
    v
}

/// The probes whose result is not the expected one, for messages.
fn disagreeing(probes: &[(Probe, bool)], got: &[bool]) -> Vec<String> {
    probes
        .iter()
        .zip(got)
        .filter(|((_, want), got)| want != *got)
        .map(|((p, want), _)| {
            format!(
                "{} -> {} {} {}: matrix {}",
                p.from_ns,
                p.to,
                p.proto,
                p.port,
                if *want { "allows" } else { "denies" }
            )
        })
        .collect()
}

/// The elements of `table inet ringfence` in `netns` that name one of
/// `ips`, as nft parsed them: (set or map, element as JSON); `None` when
/// nft could not list the table.
fn elements_naming(netns: &str, ips: &[&str]) -> Option<BTreeSet<(String, String)>> {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            netns,
            "nft",
            "-j",
            "list",
            "table",
            "inet",
            "ringfence",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let mut found = BTreeSet::new();
    for o in doc["nftables"].as_array().into_iter().flatten() {
        let Some(c) = o.get("set").or_else(|| o.get("map")) else {
            continue;
        };
        for e in c["elem"].as_array().into_iter().flatten() {
            let e = e.to_string();
            if ips.iter().any(|ip| e.contains(&format!("\"{ip}\""))) {
                found.insert((c["name"].as_str().unwrap_or_default().to_string(), e));
            }
        }
    }
    Some(found)
}

/// What the kernel of `netns` holds for address `ip`: the elements naming
/// it, with the address blanked, so pods with the same rights compare equal.
fn rights_of(netns: &str, ip: &str) -> BTreeSet<(String, String)> {
    elements_naming(netns, &[ip])
        .unwrap_or_else(|| panic!("{netns}: nft lists no ringfence table"))
        .into_iter()
        .map(|(c, e)| (c, e.replace(&format!("\"{ip}\""), "\"*\"")))
        .collect()
}

/// One reading of every node's elements naming some addresses.
type Sample = (Instant, Vec<BTreeSet<(String, String)>>);

/// The elements naming `ips` on every node, read every few milliseconds
/// by a thread until stopped: (when, per node). A read nft could not make
/// (the machine is loaded) is skipped, not taken for an empty table.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Sample>>,
}

impl Sampler {
    /// Start, and return once a first sample is taken.
    fn start(nodes: &[String], ips: &[&'static str]) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = {
            let (stop, nodes, ips) = (stop.clone(), nodes.to_vec(), ips.to_vec());
            std::thread::spawn(move || {
                let mut samples = Vec::new();
                loop {
                    let last = stop.load(Ordering::SeqCst);
                    let s: Option<Vec<_>> =
                        nodes.iter().map(|n| elements_naming(n, &ips)).collect();
                    if let Some(s) = s {
                        samples.push((Instant::now(), s));
                        tx.send(()).ok();
                        if last {
                            return samples;
                        }
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        rx.recv().unwrap();
        Sampler { stop, thread }
    }

    /// Stop (after one more sample); when the kernels reached the state
    /// they hold now and kept it (they must have changed since the start),
    /// and how long before that the previous sample was read (the state
    /// was reached in between).
    fn settled(self) -> (Instant, Duration) {
        self.stop.store(true, Ordering::SeqCst);
        let samples = self.thread.join().unwrap();
        let end = &samples.last().unwrap().1;
        let first = samples
            .iter()
            .rposition(|(_, s)| s != end)
            .expect("the event changed the kernels")
            + 1;
        (samples[first].0, samples[first].0 - samples[first - 1].0)
    }
}

/// The churn test's cluster: the lab, its nodes and pods in namespaces,
/// watch following the events file, an agent per node.
struct Churn<'a> {
    lab: &'a Lab,
    t: Topology,
    live: Live,
    agents: Vec<(&'static str, Agent)>,
    pods: Vec<Pod>,
}

impl Churn<'_> {
    /// Start `pod`'s namespace and its listeners.
    fn start_pod(&mut self, pod: &Pod) {
        self.t.add_pod(
            pod.node,
            &PodSpec {
                name: pod.key(),
                ips: vec![pod.ip.parse().unwrap()],
            },
        );
        listen(self.t.pod(&pod.key()), &PORTS);
    }

    /// A started pod whose membership has not arrived is failed closed: every
    /// probe from and to it that the matrix will allow once it is known is
    /// dropped now.
    fn unknown_is_denied(&self, pod: &Pod, known: &serde_json::Value) {
        let mut all = self.pods.clone();
        all.push(pod.clone());
        let soon: Vec<(Probe, bool)> = probes(&self.t, &all, known)
            .into_iter()
            .filter(|(p, allowed)| {
                *allowed && (p.from_ns == self.t.pod(&pod.key()) || p.to.to_string() == pod.ip)
            })
            .collect();
        assert!(
            !soon.is_empty(),
            "{}: the matrix allows it something",
            pod.name
        );
        let got = probe_each(
            &soon.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
            PROBE_TIMEOUT,
        );
        let through: Vec<String> = soon
            .iter()
            .zip(&got)
            .filter(|(_, ok)| **ok)
            .map(|((p, _), _)| format!("{} -> {} {} {}", p.from_ns, p.to, p.proto, p.port))
            .collect();
        assert_eq!(
            through,
            Vec::<String>::new(),
            "{} reached before its membership arrived",
            pod.name
        );
    }

    /// Every agent has applied the newest document watch published for it.
    fn synced(&self) -> bool {
        self.agents.iter().all(|(node, a)| {
            let h = head(&self.live.out, node);
            h > 0 && a.status().unwrap_or_default()["membership"]["sequence"].as_u64() == Some(h)
        })
    }

    /// Append `lines` to the events (the inventory is then `pods`), and time
    /// the kernels taking the change of `changed` addresses and the probes
    /// between every pair of pods agreeing with `ringfence matrix` of `pods`.
    fn event(
        &mut self,
        step: &str,
        lines: &[String],
        pods: Vec<Pod>,
        changed: &[&'static str],
    ) -> Timing {
        let connections = matrix(self.lab, &pods, step);
        self.pods = pods;
        let probes = probes(&self.t, &self.pods, &connections);
        let list: Vec<Probe> = probes.iter().map(|(p, _)| p.clone()).collect();
        let generations: Vec<Option<u64>> =
            self.agents.iter().map(|(_, a)| a.generation()).collect();
        let nodes: Vec<String> = self
            .agents
            .iter()
            .map(|(n, _)| self.t.node(n).to_string())
            .collect();

        let sampler = Sampler::start(&nodes, changed);
        append(&self.live.events, lines);
        let t0 = Instant::now();
        // Probe rounds until the probes agree; whether the step re-rendered
        // a node, and so its bound, is known afterwards.
        let mut rounds = 0;
        let agreed = loop {
            let start = t0.elapsed();
            let got = probe_each(&list, PROBE_TIMEOUT);
            rounds += 1;
            if probes.iter().zip(&got).all(|((_, want), got)| want == got) {
                break t0.elapsed();
            }
            assert!(
                start < RERENDER_BOUND,
                "{step}: the probes disagree with the matrix {:?} after the event: {:#?}\nwatch: {}",
                t0.elapsed(),
                disagreeing(&probes, &got),
                std::fs::read_to_string(self.lab.tmp.join("watch.log")).unwrap_or_default()
            );
        };
        while !self.synced() {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "{step}: the agents did not catch up"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let (settled, resolution) = sampler.settled();
        let applied = settled.saturating_duration_since(t0);
        let rerendered: Vec<&'static str> = self
            .agents
            .iter()
            .zip(generations)
            .filter(|((_, a), g)| a.generation() != *g)
            .map(|((n, _), _)| *n)
            .collect();
        let (bound, kind) = if rerendered.is_empty() {
            (DELTA_BOUND, "membership delta only".to_string())
        } else {
            (
                RERENDER_BOUND,
                format!("re-render of {}", rerendered.join(", ")),
            )
        };
        eprintln!(
            "churn {step}: applied in the kernel {:.0} ms (read every {:.0} ms), probes agree {:.0} ms (probe round {rounds}, {} probes each), {kind}",
            applied.as_secs_f64() * 1e3,
            resolution.as_secs_f64() * 1e3,
            agreed.as_secs_f64() * 1e3,
            list.len()
        );
        assert!(
            applied <= bound,
            "{step}: applied after {applied:?} (bound {bound:?}, {kind})\n{}",
            self.logs()
        );
        // The last round started within the bound ends a timeout (and the
        // spawning of its threads) later.
        assert!(
            agreed <= bound + PROBE_TIMEOUT * 2,
            "{step}: probes agreed after {agreed:?} (bound {bound:?}, {kind})"
        );
        self.same_rights_within_groups(step);
        Timing {
            applied,
            agreed,
            rerendered,
        }
    }

    /// The logs of watch and of the agents, for messages.
    fn logs(&self) -> String {
        ["watch.log", "state-lab-n1.log", "state-lab-n2.log"]
            .iter()
            .map(|f| {
                let log = std::fs::read_to_string(self.lab.tmp.join(f)).unwrap_or_default();
                format!("{f}:\n{log}")
            })
            .collect()
    }

    /// On every node, pods of one group placed alike (both on that node, or
    /// both elsewhere) are named by the same sets and map entries.
    fn same_rights_within_groups(&self, step: &str) {
        for (node, _) in &self.agents {
            let ns = self.t.node(node);
            for (i, a) in self.pods.iter().enumerate() {
                for b in &self.pods[i + 1..] {
                    if a.app == b.app && (a.node == *node) == (b.node == *node) {
                        assert_eq!(
                            rights_of(ns, a.ip),
                            rights_of(ns, b.ip),
                            "{step}: on {node}, {} and {} differ",
                            a.name,
                            b.name
                        );
                    }
                }
            }
        }
    }
}

/// Issue 13's netns cluster: a web pod is created, rescheduled to the
/// other node with a new address, scaled up, deleted, and its old address
/// given to a db pod. After each event real TCP and UDP probes between
/// every pair of pods agree with `ringfence matrix` of the inventory of
/// that moment; the reused address gets exactly db's rights, in the
/// probes and in the kernel's sets and maps. A pod that runs before its
/// membership arrives is dropped until it does.
#[test]
fn probes_follow_the_matrix_through_create_reschedule_scale_delete_and_ip_reuse() {
    let lab = Lab::new("e2e-churn");
    // UDP rights too, so both protocols have something to allow.
    let api_to_db = "allow \"api-to-db\" from=\"api\" to=\"db\" proto=\"tcp\" ports=5432";
    edit(
        &lab.intent(),
        api_to_db,
        &format!(
            "{api_to_db}\n            allow \"web-to-api-udp\" from=\"web\" to=\"api\" proto=\"udp\" ports=8080\n            allow \"api-to-db-udp\" from=\"api\" to=\"db\" proto=\"udp\" ports=5432"
        ),
    );
    lab.push("the lab intent, with UDP");
    let live = Live::new(&lab);
    let _watch = Watch::start(&lab, &live.events, &live.out, &live.addr);
    let t = Topology::build(&Spec {
        nodes: spec()
            .nodes
            .into_iter()
            .map(|n| NodeSpec {
                pods: Vec::new(),
                ..n
            })
            .collect(),
        outside: Vec::new(),
    });
    let agents = vec![
        (
            "lab-n1",
            Agent::start(&lab, "lab-n1", t.node("lab-n1"), &live.source),
        ),
        (
            "lab-n2",
            Agent::start(&lab, "lab-n2", t.node("lab-n2"), &live.source),
        ),
    ];
    let mut c = Churn {
        lab: &lab,
        t,
        live,
        agents,
        pods: Vec::new(),
    };
    let base = vec![
        pod("web", "web-5d8f7b9c6d-a1b2c", "lab-n1", "10.244.1.2"),
        pod("api", "api-5d8f7b9c6d-d3f4g", "lab-n2", "10.244.2.2"),
        pod("db", "db-5d8f7b9c6d-h5j6k", "lab-n2", "10.244.2.3"),
    ];
    for p in &base {
        c.start_pod(p);
    }
    c.pods = base.clone();
    let start = Instant::now();
    while !(c.synced() && c.agents.iter().all(|(_, a)| a.generation() == Some(1))) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the agents did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let connections = matrix(&lab, &base, "base");
    let want = probes(&c.t, &base, &connections);
    let got = probe_all_retrying(&want.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>());
    assert_eq!(disagreeing(&want, &got), Vec::<String>::new(), "base");

    let db = &base[2];
    let a1 = pod("web", "web-5d8f7b9c6d-c1", "lab-n1", "10.244.1.10");
    let a2 = pod("web", "web-5d8f7b9c6d-c1", "lab-n2", "10.244.2.10");
    let b = pod("web", "web-5d8f7b9c6d-c2", "lab-n2", "10.244.2.11");
    let reuse = pod("db", "db-5d8f7b9c6d-r1", "lab-n2", "10.244.2.10");
    let now = |pods: &[&Pod]| pods.iter().map(|p| (*p).clone()).collect::<Vec<_>>();
    let mut steps: Vec<(&str, Timing)> = Vec::new();

    // 1. create: web pod A on lab-n1, which has web's chains.
    let pods = now(&[&base[0], &base[1], &base[2], &a1]);
    c.start_pod(&a1);
    c.unknown_is_denied(&a1, &matrix(&lab, &pods, "create-known"));
    let line = pod_event(&lab, "ADDED", &a1);
    steps.push(("create", c.event("create", &[line], pods, &[a1.ip])));

    // 2. reschedule: A stops on lab-n1 and starts on lab-n2 with a new
    // address (deleted and created again under its name, as a StatefulSet
    // pod is). lab-n2 runs no web pod yet, so it lacks web's chains.
    c.t.remove_pod(&a1.key());
    c.pods.retain(|p| p.name != a1.name);
    let pods = now(&[&base[0], &base[1], &base[2], &a2]);
    c.start_pod(&a2);
    c.unknown_is_denied(&a2, &matrix(&lab, &pods, "reschedule-known"));
    let lines = [
        pod_event(&lab, "DELETED", &a1),
        pod_event(&lab, "ADDED", &a2),
    ];
    steps.push((
        "reschedule",
        c.event("reschedule", &lines, pods, &[a1.ip, a2.ip]),
    ));

    // 3. scale up: a second web pod, B, on lab-n2.
    let pods = now(&[&base[0], &base[1], &base[2], &a2, &b]);
    c.start_pod(&b);
    c.unknown_is_denied(&b, &matrix(&lab, &pods, "scale-known"));
    let line = pod_event(&lab, "ADDED", &b);
    steps.push(("scale up", c.event("scale-up", &[line], pods, &[b.ip])));

    // 4. delete: A goes; its address leaves every set and map.
    c.t.remove_pod(&a2.key());
    let pods = now(&[&base[0], &base[1], &base[2], &b]);
    let line = pod_event(&lab, "DELETED", &a2);
    steps.push(("delete", c.event("delete", &[line], pods, &[a2.ip])));
    for (node, _) in &c.agents {
        assert_eq!(
            elements_naming(c.t.node(node), &[a2.ip]),
            Some(BTreeSet::new()),
            "{node} still names the deleted pod's address"
        );
    }

    // 5. IP reuse: A's old address goes to a db pod.
    let pods = now(&[&base[0], &base[1], &base[2], &b, &reuse]);
    c.start_pod(&reuse);
    c.unknown_is_denied(&reuse, &matrix(&lab, &pods, "reuse-known"));
    let line = pod_event(&lab, "ADDED", &reuse);
    steps.push(("ip reuse", c.event("reuse", &[line], pods, &[reuse.ip])));
    // Exactly db's rights in every kernel: named where the first db pod is
    // (on lab-n2, its node, as a local db pod; on lab-n1, nowhere), and
    // unlike the web pod on its node.
    for (node, _) in &c.agents {
        let ns = c.t.node(node);
        assert_eq!(rights_of(ns, reuse.ip), rights_of(ns, db.ip), "{node}");
    }
    let ns = c.t.node(reuse.node);
    assert_ne!(rights_of(ns, reuse.ip), rights_of(ns, b.ip));
    assert!(!rights_of(ns, reuse.ip).is_empty());

    // Only the reschedule needed a new bundle, and only for lab-n2.
    let rerenders: Vec<(&str, &[&str])> = steps
        .iter()
        .filter(|(_, t)| !t.rerendered.is_empty())
        .map(|(s, t)| (*s, t.rerendered.as_slice()))
        .collect();
    assert_eq!(rerenders, [("reschedule", ["lab-n2"].as_slice())]);
    eprintln!(
        "churn: {} membership-only steps, {} re-render; applied (ms) {:?}; agreed (ms) {:?}",
        steps.len() - rerenders.len(),
        rerenders.len(),
        steps
            .iter()
            .map(|(s, t)| (*s, t.applied.as_millis()))
            .collect::<Vec<_>>(),
        steps
            .iter()
            .map(|(s, t)| (*s, t.agreed.as_millis()))
            .collect::<Vec<_>>()
    );
    // No document was refused but, on the re-rendered node, the new
    // generation's snapshot read before its bundle (taken once the bundle
    // is in force).
    let logs = c.logs();
    let refused: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("membership refused"))
        .collect();
    assert!(
        refused.len() <= 1
            && refused.iter().all(|l| l.contains(
                "wrong-generation: membership fills bundle generation 2, generation 1 is in force"
            )),
        "{logs}"
    );
}
