//! Backend plugins: WebAssembly modules that render a node's IR, run in a
//! wasmtime sandbox.
//!
//! The ABI is in `ringfence_schema::plugin` and `schema/docs/plugins.md`: a
//! core module that imports nothing and exchanges JSON through its own
//! memory. A [`Host`] owns one wasmtime `Engine` and the
//! built-in backends (`nftables`, `windows-firewall`, embedded in this crate);
//! [`Host::load`] adds a third-party plugin, pinned by SHA-256.
//!
//! A [`Plugin`] is compiled once and shared by every thread; each
//! [`Plugin::render`] gets a fresh instance with a fuel budget, a memory cap
//! and optionally a wall-clock backstop, so one bad node cannot affect
//! another. Loading refuses any module that imports anything, lacks an
//! export, or speaks another ABI version. The built-in backends are compiled
//! at build time (`build.rs`), others are cached on disk (see `cache.rs`); instances come from a pool of pre-reserved slots
//! (`slots.rs`), so a render does not map, fault in and unmap fresh memory.

mod cache;
mod check;
mod engine_config;
mod error;
mod slots;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ringfence_schema::digest::sha256_hex;
use ringfence_schema::ir::NodeIr;
use ringfence_schema::net::AddressSet;
use ringfence_schema::plugin::{
    NodeWithSetRefs, PLUGIN_ABI, PluginInfo, RenderOutput, RenderResponse, decode_response,
    valid_artifact_name,
};
use wasmtime::{
    Engine, ExternType, Instance, InstancePre, Linker, Module, ResourceLimiter, Store, Trap,
    ValType,
};

use slots::Slots;

pub use check::{Capability, CapabilityProblem};
pub use error::PluginError;

/// The built-in nftables backend (`plugins/dist/nftables.wasm`).
pub const NFTABLES_WASM: &[u8] = include_bytes!("../../../plugins/dist/nftables.wasm");
/// The built-in Windows firewall backend (`plugins/dist/windows-firewall.wasm`).
pub const WINDOWS_FIREWALL_WASM: &[u8] =
    include_bytes!("../../../plugins/dist/windows-firewall.wasm");
/// The built-in backends compiled at build time (`build.rs`): the wasm's hex
/// SHA-256, then wasmtime's artifact; empty in a cross build.
const NFTABLES_CWASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/nftables.cwasm"));
/// See [`NFTABLES_CWASM`].
const WINDOWS_FIREWALL_CWASM: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/windows-firewall.cwasm"));

/// Resource limits for one render.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Fuel (≈ wasm instructions) per call. Deterministic: the same plugin
    /// and input always stop at the same point.
    pub fuel: u64,
    /// Most linear memory an instance may have, bytes.
    pub memory_bytes: usize,
    /// Largest response a plugin may return, bytes (also caps the total
    /// size of its artifacts).
    pub max_output_bytes: usize,
    /// Wall-clock backstop per call; `None` relies on fuel alone.
    pub timeout: Option<Duration>,
}

impl Default for Limits {
    /// Fuel: ~200 times what the largest node of the 1,000-node synthetic
    /// cluster (6,000 set prefixes, 250 rules) needs (2.5 × 10⁷,
    /// `benches/render.rs`), and a few seconds of a
    /// runaway loop. Memory: room for a few hundred thousand prefixes.
    fn default() -> Self {
        Limits {
            fuel: 5_000_000_000,
            memory_bytes: 512 << 20,
            max_output_bytes: 128 << 20,
            timeout: Some(Duration::from_secs(60)),
        }
    }
}

/// How often the epoch ticks when a timeout is set.
const TICK: Duration = Duration::from_millis(10);

/// The plugin runtime: one engine, the built-in backends, loaded plugins.
pub struct Host {
    engine: Engine,
    slots: Arc<Slots>,
    limits: Limits,
    cache: Option<PathBuf>,
    builtins: Vec<Plugin>,
    ticker: Option<Arc<AtomicBool>>,
}

impl Host {
    /// A host with the default compiled-module cache (see [`Host::with_cache`]).
    pub fn new(limits: Limits) -> Result<Host, PluginError> {
        Host::with_cache(limits, cache::default_dir())
    }

