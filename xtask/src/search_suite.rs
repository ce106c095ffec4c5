//! A suite that trains a supernet, rates every block, searches and reports:
//! data → train (population-centre rating at every block end) → search → correlation → report.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bench_nats::potential::{BlockSplit, PotentialTable};
use bench_nats::{CorrelateOptions, GroundTruth, ScoresInput, correlate};
use bossnas_config::RunConfig;
use bossnas_datasets::{DataDir, FetchPolicy, NatsFetchPolicy, ensure, ensure_nats};
use bossnas_kernels::device::{DeviceSpec, ToDevice};
use bossnas_search::run::{SearchRequest, search_run};
use bossnas_search::select::PopulationCentreSelectorFactory;
use ensemble_bootstrap::checkpoint::{METRICS, RunDir};
use ensemble_bootstrap::progress::ProgressFormat;
use ensemble_bootstrap::selector::SelectorFactory;
use ensemble_bootstrap::time_budget::block_runs;
use ensemble_bootstrap::trainer::{TrainOptions, train_space};

use crate::suite_report::{
    Compute, DataRecord, NatsRecord, SuiteReport, SweepSection, config_diff,
};
use crate::suites::{SearchSuite, SweepRef, TruthNeed};
use crate::sweep::spec::SweepFile;
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
    /// NATS-Bench ground truth CSV (default: `nats-sss/nats_sss_cifar10.csv` in the data
    /// directory, copied from shared/data or downloaded when missing).
    pub truth: Option<PathBuf>,
    /// No progress output.
    pub quiet: bool,
    /// Training progress as JSON lines.
    pub json_progress: bool,
}

pub fn run(suite: &SearchSuite, opts: &ReproduceOptions) -> Result<PathBuf> {
    let started = Instant::now();
    let report_dir = opts.out.join(suite.name);

    // Everything that can be checked before hours of training is checked first.
    let (mut cfg, run_dir, resume) = match &opts.resume {
        Some(dir) => {
            let cfg = RunConfig::load_run(dir).context("--resume")?;
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
            (cfg, opts.runs.clone(), false)
        }
    };
    if let Some(d) = &opts.device {
        cfg.device = d.clone();
    }
    let spec: DeviceSpec = cfg.device.parse()?;

    let truth = load_truth(
        suite.nats_c10_truth,
        &format!("suite {}", suite.name),
        opts.truth.as_deref(),
        opts.data.as_deref(),
        opts.download,
    )?;
    let data = match suite.dataset {
        None => DataRecord {
            dataset: "synthetic images (preset)".into(),
            root: None,
            how: "generated".into(),
            data_dir: None,
        },
        Some(dataset) => {
            let who = format!("suite {}", suite.name);
            let data = locate_data(dataset, &who, opts.data.as_deref(), opts.download)?;
            if !resume {
                cfg.data.root = data.root.clone().expect("a located dataset has a root");
            }
            data
        }
    };
    cfg.validate()?;
    let device = spec.device()?;

    // A new run gets a directory no other run uses (same-second starts get `-2`, ...); a
    // resumed one is locked against a second writer.
    let run = RunDir::open_or_create(&run_dir, resume, suite.name)?;
    let outcome = train_search_correlate(
        &cfg,
        run,
        resume,
        &device,
        &spec,
        &Stages {
            name: format!("suite {}", suite.name),
            resume_hint: format!("cargo xtask reproduce --suite {}", suite.name),
            truth: truth.as_ref(),
            truth_required: suite.nats_c10_truth == TruthNeed::Required,
            correlation_dir: report_dir.join("correlation"),
            max_steps: opts.max_steps,
            time_budget: opts.time_budget,
            quiet: opts.quiet,
            progress_format: if opts.json_progress {
                ProgressFormat::Json
            } else {
                ProgressFormat::Human
            },
        },
        &PopulationCentreSelectorFactory::default(),
    )?;
    let ProtocolOutcome {
        run,
        searched,
        nats,
        train_s,
        search_s,
        correlate_s,
        global_step,
        ..
    } = outcome;

    let images_per_step = (cfg.train.batch_size * cfg.train.accumulation_steps) as u64;
    // Pictures beside the report: curves, every block's rating, the searched architecture.
    let figures = bossnas_search::figures::write_run_figures(
        run.root(),
        &report_dir.join("figures"),
        Some(&searched.summary.blocks),
        truth.as_ref(),
    )
    .with_context(|| format!("drawing the figures of {}", run.root().display()))?
    .into_iter()
    .map(|mut f| {
        for p in [&mut f.png, &mut f.svg] {
            if let Ok(rel) = p.strip_prefix(&report_dir) {
                *p = rel.to_path_buf();
            }
        }
        f
    })
    .collect();
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
            optimizer_steps: global_step,
            images_seen: global_step * images_per_step,
            view_forwards: global_step * images_per_step * 2 * cfg.train.paths_per_step as u64,
            resumed: resume,
            max_steps: opts.max_steps,
            time_budget_min: opts.time_budget.map(|d| d.as_secs_f64() / 60.0),
            blocks: block_runs(&run.root().join(METRICS))
                .with_context(|| format!("reading {}", run.root().join(METRICS).display()))?,
        },
        git_commit: workspace::git_commit(),
        protocol_diff: match suite.paper_preset {
            Some(paper) => config_diff(
                &serde_json::to_value(&cfg)?,
                &serde_json::to_value(RunConfig::preset(paper)?)?,
            ),
            None => Vec::new(),
        },
        sweep: suite.sweep.and_then(|sw| sweep_section(sw, &report_dir)),
        figures,
    };
    report.write(&report_dir)?;
    Ok(report_dir)
}

