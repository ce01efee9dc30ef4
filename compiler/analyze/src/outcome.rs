//! Outcomes: what the network did to a flow, against what policy says.
//!
//! | network | policy allows | policy denies |
//! |---|---|---|
//! | allowed | permitted | **escaped** |
//! | dropped | **misdropped** | rejected |
//! | unknown | allowed | would-block |

use std::fmt;

use ringfence_schema::flow::NetworkVerdict;
use serde::Serialize;

/// How many outcomes there are.
pub const OUTCOMES: usize = 6;

/// The outcome of one flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The network allowed it and the policy allows it.
    Permitted,
    /// The network allowed it but the policy would deny it.
    Escaped,
    /// The network dropped it and the policy denies it.
    Rejected,
    /// The network dropped it but the policy would allow it.
    Misdropped,
    /// No network verdict; enforcing the policy would let it through.
    Allowed,
    /// No network verdict; enforcing the policy would block it.
    WouldBlock,
}

impl Outcome {
    /// Every outcome, in display order.
    pub const ALL: [Outcome; OUTCOMES] = [
        Outcome::Permitted,
        Outcome::Escaped,
        Outcome::Rejected,
        Outcome::Misdropped,
        Outcome::Allowed,
        Outcome::WouldBlock,
    ];

    /// The outcome of a flow the policy allows or not, given what the
    /// network did.
    pub fn of(policy_allows: bool, network: Option<NetworkVerdict>) -> Outcome {
        match (network, policy_allows) {
            (Some(NetworkVerdict::Allowed), true) => Outcome::Permitted,
            (Some(NetworkVerdict::Allowed), false) => Outcome::Escaped,
            (Some(NetworkVerdict::Dropped), false) => Outcome::Rejected,
            (Some(NetworkVerdict::Dropped), true) => Outcome::Misdropped,
            (None, true) => Outcome::Allowed,
            (None, false) => Outcome::WouldBlock,
        }
    }

    /// The name used in text, JSON and HTML.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Permitted => "permitted",
            Outcome::Escaped => "escaped",
            Outcome::Rejected => "rejected",
            Outcome::Misdropped => "misdropped",
            Outcome::Allowed => "allowed",
            Outcome::WouldBlock => "would-block",
        }
    }

    /// Whether the outcome is unexpected: the network and the policy
    /// disagree.
    pub fn is_unexpected(self) -> bool {
        matches!(self, Outcome::Escaped | Outcome::Misdropped)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_of_outcomes() {
        use NetworkVerdict::{Allowed, Dropped};
        let table = [
            (true, Some(Allowed), Outcome::Permitted),
            (false, Some(Allowed), Outcome::Escaped),
            (false, Some(Dropped), Outcome::Rejected),
            (true, Some(Dropped), Outcome::Misdropped),
            (true, None, Outcome::Allowed),
            (false, None, Outcome::WouldBlock),
        ];
        for (allows, net, want) in table {
            assert_eq!(Outcome::of(allows, net), want, "{allows} {net:?}");
        }
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(*o as usize, i);
        }
        assert_eq!(
            serde_json::to_string(&Outcome::WouldBlock).unwrap(),
            "\"would-block\""
        );
    }
}
