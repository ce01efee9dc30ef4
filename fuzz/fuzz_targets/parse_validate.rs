//! Parse, validate, render and format arbitrary intent: nothing may panic.
//! The input is split on NUL bytes into up to four files, so cross-file
//! checks (duplicates, references, cluster split) run too.

#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use ringfence_intent::model::SourceFile;
use ringfence_intent::{format_source, load, render_human, to_json};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let files: Vec<SourceFile> = text
        .split('\0')
        .take(4)
        .enumerate()
        .map(|(i, t)| SourceFile {
            path: format!("{i}.kdl"),
            text: Arc::from(t),
        })
        .collect();
    let checked = load(files.clone());
    assert_eq!(checked.intent.is_none(), checked.diagnostics.has_errors());
    render_human(&checked.diagnostics, &files, false, 80);
    to_json(&checked.diagnostics, &files);
    for (i, f) in files.iter().enumerate() {
        if let Ok(formatted) = format_source(i, &f.text) {
            assert_eq!(format_source(i, &formatted).ok().as_deref(), Some(formatted.as_str()));
        }
    }
});
