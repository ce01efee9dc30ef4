//! Chain compression and the analysis that comes with it.
//!
//! A chain's rules are first-match, so a rule whose whole match space
//! (peer addresses × protocol × ports) is covered by the *union* of earlier
//! rules never decides anything and can go. The check is exact: each rule's
//! space is a list of disjoint boxes per protocol, and every earlier rule is
//! subtracted from it (box subtraction over interval sets). Along the way,
//! an earlier rule of the opposite action that takes part of a later rule's
//! space is a conflict. Then adjacent rules of the same policy, action and
//! logging are merged (same protocol and ports: union of peers; same peer and
//! protocol: union of ports), which never changes which policy decides.
//!
//! The box list of one rule may grow with every subtraction; past
//! [`MAX_BOXES`] the analysis of that rule stops and the rule is kept, so
//! compression stays safe and bounded even on adversarial chains.

use std::borrow::Cow;

use ringfence_schema::ir::Action;
use ringfence_schema::net::{PortRange, Proto, normalize_ports};

use crate::idx::{PolicyIdx, SetIdx};
use crate::interval::{Addrs, PortSet};

/// Past this many boxes the shadow analysis of one rule gives up (keeping it).
pub(crate) const MAX_BOXES: usize = 512;

/// A rule's peer before sets get their final names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PeerRef {
    /// Every address.
    Any,
    /// An interned set.
    Set(SetIdx),
    /// A set made by merging or narrowing, to be interned: its content and
    /// what it is made of, as a union of intersections of interned sets
    /// (each ascending, the list ascending).
    New(Addrs, Vec<Vec<SetIdx>>),
}

/// A rule as the chain builder makes it.
#[derive(Clone, Debug)]
pub(crate) struct RawRule {
    /// Its policy info.
    pub(crate) policy: PolicyIdx,
    pub(crate) action: Action,
    pub(crate) peer: PeerRef,
    pub(crate) proto: Proto,
    pub(crate) ports: Vec<PortRange>,
    pub(crate) log: bool,
}

/// What compressing one chain found.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    /// Policies with a rule that was kept (it decides some flow).
    pub(crate) kept: Vec<PolicyIdx>,
    /// Policies with a rule that was dropped as shadowed, and the policies
    /// whose rules covered it.
    pub(crate) shadowed: Vec<(PolicyIdx, Vec<PolicyIdx>)>,
    /// (earlier policy, later policy): the earlier one, with the opposite
    /// action, decides part of what the later one matches.
    pub(crate) conflicts: Vec<(PolicyIdx, PolicyIdx)>,
}

/// The five protocol classes a flow can have: `any` in a rule means all of
/// them, including protocols the intent cannot name.
const PROTOS: [Proto; 4] = [Proto::Tcp, Proto::Udp, Proto::Sctp, Proto::Icmp];
const CLASSES: usize = 5;

fn classes(p: Proto) -> &'static [usize] {
    match p {
        Proto::Any => &[0, 1, 2, 3, 4],
        Proto::Tcp => &[0],
        Proto::Udp => &[1],
        Proto::Sctp => &[2],
        Proto::Icmp => &[3],
    }
}

/// Whether a protocol class has ports (for the others, the port dimension is
/// a single point, represented by the full port set).
fn class_has_ports(c: usize) -> bool {
    c < 3 && PROTOS[c].has_ports()
}

type Boxes<'a> = [Vec<(Cow<'a, Addrs>, PortSet)>; CLASSES];

