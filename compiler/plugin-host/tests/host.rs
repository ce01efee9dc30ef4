//! The host against real plugins, well-behaved and hostile: each failure is
//! stopped and reported naming the plugin and the node, and the host keeps
//! rendering other nodes.

use std::time::Duration;

use rayon::prelude::*;
use ringfence_plugin_host::{Capability, Host, Limits, PluginError};
use ringfence_schema::ir::{NodeIr, Os};
use ringfence_testkit::synth::{Params, generate};

use crate::common::*;
use ringfence_testkit::text::assert_contains;

fn small_limits() -> Limits {
    Limits {
        fuel: 200_000_000,
        memory_bytes: 64 << 20,
        max_output_bytes: 1 << 20,
        timeout: None,
    }
}

fn hostile_host(limits: Limits) -> Host {
    Host::with_cache(limits, None).unwrap()
}

fn load_test(host: &Host, name: &str) -> Result<ringfence_plugin_host::Plugin, PluginError> {
    host.load(&dist(&format!("test/{name}.wasm")), None)
}

#[test]
fn builtins_describe_themselves() {
    let h = host();
    let names: Vec<&str> = h.builtin_names().collect();
    assert_eq!(names, ["nftables", "windows-firewall"]);
    let n = nft();
    assert_eq!(n.info.os, Os::Linux);
    assert!(n.info.capabilities.first_match && n.info.capabilities.exposures);
    assert_eq!(n.sha256.len(), 64);
    let w = windows();
    assert_eq!(w.info.os, Os::Windows);
    assert!(!w.info.capabilities.first_match);
    assert!(h.builtin("iptables").is_none());
}

#[test]
fn imports_are_refused_at_load() {
    let e = load_test(&hostile_host(small_limits()), "imports").unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, PluginError::Imports { .. }), "{msg}");
    assert_contains(&msg, "env::run_command (function)");
    assert!(msg.contains("imports.wasm"), "names the plugin file: {msg}");
}

