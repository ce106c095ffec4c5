//! PEG: the implicit positional encoding of BossNAS (spec §2.1), a depthwise 3×3 conv with bias.

use bossnas_kernels::conv2d_module;
use burn::config::Config;
use burn::module::Module;
use burn::nn::Initializer;
use burn::nn::conv::Conv2d;
use burn::tensor::{Device, Tensor};

use crate::hytra_layers::conv;

/// Depthwise 3×3 convolution with bias (padding 1). It is **not** residual: the output is
/// `conv(x)`, not `x + conv(x)`. With stride 2 it performs a block's spatial downsampling.
///
/// Together with the 1×1 conv in front of it, it forms the "depthwise-separable conv" of the
/// paper.
///
/// # Shapes
/// - input: `[batch, C, H, W]`
/// - output: `[batch, C, ⌈H/stride⌉, ⌈W/stride⌉]`
#[derive(Module, Debug)]
pub struct Peg {
    /// Depthwise conv, weight `[C, 1, 3, 3]`, bias `[C]`.
    pub conv: Conv2d,
}

/// Configuration of a [`Peg`].
#[derive(Config, Debug)]
pub struct PegConfig {
    /// Channels `C` (also the number of groups).
    pub channels: usize,
    /// Stride: 1 keeps the resolution, 2 halves it.
    #[config(default = 1)]
    pub stride: usize,
    /// Weight initializer (`None`: Burn's default, PyTorch-equivalent U(±1/√fan_in) with
    /// fan_in = 9).
    #[config(default = "None")]
    pub initializer: Option<Initializer>,
}

impl PegConfig {
    /// Builds the module (lazily initialised parameters).
    pub fn init(&self, device: &Device) -> Peg {
        let c = self.channels;
        Peg {
            conv: conv(c, c, 3, self.stride, 1, c, true, &self.initializer).init(device),
        }
    }
}

impl Peg {
    /// See the type-level `# Shapes`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        conv2d_module(&self.conv, x)
    }

    /// The stride this PEG was built with.
    pub fn stride(&self) -> usize {
        self.conv.stride[0]
    }
}
