//! The semantic diff (`ringfence plan`): what a change to intent does, from two compiles against the same
//! inventory.
//!
//! **Per node** (from the two per-node IRs): the rules added and removed —
//! a rule is its direction, policy, action, protocol, ports, log flag and
//! peer set, on the endpoints that gained or lost it — and the address sets
//! added, removed or changed. A set is matched across the two revisions by
//! its stem (the readable part of its name, before the content hash), so a
//! set whose members changed shows as a change of elements, and the rules
//! that use it do not show at all.
//!
//! **Connectivity** (from the two matrices): the ports each (from, to,
//! protocol, entry point) line gained — newly allowed — or lost — newly
//! denied —, each with the deciding policy of each side in the new revision
//! (and in the old one), found by `explain` on the first port that changed.
//!
//! Everything is sorted; the same two compiles give the same plan.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::net::IpAddr;

use crate::explain::SideInfo;
use crate::interval::{Addrs, PortSet};
use crate::matrix::{Connection, Entry};
use crate::{Compiled, Peer};
use ipnet::IpNet;
use ringfence_schema::ir::{Action, Direction, ExposureKind, NodeIr, PolicyInfo, Rank};
use ringfence_schema::net::{AddressSet, PortRange, Proto};
use serde::Serialize;

/// The plan between two revisions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The base revision as given, and its commit.
    pub from: Revision,
    /// The revision under review, and its commit.
    pub to: Revision,
    /// Nodes compiled in either revision.
    pub nodes_compiled: usize,
    /// Nodes whose IR differs, sorted by (cluster, node).
    pub nodes: Vec<NodePlan>,
    /// What changes between workloads.
    pub connectivity: Connectivity,
}

/// A revision of a plan.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Revision {
    /// As given (`main`, `HEAD~1`, a commit id).
    pub rev: String,
    /// The commit it resolved to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// Whether a node is new, gone or changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    /// Compiled only in the new revision (a scope now covers it).
    Added,
    /// Compiled only in the old revision.
    Removed,
    /// Compiled in both, with different rules, sets or endpoints.
    Changed,
}

/// One node's changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodePlan {
    /// Cluster.
    pub cluster: String,
    /// Node name.
    pub node: String,
    /// Added, removed or changed.
    pub status: NodeStatus,
    /// Endpoints judged on the node only in the new revision.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub endpoints_added: Vec<String>,
    /// Endpoints judged on the node only in the old revision.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub endpoints_removed: Vec<String>,
    /// Rules new on some endpoints.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules_added: Vec<RuleChange>,
    /// Rules gone from some endpoints.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules_removed: Vec<RuleChange>,
    /// Sets only in the new revision.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sets_added: Vec<SetSummary>,
    /// Sets only in the old revision.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sets_removed: Vec<SetSummary>,
    /// Sets whose elements changed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sets_changed: Vec<SetChange>,
}

/// A rule added to (or removed from) some endpoints of a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleChange {
    /// Ingress (peer = source) or egress (peer = destination).
    pub direction: Direction,
    /// Allow or deny.
    pub action: Action,
    /// Protocol (`any` for every protocol).
    pub proto: Proto,
    /// Destination ports; empty for every port.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortRange>,
    /// The peer's address set; `None` matches every address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// Whether matches are logged.
    pub log: bool,
    /// The rule id (in the revision it is in).
    pub rule: String,
    /// The policy it implements, in the revision it is in.
    pub policy: PolicyRef,
    /// The endpoints that gained (lost) it.
    pub endpoints: Vec<String>,
}

/// A policy and where it is written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyRef {
    /// Policy id, `<scope>/<name>`.
    pub id: String,
    /// The policy's name as written (or generated from its position).
    /// `explain` shows it; a plan names policies by id only.
    #[serde(skip)]
    pub name: String,
    /// Rank in the global order.
    pub rank: Rank,
    /// Intent file, relative to the intent directory.
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

