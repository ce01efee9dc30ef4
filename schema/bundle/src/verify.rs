//! Verification: everything an agent checks before a bundle may be applied.
//!
//! Checks run cheapest-and-unauthenticated first, then the signatures, and
//! only then is anything inside the payload believed. Every refusal carries a
//! stable [`Reason`] and a detail naming what exactly was wrong.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ringfence_schema::bundle::{
    BUNDLE_FORMAT, BUNDLE_PAYLOAD_TYPE, BundleFile, BundlePayload, INDEX_PAYLOAD_TYPE, IR_FILE,
    IndexPayload, Signature,
};
use ringfence_schema::ir::NodeIr;
use serde::Deserialize;

use crate::keys::TrustedKey;
use crate::seal::{pae, pae_header, rules_sha256, sha256_hex};
use crate::time::parse_time;

/// The largest bundle or index file a verifier reads (64 MiB). Readers should
/// stop at one byte more (`Read::take`) so an endless download is cut early.
pub const MAX_BUNDLE_BYTES: usize = 64 << 20;

/// How far a bundle's `issued_at` may lie ahead of the verifier's clock
/// (clocks of the compiling machine and the node disagree a little); a
/// bundle dated later is refused as `not-yet-valid`.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// The keys a verifier trusts, and how many of them must have signed.
#[derive(Clone, Debug)]
pub struct Trust {
    keys: BTreeMap<String, TrustedKey>,
    threshold: usize,
}

impl Trust {
    /// Trust `keys` (duplicates count once); `threshold` distinct ones must
    /// sign (at least 1).
    pub fn new(keys: impl IntoIterator<Item = TrustedKey>, threshold: usize) -> Self {
        Trust {
            keys: keys.into_iter().map(|k| (k.keyid.clone(), k)).collect(),
            threshold: threshold.max(1),
        }
    }

    /// The trust flags of `ringfence verify` and `ringfence-agent` (`--trust
    /// K… --threshold N`), under one rule: `threshold` is between 1 and the
    /// number of **distinct** keys (a key given twice counts once).
    pub fn checked(keys: Vec<TrustedKey>, threshold: usize) -> Result<Self, String> {
        let trust = Trust::new(keys, threshold.max(1));
        if threshold == 0 || threshold > trust.keys.len() {
            return Err(format!(
                "--threshold {threshold} with {} distinct trusted key(s): it must be between 1 and the number of distinct keys given with --trust",
                trust.keys.len()
            ));
        }
        Ok(trust)
    }

    /// Key ids of the distinct trusted keys, sorted.
    pub fn keyids(&self) -> Vec<&str> {
        self.keys.keys().map(String::as_str).collect()
    }

    /// How many distinct trusted keys must have signed.
    pub fn threshold(&self) -> usize {
        self.threshold
    }
}

/// What the verifier expects of the bundle beyond a valid signature.
#[derive(Clone, Debug, Default)]
pub struct Expectations<'a> {
    /// The node it must be for.
    pub node: Option<&'a str>,
    /// The lowest acceptable generation.
    pub min_generation: Option<u64>,
    /// The current time; `None` skips the expiry check.
    pub now: Option<SystemTime>,
    /// A verified index the bundle must be listed in with this exact digest.
    pub index: Option<&'a IndexPayload>,
}

