//! What is in force: a normalised snapshot of our table, and the pure
//! functions that compare it — with the IR after an apply ([`confirm`]),
//! with the snapshot taken then ([`diff`], drift), and read its counters.
//!
//! Appliers turn their read-back (`nft -j list table`, `Get-NetFirewallRule`)
//! into a [`Snapshot`]; nothing here knows which one it came from. Handles
//! and counter values are not part of a snapshot's identity: they are kept
//! out of comparisons and out of the copy stored in the state directory.
//! Expressions are kept as canonical compact JSON text (object keys sorted),
//! not as `serde_json::Value` trees: equal text means equal rules, and a
//! table of thousands of rules stays small in memory. Set elements, which
//! may be every pod of a cluster, are [`Element`]s: an address is held as
//! one (no text, no allocation), anything else as its text.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ringfence_schema::ir::NodeIr;
use ringfence_schema::report::Drift;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Our table as the kernel (or firewall) has it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The table itself (its flags), as canonical JSON; `None` where the
    /// backend has no such thing (and in snapshots of older agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Chains, sorted by name.
    pub chains: Vec<LiveChain>,
    /// Named sets, sorted by name.
    pub sets: Vec<LiveSet>,
}

/// One chain and its rules, in evaluation order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveChain {
    /// Chain name.
    pub name: String,
    /// Everything else about the chain (hook, priority, policy), as
    /// canonical JSON.
    pub spec: String,
    /// Rules in order.
    pub rules: Vec<LiveRule>,
}

/// One rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveRule {
    /// The rule's comment: the IR rule id for rules generated from the IR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// What it matches and does, as canonical JSON (no handles, no counter
    /// values).
    pub expr: String,
    /// Packets counted (not stored, not compared).
    #[serde(skip)]
    pub packets: u64,
    /// Bytes counted (not stored, not compared).
    #[serde(skip)]
    pub bytes: u64,
}

/// One named set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveSet {
    /// Set name.
    pub name: String,
    /// Type and flags, as canonical JSON.
    pub spec: String,
    /// Elements (`10.0.0.5`, `10.0.0.0/24`, `10.0.0.1-10.0.0.9`), sorted.
    pub elements: Elements,
}

/// One element of a set or map. An element that is exactly one address
/// (what live sets hold, thousands of them) is that address; any other (a
/// prefix, a range, a concatenation, a map entry with its verdict) is its
/// text. Both sides of a comparison are made by [`Element::parse`] (or
/// [`From<IpAddr>`], the same for an address), so equal elements are equal
/// values and different ones differ.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Element {
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 address.
    V6(Ipv6Addr),
    /// Anything else, as its text.
    Text(Box<str>),
}

impl Element {
    /// The element of this text: an address if it is exactly one.
    pub fn parse(text: &str) -> Self {
        match text.parse::<IpAddr>() {
            Ok(a) => a.into(),
            Err(_) => Element::Text(text.into()),
        }
    }
}

impl From<IpAddr> for Element {
    fn from(a: IpAddr) -> Self {
        match a {
            IpAddr::V4(a) => Element::V4(a),
            IpAddr::V6(a) => Element::V6(a),
        }
    }
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Element::V4(a) => a.fmt(f),
            Element::V6(a) => a.fmt(f),
            Element::Text(t) => f.write_str(t),
        }
    }
}

/// A set's elements by kind, each kind sorted by [`Elements::sort`]: IPv4
/// addresses in 4 bytes each, IPv6 in 16, the rest as text. (A set of
/// 60,000 pods is 240 KB here, against 3.4 MB as strings.) Stored and
/// shown as text, a list of strings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Elements {
    v4: Vec<Ipv4Addr>,
    v6: Vec<Ipv6Addr>,
    text: Vec<Box<str>>,
}

impl Elements {
    /// Add one (call [`Elements::sort`] before comparing).
    pub fn push(&mut self, e: Element) {
        match e {
            Element::V4(a) => self.v4.push(a),
            Element::V6(a) => self.v6.push(a),
            Element::Text(t) => self.text.push(t),
        }
    }

