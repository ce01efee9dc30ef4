//! `ringfence inventory` (being built).

use crate::Outcome;
use crate::flags::PullArgs;

pub(crate) fn pull(_args: PullArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("`ringfence inventory` is not built yet")
}
