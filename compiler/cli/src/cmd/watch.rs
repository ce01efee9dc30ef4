//! `ringfence watch`: publish signed bundles for every new commit of a
//! branch (see `ringfence_gitops::watch`). Logs go to stderr; with `--once`
//! a summary goes to stdout and the exit status is 1 when a commit failed.
//! `RINGFENCE_WATCH_FAILPOINT` (tests only) aborts the process at a point
//! of a publication, as a crash would.

use std::time::{Duration, SystemTime};

use anyhow::Context;

use ringfence_gitops::publish::Failpoint;
use ringfence_gitops::watch::{Event, RepoLocation, WatchConfig, Watcher};

use crate::Outcome;
use crate::cmd::common;
use crate::flags::WatchArgs;

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

#[allow(clippy::print_stderr)] // the log
fn log(e: Event) {
    match e {
        Event::Recovered { removed } => eprintln!(
            "watch: removed leftovers of an interrupted run: generations/{}",
            removed.join(", generations/")
        ),
        Event::Adopted { generation, commit } => eprintln!(
            "watch: generation {generation} ({}) was made current before a restart; recorded it",
            short(&commit)
        ),
        Event::Seeded { bundles } => {
            eprintln!("watch: render cache filled from {bundles} published bundle(s)")
        }
        Event::Rewritten { last, tip } => eprintln!(
            "watch: {} is no longer on the branch (history rewritten); publishing the tip {}",
            short(&last),
            short(&tip)
        ),
        Event::Published {
            commit,
            trigger,
            generation,
            nodes,
            changed,
            rendered,
        } => eprintln!(
            "watch: published {} as generation {generation} ({trigger}): {nodes} node(s), {changed} with new rules, {rendered} rendered",
            short(&commit)
        ),
        Event::Failed {
            commit,
            reason,
            report,
        } => {
            eprintln!("watch: {} not published: {reason}", short(&commit));
            eprint!("{report}");
        }
        Event::Pruned { generations } => {
            let g: Vec<String> = generations.iter().map(u64::to_string).collect();
            eprintln!("watch: removed old generation(s) {}", g.join(", "))
        }
    }
}

pub(crate) fn run(args: WatchArgs) -> anyhow::Result<Outcome> {
    let expires = humantime::parse_duration(&args.expires)
        .map_err(|e| anyhow::anyhow!("--expires `{}`: {e} (e.g. 24h, 7d)", args.expires))?;
    if expires.is_zero() {
        anyhow::bail!("--expires must be longer than zero");
    }
    if args.interval == 0 && !args.once {
        anyhow::bail!("--interval must be at least 1 second (or use --once)");
    }
    let failpoint = match std::env::var("RINGFENCE_WATCH_FAILPOINT") {
        Ok(v) => Some(
            v.parse::<Failpoint>()
                .map_err(anyhow::Error::msg)
                .context("RINGFENCE_WATCH_FAILPOINT")?,
        ),
        Err(_) => None,
    };
    let keys = match common::signing_keys(&args.key)? {
        Ok(k) => k,
        Err(outcome) => return Ok(outcome),
    };
    let cfg = WatchConfig {
        repo: RepoLocation::parse(&args.repo),
        branch: args.branch,
        path: args.path,
        inventory: args.inventory.inventory,
        trivy: args.inventory.trivy,
        keys,
        out: args.out,
        keep: args.keep,
        expires,
        failpoint,
    };
    let mut watcher = Watcher::open(cfg, &mut log)?;
    // The clock is read here, in the CLI, once per publication.
    let now = SystemTime::now;
    if args.once {
        let r = watcher.poll(&now, &mut log)?;
        let s = watcher.status();
        let current = match &s.last_published {
            Some(p) => format!("generation {} ({})", p.generation, short(&p.commit)),
            None => "nothing published yet".into(),
        };
        crate::cmd::output::line(format!(
            "{} commit(s) processed: {} published, {} failed; current: {current}",
            r.processed, r.published, r.failed
        ))?;
        return Ok(if r.failed > 0 {
            Outcome::Findings
        } else {
            Outcome::Clean
        });
    }
    loop {
        if let Err(e) = watcher.poll(&now, &mut log) {
            // A network or repository problem: try again at the next poll.
            #[allow(clippy::print_stderr)] // the log
            {
                eprintln!("watch: poll failed (retrying in {}s): {e:#}", args.interval);
            }
        }
        std::thread::sleep(Duration::from_secs(args.interval));
    }
}
