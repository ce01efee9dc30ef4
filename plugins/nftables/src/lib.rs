//! The Linux backend: one node's IR as one self-replacing nftables table.
//!
//! `rules.nft` owns `table inet ringfence` and nothing else. It starts with
//! `table` / `delete table` / `table { … }`, so one `nft -f` replaces the
//! table, its sets and its counters in a single transaction, whether or not
//! it existed, and leaves every other table alone.
//!
//! Inside the table:
//!
//! - each IR address set becomes `<name>_v4` / `<name>_v6` sets: interval
//!   sets of its prefixes merged into ranges, or plain hash sets when no two
//!   of a family's addresses are adjacent (empty families are skipped);
//! - each distinct list of several port ranges becomes one `ports-<n>` set,
//!   shared by every rule that matches it;
//! - verdict maps dispatch each packet to the chain of its local endpoint:
//!   `egress-v4` on the source address, `hostports-v4` on destination
//!   address . protocol . port for host-network pods, `ingress-v4` on the
//!   destination address (and the `-v6` twins), so the cost of a packet does
//!   not grow with the number of endpoints or peers. In a full IR,
//!   addresses that follow each other and go to one chain are one range of
//!   an interval map (`local-*` likewise), so a node's file holds a block of
//!   pods as one element, not one per pod;
//! - hash sets and maps declare their exact `size`: the table is replaced
//!   whole, never grown, and a known size lets the kernel build a fixed hash
//!   table instead of growing a resizable one element by element (loading
//!   takes ~10 % less time) — except in a live IR, where the pods arrive
//!   with the node's membership (below);
//! - unknown pods: with the node's pod ranges in `podnets-v4`/`-v6` and the
//!   addresses of every pod the node knows in `local-v4`/`-v6`, `forward`
//!   drops traffic from or to an address of the ranges no pod claims
//!   (`unknown_pods: deny`) before anything else judges it; traffic between
//!   a pod and its own node (input, output) is not checked;
//! - base chains `forward`, `input` and `output` accept established traffic
//!   and IPv6 neighbour discovery (IPv6's ARP, which policy cannot mean to
//!   block), drop invalid traffic, judge traffic kube-proxy translated for a
//!   NodePort/LoadBalancer exposure (`exposures`), then jump to `dispatch`:
//!   the egress side (the chain returns on allow, drops on deny), then the
//!   ingress side (accept or drop). One `dispatch` chain binds each map once
//!   instead of once per hook. Traffic no map knows is not ours: the chain
//!   policy accepts it;
//! - each IR chain becomes `c_<id>`, one nft rule per IR rule and address
//!   family, each with `counter` and `comment "<rule id>"`. In analyze mode a
//!   deny counts (and logs) and lets the traffic pass.
//!
//! This is exactly [`NodeIr::evaluate`] and [`NodeIr::evaluate_exposure`]:
//! dispatch picks the same endpoint (first in IR order, a host-network pod's
//! port before the node), and a chain's rules keep their order.
//!
//! **Live IRs** (`live: true`) hold no pods: the agent fills them in from
//! the node's membership with `add`/`delete element` in one transaction
//! (the binding is in `schema/docs/membership.md`). So every live set has
//! both `<name>_v4` and `<name>_v6`, without `size` (they grow); the maps
//! `egress-*`, `ingress-*` and `local-*` always exist; and each exposure `i`
//! of the IR dispatches through the named maps `expose-<i>-v4`/`-v6`
//! (`address . port : jump c_<chain>`) rather than an anonymous one.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use ringfence_schema::ir::{
    Action, Chain, Direction, EndpointKind, ExposureKind, Mode, NodeIr, Os, Rule,
};
use ringfence_schema::net::{AddressSet, PortRange, Proto};
use ringfence_schema::plugin::{Artifact, Capabilities, PLUGIN_ABI, PluginInfo, RenderOutput};

use ringfence_schema::net::write::{push_ip, push_u32, push_v4, push_v4net, push_v6, push_v6net};

/// The membership binding (`ringfence_nft::membership`, shared with the agent).
pub use ringfence_nft::membership as members;

/// Backend name, as intent refers to it.
pub const NAME: &str = "nftables";
/// The table `rules.nft` owns (the one the screen allows).
pub use ringfence_nft::TABLE;
/// The one artifact.
pub const ARTIFACT: &str = "rules.nft";

/// What this backend is and can express: everything the IR can say.
pub fn info() -> PluginInfo {
    PluginInfo {
        name: NAME.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        abi: PLUGIN_ABI,
        os: Os::Linux,
        capabilities: Capabilities {
            ipv6: true,
            port_ranges: true,
            logging: true,
            analyze_mode: true,
            first_match: true,
            exposures: true,
            max_rules: None,
            live_membership: true,
        },
        description: "Linux nodes: one atomic, self-replacing `table inet ringfence` (nft -f)"
            .into(),
    }
}

