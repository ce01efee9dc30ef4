//! `ringfence-agent`: parse flags, wire the agent, map outcomes to exit
//! status (0 success, 1 refused, failed or not in sync, 2 could not run).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use ringfence_agent::agent::{Agent, BundleOutcome, Config, Initial};
use ringfence_agent::applier::Applier;
use ringfence_agent::daemon;
use ringfence_agent::exec::SystemRunner;
use ringfence_agent::source::{Source, Transport};
use ringfence_agent::state::StateDir;
use ringfence_bundle::{MAX_BUNDLE_BYTES, Trust, load_trusted_keys, read_capped};
use ringfence_schema::report::{ComplianceReport, Status};

/// The ringfence node agent: verify signed bundles, apply them atomically,
/// roll back on failure, detect drift, report compliance.
#[derive(Debug, Parser)]
#[command(name = "ringfence-agent", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Keep this node's rules in force: fetch, verify, apply, check drift, report.
    Run(RunArgs),
    /// Apply one bundle file, once.
    Apply(ApplyArgs),
    /// What is applied, since when, from which commit, and the last drift found.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
struct Common {
    /// This node's name (Kubernetes `metadata.name`).
    #[arg(long, value_name = "NAME")]
    node: String,
    /// Public keys (PEM) trusted to sign bundles.
    #[arg(long, value_name = "PUBKEY", required = true, num_args = 1..)]
    trust: Vec<PathBuf>,
    /// How many distinct trusted keys must have signed.
    #[arg(long, value_name = "N", default_value_t = 1)]
    threshold: usize,
    /// Public keys (PEM) trusted to sign membership documents (default: the
    /// `--trust` keys and `--threshold`).
    #[arg(long, value_name = "PUBKEY", num_args = 1..)]
    membership_trust: Vec<PathBuf>,
    /// How many distinct membership keys must have signed.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        requires = "membership_trust"
    )]
    membership_threshold: usize,
    /// State directory (committed bundle, snapshot, report).
    #[arg(long, value_name = "DIR")]
    state: PathBuf,
    /// Run every nft command inside this network namespace (`ip netns exec NAME`).
    #[arg(long, value_name = "NAME")]
    netns: Option<String>,
    /// What to enforce before the first bundle.
    #[arg(long, value_enum, default_value = "allow")]
    initial: InitialArg,
    /// Kill an `nft` run that has not finished after this long (seconds, or
    /// a duration like `90s`).
    #[arg(long, value_name = "S", default_value = "60", value_parser = parse_interval)]
    nft_timeout: Duration,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum InitialArg {
    /// Install nothing: traffic flows until the first bundle.
    Allow,
    /// Drop forwarded pod traffic; the node's own traffic keeps flowing.
    Deny,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// Directory or http(s):// URL holding `<node>.bundle` and `index.json`.
    #[arg(long, value_name = "DIR|URL")]
    source: String,
    /// CA certificates (PEM) that https:// sources and collectors must chain
    /// to, instead of the system's CA bundle.
    #[arg(long, value_name = "PEM")]
    ca_bundle: Option<PathBuf>,
    /// Client certificate chain (PEM) to present over https://.
    #[arg(long, value_name = "PEM", requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "PEM", requires = "client_cert")]
    client_key: Option<PathBuf>,
    /// Time between passes: seconds, or a duration like `30s`, `2m`.
    #[arg(long, value_name = "S", default_value = "30", value_parser = parse_interval)]
    interval: Duration,
    /// How often a directory source's membership `head` is read between
    /// passes (an HTTP source is long-polled, at most this often).
    #[arg(long, value_name = "S", default_value = "200ms", value_parser = parse_interval)]
    membership_poll: Duration,
    /// Re-apply the bundle in force when drift is found.
    #[arg(long)]
    self_heal: bool,
    /// Serve Prometheus metrics and /healthz on this address (`0.0.0.0:9472`).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// POST every report (JSON) to this collector URL (http:// or https://).
    #[arg(long, value_name = "URL")]
    report_to: Option<String>,
    /// One pass, then exit (status as for `status`).
    #[arg(long)]
    once: bool,
    /// Accept bundles from a source that has no signed `index.json`
    /// (without it a bundle of another compile cannot be told apart).
    #[arg(long)]
    no_index: bool,
}

