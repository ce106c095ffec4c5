//! The residual join `relu(a + b)` on `f32` buffers, the kernels of [`crate::nodes::residual`].

use super::uninit::zip_map;

/// `y = max(a + b, 0)`.
pub fn add_relu_forward(a: &[f32], b: &[f32]) -> Vec<f32> {
    zip_map(a, b, |x, y| (x + y).max(0.0))
}

/// `dy · [y > 0]`, the gradient of both summands.
pub fn add_relu_backward(y: &[f32], dy: &[f32]) -> Vec<f32> {
    zip_map(y, dy, |v, d| if v > 0.0 { d } else { 0.0 })
}
