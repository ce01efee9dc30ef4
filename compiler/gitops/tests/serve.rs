//! `watch --serve` against a real watch (real repository, real nftables
//! plugin, live events) and a raw HTTP/1.1 client over TCP: documents come
//! byte-identical to OUT, ETags answer 304, a long poll (`head`, `next`)
//! wakes when a delta is published, and traversal, malformed and oversized requests are
//! refused without reading anything outside the publication.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ringfence_bundle::sha256_hex;
use ringfence_gitops::serve::{Board, Limits, Server};
use ringfence_gitops::watch::{LiveConfig, LiveSource, RepoLocation, Watcher};

use crate::watch::{Lab, events_of_lab, key, pod_event, t0};

/// A response: status, headers (lower-case names), body.
struct Got {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Send `raw` as is, read the response until the server closes.
fn raw(addr: SocketAddr, raw: &[u8]) -> Got {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
    s.write_all(raw).unwrap();
    let mut bytes = Vec::new();
    let _ = s.read_to_end(&mut bytes);
    parse(&bytes)
}

fn parse(bytes: &[u8]) -> Got {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(bytes)));
    let head = std::str::from_utf8(&bytes[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    Got {
        status,
        headers,
        body: bytes[end + 4..].to_vec(),
    }
}

fn get(addr: SocketAddr, path: &str, extra: &str) -> Got {
    raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n").as_bytes(),
    )
}

/// A live watch over the lab, published once, and a server on it.
fn served(limits: Limits) -> (Lab, Watcher, Server, std::path::PathBuf) {
    let lab = Lab::new();
    let events = lab.tmp.path().join("lab.events");
    std::fs::write(&events, events_of_lab()).unwrap();
    let mut cfg = lab.config(RepoLocation::Path(lab.bare.clone()));
    cfg.inventory = Vec::new();
    cfg.live = Some(LiveConfig {
        source: LiveSource::Events(events.clone()),
        cluster: Some("lab".into()),
        membership_keys: vec![key()],
        membership_expires: Duration::from_secs(3600),
    });
    let mut w = Watcher::open(cfg, &mut |_| {}).unwrap();
    let r = w.poll(&|| t0(), &mut |_| {}).unwrap();
    assert_eq!((r.published, r.failed), (1, 0));
    let server = Server::start("127.0.0.1:0", &lab.out(), w.board(), limits).unwrap();
    (lab, w, server, events)
}

fn read(p: impl AsRef<Path>) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

#[test]
fn served_documents_are_the_published_files_with_etags_and_long_polls_wake_on_a_delta() {
    let (lab, mut w, server, events) = served(Limits::default());
    let (addr, out) = (server.local_addr(), lab.out());
    for (path, file) in [
        ("/index.json", out.join("current/index.json")),
        ("/lab-n1.bundle", out.join("current/lab-n1.bundle")),
        (
            "/membership/lab-n1/head",
            out.join("membership/lab-n1/head"),
        ),
        (
            "/membership/lab-n1/snapshot",
            out.join("membership/lab-n1/snapshot"),
        ),
    ] {
        let g = get(addr, path, "");
        assert_eq!(g.status, 200, "{path}");
        let want = read(&file);
        assert_eq!(g.body, want, "{path} is {} byte for byte", file.display());
        let tag = format!("\"{}\"", sha256_hex(&want));
        assert_eq!(g.header("etag"), Some(tag.as_str()), "{path}");
        // The ETag sent back: 304 and no body.
        let again = get(addr, path, &format!("If-None-Match: {tag}\r\n"));
        assert_eq!((again.status, again.body.len()), (304, 0), "{path}");
        let other = get(addr, path, "If-None-Match: \"0000\"\r\n");
        assert_eq!(other.status, 200, "{path}");
    }
    assert_eq!(read(out.join("membership/lab-n1/head")), b"1\n");

    // Two requests on one kept-alive connection.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = "GET /membership/lab-n1/head HTTP/1.1\r\nHost: x\r\n\r\n";
    s.write_all(format!("{req}{req}").as_bytes()).unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while String::from_utf8_lossy(&seen)
        .matches("HTTP/1.1 200")
        .count()
        < 2
        || !seen.ends_with(b"1\n")
    {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the server closed a kept-alive connection");
        seen.extend_from_slice(&buf[..n]);
    }
    drop(s);

    // A long poll waits while nothing moves…
    let poll = std::thread::spawn(move || {
        let g = get(addr, "/membership/lab-n1/head?after=1&wait=20", "");
        (g, Instant::now())
    });
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        !poll.is_finished(),
        "the long poll answered before head moved"
    );
    // …and answers as soon as a pod event becomes lab-n1's delta 2.
    let written = publish_delta_2(&mut w, &events, &out);
    let (g, answered) = poll.join().unwrap();
    assert_eq!((g.status, g.body.as_slice()), (200, &b"2\n"[..]));
    let late = answered.saturating_duration_since(written);
    assert!(
        late < Duration::from_millis(100),
        "the long poll woke {late:?} after the delta"
    );
    let d = get(addr, "/membership/lab-n1/2.delta", "");
    assert_eq!(
        (d.status, d.body),
        (200, read(out.join("membership/lab-n1/2.delta")))
    );
    // Already above `after`: at once.
    let t = Instant::now();
    let g = get(addr, "/membership/lab-n1/head?after=1&wait=20", "");
    assert_eq!(g.body, b"2\n");
    assert!(t.elapsed() < Duration::from_secs(2));
}

