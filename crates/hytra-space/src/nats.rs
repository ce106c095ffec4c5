//! The NATS-Bench size search space (SSS): five channel widths, each in {8, 16, …, 64}.
//!
//! Network (NATS-Bench `DynamicShapeTinyNet`, one cell per stage): stem conv3×3 (3→c0) + BN;
//! cell(c0→c0); ResBlock(c0→c1, stride 2); cell(c1→c2); ResBlock(c2→c3, stride 2);
//! cell(c3→c4); BN + ReLU; global average pool; Linear(c4→classes).

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::cost::{Cost, batch_norm, conv_out, conv2d, linear};

/// The eight candidate widths of every NATS-SSS layer. Op index `i` ↔ width `8·(i+1)`.
pub const NATS_WIDTHS: [u16; 8] = [8, 16, 24, 32, 40, 48, 56, 64];
/// Number of width layers.
pub const NATS_LAYERS: usize = 5;
/// Number of architectures: 8⁵.
pub const NATS_SIZE: usize = 32_768;

/// Errors raised while parsing or validating a NATS-SSS architecture.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NatsError {
    #[error(
        "NATS-SSS architecture {text:?} has {found} widths; expected 5 separated by ':' (e.g. 64:40:48:64:56)"
    )]
    WrongLength { text: String, found: usize },
    #[error(
        "NATS-SSS layer {layer}: {value:?} is not an integer width; allowed widths are 8, 16, 24, 32, 40, 48, 56, 64"
    )]
    NotANumber { layer: usize, value: String },
    #[error(
        "NATS-SSS layer {layer}: width {value} is not allowed; allowed widths are 8, 16, 24, 32, 40, 48, 56, 64"
    )]
    BadWidth { layer: usize, value: u64 },
    #[error("NATS-SSS index {0} is out of range; indices run from 0 to 32767")]
    BadIndex(u64),
    #[error("NATS-SSS {split} split has blocks 0..{blocks}; block {block} does not exist")]
    BadBlock {
        split: NatsSplit,
        block: usize,
        blocks: usize,
    },
    #[error("NATS-SSS {split} block {block} has {expected} layer(s); got {found} width indices")]
    WrongBlockLength {
        split: NatsSplit,
        block: usize,
        expected: usize,
        found: usize,
    },
    #[error("NATS-SSS {split} split has {expected} blocks; got {found} per-block slices")]
    WrongBlockCount {
        split: NatsSplit,
        expected: usize,
        found: usize,
    },
    #[error(
        "NATS-SSS block code {code:?}: character {found:?} at position {position} is not a width index; allowed digits are 0..7 (width = 8·(digit+1))"
    )]
    BadBlockCode {
        code: String,
        position: usize,
        found: char,
    },
    #[error(
        "unknown NATS-SSS split {0:?}; expected \"cifar10\" (blocks [2, 2, 1]) or \"cifar100\" (blocks [2, 1, 2])"
    )]
    BadSplit(String),
    #[error(transparent)]
    FairPath(#[from] crate::mbconv::FairPathError),
}

/// One NATS-SSS architecture: the five widths `c0..c4`.
///
/// Serialises as its string form `"c0:c1:c2:c3:c4"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NatsArch {
    widths: [u16; NATS_LAYERS],
}

impl NatsArch {
    /// Builds an architecture from five widths, validating each.
    pub fn new(widths: [u16; NATS_LAYERS]) -> Result<Self, NatsError> {
        for (layer, &w) in widths.iter().enumerate() {
            if !NATS_WIDTHS.contains(&w) {
                return Err(NatsError::BadWidth {
                    layer,
                    value: w as u64,
                });
            }
        }
        Ok(Self { widths })
    }

