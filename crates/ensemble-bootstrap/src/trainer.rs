//! The block-wise ensemble-bootstrapping training loop (spec §3, §4.1–4.5), generic over any
//! [`Supernet`].
//!
//! # One optimizer step
//!
//! For each of `accumulation_steps` micro-batches:
//! 1. the loader gives the view pairs (one shared pair for NATS, one pair per path otherwise);
//! 2. [`PathSampler`] draws the paths from block `k`'s population (seeded ChaCha RNG);
//! 3. [`ensemble_forward`]: target branch (no gradients) = target prefix along
//!    `best_paths[..k]` → block `k` along each path → target head → [`target_ensemble`](crate::loss::target_ensemble);
//!    online branch = online prefix (with gradients unless `train.freeze_earlier_blocks`) →
//!    block `k` along each path → online head → predictor → loss, **summed over paths**;
//! 4. one backward of `loss / accumulation_steps`; the gradients are summed over micro-batches
//!    ([`GradientsAccumulator`]).
//!
//! Then all-zero gradients are dropped ([`drop_zero_grads`]: unsampled ops get no decay and no
//! momentum), LARS steps with the schedule's lr (the lr of the step's last micro-iteration,
//! as mmcv sets it before every iteration), and the target follows by EMA with the per-block
//! cosine momentum.
//!
//! # Blocks
//!
//! Each block runs `epochs_per_block × ⌊batches_per_epoch / accumulation_steps⌋` optimizer
//! steps, or fewer under a time budget ([`crate::time_budget`]). At its end a
//! [`BlockSelector`] picks the block's best path (the real rating lives in
//! `bossnas-search`; [`LossEmaSelector`](crate::selector::LossEmaSelector) is a test stand-in), it is appended to `best_paths`,
//! and the next block starts with a fresh optimizer, restarted schedules and new heads. The
//! input of block `k` is always computed from `best_paths[..k]` (spec §9 B1).
//!
//! # Checkpoints and exact resume
//!
//! A checkpoint (see [`crate::checkpoint`]) holds the online net (supernet + head + predictor),
//! the target net, the LARS state and a [`TrainState`] with the block, best paths, step
//! counters, path-sampling RNG, loader position and the per-path training-loss EMAs. It is
//! written at the start of the run, every `checkpoint_every_steps` optimizer steps (default:
//! `checkpoint.interval_epochs` epochs), at every block boundary (after the next block's heads
//! exist) and when the run stops at `max_steps`. New heads are initialised from a seed derived
//! from the run seed and the block, under a process-wide lock, so a resumed run on the CPU
//! continues bit for bit like an uninterrupted one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bossnas_supernet::{BlockPath, Supernet};
use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::checkpoint::{CheckpointError, RngState, RunDir, TrainState, record_of};
use crate::heads::{PredictorConfig, ProjectorConfig};
use crate::lars::{LarsConfig, drop_zero_grads};
use crate::phase::span;
use crate::progress::{ProgressFormat, TrainProgress};
use crate::sampling::{PathSampler, SamplingError};
use crate::seeded::{mix, seeded_heads, seeded_init};
use crate::selector::{BlockContext, BlockSelector, LOSS_EMA_DECAY, SelectorFactory};
use crate::setup::{
    DataSetup, SetupError, SupernetTask, loader_config, open_data, spatial_adapters, with_supernet,
};
use crate::siamese::{HeadError, HeadSpec, OnlineNet, Siamese, ensemble_forward};
use crate::time_budget::{BlockRun, TimeBudget};
use bossnas_config::schedule::{BlockPosition, LrSchedule, MomentumSchedule};
use bossnas_config::{ConfigError, NanPolicy, RunConfig};
use bossnas_datasets::{DataError, ImageSource, ViewLoader};

