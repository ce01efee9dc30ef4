//! Synthetic flows over the synthetic cluster, for the benchmarks: the
//! verdict benchmark and the flow files `bench/analyze.sh` times the
//! command on.
//!
//! Conversations between pods, to services through their cluster IPs,
//! through node ports, from externals and to the internet, drawn with a
//! skew (a few conversations carry most flows, as in real traffic), spread
//! over one hour, a third each with network verdict allowed, dropped and
//! unknown. The same arguments give the same flows.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};

use ringfence_flows::{Flow, Timestamp};
use ringfence_intent::model::Proto;
use ringfence_schema::flow::NetworkVerdict;

use crate::rng::{Rng, unit};
use crate::synth::Synth;

/// A conversation: (source, destination, protocol, port).
pub type Conv = (IpAddr, IpAddr, Proto, Option<u16>);

fn conversations(s: &Synth, n: usize, rng: &mut Rng) -> Vec<Conv> {
    let c = &s.inventory.clusters[0];
    let pods: Vec<&ringfence_inventory::model::Pod> =
        c.pods.iter().filter(|p| !p.ips.is_empty()).collect();
    let nodes: Vec<IpAddr> = c.nodes.iter().map(|n| n.addresses[0]).collect();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let src = pods[rng.index(pods.len())].ips[0];
        let conv = match rng.index(10) {
            // Pod to service, through its cluster IP.
            0..=4 => {
                let svc = &c.services[rng.index(c.services.len())];
                let Some(sp) = svc.ports.first() else {
                    continue;
                };
                (src, svc.cluster_ips[0], sp.proto, Some(sp.port))
            }
            // Pod to pod on a declared port (or a random one).
            5..=7 => {
                let dst = pods[rng.index(pods.len())];
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
                    nodes[rng.index(nodes.len())],
                    Proto::Tcp,
                    Some(exposed[rng.index(exposed.len())]),
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

/// `n_flows` flows over `n_convs` conversations, one hour from
/// 2024-05-01T12:00:00Z: the conversations, and the flows made as they are
/// read (so ten million of them need not be held twice).
pub fn flows(
    s: &Synth,
    n_flows: usize,
    n_convs: usize,
) -> (Vec<Conv>, impl Iterator<Item = Flow> + use<>) {
    let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);
    let convs = conversations(s, n_convs, &mut rng);
    let picked = convs.clone();
    let start: i64 = 1_714_564_800 * 1_000_000_000;
    let flows = (0..n_flows).map(move |i| {
        // Skewed: the square of a uniform number favours low indexes.
        let u = unit(&mut rng);
        let (src, dst, proto, port) = picked[((u * u) * picked.len() as f64) as usize];
        let t = start + (i as i64 * 3_600_000_000_000 / n_flows.max(1) as i64);
        Flow {
            src_ip: src,
            dst_ip: dst,
            proto,
            src_port: None,
            dst_port: port,
            orig_dst_ip: None,
            orig_dst_port: None,
            dst_service: None,
            packets: 1 + rng.next() % 20,
            bytes: rng.next() % 100_000,
            first_seen: Timestamp::from_unix_nanos(t),
            last_seen: Timestamp::from_unix_nanos(t + 1_000_000_000),
            verdict: [
                Some(NetworkVerdict::Allowed),
                Some(NetworkVerdict::Dropped),
                None,
            ][i % 3],
            node: None,
        }
    });
    (convs, flows)
}

/// Write flows as ringfence JSON Lines (schema/docs/flows.md).
pub fn write_jsonl(
    flows: impl IntoIterator<Item = Flow>,
    out: &mut impl Write,
) -> std::io::Result<()> {
    for f in flows {
        write!(
            out,
            "{{\"src_ip\":\"{}\",\"dst_ip\":\"{}\",\"proto\":\"{}\"",
            f.src_ip, f.dst_ip, f.proto
        )?;
        if let Some(p) = f.dst_port {
            write!(out, ",\"dst_port\":{p}")?;
        }
        write!(
            out,
            ",\"packets\":{},\"bytes\":{},\"first_seen\":\"{}\",\"last_seen\":\"{}\"",
            f.packets,
            f.bytes,
            f.first_seen.to_rfc3339(),
            f.last_seen.to_rfc3339()
        )?;
        match f.verdict {
            Some(NetworkVerdict::Allowed) => write!(out, ",\"verdict\":\"allowed\"")?,
            Some(NetworkVerdict::Dropped) => write!(out, ",\"verdict\":\"dropped\"")?,
            None => {}
        }
        writeln!(out, "}}")?;
    }
    Ok(())
}
