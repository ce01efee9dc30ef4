//! Builders for intent and inventory values, for tests and benchmarks.
//!
//! [`IntentBuilder`] makes an [`Intent`] the way the parser would: it renders
//! the intent as KDL text (one file, `intent.kdl`) and points every span at
//! the node that declares the item, so diagnostics and `file:line` in IR
//! policies are real. The inventory helpers ([`node`], [`pod`], [`service`],
//! [`cluster`]) fill in the defaults of a scheduled, running workload.
//!
//! ```
//! use ringfence_testkit::builder::{IntentBuilder, q, t};
//! use ringfence_intent::model::{Action, Direction, PolicyRank, Proto};
//!
//! let mut b = IntentBuilder::new();
//! let prod = b.scope("prod", None, q::cluster("c1"));
//! let shop = b.scope("shop", Some(prod), q::namespace("shop"));
//! b.catch_all(shop, Direction::Ingress, Action::Deny);
//! let web = b.filter("web", Some(shop), true, q::label("app", "web"));
//! let db = b.filter("db", Some(shop), true, q::label("app", "db"));
//! b.policy(shop, PolicyRank::Default, Action::Allow, "web-to-db", t::filter(web), t::filter(db), Proto::Tcp, "5432");
//! let intent = b.build();
//! assert_eq!(intent.policies[0].id, "shop/web-to-db");
//! assert_eq!(intent.location(intent.policies[0].span).1, 23);
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use ringfence_intent::format::quote;
use ringfence_intent::model::{
    Action, CatchAll, Direction, External, ExternalId, Filter, FilterId, Intent, Mode, Os, Policy,
    PolicyAction, PolicyRank, Predicate, Proto, Quarantine, QuarantineException, Query, Scope,
    ScopeId, SourceFile, Span, Target, WorkloadKind, ports_value,
};
use ringfence_inventory::model::{
    Cluster, ContainerPort, Inventory, Labels, Namespace, Node, Owner, Pod, Service, ServicePort,
    ServiceType, TargetPort, TrafficPolicy,
};
use ringfence_schema::net::{PortRange, normalize_ports};

/// Query constructors.
pub mod q {
    use super::*;

    fn pred(p: Predicate) -> Query {
        Query::Pred(p, Span::default())
    }

    /// `cluster NAME`.
    pub fn cluster(name: &str) -> Query {
        pred(Predicate::Cluster(vec![name.to_string()]))
    }

    /// `namespace NAME…`.
    pub fn namespace(name: &str) -> Query {
        namespaces(&[name])
    }

    /// `namespace A B …`.
    pub fn namespaces(names: &[&str]) -> Query {
        pred(Predicate::Namespace(
            names.iter().map(|s| s.to_string()).collect(),
        ))
    }

    /// `label KEY VALUE`.
    pub fn label(key: &str, value: &str) -> Query {
        labels(key, &[value])
    }

    /// `all { namespace NS; label KEY VALUE }`: one labelled workload of a namespace.
    pub fn labelled_in(namespace: &str, key: &str, value: &str) -> Query {
        all(vec![self::namespace(namespace), label(key, value)])
    }

    /// `label KEY V1 V2 …` (`&[]`: the label exists).
    pub fn labels(key: &str, values: &[&str]) -> Query {
        pred(Predicate::Label {
            key: key.to_string(),
            values: values.iter().map(|s| s.to_string()).collect(),
        })
    }

    /// `kind …`.
    pub fn kind(kinds: &[WorkloadKind]) -> Query {
        pred(Predicate::Kind(kinds.to_vec()))
    }

    /// `name GLOB`.
    pub fn name(glob: &str) -> Query {
        pred(Predicate::Name(vec![glob.to_string()]))
    }

    /// `node GLOB`.
    pub fn node(glob: &str) -> Query {
        pred(Predicate::Node(vec![glob.to_string()]))
    }

    /// `os …`.
    pub fn os(os: Os) -> Query {
        pred(Predicate::Os(os))
    }

