//! Rendering: every node's IR through its backend plugin, in parallel.
//!
//! Before a node is rendered its backend's capabilities are checked, so
//! intent a backend cannot enforce is refused here (with the policy's span),
//! never discovered on the node. After, every nftables artifact passes
//! [`ringfence_nft::screen`] (the agent's own screen): a backend whose output
//! reaches beyond `table inet ringfence` fails the build, by name, before
//! anything is signed.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rayon::prelude::*;
use ringfence_intent::diagnostics::Code;
use ringfence_intent::model::{Intent, PluginPin, Span};
use ringfence_intent::{Diagnostic, Diagnostics};
use ringfence_plugin_host::{Host, Plugin, PluginError};
use ringfence_schema::bundle::{BackendRef, IR_FILE};
use ringfence_schema::ir::NodeIr;
use ringfence_schema::plugin::RenderOutput;

use crate::bundles::{Files, NodeOutput};
use crate::pipeline::Session;

/// The backends a session may use: the built-ins of a plugin runtime and
/// the plugins its intent pins.
pub struct Backends<'h> {
    host: &'h Host,
    pinned: BTreeMap<String, Plugin>,
}

impl<'h> Backends<'h> {
    /// The built-in backends of `host` plus the plugins `intent` pins, read
    /// from `dir` (the intent directory), and an error diagnostic at the
    /// `plugin` node of each pinned plugin that cannot be used.
    pub(crate) fn load(
        host: &'h Host,
        intent: &Intent,
        dir: Option<&Path>,
    ) -> (Backends<'h>, Diagnostics) {
        let mut pinned = BTreeMap::new();
        let mut diags = Diagnostics::default();
        for pin in &intent.plugins {
            let Some(dir) = dir else {
                diags.push(
                    Diagnostic::error(Code::PluginUnavailable, format!("plugin `{}` can only be loaded from a working tree", pin.name))
                        .with_label(pin.span, "declared here")
                        .with_help("compile from the intent directory on disk (without --rev) to use third-party plugins"),
                );
                continue;
            };
            match host.load(&dir.join(&pin.path), Some(&pin.sha256)) {
                Ok(p) if p.info.name == pin.name => {
                    pinned.insert(pin.name.clone(), p);
                }
                Ok(p) => diags.push(
                    Diagnostic::error(Code::PluginName, format!("{} calls itself `{}`, not `{}`", pin.path, p.info.name, pin.name))
                        .with_label(pin.span, "declared here")
                        .with_help(format!("declare it as `plugin \"{}\" …`, or check that the path is the plugin you meant", p.info.name)),
                ),
                Err(e) => diags.push(pin_error(pin, e)),
            }
        }
        (Backends { host, pinned }, diags)
    }

    /// A backend by name.
    pub fn get(&self, name: &str) -> Option<&Plugin> {
        self.pinned.get(name).or_else(|| self.host.builtin(name))
    }
}

/// The pins of `intent` against the files in `dir` (the intent directory):
/// `check` refuses a wrong digest as `render` and `compile` do, with the
/// same rule ([`ringfence_plugin_host::read_pinned`]) and diagnostic,
/// without compiling the plugins.
pub fn check_pins(intent: &Intent, dir: &Path) -> Diagnostics {
    let mut diags = Diagnostics::default();
    for pin in &intent.plugins {
        if let Err(e) = ringfence_plugin_host::read_pinned(&dir.join(&pin.path), Some(&pin.sha256))
        {
            diags.push(pin_error(pin, e));
        }
    }
    diags
}

fn pin_error(pin: &PluginPin, e: PluginError) -> Diagnostic {
    Diagnostic::error(Code::PluginLoad, e.to_string())
        .with_label(pin.span, "declared here")
        .with_help(
            "check the path (relative to the intent directory) and the sha256 (`sha256sum FILE`)",
        )
}

/// Where each policy was written, to put plugin findings at the policy.
fn policy_spans(intent: &Intent) -> HashMap<String, Span> {
    let mut spans: HashMap<String, Span> = intent
        .policies
        .iter()
        .map(|p| (p.id.clone(), p.span))
        .collect();
    for c in &intent.catch_alls {
        let dir = match c.direction {
            ringfence_intent::model::Direction::Ingress => "ingress",
            ringfence_intent::model::Direction::Egress => "egress",
        };
        spans.insert(
            format!("{}/catch-all-{dir}", intent.scope(c.scope).name),
            c.span,
        );
    }
    if let Some(q) = &intent.quarantine {
        for e in &q.exceptions {
            spans.insert(e.id.clone(), e.span);
        }
        spans.insert("quarantine/deny-ingress".into(), q.span);
        spans.insert("quarantine/deny-egress".into(), q.span);
    }
    spans
}