/// Render `ir` (which must pass [`NodeIr::validate`]) into `rules.nft`.
pub fn render(ir: &NodeIr) -> RenderOutput {
    render_reusing(ir, None)
}

/// [`render`], copying set blocks from `written` where it has them and
/// adding the ones it writes.
pub fn render_reusing(ir: &NodeIr, written: Option<&mut SetBlocks>) -> RenderOutput {
    // ~20 bytes per set prefix and ~150 per rule and endpoint: one
    // allocation for the whole file in the common case.
    let prefixes: usize = ir.sets.iter().map(|s| s.len()).sum();
    let rules: usize = ir.chains.iter().map(|c| c.rules.len()).sum();
    let mut r = Renderer {
        ir,
        out: String::with_capacity(8192 + 20 * prefixes + 150 * (rules + ir.endpoints.len())),
        ports: PortSets::new(ir),
        written,
    };
    r.file();
    RenderOutput {
        artifacts: vec![Artifact {
            name: ARTIFACT.into(),
            content: r.out,
        }],
        warnings: Vec::new(),
    }
}

/// One address family, as nft spells it in matches and set types.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn of(ip: &IpAddr) -> Family {
        if ip.is_ipv4() { Family::V4 } else { Family::V6 }
    }
    /// The payload keyword: `ip` or `ip6`.
    fn kw(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }
    /// Suffix of set and map names.
    fn suffix(self) -> &'static str {
        match self {
            Family::V4 => "v4",
            Family::V6 => "v6",
        }
    }
    fn addr_type(self) -> &'static str {
        match self {
            Family::V4 => "ipv4_addr",
            Family::V6 => "ipv6_addr",
        }
    }
    fn icmp(self) -> &'static str {
        match self {
            Family::V4 => "icmp",
            Family::V6 => "ipv6-icmp",
        }
    }
}

const FAMILIES: [Family; 2] = [Family::V4, Family::V6];

/// Name of the nft chain for IR chain `id`. The prefix keeps IR ids apart
/// from the base and helper chains (the hot paths write `c_` directly).
fn chain_name(id: &str) -> String {
    format!("c_{id}")
}

/// A host-network pod's listening socket.
type HostPort = (IpAddr, Proto, u16);

