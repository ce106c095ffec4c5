//! Population-centre rating of one block's candidates (spec §5.3–5.4).
//!
//! For every evaluation batch `b` with fixed views `(x1, x2)` and every candidate `α` of the
//! block's population `A`:
//!
//! ```text
//! recalibrate BN for α on the fixed calibration batch              (CandidateModel::calibrate)
//! t_v[α] = target projection of x_v along α (raw, not normalised)  (CandidateModel::target_projection)
//! o_v[α] = online prediction of x_v along α (predictor applied)     (CandidateModel::online_prediction)
//! C_v    = mean_α t_v[α]                                            population centre
//! L(α)   = mean_b [ −2·cos(o1[α], C2) − 2·cos(o2[α], C1) ]         (cos = mean over the batch)
//! ```
//!
//! and candidates are ranked by ascending `L` (best first). Every candidate sees exactly the
//! same views: the caller hands in the view tensors once.
//!
//! Centre (spec §9 D3): the official evaluation averages the **raw** target projections and
//! normalises only inside the head ([`CentreMode::Raw`], the default); the training target
//! averages L2-normalised projections ([`CentreMode::Normalised`]).
//!
//! Loop order: [`LoopOrder::BatchOuter`] (official) recalibrates every candidate for every
//! batch and holds one batch's online predictions of all candidates (`|A| × 2 × B × d`
//! floats). [`LoopOrder::CandidateOuter`] makes two passes over the candidates (centres, then
//! scores), calibrating each candidate twice in all, and holds only the centres
//! (`batches × 2 × B × d`). Both give the same scores when calibration is deterministic.

use burn::tensor::Tensor;
use ensemble_bootstrap::loss::{l2_normalize, regression_loss};
use serde::{Deserialize, Serialize};

use crate::{Result, SearchError};

/// Two views of the same images, `[batch, 3, H, W]` each.
pub type ViewPair = (Tensor<4>, Tensor<4>);

/// What the rating needs from a trained Siamese supernet, for one block.
///
/// Implementations fix the block and its prefix (the best paths of the earlier blocks); a
/// candidate is the block's path.
pub trait CandidateModel {
    /// Re-estimates the BN statistics used when evaluating candidate `path` on the fixed
    /// calibration pair `calib` (spec §5.3). Called before the candidate's projections; it
    /// may be called many times with the same arguments (the batch-outer order calls it once
    /// per candidate and batch), so implementations may cache per path.
    fn calibrate(&mut self, path: &[usize], calib: &ViewPair) -> Result<()>;

    /// Raw (unnormalised) target projection of the images `x` along `path`, in eval mode.
    ///
    /// # Shapes
    /// - `x`: `[batch, 3, H, W]`
    /// - output: `[batch, d]`
    fn target_projection(&self, path: &[usize], x: Tensor<4>) -> Tensor<2>;

    /// Online projection followed by the predictor, along `path`, in eval mode.
    ///
    /// # Shapes
    /// - `x`: `[batch, 3, H, W]`
    /// - output: `[batch, d]`
    fn online_prediction(&self, path: &[usize], x: Tensor<4>) -> Tensor<2>;
}

/// One candidate and its score `L` (lower is better).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatedPath {
    /// The block path (op indices).
    pub path: Vec<usize>,
    /// Population-centre loss, in `[−4, 4]`.
    pub score: f64,
}

/// How the population centre averages the target projections (spec §9 D3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CentreMode {
    /// Mean of the raw projections (official evaluation).
    #[default]
    Raw,
    /// Mean of the L2-normalised projections (as the training target ensemble).
    Normalised,
}

/// Order of the evaluation loops; see the module documentation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoopOrder {
    /// Batch-outer, candidate-inner (official).
    #[default]
    BatchOuter,
    /// Candidate-outer, two passes; memory independent of the population size.
    CandidateOuter,
}

