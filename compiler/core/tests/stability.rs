//! Names are stable: the same intent gives the same IRs byte for byte, and
//! an unrelated change renames nothing it does not touch.

use std::collections::BTreeSet;

use ringfence_core::compile;
use ringfence_intent::model::{ExternalId, PolicyAction, PolicyRank, Proto};
use ringfence_testkit::builder::t;

use crate::example;

fn ids(c: &ringfence_core::Compiled) -> BTreeSet<String> {
    c.nodes()
        .iter()
        .flat_map(|n| {
            n.chains
                .iter()
                .map(|c| c.id.clone())
                .chain(
                    n.chains
                        .iter()
                        .flat_map(|c| c.rules.iter().map(|r| r.id.clone())),
                )
                .chain(n.sets.iter().map(|s| s.name.clone()))
        })
        .collect()
}

#[test]
fn same_input_same_bytes() {
    let a = compile(&example::intent(), &example::inventory())
        .0
        .unwrap();
    let b = compile(&example::intent(), &example::inventory())
        .0
        .unwrap();
    let json = |c: &ringfence_core::Compiled| serde_json::to_string(c.nodes()).unwrap();
    assert_eq!(json(&a), json(&b));
    for ir in a.nodes() {
        ir.validate().unwrap();
        let back: ringfence_schema::ir::NodeIr =
            serde_json::from_str(&serde_json::to_string(ir).unwrap()).unwrap();
        assert_eq!(&back, ir, "IR round-trips through JSON");
    }
}

#[test]
fn an_unrelated_policy_renames_nothing_else() {
    let before = compile(&example::intent(), &example::inventory())
        .0
        .unwrap();
    // The same intent plus one policy that only touches invoicing's egress.
    let mut intent = example::intent();
    let scope = intent
        .scope_ids()
        .find(|&s| intent.scope(s).name == "invoicing")
        .unwrap();
    let siem = intent
        .externals
        .iter()
        .position(|e| e.name == "siem")
        .map(ExternalId::new)
        .unwrap();
    let app = intent
        .filter_ids()
        .find(|&f| intent.filter(f).name == "invoicing-app")
        .unwrap();
    let mut p = intent
        .policies
        .iter()
        .find(|p| p.scope == scope)
        .unwrap()
        .clone();
    p.id = "invoicing/syslog".into();
    p.name = "syslog".into();
    p.rank = PolicyRank::Default;
    p.action = PolicyAction::Allow;
    p.consumer = t::filter(app);
    p.provider = t::external(siem);
    p.proto = Proto::Udp;
    p.ports = vec!["514".parse().unwrap()];
    intent.policies.push(p);
    let after = compile(&intent, &example::inventory()).0.unwrap();
    let (b, a) = (ids(&before), ids(&after));
    let gone: Vec<&String> = b.difference(&a).collect();
    let new: Vec<&String> = a.difference(&b).collect();
    // Only invoicing's egress chain changed: its id, and one new rule (the
    // `siem` set already exists for the quarantine exception).
    assert_eq!(gone.len(), 1, "gone: {gone:?}");
    assert!(gone[0].starts_with("eg_"));
    assert_eq!(new.len(), 2, "new: {new:?}");
    assert!(new.iter().any(|n| n.starts_with("syslog-")));
    assert!(new.iter().any(|n| n.starts_with("eg_")));
}
