//! Discovery's benchmark input (`bench/discover.sh`): an inventory of
//! `workloads` workloads in namespaces of 50, a call graph (services, direct
//! pod calls, DNS, external APIs, node-port clients), and `records` flow
//! records over it, split across ringfence JSON Lines (70%), Hubble (20%)
//! and conntrack (10%) files.

use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use crate::world::{Event, Kind, Rng, World};

/// One edge of the call graph: source pods, and how the target is reached.
struct Edge {
    proto: &'static str,
    sources: Vec<Ipv4Addr>,
    /// (addressed, port, backends, service name).
    target: Target,
}

enum Target {
    Service {
        ip: Ipv4Addr,
        port: u16,
        backends: Vec<(Ipv4Addr, u16)>,
        name: String,
    },
    Pods {
        ips: Vec<Ipv4Addr>,
        ports: Vec<u16>,
    },
    External {
        ip: Ipv4Addr,
        port: u16,
    },
}

/// Write `OUT/bench.json` (the kubectl List), `OUT/exclude.kdl` and the
/// flow files `flows.jsonl`, `hubble.json` and `conntrack.txt`; a line
/// saying what was written.
pub fn write(out: &Path, records: u64, workloads: usize) -> std::io::Result<String> {
    std::fs::create_dir_all(out)?;
    let per_ns = 50;
    let namespaces = workloads.div_ceil(per_ns);
    let nodes = (workloads * 2).div_ceil(50).max(4);
    let mut w = World::new("bench", nodes);
    let mut rng = Rng::new(42);
    let dns = w.workload(
        "kube-system",
        "coredns",
        Kind::Deployment,
        4,
        &[("k8s-app", "kube-dns")],
        &[("udp", 53)],
    );
    let dns_svc = w.service(
        "kube-system",
        "kube-dns",
        &[("k8s-app", "kube-dns")],
        "ClusterIP",
        &[("udp", 53, 53, None)],
    );
    let mut ids = Vec::with_capacity(workloads);
    for i in 0..workloads {
        let ns = format!("team-{:03}", i / per_ns);
        let name = format!("svc-{:04}", i);
        let port = 8000 + (i % 50) as u16;
        let replicas = 1 + (i % 3);
        let kind = if i % 10 == 9 {
            Kind::StatefulSet
        } else {
            Kind::Deployment
        };
        let id = w.workload(
            &ns,
            &name,
            kind,
            replicas,
            &[("app", &name), ("team", &ns)],
            &[("tcp", port)],
        );
        if i % 5 != 4 {
            let kind = if i % 97 == 0 { "NodePort" } else { "ClusterIP" };
            let node_port = (kind == "NodePort").then_some(30_000 + (i % 2000) as u16);
            w.service(
                &ns,
                &name,
                &[("app", &name)],
                kind,
                &[("tcp", 80, port, node_port)],
            );
        }
        ids.push(id);
    }
    let _ = (dns, namespaces);
    let mut edges: Vec<Edge> = Vec::new();
    let pods = |w: &World, id: usize| w.pods_of(id).map(|p| p.ip).collect::<Vec<_>>();
    let dns_backends: Vec<(Ipv4Addr, u16)> = pods(&w, dns).into_iter().map(|ip| (ip, 53)).collect();
    for (i, &id) in ids.iter().enumerate() {
        let sources = pods(&w, id);
        // DNS from everyone.
        edges.push(Edge {
            proto: "udp",
            sources: sources.clone(),
            target: Target::Service {
                ip: w.services[dns_svc].cluster_ip,
                port: 53,
                backends: dns_backends.clone(),
                name: "kube-system/kube-dns".into(),
            },
        });
        // Three to five peers, mostly in the same namespace.
        let peers = 3 + rng.below(3) as usize;
        for _ in 0..peers {
            let j = if rng.below(5) == 0 {
                rng.below(workloads as u64) as usize
            } else {
                (i / per_ns) * per_ns + rng.below(per_ns as u64) as usize
            }
            .min(workloads - 1);
            if j == i {
                continue;
            }
            let name = format!("svc-{j:04}");
            let peer = ids[j];
            let backends = pods(&w, peer);
            let port = w.workloads[peer].ports[0].1;
            match w.services.iter().find(|s| s.name == name) {
                Some(s) => edges.push(Edge {
                    proto: "tcp",
                    sources: sources.clone(),
                    target: Target::Service {
                        ip: s.cluster_ip,
                        port: 80,
                        backends: backends.iter().map(|&b| (b, port)).collect(),
                        name: format!("{}/{}", s.ns, s.name),
                    },
                }),
                None => edges.push(Edge {
                    proto: "tcp",
                    sources: sources.clone(),
                    // Workloads without a service are called on a few ports.
                    target: Target::Pods {
                        ips: backends,
                        ports: (0..1 + rng.below(12) as u16)
                            .map(|k| port + 100 + k)
                            .collect(),
                    },
                }),
            }
        }
        if i % 20 == 0 {
            edges.push(Edge {
                proto: "tcp",
                sources: sources.clone(),
                target: Target::External {
                    ip: Ipv4Addr::new(198, 51, (100 + i / 2000) as u8, (i % 250) as u8 + 1),
                    port: 443,
                },
            });
        }
    }
    std::fs::write(out.join("bench.json"), w.kubectl_json())?;
    std::fs::write(
        out.join("exclude.kdl"),
        "exclude \"kubelet-probes\" {\n    consumer {\n        kind \"node\"\n    }\n}\n",
    )?;
    let mut files = [
        BufWriter::with_capacity(1 << 20, std::fs::File::create(out.join("flows.jsonl"))?),
        BufWriter::with_capacity(1 << 20, std::fs::File::create(out.join("hubble.json"))?),
        BufWriter::with_capacity(1 << 20, std::fs::File::create(out.join("conntrack.txt"))?),
    ];
    let t0 = 1_714_564_800i64;
    let mut line = String::with_capacity(512);
    for n in 0..records {
        let e = &edges[rng.below(edges.len() as u64) as usize];
        let src = IpAddr::V4(e.sources[rng.below(e.sources.len() as u64) as usize]);
        let mut ev = Event {
            proto: e.proto,
            src,
            src_port: rng.ephemeral(),
            dst: src,
            dst_port: 0,
            backend: None,
            service: None,
            time: t0 + (n / 1000) as i64,
            allowed: Some(true),
        };
        match &e.target {
            Target::Service {
                ip,
                port,
                backends,
                name,
            } => {
                ev.dst = IpAddr::V4(*ip);
                ev.dst_port = *port;
                let (b, bp) = backends[rng.below(backends.len() as u64) as usize];
                ev.backend = Some((IpAddr::V4(b), bp));
                ev.service = Some(name.clone());
            }
            Target::Pods { ips, ports } => {
                ev.dst = IpAddr::V4(ips[rng.below(ips.len() as u64) as usize]);
                ev.dst_port = ports[rng.below(ports.len() as u64) as usize];
            }
            Target::External { ip, port } => {
                ev.dst = IpAddr::V4(*ip);
                ev.dst_port = *port;
            }
        }
        line.clear();
        let f = match rng.below(10) {
            0..=6 => {
                ev.jsonl(&mut line);
                0
            }
            7 | 8 => {
                ev.hubble(&mut line);
                1
            }
            _ => {
                ev.conntrack(&mut line);
                2
            }
        };
        files[f].write_all(line.as_bytes())?;
    }
    for f in &mut files {
        f.flush()?;
    }
    Ok(format!(
        "{}: {} workloads ({} pods, {} services, {} nodes), {} edges, {records} records",
        out.display(),
        workloads,
        w.pods.len(),
        w.services.len(),
        w.nodes.len(),
        edges.len()
    ))
}
