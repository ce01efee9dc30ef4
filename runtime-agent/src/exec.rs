//! Process execution: the one module that starts other programs.
//!
//! Appliers describe what to run as a [`Cmd`] and hand it to a [`Runner`].
//! [`SystemRunner`] really runs it (optionally inside a network namespace);
//! tests use a runner that records calls, so command construction and
//! ordering can be checked where the real tool (PowerShell) does not exist.

use std::fmt;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A program, its arguments and optional standard input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmd {
    /// Program name or path.
    pub program: String,
    /// Arguments.
    pub args: Vec<String>,
    /// Bytes written to standard input, if any.
    pub stdin: Option<Vec<u8>>,
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
        self.stdin = Some(input);
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
#[derive(Debug, Default)]
pub struct SystemRunner {
    netns: Option<String>,
    elapsed: std::sync::Mutex<Duration>,
}

impl SystemRunner {
    /// Run commands in the current namespaces, or with `ip netns exec NAME`.
    pub fn new(netns: Option<String>) -> Self {
        SystemRunner {
            netns,
            elapsed: Default::default(),
        }
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
        if let (Some(input), Some(mut pipe)) = (&real.stdin, child.stdin.take()) {
            pipe.write_all(input).map_err(fail)?;
        }
        let out = child.wait_with_output().map_err(fail)?;
        *self.elapsed.lock().unwrap_or_else(|e| e.into_inner()) += start.elapsed();
        Ok(Output {
            code: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    fn elapsed(&self) -> Duration {
        *self.elapsed.lock().unwrap_or_else(|e| e.into_inner())
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
}
