//! Synthetic clusters for benchmarks: intent and inventory at any scale, as
//! model values and as files (KDL intent, `kubectl get … -o json` Lists).
//!
//! The shape follows a split-scope design: one top-level scope per cluster
//! (catch-all allow), one child scope per namespace (catch-all deny, some in
//! analyze mode); apps are Deployments with a ClusterIP service each (some
//! NodePort, some LoadBalancer), a DNS and a Prometheus app in system
//! namespaces and a node-exporter DaemonSet on the host network. Policies
//! are a mix of absolute platform rules, app-to-app allows within a
//! namespace (by filter or through the service), cross-namespace pairs
//! (a policy in each scope), denies, and rules towards externals. The same
//! parameters and seed always give the same output.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use ringfence_intent::model::{
    Action, Direction, FilterId, Intent, Mode, Os, PolicyRank, Proto, ScopeId, WorkloadKind,
};
use ringfence_inventory::model::{Cluster, Inventory, Pod, Service, ServiceType, TargetPort};
use serde_json::{Value, json};

use crate::builder::{
    IntentBuilder, PodExt, ServiceExt, cluster, inventory, namespace, node, pod, q, service, t,
};
use crate::rng::Rng;

/// How big to make it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// Clusters (each with `nodes` nodes and `pods` pods).
    pub clusters: usize,
    /// Nodes per cluster; every `windows_every`-th is Windows (0: none).
    pub nodes: usize,
    /// Pods per cluster, including the node-exporter on every node.
    pub pods: usize,
    /// Application namespaces per cluster.
    pub namespaces: usize,
    /// Policies in total.
    pub policies: usize,
    /// Externals besides `internet`.
    pub externals: usize,
    /// Every n-th node runs Windows (0: none).
    pub windows_every: usize,
    /// Every n-th service is a NodePort, every 2n-th a LoadBalancer (0: none).
    pub exposed_every: usize,
    /// Give pods and nodes IPv6 addresses too.
    pub ipv6: bool,
    /// Seed of the generator.
    pub seed: u64,
}

impl Params {
    /// A few nodes and pods, for tests.
    pub fn small() -> Self {
        Params {
            clusters: 1,
            nodes: 4,
            pods: 60,
            namespaces: 3,
            policies: 30,
            externals: 3,
            windows_every: 4,
            exposed_every: 4,
            ipv6: true,
            seed: 1,
        }
    }

    /// [`Params::small`] with Linux nodes only: every node's enforcement
    /// takes live membership (the nftables backend).
    pub fn small_linux() -> Self {
        Params {
            windows_every: 0,
            ..Params::small()
        }
    }

    /// The benchmark size: 1,000 nodes, 30,000 pods, 500 policies.
    pub fn benchmark() -> Self {
        Params {
            clusters: 1,
            nodes: 1000,
            pods: 30_000,
            namespaces: 50,
            policies: 500,
            externals: 20,
            windows_every: 50,
            exposed_every: 100,
            ipv6: false,
            seed: 1,
        }
    }

    /// [`Params::benchmark`] with the benches' positional arguments: nodes,
    /// pods and policies (all three, or none), then every how many services
    /// one is exposed. Arguments that are not numbers are passed over.
    pub fn from_args(args: impl Iterator<Item = String>) -> Self {
        let args: Vec<usize> = args.filter_map(|a| a.parse().ok()).collect();
        let mut p = Params::benchmark();
        if let [nodes, pods, policies, ..] = args[..] {
            p.nodes = nodes;
            p.pods = pods;
            p.policies = policies;
        }
        if let Some(&every) = args.get(3) {
            p.exposed_every = every;
        }
        p
    }
}

/// A generated intent and inventory.
pub struct Synth {
    /// The intent (its single file holds the KDL text).
    pub intent: Intent,
    /// The inventory.
    pub inventory: Inventory,
}

/// An app: a Deployment with a service, in a namespace.
struct App {
    ns: usize,
    name: String,
    port: u16,
}

