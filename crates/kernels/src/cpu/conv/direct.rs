//! The forward of a stride-1 convolution with few input channels, computed directly from a
//! zero-padded copy of the input instead of through an im2col matrix and a GEMM.
//!
//! Why: in the main job's supernet (quarter-width NATS cells, 2–16 channels on 32×32 and
//! 16×16 maps) a 3×3 convolution is a GEMM of depth `Cin·9 ≤ 144` and only `Cout ≤ 16` rows.
//! Through im2col the input is copied nine times, and `gemm` packs that copy once more before
//! it multiplies; the copies, not the multiplications, were most of the forward's time
//! (`docs/performance.md`, ninth pass). Here each output row is accumulated in registers
//! (`CB` output channels × 16 columns), reading the padded input once per tap.
//!
//! **Same bits as the GEMM path.** `gemm` computes each output as one fused-multiply-add chain
//! over the depth `k = (ci, i, j)` in that order, starting from zero, when the depth fits one
//! of its cache blocks (it does up to [`MAX_DEPTH`]). This kernel runs the same chain in the
//! same order, padding included (the padded copy holds the same zeros the im2col matrix
//! holds), so its output is bit-for-bit the GEMM path's: tested in
//! `tests::direct_forward_writes_the_gemm_paths_bits`. A run therefore gives the same losses,
//! ratings and searched architecture with or without it.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::Geometry;
use crate::cpu::uninit::vec_written_by;

/// Deepest `Cin·kh·kw` taken. The quarter-width NATS supernet's widest 3×3 layer has 144; at
/// that depth `gemm` still runs one chain per output (the bit-identity test covers up to it).
pub(super) const MAX_DEPTH: usize = 144;

/// Output columns per register accumulator (one AVX-512 vector).
const LANES: usize = 16;

/// Whether this CPU runs the AVX-512 kernel (checked once by `std`, cached).
fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether [`forward`] takes this convolution: stride 1, a kernel larger than 1×1, a depth of
/// at most [`MAX_DEPTH`], and an AVX-512 CPU (elsewhere the GEMM path runs: the chain must be
/// fused like `gemm`'s, and the accumulators need the 32 vector registers).
pub(super) fn applies(g: &Geometry) -> bool {
    g.stride == [1, 1]
        && g.kh * g.kw > 1
        && g.c_in > 0
        && g.c_out > 0
        && g.c_in * g.kh * g.kw <= MAX_DEPTH
        && g.h_out > 0
        && g.w_out > 0
        && has_avx512()
}

/// `y = conv2d(x, weight)` for a geometry where [`applies`] holds, items in parallel.
///
/// # Shapes
/// `x` `[B, Cin, H, W]`, `weight` `[Cout, Cin, kh, kw]` → `[B, Cout, Ho, Wo]`.
pub(super) fn forward(x: &[f32], weight: &[f32], g: &Geometry) -> Vec<f32> {
    assert!(applies(g), "direct::forward outside its domain: {g:?}");
    let wt = taps_by_channel(weight, g);
    let (item_in, item_out) = (g.c_in * g.h * g.w, g.c_out * g.h_out * g.w_out);
    let fill = |out: &mut [MaybeUninit<f32>]| {
        out.par_chunks_mut(item_out)
            .enumerate()
            .for_each_init(Vec::new, |xpad, (b, ob)| {
                pad_item(&x[b * item_in..(b + 1) * item_in], g, xpad);
                // SAFETY: `applies` checked AVX-512 on this CPU; `xpad` is the padded item
                // with its slack, `ob` the item's `[Cout, Ho, Wo]` output.
                unsafe { avx512::item(xpad, &wt, g, ob) }
            })
    };
    // SAFETY: `avx512::item` writes every element of its item's `[Cout, Ho, Wo]` chunk.
    unsafe { vec_written_by(g.batch * item_out, fill) }
}

/// The weight as `[Cin·kh·kw, Cout]`: for one tap, the output channels side by side.
fn taps_by_channel(weight: &[f32], g: &Geometry) -> Vec<f32> {
    let depth = g.c_in * g.kh * g.kw;
    let mut wt = vec![0f32; depth * g.c_out];
    for co in 0..g.c_out {
        for k in 0..depth {
            wt[k * g.c_out + co] = weight[co * depth + k];
        }
    }
    wt
}

/// Padded plane sizes: output row `oh`, tap row `i` reads padded row `oh + i`; output column
/// `ow`, tap column `j` reads padded column `ow + j`.
fn padded(g: &Geometry) -> (usize, usize) {
    (g.h_out + g.kh - 1, g.w_out + g.kw - 1)
}

