//! The CPU kernels proper: loops and GEMM calls over plain `f32` buffers, no tensors, no
//! autodiff. Each is tested against a naive reference in its own file; the nodes of
//! [`crate::nodes`] wrap them for Burn.

pub mod act;
pub mod attention;
pub(crate) mod buffers;
pub mod conv;
pub mod norm;
pub mod residual;
pub(crate) mod uninit;
