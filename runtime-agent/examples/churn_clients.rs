//! Many simulated agents in one process, for the churn benchmark
//! (`bench/churn.sh`): a thread per node runs the agent's own fetch and
//! verify code against `ringfence watch --serve` — [`Source::fetch`] and
//! `verify_index`/`verify_bundle` for the node's bundle, then the next
//! delta with the head, long-polled ([`Source::member_update`]), and any
//! further deltas after the last
//! document (or the snapshot when one is missing, out of chain or of a new
//! generation), each checked by `verify_membership` against the bundle in
//! force and the chain, and applied in memory ([`Document::apply_to`]).
//! Nothing touches a kernel: the real agents of the benchmark do that.
//!
//! ```text
//! churn_clients URL TRUST_PEM NODES_FILE OUT_JSONL STOP_FILE
//! ```
//!
//! Starts one client per line of NODES_FILE, logs `ready N` on stderr once
//! every client applied its first snapshot, and when STOP_FILE exists writes
//! OUT_JSONL — per document applied after the first: node, sequence, kind,
//! generation, Unix time applied, bytes, and the addresses and pods it
//! changed (`keys`), from which the benchmark matches it to trace events —
//! then exits. A refused document is written with its reason code.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ringfence_agent::source::{Fetched, MAX_WAIT, MemberFile, Source, Transport};
use ringfence_bundle::{
    Applied, Document, Expectations, MembershipExpect, Reason, Trust, load_trusted_key,
    verify_bundle, verify_index, verify_membership,
};
use ringfence_schema::ir::NodeIr;
use ringfence_schema::membership::{Changes, Membership};

/// What one client saw of one document.
struct Record {
    node: String,
    sequence: u64,
    kind: &'static str,
    generation: u64,
    at: f64,
    bytes: usize,
    keys: Vec<String>,
    /// A snapshot's keys in sets the bundle in force before it did not
    /// declare: addresses a re-rendered node learns with its new chains, not
    /// because their pods changed.
    fresh: Vec<String>,
    refused: Option<&'static str>,
}

/// The bundle in force and the last document applied.
struct Client<'a> {
    node: String,
    trust: &'a Trust,
    source: Source,
    bundle: Option<(u64, NodeIr)>,
    applied: Option<(u64, u64, String, Membership)>,
    /// The live sets of the bundle in force when `applied` was.
    declared: BTreeSet<String>,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// The addresses and `pod/…` names a change touches.
fn keys(c: &Changes) -> Vec<String> {
    let mut k = BTreeSet::new();
    for s in &c.sets {
        k.extend(s.add.iter().chain(&s.remove).map(|a| a.to_string()));
    }
    for e in &c.endpoints {
        k.insert(e.name.clone());
        k.extend(e.addresses.iter().map(|a| a.to_string()));
    }
    k.extend(c.endpoints_removed.iter().cloned());
    for t in &c.targets {
        k.insert(t.endpoint.clone());
        k.extend(t.addresses.iter().map(|a| a.to_string()));
    }
    k.extend(c.targets_removed.iter().map(|t| t.endpoint.clone()));
    k.into_iter().collect()
}

