//! Membership: the live part of one node's enforcement (`schema/docs/membership.md`).
//!
//! A node's bundle carries its rules in the live [IR](crate::ir) form:
//! chains, set declarations, the node itself, exposures. What changes with
//! pods is its [`Membership`]: which pod addresses each `live` set holds,
//! which local pod is judged by which chains, and which pods the node's
//! exposures forward to. It travels in two signed documents (signing and
//! verification are in `ringfence-bundle`):
//!
//! - a **snapshot** ([`SnapshotPayload`]): the whole membership of a node for
//!   one bundle generation, at one sequence number, signed compressed;
//! - a **delta** ([`DeltaPayload`]): the [`Changes`] from the previous
//!   document (sequence − 1, whose payload digest it names) to this one.
//!
//! Everything is in canonical form (every list sorted, no duplicates), so
//! [`Membership::diff`] and [`Membership::apply`] are exact inverses and the
//! compiler and the agent compute the same state from the same documents.
//! [`Membership::check`] and [`Changes::check`] hold a document to what the
//! node's bundle declares: a membership can only fill sets, dispatch entries
//! and exposure targets the rules already have, never add a rule.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::ir::{Direction, EndpointKind, NodeIr};

/// Version of the membership formats.
pub const MEMBERSHIP_FORMAT: u32 = 1;
/// DSSE `payloadType` of a snapshot: its JSON as one zlib stream (RFC 1950),
/// since a node's whole membership is mostly repeated keys and addresses.
pub const SNAPSHOT_PAYLOAD_TYPE: &str = "application/vnd.ringfence.membership.v1+json+zlib";
/// DSSE `payloadType` of the first snapshots, uncompressed: still verified
/// (agents upgrade before their publisher), no longer written.
pub const SNAPSHOT_JSON_PAYLOAD_TYPE: &str = "application/vnd.ringfence.membership.v1+json";
/// DSSE `payloadType` of a delta.
pub const DELTA_PAYLOAD_TYPE: &str = "application/vnd.ringfence.membership-delta.v1+json";

/// The live part of a node's enforcement, in canonical form.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// Pod addresses of the IR's live sets, sorted by set name; a set with
    /// no pod is absent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sets: Vec<SetMembers>,
    /// The node's pods, sorted by name: managed ones with their chains,
    /// unmanaged ones (known, so never *unknown*) without.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<MemberEndpoint>,
    /// Pods the node's exposures forward to, sorted by (exposure, endpoint).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<MemberTarget>,
}

/// The pod addresses of one live set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetMembers {
    /// The set, as the IR declares it.
    pub name: String,
    /// Sorted, unique, not empty.
    pub addresses: Vec<IpAddr>,
}

/// A pod on this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberEndpoint {
    /// `pod/<namespace>/<name>`.
    pub name: String,
    /// Its group as `matrix` prints it (for logs and reports).
    pub workload: String,
    /// Its addresses: sorted, unique, not empty.
    pub addresses: Vec<IpAddr>,
    /// Chain judging traffic to it; `None` for a pod no scope manages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<String>,
    /// Chain judging traffic from it (only with `ingress`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<String>,
}

/// A pod one of the node's exposures forwards to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberTarget {
    /// The exposure's key ([`crate::ir::Exposure::key`]).
    pub exposure: String,
    /// `pod/<namespace>/<name>` (on this node or another).
    pub endpoint: String,
    /// Its group as `matrix` prints it.
    pub workload: String,
    /// Its addresses: sorted, unique, not empty.
    pub addresses: Vec<IpAddr>,
    /// The target port on it.
    pub port: u16,
    /// The pod's ingress chain.
    pub ingress: String,
    /// The chain judging traffic that enters through the exposure, when it is
    /// not `ingress` ([`crate::ir::ExposureTarget::chain`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
}

/// A target named in a removal.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TargetRef {
    /// The exposure's key.
    pub exposure: String,
    /// The pod.
    pub endpoint: String,
}

/// What changed between two memberships. Applied in order: removals, then
/// additions and replacements, so an address that changes owner leaves its
/// old sets and entries in the same step as it joins its new ones.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// Per set (sorted by name): addresses added and removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sets: Vec<SetChange>,
    /// Pods that left the node (sorted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints_removed: Vec<String>,
    /// Pods that arrived or changed, whole (sorted by name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<MemberEndpoint>,
    /// Exposure targets removed (sorted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets_removed: Vec<TargetRef>,
    /// Exposure targets that arrived or changed, whole (sorted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<MemberTarget>,
}

