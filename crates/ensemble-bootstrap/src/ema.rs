//! Exponential moving average of the online network into the target network (spec §3.1, §4.2).
//!
//! `target ← m·target + (1 − m)·online` over every float **parameter** of a module; buffers
//! (Burn's BatchNorm `running_mean` / `running_var`) are **not** averaged, as in the official
//! `_momentum_update`, which zips `parameters()` only.
//!
//! Burn's `RunningState` reports itself to visitors and mappers through `visit_float` /
//! `map_float` exactly like a parameter (same `Param` wrapper), so a plain visitor would EMA the
//! running statistics too. We tell them apart by the field name the derive passes to
//! `enter_module`: `RunningState` is only used by `burn::nn::BatchNorm`, whose buffers are named
//! [`BUFFER_FIELDS`] (`running_mean`, `running_var`). Those entries are skipped on both sides.
//!
//! # Creating a target
//!
//! Use [`make_target`]: `online.valid().train().no_grad()`.
//! - `valid()` builds fresh `RunningState`s, so the target's BN statistics are an independent
//!   copy. `clone()` would **share** them (they are `Arc<Mutex<..>>`) and a target forward pass
//!   would then move the online running stats.
//! - `train()` moves the tensors back to the autodiff device and re-enables the training flags,
//!   so the target's BN normalises with **batch** statistics, as BYOL's target does
//!   (Burn's BN uses batch statistics only on an autodiff device with its training flag on).
//! - `no_grad()` stops the target's parameters from requiring gradients: its outputs are
//!   untracked and the optimizer never sees it. Parameter ids are kept (harmless).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Tensor;

/// Field names of Burn module buffers (not parameters) that the EMA skips.
pub const BUFFER_FIELDS: [&str; 2] = ["running_mean", "running_var"];

/// Deep-copies `online` into an EMA target: `online.valid().train().no_grad()`.
/// See the [module documentation](self) for why not `clone()`.
pub fn make_target<M: Module>(online: &M) -> M {
    online.valid().train().no_grad()
}

/// Which float tensors of a module an EMA averages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmaScope {
    /// Parameters only, BN running statistics ([`BUFFER_FIELDS`]) left as they are: the
    /// Siamese target of the official `_momentum_update`.
    Parameters,
    /// Every float tensor, BN running statistics included: timm's `ModelEmaV2` over the whole
    /// `state_dict`, the evaluation EMA of retraining.
    ParametersAndBuffers,
}

impl EmaScope {
    fn skips(self, path: &[String]) -> bool {
        self == EmaScope::Parameters
            && path
                .last()
                .is_some_and(|leaf| BUFFER_FIELDS.contains(&leaf.as_str()))
    }
}

struct Collect {
    scope: EmaScope,
    path: Vec<String>,
    entries: Vec<(String, Tensor<1>)>,
}

impl ModuleVisitor for Collect {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.scope.skips(&self.path) {
            return;
        }
        let t = param.val().detach();
        let n = t.shape().num_elements();
        self.entries.push((self.path.join("."), t.reshape([n])));
    }
}

struct EmaMapper {
    scope: EmaScope,
    path: Vec<String>,
    online: std::vec::IntoIter<(String, Tensor<1>)>,
    momentum: f64,
    /// The first structural difference met; the tensors after it are left as they are.
    mismatch: Option<String>,
}

impl ModuleMapper for EmaMapper {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.mismatch.is_some() || self.scope.skips(&self.path) {
            return param;
        }
        let here = self.path.join(".");
        let Some((name, online)) = self.online.next() else {
            self.mismatch = Some(format!("the online module has no tensor for `{here}`"));
            return param;
        };
        if name != here {
            self.mismatch = Some(format!(
                "the modules differ in structure: `{name}` (online) against `{here}`"
            ));
            return param;
        }
        let (id, target, mapper) = param.consume();
        let shape = target.shape();
        if online.shape().num_elements() != shape.num_elements() {
            self.mismatch = Some(format!(
                "`{here}`: shape {shape:?} differs from the online module's"
            ));
            return Param::from_mapped_value(id, target, mapper);
        }
        let online = online.reshape(shape).to_device(&target.device());
        let updated =
            (target.mul_scalar(self.momentum) + online.mul_scalar(1.0 - self.momentum)).detach();
        Param::from_mapped_value(id, updated, mapper)
    }
}

/// Returns `m·target + (1 − m)·online` for every float tensor of `scope`, matched by its path
/// in the module tree. The target's training flags and gradient settings are kept. This is the
/// one EMA of the workspace: the Siamese target ([`ema_update`]) and retraining's evaluation
/// EMA (`bossnas_retrain::ema::ModelEma`) both call it.
///
/// # Errors
/// If the two modules differ in structure or in a tensor's size (the message names the
/// tensor); the returned error drops the partly averaged target.
pub fn ema_average<M: Module>(
    target: M,
    online: &M,
    momentum: f64,
    scope: EmaScope,
) -> Result<M, String> {
    let mut collect = Collect {
        scope,
        path: Vec::new(),
        entries: Vec::new(),
    };
    online.visit(&mut collect);
    let mut mapper = EmaMapper {
        scope,
        path: Vec::new(),
        online: collect.entries.into_iter(),
        momentum,
        mismatch: None,
    };
    let target = target.map(&mut mapper);
    if let Some(m) = mapper.mismatch {
        return Err(format!("EMA: {m}"));
    }
    if let Some((name, _)) = mapper.online.next() {
        return Err(format!(
            "EMA: the online module has more tensors than the target (first extra: `{name}`)"
        ));
    }
    Ok(target)
}

