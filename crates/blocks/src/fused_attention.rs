//! The core of multi-head self-attention, `softmax(s·qᵀk)` applied to `v`, as one autodiff
//! node on burn-flex (issue 7, CPU speed).
//!
//! Composed from Burn ops, [`crate::attention::Mhsa`] takes three strided views of the `qkv`
//! map, two batched matmuls, a softmax and a reshape; the backward adds two more matmuls per
//! product and writes each view's gradient into a zeroed full-size `qkv` gradient before summing
//! the three. On flex every matmul output is zero-filled and re-aligned on the calling thread.
//! Here one parallel task per (item, head) runs the five small GEMMs of the forward and backward
//! straight on the `qkv` buffer through strides, with the softmax in place, and writes `dq`,
//! `dk`, `dv` into their slots of one `qkv` gradient that is not zero-filled. The node keeps
//! `qkv` and the attention probabilities (as the composed graph does).
//!
//! Other devices and dtypes, and `BOSSNAS_FUSED=off` ([`crate::fused_norm::enabled`]), use the
//! composed ops ([`applies`] tells which).

use std::mem::MaybeUninit;

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Flex, TensorMetadata, backend_extension};
use burn::tensor::{DType, Tensor};
use rayon::prelude::*;

use crate::attention::AttentionOrientation;
use crate::dense_conv::is_flex;
use crate::flex_buffers::{contiguous_f32, flex_tensor, values};
use crate::flex_conv::{SharedMut, gemm_f32};
use crate::uninit::vec_written_by;

/// Sizes of one attention: `qkv` is `[batch, 3·heads·dim_head, tokens]` (queries, keys, values,
/// each head-major), the output `[batch, heads·dim_head, tokens]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionShape {
    pub batch: usize,
    pub heads: usize,
    pub dim_head: usize,
    pub tokens: usize,
    /// Factor of the logits, `dim_head^(-1/2)`.
    pub scale: f32,
    /// [`AttentionOrientation::Standard`] (`out = v·Aᵀ`) or `SearchCode` (`out = v·A`).
    pub standard: bool,
}

impl AttentionShape {
    /// Elements of one `[dim_head, tokens]` slice.
    fn slot(&self) -> usize {
        self.dim_head * self.tokens
    }
    /// Offsets of the q, k and v slices of task `t` (item `t / heads`, head `t % heads`).
    fn qkv_offsets(&self, t: usize) -> [usize; 3] {
        let (b, h) = (t / self.heads, t % self.heads);
        let base = b * 3 * self.heads;
        [base + h, base + self.heads + h, base + 2 * self.heads + h].map(|i| i * self.slot())
    }
    fn tasks(&self) -> usize {
        self.batch * self.heads
    }
}

/// `A = softmax(s·x)` of each row of `row` values, in place.
fn softmax_rows(a: &mut [f32], row: usize, scale: f32) {
    for r in a.chunks_exact_mut(row) {
        let max = r.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(scale * v));
        let mut sum = 0f32;
        for v in r.iter_mut() {
            *v = crate::fused_act::exp_f32(scale * *v - max);
            sum += *v;
        }
        let inv = 1.0 / sum;
        r.iter_mut().for_each(|v| *v *= inv);
    }
}

/// `dA ← s · A ∘ (dA − Σ_row dA∘A)`, the logits' gradient, row by row in place.
fn softmax_rows_backward(a: &[f32], da: &mut [f32], row: usize, scale: f32) {
    for (y, g) in a.chunks_exact(row).zip(da.chunks_exact_mut(row)) {
        let dot: f32 = y.iter().zip(g.iter()).map(|(p, q)| p * q).sum();
        for (g, &p) in g.iter_mut().zip(y) {
            *g = scale * p * (*g - dot);
        }
    }
}

/// Row-major `[rows, cols]` strides, and the strides of its transpose.
fn plain(cols: usize) -> (usize, usize) {
    (cols, 1)
}
fn transposed(cols: usize) -> (usize, usize) {
    (1, cols)
}

