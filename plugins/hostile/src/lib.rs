//! Plugins that misbehave on purpose, one per feature, for the host's tests:
//! each must be stopped and reported without harming the host.
//!
//! | feature | misbehaviour |
//! |---|---|
//! | `loop` | `ringfence_render` never returns |
//! | `memory-bomb` | allocates until it hits the memory cap |
//! | `panic` | panics (a trap) |
//! | `garbage` | returns bytes that are not a response |
//! | `wrong-shape` | returns a header that is not a `RenderResponse`'s |
//! | `bad-artifact` | returns an artifact named `../../etc/passwd` |
//! | `escape` | returns a `rules.nft` whose quoted `{` hides a `delete table ip victim` |
//! | `out-of-bounds` | returns a buffer outside its memory |
//! | `imports` | imports a host function (refused at load) |
//! | `wrong-abi` | reports ABI version 99 (refused at load) |

#![cfg_attr(feature = "imports", allow(unsafe_code))] // declaring and calling an import is unsafe
#![allow(unreachable_pub)] // the exports are reached by symbol name

#[cfg(any(feature = "loop", feature = "memory-bomb", feature = "panic"))]
mod via_sdk {
    use ringfence_plugin_sdk::Backend;
    use ringfence_plugin_sdk::schema::ir::NodeIr;
    use ringfence_plugin_sdk::schema::plugin::{PluginInfo, RenderOutput};

    struct Hostile;

    impl Backend for Hostile {
        fn info() -> PluginInfo {
            super::info()
        }
        fn render(ir: &NodeIr) -> Result<RenderOutput, String> {
            #[cfg(feature = "loop")]
            {
                let mut x = ir.endpoints.len() as u64;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            #[cfg(feature = "memory-bomb")]
            {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![ir.endpoints.len() as u8 | 1; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            #[cfg(feature = "panic")]
            {
                panic!("hostile plugin panics on node {}", ir.node);
            }
        }
    }

    ringfence_plugin_sdk::export_backend!(Hostile);
}

/// A plausible description, so loading succeeds where the test needs it to.
#[allow(dead_code)] // not every feature uses it
fn info() -> ringfence_plugin_sdk::schema::plugin::PluginInfo {
    use ringfence_plugin_sdk::schema::ir::Os;
    use ringfence_plugin_sdk::schema::plugin::{PLUGIN_ABI, PluginInfo};
    PluginInfo {
        name: "hostile".into(),
        version: "0.0.0".into(),
        abi: PLUGIN_ABI,
        os: Os::Linux,
        // `escape` claims every capability so a compile reaches its render.
        capabilities: ringfence_plugin_sdk::schema::plugin::Capabilities {
            ipv6: cfg!(feature = "escape"),
            port_ranges: cfg!(feature = "escape"),
            logging: cfg!(feature = "escape"),
            analyze_mode: cfg!(feature = "escape"),
            first_match: cfg!(feature = "escape"),
            exposures: cfg!(feature = "escape"),
            // Full IRs, so its render sees the rules it tries to escape.
            live_membership: false,
            max_rules: None,
        },
        description: "misbehaves on purpose".into(),
    }
}

/// Leak `bytes` and pack them as the ABI returns buffers.
#[allow(dead_code)] // not every feature uses it
fn pack(bytes: Vec<u8>) -> i64 {
    let b: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    (((b.as_ptr() as usize as u64) << 32) | b.len() as u64) as i64
}

#[cfg(any(
    feature = "garbage",
    feature = "wrong-shape",
    feature = "bad-artifact",
    feature = "escape",
    feature = "out-of-bounds",
    feature = "imports",
    feature = "wrong-abi"
))]
mod raw {
    use ringfence_plugin_sdk::abi;

    #[cfg(feature = "imports")]
    #[link(wasm_import_module = "env")]
    unsafe extern "C" {
        fn run_command(ptr: *const u8, len: usize) -> i32;
    }

    /// Reports 99 with `wrong-abi`.
    #[allow(unsafe_code)] // `no_mangle` exports
    #[unsafe(no_mangle)]
    pub extern "C" fn ringfence_abi() -> i32 {
        if cfg!(feature = "wrong-abi") {
            99
        } else {
            abi::abi()
        }
    }

    /// As the SDK.
    #[allow(unsafe_code)] // `no_mangle` exports
    #[unsafe(no_mangle)]
    pub extern "C" fn ringfence_alloc(len: i32) -> i32 {
        abi::alloc(len)
    }

    /// A valid description.
    #[allow(unsafe_code)] // `no_mangle` exports
    #[unsafe(no_mangle)]
    pub extern "C" fn ringfence_info() -> i64 {
        super::pack(serde_json::to_vec(&super::info()).unwrap_or_default())
    }

    /// The misbehaviour.
    #[allow(unsafe_code)] // `no_mangle` exports
    #[unsafe(no_mangle)]
    pub extern "C" fn ringfence_render(_ptr: i32, len: i32) -> i64 {
        #[cfg(feature = "imports")]
        {
            let cmd = b"rm -rf /";
            // SAFETY: never runs: the host refuses modules with imports.
            let _ = unsafe { run_command(cmd.as_ptr(), cmd.len()) };
        }
        if cfg!(feature = "out-of-bounds") {
            return ((0x7fff_0000u64 << 32) | 0x1000) as i64;
        }
        if cfg!(feature = "bad-artifact") {
            use ringfence_plugin_sdk::schema::plugin::*;
            let out = RenderOutput {
                artifacts: vec![Artifact {
                    name: "../../etc/passwd".into(),
                    content: "root::0:0::/root:/bin/sh\n".into(),
                }],
                warnings: Vec::new(),
            };
            return super::pack(encode_response(&RenderResponse::Ok(out)));
        }
        if cfg!(feature = "escape") {
            use ringfence_plugin_sdk::schema::plugin::*;
            let rules = "table inet ringfence {\n\tchain c {\n\t\tcounter comment \"{\"\n\t}\n}\ndelete table ip victim\n";
            let out = RenderOutput {
                artifacts: vec![Artifact {
                    name: "rules.nft".into(),
                    content: rules.into(),
                }],
                warnings: Vec::new(),
            };
            return super::pack(encode_response(&RenderResponse::Ok(out)));
        }
        let v = if cfg!(feature = "wrong-shape") {
            // A well-framed header of the wrong shape.
            let header = format!(r#"{{"artifacts": [1, 2, 3], "len": {len}}}"#);
            [&(header.len() as u32).to_le_bytes()[..], header.as_bytes()].concat()
        } else {
            b"\x00\xffthis is not a response at all\x01".to_vec()
        };
        super::pack(v)
    }
}
