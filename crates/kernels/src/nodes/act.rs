//! SiLU (`x · sigmoid(x)`) and last-dimension softmax as autodiff nodes with single-pass
//! kernels on burn-flex (issue 7, CPU speed).
//!
//! Burn 0.22 composes `silu` as `x * sigmoid(x)`: two forward passes, and a backward of four
//! (the product rule's two products, sigmoid's backward, the sum of both branches), with a
//! scalar `expf` per element. [`silu`] computes the forward in one pass and the backward
//! `dx = dy · s · (1 + x · (1 − s))`, `s = sigmoid(x)`, in another, with a vectorisable `exp`
//! ([`exp_f32`], relative error below 2e-7).
//!
//! Softmax likewise: Burn's autodiff composes it from max, sub, exp, sum and div and
//! differentiates each; [`softmax`] keeps the output and computes `dx = y · (dy − Σ dy·y)` in
//! one pass per row. [`scaled_softmax`] folds a constant factor into the same node
//! (`softmax(s·x)`, the attention's `1/√d`), saving a separate scaling op and its backward.
//!
//! Other devices and dtypes, and `BOSSNAS_FUSED=off` (the one switch for all fused nodes,
//! [`crate::dispatch::fused_enabled`]), use Burn's `silu` / `softmax`.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Flex, TensorMetadata, backend_extension};
use burn::tensor::Tensor;

use crate::cpu::act::{silu_backward, silu_forward, softmax_backward, softmax_forward};
use crate::cpu::buffers::{contiguous_f32, flex_like, values};
use crate::dispatch::fused_on;

/// The custom operations: SiLU and last-dimension softmax, each differentiated as one node.
#[backend_extension(Flex, Autodiff)]
pub trait FusedActivationBackend: Backend {
    /// `x · sigmoid(x)`.
    fn fused_silu(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Softmax of `scale · x` over the last dimension.
    fn fused_softmax_last(x: FloatTensor<Self>, scale: f64) -> FloatTensor<Self>;
}

impl FusedActivationBackend for Flex {
    fn fused_silu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::silu_forward_kernel(x)
    }

    fn fused_softmax_last(x: FloatTensor<Self>, scale: f64) -> FloatTensor<Self> {
        Self::softmax_forward_kernel(x, scale)
    }
}

/// The last dimension of `t`.
fn last_dim(t: &impl TensorMetadata) -> usize {
    t.shape().num_dims() - 1
}

/// The kernels behind the two nodes. Defaults: backend primitives (any backend); `Flex`
/// overrides them with the buffer kernels of this module for `f32`.
pub trait ActivationKernels: Backend {
    /// `x · sigmoid(x)`.
    fn silu_forward_kernel(x: FloatTensor<Self>) -> FloatTensor<Self> {
        generic::silu::<Self>(x)
    }

    /// `dy · s · (1 + x · (1 − s))`.
    fn silu_backward_kernel(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        generic::silu_backward::<Self>(x, grad)
    }

    /// Softmax of `scale · x` over the last dimension.
    fn softmax_forward_kernel(x: FloatTensor<Self>, scale: f64) -> FloatTensor<Self> {
        generic::softmax::<Self>(x, scale)
    }

    /// `scale · y · (dy − Σ_last dy·y)` from the softmax output `y`.
    fn softmax_backward_kernel(
        y: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scale: f64,
    ) -> FloatTensor<Self> {
        generic::softmax_backward::<Self>(y, grad, scale)
    }
}

/// The kernels written with backend primitives (any backend, any dtype).
mod generic {
    use super::*;

    pub fn silu<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
        B::float_mul(x.clone(), B::sigmoid(x))
    }

    pub fn silu_backward<B: Backend>(x: FloatTensor<B>, grad: FloatTensor<B>) -> FloatTensor<B> {
        let s = B::sigmoid(x.clone());
        let one_minus = B::float_add_scalar(B::float_neg(s.clone()), 1.0.into());
        let inner = B::float_add_scalar(B::float_mul(x, one_minus), 1.0.into());
        B::float_mul(grad, B::float_mul(s, inner))
    }

    pub fn softmax<B: Backend>(x: FloatTensor<B>, scale: f64) -> FloatTensor<B> {
        let dim = last_dim(&x);
        let x = if scale == 1.0 {
            x
        } else {
            B::float_mul_scalar(x, scale.into())
        };
        B::softmax(x, dim)
    }

    pub fn softmax_backward<B: Backend>(
        y: FloatTensor<B>,
        grad: FloatTensor<B>,
        scale: f64,
    ) -> FloatTensor<B> {
        let dim = last_dim(&y);
        let dot = B::float_sum_dim(B::float_mul(grad.clone(), y.clone()), dim);
        let dx = B::float_mul(y, B::float_sub(grad, dot));
        if scale == 1.0 {
            dx
        } else {
            B::float_mul_scalar(dx, scale.into())
        }
    }
}

