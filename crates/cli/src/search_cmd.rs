//! `bossnas rate` and `bossnas search`: population-centre rating of a trained run's block and
//! block-wise (optionally constrained) architecture search from its rankings.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use bossnas_kernels::device::{DeviceSpec, ToDevice};
use bossnas_search::rating::CentreMode;
use bossnas_search::run::{SearchRequest, load_run_config, rate_run, search_run};
use bossnas_search::search::{Budget, EvolutionConfig, ScoreWeights, SearchMethod};
use bossnas_search::select::RateOptions;
use clap::{Args, ValueEnum};
use hytra_space::arch::CostModel;

/// Population centre averaging (spec §9 D3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Centre {
    /// Mean of the raw target projections (official evaluation).
    Raw,
    /// Mean of the L2-normalised projections (as the training target).
    Normalised,
}

/// Options of `bossnas rate`.
#[derive(Debug, Args)]
pub struct RateArgs {
    /// The run directory (`bossnas train` output).
    #[arg(long)]
    run: PathBuf,
    /// Device: cpu, wgpu[:N], cuda[:N] (default: the run's config).
    #[arg(long)]
    device: Option<String>,
    /// Population centre (default raw).
    #[arg(long, value_enum)]
    centre: Option<Centre>,
    /// Recalibrate the predictor's BN (default: the config's `rating.predictor_bn_quirk`
    /// decides; the official code does not).
    #[arg(long)]
    recalibrate_predictor: bool,
}

/// Options of `bossnas search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The run directory with `rating/path_rank_{k}.csv` for every block.
    #[arg(long)]
    run: PathBuf,
    /// Maximum multiply-adds (e.g. 3.5e9).
    #[arg(long)]
    budget_madds: Option<f64>,
    /// Maximum parameters (e.g. 4e7).
    #[arg(long)]
    budget_params: Option<f64>,
    /// λ_k per block, comma-separated (default 1 for every block).
    #[arg(long, value_delimiter = ',')]
    lambda: Vec<f64>,
    /// Offset added to every block loss.
    #[arg(long, default_value_t = 4.0)]
    offset: f64,
    /// Input side for costs (default 224; 32 for NATS).
    #[arg(long)]
    input: Option<usize>,
    /// Classes for costs (default 1000; 10/100 for NATS).
    #[arg(long)]
    classes: Option<usize>,
    /// HyTra: cost paths inside the supernet instead of the retrained BossNet.
    #[arg(long)]
    in_supernet: bool,
    /// Aging evolution: seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Aging evolution: children.
    #[arg(long, default_value_t = 20_000)]
    cycles: usize,
    /// Exact search limit (complete combinations checked) before falling back to evolution.
    #[arg(long, default_value_t = 5_000_000)]
    max_exact: u64,
}

fn budget_value(name: &str, v: Option<f64>) -> Result<Option<u64>> {
    match v {
        None => Ok(None),
        Some(x) if x.is_finite() && x > 0.0 => Ok(Some(x as u64)),
        Some(x) => bail!("--{name} must be a positive number, got {x}"),
    }
}