fn at_policy(d: Diagnostic, spans: &HashMap<String, Span>, policy: Option<&str>) -> Diagnostic {
    match policy.and_then(|p| spans.get(p)) {
        Some(span) => d.with_label(*span, "this policy"),
        None => d,
    }
}

/// Render the nodes of a session that `pick` selects, in node order (each
/// node's files: its artifacts and `ir.json`; `watch` renders only the nodes
/// whose IR it has not rendered before). Returns the nodes rendered and the
/// diagnostics: warnings from backends, and errors for nodes that could not
/// be rendered (no such backend, a capability it lacks, a plugin failure).
/// When any error is reported, the caller must not publish anything.
pub fn render_some(
    session: &Session,
    backends: &Backends<'_>,
    pick: impl Fn(&NodeIr) -> bool + Sync,
) -> (Vec<NodeOutput>, Diagnostics) {
    render_each(session, backends, pick, |n| n)
}

/// [`render_some`], handing each node's output to `each` as soon as it is
/// rendered (from any thread), so a caller that seals or writes it can drop
/// it at once: only a few nodes' files are in memory at a time. Returns what
/// `each` returned, in node order, and the diagnostics.
pub fn render_each<R: Send>(
    session: &Session,
    backends: &Backends<'_>,
    pick: impl Fn(&NodeIr) -> bool + Sync,
    each: impl Fn(NodeOutput) -> R + Sync,
) -> (Vec<R>, Diagnostics) {
    let spans = policy_spans(&session.intent);
    let nodes: Vec<&NodeIr> = session.nodes().into_iter().filter(|ir| pick(ir)).collect();
    let prepared: Vec<(Option<&Plugin>, Vec<Diagnostic>)> = nodes
        .par_iter()
        .map(|ir| prepare(ir, backends, &spans))
        .collect();
    // Runs of consecutive nodes with the same backend, CHUNK at most, are
    // rendered together (fixed by node order, not by scheduling).
    let mut chunks: Vec<(&Plugin, Vec<usize>)> = Vec::new();
    for (i, (plugin, _)) in prepared.iter().enumerate() {
        let Some(plugin) = *plugin else { continue };
        match chunks.last_mut() {
            Some((p, run)) if std::ptr::eq(*p, plugin) && run.len() < CHUNK => run.push(i),
            _ => chunks.push((plugin, vec![i])),
        }
    }
    let mut finished: Vec<(usize, Option<R>, Vec<Diagnostic>)> = chunks
        .par_iter()
        .flat_map_iter(|(plugin, run)| {
            // Each IR serialised once, here: a lone node's plugin reads it,
            // and it is the node's `ir.json`.
            let json = |i: usize| {
                let mut json = serde_json::to_string(nodes[i]).expect("an IR always serialises");
                json.push('\n');
                json
            };
            let rendered: Vec<(String, Result<RenderOutput, PluginError>)> = match run.as_slice() {
                &[i] => {
                    let j = json(i);
                    let r = plugin.render_json(&nodes[i].node, &j.as_bytes()[..j.len() - 1]);
                    vec![(j, r)]
                }
                _ => {
                    let irs: Vec<&NodeIr> = run.iter().map(|&i| nodes[i]).collect();
                    let out = plugin.render_chunk(&irs);
                    run.iter().zip(out).map(|(&i, r)| (json(i), r)).collect()
                }
            };
            let (nodes, spans, prepared, each) = (&nodes, &spans, &prepared, &each);
            run.iter().zip(rendered).map(move |(&i, (j, r))| {
                let (out, diags) = finish(nodes[i], j, plugin, r, prepared[i].1.clone(), spans);
                (i, out.map(each), diags)
            })
        })
        .collect();
    // Nodes that could not be rendered: what their preparation found.
    for (i, (plugin, diags)) in prepared.into_iter().enumerate() {
        if plugin.is_none() {
            finished.push((i, None, diags));
        }
    }
    finished.sort_by_key(|(i, ..)| *i);
    let mut diags = Diagnostics::default();
    let mut out = Vec::with_capacity(finished.len());
    for (_, r, d) in finished {
        diags.extend(d);
        out.extend(r);
    }
    diags.sort();
    (out, diags)
}

/// Nodes rendered in one plugin instance at most (they share its sets).
const CHUNK: usize = 16;

