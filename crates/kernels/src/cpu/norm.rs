//! Training-mode batch-norm kernels on contiguous `f32` buffers (issue 7, CPU speed), used by
//! the fused batch-norm node of [`crate::nodes::norm`] on burn-flex.
//!
//! Burn's generic `batch_norm_train` (and its backward) computes the per-channel statistics by
//! materialising a channel-major copy of the input (`swap_dims(0, 1)` + reshape), then runs
//! about ten element-wise passes; on the bench rows those copies were 12–40 % of the step
//! (`docs/perf-profiles/`). These kernels read the `[B, C, S]` layout in place: a per-channel
//! reduction over the `B` planes of `S` contiguous values, then one fused element-wise pass.
//!
//! A ReLU after the norm can be fused in ([`forward`] / [`backward`] with `relu`): the forward
//! clamps in the same pass, the backward recomputes the mask `γ·(x − mean)·r + β > 0` from the
//! saved input (no extra state) and masks `dy` inside its reduction and element-wise passes.
//!
//! Numerics: plane sums in eight `f32` lanes, totals in `f64`; the variance is the mean of
//! squared deviations from the mean (two passes, biased — what Burn's `batch_norm_train`
//! returns and feeds to the running statistics).

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::cpu::uninit::vec_written_by;

/// The layout `[batch, channels, spatial]` of a contiguous NC… tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Leading dimension.
    pub batch: usize,
    /// Normalised dimension (dim 1).
    pub channels: usize,
    /// Product of the remaining dimensions.
    pub spatial: usize,
}

impl Layout {
    /// Values per channel (`batch · spatial`), the `N` of the statistics.
    pub fn per_channel(&self) -> usize {
        self.batch * self.spatial
    }

    fn len(&self) -> usize {
        self.batch * self.channels * self.spatial
    }

    /// The planes of channel `c` in `x`.
    fn planes<'a>(&self, x: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> + 'a {
        let (s, cs) = (self.spatial, self.channels * self.spatial);
        (0..self.batch).map(move |b| &x[b * cs + c * s..b * cs + (c + 1) * s])
    }

    /// Planes per parallel task: at least ~16 K values each, so small maps do not pay rayon's
    /// per-task cost once per plane.
    fn planes_per_task(&self) -> usize {
        (16_384 / self.spatial.max(1)).max(1)
    }
}

/// `Σ f(a_i, b_i)` over two equal-length slices, in eight `f32` lanes (vectorised), as `f64`.
#[inline(always)]
fn lane_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            acc[l] += f(x[l], y[l]);
        }
    }
    let tail: f32 = ar.iter().zip(br).map(|(&x, &y)| f(x, y)).sum();
    acc.iter().map(|&v| v as f64).sum::<f64>() + tail as f64
}

/// Per-channel batch mean and biased variance of `x` (`[B, C, S]`).
pub fn stats(x: &[f32], l: &Layout) -> (Vec<f32>, Vec<f32>) {
    assert_eq!(
        x.len(),
        l.len(),
        "batch-norm stats: buffer does not match its layout"
    );
    let n = l.per_channel().max(1) as f64;
    (0..l.channels)
        .into_par_iter()
        .map(|c| {
            let mean = l
                .planes(x, c)
                .map(|p| lane_sum(p, p, |v, _| v))
                .sum::<f64>()
                / n;
            let m = mean as f32;
            let var = l
                .planes(x, c)
                .map(|p| {
                    lane_sum(p, p, |v, _| {
                        let d = v - m;
                        d * d
                    })
                })
                .sum::<f64>()
                / n;
            (m, var as f32)
        })
        .unzip()
}

/// What [`affine_pass`] computes per element, besides `scale[c] · (x − mean[c])`.
enum Pass<'a> {
    /// `out = scale · (x − mean) + shift`, clamped at 0 when `relu`.
    Forward { relu: bool },
    /// `out = k_dy[c] · (dy' − shift[c]) + scale · (x − mean)`, with `dy' = dy`, or, given the
    /// forward's `(γ·r, β)` of a fused ReLU, `dy' = dy · [γr·(x − mean) + β > 0]`.
    Backward {
        dy: &'a [f32],
        k_dy: &'a [f32],
        relu: Option<ReluMask<'a>>,
    },
}

/// The per-channel factors `(γ·r, β)` that recompute a fused ReLU's mask
/// `γr·(x − mean) + β > 0` exactly as the forward clamped (same `f32` operations).
#[derive(Clone, Copy)]
struct ReluMask<'a> {
    scale: &'a [f32],
    beta: &'a [f32],
}

impl ReluMask<'_> {
    #[inline(always)]
    fn keeps(&self, c: usize, v: f32, m: f32) -> bool {
        self.scale[c] * (v - m) + self.beta[c] > 0.0
    }
}

