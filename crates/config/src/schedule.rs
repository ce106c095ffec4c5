//! Learning-rate and EMA-momentum schedules (spec §4.2, §4.4).
//!
//! Both are pure functions of the position inside the current block, so resuming a run only
//! needs the position (block-local epoch and iteration), never a scheduler record. Burn's own
//! schedulers reject `lr > 1`, while LARS uses lr 4.8 for batch 4096, hence this module.
//!
//! # Learning rate (mmcv v1.2 `CosineAnnealingLrUpdaterHook`, restarted per block)
//!
//! - Cosine part, stepped per **epoch** (`by_epoch = true`, official) or per **iteration**:
//!   `lr(p) = min_lr + (lr₀ − min_lr)·(1 + cos(π·p))/2` with `p = e/E` (epoch mode) or
//!   `p = i/I` (iteration mode), `e`/`i` counted from the start of the block.
//! - Linear warm-up during the first `W` iterations of every block:
//!   `lr_i = lr(p)·(1 − (1 − i/W)(1 − warmup_ratio))`, the mmcv "linear" warm-up applied to the
//!   regular (cosine) lr of the current position. At `i ≥ W` the regular lr applies.
//!
//! # EMA momentum (`BYOLHook`, restarted per block)
//!
//! `m = 1 − (1 − m₀)·(cos(π·it/IT) + 1)/2`, going from `m₀` at `it = 0` to 1 at `it = IT`.

use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// How the cosine part of [`LrSchedule`] advances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LrStepping {
    /// Constant within an epoch (official mmcv `by_epoch = true`).
    #[default]
    Epoch,
    /// Updated every iteration.
    Iteration,
}

/// Where training is inside the current block; everything a schedule needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BlockPosition {
    /// Epoch index inside the block, `0..epochs_per_block`.
    pub epoch: usize,
    /// Iteration (micro-batch) index inside the epoch, `0..iters_per_epoch`.
    pub iter_in_epoch: usize,
}

impl BlockPosition {
    /// Iteration index from the start of the block.
    pub fn iter_in_block(&self, iters_per_epoch: usize) -> usize {
        self.epoch * iters_per_epoch + self.iter_in_epoch
    }
}

/// Cosine learning rate with a linear warm-up, restarted at each block.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    /// Peak (base) learning rate `lr₀`; may exceed 1.
    pub base_lr: f64,
    /// Final learning rate of the cosine. Official: 0.
    pub min_lr: f64,
    /// Epochs per block `E`.
    pub epochs_per_block: usize,
    /// Iterations (micro-batches) per epoch.
    pub iters_per_epoch: usize,
    /// Warm-up length in iterations `W` (official: 1 epoch for ImageNet, 2 for NATS). 0 = none.
    pub warmup_iters: usize,
    /// Warm-up start factor. Official: 1e-4.
    pub warmup_ratio: f64,
    /// Epoch- or iteration-wise cosine.
    pub stepping: LrStepping,
}

impl LrSchedule {
    /// A schedule with the official warm-up ratio (1e-4), `min_lr = 0` and per-epoch stepping.
    pub fn new(
        base_lr: f64,
        epochs_per_block: usize,
        iters_per_epoch: usize,
        warmup_epochs: usize,
    ) -> Self {
        Self {
            base_lr,
            min_lr: 0.0,
            epochs_per_block,
            iters_per_epoch,
            warmup_iters: warmup_epochs * iters_per_epoch,
            warmup_ratio: 1e-4,
            stepping: LrStepping::Epoch,
        }
    }

    /// The cosine (post-warm-up) learning rate at a position.
    pub fn regular_lr(&self, pos: BlockPosition) -> f64 {
        let progress = match self.stepping {
            LrStepping::Epoch => ratio(pos.epoch, self.epochs_per_block),
            LrStepping::Iteration => ratio(
                pos.iter_in_block(self.iters_per_epoch),
                self.epochs_per_block * self.iters_per_epoch,
            ),
        };
        self.min_lr + (self.base_lr - self.min_lr) * (1.0 + (PI * progress).cos()) / 2.0
    }

