//! `ringfence matrix` (being built).

use crate::Outcome;
use crate::flags::MatrixArgs;

pub(crate) fn run(_args: MatrixArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("`ringfence matrix` is not built yet")
}
