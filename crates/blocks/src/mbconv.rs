//! MBConv (DNA / EfficientNet) search-space layers: the timm-style inverted residual with
//! squeeze-excitation, the per-layer shortcut shared by the candidates of a layer, and the
//! MBConv stem.
//!
//! Semantics follow BossNAS `operations/mbconv_ops.py` (timm 0.3 `InvertedResidual` with a
//! `downsample` residual) and `operation_dict.py` (SiLU everywhere, PyTorch-default BN).

use bossnas_kernels::{batch_norm, conv2d_module, silu};
use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::module::avg_pool2d;
use burn::tensor::ops::AvgPoolOptions;
use burn::tensor::{Device, Tensor};

use hytra_space::mbconv::{MbOp, make_divisible};

use crate::slimmable::pad;

fn conv(c_in: usize, c_out: usize, kernel: usize, stride: usize, groups: usize) -> Conv2dConfig {
    Conv2dConfig::new([c_in, c_out], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(pad(kernel / 2))
        .with_groups(groups)
        .with_bias(false)
}

/// Configuration of a [`SqueezeExciteSilu`].
#[derive(Config, Debug)]
pub struct SqueezeExciteSiluConfig {
    /// Channels gated (the expanded width inside an MBConv).
    pub channels: usize,
    /// Reduced width (timm: `round(block_in_channels · se_ratio)`).
    pub reduced: usize,
}

impl SqueezeExciteSiluConfig {
    /// Builds the gate (both 1×1 convs carry a bias).
    pub fn init(&self, device: &Device) -> SqueezeExciteSilu {
        let c = |a, b| Conv2dConfig::new([a, b], [1, 1]).init(device);
        SqueezeExciteSilu {
            reduce: c(self.channels, self.reduced),
            expand: c(self.reduced, self.channels),
        }
    }
}

/// timm 0.3 EfficientNet `SqueezeExcite`: global average pool → 1×1 conv (bias) → SiLU →
/// 1×1 conv (bias) → sigmoid gate multiplied onto the input.
///
/// # Shapes
/// - input and output: `[batch, channels, H, W]`
#[derive(Module, Debug)]
pub struct SqueezeExciteSilu {
    /// `channels → reduced`.
    pub reduce: Conv2d,
    /// `reduced → channels`.
    pub expand: Conv2d,
}

impl SqueezeExciteSilu {
    /// See the type-level `# Shapes`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let s = x.clone().mean_dim(3).mean_dim(2);
        let gate = sigmoid(conv2d_module(
            &self.expand,
            silu(conv2d_module(&self.reduce, s)),
        ));
        x * gate
    }
}

/// Configuration of an [`InvertedResidual`] branch.
#[derive(Config, Debug)]
pub struct InvertedResidualConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Depthwise kernel size (padding `kernel / 2`). Default: 3.
    #[config(default = 3)]
    pub kernel: usize,
    /// Depthwise stride. Default: 1.
    #[config(default = 1)]
    pub stride: usize,
    /// Expansion ratio; mid width = `make_divisible(in · expansion, 8)`. Default: 6.
    #[config(default = 6.0)]
    pub expansion: f64,
    /// SE reduction relative to the *input* width; 0 disables SE. Default: 0.25.
    #[config(default = 0.25)]
    pub se_ratio: f64,
}

impl InvertedResidualConfig {
    /// The config of MBConv candidate `op` (expansion and kernel of hytra-space's [`MbOp`],
    /// the one table of the candidates).
    ///
    /// # Panics
    /// If `op` is not an MBConv op index (0..4).
    pub fn candidate(op: usize, in_channels: usize, out_channels: usize, stride: usize) -> Self {
        let op = MbOp::from_index(op).expect("MBConv op index 0..4");
        let (e, k) = (op.expansion(), op.kernel());
        Self::new(in_channels, out_channels)
            .with_kernel(k)
            .with_stride(stride)
            .with_expansion(e as f64)
    }

    /// Expanded (mid) width.
    pub fn mid_channels(&self) -> usize {
        make_divisible(self.in_channels as f64 * self.expansion, 8)
    }

    /// Builds the branch.
    pub fn init(&self, device: &Device) -> InvertedResidual {
        let mid = self.mid_channels();
        let se = (self.se_ratio > 0.0).then(|| {
            let reduced = make_divisible(self.in_channels as f64 * self.se_ratio, 1);
            SqueezeExciteSiluConfig::new(mid, reduced).init(device)
        });
        InvertedResidual {
            expand: conv(self.in_channels, mid, 1, 1, 1).init(device),
            bn1: BatchNormConfig::new(mid).init(device),
            depthwise: conv(mid, mid, self.kernel, self.stride, mid).init(device),
            bn2: BatchNormConfig::new(mid).init(device),
            se,
            project: conv(mid, self.out_channels, 1, 1, 1).init(device),
            bn3: BatchNormConfig::new(self.out_channels).init(device),
        }
    }
}

