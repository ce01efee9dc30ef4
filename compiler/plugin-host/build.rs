//! Compiles the built-in backends (`plugins/dist/*.wasm`) to native code
//! ahead of time, so that no run of `ringfence` spends time in Cranelift for
//! them, the first one included. The settings that change code are the
//! host's (`src/engine_config.rs`, shared with `slots.rs`; the default
//! limits, which have a timeout). At load, wasmtime refuses an artifact of
//! another version, configuration or CPU, and the host then compiles the
//! wasm as before. Each artifact starts with the hex SHA-256 of the wasm it
//! was compiled from, which the host checks against the wasm it embeds. A
//! cross build embeds nothing.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

#[path = "src/engine_config.rs"]
mod engine_config;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo::rerun-if-changed=src/engine_config.rs");
    let engine = (std::env::var("TARGET").ok() == std::env::var("HOST").ok())
        .then(|| wasmtime::Engine::new(&engine_config::code(true)).ok())
        .flatten();
    for name in ["nftables", "windows-firewall"] {
        let wasm = format!("../../plugins/dist/{name}.wasm");
        println!("cargo::rerun-if-changed={wasm}");
        let bytes = std::fs::read(&wasm).unwrap_or_else(|e| panic!("{wasm}: {e}"));
        let mut artifact = Vec::new();
        if let Some(code) = engine
            .as_ref()
            .and_then(|e| e.precompile_module(&bytes).ok())
        {
            let digest: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            artifact.extend_from_slice(digest.as_bytes());
            artifact.extend_from_slice(&code);
        }
        let path = out.join(format!("{name}.cwasm"));
        std::fs::write(&path, artifact).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}
