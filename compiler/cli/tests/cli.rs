//! Running the real `ringfence` binary.

use std::path::Path;
use std::process::{Command, Output};

use ringfence_testkit::text::assert_contains;
use serde_json::Value;

pub(crate) fn ringfence(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringfence"))
        .args(args)
        .output()
        .expect("run ringfence")
}

/// Assert that the command's stdout contains `needle` (all of it shown if not).
#[track_caller]
pub(crate) fn stdout_has(o: &Output, needle: &str) {
    assert_contains(&text(&o.stdout), needle);
}

/// Assert that the command's stderr contains `needle` (all of it shown if not).
#[track_caller]
pub(crate) fn stderr_has(o: &Output, needle: &str) {
    assert_contains(&text(&o.stderr), needle);
}

/// The first item of JSON array `list` that `keep` accepts.
#[track_caller]
pub(crate) fn item(list: &Value, keep: impl Fn(&Value) -> bool) -> &Value {
    let items = list.as_array().expect("an array");
    items.iter().find(|v| keep(v)).expect("an item")
}

/// The exit code.
pub(crate) fn code(o: &Output) -> i32 {
    o.status.code().expect("exited")
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub(crate) fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}
