//! The HTML report: one self-contained page (inline CSS, SVG and script;
//! nothing is fetched) with the outcome totals, a chart of outcomes over time,
//! the scope-to-scope graph (a matrix past [`GRAPH_SCOPES`] scopes), a
//! workload-to-workload view, the conversations, and the tables of escaped
//! and misdropped conversations, policy conditions, changes and compliance.
//!
//! Every table sorts by a click on a column and filters by the words typed
//! above it. A graph edge, a matrix cell or a workload pair links to the
//! conversations behind it: the link's fragment (`#t=TABLE&fs=FROM-SCOPE&
//! ts=TO-SCOPE`, or `fw`/`tw` for workloads, `q` for words, `sort`/`dir` for
//! a column) is the whole state, so a drill-down can be bookmarked and sent.
//! Without script the page shows everything, unsorted and unfiltered.
//!
//! Every number shown is in the [`Analysis`] the JSON output prints; the
//! page adds no clock and no randomness, so the same analysis gives the same
//! bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::analysis::{Analysis, Condition, Conversation, PolicyStats};
use crate::outcome::Outcome;
use crate::text::{deciding, rank_name, service};

/// Rows of each table before it is cut (the JSON output has everything).
pub const TABLE_ROWS: usize = 200;
/// Rows of the workload and conversation tables, which drill-downs filter.
pub const DRILL_ROWS: usize = 2000;
/// Conversations kept per scope pair before [`DRILL_ROWS`] cuts, so every
/// edge drills down to its largest conversations.
pub const PER_PAIR: usize = 25;
/// Scopes drawn as a circle graph; more become a matrix, which stays readable.
pub const GRAPH_SCOPES: usize = 20;

/// The colour of an outcome.
fn colour(o: Outcome) -> &'static str {
    match o {
        Outcome::Permitted => "#2e7d32",
        Outcome::Escaped => "#ef6c00",
        Outcome::Rejected => "#c62828",
        Outcome::Misdropped => "#6a1b9a",
        Outcome::Allowed => "#81c784",
        Outcome::WouldBlock => "#e57373",
    }
}

/// How an outcome reads in a sentence.
fn meaning(o: Outcome) -> &'static str {
    match o {
        Outcome::Permitted => "network allowed, policy allows",
        Outcome::Escaped => "network allowed, policy would deny",
        Outcome::Rejected => "network dropped, policy denies",
        Outcome::Misdropped => "network dropped, policy would allow",
        Outcome::Allowed => "no network verdict, policy allows",
        Outcome::WouldBlock => "no network verdict, enforcing would block",
    }
}

/// Escape text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes in a readable unit.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A byte count cell: readable, sorted by the exact number.
fn bytes_td(n: u64) -> String {
    format!("<td class=\"num\" data-v=\"{n}\">{}</td>", bytes(n))
}

/// Percent-encode for a URL fragment parameter (what `URLSearchParams` decodes).
fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The link to the conversations between two scopes (`s`) or workloads (`w`).
fn drill(kind: char, from: &str, to: &str) -> String {
    format!(
        "#t=table-conversations&amp;f{kind}={}&amp;t{kind}={}",
        pct(from),
        pct(to)
    )
}

/// A sortable, filterable table's tools and head. `heads` are column names,
/// a leading `#` marking a numeric column (right-aligned).
fn table_open(h: &mut String, id: &str, rows: usize, heads: &[&str]) {
    let _ = write!(
        h,
        "<div class=\"tools\"><input type=\"search\" id=\"{id}-filter\" \
         placeholder=\"filter rows: words, all must match\" aria-label=\"filter rows\">\
         <span class=\"note\"><span id=\"{id}-shown\">{rows}</span> row(s) shown; \
         click a column to sort</span>\
         <span class=\"drill\" id=\"{id}-drill\" hidden>showing <b></b> · \
         <a href=\"#t={id}\">show all</a></span></div>\n\
         <table id=\"{id}\" data-table><thead><tr>"
    );
    for head in heads {
        match head.strip_prefix('#') {
            Some(n) => {
                let _ = write!(h, "<th class=\"num\" data-sort>{n}</th>");
            }
            None => {
                let _ = write!(h, "<th data-sort>{head}</th>");
            }
        }
    }
    h.push_str("</tr></thead><tbody>\n");
}

fn table_close(h: &mut String) {
    h.push_str("</tbody></table>\n");
}

