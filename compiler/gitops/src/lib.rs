//! GitOps for ringfence: the Git hooks that check intent before it lands,
//! and the publisher that turns every new commit of a branch into signed
//! bundles (the plan of what a change does is `ringfence_core::diff`).
//!
//! - [`hooks`] installs the `pre-commit` and `pre-receive` hooks;
//! - [`watch`] publishes every new commit of a branch as a generation of
//!   signed bundles, in the layout [`publish`] describes, recording what it
//!   did in [`status`] and rendering only nodes [`cache`] has not seen;
//!   with a live inventory, [`live`] publishes each node's membership, and
//!   [`serve`] serves the publication over HTTP.

pub mod cache;
pub mod hooks;
pub mod live;
pub mod publish;
pub mod serve;
pub mod status;
pub mod watch;
