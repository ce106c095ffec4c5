//! The MBConv search space of BossNAS (the DNA / EfficientNet-B0 layout), spec §6.1.
//!
//! * Stem (fixed): `ConvBnAct` 3×3 s2 3→32 + SiLU, then `DepthwiseSeparable` 3×3 32→16 with SE.
//! * Five searched blocks `[out, stride, layers]`: `[24,2,2] [40,2,4] [80,2,4] [112,1,4]
//!   [192,2,4]` (18 searched layers), then the fixed block `[320,1,1]`.
//! * Four candidate ops per layer, [`MbOp`]: 0 `MB6_3x3_se0.25`, 1 `MB6_5x5_se0.25`,
//!   2 `MB3_3x3_se0.25`, 3 `MB3_5x5_se0.25` (timm `InvertedResidual`, SiLU, SE on 1/4 of the
//!   layer's *input* channels).
//! * The first layer of a block carries the stride and the channel change.
//!
//! In the supernet **every layer has a residual**: identity when shape is kept, otherwise a
//! per-layer `downsample` = AvgPool(2, 2, ceil) (if stride 2) → 1×1 conv → BN, one module shared
//! by the layer's four candidates ([`MbLayerSpec::downsample`]). The retrained standalone child
//! (DNA's timm `GenEfficientNet`) has the usual timm skip, only where shape is kept;
//! [`ResidualStyle`] picks which one a cost counts.
//!
//! Architectures ([`MbconvArch`]) are five per-block op lists, written as digit codes joined by
//! `-`, e.g. `"00-1111-2222-3333-0123"`; each block code is the key used by BossNAS'
//! `path_rank_{k}.yml` files.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::cost::{Cost, batch_norm, conv_out, conv2d, linear};

/// Number of searched blocks.
pub const MBCONV_BLOCKS: usize = 5;
/// Candidate ops per layer.
pub const MBCONV_OPS: usize = 4;
/// Searched layers per block.
pub const MBCONV_BLOCK_LAYERS: [usize; MBCONV_BLOCKS] = [2, 4, 4, 4, 4];
/// Searched layers in total.
pub const MBCONV_LAYERS: usize = 18;
/// Architectures in the space: 4¹⁸ = 68,719,476,736.
pub const MBCONV_SPACE_SIZE: u64 = 1 << (2 * MBCONV_LAYERS);
/// Stem convolution width.
pub const STEM_CHANNELS: usize = 32;
/// Output width of the stem's depthwise-separable layer = input width of block 0.
pub const STEM_OUT_CHANNELS: usize = 16;
/// Width of the classifier head's 1×1 conv (EfficientNet/DNA `num_features`).
pub const HEAD_FEATURES: usize = 1280;
/// SE reduction ratio, applied to the layer's input width (timm `se_ratio`, `reduce_mid=False`).
pub const SE_RATIO_DENOMINATOR: usize = 4;

/// One block of the backbone: `out` channels, `stride` of its first layer, `layers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MbBlockConfig {
    pub out: usize,
    pub stride: usize,
    pub layers: usize,
}

/// The five searched blocks (`SupernetMBConv.block_cfgs[..5]`).
pub const MBCONV_BLOCK_CONFIGS: [MbBlockConfig; MBCONV_BLOCKS] = [
    MbBlockConfig {
        out: 24,
        stride: 2,
        layers: 2,
    },
    MbBlockConfig {
        out: 40,
        stride: 2,
        layers: 4,
    },
    MbBlockConfig {
        out: 80,
        stride: 2,
        layers: 4,
    },
    MbBlockConfig {
        out: 112,
        stride: 1,
        layers: 4,
    },
    MbBlockConfig {
        out: 192,
        stride: 2,
        layers: 4,
    },
];

/// The fixed last block `[320, 1, 1]`, never searched (`num_block = 5`).
pub const MBCONV_LAST_BLOCK: MbBlockConfig = MbBlockConfig {
    out: 320,
    stride: 1,
    layers: 1,
};

/// The op of the fixed last layer in a standalone child: every DNA child ends with
/// `ir_r1_k3_s1_e6_c320_se0.25`, as EfficientNet-B0 does.
pub const LAST_LAYER_OP: MbOp = MbOp::Mb6K3;

/// A candidate op: an inverted-residual (MBConv) layer with expansion 3 or 6 and a 3×3 or 5×5
/// depthwise kernel, always with SE 0.25 and SiLU. The discriminant is the op index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MbOp {
    #[serde(rename = "MB6_3x3_se0.25")]
    Mb6K3 = 0,
    #[serde(rename = "MB6_5x5_se0.25")]
    Mb6K5 = 1,
    #[serde(rename = "MB3_3x3_se0.25")]
    Mb3K3 = 2,
    #[serde(rename = "MB3_5x5_se0.25")]
    Mb3K5 = 3,
}

impl MbOp {
    /// All ops in index order (`PRIMITIVES`).
    pub const ALL: [MbOp; MBCONV_OPS] = [MbOp::Mb6K3, MbOp::Mb6K5, MbOp::Mb3K3, MbOp::Mb3K5];

