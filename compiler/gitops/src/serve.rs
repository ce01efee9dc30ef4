//! `watch --serve`: the publication, read-only, over HTTP/1.1 (std only).
//!
//! ```text
//! GET /<node>.bundle                        OUT/current/<node>.bundle
//! GET /index.json                           OUT/current/index.json
//! GET /membership/<node>/head               OUT/membership/<node>/head
//! GET /membership/<node>/head?after=S&wait=W  the same, held until head > S (W ≤ 30 s)
//! GET /membership/<node>/snapshot           OUT/membership/<node>/snapshot
//! GET /membership/<node>/<seq>.delta        OUT/membership/<node>/<seq>.delta
//! GET /membership/<node>/next?after=S&wait=W  delta S+1 once head > S (W ≤ 30 s)
//! ```
//!
//! `next` is a follower's one round trip per change: held as `head` is, it
//! answers with the next delta itself and the head in `Ringfence-Head`, or
//! with an empty body and the head when the wait ends first; `404` when
//! that delta is not there (a new chain began: fetch `snapshot`). The
//! delta is the same file as `<seq>.delta`, verified the same way.
//!
//! A request path is parsed into one of these shapes, the node checked
//! against the nodes `watch` published (the [`Board`]) and the sequence
//! parsed as a number; the file name is then built from those values, never
//! from the URL, so nothing outside them is reachable. Anything else is 404.
//!
//! Documents are read from `OUT` at each request, not kept in memory: what
//! an HTTP agent gets is byte for byte what a file-synced agent reads, a
//! restarted `watch` serves what it published before, and the process does
//! not hold a copy of every bundle (the page cache does): a document is
//! streamed from its open file, never read whole. Every document
//! has an ETag (its SHA-256, cached by file identity, so a `304` reads
//! nothing); `If-None-Match` answers `304`.
//!
//! `watch` tells the board when a node's head moves, after the documents are
//! in place, so a long poll wakes at once. Bounds: request head size and
//! header count ([`Limits`]), a thread per connection up to a cap (beyond
//! it `503`), read, idle and write timeouts. No request bodies.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::live::{HEAD_FILE, MEMBERSHIP, SNAPSHOT_FILE, delta_file};
use crate::publish::CURRENT;

/// How much a client may ask of the server.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections served at once (each has a thread); beyond it `503`.
    pub connections: usize,
    /// Bytes of a request line and its headers.
    pub head_bytes: usize,
    /// Headers in a request.
    pub headers: usize,
    /// Time to send a request's head once it has begun.
    pub request_timeout: Duration,
    /// Time a kept-alive connection may stay silent between requests.
    pub idle_timeout: Duration,
    /// Time to take a response.
    pub write_timeout: Duration,
    /// The longest long poll (`wait` is capped to it).
    pub max_wait: Duration,
    /// The largest document served.
    pub max_document: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: 4096,
            head_bytes: 8192,
            headers: 64,
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            write_timeout: Duration::from_secs(30),
            max_wait: Duration::from_secs(30),
            max_document: 64 << 20,
        }
    }
}

/// What `watch` has published, as the server needs it: the nodes of the
/// current generation and each node's membership head, with a wake-up per
/// node for long polls.
#[derive(Default)]
pub struct Board {
    state: Mutex<BoardState>,
}

#[derive(Default)]
struct BoardState {
    nodes: HashSet<String>,
    heads: HashMap<String, Head>,
}

#[derive(Default)]
struct Head {
    sequence: u64,
    moved: Arc<Condvar>,
}

impl Board {
    fn lock(&self) -> MutexGuard<'_, BoardState> {
        // A panicked holder leaves plain data behind: keep serving it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The nodes of the generation now current.
    pub fn set_nodes(&self, nodes: impl IntoIterator<Item = String>) {
        self.lock().nodes = nodes.into_iter().collect();
    }

    /// Node `node`'s membership head is now `sequence` (its documents are in
    /// place): wake its long polls.
    pub fn set_head(&self, node: &str, sequence: u64) {
        let mut st = self.lock();
        let head = st.heads.entry(node.to_string()).or_default();
        head.sequence = sequence;
        head.moved.notify_all();
    }

    /// Whether `node` is a published node.
    pub fn is_node(&self, node: &str) -> bool {
        self.lock().nodes.contains(node)
    }

