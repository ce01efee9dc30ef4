//! Diagnostics: what every stage reports about intent, with spans.
//!
//! A stage never stops at the first problem in user input; it collects
//! [`Diagnostic`]s, which are sorted by file and position before rendering.

use crate::model::Span;

/// Error or warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The intent cannot be compiled.
    Error,
    /// Suspicious but valid.
    Warning,
}

/// One problem, with a stable code, where it is, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Stable code, `ringfence::<kebab-case>`.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
    /// The primary location and its label, if the problem has one.
    pub primary: Option<(Span, String)>,
    /// Secondary locations (e.g. "first defined here").
    pub labels: Vec<(Span, String)>,
    /// What to do about it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A new error.
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            primary: None,
            labels: Vec::new(),
            help: None,
        }
    }

    /// A new warning.
    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    /// Set the primary location (the first call) or add a secondary one.
    pub fn with_label(mut self, span: Span, text: impl Into<String>) -> Self {
        if self.primary.is_none() {
            self.primary = Some((span, text.into()));
        } else {
            self.labels.push((span, text.into()));
        }
        self
    }

    /// Say what to do.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Where it is, for sorting: file, then offset; diagnostics without a span last.
    pub fn sort_key(&self) -> (usize, usize, usize) {
        match &self.primary {
            Some((s, _)) => (0, s.file, s.offset),
            None => (1, 0, 0),
        }
    }
}

/// All the diagnostics of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Add one.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    /// Whether any is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }

    /// Number of errors.
    pub fn error_count(&self) -> usize {
        self.0
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    /// Number of warnings.
    pub fn warning_count(&self) -> usize {
        self.0
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .count()
    }

    /// Sort by file and position, and drop exact duplicates (parallel stages
    /// finish in any order).
    pub fn sort(&mut self) {
        self.0.sort_by(|a, b| {
            a.sort_key()
                .cmp(&b.sort_key())
                .then_with(|| a.code.cmp(b.code))
                .then_with(|| a.message.cmp(&b.message))
        });
        self.0.dedup();
    }
}

impl Extend<Diagnostic> for Diagnostics {
    fn extend<T: IntoIterator<Item = Diagnostic>>(&mut self, iter: T) {
        self.0.extend(iter);
    }
}
