//! The checks that need the whole intent, run once every name is resolved:
//! plugin names (built-in, duplicate), reference cycles among scopes and
//! filters, a cluster split across top-level scopes, overlapping sibling
//! scopes, and unused filters.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{BUILTIN_BACKENDS, Edge, Resolver, Vertex, duplicate};
use crate::diagnostics::{Code, Diagnostic};
use crate::model::{FilterId, Predicate, Query, Scope, ScopeId, Span};

impl Resolver<'_> {
    pub(super) fn check_plugins(&mut self) {
        let ast = self.ast;
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for p in &ast.plugins {
            if BUILTIN_BACKENDS.contains(&p.name.text.as_str()) {
                let d = Diagnostic::error(
                    Code::InvalidName,
                    format!("`{}` is a built-in backend", p.name.text),
                )
                .with_label(p.name.span, "built-in name")
                .with_help("give the plugin its own name (the name it reports)");
                self.push(d);
            } else if let Some(first) = seen.get(p.name.text.as_str()) {
                let d = duplicate("plugin", &p.name.text, p.name.span, *first);
                self.push(d);
            } else {
                seen.insert(&p.name.text, p.name.span);
            }
        }
    }

    /// Loops among filters and scopes (`matches`, `in-scope`, `parent=`,
    /// restricted filters and their owners).
    pub(super) fn cycles(&mut self) {
        let mut adj: BTreeMap<Vertex, Vec<Edge>> = BTreeMap::new();
        for e in &self.edges {
            adj.entry(e.from).or_default().push(*e);
        }
        // Iterative DFS; a back edge closes a cycle made of the edges on the stack.
        let mut state: HashMap<Vertex, u8> = HashMap::new(); // 1 on stack, 2 done
        let mut found: BTreeSet<Vec<Vertex>> = BTreeSet::new();
        let mut reports: Vec<Vec<Edge>> = Vec::new();
        let starts: Vec<Vertex> = adj.keys().copied().collect();
        for start in starts {
            if state.contains_key(&start) {
                continue;
            }
            // (vertex, next edge index, edge that led here)
            let mut stack: Vec<(Vertex, usize, Option<Edge>)> = vec![(start, 0, None)];
            state.insert(start, 1);
            while let Some(top) = stack.last_mut() {
                let (v, i) = (top.0, top.1);
                let edges = adj.get(&v).map_or(&[][..], Vec::as_slice);
                if i == edges.len() {
                    state.insert(v, 2);
                    stack.pop();
                    continue;
                }
                top.1 += 1;
                let e = edges[i];
                match state.get(&e.to) {
                    None => {
                        state.insert(e.to, 1);
                        stack.push((e.to, 0, Some(e)));
                    }
                    Some(1) => {
                        let pos = stack.iter().position(|(w, _, _)| *w == e.to).unwrap_or(0);
                        let mut cycle: Vec<Edge> = stack[pos + 1..]
                            .iter()
                            .filter_map(|(_, _, via)| *via)
                            .collect();
                        cycle.push(e);
                        let mut key: Vec<Vertex> = cycle.iter().map(|e| e.from).collect();
                        key.sort();
                        if found.insert(key) {
                            reports.push(cycle);
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        for cycle in reports {
            let path: Vec<String> = cycle
                .iter()
                .map(|e| self.vertex_name(e.from))
                .chain(std::iter::once(self.vertex_name(cycle[0].from)))
                .collect();
            let mut by_pos = cycle.clone();
            by_pos.sort_by_key(|e| (e.span.file, e.span.offset));
            let mut d = Diagnostic::error(
                Code::ReferenceCycle,
                format!("reference cycle: {}", path.join(" → ")),
            );
            for e in &by_pos {
                let label = format!(
                    "{} refers to {}",
                    self.vertex_name(e.from),
                    self.vertex_name(e.to)
                );
                d = d.with_label(e.span, label);
            }
            self.push(d.with_help(
                "break the loop: a filter or scope cannot depend on itself, directly or through \
                 `matches`, `in-scope`, `parent=` or `restrict-to-scope`",
            ));
        }
    }

    pub(super) fn vertex_name(&self, v: Vertex) -> String {
        match v {
            Vertex::Scope(s) => format!(
                "scope `{}`",
                self.ast.scopes[self.scope_raw[s.index()]].name.text
            ),
            Vertex::Filter(f) => format!("filter `{}`", self.ast.filters[f.index()].name.text),
        }
    }

    /// A cluster named by the queries of two top-level scopes.
    pub(super) fn cluster_split(&mut self, scopes: &Option<Vec<Scope>>) {
        let Some(scopes) = scopes else { return };
        let mut first: BTreeMap<&str, (usize, Span)> = BTreeMap::new();
        for (id, s) in scopes.iter().enumerate() {
            if s.parent.is_some() {
                continue;
            }
            let mut named = Vec::new();
            clusters(&s.query, false, &mut named);
            for (cluster, span) in named {
                match first.get(cluster) {
                    Some(&(other, at)) if other != id => {
                        let d = Diagnostic::error(
                            Code::ClusterSplit,
                            format!(
                                "cluster `{cluster}` is named by two top-level scopes, `{}` and `{}`",
                                scopes[other].name, s.name
                            ),
                        )
                        .with_label(span, format!("`{}` names it here", s.name))
                        .with_label(at, format!("`{}` names it here", scopes[other].name))
                        .with_help(
                            "map each cluster to one top-level scope; split it with child scopes \
                             (`scope \"app\" parent=\"…\"`)",
                        );
                        self.push(d);
                    }
                    Some(_) => {}
                    None => {
                        first.insert(cluster, (id, span));
                    }
                }
            }
        }
    }

    /// Sibling scopes whose queries show one contains the other.
    pub(super) fn overlaps(&mut self, scopes: &Option<Vec<Scope>>) {
        let Some(scopes) = scopes else { return };
        let mut groups: BTreeMap<Option<ScopeId>, Vec<ScopeId>> = BTreeMap::new();
        for (id, s) in scopes.iter().enumerate() {
            groups.entry(s.parent).or_default().push(ScopeId::new(id));
        }
        for ids in groups.values() {
            let conj: Vec<Option<Vec<&Predicate>>> = ids
                .iter()
                .map(|&i| conjunction(&scopes[i.index()].query))
                .collect();
            for (a, ca) in conj.iter().enumerate() {
                for (b, cb) in conj.iter().enumerate().skip(a + 1) {
                    let (Some(ca), Some(cb)) = (ca, cb) else {
                        continue;
                    };
                    let (sa, sb) = (&scopes[ids[a].index()], &scopes[ids[b].index()]);
                    // Report on the later scope.
                    let (inner, outer) = if subset(cb, ca) {
                        (sb, sa)
                    } else if subset(ca, cb) {
                        (sa, sb)
                    } else {
                        continue;
                    };
                    let later = &self.ast.scopes[self.scope_raw[ids[b].index()]];
                    let earlier = &self.ast.scopes[self.scope_raw[ids[a].index()]];
                    let d = Diagnostic::warning(
                        Code::OverlappingScopes,
                        format!(
                            "sibling scopes overlap: every workload of `{}` is also in `{}`",
                            inner.name, outer.name
                        ),
                    )
                    .with_label(later.name.span, "this scope")
                    .with_label(earlier.name.span, "overlaps this one")
                    .with_help(
                        "make sibling queries disjoint, or make the smaller scope a child of the \
                         larger one",
                    );
                    self.push(d);
                }
            }
        }
    }

    pub(super) fn unused_filters(&mut self) {
        let ast = self.ast;
        for (i, f) in ast.filters.iter().enumerate() {
            let i = FilterId::new(i);
            if self.used_filters.contains(&i) || self.filters.get(f.name.text.as_str()) != Some(&i)
            {
                continue;
            }
            let d = Diagnostic::warning(
                Code::UnusedFilter,
                format!("filter `{}` is not used", f.name.text),
            )
            .with_label(f.name.span, "never referenced")
            .with_help("use it in a policy, a query (`matches`) or the quarantine, or remove it");
            self.push(d);
        }
    }
}

/// Clusters a query names outside any `not`.
fn clusters<'q>(q: &'q Query, negated: bool, out: &mut Vec<(&'q str, Span)>) {
    match q {
        Query::All(qs) | Query::Any(qs) => qs.iter().for_each(|q| clusters(q, negated, out)),
        Query::Not(q) => clusters(q, !negated, out),
        Query::Pred(Predicate::Cluster(cs), span) if !negated => {
            out.extend(cs.iter().map(|c| (c.as_str(), *span)));
        }
        Query::Pred(..) => {}
    }
}

/// The predicates of a query that is a plain AND of predicates.
fn conjunction(q: &Query) -> Option<Vec<&Predicate>> {
    match q {
        Query::All(qs) => {
            let mut out = Vec::new();
            for q in qs {
                out.extend(conjunction(q)?);
            }
            Some(out)
        }
        Query::Pred(p, _) => Some(vec![p]),
        Query::Any(_) | Query::Not(_) => None,
    }
}

/// Whether every workload matching all of `a` matches all of `b`, as far as
/// the predicates show.
fn subset(a: &[&Predicate], b: &[&Predicate]) -> bool {
    b.iter().all(|pb| a.iter().any(|pa| implies(pa, pb)))
}

fn implies(a: &Predicate, b: &Predicate) -> bool {
    fn within<T: PartialEq>(a: &[T], b: &[T]) -> bool {
        !a.is_empty() && a.iter().all(|x| b.contains(x))
    }
    use Predicate as P;
    match (a, b) {
        (P::Cluster(a), P::Cluster(b))
        | (P::Namespace(a), P::Namespace(b))
        | (P::Name(a), P::Name(b))
        | (P::Node(a), P::Node(b)) => within(a, b),
        (
            P::Label {
                key: ka,
                values: va,
            },
            P::Label {
                key: kb,
                values: vb,
            },
        ) => ka == kb && (vb.is_empty() || within(va, vb)),
        (P::Kind(a), P::Kind(b)) => within(a, b),
        (P::Address(a), P::Address(b)) => within(a, b),
        (P::Os(a), P::Os(b)) => a == b,
        (P::CvssAtLeast(a), P::CvssAtLeast(b)) => a >= b,
        (P::Filter(a), P::Filter(b)) => a == b,
        (P::Scope(a), P::Scope(b)) => a == b,
        _ => false,
    }
}
