//! The `f32` buffers of burn-flex tensors, as the custom nodes' kernels read and write them.

use burn::backend::flex::FlexTensor;
use burn::backend::{Shape, TensorMetadata};
use burn::tensor::{DType, TensorData};

/// `t` as a contiguous `f32` tensor (copied if it is a strided view), or `None` for other
/// dtypes (the callers then fall back to Burn's ops).
pub(crate) fn contiguous_f32(t: &FlexTensor) -> Option<FlexTensor> {
    if t.dtype() != DType::F32 {
        None
    } else if t.as_slice::<f32>().is_some() {
        Some(t.clone())
    } else {
        Some(t.to_contiguous())
    }
}

/// The values of a tensor returned by [`contiguous_f32`].
pub(crate) fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("contiguous f32 tensor")
}

/// A tensor of `shape` owning `data` (no copy).
pub(crate) fn flex_tensor(data: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape))
}

/// A tensor owning `data`, shaped like `like`.
pub(crate) fn flex_like(data: Vec<f32>, like: &FlexTensor) -> FlexTensor {
    flex_tensor(data, like.shape())
}
