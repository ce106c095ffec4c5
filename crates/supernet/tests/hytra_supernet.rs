//! HyTra supernet invariants (spec §8.5): parameter counts, populations, every offered path
//! executes with the right shapes, path-local gradients.

use std::collections::HashSet;
use std::time::Instant;

use bossnas_blocks::params::trainable_params;
use bossnas_supernet::hytra::{HytraOp, HytraSupernet, HytraSupernetConfig, op_depth};
use bossnas_supernet::{BlockPath, Supernet};
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Tensor};

const T0_PATH: [[usize; 4]; 4] = [[5, 4, 3, 3], [3, 2, 3, 0], [0, 0, 1, 0], [0, 0, 0, 0]];

fn t0() -> Vec<BlockPath> {
    T0_PATH.iter().map(|p| p.to_vec()).collect()
}

#[test]
fn full_size_parameter_counts() {
    // Burn 0.22 parameters are lazy: `num_params` reads shapes, nothing is allocated but the
    // BN running statistics, so the real 854 M-parameter module is built here.
    let start = Instant::now();
    let net = HytraSupernetConfig::new().init(&Device::flex());
    assert_eq!(trainable_params(&net), 854_265_344);
    // Block 0, layer 1: every op including both input entries (spec §8.5).
    let per_op: Vec<usize> = net.blocks[0].layers[1]
        .ops
        .iter()
        .map(trainable_params)
        .collect();
    assert_eq!(
        per_op,
        [
            22_303_744, 23_876_608, 5_581_312, 5_974_528, 1_496_320, 71_040
        ]
    );
    // T0's search path touches ≈ 57.29 M of them.
    let t0 = net.path_num_params(&t0());
    eprintln!("T0 path: {t0} parameters");
    assert_eq!((t0 as f64 / 1e4).round() / 100.0, 57.29, "{t0}");
    assert!(
        start.elapsed().as_secs_f64() < 5.0,
        "building took {:?}",
        start.elapsed()
    );
    // Nothing got materialised by counting.
    let w = match &net.blocks[0].layers[1].ops[0] {
        HytraOp::Att(a) => a.conv_out.weight.is_initialized(),
        HytraOp::Conv(_) => unreachable!(),
    };
    assert!(!w, "counting must not initialise parameters");
}

#[test]
fn reduced_width_count_matches_formula() {
    // Closed form of the supernet's parameter count for widths c = channels (per depth),
    // bottleneck b = c/4, stem s, heads·dim_head = b (BN: 2 per channel).
    fn count(cfg: &HytraSupernetConfig) -> usize {
        let ch = cfg.channels;
        let s = cfg.stem_channels;
        let bn = |c: usize| 2 * c;
        let conv_bn_relu = |ci: usize, co: usize, k: usize| ci * co * k * k + bn(co);
        let entry = |ci: usize, b: usize, out: usize, stride: usize| {
            let sc = if stride == 2 {
                conv_bn_relu(ci, out, 3)
            } else if ci != out {
                conv_bn_relu(ci, out, 1)
            } else {
                0
            };
            ci * b + (9 * b + b) + bn(b) + sc
        };
        let mut n = 3 * s * 49 + bn(s);
        let stage_depths = [4, 3, 2, 2];
        for (blk, &sd) in stage_depths.iter().enumerate() {
            for layer in 0..4 {
                let first = blk == 0 && layer == 0;
                if first {
                    for (d, &c) in ch.iter().enumerate() {
                        let k = 1usize << (3 - d);
                        n += s * k * k + s * (c / 4) + bn(c / 4);
                    }
                }
                for d in 0..sd {
                    let out = ch[d];
                    let b = out / 4;
                    let ci = if first { b } else { out };
                    let mut entries = entry(ci, b, out, 1);
                    if d + 1 < sd {
                        entries += entry(ch[d + 1], b, out, 2);
                    }
                    // ResConv shared: conv2 3x3, bn2, conv3, bn3
                    n += entries + 9 * b * b + bn(b) + b * out + bn(out);
                    if d < 2 {
                        // ResAtt shared: qkv, bn_att, conv_out, bn_out
                        n += entries + 3 * b * b + bn(b) + b * out + bn(out);
                    }
                }
            }
        }
        n
    }
    let full = HytraSupernetConfig::new();
    assert_eq!(count(&full), 854_265_344, "the formula itself");
    for div in [8, 16, 32] {
        let cfg = HytraSupernetConfig::reduced(div);
        assert_eq!(
            trainable_params(&cfg.init(&Device::flex())),
            count(&cfg),
            "divisor {div}"
        );
    }
}

#[test]
fn population_sizes_follow_b3_restriction() {
    let net = HytraSupernetConfig::reduced(32).init(&Device::flex());
    let b0 = net.population(0, &[]);
    assert_eq!(b0.len(), 50, "51 restricted paths minus 5555 (ends at 1/4)");
    assert!(b0.iter().all(|p| op_depth(p[3]) <= 2));
    assert!(b0.contains(&vec![5, 4, 3, 3]));
    let t0 = t0();
    assert_eq!(net.population(1, &t0[..1]).len(), 80);
    assert_eq!(net.population(2, &t0[..2]).len(), 16);
    assert_eq!(net.population(3, &t0[..3]).len(), 16);
    // Block 1 fed at 1/8: 99 restricted paths; only 4444 ends at 1/8, the other 98 end at
    // ≤ 1/16 where block 2 has modules.
    let b1 = net.population(1, &[vec![5, 5, 5, 4]]);
    assert_eq!(b1.len(), 98);
    assert!(!b1.contains(&vec![4, 4, 4, 4]));
    assert!(b1.iter().all(|p| op_depth(p[3]) <= 1));
    let unique: HashSet<_> = b1.iter().collect();
    assert_eq!(unique.len(), b1.len());
}