    /// A host that caches compiled modules in `cache` (`None`: no disk
    /// cache), with the built-in backends loaded.
    pub fn with_cache(limits: Limits, cache: Option<PathBuf>) -> Result<Host, PluginError> {
        let (engine, slots) = slots::engine(&limits)?;
        let ticker = limits.timeout.map(|_| {
            let stop = Arc::new(AtomicBool::new(false));
            let (engine, flag) = (engine.clone(), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("ringfence-epoch".into())
                .spawn(move || {
                    while !flag.load(Ordering::Relaxed) {
                        std::thread::sleep(TICK);
                        engine.increment_epoch();
                    }
                })
                .map(|_| stop)
        });
        let ticker = ticker
            .transpose()
            .map_err(|e| PluginError::Host(format!("cannot start the epoch thread: {e}")))?;
        let mut host = Host {
            engine,
            slots: Arc::new(slots),
            limits,
            cache,
            builtins: Vec::new(),
            ticker,
        };
        for (file, wasm, precompiled) in [
            ("nftables.wasm", NFTABLES_WASM, NFTABLES_CWASM),
            (
                "windows-firewall.wasm",
                WINDOWS_FIREWALL_WASM,
                WINDOWS_FIREWALL_CWASM,
            ),
        ] {
            let p = host.compile(file, wasm, precompiled)?;
            host.builtins.push(p);
        }
        Ok(host)
    }

    /// The limits every render of this host's plugins runs under.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// A built-in backend by name (`nftables`, `windows-firewall`).
    pub fn builtin(&self, name: &str) -> Option<&Plugin> {
        self.builtins.iter().find(|p| p.info.name == name)
    }

    /// Names of the built-in backends.
    pub fn builtin_names(&self) -> impl Iterator<Item = &str> {
        self.builtins.iter().map(|p| p.info.name.as_str())
    }

    /// Load a plugin file. With `expected_sha256` (hex), refuse a file with
    /// another digest before compiling anything ([`read_pinned`]).
    pub fn load(&self, path: &Path, expected_sha256: Option<&str>) -> Result<Plugin, PluginError> {
        let wasm = read_pinned(path, expected_sha256)?;
        self.from_bytes(&path.display().to_string(), &wasm)
    }

    /// Load a plugin from its bytes; `label` names it in errors until it has
    /// told its name.
    pub fn from_bytes(&self, label: &str, wasm: &[u8]) -> Result<Plugin, PluginError> {
        self.compile(label, wasm, &[])
    }

    /// [`Host::from_bytes`], taking the module from `precompiled` (a
    /// built-in's build-time artifact) when it fits this engine.
    fn compile(
        &self,
        label: &str,
        wasm: &[u8],
        precompiled: &'static [u8],
    ) -> Result<Plugin, PluginError> {
        let sha256 = sha256_hex(wasm);
        let embedded = precompiled
            .strip_prefix(sha256.as_bytes())
            .and_then(|artifact| cache::embedded(&self.engine, artifact));
        let module =
            match embedded {
                Some(m) => m,
                None => cache::compile(&self.engine, wasm, &sha256, self.cache.as_deref())
                    .map_err(|e| PluginError::Compile {
                        plugin: label.to_owned(),
                        message: format!("{e:#}"),
                    })?,
            };
        check_imports(label, &module)?;
        check_exports(label, &module)?;
        let chunks = CHUNK_EXPORTS
            .iter()
            .all(|(name, params, results)| exports(&module, name, params, results));
        // Imports are checked above (there are none), so this only prepares
        // instantiation once instead of on every render.
        let pre = Linker::new(&self.engine)
            .instantiate_pre(&module)
            .map_err(|e| PluginError::Compile {
                plugin: label.to_owned(),
                message: format!("{e:#}"),
            })?;
        let mut plugin = Plugin {
            info: PluginInfo {
                name: label.to_owned(),
                version: String::new(),
                abi: 0,
                os: ringfence_schema::ir::Os::Linux,
                capabilities: Default::default(),
                description: String::new(),
            },
            sha256,
            engine: self.engine.clone(),
            pre,
            slots: Arc::clone(&self.slots),
            limits: self.limits,
            chunks,
        };
        plugin.info = plugin.read_info(label)?;
        Ok(plugin)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(stop) = &self.ticker {
            stop.store(true, Ordering::Relaxed);
        }
    }
}

/// Read a plugin file and, with `expected_sha256` (hex), refuse it unless
/// its digest is that one: the pin rule, for `render`, `compile` and
/// `check` alike.
pub fn read_pinned(path: &Path, expected_sha256: Option<&str>) -> Result<Vec<u8>, PluginError> {
    let wasm = std::fs::read(path).map_err(|source| PluginError::Read {
        path: path.to_owned(),
        source,
    })?;
    if let Some(expected) = expected_sha256 {
        let actual = sha256_hex(&wasm);
        if !actual.eq_ignore_ascii_case(expected.trim()) {
            return Err(PluginError::Digest {
                path: path.to_owned(),
                expected: expected.to_owned(),
                actual,
            });
        }
    }
    Ok(wasm)
}

fn check_imports(label: &str, module: &Module) -> Result<(), PluginError> {
    let imports: Vec<String> = module
        .imports()
        .map(|i| {
            let kind = match i.ty() {
                ExternType::Func(_) => "function",
                ExternType::Global(_) => "global",
                ExternType::Table(_) => "table",
                ExternType::Memory(_) => "memory",
                ExternType::Tag(_) => "tag",
            };
            format!("{}::{} ({kind})", i.module(), i.name())
        })
        .collect();
    if imports.is_empty() {
        Ok(())
    } else {
        Err(PluginError::Imports {
            plugin: label.to_owned(),
            imports,
        })
    }
}

/// The exports the ABI requires, with their signatures.
const EXPORTS: [(&str, &[ValType], &[ValType]); 4] = [
    ("ringfence_abi", &[], &[ValType::I32]),
    ("ringfence_alloc", &[ValType::I32], &[ValType::I32]),
    ("ringfence_info", &[], &[ValType::I64]),
    (
        "ringfence_render",
        &[ValType::I32, ValType::I32],
        &[ValType::I64],
    ),
];

/// The optional exports for rendering a chunk of nodes in one instance.
const CHUNK_EXPORTS: [(&str, &[ValType], &[ValType]); 2] = [
    (
        "ringfence_sets",
        &[ValType::I32, ValType::I32],
        &[ValType::I32],
    ),
    (
        "ringfence_render_with_sets",
        &[ValType::I32, ValType::I32],
        &[ValType::I64],
    ),
];

/// Whether `module` exports `name` with this signature.
fn exports(module: &Module, name: &str, params: &[ValType], results: &[ValType]) -> bool {
    matches!(module.get_export(name), Some(ExternType::Func(f))
        if f.params().len() == params.len()
            && f.results().len() == results.len()
            && f.params().zip(params).all(|(a, b)| ValType::eq(&a, b))
            && f.results().zip(results).all(|(a, b)| ValType::eq(&a, b)))
}

fn check_exports(label: &str, module: &Module) -> Result<(), PluginError> {
    let err = |message: String| PluginError::Exports {
        plugin: label.to_owned(),
        message,
    };
    match module.get_export("memory") {
        Some(ExternType::Memory(m)) if !m.is_64() && !m.is_shared() => {}
        Some(_) => return Err(err("`memory` is not a 32-bit, unshared memory".into())),
        None => return Err(err("it does not export `memory`".into())),
    }
    let show = |v: &[ValType]| {
        v.iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (name, params, results) in EXPORTS {
        let sig = format!("({}) -> ({})", show(params), show(results));
        let Some(ExternType::Func(f)) = module.get_export(name) else {
            return Err(err(format!(
                "it does not export the function `{name}` {sig}"
            )));
        };
        if !exports(module, name, params, results) {
            return Err(err(format!(
                "`{name}` has type ({}) -> ({}), expected {sig}",
                show(&f.params().collect::<Vec<_>>()),
                show(&f.results().collect::<Vec<_>>())
            )));
        }
    }
    Ok(())
}

/// A loaded backend. Cheap to share: `&Plugin` is `Send + Sync`, and every
/// render uses its own store and instance.
pub struct Plugin {
    /// What the plugin says about itself.
    pub info: PluginInfo,
    /// Hex SHA-256 of the `.wasm`.
    pub sha256: String,
    engine: Engine,
    pre: InstancePre<Limiter>,
    slots: Arc<Slots>,
    limits: Limits,
    /// Whether it has the optional exports for rendering chunks of nodes.
    chunks: bool,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("info", &self.info)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

/// Store data: the memory cap, and whether the plugin ran into it.
struct Limiter {
    memory_bytes: usize,
    hit: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.hit = true;
            wasmtime::bail!("memory cap of {} bytes reached", self.memory_bytes);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= slots::TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        1
    }
    fn tables(&self) -> usize {
        slots::TABLES as usize
    }
    fn memories(&self) -> usize {
        1
    }
}

/// One instance of a plugin for one call. Fields drop in order: the store
/// (and its instance) before the slot it occupies is given back.
struct Call<'p> {
    plugin: &'p Plugin,
    label: &'p str,
    node: &'p str,
    store: Store<Limiter>,
    instance: Instance,
    _slot: slots::Slot<'p>,
}

impl Plugin {
    /// The plugin's name (from its info).
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// Render one node. The plugin gets a fresh instance and this host's
    /// limits; whatever it does, the host survives and the error says what
    /// happened.
    pub fn render(&self, ir: &NodeIr) -> Result<RenderOutput, PluginError> {
        let json = serde_json::to_vec(ir)
            .map_err(|e| PluginError::Host(format!("cannot serialise the IR: {e}")))?;
        self.render_json(&ir.node, &json)
    }

