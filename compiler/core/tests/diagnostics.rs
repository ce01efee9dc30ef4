//! What the core reports about intent, with spans into the intent text
//! (each scenario's intent is a file in `fixtures/`).

use ringfence_core::compile;
use ringfence_intent::model::{Intent, Proto};
use ringfence_intent::{Diagnostic, Severity};
use ringfence_inventory::model::Inventory;
use ringfence_testkit::builder::{PodExt, ServiceExt, cluster_c1, pod, service};
use ringfence_testkit::fixtures;

fn inv() -> Inventory {
    cluster_c1(
        1,
        vec![
            pod("a", "web-1", "n1", &["10.0.0.1"])
                .labels(&[("app", "web")])
                .port("http", 8080, Proto::Tcp),
            pod("a", "web-2", "n1", &["10.0.0.2"]).labels(&[("app", "web")]),
            pod("b", "db-1", "n1", &["10.0.1.1"]).labels(&[("app", "db")]),
        ],
        vec![
            service("a", "web", &[("app", "web")], "172.20.0.1").named_port(Proto::Tcp, 80, "http"),
        ],
    )
}

/// The line (1-based) a diagnostic's primary label points at.
/// The one diagnostic of `code` among `diags`, a warning.
fn one_warning<'d>(diags: &'d [Diagnostic], code: &str) -> &'d Diagnostic {
    let found: Vec<&Diagnostic> = diags.iter().filter(|d| d.code == code).collect();
    assert_eq!(found.len(), 1, "{code}: {diags:#?}");
    assert_eq!(found[0].severity, Severity::Warning);
    found[0]
}

fn line(intent: &Intent, d: &Diagnostic) -> u32 {
    intent
        .location(d.primary.as_ref().expect("a primary label").0)
        .1
}

