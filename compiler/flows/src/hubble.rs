//! Cilium Hubble: `hubble observe -o json`.
//!
//! Each line is a `GetFlowsResponse` (`{"flow": {…}, "node_name": …, "time": …}`)
//! or, from older CLIs, the `Flow` object itself. Only L3/L4 flows become
//! records; replies (`is_reply`) and other events (node status, lost events,
//! L7 and socket traces) are counted and skipped. Verdicts: `FORWARDED`,
//! `AUDIT`, `REDIRECTED`, `TRACED`, `TRANSLATED` went through (allowed);
//! `DROPPED` and `ERROR` did not; anything else is unknown.

use std::borrow::Cow;
use std::net::IpAddr;

use ringfence_schema::flow::NetworkVerdict;
use ringfence_schema::net::Proto;
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::flow::Flow;
use crate::input::{ParseCtx, Parsed};
use crate::time::Timestamp;

/// A line: the response wrapper, whose fields also cover the bare `Flow`
/// object older CLIs print, so one struct reads both (no `serde(flatten)`:
/// it buffers every field); the wrapper's `flow` is one again.
#[derive(Deserialize)]
struct HubbleFlow<'a> {
    #[serde(default, borrow)]
    flow: Option<Box<HubbleFlow<'a>>>,
    #[serde(default, borrow)]
    time: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    verdict: Option<Cow<'a, str>>,
    #[serde(default, rename = "IP")]
    ip: Option<Ip>,
    #[serde(default)]
    l4: Option<L4>,
    #[serde(default)]
    is_reply: Option<bool>,
    #[serde(default)]
    reply: Option<bool>,
    #[serde(default, borrow)]
    node_name: Option<Cow<'a, str>>,
    #[serde(default, rename = "Type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    destination_service: Option<Service<'a>>,
}

#[derive(Deserialize)]
struct Ip {
    source: IpAddr,
    destination: IpAddr,
}

#[derive(Deserialize)]
#[allow(non_snake_case)] // Hubble's field names
struct L4 {
    #[serde(default)]
    TCP: Option<Ports>,
    #[serde(default)]
    UDP: Option<Ports>,
    #[serde(default)]
    SCTP: Option<Ports>,
    #[serde(default)]
    ICMPv4: Option<IgnoredAny>,
    #[serde(default)]
    ICMPv6: Option<IgnoredAny>,
}

/// protojson leaves out zero values, so both ports are optional.
#[derive(Deserialize)]
struct Ports {
    #[serde(default)]
    source_port: Option<u16>,
    #[serde(default)]
    destination_port: Option<u16>,
}

#[derive(Deserialize)]
struct Service<'a> {
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    namespace: Option<Cow<'a, str>>,
}

