//! The ringfence pipeline: intent at a revision, resolved against the
//! inventory, rendered by backend plugins, written as signed per-node bundles.
//!
//! [`bundles`] writes a compile's output directory (`<node>.bundle` files and
//! the signed `index.json`), carrying generations over from the previous one.

pub mod bundles;