/// One parallel pass over the planes (see [`Pass`]). Centring both terms first keeps the
/// result accurate when the factors are huge (a near-constant channel: `1/√ε`).
fn affine_pass(
    x: &[f32],
    pass: Pass<'_>,
    mean: &[f32],
    (scale, shift): (&[f32], &[f32]),
    l: &Layout,
) -> Vec<f32> {
    let s = l.spatial.max(1);
    let fill = |out: &mut [MaybeUninit<f32>]| {
        out.par_chunks_mut(s)
            .with_min_len(l.planes_per_task())
            .enumerate()
            .for_each(|(plane, o)| {
                let c = plane % l.channels;
                let xs = &x[plane * s..plane * s + o.len()];
                let (a, b, m) = (scale[c], shift[c], mean[c]);
                match &pass {
                    Pass::Forward { relu: false } => {
                        for (o, &v) in o.iter_mut().zip(xs) {
                            o.write(a * (v - m) + b);
                        }
                    }
                    Pass::Forward { relu: true } => {
                        for (o, &v) in o.iter_mut().zip(xs) {
                            let y = a * (v - m) + b;
                            o.write(if y > 0.0 { y } else { 0.0 });
                        }
                    }
                    Pass::Backward { dy, k_dy, relu } => {
                        let g = &dy[plane * s..plane * s + o.len()];
                        let k = k_dy[c];
                        match relu {
                            None => {
                                for ((o, &v), &d) in o.iter_mut().zip(xs).zip(g) {
                                    o.write(k * (d - b) + a * (v - m));
                                }
                            }
                            Some(mask) => {
                                for ((o, &v), &d) in o.iter_mut().zip(xs).zip(g) {
                                    let d = if mask.keeps(c, v, m) { d } else { 0.0 };
                                    o.write(k * (d - b) + a * (v - m));
                                }
                            }
                        }
                    }
                }
            })
    };
    // SAFETY: the planes cover the buffer; every element of each plane is written once
    // (`xs`, and `g`, have the plane's length: `x.len() == dy.len() == l.len()`).
    unsafe { vec_written_by(l.len(), fill) }
}

/// `γ · r` per channel, the forward's scale (also the fused ReLU mask's).
fn gamma_r(gamma: &[f32], istd: &[f32]) -> Vec<f32> {
    gamma.iter().zip(istd).map(|(g, i)| g * i).collect()
}

/// `1 / √(var + ε)` per channel.
fn inv_std(var: &[f32], epsilon: f64) -> Vec<f32> {
    var.iter()
        .map(|&v| (1.0 / (v as f64 + epsilon).sqrt()) as f32)
        .collect()
}

/// Training-mode batch norm: `(y, mean, var)` with `y = γ·(x − mean)/√(var + ε) + β` (then
/// `max(y, 0)` if `relu`), the statistics over batch and space per channel.
pub fn forward(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
    l: &Layout,
    relu: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert!(
        gamma.len() == l.channels && beta.len() == l.channels,
        "batch norm: gamma/beta do not have {} channels",
        l.channels
    );
    let (mean, var) = stats(x, l);
    let istd = inv_std(&var, epsilon);
    let scale = gamma_r(gamma, &istd);
    let y = affine_pass(x, Pass::Forward { relu }, &mean, (&scale, beta), l);
    (y, mean, var)
}

