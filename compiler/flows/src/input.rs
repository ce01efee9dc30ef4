//! The input formats, how a file's format is told from its first lines, and
//! the per-line parser shared by the sequential and parallel readers.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::flow::Flow;
use crate::time::{MinuteCache, Timestamp};
use crate::window::Window;
use crate::{conntrack, hubble, jsonl};

/// A flow file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowFormat {
    /// ringfence JSON Lines: one [`ringfence_schema::flow::FlowRecord`] per line.
    Ringfence,
    /// `hubble observe -o json`: one event per line.
    Hubble,
    /// `conntrack -L [-o extended]` (or `conntrack -E`): one entry per line.
    Conntrack,
}

impl FlowFormat {
    /// Its name in messages and summaries.
    pub fn name(self) -> &'static str {
        match self {
            FlowFormat::Ringfence => "ringfence",
            FlowFormat::Hubble => "hubble",
            FlowFormat::Conntrack => "conntrack",
        }
    }

    /// What a line of this format looks like, for error messages.
    pub fn expected(self) -> &'static str {
        match self {
            FlowFormat::Ringfence => {
                "a ringfence flow record: one JSON object per line with src_ip, dst_ip, proto, \
                 dst_port, first_seen, last_seen (schema/docs/flows.md)"
            }
            FlowFormat::Hubble => {
                "a Hubble event: one JSON object per line as `hubble observe -o json` prints, \
                 {\"flow\": {\"time\": …, \"IP\": {…}, \"l4\": {…}, …}}"
            }
            FlowFormat::Conntrack => {
                "a conntrack entry as `conntrack -L -o extended` prints, like `ipv4 2 tcp 6 \
                 431999 ESTABLISHED src=10.244.1.5 dst=10.96.0.10 sport=44231 dport=53 … \
                 src=10.244.2.7 dst=10.244.1.5 sport=53 dport=44231 …`"
            }
        }
    }
}

impl fmt::Display for FlowFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one line turned out to be.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// A flow.
    Flow(Box<Flow>),
    /// The answer direction of a flow (Hubble `is_reply`): not a flow of its own.
    Reply,
    /// Not a flow: another kind of event, an unsupported protocol, a footer.
    Ignored,
    /// A flow that started outside the window read.
    Outside,
    /// An empty line.
    Blank,
}

/// State a parser keeps across lines.
#[derive(Debug, Default)]
pub(crate) struct ParseCtx {
    /// Time for records without one (conntrack listings).
    pub(crate) default_time: Option<Timestamp>,
    /// Flows that started outside it are counted, not returned.
    pub(crate) window: Window,
    strings: HashMap<Box<str>, Arc<str>>,
    /// The minute of the last time read.
    pub(crate) times: MinuteCache,
}

/// Node and service names repeat on every line: share one allocation each.
/// Beyond this many distinct names, strings are no longer shared.
const MAX_INTERNED: usize = 1 << 16;

impl ParseCtx {
    pub(crate) fn new(default_time: Option<Timestamp>, window: Window) -> Self {
        ParseCtx {
            default_time,
            window,
            strings: HashMap::new(),
            times: MinuteCache::default(),
        }
    }

    pub(crate) fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.strings.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        if self.strings.len() < MAX_INTERNED {
            self.strings.insert(Box::from(s), a.clone());
        }
        a
    }
}

/// Parse one line (without its newline) of a file in `format`.
pub(crate) fn parse_line(
    format: FlowFormat,
    line: &str,
    ctx: &mut ParseCtx,
) -> Result<Parsed, String> {
    if line.trim().is_empty() {
        return Ok(Parsed::Blank);
    }
    let mut parsed = match format {
        FlowFormat::Ringfence => jsonl::parse(line, ctx),
        FlowFormat::Hubble => hubble::parse(line, ctx),
        FlowFormat::Conntrack => conntrack::parse(line, ctx),
    }?;
    if let Parsed::Flow(f) = &mut parsed {
        f.normalize();
        if !ctx.window.contains(f.first_seen) {
            return Ok(Parsed::Outside);
        }
    }
    Ok(parsed)
}

/// How many lines detection looks at before giving up on blank lines and
/// Hubble or conntrack lines that say nothing (footers).
pub(crate) const DETECT_LINES: usize = 32;

/// What one line says about the format: `Ok(Some(f))` decides,
/// `Ok(None)` says nothing (blank line, conntrack footer), `Err` is a line
/// that matches no format.
pub(crate) fn detect_line(line: &str) -> Result<Option<FlowFormat>, String> {
    let t = line.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if t.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(t)
            .map_err(|e| format!("a line starting with `{{` that is not JSON ({e})"))?;
        let obj = v
            .as_object()
            .ok_or_else(|| "a JSON value that is not an object".to_string())?;
        if obj.contains_key("src_ip") {
            return Ok(Some(FlowFormat::Ringfence));
        }
        const HUBBLE: [&str; 7] = [
            "flow",
            "node_status",
            "lost_events",
            "agent_event",
            "debug_event",
            "IP",
            "l4",
        ];
        if HUBBLE.iter().any(|k| obj.contains_key(*k)) {
            return Ok(Some(FlowFormat::Hubble));
        }
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).take(6).collect();
        keys.sort_unstable();
        return Err(format!(
            "a JSON object with keys {} but neither `src_ip` (ringfence) nor `flow` (Hubble)",
            keys.join(", ")
        ));
    }
    if conntrack::is_footer(t) {
        return Ok(None);
    }
    if conntrack::looks_like(t) {
        return Ok(Some(FlowFormat::Conntrack));
    }
    let snippet: String = t.chars().take(60).collect();
    let more = if t.chars().count() > 60 { "…" } else { "" };
    Err(format!("`{snippet}{more}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_decides_or_explains() {
        assert_eq!(
            detect_line(r#"{"src_ip":"10.0.0.1","dst_ip":"10.0.0.2"}"#).unwrap(),
            Some(FlowFormat::Ringfence)
        );
        assert_eq!(
            detect_line(r#"{"flow":{"time":"2024-05-01T12:00:00Z"},"node_name":"n"}"#).unwrap(),
            Some(FlowFormat::Hubble)
        );
        assert_eq!(
            detect_line(r#"{"node_status":{"state":"NODE_CONNECTED"}}"#).unwrap(),
            Some(FlowFormat::Hubble)
        );
        assert_eq!(
            detect_line(
                "ipv4     2 tcp      6 431999 ESTABLISHED src=10.244.1.5 dst=10.96.0.10 \
                 sport=44231 dport=53 src=10.244.2.7 dst=10.244.1.5 sport=53 dport=44231"
            )
            .unwrap(),
            Some(FlowFormat::Conntrack)
        );
        assert_eq!(detect_line("   ").unwrap(), None);
        assert_eq!(
            detect_line("conntrack v1.4.6 (conntrack-tools): 3 flow entries have been shown.")
                .unwrap(),
            None
        );
        let e = detect_line(r#"{"level":"info","msg":"hello"}"#).unwrap_err();
        assert!(e.contains("keys level, msg"), "{e}");
        let e = detect_line("{not json").unwrap_err();
        assert!(e.contains("not JSON"), "{e}");
        let e = detect_line("Date,Source,Destination").unwrap_err();
        assert!(e.contains("`Date,Source,Destination`"), "{e}");
    }
}