/// `(out, probs)`: the attention output `[batch, heads·dim_head, tokens]` and the probabilities
/// `A` (`[batch, heads, tokens, tokens]`, rows over keys).
pub fn forward(qkv: &[f32], s: &AttentionShape) -> (Vec<f32>, Vec<f32>) {
    assert_eq!(qkv.len(), 3 * s.tasks() * s.slot(), "attention: qkv size");
    let (n, d) = (s.tokens, s.dim_head);
    let mut probs: Vec<f32> = Vec::with_capacity(s.tasks() * n * n);
    let fill = |out: &mut [MaybeUninit<f32>]| {
        out.par_chunks_mut(s.slot().max(1))
            .zip(probs.spare_capacity_mut().par_chunks_mut((n * n).max(1)))
            .enumerate()
            .for_each(|(t, (o, a))| {
                let [q, k, v] = s.qkv_offsets(t).map(|off| qkv[off..].as_ptr());
                let a = a.as_mut_ptr().cast::<f32>();
                // SAFETY: `a` is this task's [n, n] slice, `o` its [d, n] output slot, `q`, `k`,
                // `v` the [d, n] slices of `qkv`; each GEMM (depth d or n > 0) writes its whole
                // destination before anything reads it.
                unsafe {
                    // L = qᵀ·k
                    gemm_f32((n, n, d), a, plain(n), false, q, transposed(n), k, plain(n));
                    softmax_rows(std::slice::from_raw_parts_mut(a, n * n), n, s.scale);
                    // Standard: out = v·Aᵀ; search code: out = v·A.
                    let a_op = if s.standard { transposed(n) } else { plain(n) };
                    let o = o.as_mut_ptr().cast::<f32>();
                    gemm_f32((d, n, n), o, plain(n), false, v, plain(n), a, a_op);
                }
            })
    };
    if s.tasks() * n * d == 0 {
        return (
            vec![0f32; s.tasks() * s.slot()],
            vec![0f32; s.tasks() * n * n],
        );
    }
    // SAFETY: every task writes its whole output slot (and probability slice).
    let out = unsafe { vec_written_by(s.tasks() * s.slot(), fill) };
    // SAFETY: the tasks wrote all `tasks · n²` probabilities above.
    unsafe { probs.set_len(s.tasks() * n * n) };
    (out, probs)
}

/// The `qkv` gradient (`[batch, 3·heads·dim_head, tokens]`) from the forward's `qkv` and
/// probabilities and the output gradient.
pub fn backward(qkv: &[f32], probs: &[f32], dout: &[f32], s: &AttentionShape) -> Vec<f32> {
    let (n, d) = (s.tokens, s.dim_head);
    assert_eq!(
        dout.len(),
        s.tasks() * s.slot(),
        "attention backward: gradient size"
    );
    assert_eq!(
        probs.len(),
        s.tasks() * n * n,
        "attention backward: probabilities"
    );
    let fill = |dqkv: &mut [MaybeUninit<f32>]| {
        let dst = SharedMut(dqkv.as_mut_ptr().cast::<f32>());
        (0..s.tasks()).into_par_iter().for_each_init(
            || vec![0f32; n * n],
            |da, t| {
                let [oq, ok, ov] = s.qkv_offsets(t);
                let (q, k, v) = (qkv[oq..].as_ptr(), qkv[ok..].as_ptr(), qkv[ov..].as_ptr());
                let a = probs[t * n * n..].as_ptr();
                let g = dout[t * s.slot()..].as_ptr();
                let [dq, dk, dv] = [oq, ok, ov].map(|off| dst.ptr().wrapping_add(off));
                // SAFETY: the three [d, n] destination slots belong to this task alone;
                // every GEMM (depth d or n > 0) overwrites its whole destination.
                unsafe {
                    // Standard, out = v·Aᵀ: dA = gᵀ·v, dv = g·A.
                    // Search code, out = v·A: dA = vᵀ·g, dv = g·Aᵀ.
                    let (x, y, a_op) = if s.standard {
                        (g, v, plain(n))
                    } else {
                        (v, g, transposed(n))
                    };
                    let dap = da.as_mut_ptr();
                    gemm_f32(
                        (n, n, d),
                        dap,
                        plain(n),
                        false,
                        x,
                        transposed(n),
                        y,
                        plain(n),
                    );
                    gemm_f32((d, n, n), dv, plain(n), false, g, plain(n), a, a_op);
                    let a = std::slice::from_raw_parts(a, n * n);
                    softmax_rows_backward(a, da, n, s.scale);
                    // L = qᵀ·k: dq = k·dLᵀ, dk = q·dL.
                    let dl = da.as_ptr();
                    gemm_f32(
                        (d, n, n),
                        dq,
                        plain(n),
                        false,
                        k,
                        plain(n),
                        dl,
                        transposed(n),
                    );
                    gemm_f32((d, n, n), dk, plain(n), false, q, plain(n), dl, plain(n));
                }
            },
        )
    };
    if s.tasks() * n * d == 0 {
        return vec![0f32; qkv.len()];
    }
    // SAFETY: the tasks' q, k and v slots tile the whole `qkv` gradient.
    unsafe { vec_written_by(qkv.len(), fill) }
}

