//! From atoms to intent files: filters, externals and policies in the
//! intent language, laid out as `ringfence fmt` lays them out, each policy
//! preceded by the evidence for it.
//!
//! Files (paths relative to the output directory):
//!
//! - `00-externals.kdl`: the externals;
//! - `CLUSTER.kdl`: the cluster's scope (without `--scope`), its nodes and
//!   cluster-wide filters, policies with no namespace;
//! - `CLUSTER/NAMESPACE.kdl`: the filters of a namespace's groups and the
//!   policies whose provider (else consumer) is in that namespace.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use ipnet::IpNet;
use ringfence_intent::format::quote;
use ringfence_inventory::model::Proto;
use ringfence_schema::net::{PortRange, normalize_ports};

use crate::aggregate::{Evidence, key_addr};
use crate::book::{Book, EntityKind};
use crate::compress::Atom;
use crate::group::{UnitId, UnitKind, Units};
use crate::select::{self, Pred, Selected, Selection};

/// Where a file goes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum FileKey {
    Externals,
    Cluster(usize),
    Namespace(usize, String),
}

/// A discovered filter.
#[derive(Clone, Debug)]
pub(crate) struct FilterDef {
    pub(crate) name: String,
    pub(crate) file: FileKey,
    pub(crate) sel: Selected,
    /// Who is in it, for the summary.
    pub(crate) members: Vec<String>,
}

/// A discovered external.
#[derive(Clone, Debug)]
pub(crate) struct ExternalDef {
    pub(crate) name: String,
    pub(crate) cidrs: Vec<IpNet>,
}

/// A discovered policy.
#[derive(Clone, Debug)]
pub(crate) struct PolicyDef {
    pub(crate) scope: String,
    pub(crate) file: FileKey,
    pub(crate) name: String,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) proto: Proto,
    pub(crate) ports: Vec<PortRange>,
    pub(crate) ev: Evidence,
    pub(crate) comments: Vec<String>,
}

/// Everything to write.
#[derive(Debug, Default)]
pub(crate) struct Model {
    /// Self-contained output: a scope per cluster (by cluster index).
    pub(crate) scopes: Vec<usize>,
    pub(crate) filters: Vec<FilterDef>,
    pub(crate) externals: Vec<ExternalDef>,
    pub(crate) policies: Vec<PolicyDef>,
    /// Unit → reference (`filter:…`, `external:…`, `service:…`, `scope:…`).
    refs: BTreeMap<UnitId, String>,
}

/// What the emitter needs to know about the run.
pub(crate) struct Settings<'s> {
    /// `--scope NAME`: policies go there; no scope is declared.
    pub(crate) scope: Option<&'s str>,
    /// The header line on every file naming the settings.
    pub(crate) header: String,
    /// The port generalization level's name, for comments.
    pub(crate) level: &'static str,
}

/// The name of an external prefix: `ext-198-51-100-0-24`, `ext-2001-db8-1-2-64`.
pub(crate) fn ext_name(net: IpNet) -> String {
    match net {
        IpNet::V4(n) => format!(
            "ext-{}-{}",
            n.network().to_string().replace('.', "-"),
            n.prefix_len()
        ),
        IpNet::V6(n) => {
            let segs = n.network().segments();
            let head: Vec<String> = segs[..4].iter().map(|s| format!("{s:x}")).collect();
            format!("ext-{}-{}", head.join("-"), n.prefix_len())
        }
    }
}

/// A file name part from a cluster or namespace name.
fn path_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

impl FileKey {
    pub(crate) fn path(&self, book: &Book<'_>) -> String {
        match self {
            FileKey::Externals => "00-externals.kdl".into(),
            FileKey::Cluster(c) => format!("{}.kdl", path_part(&book.inv.clusters[*c].name)),
            FileKey::Namespace(c, ns) => format!(
                "{}/{}.kdl",
                path_part(&book.inv.clusters[*c].name),
                path_part(ns)
            ),
        }
    }
}

