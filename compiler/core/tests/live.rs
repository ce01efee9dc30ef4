//! Live inventories: pods of known classes change membership, never rules.
//!
//! Checked on the example and on a small synthetic cluster (with Windows
//! nodes, IPv6 and exposures): a pod is placed in the class the compile put
//! it in; a live IR plus its membership is exactly the full IR; churn of
//! known classes renames nothing; and the incremental state after a batch
//! of changes is what a compile of the new inventory says.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ringfence_core::live::{LivePods, LiveState, Placed, pod_changes};
use ringfence_core::{ClassIdx, ClusterIdx, Compiled, compile_live as compile};
use ringfence_intent::model::Intent;
use ringfence_inventory::model::{Inventory, Pod};
use ringfence_schema::membership::Membership;
use ringfence_testkit::synth::{Params, generate};

use crate::example;

fn compiled(intent: &Intent, inv: &Inventory) -> Compiled {
    let (c, d) = compile(intent, inv);
    c.unwrap_or_else(|| panic!("compile failed: {d:?}"))
}

/// The example with pod ranges on its nodes (without them every pod address
/// is carved out of the externals, and a new one needs a compile).
fn example_inventory() -> Inventory {
    let mut inv = example::inventory();
    for n in &mut inv.clusters[0].nodes {
        let i = match n.name.as_str() {
            "worker-1" => 1,
            "worker-2" => 2,
            _ => 3,
        };
        n.pod_cidrs = vec![
            format!("10.1.{i}.0/24").parse().unwrap(),
            format!("fd10:1:{i}::/64").parse().unwrap(),
        ];
    }
    inv
}

fn cases() -> Vec<(Intent, Inventory)> {
    let s = generate(&Params::small());
    vec![
        (example::intent(), example_inventory()),
        (s.intent, s.inventory),
    ]
}

/// Every name the rules use: sets, rules, chains.
fn names(c: &Compiled) -> BTreeSet<String> {
    c.nodes()
        .iter()
        .flat_map(|n| {
            n.chains
                .iter()
                .flat_map(|c| {
                    std::iter::once(c.id.clone()).chain(c.rules.iter().map(|r| r.id.clone()))
                })
                .chain(n.sets.iter().map(|s| s.name.clone()))
        })
        .collect()
}

#[test]
fn a_snapshot_compile_has_the_same_irs_and_refuses_live_calls() {
    for (intent, inv) in cases() {
        let live = compiled(&intent, &inv);
        let (snapshot, _) = ringfence_core::compile(&intent, &inv);
        let snapshot = snapshot.expect("compiles");
        assert_eq!(snapshot.nodes(), live.nodes());
        let pod = &inv.clusters[0].pods[0];
        let refused = std::panic::catch_unwind(|| snapshot.classify(&inv.clusters[0].name, pod));
        let message = refused.expect_err("a snapshot compile has no live index");
        let message = message
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(message.contains("compile_live"), "{message}");
    }
}

#[test]
fn every_pod_is_placed_in_its_class_without_a_compile() {
    for (intent, inv) in cases() {
        let c = compiled(&intent, &inv);
        let classes: BTreeMap<(ClusterIdx, String), ClassIdx> =
            c.live_pods().iter().map(|p| (p.key(), p.class)).collect();
        let mut seen = 0;
        for (ci, cl) in inv.clusters.iter().enumerate() {
            for p in &cl.pods {
                let key = (ClusterIdx::new(ci), format!("{}/{}", p.namespace, p.name));
                let placed = c.classify(&cl.name, p);
                match classes.get(&key) {
                    Some(&class) => {
                        assert_eq!(placed, Placed::Class(class), "{key:?}");
                        seen += 1;
                    }
                    None if p.ips.is_empty() => assert_eq!(placed, Placed::Nowhere, "{key:?}"),
                    None => {
                        assert!(p.host_network, "{key:?} has no class");
                        assert_eq!(placed, Placed::NewClass, "{key:?}");
                    }
                }
            }
        }
        assert!(seen > 5, "only {seen} pods classified");
    }
}