    /// The op with index `i`, if `i < 4`.
    pub fn from_index(i: usize) -> Option<MbOp> {
        Self::ALL.get(i).copied()
    }

    /// The op index (0..4).
    pub fn index(self) -> usize {
        self as usize
    }

    /// Expansion ratio of the 1×1 expand conv.
    pub fn expansion(self) -> usize {
        match self {
            MbOp::Mb6K3 | MbOp::Mb6K5 => 6,
            MbOp::Mb3K3 | MbOp::Mb3K5 => 3,
        }
    }

    /// Depthwise kernel size.
    pub fn kernel(self) -> usize {
        match self {
            MbOp::Mb6K3 | MbOp::Mb3K3 => 3,
            MbOp::Mb6K5 | MbOp::Mb3K5 => 5,
        }
    }

    /// The BossNAS primitive name, e.g. `MB6_3x3_se0.25`.
    pub fn name(self) -> &'static str {
        match self {
            MbOp::Mb6K3 => "MB6_3x3_se0.25",
            MbOp::Mb6K5 => "MB6_5x5_se0.25",
            MbOp::Mb3K3 => "MB3_3x3_se0.25",
            MbOp::Mb3K5 => "MB3_5x5_se0.25",
        }
    }
}

impl fmt::Display for MbOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const ALLOWED_OPS: &str =
    "0 (MB6_3x3_se0.25), 1 (MB6_5x5_se0.25), 2 (MB3_3x3_se0.25), 3 (MB3_5x5_se0.25)";

/// A fair-path input that is not a set of permutations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FairPathError {
    #[error(
        "fair paths: layer {layer} order {found:?} is not a permutation of 0..{ops}; each layer needs every op exactly once"
    )]
    NotAPermutation {
        layer: usize,
        found: Vec<usize>,
        ops: usize,
    },
}

/// Errors raised while parsing or validating an MBConv architecture or asking about the space.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MbconvError {
    #[error(
        "MBConv architecture has {found} blocks; expected 5 with 2, 4, 4, 4, 4 layers (e.g. 00-1111-2222-3333-0123)"
    )]
    WrongBlockCount { found: usize },
    #[error("MBConv block {block} has {found} layer(s); expected {expected}")]
    WrongLayerCount {
        block: usize,
        found: usize,
        expected: usize,
    },
    #[error("MBConv block {block} layer {layer}: op {value} is not allowed; allowed ops are {ALLOWED_OPS}", ALLOWED_OPS = ALLOWED_OPS)]
    BadOp {
        block: usize,
        layer: usize,
        value: u64,
    },
    #[error("MBConv block {block} layer {layer}: {found:?} is not an op digit; allowed ops are {ALLOWED_OPS}", ALLOWED_OPS = ALLOWED_OPS)]
    NotADigit {
        block: usize,
        layer: usize,
        found: char,
    },
    #[error("MBConv flat encoding has {found} ops; expected 18 (2 + 4 + 4 + 4 + 4)")]
    WrongLength { found: usize },
    #[error("MBConv block {block} does not exist; searched blocks are 0..5")]
    BadBlock { block: usize },
    #[error(
        "MBConv architecture JSON: {message}; expected \"00-1111-2222-3333-0123\" or five lists of op indices"
    )]
    Json { message: String },
    #[error(transparent)]
    FairPath(#[from] FairPathError),
}

// ---------------------------------------------------------------------------------------------
// Fair-path sampling.
// ---------------------------------------------------------------------------------------------

/// Strictly fair paths (FairNAS): given one permutation of `0..num_ops` per layer, path `j`
/// takes `permutations[l][j]` at layer `l`. The `num_ops` paths together use every op of every
/// layer exactly once, which is what BossNAS' `fair_random_op_encoding` produces per step.
///
/// Randomness stays with the caller so that this crate needs no RNG; [`fair_paths_with`] takes
/// a shuffle closure (e.g. `|s| s.shuffle(&mut rng)`).
pub fn fair_paths(
    permutations: &[Vec<usize>],
    num_ops: usize,
) -> Result<Vec<Vec<usize>>, FairPathError> {
    for (layer, perm) in permutations.iter().enumerate() {
        let mut seen = vec![false; num_ops];
        let ok = perm.len() == num_ops
            && perm
                .iter()
                .all(|&op| op < num_ops && !std::mem::replace(&mut seen[op], true));
        if !ok {
            return Err(FairPathError::NotAPermutation {
                layer,
                found: perm.clone(),
                ops: num_ops,
            });
        }
    }
    Ok((0..num_ops)
        .map(|j| permutations.iter().map(|perm| perm[j]).collect())
        .collect())
}

/// [`fair_paths`] for `layers` layers whose permutations come from `shuffle`, called once per
/// layer on `[0, 1, …, num_ops − 1]`.
pub fn fair_paths_with(
    layers: usize,
    num_ops: usize,
    mut shuffle: impl FnMut(&mut [usize]),
) -> Result<Vec<Vec<usize>>, FairPathError> {
    let perms: Vec<Vec<usize>> = (0..layers)
        .map(|_| {
            let mut p: Vec<usize> = (0..num_ops).collect();
            shuffle(&mut p);
            p
        })
        .collect();
    fair_paths(&perms, num_ops)
}

