//! The fixture corpus: every `tests/fixtures/intent/valid/<case>` must check
//! clean (its model summary is snapshotted), every `invalid/<case>` must fail
//! (its rendered diagnostics are snapshotted), and `policies-example` must
//! check clean.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ringfence_intent::model::{Intent, Predicate, Query, SourceFile, Target, ports_value};
use ringfence_intent::{Checked, load, render_human, to_json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `*.kdl` under `dir`, recursively, sorted by relative path.
fn read_dir(dir: &Path) -> Vec<SourceFile> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<SourceFile>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else if p.extension().is_some_and(|x| x == "kdl") {
                let rel = p
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                let text = std::fs::read_to_string(&p).unwrap();
                out.push(SourceFile {
                    path: rel,
                    text: Arc::from(text),
                });
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn cases(kind: &str) -> Vec<(String, PathBuf)> {
    let dir = root().join("tests/fixtures/intent").join(kind);
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    v.sort();
    v
}

fn target(i: &Intent, t: &Target) -> String {
    match t {
        Target::Any => "any".into(),
        Target::Filter(f) => format!("filter:{}", i.filter(*f).name),
        Target::Scope(s) => format!("scope:{}", i.scope(*s).name),
        Target::External(e) => format!("external:{}", i.external(*e).name),
        Target::Service { namespace, name } => format!("service:{namespace}/{name}"),
    }
}

fn query(i: &Intent, q: &Query) -> String {
    let list = |qs: &[Query]| {
        qs.iter()
            .map(|q| query(i, q))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match q {
        Query::All(qs) => format!("all({})", list(qs)),
        Query::Any(qs) => format!("any({})", list(qs)),
        Query::Not(q) => format!("not({})", query(i, q)),
        Query::Pred(Predicate::Filter(f), _) => format!("matches {}", i.filter(*f).name),
        Query::Pred(Predicate::Scope(s), _) => format!("in-scope {}", i.scope(*s).name),
        Query::Pred(p, _) => format!("{p:?}"),
    }
}

/// A readable summary of the model: scope tree in priority order, filters,
/// the global policy order, catch-alls, quarantine and plugins.
fn summary(i: &Intent) -> String {
    let mut s = String::new();
    for (id, sc) in i.scope_ids().zip(&i.scopes) {
        let (file, line, _) = i.location(sc.span);
        writeln!(
            s,
            "scope {} {}{} [{:?}, linux={}, windows={}] {}:{line}\n  query {}",
            id.index(),
            "  ".repeat(i.depth(id)),
            sc.name,
            i.enforcement(id),
            i.backend(Some(id), ringfence_intent::model::Os::Linux),
            i.backend(Some(id), ringfence_intent::model::Os::Windows),
            file,
            query(i, &sc.query),
        )
        .unwrap();
    }
    for f in &i.filters {
        let owner = f.owner.map_or("-".to_string(), |o| i.scope(o).name.clone());
        writeln!(
            s,
            "filter {} owner={owner} restrict={} {}",
            f.name,
            f.restrict_to_scope,
            query(i, &f.query)
        )
        .unwrap();
    }
    for e in &i.externals {
        writeln!(s, "external {} {:?} {:?}", e.name, e.nets, e.labels).unwrap();
    }
    for k in i.order() {
        let p = &i.policies[k];
        let (file, line, col) = i.location(p.span);
        writeln!(
            s,
            "{:?} {} {}{} {} -> {} {} [{}]{}{} {file}:{line}:{col}",
            p.rank,
            p.id,
            p.action,
            match p.side {
                Some(d) => format!(" ({d:?} side)"),
                None => String::new(),
            },
            target(i, &p.consumer),
            target(i, &p.provider),
            p.proto,
            ports_value(&p.ports, &p.named_ports),
            if p.log { " log" } else { "" },
            p.comment
                .as_ref()
                .map_or(String::new(), |c| format!(" ({c})")),
        )
        .unwrap();
    }
    for c in &i.catch_alls {
        writeln!(
            s,
            "catch-all {} {:?} {}",
            i.scope(c.scope).name,
            c.direction,
            c.action
        )
        .unwrap();
    }
    if let Some(q) = &i.quarantine {
        let fs: Vec<&str> = q
            .filters
            .iter()
            .map(|&f| i.filter(f).name.as_str())
            .collect();
        writeln!(s, "quarantine {fs:?}").unwrap();
        for e in &q.exceptions {
            let ports: Vec<String> = e.ports.iter().map(|r| r.to_string()).collect();
            writeln!(
                s,
                "  {} {:?} {} {} [{}]",
                e.id,
                e.direction,
                target(i, &e.peer),
                e.proto,
                ports.join(",")
            )
            .unwrap();
        }
    }
    for p in &i.plugins {
        writeln!(s, "plugin {} {} {}", p.name, p.path, p.sha256).unwrap();
    }
    s
}

/// Snapshots named as given, without the expression.
fn snapshot_settings() -> insta::internals::SettingsBindDropGuard {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind_to_scope()
}

fn check(dir: &Path) -> (Vec<SourceFile>, Checked) {
    let files = read_dir(dir);
    assert!(!files.is_empty(), "{}: no .kdl files", dir.display());
    let checked = load(files.clone());
    (files, checked)
}

/// Run `f` on every case of `kind` (`valid`, `invalid`, `warn`): its name,
/// files, what checking gave and the diagnostics as people read them.
fn each_case(kind: &str, mut f: impl FnMut(&str, &[SourceFile], Checked, String)) {
    let _guard = snapshot_settings();
    for (name, dir) in cases(kind) {
        let (files, checked) = check(&dir);
        let rendered = render_human(&checked.diagnostics, &files, false, 80);
        f(&name, &files, checked, rendered);
    }
}

#[test]
fn valid_cases_check_clean() {
    each_case("valid", |name, _, checked, rendered| {
        assert!(
            checked.diagnostics.0.is_empty(),
            "valid/{name} is not clean:\n{rendered}"
        );
        let intent = checked.intent.expect("no errors, so a model");
        insta::assert_snapshot!(format!("valid-{name}"), summary(&intent));
    });
}

#[test]
fn invalid_cases_fail_with_their_diagnostics() {
    each_case("invalid", |name, files, checked, rendered| {
        assert!(
            checked.diagnostics.has_errors(),
            "invalid/{name} has no error"
        );
        assert!(checked.intent.is_none(), "invalid/{name} produced a model");
        // Every error names its file and line.
        let json = to_json(&checked.diagnostics, files);
        for d in json["diagnostics"].as_array().unwrap() {
            assert!(
                d["file"].is_string() && d["line"].is_u64(),
                "invalid/{name}: {d}"
            );
            assert!(d["help"].is_string(), "invalid/{name}: no help in {d}");
        }
        insta::assert_snapshot!(format!("invalid-{name}"), rendered);
    });
}

#[test]
fn warning_cases_pass_with_their_warnings() {
    each_case("warn", |name, _, checked, rendered| {
        assert!(
            !checked.diagnostics.has_errors(),
            "warn/{name} has errors:\n{rendered}"
        );
        assert!(
            checked.diagnostics.warning_count() > 0,
            "warn/{name} has no warning"
        );
        assert!(
            checked.intent.is_some(),
            "warn/{name}: warnings must not block the model"
        );
        insta::assert_snapshot!(format!("warn-{name}"), rendered);
    });
}

/// Each code `check` reports is shown by at least one fixture, and every
/// code of the registry is documented under the heading of its stage (and,
/// for `check`'s, its severity), and nothing else is: both ways.
#[test]
fn every_code_has_a_fixture_and_a_doc_entry() {
    use ringfence_intent::Severity;
    use ringfence_intent::diagnostics::{Code, Stage};
    let mut seen = std::collections::BTreeSet::new();
    for kind in ["invalid", "warn"] {
        for (_, dir) in cases(kind) {
            let (_, checked) = check(&dir);
            seen.extend(checked.diagnostics.0.iter().map(|d| d.code));
        }
    }
    for code in Code::ALL.iter().filter(|c| c.stage() == Stage::Check) {
        assert!(seen.contains(code.as_str()), "no fixture reports {code}");
    }
    let doc =
        std::fs::read_to_string(root().join("schema/docs/language/09-diagnostics.md")).unwrap();
    // (section, code) of every `### `ringfence::…`` heading, in order.
    let mut section = "";
    let mut documented = Vec::new();
    for line in doc.lines() {
        if let Some(s) = line.strip_prefix("## ") {
            section = s;
        } else if let Some(h) = line.strip_prefix("### `") {
            let code = h.strip_suffix('`').expect("a heading is one code");
            documented.push((section, code));
        }
    }
    let registered: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    let headings: Vec<&str> = documented.iter().map(|(_, c)| *c).collect();
    assert_eq!(
        headings, registered,
        "09-diagnostics.md documents exactly Code::ALL, in its order"
    );
    for (&(section, _), code) in documented.iter().zip(Code::ALL) {
        let expected = match (code.stage(), code.severity()) {
            (Stage::Check, Severity::Error) => "Errors",
            (Stage::Check, Severity::Warning) => "Warnings",
            (Stage::Compile, _) => "At compile time",
            (Stage::Render, _) => "When rendering",
        };
        assert_eq!(
            section, expected,
            "{code} is documented in the wrong section"
        );
    }
}

/// The registry is the only place a code is spelled: no source of the
/// crates that report diagnostics writes a `ringfence::…` string literal.
#[test]
fn codes_are_written_only_in_the_registry() {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    for krate in ["intent", "core", "driver", "analyze"] {
        walk(&root().join("compiler").join(krate).join("src"), &mut files);
    }
    let registry = root().join("compiler/intent/src/diagnostics.rs");
    for f in files.iter().filter(|f| **f != registry) {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            !text.contains("\"ringfence::"),
            "{} writes a code as a literal: use ringfence_intent::diagnostics::Code",
            f.display()
        );
    }
}

#[test]
fn policies_example_checks_clean() {
    let (files, checked) = check(&root().join("policies-example"));
    assert!(
        checked.diagnostics.0.is_empty(),
        "{}",
        render_human(&checked.diagnostics, &files, false, 80)
    );
    let _guard = snapshot_settings();
    insta::assert_snapshot!("policies-example", summary(&checked.intent.unwrap()));
}

#[test]
fn scope_clusters_are_the_clusters_scope_queries_name() {
    let clusters = |dir: &Path| check(dir).1.intent.unwrap().scope_clusters();
    assert_eq!(clusters(&root().join("policies-example")), ["prod-eu1"]);
    let valid = root().join("tests/fixtures/intent/valid");
    assert_eq!(clusters(&valid.join("single-scope")), ["lab-1", "lab-2"]);
    assert!(clusters(&valid.join("sides-and-pass")).is_empty());
    // Through a filter a scope uses and under `not`; a filter no scope
    // uses names none.
    let text = r#"
filter "prod" { cluster "prod-a" }
filter "lab" { cluster "lab-z" }
scope "a" {
    query { matches "prod" }
    scope "b" { query { not { cluster "prod-b" } } }
    default { allow "x" from="lab" to="a" }
}
"#;
    let checked = load(vec![SourceFile::new("a.kdl", text)]);
    let intent = checked
        .intent
        .unwrap_or_else(|| panic!("{:?}", checked.diagnostics));
    assert_eq!(intent.scope_clusters(), ["prod-a", "prod-b"]);
}
