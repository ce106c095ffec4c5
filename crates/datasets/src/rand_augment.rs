//! RandAugment as timm implements it (`rand_augment_transform`, the policy DeiT trains with:
//! `rand-m9-mstd0.5-inc1`), on `u8` HWC images.
//!
//! Per image: pick `num_ops` operations uniformly with replacement from the 15 of timm's
//! (increasing) list; each is applied with probability `prob`, at a magnitude drawn from
//! N(`magnitude`, `magnitude_std`) clipped to [0, `magnitude_max`] (uniform on [0, m] when
//! `mstd` > 100), mapped to the op's argument as timm's `LEVEL_TO_ARG` does, with a random sign
//! for the signed ones. Pixel ops follow Pillow (`ImageOps`, `ImageEnhance`, LUTs); the
//! geometric ones are Pillow-style inverse affine maps around the pixel centres, filled with the
//! dataset's mean colour. Tested against Pillow 13 in `tests/pil_golden.rs`.
//!
//! Deviation: geometric ops sample bilinearly, where DeiT asks timm for bicubic.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::augment::{ViewRng, adjust_brightness, adjust_contrast, adjust_saturation};
use crate::{DataError, RgbImage};

/// Magnitude scale of timm's level functions (`_LEVEL_DENOM`).
const LEVEL_DENOM: f64 = 10.0;

/// One RandAugment operation (timm's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    AutoContrast,
    Equalize,
    Invert,
    Rotate,
    Posterize,
    Solarize,
    SolarizeAdd,
    Color,
    Contrast,
    Brightness,
    Sharpness,
    ShearX,
    ShearY,
    TranslateXRel,
    TranslateYRel,
}

impl Op {
    /// timm's `_RAND_TRANSFORMS` / `_RAND_INCREASING_TRANSFORMS` order (the order matters: the
    /// choice draws index into it).
    pub const ALL: [Op; 15] = [
        Op::AutoContrast,
        Op::Equalize,
        Op::Invert,
        Op::Rotate,
        Op::Posterize,
        Op::Solarize,
        Op::SolarizeAdd,
        Op::Color,
        Op::Contrast,
        Op::Brightness,
        Op::Sharpness,
        Op::ShearX,
        Op::ShearY,
        Op::TranslateXRel,
        Op::TranslateYRel,
    ];
}

/// A RandAugment policy. Parse timm's strings with [`RandAugment::parse`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RandAugment {
    /// Operations per image (`n`, timm default 2).
    pub num_ops: usize,
    /// Magnitude (`m`, 0–`magnitude_max`).
    pub magnitude: f64,
    /// Per-op magnitude noise (`mstd`); > 100 means uniform on [0, m].
    pub magnitude_std: f64,
    /// Upper clip of the magnitude (`mmax`, default 10).
    pub magnitude_max: f64,
    /// Probability of applying each chosen op (`p`, default 0.5).
    pub prob: f64,
    /// timm's "increasing" variants (`inc1`): a larger magnitude is always a stronger op.
    pub increasing: bool,
    /// Translation at magnitude 10, as a fraction of the image side (timm: 0.45).
    pub translate_pct: f64,
    /// Fill colour of the geometric ops (timm: the dataset mean × 255, rounded).
    pub fill: [u8; 3],
}

