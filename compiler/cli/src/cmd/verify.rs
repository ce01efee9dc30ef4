//! `ringfence verify` (being built).

use crate::Outcome;
use crate::flags::VerifyArgs;

pub(crate) fn run(_args: VerifyArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("`ringfence verify` is not built yet")
}
