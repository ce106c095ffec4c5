//! NATS-Bench size-search-space (SSS) building blocks, in two flavours:
//!
//! * **fixed width** ([`InferCell`], [`NatsResBlock`], [`NatsNet`]): the NATS-Bench
//!   `DynamicShapeTinyNet` network for one architecture, with plain [`BatchNorm`]s; this is
//!   what a searched architecture is retrained as and what NATS-Bench's parameter counts
//!   refer to;
//! * **slimmable** ([`SlimInferCell`], [`SlimResBlock`], [`SlimStem`]): the BossNAS supernet
//!   layers, every conv built at the largest width and sliced (see [`crate::slimmable`]),
//!   one batch norm per width.
//!
//! Both share the fixed cell topology
//! `|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|`:
//!
//! ```text
//! n1 = conv(n0)
//! n2 = conv(n0) + conv(n1)
//! n3 = skip(n0) + conv(n1) + conv(n2)      (cell output)
//! ```
//!
//! where `conv` = ReLU → Conv3×3 (no bias) → BN; the convs reading `n0` map `C_in → C_out`,
//! the others `C_out → C_out`. `skip` is the identity when `C_in = C_out` and a
//! *FactorizedReduce* (stride 1: 1×1 conv without bias → BN) otherwise.
//!
//! **Leading ReLU in FactorizedReduce.** NATS-Bench (xautodl) applies *no* ReLU before the
//! stride-1 FactorizedReduce conv; BossNAS's slimmable copy (`nats_ops.FactorizedReduce`)
//! does. The choice is [`InferCellConfig::skip_relu`] / [`SlimInferCellConfig::skip_relu`]:
//! it defaults to `false` (xautodl) for fixed-width networks and to `true` (BossNAS) for the
//! slimmable supernet cells.

use bossnas_kernels::{batch_norm, batch_norm_relu, conv2d_module};
use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::module::avg_pool2d;
use burn::tensor::ops::AvgPoolOptions;
use burn::tensor::{Device, Tensor};
use hytra_space::nats::NatsArch;

use crate::slimmable::{
    SlimConv2d, SlimConv2dConfig, SwitchableBatchNorm, SwitchableBatchNormConfig, pad,
};

/// The NATS-SSS candidate widths `{8, 16, …, 64}`; op index `i` ↔ width `8·(i+1)`.
pub const NATS_CANDIDATE_WIDTHS: [usize; 8] = [8, 16, 24, 32, 40, 48, 56, 64];

fn plain_conv(c_in: usize, c_out: usize, kernel: usize, stride: usize) -> Conv2dConfig {
    Conv2dConfig::new([c_in, c_out], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(pad(kernel / 2))
        .with_bias(false)
}

/// 2×2 average pool, stride 2, no padding (floor mode).
fn avg_pool_2x2(x: Tensor<4>) -> Tensor<4> {
    avg_pool2d(x, AvgPoolOptions::new([2, 2]).with_stride([2, 2]))
}

// ---------------------------------------------------------------------------------------
// Fixed-width (NATS-Bench) modules
// ---------------------------------------------------------------------------------------

/// Configuration of a [`ReluConvBn`].
#[derive(Config, Debug)]
pub struct ReluConvBnConfig {
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Square kernel size (padding `kernel / 2`). Default: 3.
    #[config(default = 3)]
    pub kernel: usize,
    /// Stride. Default: 1.
    #[config(default = 1)]
    pub stride: usize,
}

impl ReluConvBnConfig {
    /// Builds the module (conv without bias, PyTorch-default BN).
    pub fn init(&self, device: &Device) -> ReluConvBn {
        ReluConvBn {
            conv: plain_conv(self.c_in, self.c_out, self.kernel, self.stride).init(device),
            bn: BatchNormConfig::new(self.c_out).init(device),
        }
    }
}

/// ReLU → Conv (no bias) → BN, NATS-Bench's `nor_conv_k×k`.
///
/// # Shapes
/// - input: `[batch, c_in, H, W]`
/// - output: `[batch, c_out, H / stride, W / stride]`
#[derive(Module, Debug)]
pub struct ReluConvBn {
    /// The convolution.
    pub conv: Conv2d,
    /// The batch norm.
    pub bn: BatchNorm,
}

impl ReluConvBn {
    /// See the type-level `# Shapes`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        batch_norm(&self.bn, conv2d_module(&self.conv, relu(x)))
    }
}

