//! One node's bundle life cycle: verify → stage → check → apply → read back
//! and confirm → commit, with rollback, start-up re-apply, drift and the
//! compliance report.
//!
//! The order is the security argument: nothing reaches the [`Applier`]
//! before [`ringfence_bundle::verify_bundle`] accepted the bundle (tests
//! prove it with an applier that panics), and nothing is committed before the
//! kernel's table was read back and matched the bundle's IR. Any failure
//! before the apply leaves the previous rules in force; a failure after it
//! re-applies the last-known-good bundle.
//!
//! Anti-rollback: nothing older than the committed generation is accepted,
//! and the floor survives a lost `current.json` (the stored bundles carry
//! it); a `current.json` that cannot be read stops every apply until an
//! operator acts. An equal generation is only an expiry refresh: same rules,
//! issued later.

mod membership;

pub use membership::{MemberOutcome, MemberStats};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use ringfence_bundle::{
    Expectations, Reason, Trust, VerifiedBundle, VerifyError, parse_time, rules_sha256, sha256_hex,
    verify_bundle, verify_index,
};
use ringfence_schema::ir::NodeIr;
use ringfence_schema::report::{
    AppliedBundle, ComplianceReport, Drift, REPORT_FORMAT, RuleCounter, Status,
};

use crate::applier::{Applier, ApplyError};
use crate::live::{Snapshot, confirm, diff};
use crate::state::{Current, MemberCommit, StateDir, StateError};
use crate::{log, rfc3339};

/// Environment variable naming a fault-injection point (test-only; see
/// `schema/docs/reports.md`). `after-apply` aborts the process right after a
/// new bundle was applied and before it is committed.
pub const FAILPOINT_ENV: &str = "RINGFENCE_AGENT_FAILPOINT";

/// What the node enforces before its first bundle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Initial {
    /// Nothing installed: traffic flows until the first bundle.
    #[default]
    Allow,
    /// A built-in table drops forwarded pod traffic; the node's own traffic
    /// (and so the agent's fetches) is untouched.
    Deny,
}

/// What the agent is told at start.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's name.
    pub node: String,
    /// Keys trusted to sign bundles.
    pub trust: Trust,
    /// Rules before the first bundle.
    pub initial: Initial,
    /// Re-apply the bundle in force when drift is found.
    pub self_heal: bool,
    /// Keys trusted to sign membership documents; `None`: the bundle keys.
    pub membership_trust: Option<Trust>,
    /// Refuse a bundle offered without a signed index (`run` requires one
    /// from its source unless told otherwise; `apply` only with `--index`).
    pub require_index: bool,
}

/// How one offered bundle was handled.
#[derive(Debug)]
pub enum BundleOutcome {
    /// Verified, applied, confirmed and committed.
    Applied {
        /// Its generation.
        generation: u64,
    },
    /// Same generation and rules as the bundle in force: only its expiry moved.
    Refreshed {
        /// Its generation.
        generation: u64,
    },
    /// Byte-identical to the bundle in force.
    Unchanged,
    /// Refused by verification; nothing was touched.
    Refused(VerifyError),
    /// Verified but could not be put in force; the previous rules are.
    Failed(String),
}

impl BundleOutcome {
    /// Exit status of `ringfence-agent apply`: 0 in force, 1 refused or failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            BundleOutcome::Applied { .. }
            | BundleOutcome::Refreshed { .. }
            | BundleOutcome::Unchanged => 0,
            BundleOutcome::Refused(_) | BundleOutcome::Failed(_) => 1,
        }
    }
}

/// Where the time of the last install went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timings {
    /// Verify, stage, apply, read back, confirm and commit.
    pub total: Duration,
    /// Of which spent in the backend tool (`nft`, PowerShell).
    pub tool: Duration,
}