/// The suite's sweep figures, when its results exist (a missing or unreadable sweep is a
/// note on stderr, not a failed suite: the sweep is optional context).
fn sweep_section(sw: SweepRef, report_dir: &Path) -> Option<SweepSection> {
    let build = || -> Result<Option<SweepSection>> {
        let path = workspace::root().join(sw.file);
        let file = SweepFile::load(&path)?;
        let root = path.parent().unwrap_or(Path::new(".")).join(&file.name);
        let summary = crate::sweep::report::summarise(&file, &root)?;
        if summary.rows.is_empty() {
            return Ok(None);
        }
        std::fs::create_dir_all(report_dir)?;
        crate::sweep::report::curve(
            &report_dir.join("sweep-curve"),
            &summary.rows,
            &summary.refs,
        )?;
        Ok(Some(SweepSection {
            file: sw.file.to_string(),
            variant: sw.variant.to_string(),
            seed_tau_b: summary
                .rows
                .iter()
                .find(|r| r.variant == sw.variant)
                .map(|r| r.tau_b.clone())
                .unwrap_or_default(),
            table: crate::sweep::report::table(&summary.rows, &summary.baselines),
            curve: Some("sweep-curve.svg".into()),
        }))
    };
    build().unwrap_or_else(|e| {
        eprintln!("note: sweep {} not in the report: {e:#}", sw.file);
        None
    })
}

/// Loads the NATS-Bench CIFAR-10 ground truth a protocol needs: `--truth`, else the data
/// directory's copy (present, else copied from shared/data beside the checkout, else
/// downloaded from the BossNAS repository at a pinned commit, SHA-256 checked). `None` when
/// `need` is [`TruthNeed::None`], or [`TruthNeed::IfPresent`] and none is to be had.
pub fn load_truth(
    need: TruthNeed,
    who: &str,
    truth: Option<&Path>,
    data: Option<&Path>,
    download: bool,
) -> Result<Option<GroundTruth>> {
    let truth_path = match (truth, need) {
        (_, TruthNeed::None) => return Ok(None),
        (Some(t), _) => t.to_path_buf(),
        (None, need) => {
            let dir = DataDir::resolve(data);
            let policy = NatsFetchPolicy {
                local_copies: vec![workspace::shared_data()],
                download: download && need == TruthNeed::Required,
                ..NatsFetchPolicy::default()
            };
            match ensure_nats(&dir.path, &policy) {
                Ok(nats) => {
                    if nats.how != "present" {
                        eprintln!(
                            "NATS-Bench ground truth: {} ({})",
                            nats.truth().display(),
                            nats.how
                        );
                    }
                    nats.truth()
                }
                Err(_) if need == TruthNeed::IfPresent => return Ok(None),
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "{who} compares with NATS-Bench SSS CIFAR-10 (or pass --truth <csv>)"
                        )
                    });
                }
            }
        }
    };
    Ok(Some(GroundTruth::load(&truth_path).with_context(|| {
        format!(
            "{who} compares with NATS-Bench SSS CIFAR-10: ground truth {} (columns index, arch, \
             cifar10_test_acc_hp90; see docs/reproduce.md) could not be read; pass --truth <csv>",
            truth_path.display()
        )
    })?))
}

