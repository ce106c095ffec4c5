//! Weight-sharing supernets for BossNAS, one per search space, behind one trait.
//!
//! The Siamese trainer (`ensemble-bootstrap`) and the rating code (`bossnas-search`) only see
//! [`Supernet`]: they never know which space they are training.

pub mod hytra;
pub mod mbconv;
pub mod nats;

use burn::module::{Module, ModuleDisplay};
use burn::tensor::Tensor;

/// One block's path: the op index chosen at each of the block's layers.
///
/// Op indices use the space's alphabet (`hytra_space::hytra::Op` indices 0..6 for HyTra,
/// 0..4 for MBConv, width indices 0..8 for NATS-SSS).
pub type BlockPath = Vec<usize>;

/// A supernet trained and rated block by block.
///
/// `chosen` always holds the already-searched best paths of blocks `0..k` (never block `k`
/// itself; see spec §9 B1), and block `k`'s population may depend on them (HyTra scales,
/// the NATS input width).
pub trait Supernet: Module + ModuleDisplay + Clone + Send + core::fmt::Debug {
    /// Number of searched blocks.
    fn num_blocks(&self) -> usize;

    /// Every candidate path of block `block`, given the best paths of the blocks before it.
    fn population(&self, block: usize, chosen: &[BlockPath]) -> Vec<BlockPath>;

    /// Stem plus blocks `0..chosen.len()` along their chosen paths.
    ///
    /// # Shapes
    /// - input: `[batch, 3, H, W]`
    /// - output: `[batch, C_k, H_k, W_k]`, the input of block `chosen.len()`
    fn forward_prefix(&self, images: Tensor<4>, chosen: &[BlockPath]) -> Tensor<4>;

    /// Block `chosen.len()` along `path`, applied to the output of [`Supernet::forward_prefix`].
    ///
    /// # Shapes
    /// - input: `[batch, C_k, H_k, W_k]`
    /// - output: `[batch, C_{k+1}, H_{k+1}, W_{k+1}]`
    fn forward_block(&self, features: Tensor<4>, chosen: &[BlockPath], path: &[usize])
    -> Tensor<4>;

    /// Channels of block `chosen.len()`'s output along `path` (what a projector receives).
    fn block_out_channels(&self, chosen: &[BlockPath], path: &[usize]) -> usize;
}
