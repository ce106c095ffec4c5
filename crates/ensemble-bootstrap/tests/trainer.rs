//! End-to-end tests of the Siamese trainer on tiny supernets (all three spaces), exact resume,
//! NaN stop, path-local updates and a fixed-batch sanity check.

use std::path::Path;

use bossnas_blocks::mbconv::MbconvStemConfig;
use bossnas_config::{RunConfig, Sampling, ViewMode};
use bossnas_supernet::hytra::HytraSupernetConfig;
use bossnas_supernet::mbconv::{MbconvBackboneConfig, MbconvSupernet, MbconvSupernetConfig};
use bossnas_supernet::{BlockPath, Supernet};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use ensemble_bootstrap::checkpoint::RunDir;
use ensemble_bootstrap::ema::ema_update;
use ensemble_bootstrap::heads::{PredictorConfig, ProjectorConfig};
use ensemble_bootstrap::lars::{LarsConfig, drop_zero_grads};
use ensemble_bootstrap::seeded::seeded_init;
use ensemble_bootstrap::selector::{LossEmaSelector, LossEmaSelectorFactory};
use ensemble_bootstrap::setup::{nats_supernet, open_data, spatial_adapters};
use ensemble_bootstrap::siamese::Siamese;
use ensemble_bootstrap::siamese::ensemble_forward;
use ensemble_bootstrap::trainer::{TrainError, TrainOptions, Trainer, train_space};
use hytra_space::SpaceKind;

/// All float tensors (parameters and BN buffers) of a module, in visit order.
fn tensors<M: Module>(m: &M) -> Vec<Vec<f32>> {
    struct C(Vec<Vec<f32>>);
    impl ModuleVisitor for C {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0
                .push(p.val().into_data().try_to_vec::<f32>().unwrap());
        }
    }
    let mut c = C(Vec::new());
    m.valid().visit(&mut c);
    c.0
}

