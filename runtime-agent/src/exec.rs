//! Process execution: the one module that starts other programs.
//!
//! Appliers describe what to run as a [`Cmd`] and hand it to a [`Runner`].
//! [`SystemRunner`] really runs it (optionally inside a network namespace),
//! bounded: every run has a deadline after which the process is killed, and
//! what it prints is read up to a cap. Tests use a runner that records
//! calls, so command construction and ordering can be checked where the real
//! tool (PowerShell) does not exist.

use std::fmt;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one command may run before it is killed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The most of a command's standard output kept (a listing of a large
/// ruleset is tens of MiB at most).
pub const MAX_STDOUT: u64 = 256 << 20;
/// The most of a command's standard error kept.
pub const MAX_STDERR: u64 = 64 << 10;

/// A program, its arguments and optional standard input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmd {
    /// Program name or path.
    pub program: String,
    /// Arguments.
    pub args: Vec<String>,
    /// Bytes written to standard input, if any (shared, not copied, by the
    /// command actually started and the thread that writes them: a
    /// membership snapshot's elements are a few MiB).
    pub stdin: Option<Arc<Vec<u8>>>,
}

impl Cmd {
    /// `program args…` with no input.
    pub fn new<S: AsRef<str>>(program: &str, args: impl IntoIterator<Item = S>) -> Self {
        Cmd {
            program: program.to_string(),
            args: args.into_iter().map(|a| a.as_ref().to_string()).collect(),
            stdin: None,
        }
    }

    /// The same command with `input` on standard input.
    pub fn with_stdin(mut self, input: Vec<u8>) -> Self {
        self.stdin = Some(Arc::new(input));
        self
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.program)?;
        for a in &self.args {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'') {
                write!(f, " '{}'", a.replace('\'', r"'\''"))?;
            } else {
                write!(f, " {a}")?;
            }
        }
        Ok(())
    }
}

/// What a finished command produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// Exit code; `None` if killed by a signal.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

impl Output {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Standard error as text, trimmed (what tools say when they fail).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_string()
    }
}

/// A command could not be started or waited for.
#[derive(Debug, thiserror::Error)]
#[error("cannot run `{cmd}`: {err}")]
pub struct ExecError {
    /// The command line.
    pub cmd: String,
    /// Why.
    pub err: std::io::Error,
}

/// Something that runs commands.
pub trait Runner: Send + Sync {
    /// Run `cmd` to completion and return what it produced; a non-zero exit
    /// is an [`Output`], not an error.
    fn run(&self, cmd: &Cmd) -> Result<Output, ExecError>;

    /// Total time spent in external commands so far (for benchmarks).
    fn elapsed(&self) -> Duration {
        Duration::ZERO
    }
}

/// Runs commands for real, inside a network namespace when given one.
#[derive(Debug)]
pub struct SystemRunner {
    netns: Option<String>,
    timeout: Duration,
    elapsed: std::sync::Mutex<Duration>,
}

impl SystemRunner {
    /// Run commands in the current namespaces, or with `ip netns exec NAME`,
    /// each for at most [`DEFAULT_TIMEOUT`].
    pub fn new(netns: Option<String>) -> Self {
        SystemRunner {
            netns,
            timeout: DEFAULT_TIMEOUT,
            elapsed: Default::default(),
        }
    }

    /// The same runner with another deadline per command.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The command actually started: `cmd`, or `ip netns exec NAME cmd`.
    pub fn wrap(&self, cmd: &Cmd) -> Cmd {
        match &self.netns {
            None => cmd.clone(),
            Some(ns) => {
                let mut args = vec!["netns".to_string(), "exec".into(), ns.clone()];
                args.push(cmd.program.clone());
                args.extend(cmd.args.iter().cloned());
                Cmd {
                    program: "ip".into(),
                    args,
                    stdin: cmd.stdin.clone(),
                }
            }
        }
    }
}