/// Why a bundle or a membership document was refused: a stable code for
/// metrics and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// Ends early (a partial download or a cut file).
    Truncated,
    /// Larger than [`MAX_BUNDLE_BYTES`].
    TooLarge,
    /// Not a bundle envelope, or an undecodable or inconsistent payload.
    Malformed,
    /// Payload type or format version this verifier does not know.
    UnsupportedFormat,
    /// No signature from any trusted key.
    UnknownKey,
    /// A signature from a trusted key that does not verify.
    BadSignature,
    /// Fewer valid signatures from distinct trusted keys than the threshold.
    Threshold,
    /// For another node.
    WrongNode,
    /// Generation older than required.
    OldGeneration,
    /// Past its expiry.
    Expired,
    /// Issued later than the verifier's clock allows ([`MAX_CLOCK_SKEW`]).
    NotYetValid,
    /// A file's content does not match its size or digest.
    DigestMismatch,
    /// A required file is missing.
    MissingFile,
    /// Not listed in the index, or listed with another digest or generation.
    NotInIndex,
    /// A rules file reaches beyond what a ruleset may change
    /// (`ringfence_nft::screen`: anything but `table inet ringfence`).
    UnsafeRules,
    /// A membership document for another bundle generation than the one in force.
    WrongGeneration,
    /// A membership document not newer than what was applied (a replay, or reordered).
    Replay,
    /// A membership delta that does not follow the last document applied:
    /// documents were lost or reordered (fetch a snapshot).
    Gap,
    /// A membership delta whose `previous` is not the digest of the last
    /// document applied (another history).
    BrokenChain,
    /// Membership naming a set, chain or exposure the bundle does not declare.
    Undeclared,
    /// Membership changes that do not fit the membership in force.
    Inconsistent,
}

impl Reason {
    /// Every reason, in declaration order.
    pub const ALL: [Reason; 21] = [
        Reason::Truncated,
        Reason::TooLarge,
        Reason::Malformed,
        Reason::UnsupportedFormat,
        Reason::UnknownKey,
        Reason::BadSignature,
        Reason::Threshold,
        Reason::WrongNode,
        Reason::OldGeneration,
        Reason::Expired,
        Reason::NotYetValid,
        Reason::DigestMismatch,
        Reason::MissingFile,
        Reason::NotInIndex,
        Reason::UnsafeRules,
        Reason::WrongGeneration,
        Reason::Replay,
        Reason::Gap,
        Reason::BrokenChain,
        Reason::Undeclared,
        Reason::Inconsistent,
    ];

    /// The stable code (`bad-signature`, `expired`, …).
    pub fn code(self) -> &'static str {
        match self {
            Reason::Truncated => "truncated",
            Reason::TooLarge => "too-large",
            Reason::Malformed => "malformed",
            Reason::UnsupportedFormat => "unsupported-format",
            Reason::UnknownKey => "unknown-key",
            Reason::BadSignature => "bad-signature",
            Reason::Threshold => "threshold",
            Reason::WrongNode => "wrong-node",
            Reason::OldGeneration => "old-generation",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not-yet-valid",
            Reason::DigestMismatch => "digest-mismatch",
            Reason::MissingFile => "missing-file",
            Reason::NotInIndex => "not-in-index",
            Reason::UnsafeRules => "unsafe-rules",
            Reason::WrongGeneration => "wrong-generation",
            Reason::Replay => "replay",
            Reason::Gap => "gap",
            Reason::BrokenChain => "broken-chain",
            Reason::Undeclared => "undeclared",
            Reason::Inconsistent => "inconsistent",
        }
    }

    /// Whether a bundle can be refused for it: all but the membership codes.
    pub fn of_bundles(self) -> bool {
        !matches!(
            self,
            Reason::WrongGeneration
                | Reason::Replay
                | Reason::Gap
                | Reason::BrokenChain
                | Reason::Undeclared
                | Reason::Inconsistent
        )
    }

    /// Whether a membership document can be refused for it: all but the
    /// codes of a bundle's files, index and clock.
    pub fn of_membership(self) -> bool {
        !matches!(
            self,
            Reason::OldGeneration
                | Reason::NotYetValid
                | Reason::DigestMismatch
                | Reason::MissingFile
                | Reason::NotInIndex
                | Reason::UnsafeRules
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A refusal: the reason code and the precise detail.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct VerifyError {
    /// Stable reason.
    pub reason: Reason,
    /// What exactly, for the operator.
    pub detail: String,
}

pub(crate) fn refuse<T>(reason: Reason, detail: impl Into<String>) -> Result<T, VerifyError> {
    Err(VerifyError {
        reason,
        detail: detail.into(),
    })
}

/// A bundle that passed every check.
#[derive(Clone, Debug)]
pub struct VerifiedBundle {
    /// The signed payload.
    pub payload: BundlePayload,
    /// Hex SHA-256 of the bundle file's bytes.
    pub sha256: String,
    /// Trusted keys whose signatures verified, sorted.
    pub signers: Vec<String>,
    /// The node's IR (`ir.json`), parsed and validated.
    pub ir: NodeIr,
}

impl VerifiedBundle {
    /// A file's content by name.
    pub fn file(&self, name: &str) -> Option<&str> {
        self.payload
            .files
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.content.as_str())
    }

    /// Digest of the rules ([`rules_sha256`]): an agent holding a bundle of
    /// the same generation accepts this one only as an expiry refresh, when
    /// the two digests are equal.
    pub fn rules_sha256(&self) -> String {
        rules_sha256(&self.payload.files)
    }
}

fn missing(name: &str) -> VerifyError {
    VerifyError {
        reason: Reason::MissingFile,
        detail: format!("the bundle has no {name}"),
    }
}

/// Whether `name` may name a file in a bundle: `[a-z0-9._-]+`, not `.` or
/// `..`, and not hidden — an agent may write it into a directory as is.
pub fn valid_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// A DSSE envelope as read for verification: the fields of
/// [`Envelope`](ringfence_schema::bundle::Envelope), its payload borrowed
/// from the file's bytes (base64 has nothing to unescape), not copied: a
/// big node's membership snapshot is over a MiB of it.
#[derive(Deserialize)]
pub(crate) struct Sealed<'a> {
    /// What the payload is.
    #[serde(rename = "payloadType")]
    pub(crate) payload_type: String,
    /// Base64 of the payload bytes.
    #[serde(borrow)]
    pub(crate) payload: std::borrow::Cow<'a, str>,
    /// The signatures.
    pub(crate) signatures: Vec<Signature>,
}

