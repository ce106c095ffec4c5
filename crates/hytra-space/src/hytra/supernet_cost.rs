//! Module layout and costs of the official HyTra supernet (search-time ops, spec §1.3–1.4,
//! §2.2–2.5).
//!
//! Layout: stem conv7×7/2 (3→64) + BN + ReLU + maxpool. Block b instantiates, at every layer,
//! the ops of the scales `depth < [4, 3, 2, 2][b]` (6, 5, 4, 4 ops). An op at scale s outputs
//! `channels(s)` and holds
//! * a stride-1 branch taking `in = channels(s)` (block 0 layer 0: `channels(s)/4`, fed by a
//!   stem adapter), with a 1×1 conv + BN + ReLU shortcut when `in ≠ channels(s)`;
//! * a stride-2 branch taking `channels(finer scale)` when s is not the finest scale built in
//!   the block: shortcut conv3×3/2 + BN + ReLU, its own conv1/PEG(s2)/BN;
//! * shared layers (ResConv: conv2 3×3, BN, conv3 1×1, BN; ResAtt: MHSA, BN, 1×1 conv, BN).
//!
//! Block 0 layer 0 also owns four stem adapters `64_c` (c = channels(s)/4): depthwise conv with
//! kernel = stride = reduction(s)/4, no bias → 1×1 conv 64→c → BN.

use serde::{Deserialize, Serialize};

use super::fabric::{BlockPath, LAYERS_PER_BLOCK, NUM_BLOCKS, SearchPath};
use super::ops::{Op, OpKind, Scale};
use super::retrain_cost::{DIM_HEAD, STEM_CHANNELS, mhsa_cost, stem_cost, stem_out_size};
use super::{HytraError, check_input_size};
use crate::cost::{Cost, batch_norm, conv_out, conv2d};

/// Number of scales each block of the official supernet builds (`stage_depths`).
pub const STAGE_DEPTHS: [usize; NUM_BLOCKS] = [4, 3, 2, 2];

/// Scales built in block `block`, coarsest first (the order of the official op list).
pub fn block_scales(block: usize) -> Result<&'static [Scale], HytraError> {
    const ALL: [Scale; 4] = [Scale::S32, Scale::S16, Scale::S8, Scale::S4];
    STAGE_DEPTHS
        .get(block)
        .map(|&d| &ALL[..d])
        .ok_or(HytraError::BadBlock(block))
}

/// Ops built in every layer of block `block`, in global index order (so an op's index is also
/// its position in the block's op list).
pub fn block_ops(block: usize) -> Result<Vec<Op>, HytraError> {
    let scales = block_scales(block)?;
    Ok(Op::ALL
        .into_iter()
        .filter(|op| scales.contains(&op.scale()))
        .collect())
}

/// Whether ops at `scale` in block `block` have a stride-2 branch (from the next finer scale).
pub fn has_stride_two_branch(block: usize, scale: Scale) -> Result<bool, HytraError> {
    let scales = block_scales(block)?;
    Ok(scales.contains(&scale) && scales.last() != Some(&scale))
}

/// Parameters of the stem adapter of block 0 layer 0 that feeds ops at `scale`.
///
/// 64_512: 37,888; 64_256: 17,920; 64_128: 8,704; 64_64: 4,288.
pub fn stem_adapter_params(scale: Scale) -> u64 {
    stem_adapter_cost(scale, 56).params
}

/// Cost of the stem adapter to `scale` applied to a `stem_size`² stem output.
pub fn stem_adapter_cost(scale: Scale, stem_size: usize) -> Cost {
    let k = scale.reduction() / 4;
    let o = conv_out(stem_size, k, k, 0);
    let c = scale.bottleneck();
    conv2d(STEM_CHANNELS, STEM_CHANNELS, k, STEM_CHANNELS, false, o, o)
        + conv2d(STEM_CHANNELS, c, 1, 1, false, o, o)
        + batch_norm(c)
}

