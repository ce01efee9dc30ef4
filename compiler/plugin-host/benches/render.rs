//! Render benchmark (`cargo bench -p ringfence-plugin-host --bench render
//! [-- NODES PODS POLICIES]`): the real thing, end to end.
//!
//! The cluster is `ringfence_testkit::synth` at the size of the compiler's own
//! benchmark (`compiler/core/benches/compile.rs`: 1,000 nodes, 30,000 pods,
//! 500 policies; every 50th node Windows, every 100th service a NodePort),
//! compiled with `ringfence_core::compile`. Then:
//!
//! 1. the IR sizes per node (prefixes, rules, chains, endpoints, JSON bytes);
//! 2. plugin load time, compiled by Cranelift and from the disk cache;
//! 3. every node rendered by its backend (nftables or windows-firewall) on
//!    a rayon pool of 2 threads, best of 3 — the goal is under 1 s — and on
//!    1 thread for the parallel speed-up;
//! 4. where one render's time goes (one thread): the host's IR → JSON,
//!    instantiation, copying the input in, the guest call, copying the
//!    output out and parsing it, timed by driving wasmtime step by step as
//!    `Plugin::render` does; the guest call split into decoding the IR
//!    (the example-csv plugin: same SDK decode, trivial render) and the
//!    rest; and the same work compiled natively (decode, render, encode),
//!    for the plugin-vs-native ratio.
//!
//! Times are wall clock around each step, measured here, never inside the
//! host or the plugins.

use std::hint::black_box;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use ringfence_plugin_host::{Host, Limits, NFTABLES_WASM, Plugin};
use ringfence_schema::ir::{NodeIr, Os};
use ringfence_schema::plugin::{RenderResponse, decode_response, encode_response};
use ringfence_testkit::synth::{Params, describe, generate};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, Linker, Module, PoolingAllocationConfig, Store,
};

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// min / median / mean / max of a per-node figure.
fn spread(name: &str, mut v: Vec<usize>) {
    v.sort_unstable();
    let mean = v.iter().sum::<usize>() as f64 / v.len() as f64;
    println!(
        "  {name:<22} min {:>8}  median {:>8}  mean {:>10.1}  max {:>8}",
        v[0],
        v[v.len() / 2],
        mean,
        v[v.len() - 1]
    );
}

/// Best of `runs` wall-clock times of `f`.
fn best_of(runs: usize, mut f: impl FnMut()) -> Duration {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn backend<'h>(host: &'h Host, ir: &NodeIr) -> &'h Plugin {
    host.builtin(&ir.backend)
        .unwrap_or_else(|| panic!("node {} needs backend {}", ir.node, ir.backend))
}

/// Render every node with its backend; returns the bytes of all artifacts.
/// Nodes per instance, as `ringfence_driver::render` chunks them.
const CHUNK: usize = 16;

fn render_all(host: &Host, irs: &[NodeIr]) -> usize {
    irs.par_iter()
        .map(|ir| {
            let out = backend(host, ir)
                .render(ir)
                .unwrap_or_else(|e| panic!("{e}"));
            out.artifacts.iter().map(|a| a.content.len()).sum::<usize>()
        })
        .sum()
}

/// As the compiler renders (`ringfence_driver::render`): runs of up to
/// `chunk` consecutive nodes with the same backend share one instance.
fn render_chunked(host: &Host, irs: &[NodeIr], chunk: usize) -> usize {
    let mut runs: Vec<Vec<&NodeIr>> = Vec::new();
    for ir in irs {
        match runs.last_mut() {
            Some(run) if run[0].os == ir.os && run.len() < chunk => run.push(ir),
            _ => runs.push(vec![ir]),
        }
    }
    runs.par_iter()
        .map(|run| {
            backend(host, run[0])
                .render_chunk(run)
                .into_iter()
                .map(|r| {
                    let out = r.unwrap_or_else(|e| panic!("{e}"));
                    out.artifacts.iter().map(|a| a.content.len()).sum::<usize>()
                })
                .sum::<usize>()
        })
        .sum()
}

/// The steps of `Plugin::render`, each timed (summed over the nodes).
#[derive(Default)]
struct Steps {
    to_json: Duration,
    instantiate: Duration,
    input: Duration,
    call: Duration,
    output: Duration,
    parse: Duration,
    release: Duration,
}