pub(crate) fn parse(line: &str, ctx: &mut ParseCtx) -> Result<Parsed, String> {
    let mut l: HubbleFlow<'_> = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let (f, outer_node, outer_time) = match l.flow.take() {
        Some(f) => (*f, l.node_name, l.time),
        None if l.ip.is_some() || l.l4.is_some() => (l, None, None),
        // node_status, lost_events, agent_event, debug_event.
        None => return Ok(Parsed::Ignored),
    };
    if f.kind.as_deref().is_some_and(|k| k != "L3_L4") {
        return Ok(Parsed::Ignored);
    }
    let Some(ip) = f.ip else {
        // Flows without an IP layer (ARP, some drops) are not policy material.
        return Ok(Parsed::Ignored);
    };
    if f.is_reply == Some(true) || f.reply == Some(true) {
        return Ok(Parsed::Reply);
    }
    let l4 = f.l4.ok_or("field `flow.l4` is missing")?;
    let (proto, ports) = if let Some(p) = l4.TCP {
        (Proto::Tcp, Some(p))
    } else if let Some(p) = l4.UDP {
        (Proto::Udp, Some(p))
    } else if let Some(p) = l4.SCTP {
        (Proto::Sctp, Some(p))
    } else if l4.ICMPv4.is_some() || l4.ICMPv6.is_some() {
        (Proto::Icmp, None)
    } else {
        // IGMP, VRRP and whatever Hubble adds next.
        return Ok(Parsed::Ignored);
    };
    let (src_port, dst_port) = match ports {
        Some(p) => {
            let dport = p.destination_port.filter(|&d| d != 0).ok_or_else(|| {
                format!(
                    "field `flow.l4.{}.destination_port` is missing",
                    proto_key(proto)
                )
            })?;
            (p.source_port.filter(|&s| s != 0), Some(dport))
        }
        None => (None, None),
    };
    let time = f
        .time
        .or(outer_time)
        .ok_or("field `flow.time` is missing")?;
    let time = Timestamp::parse_rfc3339(&time).map_err(|e| format!("field `flow.time`: {e}"))?;
    let verdict = match f.verdict.as_deref() {
        Some("FORWARDED" | "AUDIT" | "REDIRECTED" | "TRACED" | "TRANSLATED") => {
            Some(NetworkVerdict::Allowed)
        }
        Some("DROPPED" | "ERROR") => Some(NetworkVerdict::Dropped),
        _ => None,
    };
    let dst_service = f
        .destination_service
        .and_then(|s| match (s.namespace, s.name) {
            (Some(ns), Some(name)) if !ns.is_empty() && !name.is_empty() => {
                Some(ctx.intern(&format!("{ns}/{name}")))
            }
            _ => None,
        });
    let node = f.node_name.or(outer_node).map(|n| ctx.intern(&n));
    Ok(Parsed::Flow(Box::new(Flow {
        src_ip: ip.source,
        dst_ip: ip.destination,
        proto,
        src_port,
        dst_port,
        orig_dst_ip: None,
        orig_dst_port: None,
        dst_service,
        packets: 1,
        bytes: 0,
        first_seen: time,
        last_seen: time,
        verdict,
        node,
    })))
}

