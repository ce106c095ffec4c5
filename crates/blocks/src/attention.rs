//! Multi-head self-attention over the spatial positions of a feature map (spec §2.4).

use crate::fused_act::scaled_softmax;
use burn::config::Config;
use burn::module::Module;
use burn::nn::Initializer;
use burn::nn::conv::Conv2d;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::hytra_layers::conv;

/// How the attention weights aggregate the values (spec §2.4, §9 B4).
///
/// With `A = softmax_k(q·kᵀ/√d)` of shape `[heads, N_q, N_k]` and values `v` of shape
/// `[heads, d, N]`:
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum AttentionOrientation {
    /// `out = v · Aᵀ`, i.e. `out[:, q] = Σ_k A[q, k] v[:, k]`: standard MHSA as in the paper and
    /// the released BossNet checkpoints (retraining code after commit `bb8b26a`). Default.
    #[default]
    Standard,
    /// `out = v · A`, i.e. `out[:, j] = Σ_i A[i, j] v[:, i]` (aggregation over queries): what
    /// the official *search* code computes (`hytra_ops.Attention`).
    SearchCode,
}

/// Multi-head self-attention on a `[B, C, H, W]` map, tokens = the `H·W` positions.
///
/// `to_qkv` is a bias-free 1×1 conv `C → 3·heads·dim_head`; its output channels are, in order,
/// all queries, all keys, all values (each `heads·dim_head`, head-major). Logits `qᵀk` are scaled
/// by `dim_head^(-1/2)`. There is no positional embedding (PEG provides it upstream).
///
/// # Shapes
/// - input: `[batch, C, H, W]`
/// - output: `[batch, heads·dim_head, H, W]`
#[derive(Module, Debug)]
pub struct Mhsa {
    /// 1×1 conv producing q, k and v.
    pub to_qkv: Conv2d,
    /// Number of heads.
    pub heads: usize,
    /// Channels per head.
    pub dim_head: usize,
    /// Aggregation orientation.
    #[module(skip)]
    pub orientation: AttentionOrientation,
}

/// Configuration of an [`Mhsa`].
#[derive(Config, Debug)]
pub struct MhsaConfig {
    /// Input channels `C`.
    pub channels: usize,
    /// Number of heads.
    #[config(default = 4)]
    pub heads: usize,
    /// Channels per head.
    #[config(default = 64)]
    pub dim_head: usize,
    /// Aggregation orientation (default: standard attention).
    #[config(default = "AttentionOrientation::Standard")]
    pub orientation: AttentionOrientation,
    /// Weight initializer of `to_qkv` (`None`: Burn's default).
    #[config(default = "None")]
    pub initializer: Option<Initializer>,
}

impl MhsaConfig {
    /// Builds the module.
    pub fn init(&self, device: &Device) -> Mhsa {
        let inner = self.heads * self.dim_head;
        Mhsa {
            to_qkv: conv(
                self.channels,
                3 * inner,
                1,
                1,
                0,
                1,
                false,
                &self.initializer,
            )
            .init(device),
            heads: self.heads,
            dim_head: self.dim_head,
            orientation: self.orientation,
        }
    }
}

impl Mhsa {
    /// See the type-level `# Shapes`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, _, h, w] = x.dims();
        let (heads, d, n) = (self.heads, self.dim_head, h * w);
        let qkv = crate::fast_conv::forward(&self.to_qkv, x).reshape([b, 3 * heads * d, n]);
        let scale = (d as f64).powf(-0.5);
        let out = if crate::fused_attention::applies(&qkv) {
            crate::fused_attention::attention(qkv, heads, scale, self.orientation)
        } else {
            composed_attention(qkv, heads, scale, self.orientation)
        };
        out.reshape([b, heads * d, h, w])
    }
}

/// [`crate::fused_attention::attention`] composed from Burn ops (any device and dtype).
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
