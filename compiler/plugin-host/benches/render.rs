//! Render benchmarks (`cargo bench -p ringfence-plugin-host --bench render`):
//!
//! 1. every node of a synthetic 1,000-node cluster through the nftables
//!    plugin, in parallel (goal: under 1 s in total);
//! 2. the same renderer compiled natively vs run as a plugin, one thread,
//!    to measure what the sandbox costs;
//! 3. plugin load time, with and without the compiled-module cache.
//!
//! The cluster is generated here until the compiler's own synthetic cluster
//! generator can feed it: 30 pods per node, 100 dual-stack applications of
//! 300 pods (sets of 600 prefixes) each talking to three of twelve shared
//! services, a partner set of 2,000 prefixes every pod's ingress denies, so
//! each node has ~50 chains, ~300 rules and ~9,000 set prefixes.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use rayon::prelude::*;
use ringfence_plugin_host::{Host, Limits};
use ringfence_schema::ir::*;
use ringfence_schema::net::{AddressSet, PortRange, Proto};

const NODES: usize = 1000;
const PODS_PER_NODE: usize = 30;
const APPS: usize = 100;

fn pod_v4(node: usize, i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, (node / 256) as u8, (node % 256) as u8, (i + 2) as u8)
}

fn pod_v6(node: usize, i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0, 0, node as u16, 0, 0, 0, (i + 2) as u16)
}

/// Which application pod `i` of `node` belongs to.
fn app_of(node: usize, i: usize) -> usize {
    (node * 7 + i * 13) % APPS
}

/// Every application's pods across the cluster (~750 pods each), plus
/// external networks: the sets every node shares.
fn cluster_sets() -> Vec<AddressSet> {
    let mut members: Vec<Vec<IpNet>> = vec![Vec::new(); APPS];
    for node in 0..NODES {
        for i in 0..PODS_PER_NODE {
            let a = app_of(node, i);
            members[a].push(IpNet::from(IpAddr::V4(pod_v4(node, i))));
            members[a].push(IpNet::from(IpAddr::V6(pod_v6(node, i))));
        }
    }
    let mut sets: Vec<AddressSet> = members
        .into_iter()
        .enumerate()
        .map(|(a, nets)| AddressSet::new(format!("app{a:02}"), nets))
        .collect();
    // A partner network of 2,000 scattered /28s, and the internet.
    let partner = (0..2000u32).map(|i| {
        IpNet::from(ipnet::Ipv4Net::new(Ipv4Addr::from(0xc000_0000 + i * 64), 28).unwrap())
    });
    sets.push(AddressSet::new("partners", partner));
    sets.push(AddressSet::new(
        "internet",
        ["0.0.0.0/0", "::/0"].iter().map(|n| n.parse().unwrap()),
    ));
    sets.sort_by(|a, b| a.name.cmp(&b.name));
    sets
}