    /// [`Plugin::render`] of the node named `node` whose IR the caller has
    /// already serialised (`json`: the bytes `serde_json::to_vec` gives).
    pub fn render_json(&self, node: &str, json: &[u8]) -> Result<RenderOutput, PluginError> {
        let mut call = self.instantiate(&self.info.name, node)?;
        let bytes = call.exchange(json, "ringfence_render")?;
        self.response(node, &bytes)
    }

    /// Render several nodes, with the same results as [`Plugin::render`] of
    /// each, in order. A plugin with the optional chunk exports renders them
    /// in one instance that reads the sets they share once (each node with
    /// the full fuel budget); after any failure there, the rest are rendered
    /// one by one, so results and errors do not depend on the chunking.
    pub fn render_chunk(&self, irs: &[&NodeIr]) -> Vec<Result<RenderOutput, PluginError>> {
        let mut out: Vec<_> = match self.chunks && irs.len() > 1 {
            true => self.render_shared(irs).into_iter().map(Ok).collect(),
            false => Vec::new(),
        };
        let done = out.len();
        out.extend(irs[done..].iter().map(|ir| self.render(ir)));
        out
    }

    /// Render `irs` in one instance until the first failure; the outputs
    /// of the nodes before it.
    fn render_shared(&self, irs: &[&NodeIr]) -> Vec<RenderOutput> {
        let mut done = Vec::new();
        // Each distinct set contents once; every node's sets as indexes.
        // Looked up by name (cheap to hash), then compared whole: sets of the
        // same name usually, but need not, hold the same addresses.
        let mut by_name: HashMap<&str, Vec<u32>> = HashMap::new();
        let mut table: Vec<&AddressSet> = Vec::new();
        let refs: Vec<Vec<u32>> = irs
            .iter()
            .map(|ir| {
                ir.sets
                    .iter()
                    .map(|s| {
                        let same = by_name.entry(&s.name).or_default();
                        let found = same.iter().copied().find(|&i| {
                            let t = table[i as usize];
                            t.v4 == s.v4 && t.v6 == s.v6
                        });
                        found.unwrap_or_else(|| {
                            table.push(s);
                            let i = (table.len() - 1) as u32;
                            same.push(i);
                            i
                        })
                    })
                    .collect()
            })
            .collect();
        let Ok(table) = serde_json::to_vec(&table) else {
            return done;
        };
        let Ok(mut call) = self.instantiate(&self.info.name, &irs[0].node) else {
            return done;
        };
        if !matches!(call.send(&table, "ringfence_sets"), Ok(0)) {
            return done;
        }
        let mut json = Vec::new();
        for (ir, sets) in irs.iter().zip(refs) {
            call.node = &ir.node;
            if self.arm(&mut call.store).is_err() {
                return done;
            }
            let ir = NodeWithSetRefs {
                // Every field but the sets' contents (listed, not `..`, so
                // a new field cannot be forgotten).
                ir: NodeIr {
                    ir_version: ir.ir_version,
                    cluster: ir.cluster.clone(),
                    node: ir.node.clone(),
                    os: ir.os,
                    backend: ir.backend.clone(),
                    addresses: ir.addresses.clone(),
                    pod_cidrs: ir.pod_cidrs.clone(),
                    unknown_pods: ir.unknown_pods,
                    unmanaged: ir.unmanaged.clone(),
                    live: ir.live,
                    endpoints: ir.endpoints.clone(),
                    exposures: ir.exposures.clone(),
                    chains: ir.chains.clone(),
                    sets: ir
                        .sets
                        .iter()
                        .map(|s| AddressSet {
                            name: s.name.clone(),
                            live: s.live,
                            ..AddressSet::default()
                        })
                        .collect(),
                    policies: ir.policies.clone(),
                },
                sets,
            };
            json.clear();
            let rendered = serde_json::to_writer(&mut json, &ir)
                .map_err(|e| PluginError::Host(e.to_string()))
                .and_then(|()| call.exchange(&json, "ringfence_render_with_sets"))
                .and_then(|bytes| self.response(&ir.ir.node, &bytes));
            match rendered {
                Ok(out) => done.push(out),
                Err(_) => return done,
            }
        }
        done
    }