/// Generate intent and inventory.
pub fn generate(p: &Params) -> Synth {
    let mut rng = Rng::new(p.seed);
    let ns_name = |n: usize| format!("ns-{n:03}");
    // Apps per namespace: about ten replicas each.
    let app_pods = p.pods.saturating_sub(p.nodes + 4);
    let apps_per_ns = (app_pods / 10 / p.namespaces.max(1)).max(1);
    let mut apps = Vec::new();
    for ns in 0..p.namespaces {
        for a in 0..apps_per_ns {
            apps.push(App {
                ns,
                name: format!("app-{a:03}"),
                port: 8000 + (a % 50) as u16,
            });
        }
    }

    let mut clusters = Vec::new();
    for c in 0..p.clusters {
        clusters.push(make_cluster(p, c, &apps, &mut rng));
    }

    let mut b = IntentBuilder::new();
    let internet = b.external("internet", &["0.0.0.0/0", "::/0"]);
    let mut externals = Vec::new();
    for e in 0..p.externals {
        let v4 = format!("198.{}.{}.0/24", 18 + e / 256 % 2, e % 256);
        let v6 = format!("2001:db8:{:x}::/48", e);
        externals.push(b.external_labeled(
            &format!("partner-{e:02}"),
            &[&v4, &v6],
            &[("zone", if e % 2 == 0 { "pci" } else { "corp" })],
        ));
    }
    let mut tops = Vec::new();
    let mut scopes: Vec<Vec<ScopeId>> = Vec::new();
    for c in 0..p.clusters {
        let top = b.scope(
            &format!("cluster-{c}"),
            None,
            q::cluster(&format!("cluster-{c}")),
        );
        b.catch_all(top, Direction::Ingress, Action::Allow);
        b.catch_all(top, Direction::Egress, Action::Allow);
        let platform = b.scope(
            &format!("platform-{c}"),
            Some(top),
            q::namespaces(&["kube-system", "monitoring"]),
        );
        let mut per_ns = vec![platform];
        for n in 0..p.namespaces {
            let s = b.scope(
                &format!("c{c}-{}", ns_name(n)),
                Some(top),
                q::namespace(&ns_name(n)),
            );
            b.catch_all(s, Direction::Ingress, Action::Deny);
            b.catch_all(s, Direction::Egress, Action::Deny);
            if n % 7 == 3 {
                b.enforcement(s, Mode::Analyze);
            }
            per_ns.push(s);
        }
        tops.push(top);
        scopes.push(per_ns);
    }
    let dns = b.filter(
        "cluster-dns",
        None,
        false,
        q::labelled_in("kube-system", "k8s-app", "kube-dns"),
    );
    let prometheus = b.filter(
        "prometheus",
        None,
        false,
        q::labelled_in("monitoring", "app", "prometheus"),
    );
    let nodes = b.filter("nodes", None, false, q::kind(&[WorkloadKind::Node]));
    let quarantined = b.filter(
        "critical",
        None,
        false,
        q::all(vec![q::kind(&[WorkloadKind::Pod]), q::cvss(9.0)]),
    );
    let mut app_filters: Vec<Option<FilterId>> = vec![None; apps.len()];

    let mut made = 0;
    for (c, &top) in tops.iter().enumerate() {
        let abs = PolicyRank::Absolute;
        let pol = |b: &mut IntentBuilder, name: &str, action, from, to, proto, ports: &str| {
            b.policy(
                top,
                abs,
                action,
                &format!("{name}-{c}"),
                from,
                to,
                proto,
                ports,
            );
        };
        pol(
            &mut b,
            "dns",
            Action::Allow,
            t::scope(top),
            t::filter(dns),
            Proto::Udp,
            "53",
        );
        pol(
            &mut b,
            "dns-tcp",
            Action::Allow,
            t::scope(top),
            t::filter(dns),
            Proto::Tcp,
            "53",
        );
        pol(
            &mut b,
            "no-ssh",
            Action::Deny,
            t::external(internet),
            t::filter(nodes),
            Proto::Tcp,
            "22",
        );
        pol(
            &mut b,
            "scrape",
            Action::Allow,
            t::filter(prometheus),
            t::scope(top),
            Proto::Tcp,
            "9090-9100",
        );
        made += 4;
    }
    b.quarantine(&[quarantined]);
    b.exception(
        "ops-ssh",
        Direction::Ingress,
        t::external(externals.first().copied().unwrap_or(internet)),
        Proto::Tcp,
        "22",
    );

    let mut k = 0usize;
    while made < p.policies && !apps.is_empty() {
        k += 1;
        let c = rng.index(p.clusters);
        let ai = rng.index(apps.len());
        let a = &apps[ai];
        let scope = scopes[c][a.ns + 1];
        let filter =
            |b: &mut IntentBuilder, fs: &mut Vec<Option<FilterId>>, i: usize| -> FilterId {
                *fs[i].get_or_insert_with(|| {
                    let app = &apps[i];
                    b.filter(
                        &format!("{}-{}", ns_name(app.ns), app.name),
                        None,
                        false,
                        q::labelled_in(&ns_name(app.ns), "app", &app.name),
                    )
                })
            };
        let kind = rng.index(100);
        let name = format!("p{k:04}");
        let default = PolicyRank::Default;
        if kind < 45 {
            // Within a namespace, to the pods or through the service.
            let bi = (ai / apps_per_ns) * apps_per_ns + rng.index(apps_per_ns);
            let from = filter(&mut b, &mut app_filters, ai);
            let to = if rng.chance(50) {
                let bb = &apps[bi];
                b.policy(
                    scope,
                    default,
                    Action::Allow,
                    &name,
                    t::filter(from),
                    t::service(&ns_name(bb.ns), &bb.name),
                    Proto::Tcp,
                    "80",
                );
                made += 1;
                continue;
            } else {
                filter(&mut b, &mut app_filters, bi)
            };
            let ports = format!("{}", apps[bi].port);
            b.policy(
                scope,
                default,
                Action::Allow,
                &name,
                t::filter(from),
                t::filter(to),
                Proto::Tcp,
                &ports,
            );
            made += 1;
        } else if kind < 75 {
            // Across namespaces: a policy on each side.
            let bi = rng.index(apps.len());
            let bb = &apps[bi];
            let from = filter(&mut b, &mut app_filters, ai);
            let to = filter(&mut b, &mut app_filters, bi);
            let ports = format!("{}", bb.port);
            b.policy(
                scope,
                default,
                Action::Allow,
                &name,
                t::filter(from),
                t::filter(to),
                Proto::Tcp,
                &ports,
            );
            made += 1;
            if made < p.policies {
                let other = scopes[c][bb.ns + 1];
                b.policy(
                    other,
                    default,
                    Action::Allow,
                    &format!("{name}-in"),
                    t::filter(from),
                    t::filter(to),
                    Proto::Tcp,
                    &ports,
                );
                made += 1;
            }
        } else if kind < 85 {
            // Towards an external.
            let e = if externals.is_empty() {
                internet
            } else {
                externals[rng.index(externals.len())]
            };
            let from = filter(&mut b, &mut app_filters, ai);
            b.policy(
                scope,
                default,
                Action::Allow,
                &name,
                t::filter(from),
                t::external(e),
                Proto::Tcp,
                "443",
            );
            made += 1;
        } else if kind < 93 {
            // A deny before the allows of a namespace.
            let to = filter(&mut b, &mut app_filters, ai);
            b.policy(
                scope,
                PolicyRank::Absolute,
                Action::Deny,
                &name,
                t::scope(tops[c]),
                t::filter(to),
                Proto::Tcp,
                "8000-8049",
            );
            made += 1;
        } else {
            // The namespace opens a port range to monitoring-style consumers.
            let to = filter(&mut b, &mut app_filters, ai);
            b.policy(
                scope,
                default,
                Action::Allow,
                &name,
                t::filter(prometheus),
                t::filter(to),
                Proto::Tcp,
                "9000-9999",
            );
            made += 1;
        }
    }
    Synth {
        intent: b.build(),
        inventory: inventory(clusters),
    }
}

