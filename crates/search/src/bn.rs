//! BatchNorm re-estimation for Burn 0.22 (spec §5.3, `update_bn_stats`).
//!
//! The official rating resets every BN, sets its momentum to 1 and forwards one fixed
//! calibration batch, so each BN ends up holding that batch's mean and **unbiased** variance.
//! Burn's [`BatchNorm`](burn::nn::BatchNorm) has a fixed `momentum` field that a generic
//! [`ModuleMapper`] cannot reach, and its running variance is the **biased** batch variance.
//! This module gets the same result from the outside:
//!
//! 1. synchronise pending running-state updates (`Module::valid()` syncs every
//!    `RunningState` in place; `RunningState::map` alone would not, and a pending update
//!    would later overwrite the mapped value);
//! 2. reset every BN's running mean/var to known values `(r_mean, r_var)` with a mapper that
//!    recognises the `running_mean` / `running_var` fields of `Struct:BatchNorm`;
//! 3. the caller runs **one** train-mode forward (autodiff device, training flags on) of the
//!    calibration batch;
//! 4. synchronise again and rescale: with momentum `m`, `r = (1−m)·r0 + m·s`, so
//!    `s = (r − (1−m)·r0)/m`. With a known `m` ([`BnMomentum::Known`]) one pass suffices
//!    (reset `(0, 1)`). With [`BnMomentum::Infer`] the caller runs the forward twice, after
//!    resets `(0, 1)` and `(1, 2)`; the difference of the two results is `1 − m` in every
//!    channel, so `m` is recovered per BN (from its best-conditioned channel) without knowing
//!    how the BN was configured.
//!
//! A BN that the forward never reached keeps the official reset value (mean 0, var 1).
//! Burn's biased variance can be turned into PyTorch's unbiased one with
//! [`BnCalibration::with_samples`], which gives the number of values per channel `n`
//! (batch × H × W) seen by each BN, keyed by its module path; the variance is then multiplied
//! by `n/(n−1)`. Without it the biased (Burn) variance is kept: at the official sizes the
//! factor is 1.004 for the projector's BN1d (n = 256) and ≤ 1.0001 for BN2d.
//!
//! Limitation: a BN applied several times within one calibration forward accumulates the
//! momentum over its calls; the official momentum-1 semantics would keep only the last call.

use std::sync::Arc;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Tensor;

/// Container type string Burn's derive passes for fields of `BatchNorm`.
const BN_CONTAINER: &str = "Struct:BatchNorm";

/// Which running statistic a tensor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BnStat {
    /// `running_mean`.
    Mean,
    /// `running_var`.
    Var,
}

impl BnStat {
    fn from_field(name: &str) -> Option<BnStat> {
        match name {
            "running_mean" => Some(BnStat::Mean),
            "running_var" => Some(BnStat::Var),
            _ => None,
        }
    }
}

/// Tracks the module path while mapping or visiting.
#[derive(Default)]
struct PathStack(Vec<(String, String)>);

impl PathStack {
    fn enter(&mut self, name: &str, container: &str) {
        self.0.push((name.to_string(), container.to_string()));
    }

    fn exit(&mut self) {
        self.0.pop();
    }

    /// If the current position is a BN running statistic: the BN's path and which statistic.
    fn bn_stat(&self) -> Option<(String, BnStat)> {
        let (name, container) = self.0.last()?;
        if container != BN_CONTAINER {
            return None;
        }
        let stat = BnStat::from_field(name)?;
        let path = self.0[..self.0.len() - 1]
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(".");
        Some((path, stat))
    }
}

struct StatMapper<F> {
    stack: PathStack,
    f: F,
}

impl<F: FnMut(&str, BnStat, Tensor<1>) -> Tensor<1>> ModuleMapper for StatMapper<F> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.exit();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some((path, stat)) = self.stack.bn_stat() else {
            return param;
        };
        if D != 1 {
            return param;
        }
        let (id, tensor, mapper) = param.consume();
        let shape = tensor.shape();
        let n = shape.num_elements();
        let out = (self.f)(&path, stat, tensor.reshape([n]).detach());
        Param::from_mapped_value(id, out.detach().reshape(shape), mapper)
    }
}

