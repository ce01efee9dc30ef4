//! The name glob (`names::Glob`, from `wildmatch`) agrees with an
//! independent recursive definition of `*` and `?` on random patterns and
//! names over a small alphabet with the wildcards, punctuation and
//! non-ASCII characters.

use proptest::prelude::*;
use ringfence_inventory::names::{Glob, glob};

/// The reference: recursive, as in `compiler/core/tests/oracle.rs`.
fn reference(p: &str, s: &str) -> bool {
    match p.chars().next() {
        None => s.is_empty(),
        Some('*') => (0..=s.len())
            .filter(|&i| s.is_char_boundary(i))
            .any(|i| reference(&p[1..], &s[i..])),
        Some(c) => {
            let mut sc = s.chars();
            match sc.next() {
                Some(x) if c == '?' || c == x => reference(&p[c.len_utf8()..], sc.as_str()),
                _ => false,
            }
        }
    }
}

/// Patterns may hold the wildcards; names may too (they are plain there).
const PATTERN: &str = "[ab*?.é\\-ß]{0,10}";
const NAME: &str = "[ab*?.é\\-ß]{0,12}";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn agrees_with_the_recursive_definition(p in PATTERN, n in NAME) {
        let want = reference(&p, &n);
        prop_assert_eq!(glob(&p, &n), want, "pattern {:?} name {:?}", p, n);
        prop_assert_eq!(Glob::new(&p).matches(&n), want);
    }

    /// A name built to match (each `*` and `?` filled in) always does.
    #[test]
    fn filled_in_patterns_match(
        p in PATTERN,
        fills in proptest::collection::vec("[ab.é\\-]{0,3}", 10),
    ) {
        let mut name = String::new();
        for (i, c) in p.chars().enumerate() {
            match c {
                '*' => name.push_str(&fills[i]),
                '?' => name.push(fills[i].chars().next().unwrap_or('x')),
                c => name.push(c),
            }
        }
        prop_assert!(reference(&p, &name));
        prop_assert!(glob(&p, &name), "pattern {:?} name {:?}", p, name);
    }
}

#[test]
fn examples() {
    for (p, n, m) in [
        ("frontend-*", "frontend-7d9f", true),
        ("frontend-*", "frontend", false),
        ("*", "", true),
        ("", "", true),
        ("", "a", false),
        ("?", "", false),
        ("?", "é", true),
        ("**a", "a", true),
        ("a.b", "axb", false),
        ("[ab]", "a", false),
        ("[ab]", "[ab]", true),
        ("{a,b}", "a", false),
        ("a/*", "a/b/c", true),
        ("Redis-*", "redis-0", false),
        ("*-?", "redis-0", true),
    ] {
        assert_eq!(glob(p, n), m, "{p:?} {n:?}");
        assert_eq!(reference(p, n), m, "{p:?} {n:?}");
    }
}
