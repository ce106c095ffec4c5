//! NATS-Bench size search space (SSS) benchmarking for BossNAS: ground truth, the official
//! reference potentials, rank-correlation statistics, the composed block score, free
//! baselines, reports and scatter plots. Pure Rust, no tensor library.
//!
//! Entry point for the CLI (`bossnas nats correlate`): read a [`GroundTruth`] and a
//! [`ScoresInput`], call [`correlate`], then [`Report::to_markdown`], [`Report::to_json`] or
//! [`Report::write`].
//!
//! # Sign convention
//! Statistics are computed **raw**, as `scipy.stats` would on `(score, accuracy)`. BossNAS
//! scores are losses (lower is better), so a working BossNAS score has *negative* raw τ-b, ρ
//! and r (the official CIFAR-10 run: −0.534 / −0.734 / −0.718; the paper prints absolute
//! values). Every report also carries *oriented* values, multiplied by −1 for
//! lower-is-better scores, so that positive always means "ranks better architectures
//! higher". Baselines (params, MAdds, sum of widths) are higher-is-better.
//!
//! # Figures
//! [`plot`] uses `plotters` without its system font stack (no fontconfig/freetype): the
//! pure-Rust `ab_glyph` backend with a TrueType font loaded at run time from `$BOSSNAS_FONT`
//! or a common system path; without one, figures are drawn without text.

mod csvio;
pub mod error;
pub mod figures;
pub mod plot;
pub mod potential;
pub mod report;
pub mod scores;
pub mod stats;
pub mod truth;

pub use error::{Error, Result};
pub use potential::{
    BlockSplit, ComposedScore, OfficialArchScore, PotentialEntry, PotentialTable,
    load_official_arch_scores,
};
pub use report::{
    CorrelateOptions, MethodReport, Report, Selection, TopK, WrittenFiles, correlate,
};
pub use scores::{ScoreEntry, ScoresInput};
pub use stats::{BootstrapOptions, Correlations, Orientation};
pub use truth::{AccuracyColumn, GroundTruth};

impl From<hytra_space::nats::NatsSplit> for BlockSplit {
    fn from(split: hytra_space::nats::NatsSplit) -> Self {
        Self {
            blocks: split.block_ranges().to_vec(),
        }
    }
}
