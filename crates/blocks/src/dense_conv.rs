//! Dense (`groups = 1`, non-1×1) 2-D convolution with a cheaper backward (issue 7, CPU speed).
//!
//! Burn 0.22's autodiff node for `conv2d` calls the backend's generic `conv2d_weight_backward`
//! and `conv2d_x_backward`. On burn-flex the weight gradient becomes a *forward convolution* of
//! the batch-swapped input with the output gradient as kernel: an im2col whose rows are
//! `batch·H·W` long and only `k·k` output positions, i.e. GEMMs with a tiny `n` (`gemm … x1x6`
//! in the profiles of `docs/performance.md`), plus a materialised `swap_dims`. The input gradient
//! is a transposed convolution (GEMM + col2im).
//!
//! This module registers its own autodiff node through Burn's backend-extension API
//! (`burn/extension`, the [`DenseConvBackend`] trait). The forward is Burn's own `conv2d` on the
//! inner backend, so it is bit-identical. The backward computes the same mathematics as Burn's:
//!
//! - **weight gradient**, one tap `(i, j)` of the kernel at a time:
//!   `dW[:, :, i, j] = Σ_b G[b] [Cout, Ho·Wo] · X_ij[b]ᵀ [Ho·Wo, Cin]`, where `X_ij` is the
//!   (zero-padded) input seen by that tap, a strided slice. That is `k·k` batched GEMMs with
//!   `m = Cout`, `n = Cin`, `k = Ho·Wo` (well-shaped for `gemm`), then a sum over the batch.
//!   Only one tap's slice is alive at a time: no `k·k`-times im2col buffer.
//! - **input gradient**: at stride 1 a *forward* convolution of the output gradient with the
//!   flipped, transposed kernel (padding `k − 1 − p`), which burn-flex computes with its fast
//!   forward path instead of a transposed convolution. Other strides keep Burn's
//!   `conv2d_x_backward`.
//!
//! The node is generic over the inner backend (it uses only backend primitives), but the
//! routing is generated for burn-flex only: [`conv2d`] sends every other device to Burn's
//! `conv2d`, so wgpu/CUDA keep their own kernels. Bias is added outside the node with the
//! public API (its gradient is Burn's broadcast-add gradient, a sum over batch and space).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Backend, DispatchDevice, Flex, Shape, Slice, TensorMetadata, backend_extension,
};
use burn::tensor::ops::{ConvOptions, PadMode};
use burn::tensor::{Device, Tensor};

/// The custom operation: a bias-free dense 2-D convolution whose autodiff node uses
/// [`weight_grad`] and [`input_grad`].
#[backend_extension(Flex, Autodiff)]
pub trait DenseConvBackend: Backend {
    /// `conv2d(x, weight, None, options)`.
    fn dense_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;
}

impl DenseConvBackend for Flex {
    fn dense_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d(x, weight, None, options)
    }
}

#[derive(Debug)]
struct DenseConvNode;

impl<B: Backend> Backward<B, 2> for DenseConvNode {
    type State = (NodeId, NodeId, ConvOptions<2>);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x_state, weight_state, options) = ops.state;
        let x = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(x_state);
        let weight = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(weight_state);

        if let Some(node) = node_x {
            let g = input_grad::<B>(x.clone(), weight.clone(), grad.clone(), &options);
            grads.register::<B>(node.id, g);
        }
        if let Some(node) = node_weight {
            let g = weight_grad::<B>(x, weight.shape(), grad, &options);
            grads.register::<B>(node.id, g);
        }
    }
}

impl<B: Backend, C: CheckpointStrategy> DenseConvBackend for Autodiff<B, C> {
    // Not inlined so that profiles can attribute time to it (`docs/perf-profiles/`).
    #[inline(never)]
    fn dense_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        match DenseConvNode
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let weight_state = prep.checkpoint(&weight);
                let y = B::conv2d(
                    x.into_primitive(),
                    weight.into_primitive(),
                    None,
                    options.clone(),
                );
                prep.finish((x_state, weight_state, options), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::conv2d(
                x.into_primitive(),
                weight.into_primitive(),
                None,
                options,
            )),
        }
    }
}

/// Whether [`conv2d`] handles this convolution itself: one group, no dilation, a kernel
/// larger than 1×1 or a stride above 1 (plain 1×1 stride-1 convs are `fast_conv::pointwise`).
pub fn is_dense(weight_dims: [usize; 4], options: &ConvOptions<2>) -> bool {
    options.groups == 1
        && options.dilation == [1, 1]
        && !(weight_dims[2] == 1 && weight_dims[3] == 1 && options.stride == [1, 1])
}

/// Whether tensors on `device` go to burn-flex (plain or autodiff), where the node is routed.
pub fn is_flex(device: &Device) -> bool {
    #[allow(unreachable_patterns)]
    match device.as_dispatch() {
        DispatchDevice::Flex(_) => true,
        DispatchDevice::Autodiff(inner) => matches!(inner.clone().inner(), DispatchDevice::Flex(_)),
        _ => false,
    }
}

