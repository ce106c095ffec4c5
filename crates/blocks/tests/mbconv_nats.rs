//! Shapes and parameter counts of the MBConv and NATS-SSS modules.

use bossnas_blocks::mbconv::{
    InvertedResidualConfig, MbconvLayerConfig, MbconvShortcutConfig, MbconvStemConfig,
};
use bossnas_blocks::nats::{
    InferCellConfig, NatsNetConfig, SlimInferCellConfig, SlimResBlockConfig, SlimStemConfig,
    SlimWidthsConfig,
};
use bossnas_blocks::params::trainable_params;
use bossnas_blocks::slimmable::SlimConv2dConfig;
use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use hytra_space::mbconv::make_divisible;
use hytra_space::nats::NatsArch;

fn dev() -> Device {
    Device::flex()
}

fn images(shape: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

#[test]
fn nats_bench_parameter_counts() {
    // NATS-Bench's reference values (data/README.md); trainable_params counts γ/β but not the
    // BN running statistics, like PyTorch's `parameters()`.
    for (arch, classes, want) in [
        ("8:8:8:8:8", 10, 11_714),
        // The data README and the brief annotate these two with 100 / 120 classes, but
        // the numbers are the 10-class counts (100 classes would add 90·41 = 3,690 to
        // 8:8:16:40:40, giving 111,516).
        ("8:8:16:40:40", 10, 107_826),
        ("64:64:64:64:64", 10, 713_674),
    ] {
        let arch: NatsArch = arch.parse().unwrap();
        let net = NatsNetConfig::from_arch(&arch, classes).init(&dev());
        assert_eq!(trainable_params(&net), want, "{arch}");
        // Burn's `num_params` also counts the BN running statistics (2 per BN channel).
        assert!(net.num_params() > want);
        assert_eq!(
            trainable_params(&net) as u64,
            arch.cost(32, classes).params,
            "{arch}"
        );
    }
}

#[test]
fn nats_params_agree_with_cost_model_on_a_sample() {
    for index in [1, 777, 4096, 12_345, 30_000] {
        let arch = NatsArch::from_index(index).unwrap();
        let net = NatsNetConfig::from_arch(&arch, 10).init(&dev());
        assert_eq!(
            trainable_params(&net) as u64,
            arch.cost(32, 10).params,
            "{arch}"
        );
    }
}

#[test]
fn nats_net_shapes() {
    let d = dev();
    let arch: NatsArch = "8:16:24:32:40".parse().unwrap();
    let net = NatsNetConfig::from_arch(&arch, 10).init(&d);
    assert_eq!(
        net.features(images([2, 3, 32, 32], &d)).dims(),
        [2, 40, 8, 8]
    );
    assert_eq!(net.forward(images([2, 3, 32, 32], &d)).dims(), [2, 10]);
    // Same widths in and out: the skip edge is the identity.
    assert!(InferCellConfig::new(8, 8).init(&d).skip.is_none());
    let cell = InferCellConfig::new(8, 16).init(&d);
    assert_eq!(cell.forward(images([2, 8, 8, 8], &d)).dims(), [2, 16, 8, 8]);
}

#[test]
fn slimmable_layers_slice_their_shared_weights() {
    let d = dev();
    let widths = SlimWidthsConfig::new().with_widths(vec![2, 4, 6, 8]);
    let conv = SlimConv2dConfig::new(8, 8, 3).init(&d);
    assert_eq!(conv.weight.dims(), [8, 8, 3, 3]);
    assert_eq!(
        conv.forward(images([2, 4, 8, 8], &d), 6).dims(),
        [2, 6, 8, 8]
    );
    let stem = SlimStemConfig::new(widths.clone()).init(&d);
    assert_eq!(
        stem.forward(images([2, 3, 8, 8], &d), 1).dims(),
        [2, 4, 8, 8]
    );
    let cell = SlimInferCellConfig::new()
        .with_widths(widths.clone())
        .init(&d);
    assert!(
        cell.reduce.leading_relu,
        "BossNAS semantics in the supernet"
    );
    for (i, o) in [(0, 0), (1, 3), (3, 1)] {
        let y = cell.forward(images([2, [2, 4, 6, 8][i], 8, 8], &d), i, o);
        assert_eq!(y.dims(), [2, [2, 4, 6, 8][o], 8, 8]);
    }
    let res = SlimResBlockConfig::new(widths.clone()).init(&d);
    assert_eq!(
        res.forward(images([2, 6, 8, 8], &d), 0).dims(),
        [2, 2, 4, 4]
    );
    // One BN per width: 4 widths × (2 + 4 + 6 + 8) × 2 affine params for each BN set.
    assert_eq!(trainable_params(&cell.n0_n1.bn), 2 * (2 + 4 + 6 + 8));
}

#[test]
fn make_divisible_matches_timm() {
    assert_eq!(make_divisible(96.0, 8), 96);
    assert_eq!(make_divisible(8.0 * 3.0, 8), 24);
    assert_eq!(make_divisible(4.0 * 3.0, 8), 16); // 12 → 16 (rounds half up)
    assert_eq!(make_divisible(2.0 * 3.0, 8), 8); // never below the divisor
    assert_eq!(make_divisible(16.0 * 0.25, 1), 4);
    assert_eq!(make_divisible(10.0 * 0.25, 1), 3); // 2.5 rounds up, as timm does
}

#[test]
fn mbconv_layer_shapes_and_counts() {
    let d = dev();
    // 16 → 24, stride 2, MB6 3×3: mid 96, SE 16·0.25 = 4.
    let cfg = InvertedResidualConfig::candidate(0, 16, 24, 2);
    assert_eq!(cfg.mid_channels(), 96);
    let block = cfg.init(&d);
    let want = 16 * 96 + 2 * 96 + 96 * 9 + 2 * 96 + (96 * 4 + 4) + (4 * 96 + 96) + 96 * 24 + 2 * 24;
    assert_eq!(trainable_params(&block), want);

    let layer = MbconvLayerConfig::new(1, 16, 24).with_stride(2).init(&d);
    assert_eq!(
        layer.forward(images([2, 16, 7, 7], &d)).dims(),
        [2, 24, 4, 4]
    );
    // The projected shortcut: 1×1 16 → 24 + BN.
    assert_eq!(trainable_params(&layer.shortcut), 16 * 24 + 2 * 24);
    // Shape-keeping layer: identity shortcut, no parameters.
    let same = MbconvShortcutConfig::new(24, 24).init(&d);
    assert_eq!(trainable_params(&same), 0);
    assert!(same.enabled && !same.pool);
    // Standalone child style: no residual where the shape changes.
    let child = MbconvLayerConfig::new(2, 16, 24)
        .with_stride(2)
        .with_project(false)
        .init(&d);
    assert!(!child.shortcut.enabled);
    assert_eq!(
        child.forward(images([2, 16, 8, 8], &d)).dims(),
        [2, 24, 4, 4]
    );

    let stem = MbconvStemConfig::new().init(&d);
    assert_eq!(
        stem.forward(images([2, 3, 32, 32], &d)).dims(),
        [2, 16, 16, 16]
    );
    // conv 3·32·9 + BN, dw 32·9 + BN, SE 32→8→32 with biases, pw 32·16 + BN.
    let want = 3 * 32 * 9 + 64 + 32 * 9 + 64 + (32 * 8 + 8) + (8 * 32 + 32) + 32 * 16 + 32;
    assert_eq!(trainable_params(&stem), want);
}
