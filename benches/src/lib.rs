//! Shared set-up of the benchmarks: the measured steps, so that `cargo bench` and other
//! harnesses time exactly the same work.

use bossnas_blocks::res_att::{ResAtt, ResAttConfig};
use bossnas_blocks::res_conv::{ResConv, ResConvConfig};
use bossnas_supernet::Supernet;
use bossnas_supernet::nats::{NatsSupernet, NatsSupernetConfig};
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Tensor};

/// The CPU autodiff device every benchmark runs on.
pub fn device() -> Device {
    Device::flex().autodiff()
}

/// Random input `[batch, channels, side, side]`.
pub fn input(batch: usize, channels: usize, side: usize, device: &Device) -> Tensor<4> {
    Tensor::random(
        [batch, channels, side, side],
        Distribution::Normal(0.0, 1.0),
        device,
    )
}

/// A stride-1 ResConv with `channels` in and out (bottleneck `channels/4`).
pub fn res_conv(channels: usize, device: &Device) -> ResConv {
    ResConvConfig::new(channels, channels / 4).init(device)
}

/// A stride-1 ResAtt with `channels` in and out: attention width `channels/4`, 4 heads.
pub fn res_att(channels: usize, device: &Device) -> ResAtt {
    ResAttConfig::new(channels, channels)
        .with_heads(4)
        .with_dim_head(channels / 16)
        .init(device)
}

/// The NATS-SSS CIFAR-10 supernet at full width (64).
pub fn nats_supernet(device: &Device) -> NatsSupernet {
    NatsSupernetConfig::new().init(device)
}

/// Forward + backward of a module step and the gradient collection the optimizer does.
fn backward<M: Module>(out: Tensor<4>, module: &M) -> usize {
    let loss = out.powf_scalar(2.0).mean();
    let grads = GradientsParams::from_grads(loss.backward(), module);
    grads.len()
}

/// One training step of a ResConv (stride 1).
pub fn res_conv_step(m: &ResConv, x: Tensor<4>) -> usize {
    backward(m.forward(x, 1), m)
}

/// One training step of a ResAtt (stride 1).
pub fn res_att_step(m: &ResAtt, x: Tensor<4>) -> usize {
    backward(m.forward(x, 1), m)
}

/// One training step of NATS block 0 along `path` (stem included).
pub fn nats_block0_step(net: &NatsSupernet, images: Tensor<4>, path: &[usize]) -> usize {
    backward(net.forward_block(images, &[], path), net)
}
