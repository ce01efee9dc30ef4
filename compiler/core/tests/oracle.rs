//! A direct, unoptimised evaluation of intent: no bitsets, no chains, no
//! compression. For one side of one flow it walks the global order and tests
//! membership by evaluating queries on the workload itself. The property test
//! checks the compiled per-node IRs against it.

use std::net::IpAddr;

use ringfence_intent::model::{
    Action, Direction, FilterId, Intent, Policy, PolicyAction, PolicyRank, Predicate, Proto,
    QuarantineException, Query, ScopeId, Target, WorkloadKind,
};
use ringfence_inventory::model::{Inventory, Node, Pod, Service, ServiceType, TrafficPolicy};
use ringfence_schema::net::{PortRange, ports_match};

/// What a matching policy decides: its action and id, or `None` for a pass
/// (the rest of its group is skipped).
fn decide(p: &Policy) -> Option<(Action, String)> {
    p.action.decision().map(|a| (a, p.id.clone()))
}

/// One workload of the inventory or intent.
#[derive(Clone, Copy, Debug)]
pub(crate) enum W<'a> {
    Node(usize, &'a Node),
    Pod(usize, &'a Pod),
    Service(usize, &'a Service),
    External(&'a ringfence_intent::model::External),
}

pub(crate) struct Oracle<'a> {
    pub(crate) intent: &'a Intent,
    pub(crate) inv: &'a Inventory,
    pub(crate) all: Vec<W<'a>>,
}

fn glob(p: &str, s: &str) -> bool {
    // Recursive definition, independent of the compiler's iterative matcher.
    match p.chars().next() {
        None => s.is_empty(),
        Some('*') => (0..=s.len())
            .filter(|&i| s.is_char_boundary(i))
            .any(|i| glob(&p[1..], &s[i..])),
        Some(c) => {
            let mut sc = s.chars();
            match sc.next() {
                Some(x) if c == '?' || c == x => glob(&p[c.len_utf8()..], sc.as_str()),
                _ => false,
            }
        }
    }
}

impl<'a> Oracle<'a> {
    pub(crate) fn new(intent: &'a Intent, inv: &'a Inventory) -> Self {
        let mut all = Vec::new();
        for (c, cl) in inv.clusters.iter().enumerate() {
            all.extend(cl.nodes.iter().map(|n| W::Node(c, n)));
            all.extend(cl.pods.iter().map(|p| W::Pod(c, p)));
            all.extend(cl.services.iter().map(|s| W::Service(c, s)));
        }
        all.extend(intent.externals.iter().map(W::External));
        Oracle { intent, inv, all }
    }

    fn node_of(&self, c: usize, name: &str) -> Option<&'a Node> {
        self.inv.clusters[c].nodes.iter().find(|n| n.name == name)
    }

    /// Externals only hold addresses the clusters do not own: pod ranges
    /// and the addresses of nodes, pods and services.
    fn outside(&self, addr: IpAddr) -> bool {
        let owned = self.inv.clusters.iter().any(|c| {
            c.nodes
                .iter()
                .any(|n| n.pod_cidrs.iter().any(|r| r.contains(&addr)))
        }) || self.all.iter().any(|&w| self.addrs(w).contains(&addr));
        !owned
    }

    fn addrs(&self, w: W<'a>) -> Vec<IpAddr> {
        match w {
            W::Node(_, n) => n.addresses.clone(),
            W::Pod(_, p) => p.ips.clone(),
            W::Service(_, s) => s.cluster_ips.iter().chain(&s.lb_ingress).copied().collect(),
            W::External(_) => Vec::new(),
        }
    }

    fn pred(&self, p: &Predicate, w: W<'a>) -> bool {
        let cluster = match w {
            W::Node(c, _) | W::Pod(c, _) | W::Service(c, _) => Some(&self.inv.clusters[c].name),
            W::External(_) => None,
        };
        let (ns, name) = match w {
            W::Node(_, n) => (None, n.name.as_str()),
            W::Pod(_, p) => (Some(p.namespace.as_str()), p.name.as_str()),
            W::Service(_, s) => (Some(s.namespace.as_str()), s.name.as_str()),
            W::External(e) => (None, e.name.as_str()),
        };
        let node: Option<&Node> = match w {
            W::Node(_, n) => Some(n),
            W::Pod(c, p) => p.node.as_deref().and_then(|n| self.node_of(c, n)),
            _ => None,
        };
        let node_name: Option<&str> = match w {
            W::Node(_, n) => Some(&n.name),
            W::Pod(_, p) => p.node.as_deref(),
            _ => None,
        };
        match p {
            Predicate::Cluster(v) => cluster.is_some_and(|c| v.contains(c)),
            Predicate::Namespace(v) => ns.is_some_and(|n| v.iter().any(|x| x == n)),
            Predicate::Label { key, values } => {
                let own = match w {
                    W::Node(_, n) => n.labels.get(key),
                    W::Pod(_, p) => p.labels.get(key),
                    W::Service(_, s) => s.labels.get(key),
                    W::External(e) => e.labels.get(key),
                };
                let from_ns = match (w, key.strip_prefix("ns:")) {
                    (W::Pod(c, p), Some(k)) => self.inv.clusters[c]
                        .namespaces
                        .iter()
                        .find(|n| n.name == p.namespace)
                        .and_then(|n| n.labels.get(k)),
                    _ => None,
                };
                [own, from_ns]
                    .into_iter()
                    .flatten()
                    .any(|v| values.is_empty() || values.contains(v))
            }
            Predicate::Kind(kinds) => kinds.contains(&match w {
                W::Node(..) => WorkloadKind::Node,
                W::Pod(..) => WorkloadKind::Pod,
                W::Service(..) => WorkloadKind::Service,
                W::External(_) => WorkloadKind::External,
            }),
            Predicate::Name(g) => g.iter().any(|g| glob(g, name)),
            Predicate::Node(g) => node_name.is_some_and(|n| g.iter().any(|g| glob(g, n))),
            Predicate::Os(os) => node.is_some_and(|n| n.os == *os),
            Predicate::Address(prefixes) => match w {
                W::External(e) => {
                    !e.nets.is_empty()
                        && e.nets
                            .iter()
                            .all(|n| prefixes.iter().any(|p| p.contains(n)))
                }
                w => self
                    .addrs(w)
                    .iter()
                    .any(|a| prefixes.iter().any(|p| p.contains(a))),
            },
            Predicate::CvssAtLeast(x) => {
                let score = match w {
                    W::Pod(_, p) => p.cvss,
                    _ => 0.0,
                };
                score >= *x
            }
            Predicate::Filter(f) => self.in_filter(*f, w),
            Predicate::Scope(s) => self.in_scope(*s, w),
        }
    }

    fn query(&self, q: &Query, w: W<'a>) -> bool {
        match q {
            Query::All(qs) => qs.iter().all(|q| self.query(q, w)),
            Query::Any(qs) => qs.iter().any(|q| self.query(q, w)),
            Query::Not(q) => !self.query(q, w),
            Query::Pred(p, _) => self.pred(p, w),
        }
    }

    pub(crate) fn in_scope(&self, s: ScopeId, w: W<'a>) -> bool {
        let scope = self.intent.scope(s);
        self.query(&scope.query, w) && scope.parent.is_none_or(|p| self.in_scope(p, w))
    }

    fn in_filter(&self, f: FilterId, w: W<'a>) -> bool {
        let filter = self.intent.filter(f);
        self.query(&filter.query, w)
            && (!filter.restrict_to_scope || filter.owner.is_none_or(|o| self.in_scope(o, w)))
    }

    fn members(&self, t: &Target) -> Vec<W<'a>> {
        self.all
            .iter()
            .copied()
            .filter(|&w| match t {
                Target::Any => true,
                Target::Filter(f) => self.in_filter(*f, w),
                Target::Scope(s) => self.in_scope(*s, w),
                Target::External(e) => {
                    matches!(w, W::External(x) if std::ptr::eq(x, self.intent.external(*e)))
                }
                Target::Service { namespace, name } => {
                    matches!(w, W::Service(_, s) if &s.namespace == namespace && &s.name == name)
                }
            })
            .collect()
    }

    fn backing(&self, c: usize, s: &Service) -> Vec<&'a Pod> {
        self.inv.clusters[c]
            .pods
            .iter()
            .filter(|p| s.selects(p))
            .collect()
    }

    fn same(a: W<'_>, b: W<'_>) -> bool {
        match (a, b) {
            (W::Node(c, x), W::Node(d, y)) => c == d && std::ptr::eq(x, y),
            (W::Pod(c, x), W::Pod(d, y)) => c == d && std::ptr::eq(x, y),
            (W::Service(c, x), W::Service(d, y)) => c == d && std::ptr::eq(x, y),
            (W::External(x), W::External(y)) => std::ptr::eq(x, y),
            _ => false,
        }
    }

    /// W is the consumer T names (services stand for their backing pods).
    fn is_consumer(&self, t: &Target, w: W<'a>) -> bool {
        if matches!(t, Target::Any) {
            return true;
        }
        self.members(t).into_iter().any(|m| match m {
            W::Service(c, s) => match w {
                W::Pod(d, p) => c == d && self.backing(c, s).iter().any(|b| std::ptr::eq(*b, p)),
                _ => false,
            },
            m => Self::same(m, w),
        })
    }

    /// `addr` is an address of the consumer T names.
    fn consumer_addr(&self, t: &Target, addr: IpAddr) -> bool {
        if matches!(t, Target::Any) {
            return true;
        }
        self.members(t).into_iter().any(|m| match m {
            W::Service(c, s) => self.backing(c, s).iter().any(|b| b.ips.contains(&addr)),
            W::External(e) => self.outside(addr) && e.nets.iter().any(|n| n.contains(&addr)),
            m => self.addrs(m).contains(&addr),
        })
    }

    fn selected(sp_proto: Proto, sp_port: u16, proto: Proto, ports: &[PortRange]) -> bool {
        proto.matches(sp_proto) && (ports.is_empty() || ports.iter().any(|r| r.contains(sp_port)))
    }

    /// A service port is meant by a policy: names never mean service ports.
    fn svc_selected(
        sp_proto: Proto,
        sp_port: u16,
        proto: Proto,
        ports: &[PortRange],
        named: &[String],
    ) -> bool {
        (named.is_empty() || !ports.is_empty()) && Self::selected(sp_proto, sp_port, proto, ports)
    }

    /// The port numbers of a policy (without names: all of them) match.
    fn numbers_match(
        pproto: Proto,
        pports: &[PortRange],
        named: &[String],
        proto: Proto,
        port: Option<u16>,
    ) -> bool {
        pproto.matches(proto)
            && (named.is_empty() || !pports.is_empty())
            && ports_match(pports, port)
    }

    /// A port name of a policy names this container port of pod `p`.
    fn name_match(
        p: &Pod,
        pproto: Proto,
        named: &[String],
        proto: Proto,
        port: Option<u16>,
    ) -> bool {
        p.ports.iter().any(|c| {
            c.name.as_ref().is_some_and(|n| named.contains(n))
                && pproto.matches(c.proto)
                && c.proto == proto
                && Some(c.port) == port
        })
    }

    /// A consumer's egress rule for provider T matches traffic to dst.
    #[allow(clippy::too_many_arguments)]
    fn provider_match(
        &self,
        t: &Target,
        pproto: Proto,
        pports: &[PortRange],
        named: &[String],
        dst: IpAddr,
        proto: Proto,
        port: Option<u16>,
    ) -> bool {
        let plain = Self::numbers_match(pproto, pports, named, proto, port);
        // Port names resolve on the pod the traffic goes to.
        let by_name =
            |p: &Pod| p.ips.contains(&dst) && Self::name_match(p, pproto, named, proto, port);
        if matches!(t, Target::Any) {
            return plain
                || self
                    .all
                    .iter()
                    .any(|w| matches!(w, W::Pod(_, p) if by_name(p)));
        }
        self.members(t).into_iter().any(|m| match m {
            W::Pod(_, p) if by_name(p) => true,
            W::Service(c, s) => s.ports.iter().any(|sp| {
                Self::svc_selected(sp.proto, sp.port, pproto, pports, named)
                    && sp.proto == proto
                    && self.backing(c, s).iter().any(|b| {
                        b.ips.contains(&dst)
                            && port.is_some()
                            && b.resolve_target(&sp.target, sp.proto) == port
                    })
            }),
            W::External(e) => plain && self.outside(dst) && e.nets.iter().any(|n| n.contains(&dst)),
            m => plain && self.addrs(m).contains(&dst),
        })
    }

    /// A provider W's ingress rule for policy `pol` matches on proto/port.
    fn provider_side_match(&self, pol: &Policy, w: W<'a>, proto: Proto, port: Option<u16>) -> bool {
        let (t, pproto, pports, named) = (&pol.provider, pol.proto, &pol.ports, &pol.named_ports);
        let plain = Self::numbers_match(pproto, pports, named, proto, port)
            || matches!(w, W::Pod(_, p) if Self::name_match(p, pproto, named, proto, port));
        if matches!(t, Target::Any) {
            return plain;
        }
        self.members(t).into_iter().any(|m| match (m, w) {
            (W::Service(c, s), W::Pod(d, p)) => {
                c == d
                    && self.backing(c, s).iter().any(|b| std::ptr::eq(*b, p))
                    && s.ports.iter().any(|sp| {
                        Self::svc_selected(sp.proto, sp.port, pproto, pports, named)
                            && sp.proto == proto
                            && port.is_some()
                            && p.resolve_target(&sp.target, sp.proto) == port
                    })
            }
            (W::Service(..), _) => false,
            (m, w) => plain && Self::same(m, w),
        })
    }

    fn host_ports_nonempty(p: &Pod) -> bool {
        p.ports.iter().any(|c| c.proto.has_ports())
    }

    /// Whether W gets an endpoint.
    pub(crate) fn managed(&self, w: W<'a>) -> bool {
        let capable = match w {
            W::Node(..) => true,
            W::Pod(c, p) => {
                p.node.as_deref().and_then(|n| self.node_of(c, n)).is_some()
                    && !p.ips.is_empty()
                    && (!p.host_network || Self::host_ports_nonempty(p))
            }
            _ => false,
        };
        capable && (self.intent.scope_ids().any(|s| self.in_scope(s, w)) || self.quarantined(w))
    }

    fn quarantined(&self, w: W<'a>) -> bool {
        self.intent
            .quarantine
            .as_ref()
            .is_some_and(|q| q.filters.iter().any(|&f| self.in_filter(f, w)))
    }

    /// The workload sending from `src`, if managed with an egress side.
    pub(crate) fn consumer(&self, src: IpAddr) -> Option<W<'a>> {
        let pod = self.all.iter().copied().find(|&w| {
            matches!(w, W::Pod(_, p) if !p.host_network && p.ips.contains(&src)) && self.managed(w)
        });
        pod.or_else(|| {
            self.all.iter().copied().find(|&w| {
                matches!(w, W::Node(_, n) if n.addresses.contains(&src)) && self.managed(w)
            })
        })
    }

    /// The workload receiving traffic to `dst` on proto/port, if managed.
    pub(crate) fn provider(&self, dst: IpAddr, proto: Proto, port: Option<u16>) -> Option<W<'a>> {
        let mut host: Vec<(String, W<'a>)> = self
            .all
            .iter()
            .copied()
            .filter(|&w| match w {
                W::Pod(_, p) => {
                    p.host_network
                        && p.ips.contains(&dst)
                        && port.is_some_and(|pt| {
                            p.ports
                                .iter()
                                .any(|c| c.proto == proto && c.port == pt && c.proto.has_ports())
                        })
                        && self.managed(w)
                }
                _ => false,
            })
            .map(|w| match w {
                W::Pod(_, p) => (format!("pod/{}/{}", p.namespace, p.name), w),
                _ => unreachable!(),
            })
            .collect();
        host.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some((_, w)) = host.first() {
            return Some(*w);
        }
        let pod = self.all.iter().copied().find(|&w| {
            matches!(w, W::Pod(_, p) if !p.host_network && p.ips.contains(&dst)) && self.managed(w)
        });
        pod.or_else(|| {
            self.all.iter().copied().find(|&w| {
                matches!(w, W::Node(_, n) if n.addresses.contains(&dst)) && self.managed(w)
            })
        })
    }

    /// The workload behind an endpoint name (`pod/NS/NAME`, `node/NAME`) of a cluster.
    pub(crate) fn by_endpoint(&self, cluster: &str, name: &str) -> Option<W<'a>> {
        self.all.iter().copied().find(|&w| match w {
            W::Pod(c, p) => {
                self.inv.clusters[c].name == cluster
                    && format!("pod/{}/{}", p.namespace, p.name) == name
            }
            W::Node(c, n) => {
                self.inv.clusters[c].name == cluster && format!("node/{}", n.name) == name
            }
            _ => false,
        })
    }

    /// The node (cluster, name) an endpoint lives on.
    pub(crate) fn node_name(&self, w: W<'a>) -> (usize, String) {
        match w {
            W::Node(c, n) => (c, n.name.clone()),
            W::Pod(c, p) => (c, p.node.clone().expect("endpoints are scheduled")),
            _ => unreachable!("only pods and nodes are endpoints"),
        }
    }

    fn most_specific(&self, w: W<'a>) -> Option<ScopeId> {
        self.intent.scope_ids().rev().find(|&s| self.in_scope(s, w))
    }

    fn catch_all(&self, w: W<'a>, d: Direction) -> (Action, String) {
        let dn = match d {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        };
        for s in self.intent.scope_ids().rev() {
            if self.in_scope(s, w)
                && let Some(c) = self.intent.catch_all(s, d)
            {
                return (
                    c.action,
                    format!("{}/catch-all-{dn}", self.intent.scope(s).name),
                );
            }
        }
        let s = self.most_specific(w).expect("managed and not quarantined");
        let top = *self.intent.scope_chain(s).last().unwrap();
        (
            Action::Allow,
            format!("{}/implicit-catch-all-{dn}", self.intent.scope(top).name),
        )
    }

    /// The quarantine's exceptions in direction `d`.
    fn quarantine_exceptions(&self, d: Direction) -> impl Iterator<Item = &QuarantineException> {
        let q = self.intent.quarantine.as_ref().unwrap();
        q.exceptions.iter().filter(move |x| x.direction == d)
    }

    /// The decision of the first policy for direction `d` that `applies`,
    /// in priority order; a pass skips the rest of its rank.
    fn first_decision(
        &self,
        d: Direction,
        applies: impl Fn(&Policy) -> bool,
    ) -> Option<(Action, String)> {
        let mut passed: Option<PolicyRank> = None;
        for i in self.intent.order() {
            let p = &self.intent.policies[i];
            let other_side = p.side.is_some_and(|side| side != d);
            if passed == Some(p.rank) || other_side || !applies(p) {
                continue;
            }
            match decide(p) {
                Some(decision) => return Some(decision),
                None => passed = Some(p.rank),
            }
        }
        None
    }

    /// The egress decision of managed workload W for traffic to dst.
    pub(crate) fn egress(
        &self,
        w: W<'a>,
        dst: IpAddr,
        proto: Proto,
        port: Option<u16>,
    ) -> (Action, String) {
        if self.quarantined(w) {
            for x in self.quarantine_exceptions(Direction::Egress) {
                if self.provider_match(&x.peer, x.proto, &x.ports, &[], dst, proto, port) {
                    return (Action::Allow, x.id.clone());
                }
            }
            return (Action::Deny, "quarantine/deny-egress".to_string());
        }
        if let W::Node(c, n) = w
            && let Some(id) = self.node_guard(c, n, dst, proto, port)
        {
            return (Action::Deny, id);
        }
        self.first_decision(Direction::Egress, |p| {
            self.in_scope(p.scope, w)
                && self.is_consumer(&p.consumer, w)
                && self.provider_match(
                    &p.provider,
                    p.proto,
                    &p.ports,
                    &p.named_ports,
                    dst,
                    proto,
                    port,
                )
        })
        .unwrap_or_else(|| self.catch_all(w, Direction::Egress))
    }

    /// The ingress decision of managed workload W for traffic from src.
    pub(crate) fn ingress(
        &self,
        w: W<'a>,
        src: IpAddr,
        proto: Proto,
        port: Option<u16>,
    ) -> (Action, String) {
        self.ingress_with(w, src, proto, port, true)
    }

    /// A node's own traffic to a pod on a port the pod's node-return rule
    /// opens to the nodes is judged by the pod's other rules, on the node:
    /// the guard's id when they deny it (pods in enforce mode only).
    fn node_guard(
        &self,
        c: usize,
        n: &Node,
        dst: IpAddr,
        proto: Proto,
        port: Option<u16>,
    ) -> Option<String> {
        let p = self.provider(dst, proto, port)?;
        let W::Pod(pc, pod) = p else { return None };
        let enforced = self
            .most_specific(p)
            .is_none_or(|s| self.intent.enforcement(s) == ringfence_intent::model::Mode::Enforce);
        if pc != c || pod.host_network || self.quarantined(p) || !enforced {
            return None;
        }
        n.addresses
            .iter()
            .filter(|a| a.is_ipv4() == dst.is_ipv4())
            .find_map(|&a| {
                self.svc_return(c, pod, p, a, proto, port)?;
                let (action, id) = self.ingress_with(p, a, proto, port, false);
                (action == Action::Deny).then(|| format!("{id}/node-guard"))
            })
    }

    /// [`Oracle::ingress`]; without `with_return`, as traffic entering
    /// through an exposure is judged (no node-return rule).
    pub(crate) fn ingress_with(
        &self,
        w: W<'a>,
        src: IpAddr,
        proto: Proto,
        port: Option<u16>,
        with_return: bool,
    ) -> (Action, String) {
        if self.quarantined(w) {
            for x in self.quarantine_exceptions(Direction::Ingress) {
                if self.consumer_addr(&x.peer, src)
                    && x.proto.matches(proto)
                    && ports_match(&x.ports, port)
                {
                    return (Action::Allow, x.id.clone());
                }
            }
            return (Action::Deny, "quarantine/deny-ingress".to_string());
        }
        if let W::Pod(c, pod) = w
            && with_return
            && let Some(id) = self.svc_return(c, pod, w, src, proto, port)
        {
            return (Action::Allow, id);
        }
        self.first_decision(Direction::Ingress, |p| {
            self.in_scope(p.scope, w)
                && self.consumer_addr(&p.consumer, src)
                && self.provider_side_match(p, w, proto, port)
        })
        .unwrap_or_else(|| self.catch_all(w, Direction::Ingress))
    }

    fn consumer_nonempty(&self, t: &Target) -> bool {
        if matches!(t, Target::Any) {
            return true;
        }
        self.members(t).into_iter().any(|m| match m {
            W::Service(c, s) => self.backing(c, s).iter().any(|b| !b.ips.is_empty()),
            W::External(e) => !e.nets.is_empty(),
            m => !self.addrs(m).is_empty(),
        })
    }

    fn svc_return(
        &self,
        c: usize,
        pod: &Pod,
        w: W<'a>,
        src: IpAddr,
        proto: Proto,
        port: Option<u16>,
    ) -> Option<String> {
        let node_addrs: Vec<IpAddr> = self.inv.clusters[c]
            .nodes
            .iter()
            .flat_map(|n| n.addresses.iter().copied())
            .collect();
        for s in &self.inv.clusters[c].services {
            if !s.selects(pod)
                || !matches!(s.kind, ServiceType::NodePort | ServiceType::LoadBalancer)
                || s.external_traffic_policy != TrafficPolicy::Cluster
            {
                continue;
            }
            for sp in &s.ports {
                if sp.node_port.is_none() {
                    continue;
                }
                let provided = self.intent.policies.iter().any(|p| {
                    p.action == PolicyAction::Allow
                        && p.side != Some(Direction::Egress)
                        && !matches!(p.provider, Target::Any)
                        && self.members(&p.provider).iter().any(
                            |m| matches!(m, W::Service(d, x) if *d == c && std::ptr::eq(*x, s)),
                        )
                        && Self::svc_selected(sp.proto, sp.port, p.proto, &p.ports, &p.named_ports)
                        && self.consumer_nonempty(&p.consumer)
                        && self.in_scope(p.scope, w)
                });
                if !provided {
                    continue;
                }
                let Some(tp) = pod.resolve_target(&sp.target, sp.proto) else {
                    continue;
                };
                if node_addrs.contains(&src) && proto == sp.proto && port == Some(tp) {
                    return Some(format!("svc/{}/{}/{}", s.namespace, s.name, sp.port));
                }
            }
        }
        None
    }
}
