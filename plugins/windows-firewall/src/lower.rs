//! First-match chains → order-independent allow regions.
//!
//! Windows Firewall is block-wins: a packet passes if some allow rule
//! matches and no block rule does, whatever the order. So a chain is lowered
//! to the exact region it lets through, peer × protocol × port, as disjoint
//! boxes each traced to the IR rule that decides it; only allows are
//! emitted, under profiles whose default action is block.
//!
//! For each concrete protocol, the port axis is cut at every rule's range
//! boundaries into elementary segments; on each segment the rules are walked
//! in order, each taking the still-undecided addresses its peer set covers.
//! Segments with the same matching rules give the same answer, so each
//! distinct combination is computed once.

use std::collections::BTreeMap;

use ringfence_schema::interval::{self, IntervalSet, PortSet};
use ringfence_schema::ir::{Action, Chain, Mode, NodeIr, Rule};
use ringfence_schema::net::Proto;

use crate::ranges::Addrs;

/// The protocols a flow can have.
pub(crate) const PROTOS: [Proto; 4] = [Proto::Tcp, Proto::Udp, Proto::Sctp, Proto::Icmp];

/// A box of allowed traffic: `proto` (`Any` = all four) × `ports` (`None`:
/// every port, and ICMP) × `addrs`, decided by `rule` (`None`: traffic no
/// chain judges).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Piece {
    pub(crate) rule: Option<usize>,
    pub(crate) proto: Proto,
    pub(crate) ports: Option<PortSet>,
    pub(crate) addrs: Addrs,
}

/// The addresses of a rule's peer (every address if it has none).
pub(crate) fn peer_addrs(ir: &NodeIr, r: &Rule) -> Addrs {
    let Some(s) = r.peer.as_deref().and_then(|n| ir.set(n)) else {
        return Addrs::all();
    };
    let v4 = s.v4.iter().map(|&n| n.into());
    let (v4, v6) = interval::of_nets(v4.chain(s.v6.iter().map(|&n| n.into())));
    Addrs { v4, v6 }
}

/// The region `chain` lets through (allows, and denies of an analyze-mode
/// chain, which pass), as disjoint pieces.
pub(crate) fn lower(ir: &NodeIr, chain: &Chain) -> Vec<Piece> {
    let peers: Vec<Addrs> = chain.rules.iter().map(|r| peer_addrs(ir, r)).collect();
    let passes = |r: &Rule| r.action == Action::Allow || chain.mode == Mode::Analyze;
    // Per protocol: (rule, addrs) → ports.
    let mut per_proto: BTreeMap<Proto, BTreeMap<(usize, Addrs), PortSet>> = BTreeMap::new();
    for proto in PROTOS {
        let rules: Vec<usize> = (0..chain.rules.len())
            .filter(|&i| chain.rules[i].proto.matches(proto))
            .collect();
        let mut acc: BTreeMap<(usize, Addrs), Vec<(u16, u16)>> = BTreeMap::new();
        let mut memo: BTreeMap<Vec<usize>, Vec<(usize, Addrs)>> = BTreeMap::new();
        let mut decide = |matching: Vec<usize>| -> Vec<(usize, Addrs)> {
            memo.entry(matching)
                .or_insert_with_key(|matching| {
                    let mut undecided = Addrs::all();
                    let mut out = Vec::new();
                    for &i in matching {
                        let taken = undecided.intersect(&peers[i]);
                        if !taken.is_empty() {
                            undecided = undecided.subtract(&peers[i]);
                            if passes(&chain.rules[i]) {
                                out.push((i, taken));
                            }
                        }
                        if undecided.is_empty() {
                            break;
                        }
                    }
                    out
                })
                .clone()
        };
        if proto.has_ports() {
            let mut cuts: Vec<u32> = vec![0, 65536];
            for &i in &rules {
                for p in &chain.rules[i].ports {
                    cuts.push(p.start.into());
                    cuts.push(u32::from(p.end) + 1);
                }
            }
            cuts.sort_unstable();
            cuts.dedup();
            let ports: Vec<PortSet> = rules
                .iter()
                .map(|&i| PortSet::from_port_ranges(&chain.rules[i].ports))
                .collect();
            for w in cuts.windows(2) {
                let (lo, hi) = (w[0] as u16, (w[1] - 1) as u16);
                let matching: Vec<usize> = rules
                    .iter()
                    .zip(&ports)
                    .filter(|(_, p)| p.contains(lo))
                    .map(|(&i, _)| i)
                    .collect();
                for key in decide(matching) {
                    acc.entry(key).or_default().push((lo, hi));
                }
            }
        } else {
            // No ports: only rules without ports match.
            let matching: Vec<usize> = rules
                .iter()
                .copied()
                .filter(|&i| chain.rules[i].ports.is_empty())
                .collect();
            for key in decide(matching) {
                acc.entry(key).or_default().push((0, u16::MAX));
            }
        }
        per_proto.insert(
            proto,
            acc.into_iter()
                .map(|(k, v)| (k, IntervalSet::from_ranges(v)))
                .collect(),
        );
    }
    merge_any(per_proto)
}

