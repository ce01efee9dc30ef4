//! A shop with a known call graph: ten services, a cache and a database, a
//! batch job using a port range, a namespace that talks only inside itself,
//! a NodePort front end, external APIs and DNS. Flows are synthesized from
//! the true edges plus noise: retries, kubelet probes (removed by an
//! exclusion), a one-off port scan (below `--min-flows`), reply records,
//! dropped flows. They are written in all three input formats.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use crate::world::{Event, Kind, Rng, World};

/// Who opens a true connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum From {
    /// The pods of a workload (namespace, name).
    Workload(&'static str, &'static str),
    /// An address outside the cluster.
    External(Ipv4Addr),
}

/// Where it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum To {
    /// A service by its clusterIP, on a service port.
    Service(&'static str, &'static str, u16),
    /// A service through its node port, on every node.
    NodePort(&'static str, &'static str, u16),
    /// A workload's pods by address.
    Pods(&'static str, &'static str),
    /// An address outside the cluster.
    External(Ipv4Addr),
}

/// A true edge: `from` talks to `to` on these ports.
#[derive(Clone, Debug)]
pub struct Edge {
    /// The consumer.
    pub from: From,
    /// The provider.
    pub to: To,
    /// `tcp` or `udp`.
    pub proto: &'static str,
    /// The ports used.
    pub ports: Vec<u16>,
}

/// The shop: its cluster and its true call graph.
pub struct Shop {
    /// The cluster.
    pub world: World,
    /// Every true edge.
    pub truth: Vec<Edge>,
}

/// The payment provider's API the checkout calls.
pub const PAYMENTS_API: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
/// The mail relay the emailer calls.
pub const MAIL_RELAY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 25);
/// Clients of the NodePort front end.
pub const CLIENTS: [Ipv4Addr; 2] = [Ipv4Addr::new(198, 18, 1, 7), Ipv4Addr::new(198, 18, 2, 9)];
/// The one-off port scanner.
pub const SCANNER: Ipv4Addr = Ipv4Addr::new(100, 64, 9, 9);

/// The shop.
pub fn shop() -> Shop {
    use Kind::*;
    let mut w = World::new("prod", 4);
    let shop_svcs: [(&str, usize, u16); 10] = [
        ("frontend", 3, 8080),
        ("cart", 2, 7070),
        ("catalog", 2, 3550),
        ("checkout", 2, 5050),
        ("currency", 1, 7000),
        ("shipping", 1, 50051),
        ("email", 1, 8080),
        ("recommendation", 1, 8080),
        ("ad", 1, 9555),
        ("payment", 1, 50051),
    ];
    for (name, replicas, port) in shop_svcs {
        w.workload(
            "shop",
            name,
            Deployment,
            replicas,
            &[("app", name), ("tier", "web")],
            &[("tcp", port)],
        );
        if name == "frontend" {
            w.service(
                "shop",
                name,
                &[("app", name)],
                "NodePort",
                &[("tcp", 80, port, Some(30080))],
            );
        } else {
            w.cluster_ip("shop", name, &[("tcp", port)]);
        }
    }
    w.app("shop-data", "redis", StatefulSet, 1, &[("tcp", 6379)]);
    w.cluster_ip("shop-data", "redis", &[("tcp", 6379)]);
    w.app("shop-data", "postgres", StatefulSet, 1, &[("tcp", 5432)]);
    w.cluster_ip("shop-data", "postgres", &[("tcp", 5432)]);
    w.app("batch", "report", Job, 1, &[]);
    w.app("batch", "lake", Deployment, 2, &[("tcp", 9000)]);
    for (name, port) in [("a", 8000), ("b", 8001), ("c", 8002)] {
        w.app("island", name, Deployment, 1, &[("tcp", port)]);
    }
    w.workload(
        "kube-system",
        "coredns",
        Deployment,
        2,
        &[("k8s-app", "kube-dns")],
        &[("udp", 53), ("tcp", 53)],
    );
    w.service(
        "kube-system",
        "kube-dns",
        &[("k8s-app", "kube-dns")],
        "ClusterIP",
        &[("udp", 53, 53, None)],
    );

    let mut truth = Vec::new();
    let mut edge = |from: From, to: To, proto: &'static str, ports: Vec<u16>| {
        truth.push(Edge {
            from,
            to,
            proto,
            ports,
        })
    };
    for c in CLIENTS {
        edge(
            From::External(c),
            To::NodePort("shop", "frontend", 80),
            "tcp",
            vec![30080],
        );
    }
    for (to, port) in [
        ("cart", 7070),
        ("catalog", 3550),
        ("checkout", 5050),
        ("currency", 7000),
        ("recommendation", 8080),
        ("ad", 9555),
    ] {
        edge(
            From::Workload("shop", "frontend"),
            To::Service("shop", to, port),
            "tcp",
            vec![port],
        );
    }
    for (to, port) in [
        ("cart", 7070),
        ("currency", 7000),
        ("shipping", 50051),
        ("email", 8080),
        ("payment", 50051),
    ] {
        edge(
            From::Workload("shop", "checkout"),
            To::Service("shop", to, port),
            "tcp",
            vec![port],
        );
    }
    edge(
        From::Workload("shop", "recommendation"),
        To::Service("shop", "catalog", 3550),
        "tcp",
        vec![3550],
    );
    edge(
        From::Workload("shop", "cart"),
        To::Service("shop-data", "redis", 6379),
        "tcp",
        vec![6379],
    );
    edge(
        From::Workload("shop", "catalog"),
        To::Service("shop-data", "postgres", 5432),
        "tcp",
        vec![5432],
    );
    edge(
        From::Workload("shop", "payment"),
        To::External(PAYMENTS_API),
        "tcp",
        vec![443],
    );
    edge(
        From::Workload("shop", "email"),
        To::External(MAIL_RELAY),
        "tcp",
        vec![587],
    );
    // Every other port of 9000-9078: generalization decides whether the gaps are allowed.
    edge(
        From::Workload("batch", "report"),
        To::Pods("batch", "lake"),
        "tcp",
        (9000..9080).step_by(2).collect(),
    );
    edge(
        From::Workload("island", "a"),
        To::Pods("island", "b"),
        "tcp",
        vec![8000],
    );
    edge(
        From::Workload("island", "b"),
        To::Pods("island", "c"),
        "tcp",
        vec![8001],
    );
    edge(
        From::Workload("island", "c"),
        To::Pods("island", "a"),
        "tcp",
        vec![8002],
    );
    for (ns, name) in [
        ("shop", "frontend"),
        ("shop", "cart"),
        ("shop", "catalog"),
        ("shop", "checkout"),
        ("shop", "currency"),
        ("shop", "shipping"),
        ("shop", "email"),
        ("shop", "recommendation"),
        ("shop", "ad"),
        ("shop", "payment"),
        ("shop-data", "redis"),
        ("shop-data", "postgres"),
        ("batch", "report"),
        ("batch", "lake"),
    ] {
        edge(
            From::Workload(ns, name),
            To::Service("kube-system", "kube-dns", 53),
            "udp",
            vec![53],
        );
    }
    Shop { world: w, truth }
}