    /// Room for `v4` more IPv4 addresses and `v6` more IPv6 ones, exactly.
    pub fn reserve_exact(&mut self, v4: usize, v6: usize) {
        self.v4.reserve_exact(v4);
        self.v6.reserve_exact(v6);
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len() + self.text.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sort each kind, so equal sets compare equal.
    pub fn sort(&mut self) {
        self.v4.sort_unstable();
        self.v6.sort_unstable();
        self.text.sort_unstable();
    }

    /// Every element: IPv4 addresses, IPv6 addresses, then the others.
    pub fn iter(&self) -> impl Iterator<Item = Element> + '_ {
        self.v4
            .iter()
            .map(|a| Element::V4(*a))
            .chain(self.v6.iter().map(|a| Element::V6(*a)))
            .chain(self.text.iter().map(|t| Element::Text(t.clone())))
    }
}

impl<'a> FromIterator<&'a str> for Elements {
    /// Parsed ([`Element::parse`]) and sorted.
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Self {
        let mut out = Elements::default();
        for t in iter {
            out.push(Element::parse(t));
        }
        out.sort();
        out
    }
}

impl Serialize for Elements {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for a in &self.v4 {
            seq.serialize_element(&format_args!("{a}"))?;
        }
        for a in &self.v6 {
            seq.serialize_element(&format_args!("{a}"))?;
        }
        for t in &self.text {
            seq.serialize_element(t)?;
        }
        seq.end()
    }
}

impl Elements {
    /// Read a list of elements, each read as `E` (from its text, or as nft
    /// lists it) and taken out of it by `element`, in the order given.
    pub(crate) fn read_list<'de, D, E>(
        d: D,
        what: &'static str,
        element: fn(E) -> Element,
    ) -> Result<Elements, D::Error>
    where
        D: serde::Deserializer<'de>,
        E: Deserialize<'de>,
    {
        struct List<E>(&'static str, fn(E) -> Element);
        impl<'de, E: Deserialize<'de>> serde::de::Visitor<'de> for List<E> {
            type Value = Elements;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Elements, A::Error> {
                let mut out = Elements::default();
                while let Some(e) = seq.next_element::<E>()? {
                    out.push((self.1)(e));
                }
                Ok(out)
            }
        }
        d.deserialize_seq(List(what, element))
    }
}

impl<'de> Deserialize<'de> for Elements {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// One element read from its text.
        struct Text(Element);
        impl<'de> Deserialize<'de> for Text {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = Text;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a set element as text")
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text, E> {
                        Ok(Text(Element::parse(v)))
                    }
                }
                d.deserialize_str(V)
            }
        }
        let mut out = Elements::read_list(d, "a list of set elements as text", |Text(e)| e)?;
        out.sort();
        Ok(out)
    }
}

/// Remove what changes without the rules changing: handles and counter values.
pub fn normalise(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| k.as_str() != "handle")
                .map(|(k, v)| match (k.as_str(), v) {
                    ("counter", Value::Object(_)) => (k.clone(), Value::Null),
                    _ => (k.clone(), normalise(v)),
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalise).collect()),
        _ => v.clone(),
    }
}

impl Snapshot {
    /// Packets and bytes per rule comment, summed over the rules that carry it.
    pub fn counters(&self) -> BTreeMap<&str, (u64, u64)> {
        let mut out: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for r in self.chains.iter().flat_map(|c| &c.rules) {
            if let Some(c) = &r.comment {
                let e = out.entry(c.as_str()).or_default();
                e.0 += r.packets;
                e.1 += r.bytes;
            }
        }
        out
    }

    /// Every rule comment present.
    pub fn comments(&self) -> BTreeSet<&str> {
        self.chains
            .iter()
            .flat_map(|c| &c.rules)
            .filter_map(|r| r.comment.as_deref())
            .collect()
    }

