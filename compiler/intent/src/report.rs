//! Rendering diagnostics: miette's graphical report for people, and the
//! documented JSON document for machines.
//!
//! Both take time linear in the number of diagnostics: each file's lines are
//! indexed once per call, so a snippet or a line and column is found by
//! binary search instead of a scan from the start of the file; a snippet on a
//! line too long to show whole is cut to the part around its label.

use std::fmt;
use std::sync::{Arc, OnceLock};

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError, MietteSpanContents,
    SourceCode, SourceSpan, SpanContents,
};
use serde_json::{Value, json};

use crate::diagnostics::{Diagnostic, Diagnostics, Severity};
use crate::location::Locator;
use crate::model::{SourceFile, Span};

/// One diagnostic as miette sees it: labels in the primary span's file are
/// drawn on its source; labels in other files become related notes, each
/// drawn on its own file.
#[derive(Debug)]
struct Report {
    message: String,
    code: &'static str,
    severity: miette::Severity,
    help: Option<String>,
    source: Option<Excerpts>,
    labels: Vec<LabeledSpan>,
    related: Vec<Report>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Report {}

impl miette::Diagnostic for Report {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        (!self.code.is_empty()).then(|| Box::new(self.code) as Box<dyn fmt::Display>)
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(self.severity)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|s| s as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        (!self.labels.is_empty()).then(|| Box::new(self.labels.iter().cloned()) as Box<_>)
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        (!self.related.is_empty())
            .then(|| Box::new(self.related.iter().map(|r| r as &dyn miette::Diagnostic)) as Box<_>)
    }
}

/// A snippet window larger than this (bytes) is cut to the label's line.
const MAX_WINDOW: usize = 64 << 10;
/// A line longer than this (bytes) is shown cut around its labels.
const LONG_LINE: usize = 1024;
/// Bytes shown either side of a label on a cut line.
const CUT_MARGIN: usize = 80;
/// The longest label drawn on a cut line.
const CUT_LABEL: usize = 256;

/// One file's text with its line starts as miette counts lines (after `\n`,
/// and after a `\r` not followed by `\n`), for its snippets; the JSON
/// document locates with [`Locator`], which counts `\n` only.
#[derive(Debug)]
struct MietteLines {
    name: String,
    text: Arc<str>,
    starts: Vec<usize>,
}

impl MietteLines {
    fn new(f: &SourceFile) -> Self {
        let b = f.text.as_bytes();
        let starts = std::iter::once(0)
            .chain((0..b.len()).filter_map(|i| {
                let end = b[i] == b'\n' || (b[i] == b'\r' && b.get(i + 1) != Some(&b'\n'));
                end.then_some(i + 1)
            }))
            .collect();
        MietteLines {
            name: f.path.clone(),
            text: f.text.clone(),
            starts,
        }
    }

    /// 0-based line holding byte `offset`.
    fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset) - 1
    }

    /// Start of line `i` (the end of the text past the last line).
    fn start(&self, i: usize) -> usize {
        self.starts.get(i).copied().unwrap_or(self.text.len())
    }

    /// End of line `i`'s content (before its line break).
    fn content_end(&self, i: usize) -> usize {
        let (s, e) = (self.start(i), self.start(i + 1));
        let t = &self.text.as_bytes()[s..e];
        let t = t.strip_suffix(b"\n").unwrap_or(t);
        let t = t.strip_suffix(b"\r").unwrap_or(t);
        s + t.len()
    }
}

/// The files of one render call, each indexed once, on first use.
struct Index<'f> {
    files: &'f [SourceFile],
    lines: Vec<OnceLock<Arc<MietteLines>>>,
}

impl<'f> Index<'f> {
    fn new(files: &'f [SourceFile]) -> Self {
        Index {
            files,
            lines: files.iter().map(|_| OnceLock::new()).collect(),
        }
    }

    fn lines(&self, file: usize) -> Option<&Arc<MietteLines>> {
        let f = self.files.get(file)?;
        Some(self.lines[file].get_or_init(|| Arc::new(MietteLines::new(f))))
    }

    /// A span clamped to its file, so a stale span cannot make rendering
    /// fail, and to its line and [`CUT_LABEL`] where that line is long.
    fn clamp(&self, span: Span) -> (usize, usize) {
        let Some(l) = self.lines(span.file) else {
            return (0, 0);
        };
        let offset = span.offset.min(l.text.len());
        let mut len = span.len.min(l.text.len() - offset);
        let line = l.line(offset);
        if l.start(line + 1) - l.start(line) > LONG_LINE {
            len = len
                .min(CUT_LABEL)
                .min(l.content_end(line).saturating_sub(offset));
        }
        (offset, len)
    }
}

/// A file as miette reads it: each snippet is read from a few lines around
/// its span (found in the index), never from the start of the file.
#[derive(Debug)]
struct Excerpts(Arc<MietteLines>);

