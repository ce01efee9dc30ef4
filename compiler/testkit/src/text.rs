//! [`assert_contains`]: the one "this text says that" assertion of the tests,
//! showing the whole text when it does not.

/// Assert that `text` contains `needle`; on failure the message is all of `text`.
#[track_caller]
pub fn assert_contains(text: &str, needle: &str) {
    assert!(text.contains(needle), "{text}");
}
