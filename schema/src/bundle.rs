//! The signed bundle and index formats (`schema/docs/bundles.md`).
//!
//! A bundle file (`<node>.bundle`) is a DSSE envelope, in JSON, whose payload
//! is the canonical JSON of a [`BundlePayload`]. The index (`index.json`) is a
//! DSSE envelope over an [`IndexPayload`]. Signing and verification live in
//! the `ringfence-bundle` crate; this module only defines the data.

use serde::{Deserialize, Serialize};

use crate::ir::Os;

/// Version of the bundle format.
pub const BUNDLE_FORMAT: u32 = 1;
/// DSSE `payloadType` of a bundle.
pub const BUNDLE_PAYLOAD_TYPE: &str = "application/vnd.ringfence.bundle.v1+json";
/// DSSE `payloadType` of an index.
pub const INDEX_PAYLOAD_TYPE: &str = "application/vnd.ringfence.index.v1+json";
/// Name of the IR file inside every bundle.
pub const IR_FILE: &str = "ir.json";

/// A DSSE envelope (<https://github.com/secure-systems-lab/dsse>).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// What the payload is.
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Base64 (standard, padded) of the payload bytes.
    pub payload: String,
    /// One or more signatures over `PAE(payloadType, payload)`.
    pub signatures: Vec<Signature>,
}

/// One signature of an envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// Hex SHA-256 of the raw 32-byte ed25519 public key.
    pub keyid: String,
    /// Base64 of the 64-byte ed25519 signature.
    pub sig: String,
}

/// Everything one node needs, signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundlePayload {
    /// Always [`BUNDLE_FORMAT`].
    pub format: u32,
    /// Cluster of the node.
    pub cluster: String,
    /// The node this bundle is for; an agent refuses any other.
    pub node: String,
    /// The node's operating system.
    pub os: Os,
    /// The backend that rendered the files.
    pub backend: BackendRef,
    /// Grows with every change of this node's rules; an agent refuses anything
    /// older than what it has applied.
    pub generation: u64,
    /// When it was compiled (RFC 3339, UTC).
    pub issued_at: String,
    /// After this instant an agent refuses it (RFC 3339, UTC).
    pub expires_at: String,
    /// The intent it was compiled from.
    pub source: SourceRef,
    /// Hex SHA-256 of the inventory files, in order, each prefixed by its length.
    pub inventory_sha256: String,
    /// The files to install, sorted by name; always includes [`IR_FILE`].
    pub files: Vec<BundleFile>,
}

/// The backend plugin that rendered a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendRef {
    /// Plugin name.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// Hex SHA-256 of the plugin's `.wasm`.
    pub sha256: String,
}

/// Where intent came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRef {
    /// Repository path or URL, if read from Git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Commit id, if read from a Git revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Tree id of the intent directory, if read from Git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<String>,
    /// `working-tree`, `index` or `commit`.
    pub kind: SourceKind,
}

/// Which state of the repository intent was read from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// Files on disk (possibly uncommitted).
    #[default]
    WorkingTree,
    /// The Git index (staged files).
    Index,
    /// A commit.
    Commit,
}

/// One file of a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleFile {
    /// File name, `[a-z0-9._-]+`.
    pub name: String,
    /// Hex SHA-256 of `content`'s UTF-8 bytes.
    pub sha256: String,
    /// Length of `content` in bytes.
    pub size: u64,
    /// The file itself.
    pub content: String,
}

/// The signed list of every bundle of one compile, so bundles of different
/// compiles cannot be mixed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPayload {
    /// Always [`BUNDLE_FORMAT`].
    pub format: u32,
    /// When the compile ran (RFC 3339, UTC).
    pub issued_at: String,
    /// The intent it was compiled from.
    pub source: SourceRef,
    /// Hex SHA-256 of the inventory (as in bundles).
    pub inventory_sha256: String,
    /// Every node's bundle, sorted by node.
    pub nodes: Vec<IndexEntry>,
}

/// One node in an index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// Node name.
    pub node: String,
    /// Generation of its bundle.
    pub generation: u64,
    /// Hex SHA-256 of the bundle file's bytes.
    pub sha256: String,
    /// Hex SHA-256 of the bundle's rule files and IR (ignoring time and
    /// generation): equal digests mean equal rules.
    pub rules_sha256: String,
}