/// The four fair paths of one searched block from its per-layer permutations of `0..4`.
pub fn block_fair_paths(
    block: usize,
    permutations: &[Vec<usize>],
) -> Result<Vec<Vec<MbOp>>, MbconvError> {
    let expected = block_layer_count(block)?;
    if permutations.len() != expected {
        return Err(MbconvError::WrongLayerCount {
            block,
            found: permutations.len(),
            expected,
        });
    }
    Ok(fair_paths(permutations, MBCONV_OPS)?
        .into_iter()
        .map(to_ops)
        .collect())
}

/// Four whole architectures from 18 per-layer permutations, as the supernet's
/// `set_forward_cfg('fair')` draws them: each block then uses its slice.
pub fn arch_fair_paths(permutations: &[Vec<usize>]) -> Result<Vec<MbconvArch>, MbconvError> {
    if permutations.len() != MBCONV_LAYERS {
        return Err(MbconvError::WrongLength {
            found: permutations.len(),
        });
    }
    fair_paths(permutations, MBCONV_OPS)?
        .iter()
        .map(|flat| MbconvArch::from_op_indices(flat))
        .collect()
}

fn to_ops(indices: Vec<usize>) -> Vec<MbOp> {
    indices.into_iter().map(|i| MbOp::ALL[i]).collect()
}

// ---------------------------------------------------------------------------------------------
// Per-block populations.
// ---------------------------------------------------------------------------------------------

fn block_layer_count(block: usize) -> Result<usize, MbconvError> {
    MBCONV_BLOCK_LAYERS
        .get(block)
        .copied()
        .ok_or(MbconvError::BadBlock { block })
}

/// Candidates of a searched block: 4^layers = 16 for block 0, 256 for blocks 1–4.
pub fn block_population_size(block: usize) -> Result<usize, MbconvError> {
    Ok(MBCONV_OPS.pow(block_layer_count(block)? as u32))
}

/// Every candidate of a searched block, first layer varying slowest (the order of BossNAS'
/// `all_op_encoding`; candidate `i` has the base-4 digits of `i` as ops, so block 4 candidate
/// 20 is `0110`).
pub fn block_population(block: usize) -> Result<impl Iterator<Item = Vec<MbOp>>, MbconvError> {
    let layers = block_layer_count(block)?;
    Ok((0..MBCONV_OPS.pow(layers as u32)).map(move |mut i| {
        let mut ops = vec![MbOp::Mb6K3; layers];
        for slot in ops.iter_mut().rev() {
            *slot = MbOp::ALL[i % MBCONV_OPS];
            i /= MBCONV_OPS;
        }
        ops
    }))
}

/// The digit code of a block's ops, e.g. `"0110"` (the `path_rank_{k}.yml` key).
pub fn block_code(ops: &[MbOp]) -> String {
    ops.iter()
        .map(|op| char::from(b'0' + op.index() as u8))
        .collect()
}

/// Parses one block's digit code, checking the layer count and every digit.
pub fn parse_block_code(block: usize, code: &str) -> Result<Vec<MbOp>, MbconvError> {
    let expected = block_layer_count(block)?;
    let mut ops = Vec::with_capacity(expected);
    for (layer, found) in code.trim().chars().enumerate() {
        let value = found.to_digit(10).ok_or(MbconvError::NotADigit {
            block,
            layer,
            found,
        })?;
        ops.push(MbOp::from_index(value as usize).ok_or(MbconvError::BadOp {
            block,
            layer,
            value: value.into(),
        })?);
    }
    if ops.len() != expected {
        return Err(MbconvError::WrongLayerCount {
            block,
            found: ops.len(),
            expected,
        });
    }
    Ok(ops)
}

// ---------------------------------------------------------------------------------------------
// Layer geometry.
// ---------------------------------------------------------------------------------------------

/// The supernet's per-layer residual projection (`MixOps.downsample`), used when the layer
/// changes stride or width. Shared by the layer's four candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Downsample {
    /// AvgPool2d(2, 2, ceil_mode, count_include_pad=False) first (stride-2 layers).
    pub avg_pool: bool,
    /// 1×1 conv (no bias) + BN to the new width (width-changing layers).
    pub conv: bool,
}

/// Geometry of one layer of the backbone, independent of its op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MbLayerSpec {
    /// Block index (5 = the fixed last block).
    pub block: usize,
    /// Layer index within the block.
    pub layer: usize,
    pub in_chs: usize,
    pub out_chs: usize,
    pub stride: usize,
    /// `None` = identity residual. Every layer has a residual in the supernet.
    pub downsample: Option<Downsample>,
}

impl MbLayerSpec {
    fn new(block: usize, layer: usize, in_chs: usize, out_chs: usize, stride: usize) -> Self {
        let downsample = (in_chs != out_chs || stride == 2).then_some(Downsample {
            avg_pool: stride == 2,
            conv: in_chs != out_chs,
        });
        MbLayerSpec {
            block,
            layer,
            in_chs,
            out_chs,
            stride,
            downsample,
        }
    }
}