/// The residual-free branch of a timm `InvertedResidual`: 1×1 expand → BN → SiLU →
/// depthwise k×k (stride s) → BN → SiLU → SE → 1×1 project → BN.
///
/// The residual is added by [`MbconvLayer`] (or the supernet's choice layer), whose
/// [`MbconvShortcut`] is shared by all candidates of a layer.
///
/// # Shapes
/// - input: `[batch, in, H, W]`
/// - output: `[batch, out, ⌈H/s⌉, ⌈W/s⌉]`
#[derive(Module, Debug)]
pub struct InvertedResidual {
    /// Pointwise expansion (no bias).
    pub expand: Conv2d,
    /// BN after the expansion.
    pub bn1: BatchNorm,
    /// Depthwise conv (no bias).
    pub depthwise: Conv2d,
    /// BN after the depthwise conv.
    pub bn2: BatchNorm,
    /// Squeeze-excitation gate.
    pub se: Option<SqueezeExciteSilu>,
    /// Pointwise linear projection (no bias).
    pub project: Conv2d,
    /// BN after the projection.
    pub bn3: BatchNorm,
}

impl InvertedResidual {
    /// The branch output (no residual). See the type-level `# Shapes`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = silu(batch_norm(&self.bn1, conv2d_module(&self.expand, x)));
        let x = silu(batch_norm(&self.bn2, conv2d_module(&self.depthwise, x)));
        let x = match &self.se {
            Some(se) => se.forward(x),
            None => x,
        };
        batch_norm(&self.bn3, conv2d_module(&self.project, x))
    }
}

/// Configuration of an [`MbconvShortcut`].
#[derive(Config, Debug)]
pub struct MbconvShortcutConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Layer stride (1 or 2).
    #[config(default = 1)]
    pub stride: usize,
    /// Whether shape-changing layers get a projected residual (BossNAS supernet, default
    /// true) or none at all (the standalone timm child: identity skip only where the shape
    /// is kept).
    #[config(default = true)]
    pub project: bool,
}

impl MbconvShortcutConfig {
    /// Builds the shortcut.
    pub fn init(&self, device: &Device) -> MbconvShortcut {
        let changes = self.in_channels != self.out_channels;
        let keeps_shape = !changes && self.stride == 1;
        let project = self.project && !keeps_shape;
        MbconvShortcut {
            enabled: keeps_shape || self.project,
            pool: project && self.stride == 2,
            conv: (project && changes)
                .then(|| conv(self.in_channels, self.out_channels, 1, 1, 1).init(device)),
            bn: (project && changes).then(|| BatchNormConfig::new(self.out_channels).init(device)),
        }
    }
}

/// BossNAS's per-layer MBConv residual (`MixOps.downsample`): AvgPool2d(2, 2,
/// ceil_mode, count_include_pad = false) if the stride is 2, then 1×1 conv (no bias) → BN if
/// the width changes; the identity when neither happens.
///
/// # Shapes
/// - input: `[batch, in, H, W]`
/// - output: `[batch, out, ⌈H/s⌉, ⌈W/s⌉]`
#[derive(Module, Debug)]
pub struct MbconvShortcut {
    /// Whether a residual is added at all (false: a shape-changing layer of a standalone
    /// child, [`MbconvShortcut::forward`] must not be called).
    pub enabled: bool,
    /// Whether to average-pool 2×2 (stride-2 layers).
    pub pool: bool,
    /// 1×1 projection when the width changes.
    pub conv: Option<Conv2d>,
    /// BN after the projection.
    pub bn: Option<BatchNorm>,
}

impl MbconvShortcut {
    /// See the type-level `# Shapes`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = if self.pool {
            let opts = AvgPoolOptions::new([2, 2])
                .with_stride([2, 2])
                .with_ceil_mode(true)
                .with_count_include_pad(false);
            avg_pool2d(x, opts)
        } else {
            x
        };
        match (&self.conv, &self.bn) {
            (Some(c), Some(bn)) => batch_norm(bn, conv2d_module(c, x)),
            _ => x,
        }
    }
}

/// Configuration of an [`MbconvLayer`] (one fixed candidate plus its shortcut).
#[derive(Config, Debug)]
pub struct MbconvLayerConfig {
    /// Candidate op index (0..4, see [`MbOp`]).
    pub op: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Stride (1 or 2).
    #[config(default = 1)]
    pub stride: usize,
    /// Projected residual on shape-changing layers (see [`MbconvShortcutConfig::project`]).
    #[config(default = true)]
    pub project: bool,
}