    /// `address PREFIX…`.
    pub fn address(prefixes: &[&str]) -> Query {
        pred(Predicate::Address(
            prefixes
                .iter()
                .map(|p| p.parse().expect("a prefix"))
                .collect(),
        ))
    }

    /// `cvss at-least=X`.
    pub fn cvss(min: f64) -> Query {
        pred(Predicate::CvssAtLeast(min))
    }

    /// `matches FILTER`.
    pub fn matches(f: FilterId) -> Query {
        pred(Predicate::Filter(f))
    }

    /// `in-scope SCOPE`.
    pub fn in_scope(s: ScopeId) -> Query {
        pred(Predicate::Scope(s))
    }

    /// `all { … }`.
    pub fn all(qs: Vec<Query>) -> Query {
        Query::All(qs)
    }

    /// `any { … }`.
    pub fn any(qs: Vec<Query>) -> Query {
        Query::Any(qs)
    }

    /// `not { … }`.
    pub fn not(q: Query) -> Query {
        Query::Not(Box::new(q))
    }
}

/// Target (policy reference) constructors.
pub mod t {
    use super::*;

    /// `any`.
    pub fn any() -> Target {
        Target::Any
    }

    /// `filter:NAME`.
    pub fn filter(f: FilterId) -> Target {
        Target::Filter(f)
    }

    /// `scope:NAME`.
    pub fn scope(s: ScopeId) -> Target {
        Target::Scope(s)
    }

    /// `external:NAME`.
    pub fn external(e: ExternalId) -> Target {
        Target::External(e)
    }

    /// `service:NS/NAME`.
    pub fn service(ns: &str, name: &str) -> Target {
        Target::Service {
            namespace: ns.to_string(),
            name: name.to_string(),
        }
    }
}

/// Builds an [`Intent`] and its KDL text.
#[derive(Default)]
pub struct IntentBuilder {
    scopes: Vec<Scope>,
    filters: Vec<Filter>,
    externals: Vec<External>,
    policies: Vec<Policy>,
    catch_alls: Vec<CatchAll>,
    quarantine: Option<Quarantine>,
}

impl IntentBuilder {
    /// An empty intent.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declare a scope. Scopes must be declared in priority order: a child
    /// right after its parent's earlier descendants (pre-order).
    pub fn scope(&mut self, name: &str, parent: Option<ScopeId>, query: Query) -> ScopeId {
        if let Some(p) = parent {
            // Pre-order: every scope after the parent must descend from it.
            for s in p.index() + 1..self.scopes.len() {
                let mut a = Some(ScopeId::new(s));
                while let Some(x) = a {
                    if x == p {
                        break;
                    }
                    a = self.scopes[x.index()].parent;
                }
                assert!(
                    a == Some(p),
                    "scope `{name}`: declare scopes in pre-order (children of `{}` right after it)",
                    self.scopes[p.index()].name
                );
            }
        }
        self.scopes.push(Scope {
            name: name.to_string(),
            parent,
            query,
            enforcement: None,
            unknown_pods: None,
            backends: BTreeMap::new(),
            span: Span::default(),
        });
        ScopeId::new(self.scopes.len() - 1)
    }

    /// Set a scope's enforcement.
    pub fn enforcement(&mut self, scope: ScopeId, mode: Mode) {
        self.scopes[scope.index()].enforcement = Some(mode);
    }

    /// Set a scope's backend for one OS.
    pub fn backend(&mut self, scope: ScopeId, os: Os, name: &str) {
        self.scopes[scope.index()]
            .backends
            .insert(os, name.to_string());
    }

    /// Declare a scope's catch-all for one direction.
    pub fn catch_all(&mut self, scope: ScopeId, direction: Direction, action: Action) {
        self.catch_alls.push(CatchAll {
            scope,
            direction,
            action,
            span: Span::default(),
        });
    }

    /// Declare a filter.
    pub fn filter(
        &mut self,
        name: &str,
        owner: Option<ScopeId>,
        restrict_to_scope: bool,
        query: Query,
    ) -> FilterId {
        self.filters.push(Filter {
            name: name.to_string(),
            owner,
            restrict_to_scope,
            query,
            span: Span::default(),
        });
        FilterId::new(self.filters.len() - 1)
    }

