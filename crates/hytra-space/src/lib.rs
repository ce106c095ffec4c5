//! BossNAS search spaces as plain, serde-serialisable data.
//!
//! * [`hytra`] — the HyTra CNN-transformer fabric (16 layers in 4 blocks, ResConv/ResAtt at
//!   four scales), both architecture encodings and the named reference networks.
//! * [`mbconv`] — the MBConv (DNA/EfficientNet) space: 5 searched blocks, 4 ops per layer.
//! * [`nats`] — the NATS-Bench size search space (widths {8..64}^5).
//! * [`cost`] — parameter and multiply-add counters shared by every space.
//! * [`space`] — [`SpaceKind`], which of the three spaces.
//! * [`arch`] — a space with its parameters ([`SearchSpace`]), the tagged [`Architecture`] of
//!   any space, assembling block paths, costs under a [`CostModel`].
//!
//! Nothing here depends on a tensor library: these values are what a search produces,
//! what a report prints and what `bossnas-supernet` turns into Burn modules.

pub mod arch;
pub mod cost;
pub mod hytra;
pub mod mbconv;
pub mod nats;
pub mod space;

pub use arch::{Architecture, CostModel, SearchSpace};
pub use cost::Cost;
pub use space::SpaceKind;

/// Any error raised while parsing or validating an architecture of any space.
///
/// Every variant's message names the offending layer or field, the value found and what was
/// allowed there, so that a command-line user can fix the input without reading the code.
#[derive(Debug, thiserror::Error)]
pub enum ArchError {
    #[error(transparent)]
    Hytra(#[from] hytra::HytraError),
    #[error(transparent)]
    Mbconv(#[from] mbconv::MbconvError),
    #[error(transparent)]
    Nats(#[from] nats::NatsError),
    /// Block paths or an architecture that do not fit the space (count, space mismatch).
    #[error("{0}")]
    Space(String),
}
