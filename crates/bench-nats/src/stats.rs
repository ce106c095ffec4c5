//! Rank and linear correlation statistics, and percentile-bootstrap intervals.
//!
//! # Sign convention
//! The functions here return the **raw** statistic of `(x, y)`, exactly as
//! `scipy.stats.kendalltau` / `spearmanr` / `pearsonr` would: with `x` = a score and
//! `y` = accuracy, a score that is a *loss* (lower is better, like the BossNAS potential)
//! correlates *negatively* when it works. [`Correlations::oriented`] flips the sign for
//! lower-is-better scores so that "positive = the score ranks better architectures higher".
//!
//! Undefined statistics (fewer than two points, or a constant input) are `NaN`, as in scipy.
//! Inputs must be finite (the loaders in this crate guarantee it).

use std::cmp::Ordering;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Kendall's τ-b with exact tie correction, in O(n log n) (Knight 1966).
///
/// `τ_b = (n0 − n1 − n2 + n3 − 2·D) / √((n0 − n1)(n0 − n2))` with n0 = n(n−1)/2, n1/n2 the
/// pairs tied in x/y, n3 the pairs tied in both and D the discordant pairs, counted as the
/// inversions of y after sorting by (x, y). Equals `scipy.stats.kendalltau(x, y)` (variant 'b').
///
/// # Panics
/// If `x` and `y` differ in length.
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len(), "kendall_tau_b: x and y differ in length");
    let n = x.len();
    if n < 2 {
        return f64::NAN;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_unstable_by(|&a, &b| x[a].total_cmp(&x[b]).then(y[a].total_cmp(&y[b])));
    let xs: Vec<f64> = order.iter().map(|&i| x[i]).collect();
    let mut ys: Vec<f64> = order.iter().map(|&i| y[i]).collect();

    let pairs = |t: u64| t * (t.saturating_sub(1)) / 2;
    // x ties and joint ties: runs in the (x, y)-sorted order.
    let (mut n1, mut n3) = (0u64, 0u64);
    let (mut run_x, mut run_xy) = (1u64, 1u64);
    for i in 1..n {
        if xs[i] == xs[i - 1] {
            run_x += 1;
            if ys[i] == ys[i - 1] {
                run_xy += 1;
            } else {
                n3 += pairs(run_xy);
                run_xy = 1;
            }
        } else {
            n1 += pairs(run_x);
            n3 += pairs(run_xy);
            run_x = 1;
            run_xy = 1;
        }
    }
    n1 += pairs(run_x);
    n3 += pairs(run_xy);

    let discordant = count_inversions(&mut ys);
    // ys is now sorted: y ties.
    let mut n2 = 0u64;
    let mut run_y = 1u64;
    for i in 1..n {
        if ys[i] == ys[i - 1] {
            run_y += 1;
        } else {
            n2 += pairs(run_y);
            run_y = 1;
        }
    }
    n2 += pairs(run_y);

    let n0 = pairs(n as u64);
    let numerator = n0 as f64 - n1 as f64 - n2 as f64 + n3 as f64 - 2.0 * discordant as f64;
    let denominator = ((n0 - n1) as f64).sqrt() * ((n0 - n2) as f64).sqrt();
    if denominator == 0.0 {
        return f64::NAN;
    }
    (numerator / denominator).clamp(-1.0, 1.0)
}

/// Sorts `v` ascending (bottom-up merge sort) and returns the number of pairs i < j with
/// v[i] > v[j] (strict; equal values are not inversions).
fn count_inversions(v: &mut [f64]) -> u64 {
    let n = v.len();
    let mut buf = v.to_vec();
    let mut inversions = 0u64;
    let mut width = 1;
    let mut src_is_v = true;
    while width < n {
        {
            let (src, dst): (&[f64], &mut [f64]) = if src_is_v {
                (&*v, &mut buf)
            } else {
                (&buf, &mut *v)
            };
            let mut start = 0;
            while start < n {
                let mid = (start + width).min(n);
                let end = (start + 2 * width).min(n);
                let (mut i, mut j, mut k) = (start, mid, start);
                while i < mid && j < end {
                    if src[j] < src[i] {
                        dst[k] = src[j];
                        inversions += (mid - i) as u64;
                        j += 1;
                    } else {
                        dst[k] = src[i];
                        i += 1;
                    }
                    k += 1;
                }
                dst[k..k + (mid - i)].copy_from_slice(&src[i..mid]);
                k += mid - i;
                dst[k..k + (end - j)].copy_from_slice(&src[j..end]);
                start = end;
            }
        }
        src_is_v = !src_is_v;
        width *= 2;
    }
    if !src_is_v {
        v.copy_from_slice(&buf);
    }
    inversions
}

