//! Rendered nodes and write options for the sealing tests, here and in the
//! CLI's `verify` tests: nftables text that carries `rules`, and a valid empty
//! IR (verification parses and validates it).

use std::path::Path;
use std::time::Duration;

use ringfence_bundle::{SigningKey, parse_time};
use ringfence_driver::bundles::{Files, NodeOutput, Output, WriteOptions};
use ringfence_schema::bundle::{BackendRef, SourceKind, SourceRef};
use ringfence_schema::ir::Os;

/// A Linux node of `cluster` whose rules say `rules`.
pub(crate) fn node(cluster: &str, name: &str, rules: &str) -> NodeOutput {
    NodeOutput {
        cluster: cluster.into(),
        node: name.into(),
        os: Os::Linux,
        backend: BackendRef {
            name: "nftables".into(),
            version: "0.1.0".into(),
            sha256: "ab".repeat(32),
        },
        files: Files::new(vec![
            (
                "rules.nft".into(),
                format!(
                    "table inet ringfence {{\n\tchain c {{\n\t\tcounter comment \"{rules}\"\n\t}}\n}}\n"
                ),
            ),
            (
                "ir.json".into(),
                format!(
                    "{{\"ir_version\":3,\"cluster\":\"{cluster}\",\"node\":\"{name}\",\"os\":\"linux\",\"backend\":\"nftables\",\"addresses\":[],\"endpoints\":[],\"chains\":[],\"sets\":[],\"policies\":[]}}"
                ),
            ),
        ]),
    }
}

/// Bundles of commit `abc123`, issued at `time`, valid 7 days, the
/// generation from the previous index.
pub(crate) fn opts<'a>(out: &'a Path, keys: &'a [&'a SigningKey], time: &str) -> WriteOptions<'a> {
    WriteOptions {
        output: Output {
            out,
            keys,
            issued_at: parse_time(time).unwrap(),
            expires: Duration::from_secs(7 * 86_400),
            generation: None,
        },
        source: SourceRef {
            repository: None,
            commit: Some("abc123".into()),
            tree: None,
            kind: SourceKind::Commit,
        },
        inventory_sha256: "11".repeat(32),
    }
}
