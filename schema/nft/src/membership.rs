//! The membership binding: how a node's membership fills the ruleset the
//! nftables backend renders for a live IR (`schema/docs/membership.md`).
//! Shared by the plugin (which declares these sets and maps) and the agent
//! (which fills them); it builds for wasm32 like the rest of this crate.
//!
//! | membership | nftables element |
//! |---|---|
//! | address `a` of live set `S` | `a` in set `S_v4` / `S_v6` |
//! | endpoint with chains `I`, `E` | `a : jump c_E` in `egress-v4`/`-v6`, `a : jump c_I` in `ingress-v4`/`-v6` |
//! | any endpoint (when unknown pods are dropped), `a` in the pod ranges | `a` in `local-v4` / `-v6` |
//! | target `(x, a, port, I)` of exposure `x` (the `i`-th of the IR) | `a . port : jump c_I` in `expose-<i>-v4` / `-v6` |
//!
//! [`changes`] turns one membership into another as `delete element`
//! statements (first) and `add element` statements, to be loaded in one
//! `nft -f`: one kernel transaction, never a table reload. An element whose
//! value changes (a map entry pointing at another chain) is deleted and
//! added again; nothing absent is deleted and nothing present added, so the
//! transaction cannot fail on the elements themselves.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use ringfence_schema::ir::{Action, NodeIr};
use ringfence_schema::membership::Membership;

use crate::TABLE;

/// Most elements in one statement (keeps lines a reasonable size).
const PER_STATEMENT: usize = 512;

/// Elements keyed by (container, key), each with its verdict (maps) or none (sets).
type Elements = BTreeMap<(String, String), Option<String>>;

/// One element [`for_each_element`] walks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Element<'a> {
    /// An address of a live set: a set element written as the address.
    Address(IpAddr),
    /// Any other element: its key as written, and for a map its value.
    Entry(&'a str, Option<&'a str>),
}

/// Every element `m` puts in the ruleset of live IR `ir`, with its
/// container, without building them all: the few of endpoints and
/// exposure targets first, then each live set's addresses in order (so
/// calls for one container come together). The same elements as
/// [`elements`].
pub fn for_each_element(ir: &NodeIr, m: &Membership, mut f: impl FnMut(&str, Element<'_>)) {
    for ((container, key), value) in &local_elements(ir, m) {
        f(container, Element::Entry(key, value.as_deref()));
    }
    for s in &m.sets {
        let c = SetContainers::of(&s.name);
        for a in &s.addresses {
            f(c.holding(a), Element::Address(*a));
        }
    }
}

/// Every element `m` puts in the ruleset of live IR `ir`: (container, key) → value.
pub fn elements(ir: &NodeIr, m: &Membership) -> Elements {
    let mut out = local_elements(ir, m);
    for s in &m.sets {
        let c = SetContainers::of(&s.name);
        for a in &s.addresses {
            out.insert((c.holding(a).to_string(), a.to_string()), None);
        }
    }
    out
}

/// The containers of live set `set`: one nft set per address family.
struct SetContainers {
    v4: String,
    v6: String,
}

impl SetContainers {
    fn of(set: &str) -> Self {
        SetContainers {
            v4: format!("{set}_v4"),
            v6: format!("{set}_v6"),
        }
    }

    /// The one that holds `a`.
    fn holding(&self, a: &IpAddr) -> &str {
        if a.is_ipv4() { &self.v4 } else { &self.v6 }
    }
}

fn fam(a: &IpAddr) -> &'static str {
    if a.is_ipv4() { "v4" } else { "v6" }
}

/// The elements of `m`'s endpoints and exposure targets (everything but
/// its sets): a node's own pods and its exposures' backends, few.
fn local_elements(ir: &NodeIr, m: &Membership) -> Elements {
    let mut out = BTreeMap::new();
    let local = ir.unknown_pods == Action::Deny;
    let has_range = |a: &IpAddr| ir.pod_cidrs.iter().any(|n| n.contains(a));
    for e in &m.endpoints {
        for a in &e.addresses {
            if let Some(c) = &e.egress {
                out.insert(
                    (format!("egress-{}", fam(a)), a.to_string()),
                    Some(format!("jump c_{c}")),
                );
            }
            if let Some(c) = &e.ingress {
                out.insert(
                    (format!("ingress-{}", fam(a)), a.to_string()),
                    Some(format!("jump c_{c}")),
                );
            }
            if local && has_range(a) {
                out.insert((format!("local-{}", fam(a)), a.to_string()), None);
            }
        }
    }
    let keys: Vec<String> = ir.exposures.iter().map(|x| x.key()).collect();
    for t in &m.targets {
        let Some(i) = keys.iter().position(|k| *k == t.exposure) else {
            continue;
        };
        for a in &t.addresses {
            out.insert(
                (
                    format!("expose-{i}-{}", fam(a)),
                    format!("{a} . {}", t.port),
                ),
                Some(format!(
                    "jump c_{}",
                    t.chain.as_deref().unwrap_or(&t.ingress)
                )),
            );
        }
    }
    out
}

