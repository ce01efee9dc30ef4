//! Live inventories: one cluster kept current from watch events.
//!
//! The events are what `kubectl get pods,services,nodes,namespaces -A
//! --watch --output-watch-events -o json` prints, one JSON document per line
//! (`{"type": "ADDED|MODIFIED|DELETED|BOOKMARK|ERROR", "object": {…}}`),
//! or what a Kubernetes watch delivers (`ringfence-kube` turns its events
//! into the same [`Change`]s). [`LiveCluster`] applies them and says what
//! changed: pods (by UID) for live membership, or nodes, namespaces and
//! services, which change rules and need a compile.
//!
//! Addresses are owned, one pod each. A pod that *acquires* an address (it
//! lists it now and did not before) takes it from whoever had it; the
//! previous owner keeps its other addresses, and does not get that one back
//! by listing it again in a late event. So the DELETE of a pod that arrives
//! after a new pod took its address removes nothing from the new owner, and
//! the address's old rights leave in the same step as its new ones arrive
//! (watch events of different objects are not ordered among themselves).
//!
//! A relist (the first list, or after a watch expired with `410 Gone`) is
//! bracketed by [`Change::Relist`] and [`Change::Listed`] (a kubectl stream
//! has no markers: its reader closes a relist when the stream goes quiet):
//! objects not seen again in between are gone.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use serde_json::Value;

use crate::error::InventoryError;
use crate::kubectl::{read_namespace, read_node, read_pod, read_service, strip_position};
use crate::model::{Cluster, Namespace, Node, Pod, Service};
use crate::trivy::Scores;

/// What the lines must be.
const EVENTS_HELP: &str = "give what `kubectl get pods,services,nodes,namespaces -A --watch \
                           --output-watch-events -o json` prints: one {\"type\", \"object\"} \
                           document per line";

/// One watch event, parsed.
#[derive(Clone, Debug)]
pub enum Change {
    /// ADDED or MODIFIED: the object as it is now.
    Put(Object),
    /// DELETED: the object's last state.
    Delete(Object),
    /// The watch ended or expired (`ERROR`, `410 Gone`): a relist of every
    /// kind follows.
    Expired(String),
    /// A (re)list of one kind starts (`None`: every kind): what it does not
    /// put again before [`Change::Listed`] is gone.
    Relist(Option<Kind>),
    /// The (re)list of one kind (`None`: every kind) is complete.
    Listed(Option<Kind>),
}

/// What a live source (an API server's watches, see `ringfence-kube`)
/// delivers, in order: one kind's list or relist is bracketed by
/// [`Change::Relist`] and [`Change::Listed`] of that kind.
#[derive(Clone, Debug)]
pub enum Incoming {
    /// A change to apply.
    Change(Change),
    /// The source could not read for now (it retries by itself): why, in one
    /// line naming the server.
    Problem(String),
}

/// The kinds of object a live inventory follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Nodes.
    Node,
    /// Namespaces.
    Namespace,
    /// Pods.
    Pod,
    /// Services.
    Service,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 4] = [Kind::Node, Kind::Namespace, Kind::Pod, Kind::Service];

    fn index(self) -> usize {
        self as usize
    }

    /// The resource's name in the Kubernetes API (`pods`).
    pub fn resource(self) -> &'static str {
        match self {
            Kind::Node => "nodes",
            Kind::Namespace => "namespaces",
            Kind::Pod => "pods",
            Kind::Service => "services",
        }
    }
}

/// An object of a kind the inventory reads.
#[derive(Clone, Debug)]
pub enum Object {
    /// A node, with its raw JSON (host-network pods take its addresses).
    Node(Value),
    /// A namespace.
    Namespace(Value),
    /// A pod.
    Pod(Value),
    /// A service.
    Service(Value),
}