/// Addresses added to and removed from one set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetChange {
    /// The set.
    pub name: String,
    /// Added (sorted, unique, not present before).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<IpAddr>,
    /// Removed (sorted, unique, present before).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<IpAddr>,
}

/// A signed snapshot: a node's whole membership.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotPayload {
    /// Always [`MEMBERSHIP_FORMAT`].
    pub format: u32,
    /// The node's cluster.
    pub cluster: String,
    /// The node; an agent refuses any other.
    pub node: String,
    /// The bundle generation whose rules it fills.
    pub generation: u64,
    /// Grows by one with every document for this node.
    pub sequence: u64,
    /// When it was issued (RFC 3339, UTC).
    pub issued_at: String,
    /// After this instant an agent refuses it.
    pub expires_at: String,
    /// The membership.
    pub membership: Membership,
}

/// A signed delta: the changes from the previous document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaPayload {
    /// Always [`MEMBERSHIP_FORMAT`].
    pub format: u32,
    /// The node's cluster.
    pub cluster: String,
    /// The node; an agent refuses any other.
    pub node: String,
    /// The bundle generation whose rules it fills.
    pub generation: u64,
    /// Exactly one more than the previous document's.
    pub sequence: u64,
    /// Hex SHA-256 of the previous document's payload bytes.
    pub previous: String,
    /// When it was issued (RFC 3339, UTC).
    pub issued_at: String,
    /// After this instant an agent refuses it.
    pub expires_at: String,
    /// What changed.
    pub changes: Changes,
}

/// Why a membership or its changes cannot stand (the verifier turns each
/// kind into its reason code).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Not in canonical form, or contradicts itself (`malformed`).
    Malformed(String),
    /// Names a set, chain or exposure the bundle does not declare, or uses
    /// one the wrong way (`undeclared`).
    Undeclared(String),
    /// Changes that do not fit the state they are applied to: an address
    /// added twice, a removal of something absent (`inconsistent`).
    Inconsistent(String),
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Malformed(s) | Fault::Undeclared(s) | Fault::Inconsistent(s) => f.write_str(s),
        }
    }
}

fn strictly_sorted<T: Ord>(v: &[T]) -> bool {
    v.windows(2).all(|w| w[0] < w[1])
}

fn malformed<T>(s: String) -> Result<T, Fault> {
    Err(Fault::Malformed(s))
}

