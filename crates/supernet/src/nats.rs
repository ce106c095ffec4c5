//! The BossNAS slimmable NATS-SSS supernet (`supernets/nats_supernet.py`) and the
//! standalone child network of a [`NatsArch`].
//!
//! Five layers L0..L4 = cell, residual reduction, cell, residual reduction, cell, each built
//! once at the largest candidate width and sliced per call. BossNAS trains and rates them in
//! blocks ([`NatsSplit`]): CIFAR-10 `[L0, L1] [L2, L3] [L4]` (populations 64, 64, 8),
//! CIFAR-100 `[L0, L1] [L2] [L3, L4]` (64, 8, 64). A path is the list of width indices of the
//! block's layers; the first layer of block `k > 0` reads the width of block `k−1`'s last
//! layer (`pre_op`), and L0 maps `c0 → c0`.
//!
//! **The stem belongs to block 0.** Its width is L0's choice (BossNAS runs the stem with
//! `forward_op[0]`), which is not known before block 0's path is. So
//! [`Supernet::forward_prefix`] with no chosen blocks returns the images unchanged, and
//! [`Supernet::forward_block`] of block 0 runs the stem first: block 0's input is
//! `[batch, 3, H, W]`.

use bossnas_blocks::nats::{
    NatsNet, NatsNetConfig, SlimInferCell, SlimInferCellConfig, SlimResBlock, SlimResBlockConfig,
    SlimStem, SlimStemConfig, SlimWidthsConfig,
};
use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use hytra_space::nats::{NATS_LAYERS, NatsArch, NatsSplit};

use crate::{BlockPath, Supernet};

/// Configuration of a [`NatsSupernet`].
#[derive(Config, Debug)]
pub struct NatsSupernetConfig {
    /// Block split of the five layers. Default: CIFAR-10 `[2, 2, 1]`.
    #[config(default = "NatsSplit::Cifar10")]
    pub split: NatsSplit,
    /// Candidate widths (op index `i` ↔ `widths[i]`). Default: `[8, 16, …, 64]`; tests use
    /// smaller ones.
    #[config(default = "SlimWidthsConfig::new()")]
    pub widths: SlimWidthsConfig,
    /// Leading ReLU in the cells' FactorizedReduce skip. Default: true (BossNAS).
    #[config(default = true)]
    pub skip_relu: bool,
}

impl NatsSupernetConfig {
    /// Builds the supernet.
    pub fn init(&self, device: &Device) -> NatsSupernet {
        let cell = || {
            SlimInferCellConfig::new()
                .with_widths(self.widths.clone())
                .with_skip_relu(self.skip_relu)
                .init(device)
        };
        NatsSupernet {
            stem: SlimStemConfig::new(self.widths.clone()).init(device),
            cell0: cell(),
            res1: SlimResBlockConfig::new(self.widths.clone()).init(device),
            cell2: cell(),
            res3: SlimResBlockConfig::new(self.widths.clone()).init(device),
            cell4: cell(),
            block_layers: self.split.block_layers(),
            widths: self.widths.widths.clone(),
        }
    }
}

/// The slimmable NATS-SSS supernet. See the module docs for blocks and paths.
///
/// # Shapes
/// - block 0 input: `[batch, 3, H, W]` (H, W divisible by 4)
/// - layer outputs: L0 `[b, w0, H, W]`, L1 `[b, w1, H/2, W/2]`, L2 `[b, w2, H/2, W/2]`,
///   L3 `[b, w3, H/4, W/4]`, L4 `[b, w4, H/4, W/4]`, with `wi = widths[path op]`
#[derive(Module, Debug)]
pub struct NatsSupernet {
    /// Slimmable stem (width = L0's choice).
    pub stem: SlimStem,
    /// L0: cell.
    pub cell0: SlimInferCell,
    /// L1: residual reduction.
    pub res1: SlimResBlock,
    /// L2: cell.
    pub cell2: SlimInferCell,
    /// L3: residual reduction.
    pub res3: SlimResBlock,
    /// L4: cell.
    pub cell4: SlimInferCell,
    /// Layers per block.
    pub block_layers: [usize; 3],
    /// Candidate widths.
    pub widths: Vec<usize>,
}

impl NatsSupernet {
    /// Index of block `block`'s first layer.
    fn first_layer(&self, block: usize) -> usize {
        self.block_layers[..block].iter().sum()
    }

