//! The verdict step: one pass over flows, judging each distinct conversation
//! once.
//!
//! A [`Tally`] belongs to one worker. Each flow is reduced to its [`Key`] —
//! source, destination, protocol, port, and the pre-NAT destination when the
//! observer saw one — and looked up in the worker's verdict cache; on a miss
//! the key is judged with [`Compiled::verdict`] (by every version compared),
//! on a hit only counters move. Memory grows with distinct conversations and
//! with the minutes the flows span, never with the number of flows. Tallies
//! of all workers are merged afterwards; the result does not depend on how
//! flows were split among them.

use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::net::IpAddr;
use std::sync::OnceLock;

use ringfence_core::{Compiled, FlowVerdict, Via};
use ringfence_schema::flow::NetworkVerdict;
use ringfence_schema::net::Proto;

use crate::outcome::{OUTCOMES, Outcome};

/// Seconds per slot of the time histogram; the chart regroups slots.
pub(crate) const SLOT_SECS: i64 = 60;

const NANOS: i64 = 1_000_000_000;

/// One observed flow, as the verdict step reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observed {
    /// Source address (the consumer).
    pub src: IpAddr,
    /// Destination address as policy sees it (after destination NAT when the
    /// observer saw it).
    pub dst: IpAddr,
    /// tcp, udp, sctp or icmp.
    pub proto: Proto,
    /// Destination port (tcp, udp, sctp).
    pub port: Option<u16>,
    /// The destination the consumer used, when a NAT rewrote it into `dst`,
    /// and its port.
    pub orig: Option<(IpAddr, Option<u16>)>,
    /// Packets seen.
    pub packets: u64,
    /// Bytes seen.
    pub bytes: u64,
    /// First seen, nanoseconds since the Unix epoch.
    pub first_ns: i64,
    /// Last seen, nanoseconds since the Unix epoch.
    pub last_ns: i64,
    /// What the network did, if known.
    pub verdict: Option<NetworkVerdict>,
}

/// The order of conversations in the output.
pub(crate) type SortKey = (
    IpAddr,
    IpAddr,
    Proto,
    Option<u16>,
    Option<(IpAddr, Option<u16>)>,
);

/// Minute slot → flows per outcome.
pub(crate) type Slots = FxHashMap<i64, [u64; OUTCOMES]>;

/// What identifies a conversation: everything the verdict depends on,
/// packed into words (addresses as IPv6, IPv4 mapped and flagged) so that
/// comparing and hashing it per flow is a handful of word operations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Key {
    src: u128,
    dst: u128,
    orig: u128,
    /// proto (bits 0-3), IPv4 flags of src, dst, orig (4-6), port + 1
    /// (8-24), orig port + 1 (25-41), whether there is an orig (42).
    meta: u64,
}

fn pack(a: IpAddr) -> (u128, u64) {
    match a {
        IpAddr::V4(v) => (u128::from(v.to_ipv6_mapped()), 1),
        IpAddr::V6(v) => (u128::from(v), 0),
    }
}

fn unpack(bits: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(std::net::Ipv4Addr::from(bits as u32))
    } else {
        IpAddr::V6(std::net::Ipv6Addr::from(bits))
    }
}

fn proto_of(n: u64) -> Proto {
    match n {
        1 => Proto::Tcp,
        2 => Proto::Udp,
        3 => Proto::Sctp,
        4 => Proto::Icmp,
        _ => Proto::Any,
    }
}

fn proto_bits(p: Proto) -> u64 {
    match p {
        Proto::Any => 0,
        Proto::Tcp => 1,
        Proto::Udp => 2,
        Proto::Sctp => 3,
        Proto::Icmp => 4,
    }
}

fn port_bits(p: Option<u16>) -> u64 {
    p.map_or(0, |p| u64::from(p) + 1)
}

fn port_of(bits: u64) -> Option<u16> {
    let b = bits & 0x1_ffff;
    (b != 0).then(|| (b - 1) as u16)
}

