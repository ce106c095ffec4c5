use bossnas_kernels::{batch_norm, conv2d_module};
use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::{Device, Tensor};

use super::{needs_shortcut, retrain_conv_init};
use crate::attention::{AttentionOrientation, Mhsa, MhsaConfig};
use crate::hytra_layers::{Act, AvgDown, AvgDownConfig, bn_zero_gamma, conv};
use crate::peg::{Peg, PegConfig};

/// Stand-alone ResAtt of BossNet (`boss_candidates/bot_op.ResAtt`, `avg_down=True`).
///
/// `act(net(proj(x)) + shortcut(x))` with `proj = 1×1 conv → PEG(stride) → BN` and
/// `net = act → MHSA → BN → act → 1×1 conv → BN (γ = 0)`.
///
/// # Shapes
/// - input: `[batch, in_channels, H, W]`
/// - output: `[batch, out_channels, ⌈H/stride⌉, ⌈W/stride⌉]`
#[derive(Module, Debug)]
pub struct BossResAtt {
    /// 1×1 conv `in → attn_dim_in`.
    pub proj_conv: Conv2d,
    /// Depthwise 3×3 with bias, carrying the block's stride.
    pub peg: Peg,
    /// BN after the PEG.
    pub proj_bn: BatchNorm,
    /// Attention.
    pub mhsa: Mhsa,
    /// BN after the attention.
    pub bn_att: BatchNorm,
    /// 1×1 expansion `heads·dim_head → out`.
    pub conv_out: Conv2d,
    /// Last BN (γ = 0 at init).
    pub bn_out: BatchNorm,
    /// Avg-pool shortcut, `None` = identity.
    pub shortcut: Option<AvgDown>,
    /// Activation.
    #[module(skip)]
    pub act: Act,
}

/// Configuration of a [`BossResAtt`].
#[derive(Config, Debug)]
pub struct BossResAttConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Heads (BossNet: 1, 2, 4, 8 at 1/4 … 1/32); `attn_dim_in = heads·dim_head`.
    #[config(default = 4)]
    pub heads: usize,
    /// Channels per head.
    #[config(default = 64)]
    pub dim_head: usize,
    /// 1 or 2.
    #[config(default = 1)]
    pub stride: usize,
    /// Activation.
    #[config(default = "Act::Relu")]
    pub act: Act,
    /// Attention orientation (released checkpoints: standard).
    #[config(default = "AttentionOrientation::Standard")]
    pub orientation: AttentionOrientation,
}

impl BossResAttConfig {
    /// Builds the module.
    pub fn init(&self, device: &Device) -> BossResAtt {
        let (c, out) = (self.in_channels, self.out_channels);
        let attn = self.heads * self.dim_head;
        let init = Some(retrain_conv_init());
        BossResAtt {
            proj_conv: conv(c, attn, 1, 1, 0, 1, false, &init).init(device),
            peg: PegConfig::new(attn)
                .with_stride(self.stride)
                .with_initializer(init.clone())
                .init(device),
            proj_bn: BatchNormConfig::new(attn).init(device),
            mhsa: MhsaConfig::new(attn)
                .with_heads(self.heads)
                .with_dim_head(self.dim_head)
                .with_orientation(self.orientation)
                .with_initializer(init.clone())
                .init(device),
            bn_att: BatchNormConfig::new(attn).init(device),
            conv_out: conv(attn, out, 1, 1, 0, 1, false, &init).init(device),
            bn_out: bn_zero_gamma(out, device),
            shortcut: needs_shortcut(c, out, self.stride).then(|| {
                AvgDownConfig::new([c, out])
                    .with_stride(self.stride)
                    .with_initializer(init.clone())
                    .init(device)
            }),
            act: self.act,
        }
    }
}

impl BossResAtt {
    /// See the type-level `# Shapes`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let act = self.act;
        let residual = match &self.shortcut {
            Some(s) => s.forward(x.clone()),
            None => x.clone(),
        };
        let h = batch_norm(
            &self.proj_bn,
            self.peg.forward(conv2d_module(&self.proj_conv, x)),
        );
        let h = self.mhsa.forward(act.apply(h));
        let h = act.after_norm(&self.bn_att, h);
        let h = batch_norm(&self.bn_out, conv2d_module(&self.conv_out, h));
        act.apply(h + residual)
    }
}
