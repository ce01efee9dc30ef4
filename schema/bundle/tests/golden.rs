//! The exact bytes of a small bundle and index (pinned seed, time and
//! generation), so any change of the format shows up in review. On a
//! mismatch the new bytes are written next to the golden file as `.actual`:
//! diff them, and if the change is intended, move them over the golden file.

use std::path::PathBuf;

use crate::common::*;
use ringfence_bundle::{seal_index, verify_bundle, verify_index};

fn check(name: &str, actual: &[u8]) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let actual_path = path.with_extension(format!(
        "{}.actual",
        path.extension().unwrap().to_str().unwrap()
    ));
    let expected = std::fs::read(&path).unwrap_or_default();
    if expected != actual {
        std::fs::write(&actual_path, actual).unwrap();
        panic!(
            "{} differs from the committed golden bytes; wrote {} — review the format change and move it over the golden file if intended",
            path.display(),
            actual_path.display()
        );
    }
    let _ = std::fs::remove_file(&actual_path);
}

#[test]
fn small_bundle_and_index_match_their_golden_bytes() {
    let bytes = bundle();
    check("small.bundle", &bytes);
    // The golden file itself verifies (and is what an agent test may read).
    assert!(verify_bundle(&bytes, &trust(), &expect()).is_ok());

    let index = seal_index(
        &index_of("2026-01-01T00:00:00Z", vec![entry(&payload(), &bytes)]),
        &[&key()],
    );
    check("small.index.json", &index);
    assert!(verify_index(&index, &trust()).is_ok());

    // The fixture key's public half, so other tests can trust the golden files.
    check("small.pub", key().trusted().to_pem().as_bytes());
}
