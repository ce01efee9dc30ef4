//! How results reach stdout: one serde value as JSON or YAML, written whole
//! through `io::Write` so a closed pipe is an `io::Error` (a quiet exit 0 in
//! `main`), never a panic.

use std::io::Write;

use serde::Serialize;

use crate::flags::Format;

/// Write `value` as pretty JSON or YAML, ending in a newline.
pub(crate) fn structured<T: Serialize>(
    out: &mut dyn Write,
    yaml: bool,
    value: &T,
) -> anyhow::Result<()> {
    if yaml {
        let text = serde_saphyr::to_string(value)?;
        out.write_all(text.as_bytes())?;
        if !text.ends_with('\n') {
            out.write_all(b"\n")?;
        }
    } else {
        let text = serde_json::to_string_pretty(value)?;
        out.write_all(text.as_bytes())?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Write a result in `format`: its `Display` for txt, else the document.
pub(crate) fn emit<T: Serialize + std::fmt::Display>(
    format: Format,
    value: &T,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Txt => write!(out, "{value}")?,
        Format::Json => structured(&mut out, false, value)?,
        Format::Yaml => structured(&mut out, true, value)?,
    }
    out.flush()?;
    Ok(())
}

/// Write one line of text to stdout.
pub(crate) fn line(text: impl std::fmt::Display) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}

/// Whether an error is a reader that went away (`ringfence … | head`).
pub(crate) fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|e| e.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}
