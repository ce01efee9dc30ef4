//! Real nftables in network namespaces: apply, refusals, kernel rejections
//! and rollback, a crash between apply and commit, drift and self-heal,
//! start-up re-apply, the initial deny table. Every test also checks that a
//! kube-proxy-like table stays byte-identical.

use std::time::SystemTime;

use ringfence_agent::agent::{BundleOutcome, Initial};
use ringfence_bundle::parse_time;
use ringfence_schema::report::Status;

use crate::fixture::{Spec, bundle, render, seal};
use crate::support::{Keys, Netns, agent, agent_with, apply_ok, bin, source_dir};

fn now() -> SystemTime {
    SystemTime::now()
}

#[test]
fn apply_installs_our_table_and_reads_counters_per_policy() {
    let ns = Netns::new("apply");
    ns.fake_kube_proxy();
    let before = ns.others();
    let keys = Keys::new();
    let state = keys.path("state");
    let mut a = agent(&ns, &keys, &state, false);
    apply_ok(&mut a, &keys, &Spec::small(1, &[8081]));
    let table = ns.ours();
    assert!(table.contains("comment \"p0-web-8081\""), "{table}");
    a.check_drift(now());
    let r = a.report(now());
    assert_eq!(r.status, Status::InSync, "{r:?}");
    let ids: Vec<(&str, &str)> = r
        .counters
        .iter()
        .map(|c| (c.rule.as_str(), c.policy.as_str()))
        .collect();
    assert_eq!(
        ids,
        [
            ("p0-web-8081", "shop/web"),
            ("p0-catch-all", "shop/catch-all-ingress")
        ]
    );
    assert_eq!(r.applied.as_ref().unwrap().generation, 1);
    assert_eq!(
        r.applied.unwrap().commit.unwrap(),
        format!("{:040x}", 1),
        "the report names the source commit"
    );
    assert_eq!(ns.others(), before);
    // The report file is what `status` reads.
    a.write_report(&a.report(now())).unwrap();
    let out = bin()
        .args([
            "status",
            "--state",
            state.to_str().unwrap(),
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["generation"], 1);
    assert_eq!(v["report"]["status"], "in-sync");
}

#[test]
fn refused_bundles_leave_the_ruleset_byte_identical() {
    let ns = Netns::new("refuse");
    ns.fake_kube_proxy();
    let keys = Keys::new();
    let other = Keys::new();
    let state = keys.path("state");
    let mut a = agent(&ns, &keys, &state, false);
    apply_ok(&mut a, &keys, &Spec::small(5, &[8081]));
    let before = ns.ruleset();
    let good = bundle(&Spec::small(6, &[8082]), &keys.key);
    let mut corrupted = good.clone();
    let at = good.len() / 2;
    corrupted[at] = if corrupted[at] == b'A' { b'B' } else { b'A' };
    let cases = [
        ("bad-signature", corrupted),
        (
            "old-generation",
            bundle(&Spec::small(4, &[8082]), &keys.key),
        ),
        (
            "wrong-node",
            bundle(
                &Spec {
                    node: "n2".into(),
                    ..Spec::small(6, &[8082])
                },
                &keys.key,
            ),
        ),
        (
            "expired",
            bundle(
                &Spec {
                    expires_at: "2021-01-01T00:00:00Z".into(),
                    ..Spec::small(6, &[8082])
                },
                &keys.key,
            ),
        ),
        ("unknown-key", bundle(&Spec::small(6, &[8082]), &other.key)),
        // Same generation, other rules: a change needs a new generation.
        (
            "old-generation",
            bundle(&Spec::small(5, &[9999]), &keys.key),
        ),
    ];
    for (reason, bytes) in &cases {
        match a.offer(bytes, None, now()) {
            BundleOutcome::Refused(e) => assert_eq!(e.reason.code(), *reason, "{e}"),
            o => panic!("{reason}: {o:?}"),
        }
        assert_eq!(ns.ruleset(), before, "after a refused {reason} bundle");
    }
    a.check_drift(now());
    let r = a.report(now());
    // What is in force is intact: refusals are counted, not a failed status.
    assert_eq!(r.status, Status::InSync);
    assert!(
        r.last_error
            .as_deref()
            .unwrap()
            .starts_with("bundle refused: old-generation"),
        "{:?}",
        r.last_error
    );
    assert_eq!(r.verification_failures["old-generation"], 2);
    assert_eq!(r.applied.unwrap().generation, 5);
    // Through the CLI (one agent per state directory): exit 1 and the
    // reason on stdout.
    drop(a);
    let f = keys.path("old.bundle");
    std::fs::write(&f, &cases[1].1).unwrap();
    let out = keys
        .cli(&["apply", "--node", "n1", "--netns", &ns.name], &state)
        .arg("--bundle")
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("refused (old-generation): generation 4"),
        "{text}"
    );
    assert_eq!(ns.ruleset(), before);
}

