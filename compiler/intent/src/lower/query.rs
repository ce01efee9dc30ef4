//! Reading queries: a `query { … }` block or a filter's body into a
//! [`RawQuery`] of predicates, each predicate's values checked.

use kdl::{KdlNode, KdlValue};

use super::{Lower, PREDICATES, no_nodes};
use crate::ast::*;
use crate::diagnostics::{Code, Diagnostic};
use crate::model::{Os, Predicate, WorkloadKind};

impl Lower<'_> {
    pub(super) fn empty_query(&mut self, n: &KdlNode, what: &str) {
        let d = Diagnostic::warning(
            Code::EmptyQuery,
            format!("this {what} has no predicate: it matches every workload"),
        )
        .with_label(self.head(n), "no predicate")
        .with_help("add predicates (`namespace`, `label`, …); to mean every address, use the reference `any`");
        self.push(d);
    }

    pub(super) fn query_block(&mut self, n: &KdlNode) -> RawQuery {
        self.entries(n, &[], 0, "query { PREDICATES }");
        let preds = self.predicates(n);
        if no_nodes(n) {
            self.empty_query(n, "query");
        }
        RawQuery::All(preds)
    }

    pub(super) fn predicates(&mut self, n: &KdlNode) -> Vec<RawQuery> {
        n.iter_children()
            .filter_map(|c| self.predicate(c))
            .collect()
    }

    pub(super) fn predicate(&mut self, n: &KdlNode) -> Option<RawQuery> {
        let kind = n.name().value();
        let span = self.span(n.span());
        let usage = match kind {
            "cluster" => "cluster \"NAME\" [\"NAME\" …]",
            "namespace" => "namespace \"NAME\" [\"NAME\" …]",
            "name" => "name \"GLOB\" [\"GLOB\" …]",
            "node" => "node \"GLOB\" [\"GLOB\" …]",
            "label" => "label \"KEY\" [\"VALUE\" …]",
            "kind" => "kind \"pod\"|\"service\"|\"node\"|\"external\" …",
            "os" => "os \"linux\"|\"windows\"",
            "address" => "address \"PREFIX\" …",
            "cvss" => "cvss at-least=SCORE",
            "matches" => "matches \"FILTER\"",
            "in-scope" => "in-scope \"SCOPE\"",
            "all" | "any" | "not" => "all|any|not { PREDICATES }",
            _ => {
                self.unknown_node(n, PREDICATES, "a query");
                return None;
            }
        };
        if matches!(kind, "all" | "any" | "not") {
            self.entries(n, &[], 0, usage);
            let inner = self.predicates(n);
            return Some(match kind {
                "all" => RawQuery::All(inner),
                "any" => RawQuery::Any(inner),
                _ => RawQuery::Not(Box::new(RawQuery::All(inner))),
            });
        }
        self.no_children(n, usage);
        let (props, max): (&[&str], usize) = match kind {
            "cvss" => (&["at-least"], 0),
            "os" | "matches" | "in-scope" => (&[], 1),
            _ => (&[], usize::MAX),
        };
        let ents = self.entries(n, props, max, usage);
        if kind == "cvss" {
            let Some(e) = ents.prop("at-least") else {
                self.missing_property(n, "at-least", usage);
                return None;
            };
            let score = match e.value() {
                KdlValue::Integer(i) => Some(*i as f64),
                KdlValue::Float(f) => Some(*f),
                _ => None,
            };
            return match score {
                Some(s) if (0.0..=10.0).contains(&s) => Some(RawQuery::Pred(
                    RawPred::Plain(Predicate::CvssAtLeast(s)),
                    span,
                )),
                _ => {
                    self.invalid_value(
                        e,
                        format!("a CVSS score is a number from 0 to 10, not {}", e.value()),
                        "write e.g. `cvss at-least=7.5`".into(),
                    );
                    None
                }
            };
        }
        if ents.args.is_empty() {
            self.missing_argument(n, "a value", usage);
            return None;
        }
        let mut ok = true;
        let pred = match kind {
            "matches" | "in-scope" => {
                let name = self.reference_name(ents.args[0], &format!("`{kind}`"))?;
                if kind == "matches" {
                    RawPred::Matches(name)
                } else {
                    RawPred::InScope(name)
                }
            }
            "os" => RawPred::Plain(Predicate::Os(self.one_of(
                ents.args[0],
                "`os`",
                &[("linux", Os::Linux), ("windows", Os::Windows)],
            )?)),
            "kind" => {
                let mut kinds = Vec::new();
                for e in &ents.args {
                    match self.one_of(
                        e,
                        "`kind`",
                        &[
                            ("pod", WorkloadKind::Pod),
                            ("service", WorkloadKind::Service),
                            ("node", WorkloadKind::Node),
                            ("external", WorkloadKind::External),
                        ],
                    ) {
                        Some(k) => kinds.push(k),
                        None => ok = false,
                    }
                }
                RawPred::Plain(Predicate::Kind(kinds))
            }
            "address" => {
                let mut nets = Vec::new();
                for e in &ents.args {
                    match self.cidr(e) {
                        Some(n) => nets.push(n),
                        None => ok = false,
                    }
                }
                RawPred::Plain(Predicate::Address(nets))
            }
            _ => {
                let mut values = Vec::new();
                for e in &ents.args {
                    match self.string(e, &format!("a `{kind}` value")) {
                        Some(v) => values.push(v),
                        None => ok = false,
                    }
                }
                RawPred::Plain(match kind {
                    "cluster" => Predicate::Cluster(values),
                    "namespace" => Predicate::Namespace(values),
                    "name" => Predicate::Name(values),
                    "node" => Predicate::Node(values),
                    _ => {
                        let key = values.remove(0);
                        Predicate::Label { key, values }
                    }
                })
            }
        };
        ok.then_some(RawQuery::Pred(pred, span))
    }
}
