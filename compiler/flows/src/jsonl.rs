//! ringfence JSON Lines: one [`FlowRecord`](ringfence_schema::flow::FlowRecord)
//! per line.
//!
//! Parsed through a borrowing mirror of the record so that a line costs no
//! allocation beyond the interned node and service names; a test keeps the
//! mirror and the schema type in step.

use std::borrow::Cow;
use std::net::IpAddr;

use ringfence_schema::flow::NetworkVerdict;
use ringfence_schema::net::Proto;
use serde::Deserialize;

use crate::flow::Flow;
use crate::format::{ParseCtx, Parsed};
use crate::time::Timestamp;

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
    let raw: Raw<'_> = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let first_seen = Timestamp::parse_rfc3339(&raw.first_seen)
        .map_err(|e| format!("field `first_seen`: {e}"))?;
    // Most records are seen once: first and last are the same text.
    let last_seen = if raw.last_seen == raw.first_seen {
        first_seen
    } else {
        Timestamp::parse_rfc3339(&raw.last_seen).map_err(|e| format!("field `last_seen`: {e}"))?
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
