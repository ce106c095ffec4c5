//! Small building blocks shared by the HyTra search ops ([`crate::res_conv`], [`crate::res_att`])
//! and their retraining versions ([`crate::retrain`]): activation choice, conv + BN (+ act)
//! units, the timm-style squeeze-excitation gate and stochastic depth.

use bossnas_kernels::{batch_norm, batch_norm_relu, conv2d_module, silu};
use burn::config::Config;
use burn::module::{Flag, Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Distribution, Tensor};
use serde::{Deserialize, Serialize};

/// Non-linearity used inside a block.
///
/// The search space uses [`Act::Relu`] everywhere; BossNet-T0/T1 retrain with [`Act::Silu`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Act {
    /// `max(x, 0)` (default).
    #[default]
    Relu,
    /// `x · sigmoid(x)` (a.k.a. swish).
    Silu,
}

impl Act {
    /// Applies the activation element-wise.
    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Act::Relu => relu(x),
            Act::Silu => silu(x),
        }
    }

    /// `act(bn(x))`, with a ReLU fused into the batch-norm node ([`batch_norm_relu`]).
    pub fn after_norm<const D: usize>(self, bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
        match self {
            Act::Relu => batch_norm_relu(bn, x),
            Act::Silu => silu(batch_norm(bn, x)),
        }
    }
}

/// Plain conv config with PyTorch-like `padding` and optional bias.
#[allow(clippy::too_many_arguments)] // crate-private shorthand mirroring `nn.Conv2d(...)`
pub(crate) fn conv(
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    groups: usize,
    bias: bool,
    init: &Option<Initializer>,
) -> Conv2dConfig {
    let cfg = Conv2dConfig::new([c_in, c_out], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(
            padding, padding, padding, padding,
        ))
        .with_groups(groups)
        .with_bias(bias);
    match init {
        Some(i) => cfg.with_initializer(i.clone()),
        None => cfg,
    }
}

/// A BatchNorm whose γ starts at zero ("zero-init last BN"), lazily initialised.
pub(crate) fn bn_zero_gamma(channels: usize, device: &Device) -> BatchNorm {
    let mut bn = BatchNormConfig::new(channels).init(device);
    bn.gamma = Initializer::Zeros.init([channels], device);
    bn
}

/// `Conv(k, stride, pad) → BN → optional act`, no conv bias: the search-time shortcuts and the
/// BossNet transition layers.
///
/// # Shapes
/// - input: `[batch, c_in, H, W]`
/// - output: `[batch, c_out, ⌈H/stride⌉, ⌈W/stride⌉]` (for `k = 2·pad + 1`)
#[derive(Module, Debug)]
pub struct ConvBnAct {
    /// The convolution (no bias).
    pub conv: Conv2d,
    /// Batch norm over the output channels.
    pub bn: BatchNorm,
    /// Activation after BN, or none.
    #[module(skip)]
    pub act: Option<Act>,
}

/// Configuration of a [`ConvBnAct`].
#[derive(Config, Debug)]
pub struct ConvBnActConfig {
    /// Input and output channels.
    pub channels: [usize; 2],
    /// Square kernel size.
    #[config(default = 1)]
    pub kernel: usize,
    /// Stride of the convolution.
    #[config(default = 1)]
    pub stride: usize,
    /// Zero padding on every side.
    #[config(default = 0)]
    pub padding: usize,
    /// Activation applied after BN (`None`: none).
    #[config(default = "Some(Act::Relu)")]
    pub act: Option<Act>,
    /// Conv weight initializer (`None`: Burn's default, PyTorch-equivalent U(±1/√fan_in)).
    #[config(default = "None")]
    pub initializer: Option<Initializer>,
}

impl ConvBnActConfig {
    /// Builds the module (parameters are lazily initialised).
    pub fn init(&self, device: &Device) -> ConvBnAct {
        let [c_in, c_out] = self.channels;
        ConvBnAct {
            conv: conv(
                c_in,
                c_out,
                self.kernel,
                self.stride,
                self.padding,
                1,
                false,
                &self.initializer,
            )
            .init(device),
            bn: BatchNormConfig::new(c_out).init(device),
            act: self.act,
        }
    }
}

impl ConvBnAct {
    /// See the type-level `# Shapes`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = conv2d_module(&self.conv, x);
        match self.act {
            Some(a) => a.after_norm(&self.bn, y),
            None => batch_norm(&self.bn, y),
        }
    }
}

