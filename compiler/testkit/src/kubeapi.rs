//! A Kubernetes API server for tests (a real one cannot run here): list and
//! watch of nodes, namespaces, pods and services over HTTP/1.1 on 127.0.0.1
//! (no TLS, a bearer token), as kube-runtime's watcher uses them:
//!
//! - `GET /api/v1/<resource>?limit=N[&continue=T]`: a page of the list, with
//!   the store's `resourceVersion`;
//! - `GET /api/v1/<resource>?watch=true&resourceVersion=RV&…`: a chunked
//!   stream of `{"type", "object"}` events after `RV`, one per line, ended
//!   after `timeoutSeconds`;
//! - a watch from a version older than the last [`KubeApi::expire`] gets an
//!   `ERROR` event with code 410 (`Expired`), which forces a relist, as an
//!   API server does once etcd compacted the history;
//! - [`KubeApi::drop_watches`] cuts every open watch mid-stream.
//!
//! Every object carries a `resourceVersion` from one counter, as etcd's.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A change made to the server's store.
#[derive(Clone, Debug)]
pub enum Edit {
    /// Create or replace an object (its `kind` says where it goes).
    Put(Value),
    /// Delete an object: kind (`Pod`), namespace (empty for nodes and
    /// namespaces), name.
    Delete(&'static str, String, String),
}

/// How open watches were last cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cut {
    /// The connection is dropped.
    Drop,
    /// An `ERROR` 410 event ends the stream.
    Expire,
}

#[derive(Default)]
struct State {
    rv: u64,
    /// By (resource, `namespace/name`).
    objects: BTreeMap<(String, String), Value>,
    /// (version, resource, event type, object), in version order.
    history: Vec<(u64, String, &'static str, Value)>,
    /// Watches from a version below this get 410.
    compacted: u64,
    /// Bumped when open watches are cut, and how.
    cuts: u64,
    cut: Option<Cut>,
    /// Request targets (path and query), in order.
    requests: Vec<String>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    token: String,
    stop: AtomicBool,
}

/// The server; stopped on drop.
pub struct KubeApi {
    port: u16,
    shared: Arc<Shared>,
}

fn resource_of(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Node" => "nodes",
        "Namespace" => "namespaces",
        "Pod" => "pods",
        "Service" => "services",
        _ => return None,
    })
}

fn key_of(o: &Value) -> String {
    let m = |k: &str| o["metadata"][k].as_str().unwrap_or_default().to_owned();
    format!("{}/{}", m("namespace"), m("name"))
}

