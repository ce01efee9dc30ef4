//! The Windows backend: one node's IR as an allow-only Windows Firewall
//! rule group.
//!
//! Windows Firewall is not first-match: a block rule wins over any allow.
//! So each endpoint's chains are lowered (`lower.rs`) into the exact region
//! they let through and emitted as allow rules only, in a profile whose
//! default inbound and outbound actions are block. A flow then passes iff
//! some outbound rule allows it leaving its source and some inbound rule
//! allows it reaching its destination, which is [`NodeIr::evaluate`]:
//! traffic of addresses no endpoint owns gets allow-all rules, so sides the
//! node does not judge pass — except unknown pods (addresses of the node's
//! pod ranges no pod claims, with `unknown_pods: deny`), which get none and
//! are blocked. A Windows node renders full IRs: its pods come with a new
//! render, not as live membership.
//!
//! NodePort and LoadBalancer exposures become inbound rules on the node's
//! (or the LB's) addresses and the exposure's port, admitting the sources
//! the target's ingress chain admits on its target port
//! ([`NodeIr::evaluate_exposure`]); with several targets that disagree,
//! only the sources every target admits, with a warning (README.md).
//!
//! Two artifacts: `rules.json` (the rules, machine-readably; tests evaluate
//! it) and `rules.ps1` (installs them as group `ringfence-<generation>`,
//! then retires older generations; see README.md for the swap order). The
//! generation is a digest of the rules, so the same IR always gives the same
//! group name.

mod lower;
mod ranges;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use ringfence_schema::ir::{Action, Direction, EndpointKind, Exposure, ExposureKind, NodeIr, Os};
use ringfence_schema::net::Proto;
use ringfence_schema::plugin::{
    Artifact, Capabilities, PLUGIN_ABI, PluginInfo, RenderOutput, RenderWarning,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use lower::{Piece, lower, only_port, remove_ports};
use ranges::{Addrs, show_v4, show_v6};
use ringfence_schema::interval::{self, IntervalSet};

/// Backend name, as intent refers to it.
pub const NAME: &str = "windows-firewall";

/// Most remote addresses one rule carries; larger regions are split.
pub const MAX_ADDRESSES_PER_RULE: usize = 1000;

/// What this backend is and can express.
pub fn info() -> PluginInfo {
    PluginInfo {
        name: NAME.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        abi: PLUGIN_ABI,
        os: Os::Windows,
        capabilities: Capabilities {
            ipv6: true,
            port_ranges: true,
            logging: false,
            analyze_mode: false,
            first_match: false,
            exposures: true,
            max_rules: None,
            live_membership: false,
        },
        description:
            "Windows nodes: allow-only Windows Firewall rules (New-NetFirewallRule), block-wins lowered exactly"
                .into(),
    }
}

/// `rules.json`: everything the script installs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSet {
    /// Cluster of the node.
    pub cluster: String,
    /// The node.
    pub node: String,
    /// Digest of the rules (hex), naming this generation.
    pub generation: String,
    /// `ringfence-<generation>`.
    pub group: String,
    /// Profiles must block by default in both directions.
    pub default_inbound: String,
    /// As above, outbound.
    pub default_outbound: String,
    /// The allow rules; order does not matter.
    pub rules: Vec<FwRule>,
}

/// One `New-NetFirewallRule -Action Allow`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FwRule {
    /// `-Name`, unique: `rf-<generation>-<n>`.
    pub name: String,
    /// `Inbound` or `Outbound`.
    pub direction: String,
    /// `Any`, `TCP`, `UDP`, `132` (SCTP), `ICMPv4`, `ICMPv6`.
    pub protocol: String,
    /// `-LocalAddress`: `Any`, addresses, prefixes or `a-b` ranges.
    pub local_address: Vec<String>,
    /// `-RemoteAddress`, same forms.
    pub remote_address: Vec<String>,
    /// `-LocalPort` (inbound rules); empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local_port: Vec<String>,
    /// `-RemotePort` (outbound rules); empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote_port: Vec<String>,
    /// The IR rule that decides this traffic; none for traffic no chain judges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// That rule's policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The IR chain it comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
}

/// Render `ir`, or refuse with the reasons.
pub fn render(ir: &NodeIr) -> Result<RenderOutput, String> {
    if ir.os != Os::Windows {
        return Err(format!(
            "windows-firewall renders Windows nodes; node `{}` runs {}",
            ir.node, ir.os
        ));
    }
    let unknown = unknown_pods(ir);
    let mut r = Renderer::new(ir);
    r.outbound(&unknown);
    let exposures = r.exposures();
    let (groups, owned) = Inbound::of(ir).groups();
    r.inbound(&groups, &exposures);
    r.allow_unowned(Direction::Ingress, &owned, &unknown);
    r.finish()
}

