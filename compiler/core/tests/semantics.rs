//! Semantics as tables: intent + inventory + connection → the verdict and
//! the deciding policy on each side. Every row is answered by `explain`
//! (the fast matcher) and cross-checked against `NodeIr::evaluate` on the
//! node that judges each side.

use ringfence_core::{Compiled, compile};
use ringfence_intent::model::{Action, Intent, Mode, Os, Proto};
use ringfence_inventory::model::Inventory;
use ringfence_testkit::builder::{
    PodExt, ServiceExt, cluster, cluster_c1, inventory, node, pod, service,
};
use ringfence_testkit::fixtures::{self, node_return};

use crate::example;

/// One row: `egress`/`ingress` are the deciding policy ids, `-` for a side
/// ringfence does not manage.
struct Row {
    what: &'static str,
    from: &'static str,
    to: &'static str,
    proto: Proto,
    port: Option<u16>,
    verdict: Action,
    egress: &'static str,
    ingress: &'static str,
}

const ALLOW: Action = Action::Allow;
const DENY: Action = Action::Deny;
use Proto::{Tcp, Udp};

fn compiled(intent: &Intent, inv: &Inventory) -> Compiled {
    let (c, diags) = compile(intent, inv);
    c.unwrap_or_else(|| panic!("does not compile: {diags:#?}"))
}

fn run(c: &Compiled, rows: &[Row]) {
    for r in rows {
        let ctx = format!(
            "{} ({} -> {} {} {:?})",
            r.what, r.from, r.to, r.proto, r.port
        );
        let from = c.peer(r.from).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let to = c.peer(r.to).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let x = c
            .explain(&from, &to, r.proto, r.port)
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let policy =
            |s: &ringfence_core::explain::SideInfo| s.policy_id().unwrap_or("-").to_string();
        assert_eq!(
            (
                x.verdict,
                policy(&x.egress).as_str(),
                policy(&x.ingress).as_str()
            ),
            (r.verdict, r.egress, r.ingress),
            "{ctx}\n{x}"
        );
        // The node IRs decide the same for the pair shown (direct flows).
        if x.pair
            .via
            .as_deref()
            .is_none_or(|v| v.starts_with("service"))
        {
            for (side, info) in [("egress", &x.egress), ("ingress", &x.ingress)] {
                let Some(node) = &info.node else { continue };
                let ir = c.nodes().iter().find(|n| &n.node == node).expect("node IR");
                let v = ir.evaluate(x.pair.src, x.pair.dst, r.proto, x.pair.port);
                let s = if side == "egress" {
                    v.egress
                } else {
                    v.ingress
                };
                let s = s.unwrap_or_else(|| panic!("{ctx}: {node} does not judge {side}"));
                assert_eq!(
                    Some(s.rule.policy.as_str()),
                    info.policy_id(),
                    "{ctx}: {side} on {node}"
                );
                assert_eq!(
                    Some(&s.rule.id),
                    info.rule.as_ref(),
                    "{ctx}: {side} rule on {node}"
                );
            }
        }
    }
}

