//! The one OS-specific seam: how rules are checked, installed and read back.
//!
//! [`crate::nft::NftApplier`] drives `nft` on Linux and
//! [`crate::windows::WindowsApplier`] drives PowerShell on Windows; the loop
//! in [`crate::agent`] only sees this trait.

use std::path::Path;

use ringfence_schema::ir::NodeIr;
use ringfence_schema::membership::Membership;

use crate::live::{Element, Snapshot};

/// An apply step failed.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {message}")]
pub struct ApplyError {
    /// Which step (`check`, `apply`, `read`, …).
    pub step: &'static str,
    /// What the tool said.
    pub message: String,
    /// Whether the rules in force may have changed before the failure; if so
    /// the agent re-applies the last-known-good bundle.
    pub dirty: bool,
}

impl ApplyError {
    /// A failure that left the rules in force untouched.
    pub fn clean(step: &'static str, message: impl Into<String>) -> Self {
        ApplyError {
            step,
            message: message.into(),
            dirty: false,
        }
    }

    /// A failure after which the rules in force may have changed.
    pub fn dirty(step: &'static str, message: impl Into<String>) -> Self {
        ApplyError {
            step,
            message: message.into(),
            dirty: true,
        }
    }
}

/// Installs a bundle's rule files and reads back what is in force.
pub trait Applier: Send {
    /// Backend name, for logs.
    fn name(&self) -> &'static str;
    /// The rule files a bundle must carry for this applier (besides `ir.json`).
    fn files(&self) -> &'static [&'static str];
    /// Validate the staged files in `dir` without changing anything.
    fn check(&self, dir: &Path) -> Result<(), ApplyError>;
    /// Replace our rules with the staged ones of bundle `generation`, as
    /// atomically as the OS allows.
    fn apply(&self, dir: &Path, generation: u64) -> Result<(), ApplyError>;
    /// Our rules as they are now, or `None` if none are installed.
    fn read(&self) -> Result<Option<Snapshot>, ApplyError>;
    /// The rule files of the built-in "deny forwarded pod traffic" rules
    /// (`--initial deny` before the first bundle), as (name, content); the
    /// agent stages them and calls [`Applier::apply`] with generation 0.
    fn deny_files(&self) -> Result<Vec<(&'static str, &'static str)>, ApplyError>;
    /// Remove our rules entirely (a rollback to "nothing installed").
    fn remove(&self) -> Result<(), ApplyError>;
    /// Turn the membership filling the live rules in force (of IR `ir`)
    /// from `from` into `to`, in one transaction that touches only their
    /// sets and maps. A backend without live membership refuses.
    fn apply_membership(
        &self,
        _ir: &NodeIr,
        _from: &Membership,
        _to: &Membership,
    ) -> Result<(), ApplyError> {
        Err(ApplyError::clean(
            "membership",
            format!("the {} applier does not take live membership", self.name()),
        ))
    }
    /// What membership `m` adds to a read-back of the live rules of IR
    /// `ir`, for drift: `put` is called with each element and its set's
    /// name as in [`Snapshot`], one by one (a set may hold every pod of a
    /// cluster: nothing is collected on the way).
    fn member_elements(&self, _ir: &NodeIr, _m: &Membership, _put: &mut dyn FnMut(&str, Element)) {}
    /// Time spent in the backend tool so far (benchmarks split it out).
    fn tool_time(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}
