//! The ringfence pipeline: intent at a revision, resolved against the
//! inventory, rendered by backend plugins, written as signed per-node bundles.
//!
//! - [`session`] reads intent (working tree, revision, index, or a bare
//!   repository), checks it and compiles it against the inventory;
//! - [`render`] renders every node's IR with its backend plugin;
//! - [`bundles`] writes a compile's output directory (`<node>.bundle` files
//!   and the signed `index.json`), carrying generations over from the previous one.

pub mod bundles;
pub mod render;
pub mod session;

pub use session::{Checked, IntentFrom, Session, SessionError};
