//! The ensemble-bootstrapping loss (spec §4.1).
//!
//! ```text
//! norm(x)   = x / max(‖x‖₂, 1e-12)                          (per row)
//! T_v       = (1/|P|) Σ_q norm(proj_T(q, v_q))                (target ensemble, no grad)
//! head(z,t) = −2 · mean_batch ⟨norm(pred(z)), norm(t)⟩        (t re-normalised!)
//! L_p       = head(z1_p, T2) + head(z2_p, T1)
//! total     = Σ_p L_p            (what is back-propagated; sum, not mean)
//! logged    = mean_p L_p ∈ [−4, 4]
//! ```
//!
//! All functions take and return tensors so the trainer decides when to sync to the host.

use crate::heads::Predictor;
use burn::tensor::Tensor;

/// `F.normalize` epsilon.
pub const NORM_EPS: f64 = 1e-12;

/// Row-wise L2 normalisation `x / max(‖x‖, 1e-12)`.
///
/// # Shapes
/// - input/output: `[batch, dim]`
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let n = x
        .clone()
        .powi_scalar(2)
        .sum_dim(1)
        .sqrt()
        .clamp_min(NORM_EPS);
    x / n
}

/// Target ensemble: mean over paths of the L2-normalised target projections, detached.
///
/// # Shapes
/// - each input: `[batch, dim]` (one per sampled path)
/// - output: `[batch, dim]`
///
/// # Panics
/// If `projections` is empty.
pub fn target_ensemble(projections: Vec<Tensor<2>>) -> Tensor<2> {
    assert!(!projections.is_empty(), "target ensemble over zero paths");
    let p = projections.len() as f64;
    let sum = projections
        .into_iter()
        .map(|t| l2_normalize(t.detach()))
        .reduce(|a, b| a + b)
        .expect("non-empty");
    sum.div_scalar(p).detach()
}

/// BYOL regression head on already-predicted embeddings: `−2·mean_b⟨norm(p), norm(t)⟩`.
///
/// # Shapes
/// - `prediction`, `target`: `[batch, dim]`
/// - output: `[1]`
pub fn regression_loss(prediction: Tensor<2>, target: Tensor<2>) -> Tensor<1> {
    let cos = (l2_normalize(prediction) * l2_normalize(target)).sum_dim(1);
    cos.mean().mul_scalar(-2.0)
}

/// `head(z, t)`: the predictor applied to the online projection, then [`regression_loss`].
///
/// # Shapes
/// - `z`, `target`: `[batch, dim]`
/// - output: `[1]`
pub fn head_loss(predictor: &Predictor, z: Tensor<2>, target: Tensor<2>) -> Tensor<1> {
    regression_loss(predictor.forward(z), target)
}

/// One path's symmetric loss `L_p = head(z1, T2) + head(z2, T1)`, in `[−4, 4]`.
///
/// # Shapes
/// - `z1`, `z2`, `t1`, `t2`: `[batch, dim]`
/// - output: `[1]`
pub fn path_loss(
    predictor: &Predictor,
    z1: Tensor<2>,
    z2: Tensor<2>,
    t1: Tensor<2>,
    t2: Tensor<2>,
) -> Tensor<1> {
    head_loss(predictor, z1, t2) + head_loss(predictor, z2, t1)
}

/// Output of [`ensemble_bootstrap_loss`].
#[derive(Debug, Clone)]
pub struct EnsembleLoss {
    /// Σ_p L_p, tracked: call `backward()` on it (divide by the accumulation steps first).
    pub total: Tensor<1>,
    /// mean_p L_p, detached, for logging (`[−4, 4]`).
    pub logged: Tensor<1>,
}