/// The `nft -f` text that turns membership `from` into `to` in the ruleset
/// of live IR `ir` (empty when nothing changes). Sets, which may hold every
/// pod of a cluster, are compared set by set and address by address (both
/// sorted), so the work follows what changed, not what the sets hold.
pub fn changes(ir: &NodeIr, from: &Membership, to: &Membership) -> String {
    let (mut delete, mut add) = (Lists::new(), Lists::new());
    let no_addresses = Vec::new();
    let (mut i, mut j) = (0, 0);
    loop {
        let (name, old, new) = match (from.sets.get(i), to.sets.get(j)) {
            (Some(o), Some(n)) if o.name == n.name => {
                (i, j) = (i + 1, j + 1);
                (&o.name, &o.addresses, &n.addresses)
            }
            (Some(o), Some(n)) if o.name > n.name => {
                j += 1;
                (&n.name, &no_addresses, &n.addresses)
            }
            (Some(o), _) => {
                i += 1;
                (&o.name, &o.addresses, &no_addresses)
            }
            (None, Some(n)) => {
                j += 1;
                (&n.name, &no_addresses, &n.addresses)
            }
            (None, None) => break,
        };
        if old != new {
            set_changes(name, old, new, &mut delete, &mut add);
        }
    }
    diff_elements(
        &local_elements(ir, from),
        &local_elements(ir, to),
        &mut delete,
        &mut add,
    );
    statements(delete, add)
}

/// Elements by container, to delete and to add.
type Lists = BTreeMap<String, Items>;

/// One container's elements: plain addresses (most, held as addresses,
/// not text: a snapshot fills every live set at once) and any others as
/// their text.
#[derive(Default)]
struct Items {
    addresses: Vec<IpAddr>,
    texts: Vec<String>,
}

/// What differs between `old` and `new`, as elements to delete and add.
fn diff_elements(old: &Elements, new: &Elements, delete: &mut Lists, add: &mut Lists) {
    // A key alone that is an address is written as the address.
    let put = |to: &mut Lists, c: &str, text: String| {
        let items = to.entry(c.to_string()).or_default();
        match text.parse::<IpAddr>() {
            Ok(a) => items.addresses.push(a),
            Err(_) => items.texts.push(text),
        }
    };
    for ((c, k), v) in old {
        if new.get(&(c.clone(), k.clone())) != Some(v) {
            put(delete, c, k.clone());
        }
    }
    for ((c, k), v) in new {
        if old.get(&(c.clone(), k.clone())) != Some(v) {
            match v {
                Some(v) => put(add, c, format!("{k} : {v}")),
                None => put(add, c, k.clone()),
            }
        }
    }
}

/// The `nft -f` lines: every deletion, then every addition; in each
/// container the addresses (in order), then the other elements (in the
/// order of their text).
fn statements(delete: Lists, add: Lists) -> String {
    let mut out = String::new();
    for (verb, lists) in [("delete", delete), ("add", add)] {
        for (container, mut items) in lists {
            items.addresses.sort_unstable();
            items.texts.sort_unstable();
            let all = items
                .addresses
                .iter()
                .map(|a| a as &dyn std::fmt::Display)
                .chain(items.texts.iter().map(|t| t as &dyn std::fmt::Display));
            let mut n = 0;
            for e in all {
                if n % PER_STATEMENT == 0 {
                    if n > 0 {
                        out.push_str(" }\n");
                    }
                    let _ = write!(out, "{verb} element inet {TABLE} {container} {{ ");
                } else {
                    out.push_str(", ");
                }
                let _ = write!(out, "{e}");
                n += 1;
            }
            if n > 0 {
                out.push_str(" }\n");
            }
        }
    }
    out
}

