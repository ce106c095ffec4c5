//! Golden tests of the HyTra blocks against PyTorch (data: `tests/golden/gen_hytra.py`).
//!
//! Each JSON file holds the weights (named by Burn field path), and per case an input, a
//! stride, a BN mode (eval with non-trivial running statistics, or train = batch statistics)
//! and PyTorch's output (computed in f64). Burn runs f32 on flex; tolerance 1e-4 absolute.

use std::collections::HashMap;

use bossnas_blocks::attention::AttentionOrientation;
use bossnas_blocks::hytra_layers::{Act, AvgDown, ConvBnAct};
use bossnas_blocks::peg::Peg;
use bossnas_blocks::res_att::{ResAtt, ResAttConfig, ResAttEntry};
use bossnas_blocks::res_conv::{ResConv, ResConvConfig, ResConvEntry};
use bossnas_blocks::retrain::{BossResAtt, BossResAttConfig, BossResConv, BossResConvConfig};
use burn::module::{Param, RunningState};
use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::tensor::{Device, Tensor, TensorData};
use serde::Deserialize;

const TOL: f32 = 1e-4;

#[derive(Deserialize)]
struct T {
    shape: Vec<usize>,
    data: Vec<f64>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    stride: usize,
    train: bool,
    input: T,
    output: T,
}

#[derive(Deserialize)]
struct Golden {
    params: HashMap<String, T>,
    cases: Vec<Case>,
}

fn load(file: &str) -> Golden {
    let path = format!("{}/tests/golden/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn tensor<const D: usize>(t: &T, dev: &Device) -> Tensor<D> {
    let data: Vec<f32> = t.data.iter().map(|&v| v as f32).collect();
    let shape: [usize; D] = t.shape.clone().try_into().expect("rank");
    Tensor::<1>::from_data(TensorData::new(data, [t.data.len()]), dev).reshape(shape)
}

struct Loader<'a> {
    g: &'a Golden,
    dev: Device,
}

impl Loader<'_> {
    fn t<const D: usize>(&self, name: &str) -> Tensor<D> {
        let t = self
            .g
            .params
            .get(name)
            .unwrap_or_else(|| panic!("missing golden param {name}"));
        tensor(t, &self.dev)
    }

    fn has(&self, name: &str) -> bool {
        self.g.params.contains_key(name)
    }

    fn conv(&self, c: &mut Conv2d, name: &str) {
        c.weight = Param::from_tensor(self.t(&format!("{name}.weight")));
        match &mut c.bias {
            Some(b) => *b = Param::from_tensor(self.t(&format!("{name}.bias"))),
            None => assert!(!self.has(&format!("{name}.bias")), "{name} has a bias"),
        }
    }

    fn bn(&self, bn: &mut BatchNorm, name: &str) {
        bn.gamma = Param::from_tensor(self.t(&format!("{name}.gamma")));
        bn.beta = Param::from_tensor(self.t(&format!("{name}.beta")));
        bn.running_mean = RunningState::new(self.t(&format!("{name}.running_mean")));
        bn.running_var = RunningState::new(self.t(&format!("{name}.running_var")));
    }

    fn peg(&self, p: &mut Peg, name: &str) {
        self.conv(&mut p.conv, &format!("{name}.conv"));
    }

    fn conv_bn(&self, m: &mut Option<ConvBnAct>, name: &str) {
        match m {
            Some(m) => {
                self.conv(&mut m.conv, &format!("{name}.conv"));
                self.bn(&mut m.bn, &format!("{name}.bn"));
            }
            None => assert!(!self.has(&format!("{name}.conv.weight")), "{name} missing"),
        }
    }

    fn avg_down(&self, m: &mut Option<AvgDown>) {
        match m {
            Some(m) => {
                self.conv(&mut m.conv, "shortcut.conv");
                self.bn(&mut m.bn, "shortcut.bn");
            }
            None => assert!(!self.has("shortcut.conv.weight"), "shortcut missing"),
        }
    }

    fn res_conv_entry(&self, e: &mut ResConvEntry, name: &str) {
        self.conv(&mut e.conv, &format!("{name}.conv1"));
        self.peg(&mut e.peg, &format!("{name}.peg"));
        self.bn(&mut e.bn, &format!("{name}.bn1"));
        self.conv_bn(&mut e.shortcut, &format!("{name}.shortcut"));
    }

    fn res_conv(&self, m: &mut ResConv) {
        self.res_conv_entry(&mut m.entry, "entry");
        self.res_conv_entry(m.entry_down.as_mut().unwrap(), "entry_down");
        self.conv(&mut m.conv2, "conv2");
        self.bn(&mut m.bn2, "bn2");
        self.conv(&mut m.conv3, "conv3");
        self.bn(&mut m.bn3, "bn3");
    }

    fn res_att_entry(&self, e: &mut ResAttEntry, name: &str) {
        self.conv(&mut e.conv, &format!("{name}.conv"));
        self.peg(&mut e.peg, &format!("{name}.peg"));
        self.bn(&mut e.bn, &format!("{name}.bn"));
        self.conv_bn(&mut e.shortcut, &format!("{name}.shortcut"));
    }

    fn res_att(&self, m: &mut ResAtt) {
        self.res_att_entry(&mut m.entry, "entry");
        self.res_att_entry(m.entry_down.as_mut().unwrap(), "entry_down");
        self.conv(&mut m.mhsa.to_qkv, "mhsa.to_qkv");
        self.bn(&mut m.bn_att, "bn_att");
        self.conv(&mut m.conv_out, "conv_out");
        self.bn(&mut m.bn_out, "bn_out");
    }

    fn boss_res_conv(&self, m: &mut BossResConv) {
        self.conv(&mut m.conv1, "conv1");
        self.peg(&mut m.peg, "peg");
        self.bn(&mut m.bn1, "bn1");
        self.conv(&mut m.conv2, "conv2");
        self.bn(&mut m.bn2, "bn2");
        self.conv(&mut m.conv3, "conv3");
        self.bn(&mut m.bn3, "bn3");
        let se = m.se.as_mut().expect("golden ResConv has SE");
        self.conv(&mut se.fc1, "se.fc1");
        self.conv(&mut se.fc2, "se.fc2");
        self.avg_down(&mut m.shortcut);
    }

    fn boss_res_att(&self, m: &mut BossResAtt) {
        self.conv(&mut m.proj_conv, "proj_conv");
        self.peg(&mut m.peg, "peg");
        self.bn(&mut m.proj_bn, "proj_bn");
        self.conv(&mut m.mhsa.to_qkv, "mhsa.to_qkv");
        self.bn(&mut m.bn_att, "bn_att");
        self.conv(&mut m.conv_out, "conv_out");
        self.bn(&mut m.bn_out, "bn_out");
        self.avg_down(&mut m.shortcut);
    }
}

