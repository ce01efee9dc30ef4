//! Membership documents: sealing, and everything an agent checks before one
//! touches its sets (`schema/docs/membership.md`).
//!
//! A snapshot or a delta is a DSSE envelope like a bundle (same framing, same
//! signature rules), of its own payload type, signed by the membership keys
//! (which may differ from the policy keys: they can fill what a bundle
//! declares, never add a rule). On top of the envelope checks a document
//! must be for this node and for the bundle generation in force, unexpired,
//! in sequence (a delta exactly one after the last document applied, naming
//! its payload digest; a snapshot anything newer), and name only sets,
//! chains and exposures the bundle declares. Each refusal has a stable
//! [`Reason`].

use std::time::SystemTime;

use ringfence_schema::ir::NodeIr;
use ringfence_schema::membership::{
    DELTA_PAYLOAD_TYPE, DeltaPayload, Fault, MEMBERSHIP_FORMAT, Membership,
    SNAPSHOT_JSON_PAYLOAD_TYPE, SNAPSHOT_PAYLOAD_TYPE, SnapshotPayload,
};

use crate::keys::SigningKey;
use crate::seal::{seal_envelope, sha256_hex};
use crate::time::parse_time;
use crate::verify::{
    MAX_BUNDLE_BYTES, Reason, Trust, VerifyError, check_format, open_sealed, parse_envelope, refuse,
};

impl From<Fault> for VerifyError {
    fn from(f: Fault) -> Self {
        let reason = match &f {
            Fault::Malformed(_) => Reason::Malformed,
            Fault::Undeclared(_) => Reason::Undeclared,
            Fault::Inconsistent(_) => Reason::Inconsistent,
        };
        VerifyError {
            reason,
            detail: f.to_string(),
        }
    }
}

/// How hard a snapshot is compressed (miniz's scale, 0–10): on nodes' real
/// snapshots 3 deflates twice as fast as 6 (214 vs 110 MB/s) for 8 % more bytes.
const SNAPSHOT_LEVEL: u8 = 3;

/// The bytes of a snapshot file and the hex SHA-256 of its payload, the
/// compressed bytes that are signed (what the next delta names as `previous`).
pub fn seal_snapshot(p: &SnapshotPayload, keys: &[&SigningKey]) -> (Vec<u8>, String) {
    let json = serde_json::to_vec(p).expect("a snapshot always serialises");
    let bytes = miniz_oxide::deflate::compress_to_vec_zlib(&json, SNAPSHOT_LEVEL);
    let digest = sha256_hex(&bytes);
    (seal_envelope(SNAPSHOT_PAYLOAD_TYPE, &bytes, keys), digest)
}

/// The bytes of a delta file and the hex SHA-256 of its payload.
pub fn seal_delta(p: &DeltaPayload, keys: &[&SigningKey]) -> (Vec<u8>, String) {
    let bytes = serde_json::to_vec(p).expect("a delta always serialises");
    let digest = sha256_hex(&bytes);
    (seal_envelope(DELTA_PAYLOAD_TYPE, &bytes, keys), digest)
}

/// What the node has applied: the last document's sequence and payload digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Applied<'a> {
    /// Its sequence.
    pub sequence: u64,
    /// Hex SHA-256 of its payload.
    pub digest: &'a str,
}

/// What a document must fit.
#[derive(Clone, Copy, Debug)]
pub struct MembershipExpect<'a> {
    /// This node.
    pub node: &'a str,
    /// The bundle generation in force.
    pub generation: u64,
    /// The bundle's IR (its declared sets, chains and exposures).
    pub ir: Option<&'a NodeIr>,
    /// The current time.
    pub now: SystemTime,
    /// The last document applied; `None` before the first (only a snapshot fits).
    pub applied: Option<Applied<'a>>,
}

/// A snapshot or a delta.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Document {
    /// The whole membership.
    Snapshot(SnapshotPayload),
    /// Changes from the previous document.
    Delta(DeltaPayload),
}

impl Document {
    /// Its sequence number.
    pub fn sequence(&self) -> u64 {
        match self {
            Document::Snapshot(s) => s.sequence,
            Document::Delta(d) => d.sequence,
        }
    }

    /// The bundle generation it fills.
    pub fn generation(&self) -> u64 {
        match self {
            Document::Snapshot(s) => s.generation,
            Document::Delta(d) => d.generation,
        }
    }

    /// When it was issued.
    pub fn issued_at(&self) -> &str {
        match self {
            Document::Snapshot(s) => &s.issued_at,
            Document::Delta(d) => &d.issued_at,
        }
    }

    /// The membership it leads to from `current` (the state after the last
    /// document applied): the snapshot's, or `current` with the changes.
    pub fn apply_to(&self, current: &Membership) -> Result<Membership, VerifyError> {
        match self {
            Document::Snapshot(s) => Ok(s.membership.clone()),
            Document::Delta(d) => Ok(current.applied(&d.changes)?),
        }
    }

    /// As [`Document::apply_to`], taking a snapshot's membership out of the
    /// document instead of copying it (the document keeps the rest).
    pub fn take_membership(&mut self, current: &Membership) -> Result<Membership, VerifyError> {
        match self {
            Document::Snapshot(s) => Ok(std::mem::take(&mut s.membership)),
            Document::Delta(d) => Ok(current.applied(&d.changes)?),
        }
    }
}

/// A document that passed every check.
#[derive(Clone, Debug)]
pub struct VerifiedMembership {
    /// The signed payload.
    pub document: Document,
    /// Hex SHA-256 of its payload bytes.
    pub digest: String,
    /// Trusted keys whose signatures verified, sorted.
    pub signers: Vec<String>,
}

