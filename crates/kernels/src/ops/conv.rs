//! Convolutions routed to the cheapest composition of public tensor ops (issue 7, CPU speed).
//!
//! Why: the forward of `burn::tensor::module::conv2d` on burn-flex is fine, but its backward
//! is the generic one of `burn-backend`: the weight gradient of a dense conv is another
//! convolution over batch-swapped tensors whose "kernel" is the whole output map. For a
//! 1×1 conv that degenerates into one matrix–*vector* product per input channel (the
//! `gemm … hx2x1` kernel in the profiles of `docs/performance.md`), and the input gradient
//! goes through a transposed convolution.
//!
//! A 1×1 stride-1 convolution of an NCHW map is a batched matrix product,
//! `Y[b] = W[Cout, Cin] · X[b][Cin, H·W]`, with no permute: the reshapes are free. Written as a
//! [`Tensor::matmul`], its autodiff backward is two GEMMs (`Wᵀ·G` and `Σ_b G·Xᵀ`).
//!
//! [`pointwise`] uses only the public `Tensor` API, so it runs (and differentiates) on any
//! `Device`; parameters stay where the modules keep them (`Conv2d::weight` of shape
//! `[Cout, Cin, 1, 1]`), so checkpoints and parameter counts do not change. On burn-flex,
//! plain 1×1 convs and every other dense or depthwise conv go to the dense-conv node of
//! [`crate::nodes::conv`] (the buffer kernels of [`crate::cpu::conv`]); on other devices 1×1 convs use [`pointwise`] and the rest Burn's
//! `conv2d` (grouped non-depthwise and dilated convs everywhere).
//!
//! `BOSSNAS_FAST_CONV` in the environment (read once per process) switches paths off for A/B
//! runs and as a fallback should a backend misbehave (see [`ConvMode`]).

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;
use burn::tensor::module::conv2d as burn_conv2d;
use burn::tensor::ops::ConvOptions;

use crate::dispatch::{ConvMode, FOLD_BATCH_BELOW, conv_mode};

/// Whether a convolution with this weight shape and these options is a plain 1×1
/// (stride 1, no padding, no dilation, one group): the case [`pointwise`] computes.
pub fn is_pointwise(weight_dims: [usize; 4], options: &ConvOptions<2>) -> bool {
    weight_dims[2] == 1
        && weight_dims[3] == 1
        && options.groups == 1
        && options.stride == [1, 1]
        && options.dilation == [1, 1]
        && options.padding == [(0, 0), (0, 0)]
}

/// Functional 2-D convolution, same contract as `burn::tensor::module::conv2d`: plain 1×1
/// convolutions on non-flex devices go through [`pointwise`]; the others through
/// [`crate::nodes::conv::conv2d`] (see [`ConvMode`]).
///
/// # Shapes
/// - `x`: `[batch, c_in, H, W]`, `weight`: `[c_out, c_in / groups, kh, kw]`, `bias`: `[c_out]`
/// - output: `[batch, c_out, H', W']`
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    let plain_1x1 = is_pointwise(weight.dims(), &options);
    match conv_mode() {
        ConvMode::Off => burn_conv2d(x, weight, bias, options),
        ConvMode::PointwiseOnly if plain_1x1 => pointwise(x, weight, bias),
        ConvMode::PointwiseOnly => burn_conv2d(x, weight, bias, options),
        ConvMode::All if plain_1x1 && !pointwise_on_node(&x) => pointwise(x, weight, bias),
        ConvMode::All => crate::nodes::conv::conv2d(x, weight, bias, options),
    }
}

/// `conv.forward(x)` for a [`Conv2d`] module, through [`conv2d`] when its padding is a fixed
/// one (`Valid`/`Explicit`); `Same` padding keeps Burn's own forward.
pub fn conv2d_module(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let padding = match conv.padding {
        PaddingConfig2d::Valid => [(0, 0), (0, 0)],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
        PaddingConfig2d::Same => return conv.forward(x),
    };
    let options = ConvOptions::new_with_padding(conv.stride, padding, conv.dilation, conv.groups);
    conv2d(
        x,
        conv.weight.val(),
        conv.bias.as_ref().map(|b| b.val()),
        options,
    )
}

/// Whether a plain 1×1 conv of `x` goes to the dense-conv node (on burn-flex) rather than
/// [`pointwise`]. On flex the node's weight gradient accumulates `Σ_b G[b]·X[b]ᵀ` in place,
/// where the matmul's autodiff materialises all `B` products and then sums them: forward +
/// backward of an 8×1024×14×14 map, 1024 → 256, measured 17–18 ms against 28–33 ms
/// (256 → 1024: 19–23 against 25–34 ms). On maps below [`FOLD_BATCH_BELOW`] positions the
/// node folds the batch into one GEMM, as [`pointwise`] does, but with its own parallel
/// copies into buffers that are not zero-filled (`flex_conv::folded`; the HyTra 1/32 ResAtt
/// row went from 51 to 44 ms).
fn pointwise_on_node(x: &Tensor<4>) -> bool {
    crate::dispatch::is_flex(&x.device())
}

