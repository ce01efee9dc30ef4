//! Discovery end to end: synthesized clusters with a known call graph,
//! read through the real inventory loader and flow readers.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use ipnet::IpNet;
use ringfence_discover::{
    Discovery, Exclusions, Granularity, Options, PortGeneralization, Summary, discover,
};
use ringfence_flows::ReadOptions;
use ringfence_testkit::shop::{self, Edge, From, Inputs, Shop, To};

fn run(
    inputs: &Inputs,
    granularity: Granularity,
    level: PortGeneralization,
    min_flows: u64,
) -> Discovery {
    let inv = ringfence_inventory::load(std::slice::from_ref(&inputs.inventory), &[]).unwrap();
    let opts = Options {
        granularity,
        port_generalization: level,
        exclusions: Exclusions::load(&inputs.exclude).unwrap(),
        min_flows,
        scope: None,
    };
    // The conntrack listing is dated by this, not by its modification time.
    let read = ReadOptions {
        default_time: Some("2024-05-01T12:30:00Z".parse().unwrap()),
        ..ReadOptions::default()
    };
    discover(&inv, &inputs.flows, &read, opts).unwrap()
}

/// Who a policy reference stands for, from the summary's groups.
struct Groups<'s> {
    members: BTreeMap<&'s str, &'s [String]>,
}

impl<'s> Groups<'s> {
    fn new(s: &'s Summary) -> Self {
        Groups {
            members: s
                .groups
                .iter()
                .map(|g| (g.name.as_str(), g.members.as_slice()))
                .collect(),
        }
    }

    /// Whether reference `r` contains the workload `ns/name`.
    fn has_workload(&self, r: &str, ns: &str, name: &str) -> bool {
        if r.starts_with("scope:") {
            return true;
        }
        let Some(f) = r.strip_prefix("filter:") else {
            return false;
        };
        let prefix = format!("{ns}/{name} (");
        self.members[f].iter().any(|m| m.starts_with(&prefix))
    }

    fn has_address(&self, r: &str, ip: Ipv4Addr) -> bool {
        let Some(e) = r.strip_prefix("external:") else {
            return false;
        };
        self.members[e]
            .iter()
            .any(|c| c.parse::<IpNet>().unwrap().contains(&IpAddr::V4(ip)))
    }
}

fn ports_cover(ports: &str, port: u16) -> bool {
    ports.is_empty()
        || ports.split(',').any(|r| match r.split_once('-') {
            Some((a, b)) => a.parse::<u16>().unwrap() <= port && port <= b.parse::<u16>().unwrap(),
            None => r.parse::<u16>().unwrap() == port,
        })
}

/// Whether some policy allows a true edge on one port. A service may be
/// written by name (its port) or as its workload (the target port).
fn allows(s: &Summary, shop: &Shop, e: &Edge, port: u16) -> bool {
    let g = Groups::new(s);
    s.policies.iter().any(|p| {
        let proto_ok = p.proto == "any" || p.proto == e.proto;
        let from_ok = match &e.from {
            From::Workload(ns, n) => g.has_workload(&p.from, ns, n),
            From::External(ip) => g.has_address(&p.from, *ip),
        };
        let to_ok = match &e.to {
            To::Service(ns, n, sport) | To::NodePort(ns, n, sport) => {
                let svc = shop
                    .world
                    .services
                    .iter()
                    .find(|x| x.ns == *ns && x.name == *n)
                    .unwrap();
                let target = svc.ports.iter().find(|x| x.1 == *sport).unwrap().2;
                let backed = shop
                    .world
                    .backends(svc)
                    .any(|pod| g.has_workload(&p.to, ns, &shop.world.workloads[pod.workload].name));
                (p.to == format!("service:{ns}/{n}") && ports_cover(&p.ports, *sport))
                    || (matches!(e.to, To::Service(..)) && backed && ports_cover(&p.ports, target))
            }
            To::Pods(ns, n) => g.has_workload(&p.to, ns, n) && ports_cover(&p.ports, port),
            To::External(ip) => g.has_address(&p.to, *ip),
        };
        proto_ok && from_ok && to_ok
    })
}

