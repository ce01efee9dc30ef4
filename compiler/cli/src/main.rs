//! `ringfence`: the command-line interface. Parses flags, runs one command,
//! maps the outcome to an exit status: 0 success, 1 a finding or refusal
//! (invalid intent, bad bundle, drift), 2 could not run.

use std::process::ExitCode;

use clap::Parser;

mod cmd;
mod flags;

/// How a command that ran to the end went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Nothing to report beyond the result.
    Clean,
    /// The result is a finding or a refusal (exit 1).
    Findings,
}

fn main() -> ExitCode {
    let cli = flags::Cli::parse();
    match cmd::run(cli.command) {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Findings) => ExitCode::from(1),
        Err(err) => {
            // A closed pipe (`ringfence matrix | head`) is not a failure.
            if err.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            #[allow(clippy::print_stderr)] // the binary's one error sink
            {
                eprintln!("error: {err:#}");
            }
            ExitCode::from(2)
        }
    }
}
