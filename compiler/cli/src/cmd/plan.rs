//! `ringfence plan` (being built).

use crate::Outcome;
use crate::flags::PlanArgs;

pub(crate) fn run(_args: PlanArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("`ringfence plan` is not built yet")
}