struct StatVisitor<F> {
    stack: PathStack,
    f: F,
}

impl<F: FnMut(&str, BnStat, Tensor<1>)> ModuleVisitor for StatVisitor<F> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.exit();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if D != 1 {
            return;
        }
        if let Some((path, stat)) = self.stack.bn_stat() {
            let t = param.val();
            let n = t.shape().num_elements();
            (self.f)(&path, stat, t.reshape([n]));
        }
    }
}

/// Applies pending running-state updates of every BN in `module`, in place (shared state).
///
/// `RunningState` keeps the newest update pending until the next synchronising read;
/// `Module::valid()` synchronises every running state of the module (and of all its clones,
/// which share the state), so its result is dropped.
pub fn sync_running_stats<M: Module>(module: &M) {
    drop(module.valid());
}

/// Maps every BN running statistic of `module` through `f(bn_path, stat, value)`.
///
/// Synchronises first. Note that BN running state is shared by all `clone()`s of a module,
/// so the clones see the new values too.
pub fn map_bn_stats<M: Module>(
    module: M,
    f: impl FnMut(&str, BnStat, Tensor<1>) -> Tensor<1>,
) -> M {
    sync_running_stats(&module);
    module.map(&mut StatMapper {
        stack: PathStack::default(),
        f,
    })
}

/// Visits every BN running statistic of `module` (synchronised) as `f(bn_path, stat, value)`.
pub fn visit_bn_stats<M: Module>(module: &M, f: impl FnMut(&str, BnStat, Tensor<1>)) {
    sync_running_stats(module);
    module.visit(&mut StatVisitor {
        stack: PathStack::default(),
        f,
    });
}

/// Running statistics of one BN, on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct BnStats {
    /// Module path, e.g. `blocks.0.bn` (tuple/vec indices appear as numbers).
    pub path: String,
    /// Running mean.
    pub mean: Vec<f32>,
    /// Running variance.
    pub var: Vec<f32>,
}

/// Every BN's running statistics in visiting order (synchronised first).
pub fn collect_bn_stats<M: Module>(module: &M) -> Vec<BnStats> {
    let mut out: Vec<BnStats> = Vec::new();
    visit_bn_stats(module, |path, stat, t| {
        let v = t
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("f32 running stats");
        if out.last().is_none_or(|s| s.path != path) {
            out.push(BnStats {
                path: path.to_string(),
                mean: Vec::new(),
                var: Vec::new(),
            });
        }
        let last = out.last_mut().expect("pushed");
        match stat {
            BnStat::Mean => last.mean = v,
            BnStat::Var => last.var = v,
        }
    });
    out
}

/// Resets every BN of `module` to the official reset state: mean 0, variance 1.
pub fn reset_bn_stats<M: Module>(module: M) -> M {
    reset_to(module, 0.0, 1.0)
}

fn reset_to<M: Module>(module: M, mean: f64, var: f64) -> M {
    map_bn_stats(module, |_, stat, t| match stat {
        BnStat::Mean => t.zeros_like().add_scalar(mean),
        BnStat::Var => t.zeros_like().add_scalar(var),
    })
}

/// How the BN momentum used by the calibration forward is known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BnMomentum {
    /// Every BN uses this momentum (PyTorch convention, Burn's `BatchNorm::momentum`;
    /// default 0.1). One calibration pass.
    Known(f64),
    /// Recover each BN's momentum from two calibration passes of the same batch.
    Infer,
}

/// Values per channel seen by the BN at a module path (`None`: keep the biased variance).
pub type SampleCounter = Arc<dyn Fn(&str) -> Option<usize> + Send + Sync>;

/// Settings of a BN re-estimation; see the module documentation.
#[derive(Clone)]
pub struct BnCalibration {
    /// The momentum the calibration forward applies.
    pub momentum: BnMomentum,
    samples: Option<SampleCounter>,
}

impl core::fmt::Debug for BnCalibration {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BnCalibration")
            .field("momentum", &self.momentum)
            .field("unbiased", &self.samples.is_some())
            .finish()
    }
}