impl Key {
    pub(crate) fn of(o: &Observed) -> Self {
        let (src, s4) = pack(o.src);
        let (dst, d4) = pack(o.dst);
        let (orig, o4, op, has) = match o.orig {
            Some((a, p)) => {
                let (a, v4) = pack(a);
                (a, v4, port_bits(p), 1)
            }
            None => (0, 0, 0, 0),
        };
        Key {
            src,
            dst,
            orig,
            meta: proto_bits(o.proto)
                | s4 << 4
                | d4 << 5
                | o4 << 6
                | port_bits(o.port) << 8
                | op << 25
                | has << 42,
        }
    }

    pub(crate) fn src(&self) -> IpAddr {
        unpack(self.src, self.meta >> 4 & 1 == 1)
    }

    pub(crate) fn dst(&self) -> IpAddr {
        unpack(self.dst, self.meta >> 5 & 1 == 1)
    }

    pub(crate) fn proto(&self) -> Proto {
        proto_of(self.meta & 0xf)
    }

    pub(crate) fn port(&self) -> Option<u16> {
        port_of(self.meta >> 8)
    }

    /// The pre-NAT destination and its port, if observed.
    pub(crate) fn orig(&self) -> Option<(IpAddr, Option<u16>)> {
        (self.meta >> 42 & 1 == 1).then(|| {
            (
                unpack(self.orig, self.meta >> 6 & 1 == 1),
                port_of(self.meta >> 25),
            )
        })
    }

    /// The order of output: by addresses (IPv4 first), protocol, port.
    pub(crate) fn sort_key(&self) -> SortKey {
        (
            self.src(),
            self.dst(),
            self.proto(),
            self.port(),
            self.orig(),
        )
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        // Three wide words instead of the byte-wise derive: this runs per flow.
        let fold = |x: u128| (x as u64) ^ ((x >> 64) as u64).rotate_left(29);
        h.write_u64(fold(self.src));
        h.write_u64(fold(self.dst));
        h.write_u64(self.meta ^ fold(self.orig).rotate_left(13));
    }
}

pub(crate) use rustc_hash::{FxHashMap, FxHasher as KeyHasher};

/// A verdict, and whether it was taken at the observed pre-NAT destination.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Judged {
    pub(crate) verdict: FlowVerdict,
    pub(crate) at_orig: bool,
}

/// Judge one conversation as the nodes would.
///
/// A destination NAT the observer saw through a node port or load balancer
/// is judged as addressed: the consumer's node sees the entry point. Through
/// a cluster IP (translated on the consumer's node) and for everything else,
/// the post-NAT destination is what both sides see.
pub(crate) fn judge(c: &Compiled, k: &Key) -> Judged {
    let (src, dst, proto, port) = (k.src(), k.dst(), k.proto(), k.port());
    if let Some((orig, orig_port)) = k.orig()
        && orig != dst
    {
        let v = c.verdict(src, orig, proto, orig_port.or(port));
        if v.translation.is_some_and(|t| t.via != Via::ClusterIp) {
            return Judged {
                verdict: v,
                at_orig: true,
            };
        }
    }
    Judged {
        verdict: c.verdict(src, dst, proto, port),
        at_orig: false,
    }
}

/// Counters of one conversation, per network verdict (allowed, dropped,
/// unknown).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub(crate) flows: [u64; 3],
    pub(crate) packets: [u64; 3],
    pub(crate) bytes: [u64; 3],
    pub(crate) first_ns: i64,
    pub(crate) last_ns: i64,
}

impl Counters {
    /// Count `flows` flows (their packets and bytes summed in `o`).
    fn add(&mut self, o: &Observed, n: usize, flows: u64) {
        if self.flows.iter().all(|&f| f == 0) {
            self.first_ns = o.first_ns;
            self.last_ns = o.last_ns;
        } else {
            self.first_ns = self.first_ns.min(o.first_ns);
            self.last_ns = self.last_ns.max(o.last_ns);
        }
        self.flows[n] += flows;
        self.packets[n] += o.packets;
        self.bytes[n] += o.bytes;
    }

