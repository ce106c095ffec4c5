//! LARS (layer-wise adaptive rate scaling) as a Burn 0.22 per-tensor [`Optimizer`].
//!
//! This is the OpenSelfSup `LARS` used by BossNAS (spec §4.3): trust coefficient η, heavy-ball
//! momentum without dampening or Nesterov, and L2 weight decay folded into the update. For a
//! parameter `w` with gradient `g` and learning rate `lr`:
//!
//! ```text
//! local_lr = η‖w‖ / (‖g‖ + wd‖w‖)     (1 if ‖w‖ = 0 or ‖g‖ = 0)
//! d        = (g + wd·w) · local_lr · lr
//! buf      = d                     (first step of this parameter)
//!          = momentum·buf + d      (afterwards)
//! w       ← w − buf
//! ```
//!
//! # Exclusion set (spec §4.3, §9 D5)
//!
//! The official code excludes parameters by regex over PyTorch names: every `bias`, and BN
//! parameters of modules *named* `bnN`; BN γ/β that live inside `nn.Sequential`s
//! (`downsample.1.weight`, `fix_channels.*.2.weight`, ...) slip through and get LARS scaling and
//! weight decay. We implement the stated intent instead: **every rank-1 parameter** is excluded
//! (`local_lr = 1`, `wd = 0`). In Burn, rank-1 float parameters are exactly the biases of
//! linear/conv layers and the γ/β of (switchable) batch norms, so this is "all BN parameters and
//! all biases". Set [`LarsConfig::exclude_rank1`] to `false` to apply LARS to every tensor.
//!
//! # Parameters without a gradient
//!
//! [`ModuleOptimizer`] only calls [`Optimizer::step`] for parameters that have a gradient in the
//! [`burn::optim::GradientsParams`]. Parameters of unsampled ops therefore get no
//! update, no weight decay, and keep their momentum buffer untouched — the same as the official
//! `DistOptimizerHook`, which sets all-zero grads to `None` before `optimizer.step()`.
//! [`drop_zero_grads`] mirrors that hook for parameters that took part in the graph but received
//! an exactly-zero gradient.
//!
//! # State and resume
//!
//! The per-parameter state is one momentum tensor ([`LarsState`]), recorded through Burn's
//! [`RecordState`]; [`ModuleOptimizer::to_record`] / [`ModuleOptimizer::load_record`] (or
//! `into_bytes` / `from_bytes`, `save` / `load`) save and restore it exactly.

use bossnas_config::RunConfig;
use burn::config::Config;
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::{
    GradientsParams, LearningRate, ModuleOptimizer, Optimizer, RecordState, StateSink, StateSource,
};
use burn::tensor::{Device, Tensor};

/// Configuration of the [`Lars`] optimizer. Defaults are the BossNAS / BYOL values.
#[derive(Config, Debug, PartialEq)]
pub struct LarsConfig {
    /// Heavy-ball momentum (no dampening, no Nesterov). Default: 0.9.
    #[config(default = 0.9)]
    pub momentum: f64,
    /// L2 weight decay folded into the update. Default: 1e-6.
    #[config(default = 1e-6)]
    pub weight_decay: f64,
    /// Trust coefficient η. Default: 0.001.
    #[config(default = 0.001)]
    pub trust_coefficient: f64,
    /// Exclude rank-1 parameters (all biases and BN γ/β) from the trust ratio and from weight
    /// decay. Default: true.
    #[config(default = true)]
    pub exclude_rank1: bool,
}

impl LarsConfig {
    /// The run's LARS settings (`train.lars_*`).
    pub fn from_run(cfg: &RunConfig) -> Self {
        let t = &cfg.train;
        Self::new()
            .with_momentum(t.lars_momentum)
            .with_weight_decay(t.lars_weight_decay)
            .with_trust_coefficient(t.lars_trust_coefficient)
            .with_exclude_rank1(t.lars_exclude_bias_bn)
    }

    /// The bare per-tensor optimizer (e.g. for [`ModuleOptimizer::with_group`]).
    pub fn build(&self) -> Lars {
        Lars {
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            trust_coefficient: self.trust_coefficient,
            exclude_rank1: self.exclude_rank1,
        }
    }

    /// The whole-module optimizer: `model = opt.step(lr, model, grads)`.
    pub fn init(&self) -> ModuleOptimizer {
        ModuleOptimizer::from(self.build())
    }
}