fn node_addr(c: usize, n: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 168 - c as u8 % 8, (n / 250) as u8, (n % 250) as u8 + 1)
}

fn pod_addr(c: usize, n: usize, k: usize) -> Ipv4Addr {
    Ipv4Addr::new(
        10,
        (64 + c * 8 + n / 256) as u8,
        (n % 256) as u8,
        (k + 2) as u8,
    )
}

/// The addresses of the `k`-th pod placed on node `n` of cluster `c`.
pub(crate) fn pod_ips(p: &Params, c: usize, n: usize, k: usize) -> Vec<String> {
    let mut v = vec![pod_addr(c, n, k).to_string()];
    if p.ipv6 {
        v.push(format!("fd10:{c:x}:{n:x}::{:x}", k + 2));
    }
    v
}

fn make_cluster(p: &Params, c: usize, apps: &[App], rng: &mut Rng) -> Cluster {
    let name = format!("cluster-{c}");
    let mut nodes = Vec::with_capacity(p.nodes);
    for n in 0..p.nodes {
        let os = if p.windows_every > 0 && n % p.windows_every == p.windows_every - 1 {
            Os::Windows
        } else {
            Os::Linux
        };
        let mut addrs = vec![IpAddr::V4(node_addr(c, n))];
        if p.ipv6 {
            addrs.push(IpAddr::V6(Ipv6Addr::new(
                0xfd00,
                c as u16,
                0,
                0,
                0,
                0,
                0,
                n as u16 + 1,
            )));
        }
        let a: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let mut nd = node(&format!("node-{n:04}"), os, &a);
        let base = pod_addr(c, n, 0);
        nd.pod_cidrs = vec![
            format!("{}/24", Ipv4Addr::from(u32::from(base) & !0xff))
                .parse()
                .expect("a prefix"),
        ];
        nodes.push(nd);
    }
    let linux: Vec<usize> = (0..p.nodes).filter(|&n| nodes[n].os == Os::Linux).collect();
    let mut per_node = vec![0usize; p.nodes];
    let mut place = |rng: &mut Rng, linux_only: bool| -> (usize, usize) {
        let n = if linux_only && !linux.is_empty() {
            linux[rng.index(linux.len())]
        } else {
            rng.index(p.nodes)
        };
        let k = per_node[n];
        per_node[n] += 1;
        (n, k)
    };
    let ips = |c: usize, n: usize, k: usize| pod_ips(p, c, n, k);
    let mut pods: Vec<Pod> = Vec::with_capacity(p.pods);
    let sys = |pods: &mut Vec<Pod>,
               rng: &mut Rng,
               place: &mut dyn FnMut(&mut Rng, bool) -> (usize, usize),
               ns: &str,
               app: &str,
               labels: &[(&str, &str)],
               port: (&str, u16, Proto)| {
        let (n, k) = place(rng, true);
        let ip = ips(c, n, k);
        let ip: Vec<&str> = ip.iter().map(String::as_str).collect();
        pods.push(
            pod(
                ns,
                &format!("{app}-{:05x}", rng.next() % 0xfffff),
                &format!("node-{n:04}"),
                &ip,
            )
            .owner("Deployment", app)
            .labels(labels)
            .port(port.0, port.1, port.2),
        );
    };
    for _ in 0..2 {
        sys(
            &mut pods,
            rng,
            &mut place,
            "kube-system",
            "coredns",
            &[("k8s-app", "kube-dns")],
            ("dns", 53, Proto::Udp),
        );
        sys(
            &mut pods,
            rng,
            &mut place,
            "monitoring",
            "prometheus",
            &[("app", "prometheus")],
            ("web", 9090, Proto::Tcp),
        );
    }
    for (n, nd) in nodes.iter().enumerate() {
        if nd.os != Os::Linux {
            continue;
        }
        let a: Vec<String> = nd.addresses.iter().map(|a| a.to_string()).collect();
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        pods.push(
            pod(
                "monitoring",
                &format!("node-exporter-{n:04}"),
                &nd.name,
                &[],
            )
            .owner("DaemonSet", "node-exporter")
            .labels(&[("app", "node-exporter")])
            .host_network(&a)
            .port("metrics", 9100, Proto::Tcp),
        );
    }
    let remaining = p.pods.saturating_sub(pods.len());
    for i in 0..remaining {
        if apps.is_empty() {
            break;
        }
        let app = &apps[i % apps.len()];
        let (n, k) = place(rng, false);
        let ip = ips(c, n, k);
        let ip: Vec<&str> = ip.iter().map(String::as_str).collect();
        let hash = format!("{:010x}", (app.ns as u64) << 20 | (i % apps.len()) as u64);
        let tier = ["web", "api", "db"][i % apps.len() % 3];
        let mut pd = pod(
            &format!("ns-{:03}", app.ns),
            &format!("{}-{}-{:05x}", app.name, &hash[5..], i),
            &format!("node-{n:04}"),
            &ip,
        )
        .owner("Deployment", &app.name)
        .labels(&[
            ("app", &app.name),
            ("tier", tier),
            ("pod-template-hash", &hash),
        ])
        .port("http", app.port, Proto::Tcp)
        .port("metrics", 9100, Proto::Tcp);
        if rng.chance(1) && rng.chance(50) {
            pd = pd.cvss(9.5);
        }
        pods.push(pd);
    }
    let mut services = Vec::new();
    for (i, app) in apps.iter().enumerate() {
        let ip = format!("172.{}.{}.{}", 20 + c, i / 250, i % 250 + 1);
        let mut s = service(
            &format!("ns-{:03}", app.ns),
            &app.name,
            &[("app", &app.name)],
            &ip,
        )
        .named_port(Proto::Tcp, 80, "http");
        let every = p.exposed_every;
        if every > 0 && i % every == every / 2 {
            s = s.node_port(30000 + (i % 2700) as u16);
            if i % (2 * every) == every / 2 {
                s = s.load_balancer(&[&format!("203.0.{}.{}", 113 + c, i % 250 + 1)]);
            }
            if i % (4 * every) == every / 2 {
                s = s.local();
            }
        }
        services.push(s);
    }
    let namespaces = (0..p.namespaces)
        .map(|n| {
            namespace(
                &format!("ns-{n:03}"),
                &[("team", &format!("team-{}", n % 5))],
            )
        })
        .chain([namespace("kube-system", &[]), namespace("monitoring", &[])])
        .collect();
    cluster(&name, nodes, namespaces, pods, services)
}

