//! The same supernet block on burn-flex (CPU) and burn-wgpu gives the same outputs and input
//! gradients. Built only with `--features wgpu`, here in the CLI package so that CI's one
//! `cargo test -p bossnas-cli --features wgpu,fusion --test wgpu_parity` both builds the `bossnas`
//! binary with the wgpu backend and runs this test. CI runs it on Mesa's software Vulkan driver
//! (lavapipe), so the GPU code path (CubeCL kernels, fusion, autotune) is exercised without a
//! GPU. Tolerances from docs/burn-0.22-notes §5: wgpu and flex differ by ~1e-6 relative.
#![cfg(feature = "wgpu")]

use bossnas_blocks::nats::SlimWidthsConfig;
use bossnas_kernels::device::{DeviceSpec, ToDevice};
use bossnas_supernet::Supernet;
use bossnas_supernet::nats::{NatsSupernet, NatsSupernetConfig};
use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor, TensorData, Tolerance};
use hytra_space::nats::NatsSplit;

fn config() -> NatsSupernetConfig {
    NatsSupernetConfig::new()
        .with_split(NatsSplit::Cifar10)
        .with_widths(SlimWidthsConfig::new().with_widths(vec![2, 4, 6, 8, 10, 12, 14, 16]))
}

/// Output and input gradient of NATS block 0 (stem, cell, reduction block) along `path`, in
/// training mode (batch-statistics BN), on `device`, with the weights of `weights`.
fn block0(
    device: &Device,
    weights: &NatsSupernet,
    images: &TensorData,
    path: &[usize],
) -> (TensorData, TensorData) {
    let device = device.clone().autodiff();
    let net = config()
        .init(&device)
        .load_record(weights.clone().into_record());
    let x = Tensor::<4>::from_data(images.clone(), &device).require_grad();
    let y = net.forward_block(x.clone(), &[], path);
    let grads = y.clone().powf_scalar(2.0).mean().backward();
    let gx = x.grad(&grads).expect("input gradient");
    (y.into_data(), gx.into_data())
}

#[test]
fn nats_block0_matches_between_flex_and_wgpu() {
    let flex = Device::flex();
    let wgpu = DeviceSpec::Wgpu(None)
        .device()
        .expect("the wgpu feature is compiled in");
    let images =
        Tensor::<4>::random([2, 3, 8, 8], Distribution::Normal(0.0, 1.0), &flex).into_data();
    let net = config().init(&flex);
    for path in [[7usize, 2usize], [3, 7]] {
        let (y_cpu, g_cpu) = block0(&flex, &net, &images, &path);
        let (y_gpu, g_gpu) = block0(&wgpu, &net, &images, &path);
        assert_eq!(y_cpu.shape(), y_gpu.shape(), "path {path:?}");
        y_gpu.assert_approx_eq::<f32>(&y_cpu, Tolerance::absolute(1e-4).set_relative(1e-4));
        g_gpu.assert_approx_eq::<f32>(&g_cpu, Tolerance::absolute(1e-6).set_relative(1e-3));
    }
}

/// The real trainer on wgpu: two optimizer steps of the `tiny` preset through the `bossnas`
/// binary (sampling, online + EMA target, loss, backward, LARS, EMA, checkpoint).
#[test]
fn bossnas_train_runs_on_wgpu() {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bossnas"))
        .args([
            "train",
            "--config",
            "tiny",
            "--device",
            "wgpu",
            "--max-steps",
            "2",
        ])
        .arg("--out")
        .arg(tmp.path())
        .arg("--quiet")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("on wgpu"), "{stderr}");
    let run = std::fs::read_dir(tmp.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let losses: Vec<f64> = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["event"] == "step")
        .map(|v| v["loss"].as_f64().unwrap())
        .collect();
    assert_eq!(losses.len(), 2, "{metrics}");
    // −2·cos per path, averaged: finite and inside [−4, 4].
    assert!(
        losses.iter().all(|l| l.is_finite() && l.abs() <= 4.0),
        "{losses:?}"
    );
}
