//! Mixup / CutMix with label smoothing (timm `Mixup`, `mode='batch'`, `correct_lam=True`) and
//! the soft-target cross-entropy.
//!
//! Pairs are formed with the batch reversed (`x.flip(0)`), as in timm.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};
use rand::Rng;

use crate::augment::beta;
use crate::recipe::RegularizationSection;

/// What was applied to a batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MixKind {
    /// Nothing.
    None,
    /// Mixup with weight `lam` on the original images.
    Mixup(f64),
    /// CutMix of box `(top, left, h, w)`; `lam` is the kept area fraction.
    Cutmix(f64, [usize; 4]),
}

impl MixKind {
    /// The weight of the original labels.
    pub fn lam(&self) -> f64 {
        match self {
            MixKind::None => 1.0,
            MixKind::Mixup(l) | MixKind::Cutmix(l, _) => *l,
        }
    }
}

/// Smoothed one-hot targets: `1 − ε + ε/K` on the label, `ε/K` elsewhere.
///
/// # Shapes
/// - output: `[labels.len(), num_classes]`
pub fn smooth_one_hot(labels: &[usize], num_classes: usize, smoothing: f64) -> Vec<f32> {
    let off = smoothing / num_classes as f64;
    let on = 1.0 - smoothing + off;
    let mut t = vec![off as f32; labels.len() * num_classes];
    for (i, &l) in labels.iter().enumerate() {
        t[i * num_classes + l] = on as f32;
    }
    t
}

/// Draws the batch's mixing (timm's `_params_per_batch`).
pub fn draw(reg: &RegularizationSection, h: usize, w: usize, rng: &mut impl Rng) -> MixKind {
    let (mix, cut) = (reg.mixup_alpha > 0.0, reg.cutmix_alpha > 0.0);
    if !(mix || cut) || rng.random::<f64>() >= reg.mix_prob {
        return MixKind::None;
    }
    let use_cutmix = if mix && cut {
        rng.random::<f64>() < reg.mix_switch_prob
    } else {
        cut
    };
    if use_cutmix {
        let lam = beta(rng, reg.cutmix_alpha);
        let ratio = (1.0 - lam).sqrt();
        let (ch, cw) = ((h as f64 * ratio) as usize, (w as f64 * ratio) as usize);
        let cy = rng.random_range(0..h);
        let cx = rng.random_range(0..w);
        let (y0, y1) = (cy.saturating_sub(ch / 2), (cy + ch / 2).min(h));
        let (x0, x1) = (cx.saturating_sub(cw / 2), (cx + cw / 2).min(w));
        let area = ((y1 - y0) * (x1 - x0)) as f64;
        MixKind::Cutmix(1.0 - area / (h * w) as f64, [y0, x0, y1 - y0, x1 - x0])
    } else {
        MixKind::Mixup(beta(rng, reg.mixup_alpha))
    }
}

/// Applies `kind` to the images and returns them with the (smoothed, mixed) soft targets.
///
/// # Shapes
/// - `images`: `[batch, C, H, W]` → same shape
/// - targets: `[batch, num_classes]`
pub fn apply(
    images: Tensor<4>,
    labels: &[usize],
    num_classes: usize,
    smoothing: f64,
    kind: MixKind,
) -> (Tensor<4>, Tensor<2>) {
    let device = images.device();
    let [b, _, h, w] = images.dims();
    let t = smooth_one_hot(labels, num_classes, smoothing);
    let targets = Tensor::<2>::from_data(TensorData::new(t, [b, num_classes]), &device);
    let lam = kind.lam();
    if matches!(kind, MixKind::None) {
        return (images, targets);
    }
    let targets = targets.clone().mul_scalar(lam) + targets.flip([0]).mul_scalar(1.0 - lam);
    let flipped = images.clone().flip([0]);
    let images = match kind {
        MixKind::Mixup(l) => images.mul_scalar(l) + flipped.mul_scalar(1.0 - l),
        MixKind::Cutmix(_, [top, left, bh, bw]) => {
            let mut m = vec![0f32; h * w];
            for y in top..top + bh {
                for x in left..left + bw {
                    m[y * w + x] = 1.0;
                }
            }
            let mask = Tensor::<4>::from_data(TensorData::new(m, [1, 1, h, w]), &device);
            let keep = mask.clone().neg().add_scalar(1.0);
            images * keep + flipped * mask
        }
        MixKind::None => unreachable!("handled above"),
    };
    (images, targets)
}

