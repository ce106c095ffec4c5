//! The core of multi-head self-attention, `softmax(s·qᵀk)` applied to `v`, as one autodiff
//! node on burn-flex (issue 7, CPU speed).
//!
//! Composed from Burn ops, `bossnas_blocks::attention::Mhsa` takes three strided views of the `qkv`
//! map, two batched matmuls, a softmax and a reshape; the backward adds two more matmuls per
//! product and writes each view's gradient into a zeroed full-size `qkv` gradient before summing
//! the three. On flex every matmul output is zero-filled and re-aligned on the calling thread.
//! Here one parallel task per (item, head) runs the five small GEMMs of the forward and backward
//! straight on the `qkv` buffer through strides, with the softmax in place, and writes `dq`,
//! `dk`, `dv` into their slots of one `qkv` gradient that is not zero-filled. The node keeps
//! `qkv` and the attention probabilities (as the composed graph does).
//!
//! Other devices and dtypes, and `BOSSNAS_FUSED=off` ([`crate::dispatch::fused_enabled`]), use the
//! composed ops ([`applies`] tells which).

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Flex, TensorMetadata, backend_extension};
use burn::tensor::{DType, Tensor};

use crate::cpu::attention::{AttentionShape, backward, forward};
use crate::cpu::buffers::{contiguous_f32, flex_tensor, values};
use crate::dispatch::fused_on;

/// How the attention weights aggregate the values: a fact of the HyTra space, defined there
/// (`hytra_space::hytra::AttentionOrientation`) so that configs can name it without Burn.
pub use hytra_space::hytra::AttentionOrientation;

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

/// Whether [`attention_node`] takes `qkv`: burn-flex, `f32`, fused nodes on.
pub fn applies(qkv: &Tensor<3>) -> bool {
    fused_on(&qkv.device()) && qkv.dtype() == DType::F32
}

/// Multi-head attention of a `qkv` map as one node: with `q`, `k`, `v` the `[dim_head, tokens]`
/// slices of each head, `A = softmax_keys(scale · qᵀk)` and `out = v·Aᵀ` (`standard`, i.e.
/// [`AttentionOrientation::Standard`]) or `v·A` (`SearchCode`). Only for tensors [`applies`]
/// accepts; models call the routed `bossnas_kernels::attention`.
///
/// # Shapes
/// - `qkv`: `[batch, 3·heads·dim_head, tokens]` (all queries, all keys, all values; head-major)
/// - output: `[batch, heads·dim_head, tokens]`
///
/// # Panics
/// If `heads` is 0 or the channel count is not a multiple of `3·heads`.
pub fn attention_node(qkv: Tensor<3>, heads: usize, scale: f64, standard: bool) -> Tensor<3> {
    let [_, channels, _] = qkv.dims();
    assert!(
        heads > 0 && channels % (3 * heads) == 0,
        "attention: {channels} qkv channels are not 3 × {heads} heads × dim_head"
    );
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
    use crate::ops::attention::composed_attention;
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
                        attention_node(
                            qkv.clone(),
                            heads,
                            scale,
                            orientation == AttentionOrientation::Standard,
                        )
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
                let standard = orientation == AttentionOrientation::Standard;
                let plain = attention_node(qkv0.clone().inner(), heads, scale, standard);
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
