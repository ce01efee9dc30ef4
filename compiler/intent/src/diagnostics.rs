//! Diagnostics: what every stage reports about intent, with spans.
//!
//! A stage never stops at the first problem in user input; it collects
//! [`Diagnostic`]s, which are sorted by file and position before rendering.

use crate::model::{SourceFile, Span};

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

    /// Path, 1-based line and column of the primary span, if it has one in
    /// `files`.
    pub fn location<'f>(&self, files: &'f [SourceFile]) -> Option<(&'f str, u32, u32)> {
        let (span, _) = self.primary.as_ref()?;
        let f = files.get(span.file)?;
        let (line, col) = f.line_col(span.offset);
        Some((&f.path, line, col))
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

/// Every code `ringfence check` reports. `schema/docs/language/09-diagnostics.md`
/// documents each one (a test keeps the two in sync).
pub mod codes {
    /// The file is not valid KDL.
    pub const SYNTAX: &str = "ringfence::syntax";
    /// A file beyond the parser's limits (blocks nested too deep, too large).
    pub const LIMIT: &str = "ringfence::limit";
    /// A node the language does not have in this place.
    pub const UNKNOWN_NODE: &str = "ringfence::unknown-node";
    /// A property the node does not take.
    pub const UNKNOWN_PROPERTY: &str = "ringfence::unknown-property";
    /// A positional value the node does not take.
    pub const UNEXPECTED_ARGUMENT: &str = "ringfence::unexpected-argument";
    /// A `{ … }` block on a node that takes none.
    pub const UNEXPECTED_CHILDREN: &str = "ringfence::unexpected-children";
    /// A required positional value (a name, a predicate's values) is missing.
    pub const MISSING_ARGUMENT: &str = "ringfence::missing-argument";
    /// A required property (`from=`, `to=`, `scope=`, …) is missing.
    pub const MISSING_PROPERTY: &str = "ringfence::missing-property";
    /// A required child node (a scope's `query`, an external's `cidr`, …) is missing.
    pub const MISSING_NODE: &str = "ringfence::missing-node";
    /// A node that may appear once appears twice.
    pub const DUPLICATE_NODE: &str = "ringfence::duplicate-node";
    /// A property given twice on one node.
    pub const DUPLICATE_PROPERTY: &str = "ringfence::duplicate-property";
    /// Two properties (or a property and the block it sits in) that exclude each other.
    pub const CONFLICTING_PROPERTIES: &str = "ringfence::conflicting-properties";
    /// A value of the wrong type or outside the accepted set.
    pub const INVALID_VALUE: &str = "ringfence::invalid-value";
    /// A name that cannot be used (empty, reserved, or with `:`, `/` or spaces).
    pub const INVALID_NAME: &str = "ringfence::invalid-name";
    /// An address or prefix that does not parse, or has host bits set.
    pub const INVALID_CIDR: &str = "ringfence::invalid-cidr";
    /// A port out of range, a reversed range, or a malformed port list.
    pub const INVALID_PORT: &str = "ringfence::invalid-port";
    /// `ports` with a protocol that has no ports (`any`, `icmp`).
    pub const PORTS_NEED_PROTOCOL: &str = "ringfence::ports-need-protocol";
    /// Two scopes, filters, externals, plugins or policies of one scope share a name.
    pub const DUPLICATE_NAME: &str = "ringfence::duplicate-name";
    /// A reference to a name nothing declares.
    pub const UNKNOWN_REFERENCE: &str = "ringfence::unknown-reference";
    /// A bare name that several kinds of object carry.
    pub const AMBIGUOUS_REFERENCE: &str = "ringfence::ambiguous-reference";
    /// Filters and scopes that refer to each other in a loop.
    pub const REFERENCE_CYCLE: &str = "ringfence::reference-cycle";
    /// `restrict-to-scope=#true` on a filter that has no owner scope.
    pub const RESTRICT_WITHOUT_OWNER: &str = "ringfence::restrict-without-owner";
    /// A cluster named by the queries of two top-level scopes.
    pub const CLUSTER_SPLIT: &str = "ringfence::cluster-split";
    /// Two catch-alls for one direction in one scope.
    pub const DUPLICATE_CATCH_ALL: &str = "ringfence::duplicate-catch-all";
    /// Warning: a filter no policy, query or quarantine uses.
    pub const UNUSED_FILTER: &str = "ringfence::unused-filter";
    /// Warning: a policy identical to an earlier one of the same group.
    pub const DUPLICATE_POLICY: &str = "ringfence::duplicate-policy";
    /// Warning: a top-level scope without a catch-all for a direction (it allows).
    pub const IMPLICIT_CATCH_ALL: &str = "ringfence::implicit-catch-all";
    /// Warning: sibling scopes whose queries show that one contains the other.
    pub const OVERLAPPING_SCOPES: &str = "ringfence::overlapping-scopes";
    /// Warning: a filter or query with no predicate, which matches everything.
    pub const EMPTY_QUERY: &str = "ringfence::empty-query";

    /// All of them, errors first, in documentation order.
    pub const ALL: &[&str] = &[
        SYNTAX,
        LIMIT,
        UNKNOWN_NODE,
        UNKNOWN_PROPERTY,
        UNEXPECTED_ARGUMENT,
        UNEXPECTED_CHILDREN,
        MISSING_ARGUMENT,
        MISSING_PROPERTY,
        MISSING_NODE,
        DUPLICATE_NODE,
        DUPLICATE_PROPERTY,
        CONFLICTING_PROPERTIES,
        INVALID_VALUE,
        INVALID_NAME,
        INVALID_CIDR,
        INVALID_PORT,
        PORTS_NEED_PROTOCOL,
        DUPLICATE_NAME,
        UNKNOWN_REFERENCE,
        AMBIGUOUS_REFERENCE,
        REFERENCE_CYCLE,
        RESTRICT_WITHOUT_OWNER,
        CLUSTER_SPLIT,
        DUPLICATE_CATCH_ALL,
        UNUSED_FILTER,
        DUPLICATE_POLICY,
        IMPLICIT_CATCH_ALL,
        OVERLAPPING_SCOPES,
        EMPTY_QUERY,
    ];
}

/// The closest of `candidates` to `name`, if one is close enough to be a typo.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(name, c);
        if score >= 0.8 && best.is_none_or(|(b, bc)| score > b || (score == b && c < bc)) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c)
}
