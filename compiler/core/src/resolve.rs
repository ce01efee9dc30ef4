//! Resolve: every policy target to members and address sets, every policy to
//! a plan (who it applies to on each side, and the rules it contributes),
//! and the table of [`PolicyInfo`]s rules trace to.
//!
//! A target in consumer position stands for its members' addresses, a
//! service standing for its backing pods. In provider position, members that
//! are services are translated: the policy's ports are intersected with the
//! service ports, and each backing pod is reached on its resolved target
//! port (traffic is judged after kube-proxy's DNAT).

use std::collections::{BTreeMap, HashMap};

use ringfence_intent::Diagnostic;
use ringfence_intent::location::Locator;
use ringfence_intent::model::{
    Action, Direction, ExternalId, FilterId, Intent, Mode, PolicyAction, PolicyRank, Proto,
    ScopeId, Span, Target, WorkloadKind,
};
use ringfence_inventory::model::{Pod, ServicePort, ServiceType, TargetPort, TrafficPolicy};
use ringfence_schema::ir::{PolicyInfo, Rank};
use ringfence_schema::net::PortRange;

use crate::bits::Bits;
use crate::classes::Classes;
use crate::diag;
use crate::idx::{ClusterIdx, PlanIdx, PolicyIdx, SetIdx, WorkloadIdx};
use crate::interval::Addrs;
use crate::membership::{Membership, dir_index, every_pod};
use crate::world::World;

/// What a set stands for. A set is named after this, never after its
/// addresses, so pods coming and going (or a commit elsewhere) rename
/// nothing; two sets with the same definition are one set.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum SetKey {
    /// A target in consumer position: its members, member services replaced
    /// by their backing pods. For a target without member services this is
    /// [`SetKey::Members`].
    Consumers(TargetKey),
    /// A target's members that are not services.
    Members(TargetKey),
    /// The pods reached on a protocol and target ports: backing pods of a
    /// target's services, or (with port names) pods whose container ports
    /// have those names, among a target's members (`None`: every pod).
    Backends(Option<TargetKey>, Vec<String>, Proto, Vec<PortRange>),
    /// A cluster's nodes.
    Nodes(ClusterIdx),
    /// Adjacent rules of one policy merged into one: the union of their sets.
    Union(PolicyIdx, Vec<Vec<SetIdx>>),
    /// The pods a node's egress guard keeps it from reaching through their
    /// node-return rules (classes, and addresses of unclassed pods).
    NodeGuard(Addrs),
}

/// Interned address sets, shared by definition.
#[derive(Default)]
pub(crate) struct Sets {
    /// Content for the analysis: addresses, and pods as classes.
    pub(crate) addrs: Vec<Addrs>,
    /// A readable stem per set (the target's name, `nodes_<cluster>`, the
    /// merging policy's name).
    pub(crate) stems: Vec<String>,
    /// The definition in words, stable across compiles: what the name's
    /// hash is taken of.
    pub(crate) defs: Vec<String>,
    index: HashMap<SetKey, SetIdx>,
}

impl Sets {
    /// The id of the set `key` (described by `def`), creating it with
    /// content `a` if new.
    pub(crate) fn intern(
        &mut self,
        key: SetKey,
        def: impl FnOnce() -> String,
        a: Addrs,
        stem: &str,
    ) -> SetIdx {
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        let i = SetIdx::new(self.addrs.len());
        self.index.insert(key, i);
        self.addrs.push(a);
        self.stems.push(stem.to_string());
        self.defs.push(def());
        i
    }

    /// Per set, the clusters it holds every pod of, whatever the pod: the
    /// members of a scope or filter whose query the cluster and the kind
    /// decide ([`crate::membership::every_pod`]), or a merge with a part
    /// made only of such sets.
    pub(crate) fn every_pod_of(
        &self,
        intent: &Intent,
        clusters: &[String],
    ) -> Vec<Vec<ClusterIdx>> {
        let mut keys: Vec<Option<&SetKey>> = vec![None; self.addrs.len()];
        for (k, &i) in &self.index {
            keys[i.index()] = Some(k);
        }
        let all = || (0..clusters.len()).map(ClusterIdx::new);
        let mut out: Vec<Vec<ClusterIdx>> = Vec::with_capacity(keys.len());
        for k in keys {
            let whole = match k {
                Some(SetKey::Consumers(t) | SetKey::Members(t)) => {
                    let target = match t {
                        TargetKey::Scope(s) => Ok(*s),
                        TargetKey::Filter(f) => Err(*f),
                        TargetKey::External(_) | TargetKey::Service(..) => {
                            out.push(Vec::new());
                            continue;
                        }
                    };
                    all()
                        .filter(|c| every_pod(intent, &clusters[c.index()], target))
                        .collect()
                }
                // Parts are interned before the merge.
                Some(SetKey::Union(_, parts)) => all()
                    .filter(|c| {
                        parts.iter().any(|meet| {
                            !meet.is_empty()
                                && meet
                                    .iter()
                                    .all(|p| out.get(p.index()).is_some_and(|w| w.contains(c)))
                        })
                    })
                    .collect(),
                _ => Vec::new(),
            };
            out.push(whole);
        }
        out
    }
}

