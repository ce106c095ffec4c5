//! The crate's error type. Every message names the file (and, for data errors, the line) and
//! says what was wrong, so that a command-line user can fix the input without reading code.

use std::path::PathBuf;

/// Any error raised by this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened, read or written.
    #[error("{path}: {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A CSV file is malformed or holds a bad value. `line` is 1-based and counts the header.
    #[error("{path}:{line}: {problem}")]
    Data {
        path: PathBuf,
        line: u64,
        problem: String,
    },
    /// A CSV header lacks a required column or has an unexpected layout.
    #[error("{path}: header: {problem}")]
    Header { path: PathBuf, problem: String },
    /// Inputs that are individually valid do not fit together (e.g. no overlap with the ground truth).
    #[error("{0}")]
    Mismatch(String),
    /// An option is out of range.
    #[error("invalid option: {0}")]
    Options(String),
    /// A figure could not be drawn.
    #[error("plot {path}: {problem}")]
    Plot { path: PathBuf, problem: String },
    /// JSON (de)serialisation failed.
    #[error("{path}: JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Shorthand result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(
    path: &std::path::Path,
    action: &'static str,
) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io {
        path,
        action,
        source,
    }
}
