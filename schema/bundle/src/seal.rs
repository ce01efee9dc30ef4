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
    BUNDLE_PAYLOAD_TYPE, BundleFile, BundlePayload, INDEX_PAYLOAD_TYPE, IndexPayload, Signature,
};
use sha2::{Digest, Sha256};

use ringfence_schema::digest::hex;
pub use ringfence_schema::digest::sha256_hex;

use crate::keys::SigningKey;

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
    rules_digest(files.iter().map(|f| (f.name.as_str(), f.sha256.as_str())))
}

/// [`rules_sha256`] of files given as `(name, hex SHA-256)`, in any order.
pub fn rules_digest<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut entries: Vec<(&str, &str)> = files.into_iter().collect();
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
    let mut out = pae_header(payload_type, payload.len());
    out.reserve(payload.len());
    out.extend_from_slice(payload);
    out
}

/// What [`pae`] puts before the payload.
pub(crate) fn pae_header(payload_type: &str, len: usize) -> Vec<u8> {
    format!("DSSEv1 {} {payload_type} {len} ", payload_type.len()).into_bytes()
}

/// Room kept before a payload serialised for [`seal_bundle`], for its PAE
/// header (`DSSEv1`, the bundle type and two lengths), so the message is
/// signed where it lies instead of copied.
const HEADROOM: usize = 128;

/// The bytes of a DSSE envelope file: `payload` of type `payload_type`,
/// signed once by each distinct key (sorted by key id), compact JSON and one
/// final newline. With no keys the envelope is unsigned and no verifier
/// accepts it. Bundles and indexes go through [`seal_bundle`] and
/// [`seal_index`]; this is for tools and tests that sign other payloads.
pub fn seal_envelope(payload_type: &str, payload: &[u8], keys: &[&SigningKey]) -> Vec<u8> {
    envelope(payload_type, payload, &pae(payload_type, payload), keys)
}

/// The envelope file of `payload`, signing `message` (its PAE). Written by
/// hand, the payload's base64 straight into the file: the bytes are those
/// of serde_json's compact output of an
/// [`Envelope`](ringfence_schema::bundle::Envelope).
fn envelope(payload_type: &str, payload: &[u8], message: &[u8], keys: &[&SigningKey]) -> Vec<u8> {
    let mut signatures: Vec<Signature> = keys
        .iter()
        .map(|k| Signature {
            keyid: k.keyid.clone(),
            sig: STANDARD.encode(k.key.sign(message).to_bytes()),
        })
        .collect();
    // ed25519 signatures are deterministic, so equal key ids mean equal entries.
    signatures.sort_by(|a, b| a.keyid.cmp(&b.keyid));
    signatures.dedup_by(|a, b| a.keyid == b.keyid);
    let encoded = base64::encoded_len(payload.len(), true).expect("a payload fits in memory");
    let mut out = Vec::with_capacity(encoded + payload_type.len() + 256 * (keys.len() + 1));
    out.extend_from_slice(b"{\"payloadType\":");
    serde_json::to_writer(&mut out, payload_type).expect("a string always serialises");
    out.extend_from_slice(b",\"payload\":\"");
    let start = out.len();
    out.resize(start + encoded, 0);
    STANDARD
        .encode_slice(payload, &mut out[start..])
        .expect("sized for the payload");
    out.extend_from_slice(b"\",\"signatures\":");
    serde_json::to_writer(&mut out, &signatures).expect("signatures always serialise");
    out.extend_from_slice(b"}\n");
    out
}

/// The bytes of a `<node>.bundle` file: `payload` signed by every key.
pub fn seal_bundle(payload: &BundlePayload, keys: &[&SigningKey]) -> Vec<u8> {
    // Sized once: the files' contents (a little more once escaped) and a
    // header, after room for the PAE header.
    let content: usize = payload.files.iter().map(|f| f.content.len() + 160).sum();
    let mut bytes = Vec::with_capacity(HEADROOM + content + content / 16 + 1024);
    bytes.resize(HEADROOM, 0);
    serde_json::to_writer(&mut bytes, payload).expect("a bundle payload always serialises");
    let header = pae_header(BUNDLE_PAYLOAD_TYPE, bytes.len() - HEADROOM);
    let start = HEADROOM - header.len();
    bytes[start..HEADROOM].copy_from_slice(&header);
    envelope(
        BUNDLE_PAYLOAD_TYPE,
        &bytes[HEADROOM..],
        &bytes[start..],
        keys,
    )
}

/// The bytes of an `index.json` file: `payload` signed by every key.
pub fn seal_index(payload: &IndexPayload, keys: &[&SigningKey]) -> Vec<u8> {
    let bytes = serde_json::to_vec(payload).expect("an index payload always serialises");
    seal_envelope(INDEX_PAYLOAD_TYPE, &bytes, keys)
}

#[cfg(test)]
mod tests {
    use ringfence_schema::bundle::Envelope;

    use super::*;

    #[test]
    fn envelopes_are_serde_jsons_bytes_and_sign_the_pae() {
        let (a, b) = (
            SigningKey::from_seed([1; 32]),
            SigningKey::from_seed([2; 32]),
        );
        for (payload_type, payload) in [
            ("t", &b""[..]),
            ("application/x \"quoted\" \\ \u{1}", b"{\"a\":1}\n\x00\xff"),
            (BUNDLE_PAYLOAD_TYPE, &[7u8; 1000][..]),
        ] {
            for keys in [vec![], vec![&a], vec![&b, &a, &b]] {
                let bytes = seal_envelope(payload_type, payload, &keys);
                let message = pae(payload_type, payload);
                let mut signatures: Vec<Signature> = keys
                    .iter()
                    .map(|k| Signature {
                        keyid: k.keyid.clone(),
                        sig: STANDARD.encode(k.key.sign(&message).to_bytes()),
                    })
                    .collect();
                signatures.sort_by(|x, y| x.keyid.cmp(&y.keyid));
                signatures.dedup_by(|x, y| x.keyid == y.keyid);
                let mut want = serde_json::to_vec(&Envelope {
                    payload_type: payload_type.into(),
                    payload: STANDARD.encode(payload),
                    signatures,
                })
                .unwrap();
                want.push(b'\n');
                assert_eq!(bytes, want, "{payload_type}");
            }
        }
    }
}
