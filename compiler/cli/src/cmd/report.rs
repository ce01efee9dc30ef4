//! `ringfence report` (being built).

use crate::Outcome;
use crate::flags::ReportArgs;

pub(crate) fn run(_args: ReportArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("`ringfence report` is not built yet")
}
