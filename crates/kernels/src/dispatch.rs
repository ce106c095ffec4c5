//! The one place that decides where an op runs (issue 17): whether a device is burn-flex, the
//! environment switches `BOSSNAS_FAST_CONV` and `BOSSNAS_FUSED` (each read once per process),
//! and the batch-fold thresholds of the conv kernels. The functional front ([`crate::conv2d`],
//! [`crate::batch_norm`], …) asks only this module, so a new kernel adds its test here and
//! nowhere in the models.

use std::sync::OnceLock;

use burn::backend::DispatchDevice;
use burn::tensor::Device;

/// Whether tensors on `device` go to burn-flex (plain or autodiff), where the node is routed.
pub fn is_flex(device: &Device) -> bool {
    #[allow(unreachable_patterns)]
    match device.as_dispatch() {
        DispatchDevice::Flex(_) => true,
        DispatchDevice::Autodiff(inner) => matches!(inner.clone().inner(), DispatchDevice::Flex(_)),
        _ => false,
    }
}

/// Whether the fused nodes (batch norm, BN + ReLU, SiLU, softmax, attention, residual) run on
/// tensors of `device`: burn-flex and [`fused_enabled`].
pub fn fused_on(device: &Device) -> bool {
    fused_enabled() && is_flex(device)
}

/// Whether the fused nodes (this batch norm, and SiLU / softmax of [`crate::nodes::act`]) are
/// on: `BOSSNAS_FUSED` unset or anything but `off`/`0` (read once per process; `off` is the A/B
/// switch and the fallback should a kernel misbehave).
pub fn fused_enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        !matches!(
            std::env::var("BOSSNAS_FUSED").as_deref(),
            Ok("off") | Ok("0")
        )
    })
}

/// Which fast paths are on, from `BOSSNAS_FAST_CONV` (read once per process):
/// unset (or any other value): both, the default; `1x1`: [`crate::ops::conv::pointwise`] only (dense convs on
/// Burn's `conv2d`); `off`/`0`: none (every conv is Burn's `conv2d`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvMode {
    /// Burn's `conv2d` for everything.
    Off,
    /// Plain 1×1 convs as matmuls; everything else Burn's `conv2d`.
    PointwiseOnly,
    /// Dense, depthwise and 1×1 convs through [`crate::nodes::conv::conv2d`] on burn-flex,
    /// 1×1 convs as matmuls elsewhere (the default; see [`crate::conv2d`]).
    All,
}

/// The [`ConvMode`] of this process.
pub fn conv_mode() -> ConvMode {
    static MODE: OnceLock<ConvMode> = OnceLock::new();
    *MODE.get_or_init(|| match std::env::var("BOSSNAS_FAST_CONV").as_deref() {
        Ok("off") | Ok("0") => ConvMode::Off,
        Ok("1x1") => ConvMode::PointwiseOnly,
        _ => ConvMode::All,
    })
}

/// Whether any fast path is on (`BOSSNAS_FAST_CONV` is not `off`/`0`).
pub fn conv_enabled() -> bool {
    conv_mode() != ConvMode::Off
}

/// Below this many output positions per image (`H·W`), [`crate::ops::conv::pointwise`] folds the batch into one
/// GEMM. Measured on flex (release, 2 threads, forward + backward, batch 8): at 7×7,
/// 2048 → 512 took 26 ms folded against 53 ms batched, 512 → 2048 18 vs 31 ms; at 14×14,
/// 1024 → 256, 17 vs 19 ms (`docs/performance.md`).
pub const FOLD_BATCH_BELOW: usize = 100;

/// Largest batch im2col matrix (values) the folded dense path builds (32 MB of `f32`).
pub const FOLD_COLS_MAX: usize = 8 << 20;
