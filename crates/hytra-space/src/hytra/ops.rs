//! The HyTra op alphabet: two block types at four scales, and the six global op indices.
//!
//! The official supernet builds each choice layer by looping over scale depths 0..4 (coarsest
//! first) and, per depth, over `[ResAtt, ResConv]`, skipping ResAtt at the two fine scales.
//! That yields one global alphabet shared by every block (spec §1.2):
//!
//! | index | op                |
//! |-------|-------------------|
//! | 0     | ResAtt  @ 1/32    |
//! | 1     | ResConv @ 1/32    |
//! | 2     | ResAtt  @ 1/16    |
//! | 3     | ResConv @ 1/16    |
//! | 4     | ResConv @ 1/8     |
//! | 5     | ResConv @ 1/4     |

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::HytraError;

/// Number of ops in the global alphabet.
pub const NUM_OPS: usize = 6;

/// A feature-map scale (resolution relative to the input image).
///
/// The *depth* numbering follows the official code: 0 is the coarsest scale (1/32), 3 the finest
/// (1/4); a layer may only keep its input depth or decrease it by one (halve the resolution).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scale {
    /// 1/4 of the input resolution (depth 3), 256 channels: the stem's output scale.
    #[serde(rename = "1/4")]
    S4,
    /// 1/8 (depth 2), 512 channels.
    #[serde(rename = "1/8")]
    S8,
    /// 1/16 (depth 1), 1024 channels; attention allowed.
    #[serde(rename = "1/16")]
    S16,
    /// 1/32 (depth 0), 2048 channels; attention allowed.
    #[serde(rename = "1/32")]
    S32,
}

impl Scale {
    /// All scales from finest to coarsest: the order of the retraining encoding's lists.
    pub const ALL: [Scale; 4] = [Scale::S4, Scale::S8, Scale::S16, Scale::S32];

    /// Depth in the official numbering: 3 (1/4) … 0 (1/32).
    pub const fn depth(self) -> usize {
        match self {
            Scale::S4 => 3,
            Scale::S8 => 2,
            Scale::S16 => 1,
            Scale::S32 => 0,
        }
    }

    /// Inverse of [`Scale::depth`].
    pub fn from_depth(depth: usize) -> Result<Scale, HytraError> {
        match depth {
            3 => Ok(Scale::S4),
            2 => Ok(Scale::S8),
            1 => Ok(Scale::S16),
            0 => Ok(Scale::S32),
            _ => Err(HytraError::BadDepth(depth)),
        }
    }

    /// Position in [`Scale::ALL`] (0 for 1/4 … 3 for 1/32): the stage index of a retrained net.
    pub const fn stage(self) -> usize {
        3 - self.depth()
    }

    /// Downsampling factor relative to the input image (4, 8, 16, 32).
    pub const fn reduction(self) -> usize {
        match self {
            Scale::S4 => 4,
            Scale::S8 => 8,
            Scale::S16 => 16,
            Scale::S32 => 32,
        }
    }

    /// Output channels of every layer at this scale (ResNet-50 stage widths).
    pub const fn channels(self) -> usize {
        match self {
            Scale::S4 => 256,
            Scale::S8 => 512,
            Scale::S16 => 1024,
            Scale::S32 => 2048,
        }
    }

    /// Bottleneck width (`channels / 4`), also the attention width at 1/16 and 1/32.
    pub const fn bottleneck(self) -> usize {
        self.channels() / 4
    }

    /// Attention heads of 64 channels each at this scale (`channels / 4 / 64`).
    pub const fn heads(self) -> usize {
        self.bottleneck() / 64
    }

    /// Whether a ResAtt block may run here: only 1/16 and 1/32, where the N² attention cost is
    /// affordable (spec §2.5).
    pub const fn allows_attention(self) -> bool {
        matches!(self, Scale::S16 | Scale::S32)
    }

    /// The scale one halving coarser, if any.
    pub const fn halved(self) -> Option<Scale> {
        match self {
            Scale::S4 => Some(Scale::S8),
            Scale::S8 => Some(Scale::S16),
            Scale::S16 => Some(Scale::S32),
            Scale::S32 => None,
        }
    }

    /// Whether a layer at `next` may follow a layer (or block input) at `self`: same scale or
    /// half of it.
    pub fn may_precede(self, next: Scale) -> bool {
        next == self || self.halved() == Some(next)
    }

    /// The scales a layer following `self` may run at (keep first, then halve).
    pub fn successors(self) -> impl Iterator<Item = Scale> {
        std::iter::once(self).chain(self.halved())
    }
}

impl fmt::Display for Scale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "1/{}", self.reduction())
    }
}

impl FromStr for Scale {
    type Err = HytraError;

    fn from_str(text: &str) -> Result<Scale, HytraError> {
        match text.trim() {
            "1/4" | "4" => Ok(Scale::S4),
            "1/8" | "8" => Ok(Scale::S8),
            "1/16" | "16" => Ok(Scale::S16),
            "1/32" | "32" => Ok(Scale::S32),
            other => Err(HytraError::BadScale(other.to_string())),
        }
    }
}

/// The two HyTra block types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OpKind {
    /// Bottleneck transformer block (1×1 → PEG → MHSA → 1×1).
    ResAtt,
    /// Bottleneck residual conv block (1×1 → PEG → 3×3 → 1×1).
    ResConv,
}

impl OpKind {
    /// Code in the retraining encoding: 0 = ResAtt, 1 = ResConv (`boss_models.py`).
    pub const fn retrain_code(self) -> u8 {
        match self {
            OpKind::ResAtt => 0,
            OpKind::ResConv => 1,
        }
    }

