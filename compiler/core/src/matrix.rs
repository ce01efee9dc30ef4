//! `matrix`: every allowed connection between workloads, grouped by owner.
//!
//! Groups: pods by owner (Deployment, StatefulSet, DaemonSet, Job; else the
//! pod), nodes (`name[Node]`), externals (`name[External]`). A group pair is
//! listed with the ports allowed for *every* member pair (both sides, every
//! address family both have), computed symbolically from the compiled chains
//! — the ones the per-node IRs hold — with interval algebra over ports. An
//! external counts as allowed only when all of its addresses are.
//!
//! Lines: `FROM => TO : PROTO PORTS`, one per protocol, ports merged into
//! ranges (`TCP 80,9090-9100`; ICMP has none). Exposures add lines from
//! externals through NodePort and LoadBalancer entry points, with the
//! entry-point port: `internet[External] => shop/frontend[Deployment] : TCP
//! 30080 (NodePort shop/frontend)`.
//!
//! A [`Select`] keeps only some group pairs; pairs it drops are not
//! evaluated at all.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;

use ringfence_intent::model::{Proto, WorkloadKind};
use ringfence_inventory::model::TrafficPolicy;
use ringfence_schema::ir::ExposureKind;
use ringfence_schema::net::PortRange;
use serde::Serialize;

use crate::compiled::{Compiled, PORT_PROTOS, ProtoPorts};
use crate::interval::{Addrs, PortSet};

/// Every allowed connection, sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Matrix {
    /// One entry per (from, to, protocol, entry point).
    pub connections: Vec<Connection>,
}

/// One line of the matrix.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Connection {
    /// The consumer group.
    pub from: String,
    /// The provider group.
    pub to: String,
    /// Through a NodePort or LoadBalancer entry point (ports are then its ports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<Entry>,
    /// tcp, udp, sctp or icmp.
    pub proto: Proto,
    /// Allowed ports, merged; empty for icmp.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortRange>,
}

/// A NodePort or LoadBalancer entry point.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Entry {
    /// node-port or load-balancer.
    pub kind: ExposureKind,
    /// The service, `namespace/name`.
    pub service: String,
}

/// Which lines to compute: every list empty keeps everything.
///
/// A pattern matches a group by its whole name (`shop/web[Deployment]`), its
/// name without the kind (`shop/web`), or a prefix ending in `/`
/// (a namespace or `cluster/namespace`, given without the `/`).
#[derive(Clone, Debug, Default)]
pub struct Select {
    /// Consumer groups (any of them).
    pub from: Vec<String>,
    /// Provider groups (any of them).
    pub to: Vec<String>,
    /// Namespaces one side must be in (any of them).
    pub namespaces: Vec<String>,
}

impl Select {
    fn matches(pattern: &str, group: &str) -> bool {
        let name = group.rsplit_once('[').map_or(group, |(n, _)| n);
        group == pattern
            || name == pattern
            || name
                .strip_prefix(pattern)
                .is_some_and(|rest| rest.starts_with('/'))
    }

    fn in_namespace(ns: &str, group: &str) -> bool {
        let name = group.rsplit_once('[').map_or(group, |(n, _)| n);
        let mut parts = name.rsplit('/');
        parts.next();
        parts.next() == Some(ns)
    }

    fn keeps_from(&self, group: &str) -> bool {
        self.from.is_empty() || self.from.iter().any(|p| Self::matches(p, group))
    }

    fn keeps_to(&self, group: &str) -> bool {
        self.to.is_empty() || self.to.iter().any(|p| Self::matches(p, group))
    }

    fn keeps(&self, from: &str, to: &str) -> bool {
        self.keeps_from(from)
            && self.keeps_to(to)
            && (self.namespaces.is_empty()
                || self
                    .namespaces
                    .iter()
                    .any(|ns| Self::in_namespace(ns, from) || Self::in_namespace(ns, to)))
    }
}

/// What a member looks like from the other side, per address family.
#[derive(Clone)]
enum Spec {
    Ip(IpAddr),
    Set(u32, Addrs),
}

struct Member {
    workload: u32,
    /// [IPv4, IPv6].
    specs: [Option<Spec>; 2],
}

