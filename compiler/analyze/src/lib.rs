//! Live policy analysis: observed flows judged against a policy version
//! (`schema/docs/analysis.md`).
//!
//! 1. **Verdict step** (streaming, one [`Tally`] per worker; [`Analyzer::read`]
//!    feeds it every flow file `ringfence_flows` reads): each flow is
//!    reduced to its conversation key (source, destination, protocol, port,
//!    pre-NAT destination) and judged once per key and worker with
//!    [`Compiled::verdict`] — the matcher `explain` uses, over the chains the
//!    per-node IRs are cut from — then only counted. Its outcome (permitted,
//!    escaped, rejected, misdropped; allowed or would-block without a
//!    network verdict) goes into a per-minute histogram.
//! 2. **Finish** ([`Analyzer::finish`]): conversations are merged and sorted,
//!    placed (workload groups, scopes), folded into per-policy statistics
//!    (hits, first and last hit, use of each side) and conditions (no
//!    traffic, overshadowed, broad), a scope graph, a timeline, the changes
//!    against a second version, and the agents' compliance reports.
//!
//! The result is an [`Analysis`]: serialisable (JSON), printable (text) and
//! renderable as one self-contained HTML page ([`html::render`]). It depends
//! only on the versions, the flows and the options, never on the order flows
//! arrive in or on the number of workers.

mod analysis;
mod compare;
mod error;
pub mod html;
mod outcome;
mod place;
mod policies;
mod read;
mod reports;
mod tally;
mod text;
mod timeline;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use rayon::prelude::*;
use ringfence_core::{Compiled, EndpointIdx, Side};
use ringfence_intent::Diagnostic;
use ringfence_intent::model::Intent;

pub use analysis::{
    AgentHits, Analysis, Brief, Bucket, ChangeGroup, Changes, Compliance, Condition, Conversation,
    Count, DriftCount, Edge, Input, InputFile, Judgement, NodeCompliance, PolicyStats, Timeline,
    Totals, Unreadable, Usage,
};
pub use error::AnalyzeError;
pub use outcome::{OUTCOMES, Outcome};
pub use policies::Broadness;
pub use reports::{Folded, PolicyCount, Reports, fold_reports, status_name};
pub use tally::{Observed, Tally};

use crate::place::Places;
use crate::policies::{Hits, PolicyTable};
use crate::tally::{Entry, Judged, Key, net_index};

/// A policy version to judge flows with: intent compiled against the
/// inventory, and the warnings of compiling it (the shadow findings).
#[derive(Clone, Copy)]
pub struct Version<'a> {
    /// How to name it (a revision, `working tree`, a directory).
    pub label: &'a str,
    /// The intent.
    pub intent: &'a Intent,
    /// What it compiled to.
    pub compiled: &'a Compiled,
    /// Warnings of checking and compiling.
    pub warnings: &'a [Diagnostic],
}

impl<'a> Version<'a> {
    /// `label`'s intent, what it compiled to and the warnings.
    pub fn new(
        label: &'a str,
        intent: &'a Intent,
        compiled: &'a Compiled,
        warnings: &'a [Diagnostic],
    ) -> Self {
        Version {
            label,
            intent,
            compiled,
            warnings,
        }
    }
}

/// Knobs of the analysis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// When a policy side counts as broad.
    pub broad: Broadness,
    /// At most this many buckets in the timeline.
    pub chart_buckets: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            broad: Broadness::default(),
            chart_buckets: 48,
        }
    }
}

/// Judges flows against one version (and optionally compares with another).
pub struct Analyzer<'a> {
    version: Version<'a>,
    against: Option<Version<'a>>,
    options: Options,
}

/// Who decided one side of a conversation, for the policy statistics.
#[derive(Clone, Copy)]
struct Decider {
    policy: u32,
    endpoint: EndpointIdx,
    egress: bool,
}

