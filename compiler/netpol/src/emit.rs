//! Writing the translation as intent files: the scope, filters for every
//! selector, externals for every address block, and the policies in the
//! order Kubernetes evaluates them.
//!
//! Files (path order is evaluation order within a group):
//! - `00-cluster.kdl`: the scope (every pod; catch-alls allow, as Kubernetes
//!   does by default), cluster-wide filters and externals, and the
//!   administrator tier (AdminNetworkPolicy, ClusterNetworkPolicy `Admin`) as
//!   `absolute` policies by priority;
//! - `10-ns-<namespace>.kdl`: a namespace's NetworkPolicies as one-sided
//!   `default` allows, then its isolation denies, and its pod filters;
//! - `90-baseline.kdl`: the baseline tier (BaselineAdminNetworkPolicy, then
//!   ClusterNetworkPolicy `Baseline` by priority) as `default` policies, after
//!   every namespace's.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;

use ipnet::IpNet;
use ringfence_intent::format::quote;
use ringfence_intent::model::{Proto, ports_value};
use ringfence_schema::digest::hex;
use sha2::{Digest, Sha256};

use crate::model::*;
use crate::parse::NAME_LABEL;
use crate::{Options, PolicyReport};

/// The file of the scope and the administrator tier.
pub(crate) const CLUSTER_FILE: &str = "00-cluster.kdl";
/// The file of the baseline tier.
pub(crate) const BASELINE_FILE: &str = "90-baseline.kdl";

/// A namespace's file.
pub(crate) fn namespace_file(ns: &str) -> String {
    format!("10-ns-{ns}.kdl")
}