#[test]
fn the_example_decides_as_written() {
    let c = compiled(&example::intent(), &example::inventory());
    let row = |what, from, to, proto, port: u16, verdict, egress, ingress| Row {
        what,
        from,
        to,
        proto,
        port: Some(port),
        verdict,
        egress,
        ingress,
    };
    run(
        &c,
        &[
            row(
                "a policy allows both sides",
                "shop/frontend",
                "shop/cart",
                Tcp,
                7070,
                ALLOW,
                "shop/frontend-to-cart",
                "shop/frontend-to-cart",
            ),
            row(
                "catch-all of the most specific scope",
                "shop/frontend",
                "shop/cart",
                Tcp,
                7071,
                DENY,
                "shop/catch-all-egress",
                "shop/catch-all-ingress",
            ),
            row(
                "absolute parent beats child catch-all",
                "shop/frontend",
                "kube-system/coredns",
                Udp,
                53,
                ALLOW,
                "prod-eu1/dns",
                "prod-eu1/dns",
            ),
            row(
                "absolute deny from the internet",
                "external:internet",
                "worker-1",
                Tcp,
                22,
                DENY,
                "-",
                "prod-eu1/no-ssh-from-internet",
            ),
            row(
                "parent catch-all for a scope without one",
                "worker-1",
                "worker-2",
                Tcp,
                10250,
                ALLOW,
                "prod-eu1/catch-all-egress",
                "prod-eu1/catch-all-ingress",
            ),
            row(
                "`internet` is outside the cluster: node-to-node SSH is not from it",
                "worker-1",
                "worker-2",
                Tcp,
                22,
                ALLOW,
                "prod-eu1/catch-all-egress",
                "prod-eu1/catch-all-ingress",
            ),
            row(
                "child default of platform",
                "worker-1",
                "kube-system/coredns",
                Tcp,
                8181,
                ALLOW,
                "prod-eu1/catch-all-egress",
                "platform/nodes-to-platform",
            ),
            row(
                "both sides needed: egress missing",
                "shop/frontend",
                "payments/payment",
                Tcp,
                50051,
                DENY,
                "shop/catch-all-egress",
                "payments/checkout-in",
            ),
            row(
                "scope restriction: the provider's scope decides its ingress",
                "shop/checkout",
                "payments/payment",
                Tcp,
                50051,
                ALLOW,
                "shop/checkout-to-payments",
                "payments/checkout-in",
            ),
            row(
                "restrict-to-scope: a look-alike outside the shop",
                "payments/rogue-1",
                "shop/cart",
                Tcp,
                7070,
                DENY,
                "payments/catch-all-egress",
                "shop/catch-all-ingress",
            ),
            row(
                "service with a named target port",
                "external:internet",
                "shop/frontend",
                Tcp,
                80,
                ALLOW,
                "-",
                "shop/web-in",
            ),
            row(
                "the target port, addressed directly",
                "external:internet",
                "shop/frontend-1",
                Tcp,
                8080,
                ALLOW,
                "-",
                "shop/web-in",
            ),
            row(
                "the service port on the pod is not the target",
                "external:internet",
                "shop/frontend-1",
                Tcp,
                80,
                DENY,
                "-",
                "shop/catch-all-ingress",
            ),
            row(
                // The pod's node admits the nodes for the forwarded hop; the
                // node's own traffic is held back by its egress guard.
                "a node's own traffic to a NodePort backend is judged by its policy",
                "worker-2",
                "shop/frontend-1",
                Tcp,
                8080,
                DENY,
                "shop/catch-all-ingress/node-guard",
                "svc/shop/frontend/80",
            ),
            row(
                "external allowed by an absolute policy",
                "payments/payment",
                "external:payments-api",
                Tcp,
                443,
                ALLOW,
                "payments/to-processor",
                "-",
            ),
            row(
                "external denied by an absolute policy",
                "payments/payment",
                "external:internet",
                Tcp,
                443,
                DENY,
                "payments/no-other-egress",
                "-",
            ),
            row(
                "IPv6",
                "fd10:1:1::10",
                "fd10:1:1::11",
                Tcp,
                7070,
                ALLOW,
                "shop/frontend-to-cart",
                "shop/frontend-to-cart",
            ),
            row(
                "IPv6 external",
                "fd10:1:1::30",
                "2001:db8:100::1",
                Tcp,
                443,
                ALLOW,
                "payments/to-processor",
                "-",
            ),
            row(
                "host-network pod owns its port",
                "monitoring/prometheus",
                "monitoring/node-exporter",
                Tcp,
                9100,
                ALLOW,
                "prod-eu1/scrape-metrics",
                "prod-eu1/scrape-metrics",
            ),
            row(
                "host-network pod: shop may not scrape",
                "shop/frontend",
                "monitoring/node-exporter",
                Tcp,
                9100,
                DENY,
                "shop/catch-all-egress",
                "prod-eu1/catch-all-ingress",
            ),
            row(
                "host-network pod sends as its node",
                "monitoring/node-exporter",
                "shop/cart",
                Tcp,
                7070,
                DENY,
                "prod-eu1/catch-all-egress",
                "shop/catch-all-ingress",
            ),
            row(
                "other ports of the node address are the node's",
                "monitoring/prometheus",
                "monitoring/node-exporter-worker-1",
                Tcp,
                10250,
                ALLOW,
                "prod-eu1/catch-all-egress",
                "prod-eu1/catch-all-ingress",
            ),
            row(
                "analyze scope allows checkout",
                "shop/checkout",
                "invoicing/invoicing",
                Tcp,
                8443,
                ALLOW,
                "shop/checkout-to-invoicing",
                "invoicing/checkout-in",
            ),
            row(
                "analyze scope ingress deny",
                "shop/frontend",
                "invoicing/invoicing-1",
                Tcp,
                8443,
                DENY,
                "shop/catch-all-egress",
                "invoicing/catch-all-ingress",
            ),
            row(
                "both scopes allow invoicing to the db",
                "invoicing/invoicing",
                "shop-data/postgres",
                Tcp,
                5432,
                ALLOW,
                "invoicing/invoices-to-db",
                "shop/db-from-invoicing",
            ),
            row(
                "quarantine beats an absolute allow",
                "shop/debug-1",
                "kube-system/coredns",
                Udp,
                53,
                DENY,
                "quarantine/deny-egress",
                "prod-eu1/dns",
            ),
            row(
                "quarantine exception in",
                "external:bastion",
                "shop/debug-1",
                Tcp,
                22,
                ALLOW,
                "-",
                "quarantine/bastion-ssh",
            ),
            row(
                "quarantine exception out",
                "shop/debug-1",
                "external:siem",
                Udp,
                514,
                ALLOW,
                "quarantine/logs-out",
                "-",
            ),
            row(
                "quarantine denies the rest in",
                "shop/frontend",
                "shop/debug-1",
                Tcp,
                22,
                DENY,
                "shop/catch-all-egress",
                "quarantine/deny-ingress",
            ),
            row(
                "quarantine by vulnerability score",
                "shop/legacy-1",
                "shop/cart",
                Tcp,
                7070,
                DENY,
                "quarantine/deny-egress",
                "shop/catch-all-ingress",
            ),
            row(
                "NodePort, Cluster policy, from the internet",
                "198.51.100.7",
                "192.168.1.11",
                Tcp,
                30080,
                ALLOW,
                "-",
                "shop/web-in",
            ),
            row(
                "LoadBalancer address",
                "8.8.8.8",
                "192.0.2.80",
                Tcp,
                80,
                ALLOW,
                "-",
                "shop/web-in",
            ),
            row(
                "NodePort, Local policy, node with the pod",
                "192.0.2.10",
                "192.168.1.21",
                Tcp,
                30443,
                ALLOW,
                "-",
                "invoicing/corp-in",
            ),
            row(
                "NodePort, Local policy, someone else",
                "8.8.8.8",
                "192.168.1.21",
                Tcp,
                30443,
                DENY,
                "-",
                "invoicing/catch-all-ingress",
            ),
            row(
                "cluster IP of a service is translated",
                "10.1.2.12",
                "172.20.0.30",
                Tcp,
                50051,
                ALLOW,
                "shop/checkout-to-payments",
                "payments/checkout-in",
            ),
        ],
    );
}

