//! Port generalization: a provider that serves many nearby ports to the
//! same consumer gets one range instead of a policy line per port.
//!
//! Ports below 1024 are never folded. The others, sorted, form runs in
//! which neighbours are at most `max_gap` apart; a run becomes the range
//! from its first to its last port when it has at least `min_ports` ports
//! and `min_flows` flows together. Ports inside the range that were never
//! seen are allowed too: that is what generalizing means.

use std::collections::BTreeMap;

use ringfence_schema::net::PortRange;

use crate::aggregate::Evidence;

/// How boldly ports are folded into ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PortGeneralization {
    /// Never: one entry per observed port.
    Off,
    /// Only dense, well-attested runs.
    Low,
    /// Balanced.
    Medium,
    /// Sparse runs with little evidence.
    High,
}

/// The thresholds of a level (documented in `schema/docs/discovery.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// Largest distance between neighbouring ports of a run.
    pub max_gap: u16,
    /// Fewest distinct ports in a run.
    pub min_ports: usize,
    /// Fewest flows over the run.
    pub min_flows: u64,
}

/// Ports below this are never folded.
pub const SYSTEM_PORTS: u16 = 1024;

impl PortGeneralization {
    /// The thresholds; `None` for `off`.
    pub fn thresholds(self) -> Option<Thresholds> {
        match self {
            PortGeneralization::Off => None,
            PortGeneralization::Low => Some(Thresholds {
                max_gap: 4,
                min_ports: 16,
                min_flows: 64,
            }),
            PortGeneralization::Medium => Some(Thresholds {
                max_gap: 32,
                min_ports: 8,
                min_flows: 16,
            }),
            PortGeneralization::High => Some(Thresholds {
                max_gap: 512,
                min_ports: 4,
                min_flows: 4,
            }),
        }
    }

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PortGeneralization::Off => "off",
            PortGeneralization::Low => "low",
            PortGeneralization::Medium => "medium",
            PortGeneralization::High => "high",
        }
    }
}

/// Ports (with their evidence) after generalization: each range, its
/// evidence, and how many observed ports it stands for.
pub(crate) fn generalize(
    ports: &BTreeMap<u16, Evidence>,
    level: PortGeneralization,
) -> Vec<(PortRange, Evidence, usize)> {
    let mut out: Vec<(PortRange, Evidence, usize)> = Vec::new();
    let single = |p: u16, ev: &Evidence| (PortRange::single(p), ev.clone(), 1);
    let Some(t) = level.thresholds() else {
        return ports.iter().map(|(p, ev)| single(*p, ev)).collect();
    };
    let mut run: Vec<(u16, &Evidence)> = Vec::new();
    let flush = |run: &mut Vec<(u16, &Evidence)>, out: &mut Vec<(PortRange, Evidence, usize)>| {
        let flows: u64 = run.iter().map(|(_, e)| e.flows).sum();
        if run.len() >= t.min_ports && flows >= t.min_flows {
            let mut ev = run[0].1.clone();
            for (_, e) in &run[1..] {
                ev.merge(e);
            }
            let range = PortRange {
                start: run[0].0,
                end: run[run.len() - 1].0,
            };
            out.push((range, ev, run.len()));
        } else {
            out.extend(run.iter().map(|(p, e)| single(*p, e)));
        }
        run.clear();
    };
    for (&p, ev) in ports {
        if p < SYSTEM_PORTS {
            out.push(single(p, ev));
            continue;
        }
        if let Some(&(last, _)) = run.last()
            && p - last > t.max_gap
        {
            flush(&mut run, &mut out);
        }
        run.push((p, ev));
    }
    flush(&mut run, &mut out);
    out.sort_by_key(|(r, _, _)| *r);
    out
}

#[cfg(test)]
mod tests {
    use ringfence_flows::Timestamp;

    use super::*;
    use crate::aggregate::Examples;

    fn ev(flows: u64) -> Evidence {
        Evidence {
            flows,
            packets: flows,
            bytes: 0,
            first: Timestamp::from_unix_secs(0),
            last: Timestamp::from_unix_secs(flows as i64),
            examples: Examples::none(),
        }
    }

    fn run(ports: &[(u16, u64)], level: PortGeneralization) -> Vec<String> {
        let m: BTreeMap<u16, Evidence> = ports.iter().map(|&(p, f)| (p, ev(f))).collect();
        generalize(&m, level)
            .into_iter()
            .map(|(r, e, n)| format!("{r}:{}:{n}", e.flows))
            .collect()
    }

    /// A batch job using 9000-9019 (every port, 5 flows each), a database
    /// on 5432, SSH on 22 and 23 (system ports), and a scattered few.
    fn ports() -> Vec<(u16, u64)> {
        let mut v: Vec<(u16, u64)> = (9000..9020).map(|p| (p, 5)).collect();
        v.extend([
            (22, 50),
            (23, 50),
            (5432, 100),
            (40_000, 1),
            (40_300, 1),
            (40_700, 1),
            (41_000, 1),
        ]);
        v
    }

    #[test]
    fn off_never_folds() {
        assert_eq!(run(&ports(), PortGeneralization::Off).len(), 27);
    }

    #[test]
    fn each_level_folds_what_its_thresholds_allow() {
        // low: the dense batch range (20 ports, gap 1, 100 flows) only.
        assert_eq!(
            run(&ports(), PortGeneralization::Low),
            [
                "22:50:1",
                "23:50:1",
                "5432:100:1",
                "9000-9019:100:20",
                "40000:1:1",
                "40300:1:1",
                "40700:1:1",
                "41000:1:1"
            ]
        );
        // medium: the same; the scattered four are 300-400 apart.
        assert_eq!(
            run(&ports(), PortGeneralization::Medium),
            run(&ports(), PortGeneralization::Low)
        );
        // high: gaps up to 512 and 4 flows: the scattered four fold too,
        // but never with 5432 (3568 below) and never the system ports.
        assert_eq!(
            run(&ports(), PortGeneralization::High),
            [
                "22:50:1",
                "23:50:1",
                "5432:100:1",
                "9000-9019:100:20",
                "40000-41000:4:4"
            ]
        );
    }

    #[test]
    fn thin_evidence_does_not_fold() {
        // Eight ports but one flow each: below medium's 16 flows.
        let thin: Vec<(u16, u64)> = (30_000..30_008).map(|p| (p, 1)).collect();
        assert_eq!(run(&thin, PortGeneralization::Medium).len(), 8);
        assert_eq!(run(&thin, PortGeneralization::High), ["30000-30007:8:8"]);
        let many: Vec<(u16, u64)> = (30_000..30_008).map(|p| (p, 2)).collect();
        assert_eq!(run(&many, PortGeneralization::Medium), ["30000-30007:16:8"]);
        assert_eq!(
            run(&many, PortGeneralization::Low).len(),
            8,
            "low needs 16 ports"
        );
    }
}