    /// Builds an architecture from five op indices (0..8, width = 8·(i+1)).
    pub fn from_op_indices(ops: [usize; NATS_LAYERS]) -> Result<Self, NatsError> {
        let mut widths = [0u16; NATS_LAYERS];
        for (layer, &op) in ops.iter().enumerate() {
            if op >= NATS_WIDTHS.len() {
                return Err(NatsError::BadWidth {
                    layer,
                    value: 8 * (op as u64 + 1),
                });
            }
            widths[layer] = NATS_WIDTHS[op];
        }
        Ok(Self { widths })
    }

    /// The five widths.
    pub fn widths(&self) -> [u16; NATS_LAYERS] {
        self.widths
    }

    /// The five op indices (width / 8 − 1).
    pub fn op_indices(&self) -> [usize; NATS_LAYERS] {
        self.widths.map(|w| (w / 8 - 1) as usize)
    }

    /// NATS-Bench index: itertools-product order with the last layer fastest,
    /// `Σ_k (c_k/8 − 1)·8^(4−k)`; `8:8:8:8:8` is 0 and `64:64:64:64:64` is 32767.
    pub fn index(&self) -> usize {
        self.op_indices().iter().fold(0, |acc, &i| acc * 8 + i)
    }

    /// Inverse of [`NatsArch::index`].
    pub fn from_index(index: usize) -> Result<Self, NatsError> {
        if index >= NATS_SIZE {
            return Err(NatsError::BadIndex(index as u64));
        }
        let mut ops = [0usize; NATS_LAYERS];
        let mut rest = index;
        for slot in ops.iter_mut().rev() {
            *slot = rest % 8;
            rest /= 8;
        }
        Self::from_op_indices(ops)
    }

    /// All 32,768 architectures in NATS-Bench index order.
    pub fn all() -> impl Iterator<Item = NatsArch> {
        (0..NATS_SIZE).map(|i| Self::from_index(i).expect("index in range"))
    }
}

impl fmt::Display for NatsArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.widths;
        write!(f, "{}:{}:{}:{}:{}", w[0], w[1], w[2], w[3], w[4])
    }
}

impl FromStr for NatsArch {
    type Err = NatsError;

    fn from_str(text: &str) -> Result<Self, NatsError> {
        let parts: Vec<&str> = text.trim().split(':').collect();
        if parts.len() != NATS_LAYERS {
            return Err(NatsError::WrongLength {
                text: text.to_string(),
                found: parts.len(),
            });
        }
        let mut widths = [0u16; NATS_LAYERS];
        for (layer, part) in parts.iter().enumerate() {
            let value: u64 = part.trim().parse().map_err(|_| NatsError::NotANumber {
                layer,
                value: part.to_string(),
            })?;
            if !NATS_WIDTHS.iter().any(|&w| w as u64 == value) {
                return Err(NatsError::BadWidth { layer, value });
            }
            widths[layer] = value as u16;
        }
        Ok(Self { widths })
    }
}

impl Serialize for NatsArch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NatsArch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// Standalone-network cost (NATS-Bench `DynamicShapeTinyNet`).
// ---------------------------------------------------------------------------------------------

/// `ReLU → Conv k×k (no bias) → BN`, xautodl's `ReLUConvBN` with `affine=True` (the conv has
/// a bias only when the BN is not affine). Returns the cost and the output side.
fn relu_conv_bn(
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    side: usize,
) -> (Cost, usize) {
    let out = conv_out(side, kernel, stride, kernel / 2);
    (
        conv2d(c_in, c_out, kernel, 1, false, out, out) + batch_norm(c_out),
        out,
    )
}