/// Compress one chain. `sets` resolves [`PeerRef::Set`]; `analyzed` says
/// which policies take part in the shadow and conflict findings (policies
/// proper, not quarantine, catch-alls or implicit rules). The last rule
/// matches everything and is kept as is.
pub(crate) fn compress(
    mut rules: Vec<RawRule>,
    sets: &[Addrs],
    analyzed: impl Fn(PolicyIdx) -> bool,
) -> (Vec<RawRule>, Findings) {
    for r in &mut rules {
        normalize_ports(&mut r.ports);
        if !r.proto.has_ports() {
            r.ports.clear();
        }
    }
    let full = Addrs::full();
    let mut findings = Findings::default();
    let mut keep = vec![true; rules.len()];
    let last = rules.len().saturating_sub(1);
    let mut kept_idx: Vec<usize> = Vec::with_capacity(rules.len());
    for i in 0..rules.len() {
        if i == last {
            kept_idx.push(i);
            break;
        }
        let r = &rules[i];
        let peer = resolve(&r.peer, sets, &full);
        let ports = PortSet::from_port_ranges(&r.ports);
        let mut remaining: Boxes<'_> = Default::default();
        for &c in classes(r.proto) {
            let ps = if class_has_ports(c) {
                ports.clone()
            } else {
                PortSet::full()
            };
            remaining[c].push((Cow::Borrowed(peer), ps));
        }
        let mut by = Vec::new();
        let mut shadowed = false;
        for &j in &kept_idx {
            let e = &rules[j];
            let e_peer = resolve(&e.peer, sets, &full);
            let e_ports = PortSet::from_port_ranges(&e.ports);
            let mut touched = false;
            let mut total = 0;
            for &c in classes(e.proto) {
                if remaining[c].is_empty() {
                    continue;
                }
                let e_ps = if class_has_ports(c) {
                    &e_ports
                } else {
                    &FULL_PORTS
                };
                let mut next = Vec::with_capacity(remaining[c].len());
                for (a, ps) in std::mem::take(&mut remaining[c]) {
                    if !ps.intersects(e_ps) || !a.intersects(e_peer) {
                        next.push((a, ps));
                        continue;
                    }
                    touched = true;
                    if !e_peer.is_full() {
                        let outside = a.difference(e_peer);
                        if !outside.is_empty() {
                            next.push((Cow::Owned(outside), ps.clone()));
                        }
                    }
                    let rest = ps.difference(e_ps);
                    if !rest.is_empty() {
                        let inside = if e_peer.is_full() {
                            a
                        } else {
                            Cow::Owned(a.intersection(e_peer))
                        };
                        next.push((inside, rest));
                    }
                }
                total += next.len();
                remaining[c] = next;
            }
            if touched {
                by.push(e.policy);
                // An earlier rule wholly inside this one, with the other
                // action, is a carve-out (an exception written first): the
                // usual pattern, not a conflict worth a warning.
                let carve_out = (r.proto == Proto::Any || r.proto == e.proto)
                    && e_peer.difference(peer).is_empty()
                    && (r.ports.is_empty() || (!e.ports.is_empty() && e_ports.is_subset(&ports)));
                if e.action != r.action && !carve_out && analyzed(e.policy) && analyzed(r.policy) {
                    findings.conflicts.push((e.policy, r.policy));
                }
            }
            if remaining.iter().all(Vec::is_empty) {
                shadowed = true;
                break;
            }
            if total > MAX_BOXES {
                break;
            }
        }
        if shadowed {
            keep[i] = false;
            if analyzed(r.policy) {
                by.sort_unstable();
                by.dedup();
                findings.shadowed.push((r.policy, by));
            }
        } else {
            kept_idx.push(i);
            if analyzed(r.policy) {
                findings.kept.push(r.policy);
            }
        }
    }

    let mut out: Vec<RawRule> = Vec::with_capacity(kept_idx.len());
    for (r, k) in rules.into_iter().zip(keep) {
        if !k {
            continue;
        }
        if let Some(prev) = out.last_mut()
            && merge(prev, &r, sets)
        {
            continue;
        }
        out.push(r);
    }
    (out, findings)
}

static FULL_PORTS: std::sync::LazyLock<PortSet> = std::sync::LazyLock::new(PortSet::full);

/// The addresses a peer stands for.
fn resolve<'a>(p: &'a PeerRef, sets: &'a [Addrs], full: &'a Addrs) -> &'a Addrs {
    match p {
        PeerRef::Any => full,
        PeerRef::Set(s) => &sets[s.index()],
        PeerRef::New(a, _) => a,
    }
}

/// What a peer is made of: a union of intersections of interned sets.
pub(crate) fn parts(p: &PeerRef) -> Vec<Vec<SetIdx>> {
    match p {
        PeerRef::Any => Vec::new(),
        PeerRef::Set(s) => vec![vec![*s]],
        PeerRef::New(_, parts) => parts.clone(),
    }
}

