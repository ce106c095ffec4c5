//! The orientation of HyTra's attention: which way the softmax weights aggregate the values.
//! The kernels (`bossnas_kernels::attention`) compute it; configs and architectures name it.

use serde::{Deserialize, Serialize};

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
