//! The `ringfence` binary as a user runs it: real files, real Git
//! repositories, real exit codes. One test binary, so the binary's tests
//! link once.

mod analyze;
mod cli;
mod clickhouse;
mod conventions;
mod discover;
mod import_k8s;
mod keygen_verify;
mod robust;
mod watch;

// The scenario of the analysis library's tests (intent, inventory).
#[path = "../../analyze/tests/common.rs"]
#[allow(dead_code)] // only the intent and inventory are used here
mod common;

// The rendered nodes of the driver's sealing tests, for `verify`.
#[path = "../../driver/tests/nodes.rs"]
mod nodes;
