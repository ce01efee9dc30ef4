//! The policies of a version and their statistics: hits, use of each side,
//! and the conditions worth a look (no traffic, overshadowed, broad).
//!
//! The table holds every policy a node's IR refers to (intent policies,
//! catch-alls, implicit and quarantine rules) and every intent policy even
//! when no IR does (it applies to no endpoint, or is shadowed everywhere).
//! A side's members are the endpoints on whose chain of that direction the
//! policy has a rule (consumers: egress chains; providers: ingress chains),
//! counted from the per-node IRs; its use is how many of them it decided a
//! flow for.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ringfence_core::EndpointIdx;
use ringfence_intent::Diagnostic;
use ringfence_intent::model::{Intent, PolicyRank};
use ringfence_schema::ir::{Action, PolicyInfo, Rank};

use crate::Version;
use crate::analysis::{Condition, PolicyStats, Usage};

/// Code of the core's shadow finding.
const SHADOWED: &str = ringfence_intent::diagnostics::Code::ShadowedPolicy.as_str();

/// The policies of one version.
pub(crate) struct PolicyTable {
    pub(crate) infos: Vec<PolicyInfo>,
    index: HashMap<String, u32>,
    /// Per policy: endpoints with a rule of it on their egress chain.
    pub(crate) egress_members: Vec<u64>,
    /// Per policy: endpoints with a rule of it on their ingress chain.
    pub(crate) ingress_members: Vec<u64>,
    /// Per policy: position in the output (global order).
    pub(crate) position: Vec<u32>,
    /// Overshadowed policies and what shadows them.
    pub(crate) shadowed: BTreeMap<u32, Vec<String>>,
}

impl PolicyTable {
    pub(crate) fn new(v: &Version<'_>) -> Self {
        let mut infos: Vec<PolicyInfo> = Vec::new();
        let mut index: HashMap<String, u32> = HashMap::new();
        let mut add = |infos: &mut Vec<PolicyInfo>, p: &PolicyInfo| -> u32 {
            *index.entry(p.id.clone()).or_insert_with(|| {
                infos.push(p.clone());
                (infos.len() - 1) as u32
            })
        };
        // Intent policies first, in the global order.
        let order = v.intent.order();
        for &i in &order {
            add(&mut infos, &intent_info(v.intent, i));
        }
        for ir in v.compiled.nodes() {
            for p in &ir.policies {
                add(&mut infos, p);
            }
        }

        // Members: chains are shared by content, so each chain id is resolved
        // to its policies once, whichever node holds it.
        let mut chain_policies: HashMap<&str, Vec<u32>> = HashMap::new();
        let mut egress_members = vec![0u64; infos.len()];
        let mut ingress_members = vec![0u64; infos.len()];
        for ir in v.compiled.nodes() {
            for e in ir.endpoints.iter().filter(|e| e.local) {
                let chains = [(&e.ingress, &mut ingress_members)]
                    .into_iter()
                    .chain(e.egress.as_ref().map(|c| (c, &mut egress_members)));
                for (chain, members) in chains {
                    let ps = chain_policies.entry(chain.as_str()).or_insert_with(|| {
                        let set: BTreeSet<u32> = ir
                            .chain(chain)
                            .into_iter()
                            .flat_map(|c| &c.rules)
                            .filter_map(|r| index.get(&r.policy).copied())
                            .collect();
                        set.into_iter().collect()
                    });
                    for &p in ps.iter() {
                        members[p as usize] += 1;
                    }
                }
            }
        }

        let mut by_rank: Vec<u32> = (0..infos.len() as u32).collect();
        let pos_in_order: HashMap<&str, usize> = order
            .iter()
            .enumerate()
            .map(|(k, &i)| (v.intent.policies[i].id.as_str(), k))
            .collect();
        by_rank.sort_by(|&a, &b| {
            let key = |i: u32| {
                let p = &infos[i as usize];
                (
                    p.rank,
                    pos_in_order.get(p.id.as_str()).copied().unwrap_or(0),
                    p.id.clone(),
                )
            };
            key(a).cmp(&key(b))
        });
        let mut position = vec![0u32; infos.len()];
        for (k, &i) in by_rank.iter().enumerate() {
            position[i as usize] = k as u32;
        }
        let shadowed = shadowed(v.intent, v.warnings, &index);
        PolicyTable {
            infos,
            index,
            egress_members,
            ingress_members,
            position,
            shadowed,
        }
    }

    /// The index of a policy id.
    pub(crate) fn get(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.infos.len()
    }
}

/// The [`PolicyInfo`] of intent policy `i`, as the IR would carry it.
fn intent_info(intent: &Intent, i: usize) -> PolicyInfo {
    let p = &intent.policies[i];
    let (file, line, column) = intent.location(p.span);
    PolicyInfo {
        id: p.id.clone(),
        name: p.name.clone(),
        scope: intent.scope(p.scope).name.clone(),
        rank: match p.rank {
            PolicyRank::Absolute => Rank::Absolute,
            PolicyRank::Default => Rank::Default,
        },
        // A pass never decides, so no rule traces to it (as in the core).
        action: p.action.decision().unwrap_or(Action::Allow),
        file: file.to_string(),
        line,
        column,
    }
}

