//! `ringfence compile` (being built).

use crate::Outcome;
use crate::flags::CompileArgs;

pub(crate) fn run(_args: CompileArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("`ringfence compile` is not built yet")
}