    /// Node `node`'s head once it is above `after`, or at `until`.
    pub fn wait_head(&self, node: &str, after: u64, until: Instant) -> u64 {
        let mut st = self.lock();
        loop {
            let head = st.heads.entry(node.to_string()).or_default();
            let now = Instant::now();
            if head.sequence > after || now >= until {
                return head.sequence;
            }
            let moved = head.moved.clone();
            st = moved
                .wait_timeout(st, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// A running server; dropping it stops accepting (requests in progress end
/// on their own).
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

/// What every connection shares.
struct Shared {
    out: PathBuf,
    board: Arc<Board>,
    limits: Limits,
    active: AtomicUsize,
    /// ETags by file identity (device, inode, size, mtime).
    etags: Mutex<HashMap<FileId, String>>,
}

/// A file's identity: device, inode, size, modification time.
type FileId = (u64, u64, u64, i64, i64);

/// ETags remembered at most (the cache is emptied beyond it).
const ETAG_CACHE: usize = 16_384;
/// A connection thread's stack: parsing and copying only.
const STACK: usize = 256 << 10;

impl Server {
    /// Serve the publication in `out` on `addr`.
    pub fn start(addr: &str, out: &Path, board: Arc<Board>, limits: Limits) -> io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            out: out.to_path_buf(),
            board,
            limits,
            active: AtomicUsize::new(0),
            etags: Mutex::new(HashMap::new()),
        });
        let stopped = stop.clone();
        std::thread::Builder::new()
            .name("serve".into())
            .spawn(move || accept(listener, shared, stopped))?;
        Ok(Server { addr, stop })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// Counts a connection while it lives.
struct Active(Arc<Shared>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

fn accept(listener: TcpListener, shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(shared.limits.write_timeout));
        if shared.active.fetch_add(1, Ordering::SeqCst) >= shared.limits.connections {
            shared.active.fetch_sub(1, Ordering::SeqCst);
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = Response::text(503, "too many connections; retry\n")
                .close()
                .send(&stream, false);
            continue;
        }
        let guard = Active(shared.clone());
        let spawned = std::thread::Builder::new()
            .stack_size(STACK)
            .spawn(move || {
                let _ = connection(&stream, &guard.0);
            });
        // Without a thread the connection is dropped (and uncounted).
        drop(spawned);
    }
}

/// Reads from the stream with a deadline for every read.
struct Deadline<'a> {
    stream: &'a TcpStream,
    until: Instant,
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        (&*self.stream).read(buf)
    }
}

/// A parsed request head.
#[derive(Debug)]
struct Request {
    head_only: bool,
    path: String,
    query: Option<String>,
    if_none_match: Option<String>,
    keep_alive: bool,
}

/// Serve requests on one connection until it closes, idles out or errs.
fn connection(stream: &TcpStream, shared: &Shared) -> io::Result<()> {
    let limits = &shared.limits;
    let mut reader = BufReader::new(Deadline {
        stream,
        until: Instant::now() + limits.idle_timeout,
    });
    loop {
        reader.get_mut().until = Instant::now() + limits.idle_timeout;
        match reader.fill_buf() {
            Ok([]) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(e),
        }
        reader.get_mut().until = Instant::now() + limits.request_timeout;
        let request = match read_head(&mut reader, limits) {
            Ok(r) => r,
            Err(HeadError::Io(e)) => return Err(e),
            Err(HeadError::Refused(response)) => {
                return response.close().send(stream, false);
            }
        };
        let mut response = respond(&request, shared);
        if !request.keep_alive {
            response = response.close();
        }
        response.send(stream, request.head_only)?;
        if !request.keep_alive {
            return Ok(());
        }
    }
}

enum HeadError {
    Io(io::Error),
    /// A request the server does not take: answered, then the connection closes.
    Refused(Response),
}

impl From<io::Error> for HeadError {
    fn from(e: io::Error) -> Self {
        HeadError::Io(e)
    }
}

/// One line of the head, counted against the size limit.
fn line(r: &mut impl BufRead, left: &mut usize) -> Result<String, HeadError> {
    let mut buf = Vec::new();
    let n = r.take(*left as u64 + 1).read_until(b'\n', &mut buf)?;
    if n > *left {
        return Err(HeadError::Refused(Response::text(
            431,
            "request head too large\n",
        )));
    }
    *left -= n;
    if !buf.ends_with(b"\n") {
        return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
    }
    buf.pop();
    if buf.ends_with(b"\r") {
        buf.pop();
    }
    String::from_utf8(buf).map_err(|_| bad("a request head that is not UTF-8"))
}