impl PolicyRef {
    pub(crate) fn of(p: &PolicyInfo) -> Self {
        PolicyRef {
            id: p.id.clone(),
            name: p.name.clone(),
            rank: p.rank,
            file: p.file.clone(),
            line: p.line,
            column: p.column,
        }
    }
}

/// A set and its size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SetSummary {
    /// Set name.
    pub name: String,
    /// Number of prefixes.
    pub prefixes: usize,
}

/// A set whose elements changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SetChange {
    /// Name in the old revision.
    pub from: String,
    /// Name in the new revision.
    pub to: String,
    /// Addresses now in the set, as prefixes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<IpNet>,
    /// Addresses no longer in the set, as prefixes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<IpNet>,
}

/// Connections that change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Connectivity {
    /// Ports allowed now and not before.
    pub allowed: Vec<ConnectionChange>,
    /// Ports allowed before and not now.
    pub denied: Vec<ConnectionChange>,
}

/// Ports of one matrix line that changed, and who decides them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConnectionChange {
    /// The matrix line, with only the ports that changed (none for icmp).
    #[serde(flatten)]
    pub connection: Connection,
    /// The deciding policy of each side in the new revision.
    pub now: Decision,
    /// The deciding policy of each side in the old revision.
    pub before: Decision,
}

/// Who decides a connection in one revision (explained on its first changed port).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The consumer's egress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress: Option<SideDecision>,
    /// The provider's ingress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress: Option<SideDecision>,
    /// Through a node port or load balancer with `externalTrafficPolicy:
    /// Cluster`: the target's ingress judging the node-translated source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_hop: Option<SideDecision>,
    /// Why there is no decision (e.g. a group that does not exist in that revision).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unexplained: Option<String>,
}

/// One side's verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SideDecision {
    /// The action (`allow` when the side is not managed).
    pub action: Action,
    /// The deciding policy; `None` when ringfence does not judge this side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyRef>,
}

impl SideDecision {
    fn of(s: &SideInfo) -> Self {
        SideDecision {
            action: s.action.unwrap_or(Action::Allow),
            policy: s.policy.clone().filter(|_| s.managed),
        }
    }
}

/// Compare two compiles (same inventory, two revisions of intent).
pub fn plan(before: &Compiled, after: &Compiled, from: Revision, to: Revision) -> Plan {
    let old: BTreeMap<(&str, &str), &NodeIr> = before
        .nodes()
        .iter()
        .map(|n| ((n.cluster.as_str(), n.node.as_str()), n))
        .collect();
    let new: BTreeMap<(&str, &str), &NodeIr> = after
        .nodes()
        .iter()
        .map(|n| ((n.cluster.as_str(), n.node.as_str()), n))
        .collect();
    let keys: BTreeSet<(&str, &str)> = old.keys().chain(new.keys()).copied().collect();
    let nodes = keys
        .iter()
        .filter_map(|k| node_plan(old.get(k).copied(), new.get(k).copied()))
        .collect();
    Plan {
        from,
        to,
        nodes_compiled: keys.len(),
        nodes,
        connectivity: connectivity(before, after),
    }
}

// ---------------------------------------------------------------- per node

/// What identifies a rule across revisions: its content, with the peer set
/// named by its stem (set content changes are reported as set changes).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct RuleKey<'a> {
    direction: Direction,
    policy: &'a str,
    action: Action,
    proto: Proto,
    ports: &'a [PortRange],
    peer: Option<&'a str>,
    log: bool,
}

/// A rule's key → (the rule id, its peer set name, the endpoints having it).
type RuleIndex<'a> = BTreeMap<RuleKey<'a>, (&'a str, Option<&'a str>, BTreeSet<&'a str>)>;

fn rule_index(ir: &NodeIr) -> RuleIndex<'_> {
    let mut out: RuleIndex<'_> = BTreeMap::new();
    for e in &ir.endpoints {
        for chain in [Some(&e.ingress), e.egress.as_ref()].into_iter().flatten() {
            let Some(chain) = ir.chain(chain) else {
                continue;
            };
            for r in &chain.rules {
                let key = RuleKey {
                    direction: chain.direction,
                    policy: &r.policy,
                    action: r.action,
                    proto: r.proto,
                    ports: &r.ports,
                    peer: r.peer.as_deref().map(stem),
                    log: r.log,
                };
                out.entry(key)
                    .or_insert_with(|| (r.id.as_str(), r.peer.as_deref(), BTreeSet::new()))
                    .2
                    .insert(&e.name);
            }
        }
    }
    out
}