fn line_of(intent: &Intent, needle: &str) -> u32 {
    let text = &intent.files[0].text;
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` in the intent"));
    intent
        .location(ringfence_intent::model::Span {
            file: 0,
            offset: at,
            len: 0,
        })
        .1
}

#[test]
fn a_cluster_in_two_top_level_scopes_is_an_error() {
    let intent = fixtures::intent(include_str!("fixtures/two-top-level-scopes.kdl"));
    let (c, diags) = compile(&intent, &inv());
    assert!(c.is_none(), "no IR is produced");
    assert_eq!(diags.len(), 1, "{diags:#?}");
    let d = &diags[0];
    assert_eq!(
        (d.severity, d.code),
        (Severity::Error, "ringfence::cluster-split")
    );
    assert!(
        d.message.contains("`c1`")
            && d.message.contains("`apps-a`")
            && d.message.contains("`apps-b`"),
        "{}",
        d.message
    );
    assert!(
        d.message.contains("b/db-1"),
        "names an example workload: {}",
        d.message
    );
    assert_eq!(line(&intent, d), line_of(&intent, "scope \"apps-b\""));
    assert_eq!(
        intent.location(d.labels[0].0).1,
        line_of(&intent, "scope \"apps-a\"")
    );
    assert!(
        d.help
            .as_deref()
            .unwrap()
            .contains("exactly one top-level scope")
    );
}

#[test]
fn shadowed_and_conflicting_policies_are_reported_at_the_policy() {
    let intent = fixtures::intent(include_str!("fixtures/shadowed.kdl"));
    let (c, diags) = compile(&intent, &inv());
    assert!(c.is_some());
    let d = one_warning(&diags, "ringfence::shadowed-policy");
    assert!(
        d.message.contains("`top/both`")
            && d.message.contains("`top/one`")
            && d.message.contains("`top/two`"),
        "{}",
        d.message
    );
    assert_eq!(line(&intent, d), line_of(&intent, "deny \"both\""));
    assert_eq!(d.labels.len(), 2, "points at the shadowing policies too");
    let conflicts: Vec<&Diagnostic> = diags
        .iter()
        .filter(|d| d.code == "ringfence::conflicting-policy")
        .collect();
    assert_eq!(conflicts.len(), 1, "{diags:#?}");
    assert!(
        conflicts[0].message.contains("`top/wider` (deny)")
            && conflicts[0].message.contains("`top/two` (allow)")
    );
    assert_eq!(
        line(&intent, conflicts[0]),
        line_of(&intent, "deny \"wider\"")
    );
    // Sorted by position.
    let lines: Vec<u32> = diags.iter().map(|d| line(&intent, d)).collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");
    // The shadowed policy left no rule anywhere.
    for ir in c.unwrap().nodes() {
        assert!(
            ir.chains
                .iter()
                .flat_map(|c| &c.rules)
                .all(|r| r.policy != "top/both")
        );
    }
}

#[test]
fn services_that_do_not_fit_the_policy_are_warnings() {
    let intent = fixtures::intent(include_str!("fixtures/services-misfit.kdl"));
    let (c, diags) = compile(&intent, &inv());
    let c = c.expect("warnings only");
    let codes: Vec<&str> = diags.iter().map(|d| d.code).collect();
    assert_eq!(
        codes,
        [
            "ringfence::unknown-service",
            "ringfence::unknown-service-port",
            "ringfence::unresolved-target-port"
        ],
        "{diags:#?}"
    );
    assert!(diags[0].message.contains("`a/nope`"));
    assert!(
        diags[1].message.contains("8080") && diags[1].help.as_deref().unwrap().contains("tcp 80")
    );
    assert!(diags[2].message.contains("`a/web-2`") && diags[2].message.contains("`http`"));
    assert_eq!(
        line(&intent, &diags[2]),
        line_of(&intent, "allow \"wrong-port\"")
    );
    // web-1 declares `http` (8080) and is opened on it; web-2 is skipped.
    let ir = &c.nodes()[0];
    let ingress = |ep: &str| ir.chain(&ir.endpoint(ep).unwrap().ingress).unwrap();
    let db: std::net::IpAddr = "10.0.1.1".parse().unwrap();
    let web1 = ingress("pod/a/web-1");
    assert_eq!(
        ir.first_match(web1, db, Proto::Tcp, Some(8080))
            .unwrap()
            .policy,
        "top/wrong-port"
    );
    let web2 = ingress("pod/a/web-2");
    assert_eq!(
        ir.first_match(web2, db, Proto::Tcp, Some(8080))
            .unwrap()
            .policy,
        "top/catch-all-ingress"
    );
}

/// Sibling scopes that share workloads are ordered by declaration, not by
/// depth: `web`, shallower but declared later, decided before `apps-inner`
/// for the web pods without a word.
#[test]
fn scopes_that_do_not_form_a_chain_are_a_warning_with_both_spans() {
    let intent = fixtures::intent(include_str!("fixtures/scopes-no-chain.kdl"));
    let (c, diags) = compile(&intent, &inv());
    assert!(c.is_some());
    let d = one_warning(&diags, "ringfence::scopes-share-workloads");
    assert_eq!(
        d.message,
        "`a/web-1` and 1 other workload are in both `apps-inner` and `web`, neither inside the \
         other: `web` comes later in priority order, so its default policies decide before \
         `apps-inner`'s and its catch-all applies"
    );
    assert_eq!(line(&intent, d), line_of(&intent, "scope \"web\""));
    assert_eq!(
        intent.location(d.labels[0].0).1,
        line_of(&intent, "scope \"apps-inner\"")
    );
    // A chain (top > apps > apps-inner, top > db) is no finding.
    let (_, diags) = compile(
        &fixtures::intent(include_str!("fixtures/scopes-chain.kdl")),
        &inv(),
    );
    assert!(
        diags
            .iter()
            .all(|d| d.code != "ringfence::scopes-share-workloads"),
        "{diags:#?}"
    );
}