/// Length of the last dimension (1 for a scalar-shaped tensor).
fn row_len(t: &FlexTensor) -> usize {
    t.shape().as_slice().last().copied().unwrap_or(1)
}

impl ActivationKernels for Flex {
    fn silu_forward_kernel(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match contiguous_f32(&x) {
            Some(xc) => flex_like(silu_forward(values(&xc)), &x),
            None => generic::silu::<Self>(x),
        }
    }

    fn silu_backward_kernel(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        match (contiguous_f32(&x), contiguous_f32(&grad)) {
            (Some(xc), Some(gc)) => flex_like(silu_backward(values(&xc), values(&gc)), &x),
            _ => generic::silu_backward::<Self>(x, grad),
        }
    }

    fn softmax_forward_kernel(x: FloatTensor<Self>, scale: f64) -> FloatTensor<Self> {
        match contiguous_f32(&x) {
            Some(xc) => flex_like(softmax_forward(values(&xc), row_len(&x), scale as f32), &x),
            None => generic::softmax::<Self>(x, scale),
        }
    }

    fn softmax_backward_kernel(
        y: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scale: f64,
    ) -> FloatTensor<Self> {
        match (contiguous_f32(&y), contiguous_f32(&grad)) {
            (Some(yc), Some(gc)) => flex_like(
                softmax_backward(values(&yc), values(&gc), row_len(&y), scale as f32),
                &y,
            ),
            _ => generic::softmax_backward::<Self>(y, grad, scale),
        }
    }
}

#[derive(Debug)]
struct SiluNode;

impl<B: ActivationKernels> Backward<B, 1> for SiluNode {
    type State = NodeId;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let x = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(ops.state);
        if let Some(node) = node_x {
            grads.register::<B>(node.id, B::silu_backward_kernel(x, grad));
        }
    }
}

/// The node of a softmax of `scale · x`.
#[derive(Debug)]
struct SoftmaxNode {
    scale: f64,
}

impl<B: ActivationKernels> Backward<B, 1> for SoftmaxNode {
    // The output, kept as computed (the backward needs nothing else).
    type State = B::FloatTensorPrimitive;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(node) = node_x {
            let dx = B::softmax_backward_kernel(ops.state, grad, self.scale);
            grads.register::<B>(node.id, dx);
        }
    }
}

impl<B: ActivationKernels, C: CheckpointStrategy> FusedActivationBackend for Autodiff<B, C> {
    #[inline(never)]
    fn fused_silu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match SiluNode.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let y = B::silu_forward_kernel(x.into_primitive());
                prep.finish(x_state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::silu_forward_kernel(x.into_primitive())),
        }
    }

    #[inline(never)]
    fn fused_softmax_last(x: FloatTensor<Self>, scale: f64) -> FloatTensor<Self> {
        match (SoftmaxNode { scale })
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::softmax_forward_kernel(x.into_primitive(), scale);
                prep.finish(y.clone(), y)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::softmax_forward_kernel(x.into_primitive(), scale))
            }
        }
    }
}

/// SiLU (`x · sigmoid(x)`), same result as `burn::tensor::activation::silu` within float
/// tolerance, as one fused node on burn-flex (module docs).
///
/// # Shapes
/// - input and output: any shape
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !fused_on(&x.device()) {
        return burn::tensor::activation::silu(x);
    }
    Tensor::from_dispatch(
        <burn::backend::Dispatch as FusedActivationBackend>::fused_silu(x.into_dispatch()),
    )
}

/// Softmax over dimension `dim`, same result as `burn::tensor::activation::softmax` within
/// float tolerance; over the last dimension on burn-flex as one fused node (Burn's autodiff
/// composes it from five ops and differentiates each), otherwise Burn's.
///
/// # Shapes
/// - input and output: any shape
pub fn softmax<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    scaled_softmax(x, dim, 1.0)
}