/// One node's IR: its pods, their applications' chains (each app allows a
/// few others in and out on some ports), the node itself.
fn node_ir(node: usize, sets: &[AddressSet]) -> NodeIr {
    let mut endpoints = Vec::new();
    let mut apps: Vec<usize> = Vec::new();
    for i in 0..PODS_PER_NODE {
        let a = app_of(node, i);
        apps.push(a);
        endpoints.push(Endpoint {
            name: format!("pod/ns{a:02}/app{a:02}-{node}-{i}"),
            kind: EndpointKind::Pod,
            workload: format!("ns{a:02}/app{a:02}[Deployment]"),
            local: true,
            addresses: vec![IpAddr::V4(pod_v4(node, i)), IpAddr::V6(pod_v6(node, i))],
            ports: Vec::new(),
            ingress: format!("app{a:02}_in"),
            egress: Some(format!("app{a:02}_out")),
        });
    }
    let node_addr = IpAddr::V4(Ipv4Addr::new(
        192,
        168,
        (node / 256) as u8,
        (node % 256) as u8,
    ));
    endpoints.push(Endpoint {
        name: format!("node/n{node}"),
        kind: EndpointKind::Node,
        workload: format!("node/n{node}"),
        local: true,
        addresses: vec![node_addr],
        ports: Vec::new(),
        ingress: "node_in".into(),
        egress: Some("node_out".into()),
    });
    apps.sort_unstable();
    apps.dedup();
    let mut used_sets: Vec<String> = vec!["internet".into(), "partners".into()];
    let mut chains = Vec::new();
    let mut policies = Vec::new();
    let mut rule =
        |id: String, action: Action, peer: Option<String>, proto: Proto, ports: Vec<PortRange>| {
            policies.push(PolicyInfo {
                id: format!("p/{id}"),
                name: id.clone(),
                scope: "bench".into(),
                rank: Rank::Default,
                action,
                file: "bench.kdl".into(),
                line: 1,
                column: 1,
            });
            Rule {
                policy: format!("p/{id}"),
                id,
                action,
                peer,
                proto,
                ports,
                log: false,
            }
        };
    for &a in &apps {
        let mut ins = Vec::new();
        let mut outs = Vec::new();
        ins.push(rule(
            format!("a{a}-deny-partners"),
            Action::Deny,
            Some("partners".into()),
            Proto::Any,
            vec![],
        ));
        // Every app talks to a few of twelve shared services.
        for k in 1..=3 {
            let peer = format!("app{:02}", (a * 3 + k) % 12);
            used_sets.push(peer.clone());
            let port = PortRange::single(8000 + k as u16);
            ins.push(rule(
                format!("a{a}-in-{k}"),
                Action::Allow,
                Some(peer.clone()),
                Proto::Tcp,
                vec![port],
            ));
            outs.push(rule(
                format!("a{a}-out-{k}"),
                Action::Allow,
                Some(peer),
                Proto::Tcp,
                vec![
                    port,
                    PortRange {
                        start: 9000,
                        end: 9100,
                    },
                ],
            ));
        }
        ins.push(rule(
            format!("a{a}-in-dns"),
            Action::Allow,
            None,
            Proto::Udp,
            vec![PortRange::single(53)],
        ));
        ins.push(rule(
            format!("a{a}-in-default"),
            Action::Deny,
            None,
            Proto::Any,
            vec![],
        ));
        outs.push(rule(
            format!("a{a}-out-web"),
            Action::Allow,
            Some("internet".into()),
            Proto::Tcp,
            vec![PortRange::single(443)],
        ));
        outs.push(rule(
            format!("a{a}-out-default"),
            Action::Deny,
            None,
            Proto::Any,
            vec![],
        ));
        chains.push(Chain {
            id: format!("app{a:02}_in"),
            direction: Direction::Ingress,
            mode: Mode::Enforce,
            rules: ins,
        });
        chains.push(Chain {
            id: format!("app{a:02}_out"),
            direction: Direction::Egress,
            mode: Mode::Enforce,
            rules: outs,
        });
    }
    chains.push(Chain {
        id: "node_in".into(),
        direction: Direction::Ingress,
        mode: Mode::Enforce,
        rules: vec![
            rule(
                "node-no-ssh".into(),
                Action::Deny,
                Some("internet".into()),
                Proto::Tcp,
                vec![PortRange::single(22)],
            ),
            rule("node-in".into(), Action::Allow, None, Proto::Any, vec![]),
        ],
    });
    chains.push(Chain {
        id: "node_out".into(),
        direction: Direction::Egress,
        mode: Mode::Enforce,
        rules: vec![rule(
            "node-out".into(),
            Action::Allow,
            None,
            Proto::Any,
            vec![],
        )],
    });
    used_sets.sort();
    used_sets.dedup();
    endpoints.sort_by(|a, b| a.name.cmp(&b.name));
    chains.sort_by(|a, b| a.id.cmp(&b.id));
    policies.sort_by(|a, b| a.id.cmp(&b.id));
    policies.dedup_by(|a, b| a.id == b.id);
    let ir = NodeIr {
        ir_version: IR_VERSION,
        cluster: "bench".into(),
        node: format!("n{node}"),
        os: Os::Linux,
        backend: "nftables".into(),
        addresses: vec![node_addr],
        endpoints,
        exposures: Vec::new(),
        chains,
        sets: sets
            .iter()
            .filter(|s| used_sets.binary_search(&s.name).is_ok())
            .cloned()
            .collect(),
        policies,
    };
    ir.validate().expect("bench IR is valid");
    ir
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn main() {
    let t = Instant::now();
    let sets = cluster_sets();
    let irs: Vec<NodeIr> = (0..NODES)
        .into_par_iter()
        .map(|n| node_ir(n, &sets))
        .collect();
    let prefixes: usize = irs
        .iter()
        .map(|ir| ir.sets.iter().map(|s| s.len()).sum::<usize>())
        .sum();
    let rules: usize = irs
        .iter()
        .map(|ir| ir.chains.iter().map(|c| c.rules.len()).sum::<usize>())
        .sum();
    let json: usize = irs
        .iter()
        .map(|ir| serde_json::to_vec(ir).unwrap().len())
        .sum();
    println!(
        "cluster: {NODES} nodes, {} endpoints, {} chains, {rules} rules, {prefixes} set prefixes in all IRs ({} per node), {:.1} MB of IR JSON (generated in {})",
        irs.iter().map(|ir| ir.endpoints.len()).sum::<usize>(),
        irs.iter().map(|ir| ir.chains.len()).sum::<usize>(),
        prefixes / NODES,
        json as f64 / 1e6,
        secs(t.elapsed()),
    );

    // Plugin load: compile (no cache) vs the disk cache.
    let t = Instant::now();
    let host = Host::with_cache(Limits::default(), None).unwrap();
    println!(
        "host start, both built-ins compiled by Cranelift: {}",
        secs(t.elapsed())
    );
    let cache = std::env::temp_dir().join(format!("ringfence-bench-cache-{}", std::process::id()));
    Host::with_cache(Limits::default(), Some(cache.clone())).unwrap();
    let t = Instant::now();
    Host::with_cache(Limits::default(), Some(cache.clone())).unwrap();
    println!(
        "host start from the compiled-module cache: {}",
        secs(t.elapsed())
    );
    let _ = std::fs::remove_dir_all(&cache);
    let nft = host.builtin("nftables").unwrap();

    // The fuel one node needs (binary search on the limit), against the default.
    let (mut lo, mut hi) = (0u64, Limits::default().fuel);
    while hi - lo > hi / 100 {
        let mid = lo + (hi - lo) / 2;
        let h = Host::with_cache(
            Limits {
                fuel: mid,
                ..Limits::default()
            },
            None,
        )
        .unwrap();
        if h.builtin("nftables").unwrap().render(&irs[0]).is_ok() {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    println!(
        "fuel to render one node: ~{:.2e} ({:.2} % of the default limit)",
        hi as f64,
        hi as f64 * 100.0 / Limits::default().fuel as f64
    );

    // 1. The whole cluster, in parallel, through the plugin.
    let threads = rayon::current_num_threads();
    let mut best = Duration::MAX;
    let mut out_bytes = 0;
    for _ in 0..3 {
        let t = Instant::now();
        let outs: Vec<usize> = irs
            .par_iter()
            .map(|ir| nft.render(ir).unwrap().artifacts[0].content.len())
            .collect();
        best = best.min(t.elapsed());
        out_bytes = outs.iter().sum();
    }
    println!(
        "render {NODES} nodes with the nftables plugin on {threads} threads: {} (best of 3; {:.2} ms/node; {:.1} MB of rules.nft)",
        secs(best),
        best.as_secs_f64() * 1e3 / NODES as f64,
        out_bytes as f64 / 1e6
    );

    // The same on one thread, for the parallel speed-up.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let t = Instant::now();
    pool.install(|| {
        irs.par_iter().for_each(|ir| {
            black_box(nft.render(ir).unwrap());
        })
    });
    let one = t.elapsed();
    println!(
        "render {NODES} nodes on 1 thread: {} (speed-up on {threads} threads: {:.2}x)",
        secs(one),
        one.as_secs_f64() / best.as_secs_f64()
    );

    // 2. Native vs plugin, one thread, 200 nodes.
    let sample = &irs[..200];
    let time = |f: &dyn Fn(&NodeIr)| {
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            for ir in sample {
                f(ir);
            }
            best = best.min(t.elapsed());
        }
        best
    };
    let native = time(&|ir| {
        black_box(ringfence_nftables::render(black_box(ir)));
    });
    let native_json = time(&|ir| {
        // What the plugin does, natively: IR JSON in, response JSON out.
        let input = serde_json::to_vec(ir).unwrap();
        let ir: NodeIr = serde_json::from_slice(&input).unwrap();
        ir.validate().unwrap();
        let out = ringfence_schema::plugin::RenderResponse::Ok(ringfence_nftables::render(&ir));
        let bytes = serde_json::to_vec(&out).unwrap();
        black_box(
            serde_json::from_slice::<ringfence_schema::plugin::RenderResponse>(&bytes).unwrap(),
        );
    });
    let plugin = time(&|ir| {
        black_box(nft.render(ir).unwrap());
    });
    let csv = host
        .load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../plugins/dist/example-csv.wasm"),
            None,
        )
        .unwrap();
    let parse_only = time(&|ir| {
        black_box(csv.render(ir).unwrap());
    });
    let per = |d: Duration| format!("{:.3} ms/node", d.as_secs_f64() * 1e3 / sample.len() as f64);
    println!("one thread, {} nodes:", sample.len());
    println!(
        "  native render only:                         {}",
        per(native)
    );
    println!(
        "  native render + the same JSON round trip:   {}",
        per(native_json)
    );
    println!(
        "  plugin (wasmtime, fresh instance per node): {}",
        per(plugin)
    );
    println!(
        "  example-csv plugin (parses the IR, prints only its rules): {}",
        per(parse_only)
    );
    println!(
        "  plugin / native with JSON: {:.2}x; plugin / native render only: {:.2}x",
        plugin.as_secs_f64() / native_json.as_secs_f64(),
        plugin.as_secs_f64() / native.as_secs_f64()
    );
}
