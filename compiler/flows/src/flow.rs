//! [`Flow`]: a flow record with its times parsed and its fields checked.
//!
//! [`FlowRecord`] is the wire format (`schema/docs/flows.md`); readers turn
//! every input format into [`Flow`], and [`Flow::to_record`] turns it back.

use std::net::IpAddr;
use std::sync::Arc;

use ringfence_schema::flow::{FlowRecord, NetworkVerdict};
use ringfence_schema::net::Proto;

use crate::time::Timestamp;

/// One observed flow (or an aggregate of identical ones), validated:
/// the protocol is concrete, ports are only set for tcp, udp and sctp, and
/// `first_seen <= last_seen`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    /// Source address (the consumer).
    pub src_ip: IpAddr,
    /// Destination address as policy sees it (after destination NAT when
    /// the observer saw it).
    pub dst_ip: IpAddr,
    /// tcp, udp, sctp or icmp (never `any`).
    pub proto: Proto,
    /// Source port (tcp, udp, sctp), if known.
    pub src_port: Option<u16>,
    /// Destination port (tcp, udp, sctp).
    pub dst_port: Option<u16>,
    /// The destination address the consumer used, when a NAT rewrote it.
    pub orig_dst_ip: Option<IpAddr>,
    /// The destination port the consumer used, when a NAT rewrote it.
    pub orig_dst_port: Option<u16>,
    /// `NAMESPACE/NAME` of the service the flow was addressed to, if named.
    pub dst_service: Option<Arc<str>>,
    /// Packets seen (both directions where the source counts both).
    pub packets: u64,
    /// Bytes seen.
    pub bytes: u64,
    /// First time seen.
    pub first_seen: Timestamp,
    /// Last time seen.
    pub last_seen: Timestamp,
    /// What the network did, if known.
    pub verdict: Option<NetworkVerdict>,
    /// The node that observed it, if known.
    pub node: Option<Arc<str>>,
}

impl Flow {
    /// The wire form.
    pub fn to_record(&self) -> FlowRecord {
        FlowRecord {
            src_ip: self.src_ip,
            dst_ip: self.dst_ip,
            proto: self.proto,
            dst_port: self.dst_port,
            src_port: self.src_port,
            orig_dst_ip: self.orig_dst_ip,
            orig_dst_port: self.orig_dst_port,
            dst_service: self.dst_service.as_deref().map(str::to_owned),
            packets: self.packets,
            bytes: self.bytes,
            first_seen: self.first_seen.to_rfc3339(),
            last_seen: self.last_seen.to_rfc3339(),
            verdict: self.verdict,
            node: self.node.as_deref().map(str::to_owned),
        }
    }

    /// Check a wire record and parse its times. The message says which field
    /// is wrong and what was expected.
    pub fn from_record(r: &FlowRecord) -> Result<Flow, String> {
        let first_seen = Timestamp::parse_rfc3339(&r.first_seen)
            .map_err(|e| format!("field `first_seen`: {e}"))?;
        let last_seen = Timestamp::parse_rfc3339(&r.last_seen)
            .map_err(|e| format!("field `last_seen`: {e}"))?;
        let mut flow = Flow {
            src_ip: r.src_ip,
            dst_ip: r.dst_ip,
            proto: r.proto,
            src_port: r.src_port,
            dst_port: r.dst_port,
            orig_dst_ip: r.orig_dst_ip,
            orig_dst_port: r.orig_dst_port,
            dst_service: r.dst_service.as_deref().map(Arc::from),
            packets: r.packets,
            bytes: r.bytes,
            first_seen,
            last_seen,
            verdict: r.verdict,
            node: r.node.as_deref().map(Arc::from),
        };
        flow.check()?;
        flow.normalize();
        Ok(flow)
    }

    /// Port 0 means no port, whichever field carries it: every reader (and
    /// a table, which stores no port as 0) gives the same flow for both.
    pub(crate) fn normalize(&mut self) {
        for p in [
            &mut self.src_port,
            &mut self.dst_port,
            &mut self.orig_dst_port,
        ] {
            if *p == Some(0) {
                *p = None;
            }
        }
    }

    /// The rules every reader enforces.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.proto == Proto::Any {
            return Err(
                "field `proto`: a flow has a concrete protocol (tcp, udp, sctp or icmp), not `any`"
                    .into(),
            );
        }
        if self.proto.has_ports() {
            if self.dst_port.is_none_or(|p| p == 0) {
                return Err(format!(
                    "field `dst_port`: a {} flow needs a destination port (1-65535)",
                    self.proto
                ));
            }
        } else if self.dst_port.is_some_and(|p| p != 0)
            || self.src_port.is_some_and(|p| p != 0)
            || self.orig_dst_port.is_some_and(|p| p != 0)
        {
            return Err(format!(
                "fields `src_port`, `dst_port`, `orig_dst_port`: {} has no ports",
                self.proto
            ));
        }
        if let Some(s) = &self.dst_service {
            match s.split_once('/') {
                Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {}
                _ => {
                    return Err(format!("field `dst_service`: `{s}` is not NAMESPACE/NAME"));
                }
            }
        }
        if self.first_seen > self.last_seen {
            return Err(format!(
                "fields `first_seen`, `last_seen`: first seen ({}) is after last seen ({})",
                self.first_seen, self.last_seen
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> FlowRecord {
        FlowRecord {
            src_ip: "10.244.1.5".parse().unwrap(),
            dst_ip: "10.244.2.7".parse().unwrap(),
            proto: Proto::Tcp,
            dst_port: Some(5432),
            src_port: Some(44_231),
            orig_dst_ip: Some("10.96.0.20".parse().unwrap()),
            orig_dst_port: Some(5432),
            dst_service: Some("shop-data/postgres".into()),
            packets: 12,
            bytes: 3400,
            first_seen: "2024-05-01T12:00:00Z".into(),
            last_seen: "2024-05-01T12:00:09.5Z".into(),
            verdict: Some(NetworkVerdict::Allowed),
            node: Some("worker-1".into()),
        }
    }

    #[test]
    fn record_round_trips() {
        let r = record();
        let f = Flow::from_record(&r).unwrap();
        assert_eq!(f.to_record(), r);
    }

    #[test]
    fn bad_records_say_which_field() {
        type Change = fn(&mut FlowRecord);
        let cases: [(Change, &str); 6] = [
            (|r| r.proto = Proto::Any, "`proto`"),
            (|r| r.dst_port = None, "`dst_port`"),
            (|r| r.proto = Proto::Icmp, "icmp has no ports"),
            (
                |r| r.first_seen = "2024-05-02T00:00:00Z".into(),
                "after last seen",
            ),
            (|r| r.last_seen = "noon".into(), "`last_seen`"),
            (
                |r| r.dst_service = Some("postgres".into()),
                "NAMESPACE/NAME",
            ),
        ];
        for (change, says) in cases {
            let mut r = record();
            change(&mut r);
            let err = Flow::from_record(&r).unwrap_err();
            assert!(err.contains(says), "{says}: {err}");
        }
    }
}
