//! Every command and flag of `ringfence`, in one place.
//!
//! Parsing here has no side effects; each command validates its arguments
//! into its own configuration before touching Git, files or plugins.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Zero-trust microsegmentation for Kubernetes, compiled from Git.
#[derive(Debug, Parser)]
#[command(name = "ringfence", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Output format for results meant for people or machines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Text for people.
    #[value(alias = "human")]
    Txt,
    /// One JSON document.
    Json,
    /// A self-contained HTML page (analyze only).
    Html,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Validate intent and report every problem at once.
    Check(CheckArgs),
    /// Rewrite intent files in the canonical layout, keeping comments.
    Fmt(FmtArgs),
    /// Say whether a connection is allowed, and which policy decides each side.
    Explain(ExplainArgs),
    /// List every allowed connection between workloads.
    Matrix(MatrixArgs),
    /// Render every node's rules with its backend, unsigned, for review.
    Render(RenderArgs),
    /// Compile intent into signed per-node bundles (or per-node IR).
    Compile(CompileArgs),
    /// Write a new ed25519 signing key pair.
    Keygen(KeygenArgs),
    /// Verify a bundle: signature, node, generation, expiry, digests.
    Verify(VerifyArgs),
    /// Cluster inventory.
    #[command(subcommand)]
    Inventory(InventoryCommand),
    /// Summarise a directory of agent compliance reports.
    Report(ReportArgs),
    /// Git hooks that run `ringfence check`.
    #[command(subcommand)]
    Hooks(HooksCommand),
    /// What changes between two revisions, per node and as connectivity.
    Plan(PlanArgs),
    /// Publish signed bundles for every new commit of a branch.
    Watch(WatchArgs),
    /// Write intent from observed flows.
    Discover(DiscoverArgs),
    /// Judge flows against a policy version.
    Analyze(AnalyzeArgs),
    /// Write intent from another system's policies.
    #[command(subcommand)]
    Import(ImportCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ImportCommand {
    /// Kubernetes NetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy
    /// and ClusterNetworkPolicy objects (`kubectl get netpol,anp,banp -A -o yaml`,
    /// or directories of manifests).
    K8s(ImportK8sArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ImportK8sArgs {
    /// YAML or JSON files, and directories of them (read recursively).
    #[arg(value_name = "PATH", required = true, num_args = 1..)]
    pub(crate) paths: Vec<PathBuf>,
    /// Directory to write the intent files to (created if missing; must hold no *.kdl file).
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
    /// Name of the scope that holds every pod.
    #[arg(long, value_name = "NAME", default_value = "kubernetes")]
    pub(crate) scope: String,
    /// Limit the scope to this cluster of the inventory.
    #[arg(long, value_name = "NAME")]
    pub(crate) cluster: Option<String>,
    /// Output format of the report on stdout.
    #[arg(long, value_enum, default_value = "txt")]
    pub(crate) format: Format,
}

/// Where intent is read from.
#[derive(Clone, Debug, Args)]
pub(crate) struct SourceArgs {
    /// Intent directory (or a directory inside a Git repository).
    #[arg(default_value = ".")]
    pub(crate) dir: PathBuf,
    /// Read intent from this Git revision instead of the working tree.
    #[arg(long, value_name = "REV")]
    pub(crate) rev: Option<String>,
}

/// The cluster state to compile against.
#[derive(Clone, Debug, Args)]
pub(crate) struct InventoryArgs {
    /// `kubectl get nodes,namespaces,pods,services -A -o json` output, one file per cluster;
    /// or Kubernetes manifests (YAML or JSON files and directories) describing one cluster.
    #[arg(long = "inventory", value_name = "FILE|DIR", required = true, num_args = 1..)]
    pub(crate) inventory: Vec<PathBuf>,
    /// Trivy JSON reports (`trivy image --format json`) giving pods their CVSS score.
    #[arg(long = "trivy", value_name = "FILE", num_args = 1..)]
    pub(crate) trivy: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Intent directory (or a directory inside a Git repository).
    #[arg(default_value = ".")]
    pub(crate) dir: PathBuf,
    /// Check this Git revision instead of the working tree.
    #[arg(long, value_name = "REV", conflicts_with = "staged")]
    pub(crate) rev: Option<String>,
    /// Check the files staged in the Git index (for pre-commit hooks).
    #[arg(long)]
    pub(crate) staged: bool,
    /// With --rev: DIR is a repository (bare or not) and the intent is this
    /// directory inside it, relative to its root (server-side hooks).
    #[arg(long, value_name = "SUBDIR", requires = "rev")]
    pub(crate) path: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "txt")]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct FmtArgs {
    /// Intent directory.
    #[arg(default_value = ".")]
    pub(crate) dir: PathBuf,
    /// Do not write; exit 1 if any file is not formatted.
    #[arg(long)]
    pub(crate) check: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ExplainArgs {
    #[command(flatten)]
    pub(crate) source: SourceArgs,
    #[command(flatten)]
    pub(crate) inventory: InventoryArgs,
    /// Consumer: `namespace/name` (pod, service or owning workload), a node, `external:NAME` or an IP.
    #[arg(long, value_name = "WORKLOAD|IP")]
    pub(crate) from: String,
    /// Provider, as for --from.
    #[arg(long, value_name = "WORKLOAD|IP")]
    pub(crate) to: String,
    /// Protocol: tcp, udp, sctp or icmp.
    #[arg(long, default_value = "tcp")]
    pub(crate) proto: String,
    /// Destination port.
    #[arg(long)]
    pub(crate) port: Option<u16>,
    /// Output format.
    #[arg(long, value_enum, default_value = "txt")]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct MatrixArgs {
    #[command(flatten)]
    pub(crate) source: SourceArgs,
    #[command(flatten)]
    pub(crate) inventory: InventoryArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "txt")]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct RenderArgs {
    #[command(flatten)]
    pub(crate) source: SourceArgs,
    #[command(flatten)]
    pub(crate) inventory: InventoryArgs,
    /// Output directory: one folder per node.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
}

/// What `compile` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Emit {
    /// Signed bundles and a signed index.
    Bundles,
    /// The per-node IR as JSON, unsigned.
    Ir,
}

#[derive(Debug, Args)]
pub(crate) struct CompileArgs {
    #[command(flatten)]
    pub(crate) source: SourceArgs,
    #[command(flatten)]
    pub(crate) inventory: InventoryArgs,
    /// Ed25519 private key(s) from `ringfence keygen`; required for bundles.
    /// Several keys sign every bundle (key rotation, thresholds).
    #[arg(long, value_name = "KEYFILE", num_args = 1..)]
    pub(crate) key: Vec<PathBuf>,
    /// Output directory.
    #[arg(long, value_name = "OUTDIR")]
    pub(crate) out: PathBuf,
    /// Issue time (RFC 3339). Without it, the current time is read once, here.
    #[arg(long, value_name = "RFC3339")]
    pub(crate) time: Option<String>,
    /// How long bundles stay valid. A year by default: nothing re-signs
    /// between one-shot compiles (`watch` re-signs and defaults to 7d).
    #[arg(long, value_name = "DURATION", default_value = "365d")]
    pub(crate) expires: String,
    /// Generation for nodes whose rules changed (default: one more than OUTDIR's highest).
    #[arg(long, value_name = "N")]
    pub(crate) generation: Option<u64>,
    /// What to write.
    #[arg(long, value_enum, default_value = "bundles")]
    pub(crate) emit: Emit,
}

#[derive(Debug, Args)]
pub(crate) struct KeygenArgs {
    /// Writes PREFIX.key (mode 0600) and PREFIX.pub.
    #[arg(long, value_name = "PREFIX")]
    pub(crate) out: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The bundle file.
    pub(crate) bundle: PathBuf,
    /// Trusted public keys (PREFIX.pub files).
    #[arg(long, value_name = "PUBKEY", required = true, num_args = 1..)]
    pub(crate) trust: Vec<PathBuf>,
    /// How many distinct trusted keys must have signed.
    #[arg(long, default_value_t = 1)]
    pub(crate) threshold: usize,
    /// The node it must be for.
    #[arg(long)]
    pub(crate) node: Option<String>,
    /// Lowest acceptable generation.
    #[arg(long, value_name = "N")]
    pub(crate) min_generation: Option<u64>,
    /// The signed index it must be listed in.
    #[arg(long, value_name = "FILE")]
    pub(crate) index: Option<PathBuf>,
    /// Current time (RFC 3339) for the expiry check; default: the clock.
    #[arg(long, value_name = "RFC3339")]
    pub(crate) now: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "txt")]
    pub(crate) format: Format,
}

