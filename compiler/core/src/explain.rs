//! `explain`: which rule decides a connection on each side, and why.
//!
//! A peer is a workload (`namespace/name`: a pod, a service or an owning
//! workload; `namespace/name[Kind]` as `matrix` prints it), a node, an
//! external (`external:NAME` or its bare name) or an IP address. For a group
//! (an owner's pods, a service's backing pods) every member pair is
//! evaluated with the same matcher that serves [`Compiled::verdict`]; the
//! connection is allowed only if every pair is, and the explanation shows
//! the first pair that is denied (else the first pair).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use ringfence_intent::model::{Action, Mode, Proto, WorkloadKind};
use ringfence_schema::ir::Rank;
use serde::{Serialize, Serializer};

use crate::compiled::{Compiled, FlowVerdict, Side, same_family};
use crate::diff::PolicyRef;
use crate::idx::{ClusterIdx, WorkloadIdx};

/// A consumer or provider named on the command line, resolved against the inventory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    text: String,
    kind: PeerKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum PeerKind {
    /// Pods (a pod, an owner's pods) and/or a service of the same name.
    Named {
        pods: Vec<WorkloadIdx>,
        service: Option<WorkloadIdx>,
    },
    Node(WorkloadIdx),
    External(WorkloadIdx),
    Ip(IpAddr),
}

impl Peer {
    /// The text it was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// Why a peer could not be resolved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeerError {
    /// Nothing has that name.
    #[error("unknown workload `{text}`: {hint}")]
    Unknown {
        /// What was given.
        text: String,
        /// What exists, or how to write it.
        hint: String,
    },
    /// More than one thing has that name.
    #[error("`{text}` is ambiguous; say which: {}", .candidates.join(", "))]
    Ambiguous {
        /// What was given.
        text: String,
        /// Unambiguous spellings.
        candidates: Vec<String>,
    },
}

/// Why a connection could not be explained.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExplainError {
    /// A service provider without a matching port.
    #[error(
        "service `{service}` has no {proto} port {port} (it has {has}); give one of its ports with --port"
    )]
    NoServicePort {
        /// `namespace/name`.
        service: String,
        /// The protocol asked.
        proto: Proto,
        /// The port asked (`none` when not given).
        port: String,
        /// The ports it has.
        has: String,
    },
    /// tcp, udp and sctp need a port.
    #[error("{0} needs a port: give --port")]
    PortNeeded(Proto),
    /// Port 0, which no connection can have.
    #[error("port 0 is not a port a connection can use: give --port 1-65535")]
    PortZero,
    /// A peer without an address to send from or to.
    #[error("`{0}` has no running pod with an address")]
    NoAddress(String),
    /// The two peers share no address family.
    #[error("`{from}` and `{to}` have no address family in common")]
    NoCommonFamily {
        /// The consumer.
        from: String,
        /// The provider.
        to: String,
    },
}

/// One side of the explained connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SideInfo {
    /// Whether ringfence judges this side (false: an external, an unknown
    /// address or a workload in no scope; it allows).
    pub managed: bool,
    /// The deciding rule's action.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// The chain's mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// The endpoint whose chain decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The node that judges.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The chain id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// The rule id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The deciding policy and where it is written. In JSON its fields
    /// sit in this object: `policy` (the id), `name`, `rank`, `file`,
    /// `line` and `column`, all absent when there is none.
    #[serde(flatten, serialize_with = "policy_fields")]
    pub policy: Option<PolicyRef>,
}

impl SideInfo {
    /// The deciding policy's id.
    pub fn policy_id(&self) -> Option<&str> {
        self.policy.as_ref().map(|p| p.id.as_str())
    }
}

/// [`SideInfo::policy`]'s fields, flattened into the side's object.
fn policy_fields<S: Serializer>(p: &Option<PolicyRef>, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Fields<'a> {
        policy: &'a str,
        name: &'a str,
        rank: Rank,
        file: &'a str,
        line: u32,
        column: u32,
    }
    match p {
        Some(p) => Fields {
            policy: &p.id,
            name: &p.name,
            rank: p.rank,
            file: &p.file,
            line: p.line,
            column: p.column,
        }
        .serialize(s),
        None => s.serialize_none(),
    }
}

