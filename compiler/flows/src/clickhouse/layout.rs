//! Table layouts: which columns a flow table has, the SQL that reads the
//! fields of a conversation from them, and how a conversation's key is read
//! back (`schema/docs/flows.md` documents both layouts).
//!
//! - [`Layout::Ringfence`]: ringfence's own table ([`DDL`]), one row per flow
//!   record, with the key materialized in the `conversation` column.
//! - [`Layout::Theia`]: Antrea Theia's `flows` table as Theia creates it,
//!   one row per exported flow record, mapped column by column.

use std::net::IpAddr;
use std::sync::Arc;

use ringfence_schema::flow::NetworkVerdict;
use ringfence_schema::net::Proto;

/// ringfence's flow table, `{table}` standing for `database.table`.
pub const DDL: &str = "CREATE TABLE IF NOT EXISTS {table}
(
    first_seen_ns Int64,
    last_seen_ns Int64,
    src_ip String,
    dst_ip String,
    proto UInt8,
    dst_port UInt16,
    src_port UInt16,
    orig_dst_ip String,
    orig_dst_port UInt16,
    dst_service String,
    packets UInt64,
    bytes UInt64,
    verdict Enum8('unknown' = 0, 'allowed' = 1, 'dropped' = 2),
    node String,
    conversation String DEFAULT concat(src_ip, ' ', dst_ip, ' ', toString(proto), ' ',
        toString(dst_port), ' ', orig_dst_ip, ' ', toString(orig_dst_port), ' ', dst_service)
)
ENGINE = MergeTree
PARTITION BY toDate(toDateTime(intDiv(first_seen_ns, 1000000000)))
ORDER BY (conversation, first_seen_ns)";

/// ringfence's conversation table, `{conversations}` standing for
/// `database.table_conversations` next to the flow table `{table}`: the
/// flows of each hour aggregated by conversation and network verdict, the
/// states merged by the engine as it merges parts.
pub const CONVERSATIONS_DDL: &str = "CREATE TABLE IF NOT EXISTS {conversations}
(
    hour Int64,
    conversation String,
    verdict Enum8('unknown' = 0, 'allowed' = 1, 'dropped' = 2),
    flows AggregateFunction(count),
    packet_count AggregateFunction(sum, UInt64),
    byte_count AggregateFunction(sum, UInt64),
    first_seen AggregateFunction(min, Int64),
    last_start AggregateFunction(max, Int64),
    last_seen AggregateFunction(max, Int64),
    src_port_count AggregateFunction(uniqUpTo(5), UInt16),
    minute_flows AggregateFunction(sumMap, Array(UInt8), Array(UInt64))
)
ENGINE = AggregatingMergeTree
PARTITION BY toDate(toDateTime(hour * 3600))
ORDER BY (hour, conversation, verdict)";

/// The materialized view that fills `{conversations}` from every insert
/// into `{table}`; `{view}` is `database.table_conversations_view`.
pub const CONVERSATIONS_VIEW_DDL: &str = "CREATE MATERIALIZED VIEW IF NOT EXISTS {view}
TO {conversations}
AS SELECT
    intDiv(first_seen_ns, 3600000000000) AS hour,
    conversation,
    verdict,
    countState() AS flows,
    sumState(packets) AS packet_count,
    sumState(bytes) AS byte_count,
    minState(first_seen_ns) AS first_seen,
    maxState(first_seen_ns) AS last_start,
    maxState(last_seen_ns) AS last_seen,
    uniqUpToState(5)(src_port) AS src_port_count,
    sumMapState([toUInt8(intDiv(first_seen_ns, 60000000000) % 60)], [toUInt64(1)]) AS minute_flows
FROM {table}
GROUP BY hour, conversation, verdict";

/// Nanoseconds in an hour, the conversation table's time bucket.
pub(crate) const HOUR_NS: i64 = 3_600_000_000_000;

/// How a table stores flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// ringfence's own table ([`DDL`]).
    Ringfence,
    /// Antrea Theia's `flows` table.
    Theia,
}

