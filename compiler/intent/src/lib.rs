//! The ringfence intent language: parse KDL files, validate them, report
//! every problem with its span, and hand the compiler an [`model::Intent`].

pub mod diagnostics;
pub mod model;

pub use diagnostics::{Diagnostic, Diagnostics, Severity};
