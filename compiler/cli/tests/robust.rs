//! Hostile and oversized input through the binary: a clear diagnostic or
//! refusal, never a crash or a write outside the output directory.

use std::fs;

use crate::cli::{code, p, ringfence, text};

/// A 4 KB file of nested blocks (and its `not`, `scope` and comment
/// variants) aborted `check` and `fmt` with a stack overflow.
#[test]
fn nested_kdl_is_a_diagnostic_not_a_crash() {
    let hostile = [
        "a {".repeat(3000) + &"}".repeat(3000),
        format!(
            "filter \"f\" {{\n{}\n}}\n",
            "not {".repeat(20_000) + &"}".repeat(20_000)
        ),
        "scope \"s\" {".repeat(3000) + &"}".repeat(3000),
        format!("/*{}*/\n", "*".repeat(100_000)),
    ];
    for (i, kdl) in hostile.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.kdl"), kdl).unwrap();
        let out = ringfence(&["check", p(dir.path())]);
        let all = text(&out.stdout) + &text(&out.stderr);
        let comment = i == 3;
        // The comment is valid KDL (but no intent): exit 0; the rest: 1.
        assert_eq!(code(&out), if comment { 0 } else { 1 }, "case {i}: {all}");
        if !comment {
            assert!(all.contains("ringfence::limit"), "case {i}: {all}");
            assert!(
                all.contains("a.kdl:1:") || all.contains("a.kdl:2:"),
                "case {i}: {all}"
            );
        }
        let out = ringfence(&["fmt", "--check", p(dir.path())]);
        assert!(code(&out) <= 1, "fmt case {i}: {}", text(&out.stderr));
    }
}
