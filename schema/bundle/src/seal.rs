//! Sealing: canonical payload bytes wrapped in a signed DSSE envelope.
//!
//! The payload is serde_json's compact output of the schema types: struct
//! fields in declaration order, lists sorted by the caller, no maps — so the
//! same input always gives the same bytes, and ed25519 signatures are
//! deterministic, so bundles are byte-identical across runs. The envelope
//! file is the envelope's compact JSON followed by exactly one newline; a
//! verifier treats a missing final newline as a cut file.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::Signer;
use ringfence_schema::bundle::{
    BUNDLE_PAYLOAD_TYPE, BundleFile, BundlePayload, Envelope, INDEX_PAYLOAD_TYPE, IndexPayload,
    Signature,
};
use sha2::{Digest, Sha256};

use crate::keys::{SigningKey, hex};

/// Hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// A bundle file entry with its digest and size.
pub fn bundle_file(name: &str, content: String) -> BundleFile {
    BundleFile {
        name: name.to_string(),
        sha256: sha256_hex(content.as_bytes()),
        size: content.len() as u64,
        content,
    }
}

/// Digest of a bundle's rules: the names and digests of its files, sorted by
/// name. Equal digests mean the node enforces the same thing, whatever the
/// generation or time.
pub fn rules_sha256(files: &[BundleFile]) -> String {
    let mut entries: Vec<(&str, &str)> = files
        .iter()
        .map(|f| (f.name.as_str(), f.sha256.as_str()))
        .collect();
    entries.sort();
    let mut h = Sha256::new();
    for (name, digest) in entries {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(digest.as_bytes());
        h.update([b'\n']);
    }
    hex(&h.finalize())
}

/// DSSE pre-authentication encoding.
pub(crate) fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// The bytes of a DSSE envelope file: `payload` of type `payload_type`,
/// signed once by each distinct key (sorted by key id), compact JSON and one
/// final newline. With no keys the envelope is unsigned and no verifier
/// accepts it. Bundles and indexes go through [`seal_bundle`] and
/// [`seal_index`]; this is for tools and tests that sign other payloads.
pub fn seal_envelope(payload_type: &str, payload: &[u8], keys: &[&SigningKey]) -> Vec<u8> {
    let message = pae(payload_type, payload);
    let mut signatures: Vec<Signature> = keys
        .iter()
        .map(|k| Signature {
            keyid: k.keyid.clone(),
            sig: STANDARD.encode(k.key.sign(&message).to_bytes()),
        })
        .collect();
    // ed25519 signatures are deterministic, so equal key ids mean equal entries.
    signatures.sort_by(|a, b| a.keyid.cmp(&b.keyid));
    signatures.dedup_by(|a, b| a.keyid == b.keyid);
    let envelope = Envelope {
        payload_type: payload_type.to_string(),
        payload: STANDARD.encode(payload),
        signatures,
    };
    // Sized once: the base64 payload is nearly all of it.
    let mut out = Vec::with_capacity(envelope.payload.len() + 256 * (keys.len() + 1));
    serde_json::to_writer(&mut out, &envelope).expect("an envelope always serialises");
    out.push(b'\n');
    out
}

/// The bytes of a `<node>.bundle` file: `payload` signed by every key.
pub fn seal_bundle(payload: &BundlePayload, keys: &[&SigningKey]) -> Vec<u8> {
    // Sized once: the files' contents (a little more once escaped) and a header.
    let content: usize = payload.files.iter().map(|f| f.content.len() + 160).sum();
    let mut bytes = Vec::with_capacity(content + content / 16 + 1024);
    serde_json::to_writer(&mut bytes, payload).expect("a bundle payload always serialises");
    seal_envelope(BUNDLE_PAYLOAD_TYPE, &bytes, keys)
}

/// The bytes of an `index.json` file: `payload` signed by every key.
pub fn seal_index(payload: &IndexPayload, keys: &[&SigningKey]) -> Vec<u8> {
    let bytes = serde_json::to_vec(payload).expect("an index payload always serialises");
    seal_envelope(INDEX_PAYLOAD_TYPE, &bytes, keys)
}