#[test]
fn a_pod_whose_labels_match_no_known_class_needs_a_compile() {
    let intent = example::intent();
    let inv = example_inventory();
    let c = compiled(&intent, &inv);
    let frontend = inv.clusters[0]
        .pods
        .iter()
        .find(|p| p.name == "frontend-1")
        .unwrap();
    let mut p = frontend.clone();
    // Quarantined: no frontend is, so that class does not exist yet.
    p.labels
        .insert("security.ringfence.io/quarantine".into(), "true".into());
    assert_eq!(c.classify("prod-eu1", &p), Placed::NewClass);
    // A new name, address and node keep the class.
    let mut q = frontend.clone();
    let before = c.classify("prod-eu1", &q);
    q.name = "frontend-9".into();
    q.ips = vec!["10.1.2.99".parse().unwrap()];
    q.node = Some("worker-2".into());
    assert_eq!(c.classify("prod-eu1", &q), before);
    q.ips.clear();
    assert_eq!(c.classify("prod-eu1", &q), Placed::Nowhere);
    // An address outside the pod ranges is in `internet`, which excludes the
    // clusters' addresses: a compile carves it out.
    q.ips = vec!["10.9.9.9".parse().unwrap()];
    assert_eq!(c.classify("prod-eu1", &q), Placed::NewClass);
}

#[test]
fn a_live_ir_plus_its_membership_is_the_full_ir() {
    for (intent, inv) in cases() {
        let mut c = compiled(&intent, &inv);
        let pods = LivePods::from_compiled(&mut c);
        for full in c.nodes() {
            let ir = c.live_ir(&full.node, &c.node_classes(&full.node)).unwrap();
            ir.validate().unwrap();
            assert!(ir.live);
            let m = c.membership(&ir, &pods);
            m.check(&ir)
                .unwrap_or_else(|e| panic!("{}: {e}", full.node));
            assert_eq!(&ir.with_membership(&m), full, "node {}", full.node);
        }
    }
}

/// The example with pods of known classes created, moved, readdressed and deleted.
fn churned(inv: &Inventory) -> Inventory {
    let mut inv = inv.clone();
    let pods = &mut inv.clusters[0].pods;
    let find = |pods: &Vec<Pod>, name: &str| pods.iter().position(|p| p.name == name).unwrap();
    // A second cart on worker-2 (the class's first pod there), a third
    // frontend on worker-1 (the class is there already).
    let mut cart = pods[find(pods, "cart-1")].clone();
    cart.name = "cart-2".into();
    cart.node = Some("worker-2".into());
    cart.ips = vec!["10.1.2.30".parse().unwrap()];
    pods.push(cart);
    let mut fe = pods[find(pods, "frontend-1")].clone();
    fe.name = "frontend-3".into();
    fe.ips = vec![
        "10.1.1.31".parse().unwrap(),
        "fd10:1:1::31".parse().unwrap(),
    ];
    pods.push(fe);
    // frontend-2 rescheduled to worker-1 with a new address (the class is
    // there); catalog-1 readdressed in place.
    let i = find(pods, "frontend-2");
    pods[i].node = Some("worker-1".into());
    pods[i].ips = vec!["10.1.1.32".parse().unwrap()];
    let i = find(pods, "catalog-1");
    pods[i].ips = vec!["10.1.2.33".parse().unwrap()];
    pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    inv
}

#[test]
fn churn_of_known_classes_renames_nothing() {
    let intent = example::intent();
    let inv = example_inventory();
    let (a, b) = (compiled(&intent, &inv), compiled(&intent, &churned(&inv)));
    assert_eq!(names(&a), names(&b));
    // And every node keeps its live IR once it has the classes it runs.
    for n in a.node_names() {
        let mut classes = a.node_classes(n);
        classes.extend(b.node_classes(n));
        assert_eq!(a.live_ir(n, &classes), b.live_ir(n, &classes), "node {n}");
    }
}