impl Synth {
    /// The intent as KDL text (one file).
    pub fn kdl(&self) -> &str {
        &self.intent.files[0].text
    }

    /// Each cluster as `kubectl get nodes,namespaces,pods,services -A -o json`
    /// would print it: (cluster name, JSON).
    pub fn kubectl_json(&self) -> Vec<(String, String)> {
        self.inventory
            .clusters
            .iter()
            .map(|c| {
                let v = kubectl_list(c);
                (
                    c.name.clone(),
                    serde_json::to_string(&v).expect("JSON values serialize"),
                )
            })
            .collect()
    }

    /// Write `DIR/intent/intent.kdl` and `DIR/inventory/<cluster>.json`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir.join("intent"))?;
        std::fs::create_dir_all(dir.join("inventory"))?;
        std::fs::write(
            dir.join("intent").join(&self.intent.files[0].path),
            self.kdl(),
        )?;
        for (name, json) in self.kubectl_json() {
            std::fs::write(dir.join("inventory").join(format!("{name}.json")), json)?;
        }
        Ok(())
    }
}

fn labels_json(l: &std::collections::BTreeMap<String, String>) -> Value {
    Value::Object(
        l.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

fn proto_json(p: Proto) -> &'static str {
    match p {
        Proto::Udp => "UDP",
        Proto::Sctp => "SCTP",
        _ => "TCP",
    }
}

/// A cluster as a kubectl `List` (nodes, namespaces, pods, services), with
/// the cluster name in the `ringfence.io/cluster` annotation. Pods owned by
/// a Deployment point at a ReplicaSet named after their `pod-template-hash`.
pub fn kubectl_list(c: &Cluster) -> Value {
    let mut items = Vec::new();
    for n in &c.nodes {
        let mut addresses: Vec<Value> = Vec::new();
        for (i, a) in n.addresses.iter().enumerate() {
            let kind = if i == 0 || a.is_ipv6() {
                "InternalIP"
            } else {
                "ExternalIP"
            };
            addresses.push(json!({"type": kind, "address": a.to_string()}));
        }
        items.push(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": n.name, "labels": labels_json(&n.labels)},
            "spec": {"podCIDRs": n.pod_cidrs.iter().map(|p| p.to_string()).collect::<Vec<_>>()},
            "status": {"addresses": addresses, "nodeInfo": {"operatingSystem": n.os.as_str()}},
        }));
    }
    for ns in &c.namespaces {
        items.push(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns.name, "labels": labels_json(&ns.labels)},
        }));
    }
    for p in &c.pods {
        items.push(pod_json(p));
    }
    for s in &c.services {
        items.push(service_json(s));
    }
    json!({
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"annotations": {"ringfence.io/cluster": c.name}},
        "items": items,
    })
}

