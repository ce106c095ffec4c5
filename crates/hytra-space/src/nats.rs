//! The NATS-Bench size search space (SSS): five channel widths, each in {8, 16, …, 64}.
//!
//! Network (NATS-Bench `DynamicShapeTinyNet`, one cell per stage): stem conv3×3 (3→c0) + BN;
//! cell(c0→c0); ResBlock(c0→c1, stride 2); cell(c1→c2); ResBlock(c2→c3, stride 2);
//! cell(c3→c4); BN + ReLU; global average pool; Linear(c4→classes).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The eight candidate widths of every NATS-SSS layer. Op index `i` ↔ width `8·(i+1)`.
pub const NATS_WIDTHS: [u16; 8] = [8, 16, 24, 32, 40, 48, 56, 64];
/// Number of width layers.
pub const NATS_LAYERS: usize = 5;
/// Number of architectures: 8⁵.
pub const NATS_SIZE: usize = 32_768;

/// Errors raised while parsing or validating a NATS-SSS architecture.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NatsError {
    #[error("NATS-SSS architecture {text:?} has {found} widths; expected 5 separated by ':' (e.g. 64:40:48:64:56)")]
    WrongLength { text: String, found: usize },
    #[error("NATS-SSS layer {layer}: {value:?} is not an integer width; allowed widths are 8, 16, 24, 32, 40, 48, 56, 64")]
    NotANumber { layer: usize, value: String },
    #[error("NATS-SSS layer {layer}: width {value} is not allowed; allowed widths are 8, 16, 24, 32, 40, 48, 56, 64")]
    BadWidth { layer: usize, value: u64 },
    #[error("NATS-SSS index {0} is out of range; indices run from 0 to 32767")]
    BadIndex(u64),
}

/// One NATS-SSS architecture: the five widths `c0..c4`.
///
/// Serialises as its string form `"c0:c1:c2:c3:c4"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NatsArch {
    widths: [u16; NATS_LAYERS],
}

impl NatsArch {
    /// Builds an architecture from five widths, validating each.
    pub fn new(widths: [u16; NATS_LAYERS]) -> Result<Self, NatsError> {
        for (layer, &w) in widths.iter().enumerate() {
            if !NATS_WIDTHS.contains(&w) {
                return Err(NatsError::BadWidth { layer, value: w as u64 });
            }
        }
        Ok(Self { widths })
    }

    /// Builds an architecture from five op indices (0..8, width = 8·(i+1)).
    pub fn from_op_indices(ops: [usize; NATS_LAYERS]) -> Result<Self, NatsError> {
        let mut widths = [0u16; NATS_LAYERS];
        for (layer, &op) in ops.iter().enumerate() {
            if op >= NATS_WIDTHS.len() {
                return Err(NatsError::BadWidth { layer, value: 8 * (op as u64 + 1) });
            }
            widths[layer] = NATS_WIDTHS[op];
        }
        Ok(Self { widths })
    }

    /// The five widths.
    pub fn widths(&self) -> [u16; NATS_LAYERS] {
        self.widths
    }

    /// The five op indices (width / 8 − 1).
    pub fn op_indices(&self) -> [usize; NATS_LAYERS] {
        self.widths.map(|w| (w / 8 - 1) as usize)
    }

    /// NATS-Bench index: itertools-product order with the last layer fastest,
    /// `Σ_k (c_k/8 − 1)·8^(4−k)`; `8:8:8:8:8` is 0 and `64:64:64:64:64` is 32767.
    pub fn index(&self) -> usize {
        self.op_indices().iter().fold(0, |acc, &i| acc * 8 + i)
    }

    /// Inverse of [`NatsArch::index`].
    pub fn from_index(index: usize) -> Result<Self, NatsError> {
        if index >= NATS_SIZE {
            return Err(NatsError::BadIndex(index as u64));
        }
        let mut ops = [0usize; NATS_LAYERS];
        let mut rest = index;
        for slot in ops.iter_mut().rev() {
            *slot = rest % 8;
            rest /= 8;
        }
        Self::from_op_indices(ops)
    }

    /// All 32,768 architectures in NATS-Bench index order.
    pub fn all() -> impl Iterator<Item = NatsArch> {
        (0..NATS_SIZE).map(|i| Self::from_index(i).expect("index in range"))
    }
}

impl fmt::Display for NatsArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.widths;
        write!(f, "{}:{}:{}:{}:{}", w[0], w[1], w[2], w[3], w[4])
    }
}

impl FromStr for NatsArch {
    type Err = NatsError;

    fn from_str(text: &str) -> Result<Self, NatsError> {
        let parts: Vec<&str> = text.trim().split(':').collect();
        if parts.len() != NATS_LAYERS {
            return Err(NatsError::WrongLength { text: text.to_string(), found: parts.len() });
        }
        let mut widths = [0u16; NATS_LAYERS];
        for (layer, part) in parts.iter().enumerate() {
            let value: u64 = part
                .trim()
                .parse()
                .map_err(|_| NatsError::NotANumber { layer, value: part.to_string() })?;
            if !NATS_WIDTHS.iter().any(|&w| w as u64 == value) {
                return Err(NatsError::BadWidth { layer, value });
            }
            widths[layer] = value as u16;
        }
        Ok(Self { widths })
    }
}

impl Serialize for NatsArch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NatsArch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_order_matches_nats_bench() {
        assert_eq!("8:8:8:8:8".parse::<NatsArch>().unwrap().index(), 0);
        assert_eq!("64:64:64:64:64".parse::<NatsArch>().unwrap().index(), 32_767);
        assert_eq!("8:8:8:8:16".parse::<NatsArch>().unwrap().index(), 1);
        assert_eq!("16:8:8:8:8".parse::<NatsArch>().unwrap().index(), 4096);
        for i in [0, 1, 777, 4096, 32_767] {
            assert_eq!(NatsArch::from_index(i).unwrap().index(), i);
        }
        assert_eq!(NatsArch::all().count(), NATS_SIZE);
    }

    #[test]
    fn string_and_json_round_trip() {
        let a: NatsArch = "64:40:48:64:56".parse().unwrap();
        assert_eq!(a.to_string(), "64:40:48:64:56");
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, "\"64:40:48:64:56\"");
        assert_eq!(serde_json::from_str::<NatsArch>(&json).unwrap(), a);
    }

    #[test]
    fn bad_inputs_name_the_problem() {
        let e = "64:40:48:64".parse::<NatsArch>().unwrap_err();
        assert!(e.to_string().contains("has 4 widths"), "{e}");
        let e = "64:40:50:64:56".parse::<NatsArch>().unwrap_err();
        assert_eq!(e, NatsError::BadWidth { layer: 2, value: 50 });
        assert!(e.to_string().contains("layer 2") && e.to_string().contains("50"), "{e}");
        let e = "64:x:48:64:56".parse::<NatsArch>().unwrap_err();
        assert!(matches!(e, NatsError::NotANumber { layer: 1, .. }));
        assert!(NatsArch::from_index(32_768).is_err());
        assert!(serde_json::from_str::<NatsArch>("\"1:2:3\"").is_err());
    }
}
