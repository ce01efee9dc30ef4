//! Where bundles come from: a directory or an HTTP(S) base URL.
//!
//! Fetches `<source>/<node>.bundle` and, when present, `<source>/index.json`;
//! and the node's membership documents beside them, `<source>/membership/
//! <node>/head|snapshot|<seq>.delta` ([`MemberFile`]): their paths are made
//! only of the agent's own node name and a parsed sequence, never of
//! anything a document says.
//! Over HTTP the bundle's `ETag` is sent back as `If-None-Match`, so an
//! unchanged bundle costs a `304` and nothing else. Transport security is not
//! what makes a bundle trustworthy — its signature is — but `https://` keeps
//! the topology confidential and passes proxies and collectors that require
//! it: [`Transport`] is rustls (ring) with the system's CA bundle or a given
//! one, and optionally a client certificate. Reports go out the same way.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

/// Where the system keeps its CA bundle, first found wins (`SSL_CERT_FILE`
/// before these).
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// The largest PEM file read (a system CA bundle is ~200 KiB).
const MAX_PEM_BYTES: u64 = 4 << 20;

/// How the agent speaks HTTP(S): the TLS roots and client certificate.
#[derive(Clone, Debug)]
pub struct Transport {
    tls: TlsConfig,
}

impl Transport {
    /// Roots from `ca_bundle` (PEM) if given, else the system's CA bundle,
    /// else Mozilla's built-in roots; a client certificate (PEM chain) and
    /// its key if given.
    pub fn new(
        ca_bundle: Option<&Path>,
        client: Option<(&Path, &Path)>,
    ) -> Result<Transport, String> {
        let env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
        let system = env
            .into_iter()
            .chain(SYSTEM_CA_BUNDLES.iter().map(PathBuf::from))
            .find(|p| p.is_file());
        let roots = match ca_bundle.map(Path::to_path_buf).or(system) {
            Some(path) => {
                let certs = pem(&path)?
                    .into_iter()
                    .filter_map(|i| match i {
                        PemItem::Certificate(c) => Some(c),
                        _ => None,
                    })
                    .collect::<Vec<Certificate<'static>>>();
                if certs.is_empty() {
                    return Err(format!("{}: no PEM certificate in it", path.display()));
                }
                RootCerts::Specific(Arc::new(certs))
            }
            None => RootCerts::WebPki,
        };
        let client = match client {
            None => None,
            Some((cert, key)) => {
                let chain: Vec<Certificate<'static>> = pem(cert)?
                    .into_iter()
                    .filter_map(|i| match i {
                        PemItem::Certificate(c) => Some(c),
                        _ => None,
                    })
                    .collect();
                let key: PrivateKey<'static> = pem(key)?
                    .into_iter()
                    .find_map(|i| match i {
                        PemItem::PrivateKey(k) => Some(k),
                        _ => None,
                    })
                    .ok_or_else(|| format!("{}: no PEM private key in it", key.display()))?;
                if chain.is_empty() {
                    return Err(format!("{}: no PEM certificate in it", cert.display()));
                }
                Some(ClientCert::new_with_certs(&chain, key))
            }
        };
        Ok(Transport {
            tls: TlsConfig::builder()
                .root_certs(roots)
                .client_cert(client)
                .build(),
        })
    }

    /// An HTTP(S) client with this transport, each request bounded by
    /// `timeout`.
    pub fn agent(&self, timeout: Duration) -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(self.tls.clone())
            .timeout_global(Some(timeout))
            .build()
            .new_agent()
    }
}

impl Default for Transport {
    /// The system's (or the built-in) roots, no client certificate.
    fn default() -> Self {
        Transport::new(None, None).unwrap_or_else(|_| Transport {
            tls: TlsConfig::default(),
        })
    }
}