/// What decides inbound traffic to a group of addresses: the base
/// endpoint's ingress chain (none: the node does not judge it), the
/// host-network pods' (proto, port) claims no exposure overrides, and the
/// exposures (by index in `ir.exposures`).
type Signature<'a> = (
    Option<&'a str>,
    Vec<((Proto, u16), &'a str)>,
    Vec<((Proto, u16), usize)>,
);

/// Each exposure's target chain and the pieces it lets in, by index in
/// `ir.exposures` (none for an exposure that cannot be expressed).
type ExposurePieces<'a> = BTreeMap<usize, (Option<&'a str>, Vec<Piece>)>;

/// One render in progress: the rules emitted so far, the problems that
/// refuse the node, the warnings, and each chain lowered once.
struct Renderer<'a> {
    ir: &'a NodeIr,
    out: Vec<FwRule>,
    problems: Vec<String>,
    warnings: Vec<RenderWarning>,
    lowered: BTreeMap<&'a str, Vec<Piece>>,
}

impl<'a> Renderer<'a> {
    fn new(ir: &'a NodeIr) -> Self {
        Renderer {
            ir,
            out: Vec::new(),
            problems: Vec::new(),
            warnings: Vec::new(),
            lowered: BTreeMap::new(),
        }
    }

    /// The pieces of chain `id` (none if the IR has no such chain),
    /// lowered on first use.
    fn pieces(&mut self, id: &str) -> Vec<Piece> {
        let ir = self.ir;
        self.lowered
            .entry(ir.chain(id).map(|c| c.id.as_str()).unwrap_or(""))
            .or_insert_with(|| ir.chain(id).map(|c| lower(ir, c)).unwrap_or_default())
            .clone()
    }

    /// [`emit`] into this render's rules and problems.
    fn emit(&mut self, dir: Direction, chain: Option<&str>, local: &[String], pieces: Vec<Piece>) {
        emit(
            self.ir,
            dir,
            chain,
            local,
            pieces,
            &mut self.out,
            &mut self.problems,
        );
    }

    /// Allow everything in direction `dir` for the addresses no endpoint
    /// owns, except the unknown pods.
    fn allow_unowned(&mut self, dir: Direction, owned: &[IpAddr], unknown: &Addrs) {
        self.emit(dir, None, &complement(owned, unknown), vec![everything()]);
    }

    /// Outbound: each address goes to the first local endpoint with an
    /// egress chain; the rest may send anything.
    fn outbound(&mut self, unknown: &Addrs) {
        let ir = self.ir;
        let mut egress: BTreeMap<IpAddr, &str> = BTreeMap::new();
        for e in ir.endpoints.iter().filter(|e| e.local) {
            if let Some(c) = &e.egress {
                for a in &e.addresses {
                    egress.entry(*a).or_insert(c);
                }
            }
        }
        let mut by_chain: BTreeMap<&str, Vec<IpAddr>> = BTreeMap::new();
        for (a, c) in &egress {
            by_chain.entry(c).or_default().push(*a);
        }
        for (chain, locals) in &by_chain {
            let local: Vec<String> = locals.iter().map(IpAddr::to_string).collect();
            let p = self.pieces(chain);
            self.emit(Direction::Egress, Some(chain), &local, p);
        }
        let owned: Vec<IpAddr> = egress.keys().copied().collect();
        self.allow_unowned(Direction::Egress, &owned, unknown);
    }