/// Stride-1 FactorizedReduce: optional ReLU → 1×1 conv (no bias) → BN; the cell's skip edge
/// when its input and output widths differ.
///
/// # Shapes
/// - input: `[batch, c_in, H, W]`
/// - output: `[batch, c_out, H, W]`
#[derive(Module, Debug)]
pub struct FactorizedReduce {
    /// The 1×1 conv.
    pub conv: Conv2d,
    /// The batch norm.
    pub bn: BatchNorm,
    /// Whether a ReLU precedes the conv (BossNAS) or not (NATS-Bench).
    pub leading_relu: bool,
}

/// Configuration of a [`FactorizedReduce`].
#[derive(Config, Debug)]
pub struct FactorizedReduceConfig {
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Whether a ReLU precedes the conv (BossNAS) or not (NATS-Bench).
    pub leading_relu: bool,
}

impl FactorizedReduceConfig {
    /// Builds the module.
    pub fn init(&self, device: &Device) -> FactorizedReduce {
        let c_in = self.c_in;
        let c_out = self.c_out;
        let leading_relu = self.leading_relu;
        FactorizedReduce {
            conv: plain_conv(c_in, c_out, 1, 1).init(device),
            bn: BatchNormConfig::new(c_out).init(device),
            leading_relu,
        }
    }
}

impl FactorizedReduce {
    /// See the type-level `# Shapes`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = if self.leading_relu { relu(x) } else { x };
        batch_norm(&self.bn, conv2d_module(&self.conv, x))
    }
}

/// Configuration of an [`InferCell`].
#[derive(Config, Debug)]
pub struct InferCellConfig {
    /// Input width `C_in`.
    pub c_in: usize,
    /// Output width `C_out`.
    pub c_out: usize,
    /// Leading ReLU in the skip edge's FactorizedReduce (only used when `C_in ≠ C_out`).
    /// Default: false, as in NATS-Bench (xautodl).
    #[config(default = false)]
    pub skip_relu: bool,
}

impl InferCellConfig {
    /// Builds the cell.
    pub fn init(&self, device: &Device) -> InferCell {
        let from_in = ReluConvBnConfig::new(self.c_in, self.c_out);
        let inner = ReluConvBnConfig::new(self.c_out, self.c_out);
        InferCell {
            n0_n1: from_in.init(device),
            n0_n2: from_in.init(device),
            n1_n2: inner.init(device),
            n1_n3: inner.init(device),
            n2_n3: inner.init(device),
            skip: (self.c_in != self.c_out).then(|| {
                FactorizedReduceConfig::new(self.c_in, self.c_out, self.skip_relu).init(device)
            }),
        }
    }
}

/// The NATS-SSS cell with fixed topology (see the module docs), fixed widths.
///
/// # Shapes
/// - input: `[batch, C_in, H, W]`
/// - output: `[batch, C_out, H, W]`
#[derive(Module, Debug)]
pub struct InferCell {
    /// Edge n0 → n1 (`C_in → C_out`).
    pub n0_n1: ReluConvBn,
    /// Edge n0 → n2 (`C_in → C_out`).
    pub n0_n2: ReluConvBn,
    /// Edge n1 → n2.
    pub n1_n2: ReluConvBn,
    /// Edge n1 → n3.
    pub n1_n3: ReluConvBn,
    /// Edge n2 → n3.
    pub n2_n3: ReluConvBn,
    /// Skip edge n0 → n3: `None` is the identity (`C_in = C_out`).
    pub skip: Option<FactorizedReduce>,
}