/// The module of one op in one choice layer of the official supernet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupernetOpSpec {
    /// Block (0..4).
    pub block: usize,
    /// Layer inside the block (0..4).
    pub layer: usize,
    /// The op.
    pub op: Op,
    /// Input channels of the stride-1 branch.
    pub in_channels: usize,
    /// Input channels of the stride-2 branch, if the module has one.
    pub down_in_channels: Option<usize>,
    /// Output channels (`channels(scale)`).
    pub out_channels: usize,
    /// Bottleneck / attention width (`out / 4`).
    pub bottleneck: usize,
    /// Attention heads (ResAtt: 8 at 1/32, 4 at 1/16).
    pub heads: usize,
}

impl SupernetOpSpec {
    /// The module of `op` at `layer` of `block`; fails if the block does not build that op.
    pub fn new(block: usize, layer: usize, op: Op) -> Result<SupernetOpSpec, HytraError> {
        let scales = block_scales(block)?;
        if layer >= LAYERS_PER_BLOCK {
            return Err(HytraError::WrongLayerCount {
                block,
                found: layer + 1,
            });
        }
        let scale = op.scale();
        if !scales.contains(&scale) {
            let built: Vec<String> = scales.iter().map(Scale::to_string).collect();
            return Err(HytraError::OpNotInBlock {
                block,
                layer,
                op,
                built: built.join(", "),
            });
        }
        let out = scale.channels();
        let in_channels = if block == 0 && layer == 0 {
            scale.bottleneck()
        } else {
            out
        };
        let down_in_channels = if has_stride_two_branch(block, scale)? {
            Some(Scale::from_depth(scale.depth() + 1)?.channels())
        } else {
            None
        };
        Ok(SupernetOpSpec {
            block,
            layer,
            op,
            in_channels,
            down_in_channels,
            out_channels: out,
            bottleneck: scale.bottleneck(),
            heads: scale.heads(),
        })
    }

    /// Cost of the branch-specific part: shortcut + conv1/proj 1×1 + PEG + BN, on an
    /// `in_size`² input with `in_c` channels and stride `stride`.
    fn entry_cost(&self, in_c: usize, stride: usize, in_size: usize) -> Cost {
        let (p, out) = (self.bottleneck, self.out_channels);
        let o = conv_out(in_size, 3, stride, 1);
        let shortcut = if stride == 2 {
            conv2d(in_c, out, 3, 1, false, o, o) + batch_norm(out)
        } else if in_c != out {
            conv2d(in_c, out, 1, 1, false, o, o) + batch_norm(out)
        } else {
            Cost::default()
        };
        shortcut
            + conv2d(in_c, p, 1, 1, false, in_size, in_size)
            + conv2d(p, p, 3, p, true, o, o)
            + batch_norm(p)
    }

    /// Cost of the layers shared by both branches at an `out_size`² output.
    fn shared_cost(&self, out_size: usize) -> Cost {
        let (p, out, o) = (self.bottleneck, self.out_channels, out_size);
        match self.op.kind() {
            OpKind::ResConv => {
                conv2d(p, p, 3, 1, false, o, o)
                    + batch_norm(p)
                    + conv2d(p, out, 1, 1, false, o, o)
                    + batch_norm(out)
            }
            OpKind::ResAtt => {
                let inner = self.heads * DIM_HEAD;
                mhsa_cost(p, self.heads, o * o)
                    + batch_norm(inner)
                    + conv2d(inner, out, 1, 1, false, o, o)
                    + batch_norm(out)
            }
        }
    }

    /// All parameters of the module (both branches and the shared layers).
    ///
    /// Block 0 layer 1: [22,303,744; 23,876,608; 5,581,312; 5,974,528; 1,496,320; 71,040].
    pub fn params(&self) -> u64 {
        let down = self
            .down_in_channels
            .map_or(0, |up| self.entry_cost(up, 2, 2).params);
        down + self.entry_cost(self.in_channels, 1, 1).params + self.shared_cost(1).params
    }

    /// Parameters used and MAdds of one forward pass through the stride-1 (`stride2 = false`)
    /// or stride-2 branch, on an `in_size`² input.
    pub fn branch_cost(&self, stride2: bool, in_size: usize) -> Result<Cost, HytraError> {
        let (in_c, stride) = if stride2 {
            let up = self.down_in_channels.ok_or(HytraError::NoStrideTwoBranch {
                block: self.block,
                layer: self.layer,
                op: self.op,
                from: Scale::from_depth(self.op.scale().depth() + 1).unwrap_or(self.op.scale()),
            })?;
            (up, 2)
        } else {
            (self.in_channels, 1)
        };
        let out_size = conv_out(in_size, 3, stride, 1);
        Ok(self.entry_cost(in_c, stride, in_size) + self.shared_cost(out_size))
    }
}

