//! `ringfence explain` (being built).

use crate::Outcome;
use crate::flags::ExplainArgs;

pub(crate) fn run(_args: ExplainArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("`ringfence explain` is not built yet")
}
