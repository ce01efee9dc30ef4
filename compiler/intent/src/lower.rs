//! Lowering: walk each KDL document and build the [`Ast`], checking
//! everything one node can tell on its own: node and property names, value
//! types, addresses, ports, protocols, names. Names are resolved later.
//!
//! This file lowers each item (scopes, filters, externals, policies,
//! catch-alls, quarantine, plugins) and checks every node's shape (entries,
//! children, unknown or missing names); [`values`] reads the values in them
//! and [`query`] their queries.

mod query;
mod values;

use std::collections::BTreeMap;

use kdl::{KdlDocument, KdlEntry, KdlNode};

use crate::ast::*;
use crate::diagnostics::{Code, Diagnostic, did_you_mean};
use crate::location::LineIndex;
use crate::model::{Action, Direction, FileId, Mode, Os, PolicyAction, PolicyRank, Span};

const TOP_NODES: &[&str] = &[
    "scope",
    "filter",
    "external",
    "policies",
    "quarantine",
    "plugin",
];
const SCOPE_NODES: &[&str] = &[
    "query",
    "scope",
    "filter",
    "absolute",
    "default",
    "catch-all",
    "enforcement",
    "unknown-pods",
    "backend",
];
const GROUP_NODES: &[&str] = &["absolute", "default", "catch-all"];
const PREDICATES: &[&str] = &[
    "cluster",
    "namespace",
    "label",
    "kind",
    "name",
    "node",
    "os",
    "address",
    "cvss",
    "matches",
    "in-scope",
    "all",
    "any",
    "not",
];
const POLICY_PROPS: &[&str] = &["from", "to", "proto", "ports", "side", "log", "comment"];
const POLICY_USAGE: &str = "allow|deny|pass [\"NAME\"] from=REF to=REF [proto=P] [ports=PORTS] \
                            [side=\"ingress|egress\"] [log=#true] [comment=\"…\"]";

/// Lower one document into `ast`, reporting into `diags`.
pub(crate) fn lower(
    file: FileId,
    lines: &LineIndex,
    doc: &KdlDocument,
    ast: &mut Ast,
    diags: &mut Vec<Diagnostic>,
) {
    let mut cx = Lower {
        file,
        lines,
        ast,
        diags,
    };
    for node in doc.nodes() {
        cx.top(node);
    }
}

/// Whether a node has no child node (no block, or an empty one).
fn no_nodes(n: &KdlNode) -> bool {
    n.children().is_none_or(|c| c.nodes().is_empty())
}

struct Lower<'a> {
    file: FileId,
    lines: &'a LineIndex,
    ast: &'a mut Ast,
    diags: &'a mut Vec<Diagnostic>,
}

/// A node's positional values and properties, once checked against what it takes.
struct Entries<'n> {
    args: Vec<&'n KdlEntry>,
    props: BTreeMap<&'n str, &'n KdlEntry>,
}

impl<'n> Entries<'n> {
    fn prop(&self, key: &str) -> Option<&'n KdlEntry> {
        self.props.get(key).copied()
    }
}

