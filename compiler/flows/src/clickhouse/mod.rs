//! Flows in ClickHouse, read and written over its HTTP interface
//! (`clickhouse://[user[:password]@]host:port/database.table`).
//!
//! Reading pushes the aggregation into the engine: one query groups the
//! flows of a time window by conversation and network verdict
//! ([`Table::fold_conversations`]), so ringfence receives one row per
//! distinct conversation, never the flows, streamed in `RowBinary` and
//! folded by worker threads as it arrives; `analyze` and `discover` send
//! that query ahead ([`Table::ask_early`]), so the engine aggregates while
//! they compile the policy. A second query counts flows per
//! time bucket, split by a set of conversations ringfence sends
//! ([`Table::timeline`]); analysis uses it for its timeline. Both work the
//! same on a `MergeTree` and on a `Distributed` table over shards.
//!
//! Only what ClickHouse 18.16 and current servers both understand is used:
//! the HTTP interface with basic authentication, `RowBinary`, external
//! tables, `uniqUpTo` (its state read back for the values it holds),
//! `wait_end_of_query`. Not used: the `IPv4`/
//! `IPv6` and `DateTime64` types, `LowCardinality` in ringfence's table
//! (accepted in others), `SimpleAggregateFunction`, `TTL`, `groupUniqArray(N)`,
//! `optimize_aggregation_in_order`, the native protocol.

mod error;
mod http;
mod layout;
mod rowbinary;
mod url;

use std::io::{BufReader, Read};
use std::net::IpAddr;
use std::sync::mpsc::sync_channel;
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;

use ringfence_schema::flow::NetworkVerdict;
use ringfence_schema::net::Proto;
use serde::Serialize;

pub use error::ClickHouseError;
pub use layout::{CONVERSATIONS_DDL, CONVERSATIONS_VIEW_DDL, DDL, Layout};
pub use url::TableUrl;

use crate::conversation::{Conversation, SRC_PORTS, SrcPorts};
use crate::flow::Flow;
use crate::time::Timestamp;
use crate::window::Window;
use http::{Body, Client};
use layout::HOUR_NS;
use rowbinary::{Rows, put_string};

/// Conversations handed to a worker at a time.
const BATCH: usize = 4096;

/// A flow table on a ClickHouse server, its layout known.
pub struct Table {
    client: Client,
    layout: Layout,
    /// Its conversation table (`TABLE_conversations`), when it has one.
    conversations: Option<TableUrl>,
    /// A conversation query sent ahead ([`Table::ask_early`]).
    early: Mutex<Option<Early>>,
}

/// The answer to a conversation query, streamed, and the conversation
/// table that answered for the window's whole hours, if one did.
type Answer = (Box<dyn Read + Send>, Option<String>);

/// A conversation query on its way: its text, and the thread that waits
/// for the server's answer.
struct Early {
    sql: String,
    answer: JoinHandle<Result<Answer, ClickHouseError>>,
}

/// Which rows answer for a window: the conversation table for the whole
/// hours in it, the flow table for the rest (all of it without a
/// conversation table). Bounds in nanoseconds or hours, `[from, to)`, `None`
/// unbounded.
#[derive(Debug, PartialEq, Eq)]
struct Split {
    hours: Option<Range>,
    flows: Vec<Range>,
}

type Range = (Option<i64>, Option<i64>);

impl Split {
    fn new(window: &Window, conversations: bool) -> Split {
        let (since, until) = (
            window.since.map(|t| t.unix_nanos()),
            window.until.map(|t| t.unix_nanos()),
        );
        if !conversations {
            return Split {
                hours: None,
                flows: vec![(since, until)],
            };
        }
        let from = since.map(|s| -(-s).div_euclid(HOUR_NS));
        let to = until.map(|u| u.div_euclid(HOUR_NS));
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            // No whole hour inside the window.
            return Split {
                hours: None,
                flows: vec![(since, until)],
            };
        }
        let mut flows = Vec::new();
        if let (Some(s), Some(f)) = (since, from)
            && s != f * HOUR_NS
        {
            flows.push((Some(s), Some(f * HOUR_NS)));
        }
        if let (Some(u), Some(t)) = (until, to)
            && u != t * HOUR_NS
        {
            flows.push((Some(t * HOUR_NS), Some(u)));
        }
        Split {
            hours: Some((from, to)),
            flows,
        }
    }
}

