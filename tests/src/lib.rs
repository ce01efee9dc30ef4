//! End-to-end test support: small clusters built from network namespaces,
//! real TCP/UDP probes, and the ringfence binaries.
//!
//! A [`Topology`] turns a [`Spec`] (nodes with their pods, outside hosts)
//! into namespaces wired like a routed CNI: each node is a namespace on a
//! shared "fabric" bridge, each pod a namespace attached to its node by a veth
//! pair with a host route (Calico-style), so pod-to-pod traffic crosses the
//! node's `forward` hook where ringfence enforces. Everything is removed when
//! the topology is dropped. Requires root.

pub mod bin;
pub mod probe;
pub mod topology;

pub use probe::{Probe, listen, probe_all, probe_all_retrying, probe_each};
pub use topology::{NodeSpec, OutsideSpec, PodSpec, Spec, Topology};
