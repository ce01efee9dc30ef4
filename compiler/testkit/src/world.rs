//! Synthetic clusters and flows with a known truth, for discovery's tests
//! and benchmark: a world of nodes, namespaces, workloads and services
//! written as a kubectl List, and flows written in each input format.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};

pub use crate::rng::Rng;

/// How pods of a workload are owned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A Deployment (through a ReplicaSet).
    Deployment,
    /// A StatefulSet.
    StatefulSet,
    /// A DaemonSet: one pod per node.
    DaemonSet,
    /// A Job.
    Job,
    /// A pod without owner.
    Pod,
}

/// Pods of one owner, with the same labels.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Namespace.
    pub ns: String,
    /// Name of the owner.
    pub name: String,
    /// How its pods are owned.
    pub kind: Kind,
    /// Labels of its pods.
    pub labels: Vec<(String, String)>,
    /// How many pods.
    pub replicas: usize,
    /// (protocol, port) the containers declare.
    pub ports: Vec<(&'static str, u16)>,
    /// Whether its pods use their node's network.
    pub host_network: bool,
}

/// A service.
#[derive(Clone, Debug)]
pub struct Service {
    /// Namespace.
    pub ns: String,
    /// Name.
    pub name: String,
    /// Selects the workload's pods by these labels.
    pub selector: Vec<(String, String)>,
    /// (protocol, port, target port, node port).
    pub ports: Vec<(&'static str, u16, u16, Option<u16>)>,
    /// `ClusterIP`, `NodePort` or `LoadBalancer`.
    pub kind: &'static str,
    /// Its cluster IP.
    pub cluster_ip: Ipv4Addr,
    /// Its load balancer's address, if it is a LoadBalancer.
    pub lb_ip: Option<Ipv4Addr>,
}

/// A node.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// Name.
    pub name: String,
    /// Its internal address.
    pub ip: Ipv4Addr,
    /// Its position in the cluster (which pod CIDR it has).
    pub index: usize,
}

/// A pod as placed: its workload, name, node and address.
#[derive(Clone, Debug)]
pub struct PodSpec {
    /// Index of its workload.
    pub workload: usize,
    /// Name.
    pub name: String,
    /// Index of its node.
    pub node: usize,
    /// Its address.
    pub ip: Ipv4Addr,
}

/// A cluster.
#[derive(Clone, Debug, Default)]
pub struct World {
    /// The cluster's name.
    pub cluster: String,
    /// Its nodes.
    pub nodes: Vec<NodeSpec>,
    /// Its namespaces, in the order first used.
    pub namespaces: Vec<String>,
    /// Its workloads.
    pub workloads: Vec<Workload>,
    /// Its services.
    pub services: Vec<Service>,
    /// Its pods.
    pub pods: Vec<PodSpec>,
    /// The cluster's number: which address ranges it uses.
    pub net: u8,
}

