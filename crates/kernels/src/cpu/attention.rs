//! The multi-head attention core on `f32` buffers: one parallel task per (item, head) runs
//! the small GEMMs straight on the `qkv` buffer through strides (forward and backward), the
//! kernels of [`crate::nodes::attention`].

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::conv::{SharedMut, gemm_f32};
use super::uninit::vec_written_by;

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
            *v = super::act::exp_f32(scale * *v - max);
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
