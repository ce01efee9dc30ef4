//! Fetching over HTTP from a tiny test server: ETag / If-None-Match (the
//! second fetch gets 304 and nothing is re-applied), the signed index, and
//! reports POSTed to a collector.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringfence_agent::daemon::{Options, pass};
use ringfence_agent::source::{Fetched, Source, Transport};
use ringfence_bundle::sha256_hex;

use crate::fixture::{Spec, bundle};
use crate::support::{Keys, Netns, agent, source_dir};

/// (method, path, status) of every request, and the POSTed bodies.
#[derive(Default)]
struct Log {
    requests: Vec<(String, String, u16)>,
    posts: Vec<Vec<u8>>,
}

/// Serve `dir` on 127.0.0.1 with strong ETags; accept POSTs to /reports.
fn serve(dir: PathBuf) -> (String, Arc<Mutex<Log>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Log::default()));
    let l = log.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut r = BufReader::new(conn);
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let mut parts = line.split_whitespace();
            let (method, path) = (
                parts.next().unwrap_or("").to_string(),
                parts.next().unwrap_or("").to_string(),
            );
            let (mut inm, mut len) = (None, 0usize);
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                let (k, v) = h.split_once(':').unwrap();
                match k.to_ascii_lowercase().as_str() {
                    "if-none-match" => inm = Some(v.trim().to_string()),
                    "content-length" => len = v.trim().parse().unwrap(),
                    _ => {}
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let (status, etag, out) = if method == "POST" && path == "/reports" {
                l.lock().unwrap().posts.push(body);
                (204, None, Vec::new())
            } else {
                match std::fs::read(dir.join(path.trim_start_matches('/'))) {
                    Ok(b) => {
                        let tag = format!("\"{}\"", &sha256_hex(&b)[..16]);
                        if inm.as_deref() == Some(tag.as_str()) {
                            (304, Some(tag), Vec::new())
                        } else {
                            (200, Some(tag), b)
                        }
                    }
                    Err(_) => (404, None, Vec::new()),
                }
            };
            l.lock().unwrap().requests.push((method, path, status));
            let mut c = r.into_inner();
            let _ = write!(
                c,
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
                out.len(),
                etag.map(|t| format!("ETag: {t}\r\n")).unwrap_or_default()
            );
            let _ = c.write_all(&out);
        }
    });
    (base, log)
}

#[test]
fn second_fetch_gets_304_and_does_nothing() {
    let ns = Netns::new("http");
    let keys = Keys::new();
    let spec = Spec::small(1, &[8081]);
    let www = source_dir(&keys, "www", &spec);
    let (base, log) = serve(www.clone());
    let state = keys.path("state");
    let mut a = agent(&ns, &keys, &state, false);
    let mut source = Source::parse(&base, &Transport::default(), Duration::from_secs(5));
    let opts = Options {
        interval: Duration::from_secs(1),
        membership_poll: Duration::from_millis(200),
        metrics: None,
        report_to: Some(format!("{base}/reports")),
        once: true,
        transport: Transport::default(),
    };
    pass(&mut a, &mut source, &opts, None);
    assert_eq!(a.generation(), Some(1));
    let handles = ns.sh("nft -a list table inet ringfence");
    pass(&mut a, &mut source, &opts, None);
    assert_eq!(
        ns.sh("nft -a list table inet ringfence"),
        handles,
        "nothing re-applied"
    );
    let l = log.lock().unwrap();
    let gets: Vec<(&str, u16)> = l
        .requests
        .iter()
        .filter(|r| r.0 == "GET")
        .map(|r| (r.1.as_str(), r.2))
        .collect();
    assert_eq!(
        gets,
        [
            ("/n1.bundle", 200),
            ("/index.json", 200),
            ("/n1.bundle", 304)
        ]
    );
    assert_eq!(l.posts.len(), 2, "one report per pass");
    let report: serde_json::Value = serde_json::from_slice(&l.posts[1]).unwrap();
    assert_eq!(report["status"], "in-sync");
    assert_eq!(report["applied"]["generation"], 1);
    drop(l);

    // A bundle the index does not list (another compile's) is refused.
    let next = Spec::small(2, &[8082]);
    std::fs::write(www.join("n1.bundle"), bundle(&next, &keys.key)).unwrap();
    pass(&mut a, &mut source, &opts, None);
    assert_eq!(a.generation(), Some(1));
    assert_eq!(
        a.report(std::time::SystemTime::now()).verification_failures["not-in-index"],
        1
    );
    // A missing bundle is not an error for the rules in force.
    std::fs::remove_file(www.join("n1.bundle")).unwrap();
    assert_eq!(source.fetch("n1").unwrap(), Fetched::Absent);
}
