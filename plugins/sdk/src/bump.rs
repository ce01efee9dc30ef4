//! A bump allocator for plugins: every render runs in a fresh instance that
//! is dropped afterwards, so nothing needs to be reused.
//!
//! Memory comes from `memory.grow` in steps of at least [`STEP`] bytes and is
//! handed out in order. Freeing or resizing the most recent allocation works
//! in place (a growing `String` or `Vec` usually is the most recent one);
//! anything else freed is simply left behind. When `memory.grow` fails (the
//! host's memory cap), allocation returns null and the plugin aborts, which
//! the host reports as hitting the cap.

#![allow(unsafe_code)] // implementing `GlobalAlloc`; see the SAFETY notes

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// A WebAssembly page.
const PAGE: usize = 65536;
/// Least memory asked from the host at a time: 1 MiB (few `memory.grow` calls).
pub const STEP: usize = 16 * PAGE;

/// The allocator: a region `[top, end)` still free at the end of memory.
///
/// `wasm32-unknown-unknown` has one thread, so the atomics are plain loads
/// and stores; they only make the statics `Sync` without unsafe code.
pub struct Bump {
    top: AtomicUsize,
    end: AtomicUsize,
}

impl Bump {
    /// An allocator that has not asked for memory yet.
    pub const fn new() -> Self {
        Bump {
            top: AtomicUsize::new(0),
            end: AtomicUsize::new(0),
        }
    }

    /// Make at least `bytes` more available after `end` (contiguous if the
    /// new pages follow `end`, else a fresh region). Returns whether it could.
    fn grow(&self, bytes: usize) -> bool {
        let pages = bytes.max(STEP).div_ceil(PAGE);
        let Some(base) = memory_grow(pages) else {
            return false;
        };
        if base != self.end.load(Relaxed) {
            // Someone else grew memory (nothing in a plugin does), or first use.
            self.top.store(base, Relaxed);
        }
        self.end.store(base + pages * PAGE, Relaxed);
        true
    }

    /// `[start, start + size)` aligned to `align`, bumping `top`.
    fn take(&self, size: usize, align: usize) -> *mut u8 {
        for _ in 0..2 {
            let top = self.top.load(Relaxed);
            let start = match top.checked_add(align - 1) {
                Some(t) => t & !(align - 1),
                None => return core::ptr::null_mut(),
            };
            match start.checked_add(size) {
                Some(new_top) if top != 0 && new_top <= self.end.load(Relaxed) => {
                    self.top.store(new_top, Relaxed);
                    return start as *mut u8;
                }
                _ => {
                    // After growing, a fresh region fits `size` at any alignment
                    // up to a page (allocations asking more are refused below).
                    if align > PAGE || !self.grow(size.saturating_add(align)) {
                        return core::ptr::null_mut();
                    }
                }
            }
        }
        core::ptr::null_mut()
    }
}

impl Default for Bump {
    fn default() -> Self {
        Bump::new()
    }
}

/// `memory.grow` by `pages`: the address where the new pages start.
#[cfg(target_arch = "wasm32")]
fn memory_grow(pages: usize) -> Option<usize> {
    match core::arch::wasm32::memory_grow(0, pages) {
        usize::MAX => None,
        old => Some(old * PAGE),
    }
}

/// Natively (the SDK's own tests) there is no memory to grow.
#[cfg(not(target_arch = "wasm32"))]
fn memory_grow(_pages: usize) -> Option<usize> {
    None
}

// SAFETY: `take` returns null or the start of `size` bytes aligned to
// `align` that no earlier allocation overlaps: `top` only moves forward past
// what it hands out, except in `dealloc` / `realloc`, which move it back
// only over the most recent allocation, the one being freed or resized.
// All memory below `end` exists: it came from `memory.grow`.
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.take(layout.size(), layout.align())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Only the most recent allocation can be given back.
        if ptr as usize + layout.size() == self.top.load(Relaxed) {
            self.top.store(ptr as usize, Relaxed);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (old, at) = (layout.size(), ptr as usize);
        if at + old == self.top.load(Relaxed) {
            // The most recent allocation: resize in place if memory allows.
            let new_top = at + new_size;
            if new_top <= self.end.load(Relaxed) {
                self.top.store(new_top, Relaxed);
                return ptr;
            }
            let end = self.end.load(Relaxed);
            // If the new pages do not follow, `grow` starts a fresh region
            // (`top` moves) and the copy below applies.
            if self.grow(new_top - end)
                && self.end.load(Relaxed) >= new_top
                && self.top.load(Relaxed) == at + old
            {
                self.top.store(new_top, Relaxed);
                return ptr;
            }
        } else if new_size <= old {
            return ptr;
        }
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return core::ptr::null_mut();
        };
        // SAFETY: as for `alloc`.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: `ptr` holds `old` readable bytes (the caller's
            // allocation) and `new` at least `min(old, new_size)` writable
            // ones that do not overlap it (fresh from `take`).
            unsafe { core::ptr::copy_nonoverlapping(ptr, new, old.min(new_size)) };
        }
        new
    }
}