/// Rating options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RatingOptions {
    /// Centre averaging.
    pub centre: CentreMode,
    /// Loop order.
    pub order: LoopOrder,
}

/// [`rate_population_with`] with default options and no progress reporting.
pub fn rate_population<M: CandidateModel + ?Sized>(
    model: &mut M,
    population: &[Vec<usize>],
    eval_batches: &[ViewPair],
    calib: &ViewPair,
) -> Result<Vec<RatedPath>> {
    rate_population_with(
        model,
        population,
        eval_batches,
        calib,
        &RatingOptions::default(),
        &mut |_, _| {},
    )
}

/// Rates every candidate of `population` and returns them sorted by ascending score (ties
/// keep population order). `progress(done, total)` is called after each candidate
/// evaluation step.
pub fn rate_population_with<M: CandidateModel + ?Sized>(
    model: &mut M,
    population: &[Vec<usize>],
    eval_batches: &[ViewPair],
    calib: &ViewPair,
    options: &RatingOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<RatedPath>> {
    if population.is_empty() {
        return Err(SearchError::Invalid("rating an empty population".into()));
    }
    if eval_batches.is_empty() {
        return Err(SearchError::Invalid(
            "rating needs at least one evaluation batch".into(),
        ));
    }
    let sums = match options.order {
        LoopOrder::BatchOuter => {
            batch_outer(model, population, eval_batches, calib, options, progress)?
        }
        LoopOrder::CandidateOuter => {
            candidate_outer(model, population, eval_batches, calib, options, progress)?
        }
    };
    Ok(mean_ranked(population, sums, eval_batches.len()))
}

/// Per-candidate score sums over `batches` evaluation batches → mean scores, ranked.
fn mean_ranked(population: &[Vec<usize>], sums: Vec<f64>, batches: usize) -> Vec<RatedPath> {
    let n = batches as f64;
    rank(
        population
            .iter()
            .zip(sums)
            .map(|(p, s)| RatedPath {
                path: p.clone(),
                score: s / n,
            })
            .collect(),
    )
}

/// Sorts ascending by score, stable; NaN last.
pub fn rank(mut rated: Vec<RatedPath>) -> Vec<RatedPath> {
    let key = |s: f64| if s.is_nan() { f64::INFINITY } else { s };
    rated.sort_by(|a, b| key(a.score).total_cmp(&key(b.score)));
    rated
}

fn centre_term(t: Tensor<2>, mode: CentreMode) -> Tensor<2> {
    match mode {
        CentreMode::Raw => t.detach(),
        CentreMode::Normalised => l2_normalize(t.detach()),
    }
}

fn accumulate(sum: &mut Option<Tensor<2>>, t: Tensor<2>) {
    *sum = Some(match sum.take() {
        Some(s) => s + t,
        None => t,
    });
}

fn check_dims(what: &str, path: &[usize], got: [usize; 2], want: Option<[usize; 2]>) -> Result<()> {
    match want {
        Some(w) if w != got => Err(SearchError::Model(format!(
            "{what} of path {path:?} has shape {got:?}, expected {w:?} (same as the other candidates)"
        ))),
        _ => Ok(()),
    }
}

fn scalar(t: Tensor<1>) -> f64 {
    t.into_data()
        .convert::<f64>()
        .try_to_vec::<f64>()
        .map(|v| v[0])
        .unwrap_or(f64::NAN)
}

/// `head(o1, C2) + head(o2, C1)` for one candidate and batch.
fn pair_loss(o1: Tensor<2>, o2: Tensor<2>, c1: &Tensor<2>, c2: &Tensor<2>) -> f64 {
    scalar(regression_loss(o1, c2.clone()) + regression_loss(o2, c1.clone()))
}

fn batch_outer<M: CandidateModel + ?Sized>(
    model: &mut M,
    population: &[Vec<usize>],
    eval_batches: &[ViewPair],
    calib: &ViewPair,
    options: &RatingOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<f64>> {
    stream_sums(
        model,
        population,
        eval_batches.len(),
        &mut |b| Ok(eval_batches[b].clone()),
        calib,
        options.centre,
        progress,
    )
}

/// Batch-outer rating that loads each evaluation batch once, when it is needed
/// (`load(b)` for `b in 0..num_batches`), so the evaluation set never has to be in memory.
/// Same result as [`rate_population_with`] with [`LoopOrder::BatchOuter`].
pub fn rate_population_streaming<M: CandidateModel + ?Sized>(
    model: &mut M,
    population: &[Vec<usize>],
    num_batches: usize,
    load: &mut dyn FnMut(usize) -> Result<ViewPair>,
    calib: &ViewPair,
    centre: CentreMode,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<RatedPath>> {
    if population.is_empty() {
        return Err(SearchError::Invalid("rating an empty population".into()));
    }
    if num_batches == 0 {
        return Err(SearchError::Invalid(
            "rating needs at least one evaluation batch".into(),
        ));
    }
    let sums = stream_sums(
        model,
        population,
        num_batches,
        load,
        calib,
        centre,
        progress,
    )?;
    Ok(mean_ranked(population, sums, num_batches))
}

fn stream_sums<M: CandidateModel + ?Sized>(
    model: &mut M,
    population: &[Vec<usize>],
    num_batches: usize,
    load: &mut dyn FnMut(usize) -> Result<ViewPair>,
    calib: &ViewPair,
    centre: CentreMode,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<f64>> {
    let p = population.len();
    let total = p * num_batches;
    let mut sums = vec![0.0; p];
    let mut done = 0;
    for b in 0..num_batches {
        let (x1, x2) = load(b)?;
        let (mut c1, mut c2) = (None, None);
        let mut online = Vec::with_capacity(p);
        let mut dims = None;
        for path in population {
            model.calibrate(path, calib)?;
            let t1 = model.target_projection(path, x1.clone());
            let t2 = model.target_projection(path, x2.clone());
            let o1 = model.online_prediction(path, x1.clone()).detach();
            let o2 = model.online_prediction(path, x2.clone()).detach();
            for (what, t) in [
                ("target projection", &t1),
                ("target projection", &t2),
                ("online prediction", &o1),
                ("online prediction", &o2),
            ] {
                check_dims(what, path, t.dims(), dims)?;
                dims = Some(t.dims());
            }
            accumulate(&mut c1, centre_term(t1, centre));
            accumulate(&mut c2, centre_term(t2, centre));
            online.push((o1, o2));
            done += 1;
            progress(done, total);
        }
        let c1 = c1.expect("non-empty population").div_scalar(p as f64);
        let c2 = c2.expect("non-empty population").div_scalar(p as f64);
        for (sum, (o1, o2)) in sums.iter_mut().zip(online) {
            *sum += pair_loss(o1, o2, &c1, &c2);
        }
    }
    Ok(sums)
}

fn candidate_outer<M: CandidateModel + ?Sized>(
    model: &mut M,
    population: &[Vec<usize>],
    eval_batches: &[ViewPair],
    calib: &ViewPair,
    options: &RatingOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<f64>> {
    let p = population.len();
    let total = 2 * p * eval_batches.len();
    let mut done = 0;
    let mut centres: Vec<(Option<Tensor<2>>, Option<Tensor<2>>)> =
        eval_batches.iter().map(|_| (None, None)).collect();
    let mut dims: Vec<Option<[usize; 2]>> = vec![None; eval_batches.len()];
    for path in population {
        model.calibrate(path, calib)?;
        for (b, (x1, x2)) in eval_batches.iter().enumerate() {
            let t1 = model.target_projection(path, x1.clone());
            let t2 = model.target_projection(path, x2.clone());
            for t in [&t1, &t2] {
                check_dims("target projection", path, t.dims(), dims[b])?;
                dims[b] = Some(t.dims());
            }
            accumulate(&mut centres[b].0, centre_term(t1, options.centre));
            accumulate(&mut centres[b].1, centre_term(t2, options.centre));
            done += 1;
            progress(done, total);
        }
    }
    let centres: Vec<(Tensor<2>, Tensor<2>)> = centres
        .into_iter()
        .map(|(a, b)| {
            (
                a.expect("non-empty population").div_scalar(p as f64),
                b.expect("non-empty population").div_scalar(p as f64),
            )
        })
        .collect();
    let mut sums = vec![0.0; p];
    for (sum, path) in sums.iter_mut().zip(population) {
        model.calibrate(path, calib)?;
        for (b, (x1, x2)) in eval_batches.iter().enumerate() {
            let o1 = model.online_prediction(path, x1.clone()).detach();
            let o2 = model.online_prediction(path, x2.clone()).detach();
            for o in [&o1, &o2] {
                check_dims("online prediction", path, o.dims(), dims[b])?;
            }
            *sum += pair_loss(o1, o2, &centres[b].0, &centres[b].1);
            done += 1;
            progress(done, total);
        }
    }
    Ok(sums)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    /// Candidate `i` projects a `[B, 1, 1, 2]` input row `x` to `x · T_i` (target) and
    /// `x · W_i` (online prediction).
    struct Fake {
        device: Device,
        target: Vec<[[f32; 2]; 2]>,
        online: Vec<[[f32; 2]; 2]>,
        calibrated: Option<Vec<usize>>,
        calls: usize,
    }

    impl Fake {
        fn apply(&self, m: [[f32; 2]; 2], path: &[usize], x: Tensor<4>) -> Tensor<2> {
            assert_eq!(
                self.calibrated.as_deref(),
                Some(path),
                "projection before calibration"
            );
            let b = x.dims()[0];
            x.reshape([b, 2])
                .matmul(Tensor::<2>::from_data(m, &self.device))
        }
    }

    impl CandidateModel for Fake {
        fn calibrate(&mut self, path: &[usize], calib: &ViewPair) -> Result<()> {
            assert_eq!(calib.0.dims()[1], 1);
            self.calibrated = Some(path.to_vec());
            self.calls += 1;
            Ok(())
        }
        fn target_projection(&self, path: &[usize], x: Tensor<4>) -> Tensor<2> {
            self.apply(self.target[path[0]], path, x)
        }
        fn online_prediction(&self, path: &[usize], x: Tensor<4>) -> Tensor<2> {
            self.apply(self.online[path[0]], path, x)
        }
    }

    const ID: [[f32; 2]; 2] = [[1.0, 0.0], [0.0, 1.0]];
    const SWAP: [[f32; 2]; 2] = [[0.0, 1.0], [1.0, 0.0]];

    fn fake(device: &Device) -> Fake {
        Fake {
            device: device.clone(),
            // α0: t = x; α1: t = [3·x0, 0].
            target: vec![ID, [[3.0, 0.0], [0.0, 0.0]]],
            // α0: o = x; α1: o = swap(x).
            online: vec![ID, SWAP],
            calibrated: None,
            calls: 0,
        }
    }

    fn views(rows1: &[[f32; 2]], rows2: &[[f32; 2]], device: &Device) -> ViewPair {
        let t = |rows: &[[f32; 2]]| {
            let flat: Vec<f32> = rows.iter().flatten().copied().collect();
            Tensor::<1>::from_floats(flat.as_slice(), device).reshape([rows.len(), 1, 1, 2])
        };
        (t(rows1), t(rows2))
    }

    fn cos(a: [f64; 2], b: [f64; 2]) -> f64 {
        (a[0] * b[0] + a[1] * b[1]) / ((a[0].hypot(a[1])) * (b[0].hypot(b[1])))
    }

    fn population() -> Vec<Vec<usize>> {
        vec![vec![0], vec![1]]
    }

    #[test]
    fn raw_centre_one_batch_hand_values() {
        let d = Device::flex();
        let mut m = fake(&d);
        // x1 = [1, 2], x2 = [2, 1].
        let eval = vec![views(&[[1.0, 2.0]], &[[2.0, 1.0]], &d)];
        let calib = views(&[[0.0, 0.0]], &[[0.0, 0.0]], &d);
        // t1: α0 [1,2], α1 [3,0] → C1 = [2, 1];  t2: α0 [2,1], α1 [6,0] → C2 = [4, 0.5].
        // α0: o1 = [1,2], o2 = [2,1]: L = −2cos([1,2],[4,.5]) − 2cos([2,1],[2,1]).
        // α1: o1 = [2,1], o2 = [1,2]: L = −2cos([2,1],[4,.5]) − 2cos([1,2],[2,1]).
        let l0 = -2.0 * cos([1.0, 2.0], [4.0, 0.5]) - 2.0;
        let l1 = -2.0 * cos([2.0, 1.0], [4.0, 0.5]) - 2.0 * 0.8;
        // Hand values: cos([1,2],[4,.5]) = 5/(√5·√16.25) ≈ 0.55470, cos([2,1],[4,.5]) ≈ 0.94299.
        assert!((l0 - (-3.10940)).abs() < 1e-4, "{l0}");
        assert!((l1 - (-3.48598)).abs() < 1e-4, "{l1}");
        let r = rate_population(&mut m, &population(), &eval, &calib).unwrap();
        assert_eq!(r[0].path, vec![1]); // l1 < l0
        assert!((r[0].score - l1).abs() < 1e-5, "{r:?}");
        assert!((r[1].score - l0).abs() < 1e-5, "{r:?}");
        assert_eq!(m.calls, 2);
    }

    #[test]
    fn normalised_centre_differs_as_computed() {
        let d = Device::flex();
        let mut m = fake(&d);
        let eval = vec![views(&[[1.0, 2.0]], &[[2.0, 1.0]], &d)];
        let calib = views(&[[0.0, 0.0]], &[[0.0, 0.0]], &d);
        let s5 = 5f64.sqrt();
        // C1 = (n([1,2]) + n([3,0]))/2 ; C2 = (n([2,1]) + n([6,0]))/2.
        let c1 = [(1.0 / s5 + 1.0) / 2.0, (2.0 / s5) / 2.0];
        let c2 = [(2.0 / s5 + 1.0) / 2.0, (1.0 / s5) / 2.0];
        let l0 = -2.0 * cos([1.0, 2.0], c2) - 2.0 * cos([2.0, 1.0], c1);
        let l1 = -2.0 * cos([2.0, 1.0], c2) - 2.0 * cos([1.0, 2.0], c1);
        let opts = RatingOptions {
            centre: CentreMode::Normalised,
            order: LoopOrder::BatchOuter,
        };
        let r = rate_population_with(&mut m, &population(), &eval, &calib, &opts, &mut |_, _| {})
            .unwrap();
        let get = |p: usize| r.iter().find(|x| x.path == vec![p]).unwrap().score;
        assert!((get(0) - l0).abs() < 1e-5);
        assert!((get(1) - l1).abs() < 1e-5);
        // And it differs from the raw-centre score.
        let raw0 = -2.0 * cos([1.0, 2.0], [4.0, 0.5]) - 2.0;
        assert!((get(0) - raw0).abs() > 1e-3);
    }

    /// Reference implementation in f64 on the host for several batches (rows per batch).
    type HostBatch = (Vec<[f64; 2]>, Vec<[f64; 2]>);

    fn reference(eval: &[HostBatch], m: &Fake) -> Vec<f64> {
        let mul = |x: [f64; 2], w: [[f32; 2]; 2]| {
            [
                x[0] * w[0][0] as f64 + x[1] * w[1][0] as f64,
                x[0] * w[0][1] as f64 + x[1] * w[1][1] as f64,
            ]
        };
        let p = m.target.len();
        let mut sums = vec![0.0; p];
        for (v1, v2) in eval {
            let rows = v1.len();
            for (a, sum) in sums.iter_mut().enumerate() {
                let mut l = 0.0;
                for r in 0..rows {
                    let centre = |v: &Vec<[f64; 2]>| {
                        let mut c = [0.0, 0.0];
                        for t in &m.target {
                            let y = mul(v[r], *t);
                            c[0] += y[0] / p as f64;
                            c[1] += y[1] / p as f64;
                        }
                        c
                    };
                    let (c1, c2) = (centre(v1), centre(v2));
                    l += -2.0 * cos(mul(v1[r], m.online[a]), c2) / rows as f64;
                    l += -2.0 * cos(mul(v2[r], m.online[a]), c1) / rows as f64;
                }
                *sum += l / eval.len() as f64;
            }
        }
        sums
    }

    #[test]
    fn several_batches_both_orders_match_reference() {
        let d = Device::flex();
        let host = vec![
            (vec![[1.0, 2.0], [0.5, -1.0]], vec![[2.0, 1.0], [1.0, 1.0]]),
            (vec![[3.0, 1.0], [1.0, 4.0]], vec![[-1.0, 2.0], [2.0, 0.5]]),
            (vec![[1.0, 1.0]], vec![[0.0, 2.0]]), // a smaller last batch
        ];
        let eval: Vec<ViewPair> = host
            .iter()
            .map(|(a, b)| {
                let f = |v: &Vec<[f64; 2]>| {
                    v.iter()
                        .map(|r| [r[0] as f32, r[1] as f32])
                        .collect::<Vec<_>>()
                };
                views(&f(a), &f(b), &d)
            })
            .collect();
        let calib = views(&[[0.0, 0.0]], &[[0.0, 0.0]], &d);
        let mut m = fake(&d);
        m.target.push([[0.5, 1.0], [2.0, -1.0]]);
        m.online.push([[1.0, 1.0], [0.0, 2.0]]);
        let pop = vec![vec![0], vec![1], vec![2]];
        let want = reference(&host, &m);
        for order in [LoopOrder::BatchOuter, LoopOrder::CandidateOuter] {
            m.calls = 0;
            let opts = RatingOptions {
                centre: CentreMode::Raw,
                order,
            };
            let mut steps = 0;
            let r =
                rate_population_with(&mut m, &pop, &eval, &calib, &opts, &mut |_, _| steps += 1)
                    .unwrap();
            for (i, w) in want.iter().enumerate() {
                let got = r.iter().find(|x| x.path == vec![i]).unwrap().score;
                assert!((got - w).abs() < 1e-5, "{order:?} path {i}: {got} vs {w}");
            }
            assert!(r.windows(2).all(|w| w[0].score <= w[1].score));
            match order {
                LoopOrder::BatchOuter => assert_eq!((m.calls, steps), (9, 9)),
                LoopOrder::CandidateOuter => assert_eq!((m.calls, steps), (6, 18)),
            }
        }
    }

    #[test]
    fn empty_inputs_are_errors() {
        let d = Device::flex();
        let mut m = fake(&d);
        let calib = views(&[[0.0, 0.0]], &[[0.0, 0.0]], &d);
        assert!(rate_population(&mut m, &[], std::slice::from_ref(&calib), &calib).is_err());
        assert!(rate_population(&mut m, &population(), &[], &calib).is_err());
    }

    #[test]
    fn rank_is_stable_and_nan_last() {
        let r = rank(vec![
            RatedPath {
                path: vec![0],
                score: f64::NAN,
            },
            RatedPath {
                path: vec![1],
                score: 1.0,
            },
            RatedPath {
                path: vec![2],
                score: -1.0,
            },
            RatedPath {
                path: vec![3],
                score: 1.0,
            },
        ]);
        let order: Vec<usize> = r.iter().map(|x| x.path[0]).collect();
        assert_eq!(order, vec![2, 1, 3, 0]);
    }
}
