//! `ringfence fmt` (being built).

use crate::Outcome;
use crate::flags::FmtArgs;

pub(crate) fn run(_args: FmtArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("`ringfence fmt` is not built yet")
}