#[derive(Debug, Args)]
struct ApplyArgs {
    #[command(flatten)]
    common: Common,
    /// The bundle file.
    #[arg(long, value_name = "FILE")]
    bundle: PathBuf,
    /// `index.json` the bundle must be listed in.
    #[arg(long, value_name = "FILE")]
    index: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "txt")]
    format: Format,
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// State directory.
    #[arg(long, value_name = "DIR")]
    state: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "txt")]
    format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Text for people.
    Txt,
    /// One JSON document.
    Json,
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = match s.parse::<u64>() {
        Ok(n) => Duration::from_secs(n),
        Err(_) => humantime::parse_duration(s).map_err(|e| format!("`{s}`: {e}"))?,
    };
    if d.is_zero() {
        return Err("the interval must be more than 0".into());
    }
    Ok(d)
}

fn applier(netns: Option<String>, timeout: Duration) -> Box<dyn Applier> {
    let runner = SystemRunner::new(netns).with_timeout(timeout);
    if cfg!(windows) {
        Box::new(ringfence_agent::windows::WindowsApplier::new(runner))
    } else {
        Box::new(ringfence_agent::nft::NftApplier::new(runner))
    }
}

fn agent(c: &Common, self_heal: bool, require_index: bool) -> anyhow::Result<Agent> {
    // The rule `ringfence verify` applies too: one implementation.
    let trust =
        Trust::checked(load_trusted_keys(&c.trust)?, c.threshold).map_err(anyhow::Error::msg)?;
    let membership_trust = if c.membership_trust.is_empty() {
        None
    } else {
        let keys = load_trusted_keys(&c.membership_trust)?;
        Some(Trust::checked(keys, c.membership_threshold).map_err(anyhow::Error::msg)?)
    };
    let state = StateDir::open(&c.state)?;
    let cfg = Config {
        node: c.node.clone(),
        trust,
        initial: match c.initial {
            InitialArg::Allow => Initial::Allow,
            InitialArg::Deny => Initial::Deny,
        },
        self_heal,
        membership_trust,
        require_index,
    };
    Ok(Agent::new(
        cfg,
        state,
        applier(c.netns.clone(), c.nft_timeout),
    ))
}

fn in_sync(r: &ComplianceReport) -> u8 {
    u8::from(r.status != Status::InSync)
}

fn run(a: RunArgs) -> anyhow::Result<u8> {
    if let Some(url) = a
        .report_to
        .as_deref()
        .filter(|u| !u.starts_with("http://") && !u.starts_with("https://"))
    {
        bail!("--report-to {url}: give an http:// or https:// URL");
    }
    let client = a.client_cert.as_deref().zip(a.client_key.as_deref());
    let transport = Transport::new(a.ca_bundle.as_deref(), client).map_err(anyhow::Error::msg)?;
    let mut agent = agent(&a.common, a.self_heal, !a.no_index)?;
    let mut source = Source::parse(&a.source, &transport, Duration::from_secs(30));
    let opts = daemon::Options {
        interval: a.interval,
        membership_poll: a.membership_poll,
        metrics: a.metrics,
        report_to: a.report_to,
        once: a.once,
        transport,
    };
    daemon::run(&mut agent, &mut source, &opts).map_err(anyhow::Error::msg)?;
    Ok(in_sync(&agent.report(SystemTime::now())))
}