    /// Declare an external with prefixes (`"10.0.0.0/8"`, `"192.0.2.1"`).
    pub fn external(&mut self, name: &str, cidrs: &[&str]) -> ExternalId {
        self.external_labeled(name, cidrs, &[])
    }

    /// Declare an external with labels.
    pub fn external_labeled(
        &mut self,
        name: &str,
        cidrs: &[&str],
        labels: &[(&str, &str)],
    ) -> ExternalId {
        self.externals.push(External {
            name: name.to_string(),
            nets: cidrs
                .iter()
                .map(|c| {
                    c.parse()
                        .or_else(|_| c.parse::<IpAddr>().map(ipnet::IpNet::from))
                        .expect("a prefix or an address")
                })
                .collect(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            span: Span::default(),
        });
        ExternalId::new(self.externals.len() - 1)
    }

    /// Declare a policy; `ports` as in KDL (`"80,443,8000-8100"`, `""` for all).
    /// Returns its id.
    #[allow(clippy::too_many_arguments)]
    pub fn policy(
        &mut self,
        scope: ScopeId,
        rank: PolicyRank,
        action: impl Into<PolicyAction>,
        name: &str,
        consumer: Target,
        provider: Target,
        proto: Proto,
        ports: &str,
    ) -> String {
        let id = format!("{}/{name}", self.scopes[scope.index()].name);
        assert!(
            self.policies.iter().all(|p| p.id != id),
            "policy `{id}` declared twice"
        );
        self.policies.push(Policy {
            id: id.clone(),
            name: name.to_string(),
            scope,
            rank,
            action: action.into(),
            side: None,
            consumer,
            provider,
            proto,
            ports: parse_ports(ports),
            named_ports: port_names(ports),
            log: false,
            comment: None,
            span: Span::default(),
        });
        id
    }

    /// Make the last policy declared one-sided (`side="ingress"` or `"egress"`).
    pub fn side_last(&mut self, side: Direction) {
        self.policies.last_mut().expect("a policy").side = Some(side);
    }

    /// Turn on logging for the last policy declared.
    pub fn log_last(&mut self) {
        self.policies.last_mut().expect("a policy").log = true;
    }

    /// Quarantine the members of these filters.
    pub fn quarantine(&mut self, filters: &[FilterId]) {
        self.quarantine_mut().filters.extend_from_slice(filters);
    }

    /// A quarantine exception: `Ingress` is `from=peer`, `Egress` is `to=peer`.
    pub fn exception(
        &mut self,
        name: &str,
        direction: Direction,
        peer: Target,
        proto: Proto,
        ports: &str,
    ) {
        let ports = parse_ports(ports);
        self.quarantine_mut().exceptions.push(QuarantineException {
            id: format!("quarantine/{name}"),
            name: name.to_string(),
            direction,
            peer,
            proto,
            ports,
            span: Span::default(),
        });
    }

    fn quarantine_mut(&mut self) -> &mut Quarantine {
        self.quarantine.get_or_insert_with(|| Quarantine {
            filters: Vec::new(),
            exceptions: Vec::new(),
            span: Span::default(),
        })
    }

    /// Render the KDL text and return the intent with spans into it.
    pub fn build(mut self) -> Intent {
        // Policies in the order a parser meets them: by scope, absolute before
        // default, then declaration order.
        let mut order: Vec<usize> = (0..self.policies.len()).collect();
        order.sort_by_key(|&i| {
            let p = &self.policies[i];
            (p.scope, p.rank, i)
        });
        let mut policies: Vec<Policy> = order.iter().map(|&i| self.policies[i].clone()).collect();

        let mut w = Writer::default();
        let names = Names {
            scopes: self.scopes.iter().map(|s| s.name.clone()).collect(),
            filters: self.filters.iter().map(|f| f.name.clone()).collect(),
            externals: self.externals.iter().map(|e| e.name.clone()).collect(),
        };
        for e in &mut self.externals {
            e.span = w.open(&format!("external {}", quote(&e.name)));
            let cidrs: Vec<String> = e.nets.iter().map(|n| quote(&n.to_string())).collect();
            if !cidrs.is_empty() {
                w.line(&format!("cidr {}", cidrs.join(" ")));
            }
            for (k, v) in &e.labels {
                w.line(&format!("label {} {}", quote(k), quote(v)));
            }
            w.close();
        }
        for s in 0..self.scopes.len() {
            let scope = &mut self.scopes[s];
            let mut head = format!("scope {}", quote(&scope.name));
            if let Some(p) = scope.parent {
                write!(head, " parent={}", quote(&names.scopes[p.index()])).expect("string");
            }
            scope.span = w.open(&head);
            w.open("query");
            render_query_body(&mut w, &mut scope.query, &names);
            w.close();
            if let Some(m) = scope.enforcement {
                w.line(&format!(
                    "enforcement {}",
                    quote(match m {
                        Mode::Enforce => "enforce",
                        Mode::Analyze => "analyze",
                    })
                ));
            }
            if !scope.backends.is_empty() {
                let b: Vec<String> = scope
                    .backends
                    .iter()
                    .map(|(os, n)| format!("{os}={}", quote(n)))
                    .collect();
                w.line(&format!("backend {}", b.join(" ")));
            }
            w.close();
        }
        for f in &mut self.filters {
            let mut head = format!("filter {}", quote(&f.name));
            if let Some(o) = f.owner {
                write!(head, " scope={}", quote(&names.scopes[o.index()])).expect("string");
            }
            if f.restrict_to_scope {
                head.push_str(" restrict-to-scope=#true");
            }
            f.span = w.open(&head);
            render_query_body(&mut w, &mut f.query, &names);
            w.close();
        }
        for s in 0..self.scopes.len() {
            let mine: Vec<usize> = (0..policies.len())
                .filter(|&i| policies[i].scope.index() == s)
                .collect();
            let cas: Vec<usize> = (0..self.catch_alls.len())
                .filter(|&i| self.catch_alls[i].scope.index() == s)
                .collect();
            if mine.is_empty() && cas.is_empty() {
                continue;
            }
            w.open(&format!("policies scope={}", quote(&names.scopes[s])));
            for rank in [PolicyRank::Absolute, PolicyRank::Default] {
                let group: Vec<usize> = mine
                    .iter()
                    .copied()
                    .filter(|&i| policies[i].rank == rank)
                    .collect();
                if group.is_empty() {
                    continue;
                }
                w.open(match rank {
                    PolicyRank::Absolute => "absolute",
                    PolicyRank::Default => "default",
                });
                for i in group {
                    let p = &mut policies[i];
                    let mut line = format!(
                        "{} {} from={} to={}",
                        p.action,
                        quote(&p.name),
                        quote(&target_ref(&p.consumer, &names)),
                        quote(&target_ref(&p.provider, &names))
                    );
                    proto_ports(&mut line, p.proto, &p.ports, &p.named_ports);
                    if let Some(d) = p.side {
                        write!(line, " side={}", quote(dir(d))).expect("string");
                    }
                    if p.log {
                        line.push_str(" log=#true");
                    }
                    p.span = w.line(&line);
                }
                w.close();
            }
            if !cas.is_empty() {
                let mut line = "catch-all".to_string();
                for &i in &cas {
                    let c = &self.catch_alls[i];
                    write!(
                        line,
                        " {}={}",
                        dir(c.direction),
                        quote(&c.action.to_string())
                    )
                    .expect("string");
                }
                let span = w.line(&line);
                for i in cas {
                    self.catch_alls[i].span = span;
                }
            }
            w.close();
        }
        if let Some(q) = &mut self.quarantine {
            q.span = w.open("quarantine");
            let fs: Vec<String> = q
                .filters
                .iter()
                .map(|&f| quote(&names.filters[f.index()]))
                .collect();
            if !fs.is_empty() {
                w.line(&format!("workloads {}", fs.join(" ")));
            }
            for x in &mut q.exceptions {
                let key = match x.direction {
                    Direction::Ingress => "from",
                    Direction::Egress => "to",
                };
                let mut line = format!(
                    "allow {} {key}={}",
                    quote(&x.name),
                    quote(&target_ref(&x.peer, &names))
                );
                proto_ports(&mut line, x.proto, &x.ports, &[]);
                x.span = w.line(&line);
            }
            w.close();
        }
        Intent {
            files: vec![SourceFile {
                path: "intent.kdl".to_string(),
                text: Arc::from(w.text.as_str()),
            }],
            scopes: self.scopes,
            filters: self.filters,
            externals: self.externals,
            policies,
            catch_alls: self.catch_alls,
            quarantine: self.quarantine,
            plugins: Vec::new(),
        }
    }
}

fn parse_ports(ports: &str) -> Vec<PortRange> {
    let mut v: Vec<PortRange> = ports
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty() && !s.bytes().any(|b| b.is_ascii_alphabetic()))
        .map(|s| s.parse().expect("a port or range"))
        .collect();
    normalize_ports(&mut v);
    v
}

