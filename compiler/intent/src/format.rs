//! `ringfence fmt`: the canonical layout of an intent file, keeping comments.
//!
//! The layout: four spaces per nesting level; one node per line (`;`
//! separated nodes are split); one space between entries and `key=value`
//! without spaces; string values quoted (raw and multi-line strings, numbers
//! and keywords stay as written); at most one blank line in a row and none at
//! the start or end of a block; `}` on its own line; `\` line continuations
//! kept, the continued line indented one level deeper; comments kept where
//! they were (same line or own line), own-line comments re-indented.
//!
//! The result is checked to parse to the same document before it is returned.

use std::fmt::Write;

use kdl::{KdlDocument, KdlEntry, KdlNode, KdlValue};

use crate::diagnostics::{Code, Diagnostic, Diagnostics};
use crate::limits;
use crate::model::{FileId, Span};
use crate::parse::{refusal_diagnostic, syntax_diagnostics};

const INDENT: &str = "    ";

/// The canonical layout of `text`, or its syntax errors (a file that does not
/// parse is never rewritten).
pub fn format_source(file: FileId, text: &str) -> Result<String, Diagnostics> {
    let doc = match limits::parse_with(text, KdlDocument::parse_v2) {
        Ok(Ok(doc)) => doc,
        Ok(Err(e)) => return Err(Diagnostics(syntax_diagnostics(file, text, &e))),
        Err(r) => return Err(Diagnostics(vec![refusal_diagnostic(file, &r)])),
    };
    let mut p = Printer {
        src: text,
        ..Printer::default()
    };
    p.document(&doc, 0);
    let out = p.finish();
    let same = matches!(limits::parse_with(&out, KdlDocument::parse_v2),
        Ok(Ok(formatted)) if equivalent(&doc, &formatted));
    if !same {
        // A bug in the printer must not change anyone's intent.
        let d = Diagnostic::error(
            Code::Syntax,
            "this file's layout cannot be normalised without changing its meaning",
        )
        .with_label(
            Span {
                file,
                offset: 0,
                len: 0,
            },
            "left as is",
        )
        .with_help("format this file by hand (and report the file to the ringfence developers)");
        return Err(Diagnostics(vec![d]));
    }
    Ok(out)
}

/// Same nodes, entries and values, whatever the layout.
fn equivalent(a: &KdlDocument, b: &KdlDocument) -> bool {
    let canon = |d: &KdlDocument| {
        let mut d = d.clone();
        d.clear_format_recursive();
        d.to_string()
    };
    canon(a) == canon(b)
}

#[derive(Default)]
struct Printer<'a> {
    /// The source, for the trivia kdl does not keep (see [`lost_trivia`]).
    src: &'a str,
    out: String,
    /// The current output line has content (comments may follow on it).
    line_open: bool,
    /// Newlines seen in the source since the last content.
    newlines: usize,
    /// Nothing written yet since the last `{`.
    block_start: bool,
    /// Source indentation of the first line of the current comment group.
    group_base: Option<usize>,
}