#[test]
fn the_live_state_after_changes_is_what_a_compile_says() {
    let intent = example::intent();
    let inv = example_inventory();
    let new = churned(&inv);
    let mut c = compiled(&intent, &inv);
    let fresh = compiled(&intent, &new);
    let pods = LivePods::from_compiled(&mut c);
    let mut state = LiveState::new(&c, pods);
    let changes = pod_changes(&c, &inv, &new).unwrap();
    assert_eq!(changes.len(), 4, "{changes:?}");
    let applied = state.apply(&c, changes);
    // Only worker-2 lacked a class (cart): it needs new rules; worker-1
    // (two more frontends) already had them.
    assert_eq!(
        applied.rules,
        BTreeSet::from(["worker-2".to_string()]),
        "{:?}",
        applied.rules
    );
    assert!(applied.changes.contains_key("worker-1"));
    for full in fresh.nodes() {
        let node = state.node(&full.node).unwrap();
        let membership = state.membership(&full.node).unwrap();
        membership.check(&node.ir).unwrap();
        let joined = node.ir.with_membership(&membership);
        if node.classes == fresh.node_classes(&full.node) {
            assert_eq!(&joined, full, "node {}", full.node);
        } else {
            // It keeps the chains of a class that left (frontend moved away
            // from worker-2): the same verdicts for every pod it runs.
            assert!(
                joined.chains.len() > full.chains.len(),
                "node {}",
                full.node
            );
            for e in &full.endpoints {
                assert!(joined.endpoints.contains(e), "{}: {}", full.node, e.name);
            }
        }
        // The incremental membership is the one computed from scratch.
        assert_eq!(
            membership,
            c.membership(&node.ir, state.pods()),
            "node {}",
            full.node
        );
    }
}

#[test]
fn new_rules_need_not_keep_the_compiles_irs() {
    // `watch` takes the compile's IRs once the live state is made: a node
    // that needs new rules later gets them from its own live IR (twice on
    // worker-2: cart, then postgres), and they are what the compile's IR
    // gives.
    let mut rerendered = 0;
    for (intent, inv) in cases() {
        let mut c = compiled(&intent, &inv);
        let kept = compiled(&intent, &inv);
        let steps = if inv.clusters[0].pods.len() > 20 {
            vec![churned_synth(&c, &inv)]
        } else {
            let first = churned(&inv);
            let mut second = first.clone();
            let pods = &mut second.clusters[0].pods;
            let mut pg = pods
                .iter()
                .find(|p| p.name == "postgres-0")
                .unwrap()
                .clone();
            pg.name = "postgres-1".into();
            pg.node = Some("worker-2".into());
            pg.ips = vec!["10.1.2.50".parse().unwrap()];
            pods.push(pg);
            pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
            vec![first, second]
        };
        let pods = LivePods::from_compiled(&mut c);
        assert!(c.live_pods().is_empty());
        let mut state = LiveState::new(&c, pods);
        assert_eq!(c.take_nodes().len(), kept.nodes().len());
        assert!(c.nodes().is_empty());
        let mut before = inv;
        for new in steps {
            let applied = state.apply(&c, pod_changes(&c, &before, &new).unwrap());
            rerendered += applied.rules.len();
            for (n, node) in state.nodes() {
                let want = kept.live_ir(n, &node.classes).unwrap();
                assert_eq!(*node.ir, want, "node {n}");
                assert_eq!(
                    state.membership(n).unwrap(),
                    kept.membership(&want, state.pods()),
                    "node {n}"
                );
            }
            before = new;
        }
    }
    assert!(rerendered >= 2, "{rerendered} re-rendered nodes");
}

