//! Why an analysis could not run.

use std::path::PathBuf;

/// Why an analysis could not run. Problems inside the inputs that leave the
/// rest usable (an unreadable flow line, a report that is not one) are not
/// errors: they are counted and shown in the [`Analysis`](crate::Analysis).
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// The report directory could not be listed.
    #[error("{}: cannot read the report directory: {source}", .path.display())]
    Reports {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The report directory holds no report.
    #[error(
        "{}: no compliance reports (*.json) here; give the directory the agents' report.json files were collected in, one file per node",
        .0.display()
    )]
    NoReports(PathBuf),
}
