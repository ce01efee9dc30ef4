//! Stable names: set names, rule ids and chain ids.
//!
//! The same intent and inventory always give the same names, and a change
//! renames only what it touches: a set is named by a readable stem plus a
//! hash of its definition (what it stands for, never its addresses, so pods
//! come and go without renaming anything), a rule by its policy's name plus
//! a hash of the policy id and the rule's content (never its position), a
//! chain by a hash of its direction, mode and rule ids.

use sha2::{Digest, Sha256};

/// Lowercase hex of the first `n` hex digits of SHA-256 over `parts`.
pub(crate) fn hash_hex(parts: &[&[u8]], n: usize) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let digest = h.finalize();
    let mut s = ringfence_schema::digest::hex(&digest[..n.div_ceil(2).min(digest.len())]);
    s.truncate(n);
    s
}

/// `text` reduced to `[a-z0-9_]` (and `-` if `dash`), runs of other
/// characters folded into one `_`, at most `max` bytes, never empty.
pub(crate) fn ident(text: &str, dash: bool, max: usize, fallback: &str) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        let keep = c.is_ascii_lowercase() || c.is_ascii_digit() || (dash && c == '-');
        if keep {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
        if out.len() >= max {
            break;
        }
    }
    out.truncate(max);
    let out = out.trim_matches(|c| c == '_' || c == '-').to_string();
    if out.is_empty() {
        fallback.to_string()
    } else {
        out
    }
}

/// A set's name: `<stem>_<12 hex>` (a hash of its definition), at most 48
/// bytes of `[a-z0-9_]`.
pub(crate) fn set_name(stem: &str, definition: &[u8]) -> String {
    format!(
        "{}_{}",
        ident(stem, false, 35, "set"),
        hash_hex(&[definition], 12)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_clean_and_bounded() {
        assert_eq!(
            ident("Shop/Front-End..x", false, 48, "s"),
            "shop_front_end_x"
        );
        assert_eq!(ident("frontend-to-cart", true, 19, "r"), "frontend-to-cart");
        assert_eq!(ident("***", false, 10, "set"), "set");
        assert_eq!(ident("a".repeat(100).as_str(), false, 35, "s").len(), 35);
        let n = set_name("svc_payments_payment", &[1, 2, 3]);
        assert!(n.len() <= 48 && n.starts_with("svc_payments_payment_"));
        assert_eq!(hash_hex(&[b"a", b"b"], 12), hash_hex(&[b"a", b"b"], 12));
        // Part boundaries matter: ("ab", "") differs from ("a", "b").
        assert_ne!(hash_hex(&[b"ab", b""], 12), hash_hex(&[b"a", b"b"], 12));
    }
}
