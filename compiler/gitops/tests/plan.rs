//! `plan` between two revisions of a real repository: the example intent,
//! then a commit that adds a policy, removes one and widens an external.

use std::path::PathBuf;

use ringfence_core::diff::{ConnectionChange, NodeStatus, Plan, Revision, plan};
use ringfence_driver::{IntentFrom, Pipeline};
use ringfence_schema::ir::{Action, Direction};
use ringfence_source::Selector;

use crate::git::{Repo, workspace};

fn compile(repo: &Repo, rev: &str) -> ringfence_driver::Session {
    let inv = vec![workspace().join("policies-example/inventory/prod-eu1.json")];
    let dir: PathBuf = repo.root.join("policies");
    Pipeline::new()
        .session(&IntentFrom::Dir(&dir, Selector::Rev(rev.into())), &inv, &[])
        .unwrap_or_else(|e| panic!("{rev}: {e}"))
        .output
        .unwrap_or_else(|| panic!("{rev} does not compile"))
}

fn changed_plan() -> (Plan, String, String) {
    let repo = Repo::example("policies");
    let base = crate::git::git(&repo.root, &["rev-parse", "HEAD"]);
    repo.edit(
        "policies/20-shop.kdl",
        "        allow \"cart-to-cache\" from=\"cart\" to=\"shop-cache\" proto=\"tcp\" ports=6379\n",
        "",
    );
    repo.edit(
        "policies/20-shop.kdl",
        "ports=7070\n",
        "ports=7070\n        allow \"frontend-to-cart-admin\" from=\"frontend\" to=\"cart\" proto=\"tcp\" ports=7071\n",
    );
    repo.edit(
        "policies/00-externals.kdl",
        "cidr \"198.51.100.50/32\"",
        "cidr \"198.51.100.50/32\" \"198.51.100.51/32\"",
    );
    let head = repo.commit("open cart admin, close the cache, a second SIEM");
    let (old, new) = (compile(&repo, "HEAD~1"), compile(&repo, "HEAD"));
    let rev = |r: &str, c: &str| Revision {
        rev: r.into(),
        commit: Some(c.into()),
    };
    let p = plan(
        &old.compiled,
        &new.compiled,
        rev("HEAD~1", &base),
        rev("HEAD", &head),
    );
    (p, base, head)
}

fn line(c: &ConnectionChange) -> String {
    let c = &c.connection;
    let ports: Vec<String> = c.ports.iter().map(|p| p.to_string()).collect();
    format!("{} => {} : {} {}", c.from, c.to, c.proto, ports.join(","))
}

#[test]
fn connections_change_with_the_policies_responsible() {
    let (p, _, _) = changed_plan();
    let allowed: Vec<String> = p.connectivity.allowed.iter().map(line).collect();
    let denied: Vec<String> = p.connectivity.denied.iter().map(line).collect();
    assert_eq!(
        allowed,
        ["shop/frontend[Deployment] => shop/cart[Deployment] : tcp 7071"]
    );
    assert_eq!(
        denied,
        ["shop/cart[Deployment] => shop-data/redis[StatefulSet] : tcp 6379"]
    );

    // Newly allowed: both sides by the new policy (its line in the new file).
    let a = &p.connectivity.allowed[0];
    for side in [&a.now.egress, &a.now.ingress] {
        let side = side.as_ref().unwrap();
        assert_eq!(side.action, Action::Allow);
        let pol = side.policy.as_ref().unwrap();
        assert_eq!(
            (pol.id.as_str(), pol.file.as_str(), pol.line),
            ("shop/frontend-to-cart-admin", "20-shop.kdl", 36)
        );
    }
    // ...and before, the shop's catch-alls denied it.
    let before = a.before.egress.as_ref().unwrap();
    assert_eq!(before.action, Action::Deny);
    assert_eq!(before.policy.as_ref().unwrap().id, "shop/catch-all-egress");

    // Newly denied: the catch-alls decide now; the removed policy did before.
    let d = &p.connectivity.denied[0];
    let now: Vec<(Action, &str)> = [&d.now.egress, &d.now.ingress]
        .iter()
        .map(|s| {
            let s = s.as_ref().unwrap();
            (s.action, s.policy.as_ref().unwrap().id.as_str())
        })
        .collect();
    assert_eq!(
        now,
        [
            (Action::Deny, "shop/catch-all-egress"),
            (Action::Deny, "shop/catch-all-ingress")
        ]
    );
    let was = d.before.ingress.as_ref().unwrap().policy.as_ref().unwrap();
    assert_eq!(
        (was.id.as_str(), was.file.as_str(), was.line),
        ("shop/cart-to-cache", "20-shop.kdl", 41)
    );
}

