//! Policy discovery: intent from observed flows.

mod book;
mod exclude;

pub use exclude::{ExcludeError, Exclusions};
mod aggregate;
mod compress;
mod group;
mod ports;

pub use ports::PortGeneralization;

/// How finely discovery groups workloads (the seed's step 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Granularity {
    /// The whole cluster is one boundary: policies for traffic crossing it,
    /// plus one intra-cluster allow.
    Cluster,
    /// One policy object per namespace (a namespace ringfence).
    Namespace,
    /// A service and the workloads behind it are one unit.
    Coarse,
    /// Workloads and services are separate units.
    Fine,
}