/// A representative prefix for every input scale a block can see.
fn prefixes(block: usize) -> Vec<Vec<BlockPath>> {
    let ends = |d: usize| -> BlockPath {
        match d {
            2 => vec![5, 5, 5, 4],
            1 => vec![3, 3, 3, 3],
            _ => vec![1, 1, 1, 1],
        }
    };
    match block {
        0 => vec![vec![]],
        1 => [2usize, 1, 0].iter().map(|&d| vec![ends(d)]).collect(),
        2 => vec![
            vec![vec![5, 5, 5, 4], vec![3, 3, 3, 3]],
            vec![vec![5, 5, 5, 4], vec![1, 1, 1, 1]],
        ],
        _ => vec![
            vec![vec![5, 5, 5, 4], vec![3, 3, 3, 3], vec![3, 3, 3, 3]],
            vec![vec![5, 5, 5, 4], vec![3, 3, 3, 3], vec![1, 1, 1, 1]],
        ],
    }
}

#[test]
fn every_population_path_executes_with_the_right_shapes() {
    // Tiny widths (divisor 32: channels 64/32/16/8, stem 2, 2-dim heads), 32×32 images: the
    // scales 1/4 … 1/32 are 8, 4, 2, 1 pixels wide.
    let dev = Device::flex();
    let net = HytraSupernetConfig::reduced(32).init(&dev);
    let hw = [1usize, 2, 4, 8];
    let mut executed = 0;
    let mut ops_seen = HashSet::new();
    for block in 0..4 {
        for chosen in prefixes(block) {
            let d_in = HytraSupernet::input_depth(&chosen);
            let c_in = if block == 0 { 2 } else { net.channels[d_in] };
            let x = Tensor::<4>::random([2, c_in, hw[d_in], hw[d_in]], Distribution::Default, &dev);
            for path in net.population(block, &chosen) {
                let y = net.forward_block(x.clone(), &chosen, &path);
                let d = op_depth(path[3]);
                let c = net.block_out_channels(&chosen, &path);
                assert_eq!(c, net.channels[d]);
                assert_eq!(
                    y.dims(),
                    [2, c, hw[d], hw[d]],
                    "block {block} path {path:?}"
                );
                let mut prev = d_in;
                for (l, &op) in path.iter().enumerate() {
                    let stride = if block == 0 && l == 0 {
                        0
                    } else {
                        prev - op_depth(op) + 1
                    };
                    ops_seen.insert((block, l, op, stride));
                    prev = op_depth(op);
                }
                executed += 1;
            }
        }
    }
    assert_eq!(executed, 50 + (98 + 80 + 16) + (80 + 16) + (80 + 16));
    // Every instantiated op ran at least once at stride 1 in every block.
    for (block, n_ops) in [(0usize, 6usize), (1, 5), (2, 4), (3, 4)] {
        for op in 0..n_ops {
            assert!(
                (0..4).any(|l| ops_seen.contains(&(block, l, op, 1))
                    || ops_seen.contains(&(block, l, op, 0))),
                "block {block} op {op} never ran"
            );
        }
    }
    // Full prefix through the stem.
    let img = Tensor::<4>::random([2, 3, 32, 32], Distribution::Default, &dev);
    let t0 = t0();
    let y = net.forward_prefix(img, &t0);
    assert_eq!(y.dims(), [2, 64, 1, 1]);
}

struct GradCount<'a> {
    grads: &'a GradientsParams,
    with: usize,
    without: usize,
    ids: Vec<ParamId>,
}

impl ModuleVisitor for GradCount<'_> {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        let n = p.lazy_shape().num_elements();
        if self.grads.get::<D>(p.id).is_some() {
            self.with += n;
            self.ids.push(p.id);
        } else {
            self.without += n;
        }
    }
}

#[test]
fn backward_reaches_only_the_sampled_path() {
    let dev = Device::flex().autodiff();
    let net = HytraSupernetConfig::reduced(32).init(&dev);
    let t0 = t0();
    let img = Tensor::<4>::random([2, 3, 32, 32], Distribution::Default, &dev);
    let feats = net.forward_prefix(img, &t0[..1]);
    let y = net.forward_block(feats, &t0[..1], &t0[1]);
    let loss = y.powi_scalar(2).mean();
    let grads = GradientsParams::from_grads(loss.backward(), &net);
    let mut v = GradCount {
        grads: &grads,
        with: 0,
        without: 0,
        ids: Vec::new(),
    };
    net.visit(&mut v);
    assert_eq!(v.with, net.path_num_params(&t0[..2]));
    assert_eq!(v.with + v.without, net.num_params());
    // An op that was not sampled (block 0, layer 0, ResAtt@1/32) has no gradient.
    let unused = match &net.blocks[0].layers[0].ops[0] {
        HytraOp::Att(a) => a.mhsa.to_qkv.weight.id,
        HytraOp::Conv(_) => unreachable!(),
    };
    assert!(!v.ids.contains(&unused));
    // The stride-2 entry of block 1 layer 0's ResConv@1/16 was not used (input was 1/16).
    let HytraOp::Conv(c) = &net.blocks[1].layers[0].ops[3] else {
        unreachable!()
    };
    assert!(
        !v.ids
            .contains(&c.entry_down.as_ref().unwrap().conv.weight.id)
    );
    assert!(v.ids.contains(&c.entry.conv.weight.id));
}
