//! Flows in ClickHouse as a user keeps them: real `clickhouse-server`
//! processes (Debian's 18.16 here) started on loopback ports of their own,
//! one alone and two as two shards behind a `Distributed` table. Flow files
//! go in with `ringfence flows load`; `analyze` and `discover` read them
//! back from the single table, the distributed one and Antrea Theia's
//! layout, and must say exactly what they say from the files. Every error a
//! user can meet (server down, database or table missing, wrong columns,
//! password refused, memory limit) is tried.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use ringfence_testkit::synth::kubectl_list;
use serde_json::Value;

use crate::cli::{code, p, ringfence, stderr_has, text};
use crate::common;
use ringfence_testkit::text::assert_contains;

/// Ports for the servers of these tests (the range given to this work:
/// 26000-26899; benchmarks use 26900-26999).
const PORTS: std::ops::Range<u16> = 26000..26900;
static NEXT: AtomicU16 = AtomicU16::new(0);

/// A port of the range nobody listens on.
fn free_port() -> u16 {
    let span = PORTS.end - PORTS.start;
    let offset = (std::process::id() % u32::from(span)) as u16;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < span, "no free port in {PORTS:?}");
        let port = PORTS.start + (offset + n) % span;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// One `clickhouse-server` process with a configuration of its own,
/// stopped when dropped.
pub(crate) struct Server {
    child: Child,
    dir: tempfile::TempDir,
    pub(crate) http: u16,
    pub(crate) tcp: u16,
}

/// Users every server has: `default` (no password), `ringfence` (password
/// `s3cret`), `small` (queries limited to 4 MB of memory).
const USERS: &str = r#"<yandex>
  <profiles>
    <default/>
    <small><max_memory_usage>4000000</max_memory_usage></small>
  </profiles>
  <users>
    <default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default>
    <ringfence><password>s3cret</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></ringfence>
    <small><password></password><networks><ip>127.0.0.1</ip></networks><profile>small</profile><quota>default</quota></small>
  </users>
  <quotas><default/></quotas>
</yandex>
"#;

impl Server {
    /// Two ports, free now.
    fn ports() -> (u16, u16) {
        (free_port(), free_port())
    }