/// Parse the envelope: the whole file must be its JSON plus one newline.
pub(crate) fn parse_envelope(bytes: &[u8]) -> Result<Sealed<'_>, VerifyError> {
    if bytes.len() > MAX_BUNDLE_BYTES {
        return refuse(
            Reason::TooLarge,
            format!(
                "{} bytes; a bundle or index is at most {MAX_BUNDLE_BYTES}",
                bytes.len()
            ),
        );
    }
    let mut stream = serde_json::Deserializer::from_slice(bytes).into_iter::<Sealed<'_>>();
    let envelope = match stream.next() {
        Some(Ok(e)) => e,
        Some(Err(e)) if e.is_eof() => {
            return refuse(
                Reason::Truncated,
                format!("the file ends early ({} bytes): {e}", bytes.len()),
            );
        }
        Some(Err(e)) => return refuse(Reason::Malformed, format!("not a signed envelope: {e}")),
        None => return refuse(Reason::Truncated, "the file is empty"),
    };
    match &bytes[stream.byte_offset()..] {
        b"\n" => Ok(envelope),
        // Every proper prefix of the file is refused, this one included.
        b"" => refuse(
            Reason::Truncated,
            format!(
                "the file ends early ({} bytes): no final newline",
                bytes.len()
            ),
        ),
        rest => refuse(
            Reason::Malformed,
            format!(
                "{} unexpected bytes after the envelope (only one newline may follow it)",
                rest.len()
            ),
        ),
    }
}

/// Check an envelope's type and signatures; return the payload bytes and the
/// sorted key ids of the trusted keys whose signatures verified.
pub(crate) fn open(
    bytes: &[u8],
    payload_type: &str,
    trust: &Trust,
) -> Result<(Vec<u8>, Vec<String>), VerifyError> {
    open_sealed(&parse_envelope(bytes)?, payload_type, trust)
}