    /// Read and check a `RenderResponse` for `node`.
    fn response(&self, node: &str, bytes: &[u8]) -> Result<RenderOutput, PluginError> {
        let bad = |message: String| PluginError::BadOutput {
            plugin: self.info.name.clone(),
            node: node.to_owned(),
            message,
        };
        let response = decode_response(bytes).map_err(|e| {
            bad(format!(
                "not a RenderResponse ({e}); it starts with {:?}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(60)])
            ))
        })?;
        let out = match response {
            RenderResponse::Ok(out) => out,
            RenderResponse::Error(message) => {
                return Err(PluginError::Refused {
                    plugin: self.info.name.clone(),
                    node: node.to_owned(),
                    message,
                });
            }
        };
        let mut total = 0usize;
        for (i, a) in out.artifacts.iter().enumerate() {
            if !valid_artifact_name(&a.name) {
                return Err(bad(format!(
                    "artifact name {:?} is not [a-z0-9._-]{{1,64}}",
                    a.name
                )));
            }
            if i > 0 && out.artifacts[i - 1].name >= a.name {
                return Err(bad(format!(
                    "artifacts are not sorted and unique at {:?}",
                    a.name
                )));
            }
            total += a.content.len();
        }
        if out.artifacts.is_empty() {
            return Err(bad("no artifacts".into()));
        }
        if total > self.limits.max_output_bytes {
            return Err(bad(format!(
                "artifacts total {total} bytes, more than the limit of {}",
                self.limits.max_output_bytes
            )));
        }
        Ok(out)
    }

