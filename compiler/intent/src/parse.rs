//! KDL parsing, with syntax errors turned into [`Diagnostic`]s and as much of
//! a broken file salvaged as possible, so its declarations still take part in
//! validation (a duplicate of a name in a broken file is still reported).

use kdl::{KdlDiagnostic, KdlDocument, KdlError};

use crate::diagnostics::{Code, Diagnostic};
use crate::limits::{self, MAX_DEPTH, Refusal};
use crate::model::{FileId, Span};

/// One parsed file.
pub(crate) struct Parsed {
    /// The document, or the salvaged part of it.
    pub(crate) doc: Option<KdlDocument>,
    /// Syntax errors.
    pub(crate) diagnostics: Vec<Diagnostic>,
    /// Whether `doc` lacks part of the file.
    pub(crate) partial: bool,
}

/// How many times salvage blanks out more of a broken file before giving up.
const SALVAGE_ROUNDS: usize = 8;

/// Parse one file as KDL v2.
pub(crate) fn parse(file: FileId, text: &str) -> Parsed {
    match limits::parse_with(text, KdlDocument::parse_v2) {
        Ok(Ok(doc)) => Parsed {
            doc: Some(doc),
            diagnostics: Vec::new(),
            partial: false,
        },
        Ok(Err(err)) => {
            let diagnostics = syntax_diagnostics(file, text, &err);
            let doc = salvage(text, &err);
            Parsed {
                doc,
                diagnostics,
                partial: true,
            }
        }
        Err(refusal) => Parsed {
            doc: None,
            diagnostics: vec![refusal_diagnostic(file, &refusal)],
            partial: true,
        },
    }
}

/// A file the parser refuses, as a diagnostic.
pub(crate) fn refusal_diagnostic(file: FileId, refusal: &Refusal) -> Diagnostic {
    match *refusal {
        Refusal::TooDeep { offset, len } => Diagnostic::error(
            Code::Limit,
            format!("blocks nested more than {MAX_DEPTH} deep"),
        )
        .with_label(
            Span { file, offset, len },
            format!("this node's block is nested {} deep", MAX_DEPTH + 1),
        )
        .with_help(format!(
            "intent nests blocks at most {MAX_DEPTH} deep (scopes, queries, `all`/`any`/`not`): \
             flatten this, e.g. declare a deeply nested filter as a named filter and refer to it"
        )),
        Refusal::TooLarge {
            braces,
            comment_bytes,
        } => Diagnostic::error(
            Code::Limit,
            format!(
                "this file is too large to parse safely ({braces} `{{` and {comment_bytes} `*` or `/`)"
            ),
        )
        .with_label(
            Span {
                file,
                offset: 0,
                len: 0,
            },
            "not parsed",
        )
        .with_help("split it into several files"),
    }
}

const UNCLOSED: &str = "No closing '}' for child block";
const UNCLOSED_AFTER: &str = "Closing '}' was not found after nodes";
const NOT_EOF: &str = "Expected end of document";

/// Drop the errors kdl's recovery reports as consequences of another one:
/// the second report of every unclosed block; and, once a stray token ends
/// the document early ("expected end of document"), the blocks it left
/// unclosed before it and the stray `}` after it.
fn prune_cascades(diags: &[KdlDiagnostic], text: &str) -> Vec<KdlDiagnostic> {
    let msg = |d: &KdlDiagnostic| d.message.clone().unwrap_or_default();
    let first_stray = diags
        .iter()
        .filter(|d| msg(d) == NOT_EOF)
        .map(|d| d.span.offset())
        .min();
    diags
        .iter()
        .filter(|d| {
            let m = msg(d);
            let at = d.span.offset();
            match first_stray {
                _ if m == UNCLOSED_AFTER => false,
                Some(stray) if m == UNCLOSED => at > stray,
                Some(stray) if m == NOT_EOF => {
                    at == stray || !text[at.min(text.len())..].starts_with('}')
                }
                _ => true,
            }
        })
        .cloned()
        .collect()
}

