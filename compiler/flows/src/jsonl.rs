//! ringfence JSON Lines: one [`FlowRecord`](ringfence_schema::flow::FlowRecord)
//! per line.
//!
//! Parsed through a borrowing mirror of the record so that a line costs no
//! allocation beyond the interned node and service names; a test keeps the
//! mirror and the schema type in step. Flat lines (no escapes, no nested
//! values: what ringfence and most tools write) take a hand-written scanner
//! that reads exactly what serde would; anything else goes to serde_json,
//! which also explains what is wrong.

use std::borrow::Cow;
use std::net::IpAddr;

use ringfence_schema::flow::NetworkVerdict;
use ringfence_schema::net::Proto;
use serde::Deserialize;

use crate::flow::Flow;
use crate::input::{ParseCtx, Parsed};

#[derive(Deserialize)]
struct Raw<'a> {
    src_ip: IpAddr,
    dst_ip: IpAddr,
    proto: Proto,
    #[serde(default)]
    dst_port: Option<u16>,
    #[serde(default)]
    src_port: Option<u16>,
    #[serde(default)]
    orig_dst_ip: Option<IpAddr>,
    #[serde(default)]
    orig_dst_port: Option<u16>,
    #[serde(default, borrow)]
    dst_service: Option<Cow<'a, str>>,
    #[serde(default)]
    packets: u64,
    #[serde(default)]
    bytes: u64,
    #[serde(borrow)]
    first_seen: Cow<'a, str>,
    #[serde(borrow)]
    last_seen: Cow<'a, str>,
    #[serde(default)]
    verdict: Option<NetworkVerdict>,
    #[serde(default, borrow)]
    node: Option<Cow<'a, str>>,
}

pub(crate) fn parse(line: &str, ctx: &mut ParseCtx) -> Result<Parsed, String> {
    let raw = match fast(line) {
        Some(raw) => raw,
        None => serde_json::from_str(line).map_err(|e| e.to_string())?,
    };
    to_flow(raw, ctx)
}

fn to_flow(raw: Raw<'_>, ctx: &mut ParseCtx) -> Result<Parsed, String> {
    let first_seen = ctx
        .times
        .parse(&raw.first_seen)
        .map_err(|e| format!("field `first_seen`: {e}"))?;
    // Many records are seen once: first and last are the same text.
    let last_seen = if raw.last_seen == raw.first_seen {
        first_seen
    } else {
        ctx.times
            .parse(&raw.last_seen)
            .map_err(|e| format!("field `last_seen`: {e}"))?
    };
    let flow = Flow {
        src_ip: raw.src_ip,
        dst_ip: raw.dst_ip,
        proto: raw.proto,
        src_port: raw.src_port,
        dst_port: raw.dst_port,
        orig_dst_ip: raw.orig_dst_ip,
        orig_dst_port: raw.orig_dst_port,
        dst_service: raw.dst_service.map(|s| ctx.intern(&s)),
        packets: raw.packets,
        bytes: raw.bytes,
        first_seen,
        last_seen,
        verdict: raw.verdict,
        node: raw.node.map(|s| ctx.intern(&s)),
    };
    flow.check()?;
    Ok(Parsed::Flow(Box::new(flow)))
}

/// A value of a flat object.
enum Val<'a> {
    Str(&'a str),
    Num(&'a str),
    Null,
    Other,
}

/// Bytes of a flat JSON object, read left to right.
struct Scan<'a> {
    b: &'a [u8],
    s: &'a str,
    i: usize,
}

impl<'a> Scan<'a> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\r' | b'\n') {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    /// A string without escapes (after its opening quote). Eight bytes at
    /// a time: the first quote, backslash or control byte of a word is the
    /// lowest flagged one (the flags above it may be false).
    fn string(&mut self) -> Option<&'a str> {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH;
        let start = self.i;
        let mut at = start;
        let stop = loop {
            match self.b.get(at..at + 8) {
                Some(word) => {
                    let w = u64::from_le_bytes(word.try_into().expect("eight bytes"));
                    let flags = below(w ^ (ONES * u64::from(b'"')), 1)
                        | below(w ^ (ONES * u64::from(b'\\')), 1)
                        | below(w, 0x20);
                    if flags != 0 {
                        break at + (flags.trailing_zeros() / 8) as usize;
                    }
                    at += 8;
                }
                None => {
                    break at
                        + self.b[at..]
                            .iter()
                            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
                }
            }
        };
        if self.b[stop] != b'"' {
            return None;
        }
        self.i = stop + 1;
        Some(&self.s[start..stop])
    }

    fn value(&mut self) -> Option<Val<'a>> {
        self.ws();
        let c = *self.b.get(self.i)?;
        if c == b'"' {
            self.i += 1;
            return self.string().map(Val::Str);
        }
        let start = self.i;
        let len = self.b[start..]
            .iter()
            .position(|c| !c.is_ascii_alphanumeric() && !matches!(c, b'-' | b'+' | b'.'))
            .unwrap_or(self.b.len() - start);
        self.i += len;
        match &self.s[start..start + len] {
            "null" => Some(Val::Null),
            "true" | "false" => Some(Val::Other),
            // JSON numbers have no leading zeros (Rust's parsers accept them).
            n if n.trim_start_matches('-').starts_with('0')
                && n.trim_start_matches('-').len() > 1 =>
            {
                None
            }
            n if c == b'-' || c.is_ascii_digit() => Some(Val::Num(n)),
            _ => None,
        }
    }
}

