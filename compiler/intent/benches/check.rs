//! Benchmark: check a generated intent repository of 2,000 policies in 200
//! files (one top-level scope, 199 application scopes with their filters and
//! policies, cross-scope references, externals). Prints the median and the
//! spread over many runs of `load` (parse + validate), and of formatting
//! every file.
//!
//! Run: `cargo bench -p ringfence-intent --bench check`. With
//! `RINGFENCE_BENCH_WRITE=DIR` it also writes the repository to DIR, to time
//! the command end to end (`ringfence check DIR`).

use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringfence_intent::model::SourceFile;
use ringfence_intent::{format_source, load, render_human, to_json};

const FILES: usize = 200;
const POLICIES_PER_APP: usize = 10;

/// The generated repository: `00-root.kdl` plus one file per application.
fn generate() -> Vec<SourceFile> {
    let mut files = Vec::with_capacity(FILES);
    let mut root = String::from(
        "scope \"prod\" {\n    query {\n        cluster \"prod\"\n    }\n    \
         catch-all ingress=\"allow\" egress=\"allow\"\n    filter \"dns\" {\n        \
         namespace \"kube-system\"\n        label \"k8s-app\" \"kube-dns\"\n    }\n    \
         absolute {\n",
    );
    for p in 0..POLICIES_PER_APP {
        writeln!(
            root,
            "        allow \"dns-{p}\" from=\"prod\" to=\"dns\" proto=\"udp\" ports={}",
            53 + p
        )
        .unwrap();
    }
    root.push_str("    }\n}\n\n");
    for e in 0..10 {
        writeln!(
            root,
            "external \"partner-{e}\" {{\n    cidr \"198.51.{e}.0/24\" \"2001:db8:{e}::/48\"\n    label \"zone\" \"partner\"\n}}"
        )
        .unwrap();
    }
    files.push(root);
    for a in 1..FILES {
        let mut s = String::new();
        writeln!(
            s,
            "// Application {a}.\nscope \"app-{a}\" parent=\"prod\" {{\n    query {{\n        namespace \"app-{a}\"\n    }}\n    catch-all ingress=\"deny\" egress=\"deny\"\n"
        )
        .unwrap();
        for tier in ["web", "api", "db"] {
            writeln!(
                s,
                "    filter \"app-{a}-{tier}\" restrict-to-scope=#true {{\n        label \"tier\" \"{tier}\"\n        not {{\n            label \"canary\"\n        }}\n    }}"
            )
            .unwrap();
        }
        s.push_str("    default {\n");
        for p in 0..POLICIES_PER_APP {
            let peer = (a % (FILES - 1)) + 1;
            let (from, to, ports) = match p % 5 {
                0 => (
                    format!("app-{a}-web"),
                    format!("app-{a}-api"),
                    format!("{}", 8000 + p),
                ),
                1 => (
                    format!("app-{a}-api"),
                    format!("app-{a}-db"),
                    format!("{}", 5432 + p),
                ),
                2 => (
                    format!("filter:app-{peer}-api"),
                    format!("app-{a}-api"),
                    format!("8443,{}-9100", 9000 + p),
                ),
                3 => (
                    format!("app-{a}-api"),
                    format!("external:partner-{}", a % 10),
                    format!("{}", 443 + p),
                ),
                _ => (
                    "any".to_string(),
                    format!("service:app-{a}/web-{p}"),
                    "80".to_string(),
                ),
            };
            writeln!(
                s,
                "        allow \"p{p}\" from=\"{from}\" to=\"{to}\" proto=\"tcp\" ports=\"{ports}\" log=#true"
            )
            .unwrap();
        }
        s.push_str("    }\n}\n");
        files.push(s);
    }
    files
        .into_iter()
        .enumerate()
        .map(|(i, text)| SourceFile {
            path: format!("{i:03}.kdl"),
            text: Arc::from(text),
        })
        .collect()
}

fn measure(name: &str, runs: usize, mut f: impl FnMut()) {
    f(); // warm up
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{name}: median {:.2} ms, min {:.2} ms, p90 {:.2} ms ({runs} runs)",
        ms(times[runs / 2]),
        ms(times[0]),
        ms(times[runs * 9 / 10]),
    );
}

fn main() {
    let files = generate();
    if let Some(dir) = std::env::var_os("RINGFENCE_BENCH_WRITE") {
        let dir = std::path::Path::new(&dir);
        std::fs::create_dir_all(dir).unwrap();
        for f in &files {
            std::fs::write(dir.join(&f.path), f.text.as_bytes()).unwrap();
        }
        println!("wrote {} files to {}", files.len(), dir.display());
    }
    let checked = load(files.clone());
    let intent = checked
        .intent
        .as_ref()
        .expect("the generated repository is valid");
    assert_eq!(files.len(), FILES);
    assert_eq!(intent.policies.len(), 2000);
    assert!(
        checked.diagnostics.0.is_empty(),
        "{:?}",
        checked.diagnostics.0.first()
    );
    let bytes: usize = files.iter().map(|f| f.text.len()).sum();
    println!(
        "generated: {} files, {} KiB, {} scopes, {} filters, {} policies",
        files.len(),
        bytes / 1024,
        intent.scopes.len(),
        intent.filters.len(),
        intent.policies.len()
    );
    measure("check (parse + validate)", 50, || {
        black_box(load(black_box(files.clone())));
    });
    measure(
        "KDL parsing alone, one thread (check parses files on all cores)",
        50,
        || {
            for f in &files {
                black_box(kdl::KdlDocument::parse_v2(&f.text).unwrap());
            }
        },
    );
    measure("fmt (every file)", 50, || {
        for (i, f) in files.iter().enumerate() {
            black_box(format_source(i, &f.text).unwrap());
        }
    });
    // Rendering is linear in the number of diagnostics: 10,000 warnings on
    // one file (each a filter nothing uses), as text and as JSON.
    let unused: String = (0..10_000)
        .map(|i| format!("filter \"f{i}\" {{\n    label \"app\" \"x{i}\"\n}}\n"))
        .collect();
    let unused = vec![SourceFile {
        path: "unused.kdl".into(),
        text: Arc::from(unused),
    }];
    let warned = load(unused.clone()).diagnostics;
    assert_eq!(warned.warning_count(), 10_000);
    measure("render 10,000 warnings as text", 5, || {
        black_box(render_human(&warned, &unused, false, 80));
    });
    measure("render 10,000 warnings as JSON", 5, || {
        black_box(to_json(&warned, &unused));
    });
}