/// LARS per-tensor update rule; see the [module documentation](self).
#[derive(Clone, Debug)]
pub struct Lars {
    momentum: f64,
    weight_decay: f64,
    trust_coefficient: f64,
    exclude_rank1: bool,
}

/// Per-parameter LARS state: the momentum buffer `buf`.
#[derive(Clone, Debug)]
pub struct LarsState<const D: usize> {
    /// Momentum buffer, same shape as the parameter.
    pub momentum: Tensor<D>,
}

const MOMENTUM_KEY: &str = "momentum";

impl<const D: usize> RecordState for LarsState<D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        out.push_tensor(prefix, MOMENTUM_KEY, self.momentum.to_data());
    }

    fn state_unflatten(prefix: &str, src: &mut StateSource, device: &Device) -> Option<Self> {
        let data = src.take_tensor(prefix, MOMENTUM_KEY)?;
        if data.rank() != D {
            return None;
        }
        Some(Self {
            momentum: Tensor::from_data(data, device),
        })
    }
}

impl Lars {
    /// Whether a parameter of rank `D` is in the exclusion set.
    pub fn is_excluded<const D: usize>(&self) -> bool {
        self.exclude_rank1 && D <= 1
    }
}

/// Euclidean norm of a whole tensor, as a one-element tensor (no host sync).
fn norm<const D: usize>(t: Tensor<D>) -> Tensor<1> {
    let n = t.shape().num_elements();
    t.reshape([n]).powi_scalar(2).sum().sqrt()
}

impl Optimizer for Lars {
    type State<const D: usize> = LarsState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let d = if self.is_excluded::<D>() {
            grad.mul_scalar(lr)
        } else {
            let w_norm = norm(tensor.clone());
            let g_norm = norm(grad.clone());
            let trust = w_norm
                .clone()
                .mul_scalar(self.trust_coefficient)
                .div(g_norm.clone() + w_norm.clone().mul_scalar(self.weight_decay));
            let degenerate = w_norm.equal_elem(0.0).bool_or(g_norm.equal_elem(0.0));
            // `mask_fill` also replaces a NaN from 0/0 when both norms are zero.
            let local_lr = trust.mask_fill(degenerate, 1.0).mul_scalar(lr);
            let local_lr: Tensor<D> = local_lr.reshape([1; D]);
            (grad + tensor.clone().mul_scalar(self.weight_decay)) * local_lr
        };
        let buf = match state {
            Some(state) => state.momentum.mul_scalar(self.momentum) + d,
            None => d,
        };
        (
            tensor - buf.clone(),
            Some(LarsState {
                momentum: buf.detach(),
            }),
        )
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        LarsState {
            momentum: state.momentum.to_device(device),
        }
    }
}

