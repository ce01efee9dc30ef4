//! What ringfence's tests and benchmarks share, kept out of the production
//! crates: every crate takes it as a dev-dependency only.
//!
//! - [`builder`]: intent and inventory values built in code, with real spans;
//! - [`synth`]: synthetic clusters of any size (intent and inventory, as
//!   values and as files) for benchmarks;
//! - [`flowgen`]: flows over a synthetic cluster, for the analysis benchmark;
//! - [`world`]: small clusters with a known call graph, written as kubectl
//!   Lists and as flows in each input format, for discovery;
//! - [`shop`]: the discovery scenario built on [`world`].

pub mod builder;
pub mod flowgen;
pub mod shop;
pub mod synth;
pub mod world;
