//! The nftables applier (Linux).
//!
//! A bundle's `rules.nft` replaces `table inet ringfence` and nothing else
//! (`table …` / `delete table …` / `table … { }`, one `nft -f` transaction).
//! Before it is loaded the file is screened: every top-level statement must
//! name our table, and `ruleset` may not appear, so even a signed bundle
//! cannot flush or edit kube-proxy's or the CNI's tables. Text goes in, JSON
//! comes back (`nft -j list table inet ringfence`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::applier::{Applier, ApplyError};
use crate::exec::{Cmd, Runner};
use crate::live::{LiveChain, LiveRule, LiveSet, Snapshot, normalise};

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
                format!("`{cmd}` failed: {}", out.stderr_text()),
            ))
        }
    }
}

/// Refuse a rules file that touches anything but our table.
pub fn screen(text: &str) -> Result<(), String> {
    const VERBS: &[&str] = &[
        "add", "create", "insert", "replace", "delete", "destroy", "flush", "reset", "list",
    ];
    let mut depth = 0usize;
    for (n, line) in text.lines().enumerate() {
        let code = strip_comment(line);
        let at = |why: String| Err(format!("{RULES_FILE} line {}: {why}", n + 1));
        if code.split_whitespace().any(|t| t == "ruleset") {
            return at("`ruleset` would reach beyond table inet ringfence".into());
        }
        // Split the line at `{`, `}` and `;`: each piece outside braces is a
        // top-level statement (or a block header) and must name our table.
        let mut piece = String::new();
        for c in code.chars().chain(std::iter::once(';')) {
            if !matches!(c, '{' | '}' | ';') {
                piece.push(c);
                continue;
            }
            let toks: Vec<&str> = piece.split_whitespace().collect();
            if depth == 0 && !toks.is_empty() {
                let ours =
                    |i: usize| toks.get(i) == Some(&FAMILY) && toks.get(i + 1) == Some(&TABLE);
                let ok = match toks[0] {
                    "define" => true,
                    "table" => ours(1),
                    v if VERBS.contains(&v) => ours(2),
                    _ => false,
                };
                if !ok {
                    return at(format!(
                        "`{}` does not name table {FAMILY} {TABLE}, the only one the agent may change",
                        piece.trim()
                    ));
                }
            }
            piece.clear();
            match c {
                '{' => depth += 1,
                '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    Ok(())
}

/// A line without its `#` comment (a `#` inside a quoted string stays).
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

/// One object of `nft -j` output; other kinds (metainfo, table) are skipped.
#[derive(Deserialize)]
struct Item {
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
#[derive(Deserialize)]
struct Named {
    name: String,
    #[serde(default)]
    elem: Vec<Element>,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
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

/// A set element as nft writes it.
struct Element(String);

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(|v| Element(element(&v)))
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
                    elements: s.elem.into_iter().map(|e| e.0).collect(),
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
        let path = dir.join(RULES_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ApplyError::clean("check", format!("{}: {e}", path.display())))?;
        screen(&text).map_err(|e| ApplyError::clean("check", e))?;
        self.nft("check", &["-c", "-f", &path.to_string_lossy()])
            .map(drop)
    }

    fn apply(&self, dir: &Path, _generation: u64) -> Result<(), ApplyError> {
        // One transaction: on failure the kernel keeps the previous table.
        self.nft("apply", &["-f", &dir.join(RULES_FILE).to_string_lossy()])
            .map(drop)
    }

    fn read(&self) -> Result<Option<Snapshot>, ApplyError> {
        let cmd = Cmd::new("nft", ["-j", "list", "table", FAMILY, TABLE]);
        let out = self
            .runner
            .run(&cmd)
            .map_err(|e| ApplyError::clean("read", e.to_string()))?;
        if !out.success() {
            let msg = out.stderr_text();
            if msg.contains("No such file or directory") {
                return Ok(None);
            }
            return Err(ApplyError::clean("read", format!("`{cmd}` failed: {msg}")));
        }
        parse_listing(&out.stdout)
            .map(Some)
            .map_err(|e| ApplyError::clean("read", e))
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
    fn screen_accepts_our_table_only() {
        assert!(screen(INITIAL_DENY).is_ok());
        assert!(screen("define X = 1\nadd element inet ringfence s { 1.2.3.4 }\n").is_ok());
        let bad = [
            "flush ruleset\n",
            "table ip kube-proxy\ndelete table ip kube-proxy\n",
            "table inet ringfence {\n}\nadd rule ip filter input drop\n",
            "include \"/etc/x.nft\"\n",
        ];
        for b in bad {
            let e = screen(b).unwrap_err();
            assert!(e.starts_with("rules.nft line"), "{e}");
        }
        // Inside our table anything goes, and comments do not count.
        assert!(
            screen(
                "table inet ringfence {\n chain c { counter comment \"a # b\" } # table ip x\n}\n"
            )
            .is_ok()
        );
        // A block closed and another opened on one line is still seen.
        assert!(screen("table inet ringfence { } table ip filter { }\n").is_err());
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
            s.sets[0].elements,
            ["10.0.1.0/24", "10.0.2.5", "10.0.3.1-10.0.3.9"]
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