/// Remove every gradient that is exactly zero everywhere, as the official `DistOptimizerHook`
/// does before stepping (ops not sampled in an accumulation window get no decay and keep their
/// momentum). Costs one host read per gradient; call it once per optimizer step.
pub fn drop_zero_grads<M: Module>(module: &M, mut grads: GradientsParams) -> GradientsParams {
    struct Ids(Vec<(ParamId, usize)>);
    impl ModuleVisitor for Ids {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push((param.id, D));
        }
    }
    let mut ids = Ids(Vec::new());
    module.visit(&mut ids);
    for (id, rank) in ids.0 {
        macro_rules! check {
            ($d:literal) => {{
                if let Some(g) = grads.get::<$d>(id) {
                    let any_nonzero: bool = g.abs().sum().greater_elem(0.0).into_scalar();
                    if !any_nonzero {
                        let _ = grads.remove::<$d>(id);
                    }
                }
            }};
        }
        match rank {
            1 => check!(1),
            2 => check!(2),
            3 => check!(3),
            4 => check!(4),
            5 => check!(5),
            _ => {}
        }
    }
    grads
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::nn::{BatchNorm, BatchNormConfig, Linear};

    fn dev() -> Device {
        Device::flex().autodiff()
    }

    fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    fn close(a: &[f32], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
        for (x, y) in a.iter().zip(b) {
            assert!((*x as f64 - y).abs() <= tol, "{a:?} vs {b:?}");
        }
    }

    fn lars() -> Lars {
        LarsConfig::new().build()
    }

    #[test]
    fn config_defaults_are_official() {
        let c = LarsConfig::new();
        assert_eq!(c.momentum, 0.9);
        assert_eq!(c.weight_decay, 1e-6);
        assert_eq!(c.trust_coefficient, 0.001);
        assert!(c.exclude_rank1);
    }

    #[test]
    fn one_and_two_steps_match_hand_computation() {
        // w = [[3, 4]], ‖w‖ = 5; g = [[0.6, 0.8]], ‖g‖ = 1; wd = 0.1, η = 0.5, lr = 2, m = 0.9.
        // local = 0.5·5 / (1 + 0.1·5) = 2.5/1.5 = 5/3.
        // d1 = (g + 0.1 w)·(5/3)·2 = [0.9, 1.2]·10/3 = [3, 4]   → w1 = [0, 0], buf = [3, 4].
        let opt = LarsConfig::new()
            .with_weight_decay(0.1)
            .with_trust_coefficient(0.5)
            .build();
        let device = Device::flex();
        let w = Tensor::<2>::from_data([[3.0, 4.0]], &device);
        let g = Tensor::<2>::from_data([[0.6, 0.8]], &device);
        let (w1, s1) = opt.step(2.0, w, g, None);
        close(&vals(w1.clone()), &[0.0, 0.0], 1e-5);
        close(&vals(s1.clone().unwrap().momentum), &[3.0, 4.0], 1e-5);

        // Step 2: ‖w1‖ = 0 → local_lr = 1. g = [1, 0]: d2 = (g + 0)·1·2 = [2, 0].
        // buf = 0.9·[3, 4] + [2, 0] = [4.7, 3.6]; w2 = w1 − buf = [−4.7, −3.6].
        let g2 = Tensor::<2>::from_data([[1.0, 0.0]], &device);
        let (w2, s2) = opt.step(2.0, w1, g2, s1);
        close(&vals(w2.clone()), &[-4.7, -3.6], 1e-5);
        close(&vals(s2.clone().unwrap().momentum), &[4.7, 3.6], 1e-5);

        // Step 3 with both norms non-zero: w2 = [−4.7, −3.6], ‖w2‖ = sqrt(35.05);
        // g = [0, 2], ‖g‖ = 2. local = 0.5‖w‖/(2 + 0.1‖w‖).
        let g3 = Tensor::<2>::from_data([[0.0, 2.0]], &device);
        let (w3, _) = opt.step(1.0, w2, g3, s2);
        let wn = 35.05f64.sqrt();
        let local = 0.5 * wn / (2.0 + 0.1 * wn);
        let d = [(0.0 + 0.1 * -4.7) * local, (2.0 + 0.1 * -3.6) * local];
        let buf = [0.9 * 4.7 + d[0], 0.9 * 3.6 + d[1]];
        close(&vals(w3), &[-4.7 - buf[0], -3.6 - buf[1]], 1e-4);
    }

    #[test]
    fn default_official_constants_single_step() {
        // Official η = 1e-3, wd = 1e-6. w = [[1, 0], [0, 1]] (‖w‖ = √2), g = [[2, 0], [0, 0]] (‖g‖ = 2).
        let device = Device::flex();
        let w = Tensor::<2>::from_data([[1.0, 0.0], [0.0, 1.0]], &device);
        let g = Tensor::<2>::from_data([[2.0, 0.0], [0.0, 0.0]], &device);
        let (w1, _) = lars().step(4.8, w, g, None);
        let wn = 2f64.sqrt();
        let local = 1e-3 * wn / (2.0 + 1e-6 * wn) * 4.8;
        let expect = [1.0 - (2.0 + 1e-6) * local, 0.0, 0.0, 1.0 - (1e-6) * local];
        close(&vals(w1), &expect, 1e-6);
    }

    #[test]
    fn rank1_parameters_are_excluded() {
        // Excluded: d = g·lr, no decay, no trust ratio. w = [1, 2], g = [0.5, −1], lr = 0.1.
        let device = Device::flex();
        let w = Tensor::<1>::from_data([1.0, 2.0], &device);
        let g = Tensor::<1>::from_data([0.5, -1.0], &device);
        let (w1, s1) = lars().step(0.1, w.clone(), g.clone(), None);
        close(&vals(w1.clone()), &[0.95, 2.1], 1e-6);
        // Second step: buf = 0.9·[0.05, −0.1] + [0.05, −0.1] = [0.095, −0.19].
        let (w2, _) = lars().step(0.1, w1, g.clone(), s1);
        close(&vals(w2), &[0.855, 2.29], 1e-6);

        // Without the exclusion, a rank-1 tensor gets the trust ratio.
        let no_ex = LarsConfig::new().with_exclude_rank1(false).build();
        let (w1, _) = no_ex.step(0.1, w, g, None);
        let (wn, gn) = (5f64.sqrt(), 1.25f64.sqrt());
        let local = 1e-3 * wn / (gn + 1e-6 * wn) * 0.1;
        close(
            &vals(w1),
            &[1.0 - (0.5 + 1e-6) * local, 2.0 - (-1.0 + 2e-6) * local],
            1e-7,
        );
    }

    #[derive(Module, Debug)]
    struct Tiny {
        used: Linear,
        unused: Linear,
        bn: BatchNorm,
    }

    fn tiny(device: &Device) -> Tiny {
        let lin = |w: [[f32; 2]; 2], b: [f32; 2]| Linear {
            weight: Param::from_data(w, device),
            bias: Some(Param::from_data(b, device)),
        };
        Tiny {
            used: lin([[1.0, 2.0], [3.0, 4.0]], [0.5, -0.5]),
            unused: lin([[5.0, 6.0], [7.0, 8.0]], [1.0, 2.0]),
            bn: BatchNormConfig::new(2).init(device),
        }
    }

    fn bytes(m: &Tiny) -> Vec<u8> {
        m.clone().into_record().into_bytes().unwrap().to_vec()
    }

    #[test]
    fn module_step_leaves_parameters_without_grad_unchanged() {
        let device = dev();
        let model = tiny(&device);
        let before_unused = model
            .unused
            .clone()
            .into_record()
            .into_bytes()
            .unwrap()
            .to_vec();
        let mut opt = LarsConfig::new().init();
        for _ in 0..2 {
            let x = Tensor::<2>::from_data([[1.0, -1.0], [0.5, 2.0]], &device);
            let loss = model.used.forward(x).powi_scalar(2).sum();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let model2 = opt.step(0.5, model.clone(), grads);
            let after_unused = model2
                .unused
                .clone()
                .into_record()
                .into_bytes()
                .unwrap()
                .to_vec();
            assert_eq!(before_unused, after_unused);
            assert_ne!(bytes(&model), bytes(&model2));
        }
        // Only the two `used` tensors hold momentum.
        assert_eq!(opt.to_record().len(), 2);
    }

    #[test]
    fn module_step_matches_manual_step_and_state_round_trips() {
        let device = dev();
        let model = tiny(&device);
        let x = Tensor::<2>::from_data([[1.0, -1.0], [0.5, 2.0]], &device);
        let grads_of = |m: &Tiny| {
            let loss = m.used.forward(x.clone()).powi_scalar(2).sum();
            GradientsParams::from_grads(loss.backward(), m)
        };
        let mut opt = LarsConfig::new().init();
        let m1 = opt.step(0.3, model.clone(), grads_of(&model));

        // Resume from bytes: the next step must be bit-identical.
        let saved = opt.into_bytes().unwrap();
        let mut restored = LarsConfig::new().init().from_bytes(saved).unwrap();
        let a = opt.step(0.3, m1.clone(), grads_of(&m1));
        let b = restored.step(0.3, m1.clone(), grads_of(&m1));
        assert_eq!(bytes(&a), bytes(&b));

        // A fresh optimizer (no momentum) gives a different result on the second step.
        let c = LarsConfig::new()
            .init()
            .step(0.3, m1.clone(), grads_of(&m1));
        assert_ne!(bytes(&a), bytes(&c));
    }

    #[test]
    fn zero_gradients_are_dropped() {
        let device = dev();
        let model = tiny(&device);
        let x = Tensor::<2>::from_data([[1.0, -1.0]], &device);
        // `unused` takes part with a zero multiplier: its gradient exists but is all zero.
        let loss =
            model.used.forward(x.clone()).sum() + model.unused.forward(x).sum().mul_scalar(0.0);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        assert_eq!(grads.len(), 4);
        let grads = drop_zero_grads(&model, grads);
        assert_eq!(grads.len(), 2);
    }

    #[test]
    fn the_paper_presets_use_the_default_lars_and_heads_follow_the_block() {
        let m = RunConfig::preset("mbconv-imagenet-paper").unwrap();
        assert_eq!(LarsConfig::from_run(&m), LarsConfig::new());
        let p = crate::heads::ProjectorConfig::from_run(&m, 40);
        assert_eq!(p.in_channels, 40); // no `heads.projector_in`: the block's own width
        let t = RunConfig::preset("tiny").unwrap();
        assert_eq!(
            crate::heads::PredictorConfig::from_run(&t).in_features,
            t.heads.projector_out
        );
    }
}