impl Model {
    /// Name every unit the atoms use and turn atoms into policies.
    pub(crate) fn build(
        book: &Book<'_>,
        units: &Units<'_>,
        atoms: &[Atom],
        settings: &Settings<'_>,
    ) -> Model {
        let mut m = Model::default();
        let used: BTreeSet<UnitId> = atoms
            .iter()
            .flat_map(|a| [a.consumer, a.provider])
            .collect();
        let mut pending: Vec<(UnitId, FilterDef)> = Vec::new();
        for &u in &used {
            let un = &units.units[u as usize];
            let cluster_file =
                || FileKey::Cluster(un.cluster.expect("inventory units have a cluster"));
            let ns_file = || {
                FileKey::Namespace(
                    un.cluster.expect("inventory units have a cluster"),
                    un.namespace.expect("namespaced").to_string(),
                )
            };
            let (sel, file) = match un.kind {
                UnitKind::Workloads => (select::workloads(book, un), ns_file()),
                UnitKind::Nodes => (select::nodes(book, un), cluster_file()),
                UnitKind::Namespace => (
                    select::namespace(
                        book,
                        un.cluster.expect("in a cluster"),
                        un.namespace.expect("namespaced"),
                    ),
                    ns_file(),
                ),
                UnitKind::ClusterPods => (
                    select::cluster_pods(book, un.cluster.expect("in a cluster")),
                    cluster_file(),
                ),
                UnitKind::Cluster if settings.scope.is_none() => {
                    let c = un.cluster.expect("in a cluster");
                    m.refs
                        .insert(u, format!("scope:{}", book.inv.clusters[c].name));
                    continue;
                }
                UnitKind::Cluster => (
                    select::cluster(book, un.cluster.expect("in a cluster")),
                    cluster_file(),
                ),
                UnitKind::Service(e) => {
                    let s = book.service(e);
                    m.refs
                        .insert(u, format!("service:{}/{}", s.namespace, s.name));
                    continue;
                }
                UnitKind::NodePortEntry(_) => (
                    select::all_nodes(book, un.cluster.expect("in a cluster")),
                    cluster_file(),
                ),
                UnitKind::External => {
                    let cidrs: Vec<IpNet> = un.prefixes.iter().filter_map(|p| p.prefix()).collect();
                    let first = ext_name(cidrs[0]);
                    let name = match cidrs.len() {
                        1 => first,
                        n => format!("{first}-and-{}-more", n - 1),
                    };
                    m.refs.insert(u, format!("external:{name}"));
                    m.externals.push(ExternalDef { name, cidrs });
                    continue;
                }
            };
            let members = members(book, units, u);
            pending.push((
                u,
                FilterDef {
                    name: String::new(),
                    file,
                    sel,
                    members,
                },
            ));
        }
        // A filter identical to one already named (all nodes, as a node
        // unit and as a node-port entry) is the same filter.
        let mut same: BTreeMap<(FileKey, Vec<Pred>), UnitId> = BTreeMap::new();
        let mut aliases: Vec<(UnitId, UnitId)> = Vec::new();
        pending.retain(|(u, f)| {
            let key = (f.file.clone(), f.sel.preds.clone());
            match same.get(&key) {
                Some(&first) => {
                    aliases.push((*u, first));
                    false
                }
                None => {
                    same.insert(key, *u);
                    true
                }
            }
        });
        // Unique filter names: the base name, else namespace-qualified,
        // else numbered, in unit order.
        let mut count: BTreeMap<String, usize> = BTreeMap::new();
        for (_, f) in &pending {
            *count.entry(f.sel.base_name.clone()).or_default() += 1;
        }
        let mut taken: BTreeSet<String> = BTreeSet::new();
        for (u, mut f) in pending {
            let mut name = f.sel.base_name.clone();
            if count[&name] > 1
                && let FileKey::Namespace(_, ns) = &f.file
            {
                name = format!("{ns}-{name}");
            }
            let mut n = 2;
            let base = name.clone();
            while taken.contains(&name) {
                name = format!("{base}-{n}");
                n += 1;
            }
            taken.insert(name.clone());
            m.refs.insert(u, format!("filter:{name}"));
            f.name = name;
            m.filters.push(f);
        }
        for (u, first) in aliases {
            let r = m.refs[&first].clone();
            m.refs.insert(u, r);
        }
        m.filters.sort_by(|a, b| a.name.cmp(&b.name));
        m.externals.sort_by(|a, b| a.name.cmp(&b.name));
        m.policies(book, units, atoms, settings);
        m
    }

