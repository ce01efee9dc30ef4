//! GitOps for ringfence: the Git hooks that check intent before it lands,
//! the plan of what a change does, and the publisher that turns every new
//! commit of a branch into signed bundles.
//!
//! - [`hooks`] installs the `pre-commit` and `pre-receive` hooks;
//! - [`plan`] compares two compiles: per-node rule and set changes, and
//!   connections newly allowed or denied with the policies responsible;
//! - [`watch`] publishes every new commit of a branch as a generation of
//!   signed bundles, in the layout [`publish`] describes, recording what it
//!   did in [`status`] and rendering only nodes [`cache`] has not seen.

pub mod cache;
pub mod hooks;
pub mod plan;
pub mod publish;
pub mod status;
pub mod watch;
