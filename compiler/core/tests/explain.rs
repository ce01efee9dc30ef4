//! `explain` and `matrix` as the CLI prints them: peers, errors, text and JSON.

use ringfence_core::{Compiled, ExplainError, Explanation, PeerError, Select, compile};
use ringfence_intent::model::{Action, Os, Proto, WorkloadKind};
use ringfence_testkit::builder::{
    PodExt, ServiceExt, cluster, cluster_c1, inventory, node, pod, service,
};
use ringfence_testkit::fixtures;

use crate::example;
use ringfence_testkit::text::assert_contains;

fn example() -> Compiled {
    compile(&example::intent(), &example::inventory())
        .0
        .expect("compiles")
}

/// `explain` between two peers given as the CLI takes them.
fn explain(
    c: &Compiled,
    from: &str,
    to: &str,
    proto: Proto,
    port: Option<u16>,
) -> Result<Explanation, ExplainError> {
    c.explain(&c.peer(from).unwrap(), &c.peer(to).unwrap(), proto, port)
}

#[test]
fn peers_resolve_or_say_why_not() {
    let c = example();
    for ok in [
        "shop/frontend",
        "shop/frontend[Deployment]",
        "shop/frontend-1",
        "service:shop/frontend",
        "prod-eu1/shop/cart",
        "worker-1",
        "worker-1[Node]",
        "node:win-1",
        "external:internet",
        "internet",
        "internet[External]",
        "10.1.1.10",
        "fd10:1:1::10",
    ] {
        c.peer(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    let unknown = |text: &str| match c.peer(text) {
        Err(PeerError::Unknown { hint, .. }) => hint,
        other => panic!("{text}: {other:?}"),
    };
    assert!(unknown("shop/nope").contains("no pod, service or Deployment"));
    assert!(unknown("nowhere/x").contains("no namespace `nowhere`"));
    assert!(unknown("worker-9").contains("no node or external is named `worker-9`"));
    assert!(unknown("external:nope").contains("`nope`"));
    assert!(unknown("a/b/c/d").contains("NAMESPACE/NAME"));
    // A slip of the keyboard gets the closest name; nothing close, no guess.
    assert!(unknown("shop/crat").ends_with("; did you mean `shop/cart`?"));
    assert!(unknown("worker-9").ends_with("; did you mean `worker-1`?"));
    assert!(unknown("external:internt").ends_with("; did you mean `external:internet`?"));
    assert!(!unknown("shop/zzzzzzzzzz").contains("did you mean"));
    assert_eq!(
        c.peer("nope").unwrap_err().to_string(),
        "unknown workload `nope`: no node or external is named `nope` (pods and services are \
         NAMESPACE/NAME, externals external:NAME, or give an IP)"
    );

    // The same name in two clusters.
    let inv = inventory(
        ["c1", "c2"]
            .iter()
            .enumerate()
            .map(|(i, name)| {
                cluster(
                    name,
                    vec![node("n1", Os::Linux, &[&format!("192.168.{i}.1")])],
                    Vec::new(),
                    vec![pod("a", "x", "n1", &[&format!("10.{i}.0.1")])],
                    Vec::new(),
                )
            })
            .collect(),
    );
    let c2 = compile(
        &fixtures::intent(include_str!("fixtures/two-clusters.kdl")),
        &inv,
    )
    .0
    .unwrap();
    match c2.peer("a/x") {
        Err(PeerError::Ambiguous { candidates, .. }) => {
            assert_eq!(candidates, ["c1/a/x", "c2/a/x"])
        }
        other => panic!("{other:?}"),
    }
    match c2.peer("n1") {
        Err(PeerError::Ambiguous { candidates, .. }) => {
            assert_eq!(candidates, ["c1/n1[Node]", "c2/n1[Node]"])
        }
        other => panic!("{other:?}"),
    }
    c2.peer("c2/a/x").unwrap();
    c2.peer("c2/n1[Node]").unwrap();
}

#[test]
fn explain_text_and_json() {
    let c = example();
    let x = explain(&c, "shop/frontend", "shop/cart", Proto::Tcp, Some(7070)).unwrap();
    assert_eq!(
        (x.pairs, x.denied, x.verdict, x.passes),
        (2, 0, Action::Allow, true)
    );
    let text = x.to_string();
    assert!(
        text.starts_with("allow: shop/frontend -> shop/cart tcp/7070 (all 2 pairs allowed)\n"),
        "{text}"
    );
    assert_contains(&text, "  via:     service shop/cart tcp 7070 -> 7070\n");
    assert_contains(
        &text,
        "  egress:  allow by shop/frontend-to-cart (default) at intent.kdl:",
    );
    let json = serde_json::to_value(&x).unwrap();
    assert_eq!(json["verdict"], "allow");
    assert_eq!(json["egress"]["policy"], "shop/frontend-to-cart");
    assert_eq!(json["egress"]["rank"], "default");
    assert_eq!(json["egress"]["file"], "intent.kdl");
    assert!(json["egress"]["line"].as_u64().unwrap() > 1);
    assert_eq!(json["ingress"]["endpoint"], "pod/shop/cart-1");
    assert_eq!(json["ingress"]["node"], "worker-1");

    // An external has no egress side.
    let x = explain(&c, "internet", "shop/frontend", Proto::Tcp, Some(80)).unwrap();
    let json = serde_json::to_value(&x).unwrap();
    assert_eq!(json["egress"], serde_json::json!({"managed": false}));
    assert!(x.to_string().contains("  egress:  allow (not managed)\n"));
    assert_eq!(json["pair"]["port"], 8080, "service port translated");

    assert_eq!(
        explain(&c, "internet", "shop/frontend", Proto::Tcp, None)
            .unwrap_err()
            .to_string(),
        "tcp needs a port: give --port"
    );
    // Port 0 was explained as if a connection could use it.
    assert_eq!(
        explain(&c, "internet", "shop/frontend", Proto::Tcp, Some(0))
            .unwrap_err()
            .to_string(),
        "port 0 is not a port a connection can use: give --port 1-65535"
    );
    // ICMP has none.
    let x = explain(&c, "shop/frontend", "shop/cart", Proto::Icmp, Some(7)).unwrap();
    assert_eq!((x.verdict, x.port), (Action::Deny, None));

    // A service without the port asked.
    let err = explain(
        &c,
        "internet",
        "service:shop/frontend",
        Proto::Tcp,
        Some(81),
    )
    .unwrap_err();
    assert_eq!(
        err,
        ExplainError::NoServicePort {
            service: "shop/frontend".into(),
            proto: Proto::Tcp,
            port: "81".into(),
            has: "tcp 80".into()
        }
    );
}

#[test]
fn a_group_is_allowed_only_if_every_pair_is() {
    let inv = cluster_c1(
        1,
        vec![
            pod("a", "web-1", "n1", &["10.0.0.1"])
                .labels(&[("app", "web")])
                .owner("Deployment", "web"),
            pod("a", "web-2", "n1", &["10.0.0.2"])
                .labels(&[("app", "web"), ("bad", "yes")])
                .owner("Deployment", "web"),
        ],
        vec![service("a", "web", &[("app", "web")], "172.20.0.1").port(Proto::Tcp, 80, 8080)],
    );
    let c = compile(
        &fixtures::intent(include_str!("fixtures/group-pairs.kdl")),
        &inv,
    )
    .0
    .unwrap();
    let x = explain(&c, "world", "a/web[Deployment]", Proto::Tcp, Some(8080)).unwrap();
    assert_eq!((x.verdict, x.pairs, x.denied), (Action::Deny, 2, 1));
    assert_eq!(x.pair.to, "pod/a/web-2", "the pair that is denied");
    assert_eq!(x.ingress.policy_id(), Some("quarantine/deny-ingress"));
    assert!(x.to_string().contains("(1 of 2 pairs denied)"));
    // The matrix does not list the group pair (nor the group's egress).
    let m = c.matrix().to_string();
    assert!(!m.contains("a/web[Deployment]"), "{m}");
    assert_contains(&m, "n1[Node] => world[External] : TCP 0-65535\n");
    let flows = c.verdict(
        "198.51.100.9".parse().unwrap(),
        "172.20.0.1".parse().unwrap(),
        Proto::Tcp,
        Some(80),
    );
    assert!(
        !flows.allowed(),
        "through the cluster IP, one backend refuses"
    );
}

#[test]
fn matrix_lines() {
    let inv = inventory(vec![cluster(
        "c1",
        vec![node("n1", Os::Linux, &["192.168.0.1", "fd00::1"])],
        Vec::new(),
        vec![
            pod("a", "web-1", "n1", &["10.0.0.1", "fd10::1"])
                .labels(&[("app", "web")])
                .owner("Deployment", "web")
                .port("http", 8080, Proto::Tcp),
            pod("a", "web-2", "n1", &["10.0.0.2", "fd10::2"])
                .labels(&[("app", "web")])
                .owner("Deployment", "web")
                .port("http", 8080, Proto::Tcp),
            pod("a", "api-0", "n1", &["10.0.0.3", "fd10::3"])
                .labels(&[("app", "api")])
                .owner("StatefulSet", "api"),
        ],
        vec![
            service("a", "web", &[("app", "web")], "172.20.0.1")
                .named_port(Proto::Tcp, 443, "http")
                .node_port(30443),
        ],
    )]);
    let c = compile(&fixtures::intent(include_str!("fixtures/matrix.kdl")), &inv)
        .0
        .unwrap();
    let m = c.matrix();
    assert_eq!(
        m.to_string(),
        "a/web[Deployment] => a/api[StatefulSet] : TCP 7070,9090-9100\n\
         a/web[Deployment] => a/api[StatefulSet] : UDP 53\n\
         a/web[Deployment] => a/api[StatefulSet] : ICMP\n\
         net[External] => a/web[Deployment] : TCP 8080\n\
         net[External] => a/web[Deployment] : TCP 30443 (NodePort a/web)\n"
    );
    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(
        json["connections"][0],
        serde_json::json!({"from": "a/web[Deployment]", "to": "a/api[StatefulSet]", "proto": "tcp", "ports": ["7070", "9090-9100"]})
    );
    assert_eq!(
        json["connections"][4]["via"],
        serde_json::json!({"kind": "node-port", "service": "a/web"})
    );
    // Filters keep whole lines, by group, name without kind, or namespace.
    let sel = |from: &[&str], to: &[&str], ns: &[&str]| {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
        c.matrix_of(&Select {
            from: v(from),
            to: v(to),
            namespaces: v(ns),
        })
        .to_string()
    };
    assert_eq!(sel(&[], &[], &[]), m.to_string());
    assert_eq!(
        sel(&["net"], &[], &[]),
        "net[External] => a/web[Deployment] : TCP 8080\n\
         net[External] => a/web[Deployment] : TCP 30443 (NodePort a/web)\n"
    );
    assert_eq!(
        sel(&["a"], &["a/api[StatefulSet]"], &[]),
        "a/web[Deployment] => a/api[StatefulSet] : TCP 7070,9090-9100\n\
         a/web[Deployment] => a/api[StatefulSet] : UDP 53\n\
         a/web[Deployment] => a/api[StatefulSet] : ICMP\n"
    );
    assert_eq!(sel(&[], &["a/web"], &["a"]), sel(&["net"], &[], &[]));
    assert_eq!(sel(&[], &[], &["b"]), "");
    assert_eq!(sel(&["a/we"], &[], &[]), "", "a prefix is a whole segment");
}

#[test]
fn catalog_places_workloads_in_their_most_specific_scope() {
    let c = example();
    let find = |group: &str| {
        c.catalog()
            .find(|w| w.group == group)
            .unwrap_or_else(|| panic!("{group} not in the catalog"))
    };
    let front = find("shop/frontend[Deployment]");
    assert_eq!(front.kind, WorkloadKind::Pod);
    assert_eq!(front.scope, Some("shop"));
    assert!(front.addrs.contains(&"10.1.1.10".parse().unwrap()));
    assert_eq!(find("worker-1[Node]").scope, Some("prod-eu1"));
    let internet = find("internet[External]");
    assert_eq!(
        (internet.kind, internet.scope),
        (WorkloadKind::External, None)
    );
    assert!(!internet.nets.is_empty() && internet.addrs.is_empty());
    assert_eq!(find("shop/frontend[Service]").kind, WorkloadKind::Service);
    assert_eq!(c.catalog().len(), c.catalog().count());
}