/// A column a layout reads, with the types it accepts.
struct Column {
    name: &'static str,
    types: &'static [&'static str],
}

const fn col(name: &'static str, types: &'static [&'static str]) -> Column {
    Column { name, types }
}

const STRING: &[&str] = &["String", "LowCardinality(String)"];
const VERDICT: &str = "Enum8('unknown' = 0, 'allowed' = 1, 'dropped' = 2)";

const RINGFENCE: &[Column] = &[
    col("first_seen_ns", &["Int64"]),
    col("last_seen_ns", &["Int64"]),
    col("src_ip", STRING),
    col("dst_ip", STRING),
    col("proto", &["UInt8"]),
    col("dst_port", &["UInt16"]),
    col("src_port", &["UInt16"]),
    col("orig_dst_ip", STRING),
    col("orig_dst_port", &["UInt16"]),
    col("dst_service", STRING),
    col("packets", &["UInt64"]),
    col("bytes", &["UInt64"]),
    col("verdict", &[VERDICT]),
    col("node", STRING),
    col("conversation", &["String"]),
];

/// The conversation table's columns ([`CONVERSATIONS_DDL`]).
const CONVERSATIONS: &[Column] = &[
    col("hour", &["Int64"]),
    col("conversation", &["String"]),
    col("verdict", &[VERDICT]),
    col("flows", &["AggregateFunction(count)"]),
    col("packet_count", &["AggregateFunction(sum, UInt64)"]),
    col("byte_count", &["AggregateFunction(sum, UInt64)"]),
    col("first_seen", &["AggregateFunction(min, Int64)"]),
    col("last_start", &["AggregateFunction(max, Int64)"]),
    col("last_seen", &["AggregateFunction(max, Int64)"]),
    col(
        "src_port_count",
        &["AggregateFunction(uniqUpTo(5), UInt16)"],
    ),
    col(
        "minute_flows",
        &["AggregateFunction(sumMap, Array(UInt8), Array(UInt64))"],
    ),
];

const DATETIME: &[&str] = &["DateTime", "DateTime('UTC')"];

const THEIA: &[Column] = &[
    col("flowStartSeconds", DATETIME),
    col("flowEndSeconds", DATETIME),
    col("sourceIP", STRING),
    col("destinationIP", STRING),
    col("sourceTransportPort", &["UInt16"]),
    col("destinationTransportPort", &["UInt16"]),
    col("protocolIdentifier", &["UInt8"]),
    col("packetDeltaCount", &["UInt64"]),
    col("octetDeltaCount", &["UInt64"]),
    col("reversePacketDeltaCount", &["UInt64"]),
    col("reverseOctetDeltaCount", &["UInt64"]),
    col("destinationClusterIP", STRING),
    col("destinationServicePort", &["UInt16"]),
    col("destinationServicePortName", STRING),
    col("ingressNetworkPolicyRuleAction", &["UInt8"]),
    col("egressNetworkPolicyRuleAction", &["UInt8"]),
];

/// SQL expressions for the fields of a flow, in one layout.
pub(crate) struct Exprs {
    /// The conversation key, one `String`: source, destination, protocol
    /// number, destination port, pre-NAT destination, its port, service,
    /// separated by spaces.
    pub(crate) key: &'static str,
    /// 0 unknown, 1 allowed, 2 dropped (`Int8`).
    pub(crate) verdict: &'static str,
    /// Nanoseconds since the epoch (`Int64`).
    pub(crate) first_ns: &'static str,
    pub(crate) last_ns: &'static str,
    /// `UInt64`.
    pub(crate) packets: &'static str,
    pub(crate) bytes: &'static str,
    /// `UInt16`, 0 for none.
    pub(crate) src_port: &'static str,
}

impl Layout {
    /// Its name in summaries.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Ringfence => "ringfence",
            Layout::Theia => "theia",
        }
    }

    fn columns(self) -> &'static [Column] {
        match self {
            Layout::Ringfence => RINGFENCE,
            Layout::Theia => THEIA,
        }
    }

    pub(crate) fn exprs(self) -> Exprs {
        match self {
            Layout::Ringfence => Exprs {
                key: "conversation",
                verdict: "CAST(verdict AS Int8)",
                first_ns: "first_seen_ns",
                last_ns: "last_seen_ns",
                packets: "packets",
                bytes: "bytes",
                src_port: "src_port",
            },
            Layout::Theia => Exprs {
                key: "concat(sourceIP, ' ', destinationIP, ' ', toString(protocolIdentifier), ' ', \
                      toString(destinationTransportPort), ' ', destinationClusterIP, ' ', \
                      toString(destinationServicePort), ' ', destinationServicePortName)",
                verdict: "toInt8(if(ingressNetworkPolicyRuleAction IN (2, 3) \
                          OR egressNetworkPolicyRuleAction IN (2, 3), 2, 1))",
                first_ns: "(toInt64(flowStartSeconds) * 1000000000)",
                last_ns: "(toInt64(flowEndSeconds) * 1000000000)",
                packets: "(packetDeltaCount + reversePacketDeltaCount)",
                bytes: "(octetDeltaCount + reverseOctetDeltaCount)",
                src_port: "sourceTransportPort",
            },
        }
    }

    /// Tell the layout from a table's `(name, type)` columns, or say every
    /// column that is missing or of the wrong type.
    pub(crate) fn detect(columns: &[(String, String)]) -> Result<Layout, String> {
        let has = |name: &str| columns.iter().any(|(n, _)| n == name);
        let layout = if has("src_ip") || has("first_seen_ns") || has("conversation") {
            Layout::Ringfence
        } else if has("sourceIP") || has("flowStartSeconds") {
            Layout::Theia
        } else {
            let names: Vec<&str> = columns.iter().take(8).map(|(n, _)| n.as_str()).collect();
            return Err(format!(
                "its columns ({}{}) are neither ringfence's (src_ip, dst_ip, first_seen_ns, …) \
                 nor Antrea Theia's (sourceIP, destinationIP, flowStartSeconds, …)",
                names.join(", "),
                if columns.len() > 8 { ", …" } else { "" }
            ));
        };
        let problems = problems(columns, layout.columns());
        if problems.is_empty() {
            Ok(layout)
        } else {
            Err(format!(
                "a table of the {} layout, but {}",
                layout.name(),
                problems.join("; ")
            ))
        }
    }

    /// Check the columns of a conversation table ([`CONVERSATIONS_DDL`]),
    /// or say every column that is missing or of the wrong type.
    pub(crate) fn check_conversations(columns: &[(String, String)]) -> Result<(), String> {
        let problems = problems(columns, CONVERSATIONS);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "a conversation table (schema/docs/flows.md), but {}",
                problems.join("; ")
            ))
        }
    }

    /// The flow fields of a key the server returned (`None`: a protocol
    /// without policy, which files skip too), or what is wrong with it.
    pub(crate) fn parse_key(self, key: &str) -> Result<Option<KeyFields>, String> {
        let mut parts = key.splitn(7, ' ');
        let mut next = |what: &str| {
            parts
                .next()
                .ok_or_else(|| format!("the key `{}` has no {what}", snippet(key)))
        };
        let (src, dst, proto, dport, orig, oport) = (
            next("source")?,
            next("destination")?,
            next("protocol")?,
            next("destination port")?,
            next("pre-NAT destination")?,
            next("pre-NAT port")?,
        );
        let service = parts.next().unwrap_or("");
        let ip = |s: &str, what: &str| {
            s.parse::<IpAddr>()
                .map_err(|_| format!("{what} `{}` is not an IP address", snippet(s)))
        };
        // Port 0 is no port.
        let port = |s: &str, what: &str| {
            s.parse::<u16>()
                .map(|n| (n != 0).then_some(n))
                .map_err(|_| format!("{what} `{}` is not a port", snippet(s)))
        };
        let proto = match proto.parse::<u8>() {
            Ok(6) => Proto::Tcp,
            Ok(17) => Proto::Udp,
            Ok(132) => Proto::Sctp,
            Ok(1 | 58) => Proto::Icmp,
            // Protocols without policy (gre, igmp, …), as files skip them.
            Ok(_) => return Ok(None),
            Err(_) => return Err(format!("the protocol `{}` is not a number", snippet(proto))),
        };
        let (orig_dst_ip, dst_service) = match self {
            Layout::Ringfence => (
                (!orig.is_empty())
                    .then(|| ip(orig, "orig_dst_ip"))
                    .transpose()?,
                service,
            ),
            // Theia writes 0.0.0.0 (or ::, or nothing) when no service was
            // addressed, and names the service port `namespace/name:port`.
            Layout::Theia => (
                (!matches!(orig, "" | "0.0.0.0" | "::"))
                    .then(|| ip(orig, "destinationClusterIP"))
                    .transpose()?,
                service.split(':').next().unwrap_or(""),
            ),
        };
        let orig_dst_port = match orig_dst_ip {
            Some(_) => port(oport, "the pre-NAT port")?,
            None => None,
        };
        Ok(Some(KeyFields {
            src_ip: ip(src, "the source")?,
            dst_ip: ip(dst, "the destination")?,
            proto,
            dst_port: port(dport, "the destination port")?,
            orig_dst_ip,
            orig_dst_port,
            dst_service: (!dst_service.is_empty()).then(|| Arc::from(dst_service)),
        }))
    }
}

