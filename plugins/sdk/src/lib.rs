//! The guest side of the ringfence backend plugin ABI.
//!
//! A backend implements [`Backend`] and calls [`export_backend!`] once; the
//! macro emits the exports the host looks for (`ringfence_abi`,
//! `ringfence_alloc`, `ringfence_info`, `ringfence_render`, see
//! `schema/src/plugin.rs`). JSON goes in; a JSON header and the files
//! verbatim come out; the module imports nothing.
//!
//! ```text
//! struct Csv;
//! impl ringfence_plugin_sdk::Backend for Csv {
//!     fn info() -> PluginInfo { … }
//!     fn render(ir: &NodeIr) -> Result<RenderOutput, String> { … }
//! }
//! #[cfg(target_arch = "wasm32")]
//! ringfence_plugin_sdk::export_backend!(Csv);
//! ```
//!
//! All the unsafe code of a plugin lives in [`abi`], [`bump`] and [`cmp`],
//! with the reason each use is sound.
//!
//! On `wasm32`, the SDK is the plugin's global allocator ([`bump::Bump`]): an
//! instance renders one node and is then dropped, so memory is handed out by
//! bumping a pointer and never reused, which is much cheaper than a general
//! allocator. A plugin built on the SDK cannot install another one.

pub use ringfence_schema as schema;

use ringfence_schema::ir::NodeIr;
use ringfence_schema::plugin::{PluginInfo, RenderOutput};

pub mod bump;
pub mod cmp;

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: bump::Bump = bump::Bump::new();

/// A backend: describes itself and renders one node's IR.
pub trait Backend {
    /// Name, version, ABI and capabilities; `abi` must be [`schema::plugin::PLUGIN_ABI`].
    fn info() -> PluginInfo;
    /// Render an IR that has passed [`NodeIr::validate`]. An `Err` is a
    /// refusal the compiler shows to the user, so say what and why.
    ///
    /// One instance may render a run of nodes, so the result must depend on
    /// `ir` alone: state kept between calls may only save work (the
    /// nftables backend reuses the text of a set equal to one it wrote).
    fn render(ir: &NodeIr) -> Result<RenderOutput, String>;
}

/// Emit the ABI exports for a type implementing [`Backend`].
///
/// Use it once per plugin crate, gated on `target_arch = "wasm32"` so the same
/// crate can also be linked natively (tests, benchmarks).
#[macro_export]
macro_rules! export_backend {
    ($backend:ty) => {
        /// ABI version (`ringfence_abi`).
        // `no_mangle` is how a wasm module exports a function; the exports are
        // reached by symbol name wherever the macro is used.
        #[allow(unsafe_code, unreachable_pub)]
        #[unsafe(no_mangle)]
        pub extern "C" fn ringfence_abi() -> i32 {
            $crate::abi::abi()
        }

        /// Buffer for the host to write the input into (`ringfence_alloc`).
        #[allow(unsafe_code, unreachable_pub)] // as above
        #[unsafe(no_mangle)]
        pub extern "C" fn ringfence_alloc(len: i32) -> i32 {
            $crate::abi::alloc(len)
        }

        /// JSON `PluginInfo`, packed (`ringfence_info`).
        #[allow(unsafe_code, unreachable_pub)] // as above
        #[unsafe(no_mangle)]
        pub extern "C" fn ringfence_info() -> i64 {
            $crate::abi::info::<$backend>()
        }

        /// JSON `NodeIr` in, `RenderResponse` (wire form) out, packed (`ringfence_render`).
        #[allow(unsafe_code, unreachable_pub)] // as above
        #[unsafe(no_mangle)]
        pub extern "C" fn ringfence_render(ptr: i32, len: i32) -> i64 {
            $crate::abi::render::<$backend>(ptr, len)
        }

        /// The set table for the nodes of a chunk (`ringfence_sets`).
        #[allow(unsafe_code, unreachable_pub)] // as above
        #[unsafe(no_mangle)]
        pub extern "C" fn ringfence_sets(ptr: i32, len: i32) -> i32 {
            $crate::abi::sets(ptr, len)
        }

        /// JSON `NodeWithSetRefs` in, as `ringfence_render` out
        /// (`ringfence_render_with_sets`).
        #[allow(unsafe_code, unreachable_pub)] // as above
        #[unsafe(no_mangle)]
        pub extern "C" fn ringfence_render_with_sets(ptr: i32, len: i32) -> i64 {
            $crate::abi::render_with_sets::<$backend>(ptr, len)
        }
    };
}