    /// What this backend cannot express in `ir`, tied to rules and policies.
    pub fn check(&self, ir: &NodeIr) -> Vec<CapabilityProblem> {
        check::check(&self.info, ir)
    }

    fn instantiate<'p>(&'p self, label: &'p str, node: &'p str) -> Result<Call<'p>, PluginError> {
        let slot = self.slots.take();
        let mut store = Store::new(
            &self.engine,
            Limiter {
                memory_bytes: self.limits.memory_bytes,
                hit: false,
            },
        );
        store.limiter(|l| l);
        self.arm(&mut store)?;
        match self.pre.instantiate(&mut store) {
            Ok(instance) => Ok(Call {
                plugin: self,
                label,
                node,
                store,
                instance,
                _slot: slot,
            }),
            Err(e) => {
                let hit = store.data().hit;
                Err(classify(self, label, node, hit, e))
            }
        }
    }

    /// A full fuel budget and a fresh deadline, for one call.
    fn arm(&self, store: &mut Store<Limiter>) -> Result<(), PluginError> {
        store
            .set_fuel(self.limits.fuel)
            .map_err(|e| PluginError::Host(format!("{e:#}")))?;
        if let Some(t) = self.limits.timeout {
            let ticks = (t.as_millis() / TICK.as_millis()).max(2) as u64;
            store.set_epoch_deadline(ticks);
        }
        Ok(())
    }

    /// Check the ABI version and read the plugin's description.
    fn read_info(&self, label: &str) -> Result<PluginInfo, PluginError> {
        let mut call = self.instantiate(label, "")?;
        let abi = call.func::<(), i32>("ringfence_abi")?;
        let found = abi.call(&mut call.store, ()).map_err(|e| call.failure(e))?;
        if found != PLUGIN_ABI as i32 {
            return Err(PluginError::Abi {
                plugin: label.to_owned(),
                found: found.into(),
                expected: PLUGIN_ABI,
            });
        }
        let info_fn = call.func::<(), i64>("ringfence_info")?;
        let packed = info_fn
            .call(&mut call.store, ())
            .map_err(|e| call.failure(e))?;
        let bytes = call.output(packed)?;
        let bad = |message: String| PluginError::Info {
            plugin: label.to_owned(),
            message,
        };
        let info: PluginInfo = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("`ringfence_info` is not a PluginInfo: {e}")))?;
        if info.abi != PLUGIN_ABI {
            return Err(PluginError::Abi {
                plugin: label.to_owned(),
                found: info.abi.into(),
                expected: PLUGIN_ABI,
            });
        }
        let name_ok = !info.name.is_empty()
            && info.name.len() <= 64
            && info
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            return Err(bad(format!(
                "name {:?} is not [a-z0-9-]{{1,64}}",
                info.name
            )));
        }
        Ok(info)
    }
}