impl Lower<'_> {
    // ---- spans -------------------------------------------------------------

    fn span(&self, s: miette::SourceSpan) -> Span {
        Span {
            file: self.file,
            offset: s.offset(),
            len: s.len(),
        }
    }

    fn head(&self, n: &KdlNode) -> Span {
        self.span(n.name().span())
    }

    /// The value of an entry, without its `key=`.
    fn value_span(&self, e: &KdlEntry) -> Span {
        let s = self.span(e.span());
        match e.format() {
            Some(f) if f.value_repr.len() <= s.len => Span {
                offset: s.offset + s.len - f.value_repr.len(),
                len: f.value_repr.len(),
                ..s
            },
            _ => s,
        }
    }

    fn key_span(&self, e: &KdlEntry) -> Span {
        match e.name() {
            Some(k) => self.span(k.span()),
            None => self.span(e.span()),
        }
    }

    fn line(&self, n: &KdlNode) -> u32 {
        self.lines.line(n.name().span().offset())
    }

    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    // ---- generic checks ------------------------------------------------------

    /// Check a node's entries: only `props` as properties, each once, and at
    /// most `max_args` positional values.
    fn entries<'n>(
        &mut self,
        n: &'n KdlNode,
        props: &[&str],
        max_args: usize,
        usage: &str,
    ) -> Entries<'n> {
        let mut out = Entries {
            args: Vec::new(),
            props: BTreeMap::new(),
        };
        let node = n.name().value();
        for e in n.entries() {
            match e.name() {
                Some(key) => {
                    let k = key.value();
                    if !props.contains(&k) {
                        let help = match did_you_mean(k, props.iter().copied()) {
                            Some(s) => format!("did you mean `{s}=`? usage: {usage}"),
                            None if props.is_empty() => {
                                format!("`{node}` takes no properties; usage: {usage}")
                            }
                            None => format!("usage: {usage}"),
                        };
                        let d = Diagnostic::error(
                            Code::UnknownProperty,
                            format!("`{node}` has no property `{k}`"),
                        )
                        .with_label(self.key_span(e), "unknown property")
                        .with_help(help);
                        self.push(d);
                    } else if let Some(first) = out.props.get(k) {
                        let d = Diagnostic::error(
                            Code::DuplicateProperty,
                            format!("`{k}=` is given twice"),
                        )
                        .with_label(self.key_span(e), "given again here")
                        .with_label(self.key_span(first), "first given here")
                        .with_help(format!("keep one `{k}=`"));
                        self.push(d);
                    } else {
                        out.props.insert(k, e);
                    }
                }
                None => {
                    if out.args.len() == max_args {
                        let what = match max_args {
                            0 => format!("`{node}` takes no positional value"),
                            1 => format!("`{node}` takes one positional value"),
                            m => format!("`{node}` takes at most {m} positional values"),
                        };
                        let d = Diagnostic::error(
                            Code::UnexpectedArgument,
                            format!("unexpected value {}: {what}", e.value()),
                        )
                        .with_label(self.value_span(e), "unexpected")
                        .with_help(format!("usage: {usage}"));
                        self.push(d);
                    } else {
                        out.args.push(e);
                    }
                }
            }
        }
        out
    }

    /// Report a `{ … }` block on a node that takes none.
    fn no_children(&mut self, n: &KdlNode, usage: &str) {
        if n.children().is_some() {
            let d = Diagnostic::error(
                Code::UnexpectedChildren,
                format!("`{}` takes no `{{ … }}` block", n.name().value()),
            )
            .with_label(self.head(n), "this node has a block")
            .with_help(format!("remove the block; usage: {usage}"));
            self.push(d);
        }
    }

    fn unknown_node(&mut self, n: &KdlNode, allowed: &[&str], place: &str) {
        let name = n.name().value();
        let help = match did_you_mean(name, allowed.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => {
                let hint = if TOP_NODES.contains(&name) {
                    format!("`{name}` is only allowed at the top level of a file; ")
                } else if GROUP_NODES.contains(&name) || SCOPE_NODES.contains(&name) {
                    format!("`{name}` belongs directly inside a `scope` block; ")
                } else if PREDICATES.contains(&name) {
                    format!("`{name}` is a predicate: it belongs in a `query` or a filter; ")
                } else if name == "allow" || name == "deny" {
                    "policies go in an `absolute { … }` or `default { … }` block; ".to_string()
                } else {
                    String::new()
                };
                format!("{hint}{place} takes: {}", allowed.join(", "))
            }
        };
        let d = Diagnostic::error(
            Code::UnknownNode,
            format!("unknown node `{name}` in {place}"),
        )
        .with_label(self.head(n), "unknown here")
        .with_help(help);
        self.push(d);
    }

    fn missing_property(&mut self, n: &KdlNode, key: &str, usage: &str) {
        let d = Diagnostic::error(
            Code::MissingProperty,
            format!("`{}` needs `{key}=`", n.name().value()),
        )
        .with_label(self.head(n), format!("`{key}=` missing"))
        .with_help(format!("usage: {usage}"));
        self.push(d);
    }

    fn missing_argument(&mut self, n: &KdlNode, what: &str, usage: &str) {
        let d = Diagnostic::error(
            Code::MissingArgument,
            format!("`{}` needs {what}", n.name().value()),
        )
        .with_label(self.head(n), format!("{what} missing"))
        .with_help(format!("usage: {usage}"));
        self.push(d);
    }

    // ---- nodes -----------------------------------------------------------------

    fn top(&mut self, n: &KdlNode) {
        match n.name().value() {
            "scope" => self.scope(n, None),
            "filter" => self.filter(n, None),
            "external" => self.external(n),
            "policies" => self.policies(n),
            "quarantine" => self.quarantine(n),
            "plugin" => self.plugin(n),
            _ => self.unknown_node(n, TOP_NODES, "a file's top level"),
        }
    }

    fn scope(&mut self, n: &KdlNode, inline_parent: Option<usize>) {
        const USAGE: &str = "scope \"NAME\" [parent=\"NAME\"] { query { … } … }";
        let ents = self.entries(n, &["parent"], 1, USAGE);
        let name = match ents.args.first() {
            Some(e) => self.name(e, "scope"),
            None => {
                self.missing_argument(n, "a name", USAGE);
                None
            }
        };
        let parent = match (inline_parent, ents.prop("parent")) {
            (Some(p), Some(e)) => {
                let d = Diagnostic::error(
                    Code::ConflictingProperties,
                    "a scope declared inside another cannot also name a `parent=`",
                )
                .with_label(self.key_span(e), "`parent=` here")
                .with_help("remove `parent=`, or move the scope to the top level of a file");
                self.push(d);
                ScopeLink::Inline(p)
            }
            (Some(p), None) => ScopeLink::Inline(p),
            (None, Some(e)) => match self.reference_name(e, "`parent`") {
                Some(p) => ScopeLink::Named(p),
                None => ScopeLink::Top,
            },
            (None, None) => ScopeLink::Top,
        };
        let idx = self.ast.scopes.len();
        let head = self.head(n);
        self.ast.scopes.push(RawScope {
            // A scope without a valid name still has its body checked; the
            // empty name is never looked up.
            name: name.unwrap_or(Name {
                text: String::new(),
                span: head,
            }),
            parent,
            query: None,
            enforcement: None,
            unknown_pods: None,
            backends: BTreeMap::new(),
            span: self.span(n.span()),
        });
        let mut query_at: Option<Span> = None;
        let mut enforcement_at: Option<Span> = None;
        let mut unknown_at: Option<Span> = None;
        let mut backend_at: Option<Span> = None;
        for c in n.iter_children() {
            match c.name().value() {
                "query" => {
                    if self.once(c, &mut query_at, "query") {
                        let q = self.query_block(c);
                        self.ast.scopes[idx].query = Some(q);
                    }
                }
                "scope" => self.scope(c, Some(idx)),
                "filter" => self.filter(c, Some(idx)),
                "absolute" => self.group(c, Owner::Inline(idx), PolicyRank::Absolute),
                "default" => self.group(c, Owner::Inline(idx), PolicyRank::Default),
                "catch-all" => self.catch_all(c, Owner::Inline(idx)),
                "enforcement" => {
                    if self.once(c, &mut enforcement_at, "enforcement") {
                        self.enforcement(c, idx);
                    }
                }
                "unknown-pods" => {
                    if self.once(c, &mut unknown_at, "unknown-pods") {
                        self.unknown_pods(c, idx);
                    }
                }
                "backend" => {
                    if self.once(c, &mut backend_at, "backend") {
                        self.backend(c, idx);
                    }
                }
                _ => self.unknown_node(c, SCOPE_NODES, "a `scope` block"),
            }
        }
        if query_at.is_none() {
            let s = &self.ast.scopes[idx];
            let label = if s.name.text.is_empty() {
                "this scope has no `query`".to_string()
            } else {
                format!("scope `{}` has no `query`", s.name.text)
            };
            let d = Diagnostic::error(Code::MissingNode, "a scope needs a `query`")
                .with_label(head, label)
                .with_help(
                    "add `query { … }` with the predicates that select the scope's workloads, \
                     e.g. `query { namespace \"shop\" }`",
                );
            self.push(d);
        }
    }

    /// Whether this is the first `what` node of its block; reports the second.
    fn once(&mut self, n: &KdlNode, seen: &mut Option<Span>, what: &str) -> bool {
        let here = self.head(n);
        match *seen {
            Some(first) => {
                let d = Diagnostic::error(
                    Code::DuplicateNode,
                    format!("`{what}` is given twice in one block"),
                )
                .with_label(here, "given again here")
                .with_label(first, "first given here")
                .with_help(format!("merge the two `{what}` nodes into one"));
                self.push(d);
                false
            }
            None => {
                *seen = Some(here);
                true
            }
        }
    }

    fn enforcement(&mut self, n: &KdlNode, scope: usize) {
        const USAGE: &str = "enforcement \"enforce\"|\"analyze\"";
        let ents = self.entries(n, &[], 1, USAGE);
        self.no_children(n, USAGE);
        match ents.args.first() {
            Some(e) => {
                let m = self.one_of(
                    e,
                    "enforcement",
                    &[("enforce", Mode::Enforce), ("analyze", Mode::Analyze)],
                );
                self.ast.scopes[scope].enforcement = m;
            }
            None => self.missing_argument(n, "a mode", USAGE),
        }
    }

    fn unknown_pods(&mut self, n: &KdlNode, scope: usize) {
        const USAGE: &str = "unknown-pods \"deny\"|\"allow\"";
        let ents = self.entries(n, &[], 1, USAGE);
        self.no_children(n, USAGE);
        match ents.args.first() {
            Some(e) => {
                let a = self.one_of(
                    e,
                    "unknown-pods",
                    &[("deny", Action::Deny), ("allow", Action::Allow)],
                );
                self.ast.scopes[scope].unknown_pods = a;
            }
            None => self.missing_argument(n, "deny or allow", USAGE),
        }
    }

    fn backend(&mut self, n: &KdlNode, scope: usize) {
        const USAGE: &str = "backend [linux=\"NAME\"] [windows=\"NAME\"]";
        let ents = self.entries(n, &["linux", "windows"], 0, USAGE);
        self.no_children(n, USAGE);
        if ents.props.is_empty() {
            self.missing_property(n, "linux", USAGE);
        }
        for (key, os) in [("linux", Os::Linux), ("windows", Os::Windows)] {
            if let Some(e) = ents.prop(key)
                && let Some(name) = self.reference_name(e, "a backend name")
            {
                self.ast.scopes[scope].backends.insert(os, name);
            }
        }
    }

    fn filter(&mut self, n: &KdlNode, inline_owner: Option<usize>) {
        const USAGE: &str =
            "filter \"NAME\" [scope=\"NAME\"] [restrict-to-scope=#true] { PREDICATES }";
        let ents = self.entries(n, &["scope", "restrict-to-scope"], 1, USAGE);
        let name = match ents.args.first() {
            Some(e) => self.name(e, "filter"),
            None => {
                self.missing_argument(n, "a name", USAGE);
                None
            }
        };
        let owner = match (inline_owner, ents.prop("scope")) {
            (Some(s), Some(e)) => {
                let d = Diagnostic::error(
                    Code::ConflictingProperties,
                    "a filter declared inside a scope is owned by it and cannot name `scope=`",
                )
                .with_label(self.key_span(e), "`scope=` here")
                .with_help("remove `scope=`, or move the filter to the top level of a file");
                self.push(d);
                Owner::Inline(s)
            }
            (Some(s), None) => Owner::Inline(s),
            (None, Some(e)) => match self.reference_name(e, "`scope`") {
                Some(s) => Owner::Named(s),
                None => Owner::None,
            },
            (None, None) => Owner::None,
        };
        let restrict = match ents.prop("restrict-to-scope") {
            Some(e) => match self.boolean(e, "`restrict-to-scope`") {
                Some(true) => Some(self.span(e.span())),
                _ => None,
            },
            None => None,
        };
        let preds = self.predicates(n);
        if no_nodes(n) {
            self.empty_query(n, "filter");
        }
        if let Some(name) = name {
            self.ast.filters.push(RawFilter {
                name,
                owner,
                restrict,
                query: RawQuery::All(preds),
                span: self.span(n.span()),
            });
        }
    }

    fn external(&mut self, n: &KdlNode) {
        const USAGE: &str = "external \"NAME\" { cidr \"PREFIX\" …; label \"KEY\" \"VALUE\" }";
        let ents = self.entries(n, &[], 1, USAGE);
        let name = match ents.args.first() {
            Some(e) => self.name(e, "external"),
            None => {
                self.missing_argument(n, "a name", USAGE);
                None
            }
        };
        let mut nets = Vec::new();
        let mut labels = BTreeMap::new();
        let mut has_cidr = false;
        for c in n.iter_children() {
            match c.name().value() {
                "cidr" => {
                    has_cidr = true;
                    const U: &str = "cidr \"PREFIX\" [\"PREFIX\" …]";
                    self.no_children(c, U);
                    let ents = self.entries(c, &[], usize::MAX, U);
                    if ents.args.is_empty() {
                        self.missing_argument(c, "an address or prefix", U);
                    }
                    nets.extend(ents.args.iter().filter_map(|e| self.cidr(e)));
                }
                "label" => {
                    const U: &str = "label \"KEY\" \"VALUE\"";
                    self.no_children(c, U);
                    let ents = self.entries(c, &[], 2, U);
                    if ents.args.len() < 2 {
                        self.missing_argument(c, "a key and a value", U);
                        continue;
                    }
                    if let (Some(k), Some(v)) = (
                        self.string(ents.args[0], "a label key"),
                        self.string(ents.args[1], "a label value"),
                    ) {
                        labels.insert(k, v);
                    }
                }
                _ => self.unknown_node(c, &["cidr", "label"], "an `external` block"),
            }
        }
        if !has_cidr {
            let d = Diagnostic::error(Code::MissingNode, "an external needs a `cidr`")
                .with_label(self.head(n), "no `cidr` in this external")
                .with_help("add `cidr \"PREFIX\"` lines with its address ranges");
            self.push(d);
        }
        if let Some(name) = name {
            self.ast.externals.push(RawExternal {
                name,
                nets,
                labels,
                span: self.span(n.span()),
            });
        }
    }

    fn policies(&mut self, n: &KdlNode) {
        const USAGE: &str = "policies scope=\"NAME\" { absolute { … } default { … } catch-all … }";
        let ents = self.entries(n, &["scope"], 0, USAGE);
        let owner = match ents.prop("scope") {
            Some(e) => match self.reference_name(e, "`scope`") {
                Some(s) => Owner::Named(s),
                None => Owner::None,
            },
            None => {
                self.missing_property(n, "scope", USAGE);
                Owner::None
            }
        };
        for c in n.iter_children() {
            match c.name().value() {
                "absolute" => self.group(c, owner.clone(), PolicyRank::Absolute),
                "default" => self.group(c, owner.clone(), PolicyRank::Default),
                "catch-all" => self.catch_all(c, owner.clone()),
                _ => self.unknown_node(c, GROUP_NODES, "a `policies` block"),
            }
        }
    }

    fn group(&mut self, n: &KdlNode, owner: Owner, rank: PolicyRank) {
        let place = match rank {
            PolicyRank::Absolute => "an `absolute` block",
            PolicyRank::Default => "a `default` block",
        };
        self.entries(n, &[], 0, "absolute|default { POLICIES }");
        for c in n.iter_children() {
            match c.name().value() {
                "allow" => self.policy(c, owner.clone(), rank, PolicyAction::Allow),
                "deny" => self.policy(c, owner.clone(), rank, PolicyAction::Deny),
                "pass" => self.policy(c, owner.clone(), rank, PolicyAction::Pass),
                _ => self.unknown_node(c, &["allow", "deny", "pass"], place),
            }
        }
    }

    fn policy(&mut self, n: &KdlNode, owner: Owner, rank: PolicyRank, action: PolicyAction) {
        let ents = self.entries(n, POLICY_PROPS, 1, POLICY_USAGE);
        self.no_children(n, POLICY_USAGE);
        let mut ok = true;
        let name = match ents.args.first() {
            Some(e) => {
                let name = self.name(e, "policy");
                ok &= name.is_some();
                name
            }
            None => None,
        };
        let side = |cx: &mut Self, key: &str| match ents.prop(key) {
            Some(e) => cx.reference(e),
            None => {
                cx.missing_property(n, key, POLICY_USAGE);
                None
            }
        };
        let from = side(self, "from");
        let to = side(self, "to");
        let (proto, ports) = self.proto_ports(&ents, true);
        let side = match ents.prop("side") {
            Some(e) => self
                .one_of(
                    e,
                    "`side`",
                    &[
                        ("ingress", Direction::Ingress),
                        ("egress", Direction::Egress),
                    ],
                )
                .map(Some),
            None => Some(None),
        };
        let log = match ents.prop("log") {
            Some(e) => self.boolean(e, "`log`"),
            None => Some(false),
        };
        let comment = match ents.prop("comment") {
            Some(e) => self.string(e, "`comment`").map(Some),
            None => Some(None),
        };
        if let (
            true,
            Some(from),
            Some(to),
            Some(proto),
            Some((ports, named_ports)),
            Some(side),
            Some(log),
            Some(comment),
        ) = (ok, from, to, proto, ports, side, log, comment)
        {
            self.ast.policies.push(RawPolicy {
                owner,
                rank,
                action,
                side,
                name,
                line: self.line(n),
                from,
                to,
                proto,
                ports,
                named_ports,
                log,
                comment,
                span: self.span(n.span()),
                head: self.head(n),
            });
        }
    }

    /// `proto=` and `ports=`, checked together. Port names are only taken
    fn catch_all(&mut self, n: &KdlNode, owner: Owner) {
        const USAGE: &str = "catch-all [ingress=\"allow|deny\"] [egress=\"allow|deny\"]";
        let ents = self.entries(n, &["ingress", "egress"], 0, USAGE);
        self.no_children(n, USAGE);
        if ents.props.is_empty() {
            self.missing_property(n, "ingress", USAGE);
        }
        for (key, direction) in [
            ("ingress", Direction::Ingress),
            ("egress", Direction::Egress),
        ] {
            if let Some(e) = ents.prop(key) {
                // An invalid action still counts as a catch-all being there.
                let action = self.action(e, &format!("`{key}`"));
                self.ast.catch_alls.push(RawCatchAll {
                    owner: owner.clone(),
                    direction,
                    action,
                    span: self.span(e.span()),
                });
            }
        }
    }

    fn quarantine(&mut self, n: &KdlNode) {
        const USAGE: &str =
            "quarantine { workloads \"FILTER\" …; allow [\"NAME\"] from=REF|to=REF … }";
        const ALLOW: &str =
            "allow [\"NAME\"] from=REF|to=REF [proto=P] [ports=PORTS] (exactly one of from, to)";
        self.entries(n, &[], 0, USAGE);
        let mut q = RawQuarantine {
            workloads: Vec::new(),
            exceptions: Vec::new(),
            span: self.span(n.span()),
            head: self.head(n),
        };
        let mut has_workloads = false;
        for c in n.iter_children() {
            match c.name().value() {
                "workloads" => {
                    has_workloads = true;
                    const U: &str = "workloads \"FILTER\" [\"FILTER\" …]";
                    self.no_children(c, U);
                    let ents = self.entries(c, &[], usize::MAX, U);
                    if ents.args.is_empty() {
                        self.missing_argument(c, "a filter name", U);
                    }
                    for e in ents.args {
                        if let Some(name) = self.reference_name(e, "a filter name") {
                            q.workloads.push(name);
                        }
                    }
                }
                "allow" => {
                    let ents = self.entries(c, &["from", "to", "proto", "ports"], 1, ALLOW);
                    self.no_children(c, ALLOW);
                    let name = match ents.args.first() {
                        Some(e) => match self.name(e, "exception") {
                            Some(n) => Some(n),
                            None => continue,
                        },
                        None => None,
                    };
                    let (direction, e) = match (ents.prop("from"), ents.prop("to")) {
                        (Some(f), Some(t)) => {
                            let d = Diagnostic::error(
                                Code::ConflictingProperties,
                                "a quarantine exception has either `from=` or `to=`, not both",
                            )
                            .with_label(self.key_span(t), "`to=` here")
                            .with_label(self.key_span(f), "`from=` here")
                            .with_help(
                                "`from=REF` keeps traffic from REF to quarantined workloads; \
                                 `to=REF` keeps traffic from them to REF: write two exceptions \
                                 for both",
                            );
                            self.push(d);
                            continue;
                        }
                        (Some(f), None) => (Direction::Ingress, f),
                        (None, Some(t)) => (Direction::Egress, t),
                        (None, None) => {
                            self.missing_property(c, "from", ALLOW);
                            continue;
                        }
                    };
                    let peer = self.reference(e);
                    let (proto, ports) = self.proto_ports(&ents, false);
                    if let (Some(peer), Some(proto), Some((ports, _))) = (peer, proto, ports) {
                        q.exceptions.push(RawException {
                            name,
                            line: self.line(c),
                            direction,
                            peer,
                            proto,
                            ports,
                            span: self.span(c.span()),
                        });
                    }
                }
                _ => {
                    self.unknown_node(c, &["workloads", "allow"], "a `quarantine` block");
                }
            }
        }
        if !has_workloads {
            let d = Diagnostic::error(Code::MissingNode, "a quarantine needs `workloads`")
                .with_label(q.head, "no `workloads` in this quarantine")
                .with_help("add `workloads \"FILTER\" …` naming the filters to quarantine");
            self.push(d);
        }
        self.ast.quarantines.push(q);
    }

    fn plugin(&mut self, n: &KdlNode) {
        const USAGE: &str = "plugin \"NAME\" path=\"FILE.wasm\" sha256=\"HEX\"";
        let ents = self.entries(n, &["path", "sha256"], 1, USAGE);
        self.no_children(n, USAGE);
        let name = match ents.args.first() {
            Some(e) => self.name(e, "plugin"),
            None => {
                self.missing_argument(n, "a name", USAGE);
                None
            }
        };
        let path = match ents.prop("path") {
            Some(e) => self.string(e, "`path`").and_then(|p| {
                let escapes = p.starts_with('/')
                    || p.starts_with('\\')
                    || p.split(['/', '\\']).any(|c| c == "..")
                    || p.is_empty();
                if escapes {
                    self.invalid_value(
                        e,
                        format!("plugin path \"{p}\" is not inside the intent directory"),
                        "give a path relative to the intent directory, without `..`".into(),
                    );
                    None
                } else {
                    Some(p)
                }
            }),
            None => {
                self.missing_property(n, "path", USAGE);
                None
            }
        };
        let sha256 = match ents.prop("sha256") {
            Some(e) => self.string(e, "`sha256`").and_then(|h| {
                if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    Some(h.to_ascii_lowercase())
                } else {
                    self.invalid_value(
                        e,
                        format!(
                            "sha256 must be 64 hex digits, this has {} characters",
                            h.len()
                        ),
                        "write the plugin file's digest: `sha256sum FILE.wasm`".into(),
                    );
                    None
                }
            }),
            None => {
                self.missing_property(n, "sha256", USAGE);
                None
            }
        };
        if let (Some(name), Some(path), Some(sha256)) = (name, path, sha256) {
            self.ast.plugins.push(RawPlugin {
                name,
                path,
                sha256,
                span: self.span(n.span()),
            });
        }
    }
}
