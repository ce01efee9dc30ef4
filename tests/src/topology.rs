//! Clusters made of network namespaces.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::bin::{in_netns, ip};

/// What to build.
#[derive(Clone, Debug, Default)]
pub struct Spec {
    /// The nodes (Linux nodes only: each is a namespace).
    pub nodes: Vec<NodeSpec>,
    /// Hosts outside the cluster, reachable from every node through the fabric.
    pub outside: Vec<OutsideSpec>,
}

/// One node.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// Node name (as in the inventory).
    pub name: String,
    /// Its addresses on the fabric (one IPv4, optionally one IPv6).
    pub addresses: Vec<IpAddr>,
    /// Pod address ranges routed to this node, e.g. `10.244.1.0/24`.
    pub pod_cidrs: Vec<String>,
    /// Its pods (host-network pods are not listed: they live in the node namespace).
    pub pods: Vec<PodSpec>,
}

/// One pod.
#[derive(Clone, Debug)]
pub struct PodSpec {
    /// `namespace/name`.
    pub name: String,
    /// Its addresses.
    pub ips: Vec<IpAddr>,
}

/// A host outside the cluster (e.g. the internet, a bastion).
#[derive(Clone, Debug)]
pub struct OutsideSpec {
    /// A label for messages.
    pub name: String,
    /// Its addresses.
    pub ips: Vec<IpAddr>,
}

/// A built topology. Dropping it deletes every namespace it made.
#[derive(Debug)]
pub struct Topology {
    prefix: String,
    namespaces: Vec<String>,
    /// Network namespace of each node, by node name.
    pub node_ns: Vec<(String, String)>,
    /// Network namespace of each pod, by `namespace/name`.
    pub pod_ns: Vec<(String, String)>,
    /// Network namespace of each outside host, by name.
    pub outside_ns: Vec<(String, String)>,
    /// Each pod's node namespace and the node's end of its veth, by pod.
    pod_links: Vec<(String, String, String)>,
    /// Pods attached so far (numbers their namespaces and veths).
    pods_made: usize,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The fabric subnet nodes and outside hosts share; node addresses must be in it.
const FABRIC_V4: &str = "/24";
const FABRIC_V6: &str = "/64";
/// Address `host` in the fabric /24 of a node's IPv4 address.
fn fabric_v4(node: &IpAddr, host: usize) -> String {
    match node {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!("{}.{}.{}.{host}", o[0], o[1], o[2])
        }
        IpAddr::V6(_) => unreachable!("fabric_v4 takes an IPv4 address"),
    }
}

