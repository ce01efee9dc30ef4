//! Swap under traffic: two pods joined through a node namespace (veth
//! pairs, forwarding), continuous TCP probes while the agent moves between
//! generations that allow port A and port B in turn. Every probe's result
//! must be what some generation possibly in force during that probe says:
//! no moment with neither rule set (both closed), none with their union,
//! and the port neither allows never opens.

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ringfence_agent::agent::BundleOutcome;

use crate::fixture::{Spec, bundle};
use crate::support::{Keys, Killed, Netns, agent};

const A: u16 = 8081;
const B: u16 = 8082;
const NEITHER: u16 = 8083;

const SERVER: &str = r#"
import socket, threading
def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(64)
    while True:
        c, _ = s.accept(); c.close()
for p in (8081, 8082, 8083):
    threading.Thread(target=serve, args=(p,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"#;

const PROBER: &str = r#"
import os, socket, sys, threading, time
stop = sys.argv[1]
deadline = time.time() + 60
lock = threading.Lock()
def probe(port):
    # One thread per port: a dropped SYN (1 s timeout, generous under load)
    # does not slow down the probes of the other ports.
    while not os.path.exists(stop) and time.time() < deadline:
        s = socket.socket(); s.settimeout(1.0)
        t0 = time.time()
        try:
            s.connect(("10.251.2.2", port)); ok = 1
        except OSError:
            ok = 0
        t1 = time.time(); s.close()
        with lock:
            print(f"{t0:.6f} {t1:.6f} {port} {ok}", flush=True)
        time.sleep(0.02)
threads = [threading.Thread(target=probe, args=(p,)) for p in (8081, 8082, 8083)]
for t in threads: t.start()
for t in threads: t.join()
"#;

fn secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

#[test]
fn every_probe_during_swaps_matches_a_generation_in_force() {
    let node = Netns::new("node");
    let pa = Netns::new("pa");
    let pb = Netns::new("pb");
    let link = |pod: &Netns, dev: &str, peer: &str, pod_ip: &str, node_ip: &str| {
        node.sh(&format!(
            "ip link add {dev} type veth peer name {peer} && ip link set {peer} netns {}",
            pod.name
        ));
        node.sh(&format!(
            "ip addr add {node_ip}/24 dev {dev} && ip link set {dev} up"
        ));
        pod.sh(&format!(
            "ip addr add {pod_ip}/24 dev {peer} && ip link set {peer} up && ip route add default via {node_ip}"
        ));
    };
    link(&pa, "rfa", "eth0", "10.251.1.2", "10.251.1.1");
    link(&pb, "rfb", "eth0", "10.251.2.2", "10.251.2.1");
    node.sh("sysctl -qw net.ipv4.ip_forward=1");

    let mut server = Killed(
        Command::new("ip")
            .args(["netns", "exec", &pb.name, "python3", "-c", SERVER])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.0.stdout.as_mut().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "ready");

    let keys = Keys::new();
    let mut a = agent(&node, &keys, &keys.path("state"), false);
    // (time the swap began, time it was committed, port allowed).
    let mut timeline: Vec<(f64, f64, u16)> = Vec::new();
    let mut offer = |g: u64, port: u16| {
        let b = bundle(&Spec::small(g, &[port]), &keys.key);
        let t0 = secs(SystemTime::now());
        let out = a.offer(&b, None, SystemTime::now());
        let t1 = secs(SystemTime::now());
        assert!(matches!(out, BundleOutcome::Applied { .. }), "{out:?}");
        timeline.push((t0, t1, port));
    };
    offer(1, A);

    let stop = keys.path("stop");
    // Stops by itself after 60 s should the test fail before the stop file.
    let prober = Command::new("ip")
        .args(["netns", "exec", &pa.name, "python3", "-c", PROBER])
        .arg(&stop)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    for g in 2..=7 {
        offer(g, if g % 2 == 0 { B } else { A });
        std::thread::sleep(Duration::from_millis(1200));
    }
    std::fs::write(&stop, "").unwrap();
    let out = prober.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();

    // Which ports may be open at some instant of [s, e]: those allowed by a
    // generation whose time in force overlaps it.
    let allowed_during = |s: f64, e: f64| -> Vec<u16> {
        timeline
            .iter()
            .enumerate()
            .filter(|(i, (start, _, _))| {
                let end = timeline.get(i + 1).map_or(f64::INFINITY, |n| n.1);
                *start <= e && s <= end
            })
            .map(|(_, (_, _, p))| *p)
            .collect()
    };
    let (mut opened, mut probes) = ([0usize; 2], 0);
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (s, e): (f64, f64) = (f[0].parse().unwrap(), f[1].parse().unwrap());
        let (port, ok): (u16, bool) = (f[2].parse().unwrap(), f[3] == "1");
        probes += 1;
        let gens = allowed_during(s, e);
        if port == NEITHER {
            assert!(
                !ok,
                "port {NEITHER}, allowed by no generation, opened: {line}"
            );
        } else if ok {
            assert!(
                gens.contains(&port),
                "{line}: open, but only {gens:?} were in force"
            );
            opened[usize::from(port == B)] += 1;
        } else {
            assert!(
                gens.iter().any(|g| *g != port),
                "{line}: closed while every generation in force ({gens:?}) allows it"
            );
        }
    }
    assert!(probes > 30, "too few probes: {text}");
    assert!(
        opened[0] > 0 && opened[1] > 0,
        "both generations were seen: {opened:?}"
    );
    // The counters show the traffic on the allow and catch-all rules.
    a.check_drift(SystemTime::now());
    let r = a.report(SystemTime::now());
    assert!(r.counters.iter().any(|c| c.packets > 0), "{:?}", r.counters);
}