/// Everything that can stop a run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Setting the run up failed (data, supernet).
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// Reading data failed.
    #[error("data: {0}")]
    Data(#[from] DataError),
    /// Saving or loading a checkpoint failed.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// Heads cannot be built for a block.
    #[error(transparent)]
    Head(#[from] HeadError),
    /// Paths cannot be sampled.
    #[error(transparent)]
    Sampling(#[from] SamplingError),
    /// The loss became NaN or infinite (with `nan_policy = abort`).
    #[error(
        "non-finite loss {loss} at block {block}, block step {block_step} (global step \
         {global_step}), paths {paths:?}; the last good checkpoint is {}",
        checkpoint.as_ref().map_or("<none>".to_string(), |p| p.display().to_string())
    )]
    NonFinite {
        /// Block being trained.
        block: usize,
        /// Optimizer step inside the block (the failing one, not applied).
        block_step: u64,
        /// Optimizer step of the run (the failing one, not applied).
        global_step: u64,
        /// The offending loss value.
        loss: f64,
        /// The paths of the failing micro-batch.
        paths: Vec<BlockPath>,
        /// The newest checkpoint, untouched by the failure.
        checkpoint: Option<PathBuf>,
    },
    /// The block selector failed or returned a path outside the population.
    #[error("block {block} selection: {message}")]
    Selector {
        /// Block.
        block: usize,
        /// What went wrong.
        message: String,
    },
    /// A run directory cannot be resumed.
    #[error("resume: {0}")]
    Resume(String),
}

/// Run-time options that are not part of the experiment (not in [`RunConfig`]).
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Stop (with a checkpoint) once the run has taken this many optimizer steps in total.
    pub max_steps: Option<u64>,
    /// Checkpoint every this many optimizer steps; `None` = every
    /// `checkpoint.interval_epochs` epochs (0 = block ends only).
    pub checkpoint_every_steps: Option<u64>,
    /// Checkpoint directories kept (≥ 1).
    pub keep_checkpoints: usize,
    /// Report progress on stderr (`false`: `--quiet`).
    pub progress: bool,
    /// How progress reads: for people (terminal line / log lines) or JSON lines for tools.
    pub progress_format: ProgressFormat,
    /// Wall-clock budget of this call's training, split over the blocks left
    /// ([`crate::time_budget`]): a block whose share is used stops at a step boundary and is
    /// rated and checkpointed as if it had run all its steps.
    pub time_budget: Option<std::time::Duration>,
    /// Test hook: the loss of this global optimizer step is replaced by NaN.
    #[doc(hidden)]
    pub inject_nan_at_step: Option<u64>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            max_steps: None,
            checkpoint_every_steps: None,
            keep_checkpoints: 2,
            progress: false,
            progress_format: ProgressFormat::Human,
            time_budget: None,
            inject_nan_at_step: None,
        }
    }
}

/// How a call to [`Trainer::run`] ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOutcome {
    /// Best paths chosen so far (all blocks when `finished`).
    pub best_paths: Vec<BlockPath>,
    /// Every block was trained and selected.
    pub finished: bool,
    /// Optimizer steps taken in the run so far.
    pub global_step: u64,
    /// Logged loss (mean over paths and micro-batches) of the last step taken in this call.
    pub last_loss: Option<f64>,
    /// The newest checkpoint.
    pub checkpoint: Option<PathBuf>,
}

/// One JSON line of `metrics.jsonl` per optimizer step.
#[derive(Debug, Clone, Serialize)]
pub struct StepMetrics {
    /// `"step"`.
    pub event: &'static str,
    /// Block.
    pub block: usize,
    /// Optimizer step inside the block (after this step).
    pub block_step: u64,
    /// Optimizer step of the run (after this step).
    pub global_step: u64,
    /// Block-local epoch of the step's last micro-iteration.
    pub epoch: usize,
    /// Its iteration inside the epoch.
    pub iter_in_epoch: usize,
    /// Mean over paths and micro-batches of the per-path loss (in [−4, 4]).
    pub loss: f64,
    /// Per sampled path (micro-batches averaged): `(path, loss)`.
    pub path_losses: Vec<(String, f64)>,
    /// Learning rate used.
    pub lr: f64,
    /// EMA momentum used.
    pub momentum: f64,
    /// Images in the step (all micro-batches).
    pub images: usize,
    /// Wall time of the step.
    pub seconds: f64,
    /// Images per second.
    pub images_per_s: f64,
    /// The step was skipped (non-finite loss under `nan_policy = skip_step`).
    pub skipped: bool,
}

#[derive(Debug, Clone, Serialize)]
struct BlockEndMetrics {
    event: &'static str,
    best_path: BlockPath,
    global_step: u64,
    /// `block`, steps run and planned, whether the time budget stopped it.
    #[serde(flatten)]
    run: BlockRun,
}

/// `"3-5"` for `[3, 5]`.
pub fn path_key(path: &[usize]) -> String {
    path.iter()
        .map(|o| o.to_string())
        .collect::<Vec<_>>()
        .join("-")
}

