//! Exclusion filters (`--exclude FILE`): conversations that must never
//! become policy, such as kubelet probes from the nodes or DNS to kube-dns.
//!
//! ```kdl
//! exclude "kubelet-probes" {
//!     consumer {
//!         kind "node"
//!     }
//!     proto "tcp"
//! }
//! exclude "dns" {
//!     provider {
//!         namespace "kube-system"
//!         label "k8s-app" "kube-dns"
//!     }
//!     ports 53
//! }
//! ```
//!
//! A missing field is a wildcard. `consumer` and `provider` take the
//! predicates of inventory filters (`schema/docs/discovery.md`); matching
//! flows are counted per rule and never become policy.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use kdl::{KdlDocument, KdlNode, KdlValue};
use ringfence_inventory::model::{Labels, Proto};
use ringfence_inventory::names::Glob;
use ringfence_schema::net::{PortRange, normalize_ports, ports_match};

use crate::book::{Book, ObjId, ObjKind};

/// A problem in an exclusion file, with its position.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}:{line}:{column}: {message}", path = path.display())]
pub struct ExcludeError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong and what is expected.
    pub message: String,
}

/// The most rules a file may hold (one bit each in the per-object masks).
pub(crate) const MAX_RULES: usize = 64;

/// The kinds a `kind` predicate names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Pod,
    Service,
    Node,
    External,
}

#[derive(Clone, Debug, PartialEq)]
enum Pred {
    Cluster(Vec<String>),
    Namespace(Vec<String>),
    Label { key: String, values: Vec<String> },
    Kind(Vec<Kind>),
    Name(Vec<Glob>),
    Node(Vec<Glob>),
    Address(Vec<IpNet>),
}

#[derive(Clone, Debug, PartialEq)]
enum Query {
    All(Vec<Query>),
    Any(Vec<Query>),
    Not(Vec<Query>),
    Pred(Pred),
}

/// One rule.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Rule {
    pub(crate) name: String,
    consumer: Option<Query>,
    provider: Option<Query>,
    protos: Vec<Proto>,
    ports: Vec<PortRange>,
}

/// The rules of an exclusion file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exclusions {
    pub(crate) rules: Vec<Rule>,
}

/// What a predicate looks at.
struct Subject<'a> {
    kind: Kind,
    cluster: Option<&'a str>,
    namespace: Option<&'a str>,
    labels: Option<&'a Labels>,
    ns_labels: Option<&'a Labels>,
    names: [Option<&'a str>; 2],
    node: Option<&'a str>,
    addresses: &'a [IpAddr],
}

impl Exclusions {
    /// Parse an exclusion file's text; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Exclusions, ExcludeError> {
        let at = |offset: usize, message: String| {
            let before = &text[..offset.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            ExcludeError {
                path: path.to_owned(),
                line,
                column,
                message,
            }
        };
        let parsed =
            ringfence_intent::limits::parse_with(text, KdlDocument::parse).map_err(|r| {
                use ringfence_intent::limits::Refusal;
                match r {
                    Refusal::TooDeep { offset, .. } => at(
                        offset,
                        format!(
                            "blocks nested more than {} deep",
                            ringfence_intent::limits::MAX_DEPTH
                        ),
                    ),
                    Refusal::TooLarge { .. } => at(0, "too large to parse safely".into()),
                }
            })?;
        let doc = parsed.map_err(|e| {
            let d = e.diagnostics.first();
            let offset = d.map_or(0, |d| d.span.offset());
            let msg = d
                .and_then(|d| d.message.clone().or(d.label.clone()))
                .unwrap_or_else(|| "not a KDL document".into());
            let help = d
                .and_then(|d| d.help.clone())
                .map(|h| format!(" ({h})"))
                .unwrap_or_default();
            at(offset, format!("{msg}{help}"))
        })?;
        let mut rules: Vec<Rule> = Vec::new();
        for node in doc.nodes() {
            let here = |m: String| at(node.span().offset(), m);
            if node.name().value() != "exclude" {
                return Err(here(format!(
                    "unknown node `{}`: an exclusion file holds `exclude \"NAME\" {{ … }}` nodes",
                    node.name().value()
                )));
            }
            let name = single_string(node).map_err(&here)?;
            if rules.iter().any(|r| r.name == name) {
                return Err(here(format!("exclusion `{name}` is declared twice")));
            }
            let mut rule = Rule {
                name,
                consumer: None,
                provider: None,
                protos: Vec::new(),
                ports: Vec::new(),
            };
            for child in node.children().map(|d| d.nodes()).unwrap_or_default() {
                let here = |m: String| at(child.span().offset(), m);
                match child.name().value() {
                    side @ ("consumer" | "provider") => {
                        if !child.entries().is_empty() {
                            return Err(here(format!(
                                "`{side}` takes a block of predicates, not values"
                            )));
                        }
                        let q = Query::All(parse_preds(child, &at)?);
                        let slot = if side == "consumer" {
                            &mut rule.consumer
                        } else {
                            &mut rule.provider
                        };
                        if slot.replace(q).is_some() {
                            return Err(here(format!("`{side}` is given twice")));
                        }
                    }
                    "proto" => {
                        for v in strings(child).map_err(&here)? {
                            let p: Proto = v.parse().map_err(&here)?;
                            if p != Proto::Any {
                                rule.protos.push(p);
                            }
                        }
                    }
                    "ports" => rule.ports.extend(ports(child).map_err(&here)?),
                    other => {
                        return Err(here(format!(
                            "unknown field `{other}` in exclusion `{}` (expected consumer, provider, proto or ports)",
                            rule.name
                        )));
                    }
                }
            }
            normalize_ports(&mut rule.ports);
            rules.push(rule);
        }
        if rules.len() > MAX_RULES {
            return Err(at(
                doc.nodes()[MAX_RULES].span().offset(),
                format!("at most {MAX_RULES} exclusions per file"),
            ));
        }
        Ok(Exclusions { rules })
    }

