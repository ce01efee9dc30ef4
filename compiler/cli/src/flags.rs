//! Every command and flag of `ringfence`, in one place.
//!
//! Parsing here has no side effects; each command validates its arguments
//! into its own configuration before touching Git, files or plugins.
//!
//! Conventions: a flag takes one value and repeats for more (`--inventory a
//! --inventory b`), so it never swallows a positional argument; `-` names
//! standard input; `-o` is `--format`, and every command that prints JSON
//! prints YAML too; each command's `--help` ends with examples.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Zero-trust microsegmentation for Kubernetes, compiled from Git.
#[derive(Debug, Parser)]
#[command(
    name = "ringfence",
    version,
    about,
    propagate_version = true,
    after_help = "Examples:
  ringfence check policies/
  ringfence matrix policies/ --inventory prod.json -o json | jq '.[0]'
  ringfence compile policies/ --inventory prod.json --key ci.key --out bundles/
  ringfence completion bash > /etc/bash_completion.d/ringfence

Exit status: 0 success, 1 a finding or refusal, 2 could not run."
)]
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
    /// The same document as YAML.
    Yaml,
}

/// `analyze` also writes a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum AnalyzeFormat {
    /// Text for people.
    #[value(alias = "human")]
    Txt,
    /// One JSON document.
    Json,
    /// The same document as YAML.
    Yaml,
    /// A self-contained HTML page: sortable tables, drill-down, no network.
    Html,
}

/// `check` also writes CI annotations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum CheckFormat {
    /// Text for people, with the source and help.
    #[value(alias = "human")]
    Txt,
    /// One JSON document.
    Json,
    /// The same document as YAML.
    Yaml,
    /// GitHub Actions workflow commands: annotations on the pull request.
    Github,
    /// SARIF 2.1.0, for code scanning (GitHub, GitLab, Azure DevOps).
    Sarif,
}

