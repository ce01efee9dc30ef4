//! The backend plugin ABI.
//!
//! A backend is a WebAssembly core module for `wasm32-unknown-unknown` that
//! imports nothing and exports (see `schema/docs/plugins.md`):
//!
//! | export | signature | meaning |
//! |---|---|---|
//! | `memory` | memory | the module's linear memory |
//! | `ringfence_abi` | `() -> i32` | [`PLUGIN_ABI`] |
//! | `ringfence_alloc` | `(len: i32) -> i32` | a buffer of `len` bytes the host may write |
//! | `ringfence_info` | `() -> i64` | JSON [`PluginInfo`] at `ptr = r >> 32`, `len = r & 0xffff_ffff` |
//! | `ringfence_render` | `(ptr: i32, len: i32) -> i64` | reads JSON [`NodeIr`](crate::ir::NodeIr), returns JSON [`RenderResponse`] packed as above |
//!
//! The host gives every render a fresh instance, a fuel budget and a memory cap.

use serde::{Deserialize, Serialize};

use crate::ir::Os;

/// Version of the plugin ABI described above.
pub const PLUGIN_ABI: u32 = 1;

/// What a backend says about itself; read once when it is loaded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginInfo {
    /// Backend name, as intent refers to it (`nftables`, `windows-firewall`).
    pub name: String,
    /// Backend version (semver).
    pub version: String,
    /// Must equal [`PLUGIN_ABI`].
    pub abi: u32,
    /// The node operating system it renders for.
    pub os: Os,
    /// What it can express.
    pub capabilities: Capabilities,
    /// One line for humans.
    #[serde(default)]
    pub description: String,
}

/// What a backend can express, so the compiler can refuse intent it cannot
/// enforce before anything reaches a node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// IPv6 addresses in sets.
    pub ipv6: bool,
    /// Port ranges (otherwise only single ports).
    pub port_ranges: bool,
    /// Per-rule logging.
    pub logging: bool,
    /// Analyze mode (count denies without dropping).
    pub analyze_mode: bool,
    /// Whether the target evaluates rules in order (first match wins). A
    /// backend for a block-wins target lowers chains into allow-only rules.
    pub first_match: bool,
    /// NodePort / LoadBalancer exposures.
    pub exposures: bool,
    /// Most rules the target accepts for one node, if limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rules: Option<u64>,
}

/// One rendered file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// File name, `[a-z0-9._-]+` (e.g. `rules.nft`).
    pub name: String,
    /// File content (UTF-8 text).
    pub content: String,
}

/// Something the backend could not express exactly, tied to a rule if possible.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderWarning {
    /// What happened, for humans.
    pub message: String,
    /// The rule concerned (its id), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The policy concerned (its id), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// A successful render.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderOutput {
    /// The files to install on the node, sorted by name.
    pub artifacts: Vec<Artifact>,
    /// Warnings the compiler reports with the policy's location.
    #[serde(default)]
    pub warnings: Vec<RenderWarning>,
}

/// What `ringfence_render` returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RenderResponse {
    /// Rendered.
    Ok(RenderOutput),
    /// The backend refuses this IR; the message says why.
    Error(String),
}

/// Whether `name` is an acceptable artifact file name.
pub fn valid_artifact_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}
