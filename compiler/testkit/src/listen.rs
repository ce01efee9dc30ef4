//! Servers the tests start (`ringfence collect`): spawned with stderr piped,
//! their address read from the first log line, the rest of the log drained
//! as a terminal or journald would.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Start `cmd` and read the address of its first log line
/// (`… listening on ADDR …`).
pub fn spawn_listening(cmd: &mut Command) -> (Child, String) {
    let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
    let mut log = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    log.read_line(&mut line).unwrap();
    std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
    let addr = line
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();
    (child, addr)
}
