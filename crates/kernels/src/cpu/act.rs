//! SiLU and scaled last-dimension softmax on `f32` buffers (forward and backward, one pass
//! each), with a branch-free vectorisable `exp`: the kernels of [`crate::nodes::act`].

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::uninit::{vec_written_by, zip_map};

/// `e^x` for `f32`, branch-free so that loops over it vectorise: `2^n · p(r)` with
/// `n = round(x / ln 2)`, `r = x − n·ln 2` (two-part constant) and Cephes' degree-7
/// polynomial. Inputs are clamped to `[-87.3, 88.3]` (results `≈ 1.2e-38 … 2.2e38`, normal
/// floats); NaN stays NaN.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2^23: adding it rounds to an integer, held in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.3);
    let shifted = x * LOG2E + MAGIC;
    let n = shifted - MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 0.166_666_65;
    let p = p * r + 0.5;
    let p = p * r * r + r + 1.0;
    // 2^n from the integer in `shifted`'s mantissa (n ∈ [-126, 127] after the clamp).
    let n_int = shifted.to_bits().wrapping_sub(MAGIC.to_bits()) as i32;
    let scale = f32::from_bits(((n_int + 127).clamp(1, 254) as u32) << 23);
    p * scale
}

/// `1 / (1 + e^{−x})`.
#[inline(always)]
fn sigmoid_f32(x: f32) -> f32 {
    1.0 / (1.0 + exp_f32(-x))
}

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// `y = x · sigmoid(x)`.
pub fn silu_forward(x: &[f32]) -> Vec<f32> {
    let fill = |y: &mut [MaybeUninit<f32>]| {
        y.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(y, x)| {
                for (o, &v) in y.iter_mut().zip(x) {
                    o.write(v * sigmoid_f32(v));
                }
            })
    };
    // SAFETY: equal-length chunks of `x` and the output: every element is written.
    unsafe { vec_written_by(x.len(), fill) }
}

/// `dx = dy · s · (1 + x · (1 − s))`, `s = sigmoid(x)`.
pub fn silu_backward(x: &[f32], dy: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), dy.len(), "silu backward: gradient shape");
    zip_map(x, dy, |v, d| {
        let s = sigmoid_f32(v);
        d * s * (1.0 + v * (1.0 - s))
    })
}

/// Row-wise softmax of `s·x`, `x` viewed as rows of `row` values:
/// `y = e^{s·x − m} / Σ e^{s·x − m}` with `m = max(s·x)`.
pub fn softmax_forward(x: &[f32], row: usize, scale: f32) -> Vec<f32> {
    let row = row.max(1);
    assert_eq!(
        x.len() % row,
        0,
        "softmax: length is not a multiple of the row"
    );
    let rows_per_task = (CHUNK / row).max(1);
    let fill = |y: &mut [MaybeUninit<f32>]| {
        y.par_chunks_mut(row * rows_per_task)
            .zip(x.par_chunks(row * rows_per_task))
            .for_each(|(y, x)| {
                for (y, x) in y.chunks_exact_mut(row).zip(x.chunks_exact(row)) {
                    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(scale * v));
                    let mut sum = 0f32;
                    for (o, &v) in y.iter_mut().zip(x) {
                        sum += *o.write(exp_f32(scale * v - max));
                    }
                    let inv = 1.0 / sum;
                    for o in y.iter_mut() {
                        // SAFETY: written by the loop above.
                        let e = unsafe { o.assume_init() };
                        o.write(e * inv);
                    }
                }
            })
    };
    // SAFETY: whole rows (the length is a multiple of `row`), each element written.
    unsafe { vec_written_by(x.len(), fill) }
}

/// Backward of [`softmax_forward`] from the output `y` and its gradient `dy`, row-wise:
/// `dx = s · y · (dy − Σ dy·y)`.
pub fn softmax_backward(y: &[f32], dy: &[f32], row: usize, scale: f32) -> Vec<f32> {
    assert_eq!(y.len(), dy.len(), "softmax backward: gradient shape");
    let row = row.max(1);
    assert_eq!(
        y.len() % row,
        0,
        "softmax backward: length is not a multiple of the row"
    );
    let rows_per_task = (CHUNK / row).max(1);
    let fill = |dx: &mut [MaybeUninit<f32>]| {
        dx.par_chunks_mut(row * rows_per_task)
            .zip(
                y.par_chunks(row * rows_per_task)
                    .zip(dy.par_chunks(row * rows_per_task)),
            )
            .for_each(|(dx, (y, dy))| {
                for ((o, y), g) in dx
                    .chunks_exact_mut(row)
                    .zip(y.chunks_exact(row))
                    .zip(dy.chunks_exact(row))
                {
                    let dot: f32 = y.iter().zip(g).map(|(a, b)| a * b).sum();
                    for ((o, &a), &b) in o.iter_mut().zip(y).zip(g) {
                        o.write(scale * a * (b - dot));
                    }
                }
            })
    };
    // SAFETY: whole rows, each element written.
    unsafe { vec_written_by(y.len(), fill) }
}
