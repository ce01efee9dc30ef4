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

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::net::IpAddr;

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

/// What identifies a conversation: everything the verdict depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Key {
    pub(crate) src: IpAddr,
    pub(crate) dst: IpAddr,
    pub(crate) proto: Proto,
    pub(crate) port: Option<u16>,
    pub(crate) orig: Option<(IpAddr, Option<u16>)>,
}

impl Key {
    pub(crate) fn of(o: &Observed) -> Self {
        Key {
            src: o.src,
            dst: o.dst,
            proto: o.proto,
            port: o.port,
            orig: o.orig,
        }
    }
}

/// An address as two words (IPv4 tagged so it never looks like IPv6 zeros).
fn words(a: IpAddr) -> (u64, u64) {
    match a {
        IpAddr::V4(v) => (u64::from(u32::from(v)), 4),
        IpAddr::V6(v) => {
            let b = u128::from(v);
            (b as u64, (b >> 64) as u64)
        }
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        // Few wide words instead of the byte-wise derive: this runs per flow.
        let (s0, s1) = words(self.src);
        let (d0, d1) = words(self.dst);
        h.write_u64(s0 ^ d0.rotate_left(32));
        h.write_u64(s1 ^ d1.rotate_left(17));
        let port = |p: Option<u16>| p.map_or(0, |p| u64::from(p) + 1);
        let (o, op) = match self.orig {
            Some((ip, p)) => (words(ip), port(p)),
            None => ((0, 0), 0),
        };
        h.write_u64(
            self.proto as u64 | port(self.port) << 8 | op << 32 | o.0.rotate_left(48) ^ o.1,
        );
    }
}

/// FxHash's multiply-rotate with a SplitMix finaliser (the table uses the
/// low bits, which must depend on every word). Keys come from flow files, so
/// an adversary could aim for collisions; the cost is a slower run, never a
/// wrong result.
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<KeyHasher>>;

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
    if let Some((orig, orig_port)) = k.orig
        && orig != k.dst
    {
        let v = c.verdict(k.src, orig, k.proto, orig_port.or(k.port));
        if v.translation.is_some_and(|t| t.via != Via::ClusterIp) {
            return Judged {
                verdict: v,
                at_orig: true,
            };
        }
    }
    Judged {
        verdict: c.verdict(k.src, k.dst, k.proto, k.port),
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
    fn add(&mut self, o: &Observed, n: usize) {
        if self.flows.iter().all(|&f| f == 0) {
            self.first_ns = o.first_ns;
            self.last_ns = o.last_ns;
        } else {
            self.first_ns = self.first_ns.min(o.first_ns);
            self.last_ns = self.last_ns.max(o.last_ns);
        }
        self.flows[n] += 1;
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
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    /// The verdict of each version (the analysed one first).
    pub(crate) verdicts: [Option<Judged>; 2],
    /// Whether the analysed version's policy allows it.
    pub(crate) allowed: bool,
    pub(crate) counters: Counters,
}

/// One worker's verdict cache, conversations and time histogram.
pub struct Tally<'a> {
    versions: [Option<&'a Compiled>; 2],
    pub(crate) entries: FastMap<Key, Entry>,
    /// Minute slot → flows per outcome.
    pub(crate) slots: FastMap<i64, [u64; OUTCOMES]>,
    last_slot: Option<(i64, [u64; OUTCOMES])>,
}

impl<'a> Tally<'a> {
    pub(crate) fn new(main: &'a Compiled, against: Option<&'a Compiled>) -> Self {
        Tally {
            versions: [Some(main), against],
            entries: FastMap::default(),
            slots: FastMap::default(),
            last_slot: None,
        }
    }

    /// Count one flow, judging its conversation if it is new to this worker.
    pub fn add(&mut self, o: &Observed) {
        let versions = self.versions;
        let entry = self.entries.entry(Key::of(o)).or_insert_with_key(|k| {
            let verdicts = versions.map(|c| c.map(|c| judge(c, k)));
            Entry {
                allowed: verdicts[0].is_some_and(|j| j.verdict.allowed()),
                verdicts,
                counters: Counters::default(),
            }
        });
        let n = net_index(o.verdict);
        entry.counters.add(o, n);
        let outcome = Outcome::of(entry.allowed, o.verdict);
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

    /// Fold the slot at hand into the histogram.
    pub(crate) fn flush(&mut self) {
        if let Some((s, counts)) = self.last_slot.take() {
            add_slot(&mut self.slots, s, &counts);
        }
    }

    /// Distinct conversations seen by this worker.
    pub fn conversations(&self) -> usize {
        self.entries.len()
    }

    /// Merge another worker's tally into this one.
    pub fn merge(&mut self, mut other: Tally<'a>) {
        self.flush();
        other.flush();
        for (k, e) in other.entries {
            match self.entries.entry(k) {
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    o.get_mut().counters.merge(&e.counters);
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(e);
                }
            }
        }
        for (s, counts) in other.slots {
            add_slot(&mut self.slots, s, &counts);
        }
    }
}

fn add_slot(slots: &mut FastMap<i64, [u64; OUTCOMES]>, s: i64, counts: &[u64; OUTCOMES]) {
    let e = slots.entry(s).or_insert([0; OUTCOMES]);
    for (a, b) in e.iter_mut().zip(counts) {
        *a += b;
    }
}