/// Merge `r` into `prev` if that changes no verdict and no deciding policy.
fn merge(prev: &mut RawRule, r: &RawRule, sets: &[Addrs]) -> bool {
    if prev.policy != r.policy || prev.action != r.action || prev.log != r.log {
        return false;
    }
    if prev.proto != r.proto {
        return false;
    }
    if prev.ports == r.ports {
        prev.peer = match (&prev.peer, &r.peer) {
            (PeerRef::Any, _) | (_, PeerRef::Any) => PeerRef::Any,
            (a, b) if a == b => return true,
            (a, b) => {
                let full = Addrs::full();
                let mut p = parts(a);
                p.extend(parts(b));
                p.sort_unstable();
                p.dedup();
                PeerRef::New(resolve(a, sets, &full).union(resolve(b, sets, &full)), p)
            }
        };
        return true;
    }
    let same_peer = match (&prev.peer, &r.peer) {
        (PeerRef::Any, PeerRef::Any) => true,
        (PeerRef::Set(a), PeerRef::Set(b)) => a == b,
        (PeerRef::New(a, _), PeerRef::New(b, _)) => a == b,
        (PeerRef::Set(s), PeerRef::New(a, _)) | (PeerRef::New(a, _), PeerRef::Set(s)) => {
            &sets[s.index()] == a
        }
        _ => false,
    };
    if same_peer {
        // An empty list is every port, which absorbs the other list.
        if prev.ports.is_empty() || r.ports.is_empty() {
            prev.ports.clear();
        } else {
            prev.ports.extend_from_slice(&r.ports);
            normalize_ports(&mut prev.ports);
        }
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use proptest::prelude::*;
    use ringfence_schema::net::ports_match;

    use super::*;
    use crate::interval::IntervalSet;

    /// A rule over a tiny universe: addresses 10.0.0.0-7, ports 0-7.
    fn rule(
        policy: u32,
        allow: bool,
        peer: Option<(u8, u8)>,
        proto: u8,
        ports: Option<(u16, u16)>,
    ) -> (RawRule, Option<Addrs>) {
        let proto = [Proto::Any, Proto::Tcp, Proto::Udp, Proto::Icmp][proto as usize % 4];
        let ports = match ports {
            Some((a, b)) if proto.has_ports() => {
                let (a, b) = (a % 8, b % 8);
                vec![PortRange {
                    start: a.min(b),
                    end: a.max(b),
                }]
            }
            _ => Vec::new(),
        };
        let addrs = peer.map(|(a, b)| {
            let (lo, hi) = ((a % 8).min(b % 8), (a % 8).max(b % 8));
            Addrs {
                v4: IntervalSet::range(0x0a00_0000 + lo as u32, 0x0a00_0000 + hi as u32),
                ..Addrs::default()
            }
        });
        let r = RawRule {
            policy: PolicyIdx::new(policy as usize),
            action: if allow { Action::Allow } else { Action::Deny },
            peer: PeerRef::Any,
            proto,
            ports,
            log: false,
        };
        (r, addrs)
    }

    fn first_match(
        rules: &[RawRule],
        sets: &[Addrs],
        peer: IpAddr,
        proto: Proto,
        port: Option<u16>,
    ) -> usize {
        let full = Addrs::full();
        rules
            .iter()
            .position(|r| {
                r.proto.matches(proto)
                    && ports_match(&r.ports, port)
                    && resolve(&r.peer, sets, &full).contains(peer)
            })
            .expect("the last rule matches everything")
    }

    fn flows() -> Vec<(IpAddr, Proto, Option<u16>)> {
        let mut v = Vec::new();
        let addrs: Vec<IpAddr> = (0..9u8)
            .map(|i| IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)))
            .chain(["::1".parse().unwrap()])
            .collect();
        for a in addrs {
            for p in [Proto::Tcp, Proto::Udp, Proto::Sctp] {
                for port in (0..8).chain([65535]) {
                    v.push((a, p, Some(port)));
                }
            }
            v.push((a, Proto::Icmp, None));
        }
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

        /// Compression keeps every decision (action and policy) and drops
        /// exactly the rules no flow reaches.
        #[test]
        fn compression_never_changes_meaning(
            specs in prop::collection::vec(
                (0u32..4, any::<bool>(), prop::option::of((any::<u8>(), any::<u8>())), any::<u8>(), prop::option::of((any::<u16>(), any::<u16>()))),
                0..12,
            ),
            last_allow in any::<bool>(),
        ) {
            let mut sets = Vec::new();
            let mut rules = Vec::new();
            for (policy, allow, peer, proto, ports) in specs {
                let (mut r, addrs) = rule(policy, allow, peer, proto, ports);
                if let Some(a) = addrs {
                    sets.push(a);
                    r.peer = PeerRef::Set(SetIdx::new(sets.len() - 1));
                }
                rules.push(r);
            }
            rules.push(rule(9, last_allow, None, 0, None).0);
            let (out, findings) = compress(rules.clone(), &sets, |p| p.index() < 9);
            let flows = flows();
            let mut reached = vec![false; rules.len()];
            for &(peer, proto, port) in &flows {
                let a = first_match(&rules, &sets, peer, proto, port);
                let b = first_match(&out, &sets, peer, proto, port);
                reached[a] = true;
                prop_assert_eq!((rules[a].action, rules[a].policy), (out[b].action, out[b].policy), "flow {} {} {:?}", peer, proto, port);
            }
            // Policies reported shadowed are never reached in the original chain.
            for (p, _) in &findings.shadowed {
                if !findings.kept.contains(p) {
                    prop_assert!(rules.iter().zip(&reached).all(|(r, &hit)| r.policy != *p || !hit));
                }
            }
            // Exact: a concrete-protocol rule that no flow reaches is dropped.
            let kept_policies_rules = out.len();
            prop_assert!(kept_policies_rules <= rules.len());
            let dropped = rules.len() - findings.kept.len() - 1 - findings.shadowed.len();
            prop_assert_eq!(dropped, 0, "every rule is either kept or shadowed");
            for (i, r) in rules.iter().enumerate().take(rules.len() - 1) {
                if r.proto != Proto::Any && !reached[i] {
                    prop_assert!(findings.shadowed.iter().any(|(p, _)| *p == r.policy), "unreached rule {} kept", i);
                }
            }
        }
    }

    #[test]
    fn union_of_earlier_rules_shadows_and_conflicts_are_found() {
        let half = |lo: u32, hi: u32| Addrs {
            v4: IntervalSet::range(lo, hi),
            ..Addrs::default()
        };
        let sets = vec![half(0, 127), half(128, 255), half(0, 255)];
        let mk = |policy, action, set: Option<usize>, ports: &str| RawRule {
            policy: PolicyIdx::new(policy),
            action,
            peer: set.map(SetIdx::new).map_or(PeerRef::Any, PeerRef::Set),
            proto: Proto::Tcp,
            ports: ports.split(',').map(|p| p.parse().unwrap()).collect(),
            log: false,
        };
        let rules = vec![
            mk(0, Action::Allow, Some(0), "80"),
            mk(1, Action::Allow, Some(1), "80-90"),
            // Covered by 0 and 1 together, not by either alone.
            mk(2, Action::Deny, Some(2), "80"),
            // Partly decided by 1 (allow) → conflict.
            mk(3, Action::Deny, Some(2), "85-100"),
            RawRule {
                proto: Proto::Any,
                ports: Vec::new(),
                ..mk(9, Action::Deny, None, "1")
            },
        ];
        let (out, f) = compress(rules, &sets, |p| p.index() < 9);
        assert_eq!(
            out.iter().map(|r| r.policy.index()).collect::<Vec<_>>(),
            [0, 1, 3, 9]
        );
        let idx = PolicyIdx::new;
        assert_eq!(f.shadowed, vec![(idx(2), vec![idx(0), idx(1)])]);
        assert!(f.conflicts.contains(&(idx(1), idx(3))));
        // 0 lies wholly inside 2 (a carve-out); 1 does not (ports 80-90).
        assert!(
            !f.conflicts.contains(&(idx(0), idx(2))) && f.conflicts.contains(&(idx(1), idx(2)))
        );
    }

    #[test]
    fn adjacent_rules_of_one_policy_merge() {
        let s = |lo: u32| Addrs {
            v4: IntervalSet::range(lo, lo),
            ..Addrs::default()
        };
        let sets = vec![s(1), s(2)];
        let mk = |set: usize, ports: &str| RawRule {
            policy: PolicyIdx::new(0),
            action: Action::Allow,
            peer: PeerRef::Set(SetIdx::new(set)),
            proto: Proto::Tcp,
            ports: ports.split(',').map(|p| p.parse().unwrap()).collect(),
            log: false,
        };
        let last = RawRule {
            policy: PolicyIdx::new(9),
            peer: PeerRef::Any,
            proto: Proto::Any,
            ports: Vec::new(),
            ..mk(0, "1")
        };
        // Same ports: peers merge. Same peer: ports merge.
        let (out, _) = compress(vec![mk(0, "80"), mk(1, "80"), last.clone()], &sets, |p| {
            p.index() < 9
        });
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0].peer,
            PeerRef::New(
                s(1).union(&s(2)),
                vec![vec![SetIdx::new(0)], vec![SetIdx::new(1)]]
            )
        );
        let (out, _) = compress(vec![mk(0, "80"), mk(0, "81,90")], &sets, |p| p.index() < 9);
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].ports,
            vec!["80-81".parse().unwrap(), PortRange::single(90)]
        );
    }
}