impl<'a> Analyzer<'a> {
    /// An analyzer of `version`, comparing with `against` if given.
    pub fn new(version: Version<'a>, against: Option<Version<'a>>, options: Options) -> Self {
        Analyzer {
            version,
            against,
            options,
        }
    }

    /// A fresh accumulator for one worker.
    pub fn tally(&self) -> Tally<'a> {
        Tally::new(self.version.compiled, self.against.map(|v| v.compiled))
    }

    /// Fold the merged tally (and the reports, if any) into the analysis.
    pub fn finish(&self, tally: Tally<'a>, input: Input, reports: Option<&Reports>) -> Analysis {
        let mut tally = tally;
        tally.flush();
        let span = tally.span;
        let (mut entries, slots) = tally.into_entries();
        entries.par_sort_by_cached_key(|(k, _)| k.sort_key());
        let c = self.version.compiled;
        let places = Places::new(c);
        let table = PolicyTable::new(&self.version);

        let judged: Vec<(Conversation, Vec<Decider>)> = entries
            .par_iter()
            .map(|(k, e)| self.conversation(&places, &table, k, e))
            .collect();

        // Per policy.
        let mut hits = vec![Hits::default(); table.len()];
        let mut totals = analysis::Totals {
            outcomes: Outcome::ALL
                .iter()
                .map(|o| (*o, Count::default()))
                .collect(),
            ..Default::default()
        };
        let mut graph: BTreeMap<(String, String), (BTreeMap<Outcome, u64>, u64)> = BTreeMap::new();
        let (mut first, mut last) = (None::<i64>, None::<i64>);
        for ((conv, deciders), (_, e)) in judged.iter().zip(&entries) {
            let ct = &e.counters;
            totals.all.add(&conv.count);
            totals.conversations += 1;
            for n in 0..3 {
                let o = outcome_of(e.allowed, n);
                let t = totals.outcomes.get_mut(&o).expect("every outcome");
                t.add(&Count {
                    flows: ct.flows[n],
                    packets: ct.packets[n],
                    bytes: ct.bytes[n],
                });
            }
            first = Some(first.map_or(ct.first_ns, |f| f.min(ct.first_ns)));
            last = Some(last.map_or(ct.last_ns, |l| l.max(ct.last_ns)));
            let edge = graph
                .entry((conv.from_scope.clone(), conv.to_scope.clone()))
                .or_default();
            add_outcomes(&mut edge.0, &conv.outcomes);
            edge.1 += conv.count.bytes;

            let mut seen_policies = BTreeSet::new();
            for d in deciders {
                let h = &mut hits[d.policy as usize];
                if d.egress {
                    h.egress_seen.insert(d.endpoint);
                } else {
                    h.ingress_seen.insert(d.endpoint);
                }
                // A policy deciding both sides counts the flow once.
                if seen_policies.insert(d.policy) {
                    h.count.add(&conv.count);
                    h.first_ns = Some(h.first_ns.map_or(ct.first_ns, |f| f.min(ct.first_ns)));
                    h.last_ns = Some(h.last_ns.map_or(ct.last_ns, |l| l.max(ct.last_ns)));
                    add_outcomes(&mut h.outcomes, &conv.outcomes);
                }
            }
        }

        let (agents, compliance) = match reports {
            Some(r) => {
                let (a, comp) = reports::fold(r, c, &table);
                (Some(a), Some(comp))
            }
            None => (None, None),
        };
        let policies = policies::stats(
            &table,
            &hits,
            agents.as_deref(),
            self.options.broad,
            rfc3339,
        );
        let conversations: Vec<Conversation> = judged.into_iter().map(|(c, _)| c).collect();
        let changes = self
            .against
            .is_some()
            .then(|| compare::changes(&conversations));
        let slots: BTreeMap<i64, [u64; OUTCOMES]> = slots.into_iter().collect();
        let mut input = input;
        input.first_seen = first.map(rfc3339);
        input.last_seen = last.map(rfc3339);
        Analysis {
            version: self.version.label.to_string(),
            against: self.against.map(|v| v.label.to_string()),
            input,
            totals,
            timeline: timeline::timeline(&slots, self.options.chart_buckets, rfc3339, span),
            graph: graph
                .into_iter()
                .map(|((from, to), (flows, bytes))| Edge {
                    from,
                    to,
                    flows,
                    bytes,
                })
                .collect(),
            policies,
            conversations,
            changes,
            compliance,
        }
    }

    fn conversation(
        &self,
        places: &Places,
        table: &PolicyTable,
        k: &Key,
        e: &Entry,
    ) -> (Conversation, Vec<Decider>) {
        let c = self.version.compiled;
        let j = e.verdicts[0].expect("the analysed version judges every conversation");
        let v = j.verdict;
        let to_addr = v.translation.map_or(k.dst(), |t| t.target);
        let (from, to) = (places.place(k.src()), places.place(to_addr));
        let ct = &e.counters;
        let mut outcomes = BTreeMap::new();
        for n in 0..3 {
            if ct.flows[n] > 0 {
                *outcomes.entry(outcome_of(e.allowed, n)).or_default() += ct.flows[n];
            }
        }
        let mut deciders = Vec::with_capacity(3);
        let sides = [(v.egress, true), (v.ingress, false)]
            .into_iter()
            .chain(v.translation.and_then(|t| t.node_hop).map(|s| (s, false)));
        for (side, egress) in sides {
            if let Side::Decided(d) = side
                && let Some(policy) = table.get(&c.policy(&d).id)
            {
                deciders.push(Decider {
                    policy,
                    endpoint: d.endpoint,
                    egress,
                });
            }
        }
        let conv = Conversation {
            src: k.src(),
            dst: k.dst(),
            proto: k.proto(),
            port: k.port(),
            orig_dst: k.orig().map(|o| o.0),
            orig_port: k.orig().and_then(|o| o.1),
            from: from.group,
            to: to.group,
            from_scope: from.scope,
            to_scope: to.scope,
            judgement: judgement(c, &j, k),
            against: self
                .against
                .zip(e.verdicts[1])
                .map(|(a, j)| judgement(a.compiled, &j, k)),
            count: Count {
                flows: ct.flows(),
                packets: ct.packets(),
                bytes: ct.bytes(),
            },
            first_seen: rfc3339(ct.first_ns),
            last_seen: rfc3339(ct.last_ns),
            outcomes,
        };
        (conv, deciders)
    }
}