/// The policy-info table: every policy-like thing a rule can trace to.
#[derive(Default)]
pub(crate) struct Infos {
    pub(crate) list: Vec<PolicyInfo>,
    /// Intent policies occupy the first indexes; only they are analysed for
    /// shadowing and conflicts.
    pub(crate) policies: usize,
    lines: Locator,
}

impl Infos {
    fn push(&mut self, intent: &Intent, info: Info<'_>) -> PolicyIdx {
        let (file, line, column) = self
            .lines
            .locate(&intent.files, info.span)
            .expect("a policy's span is in the intent's files");
        self.list.push(PolicyInfo {
            id: info.id,
            name: info.name.to_string(),
            scope: info.scope.to_string(),
            rank: info.rank,
            action: info.action,
            file: file.to_string(),
            line,
            column,
        });
        PolicyIdx::new(self.list.len() - 1)
    }
}

impl Infos {
    /// A compiler-made info located where `base` is (its file, line and
    /// column), for rules that enforce `base`'s decision elsewhere.
    pub(crate) fn derive(
        &mut self,
        base: PolicyIdx,
        id: String,
        name: String,
        action: Action,
    ) -> PolicyIdx {
        let b = &self.list[base.index()];
        let info = PolicyInfo {
            id,
            name,
            scope: b.scope.clone(),
            rank: Rank::Implicit,
            action,
            file: b.file.clone(),
            line: b.line,
            column: b.column,
        };
        self.list.push(info);
        PolicyIdx::new(self.list.len() - 1)
    }
}

struct Info<'a> {
    id: String,
    name: &'a str,
    scope: &'a str,
    rank: Rank,
    action: Action,
    span: Span,
}

/// A rule a policy contributes, before it lands in a chain.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct RuleTpl {
    /// `None`: every address.
    pub(crate) peer: Option<SetIdx>,
    pub(crate) proto: Proto,
    pub(crate) ports: Vec<PortRange>,
}

/// The peer of the ingress rules a consumer target gives its providers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IngressPeer {
    /// The consumer has no address: no ingress rules.
    NoAddress,
    /// Every address.
    Any,
    /// The addresses of a set.
    Set(SetIdx),
}

impl IngressPeer {
    /// Whether there are ingress rules (the consumer has an address).
    pub(crate) fn has_rules(self) -> bool {
        self != IngressPeer::NoAddress
    }

    /// The rule from this peer on `proto` and `ports`, if there is one.
    fn rule(self, proto: Proto, ports: Vec<PortRange>) -> Option<RuleTpl> {
        let peer = match self {
            IngressPeer::NoAddress => return None,
            IngressPeer::Any => None,
            IngressPeer::Set(s) => Some(s),
        };
        Some(RuleTpl { peer, proto, ports })
    }
}

/// What a target resolves to.
pub(crate) struct TargetInfo {
    /// Direct members (`None` for `any`).
    pub(crate) members: Option<Bits<WorkloadIdx>>,
    /// Workloads that count as the consumer: members, and the backing pods
    /// of member services (`None` for `any`).
    pub(crate) consumers: Option<Bits<WorkloadIdx>>,
    /// Member services.
    pub(crate) services: Vec<WorkloadIdx>,
    /// Consumer-position addresses: members, services replaced by their
    /// backing pods (`None` for `any`).
    pub(crate) consumer_addrs: Option<Addrs>,
    /// Addresses of the members that are not services.
    pub(crate) direct_addrs: Addrs,
    /// A readable name for sets made from it.
    pub(crate) stem: String,
}

