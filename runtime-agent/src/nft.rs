//! The nftables applier (Linux).
//!
//! A bundle's `rules.nft` replaces `table inet ringfence` and nothing else
//! (`table …` / `delete table …` / `table … { }`, one `nft -f` transaction).
//! Two guards keep even a signed bundle inside our table:
//!
//! - before: the staged file passes [`ringfence_nft::screen`] (verification
//!   already ran it; it runs again on the exact bytes `nft` will read), so
//!   `include`, variables, other families or tables never reach `nft`;
//! - after: what `nft -j list ruleset` shows **outside** our table is
//!   compared with its listing from just before the load; any difference
//!   fails the apply loudly (the agent rolls back and reports `failed`).
//!
//! Text goes in, JSON comes back (`nft -j list table inet ringfence`,
//! including the table's own flags, so `dormant` is drift). `nft`'s error
//! output reaches logs and reports only through [`nft_errors`]: its own
//! `Error:` lines, capped and with control characters escaped.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::Path;

use ringfence_nft::membership;
use ringfence_schema::ir::NodeIr;
use ringfence_schema::membership::Membership;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::applier::{Applier, ApplyError};
use crate::exec::{Cmd, Runner};
use crate::live::{Element, Elements, LiveChain, LiveRule, LiveSet, Snapshot, normalise};

/// Our table's family.
pub const FAMILY: &str = "inet";
/// Our table's name.
pub const TABLE: &str = "ringfence";
/// The rules file of a Linux bundle.
pub const RULES_FILE: &str = "rules.nft";

/// The table installed by `--initial deny` before any bundle: forwarded
/// (pod) traffic is dropped, the node's own traffic (input/output, so the
/// agent's fetches) is not touched.
pub const INITIAL_DENY: &str = "\
table inet ringfence
delete table inet ringfence
table inet ringfence {
    chain forward {
        type filter hook forward priority filter; policy drop;
        counter drop comment \"ringfence-initial-deny\"
    }
}
";

/// Applies `rules.nft` with the `nft` tool.
pub struct NftApplier<R: Runner> {
    runner: R,
}

impl<R: Runner> NftApplier<R> {
    /// An applier running `nft` through `runner`.
    pub fn new(runner: R) -> Self {
        NftApplier { runner }
    }

    /// The runner (for its timing).
    pub fn runner(&self) -> &R {
        &self.runner
    }

    fn nft(&self, step: &'static str, args: &[&str]) -> Result<Vec<u8>, ApplyError> {
        let cmd = Cmd::new("nft", args);
        let out = self
            .runner
            .run(&cmd)
            .map_err(|e| ApplyError::clean(step, e.to_string()))?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(ApplyError::clean(
                step,
                format!("`{cmd}` failed: {}", nft_errors(&out.stderr)),
            ))
        }
    }

    /// Everything outside our table, by object.
    fn foreign(&self, step: &'static str) -> Result<Foreign, ApplyError> {
        let json = self.nft(step, &["-j", "list", "ruleset"])?;
        foreign_objects(&json).map_err(|e| ApplyError::clean(step, e))
    }
}

/// What nft said went wrong, fit for a log line and a report: only its
/// `Error:` lines and `ip netns exec`'s `Cannot …` lines (never the echoed
/// input, which could be any file's content), at most three, each at most
/// 200 characters, control characters escaped.
pub fn nft_errors(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("Error:") || l.contains(": Error:") || l.starts_with("Cannot "))
        .take(3)
        .map(|l| {
            // `/path/rules.nft:3:5-9: Error: …`: keep the position, not the path.
            let l = match l.split_once(": Error:") {
                Some((at, rest)) => {
                    let mut pos: Vec<&str> = at.rsplit(':').take(2).collect();
                    pos.reverse();
                    format!("line {}: Error:{rest}", pos.join(":"))
                }
                None => l.to_string(),
            };
            l.chars()
                .take(200)
                .flat_map(|c| {
                    let esc: Vec<char> = if c.is_control() {
                        c.escape_default().collect()
                    } else {
                        vec![c]
                    };
                    esc
                })
                .collect::<String>()
        })
        .collect();
    if lines.is_empty() {
        lines.push(format!(
            "nft failed ({} bytes on stderr, none an `Error:` line)",
            stderr.len()
        ));
    }
    lines.join("; ")
}

