//! Scope and filter membership: every query evaluated once over the whole
//! workload table, as bitsets.
//!
//! A scope's members match its effective query (the AND of its chain); a
//! filter's match its query, ANDed with its owner's effective query when it is
//! restricted to its scope. From these follow the per-workload facts the
//! order stage needs: the most specific scope (the last one in priority order
//! that contains the workload), the catch-all that applies per direction, and
//! whether the workload is managed at all.

use ringfence_intent::model::{Direction, FilterId, Predicate, Query, ScopeId};
use ringfence_inventory::names::{Glob, glob};

use crate::bits::Bits;
use crate::idx::WorkloadIdx;
use crate::world::{Src, World};

/// Membership facts for every workload.
pub(crate) struct Membership {
    /// Effective members of each scope.
    pub(crate) scopes: Vec<Bits<WorkloadIdx>>,
    /// Members of each filter, by [`FilterId`].
    pub(crate) filters: Vec<Bits<WorkloadIdx>>,
    /// Quarantined workloads (union of the quarantine filters).
    pub(crate) quarantined: Bits<WorkloadIdx>,
    /// Workloads that get an endpoint: able to carry one, and in some scope
    /// or quarantined.
    pub(crate) managed: Bits<WorkloadIdx>,
    /// Per workload: the last scope in priority order that contains it.
    pub(crate) most_specific: Vec<Option<ScopeId>>,
    /// Per direction (ingress, egress) and workload: the scope whose catch-all applies.
    pub(crate) catch_all: [Vec<Option<ScopeId>>; 2],
}

/// Index of a direction in per-direction arrays.
pub(crate) fn dir_index(d: Direction) -> usize {
    match d {
        Direction::Ingress => 0,
        Direction::Egress => 1,
    }
}

impl Membership {
    /// Evaluate every scope, filter and the quarantine.
    pub(crate) fn new(world: &World<'_>) -> Self {
        let intent = world.intent;
        let mut ev = Evaluator {
            world,
            scopes: vec![Memo::Todo; intent.scopes.len()],
            filters: vec![Memo::Todo; intent.filters.len()],
        };
        for s in intent.scope_ids() {
            ev.scope(s);
        }
        for f in intent.filter_ids() {
            ev.filter(f);
        }
        let done = |m: Memo| match m {
            Memo::Done(b) => b,
            _ => unreachable!("every scope and filter was evaluated"),
        };
        let scopes: Vec<Bits<WorkloadIdx>> = ev.scopes.into_iter().map(done).collect();
        let filters: Vec<Bits<WorkloadIdx>> = ev.filters.into_iter().map(done).collect();

        let n = world.len();
        let mut quarantined = Bits::new(n);
        if let Some(q) = &intent.quarantine {
            for &f in &q.filters {
                quarantined.or_with(&filters[f.index()]);
            }
        }
        let mut most_specific = vec![None; n];
        let mut catch_all = [vec![None; n], vec![None; n]];
        let mut in_scope = Bits::new(n);
        for (s, members) in intent.scope_ids().zip(&scopes) {
            in_scope.or_with(members);
            let has = [
                intent.catch_all(s, Direction::Ingress).is_some(),
                intent.catch_all(s, Direction::Egress).is_some(),
            ];
            for w in members.ones() {
                most_specific[w.index()] = Some(s);
                for d in 0..2 {
                    if has[d] {
                        catch_all[d][w.index()] = Some(s);
                    }
                }
            }
        }
        let mut managed = in_scope;
        managed.or_with(&quarantined);
        managed.and_with(&world.capable);
        Membership {
            scopes,
            filters,
            quarantined,
            managed,
            most_specific,
            catch_all,
        }
    }

    /// The top-level scope above a scope.
    pub(crate) fn top(world: &World<'_>, scope: ScopeId) -> ScopeId {
        *world
            .intent
            .scope_chain(scope)
            .last()
            .expect("a chain holds at least the scope")
    }
}