fn fam(a: &IpAddr) -> usize {
    usize::from(a.is_ipv6())
}

impl Compiled {
    /// Every allowed connection between workload groups (see [`crate::matrix`]).
    pub fn matrix(&self) -> Matrix {
        self.matrix_of(&Select::default())
    }

    /// The lines of [`Compiled::matrix`] that `select` keeps.
    pub fn matrix_of(&self, select: &Select) -> Matrix {
        let mut groups: BTreeMap<&str, Vec<Member>> = BTreeMap::new();
        for (w, wl) in self.cat.iter().enumerate() {
            let w = w as u32;
            let mut specs = [None, None];
            match wl.kind {
                WorkloadKind::Pod | WorkloadKind::Node => {
                    for a in &wl.addrs {
                        specs[fam(a)].get_or_insert(Spec::Ip(*a));
                    }
                }
                WorkloadKind::External => {
                    let a = Addrs::from_nets(wl.nets.iter());
                    if !a.v4.is_empty() {
                        specs[0] = Some(Spec::Set(
                            w,
                            Addrs {
                                v4: a.v4.clone(),
                                ..Addrs::default()
                            },
                        ));
                    }
                    if !a.v6.is_empty() {
                        specs[1] = Some(Spec::Set(
                            w,
                            Addrs {
                                v6: a.v6,
                                ..Addrs::default()
                            },
                        ));
                    }
                }
                WorkloadKind::Service => continue,
            }
            if specs.iter().all(Option::is_none) {
                continue;
            }
            groups
                .entry(&wl.group)
                .or_default()
                .push(Member { workload: w, specs });
        }

        let mut ev = Evaluator {
            c: self,
            ip_cache: HashMap::new(),
            set_cache: HashMap::new(),
        };
        let mut out = Vec::new();
        for (from, cs) in groups.iter().filter(|(g, _)| select.keeps_from(g)) {
            for (to, ps) in &groups {
                if !select.keeps(from, to) {
                    continue;
                }
                let external =
                    |m: &Member| self.cat[m.workload as usize].kind == WorkloadKind::External;
                if cs.iter().all(external) && ps.iter().all(external) {
                    continue;
                }
                let mut acc: Option<ProtoPorts> = None;
                'pairs: for c in cs {
                    for p in ps {
                        if c.workload == p.workload {
                            continue;
                        }
                        let r = ev.pair(c, p);
                        match &mut acc {
                            None => acc = Some(r),
                            Some(a) => a.intersect(&r),
                        }
                        if acc.as_ref().is_some_and(ProtoPorts::is_empty) {
                            break 'pairs;
                        }
                    }
                }
                if let Some(a) = acc {
                    push_lines(&mut out, from, to, None, &a);
                }
            }
        }
        self.exposure_lines(&groups, select, &mut ev, &mut out);
        out.sort();
        Matrix { connections: out }
    }

    fn exposure_lines(
        &self,
        groups: &BTreeMap<&str, Vec<Member>>,
        select: &Select,
        ev: &mut Evaluator<'_>,
        out: &mut Vec<Connection>,
    ) {
        // (from, to, entry, proto) → ports.
        let mut lines: BTreeMap<(String, String, Entry, Proto), Vec<PortRange>> = BTreeMap::new();
        for x in &self.exposures {
            let svc = &self.cat[x.service as usize];
            let entry = Entry {
                kind: x.kind,
                service: format!("{}/{}", svc.namespace, svc.name),
            };
            let class = PORT_PROTOS.iter().position(|&p| p == x.proto);
            let Some(class) = class else { continue };
            // The cluster's node addresses, which a pod sees with
            // externalTrafficPolicy Cluster.
            let nodes = (x.etp == TrafficPolicy::Cluster).then(|| {
                Addrs::from_ips(
                    self.cat
                        .iter()
                        .filter(|w| w.kind == WorkloadKind::Node && w.cluster == Some(x.cluster))
                        .flat_map(|w| w.addrs.iter()),
                )
            });
            let mut by_group: BTreeMap<&str, Vec<(u32, u16)>> = BTreeMap::new();
            for &(e, tp) in &x.targets {
                let w = self.ep_info[e as usize].workload;
                by_group
                    .entry(&self.cat[w as usize].group)
                    .or_default()
                    .push((e, tp));
            }
            for (from, members) in groups {
                if !members
                    .iter()
                    .all(|m| self.cat[m.workload as usize].kind == WorkloadKind::External)
                {
                    continue;
                }
                for (to, targets) in by_group.iter().filter(|(to, _)| select.keeps(from, to)) {
                    let ok = members.iter().all(|m| {
                        targets.iter().all(|&(e, tp)| {
                            let chain = self.ep_info[e as usize].ingress;
                            let w = self.ep_info[e as usize].workload;
                            let fams: Vec<usize> = (0..2)
                                .filter(|&f| {
                                    m.specs[f].is_some()
                                        && self.cat[w as usize].addrs.iter().any(|a| fam(a) == f)
                                })
                                .collect();
                            !fams.is_empty()
                                && fams.iter().all(|&f| {
                                    let allowed =
                                        ev.allows(chain, m.specs[f].as_ref().expect("family"));
                                    let hop = nodes.as_ref().is_none_or(|n| {
                                        let part = if f == 0 {
                                            Addrs {
                                                v4: n.v4.clone(),
                                                ..Addrs::default()
                                            }
                                        } else {
                                            Addrs {
                                                v6: n.v6.clone(),
                                                ..Addrs::default()
                                            }
                                        };
                                        part.is_empty()
                                            || self.chain_allows_all(chain, &part).ports[class]
                                                .contains(tp)
                                    });
                                    allowed.ports[class].contains(tp) && hop
                                })
                        })
                    });
                    if ok {
                        lines
                            .entry((from.to_string(), to.to_string(), entry.clone(), x.proto))
                            .or_default()
                            .push(PortRange::single(x.port));
                    }
                }
            }
        }
        for ((from, to, entry, proto), mut ports) in lines {
            ringfence_schema::net::normalize_ports(&mut ports);
            out.push(Connection {
                from,
                to,
                via: Some(entry),
                proto,
                ports,
            });
        }
    }
}

