//! Training-mode batch norm as one custom autodiff node with fused kernels on burn-flex
//! (issue 7, CPU speed).
//!
//! [`batch_norm`] is a drop-in for `burn::nn::BatchNorm::forward`: same module, same record
//! (`gamma`, `beta`, `running_mean`, `running_var`), same running-statistics update (momentum,
//! biased batch variance, as Burn does) and the same inference path. Only the training-mode
//! computation on burn-flex changes: the statistics, the normalisation and the backward pass run
//! on the buffer kernels of [`crate::cpu::norm`] instead of Burn's generic composition (which
//! materialises channel-major copies; see that module).
//!
//! On wgpu/CUDA, in inference mode, or with `BOSSNAS_FUSED=off` in the environment it is
//! exactly `BatchNorm::forward`. On burn-flex, strided inputs are made contiguous first and
//! non-`f32` tensors go through Burn's own `batch_norm_train` inside the node.
//!
//! [`batch_norm_relu`] is `relu(batch_norm(bn, x))` with the ReLU inside the same node (one
//! pass forward, the mask recomputed inside the backward's passes): the BN → ReLU pairs of
//! the HyTra ops and the heads.
//!
//! The EMA target network of ensemble bootstrapping (`valid().train().no_grad()`: BN in
//! training mode, parameters untracked) takes the untracked branch of the node: batch
//! statistics, running-stat update, no graph.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Flex, Shape, TensorMetadata, backend_extension};
use burn::nn::BatchNorm;
use burn::tensor::Tensor;

use crate::cpu::buffers::{contiguous_f32, flex_tensor, values};
use crate::cpu::norm::{self as cpu_norm, Layout};
use crate::dispatch::fused_on;

/// `(output, batch mean, biased batch variance)` of a training-mode batch norm.
pub type BatchNormOutput<B> = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

/// The custom operation: training-mode batch norm over dim 1, differentiated as one node.
#[backend_extension(Flex, Autodiff)]
pub trait FusedBatchNormBackend: Backend {
    /// `batch_norm_train(x, gamma, beta, epsilon)` as `(output, mean, variance)`, the output
    /// passed through a ReLU if `relu`.
    fn fused_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

impl FusedBatchNormBackend for Flex {
    fn fused_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> BatchNormOutput<Self> {
        Self::bn_forward(x, gamma, beta, epsilon, relu)
    }
}

/// The two kernels behind the batch-norm autodiff node. Defaults: Burn's own
/// `batch_norm_train` and its backward (any backend); `Flex` overrides them with [`cpu_norm`].
pub trait BatchNormKernels: Backend {
    /// Training-mode forward (then a ReLU if `relu`).
    fn bn_forward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> BatchNormOutput<Self> {
        burn_forward::<Self>(x, gamma, beta, epsilon, relu)
    }

    /// `(dx, dgamma, dbeta)` given the output gradient and the forward's statistics;
    /// `relu_beta` is the forward's `beta` when it ran with `relu`.
    #[allow(clippy::too_many_arguments)]
    fn bn_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        grad: FloatTensor<Self>,
        relu_beta: Option<FloatTensor<Self>>,
    ) -> BatchNormOutput<Self> {
        burn_backward::<Self>(x, gamma, mean, variance, epsilon, grad, relu_beta)
    }
}

/// Burn's own training-mode batch norm (the generic kernels), then Burn's ReLU if `relu`.
fn burn_forward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f64,
    relu: bool,
) -> BatchNormOutput<B> {
    let r = B::batch_norm_train(x, gamma, beta, epsilon);
    let y = if relu { B::relu(r.output) } else { r.output };
    (y, r.mean, r.variance)
}

/// Burn's own batch-norm backward (the generic kernels), after the ReLU's backward when the
/// forward had one (its output recomputed from `x`: the mask is all it needs).
fn burn_backward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    mean: FloatTensor<B>,
    variance: FloatTensor<B>,
    epsilon: f64,
    grad: FloatTensor<B>,
    relu_beta: Option<FloatTensor<B>>,
) -> BatchNormOutput<B> {
    let grad = match relu_beta {
        Some(beta) => {
            let (y, _, _) = burn_forward::<B>(x.clone(), gamma.clone(), beta, epsilon, true);
            B::relu_backward(y, grad)
        }
        None => grad,
    };
    let r = B::batch_norm_train_backward(x, gamma, mean, variance, epsilon, grad);
    (r.x_grad, r.gamma_grad, r.beta_grad)
}