    /// Sort chains and sets by name and set elements, so snapshots compare.
    pub fn sorted(mut self) -> Self {
        self.chains.sort_by(|a, b| a.name.cmp(&b.name));
        self.sets.sort_by(|a, b| a.name.cmp(&b.name));
        for s in &mut self.sets {
            s.elements.sort();
        }
        self
    }
}

/// Check a read-back right after an apply: every IR rule id is present as a
/// rule comment, and no other comment is. Returns what is wrong.
pub fn confirm(ir: &NodeIr, live: &Snapshot) -> Result<(), String> {
    // Every rule that can match something must be in the kernel, under its
    // id. (A rule whose peer set is empty matches nothing; backends may leave
    // it out. Other comments are the backend's own plumbing: dispatch,
    // established traffic, exposures.)
    let want: BTreeSet<&str> = ir
        .chains
        .iter()
        .flat_map(|c| &c.rules)
        .filter(|r| {
            r.peer
                .as_deref()
                .is_none_or(|s| ir.set(s).is_some_and(|s| !s.is_empty()))
        })
        .map(|r| r.id.as_str())
        .collect();
    let have = live.comments();
    let missing: Vec<&str> = want.difference(&have).copied().collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the table read back does not match the bundle's IR (rules missing: {})",
        list(&missing)
    ))
}

/// Most items named in one line of a report.
const LIST_MAX: usize = 8;

fn list(items: &[&str]) -> String {
    list_of(items, items.len())
}

/// The first items of a list of `total`, and how many more there are.
fn list_of(items: &[&str], total: usize) -> String {
    let mut s = items
        .iter()
        .take(LIST_MAX)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if total > LIST_MAX {
        s.push_str(&format!(" and {} more", total - LIST_MAX));
    }
    s
}

/// The elements of `want` not in `have` and those of `have` not in `want`
/// (each sorted and once), and how many there are in all: at most
/// [`LIST_MAX`] are named, gone ones first. Sorted kinds (what
/// [`Elements::sort`] makes) are walked side by side, nothing copied.
fn element_changes(want: &Elements, have: &Elements) -> (Vec<String>, usize) {
    let (mut gone, mut added) = (Differing::default(), Differing::default());
    walk(&want.v4, &have.v4, &mut gone, &mut added);
    walk(&want.v6, &have.v6, &mut gone, &mut added);
    walk(&want.text, &have.text, &mut gone, &mut added);
    let total = gone.count + added.count;
    let names = (gone.first.into_iter().map(|e| format!("-{e}")))
        .chain(added.first.into_iter().map(|e| format!("+{e}")))
        .take(LIST_MAX)
        .collect();
    (names, total)
}

/// Differing elements: how many, and the first few as text.
#[derive(Default)]
struct Differing {
    count: usize,
    first: Vec<String>,
}

impl Differing {
    fn add(&mut self, e: &dyn fmt::Display) {
        self.count += 1;
        if self.first.len() < LIST_MAX {
            self.first.push(e.to_string());
        }
    }
}

/// One kind of elements of both sides, in order: what only `want` has
/// goes to `gone`, what only `have` has to `added`, repeats once.
fn walk<T: Ord + fmt::Display>(
    want: &[T],
    have: &[T],
    gone: &mut Differing,
    added: &mut Differing,
) {
    // References (8 bytes each) only for a side that is not sorted.
    fn view<T: Ord>(v: &[T]) -> Box<dyn Iterator<Item = &T> + '_> {
        if v.is_sorted() {
            Box::new(v.iter())
        } else {
            let mut r: Vec<&T> = v.iter().collect();
            r.sort_unstable();
            Box::new(r.into_iter())
        }
    }
    let (mut w, mut h) = (view(want).peekable(), view(have).peekable());
    // The last element taken from either side: a repeat of it is not new.
    let mut last: Option<&T> = None;
    loop {
        let (taken, into) = match (w.peek(), h.peek()) {
            (Some(a), Some(b)) if a == b => {
                h.next();
                (w.next(), None)
            }
            (Some(a), Some(b)) if a < b => (w.next(), Some(&mut *gone)),
            (Some(_), None) => (w.next(), Some(&mut *gone)),
            (_, Some(_)) => (h.next(), Some(&mut *added)),
            (None, None) => break,
        };
        if let (Some(e), Some(into)) = (taken, into)
            && last != Some(e)
        {
            into.add(e);
        }
        last = taken;
    }
}