/// A node's backend, if it can render the node, and what its capability
/// check found.
fn prepare<'b>(
    ir: &NodeIr,
    backends: &'b Backends<'_>,
    spans: &HashMap<String, Span>,
) -> (Option<&'b Plugin>, Vec<Diagnostic>) {
    let node = format!("{}/{}", ir.cluster, ir.node);
    let Some(plugin) = backends.get(&ir.backend) else {
        let d = Diagnostic::error(Code::UnknownBackend, format!("node {node} needs backend `{}`, which is not built in or pinned", ir.backend))
            .with_help("use `nftables` or `windows-firewall`, or declare the plugin with `plugin \"NAME\" path=… sha256=…`");
        return (None, vec![d]);
    };
    if plugin.info.os != ir.os {
        let d = Diagnostic::error(
            Code::BackendOs,
            format!(
                "node {node} runs {} but backend `{}` renders for {}",
                ir.os, plugin.info.name, plugin.info.os
            ),
        )
        .with_help(
            "choose a backend for this OS with `backend linux=… windows=…` in the node's scope",
        );
        return (None, vec![d]);
    }
    // One finding per (capability, policy): a policy spans many rules.
    let mut seen = std::collections::BTreeSet::new();
    let mut diags = Vec::new();
    for p in plugin.check(ir) {
        if !seen.insert((p.capability, p.policy.clone())) {
            continue;
        }
        let d = if p.changes_meaning() {
            Diagnostic::error(
                Code::BackendCannotEnforce,
                format!(
                    "node {node}: backend `{}` cannot enforce this: {}",
                    plugin.info.name, p.message
                ),
            )
            .with_help("change the policy, or choose a backend that can express it")
        } else {
            Diagnostic::warning(Code::BackendTelemetry, format!("node {node}: {}", p.message))
                .with_help("traffic is still decided as the policy says; only logs or counters are missing on this backend")
        };
        diags.push(at_policy(d, spans, p.policy.as_deref()));
    }
    let renderable = !diags
        .iter()
        .any(|d| d.severity == ringfence_intent::Severity::Error);
    (renderable.then_some(plugin), diags)
}

/// A node's files from what its backend rendered (`ir_json`: its `ir.json`).
fn finish(
    ir: &NodeIr,
    ir_json: String,
    plugin: &Plugin,
    rendered: Result<RenderOutput, PluginError>,
    mut diags: Vec<Diagnostic>,
    spans: &HashMap<String, Span>,
) -> (Option<NodeOutput>, Vec<Diagnostic>) {
    let node = format!("{}/{}", ir.cluster, ir.node);
    let output = match rendered {
        Ok(o) => o,
        Err(e) => {
            let d = Diagnostic::error(Code::RenderFailed, format!("node {node}: {e}"))
                .with_help("the backend plugin failed: report it to its author, with the node's IR (`ringfence compile --emit ir`)");
            return (None, vec![d]);
        }
    };
    diags.extend(output.warnings.iter().map(|w| {
        at_policy(
            Diagnostic::warning(Code::BackendWarning, format!("node {node}: {}", w.message)),
            spans,
            w.policy.as_deref(),
        )
    }));
    if output.artifacts.iter().any(|a| a.name == IR_FILE) {
        let d = Diagnostic::error(
            Code::RenderFailed,
            format!(
                "node {node}: backend `{}` produced a file named {IR_FILE}, which the bundle reserves",
                plugin.info.name
            ),
        );
        return (None, vec![d]);
    }
    if let Some((name, e)) = output
        .artifacts
        .iter()
        .filter(|a| a.name.ends_with(".nft"))
        .find_map(|a| {
            ringfence_nft::screen(&a.content)
                .err()
                .map(|e| (&a.name, e))
        })
    {
        let d = Diagnostic::error(
            Code::BackendUnsafeOutput,
            format!(
                "node {node}: backend `{}` wrote a {name} that reaches beyond table inet ringfence ({e}); nothing was signed",
                plugin.info.name
            ),
        )
        .with_help("a backend's nftables output may change table inet ringfence and nothing else: report it to the plugin's author");
        return (None, vec![d]);
    }
    let mut files: Vec<(String, String)> = output
        .artifacts
        .into_iter()
        .map(|a| (a.name, a.content))
        .collect();
    files.push((IR_FILE.to_string(), ir_json));
    let backend = BackendRef {
        name: plugin.info.name.clone(),
        version: plugin.info.version.clone(),
        sha256: plugin.sha256.clone(),
    };
    (
        Some(NodeOutput {
            cluster: ir.cluster.clone(),
            node: ir.node.clone(),
            os: ir.os,
            backend,
            files: Files::new(files),
        }),
        diags,
    )
}