/// Text for a `//` comment (one line, no control characters).
fn comment_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A name made from a selector or prefixes: `/` and `:` (which names cannot
/// hold) become `~` and `_`, which no prefix has and `:` no label has, so
/// names stay apart. Past 100 characters, a name is cut and a hash of the
/// whole keeps it apart.
fn safe_name(raw: &str) -> String {
    let clean = raw.replace('/', "~").replace(':', "_");
    if clean.chars().count() <= 100 {
        return clean;
    }
    let digest = Sha256::digest(raw.as_bytes());
    let hash = hex(&digest[..4]);
    let cut: String = clean.chars().take(80).collect();
    format!("{cut}#{hash}")
}

/// How a selector reads in a name: `app=web,tier!=db|cache,canary=*`.
fn summary(s: &Selector) -> String {
    s.0.iter()
        .map(|r| match r {
            Req::In(k, v) => format!("{k}={}", v.join("|")),
            Req::NotIn(k, v) => format!("{k}!={}", v.join("|")),
            Req::Exists(k) => format!("{k}=*"),
            Req::DoesNotExist(k) => format!("{k}!=*"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The predicates of a label selector; `ns` for a namespace selector
/// (namespace labels as `ns:KEY`, the name label as `namespace`).
fn predicates(s: &Selector, ns: bool, out: &mut Vec<String>) {
    for r in &s.0 {
        if ns && r.key() == NAME_LABEL {
            match r {
                Req::In(_, v) => out.push(format!("namespace {}", values(v))),
                Req::NotIn(_, v) => out.push(format!("not {{ namespace {} }}", values(v))),
                // Every namespace has its name label.
                Req::Exists(_) => {}
                Req::DoesNotExist(_) => out.push("not { kind \"pod\" }".into()),
            }
            continue;
        }
        let key = if ns {
            format!("ns:{}", r.key())
        } else {
            r.key().to_string()
        };
        match r {
            Req::In(_, v) => out.push(format!("label {} {}", quote(&key), values(v))),
            Req::NotIn(_, v) => out.push(format!("not {{ label {} {} }}", quote(&key), values(v))),
            Req::Exists(_) => out.push(format!("label {}", quote(&key))),
            Req::DoesNotExist(_) => out.push(format!("not {{ label {} }}", quote(&key))),
        }
    }
}

fn values(v: &[String]) -> String {
    v.iter().map(|x| quote(x)).collect::<Vec<_>>().join(" ")
}

/// Which file an item goes to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum FileKey {
    Cluster,
    Namespace(String),
}

/// A filter or external to write.
struct Def {
    name: String,
    file: FileKey,
    text: String,
}

/// Builds the files.
pub(crate) struct Emitter<'o> {
    opts: &'o Options,
    /// Canonical content → definition.
    filters: BTreeMap<String, Def>,
    externals: BTreeMap<String, Def>,
    filter_names: HashSet<String>,
    external_names: HashSet<String>,
    policy_names: HashSet<String>,
    /// File → policy lines of its `absolute` and `default` groups.
    groups: BTreeMap<String, (Vec<String>, Vec<String>)>,
    /// A policy written (rank, everything but its name) → (file, absolute,
    /// index of its comment line, its id): a repeat is not written again,
    /// its source is added to the comment.
    written: BTreeMap<(bool, String), (String, bool, usize, String)>,
    pub(crate) report: Vec<PolicyReport>,
}

impl<'o> Emitter<'o> {
    pub(crate) fn new(opts: &'o Options) -> Self {
        Emitter {
            opts,
            filters: BTreeMap::new(),
            externals: BTreeMap::new(),
            filter_names: HashSet::new(),
            external_names: HashSet::new(),
            policy_names: HashSet::new(),
            groups: BTreeMap::new(),
            written: BTreeMap::new(),
            report: Vec::new(),
        }
    }

    fn filter(
        &mut self,
        key: String,
        name: String,
        file: FileKey,
        body: String,
        pods: bool,
    ) -> String {
        if let Some(d) = self.filters.get(&key) {
            return format!("filter:{}", d.name);
        }
        let name = unique(name, &mut self.filter_names);
        let head = if pods {
            format!(
                "filter {} scope={} restrict-to-scope=#true {{\n",
                quote(&name),
                quote(&self.opts.scope)
            )
        } else {
            format!("filter {} {{\n", quote(&name))
        };
        let text = format!("{head}{body}}}\n");
        self.filters.insert(
            key,
            Def {
                name: name.clone(),
                file,
                text,
            },
        );
        format!("filter:{name}")
    }

    /// A reference to a set of pods.
    fn pods(&mut self, p: &Pods) -> String {
        let mut lines = Vec::new();
        let (name, file) = match &p.namespaces {
            Namespaces::Own(ns) => {
                lines.push(format!("namespace {}", quote(ns)));
                let name = if p.pods.is_everything() {
                    format!("{ns}.pods")
                } else {
                    format!("{ns}.{}", summary(&p.pods))
                };
                (name, FileKey::Namespace(ns.clone()))
            }
            Namespaces::Selected(s) => {
                predicates(s, true, &mut lines);
                let name = match (s.is_everything(), p.pods.is_everything()) {
                    (true, true) => "all-pods".to_string(),
                    (true, false) => format!("all-ns.{}", summary(&p.pods)),
                    (false, true) => format!("ns.{}", summary(s)),
                    (false, false) => format!("ns.{}.pods.{}", summary(s), summary(&p.pods)),
                };
                (name, FileKey::Cluster)
            }
        };
        predicates(&p.pods, false, &mut lines);
        if lines.is_empty() {
            lines.push("kind \"pod\"".into());
        }
        let body = indent(&lines);
        self.filter(format!("pods\n{body}"), safe_name(&name), file, body, true)
    }

    fn cluster_pred(&self, lines: &mut Vec<String>) {
        if let Some(c) = &self.opts.cluster {
            lines.push(format!("cluster {}", quote(c)));
        }
    }

    /// References to a peer (two for `networks`: in and outside the cluster).
    fn peer(&mut self, p: &Peer) -> Vec<String> {
        match p {
            Peer::Any => vec!["any".into()],
            Peer::Pods(pods) => vec![self.pods(pods)],
            Peer::Block { nets, written } => vec![self.external(format!("block.{written}"), nets)],
            Peer::Networks(nets) => {
                let written = nets
                    .iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(",");
                let outside = self.external(format!("net.{written}"), nets);
                let mut lines = vec!["kind \"pod\" \"node\"".to_string()];
                self.cluster_pred(&mut lines);
                lines.push(format!(
                    "address {}",
                    nets.iter()
                        .map(|n| quote(&n.to_string()))
                        .collect::<Vec<_>>()
                        .join(" ")
                ));
                let body = indent(&lines);
                let inside = self.filter(
                    format!("addr\n{body}"),
                    safe_name(&format!("net.{written}.in-cluster")),
                    FileKey::Cluster,
                    body,
                    false,
                );
                vec![outside, inside]
            }
            Peer::Nodes(s) => {
                let mut lines = vec!["kind \"node\"".to_string()];
                self.cluster_pred(&mut lines);
                predicates(s, false, &mut lines);
                let name = if s.is_everything() {
                    "all-nodes".to_string()
                } else {
                    format!("nodes.{}", summary(s))
                };
                let body = indent(&lines);
                vec![self.filter(
                    format!("nodes\n{body}"),
                    safe_name(&name),
                    FileKey::Cluster,
                    body,
                    false,
                )]
            }
        }
    }

    fn external(&mut self, name: String, nets: &[IpNet]) -> String {
        let key = nets
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(" ");
        if let Some(d) = self.externals.get(&key) {
            return format!("external:{}", d.name);
        }
        let name = unique(safe_name(&name), &mut self.external_names);
        let cidrs: Vec<String> = nets.iter().map(|n| quote(&n.to_string())).collect();
        // Long lists one prefix per line.
        let body = if cidrs.len() <= 4 {
            format!("    cidr {}\n", cidrs.join(" "))
        } else {
            cidrs.iter().map(|c| format!("    cidr {c}\n")).collect()
        };
        self.externals.insert(
            key,
            Def {
                name: name.clone(),
                file: FileKey::Cluster,
                text: format!("external {} {{\n{body}}}\n", quote(&name)),
            },
        );
        format!("external:{name}")
    }

    /// The policies of one rule, into `file`'s absolute or default group.
    pub(crate) fn rule(&mut self, r: &Rule, file: &str, absolute: bool) {
        let subject = self.pods(&r.subject);
        let ports: Vec<Option<&PortGroup>> = if r.ports.is_empty() {
            vec![None]
        } else {
            r.ports.iter().map(Some).collect()
        };
        let mut count = 0;
        let mut planned = Vec::new();
        for (peer, path) in &r.peers {
            for peer_ref in self.peer(peer) {
                for g in &ports {
                    planned.push((peer_ref.clone(), path.clone(), *g));
                }
            }
        }
        let many = planned.len() > 1;
        for (peer_ref, path, g) in planned {
            let (from, to) = match r.dir {
                Dir::Ingress => (peer_ref.as_str(), subject.as_str()),
                Dir::Egress => (subject.as_str(), peer_ref.as_str()),
            };
            let mut tail = format!("from={} to={}", quote(from), quote(to));
            if let Some(g) = g {
                let proto = match g.proto {
                    Some(Proto::Tcp) => "tcp",
                    Some(Proto::Udp) => "udp",
                    Some(Proto::Sctp) => "sctp",
                    _ => "any",
                };
                let _ = write!(tail, " proto={}", quote(proto));
                let ports = ports_value(&g.numbers, &g.names);
                if !ports.is_empty() {
                    let _ = write!(tail, " ports={}", quote(&ports));
                }
            }
            let _ = write!(tail, " side={}", quote(r.dir.word()));
            let what = match &r.source.rule_name {
                Some(n) => format!("{}, {} {:?}", r.source.object, r.source.rule, n),
                None => format!("{}, {}", r.source.object, r.source.rule),
            };
            // The peer, when the rule names several or one by index (`from[1]`).
            let peer = path
                .strip_prefix(r.source.rule.as_str())
                .unwrap_or(&path)
                .trim_start_matches('.');
            let peer_note = if peer.contains('[') {
                format!(", {peer}")
            } else {
                String::new()
            };
            let source_rule = if peer.contains('[') {
                format!("{}.{peer}", r.source.rule)
            } else {
                r.source.rule.clone()
            };
            let key = (absolute, format!("{} {tail}", r.verdict.word()));
            if let Some((wfile, wabs, at, id)) = self.written.get(&key).cloned() {
                // The same policy again (two rules saying one thing): one is enough.
                let group = self.groups.get_mut(&wfile).expect("written");
                let lines = if wabs { &mut group.0 } else { &mut group.1 };
                lines[at].push_str(&comment_text(&format!("; also {what}{peer_note}")));
                self.report.push(PolicyReport {
                    id,
                    file: wfile,
                    source_file: r.source.file.clone(),
                    source_object: r.source.object.clone(),
                    source_rule,
                });
                continue;
            }
            let name = if many {
                format!("{}.{count}", r.stem)
            } else {
                r.stem.clone()
            };
            count += 1;
            let name = unique(safe_name(&name), &mut self.policy_names);
            let id = format!("{}/{name}", self.opts.scope);
            let group = self.groups.entry(file.to_string()).or_default();
            let target = if absolute { &mut group.0 } else { &mut group.1 };
            self.written
                .insert(key, (file.to_string(), absolute, target.len(), id.clone()));
            target.push(format!(
                "// {}",
                comment_text(&format!("{what}{peer_note}"))
            ));
            target.push(format!("{} {} {tail}", r.verdict.word(), quote(&name)));
            self.report.push(PolicyReport {
                id,
                file: file.to_string(),
                source_file: r.source.file.clone(),
                source_object: r.source.object.clone(),
                source_rule,
            });
        }
    }

    /// A namespace's isolation: pods a NetworkPolicy selects for a direction
    /// are denied what its rules (in this file, before) do not allow.
    pub(crate) fn isolation(&mut self, ns: &str, all: &[&Isolation]) {
        let file = namespace_file(ns);
        for dir in [Dir::Ingress, Dir::Egress] {
            let subjects: Vec<&Isolation> = all
                .iter()
                .copied()
                .filter(|i| i.dirs.contains(&dir))
                .collect();
            if subjects.is_empty() {
                continue;
            }
            let mut refs: BTreeSet<String> =
                subjects.iter().map(|i| self.pods(&i.subject)).collect();
            // A policy for every pod of the namespace covers the others.
            if let Some(all) = subjects.iter().find(|i| i.subject.pods.is_everything()) {
                refs = BTreeSet::from([self.pods(&all.subject)]);
            }
            let target = if refs.len() == 1 {
                refs.into_iter().next().expect("one")
            } else {
                let body: String = refs
                    .iter()
                    .map(|r| {
                        format!(
                            "        matches {}\n",
                            quote(r.trim_start_matches("filter:"))
                        )
                    })
                    .collect();
                let body = format!("    any {{\n{body}    }}\n");
                self.filter(
                    format!("isolated\n{ns}\n{}", dir.word()),
                    format!("{ns}.isolated-{}", dir.word()),
                    FileKey::Namespace(ns.to_string()),
                    body,
                    true,
                )
            };
            let sources: Vec<&str> = subjects.iter().map(|i| i.source.as_str()).collect();
            let name = unique(
                format!("{ns}.isolate-{}", dir.word()),
                &mut self.policy_names,
            );
            let (from, to) = match dir {
                Dir::Ingress => ("any".to_string(), target),
                Dir::Egress => (target, "any".to_string()),
            };
            let note = format!(
                "// Isolated for {} by {}: what no rule above allows is denied.",
                dir.word(),
                sources.join(", ")
            );
            let line = format!(
                "deny {} from={} to={} side={}",
                quote(&name),
                quote(&from),
                quote(&to),
                quote(dir.word())
            );
            self.report.push(PolicyReport {
                id: format!("{}/{name}", self.opts.scope),
                file: file.clone(),
                source_file: String::new(),
                source_object: sources.join(", "),
                source_rule: format!("{} isolation", dir.word()),
            });
            let group = self.groups.entry(file.clone()).or_default();
            group.1.push(comment_text(&note));
            group.1.push(line);
        }
    }

    /// The files, unformatted: (path, text).
    pub(crate) fn files(self, namespaces: &[String]) -> Vec<(String, String)> {
        let scope = quote(&self.opts.scope);
        let mut files: BTreeMap<String, String> = BTreeMap::new();
        let mut cluster = String::from(
            "// Kubernetes network policies translated by `ringfence import k8s`.\n\
             // Every pod is in this scope; what no policy decides is allowed, as in\n\
             // Kubernetes. Administrator policies are absolute, by priority; each\n\
             // namespace's NetworkPolicies (10-ns-*.kdl) and the baseline\n\
             // (90-baseline.kdl) are default policies, in that order.\n",
        );
        let _ = write!(cluster, "scope {scope} {{\n    query {{\n");
        if let Some(c) = &self.opts.cluster {
            let _ = writeln!(cluster, "        cluster {}", quote(c));
        }
        cluster.push_str(
            "        kind \"pod\"\n    }\n    catch-all ingress=\"allow\" egress=\"allow\"\n}\n",
        );
        files.insert(CLUSTER_FILE.to_string(), cluster);
        let header = |ns: &str| {
            format!("// Namespace {ns}: its NetworkPolicies and the pods policies name in it.\n")
        };
        for ns in namespaces {
            files.insert(namespace_file(ns), header(ns));
        }
        if self.groups.contains_key(BASELINE_FILE) {
            files.insert(
                BASELINE_FILE.to_string(),
                "// The baseline tier: for what no administrator policy decided and no\n\
                 // NetworkPolicy isolates.\n"
                    .to_string(),
            );
        }
        // Externals then filters, each by name.
        let mut externals: Vec<Def> = self.externals.into_values().collect();
        externals.sort_by(|a, b| a.name.cmp(&b.name));
        let mut filters: Vec<Def> = self.filters.into_values().collect();
        filters.sort_by(|a, b| a.name.cmp(&b.name));
        let defs: Vec<(FileKey, String)> = externals
            .into_iter()
            .chain(filters)
            .map(|d| (d.file, d.text))
            .collect();
        for (key, text) in defs {
            let (path, head) = match key {
                FileKey::Cluster => (CLUSTER_FILE.to_string(), String::new()),
                FileKey::Namespace(ns) => (namespace_file(&ns), header(&ns)),
            };
            let f = files.entry(path).or_insert(head);
            f.push('\n');
            f.push_str(&text);
        }
        for (path, (absolute, default)) in self.groups {
            let f = files.entry(path).or_default();
            let _ = write!(f, "\npolicies scope={scope} {{\n");
            for (name, lines) in [("absolute", absolute), ("default", default)] {
                if lines.is_empty() {
                    continue;
                }
                let _ = writeln!(f, "    {name} {{");
                for l in lines {
                    let _ = writeln!(f, "        {l}");
                }
                f.push_str("    }\n");
            }
            f.push_str("}\n");
        }
        files.into_iter().collect()
    }
}

fn indent(lines: &[String]) -> String {
    lines.iter().map(|l| format!("    {l}\n")).collect()
}

/// `name`, or `name-2`, `name-3`… if taken.
fn unique(name: String, taken: &mut HashSet<String>) -> String {
    if taken.insert(name.clone()) {
        return name;
    }
    for k in 2.. {
        let n = format!("{name}-{k}");
        if taken.insert(n.clone()) {
            return n;
        }
    }
    unreachable!("some suffix is free")
}
