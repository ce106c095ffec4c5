//! Projector (neck) and predictor (head) MLPs (spec §3.5, §3.6).
//!
//! - Projector = `NonLinearNeckSimCLRProject` without its channel adapter (the supernet side
//!   owns `fix_channels` / `channel_fix`): global average pool → Linear(in→hid, bias) → BN1d →
//!   ReLU → Linear(hid→out, bias). No final BN.
//! - Predictor = `NonLinearNeckSimCLR`: Linear(out→hid, bias) → BN1d → ReLU → Linear(hid→out,
//!   bias), no pooling, no final BN.
//!
//! Official sizes (HyTra): projector 2048→4096→256, predictor 256→4096→256.
//! Initialisation: projector linears kaiming-normal (fan_in, ReLU gain √2), predictor linears
//! N(0, 0.01²); all linear biases 0; BN γ = 1, β = 0.

use bossnas_config::RunConfig;
use bossnas_kernels::batch_norm_relu;
use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

/// A two-layer MLP `Linear → BN1d → ReLU → Linear`, shared by projector and predictor.
#[derive(Module, Debug)]
pub struct Mlp {
    /// First linear layer (`in → hid`, bias).
    pub fc0: Linear,
    /// Hidden batch norm.
    pub bn0: BatchNorm,
    /// Second linear layer (`hid → out`, bias).
    pub fc1: Linear,
}

impl Mlp {
    fn new(
        sizes: [usize; 3],
        init: Initializer,
        bn_momentum: f64,
        bn_epsilon: f64,
        device: &Device,
    ) -> Self {
        let [i, h, o] = sizes;
        let lin = |a, b| {
            let mut l = LinearConfig::new(a, b)
                .with_initializer(init.clone())
                .init(device);
            l.bias = Some(Param::from_tensor(Tensor::zeros([b], device)));
            l
        };
        Self {
            fc0: lin(i, h),
            bn0: BatchNormConfig::new(h)
                .with_momentum(bn_momentum)
                .with_epsilon(bn_epsilon)
                .init(device),
            fc1: lin(h, o),
        }
    }

    /// # Shapes
    /// - input: `[batch, in]`
    /// - output: `[batch, out]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.fc1
            .forward(batch_norm_relu(&self.bn0, self.fc0.forward(x)))
    }
}

/// Configuration of the [`Projector`].
#[derive(Config, Debug, PartialEq)]
pub struct ProjectorConfig {
    /// Input channels after the supernet's channel adapter. Official HyTra/NATS: 2048.
    #[config(default = 2048)]
    pub in_channels: usize,
    /// Hidden width. Official: 4096.
    #[config(default = 4096)]
    pub hidden: usize,
    /// Output (embedding) width. Official: 256.
    #[config(default = 256)]
    pub out: usize,
    /// BN momentum (PyTorch convention). Default: 0.1.
    #[config(default = 0.1)]
    pub bn_momentum: f64,
    /// BN epsilon. Default: 1e-5.
    #[config(default = 1e-5)]
    pub bn_epsilon: f64,
}

impl ProjectorConfig {
    /// The run's projector for a block whose (adapted) output has `block_channels` channels;
    /// `heads.projector_in` overrides it when the supernet adapts channels.
    pub fn from_run(cfg: &RunConfig, block_channels: usize) -> Self {
        Self::new()
            .with_in_channels(cfg.heads.projector_in.unwrap_or(block_channels))
            .with_hidden(cfg.heads.projector_hidden)
            .with_out(cfg.heads.projector_out)
    }
}

impl ProjectorConfig {
    /// Builds a projector with kaiming-normal (fan_in, ReLU) linear weights and zero biases.
    pub fn init(&self, device: &Device) -> Projector {
        Projector {
            mlp: Mlp::new(
                [self.in_channels, self.hidden, self.out],
                Initializer::KaimingNormal {
                    gain: 2f64.sqrt(),
                    fan_out_only: false,
                },
                self.bn_momentum,
                self.bn_epsilon,
                device,
            ),
        }
    }
}

/// Projector (neck): global average pool + [`Mlp`].
#[derive(Module, Debug)]
pub struct Projector {
    /// The MLP after pooling.
    pub mlp: Mlp,
}

impl Projector {
    /// # Shapes
    /// - input: `[batch, in_channels, H, W]` (feature map; averaged over `H×W`)
    /// - output: `[batch, out]`
    pub fn forward(&self, features: Tensor<4>) -> Tensor<2> {
        let [b, c, h, w] = features.dims();
        let pooled = features.reshape([b, c, h * w]).mean_dim(2).reshape([b, c]);
        self.mlp.forward(pooled)
    }

    /// The MLP on already pooled features.
    ///
    /// # Shapes
    /// - input: `[batch, in_channels]`
    /// - output: `[batch, out]`
    pub fn forward_pooled(&self, pooled: Tensor<2>) -> Tensor<2> {
        self.mlp.forward(pooled)
    }
}

