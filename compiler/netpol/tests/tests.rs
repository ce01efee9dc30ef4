//! Kubernetes policy import: translations and the semantics property.

mod semantics;
mod translate;
