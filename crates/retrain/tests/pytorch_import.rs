//! A PyTorch state dict (written by `tests/fixtures/make_nats_state_dict.py`, torch not needed
//! here) loads into our NATS network through burn-store's PyTorch reader and reproduces the
//! logits PyTorch recorded.

use std::path::PathBuf;

use bossnas_retrain::arch::ArchSpec;
use bossnas_retrain::export::load_pytorch;
use bossnas_retrain::model::build_model;
use bossnas_retrain::recipe::ModelSection;
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData, Tolerance};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// xautodl-style keys → our module paths.
const REMAP: [(&str, &str); 6] = [
    (r"^stem\.0\.", "stem_conv."),
    (r"^stem\.1\.", "stem_bn."),
    (r"^lastact\.0\.", "head_bn."),
    (r"\.op\.1\.", ".conv."),
    (r"\.op\.2\.", ".bn."),
    (r"\.downsample\.1\.", ".down."),
];

#[test]
fn pytorch_state_dict_reproduces_recorded_logits() {
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("nats_8-16-8-16-8.json")).unwrap())
            .unwrap();
    let device = Device::flex();
    let arch = ArchSpec::parse(golden["arch"].as_str().unwrap()).unwrap();
    let classes = golden["classes"].as_u64().unwrap() as usize;
    let opts = ModelSection {
        hytra_width_divisor: 1,
        hytra_drop_path_rate: 0.0,
    };
    let mut net = build_model(&arch, classes, &opts, &device).unwrap();
    let before = net.num_params();
    let result = load_pytorch(&mut net, &fixture("nats_8-16-8-16-8.pt"), &REMAP, None).unwrap();
    assert!(result.missing.is_empty() && result.errors.is_empty());
    // Every tensor of ours was applied (parameters and BN statistics).
    assert!(result.applied.len() >= 50, "{}", result.applied.len());
    // Only PyTorch's BN counters are left over.
    assert!(
        result
            .unused
            .iter()
            .all(|k| k.ends_with("num_batches_tracked")),
        "{:?}",
        result.unused
    );
    assert_eq!(net.num_params(), before);

    let shape: Vec<usize> = golden["input_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let input: Vec<f32> = golden["input"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let want: Vec<f32> = golden["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let x = Tensor::<4>::from_data(
        TensorData::new(input, [shape[0], shape[1], shape[2], shape[3]]),
        &device,
    );
    let y = net.valid().forward(x);
    y.into_data().assert_approx_eq::<f32>(
        &TensorData::new(want, [shape[0], classes]),
        Tolerance::absolute(1e-5),
    );
}

#[test]
fn wrong_keys_or_missing_file_are_errors() {
    let device = Device::flex();
    let arch = ArchSpec::parse("8:16:8:16:8").unwrap();
    let opts = ModelSection {
        hytra_width_divisor: 1,
        hytra_drop_path_rate: 0.0,
    };
    let mut net = build_model(&arch, 10, &opts, &device).unwrap();
    // Without the key remapping, the stem and head are missing: refused, naming the file.
    let e = load_pytorch(&mut net, &fixture("nats_8-16-8-16-8.pt"), &[], None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("nats_8-16-8-16-8.pt") && e.contains("Missing"),
        "{e}"
    );
    let e = load_pytorch(&mut net, &fixture("no-such.pt"), &REMAP, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no-such.pt"), "{e}");
    let e = load_pytorch(
        &mut net,
        &fixture("nats_8-16-8-16-8.pt"),
        &[("(", "x")],
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("bad key pattern"), "{e}");
    // A wider network does not fit the tensors: shape errors, not a panic.
    let wide = ArchSpec::parse("16:16:16:16:16").unwrap();
    let mut net = build_model(&wide, 10, &opts, &device).unwrap();
    assert!(load_pytorch(&mut net, &fixture("nats_8-16-8-16-8.pt"), &REMAP, None).is_err());
}