/// The KDL crate's errors as ours, with its spans and messages.
pub(crate) fn syntax_diagnostics(file: FileId, text: &str, err: &KdlError) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = prune_cascades(&err.diagnostics, text)
        .iter()
        .map(|d| {
            let offset = d.span.offset().min(text.len());
            let len = d.span.len().min(text.len() - offset);
            let mut message = d.message.clone().unwrap_or_else(|| "invalid KDL".into());
            let mut help = d.help.clone();
            if message == NOT_EOF {
                let stray = text[offset..].chars().next().unwrap_or(' ');
                message = format!("unexpected `{stray}`");
                help.get_or_insert_with(|| {
                    "remove it, or look before it for a missing quote, `=`, `{` or `}`".into()
                });
            }
            // kdl labels read "not <what was expected>".
            let label = match d.label.as_deref() {
                Some("not closed") => "never closed".to_string(),
                Some("not EOF") => "not expected here".to_string(),
                Some(l) => match l.strip_prefix("not ") {
                    Some(what) => format!("expected {what}"),
                    None => l.to_string(),
                },
                None => "here".to_string(),
            };
            let help = help.unwrap_or_else(|| {
                "fix the KDL syntax here; names declared in the part of the file that does not \
                 parse are unknown until then"
                    .into()
            });
            Diagnostic::error(Code::Syntax, format!("invalid KDL: {message}"))
                .with_label(Span { file, offset, len }, label)
                .with_help(help)
        })
        .collect();
    if out.is_empty() {
        out.push(Diagnostic::error(Code::Syntax, "invalid KDL").with_label(
            Span {
                file,
                offset: 0,
                len: 0,
            },
            "here",
        ));
    }
    out
}

/// Parse what is left of a broken file once the top-level nodes that hold
/// errors are blanked out (replaced by spaces, keeping every offset).
///
/// Top-level nodes are recognised as lines that start in column 0 with
/// something other than `}` or whitespace: the layout `ringfence fmt` writes.
fn salvage(text: &str, err: &KdlError) -> Option<KdlDocument> {
    let starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .filter(|&i| {
            text[i..]
                .chars()
                .next()
                .is_some_and(|c| !c.is_whitespace() && c != '}')
        })
        .collect();
    // The chunk [start, end) holding `offset`.
    let chunk_of = |offset: usize| -> (usize, usize) {
        let i = starts.partition_point(|&s| s <= offset);
        let start = if i == 0 { 0 } else { starts[i - 1] };
        let end = starts.get(i).copied().unwrap_or(text.len());
        (start, end)
    };
    let mut blanked: Vec<(usize, usize)> = Vec::new();
    let mut errors: Vec<usize> = err.diagnostics.iter().map(|d| d.span.offset()).collect();
    for _ in 0..SALVAGE_ROUNDS {
        let before = blanked.len();
        for &e in &errors {
            let c = chunk_of(e.min(text.len().saturating_sub(1)));
            if !blanked.contains(&c) {
                blanked.push(c);
            }
        }
        if blanked.len() == before {
            return None;
        }
        let mut bytes = text.as_bytes().to_vec();
        for &(s, e) in &blanked {
            for b in &mut bytes[s..e] {
                if *b != b'\n' {
                    *b = b' ';
                }
            }
        }
        // Only whole UTF-8 characters were replaced (chunks start after a
        // newline and end before one or at the end of the text).
        let blank = String::from_utf8(bytes).ok()?;
        match limits::parse_with(&blank, KdlDocument::parse_v2) {
            Ok(Ok(doc)) => return Some(doc),
            Ok(Err(e)) => errors = e.diagnostics.iter().map(|d| d.span.offset()).collect(),
            Err(_) => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salvages_the_nodes_around_a_broken_one() {
        let text = "a 1\nbroken \"x\" {\nb 2\n";
        let p = parse(0, text);
        assert!(p.partial);
        assert!(!p.diagnostics.is_empty());
        let doc = p.doc.expect("salvaged");
        let names: Vec<_> = doc.nodes().iter().map(|n| n.name().value()).collect();
        // `broken {` swallows `b 2` as its child, so the chunk from `broken`
        // to the end of the file goes; `a` stays.
        assert_eq!(names.first().copied(), Some("a"));
        assert!(!names.contains(&"broken"));
    }

    #[test]
    fn keeps_nodes_after_an_unclosed_block_at_the_end() {
        let text = "a 1\nb 2\n\nbroken-node \"x\" {\n";
        let doc = parse(0, text).doc.expect("salvaged");
        let names: Vec<_> = doc.nodes().iter().map(|n| n.name().value()).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn syntax_errors_point_into_the_file() {
        let text = "a \"unterminated\nb 1\n";
        let p = parse(3, text);
        let d = &p.diagnostics[0];
        assert_eq!(d.code, Code::Syntax.as_str());
        let (span, _) = d.primary.as_ref().unwrap();
        assert_eq!(span.file, 3);
        assert!(span.offset < text.len());
    }
}
