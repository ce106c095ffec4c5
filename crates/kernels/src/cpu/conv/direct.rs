//! The forward of a convolution with few input channels, computed directly from a zero-padded
//! copy of the input instead of through an im2col matrix and a GEMM.
//!
//! Why: in the main job's supernet (quarter-width NATS cells, 2–16 channels on 32×32 and
//! 16×16 maps) a 3×3 convolution is a GEMM of depth `Cin·9 ≤ 144` and only `Cout ≤ 16` rows.
//! Through im2col the input is copied nine times, and `gemm` packs that copy once more before
//! it multiplies; the copies, not the multiplications, were most of the forward's time
//! (`docs/performance.md`, ninth pass). Here tiles of up to 8 output channels × 3 vectors of
//! 16 columns are accumulated in registers, reading the padded input once per tap. At stride `s`
//! the padded copy is split into `s × s` phase planes (every `s`-th row and column from each
//! offset), so that every tap still reads 16 consecutive values.
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

/// Deepest `Cin·kh·kw` taken: a 3×3 layer of 32 channels (the half-width NATS supernet's
/// widest). `gemm` splits deeper products into cache blocks whose partial sums it adds (on
/// this project's 2-core EPYC the bits first differ between 432 and 576); below the block
/// size its chain is the one this kernel runs. The bit-identity test covers up to 288.
pub(super) const MAX_DEPTH: usize = 288;

/// Output columns per register accumulator (one AVX-512 vector).
const LANES: usize = 16;

/// Whether this CPU runs the AVX-512 kernel (checked once by `std`, cached).
pub(super) fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether [`forward`] takes this convolution: a kernel larger than 1×1, a depth of
/// at most [`MAX_DEPTH`], and an AVX-512 CPU (elsewhere the GEMM path runs: the chain must be
/// fused like `gemm`'s, and the accumulators need the 32 vector registers).
pub(super) fn applies(g: &Geometry) -> bool {
    fits(g) && has_avx512()
}

/// The geometric half of [`applies`]: the convolutions the kernel is written for, on any CPU.
pub(super) fn fits(g: &Geometry) -> bool {
    g.stride[0] >= 1
        && g.stride[1] >= 1
        && g.kh * g.kw > 1
        && g.c_in > 0
        && g.c_out > 0
        && g.c_in * g.kh * g.kw <= MAX_DEPTH
        && g.h_out > 0
        && g.w_out > 0
}

