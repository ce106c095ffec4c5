//! The optimizer of a recipe and its learning-rate schedule.
//!
//! - SGD: PyTorch semantics (dampening 0, L2 weight decay on every parameter as xautodl does,
//!   optional Nesterov).
//! - AdamW: decoupled weight decay; with `no_decay_rank1` the rank-1 parameters (biases,
//!   BN γ/β) get none, as timm's `add_weight_decay` does for DeiT ([`RankAwareAdamW`]).
//! - Schedule ([`lr_at`]): linear warm-up from `warmup_lr`, then cosine to `min_lr` over the
//!   whole run (timm `CosineLRScheduler` with `warmup_prefix = False`; with no warm-up this is
//!   xautodl's per-iteration cosine).

use burn::grad_clipping::GradientClippingConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamW, AdamWConfig, LearningRate, ModuleOptimizer, Optimizer, SgdConfig};
use burn::tensor::{Device, Tensor};

use crate::recipe::{LrStepping, OptimizerKind, Recipe};

/// AdamW that skips weight decay on rank-1 tensors.
#[derive(Clone)]
pub struct RankAwareAdamW {
    decayed: AdamW,
    plain: AdamW,
}

impl Optimizer for RankAwareAdamW {
    type State<const D: usize> = <AdamW as Optimizer>::State<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        if D == 1 {
            self.plain.step(lr, tensor, grad, state)
        } else {
            self.decayed.step(lr, tensor, grad, state)
        }
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        AdamW::to_device(state, device)
    }
}

/// The recipe's optimizer.
pub fn build_optimizer(recipe: &Recipe) -> ModuleOptimizer {
    let o = &recipe.optimizer;
    let clip = recipe.regularization.clip_grad_norm;
    let mut opt = match o.kind {
        OptimizerKind::Sgd => {
            let momentum = (o.momentum > 0.0).then_some(MomentumConfig {
                momentum: o.momentum,
                dampening: 0.0,
                nesterov: o.nesterov,
            });
            let decay = (o.weight_decay > 0.0).then_some(WeightDecayConfig {
                penalty: o.weight_decay as f32,
            });
            SgdConfig::new()
                .with_momentum(momentum)
                .with_weight_decay(decay)
                .init()
        }
        OptimizerKind::Adamw => {
            let cfg = |wd: f64| {
                AdamWConfig::new()
                    .with_beta_1(o.betas[0] as f32)
                    .with_beta_2(o.betas[1] as f32)
                    .with_epsilon(o.eps as f32)
                    .with_weight_decay(wd as f32)
                    .build()
            };
            if o.no_decay_rank1 {
                ModuleOptimizer::from(RankAwareAdamW {
                    decayed: cfg(o.weight_decay),
                    plain: cfg(0.0),
                })
            } else {
                ModuleOptimizer::from(cfg(o.weight_decay))
            }
        }
    };
    if clip > 0.0 {
        opt = opt.with_grad_clipping(GradientClippingConfig::Norm(clip as f32).init());
    }
    opt
}

/// Learning rate of optimizer step `step` (0-based) with `steps_per_epoch` steps an epoch.
pub fn lr_at(recipe: &Recipe, step: u64, steps_per_epoch: usize) -> f64 {
    let s = &recipe.schedule;
    let base = recipe.effective_lr();
    let exact = step as f64 / steps_per_epoch.max(1) as f64;
    let e = match s.stepping {
        LrStepping::Step => exact,
        LrStepping::Epoch => exact.floor(),
    };
    if e < s.warmup_epochs as f64 {
        return s.warmup_lr + (base - s.warmup_lr) * e / s.warmup_epochs as f64;
    }
    let t = (e / s.epochs as f64).min(1.0);
    s.min_lr + 0.5 * (base - s.min_lr) * (1.0 + (std::f64::consts::PI * t).cos())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::GradientsParams;

    #[test]
    fn schedules_match_the_reference_formulas() {
        let n = Recipe::preset("nats-cifar").unwrap();
        assert_eq!(lr_at(&n, 0, 100), 0.1);
        // Half way through 90 epochs: 0.05; per-iteration, so mid-epoch values move.
        assert!((lr_at(&n, 4500, 100) - 0.05).abs() < 1e-12);
        assert!(lr_at(&n, 4501, 100) < lr_at(&n, 4500, 100));
        assert!(lr_at(&n, 9000, 100).abs() < 1e-12);
        let mut d = Recipe::preset("deit").unwrap();
        d.schedule.batch_size = 512;
        // Warm-up: epoch 0 at 1e-6, epoch 1 at 1e-6 + (5e-4 − 1e-6)/5, constant within it.
        assert_eq!(lr_at(&d, 0, 10), 1e-6);
        assert!((lr_at(&d, 15, 10) - (1e-6 + (5e-4 - 1e-6) / 5.0)).abs() < 1e-15);
        assert_eq!(lr_at(&d, 15, 10), lr_at(&d, 19, 10));
        // After warm-up: cosine of epoch / 300 between 5e-4 and 1e-5.
        let want =
            1e-5 + 0.5 * (5e-4 - 1e-5) * (1.0 + (std::f64::consts::PI * 150.0 / 300.0).cos());
        assert!((lr_at(&d, 1500, 10) - want).abs() < 1e-15);
    }

    #[derive(Module, Debug)]
    struct Tiny {
        fc: Linear,
    }

    #[test]
    fn adamw_skips_decay_on_rank1_only() {
        let device = Device::flex().autodiff();
        let mut d = Recipe::preset("deit").unwrap();
        d.optimizer.weight_decay = 0.5;
        let net = Tiny {
            fc: LinearConfig::new(2, 2).init(&device),
        };
        let (w0, b0) = (
            net.fc.weight.val().into_data().try_to_vec::<f32>().unwrap(),
            net.fc
                .bias
                .as_ref()
                .unwrap()
                .val()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap(),
        );
        // Zero loss gradient: only weight decay can move the parameters.
        let x = Tensor::<2>::zeros([1, 2], &device);
        let loss = net.fc.forward(x).sum().mul_scalar(0.0);
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        let mut opt = build_optimizer(&d);
        let net = opt.step(0.1, net, grads);
        let w1: Vec<f32> = net.fc.weight.val().into_data().try_to_vec::<f32>().unwrap();
        let b1: Vec<f32> = net
            .fc
            .bias
            .unwrap()
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for (a, b) in w0.iter().zip(&w1) {
            // Decoupled decay: w ← w − lr·wd·w.
            assert!((b - a * (1.0 - 0.1 * 0.5)).abs() < 1e-6, "{a} {b}");
        }
        assert_eq!(b0, b1);
    }
}
