//! Random small intents and inventories for the property test, driven by a
//! list of choices so proptest can shrink them (fewer and smaller choices
//! give simpler scenarios).

use std::net::IpAddr;

use ringfence_intent::model::{
    Action, Direction, Intent, Mode, Os, PolicyAction, PolicyRank, Proto, Query, ScopeId, Target,
    WorkloadKind,
};
use ringfence_inventory::model::Inventory;
use ringfence_testkit::builder::{
    IntentBuilder, PodExt, ServiceExt, cluster, inventory, namespace, node, pod, q, service, t,
};

/// Reads choices; past the end, every choice is 0.
pub(crate) struct Choices<'a> {
    v: &'a [u8],
    i: usize,
}

impl<'a> Choices<'a> {
    pub(crate) fn new(v: &'a [u8]) -> Self {
        Choices { v, i: 0 }
    }

    /// A number below `n`.
    pub(crate) fn pick(&mut self, n: usize) -> usize {
        let x = self.v.get(self.i).copied().unwrap_or(0) as usize;
        self.i += 1;
        if n == 0 { 0 } else { x % n }
    }

    pub(crate) fn flip(&mut self) -> bool {
        self.pick(2) == 1
    }

    pub(crate) fn one<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.pick(items.len())].clone()
    }
}

pub(crate) struct Scenario {
    pub(crate) intent: Intent,
    pub(crate) inventory: Inventory,
    /// Addresses worth sending flows from and to.
    pub(crate) addresses: Vec<IpAddr>,
}

const APPS: [&str; 3] = ["web", "db", "api"];
const NAMESPACES: [&str; 2] = ["a", "b"];

/// Each direction of `scope`, by a coin flip, a catch-all of either action.
fn maybe_catch_alls(b: &mut IntentBuilder, c: &mut Choices<'_>, scope: ScopeId) {
    for direction in [Direction::Ingress, Direction::Egress] {
        if c.flip() {
            b.catch_all(scope, direction, c.one(&[Action::Allow, Action::Deny]));
        }
    }
}

