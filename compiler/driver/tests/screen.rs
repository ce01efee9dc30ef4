//! A backend whose output reaches beyond `table inet ringfence` fails the
//! build by name, before anything is signed (issue 15 §1): the pinned
//! `escape` plugin (`plugins/hostile`) hides `delete table ip victim` after
//! a quoted `{`. The agent's own screen (`ringfence_nft`) judges it.

use std::path::{Path, PathBuf};

use ringfence_driver::bundles::Output;
use ringfence_driver::render::check_pins;
use ringfence_driver::{IntentFrom, Pipeline, Seal};
use ringfence_source::Selector;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// An intent directory whose Linux nodes use the pinned plugin `file`,
/// pinned with `sha256`.
fn intent(dir: &Path, file: &Path, sha256: &str) {
    std::fs::copy(file, dir.join("backend.wasm")).unwrap();
    std::fs::write(
        dir.join("a.kdl"),
        format!(
            "plugin \"hostile\" path=\"backend.wasm\" sha256=\"{sha256}\"\n\
             scope \"prod-eu1\" {{\n    query {{\n        cluster \"prod-eu1\"\n    }}\n    \
             catch-all ingress=\"allow\" egress=\"allow\"\n    backend linux=\"hostile\"\n}}\n"
        ),
    )
    .unwrap();
}

fn sha256_of(file: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(file)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

#[test]
fn a_backend_reaching_beyond_our_table_fails_the_build_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = repo().join("plugins/dist/test/escape.wasm");
    intent(dir.path(), &wasm, &sha256_of(&wasm));
    let from = IntentFrom::Dir(dir.path(), Selector::WorkingTree);
    let inv = [repo().join("policies-example/inventory/prod-eu1.json")];
    let pipeline = Pipeline::new();
    let s = pipeline.session(&from, &inv, &[]).unwrap().output.unwrap();
    let rendered = pipeline.render(&s).unwrap();
    let diags = &rendered.diagnostics;
    assert!(diags.has_errors());
    let d = diags
        .0
        .iter()
        .find(|d| d.code == "ringfence::backend-unsafe-output")
        .unwrap_or_else(|| panic!("{diags:?}"));
    assert!(d.message.contains("backend `hostile`"), "{}", d.message);
    assert!(
        d.message.contains("family `ip` is not inet"),
        "{}",
        d.message
    );
    // No node got files to sign.
    assert!(rendered.output.is_none());

    // Sealing as nodes are rendered: the Windows node's bundle is sealed
    // (its backend is not the hostile one), then removed with the rest:
    // nothing is left, not even a temporary file.
    let out = dir.path().join("out");
    let k = ringfence_testkit::keys::key(1);
    let sealed = pipeline
        .render_seal(
            &s,
            &Seal {
                output: Output {
                    out: &out,
                    keys: &[&k],
                    issued_at: ringfence_bundle::parse_time("2026-01-01T00:00:00Z").unwrap(),
                    expires: std::time::Duration::from_secs(86_400),
                    generation: None,
                },
                repository: None,
                keep_from: None,
            },
        )
        .unwrap();
    assert!(sealed.output.is_none());
    assert_eq!(sealed.diagnostics, rendered.diagnostics);
    let left: Vec<_> = std::fs::read_dir(&out).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Issue 16 §4: `check` refuses a wrong pin with the rule `render` uses.
#[test]
fn a_wrong_pin_is_an_error_for_check_as_for_render() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = repo().join("plugins/dist/test/escape.wasm");
    intent(dir.path(), &wasm, &"0".repeat(64));
    let from = IntentFrom::Dir(dir.path(), Selector::WorkingTree);
    let pipeline = Pipeline::new();
    let checked = pipeline.check(&from).unwrap();
    let pins = check_pins(&checked.output.as_ref().unwrap().intent, dir.path());
    assert_eq!(pins.0.len(), 1);
    assert_eq!(pins.0[0].code, "ringfence::plugin-load");
    assert!(
        pins.0[0].message.contains("but intent pins 0000"),
        "{}",
        pins.0[0].message
    );
    let inv = [repo().join("policies-example/inventory/prod-eu1.json")];
    let inventory = pipeline.inventory(&inv, &[]).unwrap();
    let session = pipeline.compile(checked, inventory).output.unwrap();
    let backends = pipeline.backends(&session).unwrap();
    assert!(
        backends.output.is_none(),
        "render loaded a wrongly pinned plugin"
    );
    let load = backends.diagnostics;
    assert_eq!(load.0[0].message, pins.0[0].message);
}