impl Printer<'_> {
    fn document(&mut self, doc: &KdlDocument, depth: usize) {
        if let Some(f) = doc.format() {
            self.trivia(&f.leading, depth);
        }
        for n in doc.nodes() {
            self.node(n, depth);
        }
        if let Some(f) = doc.format() {
            self.trivia(&f.trailing, depth);
        }
    }

    fn node(&mut self, n: &KdlNode, depth: usize) {
        let f = n.format();
        if let Some(f) = f {
            self.trivia(&f.leading, depth);
        }
        let mut head = String::new();
        if let Some(ty) = n.ty() {
            head.push('(');
            head.push_str(ty.repr().unwrap_or(ty.value()));
            head.push(')');
        }
        head.push_str(n.name().repr().unwrap_or(n.name().value()));
        for e in n.entries() {
            entry(&mut head, e, depth);
        }
        if let Some(f) = f {
            let extra = f.before_children.trim();
            if !extra.is_empty() {
                head.push(' ');
                head.push_str(extra);
            }
        }
        self.line(depth, 0, &head);
        self.group_base = None;
        if let Some(children) = n.children() {
            self.out.push_str(" {");
            self.block_start = true;
            self.newlines = 0;
            self.document(children, depth + 1);
            if self.block_start {
                self.out.push('}');
            } else {
                self.out.push('\n');
                push_indent(&mut self.out, depth);
                self.out.push('}');
            }
            self.block_start = false;
            self.line_open = true;
            self.newlines = 0;
            self.group_base = None;
        }
        if let Some(f) = f {
            self.trivia(&f.before_terminator, depth);
            let terminator = if f.terminator.is_empty() {
                lost_trivia(self.src, n, &f.before_terminator)
            } else {
                &f.terminator
            };
            self.trivia(terminator.strip_prefix(';').unwrap_or(terminator), depth);
            self.trivia(&f.trailing, depth);
        }
    }

    /// Start a new output line at `depth` (plus `extra` spaces) with `text`.
    fn line(&mut self, depth: usize, extra: usize, text: &str) {
        if !self.out.is_empty() {
            if self.newlines >= 2 && !self.block_start {
                self.out.push('\n');
            }
            self.out.push('\n');
        }
        push_indent(&mut self.out, depth);
        self.out.extend(std::iter::repeat_n(' ', extra));
        self.out.push_str(text);
        self.line_open = true;
        self.newlines = 0;
        self.block_start = false;
    }

    /// Whitespace and comments from the source: comments before the first
    /// newline stay on the current line, the rest get lines of their own.
    fn trivia(&mut self, s: &str, depth: usize) {
        for (i, seg) in s.split('\n').enumerate() {
            if i > 0 {
                self.newlines += 1;
                self.line_open = false;
            }
            let t = seg.trim();
            if t.is_empty() {
                if i > 0 && self.newlines >= 2 {
                    self.group_base = None;
                }
                continue;
            }
            if i == 0 && self.line_open {
                self.out.push(' ');
                self.out.push_str(t);
                continue;
            }
            let indent = seg.len() - seg.trim_start().len();
            let extra = match self.group_base {
                Some(base) if !t.starts_with("//") => indent.saturating_sub(base),
                _ => {
                    self.group_base = Some(indent);
                    0
                }
            };
            self.line(depth, extra, t);
        }
    }

    fn finish(mut self) -> String {
        let trimmed = self.out.trim_end().len();
        self.out.truncate(trimmed);
        if !self.out.is_empty() {
            self.out.push('\n');
        }
        self.out
    }
}

/// The source text after the `}` that ends `n` (its children or slashdashed
/// children) up to and including the node's terminator, when kdl 6.7 parsed
/// it but kept it nowhere in the format: node-space (a space, a `/* */`
/// comment, a `\` continuation) after the `}` makes kdl miss the terminator,
/// so in `a {} // c` both the space and `// c` would be lost, and `a {}// c`
/// would lose its comment once formatted to `a {} // c`. Empty when nothing
/// was lost.
fn lost_trivia<'s>(src: &'s str, n: &KdlNode, before_terminator: &str) -> &'s str {
    if n.children().is_none() && !before_terminator.ends_with('}') {
        return "";
    }
    let span = n.span();
    let (start, end) = (span.offset(), span.offset() + span.len());
    let Some(text) = src.get(start..end) else {
        return "";
    };
    // The last `}` followed by node-space only (a `}` inside a trailing
    // comment is followed by the rest of the comment).
    let Some(cut) = text
        .match_indices('}')
        .rev()
        .map(|(i, _)| i + 1)
        .find(|&i| {
            text[..i].ends_with(before_terminator) && (i == text.len() || is_node_space(&text[i..]))
        })
    else {
        return "";
    };
    // The terminator kdl consumed after the node: a comment or newline (a
    // `;` or the end of the block prints as a newline anyway).
    let rest = &src[end..];
    let terminator = if rest.starts_with("//") {
        rest.find('\n').map_or(rest.len(), |i| i + 1)
    } else if rest.starts_with("\r\n") {
        2
    } else if rest.starts_with('\n') {
        1
    } else {
        0
    };
    &src[start + cut..end + terminator]
}

/// `s` is only node-space: whitespace, `/* */` comments, `\` continuations.
fn is_node_space(s: &str) -> bool {
    let probe = format!("n{s}x");
    matches!(limits::parse_with(&probe, KdlDocument::parse_v2), Ok(Ok(d))
        if matches!(d.nodes(), [n] if n.name().value() == "n"
            && n.children().is_none()
            && matches!(n.entries(), [e] if e.name().is_none() && e.value().as_string() == Some("x"))))
}

/// `s` as a KDL string literal: quoted, with `"`, `\\` and control
/// characters escaped. For the tools that write intent (discovery, the
/// Kubernetes import).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn push_indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str(INDENT);
    }
}