/// Pieces that cover every port of every protocol with the same rule and
/// addresses become one `Any` piece (a catch-all becomes one rule).
fn merge_any(mut per_proto: BTreeMap<Proto, BTreeMap<(usize, Addrs), PortSet>>) -> Vec<Piece> {
    let mut out = Vec::new();
    let tcp_keys: Vec<(usize, Addrs)> = per_proto
        .get(&Proto::Tcp)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    for key in tcp_keys {
        let everywhere = PROTOS.iter().all(|p| {
            per_proto
                .get(p)
                .and_then(|m| m.get(&key))
                .is_some_and(|r| r.is_full())
        });
        if everywhere {
            for p in PROTOS {
                if let Some(m) = per_proto.get_mut(&p) {
                    m.remove(&key);
                }
            }
            out.push(Piece {
                rule: Some(key.0),
                proto: Proto::Any,
                ports: None,
                addrs: key.1,
            });
        }
    }
    for (proto, m) in per_proto {
        for ((rule, addrs), ports) in m {
            out.push(Piece {
                rule: Some(rule),
                proto,
                ports: (proto.has_ports() && !ports.is_full()).then_some(ports),
                addrs,
            });
        }
    }
    out.sort();
    out
}

/// Remove (proto, port) points from pieces (ports a host-network pod owns,
/// judged by its own chain): `Any` pieces are split per protocol first.
pub(crate) fn remove_ports(pieces: Vec<Piece>, claimed: &[(Proto, u16)]) -> Vec<Piece> {
    if claimed.is_empty() {
        return pieces;
    }
    let mut out = Vec::new();
    for p in pieces {
        let protos: Vec<Proto> = if p.proto == Proto::Any {
            PROTOS.to_vec()
        } else {
            vec![p.proto]
        };
        let split = protos.len() > 1 && protos.iter().any(|q| claimed.iter().any(|c| c.0 == *q));
        if !split {
            if let [proto] = protos[..] {
                if let Some(q) = restrict(&p, proto, claimed) {
                    out.push(q);
                }
                continue;
            }
            out.push(p);
            continue;
        }
        for proto in protos {
            let mut q = p.clone();
            q.proto = proto;
            if let Some(q) = restrict(&q, proto, claimed) {
                out.push(q);
            }
        }
    }
    out.sort();
    out
}

fn restrict(p: &Piece, proto: Proto, claimed: &[(Proto, u16)]) -> Option<Piece> {
    let holes: Vec<(u16, u16)> = claimed
        .iter()
        .filter(|c| c.0 == proto)
        .map(|c| (c.1, c.1))
        .collect();
    if holes.is_empty() || !proto.has_ports() {
        return Some(p.clone());
    }
    let ports = p
        .ports
        .clone()
        .unwrap_or_else(PortSet::full)
        .difference(&IntervalSet::from_ranges(holes));
    (!ports.is_empty()).then(|| Piece {
        ports: Some(ports),
        ..p.clone()
    })
}

/// Only the traffic to `proto`/`port`, as pieces of that protocol.
pub(crate) fn only_port(pieces: &[Piece], proto: Proto, port: u16) -> Vec<Piece> {
    pieces
        .iter()
        .filter(|p| p.proto == Proto::Any || p.proto == proto)
        .filter(|p| p.ports.as_ref().is_none_or(|r| r.contains(port)))
        .map(|p| Piece {
            proto,
            ports: Some(PortSet::range(port, port)),
            ..p.clone()
        })
        .collect()
}
