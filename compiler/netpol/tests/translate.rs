//! The translation, file by file, of the Kubernetes documentation's examples
//! and of administrator policies (snapshots), and the problems of objects
//! the API server would refuse or that have no exact translation.

use ringfence_inventory::manifests::parse;
use ringfence_netpol::{Options, translate};

fn files(yaml: &str) -> String {
    let objects = parse(yaml, "policies.yaml").unwrap();
    let imported = translate(&objects, &Options::default()).unwrap_or_else(|r| {
        panic!(
            "{}",
            r.problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    imported
        .files
        .iter()
        .map(|(path, text)| format!("=== {path}\n{text}"))
        .collect()
}

fn problems(yaml: &str) -> String {
    let objects = parse(yaml, "policies.yaml").unwrap();
    let report = translate(&objects, &Options::default()).expect_err("refused");
    report.problems.iter().map(|p| format!("{p}\n")).collect()
}

fn settings() -> insta::internals::SettingsBindDropGuard {
    let mut s = insta::Settings::clone_current();
    s.set_prepend_module_to_snapshot(false);
    s.set_omit_expression(true);
    s.bind_to_scope()
}

/// kubernetes.io, "Network Policies": the sample policy and the defaults.
const DOCS: &str = include_str!("fixtures/docs-examples.yaml");

#[test]
fn the_documentation_examples() {
    let _s = settings();
    insta::assert_snapshot!("docs-examples", files(DOCS));
}

const ADMIN: &str = include_str!("fixtures/admin-policies.yaml");

#[test]
fn administrator_policies() {
    let _s = settings();
    insta::assert_snapshot!("admin-policies", files(ADMIN));
}

const INVALID: &str = include_str!("fixtures/invalid.yaml");

#[test]
fn invalid_and_untranslatable_objects_are_refused_with_file_object_and_field() {
    let _s = settings();
    insta::assert_snapshot!("problems", problems(INVALID));
}

#[test]
fn policy_types_are_inferred_and_rules_of_other_directions_ignored() {
    // Without policyTypes an egress section makes it Egress too; Ingress always.
    let yaml = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-only-by-mistake, namespace: a}
spec:
  podSelector: {matchLabels: {app: x}}
  egress:
  - to: [{podSelector: {}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: listed-ingress-only, namespace: b}
spec:
  podSelector: {}
  policyTypes: [Ingress]
  egress:
  - to: [{podSelector: {}}]
"#;
    let out = files(yaml);
    // a: isolated both ways; b: ingress only, its egress rule ignored.
    assert!(out.contains("deny \"a.isolate-ingress\""), "{out}");
    assert!(out.contains("deny \"a.isolate-egress\""), "{out}");
    assert!(out.contains("deny \"b.isolate-ingress\""), "{out}");
    assert!(!out.contains("b.isolate-egress"), "{out}");
    assert!(!out.contains("b.listed-ingress-only.egress"), "{out}");
}

#[test]
fn output_is_formatted_and_checks_clean_and_is_deterministic() {
    let a = files(DOCS);
    let b = files(DOCS);
    assert_eq!(a, b);
    let objects = parse(ADMIN, "p.yaml").unwrap();
    let imported = translate(&objects, &Options::default()).unwrap();
    for (path, text) in &imported.files {
        assert_eq!(
            &ringfence_intent::format_source(0, text).unwrap(),
            text,
            "{path} is not as `ringfence fmt` writes it"
        );
    }
    // Every written policy is reported with its source.
    let r = &imported.report;
    assert_eq!(r.read.get("AdminNetworkPolicy"), Some(&2));
    assert!(r.policies.iter().all(|p| !p.source_object.is_empty()));
    let total: usize = r.written.iter().map(|f| f.policies).sum();
    assert_eq!(total, r.policies.len());
}
