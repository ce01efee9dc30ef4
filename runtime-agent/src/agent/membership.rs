//! The live part of a node: membership documents fill the sets and maps a
//! live bundle declares (`schema/docs/membership.md`).
//!
//! Each document is verified ([`verify_membership`]) against the membership
//! keys and the bundle in force (node, generation, expiry, sequence, chain,
//! declared names), then applied as one transaction of element changes
//! ([`Applier::apply_membership`]) and recorded in `membership.json`, so a
//! restart continues the chain. A refused document changes nothing. What
//! the kernel holds is tracked apart (`filled`): a reload of the rules
//! empties the live sets, and [`Agent::refill`] puts the membership back.

use std::time::{Duration, Instant, SystemTime};

use ringfence_bundle::{
    Applied, Document, MembershipExpect, Reason, VerifyError, sha256_hex, verify_membership,
};
use ringfence_schema::membership::Membership;

use super::Agent;
use crate::applier::ApplyError;
use crate::live::{Element, LiveSet, Snapshot};
use crate::source::{FetchError, MAX_MEMBER_BYTES, MemberFile, Source};
use crate::state::MemberCommit;
use crate::{log, rfc3339};

/// Membership counts and last results, for status, reports and metrics.
#[derive(Clone, Debug, Default)]
pub struct MemberStats {
    /// Documents applied.
    pub applied: u64,
    /// Documents refused, by reason code.
    pub refused: std::collections::BTreeMap<String, u64>,
    /// Documents verified but not put in force (the kernel refused them).
    pub failures: u64,
    /// Time from fetch to applied of the last document (taken by metrics).
    pub latency: Option<Duration>,
    /// The last refusal or failure, until a document applies.
    pub error: Option<String>,
}

/// How one offered membership document was handled.
#[derive(Debug)]
pub enum MemberOutcome {
    /// Verified, applied in one transaction and recorded.
    Applied {
        /// Its sequence.
        sequence: u64,
    },
    /// Refused; nothing changed.
    Refused(VerifyError),
    /// Not applied (no live bundle in force, or the kernel refused the
    /// transaction, which then changed nothing).
    Failed(String),
}

impl Agent {
    /// Whether the bundle in force is live (its sets wait for membership).
    pub fn is_live(&self) -> bool {
        self.in_force.as_ref().is_some_and(|f| f.verified.ir.live)
    }

    /// The last membership document applied for the generation in force.
    pub fn members(&self) -> Option<&MemberCommit> {
        let generation = self.generation()?;
        self.members.as_ref().filter(|m| m.generation == generation)
    }

