//! BYOL view augmentations (spec §4.6) on `u8` HWC images.
//!
//! Each op mirrors the torchvision-on-PIL transform the official config uses, including PIL's
//! rounding where that is cheap to match (8-bit results between ops, truncating blends, the
//! ITU-R 601 fixed-point grey). Known deviations, all immaterial for self-supervised views:
//! - resizing is plain bilinear with half-pixel centres and no antialias filter, where the
//!   official RandomResizedCrop uses PIL bicubic (antialiased when shrinking): cheaper, and
//!   `interpolation = "pil_bicubic"` selects Pillow's filter ([`Interpolation`]);
//! - Gaussian blur is an exact separable Gaussian (half-width ⌈3σ⌉, edge replicate), where PIL
//!   approximates one with three box blurs;
//! - hue is shifted in float HSV, where torchvision shifts PIL's 8-bit HSV.
//!
//! Every random draw comes from the caller's [`ViewRng`], so a view is a pure function of
//! (image, config, RNG seed) — the loader relies on that for thread-independent, resumable
//! batches.

use rand::Rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::rand_augment::RandAugment;
use crate::resample::{Filter, center_crop, resize_filtered, resize_shorter_side};
use crate::{DataError, RgbImage};

/// The RNG for augmentations: ChaCha8 is specified (portable, value-stable across platforms and
/// `rand` releases), unlike `StdRng`.
pub type ViewRng = rand_chacha::ChaCha8Rng;

