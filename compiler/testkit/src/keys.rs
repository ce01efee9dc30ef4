//! Signing keys for tests: fixed seeds, so bundles signed in a test are the
//! same bytes on every run, and public keys written where a binary reads them.

use std::path::{Path, PathBuf};

use ringfence_bundle::SigningKey;

/// The key of seed `[seed; 32]`.
pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_seed([seed; 32])
}

/// Write `key`'s public half as PEM to `dir/name`; the path.
pub fn write_public(dir: &Path, name: &str, key: &SigningKey) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, key.trusted().to_pem()).unwrap();
    path
}

/// `signed` (a signed bundle or index) with the base64 character `offset`
/// bytes after the start of its `"payload":"` changed: its signature no
/// longer holds.
pub fn tampered(signed: &[u8], offset: usize) -> Vec<u8> {
    let at = signed
        .windows(11)
        .position(|w| w == b"\"payload\":\"")
        .expect("a signed document")
        + offset;
    let mut t = signed.to_vec();
    t[at] = if t[at] == b'A' { b'B' } else { b'A' };
    t
}