fn assert_truth_covered(d: &Discovery, shop: &Shop) {
    for e in &shop.truth {
        let ports: Vec<u16> = match e.to {
            To::Service(_, _, p) | To::NodePort(_, _, p) => vec![p],
            _ => e.ports.clone(),
        };
        for port in ports {
            assert!(
                allows(&d.summary, shop, e, port),
                "no policy allows {e:?} on {port}\n{}",
                d.summary.to_text()
            );
        }
    }
}

fn assert_accounted(s: &Summary) {
    let f = &s.flows;
    assert_eq!(
        f.read,
        f.dropped_by_network
            + f.excluded
            + f.unknown_addresses
            + f.ambiguous_addresses
            + f.outside_inventory
            + f.replies_detected
            + f.below_min_flows
            + f.covered,
        "every flow is accounted for: {f:?}"
    );
}

#[test]
fn fine_discovery_covers_the_truth_and_nothing_else() {
    let shop = shop::shop();
    let inputs = shop.write(6);
    let d = run(&inputs, Granularity::Fine, PortGeneralization::Medium, 2);
    let s = &d.summary;
    assert_truth_covered(&d, &shop);
    assert_accounted(s);
    // Noise: probes excluded, the scan below min-flows, replies recognised,
    // dropped flows left out; nothing unparsable.
    assert_eq!(s.flows.unparsable, 0, "{:?}", s.inputs.errors);
    assert!(s.flows.excluded_by["kubelet-probes"] > 0);
    assert!(s.flows.below_min_flows >= 199, "{:?}", s.flows);
    assert!(s.flows.replies_detected > 0);
    assert_eq!(s.flows.dropped_by_network, 3);
    assert_eq!(
        s.flows.unknown_addresses + s.flows.outside_inventory,
        0,
        "{:?}",
        s.flows
    );
    let text = d.files.iter().map(|f| f.text.as_str()).collect::<String>();
    assert!(!text.contains("100.64.9"), "the scanner is not an external");
    assert!(
        !text.contains("kind \"node\""),
        "probes from nodes were excluded"
    );
    // One policy per consumer, provider and protocol; the batch range folded.
    let by_name: BTreeMap<&str, &ringfence_discover::PolicySummary> =
        s.policies.iter().map(|p| (p.name.as_str(), p)).collect();
    let report = by_name["report-to-lake"];
    assert_eq!(
        (report.proto.as_str(), report.ports.as_str()),
        ("tcp", "9000-9078")
    );
    let web = s
        .policies
        .iter()
        .find(|p| p.to == "service:shop/frontend")
        .unwrap();
    assert_eq!(
        web.ports, "80",
        "the node port is written as the service port"
    );
    // DNS: every workload of shop, shop-data and batch: one policy per namespace.
    let dns: Vec<&str> = s
        .policies
        .iter()
        .filter(|p| p.to == "service:kube-system/kube-dns")
        .map(|p| p.from.as_str())
        .collect();
    assert_eq!(
        dns,
        ["filter:ns-batch", "filter:ns-shop", "filter:ns-shop-data"]
    );
    // Every policy is justified by a true edge (no invention).
    for p in &s.policies {
        let justified = shop.truth.iter().any(|e| {
            let mut one = s.clone();
            one.policies = vec![p.clone()];
            let ports: Vec<u16> = match e.to {
                To::Service(_, _, x) | To::NodePort(_, _, x) => vec![x],
                _ => e.ports.clone(),
            };
            ports.iter().any(|&port| allows(&one, &shop, e, port))
        });
        assert!(justified, "{} is not in the truth", p.name);
    }
}

