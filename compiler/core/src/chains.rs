//! Build and compress the chain of every signature group, then name
//! everything: merged sets are interned, rules and chains get their ids, and
//! chains equal in content are shared.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rayon::prelude::*;
use ringfence_intent::Diagnostic;
use ringfence_intent::model::{Action, Direction, Intent, PolicyAction, PolicyRank, Proto, Span};
use ringfence_schema::ir::{Chain, Rule};
use ringfence_schema::net::PortRange;

use crate::compress::{Findings, PeerRef, RawRule, compress, parts};
use crate::diag;
use crate::ids::{hash_hex, ident, set_name};
use crate::idx::{ChainIdx, PolicyIdx, SetIdx};
use crate::interval::{Addrs, PortSet};
use crate::membership::dir_index;
use crate::order::{Item, Sig};
use crate::resolve::{IngressPeer, PolicyPlan, Resolved, SetKey, dir_name};

/// A rule with its set as an index, for fast evaluation.
#[derive(Clone, Debug)]
pub(crate) struct FastRule {
    pub(crate) policy: PolicyIdx,
    pub(crate) action: Action,
    pub(crate) peer: Option<SetIdx>,
    pub(crate) proto: Proto,
    pub(crate) ports: Vec<PortRange>,
}

/// A finished chain: the IR form and the fast form side by side.
#[derive(Clone, Debug)]
pub(crate) struct CompiledChain {
    pub(crate) chain: Chain,
    pub(crate) fast: Vec<FastRule>,
}

/// The chains of all groups.
pub(crate) struct Chains {
    pub(crate) chains: Vec<CompiledChain>,
    /// Group index → chain index.
    pub(crate) group_chain: Vec<ChainIdx>,
    /// Name of every set (by set index).
    pub(crate) set_names: Vec<String>,
}

/// Where a rule sits in a chain: a `pass` skips to the end of its section.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Section {
    /// Quarantine and implicit rules.
    Top,
    /// Absolute policies.
    Absolute,
    /// Default policies.
    Default,
    /// The catch-all.
    CatchAll,
}

/// A rule before passes are resolved.
struct Slot {
    rule: RawRule,
    section: Section,
    pass: bool,
}