/// The member pair an explanation shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Pair {
    /// The consumer member (`pod/NS/NAME`, `node/NAME`, `external:NAME`, an IP).
    pub from: String,
    /// The provider member.
    pub to: String,
    /// Source address used.
    pub src: IpAddr,
    /// Destination address used (after service translation).
    pub dst: IpAddr,
    /// Destination port used (after service translation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The translation applied, e.g. `service shop/frontend tcp 80 -> 8080`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

/// The answer of `explain`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// `allow` only if every member pair is allowed on both sides.
    pub verdict: Action,
    /// Whether traffic passes (a deny in analyze mode passes).
    pub passes: bool,
    /// The consumer as given.
    pub from: String,
    /// The provider as given.
    pub to: String,
    /// Protocol.
    pub proto: Proto,
    /// Port as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Member pairs evaluated.
    pub pairs: usize,
    /// Member pairs denied.
    pub denied: usize,
    /// The pair shown: the first denied, else the first.
    pub pair: Pair,
    /// The consumer's egress decision.
    pub egress: SideInfo,
    /// The provider's ingress decision.
    pub ingress: SideInfo,
    /// Through a node port or load balancer with `externalTrafficPolicy:
    /// Cluster`: the target's ingress judging the node-translated source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_hop: Option<SideInfo>,
}

/// A member of a peer: a label, its addresses, the service translation.
struct Member {
    label: String,
    addrs: Vec<IpAddr>,
    /// Provider side: (destination port, translation label).
    port: Option<(Option<u16>, Option<String>)>,
    /// The workload, to skip pairing a pod with itself.
    workload: Option<WorkloadIdx>,
}

const GROUPED: [&str; 4] = ["Deployment", "StatefulSet", "DaemonSet", "Job"];

/// What one cluster has under a `namespace/name`.
#[derive(Default)]
struct Found {
    /// The pod of that name, or the pods of owners of that name.
    pods: Vec<WorkloadIdx>,
    /// The service of that name.
    service: Option<WorkloadIdx>,
    /// `Pod` and the owner kinds found.
    kinds: Vec<String>,
}

/// A peer's text without its kind, and the kind: a `[Kind]` suffix or a
/// `external:`, `service:`, `node:` or `pod:` prefix (the prefix wins).
fn split_kind(text: &str) -> (&str, Option<&str>) {
    let (body, kind) = match text.strip_suffix(']').and_then(|t| t.rsplit_once('[')) {
        Some((b, k)) => (b, Some(k)),
        None => (text, None),
    };
    match body.split_once(':') {
        Some((k @ ("external" | "service" | "node" | "pod"), rest)) => (rest, Some(k)),
        _ => (body, kind),
    }
}

/// Whether a peer of kind `kind` (lowercase, `None`: any) may be a `k`.
fn wants(kind: Option<&str>, k: &str) -> bool {
    kind.is_none_or(|x| x == k)
}

/// `NAMESPACE/NAME` or `CLUSTER/NAMESPACE/NAME`: (cluster, namespace, name).
fn split_namespaced<'t>(
    text: &str,
    body: &'t str,
) -> Result<(Option<&'t str>, &'t str, &'t str), PeerError> {
    match body.split('/').collect::<Vec<_>>().as_slice() {
        [ns, name] => Ok((None, *ns, *name)),
        [c, ns, name] => Ok((Some(*c), *ns, *name)),
        _ => Err(PeerError::Unknown {
            text: text.to_string(),
            hint: "write NAMESPACE/NAME or CLUSTER/NAMESPACE/NAME".to_string(),
        }),
    }
}

