//! Top-1 / top-5 evaluation of a network on a test set.

use std::sync::Arc;

use bossnas_datasets::ImageSource;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::RetrainError;
use crate::data::eval_loader;
use crate::model::RetrainNet;
use crate::recipe::Recipe;

/// Accuracy figures (percentages) and the mean cross-entropy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EvalResult {
    /// Images evaluated.
    pub images: usize,
    /// Top-1 accuracy (%).
    pub top1: f64,
    /// Top-5 accuracy (%); with fewer than 5 classes, top-`classes`.
    pub top5: f64,
    /// Mean cross-entropy.
    pub loss: f64,
}

/// Per-row rank of the label's logit (0 = the arg-max; ties count in the label's favour) and
/// the row's cross-entropy.
///
/// # Shapes
/// - `logits`: `[batch * classes]` row-major
pub fn label_ranks(logits: &[f32], classes: usize, labels: &[usize]) -> Vec<(usize, f64)> {
    labels
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            let row = &logits[i * classes..(i + 1) * classes];
            let target = row[l];
            let rank = row.iter().filter(|&&v| v > target).count();
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let lse = max
                + row
                    .iter()
                    .map(|&v| (v as f64 - max).exp())
                    .sum::<f64>()
                    .ln();
            (rank, lse - target as f64)
        })
        .collect()
}

/// Evaluates `model` (any device; it is switched to inference mode) on every image of `test`.
pub fn evaluate(
    model: &RetrainNet,
    test: Arc<dyn ImageSource>,
    recipe: &Recipe,
    device: &Device,
) -> Result<EvalResult, RetrainError> {
    let model = model.valid();
    let loader = eval_loader(test.clone(), recipe)?;
    let n = test.len();
    let bs = recipe.data.eval_batch_size;
    let (mut top1, mut top5, mut loss_sum) = (0usize, 0usize, 0f64);
    let mut seen = 0usize;
    for start in (0..n).step_by(bs) {
        let idx: Vec<usize> = (start..(start + bs).min(n)).collect();
        let batch = loader.load(&idx, 0, device)?;
        let x: Tensor<4> = batch.pairs[0].0.clone();
        let [_, _, h, w] = x.dims();
        let s = recipe.data.image_size;
        if (h, w) != (s, s) {
            return Err(RetrainError::Data(format!(
                "test images are {h}x{w} but data.image_size is {s} (the resize + centre-crop \
                 evaluation transform is not implemented)"
            )));
        }
        let logits = model.forward(x);
        let [_, classes] = logits.dims();
        if let Some(&bad) = batch.labels.iter().find(|&&l| l >= classes) {
            return Err(RetrainError::Data(format!(
                "label {bad} but the network has {classes} outputs"
            )));
        }
        let v: Vec<f32> = logits
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| RetrainError::Train(format!("{e:?}")))?;
        let k = classes.min(5);
        for (rank, ce) in label_ranks(&v, classes, &batch.labels) {
            top1 += usize::from(rank == 0);
            top5 += usize::from(rank < k);
            loss_sum += ce;
        }
        seen += batch.labels.len();
    }
    let pct = |c: usize| 100.0 * c as f64 / seen.max(1) as f64;
    Ok(EvalResult {
        images: seen,
        top1: pct(top1),
        top5: pct(top5),
        loss: loss_sum / seen.max(1) as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_and_cross_entropy_by_hand() {
        // Two rows of 6 classes.
        let logits = [
            0.0, 5.0, 1.0, 2.0, 3.0, 4.0, //
            9.0, 1.0, 2.0, 3.0, 4.0, 5.0,
        ];
        let r = label_ranks(&logits, 6, &[1, 1]);
        assert_eq!(r[0].0, 0);
        assert_eq!(r[1].0, 5);
        let lse0 = (0..6).map(|v| (v as f64).exp()).sum::<f64>().ln();
        assert!((r[0].1 - (lse0 - 5.0)).abs() < 1e-9);
    }

    #[test]
    fn evaluates_a_tiny_network() {
        let recipe = Recipe::preset("tiny").unwrap();
        let sources = crate::data::open_sources(crate::data::SYNTHETIC, &recipe).unwrap();
        let device = Device::flex();
        let arch = crate::arch::ArchSpec::parse("8:8:8:8:8").unwrap();
        let net = crate::model::build_model(&arch, 10, &recipe.model.clone().with_div(1), &device)
            .unwrap();
        let r = evaluate(&net, sources.test, &recipe, &device).unwrap();
        assert_eq!(r.images, 16);
        assert!(r.top1 <= r.top5 && r.top5 <= 100.0);
        // An untrained 10-way classifier: cross-entropy near ln 10.
        assert!(r.loss > 1.0 && r.loss < 5.0, "{}", r.loss);
    }

    trait WithDiv {
        fn with_div(self, d: usize) -> Self;
    }
    impl WithDiv for crate::recipe::ModelSection {
        fn with_div(mut self, d: usize) -> Self {
            self.hytra_width_divisor = d;
            self
        }
    }
}