    /// What each exposure lets in ([`exposure`]); SCTP exposures are
    /// problems, targets that disagree a warning.
    fn exposures(&mut self) -> ExposurePieces<'a> {
        let ir = self.ir;
        let mut exposure_pieces = ExposurePieces::new();
        for (i, x) in ir.exposures.iter().enumerate() {
            if x.proto == Proto::Sctp {
                self.problems.push(format!(
                    "Windows Firewall cannot match SCTP ports, but service {} is exposed on sctp/{}",
                    x.service, x.port
                ));
                continue;
            }
            let (chain, p, disagree) = exposure(ir, x, &mut |id: &str| self.pieces(id));
            if disagree {
                self.warnings.push(disagreement(x));
            }
            exposure_pieces.insert(i, (chain, p));
        }
        exposure_pieces
    }

    /// Inbound rules for each group of local addresses: its exposures, then
    /// its host-network pods' ports, then its base chain (or allow all) on
    /// every other (proto, port).
    fn inbound(
        &mut self,
        groups: &BTreeMap<Signature<'a>, Vec<IpAddr>>,
        exposure_pieces: &ExposurePieces<'a>,
    ) {
        for ((chain, claims, exposures), addrs) in groups {
            let local: Vec<String> = addrs.iter().map(IpAddr::to_string).collect();
            for (_, i) in exposures {
                if let Some((target_chain, p)) = exposure_pieces.get(i) {
                    self.emit(Direction::Ingress, *target_chain, &local, p.clone());
                }
            }
            for ((proto, port), hostpod) in claims {
                let p = only_port(&self.pieces(hostpod), *proto, *port);
                self.emit(Direction::Ingress, Some(hostpod), &local, p);
            }
            let claimed: Vec<(Proto, u16)> = claims
                .iter()
                .map(|(k, _)| *k)
                .chain(exposures.iter().map(|(k, _)| *k))
                .collect();
            let rest = match chain {
                Some(c) => self.pieces(c),
                None => vec![everything()],
            };
            self.emit(
                Direction::Ingress,
                *chain,
                &local,
                remove_ports(rest, &claimed),
            );
        }
    }

    /// Refuse with every problem, or name the generation and write
    /// `rules.json` and `rules.ps1`.
    fn finish(self) -> Result<RenderOutput, String> {
        let Renderer {
            ir,
            out,
            mut problems,
            warnings,
            ..
        } = self;
        if !problems.is_empty() {
            problems.sort();
            problems.dedup();
            return Err(format!(
                "windows-firewall cannot express node `{}` exactly: {}",
                ir.node,
                problems.join("; ")
            ));
        }
        // Analyze mode and logging are declared unsupported in `info()`: the
        // host reports those gaps once per policy, with the policy's span.
        let set = rule_set(ir, out)?;
        let json = serde_json::to_string_pretty(&set).map_err(|e| e.to_string())? + "\n";
        Ok(RenderOutput {
            artifacts: vec![
                Artifact {
                    name: "rules.json".into(),
                    content: json,
                },
                Artifact {
                    name: "rules.ps1".into(),
                    content: script(&set),
                },
            ],
            warnings,
        })
    }
}

/// Inbound: per address, what decides each (proto, port): an exposure
/// on that address first (kube-proxy translates before anything else
/// sees the packet), then a host-network pod's port, then the address's
/// base endpoint (none: the node does not judge it, allow all).
struct Inbound<'a> {
    /// The base endpoint's ingress chain, by address.
    base: BTreeMap<IpAddr, &'a str>,
    /// Host-network pods' ports and their ingress chains, by address.
    ports: BTreeMap<IpAddr, BTreeMap<(Proto, u16), &'a str>>,
    /// The exposures on each address and (proto, port), by index.
    exposed: BTreeMap<IpAddr, BTreeMap<(Proto, u16), usize>>,
}

impl<'a> Inbound<'a> {
    fn of(ir: &'a NodeIr) -> Self {
        let mut base: BTreeMap<IpAddr, &str> = BTreeMap::new();
        let mut ports: BTreeMap<IpAddr, BTreeMap<(Proto, u16), &str>> = BTreeMap::new();
        for e in ir.endpoints.iter().filter(|e| e.local) {
            for a in &e.addresses {
                if e.kind == EndpointKind::HostPod {
                    let m = ports.entry(*a).or_default();
                    for pp in &e.ports {
                        m.entry((pp.proto, pp.port)).or_insert(&e.ingress);
                    }
                } else {
                    base.entry(*a).or_insert(&e.ingress);
                }
            }
        }
        // The first exposure on an address and (proto, port) is the one
        // `NodeIr::evaluate_exposure` applies.
        let mut exposed: BTreeMap<IpAddr, BTreeMap<(Proto, u16), usize>> = BTreeMap::new();
        for (i, x) in ir.exposures.iter().enumerate() {
            let addrs = match x.kind {
                ExposureKind::NodePort => &ir.addresses,
                ExposureKind::LoadBalancer => &x.addresses,
            };
            for a in addrs {
                exposed
                    .entry(*a)
                    .or_default()
                    .entry((x.proto, x.port))
                    .or_insert(i);
            }
        }
        Inbound {
            base,
            ports,
            exposed,
        }
    }

