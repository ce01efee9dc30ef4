//! The engine, and the instance slots renders take turns in.
//!
//! The engine uses wasmtime's pooling allocator: memory for a fixed number of
//! instances is reserved once, and after a render up to [`KEEP_RESIDENT`]
//! bytes of its memory are reset with `memset` instead of being unmapped, so
//! the next render does not fault in fresh pages (measured: ~0.45 ms of a
//! ~3 ms render of a 6,000-prefix node, `benches/render.rs`). The pool has a
//! fixed size, so [`Slots`] makes callers wait for a free slot rather than
//! fail when more threads render at once than it holds. Where the pool
//! cannot be reserved (a capped address space), the engine allocates on
//! demand and slots are unbounded.

use std::sync::{Condvar, Mutex, PoisonError};

use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::{Limits, PluginError};

/// Memory per slot reset by `memset` after a render: what a large node of
/// the synthetic cluster touches (3–4 MiB). Beyond it pages are returned to
/// the kernel: a node far larger (20 MiB for 20,000 pods) is not zeroed by
/// hand for a next render that may never come (~2 ms of a one-shot render).
pub(crate) const KEEP_RESIDENT: usize = 4 << 20;
/// Tables a module may have, and their size; the store's limiter says the same.
pub(crate) const TABLES: u32 = 4;
/// See [`TABLES`].
pub(crate) const TABLE_ELEMENTS: usize = 100_000;

/// The engine for `limits`, and the slots to take turns in.
pub(crate) fn engine(limits: &Limits) -> Result<(Engine, Slots), PluginError> {
    let base = || crate::engine_config::code(limits.timeout.is_some());
    // Two per core: rendering threads plus callers that load plugins.
    let n = std::thread::available_parallelism()
        .map_or(4, |n| n.get())
        .saturating_mul(2)
        .clamp(8, 256);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_core_instances(n as u32)
        .total_memories(n as u32)
        .total_tables(n as u32 * TABLES)
        .max_memories_per_module(1)
        .max_tables_per_module(TABLES)
        .table_elements(TABLE_ELEMENTS)
        // The store's limiter refuses growth beyond the cap first, and says so.
        .max_memory_size(limits.memory_bytes.next_multiple_of(1 << 16))
        .linear_memory_keep_resident(KEEP_RESIDENT);
    let mut config = base();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    if let Ok(engine) = Engine::new(&config) {
        return Ok((engine, Slots::new(Some(n))));
    }
    let engine = Engine::new(&base()).map_err(|e| PluginError::Host(format!("{e:#}")))?;
    Ok((engine, Slots::new(None)))
}

/// A counting semaphore over the pool's instance slots.
pub(crate) struct Slots {
    free: Option<Mutex<usize>>,
    freed: Condvar,
}

impl Slots {
    /// `Some(n)` slots, or `None` for no bound.
    pub(crate) fn new(n: Option<usize>) -> Self {
        Slots {
            free: n.map(Mutex::new),
            freed: Condvar::new(),
        }
    }

    /// Wait for a free slot; it is given back when the guard drops.
    pub(crate) fn take(&self) -> Slot<'_> {
        if let Some(free) = &self.free {
            let mut n = free.lock().unwrap_or_else(PoisonError::into_inner);
            while *n == 0 {
                n = self.freed.wait(n).unwrap_or_else(PoisonError::into_inner);
            }
            *n -= 1;
        }
        Slot(self)
    }
}

/// A slot held for one instance.
pub(crate) struct Slot<'a>(&'a Slots);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Some(free) = &self.0.free {
            *free.lock().unwrap_or_else(PoisonError::into_inner) += 1;
            self.0.freed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn no_more_holders_than_slots() {
        let slots = Arc::new(Slots::new(Some(3)));
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let threads: Vec<_> = (0..12)
            .map(|_| {
                let (slots, now, most) = (slots.clone(), now.clone(), most.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let _slot = slots.take();
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(n, Ordering::SeqCst);
                        std::thread::yield_now();
                        now.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let most = most.load(Ordering::SeqCst);
        assert!((1..=3).contains(&most), "{most} held at once");
    }
}