impl Compiled {
    /// Resolve a peer: `namespace/name` (a pod, a service, an owning
    /// workload), `cluster/namespace/name`, `namespace/name[Kind]`, a node
    /// name (`name[Node]`), `external:NAME` (or a bare external name), an IP.
    pub fn peer(&self, text: &str) -> Result<Peer, PeerError> {
        let text = text.trim();
        let kind = if let Ok(ip) = text.parse::<IpAddr>() {
            PeerKind::Ip(ip)
        } else {
            let (body, kind) = split_kind(text);
            let kind = kind.map(|k| k.to_ascii_lowercase());
            let kind = kind.as_deref();
            if !body.contains('/') || matches!(kind, Some("node" | "external")) {
                self.node_or_external(text, body, kind)?
            } else {
                let (cluster, ns, name) = split_namespaced(text, body)?;
                let by_cluster = self.found_by_cluster(cluster, ns, name, kind);
                self.one_cluster(text, ns, name, kind, by_cluster)?
            }
        };
        Ok(Peer {
            text: text.to_string(),
            kind,
        })
    }

    /// The node or external named `body` (a node by name or qualified name).
    fn node_or_external(
        &self,
        text: &str,
        body: &str,
        kind: Option<&str>,
    ) -> Result<PeerKind, PeerError> {
        let mut found = Vec::new();
        if wants(kind, "node") {
            found.extend(
                self.workloads_of(WorkloadKind::Node)
                    .filter(|&w| self.cat[w.index()].name == body || self.qualified(w) == body)
                    .map(|w| (format!("{}[Node]", self.qualified(w)), PeerKind::Node(w))),
            );
        }
        if wants(kind, "external") {
            found.extend(
                self.workloads_of(WorkloadKind::External)
                    .filter(|&w| self.cat[w.index()].name == body)
                    .map(|w| (format!("external:{body}"), PeerKind::External(w))),
            );
        }
        match found.len() {
            0 => Err(PeerError::Unknown {
                text: text.to_string(),
                hint: format!(
                    "no node or external is named `{body}` (pods and services are \
                     NAMESPACE/NAME, externals external:NAME, or give an IP){}",
                    self.did_you_mean(body)
                ),
            }),
            1 => Ok(found.pop().expect("one").1),
            _ => Err(PeerError::Ambiguous {
                text: text.to_string(),
                candidates: found.into_iter().map(|(c, _)| c).collect(),
            }),
        }
    }

    /// Per cluster, what `ns/name` names there: the pod of that name, the
    /// pods of owners of that name, the service of that name.
    fn found_by_cluster(
        &self,
        cluster: Option<&str>,
        ns: &str,
        name: &str,
        kind: Option<&str>,
    ) -> BTreeMap<ClusterIdx, Found> {
        let in_cluster = |w: &WorkloadIdx| {
            cluster.is_none_or(|c| {
                self.cat[w.index()]
                    .cluster
                    .is_some_and(|ci| self.clusters[ci.index()] == c)
            })
        };
        let in_ns = |w: &WorkloadIdx| self.cat[w.index()].namespace == ns;
        let mut by_cluster: BTreeMap<ClusterIdx, Found> = BTreeMap::new();
        if wants(kind, "pod") {
            for w in self
                .workloads_of(WorkloadKind::Pod)
                .filter(in_cluster)
                .filter(in_ns)
            {
                if self.cat[w.index()].name == name {
                    let e = by_cluster.entry(self.cluster_of(w)).or_default();
                    e.pods.push(w);
                    e.kinds.push("Pod".to_string());
                }
            }
        }
        for w in self
            .workloads_of(WorkloadKind::Pod)
            .filter(in_cluster)
            .filter(in_ns)
        {
            if let Some((k, n)) = &self.cat[w.index()].owner
                && n == name
                && GROUPED.contains(&k.as_str())
                && wants(kind, &k.to_ascii_lowercase())
            {
                let e = by_cluster.entry(self.cluster_of(w)).or_default();
                if !e.kinds.iter().any(|k| k == "Pod") || kind.is_some() {
                    e.pods.push(w);
                }
                if !e.kinds.contains(k) {
                    e.kinds.push(k.clone());
                }
            }
        }
        if wants(kind, "service") {
            for w in self
                .workloads_of(WorkloadKind::Service)
                .filter(in_cluster)
                .filter(in_ns)
            {
                if self.cat[w.index()].name == name {
                    by_cluster.entry(self.cluster_of(w)).or_default().service = Some(w);
                }
            }
        }
        by_cluster
    }