/// Dispatch tables per family (`[v4, v6]`), each sorted by key, keys unique.
#[derive(Default)]
struct Dispatch<'a> {
    egress: [Vec<(IpAddr, &'a str)>; 2],
    hostports: [Vec<(HostPort, &'a str)>; 2],
    ingress: [Vec<(IpAddr, &'a str)>; 2],
}

impl<'a> Dispatch<'a> {
    /// The first endpoint in IR order wins each key, as in
    /// [`NodeIr::egress_endpoint`] and [`NodeIr::ingress_endpoint`].
    fn new(ir: &'a NodeIr) -> Self {
        let mut d = Dispatch::default();
        for e in ir.endpoints.iter().filter(|e| e.local) {
            for a in &e.addresses {
                let f = Family::of(a) as usize;
                if let Some(eg) = &e.egress {
                    d.egress[f].push((*a, eg));
                }
                if e.kind == EndpointKind::HostPod {
                    for pp in &e.ports {
                        d.hostports[f].push(((*a, pp.proto, pp.port), &e.ingress));
                    }
                } else {
                    d.ingress[f].push((*a, &e.ingress));
                }
            }
        }
        for f in 0..2 {
            first_wins(&mut d.egress[f], key);
            first_wins(&mut d.hostports[f], |&(a, proto, port)| {
                (key(&a), proto, port)
            });
            first_wins(&mut d.ingress[f], key);
        }
        d
    }
}

/// Sort `entries` by `order` of their keys (which must order them as `Ord`
/// does), keeping each key's first entry: a stable sort (pods' addresses
/// mostly come in runs already in order) and a pass, where inserting into
/// an ordered map cost a search per entry (a fifth of rendering a node of
/// 20,000 pods).
fn first_wins<K: PartialEq, V, O: Ord>(entries: &mut Vec<(K, V)>, order: impl Fn(&K) -> O) {
    entries.sort_by_key(|e| order(&e.0));
    entries.dedup_by(|later, first| later.0 == first.0);
}

/// An exposure's share of the traffic: the original destinations it owns
/// (earlier exposures win a shared `proto . address . port`) and its targets.
struct Expose<'a> {
    /// Its position in the IR's exposures (live IRs name maps by it).
    index: usize,
    service: &'a str,
    proto: Proto,
    port: u16,
    addresses: Vec<IpAddr>,
    /// (translated address, target port) → the chain judging it (the
    /// target's exposure chain or ingress), first target wins.
    targets: BTreeMap<(IpAddr, u16), &'a str>,
}

fn exposures(ir: &NodeIr) -> Vec<Expose<'_>> {
    let mut owner: BTreeMap<(Proto, u16, IpAddr), usize> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, x) in ir.exposures.iter().enumerate() {
        let dsts = match x.kind {
            ExposureKind::NodePort => &ir.addresses,
            ExposureKind::LoadBalancer => &x.addresses,
        };
        let mut addresses = Vec::new();
        for a in dsts {
            if let Entry::Vacant(v) = owner.entry((x.proto, x.port, *a)) {
                v.insert(i);
                addresses.push(*a);
            }
        }
        let mut targets = BTreeMap::new();
        for t in &x.targets {
            if let Some(e) = ir.endpoint(&t.endpoint) {
                let chain = t.chain.as_deref().unwrap_or(&e.ingress);
                for a in &e.addresses {
                    targets.entry((*a, t.port)).or_insert(chain);
                }
            }
        }
        // A live IR's targets arrive with the membership.
        if !addresses.is_empty() && (ir.live || !targets.is_empty()) {
            addresses.sort();
            out.push(Expose {
                index: i,
                service: &x.service,
                proto: x.proto,
                port: x.port,
                addresses,
                targets,
            });
        }
    }
    out
}

/// Most fixed addresses a live set family holds one by one.
const LIVE_HOSTS: u128 = 4096;

/// Every address of the disjoint prefixes `nets`, when they are at most
/// [`LIVE_HOSTS`]; `None` beyond.
fn v4_hosts(nets: &[ipnet::Ipv4Net]) -> Option<Vec<Ipv4Addr>> {
    let spans: Vec<(u128, u128)> = nets
        .iter()
        .map(|n| {
            (
                u32::from(n.network()).into(),
                u32::from(n.broadcast()).into(),
            )
        })
        .collect();
    Some(
        each_address(&spans)?
            .map(|a| Ipv4Addr::from(a as u32))
            .collect(),
    )
}

/// [`v4_hosts`] for IPv6.
fn v6_hosts(nets: &[ipnet::Ipv6Net]) -> Option<Vec<Ipv6Addr>> {
    let spans: Vec<(u128, u128)> = nets
        .iter()
        .map(|n| (n.network().into(), n.broadcast().into()))
        .collect();
    Some(each_address(&spans)?.map(Ipv6Addr::from).collect())
}

/// Every number in the inclusive `spans`, when they are at most [`LIVE_HOSTS`].
fn each_address(spans: &[(u128, u128)]) -> Option<impl Iterator<Item = u128> + '_> {
    let mut total: u128 = 0;
    for (a, b) in spans {
        total = total.saturating_add(b - a).saturating_add(1);
        if total > LIVE_HOSTS {
            return None;
        }
    }
    Some(spans.iter().flat_map(|&(a, b)| a..=b))
}

/// The `ports-<n>` sets: each distinct list of two or more port ranges, in
/// the order rules first use them (a single range is matched inline).
struct PortSets<'a>(BTreeMap<&'a [PortRange], usize>);

impl<'a> PortSets<'a> {
    fn new(ir: &'a NodeIr) -> Self {
        let mut m = BTreeMap::new();
        let lists = ir
            .chains
            .iter()
            .flat_map(|c| &c.rules)
            .map(|r| &r.ports[..]);
        for ports in lists.filter(|p| p.len() > 1) {
            let n = m.len();
            m.entry(ports).or_insert(n);
        }
        PortSets(m)
    }
}

/// Set blocks already written, by set name and form (live or full). The
/// nodes of a run rendered in one plugin instance mostly share their sets,
/// and copying a block is far cheaper than writing it again. A block is
/// reused only for a set equal to the one it was written from.
#[derive(Default)]
pub struct SetBlocks(HashMap<(String, bool), (AddressSet, String)>);

struct Renderer<'a> {
    ir: &'a NodeIr,
    out: String,
    ports: PortSets<'a>,
    written: Option<&'a mut SetBlocks>,
}

