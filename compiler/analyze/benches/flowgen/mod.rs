//! Synthetic flows over the synthetic cluster, for the benchmarks: the
//! verdict benchmark and the flow files `bench/analyze.sh` times the
//! command on.
//!
//! Conversations between pods, to services through their cluster IPs,
//! through node ports, from externals and to the internet, drawn with a
//! skew (a few conversations carry most flows, as in real traffic), spread
//! over one hour, a third each with network verdict allowed, dropped and
//! unknown. The same arguments give the same flows.

#![allow(dead_code)] // the verdict benchmark and the generator use different parts

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};

use ringfence_analyze::Observed;
use ringfence_core::synth::Synth;
use ringfence_intent::model::Proto;
use ringfence_schema::flow::NetworkVerdict;

pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// (source, destination, protocol, port).
pub(crate) type Conv = (IpAddr, IpAddr, Proto, Option<u16>);

pub(crate) fn conversations(s: &Synth, n: usize, rng: &mut Rng) -> Vec<Conv> {
    let c = &s.inventory.clusters[0];
    let pods: Vec<&ringfence_inventory::model::Pod> =
        c.pods.iter().filter(|p| !p.ips.is_empty()).collect();
    let nodes: Vec<IpAddr> = c.nodes.iter().map(|n| n.addresses[0]).collect();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let src = pods[rng.below(pods.len())].ips[0];
        let conv = match rng.below(10) {
            // Pod to service, through its cluster IP.
            0..=4 => {
                let svc = &c.services[rng.below(c.services.len())];
                let Some(sp) = svc.ports.first() else {
                    continue;
                };
                (src, svc.cluster_ips[0], sp.proto, Some(sp.port))
            }
            // Pod to pod on a declared port (or a random one).
            5..=7 => {
                let dst = pods[rng.below(pods.len())];
                let port = dst
                    .ports
                    .first()
                    .map_or(1024 + rng.below(40_000) as u16, |p| p.port);
                (src, dst.ips[0], Proto::Tcp, Some(port))
            }
            // An external client to a node port.
            8 => {
                let exposed: Vec<_> = c
                    .services
                    .iter()
                    .filter_map(|s| s.ports.first()?.node_port)
                    .collect();
                if exposed.is_empty() {
                    continue;
                }
                let client = IpAddr::V4(Ipv4Addr::new(198, 51, 100, rng.below(250) as u8 + 1));
                (
                    client,
                    nodes[rng.below(nodes.len())],
                    Proto::Tcp,
                    Some(exposed[rng.below(exposed.len())]),
                )
            }
            // A pod to the internet.
            _ => {
                let dst = IpAddr::V4(Ipv4Addr::new(203, 0, 113, rng.below(250) as u8 + 1));
                (src, dst, Proto::Tcp, Some(443))
            }
        };
        out.push(conv);
    }
    out
}

/// `n_flows` flows over `n_convs` conversations, one hour from 2024-05-01T12:00:00Z.
pub(crate) fn flows(s: &Synth, n_flows: usize, n_convs: usize) -> (Vec<Conv>, Vec<Observed>) {
    let mut flows = Vec::with_capacity(n_flows);
    let convs = each_flow(s, n_flows, n_convs, |f| flows.push(f));
    (convs, flows)
}

/// The flows of [`flows`], one at a time (any number of them in constant
/// memory); returns the conversations.
pub(crate) fn each_flow(
    s: &Synth,
    n_flows: usize,
    n_convs: usize,
    mut each: impl FnMut(Observed),
) -> Vec<Conv> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let convs = conversations(s, n_convs, &mut rng);
    let start: i64 = 1_714_564_800 * 1_000_000_000;
    for i in 0..n_flows {
        // Skewed: the square of a uniform number favours low indexes.
        let u = rng.next() as f64 / u64::MAX as f64;
        let (src, dst, proto, port) = convs[((u * u) * convs.len() as f64) as usize];
        let t = start + (i as i64 * 3_600_000_000_000 / n_flows.max(1) as i64);
        each(Observed {
            src,
            dst,
            proto,
            port,
            orig: None,
            packets: 1 + rng.next() % 20,
            bytes: rng.next() % 100_000,
            first_ns: t,
            last_ns: t + 1_000_000_000,
            verdict: [
                Some(NetworkVerdict::Allowed),
                Some(NetworkVerdict::Dropped),
                None,
            ][i % 3],
        });
    }
    convs
}

/// Write flows as ringfence JSON Lines (schema/docs/flows.md).
pub(crate) fn write_jsonl(flows: &[Observed], out: &mut impl Write) -> std::io::Result<()> {
    for f in flows {
        write_record(f, out)?;
    }
    Ok(())
}

/// Write one flow as a ringfence JSON Lines record.
pub(crate) fn write_record(f: &Observed, out: &mut impl Write) -> std::io::Result<()> {
    let time = |ns: i64| ringfence_flows::Timestamp::from_unix_nanos(ns).to_rfc3339();
    write!(
        out,
        "{{\"src_ip\":\"{}\",\"dst_ip\":\"{}\",\"proto\":\"{}\"",
        f.src, f.dst, f.proto
    )?;
    if let Some(p) = f.port {
        write!(out, ",\"dst_port\":{p}")?;
    }
    write!(
        out,
        ",\"packets\":{},\"bytes\":{},\"first_seen\":\"{}\",\"last_seen\":\"{}\"",
        f.packets,
        f.bytes,
        time(f.first_ns),
        time(f.last_ns)
    )?;
    match f.verdict {
        Some(NetworkVerdict::Allowed) => write!(out, ",\"verdict\":\"allowed\"")?,
        Some(NetworkVerdict::Dropped) => write!(out, ",\"verdict\":\"dropped\"")?,
        None => {}
    }
    writeln!(out, "}}")
}
