//! How results reach stdout: one serde value as JSON or YAML, written whole
//! through `io::Write` so a closed pipe is an `io::Error` (a quiet exit 0 in
//! `main`), never a panic.

use std::io::Write;

use serde::Serialize;

use crate::flags::Format;

/// Write `value` as pretty JSON or YAML, ending in a newline, as it is
/// serialized (a value that computes its elements while serialized is never
/// held whole).
pub(crate) fn structured<T: Serialize>(
    out: &mut dyn Write,
    yaml: bool,
    value: &T,
) -> anyhow::Result<()> {
    if yaml {
        let mut out = LastByte(out, b'\n');
        serde_saphyr::to_io_writer(&mut out, value)?;
        if out.1 != b'\n' {
            out.write_all(b"\n")?;
        }
    } else {
        // serde_json writes token by token: buffer them here, where the
        // writer's type is known, rather than call through `dyn` per token.
        let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
        serde_json::to_writer_pretty(&mut out, value)?;
        out.write_all(b"\n")?;
        out.flush()?;
    }
    Ok(())
}

/// A writer that remembers the last byte written.
struct LastByte<'a>(&'a mut dyn Write, u8);

impl Write for LastByte<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.0.write(buf)?;
        if n > 0 {
            self.1 = buf[n - 1];
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Write a result in `format`: its `Display` for txt, else the document,
/// through one buffer.
pub(crate) fn emit<T: Serialize + std::fmt::Display>(
    format: Format,
    value: &T,
) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
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