const STYLE: &str = r#"
:root { --fg: #1d2433; --muted: #5b6474; --line: #d8dde6; --bg: #f6f7f9; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 48px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--fg); background: #fff; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
p.sub { margin: 0; color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(6, minmax(130px, 1fr)); gap: 12px; margin-top: 20px; }
.card { border: 1px solid var(--line); border-top: 6px solid; border-radius: 6px; padding: 10px 12px; background: var(--bg); }
.card .label { font-weight: 600; text-transform: capitalize; }
.card .n { display: block; font-size: 26px; font-weight: 700; font-variant-numeric: tabular-nums; }
.card .meta { color: var(--muted); font-size: 12px; }
table { border-collapse: collapse; width: 100%; margin-top: 8px; font-size: 13px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--bg); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
.legend { display: flex; flex-wrap: wrap; gap: 16px; margin: 6px 0; color: var(--muted); font-size: 12px; }
.legend span { display: inline-flex; align-items: center; gap: 6px; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; }
.note { color: var(--muted); font-size: 12px; }
.tag { display: inline-block; padding: 0 6px; border-radius: 10px; font-size: 12px; background: #eef1f5; margin-right: 4px; }
.tag.escaped { background: #ffe6cc; } .tag.misdropped { background: #efe0f7; }
.tag.no-traffic { background: #eef1f5; } .tag.overshadowed { background: #fde2e2; } .tag.broad { background: #fff4c2; }
svg text { font: 11px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; fill: var(--fg); }
svg .axis { stroke: var(--muted); stroke-width: 1; }
svg .grid { stroke: var(--line); stroke-width: 1; }
svg a:hover path { stroke-opacity: 1; stroke-width: 6; }
.tools { display: flex; gap: 12px; align-items: center; margin-top: 8px; }
.tools input { font: inherit; padding: 3px 8px; width: 280px; border: 1px solid var(--line); border-radius: 4px; }
.tools .drill { background: #e3f2fd; border-radius: 10px; padding: 1px 8px; }
.tools .drill[hidden] { display: none; }
th[data-sort] { cursor: pointer; user-select: none; }
th[aria-sort=ascending]::after { content: " \25B2"; } th[aria-sort=descending]::after { content: " \25BC"; }
tr[hidden] { display: none; }
a.pair { color: inherit; text-decoration: none; } a.pair:hover { text-decoration: underline; }
.scroll { overflow: auto; max-height: 900px; border: 1px solid var(--line); margin-top: 8px; }
table.matrix { width: auto; border-collapse: separate; border-spacing: 1px; font-size: 11px; margin: 0; }
table.matrix th { position: sticky; background: #fff; white-space: nowrap; padding: 2px 4px; border: 0; font-weight: 500; }
table.matrix thead th { top: 0; z-index: 1; vertical-align: bottom; }
table.matrix thead th span { display: inline-block; writing-mode: vertical-rl; transform: rotate(180deg); max-height: 160px; overflow: hidden; text-overflow: ellipsis; }
table.matrix tbody th { left: 0; text-align: right; }
table.matrix td { width: 16px; height: 16px; min-width: 16px; padding: 0; border: 0; background: #f1f3f6; }
table.matrix td a { display: block; width: 100%; height: 100%; }
"#;

/// Sorting, filtering and drill-down. Reads nothing but the page and its
/// fragment; without it the page is complete, just static.
const SCRIPT: &str = r#"
(function () {
  function rows(t) { return Array.prototype.slice.call(t.tBodies[0].rows); }
  function key(td) {
    if (td.hasAttribute('data-v')) return Number(td.getAttribute('data-v'));
    var text = td.textContent.trim(), n = Number(text.replace(/,/g, ''));
    return text !== '' && !isNaN(n) ? n : text.toLowerCase();
  }
  function sort(t, col, dir) {
    var th = t.tHead.rows[0].cells[col]; if (!th) return;
    var r = rows(t), sign = dir === 'asc' ? 1 : -1;
    r.sort(function (a, b) { var x = key(a.cells[col]), y = key(b.cells[col]); return x < y ? -sign : x > y ? sign : 0; });
    r.forEach(function (row) { t.tBodies[0].appendChild(row); });
    Array.prototype.forEach.call(t.tHead.rows[0].cells, function (c) { c.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', dir === 'asc' ? 'ascending' : 'descending');
  }
  function filter(t, words, attrs) {
    var shown = 0;
    rows(t).forEach(function (row) {
      var text = row.textContent.toLowerCase(), ok = words.every(function (w) { return text.indexOf(w) >= 0; });
      for (var k in attrs) if (row.getAttribute('data-' + k) !== attrs[k]) ok = false;
      if (ok) { row.removeAttribute('hidden'); shown++; } else row.setAttribute('hidden', '');
    });
    var n = document.getElementById(t.id + '-shown'); if (n) n.textContent = shown;
  }
  function words(input) { return input.value.toLowerCase().split(/\s+/).filter(Boolean); }
  var drills = {};
  document.querySelectorAll('table[data-table]').forEach(function (t) {
    var input = document.getElementById(t.id + '-filter');
    if (input) input.addEventListener('input', function () { filter(t, words(input), drills[t.id] || {}); });
    Array.prototype.forEach.call(t.tHead.rows[0].cells, function (th, col) {
      if (!th.hasAttribute('data-sort')) return;
      th.addEventListener('click', function () {
        sort(t, col, th.getAttribute('aria-sort') === 'descending' ? 'asc' : 'desc');
      });
    });
  });
  function fromHash() {
    var p = new URLSearchParams(location.hash.slice(1)), id = p.get('t');
    var t = id && document.getElementById(id); if (!t || !t.hasAttribute('data-table')) return;
    var attrs = {}, label = [];
    ['fs', 'ts', 'fw', 'tw'].forEach(function (k) { if (p.has(k)) attrs[k] = p.get(k); });
    drills[t.id] = attrs;
    var from = attrs.fw || attrs.fs, to = attrs.tw || attrs.ts;
    var chip = document.getElementById(t.id + '-drill');
    if (chip) {
      chip.hidden = from === undefined && to === undefined;
      chip.querySelector('b').textContent = (from || 'any') + ' \u2192 ' + (to || 'any');
    }
    var input = document.getElementById(t.id + '-filter');
    if (input && p.has('q')) input.value = p.get('q');
    filter(t, input ? words(input) : [], attrs);
    if (p.has('sort')) sort(t, Number(p.get('sort')), p.get('dir') === 'asc' ? 'asc' : 'desc');
    t.scrollIntoView();
  }
  window.addEventListener('hashchange', fromHash);
  fromHash();
})();
"#;

/// Render the analysis as one self-contained HTML page.
pub fn render(a: &Analysis) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let title = format!("ringfence analysis of {}", a.version);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        esc(&title)
    );
    header(&mut h, a);
    cards(&mut h, a);
    chart(&mut h, a);
    graph(&mut h, a);
    workloads(&mut h, a);
    conversations(&mut h, a);
    unexpected(&mut h, a, Outcome::Escaped);
    unexpected(&mut h, a, Outcome::Misdropped);
    conditions(&mut h, a);
    hits(&mut h, a);
    changes(&mut h, a);
    compliance(&mut h, a);
    h.push_str(
        "<p class=\"note\" style=\"margin-top:32px\">Written by <code>ringfence analyze</code>. \
         Verdicts come from the compiled policy the per-node IRs are cut from \
         (the matcher of <code>ringfence explain</code>).</p>\n",
    );
    let _ = write!(h, "<script>{SCRIPT}</script>\n</body>\n</html>\n");
    h
}

fn header(h: &mut String, a: &Analysis) {
    let _ = writeln!(h, "<h1>Policy analysis</h1>");
    let mut sub = format!("Version <code>{}</code>", esc(&a.version));
    if let Some(b) = &a.against {
        let _ = write!(sub, " compared with <code>{}</code>", esc(b));
    }
    let _ = write!(
        sub,
        " · <span id=\"total-flows\">{}</span> flows in {} conversations",
        thousands(a.totals.all.flows),
        thousands(a.totals.conversations)
    );
    if let (Some(f), Some(l)) = (&a.input.first_seen, &a.input.last_seen) {
        let _ = write!(sub, " · {} to {}", esc(f), esc(l));
    }
    let _ = writeln!(h, "<p class=\"sub\">{sub}</p>");
    let files: Vec<String> = a
        .input
        .files
        .iter()
        .map(|f| {
            format!(
                "<code>{}</code> ({}, {} flows{})",
                esc(&f.path),
                esc(f.format.as_deref().unwrap_or("empty")),
                thousands(f.flows),
                if f.unreadable > 0 {
                    format!(", {} unreadable lines", thousands(f.unreadable))
                } else {
                    String::new()
                }
            )
        })
        .collect();
    if !files.is_empty() {
        let _ = writeln!(h, "<p class=\"note\">Flows from {}.</p>", files.join(", "));
    }
}

fn cards(h: &mut String, a: &Analysis) {
    let total = a.totals.all.flows.max(1);
    h.push_str("<div class=\"cards\">\n");
    for (o, c) in &a.totals.outcomes {
        let _ = writeln!(
            h,
            "<div class=\"card\" style=\"border-top-color:{}\" data-outcome=\"{o}\">\
             <span class=\"label\">{}</span>\
             <span class=\"n\" id=\"total-{o}\">{}</span>\
             <span class=\"meta\">{:.1}% · {}<br>{}</span></div>",
            colour(*o),
            o.as_str().replace('-', " "),
            thousands(c.flows),
            c.flows as f64 * 100.0 / total as f64,
            bytes(c.bytes),
            meaning(*o),
        );
    }
    h.push_str("</div>\n");
}

fn legend(h: &mut String, outcomes: &[Outcome]) {
    h.push_str("<div class=\"legend\">");
    for o in outcomes {
        let _ = write!(
            h,
            "<span><i class=\"swatch\" style=\"background:{}\"></i>{o}</span>",
            colour(*o)
        );
    }
    h.push_str("</div>\n");
}

/// `2024-05-01T12:00:00Z` → `05-01 12:00`.
fn short_time(t: &str) -> String {
    match (t.get(5..10), t.get(11..16)) {
        (Some(d), Some(hm)) => format!("{d} {hm}"),
        _ => t.to_string(),
    }
}

fn chart(h: &mut String, a: &Analysis) {
    let _ = writeln!(h, "<h2>Outcomes over time</h2>");
    let buckets = &a.timeline.buckets;
    if buckets.is_empty() {
        h.push_str("<p class=\"note\">No flows.</p>\n");
        return;
    }
    let _ = writeln!(
        h,
        "<p class=\"note\">Flows by the minute they were first seen, in buckets of {}.</p>",
        duration(a.timeline.bucket_seconds)
    );
    legend(h, &Outcome::ALL);
    let (w, ht, left, right, top, bottom) = (1000.0, 260.0, 64.0, 12.0, 10.0, 36.0);
    let plot_w = w - left - right;
    let plot_h = ht - top - bottom;
    let highest = buckets
        .iter()
        .map(|b| b.flows.values().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    // Round grid lines: a step of 1, 2 or 5 times a power of ten.
    let step = nice_step(highest.div_ceil(4));
    let max = highest.div_ceil(step) * step;
    let _ = writeln!(
        h,
        "<svg id=\"timeline\" viewBox=\"0 0 {w} {ht}\" width=\"100%\" role=\"img\" \
         aria-label=\"flows per outcome over time\">"
    );
    for i in 0..=max / step {
        let v = i * step;
        let y = top + plot_h - plot_h * v as f64 / max as f64;
        let _ = writeln!(
            h,
            "<line class=\"grid\" x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            w - right,
            left - 6.0,
            y + 4.0,
            thousands(v)
        );
    }
    let slot = plot_w / buckets.len() as f64;
    let bar = (slot * 0.8).max(1.0);
    for (i, b) in buckets.iter().enumerate() {
        let x = left + slot * i as f64 + (slot - bar) / 2.0;
        let mut y = top + plot_h;
        for (o, n) in &b.flows {
            let bh = plot_h * *n as f64 / max as f64;
            y -= bh;
            let _ = writeln!(
                h,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{bh:.1}\" fill=\"{}\">\
                 <title>{} {o}: {}</title></rect>",
                colour(*o),
                esc(&b.start),
                thousands(*n)
            );
        }
    }
    let _ = writeln!(
        h,
        "<line class=\"axis\" x1=\"{left}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\"/>",
        top + plot_h,
        w - right
    );
    let last = buckets.len() - 1;
    let ticks: BTreeSet<usize> = [0, buckets.len() / 2, last].into();
    for i in ticks {
        // The first label starts at its bar, the last ends at its bar.
        let (x, anchor) = match i {
            0 => (left + slot * 0.1, "start"),
            i if i == last => (left + slot * (i as f64 + 0.9), "end"),
            i => (left + slot * (i as f64 + 0.5), "middle"),
        };
        let _ = writeln!(
            h,
            "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
            top + plot_h + 18.0,
            esc(&short_time(&buckets[i].start))
        );
    }
    h.push_str("</svg>\n");
}

/// The smallest of 1, 2, 5 × 10^k at least `x`.
fn nice_step(x: u64) -> u64 {
    let mut p = 1u64;
    loop {
        for m in [1, 2, 5] {
            if m * p >= x {
                return m * p;
            }
        }
        p = p.saturating_mul(10);
    }
}

fn duration(secs: i64) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{} day(s)", s / 86_400),
        s if s % 3600 == 0 => format!("{} hour(s)", s / 3600),
        s => format!("{} minute(s)", s / 60),
    }
}

/// The kinds of edges the graph draws, each in its own style.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum EdgeKind {
    Allowed,
    Escaped,
    Rejected,
    Misdropped,
}

impl EdgeKind {
    fn of(o: Outcome) -> EdgeKind {
        match o {
            Outcome::Permitted | Outcome::Allowed => EdgeKind::Allowed,
            Outcome::Escaped => EdgeKind::Escaped,
            Outcome::Rejected | Outcome::WouldBlock => EdgeKind::Rejected,
            Outcome::Misdropped => EdgeKind::Misdropped,
        }
    }

    fn name(self) -> &'static str {
        match self {
            EdgeKind::Allowed => "allowed",
            EdgeKind::Escaped => "escaped",
            EdgeKind::Rejected => "rejected",
            EdgeKind::Misdropped => "misdropped",
        }
    }

    /// (colour, dash pattern).
    fn style(self) -> (&'static str, &'static str) {
        match self {
            EdgeKind::Allowed => ("#2e7d32", ""),
            EdgeKind::Escaped => ("#ef6c00", "8 4"),
            EdgeKind::Rejected => ("#c62828", "2 4"),
            EdgeKind::Misdropped => ("#6a1b9a", "10 3 2 3"),
        }
    }

    /// Bend of the curve, so kinds between the same scopes stay apart.
    fn bend(self) -> f64 {
        match self {
            EdgeKind::Allowed => 0.12,
            EdgeKind::Escaped => 0.24,
            EdgeKind::Rejected => 0.36,
            EdgeKind::Misdropped => 0.48,
        }
    }
}

const EDGE_KINDS: [EdgeKind; 4] = [
    EdgeKind::Allowed,
    EdgeKind::Escaped,
    EdgeKind::Rejected,
    EdgeKind::Misdropped,
];

fn graph(h: &mut String, a: &Analysis) {
    let _ = writeln!(h, "<h2>Scope to scope</h2>");
    if a.graph.is_empty() {
        h.push_str("<p class=\"note\">No flows.</p>\n");
        return;
    }

    let mut nodes: BTreeSet<&str> = BTreeSet::new();
    let mut edges: BTreeMap<(&str, &str, EdgeKind), u64> = BTreeMap::new();
    for e in &a.graph {
        nodes.insert(&e.from);
        nodes.insert(&e.to);
        for (o, n) in &e.flows {
            *edges.entry((&e.from, &e.to, EdgeKind::of(*o))).or_default() += n;
        }
    }
    let nodes: Vec<&str> = nodes.into_iter().collect();
    if nodes.len() > GRAPH_SCOPES {
        matrix(h, a, &nodes);
    } else {
        circle(h, &nodes, &edges);
    }
    scope_table(h, a);
}

/// Scopes on a circle, an arrow per kind of outcome between two scopes; each
/// arrow links to its conversations.
fn circle(h: &mut String, nodes: &[&str], edges: &BTreeMap<(&str, &str, EdgeKind), u64>) {
    h.push_str(
        "<p class=\"note\">Scopes (and externals, workloads in no scope, unknown addresses) \
         as circles; an arrow per kind of outcome from the consumers' scope to the providers'. \
         Line width grows with the number of flows. Allowed covers permitted and allowed; \
         rejected covers rejected and would-block.</p>\n<div class=\"legend\">",
    );
    for k in EDGE_KINDS {
        let (c, dash) = k.style();
        let _ = write!(
            h,
            "<span><svg width=\"36\" height=\"10\"><line x1=\"0\" y1=\"5\" x2=\"36\" y2=\"5\" \
             stroke=\"{c}\" stroke-width=\"3\" stroke-dasharray=\"{dash}\"/></svg>{}</span>",
            k.name()
        );
    }
    h.push_str("</div>\n");
    let n = nodes.len();
    let r = (n as f64 * 22.0).clamp(150.0, 420.0);
    let (w, ht) = (r * 2.0 + 360.0, r * 2.0 + 120.0);
    let (cx, cy) = (w / 2.0, ht / 2.0);
    let pos: BTreeMap<&str, (f64, f64, f64)> = nodes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let angle = -std::f64::consts::FRAC_PI_2 + std::f64::consts::TAU * i as f64 / n as f64;
            (*s, (cx + r * angle.cos(), cy + r * angle.sin(), angle))
        })
        .collect();
    let max = edges.values().copied().max().unwrap_or(1).max(1) as f64;
    let _ = writeln!(
        h,
        "<svg id=\"scope-graph\" viewBox=\"0 0 {w:.0} {ht:.0}\" width=\"100%\" \
         style=\"max-width:{w:.0}px\" role=\"img\" aria-label=\"flows between scopes\">\n<defs>"
    );
    for k in EDGE_KINDS {
        let (c, _) = k.style();
        let _ = writeln!(
            h,
            "<marker id=\"arrow-{}\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" \
             markerWidth=\"10\" markerHeight=\"10\" markerUnits=\"userSpaceOnUse\" \
             orient=\"auto-start-reverse\">\
             <path d=\"M0,0 L10,5 L0,10 z\" fill=\"{c}\"/></marker>",
            k.name()
        );
    }
    h.push_str("</defs>\n");
    const NODE_R: f64 = 9.0;
    for (&(from, to, kind), &flows) in edges {
        let (c, dash) = kind.style();
        let width = 1.2 + 4.0 * ((flows as f64).ln_1p() / max.ln_1p());
        let (x1, y1, angle) = pos[from];
        let (x2, y2, _) = pos[to];
        let path = if from == to {
            // A loop inside the circle (the label is outside), one size per kind.
            let (ox, oy) = (-angle.cos(), -angle.sin());
            let (px, py) = (-oy, ox);
            let reach = 28.0 + 22.0 * kind.bend() / 0.12;
            let (sx, sy) = (x1 + ox * NODE_R + px * 5.0, y1 + oy * NODE_R + py * 5.0);
            let (ex, ey) = (x1 + ox * NODE_R - px * 5.0, y1 + oy * NODE_R - py * 5.0);
            format!(
                "M{sx:.1},{sy:.1} C{:.1},{:.1} {:.1},{:.1} {ex:.1},{ey:.1}",
                x1 + ox * reach + px * reach * 0.6,
                y1 + oy * reach + py * reach * 0.6,
                x1 + ox * reach - px * reach * 0.6,
                y1 + oy * reach - py * reach * 0.6,
            )
        } else {
            let (dx, dy) = (x2 - x1, y2 - y1);
            let len = (dx * dx + dy * dy).sqrt().max(1.0);
            let (ux, uy) = (dx / len, dy / len);
            let (sx, sy) = (x1 + ux * NODE_R, y1 + uy * NODE_R);
            let (ex, ey) = (x2 - ux * (NODE_R + 2.0), y2 - uy * (NODE_R + 2.0));
            // Bend to the left of the direction of travel: A→B and B→A part.
            let (mx, my) = ((sx + ex) / 2.0, (sy + ey) / 2.0);
            let b = kind.bend() * len;
            format!(
                "M{sx:.1},{sy:.1} Q{:.1},{:.1} {ex:.1},{ey:.1}",
                mx + uy * b,
                my - ux * b
            )
        };
        let _ = writeln!(
            h,
            "<a href=\"{}\"><path class=\"edge edge-{}\" d=\"{path}\" fill=\"none\" stroke=\"{c}\" \
             stroke-width=\"{width:.1}\" stroke-dasharray=\"{dash}\" stroke-opacity=\"0.85\" \
             marker-end=\"url(#arrow-{})\"><title>{} → {}: {} {} flow(s); click for the conversations</title></path></a>",
            drill('s', from, to),
            kind.name(),
            kind.name(),
            esc(from),
            esc(to),
            thousands(flows),
            kind.name()
        );
    }
    for (s, (x, y, angle)) in &pos {
        let (lx, ly) = (x + angle.cos() * 18.0, y + angle.sin() * 18.0 + 4.0);
        let anchor = if angle.cos() > 0.2 {
            "start"
        } else if angle.cos() < -0.2 {
            "end"
        } else {
            "middle"
        };
        let _ = writeln!(
            h,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{NODE_R}\" fill=\"#fff\" stroke=\"#1d2433\" \
             stroke-width=\"2\"><title>{0}</title></circle>\
             <text x=\"{lx:.1}\" y=\"{ly:.1}\" text-anchor=\"{anchor}\">{0}</text>",
            esc(s)
        );
    }
    h.push_str("</svg>\n");
}

/// More scopes than a circle can label: a matrix, consumers' scopes down,
/// providers' across, each cell coloured by its most telling outcome
/// (misdropped, escaped, rejected, allowed) and shaded by its flows.
fn matrix(h: &mut String, a: &Analysis, nodes: &[&str]) {
    let _ = writeln!(
        h,
        "<p class=\"note\">{} scopes: consumers' scopes down, providers' across. A cell takes \
         the colour of the most telling outcome between them (misdropped, then escaped, \
         rejected, allowed), darker with more flows; click it for the conversations.</p>",
        nodes.len()
    );
    let mut cells: BTreeMap<(&str, &str), &crate::analysis::Edge> = BTreeMap::new();
    for e in &a.graph {
        cells.insert((&e.from, &e.to), e);
    }
    let max = a
        .graph
        .iter()
        .map(|e| e.flows.values().sum::<u64>())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    h.push_str(
        "<div class=\"scroll\"><table id=\"scope-matrix\" class=\"matrix\"><thead><tr><th></th>",
    );
    for to in nodes {
        let _ = write!(h, "<th title=\"{0}\"><span>{0}</span></th>", esc(to));
    }
    h.push_str("</tr></thead><tbody>\n");
    for from in nodes {
        let _ = write!(h, "<tr><th title=\"{0}\">{0}</th>", esc(from));
        for to in nodes {
            let Some(e) = cells.get(&(*from, *to)) else {
                h.push_str("<td></td>");
                continue;
            };
            let kind = [
                EdgeKind::Misdropped,
                EdgeKind::Escaped,
                EdgeKind::Rejected,
                EdgeKind::Allowed,
            ]
            .into_iter()
            .find(|k| {
                e.flows
                    .iter()
                    .any(|(o, n)| *n > 0 && EdgeKind::of(*o) == *k)
            })
            .unwrap_or(EdgeKind::Allowed);
            let flows: u64 = e.flows.values().sum();
            let shade = 0.3 + 0.7 * ((flows as f64).ln_1p() / max.ln_1p());
            let counts: Vec<String> = e
                .flows
                .iter()
                .map(|(o, n)| format!("{} {o}", thousands(*n)))
                .collect();
            let _ = write!(
                h,
                "<td style=\"background:{};opacity:{shade:.2}\" data-kind=\"{}\">\
                 <a href=\"{}\" title=\"{} → {}: {}\"></a></td>",
                kind.style().0,
                kind.name(),
                drill('s', from, to),
                esc(from),
                esc(to),
                counts.join(", ")
            );
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table></div>\n");
}

/// Scope to scope as a table: totals per outcome, each row drilling down.
fn scope_table(h: &mut String, a: &Analysis) {
    let mut heads = vec!["from", "to"];
    let names: Vec<String> = Outcome::ALL.iter().map(|o| format!("#{o}")).collect();
    heads.extend(names.iter().map(String::as_str));
    heads.push("#bytes");
    let mut rows: Vec<_> = a.graph.iter().collect();
    rows.sort_by(|x, y| {
        let t = |e: &crate::analysis::Edge| e.flows.values().sum::<u64>();
        t(y).cmp(&t(x))
    });
    table_open(h, "scope-edges", rows.len().min(TABLE_ROWS), &heads);
    for e in rows.iter().take(TABLE_ROWS) {
        let link = drill('s', &e.from, &e.to);
        let _ = write!(
            h,
            "<tr><td><a class=\"pair\" href=\"{link}\">{}</a></td>\
             <td><a class=\"pair\" href=\"{link}\">{}</a></td>",
            esc(&e.from),
            esc(&e.to)
        );
        for o in Outcome::ALL {
            let _ = write!(
                h,
                "<td class=\"num\">{}</td>",
                thousands(e.flows.get(&o).copied().unwrap_or(0))
            );
        }
        let _ = writeln!(h, "{}</tr>", bytes_td(e.bytes));
    }
    table_close(h);
    cut_note(h, rows.len());
}

/// Workload to workload: the conversations summed per pair of workloads (a
/// Deployment and its pods are one), each pair drilling down.
fn workloads(h: &mut String, a: &Analysis) {
    let _ = writeln!(h, "<h2 id=\"workloads\">Workload to workload</h2>");
    #[derive(Default)]
    struct Pair<'a> {
        scopes: (&'a str, &'a str),
        flows: BTreeMap<Outcome, u64>,
        bytes: u64,
        conversations: u64,
    }
    let mut pairs: BTreeMap<(&str, &str), Pair<'_>> = BTreeMap::new();
    for c in &a.conversations {
        let p = pairs.entry((&c.from, &c.to)).or_default();
        p.scopes = (&c.from_scope, &c.to_scope);
        for (o, n) in &c.outcomes {
            *p.flows.entry(*o).or_default() += n;
        }
        p.bytes += c.count.bytes;
        p.conversations += 1;
    }
    let _ = writeln!(
        h,
        "<p class=\"note\">{} pair(s) of workloads (or addresses outside the inventory). \
         Click a pair for its conversations.</p>",
        thousands(pairs.len() as u64)
    );
    if pairs.is_empty() {
        return;
    }
    let mut rows: Vec<_> = pairs.into_iter().collect();
    rows.sort_by_key(|(k, p)| (std::cmp::Reverse(p.flows.values().sum::<u64>()), *k));
    let mut heads = vec!["from", "to", "scopes", "#conversations"];
    let names: Vec<String> = Outcome::ALL.iter().map(|o| format!("#{o}")).collect();
    heads.extend(names.iter().map(String::as_str));
    heads.push("#bytes");
    table_open(h, "table-workloads", rows.len().min(DRILL_ROWS), &heads);
    for ((from, to), p) in rows.iter().take(DRILL_ROWS) {
        let link = drill('w', from, to);
        let _ = write!(
            h,
            "<tr><td><a class=\"pair\" href=\"{link}\">{}</a></td>\
             <td><a class=\"pair\" href=\"{link}\">{}</a></td><td>{} → {}</td>\
             <td class=\"num\">{}</td>",
            esc(from),
            esc(to),
            esc(p.scopes.0),
            esc(p.scopes.1),
            thousands(p.conversations)
        );
        for o in Outcome::ALL {
            let _ = write!(
                h,
                "<td class=\"num\">{}</td>",
                thousands(p.flows.get(&o).copied().unwrap_or(0))
            );
        }
        let _ = writeln!(h, "{}</tr>", bytes_td(p.bytes));
    }
    table_close(h);
    if rows.len() > DRILL_ROWS {
        let _ = writeln!(
            h,
            "<p class=\"note\">The first {DRILL_ROWS} of {} pairs; <code>--format json</code> has all.</p>",
            thousands(rows.len() as u64)
        );
    }
}

/// The conversations: what every drill-down filters. The largest
/// [`PER_PAIR`] of each scope pair are kept, then the largest overall up to
/// [`DRILL_ROWS`].
fn conversations(h: &mut String, a: &Analysis) {
    let _ = writeln!(h, "<h2 id=\"conversations\">Conversations</h2>");
    let mut sorted: Vec<&Conversation> = a.conversations.iter().collect();
    sorted.sort_by_key(|c| std::cmp::Reverse(c.count.flows));
    let mut per_pair: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut kept: Vec<&Conversation> = sorted
        .into_iter()
        .filter(|c| {
            let n = per_pair.entry((&c.from_scope, &c.to_scope)).or_default();
            *n += 1;
            *n <= PER_PAIR
        })
        .collect();
    kept.truncate(DRILL_ROWS);
    let _ = writeln!(
        h,
        "<p class=\"note\">{} of {} conversation(s): the largest {PER_PAIR} between each pair of \
         scopes, at most {DRILL_ROWS} in all (<code>--format json</code> has every one).</p>",
        thousands(kept.len() as u64),
        thousands(a.conversations.len() as u64)
    );
    if kept.is_empty() {
        return;
    }
    table_open(
        h,
        "table-conversations",
        kept.len(),
        &[
            "from",
            "to",
            "service",
            "outcome",
            "#flows",
            "#bytes",
            "last seen",
            "decided by",
        ],
    );
    for c in kept {
        let outcomes: Vec<String> = c
            .outcomes
            .keys()
            .map(|o| {
                format!(
                    "<span class=\"tag\"><i class=\"swatch\" style=\"background:{}\"></i> {o}</span>",
                    colour(*o)
                )
            })
            .collect();
        let _ = writeln!(
            h,
            "<tr data-fs=\"{}\" data-ts=\"{}\" data-fw=\"{}\" data-tw=\"{}\">\
             <td>{}<br><code>{}</code></td><td>{}<br><code>{}</code></td><td><code>{}</code></td>\
             <td>{}</td><td class=\"num\">{}</td>{}<td>{}</td><td>{}</td></tr>",
            esc(&c.from_scope),
            esc(&c.to_scope),
            esc(&c.from),
            esc(&c.to),
            esc(&c.from),
            c.src,
            esc(&c.to),
            c.dst,
            esc(&service(c)),
            outcomes.concat(),
            thousands(c.count.flows),
            bytes_td(c.count.bytes),
            esc(&c.last_seen),
            esc(&deciding(&c.judgement)),
        );
    }
    table_close(h);
}

fn cut_note(h: &mut String, len: usize) {
    if len > TABLE_ROWS {
        let _ = writeln!(
            h,
            "<p class=\"note\">The first {TABLE_ROWS} of {} rows; <code>--format json</code> has all.</p>",
            thousands(len as u64)
        );
    }
}

fn unexpected(h: &mut String, a: &Analysis, o: Outcome) {
    let mut list: Vec<&Conversation> = a.conversations.iter().filter(|c| c.flows(o) > 0).collect();
    let title = match o {
        Outcome::Escaped => "Escaped flows",
        _ => "Misdropped flows",
    };
    let _ = writeln!(h, "<h2 id=\"{o}\">{title}</h2>");
    let _ = writeln!(
        h,
        "<p class=\"note\">{}: {} conversation(s), {} flow(s).</p>",
        meaning(o),
        thousands(list.len() as u64),
        thousands(list.iter().map(|c| c.flows(o)).sum())
    );
    if list.is_empty() {
        return;
    }
    list.sort_by_key(|c| std::cmp::Reverse(c.flows(o)));
    table_open(
        h,
        &format!("table-{o}"),
        list.len().min(TABLE_ROWS),
        &[
            "from",
            "to",
            "service",
            "#flows",
            "#bytes",
            "last seen",
            "decided by",
        ],
    );
    for c in list.iter().take(TABLE_ROWS) {
        let _ = writeln!(
            h,
            "<tr><td>{}<br><code>{}</code></td><td>{}<br><code>{}</code></td><td><code>{}</code>{}</td>\
             <td class=\"num\">{}</td>{}<td>{}</td><td>{}</td></tr>",
            esc(&c.from),
            c.src,
            esc(&c.to),
            c.dst,
            esc(&service(c)),
            c.judgement.via.as_ref().map_or(String::new(), |v| format!(
                "<br><span class=\"note\">{}</span>",
                esc(v)
            )),
            thousands(c.flows(o)),
            bytes_td(c.count.bytes),
            esc(&c.last_seen),
            esc(&deciding(&c.judgement)),
        );
    }
    table_close(h);
    cut_note(h, list.len());
}

fn tags(p: &PolicyStats) -> String {
    p.conditions
        .iter()
        .map(|c| {
            format!(
                "<span class=\"tag {}\">{}</span>",
                c.as_str().replace(' ', "-"),
                c.as_str()
            )
        })
        .collect()
}

fn usage(u: Option<crate::analysis::Usage>) -> String {
    u.map_or("–".to_string(), |u| {
        format!("{} of {}", thousands(u.seen), thousands(u.members))
    })
}

fn conditions(h: &mut String, a: &Analysis) {
    let _ = writeln!(h, "<h2 id=\"unused\">Unused and questionable policies</h2>");
    let listed: Vec<&PolicyStats> = a
        .policies
        .iter()
        .filter(|p| !p.conditions.is_empty())
        .collect();
    let count = |c: Condition| a.with_condition(c).count();
    let _ = writeln!(
        h,
        "<p class=\"note\">{} with no traffic, {} overshadowed by earlier policies, {} broad \
         (most endpoints they apply to never used them).</p>",
        count(Condition::NoTraffic),
        count(Condition::Overshadowed),
        count(Condition::Broad)
    );
    if listed.is_empty() {
        return;
    }
    table_open(
        h,
        "table-unused",
        listed.len().min(TABLE_ROWS),
        &[
            "policy",
            "condition",
            "rank",
            "action",
            "where",
            "#flows",
            "consumers used",
            "providers used",
            "decided first by",
        ],
    );
    for p in listed.iter().take(TABLE_ROWS) {
        let _ = writeln!(
            h,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td>\
             <td><code>{}:{}:{}</code></td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&p.policy.id),
            tags(p),
            rank_name(p.policy.rank),
            p.policy.action,
            esc(&p.policy.file),
            p.policy.line,
            p.policy.column,
            thousands(p.hits.flows),
            usage(p.consumers),
            usage(p.providers),
            esc(&p.shadowed_by.join(", ")),
        );
    }
    table_close(h);
    cut_note(h, listed.len());
}

fn hits(h: &mut String, a: &Analysis) {
    let _ = writeln!(h, "<h2 id=\"hits\">Policy hits</h2>");
    let mut hit: Vec<&PolicyStats> = a
        .policies
        .iter()
        .filter(|p| p.hits.flows > 0 || p.agents.is_some_and(|x| x.packets > 0))
        .collect();
    let _ = writeln!(
        h,
        "<p class=\"note\">{} of {} policies decided at least one flow{}.</p>",
        hit.len(),
        a.policies.len(),
        if a.compliance.is_some() {
            " or were counted by an agent"
        } else {
            ""
        }
    );
    if hit.is_empty() {
        return;
    }
    hit.sort_by_key(|p| std::cmp::Reverse(p.hits.flows));
    let agents = a.compliance.is_some();
    let mut heads = vec![
        "policy",
        "rank",
        "action",
        "#flows",
        "#bytes",
        "first hit",
        "last hit",
        "consumers used",
        "providers used",
    ];
    if agents {
        heads.extend(["#agent packets", "#nodes"]);
    }
    table_open(h, "table-hits", hit.len().min(TABLE_ROWS), &heads);
    for p in hit.iter().take(TABLE_ROWS) {
        let _ = write!(
            h,
            "<tr><td><code>{}</code> {}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td>\
             {}<td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            esc(&p.policy.id),
            tags(p),
            rank_name(p.policy.rank),
            p.policy.action,
            thousands(p.hits.flows),
            bytes_td(p.hits.bytes),
            esc(p.first_hit.as_deref().unwrap_or("–")),
            esc(p.last_hit.as_deref().unwrap_or("–")),
            usage(p.consumers),
            usage(p.providers),
        );
        if agents {
            let x = p.agents.unwrap_or_default();
            let _ = write!(
                h,
                "<td class=\"num\">{}</td><td class=\"num\">{}</td>",
                thousands(x.packets),
                x.nodes
            );
        }
        h.push_str("</tr>\n");
    }
    table_close(h);
    cut_note(h, hit.len());
}

fn brief(b: &crate::analysis::Brief) -> String {
    let mut s = format!("<b>{}</b>", b.verdict);
    if b.verdict == ringfence_schema::ir::Action::Deny && b.passes {
        s.push_str(" (analyze mode)");
    }
    for (name, p) in [
        ("egress", &b.egress),
        ("ingress", &b.ingress),
        ("node hop", &b.node_hop),
    ] {
        if let Some(p) = p {
            let _ = write!(s, "<br>{name}: <code>{}</code>", esc(p));
        }
    }
    s
}

fn changes(h: &mut String, a: &Analysis) {
    let Some(ch) = &a.changes else { return };
    let _ = writeln!(
        h,
        "<h2 id=\"changes\">Changes against {}</h2>",
        esc(a.against.as_deref().unwrap_or(""))
    );
    let _ = writeln!(
        h,
        "<p class=\"note\"><span id=\"changed-conversations\">{}</span> conversation(s), {} flow(s) \
         get another verdict.</p>",
        thousands(ch.conversations),
        thousands(ch.flows)
    );
    if ch.groups.is_empty() {
        return;
    }
    table_open(
        h,
        "table-changes",
        ch.groups.len().min(TABLE_ROWS),
        &["from", "to", "ports", "was", "now", "#flows"],
    );
    for g in ch.groups.iter().take(TABLE_ROWS) {
        let ports: Vec<String> = g.ports.iter().map(u16::to_string).collect();
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td><code>{}{}</code></td><td>{}</td><td>{}</td>\
             <td class=\"num\">{}</td></tr>",
            esc(&g.from),
            esc(&g.to),
            g.proto,
            if ports.is_empty() {
                String::new()
            } else {
                format!("/{}", ports.join(","))
            },
            brief(&g.before),
            brief(&g.after),
            thousands(g.flows)
        );
    }
    table_close(h);
    cut_note(h, ch.groups.len());
}

fn compliance(h: &mut String, a: &Analysis) {
    let Some(c) = &a.compliance else { return };
    let _ = writeln!(h, "<h2 id=\"compliance\">Compliance</h2>");
    let statuses: Vec<String> = c
        .statuses
        .iter()
        .map(|(s, n)| format!("{n} {}", esc(s)))
        .collect();
    let _ = writeln!(
        h,
        "<p class=\"note\">{} node report(s): {}; {} on this version.</p>",
        c.nodes.len(),
        statuses.join(", "),
        c.nodes.iter().filter(|n| n.current).count()
    );
    table_open(
        h,
        "table-compliance",
        c.nodes.len() + c.unreadable.len(),
        &[
            "node",
            "status",
            "#generation",
            "this version",
            "#drift",
            "#denied packets",
            "last error",
        ],
    );
    for n in &c.nodes {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&n.node),
            esc(&n.status_word()),
            n.generation.map_or("–".to_string(), |g| g.to_string()),
            match n.off_version() {
                None => "yes".to_string(),
                Some((unknown, missing)) => {
                    format!("no: {unknown} unknown, {missing} missing rule(s)")
                }
            },
            n.drift.total(),
            thousands(n.denied_packets),
            esc(n.last_error.as_deref().unwrap_or("")),
        );
    }
    for u in &c.unreadable {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td colspan=\"6\">unreadable: {}</td></tr>",
            esc(&u.file),
            esc(&u.error)
        );
    }
    table_close(h);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(
            [1, 3, 7, 11, 42, 250, 999].map(nice_step),
            [1, 5, 10, 20, 50, 500, 1000]
        );
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(short_time("2024-05-01T12:05:00Z"), "05-01 12:05");
    }
}