impl InferCell {
    /// See the type-level `# Shapes`.
    pub fn forward(&self, n0: Tensor<4>) -> Tensor<4> {
        let n1 = self.n0_n1.forward(n0.clone());
        let n2 = self.n0_n2.forward(n0.clone()) + self.n1_n2.forward(n1.clone());
        let skip = match &self.skip {
            Some(fr) => fr.forward(n0),
            None => n0,
        };
        skip + self.n1_n3.forward(n1) + self.n2_n3.forward(n2)
    }
}

/// NATS-Bench's `ResNetBasicblock` with stride 2 (the only one the SSS skeleton uses):
/// branch = ReLUConvBN 3×3 s2 (`C_in → C_out`) → ReLUConvBN 3×3; residual = AvgPool2d(2, 2)
/// → Conv1×1 (no bias, no BN); output = residual + branch.
///
/// # Shapes
/// - input: `[batch, C_in, H, W]` (H, W even)
/// - output: `[batch, C_out, H/2, W/2]`
#[derive(Module, Debug)]
pub struct NatsResBlock {
    /// First conv, stride 2.
    pub conv_a: ReluConvBn,
    /// Second conv.
    pub conv_b: ReluConvBn,
    /// Residual 1×1 conv after the average pool.
    pub down: Conv2d,
}

/// Configuration of a [`NatsResBlock`].
#[derive(Config, Debug)]
pub struct NatsResBlockConfig {
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
}

impl NatsResBlockConfig {
    /// Builds the block.
    pub fn init(&self, device: &Device) -> NatsResBlock {
        let c_in = self.c_in;
        let c_out = self.c_out;
        NatsResBlock {
            conv_a: ReluConvBnConfig::new(c_in, c_out)
                .with_stride(2)
                .init(device),
            conv_b: ReluConvBnConfig::new(c_out, c_out).init(device),
            down: plain_conv(c_in, c_out, 1, 1).init(device),
        }
    }
}

impl NatsResBlock {
    /// See the type-level `# Shapes`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let branch = self.conv_b.forward(self.conv_a.forward(x.clone()));
        conv2d_module(&self.down, avg_pool_2x2(x)) + branch
    }
}

/// Configuration of a [`NatsNet`], the standalone NATS-Bench SSS network.
#[derive(Config, Debug)]
pub struct NatsNetConfig {
    /// The five widths `c0..c4`.
    pub widths: [usize; 5],
    /// Classifier outputs (10 for CIFAR-10, 100 for CIFAR-100, 120 for ImageNet16-120).
    pub num_classes: usize,
    /// Leading ReLU in the cells' FactorizedReduce skip. Default: false (NATS-Bench).
    #[config(default = false)]
    pub skip_relu: bool,
}

impl NatsNetConfig {
    /// The config of a NATS-SSS architecture value.
    pub fn from_arch(arch: &NatsArch, num_classes: usize) -> Self {
        Self::new(arch.widths().map(usize::from), num_classes)
    }

    /// Builds the network.
    pub fn init(&self, device: &Device) -> NatsNet {
        let [c0, c1, c2, c3, c4] = self.widths;
        let cell = |a, b| {
            InferCellConfig::new(a, b)
                .with_skip_relu(self.skip_relu)
                .init(device)
        };
        NatsNet {
            stem_conv: plain_conv(3, c0, 3, 1).init(device),
            stem_bn: BatchNormConfig::new(c0).init(device),
            cell0: cell(c0, c0),
            res1: NatsResBlockConfig::new(c0, c1).init(device),
            cell2: cell(c1, c2),
            res3: NatsResBlockConfig::new(c2, c3).init(device),
            cell4: cell(c3, c4),
            head_bn: BatchNormConfig::new(c4).init(device),
            classifier: LinearConfig::new(c4, self.num_classes).init(device),
        }
    }
}

