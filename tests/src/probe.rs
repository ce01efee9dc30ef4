//! Real TCP and UDP probes between namespaces.
//!
//! Listeners and probes run on threads that have entered the namespace with
//! `setns(2)` (which only moves the calling thread), so thousands of probes
//! need no process per probe.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::thread;
use std::time::Duration;

use nix::sched::{CloneFlags, setns};
use ringfence_schema::net::Proto;

/// Move the current thread into a named network namespace.
pub fn enter(ns: &str) {
    let f = File::open(format!("/run/netns/{ns}")).unwrap_or_else(|e| panic!("netns {ns}: {e}"));
    setns(f, CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("setns {ns}: {e}"));
}

/// Run `f` on a thread inside `ns` and return its result.
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_string();
    thread::spawn(move || {
        enter(&ns);
        f()
    })
    .join()
    .expect("probe thread panicked")
}

/// Listen on `ports` (TCP and UDP, IPv4 and IPv6) inside `ns`, for the life
/// of the test process: each TCP connection is answered, each UDP datagram echoed.
pub fn listen(ns: &str, ports: &[u16]) {
    {
        let ports = ports.to_vec();
        let ready: Vec<_> = ports
            .into_iter()
            .flat_map(|port| [(Proto::Tcp, port), (Proto::Udp, port)])
            .map(|(proto, port)| {
                let ns = ns.to_string();
                let (tx, rx) = std::sync::mpsc::channel();
                thread::spawn(move || {
                    enter(&ns);
                    // `[::]` takes IPv4 too (bindv6only=0), as pods' servers do.
                    let addr: SocketAddr = format!("[::]:{port}").parse().expect("listen address");
                    match proto {
                        Proto::Tcp => {
                            let l = TcpListener::bind(addr)
                                .unwrap_or_else(|e| panic!("{ns}: tcp {port}: {e}"));
                            tx.send(()).ok();
                            for mut s in l.incoming().flatten() {
                                let _ = s.write_all(b"ok");
                            }
                        }
                        _ => {
                            let s = UdpSocket::bind(addr)
                                .unwrap_or_else(|e| panic!("{ns}: udp {port}: {e}"));
                            tx.send(()).ok();
                            let mut buf = [0u8; 64];
                            while let Ok((n, from)) = s.recv_from(&mut buf) {
                                let _ = s.send_to(&buf[..n], from);
                            }
                        }
                    }
                });
                rx
            })
            .collect();
        for rx in ready {
            rx.recv().expect("listener started");
        }
    }
}

/// One connection attempt.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Probe {
    /// Namespace to send from.
    pub from_ns: String,
    /// Destination address.
    pub to: IpAddr,
    /// tcp or udp.
    pub proto: Proto,
    /// Destination port.
    pub port: u16,
}

/// Whether one probe gets through: a TCP connection that receives the
/// listener's greeting, or a UDP datagram that comes back.
pub fn attempt(to: IpAddr, proto: Proto, port: u16, timeout: Duration) -> bool {
    let addr = SocketAddr::new(to, port);
    match proto {
        Proto::Tcp => match TcpStream::connect_timeout(&addr, timeout) {
            Ok(mut s) => {
                s.set_read_timeout(Some(timeout)).ok();
                let mut buf = [0u8; 2];
                s.read_exact(&mut buf).is_ok()
            }
            Err(_) => false,
        },
        Proto::Udp => {
            let bind: SocketAddr = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
                .parse()
                .expect("bind address");
            let Ok(s) = UdpSocket::bind(bind) else {
                return false;
            };
            s.set_read_timeout(Some(timeout)).ok();
            let msg = b"ringfence-probe";
            if s.send_to(msg, addr).is_err() {
                return false;
            }
            let mut buf = [0u8; 64];
            matches!(s.recv_from(&mut buf), Ok((n, _)) if &buf[..n] == msg)
        }
        other => panic!("cannot probe {other}"),
    }
}

/// [`probe_all`] for a verdict: a probe lost to load is retried once,
/// slowly (500 ms, then 1.5 s); a drop stays a drop.
pub fn probe_all_retrying(probes: &[Probe]) -> Vec<bool> {
    let mut got = probe_all(probes, Duration::from_millis(500));
    let retry: Vec<usize> = (0..probes.len()).filter(|&i| !got[i]).collect();
    let again = probe_all(
        &retry.iter().map(|&i| probes[i].clone()).collect::<Vec<_>>(),
        Duration::from_millis(1500),
    );
    for (i, ok) in retry.into_iter().zip(again) {
        got[i] |= ok;
    }
    got
}

/// Run every probe (in parallel, grouped by source namespace) and return
/// whether each got through, in the order given.
pub fn probe_all(probes: &[Probe], timeout: Duration) -> Vec<bool> {
    probe_in_threads(probes, timeout, 24)
}

/// [`probe_all`] with a thread per probe: a round takes one `timeout`
/// however many probes are dropped (for timing how soon probes agree).
pub fn probe_each(probes: &[Probe], timeout: Duration) -> Vec<bool> {
    probe_in_threads(probes, timeout, 1)
}

fn probe_in_threads(probes: &[Probe], timeout: Duration, per_thread: usize) -> Vec<bool> {
    let mut handles = Vec::new();
    for (chunk_start, chunk) in chunks_by_source(probes, per_thread) {
        let chunk = chunk.to_vec();
        handles.push((
            chunk_start,
            thread::spawn(move || {
                enter(&chunk[0].from_ns);
                chunk
                    .iter()
                    .map(|p| attempt(p.to, p.proto, p.port, timeout))
                    .collect::<Vec<_>>()
            }),
        ));
    }
    let mut out = vec![false; probes.len()];
    for (start, h) in handles {
        for (i, ok) in h
            .join()
            .expect("probe thread panicked")
            .into_iter()
            .enumerate()
        {
            out[start + i] = ok;
        }
    }
    out
}

/// Consecutive runs of probes with the same source, cut to at most `max`.
fn chunks_by_source(probes: &[Probe], max: usize) -> Vec<(usize, &[Probe])> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < probes.len() {
        let mut end = start + 1;
        while end < probes.len()
            && end - start < max
            && probes[end].from_ns == probes[start].from_ns
        {
            end += 1;
        }
        out.push((start, &probes[start..end]));
        start = end;
    }
    out
}
