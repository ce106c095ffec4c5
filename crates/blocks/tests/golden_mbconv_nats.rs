//! Golden tests of the MBConv and NATS-SSS modules against PyTorch references.
//!
//! The fixtures come from `tests/golden/gen_mbconv_nats.py` (run it with `torch` installed
//! to regenerate them); this test only reads the JSON. Each fixture holds every weight and
//! BN buffer (PyTorch `state_dict` names), an input, and the reference outputs in eval mode
//! (running statistics) and train mode (batch statistics).

use bossnas_blocks::mbconv::MbconvLayerConfig;
use bossnas_blocks::nats::{
    InferCellConfig, SlimInferCellConfig, SlimReluConvBn, SlimResBlockConfig, SlimWidthsConfig,
};
use bossnas_blocks::slimmable::SlimConv2d;
use burn::module::{Module, Param, RunningState};
use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::tensor::{Device, Tensor, TensorData};
use serde_json::Value;

const TOL: f32 = 1e-4;

struct Fixture {
    doc: Value,
    device: Device,
}

impl Fixture {
    fn load(name: &str, device: &Device) -> Self {
        let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        Self {
            doc: serde_json::from_str(&text).expect("valid JSON"),
            device: device.clone(),
        }
    }

    fn tensor<const D: usize>(&self, v: &Value) -> Tensor<D> {
        let shape: Vec<usize> = v["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_u64().unwrap() as usize)
            .collect();
        let data: Vec<f32> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        Tensor::from_data(TensorData::new(data, shape), &self.device)
    }

    fn param<const D: usize>(&self, name: &str) -> Tensor<D> {
        let v = &self.doc["params"][name];
        assert!(!v.is_null(), "fixture lacks parameter {name}");
        self.tensor(v)
    }

    fn conv(&self, conv: &mut Conv2d, prefix: &str) {
        conv.weight = Param::from_tensor(self.param(&format!("{prefix}.weight")));
        if conv.bias.is_some() {
            conv.bias = Some(Param::from_tensor(self.param(&format!("{prefix}.bias"))));
        }
    }

    fn slim_conv(&self, conv: &mut SlimConv2d, prefix: &str) {
        conv.weight = Param::from_tensor(self.param(&format!("{prefix}.weight")));
    }

    fn bn(&self, bn: &mut BatchNorm, prefix: &str) {
        bn.gamma = Param::from_tensor(self.param(&format!("{prefix}.weight")));
        bn.beta = Param::from_tensor(self.param(&format!("{prefix}.bias")));
        bn.running_mean = RunningState::new(self.param(&format!("{prefix}.running_mean")));
        bn.running_var = RunningState::new(self.param(&format!("{prefix}.running_var")));
    }

    fn slim_rcb(&self, m: &mut SlimReluConvBn, prefix: &str) {
        self.slim_conv(&mut m.conv, &format!("{prefix}.conv"));
        for (i, bn) in m.bn.bns.iter_mut().enumerate() {
            self.bn(bn, &format!("{prefix}.bns.{i}"));
        }
    }

    fn input(&self) -> Tensor<4> {
        self.tensor(&self.doc["input"])
    }

    fn check<const D: usize>(&self, got: Tensor<D>, key: &str) {
        let want: Vec<f32> = self.doc[key]["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let got = got.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(got.len(), want.len(), "{key}: element count");
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst < TOL,
            "{key}: max |Burn − PyTorch| = {worst:e} ≥ {TOL:e}"
        );
    }
}

/// Eval mode on a plain device, train mode (batch statistics) on an autodiff device.
fn both_modes(run: impl Fn(&Device, &str)) {
    let dev = Device::flex();
    run(&dev, "output_eval");
    run(&dev.autodiff(), "output_train");
}

fn flatten(t: Tensor<4>) -> Tensor<1> {
    let n = t.shape().num_elements();
    t.reshape([n])
}

#[test]
fn mbconv_layer_matches_pytorch() {
    both_modes(|dev, key| {
        let f = Fixture::load("mbconv_layer.json", dev);
        // op 3 = MB3 5×5, 8 → 16, stride 2, projected shortcut.
        let mut m = MbconvLayerConfig::new(3, 8, 16).with_stride(2).init(dev);
        f.conv(&mut m.block.expand, "expand");
        f.bn(&mut m.block.bn1, "bn1");
        f.conv(&mut m.block.depthwise, "depthwise");
        f.bn(&mut m.block.bn2, "bn2");
        let se = m.block.se.as_mut().unwrap();
        f.conv(&mut se.reduce, "se.reduce");
        f.conv(&mut se.expand, "se.expand");
        f.conv(&mut m.block.project, "project");
        f.bn(&mut m.block.bn3, "bn3");
        f.conv(m.shortcut.conv.as_mut().unwrap(), "sc_conv");
        f.bn(m.shortcut.bn.as_mut().unwrap(), "sc_bn");
        let y = m.forward(f.input());
        assert_eq!(y.dims(), [2, 16, 4, 4]);
        f.check(y, key);
    });
}

#[test]
fn nats_cell_matches_pytorch() {
    both_modes(|dev, key| {
        let f = Fixture::load("nats_cell.json", dev);
        let mut m = InferCellConfig::new(4, 6).init(dev);
        for (edge, name) in [
            (&mut m.n0_n1, "n0_n1"),
            (&mut m.n0_n2, "n0_n2"),
            (&mut m.n1_n2, "n1_n2"),
            (&mut m.n1_n3, "n1_n3"),
            (&mut m.n2_n3, "n2_n3"),
        ] {
            f.conv(&mut edge.conv, &format!("{name}.conv"));
            f.bn(&mut edge.bn, &format!("{name}.bn"));
        }
        let skip = m.skip.as_mut().unwrap();
        assert!(!skip.leading_relu, "xautodl semantics by default");
        f.conv(&mut skip.conv, "skip_conv");
        f.bn(&mut skip.bn, "skip_bn");
        let y = m.forward(f.input());
        assert_eq!(y.dims(), [2, 6, 8, 8]);
        f.check(y, key);
    });
}

#[test]
fn slimmable_nats_cell_and_res_block_match_pytorch() {
    both_modes(|dev, key| {
        let f = Fixture::load("nats_slim.json", dev);
        let widths = SlimWidthsConfig::new().with_widths(vec![2, 4, 6, 8]);
        let mut cell = SlimInferCellConfig::new()
            .with_widths(widths.clone())
            .init(dev);
        for (edge, name) in [
            (&mut cell.n0_n1, "n0_n1"),
            (&mut cell.n0_n2, "n0_n2"),
            (&mut cell.n1_n2, "n1_n2"),
            (&mut cell.n1_n3, "n1_n3"),
            (&mut cell.n2_n3, "n2_n3"),
        ] {
            f.slim_rcb(edge, &format!("cell.{name}"));
        }
        f.slim_conv(&mut cell.reduce.conv, "cell.reduce.conv");
        for (i, bn) in cell.reduce.bn.bns.iter_mut().enumerate() {
            f.bn(bn, &format!("cell.reduce.bns.{i}"));
        }
        let mut res = SlimResBlockConfig::new(widths.clone()).init(dev);
        f.slim_rcb(&mut res.conv_a, "res.conv_a");
        f.slim_rcb(&mut res.conv_b, "res.conv_b");
        f.slim_conv(&mut res.down, "res.down");

        let c = cell.forward(f.input(), 1, 2);
        assert_eq!(c.dims(), [2, 6, 8, 8]);
        let r = res.forward(c.clone(), 3);
        assert_eq!(r.dims(), [2, 8, 4, 4]);
        f.check(Tensor::cat(vec![flatten(c), flatten(r)], 0), key);
        // The modules are usable after the check (no moved state).
        let _ = (cell.num_params(), res.num_params());
    });
}