#[derive(Debug, Subcommand)]
pub(crate) enum InventoryCommand {
    /// Read nodes, namespaces, pods and services from a Kubernetes API server.
    Pull(PullArgs),
}

#[derive(Debug, Args)]
pub(crate) struct PullArgs {
    /// Kubeconfig context (default: the current context).
    #[arg(long, value_name = "NAME")]
    pub(crate) context: Option<String>,
    /// Kubeconfig file (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// Cluster name recorded in the output (default: the context's cluster).
    #[arg(long, value_name = "NAME")]
    pub(crate) cluster: Option<String>,
    /// Write here instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// Directory of compliance reports (`*.json`).
    pub(crate) dir: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "txt")]
    pub(crate) format: Format,
}

#[derive(Debug, Subcommand)]
pub(crate) enum HooksCommand {
    /// Install the pre-commit hook (or, with --server, the pre-receive hook).
    Install(HooksInstallArgs),
}

#[derive(Debug, Args)]
pub(crate) struct HooksInstallArgs {
    /// Repository (default: the one containing the current directory).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub(crate) repo: PathBuf,
    /// Install the server-side pre-receive hook into a bare repository.
    #[arg(long)]
    pub(crate) server: bool,
    /// Chain an existing hook instead of refusing.
    #[arg(long)]
    pub(crate) chain: bool,
}

