//! Reading flow files into the verdict step: every file in every format
//! `ringfence_flows` reads, in chunks folded by parallel workers (one
//! [`Tally`] each), merged at the end.

use std::path::PathBuf;

use ringfence_flows::{FlowError, ReadOptions, ReadStats, fold_files};

use crate::Analyzer;
use crate::analysis::{Input, InputFile};
use crate::tally::{Observed, Tally};

impl From<&ringfence_flows::Flow> for Observed {
    fn from(f: &ringfence_flows::Flow) -> Self {
        Observed {
            src: f.src_ip,
            dst: f.dst_ip,
            proto: f.proto,
            port: f.dst_port,
            orig: f.orig_dst_ip.map(|ip| (ip, f.orig_dst_port)),
            packets: f.packets,
            bytes: f.bytes,
            first_ns: f.first_seen.unix_nanos(),
            last_ns: f.last_seen.unix_nanos(),
            verdict: f.verdict,
        }
    }
}

/// What the files held, for the analysis.
fn input(stats: &ReadStats) -> Input {
    Input {
        files: stats
            .files
            .iter()
            .map(|f| InputFile {
                path: f.path.display().to_string(),
                format: f.format.map(|x| x.name().to_string()),
                lines: f.counts.lines,
                flows: f.counts.flows,
                skipped: f.counts.replies + f.counts.ignored,
                unreadable: f.counts.unparsable,
                assumed_time: f.assumed_time.clone(),
            })
            .collect(),
        errors: stats.errors.iter().map(ToString::to_string).collect(),
        first_seen: None,
        last_seen: None,
    }
}

impl<'a> Analyzer<'a> {
    /// Read flow files (ringfence JSON Lines, Hubble, conntrack; the format
    /// is told per file) through the verdict step, in parallel. A file that
    /// cannot be opened or whose format cannot be told is an error; bad lines
    /// are counted and the first ones kept in the [`Input`].
    pub fn read(
        &self,
        paths: &[PathBuf],
        opts: &ReadOptions,
    ) -> Result<(Tally<'a>, Input), FlowError> {
        let (tallies, stats) = fold_files(
            paths,
            opts,
            || self.tally(),
            |t: &mut Tally<'a>, f| t.add(&Observed::from(&f)),
        )?;
        let mut merged = self.tally();
        for t in tallies {
            merged.merge(t);
        }
        Ok((merged, input(&stats)))
    }
}