#[test]
fn coarse_discovery_writes_workloads_on_target_ports() {
    let shop = shop::shop();
    let inputs = shop.write(4);
    let d = run(&inputs, Granularity::Coarse, PortGeneralization::Medium, 2);
    assert_truth_covered(&d, &shop);
    assert_accounted(&d.summary);
    let s = &d.summary;
    // Inside the cluster, services are their workloads on target ports;
    // only the node-port entry keeps the service.
    let by_service: Vec<&str> = s
        .policies
        .iter()
        .filter(|p| p.to.starts_with("service:"))
        .map(|p| p.to.as_str())
        .collect();
    assert_eq!(by_service, ["service:shop/frontend"]);
    let cart = s.groups.iter().find(|g| g.name == "cart").unwrap();
    assert_eq!(cart.query, "namespace \"shop\"; label \"app\" \"cart\"");
}

#[test]
fn namespace_and_cluster_granularity() {
    let shop = shop::shop();
    let inputs = shop.write(3);
    let d = run(
        &inputs,
        Granularity::Namespace,
        PortGeneralization::Medium,
        2,
    );
    assert_truth_covered(&d, &shop);
    assert_accounted(&d.summary);
    let island = d
        .summary
        .policies
        .iter()
        .filter(|p| p.from == "filter:ns-island")
        .collect::<Vec<_>>();
    assert_eq!(island.len(), 1, "the island talks only to itself");
    assert_eq!(
        (island[0].to.as_str(), island[0].ports.as_str()),
        ("filter:ns-island", "8000-8002")
    );
    let d = run(&inputs, Granularity::Cluster, PortGeneralization::Medium, 2);
    assert_truth_covered(&d, &shop);
    let s = &d.summary;
    let intra: Vec<_> = s
        .policies
        .iter()
        .filter(|p| p.from == "scope:prod" && p.to == "scope:prod")
        .collect();
    assert_eq!((intra.len(), intra[0].proto.as_str()), (1, "any"));
    // Everything else crosses the boundary: externals in and out.
    assert!(s.policies.iter().all(|p| p == intra[0]
        || p.from.starts_with("external:")
        || p.to.starts_with("external:")));
}

#[test]
fn port_generalization_levels_on_the_batch_range() {
    let shop = shop::shop();
    let inputs = shop.write(1);
    let ports = |level| {
        let d = run(&inputs, Granularity::Fine, level, 1);
        d.summary
            .policies
            .iter()
            .find(|p| p.name == "report-to-lake")
            .unwrap()
            .ports
            .clone()
    };
    let all: Vec<String> = (9000..9080).step_by(2).map(|p| p.to_string()).collect();
    assert_eq!(ports(PortGeneralization::Off), all.join(","));
    // 40 ports two apart, one flow each: low needs 64 flows, medium 16.
    assert_eq!(ports(PortGeneralization::Low), all.join(","));
    assert_eq!(ports(PortGeneralization::Medium), "9000-9078");
    assert_eq!(ports(PortGeneralization::High), "9000-9078");
}

#[test]
fn output_is_deterministic_whatever_the_threads() {
    let shop = shop::shop();
    let inputs = shop.write(3);
    let inv = ringfence_inventory::load(std::slice::from_ref(&inputs.inventory), &[]).unwrap();
    let mut outputs = Vec::new();
    for (threads, chunk_size) in [(1, 1 << 20), (4, 4096)] {
        let read = ReadOptions {
            default_time: Some("2024-05-01T12:30:00Z".parse().unwrap()),
            threads,
            chunk_size,
            ..ReadOptions::default()
        };
        let opts = Options {
            exclusions: Exclusions::load(&inputs.exclude).unwrap(),
            min_flows: 2,
            ..Options::default()
        };
        outputs.push(discover(&inv, &inputs.flows, &read, opts).unwrap());
    }
    assert_eq!(outputs[0].files, outputs[1].files);
    assert_eq!(outputs[0].summary.policies, outputs[1].summary.policies);
}