/// One intent policy, resolved.
pub(crate) struct PolicyPlan {
    /// Its policy info (equal to its index in `intent.policies`).
    pub(crate) info: PolicyIdx,
    pub(crate) action: PolicyAction,
    /// Its group: a `pass` skips the rest of it.
    pub(crate) rank: PolicyRank,
    pub(crate) log: bool,
    pub(crate) scope: ScopeId,
    pub(crate) proto: Proto,
    pub(crate) ports: Vec<PortRange>,
    /// Container port names, resolved on each provider pod.
    pub(crate) named: Vec<String>,
    /// Workloads whose egress chain takes it.
    pub(crate) egress: Bits<WorkloadIdx>,
    /// Workloads whose ingress chain takes it because they are provider members.
    pub(crate) ingress_direct: Bits<WorkloadIdx>,
    /// Provider members, to test "backs a provided service".
    pub(crate) provider_members: Option<Bits<WorkloadIdx>>,
    /// Provider members that are services.
    pub(crate) provider_services: Vec<WorkloadIdx>,
    /// Rules on a consumer's egress chain.
    pub(crate) egress_rules: Vec<RuleTpl>,
    /// Peer of rules on a provider's ingress chain.
    pub(crate) ingress_peer: IngressPeer,
}

/// A quarantine exception, resolved.
pub(crate) struct Exception {
    pub(crate) info: PolicyIdx,
    pub(crate) direction: Direction,
    pub(crate) rules: Vec<RuleTpl>,
}

/// The implicit allow from a cluster's nodes to the backing pods of a
/// NodePort/LoadBalancer service port with `externalTrafficPolicy: Cluster`.
pub(crate) struct SvcReturn {
    pub(crate) info: PolicyIdx,
    /// The cluster's node addresses.
    pub(crate) peer: SetIdx,
    /// Allow plans (in global order) that provide this service port.
    pub(crate) providers: Vec<PlanIdx>,
}

/// Everything the order and chain stages need.
pub(crate) struct Resolved {
    pub(crate) infos: Infos,
    pub(crate) sets: Sets,
    pub(crate) plans: Vec<PolicyPlan>,
    /// `intent.order()`.
    pub(crate) order: Vec<PlanIdx>,
    pub(crate) exceptions: Vec<Exception>,
    /// Policy infos of `quarantine/deny-ingress` and `quarantine/deny-egress`.
    pub(crate) quarantine_deny: [PolicyIdx; 2],
    /// Per service workload and port index.
    pub(crate) svc_returns: BTreeMap<(WorkloadIdx, u32), SvcReturn>,
    /// Per intent catch-all: its info.
    pub(crate) catch_all_infos: Vec<PolicyIdx>,
    /// Per (top-level scope, direction): the implicit catch-all's info.
    pub(crate) implicit_infos: HashMap<(ScopeId, usize), PolicyIdx>,
    /// Enforcement per scope.
    pub(crate) modes: Vec<Mode>,
}

/// Whether a service port is meant by a policy's protocol and ports.
pub(crate) fn port_selected(sp: &ServicePort, proto: Proto, ports: &[PortRange]) -> bool {
    proto.matches(sp.proto) && (ports.is_empty() || ports.iter().any(|r| r.contains(sp.port)))
}

/// Whether a service port is meant by a policy that may have port names:
/// names mean container ports of pods, never service ports, so a policy
/// with names and no numbers means no service port.
pub(crate) fn service_port_selected(
    sp: &ServicePort,
    proto: Proto,
    ports: &[PortRange],
    named: &[String],
) -> bool {
    (named.is_empty() || !ports.is_empty()) && port_selected(sp, proto, ports)
}

/// The (protocol, port) pairs a pod's container ports named in `named` give
/// under `proto` (`any`: whatever the container port's protocol), sorted.
pub(crate) fn resolve_named(pod: &Pod, proto: Proto, named: &[String]) -> Vec<(Proto, u16)> {
    let mut out: Vec<(Proto, u16)> = pod
        .ports
        .iter()
        .filter(|cp| {
            proto.matches(cp.proto)
                && cp
                    .name
                    .as_ref()
                    .is_some_and(|n| named.binary_search(n).is_ok())
        })
        .map(|cp| (cp.proto, cp.port))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

struct Resolver<'w, 'a> {
    world: &'w World<'a>,
    m: &'w Membership,
    classes: &'w Classes,
    sets: Sets,
    targets: HashMap<TargetKey, TargetInfo>,
    /// Interned consumer-position set per target (see `consumer_peer`).
    consumer_ids: HashMap<TargetKey, IngressPeer>,
    /// Interned set of a target's non-service members.
    direct_ids: HashMap<TargetKey, SetIdx>,
    translations: HashMap<(TargetKey, Proto, Vec<PortRange>, Vec<String>), Translation>,
    diags: Vec<Diagnostic>,
}

/// A rule template list computed for one (target, protocol, ports).
struct Translation {
    rules: Vec<RuleTpl>,
    /// (service, target port name, pod) of pods skipped.
    unresolved: Vec<(String, String, String)>,
    /// The member services.
    services: Vec<WorkloadIdx>,
}

fn target_key(t: &Target) -> Option<TargetKey> {
    Some(match t {
        Target::Any => return None,
        Target::Filter(f) => TargetKey::Filter(*f),
        Target::Scope(s) => TargetKey::Scope(*s),
        Target::External(e) => TargetKey::External(*e),
        Target::Service { namespace, name } => TargetKey::Service(namespace.clone(), name.clone()),
    })
}

/// A policy target other than `any`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum TargetKey {
    Filter(FilterId),
    Scope(ScopeId),
    External(ExternalId),
    Service(String, String),
}

