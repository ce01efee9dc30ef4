//! `watch`: follow a branch and publish signed bundles for every new commit.
//!
//! Each poll looks at the branch's first-parent chain (a local repository
//! is read directly; a URL is fetched into the bare mirror `OUT/.mirror`).
//! Every commit after the last one processed, oldest first, is checked,
//! compiled, rendered (only nodes whose IR is not in the render cache) and
//! sealed, then published as a new generation (see [`crate::publish`]). A
//! commit that fails is not published: the reason and its diagnostics go to
//! the log and to `OUT/status.json`, and the previous generation stays
//! current. A first run (or a rewritten branch) takes the tip only.
//!
//! Without new commits, the last published commit is published again when
//! the inventory files changed, or when half of the bundles' validity has
//! passed (a refresh: unchanged nodes keep their generation and agents only
//! take the new expiry).
//!
//! Restart-safe: the state file says where to resume; on start, half-written
//! generations are removed, and a generation made current just before a
//! crash (but not yet recorded) is adopted from its signed index.
//!
//! With a live inventory ([`LiveConfig`]) one cluster comes from a stream of
//! watch events, or from an API server's watches ([`LiveSource`]), instead
//! of a file. Bundles then carry live IRs (for backends
//! that take membership), and every poll turns the pod events read since
//! into membership documents per node ([`crate::live`]): no compile, no
//! render. A pod of a class a node has no chains for re-renders just that
//! node (a new generation where only it changed); a pod of a class the
//! compile has not seen, or any change of a node, namespace or service,
//! compiles again.

use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use std::collections::BTreeMap;

use rayon::prelude::*;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};

use ringfence_bundle::{
    PathError, SigningKey, Trust, format_time, parse_time, sha256_hex, verify_index,
};
use ringfence_core::ClusterIdx;
use ringfence_core::live::{LivePods, LiveState, NeedsCompile, PodChange};
use ringfence_driver::bundles::{Change, INDEX_FILE, Output, WriteSummary};
use ringfence_driver::{DriverError, IntentFrom, LoadedInventory, Pipeline, Seal, Session, Warned};
use ringfence_intent::model::SourceFile;
use ringfence_intent::{Diagnostics, Severity, render_human, to_json};
use ringfence_inventory::InventoryError;
use ringfence_inventory::Scores;
use ringfence_inventory::events::{Applied, Incoming, LiveCluster, parse_event};
use ringfence_inventory::model::{Inventory, Pod};
use ringfence_schema::membership::Membership;
use ringfence_source::SourceError;
use ringfence_source::repo::{CommitInfo, fetch_mirror, new_commits};

use crate::cache::{RenderCache, Rendered};
use crate::live::{Chains, EventReader, Feed, Next, Outgoing, Written};
use crate::publish::{Failpoint, Publication, PublishError, failpoint};
use crate::serve::Board;
use crate::status::{CommitStatus, Entry, Published, STATUS_FORMAT, Status, StatusError};

/// The bare mirror of a remote repository, inside the publication directory.
pub const MIRROR: &str = ".mirror";
/// The lock file held while a watch runs.
pub const LOCK: &str = ".lock";

/// Where the intent repository is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepoLocation {
    /// A repository on this machine (bare or not), opened directly.
    Path(PathBuf),
    /// A URL, fetched into `OUT/.mirror`.
    Url(String),
}

impl RepoLocation {
    /// `scheme://…` and scp-like `host:path` are URLs; anything else a path
    /// (made absolute when it exists, so the status file names it the same
    /// from any working directory).
    pub fn parse(s: &str) -> RepoLocation {
        let path = Path::new(s);
        let scp_like = s
            .split_once(':')
            .is_some_and(|(host, _)| !host.is_empty() && !host.contains('/'))
            && !path.exists();
        if s.contains("://") || scp_like {
            RepoLocation::Url(s.to_string())
        } else {
            RepoLocation::Path(path.canonicalize().unwrap_or_else(|_| path.to_path_buf()))
        }
    }

    fn describe(&self) -> String {
        match self {
            RepoLocation::Path(p) => p.display().to_string(),
            RepoLocation::Url(u) => u.clone(),
        }
    }
}

/// How to watch.
pub struct WatchConfig {
    /// The repository.
    pub repo: RepoLocation,
    /// The branch followed.
    pub branch: String,
    /// The intent directory inside the repository (`.` for the root).
    pub path: String,
    /// Inventory files.
    pub inventory: Vec<PathBuf>,
    /// Trivy reports.
    pub trivy: Vec<PathBuf>,
    /// Signing keys (every bundle is signed by each).
    pub keys: Vec<SigningKey>,
    /// The publication directory.
    pub out: PathBuf,
    /// Old generations kept besides the current one.
    pub keep: usize,
    /// Bundle validity.
    pub expires: Duration,
    /// Test-only crash injection.
    pub failpoint: Option<Failpoint>,
    /// A cluster followed live from watch events, if any.
    pub live: Option<LiveConfig>,
}

/// A live inventory: one cluster followed from watch events.
pub struct LiveConfig {
    /// Where the events come from.
    pub source: LiveSource,
    /// The cluster it describes; `None`: the one cluster the scopes of the
    /// intent at the branch's tip name (with a feed that names its cluster,
    /// that one when the scopes name none; else an error).
    pub cluster: Option<String>,
    /// Keys that sign membership documents (may differ from the bundle keys).
    pub membership_keys: Vec<SigningKey>,
    /// How long membership documents stay valid (a snapshot is issued
    /// again at half of it).
    pub membership_expires: Duration,
}

/// Where a live inventory's events come from.
pub enum LiveSource {
    /// A watch-event stream (`-`: standard input; a file is followed as it
    /// grows); its first list ends when it goes quiet.
    Events(PathBuf),
    /// Changes from an API server's watches (`ringfence-kube`'s `follow`);
    /// the first list ends when every kind has been listed.
    Feed {
        /// The changes.
        changes: Receiver<Incoming>,
        /// The API server, as messages name it.
        server: String,
        /// The cluster its kubeconfig context names.
        cluster: Option<String>,
        /// How long a poll waits for the first list before it fails.
        first_list: Duration,
    },
}