/// The full per-iteration loss given online projections of each path's two views and the two
/// target ensembles (`t1` from view 1, `t2` from view 2; see [`target_ensemble`]).
///
/// # Shapes
/// - `online[p]`: `(z1_p, z2_p)`, each `[batch, dim]`
/// - `t1`, `t2`: `[batch, dim]`
///
/// # Panics
/// If `online` is empty.
pub fn ensemble_bootstrap_loss(
    predictor: &Predictor,
    online: Vec<(Tensor<2>, Tensor<2>)>,
    t1: Tensor<2>,
    t2: Tensor<2>,
) -> EnsembleLoss {
    assert!(!online.is_empty(), "ensemble loss over zero paths");
    let p = online.len() as f64;
    let total = online
        .into_iter()
        .map(|(z1, z2)| path_loss(predictor, z1, z2, t1.clone(), t2.clone()))
        .reduce(|a, b| a + b)
        .expect("non-empty");
    let logged = total.clone().detach().div_scalar(p);
    EnsembleLoss { total, logged }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heads::PredictorConfig;
    use burn::module::Param;
    use burn::tensor::Device;

    fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    fn scalar(t: Tensor<1>) -> f64 {
        vals(t)[0] as f64
    }

    fn t2(rows: [[f32; 2]; 2], device: &Device) -> Tensor<2> {
        Tensor::from_data(rows, device)
    }

    #[test]
    fn normalize_rows_and_zero_row() {
        let d = Device::flex();
        let x = t2([[3.0, 4.0], [0.0, 0.0]], &d);
        let v = vals(l2_normalize(x));
        assert_eq!(v, vec![0.6, 0.8, 0.0, 0.0]);
    }

    #[test]
    fn regression_loss_hand_values() {
        let d = Device::flex();
        // Row 0: p=[1,0], t=[0,2] → cos 0. Row 1: p=[1,1], t=[3,3] → cos 1. Mean 0.5 → −1.
        let p = t2([[1.0, 0.0], [1.0, 1.0]], &d);
        let t = t2([[0.0, 2.0], [3.0, 3.0]], &d);
        assert!((scalar(regression_loss(p, t)) + 1.0).abs() < 1e-6);
    }

    #[test]
    fn ensemble_is_mean_of_normalised_and_renormalised_in_head() {
        let d = Device::flex();
        // Path projections for one sample: [2, 0] and [0, 5] → norms [1,0], [0,1] → mean [.5,.5].
        let a = Tensor::<2>::from_data([[2.0, 0.0]], &d);
        let b = Tensor::<2>::from_data([[0.0, 5.0]], &d);
        let t = target_ensemble(vec![a, b]);
        assert_eq!(vals(t.clone()), vec![0.5, 0.5]);
        // ‖T‖ = 1/√2 ≠ 1: with p = [1, 0], cos = 1/√2 only if T is re-normalised
        // (without it, ⟨p, T⟩ = 0.5).
        let p = Tensor::<2>::from_data([[1.0, 0.0]], &d);
        let l = scalar(regression_loss(p, t));
        assert!((l + 2.0 / 2f64.sqrt()).abs() < 1e-6, "{l}");
    }

    /// A predictor that is the identity on 2-d inputs (BN in inference mode on a plain device:
    /// running mean 0, var 1, ε → 1/√(1+ε) scaling which we undo with γ).
    fn identity_predictor(d: &Device) -> Predictor {
        let mut p = PredictorConfig::new()
            .with_in_features(2)
            .with_hidden(2)
            .with_out(2)
            .init(d);
        let eye = || Param::from_data([[1.0, 0.0], [0.0, 1.0]], d);
        p.mlp.fc0.weight = eye();
        p.mlp.fc1.weight = eye();
        let g = (1.0f64 + 1e-5).sqrt() as f32;
        p.mlp.bn0.gamma = Param::from_data([g, g], d);
        p
    }

    #[test]
    fn full_loss_sum_and_logged_mean() {
        let d = Device::flex();
        let pred = identity_predictor(&d);
        // Positive inputs so the ReLU is the identity too.
        let t1 = Tensor::<2>::from_data([[1.0, 0.0]], &d);
        let t2v = Tensor::<2>::from_data([[0.0, 1.0]], &d);
        // Path 0: z1 = [0,1] (matches T2, cos 1), z2 = [1,0] (matches T1, cos 1) → L0 = −4.
        // Path 1: z1 = [1,0] (vs T2 cos 0), z2 = [1,1] (vs T1 cos 1/√2) → L1 = −√2.
        let online = vec![
            (
                Tensor::<2>::from_data([[0.0, 1.0]], &d),
                Tensor::<2>::from_data([[1.0, 0.0]], &d),
            ),
            (
                Tensor::<2>::from_data([[1.0, 0.0]], &d),
                Tensor::<2>::from_data([[1.0, 1.0]], &d),
            ),
        ];
        let out = ensemble_bootstrap_loss(&pred, online, t1, t2v);
        let l1 = -2f64.sqrt();
        assert!((scalar(out.total) - (-4.0 + l1)).abs() < 1e-5);
        assert!((scalar(out.logged) - (-4.0 + l1) / 2.0).abs() < 1e-5);
    }

    #[test]
    fn target_has_no_gradient_and_online_does() {
        let d = Device::flex().autodiff();
        let pred = PredictorConfig::new()
            .with_in_features(2)
            .with_hidden(4)
            .with_out(2)
            .init(&d);
        let z1 = Tensor::<2>::from_data([[1.0, 2.0], [0.5, -1.0]], &d).require_grad();
        let z2 = Tensor::<2>::from_data([[0.3, 0.1], [2.0, 1.0]], &d).require_grad();
        let tp = Tensor::<2>::from_data([[1.0, 1.0], [2.0, 0.0]], &d).require_grad();
        let t = target_ensemble(vec![tp.clone()]);
        assert!(!t.is_tracked());
        let out = ensemble_bootstrap_loss(&pred, vec![(z1.clone(), z2)], t.clone(), t);
        let grads = out.total.backward();
        assert!(z1.grad(&grads).is_some());
        assert!(tp.grad(&grads).is_none());
    }
}
