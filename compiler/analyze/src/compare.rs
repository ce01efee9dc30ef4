//! `--against`: conversations whose verdict differs between two versions,
//! grouped by workload pair, protocol and what decides before and after.

use std::collections::{BTreeMap, BTreeSet};

use ringfence_schema::net::Proto;

use crate::analysis::{Brief, ChangeGroup, Changes, Conversation, Judgement};

fn brief(j: &Judgement) -> Brief {
    Brief {
        verdict: j.verdict,
        passes: j.passes,
        egress: j.egress.policy_id().map(str::to_string),
        ingress: j.ingress.policy_id().map(str::to_string),
        node_hop: j
            .node_hop
            .as_ref()
            .and_then(|s| s.policy_id().map(str::to_string)),
    }
}

/// Whether a conversation's verdict differs between the two versions.
pub(crate) fn changed(c: &Conversation) -> bool {
    c.against.as_ref().is_some_and(|before| {
        before.verdict != c.judgement.verdict || before.passes != c.judgement.passes
    })
}

type GroupKey = (String, String, Proto, Brief, Brief);

#[derive(Default)]
struct Acc {
    ports: BTreeSet<u16>,
    conversations: u64,
    flows: u64,
    bytes: u64,
}

/// Group the changed conversations.
pub(crate) fn changes(conversations: &[Conversation]) -> Changes {
    let mut groups: BTreeMap<GroupKey, Acc> = BTreeMap::new();
    let mut out = Changes::default();
    for c in conversations.iter().filter(|c| changed(c)) {
        let Some(before) = &c.against else { continue };
        out.conversations += 1;
        out.flows += c.count.flows;
        let key = (
            c.from.clone(),
            c.to.clone(),
            c.proto,
            brief(before),
            brief(&c.judgement),
        );
        let g = groups.entry(key).or_default();
        g.ports.extend(c.port);
        g.conversations += 1;
        g.flows += c.count.flows;
        g.bytes += c.count.bytes;
    }
    out.groups = groups
        .into_iter()
        .map(|((from, to, proto, before, after), g)| ChangeGroup {
            from,
            to,
            proto,
            ports: g.ports.into_iter().collect(),
            before,
            after,
            conversations: g.conversations,
            flows: g.flows,
            bytes: g.bytes,
        })
        .collect();
    // Most flows first; the map order breaks ties.
    out.groups.sort_by_key(|g| std::cmp::Reverse(g.flows));
    out
}