    /// Start a server on `ports`; `shards` are the native ports of the
    /// cluster `rf` its `Distributed` tables use.
    fn start(ports: (u16, u16), shards: &[u16]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let (http, tcp) = ports;
        let root = dir.path().display().to_string();
        let shards: String = shards
            .iter()
            .map(|p| {
                format!("<shard><replica><host>127.0.0.1</host><port>{p}</port></replica></shard>")
            })
            .collect();
        let config = format!(
            "<yandex><logger><level>warning</level><console>1</console></logger>\
             <http_port>{http}</http_port><tcp_port>{tcp}</tcp_port>\
             <listen_host>127.0.0.1</listen_host><path>{root}/data/</path>\
             <tmp_path>{root}/tmp/</tmp_path><users_config>users.xml</users_config>\
             <default_profile>default</default_profile><default_database>default</default_database>\
             <mark_cache_size>268435456</mark_cache_size>\
             <remote_servers><rf>{shards}</rf></remote_servers></yandex>\n"
        );
        std::fs::write(dir.path().join("config.xml"), config).unwrap();
        std::fs::write(dir.path().join("users.xml"), USERS).unwrap();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new("clickhouse-server")
            .arg("--config-file=config.xml")
            .current_dir(dir.path())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("clickhouse-server (apt-get install clickhouse-server clickhouse-client)");
        let s = Server {
            child,
            dir,
            http,
            tcp,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while s.try_sql("SELECT 1").is_err() {
            assert!(
                Instant::now() < deadline,
                "clickhouse-server did not start: {}",
                std::fs::read_to_string(s.dir.path().join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        s
    }

    /// One server alone.
    pub(crate) fn alone() -> Server {
        let ports = Server::ports();
        Server::start(ports, &[ports.1])
    }

    /// Two servers, the shards of cluster `rf`.
    pub(crate) fn two_shards() -> (Server, Server) {
        let (a, b) = (Server::ports(), Server::ports());
        let shards = [a.1, b.1];
        (Server::start(a, &shards), Server::start(b, &shards))
    }

    fn try_sql(&self, sql: &str) -> Result<String, String> {
        let o = Command::new("clickhouse-client")
            .args(["--host", "127.0.0.1", "--port", &self.tcp.to_string()])
            .args(["--multiquery", "--query", sql])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if o.status.success() {
            Ok(text(&o.stdout))
        } else {
            Err(text(&o.stderr))
        }
    }

    /// Run SQL with `clickhouse-client`; panics on failure.
    pub(crate) fn sql(&self, sql: &str) -> String {
        self.try_sql(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// `clickhouse://…` for a table of this server.
    pub(crate) fn url(&self, table: &str) -> String {
        format!("clickhouse://127.0.0.1:{}/{table}", self.http)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Flow records over the analysis scenario's cluster (`common`), in all
/// three formats: NAT through a cluster IP and a node port, IPv6, icmp,
/// udp, every network verdict, replies, few and many source ports, times
/// with fractions over five hours (so the timeline has buckets of ten
/// minutes holding several minutes each).
pub(crate) struct Scenario {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) intent: PathBuf,
    pub(crate) inventory: PathBuf,
    pub(crate) flows: Vec<PathBuf>,
}

fn record(i: u64) -> String {
    let secs = 1_714_557_600 + i * 6; // from 2024-05-01T10:00:00Z
    let t = |s: u64, frac: u64| {
        let ts = ringfence_flows::Timestamp::from_unix_nanos(
            (s as i64) * 1_000_000_000 + (frac as i64) * 125_000_000,
        );
        ts.to_rfc3339()
    };
    let verdict = match i % 3 {
        0 => ",\"verdict\":\"allowed\"",
        1 => ",\"verdict\":\"dropped\"",
        _ => "",
    };
    let many = 30_000 + (i * 7919) % 30_000;
    let (src, dst, proto, port, sport, extra) = match i % 9 {
        // web to api through the service's cluster IP, translated.
        0 => (
            ["10.0.1.1", "10.0.1.4"][(i / 9 % 2) as usize],
            "10.0.1.2",
            "tcp",
            Some(8080),
            Some(40_000 + i % 3),
            ",\"orig_dst_ip\":\"10.96.0.10\",\"orig_dst_port\":80,\"dst_service\":\"app/api\"",
        ),
        1 => ("10.0.1.1", "10.0.1.2", "tcp", Some(8443), Some(many), ""),
        2 => ("10.0.1.2", "10.0.1.3", "tcp", Some(5432), Some(many), ""),
        // The answers of the above, as a tap that sees both directions records them.
        3 => ("10.0.1.3", "10.0.1.2", "tcp", Some(many), Some(5432), ""),
        4 => ("10.0.1.9", "10.0.1.3", "tcp", Some(5432), None, ""),
        // An external client through the node port of app/web.
        5 => (
            "198.51.100.7",
            "10.0.1.4",
            "tcp",
            Some(8080),
            Some(many),
            ",\"orig_dst_ip\":\"192.168.0.2\",\"orig_dst_port\":30080",
        ),
        6 => ("10.0.1.1", "10.0.3.1", "icmp", None, None, ""),
        7 => ("10.0.1.2", "2001:db8::5", "udp", Some(53), Some(many), ""),
        _ => ("10.0.2.1", "203.0.113.9", "tcp", Some(443), Some(many), ""),
    };
    let port = port
        .map(|p| format!(",\"dst_port\":{p}"))
        .unwrap_or_default();
    let sport = sport
        .map(|p| format!(",\"src_port\":{p}"))
        .unwrap_or_default();
    format!(
        "{{\"src_ip\":\"{src}\",\"dst_ip\":\"{dst}\",\"proto\":\"{proto}\"{port}{sport}{extra},\
         \"packets\":{},\"bytes\":{},\"first_seen\":\"{}\",\"last_seen\":\"{}\"{verdict},\
         \"node\":\"n{}\"}}\n",
        1 + i % 7,
        100 * (i % 13),
        t(secs, i % 8),
        t(secs + i % 5, i % 8),
        1 + i % 2
    )
}

impl Scenario {
    pub(crate) fn new(records: u64) -> Scenario {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let intent = root.join("policies");
        std::fs::create_dir_all(&intent).unwrap();
        std::fs::write(
            intent.join("intent.kdl"),
            &*common::intent_("80,443").files[0].text,
        )
        .unwrap();
        let inventory = root.join("inventory.json");
        std::fs::write(
            &inventory,
            serde_json::to_string(&kubectl_list(&common::inventory_().clusters[0])).unwrap(),
        )
        .unwrap();
        let jsonl = root.join("flows.jsonl");
        std::fs::write(&jsonl, (0..records).map(record).collect::<String>()).unwrap();
        let hubble = root.join("hubble.json");
        std::fs::write(&hubble, include_str!("fixtures/clickhouse/hubble.json")).unwrap();
        let conntrack = root.join("conntrack.txt");
        std::fs::write(
            &conntrack,
            include_str!("fixtures/clickhouse/conntrack.txt"),
        )
        .unwrap();
        Scenario {
            intent,
            inventory,
            flows: vec![jsonl, hubble, conntrack],
            dir,
        }
    }

    /// `ringfence analyze` on these flows (files or URLs), then `extra`.
    pub(crate) fn run_analyze(&self, flows: &[&str], extra: &[&str]) -> Output {
        let mut args = vec![
            "analyze",
            p(&self.intent),
            "--inventory",
            p(&self.inventory),
        ];
        args.extend(flows.iter().flat_map(|f| ["--flows", *f]));
        args.extend(extra);
        ringfence(&args)
    }

    /// `ringfence analyze --format json` on these flows (files or a URL).
    pub(crate) fn analyze(&self, flows: &[&str], extra: &[&str]) -> Value {
        let o = self.run_analyze(flows, &[&["--format", "json"], extra].concat());
        assert!(code(&o) <= 1, "analyze {flows:?}: {}", text(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    }

    /// `ringfence discover` into a fresh directory: the intent files written
    /// and the JSON summary.
    pub(crate) fn discover(
        &self,
        flows: &[&str],
        extra: &[&str],
    ) -> (Vec<(String, String)>, Value) {
        let out = tempfile::tempdir().unwrap();
        let mut args = vec![
            "discover",
            "--inventory",
            p(&self.inventory),
            "--out",
            p(out.path()),
            "--granularity",
            "fine",
            "--format",
            "json",
        ];
        args.extend(flows.iter().flat_map(|f| ["--flows", *f]));
        args.extend(extra);
        let o = ringfence(&args);
        assert_eq!(code(&o), 0, "discover {flows:?}: {}", text(&o.stderr));
        let mut files = Vec::new();
        let mut stack = vec![out.path().to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(d).unwrap() {
                let path = e.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let rel = path.strip_prefix(out.path()).unwrap().display().to_string();
                    files.push((rel, std::fs::read_to_string(&path).unwrap()));
                }
            }
        }
        files.sort();
        (files, serde_json::from_slice(&o.stdout).unwrap())
    }

    pub(crate) fn files(&self) -> Vec<&str> {
        self.flows.iter().map(|f| p(f)).collect()
    }
}

fn load(files: &[&str], url: &str) -> Output {
    let mut args = vec!["flows", "load"];
    args.extend(files);
    args.extend(["--into", url, "--batch", "500"]);
    ringfence(&args)
}

/// The analysis without what names the input (the files, or the table).
fn judged(mut a: Value) -> Value {
    a["input"]
        .as_object_mut()
        .unwrap()
        .remove("files")
        .expect("input.files");
    a
}

/// The discovery summary without what describes the input rather than
/// the flows: the inputs, their lines (rows of a table) and the lines that
/// were no flows (replies marked by Hubble, other protocols: a table holds
/// flows only), notes on files, the time taken.
fn discovered(mut s: Value) -> Value {
    let o = s.as_object_mut().unwrap();
    for k in ["inputs", "out", "elapsed_seconds", "notes"] {
        o.remove(k).unwrap_or_else(|| panic!("summary.{k}"));
    }
    let flows = o["flows"].as_object_mut().unwrap();
    for k in ["lines", "not_flows", "replies_marked"] {
        flows
            .remove(k)
            .unwrap_or_else(|| panic!("summary.flows.{k}"));
    }
    s
}

/// ringfence's flow table and its conversation table with the view that
/// fills it, as schema/docs/flows.md gives them, on one server.
fn create_tables(server: &Server, table: &str) {
    use ringfence_flows::clickhouse::{CONVERSATIONS_DDL, CONVERSATIONS_VIEW_DDL, DDL};
    for ddl in [DDL, CONVERSATIONS_DDL, CONVERSATIONS_VIEW_DDL] {
        server.sql(
            &ddl.replace("{table}", table)
                .replace("{conversations}", &format!("{table}_conversations"))
                .replace("{view}", &format!("{table}_conversations_view")),
        );
    }
}

/// The same flows from files and from tables: a single table and two shards
/// behind a `Distributed` table, each read through its conversation table
/// (whole hours of the window) and without one (the flows), over windows
/// that are whole hours, partial hours at both edges, and inside one hour.
#[test]
fn analyze_and_discover_read_the_same_from_files_one_table_and_two_shards() {
    let s = Scenario::new(3000);
    let (a, b) = Server::two_shards();
    // One table on one server (created by the load, with its conversation
    // table), the same without a conversation table, and a table per shard
    // behind a Distributed table.
    let single = a.url("default.single");
    let o = load(&s.files(), &single);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    stderr_has(&o, "created");
    assert!(
        text(&o.stdout).starts_with("Loaded 3002 flows from 3 files"),
        "{}",
        text(&o.stdout)
    );
    assert!(
        a.sql("SELECT name FROM system.tables WHERE database = 'default' ORDER BY name")
            .contains("single_conversations\nsingle_conversations_view\n")
    );
    // A hint to merge when a partition is still several parts, naming the
    // tables that are.
    let extra = |t: &str| {
        a.sql(&format!(
            "SELECT count() - uniqExact(partition) FROM system.parts \
             WHERE active AND database = 'default' AND table = '{t}'"
        ))
        .trim()
        .to_string()
    };
    let hint = text(&o.stdout)
        .lines()
        .find(|l| l.starts_with("hint: "))
        .map(str::to_string);
    let unmerged = ["single", "single_conversations"].map(|t| extra(t) != "0");
    assert_eq!(hint.is_some(), unmerged.contains(&true), "{hint:?}");
    for (t, u) in ["single", "single_conversations"].iter().zip(unmerged) {
        let named = hint
            .as_deref()
            .unwrap_or("")
            .contains(&format!("`default`.`{t}` FINAL"));
        assert_eq!(named, u, "{t}: {hint:?}");
    }
    a.sql(&ringfence_flows::clickhouse::DDL.replace("{table}", "default.plain"));
    let plain = a.url("default.plain");
    let o = load(&s.files(), &plain);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    create_tables(&a, "default.shard");
    create_tables(&b, "default.shard");
    a.sql("CREATE TABLE default.flows_all AS default.shard ENGINE = Distributed(rf, default, shard, rand())");
    a.sql(
        "CREATE TABLE default.flows_all_conversations AS default.shard_conversations \
         ENGINE = Distributed(rf, default, shard_conversations, rand())",
    );
    // The same shards read as flows: no conversation table by that name.
    a.sql("CREATE TABLE default.raw_all AS default.shard ENGINE = Distributed(rf, default, shard, rand())");
    let all = a.url("default.flows_all");
    let raw_all = a.url("default.raw_all");
    let o = load(&s.files(), &all);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("is Distributed: on each shard"),
        "{}",
        text(&o.stdout)
    );
    let (on_a, on_b): (u64, u64) = (
        a.sql("SELECT count() FROM default.shard")
            .trim()
            .parse()
            .unwrap(),
        b.sql("SELECT count() FROM default.shard")
            .trim()
            .parse()
            .unwrap(),
    );
    assert_eq!(on_a + on_b, 3002);
    assert!(
        on_a > 1000 && on_b > 1000,
        "both shards hold flows: {on_a}, {on_b}"
    );

    let files = s.files();
    let from_files = s.analyze(&files, &[]);
    assert!(from_files["timeline"]["bucket_seconds"].as_i64() == Some(600));
    assert!(from_files["totals"]["all"]["flows"].as_u64() == Some(3002));
    let from_single = s.analyze(&[&single], &[]);
    let input = &from_single["input"]["files"][0];
    assert_eq!(input["format"], "clickhouse (ringfence, conversations)");
    assert_eq!(input["flows"], 3002);
    // One row per conversation and verdict of each hour, not per flow.
    assert!(input["lines"].as_u64() < Some(3002 / 5), "{input}");
    assert_eq!(judged(from_single), judged(from_files.clone()));
    let from_plain = s.analyze(&[&plain], &[]);
    assert_eq!(
        from_plain["input"]["files"][0]["format"],
        "clickhouse (ringfence)"
    );
    assert_eq!(judged(from_plain), judged(from_files.clone()));
    for url in [&all, &raw_all] {
        assert_eq!(judged(s.analyze(&[url], &[])), judged(from_files.clone()));
    }

    // Windows: whole hours (the conversation table alone), partial hours
    // at both edges (their flows from the flow table), no whole hour
    // inside (the flow table alone): the same flows left out on all paths.
    let windows: [&[&str]; 4] = [
        &[
            "--since",
            "2024-05-01T11:00:00Z",
            "--until",
            "2024-05-01T13:00:00Z",
        ],
        &[
            "--since",
            "2024-05-01T10:30:00.5Z",
            "--until",
            "2024-05-01T14:15:00+01:00",
        ],
        &["--until", "2024-05-01T12:20:00Z"],
        &[
            "--since",
            "2024-05-01T11:00:00.5Z",
            "--until",
            "2024-05-01T13:30:00+01:00",
        ],
    ];
    for window in windows {
        let from_files = s.analyze(&files, window);
        let inside = from_files["totals"]["all"]["flows"].as_u64().unwrap();
        assert!(inside > 500 && inside < 3000, "{window:?}: {inside}");
        for url in [&single, &all, &raw_all] {
            let got = s.analyze(&[url], window);
            assert_eq!(judged(got), judged(from_files.clone()), "{url} {window:?}");
        }
    }

    let (kdl, summary) = s.discover(&files, &[]);
    assert!(summary["flows"]["replies_detected"].as_u64() > Some(0));
    assert!(summary["flows"]["dropped_by_network"].as_u64() > Some(0));
    for url in [&single, &plain, &all, &raw_all] {
        let (k, sum) = s.discover(&[url], &[]);
        assert_eq!(k, kdl, "the same intent from {url}");
        let conversations = sum["inputs"]["tables"][0]["conversations"].as_str();
        assert_eq!(
            conversations.is_some(),
            url == &single || url == &all,
            "{url}: {conversations:?}"
        );
        assert_eq!(discovered(sum), discovered(summary.clone()));
    }
    for window in &windows[1..3] {
        let (kdl, summary) = s.discover(&files, window);
        for url in [&single, &all] {
            let (k, sum) = s.discover(&[url], window);
            assert_eq!(k, kdl, "{url} {window:?}");
            assert_eq!(discovered(sum), discovered(summary.clone()));
        }
    }
}

/// Antrea Theia's `flows` table (its columns as Theia creates them), read
/// column by column as documented in schema/docs/flows.md.
#[test]
fn a_theia_table_reads_like_its_flows_as_files() {
    let s = Scenario::new(0);
    let server = Server::alone();
    server.sql(
        "CREATE TABLE default.flows (timeInserted DateTime DEFAULT now(), \
         flowStartSeconds DateTime, flowEndSeconds DateTime, flowEndReason UInt8, \
         sourceIP String, destinationIP String, sourceTransportPort UInt16, \
         destinationTransportPort UInt16, protocolIdentifier UInt8, packetTotalCount UInt64, \
         octetTotalCount UInt64, packetDeltaCount UInt64, octetDeltaCount UInt64, \
         reversePacketTotalCount UInt64, reverseOctetTotalCount UInt64, \
         reversePacketDeltaCount UInt64, reverseOctetDeltaCount UInt64, sourcePodName String, \
         sourcePodNamespace String, sourceNodeName String, destinationPodName String, \
         destinationPodNamespace String, destinationNodeName String, \
         destinationClusterIP String, destinationServicePort UInt16, \
         destinationServicePortName String, ingressNetworkPolicyName String, \
         ingressNetworkPolicyRuleAction UInt8, egressNetworkPolicyName String, \
         egressNetworkPolicyRuleAction UInt8, tcpState String, flowType UInt8, \
         trusted UInt8 DEFAULT 0) ENGINE = MergeTree ORDER BY (timeInserted, flowEndSeconds)",
    );
    // (start, end, src, dst, sport, dport, proto, packets, reverse packets,
    // bytes, reverse bytes, cluster IP, service port, port name, ingress
    // action, egress action)
    type Row<'a> = (
        u64,
        u64,
        &'a str,
        &'a str,
        u16,
        u16,
        u8,
        u64,
        u64,
        u64,
        u64,
        &'a str,
        u16,
        &'a str,
        u8,
        u8,
    );
    let rows: Vec<Row<'_>> = vec![
        (
            0,
            30,
            "10.0.1.1",
            "10.0.1.2",
            40000,
            8080,
            6,
            10,
            8,
            1000,
            900,
            "10.96.0.10",
            80,
            "app/api:http",
            1,
            1,
        ),
        (
            60,
            90,
            "10.0.1.1",
            "10.0.1.2",
            40000,
            8080,
            6,
            5,
            4,
            500,
            400,
            "10.96.0.10",
            80,
            "app/api:http",
            1,
            1,
        ),
        (
            120, 121, "10.0.1.9", "10.0.1.3", 51000, 5432, 6, 1, 0, 60, 0, "", 0, "", 2, 0,
        ),
        (
            300, 301, "10.0.1.2", "10.0.1.3", 52000, 5432, 6, 2, 2, 200, 200, "0.0.0.0", 0, "", 0,
            3,
        ),
        (
            400,
            460,
            "198.51.100.7",
            "10.0.1.4",
            61000,
            8080,
            6,
            3,
            3,
            300,
            300,
            "",
            0,
            "",
            0,
            0,
        ),
        (
            900, 900, "10.0.1.1", "10.0.3.1", 0, 0, 1, 1, 1, 84, 84, "", 0, "", 0, 0,
        ),
        (
            1200,
            1201,
            "10.0.1.2",
            "2001:db8::5",
            53000,
            53,
            17,
            1,
            1,
            70,
            90,
            "",
            0,
            "",
            0,
            0,
        ),
        // GRE: no policy; skipped as files skip it.
        (
            1300,
            1301,
            "10.0.1.4",
            "203.0.113.1",
            0,
            0,
            47,
            1,
            1,
            70,
            90,
            "",
            0,
            "",
            0,
            0,
        ),
    ];
    let base = 1_714_564_800u64; // 2024-05-01T12:00:00Z
    let mut values = Vec::new();
    let mut jsonl = String::new();
    for (
        start,
        end,
        src,
        dst,
        sport,
        dport,
        proto,
        pk,
        rpk,
        by,
        rby,
        cip,
        sport_svc,
        name,
        ing,
        eg,
    ) in &rows
    {
        values.push(format!(
            "(toDateTime({}), toDateTime({}), '{src}', '{dst}', {sport}, {dport}, {proto}, {pk}, {by}, \
             {rpk}, {rby}, '{cip}', {sport_svc}, '{name}', {ing}, {eg})",
            base + start,
            base + end
        ));
        if *proto == 47 {
            continue;
        }
        let t = |s: u64| ringfence_flows::Timestamp::from_unix_secs((base + s) as i64).to_rfc3339();
        let proto_name = match proto {
            6 => "tcp",
            17 => "udp",
            _ => "icmp",
        };
        let ports = if *proto == 1 {
            String::new()
        } else {
            format!(",\"src_port\":{sport},\"dst_port\":{dport}")
        };
        let nat = if cip.is_empty() || *cip == "0.0.0.0" {
            String::new()
        } else {
            format!(
                ",\"orig_dst_ip\":\"{cip}\",\"orig_dst_port\":{sport_svc},\"dst_service\":\"{}\"",
                name.split(':').next().unwrap()
            )
        };
        let verdict = if [2, 3].contains(ing) || [2, 3].contains(eg) {
            "dropped"
        } else {
            "allowed"
        };
        jsonl += &format!(
            "{{\"src_ip\":\"{src}\",\"dst_ip\":\"{dst}\",\"proto\":\"{proto_name}\"{ports}{nat},\
             \"packets\":{},\"bytes\":{},\"first_seen\":\"{}\",\"last_seen\":\"{}\",\
             \"verdict\":\"{verdict}\"}}\n",
            pk + rpk,
            by + rby,
            t(*start),
            t(*end)
        );
    }
    server.sql(&format!(
        "INSERT INTO default.flows (flowStartSeconds, flowEndSeconds, sourceIP, destinationIP, \
         sourceTransportPort, destinationTransportPort, protocolIdentifier, packetDeltaCount, \
         octetDeltaCount, reversePacketDeltaCount, reverseOctetDeltaCount, destinationClusterIP, \
         destinationServicePort, destinationServicePortName, ingressNetworkPolicyRuleAction, \
         egressNetworkPolicyRuleAction) VALUES {}",
        values.join(", ")
    ));
    let file = s.dir.path().join("theia.jsonl");
    std::fs::write(&file, jsonl).unwrap();
    let url = server.url("default.flows");
    let from_file = s.analyze(&[p(&file)], &[]);
    let from_theia = s.analyze(&[&url], &[]);
    let input = &from_theia["input"]["files"][0];
    assert_eq!(input["format"], "clickhouse (theia)");
    assert_eq!(
        (input["flows"].as_u64(), input["skipped"].as_u64()),
        (Some(7), Some(1))
    );
    assert_eq!(judged(from_theia), judged(from_file));
    let (kdl, summary) = s.discover(&[p(&file)], &[]);
    let (k, sum) = s.discover(&[&url], &[]);
    assert_eq!(k, kdl);
    assert_eq!(sum["flows"]["not_flows"], 1, "the GRE record");
    assert_eq!(discovered(sum), discovered(summary));
}

/// stderr of a run that could not run (exit 2), with this run's ports
/// written as `PORT`.
fn refused(o: &Output, ports: &[u16]) -> String {
    assert_eq!(code(o), 2, "{}", text(&o.stderr));
    let mut e = text(&o.stderr);
    for port in ports {
        e = e.replace(&port.to_string(), "PORT");
    }
    e
}

#[test]
fn every_error_says_what_to_do() {
    let s = Scenario::new(2000);
    let server = Server::alone();
    let ports = [server.http, server.tcp];
    let flows = server.url("default.flows");
    let o = load(&s.files(), &flows);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let analyze = |url: &str| s.run_analyze(&[url], &[]);
    let nobody = free_port();
    let unreachable = refused(
        &analyze(&format!("clickhouse://127.0.0.1:{nobody}/default.flows")),
        &[nobody],
    );
    insta::assert_snapshot!(
        "unreachable",
        unreachable.replace(&nobody.to_string(), "PORT")
    );
    insta::assert_snapshot!(
        "no_database",
        refused(&analyze(&server.url("nowhere.flows")), &ports)
    );
    insta::assert_snapshot!(
        "no_table",
        refused(&analyze(&server.url("default.nothing")), &ports)
    );
    server.sql(
        "CREATE TABLE default.odd (first_seen_ns Int64, last_seen_ns Int64, src_ip FixedString(16), \
         dst_ip String, proto String, packets UInt64) ENGINE = MergeTree ORDER BY first_seen_ns",
    );
    insta::assert_snapshot!(
        "wrong_columns",
        refused(&analyze(&server.url("default.odd")), &ports)
    );
    server.sql("CREATE TABLE default.other (a UInt8, b String) ENGINE = MergeTree ORDER BY a");
    insta::assert_snapshot!(
        "not_flows",
        refused(&analyze(&server.url("default.other")), &ports)
    );
    // A conversation table of other columns: named, column by column.
    server.sql(&ringfence_flows::clickhouse::DDL.replace("{table}", "default.grouped"));
    server.sql(
        "CREATE TABLE default.grouped_conversations (hour Int64, conversation String, \
         flows UInt64) ENGINE = SummingMergeTree ORDER BY (hour, conversation)",
    );
    let e = refused(&analyze(&server.url("default.grouped")), &ports);
    assert!(
        e.contains("default.grouped_conversations: a conversation table")
            && e.contains("column `flows` is UInt64, expected AggregateFunction(count)")
            && e.contains("column `minute_flows` is missing"),
        "{e}"
    );
    // A conversation table that lacks flows of its flow table (its view
    // dropped, flows loaded after): refused, not answered from it.
    server.sql("DROP TABLE default.flows_conversations_view");
    let o = load(&s.files()[..1], &flows);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let e = refused(&analyze(&flows), &ports);
    assert!(
        e.contains("holds 2002 flows of the window's whole hours, the flow table 4002")
            && e.contains("drop it to read the flows"),
        "{e}"
    );
    server.sql("DROP TABLE default.flows_conversations");
    assert_eq!(code(&analyze(&flows)), 1, "read from the flows now");
    let wrong_password = format!(
        "clickhouse://ringfence:guess@127.0.0.1:{}/default.flows",
        server.http
    );
    let e = refused(&analyze(&wrong_password), &ports);
    assert!(!e.contains("guess"), "the password is never shown: {e}");
    insta::assert_snapshot!("auth_refused", e);
    let right_password = format!(
        "clickhouse://ringfence:s3cret@127.0.0.1:{}/default.flows",
        server.http
    );
    assert_eq!(code(&analyze(&right_password)), 1, "findings, not an error");
    let small = format!("clickhouse://small@127.0.0.1:{}/default.flows", server.http);
    let e = refused(&analyze(&small), &ports);
    assert_contains(&e, "Memory limit");
    let ours = e.split("(Code: 241").next().unwrap().to_string();
    let tail = e.rsplit("); read a shorter").next().unwrap();
    insta::assert_snapshot!("memory_limit", format!("{ours}(…); read a shorter{tail}"));
    // Loading refuses a table of another layout, and a bad URL.
    let e = refused(&load(&s.files(), &server.url("default.other")), &ports);
    assert_contains(&e, "neither ringfence's");
    let e = refused(&load(&s.files(), "clickhouse://h:8123/flows"), &ports);
    assert_contains(&e, "is not database.table");
    // Files and a table, or two tables, at once: refused.
    let o = s.run_analyze(&[p(&s.flows[0]), &flows], &[]);
    assert!(refused(&o, &ports).contains("not both"));
}

/// `--since` and `--until` on files alone: what they leave out is counted.
#[test]
fn windows_on_files_leave_out_and_count() {
    let s = Scenario::new(900);
    let files = s.files();
    let all = s.analyze(&files, &[]);
    let part = s.analyze(&files, &["--since", "2024-05-01T10:30:00Z"]);
    let outside = 300; // the first half hour: 300 records, 6 s apart
    assert_eq!(
        part["totals"]["all"]["flows"].as_u64().unwrap() + outside,
        all["totals"]["all"]["flows"].as_u64().unwrap()
    );
    assert_eq!(part["input"]["first_seen"], "2024-05-01T10:30:00.5Z");
    let window = [
        "--since",
        "2024-05-01T12:00:00Z",
        "--until",
        "2024-05-01T11:00:00Z",
    ];
    let o = s.run_analyze(&files[..1], &window);
    stderr_has(&o, "is not before");
    assert_eq!(code(&o), 2);
}
