//! Flow records: what discovery and analysis read.
//!
//! Three input formats (`schema/docs/flows.md`), told apart per file from its
//! first lines:
//!
//! - ringfence JSON Lines ([`ringfence_schema::flow::FlowRecord`] per line);
//! - Cilium Hubble (`hubble observe -o json`), replies skipped;
//! - conntrack listings (`conntrack -L -o extended`, `conntrack -E`), with
//!   the post-DNAT backend as destination.
//!
//! Every format becomes a [`Flow`]. Two ways to read, neither holding more
//! than a few chunks in memory:
//!
//! - [`FlowReader`]: an iterator over one file, flows and unreadable lines;
//! - [`fold_files`]: many files, each split into chunks of lines parsed and
//!   folded in parallel, one accumulator per worker.
//!
//! Flows kept in ClickHouse ([`clickhouse`]) are read as [`Conversation`]s:
//! the engine aggregates them, so memory depends on distinct conversations,
//! never on flows. A [`Window`] (`--since`, `--until`) applies to both.
//!
//! ```
//! use ringfence_flows::{FlowReader, ReadOptions};
//!
//! let input = r#"{"src_ip":"10.244.1.5","dst_ip":"10.244.2.7","proto":"tcp","dst_port":5432,"first_seen":"2024-05-01T12:00:00Z","last_seen":"2024-05-01T12:00:00Z"}"#;
//! let mut reader = FlowReader::new("flows.jsonl", input.as_bytes(), &ReadOptions::default())?;
//! let flow = reader.next().unwrap().unwrap();
//! assert_eq!(flow.dst_port, Some(5432));
//! # Ok::<(), ringfence_flows::FlowError>(())
//! ```

pub mod clickhouse;
mod conntrack;
mod conversation;
mod error;
mod flow;
mod hubble;
mod input;
mod jsonl;
mod read;
mod time;
mod window;