    /// Runs layer `layer` (0..5) from width index `in_idx` to `out_idx`.
    pub fn forward_layer(
        &self,
        layer: usize,
        x: Tensor<4>,
        in_idx: usize,
        out_idx: usize,
    ) -> Tensor<4> {
        match layer {
            0 => self.cell0.forward(x, in_idx, out_idx),
            1 => self.res1.forward(x, out_idx),
            2 => self.cell2.forward(x, in_idx, out_idx),
            3 => self.res3.forward(x, out_idx),
            4 => self.cell4.forward(x, in_idx, out_idx),
            _ => panic!("NATS supernet has 5 layers, asked for layer {layer}"),
        }
    }

    /// Runs block `block` along `path`, whose first layer reads width index `pre_op`
    /// (for block 0: the images, and the stem is run at `path[0]`).
    fn run_block(
        &self,
        block: usize,
        x: Tensor<4>,
        pre_op: Option<usize>,
        path: &[usize],
    ) -> Tensor<4> {
        assert_eq!(
            path.len(),
            self.block_layers[block],
            "NATS block {block} has {} layers, got path {path:?}",
            self.block_layers[block]
        );
        assert!(
            path.iter().all(|&op| op < self.widths.len()),
            "NATS path {path:?} has a width index ≥ {}",
            self.widths.len()
        );
        let (mut x, mut in_idx) = match pre_op {
            Some(p) => (x, p),
            None => (self.stem.forward(x, path[0]), path[0]),
        };
        let first = self.first_layer(block);
        for (i, &op) in path.iter().enumerate() {
            x = self.forward_layer(first + i, x, in_idx, op);
            in_idx = op;
        }
        x
    }

    /// Stem and all five layers along the width indices `ops`.
    ///
    /// # Shapes
    /// - input: `[batch, 3, H, W]`; output: `[batch, widths[ops[4]], H/4, W/4]`
    pub fn forward_all(&self, images: Tensor<4>, ops: [usize; NATS_LAYERS]) -> Tensor<4> {
        let mut x = self.stem.forward(images, ops[0]);
        let mut in_idx = ops[0];
        for (layer, &op) in ops.iter().enumerate() {
            x = self.forward_layer(layer, x, in_idx, op);
            in_idx = op;
        }
        x
    }
}

impl Supernet for NatsSupernet {
    fn num_blocks(&self) -> usize {
        self.block_layers.len()
    }

    /// All `n^L` width-index paths of the block in lexicographic order (first layer slowest,
    /// as BossNAS `all_op_encoding`); independent of `chosen`.
    fn population(&self, block: usize, _chosen: &[BlockPath]) -> Vec<BlockPath> {
        let n = self.widths.len();
        let layers = self.block_layers[block];
        let mut paths: Vec<BlockPath> = vec![Vec::new()];
        for _ in 0..layers {
            paths = paths
                .into_iter()
                .flat_map(|p| {
                    (0..n).map(move |op| {
                        let mut q = p.clone();
                        q.push(op);
                        q
                    })
                })
                .collect();
        }
        paths
    }

    /// The images themselves when `chosen` is empty (the stem belongs to block 0).
    fn forward_prefix(&self, images: Tensor<4>, chosen: &[BlockPath]) -> Tensor<4> {
        let mut x = images;
        let mut pre = None;
        for (block, path) in chosen.iter().enumerate() {
            x = self.run_block(block, x, pre, path);
            pre = path.last().copied();
        }
        x
    }

    fn forward_block(
        &self,
        features: Tensor<4>,
        chosen: &[BlockPath],
        path: &[usize],
    ) -> Tensor<4> {
        let pre = chosen.last().and_then(|p| p.last().copied());
        self.run_block(chosen.len(), features, pre, path)
    }

    fn block_out_channels(&self, _chosen: &[BlockPath], path: &[usize]) -> usize {
        self.widths[*path.last().expect("non-empty path")]
    }
}

/// The standalone NATS-Bench network of `arch` (fixed widths, plain BN, xautodl semantics:
/// no ReLU before the cells' FactorizedReduce), freshly initialised.
pub fn nats_child(arch: &NatsArch, num_classes: usize, device: &Device) -> NatsNet {
    NatsNetConfig::from_arch(arch, num_classes).init(device)
}