/// Reset values before each pass (mean, var).
const RESETS: [(f64, f64); 2] = [(0.0, 1.0), (1.0, 2.0)];
/// Below this recovered momentum a BN counts as "not reached by the forward".
const MIN_MOMENTUM: f64 = 1e-6;

/// State between the passes of [`BnMomentum::Infer`]: the first pass's raw statistics.
#[derive(Debug, Clone, Default)]
pub struct BnPassRecord {
    values: Vec<Tensor<1>>,
}

impl BnCalibration {
    /// Known momentum, biased (Burn) variance.
    pub fn known(momentum: f64) -> Self {
        assert!(
            momentum > 0.0 && momentum <= 1.0,
            "calibration momentum must be in (0, 1], got {momentum}"
        );
        Self {
            momentum: BnMomentum::Known(momentum),
            samples: None,
        }
    }

    /// Momentum recovered from two passes, biased (Burn) variance.
    pub fn infer() -> Self {
        Self {
            momentum: BnMomentum::Infer,
            samples: None,
        }
    }

    /// Converts the variance to PyTorch's unbiased estimate: `samples(bn_path)` is the number
    /// of values per channel the BN saw in the calibration forward (batch × H × W).
    pub fn with_samples(mut self, samples: SampleCounter) -> Self {
        self.samples = Some(samples);
        self
    }

    /// Forward passes of the calibration batch the caller must run (1 or 2).
    pub fn passes(&self) -> usize {
        match self.momentum {
            BnMomentum::Known(_) => 1,
            BnMomentum::Infer => 2,
        }
    }

    /// Prepares pass `pass` (0-based): synchronises and resets every BN of `module`.
    pub fn before_pass<M: Module>(&self, pass: usize, module: M) -> M {
        let (mean, var) = RESETS[pass.min(1)];
        reset_to(module, mean, var)
    }

    /// After pass 0 of [`BnMomentum::Infer`]: records the raw statistics of `module`.
    pub fn record_pass<M: Module>(&self, module: &M) -> BnPassRecord {
        let mut values = Vec::new();
        visit_bn_stats(module, |_, _, t| values.push(t));
        BnPassRecord { values }
    }

    /// After the last pass: turns the running statistics of `module` into the calibration
    /// batch's statistics. `first` is [`BnCalibration::record_pass`]'s result for
    /// [`BnMomentum::Infer`] (ignored for a known momentum).
    pub fn finish<M: Module>(&self, module: M, first: Option<&BnPassRecord>) -> M {
        let mut index = 0usize;
        let samples = self.samples.clone();
        let momentum = self.momentum;
        map_bn_stats(module, |path, stat, r| {
            let i = index;
            index += 1;
            let (r0, fallback) = match stat {
                BnStat::Mean => (RESETS[0].0, 0.0),
                BnStat::Var => (RESETS[0].1, 1.0),
            };
            let batch_stat = match momentum {
                // r = (1−m)·r0 + m·s.
                BnMomentum::Known(m) => r.sub_scalar((1.0 - m) * r0).div_scalar(m),
                BnMomentum::Infer => {
                    let a = first
                        .and_then(|rec| rec.values.get(i).cloned())
                        .expect("BnCalibration::finish(Infer) needs the first pass record of the same module");
                    // Pass 0 reset r0, pass 1 reset r0 + 1, same batch: b − a = 1 − m in
                    // every channel; the channel with the smallest |a| rounds least.
                    let bv = r.to_vec_f32();
                    let av = a.clone().to_vec_f32();
                    let best = av
                        .iter()
                        .enumerate()
                        .min_by(|x, y| x.1.abs().total_cmp(&y.1.abs()))
                        .map(|(j, _)| j)
                        .unwrap_or(0);
                    let m = 1.0 - (bv[best] as f64 - av[best] as f64);
                    if m < MIN_MOMENTUM {
                        return a.zeros_like().add_scalar(fallback);
                    }
                    a.sub_scalar((1.0 - m) * r0).div_scalar(m)
                }
            };
            let unbiased = match (stat, &samples) {
                (BnStat::Var, Some(count)) => count(path).filter(|&n| n > 1),
                _ => None,
            };
            match unbiased {
                Some(n) => batch_stat.mul_scalar(n as f64 / (n as f64 - 1.0)),
                None => batch_stat,
            }
        })
    }

