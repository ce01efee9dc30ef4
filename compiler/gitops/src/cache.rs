//! The render cache of `watch`: a node's rendered files, by the digest of
//! its IR and of the backend that rendered them. A commit that changes one
//! policy changes the IR of the few nodes it touches; only those go through
//! the backend plugins again.
//!
//! The key is the SHA-256 of the node's `ir.json` as bundles carry it (the
//! IR's JSON and a newline) and the backend's `.wasm` digest: equal keys
//! mean byte-identical input to the same plugin, hence the same output. The
//! cache holds the outputs of the last two publications (so reverting a
//! commit renders nothing); after a restart it is seeded from the published
//! bundles themselves (they carry `ir.json`, the rendered files and the
//! backend digest), so restarts do not re-render. A cached output keeps its
//! files' digests ([`Files`](ringfence_driver::bundles::Files)), so a node
//! kept across publications is not hashed again.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;
use ringfence_bundle::{Expectations, Trust, sha256_hex, verify_bundle};
use ringfence_driver::Session;
use ringfence_driver::bundles::{BUNDLE_SUFFIX, NodeOutput};
use ringfence_driver::render::{Backends, render_some};
use ringfence_intent::Diagnostics;
use ringfence_schema::bundle::IR_FILE;
use ringfence_schema::ir::NodeIr;

/// (backend `.wasm` SHA-256, `ir.json` SHA-256).
type Key = (String, String);

/// Rendered outputs by IR and backend digest.
#[derive(Default)]
pub struct RenderCache {
    /// Each output with the publication that last used it.
    entries: HashMap<Key, (NodeOutput, u64)>,
    /// Publications so far.
    epoch: u64,
    /// Each node's last IR and its digest: an equal IR (most of them, most
    /// of the time) is not serialised and hashed again. A live IR is the
    /// session's own (shared), not a copy.
    digests: HashMap<String, (Arc<NodeIr>, String)>,
}

/// The nodes of a session, rendered.
pub struct Rendered {
    /// Every node's output, in the session's node order.
    pub nodes: Vec<NodeOutput>,
    /// Their cache keys, in the same order.
    keys: Vec<Key>,
    /// How many went through a backend (the others were cached).
    pub rendered: usize,
    /// Backend warnings, or the errors that stop publication.
    pub diagnostics: Diagnostics,
}

/// The digest of a node's `ir.json` as the renderer writes it.
fn ir_digest(ir: &NodeIr) -> String {
    let mut text = serde_json::to_string(ir).expect("an IR always serialises");
    text.push('\n');
    sha256_hex(text.as_bytes())
}

impl RenderCache {
    /// Seed from a published generation directory (its `*.bundle` files,
    /// verified with `trust`). Unreadable or refused bundles are skipped:
    /// they are only a cache. Returns how many were added, and the earliest
    /// issue time among them.
    pub fn seed(&mut self, dir: &Path, trust: &Trust) -> (usize, Option<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return (0, None);
        };
        let files: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(BUNDLE_SUFFIX))
            .collect();
        let found: Vec<(Key, String, NodeOutput)> = files
            .par_iter()
            .filter_map(|p| {
                let bytes = std::fs::read(p).ok()?;
                let v = verify_bundle(&bytes, trust, &Expectations::default()).ok()?;
                let ir = v.payload.files.iter().find(|f| f.name == IR_FILE)?;
                let key = (v.payload.backend.sha256.clone(), ir.sha256.clone());
                let p = v.payload;
                Some((key, p.issued_at.clone(), NodeOutput::from(p)))
            })
            .collect();
        let n = found.len();
        // RFC 3339 UTC in whole seconds: text order is time order.
        let oldest = found.iter().map(|(_, t, _)| t.clone()).min();
        let epoch = self.epoch;
        self.entries
            .extend(found.into_iter().map(|(k, _, out)| (k, (out, epoch))));
        (n, oldest)
    }

    /// Every node of `session`: cached outputs taken out of the cache, the
    /// rest rendered. A node whose backend is unknown is left to the renderer,
    /// which reports it.
    pub fn render(&mut self, session: &Session, backends: &Backends<'_>) -> Rendered {
        let irs = session.nodes();
        let digests: Vec<(String, bool)> = irs
            .par_iter()
            .map(|&ir| match self.digests.get(&ir.node) {
                Some((last, d)) if std::ptr::eq(&**last, ir) || **last == *ir => (d.clone(), false),
                _ => (ir_digest(ir), true),
            })
            .collect();
        let shared = session.irs.as_deref();
        for (i, (ir, (d, new))) in irs.iter().zip(&digests).enumerate() {
            if *new {
                let ir = shared.map_or_else(|| Arc::new((*ir).clone()), |s| Arc::clone(&s[i]));
                self.digests.insert(ir.node.clone(), (ir, d.clone()));
            }
        }
        let keys: Vec<Option<Key>> = irs
            .iter()
            .zip(digests)
            .map(|(ir, (d, _))| Some((backends.get(&ir.backend)?.sha256.clone(), d)))
            .collect();
        let mut cached: Vec<Option<NodeOutput>> = keys
            .iter()
            .map(|k| {
                k.as_ref()
                    .and_then(|k| self.entries.remove(k))
                    .map(|(out, _)| out)
            })
            .collect();
        let missing: HashSet<&str> = irs
            .iter()
            .zip(&cached)
            .filter(|(_, c)| c.is_none())
            .map(|(ir, _)| ir.node.as_str())
            .collect();
        let (fresh, diagnostics) =
            render_some(session, backends, |ir| missing.contains(ir.node.as_str()));
        let rendered = fresh.len();
        let mut fresh = fresh.into_iter().peekable();
        let mut nodes = Vec::with_capacity(irs.len());
        let mut out_keys = Vec::with_capacity(irs.len());
        for ((ir, c), key) in irs.iter().zip(cached.iter_mut()).zip(keys) {
            // Rendered in node order; a node that failed has no output.
            let out = c.take().or_else(|| {
                fresh
                    .peek()
                    .is_some_and(|o| o.node == ir.node)
                    .then(|| fresh.next())
                    .flatten()
            });
            if let (Some(out), Some(key)) = (out, key) {
                nodes.push(out);
                out_keys.push(key);
            }
        }
        Rendered {
            nodes,
            keys: out_keys,
            rendered,
            diagnostics,
        }
    }

    /// Put the outputs of `r` back. After a publication (`published`)
    /// they are its outputs, and outputs the previous publication used
    /// stay too (a revert needs them); older ones are dropped. After a
    /// failure they are still valid renders a later commit may bring back.
    pub fn keep(&mut self, r: Rendered, published: bool) {
        if published {
            self.epoch += 1;
            let epoch = self.epoch;
            self.entries.retain(|_, (_, e)| *e + 1 >= epoch);
        }
        let epoch = self.epoch;
        self.entries.extend(
            r.keys
                .into_iter()
                .zip(r.nodes)
                .map(|(k, out)| (k, (out, epoch))),
        );
    }
}