/// Expand a signature into rules, in order. A `pass` rule is replaced by the
/// rules after its section, each narrowed to what the pass matches: the
/// flows it matches are decided exactly as if it and the rest of its
/// section were not there.
pub(crate) fn expand(sig: &Sig, r: &Resolved) -> Vec<RawRule> {
    let mut slots: Vec<Slot> = Vec::new();
    let peer = |p: Option<SetIdx>| p.map_or(PeerRef::Any, PeerRef::Set);
    let all = |policy: PolicyIdx, action: Action| RawRule {
        policy,
        action,
        peer: PeerRef::Any,
        proto: Proto::Any,
        ports: Vec::new(),
        log: false,
    };
    let top = |rule: RawRule| Slot {
        rule,
        section: Section::Top,
        pass: false,
    };
    let of_plan = |p: &PolicyPlan, rule: RawRule| Slot {
        rule,
        section: match p.rank {
            PolicyRank::Absolute => Section::Absolute,
            PolicyRank::Default => Section::Default,
        },
        pass: p.action == PolicyAction::Pass,
    };
    for item in &sig.items {
        match item {
            Item::Quarantine => {
                for x in r.exceptions.iter().filter(|x| x.direction == sig.direction) {
                    for t in &x.rules {
                        slots.push(top(RawRule {
                            policy: x.info,
                            action: Action::Allow,
                            peer: peer(t.peer),
                            proto: t.proto,
                            ports: t.ports.clone(),
                            log: false,
                        }));
                    }
                }
                slots.push(top(all(
                    r.quarantine_deny[dir_index(sig.direction)],
                    Action::Deny,
                )));
            }
            Item::SvcReturn { key, proto, port } => {
                let ret = &r.svc_returns[key];
                slots.push(top(RawRule {
                    policy: ret.info,
                    action: Action::Allow,
                    peer: PeerRef::Set(ret.peer),
                    proto: *proto,
                    ports: vec![PortRange::single(*port)],
                    log: false,
                }));
            }
            Item::Guard {
                info,
                set,
                proto,
                port,
                log,
            } => slots.push(top(RawRule {
                policy: *info,
                action: Action::Deny,
                peer: PeerRef::Set(*set),
                proto: *proto,
                ports: vec![PortRange::single(*port)],
                log: *log,
            })),
            Item::Egress(pi) => {
                let p = &r.plans[pi.index()];
                for t in &p.egress_rules {
                    slots.push(of_plan(
                        p,
                        RawRule {
                            policy: p.info,
                            action: p.action.decision().unwrap_or(Action::Allow),
                            peer: peer(t.peer),
                            proto: t.proto,
                            ports: t.ports.clone(),
                            log: p.log,
                        },
                    ));
                }
            }
            Item::Ingress {
                plan,
                direct,
                named,
                via,
            } => {
                let p = &r.plans[plan.index()];
                let from = match p.ingress_peer {
                    IngressPeer::Any => PeerRef::Any,
                    IngressPeer::Set(s) => PeerRef::Set(s),
                    IngressPeer::NoAddress => unreachable!("only plans with a consumer peer apply"),
                };
                let rule = |proto: Proto, ports: Vec<PortRange>| RawRule {
                    policy: p.info,
                    action: p.action.decision().unwrap_or(Action::Allow),
                    peer: from.clone(),
                    proto,
                    ports,
                    log: p.log,
                };
                if *direct {
                    slots.push(of_plan(p, rule(p.proto, p.ports.clone())));
                }
                let mut by_proto: BTreeMap<Proto, Vec<PortRange>> = BTreeMap::new();
                for &(proto, port) in named.iter().chain(via) {
                    by_proto
                        .entry(proto)
                        .or_default()
                        .push(PortRange::single(port));
                }
                for (proto, ports) in by_proto {
                    slots.push(of_plan(p, rule(proto, ports)));
                }
            }
            Item::CatchAll(info, action) => slots.push(Slot {
                rule: all(*info, *action),
                section: Section::CatchAll,
                pass: false,
            }),
        }
    }
    // From the end, so that the rules a pass leads to are already resolved.
    let mut rev: Vec<(RawRule, Section)> = Vec::with_capacity(slots.len());
    for slot in slots.into_iter().rev() {
        if !slot.pass {
            rev.push((slot.rule, slot.section));
            continue;
        }
        let after: Vec<(RawRule, Section)> = rev
            .iter()
            .filter(|(_, sec)| *sec > slot.section)
            .rev()
            .filter_map(|(t, sec)| narrow(t, &slot.rule, &r.sets.addrs).map(|n| (n, *sec)))
            .collect();
        rev.extend(after.into_iter().rev().map(|(n, _)| (n, slot.section)));
    }
    rev.into_iter().rev().map(|(rule, _)| rule).collect()
}