/// Parse one line of a watch stream (`source` and `line` name it in errors).
/// `Ok(None)`: nothing to do (a bookmark, a blank line, another kind).
pub fn parse_event(
    text: &str,
    source: &str,
    line: usize,
) -> Result<Option<Change>, InventoryError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let doc: Value = serde_json::from_str(text).map_err(|e| InventoryError::Json {
        file: source.to_owned(),
        line,
        column: e.column(),
        message: strip_position(&e),
        help: EVENTS_HELP,
    })?;
    let bad = |problem: String| InventoryError::Document {
        file: format!("{source}:{line}"),
        problem,
        help: EVENTS_HELP,
    };
    let kind = doc
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("a watch event without a `type`".into()))?;
    let object = doc.get("object").cloned().unwrap_or(Value::Null);
    let wrap = |o: &Value| -> Result<Option<Object>, InventoryError> {
        Ok(match o.get("kind").and_then(Value::as_str) {
            Some("Node") => Some(Object::Node(o.clone())),
            Some("Namespace") => Some(Object::Namespace(o.clone())),
            Some("Pod") => Some(Object::Pod(o.clone())),
            Some("Service") => Some(Object::Service(o.clone())),
            Some(_) => None,
            None => return Err(bad(format!("a {kind} event whose object has no `kind`"))),
        })
    };
    match kind {
        "ADDED" | "MODIFIED" => Ok(wrap(&object)?.map(Change::Put)),
        "DELETED" => Ok(wrap(&object)?.map(Change::Delete)),
        "BOOKMARK" => Ok(None),
        "ERROR" => {
            let code = object.get("code").and_then(Value::as_u64).unwrap_or(0);
            let reason = object.get("reason").and_then(Value::as_str).unwrap_or("");
            let message = object.get("message").and_then(Value::as_str).unwrap_or("");
            Ok(Some(Change::Expired(format!(
                "the watch ended: {code} {reason} {message}"
            ))))
        }
        other => Err(bad(format!(
            "event type {other:?} is not ADDED, MODIFIED, DELETED, BOOKMARK or ERROR"
        ))),
    }
}

/// A pod as the live inventory keeps it.
#[derive(Clone, Debug)]
struct PodEntry {
    /// The pod as last seen (`ips`: every address it lists).
    pod: Pod,
    /// Addresses it lists that another pod took since.
    lost: BTreeSet<IpAddr>,
}

impl PodEntry {
    fn owned(&self) -> Vec<IpAddr> {
        self.pod
            .ips
            .iter()
            .filter(|a| !self.lost.contains(a))
            .copied()
            .collect()
    }
}

/// What applying a change did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Applied {
    /// Pods whose state for the compiler changed, by `namespace/name`:
    /// their new state with the addresses they own (`None`: gone).
    pub pods: BTreeMap<String, Option<Pod>>,
    /// A node, namespace or service changed: rules may change.
    pub structural: bool,
}

impl Applied {
    /// Fold `other` (a later change) into this one.
    pub fn merge(&mut self, other: Applied) {
        self.pods.extend(other.pods);
        self.structural |= other.structural;
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty() && !self.structural
    }
}

/// One cluster, kept current from watch events.
#[derive(Clone, Debug)]
pub struct LiveCluster {
    name: String,
    source: String,
    scores: Scores,
    nodes: BTreeMap<String, (Node, Vec<IpAddr>)>,
    namespaces: BTreeMap<String, Namespace>,
    services: BTreeMap<(String, String), Service>,
    /// Pods by UID.
    pods: HashMap<String, PodEntry>,
    /// `namespace/name` → UID.
    names: BTreeMap<String, String>,
    /// Address → the UID owning it.
    owners: HashMap<IpAddr, String>,
    /// Per kind, during a relist: the objects seen again.
    relist: [Option<BTreeSet<String>>; 4],
    /// Events applied.
    events: u64,
}