/// `softmax(scale · x)` over dimension `dim`: on burn-flex over the last dimension one fused
/// node (no separate scaling op, forward or backward), otherwise Burn's `softmax` of
/// `x.mul_scalar(scale)`.
///
/// # Shapes
/// - input and output: any shape
pub fn scaled_softmax<const D: usize>(x: Tensor<D>, dim: usize, scale: f64) -> Tensor<D> {
    if dim + 1 != D || !fused_on(&x.device()) {
        let x = if scale == 1.0 { x } else { x.mul_scalar(scale) };
        return burn::tensor::activation::softmax(x, dim);
    }
    Tensor::from_dispatch(
        <burn::backend::Dispatch as FusedActivationBackend>::fused_softmax_last(
            x.into_dispatch(),
            scale,
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::act::exp_f32;
    use burn::tensor::{Device, Distribution};

    #[test]
    fn exp_is_accurate_and_saturates() {
        let mut worst = 0f64;
        for i in -8730..=8830 {
            let x = i as f32 * 0.01;
            let (got, want) = (exp_f32(x) as f64, (x as f64).exp());
            worst = worst.max((got - want).abs() / want);
        }
        assert!(worst < 2e-7, "relative error {worst}");
        assert!(exp_f32(-1000.0) < 1e-37 && exp_f32(-1000.0) >= 0.0);
        assert!(exp_f32(1000.0) > 2e38 && exp_f32(1000.0).is_finite());
        assert!(exp_f32(f32::NAN).is_nan());
        assert_eq!(exp_f32(0.0), 1.0);
    }

    fn to_vec(t: Tensor<1>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    /// Forward and input gradient equal Burn's composed `silu` (rel. 1e-5), including large
    /// magnitudes, on autodiff-flex; untracked and plain-flex calls too.
    #[test]
    fn matches_burn_silu() {
        let d = Device::flex().autodiff();
        // Odd length (a partial chunk) plus saturating values.
        let x0 = Tensor::cat(
            vec![
                Tensor::<1>::random([4099], Distribution::Normal(0.0, 6.0), &d),
                Tensor::<1>::from_floats([100.0, -100.0, 1000.0, -1000.0, 0.0], &d),
            ],
            0,
        );
        let n = x0.dims()[0];
        let g = Tensor::<1>::random([n], Distribution::Normal(0.0, 1.0), &d).detach();
        let run = |fused: bool| {
            let x = x0.clone().detach().require_grad();
            let y = if fused {
                silu(x.clone())
            } else {
                burn::tensor::activation::silu(x.clone())
            };
            let grads = (y.clone() * g.clone()).sum().backward();
            (to_vec(y.detach().inner()), to_vec(x.grad(&grads).unwrap()))
        };
        let (y1, dx1) = run(true);
        let (y2, dx2) = run(false);
        for (what, a, b) in [("y", &y1, &y2), ("dx", &dx1, &dx2)] {
            for (i, (p, q)) in a.iter().zip(b.iter()).enumerate() {
                assert!(
                    (p - q).abs() <= 1e-5 * q.abs().max(1.0),
                    "{what}[{i}]: {p} vs {q}"
                );
            }
        }
        let plain = silu(x0.clone().inner());
        let want = burn::tensor::activation::silu(x0.inner());
        let (a, b) = (
            plain.into_data().try_to_vec::<f32>().unwrap(),
            want.into_data().try_to_vec::<f32>().unwrap(),
        );
        assert!(
            a.iter()
                .zip(&b)
                .all(|(p, q)| (p - q).abs() <= 1e-5 * q.abs().max(1.0))
        );
    }

    /// Forward and input gradient equal Burn's `softmax` over the last dim (rel. 1e-5),
    /// including rows with large and equal values, on autodiff-flex.
    #[test]
    fn matches_burn_softmax() {
        let d = Device::flex().autodiff();
        let x0 = Tensor::<3>::random([3, 5, 37], Distribution::Normal(0.0, 4.0), &d);
        let x0 = Tensor::cat(
            vec![
                x0,
                Tensor::<3>::full([3, 1, 37], 50.0, &d),
                Tensor::<3>::random([3, 1, 37], Distribution::Normal(80.0, 20.0), &d),
            ],
            1,
        );
        let g = Tensor::<3>::random(x0.dims(), Distribution::Normal(0.0, 1.0), &d).detach();
        // Scale 1, the attention's 1/√64, and a negative one (the row max is then of −x).
        for s in [1.0, 0.125, -0.7] {
            let run = |fused: bool| {
                let x = x0.clone().detach().require_grad();
                let y = if fused {
                    scaled_softmax(x.clone(), 2, s)
                } else {
                    burn::tensor::activation::softmax(x.clone().mul_scalar(s), 2)
                };
                let grads = (y.clone() * g.clone()).sum().backward();
                let n = 3 * 7 * 37;
                (
                    to_vec(y.detach().inner().reshape([n])),
                    to_vec(x.grad(&grads).unwrap().reshape([n])),
                )
            };
            let (y1, dx1) = run(true);
            let (y2, dx2) = run(false);
            for (what, a, b) in [("y", &y1, &y2), ("dx", &dx1, &dx2)] {
                let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
                for (i, (p, q)) in a.iter().zip(b.iter()).enumerate() {
                    assert!(
                        (p - q).abs() <= 1e-5 * scale,
                        "{what}[{i}] (s {s}): {p} vs {q}"
                    );
                }
            }
        }
        // Other dims go to Burn's softmax.
        let y = softmax(x0.clone(), 1);
        let want = burn::tensor::activation::softmax(x0, 1);
        assert!(to_vec(y.reshape([777])) == to_vec(want.reshape([777])));
    }
}