/// Counts and last results, for reports and metrics.
///
/// Each kind of trouble is kept apart and cleared by the next success of
/// its own step, so a one-off failure never outlives the problem:
/// `blocked` (the state directory cannot be trusted) until restart,
/// `apply_failure` until a bundle is put in force or the source serves the
/// one in force again, `enforce_failure` (re-apply, self-heal or read-back
/// of what is in force) until a read-back shows it intact. They make the
/// status `failed`; `refusal` and `notice` only explain.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Refused bundles by reason code.
    pub verification_failures: BTreeMap<String, u64>,
    /// Bundles that verified but could not be put in force.
    pub apply_failures: u64,
    /// Nothing is applied: the state directory cannot be read (why).
    pub blocked: Option<String>,
    /// The last bundle offered verified but could not be put in force.
    pub apply_failure: Option<String>,
    /// What is in force could not be re-applied or read.
    pub enforce_failure: Option<String>,
    /// The source serves a refused bundle (what is in force stays, intact).
    pub refusal: Option<String>,
    /// The last fetch problem (no bundle yet, source unreachable).
    pub notice: Option<String>,
    /// Whether the bundle in force is past its expiry (still enforced).
    pub expired: bool,
    /// The last drift found.
    pub drift: Drift,
    /// The last counters read.
    pub counters: Vec<RuleCounter>,
    /// The last install's timings.
    pub timings: Timings,
    /// How long the last offered bundle took to verify (taken by metrics).
    pub verify_time: Option<Duration>,
    /// How long the last install took (taken by metrics).
    pub apply_time: Option<Duration>,
    /// Membership documents applied and refused.
    pub members: MemberStats,
}

struct InForce {
    current: Current,
    verified: VerifiedBundle,
}

/// The agent of one node.
pub struct Agent {
    cfg: Config,
    state: StateDir,
    applier: Box<dyn Applier>,
    in_force: Option<InForce>,
    /// The committed generation (or the highest stored one), even when its
    /// bundle could not be loaded: nothing older is accepted either way.
    floor: Option<u64>,
    /// The digests (bundle, index) and refusal of the last refused bundle:
    /// the same bytes offered again are refused without being counted again.
    last_refused: Option<(String, VerifyError)>,
    /// The last membership document applied (perhaps of an older generation).
    members: Option<MemberCommit>,
    /// Whether the kernel holds `members` (a reload of the rules empties it).
    filled: bool,
    /// The last refused membership document (its digest, the generation in
    /// force and the last document applied then) and its refusal: offered
    /// again against the same, it is refused without being counted again.
    last_member_refused: Option<(String, VerifyError)>,
    /// A membership document just refused as filling another generation:
    /// the bundle it fills may be published, so fetch now (see
    /// [`Agent::take_rules_behind`]).
    rules_behind: bool,
    /// Counts and last results.
    pub stats: Stats,
}

/// How a refused bundle is reported in `last_error`.
fn refusal(e: &VerifyError) -> String {
    format!("bundle refused: {e}")
}

fn failpoint(name: &str) {
    if std::env::var(FAILPOINT_ENV).is_ok_and(|v| v == name) {
        log(&format!(
            "failpoint {name}: aborting ({FAILPOINT_ENV} is set)"
        ));
        std::process::abort();
    }
}

impl Agent {
    /// An agent over `state` that installs rules with `applier`. Nothing is
    /// applied until [`Agent::startup`] or [`Agent::offer`].
    pub fn new(cfg: Config, state: StateDir, applier: Box<dyn Applier>) -> Self {
        Agent {
            cfg,
            state,
            applier,
            in_force: None,
            floor: None,
            last_refused: None,
            members: None,
            filled: false,
            last_member_refused: None,
            rules_behind: false,
            stats: Stats::default(),
        }
    }

    /// The generation in force, if any.
    pub fn generation(&self) -> Option<u64> {
        self.in_force.as_ref().map(|f| f.current.generation)
    }

    /// Load the committed bundle without touching the rules in force:
    /// signature and digests are checked again, expiry is not (an expired
    /// bundle stays enforced and is reported `expired`).
    pub fn load(&mut self, now: SystemTime) -> Result<(), String> {
        self.floor = self.state.stored_floor();
        self.members = match self.state.membership() {
            Ok(m) => m,
            Err(e) => {
                // Only a snapshot is accepted then (with any newer sequence).
                log(&format!("{e}: starting membership over from a snapshot"));
                None
            }
        };
        let cur = match self.state.current() {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(()),
            Err(e) => {
                let msg = format!(
                    "{e}: the generation in force is unknown, so no bundle is applied (a corrupt pointer must not open the door to an older bundle); restore current.json, or remove it to start over from the floor of the stored bundles ({})",
                    self.floor
                        .map_or("none".to_string(), |g| format!("generation {g}"))
                );
                log(&msg);
                self.stats.blocked = Some(msg.clone());
                return Err(msg);
            }
        };
        self.floor = self.floor.max(Some(cur.generation));
        let bytes = self
            .state
            .read_bundle(&cur.bundle)
            .map_err(|e| self.fail(e.to_string()))?;
        let expect = Expectations {
            node: Some(&self.cfg.node),
            ..Default::default()
        };
        let verified = match verify_bundle(&bytes, &self.cfg.trust, &expect) {
            Ok(v) if v.sha256 == cur.bundle_sha256 => v,
            Ok(v) => {
                return Err(self.fail(format!(
                    "{}: digest {} differs from current.json's {}",
                    cur.bundle, v.sha256, cur.bundle_sha256
                )));
            }
            Err(e) => {
                self.count_refusal(&e);
                return Err(self.fail(format!("the committed bundle {}: {e}", cur.bundle)));
            }
        };
        self.in_force = Some(InForce {
            current: cur,
            verified,
        });
        self.refresh_expiry(now);
        Ok(())
    }

