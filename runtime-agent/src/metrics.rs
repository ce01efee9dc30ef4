//! Prometheus metrics and the small HTTP server that shows them.
//!
//! [`Metrics`] holds the families (`prometheus-client`, OpenMetrics text):
//! the loop updates them after every pass and publishes the encoded page;
//! the server only copies it out, so a slow scraper never holds up the loop.
//! Label values are names (node, status, reason, policy, rule), never
//! content hashes. Failure counters exist from the start at 0, one per
//! reason, so a rate over them is defined before the first failure.
//!
//! The server (`GET /metrics`, `GET /healthz`) is std-only and bounded
//! rather than a framework, since the agent must not link an async runtime:
//! at most [`MAX_CONNECTIONS`] connections at once (one more is answered
//! `503` at once), a request head of at most [`MAX_REQUEST`] bytes (`431`
//! beyond), and [`DEADLINE`] for the whole request, so an idle or slow
//! client holds one slot briefly and a liveness probe still gets through.
//! `/healthz` fails once the loop has not passed for a while.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use ringfence_bundle::{Reason, parse_time};
use ringfence_schema::report::{ComplianceReport, Status};

use crate::agent::MemberStats;
use crate::state::MemberCommit;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 8;
/// The largest request head read.
pub const MAX_REQUEST: usize = 8 << 10;
/// Time for a client to send its request head.
pub const DEADLINE: Duration = Duration::from_secs(2);

