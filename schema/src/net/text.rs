//! Fast (de)serialisation of prefix lists, the bulk of every IR.
//!
//! A list is written as strings: a prefix alone as `"addr/len"` (what
//! `ipnet`'s serde impls write), and a run of two or more adjacent prefixes
//! as the range they cover, `"first-last"` (IR version 3): a canonical set
//! of pod addresses is mostly such runs, each five or so prefixes long, so
//! the range form makes a node's IR and bundle about a third smaller. A
//! range is read back as its smallest cover of prefixes, which for a
//! canonical list is exactly the run it was written from.
//!
//! Going through `core::fmt` and `ipnet`'s generic parser was most of the
//! time spent encoding an IR on the compiler's side and decoding it in a
//! plugin, hence the hand-written fast paths. Prefix text they do not handle
//! (non-canonical IPv6, errors) goes to `ipnet`, so what is accepted and
//! every error message stay the same. Non-human-readable formats use
//! `ipnet`'s impls unchanged.

use std::fmt;
use std::marker::PhantomData;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use super::write::{push_v4, push_v4net, push_v6, push_v6net};

/// Read one to `max` decimal digits at `*i`, below `limit`; `None` if there
/// are none, more than `max` in a row, or the value is too big (as `ipnet`'s
/// parser reads numbers).
fn digits(b: &[u8], i: &mut usize, max: usize, limit: u32) -> Option<u32> {
    let start = *i;
    let mut n = 0u32;
    while let Some(d) = b.get(*i).filter(|d| d.is_ascii_digit()) {
        if *i - start == max {
            return None;
        }
        n = n * 10 + u32::from(d - b'0');
        *i += 1;
    }
    (*i > start && n < limit).then_some(n)
}

/// `a.b.c.d/len` with `ipnet`'s grammar exactly: octets of one to three
/// digits below 256, a length of one or two digits up to 32.
fn parse_v4(s: &str) -> Option<Ipv4Net> {
    let b = s.as_bytes();
    let mut i = 0;
    let octets = octets(b, &mut i)?;
    (b.get(i) == Some(&b'/')).then_some(())?;
    i += 1;
    let len = digits(b, &mut i, 2, 33)? as u8;
    (i == b.len()).then_some(())?;
    Ipv4Net::new(Ipv4Addr::from(octets), len).ok()
}

/// `a.b.c.d` at `*i`: octets of one to three digits below 256.
fn octets(b: &[u8], i: &mut usize) -> Option<[u8; 4]> {
    let mut octets = [0u8; 4];
    for (k, o) in octets.iter_mut().enumerate() {
        if k > 0 {
            (b.get(*i) == Some(&b'.')).then_some(())?;
            *i += 1;
        }
        *o = digits(b, i, 3, 256)? as u8;
    }
    Some(octets)
}

/// `addr/len` where `addr` is in the canonical form `Ipv6Addr` displays
/// (which `ipnet` reads to the same address); anything else is left to
/// `ipnet`.
fn parse_v6(s: &str) -> Option<Ipv6Net> {
    let (addr, len) = s.rsplit_once('/')?;
    let a: Ipv6Addr = addr.parse().ok()?;
    let mut canonical = String::with_capacity(48);
    push_v6(&mut canonical, a);
    (canonical == addr).then_some(())?;
    let b = len.as_bytes();
    let mut i = 0;
    let len = digits(b, &mut i, 3, 129)? as u8;
    (i == b.len()).then_some(())?;
    Ipv6Net::new(a, len).ok()
}

/// A prefix type with a fast text form, as a span of addresses widened to
/// `u128` (so one decomposition serves both families).
trait Prefix: Copy + Sized + Serialize + for<'de> Deserialize<'de> {
    /// What `ipnet`'s visitor says it expects.
    const EXPECTING: &'static str;
    /// Address width in bits.
    const BITS: u32;
    fn fast(s: &str) -> Option<Self>;
    fn slow(s: &str) -> Result<Self, ipnet::AddrParseError>;
    fn write(&self, out: &mut String);
    /// First and last address.
    fn span(&self) -> (u128, u128);
    /// The prefix of `len` bits at `addr` (aligned).
    fn at(addr: u128, len: u8) -> Self;
    fn parse_addr(s: &str) -> Option<u128>;
    fn push_addr(out: &mut String, addr: u128);
}

