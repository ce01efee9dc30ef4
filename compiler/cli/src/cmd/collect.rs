//! `ringfence collect`: the report collector agents POST to (`--report-to
//! http://HOST:PORT/reports`). Each request body must parse as a compliance
//! report; it is kept as one file per node in `--dir`, replaced atomically by
//! the node's next report, for `ringfence report DIR` and `analyze --reports`.
//!
//! Hostile input is bounded: request heads at [`MAX_HEAD`], bodies at
//! [`MAX_BODY`], [`TIMEOUT`] per connection, at most [`MAX_NODES`] files. No
//! path is built from input: a node's file is named by the hash of its name.
//! Reports are not signed; run the collector where only agents reach it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use ringfence_schema::digest::hex;
use ringfence_schema::report::ComplianceReport;
use sha2::{Digest, Sha256};

use crate::Exit;
use crate::flags::CollectArgs;

/// Largest request line plus headers.
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// Largest report accepted.
pub(crate) const MAX_BODY: usize = 4 << 20;
/// Most distinct nodes kept.
pub(crate) const MAX_NODES: usize = 100_000;
/// Read and write timeout of one connection.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn run(args: CollectArgs) -> anyhow::Result<Exit> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("--dir {}: cannot create the directory", args.dir.display()))?;
    let listener = TcpListener::bind(&args.listen)
        .with_context(|| format!("--listen {}: cannot listen", args.listen))?;
    #[allow(clippy::print_stderr)] // the log
    {
        eprintln!(
            "collect: listening on {} for POST /reports, keeping them in {}",
            listener.local_addr()?,
            args.dir.display()
        );
    }
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let peer = stream
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        if let Err(e) = serve(stream, &args.dir) {
            // A log that cannot be written must not stop the server.
            let _ = writeln!(std::io::stderr(), "collect: {peer}: {e:#}");
        }
    }
    Ok(Exit::Clean)
}

/// One request, one response, then the connection closes.
fn serve(stream: TcpStream, dir: &Path) -> anyhow::Result<()> {
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let (status, text) = match handle(&mut reader, dir) {
        Ok(node) => ("204 No Content", format!("stored the report of {node}")),
        Err((status, why)) => (status, why),
    };
    let body = if status.starts_with("204") {
        // No content.
        String::new()
    } else {
        format!("{text}\n")
    };
    let mut w = stream;
    write!(
        w,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    if !status.starts_with('2') {
        anyhow::bail!("{status}: {text}");
    }
    Ok(())
}

type Refusal = (&'static str, String);

fn handle(reader: &mut impl BufRead, dir: &Path) -> Result<String, Refusal> {
    let bad = |s: &str| ("400 Bad Request", s.to_string());
    let (mut head, mut line) = (0usize, String::new());
    let mut request = String::new();
    let mut length: Option<usize> = None;
    loop {
        line.clear();
        let n = reader
            .take((MAX_HEAD - head + 1) as u64)
            .read_line(&mut line)
            .map_err(|e| bad(&format!("cannot read the request: {e}")))?;
        head += n;
        if n == 0 || head > MAX_HEAD {
            return Err(bad("the request head is cut short or too large"));
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if request.is_empty() {
            request = l.to_string();
            continue;
        }
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':')
            && k.trim().eq_ignore_ascii_case("content-length")
        {
            length = Some(v.trim().parse().map_err(|_| bad("bad Content-Length"))?);
        }
    }
    let mut parts = request.split(' ');
    match (parts.next(), parts.next()) {
        (Some("POST"), Some("/reports")) => {}
        (Some("GET"), Some("/healthz")) => return Err(("200 OK", "ok".into())),
        (Some(_), Some("/reports")) => return Err(("405 Method Not Allowed", "POST only".into())),
        _ => {
            return Err((
                "404 Not Found",
                "POST compliance reports to /reports".into(),
            ));
        }
    }
    let length = length.ok_or(("411 Length Required", "Content-Length is required".into()))?;
    if length > MAX_BODY {
        return Err((
            "413 Content Too Large",
            format!("a report is at most {MAX_BODY} bytes"),
        ));
    }
    let mut body = vec![0; length];
    reader
        .read_exact(&mut body)
        .map_err(|e| bad(&format!("the body is cut short: {e}")))?;
    let report: ComplianceReport = serde_json::from_slice(&body).map_err(|e| {
        (
            "422 Unprocessable Content",
            format!("not a compliance report: {e}"),
        )
    })?;
    store(dir, &report.node, &body).map_err(|e| ("507 Insufficient Storage", format!("{e:#}")))?;
    Ok(report.node)
}

/// The file a node's report is kept in: named by the hash of the node's
/// name, so no path is made from what was sent.
pub(crate) fn file_of(dir: &Path, node: &str) -> PathBuf {
    let digest = Sha256::digest(node.as_bytes());
    let hex = hex(&digest[..16]);
    dir.join(format!("node-{hex}.json"))
}

fn store(dir: &Path, node: &str, body: &[u8]) -> anyhow::Result<()> {
    let path = file_of(dir, node);
    if !path.exists() {
        let kept = std::fs::read_dir(dir)?.count();
        anyhow::ensure!(
            kept < MAX_NODES,
            "already {kept} nodes' reports: refusing more"
        );
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, body).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot rename to {}", path.display()))?;
    Ok(())
}