impl Membership {
    /// Whether nothing is in it.
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty() && self.endpoints.is_empty() && self.targets.is_empty()
    }

    /// Number of addresses in sets, endpoints and targets (for sizing and logs).
    pub fn len(&self) -> usize {
        self.sets.iter().map(|s| s.addresses.len()).sum::<usize>()
            + self
                .endpoints
                .iter()
                .map(|e| e.addresses.len())
                .sum::<usize>()
            + self
                .targets
                .iter()
                .map(|t| t.addresses.len())
                .sum::<usize>()
    }

    /// Check the canonical form: every list sorted and unique, no empty
    /// set or address list, no address on two endpoints.
    pub fn validate(&self) -> Result<(), Fault> {
        if !self.sets.windows(2).all(|w| w[0].name < w[1].name) {
            return malformed("sets are not sorted and unique by name".into());
        }
        for s in &self.sets {
            if s.addresses.is_empty() || !strictly_sorted(&s.addresses) {
                return malformed(format!(
                    "set `{}`: addresses are empty or not sorted and unique",
                    s.name
                ));
            }
        }
        if !self.endpoints.windows(2).all(|w| w[0].name < w[1].name) {
            return malformed("endpoints are not sorted and unique by name".into());
        }
        let mut seen = BTreeSet::new();
        for e in &self.endpoints {
            endpoint_shape(e)?;
            for a in &e.addresses {
                if !seen.insert(*a) {
                    return malformed(format!("address {a} belongs to two endpoints"));
                }
            }
        }
        if !self
            .targets
            .windows(2)
            .all(|w| (&w[0].exposure, &w[0].endpoint) < (&w[1].exposure, &w[1].endpoint))
        {
            return malformed("targets are not sorted and unique".into());
        }
        for t in &self.targets {
            if t.addresses.is_empty() || !strictly_sorted(&t.addresses) {
                return malformed(format!(
                    "target `{}` of `{}`: addresses are empty or not sorted and unique",
                    t.endpoint, t.exposure
                ));
            }
        }
        Ok(())
    }

    /// Check it against the bundle's IR: every set is a declared live set,
    /// every chain exists with its direction, every exposure exists, and no
    /// pod takes an address of the node or of a host-network pod.
    pub fn check(&self, ir: &NodeIr) -> Result<(), Fault> {
        self.validate()?;
        declared(
            ir,
            self.sets.iter().map(|s| s.name.as_str()),
            &self.endpoints,
            &self.targets,
        )
    }

    /// The changes that turn `old` into `new` (both canonical).
    pub fn diff(old: &Membership, new: &Membership) -> Changes {
        let mut c = Changes::default();
        merge(
            &old.sets,
            &new.sets,
            |s| s.name.as_str(),
            |o, n| {
                let (add, remove) = match (o, n) {
                    (None, Some(n)) => (n.addresses.clone(), Vec::new()),
                    (Some(o), None) => (Vec::new(), o.addresses.clone()),
                    (Some(o), Some(n)) => sorted_diff(&o.addresses, &n.addresses),
                    (None, None) => return,
                };
                if !add.is_empty() || !remove.is_empty() {
                    let name = o.or(n).map(|s| s.name.clone()).unwrap_or_default();
                    c.sets.push(SetChange { name, add, remove });
                }
            },
        );
        merge(
            &old.endpoints,
            &new.endpoints,
            |e| e.name.as_str(),
            |o, n| match (o, n) {
                (Some(o), None) => c.endpoints_removed.push(o.name.clone()),
                (o, Some(n)) if o != Some(n) => c.endpoints.push(n.clone()),
                _ => {}
            },
        );
        merge(
            &old.targets,
            &new.targets,
            |t| (t.exposure.as_str(), t.endpoint.as_str()),
            |o, n| match (o, n) {
                (Some(o), None) => c.targets_removed.push(TargetRef {
                    exposure: o.exposure.clone(),
                    endpoint: o.endpoint.clone(),
                }),
                (o, Some(n)) if o != Some(n) => c.targets.push(n.clone()),
                _ => {}
            },
        );
        c
    }

    /// Apply `c` (removals first). On a fault nothing is changed.
    ///
    /// In time with the changes rather than the membership: every check that
    /// can fail runs first ([`Membership::patch`]), then the results move in.
    pub fn apply(&mut self, c: &Changes) -> Result<(), Fault> {
        let Patch {
            sets,
            endpoints,
            targets,
        } = self.patch(c)?;
        // Positions found in the old list: from the last, so that each
        // insertion or removal leaves the ones before it where they were.
        for ((at, addresses), sc) in sets.into_iter().zip(&c.sets).rev() {
            match (at, addresses.is_empty()) {
                (Ok(i), true) => {
                    self.sets.remove(i);
                }
                (Ok(i), false) => self.sets[i].addresses = addresses,
                (Err(_), true) => {}
                (Err(i), false) => self.sets.insert(
                    i,
                    SetMembers {
                        name: sc.name.clone(),
                        addresses,
                    },
                ),
            }
        }
        if let Some(e) = endpoints {
            self.endpoints = e;
        }
        if let Some(t) = targets {
            self.targets = t;
        }
        Ok(())
    }

    /// This membership with `c` applied, itself untouched: the sets `c`
    /// leaves alone copied, the others patched once.
    pub fn applied(&self, c: &Changes) -> Result<Membership, Fault> {
        let patch = self.patch(c)?;
        let mut sets = Vec::with_capacity(self.sets.len() + c.sets.len());
        let mut from = 0;
        for ((at, addresses), sc) in patch.sets.into_iter().zip(&c.sets) {
            let i = at.unwrap_or_else(|i| i);
            sets.extend_from_slice(&self.sets[from..i]);
            from = if at.is_ok() { i + 1 } else { i };
            if !addresses.is_empty() {
                sets.push(SetMembers {
                    name: sc.name.clone(),
                    addresses,
                });
            }
        }
        sets.extend_from_slice(&self.sets[from..]);
        Ok(Membership {
            sets,
            endpoints: patch.endpoints.unwrap_or_else(|| self.endpoints.clone()),
            targets: patch.targets.unwrap_or_else(|| self.targets.clone()),
        })
    }

    /// Everything `c` changes, checked against this membership (taken to
    /// be valid, as every membership a document or a change led to is):
    /// each changed set patched with its place in `sets`, and the endpoints
    /// and targets with their changes when there are any.
    fn patch(&self, c: &Changes) -> Result<Patch, Fault> {
        c.validate()?;
        debug_assert!(self.validate().is_ok(), "changing an invalid membership");
        let mut sets = Vec::with_capacity(c.sets.len());
        for sc in &c.sets {
            let at = self.sets.binary_search_by(|s| s.name.cmp(&sc.name));
            let before = at.map_or(&[][..], |i| &self.sets[i].addresses[..]);
            sets.push((at, patched(before, &sc.add, &sc.remove, &sc.name)?));
        }
        let endpoints = if c.endpoints.is_empty() && c.endpoints_removed.is_empty() {
            None
        } else {
            Some(self.endpoints_with(c)?)
        };
        let targets = if c.targets.is_empty() && c.targets_removed.is_empty() {
            None
        } else {
            Some(self.targets_with(c)?)
        };
        Ok(Patch {
            sets,
            endpoints,
            targets,
        })
    }

    /// The endpoints with `c`'s endpoint changes, checked: no address on two.
    fn endpoints_with(&self, c: &Changes) -> Result<Vec<MemberEndpoint>, Fault> {
        let mut next = self.endpoints.clone();
        for name in &c.endpoints_removed {
            match next.binary_search_by(|e| e.name.cmp(name)) {
                Ok(i) => {
                    next.remove(i);
                }
                Err(_) => {
                    return Err(Fault::Inconsistent(format!(
                        "endpoint `{name}` is removed but was not there"
                    )));
                }
            }
        }
        for e in &c.endpoints {
            match next.binary_search_by(|x| x.name.cmp(&e.name)) {
                Ok(i) => next[i] = e.clone(),
                Err(i) => next.insert(i, e.clone()),
            }
        }
        let mut all: Vec<IpAddr> = next
            .iter()
            .flat_map(|e| e.addresses.iter().copied())
            .collect();
        all.sort_unstable();
        if let Some(w) = all.windows(2).find(|w| w[0] == w[1]) {
            return Err(Fault::Inconsistent(format!(
                "address {} belongs to two endpoints",
                w[0]
            )));
        }
        Ok(next)
    }

    /// The targets with `c`'s target changes, checked.
    fn targets_with(&self, c: &Changes) -> Result<Vec<MemberTarget>, Fault> {
        let mut next = self.targets.clone();
        for r in &c.targets_removed {
            match next
                .binary_search_by(|t| (&t.exposure, &t.endpoint).cmp(&(&r.exposure, &r.endpoint)))
            {
                Ok(i) => {
                    next.remove(i);
                }
                Err(_) => {
                    return Err(Fault::Inconsistent(format!(
                        "target `{}` of `{}` is removed but was not there",
                        r.endpoint, r.exposure
                    )));
                }
            }
        }
        for t in &c.targets {
            if t.addresses.is_empty() || !strictly_sorted(&t.addresses) {
                return Err(Fault::Inconsistent(format!(
                    "target `{}` of `{}`: addresses are empty or not sorted and unique",
                    t.endpoint, t.exposure
                )));
            }
            match next
                .binary_search_by(|x| (&x.exposure, &x.endpoint).cmp(&(&t.exposure, &t.endpoint)))
            {
                Ok(i) => next[i] = t.clone(),
                Err(i) => next.insert(i, t.clone()),
            }
        }
        Ok(next)
    }
}