/// Parameters of one whole official HyTra supernet (one Siamese copy, no projector or
/// predictor): 854,265,344.
pub fn supernet_params() -> u64 {
    let stem = stem_cost(224).params;
    let adapters: u64 = Scale::ALL.iter().map(|&s| stem_adapter_params(s)).sum();
    let mut ops = 0;
    for block in 0..NUM_BLOCKS {
        for layer in 0..LAYERS_PER_BLOCK {
            for op in block_ops(block).expect("block in range") {
                ops += SupernetOpSpec::new(block, layer, op)
                    .expect("op built")
                    .params();
            }
        }
    }
    stem + adapters + ops
}

/// Parameters used and MAdds of block `block` along `path` inside the supernet, fed at
/// `input` scale with an `input_size`-pixel image. Block 0's cost includes the stem adapter
/// but not the stem.
pub fn supernet_block_cost(
    block: usize,
    input: Scale,
    path: &BlockPath,
    input_size: usize,
) -> Result<Cost, HytraError> {
    check_input_size(input_size)?;
    let stem_size = stem_out_size(input_size);
    // Side of the block input: the stride-2 convs halve with ceil.
    let mut size = stem_size;
    for _ in 0..(Scale::S4.depth() - input.depth()) {
        size = conv_out(size, 3, 2, 1);
    }
    Ok(block_cost(block, input, path, stem_size, size)?.0)
}

/// Cost of one block and the side of its output map.
fn block_cost(
    block: usize,
    input: Scale,
    path: &BlockPath,
    stem_size: usize,
    mut size: usize,
) -> Result<(Cost, usize), HytraError> {
    path.check_after(block, input)?;
    let mut scale = input;
    let mut cost = Cost::default();
    for (layer, op) in path.ops().into_iter().enumerate() {
        let spec = SupernetOpSpec::new(block, layer, op)?;
        let stride2 = if block == 0 && layer == 0 {
            // The stem adapter does the downsampling; the op then runs its stride-1 branch.
            let k = op.scale().reduction() / 4;
            cost += stem_adapter_cost(op.scale(), stem_size);
            size = conv_out(stem_size, k, k, 0);
            false
        } else {
            op.scale() != scale
        };
        cost += spec.branch_cost(stride2, size).map_err(|e| match e {
            HytraError::NoStrideTwoBranch {
                block, layer, op, ..
            } => HytraError::NoStrideTwoBranch {
                block,
                layer,
                op,
                from: scale,
            },
            other => other,
        })?;
        size = conv_out(size, 3, if stride2 { 2 } else { 1 }, 1);
        scale = op.scale();
    }
    Ok((cost, size))
}

