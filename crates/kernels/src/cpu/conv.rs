//! Dense 2-D convolution kernels written against burn-flex's buffers: im2col tiles of one batch
//! item fed straight to `gemm` (the GEMM library burn-flex itself uses), for the forward, the
//! weight gradient and the input gradient (issue 7).
//!
//! Why not Burn's own: burn-flex's generic conv backward computes the weight gradient as a
//! forward convolution with the output gradient as kernel (GEMMs with a tiny `n`) and the input
//! gradient as a transposed convolution; tensor-primitive rewrites pay full-size copies
//! (`docs/performance.md`). Here every GEMM is well shaped and the only extra memory is one
//! im2col tile per thread:
//!
//! - forward: `Y[b] [Cout, P] = W [Cout, Cin·k²] · cols(X[b]) [Cin·k², P]`, items in parallel
//!   (with few input channels, [`direct`]: the same arithmetic without the im2col copies, bit
//!   for bit);
//! - weight gradient: `dW [Cout, Cin·k²] = Σ_b G[b] [Cout, P] · cols(X[b])ᵀ`, accumulated in
//!   place by `gemm`; threads own disjoint input-channel ranges (disjoint columns of `dW`), so no
//!   per-thread copies of `dW` are needed;
//! - input gradient: `dcols = Wᵀ · G[b]`, then col2im (scatter-add), items in parallel;
//!
//! with `P = Ho·Wo` and `cols` laid out `[(ci, i, j), (oh, ow)]`. Groups = 1, dilation 1, any
//! stride and (asymmetric) zero padding, `f32`. Tested against Burn's `conv2d` through
//! `dense_conv`'s tests.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::cpu::uninit::vec_written_by;
use crate::dispatch::{FOLD_BATCH_BELOW, FOLD_COLS_MAX};

mod direct;

/// Shapes and hyper-parameters of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub batch: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    /// Top and left zero padding (bottom/right padding only shows in `h_out`/`w_out`).
    pub pad_top_left: [usize; 2],
    pub h_out: usize,
    pub w_out: usize,
}

impl Geometry {
    fn taps(&self) -> usize {
        self.kh * self.kw
    }
    fn positions(&self) -> usize {
        self.h_out * self.w_out
    }
    fn item_in(&self) -> usize {
        self.c_in * self.h * self.w
    }
    fn item_out(&self) -> usize {
        self.c_out * self.positions()
    }
    /// A 1×1 kernel at stride 1 without padding: the im2col matrix is the input itself.
    fn identity_im2col(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.stride == [1, 1]
            && self.pad_top_left == [0, 0]
            && (self.h_out, self.w_out) == (self.h, self.w)
    }
    /// Columns `ow` whose input column `ow·sw + j − pl` is inside `[0, w)`, for `sw = 1`.
    fn valid_cols(&self, j: usize) -> (usize, usize) {
        let (pl, wo, w) = (
            self.pad_top_left[1] as isize,
            self.w_out as isize,
            self.w as isize,
        );
        let lo = (pl - j as isize).clamp(0, wo);
        let hi = (w + pl - j as isize).clamp(lo, wo);
        (lo as usize, hi as usize)
    }
}

/// A pointer that may cross threads: each thread writes a disjoint part of the buffer.
#[derive(Clone, Copy)]
pub(crate) struct SharedMut(pub(crate) *mut f32);
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// The pointer (a method, so closures capture the `Send` wrapper, not the raw field).
    pub(crate) fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// `dst[m×n] (row stride dst_rs) = [dst +] lhs[m×k] · rhs[k×n]`, single-threaded, with
/// arbitrary strides (`*_rs`: row stride, `*_cs`: column stride).
///
/// # Safety
/// The pointers must cover the strided `m×n`, `m×k` and `k×n` ranges.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_f32(
    mnk: (usize, usize, usize),
    dst: *mut f32,
    dst_strides: (usize, usize),
    accumulate: bool,
    lhs: *const f32,
    lhs_strides: (usize, usize),
    rhs: *const f32,
    rhs_strides: (usize, usize),
) {
    unsafe {
        gemm_f32_with(
            gemm::Parallelism::None,
            mnk,
            dst,
            dst_strides,
            accumulate,
            lhs,
            lhs_strides,
            rhs,
            rhs_strides,
        )
    }
}

/// [`gemm_f32`] with a choice of `gemm`'s own threading.
///
/// # Safety
/// As [`gemm_f32`].
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_f32_with(
    parallelism: gemm::Parallelism,
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    (dst_rs, dst_cs): (usize, usize),
    accumulate: bool,
    lhs: *const f32,
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: *const f32,
    (rhs_rs, rhs_cs): (usize, usize),
) {
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs,
            lhs_cs as isize,
            lhs_rs as isize,
            rhs,
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// The im2col matrix of input channels `c0..c1` of one item `x` (`[Cin, H, W]`),
/// `[(c1 − c0)·k², P]`: for a plain 1×1 conv (stride 1, no padding) that is `x` itself, with no
/// copy; otherwise [`im2col`] into `buf`.
fn cols_of<'a>(
    x: &'a [f32],
    g: &Geometry,
    (c0, c1): (usize, usize),
    buf: &'a mut [f32],
) -> &'a [f32] {
    if g.identity_im2col() {
        let p = g.positions();
        &x[c0 * p..c1 * p]
    } else {
        im2col(x, g, (c0, c1), buf, g.positions());
        &buf[..(c1 - c0) * g.taps() * g.positions()]
    }
}

/// An im2col buffer for `channels` input channels, empty where [`cols_of`] needs none.
fn cols_buffer(g: &Geometry, channels: usize) -> Vec<f32> {
    if g.identity_im2col() {
        Vec::new()
    } else {
        vec![0f32; channels * g.taps() * g.positions()]
    }
}

/// im2col of input channels `c0..c1` of one item `x` (`[Cin, H, W]`) into `cols`
/// (`[(c1 − c0)·k², P]` with rows `row_stride` apart, every element of the `P` columns
/// written).
fn im2col(x: &[f32], g: &Geometry, (c0, c1): (usize, usize), cols: &mut [f32], row_stride: usize) {
    if g.stride == [1, 1] && g.w_out == g.w {
        im2col_shifted(x, g, (c0, c1), cols, row_stride);
    } else {
        im2col_by_rows(x, g, (c0, c1), cols, row_stride);
    }
}

