//! Linux conntrack listings: `conntrack -L [-o extended]` and `conntrack -E`.
//!
//! An entry holds two tuples: the original direction (the consumer's packet
//! as sent) and the reply direction (what the answer looks like). The
//! original tuple is the flow. When the reply comes from another address or
//! port than the one addressed, a destination NAT (kube-proxy, a node port)
//! sent the flow to that backend: the record's destination is the backend,
//! which is what policy sees, and `orig_dst_*` keep what the consumer used.
//!
//! Listings carry no time: records get the reader's default time (the
//! file's modification time). `conntrack -E -o timestamp` lines carry their
//! own. `[UNREPLIED]` means nobody answered: the verdict is unknown, not
//! dropped. An answered entry went through (allowed).

use std::net::IpAddr;

use ringfence_schema::flow::NetworkVerdict;
use ringfence_schema::net::Proto;

use crate::flow::Flow;
use crate::input::{ParseCtx, Parsed};
use crate::time::Timestamp;

/// The protocols conntrack prints that are not flows for ringfence.
const OTHER_PROTOS: [&str; 5] = ["udplite", "dccp", "gre", "unknown", "igmp"];

fn proto_of(name: &str) -> Option<Proto> {
    match name {
        "tcp" => Some(Proto::Tcp),
        "udp" => Some(Proto::Udp),
        "sctp" => Some(Proto::Sctp),
        "icmp" | "icmpv6" => Some(Proto::Icmp),
        _ => None,
    }
}

/// The summary line conntrack prints after a listing.
pub(crate) fn is_footer(line: &str) -> bool {
    line.starts_with("conntrack v") && line.contains("flow entries")
}

/// Whether a line looks like a conntrack entry (for format detection).
pub(crate) fn looks_like(line: &str) -> bool {
    let mut toks = line
        .split_ascii_whitespace()
        .skip_while(|t| t.starts_with('['));
    let Some(mut first) = toks.next() else {
        return false;
    };
    if first == "ipv4" || first == "ipv6" {
        toks.next();
        match toks.next() {
            Some(t) => first = t,
            None => return false,
        }
    }
    (proto_of(first).is_some() || OTHER_PROTOS.contains(&first)) && line.contains(" src=")
}

#[derive(Default)]
struct Tuple {
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    sport: Option<u16>,
    dport: Option<u16>,
    packets: u64,
    bytes: u64,
}

