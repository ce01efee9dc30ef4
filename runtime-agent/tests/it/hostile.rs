//! Issue 15, tried as an attacker would: a hostile signer (a stolen key or a
//! pinned backend re-signing `rules.nft`), a hostile network and a hostile
//! node. Real nftables in network namespaces, each with a foreign table
//! `ip victim` that must survive byte for byte.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use ringfence_agent::agent::{Agent, BundleOutcome};
use ringfence_agent::applier::Applier;
use ringfence_agent::exec::{Cmd, ExecError, Output, Runner, SystemRunner};
use ringfence_agent::nft::NftApplier;
use ringfence_agent::state::StateDir;
use ringfence_schema::report::Status;

use crate::fixture::{Spec, bundle, index, render, seal};
use crate::support::{Keys, Netns, agent, apply_ok, bin, config, open_state};

fn now() -> SystemTime {
    SystemTime::now()
}

/// A foreign table the agent must never touch.
fn victim(ns: &Netns) -> String {
    ns.sh("nft add table ip victim && nft add chain ip victim c && nft add rule ip victim c counter accept");
    ns.sh("nft list table ip victim")
}

/// A namespace with a [`victim`] (its listing), keys, and a state directory.
fn with_victim(tag: &str) -> (Netns, String, Keys, PathBuf) {
    let ns = Netns::new(tag);
    let v = victim(&ns);
    let keys = Keys::new();
    let state = keys.path("state");
    (ns, v, keys, state)
}

const BYPASS: &str = "table inet ringfence {\n    chain rt_bypass {\n        counter comment \"{\"\n    }\n}\ndelete table ip victim\n";
const DEFINE: &str = "define brace = \"{\"\nflush table ip victim\n";

/// Items 1 and 2: re-signed bundles whose `rules.nft` reaches beyond our
/// table are refused before anything runs; the victim and the rules in
/// force stay byte-identical, and no file content reaches the report.
#[test]
fn forged_rules_never_reach_beyond_our_table() {
    let ns = Netns::new("forge");
    ns.fake_kube_proxy();
    let v = victim(&ns);
    let keys = Keys::new();
    let secret = keys.path("shadow");
    std::fs::write(&secret, "root:$6$SECRETMARK:19000:0:99999:7:::\n").unwrap();
    let state = keys.path("state");
    let mut a = agent(&ns, &keys, &state, false);
    apply_ok(&mut a, &keys, &Spec::small(1, &[8081]));
    let before = ns.ruleset();
    let include = format!(
        "table inet ringfence {{\n    include \"{}\"\n}}\n",
        secret.display()
    );
    for (g, extra) in [(2, BYPASS), (3, DEFINE), (4, include.as_str())] {
        let spec = Spec::small(g, &[8082]);
        let (nft, ir) = render(&spec);
        match a.offer(
            &seal(&spec, format!("{nft}{extra}"), ir, &keys.key),
            None,
            now(),
        ) {
            BundleOutcome::Refused(e) => assert_eq!(e.reason.code(), "unsafe-rules", "{e}"),
            o => panic!("{extra}: {o:?}"),
        }
        assert_eq!(ns.ruleset(), before, "{extra}");
        assert_eq!(ns.sh("nft list table ip victim"), v);
    }
    a.check_drift(now());
    let r = a.report(now());
    assert_eq!(r.status, Status::InSync);
    assert_eq!(r.verification_failures["unsafe-rules"], 3);
    let text = serde_json::to_string(&r).unwrap();
    assert!(!text.contains("SECRETMARK"), "{text}");
    assert!(
        text.contains("`include` would make nft read another file"),
        "{text}"
    );
    // Through the CLI too: exit 1, the reason, nothing of the file.
    drop(a);
    let spec = Spec::small(5, &[8082]);
    let (nft, ir) = render(&spec);
    let f = keys.path("inc.bundle");
    std::fs::write(&f, seal(&spec, format!("{nft}{include}"), ir, &keys.key)).unwrap();
    let (code, text) = apply_cli(&keys, &ns, &state, &f);
    assert_eq!(code, Some(1));
    let report = std::fs::read_to_string(state.join("report.json")).unwrap();
    let all = format!("{text}{report}");
    assert!(
        all.starts_with("refused (unsafe-rules): rules.nft line"),
        "{all}"
    );
    assert!(!all.contains("SECRETMARK"), "{all}");
    assert_eq!(ns.ruleset(), before);
}

