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

use crate::interval::{Addrs, PortSet};

/// Past this many boxes the shadow analysis of one rule gives up (keeping it).
pub(crate) const MAX_BOXES: usize = 512;

/// A rule's peer before sets get their final names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PeerRef {
    /// Every address.
    Any,
    /// An interned set.
    Set(u32),
    /// A set made by merging, to be interned.
    New(Addrs),
}

/// A rule as the chain builder makes it.
#[derive(Clone, Debug)]
pub(crate) struct RawRule {
    /// Index into the policy-info table.
    pub(crate) policy: u32,
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
    pub(crate) kept: Vec<u32>,
    /// Policies with a rule that was dropped as shadowed, and the policies
    /// whose rules covered it.
    pub(crate) shadowed: Vec<(u32, Vec<u32>)>,
    /// (earlier policy, later policy): the earlier one, with the opposite
    /// action, decides part of what the later one matches.
    pub(crate) conflicts: Vec<(u32, u32)>,
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
    analyzed: impl Fn(u32) -> bool,
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
                if e.action != r.action && analyzed(e.policy) && analyzed(r.policy) {
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
        if let Some(prev) = out.last_mut() {
            if merge(prev, &r, sets) {
                continue;
            }
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
        PeerRef::Set(s) => &sets[*s as usize],
        PeerRef::New(a) => a,
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
                PeerRef::New(resolve(a, sets, &full).union(resolve(b, sets, &full)))
            }
        };
        return true;
    }
    let same_peer = match (&prev.peer, &r.peer) {
        (PeerRef::Any, PeerRef::Any) => true,
        (PeerRef::Set(a), PeerRef::Set(b)) => a == b,
        (PeerRef::New(a), PeerRef::New(b)) => a == b,
        (PeerRef::Set(s), PeerRef::New(a)) | (PeerRef::New(a), PeerRef::Set(s)) => {
            &sets[*s as usize] == a
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
