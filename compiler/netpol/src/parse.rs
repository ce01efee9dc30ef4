//! Reading policies from manifest objects, validated as the Kubernetes API
//! server validates them (an object it would refuse is refused here too),
//! and refusing what has no exact translation.

use std::collections::BTreeMap;

use ipnet::IpNet;
use ringfence_intent::model::{PortRange, Proto, port_name_problem};
use ringfence_inventory::InventoryError;
use ringfence_inventory::fields::{Field, Object};
use ringfence_inventory::manifests::Manifest;
use serde_json::Value;

use crate::model::*;
use crate::problem::Problem;

/// The label the API server puts on every namespace (its name).
pub(crate) const NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// What an object must be, for values of the wrong type.
const HELP: &str = "write the object as the Kubernetes API defines it";

/// The API groups read (objects of other groups with these kinds are not ours).
const NETWORKING: &str = "networking.k8s.io/";
const POLICY_API: &str = "policy.networking.k8s.io/";

type R<T> = Result<T, Problem>;

fn problem(e: InventoryError) -> Problem {
    Problem::from_inventory(&e)
        .into_iter()
        .next()
        .expect("one problem")
}

fn err(f: &Field<'_>, message: impl Into<String>, help: impl Into<String>) -> Problem {
    problem(f.error(message, help))
}

/// Which policy kind an object is, if it is one this crate reads.
pub(crate) fn policy_kind(m: &Manifest) -> Option<&'static str> {
    let api = m.api_version();
    match m.kind() {
        "NetworkPolicy" if api.starts_with(NETWORKING) => Some("NetworkPolicy"),
        "AdminNetworkPolicy" if api.starts_with(POLICY_API) => Some("AdminNetworkPolicy"),
        "BaselineAdminNetworkPolicy" if api.starts_with(POLICY_API) => {
            Some("BaselineAdminNetworkPolicy")
        }
        "ClusterNetworkPolicy" if api.starts_with(POLICY_API) => Some("ClusterNetworkPolicy"),
        _ => None,
    }
}

/// Read every policy object; every problem of every object is reported.
pub(crate) fn read(objects: &[Manifest]) -> Result<Policies, Vec<Problem>> {
    let mut out = Policies::default();
    let mut problems = Vec::new();
    let mut np_names: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut cluster_names: BTreeMap<(&str, String), String> = BTreeMap::new();
    for m in objects {
        let Some(kind) = policy_kind(m) else { continue };
        let namespaced = kind == "NetworkPolicy";
        let object = Object {
            file: &m.file,
            name: m.describe(namespaced),
            help: HELP,
        };
        let root = object.root(&m.value);
        let name = match root
            .at("metadata.name")
            .required_str("every object has a name")
        {
            Ok(n) => n.to_owned(),
            Err(e) => {
                problems.push(problem(e));
                continue;
            }
        };
        // Names are unique per kind (and namespace): a second one would replace the first.
        let seen = if namespaced {
            let ns = m.namespace().unwrap_or("default").to_owned();
            np_names.insert((ns, name.clone()), m.file.clone())
        } else {
            cluster_names.insert((kind, name.clone()), m.file.clone())
        };
        if let Some(first) = seen {
            problems.push(Problem {
                file: m.file.clone(),
                object: object.name.clone(),
                field: "metadata.name".into(),
                message: format!("is used by another {kind} too (in {first})"),
                help: "the API keeps one object per name: remove or rename one of them".into(),
            });
            continue;
        }
        let read = match kind {
            "NetworkPolicy" => network_policy(m, &root, &name, &mut out),
            _ => cluster_policy(m, kind, &root, &name).map(|c| out.cluster.push(c)),
        };
        if let Err(p) = read {
            problems.extend(p);
        }
    }
    problems.extend(check_priorities(&out.cluster));
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Two policies of one tier with one priority decide in an undefined order
/// where they overlap; at most one BaselineAdminNetworkPolicy exists.
fn check_priorities(cluster: &[Cluster]) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut seen: BTreeMap<(Tier, Option<i64>), &Cluster> = BTreeMap::new();
    for c in cluster {
        if let Some(first) = seen.insert((c.tier, c.priority), c) {
            let (message, help) = match c.priority {
                Some(p) => (
                    format!("has priority {p}, as {} does", first.object),
                    "policies of one tier with one priority decide in no defined order where \
                     they overlap: give each its own priority",
                ),
                None => (
                    format!(
                        "is a second BaselineAdminNetworkPolicy ({} is one)",
                        first.object
                    ),
                    "a cluster has at most one (named `default`): merge their rules",
                ),
            };
            out.push(Problem {
                file: c.file.clone(),
                object: c.object.clone(),
                field: if c.priority.is_some() {
                    "spec.priority".into()
                } else {
                    String::new()
                },
                message,
                help: help.into(),
            });
        }
    }
    out
}