#[test]
fn nodes_show_rule_and_set_changes() {
    let (p, base, head) = changed_plan();
    assert_eq!(p.from.commit.as_deref(), Some(base.as_str()));
    assert_eq!(p.to.commit.as_deref(), Some(head.as_str()));
    assert_eq!(p.nodes_compiled, 3);
    // The Windows node (invoicing) is untouched.
    let nodes: Vec<&str> = p.nodes.iter().map(|n| n.node.as_str()).collect();
    assert_eq!(nodes, ["prod-eu1-linux-a", "prod-eu1-linux-b"]);
    assert!(p.nodes.iter().all(|n| n.status == NodeStatus::Changed));

    // Every node with a frontend pod egresses the new rule; the cart's node
    // takes it on ingress.
    let added: Vec<(&str, Direction, String, &str)> = p
        .nodes
        .iter()
        .flat_map(|n| {
            n.rules_added.iter().map(move |r| {
                (
                    n.node.as_str(),
                    r.direction,
                    format!("{} {} {:?}", r.action, r.proto, r.ports),
                    r.policy.id.as_str(),
                )
            })
        })
        .collect();
    let want = |node, dir| {
        (
            node,
            dir,
            "allow tcp [PortRange { start: 7071, end: 7071 }]".to_string(),
            "shop/frontend-to-cart-admin",
        )
    };
    assert_eq!(
        added,
        [
            want("prod-eu1-linux-a", Direction::Egress),
            want("prod-eu1-linux-b", Direction::Ingress),
            want("prod-eu1-linux-b", Direction::Egress),
        ]
    );
    let b = &p.nodes[1];
    assert!(b.rules_added[0].endpoints[0].starts_with("pod/shop/cart-"));
    let removed: Vec<(Direction, &str, &str)> = b
        .rules_removed
        .iter()
        .map(|r| (r.direction, r.policy.id.as_str(), r.endpoints[0].as_str()))
        .collect();
    assert_eq!(removed.len(), 2, "{removed:?}");
    assert_eq!(
        removed[0],
        (
            Direction::Ingress,
            "shop/cart-to-cache",
            "pod/shop-data/redis-0"
        )
    );
    assert_eq!(removed[1].0, Direction::Egress);
    assert!(p.nodes[0].rules_removed.is_empty());

    // The SIEM set grew by one address on the node that sends logs to it;
    // no rule is reported for it (its rules are the same, on a changed set).
    let a = &p.nodes[0];
    assert_eq!(a.sets_changed.len(), 1, "{:?}", a.sets_changed);
    let s = &a.sets_changed[0];
    // Sets are named by what they stand for: the name stays.
    assert!(s.from.starts_with("siem_") && s.from == s.to);
    assert_eq!(
        s.added.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        ["198.51.100.51/32"]
    );
    assert!(s.removed.is_empty());

    // The text groups by node, then connectivity, and says who decides.
    let text = p.to_string();
    let nodes_at = text.find("### Nodes").unwrap();
    let conn_at = text.find("### Connectivity").unwrap();
    assert!(nodes_at < conn_at, "{text}");
    assert!(text.contains("- set changed: `siem_"), "{text}");
    assert!(text.contains(
        "- `shop/frontend[Deployment]` => `shop/cart[Deployment]` : TCP 7071\n  - now: egress allow by `shop/frontend-to-cart-admin` (20-shop.kdl:36); ingress allow by `shop/frontend-to-cart-admin` (20-shop.kdl:36)"
    ), "{text}");

    // JSON carries the same, as documented in schema/docs/gitops.md.
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(
        json["connectivity"]["denied"][0]["before"]["ingress"]["policy"]["line"],
        41
    );
    assert_eq!(
        json["nodes"][0]["sets_changed"][0]["added"][0],
        "198.51.100.51/32"
    );
    assert_eq!(json["nodes"][1]["rules_removed"][0]["direction"], "ingress");
}

#[test]
fn the_same_revision_plans_nothing() {
    let repo = Repo::example("policies");
    let a = compile(&repo, "HEAD");
    let b = compile(&repo, "HEAD");
    let p = plan(
        &a.compiled,
        &b.compiled,
        Revision::default(),
        Revision::default(),
    );
    assert!(p.nodes.is_empty());
    assert!(p.connectivity.allowed.is_empty() && p.connectivity.denied.is_empty());
    assert!(p.to_string().contains("0 of 3 node(s) change"), "{p}");
}