/// The block-wise Siamese supernet trainer. See the [module documentation](self).
pub struct Trainer<S: Supernet> {
    cfg: RunConfig,
    opts: TrainOptions,
    device: Device,
    run_dir: RunDir,
    siamese: Option<Siamese<S>>,
    optimizer: ModuleOptimizer,
    loader: ViewLoader,
    rating: Arc<dyn ImageSource>,
    rng: ChaCha8Rng,
    sampler: PathSampler,
    head_spec: HeadSpec,
    block: usize,
    best_paths: Vec<BlockPath>,
    block_step: u64,
    global_step: u64,
    population: Vec<BlockPath>,
    loss_ema: BTreeMap<BlockPath, f64>,
    steps_per_epoch: usize,
    num_blocks: usize,
    last_checkpoint: Option<(u64, usize, PathBuf)>,
}

impl<S: Supernet> std::fmt::Debug for Trainer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("block", &self.block)
            .field("best_paths", &self.best_paths)
            .field("block_step", &self.block_step)
            .field("global_step", &self.global_step)
            .finish_non_exhaustive()
    }
}

fn head_spec(cfg: &RunConfig, spatial: bool) -> HeadSpec {
    HeadSpec {
        projector_in: cfg.heads.projector_in,
        projector: ProjectorConfig::from_run(cfg, cfg.heads.projector_in.unwrap_or(1)),
        predictor: PredictorConfig::from_run(cfg),
        spatial_adapters: spatial,
    }
}

impl<S: Supernet> Trainer<S> {
    /// Starts a new run in `run_dir` (the resolved config is saved there and an initial
    /// checkpoint is written). `build` creates the supernet on the given device; it is called
    /// under a seeded RNG. `device` may be plain or autodiff (autodiff is added).
    pub fn new(
        cfg: RunConfig,
        opts: TrainOptions,
        run_dir: RunDir,
        data: DataSetup,
        device: &Device,
        build: impl FnOnce(&Device) -> S,
        spatial_adapters: bool,
    ) -> Result<Self, TrainError> {
        cfg.validate()?;
        cfg.save_resolved(run_dir.root())?;
        let device = device.clone().autodiff();
        let backbone = seeded_init(&device, mix(cfg.seed, 0xBAC0), || build(&device));
        let mut t = Self::assemble(cfg, opts, run_dir, data, device, backbone, spatial_adapters)?;
        t.start_block()?;
        t.checkpoint()?;
        Ok(t)
    }

    /// Continues the run in `run_dir` from its newest checkpoint. `cfg` must be the run's
    /// resolved configuration (`config.resolved.toml`), device and data root may differ.
    pub fn resume(
        cfg: RunConfig,
        opts: TrainOptions,
        run_dir: RunDir,
        data: DataSetup,
        device: &Device,
        build: impl FnOnce(&Device) -> S,
        spatial_adapters: bool,
    ) -> Result<Self, TrainError> {
        cfg.validate()?;
        let ck = run_dir.resume_latest()?.ok_or_else(|| {
            TrainError::Resume(format!(
                "{} has no checkpoint (missing {})",
                run_dir.root().display(),
                run_dir
                    .checkpoint_dir()
                    .join(crate::checkpoint::LATEST)
                    .display()
            ))
        })?;
        let device = device.clone().autodiff();
        let backbone = seeded_init(&device, mix(cfg.seed, 0xBAC0), || build(&device));
        let mut t = Self::assemble(cfg, opts, run_dir, data, device, backbone, spatial_adapters)?;
        let st = ck.state.clone();
        if st.block > t.num_blocks || st.best_paths.len() != st.block {
            return Err(TrainError::Resume(format!(
                "inconsistent state: block {} with {} best paths ({} blocks)",
                st.block,
                st.best_paths.len(),
                t.num_blocks
            )));
        }
        t.block = st.block;
        t.best_paths = st.best_paths.clone();
        t.block_step = st.block_step;
        t.global_step = st.global_step;
        // Build this block's structure (heads), then overwrite every tensor from the record.
        t.start_block()?;
        let s = t.siamese.take().expect("siamese");
        let online = ck.load_module("online", s.online)?;
        let target = ck.load_module("target", s.target)?.no_grad();
        t.siamese = Some(Siamese { online, target });
        t.optimizer = ck.load_optimizer(LarsConfig::from_run(&t.cfg).init())?;
        t.rng = st
            .rng
            .as_ref()
            .ok_or_else(|| TrainError::Resume("checkpoint has no RNG state".into()))?
            .restore();
        let pos = st
            .data_position
            .ok_or_else(|| TrainError::Resume("checkpoint has no data position".into()))?;
        t.loader.restore(pos)?;
        t.loss_ema = decode_loss_ema(&st.extra)?;
        t.last_checkpoint = Some((t.global_step, t.block, ck.dir.clone()));
        Ok(t)
    }

