//! A smaller cut of `policies-example/` (`fixtures/example.kdl`, read by
//! the real front end), with an inventory of one cluster (`prod-eu1`): two
//! Linux workers, one Windows node, the shop, payments, invoicing, DNS,
//! Prometheus and a node-exporter DaemonSet.

use ringfence_intent::model::{Intent, Os, Proto};
use ringfence_inventory::model::Inventory;
use ringfence_testkit::builder::{PodExt, ServiceExt, cluster, node, pod, service};
use ringfence_testkit::fixtures;

/// The intent, as `fixtures/example.kdl` writes it.
pub(crate) fn intent() -> Intent {
    fixtures::intent(include_str!("fixtures/example.kdl"))
}

/// Node addresses: worker-1 192.168.1.11, worker-2 192.168.1.12, win-1 192.168.1.21.
pub(crate) fn inventory() -> Inventory {
    let nodes = vec![
        node("worker-1", Os::Linux, &["192.168.1.11", "fd00:1::11"]),
        node("worker-2", Os::Linux, &["192.168.1.12", "fd00:1::12"]),
        node("win-1", Os::Windows, &["192.168.1.21"]),
    ];
    let d = |ns: &str, owner: &str, name: &str, node: &str, ip: &[&str]| {
        pod(ns, name, node, ip).owner("Deployment", owner)
    };
    let mut pods = vec![
        d(
            "kube-system",
            "coredns",
            "coredns-1",
            "worker-1",
            &["10.1.1.2", "fd10:1:1::2"],
        )
        .labels(&[("k8s-app", "kube-dns")])
        .port("dns", 53, Proto::Udp)
        .port("dns-tcp", 53, Proto::Tcp),
        d(
            "monitoring",
            "prometheus",
            "prometheus-1",
            "worker-2",
            &["10.1.2.2"],
        )
        .labels(&[("app.kubernetes.io/name", "prometheus")])
        .port("web", 9090, Proto::Tcp),
        d(
            "shop",
            "frontend",
            "frontend-1",
            "worker-1",
            &["10.1.1.10", "fd10:1:1::10"],
        )
        .labels(&[("app", "frontend")])
        .port("http", 8080, Proto::Tcp),
        d(
            "shop",
            "frontend",
            "frontend-2",
            "worker-2",
            &["10.1.2.10", "fd10:1:2::10"],
        )
        .labels(&[("app", "frontend")])
        .port("http", 8080, Proto::Tcp),
        d(
            "shop",
            "cart",
            "cart-1",
            "worker-1",
            &["10.1.1.11", "fd10:1:1::11"],
        )
        .labels(&[("app", "cart")])
        .port("grpc", 7070, Proto::Tcp),
        d("shop", "catalog", "catalog-1", "worker-2", &["10.1.2.11"])
            .labels(&[("app", "catalog")])
            .port("grpc", 3550, Proto::Tcp),
        d(
            "shop",
            "checkout",
            "checkout-1",
            "worker-2",
            &["10.1.2.12", "fd10:1:2::12"],
        )
        .labels(&[("app", "checkout")])
        .port("grpc", 5050, Proto::Tcp),
        pod("shop-data", "postgres-0", "worker-1", &["10.1.1.20"])
            .owner("StatefulSet", "postgres")
            .labels(&[("app", "postgres")])
            .port("pg", 5432, Proto::Tcp),
        pod("shop-data", "redis-0", "worker-2", &["10.1.2.20"])
            .owner("StatefulSet", "redis")
            .labels(&[("app", "redis")])
            .port("redis", 6379, Proto::Tcp),
        d(
            "payments",
            "payment",
            "payment-1",
            "worker-1",
            &["10.1.1.30", "fd10:1:1::30"],
        )
        .labels(&[("app", "payment")])
        .port("grpc", 50051, Proto::Tcp),
        d(
            "invoicing",
            "invoicing",
            "invoicing-1",
            "win-1",
            &["10.1.3.10"],
        )
        .labels(&[("app", "invoicing")])
        .port("https", 8443, Proto::Tcp),
    ];
    // Quarantined by label, and by score; a frontend look-alike outside the shop.
    pods.push(pod("shop", "debug-1", "worker-1", &["10.1.1.40"]).labels(&[
        ("app", "debug"),
        ("security.ringfence.io/quarantine", "true"),
    ]));
    pods.push(pod("shop", "legacy-1", "worker-2", &["10.1.2.40"]).cvss(9.8));
    pods.push(
        pod("payments", "rogue-1", "worker-2", &["10.1.2.41"]).labels(&[("app", "frontend")]),
    );
    for (n, addrs) in [
        ("worker-1", &["192.168.1.11", "fd00:1::11"][..]),
        ("worker-2", &["192.168.1.12", "fd00:1::12"][..]),
    ] {
        pods.push(
            pod("monitoring", &format!("node-exporter-{n}"), n, &[])
                .owner("DaemonSet", "node-exporter")
                .labels(&[("app", "node-exporter")])
                .host_network(addrs)
                .port("metrics", 9100, Proto::Tcp),
        );
    }
    let services = vec![
        service("shop", "frontend", &[("app", "frontend")], "172.20.0.10")
            .named_port(Proto::Tcp, 80, "http")
            .node_port(30080)
            .load_balancer(&["192.0.2.80"]),
        service("shop", "cart", &[("app", "cart")], "172.20.0.11").port(Proto::Tcp, 7070, 7070),
        service("payments", "payment", &[("app", "payment")], "172.20.0.30").named_port(
            Proto::Tcp,
            50051,
            "grpc",
        ),
        service(
            "invoicing",
            "invoicing",
            &[("app", "invoicing")],
            "172.20.0.40",
        )
        .port(Proto::Tcp, 8443, 8443)
        .node_port(30443)
        .local(),
    ];
    ringfence_testkit::builder::inventory(vec![cluster(
        "prod-eu1",
        nodes,
        Vec::new(),
        pods,
        services,
    )])
}