/// A pod as a `kubectl … -o json` item. Pods owned by a Deployment point at
/// a ReplicaSet named after their `pod-template-hash`.
pub fn pod_json(p: &Pod) -> Value {
    let owner = p.owner.as_ref().map(|o| {
        let (kind, name) = match (o.kind.as_str(), p.labels.get("pod-template-hash")) {
            ("Deployment", Some(h)) => ("ReplicaSet".to_string(), format!("{}-{h}", o.name)),
            _ => (o.kind.clone(), o.name.clone()),
        };
        json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "controller": true}])
    });
    let ports: Vec<Value> = p
        .ports
        .iter()
        .map(|cp| {
            let mut v = json!({"containerPort": cp.port, "protocol": proto_json(cp.proto)});
            if let Some(n) = &cp.name {
                v["name"] = json!(n);
            }
            v
        })
        .collect();
    let mut meta =
        json!({"name": p.name, "namespace": p.namespace, "labels": labels_json(&p.labels)});
    if let Some(o) = owner {
        meta["ownerReferences"] = o;
    }
    let mut spec = json!({
        "containers": [{"name": "main", "image": p.images.first().cloned().unwrap_or_else(|| "registry.example/app:1".into()), "ports": ports}],
    });
    if let Some(n) = &p.node {
        spec["nodeName"] = json!(n);
    }
    if p.host_network {
        spec["hostNetwork"] = json!(true);
    }
    let mut status = json!({"phase": p.phase});
    if let Some(first) = p.ips.first() {
        status["podIP"] = json!(first.to_string());
        status["podIPs"] = json!(
            p.ips
                .iter()
                .map(|i| json!({"ip": i.to_string()}))
                .collect::<Vec<_>>()
        );
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status})
}