fn uniform(rng: &mut ViewRng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

/// Always consumes one draw, so the draw sequence does not depend on `p`'s edge cases.
fn coin(rng: &mut ViewRng, p: f64) -> bool {
    rng.random::<f64>() < p
}

#[inline]
fn clip_trunc(t: f64) -> u8 {
    // PIL `ImagingBlend`: truncate toward zero, clip to [0, 255].
    if t <= 0.0 {
        0
    } else if t >= 255.0 {
        255
    } else {
        t as u8
    }
}

#[inline]
fn round_u8(t: f32) -> u8 {
    (t + 0.5).floor().clamp(0.0, 255.0) as u8
}

// ---------------------------------------------------------------- geometry

/// The `h × w` window at (`top`, `left`). Errors if it leaves the image.
pub fn crop(
    img: &RgbImage,
    top: usize,
    left: usize,
    h: usize,
    w: usize,
) -> Result<RgbImage, DataError> {
    if top + h > img.height || left + w > img.width || h == 0 || w == 0 {
        return Err(DataError::Config(format!(
            "crop {h}x{w} at ({top},{left}) outside {}x{} image",
            img.height, img.width
        )));
    }
    let mut data = Vec::with_capacity(h * w * 3);
    for y in top..top + h {
        let o = (y * img.width + left) * 3;
        data.extend_from_slice(&img.data[o..o + w * 3]);
    }
    Ok(RgbImage {
        width: w,
        height: h,
        data,
    })
}

/// Bilinear resize (half-pixel centres, edge clamp, no antialias), rounded to 8 bits.
pub fn resize_bilinear(img: &RgbImage, out_w: usize, out_h: usize) -> RgbImage {
    if (out_w, out_h) == (img.width, img.height) {
        return img.clone();
    }
    let taps = |o: usize, n_in: usize, n_out: usize| -> (usize, usize, f32) {
        let s = ((o as f32 + 0.5) * n_in as f32 / n_out as f32 - 0.5).max(0.0);
        let i0 = (s.floor() as usize).min(n_in - 1);
        let i1 = (i0 + 1).min(n_in - 1);
        (i0, i1, s - i0 as f32)
    };
    let xs: Vec<_> = (0..out_w).map(|x| taps(x, img.width, out_w)).collect();
    let mut out = RgbImage::zeros(out_w, out_h);
    for oy in 0..out_h {
        let (y0, y1, fy) = taps(oy, img.height, out_h);
        for (ox, &(x0, x1, fx)) in xs.iter().enumerate() {
            let (a, b) = (img.pixel(x0, y0), img.pixel(x1, y0));
            let (c, d) = (img.pixel(x0, y1), img.pixel(x1, y1));
            for k in 0..3 {
                let top = a[k] as f32 + (b[k] as f32 - a[k] as f32) * fx;
                let bot = c[k] as f32 + (d[k] as f32 - c[k] as f32) * fx;
                out.data[(oy * out_w + ox) * 3 + k] = round_u8(top + (bot - top) * fy);
            }
        }
    }
    out
}

/// torchvision `RandomResizedCrop.get_params`: up to 10 tries at an area fraction from `scale`
/// and a log-uniform aspect from `ratio`, else a centre crop clamped to `ratio`.
/// Returns (top, left, height, width).
pub fn random_resized_crop_params(
    height: usize,
    width: usize,
    scale: [f64; 2],
    ratio: [f64; 2],
    rng: &mut ViewRng,
) -> (usize, usize, usize, usize) {
    let area = (height * width) as f64;
    let (lr0, lr1) = (ratio[0].ln(), ratio[1].ln());
    for _ in 0..10 {
        let target = area * uniform(rng, scale[0], scale[1]);
        let aspect = uniform(rng, lr0, lr1).exp();
        let w = (target * aspect).sqrt().round() as usize;
        let h = (target / aspect).sqrt().round() as usize;
        if 0 < w && w <= width && 0 < h && h <= height {
            let top = rng.random_range(0..=height - h);
            let left = rng.random_range(0..=width - w);
            return (top, left, h, w);
        }
    }
    let in_ratio = width as f64 / height as f64;
    let (h, w) = if in_ratio < ratio[0] {
        (((width as f64) / ratio[0]).round() as usize, width)
    } else if in_ratio > ratio[1] {
        (height, ((height as f64) * ratio[1]).round() as usize)
    } else {
        (height, width)
    };
    let (h, w) = (h.clamp(1, height), w.clamp(1, width));
    ((height - h) / 2, (width - w) / 2, h, w)
}

/// Zero-pads by `pad` on every side, then takes the `size × size` window whose top-left corner
/// is (`top`, `left`) in padded coordinates (torchvision `RandomCrop(size, padding=pad)`, fill 0).
pub fn pad_crop_at(
    img: &RgbImage,
    pad: usize,
    top: usize,
    left: usize,
    size: usize,
) -> Result<RgbImage, DataError> {
    if top + size > img.height + 2 * pad || left + size > img.width + 2 * pad {
        return Err(DataError::Config(format!(
            "pad-crop {size}x{size} at ({top},{left}) outside the {}x{} image padded by {pad}",
            img.height, img.width
        )));
    }
    let mut out = RgbImage::zeros(size, size);
    for y in 0..size {
        let sy = (top + y) as isize - pad as isize;
        if sy < 0 || sy >= img.height as isize {
            continue;
        }
        for x in 0..size {
            let sx = (left + x) as isize - pad as isize;
            if sx >= 0 && sx < img.width as isize {
                let p = img.pixel(sx as usize, sy as usize);
                out.data[(y * size + x) * 3..][..3].copy_from_slice(&p);
            }
        }
    }
    Ok(out)
}

/// Left-right mirror, in place.
pub fn hflip(img: &mut RgbImage) {
    let w = img.width;
    for row in img.data.chunks_exact_mut(w * 3) {
        for x in 0..w / 2 {
            for k in 0..3 {
                row.swap(x * 3 + k, (w - 1 - x) * 3 + k);
            }
        }
    }
}

// ---------------------------------------------------------------- colour

/// PIL `convert("L")`: ITU-R 601-2 luma 0.299 R + 0.587 G + 0.114 B in 16-bit fixed point.
#[inline]
pub fn gray_value(p: [u8; 3]) -> u8 {
    ((p[0] as u32 * 19595 + p[1] as u32 * 38470 + p[2] as u32 * 7471 + 0x8000) >> 16) as u8
}

/// Grey with 3 equal channels (torchvision `RandomGrayscale` keeps 3 channels), in place.
pub fn grayscale(img: &mut RgbImage) {
    for px in img.data.chunks_exact_mut(3) {
        let g = gray_value([px[0], px[1], px[2]]);
        px.fill(g);
    }
}

/// PIL `ImageEnhance.Brightness`: blend with black, `x · f`.
pub fn adjust_brightness(img: &mut RgbImage, f: f64) {
    for v in img.data.iter_mut() {
        *v = clip_trunc(*v as f64 * f);
    }
}

/// PIL `ImageEnhance.Contrast`: blend with the image's rounded mean grey level.
pub fn adjust_contrast(img: &mut RgbImage, f: f64) {
    let n = (img.width * img.height).max(1) as f64;
    let sum: u64 = img
        .data
        .chunks_exact(3)
        .map(|p| gray_value([p[0], p[1], p[2]]) as u64)
        .sum();
    let mean = (sum as f64 / n + 0.5).floor();
    for v in img.data.iter_mut() {
        *v = clip_trunc(mean + f * (*v as f64 - mean));
    }
}

/// PIL `ImageEnhance.Color`: blend each pixel with its own grey level.
pub fn adjust_saturation(img: &mut RgbImage, f: f64) {
    for px in img.data.chunks_exact_mut(3) {
        let g = gray_value([px[0], px[1], px[2]]) as f64;
        for v in px.iter_mut() {
            *v = clip_trunc(g + f * (*v as f64 - g));
        }
    }
}

/// Rotates hue by `shift` turns (−0.5..0.5) in float HSV.
pub fn adjust_hue(img: &mut RgbImage, shift: f64) {
    for px in img.data.chunks_exact_mut(3) {
        let [r, g, b] = [px[0] as f32, px[1] as f32, px[2] as f32].map(|v| v / 255.0);
        let max = r.max(g).max(b);
        let min = r.min(g).min(b);
        let d = max - min;
        if d == 0.0 {
            continue; // grey: hue undefined, unchanged
        }
        let h = if max == r {
            ((g - b) / d).rem_euclid(6.0)
        } else if max == g {
            (b - r) / d + 2.0
        } else {
            (r - g) / d + 4.0
        } / 6.0;
        let (s, v) = (d / max, max);
        let h6 = (h + shift as f32).rem_euclid(1.0) * 6.0;
        let i = (h6.floor() as i32).rem_euclid(6);
        let f = h6 - h6.floor();
        let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
        let rgb = match i {
            0 => [v, t, p],
            1 => [q, v, p],
            2 => [p, v, t],
            3 => [p, q, v],
            4 => [t, p, v],
            _ => [v, p, q],
        };
        for k in 0..3 {
            px[k] = round_u8(rgb[k] * 255.0);
        }
    }
}

/// Separable Gaussian blur with standard deviation `sigma` pixels, edge replicate, in place.
pub fn gaussian_blur(img: &mut RgbImage, sigma: f64) {
    let r = (3.0 * sigma).ceil().max(1.0) as isize;
    let mut k: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp() as f32)
        .collect();
    let s: f32 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= s);
    let (w, h) = (img.width as isize, img.height as isize);
    let mut tmp = vec![0f32; img.data.len()];
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let mut acc = 0f32;
                for (j, kv) in k.iter().enumerate() {
                    let sx = (x + j as isize - r).clamp(0, w - 1);
                    acc += kv * img.data[((y * w + sx) * 3) as usize + c] as f32;
                }
                tmp[((y * w + x) * 3) as usize + c] = acc;
            }
        }
    }
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let mut acc = 0f32;
                for (j, kv) in k.iter().enumerate() {
                    let sy = (y + j as isize - r).clamp(0, h - 1);
                    acc += kv * tmp[((sy * w + x) * 3) as usize + c];
                }
                img.data[((y * w + x) * 3) as usize + c] = round_u8(acc);
            }
        }
    }
}