/// Shells `completion` writes a script for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Shell {
    /// bash (`source <(ringfence completion bash)`).
    Bash,
    /// zsh (write it as `_ringfence` in a directory of `$fpath`).
    Zsh,
    /// fish (`~/.config/fish/completions/ringfence.fish`).
    Fish,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Validate intent and report every problem at once.
    #[command(after_help = "Examples:
  ringfence check policies/
  ringfence check policies/ --rev origin/main
  ringfence check policies/ -o github      # annotations in a GitHub pull request
  ringfence check policies/ -o sarif > ringfence.sarif
  cat policy.kdl | ringfence check -        # one file from standard input")]
    Check(CheckArgs),
    /// Rewrite intent files in the canonical layout, keeping comments.
    #[command(after_help = "Examples:
  ringfence fmt policies/
  ringfence fmt policies/ --check           # exit 1 if a file would change
  ringfence fmt policies/ --diff            # show what would change
  ringfence fmt - < policy.kdl > formatted.kdl")]
    Fmt(FmtArgs),
    /// Say whether a connection is allowed, and which policy decides each side.
    #[command(after_help = "Examples:
  ringfence explain policies/ --inventory prod.json --from shop/frontend --to shop/cart --port 7070
  ringfence explain policies/ --inventory prod.json --from external:internet --to 10.244.1.13 --port 80 -o json")]
    Explain(ExplainArgs),
    /// List every allowed connection between workloads.
    #[command(after_help = "Examples:
  ringfence matrix policies/ --inventory prod.json
  ringfence matrix policies/ --inventory eu.json --inventory us.json -o yaml
  kubectl get nodes,namespaces,pods,services -A -o json | ringfence matrix policies/ --inventory -")]
    Matrix(MatrixArgs),
    /// Render every node's rules with its backend, unsigned, for review.
    #[command(after_help = "Examples:
  ringfence render policies/ --inventory prod.json --out rendered/
  less rendered/prod-eu1-linux-a/rules.nft")]
    Render(RenderArgs),
    /// Compile intent into signed per-node bundles (or per-node IR).
    #[command(after_help = "Examples:
  ringfence compile policies/ --inventory prod.json --key ci.key --out bundles/
  ringfence compile policies/ --rev \"$CI_COMMIT_SHA\" --inventory prod.json --key old.key --key new.key --out bundles/
  ringfence compile policies/ --inventory prod.json --emit ir --out ir/")]
    Compile(CompileArgs),
    /// Write a new ed25519 signing key pair.
    #[command(after_help = "Examples:
  ringfence keygen --out ci          # ci.key (private, 0600) and ci.pub; prints the key id")]
    Keygen(KeygenArgs),
    /// Verify a bundle: signature, node, generation, expiry, digests.
    #[command(after_help = "Examples:
  ringfence verify bundles/node-a.bundle --trust ci.pub --node node-a
  ringfence verify bundles/node-a.bundle --trust a.pub --trust b.pub --threshold 2 --index bundles/index.json -o json")]
    Verify(VerifyArgs),
    /// Cluster inventory.
    #[command(
        subcommand,
        after_help = "Examples:
  ringfence inventory pull --context prod-eu1 --out inventory/prod-eu1.json"
    )]
    Inventory(InventoryCommand),
    /// Summarise a directory of agent compliance reports.
    #[command(after_help = "Examples:
  ringfence report reports/
  ringfence report reports/ -o json | jq '.nodes[] | select(.status != \"in-sync\")'")]
    Report(ReportArgs),
    /// Git hooks that run `ringfence check`.
    #[command(
        subcommand,
        after_help = "Examples:
  ringfence hooks install                       # pre-commit in this repository
  ringfence hooks install --server --repo /srv/git/policies.git"
    )]
    Hooks(HooksCommand),
    /// What changes between two revisions, per node and as connectivity.
    #[command(after_help = "Examples:
  ringfence plan policies/ --from origin/main --to HEAD --inventory prod.json
  ringfence plan policies/ --from \"$BASE_SHA\" --to \"$HEAD_SHA\" --inventory prod.json -o json > plan.json")]
    Plan(PlanArgs),
    /// Publish signed bundles for every new commit of a branch.
    #[command(after_help = "Examples:
  ringfence watch --repo https://git.example/policies.git --inventory prod.json --key ci.key --out /srv/bundles
  ringfence watch --repo /srv/git/policies.git --branch release --inventory prod.json --key ci.key --out pub/ --once")]
    Watch(WatchArgs),
    /// Write intent from observed flows.
    #[command(after_help = "Examples:
  ringfence discover --inventory prod.json --flows day.jsonl --out discovered/
  hubble observe -o json | ringfence discover --inventory prod.json --flows - --out discovered/ --granularity namespace")]
    Discover(DiscoverArgs),
    /// Judge flows against a policy version.
    #[command(after_help = "Examples:
  ringfence analyze policies/ --inventory prod.json --flows day.jsonl
  ringfence analyze policies/ --inventory prod.json --flows day.jsonl -o html --out analysis.html
  hubble observe -o json | ringfence analyze policies/ --inventory prod.json --flows -
  ringfence analyze policies/ --rev HEAD --against origin/main --inventory prod.json --flows day.jsonl")]
    Analyze(AnalyzeArgs),
    /// Receive the agents' compliance reports (POST /reports), one file per node.
    #[command(after_help = "Examples:
  ringfence collect --listen 0.0.0.0:8081 --dir /var/lib/ringfence/reports
  ringfence-agent run … --report-to http://collector:8081/reports
  ringfence report /var/lib/ringfence/reports")]
    Collect(CollectArgs),
    /// Print a shell completion script.
    #[command(after_help = "Examples:
  ringfence completion bash > /etc/bash_completion.d/ringfence
  ringfence completion zsh > \"${fpath[1]}/_ringfence\"
  ringfence completion fish > ~/.config/fish/completions/ringfence.fish")]
    Completion(CompletionArgs),
    /// Write man pages: ringfence(1) and one per command.
    #[command(after_help = "Examples:
  ringfence man --out /usr/local/share/man/man1 && man ringfence-check")]
    Man(ManArgs),
    /// Flow tables in ClickHouse.
    #[command(
        subcommand,
        after_help = "Examples:
  ringfence flows load day.jsonl --into clickhouse://127.0.0.1:8123/default.flows
  hubble observe -o json | ringfence flows load - --into clickhouse://ch:8123/net.flows"
    )]
    Flows(FlowsCommand),
    /// Write intent from another system's policies.
    #[command(
        subcommand,
        after_help = "Examples:
  ringfence import k8s manifests/ --out intent/ -o json
  kubectl get netpol,anp,banp -A -o yaml > policies.yaml && ringfence import k8s policies.yaml --out intent/"
    )]
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
    #[arg(short = 'o', long, value_enum, default_value = "txt")]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct CollectArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: String,
    /// Directory to keep the reports in (what `ringfence report DIR` reads).
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    pub(crate) shell: Shell,
}

