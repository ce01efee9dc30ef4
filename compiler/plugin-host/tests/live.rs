//! Live IRs through the nftables plugin, in a real kernel: a node's live IR
//! rendered and filled with its membership (`ringfence_nftables::members`,
//! the agent's side of the binding) holds exactly the addresses and
//! dispatch entries the full IR's rendering holds, with every rule; and a
//! later membership is reached in one transaction of element changes.

use std::collections::{BTreeMap, BTreeSet};

use ringfence_core::compile_live as compile;
use ringfence_core::live::LivePods;
use ringfence_nftables::members;
use ringfence_schema::ir::{NodeIr, Os};
use ringfence_schema::membership::Membership;
use ringfence_testkit::synth::{Params, generate};
use serde_json::Value;

use crate::common::netns::Netns;
use crate::common::render_nft;

/// Per set or map of our table: its elements as merged address ranges
/// (sets) or sorted `key : verdict` texts, one per address (maps); rule comments apart.
#[derive(Debug, Default, PartialEq)]
struct Table {
    sets: BTreeMap<String, Vec<(u128, u128)>>,
    maps: BTreeMap<String, BTreeSet<String>>,
    comments: BTreeSet<String>,
}

fn num(s: &str) -> u128 {
    match s.parse::<std::net::IpAddr>().unwrap() {
        std::net::IpAddr::V4(a) => u128::from(u32::from(a)),
        std::net::IpAddr::V6(a) => u128::from(a),
    }
}

fn range(v: &Value) -> (u128, u128) {
    match v {
        Value::String(s) => (num(s), num(s)),
        Value::Object(m) if m.contains_key("prefix") => {
            let addr = m["prefix"]["addr"].as_str().unwrap();
            let len = m["prefix"]["len"].as_u64().unwrap() as u32;
            let bits = if addr.contains(':') { 128 } else { 32 };
            let lo = num(addr);
            let span = if bits - len >= 128 {
                u128::MAX
            } else {
                (1u128 << (bits - len)) - 1
            };
            (lo, lo + span)
        }
        Value::Object(m) if m.contains_key("range") => {
            let r = m["range"].as_array().unwrap();
            (num(r[0].as_str().unwrap()), num(r[1].as_str().unwrap()))
        }
        other => panic!("element {other}"),
    }
}

/// A map element as `key : verdict` texts, one per address where the key
/// is an address, prefix or range (a full IR's interval maps merge what the
/// live form lists address by address).
fn map_elem(e: &Value) -> Vec<String> {
    let (key, verdict) = (&e[0], &e[1]);
    if key.is_string() || key.get("prefix").is_some() || key.get("range").is_some() {
        let (lo, hi) = range(key);
        assert!(hi - lo < 1 << 16, "map element {e} spans too much to list");
        (lo..=hi).map(|a| format!("{a} : {verdict}")).collect()
    } else {
        vec![e.to_string()]
    }
}

fn read(ns: &Netns) -> Table {
    let json: Value =
        serde_json::from_str(&ns.exec(&["nft", "-j", "list", "table", "inet", "ringfence"]))
            .unwrap();
    let mut t = Table::default();
    for item in json["nftables"].as_array().unwrap() {
        if let Some(s) = item.get("set") {
            let name = s["name"].as_str().unwrap().to_string();
            let mut r: Vec<(u128, u128)> = s
                .get("elem")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(range)
                .collect();
            r.sort();
            let mut merged: Vec<(u128, u128)> = Vec::new();
            for (lo, hi) in r {
                match merged.last_mut() {
                    Some(l) if lo <= l.1.saturating_add(1) => l.1 = l.1.max(hi),
                    _ => merged.push((lo, hi)),
                }
            }
            if !merged.is_empty() {
                t.sets.insert(name, merged);
            }
        }
        if let Some(m) = item.get("map") {
            let name = m["name"].as_str().unwrap().to_string();
            let elems: BTreeSet<String> = m
                .get("elem")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .flat_map(map_elem)
                .collect();
            if !elems.is_empty() {
                t.maps.insert(name, elems);
            }
        }
        if let Some(r) = item.get("rule")
            && let Some(c) = r.get("comment").and_then(Value::as_str)
        {
            t.comments.insert(c.to_string());
        }
    }
    t
}