    /// Runs the whole re-estimation on `module`: reset, `forward(&module)` once per pass,
    /// rescale. `forward` must run the calibration batch in train mode on an autodiff device
    /// (BN uses batch statistics only there) and reach every BN to be calibrated once.
    /// `module` may be a tuple of modules.
    pub fn recalibrate<M: Module>(&self, module: M, mut forward: impl FnMut(&M)) -> M {
        let mut module = self.before_pass(0, module);
        forward(&module);
        let record = if self.passes() == 2 {
            let rec = self.record_pass(&module);
            module = self.before_pass(1, module);
            forward(&module);
            Some(rec)
        } else {
            None
        };
        self.finish(module, record.as_ref())
    }
}

trait ToVecF32 {
    fn to_vec_f32(self) -> Vec<f32>;
}

impl ToVecF32 for Tensor<1> {
    fn to_vec_f32(self) -> Vec<f32> {
        self.into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("f32 tensor")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::conv::{Conv2d, Conv2dConfig};
    use burn::nn::{BatchNorm, BatchNormConfig};
    use burn::tensor::Device;
    use burn::tensor::activation::relu;

    #[derive(Module, Debug)]
    struct Tiny {
        conv: Conv2d,
        bn: BatchNorm,
        conv2: Conv2d,
        bn2: BatchNorm,
        unused: BatchNorm,
    }

    impl Tiny {
        fn new(momentum: f64, device: &Device) -> Self {
            Self {
                conv: Conv2dConfig::new([2, 3], [3, 3]).init(device),
                bn: BatchNormConfig::new(3).with_momentum(momentum).init(device),
                conv2: Conv2dConfig::new([3, 2], [1, 1]).init(device),
                bn2: BatchNormConfig::new(2).with_momentum(0.3).init(device),
                unused: BatchNormConfig::new(2).init(device),
            }
        }

        /// Returns the inputs of `bn` and `bn2` too.
        fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
            let h = self.conv.forward(x);
            let y = relu(self.bn.forward(h.clone()));
            let h2 = self.conv2.forward(y);
            (self.bn2.forward(h2.clone()), h, h2)
        }
    }

    /// Per-channel mean and variance (biased or unbiased) of a `[b, c, h, w]` tensor.
    fn channel_stats(x: Tensor<4>, unbiased: bool) -> (Vec<f64>, Vec<f64>) {
        let [b, c, h, w] = x.dims();
        let v = x.into_data().try_to_vec::<f32>().unwrap();
        let n = b * h * w;
        let mut means = vec![0.0; c];
        let mut vars = vec![0.0; c];
        for ch in 0..c {
            let vals: Vec<f64> = (0..b)
                .flat_map(|i| (0..h * w).map(move |j| (i, j)))
                .map(|(i, j)| v[(i * c + ch) * h * w + j] as f64)
                .collect();
            let mean = vals.iter().sum::<f64>() / n as f64;
            let ss = vals.iter().map(|x| (x - mean).powi(2)).sum::<f64>();
            means[ch] = mean;
            vars[ch] = ss / if unbiased { (n - 1) as f64 } else { n as f64 };
        }
        (means, vars)
    }

    fn close(a: &[f32], b: &[f64], tol: f64, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        for (x, y) in a.iter().zip(b) {
            assert!(
                (*x as f64 - y).abs() <= tol * (1.0 + y.abs()),
                "{what}: {a:?} vs {b:?}"
            );
        }
    }

    fn input(device: &Device) -> Tensor<4> {
        // Deterministic, non-centred values with different channel scales.
        let vals: Vec<f32> = (0..4 * 2 * 5 * 5)
            .map(|i| ((i * 37 % 23) as f32) * 0.3 - 1.0 + (i % 7) as f32 * 0.5)
            .collect();
        Tensor::<1>::from_floats(vals.as_slice(), device).reshape([4, 2, 5, 5])
    }