/// Rule `t` limited to the flows rule `p` matches, if any are left.
fn narrow(t: &RawRule, p: &RawRule, sets: &[Addrs]) -> Option<RawRule> {
    let addrs = |x: &PeerRef| -> Option<Addrs> {
        match x {
            PeerRef::Any => None,
            PeerRef::Set(i) => Some(sets[i.index()].clone()),
            PeerRef::New(a, _) => Some(a.clone()),
        }
    };
    let peer = match (&t.peer, &p.peer) {
        (PeerRef::Any, x) | (x, PeerRef::Any) => x.clone(),
        (a, b) if a == b => a.clone(),
        (a, b) => {
            let both = addrs(a)
                .expect("a set")
                .intersection(&addrs(b).expect("a set"));
            if both.is_empty() {
                return None;
            }
            let mut made: Vec<Vec<SetIdx>> = Vec::new();
            for x in parts(a) {
                for y in parts(b) {
                    let mut z: Vec<SetIdx> = x.iter().chain(&y).copied().collect();
                    z.sort_unstable();
                    z.dedup();
                    made.push(z);
                }
            }
            made.sort();
            made.dedup();
            PeerRef::New(both, made)
        }
    };
    let proto = match (t.proto, p.proto) {
        (Proto::Any, x) | (x, Proto::Any) => x,
        (a, b) if a == b => a,
        _ => return None,
    };
    let ports = if !proto.has_ports() {
        Vec::new()
    } else {
        match (t.ports.is_empty(), p.ports.is_empty()) {
            (true, _) => p.ports.clone(),
            (false, true) => t.ports.clone(),
            (false, false) => {
                let both = PortSet::from_port_ranges(&t.ports)
                    .intersection(&PortSet::from_port_ranges(&p.ports));
                if both.is_empty() {
                    return None;
                }
                both.to_port_ranges()
            }
        }
    };
    Some(RawRule {
        policy: t.policy,
        action: t.action,
        peer,
        proto,
        ports,
        log: t.log,
    })
}

/// Build, compress and name every group's chain; report shadowed and
/// conflicting policies.
pub(crate) fn build(
    intent: &Intent,
    groups: &[Sig],
    r: &mut Resolved,
) -> (Chains, Vec<Diagnostic>) {
    let analyzed = r.infos.policies;
    let compressed: Vec<(Vec<RawRule>, Findings)> = {
        let r: &Resolved = r;
        groups
            .par_iter()
            .map(|sig| compress(expand(sig, r), &r.sets.addrs, |p| p.index() < analyzed))
            .collect()
    };

    // Intern the sets made by merging, in group order (deterministic).
    let mut findings = Vec::with_capacity(compressed.len());
    let mut group_rules: Vec<Vec<(RawRule, Option<SetIdx>)>> = Vec::with_capacity(compressed.len());
    for (rules, f) in compressed {
        findings.push(f);
        let rules = rules
            .into_iter()
            .map(|mut rule| {
                let set = match std::mem::replace(&mut rule.peer, PeerRef::Any) {
                    PeerRef::Any => None,
                    PeerRef::Set(s) => Some(s),
                    PeerRef::New(a, parts) => {
                        let info = &r.infos.list[rule.policy.index()];
                        let stem = info.name.clone();
                        let defs: Vec<String> = parts
                            .iter()
                            .map(|meet| {
                                let d: Vec<&str> = meet
                                    .iter()
                                    .map(|&p| r.sets.defs[p.index()].as_str())
                                    .collect();
                                d.join(" & ")
                            })
                            .collect();
                        let def = format!("union {} [{}]", info.id, defs.join(" | "));
                        Some(
                            r.sets
                                .intern(SetKey::Union(rule.policy, parts), || def, a, &stem),
                        )
                    }
                };
                (rule, set)
            })
            .collect();
        group_rules.push(rules);
    }

    let set_names: Vec<String> = r
        .sets
        .stems
        .iter()
        .zip(&r.sets.defs)
        .map(|(stem, def)| set_name(stem, def.as_bytes()))
        .collect();

    let named: Vec<CompiledChain> = groups
        .par_iter()
        .zip(group_rules)
        .map(|(sig, rules)| finish(sig, rules, r, &set_names))
        .collect();
    let mut by_id: HashMap<String, ChainIdx> = HashMap::new();
    let mut chains = Vec::new();
    let mut group_chain = Vec::with_capacity(named.len());
    for c in named {
        let idx = *by_id.entry(c.chain.id.clone()).or_insert_with(|| {
            chains.push(c);
            ChainIdx::new(chains.len() - 1)
        });
        group_chain.push(idx);
    }

    let diags = findings_to_diags(intent, r, &findings);
    (
        Chains {
            chains,
            group_chain,
            set_names,
        },
        diags,
    )
}