/// The objects of a ruleset outside `table inet ringfence`: a key naming
/// each (`chain ip filter input`, `rule ip filter input #3`) and a hash of
/// its canonical JSON (handles, counter values and quota use left out).
pub type Foreign = BTreeMap<String, u64>;

/// Parse `nft -j list ruleset` into [`Foreign`].
pub fn foreign_objects(json: &[u8]) -> Result<Foreign, String> {
    #[derive(Deserialize)]
    struct All {
        nftables: Vec<BTreeMap<String, Value>>,
    }
    let all: All = serde_json::from_slice(json).map_err(|e| format!("nft -j output: {e}"))?;
    let mut out = Foreign::new();
    let mut rules: BTreeMap<String, usize> = BTreeMap::new();
    for item in all.nftables {
        for (kind, v) in item {
            if kind == "metainfo" {
                continue;
            }
            let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
            let family = field("family");
            let table = if kind == "table" {
                field("name")
            } else {
                field("table")
            };
            if family == FAMILY && table == TABLE {
                continue;
            }
            let key = if kind == "rule" {
                let chain = format!("rule {family} {table} {}", field("chain"));
                let n = rules.entry(chain.clone()).or_default();
                *n += 1;
                format!("{chain} #{n}")
            } else if kind == "table" {
                format!("table {family} {table}")
            } else {
                format!("{kind} {family} {table} {}", field("name"))
            };
            let mut h = std::hash::DefaultHasher::new();
            strip_live(&v).to_string().hash(&mut h);
            out.insert(key, h.finish());
        }
    }
    Ok(out)
}

/// What changes without the ruleset changing: handles, counter values,
/// quota use, element expiry.
fn strip_live(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "handle" | "packets" | "bytes" | "used" | "expires"
                    )
                })
                .map(|(k, v)| (k.clone(), strip_live(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_live).collect()),
        _ => v.clone(),
    }
}

/// The objects that differ between two [`Foreign`] listings, named (at
/// most five, then a count).
pub fn foreign_changes(before: &Foreign, after: &Foreign) -> Vec<String> {
    let mut changed: Vec<String> = before
        .iter()
        .filter_map(|(k, h)| match after.get(k) {
            None => Some(format!("{k} removed")),
            Some(a) if a != h => Some(format!("{k} changed")),
            Some(_) => None,
        })
        .chain(
            after
                .keys()
                .filter(|k| !before.contains_key(*k))
                .map(|k| format!("{k} added")),
        )
        .collect();
    if changed.len() > 5 {
        let more = changed.len() - 5;
        changed.truncate(5);
        changed.push(format!("and {more} more"));
    }
    changed
}

/// One object of `nft -j` output; other kinds (metainfo) are skipped.
#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    table: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    chain: Option<Named>,
    #[serde(default)]
    set: Option<Named>,
    #[serde(default)]
    map: Option<Named>,
    #[serde(default)]
    rule: Option<RuleObj>,
}

/// A chain, set or map: its name, elements, and the rest as canonical JSON.
struct Named {
    name: String,
    elem: Elements,
    rest: BTreeMap<String, Value>,
}

/// Read field by field (not `#[serde(flatten)]`, which would first copy
/// the whole object, every element of a set of thousands included, into a
/// tree of its own): each element becomes an [`Element`] as it is read.
impl<'de> Deserialize<'de> for Named {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = Named;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a chain, set or map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Named, A::Error> {
                let (mut name, mut elem, mut rest) = (None, None, BTreeMap::new());
                while let Some(k) = map.next_key::<String>()? {
                    match k.as_str() {
                        "name" if name.is_none() => name = Some(map.next_value()?),
                        "elem" if elem.is_none() => {
                            elem = Some(map.next_value::<ListedAll>()?.0);
                        }
                        "name" => return Err(serde::de::Error::duplicate_field("name")),
                        "elem" => return Err(serde::de::Error::duplicate_field("elem")),
                        _ => {
                            rest.insert(k, map.next_value()?);
                        }
                    }
                }
                Ok(Named {
                    name: name.ok_or_else(|| serde::de::Error::missing_field("name"))?,
                    elem: elem.unwrap_or_default(),
                    rest,
                })
            }
        }
        d.deserialize_map(Fields)
    }
}

#[derive(Deserialize)]
struct RuleObj {
    chain: String,
    #[serde(default)]
    comment: Option<String>,
    expr: Expr,
}

/// A rule's statements, canonicalised as they are read so no tree of
/// thousands of rules is ever held at once.
struct Expr {
    text: String,
    packets: u64,
    bytes: u64,
}

