//! `bossnas nats …`: correlation of architecture scores with NATS-Bench ground truth.

use std::path::PathBuf;

use anyhow::{Context, Result};
use bench_nats::{
    AccuracyColumn, CorrelateOptions, GroundTruth, Orientation, ScoresInput, correlate,
};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum NatsCommand {
    /// Kendall τ-b, Spearman ρ and Pearson r (bootstrap 95 % intervals) of a score column
    /// against NATS-Bench accuracy, with free baselines, top-k/regret and a scatter plot.
    Correlate {
        /// CSV with an `arch` column (`c0:c1:c2:c3:c4`) and a score column, or `official`:
        /// the official BossNAS scores (`bossnas-reference/bossnas_c10_arch_scores.csv` in the
        /// data directory, downloaded when missing).
        #[arg(long)]
        scores: PathBuf,
        /// Name of the score column [default: score; bossnas_loss_score with `--scores official`].
        #[arg(long)]
        score_column: Option<String>,
        /// The score is a loss (lower is better; BossNAS potentials). This is the default.
        #[arg(long, conflicts_with = "higher_is_better")]
        lower_is_better: bool,
        /// The score is higher-is-better (e.g. a predicted accuracy).
        #[arg(long)]
        higher_is_better: bool,
        /// NATS-Bench SSS ground truth CSV [default: nats-sss/nats_sss_cifar10.csv in the data
        /// directory, downloaded from the BossNAS repository when missing].
        #[arg(long)]
        truth: Option<PathBuf>,
        /// Data directory [default: $BOSSNAS_DATA, else ~/.cache/bossnas].
        #[arg(long)]
        data: Option<PathBuf>,
        /// Accuracy column of the ground truth (`cifar10_test_acc_hp90`, or `valid`).
        #[arg(long, default_value = "cifar10_test_acc_hp90")]
        accuracy: String,
        /// Bootstrap resamples for the 95 % intervals (0 disables them).
        #[arg(long, default_value_t = 200)]
        bootstrap: usize,
        /// Write report.md, report.json, scatter.png and scatter.svg into this directory.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print the report as JSON instead of Markdown.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: NatsCommand) -> Result<()> {
    let NatsCommand::Correlate {
        scores,
        score_column,
        lower_is_better: _,
        higher_is_better,
        truth,
        data,
        accuracy,
        bootstrap,
        out,
        json,
    } = cmd;
    let (scores, score_column) = if scores.as_os_str() == "official" {
        let path = crate::locate::nats_data(data.as_deref())?.official_scores();
        (
            path,
            score_column.unwrap_or_else(|| "bossnas_loss_score".into()),
        )
    } else {
        (scores, score_column.unwrap_or_else(|| "score".into()))
    };
    let scores = ScoresInput::from_csv(&scores, Some(&score_column))
        .with_context(|| format!("loading scores from {}", scores.display()))?;
    let truth = crate::locate::truth_path(truth, data.as_deref())?;
    let truth = GroundTruth::load(&truth)
        .with_context(|| format!("loading NATS-Bench ground truth from {}", truth.display()))?;
    let mut opts = CorrelateOptions {
        accuracy: accuracy.parse::<AccuracyColumn>()?,
        orientation: if higher_is_better {
            Orientation::HigherIsBetter
        } else {
            Orientation::LowerIsBetter
        },
        ..CorrelateOptions::default()
    };
    opts.bootstrap.resamples = bootstrap;
    opts.keep_points = out.is_some();
    let report = correlate(&scores, &truth, &opts)?;
    let (n, total) = (scores.entries.len(), truth.archs.len());
    if n < total {
        eprintln!(
            "warning: {} scores {n} of the {total} architectures of the ground truth ({:.1} %); \
             the correlations describe those {n} only",
            scores.source,
            100.0 * n as f64 / total as f64
        );
    }
    if json {
        println!("{}", report.to_json());
    } else {
        println!("{}", report.to_markdown());
    }
    if let Some(dir) = out {
        let files = report
            .write(&dir)
            .with_context(|| format!("writing the report to {}", dir.display()))?;
        eprintln!("report written: {}", files.markdown.display());
    }
    Ok(())
}
