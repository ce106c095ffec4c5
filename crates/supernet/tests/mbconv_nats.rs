//! The NATS-SSS and MBConv supernets: populations, every path / op executes, gradients reach
//! only the sampled path, and the children.

use bossnas_blocks::mbconv::MbconvStemConfig;
use bossnas_blocks::nats::SlimWidthsConfig;
use bossnas_blocks::params::trainable_params;
use bossnas_supernet::mbconv::{
    MbconvBackboneConfig, MbconvNetConfig, MbconvSupernet, MbconvSupernetConfig,
};
use bossnas_supernet::nats::{NatsSupernet, NatsSupernetConfig, nats_child};
use bossnas_supernet::{BlockPath, Supernet};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Gradients;
use burn::tensor::{Device, Distribution, Tensor};
use hytra_space::mbconv::MbconvArch;
use hytra_space::nats::{NatsArch, NatsSplit};

fn images(shape: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

/// Eight small candidate widths so that NATS populations keep their real sizes.
fn tiny_widths() -> SlimWidthsConfig {
    SlimWidthsConfig::new().with_widths(vec![2, 4, 6, 8, 10, 12, 14, 16])
}

fn tiny_nats(split: NatsSplit, device: &Device) -> NatsSupernet {
    NatsSupernetConfig::new()
        .with_split(split)
        .with_widths(tiny_widths())
        .init(device)
}

/// Small MBConv geometry with BossNAS's layer counts and strides.
fn tiny_mbconv_backbone() -> MbconvBackboneConfig {
    MbconvBackboneConfig::new()
        .with_stem(
            MbconvStemConfig::new()
                .with_conv_channels(8)
                .with_out_channels(8),
        )
        .with_block_channels(vec![12, 16, 20, 24, 28])
        .with_last_channels(32)
}

#[test]
fn nats_populations_match_bossnas() {
    let d = Device::flex();
    for (split, sizes) in [
        (NatsSplit::Cifar10, [64, 64, 8]),
        (NatsSplit::Cifar100, [64, 8, 64]),
    ] {
        let net = NatsSupernetConfig::new().with_split(split).init(&d);
        assert_eq!(net.num_blocks(), 3);
        let chosen: Vec<BlockPath> = vec![];
        for (block, want) in sizes.into_iter().enumerate() {
            let pop = net.population(block, &chosen);
            assert_eq!(pop.len(), want, "{split:?} block {block}");
            assert_eq!(pop[0], vec![0; pop[0].len()]);
            assert_eq!(pop.last().unwrap(), &vec![7; pop[0].len()]);
        }
        // Official best C10 block-0 code '74' is widths 64:40.
        assert_eq!(net.block_out_channels(&[], &[7, 4]), 40);
    }
}

/// Runs every path of every block (64/64/8 or 64/8/64) on a batch of 2 at 32×32; the
/// blocks after the first start from a fixed chosen prefix.
fn run_every_nats_path(split: NatsSplit) {
    let d = Device::flex();
    let net = tiny_nats(split, &d);
    let widths = tiny_widths().widths;
    let x = images([2, 3, 32, 32], &d);
    let chosen_all: Vec<BlockPath> = match split {
        NatsSplit::Cifar10 => vec![vec![7, 2], vec![3, 5], vec![1]],
        NatsSplit::Cifar100 => vec![vec![7, 2], vec![3], vec![5, 1]],
    };
    let sides = match split {
        NatsSplit::Cifar10 => [16, 8, 8],
        NatsSplit::Cifar100 => [16, 16, 8],
    };
    for block in 0..3 {
        let chosen = &chosen_all[..block];
        let prefix = net.forward_prefix(x.clone(), chosen);
        let paths = net.population(block, chosen);
        for path in &paths {
            let y = net.forward_block(prefix.clone(), chosen, path);
            let c = net.block_out_channels(chosen, path);
            assert_eq!(c, widths[*path.last().unwrap()]);
            assert_eq!(
                y.dims(),
                [2, c, sides[block], sides[block]],
                "{split:?} {block} {path:?}"
            );
        }
    }
    // The prefix of all blocks equals the full-path forward.
    let ops: Vec<usize> = chosen_all.concat();
    let full = net.forward_all(x.clone(), ops.try_into().unwrap());
    let prefix = net.forward_prefix(x, &chosen_all);
    let diff = (full - prefix).abs().max().into_scalar::<f32>();
    assert!(diff < 1e-5, "forward_prefix vs forward_all: {diff}");
}

#[test]
fn every_nats_path_executes_cifar10() {
    run_every_nats_path(NatsSplit::Cifar10);
}

#[test]
fn every_nats_path_executes_cifar100() {
    run_every_nats_path(NatsSplit::Cifar100);
}

/// Records, for every float parameter (running statistics excluded), its module path and
/// its gradient.
struct GradCollector<'a> {
    grads: &'a Gradients,
    path: Vec<String>,
    out: Vec<(String, Option<Tensor<1>>)>,
}

