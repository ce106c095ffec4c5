//! Stand-alone HyTra children (BossNet): parameter counts and shapes.

use bossnas_blocks::params::trainable_params;
use bossnas_supernet::hytra::bossnet::BossNetConfig;
use burn::tensor::{Device, Distribution, Tensor};
use hytra_space::hytra::encoding::RetrainEncoding;
use hytra_space::hytra::fabric::SearchPath;
use hytra_space::hytra::named::{NamedArch, TransitionStride};

#[test]
fn full_size_parameter_counts() {
    let dev = Device::flex();
    assert_eq!(
        trainable_params(&BossNetConfig::t0().init(&dev)),
        38_415_960
    );
    assert_eq!(
        trainable_params(&BossNetConfig::t0_nose().init(&dev)),
        37_319_080
    );
    assert_eq!(
        trainable_params(&BossNetConfig::t1().init(&dev)),
        38_415_960
    );
}

#[test]
fn t0_from_its_search_path() {
    let path =
        SearchPath::from_nested(&[[5i64, 4, 3, 3], [3, 2, 3, 0], [0, 0, 1, 0], [0, 0, 0, 0]])
            .unwrap();
    let cfg = BossNetConfig::from_encoding(&RetrainEncoding::from_search_path(&path));
    assert_eq!(cfg.encoding, BossNetConfig::t0_nose().encoding);
}

#[test]
fn named_children_run_at_tiny_width() {
    let dev = Device::flex();
    let img = Tensor::<4>::random([2, 3, 64, 64], Distribution::Default, &dev);
    for arch in NamedArch::ALL {
        for transition in [TransitionStride::Stage, TransitionStride::Official] {
            let cfg = BossNetConfig::named(arch)
                .with_transition(transition)
                .with_width_divisor(16)
                .with_num_classes(10)
                .with_drop_path_rate(0.1);
            let empty_first = cfg.encoding[0].is_empty();
            let net = cfg.init(&dev);
            // 64 px: 1/32 is 2 px; T1 stays at 1/16; the official always-stride-2 transition
            // of an empty 1/4 list makes the net one scale coarser.
            let hw = match (arch, transition) {
                (NamedArch::BossnetT1, _) => 4,
                (_, TransitionStride::Official) if empty_first => 1,
                _ => 2,
            };
            let f = net.forward_features(img.clone());
            assert_eq!(f.dims(), [2, 128, hw, hw], "{arch} {transition:?}");
            assert_eq!(net.forward(img.clone()).dims(), [2, 10], "{arch}");
        }
    }
}

#[test]
fn training_forward_with_drop_path_and_backward() {
    let dev = Device::flex().autodiff();
    let net = BossNetConfig::t0()
        .with_width_divisor(16)
        .with_num_classes(4)
        .with_drop_path_rate(0.2)
        .init(&dev);
    let img = Tensor::<4>::random([4, 3, 32, 32], Distribution::Default, &dev);
    let loss = net.forward(img).powi_scalar(2).mean();
    let grads = loss.backward();
    assert!(net.fc.weight.val().grad(&grads).is_some());
}
