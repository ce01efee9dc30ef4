//! Churn traces for the live-membership benchmark (issue 13): the pods of a
//! synthetic cluster changing at a steady rate, as `kubectl get pods,… -A
//! --watch --output-watch-events -o json` prints them (one event a line).
//!
//! The trace mixes, in equal parts, scale-ups (a new pod of an existing app
//! on a random node), scale-downs (a pod deleted) and reschedules (a pod
//! deleted, then its replacement created on another node under a new name
//! and address), around a rolling update of one Deployment scaled to
//! `rollout` pods in the initial list: each pod of a new ReplicaSet (a new
//! `pod-template-hash`) is created before one of the old ones is deleted,
//! spread over the middle 80 % of the trace. Pods are created running,
//! with their addresses (no separate pending event).
//!
//! Every address belongs to one pod over the whole trace, and only pods of
//! the initial list are deleted, so an address names one event: the
//! benchmark matches membership documents to events by it. The same
//! cluster and parameters give the same trace.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

use ringfence_intent::model::Os;
use ringfence_inventory::model::Pod;
use serde_json::{Value, json};

use crate::rng::Rng;
use crate::synth::{Params, Synth, kubectl_list, pod_ips, pod_json};

/// How much churn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChurnParams {
    /// Length of the trace.
    pub seconds: u32,
    /// Pod events per second.
    pub rate: u32,
    /// Pods of the Deployment rolled (it is scaled to this many first).
    pub rollout: usize,
    /// Seed of the generator.
    pub seed: u64,
}

impl ChurnParams {
    /// Issue 13's trace: 60 s at 50 events/s, a 300-pod rolling update.
    pub fn benchmark() -> Self {
        ChurnParams {
            seconds: 60,
            rate: 50,
            rollout: 300,
            seed: 7,
        }
    }

    /// A short trace for smoke tests: 20 s at 10 events/s, 20 pods rolled.
    pub fn small() -> Self {
        ChurnParams {
            seconds: 20,
            rate: 10,
            rollout: 20,
            seed: 7,
        }
    }
}

/// The cluster of a churn benchmark: Linux nodes only (a node whose backend
/// takes no membership makes every pod change a compile), IPv4 only (nodes
/// have IPv4 pod ranges only: a new IPv6 pod address would fall in an
/// external and need a compile).
pub fn cluster_params(small: bool) -> Params {
    let base = if small {
        Params::small()
    } else {
        Params::benchmark()
    };
    Params {
        windows_every: 0,
        ipv6: false,
        // Enough pods on the 4 small nodes for a trace's deletes.
        pods: if small { 300 } else { base.pods },
        ..base
    }
}

/// What an event does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A new pod of an existing app.
    Create,
    /// A pod deleted.
    Delete,
    /// A pod deleted to be rescheduled.
    RescheduleDelete,
    /// Its replacement, on another node.
    RescheduleCreate,
    /// A pod of the rolled Deployment's new ReplicaSet.
    RolloutCreate,
    /// A pod of its old ReplicaSet deleted.
    RolloutDelete,
}

impl Kind {
    /// Its name in `churn.tsv`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Create => "create",
            Kind::Delete => "delete",
            Kind::RescheduleDelete => "reschedule-delete",
            Kind::RescheduleCreate => "reschedule-create",
            Kind::RolloutCreate => "rollout-create",
            Kind::RolloutDelete => "rollout-delete",
        }
    }
}

/// One event of the trace.
#[derive(Clone, Debug)]
pub struct ChurnEvent {
    /// When it is due, from the start of the trace.
    pub at_ms: u64,
    /// What it does.
    pub kind: Kind,
    /// The pod, as it is created or as it was last seen.
    pub pod: Pod,
}

impl ChurnEvent {
    /// The watch event line (without the newline).
    pub fn line(&self) -> String {
        let kind = match self.kind {
            Kind::Delete | Kind::RescheduleDelete | Kind::RolloutDelete => "DELETED",
            _ => "ADDED",
        };
        json!({"type": kind, "object": pod_json(&self.pod)}).to_string()
    }
}