    pub(crate) fn merge(&mut self, o: &Counters) {
        if self.flows.iter().all(|&f| f == 0) {
            self.first_ns = o.first_ns;
            self.last_ns = o.last_ns;
        } else if o.flows.iter().any(|&f| f != 0) {
            self.first_ns = self.first_ns.min(o.first_ns);
            self.last_ns = self.last_ns.max(o.last_ns);
        }
        for i in 0..3 {
            self.flows[i] += o.flows[i];
            self.packets[i] += o.packets[i];
            self.bytes[i] += o.bytes[i];
        }
    }

    pub(crate) fn flows(&self) -> u64 {
        self.flows.iter().sum()
    }

    pub(crate) fn packets(&self) -> u64 {
        self.packets.iter().sum()
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.iter().sum()
    }
}

/// Index of a network verdict in [`Counters`].
pub(crate) fn net_index(v: Option<NetworkVerdict>) -> usize {
    match v {
        Some(NetworkVerdict::Allowed) => 0,
        Some(NetworkVerdict::Dropped) => 1,
        None => 2,
    }
}

/// A judged conversation and its counters.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    /// The verdict of each version (the analysed one first).
    pub(crate) verdicts: [Option<Judged>; 2],
    /// Whether the analysed version's policy allows it.
    pub(crate) allowed: bool,
    pub(crate) counters: Counters,
}

/// What a flow touches, in one place: the key (to confirm a fingerprint
/// match), the policy's verdict and the counters. The verdicts themselves
/// live apart.
#[derive(Clone, Copy, Debug)]
struct Hot {
    key: Key,
    allowed: bool,
    counters: Counters,
}

/// Flows a worker holds before looking them up together: their loads from
/// the cache are independent, so the memory system serves them side by side
/// instead of one miss after the other.
const BATCH: usize = 32;

/// One worker's verdict cache, conversations and time histogram.
///
/// The cache is an open-addressing table of 64-bit fingerprints of keys:
/// each slot holds a conversation's index and 32 bits of its fingerprint,
/// small enough for the table to stay in cache; the key stored next to the
/// counters confirms a match, so keys whose fingerprints collide (never by
/// chance; possible with crafted input) simply take two slots. Flows are
/// looked up in batches of [`BATCH`].
pub struct Tally<'a> {
    versions: [Option<&'a Compiled>; 2],
    /// `tag << 32 | index + 1` per slot (0: empty); linear probing from the
    /// fingerprint's top bits.
    table: Vec<u64>,
    /// log2 of `table.len()`.
    bits: u32,
    hot: Vec<Hot>,
    verdicts: Vec<[Option<Judged>; 2]>,
    /// Flows added and not yet counted.
    pending: Vec<Observed>,
    slots: Slots,
    last_slot: Option<(i64, [u64; OUTCOMES])>,
    /// The first and last minute slot of every flow counted, when slots
    /// hold buckets of the timeline rather than minutes (flows read as
    /// conversations, [`Tally::add_conversation`]).
    pub(crate) span: Option<(i64, i64)>,
}

/// The 64-bit fingerprint of a key, keyed per process: flows someone shapes
/// cannot be made to share one probe chain (a lookup per flow growing with
/// the flows) without knowing the key. Nothing output depends on it.
fn fingerprint(k: &Key) -> u64 {
    static SEED: OnceLock<usize> = OnceLock::new();
    let seed = *SEED.get_or_init(|| RandomState::new().hash_one(0u8) as usize);
    let mut h = KeyHasher::with_seed(seed);
    k.hash(&mut h);
    // Fx leaves the low bits weak: mix them in (the tag is the low half).
    let x = h.finish();
    let x = (x ^ (x >> 31)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 29)
}

