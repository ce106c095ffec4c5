//! `cargo xtask sweep <file>`: a grid of protocol variants × seeds, each point trained,
//! rated, searched and correlated with NATS-Bench like the `nats-c10-cpu` suite, each point
//! resumable, each result written as a small JSON file the moment it ends, and a report
//! (table + τ-b-against-CPU-minutes curve) rebuilt after every point.
//!
//! Layout, for a sweep file `sweeps/<name>.toml`:
//! - `sweeps/<name>/results/<variant>-s<seed>.json`: one result per point (commit these);
//! - `sweeps/<name>/report.md`, `curve.svg`, `curve.png`: the table and the curve;
//! - `runs/sweeps/<name>/<variant>-s<seed>/`: the run directory (checkpoints, rankings).
//!
//! A point whose result exists is skipped; a point whose run directory holds a checkpoint
//! continues from it (killed or stopped with `--max-minutes`, it loses at most the steps
//! since its last checkpoint).

mod meter;
mod noise;
pub mod record;
pub mod report;
pub mod spec;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bench_nats::GroundTruth;
use bench_nats::potential::PotentialTable;
use bossnas_config::RunConfig;
use bossnas_kernels::device::{DeviceSpec, ToDevice};
use ensemble_bootstrap::checkpoint::{RESOLVED_CONFIG, RunDir};

use crate::search_suite::{
    Stages, load_official_potentials, load_truth, locate_data, train_search_correlate,
};
use crate::suites::TruthNeed;
use crate::workspace;
use record::{PointCompute, PointResult, Searched, analyse, training_flops};
use spec::{Point, SweepFile};

/// Options of `cargo xtask sweep`.
#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    /// The sweep file (`sweeps/<name>.toml`; format in docs/search-quality.md).
    pub file: PathBuf,
    /// Where results and the report go (default: `<file's folder>/<name>/`).
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Where run directories go (`<runs>/<name>/<variant>-s<seed>/`).
    #[arg(long, default_value = "runs/sweeps")]
    pub runs: PathBuf,
    /// Only these variants (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Only these seeds (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub seeds: Vec<u64>,
    /// Start no new point after this many minutes (the running point finishes).
    #[arg(long)]
    pub max_minutes: Option<f64>,
    /// Print every point and its state; run nothing.
    #[arg(long)]
    pub list: bool,
    /// Rebuild the report from the results; run nothing.
    #[arg(long)]
    pub report_only: bool,
    /// Data directory (default: $BOSSNAS_DATA, else ~/.cache/bossnas).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Never download CIFAR-10.
    #[arg(long)]
    pub no_download: bool,
    /// NATS-Bench SSS CIFAR-10 ground truth (default: the data directory's copy, fetched like
    /// the suites' when missing).
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// State of a point on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Done,
    Started,
    New,
}

fn state(results: &Path, runs: &Path, point: &Point) -> State {
    if results.join(format!("{}.json", point.id())).is_file() {
        State::Done
    } else if runs.join(point.id()).join(RESOLVED_CONFIG).is_file() {
        State::Started
    } else {
        State::New
    }
}

