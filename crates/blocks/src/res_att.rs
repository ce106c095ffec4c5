//! Search-time ResAtt (spec §2.3): a BoTNet-style bottleneck whose 3×3 conv is replaced by
//! multi-head self-attention, with separate stride-1/stride-2 entries sharing the attention
//! `net`.

use bossnas_kernels::{add_relu, batch_norm, batch_norm_relu, conv2d_module};
use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::{Device, Tensor};

use crate::attention::{AttentionOrientation, Mhsa, MhsaConfig};
use crate::hytra_layers::{bn_zero_gamma, conv};
use crate::params::trainable_params;
use crate::search_entry::SearchEntryConfig;

/// Entry of a [`ResAtt`] (`proj/shortcut` of the official code; `_d` at stride 2).
pub type ResAttEntry = crate::search_entry::SearchEntry;

/// Search-time ResAtt (`hytra_ops.ResAtt`).
///
/// `out = ReLU(net(entry(x)) + shortcut(x))` with the shared
/// `net = ReLU → MHSA → BN(heads·dim_head) → ReLU → 1×1 conv → BN(out)` (last γ = 0).
///
/// # Shapes
/// - [`ResAtt::forward`] with stride 1: `[batch, in_channels, H, W] → [batch, out_channels, H, W]`
/// - with stride 2: `[batch, up_in_channels, 2H, 2W] → [batch, out_channels, H, W]`
#[derive(Module, Debug)]
pub struct ResAtt {
    /// Stride-1 entry.
    pub entry: ResAttEntry,
    /// Stride-2 entry, if built.
    pub entry_down: Option<ResAttEntry>,
    /// Shared attention.
    pub mhsa: Mhsa,
    /// Shared BN after the attention.
    pub bn_att: BatchNorm,
    /// Shared 1×1 expansion `heads·dim_head → out_channels`.
    pub conv_out: Conv2d,
    /// Shared last BN (γ = 0 at init).
    pub bn_out: BatchNorm,
}

/// Configuration of a search-time [`ResAtt`].
#[derive(Config, Debug)]
pub struct ResAttConfig {
    /// Input channels of the stride-1 entry.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Attention heads (8 at 1/32, 4 at 1/16 in HyTra).
    #[config(default = 4)]
    pub heads: usize,
    /// Channels per head.
    #[config(default = 64)]
    pub dim_head: usize,
    /// `attn_dim_in = out_channels / proj_factor`.
    #[config(default = 4)]
    pub proj_factor: usize,
    /// Input channels of the stride-2 entry; `None`: no stride-2 entry.
    #[config(default = "None")]
    pub up_in_channels: Option<usize>,
    /// Attention orientation (spec §9 B4).
    #[config(default = "AttentionOrientation::Standard")]
    pub orientation: AttentionOrientation,
}

impl ResAttConfig {
    /// Builds the module (lazily initialised; PyTorch-default init, last `γ = 0`).
    pub fn init(&self, device: &Device) -> ResAtt {
        let attn_in = self.out_channels / self.proj_factor;
        let attn_out = self.heads * self.dim_head;
        let out = self.out_channels;
        ResAtt {
            entry: SearchEntryConfig::new(self.in_channels, attn_in, out, 1).init(device),
            entry_down: self
                .up_in_channels
                .map(|c| SearchEntryConfig::new(c, attn_in, out, 2).init(device)),
            mhsa: MhsaConfig::new(attn_in)
                .with_heads(self.heads)
                .with_dim_head(self.dim_head)
                .with_orientation(self.orientation)
                .init(device),
            bn_att: BatchNormConfig::new(attn_out).init(device),
            conv_out: conv(attn_out, out, 1, 1, 0, 1, false, &None).init(device),
            bn_out: bn_zero_gamma(out, device),
        }
    }
}

impl ResAtt {
    /// Runs the stride-1 or stride-2 variant.
    ///
    /// # Panics
    /// If `stride == 2` and the op has no stride-2 entry, or `stride ∉ {1, 2}`.
    pub fn forward(&self, x: Tensor<4>, stride: usize) -> Tensor<4> {
        let (h, residual) = self.entry_for(stride).forward(x);
        let h = batch_norm_relu(&self.bn_att, self.mhsa.forward(h));
        let h = batch_norm(&self.bn_out, conv2d_module(&self.conv_out, h));
        add_relu(h, residual)
    }

    /// The entry used at `stride`.
    pub fn entry_for(&self, stride: usize) -> &ResAttEntry {
        match stride {
            1 => &self.entry,
            2 => self
                .entry_down
                .as_ref()
                .expect("this ResAtt has no stride-2 input adapter (spec §9 B3)"),
            s => panic!("ResAtt stride must be 1 or 2, got {s}"),
        }
    }

    /// Parameters a forward at `stride` touches (entry + shared part).
    pub fn num_params_at(&self, stride: usize) -> usize {
        trainable_params(self.entry_for(stride))
            + trainable_params(&self.mhsa)
            + trainable_params(&self.bn_att)
            + trainable_params(&self.conv_out)
            + trainable_params(&self.bn_out)
    }
}