/// `expr` in `[from, to)`, `None` for no condition.
fn within(expr: &str, (from, to): Range) -> Option<String> {
    let conds: Vec<String> = from
        .map(|f| format!("{expr} >= {f}"))
        .into_iter()
        .chain(to.map(|t| format!("{expr} < {t}")))
        .collect();
    (!conds.is_empty()).then(|| conds.join(" AND "))
}

/// ` WHERE` any of `conds` (none: every row), `and` added to it.
fn where_any(conds: &[Option<String>], and: Option<&str>) -> String {
    let mut all: Vec<String> = Vec::new();
    match conds {
        [] => {}
        [Some(one)] => all.push(one.clone()),
        _ if conds.iter().all(Option::is_some) => {
            let any: Vec<String> = conds.iter().flatten().map(|c| format!("({c})")).collect();
            all.push(format!("({})", any.join(" OR ")));
        }
        _ => {}
    }
    all.extend(and.map(str::to_string));
    if all.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", all.join(" AND "))
    }
}

/// How to read conversations.
#[derive(Clone, Copy, Debug)]
pub struct TableRead {
    /// The time window.
    pub window: Window,
    /// Whether to ask for the source ports (discovery tells replies by them).
    pub src_ports: bool,
    /// Worker threads; 0 means one per available core.
    pub threads: usize,
    /// How many unreadable rows are kept for messages (all are counted).
    pub max_errors: usize,
}

/// What a read returned.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TableStats {
    /// Rows the server returned (conversations with one verdict).
    pub rows: u64,
    /// Flows those rows stand for.
    pub flows: u64,
    /// Flows of protocols without policy (gre, igmp, …), skipped.
    pub skipped: u64,
    /// Rows that could not be read.
    pub unreadable: u64,
    /// The conversation table that answered for the window's whole hours,
    /// if the flow table has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversations: Option<String>,
    /// The first of them, with why.
    pub errors: Vec<String>,
    /// The keys of skipped and unreadable rows, for [`Table::timeline`] to
    /// leave their flows out as well.
    #[serde(skip)]
    pub unread_keys: Vec<Box<[u8]>>,
}

/// Flows of one time bucket and network verdict, in or out of the set asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketCount {
    /// Bucket number from the origin asked for.
    pub bucket: i64,
    /// The network verdict.
    pub verdict: Option<NetworkVerdict>,
    /// Whether these flows belong to conversations of the set.
    pub in_set: bool,
    /// How many.
    pub flows: u64,
}

