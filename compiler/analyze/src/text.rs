//! The text report: totals, unexpected outcomes, policies and their
//! conditions, the scope graph, changes and compliance. Long lists show the
//! first [`TOP`] entries; `--format json` has everything.

use std::fmt::{self, Write as _};

use ringfence_core::explain::SideInfo;
use ringfence_schema::ir::{Action, Rank};

use crate::analysis::{Analysis, Brief, Condition, Conversation, Judgement, PolicyStats, Usage};
use crate::outcome::Outcome;

/// How many entries long lists show.
pub(crate) const TOP: usize = 20;

pub(crate) fn rank_name(r: Rank) -> &'static str {
    match r {
        Rank::Quarantine => "quarantine",
        Rank::Absolute => "absolute",
        Rank::Default => "default",
        Rank::CatchAll => "catch-all",
        Rank::Implicit => "implicit",
    }
}

/// `tcp/5432`, `icmp`.
pub(crate) fn service(c: &Conversation) -> String {
    match c.port {
        Some(p) => format!("{}/{p}", c.proto),
        None => c.proto.to_string(),
    }
}

fn side(s: &SideInfo) -> String {
    if !s.managed {
        return "not managed".to_string();
    }
    let mut out = format!(
        "{} by {} ({})",
        s.action.map_or("?".to_string(), |a| a.to_string()),
        s.policy_id().unwrap_or("?"),
        s.policy.as_ref().map_or("?", |p| rank_name(p.rank))
    );
    if s.mode == Some(ringfence_schema::ir::Mode::Analyze) && s.action == Some(Action::Deny) {
        out.push_str(" [analyze mode]");
    }
    out
}

/// What decides a conversation: the denying sides of a denied one, both
/// sides of an allowed one.
pub(crate) fn deciding(j: &Judgement) -> String {
    let sides = [("egress", Some(&j.egress)), ("ingress", Some(&j.ingress))]
        .into_iter()
        .chain([("node hop", j.node_hop.as_ref())]);
    let parts: Vec<String> = sides
        .filter_map(|(name, s)| Some((name, s?)))
        .filter(|(_, s)| j.verdict == Action::Allow || s.action == Some(Action::Deny))
        .map(|(name, s)| format!("{name}: {}", side(s)))
        .collect();
    parts.join("; ")
}

fn brief(b: &Brief) -> String {
    let mut parts = Vec::new();
    for (name, p) in [
        ("egress", &b.egress),
        ("ingress", &b.ingress),
        ("node hop", &b.node_hop),
    ] {
        if let Some(p) = p {
            parts.push(format!("{name} {p}"));
        }
    }
    let mut s = b.verdict.to_string();
    if b.verdict == Action::Deny && b.passes {
        s.push_str(" (analyze mode: passes)");
    }
    if !parts.is_empty() {
        write!(s, " ({})", parts.join(", ")).expect("string");
    }
    s
}

/// One policy under a condition: where it is, and what the condition says
/// of it.
fn condition_line(c: Condition, p: &PolicyStats) -> String {
    let at = format!(
        "{} at {}:{}:{}",
        p.policy.id, p.policy.file, p.policy.line, p.policy.column
    );
    match c {
        Condition::NoTraffic => at,
        Condition::Overshadowed => format!(
            "{at}: decided first by {}",
            if p.shadowed_by.is_empty() {
                "earlier rules".to_string()
            } else {
                p.shadowed_by.join(", ")
            }
        ),
        Condition::Broad => {
            let u = |name: &str, u: Option<Usage>| {
                u.map(|u| format!("{name} {} of {}", u.seen, u.members))
            };
            let parts: Vec<String> = [u("consumers", p.consumers), u("providers", p.providers)]
                .into_iter()
                .flatten()
                .collect();
            format!("{}: {} used it", p.policy.id, parts.join(", "))
        }
    }
}

fn conversations(f: &mut fmt::Formatter<'_>, a: &Analysis, o: Outcome, what: &str) -> fmt::Result {
    let mut list: Vec<&Conversation> = a.conversations.iter().filter(|c| c.flows(o) > 0).collect();
    if list.is_empty() {
        return Ok(());
    }
    list.sort_by_key(|c| std::cmp::Reverse(c.flows(o)));
    writeln!(f)?;
    writeln!(
        f,
        "{o} ({what}): {} conversation(s){}",
        list.len(),
        if list.len() > TOP {
            format!(", the {TOP} with most flows")
        } else {
            String::new()
        }
    )?;
    for c in list.iter().take(TOP) {
        writeln!(
            f,
            "  {} -> {} {}: {} flow(s)",
            c.from,
            c.to,
            service(c),
            c.flows(o)
        )?;
        writeln!(f, "      {}", deciding(&c.judgement))?;
    }
    Ok(())
}