/// Ranks 1..n with ties given their average rank (scipy `rankdata(method='average')`).
pub fn average_ranks(x: &[f64]) -> Vec<f64> {
    let n = x.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_unstable_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut ranks = vec![0.0; n];
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && x[order[end]] == x[order[start]] {
            end += 1;
        }
        // positions start..end (0-based) share ranks start+1..=end: average (start+1+end)/2.
        let r = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = r;
        }
        start = end;
    }
    ranks
}

/// Pearson's product-moment correlation r (two-pass, mean-centred).
///
/// # Panics
/// If `x` and `y` differ in length.
pub fn pearson_r(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len(), "pearson_r: x and y differ in length");
    let n = x.len();
    if n < 2 {
        return f64::NAN;
    }
    let mx = x.iter().sum::<f64>() / n as f64;
    let my = y.iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        return f64::NAN;
    }
    (sxy / (sxx.sqrt() * syy.sqrt())).clamp(-1.0, 1.0)
}

/// Spearman's ρ: Pearson's r of the average ranks.
pub fn spearman_rho(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len(), "spearman_rho: x and y differ in length");
    pearson_r(&average_ranks(x), &average_ranks(y))
}

/// Whether a score ranks better architectures higher or lower.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Orientation {
    /// A loss: lower is better (the BossNAS potential and composed score).
    #[default]
    LowerIsBetter,
    /// A merit: higher is better (accuracy predictors, parameter count as a proxy).
    HigherIsBetter,
}

impl Orientation {
    /// +1 for higher-is-better, −1 for lower-is-better.
    pub fn sign(self) -> f64 {
        match self {
            Self::LowerIsBetter => -1.0,
            Self::HigherIsBetter => 1.0,
        }
    }

    /// Whether score `a` is better than score `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Self::LowerIsBetter => a < b,
            Self::HigherIsBetter => a > b,
        }
    }

    /// Orders scores best first.
    pub fn best_first(self, a: f64, b: f64) -> Ordering {
        match self {
            Self::LowerIsBetter => a.total_cmp(&b),
            Self::HigherIsBetter => b.total_cmp(&a),
        }
    }
}

impl std::fmt::Display for Orientation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::LowerIsBetter => "lower is better",
            Self::HigherIsBetter => "higher is better",
        })
    }
}

impl std::str::FromStr for Orientation {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "lower" | "lower_is_better" | "loss" => Ok(Self::LowerIsBetter),
            "higher" | "higher_is_better" | "merit" => Ok(Self::HigherIsBetter),
            other => Err(crate::Error::Options(format!(
                "unknown orientation {other:?}; expected lower or higher"
            ))),
        }
    }
}

/// The three statistics of one (score, accuracy) pairing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Correlations {
    /// Kendall τ-b.
    pub kendall_tau_b: f64,
    /// Spearman ρ (average ranks).
    pub spearman_rho: f64,
    /// Pearson r.
    pub pearson_r: f64,
}

impl Correlations {
    /// Raw statistics of `(score, accuracy)`.
    pub fn compute(score: &[f64], accuracy: &[f64]) -> Self {
        Self {
            kendall_tau_b: kendall_tau_b(score, accuracy),
            spearman_rho: spearman_rho(score, accuracy),
            pearson_r: pearson_r(score, accuracy),
        }
    }

    /// Multiplies every statistic by `orientation.sign()`: positive = the score ranks better
    /// architectures higher.
    pub fn oriented(self, orientation: Orientation) -> Self {
        let s = orientation.sign();
        Self {
            kendall_tau_b: s * self.kendall_tau_b,
            spearman_rho: s * self.spearman_rho,
            pearson_r: s * self.pearson_r,
        }
    }
}

