//! The connectivity list in np-guard netpol-analyzer's `list` format, so that
//! the connectivity ringfence computes for Kubernetes manifests can be diffed
//! line for line with that tool's.
//!
//! Lines are `SRC => DST : CONN`, sorted by source then destination (byte
//! order), one per ordered pair of different peers that policy lets anything
//! through:
//!
//! - **Workloads** are pod groups (`ns/name[Kind]`, as [`Compiled::matrix`]
//!   names them); a pair's connections are those allowed between *every*
//!   member pair, the consumer's egress and the provider's ingress both
//!   allowing (judged by policy, across address families).
//! - **Address ranges** cover all of IPv4 (netpol-analyzer leaves IPv6 out):
//!   `a.b.c.d-e.f.g.h[External]`, one line per maximal range of addresses
//!   with the same connections. Addresses the clusters own (pod, node and
//!   service addresses, pod ranges) are not outside anything: a range runs
//!   across them, so ranges read as the policies' address blocks.
//! - **`{ingress-controller}`** stands for the cluster's ingress controller
//!   when Ingress or Route manifests name backends: its line to a workload
//!   holds the TCP ports those objects reach it on that policy allows from
//!   the controller pod.
//! - **CONN** is `All Connections` when TCP, UDP and SCTP are allowed on
//!   every port 1-65535; otherwise `PROTO ports` per protocol (ports and
//!   ranges joined by `,`), protocols in name order joined by `,`
//!   (`SCTP 9000,TCP 80,8080-8090,UDP 53`). Port 0 and ICMP, which
//!   netpol-analyzer does not model, are not shown.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};

use ringfence_intent::model::WorkloadKind;
use ringfence_inventory::manifests::{INGRESS_CONTROLLER, INGRESS_CONTROLLER_NAMESPACE};
use ringfence_inventory::model::Inventory;
use serde::Serialize;

use crate::compiled::{Compiled, ProtoPorts};
use crate::idx::{ChainIdx, ClusterIdx, WorkloadIdx};
use crate::interval::{Addrs, IntervalSet, PortSet};

/// One line of the list.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ConnLine {
    /// The source: a workload, an address range or `{ingress-controller}`.
    pub src: String,
    /// The destination: a workload or an address range.
    pub dst: String,
    /// `All Connections` or `PROTO ports,…`.
    pub conn: String,
}

impl std::fmt::Display for ConnLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} => {} : {}", self.src, self.dst, self.conn)
    }
}

/// How the ingress controller is named in the list.
const CONTROLLER: &str = "{ingress-controller}";

/// A pod of a group: its address and its chains (`None`: not managed).
#[derive(Clone, Copy)]
struct Member {
    workload: WorkloadIdx,
    addr: IpAddr,
    ingress: Option<ChainIdx>,
    egress: Option<ChainIdx>,
}