/// Parameters used and MAdds of a whole path inside the supernet (stem included, projector
/// excluded), at an `input_size`-pixel image. Fails for paths the official modules cannot run
/// (outside [`super::SpaceVariant::Executable`]).
///
/// BossNet-T0's path `5433-3230-0010-0000` at 224: 57.29 M parameters, 5.919 GMAdds.
pub fn supernet_path_cost(path: &SearchPath, input_size: usize) -> Result<Cost, HytraError> {
    check_input_size(input_size)?;
    let stem_size = stem_out_size(input_size);
    let mut cost = stem_cost(input_size);
    let mut size = stem_size;
    for b in 0..NUM_BLOCKS {
        let (c, out) = block_cost(b, path.block_input(b), path.block(b), stem_size, size)?;
        cost += c;
        size = out;
    }
    Ok(cost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hytra::fabric::{SpaceVariant, executable_population};

    #[test]
    fn layout() {
        assert_eq!(block_ops(0).unwrap().len(), 6);
        assert_eq!(block_ops(1).unwrap().len(), 5);
        assert_eq!(block_ops(2).unwrap().len(), 4);
        assert_eq!(block_ops(3).unwrap().len(), 4);
        assert!(has_stride_two_branch(0, Scale::S8).unwrap());
        assert!(!has_stride_two_branch(0, Scale::S4).unwrap());
        assert!(!has_stride_two_branch(1, Scale::S8).unwrap());
        assert!(!has_stride_two_branch(2, Scale::S16).unwrap());
        assert!(has_stride_two_branch(3, Scale::S32).unwrap());
        let e = SupernetOpSpec::new(1, 0, Op::from_index(5).unwrap()).unwrap_err();
        assert!(
            e.to_string().contains("block 1") && e.to_string().contains("ResConv@1/4"),
            "{e}"
        );
        assert!(block_ops(4).is_err());
    }

    #[test]
    fn official_parameter_counts() {
        let per_op: Vec<u64> = block_ops(0)
            .unwrap()
            .into_iter()
            .map(|op| SupernetOpSpec::new(0, 1, op).unwrap().params())
            .collect();
        assert_eq!(
            per_op,
            [
                22_303_744, 23_876_608, 5_581_312, 5_974_528, 1_496_320, 71_040
            ]
        );
        let adapters: Vec<u64> = [Scale::S32, Scale::S16, Scale::S8, Scale::S4]
            .map(stem_adapter_params)
            .to_vec();
        assert_eq!(adapters, [37_888, 17_920, 8_704, 4_288]);
        assert_eq!(supernet_params(), 854_265_344);
    }

    /// Spec §2.5 table: stride-1/stride-2 MACs and parameters of non-first-layer ops at 224.
    #[test]
    fn per_op_branch_costs() {
        // (op, stride-1 MMACs, stride-1 Mparams, stride-2 (MMACs, Mparams))
        type Row = (usize, f64, f64, Option<(f64, f64)>);
        let table: [Row; 6] = [
            (0, 144.0, 2.89, Some((1120.2, 21.25))),
            (1, 218.6, 4.47, Some((1194.8, 22.82))),
            (2, 161.4, 0.73, Some((1137.6, 5.32))),
            (3, 218.8, 1.12, Some((1195.0, 5.71))),
            (4, 219.3, 0.28, Some((1195.5, 1.43))),
            (5, 220.2, 0.07, None),
        ];
        let near = |got: u64, want: f64| ((got as f64 / 1e6) - want).abs() < 0.051;
        for (i, s1_mac, s1_par, s2) in table {
            let op = Op::from_index(i).unwrap();
            let spec = SupernetOpSpec::new(0, 1, op).unwrap();
            let size = 224 / op.scale().reduction();
            let c = spec.branch_cost(false, size).unwrap();
            let size = 2 * size;
            assert!(
                near(c.madds, s1_mac) && near(c.params, s1_par),
                "op {i} s1: {c:?}"
            );
            match s2 {
                Some((mac, par)) => {
                    let c = spec.branch_cost(true, size).unwrap();
                    assert!(
                        near(c.madds, mac) && near(c.params, par),
                        "op {i} s2: {c:?}"
                    );
                }
                None => assert!(spec.branch_cost(true, size).is_err()),
            }
        }
    }

    #[test]
    fn t0_path_inside_the_supernet() {
        let p: SearchPath = "5433-3230-0010-0000".parse().unwrap();
        let c = supernet_path_cost(&p, 224).unwrap();
        assert_eq!((c.params as f64 / 1e4).round(), 5729.0, "{c:?}");
        assert_eq!((c.madds as f64 / 1e6).round(), 5919.0, "{c:?}");
    }

    #[test]
    fn every_executable_block_path_has_a_cost() {
        for block in 0..NUM_BLOCKS {
            for input in Scale::ALL {
                let Ok(pop) = executable_population(block, input) else {
                    continue;
                };
                for p in pop {
                    supernet_block_cost(block, input, &p, 224).unwrap();
                }
            }
        }
        // A restricted-but-not-executable path fails with a reason.
        let p: SearchPath = "5555-4433-3333-0000".parse().unwrap();
        assert!(!p.in_space(SpaceVariant::Executable));
        let e = supernet_path_cost(&p, 224).unwrap_err();
        assert!(e.to_string().contains("block 1 layer 0"), "{e}");
        let b = BlockPath::from_indices(&[4, 4, 4, 4]).unwrap();
        let e = supernet_block_cost(2, Scale::S8, &b, 224).unwrap_err();
        assert!(e.to_string().contains("ResConv@1/8"), "{e}");
    }
}