#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// Directory to write `ringfence.1` and `ringfence-COMMAND.1` into.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
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
    /// `kubectl get nodes,namespaces,pods,services -A -o json` output, one
    /// file per cluster, or Kubernetes manifests (YAML or JSON files and
    /// directories) describing one cluster (repeat the flag for several; `-`
    /// reads standard input).
    #[arg(long = "inventory", value_name = "FILE|DIR", required = true)]
    pub(crate) inventory: Vec<PathBuf>,
    /// A Trivy JSON report (`trivy image --format json`) giving pods their
    /// CVSS score (repeat the flag for several).
    #[arg(long = "trivy", value_name = "FILE")]
    pub(crate) trivy: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Intent directory (or a directory inside a Git repository); `-` checks
    /// one file read from standard input.
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
    #[arg(short = 'o', long, value_enum, default_value = "txt")]
    pub(crate) format: CheckFormat,
}

#[derive(Debug, Args)]
pub(crate) struct FmtArgs {
    /// Intent directory; `-` formats standard input to standard output.
    #[arg(default_value = ".")]
    pub(crate) dir: PathBuf,
    /// Do not write; exit 1 if any file is not formatted.
    #[arg(long)]
    pub(crate) check: bool,
    /// Do not write; print what would change as a unified diff, exit 1 if anything would.
    #[arg(long, conflicts_with = "check")]
    pub(crate) diff: bool,
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
    /// Destination port (1-65535; tcp, udp and sctp need one).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) port: Option<u16>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "txt")]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct MatrixArgs {
    #[command(flatten)]
    pub(crate) source: SourceArgs,
    #[command(flatten)]
    pub(crate) inventory: InventoryArgs,
    /// Only lines from this group: `ns/name[Kind]`, `ns/name`, or a namespace
    /// (`cluster/ns` with several clusters). Repeat for several.
    #[arg(long, value_name = "GROUP")]
    pub(crate) from: Vec<String>,
    /// Only lines to this group (as --from). Repeat for several.
    #[arg(long, value_name = "GROUP")]
    pub(crate) to: Vec<String>,
    /// Only lines with one side in this namespace. Repeat for several.
    #[arg(long, value_name = "NS")]
    pub(crate) namespace: Vec<String>,
    /// One line per group pair (`FROM => TO : TCP 80; UDP 53; …`) instead
    /// of one per protocol and entry point.
    #[arg(long)]
    pub(crate) summary: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "txt")]
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
    /// Ed25519 private key from `ringfence keygen`; required for bundles.
    /// Repeat the flag to sign every bundle with several (rotation, thresholds).
    #[arg(long, value_name = "KEYFILE")]
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
    /// A trusted public key (PREFIX.pub); repeat the flag for several.
    #[arg(long, value_name = "PUBKEY", required = true)]
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
    #[arg(short = 'o', long, value_enum, default_value = "txt")]
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
    #[arg(short = 'o', long, value_enum, default_value = "txt")]
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
    #[arg(short = 'o', long, value_enum, default_value = "txt")]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("live").args(["inventory_events", "kube"])))]
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
    /// `kubectl get nodes,namespaces,pods,services -A -o json` output, one
    /// file per cluster, or Kubernetes manifests (repeat the flag for
    /// several); optional with --inventory-events or --kube.
    #[arg(
        long = "inventory",
        value_name = "FILE|DIR",
        required_unless_present_any = ["inventory_events", "kube"]
    )]
    pub(crate) inventory: Vec<PathBuf>,
    /// A Trivy JSON report giving pods their CVSS score (repeat the flag
    /// for several).
    #[arg(long = "trivy", value_name = "FILE")]
    pub(crate) trivy: Vec<PathBuf>,
    /// Follow one cluster live: what `kubectl get
    /// pods,services,nodes,namespaces -A --watch --output-watch-events -o
    /// json` prints, a file (followed as it grows) or `-`. Pods that come
    /// and go become signed membership documents in OUT/membership.
    #[arg(long, value_name = "FILE|-", conflicts_with = "kube")]
    pub(crate) inventory_events: Option<PathBuf>,
    /// Follow one cluster live from its Kubernetes API server: list and
    /// watch nodes, namespaces, pods and services (resuming after a dropped
    /// connection, listing again after `410 Gone`). Reads the kubeconfig as
    /// kubectl does; needs get, list and watch on those four resources.
    #[arg(long)]
    pub(crate) kube: bool,
    /// Kubeconfig context for --kube (default: the current context).
    #[arg(long, value_name = "NAME", requires = "kube")]
    pub(crate) context: Option<String>,
    /// Kubeconfig file for --kube (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long, value_name = "FILE", requires = "kube")]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// How long a poll waits for the API server's first complete list
    /// before it fails (with --once: exit 2).
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub(crate) kube_timeout: String,
    /// The cluster the live inventory describes (default: the one cluster
    /// the scopes of the intent at the branch's tip name; with --kube, if
    /// they name none, the kubeconfig context's cluster).
    #[arg(long, value_name = "NAME", requires = "live")]
    pub(crate) events_cluster: Option<String>,
    /// Ed25519 private key signing membership documents (repeat for
    /// several); default: the --key keys.
    #[arg(long, value_name = "KEYFILE", requires = "live")]
    pub(crate) membership_key: Vec<PathBuf>,
    /// How long membership documents stay valid (a snapshot is issued
    /// again at half of it).
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub(crate) membership_expires: String,
    /// Ed25519 private key from `ringfence keygen`; repeat the flag to sign
    /// every bundle with several (key rotation, thresholds).
    #[arg(long, value_name = "KEYFILE", required = true)]
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
    /// Serve the publication read-only over HTTP/1.1 on ADDR (e.g.
    /// 0.0.0.0:8080): bundles, index.json and membership documents, with
    /// long polls on `membership/<node>/head?after=SEQ&wait=SECONDS`.
    #[arg(long, value_name = "ADDR", conflicts_with = "once")]
    pub(crate) serve: Option<String>,
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