impl KubeApi {
    /// Start serving on a free port; requests must carry `Bearer token`.
    pub fn start(token: &str) -> KubeApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local address").port();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                rv: 1000,
                ..State::default()
            }),
            changed: Condvar::new(),
            token: token.to_owned(),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let s = s.clone();
                thread::spawn(move || serve(stream, &s));
            }
        });
        KubeApi { port, shared }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Write a kubeconfig at `path` whose current context `test` reaches
    /// this server as cluster `cluster` with `token`.
    pub fn write_kubeconfig(&self, path: &Path, cluster: &str, token: &str) {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {cluster}\n  cluster:\n    server: {}\n\
             contexts:\n- name: test\n  context:\n    cluster: {cluster}\n    user: test\n\
             current-context: test\nusers:\n- name: test\n  user:\n    token: {token}\n",
            self.url()
        );
        std::fs::write(path, text).expect("write the kubeconfig");
    }

    /// Apply edits, each an event open watches see.
    pub fn apply(&self, edits: Vec<Edit>) {
        let mut st = self.shared.state.lock().unwrap();
        for e in edits {
            if let Some((rv, resource, kind, object)) = edit(&mut st, e) {
                st.history.push((rv, resource, kind, object));
            }
        }
        drop(st);
        self.shared.changed.notify_all();
    }

    /// Create or replace objects.
    pub fn put(&self, objects: impl IntoIterator<Item = Value>) {
        self.apply(objects.into_iter().map(Edit::Put).collect());
    }

    /// Delete one object.
    pub fn delete(&self, kind: &'static str, namespace: &str, name: &str) {
        self.apply(vec![Edit::Delete(kind, namespace.into(), name.into())]);
    }

    /// Apply edits no watch sees, and compact the history: every open watch
    /// ends with an `ERROR` 410 event, and so does every watch resumed from
    /// a version before now; only a relist shows the edits.
    pub fn expire(&self, edits: Vec<Edit>) {
        let mut st = self.shared.state.lock().unwrap();
        for e in edits {
            edit(&mut st, e);
        }
        st.rv += 1;
        st.compacted = st.rv;
        st.history.clear();
        st.cuts += 1;
        st.cut = Some(Cut::Expire);
        drop(st);
        self.shared.changed.notify_all();
    }

    /// Cut every open watch mid-stream (the connection closes without the
    /// stream's end); the history is kept, so a watch resumes where it was.
    pub fn drop_watches(&self) {
        let mut st = self.shared.state.lock().unwrap();
        st.cuts += 1;
        st.cut = Some(Cut::Drop);
        drop(st);
        self.shared.changed.notify_all();
    }

    /// Every request target (path and query) so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.shared.state.lock().unwrap().requests.clone()
    }

    /// How many lists of `resource` started (first pages).
    pub fn lists(&self, resource: &str) -> usize {
        let path = format!("/api/v1/{resource}?");
        self.requests()
            .iter()
            .filter(|r| r.starts_with(&path) && !r.contains("watch=") && !r.contains("continue="))
            .count()
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Apply one edit to the store: the event it makes, if it changed anything.
fn edit(st: &mut State, e: Edit) -> Option<(u64, String, &'static str, Value)> {
    match e {
        Edit::Put(mut o) => {
            let kind = o["kind"].as_str().unwrap_or_default().to_owned();
            let resource = resource_of(&kind).expect("a Node, Namespace, Pod or Service");
            st.rv += 1;
            let key = key_of(&o);
            o["apiVersion"] = "v1".into();
            o["metadata"]["resourceVersion"] = st.rv.to_string().into();
            if o["metadata"]["uid"].is_null() {
                o["metadata"]["uid"] = format!("uid-{}-{key}", st.rv).into();
            }
            let old = st.objects.insert((resource.to_owned(), key), o.clone());
            let kind = if old.is_some() { "MODIFIED" } else { "ADDED" };
            Some((st.rv, resource.to_owned(), kind, o))
        }
        Edit::Delete(kind, namespace, name) => {
            let resource = resource_of(kind).expect("a Node, Namespace, Pod or Service");
            let mut o = st
                .objects
                .remove(&(resource.to_owned(), format!("{namespace}/{name}")))?;
            st.rv += 1;
            o["metadata"]["resourceVersion"] = st.rv.to_string().into();
            Some((st.rv, resource.to_owned(), "DELETED", o))
        }
    }
}

/// A Kubernetes `Status` object.
fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    })
}

/// What a test server needs of an HTTP/1.1 request (GETs, no body).
#[derive(Clone, Debug)]
pub struct RequestHead {
    /// The request target (path and query).
    pub target: String,
    /// The `Authorization` header's value.
    pub authorization: Option<String>,
}

/// Read one request's line and headers; `None` once the connection closes.
pub fn read_request(reader: &mut impl BufRead) -> Option<RequestHead> {
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return None;
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut authorization = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':')
            && n.eq_ignore_ascii_case("authorization")
        {
            authorization = Some(v.trim().to_owned());
        }
    }
    Some(RequestHead {
        target,
        authorization,
    })
}

/// Serve keep-alive GETs on one connection until it closes.
fn serve(stream: TcpStream, s: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(read) = stream.try_clone() else { return };
    let mut reader = BufReader::new(read);
    let mut w = stream;
    while let Some(RequestHead {
        target,
        authorization: auth,
    }) = read_request(&mut reader)
    {
        // A watch is cut by every cut after its request is logged, even one
        // that comes before it is served (`cuts` is read under the same lock).
        let cuts = {
            let mut st = s.state.lock().unwrap();
            st.requests.push(target.clone());
            st.cuts
        };
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let query: BTreeMap<&str, &str> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .collect();
        let ok = if auth.as_deref() != Some(&format!("Bearer {}", s.token)) {
            reply(&mut w, 401, &status(401, "Unauthorized", "Unauthorized"))
        } else {
            match path.strip_prefix("/api/v1/") {
                Some(r) if resource_of_path(r) => {
                    if matches!(query.get("watch"), Some(&"true" | &"1")) {
                        watch(&mut w, s, r, &query, cuts)
                    } else {
                        list(&mut w, s, r, &query)
                    }
                }
                _ => reply(
                    &mut w,
                    404,
                    &status(
                        404,
                        "NotFound",
                        "the server could not find the requested resource",
                    ),
                ),
            }
        };
        if !ok {
            let _ = w.shutdown(Shutdown::Both);
            return;
        }
    }
}

