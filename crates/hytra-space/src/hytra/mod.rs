//! The HyTra search space: a CNN–transformer hybrid fabric of 16 choice layers (4 blocks × 4),
//! each a ResConv or ResAtt block at one of four scales.
//!
//! * [`ops`] — the six-op alphabet, [`Scale`], [`OpKind`], [`Op`];
//! * [`fabric`] — legal scale sequences, per-block populations, space sizes, [`SearchPath`];
//! * [`encoding`] — the per-scale retraining encoding and conversions with search paths;
//! * [`named`] — [`HytraNet`] (encoding + options) and the published reference networks;
//! * [`retrain_cost`] — layer plan, parameters and MAdds of a retrained (BossNet-style) net;
//! * [`supernet_cost`] — the official supernet's module layout, its size and path costs.
//!
//! Everything here is plain data so that the search, the reports and the Burn builders agree
//! on one definition of the space.

pub mod attention;
pub mod encoding;
pub mod fabric;
pub mod named;
pub mod ops;
pub mod retrain_cost;
pub mod supernet_cost;

pub use attention::AttentionOrientation;
pub use encoding::RetrainEncoding;
pub use fabric::{
    BlockPath, LAYERS_PER_BLOCK, NUM_BLOCKS, NUM_LAYERS, SearchPath, SpaceVariant,
    executable_population, for_each_path, next_block_input, restricted_population,
};
pub use named::{Activation, HytraNet, LastStride, NamedArch, NetOptions, TransitionStride};
pub use ops::{NUM_OPS, Op, OpKind, Scale};
pub use retrain_cost::RetrainLayer;
pub use supernet_cost::{SupernetOpSpec, supernet_params, supernet_path_cost};

/// The list of op indices used in error messages.
const OP_LIST: &str =
    "0 ResAtt@1/32, 1 ResConv@1/32, 2 ResAtt@1/16, 3 ResConv@1/16, 4 ResConv@1/8, 5 ResConv@1/4";

/// Errors raised while parsing, validating or costing a HyTra architecture.
///
/// Each message names the position (block/layer, or scale/entry), the value found and what is
/// allowed, so that a command-line user can fix the input without reading the code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HytraError {
    #[error("op index {value} is not in 0..=5 ({OP_LIST})")]
    UnknownOp { value: i64 },
    #[error("block {block} layer {layer}: op index {value} is not in 0..=5 ({OP_LIST})")]
    BadOpIndex {
        block: usize,
        layer: usize,
        value: i64,
    },
    #[error("ResAtt is not available at {scale}; attention is only allowed at 1/16 and 1/32")]
    AttentionAtScale { scale: Scale },
    #[error("scale depth {0} does not exist; depths run from 0 (1/32) to 3 (1/4)")]
    BadDepth(usize),
    #[error("unknown scale {0:?}; expected 1/4, 1/8, 1/16 or 1/32")]
    BadScale(String),
    #[error("block index {0} is out of range; HyTra has blocks 0 to 3")]
    BadBlock(usize),
    #[error("search path has {found} blocks; expected 4 blocks of 4 op indices")]
    WrongBlockCount { found: usize },
    #[error("search path block {block} has {found} layers; expected 4 op indices per block")]
    WrongLayerCount { block: usize, found: usize },
    #[error(
        "search path block {block} layer {layer}: {found:?} is not a digit; write each block as \
         4 op indices 0..=5, e.g. 5433-3230-0010-0000"
    )]
    NotADigit {
        block: usize,
        layer: usize,
        found: char,
    },
    #[error(
        "block {block} layer {layer}: scale goes from {from} to {to}; each layer must keep the \
         previous layer's scale or halve it"
    )]
    IllegalStep {
        block: usize,
        layer: usize,
        from: Scale,
        to: Scale,
    },
    #[error(
        "block {block} layer 0: scale goes from {input} to {found} at the block boundary; the \
         first layer must keep the block's input scale or halve it"
    )]
    FirstLayerScale {
        block: usize,
        input: Scale,
        found: Scale,
    },
    #[error(
        "block {block} cannot take input at {input}: the official supernet only has modules for \
         inputs at {limit} or coarser there"
    )]
    InputTooFine {
        block: usize,
        input: Scale,
        limit: Scale,
    },
    #[error("path is outside the {space} space: {reason}")]
    OutsideSpace {
        space: fabric::SpaceVariant,
        reason: String,
    },
    #[error("retraining encoding has {found} scale lists; expected 4 (for 1/4, 1/8, 1/16, 1/32)")]
    WrongScaleCount { found: usize },
    #[error(
        "retraining encoding scale {scale} entry {position}: {value} is not a block type; allowed \
         are 0 (ResAtt) or 1 (ResConv)"
    )]
    RetrainCode {
        scale: Scale,
        position: usize,
        value: i64,
    },
    #[error(
        "retraining encoding scale {scale} entry {position}: ResAtt (0) is only allowed at 1/16 \
         and 1/32; use 1 (ResConv) at {scale}"
    )]
    RetrainAttention { scale: Scale, position: usize },
    #[error(
        "encoding has {found} layers; only 16-layer encodings (4 blocks of 4 layers) map to a \
         search path"
    )]
    NotSixteenLayers { found: usize },
    #[error("malformed JSON for a {what}: {message}; expected {expected}")]
    Json {
        what: &'static str,
        expected: &'static str,
        message: String,
    },
    #[error("unknown HyTra architecture {name:?}; valid names are: {valid}")]
    UnknownArch { name: String, valid: String },
    #[error("last stride {0} is not allowed; use 2 (default) or 1 (BossNet-T1)")]
    BadLastStride(i64),
    #[error(
        "block {block} layer {layer}: the official supernet has no {op} module in this block \
         (it builds scales {built} there)"
    )]
    OpNotInBlock {
        block: usize,
        layer: usize,
        op: Op,
        built: String,
    },
    #[error(
        "block {block} layer {layer}: {op} has no stride-2 input branch from {from} in the \
         official supernet"
    )]
    NoStrideTwoBranch {
        block: usize,
        layer: usize,
        op: Op,
        from: Scale,
    },
    #[error("input size {size} is too small; HyTra networks need images of at least {min} pixels")]
    InputTooSmall { size: usize, min: usize },
}

impl HytraError {
    /// Rewrites the block position of a per-block error (block paths are validated standalone
    /// and report block 0).
    pub(crate) fn in_block(self, b: usize) -> HytraError {
        match self {
            HytraError::WrongLayerCount { found, .. } => {
                HytraError::WrongLayerCount { block: b, found }
            }
            HytraError::BadOpIndex { layer, value, .. } => HytraError::BadOpIndex {
                block: b,
                layer,
                value,
            },
            HytraError::IllegalStep {
                layer, from, to, ..
            } => HytraError::IllegalStep {
                block: b,
                layer,
                from,
                to,
            },
            other => other,
        }
    }
}

/// Smallest square input the cost counters accept (every stride and pooling window still
/// produces at least one pixel).
pub const MIN_INPUT_SIZE: usize = 32;

fn check_input_size(size: usize) -> Result<(), HytraError> {
    if size < MIN_INPUT_SIZE {
        Err(HytraError::InputTooSmall {
            size,
            min: MIN_INPUT_SIZE,
        })
    } else {
        Ok(())
    }
}