/// Copies one item `[Cin, H, W]` into `xpad` (`[Cin, Hp, Wp]` plus `LANES` zeros of slack for
/// the last vector of a row), zeros where the input has none.
fn pad_item(x: &[f32], g: &Geometry, xpad: &mut Vec<f32>) {
    let (hp, wp) = padded(g);
    let [pt, pl] = g.pad_top_left;
    xpad.clear();
    xpad.resize(g.c_in * hp * wp + LANES, 0.0);
    for ci in 0..g.c_in {
        for r in 0..g.h {
            let pr = r + pt;
            if pr >= hp {
                break;
            }
            // Columns of input row `r` that land inside the padded width.
            let n = g.w.min(wp.saturating_sub(pl));
            let src = &x[(ci * g.h + r) * g.w..][..n];
            xpad[(ci * hp + pr) * wp + pl..][..n].copy_from_slice(src);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod avx512 {
    use super::*;

    pub(super) unsafe fn item(_: &[f32], _: &[f32], _: &Geometry, _: &mut [MaybeUninit<f32>]) {
        unreachable!("`applies` is false off x86-64")
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::*;

    /// One item: output channels in blocks of 8 (then 4, 2, 1 for the rest), each block
    /// row by row and 16 columns at a time.
    ///
    /// # Safety
    /// AVX-512F must be available; `xpad` is [`pad_item`]'s buffer for this geometry and
    /// `out` one item's `[Cout, Ho, Wo]`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn item(
        xpad: &[f32],
        wt: &[f32],
        g: &Geometry,
        out: &mut [MaybeUninit<f32>],
    ) {
        let (hp, wp) = padded(g);
        assert!(xpad.len() >= g.c_in * hp * wp + LANES);
        assert!(wt.len() == g.c_in * g.kh * g.kw * g.c_out);
        assert!(out.len() == g.c_out * g.h_out * g.w_out);
        let out = out.as_mut_ptr().cast::<f32>();
        let mut co = 0;
        while co < g.c_out {
            // SAFETY (each call): the asserts above bound every read and write.
            co += unsafe {
                match g.c_out - co {
                    8.. => channel_block::<8>(xpad, wt, g, co, out),
                    4..=7 => channel_block::<4>(xpad, wt, g, co, out),
                    2..=3 => channel_block::<2>(xpad, wt, g, co, out),
                    _ => channel_block::<1>(xpad, wt, g, co, out),
                }
            };
        }
    }

    /// Output channels `co0..co0 + N` of one item; returns `N`. The `N` accumulators (16
    /// columns each) stay in registers over the whole chain `(ci, i, j)`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn channel_block<const N: usize>(
        xpad: &[f32],
        wt: &[f32],
        g: &Geometry,
        co0: usize,
        out: *mut f32,
    ) -> usize {
        let (hp, wp) = padded(g);
        let p = g.h_out * g.w_out;
        let (x, w) = (xpad.as_ptr(), wt.as_ptr());
        for oh in 0..g.h_out {
            for ow0 in (0..g.w_out).step_by(LANES) {
                let mut acc = [_mm512_setzero_ps(); N];
                for ci in 0..g.c_in {
                    for i in 0..g.kh {
                        // SAFETY: padded row `oh + i` of channel `ci`, columns `ow0 + j` to
                        // `ow0 + j + 15` ≤ `wp − 1 + 15`: inside the row or the slack.
                        let row = unsafe { x.add((ci * hp + oh + i) * wp + ow0) };
                        for j in 0..g.kw {
                            let xv = unsafe { _mm512_loadu_ps(row.add(j)) };
                            let k = (ci * g.kh + i) * g.kw + j;
                            let wk = unsafe { w.add(k * g.c_out + co0) };
                            for (c, a) in acc.iter_mut().enumerate() {
                                // a = x · w + a, fused: the step of `gemm`'s chain.
                                *a = _mm512_fmadd_ps(xv, _mm512_set1_ps(unsafe { *wk.add(c) }), *a);
                            }
                        }
                    }
                }
                let n = LANES.min(g.w_out - ow0);
                let mask: __mmask16 = if n == LANES { !0 } else { (1u16 << n) - 1 };
                for (c, a) in acc.iter().enumerate() {
                    // SAFETY: `n` columns of row `oh` of output channel `co0 + c`.
                    unsafe {
                        _mm512_mask_storeu_ps(out.add((co0 + c) * p + oh * g.w_out + ow0), mask, *a)
                    };
                }
            }
        }
        N
    }
}
