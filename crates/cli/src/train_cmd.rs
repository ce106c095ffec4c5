//! `bossnas train`: block-wise Siamese supernet training (ensemble bootstrapping).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use bossnas_config::{PRESETS, RunConfig};
use bossnas_kernels::device::{DeviceSpec, ToDevice};
use bossnas_search::select::PopulationCentreSelectorFactory;
use clap::Args;
use ensemble_bootstrap::checkpoint::RunDir;
use ensemble_bootstrap::progress::ProgressFormat;
use ensemble_bootstrap::trainer::{TrainOptions, train_space};

/// Options of `bossnas train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A preset name or a `.toml`/`.json` config file (not with --resume, which uses the
    /// run's config.resolved.toml).
    #[arg(long, required_unless_present = "resume", conflicts_with = "resume")]
    config: Option<String>,
    /// Data directory (or the dataset's own folder); overrides the config's `data.root`.
    /// Default: `data.root` of a config file, else $BOSSNAS_DATA, else ~/.cache/bossnas. A
    /// missing CIFAR-10/100 is downloaded into it (MD5 checked).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Device: cpu, wgpu[:N], cuda[:N] (overrides the config's `device`).
    #[arg(long)]
    device: Option<String>,
    /// Directory that receives the new run directory.
    #[arg(long, default_value = "runs")]
    out: PathBuf,
    /// Continue the run in this directory from its newest checkpoint.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Stop (with a checkpoint) after this many optimizer steps of the whole run.
    #[arg(long)]
    max_steps: Option<u64>,
    /// Checkpoint every N optimizer steps, N >= 1 (default: the config's
    /// `checkpoint.interval_epochs`).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    checkpoint_every: Option<u64>,
    /// Wall-clock training budget in minutes, split over the blocks left: a block whose share
    /// is used stops at a step boundary and is rated as usual (docs/training.md).
    #[arg(long, value_name = "MINUTES", value_parser = ensemble_bootstrap::time_budget::parse_minutes)]
    time_budget: Option<std::time::Duration>,
    /// No progress output.
    #[arg(long, conflicts_with = "json_progress")]
    quiet: bool,
    /// Progress as one JSON object per line on stderr (events step, block_end, checkpoint,
    /// end) instead of the terminal line / log lines.
    #[arg(long)]
    json_progress: bool,
}

/// `--config`: a preset name, else a config file; a file that was read reports its own error.
fn load_config(spec: &str) -> Result<RunConfig> {
    if PRESETS.contains(&spec) || Path::new(spec).exists() {
        return Ok(RunConfig::from_preset_or_file(spec)?);
    }
    bail!(
        "--config {spec}: not a preset ({}) and no such file",
        PRESETS.join(", ")
    )
}

pub fn run(args: TrainArgs) -> Result<()> {
    let (mut cfg, run_dir, resume) = match &args.resume {
        Some(dir) => {
            let cfg = RunConfig::load_run(dir)?;
            (cfg, dir.clone(), true)
        }
        None => {
            let spec = args.config.as_deref().expect("clap requires --config");
            let cfg = load_config(spec)?;
            (cfg, args.out.clone(), false)
        }
    };
    // One rule for every command (crate::locate): --data, else $BOSSNAS_DATA, else the cache;
    // a config file's own data.root (relative to the file) counts as given.
    if (args.data.is_some() || cfg.data.root.as_os_str().is_empty())
        && let Some(root) = crate::locate::dataset_root(cfg.data.dataset, args.data.as_deref())?
    {
        cfg.data.root = root;
    }
    if let Some(d) = &args.device {
        cfg.device = d.clone();
    }
    cfg.validate()?;
    let spec: DeviceSpec = cfg.device.parse()?;
    let device = spec.device()?;
    // Everything is checked; only now is a directory created (or an existing one locked).
    let prefix = cfg.preset.clone().unwrap_or_else(|| "run".into());
    let run = RunDir::open_or_create(&run_dir, resume, &prefix)?;
    if resume && (args.data.is_some() || args.device.is_some()) {
        // Keep the run's record of where it continued.
        cfg.save_resolved(run.root())?;
    }
    let opts = TrainOptions {
        max_steps: args.max_steps,
        checkpoint_every_steps: args.checkpoint_every,
        progress: !args.quiet,
        progress_format: if args.json_progress {
            ProgressFormat::Json
        } else {
            ProgressFormat::Human
        },
        time_budget: args.time_budget,
        ..TrainOptions::default()
    };
    eprintln!(
        "{} run {} on {spec} (space {:?}); block selection: population-centre rating",
        if resume { "resuming" } else { "starting" },
        run.root().display(),
        cfg.space.kind
    );
    let space = cfg.space.kind;
    let result = train_space(
        cfg,
        opts,
        run.clone(),
        &device,
        resume,
        &PopulationCentreSelectorFactory::default(),
    );
    if result.is_err() && !resume && run.load_latest().ok().flatten().is_none() {
        // Nothing was trained: do not leave an empty run directory behind.
        let _ = std::fs::remove_dir_all(run.root());
    }
    let out = result?;
    let paths: Vec<String> = out.best_paths.iter().map(|p| space.path_label(p)).collect();
    let last_loss = out.last_loss.map_or("-".into(), |l| format!("{l:.4}"));
    if out.finished {
        println!(
            "finished after {} optimizer steps; chosen path per block: {}; last loss {last_loss}",
            out.global_step,
            paths.join(" | ")
        );
    } else {
        println!(
            "stopped after {} optimizer steps (continue with --resume {}); chosen paths of the \
             blocks done: [{}]; last loss {last_loss}",
            out.global_step,
            run.root().display(),
            paths.join(" | ")
        );
    }
    if let Some(c) = &out.checkpoint {
        println!("checkpoint: {}", c.display());
    }
    println!("run directory: {}", run.root().display());
    Ok(())
}