/// Every column of `expected` that `columns` lacks or has of another type.
fn problems(columns: &[(String, String)], expected: &[Column]) -> Vec<String> {
    let mut problems = Vec::new();
    for c in expected {
        match columns.iter().find(|(n, _)| n == c.name) {
            None => problems.push(format!("column `{}` is missing ({})", c.name, c.types[0])),
            Some((_, t)) if !c.types.contains(&t.as_str()) => problems.push(format!(
                "column `{}` is {t}, expected {}",
                c.name,
                c.types.join(" or ")
            )),
            Some(_) => {}
        }
    }
    problems
}

/// The fields of a conversation's key.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct KeyFields {
    pub(crate) src_ip: IpAddr,
    pub(crate) dst_ip: IpAddr,
    pub(crate) proto: Proto,
    pub(crate) dst_port: Option<u16>,
    pub(crate) orig_dst_ip: Option<IpAddr>,
    pub(crate) orig_dst_port: Option<u16>,
    pub(crate) dst_service: Option<Arc<str>>,
}

/// The verdict of its number in a layout's `verdict` expression.
pub(crate) fn verdict(n: i8) -> Result<Option<NetworkVerdict>, String> {
    match n {
        0 => Ok(None),
        1 => Ok(Some(NetworkVerdict::Allowed)),
        2 => Ok(Some(NetworkVerdict::Dropped)),
        _ => Err(format!(
            "verdict {n} is none of unknown (0), allowed (1), dropped (2)"
        )),
    }
}