// ---- NetworkPolicy -------------------------------------------------------

fn network_policy(
    m: &Manifest,
    root: &Field<'_>,
    name: &str,
    out: &mut Policies,
) -> Result<(), Vec<Problem>> {
    let ns = m.namespace().unwrap_or("default").to_owned();
    let object = m.describe(true);
    let spec = root.key("spec");
    let mut problems = Vec::new();
    let subject = Pods {
        namespaces: Namespaces::Own(ns.clone()),
        pods: selector(&spec.key("podSelector")).unwrap_or_else(|p| {
            problems.push(p);
            Selector::default()
        }),
    };
    // policyTypes, or Ingress and (with egress rules) Egress.
    let types_field = spec.key("policyTypes");
    let mut dirs = Vec::new();
    match types_field.value() {
        None => {
            dirs.push(Dir::Ingress);
            if spec.key("egress").items().is_ok_and(|e| !e.is_empty()) {
                dirs.push(Dir::Egress);
            }
        }
        Some(_) => match types_field.items() {
            Err(e) => problems.push(problem(e)),
            Ok(items) => {
                for t in items {
                    match t.str() {
                        Ok(Some("Ingress")) => dirs.push(Dir::Ingress),
                        Ok(Some("Egress")) => dirs.push(Dir::Egress),
                        Ok(other) => problems.push(err(
                            &t,
                            format!("is {:?}", other.unwrap_or("null")),
                            "policy types are Ingress and Egress",
                        )),
                        Err(e) => problems.push(problem(e)),
                    }
                }
            }
        },
    }
    dirs.sort();
    dirs.dedup();
    let made = Made {
        m,
        object: &object,
        stem: format!("{ns}.{name}"),
        subject: &subject,
    };
    for (dir, _, rules) in directions(&spec, &mut problems) {
        // Rules of a direction the policy is not for are ignored by the API.
        if !dirs.contains(&dir) {
            continue;
        }
        for (i, rule) in rules.iter().enumerate() {
            match np_rule(rule, dir, &ns) {
                Ok((peers, ports)) => out
                    .namespaced
                    .entry(ns.clone())
                    .or_default()
                    .push(made.rule(rule, i, dir, (Verdict::Allow, peers, ports, None))),
                Err(p) => problems.extend(p),
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    out.namespaced.entry(ns.clone()).or_default();
    out.isolation.push(Isolation {
        namespace: ns,
        subject,
        dirs,
        source: object,
    });
    Ok(())
}

/// The rule lists of `spec`'s `ingress` and `egress`, each with its field;
/// one that is not a list is a problem, and left out.
fn directions<'v>(
    spec: &Field<'v>,
    problems: &mut Vec<Problem>,
) -> Vec<(Dir, Field<'v>, Vec<Field<'v>>)> {
    let mut out = Vec::new();
    for dir in [Dir::Ingress, Dir::Egress] {
        let field = spec.key(dir.word());
        match field.items() {
            Ok(items) => out.push((dir, field, items)),
            Err(e) => problems.push(problem(e)),
        }
    }
    out
}

/// A rule as read: its verdict, peers (each with its field path), ports and
/// name (administrator policies name their rules).
type ReadRule = (Verdict, Vec<(Peer, String)>, Vec<PortGroup>, Option<String>);

/// What the rules of one policy object share.
struct Made<'a> {
    m: &'a Manifest,
    /// The object, as messages name it.
    object: &'a str,
    /// Stem of its rules' names (`shop.web`, `anp.tenants`).
    stem: String,
    subject: &'a Pods,
}

impl Made<'_> {
    /// Rule `i` of direction `dir`, read from `field`.
    fn rule(&self, field: &Field<'_>, i: usize, dir: Dir, read: ReadRule) -> Rule {
        let (verdict, peers, ports, rule_name) = read;
        Rule {
            source: Source {
                object: self.object.to_owned(),
                file: self.m.file.clone(),
                rule: field.path().to_owned(),
                rule_name,
            },
            stem: format!("{}.{}-{i}", self.stem, dir.word()),
            dir,
            verdict,
            subject: self.subject.clone(),
            peers,
            ports,
        }
    }
}

