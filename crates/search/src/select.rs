//! The real [`CandidateModel`] over the trainer's Siamese pair, and the trainer's
//! [`BlockSelector`] that picks each block's best path by population-centre rating.
//!
//! Evaluation follows the official `ValBestPathHook` (spec §5.3–5.4):
//! - features of block `k`'s candidates come from the **target** prefix (stem + blocks `0..k`
//!   along `best_paths[:k]`), for the online candidate too;
//! - per candidate, every BN is reset and re-estimated on the calibration batch's second view
//!   (with the official momentum 1 only the last batch a BN sees counts, and every BN sees
//!   view 2 last): target prefix → target candidate → target head, and online candidate →
//!   online head on the target prefix features;
//! - the predictor's BN is reset (mean 0, variance 1) and **not** recalibrated (spec §9 D4,
//!   `rating.predictor_bn_quirk = true`); with the quirk off it is recalibrated on the
//!   online head's output;
//! - the variance is Burn's biased batch variance except in the projector/predictor BN1d
//!   layers, whose `n` is the calibration batch size and which are converted to PyTorch's
//!   unbiased estimate (BN2d layers see `batch × H × W` values; their factor `n/(n−1)` is
//!   below 1.0001 at the official sizes and is left out).
//!
//! The trainer's networks are never touched: the model works on deep copies
//! (`valid().train().no_grad()`), and keeps one eval-mode copy per calibrated candidate
//! (parameters shared, only BN statistics are new) so the batch-outer loop calibrates each
//! candidate once.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use bossnas_config::RunConfig;
use bossnas_datasets::ImageSource;
use bossnas_datasets::loader::{LoaderConfig, PairMode, ViewLoader};
use bossnas_supernet::{BlockPath, Supernet};
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use ensemble_bootstrap::selector::{BlockContext, BlockSelector, BoxError, SelectorFactory};
use ensemble_bootstrap::siamese::{OnlineNet, TargetNet};
use serde::{Deserialize, Serialize};

use crate::bn::{BnCalibration, reset_bn_stats};
use crate::output::{RATING_DIR, write_block_outputs};
use crate::rating::{CandidateModel, CentreMode, ViewPair, rate_population_streaming};
use crate::search::BlockRanking;
use crate::{Result, SearchError};
use hytra_space::arch::SearchSpace;

/// Options of the population-centre rating of a trained block.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateOptions {
    /// Centre averaging (spec §9 D3); official: raw.
    pub centre: CentreMode,
    /// Recalibrate the predictor's BN; `None` = `!config.rating.predictor_bn_quirk`.
    pub recalibrate_predictor: Option<bool>,
    /// Recover each BN's momentum from two calibration passes (robust to any BN
    /// configuration); `false` assumes momentum 0.1 everywhere (one pass).
    pub infer_bn_momentum: bool,
    /// Epoch index used to draw the fixed rating views (the same views for every candidate).
    /// `None` = the block index.
    pub view_epoch: Option<u64>,
    /// Write the ranking files into `<run>/rating/`.
    pub write_outputs: bool,
    /// Run the prefix (the chosen paths of the earlier blocks) once per rating batch instead
    /// of once per candidate, projection and batch. Same scores: after the per-candidate BN
    /// re-estimation every candidate's prefix holds the same statistics (they are estimated
    /// from the same calibration batch through the same paths), and a train-mode prefix
    /// output does not depend on them at all. `false` is the literal official loop (A/B).
    #[serde(default = "default_true")]
    pub cache_prefix: bool,
}

fn default_true() -> bool {
    true
}

impl Default for RateOptions {
    fn default() -> Self {
        Self {
            centre: CentreMode::Raw,
            recalibrate_predictor: None,
            infer_bn_momentum: true,
            view_epoch: None,
            write_outputs: true,
            cache_prefix: true,
        }
    }
}