/// The addresses of set `name` that leave (in `old`, not `new`) and join
/// (in `new`, not `old`); both lists sorted and unique.
fn set_changes(name: &str, old: &[IpAddr], new: &[IpAddr], delete: &mut Lists, add: &mut Lists) {
    let containers = SetContainers::of(name);
    let put = |to: &mut Lists, a: &IpAddr| {
        let c = containers.holding(a);
        match to.get_mut(c) {
            Some(items) => items.addresses.push(*a),
            None => to.entry(c.to_string()).or_default().addresses.push(*a),
        }
    };
    let (mut i, mut j) = (0, 0);
    loop {
        match (old.get(i), new.get(j)) {
            (Some(o), Some(n)) if o == n => (i, j) = (i + 1, j + 1),
            (Some(o), Some(n)) if o > n => {
                put(add, n);
                j += 1;
            }
            (Some(o), _) => {
                put(delete, o);
                i += 1;
            }
            (None, Some(n)) => {
                put(add, n);
                j += 1;
            }
            (None, None) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringfence_schema::membership::{MemberEndpoint, SetMembers};

    fn ir() -> NodeIr {
        NodeIr {
            ir_version: ringfence_schema::ir::IR_VERSION,
            cluster: "c".into(),
            node: "n".into(),
            os: ringfence_schema::ir::Os::Linux,
            backend: "nftables".into(),
            addresses: vec!["192.168.0.10".parse().unwrap()],
            pod_cidrs: vec!["10.0.1.0/24".parse().unwrap()],
            unknown_pods: Action::Deny,
            unmanaged: Vec::new(),
            live: true,
            endpoints: Vec::new(),
            exposures: Vec::new(),
            chains: Vec::new(),
            sets: Vec::new(),
            policies: Vec::new(),
        }
    }

    fn ep(a: &str, chain: &str) -> MemberEndpoint {
        MemberEndpoint {
            name: "pod/a/b".into(),
            workload: "a/b[Pod]".into(),
            addresses: vec![a.parse().unwrap()],
            ingress: Some(format!("in_{chain}")),
            egress: Some(format!("eg_{chain}")),
        }
    }

    #[test]
    fn deletes_come_first_and_a_changed_verdict_is_replaced() {
        let from = Membership {
            sets: vec![SetMembers {
                name: "web_1".into(),
                addresses: vec!["10.0.1.5".parse().unwrap(), "fd00::5".parse().unwrap()],
            }],
            endpoints: vec![ep("10.0.1.5", "x")],
            targets: Vec::new(),
        };
        let to = Membership {
            sets: vec![SetMembers {
                name: "web_1".into(),
                addresses: vec!["10.0.1.6".parse().unwrap(), "fd00::5".parse().unwrap()],
            }],
            endpoints: vec![ep("10.0.1.5", "y")],
            targets: Vec::new(),
        };
        assert_eq!(
            changes(&ir(), &from, &to),
            "delete element inet ringfence egress-v4 { 10.0.1.5 }\n\
             delete element inet ringfence ingress-v4 { 10.0.1.5 }\n\
             delete element inet ringfence web_1_v4 { 10.0.1.5 }\n\
             add element inet ringfence egress-v4 { 10.0.1.5 : jump c_eg_y }\n\
             add element inet ringfence ingress-v4 { 10.0.1.5 : jump c_in_y }\n\
             add element inet ringfence web_1_v4 { 10.0.1.6 }\n"
        );
        assert_eq!(changes(&ir(), &to, &to), "");
        // What an agent loads for a membership key passes the element screen.
        crate::screen_elements(&changes(&ir(), &from, &to)).unwrap();
        // From nothing: the local pod is known (in `local-v4`).
        assert!(
            changes(&ir(), &Membership::default(), &to)
                .contains("add element inet ringfence local-v4 { 10.0.1.5 }")
        );
    }

    /// What `changes` must say, from every element of both sides.
    fn reference(ir: &NodeIr, from: &Membership, to: &Membership) -> String {
        let (mut delete, mut add) = (Lists::new(), Lists::new());
        diff_elements(
            &elements(ir, from),
            &elements(ir, to),
            &mut delete,
            &mut add,
        );
        statements(delete, add)
    }

    #[test]
    fn set_by_set_changes_equal_the_whole_comparison() {
        // Memberships drawn from a small deterministic generator: sets that
        // appear, vanish and change (more than one statement's worth), both
        // families, and endpoints that move.
        let mut seed = 7u64;
        let mut next = move |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let draw = |next: &mut dyn FnMut(u64) -> u64| {
            let mut sets = Vec::new();
            for name in ["a", "a_b", "b", "web_1"] {
                if next(4) == 0 {
                    continue;
                }
                let mut addresses: Vec<IpAddr> = (0..next(1200))
                    .map(|_| {
                        let x = next(1500) as u16;
                        if next(5) == 0 {
                            IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, x])
                        } else {
                            IpAddr::from([10, 0, (x >> 8) as u8, x as u8])
                        }
                    })
                    .collect();
                addresses.sort_unstable();
                addresses.dedup();
                if !addresses.is_empty() {
                    sets.push(SetMembers {
                        name: name.into(),
                        addresses,
                    });
                }
            }
            let endpoints = (0..next(3))
                .map(|i| {
                    ep(
                        &format!("10.0.1.{}", 5 + i),
                        if next(2) == 0 { "x" } else { "y" },
                    )
                })
                .map(|mut e| {
                    e.name = format!("pod/a/{}", e.addresses[0]);
                    e
                })
                .collect();
            Membership {
                sets,
                endpoints,
                targets: Vec::new(),
            }
        };
        for _ in 0..40 {
            let from = draw(&mut next);
            let to = draw(&mut next);
            assert_eq!(changes(&ir(), &from, &to), reference(&ir(), &from, &to));
            assert_eq!(changes(&ir(), &from, &from), "");
            // The walk visits exactly the elements.
            let mut walked = Elements::new();
            for_each_element(&ir(), &from, |c, e| {
                let (k, v) = match e {
                    Element::Address(a) => (a.to_string(), None),
                    Element::Entry(k, v) => (k.to_string(), v.map(str::to_string)),
                };
                assert!(walked.insert((c.to_string(), k), v).is_none());
            });
            assert_eq!(walked, elements(&ir(), &from));
        }
    }
}