/// The second guard, with the screen out of the way: what `nft -j list
/// ruleset` shows outside our table before and after a load is compared,
/// and a change fails the apply as dirty (the agent then rolls back); nft's
/// complaints about an included file keep none of its content.
#[test]
fn the_applier_compares_nft_s_own_listing_outside_our_table() {
    let ns = Netns::new("outside");
    victim(&ns);
    let applier = NftApplier::new(SystemRunner::new(Some(ns.name.clone())));
    let dir = tempfile::tempdir().unwrap();
    let stage = |text: &str| std::fs::write(dir.path().join("rules.nft"), text).unwrap();
    let (good, _) = render(&Spec::small(1, &[8081]));
    stage(&format!("{good}{BYPASS}"));
    let e = applier.check(dir.path()).unwrap_err();
    assert!(e.message.contains("line "), "{e}");
    let e = applier.apply(dir.path(), 1).unwrap_err();
    assert!(e.dirty && e.step == "outside", "{e}");
    assert!(e.message.contains("table ip victim removed"), "{e}");
    // A clean load of our table alone passes.
    victim(&ns);
    stage(&good);
    applier.check(dir.path()).unwrap();
    applier.apply(dir.path(), 1).unwrap();
    // An include that nft itself follows: only its error lines come back.
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "root:$6$SECRETMARK:19000:0:99999:7:::\n").unwrap();
    stage(&format!(
        "table inet ringfence {{\n include \"{}\"\n}}\n",
        secret.display()
    ));
    let e = applier.apply(dir.path(), 2).unwrap_err();
    assert!(e.message.contains("Error: syntax error"), "{e}");
    assert!(!e.message.contains("SECRETMARK"), "{e}");
}

/// Item 3: a dormant table switches every rule off; it is drift, and
/// self-heal repairs it.
#[test]
fn a_dormant_table_is_drift_and_self_heal_wakes_it() {
    let (ns, v, keys, state) = with_victim("dormant");
    let mut a = agent(&ns, &keys, &state, false);
    apply_ok(&mut a, &keys, &Spec::small(1, &[8081]));
    ns.sh("nft add table inet ringfence '{ flags dormant; }'");
    a.check_drift(now());
    let r = a.report(now());
    assert_eq!(r.status, Status::Drifted, "{r:?}");
    assert!(
        r.drift.changed[0].starts_with("table (flags"),
        "{:?}",
        r.drift
    );
    drop(a);
    let mut healer = agent(&ns, &keys, &state, true);
    healer.load(now()).unwrap();
    healer.check_drift(now());
    assert_eq!(healer.report(now()).status, Status::InSync);
    assert!(!ns.ours().contains("dormant"), "{}", ns.ours());
    assert_eq!(ns.sh("nft list table ip victim"), v);
}

/// The real runner, failing on demand (a one-off `nft` failure).
struct Flaky {
    real: SystemRunner,
    fail: Arc<AtomicBool>,
}

impl Runner for Flaky {
    fn run(&self, cmd: &Cmd) -> Result<Output, ExecError> {
        if self.fail.swap(false, Ordering::SeqCst) {
            return Ok(Output {
                code: Some(1),
                stdout: Vec::new(),
                stderr: b"Error: Could not process rule: Device or resource busy\n".to_vec(),
            });
        }
        self.real.run(cmd)
    }
}

