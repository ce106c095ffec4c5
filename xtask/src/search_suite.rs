//! A suite that trains a supernet, rates every block, searches and reports:
//! data → train (population-centre rating at every block end) → search → correlation → report.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use bench_nats::{CorrelateOptions, GroundTruth, ScoresInput, correlate};
use bossnas_blocks::device::DeviceSpec;
use bossnas_datasets::{DataDir, FetchPolicy, ensure};
use bossnas_search::run::{SearchRequest, search_run};
use bossnas_search::select::PopulationCentreSelectorFactory;
use ensemble_bootstrap::checkpoint::{METRICS, RESOLVED_CONFIG, RunDir};
use ensemble_bootstrap::config::RunConfig;
use ensemble_bootstrap::time_budget::block_runs;
use ensemble_bootstrap::trainer::{TrainOptions, train_space};

use crate::suite_report::{Compute, DataRecord, NatsRecord, SuiteReport};
use crate::suites::{SearchSuite, TruthNeed};
use crate::workspace;

/// Options of `cargo xtask reproduce` for the training suites.
#[derive(Debug, Clone)]
pub struct ReproduceOptions {
    /// Reports go to `<out>/<suite>/`.
    pub out: PathBuf,
    /// Run directories go to `<runs>/<suite>-<unix time>/`.
    pub runs: PathBuf,
    /// `cpu`, `wgpu[:N]`, `cuda[:N]` (default: the preset's).
    pub device: Option<String>,
    /// A config file over the suite's preset (its `preset` must be the suite's).
    pub config: Option<PathBuf>,
    /// Data directory (default `$BOSSNAS_DATA`, else the cache).
    pub data: Option<PathBuf>,
    /// Download CIFAR when it is nowhere else.
    pub download: bool,
    /// Stop training after this many optimizer steps (a shortened run; the report says so).
    pub max_steps: Option<u64>,
    /// Wall-clock training budget, split over the blocks (a shortened run; the report says so).
    pub time_budget: Option<std::time::Duration>,
    /// Continue an interrupted run of this suite.
    pub resume: Option<PathBuf>,
    /// NATS-Bench ground truth CSV (default `$BOSSNAS_NATS_TRUTH`, else shared/data).
    pub truth: Option<PathBuf>,
    /// No progress bar.
    pub quiet: bool,
}