#[derive(Clone)]
enum Memo {
    Todo,
    Busy,
    Done(Bits<WorkloadIdx>),
}

struct Evaluator<'w, 'a> {
    world: &'w World<'a>,
    scopes: Vec<Memo>,
    filters: Vec<Memo>,
}

impl Evaluator<'_, '_> {
    fn scope(&mut self, s: ScopeId) -> Bits<WorkloadIdx> {
        match &self.scopes[s.index()] {
            Memo::Done(b) => return b.clone(),
            // Validation rejects reference cycles; an unvalidated cycle matches nothing.
            Memo::Busy => return Bits::new(self.world.len()),
            Memo::Todo => {}
        }
        self.scopes[s.index()] = Memo::Busy;
        let scope = self.world.intent.scope(s);
        let mut b = self.query(&scope.query);
        if let Some(p) = scope.parent {
            b.and_with(&self.scope(p));
        }
        self.scopes[s.index()] = Memo::Done(b.clone());
        b
    }

    fn filter(&mut self, f: FilterId) -> Bits<WorkloadIdx> {
        match &self.filters[f.index()] {
            Memo::Done(b) => return b.clone(),
            Memo::Busy => return Bits::new(self.world.len()),
            Memo::Todo => {}
        }
        self.filters[f.index()] = Memo::Busy;
        let filter = self.world.intent.filter(f);
        let mut b = self.query(&filter.query);
        if filter.restrict_to_scope
            && let Some(owner) = filter.owner
        {
            b.and_with(&self.scope(owner));
        }
        self.filters[f.index()] = Memo::Done(b.clone());
        b
    }

    fn query(&mut self, q: &Query) -> Bits<WorkloadIdx> {
        let n = self.world.len();
        match q {
            Query::All(qs) => {
                let mut b = Bits::full(n);
                for q in qs {
                    b.and_with(&self.query(q));
                }
                b
            }
            Query::Any(qs) => {
                let mut b = Bits::new(n);
                for q in qs {
                    b.or_with(&self.query(q));
                }
                b
            }
            Query::Not(q) => self.query(q).not(),
            Query::Pred(p, _) => self.pred(p),
        }
    }

    fn scan(&self, test: impl Fn(&crate::world::Wl<'_>) -> bool) -> Bits<WorkloadIdx> {
        Bits::from_indexes(
            self.world.len(),
            self.world
                .ids()
                .zip(&self.world.w)
                .filter(|(_, w)| test(w))
                .map(|(i, _)| i),
        )
    }

    fn pred(&mut self, p: &Predicate) -> Bits<WorkloadIdx> {
        let world = self.world;
        match p {
            Predicate::Cluster(names) => {
                let mut b = Bits::new(world.len());
                for (ci, c) in world.inv.clusters.iter().enumerate() {
                    if names.contains(&c.name) {
                        let r = &world.clusters[ci];
                        r.all().iter().for_each(|i| b.set(i));
                    }
                }
                b
            }
            Predicate::Namespace(names) => world.namespace_members(names),
            Predicate::Label { key, values } => world.label_members(key, values),
            Predicate::Kind(kinds) => self.scan(|w| kinds.contains(&w.kind)),
            // Each pattern compiled once, then matched against every workload.
            Predicate::Name(globs) => {
                let globs = compile(globs);
                self.scan(|w| globs.iter().any(|g| g.matches(w.name)))
            }
            Predicate::Node(globs) => {
                let globs = compile(globs);
                self.scan(|w| {
                    w.node_name
                        .is_some_and(|n| globs.iter().any(|g| g.matches(n)))
                })
            }
            Predicate::Os(os) => self.scan(|w| w.os == Some(*os)),
            Predicate::Address(prefixes) => self.scan(|w| {
                // An external is selected by the prefixes it was declared with.
                if let Src::External(e) = w.src {
                    let declared = &world.intent.external(e).nets;
                    !declared.is_empty()
                        && declared
                            .iter()
                            .all(|n| prefixes.iter().any(|p| p.contains(n)))
                } else {
                    w.addrs
                        .iter()
                        .any(|a| prefixes.iter().any(|p| p.contains(a)))
                }
            }),
            Predicate::CvssAtLeast(min) => self.scan(|w| w.cvss >= *min),
            Predicate::Filter(f) => self.filter(*f),
            Predicate::Scope(s) => self.scope(*s),
        }
    }
}

/// One pod, as [`matches_one`] sees it (the attributes of [`crate::world::Wl`]).
pub(crate) struct OnePod<'a> {
    pub(crate) cluster: &'a str,
    pub(crate) namespace: &'a str,
    pub(crate) name: &'a str,
    pub(crate) labels: &'a ringfence_inventory::model::Labels,
    pub(crate) ns_labels: Option<&'a ringfence_inventory::model::Labels>,
    pub(crate) node_name: Option<&'a str>,
    pub(crate) os: Option<ringfence_intent::model::Os>,
    pub(crate) addrs: &'a [std::net::IpAddr],
    pub(crate) cvss: f64,
}