/// Something worth a log line.
#[derive(Debug)]
pub enum Event {
    /// Leftovers of an interrupted run were removed.
    Recovered {
        /// The generation directories removed.
        removed: Vec<String>,
    },
    /// A generation made current before a crash was adopted.
    Adopted {
        /// Its number.
        generation: u64,
        /// Its commit.
        commit: String,
    },
    /// The render cache was filled from the current generation.
    Seeded {
        /// Bundles read.
        bundles: usize,
    },
    /// The last processed commit is no longer on the branch.
    Rewritten {
        /// The commit that disappeared.
        last: String,
        /// The new tip, processed instead.
        tip: String,
    },
    /// A commit was published.
    Published {
        /// The commit.
        commit: String,
        /// Why it was published (a new commit, an inventory change, a refresh).
        trigger: &'static str,
        /// The generation directory.
        generation: u64,
        /// Nodes in it.
        nodes: usize,
        /// Nodes whose rules changed.
        changed: usize,
        /// Nodes rendered (not from the cache).
        rendered: usize,
    },
    /// A commit was not published.
    Failed {
        /// The commit.
        commit: String,
        /// Why, in one line.
        reason: String,
        /// The diagnostics as `ringfence check` prints them (may be empty).
        report: String,
    },
    /// Old generations were removed.
    Pruned {
        /// Their numbers.
        generations: Vec<u64>,
    },
    /// The first list of the live cluster is complete.
    Listed {
        /// Pods in it.
        pods: usize,
    },
    /// An event could not be used (it is skipped).
    BadEvent {
        /// Why, naming the stream and the event.
        reason: String,
    },
    /// The event stream ended: nothing changes until `watch` restarts.
    StreamEnded,
    /// The live source could not read for now; it retries by itself.
    SourceProblem {
        /// Why, naming the server.
        reason: String,
    },
    /// Pod events became membership documents.
    Members {
        /// Pods changed.
        pods: usize,
        /// Deltas written.
        deltas: usize,
        /// Snapshots written.
        snapshots: usize,
        /// Bytes of the deltas.
        bytes: usize,
    },
}

/// Why watching cannot go on (a commit that fails is not an error).
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// Another watch holds the publication directory.
    #[error(
        "{0}: another `ringfence watch` is publishing here (it holds the lock); run one watch per directory"
    )]
    Locked(PathBuf),
    /// The directory was published from something else.
    #[error(
        "{out}: it publishes {was}, not {now}; use another --out (or move {status} away to start afresh)",
        out = .out.display(), status = crate::status::STATUS_FILE
    )]
    OtherSource {
        /// The publication directory.
        out: PathBuf,
        /// What its status file says.
        was: String,
        /// What was asked.
        now: String,
    },
    /// The repository could not be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The inventory could not be read, or the plugin runtime not started.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// Publishing failed (the current generation is untouched).
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// The status file.
    #[error(transparent)]
    Status(#[from] StatusError),
    /// The current generation's index does not verify.
    #[error(
        "{path}: the current generation's index does not verify with the signing key(s): {err}",
        path = .path.display()
    )]
    Index {
        /// The index.
        path: PathBuf,
        /// Why.
        err: String,
    },
    /// The live cluster was not named and the intent does not name exactly one.
    #[error(
        "{flag} without --events-cluster: the events describe the one cluster the intent's scopes name, but at {commit} (the tip of {branch}) {why}; pass --events-cluster NAME"
    )]
    EventsCluster {
        /// The flag that asked for a live inventory.
        flag: &'static str,
        /// The tip's commit, abbreviated.
        commit: String,
        /// The branch.
        branch: String,
        /// What was found instead of one cluster.
        why: String,
    },
    /// The live source did not list the cluster in time.
    #[error(
        "{server}: no complete list of nodes, namespaces, pods and services after {secs}s ({problem}); check the server address and the credentials of the kubeconfig context, or wait longer with --kube-timeout",
        secs = .waited.as_secs()
    )]
    FirstList {
        /// The API server.
        server: String,
        /// How long the poll waited.
        waited: Duration,
        /// The last problem reported, or what is still missing.
        problem: String,
    },
    /// The clock is outside what bundles can record.
    #[error("the clock reads a time bundles cannot record")]
    Clock,
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] PathError),
}

/// The live cluster and what membership has been published for it.
struct Live {
    cluster: LiveCluster,
    input: Input,
    /// The first list is still coming.
    listing: bool,
    /// The stream, as errors name it.
    source: String,
    /// Lines read.
    lines: usize,
    /// The stream ended (said once).
    ended: bool,
    /// Pods changed since the state was last brought up to date, by
    /// `namespace/name` (`None`: gone).
    pending: BTreeMap<String, Option<Pod>>,
    /// Rules may change: compile again.
    compile: bool,
    /// The last publication and the live state made from it.
    run: Option<Run>,
    chains: Chains,
}

/// A publication with a live inventory.
struct Run {
    session: Session,
    state: LiveState,
    commit: CommitInfo,
    /// Nodes rendered live: their bundle generation.
    generations: BTreeMap<String, u64>,
    /// Some node's backend takes no membership: its rules hold pod
    /// addresses, so any pod change compiles again.
    full: bool,
}

/// What one poll did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollResult {
    /// Commits processed.
    pub processed: usize,
    /// Generations published.
    pub published: usize,
    /// Commits that failed.
    pub failed: usize,
}

/// A running publisher.
pub struct Watcher {
    cfg: WatchConfig,
    status: Status,
    cache: RenderCache,
    publication: Publication,
    /// The inventory last loaded, by the digest of its files (and Trivy's).
    inventory: Option<(String, LoadedInventory)>,
    /// Check, compile, render, seal; the plugin runtime is kept across commits.
    pipeline: Pipeline,
    live: Option<Live>,
    /// What is published, for `--serve`.
    board: Arc<Board>,
    _lock: File,
}

enum Trigger {
    Commit,
    Inventory,
    Refresh,
    /// A pod needs chains its node lacks.
    NewRules,
}

impl Trigger {
    fn name(&self) -> &'static str {
        match self {
            Trigger::Commit => "new commit",
            Trigger::Inventory => "inventory changed",
            Trigger::Refresh => "expiry refresh",
            Trigger::NewRules => "a pod needs new rules",
        }
    }
}

