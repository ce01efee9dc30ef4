//! Reading flows into the verdict step: every file in every format
//! `ringfence_flows` reads, in chunks folded by parallel workers (one
//! [`Tally`] each), merged at the end; or a ClickHouse table's
//! conversations, aggregated by the engine, the same way.

use std::path::PathBuf;

use ringfence_flows::clickhouse::{ClickHouseError, Table, TableRead, TableStats};
use ringfence_flows::{FlowError, ReadOptions, ReadStats, Window, fold_files};

use crate::analysis::{Input, InputFile};
use crate::outcome::Outcome;
use crate::tally::{Observed, SLOT_SECS, Tally, net_index};
use crate::{Analyzer, timeline};

const NANOS: i64 = 1_000_000_000;

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

/// One row of a table's conversations, as the timeline query needs it.
struct RowKey {
    key: Box<str>,
    observed: Observed,
    flows: u64,
}

/// What one worker keeps while folding a table's conversations.
struct TableAcc<'a> {
    tally: Tally<'a>,
    rows: Vec<RowKey>,
    /// Earliest and latest `first_seen` (nanoseconds).
    span: Option<(i64, i64)>,
}

impl<'a> Analyzer<'a> {
    /// How [`Analyzer::read_table`] reads a table over `window` (to send its
    /// query ahead with [`Table::ask_early`]).
    pub fn table_read(window: &Window) -> TableRead {
        TableRead {
            window: *window,
            src_ports: false,
            threads: 0,
            max_errors: ReadOptions::default().max_errors,
        }
    }

    /// Read a ClickHouse flow table: the engine aggregates the window's flows
    /// into conversations, which go through the verdict step in parallel;
    /// then a second query counts flows per timeline bucket, split by the
    /// policy's verdict on their conversation. The result equals reading
    /// the same flows from files.
    pub fn read_table(
        &self,
        table: &Table,
        window: &Window,
    ) -> Result<(Tally<'a>, Input), FlowError> {
        let (accs, stats) = table.fold_conversations(
            &Self::table_read(window),
            || TableAcc {
                tally: self.tally(),
                rows: Vec::new(),
                span: None,
            },
            |acc, c| {
                let o = Observed::from(&c.flow);
                acc.tally.add_conversation(&o, c.flows);
                let (lo, hi) = (c.flow.first_seen.unix_nanos(), c.last_start.unix_nanos());
                acc.span = Some(acc.span.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
                acc.rows.push(RowKey {
                    key: c.key,
                    observed: o,
                    flows: c.flows,
                });
            },
        )?;
        let mut merged = self.tally();
        let mut rows = Vec::new();
        let mut span: Option<(i64, i64)> = None;
        for a in accs {
            merged.merge(a.tally);
            rows.extend(a.rows);
            span = match (span, a.span) {
                (Some(x), Some(y)) => Some((x.0.min(y.0), x.1.max(y.1))),
                (x, y) => x.or(y),
            };
        }
        if let Some((lo, hi)) = span {
            let minute = |ns: i64| ns.div_euclid(NANOS * SLOT_SECS);
            let (first, last) = (minute(lo), minute(hi));
            self.timeline(table, window, &mut merged, &rows, &stats, (first, last))?;
            merged.span = Some((first, last));
        }
        let input = Input {
            files: vec![InputFile {
                path: table.url().to_string(),
                format: Some(match &stats.conversations {
                    Some(_) => format!("clickhouse ({}, conversations)", table.layout().name()),
                    None => format!("clickhouse ({})", table.layout().name()),
                }),
                lines: stats.rows,
                flows: stats.flows - stats.skipped,
                skipped: stats.skipped,
                unreadable: stats.unreadable,
                assumed_time: None,
            }],
            errors: stats.errors,
            first_seen: None,
            last_seen: None,
        };
        Ok((merged, input))
    }

    /// Count the window's flows into the timeline buckets by outcome: the
    /// table counts them per bucket and network verdict, split by whether
    /// the policy allows their conversation (the smaller of the allowed and
    /// denied conversations goes with the query).
    fn timeline(
        &self,
        table: &Table,
        window: &Window,
        tally: &mut Tally<'a>,
        rows: &[RowKey],
        stats: &TableStats,
        (first, last): (i64, i64),
    ) -> Result<(), FlowError> {
        let (width, start) = timeline::buckets(first, last, self.options.chart_buckets);
        let allowed: Vec<bool> = rows
            .iter()
            .map(|r| tally.allows(&r.observed).expect("every row was judged"))
            .collect();
        let n_allowed = allowed.iter().filter(|a| **a).count();
        let set_allowed = n_allowed * 2 <= rows.len();
        let set: Vec<&[u8]> = rows
            .iter()
            .zip(&allowed)
            .filter(|(_, a)| **a == set_allowed)
            .map(|(r, _)| r.key.as_bytes())
            .collect();
        let out: Vec<&[u8]> = stats.unread_keys.iter().map(|k| &k[..]).collect();
        let counts = table.timeline(window, start * NANOS, width * NANOS, &set, &out)?;
        // Both queries must have read the same flows.
        let mut expected = [0u64; 3];
        for r in rows {
            expected[net_index(r.observed.verdict)] += r.flows;
        }
        let mut got = [0u64; 3];
        for c in &counts {
            got[net_index(c.verdict)] += c.flows;
            let outcome = Outcome::of(c.in_set == set_allowed, c.verdict);
            let slot = (start + c.bucket * width).div_euclid(SLOT_SECS);
            tally.add_bucket(slot, outcome, c.flows);
        }
        if got != expected {
            return Err(ClickHouseError::answer(
                table.url(),
                format!(
                    "the flows of the window changed between two queries ({} flows, then {}): \
                     flows are being written into it; give --until a time before the newest \
                     flows",
                    expected.iter().sum::<u64>(),
                    got.iter().sum::<u64>()
                ),
            )
            .into());
        }
        Ok(())
    }
}
