//! The validated intent: what the rest of the compiler consumes.
//!
//! Every name is resolved to an index, every list is in the order that
//! matters, and every item keeps the span it was written at. An [`Intent`]
//! only exists if validation found no errors.

use std::collections::BTreeMap;
use std::sync::Arc;

use ipnet::IpNet;
pub use ringfence_schema::ir::{Action, Direction, Mode, Os};
pub use ringfence_schema::net::{PortRange, Proto};

use crate::location::LineIndex;

/// Index of a file in [`Intent::files`].
pub type FileId = usize;

/// Declare an index into one of the intent's tables: its own type, so it
/// cannot be mixed up with the other tables' indexes.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(u32);

        impl $name {
            /// The index of position `i`.
            #[inline]
            pub fn new(i: usize) -> Self {
                Self(u32::try_from(i).expect("tables hold fewer than 2^32 entries"))
            }

            /// The position it stands for.
            #[inline]
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }
    };
}

id_type!(
    /// Index of a scope in [`Intent::scopes`].
    ScopeId
);

id_type!(
    /// Index of a filter in [`Intent::filters`].
    FilterId
);

id_type!(
    /// Index of an external in [`Intent::externals`].
    ExternalId
);

/// A byte range in one intent file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    /// The file.
    pub file: FileId,
    /// Byte offset of the start.
    pub offset: usize,
    /// Length in bytes.
    pub len: usize,
}

/// One intent file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// Path relative to the intent directory, with `/` separators.
    pub path: String,
    /// The file's text.
    pub text: Arc<str>,
}

impl SourceFile {
    /// A file of `path` holding `text`.
    pub fn new(path: impl Into<String>, text: &str) -> Self {
        SourceFile {
            path: path.into(),
            text: Arc::from(text),
        }
    }

    /// 1-based line and column (in characters) of a byte offset. Only the
    /// text before it is indexed: one call costs a scan to the offset (to
    /// locate many, use a [`Locator`](crate::location::Locator)).
    pub fn line_col(&self, offset: usize) -> (u32, u32) {
        let before = &self.text[..offset.min(self.text.len())];
        LineIndex::new(before).line_col(before, before.len())
    }
}

/// The whole validated intent of a repository.
#[derive(Clone, Debug)]
pub struct Intent {
    /// The files, sorted by path.
    pub files: Vec<SourceFile>,
    /// Scopes in priority order: a parent before its children (pre-order),
    /// siblings in the order they were declared (files by path, then position).
    pub scopes: Vec<Scope>,
    /// Inventory filters, in declaration order.
    pub filters: Vec<Filter>,
    /// Externals, in declaration order.
    pub externals: Vec<External>,
    /// Absolute and default policies, in declaration order within their scope
    /// (files by path, then position). The global order is [`Intent::order`].
    pub policies: Vec<Policy>,
    /// Catch-alls: at most one per scope and direction.
    pub catch_alls: Vec<CatchAll>,
    /// The quarantine block, if any.
    pub quarantine: Option<Quarantine>,
    /// Third-party backend plugins, pinned by digest.
    pub plugins: Vec<PluginPin>,
}

impl Intent {
    /// File, line and column of a span's start.
    pub fn location(&self, span: Span) -> (&str, u32, u32) {
        let f = &self.files[span.file];
        let (line, col) = f.line_col(span.offset);
        (&f.path, line, col)
    }

    /// The scope `s` stands for.
    #[inline]
    pub fn scope(&self, s: ScopeId) -> &Scope {
        &self.scopes[s.index()]
    }

    /// The filter `f` stands for.
    #[inline]
    pub fn filter(&self, f: FilterId) -> &Filter {
        &self.filters[f.index()]
    }

    /// The external `e` stands for.
    #[inline]
    pub fn external(&self, e: ExternalId) -> &External {
        &self.externals[e.index()]
    }

    /// Every scope's id, in table order.
    pub fn scope_ids(&self) -> impl DoubleEndedIterator<Item = ScopeId> + use<> {
        (0..self.scopes.len()).map(ScopeId::new)
    }

    /// Every filter's id, in table order.
    pub fn filter_ids(&self) -> impl DoubleEndedIterator<Item = FilterId> + use<> {
        (0..self.filters.len()).map(FilterId::new)
    }