/// OpenSelfSup `Solarization(threshold=128)`: `x ≥ 128 → 255 − x`, in place.
pub fn solarize(img: &mut RgbImage) {
    for v in img.data.iter_mut() {
        if *v >= 128 {
            *v = 255 - *v;
        }
    }
}

/// `ToTensor` + `Normalize`: CHW `f32`, `(x / 255 − mean[c]) / std[c]`.
pub fn to_normalized_chw(img: &RgbImage, norm: &Normalize) -> Vec<f32> {
    let n = img.width * img.height;
    let mut out = vec![0f32; 3 * n];
    for (i, px) in img.data.chunks_exact(3).enumerate() {
        for c in 0..3 {
            out[c * n + i] = (px[c] as f32 / 255.0 - norm.mean[c]) / norm.std[c];
        }
    }
    out
}

// ---------------------------------------------------------------- configuration

/// How a random-resized crop is scaled to its output size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interpolation {
    /// [`resize_bilinear`]: 4 taps, no antialias filter (fast; the BYOL views' default).
    #[default]
    Bilinear,
    /// Pillow `BILINEAR` (antialiased when shrinking).
    PilBilinear,
    /// Pillow `BICUBIC` (antialiased when shrinking): torchvision/timm's bicubic crops.
    PilBicubic,
}