type Labels = Vec<(&'static str, String)>;

/// A duration histogram: 1 ms to ~65 s.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Every metric the agent exports.
pub struct Metrics {
    registry: Registry,
    node: String,
    generation: Family<Labels, Gauge>,
    applied_at: Family<Labels, Gauge>,
    expires_at: Family<Labels, Gauge>,
    status: Family<Labels, Gauge>,
    drift: Family<Labels, Gauge>,
    apply_failures: Family<Labels, Counter>,
    verification_failures: Family<Labels, Counter>,
    fetch_failures: Family<Labels, Counter>,
    fetch_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    verify_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    apply_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    packets: Family<Labels, Counter>,
    bytes: Family<Labels, Counter>,
    member_sequence: Family<Labels, Gauge>,
    member_issued: Family<Labels, Gauge>,
    members_applied: Family<Labels, Counter>,
    members_refused: Family<Labels, Counter>,
    member_seconds: Family<Labels, Histogram, fn() -> Histogram>,
}

const STATUSES: [(Status, &str); 5] = [
    (Status::InSync, "in-sync"),
    (Status::Drifted, "drifted"),
    (Status::NoBundle, "no-bundle"),
    (Status::Failed, "failed"),
    (Status::Expired, "expired"),
];

impl Metrics {
    /// The families of node `node`, registered, failure counters at 0.
    pub fn new(node: &str) -> Self {
        let mut registry = Registry::with_prefix("ringfence_agent");
        registry.register(
            "build",
            "The agent's version",
            Info::new(vec![
                ("version", env!("CARGO_PKG_VERSION").to_string()),
                ("node", node.to_string()),
            ]),
        );
        let mut m = Metrics {
            registry,
            node: node.to_string(),
            generation: Family::default(),
            applied_at: Family::default(),
            expires_at: Family::default(),
            status: Family::default(),
            drift: Family::default(),
            apply_failures: Family::default(),
            verification_failures: Family::default(),
            fetch_failures: Family::default(),
            fetch_seconds: Family::new_with_constructor(seconds),
            verify_seconds: Family::new_with_constructor(seconds),
            apply_seconds: Family::new_with_constructor(seconds),
            packets: Family::default(),
            bytes: Family::default(),
            member_sequence: Family::default(),
            member_issued: Family::default(),
            members_applied: Family::default(),
            members_refused: Family::default(),
            member_seconds: Family::new_with_constructor(seconds),
        };
        let r = &mut m.registry;
        r.register(
            "generation",
            "Generation of the bundle in force (0: none)",
            m.generation.clone(),
        );
        r.register(
            "last_apply_timestamp_seconds",
            "When the bundle in force was applied (Unix time; 0: never)",
            m.applied_at.clone(),
        );
        r.register(
            "bundle_expiry_timestamp_seconds",
            "When the bundle in force expires (Unix time; 0: no bundle)",
            m.expires_at.clone(),
        );
        r.register(
            "status",
            "1 for the node's current status",
            m.status.clone(),
        );
        r.register(
            "drift_items",
            "Differences between the live table and the bundle in force",
            m.drift.clone(),
        );
        r.register(
            "apply_failures",
            "Verified bundles that could not be put in force",
            m.apply_failures.clone(),
        );
        r.register(
            "verification_failures",
            "Refused bundles, by reason",
            m.verification_failures.clone(),
        );
        r.register(
            "fetch_failures",
            "Fetches of the bundle that failed (source unreachable, bad answer)",
            m.fetch_failures.clone(),
        );
        r.register(
            "fetch_duration_seconds",
            "Time to fetch the bundle and index",
            m.fetch_seconds.clone(),
        );
        r.register(
            "verify_duration_seconds",
            "Time to verify an offered bundle (and its index)",
            m.verify_seconds.clone(),
        );
        r.register(
            "apply_duration_seconds",
            "Time to stage, apply, read back, confirm and commit a bundle",
            m.apply_seconds.clone(),
        );
        r.register(
            "policy_packets",
            "Packets matched per rule since the last apply",
            m.packets.clone(),
        );
        r.register(
            "policy_bytes",
            "Bytes matched per rule since the last apply",
            m.bytes.clone(),
        );
        r.register(
            "membership_sequence",
            "Sequence of the last membership document applied for the generation in force (0: none)",
            m.member_sequence.clone(),
        );
        r.register(
            "membership_issued_timestamp_seconds",
            "When the last membership document applied was issued (Unix time; its age is time() minus this)",
            m.member_issued.clone(),
        );
        r.register(
            "membership_documents_applied",
            "Membership snapshots and deltas applied",
            m.members_applied.clone(),
        );
        r.register(
            "membership_refusals",
            "Refused membership documents, by reason",
            m.members_refused.clone(),
        );
        r.register(
            "membership_apply_duration_seconds",
            "Time from fetching a membership document to its elements being in the kernel",
            m.member_seconds.clone(),
        );
        let _ = m.members_applied.get_or_create(&m.labels(&[]));
        for reason in Reason::ALL.into_iter().filter(|r| r.of_membership()) {
            let _ = m
                .members_refused
                .get_or_create(&m.labels(&[("reason", reason.code())]));
        }
        let _ = m.apply_failures.get_or_create(&m.labels(&[]));
        let _ = m.fetch_failures.get_or_create(&m.labels(&[]));
        for reason in Reason::ALL.into_iter().filter(|r| r.of_bundles()) {
            let _ = m
                .verification_failures
                .get_or_create(&m.labels(&[("reason", reason.code())]));
        }
        m
    }

    fn labels(&self, more: &[(&'static str, &str)]) -> Labels {
        let mut l = vec![("node", self.node.clone())];
        l.extend(more.iter().map(|(k, v)| (*k, v.to_string())));
        l
    }

    /// A fetch took `took`; `ok` if it got an answer it could use.
    pub fn fetched(&self, took: Duration, ok: bool) {
        let l = self.labels(&[]);
        self.fetch_seconds
            .get_or_create(&l)
            .observe(took.as_secs_f64());
        if !ok {
            self.fetch_failures.get_or_create(&l).inc();
        }
    }

    /// An offered bundle took `took` to verify.
    pub fn verified(&self, took: Duration) {
        self.verify_seconds
            .get_or_create(&self.labels(&[]))
            .observe(took.as_secs_f64());
    }

    /// A bundle took `took` to put in force.
    pub fn applied(&self, took: Duration) {
        self.apply_seconds
            .get_or_create(&self.labels(&[]))
            .observe(took.as_secs_f64());
    }

    /// Take the state of a report.
    pub fn update(&self, r: &ComplianceReport) {
        let l = self.labels(&[]);
        let applied = r.applied.as_ref();
        let unix = |t: &str| {
            parse_time(t)
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs() as i64)
        };
        self.generation
            .get_or_create(&l)
            .set(applied.map_or(0, |a| a.generation as i64));
        self.applied_at
            .get_or_create(&l)
            .set(applied.map_or(0, |a| unix(&a.applied_at)));
        self.expires_at
            .get_or_create(&l)
            .set(applied.map_or(0, |a| unix(&a.expires_at)));
        for (s, name) in STATUSES {
            self.status
                .get_or_create(&self.labels(&[("status", name)]))
                .set(i64::from(s == r.status));
        }
        for (kind, n) in [
            ("missing", r.drift.missing.len()),
            ("extra", r.drift.extra.len()),
            ("changed", r.drift.changed.len()),
        ] {
            self.drift
                .get_or_create(&self.labels(&[("kind", kind)]))
                .set(n as i64);
        }
        set(&self.apply_failures.get_or_create(&l), r.apply_failures);
        for (reason, n) in &r.verification_failures {
            set(
                &self
                    .verification_failures
                    .get_or_create(&self.labels(&[("reason", reason)])),
                *n,
            );
        }
        // Rules come and go with bundles: the families hold this pass's.
        self.packets.clear();
        self.bytes.clear();
        for c in &r.counters {
            let action = c.action.to_string();
            let l = self.labels(&[
                ("policy", &c.policy),
                ("rule", &c.rule),
                ("action", &action),
            ]);
            set(&self.packets.get_or_create(&l), c.packets);
            set(&self.bytes.get_or_create(&l), c.bytes);
        }
    }

    /// Take the membership counts and the last latency.
    pub fn members(
        &self,
        s: &MemberStats,
        latency: Option<Duration>,
        applied: Option<&MemberCommit>,
    ) {
        let l = self.labels(&[]);
        self.member_sequence
            .get_or_create(&l)
            .set(applied.map_or(0, |m| m.sequence as i64));
        let issued = applied
            .and_then(|m| parse_time(&m.issued_at).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        self.member_issued.get_or_create(&l).set(issued);
        set(&self.members_applied.get_or_create(&l), s.applied);
        for (reason, n) in &s.refused {
            set(
                &self
                    .members_refused
                    .get_or_create(&self.labels(&[("reason", reason)])),
                *n,
            );
        }
        if let Some(d) = latency {
            self.member_seconds
                .get_or_create(&l)
                .observe(d.as_secs_f64());
        }
    }

    /// The exposition page (OpenMetrics text).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Counters read from the kernel or the report are totals, not increments.
fn set(c: &Counter, value: u64) {
    c.inner().store(value, Ordering::Relaxed);
}

/// The content type of [`Metrics::encode`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the server shows: the last page and when the loop last passed.
#[derive(Debug)]
struct Shared {
    page: String,
    beat: Instant,
}

/// A handle the loop uses to publish pages.
#[derive(Clone, Debug)]
pub struct Exporter {
    shared: Arc<Mutex<Shared>>,
    stale: Duration,
}

impl Exporter {
    /// Publish a new page; also marks the loop alive.
    pub fn publish(&self, page: String) {
        let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        s.page = page;
        s.beat = Instant::now();
    }
}

/// Serve metrics on `addr`; `/healthz` fails when no page was published for
/// `stale`. Returns the bound address (port 0 picks one) and the publisher.
pub fn serve(addr: &str, stale: Duration) -> std::io::Result<(SocketAddr, Exporter)> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    let exporter = Exporter {
        shared: Arc::new(Mutex::new(Shared {
            page: String::new(),
            beat: Instant::now(),
        })),
        stale,
    };
    let e = exporter.clone();
    let active = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for mut conn in listener.incoming().flatten() {
                if active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                    let _ = conn.set_write_timeout(Some(Duration::from_millis(100)));
                    let _ = respond(&mut conn, "503 Service Unavailable", "text/plain", "busy\n");
                    continue;
                }
                active.fetch_add(1, Ordering::SeqCst);
                let (e, slot) = (e.clone(), active.clone());
                let spawned = std::thread::Builder::new()
                    .name("metrics-conn".into())
                    .spawn(move || {
                        let _ = answer(conn, &e);
                        slot.fetch_sub(1, Ordering::SeqCst);
                    });
                if spawned.is_err() {
                    active.fetch_sub(1, Ordering::SeqCst);
                }
            }
        })?;
    Ok((bound, exporter))
}

