//! Shapes, init invariants and parameter counts of the HyTra blocks (tiny widths).

use bossnas_blocks::attention::{AttentionOrientation, MhsaConfig};
use bossnas_blocks::hytra_layers::{Act, DropPath, SqueezeExciteConfig};
use bossnas_blocks::params::trainable_params;
use bossnas_blocks::peg::PegConfig;
use bossnas_blocks::res_att::ResAttConfig;
use bossnas_blocks::res_conv::ResConvConfig;
use bossnas_blocks::retrain::{BossResAttConfig, BossResConvConfig};
use bossnas_blocks::stem::{StemAdapterConfig, StemConfig};
use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};

fn dev() -> Device {
    Device::flex()
}

fn randn(shape: [usize; 4]) -> Tensor<4> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &dev())
}

#[test]
fn peg_and_mhsa_shapes() {
    let x = randn([2, 8, 8, 8]);
    let p1 = PegConfig::new(8).init(&dev());
    let p2 = PegConfig::new(8).with_stride(2).init(&dev());
    assert_eq!(p1.forward(x.clone()).dims(), [2, 8, 8, 8]);
    assert_eq!(p2.forward(x.clone()).dims(), [2, 8, 4, 4]);
    assert_eq!(p2.forward(randn([2, 8, 7, 7])).dims(), [2, 8, 4, 4]);
    // dw 3x3 + bias
    assert_eq!(trainable_params(&p1), 8 * 9 + 8);
    for o in [
        AttentionOrientation::Standard,
        AttentionOrientation::SearchCode,
    ] {
        let m = MhsaConfig::new(8)
            .with_heads(2)
            .with_dim_head(3)
            .with_orientation(o)
            .init(&dev());
        assert_eq!(m.forward(x.clone()).dims(), [2, 6, 8, 8]);
    }
}

#[test]
fn search_ops_shapes_both_strides() {
    let conv = ResConvConfig::new(16, 4)
        .with_up_in_channels(Some(8))
        .init(&dev());
    assert_eq!(conv.forward(randn([2, 16, 8, 8]), 1).dims(), [2, 16, 8, 8]);
    assert_eq!(conv.forward(randn([2, 8, 8, 8]), 2).dims(), [2, 16, 4, 4]);
    let att = ResAttConfig::new(4, 16)
        .with_heads(2)
        .with_dim_head(2)
        .with_up_in_channels(Some(8))
        .init(&dev());
    assert_eq!(att.forward(randn([2, 4, 4, 4]), 1).dims(), [2, 16, 4, 4]);
    assert_eq!(att.forward(randn([2, 8, 8, 8]), 2).dims(), [2, 16, 4, 4]);
}

#[test]
#[should_panic(expected = "no stride-2 input adapter")]
fn missing_stride2_entry_panics() {
    let conv = ResConvConfig::new(16, 4).init(&dev());
    conv.forward(randn([2, 8, 8, 8]), 2);
}

#[test]
fn zero_init_last_bn_makes_identity_blocks_relu() {
    // With bn3.γ = 0 (and β = 0) the residual branch is zero at init: out = relu(shortcut(x)).
    let x = randn([2, 16, 4, 4]);
    let conv = ResConvConfig::new(16, 4).init(&dev());
    let att = ResAttConfig::new(16, 16)
        .with_heads(2)
        .with_dim_head(2)
        .init(&dev());
    let want = burn::tensor::activation::relu(x.clone());
    for y in [conv.forward(x.clone(), 1), att.forward(x.clone(), 1)] {
        let d = (y - want.clone()).abs().max().into_scalar::<f32>();
        assert!(d < 1e-6, "{d}");
    }
    assert_eq!(
        conv.bn3.gamma.val().abs().sum().into_scalar::<f32>(),
        0.0,
        "bn3 gamma must start at zero"
    );
}