/// What [`Membership::patch`] found a change leads to.
struct Patch {
    /// Per set change: its place in the old sets, its new addresses.
    sets: Vec<(Result<usize, usize>, Vec<IpAddr>)>,
    endpoints: Option<Vec<MemberEndpoint>>,
    targets: Option<Vec<MemberTarget>>,
}

impl Changes {
    /// Whether nothing changes (a heartbeat).
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
            && self.endpoints_removed.is_empty()
            && self.endpoints.is_empty()
            && self.targets_removed.is_empty()
            && self.targets.is_empty()
    }

    /// Number of addresses added or removed in sets, plus endpoints and
    /// targets touched.
    pub fn len(&self) -> usize {
        self.sets
            .iter()
            .map(|s| s.add.len() + s.remove.len())
            .sum::<usize>()
            + self.endpoints_removed.len()
            + self.endpoints.len()
            + self.targets_removed.len()
            + self.targets.len()
    }

    /// Check the canonical form.
    pub fn validate(&self) -> Result<(), Fault> {
        if !self.sets.windows(2).all(|w| w[0].name < w[1].name) {
            return malformed("set changes are not sorted and unique by name".into());
        }
        for s in &self.sets {
            if !strictly_sorted(&s.add) || !strictly_sorted(&s.remove) {
                return malformed(format!(
                    "set `{}`: changes are not sorted and unique",
                    s.name
                ));
            }
            if s.add.is_empty() && s.remove.is_empty() {
                return malformed(format!("set `{}`: an empty change", s.name));
            }
        }
        if !strictly_sorted(&self.endpoints_removed)
            || !self.endpoints.windows(2).all(|w| w[0].name < w[1].name)
        {
            return malformed("endpoint changes are not sorted and unique".into());
        }
        for e in &self.endpoints {
            endpoint_shape(e)?;
        }
        if !strictly_sorted(&self.targets_removed)
            || !self
                .targets
                .windows(2)
                .all(|w| (&w[0].exposure, &w[0].endpoint) < (&w[1].exposure, &w[1].endpoint))
        {
            return malformed("target changes are not sorted and unique".into());
        }
        Ok(())
    }

    /// Check the names against the bundle's IR (as [`Membership::check`]).
    pub fn check(&self, ir: &NodeIr) -> Result<(), Fault> {
        self.validate()?;
        declared(
            ir,
            self.sets.iter().map(|s| s.name.as_str()),
            &self.endpoints,
            &self.targets,
        )?;
        let exposures = exposure_keys(ir);
        for r in &self.targets_removed {
            if exposures.binary_search(&r.exposure).is_err() {
                return Err(Fault::Undeclared(format!(
                    "exposure `{}` is not in the bundle",
                    r.exposure
                )));
            }
        }
        Ok(())
    }
}

