//! Running the project's binaries and other commands from tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use ringfence_testkit::cmd::run;

/// Path of a binary built by this workspace (`ringfence`, `ringfence-agent`).
/// Tests run after `cargo build --release --bins` (see `tests/run.sh`).
pub fn binary(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    for profile in ["release", "debug"] {
        let p = target.join(profile).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "{name} is not built under {}: run `cargo build --release --bins` first",
        target.display()
    );
}

/// Run `ip` with arguments.
pub fn ip(args: &[&str]) {
    run(Command::new("ip").args(args));
}

/// Run a command inside a network namespace.
pub fn in_netns(ns: &str, argv: &[&str]) -> Output {
    run(Command::new("ip").args(["netns", "exec", ns]).args(argv))
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository root")
}

/// `ringfence compile INTENT --inventory INVENTORY --key KEY --out OUT`.
pub fn compile(intent: &Path, inventory: &Path, key: &Path, out: &Path) {
    run(Command::new(binary("ringfence"))
        .arg("compile")
        .arg(intent)
        .arg("--inventory")
        .arg(inventory)
        .arg("--key")
        .arg(key)
        .arg("--out")
        .arg(out));
}

/// Start `ringfence-agent run` for `node` in the network namespace `ns`,
/// reading bundles from `out` every second.
pub fn start_agent(node: &str, ns: &str, out: &Path, key: &Path, state: &Path) -> Child {
    Command::new(binary("ringfence-agent"))
        .args(["run", "--node", node, "--netns", ns, "--interval", "1"])
        .arg("--source")
        .arg(out)
        .arg("--trust")
        .arg(key)
        .arg("--state")
        .arg(state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ringfence-agent")
}

/// Wait (30 s at most) until the agent whose state is `state` reports
/// `in-sync`.
pub fn wait_applied(state: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(state.join("report.json")) {
            let r: serde_json::Value =
                serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
            if r["status"] == "in-sync" {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "the agent with state {} did not apply its bundle in 30 s",
        state.display()
    );
}
