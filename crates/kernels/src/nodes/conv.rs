//! Dense (`groups = 1`, non-1×1) 2-D convolution as a custom autodiff node (issue 7, CPU
//! speed), on by default (`BOSSNAS_FAST_CONV=1x1` or `off` turns it off, see
//! [`crate::dispatch::ConvMode`]).
//!
//! Burn 0.22's autodiff node for `conv2d` calls the backend's generic `conv2d_weight_backward`
//! (on burn-flex a *forward convolution* of the batch-swapped input with the output gradient as
//! kernel: GEMMs with a tiny `n`) and `conv2d_x_backward` (a transposed convolution). This
//! module registers its own node through Burn's backend-extension API (`burn/extension`, the
//! [`DenseConvBackend`] trait), whose three kernels come from [`DenseConvKernels`]:
//!
//! - on burn-flex, the buffer kernels of [`crate::cpu::conv`] (im2col tiles straight into
//!   `gemm`: forward, weight gradient, input gradient), about 2.7× faster than Burn's
//!   forward + backward on the NATS conv (`docs/performance.md`);
//! - the trait's defaults, written with backend primitives (any backend; used by flex for
//!   non-`f32` tensors): weight gradient `dW = Σ_b G[b] · cols[b]ᵀ` over an im2col of `k·k`
//!   strided slices in bounded batch chunks; input gradient at stride 1 a forward conv of the
//!   output gradient with the flipped, transposed kernel, else Burn's `conv2d_x_backward`.
//!   On flex these measured slower than Burn's own backward (the extra copies).
//!
//! The routing is generated for burn-flex only: [`conv2d`] sends every other device to Burn's
//! `conv2d`, so wgpu/CUDA keep their own kernels. Bias is added outside the node with the
//! public API (its gradient is Burn's broadcast-add gradient, a sum over batch and space).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Flex, Shape, Slice, TensorMetadata, backend_extension};
use burn::tensor::Tensor;
use burn::tensor::ops::{ConvOptions, PadMode};

use crate::cpu::buffers::{contiguous_f32, flex_tensor, values};
use crate::cpu::conv as cpu_conv;
use crate::dispatch::is_flex;

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
        Self::dense_forward(x, weight, options)
    }
}

/// The three kernels of a dense convolution used by the dense-conv autodiff node. The defaults are the
/// tensor-primitive versions of this module (any backend); `Flex` overrides them with the
/// buffer kernels of [`crate::cpu::conv`].
pub trait DenseConvKernels: Backend {
    /// `conv2d(x, weight, None, options)`.
    fn dense_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d(x, weight, None, options)
    }

    /// `∂L/∂W` of `conv2d(x, W)` with output gradient `grad`.
    fn dense_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        options: &ConvOptions<2>,
    ) -> FloatTensor<Self> {
        if options.groups == 1 {
            weight_grad::<Self>(x, weight.shape(), grad, options)
        } else {
            Self::conv2d_weight_backward(x, weight, grad, options.clone())
        }
    }

    /// `∂L/∂x` of `conv2d(x, W)` with output gradient `grad`.
    fn dense_input_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        options: &ConvOptions<2>,
    ) -> FloatTensor<Self> {
        if options.groups == 1 {
            input_grad::<Self>(x, weight, grad, options)
        } else {
            Self::conv2d_x_backward(x, weight, grad, options.clone())
        }
    }
}

/// The [`cpu_conv::Geometry`] of `conv2d(x, weight)`.
fn geometry(x: &Shape, weight: &Shape, options: &ConvOptions<2>) -> cpu_conv::Geometry {
    let [batch, c_in, h, w] = x.dims();
    let [c_out, _, kh, kw] = weight.dims();
    let [(pt, pb), (pl, pr)] = options.padding;
    let [sh, sw] = options.stride;
    cpu_conv::Geometry {
        batch,
        c_in,
        h,
        w,
        c_out,
        kh,
        kw,
        stride: [sh, sw],
        pad_top_left: [pt, pl],
        h_out: (h + pt + pb - kh) / sh + 1,
        w_out: (w + pl + pr - kw) / sw + 1,
    }
}