#[test]
fn kernel_rejections_and_failed_read_back_keep_or_restore_the_previous_rules() {
    let ns = Netns::new("reject");
    ns.fake_kube_proxy();
    let keys = Keys::new();
    let state = keys.path("state");
    let mut a = agent(&ns, &keys, &state, false);
    apply_ok(&mut a, &keys, &Spec::small(1, &[8081]));
    let before = ns.ruleset();
    let ours = ns.ours();

    // 1. `nft -f` refuses the file (a set that does not exist): one
    // transaction, nothing is loaded; nft's error line is kept, not the file.
    let spec = Spec::small(2, &[8082]);
    let (nft, ir) = render(&spec);
    let broken = nft.replace("@peers_web_v4", "@no_such_set");
    match a.offer(&seal(&spec, broken, ir.clone(), &keys.key), None, now()) {
        BundleOutcome::Failed(m) => {
            assert!(
                m.contains("apply: `nft -f")
                    && m.contains("Error: No such file or directory")
                    && m.contains("previous rules are in force")
                    && !m.contains("@no_such_set"),
                "{m}"
            )
        }
        o => panic!("{o:?}"),
    }
    assert_eq!(ns.ruleset(), before);

    // 2. A bundle that loads but does not match its IR (a rule id missing):
    // it is applied, the read-back refuses it, generation 1 is re-applied.
    let spec = Spec::small(3, &[8082]);
    let (nft, ir) = render(&spec);
    let (allow, _) = crate::fixture::rule_ids(&spec, 0);
    let mismatched = nft.replace(&format!("comment \"{allow}\""), "comment \"stray\"");
    match a.offer(&seal(&spec, mismatched, ir, &keys.key), None, now()) {
        BundleOutcome::Failed(m) => {
            assert!(
                m.contains("confirm") && m.contains("rolled back to generation 1"),
                "{m}"
            )
        }
        o => panic!("{o:?}"),
    }
    assert_eq!(ns.ours(), ours, "generation 1 is back in force");
    assert_eq!(ns.others(), before_others(&before));
    // (The reload gave our table new handles.)
    let before = ns.ruleset();

    // 3. A bundle that tries to touch another table is refused by the
    // screen before anything runs.
    let spec = Spec::small(4, &[8082]);
    let (nft, ir) = render(&spec);
    let evil = format!("{nft}flush table ip kube-proxy\n");
    match a.offer(&seal(&spec, evil, ir, &keys.key), None, now()) {
        BundleOutcome::Refused(e) => {
            assert_eq!(e.reason.code(), "unsafe-rules");
            assert!(e.detail.contains("family `ip` is not inet"), "{e}");
        }
        o => panic!("{o:?}"),
    }
    assert_eq!(ns.ruleset(), before);
    let r = a.report(now());
    assert_eq!(r.apply_failures, 2);
    assert_eq!(r.applied.unwrap().generation, 1);
}

/// The kube-proxy part of a full listing.
fn before_others(full: &str) -> String {
    let start = full.find("table ip kube-proxy").unwrap();
    let rest = &full[start..];
    let end = rest.find("\ntable ").map_or(rest.len(), |e| e + 1);
    rest[..end].to_string()
}