fn metrics_losses(dir: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["event"] == "step")
        .map(|v| {
            (
                v["global_step"].as_u64().unwrap(),
                v["loss"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn tiny() -> RunConfig {
    RunConfig::preset("tiny").unwrap()
}

fn nats_trainer(
    cfg: &RunConfig,
    opts: TrainOptions,
    dir: &Path,
    resume: bool,
) -> Trainer<bossnas_supernet::nats::NatsSupernet> {
    let data = open_data(cfg).unwrap();
    let run = RunDir::create(dir).unwrap();
    let c = cfg.clone();
    let build = move |d: &Device| nats_supernet(&c, d);
    if resume {
        Trainer::resume(cfg.clone(), opts, run, data, &Device::flex(), build, false).unwrap()
    } else {
        Trainer::new(cfg.clone(), opts, run, data, &Device::flex(), build, false).unwrap()
    }
}

#[test]
fn nats_tiny_trains_all_blocks_through_train_space() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny();
    let out = train_space(
        cfg.clone(),
        TrainOptions::default(),
        RunDir::create(dir.path()).unwrap(),
        &Device::flex(),
        false,
        &LossEmaSelectorFactory,
    )
    .unwrap();
    assert!(out.finished);
    assert_eq!(out.best_paths.len(), 3);
    assert_eq!(out.best_paths[0].len(), 2);
    assert_eq!(out.best_paths[2].len(), 1);
    let losses = metrics_losses(dir.path());
    assert_eq!(losses.len() as u64, out.global_step);
    assert!(
        losses
            .iter()
            .all(|(_, l)| l.is_finite() && (-4.0..=4.0).contains(l))
    );
    assert!(dir.path().join("config.resolved.toml").is_file());
    // Resuming a finished run is a no-op that reports it finished.
    let again = train_space(
        RunConfig::load(dir.path().join("config.resolved.toml")).unwrap(),
        TrainOptions::default(),
        RunDir::create(dir.path()).unwrap(),
        &Device::flex(),
        true,
        &LossEmaSelectorFactory,
    )
    .unwrap();
    assert!(again.finished);
    assert_eq!(again.best_paths, out.best_paths);
}

#[test]
fn resume_is_bit_exact_across_stops_and_a_block_boundary() {
    let cfg = tiny();
    let opts = TrainOptions {
        checkpoint_every_steps: Some(3),
        ..TrainOptions::default()
    };
    // A: uninterrupted.
    let a_dir = tempfile::tempdir().unwrap();
    let mut a = nats_trainer(&cfg, opts.clone(), a_dir.path(), false);
    let steps_per_block = a.steps_per_block();
    assert!(steps_per_block >= 2);
    let out_a = a.run(&mut LossEmaSelector).unwrap();
    assert!(out_a.finished);

    // B: stopped mid-block 0, then just after the block-0 boundary, then to the end.
    let b_dir = tempfile::tempdir().unwrap();
    let stops = [steps_per_block / 2, steps_per_block + 1];
    let mut b = nats_trainer(
        &cfg,
        TrainOptions {
            max_steps: Some(stops[0]),
            ..opts.clone()
        },
        b_dir.path(),
        false,
    );
    let o = b.run(&mut LossEmaSelector).unwrap();
    assert!(!o.finished);
    assert_eq!(o.global_step, stops[0]);
    drop(b);
    let mut b = nats_trainer(
        &cfg,
        TrainOptions {
            max_steps: Some(stops[1]),
            ..opts.clone()
        },
        b_dir.path(),
        true,
    );
    let o = b.run(&mut LossEmaSelector).unwrap();
    assert_eq!((o.global_step, o.best_paths.len()), (stops[1], 1));
    drop(b);
    let mut b = nats_trainer(&cfg, opts, b_dir.path(), true);
    let out_b = b.run(&mut LossEmaSelector).unwrap();

    assert!(out_b.finished);
    assert_eq!(out_b.best_paths, out_a.best_paths);
    assert_eq!(out_b.global_step, out_a.global_step);
    assert_eq!(metrics_losses(b_dir.path()), metrics_losses(a_dir.path()));
    let (sa, sb) = (a.siamese(), b.siamese());
    assert!(tensors(&sa.online) == tensors(&sb.online), "online differs");
    assert!(tensors(&sa.target) == tensors(&sb.target), "target differs");
}

#[test]
fn nan_loss_stops_with_block_and_step_and_keeps_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let opts = TrainOptions {
        checkpoint_every_steps: Some(1),
        inject_nan_at_step: Some(2),
        ..TrainOptions::default()
    };
    let mut t = nats_trainer(&tiny(), opts, dir.path(), false);
    let err = t.run(&mut LossEmaSelector).unwrap_err();
    let msg = err.to_string();
    match err {
        TrainError::NonFinite {
            block,
            global_step,
            checkpoint,
            ..
        } => {
            assert_eq!((block, global_step), (0, 2));
            let ck = checkpoint.expect("a checkpoint");
            assert!(ck.ends_with("b0-s0000002"), "{}", ck.display());
        }
        e => panic!("unexpected error {e}"),
    }
    assert!(
        msg.contains("block 0") && msg.contains("global step 2"),
        "{msg}"
    );
    let latest = RunDir::create(dir.path())
        .unwrap()
        .load_latest()
        .unwrap()
        .unwrap();
    assert_eq!(latest.state.global_step, 2);
}

fn tiny_mbconv_config() -> MbconvSupernetConfig {
    let mut bb = MbconvBackboneConfig::new();
    bb.stem = MbconvStemConfig::new()
        .with_conv_channels(8)
        .with_out_channels(8);
    bb.block_channels = vec![8, 8, 16, 16, 16];
    bb.block_layers = vec![2, 1, 1, 1, 1];
    bb.last_channels = 16;
    MbconvSupernetConfig::new().with_backbone(bb)
}

fn imagenet_like_tiny(kind: SpaceKind) -> RunConfig {
    let mut cfg = tiny();
    cfg.space.kind = kind;
    cfg.space.nats_split = None;
    cfg.space.widths = Vec::new();
    cfg.data.image_size = 32;
    cfg.data.synthetic_size = 8;
    cfg.data.views = ViewMode::PerPath;
    cfg.train.batch_size = 4;
    cfg.train.paths_per_step = 2;
    cfg.train.sampling = Sampling::Uniform;
    cfg
}

#[test]
fn mbconv_only_sampled_ops_change() {
    let mut cfg = imagenet_like_tiny(SpaceKind::Mbconv);
    cfg.train.paths_per_step = 1;
    cfg.heads.projector_in = None;
    let dir = tempfile::tempdir().unwrap();
    let mc = tiny_mbconv_config();
    let mut t: Trainer<MbconvSupernet> = Trainer::new(
        cfg.clone(),
        TrainOptions {
            max_steps: Some(1),
            ..TrainOptions::default()
        },
        RunDir::create(dir.path()).unwrap(),
        open_data(&cfg).unwrap(),
        &Device::flex(),
        |d| mc.init(d),
        spatial_adapters(SpaceKind::Mbconv),
    )
    .unwrap();
    let before = t.siamese().online.backbone.clone();
    t.run(&mut LossEmaSelector).unwrap();
    let after = &t.siamese().online.backbone;
    let line = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    let key = v["path_losses"][0][0].as_str().unwrap().to_string();
    let path: BlockPath = key.split('-').map(|s| s.parse().unwrap()).collect();
    assert_eq!(path.len(), 2);
    for (l, &op) in path.iter().enumerate() {
        for c in 0..4 {
            let (x, y) = (
                tensors(&before.blocks[0][l].candidates[c]),
                tensors(&after.blocks[0][l].candidates[c]),
            );
            if c == op {
                assert!(x != y, "sampled op {c} of layer {l} did not change");
            } else {
                assert!(x == y, "unsampled op {c} of layer {l} changed");
            }
        }
    }
    for b in 1..5 {
        assert!(
            tensors(&before.blocks[b]) == tensors(&after.blocks[b]),
            "block {b} changed"
        );
    }
    assert!(tensors(&before.last) == tensors(&after.last));
}

#[test]
fn mbconv_and_hytra_tiny_loops_run() {
    // MBConv: all five blocks.
    let cfg = {
        let mut c = imagenet_like_tiny(SpaceKind::Mbconv);
        c.heads.projector_in = None;
        c
    };
    let dir = tempfile::tempdir().unwrap();
    let mc = tiny_mbconv_config();
    let mut t: Trainer<MbconvSupernet> = Trainer::new(
        cfg.clone(),
        TrainOptions::default(),
        RunDir::create(dir.path()).unwrap(),
        open_data(&cfg).unwrap(),
        &Device::flex(),
        |d| mc.init(d),
        false,
    )
    .unwrap();
    let out = t.run(&mut LossEmaSelector).unwrap();
    assert!(out.finished && out.best_paths.len() == 5);
    assert!(
        metrics_losses(dir.path())
            .iter()
            .all(|(_, l)| l.is_finite())
    );

    // HyTra (widths / 16): two blocks, spatial adapters for every scale.
    let mut cfg = imagenet_like_tiny(SpaceKind::Hytra);
    let hc = HytraSupernetConfig::reduced(16);
    cfg.space.widths = hc.channels.to_vec();
    cfg.heads.projector_in = Some(hc.channels[0]);
    let dir = tempfile::tempdir().unwrap();
    let mut t = Trainer::new(
        cfg.clone(),
        TrainOptions {
            max_steps: Some(2),
            ..TrainOptions::default()
        },
        RunDir::create(dir.path()).unwrap(),
        open_data(&cfg).unwrap(),
        &Device::flex(),
        |d| hc.init(d),
        spatial_adapters(SpaceKind::Hytra),
    )
    .unwrap();
    let out = t.run(&mut LossEmaSelector).unwrap();
    assert_eq!(out.global_step, 2);
    assert!(!out.best_paths.is_empty(), "block 0 finished after 1 step");
    let pop1 = t
        .siamese()
        .online
        .backbone
        .population(1, &out.best_paths[..1]);
    assert!(!pop1.is_empty());
    assert!(
        metrics_losses(dir.path())
            .iter()
            .all(|(_, l)| l.is_finite())
    );
}

#[test]
fn fixed_batch_loss_decreases() {
    let cfg = tiny();
    let device = Device::flex().autodiff();
    let backbone = seeded_init(&device, 1, || nats_supernet(&cfg, &device));
    let population = backbone.population(0, &[]);
    let spec = ensemble_bootstrap::siamese::HeadSpec {
        projector_in: cfg.heads.projector_in,
        projector: ProjectorConfig::from_run(&cfg, 16),
        predictor: PredictorConfig::from_run(&cfg),
        spatial_adapters: false,
    };
    let (h, p) = seeded_init(&device, 2, || {
        spec.build(&backbone, &[], &population, &device).unwrap()
    });
    let mut s = Siamese::new(backbone, h, p);
    let data = open_data(&cfg).unwrap();
    let mut loader = bossnas_datasets::ViewLoader::new(
        data.train,
        ensemble_bootstrap::setup::loader_config(&cfg),
    )
    .unwrap();
    let batch = loader.next_batch(&device).unwrap();
    let paths: Vec<BlockPath> = vec![vec![0, 1], vec![1, 0]];
    let mut opt = LarsConfig::new().with_trust_coefficient(0.02).init();
    let mut losses = Vec::new();
    for _ in 0..30 {
        let (total, _) = ensemble_forward(&s, &batch.pairs, &[], &paths, false);
        losses.push(total.clone().into_data().try_to_vec::<f32>().unwrap()[0] / 2.0);
        let grads = GradientsParams::from_grads(total.backward(), &s.online);
        let grads = drop_zero_grads(&s.online, grads);
        let online = opt.step(1.0, s.online, grads);
        let target = s.target;
        s = Siamese {
            target: ensemble_bootstrap::siamese::TargetNet {
                backbone: ema_update(target.backbone, &online.backbone, 0.99),
                head: ema_update(target.head, &online.head, 0.99),
            },
            online,
        };
    }
    assert!(losses.iter().all(|l| l.is_finite()));
    let first: f32 = losses[..3].iter().sum::<f32>() / 3.0;
    let last: f32 = losses[27..].iter().sum::<f32>() / 3.0;
    assert!(last < first - 0.1, "loss did not decrease: {losses:?}");
}
