//! The attention core of MHSA as one functional op: the fused node on burn-flex where it
//! applies ([`crate::nodes::attention::applies`]), Burn's ops elsewhere.

use burn::tensor::Tensor;

use crate::nodes::act::scaled_softmax;
use crate::nodes::attention as fused;
pub use crate::nodes::attention::AttentionOrientation;

/// Multi-head attention of a `qkv` map: `A = softmax_keys(scale · qᵀk)` per head, applied to
/// `v` as `orientation` says. One fused node on burn-flex (`f32`, fused nodes on), the composed
/// Burn ops ([`composed_attention`]) on every other device.
///
/// # Shapes
/// - `qkv`: `[batch, 3·heads·dim_head, tokens]` (all queries, all keys, all values; head-major)
/// - output: `[batch, heads·dim_head, tokens]`
pub fn attention(
    qkv: Tensor<3>,
    heads: usize,
    scale: f64,
    orientation: AttentionOrientation,
) -> Tensor<3> {
    if fused::applies(&qkv) {
        let standard = orientation == AttentionOrientation::Standard;
        fused::attention_node(qkv, heads, scale, standard)
    } else {
        composed_attention(qkv, heads, scale, orientation)
    }
}

/// [`crate::nodes::attention::attention_node`] composed from Burn ops (any device and dtype).
///
/// # Shapes
/// - `qkv`: `[batch, 3·heads·dim_head, tokens]`; output: `[batch, heads·dim_head, tokens]`
pub fn composed_attention(
    qkv: Tensor<3>,
    heads: usize,
    scale: f64,
    orientation: AttentionOrientation,
) -> Tensor<3> {
    let [b, c, n] = qkv.dims();
    let d = c / (3 * heads);
    let qkv = qkv.reshape([b, 3 * heads, d, n]);
    let q = qkv.clone().narrow(1, 0, heads);
    let k = qkv.clone().narrow(1, heads, heads);
    let v = qkv.narrow(1, 2 * heads, heads);
    // [b, heads, N_q, N_k]; the 1/√d of the queries is applied to the logits, inside the
    // softmax node (same product; scaling the strided query view cost a slow copy on flex).
    let attn = scaled_softmax(q.swap_dims(2, 3).matmul(k), 3, scale);
    let out = match orientation {
        AttentionOrientation::Standard => v.matmul(attn.swap_dims(2, 3)),
        AttentionOrientation::SearchCode => v.matmul(attn),
    };
    out.reshape([b, heads * d, n])
}