    fn assemble(
        cfg: RunConfig,
        opts: TrainOptions,
        run_dir: RunDir,
        data: DataSetup,
        device: Device,
        backbone: S,
        spatial: bool,
    ) -> Result<Self, TrainError> {
        let loader = ViewLoader::new(data.train.clone(), loader_config(&cfg))?;
        let accum = cfg.train.accumulation_steps;
        let steps_per_epoch = loader.batches_per_epoch() / accum;
        if steps_per_epoch == 0 {
            return Err(SetupError::Config(format!(
                "{} batches per epoch give no optimizer step with train.accumulation_steps = \
                 {accum} ({})",
                loader.batches_per_epoch(),
                data.description
            ))
            .into());
        }
        let num_blocks = backbone.num_blocks();
        let head = head_spec(&cfg, spatial);
        let population = backbone.population(0, &[]);
        let (h, p) = seeded_heads(&device, mix(cfg.seed, 0x4EAD), || {
            head.build(&backbone, &[], &population, &device)
        })?;
        Ok(Self {
            optimizer: LarsConfig::from_run(&cfg).init(),
            rng: ChaCha8Rng::seed_from_u64(mix(cfg.seed, 0x9A7B)),
            sampler: PathSampler::new(cfg.train.sampling.into(), cfg.train.paths_per_step),
            siamese: Some(Siamese::new(backbone, h, p)),
            head_spec: head,
            cfg,
            opts,
            device,
            run_dir,
            loader,
            rating: data.rating,
            block: 0,
            best_paths: Vec::new(),
            block_step: 0,
            global_step: 0,
            population,
            loss_ema: BTreeMap::new(),
            steps_per_epoch,
            num_blocks,
            last_checkpoint: None,
        })
    }

    /// Sets up block `self.block` (or the last block's structure once all are done): its
    /// population, fresh heads (seeded by block), a fresh optimizer.
    fn start_block(&mut self) -> Result<(), TrainError> {
        let hb = self.block.min(self.num_blocks - 1);
        let chosen = &self.best_paths[..hb];
        let s = self.siamese.take().expect("siamese");
        self.population = s.online.backbone.population(hb, chosen);
        self.sampler.check(hb, &self.population)?;
        let seed = mix(self.cfg.seed, 0x4EAD + hb as u64);
        let built = seeded_heads(&self.device, seed, || {
            self.head_spec
                .build(&s.online.backbone, chosen, &self.population, &self.device)
        });
        let (head, predictor) = match built {
            Ok(x) => x,
            Err(e) => {
                self.siamese = Some(s);
                return Err(e.into());
            }
        };
        self.siamese = Some(s.with_new_heads(head, predictor));
        self.optimizer = LarsConfig::from_run(&self.cfg).init();
        Ok(())
    }

    /// The online/target pair.
    pub fn siamese(&self) -> &Siamese<S> {
        self.siamese.as_ref().expect("siamese")
    }

    /// Best paths chosen so far.
    pub fn best_paths(&self) -> &[BlockPath] {
        &self.best_paths
    }

    /// Block being trained (= number of blocks once finished).
    pub fn block(&self) -> usize {
        self.block
    }

    /// Optimizer steps taken in the run.
    pub fn global_step(&self) -> u64 {
        self.global_step
    }

    /// Optimizer steps per block.
    pub fn steps_per_block(&self) -> u64 {
        (self.steps_per_epoch * self.cfg.train.epochs_per_block) as u64
    }

    /// The run directory.
    pub fn run_dir(&self) -> &RunDir {
        &self.run_dir
    }

    /// The training device (autodiff).
    pub fn device(&self) -> &Device {
        &self.device
    }

    fn lr_schedule(&self) -> LrSchedule {
        self.cfg
            .lr_schedule(self.steps_per_epoch * self.cfg.train.accumulation_steps)
    }

