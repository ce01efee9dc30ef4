//! The ringfence pipeline: intent at a revision, resolved against the
//! inventory, rendered by backend plugins, written as signed per-node bundles.
//!
//! - [`pipeline`]: the [`Pipeline`] every command and `watch` run — check,
//!   compile, render, seal, each returning its value with its diagnostics;
//! - [`render`] renders every node's IR with its backend plugin;
//! - [`bundles`] writes a compile's output directory (`<node>.bundle` files
//!   and the signed `index.json`), carrying generations over from the previous one.

pub mod bundles;
pub mod pipeline;
pub mod render;

pub use pipeline::{
    CheckedIntent, DriverError, IntentFrom, LoadedInventory, Pipeline, Seal, Session, Warned,
};