#[test]
fn scope_mode_writes_policies_for_an_existing_scope() {
    let shop = shop::shop();
    let inputs = shop.write(2);
    let inv = ringfence_inventory::load(std::slice::from_ref(&inputs.inventory), &[]).unwrap();
    let opts = Options {
        scope: Some("apps".into()),
        exclusions: Exclusions::load(&inputs.exclude).unwrap(),
        min_flows: 2,
        ..Options::default()
    };
    let read = ReadOptions {
        default_time: Some("2024-05-01T12:30:00Z".parse().unwrap()),
        ..ReadOptions::default()
    };
    let d = discover(&inv, &inputs.flows, &read, opts).unwrap();
    let text: String = d.files.iter().map(|f| f.text.as_str()).collect();
    assert!(!text.contains("\nscope "), "no scope is declared");
    assert!(text.contains("policies scope=\"apps\" {"));
    assert!(text.contains("filter \"cart\" scope=\"apps\" {"));
    assert!(d.summary.policies.iter().all(|p| p.scope == "apps"));
    assert!(
        d.summary
            .notes
            .iter()
            .any(|n| n.contains("must contain both ends"))
    );
    // Merged into a repository that declares the scope, it checks.
    let mut with_scope = d.clone();
    with_scope.files.insert(
        0,
        ringfence_discover::OutputFile {
            path: "00-apps.kdl".into(),
            text: "scope \"apps\" {\n    query {\n        cluster \"prod\"\n    }\n    catch-all ingress=\"deny\" egress=\"deny\"\n}\n".into(),
        },
    );
    let intent = check_intent(&with_scope);
    assert_eq!(intent.policies.len(), d.summary.policies.len());
}

#[test]
fn bad_inputs_are_refused_with_file_and_line() {
    let shop = shop::shop();
    let inputs = shop.write(1);
    let inv = ringfence_inventory::load(std::slice::from_ref(&inputs.inventory), &[]).unwrap();
    let bad = inputs.dir.path().join("bad.csv");
    std::fs::write(&bad, "time,src,dst\n").unwrap();
    let e = discover(&inv, &[bad], &ReadOptions::default(), Options::default())
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .contains("bad.csv:1: cannot tell the flow format"),
        "{e}"
    );
    let missing: PathBuf = inputs.dir.path().join("nope.jsonl");
    let e = discover(
        &inv,
        &[missing],
        &ReadOptions::default(),
        Options::default(),
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("nope.jsonl"), "{e}");
    let mut flows = inputs.flows.clone();
    let broken = inputs.dir.path().join("broken.jsonl");
    std::fs::write(
        &broken,
        format!(
            "{}\n{{\"src_ip\":\"10.0.0.1\"}}\n",
            std::fs::read_to_string(&inputs.flows[0])
                .unwrap()
                .lines()
                .next()
                .unwrap()
        ),
    )
    .unwrap();
    flows.push(broken);
    let d = discover(&inv, &flows, &ReadOptions::default(), Options::default()).unwrap();
    assert_eq!(d.summary.flows.unparsable, 1);
    assert!(
        d.summary
            .notes
            .iter()
            .any(|n| n.contains("broken.jsonl:2: missing field `dst_ip`")),
        "{:?}",
        d.summary.notes
    );
}

/// The discovered files as intent: loaded with no errors (nor warnings),
/// and already in `ringfence fmt`'s layout.
fn check_intent(d: &Discovery) -> ringfence_intent::model::Intent {
    use ringfence_intent::model::SourceFile;
    let files: Vec<SourceFile> = d
        .files
        .iter()
        .map(|f| SourceFile::new(&f.path, &f.text))
        .collect();
    for (id, f) in d.files.iter().enumerate() {
        let formatted = ringfence_intent::format_source(id, &f.text)
            .unwrap_or_else(|e| panic!("{}: {e:?}", f.path));
        assert_eq!(formatted, f.text, "{} is not in fmt's layout", f.path);
    }
    let checked = ringfence_intent::load(files.clone());
    let shown = ringfence_intent::render_human(&checked.diagnostics, &files, false, 100);
    assert!(checked.diagnostics.0.is_empty(), "{shown}");
    checked.intent.expect("no errors")
}