pub(crate) fn parse(line: &str, ctx: &mut ParseCtx) -> Result<Parsed, String> {
    let line = line.trim();
    if is_footer(line) {
        return Ok(Parsed::Ignored);
    }
    let mut toks = line.split_ascii_whitespace().peekable();
    // `conntrack -E` prefixes: `[NEW]`, `[UPDATE]`, `[DESTROY]`, and with
    // `-o timestamp` the event time `[1714564800.123456]`.
    let mut time = None;
    while let Some(t) = toks.next_if(|t| t.starts_with('[')) {
        let inner = t.trim_start_matches('[').trim_end_matches(']');
        if matches!(inner, "NEW" | "UPDATE" | "DESTROY") {
            continue;
        }
        time = Some(parse_event_time(inner).ok_or_else(|| {
            format!("`{t}` is neither an event type ([NEW], [UPDATE], [DESTROY]) nor a time ([SECONDS.MICROS])")
        })?);
    }
    let mut first = toks.next().ok_or("an empty entry")?;
    if first == "ipv4" || first == "ipv6" {
        toks.next()
            .ok_or("the layer-3 protocol number is missing")?;
        first = toks.next().ok_or("the layer-4 protocol name is missing")?;
    }
    let proto = match proto_of(first) {
        Some(p) => p,
        None if OTHER_PROTOS.contains(&first) => return Ok(Parsed::Ignored),
        None => {
            return Err(format!(
                "`{first}` is not a protocol (tcp, udp, sctp, icmp)"
            ));
        }
    };
    let mut tuples = [Tuple::default(), Tuple::default()];
    let mut cur = 0usize;
    let mut unreplied = false;
    for tok in toks {
        if tok.starts_with('[') {
            unreplied |= tok == "[UNREPLIED]";
            continue;
        }
        // The timeout, the TCP state and the protocol number have no `=`.
        let Some((k, v)) = tok.split_once('=') else {
            continue;
        };
        if k == "src" && tuples[cur].src.is_some() {
            if cur == 1 {
                return Err("more than two `src=` tuples".into());
            }
            cur = 1;
        }
        let t = &mut tuples[cur];
        let bad = |what: &str| format!("`{tok}`: `{v}` is not {what}");
        match k {
            "src" => t.src = Some(v.parse().map_err(|_| bad("an IP address"))?),
            "dst" => t.dst = Some(v.parse().map_err(|_| bad("an IP address"))?),
            "sport" => t.sport = Some(v.parse().map_err(|_| bad("a port"))?),
            "dport" => t.dport = Some(v.parse().map_err(|_| bad("a port"))?),
            "packets" => t.packets = v.parse().map_err(|_| bad("a count"))?,
            "bytes" => t.bytes = v.parse().map_err(|_| bad("a count"))?,
            // mark, use, zone, id, secctx, labels, type, code, …
            _ => {}
        }
    }
    let [orig, reply] = tuples;
    let src_ip = orig.src.ok_or("the original tuple has no `src=`")?;
    let mut dst_ip = orig.dst.ok_or("the original tuple has no `dst=`")?;
    let (src_port, mut dst_port) = if proto.has_ports() {
        (
            Some(orig.sport.ok_or("the original tuple has no `sport=`")?),
            Some(orig.dport.ok_or("the original tuple has no `dport=`")?),
        )
    } else {
        (None, None)
    };
    // The reply comes from the backend: a different address or port than
    // the one addressed means a destination NAT.
    let (mut orig_dst_ip, mut orig_dst_port) = (None, None);
    if let Some(backend) = reply.src {
        let backend_port = if proto.has_ports() { reply.sport } else { None };
        if backend != dst_ip || (backend_port.is_some() && backend_port != dst_port) {
            orig_dst_ip = Some(dst_ip);
            orig_dst_port = dst_port;
            dst_ip = backend;
            if backend_port.is_some() {
                dst_port = backend_port;
            }
        }
    }
    let time = time.or(ctx.default_time).ok_or(
        "conntrack listings carry no time and none was given (the reader uses the file's \
         modification time)",
    )?;
    let flow = Flow {
        src_ip,
        dst_ip,
        proto,
        src_port,
        dst_port,
        orig_dst_ip,
        orig_dst_port,
        dst_service: None,
        packets: orig.packets + reply.packets,
        bytes: orig.bytes + reply.bytes,
        first_seen: time,
        last_seen: time,
        verdict: (!unreplied).then_some(NetworkVerdict::Allowed),
        node: None,
    };
    flow.check()?;
    Ok(Parsed::Flow(Box::new(flow)))
}