/// The `[B, C, S]` layout of `shape` (rank ≥ 2).
fn layout(shape: &Shape) -> Layout {
    let dims = shape.as_slice();
    Layout {
        batch: dims[0],
        channels: dims[1],
        spatial: dims[2..].iter().product(),
    }
}

impl BatchNormKernels for Flex {
    fn bn_forward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> BatchNormOutput<Self> {
        match (
            contiguous_f32(&x),
            contiguous_f32(&gamma),
            contiguous_f32(&beta),
        ) {
            (Some(xc), Some(g), Some(b)) => {
                let shape = x.shape();
                let l = layout(&shape);
                let (y, mean, var) =
                    cpu_norm::forward(values(&xc), values(&g), values(&b), epsilon, &l, relu);
                let per_channel = Shape::new([l.channels]);
                (
                    flex_tensor(y, shape),
                    flex_tensor(mean, per_channel.clone()),
                    flex_tensor(var, per_channel),
                )
            }
            _ => burn_forward::<Self>(x, gamma, beta, epsilon, relu),
        }
    }

    fn bn_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        grad: FloatTensor<Self>,
        relu_beta: Option<FloatTensor<Self>>,
    ) -> BatchNormOutput<Self> {
        // `Some(None)`: a fused ReLU whose beta is not f32 (then Burn's kernels).
        let beta = relu_beta.as_ref().map(contiguous_f32);
        match (
            contiguous_f32(&x),
            contiguous_f32(&gamma),
            contiguous_f32(&mean),
            contiguous_f32(&variance),
            contiguous_f32(&grad),
        ) {
            (Some(xc), Some(g), Some(m), Some(v), Some(dy)) if !matches!(beta, Some(None)) => {
                let shape = x.shape();
                let l = layout(&shape);
                let beta = beta.flatten();
                let (dx, dg, db) = cpu_norm::backward(
                    values(&xc),
                    values(&g),
                    values(&m),
                    values(&v),
                    epsilon,
                    values(&dy),
                    &l,
                    beta.as_ref().map(values),
                );
                let per_channel = Shape::new([l.channels]);
                (
                    flex_tensor(dx, shape),
                    flex_tensor(dg, per_channel.clone()),
                    flex_tensor(db, per_channel),
                )
            }
            _ => burn_backward::<Self>(x, gamma, mean, variance, epsilon, grad, relu_beta),
        }
    }
}

/// The node of a training-mode batch norm, followed by a ReLU if `relu`.
#[derive(Debug)]
struct BatchNormNode {
    relu: bool,
}

impl<B: BatchNormKernels> Backward<B, 3> for BatchNormNode {
    // Input, gamma and beta are checkpointed; the statistics are kept as the forward computed
    // them.
    type State = (
        NodeId,
        NodeId,
        NodeId,
        B::FloatTensorPrimitive,
        B::FloatTensorPrimitive,
        f64,
    );

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x_state, gamma_state, beta_state, mean, variance, epsilon) = ops.state;
        let x = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(x_state);
        let gamma = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(gamma_state);
        let beta = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(beta_state);
        let relu_beta = self.relu.then_some(beta);
        let (dx, dgamma, dbeta) =
            B::bn_backward(x, gamma, mean, variance, epsilon, grad, relu_beta);
        if let Some(node) = node_x {
            grads.register::<B>(node.id, dx);
        }
        if let Some(node) = node_gamma {
            grads.register::<B>(node.id, dgamma);
        }
        if let Some(node) = node_beta {
            grads.register::<B>(node.id, dbeta);
        }
    }
}

