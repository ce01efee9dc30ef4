//! `ringfence watch` (being built).

use crate::Outcome;
use crate::flags::WatchArgs;

pub(crate) fn run(_args: WatchArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("`ringfence watch` is not built yet")
}
