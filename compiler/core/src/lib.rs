//! The ringfence compiler core: from validated intent and inventory to one
//! [`NodeIr`](ringfence_schema::ir::NodeIr) per node.
//!
//! Stages (each deterministic; parallel parts use rayon and collect in order):
//!
//! 1. **resolve** — build the workload table, evaluate every scope and filter
//!    as a bitset, sort pods into classes (pods no rule can tell apart: a set
//!    holds a pod's class while rules are built, never its addresses),
//!    resolve every policy target to members and address sets named by what
//!    they stand for (services in provider position translated to their
//!    backing pods' target ports), and check that no cluster is split between
//!    top-level scopes;
//! 2. **order** — for every endpoint and direction, the ordered list of what
//!    applies (quarantine, implicit rules, policies in [global
//!    order](ringfence_intent::model::Intent::order), the catch-all), grouped
//!    so equal lists share one chain;
//! 3. **compress** — build each group's chain once, drop rules shadowed by the
//!    union of earlier rules, merge adjacent rules of one policy, report
//!    shadowed and conflicting policies, and name sets, rules and chains by
//!    content;
//! 4. **slice** — cut one IR per node: its endpoints, the exposures it serves
//!    and exactly the chains, sets and policies they use.
//!
//! [`live`] serves live inventories: it places a pod in its class without a
//! compile, builds a node's IR in the live form (rules only) and its
//! [`Membership`](ringfence_schema::membership::Membership) (the pods), so
//! pods of known classes change membership, never rules.
//!
//! The result, [`Compiled`], also answers `explain` ([`Compiled::peer`],
//! [`Compiled::explain`]) and `matrix` ([`Compiled::matrix`], and
//! [`Compiled::connlist`] in np-guard netpol-analyzer's format) and gives flow
//! analysis a fast [`Compiled::verdict`], all from the same chains the nodes
//! enforce; [`diff`] compares two compiles (`ringfence plan`). `schema/docs/ir.md` documents the IR and these semantics.
//!
//! [`interval`] holds the interval sets the analysis is built on. Builders
//! and synthetic clusters for tests and benchmarks are in `ringfence-testkit`.

mod bits;
mod chains;
mod classes;
mod compiled;
mod compress;
pub mod connlist;
mod diag;
pub mod diff;
pub mod explain;
mod ids;
mod idx;
pub mod interval;
pub mod live;
pub mod matrix;
mod membership;
mod order;
mod resolve;
mod slice;
mod world;

use std::collections::BTreeMap;

use ringfence_intent::model::{Intent, ScopeId};
use ringfence_intent::{Diagnostic, Diagnostics};
use ringfence_inventory::model::Inventory;

pub use compiled::{Compiled, Decision, FlowVerdict, Side, Translation, Via, WorkloadView};
pub use connlist::ConnLine;
pub use explain::{ExplainError, Explanation, Peer, PeerError};
pub use idx::{ChainIdx, ClassIdx, ClusterIdx, EndpointIdx, RuleIdx};
pub use matrix::{Connection, Line, Matrix, PairSummary, Select};

use crate::idx::WorkloadIdx;
use crate::membership::Membership;
use crate::world::World;

/// A stage of [`compile_observed`], reported when it finishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Workloads, membership, targets and policy plans resolved.
    Resolve,
    /// Per-endpoint signatures computed and grouped.
    Order,
    /// Chains built, compressed and named.
    Compress,
    /// Per-node IRs cut.
    Slice,
}

impl Stage {
    /// The stage's name.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Resolve => "resolve",
            Stage::Order => "order/chains",
            Stage::Compress => "compress",
            Stage::Slice => "slice",
        }
    }
}

/// Compile intent against inventory (a snapshot). Returns `None` when an
/// error diagnostic was reported; diagnostics are sorted by file and position.
pub fn compile(intent: &Intent, inventory: &Inventory) -> (Option<Compiled>, Vec<Diagnostic>) {
    compile_with(intent, inventory, false, |_| {})
}

/// [`compile`], keeping what following a live inventory needs: pods are
/// then placed, and memberships kept, without compiling again (see
/// [`live`]). Those methods refuse (panic on) a snapshot compile.
pub fn compile_live(intent: &Intent, inventory: &Inventory) -> (Option<Compiled>, Vec<Diagnostic>) {
    compile_with(intent, inventory, true, |_| {})
}

