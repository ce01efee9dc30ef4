//! The conventions kubectl, cargo and ripgrep users expect, tried on the
//! shipped example: a closed pipe is a quiet exit, flags take one value and
//! repeat, `-` is standard input, `-o` and YAML wherever JSON is, CI
//! annotations, completions and man pages, `fmt --diff`, each error cause
//! once, did-you-mean, progress on a terminal only.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ringfence_testkit::listen::spawn_listening;

use crate::cli::{code, item, p, ringfence, stderr_has, stdout_has, text};
use ringfence_testkit::text::assert_contains;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies-example")
}

fn inventory() -> PathBuf {
    example().join("inventory/prod-eu1.json")
}

fn flows() -> PathBuf {
    example().join("flows/one-day.jsonl")
}

/// Run with `stdin` as standard input.
fn with_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringfence"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// Run with stdout a pipe whose reader is already gone (`… | head` after
/// head exited): every write fails with EPIPE.
fn into_closed_pipe(args: &[&str]) -> (i32, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_ringfence"))
        .args(args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (code(&out), text(&out.stderr))
}

/// `ringfence explain INTENT --inventory INV --from FROM --to TO`.
fn explain<'a>(intent: &'a str, inv: &'a str, from: &'a str, to: &'a str) -> Vec<&'a str> {
    vec![
        "explain",
        intent,
        "--inventory",
        inv,
        "--from",
        from,
        "--to",
        to,
    ]
}

/// `ringfence analyze INTENT --inventory INV --flows FLOWS -o json`.
fn analyze_json<'a>(intent: &'a str, inv: &'a str, flows: &'a str) -> Vec<&'a str> {
    let args = ["analyze", intent, "--inventory", inv, "--flows", flows];
    [&args[..], &["-o", "json"]].concat()
}