impl RandAugment {
    /// Parses timm's policy string, e.g. `rand-m9-mstd0.5-inc1` (keys `m`, `n`, `mstd`, `mmax`,
    /// `inc`, `p`; `w` — weighted op choice — is refused). `fill` is the geometric fill colour.
    pub fn parse(policy: &str, fill: [u8; 3]) -> Result<Self, DataError> {
        let bad = |m: String| DataError::Config(format!("RandAugment policy {policy:?}: {m}"));
        let mut parts = policy.trim().split('-');
        if parts.next() != Some("rand") {
            return Err(bad("must start with `rand`".into()));
        }
        let mut ra = RandAugment {
            num_ops: 2,
            magnitude: 10.0,
            magnitude_std: 0.0,
            magnitude_max: LEVEL_DENOM,
            prob: 0.5,
            increasing: false,
            translate_pct: 0.45,
            fill,
        };
        for part in parts {
            let split = part
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .ok_or_else(|| bad(format!("`{part}` has no value")))?;
            let (key, value) = part.split_at(split);
            let num: f64 = value
                .parse()
                .map_err(|_| bad(format!("`{part}`: `{value}` is not a number")))?;
            match key {
                "m" => ra.magnitude = num,
                "n" if num.fract() == 0.0 => ra.num_ops = num as usize,
                "mstd" => ra.magnitude_std = num,
                "mmax" => ra.magnitude_max = num,
                "inc" => ra.increasing = num != 0.0,
                "p" => ra.prob = num,
                "w" => return Err(bad("weighted op choice (`w`) is not supported".into())),
                _ => {
                    return Err(bad(format!(
                        "unknown key `{key}` (m, n, mstd, mmax, inc, p)"
                    )));
                }
            }
        }
        ra.check().map_err(bad)?;
        Ok(ra)
    }

    /// Rejects out-of-range settings.
    pub fn validate(&self) -> Result<(), DataError> {
        self.check()
            .map_err(|m| DataError::Config(format!("RandAugment: {m}")))
    }

    fn check(&self) -> Result<(), String> {
        let fields = [
            ("magnitude (m)", self.magnitude, self.magnitude >= 0.0),
            (
                "magnitude_std (mstd)",
                self.magnitude_std,
                self.magnitude_std >= 0.0,
            ),
            (
                "magnitude_max (mmax)",
                self.magnitude_max,
                self.magnitude_max > 0.0,
            ),
            ("prob (p)", self.prob, (0.0..=1.0).contains(&self.prob)),
            (
                "translate_pct",
                self.translate_pct,
                (0.0..=1.0).contains(&self.translate_pct),
            ),
        ];
        match fields.iter().find(|(_, _, ok)| !ok) {
            Some((name, v, _)) => Err(format!("{name} = {v} is out of range")),
            None => Ok(()),
        }
    }

    /// Applies the policy (timm `RandAugment.__call__`).
    pub fn apply(&self, img: &RgbImage, rng: &mut ViewRng) -> RgbImage {
        let ops: Vec<Op> = (0..self.num_ops)
            .map(|_| Op::ALL[rng.random_range(0..Op::ALL.len())])
            .collect();
        let mut out = img.clone();
        for op in ops {
            if self.prob < 1.0 && rng.random::<f64>() > self.prob {
                continue;
            }
            let m = if self.magnitude_std > 100.0 {
                rng.random::<f64>() * self.magnitude
            } else if self.magnitude_std > 0.0 {
                self.magnitude + self.magnitude_std * standard_normal(rng)
            } else {
                self.magnitude
            };
            let level = m.clamp(0.0, self.magnitude_max) / LEVEL_DENOM;
            out = self.apply_op(op, out, level, rng);
        }
        out
    }