/// Key of a rule for drift: its comment (with `#n` for the n-th repeat in the
/// chain), or for a rule without comment its expression.
fn keyed(chain: &LiveChain) -> Vec<(String, &LiveRule)> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    chain
        .rules
        .iter()
        .map(|r| {
            let base = match &r.comment {
                Some(c) => c.clone(),
                None => format!("{{{}}}", r.expr),
            };
            let n = seen.entry(base.clone()).or_default();
            *n += 1;
            let key = if *n == 1 { base } else { format!("{base}#{n}") };
            (key, r)
        })
        .collect()
}

/// How drift names a rule: `rule CHAIN/COMMENT`, or `rule CHAIN@POS` (1-based)
/// for one without comment.
fn rule_name(chain: &str, key: &str, pos: usize) -> String {
    if key.starts_with('{') {
        format!("rule {chain}@{pos}")
    } else {
        format!("rule {chain}/{key}")
    }
}

/// What [`by_name`] pairs by.
trait ByName {
    fn name(&self) -> &str;
}

impl ByName for LiveChain {
    fn name(&self) -> &str {
        &self.name
    }
}

impl ByName for LiveSet {
    fn name(&self) -> &str {
        &self.name
    }
}

/// Pair `want` and `have` by name: one missing from `have` or extra in it
/// is `{what} {name}` in `d`; the pairs present in both are returned.
fn by_name<'a, T: ByName>(
    d: &mut Drift,
    what: &str,
    want: &'a [T],
    have: &'a [T],
) -> Vec<(&'a str, &'a T, &'a T)> {
    let index =
        |xs: &'a [T]| -> BTreeMap<&'a str, &'a T> { xs.iter().map(|x| (x.name(), x)).collect() };
    let (want, have) = (index(want), index(have));
    let mut both = Vec::new();
    for (&n, &w) in &want {
        match have.get(n) {
            None => d.missing.push(format!("{what} {n}")),
            Some(&h) => both.push((n, w, h)),
        }
    }
    for n in have.keys().filter(|n| !want.contains_key(*n)) {
        d.extra.push(format!("{what} {n}"));
    }
    both
}