#[test]
fn an_address_given_to_another_class_moves_in_one_step() {
    let intent = example::intent();
    let inv = example_inventory();
    let mut c = compiled(&intent, &inv);
    let pods = LivePods::from_compiled(&mut c);
    let mut state = LiveState::new(&c, pods);
    // frontend-1 goes; cart-9 (another class) gets its IPv4 address on the same node.
    let mut new = inv.clone();
    let pods = &mut new.clusters[0].pods;
    let i = pods.iter().position(|p| p.name == "frontend-1").unwrap();
    let old = pods.remove(i);
    let mut cart = pods.iter().find(|p| p.name == "cart-1").unwrap().clone();
    cart.name = "cart-9".into();
    cart.ips = vec![old.ips[0]];
    cart.node = old.node.clone();
    pods.push(cart);
    pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let reused: IpAddr = old.ips[0];
    let changes = pod_changes(&c, &inv, &new).unwrap();
    let applied = state.apply(&c, changes);
    assert!(applied.rules.is_empty(), "{:?}", applied.rules);
    let mut moved = 0;
    for (n, ch) in &applied.changes {
        let (mut removed, mut added): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
        for s in &ch.sets {
            if s.remove.contains(&reused) {
                removed.push(&s.name);
            }
            if s.add.contains(&reused) {
                added.push(&s.name);
            }
        }
        if !added.is_empty() {
            moved += 1;
            // Where the address joins a cart set, it leaves frontend sets in
            // the same changes (never in a later step).
            assert!(
                added.iter().all(|s| !s.starts_with("frontend")),
                "{n}: {added:?}"
            );
        }
        if removed.iter().any(|s| s.starts_with("frontend")) {
            let m: Membership = state.membership(n).unwrap();
            assert!(
                m.sets
                    .iter()
                    .filter(|s| s.name.starts_with("frontend"))
                    .all(|s| !s.addresses.contains(&reused)),
                "{n}"
            );
        }
    }
    assert!(
        moved > 0,
        "no node saw the address move: {:?}",
        applied.changes
    );
    // worker-1's dispatch entry for the address now names cart's chains.
    let w1 = state.membership("worker-1").unwrap();
    let e = w1
        .endpoints
        .iter()
        .find(|e| e.addresses.contains(&reused))
        .unwrap();
    assert_eq!(e.name, "pod/shop/cart-9");
}

/// A cluster's pods with every 5th deleted and every 7th moved to another
/// node (where that keeps its class).
fn churned_synth(c: &Compiled, inv: &Inventory) -> Inventory {
    let mut new = inv.clone();
    let cluster = &mut new.clusters[0];
    let nodes: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
    let mut pods = Vec::new();
    for (i, p) in cluster.pods.iter().enumerate() {
        if i % 5 == 0 {
            continue;
        }
        let mut q = p.clone();
        if i % 7 == 0 {
            q.node = Some(nodes[i % nodes.len()].clone());
            if c.classify(&cluster.name, &q) != c.classify(&cluster.name, p) {
                q.node = p.node.clone();
            }
        }
        pods.push(q);
    }
    cluster.pods = pods;
    new
}

#[test]
fn each_nodes_changes_turn_its_old_membership_into_its_new_one() {
    let (mut exposed, mut moved) = (0, 0);
    for (intent, inv) in cases() {
        let mut c = compiled(&intent, &inv);
        let new = if inv.clusters[0].pods.len() > 20 {
            churned_synth(&c, &inv)
        } else {
            churned(&inv)
        };
        let pods = LivePods::from_compiled(&mut c);
        let mut state = LiveState::new(&c, pods);
        let before: BTreeMap<String, Membership> = state
            .nodes()
            .map(|(n, _)| (n.clone(), state.membership(n).unwrap()))
            .collect();
        let applied = state.apply(&c, pod_changes(&c, &inv, &new).unwrap());
        for (n, old) in &before {
            let now = state.membership(n).unwrap();
            assert_eq!(now, c.membership(&state.node(n).unwrap().ir, state.pods()));
            exposed += now.targets.len();
            if applied.rules.contains(n) {
                continue;
            }
            let want = match applied.changes.get(n) {
                Some(ch) => {
                    moved += ch.targets.len() + ch.targets_removed.len();
                    old.applied(ch).unwrap()
                }
                None => old.clone(),
            };
            assert_eq!(want, now, "node {n}");
        }
    }
    assert!(
        exposed > 0 && moved > 0,
        "targets: {exposed} held, {moved} changed"
    );
}