    fn check(cal: BnCalibration, unbiased: bool) {
        let device = Device::flex().autodiff();
        let model = Tiny::new(0.1, &device);
        // Perturb the running stats with an unrelated batch first (they must not leak).
        let warm = input(&device).mul_scalar(3.0).add_scalar(2.0);
        let _ = model.forward(warm);
        let x = input(&device);
        // Train-mode activations depend only on the weights and the batch.
        let (_, h, h2) = model.forward(x.clone());
        let model = cal.recalibrate(model, |m| {
            let _ = m.forward(x.clone());
        });
        let stats = collect_bn_stats(&model);
        assert_eq!(
            stats.iter().map(|s| s.path.as_str()).collect::<Vec<_>>(),
            ["bn", "bn2", "unused"]
        );
        let (m1, v1) = channel_stats(h, unbiased);
        let (m2, v2) = channel_stats(h2, unbiased);
        close(&stats[0].mean, &m1, 1e-5, "bn mean");
        close(&stats[0].var, &v1, 1e-5, "bn var");
        close(&stats[1].mean, &m2, 1e-5, "bn2 mean");
        close(&stats[1].var, &v2, 1e-5, "bn2 var");
        // Not reached by the forward: official reset state.
        close(&stats[2].mean, &[0.0, 0.0], 0.0, "unused mean");
        close(&stats[2].var, &[1.0, 1.0], 0.0, "unused var");
    }

    #[test]
    fn inferred_momentum_gives_batch_stats_unbiased() {
        // bn has momentum 0.1, bn2 0.3: inference handles both.
        let samples: SampleCounter = Arc::new(|path: &str| match path {
            "bn" | "bn2" => Some(4 * 3 * 3),
            _ => None,
        });
        check(BnCalibration::infer().with_samples(samples), true);
    }

    #[test]
    fn inferred_momentum_biased() {
        check(BnCalibration::infer(), false);
    }

    #[test]
    fn known_momentum_one_pass() {
        let device = Device::flex().autodiff();
        let mut model = Tiny::new(0.1, &device);
        model.bn2.momentum = 0.1;
        let x = input(&device);
        let cal = BnCalibration::known(0.1)
            .with_samples(Arc::new(|p: &str| (p != "unused").then_some(36)));
        let mut calls = 0;
        model = cal.recalibrate(model, |m| {
            calls += 1;
            let _ = m.forward(x.clone());
        });
        assert_eq!(calls, 1);
        let stats = collect_bn_stats(&model);
        // Recompute the activations on a plain-device copy? They depend only on the weights
        // and the batch in train mode, so one more train forward gives them.
        let (_, h, h2) = model.forward(x);
        let (m1, v1) = channel_stats(h, true);
        let (m2, v2) = channel_stats(h2, true);
        close(&stats[0].mean, &m1, 1e-5, "bn mean");
        close(&stats[0].var, &v1, 1e-5, "bn var");
        close(&stats[1].mean, &m2, 1e-5, "bn2 mean");
        close(&stats[1].var, &v2, 1e-5, "bn2 var");
        close(&stats[2].var, &[1.0, 1.0], 1e-6, "unused var");
    }

    #[test]
    fn clones_share_the_recalibrated_state_and_eval_uses_it() {
        let device = Device::flex().autodiff();
        let model = Tiny::new(0.1, &device);
        let x = input(&device);
        let model = BnCalibration::infer().recalibrate(model, |m| {
            let _ = m.forward(x.clone());
        });
        // In eval mode (plain device), BN normalises with the calibrated stats, so the
        // output equals the train-mode output on the calibration batch (biased variance).
        let eval = model.valid();
        let (y_eval, _, _) = eval.forward(x.clone().without_autodiff());
        let (y_train, _, _) = model.forward(x);
        let a = y_eval.into_data().try_to_vec::<f32>().unwrap();
        let b = y_train.into_data().try_to_vec::<f32>().unwrap();
        for (p, q) in a.iter().zip(&b) {
            assert!((p - q).abs() < 1e-4, "{p} vs {q}");
        }
    }

    #[test]
    fn reset_gives_zero_one() {
        let device = Device::flex().autodiff();
        let model = Tiny::new(0.1, &device);
        let _ = model.forward(input(&device));
        let model = reset_bn_stats(model);
        for s in collect_bn_stats(&model) {
            assert!(s.mean.iter().all(|v| *v == 0.0));
            assert!(s.var.iter().all(|v| *v == 1.0));
        }
    }
}
