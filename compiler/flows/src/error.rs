//! What can go wrong reading flow files.
//!
//! A file that cannot be opened or whose format cannot be told is an error
//! ([`FlowError`]); a bad line inside a readable file is counted and the first
//! few are kept ([`LineError`]), so one corrupt line does not lose the rest.

use std::fmt;
use std::io;
use std::path::PathBuf;

use serde::Serialize;

use crate::input::FlowFormat;

/// A flow file that cannot be read at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    /// Opening or reading failed.
    #[error("{path}: {source}", path = path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The first lines match none of the formats.
    #[error(
        "{path}:{line}: cannot tell the flow format: {found}; expected ringfence JSON Lines \
         ({{\"src_ip\": …, \"dst_ip\": …}} per line, schema/docs/flows.md), Hubble JSON \
         (`hubble observe -o json`) or a conntrack listing (`conntrack -L -o extended`)",
        path = path.display()
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// 1-based line number of the line that decided.
        line: u64,
        /// What was found there.
        found: String,
    },
    /// A flow table (`clickhouse://…`) cannot be read.
    #[error(transparent)]
    Table(#[from] crate::clickhouse::ClickHouseError),
}

/// One line that could not be read as a flow.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct LineError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line number.
    pub line: u64,
    /// The file's format.
    pub format: FlowFormat,
    /// What is wrong, naming the field.
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {} (expected {})",
            self.path.display(),
            self.line,
            self.message,
            self.format.expected()
        )
    }
}

impl std::error::Error for LineError {}
