//! BossNAS architecture rating and search.
//!
//! - [`rating`]: population-centre rating of one block's candidates (spec §5.3–5.4) behind the
//!   [`rating::CandidateModel`] trait, independent of the trainer;
//! - [`bn`]: BatchNorm re-estimation on a calibration batch for Burn 0.22 (spec §5.3);
//! - [`search`]: greedy block-wise selection, the composed score Σ_k λ_k (L_k + offset) over a
//!   whole space, and constrained selection under MAdds / parameter budgets (exhaustive or
//!   aging evolution);
//! - [`output`]: rankings, architectures and NATS score files (atomic writes).

pub mod bn;
pub mod figures;
pub mod output;
pub mod rating;
pub mod run;
pub mod search;
pub mod select;

use std::path::PathBuf;

/// Errors of rating and search.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// Invalid arguments or inputs.
    #[error("{0}")]
    Invalid(String),
    /// An architecture could not be built or costed.
    #[error(transparent)]
    Arch(#[from] hytra_space::ArchError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file has the wrong content.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The candidate model failed (e.g. calibration).
    #[error("candidate model: {0}")]
    Model(String),
}

impl From<hytra_space::hytra::HytraError> for SearchError {
    fn from(e: hytra_space::hytra::HytraError) -> Self {
        SearchError::Arch(e.into())
    }
}

impl From<hytra_space::nats::NatsError> for SearchError {
    fn from(e: hytra_space::nats::NatsError) -> Self {
        SearchError::Arch(e.into())
    }
}

impl From<hytra_space::mbconv::MbconvError> for SearchError {
    fn from(e: hytra_space::mbconv::MbconvError) -> Self {
        SearchError::Arch(e.into())
    }
}

/// Result alias.
pub type Result<T, E = SearchError> = std::result::Result<T, E>;