#[test]
fn analyze_mode_counts_but_passes_and_enforce_drops() {
    let c = compiled(&example::intent(), &example::inventory());
    let x = |from: &str, to: &str, port| {
        c.explain(
            &c.peer(from).unwrap(),
            &c.peer(to).unwrap(),
            Tcp,
            Some(port),
        )
        .unwrap()
    };
    // Denied only by the analyze scope's ingress: passes.
    let e = x("worker-1", "invoicing/invoicing-1", 8443);
    assert_eq!((e.verdict, e.passes), (DENY, true), "{e}");
    assert_eq!(e.ingress.mode, Some(Mode::Analyze));
    // Denied by an enforcing side too: dropped.
    let e = x("shop/frontend", "invoicing/invoicing-1", 8443);
    assert_eq!((e.verdict, e.passes), (DENY, false), "{e}");
    // The chain's mode is in the IR.
    let win = c.nodes().iter().find(|n| n.node == "win-1").unwrap();
    let ep = win.endpoint("pod/invoicing/invoicing-1").unwrap();
    assert_eq!(win.chain(&ep.ingress).unwrap().mode, Mode::Analyze);
    assert_eq!(win.backend, "windows-firewall");
}

/// Scopes top > app > db; a second top-level scope for another cluster
/// without any catch-all.
fn ranks() -> (Intent, Inventory) {
    let intent = fixtures::intent(include_str!("fixtures/ranks.kdl"));
    let c1 = cluster(
        "c1",
        vec![node("n1", Os::Linux, &["192.168.0.1"])],
        Vec::new(),
        vec![
            pod("app", "web-1", "n1", &["10.0.0.1"]).labels(&[("tier", "web")]),
            pod("app", "db-1", "n1", &["10.0.0.2"]).labels(&[("tier", "db")]),
            pod("app", "api-1", "n1", &["10.0.0.3"]).labels(&[("tier", "api")]),
            pod("tools", "job-1", "n1", &["10.0.0.4"]),
        ],
        Vec::new(),
    );
    let c2 = cluster(
        "c2",
        vec![node("m1", Os::Linux, &["192.168.9.1"])],
        Vec::new(),
        vec![pod("app", "far-1", "m1", &["10.9.0.1"]).labels(&[("tier", "db")])],
        Vec::new(),
    );
    (intent, inventory(vec![c1, c2]))
}