/// A 1×1 stride-1 convolution as one batched matrix product (see the module docs); for small
/// maps (`H·W` < [`FOLD_BATCH_BELOW`]) as one matrix product over the whole batch.
///
/// # Shapes
/// - `x`: `[batch, c_in, H, W]`, `weight`: `[c_out, c_in, 1, 1]`, `bias`: `[c_out]`
/// - output: `[batch, c_out, H, W]`
///
/// # Panics
/// If the weight is not `[c_out, c_in, 1, 1]` for the input's `c_in`.
pub fn pointwise(x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>) -> Tensor<4> {
    let [b, c_in, h, w] = x.dims();
    let [c_out, w_in, kh, kw] = weight.dims();
    assert!(
        w_in == c_in && kh == 1 && kw == 1,
        "pointwise conv: weight {:?} for an input with {c_in} channels",
        [c_out, w_in, kh, kw]
    );
    let y = if h * w < FOLD_BATCH_BELOW {
        // Small maps: one GEMM with the batch folded into `n` ([Cin, B·H·W]) instead of `B`
        // GEMMs with `n = H·W`, for two permuted copies.
        let xf = x
            .reshape([b, c_in, h * w])
            .swap_dims(0, 1)
            .reshape([c_in, b * h * w]);
        weight
            .reshape([c_out, c_in])
            .matmul(xf)
            .reshape([c_out, b, h * w])
            .swap_dims(0, 1)
    } else {
        weight
            .reshape([1, c_out, c_in])
            .matmul(x.reshape([b, c_in, h * w]))
    };
    let y = match bias {
        Some(bias) => y + bias.reshape([1, c_out, 1]),
        None => y,
    };
    y.reshape([b, c_out, h, w])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::{Device, Distribution};

    fn dev() -> Device {
        Device::flex().autodiff()
    }

    fn rand<const D: usize>(shape: [usize; D], d: &Device) -> Tensor<D> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), d)
    }

    fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        let a = a.into_data().try_to_vec::<f32>().unwrap();
        let b = b.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// Relative to the largest magnitude of `b`, so the tolerance does not depend on scale.
    fn rel_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        let scale = b.clone().abs().max().into_scalar::<f32>().max(1e-6);
        max_abs_diff(a, b) / scale
    }

    /// Forward and all three gradients of [`conv2d`] equal Burn's `conv2d` on random inputs.
    fn check(x_dims: [usize; 4], w_dims: [usize; 4], bias: bool, options: ConvOptions<2>) {
        let d = dev();
        let x0 = rand(x_dims, &d);
        let w0 = rand(w_dims, &d);
        let b0 = rand([w_dims[0]], &d);
        // A non-uniform upstream gradient, so every output element matters.
        let out_dims = burn_conv2d(x0.clone(), w0.clone(), None, options.clone()).dims();
        let g = rand(out_dims, &d).detach();
        let run = |fast: bool| {
            let x = x0.clone().detach().require_grad();
            let w = w0.clone().detach().require_grad();
            let b = bias.then(|| b0.clone().detach().require_grad());
            let y = if fast {
                conv2d(x.clone(), w.clone(), b.clone(), options.clone())
            } else {
                burn_conv2d(x.clone(), w.clone(), b.clone(), options.clone())
            };
            let grads = (y.clone() * g.clone()).sum().backward();
            let gx = x.grad(&grads).unwrap();
            let gw = w.grad(&grads).unwrap();
            let gb = b.map(|b| b.grad(&grads).unwrap());
            (y.detach(), gx, gw, gb)
        };
        let (y1, gx1, gw1, gb1) = run(true);
        let (y2, gx2, gw2, gb2) = run(false);
        assert!(rel_diff(y1, y2) < 1e-5, "forward");
        assert!(rel_diff(gx1, gx2) < 1e-5, "input gradient");
        assert!(rel_diff(gw1, gw2) < 1e-5, "weight gradient");
        if let (Some(a), Some(b)) = (gb1, gb2) {
            assert!(rel_diff(a, b) < 1e-5, "bias gradient");
        }
    }

    #[test]
    fn pointwise_matches_burn_conv2d_forward_and_gradients() {
        let opts = ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
        check([3, 5, 4, 6], [7, 5, 1, 1], false, opts.clone());
        check([2, 8, 3, 3], [4, 8, 1, 1], true, opts.clone());
        // H·W ≥ FOLD_BATCH_BELOW: the batched (unfolded) path.
        check([2, 3, 10, 12], [4, 3, 1, 1], true, opts);
    }

    #[test]
    fn non_pointwise_convs_are_routed_to_burn() {
        let strided = ConvOptions::new([2, 2], [0, 0], [1, 1], 1);
        assert!(!is_pointwise([4, 3, 1, 1], &strided));
        assert!(!is_pointwise(
            [4, 3, 3, 3],
            &ConvOptions::new([1, 1], [1, 1], [1, 1], 1)
        ));
        assert!(!is_pointwise(
            [4, 1, 1, 1],
            &ConvOptions::new([1, 1], [0, 0], [1, 1], 4)
        ));
        check([2, 3, 6, 6], [4, 3, 1, 1], true, strided);
        check(
            [2, 3, 5, 5],
            [4, 3, 3, 3],
            false,
            ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
        );
    }

    #[test]
    fn module_forward_matches_conv2d_module() {
        let d = dev();
        let mut conv = Conv2dConfig::new([6, 10], [1, 1]).init(&d);
        conv.weight = Param::from_tensor(rand([10, 6, 1, 1], &d));
        let x = rand([2, 6, 5, 5], &d);
        let diff = rel_diff(conv2d_module(&conv, x.clone()), conv.forward(x));
        assert!(diff < 1e-5, "{diff}");
    }
}
