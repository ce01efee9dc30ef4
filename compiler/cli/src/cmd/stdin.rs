//! `-` as a file name: standard input, read once into a private temporary
//! file that the libraries read like any other, and that is deleted when the
//! command ends. What the command prints names it `-`, never the copy.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where standard input was copied, once it was.
static COPY: OnceLock<PathBuf> = OnceLock::new();

/// `text` with the copy's path said as `-` (standard input).
pub(crate) fn unmask(text: &str) -> String {
    match COPY.get().and_then(|p| p.to_str()) {
        Some(copy) => text.replace(copy, "-"),
        None => text.to_string(),
    }
}

/// `path`, or `-` if it is the copy of standard input.
pub(crate) fn unmask_path(path: &mut PathBuf) {
    if COPY.get() == Some(path) {
        *path = PathBuf::from("-");
    }
}

use anyhow::{Context, bail};

use crate::flags::InventoryArgs;

/// Standard input's copy, alive as long as the paths that point to it.
pub(crate) struct Stdin {
    _copy: Option<tempfile::NamedTempFile>,
}

/// Whether a path is `-`.
pub(crate) fn is_stdin(p: &Path) -> bool {
    p.as_os_str() == "-"
}

/// Replace every `-` in `lists` by the path of a copy of standard input.
/// Standard input can be read once: `-` given twice is an error naming `flags`.
pub(crate) fn materialize(lists: &mut [&mut Vec<PathBuf>], flags: &str) -> anyhow::Result<Stdin> {
    let count = lists
        .iter()
        .flat_map(|l| l.iter())
        .filter(|p| is_stdin(p))
        .count();
    if count == 0 {
        return Ok(Stdin { _copy: None });
    }
    if count > 1 {
        bail!("`-` (standard input) is given {count} times among {flags}: it can be read once");
    }
    let mut file = tempfile::Builder::new()
        .prefix("ringfence-stdin-")
        .tempfile()
        .context("cannot create a temporary file for standard input")?;
    std::io::copy(&mut std::io::stdin().lock(), file.as_file_mut())
        .context("cannot read standard input")?;
    for list in lists.iter_mut() {
        for p in list.iter_mut().filter(|p| is_stdin(p)) {
            *p = file.path().to_path_buf();
        }
    }
    let _ = COPY.set(file.path().to_path_buf());
    Ok(Stdin { _copy: Some(file) })
}

/// [`materialize`] for `--inventory` and `--trivy`, and the flow files of
/// `analyze` and `discover` when there are some.
pub(crate) fn inventory(
    inv: &mut InventoryArgs,
    flows: Option<&mut Vec<PathBuf>>,
) -> anyhow::Result<Stdin> {
    match flows {
        Some(files) => materialize(
            &mut [&mut inv.inventory, &mut inv.trivy, files],
            "--inventory, --trivy, --flows",
        ),
        None => materialize(
            &mut [&mut inv.inventory, &mut inv.trivy],
            "--inventory, --trivy",
        ),
    }
}

/// Standard input as text (for `check -` and `fmt -`), at most `cap` bytes.
pub(crate) fn read_text(cap: u64) -> anyhow::Result<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(cap + 1)
        .read_to_end(&mut bytes)
        .context("cannot read standard input")?;
    if bytes.len() as u64 > cap {
        bail!("standard input is larger than {cap} bytes: give the intent as files in a directory");
    }
    String::from_utf8(bytes).context("standard input is not UTF-8 text")
}