#[test]
fn ranks_scopes_and_catch_alls() {
    let (intent, inv) = ranks();
    let c = compiled(&intent, &inv);
    let row = |what, from, to, port: u16, verdict, egress, ingress| Row {
        what,
        from,
        to,
        proto: Tcp,
        port: Some(port),
        verdict,
        egress,
        ingress,
    };
    run(
        &c,
        &[
            row(
                "absolute parent beats defaults of children",
                "c1/app/web-1",
                "c1/app/db-1",
                5433,
                DENY,
                "top/no-db-admin",
                "top/no-db-admin",
            ),
            row(
                "the most specific default wins",
                "c1/app/web-1",
                "c1/app/db-1",
                5432,
                ALLOW,
                "app/web-to-db",
                "db/db-in",
            ),
            row(
                "child default beats parent default",
                "c1/app/web-1",
                "c1/app/api-1",
                8080,
                ALLOW,
                "app/web-to-api",
                "app/web-to-api",
            ),
            row(
                "catch-all of the most specific scope that has one",
                "c1/app/api-1",
                "c1/app/db-1",
                1,
                DENY,
                "app/catch-all-egress",
                "db/catch-all-ingress",
            ),
            row(
                "parent's catch-all where the child has none",
                "c1/app/db-1",
                "c1/app/api-1",
                1,
                DENY,
                "app/catch-all-egress",
                "top/catch-all-ingress",
            ),
            row(
                "implicit allow without a catch-all",
                "c1/tools/job-1",
                "c1/app/web-1",
                1,
                ALLOW,
                "top/implicit-catch-all-egress",
                "top/catch-all-ingress",
            ),
            row(
                "implicit allow in a top-level scope with none",
                "c2/app/far-1",
                "m1",
                1,
                ALLOW,
                "other/implicit-catch-all-egress",
                "other/implicit-catch-all-ingress",
            ),
            row(
                "a child policy does not open a workload outside it",
                "c1/app/web-1",
                "c2/app/far-1",
                9000,
                ALLOW,
                "app/web-to-other",
                "other/implicit-catch-all-ingress",
            ),
            row(
                "outside the child, the child's egress policy does not apply",
                "c1/tools/job-1",
                "c2/app/far-1",
                9000,
                ALLOW,
                "top/implicit-catch-all-egress",
                "other/implicit-catch-all-ingress",
            ),
        ],
    );
}

