//! What can go wrong reading an inventory or a Trivy report. Every message
//! names the file, the object and the field where there is one, and says what
//! to do about it.

use std::fmt;

/// An inventory or Trivy report that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InventoryError {
    /// The file could not be read.
    #[error("{file}: cannot read it: {source}; check the path and its permissions")]
    Read {
        /// The file.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not JSON.
    #[error("{file}:{line}:{column}: not valid JSON: {message}; {help}")]
    Json {
        /// The file.
        file: String,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// The parser's message.
        message: String,
        /// What the file should contain.
        help: &'static str,
    },
    /// The top-level JSON value is not the kind of document expected.
    #[error("{file}: {problem}; {help}")]
    Document {
        /// The file.
        file: String,
        /// What is wrong (`not a kubectl List: kind is "Pod"`).
        problem: String,
        /// What the file should contain.
        help: &'static str,
    },
    /// A field of one object is missing or invalid.
    #[error("{file}: {object}: `{field}` {problem}; {help}")]
    Field {
        /// The file.
        file: String,
        /// The object, as `Pod shop/frontend-x` or `items[3]`.
        object: String,
        /// The field's path inside the object (`status.podIPs[0].ip`).
        field: String,
        /// What is wrong with it (`is missing`, `is not an IP address: "x"`).
        problem: String,
        /// What to do.
        help: String,
    },
    /// Two objects of the same kind have the same name.
    #[error(
        "{file}: {object} appears twice in the List; remove one of them or re-export the cluster"
    )]
    DuplicateObject {
        /// The file.
        file: String,
        /// The object, as `Pod shop/frontend-x`.
        object: String,
    },
    /// Two pods (not on the host network) with one address.
    #[error(
        "{file}: {first} and {second} both have the address {address}; pods on the pod network \
         never share one, and policy is enforced by address, so one would get the other's rules. \
         Re-export the cluster (a stale or edited export), or set `spec.hostNetwork: true` on a \
         pod that uses its node's address"
    )]
    SharedAddress {
        /// The file.
        file: String,
        /// The address.
        address: std::net::IpAddr,
        /// The first pod, as `Pod shop/frontend-x`.
        first: String,
        /// The second pod.
        second: String,
    },
    /// Two inventory files describe the same cluster.
    #[error(
        "cluster `{cluster}` is described by both {first} and {second}; give each cluster one \
         file, or set distinct `ringfence.io/cluster` annotations on their Lists"
    )]
    DuplicateCluster {
        /// The cluster name.
        cluster: String,
        /// The first file naming it.
        first: String,
        /// The second file naming it.
        second: String,
    },
    /// More than one problem, in the order they were found.
    #[error("{}", Joined(.0))]
    Several(Vec<InventoryError>),
}

impl InventoryError {
    /// One error for a non-empty list of problems.
    pub(crate) fn from_list(mut errors: Vec<InventoryError>) -> Option<InventoryError> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(InventoryError::Several(errors)),
        }
    }

    /// Every single problem this error holds.
    pub fn problems(&self) -> Vec<&InventoryError> {
        match self {
            InventoryError::Several(list) => list.iter().flat_map(|e| e.problems()).collect(),
            other => vec![other],
        }
    }
}

/// Displays a list of errors one per line.
struct Joined<'a>(&'a [InventoryError]);

impl fmt::Display for Joined<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} problems:", self.0.len())?;
        for e in self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}
