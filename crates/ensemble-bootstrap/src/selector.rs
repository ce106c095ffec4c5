//! How a block's best path is chosen at its end: the [`BlockSelector`] the trainer calls with a
//! read-only [`BlockContext`], and the [`SelectorFactory`] that makes one for whichever
//! supernet type the space uses. The real selector (population-centre rating) is in
//! `bossnas-search`; [`LossEmaSelector`] is the test stand-in.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bossnas_supernet::{BlockPath, Supernet};
use burn::tensor::Device;

use crate::siamese::{OnlineNet, TargetNet};
use bossnas_config::RunConfig;
use bossnas_datasets::ImageSource;

/// Errors a selector may return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a [`BlockSelector`] sees at the end of block `block`. Read-only.
pub struct BlockContext<'a, S: Supernet> {
    /// The block just trained.
    pub block: usize,
    /// Best paths of blocks `0..block` (the input of this block).
    pub chosen: &'a [BlockPath],
    /// The block's candidate paths.
    pub population: &'a [BlockPath],
    /// Online supernet, this block's projection head and predictor.
    pub online: &'a OnlineNet<S>,
    /// Target supernet and this block's target projection head.
    pub target: &'a TargetNet<S>,
    /// The (autodiff) training device.
    pub device: &'a Device,
    /// The run configuration (`rating.*` for the rating procedure).
    pub config: &'a RunConfig,
    /// Held-out images for rating (spec §5.2).
    pub rating_data: &'a Arc<dyn ImageSource>,
    /// Per-path EMA (decay [`LOSS_EMA_DECAY`]) of the training loss, for paths sampled in
    /// this block.
    pub train_loss_ema: &'a BTreeMap<BlockPath, f64>,
    /// The run directory (for rating reports).
    pub run_dir: &'a Path,
}

/// Picks a block's best path at the end of its training.
///
/// Implemented by closures `FnMut(&BlockContext<S>) -> Result<BlockPath, BoxError>` too. The
/// returned path must be a member of `ctx.population`. Selection must be deterministic for
/// exact resume (its result is checkpointed, but a run stopped during selection redoes it).
pub trait BlockSelector<S: Supernet> {
    /// The best path of `ctx.block`.
    fn select(&mut self, ctx: &BlockContext<'_, S>) -> Result<BlockPath, BoxError>;
}

impl<S: Supernet, F> BlockSelector<S> for F
where
    F: FnMut(&BlockContext<'_, S>) -> Result<BlockPath, BoxError>,
{
    fn select(&mut self, ctx: &BlockContext<'_, S>) -> Result<BlockPath, BoxError> {
        self(ctx)
    }
}

/// **Test stand-in, not BossNAS's rating**: the sampled candidate with the lowest
/// training-loss EMA (ties: population order; nothing sampled: the first candidate).
/// The real selector is the population-centre rating of `bossnas-search` (spec §5).
#[derive(Debug, Clone, Copy, Default)]
pub struct LossEmaSelector;

impl<S: Supernet> BlockSelector<S> for LossEmaSelector {
    fn select(&mut self, ctx: &BlockContext<'_, S>) -> Result<BlockPath, BoxError> {
        let mut best: Option<(&BlockPath, f64)> = None;
        for p in ctx.population {
            if let Some(&v) = ctx.train_loss_ema.get(p)
                && best.is_none_or(|(_, b)| v < b)
            {
                best = Some((p, v));
            }
        }
        Ok(best
            .map(|(p, _)| p.clone())
            .or_else(|| ctx.population.first().cloned())
            .ok_or("empty population")?)
    }
}

/// Makes a selector for whichever supernet type the configured space uses.
pub trait SelectorFactory {
    /// A selector for supernets of type `S`.
    fn selector<S: Supernet + 'static>(&self) -> Box<dyn BlockSelector<S>>;
}

/// Factory of [`LossEmaSelector`].
#[derive(Debug, Clone, Copy, Default)]
pub struct LossEmaSelectorFactory;

impl SelectorFactory for LossEmaSelectorFactory {
    fn selector<S: Supernet + 'static>(&self) -> Box<dyn BlockSelector<S>> {
        Box::new(LossEmaSelector)
    }
}

/// Decay of the per-path training-loss EMA in [`BlockContext::train_loss_ema`].
pub const LOSS_EMA_DECAY: f64 = 0.9;
