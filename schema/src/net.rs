//! Protocols, port ranges and address sets.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

mod text;
pub mod write;

/// A transport protocol as a rule matches it. `Any` matches every protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// Every protocol (rules only; a flow always has a concrete protocol).
    Any,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
    /// ICMP and ICMPv6.
    Icmp,
}

impl Proto {
    /// Whether this protocol has ports (tcp, udp, sctp).
    pub fn has_ports(self) -> bool {
        matches!(self, Proto::Tcp | Proto::Udp | Proto::Sctp)
    }

    /// Whether a rule with protocol `self` matches a flow with protocol `flow`.
    pub fn matches(self, flow: Proto) -> bool {
        self == Proto::Any || self == flow
    }

    /// The lowercase name, as written in intent and IR.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Any => "any",
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
            Proto::Icmp => "icmp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Proto {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "any" => Ok(Proto::Any),
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            "sctp" => Ok(Proto::Sctp),
            "icmp" | "icmpv6" | "ipv6-icmp" => Ok(Proto::Icmp),
            _ => Err(format!(
                "unknown protocol `{s}` (expected tcp, udp, sctp, icmp or any)"
            )),
        }
    }
}

/// An inclusive range of ports, written `80` or `8000-8100`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct PortRange {
    /// First port in the range.
    pub start: u16,
    /// Last port in the range (inclusive, `>= start`).
    pub end: u16,
}

impl PortRange {
    /// A range of one port.
    pub fn single(port: u16) -> Self {
        PortRange {
            start: port,
            end: port,
        }
    }

    /// Whether `port` lies in the range.
    pub fn contains(self, port: u16) -> bool {
        self.start <= port && port <= self.end
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parse = |p: &str| {
            p.trim()
                .parse::<u16>()
                .map_err(|_| format!("`{p}` is not a port (0-65535)"))
        };
        let r = match s.split_once('-') {
            Some((a, b)) => PortRange {
                start: parse(a)?,
                end: parse(b)?,
            },
            None => PortRange::single(parse(s)?),
        };
        if r.start > r.end {
            return Err(format!("port range `{s}` is reversed"));
        }
        Ok(r)
    }
}

impl From<PortRange> for String {
    fn from(r: PortRange) -> String {
        r.to_string()
    }
}

impl TryFrom<String> for PortRange {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// Sort, merge overlapping and adjacent ranges: the canonical form of a port list.
pub fn normalize_ports(ports: &mut Vec<PortRange>) {
    ports.sort();
    let mut out: Vec<PortRange> = Vec::with_capacity(ports.len());
    for r in ports.drain(..) {
        match out.last_mut() {
            Some(last) if u32::from(r.start) <= u32::from(last.end) + 1 => {
                last.end = last.end.max(r.end);
            }
            _ => out.push(r),
        }
    }
    *ports = out;
}

/// Whether a port list matches `port`. An empty list matches every port.
pub fn ports_match(ports: &[PortRange], port: Option<u16>) -> bool {
    if ports.is_empty() {
        return true;
    }
    match port {
        Some(p) => ports.iter().any(|r| r.contains(p)),
        None => false,
    }
}

/// A named set of addresses, split by family, in canonical form: each list is
/// sorted, its prefixes are disjoint, and adjacent prefixes are aggregated.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AddressSet {
    /// The set's name, unique within a node's IR. Backends may use it as an
    /// identifier: it matches `[a-z0-9_]+` and is at most 48 bytes long.
    pub name: String,
    /// IPv4 prefixes (in JSON, a run of adjacent ones as its range: `text.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "text::v4")]
    pub v4: Vec<Ipv4Net>,
    /// IPv6 prefixes.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "text::v6")]
    pub v6: Vec<Ipv6Net>,
    /// The set stands for pods (among other things): their addresses come
    /// and go while the rules stay. In a live IR, `v4`/`v6` hold only the
    /// rest (node addresses, external prefixes) and the pods' addresses of
    /// either family arrive with the membership; a backend must render the
    /// set so that single addresses can be added and removed at run time.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub live: bool,
}

impl AddressSet {
    /// Build a set in canonical form from any prefixes.
    pub fn new(name: impl Into<String>, nets: impl IntoIterator<Item = IpNet>) -> Self {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for n in nets {
            match n.trunc() {
                IpNet::V4(n) => v4.push(n),
                IpNet::V6(n) => v6.push(n),
            }
        }
        AddressSet {
            name: name.into(),
            v4: Ipv4Net::aggregate(&v4),
            v6: Ipv6Net::aggregate(&v6),
            live: false,
        }
    }

    /// Whether the set contains `ip`. Binary search: the prefixes are disjoint and sorted.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(ip) => {
                let i = self.v4.partition_point(|n| n.network() <= ip);
                i > 0 && self.v4[i - 1].contains(&ip)
            }
            IpAddr::V6(ip) => {
                let i = self.v6.partition_point(|n| n.network() <= ip);
                i > 0 && self.v6[i - 1].contains(&ip)
            }
        }
    }

    /// Whether the set has no addresses.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Number of prefixes (both families).
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_print_and_normalize() {
        assert_eq!("80".parse::<PortRange>().unwrap(), PortRange::single(80));
        assert_eq!(
            "8000-8100".parse::<PortRange>().unwrap().to_string(),
            "8000-8100"
        );
        assert!(
            "90-80"
                .parse::<PortRange>()
                .unwrap_err()
                .contains("reversed")
        );
        assert!("70000".parse::<PortRange>().is_err());
        let mut v: Vec<PortRange> = ["30-40", "10-20", "21", "35-50", "60"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        normalize_ports(&mut v);
        let s: Vec<String> = v.iter().map(|r| r.to_string()).collect();
        assert_eq!(s, ["10-21", "30-50", "60"]);
        assert!(ports_match(&[], None));
        assert!(!ports_match(&v, None));
        assert!(ports_match(&v, Some(45)));
    }

    #[test]
    fn address_set_is_canonical_and_searchable() {
        let nets = [
            "10.0.0.0/25",
            "10.0.0.128/25",
            "10.0.1.5/32",
            "fd00::/64",
            "10.0.0.7/32",
        ];
        let s = AddressSet::new("s", nets.iter().map(|n| n.parse().unwrap()));
        assert_eq!(
            s.v4.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
            ["10.0.0.0/24", "10.0.1.5/32"]
        );
        assert!(s.contains("10.0.0.200".parse().unwrap()));
        assert!(s.contains("10.0.1.5".parse().unwrap()));
        assert!(!s.contains("10.0.1.6".parse().unwrap()));
        assert!(s.contains("fd00::1".parse().unwrap()));
        assert!(!s.contains("fd01::1".parse().unwrap()));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            r#"{"name":"s","v4":["10.0.0.0/24","10.0.1.5/32"],"v6":["fd00::/64"]}"#
        );
    }
}
