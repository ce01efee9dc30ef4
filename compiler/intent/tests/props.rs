//! Property tests (the fuzz target's quick cousin, run with the normal test
//! suite): checking and formatting never panic on mutated intent, every span
//! stays inside its file, and formatting keeps the meaning and is idempotent.

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use ringfence_intent::model::SourceFile;
use ringfence_intent::{format_source, load, render_human, to_json};

/// Real intent to mutate: the example and the valid fixtures.
fn corpus() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut out = Vec::new();
    let mut dirs = vec![
        root.join("policies-example"),
        root.join("tests/fixtures/intent/valid"),
    ];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "kdl") {
                out.push(std::fs::read_to_string(p).unwrap());
            }
        }
    }
    out.sort();
    out
}

/// Fragments that exercise the grammar's edges.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "\"",
    "=",
    "\n",
    ";",
    "/-",
    "//",
    "/*",
    "*/",
    "\\",
    "#",
    "#true",
    "(",
    ")",
    " ",
    "scope",
    "filter",
    "parent=",
    "from=",
    "to=",
    "ports=",
    "\"80-70\"",
    "\"10.0.0.1/8\"",
    "matches",
    "in-scope",
    "any",
    "external:",
    "service:a/b",
    "0",
    "-1",
    "é",
    "\u{feff}",
];

#[derive(Clone, Debug)]
enum Edit {
    Insert(usize, usize),
    Delete(usize, usize),
    Duplicate(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(p, t)| Edit::Insert(p, t)),
        (any::<usize>(), 1usize..40).prop_map(|(p, n)| Edit::Delete(p, n)),
        (any::<usize>(), 1usize..80).prop_map(|(p, n)| Edit::Duplicate(p, n)),
    ]
}

fn boundary(s: &str, p: usize) -> usize {
    let mut p = p % (s.len() + 1);
    while !s.is_char_boundary(p) {
        p -= 1;
    }
    p
}

fn apply(mut s: String, edits: &[Edit]) -> String {
    for e in edits {
        match *e {
            Edit::Insert(p, t) => {
                let p = boundary(&s, p);
                s.insert_str(p, TOKENS[t]);
            }
            Edit::Delete(p, n) => {
                let a = boundary(&s, p);
                let b = boundary(&s, (a + n).min(s.len()));
                s.replace_range(a..b.max(a), "");
            }
            Edit::Duplicate(p, n) => {
                let a = boundary(&s, p);
                let b = boundary(&s, (a + n).min(s.len()));
                let piece = s[a..b.max(a)].to_string();
                s.insert_str(b.max(a), &piece);
            }
        }
    }
    s
}

fn check_all(files: Vec<SourceFile>) {
    let checked = load(files.clone());
    for d in &checked.diagnostics.0 {
        for (span, _) in d.primary.iter().chain(&d.labels) {
            let f = &files[span.file];
            assert!(
                span.offset + span.len <= f.text.len(),
                "span out of {}: {d:?}",
                f.path
            );
            assert!(
                f.text.is_char_boundary(span.offset),
                "span not on a char boundary: {d:?}"
            );
        }
        assert!(d.code.starts_with("ringfence::"));
    }
    assert_eq!(checked.intent.is_none(), checked.diagnostics.has_errors());
    render_human(&checked.diagnostics, &files, false, 80);
    to_json(&checked.diagnostics, &files);
}

fn file(path: &str, text: &str) -> SourceFile {
    SourceFile {
        path: path.into(),
        text: Arc::from(text),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn mutated_intent_never_panics(
        which in 0usize..64,
        other in 0usize..64,
        edits in proptest::collection::vec(edit(), 1..6),
    ) {
        let corpus = corpus();
        let text = apply(corpus[which % corpus.len()].clone(), &edits);
        // Alongside an intact file, so cross-file checks run too.
        check_all(vec![file("a.kdl", &text), file("b.kdl", &corpus[other % corpus.len()])]);
        if let Ok(formatted) = format_source(0, &text) {
            prop_assert_eq!(format_source(0, &formatted).ok(), Some(formatted.clone()), "not idempotent");
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        check_all(vec![file("x.kdl", &text)]);
        let _ = format_source(0, &text);
    }
}

/// Formatting every corpus file keeps its meaning (checked inside
/// `format_source`) and is a fixed point; the example is already canonical.
#[test]
fn corpus_formats_idempotently() {
    for text in corpus() {
        let once = format_source(0, &text).expect("corpus parses");
        assert_eq!(format_source(0, &once).unwrap(), once);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies-example");
    for e in std::fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "kdl") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            format_source(0, &text).unwrap(),
            text,
            "{} is not canonical",
            p.display()
        );
    }
}