/// The PEM items of a file.
fn pem(path: &Path) -> Result<Vec<PemItem<'static>>, String> {
    let bytes = ringfence_bundle::read_capped(path, MAX_PEM_BYTES)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    ureq::tls::parse_pem(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Largest bundle or index accepted (a bundle for a big node is a few MiB).
pub const MAX_BYTES: u64 = 64 << 20;

/// Largest membership document accepted (the snapshot of a big node).
pub const MAX_MEMBER_BYTES: u64 = 16 << 20;
/// Largest `head` file (a decimal sequence number).
const MAX_HEAD_BYTES: u64 = 64;
/// Longest long-poll asked of an HTTP source (below the request timeout).
pub const MAX_WAIT: Duration = Duration::from_secs(20);

/// A node's membership head, and the delta after the caller's sequence
/// when it came in the same answer.
#[derive(Debug)]
pub struct Update {
    /// The node's head sequence.
    pub head: u64,
    /// `(sequence, bytes)` of the next delta (unverified), if it came along.
    pub delta: Option<(u64, Vec<u8>)>,
}

/// One of a node's membership files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberFile {
    /// `snapshot`: the newest snapshot.
    Snapshot,
    /// `<seq>.delta`.
    Delta(u64),
}

impl MemberFile {
    fn name(self) -> String {
        match self {
            MemberFile::Snapshot => "snapshot".into(),
            MemberFile::Delta(seq) => format!("{seq}.delta"),
        }
    }
}

/// `membership/<node>/<file>`, for a node name that is a plain file name.
fn member_path(node: &str, file: &str) -> Result<String, FetchError> {
    if !ringfence_bundle::valid_file_name(node) {
        return Err(FetchError {
            what: format!("membership of node `{node}`"),
            why: "the node name is not a plain file name ([a-z0-9._-])".into(),
        });
    }
    Ok(format!("membership/{node}/{file}"))
}

/// A place to fetch bundles from.
pub enum Source {
    /// A local directory (e.g. a synced volume).
    Dir(PathBuf),
    /// An HTTP base URL.
    Http {
        /// Base URL, without trailing slash.
        base: String,
        /// The HTTP client.
        agent: ureq::Agent,
        /// The ETag of the last bundle fully handled.
        etag: Option<String>,
    },
}

/// What a fetch found.
#[derive(Debug, PartialEq, Eq)]
pub enum Fetched {
    /// The server says the bundle has not changed (HTTP 304).
    NotModified,
    /// No bundle for this node (yet).
    Absent,
    /// A bundle, the index if the source has one, and the bundle's ETag.
    Bundle {
        /// The bundle file's bytes.
        bytes: Vec<u8>,
        /// `index.json`'s bytes, if present.
        index: Option<Vec<u8>>,
        /// The ETag to remember once the bundle is handled.
        etag: Option<String>,
    },
}

/// A fetch failed.
#[derive(Debug, thiserror::Error)]
#[error("fetching {what}: {why}")]
pub struct FetchError {
    /// Path or URL.
    pub what: String,
    /// Why.
    pub why: String,
}

impl Source {
    /// A directory path, or an `http://`/`https://` URL fetched with
    /// `transport`.
    pub fn parse(s: &str, transport: &Transport, timeout: Duration) -> Self {
        if s.starts_with("http://") || s.starts_with("https://") {
            let agent = transport.agent(timeout);
            Source::Http {
                base: s.trim_end_matches('/').to_string(),
                agent,
                etag: None,
            }
        } else {
            Source::Dir(PathBuf::from(s))
        }
    }

    /// Remember the ETag of a bundle that was handled (applied, refused or
    /// unchanged), so the next fetch can be answered with `304`.
    pub fn remember(&mut self, tag: Option<String>) {
        if let Source::Http { etag, .. } = self {
            *etag = tag;
        }
    }