/// The input files of a scenario.
pub struct Inputs {
    /// The directory holding them (removed on drop).
    pub dir: tempfile::TempDir,
    /// The kubectl List.
    pub inventory: PathBuf,
    /// The flow files, one per input format.
    pub flows: Vec<PathBuf>,
    /// The exclusions.
    pub exclude: PathBuf,
}

/// The kubelet probes every pod on its first declared port from its node.
pub const EXCLUDE: &str = r#"// Kubelet probes come from the nodes: not application traffic.
exclude "kubelet-probes" {
    consumer {
        kind "node"
    }
    proto "tcp"
}
"#;

impl Shop {
    /// The events of the true edges (each `per_edge` times, the first few
    /// as retries within a second) and the noise.
    pub fn events(&self, per_edge: usize) -> Vec<Event> {
        let mut out = self.truth_events(per_edge);
        out.extend(self.noise());
        out
    }

    /// The events of the true edges, `per_edge` times each, cycling through
    /// the consumer's pods and the service's backends.
    pub fn truth_events(&self, per_edge: usize) -> Vec<Event> {
        let w = &self.world;
        let mut rng = Rng::new(7);
        let t0 = 1_714_564_800; // 2024-05-01T12:00:00Z
        let mut out = Vec::new();
        let ip = |p: Ipv4Addr| IpAddr::V4(p);
        for (i, e) in self.truth.iter().enumerate() {
            let sources: Vec<Ipv4Addr> = match &e.from {
                From::Workload(ns, n) => w.ips_of(ns, n),
                From::External(a) => vec![*a],
            };
            for k in 0..per_edge {
                for &port in &e.ports {
                    let src = sources[k % sources.len()];
                    let time = t0 + (i * 60 + k * 7) as i64;
                    let mut ev = Event {
                        proto: e.proto,
                        src: ip(src),
                        src_port: rng.ephemeral(),
                        dst: ip(Ipv4Addr::UNSPECIFIED),
                        dst_port: port,
                        backend: None,
                        service: None,
                        time,
                        allowed: Some(true),
                    };
                    match &e.to {
                        To::Service(ns, n, sport) | To::NodePort(ns, n, sport) => {
                            let s = w
                                .services
                                .iter()
                                .find(|s| s.ns == *ns && s.name == *n)
                                .unwrap();
                            let (_, _, target, node_port) =
                                *s.ports.iter().find(|p| p.1 == *sport).unwrap();
                            let backends: Vec<Ipv4Addr> = w.backends(s).map(|p| p.ip).collect();
                            let backend = backends[k % backends.len()];
                            if matches!(e.to, To::NodePort(..)) {
                                ev.dst = ip(w.nodes[k % w.nodes.len()].ip);
                                ev.dst_port = node_port.unwrap();
                            } else {
                                ev.dst = ip(s.cluster_ip);
                                ev.dst_port = *sport;
                            }
                            ev.backend = Some((ip(backend), target));
                            ev.service = Some(format!("{ns}/{n}"));
                        }
                        To::Pods(ns, n) => {
                            let pods: Vec<Ipv4Addr> = w.ips_of(ns, n);
                            ev.dst = ip(pods[k % pods.len()]);
                        }
                        To::External(a) => ev.dst = ip(*a),
                    }
                    out.push(ev);
                }
            }
        }
        out
    }