/// The scopes and filters one pod is in: exactly what [`Membership::new`]
/// computes for it over the whole table, for a pod that is not in it.
pub(crate) fn matches_one(
    intent: &ringfence_intent::model::Intent,
    pod: &OnePod<'_>,
) -> (Vec<ScopeId>, Vec<FilterId>) {
    let mut one = One {
        intent,
        pod,
        scopes: vec![None; intent.scopes.len()],
        filters: vec![None; intent.filters.len()],
    };
    let scopes = intent.scope_ids().filter(|&s| one.scope(s)).collect();
    let filters = intent.filter_ids().filter(|&f| one.filter(f)).collect();
    (scopes, filters)
}

struct One<'i, 'p> {
    intent: &'i ringfence_intent::model::Intent,
    pod: &'p OnePod<'p>,
    /// `None`: not evaluated yet (a cycle, rejected by validation, is false).
    scopes: Vec<Option<bool>>,
    filters: Vec<Option<bool>>,
}

impl One<'_, '_> {
    fn scope(&mut self, s: ScopeId) -> bool {
        if let Some(b) = self.scopes[s.index()] {
            return b;
        }
        self.scopes[s.index()] = Some(false);
        let intent = self.intent;
        let scope = intent.scope(s);
        let b = self.query(&scope.query) && scope.parent.is_none_or(|p| self.scope(p));
        self.scopes[s.index()] = Some(b);
        b
    }

    fn filter(&mut self, f: FilterId) -> bool {
        if let Some(b) = self.filters[f.index()] {
            return b;
        }
        self.filters[f.index()] = Some(false);
        let intent = self.intent;
        let filter = intent.filter(f);
        let mut b = self.query(&filter.query);
        if b && filter.restrict_to_scope
            && let Some(owner) = filter.owner
        {
            b = self.scope(owner);
        }
        self.filters[f.index()] = Some(b);
        b
    }

    fn query(&mut self, q: &Query) -> bool {
        match q {
            Query::All(qs) => qs.iter().all(|q| self.query(q)),
            Query::Any(qs) => qs.iter().any(|q| self.query(q)),
            Query::Not(q) => !self.query(q),
            Query::Pred(p, _) => self.pred(p),
        }
    }

    fn pred(&mut self, p: &Predicate) -> bool {
        let pod = self.pod;
        match p {
            Predicate::Cluster(names) => names.iter().any(|n| n == pod.cluster),
            Predicate::Namespace(names) => names.iter().any(|n| n == pod.namespace),
            Predicate::Label { key, values } => {
                let has = |labels: Option<&ringfence_inventory::model::Labels>, key: &str| {
                    labels
                        .and_then(|l| l.get(key))
                        .is_some_and(|v| values.is_empty() || values.contains(v))
                };
                has(Some(pod.labels), key)
                    || key
                        .strip_prefix("ns:")
                        .is_some_and(|k| has(pod.ns_labels, k))
            }
            Predicate::Kind(kinds) => kinds.contains(&ringfence_intent::model::WorkloadKind::Pod),
            Predicate::Name(globs) => globs.iter().any(|g| glob(g, pod.name)),
            Predicate::Node(globs) => pod
                .node_name
                .is_some_and(|n| globs.iter().any(|g| glob(g, n))),
            Predicate::Os(os) => pod.os == Some(*os),
            Predicate::Address(prefixes) => pod
                .addrs
                .iter()
                .any(|a| prefixes.iter().any(|p| p.contains(a))),
            Predicate::CvssAtLeast(min) => pod.cvss >= *min,
            Predicate::Filter(f) => self.filter(*f),
            Predicate::Scope(s) => self.scope(*s),
        }
    }
}