impl SourceCode for Excerpts {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let l = &*self.0;
        let (start, end) = (span.offset(), span.offset() + span.len());
        if end > l.text.len() {
            return Err(MietteError::OutOfBounds);
        }
        let first = l.line(start);
        let last = l.line(end.saturating_sub(1).max(start));
        let from = first.saturating_sub(before);
        let window = l.start(last + after + 1) - l.start(from);
        let first_len = l.start(first + 1) - l.start(first);
        if window <= MAX_WINDOW && (first_len <= LONG_LINE || last > first) {
            // miette's own reading, on the text from `from`'s line on: the
            // same snippet as on the whole file, shifted back.
            let base = l.start(from);
            let sub = &l.text.as_bytes()[base..];
            let shifted = SourceSpan::new((start - base).into(), span.len());
            let c = <[u8] as SourceCode>::read_span(sub, &shifted, before, after)?;
            let at = SourceSpan::new((c.span().offset() + base).into(), c.span().len());
            return Ok(Box::new(MietteSpanContents::new_named(
                l.name.clone(),
                c.data(),
                at,
                c.line() + from,
                c.column(),
                c.line_count() + from,
            )));
        }
        // A long line: the part of it around the span, alone.
        let (line_start, line_end) = (l.start(first), l.content_end(first));
        if end > line_end || span.len() > 4 * CUT_LABEL {
            return Err(MietteError::OutOfBounds);
        }
        let text = &*l.text;
        let mut a = start.saturating_sub(CUT_MARGIN).max(line_start);
        while !text.is_char_boundary(a) {
            a -= 1;
        }
        let mut b = (end.max(start + 1) + CUT_MARGIN).min(line_end);
        while !text.is_char_boundary(b) {
            b += 1;
        }
        let column = if before == 0 { start - line_start } else { 0 };
        Ok(Box::new(MietteSpanContents::new_named(
            l.name.clone(),
            &text.as_bytes()[a..b],
            SourceSpan::new(a.into(), b - a),
            first,
            column,
            first + 1,
        )))
    }
}

fn report(d: &Diagnostic, index: &Index<'_>) -> Report {
    let severity = match d.severity {
        Severity::Error => miette::Severity::Error,
        Severity::Warning => miette::Severity::Warning,
    };
    let mut labels = Vec::new();
    let mut related = Vec::new();
    let primary_file = d.primary.as_ref().map(|(s, _)| s.file);
    if let Some((span, text)) = &d.primary {
        labels.push(LabeledSpan::new_primary_with_span(
            Some(text.clone()),
            index.clamp(*span),
        ));
    }
    for (span, text) in &d.labels {
        if Some(span.file) == primary_file {
            labels.push(LabeledSpan::new_with_span(
                Some(text.clone()),
                index.clamp(*span),
            ));
        } else {
            related.push(Report {
                message: text.clone(),
                code: "",
                severity: miette::Severity::Advice,
                help: None,
                source: index.lines(span.file).cloned().map(Excerpts),
                labels: vec![LabeledSpan::new_primary_with_span(None, index.clamp(*span))],
                related: Vec::new(),
            });
        }
    }
    Report {
        message: d.message.clone(),
        code: d.code,
        severity,
        help: d.help.clone(),
        source: d
            .primary
            .as_ref()
            .and_then(|(s, _)| index.lines(s.file).cloned().map(Excerpts)),
        labels,
        related,
    }
}

/// Render every diagnostic as miette's graphical report, `width` columns wide,
/// with colour or not.
pub fn render_human(
    diags: &Diagnostics,
    files: &[SourceFile],
    color: bool,
    width: usize,
) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(width)
        .with_links(false);
    let index = Index::new(files);
    let mut out = String::new();
    for d in &diags.0 {
        // Writing into a String cannot fail.
        let _ = handler.render_report(&mut out, &report(d, &index));
        out.push('\n');
    }
    out
}