/// Read a request head (bounded in size and time) and answer it.
fn answer(mut conn: TcpStream, e: &Exporter) -> std::io::Result<()> {
    let deadline = Instant::now() + DEADLINE;
    conn.set_write_timeout(Some(DEADLINE))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        if head.len() >= MAX_REQUEST {
            return respond(
                &mut conn,
                "431 Request Header Fields Too Large",
                "text/plain",
                "request head too large\n",
            );
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        conn.set_read_timeout(Some(left))?;
        let n = conn.read(&mut buf[..(MAX_REQUEST - head.len()).min(1024)])?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|b| *b == b' ');
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    if method != b"GET" {
        return respond(
            &mut conn,
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n",
        );
    }
    let (page, beat) = {
        let s = e.shared.lock().unwrap_or_else(|p| p.into_inner());
        match path {
            b"/metrics" => (Some(s.page.clone()), s.beat),
            _ => (None, s.beat),
        }
    };
    match (path, page) {
        (b"/metrics", Some(page)) => respond(&mut conn, "200 OK", CONTENT_TYPE, &page),
        (b"/healthz", _) if beat.elapsed() <= e.stale => {
            respond(&mut conn, "200 OK", "text/plain", "ok\n")
        }
        (b"/healthz", _) => respond(
            &mut conn,
            "503 Service Unavailable",
            "text/plain",
            &format!(
                "the loop has not passed for {}s\n",
                beat.elapsed().as_secs()
            ),
        ),
        _ => respond(
            &mut conn,
            "404 Not Found",
            "text/plain",
            "try /metrics or /healthz\n",
        ),
    }
}