    /// The local addresses grouped by what decides their traffic, and all
    /// of them (sorted).
    fn groups(&self) -> (BTreeMap<Signature<'a>, Vec<IpAddr>>, Vec<IpAddr>) {
        let mut groups: BTreeMap<Signature<'a>, Vec<IpAddr>> = BTreeMap::new();
        let locals: std::collections::BTreeSet<IpAddr> = self
            .base
            .keys()
            .chain(self.ports.keys())
            .chain(self.exposed.keys())
            .copied()
            .collect();
        for a in &locals {
            let exposures: Vec<((Proto, u16), usize)> = self
                .exposed
                .get(a)
                .map(|m| m.iter().map(|(k, v)| (*k, *v)).collect())
                .unwrap_or_default();
            let claims = self
                .ports
                .get(a)
                .map(|m| {
                    m.iter()
                        .filter(|(k, _)| !exposures.iter().any(|(x, _)| x == *k))
                        .map(|(k, v)| (*k, *v))
                        .collect()
                })
                .unwrap_or_default();
            groups
                .entry((self.base.get(a).copied(), claims, exposures))
                .or_default()
                .push(*a);
        }
        (groups, locals.into_iter().collect())
    }
}

/// The warning for an exposure whose targets admit different sources.
fn disagreement(x: &Exposure) -> RenderWarning {
    RenderWarning {
        message: format!(
            "the targets of service {} ({} {}/{}) admit different sources; Windows Firewall cannot tell which target kube-proxy picks, so only sources every target admits are allowed",
            x.service,
            match x.kind {
                ExposureKind::NodePort => "NodePort",
                ExposureKind::LoadBalancer => "LoadBalancer",
            },
            x.proto,
            x.port
        ),
        rule: None,
        policy: None,
    }
}

/// The rules sorted and named after their digest (the generation).
fn rule_set(ir: &NodeIr, mut out: Vec<FwRule>) -> Result<RuleSet, String> {
    out.sort();
    let digest = Sha256::digest(serde_json::to_vec(&out).map_err(|e| e.to_string())?);
    let generation: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    for (i, r) in out.iter_mut().enumerate() {
        r.name = format!("rf-{generation}-{i:05}");
    }
    Ok(RuleSet {
        cluster: ir.cluster.clone(),
        node: ir.node.clone(),
        group: format!("ringfence-{generation}"),
        generation,
        default_inbound: "Block".into(),
        default_outbound: "Block".into(),
        rules: out,
    })
}

/// What an exposure lets in, as pieces of the exposure's protocol and port
/// (before translation): the sources the first target's ingress chain
/// admits on its target port, narrowed to those every other target admits
/// too. Returns the chain the pieces' rules belong to, the pieces, and
/// whether the targets disagree (so the intersection drops something).
/// No target: nothing is let in (kube-proxy has nowhere to send it).
fn exposure<'a>(
    ir: &'a NodeIr,
    x: &'a Exposure,
    pieces: &mut impl FnMut(&str) -> Vec<Piece>,
) -> (Option<&'a str>, Vec<Piece>, bool) {
    let mut per_target: Vec<(&'a str, Vec<Piece>, Addrs)> = Vec::new();
    for t in &x.targets {
        let Some(e) = ir.endpoint(&t.endpoint) else {
            continue; // `NodeIr::validate` rules this out
        };
        let chain = t.chain.as_deref().unwrap_or(&e.ingress);
        let p = only_port(&pieces(chain), x.proto, t.port);
        let mut allowed = Addrs::none();
        for q in &p {
            allowed = allowed.union(&q.addrs);
        }
        per_target.push((chain, p, allowed));
    }
    let Some(((chain, first, _), rest)) = per_target.split_first() else {
        return (None, Vec::new(), false);
    };
    let mut common = per_target[0].2.clone();
    for (_, _, a) in rest {
        common = common.intersect(a);
    }
    let disagree = per_target.iter().any(|(_, _, a)| *a != common);
    let port = Some(IntervalSet::range(x.port, x.port));
    let out = first
        .iter()
        .map(|q| Piece {
            addrs: q.addrs.intersect(&common),
            ports: port.clone(),
            ..q.clone()
        })
        .filter(|q| !q.addrs.is_empty())
        .collect();
    (Some(*chain), out, disagree)
}

fn everything() -> Piece {
    Piece {
        rule: None,
        proto: Proto::Any,
        ports: None,
        addrs: Addrs::all(),
    }
}

/// Single addresses as ranges.
fn of_ips<'a>(ips: impl IntoIterator<Item = &'a IpAddr>) -> Addrs {
    let (v4, v6) = interval::of_ips(ips.into_iter().copied());
    Addrs { v4, v6 }
}

