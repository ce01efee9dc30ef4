//! The whole pipeline on a cluster made of network namespaces: the example
//! intent compiled against an inventory of this topology, one agent per node
//! enforcing its signed bundle, and real TCP/UDP probes between every pod,
//! and to and from outside hosts. What gets through must be exactly what
//! `ringfence matrix` says.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Command};

use ringfence_e2e::bin::{binary, compile, repo_root, run, start_agent, wait_applied};
use ringfence_e2e::{
    NodeSpec, OutsideSpec, PodSpec, Probe, Spec, Topology, listen, probe_all_retrying,
};
use ringfence_inventory::model::Cluster;
use ringfence_schema::net::Proto;
use serde_json::Value;

const TCP_PORTS: [u16; 15] = [
    22, 53, 443, 1234, 3550, 5050, 5432, 6379, 7070, 8080, 8443, 9090, 9100, 9153, 50051,
];
const UDP_PORTS: [u16; 3] = [53, 514, 1234];

/// Outside hosts: one address in each external of the example.
const OUTSIDE: [(&str, &str); 4] = [
    ("internet", "198.51.100.7"),
    ("ops-bastion", "192.0.2.10"),
    ("payments-api", "203.0.113.10"),
    ("siem", "198.51.100.50"),
];

/// The example inventory without its Windows node (its pods cannot run here).
fn linux_inventory(dir: &Path) -> (std::path::PathBuf, Cluster) {
    let path = repo_root().join("policies-example/inventory/prod-eu1.json");
    let mut list: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let windows: BTreeSet<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["kind"] == "Node" && o["status"]["nodeInfo"]["operatingSystem"] == "windows")
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    list["items"].as_array_mut().unwrap().retain(|o| {
        let name = o["metadata"]["name"].as_str().unwrap_or_default();
        let node = o["spec"]["nodeName"].as_str().unwrap_or_default();
        let on_windows = match o["kind"].as_str() {
            Some("Node") => windows.contains(name),
            Some("Pod") => windows.contains(node),
            _ => false,
        };
        !on_windows
    });
    let text = serde_json::to_string_pretty(&list).unwrap();
    let out = dir.join("prod-eu1.json");
    std::fs::write(&out, &text).unwrap();
    (
        out,
        ringfence_inventory::parse_list(&text, "prod-eu1.json").unwrap(),
    )
}

/// How `matrix` names a pod's group.
fn group(p: &ringfence_inventory::model::Pod) -> String {
    match &p.owner {
        Some(o) if ["Deployment", "StatefulSet", "DaemonSet", "Job"].contains(&o.kind.as_str()) => {
            format!("{}/{}[{}]", p.namespace, o.name, o.kind)
        }
        _ => format!("{}/{}[Pod]", p.namespace, p.name),
    }
}