/// The official full-budget per-block potentials (`bossnas-reference/path_rank_stage{k}.csv`,
/// CIFAR-10 split), when they are in the data directory or `shared/data`; never downloaded.
/// `None` (with the reason on stderr) when absent or unreadable: they only add a diagnostic.
pub fn load_official_potentials(data: Option<&Path>) -> Option<Vec<PotentialTable>> {
    let dir = DataDir::resolve(data);
    let policy = NatsFetchPolicy {
        local_copies: vec![workspace::shared_data()],
        download: false,
        ..NatsFetchPolicy::default()
    };
    let nats = ensure_nats(&dir.path, &policy).ok()?;
    let split = BlockSplit::cifar10();
    let tables: Result<Vec<PotentialTable>, _> = split
        .blocks
        .iter()
        .enumerate()
        .map(|(k, layers)| {
            let path = nats.reference_dir().join(format!("path_rank_stage{k}.csv"));
            PotentialTable::load(path, layers.clone())
        })
        .collect();
    match tables {
        Ok(t) => Some(t),
        Err(e) => {
            eprintln!("official per-block potentials not used: {e}");
            None
        }
    }
}

/// Finds (unpacking or downloading when allowed) `dataset` in the data directory.
pub fn locate_data(
    dataset: bossnas_datasets::Dataset,
    who: &str,
    data: Option<&Path>,
    download: bool,
) -> Result<DataRecord> {
    let mut dir = DataDir::resolve(data);
    // Absolute, so the run's saved config does not depend on the working folder.
    if let Ok(abs) = std::path::absolute(&dir.path) {
        dir.path = abs;
    }
    let policy = FetchPolicy {
        local_archives: match dataset {
            bossnas_datasets::Dataset::Cifar10 => vec![workspace::shared_cifar10_jpeg()],
            _ => Vec::new(),
        },
        download,
        ..FetchPolicy::default()
    };
    eprintln!("looking for {} in {dir}", dataset.name());
    let located = ensure(dataset, &dir.path, &policy)
        .with_context(|| format!("{who} needs {}", dataset.name()))?;
    eprintln!(
        "{}: {} ({})",
        dataset.name(),
        located.root.display(),
        located.how
    );
    Ok(DataRecord {
        dataset: dataset.name().into(),
        root: Some(located.root),
        how: located.how,
        data_dir: Some(dir.to_string()),
    })
}

/// What [`train_search_correlate`] does besides training.
pub struct Stages<'a> {
    /// The suite or sweep point, for messages.
    pub name: String,
    /// The command that continues an interrupted run (`--resume <dir>` is appended).
    pub resume_hint: String,
    /// Ground truth to correlate the searched NATS scores with.
    pub truth: Option<&'a GroundTruth>,
    /// Fail when the run writes no NATS scores to correlate.
    pub truth_required: bool,
    /// Where the full correlation report goes.
    pub correlation_dir: PathBuf,
    /// Stop training after this many optimizer steps.
    pub max_steps: Option<u64>,
    /// Wall-clock training budget, split over the blocks.
    pub time_budget: Option<std::time::Duration>,
    /// No progress output.
    pub quiet: bool,
    /// Training progress for people or as JSON lines.
    pub progress_format: ProgressFormat,
}

/// What one protocol run produced.
pub struct ProtocolOutcome {
    pub run: RunDir,
    pub searched: bossnas_search::run::SearchReport,
    pub nats: Option<NatsRecord>,
    pub train_s: f64,
    pub search_s: f64,
    pub correlate_s: f64,
    /// CPU seconds of the correlation (an evaluation against NATS-Bench, not part of a
    /// search a user would run).
    pub correlate_cpu_s: f64,
    pub global_step: u64,
}

