//! Placing addresses: which workload (as `matrix` groups it) and which scope
//! an address of a flow belongs to.
//!
//! Exact addresses first — a pod, then a node, then a service address, then
//! a host-network pod (whose addresses are its node's) — then the most
//! specific external prefix. Anything else is unknown and shown as itself.

use std::net::IpAddr;

use ipnet::IpNet;
use ringfence_core::Compiled;
use ringfence_intent::model::WorkloadKind;

use rustc_hash::FxHashMap;

/// Where an address sits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Place {
    /// The group (`shop/cart[Deployment]`), or the address when unknown.
    pub(crate) group: String,
    /// The node of the scope graph: the most specific scope, else the
    /// external's group, else `(no scope)` or `(unknown)`.
    pub(crate) scope: String,
}

/// Scope-graph node of workloads in no scope.
pub(crate) const NO_SCOPE: &str = "(no scope)";
/// Scope-graph node of addresses that are no known workload.
pub(crate) const UNKNOWN: &str = "(unknown)";

/// The address index of one compiled version.
pub(crate) struct Places {
    /// Address → catalog index.
    exact: FxHashMap<IpAddr, u32>,
    /// External prefixes with their catalog index, longest first.
    prefixes: Vec<(IpNet, u32)>,
    /// Catalog: (group, scope, kind).
    cat: Vec<(String, Option<String>, WorkloadKind)>,
}

fn rank(kind: WorkloadKind, host_network: bool) -> u8 {
    match (kind, host_network) {
        (WorkloadKind::Pod, false) => 0,
        (WorkloadKind::Node, _) => 1,
        (WorkloadKind::Service, _) => 2,
        _ => 3,
    }
}

impl Places {
    pub(crate) fn new(c: &Compiled) -> Self {
        let mut exact: FxHashMap<IpAddr, (u8, u32)> = FxHashMap::default();
        let mut prefixes = Vec::new();
        let mut cat = Vec::with_capacity(c.catalog().len());
        for (i, w) in c.catalog().enumerate() {
            let i = i as u32;
            cat.push((w.group.to_string(), w.scope.map(str::to_string), w.kind));
            if w.kind == WorkloadKind::External {
                prefixes.extend(w.nets.iter().map(|n| (*n, i)));
                continue;
            }
            let r = rank(w.kind, w.host_network);
            for &a in w.addrs {
                // The first of the best rank keeps the address (catalog order
                // is fixed, so the choice is too).
                let e = exact.entry(a).or_insert((r, i));
                if r < e.0 {
                    *e = (r, i);
                }
            }
        }
        prefixes.sort_by(|a, b| b.0.prefix_len().cmp(&a.0.prefix_len()).then(a.cmp(b)));
        Places {
            exact: exact.into_iter().map(|(a, (_, i))| (a, i)).collect(),
            prefixes,
            cat,
        }
    }

    /// The catalog index of what holds `a`.
    fn find(&self, a: IpAddr) -> Option<u32> {
        if let Some(&i) = self.exact.get(&a) {
            return Some(i);
        }
        self.prefixes
            .iter()
            .find(|(n, _)| n.contains(&a))
            .map(|&(_, i)| i)
    }

    /// Place an address.
    pub(crate) fn place(&self, a: IpAddr) -> Place {
        match self.find(a) {
            Some(i) => {
                let (group, scope, kind) = &self.cat[i as usize];
                Place {
                    group: group.clone(),
                    scope: match (scope, kind) {
                        (Some(s), _) => s.clone(),
                        (None, WorkloadKind::External) => group.clone(),
                        (None, _) => NO_SCOPE.to_string(),
                    },
                }
            }
            None => Place {
                group: a.to_string(),
                scope: UNKNOWN.to_string(),
            },
        }
    }
}
