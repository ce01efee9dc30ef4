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
//!
//! Optional, for rendering many nodes in one instance (the SDK exports both):
//!
//! | export | signature | meaning |
//! |---|---|---|
//! | `ringfence_sets` | `(ptr: i32, len: i32) -> i32` | reads a JSON list of [`AddressSet`] contents, the set table; `0` when it was read |
//! | `ringfence_render_with_sets` | `(ptr: i32, len: i32) -> i64` | reads JSON [`NodeWithSetRefs`], returns what `ringfence_render` would for the whole IR |
//!
//! The host gives every render a fuel budget and a memory cap. A plugin
//! without the optional exports gets a fresh instance per node; one with them
//! may get one instance for a chunk of nodes (fixed by node order): the set
//! table first, then each node with its sets given as indexes into it. Any
//! failure in a chunk is retried node by node in fresh instances, so a
//! backend's results and errors do not depend on chunking.

use serde::{Deserialize, Serialize};

use crate::ir::{NodeIr, Os};
use crate::net::AddressSet;

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

/// Input of `ringfence_render_with_sets`: a node's IR whose sets carry only
/// their names, and for each of its sets, in order, the index of its
/// contents in the table given to `ringfence_sets`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeWithSetRefs {
    /// The IR, sets without contents.
    pub ir: NodeIr,
    /// For each of `ir.sets`, an index into the set table.
    pub sets: Vec<u32>,
}

impl NodeWithSetRefs {
    /// The whole IR: each set's contents taken from `table`. `None` if the
    /// indexes do not fit the sets or the table.
    pub fn resolve(mut self, table: &[AddressSet]) -> Option<NodeIr> {
        if self.sets.len() != self.ir.sets.len() {
            return None;
        }
        for (s, &i) in self.ir.sets.iter_mut().zip(&self.sets) {
            let t = table.get(i as usize)?;
            s.v4.clone_from(&t.v4);
            s.v6.clone_from(&t.v6);
        }
        Some(self.ir)
    }
}
