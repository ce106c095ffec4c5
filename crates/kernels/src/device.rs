//! Choosing the compute backend at run time.
//!
//! Burn 0.22 tensors carry no backend type: the backend is a property of the [`Device`]. A
//! [`DeviceSpec`] is what a user types (`cpu`, `wgpu`, `wgpu:1`, `cuda:0`); which backends
//! exist depends on the cargo features the binary was built with (`wgpu`, `cuda`), and asking
//! for one that was not compiled in is an error that says how to get it.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

/// A backend and device index, as written on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// burn-flex on the CPU (always available; `cpu` or `flex`).
    Cpu,
    /// burn-wgpu (Vulkan/Metal/WebGPU); `None` lets wgpu pick the adapter, `Some(i)` is the
    /// i-th discrete GPU.
    Wgpu(Option<usize>),
    /// burn-cuda on GPU `i`.
    Cuda(usize),
}

/// The accepted device names, in every message about a bad device (one wording).
pub const DEVICE_CHOICES: &str = "cpu, wgpu, wgpu:N, cuda or cuda:N";

/// A device string that does not parse, or names a backend this binary lacks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error("unknown device {0:?}; expected {DEVICE_CHOICES}")]
    Unknown(String),
    #[error("unknown device {0:?}: the index is not a number; expected {DEVICE_CHOICES}")]
    BadIndex(String),
    #[error(
        "device {requested} needs the `{feature}` cargo feature; rebuild with `--features {feature}`"
    )]
    NotCompiled {
        requested: String,
        feature: &'static str,
    },
}

impl FromStr for DeviceSpec {
    type Err = DeviceError;

    fn from_str(text: &str) -> Result<Self, DeviceError> {
        let t = text.trim().to_ascii_lowercase();
        let (name, index) = match t.split_once(':') {
            Some((n, i)) => {
                let i = i
                    .parse::<usize>()
                    .map_err(|_| DeviceError::BadIndex(text.to_string()))?;
                (n.to_string(), Some(i))
            }
            None => (t.clone(), None),
        };
        match (name.as_str(), index) {
            ("cpu" | "flex", None) => Ok(DeviceSpec::Cpu),
            ("wgpu" | "vulkan", i) => Ok(DeviceSpec::Wgpu(i)),
            ("cuda", i) => Ok(DeviceSpec::Cuda(i.unwrap_or(0))),
            _ => Err(DeviceError::Unknown(text.to_string())),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Wgpu(None) => write!(f, "wgpu"),
            DeviceSpec::Wgpu(Some(i)) => write!(f, "wgpu:{i}"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl DeviceSpec {
    /// The Burn device (without autodiff; call `.autodiff()` for training).
    pub fn device(&self) -> Result<Device, DeviceError> {
        match *self {
            DeviceSpec::Cpu => Ok(Device::flex()),
            DeviceSpec::Wgpu(index) => wgpu_device(index, self),
            DeviceSpec::Cuda(index) => cuda_device(index, self),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_strings() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("FLEX".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!(
            "wgpu".parse::<DeviceSpec>().unwrap(),
            DeviceSpec::Wgpu(None)
        );
        assert_eq!(
            "wgpu:1".parse::<DeviceSpec>().unwrap(),
            DeviceSpec::Wgpu(Some(1))
        );
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!(
            "cuda:3".parse::<DeviceSpec>().unwrap().to_string(),
            "cuda:3"
        );
        assert!(matches!(
            "tpu".parse::<DeviceSpec>(),
            Err(DeviceError::Unknown(_))
        ));
        assert!(matches!(
            "cuda:x".parse::<DeviceSpec>(),
            Err(DeviceError::BadIndex(_))
        ));
    }

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
