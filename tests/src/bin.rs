//! Running the project's binaries and other commands from tests.

use std::path::PathBuf;
use std::process::{Command, Output};

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

/// Run a command; panic with its output if it fails.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
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