/// Slot `slot` holds a key whose fingerprint may be `f` (its low half
/// matches); the stored key decides.
fn tagged(slot: u64, f: u64) -> bool {
    slot >> 32 == f & 0xffff_ffff
}

impl<'a> Tally<'a> {
    pub(crate) fn new(main: &'a Compiled, against: Option<&'a Compiled>) -> Self {
        Tally {
            versions: [Some(main), against],
            table: vec![0; 1 << 10],
            bits: 10,
            hot: Vec::new(),
            verdicts: Vec::new(),
            pending: Vec::with_capacity(BATCH),
            slots: FxHashMap::default(),
            last_slot: None,
            span: None,
        }
    }

    /// Where fingerprint `f` starts probing.
    fn home(&self, f: u64) -> usize {
        (f >> (64 - self.bits)) as usize
    }

    /// The index of a conversation, if this worker has it.
    fn find(&self, k: &Key, f: u64) -> Option<u32> {
        let mask = self.table.len() - 1;
        let mut at = self.home(f);
        loop {
            let slot = self.table[at];
            if slot == 0 {
                return None;
            }
            if tagged(slot, f) {
                let i = (slot as u32) - 1;
                if self.hot[i as usize].key == *k {
                    return Some(i);
                }
            }
            at = (at + 1) & mask;
        }
    }

    /// Put index `i` with fingerprint `f` in the first free slot.
    fn place(&mut self, f: u64, i: u32) {
        let mask = self.table.len() - 1;
        let mut at = self.home(f);
        while self.table[at] != 0 {
            at = (at + 1) & mask;
        }
        self.table[at] = f << 32 | u64::from(i + 1);
    }

    /// Add a conversation with its verdicts; returns its index.
    fn push(&mut self, k: Key, f: u64, verdicts: [Option<Judged>; 2], counters: Counters) -> u32 {
        let i = self.hot.len() as u32;
        self.hot.push(Hot {
            key: k,
            allowed: verdicts[0].is_some_and(|j| j.verdict.allowed()),
            counters,
        });
        self.verdicts.push(verdicts);
        // At most half full: probes stay short.
        if self.hot.len() * 2 > self.table.len() {
            self.bits += 1;
            self.table = vec![0; 1 << self.bits];
            for j in 0..self.hot.len() {
                let g = fingerprint(&self.hot[j].key);
                self.place(g, j as u32);
            }
        } else {
            self.place(f, i);
        }
        i
    }

    /// Judge a new conversation; returns its index.
    #[cold]
    fn insert(&mut self, k: Key, f: u64) -> u32 {
        let verdicts = self.versions.map(|c| c.map(|c| judge(c, &k)));
        self.push(k, f, verdicts, Counters::default())
    }

    /// The index of a conversation, judged if it is new to this worker.
    fn entry(&mut self, o: &Observed) -> usize {
        let k = Key::of(o);
        let f = fingerprint(&k);
        match self.find(&k, f) {
            Some(i) => i as usize,
            None => self.insert(k, f) as usize,
        }
    }

    /// Count `flows` flows of one conversation that a table aggregated
    /// (`o` carries their packets, bytes and times), judging it if it is
    /// new to this worker. Their minutes are not known: the timeline comes
    /// from [`Tally::add_bucket`].
    pub fn add_conversation(&mut self, o: &Observed, flows: u64) {
        let i = self.entry(o);
        self.hot[i].counters.add(o, net_index(o.verdict), flows);
    }

    /// Whether the policy allows a conversation this tally judged.
    pub(crate) fn allows(&self, o: &Observed) -> Option<bool> {
        let k = Key::of(o);
        self.find(&k, fingerprint(&k))
            .map(|i| self.hot[i as usize].allowed)
    }

