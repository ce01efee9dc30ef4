//! On-disk cache of compiled plugins, so start-up does not recompile them.
//!
//! A compiled module is stored as `<dir>/<wasm sha256>-<engine hash>.cwasm`,
//! where the engine hash is [`wasmtime::Engine::precompile_compatibility_hash`]
//! (wasmtime version, target and every setting that changes code). The file
//! starts with a magic and the SHA-256 of the rest, so a torn or corrupted
//! write is detected and recompiled instead of deserialised. Only files this
//! module wrote are ever deserialised: the name says which wasm they come
//! from, and the host compiled that wasm itself before writing them. The
//! built-in backends skip the cache: `build.rs` compiled them into the binary
//! ([`embedded`]).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

const MAGIC: &[u8; 8] = b"RFCWASM1";

/// The default cache directory: `$XDG_CACHE_HOME/ringfence/plugins`, else
/// `~/.cache/ringfence/plugins`; none if neither variable is set.
pub(crate) fn default_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(base.join("ringfence").join("plugins"))
}

/// Where the compiled form of the wasm with digest `sha256` lives for `engine`.
fn entry(dir: &Path, engine: &Engine, sha256: &str) -> PathBuf {
    let mut h = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    dir.join(format!("{sha256}-{:016x}.cwasm", h.finish()))
}

/// Compile `wasm` (whose digest is `sha256`), going through the cache in
/// `dir` if there is one. Cache problems never fail a load: the module is
/// then compiled from the wasm bytes.
pub(crate) fn compile(
    engine: &Engine,
    wasm: &[u8],
    sha256: &str,
    dir: Option<&Path>,
) -> wasmtime::Result<Module> {
    let Some(dir) = dir else {
        return Module::new(engine, wasm);
    };
    let path = entry(dir, engine, sha256);
    if let Some(m) = read(engine, &path) {
        return Ok(m);
    }
    let module = Module::new(engine, wasm)?;
    if let Ok(bytes) = module.serialize() {
        write(dir, &path, &bytes);
    }
    Ok(module)
}

fn read(engine: &Engine, path: &Path) -> Option<Module> {
    let file = std::fs::read(path).ok()?;
    let body = file.strip_prefix(MAGIC.as_slice())?;
    let (digest, body) = body.split_at_checked(32)?;
    if Sha256::digest(body).as_slice() != digest {
        return None;
    }
    deserialize(engine, body)
}

#[allow(unsafe_code)] // the one unsafe call of the host; see SAFETY
fn deserialize(engine: &Engine, body: &[u8]) -> Option<Module> {
    // SAFETY: `Module::deserialize` must only see bytes produced by
    // `Module::serialize`/`Engine::precompile_module` of a compatible engine.
    // `body` is exactly what `write` stored after `Module::serialize` (its
    // SHA-256 was just checked), under a name bound to the wasm digest and to
    // this engine's compatibility hash; wasmtime itself also rejects
    // artifacts of another version or configuration with an error.
    unsafe { Module::deserialize(engine, body) }.ok()
}

/// The module of a built-in backend compiled by `build.rs`, if it fits `engine`.
#[allow(unsafe_code)] // see SAFETY
pub(crate) fn embedded(engine: &Engine, artifact: &'static [u8]) -> Option<Module> {
    // SAFETY: `artifact` is `Engine::precompile_module`'s output, written by
    // this crate's build script and embedded in the binary with
    // `include_bytes!`, for the wasm whose digest the caller checked.
    // wasmtime refuses artifacts of another version, configuration or CPU.
    unsafe { Module::deserialize(engine, artifact) }.ok()
}

/// Write atomically (temporary file, then rename) into a private directory.
fn write(dir: &Path, path: &Path, body: &[u8]) {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    if builder.create(dir).is_err() {
        return;
    }
    let mut file = Vec::with_capacity(body.len() + 40);
    file.extend_from_slice(MAGIC);
    file.extend_from_slice(&Sha256::digest(body));
    file.extend_from_slice(body);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&tmp, &file).is_ok() && std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module with no imports and one export, in binary form.
    const TINY: &[u8] = &[
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
        0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f, // type: () -> i32
        0x03, 0x02, 0x01, 0x00, // func 0: type 0
        0x07, 0x07, 0x01, 0x03, b'a', b'b', b'i', 0x00, 0x00, // export "abi"
        0x0a, 0x06, 0x01, 0x04, 0x00, 0x41, 0x01, 0x0b, // body: i32.const 1
    ];

    #[test]
    fn cache_round_trip_and_corruption_is_recompiled() {
        let engine = Engine::default();
        let dir = tempfile::tempdir().unwrap();
        let m = compile(&engine, TINY, "abc", Some(dir.path())).unwrap();
        assert!(m.get_export("abi").is_some());
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(files.len(), 1, "one cache entry");
        let path = entry(dir.path(), &engine, "abc");
        assert!(read(&engine, &path).is_some(), "entry deserialises");

        // Flip a byte: the checksum no longer matches, so it is not trusted.
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert!(read(&engine, &path).is_none(), "corrupted entry refused");
        // ... and a load recompiles and rewrites it.
        compile(&engine, TINY, "abc", Some(dir.path())).unwrap();
        assert!(read(&engine, &path).is_some());
        // Truncated files are refused too.
        std::fs::write(&path, &bytes[..20]).unwrap();
        assert!(read(&engine, &path).is_none());
    }
}
