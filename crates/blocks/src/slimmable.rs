//! Slimmable layers for the BossNAS NATS-SSS supernet: one convolution weight built at the
//! largest width and sliced per call, and one private batch norm per candidate width.
//!
//! These follow the "slimmable networks" construction used by BossNAS
//! (`operations/nats_ops.py`): a width choice never owns separate conv weights, it uses the
//! *first* `C_out × C_in` filters of the shared tensor, so narrow candidates are nested in wide
//! ones. Batch-norm statistics differ too much between widths to be shared, so every width
//! gets its own [`BatchNorm`] ("switchable BN").

use bossnas_kernels::batch_norm;
use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::conv::Conv2dConfig;
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor};

/// Configuration of a [`SlimConv2d`].
#[derive(Config, Debug)]
pub struct SlimConv2dConfig {
    /// Largest input channel count the weight is built for.
    pub max_in: usize,
    /// Largest output channel count the weight is built for.
    pub max_out: usize,
    /// Square kernel size.
    pub kernel_size: usize,
    /// Stride (both axes). Default: 1.
    #[config(default = 1)]
    pub stride: usize,
    /// Symmetric zero padding (both axes). Default: `kernel_size / 2` when `None`.
    #[config(default = "None")]
    pub padding: Option<usize>,
    /// Whether the conv has a bias (sliced like the weight). Default: false (all NATS convs
    /// are followed by BN).
    #[config(default = false)]
    pub bias: bool,
}

impl SlimConv2dConfig {
    /// Builds the shared weight `[max_out, max_in, k, k]` with Burn's default conv
    /// initializer, fan-in computed at the maximum width (as `nn.Conv2d` at 64 channels does).
    pub fn init(&self, device: &Device) -> SlimConv2d {
        let full = Conv2dConfig::new([self.max_in, self.max_out], [self.kernel_size; 2])
            .with_bias(self.bias)
            .init(device);
        SlimConv2d {
            weight: full.weight,
            bias: full.bias,
            stride: self.stride,
            padding: self.padding.unwrap_or(self.kernel_size / 2),
        }
    }
}

/// A convolution whose weight is built once at the maximum width and sliced to
/// `weight[..c_out, ..c_in]` (and `bias[..c_out]`) on every call; `c_in` is read from the input.
///
/// Gradients of a call reach only the used slice of the shared tensor; the rest of the
/// tensor gets exact zeros.
///
/// # Shapes
/// - input: `[batch, c_in, H, W]` with `c_in ≤ max_in`
/// - output: `[batch, c_out, H', W']` with `H' = (H + 2·pad − k) / stride + 1`
#[derive(Module, Debug)]
pub struct SlimConv2d {
    /// Shared weight `[max_out, max_in, k, k]`.
    pub weight: Param<Tensor<4>>,
    /// Optional shared bias `[max_out]`.
    pub bias: Option<Param<Tensor<1>>>,
    /// Stride (both axes).
    pub stride: usize,
    /// Symmetric padding (both axes).
    pub padding: usize,
}

impl SlimConv2d {
    /// Largest output width.
    pub fn max_out(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Largest input width.
    pub fn max_in(&self) -> usize {
        self.weight.dims()[1]
    }

    /// Convolves `x` (any `c_in ≤ max_in`) into `c_out` channels. See the type-level `# Shapes`.
    pub fn forward(&self, x: Tensor<4>, c_out: usize) -> Tensor<4> {
        let [_, c_in, _, _] = x.dims();
        let [max_out, max_in, k, _] = self.weight.dims();
        assert!(
            c_in <= max_in && c_out <= max_out && c_out > 0,
            "slimmable conv built for {max_in}→{max_out} channels asked for {c_in}→{c_out}"
        );
        let w = self.weight.val().slice([0..c_out, 0..c_in, 0..k, 0..k]);
        let b = self.bias.as_ref().map(|b| b.val().narrow(0, 0, c_out));
        let opts = ConvOptions::new([self.stride; 2], [self.padding; 2], [1, 1], 1);
        bossnas_kernels::conv2d(x, w, b, opts)
    }
}

/// Configuration of a [`SwitchableBatchNorm`].
#[derive(Config, Debug)]
pub struct SwitchableBatchNormConfig {
    /// The candidate widths; BN `i` normalises `widths[i]` channels.
    pub widths: Vec<usize>,
}

impl SwitchableBatchNormConfig {
    /// One PyTorch-default BN (ε = 1e-5, momentum 0.1) per width.
    pub fn init(&self, device: &Device) -> SwitchableBatchNorm {
        SwitchableBatchNorm {
            bns: self
                .widths
                .iter()
                .map(|&w| BatchNormConfig::new(w).init(device))
                .collect(),
        }
    }
}

/// One private [`BatchNorm`] per candidate width, selected by the width index.
///
/// # Shapes
/// - input and output: `[batch, widths[index], H, W]`
#[derive(Module, Debug)]
pub struct SwitchableBatchNorm {
    /// The per-width batch norms.
    pub bns: Vec<BatchNorm>,
}

impl SwitchableBatchNorm {
    /// Normalises `x` with the BN of width index `index`. See the type-level `# Shapes`.
    pub fn forward(&self, x: Tensor<4>, index: usize) -> Tensor<4> {
        batch_norm(&self.bns[index], x)
    }
}

/// Symmetric explicit padding in Burn 0.22's four-value form.
pub(crate) fn pad(p: usize) -> PaddingConfig2d {
    PaddingConfig2d::Explicit(p, p, p, p)
}
