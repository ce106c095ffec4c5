//! Antialiased resizing as Pillow does it (`Image.resize` with a reconstruction filter whose
//! support widens by the scale factor when shrinking), and the evaluation transform built on it
//! (torchvision `Resize(shorter side)` + `CenterCrop`).
//!
//! Pillow resamples in two separable passes (horizontal, then vertical) with normalised filter
//! weights and 8-bit results between the passes; we do the same in `f32`, so results match
//! Pillow to ±1 grey level (Pillow accumulates in fixed point). Tested against Pillow 13 in
//! `tests/pil_golden.rs`.

use crate::{DataError, RgbImage};

/// Reconstruction filter of [`resize_filtered`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Triangle, support 1 (Pillow `BILINEAR`).
    Bilinear,
    /// Keys cubic with a = −0.5, support 2 (Pillow `BICUBIC`, timm/DeiT's evaluation resize).
    Bicubic,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Bilinear => 1.0,
            Filter::Bicubic => 2.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Filter::Bilinear => (1.0 - x).max(0.0),
            Filter::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// Per output index: the first input index and the normalised weights from there on.
fn coefficients(n_in: usize, n_out: usize, filter: Filter) -> Vec<(usize, Vec<f32>)> {
    let scale = n_in as f64 / n_out as f64;
    let filter_scale = scale.max(1.0);
    let support = filter.support() * filter_scale;
    (0..n_out)
        .map(|o| {
            let centre = (o as f64 + 0.5) * scale;
            // Pillow truncates toward zero here (C `int` casts).
            let lo = ((centre - support + 0.5).max(0.0)) as usize;
            let hi = ((centre + support + 0.5) as usize).min(n_in);
            let mut w: Vec<f64> = (lo..hi)
                .map(|i| filter.weight((i as f64 - centre + 0.5) / filter_scale))
                .collect();
            let total: f64 = w.iter().sum();
            if total != 0.0 {
                w.iter_mut().for_each(|v| *v /= total);
            }
            (lo, w.into_iter().map(|v| v as f32).collect())
        })
        .collect()
}

#[inline]
fn round_clip(v: f32) -> u8 {
    (v + 0.5).floor().clamp(0.0, 255.0) as u8
}

/// Resizes to `out_w × out_h` with `filter`, antialiased when shrinking (Pillow `Image.resize`).
pub fn resize_filtered(img: &RgbImage, out_w: usize, out_h: usize, filter: Filter) -> RgbImage {
    let mut cur = img.clone();
    if out_w != img.width {
        let coef = coefficients(img.width, out_w, filter);
        let mut out = RgbImage::zeros(out_w, cur.height);
        for y in 0..cur.height {
            let row = &cur.data[y * cur.width * 3..(y + 1) * cur.width * 3];
            for (x, (lo, w)) in coef.iter().enumerate() {
                let mut acc = [0f32; 3];
                for (k, wk) in w.iter().enumerate() {
                    let p = &row[(lo + k) * 3..(lo + k) * 3 + 3];
                    for c in 0..3 {
                        acc[c] += wk * p[c] as f32;
                    }
                }
                let o = (y * out_w + x) * 3;
                for (dst, a) in out.data[o..o + 3].iter_mut().zip(acc) {
                    *dst = round_clip(a);
                }
            }
        }
        cur = out;
    }
    if out_h != img.height {
        let coef = coefficients(img.height, out_h, filter);
        let w_px = cur.width;
        let mut out = RgbImage::zeros(w_px, out_h);
        for (y, (lo, w)) in coef.iter().enumerate() {
            for x in 0..w_px * 3 {
                let acc: f32 = w
                    .iter()
                    .enumerate()
                    .map(|(k, wk)| wk * cur.data[(lo + k) * w_px * 3 + x] as f32)
                    .sum();
                out.data[y * w_px * 3 + x] = round_clip(acc);
            }
        }
        cur = out;
    }
    cur
}

/// torchvision `Resize(size)` with an integer size: the shorter side becomes `size`, the longer
/// `⌊size · long / short⌋`.
pub fn resize_shorter_side(img: &RgbImage, size: usize, filter: Filter) -> RgbImage {
    let (w, h) = (img.width, img.height);
    if w.min(h) == size {
        return img.clone();
    }
    let (ow, oh) = if w <= h {
        (size, size * h / w)
    } else {
        (size * w / h, size)
    };
    resize_filtered(img, ow, oh, filter)
}

/// torchvision `CenterCrop(size)` on an image at least `size` on each side: the offsets are
/// `round((side − size) / 2)` (Python's round half to even).
pub fn center_crop(img: &RgbImage, size: usize) -> Result<RgbImage, DataError> {
    if img.width < size || img.height < size {
        return Err(DataError::Config(format!(
            "centre crop {size}x{size} of a {}x{} image",
            img.height, img.width
        )));
    }
    let off = |side: usize| ((side - size) as f64 / 2.0).round_ties_even() as usize;
    crate::augment::crop(img, off(img.height), off(img.width), size, size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_normalised_and_span_the_scaled_support() {
        for (n_in, n_out) in [(10, 4), (4, 10), (256, 224), (7, 7)] {
            for f in [Filter::Bilinear, Filter::Bicubic] {
                for (lo, w) in coefficients(n_in, n_out, f) {
                    let s: f32 = w.iter().sum();
                    assert!((s - 1.0).abs() < 1e-5, "{n_in}->{n_out} {f:?}: {s}");
                    assert!(lo + w.len() <= n_in);
                }
            }
        }
        // Shrinking 10 → 4 with a triangle widens its support to 2.5 input pixels per side.
        let c = coefficients(10, 4, Filter::Bilinear);
        assert_eq!(c[1].1.len(), 5);
    }

    #[test]
    fn constant_images_stay_constant_and_identity_is_exact() {
        let flat = RgbImage::new(9, 5, vec![93; 9 * 5 * 3]).unwrap();
        for f in [Filter::Bilinear, Filter::Bicubic] {
            let r = resize_filtered(&flat, 4, 7, f);
            assert_eq!((r.width, r.height), (4, 7));
            assert!(r.data.iter().all(|&v| v == 93));
        }
        let img = RgbImage::new(3, 2, (0..18).map(|i| i * 13).collect()).unwrap();
        assert_eq!(resize_filtered(&img, 3, 2, Filter::Bicubic), img);
    }

    #[test]
    fn shorter_side_and_centre_crop_geometry() {
        let img = RgbImage::zeros(40, 30);
        let r = resize_shorter_side(&img, 12, Filter::Bicubic);
        assert_eq!((r.width, r.height), (16, 12));
        let tall = resize_shorter_side(&RgbImage::zeros(30, 41), 12, Filter::Bicubic);
        assert_eq!((tall.width, tall.height), (12, 16)); // ⌊12 · 41 / 30⌋ = 16
        let src = RgbImage::new(5, 4, (0..60).map(|i| i as u8).collect()).unwrap();
        let c = center_crop(&src, 2).unwrap();
        // Offsets round((4 − 2) / 2) = 1 and round((5 − 2) / 2) = round(1.5) = 2.
        assert_eq!(c.pixel(0, 0), src.pixel(2, 1));
        assert!(center_crop(&src, 5).is_err());
    }
}