    /// The peer `ns/name` names when exactly one cluster has it, and one
    /// owner kind unless the kind was given.
    fn one_cluster(
        &self,
        text: &str,
        ns: &str,
        name: &str,
        kind: Option<&str>,
        by_cluster: BTreeMap<ClusterIdx, Found>,
    ) -> Result<PeerKind, PeerError> {
        match by_cluster.len() {
            0 => {
                let ns_exists = self.cat.iter().any(|w| w.namespace == ns);
                let hint = if ns_exists {
                    format!(
                        "no pod, service or Deployment/StatefulSet/DaemonSet/Job named `{name}` in namespace `{ns}`"
                    )
                } else {
                    format!("no namespace `{ns}` in the inventory")
                };
                Err(PeerError::Unknown {
                    text: text.to_string(),
                    hint: hint + &self.did_you_mean(&format!("{ns}/{name}")),
                })
            }
            1 => {
                let (
                    _,
                    Found {
                        mut pods,
                        service,
                        kinds,
                    },
                ) = by_cluster.into_iter().next().expect("one");
                pods.sort_unstable();
                pods.dedup();
                let owner_kinds: Vec<&String> = kinds.iter().filter(|k| *k != "Pod").collect();
                if owner_kinds.len() > 1 && kind.is_none() {
                    return Err(PeerError::Ambiguous {
                        text: text.to_string(),
                        candidates: owner_kinds
                            .iter()
                            .map(|k| format!("{ns}/{name}[{k}]"))
                            .collect(),
                    });
                }
                Ok(PeerKind::Named { pods, service })
            }
            _ => Err(PeerError::Ambiguous {
                text: text.to_string(),
                candidates: by_cluster
                    .keys()
                    .map(|&c| format!("{}/{ns}/{name}", self.clusters[c.index()]))
                    .collect(),
            }),
        }
    }

    /// `; did you mean `X`?` with the closest name `explain` accepts (pods,
    /// services and their owning workloads as NAMESPACE/NAME, nodes,
    /// `external:NAME`), or nothing when none is close.
    fn did_you_mean(&self, given: &str) -> String {
        let mut names: Vec<String> = Vec::new();
        for w in &self.cat {
            match w.kind {
                WorkloadKind::Pod | WorkloadKind::Service => {
                    names.push(format!("{}/{}", w.namespace, w.name));
                    if let Some((k, n)) = &w.owner
                        && GROUPED.contains(&k.as_str())
                    {
                        names.push(format!("{}/{n}", w.namespace));
                    }
                }
                WorkloadKind::Node => names.push(w.name.clone()),
                WorkloadKind::External => names.push(format!("external:{}", w.name)),
            }
        }
        let given = given.trim_start_matches("external:");
        // Close enough to be a slip: a third of the name, at least two edits.
        let budget = (given.chars().count() / 3).max(2);
        names
            .iter()
            .map(|n| {
                let bare = n.trim_start_matches("external:");
                (strsim::levenshtein(given, bare), n)
            })
            .filter(|(d, _)| *d <= budget)
            .min()
            .map_or(String::new(), |(_, n)| format!("; did you mean `{n}`?"))
    }