/// Differences between the intended snapshot and the live one: missing,
/// extra and changed chains, rules (by comment, or chain position) and sets
/// (by name, with the elements that differ). Sorted.
pub fn diff<'a>(intended: &'a Snapshot, live: &'a Snapshot) -> Drift {
    let mut d = Drift::default();
    if intended.table.is_some() && intended.table != live.table {
        d.changed
            .push("table (flags: `dormant` switches every rule off)".into());
    }
    for (name, w, h) in by_name(&mut d, "chain", &intended.chains, &live.chains) {
        if w.spec != h.spec {
            d.changed
                .push(format!("chain {name} (type, hook or policy)"));
        }
        let (wk, hk) = (keyed(w), keyed(h));
        let hmap: BTreeMap<&str, (usize, &LiveRule)> = hk
            .iter()
            .enumerate()
            .map(|(i, (k, r))| (k.as_str(), (i, *r)))
            .collect();
        let wmap: BTreeMap<&str, usize> = wk
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.as_str(), i))
            .collect();
        let mut common_w = Vec::new();
        for (i, (k, r)) in wk.iter().enumerate() {
            match hmap.get(k.as_str()) {
                None => d.missing.push(rule_name(name, k, i + 1)),
                Some((_, hr)) => {
                    if hr.expr != r.expr {
                        d.changed.push(rule_name(name, k, i + 1));
                    } else {
                        common_w.push(k.as_str());
                    }
                }
            }
        }
        for (i, (k, _)) in hk.iter().enumerate() {
            if !wmap.contains_key(k.as_str()) {
                d.extra.push(rule_name(name, k, i + 1));
            }
        }
        // Same rules, other order: name the ones that moved.
        let common_h: Vec<&str> = hk
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| common_w.contains(k))
            .collect();
        for (a, b) in common_w.iter().zip(&common_h) {
            if a != b {
                d.changed
                    .push(format!("{} (moved)", rule_name(name, a, wmap[a] + 1)));
            }
        }
    }
    for (name, w, h) in by_name(&mut d, "set", &intended.sets, &live.sets) {
        if w.spec != h.spec {
            d.changed.push(format!("set {name} (type or flags)"));
        }
        let (names, total) = element_changes(&w.elements, &h.elements);
        if total > 0 {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            d.changed
                .push(format!("set {name} elements {}", list_of(&names, total)));
        }
    }
    d.missing.sort();
    d.extra.sort();
    d.changed.sort();
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(comment: Option<&str>, expr: Value) -> LiveRule {
        LiveRule {
            comment: comment.map(str::to_string),
            expr: expr.to_string(),
            packets: 0,
            bytes: 0,
        }
    }

    fn snap() -> Snapshot {
        Snapshot {
            table: None,
            chains: vec![LiveChain {
                name: "ing".into(),
                spec: "{}".into(),
                rules: vec![
                    rule(None, json!(["ct"])),
                    rule(Some("a"), json!(["v4", "accept"])),
                    rule(Some("a"), json!(["v6", "accept"])),
                    rule(Some("z"), json!(["drop"])),
                ],
            }],
            sets: vec![LiveSet {
                name: "peers".into(),
                spec: json!({"type": "ipv4_addr"}).to_string(),
                elements: ["10.0.0.1", "10.0.1.0/24"].into_iter().collect(),
            }],
        }
    }

    #[test]
    fn identical_snapshots_have_no_drift() {
        assert!(diff(&snap(), &snap()).is_empty());
    }

    #[test]
    fn hand_edits_are_named() {
        let mut live = snap();
        let c = &mut live.chains[0];
        c.rules
            .insert(1, rule(None, json!(["saddr", "1.2.3.4", "accept"])));
        c.rules[3].expr = json!(["v6", "drop"]).to_string(); // the second "a"
        c.rules.pop(); // "z"
        live.sets[0].elements = ["10.0.1.0/24", "10.9.9.9"].into_iter().collect();
        live.sets.push(LiveSet {
            name: "evil".into(),
            ..Default::default()
        });
        let d = diff(&snap(), &live);
        assert_eq!(d.missing, ["rule ing/z"]);
        assert_eq!(d.extra, ["rule ing@2", "set evil"]);
        assert_eq!(
            d.changed,
            ["rule ing/a#2", "set peers elements -10.0.0.1, +10.9.9.9"]
        );
    }

    #[test]
    fn table_flags_are_a_change() {
        let mut want = snap();
        want.table = Some("{}".into());
        let mut live = want.clone();
        live.table = Some(json!({"flags": "ringfence"}).to_string());
        assert_eq!(diff(&want, &live).changed.len(), 1);
        // A snapshot without a table (an older agent's) compares nothing.
        assert!(diff(&snap(), &live).is_empty());
    }

    #[test]
    fn reordering_is_a_change() {
        let mut live = snap();
        live.chains[0].rules.swap(0, 3);
        let d = diff(&snap(), &live);
        assert!(d.missing.is_empty() && d.extra.is_empty(), "{d:?}");
        assert!(d.changed.iter().all(|c| c.ends_with("(moved)")), "{d:?}");
        assert!(!d.changed.is_empty());
    }

    #[test]
    fn normalise_drops_handles_and_counter_values() {
        let v = json!({"handle": 3, "expr": [{"counter": {"packets": 5, "bytes": 9}}, {"counter": "named"}]});
        assert_eq!(
            normalise(&v),
            json!({"expr": [{"counter": null}, {"counter": "named"}]})
        );
    }
}
