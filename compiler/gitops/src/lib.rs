//! GitOps for ringfence: the Git hooks that check intent before it lands,
//! the plan of what a change does, and the publisher that turns every new
//! commit of a branch into signed bundles.
//!
//! - [`hooks`] installs the `pre-commit` and `pre-receive` hooks;
//! - [`plan`] compares two compiles: per-node rule and set changes, and
//!   connections newly allowed or denied with the policies responsible.

pub mod hooks;
pub mod plan;