pub fn rate(args: RateArgs) -> Result<()> {
    let cfg = load_run_config(&args.run)?;
    let spec: DeviceSpec = args
        .device
        .as_deref()
        .unwrap_or(&cfg.device)
        .parse()
        .context("--device")?;
    let device = spec.device().context("--device")?;
    if let Some(summary) = finished_rankings(&args.run, &cfg)? {
        // Every block was rated by population centre while training (a block's heads are
        // replaced when the next block starts, so the rankings written then are final and
        // cannot be redone with other options).
        let given: Vec<&str> = [
            (args.device.is_some(), "--device"),
            (args.centre.is_some(), "--centre"),
            (args.recalibrate_predictor, "--recalibrate-predictor"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        if !given.is_empty() {
            bail!(
                "{}: every block was rated while training and the trained heads are gone, so                  {} cannot be applied; run without them to print the stored rankings",
                args.run.display(),
                given.join(", ")
            );
        }
        println!("{summary}");
        return Ok(());
    }
    let options = RateOptions {
        centre: match args.centre.unwrap_or(Centre::Raw) {
            Centre::Raw => CentreMode::Raw,
            Centre::Normalised => CentreMode::Normalised,
        },
        recalibrate_predictor: args.recalibrate_predictor.then_some(true),
        ..RateOptions::default()
    };
    let r = rate_run(&args.run, &device, &options)
        .with_context(|| format!("rating {}", args.run.display()))?;
    println!(
        "block {}: {} candidates rated, best {}",
        r.block,
        r.candidates,
        cfg_kind(&args.run)?.path_label(&r.best)
    );
    for f in &r.files {
        println!("wrote {}", f.display());
    }
    Ok(())
}

pub fn search(args: SearchArgs) -> Result<()> {
    let cfg = load_run_config(&args.run)?;
    let space = bossnas_search::select::space_of(&cfg);
    let defaults = CostModel::default_for(space);
    let request = SearchRequest {
        budget: Budget {
            max_madds: budget_value("budget-madds", args.budget_madds)?,
            max_params: budget_value("budget-params", args.budget_params)?,
        },
        weights: ScoreWeights {
            lambdas: args.lambda.clone(),
            offset: args.offset,
        },
        cost_model: Some(CostModel {
            input: args.input.unwrap_or(defaults.input),
            classes: args.classes.unwrap_or(defaults.classes),
            hytra_in_supernet: args.in_supernet,
        }),
        method: SearchMethod::Auto {
            max_leaves: args.max_exact,
            evolution: EvolutionConfig {
                seed: args.seed,
                cycles: args.cycles,
                ..EvolutionConfig::default()
            },
        },
    };
    let report = search_run(&args.run, &request)
        .with_context(|| format!("searching {}", args.run.display()))?;
    let s = &report.summary;
    println!(
        "{} ({}): {} score {:.6}, {} params, {} MAdds",
        s.arch_string, s.method, s.space, s.score, s.params, s.madds
    );
    for f in &report.files {
        println!("wrote {}", f.display());
    }
    // Pictures of the run (curves, ratings, the searched architecture) in <run>/figures; the
    // NATS candidates' ground-truth accuracy only when the truth is already in the data dir.
    let truth = crate::locate::present_truth();
    let figures = bossnas_search::figures::write_run_figures(
        &args.run,
        &args.run.join("figures"),
        Some(&s.blocks),
        truth.as_ref(),
    )
    .with_context(|| format!("drawing the figures of {}", args.run.display()))?;
    for f in &figures {
        println!("wrote {} (+ .svg): {}", f.png.display(), f.caption);
    }
    Ok(())
}

fn cfg_kind(run: &std::path::Path) -> Result<hytra_space::SpaceKind> {
    Ok(load_run_config(run)?.space.kind)
}

/// The per-block rankings of a run whose blocks are all rated, as a summary; `None` while a
/// block is still being trained (then it is rated from the newest checkpoint).
fn finished_rankings(
    run: &std::path::Path,
    cfg: &bossnas_config::RunConfig,
) -> Result<Option<String>> {
    let blocks = bossnas_search::select::space_of(cfg).num_blocks();
    let dir = run.join("rating");
    let mut lines = Vec::new();
    for k in 0..blocks {
        let file = dir.join(bossnas_search::output::ranking_csv_name(k));
        if !file.is_file() {
            return Ok(None);
        }
        let ranking = bossnas_search::output::read_ranking_csv(&file, k)?;
        let best = ranking
            .best()
            .with_context(|| format!("{}: empty ranking", file.display()))?;
        lines.push(format!(
            "block {k}: {} candidates rated, best {} (score {:.6}) — {}",
            ranking.entries.len(),
            cfg.space.kind.path_label(&best.path),
            best.score,
            file.display()
        ));
    }
    Ok(Some(lines.join("\n")))
}