impl Renderer<'_> {
    fn line(&mut self, indent: usize, s: &str) {
        for _ in 0..indent {
            self.out.push('\t');
        }
        self.out.push_str(s);
        self.out.push('\n');
    }

    fn file(&mut self) {
        let ir = self.ir;
        let _ = writeln!(
            self.out,
            "#!/usr/sbin/nft -f\n# ringfence {} for node {} of cluster {}: generated, do not edit.\n\
             # Replaces table inet {TABLE} atomically; touches no other table.",
            NAME,
            comment(&ir.node),
            comment(&ir.cluster)
        );
        self.line(0, &format!("table inet {TABLE}"));
        self.line(0, &format!("delete table inet {TABLE}"));
        self.line(0, &format!("table inet {TABLE} {{"));
        for s in &ir.sets {
            self.set(s);
        }
        self.port_sets();
        let unknown = self.unknown_sets();
        let dispatch = Dispatch::new(ir);
        let exposures = exposures(ir);
        self.maps(&dispatch);
        if ir.live {
            self.exposure_maps(&exposures);
        }
        let dispatches = self.dispatch_chain(&dispatch);
        for hook in ["forward", "input", "output"] {
            self.base_chain(hook, dispatches, !exposures.is_empty(), &unknown);
        }
        self.exposure_chains(&exposures);
        for c in &ir.chains {
            self.chain(c);
        }
        self.line(0, "}");
    }

    /// One IR set's block, copied if this instance wrote it before. A family
    /// whose prefixes are all single addresses becomes a plain hash set
    /// (cheaper for nft to load than an interval set); others an interval
    /// set of the (already disjoint) prefixes.
    fn set(&mut self, s: &AddressSet) {
        let live = self.ir.live && s.live;
        if let Some(SetBlocks(w)) = &self.written
            && let Some((from, block)) = w.get(&(s.name.clone(), live))
            && from == s
        {
            self.out.push_str(block);
            return;
        }
        let start = self.out.len();
        if live {
            self.live_set(s);
        } else {
            self.full_set(s);
        }
        if let Some(SetBlocks(w)) = &mut self.written {
            w.insert(
                (s.name.clone(), live),
                (s.clone(), self.out[start..].to_string()),
            );
        }
    }

    /// A live set: both families, no `size` (pods are added at run time).
    /// Its fixed part (node addresses, externals) is written address by
    /// address in a hash set while it has at most [`LIVE_HOSTS`] addresses;
    /// only a larger one makes it an interval set. nft 1.0's deletes from
    /// an interval set each walk the whole set: 300 pod deletes from a
    /// 30,000-address interval set took 7.5 s of CPU, from a hash set 0.1 s.
    fn live_set(&mut self, s: &AddressSet) {
        let name = format!("{}_v4", s.name);
        match v4_hosts(&s.v4) {
            Some(a) => {
                self.grow_set(&name, Family::V4.addr_type(), false);
                self.elements(&a, |out, a| push_v4(out, *a));
            }
            None => {
                self.grow_set(&name, Family::V4.addr_type(), true);
                self.elements(&s.v4, push_v4net);
            }
        }
        let name = format!("{}_v6", s.name);
        match v6_hosts(&s.v6) {
            Some(a) => {
                self.grow_set(&name, Family::V6.addr_type(), false);
                self.elements(&a, |out, a| push_v6(out, *a));
            }
            None => {
                self.grow_set(&name, Family::V6.addr_type(), true);
                self.elements(&s.v6, push_v6net);
            }
        }
    }

    /// A growable set's header (closed by [`Renderer::elements`]).
    fn grow_set(&mut self, name: &str, ty: &str, ranges: bool) {
        let _ = write!(self.out, "\tset {name} {{ type {ty};");
        if ranges {
            self.out.push_str(" flags interval;");
        }
        self.out.push('\n');
    }

    /// A set of a full IR: its families with addresses, each as a hash set
    /// of exact size when no two addresses are adjacent, else an interval
    /// set of the merged ranges.
    fn full_set(&mut self, s: &AddressSet) {
        if !s.v4.is_empty() {
            let spans = spans(s.v4.iter().map(|n| {
                let (a, b) = (u32::from(n.network()), u32::from(n.broadcast()));
                (a.into(), b.into(), ())
            }));
            self.span_set(&format!("{}_v4", s.name), Family::V4, &spans);
        }
        if !s.v6.is_empty() {
            let spans = spans(
                s.v6.iter()
                    .map(|n| (n.network().into(), n.broadcast().into(), ())),
            );
            self.span_set(&format!("{}_v6", s.name), Family::V6, &spans);
        }
    }

    /// A named set of `spans`: hash set or interval set as [`single`] says.
    fn span_set(&mut self, name: &str, fam: Family, spans: &[Span<()>]) {
        let hosts = single(spans);
        self.set_header(name, fam.addr_type(), hosts.then_some(spans.len()));
        self.elements(spans, |out, s| push_span(out, fam, s));
    }

    /// `podnets-*` (the node's pod ranges) and `local-*` (the pods it
    /// knows), when unknown pods are dropped; the families that have ranges.
    fn unknown_sets(&mut self) -> Vec<Family> {
        let ir = self.ir;
        if ir.unknown_pods != Action::Deny {
            return Vec::new();
        }
        let mut fams = Vec::new();
        for fam in FAMILIES {
            let nets: Vec<IpNet> = ir
                .pod_cidrs
                .iter()
                .filter(|n| {
                    matches!(
                        (n, fam),
                        (IpNet::V4(_), Family::V4) | (IpNet::V6(_), Family::V6)
                    )
                })
                .map(|n| n.trunc())
                .collect();
            if nets.is_empty() {
                continue;
            }
            self.grow_set(&format!("podnets-{}", fam.suffix()), fam.addr_type(), true);
            self.elements(&IpNet::aggregate(&nets), |out, n| {
                out.push_str(&n.to_string())
            });
            let mut local: Vec<IpAddr> = ir
                .endpoints
                .iter()
                .filter(|e| e.local)
                .flat_map(|e| &e.addresses)
                .chain(&ir.unmanaged)
                .filter(|a| nets.iter().any(|n| n.contains(*a)))
                .copied()
                .collect();
            // One family: ordered by the integer key as by `Ord`.
            local.sort_unstable_by_key(key);
            local.dedup();
            let name = format!("local-{}", fam.suffix());
            let spans = spans(local.iter().map(|a| (key(a), key(a), ())));
            if ir.live || single(&spans) {
                self.grow_set(&name, fam.addr_type(), false);
                self.elements(&local, |out, a| push_ip(out, *a));
            } else {
                self.grow_set(&name, fam.addr_type(), true);
                self.elements(&spans, |out, s| push_span(out, fam, s));
            }
            fams.push(fam);
        }
        fams
    }

    /// A named set's header: a hash set of `size` elements, or (`None`) an
    /// interval set.
    fn set_header(&mut self, name: &str, ty: &str, size: Option<usize>) {
        let _ = write!(self.out, "\tset {name} {{ type {ty};");
        match size {
            Some(n) => {
                let _ = write!(self.out, " size {n};");
            }
            None => self.out.push_str(" flags interval;"),
        }
        self.out.push_str("\n\t\telements = {\n");
    }

    /// The `ports-<n>` sets: hash sets of single ports, interval sets where
    /// a range has more than one.
    fn port_sets(&mut self) {
        let mut sets: Vec<_> = self.ports.0.iter().map(|(p, n)| (*n, *p)).collect();
        sets.sort_unstable();
        for (n, ports) in sets {
            let singles = ports.iter().all(|r| r.start == r.end);
            self.set_header(
                &format!("ports-{n}"),
                "inet_service",
                singles.then_some(ports.len()),
            );
            self.elements(ports, |out, r| {
                push_u32(out, r.start.into());
                if r.end != r.start {
                    out.push('-');
                    push_u32(out, r.end.into());
                }
            });
        }
    }

    /// The elements, eight per line, then the set's closing braces. Written
    /// straight into the output: sets are most of a large ruleset.
    fn elements<T>(&mut self, elems: &[T], write: impl Fn(&mut String, &T)) {
        if elems.is_empty() {
            self.out.push_str("\t}\n");
            return;
        }
        if !self.out.ends_with("elements = {\n") {
            self.out.push_str("\t\telements = {\n");
        }
        let n = elems.len();
        for (i, e) in elems.iter().enumerate() {
            self.out.push_str(if i % 8 == 0 { "\t\t\t" } else { " " });
            write(&mut self.out, e);
            if i + 1 < n {
                self.out.push(',');
            }
            if i % 8 == 7 || i + 1 == n {
                self.out.push('\n');
            }
        }
        self.out.push_str("\t\t}\n\t}\n");
    }

    fn maps(&mut self, d: &Dispatch<'_>) {
        for fam in FAMILIES {
            let f = fam as usize;
            self.dispatch_map(&format!("egress-{}", fam.suffix()), fam, &d.egress[f]);
            self.map(
                &format!("hostports-{}", fam.suffix()),
                &format!("{} . inet_proto . inet_service", fam.addr_type()),
                &d.hostports[f],
                |out, ((a, p, port), c)| {
                    push_ip(out, *a);
                    out.push_str(" . ");
                    out.push_str(p.as_str());
                    out.push_str(" . ");
                    push_u32(out, (*port).into());
                    out.push_str(" : jump c_");
                    out.push_str(c);
                },
            );
            self.dispatch_map(&format!("ingress-{}", fam.suffix()), fam, &d.ingress[f]);
        }
    }

    /// An address-keyed dispatch map. In a full IR, addresses that follow
    /// each other and go to the same chain merge into one range of an
    /// interval map (one element for a block of pods, not one per pod);
    /// when nothing merges, a hash map of exact size as [`Renderer::map`].
    fn dispatch_map(&mut self, name: &str, fam: Family, elems: &[(IpAddr, &str)]) {
        let spans = spans(elems.iter().map(|(a, c)| (key(a), key(a), *c)));
        if self.ir.live || single(&spans) {
            self.map(name, fam.addr_type(), elems, |out, (a, c)| {
                push_ip(out, *a);
                out.push_str(" : jump c_");
                out.push_str(c);
            });
            return;
        }
        let _ = writeln!(
            self.out,
            "\tmap {name} {{ type {} : verdict; flags interval;\n\t\telements = {{",
            fam.addr_type()
        );
        let n = spans.len();
        for (i, s) in spans.iter().enumerate() {
            self.out.push_str("\t\t\t");
            push_span(&mut self.out, fam, s);
            self.out.push_str(" : jump c_");
            self.out.push_str(s.value);
            self.out.push_str(if i + 1 < n { ",\n" } else { "\n" });
        }
        self.out.push_str("\t\t}\n\t}\n");
    }

    /// A verdict map, one element per line. A live IR's dispatch maps are
    /// always there and grow; a full IR's have their exact size, or are
    /// left out when empty.
    fn map<T>(&mut self, name: &str, key: &str, elems: &[T], write: impl Fn(&mut String, &T)) {
        let live = self.ir.live && !name.starts_with("hostports");
        if live && elems.is_empty() {
            let _ = writeln!(self.out, "\tmap {name} {{ type {key} : verdict;\n\t}}");
            return;
        }
        if elems.is_empty() {
            return;
        }
        if live {
            let _ = writeln!(
                self.out,
                "\tmap {name} {{ type {key} : verdict;\n\t\telements = {{"
            );
        } else {
            let _ = writeln!(
                self.out,
                "\tmap {name} {{ type {key} : verdict; size {};\n\t\telements = {{",
                elems.len()
            );
        }
        let n = elems.len();
        for (i, e) in elems.iter().enumerate() {
            self.out.push_str("\t\t\t");
            write(&mut self.out, e);
            self.out.push_str(if i + 1 < n { ",\n" } else { "\n" });
        }
        self.out.push_str("\t\t}\n\t}\n");
    }

    /// `dispatch`: the maps' lookups, egress before ingress, shared by the
    /// three hooks. `false` when it would be empty (nothing to jump to).
    fn dispatch_chain(&mut self, d: &Dispatch<'_>) -> bool {
        let live = self.ir.live;
        let has = |m: &[Vec<(IpAddr, &str)>; 2], fam: Family| live || !m[fam as usize].is_empty();
        let mut lines = Vec::new();
        for fam in FAMILIES {
            if has(&d.egress, fam) {
                lines.push(format!("{} saddr vmap @egress-{}", fam.kw(), fam.suffix()));
            }
        }
        for fam in FAMILIES {
            if !d.hostports[fam as usize].is_empty() {
                lines.push(format!(
                    "{} daddr . meta l4proto . th dport vmap @hostports-{}",
                    fam.kw(),
                    fam.suffix()
                ));
            }
        }
        for fam in FAMILIES {
            if has(&d.ingress, fam) {
                lines.push(format!("{} daddr vmap @ingress-{}", fam.kw(), fam.suffix()));
            }
        }
        if lines.is_empty() {
            return false;
        }
        self.line(1, "chain dispatch {");
        for l in &lines {
            self.line(2, l);
        }
        self.line(1, "}");
        true
    }

    fn base_chain(&mut self, hook: &str, dispatch: bool, exposures: bool, unknown: &[Family]) {
        self.line(1, &format!("chain {hook} {{"));
        self.line(
            2,
            &format!("type filter hook {hook} priority filter; policy accept;"),
        );
        self.line(
            2,
            "ct state established,related counter accept comment \"established\"",
        );
        // Neighbour discovery is IPv6's ARP (which inet tables never see):
        // address resolution must work whatever the policy says.
        self.line(
            2,
            "icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } counter accept comment \"ndp\"",
        );
        self.line(2, "ct state invalid counter drop comment \"invalid\"");
        // Unknown pods are cut off from everything but their own node
        // (kubelet probes reach them): forwarded traffic only.
        if hook == "forward" {
            for fam in unknown {
                for dir in ["saddr", "daddr"] {
                    self.line(
                        2,
                        &format!(
                            "{k} {dir} @podnets-{f} {k} {dir} != @local-{f} counter drop comment \"unknown-pod\"",
                            k = fam.kw(),
                            f = fam.suffix()
                        ),
                    );
                }
            }
        }
        if exposures {
            self.line(
                2,
                "ct status dnat counter jump exposures comment \"exposures\"",
            );
        }
        if dispatch {
            self.line(2, "jump dispatch");
        }
        self.line(1, "}");
    }

    /// `exposures` sends translated traffic to the exposure that owns its
    /// original destination; `expose-N` judges it by the target's ingress
    /// chain. Traffic no exposure owns returns to normal dispatch.
    fn exposure_chains(&mut self, xs: &[Expose<'_>]) {
        if xs.is_empty() {
            return;
        }
        self.line(1, "chain exposures {");
        let live = self.ir.live;
        for (i, x) in xs.iter().enumerate() {
            let i = if live { x.index } else { i };
            for fam in FAMILIES {
                let addrs: Vec<String> = x
                    .addresses
                    .iter()
                    .filter(|a| Family::of(a) == fam)
                    .map(|a| a.to_string())
                    .collect();
                if addrs.is_empty() {
                    continue;
                }
                self.line(
                    2,
                    &format!(
                        "meta l4proto {} ct original proto-dst {} ct original {} daddr {{ {} }} counter goto expose-{i} comment \"{}\"",
                        x.proto,
                        x.port,
                        fam.kw(),
                        addrs.join(", "),
                        comment(&format!("{} {}/{}", x.service, x.proto, x.port)),
                    ),
                );
            }
        }
        self.line(1, "}");
        for (i, x) in xs.iter().enumerate() {
            if live {
                self.line(1, &format!("chain expose-{} {{", x.index));
                for fam in FAMILIES {
                    self.line(
                        2,
                        &format!(
                            "{} daddr . th dport vmap @expose-{}-{}",
                            fam.kw(),
                            x.index,
                            fam.suffix()
                        ),
                    );
                }
                self.line(1, "}");
                continue;
            }
            self.line(1, &format!("chain expose-{i} {{"));
            for fam in FAMILIES {
                let elems: Vec<String> = x
                    .targets
                    .iter()
                    .filter(|((a, _), _)| Family::of(a) == fam)
                    .map(|((a, p), c)| format!("{a} . {p} : jump {}", chain_name(c)))
                    .collect();
                if !elems.is_empty() {
                    self.line(
                        2,
                        &format!(
                            "{} daddr . th dport vmap {{ {} }}",
                            fam.kw(),
                            elems.join(", ")
                        ),
                    );
                }
            }
            self.line(1, "}");
        }
    }

    /// A live IR's exposure maps: `expose-<i>-v4`/`-v6` for every exposure
    /// `i` of the IR (the agent adds targets to them), with its fixed
    /// targets (host-network pods).
    fn exposure_maps(&mut self, xs: &[Expose<'_>]) {
        for i in 0..self.ir.exposures.len() {
            let fixed = xs.iter().find(|x| x.index == i).map(|x| &x.targets);
            for fam in FAMILIES {
                let elems: Vec<((IpAddr, u16), &str)> = fixed
                    .into_iter()
                    .flatten()
                    .filter(|((a, _), _)| Family::of(a) == fam)
                    .map(|(k, c)| (*k, *c))
                    .collect();
                let name = format!("expose-{i}-{}", fam.suffix());
                let key = format!("{} . inet_service", fam.addr_type());
                self.map(&name, &key, &elems, |out, ((a, p), c)| {
                    push_ip(out, *a);
                    out.push_str(" . ");
                    push_u32(out, (*p).into());
                    out.push_str(" : jump c_");
                    out.push_str(c);
                });
            }
        }
    }

    fn chain(&mut self, c: &Chain) {
        self.out.push_str("\tchain c_");
        self.out.push_str(&c.id);
        self.out.push_str(" {\n");
        for r in &c.rules {
            self.rule(c, r);
        }
        self.out.push_str("\t}\n");
    }

    /// One nft rule per address family the rule's peer set has (one rule if
    /// it has no peer; none if its set is empty, as it then matches nothing).
    fn rule(&mut self, c: &Chain, r: &Rule) {
        let dir = match c.direction {
            Direction::Ingress => "saddr",
            Direction::Egress => "daddr",
        };
        let families: [Option<Option<Family>>; 2] = match &r.peer {
            None => [Some(None), None],
            Some(name) => {
                let s = self.ir.set(name);
                let live = self.ir.live;
                let has = |f| {
                    s.is_some_and(|s| {
                        (live && s.live)
                            || match f {
                                Family::V4 => !s.v4.is_empty(),
                                Family::V6 => !s.v6.is_empty(),
                            }
                    })
                };
                [
                    has(Family::V4).then_some(Some(Family::V4)),
                    has(Family::V6).then_some(Some(Family::V6)),
                ]
            }
        };
        let pass = r.action == Action::Allow || c.mode == Mode::Analyze;
        let verdict = match (pass, c.direction) {
            (false, _) => "drop",
            (true, Direction::Ingress) => "accept",
            (true, Direction::Egress) => "return",
        };
        let out = &mut self.out;
        for fam in families.into_iter().flatten() {
            out.push_str("\t\t");
            if let (Some(f), Some(set)) = (fam, &r.peer) {
                let _ = write!(out, "{} {dir} @{set}_{} ", f.kw(), f.suffix());
            }
            match r.proto {
                Proto::Any => {}
                Proto::Icmp => match fam {
                    Some(f) => {
                        out.push_str("meta l4proto ");
                        out.push_str(f.icmp());
                        out.push(' ');
                    }
                    None => out.push_str("meta l4proto { icmp, ipv6-icmp } "),
                },
                p if r.ports.is_empty() => {
                    out.push_str("meta l4proto ");
                    out.push_str(p.as_str());
                    out.push(' ');
                }
                p => {
                    out.push_str(p.as_str());
                    out.push_str(" dport ");
                    match self.ports.0.get(&r.ports[..]) {
                        Some(n) => {
                            let _ = write!(out, "@ports-{n}");
                        }
                        None => out.push_str(&r.ports[0].to_string()),
                    }
                    out.push(' ');
                }
            }
            out.push_str("counter ");
            if r.log {
                let _ = write!(out, "log prefix \"rf {} \" ", r.id);
            }
            let _ = writeln!(out, "{verdict} comment \"{}\"", r.id);
        }
    }
}

/// Consecutive addresses (as integers, either family) with one value.
struct Span<V> {
    first: u128,
    last: u128,
    value: V,
}

/// An address as an integer of its family.
fn key(a: &IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u32::from(*a).into(),
        IpAddr::V6(a) => (*a).into(),
    }
}