impl ModuleVisitor for GradCollector<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let name = self.path.join(".");
        if name.contains("running_") {
            return;
        }
        let g = param.val().grad(self.grads).map(|g| {
            let n = g.shape().num_elements();
            g.reshape([n])
        });
        self.out.push((name, g));
    }
}

fn grads_of<M: Module>(m: &M, grads: &Gradients) -> Vec<(String, Option<Tensor<1>>)> {
    let mut v = GradCollector {
        grads,
        path: vec![],
        out: vec![],
    };
    m.visit(&mut v);
    v.out
}

fn grad_tensor<const D: usize>(p: &Param<Tensor<D>>, grads: &Gradients) -> Tensor<D> {
    p.val()
        .grad(grads)
        .expect("parameter on the path has a gradient")
}

/// Sum of |g| over the region *outside* `[..rows, ..cols]` and inside it.
fn outside_inside(g: Tensor<4>, rows: usize, cols: usize) -> (f32, f32) {
    let [r, c, k1, k2] = g.dims();
    assert!(rows <= r && cols <= c);
    let region = [0..rows, 0..cols, 0..k1, 0..k2];
    let inside = g
        .clone()
        .slice(region.clone())
        .abs()
        .sum()
        .into_scalar::<f32>();
    // Zero the used slice and sum what is left (not total − inside: SIMD/parallel sums round
    // differently, and the outside must be exactly zero).
    let zeros = Tensor::zeros([rows, cols, k1, k2], &g.device());
    let outside = g
        .slice_assign(region, zeros)
        .abs()
        .sum()
        .into_scalar::<f32>();
    (outside, inside)
}

#[test]
fn nats_backward_reaches_only_the_sampled_path_and_slice() {
    let d = Device::flex().autodiff();
    let net = tiny_nats(NatsSplit::Cifar10, &d);
    // Block 1 after chosen block 0 = [5, 3] (widths 12, 8); path [1, 2] = widths 4, 6.
    let chosen = vec![vec![5, 3]];
    let prefix = net
        .forward_prefix(images([2, 3, 16, 16], &d), &chosen)
        .detach();
    let y = net.forward_block(prefix, &chosen, &[1, 2]);
    let grads = y.powf_scalar(2.0).mean().backward();

    let all = grads_of(&net, &grads);
    // cell2: 5 edges + reduce = 6 convs and 6 BNs (γ, β); res3: 3 convs and 2 BNs.
    assert_eq!(
        all.iter().filter(|(_, g)| g.is_some()).count(),
        6 + 12 + 3 + 4
    );
    for (name, g) in all {
        let on_path = name.starts_with("cell2") || name.starts_with("res3");
        let in_bn = name.contains(".bns.");
        // cell2.reduce is used: in width 8 ≠ out width 4.
        let expected = if !on_path {
            false
        } else if in_bn {
            // Only the BN of the chosen width: cell2 → index 1, res3 → index 2.
            let want = if name.starts_with("cell2") {
                ".bns.1."
            } else {
                ".bns.2."
            };
            name.contains(want)
        } else {
            true
        };
        assert_eq!(g.is_some(), expected, "{name}");
    }

    // Shared slimmable weights: exact zeros outside the used slice.
    let checks = [
        (&net.cell2.n0_n1.conv.weight, 4, 8), // in 8 (width idx 3) → out 4
        (&net.cell2.n1_n2.conv.weight, 4, 4),
        (&net.cell2.reduce.conv.weight, 4, 8),
        (&net.res3.conv_a.conv.weight, 6, 4),
        (&net.res3.conv_b.conv.weight, 6, 6),
        (&net.res3.down.weight, 6, 4),
    ];
    for (p, rows, cols) in checks {
        let (outside, inside) = outside_inside(grad_tensor(p, &grads), rows, cols);
        assert_eq!(outside, 0.0, "gradient leaked outside [..{rows}, ..{cols}]");
        assert!(inside > 0.0, "no gradient inside [..{rows}, ..{cols}]");
    }
}