#[test]
fn a_closed_pipe_is_a_quiet_exit() {
    let dir = tempfile::tempdir().unwrap();
    let (ex, inv) = (example(), inventory());
    let (ex, inv, fl) = (p(&ex), p(&inv), flows());
    let key = dir.path().join("k");
    assert_eq!(code(&ringfence(&["keygen", "--out", p(&key)])), 0);
    let bundles = dir.path().join("b");
    let compile = ringfence(&[
        "compile",
        ex,
        "--inventory",
        inv,
        "--key",
        &format!("{}.key", p(&key)),
        "--out",
        p(&bundles),
    ]);
    assert_eq!(code(&compile), 0, "{}", text(&compile.stderr));
    let bundle = bundles.join("prod-eu1-linux-a.bundle");
    let trust = format!("{}.pub", p(&key));
    let k2 = dir.path().join("k2");
    for (args, want) in [
        (vec!["matrix", ex, "--inventory", inv], 0),
        (vec!["matrix", ex, "--inventory", inv, "-o", "json"], 0),
        (vec!["matrix", ex, "--inventory", inv, "-o", "yaml"], 0),
        (vec!["check", ex], 0),
        (vec!["check", ex, "-o", "sarif"], 0),
        (
            [
                explain(ex, inv, "shop/frontend", "shop/cart"),
                vec!["--port", "7070", "-o", "json"],
            ]
            .concat(),
            0,
        ),
        (
            vec![
                "verify",
                p(&bundle),
                "--trust",
                &trust,
                "--node",
                "prod-eu1-linux-a",
            ],
            0,
        ),
        (
            vec!["verify", p(&bundle), "--trust", &trust, "-o", "json"],
            0,
        ),
        (vec!["keygen", "--out", p(&k2)], 0),
        // The reader left before the findings were written: quiet, 0.
        (analyze_json(ex, inv, p(&fl)), 0),
        (vec!["completion", "bash"], 0),
    ] {
        let (got, stderr) = into_closed_pipe(&args);
        assert_eq!(got, want, "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.to_lowercase().contains("broken pipe"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn flags_take_one_value_and_repeat() {
    let (ex, inv) = (example(), inventory());
    // The directory after a flag is the positional argument, not the flag's.
    let o = ringfence(&["matrix", "--inventory", p(&inv), p(&ex)]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let t = example().join("trivy");
    let o = ringfence(&[
        "matrix",
        "--inventory",
        p(&inv),
        "--trivy",
        p(&t.join("frontend.json")),
        "--trivy",
        p(&t.join("legacy-reports.json")),
        p(&ex),
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    // The same inventory twice is the same cluster twice: refused, so it was read twice.
    let o = ringfence(&[
        "matrix",
        p(&ex),
        "--inventory",
        p(&inv),
        "--inventory",
        p(&inv),
    ]);
    assert_eq!(code(&o), 2, "{}", text(&o.stdout));
}

#[test]
fn dash_is_standard_input() {
    let (ex, inv) = (example(), inventory());
    let (ex, inv) = (p(&ex), p(&inv));
    // --inventory -: the same matrix as from the file.
    let from_file = ringfence(&["matrix", ex, "--inventory", inv]);
    let piped = with_stdin(
        &["matrix", ex, "--inventory", "-"],
        &std::fs::read(inv).unwrap(),
    );
    assert_eq!(code(&piped), 0, "{}", text(&piped.stderr));
    assert_eq!(piped.stdout, from_file.stdout);
    // --flows -: the same analysis, the input named `-`.
    let fl = flows();
    let a = ringfence(&analyze_json(ex, inv, p(&fl)));
    let b = with_stdin(&analyze_json(ex, inv, "-"), &std::fs::read(&fl).unwrap());
    assert_eq!(code(&b), code(&a), "{}", text(&b.stderr));
    let (mut a, b): (serde_json::Value, serde_json::Value) = (
        serde_json::from_slice(&a.stdout).unwrap(),
        serde_json::from_slice(&b.stdout).unwrap(),
    );
    assert_eq!(b["input"]["files"][0]["path"], "-");
    a["input"]["files"][0]["path"] = "-".into();
    assert_eq!(a, b);
    // An unreadable stream names `-`, not the temporary copy.
    let bad = with_stdin(
        &["analyze", ex, "--inventory", inv, "--flows", "-"],
        b"not a flow\n",
    );
    assert_eq!(code(&bad), 2);
    assert!(
        text(&bad.stderr).starts_with("error: -:1: cannot tell the flow format"),
        "{}",
        text(&bad.stderr)
    );
    // Standard input is read once.
    let twice = with_stdin(&["analyze", ex, "--inventory", "-", "--flows", "-"], b"");
    assert_eq!(code(&twice), 2);
    stderr_has(&twice, "given 2 times");

    // check -: one file; its diagnostics name <stdin>.
    let ok = with_stdin(
        &["check", "-"],
        b"external \"x\" {\n    cidr \"192.0.2.0/24\"\n}\n",
    );
    assert_eq!(code(&ok), 0, "{}{}", text(&ok.stdout), text(&ok.stderr));
    let bad = with_stdin(
        &["check", "-", "-o", "json"],
        b"scope \"a\" {\n    bogus 1\n}\n",
    );
    assert_eq!(code(&bad), 1);
    let doc: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(doc["diagnostics"][0]["file"], "<stdin>");

    // fmt -: formatted text out; --check and --diff judge it.
    let messy = b"external   \"x\"   {\n  cidr \"192.0.2.0/24\"\n}\n";
    let out = with_stdin(&["fmt", "-"], messy);
    assert_eq!(code(&out), 0);
    assert_eq!(
        text(&out.stdout),
        "external \"x\" {\n    cidr \"192.0.2.0/24\"\n}\n"
    );
    assert_eq!(code(&with_stdin(&["fmt", "-", "--check"], messy)), 1);
    assert_eq!(code(&with_stdin(&["fmt", "-", "--check"], &out.stdout)), 0);
    let diff = with_stdin(&["fmt", "-", "--diff"], messy);
    assert_eq!(code(&diff), 1);
    let d = text(&diff.stdout);
    assert!(d.starts_with("--- a/<stdin>\n+++ b/<stdin>\n@@ "), "{d}");
    assert_contains(&d, "\n-external   \"x\"   {\n");
    assert_contains(&d, "\n+external \"x\" {\n");
}

#[test]
fn fmt_diff_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.kdl");
    std::fs::write(&file, "external   \"x\" {\n cidr \"192.0.2.0/24\"\n}\n").unwrap();
    let before = std::fs::read(&file).unwrap();
    let o = ringfence(&["fmt", p(dir.path()), "--diff"]);
    assert_eq!(code(&o), 1);
    assert!(
        text(&o.stdout).starts_with("--- a/a.kdl\n+++ b/a.kdl\n"),
        "{}",
        text(&o.stdout)
    );
    assert_eq!(std::fs::read(&file).unwrap(), before);
    assert_eq!(code(&ringfence(&["fmt", p(dir.path())])), 0);
    assert_eq!(code(&ringfence(&["fmt", p(dir.path()), "--diff"])), 0);
    let o = ringfence(&["fmt", "/nonexistent-ringfence-dir"]);
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains("no such file or directory"));
}

#[test]
fn yaml_wherever_json_and_the_same_document() {
    let (ex, inv) = (example(), inventory());
    let (ex, inv) = (p(&ex), p(&inv));
    let fl = flows();
    for args in [
        vec!["matrix", ex, "--inventory", inv],
        vec!["check", ex],
        [
            explain(ex, inv, "shop/cart", "shop-data/postgres"),
            vec!["--port", "5432"],
        ]
        .concat(),
        vec!["analyze", ex, "--inventory", inv, "--flows", p(&fl)],
    ] {
        let json = ringfence(&[&args[..], &["-o", "json"]].concat());
        let yaml = ringfence(&[&args[..], &["--format", "yaml"]].concat());
        assert_eq!(code(&json), code(&yaml), "{args:?}");
        let a: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
        let b: serde_json::Value =
            serde_saphyr::from_str(&text(&yaml.stdout)).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert_eq!(a, b, "{args:?}");
    }
    // html only where it works.
    let o = ringfence(&["matrix", ex, "--inventory", inv, "-o", "html"]);
    assert_eq!(code(&o), 2);
    stderr_has(&o, "[possible values: txt, json, yaml]");
}

/// An intent directory with one error and one warning-free file.
fn broken_intent(dir: &Path) {
    std::fs::write(
        dir.join("a.kdl"),
        "scope \"top\" {\n    query {\n        cluster \"c\"\n    }\n    bogus 1\n}\n",
    )
    .unwrap();
}

#[test]
fn check_annotates_for_ci() {
    let dir = tempfile::tempdir().unwrap();
    broken_intent(dir.path());
    let json = ringfence(&["check", p(dir.path()), "-o", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let d = &doc["diagnostics"][0];
    let gh = ringfence(&["check", p(dir.path()), "-o", "github"]);
    assert_eq!(code(&gh), 1);
    let first = text(&gh.stdout).lines().next().unwrap().to_string();
    assert!(
        first.starts_with(&format!(
            "::{} file=a.kdl,line={},col={},title={}::",
            d["severity"].as_str().unwrap(),
            d["line"],
            d["column"],
            d["code"].as_str().unwrap().replace(':', "%3A")
        )),
        "{first}"
    );
    let sarif = ringfence(&["check", p(dir.path()), "-o", "sarif"]);
    assert_eq!(code(&sarif), 1);
    let s: serde_json::Value = serde_json::from_slice(&sarif.stdout).unwrap();
    assert_eq!(s["version"], "2.1.0");
    let r = &s["runs"][0]["results"][0];
    assert_eq!(r["ruleId"], d["code"]);
    assert_eq!(r["level"], d["severity"]);
    assert!(
        text(&gh.stdout)
            .lines()
            .any(|l| l.starts_with("::error file=a.kdl,line=5,"))
    );
    assert_eq!(
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "a.kdl"
    );
    assert_eq!(
        r["locations"][0]["physicalLocation"]["region"]["startLine"],
        d["line"]
    );
    assert_eq!(
        s["runs"][0]["results"].as_array().unwrap().len(),
        doc["diagnostics"].as_array().unwrap().len()
    );
}

#[test]
fn errors_say_each_cause_once_and_what_to_do() {
    let ex = example();
    let o = ringfence(&["check", "/nonexistent-ringfence-dir"]);
    assert_eq!(code(&o), 2);
    assert_eq!(
        text(&o.stderr),
        "error: /nonexistent-ringfence-dir: no such file or directory (give the intent directory as DIR)\n"
    );
    let o = ringfence(&["matrix", p(&ex), "--inventory", "/nonexistent.json"]);
    assert_eq!(code(&o), 2);
    let os = std::io::Error::from_raw_os_error(2).to_string();
    assert_eq!(
        text(&o.stderr).matches(&os).count(),
        1,
        "{}",
        text(&o.stderr)
    );
    // A typo in a workload gets the closest name.
    let o = ringfence(&explain(
        p(&ex),
        p(&inventory()),
        "shop/frontnd",
        "shop/cart",
    ));
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).ends_with("did you mean `shop/frontend`?\n"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn completions_and_man_pages() {
    for shell in ["bash", "zsh", "fish"] {
        let o = ringfence(&["completion", shell]);
        assert_eq!(code(&o), 0);
        let script = text(&o.stdout);
        for word in ["check", "analyze", "inventory", "completion"] {
            assert!(script.contains(word), "{shell}: {word}");
        }
    }
    // bash parses the bash script, and it completes subcommands.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("ringfence.bash");
    std::fs::write(&script, ringfence(&["completion", "bash"]).stdout).unwrap();
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=(ringfence ana); COMP_CWORD=1; _ringfence ringfence ana ringfence; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            p(&script)
        ))
        .output()
        .unwrap();
    assert_eq!(text(&o.stdout), "analyze\n", "{}", text(&o.stderr));

    let man = dir.path().join("man");
    let o = ringfence(&["man", "--out", p(&man)]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let top = std::fs::read_to_string(man.join("ringfence.1")).unwrap();
    assert!(
        top.starts_with(".ie \\n(.g .ds Aq \\(aq") || top.contains(".TH ringfence 1"),
        "{top:.200}"
    );
    let check = std::fs::read_to_string(man.join("ringfence-check.1")).unwrap();
    assert!(check.contains(".TH ringfence-check 1"), "{check:.300}");
    assert!(
        check.contains("sarif") && check.contains("Examples:"),
        "{check}"
    );
}

#[test]
fn progress_shows_on_a_terminal_only() {
    let (ex, inv) = (example(), inventory());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let cmd = format!(
        "{} render {} --inventory {} --out {}",
        env!("CARGO_BIN_EXE_ringfence"),
        p(&ex),
        p(&inv),
        p(&out)
    );
    // script(1) gives the command a terminal.
    let tty = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .expect("script (util-linux) runs");
    assert!(tty.status.success(), "{}", text(&tty.stderr));
    stdout_has(&tty, "rendering 3 nodes");
    let piped = ringfence(&["render", p(&ex), "--inventory", p(&inv), "--out", p(&out)]);
    assert!(!text(&piped.stderr).contains("rendering 3 nodes"));
}

/// A running `ringfence collect`, killed on drop.
struct Collector {
    child: std::process::Child,
    addr: String,
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collector(dir: &Path) -> Collector {
    let (child, addr) = spawn_listening(Command::new(env!("CARGO_BIN_EXE_ringfence")).args([
        "collect",
        "--listen",
        "127.0.0.1:0",
        "--dir",
        p(dir),
    ]));
    Collector { child, addr }
}

/// One raw HTTP request; the status line of the answer.
fn http(addr: &str, request: &[u8]) -> String {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(request).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.lines().next().unwrap_or("").to_string()
}

fn post(addr: &str, body: &str) -> String {
    http(
        addr,
        format!(
            "POST /reports HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

fn report_json(node: &str, status: &str) -> String {
    serde_json::json!({
        "format": 1, "node": node, "generated_at": "2026-01-01T00:00:00Z", "status": status,
        "drift": {"missing": [], "extra": [], "changed": []},
        "counters": [], "verification_failures": {}, "apply_failures": 0,
    })
    .to_string()
}

#[test]
fn collect_keeps_one_report_per_node_and_refuses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    let c = collector(&reports);
    // Two nodes; node-a's next report replaces its last; a node name is
    // never a path.
    for (node, status) in [
        ("node-a", "in-sync"),
        ("node-b", "in-sync"),
        ("node-a", "drifted"),
        ("../../etc/x", "in-sync"),
    ] {
        let answer = post(&c.addr, &report_json(node, status));
        assert_eq!(answer, "HTTP/1.1 204 No Content", "{node} {status}");
    }
    assert!(!dir.path().join("etc").exists());
    // Refused: not a report, too large, no length, elsewhere, not POST.
    assert!(post(&c.addr, "{\"hello\": 1}").starts_with("HTTP/1.1 422 "));
    let huge = format!(
        "POST /reports HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        64 << 20
    );
    assert!(http(&c.addr, huge.as_bytes()).starts_with("HTTP/1.1 413 "));
    assert!(http(&c.addr, b"POST /reports HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 411 "));
    assert!(
        http(
            &c.addr,
            b"POST /etc/passwd HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
        )
        .starts_with("HTTP/1.1 404 ")
    );
    assert!(http(&c.addr, b"GET /reports HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
    let endless = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; 64 * 1024]].concat();
    assert!(http(&c.addr, &endless).starts_with("HTTP/1.1 400 "));
    assert_eq!(
        http(&c.addr, b"GET /healthz HTTP/1.1\r\n\r\n"),
        "HTTP/1.1 200 OK"
    );

    let files = std::fs::read_dir(&reports).unwrap().count();
    assert_eq!(
        files, 3,
        "node-a, node-b and the one with a path for a name"
    );
    // `ringfence report` reads what was collected: node-a's latest says drifted.
    let o = ringfence(&["report", p(&reports), "-o", "json"]);
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let a = item(&s["nodes"], |n| n["node"] == "node-a");
    assert_eq!(a["status"], "drifted");
}