#[test]
fn killed_between_apply_and_commit_restarts_on_the_committed_generation() {
    let ns = Netns::new("kill");
    ns.fake_kube_proxy();
    let kp = ns.others();
    let keys = Keys::new();
    let state = keys.path("state");
    let apply = |g: u64, port: u16, failpoint: bool| {
        let f = keys.path(&format!("g{g}.bundle"));
        std::fs::write(&f, bundle(&Spec::small(g, &[port]), &keys.key)).unwrap();
        let mut c = keys.cli(&["apply", "--node", "n1", "--netns", &ns.name], &state);
        c.arg("--bundle").arg(&f);
        if failpoint {
            c.env("RINGFENCE_AGENT_FAILPOINT", "after-apply");
        }
        c.output().unwrap()
    };
    assert_eq!(apply(1, 8081, false).status.code(), Some(0));
    let out = apply(2, 8082, true);
    assert_eq!(out.status.code(), None, "aborted by the failpoint: {out:?}");
    assert!(
        ns.ours().contains("p0-web-8082"),
        "generation 2 was applied"
    );
    // Restart: the committed generation (1) is re-applied before any fetch
    // (the source is empty).
    let empty = keys.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = keys
        .cli(
            &["run", "--once", "--node", "n1", "--netns", &ns.name],
            &state,
        )
        .arg("--source")
        .arg(&empty)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("re-applying committed generation 1"), "{log}");
    let table = ns.ours();
    assert!(
        table.contains("p0-web-8081") && !table.contains("p0-web-8082"),
        "{table}"
    );
    assert_eq!(ns.others(), kp);
}

#[test]
fn hand_edits_are_reported_as_drift_and_self_healed() {
    let ns = Netns::new("drift");
    ns.fake_kube_proxy();
    let kp = ns.others();
    let keys = Keys::new();
    let state = keys.path("state");
    let mut a = agent(&ns, &keys, &state, false);
    apply_ok(&mut a, &keys, &Spec::small(1, &[8081]));
    let clean = ns.ours();
    ns.sh("nft insert rule inet ringfence ing_p0 ip saddr 192.0.2.66 accept");
    ns.sh("nft delete element inet ringfence peers_web_v4 '{ 10.251.9.9 }'");
    a.check_drift(now());
    let r = a.report(now());
    assert_eq!(r.status, Status::Drifted);
    assert_eq!(r.drift.extra, ["rule ing_p0@1"]);
    assert_eq!(r.drift.changed, ["set peers_web_v4 elements -10.251.9.9"]);
    assert!(r.drift.missing.is_empty(), "{:?}", r.drift);
    // Deleting a rule by hand shows up as missing.
    let handle = ns
        .sh("nft -a list chain inet ringfence ing_p0")
        .lines()
        .find(|l| l.contains("p0-catch-all"))
        .and_then(|l| l.rsplit("handle ").next())
        .unwrap()
        .trim()
        .to_string();
    ns.sh(&format!(
        "nft delete rule inet ringfence ing_p0 handle {handle}"
    ));
    a.check_drift(now());
    assert_eq!(a.report(now()).drift.missing, ["rule ing_p0/p0-catch-all"]);

    // The same state with self-heal: the bundle is re-applied, drift is gone.
    drop(a);
    let mut healer = agent(&ns, &keys, &state, true);
    healer.load(now()).unwrap();
    healer.check_drift(now());
    let r = healer.report(now());
    assert_eq!(r.status, Status::InSync, "{r:?}");
    assert!(r.drift.is_empty());
    assert_eq!(ns.ours(), clean);
    assert_eq!(ns.others(), kp);
}

#[test]
fn startup_reapplies_after_a_reboot_and_keeps_an_expired_bundle() {
    let ns = Netns::new("boot");
    ns.fake_kube_proxy();
    let kp = ns.others();
    let keys = Keys::new();
    let state = keys.path("state");
    let spec = Spec {
        expires_at: "2026-01-02T00:00:00Z".into(),
        ..Spec::small(7, &[8081])
    };
    let then = parse_time("2026-01-01T00:00:00Z").unwrap();
    let mut a = agent(&ns, &keys, &state, false);
    assert!(matches!(
        a.offer(&bundle(&spec, &keys.key), None, then),
        BundleOutcome::Applied { generation: 7 }
    ));
    let applied = ns.ours();
    drop(a);
    // "Reboot": the kernel forgets our table.
    ns.sh("nft delete table inet ringfence");
    let mut a = agent(&ns, &keys, &state, false);
    a.startup(now()).unwrap();
    assert_eq!(
        ns.ours(),
        applied,
        "rules back, from the state directory alone"
    );
    a.check_drift(now());
    let r = a.report(now());
    assert_eq!(r.status, Status::Expired, "expired but still enforced");
    assert!(r.drift.is_empty());
    // An agent restart (no reboot) does not reload: counters survive.
    let handles = ns.sh("nft -a list table inet ringfence");
    drop(a);
    let mut b = agent(&ns, &keys, &state, false);
    b.startup(now()).unwrap();
    assert_eq!(ns.sh("nft -a list table inet ringfence"), handles);
    assert_eq!(ns.others(), kp);
    // A newer bundle with the same rules and generation only moves the expiry.
    let fresh = Spec {
        issued_at: "2020-01-01T00:00:00Z".into(),
        expires_at: "2099-01-01T00:00:00Z".into(),
        ..spec
    };
    assert!(matches!(
        b.offer(&bundle(&fresh, &keys.key), None, now()),
        BundleOutcome::Refreshed { generation: 7 }
    ));
    assert_eq!(
        ns.sh("nft -a list table inet ringfence"),
        handles,
        "not re-applied"
    );
    b.check_drift(now());
    assert_eq!(b.report(now()).status, Status::InSync);
}