/// [`open`] for an envelope already parsed.
pub(crate) fn open_sealed(
    envelope: &Sealed<'_>,
    payload_type: &str,
    trust: &Trust,
) -> Result<(Vec<u8>, Vec<String>), VerifyError> {
    if envelope.payload_type != payload_type {
        return refuse(
            Reason::UnsupportedFormat,
            format!(
                "payload type `{}` is not `{payload_type}` (made by a newer or different tool?)",
                envelope.payload_type
            ),
        );
    }
    // The payload is decoded right after the PAE header, so the signed
    // message is one buffer and the payload is not copied into it.
    let b64 = envelope.payload.as_bytes();
    let pad = b64.iter().rev().take(2).filter(|b| **b == b'=').count();
    let len = (b64.len() / 4 * 3).saturating_sub(pad);
    let mut message = pae_header(payload_type, len);
    let mut header = message.len();
    // Room for what the decoder asks for (its estimate, at most 2 bytes
    // over), so it never grows the buffer by doubling.
    message.reserve_exact(base64::decoded_len_estimate(b64.len()));
    STANDARD
        .decode_vec(b64, &mut message)
        .or_else(|e| refuse(Reason::Malformed, format!("payload is not base64: {e}")))?;
    if message.len() - header != len {
        // Not the length foreseen: the header names the payload's real one.
        let payload = message.split_off(header);
        message = pae(payload_type, &payload);
        header = message.len() - payload.len();
    }
    // Only each trusted key's first signature counts: duplicates neither count
    // twice nor cost a second verification.
    let mut seen = BTreeSet::new();
    let mut signers = Vec::new();
    let mut bad = Vec::new();
    for s in &envelope.signatures {
        let Some(key) = trust.keys.get(&s.keyid) else {
            continue;
        };
        if !seen.insert(s.keyid.as_str()) {
            continue;
        }
        let sig = STANDARD
            .decode(s.sig.as_bytes())
            .ok()
            .and_then(|b| ed25519_dalek::Signature::from_slice(&b).ok());
        match sig {
            Some(sig) if key.key.verify_strict(&message, &sig).is_ok() => {
                signers.push(s.keyid.clone())
            }
            _ => bad.push(s.keyid.as_str()),
        }
    }
    signers.sort();
    if signers.len() >= trust.threshold {
        // The payload, moved to the front of the same buffer.
        message.drain(..header);
        return Ok((message, signers));
    }
    if let Some(k) = bad.first() {
        return refuse(
            Reason::BadSignature,
            format!("the signature by trusted key {k} does not verify: the file was modified"),
        );
    }
    if signers.is_empty() {
        let by: Vec<&str> = envelope
            .signatures
            .iter()
            .map(|s| s.keyid.as_str())
            .collect();
        return refuse(
            Reason::UnknownKey,
            format!(
                "signed by {}; none of them is trusted",
                if by.is_empty() {
                    "nobody".to_string()
                } else {
                    by.join(", ")
                }
            ),
        );
    }
    refuse(
        Reason::Threshold,
        format!(
            "{} valid signature(s) from distinct trusted keys ({}), {} required",
            signers.len(),
            signers.join(", "),
            trust.threshold
        ),
    )
}

/// Parse a signed payload of format [`BUNDLE_FORMAT`]. The typed parse runs
/// first (one pass over the bytes when all is well); only when it fails is
/// the format version read alone, so a newer format is reported as such
/// rather than as an unreadable payload.
fn parse_payload<T: serde::de::DeserializeOwned>(
    payload: &[u8],
    what: &str,
    format_of: impl Fn(&T) -> u32,
) -> Result<T, VerifyError> {
    match serde_json::from_slice::<T>(payload) {
        Ok(value) if format_of(&value) == BUNDLE_FORMAT => Ok(value),
        Ok(value) => refuse(
            Reason::UnsupportedFormat,
            format!(
                "{what} format {}; this verifier reads format {BUNDLE_FORMAT}",
                format_of(&value)
            ),
        ),
        Err(e) => {
            check_format(payload, what, BUNDLE_FORMAT)?;
            refuse(Reason::Malformed, format!("{what} payload: {e}"))
        }
    }
}