fn block_specs(block: usize, cfg: MbBlockConfig, in_chs: usize) -> Vec<MbLayerSpec> {
    (0..cfg.layers)
        .map(|l| {
            let (c_in, stride) = if l == 0 {
                (in_chs, cfg.stride)
            } else {
                (cfg.out, 1)
            };
            MbLayerSpec::new(block, l, c_in, cfg.out, stride)
        })
        .collect()
}

/// The 18 searched layers in order.
pub fn searched_layers() -> Vec<MbLayerSpec> {
    let mut in_chs = STEM_OUT_CHANNELS;
    let mut out = Vec::with_capacity(MBCONV_LAYERS);
    for (block, cfg) in MBCONV_BLOCK_CONFIGS.into_iter().enumerate() {
        out.extend(block_specs(block, cfg, in_chs));
        in_chs = cfg.out;
    }
    out
}

/// The searched layers of one block.
pub fn block_layers(block: usize) -> Result<Vec<MbLayerSpec>, MbconvError> {
    block_layer_count(block)?;
    Ok(searched_layers()
        .into_iter()
        .filter(|s| s.block == block)
        .collect())
}

/// The fixed last layer (192 → 320, stride 1).
pub fn last_layer() -> MbLayerSpec {
    let in_chs = MBCONV_BLOCK_CONFIGS[MBCONV_BLOCKS - 1].out;
    MbLayerSpec::new(
        MBCONV_BLOCKS,
        0,
        in_chs,
        MBCONV_LAST_BLOCK.out,
        MBCONV_LAST_BLOCK.stride,
    )
}

// ---------------------------------------------------------------------------------------------
// Costs.
// ---------------------------------------------------------------------------------------------

/// Which residual a cost counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResidualStyle {
    /// The retrained standalone child (DNA's timm `GenEfficientNet`): identity skip only where
    /// stride is 1 and width is kept; no projection anywhere.
    #[default]
    Child,
    /// The supernet path: shape-changing layers add their [`Downsample`] (1×1 conv + BN).
    Supernet,
}

/// Knobs of the MBConv cost counter. The default is the standalone child with SE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MbconvCostOptions {
    /// Count SE modules (BossNet-M2 has them, M1 "w/o SE" does not); applies to every layer.
    pub se: bool,
    pub residual: ResidualStyle,
    /// Width of the head's 1×1 conv.
    pub head_features: usize,
}

impl Default for MbconvCostOptions {
    fn default() -> Self {
        MbconvCostOptions {
            se: true,
            residual: ResidualStyle::Child,
            head_features: HEAD_FEATURES,
        }
    }
}

/// timm's `make_divisible`: round `v` to the nearest multiple of `divisor` (at least
/// `divisor`), adding one more `divisor` when rounding lost more than 10 %. Gives the MBConv
/// hidden width `make_divisible(in·e, 8)` and the modules' SE width `make_divisible(in·0.25, 1)`
/// (the one definition: the Burn modules of `bossnas-blocks` call this too).
pub fn make_divisible(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let mut new_v = (((v + d / 2.0) as usize) / divisor * divisor).max(divisor);
    if (new_v as f64) < 0.9 * v {
        new_v += divisor;
    }
    new_v
}

/// SE reduced width: `max(1, ⌊in_chs · 0.25⌋)` of the layer's *input* width.
fn se_reduced(in_chs: usize) -> usize {
    (in_chs / SE_RATIO_DENOMINATOR).max(1)
}

/// SE on `channels` squeezed to `reduced`: two 1×1 convs with bias at 1×1 spatial size.
fn se_cost(channels: usize, reduced: usize) -> Cost {
    conv2d(channels, reduced, 1, 1, true, 1, 1) + conv2d(reduced, channels, 1, 1, true, 1, 1)
}

/// timm `InvertedResidual` (1×1 expand → BN → act → dw k×k → BN → act → SE → 1×1 project → BN)
/// on a `side × side` input, without its residual. Returns the cost and the output side.
fn inverted_residual_cost(
    in_chs: usize,
    out_chs: usize,
    kernel: usize,
    expansion: usize,
    stride: usize,
    se: bool,
    side: usize,
) -> (Cost, usize) {
    let mid = make_divisible((in_chs * expansion) as f64, 8);
    let out = conv_out(side, kernel, stride, kernel / 2);
    let mut c = conv2d(in_chs, mid, 1, 1, false, side, side) + batch_norm(mid);
    c += conv2d(mid, mid, kernel, mid, false, out, out) + batch_norm(mid);
    if se {
        c += se_cost(mid, se_reduced(in_chs));
    }
    c += conv2d(mid, out_chs, 1, 1, false, out, out) + batch_norm(out_chs);
    (c, out)
}

/// timm `DepthwiseSeparableConv` (dw k×k → BN → act → SE → 1×1 → BN, no pw act); its skip
/// is free. Returns the cost and the output side.
fn depthwise_separable_cost(
    in_chs: usize,
    out_chs: usize,
    kernel: usize,
    stride: usize,
    se: bool,
    side: usize,
) -> (Cost, usize) {
    let out = conv_out(side, kernel, stride, kernel / 2);
    let mut c = conv2d(in_chs, in_chs, kernel, in_chs, false, out, out) + batch_norm(in_chs);
    if se {
        c += se_cost(in_chs, se_reduced(in_chs));
    }
    c += conv2d(in_chs, out_chs, 1, 1, false, out, out) + batch_norm(out_chs);
    (c, out)
}

