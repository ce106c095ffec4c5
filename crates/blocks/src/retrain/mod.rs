//! Retraining (stand-alone BossNet) versions of the HyTra ops (spec §2.6).
//!
//! They differ from the search ops in [`crate::res_conv`]/[`crate::res_att`]:
//! - one stride per instance (applied in the PEG; `conv2` is always stride 1);
//! - shortcuts are timm's `avg_down` form: AvgPool2d(2, s, ceil, no pad count) → 1×1 conv → BN,
//!   **without** activation (identity when stride 1 and the width is unchanged);
//! - optional SiLU activation, optional timm SE gate after `bn3` (ResConv only) and drop-path
//!   (ResConv only);
//! - convs use kaiming-normal (fan-out, ReLU gain) init; the last BN's γ starts at 0.

mod boss_res_att;
mod boss_res_conv;

pub use boss_res_att::{BossResAtt, BossResAttConfig};
pub use boss_res_conv::{BossResConv, BossResConvConfig};

use burn::nn::Initializer;

/// kaiming_normal(mode = fan_out, nonlinearity = relu), as BossNet initialises its convs.
pub fn retrain_conv_init() -> Initializer {
    Initializer::KaimingNormal {
        gain: core::f64::consts::SQRT_2,
        fan_out_only: true,
    }
}

/// A shortcut is needed unless the block keeps both the resolution and the width.
pub(crate) fn needs_shortcut(c_in: usize, c_out: usize, stride: usize) -> bool {
    stride != 1 || c_in != c_out
}
