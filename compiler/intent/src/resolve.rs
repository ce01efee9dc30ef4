//! Resolution: name tables, the scope tree and its priority order, every
//! reference, reference cycles, and the checks that need the whole intent
//! (duplicates across files, cluster split, catch-alls, unused filters).
//!
//! This file holds the name tables and builds the model; [`checks`] holds
//! the checks run on the whole intent once names are resolved.

mod checks;

use std::collections::{BTreeSet, HashMap};

use crate::ast::*;
use crate::diagnostics::{Code, Diagnostic, Severity, did_you_mean};
use crate::model::{
    CatchAll, Direction, External, ExternalId, Filter, FilterId, Intent, PluginPin, Policy,
    PolicyRank, Predicate, Quarantine, QuarantineException, Query, Scope, ScopeId, SourceFile,
    Span, Target,
};

/// Backends that need no `plugin` declaration.
const BUILTIN_BACKENDS: &[&str] = &["nftables", "windows-firewall"];

/// Kinds of named object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Scope,
    Filter,
    External,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Scope => "scope",
            Kind::Filter => "filter",
            Kind::External => "external",
        }
    }
}

/// A vertex of the reference graph, for cycle detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Vertex {
    Scope(ScopeId),
    Filter(FilterId),
}

/// `from` refers to `to`, as written at `span`.
#[derive(Clone, Copy, Debug)]
struct Edge {
    from: Vertex,
    to: Vertex,
    span: Span,
}

struct Resolver<'a> {
    ast: &'a Ast,
    diags: &'a mut Vec<Diagnostic>,
    scopes: HashMap<&'a str, ScopeId>,
    filters: HashMap<&'a str, FilterId>,
    externals: HashMap<&'a str, ExternalId>,
    /// Raw scope index → scope id (priority order).
    scope_id: Vec<ScopeId>,
    /// Scope id → raw scope index.
    scope_raw: Vec<usize>,
    used_filters: BTreeSet<FilterId>,
    edges: Vec<Edge>,
}

/// Resolve the whole [`Ast`]; the [`Intent`] is built only if no error was
/// reported (in `diags`, which may already hold errors from earlier stages).
pub(crate) fn resolve(
    ast: &Ast,
    files: &[SourceFile],
    diags: &mut Vec<Diagnostic>,
) -> Option<Intent> {
    let mut r = Resolver {
        ast,
        diags,
        scopes: HashMap::new(),
        filters: HashMap::new(),
        externals: HashMap::new(),
        scope_id: Vec::new(),
        scope_raw: Vec::new(),
        used_filters: BTreeSet::new(),
        edges: Vec::new(),
    };
    let parents = r.scope_tree();
    let filters = r.table(Kind::Filter, ast.filters.iter().map(|f| &f.name));
    r.filters = filters
        .into_iter()
        .map(|(n, i)| (n, FilterId::new(i)))
        .collect();
    let externals = r.table(Kind::External, ast.externals.iter().map(|e| &e.name));
    r.externals = externals
        .into_iter()
        .map(|(n, i)| (n, ExternalId::new(i)))
        .collect();
    r.check_plugins();

    let scopes = r.scopes_model(&parents);
    let filters = r.filters_model();
    let externals: Vec<External> = ast
        .externals
        .iter()
        .map(|e| External {
            name: e.name.text.clone(),
            nets: e.nets.clone(),
            labels: e.labels.clone(),
            span: e.span,
        })
        .collect();
    let policies = r.policies_model();
    let catch_alls = r.catch_alls_model(&scopes);
    let quarantine = r.quarantine_model();
    r.cycles();
    r.cluster_split(&scopes);
    r.overlaps(&scopes);
    r.unused_filters();

    if !ast.partial_files.is_empty() {
        // Names declared in the unparsed part of a file are unknown: findings
        // that depend on knowing every name would be noise.
        r.diags.retain(|d| {
            ![
                Code::UnknownReference,
                Code::UnusedFilter,
                Code::ImplicitCatchAll,
            ]
            .iter()
            .any(|c| c.as_str() == d.code)
        });
    }
    if r.diags.iter().any(|d| d.severity == Severity::Error) {
        return None;
    }
    let (Some(scopes), Some(filters), Some(policies), Some(quarantine)) =
        (scopes, filters, policies, quarantine)
    else {
        return None;
    };
    Some(Intent {
        files: files.to_vec(),
        scopes,
        filters,
        externals,
        policies,
        catch_alls,
        quarantine,
        plugins: ast
            .plugins
            .iter()
            .map(|p| PluginPin {
                name: p.name.text.clone(),
                path: p.path.clone(),
                sha256: p.sha256.clone(),
                span: p.span,
            })
            .collect(),
    })
}

