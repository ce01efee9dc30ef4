//! Prometheus metrics: the text exposition format, served by a tiny
//! std::net HTTP server on its own thread (`GET /metrics`, `GET /healthz`).
//!
//! The loop renders the page after every pass and hands it over; the server
//! only copies it out, so a slow scraper never holds up the loop. `/healthz`
//! fails once the loop has not passed for a while, which is what the
//! DaemonSet's liveness probe checks.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringfence_bundle::parse_time;
use ringfence_schema::report::{ComplianceReport, Status};

/// The exposition text of one report.
pub fn render(r: &ComplianceReport) -> String {
    let mut out = String::new();
    let node = escape(&r.node);
    let mut metric = |name: &str, kind: &str, help: &str, rows: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in rows {
            let sep = if labels.is_empty() { "" } else { "," };
            let _ = writeln!(out, "{name}{{node=\"{node}\"{sep}{labels}}} {value}");
        }
    };
    let applied = r.applied.as_ref();
    metric(
        "ringfence_agent_generation",
        "gauge",
        "Generation of the bundle in force (0: none).",
        vec![(
            String::new(),
            applied.map_or(0, |a| a.generation).to_string(),
        )],
    );
    let since = |t: &str| {
        parse_time(t)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs())
    };
    metric(
        "ringfence_agent_last_apply_timestamp_seconds",
        "gauge",
        "When the bundle in force was applied (Unix time; 0: never).",
        vec![(
            String::new(),
            applied.map_or(0, |a| since(&a.applied_at)).to_string(),
        )],
    );
    metric(
        "ringfence_agent_bundle_expiry_timestamp_seconds",
        "gauge",
        "When the bundle in force expires (Unix time; 0: no bundle).",
        vec![(
            String::new(),
            applied.map_or(0, |a| since(&a.expires_at)).to_string(),
        )],
    );
    let statuses = [
        (Status::InSync, "in-sync"),
        (Status::Drifted, "drifted"),
        (Status::NoBundle, "no-bundle"),
        (Status::Failed, "failed"),
        (Status::Expired, "expired"),
    ];
    metric(
        "ringfence_agent_status",
        "gauge",
        "1 for the node's current status.",
        statuses
            .iter()
            .map(|(s, name)| {
                (
                    format!("status=\"{name}\""),
                    u8::from(*s == r.status).to_string(),
                )
            })
            .collect(),
    );
    metric(
        "ringfence_agent_apply_failures_total",
        "counter",
        "Verified bundles that could not be put in force.",
        vec![(String::new(), r.apply_failures.to_string())],
    );
    metric(
        "ringfence_agent_verification_failures_total",
        "counter",
        "Refused bundles, by reason.",
        r.verification_failures
            .iter()
            .map(|(k, v)| (format!("reason=\"{}\"", escape(k)), v.to_string()))
            .collect(),
    );
    metric(
        "ringfence_agent_drift_items",
        "gauge",
        "Differences between the live table and the bundle in force.",
        [
            ("missing", r.drift.missing.len()),
            ("extra", r.drift.extra.len()),
            ("changed", r.drift.changed.len()),
        ]
        .iter()
        .map(|(k, n)| (format!("kind=\"{k}\""), n.to_string()))
        .collect(),
    );
    let hits = |f: fn(&ringfence_schema::report::RuleCounter) -> u64| {
        r.counters
            .iter()
            .map(|c| {
                (
                    format!(
                        "policy=\"{}\",rule=\"{}\",action=\"{}\"",
                        escape(&c.policy),
                        escape(&c.rule),
                        c.action
                    ),
                    f(c).to_string(),
                )
            })
            .collect()
    };
    metric(
        "ringfence_agent_policy_packets_total",
        "counter",
        "Packets matched per rule since the last apply.",
        hits(|c| c.packets),
    );
    metric(
        "ringfence_agent_policy_bytes_total",
        "counter",
        "Bytes matched per rule since the last apply.",
        hits(|c| c.bytes),
    );
    out
}

fn escape(s: &str) -> String {
    s.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// What the server shows: the last page and when the loop last passed.
#[derive(Debug)]
pub struct Shared {
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
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                // One scraper at a time is plenty; a stuck one times out.
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = conn.set_write_timeout(Some(Duration::from_secs(5)));
                let _ = answer(conn, &e);
            }
        })?;
    Ok((bound, exporter))
}

fn answer(conn: TcpStream, e: &Exporter) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    // Drain the headers.
    let mut h = String::new();
    while reader.read_line(&mut h)? > 2 {
        h.clear();
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/");
    let (page, beat) = {
        let s = e.shared.lock().unwrap_or_else(|p| p.into_inner());
        (s.page.clone(), s.beat)
    };
    let (status, ctype, body) = match path {
        "/metrics" => ("200 OK", "text/plain; version=0.0.4", page),
        "/healthz" if beat.elapsed() <= e.stale => ("200 OK", "text/plain", "ok\n".into()),
        "/healthz" => (
            "503 Service Unavailable",
            "text/plain",
            format!(
                "the loop has not passed for {}s\n",
                beat.elapsed().as_secs()
            ),
        ),
        _ => (
            "404 Not Found",
            "text/plain",
            "try /metrics or /healthz\n".into(),
        ),
    };
    let mut conn = reader.into_inner();
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

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
    fn exposition_has_every_family() {
        let t = render(&report());
        for line in [
            "ringfence_agent_generation{node=\"n1\"} 0",
            "ringfence_agent_status{node=\"n1\",status=\"drifted\"} 1",
            "ringfence_agent_verification_failures_total{node=\"n1\",reason=\"expired\"} 2",
            "ringfence_agent_drift_items{node=\"n1\",kind=\"missing\"} 1",
            "ringfence_agent_policy_packets_total{node=\"n1\",policy=\"shop/web\",rule=\"r1\",action=\"allow\"} 7",
            "ringfence_agent_policy_bytes_total{node=\"n1\",policy=\"shop/web\",rule=\"r1\",action=\"allow\"} 420",
            "# TYPE ringfence_agent_apply_failures_total counter",
        ] {
            assert!(t.lines().any(|l| l == line), "no `{line}` in\n{t}");
        }
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
        let (addr, e) = serve("127.0.0.1:0", Duration::from_millis(200)).unwrap();
        e.publish(render(&report()));
        let m = get(addr, "/metrics");
        assert!(m.starts_with("HTTP/1.1 200 OK") && m.contains("ringfence_agent_generation"));
        assert!(get(addr, "/healthz").starts_with("HTTP/1.1 200"));
        std::thread::sleep(Duration::from_millis(300));
        assert!(get(addr, "/healthz").starts_with("HTTP/1.1 503"));
        assert!(get(addr, "/nope").starts_with("HTTP/1.1 404"));
    }
}