pub use conversation::{Conversation, SRC_PORTS, SrcPorts};
pub use error::{FlowError, LineError};
pub use flow::Flow;
pub use input::FlowFormat;
pub use read::{Counts, FileStats, FlowReader, ReadOptions, ReadStats, TableInput, fold_files};
pub use ringfence_schema::flow::{FlowRecord, NetworkVerdict};
pub use time::Timestamp;
pub use window::Window;

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::PathBuf;

    use super::*;

    const JSONL: &str = r#"{"src_ip":"10.244.1.5","dst_ip":"10.244.2.7","proto":"tcp","dst_port":5432,"src_port":40000,"packets":4,"bytes":400,"first_seen":"2024-05-01T12:00:00Z","last_seen":"2024-05-01T12:00:01Z","verdict":"allowed"}"#;
    const HUBBLE: &str = r#"{"flow":{"time":"2024-05-01T12:00:02Z","verdict":"FORWARDED","IP":{"source":"10.244.1.5","destination":"10.244.3.3","ipVersion":"IPv4"},"l4":{"UDP":{"source_port":40001,"destination_port":53}},"Type":"L3_L4","node_name":"w1"},"node_name":"w1","time":"2024-05-01T12:00:02Z"}"#;
    const HUBBLE_REPLY: &str = r#"{"flow":{"time":"2024-05-01T12:00:02Z","verdict":"FORWARDED","IP":{"source":"10.244.3.3","destination":"10.244.1.5","ipVersion":"IPv4"},"l4":{"UDP":{"source_port":53,"destination_port":40001}},"Type":"L3_L4","is_reply":true},"node_name":"w1"}"#;
    const CONNTRACK: &str = "ipv4     2 tcp      6 431999 ESTABLISHED src=10.244.1.5 dst=10.96.0.10 sport=44231 dport=53 packets=3 bytes=180 src=10.244.2.7 dst=10.244.1.5 sport=53 dport=44231 packets=3 bytes=300 [ASSURED] mark=0 use=1";

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::File::create(&p)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        p
    }

    #[test]
    fn each_file_gets_its_own_format() {
        let dir = tempfile::tempdir().unwrap();
        let files = [
            write(&dir, "a.jsonl", &format!("{JSONL}\n\n{JSONL}\n")),
            write(&dir, "b.json", &format!("{HUBBLE}\n{HUBBLE_REPLY}\n")),
            write(
                &dir,
                "c.txt",
                &format!(
                    "{CONNTRACK}\r\nconntrack v1.4.6 (conntrack-tools): 1 flow entries have been shown.\r\n"
                ),
            ),
        ];
        let formats: Vec<_> = files
            .iter()
            .map(|f| {
                FlowReader::open(f, &ReadOptions::default())
                    .unwrap()
                    .format()
            })
            .collect();
        assert_eq!(
            formats,
            [
                Some(FlowFormat::Ringfence),
                Some(FlowFormat::Hubble),
                Some(FlowFormat::Conntrack)
            ]
        );
        let mut r = FlowReader::open(&files[2], &ReadOptions::default()).unwrap();
        let f = r.next().unwrap().unwrap();
        assert!(r.next().is_none());
        // No time in the listing: the file's modification time, and said so.
        let mtime = std::fs::metadata(&files[2]).unwrap().modified().unwrap();
        assert_eq!(f.first_seen, Timestamp::from_system_time(mtime));
        assert_eq!(
            r.stats().assumed_time.as_deref(),
            Some(f.first_seen.to_string().as_str())
        );
        assert_eq!(r.stats().counts.ignored, 1);
    }

    #[test]
    fn unknown_formats_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "x.csv", "\n\ntime,src,dst\n");
        let e = FlowReader::open(&p, &ReadOptions::default()).err().unwrap();
        let msg = e.to_string();
        assert!(
            msg.contains("x.csv:3: cannot tell the flow format: `time,src,dst`"),
            "{msg}"
        );
        assert!(msg.contains("conntrack -L -o extended"), "{msg}");
        let e = fold_files(&[p], &ReadOptions::default(), || (), |_, _| {})
            .err()
            .unwrap();
        assert!(e.to_string().contains("x.csv:3:"), "{e}");
        let missing = dir.path().join("missing.jsonl");
        let e = FlowReader::open(&missing, &ReadOptions::default())
            .err()
            .unwrap();
        assert!(matches!(e, FlowError::Io { .. }) && e.to_string().contains("missing.jsonl"));
    }

    #[test]
    fn empty_files_have_no_flows() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "empty.jsonl", "");
        let mut r = FlowReader::open(&p, &ReadOptions::default()).unwrap();
        assert_eq!(r.format(), None);
        assert!(r.next().is_none());
        let (_, stats) =
            fold_files(&[p], &ReadOptions::default(), || 0u64, |n, _| *n += 1).unwrap();
        assert_eq!(stats.total(), Counts::default());
    }

    /// The parallel fold sees exactly what the sequential reader sees, and
    /// numbers bad lines the same way, whatever the chunk size.
    #[test]
    fn parallel_fold_matches_the_sequential_reader() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        let mut bad_lines = Vec::new();
        for i in 0..5000u32 {
            if i % 997 == 13 {
                text.push_str("{\"src_ip\":\"10.0.0.1\"}\n");
                bad_lines.push(u64::from(i) + 1);
            } else {
                text.push_str(&JSONL.replace("40000", &(10_000 + i).to_string()));
                text.push('\n');
            }
        }
        let p = write(&dir, "big.jsonl", &text);
        let seq: Vec<Result<Flow, LineError>> = FlowReader::open(&p, &ReadOptions::default())
            .unwrap()
            .collect();
        let seq_ports: u64 = seq
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|f| u64::from(f.src_port.unwrap()))
            .sum();
        let seq_errs: Vec<u64> = seq
            .iter()
            .filter_map(|r| r.as_ref().err())
            .map(|e| e.line)
            .collect();
        assert_eq!(seq_errs, bad_lines);
        for (threads, chunk_size) in [(1, 1 << 10), (3, 1 << 10), (2, 1 << 20)] {
            let opts = ReadOptions {
                threads,
                chunk_size,
                max_errors: 3,
                ..ReadOptions::default()
            };
            let (accs, stats) = fold_files(
                std::slice::from_ref(&p),
                &opts,
                || 0u64,
                |n, f| *n += u64::from(f.src_port.unwrap()),
            )
            .unwrap();
            assert_eq!(accs.len(), threads);
            assert_eq!(accs.iter().sum::<u64>(), seq_ports);
            let t = stats.total();
            assert_eq!((t.lines, t.unparsable), (5000, bad_lines.len() as u64));
            let lines: Vec<u64> = stats.errors.iter().map(|e| e.line).collect();
            assert_eq!(lines, bad_lines[..3]);
            let shown = stats.errors[0].to_string();
            assert!(
                shown.contains("big.jsonl:14: missing field `dst_ip`"),
                "{shown}"
            );
        }
    }

    #[test]
    fn mixed_formats_in_one_fold() {
        let dir = tempfile::tempdir().unwrap();
        let files = vec![
            write(&dir, "a.jsonl", &format!("{JSONL}\n")),
            write(&dir, "b.json", &format!("{HUBBLE}\n{HUBBLE_REPLY}\n")),
            write(&dir, "c.txt", &format!("{CONNTRACK}\n")),
        ];
        let opts = ReadOptions {
            default_time: Some("2024-05-01T13:00:00Z".parse().unwrap()),
            ..ReadOptions::default()
        };
        let (accs, stats) = fold_files(&files, &opts, Vec::new, |v, f| {
            v.push((f.dst_ip.to_string(), f.dst_port))
        })
        .unwrap();
        let mut all: Vec<_> = accs.into_iter().flatten().collect();
        all.sort();
        assert_eq!(
            all,
            [
                ("10.244.2.7".to_string(), Some(53)),
                ("10.244.2.7".to_string(), Some(5432)),
                ("10.244.3.3".to_string(), Some(53)),
            ]
        );
        let formats: Vec<_> = stats.files.iter().map(|f| f.format).collect();
        assert_eq!(
            formats,
            [
                Some(FlowFormat::Ringfence),
                Some(FlowFormat::Hubble),
                Some(FlowFormat::Conntrack)
            ]
        );
        assert_eq!(stats.files[1].counts.replies, 1);
        assert_eq!(
            stats.files[2].assumed_time.as_deref(),
            Some("2024-05-01T13:00:00Z")
        );
    }
}