/// xautodl `InferCell` with the fixed SSS topology
/// `|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|`.
///
/// Edges leaving node 0 map `c_in → c_out`, the others `c_out → c_out`. The skip edge is an
/// identity when the widths agree and otherwise `FactorizedReduce(stride 1)` = ReLU → 1×1 conv
/// (no bias) → BN, which is why unequal neighbouring widths cost a little extra.
fn infer_cell_cost(c_in: usize, c_out: usize, side: usize) -> Cost {
    let from_input = relu_conv_bn(c_in, c_out, 3, 1, side).0;
    let inner = relu_conv_bn(c_out, c_out, 3, 1, side).0;
    let skip = if c_in == c_out {
        Cost::default()
    } else {
        conv2d(c_in, c_out, 1, 1, false, side, side) + batch_norm(c_out)
    };
    // n1 = conv(n0); n2 = conv(n0) + conv(n1); n3 = skip(n0) + conv(n1) + conv(n2).
    from_input + from_input + skip + inner + inner + inner
}

/// xautodl `ResNetBasicblock(c_in, c_out, stride 2)`: ReLUConvBN 3×3 s2 → ReLUConvBN 3×3, and
/// a residual AvgPool2d(2, 2) → Conv1×1 (no bias, **no BN**). Returns the cost and output side.
fn resnet_block_cost(c_in: usize, c_out: usize, side: usize) -> (Cost, usize) {
    let (a, out) = relu_conv_bn(c_in, c_out, 3, 2, side);
    let (b, _) = relu_conv_bn(c_out, c_out, 3, 1, out);
    let pooled = conv_out(side, 2, 2, 0);
    (
        a + b + conv2d(c_in, c_out, 1, 1, false, pooled, pooled),
        out,
    )
}

impl NatsArch {
    /// Parameters and MAdds of the standalone NATS-Bench SSS network for `input × input`
    /// images and `classes` outputs (CIFAR: `cost(32, 10)` / `cost(32, 100)`).
    ///
    /// Follows xautodl `DynamicShapeTinyNet` exactly (spec §6.2): stem Conv3×3 (no bias) + BN;
    /// cell(c0→c0); ResBlock(c0→c1, s2); cell(c1→c2); ResBlock(c2→c3, s2); cell(c3→c4);
    /// BN + ReLU; global average pool; Linear(c4→classes) with bias. MAdds count convolutions
    /// and the classifier only (see [`crate::cost`]). At 10 classes this reproduces the
    /// NATS-Bench parameter counts 11,714 (`8:8:8:8:8`), 107,826 (`8:8:16:40:40`) and 713,674
    /// (`64:64:64:64:64`). Inputs should be divisible by 4; otherwise the residual
    /// average pool and the strided conv disagree on size, as they would in PyTorch.
    pub fn cost(&self, input: usize, classes: usize) -> Cost {
        let widths = self.widths.map(usize::from);
        let layers: Cost = layer_costs(widths, input).into_iter().sum();
        layers + batch_norm(widths[4]) + linear(widths[4], classes, true)
    }
}

/// Cost of each of the five NATS-SSS layers for any widths (not only the NATS-Bench ones:
/// the CPU proxy supernets use a fraction of them) on `input × input` images:
/// `L0` = stem Conv3×3 + BN + cell(c0→c0), `L1` = ResBlock(c0→c1, s2), `L2` = cell(c1→c2),
/// `L3` = ResBlock(c2→c3, s2), `L4` = cell(c3→c4). The head (BN, pool, classifier) is not
/// part of any layer. [`NatsArch::cost`] is their sum plus the head.
pub fn layer_costs(widths: [usize; NATS_LAYERS], input: usize) -> [Cost; NATS_LAYERS] {
    let [c0, c1, c2, c3, c4] = widths;
    let mut side = input;
    let l0 =
        conv2d(3, c0, 3, 1, false, side, side) + batch_norm(c0) + infer_cell_cost(c0, c0, side);
    let (l1, next) = resnet_block_cost(c0, c1, side);
    side = next;
    let l2 = infer_cell_cost(c1, c2, side);
    let (l3, next) = resnet_block_cost(c2, c3, side);
    side = next;
    let l4 = infer_cell_cost(c3, c4, side);
    [l0, l1, l2, l3, l4]
}

// ---------------------------------------------------------------------------------------------
// BossNAS block splits of the five NATS layers.
// ---------------------------------------------------------------------------------------------