/// Configuration of the [`Predictor`].
#[derive(Config, Debug, PartialEq)]
pub struct PredictorConfig {
    /// Input width (= projector output). Official: 256.
    #[config(default = 256)]
    pub in_features: usize,
    /// Hidden width. Official: 4096.
    #[config(default = 4096)]
    pub hidden: usize,
    /// Output width. Official: 256.
    #[config(default = 256)]
    pub out: usize,
    /// Standard deviation of the normal weight init. Official: 0.01.
    #[config(default = 0.01)]
    pub init_std: f64,
    /// BN momentum (PyTorch convention). Default: 0.1.
    #[config(default = 0.1)]
    pub bn_momentum: f64,
    /// BN epsilon. Default: 1e-5.
    #[config(default = 1e-5)]
    pub bn_epsilon: f64,
}

impl PredictorConfig {
    /// The run's predictor (`heads.*`).
    pub fn from_run(cfg: &RunConfig) -> Self {
        Self::new()
            .with_in_features(cfg.heads.projector_out)
            .with_hidden(cfg.heads.predictor_hidden)
            .with_out(cfg.heads.projector_out)
    }
}

impl PredictorConfig {
    /// Builds a predictor with N(0, init_std²) linear weights and zero biases.
    pub fn init(&self, device: &Device) -> Predictor {
        Predictor {
            mlp: Mlp::new(
                [self.in_features, self.hidden, self.out],
                Initializer::Normal {
                    mean: 0.0,
                    std: self.init_std,
                },
                self.bn_momentum,
                self.bn_epsilon,
                device,
            ),
        }
    }
}

/// Predictor (head): [`Mlp`] on the projector output. Online branch only (no target copy).
#[derive(Module, Debug)]
pub struct Predictor {
    /// The MLP.
    pub mlp: Mlp,
}

impl Predictor {
    /// # Shapes
    /// - input: `[batch, in_features]`
    /// - output: `[batch, out]`
    pub fn forward(&self, z: Tensor<2>) -> Tensor<2> {
        self.mlp.forward(z)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(t: Tensor<2>) -> (f64, f64) {
        let v = t.into_data().try_to_vec::<f32>().unwrap();
        let n = v.len() as f64;
        let mean = v.iter().map(|x| *x as f64).sum::<f64>() / n;
        let var = v.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    #[test]
    fn official_defaults() {
        let p = ProjectorConfig::new();
        assert_eq!((p.in_channels, p.hidden, p.out), (2048, 4096, 256));
        let q = PredictorConfig::new();
        assert_eq!((q.in_features, q.hidden, q.out), (256, 4096, 256));
        assert_eq!(q.init_std, 0.01);
    }

    #[test]
    fn shapes_and_init() {
        let device = Device::flex().autodiff();
        let proj = ProjectorConfig::new()
            .with_in_channels(64)
            .with_hidden(128)
            .with_out(16)
            .init(&device);
        let pred = PredictorConfig::new()
            .with_in_features(16)
            .with_hidden(128)
            .with_out(16)
            .init(&device);
        let x = Tensor::<4>::ones([3, 64, 2, 2], &device);
        let z = proj.forward(x);
        assert_eq!(z.dims(), [3, 16]);
        assert_eq!(pred.forward(z).dims(), [3, 16]);

        // Kaiming normal fan_in: std = √(2/64) ≈ 0.177 for fc0 (64·128 samples).
        let (m, s) = stats(proj.mlp.fc0.weight.val());
        assert!(
            m.abs() < 0.02 && (s - (2.0f64 / 64.0).sqrt()).abs() < 0.015,
            "{m} {s}"
        );
        // Predictor N(0, 0.01²).
        let (m, s) = stats(pred.mlp.fc0.weight.val());
        assert!(m.abs() < 0.002 && (s - 0.01).abs() < 0.001, "{m} {s}");
        // Biases zero.
        for b in [&proj.mlp.fc0.bias, &proj.mlp.fc1.bias, &pred.mlp.fc1.bias] {
            let v = b
                .as_ref()
                .unwrap()
                .val()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            assert!(v.iter().all(|x| *x == 0.0));
        }
    }

    #[test]
    fn pooling_is_global_average() {
        let device = Device::flex();
        let proj = ProjectorConfig::new()
            .with_in_channels(2)
            .with_hidden(4)
            .with_out(3)
            .init(&device);
        // Channel 0 = [1,2,3,4] (mean 2.5), channel 1 = 7 everywhere.
        let x = Tensor::<4>::from_data(
            [[[[1.0, 2.0], [3.0, 4.0]], [[7.0, 7.0], [7.0, 7.0]]]],
            &device,
        );
        let pooled = Tensor::<2>::from_data([[2.5, 7.0]], &device);
        let a = proj.forward(x).into_data().try_to_vec::<f32>().unwrap();
        let b = proj
            .forward_pooled(pooled)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-6);
        }
    }
}