impl<B: BatchNormKernels, C: CheckpointStrategy> FusedBatchNormBackend for Autodiff<B, C> {
    // Not inlined so that profiles can attribute time to it.
    #[inline(never)]
    fn fused_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> BatchNormOutput<Self> {
        // The statistics leave the node as constants (they feed only the running averages).
        let constant = FloatTensor::<Self>::new;
        match (BatchNormNode { relu })
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let gamma_state = prep.checkpoint(&gamma);
                let beta_state = prep.checkpoint(&beta);
                let (y, mean, var) = B::bn_forward(
                    x.into_primitive(),
                    gamma.into_primitive(),
                    beta.into_primitive(),
                    epsilon,
                    relu,
                );
                let state = (
                    x_state,
                    gamma_state,
                    beta_state,
                    mean.clone(),
                    var.clone(),
                    epsilon,
                );
                (prep.finish(state, y), constant(mean), constant(var))
            }
            OpsKind::UnTracked(prep) => {
                let (y, mean, var) = B::bn_forward(
                    x.into_primitive(),
                    gamma.into_primitive(),
                    beta.into_primitive(),
                    epsilon,
                    relu,
                );
                (prep.finish(y), constant(mean), constant(var))
            }
        }
    }
}

/// `bn.forward(x)` with the fused training-mode node on burn-flex (module docs).
///
/// # Shapes
/// - input and output: `[batch, channels, ...]` with `channels = bn.gamma` length
pub fn batch_norm<const D: usize>(bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    norm(bn, x, false)
}

/// `relu(bn.forward(x))`, on burn-flex in training mode as one fused node (module docs).
///
/// # Shapes
/// - input and output: `[batch, channels, ...]` with `channels = bn.gamma` length
pub fn batch_norm_relu<const D: usize>(bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    norm(bn, x, true)
}