    /// Handle one membership document's bytes, fetched at `fetched`.
    pub fn offer_membership(
        &mut self,
        bytes: &[u8],
        now: SystemTime,
        fetched: Instant,
    ) -> MemberOutcome {
        let Some(f) = self.in_force.as_ref().filter(|f| f.verified.ir.live) else {
            return MemberOutcome::Failed("no live bundle is in force to fill".into());
        };
        let generation = f.current.generation;
        // A verdict holds for these bytes against this generation in force
        // and this last document applied, not beyond: a snapshot refused
        // before its bundle arrived is taken once that bundle is in force.
        let key = format!(
            "{} for generation {generation} after {}",
            sha256_hex(bytes),
            self.members.as_ref().map_or(String::new(), |m| format!(
                "{}/{}/{}",
                m.generation, m.sequence, m.digest
            ))
        );
        if let Some((k, e)) = &self.last_member_refused
            && *k == key
        {
            return MemberOutcome::Refused(e.clone());
        }
        let ir = &f.verified.ir;
        let verified = if bytes.len() as u64 > MAX_MEMBER_BYTES {
            Err(VerifyError {
                reason: Reason::TooLarge,
                detail: format!(
                    "more than {MAX_MEMBER_BYTES} bytes (the largest membership document read)"
                ),
            })
        } else {
            let expect = MembershipExpect {
                node: &self.cfg.node,
                generation,
                ir: Some(ir),
                now,
                applied: self.members.as_ref().map(|m| Applied {
                    sequence: m.sequence,
                    digest: &m.digest,
                }),
            };
            let trust = self
                .cfg
                .membership_trust
                .as_ref()
                .unwrap_or(&self.cfg.trust);
            verify_membership(bytes, trust, &expect)
        };
        let same = self.members.as_ref().filter(|m| m.generation == generation);
        let empty = Membership::default();
        let current = same.map_or(&empty, |m| &m.membership);
        let next = verified.and_then(|mut v| match (&v.document, same) {
            // The chain of an older generation does not carry over: its
            // rules were replaced, and a new generation starts with a snapshot.
            (Document::Delta(d), None) => Err(VerifyError {
                reason: Reason::Gap,
                detail: format!(
                    "delta {} with no membership applied for generation {generation} yet: a snapshot comes first",
                    d.sequence
                ),
            }),
            // A snapshot's membership moves into the record, not copied.
            _ => v.document.take_membership(current).map(|m| (v, m)),
        });
        let (v, next) = match next {
            Ok(x) => x,
            Err(e) => {
                *self
                    .stats
                    .members
                    .refused
                    .entry(e.reason.code().into())
                    .or_default() += 1;
                let msg = format!("membership refused: {e}");
                log(&msg);
                self.stats.members.error = Some(msg);
                self.rules_behind |= e.reason == Reason::WrongGeneration;
                self.last_member_refused = Some((key, e.clone()));
                return MemberOutcome::Refused(e);
            }
        };
        let in_kernel = if self.filled { current } else { &empty };
        if let Err(e) = self.applier.apply_membership(ir, in_kernel, &next) {
            self.stats.members.failures += 1;
            let msg = format!(
                "membership {} verified but not applied: {e}; the previous membership is in force",
                v.document.sequence()
            );
            log(&msg);
            self.stats.members.error = Some(msg.clone());
            return MemberOutcome::Failed(msg);
        }
        let sequence = v.document.sequence();
        // One line per document, with the time to the millisecond: what
        // the churn benchmark (`bench/churn.sh`) reads as "applied".
        let at = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let kind = match v.document {
            Document::Snapshot(_) => "snapshot",
            Document::Delta(_) => "delta",
        };
        log(&format!(
            "membership {kind} {sequence} of generation {generation} applied: {} bytes, at {}.{:03} (Unix time)",
            bytes.len(),
            at.as_secs(),
            at.subsec_millis()
        ));
        let commit = MemberCommit {
            generation,
            sequence,
            digest: v.digest,
            issued_at: v.document.issued_at().to_string(),
            applied_at: rfc3339(now),
            membership: next,
        };
        // The kernel holds it now, whether or not the record is written: a
        // restart with the older record re-applies that and follows on.
        let recorded = self.state.commit_membership(&commit);
        self.members = Some(commit);
        self.filled = true;
        let s = &mut self.stats.members;
        s.applied += 1;
        s.latency = Some(fetched.elapsed());
        s.error = None;
        if let Err(e) = recorded {
            let msg = format!("membership {sequence} applied but not recorded: {e}");
            log(&msg);
            s.error = Some(msg);
        }
        MemberOutcome::Applied { sequence }
    }

    /// Whether a membership document was refused, for the first time, as
    /// filling another bundle generation than the one in force (cleared by
    /// the call). A new generation's snapshot is published right after its
    /// bundle, so the loop fetches the bundle now instead of at the next
    /// pass; the same document refused again does not ask twice.
    pub fn take_rules_behind(&mut self) -> bool {
        std::mem::take(&mut self.rules_behind)
    }