/// Item 4: a one-off failure to read what is in force is `failed` only
/// until the next read shows the rules intact, even while the source
/// answers "unchanged" (a directory source here; HTTP 304 takes the same
/// path through `clear_error`).
#[test]
fn a_one_off_nft_failure_does_not_stay_failed() {
    let ns = Netns::new("flaky");
    let keys = Keys::new();
    let fail = Arc::new(AtomicBool::new(false));
    let mut a = Agent::new(
        config(keys.trust()),
        open_state(&keys.path("state")),
        Box::new(NftApplier::new(Flaky {
            real: SystemRunner::new(Some(ns.name.clone())),
            fail: fail.clone(),
        })),
    );
    apply_ok(&mut a, &keys, &Spec::small(1, &[8081]));
    fail.store(true, Ordering::SeqCst);
    a.clear_error(); // 304
    a.check_drift(now());
    let r = a.report(now());
    assert_eq!(r.status, Status::Failed);
    assert!(r.last_error.unwrap().contains("Device or resource busy"));
    a.clear_error(); // 304 again; nft works again
    a.check_drift(now());
    let r = a.report(now());
    assert_eq!(r.status, Status::InSync, "{r:?}");
    assert_eq!(r.last_error, None);
}

/// Item 5: when `nft` cannot run in the namespace the report says `failed`
/// with the reason, not `drifted` with everything missing.
#[test]
fn nft_that_cannot_run_is_failed_not_drift() {
    let ns = Netns::new("gone");
    let keys = Keys::new();
    let state = keys.path("state");
    let mut a = agent(&ns, &keys, &state, false);
    apply_ok(&mut a, &keys, &Spec::small(1, &[8081]));
    drop(a);
    let mut b = Agent::new(
        config(keys.trust()),
        open_state(&state),
        Box::new(NftApplier::new(SystemRunner::new(Some(format!(
            "{}-absent",
            ns.name
        ))))),
    );
    b.load(now()).unwrap();
    b.check_drift(now());
    let r = b.report(now());
    assert_eq!(r.status, Status::Failed, "{r:?}");
    assert!(r.drift.is_empty(), "{:?}", r.drift);
    let e = r.last_error.unwrap();
    assert!(e.contains("Cannot open network namespace"), "{e}");
}

/// A directory with a fake `nft` that hangs, for PATH.
fn hanging_nft(dir: &Path) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let nft = bin.join("nft");
    std::fs::write(&nft, "#!/bin/sh\nexec sleep 600\n").unwrap();
    Command::new("chmod").arg("+x").arg(&nft).status().unwrap();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Item 6: a hung `nft` is killed at the deadline; the agent reports the
/// failure instead of blocking.
#[test]
fn a_hung_nft_is_killed_and_reported() {
    let keys = Keys::new();
    let f = keys.path("b.bundle");
    std::fs::write(&f, bundle(&Spec::small(1, &[8081]), &keys.key)).unwrap();
    let t = Instant::now();
    let out = keys
        .cli(
            &["apply", "--node", "n1", "--nft-timeout", "1"],
            &keys.path("state"),
        )
        .env("PATH", hanging_nft(keys.dir.path()))
        .arg("--bundle")
        .arg(&f)
        .output()
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("failed:") && text.contains("killed"),
        "{text}"
    );
}

/// `ringfence-agent apply` of bundle `f` for node n1 (in `ns`, if given),
/// trusting `keys`, with its state in `state`.
fn apply(keys: &Keys, ns: Option<&Netns>, state: &Path, f: &Path) -> std::process::Output {
    let mut cmd = keys.cli(&["apply", "--node", "n1"], state);
    if let Some(ns) = ns {
        cmd.args(["--netns", &ns.name]);
    }
    cmd.arg("--bundle").arg(f).output().unwrap()
}

