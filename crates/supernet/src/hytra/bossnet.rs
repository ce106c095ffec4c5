//! Stand-alone HyTra children ("BossNet", `retraining_hytra/boss_models.py`).
//!
//! A child is described by the **retraining encoding**: four per-scale lists (1/4, 1/8, 1/16,
//! 1/32) of block types, 0 = ResAtt, 1 = ResConv. Stage `i` has `planes[i]` bottleneck width
//! (`4·planes[i]` output channels); its first layer has stride 1 for stage 0, 2 for stages 1
//! and 2, and `last_stride` for stage 3. An empty stage becomes a transition
//! `conv 3×3 → BN → act` whose stride is set by [`BossNetConfig::transition`]: the stage's own
//! stride ([`TransitionStride::Stage`], default, the layout `boss_madds.py` costs) or always 2
//! ([`TransitionStride::Official`], hard-coded in `boss_models.py`, where e.g. ViT-T/16's
//! attention runs at 1/32). The head is global average pooling and a linear classifier on
//! `4·planes[3]` features.
//!
//! Only the `avg_down=True` shortcut form (what BossNet-T0/T1 use) is implemented.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use hytra_space::hytra::encoding::RetrainEncoding;
use hytra_space::hytra::named::{Activation, HytraNet, NamedArch, TransitionStride};
use hytra_space::hytra::ops::OpKind;

use bossnas_blocks::attention::AttentionOrientation;
use bossnas_blocks::hytra_layers::{Act, ConvBnAct, ConvBnActConfig};
use bossnas_blocks::retrain::{
    BossResAtt, BossResAttConfig, BossResConv, BossResConvConfig, retrain_conv_init,
};
use bossnas_blocks::stem::{Stem, StemConfig};

/// Total number of searched layers the drop-path schedule is normalised by (`net_num_blocks`).
const NET_NUM_BLOCKS: usize = 16;

/// Configuration of a [`BossNet`]: build it from an architecture value with
/// [`BossNetConfig::from_net`] / [`BossNetConfig::named`] (or [`BossNetConfig::t0`], …), then
/// shrink it for tests with [`BossNetConfig::with_width_divisor`].
#[derive(Config, Debug)]
pub struct BossNetConfig {
    /// Retraining encoding: 4 lists (1/4, 1/8, 1/16, 1/32) of 0 (ResAtt) / 1 (ResConv).
    pub encoding: Vec<Vec<u8>>,
    /// Classifier outputs.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Stem width.
    #[config(default = 64)]
    pub stem_channels: usize,
    /// Bottleneck widths of the four stages (outputs are 4×).
    #[config(default = "[64, 128, 256, 512]")]
    pub planes: [usize; 4],
    /// Attention heads per stage.
    #[config(default = "[1, 2, 4, 8]")]
    pub heads: [usize; 4],
    /// Channels per head.
    #[config(default = 64)]
    pub dim_head: usize,
    /// Activation everywhere (stem, blocks, transitions).
    #[config(default = "Act::Relu")]
    pub act: Act,
    /// SE gate in every ResConv.
    #[config(default = false)]
    pub se: bool,
    /// Stride of stage 3's first layer (2; 1 for BossNet-T1).
    #[config(default = 2)]
    pub last_stride: usize,
    /// Maximum drop-path rate; layer `i` (0-based over all layers) of a ResConv gets
    /// `rate·i/15`.
    #[config(default = 0.0)]
    pub drop_path_rate: f64,
    /// Attention orientation (released checkpoints: standard).
    #[config(default = "AttentionOrientation::Standard")]
    pub orientation: AttentionOrientation,
    /// Stride of the transition conv of an empty stage.
    #[config(default = "TransitionStride::Stage")]
    pub transition: TransitionStride,
}

impl BossNetConfig {
    /// From an architecture value (retraining encoding + SE / activation / last stride /
    /// transition options).
    pub fn from_net(net: &HytraNet) -> Self {
        let o = net.options;
        Self::from_encoding(&net.encoding)
            .with_se(o.se)
            .with_act(match o.act {
                Activation::Relu => Act::Relu,
                Activation::Silu => Act::Silu,
            })
            .with_last_stride(o.last_stride.get())
            .with_transition(o.transition)
    }

    /// From a validated [`RetrainEncoding`] with default options (ReLU, no SE).
    pub fn from_encoding(encoding: &RetrainEncoding) -> Self {
        Self::new(
            encoding
                .stages()
                .iter()
                .map(|s| s.iter().map(|k| k.retrain_code()).collect())
                .collect(),
        )
    }

    /// A named reference network (`bossnet-t0`, `bossnet-t0-nose`, `bossnet-t1`, `r50-t`,
    /// `bot50-t`, `vit-t16`, `vit-t32`, `random-t`, `dna-t`, `unnas-t`).
    pub fn named(arch: NamedArch) -> Self {
        Self::from_net(&arch.net())
    }

    /// BossNet-T0: SiLU + SE, 38,415,960 parameters.
    pub fn t0() -> Self {
        Self::named(NamedArch::BossnetT0)
    }

    /// BossNet-T0 without SE (ReLU), 37,319,080 parameters.
    pub fn t0_nose() -> Self {
        Self::named(NamedArch::BossnetT0Nose)
    }