#[allow(clippy::type_complexity)]
fn np_rule(
    rule: &Field<'_>,
    dir: Dir,
    ns: &str,
) -> Result<(Vec<(Peer, String)>, Vec<PortGroup>), Vec<Problem>> {
    let mut problems = Vec::new();
    let peers_field = rule.key(match dir {
        Dir::Ingress => "from",
        Dir::Egress => "to",
    });
    let mut peers = Vec::new();
    match peers_field.items() {
        Err(e) => problems.push(problem(e)),
        Ok(items) if items.is_empty() => peers.push((Peer::Any, peers_field.path().to_owned())),
        Ok(items) => {
            for p in items {
                match np_peer(&p, ns) {
                    Ok(peer) => peers.push((peer, p.path().to_owned())),
                    Err(e) => problems.push(e),
                }
            }
        }
    }
    let ports = match np_ports(&rule.key("ports")) {
        Ok(p) => p,
        Err(p) => {
            problems.extend(p);
            Vec::new()
        }
    };
    if problems.is_empty() {
        Ok((peers, ports))
    } else {
        Err(problems)
    }
}

fn np_peer(p: &Field<'_>, ns: &str) -> R<Peer> {
    let block = p.key("ipBlock");
    let pods = p.key("podSelector");
    let namespaces = p.key("namespaceSelector");
    if block.value().is_some() {
        if pods.value().is_some() || namespaces.value().is_some() {
            return Err(err(
                p,
                "combines ipBlock with a selector",
                "ipBlock stands alone in a peer: write a separate peer for the selector",
            ));
        }
        return ip_block(&block);
    }
    if pods.value().is_none() && namespaces.value().is_none() {
        return Err(err(
            p,
            "names no peer",
            "a peer has podSelector, namespaceSelector (or both), or ipBlock",
        ));
    }
    let pod_sel = selector(&pods)?;
    let namespaces = if namespaces.value().is_some() {
        by_name(selector(&namespaces)?)
    } else {
        Namespaces::Own(ns.to_owned())
    };
    Ok(Peer::Pods(Pods {
        namespaces,
        pods: pod_sel,
    }))
}

/// A namespace selector naming one namespace by its name label is that namespace.
fn by_name(sel: Selector) -> Namespaces {
    match sel.0.as_slice() {
        [Req::In(k, v)] if k == NAME_LABEL && v.len() == 1 => Namespaces::Own(v[0].clone()),
        _ => Namespaces::Selected(sel),
    }
}

fn cidr(f: &Field<'_>) -> R<IpNet> {
    let s = match f.str() {
        Ok(Some(s)) => s,
        Ok(None) => return Err(err(f, "is missing", "write a prefix such as 10.0.0.0/8")),
        Err(e) => return Err(problem(e)),
    };
    s.parse::<IpNet>().map(|n| n.trunc()).map_err(|_| {
        err(
            f,
            format!("is not a CIDR prefix: {s:?}"),
            "write a prefix such as 10.0.0.0/8 or fd00::/8",
        )
    })
}

fn ip_block(b: &Field<'_>) -> R<Peer> {
    let base = cidr(&b.key("cidr"))?;
    let mut nets = vec![base];
    let mut written = base.to_string();
    let except = b.key("except").items().map_err(problem)?;
    for (i, e) in except.iter().enumerate() {
        let x = cidr(e)?;
        if !(base.contains(&x) && x.prefix_len() > base.prefix_len()) {
            return Err(err(
                e,
                format!("{x} is not strictly inside cidr {base}"),
                "each except prefix must be a part of cidr (and smaller)",
            ));
        }
        written.push_str(if i == 0 { "-except-" } else { "," });
        written.push_str(&x.to_string());
        nets = nets.iter().flat_map(|n| subtract(*n, x)).collect();
    }
    Ok(Peer::Block { nets, written })
}

/// `n` without `x`, as prefixes.
fn subtract(n: IpNet, x: IpNet) -> Vec<IpNet> {
    if !n.contains(&x.network()) && !x.contains(&n.network()) {
        return vec![n];
    }
    if x.contains(&n) {
        return Vec::new();
    }
    // x lies strictly inside n: split n in halves until x is one of them.
    let mut out = Vec::new();
    let mut cur = n;
    while cur != x {
        let halves: Vec<IpNet> = cur
            .subnets(cur.prefix_len() + 1)
            .expect("longer prefix")
            .collect();
        let (inside, outside) = if halves[0].contains(&x.network()) {
            (halves[0], halves[1])
        } else {
            (halves[1], halves[0])
        };
        out.push(outside);
        cur = inside;
    }
    out.sort();
    out
}

fn protocol(f: &Field<'_>) -> R<Proto> {
    match f.str().map_err(problem)? {
        None | Some("TCP") => Ok(Proto::Tcp),
        Some("UDP") => Ok(Proto::Udp),
        Some("SCTP") => Ok(Proto::Sctp),
        Some(other) => Err(err(
            f,
            format!("is {other:?}"),
            "network policies cover TCP, UDP and SCTP",
        )),
    }
}