/// The protocol shared by the suites and the sweeps: train every block (the population-centre
/// selector rates each block at its end), search greedily, and correlate NATS scores with the
/// ground truth. `cfg` must be validated and point at its data.
pub fn train_search_correlate<F: SelectorFactory>(
    cfg: &RunConfig,
    run: RunDir,
    resume: bool,
    device: &burn::tensor::Device,
    spec: &DeviceSpec,
    stages: &Stages<'_>,
    selector: &F,
) -> Result<ProtocolOutcome> {
    if resume {
        cfg.save_resolved(run.root())?;
    }
    eprintln!(
        "{}: {} run {} on {spec}",
        stages.name,
        if resume { "resuming" } else { "starting" },
        run.root().display()
    );
    let train_started = Instant::now();
    let outcome = train_space(
        cfg.clone(),
        TrainOptions {
            max_steps: stages.max_steps,
            time_budget: stages.time_budget,
            progress: !stages.quiet,
            progress_format: stages.progress_format,
            ..TrainOptions::default()
        },
        run.clone(),
        device,
        resume,
        selector,
    );
    if outcome.is_err() && !resume && run.load_latest().ok().flatten().is_none() {
        let _ = std::fs::remove_dir_all(run.root());
    }
    let outcome = outcome.with_context(|| format!("training {}", run.root().display()))?;
    let train_s = train_started.elapsed().as_secs_f64();
    if !outcome.finished {
        bail!(
            "training stopped after {} optimizer steps (--max-steps) before every block was \
             rated; continue it with `{} --resume {}`",
            outcome.global_step,
            stages.resume_hint,
            run.root().display()
        );
    }

    // Greedy block-wise search over the per-block rankings.
    let search_started = Instant::now();
    let searched = search_run(run.root(), &SearchRequest::default())
        .with_context(|| format!("searching {}", run.root().display()))?;
    let search_s = search_started.elapsed().as_secs_f64();
    if !stages.quiet {
        eprintln!(
            "searched ({}): {} (score {:.4})",
            searched.summary.method, searched.summary.arch_string, searched.summary.score
        );
    }

    // NATS: how well the block-wise scores rank all 32,768 architectures.
    let correlate_started = Instant::now();
    let correlate_cpu0 = workspace::process_cpu_seconds();
    let scores_csv = run.root().join("search/nats_scores.csv");
    let nats = match stages.truth {
        Some(truth) if scores_csv.is_file() => Some(nats_record(
            &scores_csv,
            truth,
            &searched.summary,
            &stages.correlation_dir,
        )?),
        Some(_) if stages.truth_required => bail!(
            "search wrote no {}: the run's rankings do not cover all 32,768 NATS-SSS \
             architectures (was the preset's width list changed?)",
            scores_csv.display()
        ),
        _ => None,
    };
    let correlate_s = correlate_started.elapsed().as_secs_f64();
    let correlate_cpu_s = workspace::process_cpu_seconds() - correlate_cpu0;
    Ok(ProtocolOutcome {
        run,
        searched,
        nats,
        train_s,
        search_s,
        correlate_s,
        correlate_cpu_s,
        global_step: outcome.global_step,
    })
}

fn nats_record(
    scores_csv: &Path,
    truth: &GroundTruth,
    summary: &bossnas_search::output::SearchSummary,
    dir: &Path,
) -> Result<NatsRecord> {
    let scores = ScoresInput::from_csv(scores_csv, Some("score"))
        .with_context(|| format!("reading {}", scores_csv.display()))?;
    let opts = CorrelateOptions::default();
    let report = correlate(&scores, truth, &opts)?;
    report
        .write(dir)
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
        files: dir.to_path_buf(),
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
            json_progress: false,
        }
    }

    #[test]
    fn the_cpu_suite_report_carries_its_sweep() {
        let suite = search_suite(Suite::NatsC10Cpu).unwrap();
        let sw = suite.sweep.expect("nats-c10-cpu names its sweep");
        let tmp = tempfile::tempdir().unwrap();
        let section = sweep_section(sw, tmp.path()).expect("the sweep's results are committed");
        assert_eq!(section.variant, crate::suites::NATS_C10_CPU_VARIANT);
        assert!(
            !section.seed_tau_b.is_empty(),
            "the preset's variant has results"
        );
        assert!(section.table.contains(sw.variant), "{}", section.table);
        assert!(tmp.path().join("sweep-curve.svg").is_file());
        assert!(tmp.path().join("sweep-curve.png").is_file());
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