impl TargetKey {
    /// The target in words, by name (stable across compiles).
    fn describe(&self, intent: &Intent) -> String {
        match self {
            TargetKey::Filter(f) => format!("filter:{}", intent.filter(*f).name),
            TargetKey::Scope(s) => format!("scope:{}", intent.scope(*s).name),
            TargetKey::External(e) => format!("external:{}", intent.external(*e).name),
            TargetKey::Service(ns, name) => format!("service:{ns}/{name}"),
        }
    }
}

/// Resolve every target, policy, quarantine exception and implicit rule.
pub(crate) fn resolve(
    world: &World<'_>,
    m: &Membership,
    classes: &Classes,
) -> (Resolved, Vec<Diagnostic>) {
    let intent = world.intent;
    let mut r = Resolver {
        world,
        m,
        classes,
        sets: Sets::default(),
        targets: HashMap::new(),
        consumer_ids: HashMap::new(),
        direct_ids: HashMap::new(),
        translations: HashMap::new(),
        diags: Vec::new(),
    };
    let mut infos = Infos::default();
    for p in &intent.policies {
        infos.push(
            intent,
            Info {
                id: p.id.clone(),
                name: &p.name,
                scope: &intent.scope(p.scope).name,
                rank: match p.rank {
                    PolicyRank::Absolute => Rank::Absolute,
                    PolicyRank::Default => Rank::Default,
                },
                // A pass never decides: the rules it leads to trace to the
                // policies that do, so no rule refers to a pass's info.
                action: p.action.decision().unwrap_or(Action::Allow),
                span: p.span,
            },
        );
    }
    infos.policies = intent.policies.len();
    let catch_all_infos = intent
        .catch_alls
        .iter()
        .map(|c| {
            let scope = &intent.scope(c.scope).name;
            let name = format!("catch-all-{}", dir_name(c.direction));
            infos.push(
                intent,
                Info {
                    id: format!("{scope}/{name}"),
                    name: &name,
                    scope,
                    rank: Rank::CatchAll,
                    action: c.action,
                    span: c.span,
                },
            )
        })
        .collect();
    let mut implicit_infos = HashMap::new();
    for (s, scope) in intent.scope_ids().zip(&intent.scopes) {
        if scope.parent.is_some() {
            continue;
        }
        for d in [Direction::Ingress, Direction::Egress] {
            let name = format!("implicit-catch-all-{}", dir_name(d));
            let i = infos.push(
                intent,
                Info {
                    id: format!("{}/{name}", scope.name),
                    name: &name,
                    scope: &scope.name,
                    rank: Rank::Implicit,
                    action: Action::Allow,
                    span: scope.span,
                },
            );
            implicit_infos.insert((s, dir_index(d)), i);
        }
    }

    let plans: Vec<PolicyPlan> = intent
        .policies
        .iter()
        .enumerate()
        .map(|(i, _)| r.plan(i))
        .collect();

    let mut exceptions = Vec::new();
    let mut quarantine_deny = [PolicyIdx::new(0); 2];
    if let Some(q) = &intent.quarantine {
        for x in &q.exceptions {
            let info = infos.push(
                intent,
                Info {
                    id: x.id.clone(),
                    name: &x.name,
                    scope: "quarantine",
                    rank: Rank::Quarantine,
                    action: Action::Allow,
                    span: x.span,
                },
            );
            let rules = match x.direction {
                Direction::Ingress => r
                    .consumer_peer(&x.peer)
                    .rule(x.proto, x.ports.clone())
                    .into_iter()
                    .collect(),
                Direction::Egress => {
                    r.provider_rules(&x.peer, x.proto, &x.ports, &[], &x.id, x.span)
                }
            };
            exceptions.push(Exception {
                info,
                direction: x.direction,
                rules,
            });
        }
        for d in [Direction::Ingress, Direction::Egress] {
            let name = format!("deny-{}", dir_name(d));
            quarantine_deny[dir_index(d)] = infos.push(
                intent,
                Info {
                    id: format!("quarantine/{name}"),
                    name: &name,
                    scope: "quarantine",
                    rank: Rank::Quarantine,
                    action: Action::Deny,
                    span: q.span,
                },
            );
        }
    }

    let order: Vec<PlanIdx> = intent.order().into_iter().map(PlanIdx::new).collect();
    let svc_returns = r.svc_returns(&plans, &order, &mut infos);
    let modes = intent.scope_ids().map(|s| intent.enforcement(s)).collect();
    let Resolver { sets, diags, .. } = r;
    (
        Resolved {
            infos,
            sets,
            plans,
            order,
            exceptions,
            quarantine_deny,
            svc_returns,
            catch_all_infos,
            implicit_infos,
            modes,
        },
        diags,
    )
}