/// The sets of scope `prod-eu1` (every workload of the example's cluster) in
/// every node's IR.
fn cluster_sets(c: &Compiled) -> Vec<ringfence_schema::net::AddressSet> {
    let mut sets: Vec<_> = c
        .nodes()
        .iter()
        .flat_map(|n| &n.sets)
        .filter(|s| s.name.starts_with("prod_eu1_"))
        .cloned()
        .collect();
    sets.sort_by(|a, b| a.name.cmp(&b.name));
    sets.dedup();
    sets
}

#[test]
fn a_set_of_every_pod_of_a_cluster_holds_its_pod_ranges_and_pods_never_change_it() {
    let intent = example::intent();
    let inv = example_inventory();
    let mut c = compiled(&intent, &inv);
    let sets = cluster_sets(&c);
    assert!(
        !sets.is_empty(),
        "the example's DNS policy is from `prod-eu1`"
    );
    for s in &sets {
        assert!(!s.live, "{}: pods change nothing in it", s.name);
        for range in ["10.1.1.0/24", "10.1.2.0/24", "10.1.3.0/24"] {
            let r: ipnet::Ipv4Net = range.parse().unwrap();
            assert!(
                s.v4.iter().any(|n| n.contains(&r)),
                "{}: {range} in {:?}",
                s.name,
                s.v4
            );
        }
        let v6: ipnet::Ipv6Net = "fd10:1:1::/64".parse().unwrap();
        assert!(
            s.v6.iter().any(|n| n.contains(&v6)),
            "{}: {:?}",
            s.name,
            s.v6
        );
    }
    // A set that depends on labels (a filter of `app=cart` pods, restricted
    // to scope `shop`) still lists its pods.
    let cart = c
        .nodes()
        .iter()
        .flat_map(|n| &n.sets)
        .find(|s| s.name.starts_with("cart_"));
    assert!(cart.expect("a set of cart pods").live);
    // No membership names them, and churn of known classes changes nothing
    // in them on any node.
    let pods = LivePods::from_compiled(&mut c);
    let mut state = LiveState::new(&c, pods);
    for n in c.node_names() {
        let m = state.membership(n).unwrap();
        assert!(
            m.sets.iter().all(|s| !s.name.starts_with("prod_eu1_")),
            "{n}"
        );
    }
    let new = churned(&inv);
    let applied = state.apply(&c, pod_changes(&c, &inv, &new).unwrap());
    assert!(!applied.changes.is_empty());
    for (n, ch) in &applied.changes {
        assert!(
            ch.sets.iter().all(|s| !s.name.starts_with("prod_eu1_")),
            "{n}: {ch:?}"
        );
    }
}

#[test]
fn pod_ranges_stand_for_pods_only_while_they_hold_exactly_them() {
    let intent = example::intent();
    // Without pod ranges the set lists the pods, and they come and go in it.
    let c = compiled(&intent, &example::inventory());
    assert!(cluster_sets(&c).iter().all(|s| s.live));
    // A pod outside the ranges: the ranges do not stand for the pods.
    let mut inv = example_inventory();
    let i = inv.clusters[0]
        .pods
        .iter()
        .position(|p| !p.host_network && !p.ips.is_empty());
    inv.clusters[0].pods[i.unwrap()].ips = vec!["10.1.9.9".parse().unwrap()];
    let c = compiled(&intent, &inv);
    assert!(cluster_sets(&c).iter().all(|s| s.live));
    // With them, a pod of a known class that comes with an address outside
    // the ranges needs a compile: here worker-2's own address, which no
    // external holds (externals exclude the clusters' addresses).
    let inv = example_inventory();
    let c = compiled(&intent, &inv);
    let mut p = inv.clusters[0]
        .pods
        .iter()
        .find(|p| p.name == "frontend-1")
        .unwrap()
        .clone();
    assert!(matches!(c.classify("prod-eu1", &p), Placed::Class(_)));
    p.ips = vec!["192.168.1.12".parse().unwrap()];
    assert_eq!(c.classify("prod-eu1", &p), Placed::NewClass);
    // Without pod ranges, the same pod keeps its class.
    let c = compiled(&intent, &example::inventory());
    assert!(matches!(c.classify("prod-eu1", &p), Placed::Class(_)));
}