/// Drive the nftables module the way `Plugin::render` does, with the engine
/// configured as the host configures it (`src/slots.rs`), timing each step.
fn steps(irs: &[&NodeIr]) -> Steps {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_core_instances(8)
        .total_memories(8)
        .max_memory_size(Limits::default().memory_bytes)
        .linear_memory_keep_resident(4 << 20);
    let mut config = Config::new();
    config.consume_fuel(true);
    config.epoch_interruption(true);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config).unwrap();
    let module = Module::new(&engine, NFTABLES_WASM).unwrap();
    let pre = Linker::new(&engine).instantiate_pre(&module).unwrap();
    let mut s = Steps::default();
    for ir in irs {
        let t = Instant::now();
        let json = serde_json::to_vec(ir).unwrap();
        s.to_json += t.elapsed();

        let t = Instant::now();
        let mut store = Store::new(&engine, ());
        store.set_fuel(Limits::default().fuel).unwrap();
        store.set_epoch_deadline(u64::MAX / 2);
        let instance = pre.instantiate(&mut store).unwrap();
        s.instantiate += t.elapsed();

        let t = Instant::now();
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut store, "ringfence_alloc")
            .unwrap();
        let ptr = alloc.call(&mut store, json.len() as i32).unwrap();
        let memory = instance.get_memory(&mut store, "memory").unwrap();
        memory
            .write(&mut store, ptr as u32 as usize, &json)
            .unwrap();
        s.input += t.elapsed();

        let t = Instant::now();
        let render = instance
            .get_typed_func::<(i32, i32), i64>(&mut store, "ringfence_render")
            .unwrap();
        let packed = render.call(&mut store, (ptr, json.len() as i32)).unwrap() as u64;
        s.call += t.elapsed();

        let t = Instant::now();
        let (ptr, len) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
        let mut out = vec![0u8; len];
        memory.read(&store, ptr, &mut out).unwrap();
        s.output += t.elapsed();

        let t = Instant::now();
        let response = decode_response(&out).unwrap();
        assert!(matches!(response, RenderResponse::Ok(_)));
        s.parse += t.elapsed();

        let t = Instant::now();
        drop(store);
        s.release += t.elapsed();
    }
    s
}

