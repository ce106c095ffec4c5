//! The Siamese supernet pair of BossNAS (spec §3.1, §3.4): generic over any [`Supernet`].
//!
//! - [`OnlineNet`]: online supernet + the current block's [`ProjectionHead`] (adapters +
//!   projector) + predictor. Everything in it is trained by one optimizer.
//! - [`TargetNet`]: target supernet (EMA copy, no gradients) + target projection head (EMA copy
//!   of the online one; no predictor).
//!
//! The EMA ([`Siamese::ema_update`]) covers every parameter of the backbone (stem, all blocks,
//! all candidate ops) and the current block's projection head, as `_momentum_update` does over
//! `online_net` / `target_net`. BN running statistics are not averaged.
//!
//! Deviation (spec §9 D6): for NATS the official target `channel_fix` is never EMA-updated (a
//! frozen random projection). Here the adapters are part of the projection head and follow the
//! EMA like the HyTra `fix_channels`, which are inside the official neck.

use crate::phase::span;
use bossnas_supernet::{BlockPath, Supernet};
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::adapter::{AdapterError, AdapterSet};
use crate::ema::{ema_update, make_target};
use crate::heads::{Predictor, PredictorConfig, Projector, ProjectorConfig};
use crate::loss::{path_loss, target_ensemble};

/// Adapters + projector of one block.
///
/// # Shapes
/// - input: `[batch, C, H, W]` with `C` one of the block's candidate channel counts
/// - output: `[batch, projector_out]`
#[derive(Module, Debug)]
pub struct ProjectionHead {
    /// Channel (and for HyTra spatial) adapters.
    pub adapters: AdapterSet,
    /// Pool + MLP projector.
    pub projector: Projector,
}

impl ProjectionHead {
    /// See the type-level `# Shapes`.
    pub fn forward(&self, features: Tensor<4>) -> Tensor<2> {
        self.projector.forward(self.adapters.forward(features))
    }
}

/// The online network: supernet, current projection head and predictor.
#[derive(Module, Debug)]
pub struct OnlineNet<S: Supernet> {
    /// Online supernet.
    pub backbone: S,
    /// Projection head of the current block.
    pub head: ProjectionHead,
    /// Predictor of the current block.
    pub predictor: Predictor,
}

/// The target network: EMA supernet and EMA projection head of the current block.
#[derive(Module, Debug)]
pub struct TargetNet<S: Supernet> {
    /// Target supernet.
    pub backbone: S,
    /// Target projection head of the current block.
    pub head: ProjectionHead,
}

/// How a block's heads are built.
#[derive(Debug, Clone)]
pub struct HeadSpec {
    /// Projector input channels; `None` = the block's own (single) channel count.
    pub projector_in: Option<usize>,
    /// Projector configuration (its `in_channels` is overwritten per block).
    pub projector: ProjectorConfig,
    /// Predictor configuration.
    pub predictor: PredictorConfig,
    /// Adapters reduce space as well as map channels (HyTra `fix_channels`).
    pub spatial_adapters: bool,
}

/// Errors while building heads.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// Candidates end with different channel counts but no projector width was configured.
    #[error(
        "block {block}: candidates end with channels {channels:?}; set `heads.projector_in` \
         to give them one projector"
    )]
    NeedsProjectorIn {
        /// Block.
        block: usize,
        /// Distinct channel counts.
        channels: Vec<usize>,
    },
    /// An adapter cannot be built.
    #[error("block {block}: {source}")]
    Adapter {
        /// Block.
        block: usize,
        /// Cause.
        source: AdapterError,
    },
}

impl HeadSpec {
    /// The distinct channel counts of `population`'s outputs.
    pub fn population_channels<S: Supernet>(
        backbone: &S,
        chosen: &[BlockPath],
        population: &[BlockPath],
    ) -> Vec<usize> {
        let mut c: Vec<usize> = population
            .iter()
            .map(|p| backbone.block_out_channels(chosen, p))
            .collect();
        c.sort_unstable();
        c.dedup();
        c
    }

    /// A fresh online projection head and predictor for block `chosen.len()`.
    pub fn build<S: Supernet>(
        &self,
        backbone: &S,
        chosen: &[BlockPath],
        population: &[BlockPath],
        device: &Device,
    ) -> Result<(ProjectionHead, Predictor), HeadError> {
        let block = chosen.len();
        let channels = Self::population_channels(backbone, chosen, population);
        let n = match (self.projector_in, channels.as_slice()) {
            (Some(n), _) => n,
            (None, [c]) => *c,
            (None, _) => return Err(HeadError::NeedsProjectorIn { block, channels }),
        };
        let adapters = AdapterSet::new(&channels, n, self.spatial_adapters, device)
            .map_err(|source| HeadError::Adapter { block, source })?;
        let projector = self.projector.clone().with_in_channels(n).init(device);
        let predictor = self.predictor.init(device);
        Ok((
            ProjectionHead {
                adapters,
                projector,
            },
            predictor,
        ))
    }
}

/// The online/target pair.
#[derive(Debug, Clone)]
pub struct Siamese<S: Supernet> {
    /// Online network (trained).
    pub online: OnlineNet<S>,
    /// Target network (EMA, no gradients).
    pub target: TargetNet<S>,
}