/// `ingress` or `egress`.
pub(crate) fn dir_name(d: Direction) -> &'static str {
    match d {
        Direction::Ingress => "ingress",
        Direction::Egress => "egress",
    }
}

impl Resolver<'_, '_> {
    fn target(&mut self, t: &Target) -> Option<&TargetInfo> {
        let key = target_key(t)?;
        if !self.targets.contains_key(&key) {
            let info = self.build_target(&key);
            self.targets.insert(key.clone(), info);
        }
        self.targets.get(&key)
    }

    fn build_target(&self, key: &TargetKey) -> TargetInfo {
        let world = self.world;
        let n = world.len();
        let (members, stem) = match key {
            TargetKey::Filter(f) => (
                self.m.filters[f.index()].clone(),
                world.intent.filter(*f).name.clone(),
            ),
            TargetKey::Scope(s) => (
                self.m.scopes[s.index()].clone(),
                world.intent.scope(*s).name.clone(),
            ),
            TargetKey::External(e) => (
                Bits::from_indexes(n, [world.externals.nth(e.index())]),
                world.intent.external(*e).name.clone(),
            ),
            TargetKey::Service(ns, name) => {
                let mut b = Bits::new(n);
                for c in &world.clusters {
                    for s in c.services.iter() {
                        let wl = world.wl(s);
                        if wl.namespace == Some(ns.as_str()) && wl.name == name {
                            b.set(s);
                        }
                    }
                }
                (b, format!("svc_{ns}_{name}"))
            }
        };
        let mut consumers = members.clone();
        let mut services = Vec::new();
        let mut direct_ranges = Vec::new();
        let mut consumer_ranges = Vec::new();
        for w in members.ones() {
            let wl = world.wl(w);
            match wl.kind {
                WorkloadKind::Service => {
                    services.push(w);
                    for &p in world.backing(w) {
                        consumers.set(p);
                        consumer_ranges.push(self.addrs_of(p));
                    }
                }
                WorkloadKind::External => direct_ranges.push(Addrs::from_nets(wl.nets.iter())),
                _ => direct_ranges.push(self.addrs_of(w)),
            }
        }
        let direct_addrs = union_all(direct_ranges);
        let consumer_addrs = union_all(consumer_ranges).union(&direct_addrs);
        TargetInfo {
            members: Some(members),
            consumers: Some(consumers),
            services,
            consumer_addrs: Some(consumer_addrs),
            direct_addrs,
            stem,
        }
    }

    /// What a workload stands for in a set: a classed pod its class, any
    /// other workload its addresses.
    fn addrs_of(&self, w: WorkloadIdx) -> Addrs {
        match self.classes.of[w.index()] {
            Some(c) => Addrs::class(c),
            None => Addrs::from_ips(&self.world.wl(w).addrs),
        }
    }

    /// (protocol, port) → what the pods among `pods` whose container ports
    /// `named` name there stand for.
    fn named_by_port(
        &self,
        pods: impl Iterator<Item = WorkloadIdx>,
        proto: Proto,
        named: &[String],
    ) -> BTreeMap<(Proto, u16), Vec<Addrs>> {
        let mut by_port: BTreeMap<(Proto, u16), Vec<Addrs>> = BTreeMap::new();
        for w in pods.filter(|&w| !self.world.pod(w).ips.is_empty()) {
            for pp in resolve_named(self.world.pod(w), proto, named) {
                by_port.entry(pp).or_default().push(self.addrs_of(w));
            }
        }
        by_port
    }

