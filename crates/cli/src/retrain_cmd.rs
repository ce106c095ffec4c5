//! `bossnas retrain`, `bossnas eval` and `bossnas retrain-sanity`: supervised retraining of a
//! searched architecture, top-1/top-5 evaluation, and the NATS-Bench ground-truth sanity run.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use bossnas_kernels::device::{DeviceSpec, ToDevice};
use bossnas_retrain::Device;
use bossnas_retrain::arch::ArchSpec;
use bossnas_retrain::data::open_sources;
use bossnas_retrain::eval::{EvalResult, evaluate};
use bossnas_retrain::export::load_exported;
use bossnas_retrain::recipe::{PRESETS, RESOLVED_RECIPE, Recipe};
use bossnas_retrain::sanity::{DEFAULT_ARCHS, run_sanity};
use bossnas_retrain::trainer::{
    RetrainOptions, RunMeta, create_run, load_checkpoint_model, load_run, retrain,
};
use clap::Args;
use ensemble_bootstrap::checkpoint::RunDir;
use hytra_space::nats::NatsArch;
use serde_json::json;

use crate::locate::dataset_arg;

fn device_of(spec: &str) -> Result<(DeviceSpec, Device)> {
    let spec: DeviceSpec = spec.parse()?;
    let device = spec.device()?;
    Ok((spec, device))
}

/// Options of `bossnas retrain`.
#[derive(Debug, Args)]
pub struct RetrainArgs {
    /// Required unless --resume. Architecture: a file (`search/search.json`, `arch.json`), a NATS string
    /// (`64:40:48:64:56`), an MBConv code, a HyTra name (`bossnet-t0`) or JSON.
    #[arg(long, required_unless_present = "resume")]
    arch: Option<String>,
    /// Required unless --resume. Dataset: a CIFAR-10 directory (binaries or the JPEG tree), an
    /// image tree with train/ and val/, `synthetic`, or a name (`cifar10`, `cifar100`,
    /// `imagenet`) found in the data directory ($BOSSNAS_DATA, else ~/.cache/bossnas; CIFAR is
    /// downloaded when missing).
    #[arg(long, required_unless_present = "resume")]
    data: Option<String>,
    /// A recipe preset or a `.toml`/`.json` recipe file.
    #[arg(long, required_unless_present = "resume")]
    recipe: Option<String>,
    /// Device: cpu, wgpu[:N], cuda[:N] (default: the recipe's `device`).
    #[arg(long)]
    device: Option<String>,
    /// Directory that receives the new run directory.
    #[arg(long, default_value = "runs")]
    out: PathBuf,
    /// Continue the run in this directory from its newest checkpoint.
    #[arg(long, conflicts_with_all = ["arch", "recipe"])]
    resume: Option<PathBuf>,
    /// Stop (with a checkpoint) once the run has taken this many optimizer steps.
    #[arg(long)]
    max_steps: Option<u64>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

pub fn retrain_run(args: RetrainArgs) -> Result<()> {
    // Every option is checked before a directory is created or a file written.
    let (run, recipe, fresh, spec, device) = match &args.resume {
        Some(dir) => {
            let (recipe, mut meta) = load_run(dir)?;
            let device_text = args.device.clone().unwrap_or_else(|| recipe.device.clone());
            let (spec, device) = device_of(&device_text)?;
            let run = RunDir::open_locked(dir.clone())?;
            if let Some(d) = &args.data {
                let d = dataset_arg(d).context("--data")?;
                open_sources(&d, &recipe).context("--data")?;
                meta.data = d;
                meta.save(dir)?;
            }
            (run, recipe, false, spec, device)
        }
        None => {
            let arch_text = args.arch.as_deref().expect("clap requires --arch");
            let arch = ArchSpec::parse(arch_text).context("--arch")?;
            let spec = args.recipe.as_deref().expect("clap requires --recipe");
            let mut recipe = Recipe::from_preset_or_file(spec).context("--recipe")?;
            if let Some(d) = &args.device {
                recipe.device = d.clone();
            }
            let (spec, device) = device_of(&recipe.device)?;
            let data = dataset_arg(args.data.as_deref().expect("clap requires --data"))
                .context("--data")?;
            let stamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0);
            let stem = format!(
                "retrain-{}-{}-{stamp}",
                arch.space(),
                recipe.preset.clone().unwrap_or_else(|| "recipe".into())
            );
            let run = create_run(&args.out, &stem, &arch, &recipe, &data)?;
            (run, recipe, true, spec, device)
        }
    };
    let meta = RunMeta::load(run.root())?;
    eprintln!(
        "{} run {} on {spec}: {} with recipe {}",
        if fresh { "starting" } else { "resuming" },
        run.root().display(),
        meta.arch()?,
        recipe.preset.as_deref().unwrap_or("<file>")
    );
    let result = retrain(
        &run,
        &device,
        &RetrainOptions {
            max_steps: args.max_steps,
            progress: !args.quiet,
        },
    );
    if result.is_err() && fresh && run.load_latest().ok().flatten().is_none() {
        // Nothing was trained: do not leave an empty run directory behind.
        let _ = std::fs::remove_dir_all(run.root());
    }
    let out = result?;
    println!(
        "{} after {}/{} optimizer steps ({} parameters, {:.1} s); last loss {}; checkpoint {}",
        if out.finished { "finished" } else { "stopped" },
        out.global_step,
        out.total_steps,
        out.params,
        out.wall_s,
        out.last_loss.map_or("-".into(), |l| format!("{l:.4}")),
        out.checkpoint
            .as_ref()
            .map_or("-".into(), |p| p.display().to_string())
    );
    if let Some(e) = &out.eval {
        println!(
            "test: top-1 {:.2} % top-5 {:.2} % ({} images)",
            e.top1, e.top5, e.images
        );
    }
    if let Some(e) = &out.ema_eval {
        println!("test (EMA): top-1 {:.2} % top-5 {:.2} %", e.top1, e.top5);
    }
    if let Some(p) = &out.exported {
        println!("exported: {}", p.display());
    }
    println!("run directory: {}", run.root().display());
    Ok(())
}