/// The beginning of a value, for messages.
fn snippet(s: &str) -> String {
    let head: String = s.chars().take(60).collect();
    if head.len() < s.len() {
        format!("{head}…")
    } else {
        head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect()
    }

    #[test]
    fn detection_names_each_wrong_column() {
        let mut ours: Vec<(String, String)> = RINGFENCE
            .iter()
            .map(|c| (c.name.to_string(), c.types[0].to_string()))
            .collect();
        assert_eq!(Layout::detect(&ours), Ok(Layout::Ringfence));
        ours.retain(|(n, _)| n != "dst_port");
        ours[2].1 = "FixedString(16)".into();
        let e = Layout::detect(&ours).unwrap_err();
        assert!(e.contains("column `dst_port` is missing (UInt16)"), "{e}");
        assert!(
            e.contains(
                "column `src_ip` is FixedString(16), expected String or LowCardinality(String)"
            ),
            "{e}"
        );
        let theia: Vec<(String, String)> = THEIA
            .iter()
            .map(|c| (c.name.to_string(), c.types[0].to_string()))
            .chain(cols(&[
                ("timeInserted", "DateTime"),
                ("tcpState", "String"),
            ]))
            .collect();
        assert_eq!(Layout::detect(&theia), Ok(Layout::Theia));
        let e = Layout::detect(&cols(&[("a", "UInt8"), ("b", "String")])).unwrap_err();
        assert!(e.contains("(a, b) are neither"), "{e}");
    }

    /// The DDL users copy is the one `flows load` runs.
    #[test]
    fn the_documented_ddl_is_the_one_used() {
        let doc = include_str!("../../../../schema/docs/flows.md");
        for ddl in [DDL, CONVERSATIONS_DDL, CONVERSATIONS_VIEW_DDL] {
            assert!(
                doc.contains(ddl),
                "schema/docs/flows.md must hold layout's DDL verbatim: {ddl}"
            );
        }
        for (ddl, cols) in [(DDL, RINGFENCE), (CONVERSATIONS_DDL, CONVERSATIONS)] {
            for c in cols {
                assert!(
                    ddl.contains(&format!("    {} {}", c.name, c.types[0])),
                    "{}",
                    c.name
                );
            }
        }
        // The source ports kept per conversation are the ones discovery asks for.
        let n = crate::conversation::SRC_PORTS + 1;
        assert!(CONVERSATIONS_DDL.contains(&format!("uniqUpTo({n}), UInt16")));
        assert!(CONVERSATIONS_VIEW_DDL.contains(&format!("uniqUpToState({n})(src_port)")));
        let mut ours: Vec<(String, String)> = CONVERSATIONS
            .iter()
            .map(|c| (c.name.to_string(), c.types[0].to_string()))
            .collect();
        assert_eq!(Layout::check_conversations(&ours), Ok(()));
        // A table of earlier versions, with its topK column, is read as well.
        ours.push((
            "src_port_top".into(),
            "AggregateFunction(topK(5), UInt16)".into(),
        ));
        assert_eq!(Layout::check_conversations(&ours), Ok(()));
        ours.retain(|(n, _)| n != "minute_flows");
        let e = Layout::check_conversations(&ours).unwrap_err();
        assert!(e.contains("column `minute_flows` is missing"), "{e}");
    }

    #[test]
    fn keys_read_back_per_layout() {
        let k = Layout::Ringfence
            .parse_key("10.0.0.1 10.0.0.2 6 8080 10.96.0.1 80 shop/web")
            .unwrap()
            .unwrap();
        assert_eq!(
            (k.dst_port, k.orig_dst_port, k.dst_service.as_deref()),
            (Some(8080), Some(80), Some("shop/web"))
        );
        let k = Layout::Ringfence
            .parse_key("fd00::1 fd00::2 58 0  0 ")
            .unwrap()
            .unwrap();
        assert_eq!(
            (k.proto, k.dst_port, k.orig_dst_ip),
            (Proto::Icmp, None, None)
        );
        let k = Layout::Theia
            .parse_key("10.0.0.1 10.244.1.9 17 53 0.0.0.0 0 ")
            .unwrap()
            .unwrap();
        assert_eq!((k.orig_dst_ip, k.dst_service), (None, None));
        let k = Layout::Theia
            .parse_key("10.0.0.1 10.244.1.9 6 8080 10.96.0.20 80 shop/web:http")
            .unwrap()
            .unwrap();
        assert_eq!(k.dst_service.as_deref(), Some("shop/web"));
        assert_eq!(
            Layout::Ringfence.parse_key("1.1.1.1 2.2.2.2 47 0  0 "),
            Ok(None)
        );
        for (bad, why) in [
            ("10.0.0.1 10.0.0.2 6", "has no destination port"),
            (
                "10.0.0.x 10.0.0.2 6 80  0 ",
                "the source `10.0.0.x` is not an IP address",
            ),
            ("10.0.0.1 10.0.0.2 6 80000  0 ", "`80000` is not a port"),
            (
                "10.0.0.1 10.0.0.2 tcp 80  0 ",
                "protocol `tcp` is not a number",
            ),
        ] {
            let e = Layout::Ringfence.parse_key(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