/// Returns `m·target + (1 − m)·online` for every float parameter (buffers excluded): the
/// Siamese target update.
///
/// Both modules must have the same structure (the target made by [`make_target`] or loaded
/// from the same architecture). The target's training flags, gradient settings and BN running
/// statistics are left as they are.
///
/// # Panics
/// If the two modules differ in structure or parameter shapes (a programming error: the
/// target is always a copy of the online network).
pub fn ema_update<M: Module>(target: M, online: &M, momentum: f64) -> M {
    ema_average(target, online, momentum, EmaScope::Parameters).unwrap_or_else(|e| panic!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{BatchNorm, BatchNormConfig, Linear};
    use burn::tensor::Device;

    #[derive(Module, Debug)]
    struct Net {
        fc: Linear,
        bn: BatchNorm,
    }

    impl Net {
        fn forward(&self, x: Tensor<2>) -> Tensor<2> {
            self.bn.forward(self.fc.forward(x))
        }
    }

    fn net(w: [[f32; 2]; 2], b: [f32; 2], device: &Device) -> Net {
        Net {
            fc: Linear {
                weight: Param::from_data(w, device),
                bias: Some(Param::from_data(b, device)),
            },
            bn: BatchNormConfig::new(2).init(device),
        }
    }

    fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-6, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn ema_matches_hand_computation_and_skips_running_stats() {
        let device = Device::flex().autodiff();
        let target = net([[0.0, 0.0], [0.0, 0.0]], [0.0, 0.0], &device);
        let mut online = net([[1.0, 2.0], [3.0, 4.0]], [10.0, -10.0], &device);
        // Online BN γ/β differ from the target's.
        online.bn.gamma = Param::from_data([2.0, 4.0], &device);
        online.bn.beta = Param::from_data([1.0, -1.0], &device);
        let target = make_target(&target);

        // Move the *online* running stats so an accidental EMA of buffers would show.
        let x = Tensor::<2>::from_data([[1.0, 0.0], [3.0, 2.0]], &device);
        let _ = online.forward(x);
        let online = online.valid().train(); // sync running stats
        let online_rm = vals(online.bn.running_mean.value_sync());
        assert!(online_rm.iter().any(|v| *v != 0.0));

        let target = ema_update(target, &online, 0.9);
        // 0.9·0 + 0.1·online
        close(&vals(target.fc.weight.val()), &[0.1, 0.2, 0.3, 0.4]);
        close(&vals(target.fc.bias.as_ref().unwrap().val()), &[1.0, -1.0]);
        // γ: 0.9·1 + 0.1·[2, 4] = [1.1, 1.3]; β: 0.9·0 + 0.1·[1, −1].
        close(&vals(target.bn.gamma.val()), &[1.1, 1.3]);
        close(&vals(target.bn.beta.val()), &[0.1, -0.1]);
        // Buffers untouched: still the BN init values.
        close(&vals(target.bn.running_mean.value_sync()), &[0.0, 0.0]);
        close(&vals(target.bn.running_var.value_sync()), &[1.0, 1.0]);

        // Second update: 0.5·target + 0.5·online.
        let target = ema_update(target, &online, 0.5);
        close(&vals(target.fc.weight.val()), &[0.55, 1.1, 1.65, 2.2]);
        close(&vals(target.bn.gamma.val()), &[1.55, 2.65]);

        // Target stays out of the graph.
        assert!(!target.fc.weight.val().is_require_grad());
        assert!(online.fc.weight.val().is_require_grad());
    }

    #[test]
    fn target_is_independent_of_online_bn_state() {
        let device = Device::flex().autodiff();
        let online = net([[1.0, 2.0], [3.0, 4.0]], [0.0, 0.0], &device);
        let target = make_target(&online);
        let x = Tensor::<2>::from_data([[1.0, 0.0], [3.0, 2.0]], &device);
        let y = target.forward(x);
        // Target uses batch statistics (training BN) and records no graph.
        assert!(!y.is_tracked());
        let online = online.valid();
        close(&vals(online.bn.running_mean.value_sync()), &[0.0, 0.0]);
        let target = target.valid();
        assert!(vals(target.bn.running_mean.value_sync())[0] != 0.0);
    }

    #[test]
    fn both_scopes_and_a_mismatch_named() {
        let device = Device::flex();
        let zeros = || net([[0.0, 0.0], [0.0, 0.0]], [0.0, 0.0], &device);
        let online = net([[4.0, 4.0], [4.0, 4.0]], [4.0, 4.0], &device);
        // Running mean: 0 in a fresh target, 2 in the online module. (Mapping a module writes
        // its running state in place and clones share it, so each call gets its own target.)
        online
            .bn
            .running_mean
            .update(Tensor::<1>::from_data([2.0, 2.0], &device));
        let _ = online.bn.running_mean.value_sync();
        let with = ema_average(zeros(), &online, 0.5, EmaScope::ParametersAndBuffers).unwrap();
        close(&vals(with.fc.weight.val()), &[2.0; 4]);
        close(&vals(with.bn.running_mean.value_sync()), &[1.0, 1.0]);
        let without = ema_average(zeros(), &online, 0.5, EmaScope::Parameters).unwrap();
        close(&vals(without.fc.weight.val()), &[2.0; 4]);
        close(&vals(without.bn.running_mean.value_sync()), &[0.0, 0.0]);

        // A target of another shape is refused, naming the tensor, instead of panicking.
        let wide = Net {
            fc: burn::nn::LinearConfig::new(2, 3).init(&device),
            bn: BatchNormConfig::new(3).init(&device),
        };
        let err = ema_average(wide, &online, 0.5, EmaScope::Parameters).unwrap_err();
        assert!(err.contains("fc.weight"), "{err}");
    }
}
