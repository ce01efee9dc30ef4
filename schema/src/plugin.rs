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
//! | `ringfence_render` | `(ptr: i32, len: i32) -> i64` | reads JSON [`NodeIr`](crate::ir::NodeIr), returns a [`RenderResponse`] in its wire form ([`encode_response`]) packed as above |
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

/// Version of the plugin ABI described above. 3: IR version 2 (sets named
/// by definition, live IRs, pod ranges and unknown pods) and the
/// `live_membership` capability. 2: a render response carries its artifacts
/// as raw bytes after a JSON header (1 had them as JSON strings, escaped by
/// the plugin and unescaped by the host).
pub const PLUGIN_ABI: u32 = 3;

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
    /// Renders live IRs (`NodeIr::live`) following the membership binding
    /// of its agent (`schema/docs/membership.md`), so pods change without a
    /// render. Without it, a node gets full IRs and is rendered again when
    /// its pods change.
    #[serde(default)]
    pub live_membership: bool,
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

/// What `ringfence_render` returns, in the form [`encode_response`] writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RenderResponse {
    /// Rendered.
    Ok(RenderOutput),
    /// The backend refuses this IR; the message says why.
    Error(String),
}

/// A [`RenderResponse`] as `ringfence_render` returns it:
///
/// ```text
/// u32, little-endian   n, the header's length
/// n bytes              JSON header: {"ok":{"artifacts":[{"name":"rules.nft","len":1234}],"warnings":[…]}}
///                      or {"error":"why"}
/// the contents         each artifact's bytes (UTF-8), back to back, in header order; nothing after
/// ```
///
/// The files are copied, not escaped into JSON and parsed back out of it.
pub fn encode_response(r: &RenderResponse) -> Vec<u8> {
    let header = match r {
        RenderResponse::Ok(out) => Header::Ok {
            artifacts: out
                .artifacts
                .iter()
                .map(|a| ArtifactHeader {
                    name: a.name.clone(),
                    len: a.content.len() as u64,
                })
                .collect(),
            warnings: out.warnings.clone(),
        },
        RenderResponse::Error(e) => Header::Error(e.clone()),
    };
    let header = serde_json::to_vec(&header).expect("the header serialises");
    let contents: &[Artifact] = match r {
        RenderResponse::Ok(out) => &out.artifacts,
        RenderResponse::Error(_) => &[],
    };
    let size = contents.iter().map(|a| a.content.len()).sum::<usize>();
    let mut bytes = Vec::with_capacity(4 + header.len() + size);
    bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&header);
    for a in contents {
        bytes.extend_from_slice(a.content.as_bytes());
    }
    bytes
}

/// Read [`encode_response`]'s form back, or say what is wrong with it.
pub fn decode_response(bytes: &[u8]) -> Result<RenderResponse, String> {
    let (n, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or_else(|| format!("{} bytes, too short for a header length", bytes.len()))?;
    let n = u32::from_le_bytes(*n) as usize;
    if n > rest.len() {
        return Err(format!(
            "a header of {n} bytes announced, {} bytes follow",
            rest.len()
        ));
    }
    let (header, mut contents) = rest.split_at(n);
    let header: Header = serde_json::from_slice(header).map_err(|e| format!("header: {e}"))?;
    let (artifacts, warnings) = match header {
        Header::Error(message) => return Ok(RenderResponse::Error(message)),
        Header::Ok {
            artifacts,
            warnings,
        } => (artifacts, warnings),
    };
    let artifacts = artifacts
        .into_iter()
        .map(|a| {
            let len = usize::try_from(a.len)
                .ok()
                .filter(|&len| len <= contents.len())
                .ok_or_else(|| {
                    format!(
                        "artifact {:?} of {} bytes, {} bytes left",
                        a.name,
                        a.len,
                        contents.len()
                    )
                })?;
            let (content, rest) = contents.split_at(len);
            contents = rest;
            let content = std::str::from_utf8(content)
                .map_err(|e| format!("artifact {:?} is not UTF-8: {e}", a.name))?;
            Ok(Artifact {
                name: a.name,
                content: content.to_owned(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    if !contents.is_empty() {
        return Err(format!("{} bytes after the last artifact", contents.len()));
    }
    Ok(RenderResponse::Ok(RenderOutput {
        artifacts,
        warnings,
    }))
}

/// [`encode_response`]'s JSON header.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
enum Header {
    Ok {
        artifacts: Vec<ArtifactHeader>,
        #[serde(default)]
        warnings: Vec<RenderWarning>,
    },
    Error(String),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArtifactHeader {
    name: String,
    len: u64,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> RenderResponse {
        RenderResponse::Ok(RenderOutput {
            artifacts: vec![
                Artifact {
                    name: "rules.json".into(),
                    content: "{\"a\": \"é\"}\n".into(),
                },
                Artifact {
                    name: "rules.ps1".into(),
                    content: "\tWrite-Host \"x\"\r\n".into(),
                },
            ],
            warnings: vec![RenderWarning {
                message: "no logging".into(),
                rule: Some("r1".into()),
                policy: None,
            }],
        })
    }

    #[test]
    fn responses_round_trip_with_their_bytes_verbatim() {
        for r in [ok(), RenderResponse::Error("cannot".into())] {
            assert_eq!(decode_response(&encode_response(&r)), Ok(r));
        }
        let bytes = encode_response(&ok());
        assert!(bytes.ends_with(b"{\"a\": \"\xc3\xa9\"}\n\tWrite-Host \"x\"\r\n"));
    }

    #[test]
    fn every_malformed_response_is_refused_with_a_reason() {
        let good = encode_response(&ok());
        let header = u32::from_le_bytes(good[..4].try_into().unwrap()) as usize;
        let mut extra = good.clone();
        extra.push(b'x');
        let mut not_utf8 = good.clone();
        *not_utf8.last_mut().unwrap() = 0xff;
        let mut long_header = good.clone();
        long_header[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let unknown = [&7u32.to_le_bytes()[..], b"{\"x\":1}"].concat();
        for (bytes, reason) in [
            (&b"{}"[..], "too short"),
            (&long_header[..], "header of 4294967295 bytes"),
            (&good[..4 + header - 1], "header of"),
            (&good[..good.len() - 1], "bytes left"),
            (&extra[..], "1 bytes after the last artifact"),
            (&not_utf8[..], "is not UTF-8"),
            (&unknown[..], "header: unknown variant"),
        ] {
            let e = decode_response(bytes).unwrap_err();
            assert!(e.contains(reason), "{e:?} should contain {reason:?}");
        }
    }
}
