//! The ringfence node agent: verify a signed bundle, apply it atomically,
//! roll back on failure, detect drift and report compliance.
//!
//! - [`agent`]: the life cycle of one node's bundles (the security order:
//!   verify before apply, confirm before commit);
//! - [`applier`]: the OS seam, with [`nft`] (Linux) and [`windows`];
//! - [`exec`]: the only module that starts processes;
//! - [`state`]: the only module that writes the state directory;
//! - [`live`]: snapshots of what is in force, confirmation and drift (pure);
//! - [`source`]: fetching bundles from a directory or over HTTP;
//! - [`daemon`]: the `run` loop; [`metrics`]: Prometheus exposition.
//!
//! The agent never links wasmtime, git2, kube or tokio: a test checks the
//! dependency tree.

pub mod agent;
pub mod applier;
pub mod daemon;
pub mod exec;
pub mod live;
pub mod metrics;
pub mod nft;
pub mod source;
pub mod state;
pub mod windows;

use std::time::SystemTime;

/// An RFC 3339 UTC time, to the second (empty for a clock before 1970).
pub fn rfc3339(t: SystemTime) -> String {
    ringfence_bundle::format_time(t).unwrap_or_default()
}

/// A log line on stderr.
pub(crate) fn log(msg: &str) {
    eprintln!("{} ringfence-agent: {msg}", rfc3339(SystemTime::now()));
}
