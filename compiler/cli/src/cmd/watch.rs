//! `ringfence watch`: publish signed bundles for every new commit of a
//! branch (see `ringfence_gitops::watch`). Logs go to stderr; with `--once`
//! a summary goes to stdout and the exit status is 1 when a commit failed.
//! `RINGFENCE_WATCH_FAILPOINT` (tests only) aborts the process at a point
//! of a publication, as a crash would. With `--inventory-events` (or
//! `--kube`: the API server's watches, see `ringfence_kube::follow`) the
//! events are read every 50 ms between polls of the repository. With
//! `--serve` the publication is also served over HTTP (see
//! `ringfence_gitops::serve`).

use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;

use ringfence_gitops::publish::Failpoint;
use ringfence_gitops::serve::{Limits, Server};
use ringfence_gitops::watch::{Event, LiveConfig, LiveSource, RepoLocation, WatchConfig, Watcher};

use crate::Exit;
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
        Event::Listed { pods } => eprintln!("watch: live cluster listed: {pods} pod(s)"),
        Event::BadEvent { reason } => eprintln!("watch: event skipped: {reason}"),
        Event::StreamEnded => eprintln!(
            "watch: the event stream ended; membership stays as it is until watch restarts"
        ),
        Event::SourceProblem { reason } => eprintln!("watch: live inventory: {reason}"),
        Event::Members {
            pods,
            deltas,
            snapshots,
            bytes,
        } => eprintln!(
            "watch: membership: {pods} pod change(s): {deltas} delta(s) ({bytes} bytes), {snapshots} snapshot(s)"
        ),
    }
}

/// The live inventory of `args`, if it has one.
fn live_config(args: &WatchArgs) -> anyhow::Result<Result<Option<LiveConfig>, Exit>> {
    if args.inventory_events.is_none() && !args.kube {
        return Ok(Ok(None));
    }
    let membership_expires = humantime::parse_duration(&args.membership_expires).map_err(|e| {
        anyhow::anyhow!(
            "--membership-expires `{}`: {e} (e.g. 1h)",
            args.membership_expires
        )
    })?;
    if membership_expires.is_zero() {
        anyhow::bail!("--membership-expires must be longer than zero");
    }
    let paths = if args.membership_key.is_empty() {
        &args.key
    } else {
        &args.membership_key
    };
    let membership_keys = match common::signing_keys(paths)? {
        Ok(k) => k,
        Err(outcome) => return Ok(Err(outcome)),
    };
    let source = match &args.inventory_events {
        Some(events) => LiveSource::Events(events.clone()),
        None => {
            let first_list = humantime::parse_duration(&args.kube_timeout).map_err(|e| {
                anyhow::anyhow!("--kube-timeout `{}`: {e} (e.g. 30s)", args.kube_timeout)
            })?;
            let f = ringfence_kube::follow(&ringfence_kube::FollowOptions {
                context: args.context.clone(),
                kubeconfig: args.kubeconfig.clone(),
            })?;
            #[allow(clippy::print_stderr)] // the log
            {
                eprintln!("watch: live inventory from {}", f.server);
            }
            LiveSource::Feed {
                changes: f.changes,
                server: f.server,
                cluster: f.cluster,
                first_list,
            }
        }
    };
    Ok(Ok(Some(LiveConfig {
        source,
        cluster: args.events_cluster.clone(),
        membership_keys,
        membership_expires,
    })))
}

pub(crate) fn run(args: WatchArgs) -> anyhow::Result<Exit> {
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
    let live = match live_config(&args)? {
        Ok(l) => l,
        Err(outcome) => return Ok(outcome),
    };
    let following = live.is_some();
    let out = args.out.clone();
    let cfg = WatchConfig {
        repo: RepoLocation::parse(&args.repo),
        branch: args.branch,
        path: args.path,
        inventory: args.inventory,
        trivy: args.trivy,
        keys,
        out: args.out,
        keep: args.keep,
        expires,
        failpoint,
        live,
    };
    let mut watcher = Watcher::open(cfg, &mut log)?;
    let _server = match &args.serve {
        None => None,
        Some(addr) => {
            let server = Server::start(addr, &out, watcher.board(), Limits::default())
                .with_context(|| format!("--serve {addr}: cannot listen there"))?;
            #[allow(clippy::print_stderr)] // the log
            {
                eprintln!(
                    "watch: serving {} read-only on http://{}",
                    out.display(),
                    server.local_addr()
                );
            }
            Some(server)
        }
    };
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
            Exit::Findings
        } else {
            Exit::Clean
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
        let next = Instant::now() + Duration::from_secs(args.interval);
        if !following {
            std::thread::sleep(next - Instant::now());
            continue;
        }
        while Instant::now() < next {
            if let Err(e) = watcher.follow_events(&now, &mut log) {
                #[allow(clippy::print_stderr)] // the log
                {
                    eprintln!("watch: following events failed: {e:#}");
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