    /// Count `flows` flows of one outcome in the timeline bucket starting
    /// at minute `slot`.
    pub(crate) fn add_bucket(&mut self, slot: i64, outcome: Outcome, flows: u64) {
        let mut counts = [0; OUTCOMES];
        counts[outcome as usize] = flows;
        add_slot(&mut self.slots, slot, &counts);
    }

    /// Count one flow, judging its conversation if it is new to this worker
    /// (counted with the next batch, or at [`Tally::flush`]).
    pub fn add(&mut self, o: &Observed) {
        self.pending.push(*o);
        if self.pending.len() == BATCH {
            self.count_pending();
        }
    }

    /// Count the flows held, in three passes: read each one's first slot,
    /// then the conversation it names, then count. The first two passes only
    /// load (their values are hints, checked in the third), so their cache
    /// misses overlap.
    fn count_pending(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        let mut keys = [(Key::default(), 0u64, 0u64); BATCH];
        for (o, (k, f, slot)) in pending.iter().zip(&mut keys) {
            *k = Key::of(o);
            *f = fingerprint(k);
            *slot = self.table[self.home(*f)];
        }
        let mut hints = [u32::MAX; BATCH];
        for ((_, f, slot), hint) in keys.iter().zip(&mut hints) {
            if *slot != 0 && tagged(*slot, *f) {
                let i = (*slot as u32) - 1;
                std::hint::black_box(self.hot[i as usize].key.meta);
                *hint = i;
            }
        }
        for ((o, (k, f, _)), hint) in pending.iter().zip(keys).zip(hints) {
            let i = match self.hot.get(hint as usize) {
                Some(h) if h.key == k => hint,
                _ => match self.find(&k, f) {
                    Some(i) => i,
                    None => self.insert(k, f),
                },
            };
            self.count(o, i as usize);
        }
        self.pending = pending;
        self.pending.clear();
    }

    /// Count one flow of conversation `i`.
    fn count(&mut self, o: &Observed, i: usize) {
        let hot = &mut self.hot[i];
        hot.counters.add(o, net_index(o.verdict), 1);
        let outcome = Outcome::of(hot.allowed, o.verdict);
        // Flows mostly arrive in time order: keep the current minute at hand.
        let slot = o.first_ns.div_euclid(NANOS * SLOT_SECS);
        match &mut self.last_slot {
            Some((s, counts)) if *s == slot => counts[outcome as usize] += 1,
            last => {
                if let Some((s, counts)) = last.take() {
                    add_slot(&mut self.slots, s, &counts);
                }
                let mut counts = [0; OUTCOMES];
                counts[outcome as usize] += 1;
                *last = Some((slot, counts));
            }
        }
    }

    /// Count the flows held and fold the minute at hand into the histogram.
    pub fn flush(&mut self) {
        self.count_pending();
        if let Some((s, counts)) = self.last_slot.take() {
            add_slot(&mut self.slots, s, &counts);
        }
    }

    /// Distinct conversations seen by this worker (after [`Tally::flush`]).
    pub fn conversations(&self) -> usize {
        self.hot.len()
    }

    /// Every conversation with its verdicts and counters, in no order.
    pub(crate) fn into_entries(self) -> (Vec<(Key, Entry)>, Slots) {
        let entries = self
            .hot
            .into_iter()
            .zip(self.verdicts)
            .map(|(h, verdicts)| {
                let e = Entry {
                    verdicts,
                    allowed: h.allowed,
                    counters: h.counters,
                };
                (h.key, e)
            })
            .collect();
        (entries, self.slots)
    }

