//! `bossnas train`: block-wise Siamese supernet training (ensemble bootstrapping).

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use bossnas_blocks::device::DeviceSpec;
use bossnas_search::select::PopulationCentreSelectorFactory;
use clap::Args;
use ensemble_bootstrap::checkpoint::RunDir;
use ensemble_bootstrap::config::{PRESETS, RunConfig};
use ensemble_bootstrap::trainer::{TrainOptions, train_space};

/// Options of `bossnas train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A preset name or a `.toml`/`.json` config file (ignored with --resume, which uses the
    /// run's config.resolved.toml).
    #[arg(long, required_unless_present = "resume")]
    config: Option<String>,
    /// Dataset root (overrides `data.root`), e.g. target/data/cifar10_jpeg.
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
    /// Checkpoint every N optimizer steps (default: the config's `checkpoint.interval_epochs`).
    #[arg(long)]
    checkpoint_every: Option<u64>,
    /// Wall-clock training budget in minutes, split over the blocks left: a block whose share
    /// is used stops at a step boundary and is rated as usual (docs/training.md).
    #[arg(long, value_name = "MINUTES", value_parser = ensemble_bootstrap::time_budget::parse_minutes)]
    time_budget: Option<std::time::Duration>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

pub fn run(args: TrainArgs) -> Result<()> {
    let (mut cfg, run_dir, resume) = match &args.resume {
        Some(dir) => {
            let path = dir.join(ensemble_bootstrap::checkpoint::RESOLVED_CONFIG);
            if !path.is_file() {
                bail!(
                    "{} is not a run directory: {} is missing",
                    dir.display(),
                    path.display()
                );
            }
            let cfg = RunConfig::load(&path)?;
            (cfg, dir.clone(), true)
        }
        None => {
            let spec = args.config.as_deref().expect("clap requires --config");
            let cfg = RunConfig::from_preset_or_file(spec).with_context(|| {
                format!(
                    "--config {spec}: not a preset ({}) or a readable config file",
                    PRESETS.join(", ")
                )
            })?;
            let stamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let name = format!(
                "{}-{stamp}",
                cfg.preset.clone().unwrap_or_else(|| "run".into())
            );
            (cfg, args.out.join(name), false)
        }
    };
    if let Some(d) = &args.data {
        cfg.data.root = d.clone();
    }
    if let Some(d) = &args.device {
        cfg.device = d.clone();
    }
    cfg.validate()?;
    let spec: DeviceSpec = cfg.device.parse()?;
    let device = spec.device()?;
    let run = RunDir::create(&run_dir)?;
    if resume && (args.data.is_some() || args.device.is_some()) {
        // Keep the run's record of where it continued.
        cfg.save_resolved(run.root())?;
    }
    let opts = TrainOptions {
        max_steps: args.max_steps,
        checkpoint_every_steps: args.checkpoint_every,
        progress: !args.quiet,
        time_budget: args.time_budget,
        ..TrainOptions::default()
    };
    eprintln!(
        "{} run {} on {spec} (space {:?}); block selection: population-centre rating",
        if resume { "resuming" } else { "starting" },
        run.root().display(),
        cfg.space.kind
    );
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
    let paths: Vec<String> = out
        .best_paths
        .iter()
        .map(|p| ensemble_bootstrap::trainer::path_key(p))
        .collect();
    println!(
        "{} after {} optimizer steps; best paths so far: [{}]; last loss {}; checkpoint {}",
        if out.finished { "finished" } else { "stopped" },
        out.global_step,
        paths.join(", "),
        out.last_loss.map_or("-".into(), |l| format!("{l:.4}")),
        out.checkpoint
            .as_ref()
            .map_or("-".into(), |p| p.display().to_string())
    );
    println!("run directory: {}", run.root().display());
    Ok(())
}
