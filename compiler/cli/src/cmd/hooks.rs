//! `ringfence hooks` (being built).

use crate::Outcome;
use crate::flags::HooksInstallArgs;

pub(crate) fn install(_args: HooksInstallArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("`ringfence hooks` is not built yet")
}