const HASH_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn hashy(seed: u64, len: usize) -> String {
    let mut r = Rng::new(seed);
    (0..len)
        .map(|_| HASH_CHARS[r.below(HASH_CHARS.len() as u64) as usize] as char)
        .collect()
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Owned `(key, value)` labels.
pub fn labels(kv: &[(&str, &str)]) -> Vec<(String, String)> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl World {
    /// A cluster of `nodes` nodes with the address ranges of cluster number 0.
    pub fn new(cluster: &str, nodes: usize) -> World {
        World::numbered(cluster, nodes, 0)
    }

    /// A cluster whose address ranges do not overlap those of cluster
    /// numbers other than `n` (pods 10.(128+16n).x.x, nodes 172.(16+n).x.x,
    /// services 10.(96+n).x.x, load balancers 203.0.(113+n).x).
    pub fn numbered(cluster: &str, nodes: usize, n: u8) -> World {
        World {
            cluster: cluster.into(),
            nodes: (0..nodes)
                .map(|i| NodeSpec {
                    name: format!("worker-{i}"),
                    ip: Ipv4Addr::new(172, 16 + n, (i / 250) as u8, (i % 250 + 1) as u8),
                    index: i,
                })
                .collect(),
            net: n,
            ..World::default()
        }
    }

    /// The pod CIDR of node `i`: 10.(128 + 16 net + i/256).(i%256).0/24.
    fn node_net(&self, i: usize) -> (u8, u8) {
        (
            (128 + 16 * usize::from(self.net) + i / 256) as u8,
            (i % 256) as u8,
        )
    }

    /// Add a workload; its pods are spread over the nodes.
    pub fn workload(
        &mut self,
        ns: &str,
        name: &str,
        kind: Kind,
        replicas: usize,
        l: &[(&str, &str)],
        ports: &[(&'static str, u16)],
    ) -> usize {
        if !self.namespaces.iter().any(|n| n == ns) {
            self.namespaces.push(ns.into());
        }
        self.workloads.push(Workload {
            ns: ns.into(),
            name: name.into(),
            kind,
            labels: labels(l),
            replicas: if kind == Kind::DaemonSet {
                self.nodes.len()
            } else {
                replicas
            },
            ports: ports.to_vec(),
            host_network: false,
        });
        let w = self.workloads.len() - 1;
        let hash = hashy(fnv(name), 10);
        for r in 0..self.workloads[w].replicas {
            let node = if kind == Kind::DaemonSet {
                r
            } else {
                (fnv(name) as usize + r) % self.nodes.len()
            };
            let pname = match kind {
                Kind::Deployment => format!("{name}-{hash}-{}", hashy(fnv(name) + r as u64, 5)),
                Kind::StatefulSet => format!("{name}-{r}"),
                Kind::DaemonSet | Kind::Job => format!("{name}-{}", hashy(fnv(name) + r as u64, 5)),
                Kind::Pod => name.to_string(),
            };
            let on_node = self.pods.iter().filter(|p| p.node == node).count();
            let (a, b) = self.node_net(node);
            self.pods.push(PodSpec {
                workload: w,
                name: pname,
                node,
                ip: Ipv4Addr::new(10, a, b, (on_node + 2) as u8),
            });
        }
        w
    }

    /// Add a workload labelled `app=<name>`.
    pub fn app(
        &mut self,
        ns: &str,
        name: &str,
        kind: Kind,
        replicas: usize,
        ports: &[(&'static str, u16)],
    ) -> usize {
        self.workload(ns, name, kind, replicas, &[("app", name)], ports)
    }

    /// Make a workload host-network: its pods take their node's address.
    pub fn host_network(&mut self, w: usize) {
        self.workloads[w].host_network = true;
        for p in self.pods.iter_mut().filter(|p| p.workload == w) {
            p.ip = self.nodes[p.node].ip;
        }
    }

    /// Add a service selecting a workload's labels.
    pub fn service(
        &mut self,
        ns: &str,
        name: &str,
        selector: &[(&str, &str)],
        kind: &'static str,
        ports: &[(&'static str, u16, u16, Option<u16>)],
    ) -> usize {
        let i = self.services.len();
        self.services.push(Service {
            ns: ns.into(),
            name: name.into(),
            selector: labels(selector),
            ports: ports.to_vec(),
            kind,
            cluster_ip: Ipv4Addr::new(10, 96 + self.net, (i / 250) as u8, (i % 250 + 1) as u8),
            lb_ip: (kind == "LoadBalancer")
                .then(|| Ipv4Addr::new(203, 0, 113 + self.net, (i % 250 + 1) as u8)),
        });
        i
    }

    /// Add a ClusterIP service selecting `app=<name>`, each port on the same
    /// target port.
    pub fn cluster_ip(&mut self, ns: &str, name: &str, ports: &[(&'static str, u16)]) -> usize {
        let ports: Vec<_> = ports
            .iter()
            .map(|&(proto, p)| (proto, p, p, None))
            .collect();
        self.service(ns, name, &[("app", name)], "ClusterIP", &ports)
    }

    /// The pods of workload `w`.
    pub fn pods_of(&self, w: usize) -> impl Iterator<Item = &PodSpec> {
        self.pods.iter().filter(move |p| p.workload == w)
    }

    /// The pods a service selects.
    pub fn backends<'a>(&'a self, s: &'a Service) -> impl Iterator<Item = &'a PodSpec> {
        self.pods.iter().filter(move |p| {
            let w = &self.workloads[p.workload];
            w.ns == s.ns && s.selector.iter().all(|kv| w.labels.contains(kv))
        })
    }

    /// The addresses of the pods of workload `ns/name` (it must exist).
    pub fn ips_of(&self, ns: &str, name: &str) -> Vec<Ipv4Addr> {
        self.pods_of(self.workload_named(ns, name))
            .map(|p| p.ip)
            .collect()
    }

    /// The address of the first pod of workload `ns/name` (it must exist).
    pub fn first_ip(&self, ns: &str, name: &str) -> Ipv4Addr {
        self.ips_of(ns, name)[0]
    }

    /// The workload `ns/name` (it must exist).
    pub fn workload_named(&self, ns: &str, name: &str) -> usize {
        self.workloads
            .iter()
            .position(|w| w.ns == ns && w.name == name)
            .expect("workload exists")
    }

    /// The kubectl List (`kubectl get nodes,namespaces,pods,services -A -o json`).
    pub fn kubectl_json(&self) -> String {
        let mut items: Vec<Value> = Vec::new();
        for n in &self.nodes {
            let (a, b) = self.node_net(n.index);
            items.push(json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": n.name, "labels": {"kubernetes.io/os": "linux", "kubernetes.io/hostname": n.name, "node-role.kubernetes.io/worker": ""}},
                "spec": {"podCIDR": format!("10.{a}.{b}.0/24"), "podCIDRs": [format!("10.{a}.{b}.0/24")]},
                "status": {"addresses": [{"type": "InternalIP", "address": n.ip.to_string()}, {"type": "Hostname", "address": n.name}],
                           "nodeInfo": {"operatingSystem": "linux"}}
            }));
        }
        for ns in &self.namespaces {
            items.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}}));
        }
        for p in &self.pods {
            let w = &self.workloads[p.workload];
            let mut labels: serde_json::Map<String, Value> = w
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            let hash = hashy(fnv(&w.name), 10);
            let owner = match w.kind {
                Kind::Deployment => {
                    labels.insert("pod-template-hash".into(), json!(hash));
                    Some(("ReplicaSet", format!("{}-{hash}", w.name)))
                }
                Kind::StatefulSet => {
                    labels.insert("statefulset.kubernetes.io/pod-name".into(), json!(p.name));
                    Some(("StatefulSet", w.name.clone()))
                }
                Kind::DaemonSet => Some(("DaemonSet", w.name.clone())),
                Kind::Job => {
                    labels.insert("job-name".into(), json!(w.name));
                    Some(("Job", w.name.clone()))
                }
                Kind::Pod => None,
            };
            let owners: Vec<Value> = owner
                .into_iter()
                .map(|(k, n)| json!({"apiVersion": "apps/v1", "kind": k, "name": n, "controller": true, "uid": format!("{:x}", fnv(&n))}))
                .collect();
            let ports: Vec<Value> = w.ports.iter().map(|(proto, port)| json!({"containerPort": port, "protocol": proto.to_uppercase()})).collect();
            items.push(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": p.name, "namespace": w.ns, "labels": labels, "ownerReferences": owners},
                "spec": {"nodeName": self.nodes[p.node].name, "hostNetwork": w.host_network,
                         "containers": [{"name": "main", "image": format!("registry.example/{}/{}:1", w.ns, w.name), "ports": ports}]},
                "status": {"phase": "Running", "podIP": p.ip.to_string(), "podIPs": [{"ip": p.ip.to_string()}]}
            }));
        }
        for s in &self.services {
            let selector: serde_json::Map<String, Value> = s
                .selector
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            let ports: Vec<Value> = s
                .ports
                .iter()
                .map(|(proto, port, target, node_port)| {
                    let mut p = json!({"protocol": proto.to_uppercase(), "port": port, "targetPort": target});
                    if let Some(np) = node_port {
                        p["nodePort"] = json!(np);
                    }
                    p
                })
                .collect();
            let status = match s.lb_ip {
                Some(ip) => json!({"loadBalancer": {"ingress": [{"ip": ip.to_string()}]}}),
                None => json!({"loadBalancer": {}}),
            };
            items.push(json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": s.name, "namespace": s.ns, "labels": {"app.kubernetes.io/part-of": s.ns}},
                "spec": {"type": s.kind, "selector": selector, "clusterIP": s.cluster_ip.to_string(),
                         "clusterIPs": [s.cluster_ip.to_string()], "ports": ports},
                "status": status
            }));
        }
        serde_json::to_string_pretty(&json!({
            "apiVersion": "v1", "kind": "List",
            "metadata": {"annotations": {"ringfence.io/cluster": self.cluster}, "resourceVersion": ""},
            "items": items
        }))
        .expect("serialisable")
    }
}