impl Watcher {
    /// Take the publication directory: lock it, clean up after a crash,
    /// resume from its status file, fill the render cache.
    pub fn open(mut cfg: WatchConfig, log: &mut dyn FnMut(Event)) -> Result<Watcher, WatchError> {
        let out = cfg.out.clone();
        fs::create_dir_all(&out).map_err(PathError::at(&out))?;
        let lock_path = out.join(LOCK);
        let lock = File::create(&lock_path).map_err(PathError::at(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(WatchError::Locked(out)),
            Err(TryLockError::Error(err)) => {
                return Err(PathError {
                    path: lock_path,
                    err,
                }
                .into());
            }
        }
        let trust = Trust::new(cfg.keys.iter().map(|k| k.trusted()), 1);
        // A directory belongs to a source once a commit of it was processed:
        // a run that failed before that (a wrong --repo, a missing branch)
        // claims nothing, and writes nothing until something happens.
        let existing = Status::read(&out)?.filter(|s| !s.is_unused());
        let mut changed = existing.is_some();
        let mut status = match existing {
            Some(s) => {
                let was = format!("{} branch {} path {}", s.repository, s.branch, s.path);
                let now = format!(
                    "{} branch {} path {}",
                    cfg.repo.describe(),
                    cfg.branch,
                    cfg.path
                );
                if was != now {
                    return Err(WatchError::OtherSource { out, was, now });
                }
                s
            }
            None => Status {
                format: STATUS_FORMAT,
                repository: cfg.repo.describe(),
                branch: cfg.branch.clone(),
                path: cfg.path.clone(),
                ..Status::default()
            },
        };
        let publication = Publication::new(&out);
        let current = publication.current()?;
        let mut cache = RenderCache::default();
        let mut oldest = None;
        if let Some(c) = current {
            let (bundles, o) = cache.seed(&publication.dir(c), &trust);
            oldest = o;
            log(Event::Seeded { bundles });
        }
        let recorded = status.last_published.as_ref().map(|p| p.generation);
        if let Some(c) = current
            && recorded != Some(c)
        {
            // Made current, then a crash before the status recorded it (or
            // the link was moved by hand): the link is what agents read.
            let path = publication.dir(c).join(INDEX_FILE);
            let bytes = fs::read(&path).map_err(PathError::at(&path))?;
            let index = verify_index(&bytes, &trust).map_err(|e| WatchError::Index {
                path: path.clone(),
                err: e.to_string(),
            })?;
            let commit = index.source.commit.clone().unwrap_or_default();
            if recorded.is_none_or(|r| r < c) {
                status.last_processed = Some(commit.clone());
                status.record(Entry {
                    commit: commit.clone(),
                    summary: String::new(),
                    status: CommitStatus::Published,
                    at: index.issued_at.clone(),
                    generation: Some(c),
                    nodes_changed: None,
                    nodes_rendered: None,
                    reason: Some("adopted after a restart: made current, not yet recorded".into()),
                    diagnostics: None,
                });
            }
            status.last_published = Some(Published {
                commit: commit.clone(),
                generation: c,
                oldest_issued_at: oldest.unwrap_or_else(|| index.issued_at.clone()),
                published_at: index.issued_at,
                inventory_sha256: index.inventory_sha256,
            });
            status.highest_generation = status.highest_generation.max(c);
            changed = true;
            log(Event::Adopted {
                generation: c,
                commit,
            });
        }
        let board = Arc::new(Board::default());
        if let Some(c) = current {
            let path = publication.dir(c).join(INDEX_FILE);
            if let Ok(index) = fs::read(&path).map(|b| verify_index(&b, &trust))
                && let Ok(index) = index
            {
                board.set_nodes(index.nodes.into_iter().map(|e| e.node));
            }
        }
        let removed = publication.recover()?;
        if !removed.is_empty() {
            changed = true;
            log(Event::Recovered { removed });
        }
        if changed {
            status.write(&out)?;
        }
        let pipeline = Pipeline::new().following();
        let live = match cfg.live.take() {
            None => None,
            Some(l) => {
                let (input, source, fallback, flag) = match l.source {
                    LiveSource::Events(path) => (
                        Input::Events(EventReader::spawn(&path).map_err(PathError::at(&path))?),
                        path.display().to_string(),
                        None,
                        "--inventory-events",
                    ),
                    LiveSource::Feed {
                        changes,
                        server,
                        cluster,
                        first_list,
                    } => (
                        Input::Feed {
                            changes,
                            first_list,
                            problem: None,
                        },
                        server,
                        cluster,
                        "--kube",
                    ),
                };
                let name = match &l.cluster {
                    Some(c) => c.clone(),
                    None => tip_cluster(&cfg, &pipeline, fallback.as_deref(), flag)?,
                };
                let scores = Scores::load(&cfg.trivy).map_err(DriverError::from)?;
                let mut cluster = LiveCluster::new(&name, &source, scores);
                cluster.begin_relist(None);
                let chains = Chains::open(&out, l.membership_keys, l.membership_expires)
                    .map_err(PathError::at(&out.join(crate::live::MEMBERSHIP)))?;
                for (node, head) in chains.heads() {
                    board.set_head(node, head);
                }
                Some(Live {
                    cluster,
                    input,
                    listing: true,
                    source,
                    lines: 0,
                    ended: false,
                    pending: BTreeMap::new(),
                    compile: true,
                    run: None,
                    chains,
                })
            }
        };
        Ok(Watcher {
            cfg,
            status,
            cache,
            publication,
            inventory: None,
            pipeline,
            live,
            board,
            _lock: lock,
        })
    }

    /// What is published, as `--serve` needs it (kept current by polls).
    pub fn board(&self) -> Arc<Board> {
        self.board.clone()
    }

    /// The state as last written.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// Look for new commits and publish them; `now` is read once per
    /// publication (the issue time of its bundles).
    pub fn poll(
        &mut self,
        now: &dyn Fn() -> SystemTime,
        log: &mut dyn FnMut(Event),
    ) -> Result<PollResult, WatchError> {
        let mut result = PollResult::default();
        if !self.read_and_follow(true, now, log)? {
            return Ok(result);
        }
        let repo = match &self.cfg.repo {
            RepoLocation::Path(p) => p.clone(),
            RepoLocation::Url(url) => {
                let mirror = self.cfg.out.join(MIRROR);
                fetch_mirror(url, &mirror, &self.cfg.branch)?;
                mirror
            }
        };
        let last = self.status.last_processed.clone();
        let new = new_commits(&repo, &self.cfg.branch, last.as_deref())?;
        if let Some(last) = last
            && !new.continued
        {
            log(Event::Rewritten {
                last,
                tip: new.tip.clone(),
            });
        }
        if new.commits.is_empty() {
            if let Some(trigger) = self.republish_trigger(now())? {
                let last = self.last_published();
                self.process(&repo, &last, trigger, now, log, &mut result)?;
            }
            return Ok(result);
        }
        for commit in &new.commits {
            self.process(&repo, commit, Trigger::Commit, now, log, &mut result)?;
        }
        Ok(result)
    }

    /// The last published commit, to publish again.
    fn last_published(&self) -> CommitInfo {
        let p = self
            .status
            .last_published
            .as_ref()
            .expect("a trigger needs one");
        let summary = self
            .status
            .history
            .iter()
            .rev()
            .find(|e| e.commit == p.commit && !e.summary.is_empty())
            .map(|e| e.summary.clone())
            .unwrap_or_default();
        CommitInfo {
            id: p.commit.clone(),
            summary,
        }
    }

    /// Between polls of the repository: apply the events read since the
    /// last call and publish membership; when rules may change, publish the
    /// last commit again (from the repository as last fetched).
    pub fn follow_events(
        &mut self,
        now: &dyn Fn() -> SystemTime,
        log: &mut dyn FnMut(Event),
    ) -> Result<(), WatchError> {
        if self.live.is_none() || !self.read_and_follow(false, now, log)? {
            return Ok(());
        }
        if self.live.as_ref().is_some_and(|l| l.compile) && self.status.last_published.is_some() {
            let repo = match &self.cfg.repo {
                RepoLocation::Path(p) => p.clone(),
                RepoLocation::Url(_) => self.cfg.out.join(MIRROR),
            };
            let last = self.last_published();
            let mut result = PollResult::default();
            self.process(&repo, &last, Trigger::Inventory, now, log, &mut result)?;
        }
        Ok(())
    }

    /// Why the last published commit should be published again, if it should.
    fn republish_trigger(&self, now: SystemTime) -> Result<Option<Trigger>, WatchError> {
        let Some(p) = &self.status.last_published else {
            return Ok(None);
        };
        if let Some(live) = &self.live {
            return Ok(if live.compile {
                Some(Trigger::Inventory)
            } else {
                self.due_for_reseal(now)?.then_some(Trigger::Refresh)
            });
        }
        let digest = ringfence_inventory::digest(&self.cfg.inventory).map_err(|err| PathError {
            path: self.cfg.inventory.first().cloned().unwrap_or_default(),
            err,
        })?;
        if digest != p.inventory_sha256 && self.status.failed_inventory.as_ref() != Some(&digest) {
            return Ok(Some(Trigger::Inventory));
        }
        Ok(self.due_for_reseal(now)?.then_some(Trigger::Refresh))
    }

    /// Whether the oldest published bundle has used half its validity.
    fn due_for_reseal(&self, now: SystemTime) -> Result<bool, WatchError> {
        let Some(p) = &self.status.last_published else {
            return Ok(true);
        };
        let oldest = parse_time(&p.oldest_issued_at).map_err(|_| WatchError::Clock)?;
        Ok(now.duration_since(oldest).unwrap_or_default() >= self.cfg.expires / 2)
    }

    /// Check, compile, render and publish one commit; a commit that cannot
    /// be published is recorded as failed.
    fn process(
        &mut self,
        repo: &Path,
        commit: &CommitInfo,
        trigger: Trigger,
        now: &dyn Fn() -> SystemTime,
        log: &mut dyn FnMut(Event),
        result: &mut PollResult,
    ) -> Result<(), WatchError> {
        let issued_at = now();
        let job = Job {
            commit,
            trigger,
            issued_at,
            at: format_time(issued_at).ok_or(WatchError::Clock)?,
        };
        let outcome = match self.build(repo, &job)? {
            Ok((session, rendered, state)) => {
                match self.publish(&job, &session, rendered, state.as_ref(), log, result)? {
                    Ok(summary) => {
                        self.adopt(session, state, commit, &summary);
                        Ok(())
                    }
                    Err(r) => Err(r),
                }
            }
            Err(refusal) => Err(refusal),
        };
        match outcome {
            Ok(()) => Ok(()),
            Err(refusal) => self.fail(&job, refusal, log, result),
        }
    }

    /// Check, compile and render a commit (cached nodes are not rendered again).
    fn build(&mut self, repo: &Path, job: &Job<'_>) -> Result<Result<Built, Refusal>, WatchError> {
        let subdir = self.cfg.path.clone();
        let from = IntentFrom::Repo {
            repo,
            subdir: &subdir,
            rev: &job.commit.id,
        };
        // Intent and inventory are read side by side.
        let (checked, inventory) = {
            let (pipeline, cache) = (&self.pipeline, &mut self.inventory);
            let files = (&self.cfg.inventory[..], &self.cfg.trivy[..]);
            let live = self.live.as_ref().map(|l| &l.cluster);
            rayon::join(
                || pipeline.check(&from),
                || load_inventory(pipeline, files, cache, live),
            )
        };
        let checked = match checked {
            Ok(c) => c,
            Err(e @ (DriverError::Empty(_) | DriverError::Source { .. })) => {
                return Ok(Err(Refusal {
                    reason: e.to_string(),
                    diagnostics: None,
                }));
            }
            Err(e) => return Err(e.into()),
        };
        let inventory = inventory?;
        let mut session = match refused(self.pipeline.compile(checked, inventory)) {
            Ok(s) => s,
            Err(r) => return Ok(Err(r)),
        };
        // Nothing reads the compiled copy of the inventory again (watch
        // keeps its own, and the live cluster's): not held for the run.
        session.inventory = Inventory::default();
        // Plugins pinned by intent load from a working tree only: a commit
        // that pins one fails here; one that does not uses the built-ins.
        let backends = match refused(self.pipeline.backends(&session)?) {
            Ok(b) => b,
            Err(r) => return Ok(Err(r)),
        };
        // With a live inventory, nodes whose backend takes membership get
        // their live IR. The compile's IRs move out: the others keep theirs,
        // and the live state makes later live IRs from its own.
        let state = self.live.as_ref().map(|_| {
            let c = &mut session.compiled;
            let pods = LivePods::from_compiled(c);
            let state = LiveState::new(c, pods);
            let irs = c
                .take_nodes()
                .into_iter()
                .map(
                    |ir| match (backends.get(&ir.backend), state.node(&ir.node)) {
                        (Some(p), Some(n)) if p.info.capabilities.live_membership => {
                            Arc::clone(&n.ir)
                        }
                        _ => Arc::new(ir),
                    },
                )
                .collect();
            session.irs = Some(irs);
            state
        });
        let rendered = self.cache.render(&session, &backends);
        if rendered.diagnostics.has_errors() {
            let diagnostics = rendered.diagnostics.clone();
            self.cache.keep(rendered, false);
            return Ok(Err(Refusal::of(diagnostics, session.files.clone())));
        }
        Ok(Ok((session, rendered, state)))
    }

    /// Seal a rendered commit as the next generation, make it current,
    /// record it and prune old generations. With a live `state`, each live
    /// node's membership is published for its generation before the
    /// generation is made current.
    fn publish(
        &mut self,
        job: &Job<'_>,
        session: &Session,
        rendered: Rendered,
        state: Option<&LiveState>,
        log: &mut dyn FnMut(Event),
        result: &mut PollResult,
    ) -> Result<Result<WriteSummary, Refusal>, WatchError> {
        let previous = self.status.last_published.as_ref().map(|p| p.generation);
        let n = self.status.highest_generation.max(previous.unwrap_or(0)) + 1;
        let keys: Vec<&SigningKey> = self.cfg.keys.iter().collect();
        let reseal_all = self.due_for_reseal(job.issued_at)?;
        // The state the chains were written from: the run being replaced
        // (a compile), or none (a re-render: the run is out, its changes
        // already sent).
        let (chains, old) = match self.live.as_mut() {
            Some(l) => (Some(&mut l.chains), l.run.as_ref().map(|r| &r.state)),
            None => (None, None),
        };
        let mut written = Vec::new();
        let published = self.publication.publish(
            n,
            previous,
            Some(self.cfg.keep),
            reseal_all,
            self.cfg.failpoint,
            |out, keep_from| {
                let sealed = self.pipeline.seal(
                    session,
                    &rendered.nodes,
                    &Seal {
                        output: Output {
                            out,
                            keys: &keys,
                            issued_at: job.issued_at,
                            expires: self.cfg.expires,
                            generation: Some(n),
                        },
                        repository: Some(self.cfg.repo.describe()),
                        keep_from,
                    },
                )?;
                if let (Some(chains), Some(state), Some(summary)) = (chains, state, &sealed.output)
                {
                    let at = |e| DriverError::Io(chains_dir(out), e);
                    Chains::link_into(out).map_err(at)?;
                    written = publish_members(chains, session, state, old, summary, job.issued_at)
                        .map_err(|e| DriverError::Io(chains.dir().display().to_string(), e))?;
                }
                Ok(sealed)
            },
        );
        let nodes = rendered.nodes.len();
        let rendered_count = rendered.rendered;
        let made_current = matches!(&published, Ok(w) if w.output.is_some());
        self.cache.keep(rendered, made_current);
        let generation = match refused(published?) {
            Ok(g) => g,
            Err(r) => return Ok(Err(r)),
        };
        // Current now: the server may name its nodes and heads.
        self.board.set_nodes(
            (generation.summary.nodes.iter())
                .filter(|w| w.sha256.is_some())
                .map(|w| w.node.clone()),
        );
        announce(&self.board, &written);
        if !written.is_empty() {
            log(members_event(0, &written));
        }
        failpoint(self.cfg.failpoint, Failpoint::BeforeStatus);
        let changed = generation
            .summary
            .nodes
            .iter()
            .filter(|w| matches!(w.change, Change::New | Change::Changed))
            .count();
        let kept = generation
            .summary
            .nodes
            .iter()
            .any(|w| w.change == Change::Unchanged);
        self.record_published(
            job,
            n,
            kept && !reseal_all,
            changed,
            rendered_count,
            session,
        )?;
        result.published += 1;
        if matches!(job.trigger, Trigger::Commit) {
            result.processed += 1;
        }
        log(Event::Published {
            commit: job.commit.id.clone(),
            trigger: job.trigger.name(),
            generation: n,
            nodes,
            changed,
            rendered: rendered_count,
        });
        let mut pruned: Vec<u64> = generation.reused.into_iter().collect();
        pruned.extend(self.publication.prune(self.cfg.keep)?);
        if !pruned.is_empty() {
            log(Event::Pruned {
                generations: pruned,
            });
        }
        Ok(Ok(generation.summary))
    }

    /// Keep a live publication: its session and state, and each live
    /// node's generation, to follow pod events with. What it replaces (or
    /// the session itself, without a live inventory) is freed off the poll.
    fn adopt(
        &mut self,
        session: Session,
        state: Option<LiveState>,
        commit: &CommitInfo,
        summary: &WriteSummary,
    ) {
        let (Some(live), Some(state)) = (&mut self.live, state) else {
            drop_later(session);
            return;
        };
        let full = session.nodes().iter().any(|ir| !ir.live);
        let generations = summary
            .nodes
            .iter()
            .filter(|w| w.sha256.is_some())
            .map(|w| (w.node.clone(), w.generation))
            .collect();
        drop_later(live.run.replace(Run {
            session,
            state,
            commit: commit.clone(),
            generations,
            full,
        }));
        live.compile = false;
        live.pending.clear();
    }

    /// Read the cluster's events (`wait`: as a poll does, see [`Live::read`])
    /// and follow them; `false` while the first list is still coming.
    fn read_and_follow(
        &mut self,
        wait: bool,
        now: &dyn Fn() -> SystemTime,
        log: &mut dyn FnMut(Event),
    ) -> Result<bool, WatchError> {
        if let Some(live) = &mut self.live {
            live.read(wait, log)?;
            if live.listing {
                return Ok(false);
            }
        }
        self.follow(now, log)?;
        Ok(true)
    }

    /// Turn the pod events read since the last poll into membership
    /// documents; re-render nodes that need chains they lack; ask for a
    /// compile when rules may change.
    fn follow(
        &mut self,
        now: &dyn Fn() -> SystemTime,
        log: &mut dyn FnMut(Event),
    ) -> Result<(), WatchError> {
        let Some(live) = &mut self.live else {
            return Ok(());
        };
        let Some(mut run) = live.run.take() else {
            return Ok(());
        };
        let pending = std::mem::take(&mut live.pending);
        let cluster = live.cluster.name().to_string();
        let c = &run.session.compiled;
        let ci = c.clusters().iter().position(|x| *x == cluster);
        let mut changes = Vec::new();
        for (key, pod) in &pending {
            let placed = match pod {
                Some(p) => c.live_pod(&cluster, p),
                None => Ok(None),
            };
            match (placed, ci) {
                (Ok(Some(lp)), _) => changes.push(PodChange::Put(lp)),
                (Ok(None), Some(ci)) => {
                    changes.push(PodChange::Remove((ClusterIdx::new(ci), key.clone())))
                }
                (Ok(None), None) => {}
                // A class the compile has not seen.
                (Err(NeedsCompile), _) => live.compile = true,
            }
        }
        if live.compile || (run.full && !pending.is_empty()) {
            live.compile = true;
            live.run = Some(run);
            return Ok(());
        }
        let at = now();
        let applied = run.state.apply(c, changes);
        // The nodes whose rules stay first: an event never waits for another
        // node's re-render.
        let batch = applied
            .changes
            .into_iter()
            .filter_map(|(node, changes)| {
                let generation = *run.generations.get(&node)?;
                let cluster = run.state.node(&node)?.ir.cluster.clone();
                Some(Outgoing {
                    node,
                    cluster,
                    generation,
                    next: Next::Changes(changes),
                })
            })
            .collect();
        let live = self.live.as_mut().expect("live");
        let written = live
            .chains
            .publish(batch, at, |n| run.state.membership(n))
            .map_err(PathError::at(live.chains.dir()))?;
        announce(&self.board, &written);
        if !pending.is_empty() || !written.is_empty() {
            log(members_event(pending.len(), &written));
        }
        if !applied.rules.is_empty() {
            // New chains for some nodes: a generation where only they changed.
            let mut irs = run.session.irs.take().unwrap_or_default();
            for ir in irs.iter_mut().filter(|ir| applied.rules.contains(&ir.node)) {
                if let Some(n) = run.state.node(&ir.node) {
                    *ir = Arc::clone(&n.ir);
                }
            }
            run.session.irs = Some(irs);
            let commit = run.commit.clone();
            let outcome = self.rerender(&commit, &run, at, log)?;
            match outcome {
                Ok(summary) => {
                    for w in summary.nodes.iter().filter(|w| w.sha256.is_some()) {
                        run.generations.insert(w.node.clone(), w.generation);
                    }
                }
                Err(refusal) => {
                    let job = Job {
                        commit: &commit,
                        trigger: Trigger::NewRules,
                        issued_at: at,
                        at: format_time(at).ok_or(WatchError::Clock)?,
                    };
                    self.fail(&job, refusal, log, &mut PollResult::default())?;
                }
            }
        }
        self.live.as_mut().expect("live").run = Some(run);
        Ok(())
    }

    /// Publish `run` again (its IRs changed for some nodes) as a new
    /// generation of its commit.
    fn rerender(
        &mut self,
        commit: &CommitInfo,
        run: &Run,
        at: SystemTime,
        log: &mut dyn FnMut(Event),
    ) -> Result<Result<WriteSummary, Refusal>, WatchError> {
        let job = Job {
            commit,
            trigger: Trigger::NewRules,
            issued_at: at,
            at: format_time(at).ok_or(WatchError::Clock)?,
        };
        let backends = match refused(self.pipeline.backends(&run.session)?) {
            Ok(b) => b,
            Err(r) => return Ok(Err(r)),
        };
        let rendered = self.cache.render(&run.session, &backends);
        drop(backends);
        if rendered.diagnostics.has_errors() {
            let diagnostics = rendered.diagnostics.clone();
            self.cache.keep(rendered, false);
            return Ok(Err(Refusal::of(diagnostics, run.session.files.clone())));
        }
        let mut result = PollResult::default();
        self.publish(
            &job,
            &run.session,
            rendered,
            Some(&run.state),
            log,
            &mut result,
        )
    }

    /// Record generation `n` of `job`'s commit in the status file.
    /// `kept_old`: some bundles were kept from the previous generation, so
    /// the oldest issue time is still the previous one.
    fn record_published(
        &mut self,
        job: &Job<'_>,
        n: u64,
        kept_old: bool,
        changed: usize,
        rendered: usize,
        session: &Session,
    ) -> Result<(), WatchError> {
        let oldest_issued_at = match (&self.status.last_published, kept_old) {
            (Some(p), true) => p.oldest_issued_at.clone(),
            _ => job.at.clone(),
        };
        self.status.failed_inventory = None;
        self.status.highest_generation = n;
        self.status.last_published = Some(Published {
            commit: job.commit.id.clone(),
            generation: n,
            oldest_issued_at,
            published_at: job.at.clone(),
            inventory_sha256: session.inventory_sha256.clone(),
        });
        self.status.last_processed = Some(match job.trigger {
            Trigger::Commit => job.commit.id.clone(),
            _ => self
                .status
                .last_processed
                .clone()
                .unwrap_or_else(|| job.commit.id.clone()),
        });
        self.status.record(Entry {
            commit: job.commit.id.clone(),
            summary: job.commit.summary.clone(),
            status: CommitStatus::Published,
            at: job.at.clone(),
            generation: Some(n),
            nodes_changed: Some(changed),
            nodes_rendered: Some(rendered),
            reason: match job.trigger {
                Trigger::Commit => None,
                _ => Some(job.trigger.name().to_string()),
            },
            diagnostics: None,
        });
        self.status.write(&self.cfg.out)?;
        Ok(())
    }

    /// Record that `job`'s commit was not published, and why.
    fn fail(
        &mut self,
        job: &Job<'_>,
        refusal: Refusal,
        log: &mut dyn FnMut(Event),
        result: &mut PollResult,
    ) -> Result<(), WatchError> {
        let Refusal {
            reason,
            diagnostics,
        } = refusal;
        if let Some(live) = &mut self.live {
            // Not again until something else changes.
            live.compile = false;
        }
        let diags = diagnostics.as_ref().map(|(d, f)| (d, f.as_slice()));
        let report = diags.map_or(String::new(), |(d, f)| render_human(d, f, false, 100));
        self.status.record(Entry {
            commit: job.commit.id.clone(),
            summary: job.commit.summary.clone(),
            status: CommitStatus::Failed,
            at: job.at.clone(),
            generation: None,
            nodes_changed: None,
            nodes_rendered: None,
            reason: Some(reason.clone()),
            diagnostics: diags.map(|(d, f)| to_json(d, f)),
        });
        match job.trigger {
            Trigger::Commit => {
                self.status.last_processed = Some(job.commit.id.clone());
                result.processed += 1;
            }
            // The published commit again: do not retry with this inventory.
            _ => {
                self.status.failed_inventory =
                    ringfence_inventory::digest(&self.cfg.inventory).ok();
            }
        }
        self.status.write(&self.cfg.out)?;
        result.failed += 1;
        log(Event::Failed {
            commit: job.commit.id.clone(),
            reason,
            report,
        });
        Ok(())
    }
}

/// The one cluster the scopes of the intent at the branch's tip name (a
/// remote repository is fetched into its mirror first).
fn tip_cluster(
    cfg: &WatchConfig,
    pipeline: &Pipeline,
    fallback: Option<&str>,
    flag: &'static str,
) -> Result<String, WatchError> {
    let repo = match &cfg.repo {
        RepoLocation::Path(p) => p.clone(),
        RepoLocation::Url(url) => {
            let mirror = cfg.out.join(MIRROR);
            fetch_mirror(url, &mirror, &cfg.branch)?;
            mirror
        }
    };
    let tip = new_commits(&repo, &cfg.branch, None)?.tip;
    let from = IntentFrom::Repo {
        repo: &repo,
        subdir: &cfg.path,
        rev: &tip,
    };
    let checked = pipeline.check(&from)?;
    let error = |why: String| WatchError::EventsCluster {
        flag,
        commit: tip[..tip.len().min(12)].to_string(),
        branch: cfg.branch.clone(),
        why,
    };
    let Some(c) = checked.output else {
        return Err(error(format!(
            "the intent does not check ({})",
            first_error(&checked.diagnostics, &checked.files)
        )));
    };
    let mut clusters = c.intent.scope_clusters();
    match clusters.len() {
        1 => Ok(clusters.remove(0)),
        0 => fallback
            .map(str::to_owned)
            .ok_or_else(|| error("they name none".into())),
        _ => Err(error(format!("they name {}", clusters.join(", ")))),
    }
}

fn chains_dir(out: &Path) -> String {
    out.join(crate::live::MEMBERSHIP).display().to_string()
}

/// Publish the membership of every live node in `summary` (the nodes whose
/// IR in `session` is live) for its generation: a snapshot where its chain
/// starts again, else a delta of what changed since `old` (the state its
/// chain was written from; none: nothing did).
fn publish_members(
    chains: &mut Chains,
    session: &Session,
    state: &LiveState,
    old: Option<&LiveState>,
    summary: &WriteSummary,
    now: SystemTime,
) -> std::io::Result<Vec<(String, Written)>> {
    let live: BTreeMap<&str, &str> = session
        .nodes()
        .into_iter()
        .filter(|ir| ir.live)
        .map(|ir| (ir.node.as_str(), ir.cluster.as_str()))
        .collect();
    let chains_ref = &*chains;
    let batch: Vec<Outgoing> = summary
        .nodes
        .par_iter()
        .filter(|w| w.sha256.is_some() && state.node(&w.node).is_some())
        .filter_map(|w| {
            let cluster = live.get(w.node.as_str())?;
            let next = if !chains_ref.continues(&w.node, w.generation, now) {
                Next::Whole
            } else {
                let was = old?.membership(&w.node)?;
                Next::Changes(Membership::diff(&was, &state.membership(&w.node)?))
            };
            Some(Outgoing {
                node: w.node.clone(),
                cluster: cluster.to_string(),
                generation: w.generation,
                next,
            })
        })
        .collect();
    chains.publish(batch, now, |n| state.membership(n))
}

/// Tell the server the heads of the documents just written.
fn announce(board: &Board, written: &[(String, Written)]) {
    for (node, w) in written {
        let (Written::Snapshot(seq) | Written::Delta(seq, _)) = w;
        board.set_head(node, *seq);
    }
}

/// The log line of membership documents written for `pods` pod changes.
fn members_event(pods: usize, written: &[(String, Written)]) -> Event {
    let mut e = (0, 0, 0);
    for (_, w) in written {
        match w {
            Written::Snapshot(_) => e.1 += 1,
            Written::Delta(_, b) => {
                e.0 += 1;
                e.2 += b;
            }
        }
    }
    Event::Members {
        pods,
        deltas: e.0,
        snapshots: e.1,
        bytes: e.2,
    }
}

/// Where the live cluster's events come from.
enum Input {
    /// Lines of a watch-event stream.
    Events(EventReader),
    /// Changes from an API server.
    Feed {
        changes: Receiver<Incoming>,
        /// How long a poll waits for the first list.
        first_list: Duration,
        /// The last problem reported (for the error when the first list
        /// does not come).
        problem: Option<String>,
    },
}

impl Live {
    /// Apply the events read since the last call. The first list of a
    /// stream is complete when it has been quiet for a moment; that of a
    /// feed when every kind was listed, which a poll (`wait`) waits for, for
    /// a bounded time.
    fn read(&mut self, wait: bool, log: &mut dyn FnMut(Event)) -> Result<(), WatchError> {
        if matches!(self.input, Input::Events(_)) {
            self.read_lines(log);
            return Ok(());
        }
        let Input::Feed {
            changes,
            first_list,
            problem,
        } = &mut self.input
        else {
            unreachable!("matched above")
        };
        let start = Instant::now();
        loop {
            let next = if self.listing && wait {
                let left = first_list.saturating_sub(start.elapsed());
                match changes.recv_timeout(left) {
                    Ok(i) => Some(i),
                    Err(RecvTimeoutError::Timeout) => {
                        let missing: Vec<&str> = self.cluster.unlisted().collect();
                        return Err(WatchError::FirstList {
                            server: self.source.clone(),
                            waited: *first_list,
                            problem: problem.clone().unwrap_or_else(|| {
                                format!("{} not listed yet", missing.join(", "))
                            }),
                        });
                    }
                    Err(RecvTimeoutError::Disconnected) => None,
                }
            } else {
                match changes.try_recv() {
                    Ok(i) => Some(i),
                    Err(TryRecvError::Empty) => return Ok(()),
                    Err(TryRecvError::Disconnected) => None,
                }
            };
            let Some(incoming) = next else {
                if !self.ended {
                    self.ended = true;
                    log(Event::StreamEnded);
                }
                return Ok(());
            };
            match incoming {
                Incoming::Problem(reason) => {
                    *problem = Some(reason.clone());
                    log(Event::SourceProblem { reason });
                }
                Incoming::Change(c) => {
                    self.lines += 1;
                    let applied = self.cluster.apply(c).map(Some);
                    note(&mut self.compile, &mut self.pending, applied, log);
                    if self.listing && !self.cluster.relisting() {
                        self.listing = false;
                        log(Event::Listed {
                            pods: self.cluster.pod_count(),
                        });
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Apply the lines read since the last call; close the first list
    /// when the stream has been quiet for a moment.
    fn read_lines(&mut self, log: &mut dyn FnMut(Event)) {
        let Input::Events(reader) = &mut self.input else {
            return;
        };
        let wait = if self.listing {
            EventReader::quiet()
        } else {
            Duration::ZERO
        };
        loop {
            match reader.take(wait) {
                Feed::Lines(lines) => {
                    for line in lines {
                        self.lines += 1;
                        let applied = parse_event(&line, &self.source, self.lines)
                            .and_then(|c| c.map(|c| self.cluster.apply(c)).transpose());
                        note(&mut self.compile, &mut self.pending, applied, log);
                    }
                    if !self.listing {
                        return;
                    }
                }
                Feed::Quiet { ended } => {
                    if self.listing {
                        let applied = Ok(Some(self.cluster.end_relist(None)));
                        note(&mut self.compile, &mut self.pending, applied, log);
                        self.listing = false;
                        log(Event::Listed {
                            pods: self.cluster.pod_count(),
                        });
                    }
                    if ended && !self.ended {
                        self.ended = true;
                        log(Event::StreamEnded);
                    }
                    return;
                }
            }
        }
    }
}

/// Record in `compile` and `pending` what applying an event did, or log why
/// it could not apply.
fn note(
    compile: &mut bool,
    pending: &mut BTreeMap<String, Option<Pod>>,
    applied: Result<Option<Applied>, InventoryError>,
    log: &mut dyn FnMut(Event),
) {
    match applied {
        Ok(Some(a)) => {
            *compile |= a.structural;
            pending.extend(a.pods);
        }
        Ok(None) => {}
        Err(e) => log(Event::BadEvent {
            reason: e.to_string(),
        }),
    }
}

/// A compiled and rendered commit, and its live state (with a live inventory).
type Built = (Session, Rendered, Option<LiveState>);

/// One commit being processed, and when.
struct Job<'c> {
    commit: &'c CommitInfo,
    trigger: Trigger,
    /// The issue time of its bundles.
    issued_at: SystemTime,
    /// The same, as RFC 3339.
    at: String,
}

/// Why a commit is not published: one line, and the diagnostics behind it.
struct Refusal {
    reason: String,
    diagnostics: Option<(Diagnostics, Vec<SourceFile>)>,
}

impl Refusal {
    fn of(diagnostics: Diagnostics, files: Vec<SourceFile>) -> Refusal {
        Refusal {
            reason: first_error(&diagnostics, &files),
            diagnostics: Some((diagnostics, files)),
        }
    }
}

/// The inventory and its digest: the `inventory` and `trivy` files (parsed
/// again only when they changed since `cache`) and the `live` cluster as it
/// is now.
fn load_inventory(
    pipeline: &Pipeline,
    (inventory, trivy): (&[PathBuf], &[PathBuf]),
    cache: &mut Option<(String, LoadedInventory)>,
    live: Option<&LiveCluster>,
) -> Result<LoadedInventory, WatchError> {
    let mut loaded = if inventory.is_empty() {
        LoadedInventory {
            inventory: Inventory::default(),
            sha256: String::new(),
        }
    } else {
        let files: Vec<PathBuf> = inventory.iter().chain(trivy).cloned().collect();
        let key = ringfence_inventory::digest(&files).map_err(|err| PathError {
            path: files.first().cloned().unwrap_or_default(),
            err,
        })?;
        match cache {
            Some((k, inv)) if *k == key => inv.clone(),
            _ => {
                let inv = pipeline.inventory(inventory, trivy)?;
                *cache = Some((key, inv.clone()));
                inv
            }
        }
    };
    if let Some(live) = live {
        let inv = &mut loaded.inventory;
        inv.clusters.retain(|c| c.name != live.name());
        inv.clusters.push(live.cluster());
        inv.clusters.sort_by(|a, b| a.name.cmp(&b.name));
        // The digest of what was compiled (the model is sorted, so its
        // debug text is canonical).
        loaded.sha256 = sha256_hex(format!("{:?}", loaded.inventory).as_bytes());
    }
    Ok(loaded)
}

/// Drop `value` on a thread of its own: freeing a compiled cluster takes
/// tens of milliseconds (~60 ms for 1,000 nodes) that a poll, and the pod
/// events waiting behind it, need not wait for.
fn drop_later<T: Send + 'static>(value: T) {
    // If no thread can be started, the value is dropped here.
    let _ = std::thread::Builder::new()
        .name("ringfence-drop".into())
        .spawn(move || drop(value));
}

/// A stage's value, or the refusal its errors make.
fn refused<T>(w: Warned<T>) -> Result<T, Refusal> {
    match w.output {
        Some(v) => Ok(v),
        None => Err(Refusal::of(w.diagnostics, w.files)),
    }
}

/// `file:line:column: message` of the first error (or the first diagnostic).
fn first_error(d: &Diagnostics, files: &[SourceFile]) -> String {
    let count = d.error_count();
    let first =
        d.0.iter()
            .find(|x| x.severity == Severity::Error)
            .or_else(|| d.0.first())
            .map(|x| match x.location(files) {
                Some((f, l, c)) => format!("{f}:{l}:{c}: {}", x.message),
                None => x.message.clone(),
            })
            .unwrap_or_default();
    format!("{count} error(s); first: {first}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths() {
        for url in [
            "https://git.example.invalid/intent.git",
            "file:///srv/git/intent.git",
            "git@git.example.invalid:ops/intent.git",
        ] {
            assert_eq!(
                RepoLocation::parse(url),
                RepoLocation::Url(url.into()),
                "{url}"
            );
        }
        let here = std::env::current_dir().unwrap();
        assert_eq!(RepoLocation::parse("."), RepoLocation::Path(here));
        assert_eq!(
            RepoLocation::parse("/no/such/dir:x"),
            RepoLocation::Path("/no/such/dir:x".into())
        );
    }
}
