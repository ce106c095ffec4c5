//! Multi-head self-attention over the spatial positions of a feature map (spec §2.4).

use burn::config::Config;
use burn::module::Module;
use burn::nn::Initializer;
use burn::nn::conv::Conv2d;
use burn::tensor::{Device, Tensor};

pub use bossnas_kernels::AttentionOrientation;
use bossnas_kernels::{attention, conv2d_module};

use crate::hytra_layers::conv;

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
        let qkv = conv2d_module(&self.to_qkv, x).reshape([b, 3 * heads * d, n]);
        let scale = (d as f64).powf(-0.5);
        let out = attention(qkv, heads, scale, self.orientation);
        out.reshape([b, heads * d, h, w])
    }
}