    /// At start: put the committed bundle back in force (after a reboot, or
    /// a crash between apply and commit) unless the live table already is
    /// exactly its snapshot; with no bundle, install the initial rules.
    pub fn startup(&mut self, now: SystemTime) -> Result<(), String> {
        self.load(now)?;
        let Some(f) = &self.in_force else {
            return self.install_initial().map_err(|e| self.fail(e));
        };
        let generation = f.current.generation;
        // The kernel may hold the recorded membership too (an agent restart).
        self.filled = true;
        let intended = self.intended();
        let result = match self.applier.read() {
            Ok(live) if live.is_some() && live == intended => {
                // An agent restart, not a reboot: keep the counters rather
                // than resetting them with a reload.
                log(&format!("generation {generation} is already in force"));
                return Ok(());
            }
            Ok(_) => {
                log(&format!("re-applying committed generation {generation}"));
                self.reload().map(drop)
            }
            Err(e) => Err(e),
        };
        result.map_err(|e| {
            self.stats.apply_failures += 1;
            self.fail(format!("re-applying generation {generation}: {e}"))
        })
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.cfg.node
    }

    /// Record a problem that does not change what is in force (a failed fetch).
    pub fn note_error(&mut self, msg: String) {
        log(&msg);
        self.stats.notice = Some(msg);
    }

    /// The source answered and has not changed (HTTP 304): forget a fetch
    /// problem. A refusal stands: the source still serves that bundle.
    pub fn clear_error(&mut self) {
        self.stats.notice = None;
    }

    /// Handle a fetched bundle (and the source's index, if it has one).
    pub fn offer(&mut self, bytes: &[u8], index: Option<&[u8]>, now: SystemTime) -> BundleOutcome {
        if let Some(why) = &self.stats.blocked {
            return BundleOutcome::Failed(why.clone());
        }
        let digest = sha256_hex(bytes);
        if self
            .in_force
            .as_ref()
            .is_some_and(|f| f.current.bundle_sha256 == digest)
        {
            // The source serves what is in force again: nothing is wrong.
            self.all_well();
            return BundleOutcome::Unchanged;
        }
        // The same bundle and index as the last refused ones: same answer.
        let key = format!("{digest}/{}", index.map(sha256_hex).unwrap_or_default());
        if let Some((d, e)) = &self.last_refused
            && *d == key
        {
            let e = e.clone();
            self.stats.refusal = Some(refusal(&e));
            self.stats.notice = None;
            return BundleOutcome::Refused(e);
        }
        let outcome = self.offer_new(bytes, index, now);
        if let BundleOutcome::Refused(e) = &outcome {
            self.last_refused = Some((key, e.clone()));
        }
        outcome
    }