    /// Follow the source's membership of this node up to its `head`: the
    /// deltas after the last document applied, or the snapshot where one is
    /// missing, out of chain or of another generation. `wait` long-polls an
    /// HTTP source's head; there the next delta comes with it, so a change
    /// costs one round trip. Returns whether anything was applied.
    pub fn sync_membership(
        &mut self,
        source: &Source,
        wait: Option<Duration>,
        now: SystemTime,
    ) -> Result<bool, FetchError> {
        if !self.is_live() {
            return Ok(false);
        }
        let node = self.cfg.node.clone();
        let at = self.members().map(|m| m.sequence);
        let Some(update) = source.member_update(&node, at, wait)? else {
            return Ok(false);
        };
        let head = update.head;
        let mut prefetched = update.delta.map(|(seq, b)| (seq, b, Instant::now()));
        let mut changed = false;
        let (mut want_snapshot, mut tried_snapshot) = (false, false);
        for _ in 0..head.saturating_sub(at.unwrap_or(0)) + 3 {
            let at = self.members().map(|m| m.sequence);
            if at.is_some_and(|a| a >= head) {
                break;
            }
            let mut fetched = Instant::now();
            let (bytes, is_delta) = match at {
                Some(a) if !want_snapshot => {
                    let delta = match prefetched.take_if(|(seq, _, _)| *seq == a + 1) {
                        Some((_, b, t)) => {
                            fetched = t;
                            Some(b)
                        }
                        None => source.member(&node, MemberFile::Delta(a + 1))?,
                    };
                    match delta {
                        Some(b) => (b, true),
                        // Removed when a newer snapshot started a chain.
                        None => {
                            want_snapshot = true;
                            continue;
                        }
                    }
                }
                _ if tried_snapshot => break,
                _ => {
                    (want_snapshot, tried_snapshot) = (false, true);
                    match source.member(&node, MemberFile::Snapshot)? {
                        Some(b) => (b, false),
                        None => break,
                    }
                }
            };
            match self.offer_membership(&bytes, now, fetched) {
                MemberOutcome::Applied { .. } => changed = true,
                // Out of chain: the snapshot is the way back.
                MemberOutcome::Refused(e)
                    if is_delta && matches!(e.reason, Reason::Gap | Reason::BrokenChain) =>
                {
                    want_snapshot = true;
                }
                _ => break,
            }
        }
        Ok(changed)
    }

    /// After the rules in force were (re)loaded, which empties their live
    /// sets: put the membership of their generation back, one transaction.
    pub(super) fn refill(&mut self) -> Result<(), ApplyError> {
        self.filled = false;
        let Some(f) = self.in_force.as_ref().filter(|f| f.verified.ir.live) else {
            return Ok(());
        };
        let Some(m) = self
            .members
            .as_ref()
            .filter(|m| m.generation == f.current.generation)
        else {
            return Ok(());
        };
        self.applier
            .apply_membership(&f.verified.ir, &Membership::default(), &m.membership)?;
        self.filled = true;
        log(&format!(
            "membership {} of generation {} put back",
            m.sequence, m.generation
        ));
        Ok(())
    }

    /// What the table should hold: the snapshot taken at the apply (live
    /// sets empty) with the membership the kernel was given.
    pub(super) fn intended(&self) -> Option<Snapshot> {
        let f = self.in_force.as_ref()?;
        let mut s = f.current.snapshot.clone();
        if let Some(m) = self.members().filter(|_| self.filled) {
            let ir = &f.verified.ir;
            // Counted first, so each set grows once to its size.
            let mut count: Vec<(usize, usize)> = vec![(0, 0); s.sets.len()];
            let mut at = Finder::default();
            self.applier
                .member_elements(ir, &m.membership, &mut |set, e| {
                    if let Some(i) = at.find(&s.sets, set) {
                        match e {
                            Element::V4(_) => count[i].0 += 1,
                            Element::V6(_) => count[i].1 += 1,
                            Element::Text(_) => {}
                        }
                    }
                });
            for (x, (v4, v6)) in s.sets.iter_mut().zip(count) {
                x.elements.reserve_exact(v4, v6);
            }
            self.applier
                .member_elements(ir, &m.membership, &mut |set, e| {
                    if let Some(i) = at.find(&s.sets, set) {
                        s.sets[i].elements.push(e);
                    }
                });
        }
        Some(s.sorted())
    }
}

/// Which of a snapshot's sets has a name, remembering the last answer:
/// elements come set by set.
#[derive(Default)]
struct Finder {
    last: Option<(String, Option<usize>)>,
}

impl Finder {
    fn find(&mut self, sets: &[LiveSet], name: &str) -> Option<usize> {
        match &self.last {
            Some((n, i)) if n == name => *i,
            _ => {
                let i = sets.iter().position(|x| x.name == name);
                self.last = Some((name.to_string(), i));
                i
            }
        }
    }
}