/// A `TabSeparated` field as text (`\'`, `\\`, `\t`, `\n` undone).
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('0') => out.push('\0'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

impl Table {
    /// Reach the server, check the user, find the table and tell its layout,
    /// and whether it has a conversation table (`TABLE_conversations` in the
    /// same database, ringfence's layout only).
    pub fn connect(url: &TableUrl) -> Result<Table, ClickHouseError> {
        let client = Client::new(url);
        let conv_url = TableUrl {
            table: format!("{}_conversations", url.table),
            ..url.clone()
        };
        let text = client.text(&format!(
            "SELECT table, name, type FROM system.columns WHERE database = {} AND table IN ({}, {}) \
             FORMAT TabSeparated",
            sql_string(&url.database),
            sql_string(&url.table),
            sql_string(&conv_url.table)
        ))?;
        let (mut columns, mut conv_columns) = (Vec::new(), Vec::new());
        for line in text.lines() {
            let mut fields = line.split('\t').map(unescape);
            if let (Some(table), Some(name), Some(ty)) =
                (fields.next(), fields.next(), fields.next())
            {
                if table == url.table {
                    columns.push((name, ty));
                } else {
                    conv_columns.push((name, ty));
                }
            }
        }
        if columns.is_empty() {
            let dbs = client.text(&format!(
                "SELECT count() FROM system.databases WHERE name = {} FORMAT TabSeparated",
                sql_string(&url.database)
            ))?;
            return Err(if dbs.trim() == "0" {
                error::missing_database(url)
            } else {
                error::missing_table(url)
            });
        }
        let layout = Layout::detect(&columns).map_err(|problems| ClickHouseError::Columns {
            url: Box::new(url.clone()),
            problems,
        })?;
        let conversations = if layout == Layout::Ringfence && !conv_columns.is_empty() {
            Layout::check_conversations(&conv_columns).map_err(|problems| {
                ClickHouseError::Columns {
                    url: Box::new(conv_url.clone()),
                    problems,
                }
            })?;
            Some(conv_url)
        } else {
            None
        };
        Ok(Table {
            client,
            layout,
            conversations,
            early: Mutex::default(),
        })
    }

    /// Connect, creating ringfence's table ([`DDL`]) if the database has no
    /// table of that name. Only ringfence's layout can be written.
    pub fn create(url: &TableUrl) -> Result<(Table, bool), ClickHouseError> {
        let (table, created) = match Table::connect(url) {
            Err(ClickHouseError::Missing { what, .. }) if what.starts_with("table") => {
                let client = Client::new(url);
                let names = |suffix: &str| {
                    TableUrl {
                        table: format!("{}{suffix}", url.table),
                        ..url.clone()
                    }
                    .sql_name()
                };
                for ddl in [DDL, CONVERSATIONS_DDL, CONVERSATIONS_VIEW_DDL] {
                    client.text(
                        &ddl.replace("{table}", &names(""))
                            .replace("{conversations}", &names("_conversations"))
                            .replace("{view}", &names("_conversations_view")),
                    )?;
                }
                (Table::connect(url)?, true)
            }
            other => (other?, false),
        };
        if table.layout != Layout::Ringfence {
            return Err(ClickHouseError::Columns {
                url: Box::new(url.clone()),
                problems: format!(
                    "a table of the {} layout; ringfence writes only its own layout",
                    table.layout.name()
                ),
            });
        }
        Ok((table, created))
    }

    /// The table.
    pub fn url(&self) -> &TableUrl {
        &self.client.url
    }

    /// How it stores flows.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Its conversation table, if it has one.
    pub fn conversations(&self) -> Option<&TableUrl> {
        self.conversations.as_ref()
    }

    /// The condition on the flow table's rows for `flows` of a split.
    fn flows_filter(&self, split: &Split, and: Option<&str>) -> String {
        let first = self.layout.exprs().first_ns;
        let conds: Vec<Option<String>> = split.flows.iter().map(|r| within(first, *r)).collect();
        where_any(&conds, and)
    }

    /// Check that the conversation table holds the flows of the flow table
    /// for the whole hours asked about: a view created after flows were
    /// loaded, or rows deleted from one table, would give other results
    /// than the flows.
    fn check_conversations(&self, conv: &TableUrl, hours: Range) -> Result<(), ClickHouseError> {
        let first = self.layout.exprs().first_ns;
        let ns = (hours.0.map(|h| h * HOUR_NS), hours.1.map(|h| h * HOUR_NS));
        let count = |sql: String| -> Result<u64, ClickHouseError> {
            let text = self.client.text(&sql)?;
            text.trim().parse().map_err(|_| {
                ClickHouseError::answer(self.url(), format!("a count reads `{}`", text.trim()))
            })
        };
        let in_flows = count(format!(
            "SELECT count() FROM {}{} FORMAT TabSeparated",
            self.url().sql_name(),
            where_any(&[within(first, ns)], None)
        ))?;
        let in_conv = count(format!(
            "SELECT countMerge(flows) FROM {}{} FORMAT TabSeparated",
            conv.sql_name(),
            where_any(&[within("hour", hours)], None)
        ))?;
        if in_flows == in_conv {
            return Ok(());
        }
        Err(ClickHouseError::answer(
            self.url(),
            format!(
                "its conversation table {conv} holds {in_conv} flows of the window's whole hours, \
                 the flow table {in_flows}: the view was created after flows were loaded, or rows \
                 were deleted from one of them; fill the conversation table anew (schema/docs/\
                 flows.md, \"Conversation table\") or drop it to read the flows"
            ),
        ))
    }

    /// Send the conversation query of [`Table::fold_conversations`] with
    /// `opts` now, from a thread, so the engine aggregates while the caller
    /// does other work (compiles the policy); `fold_conversations` with the
    /// same options then reads this answer, and reports its errors.
    pub fn ask_early(&self, opts: &TableRead) {
        let split = Split::new(&opts.window, self.conversations.is_some());
        let sql = self.fold_sql(&split, opts.src_ports);
        let table = Table {
            client: self.client.clone(),
            layout: self.layout,
            conversations: self.conversations.clone(),
            early: Mutex::default(),
        };
        let query = sql.clone();
        let answer = std::thread::spawn(move || table.ask(&split, &query));
        *self.early.lock().unwrap_or_else(PoisonError::into_inner) = Some(Early { sql, answer });
    }

    /// Check the conversation table (when it answers for some hours), then
    /// send `sql`.
    fn ask(&self, split: &Split, sql: &str) -> Result<Answer, ClickHouseError> {
        let mut conversations = None;
        if let (Some(conv), Some(hours)) = (&self.conversations, split.hours) {
            self.check_conversations(conv, hours)?;
            conversations = Some(conv.to_string());
        }
        let answer = self.client.post(sql, &[], Body::None)?;
        Ok((Box::new(answer), conversations))
    }

    /// The query of [`Table::fold_conversations`].
    fn fold_sql(&self, split: &Split, src_ports: bool) -> String {
        let layout::Exprs {
            key,
            verdict,
            first_ns: first,
            last_ns: last,
            packets,
            bytes,
            src_port,
        } = self.layout.exprs();
        let n = SRC_PORTS + 1;
        let table = self.url().sql_name();
        let filter = self.flows_filter(split, None);
        let (Some(conv), Some(hours)) = (&self.conversations, split.hours) else {
            let ports = if src_ports {
                format!(", uniqUpToState({n})({src_port})")
            } else {
                String::new()
            };
            return format!(
                "SELECT {key} AS k, {verdict} AS v, count(), sum({packets}), sum({bytes}), \
                 min({first}), max({first}), max({last}){ports} FROM {table}{filter} \
                 GROUP BY k, v FORMAT RowBinary"
            );
        };
        let conv_where = where_any(&[within("hour", hours)], None);
        let ports = if src_ports {
            format!(", uniqUpToMergeState({n})(src_port_count)")
        } else {
            String::new()
        };
        if split.flows.is_empty() {
            return format!(
                "SELECT conversation AS k, CAST(verdict AS Int8) AS v, countMerge(flows), \
                 sumMerge(packet_count), sumMerge(byte_count), minMerge(first_seen), \
                 maxMerge(last_start), maxMerge(last_seen){ports} FROM {}{conv_where} \
                 GROUP BY k, v FORMAT RowBinary",
                conv.sql_name()
            );
        }
        // The whole hours' states and those of the flows at the edges,
        // merged per conversation.
        let (conv_ports, flow_ports, merge_ports) = if src_ports {
            (
                format!(", uniqUpToMergeState({n})(src_port_count) AS pc"),
                format!(", uniqUpToState({n})({p}) AS pc", p = src_port),
                format!(", uniqUpToMergeState({n})(pc)"),
            )
        } else {
            Default::default()
        };
        format!(
            "SELECT k, v, countMerge(c), sumMerge(p), sumMerge(b), minMerge(f), maxMerge(ls), \
             maxMerge(l){merge_ports} FROM (\
             SELECT conversation AS k, CAST(verdict AS Int8) AS v, countMergeState(flows) AS c, \
             sumMergeState(packet_count) AS p, sumMergeState(byte_count) AS b, \
             minMergeState(first_seen) AS f, maxMergeState(last_start) AS ls, \
             maxMergeState(last_seen) AS l{conv_ports} FROM {conv}{conv_where} GROUP BY k, v \
             UNION ALL \
             SELECT {key} AS k, {verdict} AS v, countState() AS c, sumState({packets}) AS p, \
             sumState({bytes}) AS b, minState({first}) AS f, maxState({first}) AS ls, \
             maxState({last}) AS l{flow_ports} FROM {table}{filter} GROUP BY k, v) \
             GROUP BY k, v FORMAT RowBinary",
            conv = conv.sql_name(),
        )
    }

    /// Fold every conversation of the window into accumulators, in
    /// parallel, as the server's answer streams in.
    ///
    /// The engine groups the flows by conversation key and network verdict;
    /// each worker owns one accumulator, made by `init`. Which rows each
    /// worker saw depends on scheduling: combine the accumulators with an
    /// order-independent merge. Rows that do not read as a conversation are
    /// counted and the first `opts.max_errors` kept.
    pub fn fold_conversations<A: Send>(
        &self,
        opts: &TableRead,
        init: impl Fn() -> A + Sync,
        fold: impl Fn(&mut A, Conversation) + Sync,
    ) -> Result<(Vec<A>, TableStats), ClickHouseError> {
        let split = Split::new(&opts.window, self.conversations.is_some());
        let sql = self.fold_sql(&split, opts.src_ports);
        let early = self
            .early
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let (answer, conversations) = match early.filter(|e| e.sql == sql) {
            Some(e) => e
                .answer
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))?,
            None => self.ask(&split, &sql)?,
        };
        let mut stats = TableStats {
            conversations,
            ..TableStats::default()
        };
        let mut rows = Rows::new(BufReader::with_capacity(1 << 20, answer));
        let threads = match opts.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let (tx, rx) = sync_channel::<Vec<Conversation>>(threads * 2);
        let rx = Mutex::new(rx);
        let (read, accs) = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let mut acc = init();
                        while let Ok(Ok(batch)) = rx.lock().map(|r| r.recv()) {
                            for c in batch {
                                fold(&mut acc, c);
                            }
                        }
                        acc
                    })
                })
                .collect();
            let read = (|| {
                let mut batch = Vec::with_capacity(BATCH);
                while !rows.at_end().map_err(|e| self.broken(&stats, e))? {
                    let row = self
                        .row(&mut rows, opts.src_ports)
                        .map_err(|e| self.broken(&stats, e))?;
                    stats.rows += 1;
                    match row {
                        Row::Conversation(c) => {
                            stats.flows += c.flows;
                            batch.push(*c);
                            if batch.len() == BATCH {
                                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                                if tx.send(full).is_err() {
                                    break;
                                }
                            }
                        }
                        Row::Skipped(n, key) => {
                            stats.flows += n;
                            stats.skipped += n;
                            stats.unread_keys.push(key);
                        }
                        Row::Bad(why, key) => {
                            stats.unreadable += 1;
                            stats.unread_keys.push(key);
                            if stats.errors.len() < opts.max_errors {
                                stats.errors.push(format!(
                                    "{}: row {}: {why}",
                                    self.url(),
                                    stats.rows
                                ));
                            }
                        }
                    }
                }
                if !batch.is_empty() {
                    let _ = tx.send(batch);
                }
                Ok(())
            })();
            drop(tx);
            let accs: Vec<A> = workers
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect();
            (read, accs)
        });
        read?;
        Ok((accs, stats))
    }

    fn broken(&self, stats: &TableStats, e: std::io::Error) -> ClickHouseError {
        ClickHouseError::answer(
            self.url(),
            format!(
                "the answer broke off or is garbled after {} rows ({e}); run again, and check \
                 the server's log if it persists",
                stats.rows
            ),
        )
    }

    /// Read one row of [`Table::fold_conversations`]'s answer.
    fn row(&self, rows: &mut Rows<impl std::io::BufRead>, ports: bool) -> std::io::Result<Row> {
        let key = rows.string()?;
        let verdict = rows.i8()?;
        let flows = rows.u64()?;
        let (packets, bytes) = (rows.u64()?, rows.u64()?);
        let (first, last_start, last) = (rows.i64()?, rows.i64()?, rows.i64()?);
        let src_ports = if ports {
            // The distinct ports themselves, when at most SRC_PORTS + 1
            // (one of them may be 0, no port).
            match rows.uniq_up_to_u16(SRC_PORTS as u8 + 1)? {
                Some(mut ports) => {
                    ports.retain(|&p| p != 0);
                    ports.sort_unstable();
                    if ports.len() > SRC_PORTS {
                        SrcPorts::Many
                    } else {
                        SrcPorts::Few(ports)
                    }
                }
                None => SrcPorts::Many,
            }
        } else {
            SrcPorts::Few(Vec::new())
        };
        let key = match String::from_utf8(key) {
            Ok(k) => k,
            Err(e) => {
                let raw = e.into_bytes().into_boxed_slice();
                return Ok(Row::Bad("the key is not UTF-8 text".into(), raw));
            }
        };
        let raw = || key.as_bytes().into();
        let fields = match self.layout.parse_key(&key) {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(Row::Skipped(flows, raw())),
            Err(why) => return Ok(Row::Bad(why, raw())),
        };
        let verdict = match layout::verdict(verdict) {
            Ok(v) => v,
            Err(why) => return Ok(Row::Bad(why, raw())),
        };
        let flow = Flow {
            src_ip: fields.src_ip,
            dst_ip: fields.dst_ip,
            proto: fields.proto,
            src_port: None,
            dst_port: fields.dst_port,
            orig_dst_ip: fields.orig_dst_ip,
            orig_dst_port: fields.orig_dst_port,
            dst_service: fields.dst_service,
            packets,
            bytes,
            first_seen: Timestamp::from_unix_nanos(first),
            last_seen: Timestamp::from_unix_nanos(last),
            verdict,
            node: None,
        };
        if let Err(why) = flow.check() {
            return Ok(Row::Bad(format!("key `{key}`: {why}"), raw()));
        }
        Ok(Row::Conversation(Box::new(Conversation {
            flow,
            flows,
            last_start: Timestamp::from_unix_nanos(last_start),
            src_ports,
            key: key.into_boxed_str(),
        })))
    }

    /// Flows of the window per time bucket (`floor((first_seen - origin) /
    /// width)`) and network verdict, split by whether their conversation's
    /// key is in `set` (keys as [`Conversation::key`] gives them); flows of
    /// the conversations in `leave_out` are not counted. A conversation
    /// table counts flows per minute: `origin_ns` and `width_ns` must then
    /// be whole minutes. A bucket may come in several counts, to be added.
    pub fn timeline(
        &self,
        window: &Window,
        origin_ns: i64,
        width_ns: i64,
        set: &[&[u8]],
        leave_out: &[&[u8]],
    ) -> Result<Vec<BucketCount>, ClickHouseError> {
        let e = self.layout.exprs();
        let split = Split::new(window, self.conversations.is_some());
        let rows_of = |keys: &[&[u8]]| {
            let mut data = Vec::with_capacity(keys.iter().map(|k| k.len() + 2).sum());
            for k in keys {
                put_string(&mut data, k);
            }
            data
        };
        let (set, out) = (rows_of(set), rows_of(leave_out));
        let mut tables = vec![("ringfence_set", &set[..])];
        let mut params = vec![
            ("ringfence_set_structure", "key String"),
            ("ringfence_set_format", "RowBinary"),
        ];
        if !leave_out.is_empty() {
            tables.push(("ringfence_out", &out[..]));
            params.push(("ringfence_out_structure", "key String"));
            params.push(("ringfence_out_format", "RowBinary"));
        }
        let mut counts = Vec::new();
        let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        if let (Some(conv), Some(hours)) = (&self.conversations, split.hours) {
            debug_assert!(origin_ns % 60_000_000_000 == 0 && width_ns % 60_000_000_000 == 0);
            let out = (!leave_out.is_empty()).then_some("conversation NOT IN ringfence_out");
            let sql = format!(
                "SELECT hour, CAST(verdict AS Int8) AS v, conversation IN ringfence_set AS inset, \
                 sumMapMerge(minute_flows) FROM {}{} GROUP BY hour, v, inset FORMAT RowBinary",
                conv.sql_name(),
                where_any(&[within("hour", hours)], out)
            );
            self.each_row(&sql, &params, &tables, |rows| {
                let hour = rows.i64()?;
                let verdict = layout::verdict(rows.i8()?).map_err(invalid)?;
                let in_set = rows.u8()? != 0;
                let minutes = rows.array_u8()?;
                let flows = rows.array_u64()?;
                if minutes.len() != flows.len() {
                    return Err(invalid("a minute map of unequal arrays".into()));
                }
                for (m, flows) in minutes.into_iter().zip(flows) {
                    let ns = hour * HOUR_NS + i64::from(m) * 60_000_000_000;
                    counts.push(BucketCount {
                        bucket: (ns - origin_ns).div_euclid(width_ns),
                        verdict,
                        in_set,
                        flows,
                    });
                }
                Ok(())
            })?;
        }
        if split.flows.is_empty() {
            return Ok(counts);
        }
        let out = format!("{} NOT IN ringfence_out", e.key);
        let sql = format!(
            "SELECT intDiv({first} - {origin_ns}, {width_ns}) AS bucket, {verdict} AS v, \
             {key} IN ringfence_set AS inset, count() FROM {table}{filter} \
             GROUP BY bucket, v, inset FORMAT RowBinary",
            first = e.first_ns,
            verdict = e.verdict,
            key = e.key,
            table = self.url().sql_name(),
            filter = self.flows_filter(&split, (!leave_out.is_empty()).then_some(&out)),
        );
        self.each_row(&sql, &params, &tables, |rows| {
            counts.push(BucketCount {
                bucket: rows.i64()?,
                verdict: layout::verdict(rows.i8()?).map_err(invalid)?,
                in_set: rows.u8()? != 0,
                flows: rows.u64()?,
            });
            Ok(())
        })?;
        Ok(counts)
    }

    /// Post `sql` with external `tables` and read its RowBinary answer to
    /// the end, a row per call of `row`.
    fn each_row(
        &self,
        sql: &str,
        params: &[(&str, &str)],
        tables: &[(&str, &[u8])],
        mut row: impl FnMut(&mut Rows<BufReader<Box<dyn Read>>>) -> std::io::Result<()>,
    ) -> Result<(), ClickHouseError> {
        let answer: Box<dyn Read> =
            Box::new(self.client.post(sql, params, Body::External(tables))?);
        let mut rows = Rows::new(BufReader::new(answer));
        let mut read = || -> std::io::Result<()> {
            while !rows.at_end()? {
                row(&mut rows)?;
            }
            Ok(())
        };
        read().map_err(|e| self.broken(&TableStats::default(), e))
    }

    /// What to run when the flow table or its conversation table has
    /// partitions of several parts after a load (each `INSERT` writes a part
    /// of its own; the engine merges them later, and until then every query
    /// merges their rows anew), or `None` when all is merged. Behind a
    /// `Distributed` table the parts are on the shards: the hint says so.
    pub fn merge_hint(&self) -> Result<Option<String>, ClickHouseError> {
        let url = self.url();
        let engine = self.client.text(&format!(
            "SELECT engine FROM system.tables WHERE database = {} AND name = {} \
             FORMAT TabSeparated",
            sql_string(&url.database),
            sql_string(&url.table)
        ))?;
        let tables: Vec<&TableUrl> = std::iter::once(url)
            .chain(self.conversations.as_ref())
            .collect();
        let optimize = |t: &str| format!("OPTIMIZE TABLE {t} FINAL");
        if engine.trim() == "Distributed" {
            return Ok(Some(format!(
                "{url} is Distributed: on each shard, merge the local tables' parts (`{}` for \
                 each local table, repeated until system.parts shows one active part per \
                 partition) before timing queries",
                optimize("…")
            )));
        }
        let names: Vec<String> = tables.iter().map(|t| sql_string(&t.table)).collect();
        let text = self.client.text(&format!(
            "SELECT table, count() - uniqExact(partition) FROM system.parts WHERE active AND \
             database = {} AND table IN ({}) GROUP BY table ORDER BY table FORMAT TabSeparated",
            sql_string(&url.database),
            names.join(", ")
        ))?;
        let mut unmerged = Vec::new();
        for line in text.lines() {
            if let Some((table, extra)) = line.split_once('\t')
                && extra.trim() != "0"
                && let Some(t) = tables.iter().find(|t| t.table == unescape(table))
            {
                unmerged.push(optimize(&t.sql_name()));
            }
        }
        Ok((!unmerged.is_empty()).then(|| {
            format!(
                "parts are not merged yet (the engine merges them in time; until then each query \
                 merges their rows): to merge them now, run {}",
                unmerged.join("; ")
            )
        }))
    }

    /// Insert flows (one `INSERT`; into a `Distributed` table, synchronously
    /// to every shard).
    pub fn insert(&self, flows: &[Flow]) -> Result<(), ClickHouseError> {
        let mut data = Vec::with_capacity(flows.len() * 96);
        for f in flows {
            encode_flow(&mut data, f);
        }
        let sql = format!(
            "INSERT INTO {} (first_seen_ns, last_seen_ns, src_ip, dst_ip, proto, dst_port, \
             src_port, orig_dst_ip, orig_dst_port, dst_service, packets, bytes, verdict, node) \
             FORMAT RowBinary",
            self.url().sql_name()
        );
        self.client
            .post(&sql, &[("insert_distributed_sync", "1")], Body::Data(&data))
            .map(drop)
    }
}