/// The readable part of a set name: `frontend_0123456789ab` → `frontend`.
fn stem(name: &str) -> &str {
    match name.rsplit_once('_') {
        Some((s, hash)) if hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => s,
        _ => name,
    }
}

/// Rules of `a` missing (on some endpoints) from `b`.
fn rules_missing(a: &RuleIndex<'_>, b: &RuleIndex<'_>, ir: &NodeIr) -> Vec<RuleChange> {
    let mut out = Vec::new();
    for (key, (id, peer, endpoints)) in a {
        let missing: Vec<String> = match b.get(key) {
            Some((_, _, there)) => endpoints.difference(there).map(|e| e.to_string()).collect(),
            None => endpoints.iter().map(|e| e.to_string()).collect(),
        };
        if missing.is_empty() {
            continue;
        }
        let policy = ir
            .policy(key.policy)
            .map(PolicyRef::of)
            .unwrap_or(PolicyRef {
                id: key.policy.to_string(),
                name: String::new(),
                rank: Rank::Implicit,
                file: String::new(),
                line: 0,
                column: 0,
            });
        out.push(RuleChange {
            direction: key.direction,
            action: key.action,
            proto: key.proto,
            ports: key.ports.to_vec(),
            peer: peer.map(str::to_string),
            log: key.log,
            rule: id.to_string(),
            policy,
            endpoints: missing,
        });
    }
    out
}

fn addrs(s: &AddressSet) -> Addrs {
    let nets: Vec<IpNet> =
        s.v4.iter()
            .map(|n| IpNet::V4(*n))
            .chain(s.v6.iter().map(|n| IpNet::V6(*n)))
            .collect();
    Addrs::from_nets(nets.iter())
}

fn prefixes(a: &Addrs) -> Vec<IpNet> {
    a.v4_prefixes()
        .into_iter()
        .map(IpNet::V4)
        .chain(a.v6_prefixes().into_iter().map(IpNet::V6))
        .collect()
}

fn set_changes(
    old: &[AddressSet],
    new: &[AddressSet],
) -> (Vec<SetSummary>, Vec<SetSummary>, Vec<SetChange>) {
    let names =
        |sets: &[AddressSet]| -> BTreeSet<String> { sets.iter().map(|s| s.name.clone()).collect() };
    let (old_names, new_names) = (names(old), names(new));
    let gone: Vec<&AddressSet> = old
        .iter()
        .filter(|s| !new_names.contains(&s.name))
        .collect();
    let came: Vec<&AddressSet> = new
        .iter()
        .filter(|s| !old_names.contains(&s.name))
        .collect();
    let by_stem = |sets: &[&AddressSet]| -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for s in sets {
            *m.entry(stem(&s.name).to_string()).or_insert(0) += 1;
        }
        m
    };
    let (gone_stems, came_stems) = (by_stem(&gone), by_stem(&came));
    // A stem with exactly one set leaving and one arriving is one set changed.
    let paired = |s: &AddressSet| {
        let st = stem(&s.name);
        gone_stems.get(st) == Some(&1) && came_stems.get(st) == Some(&1)
    };
    let summary = |s: &&AddressSet| SetSummary {
        name: s.name.clone(),
        prefixes: s.len(),
    };
    let removed = gone.iter().filter(|s| !paired(s)).map(summary).collect();
    let added = came.iter().filter(|s| !paired(s)).map(summary).collect();
    // Sets are named by what they stand for, so a set whose addresses
    // changed usually keeps its name.
    let mut changed: Vec<SetChange> = old
        .iter()
        .filter_map(|o| {
            let n = new.iter().find(|n| n.name == o.name)?;
            let (a, b) = (addrs(o), addrs(n));
            (a != b).then(|| SetChange {
                from: o.name.clone(),
                to: n.name.clone(),
                added: prefixes(&b.difference(&a)),
                removed: prefixes(&a.difference(&b)),
            })
        })
        .collect();
    for o in gone.iter().filter(|s| paired(s)) {
        let n = came
            .iter()
            .find(|n| stem(&n.name) == stem(&o.name))
            .expect("paired sets have a partner");
        let (a, b) = (addrs(o), addrs(n));
        changed.push(SetChange {
            from: o.name.clone(),
            to: n.name.clone(),
            added: prefixes(&b.difference(&a)),
            removed: prefixes(&a.difference(&b)),
        });
    }
    (added, removed, changed)
}

