//! Flows in ClickHouse, read and written over its HTTP interface
//! (`clickhouse://[user[:password]@]host:port/database.table`).
//!
//! Reading pushes the aggregation into the engine: one query groups the
//! flows of a time window by conversation and network verdict
//! ([`Table::fold_conversations`]), so ringfence receives one row per
//! distinct conversation, never the flows, streamed in `RowBinary` and
//! folded by worker threads as it arrives. A second query counts flows per
//! time bucket, split by a set of conversations ringfence sends
//! ([`Table::timeline`]); analysis uses it for its timeline. Both work the
//! same on a `MergeTree` and on a `Distributed` table over shards.
//!
//! Only what ClickHouse 18.16 and current servers both understand is used:
//! the HTTP interface with basic authentication, `RowBinary`, external
//! tables, `uniqUpTo`, `topK`, `wait_end_of_query`. Not used: the `IPv4`/
//! `IPv6` and `DateTime64` types, `LowCardinality` in ringfence's table
//! (accepted in others), `SimpleAggregateFunction`, `TTL`, `groupUniqArray(N)`,
//! `optimize_aggregation_in_order`, the native protocol.

mod error;
mod http;
mod layout;
mod rowbinary;
mod url;

use std::io::BufReader;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::mpsc::sync_channel;

use ringfence_schema::flow::NetworkVerdict;
use ringfence_schema::net::Proto;
use serde::Serialize;

pub use error::ClickHouseError;
pub use layout::{DDL, Layout};
pub use url::TableUrl;

use crate::conversation::{Conversation, SRC_PORTS, SrcPorts};
use crate::flow::Flow;
use crate::time::Timestamp;
use crate::window::Window;
use http::{Body, Client};
use rowbinary::{Rows, put_string};

/// Conversations handed to a worker at a time.
const BATCH: usize = 4096;

/// A flow table on a ClickHouse server, its layout known.
pub struct Table {
    client: Client,
    layout: Layout,
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
    /// Reach the server, check the user, find the table and tell its layout.
    pub fn connect(url: &TableUrl) -> Result<Table, ClickHouseError> {
        let client = Client::new(url);
        let text = client.text(&format!(
            "SELECT name, type FROM system.columns WHERE database = {} AND table = {} \
             FORMAT TabSeparated",
            sql_string(&url.database),
            sql_string(&url.table)
        ))?;
        let columns: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(n, t)| (unescape(n), unescape(t)))
            .collect();
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
        Ok(Table { client, layout })
    }

    /// Connect, creating ringfence's table ([`DDL`]) if the database has no
    /// table of that name. Only ringfence's layout can be written.
    pub fn create(url: &TableUrl) -> Result<(Table, bool), ClickHouseError> {
        let (table, created) = match Table::connect(url) {
            Err(ClickHouseError::Missing { what, .. }) if what.starts_with("table") => {
                let client = Client::new(url);
                client.text(&DDL.replace("{table}", &url.sql_name()))?;
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

    fn filter(&self, window: &Window) -> String {
        let first = self.layout.exprs().first_ns;
        let mut conds = Vec::new();
        if let Some(s) = window.since {
            conds.push(format!("{first} >= {}", s.unix_nanos()));
        }
        if let Some(u) = window.until {
            conds.push(format!("{first} < {}", u.unix_nanos()));
        }
        if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        }
    }

    /// Fold every conversation of the window into accumulators, in
    /// parallel, as the server's answer streams in.
    ///
    /// The engine groups the flows by conversation key and network verdict;
    /// each worker owns one accumulator, made by `init`. Which rows each
    /// worker saw depends on scheduling: combine the accumulators with an
    /// order-independent merge. Rows that do not read as a conversation are
    /// counted and the first `opts.max_errors` kept.
    pub fn fold_conversations<A, I, F>(
        &self,
        opts: &TableRead,
        init: I,
        fold: F,
    ) -> Result<(Vec<A>, TableStats), ClickHouseError>
    where
        A: Send,
        I: Fn() -> A + Sync,
        F: Fn(&mut A, Conversation) + Sync,
    {
        let e = self.layout.exprs();
        let ports = if opts.src_ports {
            format!(
                ", uniqUpTo({n})({p}), topK({n})({p})",
                n = SRC_PORTS + 1,
                p = e.src_port
            )
        } else {
            String::new()
        };
        let sql = format!(
            "SELECT {key} AS k, {verdict} AS v, count(), sum({packets}), sum({bytes}), \
             min({first}), max({first}), max({last}){ports} FROM {table}{filter} \
             GROUP BY k, v FORMAT RowBinary",
            key = e.key,
            verdict = e.verdict,
            packets = e.packets,
            bytes = e.bytes,
            first = e.first_ns,
            last = e.last_ns,
            table = self.url().sql_name(),
            filter = self.filter(&opts.window),
        );
        let answer = self.client.post(&sql, &[], Body::None)?;
        let mut rows = Rows::new(BufReader::with_capacity(1 << 20, answer));
        let threads = match opts.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let (tx, rx) = sync_channel::<Vec<Conversation>>(threads * 2);
        let rx = Mutex::new(rx);
        let mut stats = TableStats::default();
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
            let distinct = rows.u64()?;
            let mut top = rows.array_u16()?;
            top.retain(|&p| p != 0);
            top.sort_unstable();
            if distinct > SRC_PORTS as u64 + 1 || top.len() > SRC_PORTS {
                SrcPorts::Many
            } else {
                SrcPorts::Few(top)
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
    /// the conversations in `leave_out` are not counted.
    pub fn timeline(
        &self,
        window: &Window,
        origin_ns: i64,
        width_ns: i64,
        set: &[&[u8]],
        leave_out: &[&[u8]],
    ) -> Result<Vec<BucketCount>, ClickHouseError> {
        let e = self.layout.exprs();
        let mut filter = self.filter(window);
        if !leave_out.is_empty() {
            filter.push_str(if filter.is_empty() {
                " WHERE "
            } else {
                " AND "
            });
            filter.push_str(&format!("{} NOT IN ringfence_out", e.key));
        }
        let sql = format!(
            "SELECT intDiv({first} - {origin_ns}, {width_ns}) AS bucket, {verdict} AS v, \
             {key} IN ringfence_set AS inset, count() FROM {table}{filter} \
             GROUP BY bucket, v, inset FORMAT RowBinary",
            first = e.first_ns,
            verdict = e.verdict,
            key = e.key,
            table = self.url().sql_name(),
        );
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
        let answer = self.client.post(&sql, &params, Body::External(&tables))?;
        let mut rows = Rows::new(BufReader::new(answer));
        let mut out = Vec::new();
        let stats = TableStats::default();
        let mut read = || -> std::io::Result<()> {
            while !rows.at_end()? {
                let bucket = rows.i64()?;
                let v = rows.i8()?;
                let in_set = rows.u8()? != 0;
                let flows = rows.u64()?;
                let verdict = layout::verdict(v)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
                out.push(BucketCount {
                    bucket,
                    verdict,
                    in_set,
                    flows,
                });
            }
            Ok(())
        };
        read().map_err(|e| self.broken(&stats, e))?;
        Ok(out)
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
