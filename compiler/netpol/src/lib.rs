//! Kubernetes network policies as ringfence intent: NetworkPolicy
//! (`networking.k8s.io/v1`), AdminNetworkPolicy and
//! BaselineAdminNetworkPolicy (`policy.networking.k8s.io/v1alpha1`) and
//! ClusterNetworkPolicy (`v1alpha2`, `v1beta1`; Admin and Baseline tiers).
//!
//! [`translate`] takes manifest objects (as [`ringfence_inventory::manifests`]
//! reads them) and returns intent files, formatted as `ringfence fmt` would,
//! that mean exactly what Kubernetes means, or every problem found (each
//! naming the file, the object and the field) and no file. The translation,
//! construct by construct, is documented in `schema/docs/kubernetes.md`:
//!
//! - one scope holds every pod; its catch-alls allow (Kubernetes' default);
//! - administrator policies are `absolute`, by priority then rule order,
//!   `Pass` a `pass`;
//! - NetworkPolicy rules are one-sided `default` allows (an ingress rule is
//!   enforced on the selected pods' ingress only), followed in each namespace
//!   by the isolation denies of the pods some policy selects;
//! - baseline policies are `default` policies after every namespace's;
//! - selectors are filters, `ipBlock`s externals (addresses outside the
//!   cluster), `networks` an external and an address filter (they also match
//!   pods and nodes), named ports port names resolved on each pod.
//!
//! What the intent language cannot say exactly (domain names) and what the
//! API server would refuse (bad selectors, ports out of range, two
//! administrator policies of one tier with one priority, …) are problems.

mod emit;
mod model;
mod parse;
mod problem;

use std::collections::BTreeMap;
use std::sync::Arc;

use ringfence_intent::model::SourceFile;
use ringfence_inventory::manifests::Manifest;
use serde::Serialize;

pub use problem::Problem;

/// How to translate.
#[derive(Clone, Debug)]
pub struct Options {
    /// The scope that holds every pod (`kubernetes`).
    pub scope: String,
    /// Limit the scope (and node and address filters) to this cluster of the inventory.
    pub cluster: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            scope: "kubernetes".into(),
            cluster: None,
        }
    }
}

/// The translation: the intent files and what was read and written.
#[derive(Clone, Debug)]
pub struct Imported {
    /// (path, text), sorted by path; formatted as `ringfence fmt` writes.
    pub files: Vec<(String, String)>,
    /// What was read and written.
    pub report: Report,
}

/// What was read and written, for `--format json`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Objects read, by kind.
    pub read: BTreeMap<String, usize>,
    /// Objects of other kinds, left out (workloads and services are inventory).
    pub ignored: BTreeMap<String, usize>,
    /// Files written, with how many policies each holds.
    pub written: Vec<FileReport>,
    /// Every policy written, with its source.
    pub policies: Vec<PolicyReport>,
    /// What could not be translated (then nothing is written).
    pub problems: Vec<Problem>,
    /// Warnings of checking the written intent (`ringfence check` shows the same).
    pub warnings: Vec<String>,
}

/// One written file.
#[derive(Clone, Debug, Serialize)]
pub struct FileReport {
    /// Its path in the output directory.
    pub file: String,
    /// Policies it holds.
    pub policies: usize,
}

/// One written policy and where it came from.
#[derive(Clone, Debug, Serialize)]
pub struct PolicyReport {
    /// `SCOPE/NAME`.
    pub id: String,
    /// The intent file it is in.
    pub file: String,
    /// The manifest file of its source object.
    pub source_file: String,
    /// The source object (`NetworkPolicy shop/web`).
    pub source_object: String,
    /// The rule (`spec.ingress[0] spec.ingress[0].from[1]`).
    pub source_rule: String,
}