impl MbconvLayerConfig {
    /// Builds the layer.
    pub fn init(&self, device: &Device) -> MbconvLayer {
        MbconvLayer {
            shortcut: MbconvShortcutConfig::new(self.in_channels, self.out_channels)
                .with_stride(self.stride)
                .with_project(self.project)
                .init(device),
            block: InvertedResidualConfig::candidate(
                self.op,
                self.in_channels,
                self.out_channels,
                self.stride,
            )
            .init(device),
        }
    }
}

/// One MBConv layer: `block(x) + shortcut(x)`, or `block(x)` when the shortcut is disabled
/// (every supernet layer has a residual; a standalone child only where the shape is kept).
///
/// # Shapes
/// - input: `[batch, in, H, W]`
/// - output: `[batch, out, ⌈H/s⌉, ⌈W/s⌉]`
#[derive(Module, Debug)]
pub struct MbconvLayer {
    /// The residual path.
    pub shortcut: MbconvShortcut,
    /// The inverted-residual branch.
    pub block: InvertedResidual,
}

impl MbconvLayer {
    /// See the type-level `# Shapes`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if self.shortcut.enabled {
            self.block.forward(x.clone()) + self.shortcut.forward(x)
        } else {
            self.block.forward(x)
        }
    }
}

/// Configuration of an [`MbconvStem`].
#[derive(Config, Debug)]
pub struct MbconvStemConfig {
    /// Output channels of the 3×3 stride-2 conv. Default: 32.
    #[config(default = 32)]
    pub conv_channels: usize,
    /// Output channels of the depthwise-separable conv. Default: 16.
    #[config(default = 16)]
    pub out_channels: usize,
    /// SE ratio of the depthwise-separable conv (relative to its input). Default: 0.25.
    #[config(default = 0.25)]
    pub se_ratio: f64,
}

impl MbconvStemConfig {
    /// Builds the stem.
    pub fn init(&self, device: &Device) -> MbconvStem {
        let c = self.conv_channels;
        let reduced = make_divisible(c as f64 * self.se_ratio, 1);
        MbconvStem {
            conv: conv(3, c, 3, 2, 1).init(device),
            bn: BatchNormConfig::new(c).init(device),
            dw: conv(c, c, 3, 1, c).init(device),
            dw_bn: BatchNormConfig::new(c).init(device),
            se: (self.se_ratio > 0.0)
                .then(|| SqueezeExciteSiluConfig::new(c, reduced).init(device)),
            pw: conv(c, self.out_channels, 1, 1, 1).init(device),
            pw_bn: BatchNormConfig::new(self.out_channels).init(device),
        }
    }
}

/// The MBConv-space stem: timm `ConvBnAct` (3×3 stride 2, 3 → 32, BN, SiLU) followed by a
/// `DepthwiseSeparableConv` (dw 3×3 → BN → SiLU → SE(0.25) → 1×1 32 → 16 → BN, no
/// activation, no residual since the widths differ).
///
/// # Shapes
/// - input: `[batch, 3, H, W]`
/// - output: `[batch, out_channels, ⌈H/2⌉, ⌈W/2⌉]`
#[derive(Module, Debug)]
pub struct MbconvStem {
    /// 3×3 stride-2 conv.
    pub conv: Conv2d,
    /// Its BN.
    pub bn: BatchNorm,
    /// Depthwise 3×3 conv.
    pub dw: Conv2d,
    /// Its BN.
    pub dw_bn: BatchNorm,
    /// SE gate on the depthwise output.
    pub se: Option<SqueezeExciteSilu>,
    /// Pointwise conv.
    pub pw: Conv2d,
    /// Its BN.
    pub pw_bn: BatchNorm,
}

impl MbconvStem {
    /// See the type-level `# Shapes`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<4> {
        let inp = silu(batch_norm(&self.bn, conv2d_module(&self.conv, images)));
        let x = silu(batch_norm(
            &self.dw_bn,
            conv2d_module(&self.dw, inp.clone()),
        ));
        let x = match &self.se {
            Some(se) => se.forward(x),
            None => x,
        };
        let y = batch_norm(&self.pw_bn, conv2d_module(&self.pw, x));
        let [_, c_in, _, _] = inp.dims();
        let [_, c_out, _, _] = y.dims();
        // timm adds the block input back when the widths agree (stride is 1).
        if c_in == c_out { y + inp } else { y }
    }
}