/// Where flows come from, and which.
#[derive(Clone, Debug, Args)]
pub(crate) struct FlowArgs {
    /// Flow files (ringfence JSON Lines, Hubble JSON, conntrack -o extended;
    /// repeat the flag for several files; `-` reads standard input), or one
    /// ClickHouse table: clickhouse://[user[:password]@]host:port/database.table.
    #[arg(long, value_name = "FILE|URL", required = true)]
    pub(crate) flows: Vec<String>,
    /// Only flows that started at or after this time (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    pub(crate) since: Option<String>,
    /// Only flows that started before this time (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    pub(crate) until: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct DiscoverArgs {
    #[command(flatten)]
    pub(crate) inventory: InventoryArgs,
    #[command(flatten)]
    pub(crate) flows: FlowArgs,
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
    #[arg(short = 'o', long, value_enum, default_value = "txt")]
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
    #[command(flatten)]
    pub(crate) flows: FlowArgs,
    /// Agents' compliance reports to fold in.
    #[arg(long, value_name = "DIR")]
    pub(crate) reports: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "txt")]
    pub(crate) format: AnalyzeFormat,
    /// Write here instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum FlowsCommand {
    /// Insert flow files into a ClickHouse table (ringfence's layout,
    /// created if missing). Not idempotent: loading a file twice stores its
    /// flows twice.
    Load(LoadArgs),
}

