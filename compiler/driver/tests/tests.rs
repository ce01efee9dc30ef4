//! The driver's integration tests, one binary: sealing (`bundles`,
//! `keeping`, on the nodes of `nodes`), the whole `pipeline`, and the
//! `screen` of backend output.

mod bundles;
mod keeping;
mod nodes;
mod pipeline;
mod screen;