/// The ABI glue behind [`export_backend!`]. Not for direct use.
///
/// Memory is never freed: an instance renders one node, or one chunk of
/// nodes, and is dropped afterwards, so leaking the input and output buffers
/// is both simpler and cheaper than an ownership protocol.
#[doc(hidden)]
#[allow(unsafe_code)] // reading the host's input buffer; see the SAFETY notes
pub mod abi {
    use std::sync::OnceLock;

    use super::Backend;
    use ringfence_schema::ir::NodeIr;
    use ringfence_schema::net::AddressSet;
    use ringfence_schema::plugin::{NodeWithSetRefs, PLUGIN_ABI, RenderResponse, encode_response};

    /// The set table of this instance's chunk (`ringfence_sets`).
    static SETS: OnceLock<Vec<AddressSet>> = OnceLock::new();

    /// `ringfence_abi`.
    pub fn abi() -> i32 {
        PLUGIN_ABI as i32
    }

    /// `ringfence_alloc`: a zeroed buffer of `len` bytes that lives forever.
    /// A negative length gets a null pointer, which the host reports.
    pub fn alloc(len: i32) -> i32 {
        let Ok(len) = usize::try_from(len) else {
            return 0;
        };
        let buf: &'static mut [u8] = Box::leak(vec![0u8; len].into_boxed_slice());
        buf.as_mut_ptr() as usize as i32
    }

    /// Leak `bytes` and pack their address and length into one `i64`:
    /// `ptr << 32 | len`, as the host unpacks it.
    fn pack(bytes: Vec<u8>) -> i64 {
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        let ptr = bytes.as_ptr() as usize as u64;
        ((ptr << 32) | bytes.len() as u64) as i64
    }

    /// `ringfence_info`.
    pub fn info<B: Backend>() -> i64 {
        pack(serde_json::to_vec(&B::info()).unwrap_or_default())
    }

    /// The host's input buffer, or why it is unusable.
    fn input(ptr: i32, len: i32) -> Result<&'static [u8], String> {
        let (Ok(ptr), Ok(len)) = (usize::try_from(ptr), usize::try_from(len)) else {
            return Err(format!("bad input buffer (ptr {ptr}, len {len})"));
        };
        if ptr == 0 {
            return Err("null input buffer".into());
        }
        // SAFETY: the ABI says the host passes `ptr` returned by
        // `ringfence_alloc(len)` of this instance, so `ptr..ptr+len` is one
        // live, initialised allocation (zeroed by `alloc`, then written by
        // the host) that nothing else references: it was leaked and its
        // address handed only to the host.
        Ok(unsafe { core::slice::from_raw_parts(ptr as *const u8, len) })
    }

    /// `ringfence_render`: parse, validate, render, serialise.
    pub fn render<B: Backend>(ptr: i32, len: i32) -> i64 {
        let ir = input(ptr, len).and_then(|input| {
            serde_json::from_slice::<NodeIr>(input)
                .map_err(|e| format!("input is not a valid NodeIr: {e}"))
        });
        respond(ir.map_or_else(RenderResponse::Error, |ir| render_ir::<B>(&ir)))
    }

    /// `ringfence_sets`: keep the chunk's set table; `0` when it was read.
    pub fn sets(ptr: i32, len: i32) -> i32 {
        let table = input(ptr, len)
            .ok()
            .and_then(|input| serde_json::from_slice::<Vec<AddressSet>>(input).ok());
        match table.map(|t| SETS.set(t)) {
            Some(Ok(())) => 0,
            _ => 1,
        }
    }

    /// `ringfence_render_with_sets`: the IR completed from the set table,
    /// then as `ringfence_render`.
    pub fn render_with_sets<B: Backend>(ptr: i32, len: i32) -> i64 {
        let ir = input(ptr, len).and_then(|input| {
            let node: NodeWithSetRefs = serde_json::from_slice(input)
                .map_err(|e| format!("input is not a valid NodeWithSetRefs: {e}"))?;
            node.resolve(SETS.get().map_or(&[], Vec::as_slice))
                .ok_or_else(|| "set references do not fit the set table".to_string())
        });
        respond(ir.map_or_else(RenderResponse::Error, |ir| render_ir::<B>(&ir)))
    }

    fn render_ir<B: Backend>(ir: &NodeIr) -> RenderResponse {
        match ir.validate() {
            Err(e) => RenderResponse::Error(format!("invalid IR: {e}")),
            Ok(()) => match B::render(ir) {
                Ok(out) => RenderResponse::Ok(out),
                Err(e) => RenderResponse::Error(e),
            },
        }
    }

    fn respond(r: RenderResponse) -> i64 {
        pack(encode_response(&r))
    }
}
