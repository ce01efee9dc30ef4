//! Aggregation as flows stream by: every flow is placed in the inventory and
//! added to its *conversation* (consumer entity, provider, protocol, port),
//! so memory grows with the number of conversations, never with flows.
//! Then replies and conversations below `--min-flows` are taken out.

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv6Addr};

// Source ports remembered per conversation to recognise replies: as many as
// a table reports.
use ringfence_flows::SRC_PORTS;
use ringfence_flows::{Conversation, Flow, NetworkVerdict, SrcPorts as TablePorts, Timestamp};
use ringfence_inventory::model::Proto;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::book::{Book, EntityId, NO_SERVICE, Peer, Unplaced, Via};
use crate::exclude::Exclusions;

/// Ports from here up are ephemeral (Linux's default range starts at
/// 32768; Windows' at 49152).
pub(crate) const EPHEMERAL: u16 = 32_768;
/// Example address pairs kept per conversation (the smallest, so the
/// choice does not depend on the order flows arrive in).
const EXAMPLES: usize = 3;
/// Unknown in-cluster addresses kept as examples.
const UNKNOWN_EXAMPLES: usize = 5;

/// An address as one number: IPv4 as its IPv4-mapped IPv6 form.
pub(crate) fn addr_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped().into(),
        IpAddr::V6(a) => a.into(),
    }
}

/// The address of an [`addr_key`].
pub(crate) fn key_addr(k: u128) -> IpAddr {
    let a = Ipv6Addr::from(k);
    a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4)
}

/// SplitMix64's finaliser: spreads every input bit over the output.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn peer_bits(p: Peer) -> u64 {
    match p {
        Peer::Entity(e) => u64::from(e),
        Peer::V4(n) => 1 << 62 | u64::from(n),
        Peer::V6(n) => 2 << 62 ^ n,
    }
}

/// A conversation: who talked to whom, how.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ConvKey {
    /// The consumer.
    pub(crate) src: Peer,
    /// The provider (the backend when seen, else what was addressed).
    pub(crate) dst: Peer,
    pub(crate) proto: Proto,
    /// Port on `dst` (0 for icmp).
    pub(crate) port: u16,
    /// The service addressed, or [`NO_SERVICE`].
    pub(crate) svc: EntityId,
    /// The service port addressed (0 without a service).
    pub(crate) svc_port: u16,
    pub(crate) via: Via,
}

/// One well-mixed word: the derived hash fed to FxHasher clusters these
/// keys (small integers in most fields), which made probing compare keys
/// several times per lookup.
impl Hash for ConvKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        let rest = u64::from(self.port) << 48
            | u64::from(self.svc_port) << 32
            | u64::from(self.svc)
            | (self.proto as u64) << 56
            | (self.via as u64) << 60;
        h.write_u64(mix(
            peer_bits(self.src) ^ mix(peer_bits(self.dst) ^ mix(rest))
        ));
    }
}

/// What was seen of a conversation (or a policy): the evidence in comments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Evidence {
    pub(crate) flows: u64,
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
    pub(crate) first: Timestamp,
    pub(crate) last: Timestamp,
    /// The smallest (consumer, provider) address pairs seen.
    pub(crate) examples: Examples,
}

/// The smallest (consumer, provider) address pairs seen, as [`addr_key`]s
/// (cheaper to compare than `IpAddr`s), kept inline: a flow updates its
/// conversation without following a pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Examples {
    n: u8,
    pairs: [(u128, u128); EXAMPLES],
}

impl Examples {
    fn one(pair: (u128, u128)) -> Examples {
        Examples {
            n: 1,
            pairs: [pair; EXAMPLES],
        }
    }

    /// None yet (for evidence built by hand).
    #[cfg(test)]
    pub(crate) fn none() -> Examples {
        Examples {
            n: 0,
            pairs: [(0, 0); EXAMPLES],
        }
    }