    fn momentum_schedule(&self) -> MomentumSchedule {
        self.cfg.momentum_schedule(self.steps_per_block() as usize)
    }

    fn position(&self, micro: usize) -> BlockPosition {
        let ipe = self.steps_per_epoch * self.cfg.train.accumulation_steps;
        let i = self.block_step as usize * self.cfg.train.accumulation_steps + micro;
        BlockPosition {
            epoch: i / ipe,
            iter_in_epoch: i % ipe,
        }
    }

    fn train_state(&self) -> TrainState {
        let pos = self.position(0);
        let mut extra = serde_json::Map::new();
        extra.insert("loss_ema".into(), encode_loss_ema(&self.loss_ema));
        TrainState {
            block: self.block,
            best_paths: self.best_paths.clone(),
            epoch: pos.epoch,
            iter_in_epoch: pos.iter_in_epoch,
            block_step: self.block_step,
            global_step: self.global_step,
            rng: Some(RngState::capture(&self.rng)),
            data_position: Some(self.loader.position()),
            extra,
        }
    }

    /// Writes a checkpoint of the current state (skipped if one exists for this exact state).
    pub fn checkpoint(&mut self) -> Result<PathBuf, TrainError> {
        if let Some((step, block, dir)) = &self.last_checkpoint
            && *step == self.global_step
            && *block == self.block
        {
            return Ok(dir.clone());
        }
        let s = self.siamese();
        let records = vec![
            ("online".to_string(), record_of(&s.online)),
            ("target".to_string(), record_of(&s.target)),
        ];
        let tag = format!("b{}-s{:07}", self.block, self.global_step);
        let dir = self.run_dir.save_checkpoint(
            &tag,
            records,
            Some(&self.optimizer),
            &self.train_state(),
            self.opts.keep_checkpoints,
        )?;
        self.last_checkpoint = Some((self.global_step, self.block, dir.clone()));
        Ok(dir)
    }

    fn checkpoint_interval(&self) -> u64 {
        match self.opts.checkpoint_every_steps {
            Some(n) => n,
            None => (self.cfg.checkpoint.interval_epochs * self.steps_per_epoch) as u64,
        }
    }

    /// Trains until every block is done or `max_steps` is reached.
    pub fn run(&mut self, selector: &mut dyn BlockSelector<S>) -> Result<TrainOutcome, TrainError> {
        let total = self.steps_per_block() * self.num_blocks as u64;
        let mut progress = TrainProgress::new(
            self.opts.progress,
            self.opts.progress_format,
            self.cfg.space.kind,
            self.steps_per_block(),
            total,
            self.global_step.min(total),
        );
        let mut last_loss = None;
        let interval = self.checkpoint_interval();
        let mut budget = self.opts.time_budget.map(TimeBudget::start);
        loop {
            if self.block >= self.num_blocks {
                let dir = self.checkpoint()?;
                progress.checkpoint(self.global_step, &dir);
                progress.end(true, self.global_step, &self.best_paths);
                return Ok(self.outcome(true, last_loss, dir));
            }
            let planned = self.steps_per_block();
            let out_of_time = self.block_step < planned
                && budget.as_mut().is_some_and(|b| {
                    b.block_spent(self.block, self.num_blocks - self.block, self.block_step)
                });
            if self.block_step >= planned || out_of_time {
                let steps = self.block_step;
                let candidates = self.population.len();
                let best = self.end_block(selector, out_of_time)?;
                progress.block_end(self.block - 1, &best, candidates);
                if out_of_time && self.opts.progress {
                    eprintln!(
                        "block {}: the time budget stopped it after {steps} of {planned} steps",
                        self.block - 1
                    );
                }
                if let Some((step, _, dir)) = &self.last_checkpoint {
                    progress.checkpoint(*step, dir);
                }
                continue;
            }
            if self.opts.max_steps.is_some_and(|m| self.global_step >= m) {
                let dir = self.checkpoint()?;
                progress.checkpoint(self.global_step, &dir);
                progress.end(false, self.global_step, &self.best_paths);
                return Ok(self.outcome(false, last_loss, dir));
            }
            let m = self.step()?;
            last_loss = Some(m.loss);
            progress.step(
                m.block,
                m.block_step,
                m.global_step,
                m.loss,
                m.lr,
                m.momentum,
                m.images_per_s,
            );
            self.run_dir.append_metrics(&m)?;
            if interval > 0 && self.global_step.is_multiple_of(interval) {
                let dir = self.checkpoint()?;
                progress.checkpoint(self.global_step, &dir);
            }
        }
    }