fn resource_of_path(r: &str) -> bool {
    matches!(r, "nodes" | "namespaces" | "pods" | "services")
}

fn reply(w: &mut TcpStream, code: u16, body: &Value) -> bool {
    let body = body.to_string();
    let reason = match code {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    w.write_all(head.as_bytes())
        .and_then(|()| w.write_all(body.as_bytes()))
        .and_then(|()| w.flush())
        .is_ok()
}

/// Query parameter `key` as a number, if it is one.
fn number<T: std::str::FromStr>(query: &BTreeMap<&str, &str>, key: &str) -> Option<T> {
    query.get(key).and_then(|v| v.parse().ok())
}

/// A page of a list: `continue` is the offset of the next item.
fn list(w: &mut TcpStream, s: &Shared, resource: &str, query: &BTreeMap<&str, &str>) -> bool {
    let limit = number(query, "limit")
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let from = number(query, "continue").unwrap_or(0);
    let st = s.state.lock().unwrap();
    let all: Vec<&Value> = st
        .objects
        .iter()
        .filter(|((r, _), _)| r == resource)
        .map(|(_, o)| o)
        .collect();
    let page: Vec<&Value> = all.iter().skip(from).take(limit).copied().collect();
    let next = from.saturating_add(limit);
    let cont = if next < all.len() {
        next.to_string()
    } else {
        String::new()
    };
    let kind = match resource {
        "nodes" => "NodeList",
        "namespaces" => "NamespaceList",
        "pods" => "PodList",
        _ => "ServiceList",
    };
    let body = json!({
        "apiVersion": "v1", "kind": kind,
        "metadata": {"resourceVersion": st.rv.to_string(), "continue": cont},
        "items": page,
    });
    drop(st);
    reply(w, 200, &body)
}

fn chunk(w: &mut TcpStream, data: &str) -> bool {
    write!(w, "{:x}\r\n{data}\r\n", data.len())
        .and_then(|()| w.flush())
        .is_ok()
}

/// A watch: events after `resourceVersion`, as they come, until
/// `timeoutSeconds`, a cut after the `cuts`-th, or the server stops.
/// `false`: the connection must close.
fn watch(
    w: &mut TcpStream,
    s: &Shared,
    resource: &str,
    query: &BTreeMap<&str, &str>,
    cuts: u64,
) -> bool {
    let timeout = number(query, "timeoutSeconds").unwrap_or(290);
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let head =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    if w.write_all(head.as_bytes()).is_err() {
        return false;
    }
    let gone = || {
        json!({"type": "ERROR", "object": status(410, "Expired", "too old resource version")})
            .to_string()
            + "\n"
    };
    let mut st = s.state.lock().unwrap();
    let mut at = match number(query, "resourceVersion") {
        Some(v) if v > 0 => v,
        _ => st.rv,
    };
    if at < st.compacted {
        drop(st);
        return chunk(w, &gone()) && w.write_all(b"0\r\n\r\n").is_ok();
    }
    loop {
        if st.cuts != cuts {
            let cut = st.cut;
            drop(st);
            return match cut {
                Some(Cut::Expire) => chunk(w, &gone()) && w.write_all(b"0\r\n\r\n").is_ok(),
                _ => false,
            };
        }
        let start = st.history.partition_point(|(v, ..)| *v <= at);
        let events: Vec<String> = st.history[start..]
            .iter()
            .filter(|(_, r, ..)| r == resource)
            .map(|(_, _, t, o)| json!({"type": t, "object": o}).to_string() + "\n")
            .collect();
        at = at.max(st.history.last().map_or(at, |(v, ..)| *v));
        if !events.is_empty() {
            drop(st);
            for e in &events {
                if !chunk(w, e) {
                    return false;
                }
            }
            st = s.state.lock().unwrap();
            continue;
        }
        if s.stop.load(Ordering::SeqCst) {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            drop(st);
            return w.write_all(b"0\r\n\r\n").and_then(|()| w.flush()).is_ok();
        }
        let wait = (deadline - now).min(Duration::from_millis(200));
        st = s.changed.wait_timeout(st, wait).unwrap().0;
    }
}
