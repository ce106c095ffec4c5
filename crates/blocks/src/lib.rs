//! Burn modules for the BossNAS candidate operations, and the CPU kernels behind them.
//!
//! - HyTra: [`res_conv`] (ResConv), [`res_att`] (ResAtt with the depthwise-conv positional
//!   encoding of [`peg`], which also does the stride), [`attention`], [`stem`],
//!   [`search_entry`], [`hytra_layers`] and the retraining versions in [`retrain`].
//! - MBConv and NATS-SSS: [`mbconv`], [`nats`] and the slimmable layers of [`slimmable`].
//! - Device selection: [`device`] (`--device flex|wgpu|cuda`).
//! - CPU speed on burn-flex (issue 7, `docs/performance.md`): [`fast_conv`] routes convs,
//!   [`dense_conv`] / [`flex_conv`] are the conv node and its kernels, [`fused_norm`] /
//!   [`flex_norm`] the training-mode batch norm (and BN + ReLU), [`fused_act`] SiLU and softmax,
//!   [`fused_attention`] the attention core, [`fused_residual`] the residual `relu(a + b)`; every other device uses Burn's own ops.

// HyTra ops (search-time and retraining versions).
pub mod attention;
pub mod cpu_alloc;
pub mod dense_conv;
pub mod device;
pub mod fast_conv;
mod flex_buffers;
pub mod flex_conv;
pub mod flex_norm;
pub mod fused_act;
pub mod fused_attention;
pub mod fused_norm;
pub mod fused_residual;
pub mod hytra_layers;
pub mod peg;
pub mod res_att;
pub mod res_conv;
pub mod retrain;
pub mod search_entry;
pub mod stem;
mod uninit;

// MBConv and NATS-SSS ops.
pub mod mbconv;
pub mod nats;
pub mod slimmable;