impl Interpolation {
    /// Resizes `img` to `w × h`.
    pub fn resize(self, img: &RgbImage, w: usize, h: usize) -> RgbImage {
        match self {
            Interpolation::Bilinear => resize_bilinear(img, w, h),
            Interpolation::PilBilinear => resize_filtered(img, w, h, Filter::Bilinear),
            Interpolation::PilBicubic => resize_filtered(img, w, h, Filter::Bicubic),
        }
    }
}

/// The geometric first step of a view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CropConfig {
    /// `RandomResizedCrop(size, scale, ratio, interpolation)` (ImageNet views).
    RandomResized {
        size: usize,
        scale: [f64; 2],
        ratio: [f64; 2],
        #[serde(default)]
        interpolation: Interpolation,
    },
    /// `RandomCrop(size, padding)` with zero fill (CIFAR views).
    PadCrop { size: usize, padding: usize },
    /// Keep the image as is (all images of a batch must then share a size).
    None,
    /// Evaluation: shorter side to `resize` (Pillow bicubic, antialiased), then the centred
    /// `size × size` window (torchvision `Resize(resize)` + `CenterCrop(size)`).
    ResizeCenterCrop { resize: usize, size: usize },
}

/// `RandomApply([ColorJitter(brightness, contrast, saturation, hue)], p)`. A zero strength
/// disables that adjustment, as in torchvision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColorJitter {
    pub p: f64,
    pub brightness: f64,
    pub contrast: f64,
    pub saturation: f64,
    pub hue: f64,
}

/// `RandomApply([GaussianBlur(σ ~ U(sigma))], p)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Blur {
    pub p: f64,
    pub sigma: [f64; 2],
}

/// Per-channel mean/std applied after scaling to [0, 1].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalize {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalize {
    pub const IMAGENET: Normalize = Normalize {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };
    /// The values in the official NATS/CIFAR config.
    pub const CIFAR: Normalize = Normalize {
        mean: [0.4914, 0.4822, 0.4465],
        std: [0.2023, 0.1994, 0.201],
    };
}

/// One view's augmentation pipeline, applied in the official order: crop, flip, RandAugment
/// (supervised recipes only), colour jitter, grayscale, blur, solarise, normalise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViewConfig {
    pub crop: CropConfig,
    pub hflip_p: f64,
    /// timm RandAugment after the flip (DeiT's training view); `None` in the BYOL views.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rand_augment: Option<RandAugment>,
    pub color_jitter: ColorJitter,
    pub grayscale_p: f64,
    pub blur: Blur,
    pub solarize_p: f64,
    pub normalize: Normalize,
}

