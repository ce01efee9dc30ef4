//! The ringfence intent language: parse KDL files, validate them, report
//! every problem with its span, and hand the compiler an [`model::Intent`].
//!
//! [`load`] runs every stage on every file and never stops at the first
//! problem: a file with a syntax error is still reported alongside the other
//! files' semantic errors (and as much of it as parses still takes part).
//! Stages: [`parse`](crate::parse) (KDL) → `lower` (typed items, local
//! checks) → `resolve` (names, scope tree, references, global checks).

mod ast;
pub mod diagnostics;
pub mod format;
pub mod limits;
pub mod location;
mod lower;
pub mod model;
mod parse;
mod report;
mod resolve;

pub use diagnostics::{Diagnostic, Diagnostics, Severity};
pub use format::format_source;
pub use report::{render_human, to_json};

use model::{Intent, SourceFile};
use rayon::prelude::*;

/// The result of checking intent: the model if there was no error, and every
/// diagnostic (sorted by file and position).
#[derive(Debug)]
pub struct Checked {
    /// The validated intent; `None` if any error was found.
    pub intent: Option<Intent>,
    /// Every error and warning.
    pub diagnostics: Diagnostics,
}

/// Parse and validate every file.
///
/// `files` must be sorted by path (as `ringfence-source` returns them): their
/// order is the declaration order, and a [`model::FileId`] is an index into
/// this list (and into [`Intent::files`]).
pub fn load(files: Vec<SourceFile>) -> Checked {
    // KDL parsing is most of the time; files parse independently.
    let parsed: Vec<parse::Parsed> = files
        .par_iter()
        .enumerate()
        .map(|(id, f)| parse::parse(id, &f.text))
        .collect();
    let mut diags = Vec::new();
    let mut ast = ast::Ast::default();
    for ((id, f), parsed) in files.iter().enumerate().zip(parsed) {
        diags.extend(parsed.diagnostics);
        if parsed.partial {
            ast.partial_files.push(id);
        }
        if let Some(doc) = parsed.doc {
            let lines = location::LineIndex::new(&f.text);
            lower::lower(id, &lines, &doc, &mut ast, &mut diags);
        }
    }
    let intent = resolve::resolve(&ast, &files, &mut diags);
    let mut diagnostics = Diagnostics(diags);
    diagnostics.sort();
    Checked {
        intent,
        diagnostics,
    }
}