    fn offer_new(&mut self, bytes: &[u8], index: Option<&[u8]>, now: SystemTime) -> BundleOutcome {
        let start = Instant::now();
        let index = match index.map(|b| verify_index(b, &self.cfg.trust)) {
            None if self.cfg.require_index => {
                return self.refuse(VerifyError {
                    reason: Reason::NotInIndex,
                    detail: "the source has no index.json, and this agent requires the signed index (it pins each node's bundle; `--no-index` accepts bare bundles)".into(),
                });
            }
            None => None,
            Some(Ok(i)) => Some(i),
            Some(Err(e)) => {
                return self.refuse(VerifyError {
                    reason: e.reason,
                    detail: format!("index.json: {}", e.detail),
                });
            }
        };
        let expect = Expectations {
            node: Some(&self.cfg.node),
            min_generation: self.generation().or(self.floor),
            now: Some(now),
            index: index.as_ref(),
        };
        let verified = verify_bundle(bytes, &self.cfg.trust, &expect);
        self.stats.verify_time = Some(start.elapsed());
        let verified = match verified {
            Ok(v) => v,
            Err(e) => return self.refuse(e),
        };
        let generation = verified.payload.generation;
        let rules = rules_sha256(&verified.payload.files);
        if let Some(f) = &self.in_force
            && generation == f.current.generation
        {
            if rules != f.current.rules_sha256 {
                return self.refuse(VerifyError {
                    reason: Reason::OldGeneration,
                    detail: format!(
                        "generation {generation} is already in force with other rules; a change needs a new generation"
                    ),
                });
            }
            let issued = |v: &VerifiedBundle| parse_time(&v.payload.issued_at).ok();
            if issued(&verified) <= issued(&f.verified) {
                return self.refuse(VerifyError {
                    reason: Reason::OldGeneration,
                    detail: format!(
                        "a refresh of generation {generation} issued at {}, not after the one in force (issued at {}): a replay would move the expiry back",
                        verified.payload.issued_at, f.verified.payload.issued_at
                    ),
                });
            }
            return self.refresh(verified, bytes, now);
        }
        if let Some(missing) = self
            .applier
            .files()
            .iter()
            .find(|f| verified.file(f).is_none())
        {
            return self.refuse(VerifyError {
                reason: Reason::MissingFile,
                detail: format!(
                    "the bundle has no {missing}, which the {} applier needs (a bundle for another OS?)",
                    self.applier.name()
                ),
            });
        }
        let tool_before = self.applier.tool_time();
        let installing = Instant::now();
        let outcome = self.install(verified, rules, bytes, now);
        self.stats.apply_time = Some(installing.elapsed());
        self.stats.timings = Timings {
            total: start.elapsed(),
            tool: self.applier.tool_time().saturating_sub(tool_before),
        };
        outcome
    }

    /// Stage, check, apply, confirm and commit a verified bundle.
    fn install(
        &mut self,
        verified: VerifiedBundle,
        rules: String,
        bytes: &[u8],
        now: SystemTime,
    ) -> BundleOutcome {
        let generation = verified.payload.generation;
        let stored = match self.state.store_bundle(generation, &verified.sha256, bytes) {
            Ok(p) => p,
            Err(e) => return self.apply_failed(e.to_string(), false),
        };
        let snapshot = match self.put_in_force(&verified) {
            Ok(s) => s,
            Err(e) => {
                let dirty = e.dirty;
                return self.apply_failed(format!("generation {generation}: {e}"), dirty);
            }
        };
        let current = Current {
            bundle: stored,
            generation,
            bundle_sha256: verified.sha256.clone(),
            rules_sha256: rules,
            applied_at: rfc3339(now),
            snapshot,
        };
        if let Err(e) = self.state.commit(&current) {
            return self.apply_failed(format!("generation {generation}: {e}"), true);
        }
        log(&format!(
            "generation {generation} applied and committed ({})",
            verified
                .payload
                .source
                .commit
                .as_deref()
                .unwrap_or("no commit")
        ));
        self.in_force = Some(InForce { current, verified });
        // Its live sets are empty until its generation's snapshot arrives.
        self.filled = false;
        self.all_well();
        self.stats.enforce_failure = None;
        self.stats.drift = Drift::default();
        self.refresh_expiry(now);
        BundleOutcome::Applied { generation }
    }

    /// Stage a verified bundle's files, check, apply, read back and confirm.
    /// Returns the snapshot to commit; an error is dirty if the rules in
    /// force may have changed.
    fn put_in_force(&self, verified: &VerifiedBundle) -> Result<Snapshot, ApplyError> {
        let dir = self
            .state
            .stage(
                verified
                    .payload
                    .files
                    .iter()
                    .map(|f| (f.name.as_str(), f.content.as_str())),
            )
            .map_err(|e| ApplyError::clean("stage", e.to_string()))?;
        self.applier.check(&dir)?;
        self.applier.apply(&dir, verified.payload.generation)?;
        failpoint("after-apply");
        let live = self
            .applier
            .read()
            .map_err(|e| ApplyError::dirty("read-back", e.to_string()))?
            .ok_or_else(|| ApplyError::dirty("read-back", "our table is absent after the apply"))?;
        confirm(&verified.ir, &live).map_err(|e| ApplyError::dirty("confirm", e))?;
        Ok(live)
    }