/// The fast path: a flat object with valid values for every known field.
/// `None` sends the line to serde_json (escapes, nesting, a missing or
/// duplicated field, a value of the wrong type).
fn fast<'a>(line: &'a str) -> Option<Raw<'a>> {
    let mut p = Scan {
        b: line.as_bytes(),
        s: line,
        i: 0,
    };
    let mut seen = 0u32;
    let (mut src_ip, mut dst_ip, mut proto) = (None, None, None);
    let (mut first_seen, mut last_seen) = (None, None);
    let mut raw = Raw {
        src_ip: IpAddr::from([0, 0, 0, 0]),
        dst_ip: IpAddr::from([0, 0, 0, 0]),
        proto: Proto::Any,
        dst_port: None,
        src_port: None,
        orig_dst_ip: None,
        orig_dst_port: None,
        dst_service: None,
        packets: 0,
        bytes: 0,
        first_seen: Cow::Borrowed(""),
        last_seen: Cow::Borrowed(""),
        verdict: None,
        node: None,
    };
    p.eat(b'{')?;
    p.ws();
    if p.b.get(p.i) == Some(&b'}') {
        return None;
    }
    loop {
        p.eat(b'"')?;
        let key = p.string()?;
        p.eat(b':')?;
        let v = p.value()?;
        let bit = match key {
            "src_ip" => 0,
            "dst_ip" => 1,
            "proto" => 2,
            "dst_port" => 3,
            "src_port" => 4,
            "orig_dst_ip" => 5,
            "orig_dst_port" => 6,
            "dst_service" => 7,
            "packets" => 8,
            "bytes" => 9,
            "first_seen" => 10,
            "last_seen" => 11,
            "verdict" => 12,
            "node" => 13,
            _ => 31,
        };
        if bit < 31 {
            if seen & (1 << bit) != 0 {
                return None;
            }
            seen |= 1 << bit;
        }
        let ip = |v: &Val<'_>| match v {
            Val::Str(s) => s.parse::<IpAddr>().ok(),
            _ => None,
        };
        let port = |v: &Val<'_>| match v {
            Val::Num(n) => n.parse::<u16>().ok().map(Some),
            Val::Null => Some(None),
            _ => None,
        };
        let text = |v: &Val<'a>| match v {
            Val::Str(s) => Some(Some(Cow::Borrowed(*s))),
            Val::Null => Some(None),
            _ => None,
        };
        let count = |v: &Val<'_>| match v {
            Val::Num(n) => n.parse::<u64>().ok(),
            _ => None,
        };
        match bit {
            0 => src_ip = Some(ip(&v)?),
            1 => dst_ip = Some(ip(&v)?),
            2 => {
                proto = Some(match v {
                    Val::Str("tcp") => Proto::Tcp,
                    Val::Str("udp") => Proto::Udp,
                    Val::Str("sctp") => Proto::Sctp,
                    Val::Str("icmp") => Proto::Icmp,
                    Val::Str("any") => Proto::Any,
                    _ => return None,
                })
            }
            3 => raw.dst_port = port(&v)?,
            4 => raw.src_port = port(&v)?,
            5 => {
                raw.orig_dst_ip = match v {
                    Val::Null => None,
                    _ => Some(ip(&v)?),
                }
            }
            6 => raw.orig_dst_port = port(&v)?,
            7 => raw.dst_service = text(&v)?,
            8 => raw.packets = count(&v)?,
            9 => raw.bytes = count(&v)?,
            10 => first_seen = Some(text(&v)??),
            11 => last_seen = Some(text(&v)??),
            12 => {
                raw.verdict = match v {
                    Val::Str("allowed") => Some(NetworkVerdict::Allowed),
                    Val::Str("dropped") => Some(NetworkVerdict::Dropped),
                    Val::Null => None,
                    _ => return None,
                }
            }
            13 => raw.node = text(&v)?,
            _ => {}
        }
        p.ws();
        match p.b.get(p.i) {
            Some(b',') => p.i += 1,
            Some(b'}') => {
                p.i += 1;
                break;
            }
            _ => return None,
        }
    }
    p.ws();
    if p.i != p.b.len() {
        return None;
    }
    raw.src_ip = src_ip?;
    raw.dst_ip = dst_ip?;
    raw.proto = proto?;
    raw.first_seen = first_seen?;
    raw.last_seen = last_seen?;
    Some(raw)
}

