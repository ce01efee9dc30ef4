//! Verification: everything an agent checks before a bundle may be applied.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::Verifier;
use ringfence_schema::bundle::{
    BUNDLE_FORMAT, BUNDLE_PAYLOAD_TYPE, BundlePayload, Envelope, INDEX_PAYLOAD_TYPE, IR_FILE,
    IndexPayload,
};
use ringfence_schema::ir::NodeIr;

use crate::keys::TrustedKey;
use crate::seal::{pae, sha256_hex};

/// The keys a verifier trusts, and how many of them must have signed.
#[derive(Clone, Debug)]
pub struct Trust {
    keys: BTreeMap<String, TrustedKey>,
    threshold: usize,
}

impl Trust {
    /// Trust `keys`; `threshold` distinct ones must sign (at least 1).
    pub fn new(keys: impl IntoIterator<Item = TrustedKey>, threshold: usize) -> Self {
        Trust {
            keys: keys.into_iter().map(|k| (k.keyid.clone(), k)).collect(),
            threshold: threshold.max(1),
        }
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

/// Why a bundle was refused: a stable code for metrics and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// Ends early (a partial download or a cut file).
    Truncated,
    /// Not a bundle envelope, or an undecodable payload.
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
    /// A file's content does not match its size or digest.
    DigestMismatch,
    /// A required file is missing.
    MissingFile,
    /// Not listed in the index, or listed with another digest.
    NotInIndex,
}

impl Reason {
    /// The stable code (`bad-signature`, `expired`, …).
    pub fn code(self) -> &'static str {
        match self {
            Reason::Truncated => "truncated",
            Reason::Malformed => "malformed",
            Reason::UnsupportedFormat => "unsupported-format",
            Reason::UnknownKey => "unknown-key",
            Reason::BadSignature => "bad-signature",
            Reason::Threshold => "threshold",
            Reason::WrongNode => "wrong-node",
            Reason::OldGeneration => "old-generation",
            Reason::Expired => "expired",
            Reason::DigestMismatch => "digest-mismatch",
            Reason::MissingFile => "missing-file",
            Reason::NotInIndex => "not-in-index",
        }
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

fn refuse<T>(reason: Reason, detail: impl Into<String>) -> Result<T, VerifyError> {
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
    /// Trusted keys whose signatures verified.
    pub signers: Vec<String>,
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

    /// The node's IR.
    pub fn ir(&self) -> Result<NodeIr, VerifyError> {
        let text = self.file(IR_FILE).ok_or_else(|| missing(IR_FILE))?;
        serde_json::from_str(text).or_else(|e| refuse(Reason::Malformed, format!("{IR_FILE}: {e}")))
    }
}

fn missing(name: &str) -> VerifyError {
    VerifyError {
        reason: Reason::MissingFile,
        detail: format!("the bundle has no {name}"),
    }
}

/// Parse an RFC 3339 UTC time (`2026-01-01T00:00:00Z`).
pub fn parse_time(s: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("`{s}` is not an RFC 3339 UTC time like 2026-01-01T00:00:00Z ({e})"))
}

/// Check an envelope's type and signatures; return the payload bytes and signers.
fn open(
    bytes: &[u8],
    payload_type: &str,
    trust: &Trust,
) -> Result<(Vec<u8>, Vec<String>), VerifyError> {
    let envelope: Envelope = match serde_json::from_slice(bytes) {
        Ok(e) => e,
        Err(e) if e.is_eof() => {
            return refuse(
                Reason::Truncated,
                format!("the file ends early ({} bytes): {e}", bytes.len()),
            );
        }
        Err(e) => return refuse(Reason::Malformed, format!("not a signed envelope: {e}")),
    };
    if envelope.payload_type != payload_type {
        return refuse(
            Reason::UnsupportedFormat,
            format!(
                "payload type `{}` is not `{payload_type}` (made by a newer or different tool?)",
                envelope.payload_type
            ),
        );
    }
    let payload = STANDARD
        .decode(envelope.payload.as_bytes())
        .or_else(|e| refuse(Reason::Malformed, format!("payload is not base64: {e}")))?;
    let message = pae(payload_type, &payload);
    let mut signers: Vec<String> = Vec::new();
    let mut bad = Vec::new();
    for s in &envelope.signatures {
        let Some(key) = trust.keys.get(&s.keyid) else {
            continue;
        };
        let sig = STANDARD
            .decode(s.sig.as_bytes())
            .ok()
            .and_then(|b| ed25519_dalek::Signature::from_slice(&b).ok());
        match sig {
            Some(sig) if key.key.verify(&message, &sig).is_ok() => {
                if !signers.contains(&s.keyid) {
                    signers.push(s.keyid.clone());
                }
            }
            _ => bad.push(s.keyid.clone()),
        }
    }
    if signers.len() >= trust.threshold {
        return Ok((payload, signers));
    }
    if let Some(k) = bad.first() {
        return refuse(
            Reason::BadSignature,
            format!("the signature by trusted key {k} does not verify: the bundle was modified"),
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
            "{} valid signature(s) from trusted keys, {} required",
            signers.len(),
            trust.threshold
        ),
    )
}

/// Verify a `<node>.bundle` file's bytes.
pub fn verify_bundle(
    bytes: &[u8],
    trust: &Trust,
    expect: &Expectations<'_>,
) -> Result<VerifiedBundle, VerifyError> {
    let (payload, signers) = open(bytes, BUNDLE_PAYLOAD_TYPE, trust)?;
    // Signed but unreadable: check the version first so a newer format says so.
    let value: serde_json::Value = serde_json::from_slice(&payload)
        .or_else(|e| refuse(Reason::Malformed, format!("payload is not JSON: {e}")))?;
    match value.get("format").and_then(serde_json::Value::as_u64) {
        Some(f) if f == u64::from(BUNDLE_FORMAT) => {}
        Some(f) => {
            return refuse(
                Reason::UnsupportedFormat,
                format!("bundle format {f}; this verifier reads format {BUNDLE_FORMAT}"),
            );
        }
        None => return refuse(Reason::Malformed, "payload has no format version"),
    }
    let payload: BundlePayload = serde_json::from_value(value)
        .or_else(|e| refuse(Reason::Malformed, format!("payload: {e}")))?;
    if let Some(node) = expect.node {
        if payload.node != node {
            return refuse(
                Reason::WrongNode,
                format!("bundle is for node `{}`, this is `{node}`", payload.node),
            );
        }
    }
    if let Some(min) = expect.min_generation {
        if payload.generation < min {
            return refuse(
                Reason::OldGeneration,
                format!(
                    "generation {} is older than {min}, the lowest acceptable (replay of an old bundle?)",
                    payload.generation
                ),
            );
        }
    }
    if let Some(now) = expect.now {
        let expires = parse_time(&payload.expires_at)
            .or_else(|e| refuse(Reason::Malformed, format!("expires_at: {e}")))?;
        if now >= expires {
            return refuse(
                Reason::Expired,
                format!("expired at {}", payload.expires_at),
            );
        }
    }
    for f in &payload.files {
        if f.content.len() as u64 != f.size {
            return refuse(
                Reason::DigestMismatch,
                format!(
                    "file {}: {} bytes, the manifest says {}",
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
                    "file {}: sha256 {digest}, the manifest says {}",
                    f.name, f.sha256
                ),
            );
        }
    }
    if !payload.files.iter().any(|f| f.name == IR_FILE) {
        return Err(missing(IR_FILE));
    }
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
    })
}

/// Verify an `index.json` file's bytes.
pub fn verify_index(bytes: &[u8], trust: &Trust) -> Result<IndexPayload, VerifyError> {
    let (payload, _) = open(bytes, INDEX_PAYLOAD_TYPE, trust)?;
    let index: IndexPayload = serde_json::from_slice(&payload)
        .or_else(|e| refuse(Reason::Malformed, format!("index payload: {e}")))?;
    if index.format != BUNDLE_FORMAT {
        return refuse(
            Reason::UnsupportedFormat,
            format!(
                "index format {}; this verifier reads format {BUNDLE_FORMAT}",
                index.format
            ),
        );
    }
    Ok(index)
}
