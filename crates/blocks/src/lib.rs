//! Burn modules for the BossNAS candidate operations. Only modules: the CPU kernels they run
//! on burn-flex, the routing and the device selection live in `bossnas-kernels`, whose
//! functional front (`conv2d_module`, `batch_norm`, `silu`, `attention`, …) the modules call
//! like Burn's own ops.
//!
//! - HyTra: [`res_conv`] (ResConv), [`res_att`] (ResAtt with the depthwise-conv positional
//!   encoding of [`peg`], which also does the stride), [`attention`], [`stem`],
//!   [`search_entry`], [`hytra_layers`] and the retraining versions in [`retrain`].
//! - MBConv and NATS-SSS: [`mbconv`], [`nats`] and the slimmable layers of [`slimmable`].

// HyTra ops (search-time and retraining versions).
pub mod attention;
pub mod hytra_layers;
pub mod params;
pub mod peg;
pub mod res_att;
pub mod res_conv;
pub mod retrain;
pub mod search_entry;
pub mod stem;

// MBConv and NATS-SSS ops.
pub mod mbconv;
pub mod nats;
pub mod slimmable;
