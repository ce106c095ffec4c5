//! The residual join `relu(a + b)` of the HyTra ops as one autodiff node on burn-flex (issue 7,
//! CPU speed).
//!
//! Burn runs it as an addition and a ReLU: two forward passes, each into a freshly zeroed and
//! re-aligned output on the calling thread, and a masked-gradient pass backward. [`add_relu`]
//! computes `y = max(a + b, 0)` in one parallel pass into an output that is not zero-filled,
//! keeps `y`, and hands both parents the same gradient `dy · [y > 0]` from one pass.
//!
//! Other devices and dtypes, and `BOSSNAS_FUSED=off` ([`crate::dispatch::fused_enabled`]), use
//! Burn's `relu(a + b)`.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Flex, TensorMetadata, backend_extension};
use burn::tensor::Tensor;

use crate::cpu::buffers::{contiguous_f32, flex_like, values};
use crate::cpu::residual::{add_relu_backward, add_relu_forward};
use crate::dispatch::fused_on;

/// The custom operation: `relu(a + b)` differentiated as one node.
#[backend_extension(Flex, Autodiff)]
pub trait FusedResidualBackend: Backend {
    /// `max(a + b, 0)` for two tensors of the same shape.
    fn fused_add_relu(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl FusedResidualBackend for Flex {
    fn fused_add_relu(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::add_relu_forward_kernel(a, b)
    }
}

/// The kernels behind the node. Defaults: backend primitives (any backend); `Flex` overrides
/// them with the buffer kernels of this module for `f32`.
pub trait ResidualKernels: Backend {
    /// `max(a + b, 0)`.
    fn add_relu_forward_kernel(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        generic_forward::<Self>(a, b)
    }

    /// `dy · [y > 0]` from the output `y`.
    fn add_relu_backward_kernel(
        y: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        generic_backward::<Self>(y, grad)
    }
}

/// `relu(a + b)` with backend primitives (any backend, any dtype; broadcasts).
fn generic_forward<B: Backend>(a: FloatTensor<B>, b: FloatTensor<B>) -> FloatTensor<B> {
    B::relu(B::float_add(a, b))
}

/// The ReLU's backward with backend primitives.
fn generic_backward<B: Backend>(y: FloatTensor<B>, grad: FloatTensor<B>) -> FloatTensor<B> {
    B::relu_backward(y, grad)
}

impl ResidualKernels for Flex {
    fn add_relu_forward_kernel(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        match (contiguous_f32(&a), contiguous_f32(&b)) {
            (Some(ac), Some(bc)) if a.shape() == b.shape() => {
                flex_like(add_relu_forward(values(&ac), values(&bc)), &a)
            }
            _ => generic_forward::<Self>(a, b),
        }
    }

    fn add_relu_backward_kernel(
        y: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        match (contiguous_f32(&y), contiguous_f32(&grad)) {
            (Some(yc), Some(gc)) => flex_like(add_relu_backward(values(&yc), values(&gc)), &y),
            _ => generic_backward::<Self>(y, grad),
        }
    }
}

#[derive(Debug)]
struct AddReluNode;

impl<B: ResidualKernels> Backward<B, 2> for AddReluNode {
    // The output (its sign is the mask).
    type State = B::FloatTensorPrimitive;

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_a, node_b] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let dx = B::add_relu_backward_kernel(ops.state, grad);
        match (node_a, node_b) {
            (Some(a), Some(b)) => {
                grads.register::<B>(a.id, dx.clone());
                grads.register::<B>(b.id, dx);
            }
            (Some(n), None) | (None, Some(n)) => grads.register::<B>(n.id, dx),
            (None, None) => {}
        }
    }
}

impl<B: ResidualKernels, C: CheckpointStrategy> FusedResidualBackend for Autodiff<B, C> {
    #[inline(never)]
    fn fused_add_relu(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        match AddReluNode
            .prepare::<C>([a.node(), b.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::add_relu_forward_kernel(a.into_primitive(), b.into_primitive());
                prep.finish(y.clone(), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::add_relu_forward_kernel(
                a.into_primitive(),
                b.into_primitive(),
            )),
        }
    }
}

/// `relu(a + b)` for two tensors of the same shape, as one fused node on burn-flex (module
/// docs), otherwise Burn's ops (which also broadcast).
///
/// # Shapes
/// - `a`, `b` and the output: the same shape
pub fn add_relu<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
    if a.dims() != b.dims() || !fused_on(&a.device()) {
        return burn::tensor::activation::relu(a + b);
    }
    Tensor::from_dispatch(
        <burn::backend::Dispatch as FusedResidualBackend>::fused_add_relu(
            a.into_dispatch(),
            b.into_dispatch(),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    /// Output and both summands' gradients equal Burn's `relu(a + b)` exactly, with one or
    /// both summands tracked; untracked and plain-flex calls too.
    #[test]
    fn matches_burn_add_relu() {
        let d = Device::flex().autodiff();
        let a0 = Tensor::<3>::random([3, 5, 4099], Distribution::Normal(0.0, 1.0), &d);
        let b0 = Tensor::<3>::random([3, 5, 4099], Distribution::Normal(0.0, 1.0), &d);
        let g = Tensor::<3>::random(a0.dims(), Distribution::Normal(0.0, 1.0), &d).detach();
        for track_b in [true, false] {
            let run = |fused: bool| {
                let a = a0.clone().detach().require_grad();
                let b = b0.clone().detach();
                let b = if track_b { b.require_grad() } else { b };
                let y = if fused {
                    add_relu(a.clone(), b.clone())
                } else {
                    burn::tensor::activation::relu(a.clone() + b.clone())
                };
                let grads = (y.clone() * g.clone()).sum().backward();
                let gb = b.grad(&grads).map(to_vec);
                (
                    to_vec(y.detach().inner()),
                    to_vec(a.grad(&grads).unwrap()),
                    gb,
                )
            };
            let (y1, da1, db1) = run(true);
            let (y2, da2, db2) = run(false);
            assert_eq!(y1, y2);
            assert_eq!(da1, da2);
            assert_eq!(db1, db2);
            assert_eq!(db1.is_some(), track_b);
            assert!(y1.contains(&0.0) && y1.iter().any(|&v| v > 0.0));
        }
        let plain = add_relu(a0.clone().inner(), b0.clone().inner());
        let want = burn::tensor::activation::relu(a0.inner() + b0.inner());
        assert_eq!(to_vec(plain), to_vec(want));
    }
}