    /// The learning rate to use at a position, warm-up included.
    pub fn lr(&self, pos: BlockPosition) -> f64 {
        let regular = self.regular_lr(pos);
        let i = pos.iter_in_block(self.iters_per_epoch);
        if i < self.warmup_iters {
            let k = (1.0 - i as f64 / self.warmup_iters as f64) * (1.0 - self.warmup_ratio);
            regular * (1.0 - k)
        } else {
            regular
        }
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// EMA momentum schedule from `base` (m₀) to 1 over a block.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MomentumSchedule {
    /// Base momentum m₀. Official: 0.99.
    pub base: f64,
    /// Iterations in a block, `IT`.
    pub iters_per_block: usize,
}

impl MomentumSchedule {
    /// Momentum at block-local iteration `it`: `1 − (1 − m₀)(cos(π·it/IT) + 1)/2`.
    pub fn momentum(&self, it: usize) -> f64 {
        ema_momentum(self.base, it, self.iters_per_block)
    }
}

/// `1 − (1 − base)(cos(π·it/total) + 1)/2`; `base` when `total == 0`.
pub fn ema_momentum(base: f64, it: usize, total: usize) -> f64 {
    let p = ratio(it.min(total), total);
    1.0 - (1.0 - base) * ((PI * p).cos() + 1.0) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(epoch: usize, iter_in_epoch: usize) -> BlockPosition {
        BlockPosition {
            epoch,
            iter_in_epoch,
        }
    }

    #[test]
    fn official_hytra_epoch_values() {
        // Spec §4.4: lr 4.8, E = 6: 4.800, 4.478, 3.600, 2.400, 1.200, 0.322.
        let s = LrSchedule::new(4.8, 6, 100, 1);
        let expect = [4.800, 4.478, 3.600, 2.400, 1.200, 0.322];
        for (e, want) in expect.iter().enumerate() {
            // Epoch 0 is inside the warm-up; its regular (cosine) value is lr₀.
            let got = s.regular_lr(pos(e, 50));
            assert!((got - want).abs() < 5e-4, "epoch {e}: {got} vs {want}");
            // Past the warm-up the lr is the cosine value, constant within an epoch.
            if e > 0 {
                assert_eq!(s.lr(pos(e, 50)), got);
                assert_eq!(s.lr(pos(e, 0)), s.lr(pos(e, 99)));
            }
        }
    }

    #[test]
    fn warmup_endpoints() {
        let s = LrSchedule::new(4.8, 6, 100, 1);
        // i = 0: lr₀·ratio.
        assert!((s.lr(pos(0, 0)) - 4.8e-4).abs() < 1e-12);
        // i = W/2: lr₀·(1 − 0.5·(1 − 1e-4)) = 4.8·0.50005.
        assert!((s.lr(pos(0, 50)) - 4.8 * 0.50005).abs() < 1e-12);
        // i = W: the regular lr of epoch 1.
        assert!((s.lr(pos(1, 0)) - s.regular_lr(pos(1, 0))).abs() < 1e-15);
    }

    #[test]
    fn nats_two_epoch_warmup_uses_current_epoch_lr() {
        // NATS: lr 0.48, E = 50, W = 2 epochs. At e = 1, i_in_block = 150 of 200:
        // lr = 0.48·(1+cos(π/50))/2 · (1 − 0.25·(1 − 1e-4)).
        let s = LrSchedule::new(0.48, 50, 100, 2);
        let want = 0.48 * (1.0 + (PI / 50.0).cos()) / 2.0 * (1.0 - 0.25 * (1.0 - 1e-4));
        assert!((s.lr(pos(1, 50)) - want).abs() < 1e-12);
    }

    #[test]
    fn iteration_stepping_and_min_lr() {
        let mut s = LrSchedule::new(1.0, 2, 4, 0);
        s.stepping = LrStepping::Iteration;
        s.min_lr = 0.2;
        // i = 2 of I = 8: 0.2 + 0.8·(1 + cos(π/4))/2.
        let want = 0.2 + 0.8 * (1.0 + (PI / 4.0).cos()) / 2.0;
        assert!((s.lr(pos(0, 2)) - want).abs() < 1e-12);
        // i = 4 (epoch 1, iter 0): halfway → 0.6.
        assert!((s.lr(pos(1, 0)) - 0.6).abs() < 1e-12);
        // Values above 1 are allowed.
        s.base_lr = 9.6;
        assert!(s.lr(pos(0, 0)) > 9.0);
    }

    #[test]
    fn momentum_schedule() {
        let m = MomentumSchedule {
            base: 0.99,
            iters_per_block: 1000,
        };
        assert!((m.momentum(0) - 0.99).abs() < 1e-15);
        assert!((m.momentum(500) - 0.995).abs() < 1e-12);
        assert!((m.momentum(1000) - 1.0).abs() < 1e-15);
        // i = 250: 1 − 0.01·(cos(π/4) + 1)/2.
        let want = 1.0 - 0.01 * ((PI / 4.0).cos() + 1.0) / 2.0;
        assert!((m.momentum(250) - want).abs() < 1e-15);
        assert_eq!(ema_momentum(0.99, 0, 0), 0.99);
    }
}