    fn insert(&mut self, pair: (u128, u128)) {
        let n = usize::from(self.n);
        if n == EXAMPLES && pair >= self.pairs[n - 1] {
            return;
        }
        let Err(i) = self.pairs[..n].binary_search(&pair) else {
            return;
        };
        let end = n.min(EXAMPLES - 1);
        self.pairs.copy_within(i..end, i + 1);
        self.pairs[i] = pair;
        self.n = (n + 1).min(EXAMPLES) as u8;
    }

    /// The pairs, smallest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &(u128, u128)> {
        self.pairs[..usize::from(self.n)].iter()
    }
}

impl Evidence {
    /// `flows` flows (one record, or a conversation a table aggregated).
    fn of(f: &Flow, flows: u64) -> Evidence {
        Evidence {
            flows,
            packets: f.packets,
            bytes: f.bytes,
            first: f.first_seen,
            last: f.last_seen,
            examples: Examples::one((addr_key(f.src_ip), addr_key(f.dst_ip))),
        }
    }

    fn add_flow(&mut self, f: &Flow, flows: u64) {
        self.flows += flows;
        self.packets += f.packets;
        self.bytes += f.bytes;
        self.first = self.first.min(f.first_seen);
        self.last = self.last.max(f.last_seen);
        self.examples
            .insert((addr_key(f.src_ip), addr_key(f.dst_ip)));
    }

    /// Fold another's evidence in (order-independent).
    pub(crate) fn merge(&mut self, o: &Evidence) {
        self.flows += o.flows;
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.first = self.first.min(o.first);
        self.last = self.last.max(o.last);
        for p in o.examples.iter() {
            self.examples.insert(*p);
        }
    }
}

/// Source ports of a conversation: up to [`SRC_PORTS`] distinct ones, kept
/// inline; `MANY` once there were more.
#[derive(Clone, Copy, Debug)]
struct SrcPorts {
    n: u8,
    ports: [u16; SRC_PORTS],
}

impl SrcPorts {
    const MANY: u8 = u8::MAX;

    fn of(p: Option<u16>) -> SrcPorts {
        SrcPorts {
            n: u8::from(p.is_some()),
            ports: [p.unwrap_or(0); SRC_PORTS],
        }
    }

    /// The ports a table reported for a conversation.
    fn of_table(p: &TablePorts) -> SrcPorts {
        match p {
            TablePorts::Few(ps) if ps.len() <= SRC_PORTS => {
                let mut out = SrcPorts::of(None);
                for &q in ps {
                    out.add(q);
                }
                out
            }
            _ => SrcPorts {
                n: SrcPorts::MANY,
                ports: [0; SRC_PORTS],
            },
        }
    }

    /// Fold another set in.
    fn merge(&mut self, o: &SrcPorts) {
        match o.few() {
            None => self.n = SrcPorts::MANY,
            Some(ps) => {
                for &p in ps {
                    self.add(p);
                }
            }
        }
    }

    fn add(&mut self, p: u16) {
        if self.n == SrcPorts::MANY {
            return;
        }
        let n = usize::from(self.n);
        if self.ports[..n].contains(&p) {
            return;
        }
        if n == SRC_PORTS {
            self.n = SrcPorts::MANY;
        } else {
            self.ports[n] = p;
            self.n += 1;
        }
    }

    /// The ports, if few.
    fn few(&self) -> Option<&[u16]> {
        (self.n != SrcPorts::MANY).then(|| &self.ports[..usize::from(self.n)])
    }
}

/// A conversation's evidence and the source ports it used.
#[derive(Clone, Debug)]
pub(crate) struct ConvStats {
    pub(crate) ev: Evidence,
    src_ports: SrcPorts,
}

impl ConvStats {
    fn merge(&mut self, o: &ConvStats) {
        self.ev.merge(&o.ev);
        self.src_ports.merge(&o.src_ports);
    }
}

