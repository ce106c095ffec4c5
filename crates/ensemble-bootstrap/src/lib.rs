//! Siamese ensemble-bootstrapping training of BossNAS supernets: the building blocks.
//!
//! - [`lars`]: LARS optimizer (Burn per-tensor `Optimizer`);
//! - [`ema`]: online → target EMA over parameters (not BN buffers);
//! - [`heads`]: projector and predictor MLPs;
//! - [`loss`]: the ensemble-bootstrapping loss;
//! - [`checkpoint`]: atomic writes, run directory layout, verified checkpoints;
//! - [`adapter`]: channel adapters in front of a block's projector;
//! - [`siamese`]: the generic online/target supernet pair with per-block heads;
//! - [`sampling`]: uniform and strictly fair path sampling;
//! - [`setup`]: data, loader and supernet from a `bossnas_config::RunConfig`;
//! - [`trainer`]: the block-wise training loop, block selection hook, exact resume;
//! - [`phase`]: opt-in time per phase of the training step (benchmarks);
//! - [`progress`]: terminal progress bar;
//! - [`time_budget`]: a wall-clock training budget split over the blocks.

pub mod adapter;
pub mod checkpoint;
pub mod ema;
pub mod heads;
pub mod lars;
pub mod loss;
pub mod phase;
pub mod progress;
pub mod sampling;
pub mod seeded;
pub mod selector;
pub mod setup;
pub mod siamese;
pub mod time_budget;
pub mod trainer;