impl fmt::Display for Analysis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "analysis of {}", self.version)?;
        if let Some(a) = &self.against {
            write!(f, " against {a}")?;
        }
        writeln!(f)?;
        let t = &self.totals;
        write!(
            f,
            "{} flow(s), {} conversation(s) from {} file(s)",
            t.all.flows,
            t.conversations,
            self.input.files.len()
        )?;
        if let (Some(a), Some(b)) = (&self.input.first_seen, &self.input.last_seen) {
            write!(f, ", {a} to {b}")?;
        }
        writeln!(f)?;
        let unreadable: u64 = self.input.files.iter().map(|f| f.unreadable).sum();
        if unreadable > 0 {
            writeln!(f, "{unreadable} unreadable line(s) skipped:")?;
            for e in &self.input.errors {
                writeln!(f, "  {e}")?;
            }
        }
        for file in &self.input.files {
            if let Some(at) = &file.assumed_time {
                writeln!(
                    f,
                    "{}: no times in the listing; dated {at} (the file's modification time)",
                    file.path
                )?;
            }
        }

        writeln!(f)?;
        writeln!(
            f,
            "{:<12} {:>12} {:>14} {:>16}",
            "outcome", "flows", "packets", "bytes"
        )?;
        for (o, c) in &t.outcomes {
            writeln!(
                f,
                "{:<12} {:>12} {:>14} {:>16}",
                o.as_str(),
                c.flows,
                c.packets,
                c.bytes
            )?;
        }

        conversations(
            f,
            self,
            Outcome::Escaped,
            "network allowed, policy would deny",
        )?;
        conversations(
            f,
            self,
            Outcome::Misdropped,
            "network dropped, policy allows",
        )?;
        conversations(
            f,
            self,
            Outcome::WouldBlock,
            "no network verdict, enforcing would block",
        )?;

        let hit: Vec<_> = self.policies.iter().filter(|p| p.hits.flows > 0).collect();
        writeln!(f)?;
        writeln!(f, "policies hit: {} of {}", hit.len(), self.policies.len())?;
        for p in &hit {
            write!(
                f,
                "  {} ({}, {}): {} flow(s), {} byte(s), {} .. {}",
                p.policy.id,
                rank_name(p.policy.rank),
                p.policy.action,
                p.hits.flows,
                p.hits.bytes,
                p.first_hit.as_deref().unwrap_or("?"),
                p.last_hit.as_deref().unwrap_or("?"),
            )?;
            if let Some(a) = &p.agents {
                write!(f, "; agents {} packet(s) on {} node(s)", a.packets, a.nodes)?;
            }
            writeln!(f)?;
        }
        for c in [
            Condition::NoTraffic,
            Condition::Overshadowed,
            Condition::Broad,
        ] {
            let policies: Vec<_> = self.with_condition(c).collect();
            if policies.is_empty() {
                continue;
            }
            writeln!(f)?;
            writeln!(f, "{}: {} polic(ies)", c.as_str(), policies.len())?;
            for p in policies {
                writeln!(f, "  {}", condition_line(c, p))?;
            }
        }

        if !self.graph.is_empty() {
            writeln!(f)?;
            writeln!(f, "scopes:")?;
            for e in &self.graph {
                let counts: Vec<String> = e.flows.iter().map(|(o, n)| format!("{o} {n}")).collect();
                writeln!(f, "  {} -> {}: {}", e.from, e.to, counts.join(", "))?;
            }
        }

        if let Some(ch) = &self.changes {
            writeln!(f)?;
            writeln!(
                f,
                "changes against {}: {} conversation(s), {} flow(s)",
                self.against.as_deref().unwrap_or("?"),
                ch.conversations,
                ch.flows
            )?;
            for g in ch.groups.iter().take(TOP) {
                let ports: Vec<String> = g.ports.iter().map(u16::to_string).collect();
                writeln!(
                    f,
                    "  {} -> {} {}{}: {} flow(s) in {} conversation(s)",
                    g.from,
                    g.to,
                    g.proto,
                    if ports.is_empty() {
                        String::new()
                    } else {
                        format!("/{}", ports.join(","))
                    },
                    g.flows,
                    g.conversations
                )?;
                writeln!(f, "      was {}", brief(&g.before))?;
                writeln!(f, "      now {}", brief(&g.after))?;
            }
            if ch.groups.len() > TOP {
                writeln!(f, "  … {} more group(s)", ch.groups.len() - TOP)?;
            }
        }

        if let Some(c) = &self.compliance {
            writeln!(f)?;
            writeln!(f, "compliance: {} node(s)", c.nodes.len())?;
            for n in &c.nodes {
                write!(
                    f,
                    "  {}: {}, generation {}, {}",
                    n.node,
                    n.status_word(),
                    n.generation.map_or("-".to_string(), |g| g.to_string()),
                    match n.off_version() {
                        None => "on this version".to_string(),
                        Some((unknown, missing)) => format!(
                            "not on this version ({unknown} rule(s) unknown, {missing} missing)"
                        ),
                    }
                )?;
                if n.drift.total() > 0 {
                    write!(
                        f,
                        ", drift: {} missing, {} extra, {} changed",
                        n.drift.missing, n.drift.extra, n.drift.changed
                    )?;
                }
                writeln!(f, ", {} packet(s) denied", n.denied_packets)?;
            }
            for u in &c.unreadable {
                writeln!(f, "  {}: unreadable: {}", u.file, u.error)?;
            }
            if !c.unknown_policies.is_empty() {
                writeln!(
                    f,
                    "  counted policies this version does not have: {}",
                    c.unknown_policies.join(", ")
                )?;
            }
        }
        Ok(())
    }
}
