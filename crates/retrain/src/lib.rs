//! Supervised retraining and evaluation of searched architectures (spec §2.6, §7).
//!
//! - [`arch`]: architecture values of the three spaces from the forms the tool writes;
//! - [`recipe`]: TOML recipes (`deit`, `nats-cifar`, `nats-cifar-hp200`, `nats-cifar-short`,
//!   `tiny`), validation, refusal of what is not implemented;
//! - [`model`]: architecture value → network ([`model::RetrainNet`] over BossNet / MBConv /
//!   NATS), one call;
//! - [`data`]: train/test sources and the training/evaluation loaders;
//! - [`augment`]: random erasing; [`mixup`]: mixup/cutmix with label smoothing;
//! - [`optim`]: the optimizer and the warm-up + cosine schedule; [`ema`]: model EMA;
//! - [`trainer`]: the training loop with checkpoints, exact resume and metrics;
//! - [`eval`]: top-1/top-5; [`export`]: burn-store export/import, PyTorch state dicts;
//! - [`sanity`]: the NATS-Bench ground-truth sanity run.

pub mod arch;
pub mod augment;
pub mod data;
pub mod ema;
pub mod eval;
pub mod export;
pub mod mixup;
pub mod model;
pub mod optim;
pub mod recipe;
pub mod sanity;
pub mod trainer;

use ensemble_bootstrap::checkpoint::CheckpointError;

/// The runtime device type (Burn's), re-exported for callers that do not depend on burn.
pub use burn::tensor::Device;

/// Everything that can go wrong in a retraining run; every message names the field, file or
/// value at fault.
#[derive(Debug, thiserror::Error)]
pub enum RetrainError {
    /// A malformed or unknown architecture value.
    #[error("architecture {0}")]
    Arch(String),
    /// A bad, unknown or unimplemented recipe setting.
    #[error("recipe: {0}")]
    Recipe(String),
    /// Missing or unreadable data.
    #[error("data: {0}")]
    Data(String),
    /// File system.
    #[error("{0}")]
    Io(String),
    /// Checkpoint save/load (a corrupt checkpoint names the file).
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The run cannot go on (non-finite loss, shape mismatch, ...).
    #[error("training: {0}")]
    Train(String),
    /// Export or import of weights.
    #[error("export: {0}")]
    Export(String),
}

impl RetrainError {
    /// The message without the category prefix.
    pub fn message(&self) -> String {
        match self {
            RetrainError::Arch(m)
            | RetrainError::Recipe(m)
            | RetrainError::Data(m)
            | RetrainError::Io(m)
            | RetrainError::Train(m)
            | RetrainError::Export(m) => m.clone(),
            RetrainError::Checkpoint(e) => e.to_string(),
        }
    }
}

impl From<bossnas_datasets::DataError> for RetrainError {
    fn from(e: bossnas_datasets::DataError) -> Self {
        RetrainError::Data(e.to_string())
    }
}
