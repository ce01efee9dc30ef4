//! `ringfence check` (being built).

use crate::Outcome;
use crate::flags::CheckArgs;

pub(crate) fn run(_args: CheckArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("`ringfence check` is not built yet")
}