impl Call<'_> {
    fn func<P: wasmtime::WasmParams, R: wasmtime::WasmResults>(
        &mut self,
        name: &str,
    ) -> Result<wasmtime::TypedFunc<P, R>, PluginError> {
        self.instance
            .get_typed_func::<P, R>(&mut self.store, name)
            .map_err(|e| PluginError::Exports {
                plugin: self.label.to_owned(),
                message: format!("`{name}`: {e:#}"),
            })
    }

    fn failure(&self, e: wasmtime::Error) -> PluginError {
        classify(self.plugin, self.label, self.node, self.store.data().hit, e)
    }

    fn bad(&self, message: String) -> PluginError {
        PluginError::BadOutput {
            plugin: self.label.to_owned(),
            node: self.node.to_owned(),
            message,
        }
    }

    /// Call `name(ptr, len) -> i32` on a copy of `bytes`.
    fn send(&mut self, bytes: &[u8], name: &str) -> Result<i32, PluginError> {
        let input = self.input(bytes)?;
        let f = self.func::<(i32, i32), i32>(name)?;
        f.call(&mut self.store, input).map_err(|e| self.failure(e))
    }

    /// Call `name(ptr, len) -> i64` on a copy of `bytes`; the buffer it returns.
    fn exchange(&mut self, bytes: &[u8], name: &str) -> Result<Vec<u8>, PluginError> {
        let input = self.input(bytes)?;
        let f = self.func::<(i32, i32), i64>(name)?;
        let packed = f
            .call(&mut self.store, input)
            .map_err(|e| self.failure(e))?;
        self.output(packed)
    }

    /// Copy `bytes` into a buffer the plugin allocates; returns (ptr, len).
    fn input(&mut self, bytes: &[u8]) -> Result<(i32, i32), PluginError> {
        let len = i32::try_from(bytes.len()).map_err(|_| {
            PluginError::Host(format!("input of {} bytes is too large", bytes.len()))
        })?;
        let alloc = self.func::<i32, i32>("ringfence_alloc")?;
        let ptr = alloc
            .call(&mut self.store, len)
            .map_err(|e| self.failure(e))?;
        let memory = self.memory()?;
        if ptr == 0 {
            return Err(self.bad(format!("`ringfence_alloc({len})` returned null")));
        }
        memory
            .write(&mut self.store, ptr as u32 as usize, bytes)
            .map_err(|_| {
                self.bad(format!(
                    "`ringfence_alloc({len})` returned {ptr:#x}, outside its memory"
                ))
            })?;
        Ok((ptr, len))
    }

    fn memory(&mut self) -> Result<wasmtime::Memory, PluginError> {
        self.instance
            .get_memory(&mut self.store, "memory")
            .ok_or_else(|| PluginError::Exports {
                plugin: self.label.to_owned(),
                message: "it does not export `memory`".into(),
            })
    }

    /// Read the `ptr << 32 | len` buffer a call returned.
    fn output(&mut self, packed: i64) -> Result<Vec<u8>, PluginError> {
        let packed = packed as u64;
        let (ptr, len) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
        let max = self.plugin.limits.max_output_bytes;
        if len > max {
            return Err(self.bad(format!(
                "response of {len} bytes is larger than the limit of {max}"
            )));
        }
        let memory = self.memory()?;
        let mut out = vec![0u8; len];
        memory.read(&self.store, ptr, &mut out).map_err(|_| {
            self.bad(format!(
                "response at {ptr:#x}+{len} lies outside its memory"
            ))
        })?;
        Ok(out)
    }
}

fn classify(p: &Plugin, label: &str, node: &str, hit: bool, e: wasmtime::Error) -> PluginError {
    let (plugin, node) = (label.to_owned(), node.to_owned());
    if hit {
        return PluginError::Memory {
            plugin,
            limit: p.limits.memory_bytes,
            node,
        };
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => PluginError::OutOfFuel {
            plugin,
            fuel: p.limits.fuel,
            node,
        },
        Some(Trap::Interrupt) => PluginError::Timeout {
            plugin,
            seconds: p.limits.timeout.unwrap_or_default().as_secs_f64(),
            node,
        },
        _ => PluginError::Trap {
            plugin,
            node,
            message: format!("{e:#}"),
        },
    }
}
