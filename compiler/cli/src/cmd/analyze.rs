//! `ringfence analyze` (being built).

use crate::Outcome;
use crate::flags::AnalyzeArgs;

pub(crate) fn run(_args: AnalyzeArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("`ringfence analyze` is not built yet")
}
