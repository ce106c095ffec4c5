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

fn is_buffer(path: &[String]) -> bool {
    path.last()
        .is_some_and(|leaf| BUFFER_FIELDS.contains(&leaf.as_str()))
}

struct Collect {
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
        if is_buffer(&self.path) {
            return;
        }
        let t = param.val().detach();
        let n = t.shape().num_elements();
        self.entries.push((self.path.join("."), t.reshape([n])));
    }
}

struct EmaMapper {
    path: Vec<String>,
    online: std::vec::IntoIter<(String, Tensor<1>)>,
    momentum: f64,
}

impl ModuleMapper for EmaMapper {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if is_buffer(&self.path) {
            return param;
        }
        let here = self.path.join(".");
        let (name, online) = self
            .online
            .next()
            .unwrap_or_else(|| panic!("EMA: online module has no parameter for target `{here}`"));
        assert_eq!(
            name, here,
            "EMA: online and target modules differ in structure"
        );
        let (id, target, mapper) = param.consume();
        let shape = target.shape();
        assert_eq!(
            online.shape().num_elements(),
            shape.num_elements(),
            "EMA: shape mismatch at `{here}`"
        );
        let online = online.reshape(shape).to_device(&target.device());
        let updated =
            (target.mul_scalar(self.momentum) + online.mul_scalar(1.0 - self.momentum)).detach();
        Param::from_mapped_value(id, updated, mapper)
    }
}

/// Returns `m·target + (1 − m)·online` for every float parameter (buffers excluded).
///
/// Both modules must have the same structure (the target made by [`make_target`] or loaded
/// from the same architecture). The target's training flags, gradient settings and BN running
/// statistics are left as they are.
///
/// # Panics
/// If the two modules differ in structure or parameter shapes.
pub fn ema_update<M: Module>(target: M, online: &M, momentum: f64) -> M {
    let mut collect = Collect {
        path: Vec::new(),
        entries: Vec::new(),
    };
    online.visit(&mut collect);
    let mut mapper = EmaMapper {
        path: Vec::new(),
        online: collect.entries.into_iter(),
        momentum,
    };
    let target = target.map(&mut mapper);
    assert!(
        mapper.online.next().is_none(),
        "EMA: online module has more parameters than the target"
    );
    target
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
}
