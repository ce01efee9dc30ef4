//! `ringfence keygen` (being built).

use crate::Outcome;
use crate::flags::KeygenArgs;

pub(crate) fn run(_args: KeygenArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("`ringfence keygen` is not built yet")
}