/// Options of `bossnas eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A retraining run directory, one of its checkpoint directories, or an exported
    /// `model.bpk` (with its `model.json`).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Dataset (default: the run's): a folder, `synthetic`, or a name (`cifar10`, …) found in
    /// the data directory, as for `retrain --data`.
    #[arg(long)]
    data: Option<String>,
    /// Recipe for the evaluation transform and batch size (default: the run's; needed for a
    /// `.bpk` outside a run directory).
    #[arg(long)]
    recipe: Option<String>,
    /// Device: cpu, wgpu[:N], cuda[:N] (default cpu).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Evaluate the EMA weights of a checkpoint.
    #[arg(long)]
    ema: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn eval(args: EvalArgs) -> Result<()> {
    let (_, device) = device_of(&args.device)?;
    let path = &args.checkpoint;
    if !path.exists() {
        bail!("--checkpoint {}: no such file or directory", path.display());
    }
    let (model, run_recipe, run_data, arch) = if path.is_file() {
        if args.ema {
            bail!("--ema needs a checkpoint; an export holds one network");
        }
        let (model, meta) = load_exported(path, &device)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let recipe = dir
            .join(RESOLVED_RECIPE)
            .is_file()
            .then(|| Recipe::load(&dir.join(RESOLVED_RECIPE)))
            .transpose()?;
        let data = RunMeta::load(dir).ok().map(|m| m.data);
        let arch = ArchSpec::parse(&meta.arch.to_string())?;
        (model, recipe, data, arch)
    } else {
        let (model, recipe, meta) = load_checkpoint_model(path, args.ema, &device)?;
        let arch = meta.arch()?;
        (model, Some(recipe), Some(meta.data), arch)
    };
    let recipe = match (&args.recipe, run_recipe) {
        (Some(spec), _) => Recipe::from_preset_or_file(spec).context("--recipe")?,
        (None, Some(r)) => r,
        (None, None) => bail!(
            "{}: no recipe.resolved.toml beside it; give --recipe ({} or a file)",
            path.display(),
            PRESETS.join(", ")
        ),
    };
    let data = match (&args.data, run_data) {
        (Some(d), _) => dataset_arg(d).context("--data")?,
        (None, Some(d)) => d,
        (None, None) => bail!("{}: give --data", path.display()),
    };
    let sources = open_sources(&data, &recipe)?;
    let r: EvalResult = evaluate(&model, sources.test.clone(), &recipe, &device)?;
    if args.json {
        let v = json!({
            "arch": arch.to_json(),
            "checkpoint": path.display().to_string(),
            "ema": args.ema,
            "test": sources.test.describe(),
            "images": r.images,
            "top1": r.top1,
            "top5": r.top5,
            "loss": r.loss,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("arch:  {arch}");
        println!("test:  {}", sources.test.describe());
        println!("top-1: {:.2} %", r.top1);
        println!("top-5: {:.2} %", r.top5);
        println!("loss:  {:.4}", r.loss);
    }
    Ok(())
}

/// Options of `bossnas retrain-sanity`.
#[derive(Debug, Args)]
pub struct SanityArgs {
    /// CIFAR-10: a directory, or `cifar10` for the one in the data directory ($BOSSNAS_DATA,
    /// else ~/.cache/bossnas; downloaded when missing).
    #[arg(long)]
    data: String,
    /// NATS-Bench SSS ground truth CSV [default: nats-sss/nats_sss_cifar10.csv in the data
    /// directory ($BOSSNAS_DATA, else ~/.cache/bossnas), downloaded when missing].
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Recipe preset or file.
    #[arg(long, default_value = "nats-cifar-short")]
    recipe: String,
    /// Comma-separated NATS width strings (default: six spanning the accuracy range).
    #[arg(long, value_delimiter = ',')]
    archs: Option<Vec<String>>,
    /// Directory of the per-network runs (re-running continues them).
    #[arg(long, default_value = "runs/retrain-sanity")]
    out: PathBuf,
    /// Device: cpu, wgpu[:N], cuda[:N].
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Also write the Markdown table to this file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

pub fn sanity(args: SanityArgs) -> Result<()> {
    let (_, device) = device_of(&args.device)?;
    let recipe = Recipe::from_preset_or_file(&args.recipe).context("--recipe")?;
    let archs: Vec<NatsArch> = match &args.archs {
        Some(list) => list
            .iter()
            .map(|a| {
                a.trim()
                    .parse::<NatsArch>()
                    .with_context(|| format!("--archs {a}"))
            })
            .collect::<Result<_>>()?,
        None => DEFAULT_ARCHS
            .iter()
            .map(|a| a.parse().expect("valid default"))
            .collect(),
    };
    let truth = crate::locate::truth_path(args.truth.clone(), None)?;
    let report = run_sanity(
        &archs,
        &truth,
        &dataset_arg(&args.data).context("--data")?,
        &recipe,
        &args.out,
        &device,
        !args.quiet,
    )?;
    let md = report.to_markdown();
    if let Some(p) = &args.report {
        bossnas_runfs::write_atomic(p, md.as_bytes())
            .with_context(|| format!("--report {}", p.display()))?;
    }
    let json_path = args.out.join("sanity.json");
    bossnas_runfs::write_atomic(
        &json_path,
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )
    .with_context(|| json_path.display().to_string())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{md}");
    }
    Ok(())
}
