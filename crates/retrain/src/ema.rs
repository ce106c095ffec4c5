//! Model EMA for evaluation (timm `ModelEmaV2`, as DeiT uses it):
//! `ema ← d·ema + (1 − d)·model` over **every** float tensor of the state, BN running
//! statistics included (timm averages the whole `state_dict`).
//!
//! The EMA copy lives off the autodiff graph: create it with [`ModelEma::new`] (a deep copy via
//! `valid()`, which gives it its own BN running state; `clone()` would share it).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Tensor;

struct Collect(Vec<Tensor<1>>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val().detach();
        let n = t.shape().num_elements();
        self.0.push(t.reshape([n]));
    }
}

struct Average {
    online: std::vec::IntoIter<Tensor<1>>,
    decay: f64,
    mismatch: Option<String>,
}

impl ModuleMapper for Average {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(online) = self.online.next() else {
            self.mismatch = Some("the model has fewer tensors than its EMA".into());
            return param;
        };
        let (id, ema, mapper) = param.consume();
        let shape = ema.shape();
        if online.shape().num_elements() != shape.num_elements() {
            self.mismatch = Some(format!(
                "tensor of shape {shape:?} differs from the model's"
            ));
            return Param::from_mapped_value(id, ema, mapper);
        }
        let online = online.reshape(shape).to_device(&ema.device());
        let updated = ema.mul_scalar(self.decay) + online.mul_scalar(1.0 - self.decay);
        Param::from_mapped_value(id, updated, mapper)
    }
}

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

    /// `ema ← d·ema + (1 − d)·model`. Errors if the two modules differ in structure.
    pub fn update(&mut self, model: &M) -> Result<(), String> {
        let mut c = Collect(Vec::new());
        model.visit(&mut c);
        let mut avg = Average {
            online: c.0.into_iter(),
            decay: self.decay,
            mismatch: None,
        };
        self.module = self.module.clone().map(&mut avg);
        if avg.online.next().is_some() {
            avg.mismatch = Some("the model has more tensors than its EMA".into());
        }
        avg.mismatch.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
    use burn::tensor::Device;

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
