//! What ringfence's tests and benchmarks share, kept out of the production
//! crates: every crate takes it as a dev-dependency only.
//!
//! - [`builder`]: intent and inventory values built in code, with real spans;
//! - [`fixtures`]: scenarios several crates test, their intent in KDL;
//! - [`synth`]: synthetic clusters of any size (intent and inventory, as
//!   values and as files) for benchmarks;
//! - [`churn`]: pod churn traces over a synthetic cluster, for the
//!   live-membership benchmark;
//! - [`flowgen`]: flows over a synthetic cluster, for the analysis benchmark;
//! - [`world`]: small clusters with a known call graph, written as kubectl
//!   Lists and as flows in each input format, for discovery; [`shop`] is
//!   its test scenario and [`callgraph`] its benchmark input;
//! - [`payload`]: bundle content of a chosen size, for the sealing benchmarks;
//! - [`cmd`]: commands that must succeed;
//! - [`git`]: real Git repositories (git2, or the `git` binary);
//! - [`keys`]: signing keys from fixed seeds;
//! - [`kubeapi`]: a Kubernetes API server speaking list and watch;
//! - [`listen`]: servers started by a test, their address read from the log;
//! - [`rng`]: the one seeded generator all of them draw from;
//! - [`text`]: the one "the output says this" assertion.
//!
//! The `ringfence-synth` binary writes the benchmarks' input files.

pub mod builder;
pub mod callgraph;
pub mod churn;
pub mod cmd;
pub mod fixtures;
pub mod flowgen;
pub mod git;
pub mod keys;
pub mod kubeapi;
pub mod listen;
pub mod payload;
pub mod rng;
pub mod shop;
pub mod synth;
pub mod text;
pub mod world;
