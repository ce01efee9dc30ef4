//! Pod classes: pods no rule can tell apart.
//!
//! Two pods are in one class when they are in the same cluster, scopes and
//! filters, equally quarantined, equally able to carry an endpoint, and back
//! the same services on the same target ports. Everything the compiler
//! derives about a pod — the sets it is in, the chains that judge it, the
//! exposures that reach it — follows from its class; only its addresses and
//! its node do not. So while sets and chains are built, a pod stands for its
//! class ([`Addrs::class`](crate::interval::Addrs::class)), never for its
//! addresses: the rules depend on which classes exist, and pods of existing
//! classes can come and go as membership alone.
//!
//! Host-network pods have no class: their addresses are their node's, which
//! the rules hold as they are.

use rayon::prelude::*;
use ringfence_intent::model::{FilterId, Intent, Proto, ScopeId, WorkloadKind};
use ringfence_inventory::model::Pod;
use ringfence_schema::ir::EndpointKind;

use crate::idx::{ClassIdx, ClusterIdx, WorkloadIdx};
use crate::membership::Membership;
use crate::world::World;
use rustc_hash::FxHashMap;

/// What makes a class, as numbers of this compile (scopes, filters and
/// services by index).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ClassKey {
    pub(crate) cluster: ClusterIdx,
    /// Whether its pods can carry an endpoint (scheduled on a known node).
    pub(crate) capable: bool,
    /// Quarantined.
    pub(crate) quarantined: bool,
    /// Scopes it is in, ascending.
    pub(crate) scopes: Vec<ScopeId>,
    /// Filters it matches, ascending.
    pub(crate) filters: Vec<FilterId>,
    /// Services it backs, ascending, each with the target port every
    /// service port resolves to on it.
    pub(crate) services: Vec<(WorkloadIdx, Vec<Option<u16>>)>,
    /// Its container ports whose names some policy uses, sorted.
    pub(crate) named: Vec<(String, Proto, u16)>,
}

/// The container port names policies use, sorted.
pub(crate) fn port_names(intent: &Intent) -> Vec<String> {
    let mut names: Vec<String> = intent
        .policies
        .iter()
        .flat_map(|p| p.named_ports.iter().cloned())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// `pod`'s container ports named in `names` (sorted), for its class key.
pub(crate) fn named_ports(names: &[String], pod: &Pod) -> Vec<(String, Proto, u16)> {
    let mut out: Vec<(String, Proto, u16)> = pod
        .ports
        .iter()
        .filter_map(|cp| {
            let n = cp.name.as_ref()?;
            names
                .binary_search(n)
                .is_ok()
                .then(|| (n.clone(), cp.proto, cp.port))
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Every class of a compile.
#[derive(Clone, Debug, Default)]
pub(crate) struct Classes {
    /// Per workload: its class (pods with addresses, not on the host network).
    pub(crate) of: Vec<Option<ClassIdx>>,
    /// Per class: its key (a class is its position here).
    pub(crate) keys: Vec<ClassKey>,
    /// Per class: its pods, ascending.
    pub(crate) pods: Vec<Vec<WorkloadIdx>>,
}

impl Classes {
    /// Classify every pod: keys are made in parallel, then numbered in pod
    /// order.
    pub(crate) fn new(world: &World<'_>, m: &Membership) -> Self {
        let n = world.len();
        let classed: Vec<bool> = world
            .ids()
            .map(|w| {
                let wl = world.wl(w);
                wl.kind == WorkloadKind::Pod && !wl.addrs.is_empty() && !world.pod(w).host_network
            })
            .collect();
        let mut scopes: Vec<Vec<ScopeId>> = vec![Vec::new(); n];
        let mut filters: Vec<Vec<FilterId>> = vec![Vec::new(); n];
        for (s, b) in world.intent.scope_ids().zip(&m.scopes) {
            for w in b.ones().filter(|&w| classed[w.index()]) {
                scopes[w.index()].push(s);
            }
        }
        for (f, b) in world.intent.filter_ids().zip(&m.filters) {
            for w in b.ones().filter(|&w| classed[w.index()]) {
                filters[w.index()].push(f);
            }
        }
        let names = port_names(world.intent);
        let classed: Vec<(WorkloadIdx, Vec<ScopeId>, Vec<FilterId>)> = scopes
            .into_iter()
            .zip(filters)
            .zip(world.ids())
            .filter(|(_, w)| classed[w.index()])
            .map(|((s, f), w)| (w, s, f))
            .collect();
        let keys: Vec<(WorkloadIdx, ClassKey)> = classed
            .into_par_iter()
            .map(|(w, scopes, filters)| {
                let pod = world.pod(w);
                let mut services: Vec<WorkloadIdx> = world.services_of(w).to_vec();
                services.sort_unstable();
                let services = services
                    .into_iter()
                    .map(|s| {
                        let ports = world
                            .service(s)
                            .ports
                            .iter()
                            .map(|sp| pod.resolve_target(&sp.target, sp.proto))
                            .collect();
                        (s, ports)
                    })
                    .collect();
                let key = ClassKey {
                    cluster: world.wl(w).cluster.expect("pods have a cluster"),
                    capable: world.endpoint_kind(w) == Some(EndpointKind::Pod),
                    quarantined: m.quarantined.get(w),
                    scopes,
                    filters,
                    services,
                    named: named_ports(&names, pod),
                };
                (w, key)
            })
            .collect();
        let mut out = Classes {
            of: vec![None; n],
            ..Classes::default()
        };
        let mut index: FxHashMap<&ClassKey, ClassIdx> = FxHashMap::default();
        for (w, key) in &keys {
            let c = *index.entry(key).or_insert_with(|| {
                out.keys.push(key.clone());
                out.pods.push(Vec::new());
                ClassIdx::new(out.keys.len() - 1)
            });
            out.of[w.index()] = Some(c);
            out.pods[c.index()].push(*w);
        }
        out
    }
}