    /// BossNet-T1: T0 with `last_stride = 1`.
    pub fn t1() -> Self {
        Self::named(NamedArch::BossnetT1)
    }

    /// Divides every width (stem, planes, head dim) by `divisor` (tiny test models).
    pub fn with_width_divisor(self, divisor: usize) -> Self {
        assert!(divisor > 0, "width divisor must be positive");
        let (stem, planes, dh) = (self.stem_channels, self.planes, self.dim_head);
        self.with_stem_channels(stem / divisor)
            .with_planes(planes.map(|p| p / divisor))
            .with_dim_head(dh / divisor)
    }

    /// Builds the network.
    ///
    /// # Panics
    /// If the encoding does not have 4 stages, holds a code other than 0/1, or `last_stride`
    /// is not 1 or 2.
    pub fn init(&self, device: &Device) -> BossNet {
        assert_eq!(self.encoding.len(), 4, "a BossNet encoding has 4 stages");
        assert!(
            matches!(self.last_stride, 1 | 2),
            "last_stride must be 1 or 2"
        );
        let stem = StemConfig::new()
            .with_channels(self.stem_channels)
            .with_act(self.act)
            .with_initializer(Some(retrain_conv_init()))
            .init(device);
        let mut inplanes = self.stem_channels;
        let mut net_block_idx = 0usize;
        let mut stages = Vec::with_capacity(4);
        for (s, codes) in self.encoding.iter().enumerate() {
            let planes = self.planes[s];
            let out = 4 * planes;
            let stage_stride = match s {
                0 => 1,
                3 => self.last_stride,
                _ => 2,
            };
            let mut layers = Vec::new();
            if codes.is_empty() {
                let stride = match self.transition {
                    TransitionStride::Stage => stage_stride,
                    TransitionStride::Official => 2,
                };
                layers.push(BossLayer::Transition(
                    ConvBnActConfig::new([inplanes, out])
                        .with_kernel(3)
                        .with_stride(stride)
                        .with_padding(1)
                        .with_act(Some(self.act))
                        .with_initializer(Some(retrain_conv_init()))
                        .init(device),
                ));
                inplanes = out;
            }
            for (i, &code) in codes.iter().enumerate() {
                let stride = if i == 0 { stage_stride } else { 1 };
                let dpr = self.drop_path_rate * net_block_idx as f64 / (NET_NUM_BLOCKS - 1) as f64;
                let layer = match OpKind::from_retrain_code(code as i64) {
                    Some(OpKind::ResAtt) => BossLayer::Att(
                        BossResAttConfig::new(inplanes, out)
                            .with_heads(self.heads[s])
                            .with_dim_head(self.dim_head)
                            .with_stride(stride)
                            .with_act(self.act)
                            .with_orientation(self.orientation)
                            .init(device),
                    ),
                    Some(OpKind::ResConv) => BossLayer::Conv(
                        BossResConvConfig::new(inplanes, planes)
                            .with_stride(stride)
                            .with_act(self.act)
                            .with_se(self.se)
                            .with_drop_path(dpr)
                            .init(device),
                    ),
                    None => panic!("stage {s} layer {i}: code {code} is neither 0 nor 1"),
                };
                layers.push(layer);
                inplanes = out;
                net_block_idx += 1;
            }
            stages.push(layers);
        }
        BossNet {
            stem,
            stages,
            fc: LinearConfig::new(inplanes, self.num_classes).init(device),
        }
    }
}

/// One layer of a BossNet stage.
#[allow(clippy::large_enum_variant)] // built once per network; boxing buys nothing
#[derive(Module, Debug)]
pub enum BossLayer {
    /// Retraining ResConv.
    Conv(BossResConv),
    /// Retraining ResAtt.
    Att(BossResAtt),
    /// Transition of an empty stage: conv 3×3 (stride 1 or 2) → BN → act.
    Transition(ConvBnAct),
}

impl BossLayer {
    /// Applies the layer.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            BossLayer::Conv(m) => m.forward(x),
            BossLayer::Att(m) => m.forward(x),
            BossLayer::Transition(m) => m.forward(x),
        }
    }
}

/// A stand-alone HyTra network.
///
/// # Shapes
/// - [`BossNet::forward_features`]: `[batch, 3, H, W] → [batch, 4·planes[3], H/32, W/32]`
///   (`H/16` with `last_stride = 1`)
/// - [`BossNet::forward`]: `[batch, 3, H, W] → [batch, num_classes]`
#[derive(Module, Debug)]
pub struct BossNet {
    /// Stem (conv 7×7 s2 → BN → act → maxpool).
    pub stem: Stem,
    /// The four stages.
    pub stages: Vec<Vec<BossLayer>>,
    /// Classifier.
    pub fc: Linear,
}

impl BossNet {
    /// Stem and stages.
    pub fn forward_features(&self, images: Tensor<4>) -> Tensor<4> {
        let mut x = self.stem.forward(images);
        for layer in self.stages.iter().flatten() {
            x = layer.forward(x);
        }
        x
    }

    /// Logits.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let x = self.forward_features(images);
        let [b, c, _, _] = x.dims();
        let pooled = x.mean_dim(3).mean_dim(2).reshape([b, c]);
        self.fc.forward(pooled)
    }
}