    fn outcome(&self, finished: bool, last_loss: Option<f64>, dir: PathBuf) -> TrainOutcome {
        TrainOutcome {
            best_paths: self.best_paths.clone(),
            finished,
            global_step: self.global_step,
            last_loss,
            checkpoint: Some(dir),
        }
    }

    fn end_block(
        &mut self,
        selector: &mut dyn BlockSelector<S>,
        stopped_by_time_budget: bool,
    ) -> Result<BlockPath, TrainError> {
        let block = self.block;
        let best = {
            let s = self.siamese();
            let ctx = BlockContext {
                block,
                chosen: &self.best_paths[..block],
                population: &self.population,
                online: &s.online,
                target: &s.target,
                device: &self.device,
                config: &self.cfg,
                rating_data: &self.rating,
                train_loss_ema: &self.loss_ema,
                run_dir: self.run_dir.root(),
            };
            selector.select(&ctx).map_err(|e| TrainError::Selector {
                block,
                message: e.to_string(),
            })?
        };
        if !self.population.contains(&best) {
            return Err(TrainError::Selector {
                block,
                message: format!("path {best:?} is not in the block's population"),
            });
        }
        self.run_dir.append_metrics(&BlockEndMetrics {
            event: "block_end",
            best_path: best.clone(),
            global_step: self.global_step,
            run: BlockRun {
                block,
                steps: self.block_step,
                planned_steps: self.steps_per_block(),
                stopped_by_time_budget,
            },
        })?;
        self.best_paths.push(best.clone());
        self.block += 1;
        self.block_step = 0;
        self.loss_ema.clear();
        self.start_block()?;
        self.checkpoint()?;
        Ok(best)
    }

    /// One optimizer step (all micro-batches).
    fn step(&mut self) -> Result<StepMetrics, TrainError> {
        let start = Instant::now();
        let accum = self.cfg.train.accumulation_steps;
        let chosen: Vec<BlockPath> = self.best_paths[..self.block].to_vec();
        let freeze = self.cfg.train.freeze_earlier_blocks;
        let mut acc = GradientsAccumulator::<OnlineNet<S>>::new();
        let mut sums: BTreeMap<BlockPath, (f64, usize)> = BTreeMap::new();
        let mut loss_sum = 0.0;
        let mut loss_count = 0usize;
        let mut images = 0usize;
        let mut skipped = false;
        for _ in 0..accum {
            let batch = span("data", || self.loader.next_batch(&self.device))?;
            images += batch.indices.len();
            let paths = self.sampler.sample(&self.population, &mut self.rng);
            let (total, per_path) =
                ensemble_forward(self.siamese(), &batch.pairs, &chosen, &paths, freeze);
            let mut values: Vec<f64> = Tensor::cat(per_path, 0)
                .into_data()
                .iter::<f32>()
                .map(f64::from)
                .collect();
            if self.opts.inject_nan_at_step == Some(self.global_step) {
                values[0] = f64::NAN;
            }
            if let Some(&bad) = values.iter().find(|v| !v.is_finite()) {
                match self.cfg.train.nan_policy {
                    NanPolicy::Abort => {
                        return Err(TrainError::NonFinite {
                            block: self.block,
                            block_step: self.block_step,
                            global_step: self.global_step,
                            loss: bad,
                            paths,
                            checkpoint: self.last_checkpoint.as_ref().map(|c| c.2.clone()),
                        });
                    }
                    NanPolicy::SkipStep => {
                        skipped = true;
                        break;
                    }
                }
            }
            for (p, v) in paths.iter().zip(&values) {
                let e = sums.entry(p.clone()).or_insert((0.0, 0));
                e.0 += v;
                e.1 += 1;
                loss_sum += v;
                loss_count += 1;
            }
            let s = self.siamese.as_ref().expect("siamese");
            span("backward", || {
                let grads = total.div_scalar(accum as f64).backward();
                acc.accumulate(&s.online, GradientsParams::from_grads(grads, &s.online));
            });
        }
        let pos = self.position(accum - 1);
        let lr = self.lr_schedule().lr(pos);
        let momentum = self.momentum_schedule().momentum(self.block_step as usize);
        if !skipped {
            let s = self.siamese.take().expect("siamese");
            let grads = span("drop zero grads", || {
                drop_zero_grads(&s.online, acc.grads())
            });
            let online = span("optimizer", || self.optimizer.step(lr, s.online, grads));
            let s = Siamese {
                online,
                target: s.target,
            };
            self.siamese = Some(span("ema", || s.ema_update(momentum)));
            for (p, (sum, n)) in &sums {
                let v = sum / *n as f64;
                let e = self.loss_ema.entry(p.clone()).or_insert(v);
                *e = LOSS_EMA_DECAY * *e + (1.0 - LOSS_EMA_DECAY) * v;
            }
        }
        self.block_step += 1;
        self.global_step += 1;
        let seconds = start.elapsed().as_secs_f64();
        Ok(StepMetrics {
            event: "step",
            block: self.block,
            block_step: self.block_step,
            global_step: self.global_step,
            epoch: pos.epoch,
            iter_in_epoch: pos.iter_in_epoch,
            loss: if loss_count > 0 {
                loss_sum / loss_count as f64
            } else {
                f64::NAN
            },
            path_losses: sums
                .iter()
                .map(|(p, (s, n))| (path_key(p), s / *n as f64))
                .collect(),
            lr,
            momentum,
            images,
            seconds,
            images_per_s: images as f64 / seconds.max(1e-9),
            skipped,
        })
    }
}