pub fn run(args: SweepArgs) -> Result<()> {
    let file = SweepFile::load(&args.file)?;
    let results_root = args.results.clone().unwrap_or_else(|| {
        args.file
            .parent()
            .unwrap_or(Path::new("."))
            .join(&file.name)
    });
    let results = results_root.join("results");
    let runs = args.runs.join(&file.name);
    let mut points = file.points()?;
    for name in &args.only {
        if !file.variants.iter().any(|v| &v.name == name) {
            bail!("--only {name}: no such variant in {}", args.file.display());
        }
    }
    points.retain(|p| {
        (args.only.is_empty() || args.only.contains(&p.variant))
            && (args.seeds.is_empty() || args.seeds.contains(&p.seed))
    });
    if args.list {
        for p in &points {
            println!("{:<32} {:?}", p.id(), state(&results, &runs, p));
        }
        return Ok(());
    }
    if args.report_only {
        let path = report::write(&file, &results_root)?;
        println!("report: {}", path.display());
        return Ok(());
    }

    // Everything that can fail before hours of training fails first.
    let truth = load_truth(
        TruthNeed::Required,
        &format!("sweep {}", file.name),
        args.truth.as_deref(),
        args.data.as_deref(),
        !args.no_download,
    )?
    .context("a sweep rates against NATS-Bench SSS CIFAR-10")?;
    let data = locate_data(
        bossnas_datasets::Dataset::Cifar10,
        &format!("sweep {}", file.name),
        args.data.as_deref(),
        !args.no_download,
    )?;
    let cifar_root = data.root.expect("a located dataset has a root");
    let official = load_official_potentials(args.data.as_deref());
    std::fs::create_dir_all(&results).with_context(|| format!("creating {}", results.display()))?;

    // A result made under another definition of its variant would be silently reused below.
    for point in points
        .iter()
        .filter(|p| state(&results, &runs, p) == State::Done)
    {
        check_result_config(&results, point)?;
    }

    let started = Instant::now();
    let mut failed = Vec::new();
    for point in &points {
        if state(&results, &runs, point) == State::Done {
            continue;
        }
        if let Some(max) = args.max_minutes
            && started.elapsed().as_secs_f64() / 60.0 >= max
        {
            eprintln!(
                "sweep {}: --max-minutes {max} reached; resume with the same command",
                file.name
            );
            break;
        }
        match run_point(
            &file,
            point,
            &cifar_root,
            &runs,
            &truth,
            official.as_deref(),
            args.quiet,
        ) {
            Ok(result) => {
                let path = results.join(format!("{}.json", point.id()));
                bossnas_runfs::write_atomic(
                    &path,
                    (serde_json::to_string_pretty(&result)? + "\n").as_bytes(),
                )
                .with_context(|| format!("writing {}", path.display()))?;
                eprintln!(
                    "sweep {}: {} τ-b {:.3} in {:.1} CPU-min → {}",
                    file.name,
                    point.id(),
                    result.correlation.kendall_tau_b,
                    result.compute.search_cpu_s / 60.0,
                    path.display()
                );
                report::write(&file, &results_root)?;
            }
            Err(e) => {
                eprintln!("sweep {}: point {} failed: {e:#}", file.name, point.id());
                failed.push(point.id());
            }
        }
    }
    let path = report::write(&file, &results_root)?;
    println!("report: {}", path.display());
    if !failed.is_empty() {
        bail!("{} point(s) failed: {}", failed.len(), failed.join(", "));
    }
    Ok(())
}

/// The config a result records: the point's, with the machine's data folder shown as `<data>`.
fn shown_config(cfg: &RunConfig) -> RunConfig {
    let mut shown = cfg.clone();
    shown.data.root = PathBuf::from("<data>/cifar10_jpeg");
    shown
}

/// Refuses a finished point whose recorded config is not what the sweep file now gives its
/// variant (e.g. the variant was edited, or it leans on a preset that changed): its result
/// would stand for a protocol that no longer exists. Both sides are resolved through
/// `RunConfig`, so fields added since the result was written take their defaults on both.
fn check_result_config(results: &Path, point: &Point) -> Result<()> {
    let path = results.join(format!("{}.json", point.id()));
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let recorded = doc["config_toml"]
        .as_str()
        .with_context(|| format!("{}: no config_toml", path.display()))?;
    let same = RunConfig::from_toml_str(recorded)
        .map(|c| c.to_toml_string() == shown_config(&point.config).to_toml_string())
        .unwrap_or(false);
    if !same {
        bail!(
            "{} was made with another config than the sweep file now gives variant {:?} \
             (seed {}); rename the variant, or delete the result to run it again",
            path.display(),
            point.variant,
            point.seed
        );
    }
    Ok(())
}