/// Unknown pods: the node's pod ranges minus every pod it knows (none when
/// it lets unknown pods pass).
fn unknown_pods(ir: &NodeIr) -> Addrs {
    if ir.unknown_pods != Action::Deny {
        return Addrs::none();
    }
    let (v4, v6) = interval::of_nets(ir.pod_cidrs.iter().copied());
    let ranges = Addrs { v4, v6 };
    let known = of_ips(
        ir.endpoints
            .iter()
            .filter(|e| e.local)
            .flat_map(|e| &e.addresses)
            .chain(&ir.unmanaged),
    );
    ranges.subtract(&known)
}

/// Every address except `owned` and the unknown pods, as `-LocalAddress` items.
fn complement(owned: &[IpAddr], unknown: &Addrs) -> Vec<String> {
    let rest = Addrs::all().subtract(&of_ips(owned)).subtract(unknown);
    addresses(&rest)
}

fn addresses(a: &Addrs) -> Vec<String> {
    if a.is_all() {
        return vec!["Any".into()];
    }
    a.v4.ranges()
        .iter()
        .map(|r| show_v4(*r))
        .chain(a.v6.ranges().iter().map(|r| show_v6(*r)))
        .collect()
}

/// Turn pieces into rules for `local` addresses in one direction.
fn emit(
    ir: &NodeIr,
    dir: Direction,
    chain: Option<&str>,
    local: &[String],
    pieces: Vec<Piece>,
    out: &mut Vec<FwRule>,
    problems: &mut Vec<String>,
) {
    if local.is_empty() {
        return;
    }
    let c = chain.and_then(|c| ir.chain(c));
    for p in pieces {
        let rule = p.rule.and_then(|i| c.map(|c| &c.rules[i]));
        let ports: Vec<String> = p
            .ports
            .as_ref()
            .map(|r| {
                r.ranges()
                    .iter()
                    .map(|(a, b)| {
                        if a == b {
                            a.to_string()
                        } else {
                            format!("{a}-{b}")
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        // (protocol, remote addresses) per rule to write.
        let variants: Vec<(&str, Addrs)> = match p.proto {
            Proto::Any => vec![("Any", p.addrs.clone())],
            Proto::Tcp => vec![("TCP", p.addrs.clone())],
            Proto::Udp => vec![("UDP", p.addrs.clone())],
            Proto::Sctp => {
                if !ports.is_empty() {
                    problems.push(format!(
                        "Windows Firewall cannot match SCTP ports, but {} applies to only some SCTP ports (its own ports, or ports a host-network pod or an exposure owns)",
                        match rule {
                            Some(r) => format!("rule {} of policy {}", r.id, r.policy),
                            None => "traffic no policy judges".into(),
                        },
                    ));
                    continue;
                }
                vec![("132", p.addrs.clone())]
            }
            Proto::Icmp => vec![
                (
                    "ICMPv4",
                    Addrs {
                        v4: p.addrs.v4.clone(),
                        v6: IntervalSet::empty(),
                    },
                ),
                (
                    "ICMPv6",
                    Addrs {
                        v4: IntervalSet::empty(),
                        v6: p.addrs.v6.clone(),
                    },
                ),
            ],
        };
        for (protocol, addrs) in variants {
            if addrs.is_empty() {
                continue;
            }
            let remote = addresses(&addrs);
            for chunk in remote.chunks(MAX_ADDRESSES_PER_RULE) {
                let (local_port, remote_port) = match dir {
                    Direction::Ingress => (ports.clone(), Vec::new()),
                    Direction::Egress => (Vec::new(), ports.clone()),
                };
                out.push(FwRule {
                    name: String::new(),
                    direction: match dir {
                        Direction::Ingress => "Inbound",
                        Direction::Egress => "Outbound",
                    }
                    .into(),
                    protocol: protocol.into(),
                    local_address: local.to_vec(),
                    remote_address: chunk.to_vec(),
                    local_port,
                    remote_port,
                    rule: rule.map(|r| r.id.clone()),
                    policy: rule.map(|r| r.policy.clone()),
                    chain: chain.map(str::to_owned),
                });
            }
        }
    }
}

/// `s` without control characters, for a comment line.
fn one_line(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

/// A PowerShell single-quoted string.
fn ps(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn ps_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| ps(s)).collect();
    format!("@({})", items.join(","))
}

/// `rules.ps1`: install the group disabled, swap, retire old generations.
fn script(set: &RuleSet) -> String {
    let mut s = String::with_capacity(256 * set.rules.len() + 4096);
    let _ = write!(
        s,
        r#"#Requires -RunAsAdministrator
#Requires -Modules NetSecurity
# ringfence windows-firewall for node {node} of cluster {cluster}: generated, do not edit.
# Installs rule group {group} ({n} allow rules) and retires older ringfence groups.
# Order (see plugins/windows-firewall/README.md): create every new rule disabled;
# disable the old groups; enable the new group; set default-block profiles;
# remove the old groups. Any error before the new group is enabled removes
# the new rules and re-enables the old ones, leaving the previous state.
$ErrorActionPreference = 'Stop'
$Group = {group_q}
$Expected = {n}

$existing = @(Get-NetFirewallRule -Group $Group -ErrorAction SilentlyContinue)
if ($existing.Count -eq $Expected -and @($existing | Where-Object {{ $_.Enabled -ne 'True' }}).Count -eq 0) {{
    Write-Output "ringfence: $Group is already installed"
}} else {{
    if ($existing.Count -gt 0) {{ Remove-NetFirewallRule -Group $Group }}
    $rules = @(
"#,
        // Names end up in comments: no line breaks may escape them.
        node = one_line(&set.node),
        cluster = one_line(&set.cluster),
        group = set.group,
        group_q = ps(&set.group),
        n = set.rules.len(),
    );
    for (i, r) in set.rules.iter().enumerate() {
        let mut fields = vec![
            format!("Name={}", ps(&r.name)),
            format!(
                "Description={}",
                ps(&match (&r.rule, &r.policy) {
                    (Some(rule), Some(policy)) => format!("rule {rule} of policy {policy}"),
                    _ => "traffic ringfence does not judge".into(),
                })
            ),
            format!("Direction={}", ps(&r.direction)),
            format!("Protocol={}", ps(&r.protocol)),
            format!("LocalAddress={}", ps_list(&r.local_address)),
            format!("RemoteAddress={}", ps_list(&r.remote_address)),
        ];
        if !r.local_port.is_empty() {
            fields.push(format!("LocalPort={}", ps_list(&r.local_port)));
        }
        if !r.remote_port.is_empty() {
            fields.push(format!("RemotePort={}", ps_list(&r.remote_port)));
        }
        let sep = if i + 1 < set.rules.len() { "," } else { "" };
        let _ = writeln!(s, "        @{{{}}}{sep}", fields.join("; "));
    }
    let _ = write!(
        s,
        r#"    )
    $old = @(Get-NetFirewallRule -Group 'ringfence-*' -ErrorAction SilentlyContinue |
        Where-Object {{ $_.Group -ne $Group -and $_.Enabled -eq 'True' }})
    $oldGroups = @($old | Select-Object -ExpandProperty Group -Unique)
    try {{
        foreach ($r in $rules) {{
            New-NetFirewallRule @r -DisplayName $r.Name -Group $Group -Action Allow -Enabled False -Profile Any | Out-Null
        }}
        foreach ($g in $oldGroups) {{ Disable-NetFirewallRule -Group $g }}
        Enable-NetFirewallRule -Group $Group
    }} catch {{
        $err = $_
        Remove-NetFirewallRule -Group $Group -ErrorAction SilentlyContinue
        foreach ($g in $oldGroups) {{ Enable-NetFirewallRule -Group $g -ErrorAction SilentlyContinue }}
        throw $err
    }}
}}
Set-NetFirewallProfile -All -Enabled True -DefaultInboundAction Block -DefaultOutboundAction Block
Get-NetFirewallRule -Group 'ringfence-*' -ErrorAction SilentlyContinue |
    Where-Object {{ $_.Group -ne $Group }} | Remove-NetFirewallRule
Write-Output "ringfence: $Group active ({n} rules)"
"#,
        n = set.rules.len(),
    );
    s
}

/// The plugin entry points (wasm32 builds only).
#[cfg(target_arch = "wasm32")]
mod plugin {
    use ringfence_plugin_sdk::Backend;
    use ringfence_schema::ir::NodeIr;
    use ringfence_schema::plugin::{PluginInfo, RenderOutput};

    struct WindowsFirewall;

    impl Backend for WindowsFirewall {
        fn info() -> PluginInfo {
            super::info()
        }
        fn render(ir: &NodeIr) -> Result<RenderOutput, String> {
            super::render(ir)
        }
    }

    ringfence_plugin_sdk::export_backend!(WindowsFirewall);
}
