use bossnas_kernels::{batch_norm, conv2d_module};
use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::{Device, Tensor};

use super::{needs_shortcut, retrain_conv_init};
use crate::hytra_layers::{
    Act, AvgDown, AvgDownConfig, DropPath, SqueezeExcite, SqueezeExciteConfig, bn_zero_gamma, conv,
};
use crate::peg::{Peg, PegConfig};

/// Stand-alone ResConv of BossNet (`boss_candidates/resnet_op.ResConv`, `avg_down=True`).
///
/// `act(drop_path(se(bn3(conv3(act(bn2(conv2(act(bn1(peg(conv1(x)))))))))) + shortcut(x))`
///
/// # Shapes
/// - input: `[batch, in_channels, H, W]`
/// - output: `[batch, 4·planes, ⌈H/stride⌉, ⌈W/stride⌉]`
#[derive(Module, Debug)]
pub struct BossResConv {
    /// 1×1 conv `in → planes`.
    pub conv1: Conv2d,
    /// Depthwise 3×3 with bias, carrying the block's stride.
    pub peg: Peg,
    /// BN after the PEG.
    pub bn1: BatchNorm,
    /// 3×3 conv, stride 1.
    pub conv2: Conv2d,
    /// BN after `conv2`.
    pub bn2: BatchNorm,
    /// 1×1 conv `planes → 4·planes`.
    pub conv3: Conv2d,
    /// Last BN (γ = 0 at init).
    pub bn3: BatchNorm,
    /// Optional squeeze-excitation after `bn3`.
    pub se: Option<SqueezeExcite>,
    /// Avg-pool shortcut, `None` = identity.
    pub shortcut: Option<AvgDown>,
    /// Stochastic depth on the residual branch.
    pub drop_path: DropPath,
    /// Activation.
    #[module(skip)]
    pub act: Act,
}

/// Configuration of a [`BossResConv`].
#[derive(Config, Debug)]
pub struct BossResConvConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Bottleneck width; output `4·planes`.
    pub planes: usize,
    /// 1 or 2 (applied in the PEG and the shortcut's average pool).
    #[config(default = 1)]
    pub stride: usize,
    /// Activation (ReLU; SiLU for BossNet-T0/T1).
    #[config(default = "Act::Relu")]
    pub act: Act,
    /// Add a timm SE gate (reduction 16, min 8 channels) after `bn3`.
    #[config(default = false)]
    pub se: bool,
    /// Drop-path probability.
    #[config(default = 0.0)]
    pub drop_path: f64,
}

impl BossResConvConfig {
    /// Output channels `4·planes`.
    pub fn out_channels(&self) -> usize {
        4 * self.planes
    }

    /// Builds the module.
    pub fn init(&self, device: &Device) -> BossResConv {
        let (c, p, out) = (self.in_channels, self.planes, self.out_channels());
        let init = Some(retrain_conv_init());
        BossResConv {
            conv1: conv(c, p, 1, 1, 0, 1, false, &init).init(device),
            peg: PegConfig::new(p)
                .with_stride(self.stride)
                .with_initializer(init.clone())
                .init(device),
            bn1: BatchNormConfig::new(p).init(device),
            conv2: conv(p, p, 3, 1, 1, 1, false, &init).init(device),
            bn2: BatchNormConfig::new(p).init(device),
            conv3: conv(p, out, 1, 1, 0, 1, false, &init).init(device),
            bn3: bn_zero_gamma(out, device),
            se: self.se.then(|| {
                SqueezeExciteConfig::new(out)
                    .with_initializer(init.clone())
                    .init(device)
            }),
            shortcut: needs_shortcut(c, out, self.stride).then(|| {
                AvgDownConfig::new([c, out])
                    .with_stride(self.stride)
                    .with_initializer(init.clone())
                    .init(device)
            }),
            drop_path: DropPath::new(self.drop_path),
            act: self.act,
        }
    }
}

impl BossResConv {
    /// See the type-level `# Shapes`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let act = self.act;
        let residual = match &self.shortcut {
            Some(s) => s.forward(x.clone()),
            None => x.clone(),
        };
        let h = act.after_norm(&self.bn1, self.peg.forward(conv2d_module(&self.conv1, x)));
        let h = act.after_norm(&self.bn2, conv2d_module(&self.conv2, h));
        let mut h = batch_norm(&self.bn3, conv2d_module(&self.conv3, h));
        if let Some(se) = &self.se {
            h = se.forward(h);
        }
        act.apply(self.drop_path.forward(h) + residual)
    }
}