#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    /// Intent directory inside the repository.
    #[arg(default_value = ".")]
    pub(crate) dir: PathBuf,
    /// Base revision.
    #[arg(long, value_name = "REV")]
    pub(crate) from: String,
    /// Revision under review.
    #[arg(long, value_name = "REV")]
    pub(crate) to: String,
    #[command(flatten)]
    pub(crate) inventory: InventoryArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "txt")]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    /// Repository path or URL.
    #[arg(long, value_name = "PATH|URL")]
    pub(crate) repo: String,
    /// Branch to follow.
    #[arg(long, value_name = "NAME", default_value = "main")]
    pub(crate) branch: String,
    /// Intent directory inside the repository.
    #[arg(long, value_name = "PATH", default_value = ".")]
    pub(crate) path: String,
    #[command(flatten)]
    pub(crate) inventory: InventoryArgs,
    /// Ed25519 private key(s) from `ringfence keygen`; several sign every
    /// bundle (key rotation, thresholds).
    #[arg(long, value_name = "KEYFILE", required = true, num_args = 1..)]
    pub(crate) key: Vec<PathBuf>,
    /// Publication directory (what agents read).
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
    /// Seconds between polls.
    #[arg(long, default_value_t = 10)]
    pub(crate) interval: u64,
    /// Published generations to keep.
    #[arg(long, default_value_t = 5)]
    pub(crate) keep: usize,
    /// How long bundles stay valid (re-signed at half of it).
    #[arg(long, value_name = "DURATION", default_value = "7d")]
    pub(crate) expires: String,
    /// Poll once and exit.
    #[arg(long)]
    pub(crate) once: bool,
}

/// How finely discovery groups workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Granularity {
    /// The whole cluster is one boundary.
    Cluster,
    /// One group per namespace.
    Namespace,
    /// A service and its pods are one unit.
    Coarse,
    /// Pods and services apart.
    Fine,
}

/// How boldly discovery folds ports into ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum PortGeneralization {
    /// Never.
    Off,
    /// Only with strong evidence.
    Low,
    /// Balanced.
    Medium,
    /// Aggressively.
    High,
}

#[derive(Debug, Args)]
pub(crate) struct DiscoverArgs {
    #[command(flatten)]
    pub(crate) inventory: InventoryArgs,
    /// Flow records: ringfence JSON Lines, Hubble JSON, or conntrack -o extended.
    #[arg(long, value_name = "FILE", required = true, num_args = 1..)]
    pub(crate) flows: Vec<PathBuf>,
    /// Where to write the intent files.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
    /// Scope the discovered policies belong to.
    #[arg(long, value_name = "NAME")]
    pub(crate) scope: Option<String>,
    /// Grouping.
    #[arg(long, value_enum, default_value = "coarse")]
    pub(crate) granularity: Granularity,
    /// Port folding.
    #[arg(long, value_enum, default_value = "medium")]
    pub(crate) port_generalization: PortGeneralization,
    /// Exclusion filters (KDL).
    #[arg(long, value_name = "FILE")]
    pub(crate) exclude: Option<PathBuf>,
    /// Ignore conversations seen fewer times than this.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) min_flows: u64,
    /// Format of the summary.
    #[arg(long, value_enum, default_value = "txt")]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct AnalyzeArgs {
    #[command(flatten)]
    pub(crate) source: SourceArgs,
    /// Compare with the verdicts of this revision.
    #[arg(long, value_name = "REV")]
    pub(crate) against: Option<String>,
    #[command(flatten)]
    pub(crate) inventory: InventoryArgs,
    /// Flow records.
    #[arg(long, value_name = "FILE", required = true, num_args = 1..)]
    pub(crate) flows: Vec<PathBuf>,
    /// Agents' compliance reports to fold in.
    #[arg(long, value_name = "DIR")]
    pub(crate) reports: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "txt")]
    pub(crate) format: Format,
    /// Write here instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn flags_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn check_rev_and_staged_conflict() {
        assert!(Cli::try_parse_from(["ringfence", "check", "--rev", "HEAD", "--staged"]).is_err());
        let c = Cli::try_parse_from(["ringfence", "check", "dir", "--format", "json"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Check(CheckArgs {
                format: Format::Json,
                ..
            })
        ));
    }

    #[test]
    fn compile_takes_several_keys() {
        let argv = [
            "ringfence",
            "compile",
            "--inventory",
            "i.json",
            "--out",
            "o",
            "--key",
            "a.key",
            "b.key",
        ];
        let c = Cli::try_parse_from(argv).unwrap();
        assert!(
            matches!(c.command, Command::Compile(CompileArgs { ref key, .. }) if key.len() == 2)
        );
    }
}