/// A cluster (with the rolled Deployment scaled up) and its trace.
pub struct Churn {
    /// The cluster before the trace.
    pub synth: Synth,
    /// The rolled Deployment, `namespace/name`.
    pub rollout: String,
    /// The events, in order.
    pub events: Vec<ChurnEvent>,
}

/// Pods placed so far per node, to give new pods fresh addresses.
struct Placer {
    params: Params,
    linux: Vec<usize>,
    names: Vec<String>,
    next: Vec<usize>,
}

impl Placer {
    fn new(params: &Params, s: &Synth) -> Placer {
        let c = &s.inventory.clusters[0];
        let names: Vec<String> = c.nodes.iter().map(|n| n.name.clone()).collect();
        let index: BTreeMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let mut next = vec![0usize; names.len()];
        for p in c.pods.iter().filter(|p| !p.host_network) {
            let Some(&n) = p.node.as_deref().and_then(|n| index.get(n)) else {
                continue;
            };
            if let Some(IpAddr::V4(a)) = p.ips.first() {
                next[n] = next[n].max(a.octets()[3] as usize - 1);
            }
        }
        let linux = (0..names.len())
            .filter(|&n| c.nodes[n].os == Os::Linux)
            .collect();
        Placer {
            params: params.clone(),
            linux,
            names,
            next,
        }
    }

    /// A random Linux node other than `avoid` with an address left, its
    /// name and a new address there.
    fn place(&mut self, rng: &mut Rng, avoid: Option<&str>) -> (String, Vec<IpAddr>) {
        loop {
            let n = self.linux[rng.index(self.linux.len())];
            // 10.x.y.(k + 2) up to .254.
            if self.next[n] > 252 || avoid == Some(self.names[n].as_str()) {
                continue;
            }
            let k = self.next[n];
            self.next[n] += 1;
            let ips = pod_ips(&self.params, 0, n, k)
                .iter()
                .map(|a| a.parse().expect("an address"))
                .collect();
            return (self.names[n].clone(), ips);
        }
    }
}

/// `pod` under another name on another node.
fn moved(pod: &Pod, name: String, (node, ips): (String, Vec<IpAddr>)) -> Pod {
    Pod {
        name,
        node: Some(node),
        ips,
        ..pod.clone()
    }
}

