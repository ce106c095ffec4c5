//! The HyTra weight-sharing supernet (spec §1.3–1.4, §3.1) and its stand-alone children
//! ([`bossnet`]).
//!
//! # Structure
//! Stem (conv 7×7 s2 → BN → ReLU → maxpool, 1/4) followed by 4 blocks of 4 choice layers.
//! Block `b` instantiates the scales of depth `< stage_depths[b]` with `stage_depths =
//! [4, 3, 2, 2]`, so its layers hold ops `0..6`, `0..5`, `0..4`, `0..4` of the global alphabet
//! (`0 ResAtt@1/32, 1 ResConv@1/32, 2 ResAtt@1/16, 3 ResConv@1/16, 4 ResConv@1/8,
//! 5 ResConv@1/4`). An op at depth `d` has a stride-2 input entry (from depth `d+1`) iff
//! `d < stage_depths[b] − 1`. Block 0's first layer takes the stem output through one of four
//! stem adapters and its ops take `channels[d]/4` input channels (stride-2 entries are still
//! built there, as in the official code, although no path uses them).
//!
//! # Spec §9 B3 (fabric vs modules)
//! The official `restricted_path` lists contain paths the official modules cannot continue
//! from (block 0 ending at 1/4, block 1 ending at 1/8). We keep the official modules — so the
//! parameter count stays 854,265,344 — and **restrict the populations** instead
//! ([`hytra_space::hytra::fabric::executable_population`]): block 0 paths must end at ≤ 1/8,
//! block 1 paths at ≤ 1/16 (50 instead of 51 block-0 candidates; 80 instead of 99 for block 1
//! fed at 1/8). Every path a population offers executes.
//!
//! # Spec §9 B4 (attention orientation)
//! [`HytraSupernetConfig::orientation`] selects `v·Aᵀ` (standard, default) or the search
//! code's `v·A`.

pub mod bossnet;

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use hytra_space::hytra::fabric::{LAYERS_PER_BLOCK, NUM_BLOCKS, executable_population};
use hytra_space::hytra::ops::{NUM_OPS, Op, OpKind, Scale};

use bossnas_blocks::attention::AttentionOrientation;
use bossnas_blocks::params::trainable_params;
use bossnas_blocks::res_att::{ResAtt, ResAttConfig};
use bossnas_blocks::res_conv::{ResConv, ResConvConfig};
use bossnas_blocks::stem::{Stem, StemAdapter, StemAdapterConfig, StemConfig};

use crate::{BlockPath, Supernet};

/// Scales (depths) each block instantiates (`SupernetHyTra.stage_depths`).
pub const STAGE_DEPTHS: [usize; NUM_BLOCKS] = [4, 3, 2, 2];

/// Depth of the stem output (1/4).
pub const STEM_DEPTH: usize = 3;

/// Depth (0 = 1/32 … 3 = 1/4) of global op index `op`.
///
/// # Panics
/// If `op ≥ 6`.
pub fn op_depth(op: usize) -> usize {
    Op::from_index(op)
        .unwrap_or_else(|e| panic!("bad HyTra op index {op}: {e}"))
        .scale()
        .depth()
}

fn op_kind(op: usize) -> OpKind {
    Op::from_index(op)
        .unwrap_or_else(|e| panic!("bad HyTra op index {op}: {e}"))
        .kind()
}

/// Configuration of a [`HytraSupernet`]. Defaults are the official full-size widths; use
/// [`HytraSupernetConfig::reduced`] for tiny test supernets.
#[derive(Config, Debug)]
pub struct HytraSupernetConfig {
    /// Stem output channels.
    #[config(default = 64)]
    pub stem_channels: usize,
    /// Output channels per depth (`layer_c`): 1/32, 1/16, 1/8, 1/4.
    #[config(default = "[2048, 1024, 512, 256]")]
    pub channels: [usize; 4],
    /// Attention heads at 1/32 and 1/16.
    #[config(default = "[8, 4]")]
    pub heads: [usize; 2],
    /// Channels per attention head.
    #[config(default = 64)]
    pub dim_head: usize,
    /// Attention orientation of every ResAtt (spec §9 B4).
    #[config(default = "AttentionOrientation::Standard")]
    pub orientation: AttentionOrientation,
}

impl HytraSupernetConfig {
    /// All widths (stem, scale channels, head dim) divided by `divisor`, head counts kept.
    ///
    /// # Panics
    /// If `divisor` does not divide 64 (the stem width and head dim).
    pub fn reduced(divisor: usize) -> Self {
        assert!(
            divisor > 0 && 64 % divisor == 0,
            "width divisor must divide 64, got {divisor}"
        );
        let d = Self::new();
        Self::new()
            .with_stem_channels(d.stem_channels / divisor)
            .with_channels(d.channels.map(|c| c / divisor))
            .with_dim_head(d.dim_head / divisor)
    }