impl Client<'_> {
    /// Fetch and verify the node's bundle (with the signed index).
    fn load_bundle(&mut self) -> Result<(), String> {
        let Fetched::Bundle { bytes, index, .. } =
            self.source.fetch(&self.node).map_err(|e| e.to_string())?
        else {
            return Err("no bundle yet".into());
        };
        let index =
            verify_index(&index.ok_or("no index")?, self.trust).map_err(|e| e.to_string())?;
        let v = verify_bundle(
            &bytes,
            self.trust,
            &Expectations {
                node: Some(&self.node),
                min_generation: self.bundle.as_ref().map(|b| b.0),
                now: Some(SystemTime::now()),
                index: Some(&index),
            },
        )
        .map_err(|e| e.to_string())?;
        self.bundle = Some((v.payload.generation, v.ir));
        Ok(())
    }

    /// Follow the head once (long-polled); the documents applied or refused.
    fn follow(&mut self, out: &mut Vec<Record>) -> Result<(), String> {
        if self.bundle.is_none() {
            self.load_bundle()?;
        }
        let at = self.applied.as_ref().map(|a| a.1);
        // As the agent does: the next delta comes with the head.
        let update = (self.source)
            .member_update(&self.node, at, Some(MAX_WAIT))
            .map_err(|e| e.to_string())?
            .ok_or("no membership head yet")?;
        let (head, mut prefetched) = (update.head, update.delta);
        let mut want_snapshot = false;
        let mut tries = head.saturating_sub(at.unwrap_or(0)) + 3;
        while self.applied.as_ref().is_none_or(|a| a.1 < head) && tries > 0 {
            tries -= 1;
            let (generation, ir) = self.bundle.as_ref().ok_or("no bundle")?;
            let generation = *generation;
            let same = self.applied.as_ref().filter(|a| a.0 == generation);
            let file = match same {
                Some(a) if !want_snapshot => MemberFile::Delta(a.1 + 1),
                _ => MemberFile::Snapshot,
            };
            let cached = match file {
                MemberFile::Delta(seq) => prefetched.take_if(|(s, _)| *s == seq),
                MemberFile::Snapshot => None,
            };
            let fetched = match cached {
                Some((_, b)) => Some(b),
                None => (self.source.member(&self.node, file)).map_err(|e| e.to_string())?,
            };
            let Some(bytes) = fetched else {
                if file == MemberFile::Snapshot {
                    return Ok(());
                }
                want_snapshot = true;
                continue;
            };
            let expect = MembershipExpect {
                node: &self.node,
                generation,
                ir: Some(ir),
                now: SystemTime::now(),
                applied: self.applied.as_ref().map(|a| Applied {
                    sequence: a.1,
                    digest: &a.2,
                }),
            };
            let empty = Membership::default();
            // As the agent does: a snapshot's membership moves, not copied.
            let verified = verify_membership(&bytes, self.trust, &expect).and_then(|mut v| {
                let current = same.map_or(&empty, |a| &a.3);
                v.document.take_membership(current).map(|m| (v, m))
            });
            match verified {
                Ok((v, next)) => {
                    let kind = match v.document {
                        Document::Snapshot(_) => "snapshot",
                        Document::Delta(_) => "delta",
                    };
                    // A delta says what it changed; a snapshot is compared.
                    let (keys, fresh) = match (&v.document, &self.applied) {
                        (Document::Delta(d), _) => (keys(&d.changes), Vec::new()),
                        (Document::Snapshot(_), Some(a)) => {
                            let mut d = Membership::diff(&a.3, &next);
                            let (old, new) = d
                                .sets
                                .drain(..)
                                .partition(|s| self.declared.contains(&s.name));
                            d.sets = old;
                            let fresh = Changes {
                                sets: new,
                                ..Changes::default()
                            };
                            (keys(&d), keys(&fresh))
                        }
                        (Document::Snapshot(_), None) => (Vec::new(), Vec::new()),
                    };
                    let declared = ir.sets.iter().filter(|s| s.live);
                    self.declared = declared.map(|s| s.name.clone()).collect();
                    out.push(Record {
                        node: self.node.clone(),
                        sequence: v.document.sequence(),
                        kind,
                        generation,
                        at: unix_now(),
                        bytes: bytes.len(),
                        keys,
                        fresh,
                        refused: None,
                    });
                    self.applied = Some((generation, v.document.sequence(), v.digest, next));
                    want_snapshot = false;
                }
                // A snapshot of a newer bundle: fetch that bundle first.
                Err(e) if e.reason == Reason::WrongGeneration => {
                    self.load_bundle()?;
                }
                Err(e)
                    if file != MemberFile::Snapshot
                        && matches!(e.reason, Reason::Gap | Reason::BrokenChain) =>
                {
                    want_snapshot = true;
                }
                Err(e) => {
                    out.push(Record {
                        node: self.node.clone(),
                        sequence: 0,
                        kind: "refused",
                        generation,
                        at: unix_now(),
                        bytes: bytes.len(),
                        keys: Vec::new(),
                        fresh: Vec::new(),
                        refused: Some(e.reason.code()),
                    });
                    return Err(e.to_string());
                }
            }
        }
        Ok(())
    }
}

fn json_line(r: &Record) -> String {
    let mut s = String::new();
    let keys = serde_json::to_string(&r.keys).unwrap_or_default();
    let _ = write!(
        s,
        "{{\"node\":\"{}\",\"sequence\":{},\"kind\":\"{}\",\"generation\":{},\"at\":{:.6},\"bytes\":{},\"keys\":{keys}",
        r.node, r.sequence, r.kind, r.generation, r.at, r.bytes
    );
    if !r.fresh.is_empty() {
        let fresh = serde_json::to_string(&r.fresh).unwrap_or_default();
        let _ = write!(s, ",\"fresh\":{fresh}");
    }
    if let Some(code) = r.refused {
        let _ = write!(s, ",\"refused\":\"{code}\"");
    }
    s.push('}');
    s
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, trust, nodes, out, stop] = &args[..] else {
        eprintln!("usage: churn_clients URL TRUST_PEM NODES_FILE OUT_JSONL STOP_FILE");
        std::process::exit(2);
    };
    let key = load_trusted_key(Path::new(trust)).expect("read TRUST_PEM");
    let trust: &'static Trust = Box::leak(Box::new(Trust::new([key], 1)));
    let nodes: Vec<String> = std::fs::read_to_string(nodes)
        .expect("read NODES_FILE")
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect();
    let records: &'static Mutex<Vec<Record>> = Box::leak(Box::new(Mutex::new(Vec::new())));
    let ready: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
    let transport = Transport::default();
    for node in &nodes {
        let mut client = Client {
            node: node.clone(),
            trust,
            source: Source::parse(url, &transport, MAX_WAIT + Duration::from_secs(10)),
            bundle: None,
            applied: None,
            declared: BTreeSet::new(),
        };
        std::thread::Builder::new()
            .stack_size(512 << 10)
            .spawn(move || {
                let mut counted = false;
                loop {
                    let mut out = Vec::new();
                    let r = client.follow(&mut out);
                    if !counted && client.applied.is_some() {
                        counted = true;
                        ready.fetch_add(1, Ordering::SeqCst);
                        // The first snapshot is the start, not churn.
                        out.retain(|r| r.kind != "snapshot" || !r.keys.is_empty());
                    }
                    records.lock().expect("records").extend(out);
                    if let Err(e) = r {
                        if counted {
                            eprintln!("churn_clients: {}: {e}", client.node);
                        }
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            })
            .expect("start a client thread");
    }
    let mut said = 0;
    loop {
        let n = ready.load(Ordering::SeqCst);
        if n != said && (n == nodes.len() || n / 100 != said / 100) {
            eprintln!("ready {n}");
            said = n;
        }
        if Path::new(stop).exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut text = String::new();
    for r in records.lock().expect("records").iter() {
        text.push_str(&json_line(r));
        text.push('\n');
    }
    std::fs::write(out, text).expect("write OUT_JSONL");
    std::process::exit(0);
}