    fn workloads_of(&self, kind: WorkloadKind) -> impl Iterator<Item = WorkloadIdx> + '_ {
        self.workloads()
            .filter(move |(_, wl)| wl.kind == kind)
            .map(|(w, _)| w)
    }

    /// The cluster of a pod or service.
    fn cluster_of(&self, w: WorkloadIdx) -> ClusterIdx {
        self.cat[w.index()]
            .cluster
            .expect("pods and services belong to a cluster")
    }

    /// `name`, or `cluster/name` with several clusters.
    fn qualified(&self, w: WorkloadIdx) -> String {
        let wl = &self.cat[w.index()];
        match wl.cluster {
            Some(c) if self.clusters.len() > 1 => {
                format!("{}/{}", self.clusters[c.index()], wl.name)
            }
            _ => wl.name.clone(),
        }
    }

    fn member_label(&self, w: WorkloadIdx) -> String {
        let wl = &self.cat[w.index()];
        match wl.kind {
            WorkloadKind::Pod => format!("pod/{}/{}", wl.namespace, wl.name),
            WorkloadKind::Node => format!("node/{}", wl.name),
            WorkloadKind::External => format!("external:{}", wl.name),
            WorkloadKind::Service => format!("service/{}/{}", wl.namespace, wl.name),
        }
    }

    fn consumers(&self, p: &Peer) -> Result<Vec<Member>, ExplainError> {
        let pod = |w: WorkloadIdx| Member {
            label: self.member_label(w),
            addrs: self.cat[w.index()].addrs.clone(),
            port: None,
            workload: Some(w),
        };
        let members: Vec<Member> = match &p.kind {
            PeerKind::Named { pods, service } => {
                let pods = if pods.is_empty() {
                    service
                        .and_then(|s| self.cat[s.index()].service.as_ref())
                        .map(|s| s.backing.clone())
                        .unwrap_or_default()
                } else {
                    pods.clone()
                };
                pods.into_iter().map(pod).collect()
            }
            PeerKind::Node(w) => vec![pod(*w)],
            PeerKind::External(w) => vec![Member {
                label: self.member_label(*w),
                addrs: representatives(&self.cat[w.index()].nets),
                port: None,
                workload: Some(*w),
            }],
            PeerKind::Ip(ip) => vec![Member {
                label: ip.to_string(),
                addrs: vec![*ip],
                port: None,
                workload: None,
            }],
        };
        with_addresses(p, members)
    }

    fn providers(
        &self,
        p: &Peer,
        proto: Proto,
        port: Option<u16>,
    ) -> Result<Vec<Member>, ExplainError> {
        let direct = |w: WorkloadIdx| Member {
            label: self.member_label(w),
            addrs: self.cat[w.index()].addrs.clone(),
            port: Some((port, None)),
            workload: Some(w),
        };
        let members: Vec<Member> = match &p.kind {
            PeerKind::Named { pods, service } => {
                let svc = service.and_then(|s| Some((s, self.cat[s.index()].service.as_ref()?)));
                let selected = svc.and_then(|(s, data)| {
                    let k = data
                        .ports
                        .iter()
                        .position(|sp| port == Some(sp.port) && proto == sp.proto)?;
                    Some((s, data, k))
                });
                match (selected, svc) {
                    (Some((s, data, k)), _) => {
                        let sp = &data.ports[k];
                        let wl = &self.cat[s.index()];
                        data.backing
                            .iter()
                            .zip(&data.targets)
                            .filter_map(|(&b, tps)| {
                                let tp = tps[k]?;
                                Some(Member {
                                    label: self.member_label(b),
                                    addrs: self.cat[b.index()].addrs.clone(),
                                    port: Some((
                                        Some(tp),
                                        Some(format!(
                                            "service {}/{} {} {} -> {}",
                                            wl.namespace, wl.name, sp.proto, sp.port, tp
                                        )),
                                    )),
                                    workload: Some(b),
                                })
                            })
                            .collect()
                    }
                    (None, Some((s, data))) if pods.is_empty() => {
                        let wl = &self.cat[s.index()];
                        let has: Vec<String> = data
                            .ports
                            .iter()
                            .map(|sp| format!("{} {}", sp.proto, sp.port))
                            .collect();
                        return Err(ExplainError::NoServicePort {
                            service: format!("{}/{}", wl.namespace, wl.name),
                            proto,
                            port: port.map_or("none".to_string(), |p| p.to_string()),
                            has: if has.is_empty() {
                                "no ports".to_string()
                            } else {
                                has.join(", ")
                            },
                        });
                    }
                    _ => pods.iter().map(|&w| direct(w)).collect(),
                }
            }
            PeerKind::Node(w) => vec![direct(*w)],
            PeerKind::External(w) => vec![Member {
                label: self.member_label(*w),
                addrs: representatives(&self.cat[w.index()].nets),
                port: Some((port, None)),
                workload: Some(*w),
            }],
            PeerKind::Ip(ip) => vec![Member {
                label: ip.to_string(),
                addrs: vec![*ip],
                port: Some((port, None)),
                workload: None,
            }],
        };
        with_addresses(p, members)
    }

    /// Explain the connection from `from` to `to` on `proto`/`port`.
    pub fn explain(
        &self,
        from: &Peer,
        to: &Peer,
        proto: Proto,
        port: Option<u16>,
    ) -> Result<Explanation, ExplainError> {
        let port = if proto.has_ports() {
            match port {
                None => return Err(ExplainError::PortNeeded(proto)),
                Some(0) => return Err(ExplainError::PortZero),
                Some(p) => Some(p),
            }
        } else {
            None
        };
        let consumers = self.consumers(from)?;
        let providers = self.providers(to, proto, port)?;
        let mut pairs = 0;
        let mut denied = 0;
        let mut shown: Option<(Pair, FlowVerdict)> = None;
        for c in &consumers {
            for p in &providers {
                if c.workload.is_some() && c.workload == p.workload {
                    continue;
                }
                let Some(src) = c.addrs.first().copied() else {
                    continue;
                };
                let Some((src, dst)) = same_family(&p.addrs, src).map(|d| (src, d)).or_else(|| {
                    c.addrs
                        .iter()
                        .find_map(|&s| same_family(&p.addrs, s).map(|d| (s, d)))
                }) else {
                    continue;
                };
                let (dport, via) = p.port.clone().unwrap_or((port, None));
                let v = if via.is_none() && matches!(to.kind, PeerKind::Ip(_)) {
                    self.verdict(src, dst, proto, dport)
                } else {
                    self.verdict_direct(src, dst, proto, dport)
                };
                let (dst, dport, via) = match v.translation {
                    Some(t) => (t.target, Some(t.port), Some(t.describe(dst, dport))),
                    None => (dst, dport, via),
                };
                pairs += 1;
                let ok = v.allowed();
                if !ok {
                    denied += 1;
                }
                let pair = Pair {
                    from: c.label.clone(),
                    to: p.label.clone(),
                    src,
                    dst,
                    port: dport,
                    via,
                };
                let replace = match &shown {
                    None => true,
                    Some((_, sv)) => sv.allowed() && !ok,
                };
                if replace {
                    shown = Some((pair, v));
                }
            }
        }
        let Some((pair, v)) = shown else {
            return Err(ExplainError::NoCommonFamily {
                from: from.text.clone(),
                to: to.text.clone(),
            });
        };
        let (egress, ingress, node_hop) = self.side_infos(&v);
        Ok(Explanation {
            verdict: if denied == 0 {
                Action::Allow
            } else {
                Action::Deny
            },
            passes: v.passes(),
            from: from.text.clone(),
            to: to.text.clone(),
            proto,
            port,
            pairs,
            denied,
            pair,
            egress,
            ingress,
            node_hop,
        })
    }

    /// What `explain` shows of a verdict's sides: egress, ingress and the
    /// node hop when the flow took one.
    pub fn side_infos(&self, v: &FlowVerdict) -> (SideInfo, SideInfo, Option<SideInfo>) {
        (
            self.side_info(&v.egress),
            self.side_info(&v.ingress),
            v.translation
                .and_then(|t| t.node_hop)
                .map(|s| self.side_info(&s)),
        )
    }

    /// What `explain` shows for one side of a verdict.
    pub fn side_info(&self, s: &Side) -> SideInfo {
        match s {
            Side::NotManaged => SideInfo {
                managed: false,
                action: None,
                mode: None,
                endpoint: None,
                node: None,
                chain: None,
                rule: None,
                policy: None,
            },
            Side::Decided(d) => SideInfo {
                managed: true,
                action: Some(d.action),
                mode: Some(d.mode),
                endpoint: Some(self.endpoint(d.endpoint).name.clone()),
                node: Some(self.endpoint_node(d.endpoint).to_string()),
                chain: Some(self.chain_id(d).to_string()),
                rule: Some(self.rule(d).id.clone()),
                policy: Some(PolicyRef::of(self.policy(d))),
            },
        }
    }
}

