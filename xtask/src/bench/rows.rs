//! The benchmark rows: each builds the project's real module at a real shape and returns a
//! closure doing one forward + backward (or one full training step). The PyTorch mirror in
//! `benches/torch_reference.py` has a row of the same name with the same layers and shapes.

use bossnas_blocks::mbconv::{MbconvLayer, MbconvLayerConfig};
use bossnas_blocks::res_att::{ResAtt, ResAttConfig};
use bossnas_blocks::res_conv::ResConvConfig;
use bossnas_supernet::Supernet;
use bossnas_supernet::nats::NatsSupernetConfig;
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Tensor};

use super::train_step;

/// Batch of the HyTra block rows. The real widths (1024 channels at 1/16, 2048 at 1/32) make
/// one forward + backward cost 10–45 GFLOP at batch 8 already; a larger batch only makes the
/// harness slower without changing which kernels run.
pub const HYTRA_BATCH: usize = 8;

/// The row whose rate stands for the machine's GEMM peak in the roofline table.
pub const GEMM_PEAK_ROW: &str = "gemm_2048";

/// One row: a name, what it measures, and a builder of the step closure.
pub struct Row {
    /// Stable name, shared with the PyTorch script.
    pub name: &'static str,
    /// Human description (layer, shape).
    pub what: &'static str,
    /// Builds the module and input on `device` and returns the timed step.
    pub build: fn(&Device) -> Box<dyn FnMut()>,
}

/// Every row, in report order.
pub fn all() -> Vec<Row> {
    vec![
        Row {
            name: GEMM_PEAK_ROW,
            what: "one 2048×2048×2048 float32 matmul, no autodiff: the machine's GEMM peak",
            build: gemm_2048,
        },
        Row {
            name: "resconv_s1_16",
            what: "ResConv 1024→1024 (planes 256), stride 1, 14×14, b8",
            build: |d| res_conv(d, 1024, 512, 1, 14),
        },
        Row {
            name: "resconv_s2_16",
            what: "ResConv 512@28×28 → 1024@14×14 (stride-2 entry), b8",
            build: |d| res_conv(d, 1024, 512, 2, 28),
        },
        Row {
            name: "resatt_s1_16",
            what: "ResAtt 1024→1024, 4 heads×64, stride 1, 14×14, b8",
            build: |d| res_att(d, 1024, 512, 4, 1, 14),
        },
        Row {
            name: "resatt_s2_16",
            what: "ResAtt 512@28×28 → 1024@14×14 (stride-2 entry), b8",
            build: |d| res_att(d, 1024, 512, 4, 2, 28),
        },
        Row {
            name: "resconv_s1_32",
            what: "ResConv 2048→2048 (planes 512), stride 1, 7×7, b8",
            build: |d| res_conv(d, 2048, 1024, 1, 7),
        },
        Row {
            name: "resconv_s2_32",
            what: "ResConv 1024@14×14 → 2048@7×7 (stride-2 entry), b8",
            build: |d| res_conv(d, 2048, 1024, 2, 14),
        },
        Row {
            name: "resatt_s1_32",
            what: "ResAtt 2048→2048, 8 heads×64, stride 1, 7×7, b8",
            build: |d| res_att(d, 2048, 1024, 8, 1, 7),
        },
        Row {
            name: "resatt_s2_32",
            what: "ResAtt 1024@14×14 → 2048@7×7 (stride-2 entry), b8",
            build: |d| res_att(d, 2048, 1024, 8, 2, 14),
        },
        Row {
            name: "mbconv_mb6k5",
            what: "MBConv layer MB6 5×5 SE0.25, 40→40, 28×28, b32",
            build: mbconv,
        },
        Row {
            name: "nats_block0",
            what: "NATS block 0 (stem, cell0 @64, res1 64→32), 32×32, b256",
            build: nats_block0,
        },
        Row {
            name: "train_step_nats",
            what: "ensemble-bootstrap step, NATS block 0, 8 paths, b32 (nats-c10-cpu heads)",
            build: train_step::build,
        },
        Row {
            name: "train_step_nats_cpu",
            what: "the same step at the nats-c10-cpu preset's quarter widths (2…16): the main job's step",
            build: train_step::build_cpu,
        },
    ]
}

/// The rate every other row is measured against: a GEMM large enough that packing and
/// threading overheads are amortised (17.2 GFLOP).
fn gemm_2048(d: &Device) -> Box<dyn FnMut()> {
    let a: Tensor<2> = Tensor::random([2048, 2048], Distribution::Normal(0.0, 1.0), d);
    let b: Tensor<2> = Tensor::random([2048, 2048], Distribution::Normal(0.0, 1.0), d);
    Box::new(move || {
        let c = a.clone().matmul(b.clone());
        // Flex is eager, but reading one value makes sure the product was computed.
        std::hint::black_box(c.slice([0..1, 0..1]).into_scalar::<f32>());
    })
}

fn input(shape: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

/// `mean(out²)` backward plus the gradient collection an optimizer does.
fn backward<M: Module>(out: Tensor<4>, module: &M) {
    let loss = out.powi_scalar(2).mean();
    let grads = GradientsParams::from_grads(loss.backward(), module);
    std::hint::black_box(grads.len());
}

/// Input side: `out` channels at stride 1 (`side` = the op's resolution), the stride-2
/// entry's `up` channels at twice the op's resolution (`side` = the input resolution).
fn res_conv(d: &Device, out: usize, up: usize, stride: usize, side: usize) -> Box<dyn FnMut()> {
    let m = ResConvConfig::new(out, out / 4)
        .with_up_in_channels(Some(up))
        .init(d);
    let c_in = if stride == 1 { out } else { up };
    let x = input([HYTRA_BATCH, c_in, side, side], d);
    Box::new(move || backward(m.forward(x.clone(), stride), &m))
}

fn res_att(
    d: &Device,
    out: usize,
    up: usize,
    heads: usize,
    stride: usize,
    side: usize,
) -> Box<dyn FnMut()> {
    let m: ResAtt = ResAttConfig::new(out, out)
        .with_heads(heads)
        .with_dim_head(64)
        .with_up_in_channels(Some(up))
        .init(d);
    let c_in = if stride == 1 { out } else { up };
    let x = input([HYTRA_BATCH, c_in, side, side], d);
    Box::new(move || backward(m.forward(x.clone(), stride), &m))
}

fn mbconv(d: &Device) -> Box<dyn FnMut()> {
    let m: MbconvLayer = MbconvLayerConfig::new(1, 40, 40).init(d);
    let x = input([32, 40, 28, 28], d);
    Box::new(move || backward(m.forward(x.clone()), &m))
}

fn nats_block0(d: &Device) -> Box<dyn FnMut()> {
    let net = NatsSupernetConfig::new().init(d);
    let x = input([256, 3, 32, 32], d);
    Box::new(move || backward(net.forward_block(x.clone(), &[], &[7, 3]), &net))
}