/// The NATS-Bench SSS network (`DynamicShapeTinyNet`, one cell per stage): stem Conv3×3
/// (3 → c0, no bias) + BN; cell(c0→c0); ResBlock(c0→c1, s2); cell(c1→c2);
/// ResBlock(c2→c3, s2); cell(c3→c4); BN → ReLU → global average pool → Linear.
///
/// # Shapes
/// - input: `[batch, 3, H, W]` (H, W divisible by 4)
/// - [`NatsNet::features`]: `[batch, c4, H/4, W/4]`
/// - output: `[batch, num_classes]` logits
#[derive(Module, Debug)]
pub struct NatsNet {
    /// Stem conv 3×3, 3 → c0.
    pub stem_conv: Conv2d,
    /// Stem BN.
    pub stem_bn: BatchNorm,
    /// L0: cell c0 → c0.
    pub cell0: InferCell,
    /// L1: residual reduction c0 → c1.
    pub res1: NatsResBlock,
    /// L2: cell c1 → c2.
    pub cell2: InferCell,
    /// L3: residual reduction c2 → c3.
    pub res3: NatsResBlock,
    /// L4: cell c3 → c4.
    pub cell4: InferCell,
    /// Final BN before ReLU and pooling.
    pub head_bn: BatchNorm,
    /// Linear classifier c4 → classes.
    pub classifier: Linear,
}

impl NatsNet {
    /// Stem and the five layers (no head).
    pub fn features(&self, images: Tensor<4>) -> Tensor<4> {
        let x = batch_norm(&self.stem_bn, conv2d_module(&self.stem_conv, images));
        let x = self.cell0.forward(x);
        let x = self.res1.forward(x);
        let x = self.cell2.forward(x);
        let x = self.res3.forward(x);
        self.cell4.forward(x)
    }

    /// Logits. See the type-level `# Shapes`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let x = batch_norm_relu(&self.head_bn, self.features(images));
        let [b, c, _, _] = x.dims();
        let pooled = x.mean_dim(3).mean_dim(2).reshape([b, c]);
        self.classifier.forward(pooled)
    }
}

// ---------------------------------------------------------------------------------------
// Slimmable (BossNAS supernet) modules
// ---------------------------------------------------------------------------------------

/// Configuration shared by the slimmable NATS layers: the candidate widths.
#[derive(Config, Debug)]
pub struct SlimWidthsConfig {
    /// Candidate widths; width index `i` selects `widths[i]`. Default: `[8, 16, …, 64]`.
    #[config(default = "NATS_CANDIDATE_WIDTHS.to_vec()")]
    pub widths: Vec<usize>,
}

impl SlimWidthsConfig {
    fn max(&self) -> usize {
        *self
            .widths
            .iter()
            .max()
            .expect("at least one candidate width")
    }
}

/// Slimmable ReLU → Conv (no bias) → switchable BN.
///
/// # Shapes
/// - input: `[batch, c_in, H, W]`, any `c_in ≤ max width`
/// - output: `[batch, widths[out_idx], H / stride, W / stride]`
#[derive(Module, Debug)]
pub struct SlimReluConvBn {
    /// Shared conv at the largest width.
    pub conv: SlimConv2d,
    /// One BN per width.
    pub bn: SwitchableBatchNorm,
}

/// Configuration of a [`SlimReluConvBn`].
#[derive(Config, Debug)]
pub struct SlimReluConvBnConfig {
    /// The candidate widths (the conv is built at the largest).
    pub widths: SlimWidthsConfig,
    /// Conv kernel size.
    pub kernel: usize,
    /// Conv stride.
    pub stride: usize,
}

impl SlimReluConvBnConfig {
    /// Builds the layer with a `kernel × kernel` conv of the given stride.
    pub fn init(&self, device: &Device) -> SlimReluConvBn {
        let widths = &self.widths;
        let kernel = self.kernel;
        let stride = self.stride;
        let m = widths.max();
        SlimReluConvBn {
            conv: SlimConv2dConfig::new(m, m, kernel)
                .with_stride(stride)
                .init(device),
            bn: SwitchableBatchNormConfig::new(widths.widths.clone()).init(device),
        }
    }
}

impl SlimReluConvBn {
    /// See the type-level `# Shapes`.
    pub fn forward(&self, x: Tensor<4>, out_idx: usize) -> Tensor<4> {
        self.forward_activated(relu(x), out_idx)
    }

