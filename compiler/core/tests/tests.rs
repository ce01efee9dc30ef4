//! Integration tests of the compiler core: semantics tables, the property
//! test against a direct evaluation of intent, explain and matrix.

mod diagnostics;
mod example;
mod explain;
mod live;
mod oracle;
mod property;
mod scenario;
mod semantics;
mod stability;
mod synth;