    /// The chain from a scope up to its top-level scope, the scope first.
    pub fn scope_chain(&self, scope: ScopeId) -> Vec<ScopeId> {
        let mut out = vec![scope];
        let mut s = scope;
        while let Some(p) = self.scope(s).parent {
            out.push(p);
            s = p;
        }
        out
    }

    /// Depth of a scope: 0 for a top-level scope.
    pub fn depth(&self, scope: ScopeId) -> usize {
        self.scope_chain(scope).len() - 1
    }

    /// Indexes into [`Intent::policies`] in the global evaluation order (CSW):
    /// absolute policies of every scope in priority order (parents first),
    /// then default policies in reverse priority order (most specific scope
    /// first); within one scope, declaration order. Catch-alls come after all
    /// of them, most specific scope first, and quarantine before all of them.
    pub fn order(&self) -> Vec<usize> {
        let of = |s: ScopeId, rank: PolicyRank| {
            self.policies
                .iter()
                .enumerate()
                .filter(move |(_, p)| p.scope == s && p.rank == rank)
                .map(|(i, _)| i)
        };
        let mut out = Vec::with_capacity(self.policies.len());
        for s in self.scope_ids() {
            out.extend(of(s, PolicyRank::Absolute));
        }
        for s in self.scope_ids().rev() {
            out.extend(of(s, PolicyRank::Default));
        }
        out
    }

    /// The catch-all of `scope` for `direction`, if it declares one.
    pub fn catch_all(&self, scope: ScopeId, direction: Direction) -> Option<&CatchAll> {
        self.catch_alls
            .iter()
            .find(|c| c.scope == scope && c.direction == direction)
    }

    /// What nodes in a scope do with unknown pods: its own setting, else its
    /// nearest ancestor's, else deny (fail closed).
    pub fn unknown_pods(&self, scope: Option<ScopeId>) -> Action {
        scope
            .into_iter()
            .flat_map(|s| self.scope_chain(s))
            .find_map(|s| self.scope(s).unknown_pods)
            .unwrap_or(Action::Deny)
    }

    /// The enforcement mode of a scope: its own, else its nearest ancestor's,
    /// else enforce.
    pub fn enforcement(&self, scope: ScopeId) -> Mode {
        self.scope_chain(scope)
            .into_iter()
            .find_map(|s| self.scope(s).enforcement)
            .unwrap_or(Mode::Enforce)
    }

    /// Every cluster named by a `cluster` test in a scope's query (or in a
    /// filter it uses), sorted, once each.
    pub fn scope_clusters(&self) -> Vec<String> {
        let mut out = std::collections::BTreeSet::new();
        let mut seen = vec![false; self.filters.len()];
        let mut todo: Vec<&Query> = self.scopes.iter().map(|s| &s.query).collect();
        while let Some(q) = todo.pop() {
            match q {
                Query::All(qs) | Query::Any(qs) => todo.extend(qs),
                Query::Not(q) => todo.push(q),
                Query::Pred(Predicate::Cluster(names), _) => out.extend(names.iter().cloned()),
                Query::Pred(Predicate::Filter(f), _) if !seen[f.index()] => {
                    seen[f.index()] = true;
                    todo.push(&self.filter(*f).query);
                }
                Query::Pred(..) => {}
            }
        }
        out.into_iter().collect()
    }

    /// The backend for nodes of `os` in `scope`: its own setting, else its
    /// nearest ancestor's, else `nftables` (linux) or `windows-firewall` (windows).
    pub fn backend(&self, scope: Option<ScopeId>, os: Os) -> &str {
        scope
            .into_iter()
            .flat_map(|s| self.scope_chain(s))
            .find_map(|s| self.scope(s).backends.get(&os).map(String::as_str))
            .unwrap_or(match os {
                Os::Linux => "nftables",
                Os::Windows => "windows-firewall",
            })
    }
}

/// A scope: a named set of workloads, in a tree.
#[derive(Clone, Debug)]
pub struct Scope {
    /// Name, unique among all scopes.
    pub name: String,
    /// The parent scope; `None` for a top-level scope.
    pub parent: Option<ScopeId>,
    /// Its own query. The effective query is the AND of this and every
    /// ancestor's query.
    pub query: Query,
    /// `enforce` or `analyze`; `None` inherits.
    pub enforcement: Option<Mode>,
    /// What a node does with traffic of pods it does not know yet
    /// (`unknown-pods`); `None` inherits.
    pub unknown_pods: Option<Action>,
    /// Backend per node OS; missing entries inherit.
    pub backends: BTreeMap<Os, String>,
    /// Where it was declared (the `scope` node).
    pub span: Span,
}