impl Prefix for Ipv4Net {
    const EXPECTING: &'static str = "IPv4 network address";
    const BITS: u32 = 32;
    fn fast(s: &str) -> Option<Self> {
        parse_v4(s)
    }
    fn slow(s: &str) -> Result<Self, ipnet::AddrParseError> {
        s.parse()
    }
    fn write(&self, out: &mut String) {
        push_v4net(out, self);
    }
    fn span(&self) -> (u128, u128) {
        (
            u32::from(self.network()).into(),
            u32::from(self.broadcast()).into(),
        )
    }
    fn at(addr: u128, len: u8) -> Self {
        Ipv4Net::new(Ipv4Addr::from(addr as u32), len).expect("a length within 32")
    }
    fn parse_addr(s: &str) -> Option<u128> {
        let mut i = 0;
        let a = octets(s.as_bytes(), &mut i)?;
        (i == s.len()).then(|| u32::from_be_bytes(a).into())
    }
    fn push_addr(out: &mut String, addr: u128) {
        push_v4(out, Ipv4Addr::from(addr as u32));
    }
}

impl Prefix for Ipv6Net {
    const EXPECTING: &'static str = "IPv6 network address";
    const BITS: u32 = 128;
    fn fast(s: &str) -> Option<Self> {
        parse_v6(s)
    }
    fn slow(s: &str) -> Result<Self, ipnet::AddrParseError> {
        s.parse()
    }
    fn write(&self, out: &mut String) {
        push_v6net(out, self);
    }
    fn span(&self) -> (u128, u128) {
        (self.network().into(), self.broadcast().into())
    }
    fn at(addr: u128, len: u8) -> Self {
        Ipv6Net::new(Ipv6Addr::from(addr), len).expect("a length within 128")
    }
    fn parse_addr(s: &str) -> Option<u128> {
        s.parse::<Ipv6Addr>().ok().map(u128::from)
    }
    fn push_addr(out: &mut String, addr: u128) {
        push_v6(out, Ipv6Addr::from(addr));
    }
}

/// Append the smallest list of prefixes covering `first..=last`.
fn cover<N: Prefix>(mut first: u128, last: u128, out: &mut Vec<N>) {
    // The last address of the block of `host` bits at an aligned address.
    let mask = |host: u32| {
        if host == 0 {
            0
        } else {
            u128::MAX >> (128 - host)
        }
    };
    loop {
        // The largest block aligned at `first` that ends by `last`.
        let mut host = first.trailing_zeros().min(N::BITS);
        while first | mask(host) > last {
            host -= 1;
        }
        out.push(N::at(first, (N::BITS - host) as u8));
        let end = first | mask(host);
        if end >= last {
            return;
        }
        first = end + 1;
    }
}

/// One string of a list: a prefix, or a range of addresses.
enum Item<N> {
    One(N),
    Range(u128, u128),
}

impl<'de, N: Prefix> Deserialize<'de> for Item<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<N>(PhantomData<N>);
        impl<N: Prefix> Visitor<'_> for V<N> {
            type Value = Item<N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(N::EXPECTING)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Item<N>, E> {
                if let Some((a, b)) = s.split_once('-') {
                    return match (N::parse_addr(a), N::parse_addr(b)) {
                        (Some(a), Some(b)) if a <= b => Ok(Item::Range(a, b)),
                        (Some(_), Some(_)) => Err(E::custom(format!(
                            "address range `{s}` is reversed (write first-last)"
                        ))),
                        _ => Err(E::custom(format!(
                            "invalid {} range `{s}` (expected first-last)",
                            N::EXPECTING
                        ))),
                    };
                }
                match N::fast(s) {
                    Some(n) => Ok(Item::One(n)),
                    None => N::slow(s).map(Item::One).map_err(E::custom),
                }
            }
        }
        d.deserialize_str(V(PhantomData))
    }
}