/// The Siamese pair of one block seen as a [`CandidateModel`].
pub struct SiameseCandidates<S: Supernet> {
    online: Option<OnlineNet<S>>,
    target: Option<TargetNet<S>>,
    chosen: Vec<BlockPath>,
    calibration: BnCalibration,
    recalibrate_predictor: bool,
    cache: HashMap<Vec<usize>, (OnlineNet<S>, TargetNet<S>)>,
    current: Option<Vec<usize>>,
    /// Inputs are prefix features already ([`PrefixFeatures`]), not images.
    prefixed: bool,
}

fn plain(x: Tensor<4>) -> Tensor<4> {
    if x.is_autodiff() {
        x.without_autodiff()
    } else {
        x
    }
}

impl<S: Supernet> SiameseCandidates<S> {
    /// Copies the trainer's networks for block `chosen.len()`.
    pub fn new(
        online: &OnlineNet<S>,
        target: &TargetNet<S>,
        chosen: &[BlockPath],
        recalibrate_predictor: bool,
        infer_bn_momentum: bool,
        calibration_batch: usize,
    ) -> Self {
        let samples = calibration_batch;
        let calibration = if infer_bn_momentum {
            BnCalibration::infer()
        } else {
            BnCalibration::known(0.1)
        }
        .with_samples(Arc::new(move |path: &str| {
            // The heads' BN1d layers (`…mlp.bn0`) see one value per image and channel.
            path.ends_with("mlp.bn0").then_some(samples)
        }));
        Self {
            online: Some(online.valid().train().no_grad()),
            target: Some(target.valid().train().no_grad()),
            chosen: chosen.to_vec(),
            calibration,
            recalibrate_predictor,
            cache: HashMap::new(),
            current: None,
            prefixed: false,
        }
    }

    /// The same candidates fed with prefix features ([`PrefixFeatures`]) instead of images:
    /// calibration batches and evaluation views must have gone through the prefix.
    pub fn with_prefixed_inputs(mut self) -> Self {
        self.prefixed = true;
        self
    }

    fn prefix(&self, backbone: &S, x: Tensor<4>) -> Tensor<4> {
        if self.prefixed {
            x
        } else {
            backbone.forward_prefix(x, &self.chosen)
        }
    }

    fn eval(&self) -> &(OnlineNet<S>, TargetNet<S>) {
        let key = self
            .current
            .as_ref()
            .expect("CandidateModel::calibrate must be called before the projections");
        &self.cache[key]
    }
}

impl<S: Supernet> CandidateModel for SiameseCandidates<S> {
    fn calibrate(&mut self, path: &[usize], calib: &ViewPair) -> Result<()> {
        if self.cache.contains_key(path) {
            self.current = Some(path.to_vec());
            return Ok(());
        }
        let online = self.online.take().expect("online copy");
        let target = self.target.take().expect("target copy");
        let x = calib.1.clone();
        let chosen = self.chosen.clone();
        let recal_pred = self.recalibrate_predictor;
        let prefixed = self.prefixed;
        let (mut online, target) = self.calibration.recalibrate((online, target), |(on, tg)| {
            // Prefixed inputs leave the prefix's BNs at their reset values: that prefix never
            // runs again (its features come from `PrefixFeatures`).
            let f = if prefixed {
                x.clone()
            } else {
                tg.backbone.forward_prefix(x.clone(), &chosen)
            };
            let tb = tg.backbone.forward_block(f.clone(), &chosen, path);
            let _ = tg.head.forward(tb);
            let ob = on.backbone.forward_block(f, &chosen, path);
            let z = on.head.forward(ob);
            if recal_pred {
                let _ = on.predictor.forward(z);
            }
        });
        if !recal_pred {
            // Official quirk (D4): reset, never recalibrated.
            online.predictor = reset_bn_stats(online.predictor);
        }
        self.cache
            .insert(path.to_vec(), (online.valid(), target.valid()));
        self.online = Some(online);
        self.target = Some(target);
        self.current = Some(path.to_vec());
        Ok(())
    }