    /// Load the bundle in force again, then its membership.
    fn reload(&mut self) -> Result<Snapshot, ApplyError> {
        let Some(f) = self.in_force.take() else {
            return Err(ApplyError::clean("reload", "no bundle is in force"));
        };
        let done = self.put_in_force(&f.verified);
        self.in_force = Some(f);
        let live = done?;
        self.refill()
            .map_err(|e| ApplyError::dirty("membership", e.to_string()))?;
        Ok(live)
    }

    /// Same rules, newer expiry: keep the rules, store the bundle, move the pointer.
    fn refresh(
        &mut self,
        verified: VerifiedBundle,
        bytes: &[u8],
        now: SystemTime,
    ) -> BundleOutcome {
        let generation = verified.payload.generation;
        let Some(mut current) = self.in_force.as_ref().map(|f| f.current.clone()) else {
            return BundleOutcome::Unchanged;
        };
        current.bundle = match self.state.store_bundle(generation, &verified.sha256, bytes) {
            Ok(p) => p,
            Err(e) => return self.apply_failed(e.to_string(), false),
        };
        current.bundle_sha256 = verified.sha256.clone();
        if let Err(e) = self.state.commit(&current) {
            return self.apply_failed(e.to_string(), false);
        }
        if let Some(f) = self.in_force.as_mut() {
            f.current = current;
            f.verified = verified;
        }
        log(&format!("generation {generation}: expiry refreshed"));
        self.all_well();
        self.refresh_expiry(now);
        BundleOutcome::Refreshed { generation }
    }

    fn install_initial(&self) -> Result<(), String> {
        match self.cfg.initial {
            Initial::Allow => Ok(()),
            Initial::Deny => {
                log("no bundle yet: installing the initial deny table");
                let files = self.applier.deny_files().map_err(|e| e.to_string())?;
                let dir = self.state.stage(files).map_err(|e| e.to_string())?;
                self.applier.apply(&dir, 0).map_err(|e| e.to_string())
            }
        }
    }

    /// Put the last-known-good rules back (or the initial state).
    fn rollback(&mut self) -> Result<String, String> {
        match &self.in_force {
            Some(f) => {
                let generation = f.current.generation;
                self.reload()
                    .map(|_| format!("rolled back to generation {generation}"))
                    .map_err(|e| e.to_string())
            }
            None => {
                match self.cfg.initial {
                    Initial::Deny => self.install_initial()?,
                    Initial::Allow => self.applier.remove().map_err(|e| e.to_string())?,
                }
                Ok("rolled back to the initial rules".into())
            }
        }
    }

    fn refuse(&mut self, e: VerifyError) -> BundleOutcome {
        self.count_refusal(&e);
        let msg = refusal(&e);
        log(&msg);
        self.stats.refusal = Some(msg);
        self.stats.notice = None;
        BundleOutcome::Refused(e)
    }

    /// What is in force is what the source serves: forget apply failures,
    /// refusals and fetch problems.
    fn all_well(&mut self) {
        self.stats.apply_failure = None;
        self.stats.refusal = None;
        self.stats.notice = None;
    }

    fn count_refusal(&mut self, e: &VerifyError) {
        *self
            .stats
            .verification_failures
            .entry(e.reason.code().to_string())
            .or_default() += 1;
    }

    fn apply_failed(&mut self, msg: String, dirty: bool) -> BundleOutcome {
        self.stats.apply_failures += 1;
        let msg = if dirty {
            match self.rollback() {
                Ok(done) => format!("{msg}; {done}"),
                Err(e) => format!("{msg}; rollback failed too: {e}"),
            }
        } else {
            format!("{msg}; the previous rules are in force")
        };
        log(&msg);
        self.stats.apply_failure = Some(msg.clone());
        self.stats.refusal = None;
        BundleOutcome::Failed(msg)
    }

    /// What is in force could not be (re)applied or read.
    fn fail(&mut self, msg: String) -> String {
        log(&msg);
        self.stats.enforce_failure = Some(msg.clone());
        msg
    }

    fn refresh_expiry(&mut self, now: SystemTime) {
        self.stats.expired = self
            .in_force
            .as_ref()
            .is_some_and(|f| parse_time(&f.verified.payload.expires_at).is_ok_and(|t| now >= t));
        if self.stats.expired {
            log("the bundle in force has expired: still enforcing it, waiting for a newer one");
        }
    }

