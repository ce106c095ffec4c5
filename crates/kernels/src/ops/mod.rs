//! The routed ops that pick between a node of [`crate::nodes`] and Burn's own ops: convolution
//! (dense node, 1×1 as matmul, or Burn's `conv2d`) and the attention core (fused node or
//! composed).

pub mod attention;
pub mod conv;