fn node_plan(old: Option<&NodeIr>, new: Option<&NodeIr>) -> Option<NodePlan> {
    let any = new.or(old)?;
    let status = match (old, new) {
        (None, _) => NodeStatus::Added,
        (_, None) => NodeStatus::Removed,
        (Some(o), Some(n)) if o == n => return None,
        _ => NodeStatus::Changed,
    };
    let empty = header(any);
    let (o, n) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
    let (ro, rn) = (rule_index(o), rule_index(n));
    let endpoints =
        |ir: &NodeIr| -> BTreeSet<String> { ir.endpoints.iter().map(|e| e.name.clone()).collect() };
    let (eo, en) = (endpoints(o), endpoints(n));
    let (sets_added, sets_removed, sets_changed) = set_changes(&o.sets, &n.sets);
    let p = NodePlan {
        cluster: any.cluster.clone(),
        node: any.node.clone(),
        status,
        endpoints_added: en.difference(&eo).cloned().collect(),
        endpoints_removed: eo.difference(&en).cloned().collect(),
        rules_added: rules_missing(&rn, &ro, n),
        rules_removed: rules_missing(&ro, &rn, o),
        sets_added,
        sets_removed,
        sets_changed,
    };
    Some(p)
}

/// An IR with `ir`'s identity (cluster, node, OS, backend) enforcing nothing:
/// the other side of a node compiled in one revision only.
fn header(ir: &NodeIr) -> NodeIr {
    NodeIr {
        ir_version: ir.ir_version,
        cluster: ir.cluster.clone(),
        node: ir.node.clone(),
        os: ir.os,
        backend: ir.backend.clone(),
        addresses: Vec::new(),
        pod_cidrs: Vec::new(),
        unknown_pods: ir.unknown_pods,
        unmanaged: Vec::new(),
        live: ir.live,
        endpoints: Vec::new(),
        exposures: Vec::new(),
        chains: Vec::new(),
        sets: Vec::new(),
        policies: Vec::new(),
    }
}

// ------------------------------------------------------------ connectivity

type LineKey = (String, String, Option<Entry>, Proto);

/// The matrix as ports per line; icmp (no ports) is port 0.
fn lines(c: &Compiled) -> BTreeMap<LineKey, PortSet> {
    let mut out = BTreeMap::new();
    for Connection {
        from,
        to,
        via,
        proto,
        ports,
    } in c.matrix().connections
    {
        let set = if proto.has_ports() {
            PortSet::from_ranges(ports.iter().map(|r| (r.start, r.end)))
        } else {
            PortSet::range(0, 0)
        };
        out.insert((from, to, via, proto), set);
    }
    out
}

fn connectivity(before: &Compiled, after: &Compiled) -> Connectivity {
    let (old, new) = (lines(before), lines(after));
    let keys: BTreeSet<&LineKey> = old.keys().chain(new.keys()).collect();
    let none = PortSet::empty();
    let mut out = Connectivity::default();
    for key in keys {
        let (o, n) = (old.get(key).unwrap_or(&none), new.get(key).unwrap_or(&none));
        for (diff, list) in [
            (n.difference(o), &mut out.allowed),
            (o.difference(n), &mut out.denied),
        ] {
            if diff.is_empty() {
                continue;
            }
            let port = key.3.has_ports().then(|| diff.ranges()[0].0);
            list.push(ConnectionChange {
                connection: Connection {
                    from: key.0.clone(),
                    to: key.1.clone(),
                    via: key.2.clone(),
                    proto: key.3,
                    ports: if key.3.has_ports() {
                        diff.ranges()
                            .iter()
                            .map(|&(start, end)| PortRange { start, end })
                            .collect()
                    } else {
                        Vec::new()
                    },
                },
                now: decide(after, key, port),
                before: decide(before, key, port),
            });
        }
    }
    out
}

