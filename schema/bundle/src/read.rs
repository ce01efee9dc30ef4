//! Reading files a verifier is handed (bundles, indexes, keys, reports):
//! regular files only, and never more than a cap. And the one error type for
//! a failed file operation, naming the file.

use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A file operation that failed: `{path}: {err}`.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {err}", path = .path.display())]
pub struct PathError {
    /// The file or directory.
    pub path: PathBuf,
    /// What failed.
    pub err: io::Error,
}

impl PathError {
    /// For `map_err`: the error, at `path`.
    pub fn at(path: &Path) -> impl FnOnce(io::Error) -> PathError + '_ {
        move |err| PathError {
            path: path.to_path_buf(),
            err,
        }
    }
}

/// Read at most `limit` bytes of the regular file at `path`. Anything else
/// (a FIFO, a device like `/dev/zero`, a directory) is refused without
/// blocking: the file is opened non-blocking and checked on the opened
/// descriptor. To tell "too large" from "exactly `limit`", pass one more.
pub fn read_capped(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO, device or directory is never read)",
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len().min(limit) as usize);
    file.take(limit).read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_fifos_and_devices_and_caps_the_rest() {
        let dir = std::env::temp_dir().join(format!("rf-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let _ = std::fs::remove_file(&fifo);
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Would block forever if opened for a plain read.
        let e = read_capped(&fifo, 10).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        let e = read_capped(Path::new("/dev/zero"), 10).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        assert!(read_capped(&dir, 10).is_err());
        let f = dir.join("f");
        std::fs::write(&f, b"0123456789abcdef").unwrap();
        assert_eq!(read_capped(&f, 11).unwrap(), b"0123456789a");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