/// Trains, rates, searches and correlates one point (resuming it when it was started).
fn run_point(
    file: &SweepFile,
    point: &Point,
    cifar_root: &Path,
    runs: &Path,
    truth: &GroundTruth,
    official: Option<&[PotentialTable]>,
    quiet: bool,
) -> Result<PointResult> {
    let run_dir = runs.join(point.id());
    let mut cfg = point.config.clone();
    cfg.data.root = cifar_root.to_path_buf();
    cfg.validate()?;
    let resume = run_dir.is_dir()
        && RunDir::create(&run_dir)?
            .load_latest()
            .ok()
            .flatten()
            .is_some();
    if resume {
        let stored = RunConfig::load(run_dir.join(RESOLVED_CONFIG))?;
        let mut mine = cfg.clone();
        mine.data.root = stored.data.root.clone();
        if stored.to_toml_string() != mine.to_toml_string() {
            bail!(
                "{} was started with another config than the sweep file now gives variant {:?}; \
                 delete that directory or rename the variant",
                run_dir.display(),
                point.variant
            );
        }
    } else if run_dir.exists() {
        // Started but no checkpoint yet: nothing to keep.
        std::fs::remove_dir_all(&run_dir)
            .with_context(|| format!("removing {}", run_dir.display()))?;
    }
    let spec: DeviceSpec = cfg.device.parse()?;
    let device = spec.device()?;
    let factory = noise::NoiseProbeFactory {
        view_epochs: point.rerate_view_epochs.clone(),
    };
    // The run directory is locked for the point's life: a second sweep process on the same
    // point is refused instead of writing beside this one.
    let run = if resume {
        RunDir::open_locked(&run_dir)?
    } else {
        let parent = run_dir.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        let run = RunDir::create_unique(parent, &point.id())?;
        if run.root() != run_dir {
            let _ = std::fs::remove_dir_all(run.root());
            bail!(
                "{} was created by another process meanwhile",
                run_dir.display()
            );
        }
        run
    };
    let meter = meter::Meter::start(&run_dir);
    let outcome = train_search_correlate(
        &cfg,
        run,
        resume,
        &device,
        &spec,
        &Stages {
            name: format!("sweep {} point {}", file.name, point.id()),
            resume_hint: format!("cargo xtask sweep <file> --only {}", point.variant),
            truth: Some(truth),
            truth_required: true,
            correlation_dir: run_dir.join("correlation"),
            max_steps: None,
            time_budget: None,
            quiet,
            progress_format: ensemble_bootstrap::progress::ProgressFormat::Human,
        },
        &factory,
    )?;
    let spent = meter.finish();
    let noise_cpu = noise::noise_cpu_seconds(&run_dir);
    let (correlation, blocks, rerating) =
        analyse(&cfg, &outcome, truth, official, &point.rerate_view_epochs)?;
    let images_per_step = (cfg.train.batch_size * cfg.train.accumulation_steps) as u64;
    let nblocks = blocks.len().max(1) as u64;
    let per_block = vec![outcome.global_step / nblocks; blocks.len()];
    let chosen: Vec<Vec<usize>> = blocks.iter().map(|b| b.best.clone()).collect();
    let nats = outcome.nats.as_ref();
    let shown = shown_config(&cfg);
    Ok(PointResult {
        sweep: file.name.clone(),
        variant: point.variant.clone(),
        family: point.family.clone(),
        note: point.note.clone(),
        seed: point.seed,
        git_commit: workspace::git_commit(),
        compute: PointCompute {
            spent,
            search_cpu_s: spent.cpu_s - outcome.correlate_cpu_s - noise_cpu,
            // The extra ratings' wall time is not measured; their CPU share is removed.
            search_wall_s: (spent.wall_s - outcome.correlate_s)
                * (1.0 - noise_cpu / spent.cpu_s.max(1e-9)),
            noise_rating_cpu_s: noise_cpu,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: workspace::cpu_model(),
            optimizer_steps: outcome.global_step,
            training_images: outcome.global_step * images_per_step,
            view_forwards: outcome.global_step
                * images_per_step
                * 2
                * cfg.train.paths_per_step as u64,
            supernet_flops: training_flops(&cfg, &per_block, &chosen),
            train_s: outcome.train_s,
            search_s: outcome.search_s,
            correlate_s: outcome.correlate_s,
        },
        correlation,
        blocks,
        rerating,
        searched: Searched {
            arch: outcome.searched.summary.arch_string.clone(),
            accuracy: nats.and_then(|n| n.chosen_accuracy),
            rank: nats.and_then(|n| n.chosen_rank),
            population: nats.map_or(0, |n| n.population),
        },
        config_toml: shown.to_toml_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use spec::SweepFile;

    const FILE: &str = r#"
name = "t"
seeds = [0]
[[variant]]
name = "a"
family = "f"
[variant.config]
preset = "nats-c10-cpu"
data = { train_subset = 64 }
"#;

    fn write_result(dir: &Path, id: &str, config_toml: &str) {
        let doc = serde_json::json!({ "config_toml": config_toml });
        std::fs::write(dir.join(format!("{id}.json")), doc.to_string()).unwrap();
    }

    #[test]
    fn a_result_made_under_another_variant_definition_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let point = &SweepFile::parse(FILE).unwrap().points().unwrap()[0];
        let recorded = shown_config(&point.config).to_toml_string();
        write_result(tmp.path(), &point.id(), &recorded);
        check_result_config(tmp.path(), point).unwrap();

        let edited = recorded.replace("train_subset = 64", "train_subset = 128");
        assert_ne!(edited, recorded);
        write_result(tmp.path(), &point.id(), &edited);
        let e = check_result_config(tmp.path(), point)
            .unwrap_err()
            .to_string();
        assert!(e.contains("another config") && e.contains("\"a\""), "{e}");

        write_result(tmp.path(), &point.id(), "not toml [");
        assert!(check_result_config(tmp.path(), point).is_err());
    }
}