/// How BossNAS cuts the five NATS-SSS layers into blocks that are trained and rated
/// separately (`SupernetNATS._op_layers_list`). The split depends on the dataset, so it is
/// data rather than a constant.
///
/// Serialises as `"cifar10"` / `"cifar100"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NatsSplit {
    /// Layers per block `[2, 2, 1]`: `[L0, L1] [L2, L3] [L4]`; populations 64, 64, 8.
    Cifar10,
    /// Layers per block `[2, 1, 2]`: `[L0, L1] [L2] [L3, L4]`; populations 64, 8, 64.
    Cifar100,
}

/// Number of blocks in either split.
pub const NATS_BLOCKS: usize = 3;

impl NatsSplit {
    /// Both splits.
    pub const ALL: [NatsSplit; 2] = [NatsSplit::Cifar10, NatsSplit::Cifar100];

    /// Layers in each block.
    pub const fn block_layers(self) -> [usize; NATS_BLOCKS] {
        match self {
            NatsSplit::Cifar10 => [2, 2, 1],
            NatsSplit::Cifar100 => [2, 1, 2],
        }
    }

    /// The layer range (into the five widths) covered by each block.
    pub fn block_ranges(self) -> [Range<usize>; NATS_BLOCKS] {
        let l = self.block_layers();
        [0..l[0], l[0]..l[0] + l[1], l[0] + l[1]..NATS_LAYERS]
    }

    /// The layer range of one block.
    pub fn block_range(self, block: usize) -> Result<Range<usize>, NatsError> {
        self.check_block(block)?;
        Ok(self.block_ranges()[block].clone())
    }

    /// Candidates in each block: `8^layers` (64/64/8 for CIFAR-10, 64/8/64 for CIFAR-100).
    pub fn populations(self) -> [usize; NATS_BLOCKS] {
        self.block_layers().map(|l| NATS_WIDTHS.len().pow(l as u32))
    }

    /// Candidates in one block.
    pub fn population(self, block: usize) -> Result<usize, NatsError> {
        self.check_block(block)?;
        Ok(self.populations()[block])
    }

    /// The width indices (0..8) of `arch` that belong to `block`.
    pub fn block_ops(self, arch: &NatsArch, block: usize) -> Result<Vec<usize>, NatsError> {
        Ok(arch.op_indices()[self.block_range(block)?].to_vec())
    }

    /// The widths of `arch` that belong to `block`.
    pub fn block_widths(self, arch: &NatsArch, block: usize) -> Result<Vec<u16>, NatsError> {
        Ok(arch.widths()[self.block_range(block)?].to_vec())
    }

    /// The width index entering `block`: the previous block's last op (the supernet's
    /// `pre_op`), or `None` for block 0, whose stem takes the block's own first width.
    pub fn block_input_op(self, arch: &NatsArch, block: usize) -> Result<Option<usize>, NatsError> {
        let range = self.block_range(block)?;
        Ok(range
            .start
            .checked_sub(1)
            .map(|layer| arch.op_indices()[layer]))
    }

    /// The block's digit code as in the shipped `path_rank_*.yml` files, e.g. `"74"` for
    /// widths 64, 40 in block 0.
    pub fn block_code(self, arch: &NatsArch, block: usize) -> Result<String, NatsError> {
        Ok(self
            .block_ops(arch, block)?
            .iter()
            .map(|&op| char::from(b'0' + op as u8))
            .collect())
    }

    /// Parses a block code (one digit 0..7 per layer of `block`) into width indices.
    pub fn parse_block_code(self, block: usize, code: &str) -> Result<Vec<usize>, NatsError> {
        let expected = self.block_range(block)?.len();
        let mut ops = Vec::with_capacity(expected);
        for (position, found) in code.trim().chars().enumerate() {
            match found.to_digit(10) {
                Some(d) if (d as usize) < NATS_WIDTHS.len() => ops.push(d as usize),
                _ => {
                    return Err(NatsError::BadBlockCode {
                        code: code.to_string(),
                        position,
                        found,
                    });
                }
            }
        }
        if ops.len() != expected {
            return Err(NatsError::WrongBlockLength {
                split: self,
                block,
                expected,
                found: ops.len(),
            });
        }
        Ok(ops)
    }

