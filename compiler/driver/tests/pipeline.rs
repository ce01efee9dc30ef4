//! The pipeline on the example intent and on broken input: each stage gives
//! its value with its diagnostics, no value when errors stop it, and an
//! error only when it cannot run; the same inputs seal the same bytes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ringfence_bundle::parse_time;
use ringfence_driver::bundles::Output;
use ringfence_driver::{DriverError, IntentFrom, Pipeline, Seal};
use ringfence_source::Selector;
use ringfence_testkit::keys::key;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn example() -> PathBuf {
    workspace().join("policies-example")
}

fn inventory() -> Vec<PathBuf> {
    vec![example().join("inventory/prod-eu1.json")]
}

/// Check, compile, render and seal the example into `out`.
fn compile_example(pipeline: &Pipeline, out: &Path, repository: Option<&str>) -> usize {
    let dir = example();
    let from = IntentFrom::Dir(&dir, Selector::WorkingTree);
    let checked = pipeline.check(&from).unwrap();
    assert!(checked.output.is_some(), "{:?}", checked.diagnostics);
    assert!(!checked.files.is_empty());
    let inv = pipeline.inventory(&inventory(), &[]).unwrap();
    let compiled = pipeline.compile(checked, inv);
    let session = compiled.output.expect("the example compiles");
    // Compile carries check's warnings on, and the session keeps them.
    assert_eq!(session.warnings, compiled.diagnostics);
    let rendered = pipeline.render(&session).unwrap();
    let nodes = rendered.output.expect("the example renders");
    assert_eq!(nodes.len(), session.compiled.nodes().len());
    let k = key(5);
    let sealed = pipeline
        .seal(
            &session,
            &nodes,
            &Seal {
                output: Output {
                    out,
                    keys: &[&k],
                    issued_at: parse_time("2026-01-01T00:00:00Z").unwrap(),
                    expires: Duration::from_secs(86_400),
                    generation: None,
                },
                repository: repository.map(String::from),
                keep_from: None,
            },
        )
        .unwrap();
    let summary = sealed.output.expect("sealed");
    assert!(sealed.diagnostics.0.is_empty());
    summary.nodes.len()
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn the_example_goes_through_every_stage_and_seals_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let pipeline = Pipeline::new();
    let repo = Some("https://git.example.invalid/intent.git");
    let n = compile_example(&pipeline, &a, repo);
    assert!(n > 1);
    // A second run of the same pipeline (its plugin runtime reused) and a
    // fresh pipeline write the same bytes.
    compile_example(&pipeline, &b, repo);
    assert_eq!(files(&a), files(&b));
    let c = tmp.path().join("c");
    compile_example(&Pipeline::new(), &c, repo);
    assert_eq!(files(&a), files(&c));
    // The repository is recorded in the bundles' source.
    let d = tmp.path().join("d");
    compile_example(&pipeline, &d, None);
    assert_ne!(files(&a), files(&d));
}

#[test]
fn invalid_intent_stops_with_its_errors_and_keeps_the_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.kdl"), "scope \"x\" {\n    bogus 1\n}\n").unwrap();
    let pipeline = Pipeline::new();
    let checked = pipeline
        .check(&IntentFrom::Dir(dir.path(), Selector::WorkingTree))
        .unwrap();
    assert!(checked.output.is_none());
    assert!(checked.diagnostics.has_errors());
    assert_eq!(checked.files.len(), 1);
    let errors = checked.diagnostics.error_count();
    let inv = pipeline.inventory(&inventory(), &[]).unwrap();
    let compiled = pipeline.compile(checked, inv);
    assert!(compiled.output.is_none());
    assert_eq!(compiled.diagnostics.error_count(), errors);
    assert_eq!(compiled.files[0].path, "a.kdl");
}

#[test]
fn a_stage_that_cannot_run_is_an_error() {
    let pipeline = Pipeline::new();
    let empty = tempfile::tempdir().unwrap();
    let e = pipeline
        .check(&IntentFrom::Dir(empty.path(), Selector::WorkingTree))
        .unwrap_err();
    assert!(matches!(e, DriverError::Empty(_)), "{e}");
    assert!(e.to_string().contains("no *.kdl intent files"), "{e}");
    let e = pipeline
        .inventory(&[empty.path().join("absent.json")], &[])
        .unwrap_err();
    assert!(matches!(e, DriverError::Inventory(_)), "{e}");
    assert!(e.to_string().contains("absent.json"), "{e}");
}