/// Cost of one layer running `op` on a `side × side` input, including the supernet
/// downsample when `opts.residual` is [`ResidualStyle::Supernet`]. Returns the output side.
pub fn layer_cost(
    spec: &MbLayerSpec,
    op: MbOp,
    side: usize,
    opts: &MbconvCostOptions,
) -> (Cost, usize) {
    let (mut c, out) = inverted_residual_cost(
        spec.in_chs,
        spec.out_chs,
        op.kernel(),
        op.expansion(),
        spec.stride,
        opts.se,
        side,
    );
    if let (ResidualStyle::Supernet, Some(Downsample { conv: true, .. })) =
        (opts.residual, spec.downsample)
    {
        // AvgPool(2, 2, ceil_mode) gives ⌈side/2⌉ = the strided conv's output side.
        c += conv2d(spec.in_chs, spec.out_chs, 1, 1, false, out, out) + batch_norm(spec.out_chs);
    }
    (c, out)
}

/// Cost of the fixed stem on `input × input` images; returns the output side.
pub fn stem_cost(input: usize, se: bool) -> (Cost, usize) {
    let side = conv_out(input, 3, 2, 1);
    let conv = conv2d(3, STEM_CHANNELS, 3, 1, false, side, side) + batch_norm(STEM_CHANNELS);
    let (ds, side) = depthwise_separable_cost(STEM_CHANNELS, STEM_OUT_CHANNELS, 3, 1, se, side);
    (conv + ds, side)
}

/// Cost of the head on a `side × side` map of 320 channels: 1×1 conv (no bias) to
/// `features` + BN + SiLU, global average pool, Linear(features → classes) with bias.
pub fn head_cost(side: usize, features: usize, classes: usize) -> Cost {
    conv2d(MBCONV_LAST_BLOCK.out, features, 1, 1, false, side, side)
        + batch_norm(features)
        + linear(features, classes, true)
}

// ---------------------------------------------------------------------------------------------
// Architectures.
// ---------------------------------------------------------------------------------------------

/// One MBConv architecture: the ops of the five searched blocks (2, 4, 4, 4, 4 layers).
///
/// Text form: the five block codes joined by `-`, e.g. `"00-1111-2222-3333-0123"`; parsing
/// also accepts `,`, `:`, `|` or spaces as separators, or 18 bare digits. JSON: the text form;
/// deserialisation also accepts a list of five lists of op indices (`model_encod_list` style).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MbconvArch {
    blocks: [Vec<MbOp>; MBCONV_BLOCKS],
}

impl MbconvArch {
    /// Builds an architecture from five per-block lists of op indices, validating counts and
    /// values.
    pub fn new(blocks: &[Vec<usize>]) -> Result<Self, MbconvError> {
        if blocks.len() != MBCONV_BLOCKS {
            return Err(MbconvError::WrongBlockCount {
                found: blocks.len(),
            });
        }
        let mut out: [Vec<MbOp>; MBCONV_BLOCKS] = Default::default();
        for (block, (ops, slot)) in blocks.iter().zip(out.iter_mut()).enumerate() {
            let expected = MBCONV_BLOCK_LAYERS[block];
            if ops.len() != expected {
                return Err(MbconvError::WrongLayerCount {
                    block,
                    found: ops.len(),
                    expected,
                });
            }
            for (layer, &value) in ops.iter().enumerate() {
                slot.push(MbOp::from_index(value).ok_or(MbconvError::BadOp {
                    block,
                    layer,
                    value: value as u64,
                })?);
            }
        }
        Ok(MbconvArch { blocks: out })
    }

    /// Builds an architecture from five per-block op lists, checking the layer counts.
    pub fn from_ops(blocks: [Vec<MbOp>; MBCONV_BLOCKS]) -> Result<Self, MbconvError> {
        for (block, ops) in blocks.iter().enumerate() {
            let expected = MBCONV_BLOCK_LAYERS[block];
            if ops.len() != expected {
                return Err(MbconvError::WrongLayerCount {
                    block,
                    found: ops.len(),
                    expected,
                });
            }
        }
        Ok(MbconvArch { blocks })
    }

    /// Builds an architecture from the flat 18-op encoding the supernet's `forward_op` uses.
    pub fn from_op_indices(flat: &[usize]) -> Result<Self, MbconvError> {
        if flat.len() != MBCONV_LAYERS {
            return Err(MbconvError::WrongLength { found: flat.len() });
        }
        let mut rest = flat;
        let blocks: Vec<Vec<usize>> = MBCONV_BLOCK_LAYERS
            .iter()
            .map(|&n| {
                let (head, tail) = rest.split_at(n);
                rest = tail;
                head.to_vec()
            })
            .collect();
        Self::new(&blocks)
    }