/// Flows that did not become conversations, by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Flows folded.
    pub(crate) read: u64,
    /// The network dropped them: not evidence of a needed conversation.
    pub(crate) dropped: u64,
    /// Per exclusion rule.
    pub(crate) excluded: Vec<u64>,
    /// An address inside the clusters' ranges that no object has.
    pub(crate) unknown: u64,
    /// An address used in several clusters.
    pub(crate) ambiguous: u64,
    /// Neither end in the inventory.
    pub(crate) outside: u64,
    /// The smallest unknown addresses, as examples.
    pub(crate) unknown_examples: BTreeSet<IpAddr>,
}

impl Tally {
    fn merge(&mut self, o: &Tally) {
        self.read += o.read;
        self.dropped += o.dropped;
        if self.excluded.len() < o.excluded.len() {
            self.excluded.resize(o.excluded.len(), 0);
        }
        for (a, b) in self.excluded.iter_mut().zip(&o.excluded) {
            *a += b;
        }
        self.unknown += o.unknown;
        self.ambiguous += o.ambiguous;
        self.outside += o.outside;
        self.unknown_examples
            .extend(o.unknown_examples.iter().copied());
        while self.unknown_examples.len() > UNKNOWN_EXAMPLES {
            self.unknown_examples.pop_last();
        }
    }
}

/// One worker's aggregate.
#[derive(Debug, Default)]
pub(crate) struct Acc {
    convs: FxHashMap<ConvKey, ConvStats>,
    pub(crate) tally: Tally,
}

/// Places flows and folds them into an [`Acc`]; shared by all workers.
pub(crate) struct Aggregator<'b, 'a> {
    book: &'b Book<'a>,
    exclusions: &'b Exclusions,
    /// Exclusion masks per object (consumer side, provider side).
    masks: &'b [(u64, u64)],
}

impl<'b, 'a> Aggregator<'b, 'a> {
    /// `masks` are `exclusions.masks(book)`, computed once.
    pub(crate) fn new(
        book: &'b Book<'a>,
        exclusions: &'b Exclusions,
        masks: &'b [(u64, u64)],
    ) -> Self {
        Aggregator {
            book,
            exclusions,
            masks,
        }
    }

    pub(crate) fn new_acc(&self) -> Acc {
        Acc {
            convs: FxHashMap::default(),
            tally: Tally {
                excluded: vec![0; self.exclusions.rules.len()],
                ..Tally::default()
            },
        }
    }

    /// Fold one flow.
    pub(crate) fn fold(&self, acc: &mut Acc, f: Flow) {
        self.fold_n(acc, &f, 1, SrcPorts::of(f.src_port));
    }

    /// Fold one conversation a table aggregated: as its flows one by one.
    pub(crate) fn fold_conversation(&self, acc: &mut Acc, c: &Conversation) {
        self.fold_n(acc, &c.flow, c.flows, SrcPorts::of_table(&c.src_ports));
    }