fn bad(why: &str) -> HeadError {
    HeadError::Refused(Response::text(400, &format!("bad request: {why}\n")))
}

fn read_head(r: &mut impl BufRead, limits: &Limits) -> Result<Request, HeadError> {
    let mut left = limits.head_bytes;
    let first = line(r, &mut left)?;
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("the request line is not `METHOD /path HTTP/1.1`"));
    };
    let keep_default = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => {
            return Err(HeadError::Refused(Response::text(
                505,
                "only HTTP/1.1 and HTTP/1.0\n",
            )));
        }
    };
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            return Err(HeadError::Refused(
                Response::text(405, "read-only: GET and HEAD only\n").header("Allow", "GET, HEAD"),
            ));
        }
    };
    if !target.starts_with('/') {
        return Err(bad("the target must be a path starting with `/`"));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };
    let mut request = Request {
        head_only,
        path,
        query,
        if_none_match: None,
        keep_alive: keep_default,
    };
    let mut count = 0;
    loop {
        let l = line(r, &mut left)?;
        if l.is_empty() {
            return Ok(request);
        }
        count += 1;
        if count > limits.headers {
            return Err(HeadError::Refused(Response::text(
                431,
                "too many request headers\n",
            )));
        }
        let Some((name, value)) = l.split_once(':') else {
            return Err(bad("a header line without `:`"));
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_!#$%&'*+.^`|~".contains(&b))
        {
            return Err(bad("a header name that is not a token"));
        }
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "if-none-match" => request.if_none_match = Some(value.to_string()),
            "connection" => {
                let v = value.to_ascii_lowercase();
                if v.split(',').any(|t| t.trim() == "close") {
                    request.keep_alive = false;
                } else if v.split(',').any(|t| t.trim() == "keep-alive") {
                    request.keep_alive = true;
                }
            }
            "content-length" if value == "0" => {}
            "content-length" | "transfer-encoding" => {
                return Err(bad("a request with a body (this server is read-only)"));
            }
            _ => {}
        }
    }
}

/// A document the server knows how to find.
#[derive(Debug, PartialEq, Eq)]
enum Doc<'a> {
    Index,
    Bundle(&'a str),
    Head(&'a str),
    Snapshot(&'a str),
    Delta(&'a str, u64),
    /// The delta after a long poll's `after`.
    Next(&'a str),
}

impl Doc<'_> {
    fn node(&self) -> Option<&str> {
        match self {
            Doc::Index => None,
            Doc::Bundle(n) | Doc::Head(n) | Doc::Snapshot(n) | Doc::Delta(n, _) | Doc::Next(n) => {
                Some(n)
            }
        }
    }

    /// Where it is in `out`; the names come from the parsed values.
    fn file(&self, out: &Path) -> PathBuf {
        match self {
            Doc::Index => out
                .join(CURRENT)
                .join(ringfence_driver::bundles::INDEX_FILE),
            Doc::Bundle(n) => out.join(CURRENT).join(format!("{n}.bundle")),
            Doc::Head(n) => out.join(MEMBERSHIP).join(n).join(HEAD_FILE),
            Doc::Snapshot(n) => out.join(MEMBERSHIP).join(n).join(SNAPSHOT_FILE),
            Doc::Delta(n, s) => out.join(MEMBERSHIP).join(n).join(delta_file(*s)),
            // Answered with the delta it names (see `respond`).
            Doc::Next(n) => out.join(MEMBERSHIP).join(n).join(HEAD_FILE),
        }
    }

    fn content_type(&self) -> &'static str {
        match self {
            Doc::Head(_) => "text/plain",
            _ => "application/json",
        }
    }
}

/// The document a path names, if any (the node is not checked here).
fn route(path: &str) -> Option<Doc<'_>> {
    let rest = path.strip_prefix('/')?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        ["index.json"] => Some(Doc::Index),
        [file] => file
            .strip_suffix(".bundle")
            .filter(|n| !n.is_empty())
            .map(Doc::Bundle),
        ["membership", node, "head"] => Some(Doc::Head(node)),
        ["membership", node, "snapshot"] => Some(Doc::Snapshot(node)),
        ["membership", node, "next"] => Some(Doc::Next(node)),
        ["membership", node, file] => {
            let seq = file.strip_suffix(".delta")?;
            let n: u64 = seq.parse().ok()?;
            // One spelling per sequence (no `+1`, no leading zeros).
            (n.to_string() == seq).then_some(Doc::Delta(node, n))
        }
        _ => None,
    }
}