    /// Fetch `<node>.bundle` and `index.json`.
    pub fn fetch(&self, node: &str) -> Result<Fetched, FetchError> {
        let name = format!("{node}.bundle");
        match self {
            Source::Dir(dir) => {
                // Regular files only, capped: a FIFO or `/dev/zero` is
                // refused, never waited on or read without end.
                let read = |p: PathBuf| match ringfence_bundle::read_capped(&p, MAX_BYTES + 1) {
                    Ok(b) => Ok(Some(b)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(FetchError {
                        what: p.display().to_string(),
                        why: e.to_string(),
                    }),
                };
                // Resolve the directory once (e.g. `watch`'s `current` link),
                // so the bundle and the index come from one publication even
                // if the link switches between the two reads.
                let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
                let Some(bytes) = read(dir.join(&name))? else {
                    return Ok(Fetched::Absent);
                };
                Ok(Fetched::Bundle {
                    bytes,
                    index: read(dir.join("index.json"))?,
                    etag: None,
                })
            }
            Source::Http { base, agent, etag } => {
                let url = format!("{base}/{name}");
                let (status, bytes, tag) = get(agent, &url, etag.as_deref())?;
                match status {
                    304 => return Ok(Fetched::NotModified),
                    404 => return Ok(Fetched::Absent),
                    200 => {}
                    s => {
                        return Err(FetchError {
                            what: url,
                            why: format!("HTTP status {s}"),
                        });
                    }
                }
                let iurl = format!("{base}/index.json");
                let index = match get(agent, &iurl, None)? {
                    (200, b, _) => Some(b),
                    (404, _, _) => None,
                    (s, _, _) => {
                        return Err(FetchError {
                            what: iurl,
                            why: format!("HTTP status {s}"),
                        });
                    }
                };
                Ok(Fetched::Bundle {
                    bytes,
                    index,
                    etag: tag,
                })
            }
        }
    }
}

impl Source {
    /// `head` alone: over HTTP, with `wait`, the server may hold the answer
    /// until head differs from `after` (`?wait=S&after=SEQ`); a plain
    /// server answers at once.
    fn member_head(
        &self,
        node: &str,
        after: Option<u64>,
        wait: Option<Duration>,
    ) -> Result<Option<u64>, FetchError> {
        let rel = member_path(node, "head")?;
        let bytes = match self {
            Source::Dir(dir) => read_member(dir, &rel, MAX_HEAD_BYTES)?,
            Source::Http { base, agent, .. } => {
                let mut url = format!("{base}/{rel}");
                if let Some(w) = wait {
                    let w = w.min(MAX_WAIT).as_secs().max(1);
                    url.push_str(&format!("?wait={w}&after={}", after.unwrap_or(0)));
                }
                get_member(agent, &url, MAX_HEAD_BYTES)?
            }
        };
        let Some(bytes) = bytes else { return Ok(None) };
        let text = String::from_utf8_lossy(&bytes);
        text.trim().parse().map(Some).map_err(|_| FetchError {
            what: rel,
            why: format!("`{}` is not a sequence number", text.trim().escape_debug()),
        })
    }

    /// The newest membership sequence published for `node` (`head`), or
    /// `None` if the source publishes none; with it the delta after `after`
    /// where the source can send both at once: over HTTP with a sequence and
    /// a `wait`, one long poll of `next`, held until head moves past
    /// `after`. Elsewhere (a directory, a server without `next`, a delta not
    /// there) the head alone, long-polled over HTTP with `wait`, and the
    /// caller fetches documents by name. The delta is verified as any other.
    pub fn member_update(
        &self,
        node: &str,
        after: Option<u64>,
        wait: Option<Duration>,
    ) -> Result<Option<Update>, FetchError> {
        if let (Some(a), Some(w)) = (after, wait)
            && let Some(u) = self.member_next(node, a, w)?
        {
            return Ok(Some(u));
        }
        let head = self.member_head(node, after, wait)?;
        Ok(head.map(|head| Update { head, delta: None }))
    }