impl<'de> Deserialize<'de> for Expr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let (packets, bytes) = counters(&v);
        Ok(Expr {
            text: normalise(&v).to_string(),
            packets,
            bytes,
        })
    }
}

/// A set's `elem` list, each element kept as it is read.
struct ListedAll(Elements);

impl<'de> Deserialize<'de> for ListedAll {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Elements::read_list(d, "a list of set elements", |Listed(e)| e).map(ListedAll)
    }
}

/// A set element as nft writes it: a string (an address, most of the
/// time) is read without building a JSON value.
struct Listed(Element);

impl Listed {
    /// An element that is not a plain string, as `parse_listing` writes it.
    fn of(v: Value) -> Listed {
        Listed(Element::parse(&element(&v)))
    }
}

impl<'de> Deserialize<'de> for Listed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
        struct Any;
        impl<'de> serde::de::Visitor<'de> for Any {
            type Value = Listed;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a set element")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Listed, E> {
                Ok(Listed(Element::parse(v)))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Listed, E> {
                Ok(Listed::of(v.into()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Listed, E> {
                Ok(Listed::of(v.into()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Listed, E> {
                Ok(Listed::of(v.into()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Listed, E> {
                Ok(Listed::of(v.into()))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Listed, E> {
                Ok(Listed::of(Value::Null))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Listed, A::Error> {
                Value::deserialize(SeqAccessDeserializer::new(seq)).map(Listed::of)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Listed, A::Error> {
                Value::deserialize(MapAccessDeserializer::new(map)).map(Listed::of)
            }
        }
        d.deserialize_any(Any)
    }
}

#[derive(Deserialize)]
struct Listing {
    nftables: Vec<Item>,
}

/// Turn `nft -j list table inet ringfence` output into a snapshot.
pub fn parse_listing(json: &[u8]) -> Result<Snapshot, String> {
    let listing: Listing =
        serde_json::from_slice(json).map_err(|e| format!("nft -j output: {e}"))?;
    let spec = |mut rest: BTreeMap<String, Value>| -> String {
        for k in ["family", "table", "handle"] {
            rest.remove(k);
        }
        normalise(&Value::Object(rest.into_iter().collect())).to_string()
    };
    let mut snap = Snapshot::default();
    for item in listing.nftables {
        if let Some(t) = item.table {
            // Its flags (`dormant` switches every rule off); nft 1.0.6 writes
            // the table's name as the value, so the key's presence counts.
            snap.table = Some(spec(t.into_iter().filter(|(k, _)| k != "name").collect()));
        }
        if let Some(c) = item.chain {
            snap.chains.push(LiveChain {
                name: c.name,
                spec: spec(c.rest),
                rules: Vec::new(),
            });
        }
        for (s, prefix) in [(item.set, ""), (item.map, "map:")] {
            if let Some(s) = s {
                snap.sets.push(LiveSet {
                    name: format!("{prefix}{}", s.name),
                    spec: spec(s.rest),
                    elements: s.elem,
                });
            }
        }
        if let Some(r) = item.rule {
            let rule = LiveRule {
                comment: r.comment,
                expr: r.expr.text,
                packets: r.expr.packets,
                bytes: r.expr.bytes,
            };
            match snap.chains.iter_mut().find(|c| c.name == r.chain) {
                Some(c) => c.rules.push(rule),
                None => {
                    return Err(format!(
                        "nft -j output: a rule before its chain `{}`",
                        r.chain
                    ));
                }
            }
        }
    }
    Ok(snap.sorted())
}

/// A set element as text.
fn element(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Array(kv) if kv.len() == 2 => format!("{} : {}", element(&kv[0]), element(&kv[1])),
        Value::Object(m) => {
            if let Some(p) = m.get("prefix") {
                format!("{}/{}", element(&p["addr"]), element(&p["len"]))
            } else if let Some(Value::Array(r)) = m.get("range") {
                r.iter().map(element).collect::<Vec<_>>().join("-")
            } else if let Some(e) = m.get("elem") {
                element(&e["val"])
            } else if let Some(Value::Array(c)) = m.get("concat") {
                c.iter().map(element).collect::<Vec<_>>().join(" . ")
            } else {
                normalise(v).to_string()
            }
        }
        _ => v.to_string(),
    }
}

/// Sum of the `counter` statements of a rule.
fn counters(expr: &Value) -> (u64, u64) {
    let mut t = (0, 0);
    if let Value::Array(stmts) = expr {
        for s in stmts {
            if let Some(c) = s.get("counter") {
                t.0 += c.get("packets").and_then(Value::as_u64).unwrap_or(0);
                t.1 += c.get("bytes").and_then(Value::as_u64).unwrap_or(0);
            }
        }
    }
    t
}

impl<R: Runner> Applier for NftApplier<R> {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn files(&self) -> &'static [&'static str] {
        &[RULES_FILE]
    }

    fn check(&self, dir: &Path) -> Result<(), ApplyError> {
        // `nft -f` is one transaction, so a file it rejects changes nothing:
        // no `nft -c` pass first. What it may contain is screened here.
        let path = dir.join(RULES_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ApplyError::clean("check", format!("{}: {e}", path.display())))?;
        ringfence_nft::screen(&text)
            .map_err(|e| ApplyError::clean("check", format!("{RULES_FILE} {e}")))
    }

    fn apply(&self, dir: &Path, _generation: u64) -> Result<(), ApplyError> {
        let before = self.foreign("apply")?;
        // One transaction: on failure the kernel keeps the previous table.
        self.nft("apply", &["-f", &dir.join(RULES_FILE).to_string_lossy()])?;
        let after = self
            .foreign("apply")
            .map_err(|e| ApplyError::dirty(e.step, e.message))?;
        let changed = foreign_changes(&before, &after);
        if changed.is_empty() {
            return Ok(());
        }
        Err(ApplyError::dirty(
            "outside",
            format!(
                "the ruleset outside table inet ringfence changed while {RULES_FILE} was loaded ({}): another program changed it at the same moment, or the file reached beyond our table",
                changed.join(", ")
            ),
        ))
    }

    fn read(&self) -> Result<Option<Snapshot>, ApplyError> {
        let cmd = Cmd::new("nft", ["-j", "list", "table", FAMILY, TABLE]);
        let out = self
            .runner
            .run(&cmd)
            .map_err(|e| ApplyError::clean("read", e.to_string()))?;
        if !out.success() {
            // nft's own answer for a missing table, and only that, means
            // "absent"; anything else (no such network namespace, nft not
            // runnable) is a failure to read.
            if out.stderr.starts_with(b"Error: No such file or directory") {
                return Ok(None);
            }
            return Err(ApplyError::clean(
                "read",
                format!("`{cmd}` failed: {}", nft_errors(&out.stderr)),
            ));
        }
        parse_listing(&out.stdout)
            .map(Some)
            .map_err(|e| ApplyError::clean("read", e))
    }

    fn apply_membership(
        &self,
        ir: &NodeIr,
        from: &Membership,
        to: &Membership,
    ) -> Result<(), ApplyError> {
        let text = membership::changes(ir, from, to);
        if text.is_empty() {
            return Ok(());
        }
        // Built here from verified documents; screened all the same, so
        // nothing but element changes of our table ever reaches `nft`.
        ringfence_nft::screen_elements(&text)
            .map_err(|e| ApplyError::clean("membership", format!("membership change {e}")))?;
        // One transaction: if nft refuses any element, nothing changes.
        let cmd = Cmd::new("nft", ["-f", "-"]).with_stdin(text.into_bytes());
        let out = self
            .runner
            .run(&cmd)
            .map_err(|e| ApplyError::clean("membership", e.to_string()))?;
        if out.success() {
            return Ok(());
        }
        Err(ApplyError::clean(
            "membership",
            format!("`{cmd}` failed: {}", nft_errors(&out.stderr)),
        ))
    }

    fn member_elements(&self, ir: &NodeIr, m: &Membership, put: &mut dyn FnMut(&str, Element)) {
        membership::for_each_element(ir, m, |container, e| match e {
            membership::Element::Address(a) => put(container, a.into()),
            membership::Element::Entry(key, None) => put(container, Element::parse(key)),
            // As `parse_listing` reads a verdict map's entry.
            membership::Element::Entry(key, Some(v)) => {
                let verdict = match v.split_once(' ') {
                    Some((kind, target)) => json!({ kind: { "target": target } }),
                    None => json!({ v: null }),
                };
                put(
                    &format!("map:{container}"),
                    Element::parse(&format!("{key} : {verdict}")),
                );
            }
        });
    }

    fn deny_files(&self) -> Result<Vec<(&'static str, &'static str)>, ApplyError> {
        Ok(vec![(RULES_FILE, INITIAL_DENY)])
    }

    fn tool_time(&self) -> std::time::Duration {
        self.runner.elapsed()
    }

    fn remove(&self) -> Result<(), ApplyError> {
        match self.read()? {
            None => Ok(()),
            Some(_) => self
                .nft("remove", &["delete", "table", FAMILY, TABLE])
                .map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_deny_passes_the_screen() {
        ringfence_nft::screen(INITIAL_DENY).unwrap();
    }

    #[test]
    fn nft_errors_keep_only_error_lines_escaped_and_capped() {
        let stderr = b"/tmp/x/rules.nft:2:5-11: Error: Could not open file \"/etc/shadow\"\ninclude \"/etc/shadow\"\nroot:$6$abc:19000:0:99999:7:::\n    ^^^^^\n";
        let e = nft_errors(stderr);
        assert_eq!(e, "line 2:5-11: Error: Could not open file \"/etc/shadow\"");
        assert!(!e.contains("root:"));
        let noisy = format!("Error: {}\u{1b}[2J\n", "x".repeat(500));
        let e = nft_errors(noisy.as_bytes());
        assert!(e.len() < 230 && !e.contains('\u{1b}'), "{e}");
        assert!(nft_errors(b"root:x:0:0\n").starts_with("nft failed (11 bytes"));
    }

    #[test]
    fn foreign_objects_ignore_ours_handles_and_counters() {
        let a = br#"{"nftables":[{"metainfo":{}},{"table":{"family":"ip","name":"victim","handle":1}},
          {"chain":{"family":"ip","table":"victim","name":"c","handle":1}},
          {"rule":{"family":"ip","table":"victim","chain":"c","handle":2,"expr":[{"counter":{"packets":1,"bytes":60}},{"accept":null}]}},
          {"table":{"family":"inet","name":"ringfence","handle":2}},
          {"chain":{"family":"inet","table":"ringfence","name":"forward","handle":3}}]}"#;
        let b = br#"{"nftables":[{"metainfo":{}},{"table":{"family":"ip","name":"victim","handle":1}},
          {"chain":{"family":"ip","table":"victim","name":"c","handle":1}},
          {"rule":{"family":"ip","table":"victim","chain":"c","handle":9,"expr":[{"counter":{"packets":7,"bytes":420}},{"accept":null}]}}]}"#;
        let (fa, fb) = (foreign_objects(a).unwrap(), foreign_objects(b).unwrap());
        assert_eq!(fa.len(), 3);
        assert!(foreign_changes(&fa, &fb).is_empty());
        let gone = foreign_objects(
            br#"{"nftables":[{"table":{"family":"ip","name":"victim","handle":1}}]}"#,
        )
        .unwrap();
        assert_eq!(
            foreign_changes(&fa, &gone),
            ["chain ip victim c removed", "rule ip victim c #1 removed"]
        );
    }

    #[test]
    fn listing_parses_sets_chains_rules_and_counters() {
        let json = br#"{"nftables":[{"metainfo":{"version":"1.0.6"}},
          {"table":{"family":"inet","name":"ringfence","handle":2}},
          {"set":{"family":"inet","name":"p","table":"ringfence","type":"ipv4_addr","handle":3,"flags":["interval"],
            "elem":[{"prefix":{"addr":"10.0.1.0","len":24}},"10.0.2.5",{"range":["10.0.3.1","10.0.3.9"]}]}},
          {"chain":{"family":"inet","table":"ringfence","name":"ing","handle":2}},
          {"rule":{"family":"inet","table":"ringfence","chain":"ing","handle":8,"comment":"r1",
            "expr":[{"counter":{"packets":3,"bytes":180}},{"accept":null}]}},
          {"rule":{"family":"inet","table":"ringfence","chain":"ing","handle":9,"comment":"r1",
            "expr":[{"counter":{"packets":1,"bytes":60}},{"accept":null}]}}]}"#;
        let s = parse_listing(json).unwrap();
        assert_eq!(
            s.sets[0].elements.iter().collect::<Vec<_>>(),
            [
                Element::V4("10.0.2.5".parse().unwrap()),
                Element::Text("10.0.1.0/24".into()),
                Element::Text("10.0.3.1-10.0.3.9".into()),
            ]
        );
        assert_eq!(s.chains[0].rules.len(), 2);
        assert_eq!(s.counters()["r1"], (4, 240));
        let stored = serde_json::to_string(&s).unwrap();
        assert!(
            !stored.contains("handle") && !stored.contains("180"),
            "{stored}"
        );
    }
}