    /// Every candidate of `block` as width indices, in NATS-Bench index order restricted to
    /// the block: the block's first layer varies slowest, so candidate `i` has ops equal to the
    /// base-8 digits of `i` (e.g. block 0 candidate 60 = `[7, 4]` = `64:40`).
    pub fn block_population(
        self,
        block: usize,
    ) -> Result<impl Iterator<Item = Vec<usize>>, NatsError> {
        let layers = self.block_range(block)?.len();
        let n = NATS_WIDTHS.len();
        Ok((0..n.pow(layers as u32)).map(move |mut i| {
            let mut ops = vec![0; layers];
            for slot in ops.iter_mut().rev() {
                *slot = i % n;
                i /= n;
            }
            ops
        }))
    }

    /// Rebuilds a full architecture from one width-index slice per block.
    pub fn assemble(self, blocks: &[Vec<usize>]) -> Result<NatsArch, NatsError> {
        if blocks.len() != NATS_BLOCKS {
            return Err(NatsError::WrongBlockCount {
                split: self,
                expected: NATS_BLOCKS,
                found: blocks.len(),
            });
        }
        let mut ops = [0usize; NATS_LAYERS];
        for (block, (range, slice)) in self.block_ranges().into_iter().zip(blocks).enumerate() {
            if slice.len() != range.len() {
                return Err(NatsError::WrongBlockLength {
                    split: self,
                    block,
                    expected: range.len(),
                    found: slice.len(),
                });
            }
            ops[range].copy_from_slice(slice);
        }
        NatsArch::from_op_indices(ops)
    }

    /// The 8 strictly fair paths of `block` (BossNAS trains all 8 per step): given one
    /// permutation of `0..8` per layer of the block, path `j` takes `permutations[l][j]` at
    /// layer `l`, so every width of every layer is used exactly once per step. Randomness stays
    /// with the caller (see [`crate::mbconv::fair_paths`]).
    pub fn fair_paths(
        self,
        block: usize,
        permutations: &[Vec<usize>],
    ) -> Result<Vec<Vec<usize>>, NatsError> {
        let expected = self.block_range(block)?.len();
        if permutations.len() != expected {
            return Err(NatsError::WrongBlockLength {
                split: self,
                block,
                expected,
                found: permutations.len(),
            });
        }
        Ok(crate::mbconv::fair_paths(permutations, NATS_WIDTHS.len())?)
    }

    fn check_block(self, block: usize) -> Result<(), NatsError> {
        if block < NATS_BLOCKS {
            Ok(())
        } else {
            Err(NatsError::BadBlock {
                split: self,
                block,
                blocks: NATS_BLOCKS,
            })
        }
    }
}

impl fmt::Display for NatsSplit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NatsSplit::Cifar10 => "cifar10",
            NatsSplit::Cifar100 => "cifar100",
        })
    }
}

impl FromStr for NatsSplit {
    type Err = NatsError;

    fn from_str(text: &str) -> Result<Self, NatsError> {
        match text.trim().to_ascii_lowercase().replace('-', "").as_str() {
            "cifar10" | "c10" => Ok(NatsSplit::Cifar10),
            "cifar100" | "c100" => Ok(NatsSplit::Cifar100),
            _ => Err(NatsError::BadSplit(text.to_string())),
        }
    }
}

#[cfg(test)]
mod cost_and_split_tests {
    use super::*;

    fn arch(text: &str) -> NatsArch {
        text.parse().unwrap()
    }