    /// The peer of ingress rules for a consumer target.
    fn consumer_peer(&mut self, t: &Target) -> IngressPeer {
        let Some(key) = target_key(t) else {
            return IngressPeer::Any;
        };
        if let Some(&peer) = self.consumer_ids.get(&key) {
            return peer;
        }
        let info = self.target(t).expect("not any");
        let (addrs, stem, services) = (
            info.consumer_addrs.clone().expect("not any"),
            info.stem.clone(),
            !info.services.is_empty(),
        );
        let intent = self.world.intent;
        let (set_key, def) = if services {
            let d = format!("consumers {}", key.describe(intent));
            (SetKey::Consumers(key.clone()), d)
        } else {
            let d = format!("members {}", key.describe(intent));
            (SetKey::Members(key.clone()), d)
        };
        let peer = if addrs.is_empty() {
            IngressPeer::NoAddress
        } else {
            IngressPeer::Set(self.sets.intern(set_key, || def, addrs, &stem))
        };
        self.consumer_ids.insert(key, peer);
        peer
    }

    /// The rules a provider target contributes to a consumer's egress chain.
    /// Translations are computed once per (target, protocol, ports); the
    /// diagnostics are reported for every policy that uses them.
    fn provider_rules(
        &mut self,
        t: &Target,
        proto: Proto,
        ports: &[PortRange],
        named: &[String],
        policy: &str,
        span: Span,
    ) -> Vec<RuleTpl> {
        let Some(key) = target_key(t) else {
            // Every address on the port numbers; port names on every pod.
            let mut rules: Vec<RuleTpl> = (named.is_empty() || !ports.is_empty())
                .then(|| RuleTpl {
                    peer: None,
                    proto,
                    ports: ports.to_vec(),
                })
                .into_iter()
                .collect();
            if !named.is_empty() {
                let world = self.world;
                let pods = world.clusters.iter().flat_map(|c| c.pods.iter());
                let by_port = self.named_by_port(pods, proto, named);
                rules.extend(self.port_rules(by_port, "any", None, named));
            }
            return rules;
        };
        let cache_key = (key, proto, ports.to_vec(), named.to_vec());
        if !self.translations.contains_key(&cache_key) {
            let tr = self.translate(t, proto, ports, named);
            self.translations.insert(cache_key.clone(), tr);
        }
        let tr = &self.translations[&cache_key];
        let (rules, unresolved, services) =
            (tr.rules.clone(), tr.unresolved.clone(), tr.services.clone());
        if let Target::Service { namespace, name } = t {
            if services.is_empty() {
                self.diags.push(diag::unknown_service(
                    policy,
                    span,
                    &format!("{namespace}/{name}"),
                ));
            } else if !ports.is_empty() {
                for s in services {
                    let svc = self.world.service(s);
                    let svc_name = format!("{}/{}", svc.namespace, svc.name);
                    self.check_ports(policy, span, &svc_name, &svc.ports, proto, ports);
                }
            }
        }
        for (svc, target, pod) in unresolved {
            self.diags.push(diag::unresolved_target_port(
                policy, span, &svc, &target, &pod,
            ));
        }
        rules
    }

    fn translate(
        &mut self,
        t: &Target,
        proto: Proto,
        ports: &[PortRange],
        named: &[String],
    ) -> Translation {
        let world = self.world;
        let info = self.target(t).expect("not any");
        let direct = info.direct_addrs.clone();
        let stem = info.stem.clone();
        let services = info.services.clone();
        let members = info.members.clone().expect("not any");
        let mut rules = Vec::new();
        let key = target_key(t).expect("not any");
        // Port numbers (or every port) on the direct members.
        if !direct.is_empty() && (named.is_empty() || !ports.is_empty()) {
            let id = match self.direct_ids.get(&key) {
                Some(&id) => id,
                None => {
                    let def = format!("members {}", key.describe(world.intent));
                    let id = self
                        .sets
                        .intern(SetKey::Members(key.clone()), || def, direct, &stem);
                    self.direct_ids.insert(key.clone(), id);
                    id
                }
            };
            rules.push(RuleTpl {
                peer: Some(id),
                proto,
                ports: ports.to_vec(),
            });
        }
        // (proto, target port) → addresses of the pods reached on it.
        let mut by_port: BTreeMap<(Proto, u16), Vec<Addrs>> = BTreeMap::new();
        // Named ports on the member pods, each on the port it names there.
        if !named.is_empty() {
            let pods = members
                .ones()
                .filter(|&w| world.wl(w).kind == WorkloadKind::Pod);
            by_port = self.named_by_port(pods, proto, named);
        }
        let mut unresolved = Vec::new();
        for &s in &services {
            let svc = world.service(s);
            for sp in svc
                .ports
                .iter()
                .filter(|sp| service_port_selected(sp, proto, ports, named))
            {
                for &p in world.backing(s) {
                    let pod = world.pod(p);
                    if pod.ips.is_empty() {
                        continue;
                    }
                    match pod.resolve_target(&sp.target, sp.proto) {
                        Some(tp) => by_port
                            .entry((sp.proto, tp))
                            .or_default()
                            .push(self.addrs_of(p)),
                        None => unresolved.push((
                            format!("{}/{}", svc.namespace, svc.name),
                            target_name(&sp.target),
                            format!("{}/{}", pod.namespace, pod.name),
                        )),
                    }
                }
            }
        }
        let svc_stem = if services.len() == 1 && named.is_empty() {
            let s = world.service(services[0]);
            format!("svc_{}_{}", s.namespace, s.name)
        } else {
            stem
        };
        rules.extend(self.port_rules(by_port, &svc_stem, Some(&key), named));
        Translation {
            rules,
            unresolved,
            services,
        }
    }