/// Publish lab-n1's delta 2 (a pod added on lab-n2) and wait until it is
/// in place.
fn publish_delta_2(w: &mut Watcher, events: &Path, out: &Path) -> Instant {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(events)
        .unwrap();
    f.write_all(pod_event("ADDED", "api-2", "api", "lab-n2", "10.244.2.10").as_bytes())
        .unwrap();
    let head = out.join("membership/lab-n1/head");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        w.follow_events(&|| t0(), &mut |_| {}).unwrap();
        if read(&head) == b"2\n" {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "no delta published");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn next_is_held_until_a_delta_and_answers_with_it_and_the_head() {
    let (lab, mut w, server, events) = served(Limits::default());
    let (addr, out) = (server.local_addr(), lab.out());
    let poll = std::thread::spawn(move || {
        let g = get(addr, "/membership/lab-n1/next?after=1&wait=20", "");
        (g, Instant::now())
    });
    std::thread::sleep(Duration::from_millis(400));
    assert!(!poll.is_finished(), "`next` answered before head moved");
    let written = publish_delta_2(&mut w, &events, &out);
    let (g, answered) = poll.join().unwrap();
    let delta = read(out.join("membership/lab-n1/2.delta"));
    assert_eq!(g.status, 200);
    assert_eq!(g.body, delta, "`next` is the delta file byte for byte");
    assert_eq!(g.header("ringfence-head"), Some("2"));
    assert_eq!(
        g.header("etag"),
        Some(format!("\"{}\"", sha256_hex(&delta)).as_str())
    );
    let late = answered.saturating_duration_since(written);
    assert!(
        late < Duration::from_millis(100),
        "`next` woke {late:?} after the delta"
    );

    // Nothing newer: an empty body and the head once the wait ends.
    let t = Instant::now();
    let g = get(addr, "/membership/lab-n1/next?after=2&wait=1", "");
    assert_eq!(
        (g.status, g.body.len(), g.header("ringfence-head")),
        (200, 0, Some("2"))
    );
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    // Delta 1 was never written (sequence 1 is the snapshot): 404, head said.
    let g = get(addr, "/membership/lab-n1/next?after=0&wait=1", "");
    assert_eq!((g.status, g.header("ringfence-head")), (404, Some("2")));
    // A `next` names its `after`, on a published node only.
    for (path, status) in [
        ("/membership/lab-n1/next", 400),
        ("/membership/lab-n1/next?wait=1", 400),
        ("/membership/lab-n1/next?after=x", 400),
        ("/membership/lab-n9/next?after=1&wait=1", 404),
        (
            "/membership/lab-n1/next?after=18446744073709551615&wait=1",
            200,
        ),
    ] {
        assert_eq!(get(addr, path, "").status, status, "{path}");
    }
}

#[test]
fn traversal_malformed_and_oversized_requests_are_refused() {
    let (lab, _w, server, _) = served(Limits {
        request_timeout: Duration::from_millis(300),
        ..Limits::default()
    });
    let addr = server.local_addr();
    // Files the server must never hand out: outside OUT, and inside it.
    std::fs::write(lab.tmp.path().join("secret.bundle"), "SECRET").unwrap();
    let status = read(lab.out().join("status.json"));
    for path in [
        "/../secret.bundle",
        "/..%2fsecret.bundle",
        "/%2e%2e/secret.bundle",
        "/status.json",
        "/current/index.json",
        "/generations/1/lab-n1.bundle",
        "/membership/../../secret.bundle",
        "/membership/lab-n1/../../status.json",
        "/membership/..%2f..%2fstatus.json/head",
        "/membership/lab-n9/head",
        "/lab-n9.bundle",
        "/membership/lab-n1/99.delta",
        "/membership/lab-n1/01.delta",
        "/membership/lab-n1/.head.tmp",
        "/.lock",
        "/",
    ] {
        let g = get(addr, path, "");
        assert_eq!(g.status, 404, "{path}");
        assert!(!g.body.windows(6).any(|w| w == b"SECRET"), "{path}");
        assert_ne!(g.body, status, "{path}");
    }
    let cases: &[(&[u8], u16)] = &[
        (b"POST /index.json HTTP/1.1\r\n\r\n", 405),
        (b"DELETE /lab-n1.bundle HTTP/1.1\r\n\r\n", 405),
        (b"GET index.json HTTP/1.1\r\n\r\n", 400),
        (b"GET http://x/index.json HTTP/1.1\r\n\r\n", 400),
        (b"GET /index.json HTTP/2.0\r\n\r\n", 505),
        (b"GET  /index.json HTTP/1.1\r\n\r\n", 400),
        (b"hello\r\n\r\n", 400),
        (b"GET /index.json HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"GET /index.json HTTP/1.1\r\nbad name: x\r\n\r\n", 400),
        (
            b"GET /index.json HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            400,
        ),
        (
            b"GET /index.json HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (b"GET /index.json HTTP/1.1\r\n\xff\xfe: x\r\n\r\n", 400),
    ];
    for (req, want) in cases {
        let g = raw(addr, req);
        assert_eq!(g.status, *want, "{}", String::from_utf8_lossy(req));
        assert_eq!(g.header("connection"), Some("close"));
    }
    // Well-formed requests with a bad query: 400, the connection kept.
    for path in [
        "/membership/lab-n1/head?after=x",
        "/membership/lab-n1/head?wait=3",
        "/membership/lab-n1/head?after=1&after=2",
        "/membership/lab-n1/head?after=1&since=2",
        "/lab-n1.bundle?after=1",
    ] {
        assert_eq!(get(addr, path, "").status, 400, "{path}");
    }
    // Too many headers, or too many bytes of them.
    let many: String = (0..100).map(|i| format!("X-{i}: y\r\n")).collect();
    let g = raw(
        addr,
        format!("GET /index.json HTTP/1.1\r\n{many}\r\n").as_bytes(),
    );
    assert_eq!(g.status, 431);
    let long = "a".repeat(20_000);
    let g = raw(
        addr,
        format!("GET /index.json HTTP/1.1\r\nX: {long}\r\n\r\n").as_bytes(),
    );
    assert_eq!(g.status, 431);
    let g = raw(
        addr,
        format!("GET /{long}.bundle HTTP/1.1\r\n\r\n").as_bytes(),
    );
    assert_eq!(g.status, 431);
    // A request head that never ends is cut off at the request timeout.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /index.json HTTP/1.1\r\nX-Slow: ")
        .unwrap();
    let t = Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(
        buf.is_empty() && t.elapsed() < Duration::from_secs(3),
        "{buf:?}"
    );
    // Still serving after all that.
    assert_eq!(get(addr, "/index.json", "").status, 200);
}

#[test]
fn connections_beyond_the_cap_get_503() {
    let board = Arc::new(Board::default());
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        "127.0.0.1:0",
        tmp.path(),
        board,
        Limits {
            connections: 2,
            ..Limits::default()
        },
    )
    .unwrap();
    let addr = server.local_addr();
    let held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let g = get(addr, "/index.json", "");
    assert_eq!(g.status, 503);
    assert_eq!(g.header("retry-after"), Some("1"));
    drop(held);
    let deadline = SystemTime::now() + Duration::from_secs(5);
    loop {
        // Freed: served again (nothing is published there, so 404).
        if get(addr, "/index.json", "").status == 404 {
            break;
        }
        assert!(SystemTime::now() < deadline, "the cap was never released");
        std::thread::sleep(Duration::from_millis(50));
    }
}