    /// Merge another worker's tally into this one.
    pub fn merge(&mut self, mut other: Tally<'a>) {
        self.flush();
        other.flush();
        for (h, verdicts) in other.hot.into_iter().zip(other.verdicts) {
            let f = fingerprint(&h.key);
            match self.find(&h.key, f) {
                Some(i) => self.hot[i as usize].counters.merge(&h.counters),
                None => {
                    self.push(h.key, f, verdicts, h.counters);
                }
            }
        }
        for (s, counts) in other.slots {
            add_slot(&mut self.slots, s, &counts);
        }
        self.span = match (self.span, other.span) {
            (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
            (a, b) => a.or(b),
        };
    }
}

fn add_slot(slots: &mut Slots, s: i64, counts: &[u64; OUTCOMES]) {
    let e = slots.entry(s).or_insert([0; OUTCOMES]);
    for (a, b) in e.iter_mut().zip(counts) {
        *a += b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(src: &str, dst: &str, proto: Proto, port: Option<u16>) -> Observed {
        Observed {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            proto,
            port,
            orig: None,
            packets: 1,
            bytes: 1,
            first_ns: 0,
            last_ns: 0,
            verdict: None,
        }
    }

    #[test]
    fn keys_give_back_what_they_pack() {
        let mut cases = vec![
            obs("10.0.0.1", "10.0.0.2", Proto::Tcp, Some(0)),
            obs("10.0.0.1", "10.0.0.2", Proto::Tcp, Some(65535)),
            obs("fd00::1", "2001:db8::2", Proto::Udp, Some(53)),
            obs("::ffff:10.0.0.1", "10.0.0.1", Proto::Sctp, Some(9)),
            obs("192.0.2.1", "198.51.100.2", Proto::Icmp, None),
        ];
        let mut nat = obs("10.0.0.1", "10.1.0.9", Proto::Tcp, Some(8080));
        nat.orig = Some(("10.96.0.10".parse().unwrap(), Some(80)));
        cases.push(nat);
        let mut nat6 = obs("fd00::1", "fd00::9", Proto::Udp, Some(5353));
        nat6.orig = Some(("fd96::a".parse().unwrap(), None));
        cases.push(nat6);
        let keys: Vec<Key> = cases.iter().map(Key::of).collect();
        for (o, k) in cases.iter().zip(&keys) {
            assert_eq!(
                (k.src(), k.dst(), k.proto(), k.port(), k.orig()),
                (o.src, o.dst, o.proto, o.port, o.orig)
            );
        }
        // An IPv4-mapped IPv6 address is not the IPv4 address.
        assert_ne!(keys[3].src(), keys[0].src());
        for (i, a) in keys.iter().enumerate() {
            for (j, b) in keys.iter().enumerate() {
                assert_eq!(a == b, i == j);
            }
        }
    }

    fn compiled() -> Compiled {
        use ringfence_testkit::builder::{IntentBuilder, cluster_c1, pod, q};
        let mut b = IntentBuilder::new();
        b.scope("top", None, q::cluster("c1"));
        let inv = cluster_c1(1, vec![pod("a", "p", "n1", &["10.0.0.1"])], Vec::new());
        ringfence_core::compile(&b.build(), &inv).0.unwrap()
    }

    /// Keys with the same fingerprint (forced here; by chance it does not
    /// happen) take slots of their own, told apart by their keys.
    #[test]
    fn colliding_fingerprints_keep_their_conversations_apart() {
        let c = compiled();
        let one = obs("10.0.0.1", "10.0.0.2", Proto::Tcp, Some(80));
        let two = obs("10.0.0.1", "10.0.0.3", Proto::Tcp, Some(80));
        let three = obs("10.0.0.1", "10.0.0.4", Proto::Tcp, Some(80));
        let (k1, k2, k3) = (Key::of(&one), Key::of(&two), Key::of(&three));
        let mut t = Tally::new(&c, None);
        let i1 = t.insert(k1, 7);
        let i2 = t.insert(k2, 7);
        assert_ne!(i1, i2);
        assert_eq!(t.find(&k1, 7), Some(i1));
        assert_eq!(t.find(&k2, 7), Some(i2));
        assert_eq!(t.find(&k3, 7), None);
        let i3 = t.insert(k3, 7);
        assert_eq!(t.find(&k3, 7), Some(i3));
        assert_eq!(t.conversations(), 3);
    }
}