impl Topology {
    /// Build `spec`. Namespace names start with a per-process prefix so
    /// parallel tests do not collide (`rf`, or `$RINGFENCE_NETNS_PREFIX`
    /// where several people share a machine).
    pub fn build(spec: &Spec) -> Topology {
        let base = std::env::var("RINGFENCE_NETNS_PREFIX")
            .ok()
            .filter(|p| {
                !p.is_empty() && p.len() <= 8 && p.bytes().all(|b| b.is_ascii_alphanumeric())
            })
            .unwrap_or_else(|| "rf".to_string());
        let prefix = format!(
            "{base}{}x{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let mut t = Topology {
            prefix,
            namespaces: Vec::new(),
            node_ns: Vec::new(),
            pod_ns: Vec::new(),
            outside_ns: Vec::new(),
            pod_links: Vec::new(),
            pods_made: 0,
        };
        let fabric = t.netns("fab");
        in_netns(&fabric, &["ip", "link", "add", "br0", "type", "bridge"]);
        in_netns(&fabric, &["ip", "link", "set", "br0", "up"]);

        let v4_of = |n: &NodeSpec| n.addresses.iter().find(|a| a.is_ipv4()).copied();
        let v6_of = |n: &NodeSpec| n.addresses.iter().find(|a| a.is_ipv6()).copied();
        let first_v4 = spec
            .nodes
            .iter()
            .find_map(v4_of)
            .expect("a node with an IPv4 address");

        for (i, node) in spec.nodes.iter().enumerate() {
            let ns = t.netns(&format!("n{i}"));
            t.attach_to_fabric(&ns, &fabric, &format!("n{i}"));
            for a in &node.addresses {
                let plen = if a.is_ipv4() { FABRIC_V4 } else { FABRIC_V6 };
                in_netns(
                    &ns,
                    &[
                        "ip",
                        "addr",
                        "add",
                        &format!("{a}{plen}"),
                        "dev",
                        "eth0",
                        "nodad",
                    ],
                );
            }
            in_netns(
                &ns,
                &[
                    "sysctl",
                    "-qw",
                    "net.ipv4.ip_forward=1",
                    "net.ipv6.conf.all.forwarding=1",
                ],
            );
            t.node_ns.push((node.name.clone(), ns));
            for pod in &node.pods {
                t.add_pod(&node.name, pod);
            }
        }
        // Routes between nodes: each node's pod ranges via its fabric address.
        for i in 0..spec.nodes.len() {
            let ns = t.node_ns[i].1.clone();
            for (k, other) in spec.nodes.iter().enumerate() {
                if k == i {
                    continue;
                }
                for cidr in &other.pod_cidrs {
                    let via = if cidr.contains(':') {
                        v6_of(other)
                    } else {
                        v4_of(other)
                    };
                    if let Some(via) = via {
                        in_netns(&ns, &["ip", "route", "add", cidr, "via", &via.to_string()]);
                    }
                }
            }
        }
        // Outside hosts (IPv4): one namespace each on the fabric, reached through
        // a host route on every node; they route pod ranges back via the nodes.
        for (k, out) in spec.outside.iter().enumerate() {
            let ns = t.netns(&format!("o{k}"));
            t.attach_to_fabric(&ns, &fabric, &format!("o{k}"));
            // Outside hosts take the top of the fabric /24: .254, .253, …
            let fabric_addr = fabric_v4(&first_v4, 254 - k);
            in_netns(
                &ns,
                &[
                    "ip",
                    "addr",
                    "add",
                    &format!("{fabric_addr}{FABRIC_V4}"),
                    "dev",
                    "eth0",
                ],
            );
            for a in &out.ips {
                in_netns(
                    &ns,
                    &[
                        "ip",
                        "addr",
                        "add",
                        &format!("{a}/{}", if a.is_ipv4() { 32 } else { 128 }),
                        "dev",
                        "eth0",
                        "nodad",
                    ],
                );
            }
            let src = out.ips.iter().find(|a| a.is_ipv4()).map(IpAddr::to_string);
            for (i, node) in spec.nodes.iter().enumerate() {
                for a in out.ips.iter().filter(|a| a.is_ipv4()) {
                    in_netns(
                        &t.node_ns[i].1,
                        &[
                            "ip",
                            "route",
                            "add",
                            &format!("{a}/32"),
                            "via",
                            &fabric_addr,
                        ],
                    );
                }
                for cidr in node.pod_cidrs.iter().filter(|c| !c.contains(':')) {
                    if let Some(via) = v4_of(node) {
                        // Connections and UDP replies leave from the host's
                        // own address, not from its fabric address.
                        let via = via.to_string();
                        let mut route =
                            vec!["ip", "route", "add", cidr.as_str(), "via", via.as_str()];
                        if let Some(src) = &src {
                            route.extend(["src", src.as_str()]);
                        }
                        in_netns(&ns, &route);
                    }
                }
            }
            t.outside_ns.push((out.name.clone(), ns));
        }
        t
    }