/// Options of the percentile bootstrap.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootstrapOptions {
    /// Number of resamples; 0 disables the bootstrap.
    pub resamples: usize,
    /// RNG seed. Resample `b` uses its own stream derived from `(seed, b)`, so results do not
    /// depend on the number of threads.
    pub seed: u64,
    /// Coverage of the interval, e.g. 0.95.
    pub confidence: f64,
    /// Worker threads; 0 = available parallelism.
    #[serde(skip)]
    pub threads: usize,
}

impl Default for BootstrapOptions {
    fn default() -> Self {
        Self {
            resamples: 200,
            seed: 0,
            confidence: 0.95,
            threads: 0,
        }
    }
}

/// A two-sided percentile interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
}

impl Interval {
    /// The interval of the negated statistic.
    pub fn negated(self) -> Self {
        Self {
            lo: -self.hi,
            hi: -self.lo,
        }
    }

    /// The interval after multiplying by an orientation's sign.
    pub fn oriented(self, orientation: Orientation) -> Self {
        match orientation {
            Orientation::HigherIsBetter => self,
            Orientation::LowerIsBetter => self.negated(),
        }
    }
}

/// Percentile-bootstrap intervals of the three statistics (same resamples for all three).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CorrelationIntervals {
    pub kendall_tau_b: Interval,
    pub spearman_rho: Interval,
    pub pearson_r: Interval,
    /// Resamples used.
    pub resamples: usize,
    /// Coverage, e.g. 0.95.
    pub confidence: f64,
}

impl CorrelationIntervals {
    /// Intervals of the oriented statistics.
    pub fn oriented(self, orientation: Orientation) -> Self {
        Self {
            kendall_tau_b: self.kendall_tau_b.oriented(orientation),
            spearman_rho: self.spearman_rho.oriented(orientation),
            pearson_r: self.pearson_r.oriented(orientation),
            ..self
        }
    }
}