    /// One rule per (protocol, pod set), listing every port that set is
    /// reached on. Their sets are named after `key` (`None`: `any`) and
    /// `named`.
    fn port_rules(
        &mut self,
        by_port: BTreeMap<(Proto, u16), Vec<Addrs>>,
        stem: &str,
        key: Option<&TargetKey>,
        named: &[String],
    ) -> Vec<RuleTpl> {
        let mut grouped: Vec<(Proto, Addrs, Vec<PortRange>)> = Vec::new();
        for ((proto, port), addrs) in by_port {
            let addrs = union_all(addrs);
            match grouped
                .iter_mut()
                .find(|(p, a, _)| *p == proto && *a == addrs)
            {
                Some(g) => g.2.push(PortRange::single(port)),
                None => grouped.push((proto, addrs, vec![PortRange::single(port)])),
            }
        }
        let intent = self.world.intent;
        let target = key.map_or_else(|| "any".to_string(), |k| k.describe(intent));
        grouped
            .into_iter()
            .map(|(proto, addrs, mut ports)| {
                ringfence_schema::net::normalize_ports(&mut ports);
                let p: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
                let mut def = format!("backends {target} {proto} {}", p.join(","));
                if !named.is_empty() {
                    def.push_str(&format!(" named {}", named.join(",")));
                }
                let set_key = SetKey::Backends(key.cloned(), named.to_vec(), proto, ports.clone());
                RuleTpl {
                    peer: Some(self.sets.intern(set_key, || def, addrs, stem)),
                    proto,
                    ports,
                }
            })
            .collect()
    }

    /// Warn about policy ports a service does not have.
    fn check_ports(
        &mut self,
        policy: &str,
        span: Span,
        svc: &str,
        svc_ports: &[ServicePort],
        proto: Proto,
        ports: &[PortRange],
    ) {
        let missing: Vec<String> = ports
            .iter()
            .filter(|r| {
                !svc_ports
                    .iter()
                    .any(|sp| proto.matches(sp.proto) && r.contains(sp.port))
            })
            .map(|r| r.to_string())
            .collect();
        if missing.is_empty() {
            return;
        }
        let has: Vec<String> = svc_ports
            .iter()
            .map(|sp| format!("{} {}", sp.proto, sp.port))
            .collect();
        let has = if has.is_empty() {
            "no ports".to_string()
        } else {
            has.join(", ")
        };
        self.diags.push(diag::unknown_service_port(
            policy,
            span,
            svc,
            &missing.join(", "),
            &has,
        ));
    }

    fn plan(&mut self, i: usize) -> PolicyPlan {
        let intent = self.world.intent;
        let n = self.world.len();
        let p = &intent.policies[i];
        let scope = &self.m.scopes[p.scope.index()];
        let mut egress = match self.target(&p.consumer) {
            None => Bits::full(n),
            Some(t) => t.consumers.clone().expect("not any"),
        };
        egress.and_with(scope);
        egress.and_with(&self.m.managed);
        let (mut ingress_direct, provider_members, mut provider_services) =
            match self.target(&p.provider) {
                None => (Bits::full(n), None, Vec::new()),
                Some(t) => {
                    let m = t.members.clone().expect("not any");
                    (m.clone(), Some(m), t.services.clone())
                }
            };
        ingress_direct.and_with(scope);
        ingress_direct.and_with(&self.m.managed);
        let egress_rules = match p.side {
            Some(Direction::Ingress) => {
                egress = Bits::new(n);
                Vec::new()
            }
            _ => self.provider_rules(
                &p.provider,
                p.proto,
                &p.ports,
                &p.named_ports,
                &p.id,
                p.span,
            ),
        };
        let ingress_peer = match p.side {
            Some(Direction::Egress) => {
                ingress_direct = Bits::new(n);
                provider_services.clear();
                IngressPeer::NoAddress
            }
            _ => self.consumer_peer(&p.consumer),
        };
        PolicyPlan {
            info: PolicyIdx::new(i),
            action: p.action,
            rank: p.rank,
            log: p.log,
            scope: p.scope,
            proto: p.proto,
            ports: p.ports.clone(),
            named: p.named_ports.clone(),
            egress,
            ingress_direct,
            provider_members,
            provider_services,
            egress_rules,
            ingress_peer,
        }
    }