fn encode_loss_ema(ema: &BTreeMap<BlockPath, f64>) -> serde_json::Value {
    // f64 bits, so the resumed selection sees exactly the same numbers.
    serde_json::Value::Array(
        ema.iter()
            .map(|(p, v)| serde_json::json!({ "path": p, "bits": v.to_bits(), "value": v }))
            .collect(),
    )
}

fn decode_loss_ema(
    extra: &serde_json::Map<String, serde_json::Value>,
) -> Result<BTreeMap<BlockPath, f64>, TrainError> {
    let mut out = BTreeMap::new();
    let Some(v) = extra.get("loss_ema") else {
        return Ok(out);
    };
    let bad = || TrainError::Resume("unreadable `loss_ema` in state.json".into());
    for e in v.as_array().ok_or_else(bad)? {
        let path: BlockPath =
            serde_json::from_value(e.get("path").cloned().ok_or_else(bad)?).map_err(|_| bad())?;
        let bits = e.get("bits").and_then(|b| b.as_u64()).ok_or_else(bad)?;
        out.insert(path, f64::from_bits(bits));
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn run_space<S: Supernet + 'static, F: SelectorFactory>(
    cfg: RunConfig,
    opts: TrainOptions,
    run_dir: RunDir,
    data: DataSetup,
    device: &Device,
    resume: bool,
    factory: &F,
    build: impl FnOnce(&Device) -> S,
) -> Result<TrainOutcome, TrainError> {
    let spatial = spatial_adapters(cfg.space.kind);
    let mut trainer = if resume {
        Trainer::resume(cfg, opts, run_dir, data, device, build, spatial)?
    } else {
        Trainer::new(cfg, opts, run_dir, data, device, build, spatial)?
    };
    let mut selector = factory.selector::<S>();
    trainer.run(selector.as_mut())
}

/// Opens the data, builds the configured space's supernet ([`with_supernet`]) and trains it
/// (or resumes the run in `run_dir` when `resume`).
pub fn train_space<F: SelectorFactory>(
    cfg: RunConfig,
    opts: TrainOptions,
    run_dir: RunDir,
    device: &Device,
    resume: bool,
    factory: &F,
) -> Result<TrainOutcome, TrainError> {
    let data = open_data(&cfg)?;
    let task = TrainTask {
        opts,
        run_dir,
        data,
        device,
        resume,
        factory,
    };
    with_supernet(cfg, task)?
}

/// [`train_space`]'s work once the space is known.
struct TrainTask<'a, F> {
    opts: TrainOptions,
    run_dir: RunDir,
    data: DataSetup,
    device: &'a Device,
    resume: bool,
    factory: &'a F,
}

impl<F: SelectorFactory> SupernetTask for TrainTask<'_, F> {
    type Output = Result<TrainOutcome, TrainError>;

    fn run<S: Supernet + 'static>(
        self,
        cfg: RunConfig,
        build: impl FnOnce(&Device) -> S,
    ) -> Self::Output {
        run_space(
            cfg,
            self.opts,
            self.run_dir,
            self.data,
            self.device,
            self.resume,
            self.factory,
            build,
        )
    }
}