/// Explain one line of the matrix on one port in one compile.
fn decide(c: &Compiled, (from, to, via, proto): &LineKey, port: Option<u16>) -> Decision {
    let peer = |text: &str| c.peer(text).map_err(|e| e.to_string());
    let to_peer: Result<Peer, String> = match via {
        None => peer(to),
        Some(entry) => match entry_address(c, entry, *proto, port) {
            Some(ip) => peer(&ip.to_string()),
            None => Err(format!(
                "no node serves the {} entry point of {} in this revision",
                kind_name(entry.kind),
                entry.service
            )),
        },
    };
    let explained = peer(from).and_then(|f| {
        let t = to_peer?;
        c.explain(&f, &t, *proto, port).map_err(|e| e.to_string())
    });
    match explained {
        Ok(x) => Decision {
            egress: Some(SideDecision::of(&x.egress)),
            ingress: Some(SideDecision::of(&x.ingress)),
            node_hop: x.node_hop.as_ref().map(SideDecision::of),
            unexplained: None,
        },
        Err(why) => Decision {
            unexplained: Some(why),
            ..Decision::default()
        },
    }
}

fn kind_name(k: ExposureKind) -> &'static str {
    match k {
        ExposureKind::NodePort => "NodePort",
        ExposureKind::LoadBalancer => "LoadBalancer",
    }
}

/// An address that reaches an entry point: a load balancer's ingress
/// address, or the address of a node serving the node port (IPv4 first).
fn entry_address(c: &Compiled, e: &Entry, proto: Proto, port: Option<u16>) -> Option<IpAddr> {
    let mut found: Vec<IpAddr> = c
        .nodes()
        .iter()
        .flat_map(|ir| {
            ir.exposures
                .iter()
                .filter(|x| {
                    x.kind == e.kind
                        && x.service == e.service
                        && x.proto == proto
                        && Some(x.port) == port
                })
                .flat_map(|x| match x.kind {
                    ExposureKind::LoadBalancer => x.addresses.clone(),
                    ExposureKind::NodePort => ir.addresses.clone(),
                })
        })
        .collect();
    found.sort_by_key(|a| (a.is_ipv6(), *a));
    found.first().copied()
}

// -------------------------------------------------------------------- text

fn ports_text(proto: Proto, ports: &[PortRange]) -> String {
    let mut s = proto.as_str().to_string();
    if !ports.is_empty() {
        let p: Vec<String> = ports.iter().map(PortRange::to_string).collect();
        let _ = write!(s, " {}", p.join(","));
    }
    s
}

impl fmt::Display for PolicyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.file.is_empty() {
            write!(f, "`{}`", self.id)
        } else {
            write!(f, "`{}` ({}:{})", self.id, self.file, self.line)
        }
    }
}

impl fmt::Display for SideDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.policy {
            Some(p) => write!(f, "{} by {p}", self.action),
            None => write!(f, "{} (not managed)", self.action),
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(why) = &self.unexplained {
            return write!(f, "not explained: {why}");
        }
        let side = |s: &Option<SideDecision>| s.as_ref().map_or("-".into(), |s| s.to_string());
        write!(
            f,
            "egress {}; ingress {}",
            side(&self.egress),
            side(&self.ingress)
        )?;
        if let Some(h) = &self.node_hop {
            write!(f, "; node hop {h}")?;
        }
        Ok(())
    }
}

