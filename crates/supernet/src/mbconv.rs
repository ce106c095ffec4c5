//! The BossNAS MBConv supernet (`supernets/mbconv_supernet.py`) and the standalone child
//! network of an [`MbconvArch`].
//!
//! Stem (fixed) → five searched blocks of 2/4/4/4/4 layers (widths 24/40/80/112/192, first
//! layer strides 2/2/2/1/2) with four candidates per layer ([`MbOp`](hytra_space::mbconv::MbOp)) → the
//! fixed last block (one MB6 3×3 layer to 320, never searched). Every supernet layer has a
//! residual; its shortcut ([`MbconvShortcut`]) is one module per layer shared by the four
//! candidates. Block populations: `4^layers` = 16 / 256.

use bossnas_blocks::mbconv::{
    InvertedResidual, InvertedResidualConfig, MbconvLayer, MbconvLayerConfig, MbconvShortcut,
    MbconvShortcutConfig, MbconvStem, MbconvStemConfig,
};
use bossnas_kernels::batch_norm;
use bossnas_kernels::silu;
use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use hytra_space::mbconv::MBCONV_OPS;
use hytra_space::mbconv::MbconvArch;

use crate::{BlockPath, Supernet};

/// Backbone geometry shared by the supernet and its children; defaults are BossNAS's.
#[derive(Config, Debug)]
pub struct MbconvBackboneConfig {
    /// Stem widths. Default: 3 → 32 → 16.
    #[config(default = "MbconvStemConfig::new()")]
    pub stem: MbconvStemConfig,
    /// Output width of each searched block. Default: `[24, 40, 80, 112, 192]`.
    #[config(default = "vec![24, 40, 80, 112, 192]")]
    pub block_channels: Vec<usize>,
    /// Stride of each block's first layer. Default: `[2, 2, 2, 1, 2]`.
    #[config(default = "vec![2, 2, 2, 1, 2]")]
    pub block_strides: Vec<usize>,
    /// Layers per searched block. Default: `[2, 4, 4, 4, 4]`.
    #[config(default = "vec![2, 4, 4, 4, 4]")]
    pub block_layers: Vec<usize>,
    /// Width of the fixed last layer. Default: 320.
    #[config(default = 320)]
    pub last_channels: usize,
}

impl MbconvBackboneConfig {
    /// `(in, out, stride)` of every layer of block `block`.
    pub fn layer_geometry(&self, block: usize) -> Vec<(usize, usize, usize)> {
        let c_in = if block == 0 {
            self.stem.out_channels
        } else {
            self.block_channels[block - 1]
        };
        let out = self.block_channels[block];
        (0..self.block_layers[block])
            .map(|l| {
                if l == 0 {
                    (c_in, out, self.block_strides[block])
                } else {
                    (out, out, 1)
                }
            })
            .collect()
    }

    fn last_in(&self) -> usize {
        *self.block_channels.last().expect("at least one block")
    }
}

/// One supernet layer: the shared shortcut and the four candidate branches.
///
/// # Shapes
/// - input: `[batch, in, H, W]`
/// - output: `[batch, out, ⌈H/s⌉, ⌈W/s⌉]`
#[derive(Module, Debug)]
pub struct MbconvChoiceLayer {
    /// The residual, shared by all candidates (BossNAS `MixOps.downsample`).
    pub shortcut: MbconvShortcut,
    /// Candidate branches in op-index order.
    pub candidates: Vec<InvertedResidual>,
}

/// Configuration of a [`MbconvChoiceLayer`].
#[derive(Config, Debug)]
pub struct MbconvChoiceLayerConfig {
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Stride of the layer.
    pub stride: usize,
}

impl MbconvChoiceLayerConfig {
    /// Builds the layer with every candidate of [`MbOp`](hytra_space::mbconv::MbOp).
    pub fn init(&self, device: &Device) -> MbconvChoiceLayer {
        let c_in = self.c_in;
        let c_out = self.c_out;
        let stride = self.stride;
        MbconvChoiceLayer {
            shortcut: MbconvShortcutConfig::new(c_in, c_out)
                .with_stride(stride)
                .init(device),
            candidates: (0..MBCONV_OPS)
                .map(|op| InvertedResidualConfig::candidate(op, c_in, c_out, stride).init(device))
                .collect(),
        }
    }
}