#[test]
fn wrong_abi_is_refused_at_load() {
    let e = load_test(&hostile_host(small_limits()), "wrong-abi").unwrap_err();
    assert!(
        matches!(
            e,
            PluginError::Abi {
                found: 99,
                expected: ringfence_schema::plugin::PLUGIN_ABI,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("speaks plugin ABI 99"), "{e}");
}

#[test]
fn not_a_module_and_missing_exports_are_refused() {
    let h = hostile_host(small_limits());
    let e = h
        .from_bytes("junk.wasm", b"\0asm\x01\0\0\0garbage")
        .unwrap_err();
    assert!(matches!(e, PluginError::Compile { .. }), "{e}");
    assert!(e.to_string().contains("junk.wasm"), "{e}");
    // A valid module with no memory and none of the ABI's functions.
    let empty = b"\0asm\x01\0\0\0";
    let e = h.from_bytes("empty.wasm", empty).unwrap_err();
    assert!(e.to_string().contains("does not export `memory`"), "{e}");
}

/// Each runaway plugin is stopped, reported with plugin and node, and the
/// same host renders the next node normally.
#[test]
fn hostile_renders_are_stopped_and_the_host_survives() {
    let h = hostile_host(small_limits());
    let ir = fixtures::basic(Os::Linux);
    let nft = h.builtin("nftables").unwrap();
    type Case = (&'static str, fn(&PluginError) -> bool, &'static str);
    let cases: [Case; 7] = [
        (
            "loop",
            |e| {
                matches!(
                    e,
                    PluginError::OutOfFuel {
                        fuel: 200_000_000,
                        ..
                    }
                )
            },
            "used more than 200000000 fuel rendering node n1",
        ),
        (
            "memory-bomb",
            |e| matches!(e, PluginError::Memory { .. }),
            "more than 67108864 bytes of memory rendering node n1",
        ),
        (
            "panic",
            |e| matches!(e, PluginError::Trap { .. }),
            "crashed rendering node n1",
        ),
        (
            "garbage",
            |e| matches!(e, PluginError::BadOutput { .. }),
            "not a RenderResponse",
        ),
        (
            "wrong-shape",
            |e| matches!(e, PluginError::BadOutput { .. }),
            "not a RenderResponse",
        ),
        (
            "bad-artifact",
            |e| matches!(e, PluginError::BadOutput { .. }),
            "\"../../etc/passwd\"",
        ),
        (
            "out-of-bounds",
            |e| matches!(e, PluginError::BadOutput { .. }),
            "outside its memory",
        ),
    ];
    for (name, kind, text) in cases {
        let p = load_test(&h, name).unwrap_or_else(|e| panic!("{name} loads: {e}"));
        assert_eq!(p.name(), "hostile");
        let e = p.render(&ir).unwrap_err();
        let msg = e.to_string();
        assert!(kind(&e), "{name}: {msg}");
        assert!(msg.contains("plugin hostile"), "{name}: {msg}");
        assert!(msg.contains(text), "{name}: {msg}");
        if !matches!(e, PluginError::BadOutput { .. }) || name != "bad-artifact" {
            assert_eq!(e.node(), Some("n1"), "{name}");
        }
        // The host is unharmed: the next node renders.
        let out = nft.render(&ir).unwrap();
        assert!(out.artifacts[0].content.contains("table inet ringfence {"));
    }
}

#[test]
fn the_wall_clock_backstop_stops_a_loop_that_has_fuel() {
    let h = hostile_host(Limits {
        fuel: u64::MAX / 2,
        timeout: Some(Duration::from_millis(300)),
        ..small_limits()
    });
    let p = load_test(&h, "loop").unwrap();
    let started = std::time::Instant::now();
    let e = p.render(&fixtures::basic(Os::Linux)).unwrap_err();
    assert!(matches!(e, PluginError::Timeout { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("ran longer than 0.3 s rendering node n1"),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn nodes_render_in_parallel_and_failures_stay_isolated() {
    let h = hostile_host(small_limits());
    let bomb = load_test(&h, "memory-bomb").unwrap();
    let nft = h.builtin("nftables").unwrap();
    let results: Vec<(usize, bool)> = (0..64)
        .into_par_iter()
        .map(|i| {
            let mut ir = fixtures::full(Os::Linux);
            ir.node = format!("node-{i}");
            let r = if i % 4 == 0 {
                bomb.render(&ir).map(|_| ())
            } else {
                nft.render(&ir).map(|_| ())
            };
            match r {
                Err(e) => {
                    assert_eq!(e.node(), Some(ir.node.as_str()));
                    (i, false)
                }
                Ok(()) => (i, true),
            }
        })
        .collect();
    for (i, ok) in results {
        assert_eq!(ok, i % 4 != 0, "node-{i}");
    }
}

#[test]
fn a_chunk_renders_exactly_what_each_node_renders_alone() {
    // Nodes of a compiled synthetic cluster share most of their sets, as
    // real nodes do: one instance renders the chunk from one set table.
    let s = generate(&Params {
        nodes: 12,
        pods: 240,
        windows_every: 4,
        exposed_every: 10,
        ..Params::small()
    });
    let irs = ringfence_core::compile(&s.intent, &s.inventory)
        .0
        .expect("the synthetic intent compiles")
        .into_nodes();
    let h = host();
    for (os, backend) in [(Os::Linux, "nftables"), (Os::Windows, "windows-firewall")] {
        let chunk: Vec<&NodeIr> = irs.iter().filter(|ir| ir.os == os).collect();
        assert!(chunk.len() >= 3, "{backend}: {} nodes", chunk.len());
        assert!(
            chunk
                .iter()
                .any(|ir| ir.sets.iter().any(|s| !s.v4.is_empty())),
            "{backend}: the nodes have sets"
        );
        let p = h.builtin(backend).unwrap();
        let together = p.render_chunk(&chunk);
        assert_eq!(together.len(), chunk.len());
        for (ir, r) in chunk.iter().zip(together) {
            assert_eq!(r.unwrap(), p.render(ir).unwrap(), "{backend}: {}", ir.node);
        }
    }
    // Sets of the same name with other addresses stay apart, in the set
    // table and in the text the nftables backend reuses, in either order.
    let a = fixtures::full(Os::Linux);
    let mut b = a.clone();
    let set = b.sets.iter_mut().find(|s| !s.v4.is_empty()).unwrap();
    set.v4 = vec!["192.0.2.0/24".parse().unwrap()];
    b.validate().unwrap();
    let nft = h.builtin("nftables").unwrap();
    let together = nft.render_chunk(&[&a, &b, &a]);
    assert_eq!(together[0].as_ref().unwrap(), &nft.render(&a).unwrap());
    assert_eq!(together[1].as_ref().unwrap(), &nft.render(&b).unwrap());
    assert_eq!(together[2].as_ref().unwrap(), &nft.render(&a).unwrap());
    assert_ne!(together[0].as_ref().unwrap(), together[1].as_ref().unwrap());
    // A failure inside a chunk is each node's own, as when rendered alone.
    let h = hostile_host(small_limits());
    let looping = load_test(&h, "loop").unwrap();
    let chunk: Vec<&NodeIr> = irs.iter().filter(|ir| ir.os == Os::Linux).take(3).collect();
    for (ir, r) in chunk.iter().zip(looping.render_chunk(&chunk)) {
        let e = r.unwrap_err();
        assert!(matches!(e, PluginError::OutOfFuel { .. }), "{e}");
        assert_eq!(e.node(), Some(ir.node.as_str()));
    }
}

#[test]
fn pinned_digest_is_enforced_and_the_example_plugin_renders() {
    let h = hostile_host(small_limits());
    let path = dist("example-csv.wasm");
    let sha = {
        use sha2::Digest;
        let d = sha2::Sha256::digest(std::fs::read(&path).unwrap());
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let wrong = "0".repeat(64);
    let e = h.load(&path, Some(&wrong)).unwrap_err();
    assert!(matches!(e, PluginError::Digest { .. }), "{e}");
    assert!(
        e.to_string().contains(&sha) && e.to_string().contains(&wrong),
        "{e}"
    );
    let p = h.load(&path, Some(&sha.to_uppercase())).unwrap();
    assert_eq!(p.info.name, "example-csv");
    assert_eq!(p.sha256, sha);
    let out = p.render(&fixtures::basic(Os::Linux)).unwrap();
    assert_eq!(out.artifacts[0].name, "rules.csv");
    assert!(out.artifacts[0].content.contains("web_in,ingress,enforce,1,web-from-internet,app/web-from-internet,allow,internet,tcp,80 443,false"));
    // The example cannot judge exposures and says so before rendering.
    let problems = p.check(&fixtures::full(Os::Linux));
    assert!(
        problems
            .iter()
            .any(|p| p.capability == Capability::Exposures && p.message.contains("shop/api"))
    );
}

#[test]
fn plugins_refuse_ir_they_cannot_render() {
    let e = nft().render(&fixtures::basic(Os::Windows)).unwrap_err();
    assert!(matches!(e, PluginError::Refused { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("plugin nftables cannot render node n1"),
        "{e}"
    );
    // An IR that fails validation is refused by the SDK.
    let mut ir = fixtures::basic(Os::Linux);
    ir.chains[0].rules.pop();
    let e = nft().render(&ir).unwrap_err();
    assert!(e.to_string().contains("invalid IR"), "{e}");
}

#[test]
fn capability_check_names_rules_and_policies() {
    let problems = windows().check(&fixtures::full(Os::Windows));
    let logging: Vec<_> = problems
        .iter()
        .filter(|p| p.capability == Capability::Logging)
        .collect();
    assert_eq!(logging.len(), 1);
    assert_eq!(logging[0].rule.as_deref(), Some("api-deny-logged"));
    assert_eq!(logging[0].policy.as_deref(), Some("app/api-deny-logged"));
    assert!(
        problems
            .iter()
            .any(|p| p.capability == Capability::AnalyzeMode)
    );
    assert!(nft().check(&fixtures::full(Os::Linux)).is_empty());
}

#[test]
fn compiled_modules_are_cached_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let first = Host::with_cache(small_limits(), Some(dir.path().to_owned())).unwrap();
    let entries = || std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(entries(), 2, "both built-ins cached");
    let p = first.load(&dist("example-csv.wasm"), None).unwrap();
    assert_eq!(entries(), 3);
    drop(first);
    // A second host starts from the cache and renders the same bytes.
    let second = Host::with_cache(small_limits(), Some(dir.path().to_owned())).unwrap();
    let ir = fixtures::full(Os::Linux);
    assert_eq!(
        second.builtin("nftables").unwrap().render(&ir).unwrap(),
        nft().render(&ir).unwrap()
    );
    let q = second.load(&dist("example-csv.wasm"), None).unwrap();
    assert_eq!(p.sha256, q.sha256);
    assert_eq!(entries(), 3);
}

#[test]
fn builtins_come_compiled_into_the_binary() {
    // With the default limits (those build.rs compiles for) nothing is
    // compiled at load: the cache stays empty until a third-party plugin.
    let dir = tempfile::tempdir().unwrap();
    let host = Host::with_cache(Limits::default(), Some(dir.path().to_owned())).unwrap();
    let entries = || std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(entries(), 0, "built-ins taken from the binary");
    for os in [Os::Linux, Os::Windows] {
        let ir = fixtures::full(os);
        let name = if os == Os::Linux {
            "nftables"
        } else {
            "windows-firewall"
        };
        // The same bytes as the modules compiled from the wasm at load.
        let compiled = Host::with_cache(small_limits(), None).unwrap();
        assert_eq!(
            host.builtin(name).unwrap().render(&ir).unwrap(),
            compiled.builtin(name).unwrap().render(&ir).unwrap()
        );
    }
    host.load(&dist("example-csv.wasm"), None).unwrap();
    assert_eq!(entries(), 1);
}

#[test]
fn names_cannot_inject_lines_into_the_output() {
    let mut ir = fixtures::basic(Os::Linux);
    ir.node = "n1\nflush ruleset".into();
    ir.cluster = "c\r\ndelete table inet other".into();
    let text = render_nft(&ir);
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("flush") || l.starts_with("delete table inet other")),
        "{text}"
    );
    let mut ir = fixtures::basic(Os::Windows);
    ir.node = "w1\nRemove-Item -Recurse C:\\".into();
    let out = windows().render(&ir).unwrap();
    let ps1 = &out.artifacts[1].content;
    assert!(!ps1.lines().any(|l| l.starts_with("Remove-Item")), "{ps1}");
}

/// `plugins/dist/` is what `plugins/build.sh` built from the current
/// sources: the recorded digests match the committed modules, and the
/// recorded source digests match the sources (no wasm toolchain needed;
/// `plugins/build.sh --check` rebuilds to compare byte for byte).
#[test]
fn dist_matches_its_recorded_digests_and_the_current_sources() {
    use sha2::Digest;
    let hex = |b: &[u8]| -> String {
        sha2::Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect()
    };
    let sums = std::fs::read_to_string(dist("SHA256SUMS")).unwrap();
    let mut n = 0;
    for line in sums.lines() {
        let (sum, file) = line.split_once("  ").unwrap();
        assert_eq!(
            hex(&std::fs::read(dist(file)).unwrap()),
            sum,
            "dist/{file} does not match dist/SHA256SUMS"
        );
        n += 1;
    }
    assert_eq!(n, 13, "every plugin and test plugin is recorded");
    assert_eq!(
        hex(&std::fs::read(dist("nftables.wasm")).unwrap()),
        nft().sha256
    );

    let repo = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    fn walk(dir: &std::path::Path, repo: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_str().unwrap();
            if p.is_dir() {
                if name != "target" {
                    walk(&p, repo, out);
                }
            } else if name.ends_with(".rs") || name == "Cargo.toml" {
                out.push(p.strip_prefix(repo).unwrap().to_str().unwrap().to_owned());
            }
        }
    }
    for d in [
        "plugins/sdk",
        "plugins/nftables",
        "plugins/windows-firewall",
        "plugins/example-csv",
        "plugins/hostile",
        "schema/src",
        "schema/nft/src",
    ] {
        walk(&repo.join(d), &repo, &mut files);
    }
    files.sort();
    files.extend(
        [
            "plugins/Cargo.toml",
            "plugins/Cargo.lock",
            "schema/Cargo.toml",
            "schema/nft/Cargo.toml",
        ]
        .map(String::from),
    );
    let actual: String = files
        .iter()
        .map(|f| format!("{}  {f}\n", hex(&std::fs::read(repo.join(f)).unwrap())))
        .collect();
    let recorded = std::fs::read_to_string(dist("SOURCES")).unwrap();
    assert!(
        recorded == actual,
        "plugins/dist/ was built from other sources: run plugins/build.sh and commit plugins/dist/\n--- recorded\n{recorded}--- now\n{actual}"
    );
}
