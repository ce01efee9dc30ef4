//! Push to published bundles for the 1,000-node synthetic cluster
//! (`ringfence_testkit::synth`, `Params::benchmark()` with Linux nodes only): `watch` follows a bare
//! repository; after the first publication (every node rendered) one policy
//! changes, and the poll that publishes it is timed, with the nodes it
//! rendered and re-sealed. Then the same after a restart (render cache
//! seeded from the published bundles). Run with `bench/watch.sh` or
//! `cargo bench -p ringfence-gitops --bench watch`. It runs on the CLI's
//! allocator, as `ringfence watch` does.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use ringfence_gitops::watch::{Event, RepoLocation, WatchConfig, Watcher};
use ringfence_testkit::git::git;
use ringfence_testkit::synth::{Params, generate};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Change the port of the `n`-th `allow` policy that has a single port.
fn change_one_policy(file: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let mut seen = 0;
    let mut out = String::with_capacity(text.len());
    let mut changed = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if changed.is_empty()
            && t.starts_with("allow ")
            && let Some((head, port)) = line.rsplit_once(" ports=")
            && let Ok(p) = port.trim().trim_matches('"').parse::<u16>()
        {
            if seen == n {
                changed = format!("{t} -> ports=\"{}\"", p + 1);
                out.push_str(&format!("{head} ports=\"{}\"\n", p + 1));
                continue;
            }
            seen += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(!changed.is_empty(), "no single-port allow policy #{n}");
    std::fs::write(file, out).unwrap();
    changed
}

/// The process's CPU time (user + system, every thread) from
/// `/proc/self/stat`, in seconds (Linux reports it in 1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command's closing parenthesis; utime and stime are the 14th and 15th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let ticks: u64 = rest
        .split(' ')
        .skip(11)
        .take(2)
        .map(|t| t.parse::<u64>().unwrap())
        .sum();
    ticks as f64 / 100.0
}

fn poll(w: &mut Watcher, label: &str) {
    let mut published = Vec::new();
    let cpu = cpu_seconds();
    let start = Instant::now();
    let r = w
        .poll(&SystemTime::now, &mut |e| match e {
            Event::Published {
                nodes,
                changed,
                rendered,
                ..
            } => published.push((start.elapsed(), nodes, changed, rendered)),
            Event::Failed { reason, .. } => println!("{label}: failed: {reason}"),
            _ => {}
        })
        .expect("poll");
    let total = start.elapsed();
    let cpu = cpu_seconds() - cpu;
    assert_eq!(r.published, 1, "{label}: {r:?}");
    let (at, nodes, changed, rendered) = published[0];
    println!(
        "{label:<42} {:>7.3} s (poll {:>6.3} s, CPU {cpu:.2} s)  {nodes} nodes, {changed} with new rules, {rendered} rendered",
        at.as_secs_f64(),
        total.as_secs_f64()
    );
}

/// The benchmark's directory, removed however the run ends.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn main() {
    let scratch =
        Scratch(std::env::temp_dir().join(format!("ringfence-watch-bench-{}", std::process::id())));
    let tmp = scratch.0.clone();
    let (work, bare, out) = (tmp.join("work"), tmp.join("server.git"), tmp.join("out"));
    // All Linux: the Windows backend refuses nodes serving a NodePort or
    // LoadBalancer, which the benchmark cluster's Windows nodes do.
    let params = Params {
        windows_every: 0,
        ..Params::benchmark()
    };
    let start = Instant::now();
    generate(&params)
        .write(&work)
        .expect("write the synthetic cluster");
    println!(
        "synthetic cluster: {} nodes, {} pods, {} policies (generated in {:.1} s)",
        params.nodes,
        params.pods,
        params.policies,
        start.elapsed().as_secs_f64()
    );
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "-q", "--bare", "-b", "main"]);
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "intent"]);
    git(&work, &["commit", "-q", "-m", "synthetic intent"]);
    git(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);

    let config = || WatchConfig {
        repo: RepoLocation::Path(bare.clone()),
        branch: "main".into(),
        path: "intent".into(),
        inventory: std::fs::read_dir(work.join("inventory"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect(),
        trivy: Vec::new(),
        keys: vec![ringfence_testkit::keys::key(7)],
        out: out.clone(),
        keep: 2,
        expires: Duration::from_secs(7 * 86_400),
        failpoint: None,
        live: None,
    };
    let mut w = Watcher::open(config(), &mut |_| {}).expect("open");
    poll(&mut w, "first publication (every node rendered)");

    let intent = work.join("intent/intent.kdl");
    for (round, n) in [(1, 10), (2, 200), (3, 333)] {
        let what = change_one_policy(&intent, n);
        git(&work, &["commit", "-q", "-am", "one policy"]);
        git(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);
        if round == 1 {
            println!("changed: {what}");
        }
        poll(&mut w, &format!("one policy changed (#{round})"));
    }
    drop(w);

    let start = Instant::now();
    let mut seeded = 0;
    let mut w = Watcher::open(config(), &mut |e| {
        if let Event::Seeded { bundles } = e {
            seeded = bundles;
        }
    })
    .expect("reopen");
    println!(
        "{:<42} {:>7.3} s   {seeded} bundles read into the render cache",
        "restart (recover, seed the cache)",
        start.elapsed().as_secs_f64()
    );
    change_one_policy(&intent, 50);
    git(&work, &["commit", "-q", "-am", "one policy"]);
    git(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);
    poll(&mut w, "one policy changed, after the restart");

    let size: u64 = std::fs::read_dir(out.join("current"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    println!("one generation on disk: {:.1} MB", size as f64 / 1e6);
    drop(w);
    drop(scratch);
}