/// Read only the format version of a signed payload, so a newer format is
/// reported as such.
pub(crate) fn check_format(payload: &[u8], what: &str, reads: u32) -> Result<(), VerifyError> {
    #[derive(Deserialize)]
    struct Probe {
        format: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(payload).or_else(|e| {
        refuse(
            Reason::Malformed,
            format!("{what} payload is not JSON: {e}"),
        )
    })?;
    match probe.format {
        Some(serde_json::Value::Number(n)) if n.as_u64() == Some(u64::from(reads)) => Ok(()),
        Some(serde_json::Value::Number(n)) => refuse(
            Reason::UnsupportedFormat,
            format!("{what} format {n}; this verifier reads format {reads}"),
        ),
        Some(other) => refuse(
            Reason::Malformed,
            format!("{what} format `{other}` is not a number"),
        ),
        None => refuse(
            Reason::Malformed,
            format!("{what} payload has no format version"),
        ),
    }
}

/// `names` sorted and unique, or refused as malformed naming the first pair
/// out of order (`{what} are not sorted and unique: …`).
fn sorted_unique<'a>(what: &str, names: impl Iterator<Item = &'a str>) -> Result<(), VerifyError> {
    let mut last: Option<&str> = None;
    for name in names {
        if let Some(before) = last
            && before >= name
        {
            return refuse(
                Reason::Malformed,
                format!("{what} are not sorted and unique: `{before}` before `{name}`"),
            );
        }
        last = Some(name);
    }
    Ok(())
}

/// File names valid, sorted and unique; every size and digest right.
fn check_files(files: &[BundleFile]) -> Result<(), VerifyError> {
    for f in files {
        if !valid_file_name(&f.name) {
            return refuse(
                Reason::Malformed,
                format!("file name `{}` is not [a-z0-9._-]+", f.name),
            );
        }
    }
    sorted_unique("files", files.iter().map(|f| f.name.as_str()))?;
    for f in files {
        if f.content.len() as u64 != f.size {
            return refuse(
                Reason::DigestMismatch,
                format!(
                    "digest mismatch for file {}: {} bytes, the signed manifest says {}",
                    f.name,
                    f.content.len(),
                    f.size
                ),
            );
        }
        let digest = sha256_hex(f.content.as_bytes());
        if digest != f.sha256 {
            return refuse(
                Reason::DigestMismatch,
                format!(
                    "digest mismatch for file {}: sha256 {digest}, the signed manifest says {}",
                    f.name, f.sha256
                ),
            );
        }
    }
    if !files.iter().any(|f| f.name == IR_FILE) {
        return Err(missing(IR_FILE));
    }
    Ok(())
}

/// `ir.json` parses, is valid, and is this bundle's node's.
fn check_ir(payload: &BundlePayload) -> Result<NodeIr, VerifyError> {
    let text = payload
        .files
        .iter()
        .find(|f| f.name == IR_FILE)
        .map(|f| f.content.as_str())
        .ok_or_else(|| missing(IR_FILE))?;
    let ir: NodeIr = serde_json::from_str(text)
        .or_else(|e| refuse(Reason::Malformed, format!("{IR_FILE}: {e}")))?;
    ir.validate()
        .or_else(|e| refuse(Reason::Malformed, format!("{IR_FILE}: {e}")))?;
    if ir.node != payload.node || ir.os != payload.os {
        return refuse(
            Reason::Malformed,
            format!(
                "{IR_FILE} is for node `{}` ({}), the bundle for node `{}` ({})",
                ir.node, ir.os, payload.node, payload.os
            ),
        );
    }
    Ok(ir)
}

/// Every nftables file (`*.nft`) passes the screen: it may change
/// `table inet ringfence` and nothing else.
fn check_rules(files: &[BundleFile]) -> Result<(), VerifyError> {
    for f in files.iter().filter(|f| f.name.ends_with(".nft")) {
        ringfence_nft::screen(&f.content)
            .or_else(|e| refuse(Reason::UnsafeRules, format!("{} {e}", f.name)))?;
    }
    Ok(())
}