/// The custom operation: `softmax(s·qᵀk)` applied to `v` as one node.
#[backend_extension(Flex, Autodiff)]
pub trait FusedAttentionBackend: Backend {
    /// `qkv` `[batch, 3·heads·dim_head, tokens]` → `[batch, heads·dim_head, tokens]` (`f32`).
    fn fused_attention(
        qkv: FloatTensor<Self>,
        heads: usize,
        scale: f64,
        standard: bool,
    ) -> FloatTensor<Self>;
}

impl FusedAttentionBackend for Flex {
    fn fused_attention(
        qkv: FloatTensor<Self>,
        heads: usize,
        scale: f64,
        standard: bool,
    ) -> FloatTensor<Self> {
        let s = shape_of(&qkv, heads, scale, standard);
        Self::attention_forward(qkv, &s).0
    }
}

/// The [`AttentionShape`] of a `[batch, 3·heads·dim_head, tokens]` tensor.
fn shape_of(qkv: &impl TensorMetadata, heads: usize, scale: f64, standard: bool) -> AttentionShape {
    let dims = qkv.shape();
    let [batch, channels, tokens] = [dims[0], dims[1], dims[2]];
    AttentionShape {
        batch,
        heads,
        dim_head: channels / (3 * heads),
        tokens,
        scale: scale as f32,
        standard,
    }
}

/// The kernels behind the node (implemented for burn-flex, `f32`; [`attention`] routes only
/// such tensors here).
pub trait AttentionKernels: Backend {
    /// `(out, probs)`, see [`forward`].
    fn attention_forward(
        qkv: FloatTensor<Self>,
        s: &AttentionShape,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// The `qkv` gradient, see [`backward`].
    fn attention_backward(
        qkv: FloatTensor<Self>,
        probs: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        s: &AttentionShape,
    ) -> FloatTensor<Self>;
}

impl AttentionKernels for Flex {
    fn attention_forward(
        qkv: FloatTensor<Self>,
        s: &AttentionShape,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let qc = contiguous_f32(&qkv).expect("fused attention: f32 qkv (checked by `applies`)");
        let (out, probs) = forward(values(&qc), s);
        (
            flex_tensor(out, [s.batch, s.heads * s.dim_head, s.tokens]),
            flex_tensor(probs, [s.batch, s.heads, s.tokens, s.tokens]),
        )
    }

    fn attention_backward(
        qkv: FloatTensor<Self>,
        probs: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        s: &AttentionShape,
    ) -> FloatTensor<Self> {
        let f32_of = |t: &FloatTensor<Self>| {
            contiguous_f32(t).expect("fused attention: f32 tensors (checked by `applies`)")
        };
        let (qc, pc, gc) = (f32_of(&qkv), f32_of(&probs), f32_of(&grad));
        let dqkv = backward(values(&qc), values(&pc), values(&gc), s);
        flex_tensor(dqkv, qkv.shape())
    }
}

/// The node of one fused attention.
#[derive(Debug)]
struct AttentionNode {
    shape: AttentionShape,
}

impl<B: AttentionKernels> Backward<B, 1> for AttentionNode {
    // `qkv` and the probabilities, as the forward had them.
    type State = (B::FloatTensorPrimitive, B::FloatTensorPrimitive);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_qkv] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(node) = node_qkv {
            let (qkv, probs) = ops.state;
            grads.register::<B>(
                node.id,
                B::attention_backward(qkv, probs, grad, &self.shape),
            );
        }
    }
}