    /// [`Self::forward`] on an input the caller already passed through the ReLU (a cell node
    /// feeding several edges computes it once).
    pub fn forward_activated(&self, x_relu: Tensor<4>, out_idx: usize) -> Tensor<4> {
        let c_out = width_of(&self.bn, out_idx);
        self.bn.forward(self.conv.forward(x_relu, c_out), out_idx)
    }
}

fn width_of(bn: &SwitchableBatchNorm, idx: usize) -> usize {
    bn.bns[idx].gamma.dims()[0]
}

/// Slimmable stride-1 FactorizedReduce: optional ReLU → slim 1×1 conv → switchable BN.
///
/// # Shapes
/// - input: `[batch, c_in, H, W]`
/// - output: `[batch, widths[out_idx], H, W]`
#[derive(Module, Debug)]
pub struct SlimFactorizedReduce {
    /// Shared 1×1 conv.
    pub conv: SlimConv2d,
    /// One BN per width.
    pub bn: SwitchableBatchNorm,
    /// Whether a ReLU precedes the conv (BossNAS: yes).
    pub leading_relu: bool,
}

impl SlimFactorizedReduce {
    /// See the type-level `# Shapes`.
    pub fn forward(&self, x: Tensor<4>, out_idx: usize) -> Tensor<4> {
        let x = if self.leading_relu { relu(x) } else { x };
        self.forward_activated(x, out_idx)
    }

    /// The conv and BN on an input that already went through the leading ReLU (if any).
    fn forward_activated(&self, x: Tensor<4>, out_idx: usize) -> Tensor<4> {
        let c_out = width_of(&self.bn, out_idx);
        self.bn.forward(self.conv.forward(x, c_out), out_idx)
    }
}

/// Configuration of a [`SlimInferCell`].
#[derive(Config, Debug)]
pub struct SlimInferCellConfig {
    /// Candidate widths.
    #[config(default = "SlimWidthsConfig::new()")]
    pub widths: SlimWidthsConfig,
    /// Leading ReLU in the FactorizedReduce skip. Default: true, as in BossNAS.
    #[config(default = true)]
    pub skip_relu: bool,
}

impl SlimInferCellConfig {
    /// Builds the cell at the largest width.
    pub fn init(&self, device: &Device) -> SlimInferCell {
        let edge = || SlimReluConvBnConfig::new(self.widths.clone(), 3, 1).init(device);
        let m = self.widths.max();
        SlimInferCell {
            n0_n1: edge(),
            n0_n2: edge(),
            n1_n2: edge(),
            n1_n3: edge(),
            n2_n3: edge(),
            reduce: SlimFactorizedReduce {
                conv: SlimConv2dConfig::new(m, m, 1).init(device),
                bn: SwitchableBatchNormConfig::new(self.widths.widths.clone()).init(device),
                leading_relu: self.skip_relu,
            },
        }
    }
}

/// The slimmable NATS cell (BossNAS `InferCell` at max width 64).
///
/// The skip edge is the identity when `in_idx == out_idx` and the slimmable
/// FactorizedReduce otherwise.
///
/// # Shapes
/// - input: `[batch, widths[in_idx], H, W]`
/// - output: `[batch, widths[out_idx], H, W]`
#[derive(Module, Debug)]
pub struct SlimInferCell {
    /// Edge n0 → n1.
    pub n0_n1: SlimReluConvBn,
    /// Edge n0 → n2.
    pub n0_n2: SlimReluConvBn,
    /// Edge n1 → n2.
    pub n1_n2: SlimReluConvBn,
    /// Edge n1 → n3.
    pub n1_n3: SlimReluConvBn,
    /// Edge n2 → n3.
    pub n2_n3: SlimReluConvBn,
    /// Skip edge used when the widths differ.
    pub reduce: SlimFactorizedReduce,
}