    /// Read and parse an exclusion file.
    pub fn load(path: &Path) -> Result<Exclusions, ExcludeError> {
        let text = std::fs::read_to_string(path).map_err(|e| ExcludeError {
            path: path.to_owned(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        })?;
        Exclusions::parse(path, &text)
    }

    /// Rule names, in file order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.name.as_str())
    }

    /// For every object of the book: the rules whose consumer and whose
    /// provider side it matches, one bit per rule.
    pub(crate) fn masks(&self, book: &Book<'_>) -> Vec<(u64, u64)> {
        (0..book.objects.len() as ObjId)
            .map(|o| {
                let s = subject(book, o);
                self.side_masks(&s)
            })
            .collect()
    }

    /// The masks of an address outside the inventory.
    pub(crate) fn external_masks(&self, ip: IpAddr) -> (u64, u64) {
        if self.rules.is_empty() {
            return (0, 0);
        }
        let addrs = [ip];
        let s = Subject {
            kind: Kind::External,
            cluster: None,
            namespace: None,
            labels: None,
            ns_labels: None,
            names: [None, None],
            node: None,
            addresses: &addrs,
        };
        self.side_masks(&s)
    }

    fn side_masks(&self, s: &Subject<'_>) -> (u64, u64) {
        let (mut c, mut p) = (0u64, 0u64);
        for (i, r) in self.rules.iter().enumerate() {
            if r.consumer.as_ref().is_none_or(|q| q.matches(s)) {
                c |= 1 << i;
            }
            if r.provider.as_ref().is_none_or(|q| q.matches(s)) {
                p |= 1 << i;
            }
        }
        (c, p)
    }

    /// The first rule that excludes a flow whose consumer and provider
    /// matched `cons` and `prov`. Ports match the destination port before
    /// or after a service's translation.
    pub(crate) fn first_match(
        &self,
        cons: u64,
        prov: u64,
        proto: Proto,
        ports: [u16; 2],
    ) -> Option<usize> {
        let mut m = cons & prov;
        while m != 0 {
            let i = m.trailing_zeros() as usize;
            m &= m - 1;
            let r = &self.rules[i];
            if (r.protos.is_empty() || r.protos.contains(&proto))
                && (r.ports.is_empty()
                    || (proto.has_ports()
                        && ports
                            .iter()
                            .any(|&p| p != 0 && ports_match(&r.ports, Some(p)))))
            {
                return Some(i);
            }
        }
        None
    }
}

fn subject<'a>(book: &Book<'a>, o: ObjId) -> Subject<'a> {
    let obj = &book.objects[o as usize];
    let c = &book.inv.clusters[obj.cluster];
    let ns_labels = |ns: &str| {
        c.namespaces
            .binary_search_by(|n| n.name.as_str().cmp(ns))
            .ok()
            .map(|i| &c.namespaces[i].labels)
    };
    match obj.kind {
        ObjKind::Pod => {
            let p = &c.pods[obj.index];
            Subject {
                kind: Kind::Pod,
                cluster: Some(&c.name),
                namespace: Some(&p.namespace),
                labels: Some(&p.labels),
                ns_labels: ns_labels(&p.namespace),
                names: [Some(&p.name), p.owner.as_ref().map(|o| o.name.as_str())],
                node: p.node.as_deref(),
                addresses: &p.ips,
            }
        }
        ObjKind::Service => {
            let s = &c.services[obj.index];
            Subject {
                kind: Kind::Service,
                cluster: Some(&c.name),
                namespace: Some(&s.namespace),
                labels: Some(&s.labels),
                ns_labels: ns_labels(&s.namespace),
                names: [Some(&s.name), None],
                node: None,
                addresses: &s.cluster_ips,
            }
        }
        ObjKind::Node => {
            let n = &c.nodes[obj.index];
            Subject {
                kind: Kind::Node,
                cluster: Some(&c.name),
                namespace: None,
                labels: Some(&n.labels),
                ns_labels: None,
                names: [Some(&n.name), None],
                node: Some(&n.name),
                addresses: &n.addresses,
            }
        }
    }
}

