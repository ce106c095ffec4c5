//! The input-dependent front shared by the search-time [`ResConv`](crate::res_conv::ResConv)
//! and [`ResAtt`](crate::res_att::ResAtt): 1×1 conv (no bias) → PEG → BN, plus the matching
//! shortcut. Each op owns one entry per input scale (stride 1 and, if it can downsample,
//! stride 2: `conv1/peg/bn1/downsample` resp. `conv1_d/peg_d/bn1_d/downsample_d` of the
//! official ResConv, `proj/shortcut` resp. `proj_d/shortcut_d` of the official ResAtt).

use bossnas_kernels::{batch_norm_relu, conv2d_module};
use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::{Device, Tensor};

use crate::hytra_layers::{ConvBnAct, ConvBnActConfig, conv};
use crate::peg::{Peg, PegConfig};

/// Entry of a search-time HyTra op.
///
/// # Shapes
/// - input: `[batch, c_in, H, W]`
/// - output: `([batch, mid, H/s, W/s], [batch, out, H/s, W/s])` — the activated branch input
///   and the shortcut
#[derive(Module, Debug)]
pub struct SearchEntry {
    /// 1×1 conv `c_in → mid`.
    pub conv: Conv2d,
    /// Depthwise 3×3 with bias (stride 1 or 2).
    pub peg: Peg,
    /// BN after the PEG.
    pub bn: BatchNorm,
    /// Shortcut: `None` = identity (stride 1, `c_in == out`); otherwise 1×1 conv → BN → ReLU
    /// (stride 1) or 3×3 s2 p1 conv → BN → ReLU (stride 2).
    pub shortcut: Option<ConvBnAct>,
}

/// Configuration of a [`SearchEntry`].
#[derive(Config, Debug)]
pub struct SearchEntryConfig {
    /// Input channels.
    pub c_in: usize,
    /// Channels of the branch.
    pub mid: usize,
    /// Channels of the shortcut (the block output).
    pub out: usize,
    /// Stride, 1 or 2.
    pub stride: usize,
}

impl SearchEntryConfig {
    /// An entry from `c_in` channels to a `mid`-channel branch and an `out`-channel shortcut.
    pub fn init(&self, device: &Device) -> SearchEntry {
        let c_in = self.c_in;
        let mid = self.mid;
        let out = self.out;
        let stride = self.stride;
        let shortcut = if stride == 2 {
            Some(
                ConvBnActConfig::new([c_in, out])
                    .with_kernel(3)
                    .with_stride(2)
                    .with_padding(1)
                    .init(device),
            )
        } else if c_in != out {
            Some(ConvBnActConfig::new([c_in, out]).init(device))
        } else {
            None
        };
        SearchEntry {
            conv: conv(c_in, mid, 1, 1, 0, 1, false, &None).init(device),
            peg: PegConfig::new(mid).with_stride(stride).init(device),
            bn: BatchNormConfig::new(mid).init(device),
            shortcut,
        }
    }
}

impl SearchEntry {
    /// Returns `(relu(bn(peg(conv(x)))), shortcut(x))`: the branch with the ReLU both ops apply
    /// next (fused into the batch-norm node), and the shortcut.
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let residual = match &self.shortcut {
            Some(s) => s.forward(x.clone()),
            None => x.clone(),
        };
        let h = batch_norm_relu(&self.bn, self.peg.forward(conv2d_module(&self.conv, x)));
        (h, residual)
    }
}
