//! The intent as written: every node lowered from KDL into typed items whose
//! names are not resolved yet. Items keep the spans diagnostics point at.

use std::collections::BTreeMap;

use ipnet::IpNet;

use crate::model::{
    Action, Direction, FileId, Mode, Os, PolicyAction, PolicyRank, PortRange, Predicate, Proto,
    Span,
};

/// A name as written, with where.
#[derive(Clone, Debug)]
pub(crate) struct Name {
    pub(crate) text: String,
    pub(crate) span: Span,
}

/// Who a scope's parent is.
#[derive(Clone, Debug)]
pub(crate) enum ScopeLink {
    /// A top-level scope.
    Top,
    /// Declared inside this raw scope.
    Inline(usize),
    /// `parent="NAME"`.
    Named(Name),
}

/// The scope an item belongs to.
#[derive(Clone, Debug)]
pub(crate) enum Owner {
    /// None given (a top-level filter) or the `scope=` was missing (already reported).
    None,
    /// Declared inside this raw scope.
    Inline(usize),
    /// `scope="NAME"`.
    Named(Name),
}

#[derive(Clone, Debug)]
pub(crate) struct RawScope {
    pub(crate) name: Name,
    pub(crate) parent: ScopeLink,
    pub(crate) query: Option<RawQuery>,
    pub(crate) enforcement: Option<Mode>,
    pub(crate) unknown_pods: Option<Action>,
    pub(crate) backends: BTreeMap<Os, Name>,
    /// The whole `scope` node.
    pub(crate) span: Span,
}

#[derive(Clone, Debug)]
pub(crate) struct RawFilter {
    pub(crate) name: Name,
    pub(crate) owner: Owner,
    /// Where `restrict-to-scope=#true` was written, if it was.
    pub(crate) restrict: Option<Span>,
    pub(crate) query: RawQuery,
    pub(crate) span: Span,
}

#[derive(Clone, Debug)]
pub(crate) struct RawExternal {
    pub(crate) name: Name,
    pub(crate) nets: Vec<IpNet>,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) span: Span,
}

/// A query whose `matches` and `in-scope` names are not resolved yet.
#[derive(Clone, Debug)]
pub(crate) enum RawQuery {
    All(Vec<RawQuery>),
    Any(Vec<RawQuery>),
    Not(Box<RawQuery>),
    Pred(RawPred, Span),
}

#[derive(Clone, Debug)]
pub(crate) enum RawPred {
    /// A predicate that names nothing.
    Plain(Predicate),
    /// `matches "FILTER"`.
    Matches(Name),
    /// `in-scope "SCOPE"`.
    InScope(Name),
}

/// A consumer or provider as written.
#[derive(Clone, Debug)]
pub(crate) struct RawRef {
    pub(crate) kind: RefKind,
    /// The value (the quoted string).
    pub(crate) span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RefKind {
    Any,
    Bare(String),
    Filter(String),
    Scope(String),
    External(String),
    Service { namespace: String, name: String },
}

#[derive(Clone, Debug)]
pub(crate) struct RawPolicy {
    pub(crate) owner: Owner,
    pub(crate) rank: PolicyRank,
    pub(crate) action: PolicyAction,
    pub(crate) side: Option<Direction>,
    pub(crate) name: Option<Name>,
    /// 1-based line of the node, for unnamed policies.
    pub(crate) line: u32,
    pub(crate) from: RawRef,
    pub(crate) to: RawRef,
    pub(crate) proto: Proto,
    pub(crate) ports: Vec<PortRange>,
    pub(crate) named_ports: Vec<String>,
    pub(crate) log: bool,
    pub(crate) comment: Option<String>,
    /// The whole node.
    pub(crate) span: Span,
    /// The node's name (`allow`/`deny`), for labels.
    pub(crate) head: Span,
}

#[derive(Clone, Debug)]
pub(crate) struct RawCatchAll {
    pub(crate) owner: Owner,
    pub(crate) direction: Direction,
    /// `None` if the value was invalid (already reported).
    pub(crate) action: Option<Action>,
    /// The `ingress=`/`egress=` property.
    pub(crate) span: Span,
}

#[derive(Clone, Debug)]
pub(crate) struct RawQuarantine {
    pub(crate) workloads: Vec<Name>,
    pub(crate) exceptions: Vec<RawException>,
    pub(crate) span: Span,
    /// The `quarantine` name, for labels.
    pub(crate) head: Span,
}

#[derive(Clone, Debug)]
pub(crate) struct RawException {
    pub(crate) name: Option<Name>,
    pub(crate) line: u32,
    pub(crate) direction: Direction,
    pub(crate) peer: RawRef,
    pub(crate) proto: Proto,
    pub(crate) ports: Vec<PortRange>,
    pub(crate) span: Span,
}

#[derive(Clone, Debug)]
pub(crate) struct RawPlugin {
    pub(crate) name: Name,
    pub(crate) path: String,
    pub(crate) sha256: String,
    pub(crate) span: Span,
}

/// Everything declared in every file, in declaration order (files in the
/// order given, then position).
#[derive(Debug, Default)]
pub(crate) struct Ast {
    pub(crate) scopes: Vec<RawScope>,
    pub(crate) filters: Vec<RawFilter>,
    pub(crate) externals: Vec<RawExternal>,
    pub(crate) policies: Vec<RawPolicy>,
    pub(crate) catch_alls: Vec<RawCatchAll>,
    pub(crate) quarantines: Vec<RawQuarantine>,
    pub(crate) plugins: Vec<RawPlugin>,
    /// Files that did not parse completely: names declared in their unparsed
    /// part are unknown, so "unknown" and "unused" findings are not reliable.
    pub(crate) partial_files: Vec<FileId>,
}