    /// Inverse of [`OpKind::retrain_code`]; `None` for anything but 0 and 1.
    pub const fn from_retrain_code(code: i64) -> Option<OpKind> {
        match code {
            0 => Some(OpKind::ResAtt),
            1 => Some(OpKind::ResConv),
            _ => None,
        }
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpKind::ResAtt => "ResAtt",
            OpKind::ResConv => "ResConv",
        })
    }
}

/// One candidate op of a choice layer: a block type at a scale.
///
/// Constructed only through validating functions, so an `Op` never holds ResAtt at 1/4 or 1/8.
/// Serialises as its global index (0..6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u8")]
pub struct Op {
    scale: Scale,
    kind: OpKind,
}

impl Op {
    /// All six ops in global index order.
    pub const ALL: [Op; NUM_OPS] = [
        Op {
            scale: Scale::S32,
            kind: OpKind::ResAtt,
        },
        Op {
            scale: Scale::S32,
            kind: OpKind::ResConv,
        },
        Op {
            scale: Scale::S16,
            kind: OpKind::ResAtt,
        },
        Op {
            scale: Scale::S16,
            kind: OpKind::ResConv,
        },
        Op {
            scale: Scale::S8,
            kind: OpKind::ResConv,
        },
        Op {
            scale: Scale::S4,
            kind: OpKind::ResConv,
        },
    ];

    /// The op of a block type at a scale; fails for ResAtt at 1/4 or 1/8.
    pub fn new(scale: Scale, kind: OpKind) -> Result<Op, HytraError> {
        if kind == OpKind::ResAtt && !scale.allows_attention() {
            return Err(HytraError::AttentionAtScale { scale });
        }
        Ok(Op { scale, kind })
    }

    /// The op with global index `index` (0..6).
    pub fn from_index(index: usize) -> Result<Op, HytraError> {
        Op::ALL.get(index).copied().ok_or(HytraError::UnknownOp {
            value: index as i64,
        })
    }

    /// Global op index: `2·depth + (kind == ResConv)` at 1/32 and 1/16, `depth + 2` below.
    pub const fn index(self) -> usize {
        let depth = self.scale.depth();
        match self.kind {
            OpKind::ResAtt => 2 * depth,
            OpKind::ResConv if depth < 2 => 2 * depth + 1,
            OpKind::ResConv => depth + 2,
        }
    }

    /// Scale the op runs at (its output scale).
    pub const fn scale(self) -> Scale {
        self.scale
    }

    /// Block type.
    pub const fn kind(self) -> OpKind {
        self.kind
    }
}

/// Ops order by global index, so that paths sort like their digit strings.
impl Ord for Op {
    fn cmp(&self, other: &Op) -> std::cmp::Ordering {
        self.index().cmp(&other.index())
    }
}

impl PartialOrd for Op {
    fn partial_cmp(&self, other: &Op) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl TryFrom<i64> for Op {
    type Error = HytraError;
    fn try_from(value: i64) -> Result<Op, HytraError> {
        usize::try_from(value)
            .ok()
            .and_then(|i| Op::ALL.get(i).copied())
            .ok_or(HytraError::UnknownOp { value })
    }
}

impl From<Op> for u8 {
    fn from(op: Op) -> u8 {
        op.index() as u8
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.kind, self.scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabet_matches_official_indices() {
        let expected = [
            (Scale::S32, OpKind::ResAtt),
            (Scale::S32, OpKind::ResConv),
            (Scale::S16, OpKind::ResAtt),
            (Scale::S16, OpKind::ResConv),
            (Scale::S8, OpKind::ResConv),
            (Scale::S4, OpKind::ResConv),
        ];
        for (i, (scale, kind)) in expected.into_iter().enumerate() {
            let op = Op::from_index(i).unwrap();
            assert_eq!((op.scale(), op.kind()), (scale, kind));
            assert_eq!(op.index(), i);
            assert_eq!(Op::new(scale, kind).unwrap(), op);
            // Official depth mapping: idx // 2 below 4, idx - 2 above.
            let depth = if i < 4 { i / 2 } else { i - 2 };
            assert_eq!(op.scale().depth(), depth);
        }
        assert_eq!(Op::from_index(3).unwrap().to_string(), "ResConv@1/16");
    }

    #[test]
    fn bad_ops_are_rejected_with_reasons() {
        let e = Op::from_index(7).unwrap_err();
        assert!(
            e.to_string().contains("op index 7") && e.to_string().contains("0..=5"),
            "{e}"
        );
        let e = Op::new(Scale::S8, OpKind::ResAtt).unwrap_err();
        assert!(
            e.to_string().contains("1/8") && e.to_string().contains("1/16 and 1/32"),
            "{e}"
        );
        assert!(Op::try_from(-1).is_err());
        assert!(serde_json::from_str::<Op>("6").is_err());
        assert_eq!(
            serde_json::from_str::<Op>("2").unwrap(),
            Op::from_index(2).unwrap()
        );
    }

    #[test]
    fn scale_helpers() {
        for s in Scale::ALL {
            assert_eq!(Scale::from_depth(s.depth()).unwrap(), s);
            assert_eq!(s.to_string().parse::<Scale>().unwrap(), s);
            assert_eq!(Scale::ALL[s.stage()], s);
            assert_eq!(
                serde_json::from_str::<Scale>(&serde_json::to_string(&s).unwrap()).unwrap(),
                s
            );
        }
        assert_eq!(Scale::S32.heads(), 8);
        assert_eq!(Scale::S16.heads(), 4);
        assert!(Scale::S4.may_precede(Scale::S8) && !Scale::S4.may_precede(Scale::S16));
        assert!(!Scale::S8.may_precede(Scale::S4));
        assert!("1/3".parse::<Scale>().is_err());
    }
}