/// [`im2col`] at stride 1 with as many output as input columns ("same" padding along the
/// width): each row of the matrix is the input plane shifted by `i − pt` rows and `j − pl`
/// columns, so it is one contiguous copy of the plane, after which the few columns that
/// wrapped across a row edge are overwritten with the padding's zeros. The general path
/// makes `h_out` copies of `w` elements instead (plus two fills each): at the NATS
/// supernet's 32×32 maps with 2–16 channels those short copies were a fifth of a training
/// step. Writes the same values as [`im2col_by_rows`] (tested bit for bit).
fn im2col_shifted(
    x: &[f32],
    g: &Geometry,
    (c0, c1): (usize, usize),
    cols: &mut [f32],
    row_stride: usize,
) {
    let (p, kk, w) = (g.positions(), g.taps(), g.w);
    let hw = (g.h * g.w) as isize;
    let [pt, pl] = g.pad_top_left.map(|v| v as isize);
    for ci in c0..c1 {
        let plane = &x[ci * g.h * g.w..(ci + 1) * g.h * g.w];
        for i in 0..g.kh {
            // Output rows whose input row `oh + i − pt` lies inside the plane.
            let dy = i as isize - pt;
            let oh_lo = (-dy).clamp(0, g.h_out as isize) as usize;
            let oh_hi = (g.h as isize - dy).clamp(oh_lo as isize, g.h_out as isize) as usize;
            for j in 0..g.kw {
                let row = &mut cols[((ci - c0) * kk + i * g.kw + j) * row_stride..][..p];
                row[..oh_lo * w].fill(0.0);
                row[oh_hi * w..].fill(0.0);
                if oh_hi == oh_lo {
                    continue;
                }
                // Output element d reads plane[d + shift]. Clipping the source to the plane
                // drops at most |j − pl| elements at either end: border columns, zeroed below.
                let shift = dy * w as isize + (j as isize - pl);
                let d0 = ((oh_lo * w) as isize).max(-shift);
                let d1 = ((oh_hi * w) as isize).min(hw - shift);
                if d1 > d0 {
                    row[d0 as usize..d1 as usize]
                        .copy_from_slice(&plane[(d0 + shift) as usize..(d1 + shift) as usize]);
                }
                let (lo, hi) = g.valid_cols(j);
                if lo == 0 && hi == w {
                    continue;
                }
                // Column by column (a padding is a column or two): strided stores, where a
                // fill per output row would be a `memset` call for one element.
                let body = &mut row[oh_lo * w..oh_hi * w];
                for c in (0..lo).chain(hi..w) {
                    for v in body[c..].iter_mut().step_by(w) {
                        *v = 0.0;
                    }
                }
            }
        }
    }
}

/// [`im2col`] one output row at a time: any stride and padding.
fn im2col_by_rows(
    x: &[f32],
    g: &Geometry,
    (c0, c1): (usize, usize),
    cols: &mut [f32],
    row_stride: usize,
) {
    let (p, kk) = (g.positions(), g.taps());
    let [sh, sw] = g.stride;
    let [pt, pl] = g.pad_top_left;
    for ci in c0..c1 {
        let plane = &x[ci * g.h * g.w..(ci + 1) * g.h * g.w];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = &mut cols[((ci - c0) * kk + i * g.kw + j) * row_stride..][..p];
                let (lo, hi) = g.valid_cols(j);
                for oh in 0..g.h_out {
                    let out = &mut row[oh * g.w_out..(oh + 1) * g.w_out];
                    let y = (oh * sh + i) as isize - pt as isize;
                    if y < 0 || y >= g.h as isize {
                        out.fill(0.0);
                        continue;
                    }
                    let src = &plane[y as usize * g.w..(y as usize + 1) * g.w];
                    if sw == 1 {
                        out[..lo].fill(0.0);
                        out[hi..].fill(0.0);
                        if hi > lo {
                            let s0 = lo + j - pl;
                            out[lo..hi].copy_from_slice(&src[s0..s0 + hi - lo]);
                        }
                    } else {
                        for (ow, o) in out.iter_mut().enumerate() {
                            let xx = (ow * sw + j) as isize - pl as isize;
                            *o = if xx >= 0 && xx < g.w as isize {
                                src[xx as usize]
                            } else {
                                0.0
                            };
                        }
                    }
                }
            }
        }
    }
}