#[test]
fn initial_deny_drops_forwarded_traffic_until_the_first_bundle() {
    let ns = Netns::new("deny");
    let keys = Keys::new();
    let state = keys.path("state");
    let mut a = agent_with(&ns, &keys, &state, false, Initial::Deny);
    a.startup(now()).unwrap();
    let t = ns.ours();
    assert!(
        t.contains("policy drop") && t.contains("hook forward"),
        "{t}"
    );
    assert!(
        !t.contains("hook input") && !t.contains("hook output"),
        "{t}"
    );
    assert_eq!(a.report(now()).status, Status::NoBundle);
    // A first bundle that fails after apply rolls back to the deny table.
    let spec = Spec::small(1, &[8081]);
    let (nft, ir) = render(&spec);
    let bad = nft.replace("comment \"p0-catch-all\"", "comment \"other\"");
    assert!(matches!(
        a.offer(&seal(&spec, bad, ir, &keys.key), None, now()),
        BundleOutcome::Failed(_)
    ));
    assert_eq!(ns.ours(), t);
    assert!(matches!(
        a.offer(&bundle(&spec, &keys.key), None, now()),
        BundleOutcome::Applied { .. }
    ));
    assert!(!ns.ours().contains("policy drop"));
}

#[test]
fn run_loop_serves_metrics_and_health() {
    use std::io::{Read, Write};
    let ns = Netns::new("metrics");
    let keys = Keys::new();
    let src = source_dir(&keys, "src", &Spec::small(3, &[8081]));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = keys
        .cli(
            &[
                "run",
                "--interval",
                "1",
                "--node",
                "n1",
                "--netns",
                &ns.name,
                "--metrics",
                &addr,
            ],
            &keys.path("state"),
        )
        .arg("--source")
        .arg(&src)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let get = |path: &str| -> Option<String> {
        let mut c = std::net::TcpStream::connect(&addr).ok()?;
        write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
        let mut s = String::new();
        c.read_to_string(&mut s).ok()?;
        Some(s)
    };
    let mut page = String::new();
    for _ in 0..100 {
        page = get("/metrics").unwrap_or_default();
        if page.contains("ringfence_agent_generation{node=\"n1\"} 3") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // A client sending an endless request head is cut at the cap, and
    // idle clients hold no probe up (issue 15 §12).
    let idle: Vec<_> = (0..3)
        .filter_map(|_| std::net::TcpStream::connect(&addr).ok())
        .collect();
    let mut flood = std::net::TcpStream::connect(&addr).unwrap();
    let chunk = vec![b'a'; 1 << 20];
    let _ = flood.write_all(b"GET /");
    for _ in 0..100 {
        if flood.write_all(&chunk).is_err() {
            break;
        }
    }
    let started = std::time::Instant::now();
    let health = get("/healthz");
    let probe_time = started.elapsed();
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    drop(idle);
    let hwm_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap();
    assert!(
        hwm_kb < 40_000,
        "peak RSS {hwm_kb} kB after a 100 MiB request"
    );
    assert!(
        probe_time < std::time::Duration::from_secs(1),
        "{probe_time:?}"
    );
    assert!(
        page.contains("ringfence_agent_generation{node=\"n1\"} 3"),
        "{page}"
    );
    assert!(
        page.contains("ringfence_agent_policy_packets_total{node=\"n1\",policy=\"shop/web\",rule=\"p0-web-8081\",action=\"allow\"} 0"),
        "{page}"
    );
    assert!(
        page.contains("ringfence_agent_status{node=\"n1\",status=\"in-sync\"} 1"),
        "{page}"
    );
    assert!(health.unwrap().starts_with("HTTP/1.1 200"));
}