fn respond(conn: &mut TcpStream, status: &str, ctype: &str, body: &str) -> std::io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringfence_schema::ir::Action;
    use ringfence_schema::report::{Drift, RuleCounter};

    fn report() -> ComplianceReport {
        ComplianceReport {
            format: 1,
            node: "n1".into(),
            generated_at: "2026-01-01T00:00:00Z".into(),
            status: Status::Drifted,
            applied: None,
            drift: Drift {
                missing: vec!["rule ing/a".into()],
                ..Default::default()
            },
            counters: vec![RuleCounter {
                rule: "r1".into(),
                policy: "shop/web".into(),
                action: Action::Allow,
                packets: 7,
                bytes: 420,
            }],
            verification_failures: [("expired".to_string(), 2)].into(),
            apply_failures: 1,
            last_error: None,
        }
    }

    #[test]
    fn exposition_has_every_family_and_zeroed_failure_counters() {
        let m = Metrics::new("n1");
        m.fetched(Duration::from_millis(3), false);
        m.verified(Duration::from_millis(2));
        m.applied(Duration::from_millis(40));
        m.update(&report());
        let t = m.encode();
        for line in [
            "ringfence_agent_build_info{version=\"0.1.0\",node=\"n1\"} 1",
            "ringfence_agent_generation{node=\"n1\"} 0",
            "ringfence_agent_status{node=\"n1\",status=\"drifted\"} 1",
            "ringfence_agent_status{node=\"n1\",status=\"in-sync\"} 0",
            "ringfence_agent_verification_failures_total{node=\"n1\",reason=\"expired\"} 2",
            "ringfence_agent_verification_failures_total{node=\"n1\",reason=\"unsafe-rules\"} 0",
            "ringfence_agent_fetch_failures_total{node=\"n1\"} 1",
            "ringfence_agent_apply_failures_total{node=\"n1\"} 1",
            "ringfence_agent_drift_items{node=\"n1\",kind=\"missing\"} 1",
            "ringfence_agent_policy_packets_total{node=\"n1\",policy=\"shop/web\",rule=\"r1\",action=\"allow\"} 7",
            "ringfence_agent_policy_bytes_total{node=\"n1\",policy=\"shop/web\",rule=\"r1\",action=\"allow\"} 420",
            "ringfence_agent_apply_duration_seconds_count{node=\"n1\"} 1",
            "ringfence_agent_fetch_duration_seconds_count{node=\"n1\"} 1",
            "ringfence_agent_verify_duration_seconds_count{node=\"n1\"} 1",
            "# TYPE ringfence_agent_apply_failures counter",
            "# EOF",
        ] {
            assert!(t.lines().any(|l| l == line), "no `{line}` in\n{t}");
        }
        // Totals are set, not added: a second pass does not double them.
        m.update(&report());
        assert!(m.encode().contains("reason=\"expired\"} 2\n"));
    }

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut c = TcpStream::connect(addr).unwrap();
        write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).unwrap();
        s
    }

    #[test]
    fn server_serves_the_page_and_health_goes_stale() {
        let (addr, e) = serve("127.0.0.1:0", Duration::from_millis(300)).unwrap();
        let metrics = Metrics::new("n1");
        metrics.update(&report());
        e.publish(metrics.encode());
        let m = get(addr, "/metrics");
        assert!(m.starts_with("HTTP/1.1 200 OK") && m.contains("ringfence_agent_generation"));
        assert!(get(addr, "/healthz").starts_with("HTTP/1.1 200"));
        std::thread::sleep(Duration::from_millis(400));
        assert!(get(addr, "/healthz").starts_with("HTTP/1.1 503"));
        assert!(get(addr, "/nope").starts_with("HTTP/1.1 404"));
    }

    /// Issue 15 §12: idle clients do not starve the probes, a huge request
    /// is cut at the cap, and connections beyond the bound get `503` at once.
    #[test]
    fn idle_clients_and_huge_requests_do_not_block_health() {
        let (addr, e) = serve("127.0.0.1:0", Duration::from_secs(60)).unwrap();
        e.publish(String::new());
        let idle: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
        for _ in 0..3 {
            let t = Instant::now();
            assert!(get(addr, "/healthz").starts_with("HTTP/1.1 200"));
            assert!(
                t.elapsed() < Duration::from_millis(900),
                "{:?}",
                t.elapsed()
            );
        }
        let mut big = TcpStream::connect(addr).unwrap();
        let _ = big.write_all(b"GET /");
        let _ = big.write_all(&vec![b'a'; 64 << 10]);
        let mut s = String::new();
        let _ = big.read_to_string(&mut s);
        assert!(s.starts_with("HTTP/1.1 431"), "{s}");
        // Fill every slot: the next connection is answered 503 right away.
        let more: Vec<TcpStream> = (0..MAX_CONNECTIONS)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        let t = Instant::now();
        let mut c = TcpStream::connect(addr).unwrap();
        let _ = write!(c, "GET /healthz HTTP/1.1\r\n\r\n");
        let mut s = String::new();
        // Answered before the request was read: `503`, or a reset.
        match c.read_to_string(&mut s) {
            Ok(_) => assert!(s.starts_with("HTTP/1.1 503"), "{s}"),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
        }
        assert!(t.elapsed() < Duration::from_millis(500));
        drop((idle, more));
        // Slots free up as idle clients hit the deadline.
        std::thread::sleep(DEADLINE + Duration::from_millis(300));
        assert!(get(addr, "/healthz").starts_with("HTTP/1.1 200"));
    }
}