impl ViewConfig {
    fn imagenet(size: usize, blur_p: f64, solarize_p: f64) -> Self {
        ViewConfig {
            crop: CropConfig::RandomResized {
                size,
                scale: [0.08, 1.0],
                ratio: [3.0 / 4.0, 4.0 / 3.0],
                interpolation: Interpolation::Bilinear,
            },
            hflip_p: 0.5,
            rand_augment: None,
            color_jitter: ColorJitter {
                p: 0.8,
                brightness: 0.4,
                contrast: 0.4,
                saturation: 0.2,
                hue: 0.1,
            },
            grayscale_p: 0.2,
            blur: Blur {
                p: blur_p,
                sigma: [0.1, 2.0],
            },
            solarize_p,
            normalize: Normalize::IMAGENET,
        }
    }

    /// Official BossNAS `pipeline1` (HyTra/MBConv): blur p 0.1, no solarisation. Note this is
    /// swapped relative to BYOL's paper (spec §9). `size` is 224 in the paper.
    pub fn imagenet_view1(size: usize) -> Self {
        Self::imagenet(size, 0.1, 0.0)
    }

    /// Official BossNAS `pipeline2`: blur p 1.0, solarisation p 0.2.
    pub fn imagenet_view2(size: usize) -> Self {
        Self::imagenet(size, 1.0, 0.2)
    }

    /// NATS/CIFAR views (both the same): pad-4 random 32×32 crop, flip, CIFAR normalisation.
    pub fn cifar() -> Self {
        Self::plain(
            CropConfig::PadCrop {
                size: 32,
                padding: 4,
            },
            0.5,
            Normalize::CIFAR,
        )
    }

    /// Crop, flip and normalisation only: no colour jitter, grayscale, blur or solarisation
    /// (supervised training and evaluation views).
    pub fn plain(crop: CropConfig, hflip_p: f64, normalize: Normalize) -> Self {
        ViewConfig {
            crop,
            hflip_p,
            rand_augment: None,
            color_jitter: ColorJitter {
                p: 0.0,
                brightness: 0.0,
                contrast: 0.0,
                saturation: 0.0,
                hue: 0.0,
            },
            grayscale_p: 0.0,
            blur: Blur {
                p: 0.0,
                sigma: [0.1, 2.0],
            },
            solarize_p: 0.0,
            normalize,
        }
    }

    /// Rejects out-of-range probabilities, sizes and strengths before a run starts.
    pub fn validate(&self) -> Result<(), DataError> {
        let bad = |m: String| Err(DataError::Config(m));
        let probs = [
            ("hflip_p", self.hflip_p),
            ("color_jitter.p", self.color_jitter.p),
            ("grayscale_p", self.grayscale_p),
            ("blur.p", self.blur.p),
            ("solarize_p", self.solarize_p),
        ];
        for (name, p) in probs {
            if !(0.0..=1.0).contains(&p) {
                return bad(format!("{name} = {p} is not a probability"));
            }
        }
        let crop_ok = match &self.crop {
            CropConfig::RandomResized {
                size, scale, ratio, ..
            } => {
                *size > 0
                    && scale[0] > 0.0
                    && scale[0] <= scale[1]
                    && scale[1] <= 1.0
                    && ratio[0] > 0.0
                    && ratio[0] <= ratio[1]
            }
            CropConfig::PadCrop { size, .. } => *size > 0,
            CropConfig::None => true,
            CropConfig::ResizeCenterCrop { resize, size } => *size > 0 && resize >= size,
        };
        if !crop_ok {
            return bad(format!("bad crop {:?}", self.crop));
        }
        let cj = &self.color_jitter;
        if cj.brightness < 0.0 || cj.contrast < 0.0 || cj.saturation < 0.0 {
            return bad(format!("negative colour-jitter strength {cj:?}"));
        }
        if !(0.0..=0.5).contains(&cj.hue) {
            return bad(format!("hue strength {} not in [0, 0.5]", cj.hue));
        }
        let [s0, s1] = self.blur.sigma;
        if s0.is_nan() || s1.is_nan() || s0 <= 0.0 || s0 > s1 {
            return bad(format!("bad blur sigma range {:?}", self.blur.sigma));
        }
        if !self.normalize.std.iter().all(|s| *s > 0.0) {
            return bad(format!("non-positive std {:?}", self.normalize.std));
        }
        if let Some(ra) = &self.rand_augment {
            ra.validate()?;
        }
        Ok(())
    }