impl<B: AttentionKernels, C: CheckpointStrategy> FusedAttentionBackend for Autodiff<B, C> {
    #[inline(never)]
    fn fused_attention(
        qkv: FloatTensor<Self>,
        heads: usize,
        scale: f64,
        standard: bool,
    ) -> FloatTensor<Self> {
        let shape = shape_of(&qkv, heads, scale, standard);
        match (AttentionNode { shape })
            .prepare::<C>([qkv.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let qkv = qkv.into_primitive();
                let (out, probs) = B::attention_forward(qkv.clone(), &shape);
                prep.finish((qkv, probs), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::attention_forward(qkv.into_primitive(), &shape).0)
            }
        }
    }
}

/// Whether [`attention`] takes `qkv`: burn-flex, `f32`, fused nodes on.
pub fn applies(qkv: &Tensor<3>) -> bool {
    crate::fused_norm::enabled() && is_flex(&qkv.device()) && qkv.dtype() == DType::F32
}

/// Multi-head attention of a `qkv` map as one node: with `q`, `k`, `v` the `[dim_head, tokens]`
/// slices of each head, `A = softmax_keys(scale · qᵀk)` and `out = v·Aᵀ` (`Standard`) or `v·A`
/// (`SearchCode`). Only for tensors [`applies`] accepts.
///
/// # Shapes
/// - `qkv`: `[batch, 3·heads·dim_head, tokens]` (all queries, all keys, all values; head-major)
/// - output: `[batch, heads·dim_head, tokens]`
///
/// # Panics
/// If `heads` is 0 or the channel count is not a multiple of `3·heads`.
pub fn attention(
    qkv: Tensor<3>,
    heads: usize,
    scale: f64,
    orientation: AttentionOrientation,
) -> Tensor<3> {
    let [_, channels, _] = qkv.dims();
    assert!(
        heads > 0 && channels % (3 * heads) == 0,
        "attention: {channels} qkv channels are not 3 × {heads} heads × dim_head"
    );
    let standard = orientation == AttentionOrientation::Standard;
    Tensor::from_dispatch(
        <burn::backend::Dispatch as FusedAttentionBackend>::fused_attention(
            qkv.into_dispatch(),
            heads,
            scale,
            standard,
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::composed_attention;
    use burn::tensor::{Device, Distribution};

    fn to_vec(t: Tensor<3>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    /// Output and `qkv` gradient equal the composed ops (rel. 1e-5) in both orientations, on
    /// odd token counts (7×7 maps, and 5) and with one or several heads; untracked calls give
    /// the same output.
    #[test]
    fn matches_composed_attention() {
        let d = Device::flex().autodiff();
        for (b, heads, dh, n) in [(2usize, 3usize, 4usize, 49usize), (3, 1, 8, 5)] {
            let qkv0 =
                Tensor::<3>::random([b, 3 * heads * dh, n], Distribution::Normal(0.0, 2.0), &d);
            let g = Tensor::<3>::random([b, heads * dh, n], Distribution::Normal(0.0, 1.0), &d);
            let scale = (dh as f64).powf(-0.5);
            for orientation in [
                AttentionOrientation::Standard,
                AttentionOrientation::SearchCode,
            ] {
                let run = |fused: bool| {
                    let qkv = qkv0.clone().detach().require_grad();
                    assert!(applies(&qkv));
                    let y = if fused {
                        attention(qkv.clone(), heads, scale, orientation)
                    } else {
                        composed_attention(qkv.clone(), heads, scale, orientation)
                    };
                    let grads = (y.clone() * g.clone().detach()).sum().backward();
                    (
                        to_vec(y.detach().inner()),
                        to_vec(qkv.grad(&grads).unwrap()),
                    )
                };
                let (y1, dq1) = run(true);
                let (y2, dq2) = run(false);
                for (what, a, e) in [("out", &y1, &y2), ("dqkv", &dq1, &dq2)] {
                    let top = e.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
                    for (i, (p, q)) in a.iter().zip(e.iter()).enumerate() {
                        assert!(
                            (p - q).abs() <= 1e-5 * top,
                            "{what}[{i}] ({b},{heads},{dh},{n}, {orientation:?}): {p} vs {q}"
                        );
                    }
                }
                let plain = attention(qkv0.clone().inner(), heads, scale, orientation);
                let top = y2.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
                assert!(
                    to_vec(plain)
                        .iter()
                        .zip(&y2)
                        .all(|(p, q)| (p - q).abs() <= 1e-5 * top)
                );
            }
        }
    }
}