/// `SECONDS.MICROS` as `conntrack -o timestamp` prints it.
fn parse_event_time(s: &str) -> Option<Timestamp> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 9 {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let nanos: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse::<i64>().ok()? * 10i64.pow(9 - frac.len() as u32)
    };
    Some(Timestamp::from_unix_nanos(
        secs.checked_mul(1_000_000_000)?.checked_add(nanos)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::Window;

    fn ctx() -> ParseCtx {
        ParseCtx::new(
            Some("2024-05-01T12:00:00Z".parse().unwrap()),
            Window::default(),
        )
    }

    fn flow(line: &str) -> Flow {
        match parse(line, &mut ctx()).unwrap() {
            Parsed::Flow(f) => *f,
            other => panic!("not a flow: {other:?}"),
        }
    }

    #[test]
    fn dnat_to_a_service_backend_records_the_backend() {
        let f = flow(
            "ipv4     2 tcp      6 431999 ESTABLISHED src=10.244.1.5 dst=10.96.0.10 sport=44231 \
             dport=53 packets=3 bytes=180 src=10.244.2.7 dst=10.244.1.5 sport=53 dport=44231 \
             packets=3 bytes=300 [ASSURED] mark=0 use=1",
        );
        assert_eq!(f.src_ip.to_string(), "10.244.1.5");
        assert_eq!(f.dst_ip.to_string(), "10.244.2.7");
        assert_eq!(
            f.orig_dst_ip.map(|i| i.to_string()).as_deref(),
            Some("10.96.0.10")
        );
        assert_eq!(
            (f.src_port, f.dst_port, f.orig_dst_port),
            (Some(44231), Some(53), Some(53))
        );
        assert_eq!((f.packets, f.bytes), (6, 480));
        assert_eq!(f.verdict, Some(NetworkVerdict::Allowed));
        assert_eq!(f.first_seen.to_string(), "2024-05-01T12:00:00Z");
    }

    #[test]
    fn node_port_dnat_changes_the_port_too() {
        let f = flow(
            "ipv4 2 tcp 6 86399 ESTABLISHED src=198.51.100.7 dst=192.168.1.10 sport=51000 \
             dport=30080 src=10.244.1.9 dst=192.168.1.10 sport=8080 dport=51000 [ASSURED] \
             mark=0 use=1",
        );
        assert_eq!(f.dst_ip.to_string(), "10.244.1.9");
        assert_eq!(f.dst_port, Some(8080));
        assert_eq!(
            f.orig_dst_ip.map(|i| i.to_string()).as_deref(),
            Some("192.168.1.10")
        );
        assert_eq!(f.orig_dst_port, Some(30080));
    }

    #[test]
    fn plain_unreplied_icmp_and_ipv6_entries() {
        let f = flow(
            "udp      17 29 src=10.244.1.5 dst=10.244.2.7 sport=40000 dport=514 [UNREPLIED] \
             src=10.244.2.7 dst=10.244.1.5 sport=514 dport=40000 mark=0 use=1",
        );
        assert_eq!(
            (f.proto, f.dst_port, f.orig_dst_ip),
            (Proto::Udp, Some(514), None)
        );
        assert_eq!(f.verdict, None, "unreplied is unknown, not dropped");
        let f = flow(
            "ipv4     2 icmp     1 29 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=1234 \
             src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=1234 mark=0 use=1",
        );
        assert_eq!((f.proto, f.src_port, f.dst_port), (Proto::Icmp, None, None));
        let f = flow(
            "ipv6     10 tcp      6 117 TIME_WAIT src=fd00::5 dst=fd00::7 sport=40000 \
             dport=443 src=fd00::7 dst=fd00::5 sport=443 dport=40000 [ASSURED] mark=0 use=1",
        );
        assert_eq!(f.dst_ip.to_string(), "fd00::7");
        assert_eq!(f.orig_dst_ip, None);
    }

    #[test]
    fn event_lines_carry_their_own_time() {
        let f = flow(
            "[1714564805.250000]\t[NEW] tcp      6 120 SYN_SENT src=10.0.0.1 dst=10.0.0.2 \
             sport=4000 dport=80 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=80 dport=4000",
        );
        assert_eq!(f.first_seen.to_string(), "2024-05-01T12:00:05.25Z");
    }

    #[test]
    fn footer_and_other_protocols_are_not_flows() {
        let mut c = ctx();
        for line in [
            "conntrack v1.4.6 (conntrack-tools): 42 flow entries have been shown.",
            "ipv4 2 gre 47 179 src=10.0.0.1 dst=10.0.0.2 srckey=0x0 dstkey=0x0 src=10.0.0.2 \
             dst=10.0.0.1 srckey=0x0 dstkey=0x0 mark=0 use=1",
        ] {
            assert!(
                matches!(parse(line, &mut c).unwrap(), Parsed::Ignored),
                "{line}"
            );
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let mut c = ctx();
        let e = parse(
            "ipv4 2 tcp 6 10 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=1 src=10.0.0.2 \
             dst=10.0.0.1",
            &mut c,
        )
        .unwrap_err();
        assert!(e.contains("no `dport=`"), "{e}");
        let e = parse(
            "tcp 6 10 ESTABLISHED src=10.0.0.1 dst=10.0.0.999 sport=1 dport=2",
            &mut c,
        )
        .unwrap_err();
        assert!(e.contains("`dst=10.0.0.999`"), "{e}");
        let e = parse("carrier pigeon src=a", &mut c).unwrap_err();
        assert!(e.contains("not a protocol"), "{e}");
        let e = parse(
            "tcp 6 10 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2",
            &mut ParseCtx::default(),
        )
        .unwrap_err();
        assert!(e.contains("carry no time"), "{e}");
    }
}