/// Whether every pod of `cluster` is in scope `s` (`Ok`) or filter `f`
/// (`Err`), whatever its namespace, labels, name, node or addresses: the
/// query is decided by the cluster and the kind alone.
pub(crate) fn every_pod(
    intent: &ringfence_intent::model::Intent,
    cluster: &str,
    target: Result<ScopeId, FilterId>,
) -> bool {
    let mut any = AnyPod {
        intent,
        cluster,
        scopes: vec![None; intent.scopes.len()],
        filters: vec![None; intent.filters.len()],
    };
    let v = match target {
        Ok(s) => any.scope(s),
        Err(f) => any.filter(f),
    };
    v == Some(true)
}

/// A pod of one cluster known by nothing else: each query is true, false,
/// or (`None`) depends on the pod (Kleene's three-valued logic).
struct AnyPod<'i> {
    intent: &'i ringfence_intent::model::Intent,
    cluster: &'i str,
    scopes: Vec<Option<Option<bool>>>,
    filters: Vec<Option<Option<bool>>>,
}

impl AnyPod<'_> {
    fn scope(&mut self, s: ScopeId) -> Option<bool> {
        if let Some(v) = self.scopes[s.index()] {
            return v;
        }
        self.scopes[s.index()] = Some(Some(false));
        let scope = self.intent.scope(s);
        let own = self.query(&scope.query);
        let v = match scope.parent {
            Some(p) => and(own, self.scope(p)),
            None => own,
        };
        self.scopes[s.index()] = Some(v);
        v
    }

    fn filter(&mut self, f: FilterId) -> Option<bool> {
        if let Some(v) = self.filters[f.index()] {
            return v;
        }
        self.filters[f.index()] = Some(Some(false));
        let filter = self.intent.filter(f);
        let mut v = self.query(&filter.query);
        if filter.restrict_to_scope
            && let Some(owner) = filter.owner
        {
            v = and(v, self.scope(owner));
        }
        self.filters[f.index()] = Some(v);
        v
    }

    fn query(&mut self, q: &Query) -> Option<bool> {
        match q {
            // An unknown does not end the scan: a later false still decides.
            Query::All(qs) => {
                let mut v = Some(true);
                for q in qs {
                    v = and(v, self.query(q));
                }
                v
            }
            // Any = not all of the negations.
            Query::Any(qs) => {
                let mut v = Some(true);
                for q in qs {
                    v = and(v, self.query(q).map(|b| !b));
                }
                v.map(|b| !b)
            }
            Query::Not(q) => self.query(q).map(|b| !b),
            Query::Pred(p, _) => match p {
                Predicate::Cluster(names) => Some(names.iter().any(|n| n == self.cluster)),
                Predicate::Kind(kinds) => {
                    Some(kinds.contains(&ringfence_intent::model::WorkloadKind::Pod))
                }
                Predicate::Filter(f) => self.filter(*f),
                Predicate::Scope(s) => self.scope(*s),
                _ => None,
            },
        }
    }
}

/// Kleene's AND: false wins, then unknown.
fn and(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

/// Compiles a predicate's name globs once, before a scan of every workload.
fn compile(globs: &[String]) -> Vec<Glob> {
    globs.iter().map(|g| Glob::new(g)).collect()
}