    /// Kubelet probes, a port scan, dropped flows.
    pub fn noise(&self) -> Vec<Event> {
        let w = &self.world;
        let mut rng = Rng::new(11);
        let t0 = 1_714_564_800;
        let ip = |p: Ipv4Addr| IpAddr::V4(p);
        let mut out = Vec::new();
        // Kubelet probes: every pod with a port, from its node, often.
        for p in &w.pods {
            let wl = &w.workloads[p.workload];
            if let Some(&(proto, port)) = wl.ports.iter().find(|(pr, _)| *pr == "tcp") {
                for k in 0..5 {
                    out.push(Event {
                        proto,
                        src: ip(w.nodes[p.node].ip),
                        src_port: rng.ephemeral(),
                        dst: ip(p.ip),
                        dst_port: port,
                        backend: None,
                        service: None,
                        time: t0 + 10 * k,
                        allowed: Some(true),
                    });
                }
            }
        }
        // A one-off scan of a catalog pod, once per port.
        let catalog = w.first_ip("shop", "catalog");
        for port in 1..200u16 {
            out.push(Event {
                proto: "tcp",
                src: ip(SCANNER),
                src_port: 40_000,
                dst: ip(catalog),
                dst_port: port,
                backend: None,
                service: None,
                time: t0 + 3600,
                allowed: None,
            });
        }
        // The ad service tries the database: the network drops it.
        let ad = w.first_ip("shop", "ad");
        let pg = w.first_ip("shop-data", "postgres");
        for _ in 0..3 {
            out.push(Event {
                proto: "tcp",
                src: ip(ad),
                src_port: rng.ephemeral(),
                dst: ip(pg),
                dst_port: 5432,
                backend: None,
                service: None,
                time: t0 + 7200,
                allowed: Some(false),
            });
        }
        out
    }

    /// Reply records a tap that sees both directions writes: backend to
    /// client, from the service port to the ephemeral one.
    pub fn replies(events: &[Event]) -> Vec<Event> {
        events
            .iter()
            .filter(|e| e.proto == "tcp" && e.allowed == Some(true) && e.src_port >= 32_768)
            .step_by(3)
            .map(|e| {
                let (b, bp) = e.backend.unwrap_or((e.dst, e.dst_port));
                Event {
                    proto: e.proto,
                    src: b,
                    src_port: bp,
                    dst: e.src,
                    dst_port: e.src_port,
                    backend: None,
                    service: None,
                    time: e.time,
                    allowed: Some(true),
                }
            })
            .collect()
    }

    /// Write the inventory, the exclusions and the flows: the events split
    /// across a JSON Lines file (with replies), a Hubble export and a
    /// conntrack listing (without the dropped flows, which it cannot show).
    pub fn write(&self, per_edge: usize) -> Inputs {
        let dir = tempfile::tempdir().unwrap();
        let inventory = dir.path().join("prod.json");
        std::fs::write(&inventory, self.world.kubectl_json()).unwrap();
        let exclude = dir.path().join("exclude.kdl");
        std::fs::write(&exclude, EXCLUDE).unwrap();
        let events = self.events(per_edge);
        let (mut jsonl, mut hubble, mut conntrack) = (String::new(), String::new(), String::new());
        for (i, e) in events.iter().enumerate() {
            match i % 3 {
                0 => e.jsonl(&mut jsonl),
                1 => e.hubble(&mut hubble),
                _ if e.allowed == Some(false) => e.jsonl(&mut jsonl),
                _ => e.conntrack(&mut conntrack),
            }
        }
        for r in Shop::replies(&events) {
            r.jsonl(&mut jsonl);
        }
        let write = |name: &str, text: &str| -> PathBuf {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let flows = vec![
            write("flows.jsonl", &jsonl),
            write("hubble.json", &hubble),
            write("conntrack.txt", &conntrack),
        ];
        Inputs {
            dir,
            inventory,
            flows,
            exclude,
        }
    }
}