fn main() {
    let p = Params::from_args(std::env::args().skip(1));
    let t = Instant::now();
    let s = generate(&p);
    println!(
        "input: {} (generated in {})",
        describe(&s),
        secs(t.elapsed())
    );
    let t = Instant::now();
    let (compiled, _) = ringfence_core::compile(&s.intent, &s.inventory);
    let irs = compiled
        .expect("the synthetic intent compiles")
        .into_nodes();
    println!(
        "compiled into {} node IRs in {}",
        irs.len(),
        secs(t.elapsed())
    );
    let n = irs.len();

    // 1. IR sizes.
    let json: Vec<usize> = irs
        .iter()
        .map(|ir| serde_json::to_vec(ir).unwrap().len())
        .collect();
    let linux = irs.iter().filter(|ir| ir.os == Os::Linux).count();
    println!(
        "IR per node ({linux} Linux/nftables, {} Windows/windows-firewall; {:.1} MB of IR JSON in all):",
        n - linux,
        json.iter().sum::<usize>() as f64 / 1e6
    );
    spread(
        "set prefixes",
        irs.iter()
            .map(|ir| ir.sets.iter().map(|s| s.len()).sum())
            .collect(),
    );
    spread("sets", irs.iter().map(|ir| ir.sets.len()).collect());
    spread(
        "rules",
        irs.iter()
            .map(|ir| ir.chains.iter().map(|c| c.rules.len()).sum())
            .collect(),
    );
    spread("chains", irs.iter().map(|ir| ir.chains.len()).collect());
    spread(
        "endpoints",
        irs.iter().map(|ir| ir.endpoints.len()).collect(),
    );
    spread(
        "exposures",
        irs.iter().map(|ir| ir.exposures.len()).collect(),
    );
    spread("IR JSON bytes", json.clone());

    // 2. Plugin load.
    let t = Instant::now();
    let host = Host::with_cache(Limits::default(), None).unwrap();
    println!(
        "host start, both built-ins compiled by Cranelift: {}",
        secs(t.elapsed())
    );
    let cache = std::env::temp_dir().join(format!("ringfence-bench-cache-{}", std::process::id()));
    Host::with_cache(Limits::default(), Some(cache.clone())).unwrap();
    let t = Instant::now();
    Host::with_cache(Limits::default(), Some(cache.clone())).unwrap();
    println!(
        "host start from the compiled-module cache: {}",
        secs(t.elapsed())
    );

    // 3. The whole cluster.
    let pool = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    };
    let two = pool(2);
    let mut bytes = 0;
    let total = best_of(3, || {
        bytes = two.install(|| render_chunked(&host, &irs, CHUNK));
    });
    println!(
        "render all {n} nodes, each with its backend, 2 threads, chunks of {CHUNK} nodes per instance: {} (best of 3; {:.2} ms/node; {:.1} MB of artifacts)",
        secs(total),
        total.as_secs_f64() * 1e3 / n as f64,
        bytes as f64 / 1e6
    );
    let alone = best_of(3, || {
        black_box(two.install(|| render_all(&host, &irs)));
    });
    println!(
        "the same, one instance per node: {} (best of 3; {:.2}x the chunked time)",
        secs(alone),
        alone.as_secs_f64() / total.as_secs_f64()
    );
    let one = best_of(1, || {
        black_box(pool(1).install(|| render_chunked(&host, &irs, CHUNK)));
    });
    println!(
        "render all {n} nodes on 1 thread, chunked: {} ({:.2} ms/node; speed-up on 2 threads {:.2}x)",
        secs(one),
        one.as_secs_f64() * 1e3 / n as f64,
        one.as_secs_f64() / total.as_secs_f64()
    );

    // 4. Where the time goes: Linux nodes, one thread.
    let sample: Vec<&NodeIr> = irs
        .iter()
        .filter(|ir| ir.os == Os::Linux)
        .take(200)
        .collect();
    let per = |d: Duration| format!("{:.3} ms/node", d.as_secs_f64() * 1e3 / sample.len() as f64);
    let nft = host.builtin("nftables").unwrap();
    let plugin = best_of(3, || {
        for ir in &sample {
            black_box(nft.render(ir).unwrap());
        }
    });
    let st = (0..3)
        .map(|_| steps(&sample))
        .min_by_key(|s| s.call)
        .unwrap();
    let csv = host
        .load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../plugins/dist/example-csv.wasm"),
            None,
        )
        .unwrap();
    let decode_only = best_of(3, || {
        for ir in &sample {
            black_box(csv.render(ir).unwrap());
        }
    });
    // The guest's work, natively: decode + validate, render, encode.
    let inputs: Vec<Vec<u8>> = sample
        .iter()
        .map(|ir| serde_json::to_vec(ir).unwrap())
        .collect();
    let native_decode = best_of(3, || {
        for j in &inputs {
            let ir: NodeIr = serde_json::from_slice(j).unwrap();
            ir.validate().unwrap();
            black_box(ir);
        }
    });
    let native_render = best_of(3, || {
        for ir in &sample {
            black_box(ringfence_nftables::render(black_box(ir)));
        }
    });
    let responses: Vec<RenderResponse> = sample
        .iter()
        .map(|ir| RenderResponse::Ok(ringfence_nftables::render(ir)))
        .collect();
    let native_encode = best_of(3, || {
        for r in &responses {
            black_box(encode_response(r));
        }
    });
    let native_guest = native_decode + native_render + native_encode;
    println!(
        "where the time goes, nftables, one thread, {} Linux nodes:",
        sample.len()
    );
    println!("  Plugin::render, all of it:            {}", per(plugin));
    println!(
        "  host: IR -> JSON                      {}",
        per(st.to_json)
    );
    println!(
        "  host: instantiate (store + instance)  {}",
        per(st.instantiate)
    );
    println!("  host: copy the IR in                  {}", per(st.input));
    println!("  guest: ringfence_render               {}", per(st.call));
    println!(
        "    of which decoding the IR (~ example-csv's call: {} for the whole render)",
        per(decode_only)
    );
    println!("  host: copy the response out           {}", per(st.output));
    println!("  host: parse the response              {}", per(st.parse));
    println!(
        "  host: drop the instance               {}",
        per(st.release)
    );
    println!(
        "  native, the guest's work: decode + validate {}, render {}, encode {}: {}",
        per(native_decode),
        per(native_render),
        per(native_encode),
        per(native_guest)
    );
    println!(
        "  ratio, guest call / the same work native: {:.2}x; Plugin::render / native render only: {:.2}x",
        st.call.as_secs_f64() / native_guest.as_secs_f64(),
        plugin.as_secs_f64() / native_render.as_secs_f64()
    );

    // Windows nodes, for completeness.
    let windows: Vec<&NodeIr> = irs.iter().filter(|ir| ir.os == Os::Windows).collect();
    if !windows.is_empty() {
        let w = host.builtin("windows-firewall").unwrap();
        let plugin = best_of(3, || {
            for ir in &windows {
                black_box(w.render(ir).unwrap());
            }
        });
        let native = best_of(3, || {
            for ir in &windows {
                black_box(ringfence_windows_firewall::render(black_box(ir)).unwrap());
            }
        });
        let per_node = |d: Duration| d.as_secs_f64() * 1e3 / windows.len() as f64;
        println!(
            "windows-firewall, one thread, {} nodes: plugin {:.3} ms/node, native render only {:.3} ms/node ({:.2}x)",
            windows.len(),
            per_node(plugin),
            per_node(native),
            plugin.as_secs_f64() / native.as_secs_f64()
        );
    }

    // Fuel the largest node needs, against the default limit.
    let largest = irs
        .iter()
        .max_by_key(|ir| ir.sets.iter().map(|s| s.len()).sum::<usize>())
        .unwrap();
    let (mut lo, mut hi) = (0u64, Limits::default().fuel);
    while hi - lo > hi / 100 {
        let mid = lo + (hi - lo) / 2;
        let h = Host::with_cache(
            Limits {
                fuel: mid,
                ..Limits::default()
            },
            Some(cache.clone()),
        )
        .unwrap();
        if backend(&h, largest).render(largest).is_ok() {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    println!(
        "fuel to render the largest node ({}): ~{:.2e} ({:.2} % of the default limit)",
        largest.node,
        hi as f64,
        hi as f64 * 100.0 / Limits::default().fuel as f64
    );
    let _ = std::fs::remove_dir_all(&cache);
}