/// Dense 2-D convolution, same contract and result as `burn::tensor::module::conv2d`, with the
/// cheaper backward of this module on burn-flex. Other devices, grouped or dilated convs use
/// Burn's `conv2d`.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    if !is_dense(weight.dims(), &options) || !is_flex(&x.device()) {
        return burn::tensor::module::conv2d(x, weight, bias, options);
    }
    let c_out = weight.dims()[0];
    let y = Tensor::<4>::from_dispatch(<burn::backend::Dispatch as DenseConvBackend>::dense_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        options,
    ));
    match bias {
        Some(bias) => y + bias.reshape([1, c_out, 1, 1]),
        None => y,
    }
}

fn full(start: usize, end: usize, step: usize) -> Slice {
    Slice::new(start as isize, Some(end as isize), step as isize)
}

/// `∂L/∂W` for `y = conv2d(x, W)` (one group, no dilation), one kernel tap at a time (module docs).
///
/// `x`: `[B, Cin, H, W]`, `grad`: `[B, Cout, Ho, Wo]`, result: `weight_shape` = `[Cout, Cin, kh, kw]`.
#[inline(never)]
pub fn weight_grad<B: Backend>(
    x: FloatTensor<B>,
    weight_shape: Shape,
    grad: FloatTensor<B>,
    options: &ConvOptions<2>,
) -> FloatTensor<B> {
    let [batch, c_in, _, _] = x.shape().dims();
    let [_, c_out, h_out, w_out] = grad.shape().dims();
    let [wc_out, wc_in, kh, kw] = weight_shape.dims();
    assert!(wc_out == c_out && wc_in == c_in, "dense conv weight gradient: shapes");
    let [(pt, pb), (pl, pr)] = options.padding;
    let [sh, sw] = options.stride;
    let x = if pt + pb + pl + pr > 0 {
        B::float_pad(x, &[(0, 0), (0, 0), (pt, pb), (pl, pr)], PadMode::Constant(0.0))
    } else {
        x
    };
    // G[b] as [Cout, Ho·Wo] (a free reshape of the contiguous gradient).
    let g = B::float_reshape(grad, Shape::new([batch, c_out, h_out * w_out]));
    let mut taps = Vec::with_capacity(kh * kw);
    for i in 0..kh {
        for j in 0..kw {
            let xs = B::float_slice(
                x.clone(),
                &[
                    full(0, batch, 1),
                    full(0, c_in, 1),
                    full(i, i + sh * (h_out - 1) + 1, sh),
                    full(j, j + sw * (w_out - 1) + 1, sw),
                ],
            );
            // [B, Cin, Ho·Wo] → view as [B, Ho·Wo, Cin]; the GEMM reads it strided.
            let xs = B::float_reshape(xs, Shape::new([batch, c_in, h_out * w_out]));
            let xs = B::float_swap_dims(xs, 1, 2);
            // [B, Cout, Cin] → Σ_b → [1, Cout, Cin]
            let tap = B::float_sum_dim(B::float_matmul(g.clone(), xs), 0);
            taps.push(B::float_reshape(tap, Shape::new([c_out, c_in, 1])));
        }
    }
    // [Cout, Cin, kh·kw] with the taps in row-major (i, j) order = [Cout, Cin, kh, kw].
    B::float_reshape(B::float_cat(taps, 2), weight_shape)
}