impl Runner for SystemRunner {
    fn run(&self, cmd: &Cmd) -> Result<Output, ExecError> {
        let real = self.wrap(cmd);
        let fail = |err| ExecError {
            cmd: real.to_string(),
            err,
        };
        let start = Instant::now();
        let mut child = Command::new(&real.program)
            .args(&real.args)
            .stdin(if real.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(fail)?;
        // Pipes are drained on their own threads (a full pipe would block
        // the child), each up to its cap; the wait has a deadline.
        let stdout = drain(child.stdout.take(), MAX_STDOUT);
        let stderr = drain(child.stderr.take(), MAX_STDERR);
        let input = child
            .stdin
            .take()
            .zip(real.stdin.clone())
            .map(|(mut pipe, bytes)| {
                std::thread::spawn(move || {
                    let _ = pipe.write_all(&bytes);
                })
            });
        let status = wait_until(&mut child, start + self.timeout);
        *self.elapsed.lock().unwrap_or_else(|e| e.into_inner()) += start.elapsed();
        let status = match status {
            Ok(Some(s)) => s,
            Ok(None) => {
                return Err(fail(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {} s: killed", self.timeout.as_secs_f32()),
                )));
            }
            Err(e) => return Err(fail(e)),
        };
        if let Some(t) = input {
            let _ = t.join();
        }
        let join = |t: std::thread::JoinHandle<Vec<u8>>| t.join().unwrap_or_default();
        Ok(Output {
            code: status.code(),
            stdout: join(stdout),
            stderr: join(stderr),
        })
    }

    fn elapsed(&self) -> Duration {
        *self.elapsed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Read a pipe to its end on a thread, keeping at most `cap` bytes (the
/// rest is read and dropped, so the child never blocks on a full pipe).
///
/// The buffer is allocated here, by the calling thread, and only grown by
/// the reader: glibc grows a block in the arena that holds it, so a listing
/// of a MiB lands in the main heap, reused by the next one, instead of in
/// an arena of the reader's own that keeps its pages after the thread ends
/// (the agent's RSS after an hour of following is most of what matters).
fn drain(pipe: Option<impl Read + Send + 'static>, cap: u64) -> std::thread::JoinHandle<Vec<u8>> {
    let mut kept: Vec<u8> = Vec::with_capacity(16 << 10);
    std::thread::spawn(move || {
        if let Some(mut p) = pipe {
            let _ = (&mut p).take(cap).read_to_end(&mut kept);
            let _ = std::io::copy(&mut p, &mut std::io::sink());
        }
        kept
    })
}

/// Wait for `child` until `deadline`; past it, kill it and return `None`.
fn wait_until(
    child: &mut Child,
    deadline: Instant,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netns_wraps_with_ip_netns_exec() {
        let r = SystemRunner::new(Some("ns1".into()));
        let c = r.wrap(&Cmd::new(
            "nft",
            ["-j", "list", "table", "inet", "ringfence"],
        ));
        assert_eq!(
            c.to_string(),
            "ip netns exec ns1 nft -j list table inet ringfence"
        );
        assert_eq!(
            SystemRunner::new(None).wrap(&Cmd::new("nft", ["-f", "x"])),
            Cmd::new("nft", ["-f", "x"])
        );
    }

    #[test]
    fn runs_a_process_and_reports_failure_as_output() {
        let r = SystemRunner::new(None);
        let ok = r
            .run(&Cmd::new("sh", ["-c", "cat; echo oops >&2; exit 3"]).with_stdin(b"hi".to_vec()))
            .unwrap();
        assert_eq!(ok.code, Some(3));
        assert_eq!(ok.stdout, b"hi");
        assert_eq!(ok.stderr_text(), "oops");
        let err = r.run(&Cmd::new("/nonexistent/prog", ["a b"])).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/prog 'a b'"), "{err}");
    }

    #[test]
    fn a_hung_command_is_killed_at_its_deadline() {
        let r = SystemRunner::new(None).with_timeout(Duration::from_millis(300));
        let t = Instant::now();
        let err = r.run(&Cmd::new("sleep", ["30"])).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert!(err.to_string().contains("killed"), "{err}");
        // Output beyond the cap is read and dropped, not kept.
        let big = r
            .run(&Cmd::new(
                "sh",
                ["-c", "head -c 200000 /dev/zero >&2; echo done"],
            ))
            .unwrap();
        assert_eq!(big.stderr.len() as u64, MAX_STDERR);
        assert_eq!(big.stdout, b"done\n");
    }
}
