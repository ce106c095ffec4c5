//! Siamese ensemble-bootstrapping training of BossNAS supernets: the building blocks.
//!
//! - [`lars`]: LARS optimizer (Burn per-tensor `Optimizer`);
//! - [`schedule`]: warm-up + cosine lr and EMA momentum, pure functions of the block position;
//! - [`ema`]: online → target EMA over parameters (not BN buffers);
//! - [`heads`]: projector and predictor MLPs;
//! - [`loss`]: the ensemble-bootstrapping loss;
//! - [`config`]: the run configuration, presets and validation;
//! - [`checkpoint`]: atomic writes, run directory layout, verified checkpoints.

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod ema;
pub mod heads;
pub mod lars;
pub mod loss;
pub mod schedule;
