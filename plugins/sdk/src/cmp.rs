//! `memcmp` and `bcmp` for plugins, eight bytes at a time.
//!
//! On `wasm32-unknown-unknown` these come from `compiler_builtins`, which
//! compares byte by byte (WebAssembly has no compare instruction, unlike
//! `memory.copy` / `memory.fill` for `memcpy` / `memset`). Plugins compare
//! strings a lot — serde matching field names, binary searches over sorted
//! names in `NodeIr::validate` and lookups — and those names share long
//! prefixes (`pod/ns-002/app-036-…`), so the builtin was ~10 % of the
//! nftables plugin's render (`benches/render.rs`). The builtins are weak
//! symbols; these strong ones replace them in every plugin built on the SDK.

use core::cmp::Ordering;

/// Compare `a` and `b` as `memcmp` does (bytes as unsigned, first
/// difference decides), eight bytes at a time.
pub fn compare(a: &[u8], b: &[u8]) -> Ordering {
    let n = a.len().min(b.len());
    let (mut ca, mut cb) = (a[..n].chunks_exact(8), b[..n].chunks_exact(8));
    for (x, y) in (&mut ca).zip(&mut cb) {
        // Big-endian: the first differing byte decides, as in memcmp.
        let x = u64::from_be_bytes(x.try_into().unwrap_or_default());
        let y = u64::from_be_bytes(y.try_into().unwrap_or_default());
        if x != y {
            return x.cmp(&y);
        }
    }
    // Byte by byte, not `<[u8]>::cmp`: that is memcmp, i.e. this function.
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

/// The C symbols (wasm32 only; natively the platform's are better): a C ABI
/// over raw pointers (see the SAFETY note), linked by symbol name like the
/// exports of `export_backend!`.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code, unreachable_pub)]
mod symbols {
    /// `memcmp(a, b, n)`.
    ///
    /// # Safety
    /// As in C: `a` and `b` are readable for `n` bytes.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        // SAFETY: the caller (the compiler, for slice and str comparisons)
        // passes `n` readable bytes at each pointer, as memcmp requires.
        let (a, b) = unsafe {
            (
                core::slice::from_raw_parts(a, n),
                core::slice::from_raw_parts(b, n),
            )
        };
        super::compare(a, b) as i32
    }

    /// `bcmp(a, b, n)`: zero iff equal.
    ///
    /// # Safety
    /// As [`memcmp`].
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        // SAFETY: as for `memcmp`.
        unsafe { memcmp(a, b, n) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_as_slices_do() {
        let words: Vec<&[u8]> = vec![
            b"",
            b"a",
            b"ab",
            b"pod/ns-002/app-036-00096-00bb8",
            b"pod/ns-002/app-036-00096-00bb9",
            b"pod/ns-002/app-036-00096-00bb",
            b"pod/ns-002/app-036-00096-00bb8\xff",
            b"pod/ns-002/app-036-00096\x80",
            b"12345678",
            b"12345679",
            b"1234567",
            b"\x00\x00\x00\x00\x00\x00\x00\x01",
            b"\xff\xff\xff\xff\xff\xff\xff\xfe",
        ];
        for a in &words {
            for b in &words {
                assert_eq!(compare(a, b), a.cmp(b), "{a:?} {b:?}");
                // memcmp sees equal lengths.
                let n = a.len().min(b.len());
                assert_eq!(compare(&a[..n], &b[..n]), a[..n].cmp(&b[..n]));
            }
        }
    }
}
