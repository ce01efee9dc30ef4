//! Rendering diagnostics: miette's graphical report for people, and the
//! documented JSON document for machines.

use std::fmt;
use std::sync::Arc;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceCode};
use serde_json::{Value, json};

use crate::diagnostics::{Diagnostic, Diagnostics, Severity};
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
    source: Option<NamedSource<Arc<str>>>,
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

fn source(files: &[SourceFile], span: Span) -> Option<NamedSource<Arc<str>>> {
    files
        .get(span.file)
        .map(|f| NamedSource::new(f.path.clone(), f.text.clone()))
}

/// A span clamped to its file, so a stale span cannot make rendering fail.
fn clamp(files: &[SourceFile], span: Span) -> (usize, usize) {
    let len = files.get(span.file).map_or(0, |f| f.text.len());
    let offset = span.offset.min(len);
    (offset, span.len.min(len - offset))
}

fn report(d: &Diagnostic, files: &[SourceFile]) -> Report {
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
            clamp(files, *span),
        ));
    }
    for (span, text) in &d.labels {
        if Some(span.file) == primary_file {
            labels.push(LabeledSpan::new_with_span(
                Some(text.clone()),
                clamp(files, *span),
            ));
        } else {
            related.push(Report {
                message: text.clone(),
                code: "",
                severity: miette::Severity::Advice,
                help: None,
                source: source(files, *span),
                labels: vec![LabeledSpan::new_primary_with_span(
                    None,
                    clamp(files, *span),
                )],
                related: Vec::new(),
            });
        }
    }
    Report {
        message: d.message.clone(),
        code: d.code,
        severity,
        help: d.help.clone(),
        source: d.primary.as_ref().and_then(|(s, _)| source(files, *s)),
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
    let mut out = String::new();
    for d in &diags.0 {
        // Writing into a String cannot fail.
        let _ = handler.render_report(&mut out, &report(d, files));
        out.push('\n');
    }
    out
}

fn location(files: &[SourceFile], span: Span) -> Option<(&str, u32, u32)> {
    let f = files.get(span.file)?;
    let (line, column) = f.line_col(span.offset);
    Some((&f.path, line, column))
}

/// The documented JSON document: `{"diagnostics": [...], "errors": N, "warnings": N}`.
/// Each diagnostic has `severity`, `code`, `message`, `file`, `line`, `column`
/// (1-based; absent without a span), `help`, and `labels` (every other
/// location, with its text).
pub fn to_json(diags: &Diagnostics, files: &[SourceFile]) -> Value {
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
                && let Some((file, line, column)) = location(files, *span)
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
                    let (file, line, column) = location(files, *span)?;
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
