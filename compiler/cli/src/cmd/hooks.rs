//! `ringfence hooks install`: the pre-commit hook (or, with `--server`, the
//! pre-receive hook of a bare repository). Exit 1 when a foreign hook is in
//! the way (the message says how to chain it), 2 when it cannot run.

use anyhow::Context;
use ringfence_gitops::hooks::{Hook, HookError, Installed, install as install_hook};

use crate::Exit;
use crate::flags::HooksInstallArgs;

pub(crate) fn install(args: HooksInstallArgs) -> anyhow::Result<Exit> {
    let hook = if args.server {
        Hook::PreReceive
    } else {
        Hook::PreCommit
    };
    let done = match install_hook(&args.repo, hook, args.chain) {
        Ok(done) => done,
        Err(e @ (HookError::Exists { .. } | HookError::ChainTaken { .. })) => {
            #[allow(clippy::print_stderr)] // the refusal is the result's reason
            {
                eprintln!("refused: {e}");
            }
            return Ok(Exit::Findings);
        }
        Err(e) => {
            return Err(e).with_context(|| format!("installing the {} hook", hook.name()));
        }
    };
    let what = match &done.installed {
        Installed::Fresh => "installed".to_string(),
        Installed::Unchanged => "already installed, unchanged".to_string(),
        Installed::Updated => "updated".to_string(),
        Installed::Chained(old) => format!(
            "installed; the previous hook was kept as {} and runs first",
            old.display()
        ),
    };
    crate::cmd::output::line(format!(
        "{} hook {what}: {}",
        hook.name(),
        done.path.display()
    ))?;
    crate::cmd::output::line(match hook {
        Hook::PreCommit => {
            "it runs `ringfence check --staged` on the intent directory (`git config ringfence.path DIR`, default: the repository root); `ringfence` must be on PATH"
        }
        Hook::PreReceive => {
            "it runs `ringfence check` on the new tip of each pushed branch (`git config ringfence.branches 'GLOB…'`, default: all; `git config ringfence.path DIR`, default: the root); `ringfence` must be on the server's PATH"
        }
    })?;
    Ok(Exit::Clean)
}