/// Retraining shortcut (timm `avg_down`): `AvgPool2d(2, s, ceil_mode, count_include_pad=False)`
/// (identity at stride 1) → 1×1 conv (no bias) → BN, **no** activation.
///
/// # Shapes
/// - input: `[batch, c_in, H, W]`
/// - output: `[batch, c_out, ⌈H/s⌉, ⌈W/s⌉]`
#[derive(Module, Debug)]
pub struct AvgDown {
    /// The 2×2 average pool, present only at stride 2.
    pub pool: Option<AvgPool2d>,
    /// 1×1 projection.
    pub conv: Conv2d,
    /// Batch norm after the projection.
    pub bn: BatchNorm,
}

/// Configuration of an [`AvgDown`] shortcut.
#[derive(Config, Debug)]
pub struct AvgDownConfig {
    /// Input and output channels.
    pub channels: [usize; 2],
    /// 1 or 2.
    #[config(default = 1)]
    pub stride: usize,
    /// Conv weight initializer (`None`: Burn's default).
    #[config(default = "None")]
    pub initializer: Option<Initializer>,
}

impl AvgDownConfig {
    /// Builds the module.
    pub fn init(&self, device: &Device) -> AvgDown {
        let [c_in, c_out] = self.channels;
        let pool = (self.stride > 1).then(|| {
            AvgPool2dConfig::new([2, 2])
                .with_strides([self.stride, self.stride])
                .with_ceil_mode(true)
                .with_count_include_pad(false)
                .init()
        });
        AvgDown {
            pool,
            conv: conv(c_in, c_out, 1, 1, 0, 1, false, &self.initializer).init(device),
            bn: BatchNormConfig::new(c_out).init(device),
        }
    }
}

impl AvgDown {
    /// See the type-level `# Shapes`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = match &self.pool {
            Some(p) => p.forward(x),
            None => x,
        };
        batch_norm(&self.bn, conv2d_module(&self.conv, x))
    }
}

/// Squeeze-excitation gate as in timm 0.3 `SEModule`: global average pool → 1×1 conv
/// (with bias) to `max(C/reduction, min_channels)` → ReLU → 1×1 conv (with bias) → sigmoid,
/// multiplied onto the input.
///
/// # Shapes
/// - input and output: `[batch, C, H, W]`
#[derive(Module, Debug)]
pub struct SqueezeExcite {
    /// Reduction conv `C → r`.
    pub fc1: Conv2d,
    /// Expansion conv `r → C`.
    pub fc2: Conv2d,
}

/// Configuration of a [`SqueezeExcite`] gate.
#[derive(Config, Debug)]
pub struct SqueezeExciteConfig {
    /// Channels gated.
    pub channels: usize,
    /// Channel reduction factor.
    #[config(default = 16)]
    pub reduction: usize,
    /// Lower bound of the reduced width.
    #[config(default = 8)]
    pub min_channels: usize,
    /// Weight initializer (`None`: Burn's default).
    #[config(default = "None")]
    pub initializer: Option<Initializer>,
}

impl SqueezeExciteConfig {
    /// Reduced width `max(channels / reduction, min_channels)`.
    pub fn reduced(&self) -> usize {
        (self.channels / self.reduction).max(self.min_channels)
    }

    /// Builds the module.
    pub fn init(&self, device: &Device) -> SqueezeExcite {
        let r = self.reduced();
        SqueezeExcite {
            fc1: conv(self.channels, r, 1, 1, 0, 1, true, &self.initializer).init(device),
            fc2: conv(r, self.channels, 1, 1, 0, 1, true, &self.initializer).init(device),
        }
    }
}

impl SqueezeExcite {
    /// See the type-level `# Shapes`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let s = x.clone().mean_dim(3).mean_dim(2);
        let s = sigmoid(self.fc2.forward(relu(self.fc1.forward(s))));
        x * s
    }
}

/// Stochastic depth ("drop path"): in training on an autodiff device, zeroes whole samples
/// with probability `prob` and rescales the survivors by `1/(1-prob)`; identity otherwise.
///
/// # Shapes
/// - input and output: `[batch, ...]`
#[derive(Module, Debug)]
pub struct DropPath {
    /// Drop probability.
    pub prob: f64,
    /// Training flag (turned off by `Module::valid`).
    pub training: Param<Flag>,
}

impl DropPath {
    /// A drop-path layer with probability `prob ∈ [0, 1)`.
    pub fn new(prob: f64) -> Self {
        assert!(
            (0.0..1.0).contains(&prob),
            "drop-path probability must lie in [0, 1), got {prob}"
        );
        Self {
            prob,
            training: Param::from_bool(true),
        }
    }

    /// See the type-level `# Shapes`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if self.prob == 0.0 || !self.training.is_enabled() || !x.device().is_autodiff() {
            return x;
        }
        let keep = 1.0 - self.prob;
        let mut shape = [1usize; D];
        shape[0] = x.dims()[0];
        let mask = Tensor::<D>::random(shape, Distribution::Bernoulli(keep), &x.device());
        x * mask.div_scalar(keep)
    }
}
