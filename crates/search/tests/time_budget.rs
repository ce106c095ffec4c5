//! `TrainOptions::time_budget` in the real pipeline: a tiny budget stops every block early (at
//! a step boundary, after at least one step), and the run still finishes, rates every block
//! and searches. No exact step counts: they depend on the machine's speed.

use std::time::{Duration, Instant};

use bossnas_config::RunConfig;
use bossnas_search::output::{RATING_DIR, ranking_csv_name, read_ranking_csv};
use bossnas_search::run::{SearchRequest, search_run};
use bossnas_search::select::PopulationCentreSelectorFactory;
use burn::tensor::Device;
use ensemble_bootstrap::checkpoint::{METRICS, RunDir};
use ensemble_bootstrap::time_budget::block_runs;
use ensemble_bootstrap::trainer::{TrainOptions, train_space};

#[test]
fn a_tiny_time_budget_stops_every_block_early_and_the_run_still_rates_and_searches() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = RunConfig::preset("tiny").unwrap();
    // Far more steps than a second allows, so that the budget, not the schedule, ends blocks.
    cfg.train.epochs_per_block = 100_000;
    let started = Instant::now();
    let out = train_space(
        cfg,
        TrainOptions {
            time_budget: Some(Duration::from_millis(600)),
            ..TrainOptions::default()
        },
        RunDir::create(dir.path()).unwrap(),
        &Device::flex(),
        false,
        &PopulationCentreSelectorFactory::default(),
    )
    .unwrap();
    assert!(out.finished);
    assert_eq!(out.best_paths.len(), 3);
    // Budget plus three ratings of the tiny supernet: seconds, not the hours planned.
    assert!(started.elapsed() < Duration::from_secs(120));

    let runs = block_runs(&dir.path().join(METRICS)).unwrap();
    assert_eq!(runs.iter().map(|r| r.block).collect::<Vec<_>>(), [0, 1, 2]);
    for r in &runs {
        assert!(r.stopped_by_time_budget, "{r:?}");
        assert!(r.steps >= 1 && r.steps < r.planned_steps, "{r:?}");
    }
    assert_eq!(runs.iter().map(|r| r.steps).sum::<u64>(), out.global_step);

    // Every block was rated, and its best path is the trainer's; the search runs on the result.
    for (k, best) in out.best_paths.iter().enumerate() {
        let r =
            read_ranking_csv(&dir.path().join(RATING_DIR).join(ranking_csv_name(k)), k).unwrap();
        assert_eq!(&r.entries[0].path, best);
    }
    let searched = search_run(dir.path(), &SearchRequest::default()).unwrap();
    assert_eq!(searched.summary.blocks, out.best_paths);
}

#[test]
fn a_generous_time_budget_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = train_space(
        RunConfig::preset("tiny").unwrap(),
        TrainOptions {
            time_budget: Some(Duration::from_secs(3600)),
            ..TrainOptions::default()
        },
        RunDir::create(dir.path()).unwrap(),
        &Device::flex(),
        false,
        &PopulationCentreSelectorFactory::default(),
    )
    .unwrap();
    assert!(out.finished);
    let runs = block_runs(&dir.path().join(METRICS)).unwrap();
    assert_eq!(runs.len(), 3);
    for r in &runs {
        assert!(!r.stopped_by_time_budget, "{r:?}");
        assert_eq!(r.steps, r.planned_steps, "{r:?}");
    }
}