/// [`compile`], calling `on_stage` after each stage (benchmarks measure time
/// and memory there; the compiler itself reads no clock).
pub fn compile_observed(
    intent: &Intent,
    inventory: &Inventory,
    on_stage: impl FnMut(Stage),
) -> (Option<Compiled>, Vec<Diagnostic>) {
    compile_with(intent, inventory, false, on_stage)
}

fn compile_with(
    intent: &Intent,
    inventory: &Inventory,
    follow: bool,
    mut on_stage: impl FnMut(Stage),
) -> (Option<Compiled>, Vec<Diagnostic>) {
    let mut diags = Diagnostics::default();
    let world = World::new(intent, inventory);
    let m = Membership::new(&world);
    diags.extend(cluster_split(&world, &m));
    diags.extend(overlapping_scopes(&world, &m));
    if diags.has_errors() {
        diags.sort();
        return (None, diags.0);
    }
    let classes = classes::Classes::new(&world, &m);
    let (mut resolved, d) = resolve::resolve(&world, &m, &classes);
    diags.extend(d);
    on_stage(Stage::Resolve);

    let mut ordered = order::order(&world, &m, &resolved, &classes);
    order::guard_node_returns(&mut resolved, &mut ordered, &classes);
    on_stage(Stage::Order);

    let (chains, d) = chains::build(intent, &ordered.groups, &mut resolved);
    diags.extend(d);
    on_stage(Stage::Compress);

    let compiled = slice::slice(&world, &m, classes, resolved, ordered, chains, follow);
    on_stage(Stage::Slice);
    diags.sort();
    (Some(compiled), diags.0)
}

/// Workloads whose scopes do not form one chain: one warning per pair of
/// scopes, naming the first such workload and how many there are.
///
/// Members of a scope are members of its parent, so in priority order
/// (pre-order) the scopes holding a workload form a chain exactly when each
/// one's parent is the previous one holding it. Two top-level scopes are
/// `cluster-split`'s.
fn overlapping_scopes(world: &World<'_>, m: &Membership) -> Vec<Diagnostic> {
    let intent = world.intent;
    let mut prev: Vec<Option<ScopeId>> = vec![None; world.len()];
    // (earlier, later) → (first workload, count)
    let mut pairs: BTreeMap<(ScopeId, ScopeId), (WorkloadIdx, usize)> = BTreeMap::new();
    for (s, scope) in intent.scope_ids().zip(&intent.scopes) {
        for w in m.scopes[s.index()].ones() {
            let before = prev[w.index()].replace(s);
            if let (Some(p), Some(b)) = (scope.parent, before)
                && p != b
            {
                pairs.entry((b, s)).or_insert((w, 0)).1 += 1;
            }
        }
    }
    pairs
        .into_iter()
        .map(|((a, b), (w, count))| {
            let wl = world.wl(w);
            let example = match wl.namespace {
                Some(ns) => format!("{ns}/{}", wl.name),
                None => wl.name.to_string(),
            };
            diag::overlapping_scopes(
                (&intent.scope(a).name, intent.scope(a).span),
                (&intent.scope(b).name, intent.scope(b).span),
                &example,
                count,
            )
        })
        .collect()
}

/// Workloads of one cluster in two top-level scopes: one error per cluster.
fn cluster_split(world: &World<'_>, m: &Membership) -> Vec<Diagnostic> {
    let intent = world.intent;
    let mut out = Vec::new();
    for (ci, range) in world.clusters.iter().enumerate() {
        // top-level scope → an example member of this cluster.
        let mut tops: BTreeMap<ScopeId, WorkloadIdx> = BTreeMap::new();
        for (s, scope) in intent.scope_ids().zip(&intent.scopes) {
            if scope.parent.is_some() {
                continue;
            }
            if let Some(w) = m.scopes[s.index()]
                .ones()
                .find(|&w| range.all().contains(w))
            {
                tops.insert(s, w);
            }
        }
        let mut it = tops.into_iter();
        if let (Some((a, _)), Some((b, w))) = (it.next(), it.next()) {
            let wl = world.wl(w);
            let example = match wl.namespace {
                Some(ns) => format!("{ns}/{}", wl.name),
                None => wl.name.to_string(),
            };
            out.push(diag::cluster_split(
                &world.inv.clusters[ci].name,
                (&intent.scope(a).name, intent.scope(a).span),
                (&intent.scope(b).name, intent.scope(b).span),
                &example,
            ));
        }
    }
    out
}