#[test]
fn discovered_intent_checks_and_is_formatted_at_every_granularity() {
    let shop = shop::shop();
    let inputs = shop.write(2);
    for g in [
        Granularity::Fine,
        Granularity::Coarse,
        Granularity::Namespace,
        Granularity::Cluster,
    ] {
        let d = run(&inputs, g, PortGeneralization::Medium, 2);
        let intent = check_intent(&d);
        assert_eq!(intent.scopes.len(), 1);
        assert_eq!(intent.policies.len(), d.summary.policies.len());
    }
}

/// Compile discovered intent against the inventory: no errors.
/// Whether the compiled policy allows TCP from `src` to `dst` on `port`.
fn tcp_allowed(c: &ringfence_core::Compiled, src: Ipv4Addr, dst: Ipv4Addr, port: u16) -> bool {
    let tcp = ringfence_schema::net::Proto::Tcp;
    c.verdict(IpAddr::V4(src), IpAddr::V4(dst), tcp, Some(port))
        .allowed()
}

fn compile(d: &Discovery, inputs: &Inputs) -> ringfence_core::Compiled {
    let intent = check_intent(d);
    let inv = ringfence_inventory::load(std::slice::from_ref(&inputs.inventory), &[]).unwrap();
    let (compiled, diags) = ringfence_core::compile(&intent, &inv);
    let errors: Vec<_> = diags
        .iter()
        .filter(|x| x.severity == ringfence_intent::Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    compiled.expect("compiles")
}

/// Every true connection, from every consumer pod to every backend as the
/// consumer addresses it, is allowed by the compiled policy.
fn assert_truth_allowed(c: &ringfence_core::Compiled, shop: &Shop) {
    for e in shop.truth_events(3) {
        let proto: ringfence_schema::net::Proto = e.proto.parse().unwrap();
        let port = (e.proto != "icmp").then_some(e.dst_port);
        let v = c.verdict(e.src, e.dst, proto, port);
        assert!(
            v.allowed(),
            "{} -> {}:{} {} is denied: {v:?}",
            e.src,
            e.dst,
            e.dst_port,
            e.proto
        );
    }
}

/// Every line of the compiled matrix is a true connection, or what the
/// language makes of one (a service policy also admits its consumers to the
/// backing pods' target ports, and nodes for externalTrafficPolicy
/// Cluster), or within a generalized port range.
fn assert_nothing_invented(c: &ringfence_core::Compiled, d: &Discovery, shop: &Shop) {
    let w = &shop.world;
    let externals: BTreeMap<String, Vec<IpNet>> = d
        .summary
        .groups
        .iter()
        .filter(|g| g.kind == "external")
        .map(|g| {
            (
                format!("{}[External]", g.name),
                g.members.iter().map(|m| m.parse().unwrap()).collect(),
            )
        })
        .collect();
    let workload = |group: &str| -> Option<(String, String)> {
        let (body, _) = group.split_once('[')?;
        let (ns, name) = body.split_once('/')?;
        Some((ns.to_string(), name.to_string()))
    };
    let from_ok = |group: &str, f: &From| match f {
        From::Workload(ns, n) => workload(group) == Some((ns.to_string(), n.to_string())),
        From::External(ip) => externals
            .get(group)
            .is_some_and(|nets| nets.iter().any(|n| n.contains(&IpAddr::V4(*ip)))),
    };
    let backs = |group: &str, ns: &str, n: &str| {
        let s = w
            .services
            .iter()
            .find(|s| s.ns == ns && s.name == n)
            .unwrap();
        w.backends(s).any(|p| {
            let wl = &w.workloads[p.workload];
            workload(group) == Some((wl.ns.clone(), wl.name.clone()))
        })
    };
    let target = |ns: &str, n: &str, sport: u16| {
        let s = w
            .services
            .iter()
            .find(|s| s.ns == ns && s.name == n)
            .unwrap();
        s.ports.iter().find(|p| p.1 == sport).unwrap().2
    };
    let matrix = c.matrix();
    // One line per true edge (DNS, the shop, the island, the batch job,
    // externals): the check below is not vacuous.
    assert!(
        matrix.connections.len() >= 30,
        "{}",
        matrix.connections.len()
    );
    for line in &matrix.connections {
        let proto = line.proto.as_str();
        let ports: Vec<u16> = if line.ports.is_empty() {
            vec![0]
        } else {
            line.ports.iter().flat_map(|r| r.start..=r.end).collect()
        };
        for port in ports {
            let justified = shop.truth.iter().any(|e| {
                if e.proto != proto {
                    return false;
                }
                let node_hop = line.from.ends_with("[Node]");
                match (&e.to, &line.via) {
                    (To::NodePort(ns, n, _), Some(entry)) => {
                        entry.service == format!("{ns}/{n}")
                            && from_ok(&line.from, &e.from)
                            && e.ports.contains(&port)
                    }
                    (_, Some(_)) => false,
                    (To::NodePort(ns, n, sport), None) => {
                        (from_ok(&line.from, &e.from) || node_hop)
                            && backs(&line.to, ns, n)
                            && port == target(ns, n, *sport)
                    }
                    (To::Service(ns, n, sport), None) => {
                        from_ok(&line.from, &e.from)
                            && backs(&line.to, ns, n)
                            && port == target(ns, n, *sport)
                    }
                    (To::Pods(ns, n), None) => {
                        let (lo, hi) = (
                            *e.ports.iter().min().unwrap(),
                            *e.ports.iter().max().unwrap(),
                        );
                        from_ok(&line.from, &e.from)
                            && workload(&line.to) == Some((ns.to_string(), n.to_string()))
                            && lo <= port
                            && port <= hi
                    }
                    (To::External(ip), None) => {
                        from_ok(&line.from, &e.from)
                            && externals.get(&line.to).is_some_and(|nets| {
                                nets.iter().any(|n| n.contains(&IpAddr::V4(*ip)))
                            })
                            && e.ports.contains(&port)
                    }
                }
            });
            assert!(
                justified,
                "invented: {} => {} {proto} {port} {:?}",
                line.from, line.to, line.via
            );
        }
    }
}

#[test]
fn compiled_policy_allows_the_truth_and_invents_nothing() {
    let shop = shop::shop();
    let inputs = shop.write(3);
    for g in [Granularity::Fine, Granularity::Coarse] {
        let d = run(&inputs, g, PortGeneralization::Medium, 2);
        let c = compile(&d, &inputs);
        assert_truth_allowed(&c, &shop);
        assert_nothing_invented(&c, &d, &shop);
    }
    // Coarser objects allow more by design; the truth is still allowed.
    for g in [Granularity::Namespace, Granularity::Cluster] {
        let d = run(&inputs, g, PortGeneralization::Medium, 2);
        assert_truth_allowed(&compile(&d, &inputs), &shop);
    }
    // Without generalization, the batch job's unused odd ports stay closed.
    let d = run(&inputs, Granularity::Fine, PortGeneralization::Off, 2);
    let c = compile(&d, &inputs);
    assert_truth_allowed(&c, &shop);
    let report = shop.world.first_ip("batch", "report");
    let lake = shop.world.first_ip("batch", "lake");
    assert!(tcp_allowed(&c, report, lake, 9002));
    assert!(!tcp_allowed(&c, report, lake, 9003));
    let d = run(&inputs, Granularity::Fine, PortGeneralization::Medium, 2);
    let c = compile(&d, &inputs);
    assert!(
        tcp_allowed(&c, report, lake, 9003),
        "medium folds the range"
    );
    // Noise never became policy: the scanner, the dropped database call.
    let catalog = shop.world.first_ip("shop", "catalog");
    assert!(!tcp_allowed(&c, shop::SCANNER, catalog, 22));
    let ad = shop.world.first_ip("shop", "ad");
    let pg = shop.world.first_ip("shop-data", "postgres");
    assert!(!tcp_allowed(&c, ad, pg, 5432));
}

/// Two clusters with the same namespace and labels; a staging tester calls
/// the production API through its load balancer.
#[test]
fn two_clusters_get_a_scope_each_and_cross_cluster_policies_in_both() {
    use ringfence_testkit::world::{Event, Kind, World};
    let mut prod = World::numbered("prod", 2, 0);
    let api = prod.app("apps", "api", Kind::Deployment, 2, &[("tcp", 8443)]);
    let web = prod.app("apps", "web", Kind::Deployment, 2, &[("tcp", 8080)]);
    let lb = prod.service(
        "apps",
        "api",
        &[("app", "api")],
        "LoadBalancer",
        &[("tcp", 443, 8443, Some(31443))],
    );
    let mut staging = World::numbered("staging", 2, 1);
    let sweb = staging.app("apps", "web", Kind::Deployment, 1, &[("tcp", 8080)]);
    let tester = staging.app("apps", "tester", Kind::Deployment, 1, &[]);
    let dir = tempfile::tempdir().unwrap();
    let inv_files: Vec<PathBuf> = [(&prod, "prod.json"), (&staging, "staging.json")]
        .iter()
        .map(|(w, name)| {
            let p = dir.path().join(name);
            std::fs::write(&p, w.kubectl_json()).unwrap();
            p
        })
        .collect();
    let ext = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 5));
    let mut lines = String::new();
    let ev = |src: Ipv4Addr, dst: IpAddr, port: u16, backend: Option<(Ipv4Addr, u16)>| Event {
        proto: "tcp",
        src: IpAddr::V4(src),
        src_port: 40_000,
        dst,
        dst_port: port,
        backend: backend.map(|(b, p)| (IpAddr::V4(b), p)),
        service: None,
        time: 1_714_564_800,
        allowed: Some(true),
    };
    let api_pod = prod.pods_of(api).next().unwrap().ip;
    for p in prod.pods_of(web) {
        ev(
            p.ip,
            IpAddr::V4(prod.services[lb].cluster_ip),
            443,
            Some((api_pod, 8443)),
        )
        .jsonl(&mut lines);
        ev(p.ip, ext, 443, None).jsonl(&mut lines);
    }
    // The tester calls the API through a node port of prod, and once through
    // its load balancer.
    let tester_ip = staging.pods_of(tester).next().unwrap().ip;
    let node_ip = IpAddr::V4(prod.nodes[0].ip);
    ev(tester_ip, node_ip, 31443, Some((api_pod, 8443))).jsonl(&mut lines);
    let lb_ip = IpAddr::V4(prod.services[lb].lb_ip.unwrap());
    ev(tester_ip, lb_ip, 443, Some((api_pod, 8443))).jsonl(&mut lines);
    ev(staging.pods_of(sweb).next().unwrap().ip, ext, 443, None).jsonl(&mut lines);
    let flows = dir.path().join("flows.jsonl");
    std::fs::write(&flows, lines).unwrap();

    let inv = ringfence_inventory::load(&inv_files, &[]).unwrap();
    let opts = Options {
        granularity: Granularity::Fine,
        ..Options::default()
    };
    let d = discover(&inv, &[flows], &ReadOptions::default(), opts).unwrap();
    let paths: Vec<&str> = d.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "00-externals.kdl",
            "prod.kdl",
            "prod/apps.kdl",
            "staging.kdl",
            "staging/apps.kdl"
        ]
    );
    // The same labels in both clusters: the filters say which cluster.
    let web_filters: Vec<&ringfence_discover::Group> = d
        .summary
        .groups
        .iter()
        .filter(|g| g.members.iter().any(|m| m.starts_with("apps/web (")))
        .collect();
    assert_eq!(web_filters.len(), 2);
    assert!(
        web_filters
            .iter()
            .all(|g| g.query.starts_with("cluster \"")),
        "{web_filters:?}"
    );
    // The cross-cluster call is written in both scopes, through the load balancer.
    let cross: Vec<&str> = d
        .summary
        .policies
        .iter()
        .filter(|p| p.to == "service:apps/api" && p.from.contains("tester"))
        .map(|p| p.scope.as_str())
        .collect();
    assert_eq!(cross, ["prod", "staging"]);
    // Through the node port, the tester's egress sees a prod node: a policy
    // to prod's nodes on the node port, in the tester's scope only.
    let entry: Vec<(&str, &str, &str)> = d
        .summary
        .policies
        .iter()
        .filter(|p| p.to == "filter:nodes")
        .map(|p| (p.scope.as_str(), p.from.as_str(), p.ports.as_str()))
        .collect();
    assert_eq!(entry, [("staging", "filter:tester", "31443")]);
    let nodes = d.summary.groups.iter().find(|g| g.name == "nodes").unwrap();
    assert_eq!(nodes.query, "cluster \"prod\"; kind \"node\"");
    // Through the load balancer: said in the notes.
    assert!(d.summary.notes.iter().any(|n| n.starts_with("1 conversations from inside a cluster went to a load balancer")), "{:?}", d.summary.notes);
    let intent = check_intent(&d);
    assert_eq!(intent.scopes.len(), 2);
    let (compiled, diags) = ringfence_core::compile(&intent, &inv);
    assert!(
        diags
            .iter()
            .all(|x| x.severity != ringfence_intent::Severity::Error),
        "{diags:?}"
    );
    let c = compiled.unwrap();
    let tcp = ringfence_schema::net::Proto::Tcp;
    let v = c.verdict(IpAddr::V4(tester_ip), node_ip, tcp, Some(31443));
    assert!(v.allowed(), "{v:#?}");
    // The load balancer's pods admit the tester; its own egress is the
    // compiler's to decide (see the note).
    let v = c.verdict(IpAddr::V4(tester_ip), lb_ip, tcp, Some(443));
    assert_eq!(
        v.ingress.action(),
        ringfence_schema::ir::Action::Allow,
        "{v:#?}"
    );
    let web_ip = IpAddr::V4(prod.pods_of(web).next().unwrap().ip);
    assert!(
        c.verdict(
            web_ip,
            IpAddr::V4(prod.services[lb].cluster_ip),
            tcp,
            Some(443)
        )
        .allowed()
    );
    assert!(c.verdict(web_ip, ext, tcp, Some(443)).allowed());
    assert!(!c.verdict(web_ip, ext, tcp, Some(80)).allowed());
}