/// Gradients `(dx, dγ, dβ)` of [`forward`] given the output gradient `dy` and the statistics
/// it returned:
///
/// `x̂ = (x − mean)·r`, `r = 1/√(var + ε)`, `dβ = Σ dy`, `dγ = Σ dy·x̂`,
/// `dx = γ·r·(dy − dβ/N − x̂·dγ/N)`.
///
/// With `relu_beta` (the forward's `β`, when it ran with `relu`), `dy` is first masked where
/// the forward clamped.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    x: &[f32],
    gamma: &[f32],
    mean: &[f32],
    var: &[f32],
    epsilon: f64,
    dy: &[f32],
    l: &Layout,
    relu_beta: Option<&[f32]>,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert_eq!(dy.len(), l.len(), "batch-norm backward: gradient shape");
    let n = l.per_channel().max(1) as f64;
    let istd = inv_std(var, epsilon);
    let scale = gamma_r(gamma, &istd);
    let relu = relu_beta.map(|beta| ReluMask {
        scale: &scale,
        beta,
    });
    let (d_beta, d_gamma): (Vec<f32>, Vec<f32>) = (0..l.channels)
        .into_par_iter()
        .map(|c| {
            let m = mean[c];
            let (mut sum_dy, mut sum_dy_xc) = (0f64, 0f64);
            for (p, g) in l.planes(x, c).zip(l.planes(dy, c)) {
                match relu {
                    None => {
                        sum_dy += lane_sum(g, g, |d, _| d);
                        sum_dy_xc += lane_sum(p, g, |v, d| (v - m) * d);
                    }
                    Some(mask) => {
                        let masked = |v: f32, d: f32| if mask.keeps(c, v, m) { d } else { 0.0 };
                        sum_dy += lane_sum(p, g, masked);
                        sum_dy_xc += lane_sum(p, g, |v, d| (v - m) * masked(v, d));
                    }
                }
            }
            (sum_dy as f32, (sum_dy_xc * istd[c] as f64) as f32)
        })
        .unzip();
    // dx = k·(dy − b) + a·(x − mean) per channel, with k = γr, a = −γr²·dγ/N, b = dβ/N.
    let mut k = vec![0f32; l.channels];
    let mut a = vec![0f32; l.channels];
    let mut b = vec![0f32; l.channels];
    for c in 0..l.channels {
        let (r, g) = (istd[c] as f64, gamma[c] as f64);
        let kc = g * r;
        let ac = -kc * r * d_gamma[c] as f64 / n;
        k[c] = kc as f32;
        a[c] = ac as f32;
        b[c] = (d_beta[c] as f64 / n) as f32;
    }
    let pass = Pass::Backward { dy, k_dy: &k, relu };
    let dx = affine_pass(x, pass, mean, (&a, &b), l);
    (dx, d_gamma, d_beta)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random values in `[-scale, scale) + offset`.
    fn values(n: usize, seed: u32, scale: f32, offset: f32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(12_345);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                offset + scale * ((s >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0)
            })
            .collect()
    }

    /// The definitions, in `f64`, straight from the formulas (a ReLU after the norm, if `relu`:
    /// `y = max(ŷ, 0)`, `dy` masked by `ŷ > 0`).
    #[allow(clippy::type_complexity)]
    fn reference(
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        dy: &[f32],
        eps: f64,
        l: &Layout,
        relu: bool,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let (bsz, cn, s) = (l.batch, l.channels, l.spatial);
        let n = (bsz * s) as f64;
        let idx = |b: usize, c: usize, i: usize| (b * cn + c) * s + i;
        let mut y = vec![0f64; x.len()];
        let mut dx = vec![0f64; x.len()];
        let mut dy: Vec<f64> = dy.iter().map(|&d| d as f64).collect();
        let (mut dg, mut db, mut vars) = (vec![0f64; cn], vec![0f64; cn], vec![0f64; cn]);
        for c in 0..cn {
            let all: Vec<usize> = (0..bsz)
                .flat_map(|b| (0..s).map(move |i| idx(b, c, i)))
                .collect();
            let mean = all.iter().map(|&j| x[j] as f64).sum::<f64>() / n;
            let var = all
                .iter()
                .map(|&j| (x[j] as f64 - mean).powi(2))
                .sum::<f64>()
                / n;
            vars[c] = var;
            let r = 1.0 / (var + eps).sqrt();
            for &j in &all {
                let xh = (x[j] as f64 - mean) * r;
                y[j] = gamma[c] as f64 * xh + beta[c] as f64;
                if relu && y[j] <= 0.0 {
                    y[j] = 0.0;
                    dy[j] = 0.0;
                }
                db[c] += dy[j];
                dg[c] += dy[j] * xh;
            }
            for &j in &all {
                let xh = (x[j] as f64 - mean) * r;
                dx[j] = gamma[c] as f64 * r * (dy[j] - db[c] / n - xh * dg[c] / n);
            }
        }
        (y, vars, dx, dg, db)
    }

    fn close(got: &[f32], want: &[f64], tol: f64, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let scale = want.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g as f64 - w).abs() <= tol * scale,
                "{what}[{i}]: {g} vs {w} (scale {scale})"
            );
        }
    }

    #[test]
    fn kernels_match_the_definition() {
        // Odd plane sizes (tails of the 8-lane sums), one-value planes, an offset mean (the
        // two-pass variance), tiny and large batches.
        for (batch, channels, spatial) in [(2, 3, 5), (4, 5, 49), (1, 2, 1), (3, 1, 67), (8, 4, 9)]
        {
            let l = Layout {
                batch,
                channels,
                spatial,
            };
            let len = batch * channels * spatial;
            let x = values(len, 1, 2.0, 3.0);
            let dy = values(len, 2, 1.0, 0.1);
            let gamma = values(channels, 3, 0.5, 1.0);
            let beta = values(channels, 4, 0.5, 0.0);
            let eps = 1e-5;
            for relu in [false, true] {
                let (y, mean, var) = forward(&x, &gamma, &beta, eps, &l, relu);
                let relu_beta = relu.then_some(beta.as_slice());
                let (dx, dg, db) = backward(&x, &gamma, &mean, &var, eps, &dy, &l, relu_beta);
                let (ry, rvar, rdx, rdg, rdb) = reference(&x, &gamma, &beta, &dy, eps, &l, relu);
                if relu && y.len() >= 30 {
                    // The clamp is active on a good share of the values (β ≈ 0, γ > 0).
                    let zeros = y.iter().filter(|&&v| v == 0.0).count();
                    assert!(zeros > 0 && zeros < y.len(), "{l:?}: {zeros} clamped");
                }
                let what = format!("{l:?} relu {relu}");
                close(&y, &ry, 1e-5, &format!("y {what}"));
                close(&var, &rvar, 1e-5, &format!("var {what}"));
                close(&dx, &rdx, 1e-4, &format!("dx {what}"));
                close(&dg, &rdg, 1e-5, &format!("dgamma {what}"));
                close(&db, &rdb, 1e-5, &format!("dbeta {what}"));
            }
        }
    }
}