fn outcome_of(allowed: bool, net: usize) -> Outcome {
    use ringfence_schema::flow::NetworkVerdict;
    let v = [
        Some(NetworkVerdict::Allowed),
        Some(NetworkVerdict::Dropped),
        None,
    ][net];
    debug_assert_eq!(net_index(v), net);
    Outcome::of(allowed, v)
}

fn add_outcomes(into: &mut BTreeMap<Outcome, u64>, from: &BTreeMap<Outcome, u64>) {
    for (o, n) in from {
        *into.entry(*o).or_default() += n;
    }
}

fn judgement(c: &Compiled, j: &Judged, k: &Key) -> Judgement {
    use ringfence_schema::ir::Action;
    let v = &j.verdict;
    let via = v.translation.map(|t| {
        let (addr, port): (IpAddr, Option<u16>) = match k.orig() {
            Some((o, op)) if j.at_orig => (o, op.or(k.port())),
            _ => (k.dst(), k.port()),
        };
        t.describe(addr, port)
    });
    let (egress, ingress, node_hop) = c.side_infos(v);
    Judgement {
        verdict: if v.allowed() {
            Action::Allow
        } else {
            Action::Deny
        },
        passes: v.passes(),
        egress,
        ingress,
        node_hop,
        via,
    }
}

/// RFC 3339 in UTC (`2024-05-01T12:00:00Z`, with a fraction when there is one).
pub(crate) fn rfc3339(ns: i64) -> String {
    ringfence_flows::Timestamp::from_unix_nanos(ns).to_rfc3339()
}