fn rule_line(r: &RuleChange) -> String {
    let peer_word = match r.direction {
        Direction::Ingress => "from",
        Direction::Egress => "to",
    };
    let peer = r
        .peer
        .as_deref()
        .map_or("any".to_string(), |p| format!("`{p}`"));
    let log = if r.log { " log" } else { "" };
    let on = match r.endpoints.as_slice() {
        [one] => format!("on {one}"),
        many => format!(
            "on {} endpoints ({}{})",
            many.len(),
            many.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
            if many.len() > 3 { ", …" } else { "" }
        ),
    };
    format!(
        "{} {} {} {peer_word} {peer}{log} — {} — {on}",
        match r.direction {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        },
        r.action,
        ports_text(r.proto, &r.ports),
        r.policy,
    )
}

fn conn_line(c: &Connection) -> String {
    let via = c.via.as_ref().map_or(String::new(), |e| {
        format!(" via {} `{}`", kind_name(e.kind), e.service)
    });
    format!(
        "`{}` => `{}` : {}{via}",
        c.from,
        c.to,
        ports_text(c.proto, &c.ports).to_ascii_uppercase()
    )
}

impl fmt::Display for Plan {
    /// Markdown for a merge-request comment: nodes, then connectivity.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rev = |r: &Revision| match &r.commit {
            Some(c) => format!("`{}` ({})", r.rev, &c[..c.len().min(12)]),
            None => format!("`{}`", r.rev),
        };
        writeln!(
            f,
            "## ringfence plan: {} → {}",
            rev(&self.from),
            rev(&self.to)
        )?;
        writeln!(f)?;
        let c = &self.connectivity;
        writeln!(
            f,
            "{} of {} node(s) change; {} connection(s) newly allowed, {} newly denied.",
            self.nodes.len(),
            self.nodes_compiled,
            c.allowed.len(),
            c.denied.len()
        )?;
        if !self.nodes.is_empty() {
            writeln!(f, "\n### Nodes")?;
        }
        for n in &self.nodes {
            let status = match n.status {
                NodeStatus::Added => " (new)",
                NodeStatus::Removed => " (no longer compiled)",
                NodeStatus::Changed => "",
            };
            writeln!(f, "\n#### {} / {}{status}\n", n.cluster, n.node)?;
            for e in &n.endpoints_added {
                writeln!(f, "- endpoint added: {e}")?;
            }
            for e in &n.endpoints_removed {
                writeln!(f, "- endpoint removed: {e}")?;
            }
            for r in &n.rules_added {
                writeln!(f, "- rule added: {}", rule_line(r))?;
            }
            for r in &n.rules_removed {
                writeln!(f, "- rule removed: {}", rule_line(r))?;
            }
            let prefixes = |n: usize| format!("{n} prefix{}", if n == 1 { "" } else { "es" });
            for s in &n.sets_added {
                writeln!(f, "- set added: `{}` ({})", s.name, prefixes(s.prefixes))?;
            }
            for s in &n.sets_removed {
                writeln!(f, "- set removed: `{}` ({})", s.name, prefixes(s.prefixes))?;
            }
            for s in &n.sets_changed {
                let list = |v: &[IpNet], sign: char| {
                    v.iter().map(|p| format!("{sign}{p}")).collect::<Vec<_>>()
                };
                let mut parts = list(&s.added, '+');
                parts.extend(list(&s.removed, '-'));
                writeln!(
                    f,
                    "- set changed: `{}` → `{}`: {}",
                    s.from,
                    s.to,
                    parts.join(" ")
                )?;
            }
        }
        if !c.allowed.is_empty() || !c.denied.is_empty() {
            writeln!(f, "\n### Connectivity")?;
        }
        for (title, list) in [("Newly allowed", &c.allowed), ("Newly denied", &c.denied)] {
            if list.is_empty() {
                continue;
            }
            writeln!(f, "\n{title}:\n")?;
            for x in list {
                writeln!(f, "- {}", conn_line(&x.connection))?;
                writeln!(f, "  - now: {}", x.now)?;
                writeln!(f, "  - before: {}", x.before)?;
            }
        }
        Ok(())
    }
}