/// The container port names of a ports string, sorted.
fn port_names(ports: &str) -> Vec<String> {
    let mut v: Vec<String> = ports
        .split(',')
        .map(str::trim)
        .filter(|s| s.bytes().any(|b| b.is_ascii_alphabetic()))
        .map(str::to_string)
        .collect();
    v.sort();
    v.dedup();
    v
}

fn dir(d: Direction) -> &'static str {
    match d {
        Direction::Ingress => "ingress",
        Direction::Egress => "egress",
    }
}

fn proto_ports(line: &mut String, proto: Proto, ports: &[PortRange], names: &[String]) {
    if proto != Proto::Any {
        write!(line, " proto={}", quote(proto.as_str())).expect("string");
    }
    if !ports.is_empty() || !names.is_empty() {
        write!(line, " ports={}", quote(&ports_value(ports, names))).expect("string");
    }
}

struct Names {
    scopes: Vec<String>,
    filters: Vec<String>,
    externals: Vec<String>,
}

fn target_ref(t: &Target, n: &Names) -> String {
    match t {
        Target::Any => "any".to_string(),
        Target::Filter(f) => format!("filter:{}", n.filters[f.index()]),
        Target::Scope(s) => format!("scope:{}", n.scopes[s.index()]),
        Target::External(e) => format!("external:{}", n.externals[e.index()]),
        Target::Service { namespace, name } => format!("service:{namespace}/{name}"),
    }
}