fn device(train: bool) -> Device {
    if train {
        Device::flex().autodiff()
    } else {
        Device::flex()
    }
}

/// Runs every case of `file` through `run(loader, case)` and returns the worst max-abs error.
fn check(file: &str, run: impl Fn(&Loader, &Case) -> Tensor<4>) -> f32 {
    let g = load(file);
    let mut worst = 0.0f32;
    for case in &g.cases {
        let loader = Loader {
            g: &g,
            dev: device(case.train),
        };
        let y = run(&loader, case);
        let want = &case.output;
        assert_eq!(y.dims().to_vec(), want.shape, "{file} {}: shape", case.name);
        let got = y.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        let err = got
            .iter()
            .zip(&want.data)
            .map(|(a, b)| (a - *b as f32).abs())
            .fold(0.0f32, f32::max);
        eprintln!("{file} {}: max |Δ| = {err:.2e}", case.name);
        assert!(err < TOL, "{file} {}: max |Δ| = {err} ≥ {TOL}", case.name);
        worst = worst.max(err);
    }
    worst
}

#[test]
fn res_conv_matches_pytorch() {
    check("hytra_res_conv.json", |l, c| {
        let mut m = ResConvConfig::new(16, 4)
            .with_up_in_channels(Some(8))
            .init(&l.dev);
        l.res_conv(&mut m);
        m.forward(tensor(&c.input, &l.dev), c.stride)
    });
}

fn res_att_case(file: &str, orientation: AttentionOrientation) {
    check(file, |l, c| {
        let mut m = ResAttConfig::new(8, 16)
            .with_heads(2)
            .with_dim_head(2)
            .with_up_in_channels(Some(8))
            .with_orientation(orientation)
            .init(&l.dev);
        l.res_att(&mut m);
        m.forward(tensor(&c.input, &l.dev), c.stride)
    });
}

#[test]
fn res_att_standard_matches_pytorch() {
    res_att_case(
        "hytra_res_att_standard.json",
        AttentionOrientation::Standard,
    );
}

#[test]
fn res_att_search_code_matches_pytorch() {
    res_att_case(
        "hytra_res_att_searchcode.json",
        AttentionOrientation::SearchCode,
    );
}

#[test]
fn orientations_differ() {
    // Guard against a golden file that cannot tell the orientations apart.
    let g = load("hytra_res_att_standard.json");
    let l = Loader {
        g: &g,
        dev: device(false),
    };
    let c = &g.cases[0];
    let mut m = ResAttConfig::new(8, 16)
        .with_heads(2)
        .with_dim_head(2)
        .with_up_in_channels(Some(8))
        .with_orientation(AttentionOrientation::SearchCode)
        .init(&l.dev);
    l.res_att(&mut m);
    let y = m.forward(tensor(&c.input, &l.dev), c.stride);
    let got = y.into_data().try_to_vec::<f32>().unwrap();
    let diff = got
        .iter()
        .zip(&c.output.data)
        .map(|(a, b)| (a - *b as f32).abs())
        .fold(0.0f32, f32::max);
    assert!(diff > 1e-2, "orientations indistinguishable: {diff}");
}

#[test]
fn boss_res_conv_matches_pytorch() {
    check("hytra_boss_res_conv.json", |l, c| {
        let mut m = BossResConvConfig::new(8, 4)
            .with_stride(c.stride)
            .with_act(Act::Silu)
            .with_se(true)
            .init(&l.dev);
        l.boss_res_conv(&mut m);
        m.forward(tensor(&c.input, &l.dev))
    });
}

#[test]
fn boss_res_att_matches_pytorch() {
    check("hytra_boss_res_att.json", |l, c| {
        let mut m = BossResAttConfig::new(8, 16)
            .with_heads(2)
            .with_dim_head(2)
            .with_stride(c.stride)
            .init(&l.dev);
        l.boss_res_att(&mut m);
        m.forward(tensor(&c.input, &l.dev))
    });
}