fn apply(a: ApplyArgs) -> anyhow::Result<u8> {
    let mut agent = agent(&a.common, false, a.index.is_some())?;
    // One byte past the limit: a larger file is refused as too large.
    let read = |p: &PathBuf| {
        read_capped(p, MAX_BUNDLE_BYTES as u64 + 1).with_context(|| p.display().to_string())
    };
    let bytes = read(&a.bundle)?;
    let index = a.index.as_ref().map(read).transpose()?;
    let now = SystemTime::now();
    // A committed bundle that no longer verifies is reported, not fatal:
    // the offered one may replace it.
    let _ = agent.load(now);
    let outcome = agent.offer(&bytes, index.as_deref(), now);
    agent.check_drift(now);
    agent.write_report(&agent.report(now))?;
    let t = agent.stats.timings;
    let (word, generation, reason, detail) = match &outcome {
        BundleOutcome::Applied { generation } => ("applied", Some(*generation), None, None),
        BundleOutcome::Refreshed { generation } => ("refreshed", Some(*generation), None, None),
        BundleOutcome::Unchanged => ("unchanged", agent.generation(), None, None),
        BundleOutcome::Refused(e) => (
            "refused",
            None,
            Some(e.reason.code()),
            Some(e.detail.clone()),
        ),
        BundleOutcome::Failed(m) => ("failed", None, None, Some(m.clone())),
    };
    match a.format {
        Format::Json => println!(
            "{}",
            serde_json::json!({
                "outcome": word,
                "generation": generation,
                "reason": reason,
                "detail": detail,
                "timings": {
                    "total_ms": t.total.as_secs_f64() * 1e3,
                    "tool_ms": t.tool.as_secs_f64() * 1e3,
                    "agent_ms": t.total.saturating_sub(t.tool).as_secs_f64() * 1e3,
                },
            })
        ),
        Format::Txt => match (generation, reason, detail) {
            (Some(g), _, _) => println!("{word}: generation {g}"),
            (None, Some(r), Some(d)) => println!("{word} ({r}): {d}"),
            (None, _, Some(d)) => println!("{word}: {d}"),
            _ => println!("{word}"),
        },
    }
    Ok(outcome.exit_code())
}

fn status(a: StatusArgs) -> anyhow::Result<u8> {
    let state = StateDir::inspect(&a.state);
    let current = state.current()?;
    let members = state.membership()?;
    let path = state.report_path();
    let report: Option<ComplianceReport> = match read_capped(&path, 64 << 20) {
        Ok(b) => Some(serde_json::from_slice(&b).with_context(|| format!("{}", path.display()))?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| path.display().to_string()),
    };
    match a.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "generation": current.as_ref().map(|c| c.generation),
                "bundle": current.as_ref().map(|c| &c.bundle),
                "applied_at": current.as_ref().map(|c| &c.applied_at),
                "membership": members.as_ref().map(|m| serde_json::json!({
                    "generation": m.generation,
                    "sequence": m.sequence,
                    "digest": m.digest,
                    "issued_at": m.issued_at,
                    "applied_at": m.applied_at,
                    "addresses": m.membership.len(),
                })),
                "report": report,
            }))?
        ),
        Format::Txt => {
            match (&current, report.as_ref().and_then(|r| r.applied.as_ref())) {
                (Some(c), Some(a)) => println!(
                    "generation {} applied at {}, from commit {}, expires {}",
                    c.generation,
                    c.applied_at,
                    a.commit.as_deref().unwrap_or("(none)"),
                    a.expires_at
                ),
                (Some(c), None) => {
                    println!("generation {} applied at {}", c.generation, c.applied_at)
                }
                (None, _) => println!("no bundle applied"),
            }
            if let Some(m) = &members {
                println!(
                    "membership {} of generation {} applied at {} (issued {}, {} addresses)",
                    m.sequence,
                    m.generation,
                    m.applied_at,
                    m.issued_at,
                    m.membership.len()
                );
            }
            if let Some(r) = &report {
                let status = serde_json::to_value(r.status)?;
                println!(
                    "status: {} (report of {})",
                    status.as_str().unwrap_or_default(),
                    r.generated_at
                );
                for (kind, items) in [
                    ("missing", &r.drift.missing),
                    ("extra", &r.drift.extra),
                    ("changed", &r.drift.changed),
                ] {
                    for i in items {
                        println!("  {kind}: {i}");
                    }
                }
                if let Some(e) = &r.last_error {
                    println!("last error: {e}");
                }
            }
        }
    }
    Ok(report.as_ref().map_or(1, in_sync))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => run(a),
        Command::Apply(a) => apply(a),
        Command::Status(a) => status(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
