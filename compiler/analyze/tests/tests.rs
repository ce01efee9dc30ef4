//! Integration tests of flow analysis: outcome tables, agreement with
//! `explain` and the per-node IRs, versions in a Git repository, reports,
//! and the HTML page in a headless browser.

mod agree;
mod browser;
mod common;
mod html;
mod outcomes;
mod reports;
mod versions;