/// [`apply`] in `ns`: the exit code and all it printed.
fn apply_cli(keys: &Keys, ns: &Netns, state: &Path, f: &Path) -> (Option<i32>, String) {
    let out = apply(keys, Some(ns), state, f);
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Item 7: a corrupt `current.json` stops every apply (the floor is
/// unknown) and says what to do; removing it keeps the floor of the stored
/// bundles.
#[test]
fn a_corrupt_pointer_never_lowers_the_generation_floor() {
    let (ns, v, keys, state) = with_victim("floor");
    let file = |g: u64| {
        let f = keys.path(&format!("g{g}.bundle"));
        std::fs::write(&f, bundle(&Spec::small(g, &[8080 + g as u16]), &keys.key)).unwrap();
        f
    };
    assert_eq!(apply_cli(&keys, &ns, &state, &file(3)).0, Some(0));
    let ours = ns.ours();
    std::fs::write(state.join("current.json"), "{").unwrap();
    let (code, text) = apply_cli(&keys, &ns, &state, &file(1));
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("current.json") && text.contains("no bundle is applied"),
        "{text}"
    );
    assert_eq!(ns.ours(), ours, "generation 3 stays");
    let report = std::fs::read_to_string(state.join("report.json")).unwrap();
    assert!(report.contains("\"status\": \"failed\""), "{report}");
    // The operator removes the pointer: the stored bundles keep the floor.
    std::fs::remove_file(state.join("current.json")).unwrap();
    let (code, text) = apply_cli(&keys, &ns, &state, &file(2));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.starts_with("refused (old-generation)"), "{text}");
    assert_eq!(apply_cli(&keys, &ns, &state, &file(4)).0, Some(0));
    assert_eq!(ns.sh("nft list table ip victim"), v);
}

/// Item 8: a replayed older refresh of the generation in force is refused:
/// the expiry never moves back.
#[test]
fn a_replayed_refresh_cannot_move_the_expiry_back() {
    let ns = Netns::new("refresh");
    let keys = Keys::new();
    let mut a = agent(&ns, &keys, &keys.path("state"), false);
    let at = |issued: &str, expires: &str| Spec {
        issued_at: issued.into(),
        expires_at: expires.into(),
        ..Spec::small(7, &[8081])
    };
    let old = bundle(
        &at("2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"),
        &keys.key,
    );
    let new = bundle(
        &at("2026-06-01T00:00:00Z", "2027-06-01T00:00:00Z"),
        &keys.key,
    );
    assert!(matches!(
        a.offer(&old, None, now()),
        BundleOutcome::Applied { .. }
    ));
    assert!(matches!(
        a.offer(&new, None, now()),
        BundleOutcome::Refreshed { .. }
    ));
    match a.offer(&old, None, now()) {
        BundleOutcome::Refused(e) => {
            assert_eq!(e.reason.code(), "old-generation");
            assert!(e.detail.contains("not after the one in force"), "{e}");
        }
        o => panic!("{o:?}"),
    }
    let r = a.report(now());
    assert_eq!(r.applied.unwrap().expires_at, "2027-06-01T00:00:00Z");
}

/// Item 9: a bundle dated in the future is refused; a source without
/// `index.json` is refused unless `--no-index` says bare bundles are fine.
#[test]
fn future_bundles_and_sources_without_an_index_are_refused() {
    let ns = Netns::new("fresh");
    let keys = Keys::new();
    let mut a = agent(&ns, &keys, &keys.path("state"), false);
    let future = Spec {
        issued_at: "2099-01-01T00:00:00Z".into(),
        expires_at: "2099-02-01T00:00:00Z".into(),
        ..Spec::small(1, &[8081])
    };
    match a.offer(&bundle(&future, &keys.key), None, now()) {
        BundleOutcome::Refused(e) => assert_eq!(e.reason.code(), "not-yet-valid", "{e}"),
        o => panic!("{o:?}"),
    }
    drop(a);
    let src = keys.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let spec = Spec::small(1, &[8081]);
    let b = bundle(&spec, &keys.key);
    std::fs::write(src.join("n1.bundle"), &b).unwrap();
    let run = |extra: &[&str]| {
        keys.cli(
            &["run", "--once", "--node", "n1", "--netns", &ns.name],
            &keys.path("state"),
        )
        .arg("--source")
        .arg(&src)
        .args(extra)
        .output()
        .unwrap()
    };
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1));
    let report = std::fs::read_to_string(keys.path("state").join("report.json")).unwrap();
    assert!(
        report.contains("not-in-index") && report.contains("--no-index"),
        "{report}"
    );
    assert_eq!(ns.ours(), "");
    assert_eq!(run(&["--no-index"]).status.code(), Some(0));
    // With the index, no flag is needed.
    std::fs::write(src.join("index.json"), index(&[(&spec, &b)], &keys.key)).unwrap();
    assert_eq!(run(&[]).status.code(), Some(0));
}