fn duplicate(kind: &str, name: &str, here: Span, first: Span) -> Diagnostic {
    Diagnostic::error(
        Code::DuplicateName,
        format!("{kind} `{name}` is declared twice"),
    )
    .with_label(here, "declared again here")
    .with_label(first, "first declared here")
    .with_help(format!(
        "{kind} names are unique across all files: rename or remove one of them"
    ))
}

impl<'a> Resolver<'a> {
    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// Name → index of the first declaration; reports later ones.
    fn table(
        &mut self,
        kind: Kind,
        names: impl Iterator<Item = &'a Name>,
    ) -> HashMap<&'a str, usize> {
        let mut map: HashMap<&str, usize> = HashMap::new();
        let mut first_span: Vec<Span> = Vec::new();
        for (i, n) in names.enumerate() {
            first_span.push(n.span);
            if n.text.is_empty() {
                continue;
            }
            match map.get(n.text.as_str()) {
                Some(&first) => {
                    let d = duplicate(kind.word(), &n.text, n.span, first_span[first]);
                    self.push(d);
                }
                None => {
                    map.insert(n.text.as_str(), i);
                }
            }
        }
        map
    }

    /// Resolve parents and order scopes: pre-order, siblings in declaration
    /// order. Returns each scope's parent (by scope id).
    fn scope_tree(&mut self) -> Vec<Option<ScopeId>> {
        let ast = self.ast;
        let by_raw = self.table(Kind::Scope, ast.scopes.iter().map(|s| &s.name));
        let n = ast.scopes.len();
        let mut raw_parent: Vec<Option<usize>> = vec![None; n];
        for (i, s) in ast.scopes.iter().enumerate() {
            raw_parent[i] = match &s.parent {
                ScopeLink::Top => None,
                ScopeLink::Inline(p) => Some(*p),
                ScopeLink::Named(name) => {
                    let found = by_raw.get(name.text.as_str()).copied();
                    if found.is_none() {
                        self.unknown(Kind::Scope, name, &by_raw_keys(&by_raw), None);
                    }
                    found
                }
            };
        }
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut roots = Vec::new();
        for (i, p) in raw_parent.iter().enumerate() {
            match p {
                Some(p) => children[*p].push(i),
                None => roots.push(i),
            }
        }
        // Pre-order walk; scopes in a parent cycle are unreachable and go last.
        let mut order = Vec::with_capacity(n);
        let mut seen = vec![false; n];
        let mut stack: Vec<usize> = roots.into_iter().rev().collect();
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            order.push(i);
            stack.extend(children[i].iter().rev());
        }
        order.extend((0..n).filter(|&i| !seen[i]));
        self.scope_raw = order;
        self.scope_id = vec![ScopeId::new(0); n];
        for (id, &raw) in self.scope_raw.iter().enumerate() {
            self.scope_id[raw] = ScopeId::new(id);
        }
        self.scopes = by_raw
            .into_iter()
            .map(|(k, raw)| (k, self.scope_id[raw]))
            .collect();
        // Parent edges take part in cycle detection.
        let mut parents = vec![None; n];
        for (raw, p) in raw_parent.iter().enumerate() {
            if let Some(p) = p {
                let (from, to) = (self.scope_id[raw], self.scope_id[*p]);
                parents[from.index()] = Some(to);
                let span = match &ast.scopes[raw].parent {
                    ScopeLink::Named(name) => name.span,
                    _ => ast.scopes[raw].name.span,
                };
                self.edges.push(Edge {
                    from: Vertex::Scope(from),
                    to: Vertex::Scope(to),
                    span,
                });
            }
        }
        parents
    }

    /// Report a name nothing of `kind` declares.
    fn unknown(&mut self, kind: Kind, name: &Name, known: &[&str], written_as: Option<&str>) {
        let mut help = match did_you_mean(&name.text, known.iter().copied()) {
            Some(m) => format!("did you mean `{m}`?"),
            None => format!(
                "declare it (`{} \"{}\" {{ … }}`) or fix the name",
                kind.word(),
                name.text
            ),
        };
        // The name may exist as another kind.
        for other in [Kind::Filter, Kind::Scope, Kind::External] {
            if other != kind && self.exists(other, &name.text) {
                help = format!(
                    "there is a {} called `{}`: write `{}:{}`",
                    other.word(),
                    name.text,
                    other.word(),
                    name.text
                );
            }
        }
        let what = written_as.unwrap_or(kind.word());
        let d = Diagnostic::error(
            Code::UnknownReference,
            format!("no {what} named `{}`", name.text),
        )
        .with_label(name.span, format!("unknown {what}"))
        .with_help(help);
        self.push(d);
    }

    fn exists(&self, kind: Kind, name: &str) -> bool {
        match kind {
            Kind::Scope => self.scopes.contains_key(name),
            Kind::Filter => self.filters.contains_key(name),
            Kind::External => self.externals.contains_key(name),
        }
    }

    fn names(&self, kind: Kind) -> Vec<&'a str> {
        let mut v: Vec<&str> = match kind {
            Kind::Scope => self.scopes.keys().copied().collect(),
            Kind::Filter => self.filters.keys().copied().collect(),
            Kind::External => self.externals.keys().copied().collect(),
        };
        v.sort_unstable();
        v
    }

    fn lookup(&mut self, kind: Kind, name: &Name) -> Option<usize> {
        let found = match kind {
            Kind::Scope => self.scopes.get(name.text.as_str()).map(|s| s.index()),
            Kind::Filter => self.filters.get(name.text.as_str()).map(|f| f.index()),
            Kind::External => self.externals.get(name.text.as_str()).map(|e| e.index()),
        };
        if found.is_none() {
            let known = self.names(kind);
            self.unknown(kind, name, &known, None);
        }
        if let (Some(f), Kind::Filter) = (found, kind) {
            self.used_filters.insert(FilterId::new(f));
        }
        found
    }

    /// Look `name` up as a `kind` and record that `from` refers to it.
    fn refer(
        &mut self,
        from: Vertex,
        kind: Kind,
        name: &Name,
        to: fn(usize) -> Vertex,
    ) -> Option<usize> {
        let found = self.lookup(kind, name)?;
        self.edges.push(Edge {
            from,
            to: to(found),
            span: name.span,
        });
        Some(found)
    }

    fn owner(&mut self, owner: &Owner) -> Option<ScopeId> {
        match owner {
            Owner::None => None,
            Owner::Inline(raw) => Some(self.scope_id[*raw]),
            Owner::Named(name) => self.lookup(Kind::Scope, name).map(ScopeId::new),
        }
    }

    fn query(&mut self, q: &RawQuery, from: Vertex) -> Option<Query> {
        let list = |r: &mut Self, qs: &[RawQuery]| -> Option<Vec<Query>> {
            let out: Vec<Option<Query>> = qs.iter().map(|q| r.query(q, from)).collect();
            out.into_iter().collect()
        };
        Some(match q {
            RawQuery::All(qs) => Query::All(list(self, qs)?),
            RawQuery::Any(qs) => Query::Any(list(self, qs)?),
            RawQuery::Not(q) => Query::Not(Box::new(self.query(q, from)?)),
            RawQuery::Pred(p, span) => {
                let pred = match p {
                    RawPred::Plain(p) => p.clone(),
                    RawPred::Matches(name) => Predicate::Filter(FilterId::new(self.refer(
                        from,
                        Kind::Filter,
                        name,
                        |f| Vertex::Filter(FilterId::new(f)),
                    )?)),
                    RawPred::InScope(name) => {
                        let to = |s| Vertex::Scope(ScopeId::new(s));
                        Predicate::Scope(ScopeId::new(self.refer(from, Kind::Scope, name, to)?))
                    }
                };
                Query::Pred(pred, *span)
            }
        })
    }

    fn scopes_model(&mut self, parents: &[Option<ScopeId>]) -> Option<Vec<Scope>> {
        let ast = self.ast;
        let mut out = Vec::with_capacity(ast.scopes.len());
        let mut ok = true;
        let mut plugins: BTreeSet<&str> = BUILTIN_BACKENDS.iter().copied().collect();
        plugins.extend(ast.plugins.iter().map(|p| p.name.text.as_str()));
        for (id, &parent) in parents.iter().enumerate() {
            let raw = &ast.scopes[self.scope_raw[id]];
            let id = ScopeId::new(id);
            let query = match &raw.query {
                Some(q) => self.query(q, Vertex::Scope(id)),
                None => None,
            };
            for name in raw.backends.values() {
                if !plugins.contains(name.text.as_str()) {
                    let known: Vec<&str> = plugins.iter().copied().collect();
                    let help = match did_you_mean(&name.text, known.iter().copied()) {
                        Some(m) => format!("did you mean `{m}`?"),
                        None => format!(
                            "use a built-in backend (nftables, windows-firewall) or declare \
                             `plugin \"{}\" path=… sha256=…`",
                            name.text
                        ),
                    };
                    let d = Diagnostic::error(
                        Code::UnknownReference,
                        format!("no backend named `{}`", name.text),
                    )
                    .with_label(name.span, "unknown backend")
                    .with_help(help);
                    self.push(d);
                    ok = false;
                }
            }
            match query {
                Some(query) => out.push(Scope {
                    name: raw.name.text.clone(),
                    parent,
                    query,
                    enforcement: raw.enforcement,
                    unknown_pods: raw.unknown_pods,
                    backends: raw
                        .backends
                        .iter()
                        .map(|(os, n)| (*os, n.text.clone()))
                        .collect(),
                    span: raw.span,
                }),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn filters_model(&mut self) -> Option<Vec<Filter>> {
        let ast = self.ast;
        let mut out = Vec::with_capacity(ast.filters.len());
        let mut ok = true;
        for (i, f) in ast.filters.iter().enumerate() {
            let i = FilterId::new(i);
            let owner = self.owner(&f.owner);
            if let Some(at) = f.restrict {
                match owner {
                    Some(s) => self.edges.push(Edge {
                        from: Vertex::Filter(i),
                        to: Vertex::Scope(s),
                        span: at,
                    }),
                    None if matches!(f.owner, Owner::None) => {
                        let d = Diagnostic::error(
                            Code::RestrictWithoutOwner,
                            format!("filter `{}` is restricted to its scope but has none", f.name.text),
                        )
                        .with_label(at, "restricted here")
                        .with_help(
                            "declare the filter inside a `scope` block or give it `scope=\"NAME\"`, \
                             or remove `restrict-to-scope`",
                        );
                        self.push(d);
                    }
                    None => {}
                }
            }
            let query = self.query(&f.query, Vertex::Filter(i));
            match query {
                Some(query) if owner.is_some() || matches!(f.owner, Owner::None) => {
                    out.push(Filter {
                        name: f.name.text.clone(),
                        owner,
                        restrict_to_scope: f.restrict.is_some() && owner.is_some(),
                        query,
                        span: f.span,
                    })
                }
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// A consumer or provider.
    fn target(&mut self, r: &RawRef) -> Option<Target> {
        let named = |text: &str| Name {
            text: text.to_string(),
            span: r.span,
        };
        Some(match &r.kind {
            RefKind::Any => Target::Any,
            RefKind::Service { namespace, name } => Target::Service {
                namespace: namespace.clone(),
                name: name.clone(),
            },
            RefKind::Filter(n) => {
                Target::Filter(FilterId::new(self.lookup(Kind::Filter, &named(n))?))
            }
            RefKind::Scope(n) => Target::Scope(ScopeId::new(self.lookup(Kind::Scope, &named(n))?)),
            RefKind::External(n) => {
                Target::External(ExternalId::new(self.lookup(Kind::External, &named(n))?))
            }
            RefKind::Bare(n) => {
                let hits: Vec<Target> = [
                    self.filters.get(n.as_str()).map(|&f| Target::Filter(f)),
                    self.externals.get(n.as_str()).map(|&e| Target::External(e)),
                    self.scopes.get(n.as_str()).map(|&s| Target::Scope(s)),
                ]
                .into_iter()
                .flatten()
                .collect();
                match hits.as_slice() {
                    [one] => {
                        if let Target::Filter(f) = one {
                            self.used_filters.insert(*f);
                        }
                        one.clone()
                    }
                    [] => {
                        let mut known = self.names(Kind::Filter);
                        known.extend(self.names(Kind::External));
                        known.extend(self.names(Kind::Scope));
                        let help = match did_you_mean(n, known.iter().copied()) {
                            Some(m) => format!("did you mean `{m}`?"),
                            None => format!(
                                "declare a filter, external or scope called `{n}`, or use \
                                 `service:NAMESPACE/NAME` or `any`"
                            ),
                        };
                        let d = Diagnostic::error(
                            Code::UnknownReference,
                            format!("no filter, external or scope named `{n}`"),
                        )
                        .with_label(r.span, "unknown name")
                        .with_help(help);
                        self.push(d);
                        return None;
                    }
                    many => {
                        let kinds: Vec<String> = many
                            .iter()
                            .map(|t| {
                                let k = match t {
                                    Target::Filter(_) => "filter",
                                    Target::External(_) => "external",
                                    _ => "scope",
                                };
                                format!("`{k}:{n}`")
                            })
                            .collect();
                        let d = Diagnostic::error(
                            Code::AmbiguousReference,
                            format!("`{n}` names more than one kind of object"),
                        )
                        .with_label(r.span, "ambiguous")
                        .with_help(format!("say which one: {}", kinds.join(" or ")));
                        self.push(d);
                        return None;
                    }
                }
            }
        })
    }

    fn policies_model(&mut self) -> Option<Vec<Policy>> {
        let ast = self.ast;
        let mut out = Vec::with_capacity(ast.policies.len());
        let mut ok = true;
        let mut ids: HashMap<(ScopeId, String), Span> = HashMap::new();
        type Key = (ScopeId, PolicyRank, String);
        let mut same: HashMap<Key, (String, Span)> = HashMap::new();
        for p in &ast.policies {
            let scope = self.owner(&p.owner);
            let consumer = self.target(&p.from);
            let provider = self.target(&p.to);
            let (Some(scope), Some(consumer), Some(provider)) = (scope, consumer, provider) else {
                ok = false;
                continue;
            };
            let (name, name_span) = match &p.name {
                Some(n) => (n.text.clone(), n.span),
                None => (format!("line-{}", p.line), p.head),
            };
            let scope_name = &ast.scopes[self.scope_raw[scope.index()]].name.text;
            let id = format!("{scope_name}/{name}");
            if let Some(first) = ids.get(&(scope, name.clone())) {
                let d = Diagnostic::error(
                    Code::DuplicateName,
                    format!("policy id `{id}` is used twice"),
                )
                .with_label(name_span, "used again here")
                .with_label(*first, "first used here")
                .with_help(format!(
                    "policy names are unique within a scope (across files): rename one{}",
                    if p.name.is_none() {
                        " (unnamed policies are named after their line)"
                    } else {
                        ""
                    }
                ));
                self.push(d);
                ok = false;
                continue;
            }
            ids.insert((scope, name.clone()), name_span);
            let key = format!(
                "{:?} {:?} {:?} {:?} {} {:?} {:?}",
                p.action, p.side, consumer, provider, p.proto, p.ports, p.named_ports
            );
            match same.get(&(scope, p.rank, key.clone())) {
                Some((first_id, first)) => {
                    let d = Diagnostic::warning(
                        Code::DuplicatePolicy,
                        format!("policy `{id}` repeats `{first_id}`"),
                    )
                    .with_label(
                        p.head,
                        "same action, side, consumer, provider, protocol and ports",
                    )
                    .with_label(*first, "as this earlier policy")
                    .with_help("remove one of them: the later one never decides anything");
                    self.push(d);
                }
                None => {
                    same.insert((scope, p.rank, key), (id.clone(), p.head));
                }
            }
            out.push(Policy {
                id,
                name,
                scope,
                rank: p.rank,
                action: p.action,
                side: p.side,
                consumer,
                provider,
                proto: p.proto,
                ports: p.ports.clone(),
                named_ports: p.named_ports.clone(),
                log: p.log,
                comment: p.comment.clone(),
                span: p.span,
            });
        }
        ok.then_some(out)
    }

    fn catch_alls_model(&mut self, scopes: &Option<Vec<Scope>>) -> Vec<CatchAll> {
        let ast = self.ast;
        let mut out: Vec<CatchAll> = Vec::new();
        // Scopes and directions with a catch-all written, valid or not.
        let mut written: BTreeSet<(ScopeId, Direction)> = BTreeSet::new();
        for c in &ast.catch_alls {
            let Some(scope) = self.owner(&c.owner) else {
                continue;
            };
            written.insert((scope, c.direction));
            let Some(action) = c.action else { continue };
            if let Some(first) = out
                .iter()
                .find(|o| o.scope == scope && o.direction == c.direction)
            {
                let dir = direction_word(c.direction);
                let name = &ast.scopes[self.scope_raw[scope.index()]].name.text;
                let d = Diagnostic::error(
                    Code::DuplicateCatchAll,
                    format!("scope `{name}` has two {dir} catch-alls"),
                )
                .with_label(c.span, "second one here")
                .with_label(first.span, "first one here")
                .with_help(format!("keep one `catch-all {dir}=…` per scope"));
                self.push(d);
                continue;
            }
            out.push(CatchAll {
                scope,
                direction: c.direction,
                action,
                span: c.span,
            });
        }
        // Top-level scopes without a catch-all allow what nothing else decides.
        if let Some(scopes) = scopes {
            for (id, s) in scopes.iter().enumerate() {
                if s.parent.is_some() || s.name.is_empty() {
                    continue;
                }
                let missing: Vec<&str> = [Direction::Ingress, Direction::Egress]
                    .into_iter()
                    .filter(|d| !written.contains(&(ScopeId::new(id), *d)))
                    .map(direction_word)
                    .collect();
                if !missing.is_empty() {
                    let raw = &ast.scopes[self.scope_raw[id]];
                    let d = Diagnostic::warning(
                        Code::ImplicitCatchAll,
                        format!(
                            "top-level scope `{}` has no {} catch-all: unmatched traffic is allowed",
                            s.name,
                            missing.join(" or ")
                        ),
                    )
                    .with_label(raw.name.span, "no catch-all")
                    .with_help(format!(
                        "say what happens to traffic no policy matches: `catch-all {}`",
                        missing
                            .iter()
                            .map(|d| format!("{d}=\"allow\""))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ));
                    self.push(d);
                }
            }
        }
        out
    }

    fn quarantine_model(&mut self) -> Option<Option<Quarantine>> {
        let ast = self.ast;
        let Some(q) = ast.quarantines.first() else {
            return Some(None);
        };
        for extra in &ast.quarantines[1..] {
            let d = Diagnostic::error(Code::DuplicateNode, "more than one `quarantine` block")
                .with_label(extra.head, "another quarantine here")
                .with_label(q.head, "first quarantine here")
                .with_help("merge them: the whole intent has at most one quarantine block");
            self.push(d);
        }
        let mut ok = true;
        let mut filters = Vec::new();
        for w in &q.workloads {
            match self.lookup(Kind::Filter, w) {
                Some(f) => filters.push(FilterId::new(f)),
                None => ok = false,
            }
        }
        let mut exceptions = Vec::new();
        let mut names: HashMap<String, Span> = HashMap::new();
        for e in &q.exceptions {
            let (name, span) = match &e.name {
                Some(n) => (n.text.clone(), n.span),
                None => (format!("line-{}", e.line), e.span),
            };
            if name == "deny-ingress" || name == "deny-egress" {
                let d = Diagnostic::error(
                    Code::InvalidName,
                    format!("`{name}` is reserved for quarantine's own deny rules"),
                )
                .with_label(span, "reserved name")
                .with_help("give the exception another name");
                self.push(d);
                ok = false;
                continue;
            }
            if let Some(first) = names.get(&name) {
                let d = duplicate("quarantine exception", &name, span, *first);
                self.push(d);
                ok = false;
                continue;
            }
            names.insert(name.clone(), span);
            match self.target(&e.peer) {
                Some(peer) => exceptions.push(QuarantineException {
                    id: format!("quarantine/{name}"),
                    name,
                    direction: e.direction,
                    peer,
                    proto: e.proto,
                    ports: e.ports.clone(),
                    span: e.span,
                }),
                None => ok = false,
            }
        }
        ok.then_some(Some(Quarantine {
            filters,
            exceptions,
            span: q.span,
        }))
    }
}

fn by_raw_keys<'a>(m: &HashMap<&'a str, usize>) -> Vec<&'a str> {
    let mut v: Vec<&str> = m.keys().copied().collect();
    v.sort_unstable();
    v
}

fn direction_word(d: Direction) -> &'static str {
    match d {
        Direction::Ingress => "ingress",
        Direction::Egress => "egress",
    }
}