fn norm<const D: usize>(bn: &BatchNorm, x: Tensor<D>, relu: bool) -> Tensor<D> {
    let device = x.device();
    let training = device.is_autodiff() && bn.training.is_enabled();
    let [channels] = bn.gamma.dims();
    if !training || !fused_on(&device) || D < 2 || x.dims()[1] != channels {
        // Burn's module: inference path, other devices, and its own shape errors.
        let y = bn.forward(x);
        return if relu {
            burn::tensor::activation::relu(y)
        } else {
            y
        };
    }
    let (y, mean, var) = <burn::backend::Dispatch as FusedBatchNormBackend>::fused_batch_norm_train(
        x.into_dispatch(),
        bn.gamma.val().into_dispatch(),
        bn.beta.val().into_dispatch(),
        bn.epsilon,
        relu,
    );
    let (mean, var) = (
        Tensor::<1>::from_dispatch(mean),
        Tensor::<1>::from_dispatch(var),
    );
    let m = bn.momentum;
    let running_mean = bn.running_mean.value_sync().to_device(&device);
    let running_var = bn.running_var.value_sync().to_device(&device);
    bn.running_mean.update(
        running_mean
            .mul_scalar(1.0 - m)
            .add(mean.detach().mul_scalar(m))
            .detach(),
    );
    bn.running_var.update(
        running_var
            .mul_scalar(1.0 - m)
            .add(var.detach().mul_scalar(m))
            .detach(),
    );
    Tensor::from_dispatch(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::is_flex;
    use burn::module::{Module, Param};
    use burn::nn::BatchNormConfig;
    use burn::tensor::{Device, Distribution};

    fn activate<const D: usize>(y: Tensor<D>, relu: bool) -> Tensor<D> {
        if relu {
            burn::tensor::activation::relu(y)
        } else {
            y
        }
    }

    fn max_rel(a: Tensor<1>, b: Tensor<1>) -> f32 {
        let a = a.into_data().try_to_vec::<f32>().unwrap();
        let b = b.into_data().try_to_vec::<f32>().unwrap();
        let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        a.iter()
            .zip(&b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
            / scale
    }

    /// Output, input/gamma/beta gradients and running statistics equal Burn's `BatchNorm`
    /// (rel. 1e-4), over two steps (the running-stat update compounds), ranks 2 and 4; with
    /// the fused ReLU, equal to Burn's `relu(BatchNorm)`.
    #[test]
    fn matches_burn_batch_norm() {
        let d = Device::flex().autodiff();
        assert!(is_flex(&d));
        let cases = [vec![4usize, 3, 5, 7], vec![6, 5], vec![2, 8, 3, 1]];
        for (dims, relu) in cases
            .iter()
            .flat_map(|c| [(c.clone(), false), (c.clone(), true)])
        {
            let c = dims[1];
            let gamma = Tensor::<1>::random([c], Distribution::Normal(1.0, 0.3), &d);
            let beta = Tensor::<1>::random([c], Distribution::Normal(0.0, 0.3), &d);
            // Two independent modules (a clone would share the running statistics).
            let make = || {
                let mut bn = BatchNormConfig::new(c).with_momentum(0.3).init(&d);
                bn.gamma = Param::from_tensor(gamma.clone().detach());
                bn.beta = Param::from_tensor(beta.clone().detach());
                bn
            };
            let (ours, burns) = (make(), make());
            let n: usize = dims.iter().product();
            for step in 0..2 {
                let x = Tensor::<1>::random([n], Distribution::Normal(2.0, 1.5), &d);
                let g = Tensor::<1>::random([n], Distribution::Normal(0.0, 1.0), &d).detach();
                let run = |bn: &BatchNorm, fused: bool| {
                    let xi = x.clone().detach().require_grad();
                    let xs = match dims.len() {
                        2 => {
                            let x2: Tensor<2> = xi.clone().reshape([dims[0], dims[1]]);
                            let y = match (fused, relu) {
                                (true, false) => batch_norm(bn, x2),
                                (true, true) => batch_norm_relu(bn, x2),
                                (false, r) => activate(bn.forward(x2), r),
                            };
                            y.reshape([n])
                        }
                        _ => {
                            let x4: Tensor<4> =
                                xi.clone().reshape([dims[0], dims[1], dims[2], dims[3]]);
                            let y = match (fused, relu) {
                                (true, false) => batch_norm(bn, x4),
                                (true, true) => batch_norm_relu(bn, x4),
                                (false, r) => activate(bn.forward(x4), r),
                            };
                            y.reshape([n])
                        }
                    };
                    let grads = (xs.clone() * g.clone()).sum().backward();
                    (
                        xs.detach(),
                        xi.grad(&grads).unwrap(),
                        bn.gamma.val().grad(&grads).unwrap(),
                        bn.beta.val().grad(&grads).unwrap(),
                    )
                };
                let a = run(&ours, true);
                let b = run(&burns, false);
                let tag = format!("{dims:?} relu {relu} step {step}");
                assert!(max_rel(a.0, b.0) < 1e-4, "output {tag}");
                assert!(
                    max_rel(a.1.reshape([n]), b.1.reshape([n])) < 1e-4,
                    "dx {tag}"
                );
                assert!(max_rel(a.2, b.2) < 1e-4, "dgamma {tag}");
                assert!(max_rel(a.3, b.3) < 1e-4, "dbeta {tag}");
                let rm = max_rel(
                    ours.running_mean.value_sync(),
                    burns.running_mean.value_sync(),
                );
                let rv = max_rel(
                    ours.running_var.value_sync(),
                    burns.running_var.value_sync(),
                );
                assert!(rm < 1e-5 && rv < 1e-5, "running stats {tag}: {rm} {rv}");
            }
        }
    }

    /// Untracked (EMA-target style) and inference calls: batch statistics and running update
    /// without a graph; inference equals Burn's (it is Burn's path).
    #[test]
    fn untracked_and_inference_paths() {
        let d = Device::flex().autodiff();
        let bn = BatchNormConfig::new(3).init(&d).no_grad();
        let reference = BatchNormConfig::new(3).init(&d).no_grad();
        let x = Tensor::<4>::random([2, 3, 4, 4], Distribution::Normal(1.0, 2.0), &d);
        let y = batch_norm(&bn, x.clone());
        let y_ref = reference.forward(x.clone());
        assert!(max_rel(y.reshape([96]), y_ref.reshape([96])) < 1e-5);
        let rv = max_rel(
            bn.running_var.value_sync(),
            reference.running_var.value_sync(),
        );
        assert!(rv < 1e-5, "running var {rv}");
        let eval = bn.valid();
        let ye = batch_norm(&eval, x.clone().inner());
        let ye_ref = eval.forward(x.inner());
        assert!(max_rel(ye.reshape([96]), ye_ref.reshape([96])) < 1e-6);
    }
}