fn serialize_list<N: Prefix, S: Serializer>(v: &[N], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    if !s.is_human_readable() {
        return v.serialize(s);
    }
    let mut seq = s.serialize_seq(None)?;
    // One reused string: at most 79 bytes (`ffff:…:ffff-ffff:…:ffff`).
    let mut b = String::with_capacity(80);
    for run in v.chunk_by(|a, b| a.span().1.checked_add(1) == Some(b.span().0)) {
        b.clear();
        match run {
            [n] => n.write(&mut b),
            _ => {
                N::push_addr(&mut b, run[0].span().0);
                b.push('-');
                N::push_addr(&mut b, run[run.len() - 1].span().1);
            }
        }
        seq.serialize_element(b.as_str())?;
    }
    seq.end()
}

fn deserialize_list<'de, N: Prefix, D: Deserializer<'de>>(d: D) -> Result<Vec<N>, D::Error> {
    if !d.is_human_readable() {
        return Vec::<N>::deserialize(d);
    }
    struct V<N>(PhantomData<N>);
    impl<'de, N: Prefix> Visitor<'de> for V<N> {
        type Value = Vec<N>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a sequence")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<N>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(item) = seq.next_element::<Item<N>>()? {
                match item {
                    Item::One(n) => out.push(n),
                    Item::Range(a, b) => cover(a, b, &mut out),
                }
            }
            Ok(out)
        }
    }
    d.deserialize_seq(V(PhantomData))
}

