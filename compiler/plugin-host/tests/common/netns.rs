//! Network namespaces, `nft`, listeners and probes: every process the tests
//! run is started here.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Whether this machine can run the enforcement tests (root, `ip`, `nft`,
/// `python3`). CI runs as root; elsewhere the tests say why they skip.
pub fn available() -> bool {
    let ok = |cmd: &str, arg: &str| {
        Command::new(cmd)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    root && ok("nft", "--version") && ok("ip", "-V") && ok("python3", "--version")
}

/// True, after saying why on stderr, when [`available`] is not: a test that
/// needs the namespaces returns at once.
pub fn unavailable() -> bool {
    let missing = !available();
    if missing {
        eprintln!("skipped: needs root, ip, nft and python3");
    }
    missing
}

fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{}` failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ))
    }
}

fn must(args: &[&str]) -> String {
    run(args).unwrap_or_else(|e| panic!("{e}"))
}

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        static N: AtomicU32 = AtomicU32::new(0);
        // `$RINGFENCE_NETNS_PREFIX` (default `rf`) keeps parallel runs apart.
        let prefix = std::env::var("RINGFENCE_NETNS_PREFIX").unwrap_or_else(|_| "rf".into());
        let name = format!(
            "{prefix}{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        must(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn exec(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        must(&v)
    }

    pub fn try_exec(&self, args: &[&str]) -> Result<String, String> {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        run(&v)
    }

    /// `nft -f` (or `-c -f` with `check`) of `text` in this namespace.
    pub fn nft_file(&self, text: &str, check: bool) -> Result<(), String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.nft");
        std::fs::write(&path, text).unwrap();
        let p = path.to_str().unwrap();
        let args: Vec<&str> = if check {
            vec!["nft", "-c", "-f", p]
        } else {
            vec!["nft", "-f", p]
        };
        self.try_exec(&args).map(|_| ())
    }

    /// Start `python3 -c <script> <args>` in the namespace.
    pub fn spawn_python(&self, script: &str, args: &[&str]) -> Child {
        Command::new("ip")
            .args(["netns", "exec", &self.name, "python3", "-c", script])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 starts")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.name]);
    }
}

/// Check `text` with `nft -c -f` in a throwaway namespace: it must parse and
/// the kernel must accept it. Panics with nft's message otherwise.
pub fn nft_check(text: &str) {
    let ns = Netns::new("check");
    if let Err(e) = ns.nft_file(text, true) {
        panic!("nft -c rejects the output: {e}\n--- output ---\n{text}");
    }
}

/// Connect `a` (in `ns_a`) and `b` (in `ns_b`) with a veth pair.
pub fn veth(ns_a: &Netns, a: &str, ns_b: &Netns, b: &str) {
    must(&[
        "ip", "link", "add", a, "netns", &ns_a.name, "type", "veth", "peer", "name", b, "netns",
        &ns_b.name,
    ]);
    ns_a.exec(&["ip", "link", "set", a, "up"]);
    ns_b.exec(&["ip", "link", "set", b, "up"]);
}

/// Add an address without duplicate address detection (IPv6 is usable at once).
pub fn addr(ns: &Netns, dev: &str, cidr: &str) {
    if cidr.contains(':') {
        ns.exec(&["ip", "-6", "addr", "add", cidr, "dev", dev, "nodad"]);
    } else {
        ns.exec(&["ip", "addr", "add", cidr, "dev", dev]);
    }
}

/// Echoes UDP and accepts TCP on every address and port given
/// (`argv`: addresses, `--`, ports).
const LISTENER: &str = r#"
import selectors, socket, sys
sel = selectors.DefaultSelector()
sep = sys.argv.index("--")
addrs, ports = sys.argv[1:sep], [int(p) for p in sys.argv[sep + 1:]]
for addr in addrs:
  for port in ports:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, kind)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        if kind == socket.SOCK_STREAM:
            s.listen(256)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, kind)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        s = key.fileobj
        try:
            if key.data == socket.SOCK_STREAM:
                c, _ = s.accept()
                c.close()
            else:
                data, peer = s.recvfrom(2048)
                s.sendto(data, peer)
        except OSError:
            pass
"#;

/// Reads `id proto src dst port` lines, probes them all concurrently from
/// this namespace, prints `id 1|0` (reached or not).
const PROBER: &str = r#"
import socket, struct, sys, time
from concurrent.futures import ThreadPoolExecutor
TIMEOUT = float(sys.argv[1])
def checksum(b):
    if len(b) % 2:
        b += b"\0"
    n = sum(struct.unpack(f"!{len(b) // 2}H", b))
    n = (n >> 16) + (n & 0xFFFF)
    n += n >> 16
    return ~n & 0xFFFF

def echo(fam, ident, src, dst):
    """ICMP echo over a raw socket; the identifier tells concurrent probes apart."""
    ident &= 0xFFFF
    v6 = fam == socket.AF_INET6
    s = socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
    try:
        s.bind((src, 0))
        kind, reply = (128, 129) if v6 else (8, 0)
        body = struct.pack("!BBHHH", kind, 0, 0, ident, 1) + b"ringfence"
        if not v6:  # the kernel computes ICMPv6 checksums itself
            body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
        s.sendto(body, (dst, 0))
        deadline = time.monotonic() + TIMEOUT
        while (left := deadline - time.monotonic()) > 0:
            s.settimeout(left)
            data, peer = s.recvfrom(2048)
            icmp = data if v6 else data[(data[0] & 0x0F) * 4:]
            if peer[0] == dst and icmp[0] == reply and struct.unpack("!H", icmp[4:6])[0] == ident:
                return 1
        return 0
    finally:
        s.close()

def probe(line):
    pid, proto, src, dst, port = line.split()
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    try:
        if proto == "tcp":
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.settimeout(TIMEOUT)
            s.bind((src, 0))
            try:
                s.connect((dst, int(port)))
                return pid, 1
            except ConnectionRefusedError:
                return pid, 1
            finally:
                s.close()
        elif proto == "icmp":
            return pid, echo(fam, int(pid), src, dst)
        else:
            s = socket.socket(fam, socket.SOCK_DGRAM)
            s.settimeout(TIMEOUT)
            s.bind((src, 0))
            try:
                s.sendto(b"ping " + pid.encode(), (dst, int(port)))
                data, _ = s.recvfrom(2048)
                return pid, 1 if data == b"ping " + pid.encode() else 0
            except ConnectionRefusedError:
                return pid, 1  # port unreachable: the datagram got there
            finally:
                s.close()
    except (socket.timeout, TimeoutError, PermissionError):
        # PermissionError: the node's own output chain dropped the packet.
        return pid, 0
lines = [l for l in sys.stdin.read().splitlines() if l.strip()]
with ThreadPoolExecutor(max_workers=96) as ex:
    for pid, ok in ex.map(probe, lines):
        print(pid, ok)
"#;

/// A listener process, killed on drop.
pub struct Listener(Child);

impl Listener {
    pub fn start(ns: &Netns, addrs: &[std::net::IpAddr], ports: &[u16]) -> Listener {
        let args: Vec<String> = addrs
            .iter()
            .map(|a| a.to_string())
            .chain(std::iter::once("--".to_string()))
            .chain(ports.iter().map(|p| p.to_string()))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = ns.spawn_python(LISTENER, &args);
        let mut out = child.stdout.take().unwrap();
        let mut buf = [0u8; 6];
        std::io::Read::read_exact(&mut out, &mut buf).expect("listener starts");
        assert_eq!(&buf, b"ready\n");
        Listener(child)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One probe: from `src` (bound) to `dst`:`port` over tcp or udp, or an
/// ICMP echo (`icmp`, port ignored).
#[derive(Clone, Debug)]
pub struct Probe {
    pub proto: &'static str,
    pub src: std::net::IpAddr,
    pub dst: std::net::IpAddr,
    pub port: u16,
}

/// Run `probes` from `ns`; returns whether each reached its destination.
pub fn probe(ns: &Netns, probes: &[Probe]) -> Vec<bool> {
    probe_many(&[(ns, probes.to_vec())]).remove(0)
}

/// Run each namespace's probes, all namespaces at once. A probe that does
/// not get through is tried once more with a longer timeout, so a busy
/// machine cannot turn a pass into a drop (a dropped packet never turns
/// into a pass).
pub fn probe_many(batches: &[(&Netns, Vec<Probe>)]) -> Vec<Vec<bool>> {
    let run = |batches: Vec<(&Netns, Vec<Probe>)>, timeout: &str| -> Vec<Vec<bool>> {
        let children: Vec<_> = batches
            .iter()
            .map(|(ns, probes)| start(ns, probes, timeout))
            .collect();
        children
            .into_iter()
            .zip(&batches)
            .map(|(child, (_, probes))| finish(child, probes.len()))
            .collect()
    };
    let mut got = run(batches.to_vec(), "0.8");
    let again: Vec<Vec<usize>> = got
        .iter()
        .map(|g| (0..g.len()).filter(|&i| !g[i]).collect())
        .collect();
    let retry: Vec<(&Netns, Vec<Probe>)> = batches
        .iter()
        .zip(&again)
        .map(|((ns, probes), idx)| (*ns, idx.iter().map(|&i| probes[i].clone()).collect()))
        .collect();
    for ((g, idx), res) in got.iter_mut().zip(&again).zip(run(retry, "2.5")) {
        for (&i, ok) in idx.iter().zip(res) {
            g[i] = ok;
        }
    }
    got
}

fn start(ns: &Netns, probes: &[Probe], timeout: &str) -> Option<Child> {
    if probes.is_empty() {
        return None;
    }
    let mut child = ns.spawn_python(PROBER, &[timeout]);
    let mut stdin = child.stdin.take().unwrap();
    for (i, p) in probes.iter().enumerate() {
        writeln!(stdin, "{i} {} {} {} {}", p.proto, p.src, p.dst, p.port).unwrap();
    }
    Some(child)
}

fn finish(child: Option<Child>, n: usize) -> Vec<bool> {
    let Some(child) = child else {
        return Vec::new();
    };
    let out = child.wait_with_output().expect("prober runs");
    assert!(out.status.success(), "prober failed");
    let mut res = vec![None; n];
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let mut it = l.split_whitespace();
        let i: usize = it.next().unwrap().parse().unwrap();
        res[i] = Some(it.next() == Some("1"));
    }
    res.into_iter()
        .map(|r| r.expect("every probe answered"))
        .collect()
}
