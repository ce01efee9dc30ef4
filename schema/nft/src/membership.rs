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

/// Every element `m` puts in the ruleset of live IR `ir`: (container, key) → value.
pub fn elements(ir: &NodeIr, m: &Membership) -> BTreeMap<(String, String), Option<String>> {
    let mut out = BTreeMap::new();
    let fam = |a: &IpAddr| if a.is_ipv4() { "v4" } else { "v6" };
    for s in &m.sets {
        for a in &s.addresses {
            out.insert((format!("{}_{}", s.name, fam(a)), a.to_string()), None);
        }
    }
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
    for t in &m.targets {
        let Some(i) = ir.exposures.iter().position(|x| x.key() == t.exposure) else {
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
/// of live IR `ir` (empty when nothing changes).
pub fn changes(ir: &NodeIr, from: &Membership, to: &Membership) -> String {
    let (old, new) = (elements(ir, from), elements(ir, to));
    let mut delete: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut add: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for ((c, k), v) in &old {
        if new.get(&(c.clone(), k.clone())) != Some(v) {
            delete.entry(c).or_default().push(k.clone());
        }
    }
    for ((c, k), v) in &new {
        if old.get(&(c.clone(), k.clone())) != Some(v) {
            let e = match v {
                Some(v) => format!("{k} : {v}"),
                None => k.clone(),
            };
            add.entry(c).or_default().push(e);
        }
    }
    let mut out = String::new();
    for (verb, lists) in [("delete", delete), ("add", add)] {
        for (container, elems) in lists {
            for chunk in elems.chunks(PER_STATEMENT) {
                let _ = writeln!(
                    out,
                    "{verb} element inet {TABLE} {container} {{ {} }}",
                    chunk.join(", ")
                );
            }
        }
    }
    out
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
}