/// `#[serde(with = "text::v4")]` for `Vec<Ipv4Net>`.
pub(super) mod v4 {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &[Ipv4Net], s: S) -> Result<S::Ok, S::Error> {
        serialize_list(v, s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Ipv4Net>, D::Error> {
        deserialize_list(d)
    }
}

/// `#[serde(with = "text::v6")]` for `Vec<Ipv6Net>`.
pub(super) mod v6 {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &[Ipv6Net], s: S) -> Result<S::Ok, S::Error> {
        serialize_list(v, s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Ipv6Net>, D::Error> {
        deserialize_list(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::write::tests::rng;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Fast {
        #[serde(with = "v4")]
        v4: Vec<Ipv4Net>,
        #[serde(with = "v6")]
        v6: Vec<Ipv6Net>,
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Ipnet {
        v4: Vec<Ipv4Net>,
        v6: Vec<Ipv6Net>,
    }

    fn v6_cases(seed: &mut u64, n: usize) -> Vec<Ipv6Addr> {
        let mut v: Vec<u128> = vec![0, 1, u128::MAX, 0xffff_0a00_0001, 0x1_0000_0000];
        for _ in 0..n {
            // Groups zero half the time: zero runs of every length, position and tie.
            let mut a = 0u128;
            for _ in 0..8 {
                let r = rng(seed);
                let g = if r & 1 == 0 {
                    0
                } else {
                    (r >> 8) as u16 >> (r % 13)
                };
                a = a << 16 | u128::from(g);
            }
            v.push(a);
        }
        v.extend((0..500).map(|_| 0xffff_0000_0000 | u128::from(rng(seed) as u32)));
        v.extend((0..500).map(|_| u128::from(rng(seed) as u32)));
        v.into_iter().map(Ipv6Addr::from).collect()
    }

    /// Same JSON as `ipnet`'s impls, both ways, on many prefixes.
    #[test]
    fn same_json_as_ipnet() {
        let mut seed = 3;
        let mut v4: Vec<Ipv4Net> = (0..=255u32)
            .flat_map(|o| [o, o << 8, o << 16, o << 24])
            .chain((0..20_000).map(|_| rng(&mut seed) as u32))
            .map(|a| Ipv4Net::new(Ipv4Addr::from(a), (a % 33) as u8).unwrap())
            .collect();
        v4.push(Ipv4Net::new(Ipv4Addr::BROADCAST, 32).unwrap());
        let mut v6: Vec<Ipv6Net> = v6_cases(&mut seed, 30_000)
            .into_iter()
            .map(|a| Ipv6Net::new(a, (a.segments()[7] % 129) as u8).unwrap())
            .collect();
        // Adjacent neighbours are written as a range (see below).
        v4.dedup_by(|b, a| a.span().1.checked_add(1) == Some(b.span().0));
        v6.dedup_by(|b, a| a.span().1.checked_add(1) == Some(b.span().0));
        let fast = Fast { v4, v6 };
        let json = serde_json::to_string(&fast).unwrap();
        let reference = Ipnet {
            v4: fast.v4.clone(),
            v6: fast.v6.clone(),
        };
        assert_eq!(json, serde_json::to_string(&reference).unwrap());
        assert_eq!(serde_json::from_str::<Fast>(&json).unwrap(), fast);
        // What we write, the fast paths read (no detour through ipnet).
        for n in &fast.v4 {
            assert_eq!(parse_v4(&n.to_string()), Some(*n));
        }
        for n in &fast.v6 {
            assert_eq!(parse_v6(&n.to_string()), Some(*n));
        }
    }

    /// Runs of adjacent prefixes are written as ranges and read back as the
    /// same prefixes; a range is read as its smallest cover.
    #[test]
    fn adjacent_prefixes_are_written_as_ranges() {
        let v4 = |s: &[&str]| {
            s.iter()
                .map(|n| n.parse().unwrap())
                .collect::<Vec<Ipv4Net>>()
        };
        let v6 = |s: &[&str]| {
            s.iter()
                .map(|n| n.parse().unwrap())
                .collect::<Vec<Ipv6Net>>()
        };
        let set = Fast {
            v4: v4(&[
                "0.0.0.0/32",
                "10.0.0.2/31",
                "10.0.0.4/30",
                "10.0.0.8/32",
                "10.0.0.10/32",
                "255.255.255.254/31",
            ]),
            v6: v6(&["fd00::2/127", "fd00::4/126", "fd00::10/124"]),
        };
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(
            json,
            r#"{"v4":["0.0.0.0/32","10.0.0.2-10.0.0.8","10.0.0.10/32","255.255.255.254/31"],"v6":["fd00::2-fd00::7","fd00::10/124"]}"#
        );
        assert_eq!(serde_json::from_str::<Fast>(&json).unwrap(), set);
        let read = |json: &str| serde_json::from_str::<Fast>(json).map_err(|e| e.to_string());
        assert_eq!(
            read(
                r#"{"v4":["0.0.0.0-255.255.255.255"],"v6":["::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"]}"#
            ),
            Ok(Fast {
                v4: v4(&["0.0.0.0/0"]),
                v6: v6(&["::/0"])
            })
        );
        assert_eq!(
            read(r#"{"v4":["10.0.0.5-10.0.0.5"],"v6":[]}"#),
            Ok(Fast {
                v4: v4(&["10.0.0.5/32"]),
                v6: vec![]
            })
        );
        for (bad, why) in [
            (r#"["10.0.0.9-10.0.0.8"]"#, "reversed"),
            (
                r#"["10.0.0.1-fd00::1"]"#,
                "invalid IPv4 network address range",
            ),
            (r#"["10.0.0.1-"]"#, "invalid IPv4 network address range"),
            (
                r#"["10.0.0.1/32-10.0.0.4"]"#,
                "invalid IPv4 network address range",
            ),
        ] {
            let e = v4::deserialize(&mut serde_json::Deserializer::from_str(bad)).unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
        // The cover of random ranges is what `ipnet` aggregates them to.
        let mut seed = 5;
        for _ in 0..2_000 {
            let a = rng(&mut seed) as u32 >> (rng(&mut seed) % 32);
            let b = a.saturating_add(rng(&mut seed) as u32 % 600);
            let mut ours: Vec<Ipv4Net> = Vec::new();
            cover(a.into(), b.into(), &mut ours);
            let each: Vec<Ipv4Net> = (a..=b)
                .map(|x| Ipv4Net::new(x.into(), 32).unwrap())
                .collect();
            assert_eq!(ours, Ipv4Net::aggregate(&each), "{a}-{b}");
            let wide = u128::from(a) << 96 | u128::from(rng(&mut seed));
            let mut ours6: Vec<Ipv6Net> = Vec::new();
            cover(wide, wide + u128::from(b - a), &mut ours6);
            let each6: Vec<Ipv6Net> = (wide..=wide + u128::from(b - a))
                .map(|x| Ipv6Net::new(x.into(), 128).unwrap())
                .collect();
            assert_eq!(ours6, Ipv6Net::aggregate(&each6));
        }
    }

    /// Every text `ipnet` accepts is read to the same prefix, and every text
    /// it refuses is refused with the same message.
    #[test]
    fn same_parse_as_ipnet() {
        let mut seed = 4;
        let mut texts: Vec<String> = [
            "0.0.0.0/0",
            "10.0.0.1/8",
            "010.0.0.1/8",
            "1.2.3.4/032",
            "1.2.3.4/33",
            "1.2.3.4/",
            "1.2.3/8",
            "1.2.3.4.5/8",
            "256.0.0.0/8",
            "0001.0.0.0/8",
            "1.2.3.4/8/8",
            "1.2.3.4",
            " 1.2.3.4/8",
            "1.2.3.4/8 ",
            "+1.2.3.4/8",
            "1..3.4/8",
            "",
            "/",
            "::/0",
            "::1/128",
            "::/129",
            "::/0128",
            "::/064",
            "FD00::/8",
            "fd00:0::/16",
            "fd00::0/16",
            "::ffff:1.2.3.4/96",
            "::1.2.3.4/96",
            "1:2:3:4:5:6:7:8/64",
            "1:2:3:4:5:6:7::/64",
            "1::2::3/64",
            "1:2:3:4:5:6:7:8:9/64",
            "::/x",
            "fe80::1%1/64",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for _ in 0..5_000 {
            // Mutate valid texts: drop, double or replace a byte.
            let base = if rng(&mut seed) & 1 == 0 {
                let a = Ipv4Addr::from(rng(&mut seed) as u32);
                format!("{a}/{}", rng(&mut seed) % 40)
            } else {
                let a = v6_cases(&mut seed, 1)[5];
                format!("{a}/{}", rng(&mut seed) % 140)
            };
            let mut b = base.clone().into_bytes();
            let at = (rng(&mut seed) as usize) % b.len();
            match rng(&mut seed) % 4 {
                0 => {
                    b.remove(at);
                }
                1 => b.insert(at, b[at]),
                2 => b[at] = b"0123456789abcdef.:/"[(rng(&mut seed) % 19) as usize],
                _ => {}
            }
            texts.push(base);
            texts.push(String::from_utf8(b).unwrap());
        }
        for t in &texts {
            let json = serde_json::to_string(&[t]).unwrap();
            let ours4: Result<Vec<Ipv4Net>, String> =
                v4::deserialize(&mut serde_json::Deserializer::from_str(&json))
                    .map_err(|e| e.to_string());
            let theirs4 = serde_json::from_str::<Vec<Ipv4Net>>(&json).map_err(|e| e.to_string());
            assert_eq!(ours4, theirs4, "{t}");
            let ours6: Result<Vec<Ipv6Net>, String> =
                v6::deserialize(&mut serde_json::Deserializer::from_str(&json))
                    .map_err(|e| e.to_string());
            let theirs6 = serde_json::from_str::<Vec<Ipv6Net>>(&json).map_err(|e| e.to_string());
            assert_eq!(ours6, theirs6, "{t}");
        }
        // Not a string: the same complaint.
        let e = v4::deserialize(&mut serde_json::Deserializer::from_str("[1]")).unwrap_err();
        let theirs = serde_json::from_str::<Vec<Ipv4Net>>("[1]").unwrap_err();
        assert_eq!(e.to_string(), theirs.to_string());
    }
}
