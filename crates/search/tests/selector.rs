//! The population-centre selector inside the real trainer (tiny NATS run on burn-flex).

use bossnas_config::RunConfig;
use bossnas_search::bn::collect_bn_stats;
use bossnas_search::output::{RATING_DIR, ranking_csv_name, read_ranking_csv};
use bossnas_search::rating::{CandidateModel, rate_population};
use bossnas_search::run::{SearchRequest, rate_run, search_run};
use bossnas_search::search::Budget;
use bossnas_search::select::{PopulationCentreSelectorFactory, RateOptions, SiameseCandidates};
use bossnas_supernet::Supernet;
use burn::tensor::{Device, Tensor};
use ensemble_bootstrap::checkpoint::RunDir;
use ensemble_bootstrap::setup::{nats_supernet, open_data};
use ensemble_bootstrap::trainer::{TrainOptions, Trainer, train_space};

fn tiny() -> RunConfig {
    RunConfig::preset("tiny").unwrap()
}

#[test]
fn tiny_nats_run_selects_by_rating_and_searches() {
    let dir = tempfile::tempdir().unwrap();
    let out = train_space(
        tiny(),
        TrainOptions::default(),
        RunDir::create(dir.path()).unwrap(),
        &Device::flex(),
        false,
        &PopulationCentreSelectorFactory::default(),
    )
    .unwrap();
    assert!(out.finished);
    // Every block's ranking was written, and its best is the trainer's best path.
    for (k, best) in out.best_paths.iter().enumerate() {
        let r =
            read_ranking_csv(&dir.path().join(RATING_DIR).join(ranking_csv_name(k)), k).unwrap();
        // Tiny preset: 2 widths, blocks of 2, 2, 1 layers.
        assert_eq!(r.entries.len(), [4, 4, 2][k]);
        assert_eq!(&r.entries[0].path, best);
        assert!(r.entries.iter().all(|e| (-4.0..=4.0).contains(&e.score)));
    }
    let report = search_run(dir.path(), &SearchRequest::default()).unwrap();
    assert_eq!(report.summary.method, "greedy");
    assert_eq!(report.summary.blocks, out.best_paths);
    let arch = std::fs::read_to_string(dir.path().join("search/arch.json")).unwrap();
    assert!(arch.trim().starts_with('"'), "{arch}");
    // A budget only the smallest architecture meets (NATS costs use the official widths).
    let small = hytra_space::nats::NatsArch::from_op_indices([0; 5])
        .unwrap()
        .cost(32, 10);
    let req = SearchRequest {
        budget: Budget {
            max_params: Some(small.params),
            max_madds: None,
        },
        ..SearchRequest::default()
    };
    let c = search_run(dir.path(), &req).unwrap();
    assert_eq!(c.summary.method, "exhaustive");
    assert_eq!(c.summary.blocks, vec![vec![0, 0], vec![0, 0], vec![0]]);
}

