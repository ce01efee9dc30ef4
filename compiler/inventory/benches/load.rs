//! How long reading an inventory takes, on a synthetic large cluster built
//! from the example cluster's objects: `cargo bench -p ringfence-inventory`.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The example cluster scaled to `nodes` Linux nodes with `pods_per_node`
/// pods each, and one service per 10 pods.
fn synthetic(example: &Value, nodes: usize, pods_per_node: usize) -> String {
    let items = example["items"].as_array().unwrap();
    let of = |kind: &str, name: &str| {
        items
            .iter()
            .find(|i| {
                i["kind"] == kind && i["metadata"]["name"].as_str().unwrap().starts_with(name)
            })
            .unwrap()
            .clone()
    };
    let (node, pod, service) = (
        of("Node", "prod-eu1-linux-a"),
        of("Pod", "frontend-"),
        of("Service", "frontend"),
    );
    let mut out: Vec<Value> = items
        .iter()
        .filter(|i| i["kind"] == "Namespace")
        .cloned()
        .collect();
    for n in 0..nodes {
        let name = format!("node-{n:04}");
        let mut node = node.clone();
        node["metadata"]["name"] = json!(name);
        node["status"]["addresses"] = json!([
            {"type": "InternalIP", "address": format!("10.{}.{}.1", 100 + n / 256, n % 256)},
            {"type": "InternalIP", "address": format!("fd00:10::{n:x}")},
        ]);
        node["spec"]["podCIDRs"] = json!([
            format!("10.{}.{}.0/24", n / 256, n % 256),
            format!("fd00:244:{n:x}::/64")
        ]);
        out.push(node);
        for p in 0..pods_per_node {
            let mut pod = pod.clone();
            pod["metadata"]["name"] = json!(format!("app{}-7d9f8b6c5d-{n:04}{p:03}", p % 40));
            pod["metadata"]["labels"]["app"] = json!(format!("app{}", p % 40));
            pod["spec"]["nodeName"] = json!(name);
            pod["status"]["podIP"] = json!(format!("10.{}.{}.{}", n / 256, n % 256, p + 2));
            pod["status"]["podIPs"] = json!([
                {"ip": format!("10.{}.{}.{}", n / 256, n % 256, p + 2)},
                {"ip": format!("fd00:244:{n:x}::{:x}", p + 2)},
            ]);
            out.push(pod);
            if p % 10 == 0 {
                let mut svc = service.clone();
                svc["metadata"]["name"] = json!(format!("svc-{n:04}-{p:03}"));
                out.push(svc);
            }
        }
    }
    serde_json::to_string_pretty(&json!({"apiVersion": "v1", "kind": "List", "items": out}))
        .unwrap()
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies-example");
    let example_path = root.join("inventory/prod-eu1.json");
    let example: Value =
        serde_json::from_str(&std::fs::read_to_string(&example_path).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let trivy = [
        root.join("trivy/legacy-reports.json"),
        root.join("trivy/frontend.json"),
    ];

    for (nodes, per_node) in [(3, 6), (100, 50), (500, 60)] {
        let text = synthetic(&example, nodes, per_node);
        let file = dir.path().join(format!("bench-{nodes}.json"));
        std::fs::write(&file, &text).unwrap();
        let runs = if nodes > 100 { 5 } else { 11 };
        let time = |f: &dyn Fn()| {
            median(
                (0..runs)
                    .map(|_| {
                        let start = Instant::now();
                        f();
                        start.elapsed()
                    })
                    .collect(),
            )
        };
        let parse = time(&|| {
            black_box(ringfence_inventory::parse_list(&text, "bench.json").unwrap());
        });
        // For comparison: parsing the whole document into a serde_json::Value.
        let json = time(&|| {
            black_box(serde_json::from_str::<Value>(&text).unwrap());
        });
        let load = time(&|| {
            black_box(ringfence_inventory::load(std::slice::from_ref(&file), &trivy).unwrap());
        });
        let digest = time(&|| {
            black_box(ringfence_inventory::digest(std::slice::from_ref(&file)).unwrap());
        });
        println!(
            "{nodes:>4} nodes, {:>6} pods, {:>5} services, {:>6.1} MiB: parse_list {:>8.2?} (whole Value {:>8.2?})  load (+trivy) {:>8.2?}  digest {:>8.2?}  (median of {runs})",
            nodes * per_node,
            nodes * per_node.div_ceil(10),
            text.len() as f64 / (1024.0 * 1024.0),
            parse,
            json,
            load,
            digest,
        );
    }
}