fn push_lines(out: &mut Vec<Connection>, from: &str, to: &str, via: Option<Entry>, a: &ProtoPorts) {
    for (i, &proto) in PORT_PROTOS.iter().enumerate() {
        if !a.ports[i].is_empty() {
            out.push(Connection {
                from: from.to_string(),
                to: to.to_string(),
                via: via.clone(),
                proto,
                ports: ranges(&a.ports[i]),
            });
        }
    }
    if a.icmp {
        out.push(Connection {
            from: from.to_string(),
            to: to.to_string(),
            via,
            proto: Proto::Icmp,
            ports: Vec::new(),
        });
    }
}

fn ranges(p: &PortSet) -> Vec<PortRange> {
    p.ranges()
        .iter()
        .map(|&(start, end)| PortRange { start, end })
        .collect()
}

/// Symbolic evaluation with caches: chains are shared by many members.
struct Evaluator<'c> {
    c: &'c Compiled,
    ip_cache: HashMap<(u32, IpAddr), ProtoPorts>,
    set_cache: HashMap<(u32, u32, bool), ProtoPorts>,
}

impl Evaluator<'_> {
    fn allows(&mut self, chain: u32, spec: &Spec) -> ProtoPorts {
        match spec {
            Spec::Ip(ip) => self
                .ip_cache
                .entry((chain, *ip))
                .or_insert_with(|| self.c.chain_allows_ip(chain, *ip))
                .clone(),
            Spec::Set(w, a) => self
                .set_cache
                .entry((chain, *w, !a.v6.is_empty()))
                .or_insert_with(|| self.c.chain_allows_all(chain, a))
                .clone(),
        }
    }

    /// What the egress of the sender of `from` allows towards `to`. The
    /// sender is found by address, as a node finds it (a host-network pod
    /// sends as its node).
    fn egress(&mut self, from: &Spec, to: &Spec) -> ProtoPorts {
        let chain = match from {
            Spec::Ip(src) => self
                .c
                .egress_ip
                .get(src)
                .and_then(|&e| self.c.ep_info[e as usize].egress),
            Spec::Set(..) => None,
        };
        match chain {
            Some(chain) => self.allows(chain, to),
            None => ProtoPorts::all(),
        }
    }

    /// What the provider's ingress allows from `from` (given as a spec).
    fn ingress(&mut self, p: &Member, f: usize, from: &Spec) -> ProtoPorts {
        let c = self.c;
        let wl = &c.cat[p.workload as usize];
        match wl.kind {
            WorkloadKind::External => ProtoPorts::all(),
            WorkloadKind::Pod if !wl.host_network => match c.wl_endpoint[p.workload as usize] {
                Some(e) => self.allows(c.ep_info[e as usize].ingress, from),
                None => ProtoPorts::all(),
            },
            _ => {
                // A node address: host-network pods own their declared ports.
                let Some(Spec::Ip(dst)) = &p.specs[f] else {
                    return ProtoPorts::none();
                };
                let host_ports: Vec<(Proto, u16, Option<u32>)> = c
                    .ingress_ip
                    .get(dst)
                    .map(|e| {
                        e.host_pods
                            .iter()
                            .map(|(pp, ep)| (pp.proto, pp.port, Some(*ep)))
                            .collect()
                    })
                    .unwrap_or_default();
                if wl.kind == WorkloadKind::Node {
                    let mut r = match c.wl_endpoint[p.workload as usize] {
                        Some(e) => self.allows(c.ep_info[e as usize].ingress, from),
                        None => ProtoPorts::all(),
                    };
                    for (proto, port, _) in host_ports {
                        if let Some(i) = PORT_PROTOS.iter().position(|&x| x == proto) {
                            r.ports[i] = r.ports[i].difference(&PortSet::range(port, port));
                        }
                    }
                    return r;
                }
                // A host-network pod: only its ports, judged by whoever owns them.
                let mut r = ProtoPorts::none();
                let pod_ports: Vec<(Proto, u16)> = c.endpoints_ports(p.workload);
                for (proto, port) in pod_ports {
                    let Some(i) = PORT_PROTOS.iter().position(|&x| x == proto) else {
                        continue;
                    };
                    let owner = c.ingress_endpoint(*dst, proto, Some(port));
                    let ok = match owner {
                        Some(e) => {
                            self.allows(c.ep_info[e as usize].ingress, from).ports[i].contains(port)
                        }
                        None => true,
                    };
                    if ok {
                        r.ports[i] = r.ports[i].union(&PortSet::range(port, port));
                    }
                }
                r
            }
        }
    }

    fn pair(&mut self, c: &Member, p: &Member) -> ProtoPorts {
        let mut acc: Option<ProtoPorts> = None;
        for f in 0..2 {
            let (Some(cs), Some(ps)) = (c.specs[f].clone(), p.specs[f].clone()) else {
                continue;
            };
            let mut r = self.egress(&cs, &ps);
            r.intersect(&self.ingress(p, f, &cs));
            match &mut acc {
                None => acc = Some(r),
                Some(a) => a.intersect(&r),
            }
        }
        acc.unwrap_or_else(ProtoPorts::none)
    }
}

impl Compiled {
    /// The declared ports of a host-network pod (tcp, udp, sctp).
    fn endpoints_ports(&self, pod: u32) -> Vec<(Proto, u16)> {
        match self.wl_endpoint[pod as usize] {
            Some(e) => self.endpoints[e as usize]
                .ports
                .iter()
                .map(|pp| (pp.proto, pp.port))
                .collect(),
            None => self.cat[pod as usize]
                .host_ports
                .iter()
                .map(|pp| (pp.proto, pp.port))
                .collect(),
        }
    }
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} => {} : {}",
            self.from,
            self.to,
            self.proto.as_str().to_ascii_uppercase()
        )?;
        if !self.ports.is_empty() {
            let p: Vec<String> = self.ports.iter().map(|r| r.to_string()).collect();
            write!(f, " {}", p.join(","))?;
        }
        if let Some(e) = &self.via {
            let kind = match e.kind {
                ExposureKind::NodePort => "NodePort",
                ExposureKind::LoadBalancer => "LoadBalancer",
            };
            write!(f, " ({kind} {})", e.service)?;
        }
        Ok(())
    }
}

impl fmt::Display for Matrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.connections {
            writeln!(f, "{c}")?;
        }
        Ok(())
    }
}
