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
    /// Stable code, `ringfence::<kebab-case>`: a [`Code`]'s string (the
    /// constructors take a [`Code`]).
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
    pub fn error(code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code: code.as_str(),
            message: message.into(),
            primary: None,
            labels: Vec::new(),
            help: None,
        }
    }

    /// A new warning.
    pub fn warning(code: Code, message: impl Into<String>) -> Self {
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

/// Where a code is reported: which stage of the pipeline finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// `ringfence check`: the intent alone (parse, lower, resolve).
    Check,
    /// `ringfence compile` and the queries: intent with the inventory (core).
    Compile,
    /// Rendering: backend plugins (the driver).
    Render,
}

macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident => ($code:literal, $severity:ident, $stage:ident),)*) => {
        /// Every diagnostic code ringfence reports, one variant each: the
        /// only way to give a [`Diagnostic`] its code.
        /// `schema/docs/language/09-diagnostics.md` documents each one (a
        /// test keeps the two in sync, both ways).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $($(#[$doc])* $variant,)*
        }

        impl Code {
            /// All of them, in documentation order: `check`'s errors, then
            /// its warnings, then compile's, then rendering's.
            pub const ALL: &[Code] = &[$(Code::$variant,)*];

            /// The stable string, `ringfence::<kebab-case>` (what the
            /// output and JSON show, and the doc's heading).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $code,)*
                }
            }

            /// The severity it is reported with.
            pub const fn severity(self) -> Severity {
                match self {
                    $(Code::$variant => Severity::$severity,)*
                }
            }

            /// The stage that reports it.
            pub const fn stage(self) -> Stage {
                match self {
                    $(Code::$variant => Stage::$stage,)*
                }
            }
        }
    };
}