    fn policies(
        &mut self,
        book: &Book<'_>,
        units: &Units<'_>,
        atoms: &[Atom],
        settings: &Settings<'_>,
    ) {
        let mut grouped: BTreeMap<(UnitId, UnitId, Proto), Vec<&Atom>> = BTreeMap::new();
        for a in atoms {
            grouped
                .entry((a.consumer, a.provider, a.proto))
                .or_default()
                .push(a);
        }
        let mut scopes: BTreeSet<usize> = BTreeSet::new();
        let mut out: Vec<PolicyDef> = Vec::new();
        for ((c, p, proto), list) in grouped {
            let (cu, pu) = (&units.units[c as usize], &units.units[p as usize]);
            let mut ev = list[0].ev.clone();
            let mut ports: Vec<PortRange> = Vec::new();
            let mut comments = Vec::new();
            for a in &list {
                if !std::ptr::eq(*a, list[0]) {
                    ev.merge(&a.ev);
                }
                ports.extend(a.ports);
                if let Some(r) = a.ports
                    && a.folded > 1
                {
                    comments.push(format!(
                        "ports {r}: generalized from {} observed ports (port generalization {})",
                        a.folded, settings.level
                    ));
                }
                comments.extend(a.notes.iter().cloned());
            }
            normalize_ports(&mut ports);
            comments.dedup();
            let file_for = |x: usize| {
                let pick = |cl: Option<usize>, ns: Option<&str>| {
                    if cl == Some(x) {
                        ns.map(str::to_owned)
                    } else {
                        None
                    }
                };
                match pick(pu.cluster, pu.namespace).or_else(|| pick(cu.cluster, cu.namespace)) {
                    Some(ns) => FileKey::Namespace(x, ns),
                    None => FileKey::Cluster(x),
                }
            };
            let entry = matches!(pu.kind, UnitKind::NodePortEntry(_));
            if entry {
                comments.push(
                    "the consumer's egress to the node port (the service policy admits it at the backends)"
                        .into(),
                );
            }
            let homes: Vec<(String, FileKey)> = match settings.scope {
                Some(name) => {
                    let x = pu
                        .cluster
                        .or(cu.cluster)
                        .expect("one side is in the inventory");
                    vec![(name.to_string(), file_for(x))]
                }
                None => {
                    // An egress-only policy belongs to the consumer's scope.
                    let pc = if entry { None } else { pu.cluster };
                    let mut cl: Vec<usize> = [cu.cluster, pc].into_iter().flatten().collect();
                    cl.sort_unstable();
                    cl.dedup();
                    cl.into_iter()
                        .map(|x| {
                            scopes.insert(x);
                            (book.inv.clusters[x].name.clone(), file_for(x))
                        })
                        .collect()
                }
            };
            for (scope, file) in homes {
                out.push(PolicyDef {
                    scope,
                    file,
                    name: String::new(),
                    from: self.refs[&c].clone(),
                    to: self.refs[&p].clone(),
                    proto,
                    ports: ports.clone(),
                    ev: ev.clone(),
                    comments: comments.clone(),
                });
            }
        }
        // Names unique per scope: consumer-to-provider, the protocol when
        // the pair has several, a number when still taken.
        out.sort_by(|a, b| {
            (&a.scope, &a.from, &a.to, a.proto).cmp(&(&b.scope, &b.from, &b.to, b.proto))
        });
        let short = |r: &str| r.split_once(':').map_or(r, |(_, n)| n).replace('/', "-");
        let mut pairs: BTreeMap<(String, String, String), usize> = BTreeMap::new();
        for p in &out {
            *pairs
                .entry((p.scope.clone(), p.from.clone(), p.to.clone()))
                .or_default() += 1;
        }
        let mut taken: BTreeSet<(String, String)> = BTreeSet::new();
        for p in &mut out {
            let mut name = format!("{}-to-{}", short(&p.from), short(&p.to));
            if pairs[&(p.scope.clone(), p.from.clone(), p.to.clone())] > 1 {
                name = format!("{name}-{}", p.proto);
            }
            let base = name.clone();
            let mut n = 2;
            while taken.contains(&(p.scope.clone(), name.clone())) {
                name = format!("{base}-{n}");
                n += 1;
            }
            taken.insert((p.scope.clone(), name.clone()));
            p.name = name;
        }
        self.policies = out;
        self.scopes = scopes.into_iter().collect();
    }