/// Without the exclusion, the kubelet probes become policy: from the nodes
/// (one unit per cluster, though each probes only its own pods) to every
/// workload on its port.
#[test]
fn probes_without_exclusion_come_from_the_nodes() {
    let shop = shop::shop();
    let inputs = shop.write(2);
    let inv = ringfence_inventory::load(std::slice::from_ref(&inputs.inventory), &[]).unwrap();
    let read = ReadOptions {
        default_time: Some("2024-05-01T12:30:00Z".parse().unwrap()),
        ..ReadOptions::default()
    };
    let opts = Options {
        granularity: Granularity::Fine,
        min_flows: 2,
        ..Options::default()
    };
    let d = discover(&inv, &inputs.flows, &read, opts).unwrap();
    let nodes = d.summary.groups.iter().find(|g| g.name == "nodes").unwrap();
    assert_eq!(
        (nodes.query.as_str(), nodes.members.len()),
        ("kind \"node\"", 4)
    );
    let probes: Vec<&str> = d
        .summary
        .policies
        .iter()
        .filter(|p| p.from == "filter:nodes")
        .map(|p| p.to.as_str())
        .collect();
    assert!(
        probes.contains(&"filter:frontend") && probes.contains(&"filter:redis"),
        "{probes:?}"
    );
    let c = compile(&d, &inputs);
    assert_truth_allowed(&c, &shop);
    let node = IpAddr::V4(shop.world.nodes[0].ip);
    let redis = IpAddr::V4(shop.world.first_ip("shop-data", "redis"));
    let tcp = ringfence_schema::net::Proto::Tcp;
    assert!(c.verdict(node, redis, tcp, Some(6379)).allowed());
}