    /// Builds the supernet (parameters lazily initialised: building the full-size net is
    /// cheap until a forward pass touches them).
    pub fn init(&self, device: &Device) -> HytraSupernet {
        let stem = StemConfig::new()
            .with_channels(self.stem_channels)
            .init(device);
        let blocks = (0..NUM_BLOCKS)
            .map(|b| HytraBlock {
                layers: (0..LAYERS_PER_BLOCK)
                    .map(|l| self.init_layer(b, l, device))
                    .collect(),
            })
            .collect();
        HytraSupernet {
            stem,
            blocks,
            channels: self.channels,
        }
    }

    fn init_layer(&self, block: usize, layer: usize, device: &Device) -> HytraLayer {
        let first = block == 0 && layer == 0;
        let sd = STAGE_DEPTHS[block];
        let stem_adapters = if first {
            (0..4)
                .map(|d| {
                    StemAdapterConfig::new(
                        self.stem_channels,
                        self.channels[d] / 4,
                        1 << (STEM_DEPTH - d),
                    )
                    .init(device)
                })
                .collect()
        } else {
            Vec::new()
        };
        let ops = (0..NUM_OPS)
            .filter(|&i| op_depth(i) < sd)
            .map(|i| {
                let d = op_depth(i);
                let out = self.channels[d];
                let c_in = if first { out / 4 } else { out };
                let up = (d + 1 < sd).then(|| self.channels[d + 1]);
                match op_kind(i) {
                    OpKind::ResAtt => HytraOp::Att(
                        ResAttConfig::new(c_in, out)
                            .with_heads(self.heads[d])
                            .with_dim_head(self.dim_head)
                            .with_up_in_channels(up)
                            .with_orientation(self.orientation)
                            .init(device),
                    ),
                    OpKind::ResConv => HytraOp::Conv(
                        ResConvConfig::new(c_in, out / 4)
                            .with_up_in_channels(up)
                            .init(device),
                    ),
                }
            })
            .collect();
        HytraLayer { stem_adapters, ops }
    }
}

/// A candidate op of a choice layer.
#[derive(Module, Debug)]
pub enum HytraOp {
    /// Search-time ResAtt.
    Att(ResAtt),
    /// Search-time ResConv.
    Conv(ResConv),
}

impl HytraOp {
    /// Runs the op with stride 1 or 2.
    pub fn forward(&self, x: Tensor<4>, stride: usize) -> Tensor<4> {
        match self {
            HytraOp::Att(m) => m.forward(x, stride),
            HytraOp::Conv(m) => m.forward(x, stride),
        }
    }

    /// Parameters a forward at `stride` touches.
    pub fn num_params_at(&self, stride: usize) -> usize {
        match self {
            HytraOp::Att(m) => m.num_params_at(stride),
            HytraOp::Conv(m) => m.num_params_at(stride),
        }
    }
}

/// One choice layer (`MixOps`): its candidate ops, indexed by global op index, and (first
/// layer of block 0 only) the four stem adapters, indexed by target depth.
#[derive(Module, Debug)]
pub struct HytraLayer {
    /// Stem adapters for depths 0..4 (empty except in block 0, layer 0).
    pub stem_adapters: Vec<StemAdapter>,
    /// Candidate ops; `ops[i]` is global op `i`.
    pub ops: Vec<HytraOp>,
}

impl HytraLayer {
    /// Runs op `op` on `x` at depth `in_depth`; returns the output (at `op_depth(op)`).
    ///
    /// # Panics
    /// If the op is not instantiated in this layer or cannot follow `in_depth`.
    pub fn forward(&self, x: Tensor<4>, op: usize, in_depth: usize) -> Tensor<4> {
        let (adapter, stride) = self.route(op, in_depth);
        let x = match adapter {
            Some(a) => a.forward(x),
            None => x,
        };
        self.ops[op].forward(x, stride)
    }

    fn route(&self, op: usize, in_depth: usize) -> (Option<&StemAdapter>, usize) {
        assert!(
            op < self.ops.len(),
            "op {op} is not instantiated in this layer (it holds ops 0..{})",
            self.ops.len()
        );
        let d = op_depth(op);
        if !self.stem_adapters.is_empty() {
            assert_eq!(
                in_depth, STEM_DEPTH,
                "the first layer takes the stem output"
            );
            return (Some(&self.stem_adapters[d]), 1);
        }
        let stride = match in_depth.checked_sub(d) {
            Some(0) => 1,
            Some(1) => 2,
            _ => panic!(
                "op {op} (depth {d}) cannot follow an input at depth {in_depth}: a layer keeps \
                 or halves the resolution"
            ),
        };
        (None, stride)
    }

