//! The contract shared by every part of ringfence.
//!
//! The compiler produces it, backend plugins consume it, the agent verifies
//! and reports with it. Everything here is plain serde data plus the pure
//! functions that define its meaning, so that the compiler, the plugins (built
//! for `wasm32-unknown-unknown`) and the agent agree by construction:
//!
//! - [`ir`]: the per-node IR a backend renders, and how it is evaluated;
//! - [`membership`]: the live part of a node (pods in sets, local
//!   endpoints, exposure targets), its snapshots and deltas;
//! - [`net`]: protocols, ports and address sets used by the IR;
//! - [`interval`]: exact set algebra over ports and addresses as integer
//!   ranges, for the compiler and for backends that need it;
//! - [`plugin`]: the backend plugin ABI (metadata, render input and output);
//! - [`bundle`]: the signed bundle and index formats;
//! - [`report`]: the agent's compliance report;
//! - [`flow`]: flow records read by discovery and analysis;
//! - `digest` (feature `digest`): SHA-256 and hex, one text for every digest;
//! - `time` (feature `time`): RFC 3339, one reader and writer for every time.
//!
//! The prose reference for each lives in `schema/docs/`.

pub mod bundle;
#[cfg(feature = "digest")]
pub mod digest;
pub mod flow;
pub mod interval;
pub mod ir;
pub mod membership;
pub mod net;
pub mod plugin;
pub mod report;
#[cfg(feature = "time")]
pub mod time;