/// What [`Membership::check`] and [`Changes::check`] share: the sets are
/// declared live sets, the endpoints' chains exist with their direction and
/// take no fixed address (the node's, a host-network pod's), the targets'
/// exposures and chains exist.
fn declared<'a>(
    ir: &NodeIr,
    sets: impl Iterator<Item = &'a str>,
    endpoints: &[MemberEndpoint],
    targets: &[MemberTarget],
) -> Result<(), Fault> {
    for name in sets {
        declared_set(ir, name)?;
    }
    let fixed: BTreeSet<IpAddr> = ir
        .endpoints
        .iter()
        .filter(|e| e.local)
        .flat_map(|e| e.addresses.iter().copied())
        .collect();
    for e in endpoints {
        declared_endpoint(ir, e, &fixed)?;
    }
    if !targets.is_empty() {
        let exposures = exposure_keys(ir);
        for t in targets {
            declared_target(ir, &exposures, t)?;
        }
    }
    Ok(())
}

/// The keys of `ir`'s exposures, sorted (each is formatted: built once per
/// document, not once per target and exposure).
fn exposure_keys(ir: &NodeIr) -> Vec<String> {
    let mut keys: Vec<String> = ir.exposures.iter().map(|x| x.key()).collect();
    keys.sort_unstable();
    keys
}

fn endpoint_shape(e: &MemberEndpoint) -> Result<(), Fault> {
    if !e.name.starts_with("pod/") {
        return malformed(format!(
            "endpoint `{}` is not `pod/<namespace>/<name>`",
            e.name
        ));
    }
    if e.addresses.is_empty() || !strictly_sorted(&e.addresses) {
        return malformed(format!(
            "endpoint `{}`: addresses are empty or not sorted and unique",
            e.name
        ));
    }
    if e.ingress.is_none() && e.egress.is_some() {
        return malformed(format!(
            "endpoint `{}` has an egress chain but no ingress chain",
            e.name
        ));
    }
    Ok(())
}

fn declared_set(ir: &NodeIr, name: &str) -> Result<(), Fault> {
    match ir.set(name) {
        Some(s) if s.live => Ok(()),
        Some(_) => Err(Fault::Undeclared(format!(
            "set `{name}` is not a live set of the bundle (its addresses are fixed by the rules)"
        ))),
        None => Err(Fault::Undeclared(format!(
            "set `{name}` is not declared by the bundle"
        ))),
    }
}