/// Item 10: one agent per state directory.
#[test]
fn a_second_agent_on_the_same_state_directory_stops() {
    let keys = Keys::new();
    let state = keys.path("state");
    let held = StateDir::open(&state).unwrap();
    let f = keys.path("b.bundle");
    std::fs::write(&f, bundle(&Spec::small(1, &[8081]), &keys.key)).unwrap();
    let out = apply(&keys, None, &state, &f);
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("in use by another ringfence-agent"), "{e}");
    drop(held);
    // `status` reads while an agent holds the directory.
    let _again = open_state(&state);
    let out = bin()
        .args(["status", "--state"])
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "no report yet: {out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("no bundle applied"));
}

/// Item 11: a FIFO as the source bundle, `/dev/zero` and a huge file are
/// refused without hanging or reading them whole.
#[test]
fn fifos_devices_and_huge_files_are_refused_capped() {
    let keys = Keys::new();
    let src = keys.path("src");
    std::fs::create_dir_all(&src).unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(src.join("n1.bundle"))
            .status()
            .unwrap()
            .success()
    );
    let t = Instant::now();
    let out = keys
        .cli(&["run", "--once", "--node", "n1"], &keys.path("st"))
        .arg("--source")
        .arg(&src)
        .output()
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_eq!(out.status.code(), Some(1));
    let report = std::fs::read_to_string(keys.path("st").join("report.json")).unwrap();
    assert!(report.contains("not a regular file"), "{report}");
    let apply = |file: &Path| {
        Command::new("/usr/bin/time")
            .args(["-f", "%M"])
            .arg(env!("CARGO_BIN_EXE_ringfence-agent"))
            .args(["apply", "--node", "n1", "--bundle"])
            .arg(file)
            .arg("--trust")
            .arg(keys.pubkey())
            .arg("--state")
            .arg(keys.path("st2"))
            .output()
            .unwrap()
    };
    let out = apply(Path::new("/dev/zero"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a regular file"));
    // 300 MB (sparse): read up to the cap, refused, peak RSS far below it.
    let huge = keys.path("huge.bundle");
    let f = std::fs::File::create(&huge).unwrap();
    f.set_len(300 << 20).unwrap();
    let out = apply(&huge);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("refused (too-large)"));
    let rss_kb: u64 = String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(rss_kb < 150_000, "peak RSS {rss_kb} KB");
}

/// Issue 16 §4: the agent applies the threshold rule of `ringfence verify`:
/// a key given twice is one key, so `--threshold 2` cannot be met (exit 2).
#[test]
fn a_key_given_twice_does_not_meet_a_threshold_of_two() {
    let keys = Keys::new();
    let f = keys.path("b.bundle");
    std::fs::write(&f, bundle(&Spec::small(1, &[8081]), &keys.key)).unwrap();
    let out = bin()
        .args(["apply", "--node", "n1", "--threshold", "2", "--bundle"])
        .arg(&f)
        .arg("--trust")
        .arg(keys.pubkey())
        .arg(keys.pubkey())
        .arg("--state")
        .arg(keys.path("state"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("--threshold 2 with 1 distinct trusted key(s)"),
        "{e}"
    );
}