/// Make the trace for cluster `s` (made with `params`, one cluster).
pub fn churn(params: &Params, mut s: Synth, p: &ChurnParams) -> Churn {
    let mut rng = Rng::new(p.seed);
    let mut placer = Placer::new(params, &s);
    let (ns, app) = ("ns-001", "app-000");
    let rollout = format!("{ns}/{app}");
    let pods = &mut s.inventory.clusters[0].pods;
    let is_rolled =
        |x: &Pod| x.namespace == ns && x.labels.get("app").map(String::as_str) == Some(app);
    let template = pods
        .iter()
        .find(|x| is_rolled(x))
        .cloned()
        .expect("the synthetic cluster has ns-001/app-000");
    let old_hash = template.labels["pod-template-hash"].clone();
    let have = pods.iter().filter(|x| is_rolled(x)).count();
    for j in 0..p.rollout.saturating_sub(have) {
        let name = format!("{app}-{}-s{j:04x}", &old_hash[5..]);
        pods.push(moved(&template, name, placer.place(&mut rng, None)));
    }
    let mut old: Vec<Pod> = pods.iter().filter(|x| is_rolled(x)).cloned().collect();
    old.truncate(p.rollout);
    // Apps' pods, which new pods copy and which may be deleted (not the
    // rolled Deployment's).
    let apps: Vec<Pod> = pods
        .iter()
        .filter(|x| x.namespace.starts_with("ns-") && !is_rolled(x))
        .cloned()
        .collect();
    let mut deletable = apps.clone();

    let total = (p.seconds * p.rate) as usize;
    let rolled = 2 * old.len();
    assert!(
        rolled * 10 <= total * 8,
        "the rollout does not fit the trace"
    );
    let mut slots: Vec<Option<(Kind, Pod)>> = vec![None; total];
    let new_hash = format!("{:010x}", 0xf_0000_0000u64 | rng.below(1 << 32));
    let (start, span) = (total / 10, total * 8 / 10);
    for (j, old_pod) in old.iter().enumerate() {
        let mut new_pod = moved(
            &template,
            format!("{app}-{}-r{j:04x}", &new_hash[5..]),
            placer.place(&mut rng, None),
        );
        new_pod
            .labels
            .insert("pod-template-hash".into(), new_hash.clone());
        slots[start + 2 * j * span / rolled] = Some((Kind::RolloutCreate, new_pod));
        slots[start + (2 * j + 1) * span / rolled] = Some((Kind::RolloutDelete, old_pod.clone()));
    }
    let mut queued: Option<(Kind, Pod)> = None;
    let mut made = 0usize;
    let mut free = slots.iter().filter(|x| x.is_none()).count();
    for slot in slots.iter_mut().filter(|x| x.is_none()) {
        free -= 1;
        if let Some(q) = queued.take() {
            *slot = Some(q);
            continue;
        }
        made += 1;
        let take = |rng: &mut Rng, d: &mut Vec<Pod>| d.swap_remove(rng.index(d.len()));
        // A reschedule needs a slot left for its create.
        let pick = match (deletable.is_empty(), free) {
            (true, _) => 0,
            (false, 0) => rng.index(2),
            _ => rng.index(3),
        };
        *slot = Some(match pick {
            0 => {
                let base = &apps[rng.index(apps.len())];
                let name = format!("{}-c{made:04x}", base.name);
                (
                    Kind::Create,
                    moved(base, name, placer.place(&mut rng, None)),
                )
            }
            1 => (Kind::Delete, take(&mut rng, &mut deletable)),
            _ => {
                let gone = take(&mut rng, &mut deletable);
                let name = format!("{}-m{made:04x}", gone.name);
                let to = placer.place(&mut rng, gone.node.as_deref());
                queued = Some((Kind::RescheduleCreate, moved(&gone, name, to)));
                (Kind::RescheduleDelete, gone)
            }
        });
    }
    let events = slots
        .into_iter()
        .enumerate()
        .filter_map(|(i, x)| x.map(|(kind, pod)| (i, kind, pod)))
        .map(|(i, kind, pod)| ChurnEvent {
            at_ms: i as u64 * 1000 / p.rate as u64,
            kind,
            pod,
        })
        .collect();
    Churn {
        synth: s,
        rollout,
        events,
    }
}

impl Churn {
    /// Write the cluster (`intent/`, `inventory/`), `list.jsonl` (its first
    /// list as watch events), `churn.jsonl` (the trace, one event a line)
    /// and `churn.tsv` (per event: index, due time in ms, kind, pod, node,
    /// addresses).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        self.synth.write(dir)?;
        let list = kubectl_list(&self.synth.inventory.clusters[0]);
        let mut text = String::new();
        for item in list["items"].as_array().into_iter().flatten() {
            let line: Value = json!({"type": "ADDED", "object": item});
            writeln!(text, "{line}").expect("string");
        }
        std::fs::write(dir.join("list.jsonl"), text)?;
        let (mut lines, mut tsv) = (String::new(), String::new());
        tsv.push_str("index\tat_ms\tkind\tpod\tnode\taddresses\n");
        for (i, e) in self.events.iter().enumerate() {
            writeln!(lines, "{}", e.line()).expect("string");
            let ips: Vec<String> = e.pod.ips.iter().map(IpAddr::to_string).collect();
            writeln!(
                tsv,
                "{i}\t{}\t{}\t{}/{}\t{}\t{}",
                e.at_ms,
                e.kind.name(),
                e.pod.namespace,
                e.pod.name,
                e.pod.node.as_deref().unwrap_or(""),
                ips.join(",")
            )
            .expect("string");
        }
        std::fs::write(dir.join("churn.jsonl"), lines)?;
        std::fs::write(dir.join("churn.tsv"), tsv)
    }
}
