//! `cargo xtask throughput`: training throughput of block 0 of a preset on a device — the
//! figure a GPU check compares with the CPU.
//!
//! Trains block 0 of the preset for a number of micro-batches (one micro-batch per optimizer
//! step, so every step is timed), on synthetic images of the preset's size so that only compute
//! and the view pipeline are measured, then reads `metrics.jsonl`. The first step pays for
//! kernel compilation (wgpu JIT, autotune) and is reported apart.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bossnas_config::{DatasetKind, RunConfig};
use bossnas_kernels::device::{DeviceSpec, ToDevice};
use bossnas_search::select::PopulationCentreSelectorFactory;
use ensemble_bootstrap::checkpoint::{METRICS, RunDir};
use ensemble_bootstrap::trainer::{TrainOptions, train_space};
use serde_json::json;

/// Options of `cargo xtask throughput`.
#[derive(Debug, clap::Args)]
pub struct ThroughputArgs {
    /// Preset (or config file layered on one) whose block 0 is trained (supernet, widths,
    /// batch, paths per step, views).
    #[arg(long, default_value = "nats-c10-paper")]
    preset: String,
    /// Device: cpu, wgpu[:N], cuda[:N].
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Micro-batches to time (the first one includes kernel compilation).
    #[arg(long, default_value_t = 3)]
    steps: u64,
    /// Time a whole epoch of block 0 (25,000 images for the NATS presets) instead of --steps.
    #[arg(long)]
    epoch: bool,
    /// Write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn run(args: ThroughputArgs) -> Result<()> {
    let mut cfg = RunConfig::from_preset_or_file(&args.preset)?;
    let spec: DeviceSpec = args.device.parse()?;
    cfg.device = spec.to_string();
    let batch = cfg.train.batch_size;
    // Images of one block-0 epoch under the preset's split (NATS halves: 25,000).
    let epoch_images = if cfg.data.train_subset > 0 {
        cfg.data.train_subset
    } else {
        25_000
    };
    let steps = if args.epoch {
        epoch_images.div_ceil(batch) as u64
    } else {
        args.steps
    };
    if steps < 2 {
        bail!("--steps must be at least 2 (the first step includes kernel compilation)");
    }
    cfg.data.dataset = DatasetKind::Synthetic;
    cfg.data.root = PathBuf::new();
    cfg.data.train_subset = 0;
    cfg.data.synthetic_size = batch * steps as usize;
    cfg.data.rating_subset = batch.min(64);
    cfg.train.accumulation_steps = 1;
    cfg.validate()?;
    let device = spec.device()?;
    // The adapter the backend picked (wgpu: Vulkan adapter name), before any kernel runs.
    let adapter = adapter_name(&device);
    eprintln!(
        "device {spec}: {}",
        adapter.as_deref().unwrap_or("(no adapter name)")
    );

    let tmp = tempfile::tempdir().context("creating a scratch run directory")?;
    let run = RunDir::create(tmp.path().join("run"))?;
    eprintln!(
        "timing {steps} micro-batches of {batch} images, block 0 of {} on {spec}",
        args.preset
    );
    let started = Instant::now();
    train_space(
        cfg.clone(),
        TrainOptions {
            max_steps: Some(steps),
            progress: false,
            ..TrainOptions::default()
        },
        run.clone(),
        &device,
        false,
        &PopulationCentreSelectorFactory::default(),
    )?;
    let wall = started.elapsed().as_secs_f64();
    let (first, rest) = step_times(&run.root().join(METRICS))?;
    let images_rest = (rest.len() * batch) as f64;
    let secs_rest: f64 = rest.iter().sum();
    let mut sorted = rest.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let out = json!({
        "preset": args.preset,
        "device": spec.to_string(),
        "adapter": adapter,
        "fusion": cfg!(feature = "fusion"),
        "autotune_level": std::env::var("CUBECL_AUTOTUNE_LEVEL").ok(),
        "batch": batch,
        "paths_per_step": cfg.train.paths_per_step,
        "steps": steps,
        "first_step_s": first,
        "median_step_s": median,
        "images_per_s": images_rest / secs_rest,
        "images_per_s_median_step": batch as f64 / median,
        "block0_epoch_images": epoch_images,
        "block0_epoch_estimate_s": epoch_images as f64 / (images_rest / secs_rest),
        "wall_s": wall,
    });
    println!(
        "{} on {spec}: first step {:.2} s, then median {:.3} s/step, {:.1} images/s \
         (batch {batch}, {} paths × 2 views); block-0 epoch of {} images ≈ {:.0} s",
        args.preset,
        first,
        median,
        images_rest / secs_rest,
        cfg.train.paths_per_step,
        epoch_images,
        epoch_images as f64 / (images_rest / secs_rest)
    );
    if let Some(path) = args.json {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, serde_json::to_string_pretty(&out)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The adapter a CubeCL device opened (wgpu: the Vulkan adapter's name). Opens the device.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn adapter_name(device: &burn::tensor::Device) -> Option<String> {
    device.identity().map(|i| i.name)
}

/// Without a CubeCL backend compiled in there is no adapter to name.
#[cfg(not(any(feature = "wgpu", feature = "cuda")))]
fn adapter_name(_device: &burn::tensor::Device) -> Option<String> {
    None
}

/// Seconds of the first step and of every later step, from `metrics.jsonl`.
fn step_times(path: &Path) -> Result<(f64, Vec<f64>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let times: Vec<f64> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "step")
        .filter_map(|v| v["seconds"].as_f64())
        .collect();
    match times.split_first() {
        Some((first, rest)) if !rest.is_empty() => Ok((*first, rest.to_vec())),
        _ => bail!("{}: fewer than 2 timed steps", path.display()),
    }
}
