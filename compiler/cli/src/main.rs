//! `ringfence`: the command-line interface. Parses flags, runs one command,
//! maps the outcome to an exit status: 0 success, 1 a finding or refusal
//! (invalid intent, bad bundle, drift), 2 could not run.
//!
//! Results go to stdout through `io::Write` only (`print!` panics when the
//! reader has gone; clippy refuses it here), and a closed pipe ends the
//! command quietly with 0.

#![deny(clippy::print_stdout)]

use std::process::ExitCode;

use clap::Parser;

mod cmd;
mod flags;

// The compile makes and frees many small values: mimalloc is faster at that
// than the system allocator and, without transparent huge pages, keeps less
// memory resident.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How a command that ran to the end went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Nothing to report beyond the result.
    Clean,
    /// The result is a finding or a refusal (exit 1).
    Findings,
}

fn main() -> ExitCode {
    let cli = flags::Cli::parse();
    match cmd::run(cli.command) {
        Ok(Exit::Clean) => ExitCode::SUCCESS,
        Ok(Exit::Findings) => ExitCode::from(1),
        // A closed pipe (`ringfence matrix | head`) is not a failure.
        Err(err) if cmd::output::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            #[allow(clippy::print_stderr)] // the binary's one error sink
            {
                eprintln!("error: {}", causes(&err));
            }
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, each said once: a cause whose text its parent
/// already includes (libgit2's and the OS's messages often are) is skipped.
fn causes(err: &anyhow::Error) -> String {
    let mut said: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cmd::stdin::unmask(&cause.to_string());
        if text.is_empty() || said.iter().any(|s| s.contains(&text)) {
            continue;
        }
        said.push(text);
    }
    said.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_is_said_once() {
        let os = std::io::Error::from_raw_os_error(2);
        let os_text = os.to_string();
        let err = anyhow::Error::new(os)
            .context(format!("cannot open a.json: {os_text}"))
            .context("--inventory");
        assert_eq!(
            causes(&err),
            format!("--inventory: cannot open a.json: {os_text}")
        );
        assert_eq!(causes(&anyhow::anyhow!("plain")), "plain");
    }
}