    /// `GET membership/<node>/next?after=…&wait=…`, or `None` when it is not
    /// answered as such (no `Ringfence-Head`: a server without `next`).
    fn member_next(
        &self,
        node: &str,
        after: u64,
        wait: Duration,
    ) -> Result<Option<Update>, FetchError> {
        let Source::Http { base, agent, .. } = self else {
            return Ok(None);
        };
        let rel = member_path(node, "next")?;
        let w = wait.min(MAX_WAIT).as_secs().max(1);
        let url = format!("{base}/{rel}?wait={w}&after={after}");
        let fail = |why: String| FetchError {
            what: url.clone(),
            why,
        };
        let mut resp = agent.get(&url).call().map_err(|e| fail(e.to_string()))?;
        let head = resp
            .headers()
            .get("ringfence-head")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let (status, Some(head)) = (resp.status().as_u16(), head) else {
            return Ok(None);
        };
        // The delta is not there (a new chain began): the head says so.
        if status == 404 {
            return Ok(Some(Update { head, delta: None }));
        }
        if status != 200 {
            return Ok(None);
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_MEMBER_BYTES + 1)
            .read_to_vec()
            .map_err(|e| fail(e.to_string()))?;
        let delta = (!body.is_empty()).then_some((after + 1, body));
        Ok(Some(Update { head, delta }))
    }

    /// A membership document of `node`, or `None` if it is not there.
    pub fn member(&self, node: &str, file: MemberFile) -> Result<Option<Vec<u8>>, FetchError> {
        let rel = member_path(node, &file.name())?;
        match self {
            Source::Dir(dir) => read_member(dir, &rel, MAX_MEMBER_BYTES),
            Source::Http { base, agent, .. } => {
                get_member(agent, &format!("{base}/{rel}"), MAX_MEMBER_BYTES)
            }
        }
    }
}

/// A regular file under `dir`, read up to `cap` bytes (one more is read so
/// a larger file is refused as too large by verification).
fn read_member(dir: &Path, rel: &str, cap: u64) -> Result<Option<Vec<u8>>, FetchError> {
    let p = dir.join(rel);
    match ringfence_bundle::read_capped(&p, cap + 1) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(FetchError {
            what: p.display().to_string(),
            why: e.to_string(),
        }),
    }
}

fn get_member(agent: &ureq::Agent, url: &str, cap: u64) -> Result<Option<Vec<u8>>, FetchError> {
    let fail = |why: String| FetchError {
        what: url.to_string(),
        why,
    };
    let mut resp = agent.get(url).call().map_err(|e| fail(e.to_string()))?;
    match resp.status().as_u16() {
        200 => resp
            .body_mut()
            .with_config()
            .limit(cap + 1)
            .read_to_vec()
            .map(Some)
            .map_err(|e| fail(e.to_string())),
        404 => Ok(None),
        s => Err(fail(format!("HTTP status {s}"))),
    }
}

fn get(
    agent: &ureq::Agent,
    url: &str,
    etag: Option<&str>,
) -> Result<(u16, Vec<u8>, Option<String>), FetchError> {
    let fail = |why: String| FetchError {
        what: url.to_string(),
        why,
    };
    let mut req = agent.get(url);
    if let Some(t) = etag {
        req = req.header("If-None-Match", t);
    }
    let mut resp = req.call().map_err(|e| fail(e.to_string()))?;
    let status = resp.status().as_u16();
    let tag = resp
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = if status == 200 {
        resp.body_mut()
            .with_config()
            .limit(MAX_BYTES)
            .read_to_vec()
            .map_err(|e| fail(e.to_string()))?
    } else {
        Vec::new()
    };
    Ok((status, body, tag))
}

/// POST a JSON document (a compliance report) to a collector.
pub fn post_json(
    url: &str,
    body: &[u8],
    transport: &Transport,
    timeout: Duration,
) -> Result<(), FetchError> {
    let agent = transport.agent(timeout);
    let fail = |why: String| FetchError {
        what: url.to_string(),
        why,
    };
    let resp = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(body)
        .map_err(|e| fail(e.to_string()))?;
    match resp.status().as_u16() {
        200..=299 => Ok(()),
        s => Err(fail(format!("HTTP status {s}"))),
    }
}
