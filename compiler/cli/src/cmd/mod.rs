//! One module per command. Each validates its flags, calls the libraries, and
//! prints results on stdout (logs and progress on stderr).

use crate::Exit;
use crate::flags::{Command, FlowsCommand, HooksCommand, ImportCommand, InventoryCommand};

mod analyze;
mod annotate;
mod check;
mod collect;
mod common;
mod compile;
mod completion;
mod discover;
mod explain;
mod flows;
mod fmt;
mod hooks;
mod import;
mod inventory;
mod keygen;
mod matrix;
pub(crate) mod output;
mod plan;
mod progress;
mod render;
mod report;
pub(crate) mod stdin;
mod verify;
mod watch;

/// Run one command.
pub(crate) fn run(command: Command) -> anyhow::Result<Exit> {
    match command {
        Command::Check(a) => check::run(a),
        Command::Fmt(a) => fmt::run(a),
        Command::Explain(a) => explain::run(a),
        Command::Matrix(a) => matrix::run(a),
        Command::Render(a) => render::run(a),
        Command::Compile(a) => compile::run(a),
        Command::Keygen(a) => keygen::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Inventory(InventoryCommand::Pull(a)) => inventory::pull(a),
        Command::Report(a) => report::run(a),
        Command::Hooks(HooksCommand::Install(a)) => hooks::install(a),
        Command::Plan(a) => plan::run(a),
        Command::Watch(a) => watch::run(a),
        Command::Discover(a) => discover::run(a),
        Command::Analyze(a) => analyze::run(a),
        Command::Collect(a) => collect::run(a),
        Command::Completion(a) => completion::completion(a),
        Command::Man(a) => completion::man(a),
        Command::Flows(FlowsCommand::Load(a)) => flows::load(a),
        Command::Import(ImportCommand::K8s(a)) => import::k8s(a),
    }
}