impl SlimInferCell {
    /// See the type-level `# Shapes`.
    ///
    /// Each node's ReLU is computed once and shared by its outgoing edges (same result as one
    /// ReLU per edge, fewer passes forward and backward).
    pub fn forward(&self, n0: Tensor<4>, in_idx: usize, out_idx: usize) -> Tensor<4> {
        let r0 = relu(n0.clone());
        let n1 = self.n0_n1.forward_activated(r0.clone(), out_idx);
        let r1 = relu(n1);
        let n2 = self.n0_n2.forward_activated(r0.clone(), out_idx)
            + self.n1_n2.forward_activated(r1.clone(), out_idx);
        let skip = match (in_idx != out_idx, self.reduce.leading_relu) {
            (true, true) => self.reduce.forward_activated(r0, out_idx),
            (true, false) => self.reduce.forward_activated(n0, out_idx),
            (false, _) => n0,
        };
        skip + self.n1_n3.forward_activated(r1, out_idx) + self.n2_n3.forward(n2, out_idx)
    }
}

/// The slimmable stride-2 residual block: branch = slim ReLUConvBN 3×3 s2 → slim
/// ReLUConvBN 3×3; residual = AvgPool2d(2, 2) → slim 1×1 conv (no BN).
///
/// # Shapes
/// - input: `[batch, c_in, H, W]`
/// - output: `[batch, widths[out_idx], H/2, W/2]`
#[derive(Module, Debug)]
pub struct SlimResBlock {
    /// First conv, stride 2.
    pub conv_a: SlimReluConvBn,
    /// Second conv.
    pub conv_b: SlimReluConvBn,
    /// Residual 1×1 conv.
    pub down: SlimConv2d,
}

/// Configuration of a [`SlimResBlock`].
#[derive(Config, Debug)]
pub struct SlimResBlockConfig {
    /// The candidate widths (the block is built at the largest).
    pub widths: SlimWidthsConfig,
}

impl SlimResBlockConfig {
    /// Builds the block at the largest width.
    pub fn init(&self, device: &Device) -> SlimResBlock {
        let widths = &self.widths;
        let m = widths.max();
        SlimResBlock {
            conv_a: SlimReluConvBnConfig::new(widths.clone(), 3, 2).init(device),
            conv_b: SlimReluConvBnConfig::new(widths.clone(), 3, 1).init(device),
            down: SlimConv2dConfig::new(m, m, 1).init(device),
        }
    }
}

impl SlimResBlock {
    /// See the type-level `# Shapes`.
    pub fn forward(&self, x: Tensor<4>, out_idx: usize) -> Tensor<4> {
        let branch = self.conv_a.forward(x.clone(), out_idx);
        let branch = self.conv_b.forward(branch, out_idx);
        let c_out = width_of(&self.conv_b.bn, out_idx);
        self.down.forward(avg_pool_2x2(x), c_out) + branch
    }
}

/// Slimmable stem: slim Conv3×3 (3 → `widths[idx]`, no bias) → switchable BN.
///
/// # Shapes
/// - input: `[batch, 3, H, W]`
/// - output: `[batch, widths[idx], H, W]`
#[derive(Module, Debug)]
pub struct SlimStem {
    /// Shared conv 3 → max width.
    pub conv: SlimConv2d,
    /// One BN per width.
    pub bn: SwitchableBatchNorm,
}

/// Configuration of a [`SlimStem`].
#[derive(Config, Debug)]
pub struct SlimStemConfig {
    /// The candidate widths (the stem is built at the largest).
    pub widths: SlimWidthsConfig,
}

impl SlimStemConfig {
    /// Builds the stem.
    pub fn init(&self, device: &Device) -> SlimStem {
        let widths = &self.widths;
        SlimStem {
            conv: SlimConv2dConfig::new(3, widths.max(), 3).init(device),
            bn: SwitchableBatchNormConfig::new(widths.widths.clone()).init(device),
        }
    }
}

impl SlimStem {
    /// See the type-level `# Shapes`.
    pub fn forward(&self, images: Tensor<4>, idx: usize) -> Tensor<4> {
        let c = width_of(&self.bn, idx);
        self.bn.forward(self.conv.forward(images, c), idx)
    }
}