/// Which buffer kernels of [`cpu_conv`] compute a convolution.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FlexKind {
    /// One group: im2col + GEMM.
    Dense,
    /// `groups = Cin = Cout`, one filter per channel: direct loops.
    Depthwise,
}

/// The buffer kernels for this convolution (no dilation, every output window overlapping the
/// image), or `None` (Burn's / the generic kernels then).
fn flex_kind(x: &Shape, weight: &Shape, options: &ConvOptions<2>) -> Option<FlexKind> {
    let [_, c_in, h, w] = x.dims();
    let [c_out, wc_in, kh, kw] = weight.dims();
    let [(pt, pb), (pl, pr)] = options.padding;
    let fits =
        options.dilation == [1, 1] && h + pt + pb >= kh && w + pl + pr >= kw && pt < kh && pl < kw;
    if !fits {
        None
    } else if options.groups == 1 && c_in == wc_in {
        Some(FlexKind::Dense)
    } else if options.groups == c_in && c_out == c_in && wc_in == 1 {
        Some(FlexKind::Depthwise)
    } else {
        None
    }
}

impl DenseConvKernels for Flex {
    fn dense_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let (xs, ws) = (x.shape(), weight.shape());
        let kind = flex_kind(&xs, &ws, &options);
        match (kind, contiguous_f32(&x), contiguous_f32(&weight)) {
            (Some(kind), Some(xc), Some(wc)) => {
                let g = geometry(&xs, &ws, &options);
                let y = match kind {
                    FlexKind::Dense => cpu_conv::forward(values(&xc), values(&wc), &g),
                    FlexKind::Depthwise => {
                        cpu_conv::depthwise_forward(values(&xc), values(&wc), &g)
                    }
                };
                flex_tensor(y, [g.batch, g.c_out, g.h_out, g.w_out])
            }
            _ => Self::conv2d(x, weight, None, options),
        }
    }

    fn dense_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        options: &ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let (xs, ws) = (x.shape(), weight.shape());
        let kind = flex_kind(&xs, &ws, options);
        match (kind, contiguous_f32(&x), contiguous_f32(&grad)) {
            (Some(kind), Some(xc), Some(gc)) => {
                let g = geometry(&xs, &ws, options);
                let dw = match kind {
                    FlexKind::Dense => cpu_conv::weight_grad(values(&xc), values(&gc), &g),
                    FlexKind::Depthwise => {
                        cpu_conv::depthwise_weight_grad(values(&xc), values(&gc), &g)
                    }
                };
                flex_tensor(dw, ws)
            }
            _ if options.groups == 1 => weight_grad::<Self>(x, ws, grad, options),
            _ => Self::conv2d_weight_backward(x, weight, grad, options.clone()),
        }
    }

    fn dense_input_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        options: &ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let (xs, ws) = (x.shape(), weight.shape());
        let kind = flex_kind(&xs, &ws, options);
        match (kind, contiguous_f32(&weight), contiguous_f32(&grad)) {
            (Some(kind), Some(wc), Some(gc)) => {
                let g = geometry(&xs, &ws, options);
                let dx = match kind {
                    FlexKind::Dense => cpu_conv::input_grad(values(&wc), values(&gc), &g),
                    FlexKind::Depthwise => {
                        cpu_conv::depthwise_input_grad(values(&wc), values(&gc), &g)
                    }
                };
                flex_tensor(dx, xs)
            }
            _ if options.groups == 1 => input_grad::<Self>(x, weight, grad, options),
            _ => Self::conv2d_x_backward(x, weight, grad, options.clone()),
        }
    }
}

#[derive(Debug)]
struct DenseConvNode;

impl<B: DenseConvKernels> Backward<B, 2> for DenseConvNode {
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
            let g = B::dense_input_grad(x.clone(), weight.clone(), grad.clone(), &options);
            grads.register::<B>(node.id, g);
        }
        if let Some(node) = node_weight {
            let g = B::dense_weight_grad(x, weight, grad, &options);
            grads.register::<B>(node.id, g);
        }
    }
}