impl Query {
    fn matches(&self, s: &Subject<'_>) -> bool {
        match self {
            Query::All(qs) => qs.iter().all(|q| q.matches(s)),
            Query::Any(qs) => qs.iter().any(|q| q.matches(s)),
            Query::Not(qs) => !qs.iter().all(|q| q.matches(s)),
            Query::Pred(p) => p.matches(s),
        }
    }
}

impl Pred {
    fn matches(&self, s: &Subject<'_>) -> bool {
        let any = |vals: &[String], v: Option<&str>| v.is_some_and(|v| vals.iter().any(|x| x == v));
        match self {
            Pred::Cluster(v) => any(v, s.cluster),
            Pred::Namespace(v) => any(v, s.namespace),
            Pred::Label { key, values } => {
                let (map, key) = match key.strip_prefix("ns:") {
                    Some(k) => (s.ns_labels, k),
                    None => (s.labels, key.as_str()),
                };
                map.and_then(|m| m.get(key))
                    .is_some_and(|v| values.is_empty() || values.contains(v))
            }
            Pred::Kind(k) => k.contains(&s.kind),
            Pred::Name(globs) => s
                .names
                .iter()
                .flatten()
                .any(|n| globs.iter().any(|g| g.matches(n))),
            Pred::Node(globs) => s.node.is_some_and(|n| globs.iter().any(|g| g.matches(n))),
            Pred::Address(nets) => s
                .addresses
                .iter()
                .any(|a| nets.iter().any(|n| n.contains(a))),
        }
    }
}

fn parse_preds(
    node: &KdlNode,
    at: &impl Fn(usize, String) -> ExcludeError,
) -> Result<Vec<Query>, ExcludeError> {
    let mut out = Vec::new();
    for child in node.children().map(|d| d.nodes()).unwrap_or_default() {
        let here = |m: String| at(child.span().offset(), m);
        let q = match child.name().value() {
            "all" => Query::All(parse_preds(child, at)?),
            "any" => Query::Any(parse_preds(child, at)?),
            "not" => Query::Not(parse_preds(child, at)?),
            "cluster" => Query::Pred(Pred::Cluster(nonempty(child).map_err(&here)?)),
            "namespace" => Query::Pred(Pred::Namespace(nonempty(child).map_err(&here)?)),
            "label" => {
                let mut v = nonempty(child).map_err(&here)?;
                let key = v.remove(0);
                Query::Pred(Pred::Label { key, values: v })
            }
            "kind" => {
                let kinds = nonempty(child)
                    .map_err(&here)?
                    .iter()
                    .map(|k| match k.as_str() {
                        "pod" => Ok(Kind::Pod),
                        "service" => Ok(Kind::Service),
                        "node" => Ok(Kind::Node),
                        "external" => Ok(Kind::External),
                        other => Err(here(format!(
                            "unknown kind `{other}` (expected pod, service, node or external)"
                        ))),
                    })
                    .collect::<Result<_, _>>()?;
                Query::Pred(Pred::Kind(kinds))
            }
            "name" => Query::Pred(Pred::Name(globs(child).map_err(&here)?)),
            "node" => Query::Pred(Pred::Node(globs(child).map_err(&here)?)),
            "address" => {
                let nets = nonempty(child)
                    .map_err(&here)?
                    .iter()
                    .map(|a| {
                        a.parse::<IpNet>()
                            .or_else(|_| a.parse::<IpAddr>().map(IpNet::from))
                            .map_err(|_| here(format!("`{a}` is not an address or prefix")))
                    })
                    .collect::<Result<_, _>>()?;
                Query::Pred(Pred::Address(nets))
            }
            other => {
                return Err(here(format!(
                    "unknown predicate `{other}` (expected cluster, namespace, label, kind, name, node, address, all, any or not)"
                )));
            }
        };
        out.push(q);
    }
    Ok(out)
}

fn single_string(node: &KdlNode) -> Result<String, String> {
    match node.entries() {
        [e] if e.name().is_none() => e
            .value()
            .as_string()
            .map(str::to_owned)
            .ok_or_else(|| format!("`{}` takes a name string", node.name().value())),
        _ => Err(format!(
            "`{}` takes exactly one name: exclude \"NAME\" {{ … }}",
            node.name().value()
        )),
    }
}

