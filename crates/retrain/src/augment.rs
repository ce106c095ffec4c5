//! Batch-level augmentation on normalised tensors: random erasing (timm `RandomErasing`,
//! `mode='pixel'`, one box, area 2–33 %, aspect 0.3–3.3), plus the seeded host RNG helpers
//! (normal, gamma, beta) the mixing code shares.
//!
//! Every random choice comes from a [`ChaCha8Rng`] seeded by (run seed, optimizer step, salt),
//! so a resumed run draws exactly the same boxes.

use burn::tensor::{Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The RNG of step `step` for purpose `salt`.
pub fn step_rng(seed: u64, step: u64, salt: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ salt.rotate_left(17));
    rng.set_stream(step);
    rng
}

/// A standard normal sample (Box–Muller), shared with RandAugment's magnitude noise.
pub use bossnas_datasets::rand_augment::standard_normal as normal;

/// A Gamma(shape, 1) sample (Marsaglia–Tsang; shape < 1 via the `U^(1/shape)` boost).
pub fn gamma(rng: &mut impl Rng, shape: f64) -> f64 {
    if shape < 1.0 {
        let u: f64 = rng.random_range(f64::EPSILON..1.0);
        return gamma(rng, shape + 1.0) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = normal(rng);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u: f64 = rng.random_range(f64::EPSILON..1.0);
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// A Beta(α, α) sample.
pub fn beta(rng: &mut impl Rng, alpha: f64) -> f64 {
    let a = gamma(rng, alpha);
    let b = gamma(rng, alpha);
    if a + b == 0.0 { 0.5 } else { a / (a + b) }
}

/// One erased box `(top, left, height, width)` or none after 10 tries (timm's loop).
fn erase_box(rng: &mut impl Rng, h: usize, w: usize) -> Option<(usize, usize, usize, usize)> {
    let area = (h * w) as f64;
    let (log_lo, log_hi) = ((0.3f64).ln(), (1.0f64 / 0.3).ln());
    for _ in 0..10 {
        let target = rng.random_range(0.02..1.0 / 3.0) * area;
        let aspect = rng.random_range(log_lo..log_hi).exp();
        let eh = (target * aspect).sqrt().round() as usize;
        let ew = (target / aspect).sqrt().round() as usize;
        if eh > 0 && ew > 0 && ew < w && eh < h {
            let top = rng.random_range(0..=h - eh);
            let left = rng.random_range(0..=w - ew);
            return Some((top, left, eh, ew));
        }
    }
    None
}

/// Random erasing: each image, with probability `p`, gets one box of per-pixel N(0, 1) noise.
///
/// # Shapes
/// - `images`: `[batch, channels, H, W]` → same shape
pub fn random_erase(images: Tensor<4>, p: f64, rng: &mut impl Rng) -> Tensor<4> {
    if p <= 0.0 {
        return images;
    }
    let [b, c, h, w] = images.dims();
    let mut keep = vec![1f32; b * h * w];
    let mut noise = vec![0f32; b * c * h * w];
    let mut any = false;
    for i in 0..b {
        if rng.random::<f64>() >= p {
            continue;
        }
        let Some((top, left, eh, ew)) = erase_box(rng, h, w) else {
            continue;
        };
        any = true;
        for ch in 0..c {
            for y in top..top + eh {
                for x in left..left + ew {
                    noise[((i * c + ch) * h + y) * w + x] = normal(rng) as f32;
                }
            }
        }
        for y in top..top + eh {
            for x in left..left + ew {
                keep[(i * h + y) * w + x] = 0.0;
            }
        }
    }
    if !any {
        return images;
    }
    let device = images.device();
    let keep = Tensor::<4>::from_data(TensorData::new(keep, [b, 1, h, w]), &device);
    let noise = Tensor::<4>::from_data(TensorData::new(noise, [b, c, h, w]), &device);
    images * keep + noise
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[test]
    fn beta_and_normal_have_the_right_moments() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let n = 20_000;
        let xs: Vec<f64> = (0..n).map(|_| beta(&mut rng, 0.8)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        // Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)).
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        assert!((var - 1.0 / (4.0 * 2.6)).abs() < 0.005, "{var}");
        assert!(xs.iter().all(|x| (0.0..=1.0).contains(x)));
        let zs: Vec<f64> = (0..n).map(|_| normal(&mut rng)).collect();
        let m = zs.iter().sum::<f64>() / n as f64;
        let v = zs.iter().map(|z| (z - m).powi(2)).sum::<f64>() / n as f64;
        assert!(m.abs() < 0.03 && (v - 1.0).abs() < 0.05, "{m} {v}");
    }

    #[test]
    fn erasing_replaces_one_box_per_erased_image() {
        let device = Device::flex();
        let x = Tensor::<4>::full([4, 3, 16, 16], 7.0, &device);
        let y = random_erase(x.clone(), 1.0, &mut step_rng(0, 3, 1));
        let v: Vec<f32> = y.into_data().try_to_vec::<f32>().unwrap();
        for i in 0..4 {
            let img = &v[i * 768..(i + 1) * 768];
            let changed = img.iter().filter(|&&p| p != 7.0).count();
            // A box of 2 %–33 % of 256 pixels on 3 channels.
            assert!((3 * 5..=3 * 86).contains(&changed), "image {i}: {changed}");
        }
        let same = random_erase(x.clone(), 0.0, &mut step_rng(0, 3, 1));
        assert_eq!(same.into_data(), x.clone().into_data());
        // Same step, same boxes.
        let a = random_erase(x.clone(), 0.5, &mut step_rng(9, 4, 1)).into_data();
        let b = random_erase(x, 0.5, &mut step_rng(9, 4, 1)).into_data();
        assert_eq!(a, b);
    }
}