/// `id` is a chain of `ir` in direction `dir`; `whose` names the user in
/// the fault (formatted only then: this runs per endpoint and target).
fn declared_chain(
    ir: &NodeIr,
    id: &str,
    dir: Direction,
    whose: impl Fn() -> String,
) -> Result<(), Fault> {
    match ir.chain(id) {
        Some(c) if c.direction == dir => Ok(()),
        Some(_) => Err(Fault::Undeclared(format!(
            "{}: chain `{id}` is used in the wrong direction",
            whose()
        ))),
        None => Err(Fault::Undeclared(format!(
            "{}: chain `{id}` is not declared by the bundle",
            whose()
        ))),
    }
}

fn declared_endpoint(
    ir: &NodeIr,
    e: &MemberEndpoint,
    fixed: &BTreeSet<IpAddr>,
) -> Result<(), Fault> {
    if ir
        .endpoint(&e.name)
        .is_some_and(|x| x.kind != EndpointKind::Pod)
    {
        return Err(Fault::Undeclared(format!(
            "endpoint `{}` is declared by the bundle itself",
            e.name
        )));
    }
    if let Some(a) = e.addresses.iter().find(|a| fixed.contains(a)) {
        return Err(Fault::Undeclared(format!(
            "endpoint `{}` claims {a}, an address of the node or a host-network pod",
            e.name
        )));
    }
    let whose = || format!("endpoint `{}`", e.name);
    if let Some(c) = &e.ingress {
        declared_chain(ir, c, Direction::Ingress, whose)?;
    }
    if let Some(c) = &e.egress {
        declared_chain(ir, c, Direction::Egress, whose)?;
    }
    Ok(())
}

fn declared_target(ir: &NodeIr, exposures: &[String], t: &MemberTarget) -> Result<(), Fault> {
    if exposures.binary_search(&t.exposure).is_err() {
        return Err(Fault::Undeclared(format!(
            "exposure `{}` is not in the bundle",
            t.exposure
        )));
    }
    let whose = || format!("target `{}` of `{}`", t.endpoint, t.exposure);
    for c in std::iter::once(&t.ingress).chain(&t.chain) {
        declared_chain(ir, c, Direction::Ingress, whose)?;
    }
    Ok(())
}

/// Walk two lists sorted by `key`, calling `f` with the entries of each key.
fn merge<'a, T, K: Ord>(
    a: &'a [T],
    b: &'a [T],
    key: impl Fn(&'a T) -> K,
    mut f: impl FnMut(Option<&'a T>, Option<&'a T>),
) {
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let order = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => key(x).cmp(&key(y)),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                f(Some(&a[i]), None);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                f(None, Some(&b[j]));
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                f(Some(&a[i]), Some(&b[j]));
                i += 1;
                j += 1;
            }
        }
    }
}

/// Set `name`'s addresses `old` with `remove` taken out, then `add` put
/// in (all sorted and unique): every removal must be there, every addition
/// absent once the removals are done. A missing removal is reported before
/// a present addition, each the lowest such address, as applying them one
/// by one would.
fn patched(
    old: &[IpAddr],
    add: &[IpAddr],
    remove: &[IpAddr],
    name: &str,
) -> Result<Vec<IpAddr>, Fault> {
    let absent =
        |a: IpAddr| Fault::Inconsistent(format!("set `{name}`: {a} is removed but was not there"));
    let mut out = Vec::with_capacity(old.len() + add.len());
    let (mut rest, mut add, mut remove) = (old, add, remove);
    let mut present = None;
    // From change to change, the untouched run between them copied whole.
    while let Some(x) = match (remove.first(), add.first()) {
        (Some(&r), Some(&a)) => Some(r.min(a)),
        (r, a) => r.or(a).copied(),
    } {
        let run = rest.partition_point(|a| *a < x);
        out.extend_from_slice(&rest[..run]);
        rest = &rest[run..];
        let here = rest.first() == Some(&x);
        let removing = remove.first() == Some(&x);
        let adding = add.first() == Some(&x);
        if removing {
            if !here {
                return Err(absent(x));
            }
            remove = &remove[1..];
            rest = &rest[1..];
        }
        if adding {
            add = &add[1..];
            if here && !removing {
                present.get_or_insert(x);
            } else {
                out.push(x);
            }
        }
    }
    if let Some(a) = present {
        return Err(Fault::Inconsistent(format!(
            "set `{name}`: {a} is added but was already there"
        )));
    }
    out.extend_from_slice(rest);
    Ok(out)
}