#[test]
fn mbconv_populations_and_fair_paths_cover_every_op() {
    let d = Device::flex();
    let net = MbconvSupernetConfig::new()
        .with_backbone(tiny_mbconv_backbone())
        .init(&d);
    assert_eq!(net.num_blocks(), 5);
    let sizes: Vec<usize> = (0..5).map(|b| net.population(b, &[]).len()).collect();
    assert_eq!(sizes, [16, 256, 256, 256, 256]);
    assert_eq!(net.population(1, &[])[27], vec![0, 1, 2, 3]);

    // Four fair paths per block execute every op of every layer exactly once; blocks run
    // from the prefix of already-chosen blocks (the first fair path here).
    let x = images([2, 3, 32, 32], &d);
    let mut chosen: Vec<BlockPath> = vec![];
    let sides = [8, 4, 2, 2, 1];
    let chans = [12, 16, 20, 24, 28];
    for block in 0..5 {
        let paths = fair_paths_checked(&net, block);
        let prefix = net.forward_prefix(x.clone(), &chosen);
        for path in &paths {
            let y = net.forward_block(prefix.clone(), &chosen, path);
            assert_eq!(net.block_out_channels(&chosen, path), chans[block]);
            assert_eq!(y.dims(), [2, chans[block], sides[block], sides[block]]);
        }
        chosen.push(paths[0].clone());
    }
    let last = net.forward_last(net.forward_prefix(x, &chosen));
    assert_eq!(last.dims(), [2, 32, 1, 1]);
}

fn fair_paths_checked(net: &MbconvSupernet, block: usize) -> Vec<BlockPath> {
    let paths = net.fair_paths(block);
    assert_eq!(paths.len(), 4);
    for layer in 0..paths[0].len() {
        let mut ops: Vec<usize> = paths.iter().map(|p| p[layer]).collect();
        ops.sort();
        assert_eq!(ops, [0, 1, 2, 3], "block {block} layer {layer}");
    }
    paths
}

#[test]
fn mbconv_backward_reaches_only_the_sampled_candidates() {
    let d = Device::flex().autodiff();
    let net = MbconvSupernetConfig::new()
        .with_backbone(tiny_mbconv_backbone())
        .init(&d);
    let path = [3, 1];
    let y = net.forward_block(
        net.forward_prefix(images([2, 3, 16, 16], &d), &[]).detach(),
        &[],
        &path,
    );
    let grads = y.powf_scalar(2.0).mean().backward();
    let all = grads_of(&net, &grads);
    // Shortcut conv + BN (3 tensors), then 13 tensors per candidate branch, two layers.
    assert_eq!(all.iter().filter(|(_, g)| g.is_some()).count(), 3 + 2 * 13);
    for (name, g) in all {
        let expected = match name.strip_prefix("blocks.0.") {
            Some(rest) => {
                let layer: usize = rest[..1].parse().unwrap();
                let rest = &rest[2..];
                rest.starts_with("shortcut")
                    || rest.starts_with(&format!("candidates.{}.", path[layer]))
            }
            None => false,
        };
        assert_eq!(g.is_some(), expected, "{name}");
    }
}

#[test]
fn nats_child_counts_and_shapes() {
    let d = Device::flex();
    let arch: NatsArch = "64:40:48:64:56".parse().unwrap();
    let child = nats_child(&arch, 10, &d);
    assert_eq!(trainable_params(&child) as u64, arch.cost(32, 10).params);
    assert_eq!(child.forward(images([2, 3, 32, 32], &d)).dims(), [2, 10]);
}

#[test]
fn mbconv_child_matches_cost_model() {
    let d = Device::flex();
    let arch: MbconvArch = "01-1230-2222-3333-0123".parse().unwrap();
    let child = MbconvNetConfig::from_arch(&arch, 1000).init(&d);
    assert_eq!(trainable_params(&child) as u64, arch.cost(224, 1000).params);

    let tiny = MbconvNetConfig::from_arch(&arch, 10)
        .with_backbone(tiny_mbconv_backbone())
        .with_head_features(16)
        .init(&d);
    assert_eq!(tiny.forward(images([2, 3, 32, 32], &d)).dims(), [2, 10]);
}

#[test]
fn every_mbconv_path_executes() {
    // All 16 + 4·256 = 1,040 block paths, on one tiny image, from a fixed prefix.
    let d = Device::flex();
    let net = MbconvSupernetConfig::new()
        .with_backbone(tiny_mbconv_backbone())
        .init(&d);
    let x = images([1, 3, 32, 32], &d);
    let mut chosen: Vec<BlockPath> = vec![];
    let mut executed = 0;
    for block in 0..5 {
        let prefix = net.forward_prefix(x.clone(), &chosen);
        let population = net.population(block, &chosen);
        for path in &population {
            let y = net.forward_block(prefix.clone(), &chosen, path);
            assert_eq!(
                y.dims()[1],
                net.block_out_channels(&chosen, path),
                "{path:?}"
            );
            let v: Vec<f32> = y.into_data().try_to_vec().unwrap();
            assert!(
                v.iter().all(|x| x.is_finite()),
                "block {block} path {path:?}"
            );
            executed += 1;
        }
        chosen.push(population[0].clone());
    }
    assert_eq!(executed, 1_040);
}
