//! The intent of `policies-example/` built as a model, with an inventory of
//! one cluster (`prod-eu1`): two Linux workers, one Windows node, the shop,
//! payments, invoicing, DNS, Prometheus and a node-exporter DaemonSet.

use ringfence_intent::model::{
    Action, Direction, Intent, Mode, Os, PolicyRank, Proto, WorkloadKind,
};
use ringfence_inventory::model::Inventory;
use ringfence_testkit::builder::{
    IntentBuilder, PodExt, ServiceExt, cluster, node, pod, q, service, t,
};

use PolicyRank::{Absolute, Default};

pub(crate) fn intent() -> Intent {
    let mut b = IntentBuilder::new();
    let internet = b.external("internet", &["0.0.0.0/0", "::/0"]);
    let payments_api = b.external_labeled(
        "payments-api",
        &["203.0.113.0/24", "2001:db8:100::/48"],
        &[("zone", "pci")],
    );
    let bastion = b.external_labeled(
        "bastion",
        &["192.0.2.10/32", "192.0.2.11/32"],
        &[("zone", "corp")],
    );
    let siem = b.external_labeled("siem", &["198.51.100.50/32"], &[("zone", "corp")]);

    let prod = b.scope("prod-eu1", None, q::cluster("prod-eu1"));
    b.enforcement(prod, Mode::Enforce);
    b.backend(prod, Os::Linux, "nftables");
    b.backend(prod, Os::Windows, "windows-firewall");
    b.catch_all(prod, Direction::Ingress, Action::Allow);
    b.catch_all(prod, Direction::Egress, Action::Allow);
    let platform = b.scope(
        "platform",
        Some(prod),
        q::namespaces(&["kube-system", "monitoring"]),
    );
    let shop = b.scope("shop", Some(prod), q::namespaces(&["shop", "shop-data"]));
    b.catch_all(shop, Direction::Ingress, Action::Deny);
    b.catch_all(shop, Direction::Egress, Action::Deny);
    let payments = b.scope("payments", Some(prod), q::namespace("payments"));
    b.catch_all(payments, Direction::Ingress, Action::Deny);
    b.catch_all(payments, Direction::Egress, Action::Deny);
    let invoicing = b.scope("invoicing", Some(prod), q::namespace("invoicing"));
    b.enforcement(invoicing, Mode::Analyze);
    b.catch_all(invoicing, Direction::Ingress, Action::Deny);
    b.catch_all(invoicing, Direction::Egress, Action::Deny);

    let dns = b.filter(
        "cluster-dns",
        Some(prod),
        false,
        q::labelled_in("kube-system", "k8s-app", "kube-dns"),
    );
    let prometheus = b.filter(
        "prometheus",
        Some(prod),
        false,
        q::labelled_in("monitoring", "app.kubernetes.io/name", "prometheus"),
    );
    let nodes = b.filter("nodes", Some(prod), false, q::kind(&[WorkloadKind::Node]));
    let f = |b: &mut IntentBuilder, name: &str, app: &str| {
        b.filter(name, Some(shop), true, q::label("app", app))
    };
    let frontend = f(&mut b, "frontend", "frontend");
    let cart = f(&mut b, "cart", "cart");
    let catalog = f(&mut b, "catalog", "catalog");
    let checkout = f(&mut b, "checkout", "checkout");
    let shop_db = b.filter(
        "shop-db",
        Some(shop),
        true,
        q::labelled_in("shop-data", "app", "postgres"),
    );
    let shop_cache = b.filter(
        "shop-cache",
        Some(shop),
        true,
        q::labelled_in("shop-data", "app", "redis"),
    );
    let payment = b.filter("payment", Some(payments), true, q::label("app", "payment"));
    let invoicing_app = b.filter(
        "invoicing-app",
        Some(invoicing),
        true,
        q::all(vec![q::label("app", "invoicing"), q::os(Os::Windows)]),
    );
    let compromised = b.filter(
        "marked-compromised",
        None,
        false,
        q::label("security.ringfence.io/quarantine", "true"),
    );
    let critical = b.filter(
        "critical-cvss",
        None,
        false,
        q::all(vec![q::kind(&[WorkloadKind::Pod]), q::cvss(9.0)]),
    );

    let tcp = Proto::Tcp;
    b.policy(
        prod,
        Absolute,
        Action::Allow,
        "dns",
        t::scope(prod),
        t::filter(dns),
        Proto::Udp,
        "53",
    );
    b.policy(
        prod,
        Absolute,
        Action::Allow,
        "dns-tcp",
        t::scope(prod),
        t::filter(dns),
        tcp,
        "53",
    );
    b.policy(
        prod,
        Absolute,
        Action::Deny,
        "no-ssh-from-internet",
        t::external(internet),
        t::filter(nodes),
        tcp,
        "22",
    );
    b.policy(
        prod,
        Absolute,
        Action::Allow,
        "scrape-metrics",
        t::filter(prometheus),
        t::scope(prod),
        tcp,
        "9090-9100",
    );
    b.policy(
        platform,
        Default,
        Action::Allow,
        "nodes-to-platform",
        t::filter(nodes),
        t::scope(platform),
        tcp,
        "",
    );
    b.policy(
        shop,
        Default,
        Action::Allow,
        "web-in",
        t::external(internet),
        t::service("shop", "frontend"),
        tcp,
        "80",
    );
    b.policy(
        shop,
        Default,
        Action::Allow,
        "frontend-to-cart",
        t::filter(frontend),
        t::filter(cart),
        tcp,
        "7070",
    );
    b.policy(
        shop,
        Default,
        Action::Allow,
        "frontend-to-catalog",
        t::filter(frontend),
        t::filter(catalog),
        tcp,
        "3550",
    );
    b.policy(
        shop,
        Default,
        Action::Allow,
        "frontend-to-checkout",
        t::filter(frontend),
        t::filter(checkout),
        tcp,
        "5050",
    );
    b.policy(
        shop,
        Default,
        Action::Allow,
        "checkout-to-cart",
        t::filter(checkout),
        t::filter(cart),
        tcp,
        "7070",
    );
    b.policy(
        shop,
        Default,
        Action::Allow,
        "checkout-to-payments",
        t::filter(checkout),
        t::service("payments", "payment"),
        tcp,
        "50051",
    );
    b.policy(
        shop,
        Default,
        Action::Allow,
        "checkout-to-invoicing",
        t::filter(checkout),
        t::filter(invoicing_app),
        tcp,
        "8443",
    );
    b.policy(
        shop,
        Default,
        Action::Allow,
        "cart-to-cache",
        t::filter(cart),
        t::filter(shop_cache),
        tcp,
        "6379",
    );
    b.policy(
        shop,
        Default,
        Action::Allow,
        "catalog-to-db",
        t::filter(catalog),
        t::filter(shop_db),
        tcp,
        "5432",
    );
    b.log_last();
    b.policy(
        shop,
        Default,
        Action::Allow,
        "db-from-invoicing",
        t::filter(invoicing_app),
        t::filter(shop_db),
        tcp,
        "5432",
    );
    b.policy(
        payments,
        Absolute,
        Action::Allow,
        "to-processor",
        t::filter(payment),
        t::external(payments_api),
        tcp,
        "443",
    );
    b.log_last();
    b.policy(
        payments,
        Absolute,
        Action::Deny,
        "no-other-egress",
        t::scope(payments),
        t::external(internet),
        Proto::Any,
        "",
    );
    b.log_last();
    b.policy(
        payments,
        Default,
        Action::Allow,
        "checkout-in",
        t::scope(shop),
        t::filter(payment),
        tcp,
        "50051",
    );
    b.policy(
        invoicing,
        Default,
        Action::Allow,
        "corp-in",
        t::external(bastion),
        t::service("invoicing", "invoicing"),
        tcp,
        "8443",
    );
    b.policy(
        invoicing,
        Default,
        Action::Allow,
        "checkout-in",
        t::filter(checkout),
        t::filter(invoicing_app),
        tcp,
        "8443",
    );
    b.policy(
        invoicing,
        Default,
        Action::Allow,
        "invoices-to-db",
        t::filter(invoicing_app),
        t::filter(shop_db),
        tcp,
        "5432",
    );

    b.quarantine(&[compromised, critical]);
    b.exception(
        "bastion-ssh",
        Direction::Ingress,
        t::external(bastion),
        tcp,
        "22",
    );
    b.exception(
        "logs-out",
        Direction::Egress,
        t::external(siem),
        Proto::Udp,
        "514",
    );
    b.build()
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