impl Compiled {
    /// The connectivity list (see [`crate::connlist`]). `inventory` is the
    /// one this was compiled from: it gives the addresses the clusters own
    /// and the ingress backends.
    pub fn connlist(&self, inventory: &Inventory) -> Vec<ConnLine> {
        let mut groups: BTreeMap<&str, Vec<Member>> = BTreeMap::new();
        let mut by_pod: HashMap<(Option<ClusterIdx>, &str, &str), Member> = HashMap::new();
        let mut controllers: Vec<Member> = Vec::new();
        for (w, wl) in self.workloads() {
            if wl.kind != WorkloadKind::Pod {
                continue;
            }
            let Some(&addr) = wl.addrs.first() else {
                continue;
            };
            let ep = self.wl_endpoint[w.index()].map(|e| self.ep_info[e.index()]);
            let m = Member {
                workload: w,
                addr,
                ingress: ep.map(|e| e.ingress),
                egress: ep.and_then(|e| e.egress),
            };
            by_pod.insert((wl.cluster, &wl.namespace, &wl.name), m);
            if wl.namespace == INGRESS_CONTROLLER_NAMESPACE && wl.name == INGRESS_CONTROLLER {
                controllers.push(m);
            } else {
                groups.entry(&wl.group).or_default().push(m);
            }
        }

        let mut ev = Eval {
            c: self,
            cache: HashMap::new(),
        };
        let mut out = Vec::new();
        for (from, cs) in &groups {
            for (to, ps) in &groups {
                if from == to {
                    continue;
                }
                let conn = ev.groups(cs, ps);
                if let Some(conn) = conn_string(&conn) {
                    out.push(ConnLine {
                        src: from.to_string(),
                        dst: to.to_string(),
                        conn,
                    });
                }
            }
        }

        let owned = owned_v4(inventory);
        for (group, members) in &groups {
            let ingress: Vec<Option<ChainIdx>> = members.iter().map(|m| m.ingress).collect();
            for (range, conn) in ev.ranges(&ingress, &owned) {
                out.push(ConnLine {
                    src: range,
                    dst: group.to_string(),
                    conn,
                });
            }
            let egress: Vec<Option<ChainIdx>> = members.iter().map(|m| m.egress).collect();
            for (range, conn) in ev.ranges(&egress, &owned) {
                out.push(ConnLine {
                    src: group.to_string(),
                    dst: range,
                    conn,
                });
            }
        }

        // The ingress controller: per backend group, the union of the ports
        // Ingress and Route objects reach its pods on, as policy allows.
        let mut backends: BTreeMap<&str, (Vec<Member>, BTreeSet<u16>)> = BTreeMap::new();
        for (ci, cluster) in inventory.clusters.iter().enumerate() {
            for b in &cluster.ingress {
                let Some(&m) = by_pod.get(&(
                    Some(ClusterIdx::new(ci)),
                    b.namespace.as_str(),
                    b.pod.as_str(),
                )) else {
                    continue;
                };
                let e = backends
                    .entry(&self.cat[m.workload.index()].group)
                    .or_default();
                e.0.push(m);
                e.1.extend(b.ports.iter().copied());
            }
        }
        if !controllers.is_empty() {
            for (group, (members, ports)) in backends {
                let mut conn = ev.groups(&controllers, &members);
                let reached = IntervalSet::from_ranges(ports.iter().map(|&p| (p, p)));
                conn.ports[0] = conn.ports[0].intersection(&reached);
                conn.ports[1] = PortSet::empty();
                conn.ports[2] = PortSet::empty();
                if let Some(conn) = conn_string(&conn) {
                    out.push(ConnLine {
                        src: CONTROLLER.to_string(),
                        dst: group.to_string(),
                        conn,
                    });
                }
            }
        }
        out.sort();
        out
    }
}

/// Chain evaluation with a cache: many members share chains and addresses.
struct Eval<'c> {
    c: &'c Compiled,
    cache: HashMap<(ChainIdx, IpAddr), ProtoPorts>,
}

impl Eval<'_> {
    /// What a chain (`None`: unmanaged, everything) allows for one address.
    fn allows(&mut self, chain: Option<ChainIdx>, peer: IpAddr) -> ProtoPorts {
        let Some(chain) = chain else {
            return ProtoPorts::all();
        };
        let c = self.c;
        self.cache
            .entry((chain, peer))
            .or_insert_with(|| c.chain_allows_ip(chain, peer))
            .clone()
    }

    /// What policy allows from every member of `cs` to every member of `ps`.
    fn groups(&mut self, cs: &[Member], ps: &[Member]) -> ProtoPorts {
        let mut acc = ProtoPorts::all();
        for c in cs {
            for p in ps {
                if c.workload == p.workload {
                    continue;
                }
                acc.intersect(&self.allows(c.egress, p.addr));
                acc.intersect(&self.allows(p.ingress, c.addr));
                if acc.is_empty() {
                    return acc;
                }
            }
        }
        acc
    }

    /// Maximal IPv4 ranges with the same connections through every chain of
    /// `chains`, skipping over the addresses the clusters own; the ranges
    /// with some connection, as (`a-b[External]`, CONN).
    fn ranges(
        &mut self,
        chains: &[Option<ChainIdx>],
        owned: &IntervalSet<u32>,
    ) -> Vec<(String, String)> {
        // Where anything can change: the bounds of every set of the chains
        // and of the owned addresses.
        let mut cuts: BTreeSet<u32> = BTreeSet::from([0]);
        let mut add = |set: &IntervalSet<u32>| {
            for &(lo, hi) in set.ranges() {
                cuts.insert(lo);
                if let Some(next) = hi.checked_add(1) {
                    cuts.insert(next);
                }
            }
        };
        add(owned);
        let chains: BTreeSet<Option<ChainIdx>> = chains.iter().copied().collect();
        for &ch in chains.iter().flatten() {
            for r in &self.c.chains[ch.index()].fast {
                if let Some(s) = r.peer {
                    add(&self.c.sets[s.index()].v4);
                }
            }
        }
        let cuts: Vec<u32> = cuts.into_iter().collect();
        // (start, connections) of each run; owned segments extend the run before them.
        let mut runs: Vec<(u32, Option<String>)> = Vec::new();
        for &lo in &cuts {
            if owned.contains(lo) {
                continue;
            }
            let peer = IpAddr::V4(Ipv4Addr::from(lo));
            let mut conn = ProtoPorts::all();
            for &ch in &chains {
                conn.intersect(&self.allows(ch, peer));
            }
            let conn = conn_string(&conn);
            match runs.last() {
                Some((_, last)) if *last == conn => {}
                _ => runs.push((if runs.is_empty() { 0 } else { lo }, conn)),
            }
        }
        let mut out = Vec::new();
        for (k, (start, conn)) in runs.iter().enumerate() {
            let end = runs.get(k + 1).map_or(u32::MAX, |(next, _)| next - 1);
            if let Some(conn) = conn {
                out.push((
                    format!(
                        "{}-{}[External]",
                        Ipv4Addr::from(*start),
                        Ipv4Addr::from(end)
                    ),
                    conn.clone(),
                ));
            }
        }
        out
    }
}