    #[test]
    fn reference_parameter_counts() {
        // NATS-Bench reference counts (all at 10 classes).
        assert_eq!(arch("8:8:8:8:8").cost(32, 10).params, 11_714);
        assert_eq!(arch("8:8:16:40:40").cost(32, 10).params, 107_826);
        assert_eq!(arch("64:64:64:64:64").cost(32, 10).params, 713_674);
        // Only the classifier depends on the class count: +c4·Δclasses + Δclasses.
        assert_eq!(arch("8:8:16:40:40").cost(32, 100).params, 107_826 + 90 * 41);
        assert_eq!(
            arch("64:64:64:64:64").cost(32, 120).params,
            713_674 + 110 * 65
        );
    }

    #[test]
    fn madds_by_hand() {
        // 8:8:8:8:8 at 32×32, worked out layer by layer:
        // stem 216·1024; cell0 5·576·1024; res1 576·256·2 + 64·256; cell2 5·576·256;
        // res3 576·64·2 + 64·64; cell4 5·576·64; fc 80.
        let expected = 216 * 1024
            + 5 * 576 * 1024
            + (576 * 256 * 2 + 64 * 256)
            + 5 * 576 * 256
            + (576 * 64 * 2 + 64 * 64)
            + 5 * 576 * 64
            + 80;
        assert_eq!(arch("8:8:8:8:8").cost(32, 10).madds, expected);
        // Monotone in every width.
        let small = arch("64:64:64:64:56").cost(32, 10);
        let big = arch("64:64:64:64:64").cost(32, 10);
        assert!(small.madds < big.madds && small.params < big.params);
    }

    #[test]
    fn splits_and_populations() {
        assert_eq!(NatsSplit::Cifar10.block_layers(), [2, 2, 1]);
        assert_eq!(NatsSplit::Cifar100.block_layers(), [2, 1, 2]);
        assert_eq!(NatsSplit::Cifar10.populations(), [64, 64, 8]);
        assert_eq!(NatsSplit::Cifar100.populations(), [64, 8, 64]);
        for split in NatsSplit::ALL {
            let total: usize = split.populations().iter().product();
            assert_eq!(total, NATS_SIZE);
            for block in 0..NATS_BLOCKS {
                let all: Vec<_> = split.block_population(block).unwrap().collect();
                assert_eq!(all.len(), split.population(block).unwrap());
                let mut sorted = all.clone();
                sorted.sort();
                sorted.dedup();
                assert_eq!(
                    sorted, all,
                    "population is sorted (first layer slowest) and unique"
                );
            }
        }
        let a = arch("64:40:48:64:56");
        let s = NatsSplit::Cifar10;
        assert_eq!(s.block_code(&a, 0).unwrap(), "74");
        assert_eq!(s.block_code(&a, 1).unwrap(), "57");
        assert_eq!(s.block_code(&a, 2).unwrap(), "6");
        assert_eq!(s.block_population(0).unwrap().nth(60).unwrap(), vec![7, 4]);
        assert_eq!(s.block_widths(&a, 1).unwrap(), vec![48, 64]);
        assert_eq!(s.block_input_op(&a, 0).unwrap(), None);
        assert_eq!(s.block_input_op(&a, 2).unwrap(), Some(7));
        assert_eq!(
            NatsSplit::Cifar100.block_widths(&a, 2).unwrap(),
            vec![64, 56]
        );
        let blocks: Vec<_> = (0..3)
            .map(|b| {
                s.parse_block_code(b, &s.block_code(&a, b).unwrap())
                    .unwrap()
            })
            .collect();
        assert_eq!(s.assemble(&blocks).unwrap(), a);
        let c100: Vec<_> = (0..3)
            .map(|b| NatsSplit::Cifar100.block_ops(&a, b).unwrap())
            .collect();
        assert_eq!(NatsSplit::Cifar100.assemble(&c100).unwrap(), a);
    }