/// `(add, remove)`: what is in `new` only and in `old` only, both sorted.
fn sorted_diff<T: Ord + Copy>(old: &[T], new: &[T]) -> (Vec<T>, Vec<T>) {
    let (mut add, mut remove) = (Vec::new(), Vec::new());
    merge(
        old,
        new,
        |x| *x,
        |o, n| match (o, n) {
            (Some(o), None) => remove.push(*o),
            (None, Some(n)) => add.push(*n),
            _ => {}
        },
    );
    (add, remove)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A repeatable pseudo-random number below `n`, per call.
    fn xorshift(mut seed: u64) -> impl FnMut(u64) -> u64 {
        move |n| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        }
    }

    fn ep(name: &str, a: &[&str], chains: bool) -> MemberEndpoint {
        MemberEndpoint {
            name: name.into(),
            workload: "shop/web[Deployment]".into(),
            addresses: a.iter().map(|s| ip(s)).collect(),
            ingress: chains.then(|| "in_a".into()),
            egress: chains.then(|| "eg_a".into()),
        }
    }

    fn m(sets: &[(&str, &[&str])], eps: Vec<MemberEndpoint>) -> Membership {
        Membership {
            sets: sets
                .iter()
                .map(|(n, a)| SetMembers {
                    name: n.to_string(),
                    addresses: a.iter().map(|s| ip(s)).collect(),
                })
                .collect(),
            endpoints: eps,
            targets: Vec::new(),
        }
    }

    #[test]
    fn diff_and_apply_are_inverse() {
        let a = m(
            &[("db", &["10.0.0.1", "10.0.0.2"]), ("web", &["10.0.1.1"])],
            vec![ep("pod/shop/a", &["10.0.0.1"], true)],
        );
        let b = m(
            &[("db", &["10.0.0.2", "10.0.0.3"]), ("x", &["fd00::1"])],
            vec![
                ep("pod/shop/a", &["10.0.0.9"], true),
                ep("pod/shop/b", &["10.0.0.3"], false),
            ],
        );
        for (from, to) in [(&a, &b), (&b, &a), (&a, &a), (&Membership::default(), &b)] {
            let c = Membership::diff(from, to);
            c.validate().unwrap();
            let mut x = from.clone();
            x.apply(&c).unwrap();
            assert_eq!(&x, to);
            // The same changes again do not fit: refused, nothing changed.
            if !c.sets.is_empty() {
                let before = x.clone();
                assert!(matches!(x.apply(&c), Err(Fault::Inconsistent(_))));
                assert_eq!(x, before);
            }
        }
        let c = Membership::diff(&a, &b);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"sets":[{"name":"db","add":["10.0.0.3"],"remove":["10.0.0.1"]},{"name":"web","remove":["10.0.1.1"]},{"name":"x","add":["fd00::1"]}],"endpoints":[{"name":"pod/shop/a","workload":"shop/web[Deployment]","addresses":["10.0.0.9"],"ingress":"in_a","egress":"eg_a"},{"name":"pod/shop/b","workload":"shop/web[Deployment]","addresses":["10.0.0.3"]}]}"#
        );
    }

    /// Applying in place gives what the changes describe, on random
    /// memberships (sets, endpoints, targets), and a change that does not
    /// fit (an address on two endpoints, a target without addresses, a
    /// removal of something absent) is refused with nothing changed.
    #[test]
    fn changes_apply_in_place_or_not_at_all() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        fn addrs(next: &mut dyn FnMut(u64) -> u64, k: u64) -> Vec<IpAddr> {
            let n = 1 + next(k);
            let set: BTreeSet<IpAddr> = (0..n)
                .map(|_| IpAddr::from([10, 0, 0, next(40) as u8]))
                .collect();
            set.into_iter().collect()
        }
        fn random(next: &mut dyn FnMut(u64) -> u64) -> Membership {
            let mut m = Membership::default();
            for i in 0..6 {
                if next(2) == 0 {
                    let addresses = addrs(next, 8);
                    m.sets.push(SetMembers {
                        name: format!("s{i}"),
                        addresses,
                    });
                }
            }
            // Endpoints own disjoint addresses (10.0.1.x by index).
            for i in 0..5u8 {
                if next(2) == 0 {
                    m.endpoints.push(MemberEndpoint {
                        name: format!("pod/ns/p{i}"),
                        workload: format!("ns/w{}", next(2)),
                        addresses: vec![IpAddr::from([10, 0, 1, i * 10 + next(3) as u8])],
                        ingress: Some("in_a".into()),
                        egress: None,
                    });
                }
            }
            for i in 0..4 {
                if next(2) == 0 {
                    let addresses = addrs(next, 3);
                    m.targets.push(MemberTarget {
                        exposure: "x".into(),
                        endpoint: format!("pod/ns/t{i}"),
                        workload: "ns/w".into(),
                        addresses,
                        port: 80 + next(2) as u16,
                        ingress: "in_a".into(),
                        chain: None,
                    });
                }
            }
            m
        }
        for _ in 0..500 {
            let (a, b) = (random(&mut next), random(&mut next));
            a.validate().unwrap();
            b.validate().unwrap();
            let c = Membership::diff(&a, &b);
            let mut x = a.clone();
            x.apply(&c).unwrap();
            assert_eq!(x, b);
            assert_eq!(a.applied(&c).unwrap(), b);
            // Refused changes leave it as it was.
            let mut bad = Vec::new();
            if let Some(e) = b.endpoints.first() {
                let mut twice = Changes::default();
                let mut copy = e.clone();
                copy.name = "pod/ns/zz".into();
                twice.endpoints.push(copy);
                bad.push(twice);
            }
            let mut empty_target = Changes::default();
            empty_target.targets.push(MemberTarget {
                exposure: "x".into(),
                endpoint: "pod/ns/zz".into(),
                workload: "ns/w".into(),
                addresses: Vec::new(),
                port: 80,
                ingress: "in_a".into(),
                chain: None,
            });
            bad.push(empty_target);
            let mut absent = Changes::default();
            absent.endpoints_removed.push("pod/ns/none".into());
            bad.push(absent);
            for c in bad {
                let before = x.clone();
                assert!(matches!(x.apply(&c), Err(Fault::Inconsistent(_))), "{c:?}");
                assert_eq!(x, before);
            }
        }
    }

    /// [`patched`] against applying removals then additions one by one,
    /// on random sets (faults included: the same fault, or none).
    #[test]
    fn a_set_change_is_one_merge_with_the_same_result_as_one_by_one() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..3000 {
            let mut pick = |k: u64| -> Vec<IpAddr> {
                let n = next(k);
                let set: BTreeSet<IpAddr> = (0..n)
                    .map(|_| IpAddr::from([10, 0, 0, next(24) as u8]))
                    .collect();
                set.into_iter().collect()
            };
            let (old, add, remove) = (pick(16), pick(5), pick(5));
            let mut want: Result<BTreeSet<IpAddr>, String> = Ok(old.iter().copied().collect());
            if let Ok(w) = &mut want {
                let missing = remove.iter().find(|a| !w.contains(*a));
                match missing {
                    Some(a) => want = Err(format!("set `s`: {a} is removed but was not there")),
                    None => {
                        remove.iter().for_each(|a| _ = w.remove(a));
                        if let Some(a) = add.iter().find(|a| w.contains(*a)) {
                            want = Err(format!("set `s`: {a} is added but was already there"));
                        } else {
                            w.extend(&add);
                        }
                    }
                }
            }
            let got = patched(&old, &add, &remove, "s").map_err(|f| match f {
                Fault::Inconsistent(s) => s,
                other => panic!("{other:?}"),
            });
            let want = want.map(|w| w.into_iter().collect::<Vec<_>>());
            assert_eq!(got, want, "old {old:?} add {add:?} remove {remove:?}");
        }
    }

    #[test]
    fn non_canonical_forms_are_malformed() {
        let unsorted = m(&[("b", &["10.0.0.1"]), ("a", &["10.0.0.1"])], vec![]);
        assert!(matches!(unsorted.validate(), Err(Fault::Malformed(_))));
        let dup = m(
            &[],
            vec![
                ep("pod/a/a", &["10.0.0.1"], true),
                ep("pod/a/b", &["10.0.0.1"], true),
            ],
        );
        assert!(matches!(dup.validate(), Err(Fault::Malformed(e)) if e.contains("two endpoints")));
        let node = m(&[], vec![ep("node/x", &["10.0.0.1"], true)]);
        assert!(matches!(node.validate(), Err(Fault::Malformed(_))));
        let empty = Changes {
            sets: vec![SetChange {
                name: "a".into(),
                ..SetChange::default()
            }],
            ..Changes::default()
        };
        assert!(matches!(empty.validate(), Err(Fault::Malformed(_))));
    }
}