#[cfg(test)]
mod tests {
    use ringfence_schema::flow::FlowRecord;

    use super::*;

    fn one(line: &str) -> Result<Flow, String> {
        match parse(line, &mut ParseCtx::default())? {
            Parsed::Flow(f) => Ok(*f),
            other => panic!("not a flow: {other:?}"),
        }
    }

    #[test]
    fn reads_what_the_schema_writes() {
        let rec = FlowRecord {
            src_ip: "fd00::5".parse().unwrap(),
            dst_ip: "10.244.2.7".parse().unwrap(),
            proto: Proto::Udp,
            dst_port: Some(53),
            src_port: Some(40_000),
            orig_dst_ip: Some("10.96.0.10".parse().unwrap()),
            orig_dst_port: Some(53),
            dst_service: Some("kube-system/kube-dns".into()),
            packets: 2,
            bytes: 180,
            first_seen: "2024-05-01T12:00:00Z".into(),
            last_seen: "2024-05-01T12:00:00.25Z".into(),
            verdict: Some(NetworkVerdict::Dropped),
            node: Some("worker-2".into()),
        };
        let line = serde_json::to_string(&rec).unwrap();
        assert_eq!(one(&line).unwrap().to_record(), rec);
        // Only the required fields.
        let f = one(
            r#"{"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","proto":"icmp","first_seen":"2024-05-01T12:00:00Z","last_seen":"2024-05-01T12:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!((f.proto, f.dst_port, f.verdict), (Proto::Icmp, None, None));
    }

    /// The fast path reads what serde reads, and leaves the rest to it.
    #[test]
    fn fast_path_agrees_with_serde() {
        let via_serde = |line: &str| {
            let raw: Raw<'_> = serde_json::from_str(line).map_err(|e| e.to_string())?;
            match to_flow(raw, &mut ParseCtx::default())? {
                Parsed::Flow(f) => Ok(*f),
                _ => unreachable!(),
            }
        };
        let via_fast = |line: &str| {
            fast(line).map(|raw| match to_flow(raw, &mut ParseCtx::default()) {
                Ok(Parsed::Flow(f)) => Ok(*f),
                Ok(_) => unreachable!(),
                Err(e) => Err(e),
            })
        };
        let taken = [
            r#"{"src_ip":"10.0.0.1","dst_ip":"fd00::2","proto":"udp","dst_port":53,"src_port":40000,"orig_dst_ip":"10.96.0.10","orig_dst_port":53,"dst_service":"kube-system/kube-dns","packets":2,"bytes":180,"first_seen":"2024-05-01T12:00:00Z","last_seen":"2024-05-01T12:00:01.5Z","verdict":"dropped","node":"w1"}"#,
            r#" { "src_ip" : "10.0.0.1" , "dst_ip":"10.0.0.2","proto":"icmp","first_seen":"2024-05-01T12:00:00Z","last_seen":"2024-05-01T12:00:00Z", "extra": [1, 2] } "#,
            r#"{"extra":true,"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","proto":"tcp","dst_port":443,"src_port":null,"verdict":null,"node":null,"first_seen":"2024-05-01T12:00:00Z","last_seen":"2024-05-01T12:00:00Z","other":-1.5e3}"#,
        ];
        for line in &taken[..1] {
            assert!(fast(line).is_some(), "{line}");
        }
        // Nested values go to serde (which ignores the unknown field).
        assert!(fast(taken[1]).is_none());
        assert!(fast(taken[2]).is_some());
        for line in taken {
            assert_eq!(
                via_fast(line).unwrap_or_else(|| via_serde(line)),
                via_serde(line),
                "{line}"
            );
        }
        // Lines the fast path declines, for serde to read or explain.
        for line in [
            r#"{"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","proto":"tcp","dst_port":80,"first_seen":"2024-05-01T12:00:00Z","last_seen":"2024-05-01T12:00:00Z","node":"a\"b"}"#,
            r#"{"src_ip":"10.0.0.1","src_ip":"10.0.0.3","dst_ip":"10.0.0.2","proto":"tcp","dst_port":80,"first_seen":"2024-05-01T12:00:00Z","last_seen":"2024-05-01T12:00:00Z"}"#,
            r#"{"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","proto":"TCP","dst_port":80,"first_seen":"2024-05-01T12:00:00Z","last_seen":"2024-05-01T12:00:00Z"}"#,
            r#"{"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","proto":"tcp","dst_port":80.0,"first_seen":"2024-05-01T12:00:00Z","last_seen":"2024-05-01T12:00:00Z"}"#,
            r#"{"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","proto":"tcp","dst_port":80,"packets":null,"first_seen":"2024-05-01T12:00:00Z","last_seen":"2024-05-01T12:00:00Z"}"#,
            r#"{"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","proto":"tcp","dst_port":80,"first_seen":"2024-05-01T12:00:00Z"}"#,
            r#"{"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","proto":"tcp","dst_port":80,"first_seen":"2024-05-01T12:00:00Z","last_seen":"2024-05-01T12:00:00Z"} x"#,
            r#"{"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","proto":"tcp","dst_port":080,"first_seen":"2024-05-01T12:00:00Z","last_seen":"2024-05-01T12:00:00Z"}"#,
            r#"{}"#,
        ] {
            assert!(fast(line).is_none(), "{line}");
        }
        // Every record the schema writes takes the fast path.
        for i in 0..200u32 {
            let rec = FlowRecord {
                src_ip: IpAddr::from([10, 0, (i % 7) as u8, (i % 250) as u8]),
                dst_ip: if i % 3 == 0 {
                    "fd00::1".parse().unwrap()
                } else {
                    IpAddr::from([10, 1, 0, 1])
                },
                proto: [Proto::Tcp, Proto::Udp, Proto::Sctp][(i % 3) as usize],
                dst_port: Some(1 + (i * 97 % 65_000) as u16),
                src_port: (i % 2 == 0).then_some(40_000),
                orig_dst_ip: (i % 5 == 0).then(|| IpAddr::from([10, 96, 0, 1])),
                orig_dst_port: (i % 5 == 0).then_some(80),
                dst_service: (i % 4 == 0).then(|| "ns/svc".to_string()),
                packets: u64::from(i) * 1_000_003,
                bytes: u64::MAX - u64::from(i),
                first_seen: "2024-05-01T12:00:00Z".into(),
                last_seen: "2024-05-01T13:00:00.123Z".into(),
                verdict: [
                    None,
                    Some(NetworkVerdict::Allowed),
                    Some(NetworkVerdict::Dropped),
                ][(i % 3) as usize],
                node: (i % 6 == 0).then(|| "worker-1".to_string()),
            };
            let line = serde_json::to_string(&rec).unwrap();
            assert_eq!(
                via_fast(&line).expect("fast path").unwrap().to_record(),
                rec
            );
        }
    }

    /// The word-at-a-time string scan stops where a byte-wise one does, at
    /// every position of every special byte, after ASCII or UTF-8 text.
    #[test]
    fn string_scan_stops_where_the_bytewise_scan_does() {
        let bytewise = |b: &[u8]| {
            let len = b
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
            (b[len] == b'"').then_some(len)
        };
        for fill in ["a", "é", "~", "\u{7f}", "\u{1F600}"] {
            for n in 0..24 {
                for stop in ["\"", "\\", "\u{1f}", "\u{0}", "\n", " \""] {
                    let text = format!("{}{stop}rest\"", fill.repeat(n));
                    let mut scan = Scan {
                        b: text.as_bytes(),
                        s: &text,
                        i: 0,
                    };
                    let expected = bytewise(text.as_bytes());
                    let got = scan.string().map(|s| s.len());
                    assert_eq!(got, expected, "{text:?}");
                }
            }
        }
    }

    #[test]
    fn errors_name_the_field() {
        let e = one(r#"{"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","proto":"tcp","dst_port":80,"last_seen":"2024-05-01T12:00:00Z"}"#).unwrap_err();
        assert!(e.contains("missing field `first_seen`"), "{e}");
        let e = one(r#"{"src_ip":"10.0.0.300","dst_ip":"10.0.0.2","proto":"tcp","dst_port":80,"first_seen":"2024-05-01T12:00:00Z","last_seen":"2024-05-01T12:00:00Z"}"#).unwrap_err();
        assert!(e.contains("invalid IP address"), "{e}");
        let e = one(r#"{"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","proto":"gre","first_seen":"2024-05-01T12:00:00Z","last_seen":"2024-05-01T12:00:00Z"}"#).unwrap_err();
        assert!(e.contains("unknown variant `gre`"), "{e}");
        let e = one(r#"{"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","proto":"tcp","dst_port":70000,"first_seen":"2024-05-01T12:00:00Z","last_seen":"2024-05-01T12:00:00Z"}"#).unwrap_err();
        assert!(e.contains("70000"), "{e}");
        let e = one(r#"{"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","proto":"tcp","first_seen":"2024-05-01T12:00:00Z","last_seen":"2024-05-01T12:00:00Z"}"#).unwrap_err();
        assert!(e.contains("`dst_port`"), "{e}");
        let e = one(r#"{"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","proto":"tcp","dst_port":1,"first_seen":"May 1st","last_seen":"2024-05-01T12:00:00Z"}"#).unwrap_err();
        assert!(e.contains("field `first_seen`"), "{e}");
    }
}