/// Scatter-adds `dcols` (`[Cin·k², P]`, rows `row_stride` apart) into one item's input
/// gradient `dx` (`[Cin, H, W]`, zeroed by the caller).
fn col2im(dcols: &[f32], g: &Geometry, dx: &mut [f32], row_stride: usize) {
    let (p, kk) = (g.positions(), g.taps());
    let [sh, sw] = g.stride;
    let [pt, pl] = g.pad_top_left;
    for ci in 0..g.c_in {
        let plane = &mut dx[ci * g.h * g.w..(ci + 1) * g.h * g.w];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = &dcols[(ci * kk + i * g.kw + j) * row_stride..][..p];
                let (lo, hi) = g.valid_cols(j);
                for oh in 0..g.h_out {
                    let y = (oh * sh + i) as isize - pt as isize;
                    if y < 0 || y >= g.h as isize {
                        continue;
                    }
                    let dst = &mut plane[y as usize * g.w..(y as usize + 1) * g.w];
                    let src = &row[oh * g.w_out..(oh + 1) * g.w_out];
                    if sw == 1 {
                        if hi > lo {
                            let d0 = lo + j - pl;
                            for (d, s) in dst[d0..d0 + hi - lo].iter_mut().zip(&src[lo..hi]) {
                                *d += s;
                            }
                        }
                    } else {
                        for (ow, s) in src.iter().enumerate() {
                            let xx = (ow * sw + j) as isize - pl as isize;
                            if xx >= 0 && xx < g.w as isize {
                                dst[xx as usize] += s;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Whether [`forward`], [`weight_grad`] and [`input_grad`] take the [`folded`] path: a batch of
/// maps of fewer than [`FOLD_BATCH_BELOW`] output positions, and for convolutions other than
/// plain 1×1 an im2col matrix of the whole batch within [`FOLD_COLS_MAX`] values. Measured
/// (release, 2 threads, whole bench rows): the HyTra 1/32 stride-2 rows, whose 3×3 stride-2
/// shortcut has 7×7 outputs, went from 262–265 to 231 ms (ResConv) and 248 to 211 ms (ResAtt);
/// at 14×14 outputs folding the dense convs was no faster (ResConv 1/16 rows within 2 %) and
/// the 512 → 1024 stride-2 weight gradient alone slower (221 against 180 ms), so those stay per
/// item.
fn folds_batch(g: &Geometry) -> bool {
    let p = g.positions();
    g.batch > 1
        && p < FOLD_BATCH_BELOW
        && (g.identity_im2col() || g.c_in * g.taps() * g.batch * p <= FOLD_COLS_MAX)
}

/// Convolutions of small maps as one GEMM over the whole batch:
/// `Y_f [Cout, B·P] = W · C [Cin·k², B·P]`, with `C` the im2col matrices of all items side by
/// side ([`folded::batch_cols`]; for a plain 1×1 conv, the input with batch and channels swapped,
/// [`folded::fold`]). Per item, the GEMMs have only `P` columns (49 at 7×7, 196 at 14×14) and the
/// weight gradient `Σ_b G[b]·C[b]ᵀ` a depth of `P` per item, so each of the `B` products
/// re-reads and re-writes all of `dW`; folded, each of the three products is one GEMM with
/// `gemm`'s own threading and the weight gradient has depth `B·P`. The folds are parallel
/// copies into buffers that are not zero-filled (Burn's `swap_dims` + `reshape` + `matmul`
/// composition of the 1×1 case paid a zero-fill and a re-alignment copy per output, on the
/// calling thread: `docs/performance.md`).
pub mod folded {
    use super::*;

    /// `[B, C, P] → [C, B·P]`.
    pub fn fold(x: &[f32], (b, c, p): (usize, usize, usize)) -> Vec<f32> {
        let fill = |out: &mut [MaybeUninit<f32>]| {
            out.par_chunks_mut((b * p).max(1))
                .enumerate()
                .for_each(|(ci, row)| {
                    for (bi, dst) in row.chunks_exact_mut(p.max(1)).enumerate() {
                        let src = &x[(bi * c + ci) * p..(bi * c + ci + 1) * p];
                        for (o, v) in dst.iter_mut().zip(src) {
                            o.write(*v);
                        }
                    }
                })
        };
        // SAFETY: each of the C rows of B·P values is written in full.
        unsafe { vec_written_by(b * c * p, fill) }
    }

    /// `[C, B·P] → [B, C, P]` (the inverse of [`fold`]: the same swap of the two outer axes).
    pub fn unfold(xf: &[f32], (b, c, p): (usize, usize, usize)) -> Vec<f32> {
        fold(xf, (c, b, p))
    }

    /// The im2col matrix of the whole batch, `[Cin·k², B·P]`, item `b` in columns
    /// `b·P..(b+1)·P`; for a plain 1×1 convolution, [`fold`] of the input.
    pub fn batch_cols(x: &[f32], g: &Geometry) -> Vec<f32> {
        let (b, p, kk) = (g.batch, g.positions(), g.taps());
        if g.identity_im2col() {
            return fold(x, (b, g.c_in, p));
        }
        let bp = b * p;
        let fill = |out: &mut [MaybeUninit<f32>]| {
            // One task per input channel: its k² rows, all items.
            out.par_chunks_mut((kk * bp).max(1))
                .enumerate()
                .for_each(|(ci, block)| {
                    block.iter_mut().for_each(|v| {
                        v.write(0.0);
                    });
                    // SAFETY: every element of `block` was initialised just above.
                    let block = unsafe { &mut *(block as *mut [MaybeUninit<f32>] as *mut [f32]) };
                    for bi in 0..b {
                        let item = &x[bi * g.item_in()..(bi + 1) * g.item_in()];
                        im2col(item, g, (ci, ci + 1), &mut block[bi * p..], bp);
                    }
                })
        };
        // SAFETY: the per-channel blocks tile the buffer and each is initialised in full.
        unsafe { vec_written_by(g.c_in * kk * bp, fill) }
    }

    /// `dst [m, n] = lhs · rhs` with `gemm`'s threading, `dst` not zero-filled first.
    ///
    /// # Safety
    /// As `gemm_f32`.
    unsafe fn product(
        (m, n, k): (usize, usize, usize),
        lhs: (*const f32, (usize, usize)),
        rhs: (*const f32, (usize, usize)),
    ) -> Vec<f32> {
        // `gemm`'s own threading over the whole product (rayon's pool).
        let threads = gemm::Parallelism::Rayon(rayon::current_num_threads().max(1));
        let fill = |out: &mut [MaybeUninit<f32>]| unsafe {
            gemm_f32_with(
                threads,
                (m, n, k),
                out.as_mut_ptr().cast::<f32>(),
                (n, 1),
                false,
                lhs.0,
                lhs.1,
                rhs.0,
                rhs.1,
            )
        };
        if k == 0 {
            return vec![0f32; m * n];
        }
        // SAFETY: gemm writes the whole [m, n] destination without reading it (k > 0).
        unsafe { vec_written_by(m * n, fill) }
    }

    /// [`super::forward`], folded: `Y_f = W · C`, unfolded.
    pub fn forward(x: &[f32], weight: &[f32], g: &Geometry) -> Vec<f32> {
        let (b, p, ck) = (g.batch, g.positions(), g.c_in * g.taps());
        let cols = batch_cols(x, g);
        // SAFETY: W [Cout, ck], C [ck, B·P], row-major.
        let yf = unsafe {
            product(
                (g.c_out, b * p, ck),
                (weight.as_ptr(), (ck, 1)),
                (cols.as_ptr(), (b * p, 1)),
            )
        };
        unfold(&yf, (b, g.c_out, p))
    }

    /// [`super::weight_grad`], folded: `dW = G_f · Cᵀ`, one GEMM of depth `B·P`.
    pub fn weight_grad(x: &[f32], grad: &[f32], g: &Geometry) -> Vec<f32> {
        let (b, p, ck) = (g.batch, g.positions(), g.c_in * g.taps());
        let cols = batch_cols(x, g);
        let gf = fold(grad, (b, g.c_out, p));
        // SAFETY: G_f [Cout, B·P]; C [ck, B·P] read transposed as [B·P, ck].
        unsafe {
            product(
                (g.c_out, ck, b * p),
                (gf.as_ptr(), (b * p, 1)),
                (cols.as_ptr(), (1, b * p)),
            )
        }
    }

    /// [`super::input_grad`], folded: `dC = Wᵀ · G_f`, then unfolded (plain 1×1) or
    /// scattered back per item (col2im).
    pub fn input_grad(weight: &[f32], grad: &[f32], g: &Geometry) -> Vec<f32> {
        let (b, p, ck) = (g.batch, g.positions(), g.c_in * g.taps());
        let gf = fold(grad, (b, g.c_out, p));
        // SAFETY: W [Cout, ck] read transposed as [ck, Cout]; G_f [Cout, B·P].
        let dcols = unsafe {
            product(
                (ck, b * p, g.c_out),
                (weight.as_ptr(), (1, ck)),
                (gf.as_ptr(), (b * p, 1)),
            )
        };
        if g.identity_im2col() {
            return unfold(&dcols, (b, g.c_in, p));
        }
        let mut dx = vec![0f32; b * g.item_in()];
        dx.par_chunks_mut(g.item_in().max(1))
            .enumerate()
            .for_each(|(bi, dxb)| col2im(&dcols[bi * p..], g, dxb, b * p));
        dx
    }
}

/// `y = conv2d(x, weight)`: `x` `[B, Cin, H, W]`, `weight` `[Cout, Cin, kh, kw]` →
/// `[B, Cout, Ho, Wo]`.
pub fn forward(x: &[f32], weight: &[f32], g: &Geometry) -> Vec<f32> {
    if !folds_batch(g) && direct::applies(g) {
        direct::forward(x, weight, g)
    } else {
        forward_im2col(x, weight, g)
    }
}

/// [`forward`] through im2col and GEMM only (never [`direct`]): what `forward` runs outside
/// the direct kernel's domain, public for the benchmark that compares the two
/// (`cargo bench -p bossnas-benches --bench conv_kernels`). Same bits as `forward`.
pub fn forward_im2col(x: &[f32], weight: &[f32], g: &Geometry) -> Vec<f32> {
    if folds_batch(g) {
        folded::forward(x, weight, g)
    } else {
        forward_per_item(x, weight, g)
    }
}

/// [`forward`] as one GEMM per item (items in parallel).
fn forward_per_item(x: &[f32], weight: &[f32], g: &Geometry) -> Vec<f32> {
    let (p, ck) = (g.positions(), g.c_in * g.taps());
    let fill = |out: &mut [MaybeUninit<f32>]| {
        out.par_chunks_mut(g.item_out().max(1))
            .enumerate()
            .for_each_init(
                || cols_buffer(g, g.c_in),
                |buf, (b, ob)| {
                    let cols = cols_of(&x[b * g.item_in()..], g, (0, g.c_in), buf);
                    // SAFETY: `ob` is [Cout, P], `weight` [Cout, ck], `cols` [ck, P],
                    // row-major; gemm writes all of `ob` without reading it (no accumulate).
                    unsafe {
                        gemm_f32(
                            (g.c_out, p, ck),
                            ob.as_mut_ptr().cast::<f32>(),
                            (p, 1),
                            false,
                            weight.as_ptr(),
                            (ck, 1),
                            cols.as_ptr(),
                            (p, 1),
                        )
                    }
                },
            )
    };
    let len = g.batch * g.item_out();
    if len == 0 || ck == 0 {
        // Nothing to multiply (gemm would leave the output unwritten): zeros.
        return vec![0f32; len];
    }
    // SAFETY: one [Cout, P] GEMM output per item chunk covers the buffer (see `fill`).
    unsafe { vec_written_by(len, fill) }
}

/// `∂L/∂W` (`[Cout, Cin, kh, kw]`) from the input `x` and the output gradient `grad`:
/// [`folded`] on batches of small maps, otherwise item by item.
pub fn weight_grad(x: &[f32], grad: &[f32], g: &Geometry) -> Vec<f32> {
    if folds_batch(g) {
        folded::weight_grad(x, grad, g)
    } else {
        weight_grad_per_item(x, grad, g)
    }
}

/// [`weight_grad`] accumulated item by item, as `dWᵀ [Cin·k², Cout] = Σ_b cols(X[b]) · G[b]ᵀ`
/// transposed at the end: in that orientation `gemm` packs the large im2col operand without a
/// strided gather (2.5× faster than `G[b] · colsᵀ` on the NATS conv). Threads take disjoint
/// batch ranges with private accumulators when `dW` is small, else `weight_grad_by_channels`.
fn weight_grad_per_item(x: &[f32], grad: &[f32], g: &Geometry) -> Vec<f32> {
    let ck = g.c_in * g.taps();
    let threads = rayon::current_num_threads().max(1);
    if g.c_out * ck * threads > SMALL_WEIGHT_ELEMS {
        return weight_grad_by_channels(x, grad, g, threads);
    }
    let partials = weight_grad_t_by_items(x, grad, g, threads);
    sum_transposed(&partials, ck, g.c_out)
}

/// `Σ_t parts[t]ᵀ`: the `[Cout, ck]` sum of `[ck, Cout]` partial weight gradients, in parallel
/// over blocks of output rows and in cache tiles (the serial strided transpose it replaces was
/// 2–3 ms of main-thread time per step of the HyTra 1/16 rows).
fn sum_transposed(parts: &[Vec<f32>], ck: usize, c_out: usize) -> Vec<f32> {
    const ROWS: usize = 16;
    const TILE: usize = 64;
    let fill = |dw: &mut [MaybeUninit<f32>]| {
        dw.par_chunks_mut(ROWS * ck.max(1))
            .enumerate()
            .for_each(|(blk, rows)| {
                for c0 in (0..ck).step_by(TILE) {
                    let c1 = (c0 + TILE).min(ck);
                    for (r, row) in rows.chunks_exact_mut(ck).enumerate() {
                        let co = blk * ROWS + r;
                        for (c, o) in row[c0..c1].iter_mut().enumerate() {
                            let at = (c0 + c) * c_out + co;
                            o.write(parts.iter().map(|p| p[at]).sum());
                        }
                    }
                }
            })
    };
    if parts.is_empty() {
        return vec![0f32; ck * c_out];
    }
    // SAFETY: every (co, c) of the [Cout, ck] buffer is written once.
    unsafe { vec_written_by(ck * c_out, fill) }
}

/// Below this many `dW` elements × threads, [`weight_grad`] gives each thread its own `dW`.
const SMALL_WEIGHT_ELEMS: usize = 4 << 20;

/// `dWᵀ (+)= cols(X[b]) · G[b]ᵀ` over `items`, for input channels `c0..c1`, i.e. rows
/// `c0·k²..c1·k²` of `dwt` (row stride `Cout`). The first item overwrites, the rest add.
///
/// # Safety
/// `dwt` must point at a `[Cin·k², Cout]` buffer whose rows `c0·k²..c1·k²` no other thread
/// touches during the call; `cols` must hold `(c1 − c0)·k²·P` elements.
unsafe fn accumulate_weight_grad_t(
    (x, grad): (&[f32], &[f32]),
    g: &Geometry,
    items: std::ops::Range<usize>,
    (c0, c1): (usize, usize),
    dwt: *mut f32,
    cols: &mut [f32],
) {
    let (p, kk) = (g.positions(), g.taps());
    let n = (c1 - c0) * kk;
    for (i, b) in items.enumerate() {
        let cols = cols_of(&x[b * g.item_in()..], g, (c0, c1), cols);
        let gb = &grad[b * g.item_out()..(b + 1) * g.item_out()];
        // dWᵀ[rows] [n, Cout] (+)= cols [n, P] · G[b]ᵀ [P, Cout]
        unsafe {
            gemm_f32(
                (n, g.c_out, p),
                dwt.add(c0 * kk * g.c_out),
                (g.c_out, 1),
                i > 0,
                cols.as_ptr(),
                (p, 1),
                gb.as_ptr(),
                (1, p),
            )
        }
    }
}

/// Per-thread partial `dWᵀ` (`[Cin·k², Cout]` each) over disjoint batch ranges.
fn weight_grad_t_by_items(x: &[f32], grad: &[f32], g: &Geometry, threads: usize) -> Vec<Vec<f32>> {
    let ck = g.c_in * g.taps();
    let parts = threads.clamp(1, g.batch.max(1));
    (0..parts)
        .into_par_iter()
        .map(|t| {
            let mut dwt = vec![0f32; ck * g.c_out];
            let mut cols = cols_buffer(g, g.c_in);
            let items = t * g.batch / parts..(t + 1) * g.batch / parts;
            // SAFETY: `dwt` is this thread's own [ck, Cout] buffer; `cols` is [ck, P].
            unsafe {
                accumulate_weight_grad_t(
                    (x, grad),
                    g,
                    items,
                    (0, g.c_in),
                    dwt.as_mut_ptr(),
                    &mut cols,
                )
            };
            dwt
        })
        .collect()
}

/// `dW [Cout, Cin·k²] = Σ_b G[b] · cols(X[b])ᵀ`, threads owning disjoint input-channel
/// ranges (disjoint columns of `dW`). For wide layers this orientation measured faster than
/// the transposed one (HyTra 512 → 1024 shortcut: 81 vs 105 ms).
fn weight_grad_by_channels(x: &[f32], grad: &[f32], g: &Geometry, threads: usize) -> Vec<f32> {
    let (p, kk) = (g.positions(), g.taps());
    let ck = g.c_in * kk;
    let mut dw = vec![0f32; g.c_out * ck];
    let parts = threads.clamp(1, g.c_in.max(1));
    let dst = SharedMut(dw.as_mut_ptr());
    (0..parts).into_par_iter().for_each(|t| {
        let (c0, c1) = (t * g.c_in / parts, (t + 1) * g.c_in / parts);
        let n = (c1 - c0) * kk;
        if n == 0 {
            return;
        }
        let mut buf = cols_buffer(g, c1 - c0);
        for b in 0..g.batch {
            let cols = cols_of(&x[b * g.item_in()..], g, (c0, c1), &mut buf);
            let gb = &grad[b * g.item_out()..(b + 1) * g.item_out()];
            // dW[:, c0·k²..c1·k²] (+)= G[b] [Cout, P] · colsᵀ [P, n].
            // SAFETY: this thread alone writes these columns of `dw` ([Cout, ck]).
            unsafe {
                gemm_f32(
                    (g.c_out, n, p),
                    dst.ptr().add(c0 * kk),
                    (ck, 1),
                    b > 0,
                    gb.as_ptr(),
                    (p, 1),
                    cols.as_ptr(),
                    (1, p),
                )
            }
        }
    });
    dw
}

/// `∂L/∂x` (`[B, Cin, H, W]`) from the weight and the output gradient `grad`: [`folded`] on
/// batches of small maps, otherwise item by item.
pub fn input_grad(weight: &[f32], grad: &[f32], g: &Geometry) -> Vec<f32> {
    if folds_batch(g) {
        folded::input_grad(weight, grad, g)
    } else {
        input_grad_per_item(weight, grad, g)
    }
}

/// [`input_grad`] item by item. Plain 1×1: `Wᵀ·G[b]`. Stride 1 (padding below the kernel
/// size) and a weight smaller than the gradient: the forward convolution of `grad` with the
/// flipped, transposed kernel and padding `k − 1 − p`, through [`forward`]. Otherwise
/// [`input_grad_col2im`].
fn input_grad_per_item(weight: &[f32], grad: &[f32], g: &Geometry) -> Vec<f32> {
    let [pt, pl] = g.pad_top_left;
    let (kh, kw, kk) = (g.kh, g.kw, g.taps());
    // Bottom/right padding implied by the output size (negative: rows the conv never reads).
    let pb = (g.h_out + kh) as isize - 1 - (g.h + pt) as isize;
    let pr = (g.w_out + kw) as isize - 1 - (g.w + pl) as isize;
    let fits = |p: isize, k: usize| (0..k as isize).contains(&p);
    // The flipped forward re-arranges the whole weight and re-packs it per item: when the
    // weight outweighs the gradient (wide layers on small maps) col2im is cheaper (HyTra
    // 512 → 512 3×3 on 8×7×7: 12 against 19 ms; on the NATS conv, b256 64 → 64 32×32, the
    // flipped forward is 150 against 270 ms).
    if g.identity_im2col() {
        return input_grad_pointwise(weight, grad, g);
    }
    let weight_heavy = weight.len() > grad.len();
    if g.stride != [1, 1] || weight_heavy || pt >= kh || pl >= kw || !fits(pb, kh) || !fits(pr, kw)
    {
        return input_grad_col2im(weight, grad, g);
    }
    // W'[ci, co, i, j] = W[co, ci, kh − 1 − i, kw − 1 − j], one parallel task per `ci`.
    let fill = |out: &mut [MaybeUninit<f32>]| {
        out.par_chunks_mut((g.c_out * kk).max(1))
            .enumerate()
            .for_each(|(ci, rows)| {
                for (co, taps) in rows.chunks_exact_mut(kk).enumerate() {
                    let src = &weight[(co * g.c_in + ci) * kk..(co * g.c_in + ci + 1) * kk];
                    // Flipping both kernel axes reverses the row-major taps.
                    for (o, v) in taps.iter_mut().zip(src.iter().rev()) {
                        o.write(*v);
                    }
                }
            })
    };
    // SAFETY: the `ci` blocks tile the buffer and every tap of each is written.
    let flipped = unsafe { vec_written_by(weight.len(), fill) };
    let back = Geometry {
        batch: g.batch,
        c_in: g.c_out,
        h: g.h_out,
        w: g.w_out,
        c_out: g.c_in,
        kh,
        kw,
        stride: [1, 1],
        pad_top_left: [kh - 1 - pt, kw - 1 - pl],
        h_out: g.h,
        w_out: g.w,
    };
    forward(grad, &flipped, &back)
}

/// [`input_grad`] of a plain 1×1 convolution: `dX[b] = Wᵀ · G[b]`, one GEMM per item straight
/// into the (not zero-filled) output, with `W` read transposed through its strides.
fn input_grad_pointwise(weight: &[f32], grad: &[f32], g: &Geometry) -> Vec<f32> {
    let p = g.positions();
    let len = g.batch * g.item_in();
    if len == 0 || g.c_out == 0 {
        return vec![0f32; len];
    }
    let fill = |dx: &mut [MaybeUninit<f32>]| {
        dx.par_chunks_mut(g.item_in())
            .enumerate()
            .for_each(|(b, dxb)| {
                let gb = &grad[b * g.item_out()..(b + 1) * g.item_out()];
                // SAFETY: `dxb` is [Cin, P], written without being read; `weight` [Cout, Cin] is
                // read as [Cin, Cout]; `gb` is [Cout, P].
                unsafe {
                    gemm_f32(
                        (g.c_in, p, g.c_out),
                        dxb.as_mut_ptr().cast::<f32>(),
                        (p, 1),
                        false,
                        weight.as_ptr(),
                        (1, g.c_in),
                        gb.as_ptr(),
                        (p, 1),
                    )
                }
            })
    };
    // SAFETY: one [Cin, P] GEMM output per item chunk covers the buffer.
    unsafe { vec_written_by(len, fill) }
}

/// [`input_grad`] as `dcols = Wᵀ · G[b]` followed by col2im (any stride).
pub fn input_grad_col2im(weight: &[f32], grad: &[f32], g: &Geometry) -> Vec<f32> {
    let (p, ck) = (g.positions(), g.c_in * g.taps());
    let mut dx = vec![0f32; g.batch * g.item_in()];
    dx.par_chunks_mut(g.item_in().max(1))
        .enumerate()
        .for_each_init(
            || vec![0f32; ck * p],
            |dcols, (b, dxb)| {
                let gb = &grad[b * g.item_out()..(b + 1) * g.item_out()];
                // SAFETY: `dcols` is [ck, P]; `weight` [Cout, ck] read transposed as [ck, Cout];
                // `gb` is [Cout, P].
                unsafe {
                    gemm_f32(
                        (ck, p, g.c_out),
                        dcols.as_mut_ptr(),
                        (p, 1),
                        false,
                        weight.as_ptr(),
                        (1, ck),
                        gb.as_ptr(),
                        (p, 1),
                    )
                }
                col2im(dcols, g, dxb, p);
            },
        );
    dx
}

// ---------------------------------------------------------------- depthwise

/// Output columns `ow` whose input column `ow·sw + j − pl` lies in `[0, w)` (any stride).
fn valid_out_cols(g: &Geometry, j: usize) -> std::ops::Range<usize> {
    let (pl, sw) = (g.pad_top_left[1] as isize, g.stride[1] as isize);
    let first = pl - j as isize; // smallest ow·sw allowed
    let lo = if first <= 0 { 0 } else { (first + sw - 1) / sw };
    let last = g.w as isize - 1 + pl - j as isize; // largest ow·sw allowed
    let hi = if last < 0 { 0 } else { last / sw + 1 };
    let (lo, hi) = (lo.min(g.w_out as isize), hi.min(g.w_out as isize));
    lo as usize..hi.max(lo) as usize
}

/// Input row of kernel row `i` for output row `oh`, if inside the image.
fn input_row(g: &Geometry, oh: usize, i: usize) -> Option<usize> {
    let y = (oh * g.stride[0] + i) as isize - g.pad_top_left[0] as isize;
    (y >= 0 && y < g.h as isize).then_some(y as usize)
}

/// Depthwise (`groups = Cin = Cout`) forward: `x` `[B, C, H, W]`, `weight` `[C, 1, kh, kw]`.
/// Direct loops over each (item, channel) plane, vectorised along the output rows.
pub fn depthwise_forward(x: &[f32], weight: &[f32], g: &Geometry) -> Vec<f32> {
    let (kk, hw, p) = (g.taps(), g.h * g.w, g.positions());
    let mut out = vec![0f32; g.batch * g.c_out * p];
    let (sw, pl) = (g.stride[1], g.pad_top_left[1]);
    let cols: Vec<_> = (0..g.kw).map(|j| valid_out_cols(g, j)).collect();
    out.par_chunks_mut(p.max(1))
        .enumerate()
        .for_each(|(plane, y)| {
            let c = plane % g.c_out;
            let xp = &x[plane * hw..(plane + 1) * hw];
            let wc = &weight[c * kk..(c + 1) * kk];
            for oh in 0..g.h_out {
                let yrow = &mut y[oh * g.w_out..(oh + 1) * g.w_out];
                for i in 0..g.kh {
                    let Some(iy) = input_row(g, oh, i) else {
                        continue;
                    };
                    let xrow = &xp[iy * g.w..(iy + 1) * g.w];
                    for j in 0..g.kw {
                        let wv = wc[i * g.kw + j];
                        let r = cols[j].clone();
                        if r.is_empty() {
                            continue;
                        }
                        if sw == 1 {
                            let s0 = r.start + j - pl;
                            for (o, v) in yrow[r.clone()].iter_mut().zip(&xrow[s0..]) {
                                *o += wv * v;
                            }
                        } else {
                            for ow in r {
                                yrow[ow] += wv * xrow[ow * sw + j - pl];
                            }
                        }
                    }
                }
            }
        });
    out
}

/// Depthwise input gradient `[B, C, H, W]` from `weight` `[C, 1, kh, kw]` and `grad`.
pub fn depthwise_input_grad(weight: &[f32], grad: &[f32], g: &Geometry) -> Vec<f32> {
    let (kk, hw, p) = (g.taps(), g.h * g.w, g.positions());
    let mut dx = vec![0f32; g.batch * g.c_in * hw];
    let (sw, pl) = (g.stride[1], g.pad_top_left[1]);
    let cols: Vec<_> = (0..g.kw).map(|j| valid_out_cols(g, j)).collect();
    dx.par_chunks_mut(hw.max(1))
        .enumerate()
        .for_each(|(plane, dxp)| {
            let c = plane % g.c_in;
            let gp = &grad[plane * p..(plane + 1) * p];
            let wc = &weight[c * kk..(c + 1) * kk];
            for oh in 0..g.h_out {
                let grow = &gp[oh * g.w_out..(oh + 1) * g.w_out];
                for i in 0..g.kh {
                    let Some(iy) = input_row(g, oh, i) else {
                        continue;
                    };
                    let dxrow = &mut dxp[iy * g.w..(iy + 1) * g.w];
                    for j in 0..g.kw {
                        let wv = wc[i * g.kw + j];
                        let r = cols[j].clone();
                        if r.is_empty() {
                            continue;
                        }
                        if sw == 1 {
                            let s0 = r.start + j - pl;
                            for (d, v) in dxrow[s0..].iter_mut().zip(&grow[r]) {
                                *d += wv * v;
                            }
                        } else {
                            for ow in r {
                                dxrow[ow * sw + j - pl] += wv * grow[ow];
                            }
                        }
                    }
                }
            }
        });
    dx
}

/// `Σ a[i]·b[i]` with eight partial sums, so the compiler can vectorise it (a single running
/// `f32` sum must keep its order and stays scalar).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Depthwise weight gradient `[C, 1, kh, kw]` from the input `x` and `grad`; threads own
/// channels.
pub fn depthwise_weight_grad(x: &[f32], grad: &[f32], g: &Geometry) -> Vec<f32> {
    let (kk, hw, p) = (g.taps(), g.h * g.w, g.positions());
    let mut dw = vec![0f32; g.c_out * kk];
    let (sw, pl) = (g.stride[1], g.pad_top_left[1]);
    let cols: Vec<_> = (0..g.kw).map(|j| valid_out_cols(g, j)).collect();
    dw.par_chunks_mut(kk.max(1))
        .enumerate()
        .for_each(|(c, dwc)| {
            for b in 0..g.batch {
                let plane = b * g.c_in + c;
                let xp = &x[plane * hw..(plane + 1) * hw];
                let gp = &grad[plane * p..(plane + 1) * p];
                for oh in 0..g.h_out {
                    let grow = &gp[oh * g.w_out..(oh + 1) * g.w_out];
                    for i in 0..g.kh {
                        let Some(iy) = input_row(g, oh, i) else {
                            continue;
                        };
                        let xrow = &xp[iy * g.w..(iy + 1) * g.w];
                        for j in 0..g.kw {
                            let r = cols[j].clone();
                            if r.is_empty() {
                                continue;
                            }
                            if r.is_empty() {
                                continue;
                            }
                            let acc: f32 = if sw == 1 {
                                let s0 = r.start + j - pl;
                                dot(&grow[r.clone()], &xrow[s0..s0 + r.len()])
                            } else {
                                r.map(|ow| grow[ow] * xrow[ow * sw + j - pl]).sum()
                            };
                            dwc[i * g.kw + j] += acc;
                        }
                    }
                }
            }
        });
    dw
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct 7-loop convolution and its gradients (the definition), for small shapes.
    fn reference(x: &[f32], w: &[f32], gr: &[f32], g: &Geometry) -> [Vec<f32>; 3] {
        reference_grouped(x, w, gr, g, false)
    }

    /// The definition of a depthwise conv (`groups = C`) and its gradients.
    fn reference_depthwise(x: &[f32], w: &[f32], gr: &[f32], g: &Geometry) -> [Vec<f32>; 3] {
        reference_grouped(x, w, gr, g, true)
    }

    /// The definition for one group (`w`: `[Cout, Cin, kh, kw]`) or depthwise (`w`:
    /// `[C, 1, kh, kw]`, output channel `c` reads input channel `c` only).
    fn reference_grouped(
        x: &[f32],
        w: &[f32],
        gr: &[f32],
        g: &Geometry,
        depthwise: bool,
    ) -> [Vec<f32>; 3] {
        let (mut y, mut dw, mut dx) = (
            vec![0f32; g.batch * g.item_out()],
            vec![0f32; w.len()],
            vec![0f32; x.len()],
        );
        for b in 0..g.batch {
            for co in 0..g.c_out {
                let (inputs, w_in) = if depthwise {
                    (co..co + 1, 1)
                } else {
                    (0..g.c_in, g.c_in)
                };
                for oh in 0..g.h_out {
                    for ow in 0..g.w_out {
                        let o = ((b * g.c_out + co) * g.h_out + oh) * g.w_out + ow;
                        for ci in inputs.clone() {
                            for i in 0..g.kh {
                                for j in 0..g.kw {
                                    let yy = (oh * g.stride[0] + i) as isize
                                        - g.pad_top_left[0] as isize;
                                    let xx = (ow * g.stride[1] + j) as isize
                                        - g.pad_top_left[1] as isize;
                                    if yy < 0 || xx < 0 || yy >= g.h as isize || xx >= g.w as isize
                                    {
                                        continue;
                                    }
                                    let xi =
                                        ((b * g.c_in + ci) * g.h + yy as usize) * g.w + xx as usize;
                                    let wc = if depthwise { 0 } else { ci };
                                    let wi = ((co * w_in + wc) * g.kh + i) * g.kw + j;
                                    y[o] += x[xi] * w[wi];
                                    dw[wi] += gr[o] * x[xi];
                                    dx[xi] += gr[o] * w[wi];
                                }
                            }
                        }
                    }
                }
            }
        }
        [y, dw, dx]
    }

    #[test]
    fn depthwise_kernels_match_the_definition() {
        // (x dims, kernel, stride, padding top/left, padding bottom/right)
        let cases = [
            ([2, 3, 7, 6], 3, 1, [1, 1], [1, 1]),
            ([2, 4, 8, 9], 3, 2, [1, 1], [1, 1]),
            ([1, 2, 9, 7], 5, 1, [2, 2], [2, 2]),
            ([2, 3, 11, 10], 5, 2, [2, 2], [2, 2]),
            ([1, 2, 6, 6], 3, 2, [0, 1], [1, 0]),
            // Maps smaller than the kernel (MBConv at the last stage of tiny test inputs).
            ([2, 2, 1, 1], 5, 1, [2, 2], [2, 2]),
            ([1, 3, 2, 3], 7, 2, [3, 3], [3, 3]),
        ];
        for (xd, k, s, [pt, pl], [pb, pr]) in cases {
            let g = Geometry {
                batch: xd[0],
                c_in: xd[1],
                h: xd[2],
                w: xd[3],
                c_out: xd[1],
                kh: k,
                kw: k,
                stride: [s, s],
                pad_top_left: [pt, pl],
                h_out: (xd[2] + pt + pb - k) / s + 1,
                w_out: (xd[3] + pl + pr - k) / s + 1,
            };
            let fill = |n: usize, m: usize| {
                (0..n)
                    .map(|i| ((i * m) % 89) as f32 / 89.0 - 0.5)
                    .collect::<Vec<_>>()
            };
            let x = fill(xd.iter().product(), 29);
            let w = fill(xd[1] * k * k, 11);
            let gr = fill(g.batch * g.item_out(), 7);
            let [y, dw, dx] = reference_depthwise(&x, &w, &gr, &g);
            let what = format!("{xd:?} k{k} s{s}");
            close(
                &depthwise_forward(&x, &w, &g),
                &y,
                &format!("forward {what}"),
            );
            close(
                &depthwise_weight_grad(&x, &gr, &g),
                &dw,
                &format!("weight grad {what}"),
            );
            close(
                &depthwise_input_grad(&w, &gr, &g),
                &dx,
                &format!("input grad {what}"),
            );
        }
    }

    #[test]
    fn direct_forward_writes_the_gemm_paths_bits() {
        // (batch, c_in, h, w, c_out, k, stride, padding top/left, padding bottom/right): the
        // main job's 3×3 layers (2–16 channels, 32×32 and 16×16, stride 1 and the reduction
        // blocks' stride 2), widths that are not a multiple of the 16 lanes, channel counts
        // that leave every remainder block, asymmetric and one-sided padding, odd sizes at
        // stride 2 and 3, even and wide kernels.
        let cases = [
            (2, 16, 32, 32, 16, 3, 1, [1, 1], [1, 1]),
            (2, 24, 32, 32, 24, 3, 1, [1, 1], [1, 1]),
            (2, 32, 32, 32, 32, 3, 1, [1, 1], [1, 1]),
            (2, 2, 32, 32, 2, 3, 1, [1, 1], [1, 1]),
            (3, 6, 16, 16, 14, 3, 1, [1, 1], [1, 1]),
            (2, 10, 16, 16, 7, 3, 1, [1, 1], [1, 1]),
            (1, 3, 9, 21, 15, 3, 1, [1, 1], [1, 1]),
            (2, 4, 7, 6, 5, 5, 1, [2, 2], [2, 2]),
            (1, 2, 6, 5, 3, 2, 1, [1, 0], [0, 1]),
            (1, 3, 8, 8, 9, 3, 1, [0, 0], [0, 0]),
            (1, 5, 4, 37, 11, 3, 1, [0, 1], [2, 1]),
            (1, 1, 1, 1, 3, 3, 1, [1, 1], [1, 1]),
            (2, 16, 32, 32, 16, 3, 2, [1, 1], [1, 1]),
            (2, 6, 16, 16, 12, 3, 2, [1, 1], [1, 1]),
            (1, 3, 9, 11, 5, 3, 2, [1, 1], [1, 1]),
            (1, 4, 10, 9, 3, 3, 2, [0, 1], [1, 0]),
            (1, 2, 12, 13, 6, 5, 2, [2, 2], [2, 2]),
            (1, 3, 11, 40, 4, 3, 3, [1, 1], [1, 1]),
            (1, 2, 7, 7, 2, 2, 2, [0, 0], [0, 0]),
        ];
        for (batch, c_in, h, w, c_out, k, s, [pt, pl], [pb, pr]) in cases {
            let g = Geometry {
                batch,
                c_in,
                h,
                w,
                c_out,
                kh: k,
                kw: k,
                stride: [s, s],
                pad_top_left: [pt, pl],
                h_out: (h + pt + pb - k) / s + 1,
                w_out: (w + pl + pr - k) / s + 1,
            };
            assert!(direct::fits(&g), "{g:?}");
            if !direct::has_avx512() {
                // The kernel needs AVX-512; elsewhere `forward` is the GEMM path itself.
                eprintln!("no AVX-512 on this CPU: the direct kernel is not run ({g:?})");
                continue;
            }
            // Values of mixed signs and magnitudes, so that the rounding of every partial
            // sum shows if the order of the chain differs.
            let x: Vec<f32> = (0..batch * g.item_in())
                .map(|i| ((i * 7919) % 1009) as f32 / 97.0 - 5.0)
                .collect();
            let wt: Vec<f32> = (0..c_out * c_in * k * k)
                .map(|i| ((i * 104_729) % 613) as f32 / 211.0 - 1.4)
                .collect();
            let a = direct::forward(&x, &wt, &g);
            let b = forward_per_item(&x, &wt, &g);
            assert_eq!(a.len(), b.len());
            let differ = a
                .iter()
                .zip(&b)
                .filter(|(u, v)| u.to_bits() != v.to_bits())
                .count();
            assert_eq!(differ, 0, "{g:?}: {differ} of {} outputs differ", a.len());
        }
        // The deepest layer it takes, and the first it leaves to the GEMM path.
        let deepest = Geometry {
            batch: 1,
            c_in: direct::MAX_DEPTH / 9,
            h: 5,
            w: 5,
            c_out: 4,
            kh: 3,
            kw: 3,
            stride: [1, 1],
            pad_top_left: [1, 1],
            h_out: 5,
            w_out: 5,
        };
        assert!(direct::fits(&deepest));
        assert!(!direct::fits(&Geometry {
            c_in: deepest.c_in + 1,
            ..deepest
        }));
        assert!(!direct::fits(&Geometry {
            kh: 1,
            kw: 1,
            pad_top_left: [0, 0],
            ..deepest
        }));
    }

    #[test]
    fn shifted_im2col_writes_what_the_row_by_row_path_writes() {
        // (c, h, w, k, padding top/left, padding bottom/right): "same" widths only, the
        // shifted path's domain; odd and even kernels, maps smaller than the kernel,
        // asymmetric and zero padding, output heights other than the input's.
        let cases = [
            (3, 7, 6, 3, [1, 1], [1, 1]),
            (2, 32, 32, 3, [1, 1], [1, 1]),
            (2, 5, 5, 5, [2, 2], [2, 2]),
            (1, 2, 3, 5, [2, 2], [2, 2]),
            (2, 6, 4, 1, [0, 0], [0, 0]),
            (2, 6, 4, 3, [0, 1], [2, 1]),
            (1, 4, 5, 2, [1, 0], [0, 1]),
            (1, 1, 1, 3, [1, 1], [1, 1]),
        ];
        for (c, h, w, k, [pt, pl], [pb, pr]) in cases {
            let g = Geometry {
                batch: 1,
                c_in: c,
                h,
                w,
                c_out: 1,
                kh: k,
                kw: k,
                stride: [1, 1],
                pad_top_left: [pt, pl],
                h_out: h + pt + pb + 1 - k,
                w_out: w + pl + pr + 1 - k,
            };
            assert_eq!(g.w_out, g.w);
            let x: Vec<f32> = (0..c * h * w).map(|i| i as f32 + 1.0).collect();
            // Rows wider than needed, pre-filled with NaN: every element must be written.
            let stride = g.positions() + 3;
            let n = c * g.taps() * stride;
            let (mut a, mut b) = (vec![f32::NAN; n], vec![f32::NAN; n]);
            im2col_shifted(&x, &g, (0, c), &mut a, stride);
            im2col_by_rows(&x, &g, (0, c), &mut b, stride);
            for r in 0..c * g.taps() {
                let (ra, rb) = (
                    &a[r * stride..][..g.positions()],
                    &b[r * stride..][..g.positions()],
                );
                assert!(
                    ra.iter().zip(rb).all(|(u, v)| u.to_bits() == v.to_bits()),
                    "c{c} {h}×{w} k{k} pad {pt},{pl},{pb},{pr}, row {r}: {ra:?} vs {rb:?}"
                );
            }
            // A channel range other than the whole.
            if c > 1 {
                let mut a1 = vec![f32::NAN; n];
                let mut b1 = vec![f32::NAN; n];
                im2col_shifted(&x, &g, (1, c), &mut a1, stride);
                im2col_by_rows(&x, &g, (1, c), &mut b1, stride);
                let m = (c - 1) * g.taps() * stride;
                assert!(
                    a1[..m]
                        .iter()
                        .zip(&b1[..m])
                        .all(|(u, v)| u.to_bits() == v.to_bits())
                );
            }
        }
    }

    fn close(a: &[f32], b: &[f32], what: &str) {
        let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        let err = a.iter().zip(b).fold(0f32, |m, (u, v)| m.max((u - v).abs()));
        assert!(
            a.len() == b.len() && err / scale < 1e-5,
            "{what}: {err} / {scale}"
        );
    }

    #[test]
    fn kernels_match_the_definition() {
        // (x dims, w dims, stride, padding top/left, padding bottom/right)
        let cases = [
            ([2, 3, 7, 6], [4, 3, 3, 3], 1, [1, 1], [1, 1]),
            ([3, 2, 8, 8], [5, 2, 3, 3], 2, [1, 1], [1, 1]),
            ([1, 4, 9, 7], [2, 4, 5, 5], 1, [2, 2], [2, 2]),
            ([2, 2, 6, 6], [3, 2, 3, 2], 1, [0, 1], [2, 0]),
            ([2, 3, 5, 5], [2, 3, 3, 3], 3, [0, 0], [0, 0]),
            // Plain 1×1 (the im2col matrix is the input itself), and 1×1 with stride/padding.
            ([3, 5, 4, 6], [7, 5, 1, 1], 1, [0, 0], [0, 0]),
            ([2, 3, 5, 5], [4, 3, 1, 1], 2, [0, 0], [0, 0]),
            ([2, 3, 4, 4], [4, 3, 1, 1], 1, [1, 0], [0, 1]),
        ];
        for (xd, wd, s, [pt, pl], [pb, pr]) in cases {
            let g = Geometry {
                batch: xd[0],
                c_in: xd[1],
                h: xd[2],
                w: xd[3],
                c_out: wd[0],
                kh: wd[2],
                kw: wd[3],
                stride: [s, s],
                pad_top_left: [pt, pl],
                h_out: (xd[2] + pt + pb - wd[2]) / s + 1,
                w_out: (xd[3] + pl + pr - wd[3]) / s + 1,
            };
            let fill = |n: usize, k: usize| {
                (0..n)
                    .map(|i| ((i * k) % 97) as f32 / 97.0 - 0.5)
                    .collect::<Vec<_>>()
            };
            let x = fill(xd.iter().product(), 31);
            let w = fill(wd.iter().product(), 17);
            let gr = fill(g.batch * g.item_out(), 13);
            let [y, dw, dx] = reference(&x, &w, &gr, &g);
            let what = format!("{xd:?} {wd:?} s{s}");
            close(&forward(&x, &w, &g), &y, &format!("forward {what}"));
            close(
                &weight_grad(&x, &gr, &g),
                &dw,
                &format!("weight grad {what}"),
            );
            // Both batch strategies, whichever the dispatch picks for this shape.
            let per_item = [
                forward_per_item(&x, &w, &g),
                weight_grad_per_item(&x, &gr, &g),
                input_grad_per_item(&w, &gr, &g),
            ];
            let batch_folded = [
                folded::forward(&x, &w, &g),
                folded::weight_grad(&x, &gr, &g),
                folded::input_grad(&w, &gr, &g),
            ];
            for (name, got) in [("per item", per_item), ("folded", batch_folded)] {
                close(&got[0], &y, &format!("{name} forward {what}"));
                close(&got[1], &dw, &format!("{name} weight grad {what}"));
                close(&got[2], &dx, &format!("{name} input grad {what}"));
            }
            let by_channels = weight_grad_by_channels(&x, &gr, &g, 2);
            close(
                &by_channels,
                &dw,
                &format!("weight grad by channels {what}"),
            );
            close(&input_grad(&w, &gr, &g), &dx, &format!("input grad {what}"));
            close(
                &input_grad_col2im(&w, &gr, &g),
                &dx,
                &format!("col2im {what}"),
            );
        }
    }

    /// Kernel timings (release; medians of 5):
    /// `cargo test --release -p bossnas-kernels --lib -- --ignored --nocapture flex_conv_timing`
    #[test]
    #[ignore = "timing, not a check"]
    fn flex_conv_timing() {
        crate::cpu_alloc::keep_freed_memory();
        let cases = [
            ([256, 64, 32, 32], [64, 64, 3, 3], 1),
            ([32, 64, 32, 32], [64, 64, 3, 3], 1),
            ([8, 512, 28, 28], [1024, 512, 3, 3], 2),
            ([8, 256, 14, 14], [256, 256, 3, 3], 1),
            ([8, 512, 7, 7], [512, 512, 3, 3], 1),
        ];
        for (xd, wd, s) in cases {
            let [batch, c_in, h, w] = xd;
            let [c_out, _, kh, kw] = wd;
            let (ho, wo) = ((h + 2 - kh) / s + 1, (w + 2 - kw) / s + 1);
            let g = Geometry {
                batch,
                c_in,
                h,
                w,
                c_out,
                kh,
                kw,
                stride: [s, s],
                pad_top_left: [1, 1],
                h_out: ho,
                w_out: wo,
            };
            let fill = |n: usize| {
                (0..n)
                    .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
                    .collect::<Vec<_>>()
            };
            let x = fill(xd.iter().product());
            let wt = fill(wd.iter().product());
            let gr = fill(batch * c_out * ho * wo);
            let time = |f: &dyn Fn() -> Vec<f32>| {
                let mut t: Vec<f64> = (0..5)
                    .map(|_| {
                        let t0 = std::time::Instant::now();
                        std::hint::black_box(f());
                        t0.elapsed().as_secs_f64() * 1e3
                    })
                    .collect();
                t.sort_by(f64::total_cmp);
                t[2]
            };
            println!(
                "x {xd:?} w {wd:?} s{s}: forward {:.1} ms, weight grad {:.1} ms, input grad {:.1} ms (col2im {:.1} ms)",
                time(&|| forward(&x, &wt, &g)),
                time(&|| weight_grad(&x, &gr, &g)),
                time(&|| input_grad(&wt, &gr, &g)),
                time(&|| input_grad_col2im(&wt, &gr, &g)),
            );
        }
    }
}