/// How many addresses prefixes with these host bits cover (saturating).
fn count(host_bits: impl Iterator<Item = u32>) -> u128 {
    host_bits
        .map(|b| 1u128.checked_shl(b).unwrap_or(u128::MAX))
        .fold(0, u128::saturating_add)
}

fn render(ir: &NodeIr) -> String {
    render_nft(ir)
}

#[test]
fn a_filled_live_ir_holds_what_the_full_ir_holds() {
    let s = generate(&Params::small_linux());
    let (c, d) = compile(&s.intent, &s.inventory);
    let mut c = c.unwrap_or_else(|| panic!("{d:?}"));
    let pods = LivePods::from_compiled(&mut c);
    let mut checked = 0;
    for full in c.nodes().iter().filter(|n| n.os == Os::Linux).take(2) {
        let live = c.live_ir(&full.node, &c.node_classes(&full.node)).unwrap();
        let m = c.membership(&live, &pods);
        assert!(!m.endpoints.is_empty(), "{} runs pods", full.node);
        // Pods come and go from live sets: each is a hash set unless its
        // fixed part is large (nft deletes from interval sets slowly).
        let text = render(&live);
        let mut fixed = 0;
        for s in live.sets.iter().filter(|s| s.live) {
            let v4 = count(s.v4.iter().map(|n| 32 - u32::from(n.prefix_len())));
            let v6 = count(s.v6.iter().map(|n| 128 - u32::from(n.prefix_len())));
            for (fam, small) in [("v4", v4 <= 4096), ("v6", v6 <= 4096)] {
                let decl = format!("set {}_{fam} {{", s.name);
                let line = text[text.find(&decl).unwrap()..].lines().next().unwrap();
                assert!(!small || !line.contains("interval"), "{line}");
            }
            fixed += usize::from(v4 > 0);
        }
        assert!(fixed > 0, "some live set has fixed addresses");
        let (a, b) = (Netns::new("full"), Netns::new("live"));
        a.nft_file(&render(full), false).unwrap();
        // One file: the rules and their membership, one transaction.
        let fill = members::changes(&live, &Membership::default(), &m);
        b.nft_file(&format!("{}{fill}", render(&live)), false)
            .unwrap();
        let (ta, mut tb) = (read(&a), read(&b));
        // Exposure targets live in named maps only in the live form.
        tb.maps.retain(|k, _| !k.starts_with("expose-"));
        assert_eq!(ta.sets, tb.sets, "node {}: set contents", full.node);
        assert_eq!(ta.maps, tb.maps, "node {}: dispatch maps", full.node);
        assert!(
            ta.comments.is_subset(&tb.comments),
            "node {}: rules",
            full.node
        );
        assert!(
            tb.sets.keys().any(|k| k.starts_with("local-")),
            "unknown pods are checked"
        );

        // A pod leaves: its addresses go from every set and map in one load.
        let mut m2 = m.clone();
        let gone = m2.endpoints.remove(0);
        for s in &mut m2.sets {
            s.addresses.retain(|a| !gone.addresses.contains(a));
        }
        m2.sets.retain(|s| !s.addresses.is_empty());
        m2.targets.retain(|t| t.endpoint != gone.name);
        let step = members::changes(&live, &m, &m2);
        assert!(step.starts_with("delete element"), "{step}");
        b.nft_file(&step, false).unwrap();
        let after = read(&b);
        let want = members::elements(&live, &m2);
        for (container, key) in want.keys() {
            if let Some(r) = after.sets.get(container) {
                let n = num(key);
                assert!(
                    r.iter().any(|&(lo, hi)| lo <= n && n <= hi),
                    "{container} {key}"
                );
            }
        }
        for a in &gone.addresses {
            let n = num(&a.to_string());
            let fam = if a.is_ipv4() { "v4" } else { "v6" };
            for (name, r) in &after.sets {
                if name.starts_with("podnets-") || !name.ends_with(fam) {
                    continue;
                }
                let fixed = live
                    .sets
                    .iter()
                    .any(|s| name.starts_with(&s.name) && s.contains(*a));
                assert!(
                    fixed || !r.iter().any(|&(lo, hi)| lo <= n && n <= hi),
                    "{a} still in {name}"
                );
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 2);
}