codes! {
    /// The file is not valid KDL.
    Syntax => ("ringfence::syntax", Error, Check),
    /// A file beyond the parser's limits (blocks nested too deep, too large).
    Limit => ("ringfence::limit", Error, Check),
    /// A node the language does not have in this place.
    UnknownNode => ("ringfence::unknown-node", Error, Check),
    /// A property the node does not take.
    UnknownProperty => ("ringfence::unknown-property", Error, Check),
    /// A positional value the node does not take.
    UnexpectedArgument => ("ringfence::unexpected-argument", Error, Check),
    /// A `{ … }` block on a node that takes none.
    UnexpectedChildren => ("ringfence::unexpected-children", Error, Check),
    /// A required positional value (a name, a predicate's values) is missing.
    MissingArgument => ("ringfence::missing-argument", Error, Check),
    /// A required property (`from=`, `to=`, `scope=`, …) is missing.
    MissingProperty => ("ringfence::missing-property", Error, Check),
    /// A required child node (a scope's `query`, an external's `cidr`, …) is missing.
    MissingNode => ("ringfence::missing-node", Error, Check),
    /// A node that may appear once appears twice.
    DuplicateNode => ("ringfence::duplicate-node", Error, Check),
    /// A property given twice on one node.
    DuplicateProperty => ("ringfence::duplicate-property", Error, Check),
    /// Two properties (or a property and the block it sits in) that exclude each other.
    ConflictingProperties => ("ringfence::conflicting-properties", Error, Check),
    /// A value of the wrong type or outside the accepted set.
    InvalidValue => ("ringfence::invalid-value", Error, Check),
    /// A name that cannot be used (empty, reserved, or with `:`, `/` or spaces).
    InvalidName => ("ringfence::invalid-name", Error, Check),
    /// An address or prefix that does not parse, or has host bits set.
    InvalidCidr => ("ringfence::invalid-cidr", Error, Check),
    /// A port out of range, a reversed range, or a malformed port list.
    InvalidPort => ("ringfence::invalid-port", Error, Check),
    /// `ports` with a protocol that has no ports (`any`, `icmp`).
    PortsNeedProtocol => ("ringfence::ports-need-protocol", Error, Check),
    /// Two scopes, filters, externals, plugins or policies of one scope share a name.
    DuplicateName => ("ringfence::duplicate-name", Error, Check),
    /// A reference to a name nothing declares.
    UnknownReference => ("ringfence::unknown-reference", Error, Check),
    /// A bare name that several kinds of object carry.
    AmbiguousReference => ("ringfence::ambiguous-reference", Error, Check),
    /// Filters and scopes that refer to each other in a loop.
    ReferenceCycle => ("ringfence::reference-cycle", Error, Check),
    /// `restrict-to-scope=#true` on a filter that has no owner scope.
    RestrictWithoutOwner => ("ringfence::restrict-without-owner", Error, Check),
    /// A cluster named by the queries of two top-level scopes.
    ClusterSplit => ("ringfence::cluster-split", Error, Check),
    /// Two catch-alls for one direction in one scope.
    DuplicateCatchAll => ("ringfence::duplicate-catch-all", Error, Check),
    /// A filter no policy, query or quarantine uses.
    UnusedFilter => ("ringfence::unused-filter", Warning, Check),
    /// A policy identical to an earlier one of the same group.
    DuplicatePolicy => ("ringfence::duplicate-policy", Warning, Check),
    /// A top-level scope without a catch-all for a direction (it allows).
    ImplicitCatchAll => ("ringfence::implicit-catch-all", Warning, Check),
    /// Sibling scopes whose queries show that one contains the other.
    OverlappingScopes => ("ringfence::overlapping-scopes", Warning, Check),
    /// A filter or query with no predicate, which matches everything.
    EmptyQuery => ("ringfence::empty-query", Warning, Check),
    /// A workload in two scopes neither of which is inside the other (seen only with the inventory).
    ScopesShareWorkloads => ("ringfence::scopes-share-workloads", Warning, Compile),
    /// Every rule of a policy, everywhere it applies, is decided earlier.
    ShadowedPolicy => ("ringfence::shadowed-policy", Warning, Compile),
    /// An earlier policy with the opposite action decides part of a later one.
    ConflictingPolicy => ("ringfence::conflicting-policy", Warning, Compile),
    /// A `service:NS/NAME` no cluster has.
    UnknownService => ("ringfence::unknown-service", Warning, Compile),
    /// Policy ports a provided service does not have.
    UnknownServicePort => ("ringfence::unknown-service-port", Warning, Compile),
    /// A named `targetPort` a backing pod does not declare.
    UnresolvedTargetPort => ("ringfence::unresolved-target-port", Warning, Compile),
    /// A pinned plugin when the intent is not read from a working tree.
    PluginUnavailable => ("ringfence::plugin-unavailable", Error, Render),
    /// A pinned plugin that calls itself by another name.
    PluginName => ("ringfence::plugin-name", Error, Render),
    /// A pinned plugin that cannot be read or loaded, or whose digest differs.
    PluginLoad => ("ringfence::plugin-load", Error, Render),
    /// A node whose backend is neither built in nor pinned.
    UnknownBackend => ("ringfence::unknown-backend", Error, Render),
    /// A node whose backend renders for another OS.
    BackendOs => ("ringfence::backend-os", Error, Render),
    /// A policy the node's backend cannot enforce as written.
    BackendCannotEnforce => ("ringfence::backend-cannot-enforce", Error, Render),
    /// Logs or counters a policy asks for that the backend cannot provide.
    BackendTelemetry => ("ringfence::backend-telemetry", Warning, Render),
    /// A warning a backend plugin returned with its output.
    BackendWarning => ("ringfence::backend-warning", Warning, Render),
    /// A backend plugin that failed, or wrote a file the bundle reserves.
    RenderFailed => ("ringfence::render-failed", Error, Render),
    /// nftables output from a backend that reaches beyond `table inet ringfence`.
    BackendUnsafeOutput => ("ringfence::backend-unsafe-output", Error, Render),
}

impl Code {
    /// The anchor of its entry in `schema/docs/language/09-diagnostics.md`
    /// (the heading `` `ringfence::x` `` as GitHub slugs it: `ringfencex`).
    pub fn doc_anchor(self) -> String {
        self.as_str().replace("::", "")
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