#[test]
fn search_op_param_counts_full_width() {
    // Lazy init: building full-width modules allocates only BN running statistics.
    // ResConv@1/8 with both entries (spec §8.5: 1,496,320) and ResConv@1/4 (71,040).
    let d = dev();
    let c8 = ResConvConfig::new(512, 128)
        .with_up_in_channels(Some(256))
        .init(&d);
    assert_eq!(trainable_params(&c8), 1_496_320);
    let c4 = ResConvConfig::new(256, 64).init(&d);
    assert_eq!(trainable_params(&c4), 71_040);
    let a32 = ResAttConfig::new(2048, 2048)
        .with_heads(8)
        .with_up_in_channels(Some(1024))
        .init(&d);
    assert_eq!(trainable_params(&a32), 22_303_744);
    let a16 = ResAttConfig::new(1024, 1024)
        .with_heads(4)
        .with_up_in_channels(Some(512))
        .init(&d);
    assert_eq!(trainable_params(&a16), 5_581_312);
    // spec §2.5: stride-1 / stride-2 parameters used (rounded to 0.01 M).
    let m = |n: usize| (n as f64 / 1e4).round() / 100.0;
    assert_eq!(m(a32.num_params_at(1)), 2.89);
    assert_eq!(m(a32.num_params_at(2)), 21.25);
    assert_eq!(m(c8.num_params_at(1)), 0.28);
    assert_eq!(m(c8.num_params_at(2)), 1.43);
}

#[test]
fn stem_and_adapters() {
    let d = dev();
    let stem = StemConfig::new().with_channels(4).init(&d);
    let s = stem.forward(Tensor::random([2, 3, 32, 32], Distribution::Default, &d));
    assert_eq!(s.dims(), [2, 4, 8, 8]);
    for (depth, hw) in [(0usize, 1usize), (1, 2), (2, 4), (3, 8)] {
        let a = StemAdapterConfig::new(4, 6, 1 << (3 - depth)).init(&d);
        assert_eq!(a.forward(s.clone()).dims(), [2, 6, hw, hw]);
    }
    // spec §1.4 full-size adapter counts.
    for (c, stride, n) in [
        (512, 8, 37_888),
        (256, 4, 17_920),
        (128, 2, 8_704),
        (64, 1, 4_288),
    ] {
        assert_eq!(
            trainable_params(&StemAdapterConfig::new(64, c, stride).init(&d)),
            n
        );
    }
}

#[test]
fn retrain_blocks_shapes_and_counts() {
    let d = dev();
    let c = BossResConvConfig::new(8, 4)
        .with_stride(2)
        .with_act(Act::Silu)
        .with_se(true)
        .with_drop_path(0.1)
        .init(&d);
    assert_eq!(c.forward(randn([2, 8, 7, 7])).dims(), [2, 16, 4, 4]);
    let a = BossResAttConfig::new(16, 16)
        .with_heads(2)
        .with_dim_head(2)
        .init(&d);
    assert!(a.shortcut.is_none());
    assert_eq!(a.forward(randn([2, 16, 4, 4])).dims(), [2, 16, 4, 4]);
    // timm SEModule: reduction 16, at least 8 channels, conv biases.
    let se = |ch: usize| trainable_params(&SqueezeExciteConfig::new(ch).init(&d));
    assert_eq!(se(256), 256 * 16 * 2 + 16 + 256);
    assert_eq!(se(64), 64 * 8 * 2 + 8 + 64);
}

#[test]
fn drop_path_only_in_training_on_autodiff() {
    let dp = DropPath::new(0.5);
    let x = randn([64, 2, 2, 2]);
    let same = (dp.forward(x.clone()) - x.clone())
        .abs()
        .max()
        .into_scalar::<f32>();
    assert_eq!(same, 0.0, "identity on a plain device");
    let ad = Device::flex().autodiff();
    let xa = Tensor::<4>::ones([64, 2, 2, 2], &ad);
    let y = dp.forward(xa.clone());
    let per_sample = y
        .clone()
        .sum_dim(3)
        .sum_dim(2)
        .sum_dim(1)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert!(
        per_sample
            .iter()
            .all(|&v| v == 0.0 || (v - 16.0).abs() < 1e-5)
    );
    assert!(per_sample.contains(&0.0) && per_sample.iter().any(|&v| v > 0.0));
    let dp = dp.valid();
    let z = dp.forward(xa.clone()).sum().into_scalar::<f32>();
    assert_eq!(z, 512.0, "identity after valid()");
}