    /// The files, sorted by path.
    pub(crate) fn render(&self, book: &Book<'_>, settings: &Settings<'_>) -> Vec<(String, String)> {
        let mut files: BTreeMap<FileKey, String> = BTreeMap::new();
        let header = |what: &str| {
            format!(
                "// Discovered by `ringfence discover` from observed flows: {what}.\n// {}\n// Review before merging: every policy below allows traffic that was seen.\n",
                settings.header
            )
        };
        if !self.externals.is_empty() {
            let mut t =
                header("addresses outside the inventory, grouped by /24 (IPv4) and /64 (IPv6)");
            for e in &self.externals {
                t.push('\n');
                let _ = writeln!(t, "external {} {{", quote(&e.name));
                for c in &e.cidrs {
                    let _ = writeln!(t, "    cidr {}", quote(&c.to_string()));
                }
                t.push_str("}\n");
            }
            files.insert(FileKey::Externals, t);
        }
        let mut keys: BTreeSet<FileKey> = self.filters.iter().map(|f| f.file.clone()).collect();
        keys.extend(self.policies.iter().map(|p| p.file.clone()));
        keys.extend(self.scopes.iter().map(|&c| FileKey::Cluster(c)));
        for key in keys {
            let what = match &key {
                FileKey::Cluster(c) => format!("cluster {}", book.inv.clusters[*c].name),
                FileKey::Namespace(c, ns) => {
                    format!("namespace {ns} of cluster {}", book.inv.clusters[*c].name)
                }
                FileKey::Externals => unreachable!("written above"),
            };
            let mut t = header(&what);
            if let FileKey::Cluster(c) = key
                && self.scopes.contains(&c)
            {
                let name = &book.inv.clusters[c].name;
                t.push('\n');
                let _ = writeln!(
                    t,
                    "// Everything in cluster {name}: only the policies below are allowed."
                );
                let _ = writeln!(t, "scope {} {{", quote(name));
                let _ = writeln!(t, "    query {{\n        cluster {}\n    }}", quote(name));
                t.push_str("    catch-all ingress=\"deny\" egress=\"deny\"\n}\n");
            }
            for f in self.filters.iter().filter(|f| f.file == key) {
                t.push('\n');
                if let Some(c) = f.sel.how.comment() {
                    let _ = writeln!(t, "// {c}");
                }
                let owner = settings.scope.map_or_else(
                    || match &f.file {
                        FileKey::Cluster(c) | FileKey::Namespace(c, _) => {
                            book.inv.clusters[*c].name.clone()
                        }
                        FileKey::Externals => unreachable!("filters are in cluster files"),
                    },
                    str::to_owned,
                );
                let _ = writeln!(t, "filter {} scope={} {{", quote(&f.name), quote(&owner));
                for p in &f.sel.preds {
                    let _ = writeln!(t, "    {}", pred(p));
                }
                t.push_str("}\n");
            }
            let mut by_scope: BTreeMap<&str, Vec<&PolicyDef>> = BTreeMap::new();
            for p in self.policies.iter().filter(|p| p.file == key) {
                by_scope.entry(&p.scope).or_default().push(p);
            }
            for (scope, ps) in by_scope {
                t.push('\n');
                let _ = writeln!(t, "policies scope={} {{\n    default {{", quote(scope));
                for (i, p) in ps.iter().enumerate() {
                    if i > 0 {
                        t.push('\n');
                    }
                    for line in evidence(book, &p.ev)
                        .into_iter()
                        .chain(p.comments.iter().cloned())
                    {
                        let _ = writeln!(t, "        // {line}");
                    }
                    let _ = writeln!(t, "        {}", policy_line(p));
                }
                t.push_str("    }\n}\n");
            }
            files.insert(key, t);
        }
        let mut out: Vec<(String, String)> =
            files.into_iter().map(|(k, t)| (k.path(book), t)).collect();
        // By path: the order intent is read in.
        out.sort();
        out
    }
}