pub fn run(suite: &SearchSuite, opts: &ReproduceOptions) -> Result<PathBuf> {
    let started = Instant::now();
    let report_dir = opts.out.join(suite.name);

    // Everything that can be checked before hours of training is checked first.
    let (mut cfg, run_dir, resume) = match &opts.resume {
        Some(dir) => {
            let path = dir.join(RESOLVED_CONFIG);
            if !path.is_file() {
                bail!("--resume {}: {} is missing", dir.display(), path.display());
            }
            let cfg = RunConfig::load(&path)?;
            if cfg.preset.as_deref() != Some(suite.preset) {
                bail!(
                    "--resume {}: that run used preset {:?}, suite {} uses {:?}",
                    dir.display(),
                    cfg.preset,
                    suite.name,
                    suite.preset
                );
            }
            (cfg, dir.clone(), true)
        }
        None => {
            let cfg = match &opts.config {
                None => RunConfig::preset(suite.preset)?,
                Some(path) => {
                    let cfg = RunConfig::load(path)?;
                    if cfg.preset.as_deref() != Some(suite.preset) {
                        bail!(
                            "--config {}: it starts from preset {:?}; suite {} needs                              `preset = \"{}\"` at its top",
                            path.display(),
                            cfg.preset,
                            suite.name,
                            suite.preset
                        );
                    }
                    cfg
                }
            };
            let stamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            (
                cfg,
                opts.runs.join(format!("{}-{stamp}", suite.name)),
                false,
            )
        }
    };
    if let Some(d) = &opts.device {
        cfg.device = d.clone();
    }
    let spec: DeviceSpec = cfg.device.parse()?;

    let truth_path = opts.truth.clone().unwrap_or_else(workspace::nats_c10_truth);
    let truth = match suite.nats_c10_truth {
        TruthNeed::None => None,
        TruthNeed::IfPresent if !truth_path.is_file() => None,
        _ => Some(GroundTruth::load(&truth_path).with_context(|| {
            format!(
                "suite {} compares with NATS-Bench SSS CIFAR-10: ground truth {} (columns index, \
                 arch, cifar10_test_acc_hp90; see shared/data/README.md) could not be read; pass \
                 --truth <csv> or set BOSSNAS_NATS_TRUTH",
                suite.name,
                truth_path.display()
            )
        })?),
    };

    let data = match suite.dataset {
        None => DataRecord {
            dataset: "synthetic images (preset)".into(),
            root: None,
            how: "generated".into(),
            data_dir: None,
        },
        Some(dataset) => {
            let dir = DataDir::resolve(opts.data.as_deref());
            let policy = FetchPolicy {
                local_archives: match dataset {
                    bossnas_datasets::Dataset::Cifar10 => vec![workspace::shared_cifar10_jpeg()],
                    _ => Vec::new(),
                },
                download: opts.download,
                ..FetchPolicy::default()
            };
            eprintln!("looking for {} in {dir}", dataset.name());
            let located = ensure(dataset, &dir.path, &policy)
                .with_context(|| format!("suite {} needs {}", suite.name, dataset.name()))?;
            eprintln!(
                "{}: {} ({})",
                dataset.name(),
                located.root.display(),
                located.how
            );
            if !resume {
                cfg.data.root = located.root.clone();
            }
            DataRecord {
                dataset: dataset.name().into(),
                root: Some(located.root),
                how: located.how,
                data_dir: Some(dir.to_string()),
            }
        }
    };
    cfg.validate()?;
    let device = spec.device()?;

    // Train every block; the population-centre selector rates each block at its end.
    let run = RunDir::create(&run_dir)?;
    if resume {
        cfg.save_resolved(run.root())?;
    }
    eprintln!(
        "suite {}: {} run {} on {spec}",
        suite.name,
        if resume { "resuming" } else { "starting" },
        run.root().display()
    );
    let train_started = Instant::now();
    let outcome = train_space(
        cfg.clone(),
        TrainOptions {
            max_steps: opts.max_steps,
            time_budget: opts.time_budget,
            progress: !opts.quiet,
            ..TrainOptions::default()
        },
        run.clone(),
        &device,
        resume,
        &PopulationCentreSelectorFactory::default(),
    );
    if outcome.is_err() && !resume && run.load_latest().ok().flatten().is_none() {
        let _ = std::fs::remove_dir_all(run.root());
    }
    let outcome = outcome.with_context(|| format!("training {}", run.root().display()))?;
    let train_s = train_started.elapsed().as_secs_f64();
    if !outcome.finished {
        bail!(
            "training stopped after {} optimizer steps (--max-steps) before every block was \
             rated; continue it with `cargo xtask reproduce --suite {} --resume {}`",
            outcome.global_step,
            suite.name,
            run.root().display()
        );
    }

    // Greedy block-wise search over the per-block rankings.
    let search_started = Instant::now();
    let searched = search_run(run.root(), &SearchRequest::default())
        .with_context(|| format!("searching {}", run.root().display()))?;
    let search_s = search_started.elapsed().as_secs_f64();

    // NATS: how well the block-wise scores rank all 32,768 architectures.
    let correlate_started = Instant::now();
    let scores_csv = run.root().join("search/nats_scores.csv");
    let nats = match &truth {
        Some(truth) if scores_csv.is_file() => Some(nats_record(
            &scores_csv,
            truth,
            &searched.summary,
            &report_dir,
        )?),
        Some(_) if suite.nats_c10_truth == TruthNeed::Required => bail!(
            "search wrote no {}: the run's rankings do not cover all 32,768 NATS-SSS \
             architectures (was the preset's width list changed?)",
            scores_csv.display()
        ),
        _ => None,
    };
    let correlate_s = correlate_started.elapsed().as_secs_f64();

    let images_per_step = (cfg.train.batch_size * cfg.train.accumulation_steps) as u64;
    let report = SuiteReport {
        suite: *suite,
        run_dir: run.root().to_path_buf(),
        config_toml: cfg.to_toml_string(),
        config_file: opts.config.clone().filter(|_| !resume),
        search: searched.summary,
        nats,
        data,
        compute: Compute {
            device: spec.to_string(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu: workspace::cpu_model(),
            wall_s: started.elapsed().as_secs_f64(),
            train_s,
            search_s,
            correlate_s,
            optimizer_steps: outcome.global_step,
            images_seen: outcome.global_step * images_per_step,
            view_forwards: outcome.global_step
                * images_per_step
                * 2
                * cfg.train.paths_per_step as u64,
            resumed: resume,
            max_steps: opts.max_steps,
            time_budget_min: opts.time_budget.map(|d| d.as_secs_f64() / 60.0),
            blocks: block_runs(&run.root().join(METRICS))
                .with_context(|| format!("reading {}", run.root().join(METRICS).display()))?,
        },
        git_commit: workspace::git_commit(),
    };
    report.write(&report_dir)?;
    Ok(report_dir)
}

fn nats_record(
    scores_csv: &Path,
    truth: &GroundTruth,
    summary: &bossnas_search::output::SearchSummary,
    report_dir: &Path,
) -> Result<NatsRecord> {
    let scores = ScoresInput::from_csv(scores_csv, Some("score"))
        .with_context(|| format!("reading {}", scores_csv.display()))?;
    let opts = CorrelateOptions::default();
    let report = correlate(&scores, truth, &opts)?;
    let dir = report_dir.join("correlation");
    report
        .write(&dir)
        .with_context(|| format!("writing {}", dir.display()))?;
    let arch = summary
        .arch_string
        .parse::<hytra_space::nats::NatsArch>()
        .ok();
    Ok(NatsRecord {
        chosen_accuracy: arch.and_then(|a| truth.accuracy_of(&a, opts.accuracy)),
        chosen_rank: arch.and_then(|a| truth.accuracy_rank(&a, opts.accuracy)),
        population: truth.len(),
        correlation: report,
        files: dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suites::{Suite, search_suite};

    fn options(tmp: &Path) -> ReproduceOptions {
        ReproduceOptions {
            out: tmp.join("reports"),
            runs: tmp.join("runs"),
            device: Some("cpu".into()),
            config: None,
            data: Some(tmp.join("data")),
            download: false,
            max_steps: None,
            time_budget: None,
            resume: None,
            truth: None,
            quiet: true,
        }
    }

    #[test]
    fn smoke_suite_writes_a_report_with_compute_and_result() {
        let tmp = tempfile::tempdir().unwrap();
        let suite = search_suite(Suite::Smoke).unwrap();
        let dir = run(&suite, &options(tmp.path())).unwrap();
        assert_eq!(dir, tmp.path().join("reports/smoke"));
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap())
                .unwrap();
        let cfg = RunConfig::preset("tiny").unwrap();
        let steps = json["compute"]["optimizer_steps"].as_u64().unwrap();
        assert!(steps > 0);
        assert_eq!(
            json["compute"]["images_seen"].as_u64().unwrap(),
            steps * (cfg.train.batch_size * cfg.train.accumulation_steps) as u64
        );
        assert_eq!(json["compute"]["device"], "cpu");
        // Every block ran its planned steps (no time budget) and the report says so.
        let runs = json["compute"]["blocks"].as_array().unwrap();
        assert_eq!(runs.len(), 3);
        assert!(
            runs.iter()
                .all(|b| b["stopped_by_time_budget"] == false && b["steps"] == b["planned_steps"])
        );
        assert_eq!(
            runs.iter()
                .map(|b| b["steps"].as_u64().unwrap())
                .sum::<u64>(),
            steps
        );
        assert_eq!(json["preset"], "tiny");
        // Three NATS blocks, each with a chosen path; the architecture is named in the official
        // NATS-SSS widths (op i ↔ 8·(i + 1)) whatever the proxy supernet's widths, so the tiny
        // preset's two ops give 8 or 16.
        let blocks = json["result"]["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 3);
        let arch: hytra_space::nats::NatsArch = json["result"]["arch_string"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(arch.widths().iter().all(|w| [8, 16].contains(w)), "{arch}");
        let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
        assert!(md.contains("## Compute"), "{md}");
        assert!(md.contains(json["result"]["arch_string"].as_str().unwrap()));
        assert!(md.contains("preset = \"tiny\""), "the config is embedded");
    }

    #[test]
    fn a_suite_without_its_data_stops_before_training_and_says_where_it_looked() {
        let tmp = tempfile::tempdir().unwrap();
        let suite = search_suite(Suite::NatsC100Paper).unwrap();
        let err = run(&suite, &options(tmp.path())).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("needs CIFAR-100"), "{msg}");
        assert!(
            msg.contains(&tmp.path().join("data").display().to_string()),
            "{msg}"
        );
        assert!(msg.contains("cifar-100-binary/{train,test}.bin"), "{msg}");
        assert!(
            !tmp.path().join("runs").exists(),
            "no run directory was created"
        );
    }

    #[test]
    fn a_missing_ground_truth_stops_a_nats_suite_before_training() {
        let tmp = tempfile::tempdir().unwrap();
        let suite = search_suite(Suite::NatsC10Cpu).unwrap();
        let mut opts = options(tmp.path());
        opts.truth = Some(tmp.path().join("absent.csv"));
        let msg = format!("{:#}", run(&suite, &opts).unwrap_err());
        assert!(msg.contains("absent.csv"), "{msg}");
        assert!(msg.contains("cifar10_test_acc_hp90"), "{msg}");
        assert!(!tmp.path().join("runs").exists());
    }
}