fn strings(node: &KdlNode) -> Result<Vec<String>, String> {
    node.entries()
        .iter()
        .map(|e| {
            if e.name().is_some() {
                return Err(format!(
                    "`{}` takes values, not properties",
                    node.name().value()
                ));
            }
            match e.value() {
                KdlValue::String(s) => Ok(s.clone()),
                KdlValue::Integer(i) => Ok(i.to_string()),
                other => Err(format!(
                    "`{}`: `{other}` is not a string",
                    node.name().value()
                )),
            }
        })
        .collect()
}

fn nonempty(node: &KdlNode) -> Result<Vec<String>, String> {
    let v = strings(node)?;
    if v.is_empty() {
        return Err(format!(
            "`{}` needs at least one value",
            node.name().value()
        ));
    }
    Ok(v)
}

/// At least one name glob, each compiled once here.
fn globs(node: &KdlNode) -> Result<Vec<Glob>, String> {
    Ok(nonempty(node)?.iter().map(|g| Glob::new(g)).collect())
}

fn ports(node: &KdlNode) -> Result<Vec<PortRange>, String> {
    let mut out = Vec::new();
    for v in nonempty(node)? {
        for part in v.split(',') {
            out.push(part.trim().parse::<PortRange>()?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::tests::shop;

    const FILE: &str = r#"
// Kubelet probes and DNS are not application traffic.
exclude "probes" {
    consumer {
        kind "node"
    }
    proto "tcp"
}
exclude "dns" {
    provider {
        any {
            label "k8s-app" "kube-dns"
            name "cart"
        }
    }
    ports "53,8080"
}
exclude "scanner" {
    consumer {
        address "198.51.100.0/24"
    }
}
"#;

    #[test]
    fn parses_rules_and_matches_sides() {
        let inv = shop();
        let book = Book::new(&inv);
        let ex = Exclusions::parse(Path::new("ex.kdl"), FILE).unwrap();
        assert_eq!(ex.names().collect::<Vec<_>>(), ["probes", "dns", "scanner"]);
        let masks = ex.masks(&book);
        let obj = |name: &str| {
            (0..book.objects.len() as ObjId)
                .find(|o| book.obj_name(*o) == name)
                .unwrap() as usize
        };
        // A node matches the probe rule as consumer; everything matches it as provider.
        assert_eq!(masks[obj("node worker-1")].0 & 1, 1);
        assert_eq!(masks[obj("shop/frontend-5f-a")].0 & 1, 0);
        // The cart pod matches `name "cart"` through its owner; the service by its name.
        assert_eq!(masks[obj("shop/cart-7d-a")].1 & 2, 2);
        assert_eq!(masks[obj("service shop/cart")].1 & 2, 2);
        assert_eq!(masks[obj("shop/redis-0")].1 & 2, 0);
        let (c, p) = ex.external_masks("198.51.100.9".parse().unwrap());
        assert_eq!((c & 4, p & 4), (4, 4));
        assert_eq!(ex.external_masks("203.0.113.9".parse().unwrap()).0 & 4, 0);
        // Protocol and ports decide last.
        assert_eq!(ex.first_match(1, 1, Proto::Tcp, [10250, 0]), Some(0));
        assert_eq!(ex.first_match(1, 1, Proto::Udp, [10250, 0]), None);
        assert_eq!(ex.first_match(2, 2, Proto::Udp, [53, 0]), Some(1));
        assert_eq!(ex.first_match(2, 2, Proto::Tcp, [80, 8080]), Some(1));
        assert_eq!(ex.first_match(2, 2, Proto::Tcp, [80, 0]), None);
        assert_eq!(ex.first_match(2, 2, Proto::Icmp, [0, 0]), None);
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = |text: &str| {
            Exclusions::parse(Path::new("ex.kdl"), text)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e("exclude \"a\" {\n    proto \"tcp\"\n    port 53\n}\n"),
            "ex.kdl:3:5: unknown field `port` in exclusion `a` (expected consumer, provider, proto or ports)"
        );
        assert_eq!(
            e("exclude \"a\" {\n  consumer {\n    kind \"vm\"\n  }\n}"),
            "ex.kdl:3:5: unknown kind `vm` (expected pod, service, node or external)"
        );
        assert!(e("exclude \"a\" { ports \"90-80\" }").contains("reversed"));
        assert!(e("exclude \"a\" { proto \"gre\" }").contains("unknown protocol `gre`"));
        assert!(
            e("exclude \"a\"\nexclude \"a\"")
                .starts_with("ex.kdl:2:1: exclusion `a` is declared twice")
        );
        assert!(e("filter \"x\"").contains("unknown node `filter`"));
        assert!(e("exclude {").starts_with("ex.kdl:1:"));
        assert!(
            e("exclude \"a\" { consumer { address \"10.0.0.0/33\" } }").contains("not an address")
        );
    }
}