/// Render a query's children (the body of `query { }`, a filter, `not { }`).
fn render_query_body(w: &mut Writer, q: &mut Query, n: &Names) {
    match q {
        Query::All(qs) => qs.iter_mut().for_each(|q| render_query(w, q, n)),
        q => render_query(w, q, n),
    }
}

fn render_query(w: &mut Writer, q: &mut Query, n: &Names) {
    match q {
        Query::All(qs) => {
            w.open("all");
            qs.iter_mut().for_each(|q| render_query(w, q, n));
            w.close();
        }
        Query::Any(qs) => {
            w.open("any");
            qs.iter_mut().for_each(|q| render_query(w, q, n));
            w.close();
        }
        Query::Not(q) => {
            w.open("not");
            render_query_body(w, q, n);
            w.close();
        }
        Query::Pred(p, span) => {
            let list = |head: &str, items: &[String]| {
                let items: Vec<String> = items.iter().map(|s| quote(s)).collect();
                format!("{head} {}", items.join(" "))
            };
            let line = match p {
                Predicate::Cluster(v) => list("cluster", v),
                Predicate::Namespace(v) => list("namespace", v),
                Predicate::Label { key, values } => {
                    let mut l = format!("label {}", quote(key));
                    for v in values {
                        write!(l, " {}", quote(v)).expect("string");
                    }
                    l
                }
                Predicate::Kind(kinds) => {
                    let k: Vec<String> = kinds
                        .iter()
                        .map(|k| {
                            match k {
                                WorkloadKind::Pod => "pod",
                                WorkloadKind::Service => "service",
                                WorkloadKind::Node => "node",
                                WorkloadKind::External => "external",
                            }
                            .to_string()
                        })
                        .collect();
                    list("kind", &k)
                }
                Predicate::Name(v) => list("name", v),
                Predicate::Node(v) => list("node", v),
                Predicate::Os(os) => format!("os {}", quote(os.as_str())),
                Predicate::Address(v) => list(
                    "address",
                    &v.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
                ),
                Predicate::CvssAtLeast(x) => format!("cvss at-least={x:?}"),
                Predicate::Filter(f) => format!("matches {}", quote(&n.filters[f.index()])),
                Predicate::Scope(s) => format!("in-scope {}", quote(&n.scopes[s.index()])),
            };
            *span = w.line(&line);
        }
    }
}