/// Mean soft-target cross-entropy `−Σ_k t_k log softmax(z)_k`.
///
/// # Shapes
/// - `logits`, `targets`: `[batch, classes]` → scalar `[1]`
pub fn soft_cross_entropy(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    (log_softmax(logits, 1) * targets).sum_dim(1).mean().neg()
}

/// Labels as an int tensor (for metrics).
pub fn label_tensor(labels: &[usize], device: &burn::tensor::Device) -> Tensor<1, Int> {
    let v: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    Tensor::<1, Int>::from_data(TensorData::new(v, [labels.len()]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::step_rng;
    use crate::recipe::Recipe;
    use burn::tensor::Device;

    #[test]
    fn smoothing_and_plain_cross_entropy_agree_with_hand_values() {
        let t = smooth_one_hot(&[1, 0], 4, 0.1);
        assert_eq!(t[0], 0.025);
        assert!((t[1] - 0.925).abs() < 1e-7);
        assert!((t.iter().sum::<f32>() - 2.0).abs() < 1e-6);
        let device = Device::flex();
        let logits =
            Tensor::<2>::from_data(TensorData::new(vec![0f32, 0.0, 1.0, 2.0], [2, 2]), &device);
        let targets =
            Tensor::<2>::from_data(TensorData::new(vec![1f32, 0.0, 0.0, 1.0], [2, 2]), &device);
        let loss: f32 = soft_cross_entropy(logits, targets).into_scalar();
        // (ln 2 + ln(1 + e^-1)) / 2
        let want = (2f32.ln() + (1.0 + (-1f32).exp()).ln()) / 2.0;
        assert!((loss - want).abs() < 1e-6, "{loss} {want}");
    }

    #[test]
    fn mixup_and_cutmix_mix_images_and_targets_consistently() {
        let device = Device::flex();
        let mut imgs = vec![0f32; 2 * 8 * 8];
        imgs[64..].iter_mut().for_each(|v| *v = 1.0);
        let x = Tensor::<4>::from_data(TensorData::new(imgs, [2, 1, 8, 8]), &device);
        let (mx, mt) = apply(x.clone(), &[0, 1], 2, 0.0, MixKind::Mixup(0.7));
        let v: Vec<f32> = mx.into_data().try_to_vec::<f32>().unwrap();
        assert!((v[0] - 0.3).abs() < 1e-6 && (v[64] - 0.7).abs() < 1e-6);
        let t: Vec<f32> = mt.into_data().try_to_vec::<f32>().unwrap();
        assert!((t[0] - 0.7).abs() < 1e-6 && (t[1] - 0.3).abs() < 1e-6);

        let mut reg = Recipe::preset("deit").unwrap().regularization;
        reg.mixup_alpha = 0.0;
        let kind = draw(&reg, 8, 8, &mut step_rng(0, 1, 2));
        let MixKind::Cutmix(lam, [_, _, bh, bw]) = kind else {
            panic!("cutmix only: {kind:?}")
        };
        assert!((lam - (1.0 - (bh * bw) as f64 / 64.0)).abs() < 1e-12);
        let (cx, ct) = apply(x, &[0, 1], 2, 0.0, kind);
        let v: Vec<f32> = cx.into_data().try_to_vec::<f32>().unwrap();
        let pasted = v[..64].iter().filter(|&&p| p == 1.0).count();
        assert_eq!(pasted, bh * bw);
        let t: Vec<f32> = ct.into_data().try_to_vec::<f32>().unwrap();
        assert!((t[0] as f64 - lam).abs() < 1e-6);
    }
}
