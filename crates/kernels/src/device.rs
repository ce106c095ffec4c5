//! Choosing the compute backend at run time.
//!
//! Burn 0.22 tensors carry no backend type: the backend is a property of the [`Device`]. A
//! [`DeviceSpec`] is what a user types (`cpu`, `wgpu`, `wgpu:1`, `cuda:0`); which backends
//! exist depends on the cargo features the binary was built with (`wgpu`, `cuda`), and asking
//! for one that was not compiled in is an error that says how to get it.

use burn::tensor::Device;

pub use bossnas_config::device::{DEVICE_CHOICES, DeviceError, DeviceSpec};

/// Turns a [`DeviceSpec`] into the Burn device of a backend compiled into this binary.
pub trait ToDevice {
    /// The Burn device (without autodiff; call `.autodiff()` for training).
    fn device(&self) -> Result<Device, DeviceError>;
}

impl ToDevice for DeviceSpec {
    fn device(&self) -> Result<Device, DeviceError> {
        match *self {
            DeviceSpec::Cpu => Ok(Device::flex()),
            DeviceSpec::Wgpu(index) => wgpu_device(index, self),
            DeviceSpec::Cuda(index) => cuda_device(index, self),
        }
    }
}

#[cfg(feature = "wgpu")]
fn wgpu_device(index: Option<usize>, _spec: &DeviceSpec) -> Result<Device, DeviceError> {
    use burn::tensor::DeviceKind;
    Ok(Device::wgpu(match index {
        None => DeviceKind::DefaultDevice,
        Some(i) => DeviceKind::DiscreteGpu(i),
    }))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_device(_index: Option<usize>, spec: &DeviceSpec) -> Result<Device, DeviceError> {
    Err(DeviceError::NotCompiled {
        requested: spec.to_string(),
        feature: "wgpu",
    })
}

#[cfg(feature = "cuda")]
fn cuda_device(index: usize, _spec: &DeviceSpec) -> Result<Device, DeviceError> {
    Ok(Device::cuda(index))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(_index: usize, spec: &DeviceSpec) -> Result<Device, DeviceError> {
    Err(DeviceError::NotCompiled {
        requested: spec.to_string(),
        feature: "cuda",
    })
}

/// Backends compiled into this binary.
pub fn available() -> Vec<&'static str> {
    let mut v = vec!["cpu"];
    if cfg!(feature = "wgpu") {
        v.push("wgpu");
    }
    if cfg!(feature = "cuda") {
        v.push("cuda");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_always_works_and_missing_backends_say_which_feature() {
        assert!(DeviceSpec::Cpu.device().is_ok());
        if !cfg!(feature = "cuda") {
            let e = DeviceSpec::Cuda(0).device().unwrap_err();
            assert!(e.to_string().contains("--features cuda"), "{e}");
        }
        if !cfg!(feature = "wgpu") {
            let e = DeviceSpec::Wgpu(None).device().unwrap_err();
            assert!(e.to_string().contains("--features wgpu"), "{e}");
        }
    }
}