    /// Fold `n` flows like `f` (their packets and bytes summed in `f`),
    /// with these source ports.
    fn fold_n(&self, acc: &mut Acc, f: &Flow, n: u64, ports: SrcPorts) {
        let t = &mut acc.tally;
        t.read += n;
        if f.verdict == Some(NetworkVerdict::Dropped) {
            t.dropped += n;
            return;
        }
        let r = match self.book.resolve(f) {
            Ok(r) => r,
            Err(Unplaced::Unknown(ip)) => {
                t.unknown += n;
                if t.unknown_examples.len() < UNKNOWN_EXAMPLES
                    || ip < *t.unknown_examples.last().expect("not empty")
                {
                    t.unknown_examples.insert(ip);
                    if t.unknown_examples.len() > UNKNOWN_EXAMPLES {
                        t.unknown_examples.pop_last();
                    }
                }
                return;
            }
            Err(Unplaced::Ambiguous(_)) => {
                t.ambiguous += n;
                return;
            }
            Err(Unplaced::Outside) => {
                t.outside += n;
                return;
            }
        };
        if !self.exclusions.rules.is_empty() {
            let cons = match r.src_obj {
                Some(o) => self.masks[o as usize].0,
                None => self.exclusions.external_masks(f.src_ip).0,
            };
            let mut prov = match r.dst_obj {
                Some(o) => self.masks[o as usize].1,
                None => self.exclusions.external_masks(f.dst_ip).1,
            };
            if let Some(o) = r.svc_obj {
                prov |= self.masks[o as usize].1;
            }
            if let Some(i) = self
                .exclusions
                .first_match(cons, prov, f.proto, [r.port, r.svc_port])
            {
                t.excluded[i] += n;
                return;
            }
        }
        let key = ConvKey {
            src: r.src,
            dst: r.dst,
            proto: f.proto,
            port: r.port,
            svc: r.svc,
            svc_port: r.svc_port,
            via: r.via,
        };
        match acc.convs.get_mut(&key) {
            Some(s) => {
                s.ev.add_flow(f, n);
                s.src_ports.merge(&ports);
            }
            None => {
                acc.convs.insert(
                    key,
                    ConvStats {
                        ev: Evidence::of(f, n),
                        src_ports: ports,
                    },
                );
            }
        }
    }
}

/// All conversations, sorted, with what was left out.
#[derive(Debug, Default)]
pub(crate) struct Conversations {
    pub(crate) convs: Vec<(ConvKey, Evidence)>,
    pub(crate) tally: Tally,
    /// Conversations and flows taken out as replies.
    pub(crate) replies: (u64, u64),
    /// Conversations and flows below `--min-flows`.
    pub(crate) below_min: (u64, u64),
}

