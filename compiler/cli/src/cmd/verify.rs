//! `ringfence verify`: check a bundle exactly as an agent would — trusted
//! signatures, node, generation, expiry, file digests, and optionally its
//! listing in a signed index. Exit 0 valid, 1 refused (the reason on
//! stdout), 2 could not run (unreadable files, bad flags).

use std::path::Path;
use std::time::SystemTime;

use anyhow::Context;
use ringfence_bundle::{
    Expectations, MAX_BUNDLE_BYTES, Trust, VerifiedBundle, VerifyError, load_trusted_keys,
    parse_time, verify_bundle, verify_index,
};
use ringfence_schema::bundle::{SourceKind, SourceRef};
use serde_json::json;

use crate::Exit;
use crate::cmd::output;
use crate::flags::{Format, VerifyArgs};

/// Read at most one byte more than a verifier accepts, so an endless file
/// is cut short and then refused as too large (regular files only).
fn read_capped(path: &Path) -> anyhow::Result<Vec<u8>> {
    ringfence_bundle::read_capped(path, MAX_BUNDLE_BYTES as u64 + 1)
        .with_context(|| format!("cannot read {}", path.display()))
}

fn source_text(s: &SourceRef) -> String {
    match (s.kind, &s.commit) {
        (SourceKind::Commit, Some(c)) => format!("commit {c}"),
        (SourceKind::Commit, None) => "a commit".into(),
        (SourceKind::Index, _) => "the git index (staged files)".into(),
        (SourceKind::WorkingTree, _) => "the working tree".into(),
    }
}

fn accepted(path: &Path, v: &VerifiedBundle, format: Format) -> anyhow::Result<()> {
    let p = &v.payload;
    match format {
        Format::Json | Format::Yaml => {
            let files: Vec<_> = p
                .files
                .iter()
                .map(|f| json!({"name": f.name, "sha256": f.sha256, "size": f.size}))
                .collect();
            let out = json!({
                "ok": true,
                "bundle": path.display().to_string(),
                "cluster": p.cluster,
                "node": p.node,
                "os": p.os,
                "generation": p.generation,
                "backend": p.backend,
                "source": p.source,
                "issued_at": p.issued_at,
                "expires_at": p.expires_at,
                "inventory_sha256": p.inventory_sha256,
                "sha256": v.sha256,
                "rules_sha256": v.rules_sha256(),
                "signers": v.signers,
                "files": files,
            });
            output::structured(&mut std::io::stdout().lock(), format == Format::Yaml, &out)
        }
        Format::Txt => output::line(format!(
            "ok: node {} generation {} ({} {}) from {}, expires {}, signed by {}",
            p.node,
            p.generation,
            p.backend.name,
            p.backend.version,
            source_text(&p.source),
            p.expires_at,
            v.signers.join(", ")
        )),
    }
}

fn refused(path: &Path, what: &str, e: &VerifyError, format: Format) -> anyhow::Result<Exit> {
    let doc = || {
        json!({
            "ok": false,
            "file": path.display().to_string(),
            "what": what,
            "reason": e.reason.code(),
            "detail": e.detail,
        })
    };
    match format {
        Format::Json | Format::Yaml => output::structured(
            &mut std::io::stdout().lock(),
            format == Format::Yaml,
            &doc(),
        )?,
        Format::Txt => {
            let which = if what == "index" { "index " } else { "" };
            output::line(format!(
                "{}: {which}{}: {}",
                e.reason,
                path.display(),
                e.detail
            ))?
        }
    }
    Ok(Exit::Findings)
}

pub(crate) fn run(args: VerifyArgs) -> anyhow::Result<Exit> {
    // The rule the agent applies too: one implementation.
    let trust = Trust::checked(load_trusted_keys(&args.trust)?, args.threshold)
        .map_err(anyhow::Error::msg)?;
    let now = match &args.now {
        Some(s) => parse_time(s).map_err(|e| anyhow::anyhow!("--now: {e}"))?,
        // The CLI is not the compiler: checking a bundle now means now.
        None => SystemTime::now(),
    };
    let bytes = read_capped(&args.bundle)?;
    let index = match &args.index {
        Some(path) => match verify_index(&read_capped(path)?, &trust) {
            Ok(index) => Some(index),
            Err(e) => return refused(path, "index", &e, args.format),
        },
        None => None,
    };
    let expect = Expectations {
        node: args.node.as_deref(),
        min_generation: args.min_generation,
        now: Some(now),
        index: index.as_ref(),
    };
    match verify_bundle(&bytes, &trust, &expect) {
        Ok(v) => {
            accepted(&args.bundle, &v, args.format)?;
            Ok(Exit::Clean)
        }
        Err(e) => refused(&args.bundle, "bundle", &e, args.format),
    }
}