    /// Every layer running the same op (handy for cost bounds).
    pub fn uniform(op: MbOp) -> Self {
        MbconvArch {
            blocks: MBCONV_BLOCK_LAYERS.map(|n| vec![op; n]),
        }
    }

    /// The ops of every block.
    pub fn blocks(&self) -> &[Vec<MbOp>; MBCONV_BLOCKS] {
        &self.blocks
    }

    /// The ops of one block (panics if `block ≥ 5`).
    pub fn block(&self, block: usize) -> &[MbOp] {
        &self.blocks[block]
    }

    /// Replaces one block's ops, checking the layer count.
    pub fn with_block(mut self, block: usize, ops: Vec<MbOp>) -> Result<Self, MbconvError> {
        let expected = block_layer_count(block)?;
        if ops.len() != expected {
            return Err(MbconvError::WrongLayerCount {
                block,
                found: ops.len(),
                expected,
            });
        }
        self.blocks[block] = ops;
        Ok(self)
    }

    /// The flat 18-op encoding.
    pub fn op_indices(&self) -> Vec<usize> {
        self.blocks.iter().flatten().map(|op| op.index()).collect()
    }

    /// The digit code of one block (the `path_rank_{k}.yml` key).
    pub fn block_code(&self, block: usize) -> String {
        block_code(&self.blocks[block])
    }

    /// Cost of the standalone child network ([`MbconvCostOptions::default`]: SE on, timm skip,
    /// 1280-wide head) on `input × input` images with `classes` outputs.
    pub fn cost(&self, input: usize, classes: usize) -> Cost {
        self.cost_with(input, classes, &MbconvCostOptions::default())
    }

    /// Cost with explicit options: stem + 18 searched layers + the fixed last layer
    /// ([`LAST_LAYER_OP`]) + head. MAdds count convs (SE convs at 1×1) and the classifier.
    pub fn cost_with(&self, input: usize, classes: usize, opts: &MbconvCostOptions) -> Cost {
        let (mut total, mut side) = stem_cost(input, opts.se);
        for (spec, op) in searched_layers().iter().zip(self.blocks.iter().flatten()) {
            let (c, next) = layer_cost(spec, *op, side, opts);
            total += c;
            side = next;
        }
        let (c, side) = layer_cost(&last_layer(), LAST_LAYER_OP, side, opts);
        total + c + head_cost(side, opts.head_features, classes)
    }
}

impl MbconvArch {
    /// An architecture written as data: JSON when the text starts with `[` or `"` (the text
    /// form as a string, or five lists of op indices), else the text form. The one rule of
    /// `bossnas arch` and `bossnas retrain --arch` for the MBConv space.
    pub fn parse_data(text: &str) -> Result<MbconvArch, MbconvError> {
        let t = text.trim();
        if t.starts_with('[') || t.starts_with('"') {
            serde_json::from_str(t).map_err(|e| MbconvError::Json {
                message: e.to_string(),
            })
        } else {
            t.parse()
        }
    }
}

impl fmt::Display for MbconvArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, ops) in self.blocks.iter().enumerate() {
            if i > 0 {
                f.write_str("-")?;
            }
            f.write_str(&block_code(ops))?;
        }
        Ok(())
    }
}

impl FromStr for MbconvArch {
    type Err = MbconvError;

    fn from_str(text: &str) -> Result<Self, MbconvError> {
        let is_sep = |c: char| matches!(c, '-' | ',' | ':' | '|') || c.is_whitespace();
        let parts: Vec<&str> = text
            .trim()
            .split(is_sep)
            .filter(|p| !p.is_empty())
            .collect();
        let codes: Vec<String> = if parts.len() == 1 && parts[0].chars().count() == MBCONV_LAYERS {
            let chars: Vec<char> = parts[0].chars().collect();
            let mut start = 0;
            MBCONV_BLOCK_LAYERS
                .iter()
                .map(|&n| {
                    start += n;
                    chars[start - n..start].iter().collect()
                })
                .collect()
        } else {
            parts.iter().map(|p| p.to_string()).collect()
        };
        if codes.len() != MBCONV_BLOCKS {
            return Err(MbconvError::WrongBlockCount { found: codes.len() });
        }
        let mut blocks: [Vec<MbOp>; MBCONV_BLOCKS] = Default::default();
        for (block, (code, slot)) in codes.iter().zip(blocks.iter_mut()).enumerate() {
            *slot = parse_block_code(block, code)?;
        }
        Ok(MbconvArch { blocks })
    }
}