#[test]
fn externally_reachable_services() {
    // A LoadBalancer with externalTrafficPolicy Local: only nodes with a
    // local backend serve it; the pod sees the client address.
    let intent = fixtures::intent(include_str!("fixtures/load-balancer-local.kdl"));
    let inv = cluster_c1(
        2,
        vec![
            pod("web", "site-1", "n1", &["10.0.0.1"])
                .labels(&[("app", "site")])
                .port("https", 8443, Tcp),
        ],
        vec![
            service("web", "site", &[("app", "site")], "172.20.0.1")
                .named_port(Tcp, 443, "https")
                .node_port(30443)
                .load_balancer(&["203.0.113.7"])
                .local(),
        ],
    );
    let c = compiled(&intent, &inv);
    let n1 = &c.nodes()[0];
    let n2 = &c.nodes()[1];
    assert_eq!((n1.node.as_str(), n2.node.as_str()), ("n1", "n2"));
    assert_eq!(
        n1.exposures.len(),
        2,
        "NodePort and LoadBalancer on the node with the pod"
    );
    assert!(
        n2.exposures.is_empty(),
        "Local: no exposure without a local backend"
    );
    let lb = n1
        .exposures
        .iter()
        .find(|x| !x.addresses.is_empty())
        .unwrap();
    assert_eq!((lb.port, lb.targets[0].port), (443, 8443));
    let v = n1.evaluate_exposure(
        "198.51.100.1".parse().unwrap(),
        "203.0.113.7".parse().unwrap(),
        Tcp,
        443,
    );
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].1.unwrap().rule.policy, "top/in");
    // Local keeps the client address: no implicit allow from the nodes.
    let pod_ir = n1.evaluate(
        "192.168.0.2".parse().unwrap(),
        "10.0.0.1".parse().unwrap(),
        Tcp,
        Some(8443),
    );
    assert_eq!(pod_ir.ingress.unwrap().rule.policy, "top/catch-all-ingress");
}

#[test]
fn remote_targets_of_exposures_are_in_every_serving_node() {
    let c = compiled(&example::intent(), &example::inventory());
    let w2 = c.nodes().iter().find(|n| n.node == "worker-2").unwrap();
    // frontend-1 lives on worker-1 but worker-2 serves the NodePort and the LB.
    let remote = w2.endpoint("pod/shop/frontend-1").expect("remote target");
    assert!(!remote.local && remote.egress.is_none());
    let np = w2
        .exposures
        .iter()
        .find(|x| x.service == "shop/frontend" && x.addresses.is_empty())
        .unwrap();
    assert_eq!(np.port, 30080);
    assert!(np.targets.iter().all(|t| t.port == 8080));
    assert!(
        np.targets
            .iter()
            .any(|t| t.endpoint == "pod/shop/frontend-1")
    );
    // And remote endpoints do not judge local traffic.
    let v = w2.evaluate(
        "10.1.2.12".parse().unwrap(),
        "10.1.1.10".parse().unwrap(),
        Tcp,
        Some(8080),
    );
    assert!(v.ingress.is_none());
}

#[test]
fn absolute_deny_from_nodes_holds_against_the_node_return_rule() {
    // A default allow from an external to a NodePort service (Cluster) and
    // an absolute deny from the nodes: the nodes' own traffic stays denied
    // (at its sender), the external still reaches the pod, directly and
    // through every node's node port.
    let (intent, inv) = node_return();
    let c = compiled(&intent, &inv);
    let row = |what, from, to, verdict, egress, ingress| Row {
        what,
        from,
        to,
        proto: Tcp,
        port: Some(8080),
        verdict,
        egress,
        ingress,
    };
    run(
        &c,
        &[
            row(
                "the pod's own node",
                "n1",
                "ns-a/db-0",
                DENY,
                "apps/no-nodes/node-guard",
                "svc/ns-a/db/443",
            ),
            row(
                "another node, which the pod's node cannot tell from forwarded traffic",
                "n2",
                "ns-a/db-0",
                DENY,
                "apps/no-nodes/node-guard",
                "svc/ns-a/db/443",
            ),
            row(
                "the external",
                "external:corp",
                "ns-a/db-0",
                ALLOW,
                "-",
                "apps/web-in",
            ),
        ],
    );
    let m = c.matrix().to_string();
    assert_eq!(
        m.lines()
            .filter(|l| l.contains("=> ns-a/db[Deployment]"))
            .collect::<Vec<_>>(),
        [
            "corp[External] => ns-a/db[Deployment] : TCP 8080",
            "corp[External] => ns-a/db[Deployment] : TCP 30120 (NodePort ns-a/db)",
        ],
        "{m}"
    );
}