/// A named, reusable inventory filter.
#[derive(Clone, Debug)]
pub struct Filter {
    /// Name, unique among filters.
    pub name: String,
    /// The scope it was declared in, if any.
    pub owner: Option<ScopeId>,
    /// If true, the filter only matches inside its owner scope (its query is
    /// ANDed with the owner's effective query). Otherwise it matches anywhere.
    pub restrict_to_scope: bool,
    /// The query.
    pub query: Query,
    /// Where it was declared.
    pub span: Span,
}

/// A named set of addresses outside the cluster.
#[derive(Clone, Debug)]
pub struct External {
    /// Name, unique among externals.
    pub name: String,
    /// Its prefixes (IPv4 and IPv6).
    pub nets: Vec<IpNet>,
    /// Labels, so filters can select externals.
    pub labels: BTreeMap<String, String>,
    /// Where it was declared.
    pub span: Span,
}

/// Kinds of workload a query can match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkloadKind {
    /// A pod.
    Pod,
    /// A Kubernetes service.
    Service,
    /// A node.
    Node,
    /// A declared external.
    External,
}

/// A boolean query over workload attributes.
#[derive(Clone, Debug, PartialEq)]
pub enum Query {
    /// All of them (an empty list matches everything).
    All(Vec<Query>),
    /// Any of them (an empty list matches nothing).
    Any(Vec<Query>),
    /// Not this.
    Not(Box<Query>),
    /// One test, with where it was written.
    Pred(Predicate, Span),
}

/// One test of a workload attribute. Lists mean "any of".
#[derive(Clone, Debug, PartialEq)]
pub enum Predicate {
    /// The workload's cluster is one of these.
    Cluster(Vec<String>),
    /// The workload's namespace is one of these.
    Namespace(Vec<String>),
    /// The label `key` exists (`values` empty) or has one of `values`.
    Label {
        /// Label key.
        key: String,
        /// Accepted values; empty means "exists".
        values: Vec<String>,
    },
    /// The workload is of one of these kinds.
    Kind(Vec<WorkloadKind>),
    /// The workload's name matches one of these globs (`*`, `?`).
    Name(Vec<String>),
    /// The workload runs on (or is) a node whose name matches one of these globs.
    Node(Vec<String>),
    /// The workload runs on (or is) a node with this OS.
    Os(Os),
    /// One of the workload's addresses is inside one of these prefixes.
    Address(Vec<IpNet>),
    /// The workload's vulnerability score (highest CVSS of its images) is at least this.
    CvssAtLeast(f64),
    /// The workload matches this filter.
    Filter(FilterId),
    /// The workload is in this scope (its effective query).
    Scope(ScopeId),
}

/// Absolute or default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyRank {
    /// Cannot be overridden by lower-priority or child scopes.
    Absolute,
    /// Can be overridden by child scopes.
    Default,
}

/// A consumer or provider of a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Every address.
    Any,
    /// The workloads a filter matches.
    Filter(FilterId),
    /// The workloads in a scope.
    Scope(ScopeId),
    /// A Kubernetes service: as provider, its backing pods on the target
    /// ports (and its node ports for NodePort/LoadBalancer services).
    Service {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// A declared external.
    External(ExternalId),
}

/// What a policy does with the connections it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyAction {
    /// Allow: final.
    Allow,
    /// Deny: final.
    Deny,
    /// Skip the rest of the policy's group: an absolute `pass` hands the
    /// connection to the default policies, a default `pass` to the catch-alls.
    Pass,
}

impl PolicyAction {
    /// The decision it makes, `None` for `pass`.
    pub fn decision(self) -> Option<Action> {
        match self {
            PolicyAction::Allow => Some(Action::Allow),
            PolicyAction::Deny => Some(Action::Deny),
            PolicyAction::Pass => None,
        }
    }