    /// One op at `level` = magnitude / 10 (timm's `LEVEL_TO_ARG`, then the op).
    pub fn apply_op(&self, op: Op, mut img: RgbImage, level: f64, rng: &mut ViewRng) -> RgbImage {
        let inc = self.increasing;
        let mut signed = |v: f64| if rng.random::<f64>() > 0.5 { -v } else { v };
        match op {
            Op::AutoContrast => autocontrast(&mut img),
            Op::Equalize => equalize(&mut img),
            Op::Invert => img.data.iter_mut().for_each(|v| *v = 255 - *v),
            Op::Rotate => return rotate(&img, signed(level * 30.0), self.fill),
            Op::Posterize => {
                let bits = (level * 4.0) as i32;
                posterize(&mut img, if inc { 4 - bits } else { bits });
            }
            Op::Solarize => {
                let t = (level * 256.0) as i32;
                solarize_at(&mut img, if inc { 256 - t } else { t });
            }
            Op::SolarizeAdd => solarize_add(&mut img, (level * 110.0) as i32, 128),
            Op::Color | Op::Contrast | Op::Brightness | Op::Sharpness => {
                let f = if inc {
                    (1.0 + signed(level * 0.9)).max(0.1)
                } else {
                    level * 1.8 + 0.1
                };
                match op {
                    Op::Color => adjust_saturation(&mut img, f),
                    Op::Contrast => adjust_contrast(&mut img, f),
                    Op::Brightness => adjust_brightness(&mut img, f),
                    _ => adjust_sharpness(&mut img, f),
                }
            }
            Op::ShearX => {
                return affine(
                    &img,
                    [1.0, signed(level * 0.3), 0.0, 0.0, 1.0, 0.0],
                    self.fill,
                );
            }
            Op::ShearY => {
                return affine(
                    &img,
                    [1.0, 0.0, 0.0, signed(level * 0.3), 1.0, 0.0],
                    self.fill,
                );
            }
            Op::TranslateXRel => {
                let px = signed(level * self.translate_pct) * img.width as f64;
                return affine(&img, [1.0, 0.0, px, 0.0, 1.0, 0.0], self.fill);
            }
            Op::TranslateYRel => {
                let px = signed(level * self.translate_pct) * img.height as f64;
                return affine(&img, [1.0, 0.0, 0.0, 0.0, 1.0, px], self.fill);
            }
        }
        img
    }
}

/// A standard normal draw (Box–Muller; two uniform draws).
pub fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn apply_lut(img: &mut RgbImage, luts: &[[u8; 256]; 3]) {
    for px in img.data.chunks_exact_mut(3) {
        for c in 0..3 {
            px[c] = luts[c][px[c] as usize];
        }
    }
}

fn histograms(img: &RgbImage) -> [[u64; 256]; 3] {
    let mut h = [[0u64; 256]; 3];
    for px in img.data.chunks_exact(3) {
        for c in 0..3 {
            h[c][px[c] as usize] += 1;
        }
    }
    h
}

fn identity_lut() -> [u8; 256] {
    std::array::from_fn(|i| i as u8)
}

/// Pillow `ImageOps.autocontrast(img)`: stretch each channel's [min, max] to [0, 255].
pub fn autocontrast(img: &mut RgbImage) {
    let h = histograms(img);
    let luts = h.map(|h| {
        let lo = h.iter().position(|&n| n > 0);
        let hi = h.iter().rposition(|&n| n > 0);
        match (lo, hi) {
            (Some(lo), Some(hi)) if hi > lo => {
                let scale = 255.0 / (hi - lo) as f64;
                let offset = -(lo as f64) * scale;
                std::array::from_fn(|i| (i as f64 * scale + offset).clamp(0.0, 255.0) as u8)
            }
            _ => identity_lut(),
        }
    });
    apply_lut(img, &luts);
}

/// Pillow `ImageOps.equalize(img)`: per-channel histogram equalisation.
pub fn equalize(img: &mut RgbImage) {
    let h = histograms(img);
    let luts = h.map(|h| {
        let used: Vec<u64> = h.iter().copied().filter(|&n| n > 0).collect();
        if used.len() <= 1 {
            return identity_lut();
        }
        let step = (used.iter().sum::<u64>() - used[used.len() - 1]) / 255;
        if step == 0 {
            return identity_lut();
        }
        let mut n = step / 2;
        std::array::from_fn(|i| {
            let v = (n / step).min(255) as u8;
            n += h[i];
            v
        })
    });
    apply_lut(img, &luts);
}

/// Pillow `ImageOps.posterize(img, bits)`: keep the top `bits` bits (8 or more: unchanged).
pub fn posterize(img: &mut RgbImage, bits: i32) {
    if bits >= 8 {
        return;
    }
    let mask = !((1u32 << (8 - bits.max(0))) - 1) as u8;
    img.data.iter_mut().for_each(|v| *v &= mask);
}

/// Pillow `ImageOps.solarize(img, threshold)`: `x ≥ threshold → 255 − x`.
pub fn solarize_at(img: &mut RgbImage, threshold: i32) {
    for v in img.data.iter_mut() {
        if *v as i32 >= threshold {
            *v = 255 - *v;
        }
    }
}