    /// Read the live table, compare it with the snapshot taken at the last
    /// confirmed apply, read counters; with self-heal, re-apply on drift.
    pub fn check_drift(&mut self, now: SystemTime) {
        self.refresh_expiry(now);
        let Some(intended) = self.intended() else {
            return;
        };
        let Some(f) = &self.in_force else { return };
        let live = match self.applier.read() {
            Ok(l) => l.unwrap_or_default(),
            Err(e) => {
                self.fail(format!("reading the live table: {e}"));
                return;
            }
        };
        // Live sets and maps are compared with the membership in force.
        let drift = diff(&intended, &live);
        self.stats.counters = counters(&f.verified.ir, &live);
        if !drift.is_empty() {
            log(&format!(
                "drift: missing {:?}, extra {:?}, changed {:?}",
                drift.missing, drift.extra, drift.changed
            ));
        }
        if drift.is_empty() {
            // Read back and intact: an earlier failure to re-apply or read
            // no longer holds.
            self.stats.enforce_failure = None;
        }
        self.stats.drift = drift;
        if self.cfg.self_heal && !self.stats.drift.is_empty() {
            match self.rollback() {
                Ok(_) => {
                    log("self-heal: the bundle in force was re-applied");
                    self.check_drift(now);
                }
                Err(e) => {
                    self.stats.apply_failures += 1;
                    self.fail(format!("self-heal failed: {e}"));
                }
            }
        }
    }

    /// The compliance report as of `now`.
    pub fn report(&self, now: SystemTime) -> ComplianceReport {
        let s = &self.stats;
        let failed =
            s.blocked.is_some() || s.apply_failure.is_some() || s.enforce_failure.is_some();
        let status = match &self.in_force {
            _ if failed => Status::Failed,
            None => Status::NoBundle,
            Some(_) if !s.drift.is_empty() => Status::Drifted,
            Some(_) if s.expired => Status::Expired,
            Some(_) => Status::InSync,
        };
        ComplianceReport {
            format: REPORT_FORMAT,
            node: self.cfg.node.clone(),
            generated_at: rfc3339(now),
            status,
            applied: self.in_force.as_ref().map(|f| AppliedBundle {
                cluster: f.verified.payload.cluster.clone(),
                generation: f.current.generation,
                bundle_sha256: f.current.bundle_sha256.clone(),
                commit: f.verified.payload.source.commit.clone(),
                applied_at: f.current.applied_at.clone(),
                expires_at: f.verified.payload.expires_at.clone(),
                backend: f.verified.payload.backend.name.clone(),
            }),
            drift: s.drift.clone(),
            counters: s.counters.clone(),
            verification_failures: s.verification_failures.clone(),
            apply_failures: s.apply_failures,
            last_error: self.last_error(),
        }
    }

    /// The error the report shows: the most serious one standing.
    pub fn last_error(&self) -> Option<String> {
        let s = &self.stats;
        s.blocked
            .clone()
            .or_else(|| s.apply_failure.clone())
            .or_else(|| s.enforce_failure.clone())
            .or_else(|| s.refusal.clone())
            .or_else(|| s.members.error.clone())
            .or_else(|| s.notice.clone())
    }

    /// The state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.state.root().to_path_buf()
    }

    /// Write the report to `<state>/report.json`.
    pub fn write_report(&self, report: &ComplianceReport) -> Result<(), StateError> {
        let mut json = serde_json::to_vec_pretty(report).unwrap_or_default();
        json.push(b'\n');
        self.state.write_report(&json)
    }
}

/// Each IR rule's counters, in IR order (chains by id, rules in order).
fn counters(ir: &NodeIr, live: &Snapshot) -> Vec<RuleCounter> {
    let hits = live.counters();
    let mut seen = std::collections::BTreeSet::new();
    ir.chains
        .iter()
        .flat_map(|c| &c.rules)
        .filter(|r| seen.insert(r.id.as_str()))
        .map(|r| {
            let (packets, bytes) = hits.get(r.id.as_str()).copied().unwrap_or_default();
            RuleCounter {
                rule: r.id.clone(),
                policy: r.policy.clone(),
                action: r.action,
                packets,
                bytes,
            }
        })
        .collect()
}