fn proto_key(p: Proto) -> &'static str {
    match p {
        Proto::Tcp => "TCP",
        Proto::Udp => "UDP",
        _ => "SCTP",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(line: &str) -> Result<Parsed, String> {
        parse(line, &mut ParseCtx::default())
    }

    fn flow(line: &str) -> Flow {
        match run(line).unwrap() {
            Parsed::Flow(f) => *f,
            other => panic!("not a flow: {other:?}"),
        }
    }

    // Shaped like real `hubble observe -o json` output (Cilium 1.15+).
    const DROPPED: &str = r#"{"flow":{"time":"2024-07-31T10:41:02.202450754Z","uuid":"cd75b2ac-8dd3-486b-beca-3d17d9d56cff","verdict":"DROPPED","drop_reason":181,"ethernet":{"source":"62:6b:d0:a4:c5:63","destination":"6e:d0:ea:78:fc:0a"},"IP":{"source":"10.0.1.235","destination":"10.0.0.21","ipVersion":"IPv4"},"l4":{"TCP":{"source_port":60524,"destination_port":80,"flags":{"SYN":true}}},"source":{"ID":423,"identity":24753,"namespace":"net-lab","labels":["k8s:app=traffic-generator"],"pod_name":"traffic-generator-9b649846d-bxqfc","workloads":[{"name":"traffic-generator","kind":"Deployment"}]},"destination":{"identity":24075,"namespace":"net-lab","labels":["k8s:app=echo-server"],"pod_name":"echo-server-65887564dc-jjw7k"},"Type":"L3_L4","node_name":"kind-worker","event_type":{"type":5},"traffic_direction":"EGRESS","drop_reason_desc":"POLICY_DENY","Summary":"TCP Flags: SYN"},"node_name":"kind-worker","time":"2024-07-31T10:41:02.202450754Z"}"#;
    const REPLY: &str = r#"{"flow":{"time":"2024-07-31T10:41:02.3Z","verdict":"FORWARDED","IP":{"source":"10.0.0.21","destination":"10.0.1.235","ipVersion":"IPv4"},"l4":{"TCP":{"source_port":80,"destination_port":60524,"flags":{"SYN":true,"ACK":true}}},"Type":"L3_L4","node_name":"kind-worker","is_reply":true,"traffic_direction":"INGRESS","trace_observation_point":"TO_ENDPOINT","Summary":"TCP Flags: SYN, ACK"},"node_name":"kind-worker","time":"2024-07-31T10:41:02.3Z"}"#;
    const DNS_VIA_SERVICE: &str = r#"{"flow":{"time":"2024-07-31T10:41:03Z","verdict":"FORWARDED","IP":{"source":"fd00:10:244:1::5","destination":"fd00:10:244:2::7","ipVersion":"IPv6"},"l4":{"UDP":{"source_port":40001,"destination_port":53}},"Type":"L3_L4","node_name":"kind-worker2","is_reply":false,"destination_service":{"name":"kube-dns","namespace":"kube-system"},"traffic_direction":"EGRESS"},"node_name":"kind-worker2","time":"2024-07-31T10:41:03Z"}"#;

    #[test]
    fn reads_real_shaped_flows() {
        let f = flow(DROPPED);
        assert_eq!(f.src_ip.to_string(), "10.0.1.235");
        assert_eq!(f.dst_ip.to_string(), "10.0.0.21");
        assert_eq!(
            (f.proto, f.src_port, f.dst_port),
            (Proto::Tcp, Some(60524), Some(80))
        );
        assert_eq!(f.verdict, Some(NetworkVerdict::Dropped));
        assert_eq!(f.node.as_deref(), Some("kind-worker"));
        assert_eq!(f.first_seen.to_string(), "2024-07-31T10:41:02.202450754Z");
        let f = flow(DNS_VIA_SERVICE);
        assert_eq!((f.proto, f.dst_port), (Proto::Udp, Some(53)));
        assert_eq!(f.dst_service.as_deref(), Some("kube-system/kube-dns"));
        assert_eq!(f.verdict, Some(NetworkVerdict::Allowed));
        assert!(f.dst_ip.is_ipv6());
    }

    #[test]
    fn skips_replies_and_other_events() {
        assert!(matches!(run(REPLY).unwrap(), Parsed::Reply));
        assert!(matches!(
            run(r#"{"node_status":{"state_change":"NODE_CONNECTED","node_names":["kind-worker"]},"time":"2024-07-31T10:41:02Z"}"#).unwrap(),
            Parsed::Ignored
        ));
        assert!(matches!(
            run(r#"{"lost_events":{"source":"HUBBLE_RING_BUFFER","num_events_lost":12}}"#).unwrap(),
            Parsed::Ignored
        ));
        let l7 = DNS_VIA_SERVICE.replace("\"L3_L4\"", "\"L7\"");
        assert!(matches!(run(&l7).unwrap(), Parsed::Ignored));
    }

    #[test]
    fn reads_the_bare_flow_of_older_clis() {
        let f = flow(
            r#"{"time":"2024-07-31T10:41:02Z","verdict":"AUDIT","IP":{"source":"10.0.1.5","destination":"10.0.2.7"},"l4":{"ICMPv4":{"type":8}},"Type":"L3_L4"}"#,
        );
        assert_eq!((f.proto, f.dst_port), (Proto::Icmp, None));
        assert_eq!(f.verdict, Some(NetworkVerdict::Allowed));
    }

    #[test]
    fn errors_name_the_field() {
        let e = run(&DROPPED.replace(",\"destination_port\":80", "")).unwrap_err();
        assert!(e.contains("flow.l4.TCP.destination_port"), "{e}");
        let e = run(&DROPPED.replace("2024-07-31T10:41:02.202450754Z", "yesterday")).unwrap_err();
        assert!(e.contains("flow.time"), "{e}");
        let e = run(&DROPPED.replace("10.0.0.21", "10.0.0.321")).unwrap_err();
        assert!(e.contains("invalid IP address"), "{e}");
    }
}