/// Verify a `<node>.bundle` file's bytes.
///
/// Order: size → envelope (truncated, malformed) → payload type → signatures
/// (unknown key, bad signature, threshold) → format version → payload shape
/// → node → generation → expiry → files (names, sizes, digests, `ir.json`)
/// → index. The first failing check is the reason.
pub fn verify_bundle(
    bytes: &[u8],
    trust: &Trust,
    expect: &Expectations<'_>,
) -> Result<VerifiedBundle, VerifyError> {
    let (payload, signers) = open(bytes, BUNDLE_PAYLOAD_TYPE, trust)?;
    let payload: BundlePayload = parse_payload(&payload, "bundle", |p: &BundlePayload| p.format)?;
    let issued = parse_time(&payload.issued_at)
        .or_else(|e| refuse(Reason::Malformed, format!("issued_at: {e}")))?;
    let expires = parse_time(&payload.expires_at)
        .or_else(|e| refuse(Reason::Malformed, format!("expires_at: {e}")))?;
    if expires <= issued {
        return refuse(
            Reason::Malformed,
            format!(
                "expires_at {} is not after issued_at {}",
                payload.expires_at, payload.issued_at
            ),
        );
    }
    if let Some(node) = expect.node
        && payload.node != node
    {
        return refuse(
            Reason::WrongNode,
            format!("bundle is for node `{}`, this is `{node}`", payload.node),
        );
    }
    if let Some(min) = expect.min_generation
        && payload.generation < min
    {
        return refuse(
            Reason::OldGeneration,
            format!(
                "generation {} is older than {min}, the lowest acceptable (replay of an old bundle?)",
                payload.generation
            ),
        );
    }
    if let Some(now) = expect.now
        && issued > now + MAX_CLOCK_SKEW
    {
        return refuse(
            Reason::NotYetValid,
            format!(
                "issued at {}, later than this clock ({}) allows (at most {} s ahead): a bundle from the future, or a clock that is wrong",
                payload.issued_at,
                crate::time::format_time(now).unwrap_or_default(),
                MAX_CLOCK_SKEW.as_secs()
            ),
        );
    }
    if let Some(now) = expect.now
        && now >= expires
    {
        return refuse(
            Reason::Expired,
            format!(
                "expired at {} (issued {})",
                payload.expires_at, payload.issued_at
            ),
        );
    }
    check_files(&payload.files)?;
    let ir = check_ir(&payload)?;
    check_rules(&payload.files)?;
    let sha256 = sha256_hex(bytes);
    if let Some(index) = expect.index {
        match index.nodes.iter().find(|n| n.node == payload.node) {
            Some(e) if e.sha256 == sha256 && e.generation == payload.generation => {}
            Some(e) => {
                return refuse(
                    Reason::NotInIndex,
                    format!(
                        "the index lists node `{}` at generation {} with digest {}, this bundle is generation {} with digest {sha256} (bundles from different compiles?)",
                        e.node, e.generation, e.sha256, payload.generation
                    ),
                );
            }
            None => {
                return refuse(
                    Reason::NotInIndex,
                    format!("the index does not list node `{}`", payload.node),
                );
            }
        }
    }
    Ok(VerifiedBundle {
        payload,
        sha256,
        signers,
        ir,
    })
}

/// Verify an `index.json` file's bytes: envelope and signatures as for a
/// bundle, then format version, times, and nodes sorted and unique.
pub fn verify_index(bytes: &[u8], trust: &Trust) -> Result<IndexPayload, VerifyError> {
    let (payload, _) = open(bytes, INDEX_PAYLOAD_TYPE, trust)?;
    let index: IndexPayload = parse_payload(&payload, "index", |p: &IndexPayload| p.format)?;
    parse_time(&index.issued_at)
        .or_else(|e| refuse(Reason::Malformed, format!("index issued_at: {e}")))?;
    sorted_unique("index nodes", index.nodes.iter().map(|e| e.node.as_str()))?;
    Ok(index)
}