fn uid_of(v: &Value) -> Option<String> {
    v.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

impl LiveCluster {
    /// An empty cluster named `name`; `source` names the stream in errors,
    /// `scores` gives pods their CVSS (Trivy reports).
    pub fn new(name: &str, source: &str, scores: Scores) -> Self {
        LiveCluster {
            name: name.to_owned(),
            source: source.to_owned(),
            scores,
            nodes: BTreeMap::new(),
            namespaces: BTreeMap::new(),
            services: BTreeMap::new(),
            pods: HashMap::new(),
            names: BTreeMap::new(),
            owners: HashMap::new(),
            relist: Default::default(),
            events: 0,
        }
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Events applied so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Number of pods known.
    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// The cluster as the compiler reads it: every list sorted, each pod
    /// with the addresses it owns.
    pub fn cluster(&self) -> Cluster {
        let mut pods: Vec<Pod> = self
            .pods
            .values()
            .map(|e| Pod {
                ips: e.owned(),
                ..e.pod.clone()
            })
            .collect();
        pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Cluster {
            name: self.name.clone(),
            source: self.source.clone(),
            nodes: self.nodes.values().map(|(n, _)| n.clone()).collect(),
            namespaces: self.namespaces.values().cloned().collect(),
            pods,
            services: self.services.values().cloned().collect(),
            // Ingress and Route objects are not followed (manifests only).
            ingress: Vec::new(),
        }
    }

    /// A pod's compiler state: what it is, with the addresses it owns.
    fn state(&self, uid: &str) -> Option<Pod> {
        self.pods.get(uid).map(|e| Pod {
            ips: e.owned(),
            ..e.pod.clone()
        })
    }

    /// Start a relist of `kind` (`None`: every kind): objects not put again
    /// before [`Self::end_relist`] are gone.
    pub fn begin_relist(&mut self, kind: Option<Kind>) {
        for k in Kind::ALL {
            if kind.is_none_or(|x| x == k) {
                self.relist[k.index()] = Some(BTreeSet::new());
            }
        }
    }

    /// Whether a relist is open.
    pub fn relisting(&self) -> bool {
        self.relist.iter().any(Option::is_some)
    }

    /// The kinds whose relist is open, as the API names them (`pods`).
    pub fn unlisted(&self) -> impl Iterator<Item = &'static str> + '_ {
        Kind::ALL
            .into_iter()
            .filter(|k| self.relist[k.index()].is_some())
            .map(Kind::resource)
    }

    /// End the relist of `kind` (`None`: every kind): remove what it did not
    /// list again.
    pub fn end_relist(&mut self, kind: Option<Kind>) -> Applied {
        let mut out = Applied::default();
        for k in Kind::ALL {
            if kind.is_some_and(|x| x != k) {
                continue;
            }
            let Some(seen) = self.relist[k.index()].take() else {
                continue;
            };
            match k {
                Kind::Node => {
                    let before = self.nodes.len();
                    self.nodes.retain(|n, _| seen.contains(n));
                    out.structural |= self.nodes.len() != before;
                }
                Kind::Namespace => {
                    let before = self.namespaces.len();
                    self.namespaces.retain(|n, _| seen.contains(n));
                    out.structural |= self.namespaces.len() != before;
                }
                Kind::Service => {
                    let before = self.services.len();
                    self.services
                        .retain(|(ns, n), _| seen.contains(&format!("{ns}/{n}")));
                    out.structural |= self.services.len() != before;
                }
                Kind::Pod => {
                    let gone: Vec<String> = self
                        .pods
                        .keys()
                        .filter(|u| !seen.contains(*u))
                        .cloned()
                        .collect();
                    for uid in gone {
                        out.merge(self.remove_pod(&uid));
                    }
                }
            }
        }
        out
    }

    /// Apply one change.
    pub fn apply(&mut self, change: Change) -> Result<Applied, InventoryError> {
        self.events += 1;
        let file = format!("{} event {}", self.source, self.events);
        let mut out = Applied::default();
        match change {
            Change::Expired(_) | Change::Relist(None) => self.begin_relist(None),
            Change::Relist(k) => self.begin_relist(k),
            Change::Listed(k) => out = self.end_relist(k),
            Change::Put(Object::Node(v)) => {
                let (node, internal) = read_node(&v, &file, 0)?;
                self.seen(Kind::Node, node.name.clone());
                if self.nodes.get(&node.name).map(|(n, _)| n) != Some(&node) {
                    out.structural = true;
                }
                self.nodes.insert(node.name.clone(), (node, internal));
            }
            Change::Delete(Object::Node(v)) => {
                let (node, _) = read_node(&v, &file, 0)?;
                out.structural = self.nodes.remove(&node.name).is_some();
            }
            Change::Put(Object::Namespace(v)) => {
                let ns = read_namespace(&v, &file, 0)?;
                self.seen(Kind::Namespace, ns.name.clone());
                if self.namespaces.get(&ns.name) != Some(&ns) {
                    out.structural = true;
                }
                self.namespaces.insert(ns.name.clone(), ns);
            }
            Change::Delete(Object::Namespace(v)) => {
                let ns = read_namespace(&v, &file, 0)?;
                out.structural = self.namespaces.remove(&ns.name).is_some();
            }
            Change::Put(Object::Service(v)) => {
                let s = read_service(&v, &file, 0)?;
                let key = (s.namespace.clone(), s.name.clone());
                self.seen(Kind::Service, format!("{}/{}", key.0, key.1));
                if self.services.get(&key) != Some(&s) {
                    out.structural = true;
                }
                self.services.insert(key, s);
            }
            Change::Delete(Object::Service(v)) => {
                let s = read_service(&v, &file, 0)?;
                out.structural = self
                    .services
                    .remove(&(s.namespace.clone(), s.name.clone()))
                    .is_some();
            }
            Change::Put(Object::Pod(v)) => {
                let node_ips: BTreeMap<String, Vec<IpAddr>> = self
                    .nodes
                    .iter()
                    .map(|(k, (_, ips))| (k.clone(), ips.clone()))
                    .collect();
                let mut pod = read_pod(&v, &file, 0, &node_ips)?;
                pod.cvss = self.scores.of(&pod);
                let key = format!("{}/{}", pod.namespace, pod.name);
                let uid = uid_of(&v).unwrap_or_else(|| format!("name:{key}"));
                self.seen(Kind::Pod, uid.clone());
                out = self.put_pod(uid, key, pod);
            }
            Change::Delete(Object::Pod(v)) => {
                let uid = match uid_of(&v) {
                    Some(u) => u,
                    None => {
                        let pod = read_pod(&v, &file, 0, &BTreeMap::new())?;
                        format!("name:{}/{}", pod.namespace, pod.name)
                    }
                };
                out = self.remove_pod(&uid);
            }
        }
        Ok(out)
    }

    fn seen(&mut self, kind: Kind, key: String) {
        if let Some(s) = &mut self.relist[kind.index()] {
            s.insert(key);
        }
    }

    fn put_pod(&mut self, uid: String, key: String, pod: Pod) -> Applied {
        let mut out = Applied::default();
        // Another pod of the same name (recreated under a new UID) is gone.
        if let Some(old) = self.names.get(&key).cloned()
            && old != uid
        {
            out.merge(self.remove_pod(&old));
        }
        let before = self.state(&uid);
        let previously: BTreeSet<IpAddr> = self
            .pods
            .get(&uid)
            .map(|e| e.pod.ips.iter().copied().collect())
            .unwrap_or_default();
        let mut lost: BTreeSet<IpAddr> = self
            .pods
            .get(&uid)
            .map(|e| e.lost.clone())
            .unwrap_or_default();
        // Addresses it stopped listing are released, and forgotten as lost.
        for a in &previously {
            if !pod.ips.contains(a) {
                lost.remove(a);
                if self.owners.get(a) == Some(&uid) {
                    self.owners.remove(a);
                }
            }
        }
        let mut evicted = Vec::new();
        for a in &pod.ips {
            if previously.contains(a) && lost.contains(a) {
                continue;
            }
            match self.owners.get(a) {
                Some(o) if *o != uid => {
                    // Acquired now: the previous owner loses it.
                    evicted.push(o.clone());
                    if let Some(e) = self.pods.get_mut(o) {
                        e.lost.insert(*a);
                    }
                    self.owners.insert(*a, uid.clone());
                }
                _ => {
                    self.owners.insert(*a, uid.clone());
                }
            }
        }
        self.names.insert(key.clone(), uid.clone());
        self.pods.insert(uid.clone(), PodEntry { pod, lost });
        let after = self.state(&uid);
        if before != after {
            out.pods.insert(key, after);
        }
        for o in evicted {
            if let Some(e) = self.pods.get(&o) {
                let k = format!("{}/{}", e.pod.namespace, e.pod.name);
                out.pods.insert(k, self.state(&o));
            }
        }
        out
    }

    fn remove_pod(&mut self, uid: &str) -> Applied {
        let mut out = Applied::default();
        let Some(e) = self.pods.remove(uid) else {
            return out;
        };
        for a in &e.pod.ips {
            if self.owners.get(a).map(String::as_str) == Some(uid) {
                self.owners.remove(a);
            }
        }
        let key = format!("{}/{}", e.pod.namespace, e.pod.name);
        if self.names.get(&key).map(String::as_str) == Some(uid) {
            self.names.remove(&key);
            out.pods.insert(key, None);
        }
        out
    }
}

/// Read a whole stream (a file of events) into a cluster: every line
/// applied in order, the first list closed at the end. For tests and
/// one-shot tools; `watch` applies lines as they come.
pub fn read_stream(
    text: &str,
    name: &str,
    source: &str,
    scores: Scores,
) -> Result<LiveCluster, InventoryError> {
    let mut c = LiveCluster::new(name, source, scores);
    c.begin_relist(None);
    for (i, line) in text.lines().enumerate() {
        if let Some(ch) = parse_event(line, source, i + 1)? {
            c.apply(ch)?;
        }
    }
    c.end_relist(None);
    Ok(c)
}