fn service_json(s: &Service) -> Value {
    let kind = match s.kind {
        ServiceType::ClusterIp => "ClusterIP",
        ServiceType::NodePort => "NodePort",
        ServiceType::LoadBalancer => "LoadBalancer",
        ServiceType::ExternalName => "ExternalName",
    };
    let ports: Vec<Value> = s
        .ports
        .iter()
        .map(|sp| {
            let mut v = json!({
                "protocol": proto_json(sp.proto),
                "port": sp.port,
                "targetPort": match &sp.target {
                    TargetPort::Number(n) => json!(n),
                    TargetPort::Name(n) => json!(n),
                },
            });
            if let Some(n) = &sp.name {
                v["name"] = json!(n);
            }
            if let Some(np) = sp.node_port {
                v["nodePort"] = json!(np);
            }
            v
        })
        .collect();
    let mut spec = json!({
        "type": kind,
        "selector": labels_json(&s.selector),
        "ports": ports,
    });
    if let Some(ip) = s.cluster_ips.first() {
        spec["clusterIP"] = json!(ip.to_string());
        spec["clusterIPs"] = json!(
            s.cluster_ips
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
        );
    }
    if matches!(s.kind, ServiceType::NodePort | ServiceType::LoadBalancer) {
        spec["externalTrafficPolicy"] = json!(match s.external_traffic_policy {
            ringfence_inventory::model::TrafficPolicy::Cluster => "Cluster",
            ringfence_inventory::model::TrafficPolicy::Local => "Local",
        });
    }
    let mut v = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": s.name, "namespace": s.namespace, "labels": labels_json(&s.labels)},
        "spec": spec,
    });
    if !s.lb_ingress.is_empty() {
        v["status"] = json!({"loadBalancer": {"ingress": s.lb_ingress.iter().map(|i| json!({"ip": i.to_string()})).collect::<Vec<_>>()}});
    }
    v
}

/// A one-line summary, for benchmark output.
pub fn describe(s: &Synth) -> String {
    let mut out = String::new();
    let inv = &s.inventory;
    let nodes: usize = inv.clusters.iter().map(|c| c.nodes.len()).sum();
    let pods: usize = inv.clusters.iter().map(|c| c.pods.len()).sum();
    let svcs: usize = inv.clusters.iter().map(|c| c.services.len()).sum();
    write!(
        out,
        "{} clusters, {nodes} nodes, {pods} pods, {svcs} services; {} scopes, {} filters, {} policies, {} externals",
        inv.clusters.len(),
        s.intent.scopes.len(),
        s.intent.filters.len(),
        s.intent.policies.len(),
        s.intent.externals.len()
    )
    .expect("string");
    out
}
