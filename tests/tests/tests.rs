//! The end-to-end tests, one binary (each file a module, as ripgrep's
//! `tests/tests.rs`). They run in parallel threads of one process: network
//! namespaces, temporary directories and state are named per process and
//! counter, never per file.

mod cluster;
mod collect;
mod deploy;
mod gitops_agent;
mod gitops_common;
mod gitops_hooks;
mod gitops_watch;
mod k8s_import;
mod topology;