/// The members of `p` that have an address; none is an error naming `p`.
fn with_addresses(p: &Peer, members: Vec<Member>) -> Result<Vec<Member>, ExplainError> {
    let members: Vec<Member> = members
        .into_iter()
        .filter(|m| !m.addrs.is_empty())
        .collect();
    if members.is_empty() {
        return Err(ExplainError::NoAddress(p.text.clone()));
    }
    Ok(members)
}

/// Representative addresses of an external: per family, the first address
/// of its first prefix (past the network address when the prefix is wider
/// than two addresses).
fn representatives(nets: &[IpNet]) -> Vec<IpAddr> {
    let mut out = Vec::new();
    if let Some(n) = nets.iter().find_map(|n| match n {
        IpNet::V4(n) => Some(n),
        IpNet::V6(_) => None,
    }) {
        let a = u32::from(n.network());
        out.push(IpAddr::V4(Ipv4Addr::from(if n.prefix_len() < 31 {
            a + 1
        } else {
            a
        })));
    }
    if let Some(n) = nets.iter().find_map(|n| match n {
        IpNet::V6(n) => Some(n),
        IpNet::V4(_) => None,
    }) {
        let a = u128::from(n.network());
        out.push(IpAddr::V6(Ipv6Addr::from(if n.prefix_len() < 127 {
            a + 1
        } else {
            a
        })));
    }
    out
}