/// Disjoint `(first, last, value)` ranges in order, merged where one ends
/// right before the next and both have the same value.
fn spans<V: PartialEq>(ranges: impl IntoIterator<Item = (u128, u128, V)>) -> Vec<Span<V>> {
    let mut out: Vec<Span<V>> = Vec::new();
    for (first, last, value) in ranges {
        match out.last_mut() {
            Some(s) if s.last.checked_add(1) == Some(first) && s.value == value => s.last = last,
            _ => out.push(Span { first, last, value }),
        }
    }
    out
}

/// Every span a single address: nothing merges, and a hash set or map
/// (cheaper for nft to load than an interval one) holds them as well.
fn single<V>(spans: &[Span<V>]) -> bool {
    spans.iter().all(|s| s.first == s.last)
}

/// A span as nft reads it: an address, a prefix when the span is exactly
/// one, else `first-last`.
fn push_span<V>(out: &mut String, fam: Family, s: &Span<V>) {
    let addr = |out: &mut String, a: u128| match fam {
        Family::V4 => push_v4(out, Ipv4Addr::from(a as u32)),
        Family::V6 => push_v6(out, Ipv6Addr::from(a)),
    };
    addr(out, s.first);
    let host = s.last - s.first;
    if host == 0 {
        return;
    }
    if host & host.wrapping_add(1) == 0 && s.first & host == 0 {
        let bits = match fam {
            Family::V4 => 32,
            Family::V6 => 128,
        };
        out.push('/');
        push_u32(out, bits - host.count_ones());
    } else {
        out.push('-');
        addr(out, s.last);
    }
}