/// A port number field: 1-65535.
fn port_number(f: &Field<'_>) -> R<u16> {
    match f.int().map_err(problem)? {
        Some(n) if (1..=65535).contains(&n) => Ok(n as u16),
        Some(n) => Err(err(f, format!("is {n}"), "a port is 1-65535")),
        None => Err(err(f, "is missing", "give a port number (1-65535)")),
    }
}

fn port_name(f: &Field<'_>, name: &str) -> R<String> {
    match port_name_problem(name) {
        None => Ok(name.to_owned()),
        Some(why) => Err(err(
            f,
            format!("is {name:?}, which {why}"),
            "a named port is a container port's name (like `http`)",
        )),
    }
}

/// One protocol's ports: (proto, every port, numbers, names).
type ProtoPorts = (Option<Proto>, bool, Vec<PortRange>, Vec<String>);

/// Ports by protocol, in TCP, UDP, SCTP order.
#[derive(Default)]
struct Grouper {
    groups: Vec<ProtoPorts>,
}

impl Grouper {
    fn entry(
        &mut self,
        proto: Option<Proto>,
    ) -> &mut (Option<Proto>, bool, Vec<PortRange>, Vec<String>) {
        let i = match self.groups.iter().position(|g| g.0 == proto) {
            Some(i) => i,
            None => {
                self.groups.push((proto, false, Vec::new(), Vec::new()));
                self.groups.len() - 1
            }
        };
        &mut self.groups[i]
    }

    fn finish(mut self) -> Vec<PortGroup> {
        let rank = |p: &Option<Proto>| match p {
            Some(Proto::Tcp) => 0,
            Some(Proto::Udp) => 1,
            Some(Proto::Sctp) => 2,
            _ => 3,
        };
        self.groups.sort_by_key(|g| rank(&g.0));
        self.groups
            .into_iter()
            .map(|(proto, all, mut numbers, mut names)| {
                if all {
                    numbers.clear();
                    names.clear();
                }
                ringfence_schema::net::normalize_ports(&mut numbers);
                names.sort();
                names.dedup();
                PortGroup {
                    proto,
                    numbers,
                    names,
                }
            })
            .collect()
    }
}

fn np_ports(f: &Field<'_>) -> Result<Vec<PortGroup>, Vec<Problem>> {
    group_ports(f, |g, p| {
        let proto = protocol(&p.key("protocol"))?;
        let port = p.key("port");
        let end = p.key("endPort");
        let no_end = |what: &str| match end.value() {
            Some(_) => Err(err(&end, what, "endPort needs a numeric port")),
            None => Ok(()),
        };
        match port.value() {
            None => {
                no_end("is set without port")?;
                g.entry(Some(proto)).1 = true;
            }
            Some(Value::String(name)) => {
                no_end("is set with a named port")?;
                let name = port_name(&port, name)?;
                g.entry(Some(proto)).3.push(name);
            }
            Some(_) => {
                let start = port_number(&port)?;
                let stop = match end.value() {
                    None => start,
                    Some(_) => match port_number(&end)? {
                        n if n >= start => n,
                        n => {
                            return Err(err(
                                &end,
                                format!("is {n}, below port {start}"),
                                "endPort is the last port of the range: at least port",
                            ));
                        }
                    },
                };
                g.entry(Some(proto)).2.push(PortRange { start, end: stop });
            }
        }
        Ok(())
    })
}

// ---- label selectors -----------------------------------------------------