/// One connection as an observer would record it.
#[derive(Clone, Debug)]
pub struct Event {
    /// `tcp`, `udp` or `icmp`.
    pub proto: &'static str,
    /// The consumer.
    pub src: IpAddr,
    /// Its port.
    pub src_port: u16,
    /// What the consumer addressed.
    pub dst: IpAddr,
    /// The port it addressed.
    pub dst_port: u16,
    /// Where a NAT sent it (service backend), if anywhere.
    pub backend: Option<(IpAddr, u16)>,
    /// `namespace/name` of the service, when addressed through one.
    pub service: Option<String>,
    /// Seconds since the epoch.
    pub time: i64,
    /// `Some(false)`: the network dropped it.
    pub allowed: Option<bool>,
}

/// `secs` since the epoch (1970 to 9999) as RFC 3339 UTC.
fn rfc3339(secs: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).expect("a time after 1970"));
    ringfence_bundle::format_time(t).expect("a time before 10000")
}

impl Event {
    /// A ringfence JSON Lines record (post-DNAT destination, original kept).
    pub fn jsonl(&self, out: &mut String) {
        let (dst, dport) = self.backend.unwrap_or((self.dst, self.dst_port));
        let t = rfc3339(self.time);
        let _ = write!(
            out,
            r#"{{"src_ip":"{}","dst_ip":"{dst}","proto":"{}""#,
            self.src, self.proto
        );
        if self.proto != "icmp" {
            let _ = write!(out, r#","dst_port":{dport},"src_port":{}"#, self.src_port);
        }
        if self.backend.is_some() {
            let _ = write!(
                out,
                r#","orig_dst_ip":"{}","orig_dst_port":{}"#,
                self.dst, self.dst_port
            );
        }
        let _ = write!(
            out,
            r#","packets":10,"bytes":1500,"first_seen":"{t}","last_seen":"{t}""#
        );
        match self.allowed {
            Some(true) => out.push_str(r#","verdict":"allowed""#),
            Some(false) => out.push_str(r#","verdict":"dropped""#),
            None => {}
        }
        out.push_str("}\n");
    }

    /// A Hubble event: the destination after translation, the service named.
    pub fn hubble(&self, out: &mut String) {
        let (dst, dport) = self.backend.unwrap_or((self.dst, self.dst_port));
        let t = rfc3339(self.time);
        let l4 = match self.proto {
            "tcp" => format!(
                r#"{{"TCP":{{"source_port":{},"destination_port":{dport},"flags":{{"SYN":true}}}}}}"#,
                self.src_port
            ),
            "udp" => format!(
                r#"{{"UDP":{{"source_port":{},"destination_port":{dport}}}}}"#,
                self.src_port
            ),
            _ => r#"{"ICMPv4":{"type":8}}"#.to_string(),
        };
        let verdict = match self.allowed {
            Some(false) => "DROPPED",
            _ => "FORWARDED",
        };
        let svc = match self.service.as_deref().and_then(|s| s.split_once('/')) {
            Some((ns, name)) => {
                format!(r#","destination_service":{{"name":"{name}","namespace":"{ns}"}}"#)
            }
            None => String::new(),
        };
        let _ = writeln!(
            out,
            r#"{{"flow":{{"time":"{t}","verdict":"{verdict}","IP":{{"source":"{}","destination":"{dst}","ipVersion":"IPv4"}},"l4":{l4},"Type":"L3_L4","node_name":"worker-0","is_reply":false{svc},"traffic_direction":"EGRESS"}},"node_name":"worker-0","time":"{t}"}}"#,
            self.src
        );
    }

    /// A conntrack entry: the original tuple as addressed, the reply from the backend.
    pub fn conntrack(&self, out: &mut String) {
        let (back, bport) = self.backend.unwrap_or((self.dst, self.dst_port));
        let unreplied = if self.allowed == Some(false) {
            " [UNREPLIED]"
        } else {
            ""
        };
        let _ = match self.proto {
            "icmp" => writeln!(
                out,
                "ipv4     2 icmp     1 29 src={} dst={} type=8 code=0 id=7{unreplied} src={back} dst={} type=0 code=0 id=7 mark=0 use=1",
                self.src, self.dst, self.src
            ),
            p => writeln!(
                out,
                "ipv4     2 {p:<8} {} {}src={} dst={} sport={} dport={} packets=5 bytes=700{unreplied} src={back} dst={} sport={bport} dport={} packets=5 bytes=800 [ASSURED] mark=0 use=1",
                if p == "tcp" { 6 } else { 17 },
                if p == "tcp" {
                    "431999 ESTABLISHED "
                } else {
                    "29 "
                },
                self.src,
                self.dst,
                self.src_port,
                self.dst_port,
                self.src,
                self.src_port
            ),
        };
    }
}
