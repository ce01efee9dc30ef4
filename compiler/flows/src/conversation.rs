//! [`Conversation`]: the flows of one conversation, aggregated where they are
//! stored (a ClickHouse table), as discovery and analysis read them.
//!
//! A conversation is what the verdict and discovery depend on: source,
//! destination, protocol, destination port, the pre-NAT destination and the
//! service named, with one network verdict. Its row carries how many flows it
//! stands for, their packets and bytes, the first and last time seen, and
//! the source ports when few (discovery tells replies by them).

use crate::flow::Flow;
use crate::time::Timestamp;

/// Distinct source ports up to this many are kept; more is [`SrcPorts::Many`].
pub const SRC_PORTS: usize = 4;

/// The distinct source ports of a conversation's flows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SrcPorts {
    /// At most [`SRC_PORTS`], sorted (none when the flows carry none, or
    /// when they were not asked for).
    Few(Vec<u16>),
    /// More than [`SRC_PORTS`].
    Many,
}

/// The flows of one conversation with one network verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conversation {
    /// The conversation and its totals: the key fields as its flows have
    /// them, `packets` and `bytes` summed, `first_seen` the earliest,
    /// `last_seen` the latest; no source port, no node.
    pub flow: Flow,
    /// How many flow records it stands for (at least 1).
    pub flows: u64,
    /// The latest `first_seen` of its flows (where the last of them starts).
    pub last_start: Timestamp,
    /// The distinct source ports.
    pub src_ports: SrcPorts,
    /// The key as the table spells it, to ask about this conversation again.
    pub key: Box<str>,
}
