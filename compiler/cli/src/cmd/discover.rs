//! `ringfence discover` (being built).

use crate::Outcome;
use crate::flags::DiscoverArgs;

pub(crate) fn run(_args: DiscoverArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("`ringfence discover` is not built yet")
}