/// timm `solarize_add`: `x < threshold → min(255, x + add)`.
pub fn solarize_add(img: &mut RgbImage, add: i32, threshold: i32) {
    for v in img.data.iter_mut() {
        if (*v as i32) < threshold {
            *v = (*v as i32 + add).clamp(0, 255) as u8;
        }
    }
}

/// Pillow `ImageEnhance.Sharpness`: blend with the `SMOOTH` filtered image (3×3 kernel
/// `[1 1 1; 1 5 1; 1 1 1] / 13`, border pixels kept).
pub fn adjust_sharpness(img: &mut RgbImage, f: f64) {
    let (w, h) = (img.width, img.height);
    if w < 3 || h < 3 {
        return; // Pillow's degenerate image is the image itself then.
    }
    let src = img.data.clone();
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            for c in 0..3 {
                let mut acc = 0u32;
                for dy in 0..3 {
                    for dx in 0..3 {
                        let k = if dy == 1 && dx == 1 { 5 } else { 1 };
                        acc += k * src[((y + dy - 1) * w + x + dx - 1) * 3 + c] as u32;
                    }
                }
                let smooth = (acc as f64 / 13.0 + 0.5).floor();
                let orig = src[(y * w + x) * 3 + c] as f64;
                let t = smooth + f * (orig - smooth);
                img.data[(y * w + x) * 3 + c] = t.clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// Pillow `Image.transform(size, AFFINE, (a, b, c, d, e, f), BILINEAR, fillcolor)`: output pixel
/// centre (x, y) samples the input at (a·x + b·y + c, d·x + e·y + f); outside → `fill`.
pub fn affine(img: &RgbImage, m: [f64; 6], fill: [u8; 3]) -> RgbImage {
    let (w, h) = (img.width, img.height);
    let mut out = RgbImage::zeros(w, h);
    for oy in 0..h {
        for ox in 0..w {
            let (xc, yc) = (ox as f64 + 0.5, oy as f64 + 0.5);
            let xi = m[0] * xc + m[1] * yc + m[2];
            let yi = m[3] * xc + m[4] * yc + m[5];
            let px = if xi < 0.0 || yi < 0.0 || xi >= w as f64 || yi >= h as f64 {
                fill
            } else {
                bilinear_at(img, xi - 0.5, yi - 0.5)
            };
            out.data[(oy * w + ox) * 3..][..3].copy_from_slice(&px);
        }
    }
    out
}

/// Bilinear sample at pixel coordinates (centres at integers), edge-clamped.
fn bilinear_at(img: &RgbImage, x: f64, y: f64) -> [u8; 3] {
    let (w, h) = (img.width as isize, img.height as isize);
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let at =
        |xx: isize, yy: isize| img.pixel(xx.clamp(0, w - 1) as usize, yy.clamp(0, h - 1) as usize);
    let (x0, y0) = (x0 as isize, y0 as isize);
    let (a, b, c, d) = (
        at(x0, y0),
        at(x0 + 1, y0),
        at(x0, y0 + 1),
        at(x0 + 1, y0 + 1),
    );
    std::array::from_fn(|k| {
        let top = a[k] as f64 + (b[k] as f64 - a[k] as f64) * fx;
        let bot = c[k] as f64 + (d[k] as f64 - c[k] as f64) * fx;
        (top + (bot - top) * fy + 0.5).floor().clamp(0.0, 255.0) as u8
    })
}

/// Pillow `Image.rotate(degrees, BILINEAR, fillcolor=fill)`: counter-clockwise about the centre,
/// same size.
pub fn rotate(img: &RgbImage, degrees: f64, fill: [u8; 3]) -> RgbImage {
    let a = -(degrees.rem_euclid(360.0)).to_radians();
    let (cx, cy) = (img.width as f64 / 2.0, img.height as f64 / 2.0);
    let (cos, sin) = (a.cos(), a.sin());
    // Inverse map: rotate the output coordinate about the centre by −angle.
    let m = [
        cos,
        sin,
        cos * -cx + sin * -cy + cx,
        -sin,
        cos,
        -sin * -cx + cos * -cy + cy,
    ];
    affine(img, m, fill)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn ramp(w: usize, h: usize) -> RgbImage {
        RgbImage::new(
            w,
            h,
            (0..w * h * 3).map(|i| (i * 7 % 200 + 20) as u8).collect(),
        )
        .unwrap()
    }

    #[test]
    fn parses_timm_policies() {
        let ra = RandAugment::parse("rand-m9-mstd0.5-inc1", [124, 116, 104]).unwrap();
        assert_eq!(
            (
                ra.num_ops,
                ra.magnitude,
                ra.magnitude_std,
                ra.increasing,
                ra.prob
            ),
            (2, 9.0, 0.5, true, 0.5)
        );
        let ra = RandAugment::parse("rand-n3-m7-mmax12-p0.8", [0; 3]).unwrap();
        assert_eq!(
            (ra.num_ops, ra.magnitude, ra.magnitude_max, ra.prob),
            (3, 7.0, 12.0, 0.8)
        );
        for bad in [
            "augmix-m9",
            "rand-q9",
            "rand-m",
            "rand-mx",
            "rand-w0",
            "rand-p2",
        ] {
            let e = RandAugment::parse(bad, [0; 3]).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn ops_at_known_levels() {
        let ra = RandAugment::parse("rand-m9-inc1", [1, 2, 3]).unwrap();
        let mut rng = ViewRng::seed_from_u64(0);
        let img = ramp(6, 5);
        // Increasing posterize at level 0.9: 4 − ⌊3.6⌋ = 1 bit kept.
        let p = ra.apply_op(Op::Posterize, img.clone(), 0.9, &mut rng);
        assert!(p.data.iter().all(|&v| v == 0 || v == 128));
        // Increasing solarize at level 0.9: threshold 256 − 230 = 26.
        let s = ra.apply_op(Op::Solarize, img.clone(), 0.9, &mut rng);
        for (a, b) in img.data.iter().zip(&s.data) {
            assert_eq!(*b, if *a >= 26 { 255 - a } else { *a });
        }
        // Translating by the whole width leaves only fill.
        let t = affine(&img, [1.0, 0.0, 6.0, 0.0, 1.0, 0.0], [1, 2, 3]);
        assert!(t.data.chunks_exact(3).all(|p| p == [1, 2, 3]));
        // Rotation by 0 and 360 degrees and a zero shear are the identity.
        assert_eq!(rotate(&img, 0.0, [0; 3]), img);
        assert_eq!(rotate(&img, 360.0, [0; 3]), img);
        assert_eq!(ra.apply_op(Op::ShearX, img.clone(), 0.0, &mut rng), img);
        // Invert twice is the identity.
        let i = ra.apply_op(Op::Invert, img.clone(), 0.5, &mut rng);
        assert_eq!(ra.apply_op(Op::Invert, i, 0.5, &mut rng), img);
    }

    #[test]
    fn apply_is_seeded_and_keeps_the_size() {
        let ra = RandAugment::parse("rand-m9-mstd0.5-inc1", [124, 116, 104]).unwrap();
        let img = ramp(16, 12);
        let a = ra.apply(&img, &mut ViewRng::seed_from_u64(3));
        assert_eq!((a.width, a.height), (16, 12));
        assert_eq!(a, ra.apply(&img, &mut ViewRng::seed_from_u64(3)));
        // Over many seeds some images change and some (both ops skipped, p = 0.25) do not.
        let changed = (0..64)
            .filter(|&s| ra.apply(&img, &mut ViewRng::seed_from_u64(s)) != img)
            .count();
        assert!((30..64).contains(&changed), "{changed}");
        let never = RandAugment { prob: 0.0, ..ra };
        assert_eq!(never.apply(&img, &mut ViewRng::seed_from_u64(1)), img);
    }
}