/// The policies the core reported as shadowed (`ringfence::shadowed-policy`,
/// located at the policy), with the policies its message names as deciding
/// first.
fn shadowed(
    intent: &Intent,
    warnings: &[Diagnostic],
    index: &HashMap<String, u32>,
) -> BTreeMap<u32, Vec<String>> {
    let by_span: HashMap<_, &str> = intent
        .policies
        .iter()
        .map(|p| ((p.span.file, p.span.offset, p.span.len), p.id.as_str()))
        .collect();
    let mut out = BTreeMap::new();
    for d in warnings.iter().filter(|d| d.code == SHADOWED) {
        let Some((span, _)) = &d.primary else {
            continue;
        };
        let Some(id) = by_span.get(&(span.file, span.offset, span.len)) else {
            continue;
        };
        let Some(&i) = index.get(*id) else {
            continue;
        };
        // "… decided earlier by `a`, `b`": the ids between backticks.
        let by = d
            .message
            .split_once("decided earlier by ")
            .map(|(_, rest)| {
                rest.split('`')
                    .skip(1)
                    .step_by(2)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        out.insert(i, by);
    }
    out
}

/// What counts against a policy while folding conversations.
#[derive(Clone, Debug, Default)]
pub(crate) struct Hits {
    pub(crate) count: crate::analysis::Count,
    pub(crate) first_ns: Option<i64>,
    pub(crate) last_ns: Option<i64>,
    pub(crate) outcomes: BTreeMap<crate::outcome::Outcome, u64>,
    /// Endpoints it decided for, per direction.
    pub(crate) egress_seen: BTreeSet<EndpointIdx>,
    pub(crate) ingress_seen: BTreeSet<EndpointIdx>,
}

/// Thresholds of the broad condition (of absolute and default policies:
/// a catch-all is meant to be wide).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Broadness {
    /// A side needs at least this many members to be called broad.
    pub min_members: u64,
    /// A side is broad when fewer than this percentage of its members used it.
    pub max_percent: u64,
}

impl Default for Broadness {
    fn default() -> Self {
        Broadness {
            min_members: 4,
            max_percent: 50,
        }
    }
}

impl Broadness {
    fn is_broad(&self, u: &Usage) -> bool {
        u.members >= self.min_members && u.seen * 100 < u.members * self.max_percent
    }
}

/// Statistics of every policy, in global order.
pub(crate) fn stats(
    table: &PolicyTable,
    hits: &[Hits],
    agents: Option<&[crate::analysis::AgentHits]>,
    broad: Broadness,
    time: impl Fn(i64) -> String,
) -> Vec<PolicyStats> {
    let mut out: Vec<(u32, PolicyStats)> = table
        .infos
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let h = &hits[i];
            let usage = |members: u64, seen: &BTreeSet<EndpointIdx>| {
                (members > 0).then_some(Usage {
                    seen: seen.len() as u64,
                    members,
                })
            };
            let consumers = usage(table.egress_members[i], &h.egress_seen);
            let providers = usage(table.ingress_members[i], &h.ingress_seen);
            let agent = agents.map(|a| a[i]);
            let shadowed_by = table.shadowed.get(&(i as u32)).cloned();
            let mut conditions = Vec::new();
            let written = matches!(p.rank, Rank::Absolute | Rank::Default);
            let traffic = h.count.flows > 0 || agent.is_some_and(|a| a.packets > 0);
            if shadowed_by.is_some() {
                conditions.push(Condition::Overshadowed);
            } else if written && !traffic {
                conditions.push(Condition::NoTraffic);
            }
            if written
                && h.count.flows > 0
                && [consumers, providers]
                    .iter()
                    .flatten()
                    .any(|u| broad.is_broad(u))
            {
                conditions.push(Condition::Broad);
            }
            let stats = PolicyStats {
                policy: p.clone(),
                hits: h.count,
                first_hit: h.first_ns.map(&time),
                last_hit: h.last_ns.map(&time),
                outcomes: h.outcomes.clone(),
                consumers,
                providers,
                agents: agent,
                shadowed_by: shadowed_by.unwrap_or_default(),
                conditions,
            };
            (table.position[i], stats)
        })
        .collect();
    out.sort_by_key(|(pos, _)| *pos);
    out.into_iter().map(|(_, s)| s).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broad_means_most_members_unused() {
        let b = Broadness::default();
        let u = |seen, members| Usage { seen, members };
        assert!(b.is_broad(&u(2, 10)), "2 of 10");
        assert!(b.is_broad(&u(1, 4)));
        assert!(!b.is_broad(&u(2, 4)), "half is not most");
        assert!(!b.is_broad(&u(0, 3)), "too few members to say");
        assert!(!b.is_broad(&u(10, 10)));
    }
}