/// One row of the conversation query.
enum Row {
    Conversation(Box<Conversation>),
    /// A protocol without policy: this many flows skipped, and the key.
    Skipped(u64, Box<[u8]>),
    /// Not a conversation: why, and the key.
    Bad(String, Box<[u8]>),
}

/// IANA protocol numbers (ICMPv6 for IPv6 destinations).
fn proto_number(p: Proto, dst: IpAddr) -> u8 {
    match p {
        Proto::Tcp => 6,
        Proto::Udp => 17,
        Proto::Sctp => 132,
        Proto::Icmp if dst.is_ipv6() => 58,
        Proto::Icmp | Proto::Any => 1,
    }
}

/// A flow as a `RowBinary` row of ringfence's table.
fn encode_flow(out: &mut Vec<u8>, f: &Flow) {
    out.extend_from_slice(&f.first_seen.unix_nanos().to_le_bytes());
    out.extend_from_slice(&f.last_seen.unix_nanos().to_le_bytes());
    put_string(out, f.src_ip.to_string().as_bytes());
    put_string(out, f.dst_ip.to_string().as_bytes());
    out.push(proto_number(f.proto, f.dst_ip));
    out.extend_from_slice(&f.dst_port.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&f.src_port.unwrap_or(0).to_le_bytes());
    put_string(
        out,
        f.orig_dst_ip
            .map(|a| a.to_string())
            .unwrap_or_default()
            .as_bytes(),
    );
    out.extend_from_slice(&f.orig_dst_port.unwrap_or(0).to_le_bytes());
    put_string(out, f.dst_service.as_deref().unwrap_or("").as_bytes());
    out.extend_from_slice(&f.packets.to_le_bytes());
    out.extend_from_slice(&f.bytes.to_le_bytes());
    out.push(match f.verdict {
        None => 0,
        Some(NetworkVerdict::Allowed) => 1,
        Some(NetworkVerdict::Dropped) => 2,
    });
    put_string(out, f.node.as_deref().unwrap_or("").as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(since: Option<i64>, until: Option<i64>) -> Window {
        Window {
            since: since.map(Timestamp::from_unix_nanos),
            until: until.map(Timestamp::from_unix_nanos),
        }
    }

    /// Whole hours from the conversation table, the partial hours at the
    /// edges from the flows, never both for the same instant.
    #[test]
    fn windows_split_into_whole_hours_and_edges() {
        let h = HOUR_NS;
        let split = |s, u| Split::new(&window(s, u), true);
        assert_eq!(
            split(None, None),
            Split {
                hours: Some((None, None)),
                flows: vec![]
            }
        );
        assert_eq!(
            split(Some(10 * h), Some(13 * h)),
            Split {
                hours: Some((Some(10), Some(13))),
                flows: vec![]
            }
        );
        assert_eq!(
            split(Some(10 * h + 1), Some(13 * h + 5)),
            Split {
                hours: Some((Some(11), Some(13))),
                flows: vec![
                    (Some(10 * h + 1), Some(11 * h)),
                    (Some(13 * h), Some(13 * h + 5))
                ]
            }
        );
        assert_eq!(
            split(None, Some(12 * h + h / 2)),
            Split {
                hours: Some((None, Some(12))),
                flows: vec![(Some(12 * h), Some(12 * h + h / 2))]
            }
        );
        // Before the epoch, hours round the same way.
        assert_eq!(split(Some(-h - 1), None).hours, Some((Some(-1), None)));
        // No whole hour inside: the flows alone.
        for (s, u) in [(10 * h + 1, 11 * h + 5), (10 * h + 1, 10 * h + 9)] {
            assert_eq!(
                split(Some(s), Some(u)),
                Split {
                    hours: None,
                    flows: vec![(Some(s), Some(u))]
                }
            );
        }
        // Without a conversation table: the flows alone.
        assert_eq!(
            Split::new(&window(Some(h), None), false),
            Split {
                hours: None,
                flows: vec![(Some(h), None)]
            }
        );
        assert_eq!(where_any(&[within("x", (None, None))], None), "");
        assert_eq!(
            where_any(
                &[
                    within("x", (Some(1), Some(2))),
                    within("x", (Some(5), None))
                ],
                Some("y")
            ),
            " WHERE ((x >= 1 AND x < 2) OR (x >= 5)) AND y"
        );
    }
}
