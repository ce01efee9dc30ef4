//! Cluster inventory: what nodes, namespaces, pods and services exist.

pub mod model;