/// `after` and `wait` of a long poll (`None`: answer at once).
fn long_poll(query: Option<&str>, max_wait: Duration) -> Result<Option<(u64, Instant)>, String> {
    let Some(q) = query.filter(|q| !q.is_empty()) else {
        return Ok(None);
    };
    let (mut after, mut wait) = (None, None);
    for pair in q.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let n: u64 = v
            .parse()
            .map_err(|_| format!("`{k}={v}`: a whole number is expected"))?;
        let slot = match k {
            "after" => &mut after,
            "wait" => &mut wait,
            _ => return Err(format!("unknown parameter `{k}` (after, wait)")),
        };
        if slot.replace(n).is_some() {
            return Err(format!("`{k}` given twice"));
        }
    }
    let after = after.ok_or("a long poll needs `after=SEQ`")?;
    let wait = Duration::from_secs(wait.unwrap_or(u64::MAX)).min(max_wait);
    Ok(Some((after, Instant::now() + wait)))
}

fn respond(req: &Request, shared: &Shared) -> Response {
    let Some(doc) = route(&req.path) else {
        return Response::text(404, "not found\n");
    };
    if let Some(node) = doc.node()
        && !shared.board.is_node(node)
    {
        return Response::text(404, "no such node in the current publication\n");
    }
    let query = req.query.as_deref();
    match (&doc, long_poll(query, shared.limits.max_wait)) {
        (Doc::Head(node), Ok(Some((after, until)))) => {
            shared.board.wait_head(node, after, until);
        }
        (Doc::Next(node), Ok(Some((after, until)))) => {
            let head = shared.board.wait_head(node, after, until);
            let response = match after.checked_add(1).filter(|_| head > after) {
                Some(seq) => document(&Doc::Delta(node, seq), req, shared),
                None => Response::text(200, ""),
            };
            return response.header("Ringfence-Head", &head.to_string());
        }
        (Doc::Next(_), Ok(None)) => {
            return Response::text(400, "bad request: `next` needs `after=SEQ`\n");
        }
        (_, Err(why)) => return Response::text(400, &format!("bad request: {why}\n")),
        (_, Ok(Some(_))) => {
            return Response::text(400, "bad request: only `head` and `next` take a query\n");
        }
        _ => {}
    }
    document(&doc, req, shared)
}

/// Answer `doc` from `OUT` (or `304`): the file is opened once and sent
/// from that handle (a rename over it cannot mix two documents), streamed,
/// so a thousand clients taking snapshots at once hold no copies of them.
fn document(doc: &Doc<'_>, req: &Request, shared: &Shared) -> Response {
    let path = doc.file(&shared.out);
    let opened = fs::File::open(&path).and_then(|f| f.metadata().map(|m| (f, m)));
    let (mut file, meta) = match opened {
        Ok((f, m)) if m.is_file() => (f, m),
        Ok(_) => return Response::text(404, "not found\n"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Response::text(404, "not found\n"),
        Err(_) => return Response::text(500, "cannot read the document\n"),
    };
    if meta.len() > shared.limits.max_document {
        return Response::text(500, "document too large to serve\n");
    }
    let id = (
        meta.dev(),
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
    );
    let cached = lock(&shared.etags).get(&id).cloned();
    let tag = match cached {
        Some(tag) => tag,
        None => {
            let Ok(tag) = file_digest(&mut file, meta.len()) else {
                return Response::text(500, "cannot read the document\n");
            };
            let tag = format!("\"{tag}\"");
            let mut etags = lock(&shared.etags);
            if etags.len() >= ETAG_CACHE {
                etags.clear();
            }
            etags.insert(id, tag.clone());
            tag
        }
    };
    if req
        .if_none_match
        .as_deref()
        .is_some_and(|inm| matches(inm, &tag))
    {
        return Response::not_modified(&tag);
    }
    Response {
        status: 200,
        headers: vec![
            ("Content-Type", doc.content_type().to_string()),
            ("ETag", tag),
        ],
        body: Body::File(file, meta.len()),
        close: false,
    }
}

/// The SHA-256 of the first `len` bytes of `file` (which must have them),
/// read in pieces; the file is left at its start.
fn file_digest(file: &mut fs::File, len: u64) -> io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Seek;
    let mut h = Sha256::new();
    let mut buf = vec![0; 64 << 10];
    let mut left = len;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        h.update(&buf[..n]);
        left -= n as u64;
    }
    file.seek(io::SeekFrom::Start(0))?;
    Ok(ringfence_schema::digest::hex(&h.finalize()))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether an `If-None-Match` value names `tag`.
