//! The device a user names (`cpu`, `wgpu`, `wgpu:1`, `cuda:0`): parsed and printed here,
//! without Burn, so that a config's `device` is checked with the rest of the config; turning
//! it into a Burn device is `bossnas_kernels::device::ToDevice`.

use std::fmt;
use std::str::FromStr;

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
}