/// Percentile `q ∈ [0, 1]` of sorted data with linear interpolation (numpy's default).
pub fn percentile_sorted(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        m => {
            let pos = q.clamp(0.0, 1.0) * (m - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = pos.ceil() as usize;
            sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
        }
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Runs `stat` on `opts.resamples` paired resamples (with replacement) of `(x, y)` and returns
/// the values, in resample order. Deterministic for a given seed.
pub fn bootstrap_values<const K: usize>(
    x: &[f64],
    y: &[f64],
    opts: &BootstrapOptions,
    stat: impl Fn(&[f64], &[f64]) -> [f64; K] + Sync,
) -> Vec<[f64; K]> {
    assert_eq!(x.len(), y.len(), "bootstrap: x and y differ in length");
    let n = x.len();
    let b = opts.resamples;
    if b == 0 || n == 0 {
        return Vec::new();
    }
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism()
            .map(|t| t.get())
            .unwrap_or(1)
    } else {
        opts.threads
    }
    .clamp(1, b);
    let one = |r: usize, xs: &mut Vec<f64>, ys: &mut Vec<f64>| {
        let mut rng = StdRng::seed_from_u64(splitmix64(opts.seed ^ splitmix64(r as u64)));
        xs.clear();
        ys.clear();
        for _ in 0..n {
            let i = rng.random_range(0..n);
            xs.push(x[i]);
            ys.push(y[i]);
        }
        stat(xs, ys)
    };
    let mut out = vec![[f64::NAN; K]; b];
    let chunk = b.div_ceil(threads);
    std::thread::scope(|s| {
        for (c, slots) in out.chunks_mut(chunk).enumerate() {
            let one = &one;
            s.spawn(move || {
                let (mut xs, mut ys) = (Vec::with_capacity(n), Vec::with_capacity(n));
                for (k, slot) in slots.iter_mut().enumerate() {
                    *slot = one(c * chunk + k, &mut xs, &mut ys);
                }
            });
        }
    });
    out
}

/// Percentile interval of bootstrap values, ignoring NaN (degenerate) resamples.
pub fn percentile_interval(values: impl IntoIterator<Item = f64>, confidence: f64) -> Interval {
    let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
    v.sort_unstable_by(f64::total_cmp);
    let alpha = (1.0 - confidence) / 2.0;
    Interval {
        lo: percentile_sorted(&v, alpha),
        hi: percentile_sorted(&v, 1.0 - alpha),
    }
}

/// Percentile-bootstrap intervals of τ-b, ρ and r of the raw `(x, y)` statistics.
/// `None` when `opts.resamples == 0`.
pub fn bootstrap_correlations(
    x: &[f64],
    y: &[f64],
    opts: &BootstrapOptions,
) -> Option<CorrelationIntervals> {
    if opts.resamples == 0 {
        return None;
    }
    let values = bootstrap_values(x, y, opts, |a, b| {
        let c = Correlations::compute(a, b);
        [c.kendall_tau_b, c.spearman_rho, c.pearson_r]
    });
    let pick = |k: usize| percentile_interval(values.iter().map(|v| v[k]), opts.confidence);
    Some(CorrelationIntervals {
        kendall_tau_b: pick(0),
        spearman_rho: pick(1),
        pearson_r: pick(2),
        resamples: opts.resamples,
        confidence: opts.confidence,
    })
}

/// Naive O(n²) τ-b, for tests.
#[cfg(test)]
fn kendall_tau_b_naive(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len();
    let (mut c, mut d, mut tx, mut ty) = (0i64, 0i64, 0i64, 0i64);
    for i in 0..n {
        for j in i + 1..n {
            let sx = (x[i] - x[j]).signum() as i64 * ((x[i] != x[j]) as i64);
            let sy = (y[i] - y[j]).signum() as i64 * ((y[i] != y[j]) as i64);
            if sx == 0 && sy == 0 {
                continue;
            } else if sx == 0 {
                tx += 1;
            } else if sy == 0 {
                ty += 1;
            } else if sx == sy {
                c += 1;
            } else {
                d += 1;
            }
        }
    }
    (c - d) as f64 / (((c + d + tx) as f64) * ((c + d + ty) as f64)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol, "{a} vs {b}");
    }

    // Reference values from scipy 1.17.1 / numpy 2.4.6:
    //
    // from scipy import stats
    // cases = {
    //   "A": ([1, 2, 2, 3, 3, 3, 4, 5, 5, 6], [2, 1, 2, 3, 3, 5, 4, 4, 6, 6]),
    //   "B": ([0.5, 0.5, 0.5, 1.0, 1.0, 2.0, 2.0, 2.0, 3.0], [3, 1, 3, 2, 2, 1, 3, 3, 0]),
    //   "C": ([7, 7, 7, 7, 1, 2], [1, 2, 3, 4, 4, 4]),
    //   "D": ([1, 2, 3, 4, 5, 6, 7, 8], [8, 7, 6, 5, 4, 3, 2, 1]),
    // }
    // for k, (x, y) in cases.items():
    //     print(k, repr(stats.kendalltau(x, y).statistic), repr(stats.spearmanr(x, y).statistic),
    //           repr(stats.pearsonr(x, y).statistic))
    /// (x, y, τ-b, ρ, r)
    type Case = (&'static [f64], &'static [f64], f64, f64, f64);
    const CASES: &[Case] = &[
        (
            &[1., 2., 2., 3., 3., 3., 4., 5., 5., 6.],
            &[2., 1., 2., 3., 3., 5., 4., 4., 6., 6.],
            0.7654904374034319,
            0.8781421513813898,
            0.8471128072607026,
        ),
        (
            &[0.5, 0.5, 0.5, 1.0, 1.0, 2.0, 2.0, 2.0, 3.0],
            &[3., 1., 3., 2., 2., 1., 3., 3., 0.],
            -0.2807449625374385,
            -0.3287979746107146,
            -0.4378802695198569,
        ),
        (
            &[7., 7., 7., 7., 1., 2.],
            &[1., 2., 3., 4., 4., 4.],
            -0.5773502691896258,
            -0.6465790872963896,
            -0.6086116686897369,
        ),
        (
            &[1., 2., 3., 4., 5., 6., 7., 8.],
            &[8., 7., 6., 5., 4., 3., 2., 1.],
            -1.0,
            -1.0,
            -1.0,
        ),
    ];

    #[test]
    fn scipy_reference_values() {
        for (x, y, tau, rho, r) in CASES {
            close(kendall_tau_b(x, y), *tau, 1e-12);
            close(spearman_rho(x, y), *rho, 1e-12);
            close(pearson_r(x, y), *r, 1e-12);
        }
    }

    #[test]
    fn tau_matches_naive_on_random_tied_data() {
        let mut rng = StdRng::seed_from_u64(7);
        for trial in 0..200 {
            let n = rng.random_range(2..60);
            let levels = rng.random_range(1..6) as f64;
            let x: Vec<f64> = (0..n)
                .map(|_| (rng.random::<f64>() * levels).floor())
                .collect();
            let y: Vec<f64> = (0..n)
                .map(|_| (rng.random::<f64>() * levels).floor())
                .collect();
            let fast = kendall_tau_b(&x, &y);
            let slow = kendall_tau_b_naive(&x, &y);
            if slow.is_nan() {
                assert!(fast.is_nan(), "trial {trial}");
            } else {
                close(fast, slow, 1e-12);
            }
        }
    }

    #[test]
    fn degenerate_inputs_are_nan() {
        assert!(kendall_tau_b(&[1.0], &[2.0]).is_nan());
        assert!(kendall_tau_b(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_nan());
        assert!(pearson_r(&[1.0, 1.0], &[1.0, 2.0]).is_nan());
        assert!(spearman_rho(&[], &[]).is_nan());
    }

    #[test]
    fn average_ranks_match_scipy() {
        assert_eq!(
            average_ranks(&[10., 20., 10., 30., 20., 10.]),
            vec![2., 4.5, 2., 6., 4.5, 2.]
        );
    }

    #[test]
    fn orientation_flips_sign() {
        let c = Correlations {
            kendall_tau_b: -0.5,
            spearman_rho: -0.7,
            pearson_r: -0.6,
        };
        let o = c.oriented(Orientation::LowerIsBetter);
        assert_eq!(
            (o.kendall_tau_b, o.spearman_rho, o.pearson_r),
            (0.5, 0.7, 0.6)
        );
        assert_eq!(c.oriented(Orientation::HigherIsBetter), c);
        let i = Interval { lo: -0.6, hi: -0.4 }.oriented(Orientation::LowerIsBetter);
        assert_eq!((i.lo, i.hi), (0.4, 0.6));
    }

    #[test]
    fn bootstrap_is_seeded_and_thread_independent() {
        let x: Vec<f64> = (0..300).map(|i| ((i * 37) % 101) as f64).collect();
        let y: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, v)| v + ((i * 13) % 29) as f64)
            .collect();
        let one = BootstrapOptions {
            resamples: 64,
            seed: 3,
            confidence: 0.95,
            threads: 1,
        };
        let many = BootstrapOptions { threads: 5, ..one };
        let a = bootstrap_correlations(&x, &y, &one).unwrap();
        let b = bootstrap_correlations(&x, &y, &many).unwrap();
        assert_eq!(a, b);
        let point = Correlations::compute(&x, &y);
        assert!(
            a.kendall_tau_b.lo <= point.kendall_tau_b && point.kendall_tau_b <= a.kendall_tau_b.hi
        );
        assert!(a.pearson_r.lo < a.pearson_r.hi);
        let other = bootstrap_correlations(&x, &y, &BootstrapOptions { seed: 4, ..one }).unwrap();
        assert_ne!(a, other);
        assert!(
            bootstrap_correlations(
                &x,
                &y,
                &BootstrapOptions {
                    resamples: 0,
                    ..one
                }
            )
            .is_none()
        );
    }

    #[test]
    fn percentile_matches_numpy_linear() {
        // numpy.percentile([1, 2, 3, 4], [2.5, 97.5]) == [1.075, 3.925]
        let v = [1.0, 2.0, 3.0, 4.0];
        close(percentile_sorted(&v, 0.025), 1.075, 1e-12);
        close(percentile_sorted(&v, 0.975), 3.925, 1e-12);
    }
}