impl Serialize for MbconvArch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MbconvArch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            Blocks(Vec<Vec<usize>>),
        }
        match Repr::deserialize(d)? {
            Repr::Text(t) => t.parse(),
            Repr::Blocks(b) => MbconvArch::new(&b),
        }
        .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn populations() {
        assert_eq!(block_population_size(0).unwrap(), 16);
        for b in 1..5 {
            assert_eq!(block_population_size(b).unwrap(), 256);
        }
        let total: u64 = (0..5)
            .map(|b| block_population_size(b).unwrap() as u64)
            .product();
        assert_eq!(total, MBCONV_SPACE_SIZE);
        assert_eq!(MBCONV_SPACE_SIZE, 4u64.pow(18));
        assert_eq!(MBCONV_BLOCK_LAYERS.iter().sum::<usize>(), MBCONV_LAYERS);
        let b4: Vec<_> = block_population(4).unwrap().collect();
        assert_eq!(b4.len(), 256);
        assert_eq!(block_code(&b4[0]), "0000");
        assert_eq!(block_code(&b4[20]), "0110");
        assert_eq!(block_code(&b4[255]), "3333");
        let mut codes: Vec<_> = b4.iter().map(|o| block_code(o)).collect();
        codes.dedup();
        assert!(
            codes.windows(2).all(|w| w[0] < w[1]),
            "first layer slowest, all distinct"
        );
        assert!(block_population(5).is_err());
    }

    #[test]
    fn layer_geometry_every_layer_has_a_residual() {
        let layers = searched_layers();
        assert_eq!(layers.len(), 18);
        let first: Vec<_> = layers
            .iter()
            .filter(|s| s.layer == 0)
            .map(|s| (s.in_chs, s.out_chs, s.stride))
            .collect();
        assert_eq!(
            first,
            vec![
                (16, 24, 2),
                (24, 40, 2),
                (40, 80, 2),
                (80, 112, 1),
                (112, 192, 2)
            ]
        );
        for s in &layers {
            // Shape-changing layers carry a projection; the rest keep shape (identity).
            let changes = s.in_chs != s.out_chs || s.stride != 1;
            assert_eq!(s.downsample.is_some(), changes, "{s:?}");
            assert_eq!(changes, s.layer == 0);
        }
        assert_eq!(
            layers[0].downsample,
            Some(Downsample {
                avg_pool: true,
                conv: true
            })
        );
        assert_eq!(
            layers[10].downsample,
            Some(Downsample {
                avg_pool: false,
                conv: true
            })
        );
        assert_eq!(
            last_layer().downsample,
            Some(Downsample {
                avg_pool: false,
                conv: true
            })
        );
        assert_eq!((last_layer().in_chs, last_layer().out_chs), (192, 320));
        assert_eq!(make_divisible((16 * 6) as f64, 8), 96);
        assert_eq!(make_divisible((112 * 3) as f64, 8), 336);
    }

    #[test]
    fn fair_paths_use_every_op_once() {
        let perms = vec![
            vec![2, 0, 3, 1],
            vec![1, 3, 0, 2],
            vec![0, 1, 2, 3],
            vec![3, 2, 1, 0],
        ];
        let paths = block_fair_paths(1, &perms).unwrap();
        assert_eq!(paths.len(), 4);
        for layer in 0..4 {
            let mut seen: Vec<_> = paths.iter().map(|p| p[layer].index()).collect();
            seen.sort();
            assert_eq!(seen, vec![0, 1, 2, 3]);
        }
        assert_eq!(block_code(&paths[0]), "2103");
        // A closure-driven shuffle (rotation here) gives the same guarantee for all 18 layers.
        let mut k = 0;
        let flat = fair_paths_with(18, 4, |s| {
            s.rotate_left(k % 4);
            k += 1;
        })
        .unwrap();
        let perms: Vec<Vec<usize>> = (0..18)
            .map(|l| flat.iter().map(|p| p[l]).collect())
            .collect();
        let archs = arch_fair_paths(&perms).unwrap();
        assert_eq!(archs.len(), 4);
        for l in 0..18 {
            let mut seen: Vec<_> = archs.iter().map(|a| a.op_indices()[l]).collect();
            seen.sort();
            assert_eq!(seen, vec![0, 1, 2, 3]);
        }
        let e = block_fair_paths(0, &[vec![0, 1, 2, 3], vec![0, 1, 1, 3]]).unwrap_err();
        assert!(
            e.to_string().contains("layer 1") && e.to_string().contains("not a permutation"),
            "{e}"
        );
        let e = block_fair_paths(0, &[vec![0, 1, 2, 3]]).unwrap_err();
        assert!(
            e.to_string().contains("block 0 has 1 layer(s); expected 2"),
            "{e}"
        );
    }

    #[test]
    fn text_and_json_round_trip() {
        let a: MbconvArch = "00-1111-2222-3333-0123".parse().unwrap();
        assert_eq!(a.to_string(), "00-1111-2222-3333-0123");
        assert_eq!(
            a.block(4),
            &[MbOp::Mb6K3, MbOp::Mb6K5, MbOp::Mb3K3, MbOp::Mb3K5]
        );
        assert_eq!(a.block_code(1), "1111");
        assert_eq!("00,1111,2222,3333,0123".parse::<MbconvArch>().unwrap(), a);
        assert_eq!("001111222233330123".parse::<MbconvArch>().unwrap(), a);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, "\"00-1111-2222-3333-0123\"");
        assert_eq!(serde_json::from_str::<MbconvArch>(&json).unwrap(), a);
        let lists = "[[0,0],[1,1,1,1],[2,2,2,2],[3,3,3,3],[0,1,2,3]]";
        assert_eq!(serde_json::from_str::<MbconvArch>(lists).unwrap(), a);
        assert_eq!(MbconvArch::from_op_indices(&a.op_indices()).unwrap(), a);
        assert_eq!(
            serde_json::to_string(&MbOp::Mb3K5).unwrap(),
            "\"MB3_5x5_se0.25\""
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let msg = |t: &str| t.parse::<MbconvArch>().unwrap_err().to_string();
        let m = msg("00-1111-2222-3333");
        assert!(m.contains("4 blocks") && m.contains("expected 5"), "{m}");
        let m = msg("00-1111-222-3333-0123");
        assert!(m.contains("block 2 has 3 layer(s); expected 4"), "{m}");
        let m = msg("00-1111-2222-3343-0123");
        assert!(
            m.contains("block 3 layer 2: op 4") && m.contains("3 (MB3_5x5_se0.25)"),
            "{m}"
        );
        let m = msg("00-1x11-2222-3333-0123");
        assert!(m.contains("block 1 layer 1") && m.contains("'x'"), "{m}");
        let e = MbconvArch::new(&[
            vec![0, 0],
            vec![1, 1, 1, 1],
            vec![2, 2, 2, 2],
            vec![3, 3, 3, 3],
            vec![0, 1, 9, 3],
        ])
        .unwrap_err();
        assert_eq!(
            e,
            MbconvError::BadOp {
                block: 4,
                layer: 2,
                value: 9
            }
        );
        assert!(
            MbconvArch::from_op_indices(&[0; 17])
                .unwrap_err()
                .to_string()
                .contains("17 ops")
        );
        assert!(serde_json::from_str::<MbconvArch>("[[0],[0]]").is_err());
        // The data rule: text, a JSON string or JSON lists give the same value.
        let a = MbconvArch::parse_data("00-1111-2222-3333-0123").unwrap();
        assert_eq!(
            MbconvArch::parse_data(" \"00-1111-2222-3333-0123\" ").unwrap(),
            a
        );
        assert_eq!(
            MbconvArch::parse_data("[[0,0],[1,1,1,1],[2,2,2,2],[3,3,3,3],[0,1,2,3]]").unwrap(),
            a
        );
        let e = MbconvArch::parse_data("[[0],[0]]").unwrap_err().to_string();
        assert!(e.starts_with("MBConv architecture JSON:"), "{e}");
    }

    /// EfficientNet-B0 built from the same layer counters: timm's `efficientnet_b0` has
    /// 5,288,548 parameters; its MAdds (≈ 0.39 G at 224) are checked for range.
    #[test]
    fn efficientnet_b0_sanity() {
        // (expansion, kernel, stride, out, repeats); the first stage is DS.
        let stages = [
            (6, 3, 2, 24, 2),
            (6, 5, 2, 40, 2),
            (6, 3, 2, 80, 3),
            (6, 5, 1, 112, 3),
            (6, 5, 2, 192, 4),
            (6, 3, 1, 320, 1),
        ];
        let (mut total, mut side) = stem_cost(224, true);
        let mut c_in = STEM_OUT_CHANNELS;
        for (e, k, s, out, n) in stages {
            for i in 0..n {
                let (c, next) =
                    inverted_residual_cost(c_in, out, k, e, if i == 0 { s } else { 1 }, true, side);
                total += c;
                side = next;
                c_in = out;
            }
        }
        total += head_cost(side, 1280, 1000);
        assert_eq!(side, 7);
        assert_eq!(total.params, 5_288_548);
        assert!(
            (385_000_000..400_000_000).contains(&total.madds),
            "{}",
            total.madds
        );
    }

    #[test]
    fn cost_bounds_and_options() {
        let lo = MbconvArch::uniform(MbOp::Mb3K3).cost(224, 1000);
        let hi = MbconvArch::uniform(MbOp::Mb6K5).cost(224, 1000);
        let mixed: MbconvArch = "00-1111-2222-3333-0123".parse().unwrap();
        let mid = mixed.cost(224, 1000);
        assert!(lo.madds < mid.madds && mid.madds < hi.madds);
        // BossNet-M2 (SE) ≈ 403 M and M1 (w/o SE) ≈ 475 M MAdds must be reachable.
        assert!(
            lo.madds < 403_000_000 && 475_000_000 < hi.madds,
            "{lo:?} {hi:?}"
        );
        let no_se = MbconvCostOptions {
            se: false,
            ..Default::default()
        };
        assert!(mixed.cost_with(224, 1000, &no_se).params < mid.params);
        let supernet = MbconvCostOptions {
            residual: ResidualStyle::Supernet,
            ..Default::default()
        };
        // Projections on the five first layers and the last layer: 1×1 conv + BN each.
        let proj: u64 = [
            (16, 24),
            (24, 40),
            (40, 80),
            (80, 112),
            (112, 192),
            (192, 320),
        ]
        .iter()
        .map(|&(i, o)| (i * o + 2 * o) as u64)
        .sum();
        assert_eq!(
            mixed.cost_with(224, 1000, &supernet).params,
            mid.params + proj
        );
        // Only the classifier depends on the class count.
        assert_eq!(mixed.cost(224, 10).params + 990 * 1281, mid.params);
    }
}