/// `y = conv2d(x, weight)` for a geometry where [`applies`] holds, items in parallel.
///
/// # Shapes
/// `x` `[B, Cin, H, W]`, `weight` `[Cout, Cin, kh, kw]` → `[B, Cout, Ho, Wo]`.
pub(super) fn forward(x: &[f32], weight: &[f32], g: &Geometry) -> Vec<f32> {
    assert!(applies(g), "direct::forward outside its domain: {g:?}");
    let wt = taps_by_channel(weight, g);
    let layout = Layout::of(g);
    let (item_in, item_out) = (g.c_in * g.h * g.w, g.c_out * g.h_out * g.w_out);
    let fill = |out: &mut [MaybeUninit<f32>]| {
        out.par_chunks_mut(item_out)
            .enumerate()
            .for_each_init(Vec::new, |xpad, (b, ob)| {
                pad_item(&x[b * item_in..(b + 1) * item_in], g, xpad);
                // SAFETY: `applies` checked AVX-512 on this CPU; `xpad` is the padded item
                // with its slack, `ob` the item's `[Cout, Ho, Wo]` output.
                unsafe { avx512::item(xpad, &wt, &layout, g, ob) }
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

/// The size of one phase plane, `(Hph, Wph)`. Output row `oh`, tap row `i` reads input row
/// `oh·sh + i − pt`, which phase plane `i mod sh` holds at row `oh + i div sh`; the same for
/// columns. At stride 1 there is one phase: the input padded by `kh − 1` rows and `kw − 1`
/// columns.
fn phase_plane(g: &Geometry) -> (usize, usize) {
    let [sh, sw] = g.stride;
    (g.h_out + (g.kh - 1) / sh, g.w_out + (g.kw - 1) / sw)
}

/// Where the chain reads and writes, the same for every item of a call (built once).
struct Layout {
    /// Tap k = (ci, i, j) of the chain, relative to a vector's phase-plane position: plane
    /// (ci, i mod sh, j mod sw), row + i div sh, column + j div sw.
    taps: Vec<usize>,
    /// The output vectors: (phase-plane position, output position, columns).
    vectors: Vec<(usize, usize, usize)>,
}

impl Layout {
    fn of(g: &Geometry) -> Self {
        let (hph, wph) = phase_plane(g);
        let [sh, sw] = g.stride;
        let mut taps = Vec::with_capacity(g.c_in * g.kh * g.kw);
        for ci in 0..g.c_in {
            for i in 0..g.kh {
                for j in 0..g.kw {
                    let plane = (ci * sh + i % sh) * sw + j % sw;
                    taps.push(plane * hph * wph + (i / sh) * wph + j / sw);
                }
            }
        }
        let mut vectors = Vec::with_capacity(g.h_out * g.w_out.div_ceil(LANES));
        for oh in 0..g.h_out {
            for ow0 in (0..g.w_out).step_by(LANES) {
                let n = LANES.min(g.w_out - ow0);
                vectors.push((oh * wph + ow0, oh * g.w_out + ow0, n));
            }
        }
        Layout { taps, vectors }
    }
}

/// Copies one item `[Cin, H, W]` into `xpad`, `[Cin, sh, sw, Hph, Wph]` (phase planes, see
/// [`phase_plane`]) plus `LANES` zeros of slack for the last vector of a row: zeros where
/// the input has none.
fn pad_item(x: &[f32], g: &Geometry, xpad: &mut Vec<f32>) {
    let (hph, wph) = phase_plane(g);
    let [sh, sw] = g.stride;
    let [pt, pl] = g.pad_top_left;
    xpad.clear();
    xpad.resize(g.c_in * sh * sw * hph * wph + LANES, 0.0);
    for ci in 0..g.c_in {
        for pi in 0..sh {
            for pj in 0..sw {
                let plane = ((ci * sh + pi) * sw + pj) * hph * wph;
                // Phase columns `c` whose input column `c·sw + pj − pl` is inside `[0, w)`.
                let c_lo = pl.saturating_sub(pj).div_ceil(sw);
                let c_hi = ((g.w + pl).saturating_sub(pj)).div_ceil(sw).min(wph);
                for r in 0..hph {
                    let Some(xr) = (r * sh + pi).checked_sub(pt).filter(|&xr| xr < g.h) else {
                        continue;
                    };
                    if c_lo >= c_hi {
                        continue;
                    }
                    let src = &x[(ci * g.h + xr) * g.w..][..g.w];
                    let dst = &mut xpad[plane + r * wph..][..wph];
                    if sw == 1 {
                        let c0 = c_lo + pj - pl;
                        dst[c_lo..c_hi].copy_from_slice(&src[c0..c0 + (c_hi - c_lo)]);
                    } else {
                        for (c, d) in dst.iter_mut().enumerate().take(c_hi).skip(c_lo) {
                            *d = src[c * sw + pj - pl];
                        }
                    }
                }
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod avx512 {
    use super::*;

    pub(super) unsafe fn item(
        _: &[f32],
        _: &[f32],
        _: &Layout,
        _: &Geometry,
        _: &mut [MaybeUninit<f32>],
    ) {
        unreachable!("`applies` is false off x86-64")
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::*;

    /// One item: output channels in blocks of 8 (then 4, 2, 1 for the rest); within a block,
    /// the output plane in tiles of `M` vectors of 16 columns (a vector never spans two
    /// rows; the tile may).
    ///
    /// # Safety
    /// AVX-512F must be available; `xpad` is [`pad_item`]'s buffer for this geometry and
    /// `out` one item's `[Cout, Ho, Wo]`; `layout` is [`Layout::of`] this geometry.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn item(
        xpad: &[f32],
        wt: &[f32],
        layout: &Layout,
        g: &Geometry,
        out: &mut [MaybeUninit<f32>],
    ) {
        let (hph, wph) = phase_plane(g);
        let [sh, sw] = g.stride;
        assert!(xpad.len() >= g.c_in * sh * sw * hph * wph + LANES);
        assert!(wt.len() == g.c_in * g.kh * g.kw * g.c_out);
        assert!(out.len() == g.c_out * g.h_out * g.w_out);
        // SAFETY (reads): every vector reads `taps[k] + position .. + 16`, at most 15 past
        // the last phase plane's last row: inside `xpad`'s slack (asserted above).
        let blocks = Blocks {
            x: xpad.as_ptr(),
            wt: wt.as_ptr(),
            c_out: g.c_out,
            taps: &layout.taps,
            vectors: &layout.vectors,
            out: out.as_mut_ptr().cast::<f32>(),
            plane: g.h_out * g.w_out,
        };
        let mut co = 0;
        while co < g.c_out {
            // Accumulators N × M ≤ 24 of the 32 vector registers, plus M inputs and a weight.
            // SAFETY (each call): `co + N ≤ Cout`; reads and writes bounded as above.
            co += unsafe {
                match g.c_out - co {
                    8.. => blocks.run::<8, 3>(co),
                    4..=7 => blocks.run::<4, 4>(co),
                    2..=3 => blocks.run::<2, 6>(co),
                    _ => blocks.run::<1, 8>(co),
                }
            };
        }
    }

    /// What one item's channel blocks share.
    struct Blocks<'a> {
        x: *const f32,
        wt: *const f32,
        c_out: usize,
        taps: &'a [usize],
        vectors: &'a [(usize, usize, usize)],
        out: *mut f32,
        plane: usize,
    }

    impl Blocks<'_> {
        /// Output channels `co0..co0 + N`, `M` vectors at a time; returns `N`. The `N × M`
        /// accumulators stay in registers over the whole chain.
        ///
        /// # Safety
        /// AVX-512F; `co0 + N ≤ Cout`; the pointers as built by [`item`].
        #[target_feature(enable = "avx512f")]
        #[inline]
        unsafe fn run<const N: usize, const M: usize>(&self, co0: usize) -> usize {
            for tile in self.vectors.chunks(M) {
                // A short last tile repeats its last vector (computed, not stored).
                let mut at = [0usize; M];
                for (m, a) in at.iter_mut().enumerate() {
                    *a = tile[m.min(tile.len() - 1)].0;
                }
                let mut acc = [[_mm512_setzero_ps(); M]; N];
                for (k, &tap) in self.taps.iter().enumerate() {
                    let mut xv = [_mm512_setzero_ps(); M];
                    for (v, &a) in xv.iter_mut().zip(&at) {
                        *v = unsafe { _mm512_loadu_ps(self.x.add(tap + a)) };
                    }
                    let wk = unsafe { self.wt.add(k * self.c_out + co0) };
                    for (c, row) in acc.iter_mut().enumerate() {
                        let wv = _mm512_set1_ps(unsafe { *wk.add(c) });
                        for (a, &v) in row.iter_mut().zip(&xv) {
                            // a = x · w + a, fused: the step of `gemm`'s chain.
                            *a = _mm512_fmadd_ps(v, wv, *a);
                        }
                    }
                }
                for (m, &(_, o, n)) in tile.iter().enumerate() {
                    let mask: __mmask16 = if n == LANES { !0 } else { (1u16 << n) - 1 };
                    for (c, row) in acc.iter().enumerate() {
                        // SAFETY: `n` columns of output channel `co0 + c` from position `o`.
                        unsafe {
                            _mm512_mask_storeu_ps(
                                self.out.add((co0 + c) * self.plane + o),
                                mask,
                                row[m],
                            )
                        };
                    }
                }
            }
            N
        }
    }
}
