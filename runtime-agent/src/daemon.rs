//! The `run` loop: start-up re-apply, then every interval fetch → offer →
//! membership → drift → report (file, collector, metrics); between passes,
//! while a live bundle is in force, the membership `head` is followed
//! (read every `membership_poll` from a directory, long-polled over HTTP).

use std::time::{Duration, Instant, SystemTime};

use crate::agent::{Agent, BundleOutcome};
use crate::log;
use crate::metrics::{self, Exporter, Metrics};
use crate::source::{Fetched, Source, Transport, post_json};

/// The metrics of a running loop and where they are shown.
pub struct Telemetry {
    /// The families.
    pub metrics: Metrics,
    /// The server's publisher.
    pub exporter: Exporter,
}

/// How the loop runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Time between passes.
    pub interval: Duration,
    /// Time between reads of the membership head between passes.
    pub membership_poll: Duration,
    /// Address for the metrics server, if any.
    pub metrics: Option<String>,
    /// Collector URL the report is POSTed to, if any.
    pub report_to: Option<String>,
    /// How reports travel (TLS roots, client certificate).
    pub transport: Transport,
    /// Do one pass and return (cron jobs, tests).
    pub once: bool,
}

/// Run the agent until killed (or one pass with [`Options::once`]).
pub fn run(agent: &mut Agent, source: &mut Source, opts: &Options) -> Result<(), String> {
    let telemetry = match &opts.metrics {
        Some(addr) => {
            let stale = opts.interval * 3 + Duration::from_secs(60);
            let (bound, exporter) =
                metrics::serve(addr, stale).map_err(|e| format!("--metrics {addr}: {e}"))?;
            log(&format!("metrics on http://{bound}/metrics"));
            Some(Telemetry {
                metrics: Metrics::new(agent.node()),
                exporter,
            })
        }
        None => None,
    };
    // A failed start-up leaves whatever is in the kernel and is reported;
    // fetching goes on, since a newer bundle is the way out.
    let _ = agent.startup(SystemTime::now());
    loop {
        pass(agent, source, opts, telemetry.as_ref());
        if opts.once {
            return Ok(());
        }
        follow(agent, source, opts, telemetry.as_ref());
    }
}

/// Until the next pass: apply membership as it is published. Reads of an
/// unchanged head cost a small file read or one long-poll; nothing else.
/// Ends early when the membership published is for a newer bundle
/// generation (a node re-rendered for a pod of a new class): the pass
/// fetches that bundle at once.
fn follow(agent: &mut Agent, source: &Source, opts: &Options, telemetry: Option<&Telemetry>) {
    let until = Instant::now() + opts.interval;
    let http = matches!(source, Source::Http { .. });
    loop {
        let now = Instant::now();
        if now >= until {
            return;
        }
        let left = until - now;
        if !agent.is_live() {
            std::thread::sleep(left);
            return;
        }
        if !http {
            std::thread::sleep(opts.membership_poll.min(left));
        }
        let asked = Instant::now();
        let wait = http.then_some(left);
        match agent.sync_membership(source, wait, SystemTime::now()) {
            Ok(true) => {
                if let Some(t) = telemetry {
                    let latency = agent.stats.members.latency.take();
                    t.metrics
                        .members(&agent.stats.members, latency, agent.members());
                    t.exporter.publish(t.metrics.encode());
                }
            }
            Ok(false) => {}
            Err(e) => agent.note_error(format!("membership: {e}")),
        }
        // The head moved to another generation's snapshot: its bundle is
        // there to fetch, and the pass does that now.
        if agent.take_rules_behind() {
            return;
        }
        // A server that does not hold the request answers at once: poll it
        // no faster than a directory.
        if http && asked.elapsed() < opts.membership_poll {
            std::thread::sleep(
                opts.membership_poll
                    .min(until.saturating_duration_since(Instant::now())),
            );
        }
    }
}

/// One pass: fetch and offer, check drift, report.
pub fn pass(agent: &mut Agent, source: &mut Source, opts: &Options, telemetry: Option<&Telemetry>) {
    let fetching = Instant::now();
    let fetched = source.fetch(agent.node());
    if let Some(t) = telemetry {
        t.metrics.fetched(fetching.elapsed(), fetched.is_ok());
    }
    match fetched {
        Ok(Fetched::NotModified) => agent.clear_error(),
        Ok(Fetched::Absent) => agent.note_error(format!(
            "no bundle for node `{}` at the source yet",
            agent.node()
        )),
        Ok(Fetched::Bundle { bytes, index, etag }) => {
            match agent.offer(&bytes, index.as_deref(), SystemTime::now()) {
                // A failed apply may work next time: fetch it again.
                BundleOutcome::Failed(_) => {}
                BundleOutcome::Unchanged => {
                    agent.clear_error();
                    source.remember(etag);
                }
                _ => source.remember(etag),
            }
        }
        Err(e) => agent.note_error(e.to_string()),
    }
    // The membership of the generation in force (a new one's snapshot).
    if let Err(e) = agent.sync_membership(source, None, SystemTime::now()) {
        agent.note_error(format!("membership: {e}"));
    }
    let now = SystemTime::now();
    agent.check_drift(now);
    let report = agent.report(now);
    if let Err(e) = agent.write_report(&report) {
        log(&e.to_string());
    }
    if let Some(url) = &opts.report_to {
        let body = serde_json::to_vec(&report).unwrap_or_default();
        if let Err(e) = post_json(url, &body, &opts.transport, Duration::from_secs(10)) {
            log(&format!("report not delivered: {e}"));
        }
    }
    if let Some(t) = telemetry {
        if let Some(d) = agent.stats.verify_time.take() {
            t.metrics.verified(d);
        }
        if let Some(d) = agent.stats.apply_time.take() {
            t.metrics.applied(d);
        }
        t.metrics.update(&report);
        let latency = agent.stats.members.latency.take();
        t.metrics
            .members(&agent.stats.members, latency, agent.members());
        t.exporter.publish(t.metrics.encode());
    }
}
