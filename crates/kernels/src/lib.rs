//! CPU kernels for burn-flex and their autodiff nodes, behind one functional front (issue 7 for
//! the speed, `docs/performance.md`; issue 17 for the layout, `docs/architecture.md`).
//!
//! Models call the functions re-exported here exactly like Burn's own ops
//! (`burn::tensor::module::conv2d`, `BatchNorm::forward`, `activation::silu`, …): same
//! arguments, same result; on burn-flex they run the fused kernels, on every other device (and
//! with the switches of [`dispatch`] off) Burn's ops.
//!
//! - [`dispatch`]: the one routing point (`is_flex`, `BOSSNAS_FAST_CONV`, `BOSSNAS_FUSED`, the
//!   batch-fold thresholds).
//! - [`cpu`]: the kernels on `f32` buffers (im2col/GEMM convs, batch norm, SiLU, softmax,
//!   attention, residual ReLU).
//! - [`nodes`]: the autodiff nodes around them.
//! - [`ops`]: the routed conv and attention.
//! - [`device`] (`--device cpu|wgpu|cuda`) and [`cpu_alloc`] (glibc trimming) for the binaries.
//!
//! The layers go one way: `cpu` ← `nodes` ← `ops` ← front, all asking `dispatch`.

pub mod cpu;
pub mod cpu_alloc;
pub mod device;
pub mod dispatch;
pub mod nodes;
pub mod ops;

pub use nodes::act::{scaled_softmax, silu, softmax};
pub use nodes::norm::{batch_norm, batch_norm_relu};
pub use nodes::residual::add_relu;
pub use ops::attention::{AttentionOrientation, attention, composed_attention};
pub use ops::conv::{conv2d, conv2d_module, pointwise};