impl fmt::Display for SideInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.managed {
            return write!(f, "allow (not managed)");
        }
        let action = self.action.map_or("?".to_string(), |a| a.to_string());
        let p = self.policy.as_ref();
        let rank = match p.map(|p| p.rank) {
            Some(Rank::Quarantine) => "quarantine",
            Some(Rank::Absolute) => "absolute",
            Some(Rank::Default) => "default",
            Some(Rank::CatchAll) => "catch-all",
            Some(Rank::Implicit) => "implicit",
            None => "?",
        };
        write!(
            f,
            "{action} by {} ({rank}) at {}:{}:{}",
            p.map_or("?", |p| p.id.as_str()),
            p.map_or("?", |p| p.file.as_str()),
            p.map_or(0, |p| p.line),
            p.map_or(0, |p| p.column),
        )?;
        if self.mode == Some(Mode::Analyze) && self.action == Some(Action::Deny) {
            write!(f, " [analyze mode: passes]")?;
        }
        write!(
            f,
            "\n           rule {} in chain {}, endpoint {} on node {}",
            self.rule.as_deref().unwrap_or("?"),
            self.chain.as_deref().unwrap_or("?"),
            self.endpoint.as_deref().unwrap_or("?"),
            self.node.as_deref().unwrap_or("?"),
        )
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = self.port.map_or(String::new(), |p| format!("/{p}"));
        write!(
            f,
            "{}: {} -> {} {}{port}",
            self.verdict, self.from, self.to, self.proto
        )?;
        if self.pairs > 1 {
            match self.denied {
                0 => write!(f, " (all {} pairs allowed)", self.pairs)?,
                d => write!(f, " ({d} of {} pairs denied)", self.pairs)?,
            }
        }
        if self.verdict == Action::Deny && self.passes {
            write!(f, " [analyze mode: traffic passes]")?;
        }
        writeln!(f)?;
        let pport = self.pair.port.map_or(String::new(), |p| format!("/{p}"));
        writeln!(
            f,
            "  pair:    {} ({}) -> {} ({}) {}{pport}",
            self.pair.from, self.pair.src, self.pair.to, self.pair.dst, self.proto
        )?;
        if let Some(via) = &self.pair.via {
            writeln!(f, "  via:     {via}")?;
        }
        writeln!(f, "  egress:  {}", self.egress)?;
        writeln!(f, "  ingress: {}", self.ingress)?;
        if let Some(h) = &self.node_hop {
            writeln!(f, "  node hop: {h}")?;
        }
        Ok(())
    }
}