/// Writes indented KDL and hands out the span of each line.
#[derive(Default)]
struct Writer {
    text: String,
    depth: usize,
}

impl Writer {
    fn line(&mut self, s: &str) -> Span {
        for _ in 0..self.depth {
            self.text.push_str("    ");
        }
        let offset = self.text.len();
        self.text.push_str(s);
        self.text.push('\n');
        Span {
            file: 0,
            offset,
            len: s.len(),
        }
    }

    fn open(&mut self, head: &str) -> Span {
        let span = self.line(&format!("{head} {{"));
        self.depth += 1;
        Span {
            len: head.len(),
            ..span
        }
    }

    fn close(&mut self) {
        self.depth -= 1;
        self.line("}");
        if self.depth == 0 {
            self.text.push('\n');
        }
    }
}

fn labels(kv: &[(&str, &str)]) -> Labels {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ips(addrs: &[&str]) -> Vec<IpAddr> {
    addrs
        .iter()
        .map(|a| a.parse().expect("an IP address"))
        .collect()
}

/// A node with an OS and addresses.
pub fn node(name: &str, os: Os, addresses: &[&str]) -> Node {
    Node {
        name: name.to_string(),
        os,
        addresses: ips(addresses),
        labels: labels(&[("kubernetes.io/os", os.as_str())]),
        pod_cidrs: Vec::new(),
    }
}

/// A running pod on `node` with `ips`.
pub fn pod(namespace: &str, name: &str, node: &str, ip: &[&str]) -> Pod {
    Pod {
        namespace: namespace.to_string(),
        name: name.to_string(),
        labels: Labels::new(),
        node: Some(node.to_string()),
        ips: ips(ip),
        host_network: false,
        ports: Vec::new(),
        owner: None,
        images: Vec::new(),
        cvss: 0.0,
        phase: "Running".to_string(),
    }
}

/// Fluent changes to a [`Pod`].
pub trait PodExt {
    /// Add labels.
    fn labels(self, kv: &[(&str, &str)]) -> Self;
    /// Set the owner (`Deployment`, `StatefulSet`, …).
    fn owner(self, kind: &str, name: &str) -> Self;
    /// Declare a container port (name may be empty).
    fn port(self, name: &str, port: u16, proto: Proto) -> Self;
    /// Make it a host-network pod (its IPs become its node's addresses).
    fn host_network(self, node_addresses: &[&str]) -> Self;
    /// Set its vulnerability score.
    fn cvss(self, score: f64) -> Self;
}

impl PodExt for Pod {
    fn labels(mut self, kv: &[(&str, &str)]) -> Self {
        self.labels.extend(labels(kv));
        self
    }

    fn owner(mut self, kind: &str, name: &str) -> Self {
        self.owner = Some(Owner {
            kind: kind.to_string(),
            name: name.to_string(),
        });
        self
    }

    fn port(mut self, name: &str, port: u16, proto: Proto) -> Self {
        self.ports.push(ContainerPort {
            name: (!name.is_empty()).then(|| name.to_string()),
            port,
            proto,
        });
        self
    }

    fn host_network(mut self, node_addresses: &[&str]) -> Self {
        self.host_network = true;
        self.ips = ips(node_addresses);
        self
    }

    fn cvss(mut self, score: f64) -> Self {
        self.cvss = score;
        self
    }
}

/// A ClusterIP service selecting `selector`.
pub fn service(
    namespace: &str,
    name: &str,
    selector: &[(&str, &str)],
    cluster_ip: &str,
) -> Service {
    Service {
        namespace: namespace.to_string(),
        name: name.to_string(),
        labels: Labels::new(),
        kind: ServiceType::ClusterIp,
        selector: labels(selector),
        cluster_ips: ips(&[cluster_ip]),
        ports: Vec::new(),
        lb_ingress: Vec::new(),
        external_traffic_policy: TrafficPolicy::Cluster,
    }
}

/// Fluent changes to a [`Service`].
pub trait ServiceExt {
    /// Add a port with a numeric target.
    fn port(self, proto: Proto, port: u16, target: u16) -> Self;
    /// Add a port with a named target.
    fn named_port(self, proto: Proto, port: u16, target: &str) -> Self;
    /// Make it a NodePort service; the last port added gets `node_port`.
    fn node_port(self, node_port: u16) -> Self;
    /// Make it a LoadBalancer with these ingress addresses.
    fn load_balancer(self, ingress: &[&str]) -> Self;
    /// `externalTrafficPolicy: Local`.
    fn local(self) -> Self;
}

impl ServiceExt for Service {
    fn port(mut self, proto: Proto, port: u16, target: u16) -> Self {
        self.ports.push(ServicePort {
            name: None,
            proto,
            port,
            target: TargetPort::Number(target),
            node_port: None,
        });
        self
    }

    fn named_port(mut self, proto: Proto, port: u16, target: &str) -> Self {
        self.ports.push(ServicePort {
            name: None,
            proto,
            port,
            target: TargetPort::Name(target.to_string()),
            node_port: None,
        });
        self
    }

    fn node_port(mut self, node_port: u16) -> Self {
        if self.kind == ServiceType::ClusterIp {
            self.kind = ServiceType::NodePort;
        }
        self.ports.last_mut().expect("a port").node_port = Some(node_port);
        self
    }

    fn load_balancer(mut self, ingress: &[&str]) -> Self {
        self.kind = ServiceType::LoadBalancer;
        self.lb_ingress = ips(ingress);
        self
    }

    fn local(mut self) -> Self {
        self.external_traffic_policy = TrafficPolicy::Local;
        self
    }
}

/// A namespace with labels.
pub fn namespace(name: &str, kv: &[(&str, &str)]) -> Namespace {
    Namespace {
        name: name.to_string(),
        labels: labels(kv),
    }
}

/// A cluster; lists are sorted and namespaces used by pods or services but
/// not given are added without labels.
pub fn cluster(
    name: &str,
    nodes: Vec<Node>,
    mut namespaces: Vec<Namespace>,
    pods: Vec<Pod>,
    services: Vec<Service>,
) -> Cluster {
    let mut c = Cluster {
        name: name.to_string(),
        source: format!("{name}.json"),
        nodes,
        namespaces: Vec::new(),
        pods,
        services,
        ingress: Vec::new(),
    };
    for ns in c
        .pods
        .iter()
        .map(|p| &p.namespace)
        .chain(c.services.iter().map(|s| &s.namespace))
    {
        if !namespaces.iter().any(|n| &n.name == ns) {
            namespaces.push(namespace(ns, &[]));
        }
    }
    namespaces.sort_by(|a, b| a.name.cmp(&b.name));
    c.namespaces = namespaces;
    c.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    c.pods
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    c.services
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    c
}

/// An inventory of clusters, sorted by name.
pub fn inventory(mut clusters: Vec<Cluster>) -> Inventory {
    clusters.sort_by(|a, b| a.name.cmp(&b.name));
    Inventory { clusters }
}

/// The inventory most small tests need: one cluster `c1` of `linux_nodes`
/// Linux nodes `n1`, `n2`, … (192.168.0.1, .2, …) with `pods` and `services`.
pub fn cluster_c1(linux_nodes: usize, pods: Vec<Pod>, services: Vec<Service>) -> Inventory {
    let nodes = (1..=linux_nodes)
        .map(|i| node(&format!("n{i}"), Os::Linux, &[&format!("192.168.0.{i}")]))
        .collect();
    inventory(vec![cluster("c1", nodes, Vec::new(), pods, services)])
}