/// Who is in a unit, for the summary.
fn members(book: &Book<'_>, units: &Units<'_>, u: UnitId) -> Vec<String> {
    let un = &units.units[u as usize];
    un.entities
        .iter()
        .filter_map(|&e| {
            let en = &book.entities[e as usize];
            match en.kind {
                EntityKind::Workload => Some(format!(
                    "{}/{} ({}, {} pod{})",
                    en.namespace.unwrap_or_default(),
                    en.name,
                    en.owner_kind,
                    en.pods.len(),
                    if en.pods.len() == 1 { "" } else { "s" }
                )),
                EntityKind::Node => Some(format!("node {}", en.name)),
                EntityKind::Service => None,
            }
        })
        .collect()
}

/// The evidence comment: counts, time span, examples.
fn evidence(book: &Book<'_>, ev: &Evidence) -> Vec<String> {
    let plural = |n: u64, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let mut counts = vec![plural(ev.flows, "flow")];
    if ev.packets > 0 {
        counts.push(plural(ev.packets, "packet"));
    }
    if ev.bytes > 0 {
        counts.push(plural(ev.bytes, "byte"));
    }
    let when = if ev.first == ev.last {
        format!("seen {}", ev.first.to_rfc3339_secs())
    } else {
        format!(
            "seen {} to {}",
            ev.first.to_rfc3339_secs(),
            ev.last.to_rfc3339_secs()
        )
    };
    let name = |k: u128| book.describe(key_addr(k));
    let examples: Vec<String> = ev
        .examples
        .iter()
        .map(|(s, d)| format!("{} -> {}", name(*s), name(*d)))
        .collect();
    let mut out = vec![format!("{}; {when}", counts.join(", "))];
    if !examples.is_empty() {
        out.push(format!("e.g. {}", examples.join(", ")));
    }
    out
}

fn policy_line(p: &PolicyDef) -> String {
    let mut s = format!(
        "allow {} from={} to={}",
        quote(&p.name),
        quote(&p.from),
        quote(&p.to)
    );
    if p.proto != Proto::Any {
        let _ = write!(s, " proto={}", quote(p.proto.as_str()));
    }
    match &p.ports[..] {
        [] => {}
        [r] if r.start == r.end => {
            let _ = write!(s, " ports={}", r.start);
        }
        rs => {
            let list: Vec<String> = rs.iter().map(|r| r.to_string()).collect();
            let _ = write!(s, " ports={}", quote(&list.join(",")));
        }
    }
    s
}

fn pred(p: &Pred) -> String {
    let list = |vs: &[String]| vs.iter().map(|v| quote(v)).collect::<Vec<_>>().join(" ");
    match p {
        Pred::Cluster(c) => format!("cluster {}", quote(c)),
        Pred::Namespace(n) => format!("namespace {}", quote(n)),
        Pred::Kind(k) => format!("kind {}", quote(k)),
        Pred::Label(k, vs) => format!("label {} {}", quote(k), list(vs)),
        Pred::Name(vs) => format!("name {}", list(vs)),
    }
}

/// How a group was selected, in words (summary).
pub(crate) fn describe_selection(f: &FilterDef) -> String {
    let preds: Vec<String> = f.sel.preds.iter().map(pred).collect();
    preds.join("; ")
}

/// What the selection says, for the summary's `selected_by`.
pub(crate) fn selection(f: &FilterDef) -> Selection {
    f.sel.how
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::Peer;

    fn ext_of(ip: &str) -> IpNet {
        Peer::external(ip.parse().unwrap()).prefix().unwrap()
    }

    #[test]
    fn names_and_quoting() {
        assert_eq!(ext_name(ext_of("198.51.100.7")), "ext-198-51-100-0-24");
        assert_eq!(ext_name(ext_of("2001:db8:1:2::9")), "ext-2001-db8-1-2-64");
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(path_part("prod/eu 1"), "prod-eu-1");
    }
}