    /// Parameters a forward of op `op` from `in_depth` touches (adapter included).
    pub fn num_params_at(&self, op: usize, in_depth: usize) -> usize {
        let (adapter, stride) = self.route(op, in_depth);
        adapter.map_or(0, trainable_params) + self.ops[op].num_params_at(stride)
    }
}

/// One searched block: [`LAYERS_PER_BLOCK`] choice layers.
#[derive(Module, Debug)]
pub struct HytraBlock {
    /// The choice layers.
    pub layers: Vec<HytraLayer>,
}

/// The HyTra supernet (`SupernetHyTra`, one online or target copy).
///
/// Full size: 854,265,344 trainable parameters ([`trainable_params`]; Burn's `num_params` also
/// counts BN running statistics).
///
/// # Shapes
/// - [`Supernet::forward_prefix`]: `[batch, 3, H, W] → [batch, channels[d], H/r, W/r]`, `d` the
///   last depth of the chosen prefix (`r = 4` and `stem_channels` for an empty prefix).
/// - [`Supernet::forward_block`]: input at the prefix's depth → `[batch, channels[d'], ..]`,
///   `d'` the depth of the path's last op.
#[derive(Module, Debug)]
pub struct HytraSupernet {
    /// The ResNet stem.
    pub stem: Stem,
    /// The four blocks.
    pub blocks: Vec<HytraBlock>,
    /// Output channels per depth.
    pub channels: [usize; 4],
}

impl HytraSupernet {
    /// Depth at which block `chosen.len()` receives its input.
    pub fn input_depth(chosen: &[BlockPath]) -> usize {
        chosen.last().map_or(STEM_DEPTH, |p| {
            op_depth(*p.last().expect("empty block path"))
        })
    }

    /// Parameters a forward of the stem and the given paths (blocks `0..paths.len()`) touches:
    /// the stem, block 0's stem adapter, and per layer the op's entry for its stride plus the
    /// shared part.
    pub fn path_num_params(&self, paths: &[BlockPath]) -> usize {
        let mut n = trainable_params(&self.stem);
        for (b, path) in paths.iter().enumerate() {
            let mut depth = Self::input_depth(&paths[..b]);
            for (layer, &op) in self.blocks[b].layers.iter().zip(path) {
                n += layer.num_params_at(op, depth);
                depth = op_depth(op);
            }
        }
        n
    }
}

fn depth_scale(depth: usize) -> Scale {
    Scale::from_depth(depth).expect("depth in 0..4")
}

impl Supernet for HytraSupernet {
    fn num_blocks(&self) -> usize {
        NUM_BLOCKS
    }

    /// The restricted population of the block (first layer keeps or halves the input scale)
    /// minus the paths the next block's modules cannot continue from (spec §9 B3).
    fn population(&self, block: usize, chosen: &[BlockPath]) -> Vec<BlockPath> {
        assert_eq!(
            chosen.len(),
            block,
            "population of block {block} needs the best paths of blocks 0..{block}"
        );
        let input = depth_scale(Self::input_depth(chosen));
        executable_population(block, input)
            .unwrap_or_else(|e| panic!("no population for block {block}: {e}"))
            .into_iter()
            .map(|p| p.indices().to_vec())
            .collect()
    }

    fn forward_prefix(&self, images: Tensor<4>, chosen: &[BlockPath]) -> Tensor<4> {
        let mut x = self.stem.forward(images);
        for b in 0..chosen.len() {
            x = self.forward_block(x, &chosen[..b], &chosen[b]);
        }
        x
    }

    fn forward_block(
        &self,
        features: Tensor<4>,
        chosen: &[BlockPath],
        path: &[usize],
    ) -> Tensor<4> {
        let block = &self.blocks[chosen.len()];
        assert_eq!(
            path.len(),
            block.layers.len(),
            "a HyTra block path has {} ops",
            block.layers.len()
        );
        let mut depth = Self::input_depth(chosen);
        let mut x = features;
        for (layer, &op) in block.layers.iter().zip(path) {
            x = layer.forward(x, op, depth);
            depth = op_depth(op);
        }
        x
    }

    fn block_out_channels(&self, _chosen: &[BlockPath], path: &[usize]) -> usize {
        self.channels[op_depth(*path.last().expect("empty block path"))]
    }
}
