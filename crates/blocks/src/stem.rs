//! The ResNet stem and the HyTra stem adapters (spec §1.4).

use bossnas_kernels::{batch_norm, conv2d_module};
use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::tensor::{Device, Tensor};

use crate::hytra_layers::{Act, conv};

/// ResNet stem: Conv 7×7 s2 p3 (no bias) → BN → act → MaxPool 3×3 s2 p1. Output at 1/4.
///
/// # Shapes
/// - input: `[batch, in_channels, H, W]`
/// - output: `[batch, channels, ⌈H/4⌉, ⌈W/4⌉]` (for even `H`, `W`)
#[derive(Module, Debug)]
pub struct Stem {
    /// The 7×7 stride-2 conv.
    pub conv: Conv2d,
    /// BN after the conv.
    pub bn: BatchNorm,
    /// 3×3 stride-2 max pool.
    pub pool: MaxPool2d,
    /// Activation (ReLU in the supernet, SiLU in BossNet-T0/T1).
    #[module(skip)]
    pub act: Act,
}

/// Configuration of a [`Stem`].
#[derive(Config, Debug)]
pub struct StemConfig {
    /// Output channels (64 in BossNAS).
    #[config(default = 64)]
    pub channels: usize,
    /// Image channels.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Activation after BN.
    #[config(default = "Act::Relu")]
    pub act: Act,
    /// Conv weight initializer (`None`: Burn's default).
    #[config(default = "None")]
    pub initializer: Option<Initializer>,
}

impl StemConfig {
    /// Builds the module.
    pub fn init(&self, device: &Device) -> Stem {
        Stem {
            conv: conv(
                self.in_channels,
                self.channels,
                7,
                2,
                3,
                1,
                false,
                &self.initializer,
            )
            .init(device),
            bn: BatchNormConfig::new(self.channels).init(device),
            pool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            act: self.act,
        }
    }
}

impl Stem {
    /// See the type-level `# Shapes`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = conv2d_module(&self.conv, x);
        let x = self.act.after_norm(&self.bn, x);
        self.pool.forward(x)
    }
}

/// Stem adapter of the supernet's first choice layer (`downsamples['64_<c>']`): depthwise conv
/// with kernel = stride = `2^(3−d)` (no bias) → 1×1 conv `C_stem → c` (no bias) → BN(c).
///
/// For depth `d = 3` (1/4) the depthwise conv is a 1×1, stride 1.
///
/// # Shapes
/// - input: `[batch, C_stem, H, W]` (the stem output, at 1/4)
/// - output: `[batch, c, H/s, W/s]` with `s = 2^(3−d)`
#[derive(Module, Debug)]
pub struct StemAdapter {
    /// Depthwise `s×s` stride-`s` conv.
    pub dw: Conv2d,
    /// Pointwise projection.
    pub pw: Conv2d,
    /// BN after the projection.
    pub bn: BatchNorm,
}

/// Configuration of a [`StemAdapter`].
#[derive(Config, Debug)]
pub struct StemAdapterConfig {
    /// Stem channels (64).
    pub in_channels: usize,
    /// Output channels `c` (the first op's input width, `layer_c[d]/4`).
    pub out_channels: usize,
    /// Kernel size and stride `s ∈ {1, 2, 4, 8}`.
    pub stride: usize,
}

impl StemAdapterConfig {
    /// Builds the module.
    pub fn init(&self, device: &Device) -> StemAdapter {
        let (c, s) = (self.in_channels, self.stride);
        StemAdapter {
            dw: conv(c, c, s, s, 0, c, false, &None).init(device),
            pw: conv(c, self.out_channels, 1, 1, 0, 1, false, &None).init(device),
            bn: BatchNormConfig::new(self.out_channels).init(device),
        }
    }
}

impl StemAdapter {
    /// See the type-level `# Shapes`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        batch_norm(
            &self.bn,
            conv2d_module(&self.pw, conv2d_module(&self.dw, x)),
        )
    }
}