pub(crate) fn scenario(c: &mut Choices<'_>) -> Scenario {
    let v6 = c.pick(3) == 0;
    let two_clusters = c.pick(5) == 0;
    let mut clusters = Vec::new();
    let mut addresses: Vec<IpAddr> = Vec::new();
    let mut services_made: Vec<(String, String)> = Vec::new();
    for ci in 0..(if two_clusters { 2 } else { 1 }) {
        let cname = format!("c{}", ci + 1);
        let n_nodes = 2 + c.pick(2);
        let mut nodes = Vec::new();
        for ni in 0..n_nodes {
            let os = if ni == 1 && c.flip() {
                Os::Windows
            } else {
                Os::Linux
            };
            let mut addrs = vec![format!("192.168.{ci}.{}", ni + 1)];
            if v6 {
                addrs.push(format!("fd00:{ci}::{}", ni + 1));
            }
            let a: Vec<&str> = addrs.iter().map(String::as_str).collect();
            nodes.push(node(&format!("n{}", ni + 1), os, &a));
        }
        let n_pods = 2 + c.pick(5);
        let mut pods = Vec::new();
        for pi in 0..n_pods {
            let ns = c.one(&NAMESPACES);
            let app = c.one(&APPS);
            let ni = c.pick(n_nodes);
            let node_name = format!("n{}", ni + 1);
            let mut ips = vec![format!("10.{ci}.{ni}.{}", pi + 10)];
            if v6 {
                ips.push(format!("fd10:{ci}::{ni}:{}", pi + 10));
            }
            let ip_refs: Vec<&str> = ips.iter().map(String::as_str).collect();
            let mut p = pod(ns, &format!("{app}-{pi}"), &node_name, &ip_refs)
                .labels(&[("app", app)])
                .owner(
                    if c.flip() {
                        "Deployment"
                    } else {
                        "StatefulSet"
                    },
                    app,
                );
            if c.flip() {
                p = p.labels(&[("tier", if c.flip() { "front" } else { "back" })]);
            }
            // Named ports resolve differently per pod.
            p = p.port("http", if c.flip() { 8080 } else { 8081 }, Proto::Tcp);
            if c.pick(3) == 0 {
                p = p.port("dns", 53, Proto::Udp);
            }
            if c.pick(6) == 0 {
                let node_addrs: Vec<String> =
                    nodes[ni].addresses.iter().map(|a| a.to_string()).collect();
                let na: Vec<&str> = node_addrs.iter().map(String::as_str).collect();
                p = p.host_network(&na).port("metrics", 9100, Proto::Tcp);
            }
            if c.pick(5) == 0 {
                p = p.cvss(9.5);
            }
            if c.pick(6) == 0 {
                p = p.labels(&[("q", "yes")]);
            }
            match c.pick(12) {
                0 => p.ips.clear(),                // finished
                1 => p.node = None,                // not scheduled
                2 => p.node = Some("gone".into()), // on a node the inventory lacks
                _ => {}
            }
            addresses.extend(p.ips.iter().copied());
            pods.push(p);
        }
        let mut services = Vec::new();
        for si in 0..c.pick(3) {
            let ns = c.one(&NAMESPACES);
            let app = c.one(&APPS);
            let name = format!("svc-{app}");
            if services_made.iter().any(|(n, m)| n == ns && *m == name) {
                continue;
            }
            services_made.push((ns.to_string(), name.clone()));
            let mut s = service(
                ns,
                &name,
                &[("app", app)],
                &format!("172.20.{ci}.{}", si + 1),
            );
            s = if c.flip() {
                s.named_port(Proto::Tcp, 80, "http")
            } else {
                s.port(Proto::Tcp, 80, 8080)
            };
            match c.pick(4) {
                1 => s = s.node_port(30080 + si as u16),
                2 => {
                    s = s
                        .node_port(30080 + si as u16)
                        .load_balancer(&[&format!("203.0.113.{}", 10 + si + 10 * ci)])
                }
                _ => {}
            }
            if c.pick(3) == 0 {
                s = s.port(Proto::Udp, 53, 53);
            }
            if c.pick(3) == 0 {
                s = s.local();
            }
            if c.pick(8) == 0 {
                s.selector.clear(); // no managed backends
            }
            addresses.extend(s.cluster_ips.iter().copied());
            addresses.extend(s.lb_ingress.iter().copied());
            services.push(s);
        }
        for n in &nodes {
            addresses.extend(n.addresses.iter().copied());
        }
        let namespaces = vec![
            namespace("a", &[("team", "x")]),
            namespace("b", &[("team", "y")]),
        ];
        clusters.push(cluster(&cname, nodes, namespaces, pods, services));
    }
    for a in [
        "198.51.100.7",
        "8.8.8.8",
        "10.9.9.9",
        "2001:db8::5",
        "fd99::1",
    ] {
        addresses.push(a.parse().unwrap());
    }

    let mut b = IntentBuilder::new();
    let ext1 = b.external_labeled(
        "ext1",
        if v6 {
            &["198.51.100.0/24", "2001:db8::/32"]
        } else {
            &["198.51.100.0/24"]
        },
        &[("zone", "corp")],
    );
    let all = b.external("everything", &["0.0.0.0/0", "::/0"]);
    let mut scopes = Vec::new();
    let mut tops = Vec::new();
    for ci in 0..(if two_clusters { 2 } else { 1 }) {
        let top = b.scope(
            &format!("top{ci}"),
            None,
            q::cluster(&format!("c{}", ci + 1)),
        );
        tops.push(top);
        scopes.push(top);
        maybe_catch_alls(&mut b, c, top);
        let child = b.scope(&format!("ns-a{ci}"), Some(top), q::namespace("a"));
        scopes.push(child);
        maybe_catch_alls(&mut b, c, child);
        if c.pick(3) == 0 {
            b.enforcement(child, Mode::Analyze);
        }
        if c.flip() {
            let g = b.scope(&format!("db{ci}"), Some(child), q::label("app", "db"));
            scopes.push(g);
            if c.flip() {
                b.catch_all(g, Direction::Ingress, c.one(&[Action::Allow, Action::Deny]));
            }
        }
        if c.flip() {
            let s = b.scope(&format!("ns-b{ci}"), Some(top), q::namespace("b"));
            scopes.push(s);
            if c.flip() {
                b.catch_all(s, Direction::Egress, Action::Deny);
            }
        }
    }
    let mut filters = Vec::new();
    for fi in 0..1 + c.pick(4) {
        let query: Query = match c.pick(12) {
            9 => q::name("web-*"),
            10 => q::node("n1"),
            11 if fi > 0 => q::any(vec![
                q::matches(filters[c.pick(fi)]),
                q::in_scope(c.one(&scopes)),
            ]),
            0 => q::label("app", APPS[c.pick(3)]),
            1 => q::namespace(NAMESPACES[c.pick(2)]),
            2 => q::kind(&[WorkloadKind::Node]),
            3 => q::all(vec![
                q::label("app", APPS[c.pick(3)]),
                q::labels("tier", &[]),
            ]),
            4 => q::address(&["10.0.1.0/24", "fd10::/16"]),
            5 => q::os(Os::Windows),
            6 => q::label("ns:team", "x"),
            7 => q::any(vec![
                q::kind(&[WorkloadKind::Service]),
                q::not(q::label("app", "web")),
            ]),
            _ => q::kind(&[WorkloadKind::External]),
        };
        let owner = c.flip().then(|| c.one(&scopes));
        let restrict = owner.is_some() && c.flip();
        filters.push(b.filter(&format!("f{fi}"), owner, restrict, query));
    }
    let mut targets: Vec<Target> = vec![t::any(), t::external(ext1), t::external(all)];
    targets.extend(filters.iter().map(|&f| t::filter(f)));
    targets.extend(scopes.iter().map(|&s| t::scope(s)));
    for (ns, name) in &services_made {
        targets.push(t::service(ns, name));
    }
    targets.push(t::service("a", "missing"));
    for pi in 0..1 + c.pick(7) {
        let scope = c.one(&scopes);
        let rank = c.one(&[PolicyRank::Default, PolicyRank::Absolute]);
        let action = c.one(&[
            PolicyAction::Allow,
            PolicyAction::Allow,
            PolicyAction::Deny,
            PolicyAction::Pass,
        ]);
        let consumer = c.one(&targets);
        let provider = c.one(&targets);
        let proto = c.one(&[Proto::Tcp, Proto::Tcp, Proto::Udp, Proto::Any, Proto::Icmp]);
        // Port names resolve per provider pod (`http` is 8080 or 8081, `dns` udp 53).
        let ports = if proto.has_ports() {
            c.one(&[
                "",
                "80",
                "8080",
                "53",
                "8000-8100",
                "80,8080",
                "9100",
                "http",
                "http,80",
                "dns",
                "metrics",
            ])
        } else if proto == Proto::Any {
            c.one(&["", "", "http,dns"])
        } else {
            ""
        };
        let side = c.one(&[
            None,
            None,
            Some(Direction::Ingress),
            Some(Direction::Egress),
        ]);
        b.policy(
            scope,
            rank,
            action,
            &format!("p{pi}"),
            consumer,
            provider,
            proto,
            ports,
        );
        if let Some(side) = side {
            b.side_last(side);
        }
    }
    if c.pick(3) == 0 {
        let qf = b.filter(
            "quarantined",
            None,
            false,
            if c.flip() {
                q::label("q", "yes")
            } else {
                q::cvss(9.0)
            },
        );
        b.quarantine(&[qf]);
        for xi in 0..c.pick(3) {
            let d = c.one(&[Direction::Ingress, Direction::Egress]);
            let peer = c.one(&targets);
            let proto = c.one(&[Proto::Tcp, Proto::Udp, Proto::Any]);
            let ports = if proto.has_ports() {
                c.one(&["", "80", "8080"])
            } else {
                ""
            };
            b.exception(&format!("x{xi}"), d, peer, proto, ports);
        }
    }
    let _ = tops;
    Scenario {
        intent: b.build(),
        inventory: inventory(clusters),
        addresses,
    }
}