    #[test]
    fn split_serde_and_errors() {
        assert_eq!(
            serde_json::to_string(&NatsSplit::Cifar100).unwrap(),
            "\"cifar100\""
        );
        assert_eq!(
            serde_json::from_str::<NatsSplit>("\"cifar10\"").unwrap(),
            NatsSplit::Cifar10
        );
        assert_eq!(
            "CIFAR-100".parse::<NatsSplit>().unwrap(),
            NatsSplit::Cifar100
        );
        let e = "imagenet".parse::<NatsSplit>().unwrap_err();
        assert!(
            e.to_string().contains("imagenet") && e.to_string().contains("cifar100"),
            "{e}"
        );
        let e = NatsSplit::Cifar10.population(3).unwrap_err();
        assert!(e.to_string().contains("block 3"), "{e}");
        let e = NatsSplit::Cifar10.parse_block_code(0, "78").unwrap_err();
        assert!(
            e.to_string().contains("'8'") && e.to_string().contains("0..7"),
            "{e}"
        );
        let e = NatsSplit::Cifar100.parse_block_code(1, "12").unwrap_err();
        assert!(e.to_string().contains("block 1 has 1 layer"), "{e}");
        let e = NatsSplit::Cifar10
            .assemble(&[vec![0, 0], vec![0]])
            .unwrap_err();
        assert!(e.to_string().contains("3 blocks"), "{e}");
    }

    #[test]
    fn nats_fair_paths_cover_every_width_once() {
        let perms = vec![vec![3, 1, 4, 0, 5, 7, 2, 6], vec![0, 1, 2, 3, 4, 5, 6, 7]];
        let paths = NatsSplit::Cifar10.fair_paths(0, &perms).unwrap();
        assert_eq!(paths.len(), 8);
        for layer in 0..2 {
            let mut seen: Vec<_> = paths.iter().map(|p| p[layer]).collect();
            seen.sort();
            assert_eq!(seen, (0..8).collect::<Vec<_>>());
        }
        assert_eq!(paths[0], vec![3, 0]);
        assert!(NatsSplit::Cifar10.fair_paths(2, &perms).is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_order_matches_nats_bench() {
        assert_eq!("8:8:8:8:8".parse::<NatsArch>().unwrap().index(), 0);
        assert_eq!(
            "64:64:64:64:64".parse::<NatsArch>().unwrap().index(),
            32_767
        );
        assert_eq!("8:8:8:8:16".parse::<NatsArch>().unwrap().index(), 1);
        assert_eq!("16:8:8:8:8".parse::<NatsArch>().unwrap().index(), 4096);
        for i in [0, 1, 777, 4096, 32_767] {
            assert_eq!(NatsArch::from_index(i).unwrap().index(), i);
        }
        assert_eq!(NatsArch::all().count(), NATS_SIZE);
    }

    #[test]
    fn string_and_json_round_trip() {
        let a: NatsArch = "64:40:48:64:56".parse().unwrap();
        assert_eq!(a.to_string(), "64:40:48:64:56");
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, "\"64:40:48:64:56\"");
        assert_eq!(serde_json::from_str::<NatsArch>(&json).unwrap(), a);
    }

    #[test]
    fn bad_inputs_name_the_problem() {
        let e = "64:40:48:64".parse::<NatsArch>().unwrap_err();
        assert!(e.to_string().contains("has 4 widths"), "{e}");
        let e = "64:40:50:64:56".parse::<NatsArch>().unwrap_err();
        assert_eq!(
            e,
            NatsError::BadWidth {
                layer: 2,
                value: 50
            }
        );
        assert!(
            e.to_string().contains("layer 2") && e.to_string().contains("50"),
            "{e}"
        );
        let e = "64:x:48:64:56".parse::<NatsArch>().unwrap_err();
        assert!(matches!(e, NatsError::NotANumber { layer: 1, .. }));
        assert!(NatsArch::from_index(32_768).is_err());
        assert!(serde_json::from_str::<NatsArch>("\"1:2:3\"").is_err());
    }
}
