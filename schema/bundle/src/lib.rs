//! Signed ringfence bundles: keys, signing, verification.
//!
//! This is the only crate that does cryptography (ed25519 via
//! `ed25519-dalek`, SHA-256 via `sha2`). The compiler uses it to seal bundles
//! and the agent to verify them, so both sides check exactly the same things.
//! The formats are defined in `ringfence_schema::bundle` and documented in
//! `schema/docs/bundles.md`.
//!
//! Verification order, each failure with its own [`Reason`]: size → envelope
//! shape (a cut file is `truncated`) → payload type → signatures (trusted
//! keys, threshold) → format version → payload shape → node → generation →
//! issued no later than the clock allows → expiry → every file's name, size
//! and digest → `ir.json` valid and the node's → `*.nft` files screened
//! (`ringfence_nft`) → listed in the signed index.
//!
//! Membership snapshots and deltas (the live part of a node, see
//! `ringfence_schema::membership`) are sealed and verified here too, with
//! the same [`Reason`]s (and some of their own): the envelope checks as above, then node,
//! generation, expiry, sequence and chain, and names the bundle declares.

mod keys;
mod membership;
mod read;
mod seal;
mod time;
mod verify;

pub use keys::{
    KeyError, SigningKey, TrustedKey, generate_keypair, key_id, load_signing_key, load_trusted_key,
    load_trusted_keys,
};
pub use membership::{
    Applied, Document, MembershipExpect, VerifiedMembership, seal_delta, seal_snapshot,
    verify_membership,
};
pub use read::{PathError, read_capped};
pub use seal::{
    bundle_file, rules_digest, rules_sha256, seal_bundle, seal_envelope, seal_index, sha256_hex,
};
pub use time::{format_time, parse_time};
pub use verify::{
    Expectations, MAX_BUNDLE_BYTES, MAX_CLOCK_SKEW, Reason, Trust, VerifiedBundle, VerifyError,
    valid_file_name, verify_bundle, verify_index,
};