    fn svc_returns(
        &mut self,
        plans: &[PolicyPlan],
        order: &[PlanIdx],
        infos: &mut Infos,
    ) -> BTreeMap<(WorkloadIdx, u32), SvcReturn> {
        let world = self.world;
        let intent = world.intent;
        let mut out = BTreeMap::new();
        for (ci, c) in world.clusters.iter().enumerate() {
            let mut node_set = None;
            for s in c.services.iter() {
                let svc = world.service(s);
                if !matches!(svc.kind, ServiceType::NodePort | ServiceType::LoadBalancer)
                    || svc.external_traffic_policy != TrafficPolicy::Cluster
                {
                    continue;
                }
                for (k, sp) in svc.ports.iter().enumerate() {
                    if sp.node_port.is_none() {
                        continue;
                    }
                    let providers: Vec<PlanIdx> = order
                        .iter()
                        .copied()
                        .filter(|&pi| {
                            let p = &plans[pi.index()];
                            p.action == PolicyAction::Allow
                                && p.ingress_peer.has_rules()
                                && p.provider_members.as_ref().is_some_and(|m| m.get(s))
                                && service_port_selected(sp, p.proto, &p.ports, &p.named)
                                && world.backing(s).iter().any(|&w| {
                                    self.m.managed.get(w) && self.m.scopes[p.scope.index()].get(w)
                                })
                        })
                        .collect();
                    let Some(&first) = providers.first() else {
                        continue;
                    };
                    let peer = *node_set.get_or_insert_with(|| {
                        let addrs =
                            union_all(c.nodes.iter().map(|n| Addrs::from_ips(&world.wl(n).addrs)));
                        let name = &world.inv.clusters[ci].name;
                        self.sets.intern(
                            SetKey::Nodes(ClusterIdx::new(ci)),
                            || format!("nodes {name}"),
                            addrs,
                            &format!("nodes_{name}"),
                        )
                    });
                    let p = &intent.policies[first.index()];
                    let info = infos.push(
                        intent,
                        Info {
                            id: format!("svc/{}/{}/{}", svc.namespace, svc.name, sp.port),
                            name: &format!("node-return-{}", sp.port),
                            scope: &intent.scope(p.scope).name,
                            rank: Rank::Implicit,
                            action: Action::Allow,
                            span: p.span,
                        },
                    );
                    out.insert(
                        (s, k as u32),
                        SvcReturn {
                            info,
                            peer,
                            providers,
                        },
                    );
                }
            }
        }
        out
    }
}

fn target_name(t: &TargetPort) -> String {
    match t {
        TargetPort::Number(n) => n.to_string(),
        TargetPort::Name(s) => s.clone(),
    }
}

/// Union of many sets (balanced, so large unions stay linear-ish).
pub(crate) fn union_all(sets: impl IntoIterator<Item = Addrs>) -> Addrs {
    let mut v: Vec<Addrs> = sets.into_iter().collect();
    if v.len() > 8 {
        // Many small sets: merge their ranges at once.
        let v4 = v.iter().flat_map(|a| a.v4.ranges().iter().copied());
        let v4 = crate::interval::IntervalSet::from_ranges(v4.collect::<Vec<_>>());
        let v6 = v.iter().flat_map(|a| a.v6.ranges().iter().copied());
        let v6 = crate::interval::IntervalSet::from_ranges(v6.collect::<Vec<_>>());
        let ids = v.iter().flat_map(|a| a.ids.ranges().iter().copied());
        let ids = crate::interval::IntervalSet::from_ranges(ids.collect::<Vec<_>>());
        return Addrs { v4, v6, ids };
    }
    let mut acc = v.pop().unwrap_or_default();
    for a in v {
        acc = acc.union(&a);
    }
    acc
}
