//! `ringfence render` (being built).

use crate::Outcome;
use crate::flags::RenderArgs;

pub(crate) fn run(_args: RenderArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("`ringfence render` is not built yet")
}
