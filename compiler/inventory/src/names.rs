//! The names an inventory may hold, checked once where it is read.
//!
//! Object names follow Kubernetes' own rules (the API server accepts no
//! other), and a cluster name is one file-name-safe word; so every name that
//! leaves this crate is a single path component that is neither `.` nor `..`,
//! and the commands that name files and directories after nodes, clusters or
//! namespaces (`render`, `compile`, `discover`) cannot be steered outside
//! their output directory. [`Glob`] (from `wildmatch`) is how intent and exclusions match
//! these names.

/// A Kubernetes DNS subdomain (RFC 1123): Node and Pod names.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// A Kubernetes DNS label (RFC 1123): Namespace and Service names.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// A cluster name: 1 to 253 ASCII letters, digits, `-`, `_` and `.`,
/// starting with a letter or digit (so never `.`, `..` or a flag).
pub fn is_cluster_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=253).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// What a valid name of each kind looks like, for messages.
pub const DNS_SUBDOMAIN: &str = "lowercase letters, digits, `-` and `.`, each `.`-separated part \
                                 starting and ending with a letter or digit, at most 253 characters";
/// See [`DNS_SUBDOMAIN`].
pub const DNS_LABEL: &str = "lowercase letters, digits and `-`, starting and ending with a letter \
                             or digit, at most 63 characters";
/// See [`DNS_SUBDOMAIN`].
pub const CLUSTER_NAME: &str = "letters, digits, `-`, `_` and `.`, starting with a letter or \
                                digit, at most 253 characters";

/// A name glob compiled once: `*` matches any run of characters (also none),
/// `?` exactly one character, every other character itself (no escapes, no
/// classes, `/` and `.` are plain); the whole name must match, and case
/// counts. Compile each pattern once where it is read and match it against
/// many names; [`glob`] is the one-shot form.
#[derive(Clone, Debug, PartialEq)]
pub struct Glob(wildmatch::WildMatch);

impl Glob {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Self {
        Self(wildmatch::WildMatch::new(pattern))
    }

    /// Whether the whole of `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        self.0.matches(name)
    }
}

/// Whether `name` matches a glob with `*` (any run) and `?` (one character):
/// [`Glob`], compiled for one name.
pub fn glob(pattern: &str, name: &str) -> bool {
    Glob::new(pattern).matches(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_tricks_are_not_names() {
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "../../escaped-node",
            "/abs/path",
            "a/b",
            "a\\b",
            "-rf",
            "a..b",
            ".hidden",
            "x.",
            "UPPER",
            "a b",
            "a\nb",
            "é",
            "a\0b",
        ] {
            assert!(!is_dns_subdomain(bad), "{bad:?}");
            assert!(!is_dns_label(bad), "{bad:?}");
        }
        for bad in [
            "", ".", "..", "../x", "/abs", "a/b", "-x", "_x", ".x", "a b", "é",
        ] {
            assert!(!is_cluster_name(bad), "{bad:?}");
        }
        assert!(is_dns_subdomain("ip-10-0-1-5.eu-west-1.compute.internal"));
        assert!(is_dns_subdomain(&format!(
            "{}.{}",
            "a".repeat(63),
            "b".repeat(63)
        )));
        assert!(!is_dns_subdomain(&vec!["a".repeat(63); 5].join(".")));
        assert!(is_dns_label("kube-system"));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(is_cluster_name("prod-eu1"));
        assert!(is_cluster_name("Prod_EU.1"));
    }

    #[test]
    fn globs() {
        assert!(glob("frontend-*", "frontend-7d9f"));
        assert!(glob("frontend-*", "frontend-5f-a"));
        assert!(!glob("frontend-*", "frontend"));
        assert!(glob("*", ""));
        assert!(glob("*-?", "redis-0"));
        assert!(glob("w?rker-*-a", "worker-12-a"));
        assert!(!glob("worker-?", "worker-12"));
        assert!(!glob("a?c", "abbc"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxbyy"));
        assert!(glob("exact", "exact") && !glob("exact", "exactly"));
    }
}