fn matches(inm: &str, tag: &str) -> bool {
    inm.split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == tag || t == "*")
}

/// A response to send.
struct Response {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Body,
    close: bool,
}

/// A response's body.
enum Body {
    Bytes(Vec<u8>),
    /// An open document of this many bytes, sent from its start.
    File(fs::File, u64),
}

impl Body {
    fn len(&self) -> u64 {
        match self {
            Body::Bytes(b) => b.len() as u64,
            Body::File(_, n) => *n,
        }
    }
}

impl Response {
    fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            headers: vec![("Content-Type", "text/plain; charset=utf-8".into())],
            body: Body::Bytes(body.as_bytes().to_vec()),
            close: false,
        }
    }

    fn not_modified(tag: &str) -> Response {
        Response {
            status: 304,
            headers: vec![("ETag", tag.to_string())],
            body: Body::Bytes(Vec::new()),
            close: false,
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Response {
        self.headers.push((name, value.to_string()));
        self
    }

    fn close(mut self) -> Response {
        self.close = true;
        self
    }

    fn send(&self, mut stream: &TcpStream, head_only: bool) -> io::Result<()> {
        let reason = match self.status {
            200 => "OK",
            304 => "Not Modified",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            431 => "Request Header Fields Too Large",
            503 => "Service Unavailable",
            505 => "HTTP Version Not Supported",
            _ => "Internal Server Error",
        };
        let mut head = format!("HTTP/1.1 {} {reason}\r\n", self.status);
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if self.status != 304 {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        head.push_str("Cache-Control: no-cache\r\n");
        if self.status == 503 {
            head.push_str("Retry-After: 1\r\n");
        }
        if self.close {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        if !head_only && self.status != 304 {
            match &self.body {
                Body::Bytes(b) => stream.write_all(b)?,
                Body::File(f, n) => {
                    // A file that shrank under its open handle is cut short:
                    // the client sees fewer bytes than announced.
                    let sent = io::copy(&mut f.take(*n), &mut stream)?;
                    if sent < *n {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
            }
        }
        stream.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_documents_or_nothing() {
        assert_eq!(route("/index.json"), Some(Doc::Index));
        assert_eq!(route("/n1.bundle"), Some(Doc::Bundle("n1")));
        assert_eq!(route("/membership/n1/head"), Some(Doc::Head("n1")));
        assert_eq!(route("/membership/n1/snapshot"), Some(Doc::Snapshot("n1")));
        assert_eq!(route("/membership/n1/7.delta"), Some(Doc::Delta("n1", 7)));
        for p in [
            "/",
            "/.bundle",
            "/a/b.bundle",
            "/membership/n1/07.delta",
            "/membership/n1/+7.delta",
            "/membership/n1/x.delta",
            "/membership/n1/18446744073709551616.delta",
            "/membership/n1",
            "/membership/n1/head/x",
            "/current/index.json",
            "//index.json",
        ] {
            assert_eq!(route(p), None, "{p}");
        }
    }

    #[test]
    fn long_poll_queries() {
        let max = Duration::from_secs(30);
        assert_eq!(long_poll(None, max), Ok(None));
        let (after, until) = long_poll(Some("after=4&wait=999"), max).unwrap().unwrap();
        assert_eq!(after, 4);
        assert!(until <= Instant::now() + max);
        for q in [
            "wait=3",
            "after=x",
            "after=1&after=2",
            "after=1&since=2",
            "after=-1",
        ] {
            assert!(long_poll(Some(q), max).is_err(), "{q}");
        }
    }
}