impl<B: DenseConvKernels, C: CheckpointStrategy> DenseConvBackend for Autodiff<B, C> {
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
                let y =
                    B::dense_forward(x.into_primitive(), weight.into_primitive(), options.clone());
                prep.finish((x_state, weight_state, options), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::dense_forward(
                x.into_primitive(),
                weight.into_primitive(),
                options,
            )),
        }
    }
}

/// Whether [`conv2d`] handles this dense convolution itself: one group, no dilation (any
/// kernel, including 1×1; plain 1×1 convs on small maps fold the batch, `cpu_conv::folded`).
pub fn is_dense(options: &ConvOptions<2>) -> bool {
    options.groups == 1 && options.dilation == [1, 1]
}

/// Whether a convolution is depthwise (one filter per channel: `groups = Cin = Cout`, weight
/// `[C, 1, kh, kw]`, no dilation); [`conv2d`] handles those too.
pub fn is_depthwise(x_channels: usize, weight_dims: [usize; 4], options: &ConvOptions<2>) -> bool {
    options.groups == x_channels
        && weight_dims[0] == x_channels
        && weight_dims[1] == 1
        && options.dilation == [1, 1]
}

/// Dense or depthwise 2-D convolution, same contract and result as
/// `burn::tensor::module::conv2d`, with the kernels of this module on burn-flex. Other devices,
/// other grouped convs and dilated convs use Burn's `conv2d`.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    let routed = is_dense(&options) || is_depthwise(x.dims()[1], weight.dims(), &options);
    if !routed || !is_flex(&x.device()) {
        return burn::tensor::module::conv2d(x, weight, bias, options);
    }
    let c_out = weight.dims()[0];
    let y =
        Tensor::<4>::from_dispatch(<burn::backend::Dispatch as DenseConvBackend>::dense_conv2d(
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

/// Elements of one im2col chunk, and of its GEMM outputs, in [`weight_grad`] (32 MiB of `f32`
/// each, or one batch item where that is larger): bounds the extra memory.
const COLS_CHUNK_ELEMS: usize = 8 << 20;

/// `∂L/∂W` for `y = conv2d(x, W)` (one group, no dilation), as batched GEMMs over im2col
/// chunks (module docs).
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
    assert!(
        wc_out == c_out && wc_in == c_in,
        "dense conv weight gradient: shapes"
    );
    let taps = kh * kw;
    let x = pad::<B>(x, options);
    // G[b] as [Cout, Ho·Wo] (a free reshape of the contiguous gradient).
    let g = B::float_reshape(grad, Shape::new([batch, c_out, h_out * w_out]));
    // Bound both the im2col chunk and the per-item GEMM outputs ([n, Cout, taps·Cin], summed
    // over n afterwards): with wide layers the latter is the larger one.
    let per_item = (taps * c_in * h_out * w_out)
        .max(c_out * taps * c_in)
        .max(1);
    let chunk = (COLS_CHUNK_ELEMS / per_item).clamp(1, batch);
    let mut acc: Option<FloatTensor<B>> = None;
    for b0 in (0..batch).step_by(chunk) {
        let n = chunk.min(batch - b0);
        let xb = B::float_slice(x.clone(), &[full(b0, b0 + n, 1)]);
        // im2col of this chunk, tap-major: [n, taps·Cin, Ho, Wo] = [n, taps·Cin, Ho·Wo].
        let cols = B::float_cat(
            (0..taps)
                .map(|t| tap_view::<B>(xb.clone(), t / kw, t % kw, h_out, w_out, options))
                .collect(),
            1,
        );
        let cols = B::float_reshape(cols, Shape::new([n, taps * c_in, h_out * w_out]));
        let gb = B::float_slice(g.clone(), &[full(b0, b0 + n, 1)]);
        // Σ_b G[b] · cols[b]ᵀ: [n, Cout, taps·Cin] → [1, Cout, taps·Cin]
        let part = B::float_sum_dim(B::float_matmul(gb, B::float_swap_dims(cols, 1, 2)), 0);
        acc = Some(match acc {
            Some(a) => B::float_add(a, part),
            None => part,
        });
    }
    let acc = acc.expect("dense conv weight gradient: empty batch");
    // [Cout, taps, Cin] → [Cout, Cin, taps] = [Cout, Cin, kh, kw]
    let acc = B::float_reshape(acc, Shape::new([c_out, taps, c_in]));
    B::float_reshape(B::float_swap_dims(acc, 1, 2), weight_shape)
}

/// Zero padding of `x` by the convolution's padding (none: `x` unchanged).
fn pad<B: Backend>(x: FloatTensor<B>, options: &ConvOptions<2>) -> FloatTensor<B> {
    let [(pt, pb), (pl, pr)] = options.padding;
    if pt + pb + pl + pr > 0 {
        B::float_pad(
            x,
            &[(0, 0), (0, 0), (pt, pb), (pl, pr)],
            PadMode::Constant(0.0),
        )
    } else {
        x
    }
}

/// The part of the padded input `xp` that kernel tap `(i, j)` sees: `[n, Cin, Ho, Wo]`.
fn tap_view<B: Backend>(
    xp: FloatTensor<B>,
    i: usize,
    j: usize,
    h_out: usize,
    w_out: usize,
    options: &ConvOptions<2>,
) -> FloatTensor<B> {
    let [n, c_in, _, _] = xp.shape().dims();
    let [sh, sw] = options.stride;
    B::float_slice(
        xp,
        &[
            full(0, n, 1),
            full(0, c_in, 1),
            full(i, i + sh * (h_out - 1) + 1, sh),
            full(j, j + sw * (w_out - 1) + 1, sw),
        ],
    )
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
    use burn::tensor::Device;
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
        assert!(is_flex(&d) && (is_dense(&options) || is_depthwise(x_dims[1], w_dims, &options)));
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
        assert!(
            r < tol,
            "input gradient {r} ({x_dims:?}, {w_dims:?}, {options:?})"
        );
        let r = rel_diff(gw1, gw2);
        assert!(
            r < tol,
            "weight gradient {r} ({x_dims:?}, {w_dims:?}, {options:?})"
        );
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
        // 5×5 pad 2, no padding, asymmetric padding, 1×1 stride 2, plain 1×1.
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
        ); // Plain 1×1 (no im2col copy), with and without bias.
        let plain = ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
        check([3, 5, 4, 6], [7, 5, 1, 1], false, plain.clone());
        check([2, 8, 10, 11], [4, 8, 1, 1], true, plain);
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
    fn depthwise_convs_match_burn() {
        // PEG (3×3, stride 1 and 2) and MBConv (5×5, 7×7) shapes, with and without bias.
        check(
            [2, 6, 8, 8],
            [6, 1, 3, 3],
            true,
            ConvOptions::new([1, 1], [1, 1], [1, 1], 6),
        );
        check(
            [2, 6, 9, 8],
            [6, 1, 3, 3],
            false,
            ConvOptions::new([2, 2], [1, 1], [1, 1], 6),
        );
        check(
            [3, 4, 10, 10],
            [4, 1, 5, 5],
            false,
            ConvOptions::new([1, 1], [2, 2], [1, 1], 4),
        );
        check(
            [1, 3, 11, 9],
            [3, 1, 7, 7],
            true,
            ConvOptions::new([2, 2], [3, 3], [1, 1], 3),
        );
        // Grouped but not depthwise: Burn's conv2d.
        let o = ConvOptions::new([1, 1], [1, 1], [1, 1], 2);
        assert!(!is_depthwise(4, [4, 2, 3, 3], &o));
    }

    #[test]
    fn grouped_and_dilated_are_not_dense() {
        let o = ConvOptions::new([1, 1], [1, 1], [1, 1], 4);
        assert!(!is_dense(&o));
        assert!(is_dense(&ConvOptions::new([1, 1], [0, 0], [1, 1], 1)));
        assert!(!is_dense(&ConvOptions::new([1, 1], [2, 2], [2, 2], 1)));
    }

    /// Timing of one dense conv, forward + backward, Burn's node against ours, and of the two
    /// gradient formulations alone (release build; prints medians of 5):
    /// `cargo test --release -p bossnas-kernels --lib -- --ignored --nocapture dense_conv_timing`
    #[test]
    #[ignore = "timing, not a check"]
    fn dense_conv_timing() {
        use burn::backend::{Dispatch, DispatchTensor};
        crate::cpu_alloc::keep_freed_memory();
        let d = Device::flex().autodiff();
        let shapes: [([usize; 4], [usize; 4], usize); 6] = [
            ([256, 64, 32, 32], [64, 64, 3, 3], 1), // NATS cell at batch 256
            ([32, 64, 32, 32], [64, 64, 3, 3], 1),  // NATS cell at batch 32
            ([8, 512, 28, 28], [1024, 512, 3, 3], 2), // HyTra stride-2 shortcut at 1/16
            ([8, 1024, 14, 14], [256, 1024, 1, 1], 1), // ResConv 1/16 conv1
            ([8, 256, 14, 14], [256, 256, 3, 3], 1), // ResConv 1/16 conv2
            ([8, 256, 14, 14], [1024, 256, 1, 1], 1), // ResConv 1/16 conv3
        ];
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        for (xd, wd, s) in shapes {
            let pad = wd[2] / 2;
            let o = ConvOptions::new([s, s], [pad, pad], [1, 1], 1);
            let x0 = rand(xd, &d);
            let w0 = rand(wd, &d);
            let mut res = Vec::new();
            for ours in [false, true] {
                let mut t = Vec::new();
                for _ in 0..5 {
                    let x = x0.clone().detach().require_grad();
                    let w = w0.clone().detach().require_grad();
                    let t0 = std::time::Instant::now();
                    let y = if ours {
                        conv2d(x.clone(), w.clone(), None, o.clone())
                    } else {
                        burn::tensor::module::conv2d(x.clone(), w.clone(), None, o.clone())
                    };
                    let grads = y.sum().backward();
                    let _ = (x.grad(&grads).unwrap(), w.grad(&grads).unwrap());
                    t.push(t0.elapsed().as_secs_f64() * 1e3);
                }
                res.push(median(t));
            }
            // The gradient formulations alone, on the inner (flex) backend.
            let xi = x0.clone().detach().without_autodiff();
            let wi = w0.clone().detach().without_autodiff();
            let y = burn::tensor::module::conv2d(xi.clone(), wi.clone(), None, o.clone());
            let g = y.ones_like();
            let prim = |t: Tensor<4>| -> DispatchTensor { t.into_dispatch() };
            let part = |f: &dyn Fn() -> DispatchTensor| {
                median(
                    (0..5)
                        .map(|_| {
                            let t0 = std::time::Instant::now();
                            let _ = Tensor::<4>::from_dispatch(f());
                            t0.elapsed().as_secs_f64() * 1e3
                        })
                        .collect(),
                )
            };
            let ws = burn::tensor::Shape::new(wd);
            let fwd = part(&|| {
                <Dispatch as ModuleOps<Dispatch>>::conv2d(
                    prim(xi.clone()),
                    prim(wi.clone()),
                    None,
                    o.clone(),
                )
            });
            let wg_burn = part(&|| {
                <Dispatch as ModuleOps<Dispatch>>::conv2d_weight_backward(
                    prim(xi.clone()),
                    prim(wi.clone()),
                    prim(g.clone()),
                    o.clone(),
                )
            });
            let wg_ours = part(&|| {
                weight_grad::<Dispatch>(prim(xi.clone()), ws.clone(), prim(g.clone()), &o)
            });
            let xg_burn = part(&|| {
                <Dispatch as ModuleOps<Dispatch>>::conv2d_x_backward(
                    prim(xi.clone()),
                    prim(wi.clone()),
                    prim(g.clone()),
                    o.clone(),
                )
            });
            let xg_ours = part(&|| {
                input_grad::<Dispatch>(prim(xi.clone()), prim(wi.clone()), prim(g.clone()), &o)
            });
            println!(
                "x {xd:?} w {wd:?} stride {s}: fwd+bwd Burn {:.1} ms, ours {:.1} ms | fwd {fwd:.1} | \
                 weight grad Burn {wg_burn:.1}, ours {wg_ours:.1} | input grad Burn {xg_burn:.1}, ours {xg_ours:.1}",
                res[0], res[1]
            );
        }
    }
}