/// The IPv4 addresses the clusters own: pod ranges and the addresses of
/// nodes, pods and services.
fn owned_v4(inventory: &Inventory) -> IntervalSet<u32> {
    let mut a = Addrs::empty();
    for c in &inventory.clusters {
        for n in &c.nodes {
            a = a.union(&Addrs::from_nets(n.pod_cidrs.iter()));
            a = a.union(&Addrs::from_ips(n.addresses.iter()));
        }
        for p in &c.pods {
            a = a.union(&Addrs::from_ips(p.ips.iter()));
        }
        for s in &c.services {
            a = a.union(&Addrs::from_ips(s.cluster_ips.iter().chain(&s.lb_ingress)));
        }
    }
    a.v4
}

/// netpol-analyzer's CONN: `None` when nothing is allowed.
fn conn_string(c: &ProtoPorts) -> Option<String> {
    let usable = |p: &PortSet| p.intersection(&IntervalSet::range(1, u16::MAX));
    let ports: Vec<PortSet> = c.ports.iter().map(usable).collect();
    let every = IntervalSet::range(1, u16::MAX);
    if ports.iter().all(|p| *p == every) {
        return Some("All Connections".to_string());
    }
    let mut parts: Vec<String> = ["TCP", "UDP", "SCTP"]
        .iter()
        .zip(&ports)
        .filter(|(_, p)| !p.is_empty())
        .map(|(name, p)| {
            let list: Vec<String> = p
                .ranges()
                .iter()
                .map(|&(lo, hi)| {
                    if lo == hi {
                        lo.to_string()
                    } else {
                        format!("{lo}-{hi}")
                    }
                })
                .collect();
            format!("{name} {}", list.join(","))
        })
        .collect();
    parts.sort();
    (!parts.is_empty()).then(|| parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pp(tcp: &[(u16, u16)], udp: &[(u16, u16)], sctp: &[(u16, u16)]) -> ProtoPorts {
        ProtoPorts {
            ports: [
                IntervalSet::from_ranges(tcp.iter().copied()),
                IntervalSet::from_ranges(udp.iter().copied()),
                IntervalSet::from_ranges(sctp.iter().copied()),
            ],
            icmp: false,
        }
    }

    #[test]
    fn conn_strings_read_as_netpol_analyzer_writes_them() {
        let all = (0, u16::MAX);
        assert_eq!(
            conn_string(&pp(&[all], &[all], &[all])).as_deref(),
            Some("All Connections")
        );
        // Port 0 is not a port there: 1-65535 is every port.
        assert_eq!(
            conn_string(&pp(&[(1, u16::MAX)], &[(1, u16::MAX)], &[(1, u16::MAX)])).as_deref(),
            Some("All Connections")
        );
        assert_eq!(
            conn_string(&pp(&[(80, 80), (8080, 8090)], &[(53, 53)], &[(9000, 9000)])).as_deref(),
            Some("SCTP 9000,TCP 80,8080-8090,UDP 53")
        );
        assert_eq!(
            conn_string(&pp(&[all], &[all], &[])).as_deref(),
            Some("TCP 1-65535,UDP 1-65535")
        );
        assert_eq!(conn_string(&pp(&[(0, 0)], &[], &[])), None);
        assert_eq!(conn_string(&ProtoPorts::none()), None);
    }
}
