//! Parameter and multiply-add (MAdds) counting.
//!
//! Convention (the BossNAS `boss_madds.py` one): convolutions, fully connected layers and the
//! two attention products QKᵀ and AV are counted; BN, activations, softmax, pooling and biases
//! are not counted as MAdds. Parameters count every learnable tensor (weights, biases, BN γ/β),
//! never BN running statistics.

use serde::{Deserialize, Serialize};

/// Cost of a network or of a part of one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cost {
    /// Learnable parameters.
    pub params: u64,
    /// Multiply-adds for one image (batch size 1).
    pub madds: u64,
}

impl std::ops::Add for Cost {
    type Output = Cost;
    fn add(self, rhs: Cost) -> Cost {
        Cost {
            params: self.params + rhs.params,
            madds: self.madds + rhs.madds,
        }
    }
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, rhs: Cost) {
        *self = *self + rhs;
    }
}

impl std::iter::Sum for Cost {
    fn sum<I: Iterator<Item = Cost>>(iter: I) -> Cost {
        iter.fold(Cost::default(), |a, b| a + b)
    }
}

/// Output spatial size of a convolution or pooling window: `⌊(n + 2p − k) / s⌋ + 1`.
pub const fn conv_out(n: usize, kernel: usize, stride: usize, padding: usize) -> usize {
    (n + 2 * padding - kernel) / stride + 1
}

/// Cost of a 2-D convolution applied to an `h_out × w_out` output map.
///
/// `groups` divides the input channels seen by each output channel (depthwise: `groups = c_in`).
pub fn conv2d(
    c_in: usize,
    c_out: usize,
    kernel: usize,
    groups: usize,
    bias: bool,
    h_out: usize,
    w_out: usize,
) -> Cost {
    let weights = (c_out * (c_in / groups) * kernel * kernel) as u64;
    Cost {
        params: weights + if bias { c_out as u64 } else { 0 },
        madds: weights * (h_out * w_out) as u64,
    }
}

/// Cost of a fully connected layer.
pub fn linear(c_in: usize, c_out: usize, bias: bool) -> Cost {
    let weights = (c_in * c_out) as u64;
    Cost {
        params: weights + if bias { c_out as u64 } else { 0 },
        madds: weights,
    }
}

/// Cost of a batch norm (γ and β; no MAdds by convention).
pub fn batch_norm(channels: usize) -> Cost {
    Cost {
        params: 2 * channels as u64,
        madds: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_costs() {
        // ResNet stem: 7x7/2, 3->64 on 224 -> 112.
        let c = conv2d(3, 64, 7, 1, false, 112, 112);
        assert_eq!(c.params, 9_408);
        assert_eq!(c.madds, 118_013_952);
        assert_eq!(conv_out(224, 7, 2, 3), 112);
        // Depthwise 3x3 with bias.
        assert_eq!(
            conv2d(32, 32, 3, 32, true, 8, 8),
            Cost {
                params: 320,
                madds: 18_432
            }
        );
        assert_eq!(
            linear(2048, 1000, true),
            Cost {
                params: 2_049_000,
                madds: 2_048_000
            }
        );
        assert_eq!(batch_norm(64).params, 128);
    }
}