/// The documented JSON document: `{"diagnostics": [...], "errors": N, "warnings": N}`.
/// Each diagnostic has `severity`, `code`, `message`, `file`, `line`, `column`
/// (1-based; absent without a span), `help`, and `labels` (every other
/// location, with its text).
pub fn to_json(diags: &Diagnostics, files: &[SourceFile]) -> Value {
    let mut at = Locator::default();
    let list: Vec<Value> = diags
        .0
        .iter()
        .map(|d| {
            let mut o = serde_json::Map::new();
            o.insert(
                "severity".into(),
                json!(match d.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                }),
            );
            o.insert("code".into(), json!(d.code));
            o.insert("message".into(), json!(d.message));
            if let Some((span, label)) = &d.primary
                && let Some((file, line, column)) = at.locate(files, *span)
            {
                o.insert("file".into(), json!(file));
                o.insert("line".into(), json!(line));
                o.insert("column".into(), json!(column));
                o.insert("label".into(), json!(label));
            }
            if let Some(h) = &d.help {
                o.insert("help".into(), json!(h));
            }
            let labels: Vec<Value> = d
                .labels
                .iter()
                .filter_map(|(span, text)| {
                    let (file, line, column) = at.locate(files, *span)?;
                    Some(json!({"file": file, "line": line, "column": column, "label": text}))
                })
                .collect();
            if !labels.is_empty() {
                o.insert("labels".into(), Value::Array(labels));
            }
            Value::Object(o)
        })
        .collect();
    json!({
        "diagnostics": list,
        "errors": diags.error_count(),
        "warnings": diags.warning_count(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::Code;
    use proptest::prelude::*;

    fn file(text: &str) -> Vec<SourceFile> {
        vec![SourceFile {
            path: "a.kdl".into(),
            text: Arc::from(text),
        }]
    }

    fn at(offset: usize, len: usize) -> Span {
        Span {
            file: 0,
            offset,
            len,
        }
    }

    /// The same report drawn with miette's own reading of the whole file.
    fn render_whole(d: &Diagnostic, files: &[SourceFile]) -> String {
        let index = Index::new(files);
        let mut r = report(d, &index);
        let whole = miette::NamedSource::new(files[0].path.clone(), files[0].text.clone());
        let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
            .with_width(80)
            .with_links(false);
        let mut out = String::new();
        struct Whole(Report, miette::NamedSource<Arc<str>>);
        impl fmt::Debug for Whole {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
        impl fmt::Display for Whole {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
        impl std::error::Error for Whole {}
        impl miette::Diagnostic for Whole {
            fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
                self.0.code()
            }
            fn severity(&self) -> Option<miette::Severity> {
                Some(self.0.severity)
            }
            fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
                miette::Diagnostic::help(&self.0)
            }
            fn source_code(&self) -> Option<&dyn SourceCode> {
                Some(&self.1)
            }
            fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
                self.0.labels()
            }
        }
        r.related.clear();
        let _ = handler.render_report(&mut out, &Whole(r, whole));
        out.push('\n');
        out
    }

    proptest! {
        /// On files of ordinary lines, reading a few lines around each span
        /// draws exactly what reading the whole file draws.
        #[test]
        fn excerpts_draw_what_the_whole_file_draws(
            lines in proptest::collection::vec("[a-z \"{}é]{0,30}", 1..40),
            breaks in proptest::collection::vec(prop_oneof!["\n", "\r\n", "\r"], 40),
            spans in proptest::collection::vec((0usize..2000, 0usize..60), 1..4),
        ) {
            let mut text = String::new();
            for (l, b) in lines.iter().zip(&breaks) {
                text.push_str(l);
                text.push_str(b);
            }
            let mut d = Diagnostic::warning(Code::UnusedFilter, "m").with_help("h");
            for (i, (o, len)) in spans.iter().enumerate() {
                let mut o = o % (text.len() + 1);
                while !text.is_char_boundary(o) {
                    o -= 1;
                }
                let mut e = (o + len).min(text.len());
                while !text.is_char_boundary(e) {
                    e -= 1;
                }
                d = d.with_label(at(o, e - o), format!("label {i}"));
            }
            let files = file(&text);
            let ours = render_human(&Diagnostics(vec![d.clone()]), &files, false, 80);
            prop_assert_eq!(ours, render_whole(&d, &files));
        }
    }

    #[test]
    fn a_label_far_along_a_long_line_is_drawn_cut_not_a_panic() {
        // miette pads to the label's column, and a pad over 65,535 panics.
        let text = format!(
            "a {}\"x\" \"{}\"\n",
            "\"é\" ".repeat(30_000),
            "y".repeat(5000)
        );
        let files = file(&text);
        let x = text.find("\"x\"").unwrap();
        let d = Diagnostic::error(Code::InvalidValue, "bad")
            .with_label(at(x, 3), "this")
            .with_label(at(x + 4, 5002), "and this, far longer than shown")
            .with_help("fix it");
        let out = render_human(&Diagnostics(vec![d]), &files, false, 80);
        insta::assert_snapshot!(out);
        let json = to_json(&Diagnostics(vec![]), &files);
        assert_eq!(json["errors"], 0);
    }

    #[test]
    fn many_diagnostics_on_one_file_render_in_linear_time() {
        // 20,000 warnings on one file took 116 s (each snippet read the file
        // from its start); linear, they take well under a second.
        let mut text = String::new();
        let mut diags = Diagnostics::default();
        for i in 0..20_000 {
            let offset = text.len();
            text.push_str(&format!(
                "filter \"f{i}\" {{\n    label \"app\" \"x\"\n}}\n"
            ));
            diags.push(
                Diagnostic::warning(Code::UnusedFilter, format!("filter `f{i}` is never used"))
                    .with_label(at(offset + 7, 4 + i.to_string().len()), "unused")
                    .with_help("use it or remove it"),
            );
        }
        let files = file(&text);
        let t = std::time::Instant::now();
        let human = render_human(&diags, &files, false, 80);
        let json = to_json(&diags, &files);
        let took = t.elapsed();
        assert_eq!(human.matches("is never used").count(), 20_000);
        assert_eq!(json["diagnostics"][19_999]["line"], 3 * 19_999 + 1);
        assert_eq!(json["diagnostics"][19_999]["column"], 8);
        assert!(took.as_secs() < 30, "{took:?}: not linear");
    }
}