fn finish(
    sig: &Sig,
    rules: Vec<(RawRule, Option<SetIdx>)>,
    r: &Resolved,
    set_names: &[String],
) -> CompiledChain {
    let dir = dir_name(sig.direction);
    let mut ir_rules = Vec::with_capacity(rules.len());
    let mut fast = Vec::with_capacity(rules.len());
    for (rule, set) in rules {
        let info = &r.infos.list[rule.policy.index()];
        let ports: String = rule.ports.iter().map(|p| format!("{p},")).collect();
        let id = format!(
            "{}-{}",
            ident(&info.name, true, 19, "rule"),
            hash_hex(
                &[
                    info.id.as_bytes(),
                    rule.action.to_string().as_bytes(),
                    set.map_or(b"any".as_slice(), |s| set_names[s.index()].as_bytes()),
                    rule.proto.as_str().as_bytes(),
                    ports.as_bytes(),
                    &[u8::from(rule.log)],
                    dir.as_bytes(),
                ],
                12
            )
        );
        ir_rules.push(Rule {
            id,
            policy: info.id.clone(),
            action: rule.action,
            peer: set.map(|s| set_names[s.index()].clone()),
            proto: rule.proto,
            ports: rule.ports.clone(),
            log: rule.log,
        });
        fast.push(FastRule {
            policy: rule.policy,
            action: rule.action,
            peer: set,
            proto: rule.proto,
            ports: rule.ports,
        });
    }
    let mode = match sig.mode {
        ringfence_schema::ir::Mode::Enforce => "enforce",
        ringfence_schema::ir::Mode::Analyze => "analyze",
    };
    let mut parts: Vec<&[u8]> = vec![dir.as_bytes(), mode.as_bytes()];
    parts.extend(ir_rules.iter().map(|r| r.id.as_bytes()));
    let prefix = match sig.direction {
        Direction::Ingress => "in",
        Direction::Egress => "eg",
    };
    CompiledChain {
        chain: Chain {
            id: format!("{prefix}_{}", hash_hex(&parts, 20)),
            direction: sig.direction,
            mode: sig.mode,
            rules: ir_rules,
        },
        fast,
    }
}

fn findings_to_diags(intent: &Intent, r: &Resolved, findings: &[Findings]) -> Vec<Diagnostic> {
    let mut kept = BTreeSet::new();
    let mut shadowed: BTreeMap<PolicyIdx, BTreeSet<PolicyIdx>> = BTreeMap::new();
    let mut conflicts = BTreeSet::new();
    for f in findings {
        kept.extend(f.kept.iter().copied());
        for (p, by) in &f.shadowed {
            shadowed.entry(*p).or_default().extend(by.iter().copied());
        }
        conflicts.extend(f.conflicts.iter().copied());
    }
    let span_of = |i: PolicyIdx| -> Span { intent.policies[i.index()].span };
    let mut out = Vec::new();
    // A shadowed policy is reported once, as shadowed, not also as conflicting.
    shadowed.retain(|p, _| !kept.contains(p));
    conflicts.retain(|(_, later)| !shadowed.contains_key(later));
    for (p, by) in shadowed {
        let by: Vec<(String, Option<Span>)> = by
            .into_iter()
            .filter(|&b| b != p)
            .map(|b| {
                let span = (b.index() < r.infos.policies).then(|| span_of(b));
                (r.infos.list[b.index()].id.clone(), span)
            })
            .collect();
        out.push(diag::shadowed_policy(
            &r.infos.list[p.index()].id,
            span_of(p),
            &by,
        ));
    }
    for (earlier, later) in conflicts {
        let e = &r.infos.list[earlier.index()];
        let l = &r.infos.list[later.index()];
        out.push(diag::conflicting_policy(
            (&l.id, span_of(later), &l.action.to_string()),
            (&e.id, span_of(earlier), &e.action.to_string()),
        ));
    }
    out
}