/// Translate every policy object of `objects` (objects of other kinds are
/// counted as ignored). On any problem, no file is returned.
pub fn translate(objects: &[Manifest], opts: &Options) -> Result<Imported, Box<Report>> {
    let mut report = Report::default();
    for m in objects {
        match parse::policy_kind(m) {
            Some(k) => *report.read.entry(k.to_string()).or_default() += 1,
            None => {
                let k = match m.kind() {
                    "" => "(no kind)".to_string(),
                    k => k.to_string(),
                };
                *report.ignored.entry(k).or_default() += 1;
            }
        }
    }
    let policies = match parse::read(objects) {
        Ok(p) => p,
        Err(mut problems) => {
            problems.sort();
            report.problems = problems;
            return Err(Box::new(report));
        }
    };
    let mut e = emit::Emitter::new(opts);

    emit_tier(&mut e, &policies.cluster, model::Tier::Admin);
    let namespaces: Vec<String> = policies.namespaced.keys().cloned().collect();
    for (ns, rules) in &policies.namespaced {
        let file = emit::namespace_file(ns);
        for r in rules {
            e.rule(r, &file, false);
        }
        let iso: Vec<&model::Isolation> = policies
            .isolation
            .iter()
            .filter(|i| &i.namespace == ns)
            .collect();
        e.isolation(ns, &iso);
    }
    emit_tier(&mut e, &policies.cluster, model::Tier::Baseline);
    report.policies = std::mem::take(&mut e.report);
    let raw = e.files(&namespaces);

    // Canonical layout, and a check that the result is valid intent.
    let mut files = Vec::with_capacity(raw.len());
    for (i, (path, text)) in raw.into_iter().enumerate() {
        match ringfence_intent::format_source(i, &text) {
            Ok(t) => files.push((path, t)),
            Err(d) => {
                report
                    .problems
                    .push(internal(&path, &format!("{:?}", d.0.first())));
                return Err(Box::new(report));
            }
        }
    }
    let sources: Vec<SourceFile> = files
        .iter()
        .map(|(path, text)| SourceFile {
            path: path.clone(),
            text: Arc::from(text.as_str()),
        })
        .collect();
    let checked = ringfence_intent::load(sources.clone());
    if checked.intent.is_none() || checked.diagnostics.has_errors() {
        let text = ringfence_intent::render_human(&checked.diagnostics, &sources, false, 100);
        report.problems.push(internal("(output)", &text));
        return Err(Box::new(report));
    }
    report.warnings = checked
        .diagnostics
        .0
        .iter()
        .map(|d| {
            ringfence_intent::render_human(
                &ringfence_intent::Diagnostics(vec![d.clone()]),
                &sources,
                false,
                100,
            )
        })
        .collect();
    report.written = files
        .iter()
        .map(|(path, _)| FileReport {
            file: path.clone(),
            policies: report.policies.iter().filter(|p| &p.file == path).count(),
        })
        .collect();
    Ok(Imported { files, report })
}

/// The translation produced intent that does not check clean: a bug here.
fn internal(file: &str, what: &str) -> Problem {
    Problem {
        file: file.to_string(),
        object: String::new(),
        field: String::new(),
        message: format!("the translation does not check clean: {what}"),
        help: "report this to the ringfence developers with the manifests".into(),
    }
}

/// Emit the rules of one tier's cluster policies, by priority (then as read):
/// the administrator tier as absolute policies in the cluster file, the
/// baseline tier as default policies in the baseline file.
fn emit_tier(e: &mut emit::Emitter<'_>, cluster: &[model::Cluster], tier: model::Tier) {
    let (file, absolute) = match tier {
        model::Tier::Admin => (emit::CLUSTER_FILE, true),
        model::Tier::Baseline => (emit::BASELINE_FILE, false),
    };
    let mut of_tier: Vec<&model::Cluster> = cluster.iter().filter(|c| c.tier == tier).collect();
    of_tier.sort_by_key(|c| c.priority);
    for r in of_tier.iter().flat_map(|c| &c.rules) {
        e.rule(r, file, absolute);
    }
}