/// A verified snapshot payload, inflated: at most [`MAX_BUNDLE_BYTES`]
/// (`too-large`, so a small signed file cannot fill the node's memory), one
/// whole zlib stream (`malformed`).
fn inflate(z: &[u8]) -> Result<Vec<u8>, VerifyError> {
    use miniz_oxide::inflate::{TINFLStatus, decompress_to_vec_zlib_with_limit};
    decompress_to_vec_zlib_with_limit(z, MAX_BUNDLE_BYTES).or_else(|e| match e.status {
        TINFLStatus::HasMoreOutput => refuse(
            Reason::TooLarge,
            format!(
                "the snapshot payload inflates to more than {MAX_BUNDLE_BYTES} bytes ({} compressed)",
                z.len()
            ),
        ),
        _ => refuse(
            Reason::Malformed,
            format!("the snapshot payload is not a zlib stream: {e}"),
        ),
    })
}

/// Verify a membership document's bytes.
///
/// Order: size → envelope (truncated, malformed) → payload type →
/// signatures (unknown key, bad signature, threshold) → a snapshot's
/// inflation (too large, malformed) → format → payload
/// shape and times → node → generation → expiry → sequence (replay, gap) →
/// chain (broken-chain) → canonical form and declared names (malformed,
/// undeclared). The first failing check is the reason. Whether a delta's
/// changes fit the membership in force is [`Document::apply_to`]'s check
/// (`inconsistent`).
pub fn verify_membership(
    bytes: &[u8],
    trust: &Trust,
    expect: &MembershipExpect<'_>,
) -> Result<VerifiedMembership, VerifyError> {
    let envelope = parse_envelope(bytes)?;
    // (a snapshot?, compressed?)
    let (snapshot, compressed) = match envelope.payload_type.as_str() {
        SNAPSHOT_PAYLOAD_TYPE => (true, true),
        SNAPSHOT_JSON_PAYLOAD_TYPE => (true, false),
        DELTA_PAYLOAD_TYPE => (false, false),
        other => {
            return refuse(
                Reason::UnsupportedFormat,
                format!(
                    "payload type `{other}` is not a membership snapshot or delta (`{SNAPSHOT_PAYLOAD_TYPE}`, `{DELTA_PAYLOAD_TYPE}`)"
                ),
            );
        }
    };
    let payload_type = envelope.payload_type.clone();
    let (payload, signers) = open_sealed(&envelope, &payload_type, trust)?;
    drop(envelope);
    let digest = sha256_hex(&payload);
    let payload = if compressed {
        inflate(&payload)?
    } else {
        payload
    };
    check_format(&payload, "membership", MEMBERSHIP_FORMAT)?;
    let document = if snapshot {
        Document::Snapshot(
            serde_json::from_slice(&payload)
                .or_else(|e| refuse(Reason::Malformed, format!("snapshot payload: {e}")))?,
        )
    } else {
        Document::Delta(
            serde_json::from_slice(&payload)
                .or_else(|e| refuse(Reason::Malformed, format!("delta payload: {e}")))?,
        )
    };
    let (node, issued_at, expires_at) = match &document {
        Document::Snapshot(s) => (&s.node, &s.issued_at, &s.expires_at),
        Document::Delta(d) => (&d.node, &d.issued_at, &d.expires_at),
    };
    let issued =
        parse_time(issued_at).or_else(|e| refuse(Reason::Malformed, format!("issued_at: {e}")))?;
    let expires = parse_time(expires_at)
        .or_else(|e| refuse(Reason::Malformed, format!("expires_at: {e}")))?;
    if expires <= issued {
        return refuse(
            Reason::Malformed,
            format!("expires_at {expires_at} is not after issued_at {issued_at}"),
        );
    }
    if node != expect.node {
        return refuse(
            Reason::WrongNode,
            format!("membership is for node `{node}`, this is `{}`", expect.node),
        );
    }
    let generation = document.generation();
    if generation != expect.generation {
        return refuse(
            Reason::WrongGeneration,
            format!(
                "membership fills bundle generation {generation}, generation {} is in force",
                expect.generation
            ),
        );
    }
    if expect.now >= expires {
        return refuse(
            Reason::Expired,
            format!("expired at {expires_at} (issued {issued_at})"),
        );
    }
    let sequence = document.sequence();
    match (&document, expect.applied) {
        (_, Some(a)) if sequence <= a.sequence => {
            return refuse(
                Reason::Replay,
                format!(
                    "sequence {sequence} is not after {}, the last applied (a replay or a reordered document)",
                    a.sequence
                ),
            );
        }
        (Document::Delta(_), None) => {
            return refuse(
                Reason::Gap,
                format!("delta {sequence} with no membership applied yet: a snapshot comes first"),
            );
        }
        (Document::Delta(_), Some(a)) if sequence != a.sequence + 1 => {
            return refuse(
                Reason::Gap,
                format!(
                    "delta {sequence} does not follow {}, the last applied (documents {}..{} are missing)",
                    a.sequence,
                    a.sequence + 1,
                    sequence - 1
                ),
            );
        }
        (Document::Delta(d), Some(a)) if d.previous != a.digest => {
            return refuse(
                Reason::BrokenChain,
                format!(
                    "delta {sequence} follows a document with digest {}, the last applied has {}",
                    d.previous, a.digest
                ),
            );
        }
        _ => {}
    }
    match (&document, expect.ir) {
        (Document::Snapshot(s), Some(ir)) => s.membership.check(ir)?,
        (Document::Snapshot(s), None) => s.membership.validate()?,
        (Document::Delta(d), Some(ir)) => d.changes.check(ir)?,
        (Document::Delta(d), None) => d.changes.validate()?,
    }
    Ok(VerifiedMembership {
        document,
        digest,
        signers,
    })
}