impl MbconvChoiceLayer {
    /// `candidates[op](x) + shortcut(x)`. See the type-level `# Shapes`.
    pub fn forward(&self, x: Tensor<4>, op: usize) -> Tensor<4> {
        self.candidates[op].forward(x.clone()) + self.shortcut.forward(x)
    }
}

/// Configuration of an [`MbconvSupernet`].
#[derive(Config, Debug)]
pub struct MbconvSupernetConfig {
    /// Geometry. Default: BossNAS's.
    #[config(default = "MbconvBackboneConfig::new()")]
    pub backbone: MbconvBackboneConfig,
}

impl MbconvSupernetConfig {
    /// Builds the supernet.
    pub fn init(&self, device: &Device) -> MbconvSupernet {
        let bb = &self.backbone;
        MbconvSupernet {
            stem: bb.stem.init(device),
            blocks: (0..bb.block_channels.len())
                .map(|b| {
                    bb.layer_geometry(b)
                        .into_iter()
                        .map(|(i, o, s)| MbconvChoiceLayerConfig::new(i, o, s).init(device))
                        .collect()
                })
                .collect(),
            last: MbconvLayerConfig::new(0, bb.last_in(), bb.last_channels).init(device),
        }
    }
}

/// The MBConv supernet. See the module docs.
///
/// # Shapes (default geometry, `H × W` input)
/// - stem: `[b, 16, H/2, W/2]`; blocks 0..5 outputs `[b, 24, H/4]`, `[b, 40, H/8]`,
///   `[b, 80, H/16]`, `[b, 112, H/16]`, `[b, 192, H/32]` (ceil division)
#[derive(Module, Debug)]
pub struct MbconvSupernet {
    /// Fixed stem.
    pub stem: MbconvStem,
    /// Searched blocks, each a list of choice layers.
    pub blocks: Vec<Vec<MbconvChoiceLayer>>,
    /// The fixed last layer (MB6 3×3 → 320, projected residual), not searched.
    pub last: MbconvLayer,
}

impl MbconvSupernet {
    /// `n = 4` paths of block `block` that together use every op at every layer exactly once
    /// (FairNAS strict fairness): path `p` takes op `(p + l) mod 4` at layer `l` (a cyclic
    /// Latin square). The search crate draws random permutations instead; this fixed set
    /// is what tests use to execute every op of every layer with 4 forwards per block.
    pub fn fair_paths(&self, block: usize) -> Vec<BlockPath> {
        let n = MBCONV_OPS;
        let layers = self.blocks[block].len();
        (0..n)
            .map(|p| (0..layers).map(|l| (p + l) % n).collect())
            .collect()
    }

    /// The fixed last layer applied to block 4's output.
    pub fn forward_last(&self, features: Tensor<4>) -> Tensor<4> {
        self.last.forward(features)
    }

    fn run_block(&self, block: usize, mut x: Tensor<4>, path: &[usize]) -> Tensor<4> {
        let layers = &self.blocks[block];
        assert_eq!(
            path.len(),
            layers.len(),
            "MBConv block {block} has {} layers, got path {path:?}",
            layers.len()
        );
        for (layer, &op) in layers.iter().zip(path) {
            assert!(
                op < layer.candidates.len(),
                "MBConv op {op} out of range in path {path:?}"
            );
            x = layer.forward(x, op);
        }
        x
    }
}

impl Supernet for MbconvSupernet {
    fn num_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// All `4^L` paths in lexicographic order (first layer slowest, BossNAS `all_op_encoding`).
    fn population(&self, block: usize, _chosen: &[BlockPath]) -> Vec<BlockPath> {
        let n = MBCONV_OPS;
        let layers = self.blocks[block].len();
        (0..n.pow(layers as u32))
            .map(|mut code| {
                let mut p = vec![0; layers];
                for slot in p.iter_mut().rev() {
                    *slot = code % n;
                    code /= n;
                }
                p
            })
            .collect()
    }