/// A label selector; absent (or `null`) selects everything.
pub(crate) fn selector(f: &Field<'_>) -> R<Selector> {
    let mut reqs = Vec::new();
    if f.value().is_none() {
        return Ok(Selector::default());
    }
    if !f.value().is_some_and(Value::is_object) {
        return Err(err(
            f,
            "is not an object",
            "a selector has matchLabels and matchExpressions",
        ));
    }
    let labels = f.key("matchLabels");
    for (k, v) in labels.labels().map_err(problem)? {
        label_key(&labels.key(&k), &k)?;
        label_value(&labels.key(&k), &v)?;
        reqs.push(Req::In(k, vec![v]));
    }
    for e in f.key("matchExpressions").items().map_err(problem)? {
        let key = e.key("key");
        let k = key
            .required_str("an expression names a label key")
            .map_err(problem)?;
        label_key(&key, k)?;
        let op = e.key("operator");
        let values = e.key("values");
        let mut vs = Vec::new();
        for v in values.items().map_err(problem)? {
            let s = v.required_str("values are label values").map_err(problem);
            let s = match s {
                Ok(s) => s,
                // An empty value is a value.
                Err(_) if v.str().ok().flatten() == Some("") => "",
                Err(p) => return Err(p),
            };
            label_value(&v, s)?;
            vs.push(s.to_owned());
        }
        vs.sort();
        vs.dedup();
        let k = k.to_owned();
        let needs_values = |what: &str| {
            err(
                &values,
                format!("is empty for operator {what}"),
                format!("{what} needs at least one value"),
            )
        };
        let no_values = |what: &str| {
            err(
                &values,
                format!("is given for operator {what}"),
                format!("{what} takes no values: remove them"),
            )
        };
        reqs.push(match op.str().map_err(problem)? {
            Some("In") if vs.is_empty() => return Err(needs_values("In")),
            Some("In") => Req::In(k, vs),
            Some("NotIn") if vs.is_empty() => return Err(needs_values("NotIn")),
            Some("NotIn") => Req::NotIn(k, vs),
            Some("Exists") if !vs.is_empty() => return Err(no_values("Exists")),
            Some("Exists") => Req::Exists(k),
            Some("DoesNotExist") if !vs.is_empty() => return Err(no_values("DoesNotExist")),
            Some("DoesNotExist") => Req::DoesNotExist(k),
            other => {
                return Err(err(
                    &op,
                    format!("is {:?}", other.unwrap_or("missing")),
                    "operators are In, NotIn, Exists and DoesNotExist",
                ));
            }
        });
    }
    reqs.sort();
    reqs.dedup();
    Ok(Selector(reqs))
}

/// 1-63 bytes, each allowed by `ok`, starting and ending with a letter or digit.
fn label_ok(s: &str, ok: impl Fn(u8) -> bool) -> bool {
    let b = s.as_bytes();
    matches!((b.first(), b.last()), (Some(f), Some(l)) if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric())
        && b.len() <= 63
        && b.iter().all(|&c| ok(c))
}

/// `[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?`, up to 63 characters.
fn label_name_ok(s: &str) -> bool {
    label_ok(s, |c| {
        c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')
    })
}

/// A DNS subdomain: dot-separated lowercase labels, up to 253 characters.
fn dns_subdomain_ok(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|l| {
            label_ok(l, |c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'
            })
        })
}

fn label_key(f: &Field<'_>, k: &str) -> R<()> {
    let ok = match k.split_once('/') {
        Some((prefix, name)) => dns_subdomain_ok(prefix) && label_name_ok(name),
        None => label_name_ok(k),
    };
    if ok {
        Ok(())
    } else {
        Err(err(
            f,
            format!("has label key {k:?}, which is not a valid label key"),
            "a label key is an optional DNS prefix and `/`, then up to 63 letters, digits, \
             `-`, `_` or `.`, starting and ending with a letter or digit",
        ))
    }
}

fn label_value(f: &Field<'_>, v: &str) -> R<()> {
    if v.is_empty() || label_name_ok(v) {
        Ok(())
    } else {
        Err(err(
            f,
            format!("has label value {v:?}, which is not a valid label value"),
            "a label value is empty or up to 63 letters, digits, `-`, `_` or `.`, starting and \
             ending with a letter or digit",
        ))
    }
}

// ---- AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy -

