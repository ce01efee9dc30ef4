//! KDL parsing that no file can crash: blocks nest at most [`MAX_DEPTH`]
//! deep, and the parser never runs out of stack.
//!
//! The kdl parser recurses once per `{` block (about 7 KiB of stack each)
//! and once per token of a `/* */` comment (up to about 1.2 KiB per `*` or
//! `/`), so a 4 KB file of `a {` or a comment of stars overflows any thread's
//! stack. An upper bound of that recursion, counted from the bytes alone (no
//! lexing that a crafted file could fool), sizes the stack of the thread that
//! parses; the parsed document's depth is then measured without recursion,
//! and a document nested too deep is dropped on that thread, never handed on
//! (the code that walks documents recurses too). A file whose bound exceeds
//! [`MAX_STACK`] is refused unparsed.

use kdl::{KdlDocument, KdlError, KdlNode};

/// How many `{ }` blocks may nest in a file: far more than intent uses
/// (scopes, queries, `all`/`any`/`not`), far less than any stack holds.
pub const MAX_DEPTH: usize = 64;

/// Stack per `{`, per `*` or `/`, and for everything else; measured at 6.7
/// KiB, 1.0-1.2 KiB and well under the base (release build), with margin.
const PER_BRACE: usize = 8 << 10;
const PER_COMMENT_BYTE: usize = 1536;
const BASE: usize = 256 << 10;
/// The most stack a parse may reserve (virtual: only what it uses is touched).
const MAX_STACK: usize = 1 << 30;
/// Below this the caller's stack is used: every thread that parses intent
/// has at least 2 MiB (the Rust default), so half of it is spare.
const INLINE_STACK: usize = 1 << 20;

/// Why a file was not handed on.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A block nested deeper than [`MAX_DEPTH`]; the span of the name of the
    /// node that opens it.
    TooDeep {
        /// Byte offset of the node's name.
        offset: usize,
        /// Its length.
        len: usize,
    },
    /// Too many `{`, `*` and `/` to parse within [`MAX_STACK`].
    TooLarge {
        /// `{` in the file.
        braces: usize,
        /// `*` and `/` in the file.
        comment_bytes: usize,
    },
}

/// Parse `text` with `parser` (`KdlDocument::parse_v2`, or `KdlDocument::parse`
/// for files that may be KDL v1) on a stack it cannot exhaust; a syntax error
/// is `Ok(Err(_))`.
pub fn parse_with(
    text: &str,
    parser: fn(&str) -> Result<KdlDocument, KdlError>,
) -> Result<Result<KdlDocument, KdlError>, Refusal> {
    let braces = count(b'{', text);
    let comment_bytes = count(b'*', text) + count(b'/', text);
    let stack = braces
        .saturating_mul(PER_BRACE)
        .saturating_add(comment_bytes.saturating_mul(PER_COMMENT_BYTE))
        .saturating_add(BASE);
    let run = move || match parser(text) {
        Ok(doc) => match too_deep(&doc) {
            // Dropping a deep document recurses: it happens here, on this stack.
            Some(r) => Err(r),
            None => Ok(Ok(doc)),
        },
        Err(e) => Ok(Err(e)),
    };
    if stack <= INLINE_STACK {
        return run();
    }
    let too_large = Refusal::TooLarge {
        braces,
        comment_bytes,
    };
    if stack > MAX_STACK {
        return Err(too_large);
    }
    std::thread::scope(|s| {
        match std::thread::Builder::new()
            .name("kdl-parse".into())
            .stack_size(stack)
            .spawn_scoped(s, run)
        {
            Ok(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
            // No memory for the stack: as good as too large.
            Err(_) => Err(too_large),
        }
    })
}

fn count(b: u8, text: &str) -> usize {
    text.bytes().filter(|&c| c == b).count()
}

/// The first node (in document order) whose block is nested deeper than
/// [`MAX_DEPTH`], found without recursion.
fn too_deep(doc: &KdlDocument) -> Option<Refusal> {
    // Each entry: the nodes of one block still to visit, and that block's depth.
    let mut stack: Vec<(std::slice::Iter<'_, KdlNode>, usize)> = vec![(doc.nodes().iter(), 0)];
    while let Some((nodes, depth)) = stack.last_mut() {
        let depth = *depth;
        let Some(node) = nodes.next() else {
            stack.pop();
            continue;
        };
        if let Some(children) = node.children() {
            if depth >= MAX_DEPTH {
                let span = node.name().span();
                return Some(Refusal::TooDeep {
                    offset: span.offset(),
                    len: span.len(),
                });
            }
            stack.push((children.nodes().iter(), depth + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(n: usize) -> String {
        "a {".repeat(n) + &"}".repeat(n)
    }

    #[test]
    fn max_depth_parses_one_more_is_refused_at_its_name() {
        assert!(matches!(
            parse_with(&nested(MAX_DEPTH), KdlDocument::parse_v2),
            Ok(Ok(_))
        ));
        let text = nested(MAX_DEPTH + 1);
        let offset = "a {".len() * MAX_DEPTH;
        assert_eq!(
            parse_with(&text, KdlDocument::parse_v2).err(),
            Some(Refusal::TooDeep { offset, len: 1 })
        );
    }

    #[test]
    fn hostile_nesting_and_comments_do_not_crash() {
        // Each of these overflowed an 8 MiB main thread before.
        for (text, deep) in [
            (nested(3000), true),
            ("/- a {".repeat(3000) + &"}".repeat(3000), false),
            (format!("/*{}*/", "*".repeat(100_000)), false),
            (format!("/*{}*/", "a*".repeat(50_000)), false),
            ("/*".repeat(20_000) + &"*/".repeat(20_000), false),
            (
                format!("n {{\n{}\n}}", "not {".repeat(20_000) + &"}".repeat(20_000)),
                true,
            ),
        ] {
            let got = parse_with(&text, KdlDocument::parse_v2);
            assert_eq!(
                matches!(got, Err(Refusal::TooDeep { .. })),
                deep,
                "{}…: {got:?}",
                &text[..20]
            );
        }
    }

    #[test]
    fn a_file_beyond_the_stack_budget_is_refused_unparsed() {
        let text = "{".repeat(MAX_STACK / PER_BRACE + 1);
        assert!(matches!(
            parse_with(&text, KdlDocument::parse_v2),
            Err(Refusal::TooLarge { .. })
        ));
    }
}
