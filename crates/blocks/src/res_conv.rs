//! Search-time ResConv (spec §2.2): a ResNet bottleneck whose first 1×1 conv is followed by a
//! PEG, with separate stride-1 and stride-2 entries sharing the rest of the block.

use bossnas_kernels::{add_relu, batch_norm, batch_norm_relu, conv2d_module};
use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::{Device, Tensor};

use crate::hytra_layers::{bn_zero_gamma, conv};
use crate::params::trainable_params;
use crate::search_entry::SearchEntryConfig;

/// Entry of a [`ResConv`] (`conv1/peg/bn1/downsample` of the official code; `_d` at stride 2).
pub type ResConvEntry = crate::search_entry::SearchEntry;

/// Search-time ResConv (`hytra_ops.ResConv`) with output `4·planes` channels.
///
/// Main branch: entry (`conv1 → PEG → bn1`) → ReLU → `conv2` 3×3 (stride 1) → `bn2` → ReLU →
/// `conv3` 1×1 → `bn3` (γ initialised to 0), then `+ shortcut` → ReLU. The stride-1 and
/// stride-2 variants have separate entries and shortcuts but **share** `conv2, bn2, conv3,
/// bn3`. The shortcut of the search space contains a ReLU (unlike the retraining block).
///
/// # Shapes
/// - [`ResConv::forward`] with stride 1: `[batch, in_channels, H, W] → [batch, 4·planes, H, W]`
/// - with stride 2: `[batch, up_in_channels, 2H, 2W] → [batch, 4·planes, H, W]`
#[derive(Module, Debug)]
pub struct ResConv {
    /// Stride-1 entry (input `in_channels` at the op's own scale).
    pub entry: ResConvEntry,
    /// Stride-2 entry (input `up_in_channels` at twice the op's resolution), if built.
    pub entry_down: Option<ResConvEntry>,
    /// Shared 3×3 conv `planes → planes`.
    pub conv2: Conv2d,
    /// Shared BN after `conv2`.
    pub bn2: BatchNorm,
    /// Shared 1×1 conv `planes → 4·planes`.
    pub conv3: Conv2d,
    /// Shared last BN (γ = 0 at init).
    pub bn3: BatchNorm,
}

/// Configuration of a search-time [`ResConv`].
#[derive(Config, Debug)]
pub struct ResConvConfig {
    /// Input channels of the stride-1 entry (`layer_c[d]`, or `layer_c[d]/4` in the supernet's
    /// first layer).
    pub in_channels: usize,
    /// Bottleneck width; the output has `4·planes` channels.
    pub planes: usize,
    /// Input channels of the stride-2 entry (`layer_c[d+1]`); `None`: no stride-2 entry.
    #[config(default = "None")]
    pub up_in_channels: Option<usize>,
}

impl ResConvConfig {
    /// Output channels `4·planes`.
    pub fn out_channels(&self) -> usize {
        4 * self.planes
    }

    /// Builds the module (lazily initialised; PyTorch-default init, `bn3.γ = 0`).
    pub fn init(&self, device: &Device) -> ResConv {
        let p = self.planes;
        ResConv {
            entry: SearchEntryConfig::new(self.in_channels, p, 4 * p, 1).init(device),
            entry_down: self
                .up_in_channels
                .map(|c| SearchEntryConfig::new(c, p, 4 * p, 2).init(device)),
            conv2: conv(p, p, 3, 1, 1, 1, false, &None).init(device),
            bn2: BatchNormConfig::new(p).init(device),
            conv3: conv(p, 4 * p, 1, 1, 0, 1, false, &None).init(device),
            bn3: bn_zero_gamma(4 * p, device),
        }
    }
}

impl ResConv {
    /// Runs the stride-1 (`stride == 1`) or stride-2 (`stride == 2`) variant.
    ///
    /// # Panics
    /// If `stride == 2` and the op has no stride-2 entry, or `stride ∉ {1, 2}`.
    pub fn forward(&self, x: Tensor<4>, stride: usize) -> Tensor<4> {
        let (h, residual) = self.entry_for(stride).forward(x);
        let h = batch_norm_relu(&self.bn2, conv2d_module(&self.conv2, h));
        let h = batch_norm(&self.bn3, conv2d_module(&self.conv3, h));
        add_relu(h, residual)
    }

    /// The entry used at `stride`.
    pub fn entry_for(&self, stride: usize) -> &ResConvEntry {
        match stride {
            1 => &self.entry,
            2 => self
                .entry_down
                .as_ref()
                .expect("this ResConv has no stride-2 input adapter (spec §9 B3)"),
            s => panic!("ResConv stride must be 1 or 2, got {s}"),
        }
    }

    /// Parameters a forward at `stride` touches (entry + shared part).
    pub fn num_params_at(&self, stride: usize) -> usize {
        trainable_params(self.entry_for(stride))
            + trainable_params(&self.conv2)
            + trainable_params(&self.bn2)
            + trainable_params(&self.conv3)
            + trainable_params(&self.bn3)
    }
}