/// Merge the workers' aggregates, take out replies and rare conversations.
pub(crate) fn finish(accs: Vec<Acc>, min_flows: u64) -> Conversations {
    let mut accs = accs.into_iter();
    let mut all = accs.next().unwrap_or_default();
    for a in accs {
        all.tally.merge(&a.tally);
        for (k, s) in a.convs {
            match all.convs.get_mut(&k) {
                Some(t) => t.merge(&s),
                None => {
                    all.convs.insert(k, s);
                }
            }
        }
    }
    // A reply goes to an ephemeral port from one fixed port that the
    // reverse conversation uses as its destination.
    let forward: FxHashSet<(Peer, Peer, Proto, u16)> = all
        .convs
        .keys()
        .flat_map(|k| {
            let via_svc =
                (k.svc != NO_SERVICE).then_some((k.src, Peer::Entity(k.svc), k.proto, k.svc_port));
            std::iter::once((k.src, k.dst, k.proto, k.port)).chain(via_svc)
        })
        .collect();
    let mut out = Conversations {
        tally: all.tally,
        ..Conversations::default()
    };
    let mut convs: Vec<(ConvKey, ConvStats)> = all.convs.into_iter().collect();
    convs.sort_unstable_by_key(|c| c.0);
    for (k, s) in convs {
        let reply = k.proto.has_ports()
            && k.port >= EPHEMERAL
            && s.src_ports.few().is_some_and(|ps| {
                ps.iter()
                    .any(|&p| p < EPHEMERAL && forward.contains(&(k.dst, k.src, k.proto, p)))
            });
        if reply {
            out.replies.0 += 1;
            out.replies.1 += s.ev.flows;
        } else if s.ev.flows < min_flows {
            out.below_min.0 += 1;
            out.below_min.1 += s.ev.flows;
        } else {
            out.convs.push((k, s.ev));
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::Path;

    use ringfence_inventory::model::Inventory;

    use super::*;
    use crate::book::tests::{flow, shop};

    /// The conversations of `flows` over `inv`, folded by `workers`
    /// workers and kept from `min` flows on.
    pub(crate) fn conversations(
        inv: &Inventory,
        flows: Vec<Flow>,
        ex: &Exclusions,
        min: u64,
        workers: usize,
    ) -> Conversations {
        let book = Book::new(inv);
        let masks = ex.masks(&book);
        let agg = Aggregator::new(&book, ex, &masks);
        let mut accs: Vec<Acc> = (0..workers).map(|_| agg.new_acc()).collect();
        for (i, f) in flows.into_iter().enumerate() {
            agg.fold(&mut accs[i % workers], f);
        }
        finish(accs, min)
    }

    fn at(mut f: Flow, src_port: u16, secs: i64) -> Flow {
        f.src_port = Some(src_port);
        f.first_seen = Timestamp::from_unix_secs(secs);
        f.last_seen = f.first_seen;
        f
    }

    #[test]
    fn aggregates_independently_of_worker_split() {
        let mut flows = Vec::new();
        for i in 0..50u16 {
            flows.push(at(
                flow("10.244.1.10", "10.244.1.20", 8080),
                40_000 + i,
                i64::from(i),
            ));
            flows.push(at(
                flow("10.244.1.11", "10.244.1.20", 8080),
                41_000 + i,
                100 - i64::from(i),
            ));
        }
        let one = conversations(&shop(), flows.clone(), &Exclusions::default(), 1, 1);
        let three = conversations(&shop(), flows, &Exclusions::default(), 1, 3);
        assert_eq!(one.convs, three.convs);
        assert_eq!(one.convs.len(), 1, "both frontend pods are one workload");
        let ev = &one.convs[0].1;
        assert_eq!(ev.flows, 100);
        assert_eq!((ev.first.unix_secs(), ev.last.unix_secs()), (0, 100));
        assert_eq!(ev.examples.iter().count(), 2);
    }

    /// Conversations a table aggregated (flows grouped by key and verdict,
    /// with their distinct source ports up to five) fold into exactly what
    /// their flows fold into one by one.
    #[test]
    fn table_conversations_fold_like_their_flows() {
        use std::collections::BTreeMap;
        let mut flows = Vec::new();
        for i in 0..40u16 {
            // Requests with many source ports, and their answers with one.
            flows.push(at(
                flow("10.244.1.10", "10.244.1.20", 8080),
                40_000 + i,
                i64::from(i),
            ));
            flows.push(at(flow("10.244.1.20", "10.244.1.10", 40_000 + i), 8080, 50));
            // Few source ports.
            flows.push(at(
                flow("10.244.1.11", "10.244.1.30", 6379),
                41_000 + i % 3,
                7,
            ));
        }
        let mut dropped = flow("10.244.1.10", "10.244.1.30", 22);
        dropped.verdict = Some(NetworkVerdict::Dropped);
        flows.push(dropped);
        flows.push(flow("198.51.100.1", "203.0.113.1", 443));
        let by_flow = conversations(&shop(), flows.clone(), &Exclusions::default(), 1, 1);

        let mut groups: BTreeMap<String, (Flow, u64, BTreeSet<u16>, Timestamp)> = BTreeMap::new();
        for f in flows {
            let k = format!("{} {} {:?} {:?}", f.src_ip, f.dst_ip, f.dst_port, f.verdict);
            let g = groups.entry(k).or_insert_with(|| {
                (
                    Flow {
                        packets: 0,
                        bytes: 0,
                        src_port: None,
                        ..f.clone()
                    },
                    0,
                    BTreeSet::new(),
                    f.first_seen,
                )
            });
            g.0.packets += f.packets;
            g.0.bytes += f.bytes;
            g.0.first_seen = g.0.first_seen.min(f.first_seen);
            g.0.last_seen = g.0.last_seen.max(f.last_seen);
            g.3 = g.3.max(f.first_seen);
            g.1 += 1;
            g.2.extend(f.src_port);
        }
        let inv = shop();
        let book = Book::new(&inv);
        let ex = Exclusions::default();
        let masks = ex.masks(&book);
        let agg = Aggregator::new(&book, &ex, &masks);
        let mut acc = agg.new_acc();
        for (key, (flow, n, ports, last_start)) in groups {
            let src_ports = if ports.len() > SRC_PORTS {
                TablePorts::Many
            } else {
                TablePorts::Few(ports.into_iter().collect())
            };
            agg.fold_conversation(
                &mut acc,
                &Conversation {
                    flow,
                    flows: n,
                    last_start,
                    src_ports,
                    key: key.into(),
                },
            );
        }
        let by_conversation = finish(vec![acc], 1);
        assert_eq!(by_conversation.convs, by_flow.convs);
        assert_eq!(by_conversation.tally, by_flow.tally);
        assert!(by_conversation.replies.0 > 0, "replies are told apart");
        assert_eq!(by_conversation.replies, by_flow.replies);
    }

    #[test]
    fn examples_keep_the_smallest_pairs_in_any_order() {
        let pairs: Vec<(u128, u128)> = [(5, 1), (1, 9), (3, 3), (1, 2), (9, 9), (3, 3)].to_vec();
        let mut orders = vec![pairs.clone()];
        orders.push(pairs.iter().rev().copied().collect());
        for order in orders {
            let mut e = Examples::one(order[0]);
            for p in &order[1..] {
                e.insert(*p);
            }
            assert_eq!(
                e.iter().copied().collect::<Vec<_>>(),
                [(1, 2), (1, 9), (3, 3)]
            );
        }
    }

    #[test]
    fn replies_are_taken_out_only_when_the_request_exists() {
        let mut flows = Vec::new();
        for i in 0..5u16 {
            flows.push(at(flow("10.244.1.10", "10.244.1.20", 8080), 40_000 + i, 0));
            // The answers, as a tap that records both directions sees them.
            flows.push(at(flow("10.244.1.20", "10.244.1.10", 40_000 + i), 8080, 0));
        }
        // An ephemeral destination without a matching request is not a reply.
        flows.push(at(flow("10.244.1.30", "10.244.1.10", 45_000), 6379, 0));
        let c = conversations(&shop(), flows, &Exclusions::default(), 1, 2);
        assert_eq!(c.replies, (5, 5));
        let ports: Vec<u16> = c.convs.iter().map(|(k, _)| k.port).collect();
        assert_eq!(ports, [8080, 45_000]);
    }

    #[test]
    fn min_flows_dropped_verdicts_exclusions_and_unplaced_are_counted() {
        let ex = Exclusions::parse(
            Path::new("ex.kdl"),
            "exclude \"probes\" {\n consumer {\n  kind \"node\"\n }\n}\n",
        )
        .unwrap();
        let mut flows = vec![flow("10.244.1.10", "10.244.1.20", 8080); 3];
        flows.push(flow("10.244.1.10", "10.244.1.30", 6379));
        let mut dropped = flow("10.244.1.10", "10.244.1.30", 22);
        dropped.verdict = Some(NetworkVerdict::Dropped);
        flows.push(dropped);
        flows.push(flow("192.168.1.10", "10.244.1.20", 8080));
        flows.push(flow("10.244.1.99", "10.244.1.20", 8080));
        flows.push(flow("198.51.100.1", "203.0.113.1", 443));
        let c = conversations(&shop(), flows, &ex, 2, 2);
        assert_eq!(c.convs.len(), 1);
        assert_eq!(c.below_min, (1, 1));
        let t = &c.tally;
        assert_eq!(
            (t.read, t.dropped, t.excluded.clone(), t.unknown, t.outside),
            (8, 1, vec![1], 1, 1)
        );
        assert_eq!(
            t.unknown_examples
                .iter()
                .next()
                .map(|i| i.to_string())
                .as_deref(),
            Some("10.244.1.99")
        );
    }
}