fn cluster_policy(
    m: &Manifest,
    kind: &str,
    root: &Field<'_>,
    name: &str,
) -> Result<Cluster, Vec<Problem>> {
    let spec = root.key("spec");
    let mut problems = Vec::new();
    let mut prio = |f: &Field<'_>| match priority(f) {
        Ok(p) => Some(p),
        Err(e) => {
            problems.push(e);
            Some(0)
        }
    };
    let (tier, priority, prefix, max_rules) = match kind {
        "AdminNetworkPolicy" => (Tier::Admin, prio(&spec.key("priority")), "anp", 100),
        "BaselineAdminNetworkPolicy" => {
            if name != "default" {
                return Err(vec![err(
                    &root.at("metadata.name"),
                    format!("is {name:?}"),
                    "the API only accepts a BaselineAdminNetworkPolicy named `default`",
                )]);
            }
            (Tier::Baseline, None, "banp", 100)
        }
        _ => {
            let t = spec.key("tier");
            let tier = match t.str().map_err(|e| vec![problem(e)])? {
                Some("Admin") => Tier::Admin,
                Some("Baseline") => Tier::Baseline,
                other => {
                    return Err(vec![err(
                        &t,
                        format!("is {:?}", other.unwrap_or("missing")),
                        "a ClusterNetworkPolicy's tier is Admin or Baseline",
                    )]);
                }
            };
            (tier, prio(&spec.key("priority")), "cnp", 25)
        }
    };
    let object = match priority {
        Some(p) => format!("{kind} {name} (priority {p})"),
        None => format!("{kind} {name}"),
    };
    let subject = subject(&spec.key("subject")).unwrap_or_else(|p| {
        problems.push(p);
        Pods {
            namespaces: Namespaces::Selected(Selector::default()),
            pods: Selector::default(),
        }
    });
    let mut rules = Vec::new();
    let made = Made {
        m,
        object: &object,
        stem: format!("{prefix}.{name}"),
        subject: &subject,
    };
    for (dir, field, items) in directions(&spec, &mut problems) {
        if items.len() > max_rules {
            problems.push(err(
                &field,
                format!("has {} rules", items.len()),
                format!("the API allows at most {max_rules} rules per direction"),
            ));
            continue;
        }
        for (i, rule) in items.iter().enumerate() {
            match admin_rule(rule, dir, kind) {
                Ok(read) => rules.push(made.rule(rule, i, dir, read)),
                Err(p) => problems.extend(p),
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Cluster {
        tier,
        priority,
        object,
        file: m.file.clone(),
        rules,
    })
}

fn priority(f: &Field<'_>) -> R<i64> {
    match f.int().map_err(problem)? {
        Some(p) if (0..=1000).contains(&p) => Ok(p),
        Some(p) => Err(err(f, format!("is {p}"), "priorities are 0-1000")),
        None => Err(err(
            f,
            "is missing",
            "give a priority (0-1000, lower first)",
        )),
    }
}

/// `namespaces` or `pods` (exactly one): a subject, or an ingress/egress peer.
fn pods_of(f: &Field<'_>, what: &str) -> R<Option<Pods>> {
    let ns = f.key("namespaces");
    let pods = f.key("pods");
    if ns.value().is_some() {
        return Ok(Some(Pods {
            namespaces: by_name(selector(&ns)?),
            pods: Selector::default(),
        }));
    }
    if pods.value().is_some() {
        for k in ["namespaceSelector", "podSelector"] {
            if pods.key(k).value().is_none() {
                return Err(err(
                    &pods.key(k),
                    "is missing",
                    format!("{what} `pods` has namespaceSelector and podSelector (`{{}}` for all)"),
                ));
            }
        }
        return Ok(Some(Pods {
            namespaces: by_name(selector(&pods.key("namespaceSelector"))?),
            pods: selector(&pods.key("podSelector"))?,
        }));
    }
    Ok(None)
}

/// How many of a peer's fields are set.
fn fields_set(f: &Field<'_>, keys: &[&str]) -> Vec<String> {
    keys.iter()
        .filter(|k| f.key(k).value().is_some())
        .map(|k| k.to_string())
        .collect()
}

/// The one of `keys` that `f` sets; a problem (`sets nothing`, `sets A and
/// B`) with `help` otherwise.
fn one_set<'k>(f: &Field<'_>, keys: &[&'k str], help: &str) -> R<&'k str> {
    let set: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| f.key(k).value().is_some())
        .collect();
    match set[..] {
        [key] => Ok(key),
        [] => Err(err(f, "sets nothing", help)),
        _ => Err(err(f, format!("sets {}", set.join(" and ")), help)),
    }
}

fn subject(f: &Field<'_>) -> R<Pods> {
    let set = fields_set(f, &["namespaces", "pods"]);
    if set.len() != 1 {
        return Err(err(
            f,
            if set.is_empty() {
                "selects nothing".to_string()
            } else {
                format!("sets {}", set.join(" and "))
            },
            "a subject has exactly one of `namespaces` and `pods`",
        ));
    }
    Ok(pods_of(f, "a subject's")?.expect("one is set"))
}

fn admin_rule(rule: &Field<'_>, dir: Dir, kind: &str) -> Result<ReadRule, Vec<Problem>> {
    let one = |p: Problem| vec![p];
    let name = rule
        .key("name")
        .str()
        .map_err(|e| one(problem(e)))?
        .map(str::to_owned);
    if name.as_ref().is_some_and(|n| n.chars().count() > 100) {
        return Err(one(err(
            &rule.key("name"),
            "is longer than 100 characters",
            "shorten it",
        )));
    }
    let action = rule.key("action");
    let verdict = match (kind, action.str().map_err(|e| one(problem(e)))?) {
        ("ClusterNetworkPolicy", Some("Accept")) => Verdict::Allow,
        ("ClusterNetworkPolicy", Some("Deny")) => Verdict::Deny,
        ("ClusterNetworkPolicy", Some("Pass")) => Verdict::Pass,
        ("AdminNetworkPolicy", Some("Allow")) => Verdict::Allow,
        ("AdminNetworkPolicy", Some("Deny")) => Verdict::Deny,
        ("AdminNetworkPolicy", Some("Pass")) => Verdict::Pass,
        ("BaselineAdminNetworkPolicy", Some("Allow")) => Verdict::Allow,
        ("BaselineAdminNetworkPolicy", Some("Deny")) => Verdict::Deny,
        (_, other) => {
            let allowed = match kind {
                "ClusterNetworkPolicy" => "Accept, Deny and Pass",
                "AdminNetworkPolicy" => "Allow, Deny and Pass",
                _ => "Allow and Deny",
            };
            return Err(one(err(
                &action,
                format!("is {:?}", other.unwrap_or("missing")),
                format!("the action of a {kind} rule is one of {allowed}"),
            )));
        }
    };
    let peers_field = rule.key(match dir {
        Dir::Ingress => "from",
        Dir::Egress => "to",
    });
    let items = peers_field.items().map_err(|e| one(problem(e)))?;
    if items.is_empty() {
        return Err(one(err(
            &peers_field,
            "is empty",
            "an administrator rule names at least one peer",
        )));
    }
    let mut problems = Vec::new();
    let mut peers = Vec::new();
    for p in &items {
        match admin_peer(p, dir, verdict) {
            Ok(peer) => peers.push((peer, p.path().to_owned())),
            Err(e) => problems.push(e),
        }
    }
    let ports = if rule.key("protocols").value().is_some() {
        cnp_protocols(&rule.key("protocols"))
    } else {
        anp_ports(&rule.key("ports"))
    };
    let ports = match ports {
        Ok(p) => p,
        Err(e) => {
            problems.extend(e);
            Vec::new()
        }
    };
    let named = ports.iter().any(|g| !g.names.is_empty());
    if named
        && let Some((_, path)) = peers
            .iter()
            .find(|(p, _)| matches!(p, Peer::Networks(_) | Peer::Nodes(_)))
    {
        problems.push(Problem {
            file: String::new(),
            object: String::new(),
            field: path.clone(),
            message: "is a networks or nodes peer in a rule with a named port".into(),
            help: "named ports are container ports: the API refuses them with networks and \
                   nodes peers"
                .into(),
        });
    }
    if problems.is_empty() {
        Ok((verdict, peers, ports, name))
    } else {
        // Problems found without a field helper get the rule's file and object.
        let template = err(rule, "", "");
        Err(problems
            .into_iter()
            .map(|mut p| {
                if p.file.is_empty() {
                    p.file = template.file.clone();
                    p.object = template.object.clone();
                }
                p
            })
            .collect())
    }
}

fn admin_peer(p: &Field<'_>, dir: Dir, verdict: Verdict) -> R<Peer> {
    let allowed: &[&str] = match dir {
        Dir::Ingress => &["namespaces", "pods"],
        Dir::Egress => &["namespaces", "pods", "nodes", "networks", "domainNames"],
    };
    let set = fields_set(
        p,
        &["namespaces", "pods", "nodes", "networks", "domainNames"],
    );
    if set.len() != 1 || !allowed.contains(&set[0].as_str()) {
        return Err(err(
            p,
            if set.is_empty() {
                "names no peer".to_string()
            } else {
                format!("sets {}", set.join(" and "))
            },
            format!(
                "an {} peer sets exactly one of {}",
                dir.word(),
                allowed.join(", ")
            ),
        ));
    }
    match set[0].as_str() {
        "nodes" => Ok(Peer::Nodes(selector(&p.key("nodes"))?)),
        "networks" => {
            let f = p.key("networks");
            let items = f.items().map_err(problem)?;
            if items.is_empty() || items.len() > 25 {
                return Err(err(
                    &f,
                    format!("has {} prefixes", items.len()),
                    "give 1-25 CIDR prefixes",
                ));
            }
            let mut nets = items.iter().map(cidr).collect::<R<Vec<IpNet>>>()?;
            nets.sort();
            nets.dedup();
            Ok(Peer::Networks(nets))
        }
        "domainNames" => Err(err(
            &p.key("domainNames"),
            "names domains",
            if verdict == Verdict::Allow {
                "ringfence enforces addresses, not names resolved at run time: there is no \
                 exact translation; write the addresses as a `networks` peer"
            } else {
                "the API only accepts domainNames in Allow rules, and ringfence has no exact \
                 translation for them"
            },
        )),
        _ => Ok(Peer::Pods(pods_of(p, "a peer's")?.expect("one is set"))),
    }
}

/// A port range with start < end, both 1-65535.
fn port_range(f: &Field<'_>, start_key: &str, end_key: &str) -> R<PortRange> {
    let start = port_number(&f.key(start_key))?;
    let end = port_number(&f.key(end_key))?;
    if start >= end {
        return Err(err(
            &f.key(end_key),
            format!("is {end}, not above start {start}"),
            "a port range's start is below its end",
        ));
    }
    Ok(PortRange { start, end })
}

/// The port entries of list `f`, each read by `entry` into protocol
/// groups; every entry's problem.
fn group_ports(
    f: &Field<'_>,
    mut entry: impl FnMut(&mut Grouper, &Field<'_>) -> R<()>,
) -> Result<Vec<PortGroup>, Vec<Problem>> {
    let items = f.items().map_err(|e| vec![problem(e)])?;
    let mut g = Grouper::default();
    let mut problems = Vec::new();
    for p in items {
        if let Err(e) = entry(&mut g, &p) {
            problems.push(e);
        }
    }
    if problems.is_empty() {
        Ok(g.finish())
    } else {
        Err(problems)
    }
}

/// A named port (of any protocol the container declares it with).
fn named_port(g: &mut Grouper, n: &Field<'_>) -> R<()> {
    match n.str() {
        Ok(Some(name)) => port_name(n, name).map(|name| g.entry(None).3.push(name)),
        Ok(None) => Err(err(n, "is empty", "name a container port")),
        Err(e) => Err(problem(e)),
    }
}

/// v1alpha1 `ports`: `portNumber`, `portRange` or `namedPort` each; absent: every port.
fn anp_ports(f: &Field<'_>) -> Result<Vec<PortGroup>, Vec<Problem>> {
    let keys = ["portNumber", "portRange", "namedPort"];
    let help = "a port sets exactly one of portNumber, portRange and namedPort";
    group_ports(f, |g, p| {
        let key = one_set(p, &keys, help)?;
        let n = p.key(key);
        match key {
            "portNumber" => protocol(&n.key("protocol")).and_then(|proto| {
                let port = port_number(&n.key("port"))?;
                g.entry(Some(proto)).2.push(PortRange::single(port));
                Ok(())
            }),
            "portRange" => protocol(&n.key("protocol")).and_then(|proto| {
                let r = port_range(&n, "start", "end")?;
                g.entry(Some(proto)).2.push(r);
                Ok(())
            }),
            _ => named_port(g, &n),
        }
    })
}

/// v1alpha2/v1beta1 `protocols`: `tcp`/`udp`/`sctp` with an optional
/// `destinationPort` (`number` or `range`), or `destinationNamedPort`.
fn cnp_protocols(f: &Field<'_>) -> Result<Vec<PortGroup>, Vec<Problem>> {
    let keys = ["tcp", "udp", "sctp", "destinationNamedPort"];
    let help = "a protocol entry sets exactly one of tcp, udp, sctp and destinationNamedPort";
    group_ports(f, |g, p| {
        let key = one_set(p, &keys, help)?;
        let proto = match key {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            "sctp" => Proto::Sctp,
            _ => return named_port(g, &p.key(key)),
        };
        let d = p.key(key).key("destinationPort");
        if d.value().is_none() {
            g.entry(Some(proto)).1 = true;
            return Ok(());
        }
        let which = fields_set(&d, &["number", "range"]);
        match which.first().map(String::as_str) {
            Some("number") if which.len() == 1 => port_number(&d.key("number"))
                .map(|n| g.entry(Some(proto)).2.push(PortRange::single(n))),
            Some("range") if which.len() == 1 => {
                port_range(&d.key("range"), "start", "end").map(|r| g.entry(Some(proto)).2.push(r))
            }
            _ => Err(err(
                &d,
                "does not set exactly one of number and range",
                "give a port number or a range",
            )),
        }
    })
}

/// Whether an address is inside some prefix (for tests of the subtraction).
#[cfg(test)]
pub(crate) fn covered(nets: &[IpNet], ip: std::net::IpAddr) -> bool {
    nets.iter().any(|n| n.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn except_is_subtracted_exactly() {
        let n: IpNet = "10.0.0.0/8".parse().unwrap();
        let x: IpNet = "10.1.2.0/24".parse().unwrap();
        let out = subtract(n, x);
        assert_eq!(out.len(), 16);
        for ip in ["10.0.0.1", "10.1.1.255", "10.1.3.0", "10.255.255.255"] {
            assert!(covered(&out, ip.parse().unwrap()), "{ip}");
        }
        for ip in ["10.1.2.0", "10.1.2.255", "11.0.0.0"] {
            assert!(!covered(&out, ip.parse().unwrap()), "{ip}");
        }
        // Prefixes stay disjoint.
        for (i, a) in out.iter().enumerate() {
            for b in &out[i + 1..] {
                assert!(!a.contains(b) && !b.contains(a), "{a} {b}");
            }
        }
        assert_eq!(subtract(n, "11.0.0.0/8".parse().unwrap()), vec![n]);
        assert!(subtract(x, n).is_empty());
    }
}