#[test]
fn agents_enforce_exactly_the_matrix() {
    let tmp = tempfile::tempdir().unwrap();
    let (inventory, cluster) = linux_inventory(tmp.path());
    let rf = binary("ringfence");
    let intent = repo_root().join("policies-example");

    // Compile and sign the example against this inventory.
    run(Command::new(&rf)
        .arg("keygen")
        .arg("--out")
        .arg(tmp.path().join("k")));
    let out = tmp.path().join("bundles");
    compile(&intent, &inventory, &tmp.path().join("k.key"), &out);
    let matrix: Value = serde_json::from_slice(
        &run(Command::new(&rf)
            .arg("matrix")
            .arg(&intent)
            .arg("--inventory")
            .arg(&inventory)
            .args(["--format", "json"]))
        .stdout,
    )
    .unwrap();

    // The topology: every Linux node, its running pods, the outside hosts.
    let running = |p: &&ringfence_inventory::model::Pod| !p.ips.is_empty() && !p.host_network;
    let spec = Spec {
        nodes: cluster
            .nodes
            .iter()
            .map(|n| NodeSpec {
                name: n.name.clone(),
                addresses: n.addresses.clone(),
                pod_cidrs: n.pod_cidrs.iter().map(|c| c.to_string()).collect(),
                pods: cluster
                    .pods
                    .iter()
                    .filter(running)
                    .filter(|p| p.node.as_deref() == Some(n.name.as_str()))
                    .map(|p| PodSpec {
                        name: format!("{}/{}", p.namespace, p.name),
                        ips: p.ips.clone(),
                    })
                    .collect(),
            })
            .collect(),
        outside: OUTSIDE
            .iter()
            .map(|(n, ip)| OutsideSpec {
                name: n.to_string(),
                ips: vec![ip.parse().unwrap()],
            })
            .collect(),
    };
    let t = Topology::build(&spec);
    let mut ports: Vec<u16> = TCP_PORTS.iter().chain(&UDP_PORTS).copied().collect();
    ports.sort();
    ports.dedup();
    for (_, ns) in t.pod_ns.iter().chain(&t.outside_ns) {
        listen(ns, &ports);
    }

    // One agent per node.
    let key = tmp.path().join("k.pub");
    let mut agents: Vec<Child> = Vec::new();
    for n in &cluster.nodes {
        let state = tmp.path().join(format!("state-{}", n.name));
        agents.push(start_agent(&n.name, t.node(&n.name), &out, &key, &state));
        wait_applied(&state);
    }

    // Who is who: pods by group, outside hosts by external.
    let pods: Vec<(&ringfence_inventory::model::Pod, String)> = cluster
        .pods
        .iter()
        .filter(running)
        .map(|p| (p, group(p)))
        .collect();
    let v4 = |ips: &[IpAddr]| *ips.iter().find(|a| a.is_ipv4()).unwrap();
    let mut probes: Vec<Probe> = Vec::new();
    let mut keys: Vec<(String, String, Proto, u16)> = Vec::new();
    let mut add = |from_ns: &str, from: &str, to_ip: IpAddr, to: &str| {
        for (proto, list) in [(Proto::Tcp, &TCP_PORTS[..]), (Proto::Udp, &UDP_PORTS[..])] {
            for &port in list {
                probes.push(Probe {
                    from_ns: from_ns.to_string(),
                    to: to_ip,
                    proto,
                    port,
                });
                keys.push((from.to_string(), to.to_string(), proto, port));
            }
        }
    };
    for (a, ga) in &pods {
        let ns = t.pod(&format!("{}/{}", a.namespace, a.name)).to_string();
        for (b, gb) in &pods {
            if a.name != b.name {
                add(&ns, ga, v4(&b.ips), gb);
            }
        }
        for (name, ip) in OUTSIDE {
            add(&ns, ga, ip.parse().unwrap(), &format!("{name}[External]"));
        }
    }
    for (name, _) in OUTSIDE {
        let ns = t.outside(name).to_string();
        for (b, gb) in &pods {
            add(&ns, &format!("{name}[External]"), v4(&b.ips), gb);
        }
    }
    let got = probe_all_retrying(&probes);

    // Observed: a group pair passes a port when every member pair does.
    let mut observed: BTreeMap<(String, String, Proto, u16), (usize, usize)> = BTreeMap::new();
    for (k, ok) in keys.into_iter().zip(&got) {
        let e = observed.entry(k).or_default();
        e.0 += 1;
        e.1 += usize::from(*ok);
    }
    // Expected: the matrix's direct connections (entry points aside).
    let expect = |from: &str, to: &str, proto: Proto, port: u16| {
        matrix["connections"].as_array().unwrap().iter().any(|c| {
            c["from"] == from
                && c["to"] == to
                && c.get("via").is_none()
                && c["proto"] == proto.as_str()
                && c["ports"].as_array().is_some_and(|r| {
                    r.iter().any(|r| {
                        let r: ringfence_schema::net::PortRange =
                            r.as_str().unwrap().parse().unwrap();
                        r.contains(port)
                    })
                })
        })
    };
    let mut wrong = Vec::new();
    let mut allowed = 0;
    for ((from, to, proto, port), (n, ok)) in &observed {
        let all = ok == n;
        allowed += usize::from(all);
        if *ok != 0 && !all {
            wrong.push(format!(
                "{from} => {to} {proto}/{port}: {ok} of {n} member pairs got through"
            ));
        } else if all != expect(from, to, *proto, *port) {
            let say = if all {
                "got through, the matrix does not list it"
            } else {
                "was dropped, the matrix lists it"
            };
            wrong.push(format!("{from} => {to} {proto}/{port} {say}"));
        }
    }
    for mut a in agents {
        let _ = a.kill();
        let _ = a.wait();
    }
    assert!(
        allowed > 20 && allowed < observed.len() / 2,
        "{allowed} of {} group/port pairs allowed: suspicious",
        observed.len()
    );
    assert!(
        wrong.is_empty(),
        "{} differences between probes and the matrix:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