#[test]
fn rating_is_deterministic_and_leaves_the_trainer_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny();
    let data = open_data(&cfg).unwrap();
    let c = cfg.clone();
    let opts = TrainOptions {
        max_steps: Some(2),
        ..TrainOptions::default()
    };
    let mut trainer = Trainer::new(
        cfg.clone(),
        opts,
        RunDir::create(dir.path()).unwrap(),
        data,
        &Device::flex(),
        move |d: &Device| nats_supernet(&c, d),
        false,
    )
    .unwrap();
    let out = trainer
        .run(&mut ensemble_bootstrap::selector::LossEmaSelector)
        .unwrap();
    assert!(!out.finished);
    let s = trainer.siamese();
    let before = collect_bn_stats(&s.target);
    let pop = s.online.backbone.population(0, &[]);
    let dev = trainer.device().clone();
    let x = |seed: f32| {
        Tensor::<1>::from_floats(
            (0..4 * 3 * 8 * 8)
                .map(|i| (i as f32 * 0.37 + seed).sin())
                .collect::<Vec<_>>()
                .as_slice(),
            &dev,
        )
        .reshape([4, 3, 8, 8])
    };
    let calib = (x(0.5), x(1.5));
    let eval = vec![(x(2.0), x(3.0)), (x(4.0), x(5.0))];
    let mut m = SiameseCandidates::new(&s.online, &s.target, &[], false, true, 4);
    let a = rate_population(&mut m, &pop, &eval, &calib).unwrap();
    let mut m2 = SiameseCandidates::new(&s.online, &s.target, &[], false, true, 4);
    let b = rate_population(&mut m2, &pop, &eval, &calib).unwrap();
    assert_eq!(a.len(), 4);
    for (p, q) in a.iter().zip(&b) {
        assert_eq!(p.path, q.path);
        assert!((p.score - q.score).abs() < 1e-6);
    }
    // The trainer's own BN statistics did not move.
    assert_eq!(collect_bn_stats(&s.target), before);
    // Calibrated statistics differ between candidates (BN re-estimated per candidate).
    m.calibrate(&pop[0], &calib).unwrap();
    let p0 = m.target_projection(&pop[0], x(2.0));
    assert_eq!(p0.dims()[0], 4);

    // `bossnas rate --run`: the checkpoint is in block 0.
    let r = rate_run(dir.path(), &Device::flex(), &RateOptions::default()).unwrap();
    assert_eq!((r.block, r.candidates), (0, 4));
    assert!(r.files.iter().all(|f| f.is_file()));
}

#[test]
fn rating_with_the_prefix_run_once_gives_the_same_scores() {
    use bossnas_search::bn::BnCalibration;
    use bossnas_search::select::PrefixFeatures;

    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny();
    let data = open_data(&cfg).unwrap();
    let c = cfg.clone();
    let mut trainer = Trainer::new(
        cfg.clone(),
        TrainOptions {
            max_steps: Some(2),
            ..TrainOptions::default()
        },
        RunDir::create(dir.path()).unwrap(),
        data,
        &Device::flex(),
        move |d: &Device| nats_supernet(&c, d),
        false,
    )
    .unwrap();
    trainer
        .run(&mut ensemble_bootstrap::selector::LossEmaSelector)
        .unwrap();
    let s = trainer.siamese();
    let dev = trainer.device().clone();
    let x = |seed: f32| {
        Tensor::<1>::from_floats(
            (0..4 * 3 * 8 * 8)
                .map(|i| (i as f32 * 0.29 + seed).cos())
                .collect::<Vec<_>>()
                .as_slice(),
            &dev,
        )
        .reshape([4, 3, 8, 8])
    };
    let calib = (x(0.5), x(1.5));
    let eval = vec![(x(2.0), x(3.0)), (x(4.0), x(5.0))];
    // Blocks 1 and 2 have a prefix (the chosen paths of the blocks before them).
    let b0 = s.online.backbone.population(0, &[])[1].clone();
    let b1 = s.online.backbone.population(1, std::slice::from_ref(&b0))[2].clone();
    for chosen in [vec![b0.clone()], vec![b0.clone(), b1]] {
        let pop = s.online.backbone.population(chosen.len(), &chosen);
        let mut literal = SiameseCandidates::new(&s.online, &s.target, &chosen, false, true, 4);
        let a = rate_population(&mut literal, &pop, &eval, &calib).unwrap();
        let prefix = PrefixFeatures::new(&s.target, &chosen, &BnCalibration::infer(), &calib.1);
        let pcalib = (
            prefix.calibration(calib.0.clone()),
            prefix.calibration(calib.1.clone()),
        );
        let peval: Vec<_> = eval
            .iter()
            .map(|(u, v)| (prefix.evaluation(u.clone()), prefix.evaluation(v.clone())))
            .collect();
        let mut cached = SiameseCandidates::new(&s.online, &s.target, &chosen, false, true, 4)
            .with_prefixed_inputs();
        let b = rate_population(&mut cached, &pop, &peval, &pcalib).unwrap();
        assert_eq!(a.len(), pop.len());
        for (p, q) in a.iter().zip(&b) {
            assert_eq!(p.path, q.path, "block {}", chosen.len());
            assert!(
                (p.score - q.score).abs() < 1e-6,
                "block {}: {} vs {}",
                chosen.len(),
                p.score,
                q.score
            );
        }
    }
}