    fn forward_prefix(&self, images: Tensor<4>, chosen: &[BlockPath]) -> Tensor<4> {
        let mut x = self.stem.forward(images);
        for (block, path) in chosen.iter().enumerate() {
            x = self.run_block(block, x, path);
        }
        x
    }

    fn forward_block(
        &self,
        features: Tensor<4>,
        chosen: &[BlockPath],
        path: &[usize],
    ) -> Tensor<4> {
        self.run_block(chosen.len(), features, path)
    }

    fn block_out_channels(&self, chosen: &[BlockPath], _path: &[usize]) -> usize {
        let layer = self.blocks[chosen.len()].last().expect("non-empty block");
        layer.candidates[0].bn3.gamma.dims()[0]
    }
}

/// Configuration of an [`MbconvNet`], the standalone (retrained) child.
#[derive(Config, Debug)]
pub struct MbconvNetConfig {
    /// Op index of every searched layer, per block.
    pub ops: Vec<Vec<usize>>,
    /// Classifier outputs.
    pub num_classes: usize,
    /// Geometry. Default: BossNAS's.
    #[config(default = "MbconvBackboneConfig::new()")]
    pub backbone: MbconvBackboneConfig,
    /// Width of the head's 1×1 conv. Default: 1280.
    #[config(default = 1280)]
    pub head_features: usize,
}

impl MbconvNetConfig {
    /// The child of an architecture value with the default geometry.
    pub fn from_arch(arch: &MbconvArch, num_classes: usize) -> Self {
        let ops = arch
            .blocks()
            .iter()
            .map(|b| b.iter().map(|op| op.index()).collect())
            .collect();
        Self::new(ops, num_classes)
    }

    /// Builds the network.
    pub fn init(&self, device: &Device) -> MbconvNet {
        let bb = &self.backbone;
        assert_eq!(
            self.ops.len(),
            bb.block_channels.len(),
            "one op list per block"
        );
        let mut layers = Vec::new();
        for (b, ops) in self.ops.iter().enumerate() {
            let geo = bb.layer_geometry(b);
            assert_eq!(ops.len(), geo.len(), "block {b} has {} layers", geo.len());
            for (&op, (i, o, s)) in ops.iter().zip(geo) {
                layers.push(
                    MbconvLayerConfig::new(op, i, o)
                        .with_stride(s)
                        .with_project(false)
                        .init(device),
                );
            }
        }
        layers.push(
            MbconvLayerConfig::new(0, bb.last_in(), bb.last_channels)
                .with_project(false)
                .init(device),
        );
        MbconvNet {
            stem: bb.stem.init(device),
            layers,
            head_conv: Conv2dConfig::new([bb.last_channels, self.head_features], [1, 1])
                .with_bias(false)
                .init(device),
            head_bn: BatchNormConfig::new(self.head_features).init(device),
            classifier: LinearConfig::new(self.head_features, self.num_classes).init(device),
        }
    }
}

/// A standalone MBConv network (DNA / timm `GenEfficientNet` layout): stem, the 18 chosen
/// layers and the fixed 320 layer with timm skips (identity only where the shape is kept),
/// then 1×1 conv → BN → SiLU → global average pool → Linear.
///
/// # Shapes
/// - input: `[batch, 3, H, W]`; output: `[batch, num_classes]`
#[derive(Module, Debug)]
pub struct MbconvNet {
    /// Fixed stem.
    pub stem: MbconvStem,
    /// All layers in order (searched ones, then the fixed last one).
    pub layers: Vec<MbconvLayer>,
    /// Head 1×1 conv.
    pub head_conv: Conv2d,
    /// Head BN.
    pub head_bn: BatchNorm,
    /// Classifier.
    pub classifier: Linear,
}

impl MbconvNet {
    /// Logits. See the type-level `# Shapes`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = self.stem.forward(images);
        for layer in &self.layers {
            x = layer.forward(x);
        }
        let x = silu(batch_norm(&self.head_bn, self.head_conv.forward(x)));
        let [b, c, _, _] = x.dims();
        self.classifier
            .forward(x.mean_dim(3).mean_dim(2).reshape([b, c]))
    }
}
