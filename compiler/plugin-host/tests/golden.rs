//! Golden files for the nftables output of the hand-written IRs, each also
//! checked by `nft -c`. A mismatch writes `<name>.nft.actual` next to the
//! golden file; `RINGFENCE_BLESS=1` rewrites the golden files.

use std::path::PathBuf;

use ringfence_schema::ir::Os;

use crate::common::{fixtures, netns, render_nft};

fn golden(name: &str, actual: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let path = dir.join(format!("{name}.nft"));
    let actual_path = dir.join(format!("{name}.nft.actual"));
    if std::env::var_os("RINGFENCE_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        std::fs::write(&actual_path, actual).unwrap();
        panic!(
            "{} differs from the golden file; review {} and rename it if it is right (or RINGFENCE_BLESS=1)",
            name,
            actual_path.display()
        );
    }
    let _ = std::fs::remove_file(actual_path);
}

#[test]
fn hand_written_irs_match_golden_and_nft_accepts_them() {
    for (name, ir) in [
        ("basic", fixtures::basic(Os::Linux)),
        ("full", fixtures::full(Os::Linux)),
    ] {
        let text = render_nft(&ir);
        golden(name, &text);
        if netns::available() {
            netns::nft_check(&text);
        }
    }
}

#[test]
fn rendering_is_deterministic() {
    let ir = fixtures::full(Os::Linux);
    assert_eq!(render_nft(&ir), render_nft(&ir));
}
