//! Integration tests of the compiler core: semantics tables, the property
//! test against a direct evaluation of intent, explain and matrix.

mod example;
mod oracle;
mod property;
mod scenario;
mod semantics;
mod synth;
mod diagnostics;
mod explain;