/// Append one entry (with what precedes it: a space, or a `\` continuation,
/// comments, slashdashed entries) to a node's head.
fn entry(head: &mut String, e: &KdlEntry, depth: usize) {
    let Some(f) = e.format() else {
        head.push(' ');
        head.push_str(e.to_string().trim());
        return;
    };
    let pieces: Vec<&str> = f.leading.split('\n').collect();
    for (i, p) in pieces.iter().enumerate() {
        if i == 0 {
            head.push(' ');
        } else {
            head.push('\n');
            push_indent(head, depth + 1);
        }
        let t = p.trim();
        if !t.is_empty() {
            head.push_str(t);
            if i == pieces.len() - 1 {
                head.push(' ');
            }
        }
    }
    if let Some(k) = e.name() {
        head.push_str(k.repr().unwrap_or(k.value()));
        head.push('=');
    }
    if let Some(ty) = e.ty() {
        head.push('(');
        head.push_str(ty.repr().unwrap_or(ty.value()));
        head.push(')');
    }
    let repr = f.value_repr.as_str();
    match e.value() {
        // A bare identifier string: quote it (it holds no `"` or `\`).
        KdlValue::String(s) if !repr.starts_with('"') && !repr.starts_with('#') => {
            head.push('"');
            head.push_str(s);
            head.push('"');
        }
        _ => head.push_str(repr),
    }
    let t = f.trailing.trim();
    if !t.is_empty() {
        head.push(' ');
        head.push_str(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(s: &str) -> String {
        format_source(0, s).unwrap_or_else(|d| panic!("{d:?}"))
    }

    #[test]
    fn canonical_layout_keeps_comments() {
        let src = "// head comment\n\n\n/* block\n   comment */\nscope \"a\"   parent=b {   // after brace\n  // inside\n\n  query { cluster x ; namespace y }\n\n\n    /- filter \"dead\" {\n        kind pod\n    }\n  allow \"x\" from=a \\\n      to=b // to b\n  deny /-\"n\" from = c to=d; allow from=e to=f\n\n}\n// tail\n\n\n";
        let want = "// head comment\n\n/* block\n   comment */\nscope \"a\" parent=\"b\" { // after brace\n    // inside\n\n    query {\n        cluster \"x\"\n        namespace \"y\"\n    }\n\n    /- filter \"dead\" {\n        kind pod\n    }\n    allow \"x\" from=\"a\" \\\n        to=\"b\" // to b\n    deny /-\"n\" from=\"c\" to=\"d\"\n    allow from=\"e\" to=\"f\"\n}\n// tail\n";
        assert_eq!(fmt(src), want);
        assert_eq!(fmt(want), want, "idempotent");
    }

    #[test]
    fn empty_block_and_empty_file() {
        assert_eq!(fmt("a {\n}\n"), "a {}\n");
        assert_eq!(fmt(""), "");
        assert_eq!(fmt("\n\n// only\n\n"), "// only\n");
    }

    #[test]
    fn raw_and_multiline_strings_stay_as_written() {
        let src = "a #\"raw \"q\"\"# b=0x1F c=#true\nd \"\"\"\n    multi\n    line\n    \"\"\"\n";
        assert_eq!(fmt(src), src);
    }

    /// Found by `mutated_intent_never_panics`: kdl keeps a comment right
    /// after `}` (`}//`) but drops it after `} ` (`} //`), which is how the
    /// first pass printed it, so the second pass lost it.
    #[test]
    fn comment_after_closing_brace_is_kept_and_idempotent() {
        for (src, want) in [
            ("b {}//\nc\n", "b {} //\nc\n"),
            ("\u{feff}b {}//{\nc\n", "\u{feff}\nb {} //{\nc\n"),
            ("b {} // x\n\n\nc\n", "b {} // x\n\nc\n"),
            ("b {} /* } */ ;c\n", "b {} /* } */\nc\n"),
            (
                "a {\n b { c } /- { d } /* x */ // y\n}\n",
                "a {\n    b {\n        c\n    } /- { d } /* x */ // y\n}\n",
            ),
            ("a 1 /- {} // x\nb\n", "a 1 /- {} // x\nb\n"),
        ] {
            let once = fmt(src);
            assert_eq!(once, want, "{src:?}");
            assert_eq!(fmt(&once), once, "idempotent: {src:?}");
            let parse = |s: &str| KdlDocument::parse_v2(s).unwrap();
            assert!(
                equivalent(&parse(src), &parse(&once)),
                "same document: {src:?}"
            );
        }
    }

    #[test]
    fn refuses_files_with_syntax_errors() {
        let err = format_source(2, "a {\n").unwrap_err();
        assert!(err.has_errors());
        assert_eq!(err.0[0].code, Code::Syntax.as_str());
    }
}
