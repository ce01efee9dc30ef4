//! The inventory digest: one hash over the inventory files, recorded in
//! compiled output so that a result can be traced to the cluster state it was
//! built from. The only module that hashes.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Hex SHA-256 of the files in the given order, each prefixed by its length
/// as 8 bytes big-endian (so that moving bytes between files changes it). A
/// directory of manifests counts as its manifest files in path order, each
/// preceded by its path (length-prefixed likewise).
pub fn digest(inventory: &[PathBuf]) -> std::io::Result<String> {
    let mut hasher = Hasher::default();
    for path in inventory {
        if path.is_dir() {
            hasher.dir(path)?;
        } else {
            let bytes = std::fs::read(path).map_err(|e| unreadable(path, e))?;
            hasher.file(&bytes);
        }
    }
    Ok(hasher.hex())
}

fn unreadable(path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: cannot read it: {e}", path.display()))
}

/// The [`digest`] built path by path, from bytes already read (`load_digested`
/// hashes each file as it parses it instead of reading it again).
#[derive(Default)]
pub(crate) struct Hasher(Sha256);

impl Hasher {
    /// A file given by path, with these contents.
    pub(crate) fn file(&mut self, bytes: &[u8]) {
        self.0.update((bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
    }

    /// A directory of manifests.
    pub(crate) fn dir(&mut self, path: &Path) -> std::io::Result<()> {
        let files = crate::manifests::files(std::slice::from_ref(&path.to_path_buf()))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        for f in files {
            let name = f.strip_prefix(path).unwrap_or(&f).to_string_lossy();
            let bytes = std::fs::read(&f).map_err(|e| unreadable(&f, e))?;
            self.0.update((name.len() as u64).to_be_bytes());
            self.0.update(name.as_bytes());
            self.file(&bytes);
        }
        Ok(())
    }

    pub(crate) fn hex(self) -> String {
        ringfence_schema::digest::hex(&self.0.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_sha256_of_length_prefixed_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.json");
        let b = dir.path().join("b.json");
        std::fs::write(&a, "ab").unwrap();
        std::fs::write(&b, "c").unwrap();
        // sha256(00..02 "ab" 00..01 "c"), computed independently:
        // printf '\0\0\0\0\0\0\0\2ab\0\0\0\0\0\0\0\1c' | sha256sum
        assert_eq!(
            digest(&[a.clone(), b.clone()]).unwrap(),
            "601d5476e2ccfe2c87a2bba7a322659734a05749d5b5aa781f513e4912db0d5f"
        );
        // Order matters, and so do the boundaries between files.
        assert_ne!(
            digest(&[b.clone(), a.clone()]).unwrap(),
            digest(&[a.clone(), b.clone()]).unwrap()
        );
        let ab = dir.path().join("ab.json");
        let empty = dir.path().join("empty.json");
        std::fs::write(&ab, "abc").unwrap();
        std::fs::write(&empty, "").unwrap();
        assert_ne!(
            digest(&[ab.clone(), empty]).unwrap(),
            digest(&[a.clone(), b]).unwrap()
        );
        // No files: the hash of nothing.
        assert_eq!(
            digest(&[]).unwrap(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let missing = dir.path().join("missing.json");
        let err = digest(std::slice::from_ref(&missing)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
        assert!(
            err.to_string()
                .starts_with(&format!("{}: cannot read it", missing.display()))
        );
    }
}
