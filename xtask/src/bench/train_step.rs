//! The ensemble-bootstrapping training step row: the public pieces the `Trainer` step is
//! made of (`ensemble_forward`, backward, `drop_zero_grads`, the LARS `ModuleOptimizer`,
//! `Siamese::ema_update`) on the `nats-c10-cpu` preset's heads, NATS block 0, 8 paths.
//! The trainer's own `step` is private and also pulls batches from a data loader; this row
//! times the model work only, on fixed random views. Its phases are the trainer's
//! (`ensemble_bootstrap::phase`), so `bench --phases` splits this row as it splits a real step.

use bossnas_blocks::nats::SlimWidthsConfig;
use bossnas_config::RunConfig;
use bossnas_supernet::BlockPath;
use bossnas_supernet::nats::{NatsSupernet, NatsSupernetConfig};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Tensor};
use ensemble_bootstrap::heads::{PredictorConfig, ProjectorConfig};
use ensemble_bootstrap::lars::{LarsConfig, drop_zero_grads};
use ensemble_bootstrap::phase::span;
use ensemble_bootstrap::siamese::ensemble_forward;
use ensemble_bootstrap::siamese::{HeadSpec, Siamese};

/// Micro-batch of the row (the `nats-c10-cpu` preset's batch).
pub const BATCH: usize = 32;

/// The 8 paths of one step: `[i, 7 - i]`, so every width occurs in both layers.
pub fn paths() -> Vec<BlockPath> {
    (0..8).map(|i| vec![i, 7 - i]).collect()
}

/// Builds the Siamese pair on the full-width supernet (NATS widths 8…64) and returns the
/// timed step.
pub fn build(d: &Device) -> Box<dyn FnMut()> {
    build_with(d, NatsSupernetConfig::new())
}

/// The same step on the `nats-c10-cpu` preset's own supernet (quarter widths 2…16): the step
/// the README's main job repeats 576 times.
pub fn build_cpu(d: &Device) -> Box<dyn FnMut()> {
    let cfg = RunConfig::preset("nats-c10-cpu").expect("preset nats-c10-cpu");
    build_with(
        d,
        NatsSupernetConfig::new()
            .with_widths(SlimWidthsConfig::new().with_widths(cfg.space.widths)),
    )
}

fn build_with(d: &Device, supernet: NatsSupernetConfig) -> Box<dyn FnMut()> {
    let cfg = RunConfig::preset("nats-c10-cpu").expect("preset nats-c10-cpu");
    let backbone: NatsSupernet = supernet.init(d);
    let population = paths();
    let spec = HeadSpec {
        projector_in: cfg.heads.projector_in,
        projector: ProjectorConfig::from_run(&cfg, cfg.heads.projector_in.unwrap_or(1)),
        predictor: PredictorConfig::from_run(&cfg),
        spatial_adapters: false,
    };
    let (head, predictor) = spec.build(&backbone, &[], &population, d).expect("heads");
    let mut siamese = Some(Siamese::new(backbone, head, predictor));
    let mut optimizer = LarsConfig::from_run(&cfg).init();
    let lr = cfg.effective_lr();
    let momentum = cfg.train.ema_momentum;
    let view = || Tensor::random([BATCH, 3, 32, 32], Distribution::Normal(0.0, 1.0), d);
    let pairs = vec![(view(), view())];
    Box::new(move || {
        let s = siamese.take().expect("siamese");
        let (total, per_path) = ensemble_forward(&s, &pairs, &[], &population, false);
        std::hint::black_box(Tensor::cat(per_path, 0).into_data());
        let grads = span("backward", || {
            GradientsParams::from_grads(total.backward(), &s.online)
        });
        let grads = span("drop zero grads", || drop_zero_grads(&s.online, grads));
        let online = span("optimizer", || optimizer.step(lr, s.online, grads));
        let s = Siamese {
            online,
            target: s.target,
        };
        siamese = Some(span("ema", || s.ema_update(momentum)));
    })
}