impl<S: Supernet> Siamese<S> {
    /// Online = `backbone` + the given heads; target = deep copies (see [`make_target`]).
    pub fn new(backbone: S, head: ProjectionHead, predictor: Predictor) -> Self {
        let target = TargetNet {
            backbone: make_target(&backbone),
            head: make_target(&head),
        };
        Self {
            online: OnlineNet {
                backbone,
                head,
                predictor,
            },
            target,
        }
    }

    /// Switches to a new block: replaces the online head and predictor, and the target head
    /// by a copy of the new online head (the official target necks start as copies of the
    /// online ones). Backbones are kept.
    pub fn with_new_heads(self, head: ProjectionHead, predictor: Predictor) -> Self {
        let target_head = make_target(&head);
        Self {
            online: OnlineNet {
                backbone: self.online.backbone,
                head,
                predictor,
            },
            target: TargetNet {
                backbone: self.target.backbone,
                head: target_head,
            },
        }
    }

    /// `target ← m·target + (1 − m)·online` over backbone and projection head parameters.
    pub fn ema_update(self, momentum: f64) -> Self {
        let Siamese { online, target } = self;
        let backbone = ema_update(target.backbone, &online.backbone, momentum);
        let head = ema_update(target.head, &online.head, momentum);
        Self {
            online,
            target: TargetNet { backbone, head },
        }
    }
}

/// The ensemble-bootstrapping forward pass of one micro-batch (spec §4.1).
///
/// `pairs` holds one shared view pair or one pair per path. Returns the loss **summed** over
/// paths (with gradients into the online net only) and each path's loss, detached.
pub fn ensemble_forward<S: Supernet>(
    siamese: &Siamese<S>,
    pairs: &[(Tensor<4>, Tensor<4>)],
    chosen: &[BlockPath],
    paths: &[BlockPath],
    freeze_prefix: bool,
) -> (Tensor<1>, Vec<Tensor<1>>) {
    assert!(!paths.is_empty(), "no paths to train");
    let shared = pairs.len() == 1;
    assert!(
        shared || pairs.len() == paths.len(),
        "{} view pairs for {} paths",
        pairs.len(),
        paths.len()
    );
    let slot = |p: usize| if shared { 0 } else { p };

    let target = &siamese.target;
    let t_prefix: Vec<(Tensor<4>, Tensor<4>)> = span("target prefix", || {
        pairs
            .iter()
            .map(|(v1, v2)| {
                (
                    target.backbone.forward_prefix(v1.clone(), chosen).detach(),
                    target.backbone.forward_prefix(v2.clone(), chosen).detach(),
                )
            })
            .collect()
    });
    let mut t1 = Vec::with_capacity(paths.len());
    let mut t2 = Vec::with_capacity(paths.len());
    for (p, path) in paths.iter().enumerate() {
        let (f1, f2) = &t_prefix[slot(p)];
        let (b1, b2) = span("target block", || {
            (
                target.backbone.forward_block(f1.clone(), chosen, path),
                target.backbone.forward_block(f2.clone(), chosen, path),
            )
        });
        span("target head", || {
            t1.push(target.head.forward(b1));
            t2.push(target.head.forward(b2));
        });
    }
    let (t1, t2) = span("target head", || (target_ensemble(t1), target_ensemble(t2)));

    let online = &siamese.online;
    // A frozen prefix runs on parameters that do not require gradients, so autodiff records
    // no graph for it at all. Detaching its output instead (as before 2026-12-04) left the
    // recorded graph of every step's prefix behind, never freed (it is consumed by no
    // backward): 24 GB by block 2 of a 1,536-image run, killed by the OOM killer. The clone is
    // cheap (parameters share their storage) and batch norm stays in training mode.
    let frozen = freeze_prefix.then(|| online.backbone.clone().no_grad());
    let prefix_net = frozen.as_ref().unwrap_or(&online.backbone);
    let o_prefix: Vec<(Tensor<4>, Tensor<4>)> = span("online prefix", || {
        pairs
            .iter()
            .map(|(v1, v2)| {
                (
                    prefix_net.forward_prefix(v1.clone(), chosen),
                    prefix_net.forward_prefix(v2.clone(), chosen),
                )
            })
            .collect()
    });
    let mut total: Option<Tensor<1>> = None;
    let mut per_path = Vec::with_capacity(paths.len());
    for (p, path) in paths.iter().enumerate() {
        let (f1, f2) = &o_prefix[slot(p)];
        let (b1, b2) = span("online block", || {
            (
                online.backbone.forward_block(f1.clone(), chosen, path),
                online.backbone.forward_block(f2.clone(), chosen, path),
            )
        });
        let (z1, z2) = span("online head", || {
            (online.head.forward(b1), online.head.forward(b2))
        });
        let loss = span("predictor + loss", || {
            path_loss(&online.predictor, z1, z2, t1.clone(), t2.clone())
        });
        per_path.push(loss.clone().detach());
        total = Some(match total {
            Some(t) => t + loss,
            None => loss,
        });
    }
    (total.expect("at least one path"), per_path)
}
