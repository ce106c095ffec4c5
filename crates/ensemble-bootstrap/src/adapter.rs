//! Channel adapters in front of a block's projector (spec §3.5, §6.3).
//!
//! One projector serves every candidate of a block, but candidates may end with different
//! channel counts (HyTra: one per scale; NATS: one per width). Each distinct count `C` that
//! differs from the projector input `N` gets a [`ChannelAdapter`]:
//!
//! - optional depthwise conv, kernel = stride = `N / C`, groups = `C`, no bias (HyTra's
//!   `fix_channels`: maps every scale to the 1/32 grid, because channels double whenever the
//!   resolution halves);
//! - 1×1 conv `C → N`, no bias;
//! - BN2d(`N`).
//!
//! NATS's `channel_fix` is the same without the depthwise part ([`AdapterSet::new`] with
//! `spatial = false`). A count equal to `N` passes through unchanged (MBConv, or HyTra paths
//! ending at 1/32).

use bossnas_kernels::batch_norm;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::{Device, Tensor};

/// `[depthwise k×k stride k] → 1×1 conv → BN`, mapping `in_channels` to `out_channels`.
///
/// # Shapes
/// - input: `[batch, in_channels, H, W]`
/// - output: `[batch, out_channels, H / k, W / k]` (`k = 1` without the depthwise conv)
#[derive(Module, Debug)]
pub struct ChannelAdapter {
    /// Depthwise spatial reduction (HyTra only).
    pub depthwise: Option<Conv2d>,
    /// 1×1 channel projection, no bias.
    pub pointwise: Conv2d,
    /// BatchNorm over the projected channels.
    pub bn: BatchNorm,
}

impl ChannelAdapter {
    /// A new adapter; `spatial_factor > 1` adds the depthwise conv with that kernel and stride.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        spatial_factor: usize,
        device: &Device,
    ) -> Self {
        let depthwise = (spatial_factor > 1).then(|| {
            Conv2dConfig::new([in_channels, in_channels], [spatial_factor, spatial_factor])
                .with_stride([spatial_factor, spatial_factor])
                .with_groups(in_channels)
                .with_bias(false)
                .init(device)
        });
        Self {
            depthwise,
            pointwise: Conv2dConfig::new([in_channels, out_channels], [1, 1])
                .with_bias(false)
                .init(device),
            bn: BatchNormConfig::new(out_channels).init(device),
        }
    }

    /// See the type-level `# Shapes`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // Through `bossnas_kernels::conv2d_module` (the CPU kernels on burn-flex, Burn's ops elsewhere).
        let x = match &self.depthwise {
            Some(dw) => bossnas_kernels::conv2d_module(dw, x),
            None => x,
        };
        batch_norm(&self.bn, bossnas_kernels::conv2d_module(&self.pointwise, x))
    }
}

/// The adapters of one block: one per distinct candidate channel count that differs from the
/// projector input.
#[derive(Module, Debug)]
pub struct AdapterSet {
    /// Projector input channels `N`.
    pub out_channels: usize,
    /// Channel count served by `adapters[i]`.
    pub channels: Vec<usize>,
    /// The adapters, parallel to `channels`.
    pub adapters: Vec<ChannelAdapter>,
}

/// A channel count that no adapter can map.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot adapt {channels} block channels to a {out_channels}-channel projector{reason}")]
pub struct AdapterError {
    /// The block's channel count.
    pub channels: usize,
    /// The projector input.
    pub out_channels: usize,
    /// Why.
    pub reason: String,
}

impl AdapterSet {
    /// Adapters for every count in `block_channels` (duplicates ignored) that differs from
    /// `out_channels`. With `spatial`, the depthwise factor is `out_channels / C`, which must
    /// be an integer ≥ 1.
    pub fn new(
        block_channels: &[usize],
        out_channels: usize,
        spatial: bool,
        device: &Device,
    ) -> Result<Self, AdapterError> {
        let mut channels: Vec<usize> = block_channels
            .iter()
            .copied()
            .filter(|&c| c != out_channels)
            .collect();
        channels.sort_unstable();
        channels.dedup();
        let mut adapters = Vec::with_capacity(channels.len());
        for &c in &channels {
            let factor = if spatial {
                if c == 0 || !out_channels.is_multiple_of(c) {
                    return Err(AdapterError {
                        channels: c,
                        out_channels,
                        reason: " (spatial adapters need the projector width to be a multiple \
                                 of the block width)"
                            .into(),
                    });
                }
                out_channels / c
            } else {
                1
            };
            adapters.push(ChannelAdapter::new(c, out_channels, factor, device));
        }
        Ok(Self {
            out_channels,
            channels,
            adapters,
        })
    }

    /// Adapts `features` by its channel count (identity when it already has `out_channels`).
    ///
    /// # Panics
    /// If the channel count has no adapter (it was not in the block's population).
    pub fn forward(&self, features: Tensor<4>) -> Tensor<4> {
        let c = features.dims()[1];
        if c == self.out_channels {
            return features;
        }
        let i = self
            .channels
            .iter()
            .position(|&x| x == c)
            .unwrap_or_else(|| {
                panic!(
                    "no adapter for {c} channels (this block's adapters: {:?} → {})",
                    self.channels, self.out_channels
                )
            });
        self.adapters[i].forward(features)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapters_per_distinct_count_and_shapes() {
        let d = Device::flex();
        let set = AdapterSet::new(&[16, 8, 32, 8], 32, true, &d).unwrap();
        assert_eq!(set.channels, vec![8, 16]);
        let y = set.forward(Tensor::zeros([2, 8, 16, 16], &d));
        assert_eq!(y.dims(), [2, 32, 4, 4]);
        let y = set.forward(Tensor::zeros([2, 16, 8, 8], &d));
        assert_eq!(y.dims(), [2, 32, 4, 4]);
        let y = set.forward(Tensor::zeros([2, 32, 4, 4], &d));
        assert_eq!(y.dims(), [2, 32, 4, 4]);

        let flat = AdapterSet::new(&[4, 8], 16, false, &d).unwrap();
        assert!(flat.adapters.iter().all(|a| a.depthwise.is_none()));
        assert_eq!(
            flat.forward(Tensor::zeros([2, 4, 6, 6], &d)).dims(),
            [2, 16, 6, 6]
        );
        assert!(AdapterSet::new(&[24], 64, true, &d).is_err());
    }
}