/// `∂L/∂x` for `y = conv2d(x, W)` (one group, no dilation). Stride 1 with padding below the
/// kernel size: a forward conv of the gradient with the flipped, transposed kernel. Otherwise
/// Burn's `conv2d_x_backward`.
#[inline(never)]
pub fn input_grad<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    grad: FloatTensor<B>,
    options: &ConvOptions<2>,
) -> FloatTensor<B> {
    let [_, _, kh, kw] = weight.shape().dims();
    let [(pt, pb), (pl, pr)] = options.padding;
    let stride_one = options.stride == [1, 1];
    if !stride_one || pt >= kh || pb >= kh || pl >= kw || pr >= kw {
        return B::conv2d_x_backward(x, weight, grad, options.clone());
    }
    // W'[ci, co, i, j] = W[co, ci, kh − 1 − i, kw − 1 − j]
    let w_t = B::float_flip(B::float_swap_dims(weight, 0, 1), &[2, 3]);
    let opts = ConvOptions::new_with_padding(
        [1, 1],
        [(kh - 1 - pt, kh - 1 - pb), (kw - 1 - pl, kw - 1 - pr)],
        [1, 1],
        1,
    );
    B::conv2d(grad, w_t, None, opts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn rand<const D: usize>(shape: [usize; D], d: &Device) -> Tensor<D> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), d)
    }

    /// Max |a − b| relative to max |b|.
    fn rel_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        let a = a.into_data().try_to_vec::<f32>().unwrap();
        let b = b.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        let diff = a
            .iter()
            .zip(&b)
            .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
        diff / scale
    }

    /// Forward and the input, weight and bias gradients equal Burn's `conv2d` (rel. 1e-4).
    fn check(x_dims: [usize; 4], w_dims: [usize; 4], bias: bool, options: ConvOptions<2>) {
        let d = Device::flex().autodiff();
        assert!(is_flex(&d) && is_dense(w_dims, &options));
        let x0 = rand(x_dims, &d);
        let w0 = rand(w_dims, &d);
        let b0 = rand([w_dims[0]], &d);
        let out_dims =
            burn::tensor::module::conv2d(x0.clone(), w0.clone(), None, options.clone()).dims();
        let g = rand(out_dims, &d).detach();
        let run = |ours: bool| {
            let x = x0.clone().detach().require_grad();
            let w = w0.clone().detach().require_grad();
            let b = bias.then(|| b0.clone().detach().require_grad());
            let y = if ours {
                conv2d(x.clone(), w.clone(), b.clone(), options.clone())
            } else {
                burn::tensor::module::conv2d(x.clone(), w.clone(), b.clone(), options.clone())
            };
            assert_eq!(y.dims(), out_dims);
            let grads = (y.clone() * g.clone()).sum().backward();
            let gx = x.grad(&grads).unwrap();
            let gw = w.grad(&grads).unwrap();
            let gb = b.map(|b| b.grad(&grads).unwrap());
            (y.detach(), gx, gw, gb)
        };
        let (y1, gx1, gw1, gb1) = run(true);
        let (y2, gx2, gw2, gb2) = run(false);
        let tol = 1e-4;
        let r = rel_diff(y1, y2);
        assert!(r < tol, "forward {r} ({x_dims:?}, {w_dims:?}, {options:?})");
        let r = rel_diff(gx1, gx2);
        assert!(r < tol, "input gradient {r} ({x_dims:?}, {w_dims:?}, {options:?})");
        let r = rel_diff(gw1, gw2);
        assert!(r < tol, "weight gradient {r} ({x_dims:?}, {w_dims:?}, {options:?})");
        if let (Some(a), Some(b)) = (gb1, gb2) {
            let r = rel_diff(a, b);
            assert!(r < tol, "bias gradient {r}");
        }
    }

    #[test]
    fn dense_3x3_stride1_pad1_matches_burn() {
        let o = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        check([2, 3, 6, 5], [4, 3, 3, 3], true, o.clone());
        check([3, 5, 7, 7], [6, 5, 3, 3], false, o);
    }

    #[test]
    fn dense_3x3_stride2_pad1_matches_burn() {
        let o = ConvOptions::new([2, 2], [1, 1], [1, 1], 1);
        check([2, 4, 8, 8], [5, 4, 3, 3], true, o.clone());
        // Odd size: the last row/column of the input is not reached by every tap.
        check([2, 3, 7, 9], [4, 3, 3, 3], false, o);
    }

    #[test]
    fn other_dense_shapes_match_burn() {
        // 5×5 pad 2, no padding, asymmetric padding, 1×1 stride 2.
        check(
            [2, 3, 9, 9],
            [4, 3, 5, 5],
            true,
            ConvOptions::new([1, 1], [2, 2], [1, 1], 1),
        );
        check(
            [2, 3, 6, 6],
            [2, 3, 3, 3],
            false,
            ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
        );
        check(
            [1, 2, 6, 6],
            [3, 2, 3, 3],
            true,
            ConvOptions::new_with_padding([1, 1], [(0, 1), (1, 0)], [1, 1], 1),
        );
        check(
            [2, 4, 6, 6],
            [3, 4, 1, 1],
            true,
            ConvOptions::new([2, 2], [0, 0], [1, 1], 1),
        );
    }

    #[test]
    fn untracked_and_inference_devices_match_burn() {
        let o = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        for d in [Device::flex(), Device::flex().autodiff()] {
            let x = rand([2, 3, 5, 5], &d);
            let w = rand([4, 3, 3, 3], &d);
            let b = rand([4], &d);
            let ours = conv2d(x.clone(), w.clone(), Some(b.clone()), o.clone());
            let burn = burn::tensor::module::conv2d(x, w, Some(b), o.clone());
            assert!(rel_diff(ours, burn) < 1e-5);
        }
    }

    #[test]
    fn grouped_and_pointwise_are_not_dense() {
        let o = ConvOptions::new([1, 1], [1, 1], [1, 1], 4);
        assert!(!is_dense([4, 1, 3, 3], &o));
        assert!(!is_dense(
            [4, 3, 1, 1],
            &ConvOptions::new([1, 1], [0, 0], [1, 1], 1)
        ));
        assert!(!is_dense(
            [4, 3, 3, 3],
            &ConvOptions::new([1, 1], [2, 2], [2, 2], 1)
        ));
    }
}