    fn target_projection(&self, path: &[usize], x: Tensor<4>) -> Tensor<2> {
        let (_, tg) = self.eval();
        let f = self.prefix(&tg.backbone, plain(x));
        tg.head
            .forward(tg.backbone.forward_block(f, &self.chosen, path))
    }

    fn online_prediction(&self, path: &[usize], x: Tensor<4>) -> Tensor<2> {
        let (on, tg) = self.eval();
        // The online candidate is fed by the target prefix (official evaluation).
        let f = self.prefix(&tg.backbone, plain(x));
        let z = on
            .head
            .forward(on.backbone.forward_block(f, &self.chosen, path));
        on.predictor.forward(z)
    }
}

/// The prefix of a rated block (the target's chosen paths of the earlier blocks) with its BNs
/// re-estimated on the calibration batch, exactly as every candidate's copy would hold them
/// after its own re-estimation. It turns images into the features every candidate sees.
pub struct PrefixFeatures<S: Supernet> {
    /// Train-mode copy (calibration features: batch statistics).
    train: TargetNet<S>,
    /// Eval-mode copy with the re-estimated statistics (evaluation features).
    eval: TargetNet<S>,
    chosen: Vec<BlockPath>,
}

impl<S: Supernet> PrefixFeatures<S> {
    /// Re-estimates the prefix's BNs of a copy of `target` on the images `calib`.
    pub fn new(
        target: &TargetNet<S>,
        chosen: &[BlockPath],
        calibration: &BnCalibration,
        calib: &Tensor<4>,
    ) -> Self {
        let chosen = chosen.to_vec();
        let train = target.valid().train().no_grad();
        let calibrated = calibration.recalibrate(train.valid().train().no_grad(), |tg| {
            let _ = tg.backbone.forward_prefix(calib.clone(), &chosen);
        });
        Self {
            train,
            eval: calibrated.valid(),
            chosen,
        }
    }

    /// Prefix features of the calibration images, in train mode (what the candidates'
    /// re-estimation forwards see).
    pub fn calibration(&self, x: Tensor<4>) -> Tensor<4> {
        self.train.backbone.forward_prefix(x, &self.chosen)
    }

    /// Prefix features of evaluation images, in eval mode.
    pub fn evaluation(&self, x: Tensor<4>) -> Tensor<4> {
        self.eval.backbone.forward_prefix(plain(x), &self.chosen)
    }
}

/// The search space a run configuration trains.
pub fn space_of(cfg: &RunConfig) -> SearchSpace {
    SearchSpace::new(cfg.space.kind, cfg.space.nats_split)
}

/// Fixed-view loader over the rating images: index order, shared pair, rating batch size,
/// the training augmentations (the official val pipelines are copies of the training ones).
pub fn rating_loader(
    cfg: &RunConfig,
    source: Arc<dyn ImageSource>,
    batch_size: usize,
) -> Result<ViewLoader> {
    let base = ensemble_bootstrap::setup::loader_config(cfg);
    let lc = LoaderConfig {
        batch_size,
        shuffle: false,
        drop_last: false,
        pair_mode: PairMode::Shared,
        ..base
    };
    ViewLoader::new(source, lc).map_err(|e| SearchError::Model(format!("rating data: {e}")))
}