/// A comment nft accepts: no quotes, at most 128 bytes.
fn comment(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .take(120)
        .collect()
}

/// The plugin entry points (wasm32 builds only).
#[cfg(target_arch = "wasm32")]
mod plugin {
    use std::cell::RefCell;

    use ringfence_plugin_sdk::Backend;
    use ringfence_schema::ir::{NodeIr, Os};
    use ringfence_schema::plugin::{PluginInfo, RenderOutput};

    use super::SetBlocks;

    struct Nftables;

    thread_local! {
        /// The instance's set blocks: an instance lives for one node or one
        /// run of nodes.
        static WRITTEN: RefCell<SetBlocks> = RefCell::default();
    }

    impl Backend for Nftables {
        fn info() -> PluginInfo {
            super::info()
        }
        fn render(ir: &NodeIr) -> Result<RenderOutput, String> {
            if ir.os != Os::Linux {
                return Err(format!(
                    "nftables renders Linux nodes; node `{}` runs {}",
                    ir.node, ir.os
                ));
            }
            Ok(WRITTEN.with_borrow_mut(|w| super::render_reusing(ir, Some(w))))
        }
    }

    ringfence_plugin_sdk::export_backend!(Nftables);
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::{first_wins, key};

    /// Addresses of one family in a scrambled order, some repeated.
    fn scrambled(v6: bool) -> Vec<IpAddr> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..500)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let n = x % 97; // few distinct values: many repeats
                match v6 {
                    false => IpAddr::from([10, (n >> 8) as u8, n as u8, (n * 37) as u8]),
                    true => IpAddr::from([0xfd00, 0, 0, 0, 0, 0, (n * 7919) as u16, n as u16]),
                }
            })
            .collect()
    }

    #[test]
    fn first_wins_keeps_the_first_entry_of_each_address_in_address_order() {
        for v6 in [false, true] {
            let entries: Vec<(IpAddr, usize)> = scrambled(v6).into_iter().zip(0..).collect();
            let mut expected: Vec<(IpAddr, usize)> = Vec::new();
            let mut sorted = entries.clone();
            sorted.sort(); // by address, then position: the first comes first
            for e in sorted {
                if expected.last().is_none_or(|l| l.0 != e.0) {
                    expected.push(e);
                }
            }
            let mut got = entries;
            first_wins(&mut got, key);
            assert_eq!(got, expected);
        }
    }
}