    /// Start `pod` on `node` (also after the build: a pod scheduled later):
    /// its namespace, a veth to the node and a host route per address.
    pub fn add_pod(&mut self, node: &str, pod: &PodSpec) {
        let i = self
            .node_ns
            .iter()
            .position(|(n, _)| n == node)
            .unwrap_or_else(|| panic!("no node `{node}` in the topology"));
        let ns = self.node_ns[i].1.clone();
        let k = self.pods_made;
        self.pods_made += 1;
        let pns = self.netns(&format!("n{i}p{k}"));
        let host_if = format!("p{k}");
        ip(&[
            "-n", &pns, "link", "add", "eth0", "type", "veth", "peer", "name", &host_if, "netns",
            &ns,
        ]);
        in_netns(&pns, &["ip", "link", "set", "eth0", "up"]);
        in_netns(&ns, &["ip", "link", "set", &host_if, "up"]);
        // Every pod's gateway is 169.254.1.1 / fe80::1 on its own veth (Calico's trick).
        in_netns(
            &ns,
            &["ip", "addr", "add", "169.254.1.1/32", "dev", &host_if],
        );
        in_netns(
            &ns,
            &["ip", "addr", "add", "fe80::1/64", "dev", &host_if, "nodad"],
        );
        for a in &pod.ips {
            let (plen, family) = if a.is_ipv4() { (32, "-4") } else { (128, "-6") };
            let addr = format!("{a}/{plen}");
            let mut add = vec!["ip", "addr", "add", addr.as_str(), "dev", "eth0"];
            if a.is_ipv6() {
                add.push("nodad");
            }
            in_netns(&pns, &add);
            in_netns(
                &ns,
                &[
                    "ip",
                    family,
                    "route",
                    "add",
                    &format!("{a}/{plen}"),
                    "dev",
                    &host_if,
                ],
            );
        }
        in_netns(
            &pns,
            &[
                "ip",
                "route",
                "add",
                "169.254.1.1",
                "dev",
                "eth0",
                "scope",
                "link",
            ],
        );
        in_netns(
            &pns,
            &[
                "ip",
                "route",
                "add",
                "default",
                "via",
                "169.254.1.1",
                "dev",
                "eth0",
            ],
        );
        if pod.ips.iter().any(IpAddr::is_ipv6) {
            in_netns(
                &pns,
                &[
                    "ip", "-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0",
                ],
            );
        }
        self.pod_ns.push((pod.name.clone(), pns));
        self.pod_links.push((pod.name.clone(), ns, host_if));
    }

    /// Stop a pod: its veth goes (with the node's route to it) and its
    /// namespace is deleted, so its addresses can be given to another pod.
    pub fn remove_pod(&mut self, name: &str) {
        let at = self
            .pod_links
            .iter()
            .position(|(p, _, _)| p == name)
            .unwrap_or_else(|| panic!("no pod `{name}` in the topology"));
        let (_, node_ns, host_if) = self.pod_links.remove(at);
        // The namespace outlives `ip netns del` while a listener holds it:
        // delete the link itself.
        in_netns(&node_ns, &["ip", "link", "del", &host_if]);
        let ns = self.pod(name).to_string();
        ip(&["netns", "del", &ns]);
        self.namespaces.retain(|n| *n != ns);
        self.pod_ns.retain(|(p, _)| p != name);
    }

    fn netns(&mut self, suffix: &str) -> String {
        let name = format!("{}{suffix}", self.prefix);
        ip(&["netns", "add", &name]);
        self.namespaces.push(name.clone());
        // No duplicate address detection: addresses (link-local too) are usable at once.
        in_netns(
            &name,
            &[
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
            ],
        );
        in_netns(&name, &["ip", "link", "set", "lo", "up"]);
        name
    }

    fn attach_to_fabric(&self, ns: &str, fabric: &str, port: &str) {
        ip(&[
            "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", fabric,
        ]);
        in_netns(fabric, &["ip", "link", "set", port, "master", "br0", "up"]);
        in_netns(ns, &["ip", "link", "set", "eth0", "up"]);
    }

    /// The namespace of a node.
    pub fn node(&self, name: &str) -> &str {
        lookup(&self.node_ns, name, "node")
    }

    /// The namespace of a pod (`namespace/name`).
    pub fn pod(&self, name: &str) -> &str {
        lookup(&self.pod_ns, name, "pod")
    }

    /// The namespace of an outside host.
    pub fn outside(&self, name: &str) -> &str {
        lookup(&self.outside_ns, name, "outside host")
    }
}

fn lookup<'a>(list: &'a [(String, String)], name: &str, what: &str) -> &'a str {
    list.iter()
        .find(|(n, _)| n == name)
        .map(|(_, ns)| ns.as_str())
        .unwrap_or_else(|| panic!("no {what} `{name}` in the topology"))
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", ns])
                .output();
        }
    }
}