/// Rates block `chosen.len()` of a trained Siamese pair on `rating_data` (spec §5):
/// evaluation batches of `rating.batch_size` images in index order; the calibration batch is
/// the first `rating.calibration_batch_size` rating images with views of another epoch
/// (the trainer does not expose its training images to the selector).
#[allow(clippy::too_many_arguments)]
pub fn rate_block<S: Supernet>(
    online: &OnlineNet<S>,
    target: &TargetNet<S>,
    chosen: &[BlockPath],
    population: &[BlockPath],
    cfg: &RunConfig,
    rating_data: &Arc<dyn ImageSource>,
    device: &Device,
    options: &RateOptions,
) -> Result<BlockRanking> {
    let block = chosen.len();
    let n = rating_data.len();
    if n == 0 {
        return Err(SearchError::Invalid("no rating images".into()));
    }
    let bs = cfg.rating.batch_size.max(1);
    let loader = rating_loader(cfg, rating_data.clone(), bs)?;
    let epoch = options.view_epoch.unwrap_or(block as u64);
    let data_err = |e: bossnas_datasets::DataError| SearchError::Model(format!("rating data: {e}"));
    let calib_idx: Vec<usize> = (0..cfg.rating.calibration_batch_size.clamp(1, n)).collect();
    let calib = loader
        .load(&calib_idx, epoch.wrapping_add(1_000_003), device)
        .map_err(data_err)?
        .pairs
        .swap_remove(0);
    let recal = options
        .recalibrate_predictor
        .unwrap_or(!cfg.rating.predictor_bn_quirk);
    let model = SiameseCandidates::new(
        online,
        target,
        chosen,
        recal,
        options.infer_bn_momentum,
        calib_idx.len(),
    );
    let batches = n.div_ceil(bs);
    let mut views = |b: usize| -> Result<ViewPair> {
        let idx: Vec<usize> = (b * bs..((b + 1) * bs).min(n)).collect();
        Ok(loader
            .load(&idx, epoch, device)
            .map_err(data_err)?
            .pairs
            .swap_remove(0))
    };
    let entries = if options.cache_prefix && !chosen.is_empty() {
        let prefix = PrefixFeatures::new(target, chosen, &model.calibration, &calib.1);
        let calib = (
            prefix.calibration(calib.0.clone()),
            prefix.calibration(calib.1.clone()),
        );
        let mut load = |b: usize| -> Result<ViewPair> {
            let (x1, x2) = views(b)?;
            Ok((prefix.evaluation(x1), prefix.evaluation(x2)))
        };
        rate_population_streaming(
            &mut model.with_prefixed_inputs(),
            population,
            batches,
            &mut load,
            &calib,
            options.centre,
            &mut |_, _| {},
        )?
    } else {
        let mut model = model;
        rate_population_streaming(
            &mut model,
            population,
            batches,
            &mut views,
            &calib,
            options.centre,
            &mut |_, _| {},
        )?
    };
    Ok(BlockRanking { block, entries })
}

/// Writes a block's ranking files into `<run_dir>/rating/`.
pub fn write_rating(
    run_dir: &Path,
    space: SearchSpace,
    ranking: &BlockRanking,
    chosen: &[BlockPath],
    options: &RateOptions,
) -> Result<()> {
    write_block_outputs(
        &run_dir.join(RATING_DIR),
        space,
        ranking,
        chosen,
        serde_json::json!({ "options": options }),
    )?;
    Ok(())
}

/// The trainer's block selector: population-centre rating, best = lowest score.
#[derive(Debug, Clone, Copy, Default)]
pub struct PopulationCentreSelector {
    /// Rating options.
    pub options: RateOptions,
}

impl<S: Supernet> BlockSelector<S> for PopulationCentreSelector {
    fn select(&mut self, ctx: &BlockContext<'_, S>) -> std::result::Result<BlockPath, BoxError> {
        let ranking = rate_block(
            ctx.online,
            ctx.target,
            ctx.chosen,
            ctx.population,
            ctx.config,
            ctx.rating_data,
            ctx.device,
            &self.options,
        )?;
        if self.options.write_outputs {
            write_rating(
                ctx.run_dir,
                space_of(ctx.config),
                &ranking,
                ctx.chosen,
                &self.options,
            )?;
        }
        Ok(ranking.best().ok_or("empty ranking")?.path.clone())
    }
}

/// Factory of [`PopulationCentreSelector`] for `ensemble_bootstrap::trainer::train_space`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PopulationCentreSelectorFactory {
    /// Rating options.
    pub options: RateOptions,
}

impl SelectorFactory for PopulationCentreSelectorFactory {
    fn selector<S: Supernet + 'static>(&self) -> Box<dyn BlockSelector<S>> {
        Box::new(PopulationCentreSelector {
            options: self.options,
        })
    }
}