    /// `allow`, `deny` or `pass`, as written.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyAction::Allow => "allow",
            PolicyAction::Deny => "deny",
            PolicyAction::Pass => "pass",
        }
    }
}

impl std::fmt::Display for PolicyAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Action> for PolicyAction {
    fn from(a: Action) -> Self {
        match a {
            Action::Allow => PolicyAction::Allow,
            Action::Deny => PolicyAction::Deny,
        }
    }
}

/// One absolute or default policy.
#[derive(Clone, Debug)]
pub struct Policy {
    /// `<scope>/<name>`, unique.
    pub id: String,
    /// The name as written, or `line-<N>` when unnamed.
    pub name: String,
    /// The scope whose policy list holds it.
    pub scope: ScopeId,
    /// Absolute or default.
    pub rank: PolicyRank,
    /// Allow, deny or pass.
    pub action: PolicyAction,
    /// The one side that enforces it (`side="ingress"`: the provider's
    /// ingress; `side="egress"`: the consumer's egress); `None` for both.
    pub side: Option<Direction>,
    /// Who opens the connection.
    pub consumer: Target,
    /// Who accepts it.
    pub provider: Target,
    /// Protocol (`any` for all).
    pub proto: Proto,
    /// Port numbers, normalised. With `named_ports` also empty, every port.
    pub ports: Vec<PortRange>,
    /// Named ports: container port names, resolved on each provider pod
    /// (with `proto="any"`, whatever the container port's protocol), sorted.
    pub named_ports: Vec<String>,
    /// Log matches.
    pub log: bool,
    /// Free text.
    pub comment: Option<String>,
    /// The whole policy node.
    pub span: Span,
}

/// A scope's catch-all for one direction.
#[derive(Clone, Debug)]
pub struct CatchAll {
    /// The scope.
    pub scope: ScopeId,
    /// Ingress (traffic to the scope's workloads) or egress (from them).
    pub direction: Direction,
    /// Allow or deny.
    pub action: Action,
    /// Where it was written.
    pub span: Span,
}

/// Workloads cut off from everything except listed management flows.
#[derive(Clone, Debug)]
pub struct Quarantine {
    /// The filters naming quarantined workloads.
    pub filters: Vec<FilterId>,
    /// Flows still allowed.
    pub exceptions: Vec<QuarantineException>,
    /// The `quarantine` node.
    pub span: Span,
}

/// A management flow a quarantined workload keeps.
#[derive(Clone, Debug)]
pub struct QuarantineException {
    /// `quarantine/<name>`.
    pub id: String,
    /// The name as written, or `line-<N>`.
    pub name: String,
    /// Ingress: from `peer` to quarantined workloads. Egress: from them to `peer`.
    pub direction: Direction,
    /// The other side.
    pub peer: Target,
    /// Protocol.
    pub proto: Proto,
    /// Ports, normalised; empty means all.
    pub ports: Vec<PortRange>,
    /// Where it was written.
    pub span: Span,
}

/// A third-party backend plugin the intent trusts.
#[derive(Clone, Debug)]
pub struct PluginPin {
    /// The backend name it must report.
    pub name: String,
    /// Path of the `.wasm`, relative to the intent directory.
    pub path: String,
    /// Expected hex SHA-256 of the file.
    pub sha256: String,
    /// Where it was declared.
    pub span: Span,
}

/// Why `name` is not a valid container port name (Kubernetes' IANA_SVC_NAME:
/// 1-15 lowercase letters, digits and dashes, at least one letter, no dash at
/// either end or next to another), or `None` if it is one.
pub fn port_name_problem(name: &str) -> Option<&'static str> {
    if name.len() > 15 {
        Some("is longer than 15 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Some("may only have lowercase letters, digits and dashes")
    } else if !name.bytes().any(|b| b.is_ascii_lowercase()) {
        Some("needs at least one letter")
    } else if name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        Some("may not start or end with a dash or have two in a row")
    } else {
        None
    }
}

/// A `ports=` value as intent writes it: the numbers, then the names,
/// comma-separated (`80,8000-8100,http`); empty for none.
pub fn ports_value(numbers: &[PortRange], names: &[String]) -> String {
    let words: Vec<String> = numbers
        .iter()
        .map(|r| r.to_string())
        .chain(names.iter().cloned())
        .collect();
    words.join(",")
}
