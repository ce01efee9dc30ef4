//! Policy discovery: intent from observed flows.

mod book;
mod exclude;

pub use exclude::{ExcludeError, Exclusions};
mod aggregate;
