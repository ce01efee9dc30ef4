//! Fast (de)serialisation of prefix lists, the bulk of every IR.
//!
//! The JSON is exactly what `ipnet`'s own serde impls read and write (a list
//! of `"addr/len"` strings); only the speed differs: a node's IR carries
//! thousands of prefixes, and going through `core::fmt` and `ipnet`'s
//! generic parser was most of the time spent encoding an IR on the
//! compiler's side and decoding it in a plugin. Text the fast paths do not
//! handle (non-canonical IPv6, errors) goes to `ipnet`, so what is accepted
//! and every error message stay the same. Non-human-readable formats use
//! `ipnet`'s impls unchanged.

use std::fmt;
use std::marker::PhantomData;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use super::write::{push_v4net, push_v6, push_v6net};

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
    let mut octets = [0u8; 4];
    for (k, o) in octets.iter_mut().enumerate() {
        if k > 0 {
            (b.get(i) == Some(&b'.')).then_some(())?;
            i += 1;
        }
        *o = digits(b, &mut i, 3, 256)? as u8;
    }
    (b.get(i) == Some(&b'/')).then_some(())?;
    i += 1;
    let len = digits(b, &mut i, 2, 33)? as u8;
    (i == b.len()).then_some(())?;
    Ipv4Net::new(Ipv4Addr::from(octets), len).ok()
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

/// A prefix type with a fast text form.
trait Write {
    fn write(&self, out: &mut String);
}

impl Write for Ipv4Net {
    fn write(&self, out: &mut String) {
        push_v4net(out, self);
    }
}

impl Write for Ipv6Net {
    fn write(&self, out: &mut String) {
        push_v6net(out, self);
    }
}

/// A prefix type with a fast text form.
trait Prefix: Sized + Serialize + for<'de> Deserialize<'de> {
    /// What `ipnet`'s visitor says it expects.
    const EXPECTING: &'static str;
    fn fast(s: &str) -> Option<Self>;
    fn slow(s: &str) -> Result<Self, ipnet::AddrParseError>;
}

impl Prefix for Ipv4Net {
    const EXPECTING: &'static str = "IPv4 network address";
    fn fast(s: &str) -> Option<Self> {
        parse_v4(s)
    }
    fn slow(s: &str) -> Result<Self, ipnet::AddrParseError> {
        s.parse()
    }
}

impl Prefix for Ipv6Net {
    const EXPECTING: &'static str = "IPv6 network address";
    fn fast(s: &str) -> Option<Self> {
        parse_v6(s)
    }
    fn slow(s: &str) -> Result<Self, ipnet::AddrParseError> {
        s.parse()
    }
}

/// One prefix read from a string.
struct Parsed<N>(N);

impl<'de, N: Prefix> Deserialize<'de> for Parsed<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<N>(PhantomData<N>);
        impl<N: Prefix> Visitor<'_> for V<N> {
            type Value = N;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(N::EXPECTING)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<N, E> {
                match N::fast(s) {
                    Some(n) => Ok(n),
                    None => N::slow(s).map_err(E::custom),
                }
            }
        }
        d.deserialize_str(V(PhantomData)).map(Parsed)
    }
}

fn serialize_list<N: Serialize + Write, S: Serializer>(v: &[N], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    if !s.is_human_readable() {
        return v.serialize(s);
    }
    let mut seq = s.serialize_seq(Some(v.len()))?;
    // One reused string: at most 43 bytes (`ffff:…:ffff/128`).
    let mut b = String::with_capacity(48);
    for n in v {
        b.clear();
        n.write(&mut b);
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
            while let Some(Parsed(n)) = seq.next_element::<Parsed<N>>()? {
                out.push(n);
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
        let v6: Vec<Ipv6Net> = v6_cases(&mut seed, 30_000)
            .into_iter()
            .map(|a| Ipv6Net::new(a, (a.segments()[7] % 129) as u8).unwrap())
            .collect();
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