#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    /// Flow files: ringfence JSON Lines, Hubble JSON, or conntrack -o extended
    /// (`-` reads standard input).
    #[arg(value_name = "FILE", required = true)]
    pub(crate) files: Vec<PathBuf>,
    /// The table: clickhouse://[user[:password]@]host:port/database.table.
    #[arg(long, value_name = "URL")]
    pub(crate) into: String,
    /// Flows per INSERT.
    #[arg(long, value_name = "N", default_value_t = 200_000)]
    pub(crate) batch: usize,
    /// Only flows that started at or after this time (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    pub(crate) since: Option<String>,
    /// Only flows that started before this time (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    pub(crate) until: Option<String>,
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
        let c = Cli::try_parse_from(["ringfence", "check", "dir", "-o", "json"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Check(CheckArgs {
                format: CheckFormat::Json,
                ..
            })
        ));
    }

    #[test]
    fn repeated_flags_take_one_value_each() {
        let argv = [
            "ringfence",
            "compile",
            "--inventory",
            "i.json",
            "--out",
            "o",
            "--key",
            "a.key",
            "--key",
            "b.key",
        ];
        let c = Cli::try_parse_from(argv).unwrap();
        assert!(
            matches!(c.command, Command::Compile(CompileArgs { ref key, .. }) if key.len() == 2)
        );
        // A flag's value never swallows the positional directory.
        let c = Cli::try_parse_from(["ringfence", "matrix", "--inventory", "i.json", "policies"])
            .unwrap();
        let Command::Matrix(m) = c.command else {
            panic!("matrix")
        };
        assert_eq!(m.source.dir, PathBuf::from("policies"));
        assert_eq!(m.inventory.inventory, [PathBuf::from("i.json")]);
    }

    #[test]
    fn html_and_annotations_only_where_they_work() {
        let parse = |argv: &[&str]| Cli::try_parse_from(argv).is_ok();
        assert!(parse(&[
            "ringfence",
            "analyze",
            "--inventory",
            "i",
            "--flows",
            "f",
            "-o",
            "html"
        ]));
        assert!(!parse(&[
            "ringfence",
            "matrix",
            "--inventory",
            "i",
            "-o",
            "html"
        ]));
        assert!(parse(&["ringfence", "check", "-o", "sarif"]));
        assert!(!parse(&[
            "ringfence",
            "plan",
            "--from",
            "a",
            "--to",
            "b",
            "--inventory",
            "i",
            "-o",
            "github"
        ]));
        for cmd in [
            "matrix", "explain", "plan", "report", "verify", "discover", "analyze", "check",
        ] {
            let help = Cli::command()
                .find_subcommand_mut(cmd)
                .unwrap()
                .render_long_help()
                .to_string();
            assert!(help.contains("-o, --format"), "{cmd}: {help}");
            assert!(help.contains("yaml"), "{cmd}");
            assert_eq!(help.contains("html"), cmd == "analyze", "{cmd}");
        }
    }

    #[test]
    fn every_command_has_examples() {
        let mut cli = Cli::command();
        for sub in cli.get_subcommands_mut() {
            let help = sub.render_help().to_string();
            assert!(
                help.contains("Examples:\n  ringfence "),
                "{}: {help}",
                sub.get_name()
            );
        }
    }
}