    /// Runs every step except normalisation, returning the augmented 8-bit image.
    pub fn augment(&self, img: &RgbImage, rng: &mut ViewRng) -> Result<RgbImage, DataError> {
        let mut out = match &self.crop {
            CropConfig::RandomResized {
                size,
                scale,
                ratio,
                interpolation,
            } => {
                let (t, l, h, w) =
                    random_resized_crop_params(img.height, img.width, *scale, *ratio, rng);
                interpolation.resize(&crop(img, t, l, h, w)?, *size, *size)
            }
            CropConfig::PadCrop { size, padding } => {
                let (hp, wp) = (img.height + 2 * padding, img.width + 2 * padding);
                if hp < *size || wp < *size {
                    return Err(DataError::Config(format!(
                        "{}x{} image padded by {padding} is smaller than crop {size}",
                        img.height, img.width
                    )));
                }
                let top = rng.random_range(0..=hp - size);
                let left = rng.random_range(0..=wp - size);
                pad_crop_at(img, *padding, top, left, *size)?
            }
            CropConfig::None => img.clone(),
            CropConfig::ResizeCenterCrop { resize, size } => {
                center_crop(&resize_shorter_side(img, *resize, Filter::Bicubic), *size)?
            }
        };
        if coin(rng, self.hflip_p) {
            hflip(&mut out);
        }
        if let Some(ra) = &self.rand_augment {
            out = ra.apply(&out, rng);
        }
        if coin(rng, self.color_jitter.p) {
            let cj = &self.color_jitter;
            let mut order = [0usize, 1, 2, 3];
            order.shuffle(rng);
            let fb = uniform(rng, (1.0 - cj.brightness).max(0.0), 1.0 + cj.brightness);
            let fc = uniform(rng, (1.0 - cj.contrast).max(0.0), 1.0 + cj.contrast);
            let fs = uniform(rng, (1.0 - cj.saturation).max(0.0), 1.0 + cj.saturation);
            let fh = uniform(rng, -cj.hue, cj.hue);
            for op in order {
                match op {
                    0 if cj.brightness > 0.0 => adjust_brightness(&mut out, fb),
                    1 if cj.contrast > 0.0 => adjust_contrast(&mut out, fc),
                    2 if cj.saturation > 0.0 => adjust_saturation(&mut out, fs),
                    3 if cj.hue > 0.0 => adjust_hue(&mut out, fh),
                    _ => {}
                }
            }
        }
        if coin(rng, self.grayscale_p) {
            grayscale(&mut out);
        }
        if coin(rng, self.blur.p) {
            let sigma = uniform(rng, self.blur.sigma[0], self.blur.sigma[1]);
            gaussian_blur(&mut out, sigma);
        }
        if coin(rng, self.solarize_p) {
            solarize(&mut out);
        }
        Ok(out)
    }

