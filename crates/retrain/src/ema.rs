//! Model EMA for evaluation (timm `ModelEmaV2`, as DeiT uses it):
//! `ema ← d·ema + (1 − d)·model` over **every** float tensor of the state, BN running
//! statistics included (timm averages the whole `state_dict`).
//!
//! The EMA copy lives off the autodiff graph: create it with [`ModelEma::new`] (a deep copy via
//! `valid()`, which gives it its own BN running state; `clone()` would share it).

use burn::module::Module;
use ensemble_bootstrap::ema::{EmaScope, ema_average};

/// An exponential moving average of a module.
#[derive(Debug, Clone)]
pub struct ModelEma<M: Module> {
    /// The averaged module (off the autodiff device, inference mode).
    pub module: M,
    /// Decay per update.
    pub decay: f64,
}

impl<M: Module> ModelEma<M> {
    /// Starts the average at `model`.
    pub fn new(model: &M, decay: f64) -> Self {
        Self {
            module: model.valid(),
            decay,
        }
    }

    /// `ema ← d·ema + (1 − d)·model` (the workspace's one EMA,
    /// [`ensemble_bootstrap::ema::ema_average`], over parameters and buffers). Errors if the
    /// two modules differ in structure; the average is then left as it was.
    pub fn update(&mut self, model: &M) -> Result<(), String> {
        self.module = ema_average(
            self.module.clone(),
            model,
            self.decay,
            EmaScope::ParametersAndBuffers,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::{ModuleVisitor, Param};
    use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
    use burn::tensor::{Device, Tensor};

    struct Collect(Vec<Tensor<1>>);

    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let t = param.val();
            let n = t.shape().num_elements();
            self.0.push(t.reshape([n]));
        }
    }

    #[derive(Module, Debug)]
    struct Net {
        fc: Linear,
        bn: BatchNorm,
    }

    fn floats(m: &Net) -> Vec<f32> {
        let mut c = Collect(Vec::new());
        m.visit(&mut c);
        c.0.into_iter()
            .flat_map(|t| t.into_data().try_to_vec::<f32>().unwrap())
            .collect()
    }

    #[test]
    fn averages_parameters_and_buffers() {
        let device = Device::flex();
        let a = Net {
            fc: LinearConfig::new(2, 3).init(&device),
            bn: BatchNormConfig::new(3).init(&device),
        };
        let b = Net {
            fc: LinearConfig::new(2, 3).init(&device),
            bn: BatchNormConfig::new(3).init(&device),
        };
        // Give b's BN buffers non-default values through a training-mode forward.
        let dev_ad = device.autodiff();
        let b = b.train();
        let _ = b.bn.forward(
            Tensor::<2>::ones([4, 3], &dev_ad)
                .mul_scalar(5.0)
                .reshape([4, 3, 1, 1]),
        );
        let b = b.valid();
        let mut ema = ModelEma::new(&a, 0.75);
        ema.update(&b).unwrap();
        let (fa, fb, fe) = (floats(&a), floats(&b), floats(&ema.module));
        assert_eq!(fa.len(), fe.len());
        for ((x, y), z) in fa.iter().zip(&fb).zip(&fe) {
            assert!((z - (0.75 * x + 0.25 * y)).abs() < 1e-6, "{x} {y} {z}");
        }
        // The running mean moved in b, so the EMA's buffers moved too.
        assert!(fa != fb && fe != fa);
    }
}
