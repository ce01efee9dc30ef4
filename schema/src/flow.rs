//! Flow records: what discovery and analysis read (`schema/docs/flows.md`).
//!
//! One JSON object per line. Hubble and conntrack exports are converted into
//! this shape by the readers in the compiler.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::net::Proto;

/// What the network did with a flow, as observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkVerdict {
    /// The flow went through.
    Allowed,
    /// The flow was dropped.
    Dropped,
}

/// One observed flow (or an aggregate of identical ones).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRecord {
    /// Source address (the consumer).
    pub src_ip: IpAddr,
    /// Destination address (the provider) as policy sees it: after any
    /// destination NAT (a service's backend pod), when the observer saw the
    /// translation; otherwise as the consumer addressed it (a service
    /// clusterIP, a load-balancer address, a node port).
    pub dst_ip: IpAddr,
    /// tcp, udp, sctp or icmp.
    pub proto: Proto,
    /// Destination port (absent or 0 for icmp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<u16>,
    /// Source port, if known. Never becomes policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    /// The destination address the consumer used, when a destination NAT
    /// rewrote it into `dst_ip` (a service clusterIP, a load-balancer address,
    /// a node address for a node port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orig_dst_ip: Option<IpAddr>,
    /// The destination port the consumer used, when a destination NAT
    /// rewrote it into `dst_port` (a service port, a node port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orig_dst_port: Option<u16>,
    /// The Kubernetes service the flow was addressed to, `NAMESPACE/NAME`,
    /// when the observer names it (Hubble's `destination_service`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_service: Option<String>,
    /// Packets seen.
    #[serde(default)]
    pub packets: u64,
    /// Bytes seen.
    #[serde(default)]
    pub bytes: u64,
    /// First time seen, RFC 3339.
    pub first_seen: String,
    /// Last time seen, RFC 3339.
    pub last_seen: String,
    /// What the network did, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<NetworkVerdict>,
    /// The node that observed it, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}