    /// The full view: augmented, normalised CHW `f32` data with its (height, width).
    pub fn view(
        &self,
        img: &RgbImage,
        rng: &mut ViewRng,
    ) -> Result<(Vec<f32>, usize, usize), DataError> {
        let out = self.augment(img, rng)?;
        Ok((
            to_normalized_chw(&out, &self.normalize),
            out.height,
            out.width,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn img(w: usize, h: usize, px: &[[u8; 3]]) -> RgbImage {
        RgbImage::new(w, h, px.iter().flatten().copied().collect()).unwrap()
    }

    fn rng(seed: u64) -> ViewRng {
        ViewRng::seed_from_u64(seed)
    }

    #[test]
    fn solarize_threshold_128() {
        let mut i = img(2, 1, &[[0, 127, 128], [200, 255, 1]]);
        solarize(&mut i);
        assert_eq!(i.data, [0, 127, 127, 55, 0, 1]);
    }

    #[test]
    fn grayscale_uses_pil_601_weights() {
        assert_eq!(gray_value([255, 0, 0]), 76); // 0.299 * 255 = 76.2
        assert_eq!(gray_value([0, 255, 0]), 150); // 0.587 * 255 = 149.7
        assert_eq!(gray_value([0, 0, 255]), 29); // 0.114 * 255 = 29.1
        assert_eq!(gray_value([255, 255, 255]), 255);
        assert_eq!(gray_value([10, 20, 30]), 18); // 2.99 + 11.74 + 3.42 = 18.15
        let mut i = img(1, 1, &[[10, 20, 30]]);
        grayscale(&mut i);
        assert_eq!(i.data, [18, 18, 18]);
    }

    #[test]
    fn hflip_mirrors_rows() {
        let mut i = img(3, 2, &[[1; 3], [2; 3], [3; 3], [4; 3], [5; 3], [6; 3]]);
        hflip(&mut i);
        assert_eq!(
            i.data.iter().step_by(3).copied().collect::<Vec<_>>(),
            [3, 2, 1, 6, 5, 4]
        );
    }

    #[test]
    fn pad_crop_position() {
        let i = img(2, 2, &[[1; 3], [2; 3], [3; 3], [4; 3]]);
        let first = |o: &RgbImage| o.data.iter().step_by(3).copied().collect::<Vec<_>>();
        // Top-left of the padded 4x4: one zero row/column, then pixel (0,0).
        assert_eq!(first(&pad_crop_at(&i, 1, 0, 0, 2).unwrap()), [0, 0, 0, 1]);
        assert_eq!(first(&pad_crop_at(&i, 1, 1, 1, 2).unwrap()), [1, 2, 3, 4]);
        assert_eq!(first(&pad_crop_at(&i, 1, 2, 1, 2).unwrap()), [3, 4, 0, 0]);
        assert!(pad_crop_at(&i, 1, 3, 0, 2).is_err());
        // Random CIFAR crop keeps the size, and with padding 0 it is the identity.
        let cfg = ViewConfig {
            crop: CropConfig::PadCrop {
                size: 2,
                padding: 0,
            },
            hflip_p: 0.0,
            ..ViewConfig::cifar()
        };
        assert_eq!(cfg.augment(&i, &mut rng(3)).unwrap(), i);
    }

    #[test]
    fn normalisation_is_chw() {
        let i = img(2, 1, &[[255, 0, 51], [0, 255, 102]]);
        let n = Normalize {
            mean: [0.5, 0.0, 0.2],
            std: [0.25, 1.0, 0.1],
        };
        let v = to_normalized_chw(&i, &n);
        let expect = [2.0, -2.0, 0.0, 1.0, 0.0, 2.0];
        for (a, b) in v.iter().zip(expect) {
            assert!((a - b).abs() < 1e-5, "{v:?}");
        }
    }

    #[test]
    fn colour_adjustments() {
        let mut i = img(2, 1, &[[100, 200, 0], [10, 20, 30]]);
        adjust_brightness(&mut i, 1.5);
        assert_eq!(i.data, [150, 255, 0, 15, 30, 45]);
        // Saturation 0 → each pixel's own grey; contrast 0 → the mean grey everywhere.
        let base = img(2, 1, &[[255, 0, 0], [0, 0, 255]]);
        let mut s = base.clone();
        adjust_saturation(&mut s, 0.0);
        assert_eq!(s.data, [76, 76, 76, 29, 29, 29]);
        let mut c = base.clone();
        adjust_contrast(&mut c, 0.0);
        assert_eq!(c.data, [53; 6]); // (76 + 29) / 2 = 52.5 → 53
        // Contrast 2 around 53: 255 → 457 clipped, 0 → −53 clipped.
        let mut c2 = base.clone();
        adjust_contrast(&mut c2, 2.0);
        assert_eq!(c2.data, [255, 0, 0, 0, 0, 255]);
        // Hue: 0 is identity, half a turn maps red to cyan.
        let mut h = img(2, 1, &[[255, 0, 0], [12, 200, 77]]);
        let orig = h.clone();
        adjust_hue(&mut h, 0.0);
        assert_eq!(h, orig);
        adjust_hue(&mut h, 0.5);
        assert_eq!(h.pixel(0, 0), [0, 255, 255]);
        adjust_hue(&mut h, -0.5);
        assert_eq!(h, orig);
    }

    #[test]
    fn blur_preserves_constants_and_mass() {
        let mut c = RgbImage::new(5, 4, vec![77; 60]).unwrap();
        gaussian_blur(&mut c, 1.3);
        assert!(c.data.iter().all(|&v| v == 77));
        let mut d = RgbImage::zeros(9, 9);
        d.data[(4 * 9 + 4) * 3] = 255;
        gaussian_blur(&mut d, 0.5);
        let red: Vec<u8> = d.data.iter().step_by(3).copied().collect();
        // Symmetric, peaked at the centre, and spread to the 4-neighbours.
        assert_eq!(red[4 * 9 + 3], red[4 * 9 + 5]);
        assert_eq!(red[3 * 9 + 4], red[4 * 9 + 3]);
        assert!(red[4 * 9 + 4] > red[4 * 9 + 3] && red[4 * 9 + 3] > 0);
        let sum: u32 = red.iter().map(|&v| v as u32).sum();
        assert!((250..=260).contains(&sum), "{sum}");
    }

    #[test]
    fn bilinear_half_pixel() {
        let i = img(2, 1, &[[0; 3], [255; 3]]);
        let r = resize_bilinear(&i, 4, 1);
        // Source x = -0.25→0, 0.25, 0.75, 1.25→1 → 0, 63.75, 191.25, 255.
        assert_eq!(
            r.data.iter().step_by(3).copied().collect::<Vec<_>>(),
            [0, 64, 191, 255]
        );
    }

    #[test]
    fn random_resized_crop_params_bounds() {
        assert_eq!(
            random_resized_crop_params(6, 6, [1.0, 1.0], [1.0, 1.0], &mut rng(0)),
            (0, 0, 6, 6)
        );
        let mut r = rng(1);
        for _ in 0..200 {
            let (t, l, h, w) =
                random_resized_crop_params(20, 30, [0.08, 1.0], [0.75, 4.0 / 3.0], &mut r);
            assert!(h > 0 && w > 0 && t + h <= 20 && l + w <= 30);
        }
        // Impossible ratios fall back to a centred crop clamped to the ratio range.
        assert_eq!(
            random_resized_crop_params(10, 40, [2.0, 2.0], [1.0, 2.0], &mut rng(0)),
            (0, 10, 10, 20)
        );
    }

    #[test]
    fn presets_views_and_serde() {
        let v1 = ViewConfig::imagenet_view1(16);
        let v2 = ViewConfig::imagenet_view2(16);
        assert_eq!((v1.blur.p, v1.solarize_p), (0.1, 0.0));
        assert_eq!((v2.blur.p, v2.solarize_p), (1.0, 0.2));
        for c in [&v1, &v2, &ViewConfig::cifar()] {
            c.validate().unwrap();
            let json = serde_json::to_string(c).unwrap();
            assert_eq!(&serde_json::from_str::<ViewConfig>(&json).unwrap(), c);
        }
        let bad = ViewConfig {
            solarize_p: 1.5,
            ..ViewConfig::cifar()
        };
        assert!(bad.validate().is_err());

        let src = RgbImage::new(
            24,
            20,
            (0..24 * 20 * 3).map(|i| (i * 37 % 256) as u8).collect(),
        )
        .unwrap();
        let (a, h, w) = v2.view(&src, &mut rng(5)).unwrap();
        assert_eq!((a.len(), h, w), (3 * 16 * 16, 16, 16));
        assert!(a.iter().all(|v| v.is_finite()));
        // Same seed, same view; another seed, another view.
        assert_eq!(v2.view(&src, &mut rng(5)).unwrap().0, a);
        assert_ne!(v2.view(&src, &mut rng(6)).unwrap().0, a);
    }
}
