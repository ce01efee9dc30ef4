//! `ringfence completion SHELL` and `ringfence man --out DIR`: generated
//! from the flag definitions, so they never disagree with `--help`.

use std::io::Write;

use anyhow::Context;
use clap::CommandFactory;

use crate::Exit;
use crate::flags::{Cli, CompletionArgs, ManArgs, Shell};

pub(crate) fn completion(args: CompletionArgs) -> anyhow::Result<Exit> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    // Generated whole first, so a closed pipe is an io::Error, not a panic.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "ringfence", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(Exit::Clean)
}

pub(crate) fn man(args: ManArgs) -> anyhow::Result<Exit> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("--out {}: cannot create the directory", args.out.display()))?;
    let cmd = Cli::command();
    let mut pages = vec![("ringfence".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands() {
        let name = format!("ringfence-{}", sub.get_name());
        // clap names are `&'static str`; a man run makes a dozen, once.
        let page = sub
            .clone()
            .name(clap::builder::Str::from(name.clone().leak() as &str));
        pages.push((name, page));
    }
    for (name, page) in &pages {
        let mut roff = Vec::new();
        clap_mangen::Man::new(page.clone()).render(&mut roff)?;
        let path = args.out.join(format!("{name}.1"));
        std::fs::write(&path, roff).with_context(|| format!("cannot write {}", path.display()))?;
    }
    #[allow(clippy::print_stderr)] // a log line
    {
        eprintln!("wrote {} man pages to {}", pages.len(), args.out.display());
    }
    Ok(Exit::Clean)
}
