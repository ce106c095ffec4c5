//! The correlation report: the score against ground truth, free baselines beside it,
//! MAdds-binned τ-b, top-k and regret of the chosen architecture, JSON/Markdown/figures.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hytra_space::nats::NatsArch;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, io_err};
use crate::scores::ScoresInput;
use crate::stats::{
    BootstrapOptions, CorrelationIntervals, Correlations, Orientation, bootstrap_correlations,
    kendall_tau_b,
};
use crate::truth::{AccuracyColumn, GroundTruth};

/// The sign convention, stated in every report.
pub const SIGN_CONVENTION: &str = "raw = scipy-style statistic of (score, accuracy); \
oriented = raw × (−1 if the score is a loss / lower is better, +1 otherwise), so that a positive \
oriented value means the score ranks better architectures higher. The BossNAS potential is a \
loss: its raw values are negative when it works (the paper reports absolute values).";

/// Options of [`correlate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorrelateOptions {
    /// Ground-truth column.
    pub accuracy: AccuracyColumn,
    /// Orientation of the evaluated score (BossNAS scores are losses: lower is better).
    pub orientation: Orientation,
    /// Bootstrap of the 95 % intervals (resamples = 0 disables them).
    pub bootstrap: BootstrapOptions,
    /// Number of MAdds-quantile bins for the within-bin τ-b (0 disables it).
    pub madds_bins: usize,
    /// k values of the top-k table.
    pub top_k: Vec<usize>,
    /// Input side for the parameter/MAdds baselines (CIFAR: 32).
    pub input_size: usize,
    /// Classes for the parameter/MAdds baselines (CIFAR-10: 10).
    pub classes: usize,
    /// Compute the free baselines (params, MAdds, sum of widths).
    pub baselines: bool,
    /// Keep the points for the scatter plot written by [`Report::write`].
    pub keep_points: bool,
}

impl Default for CorrelateOptions {
    fn default() -> Self {
        Self {
            accuracy: AccuracyColumn::default(),
            orientation: Orientation::LowerIsBetter,
            bootstrap: BootstrapOptions::default(),
            madds_bins: 20,
            top_k: vec![1, 10, 100],
            input_size: 32,
            classes: 10,
            baselines: true,
            keep_points: true,
        }
    }
}

/// τ-b within MAdds-quantile bins (does the score rank well among equally expensive nets?).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BinnedKendall {
    pub bins: usize,
    /// Mean of the oriented per-bin τ-b over bins where it is defined.
    pub mean_oriented_tau_b: Option<f64>,
    /// Oriented τ-b of each bin, cheapest bin first (`None` when undefined, e.g. constant).
    pub per_bin_oriented_tau_b: Vec<Option<f64>>,
    /// Architectures per bin.
    pub bin_sizes: Vec<usize>,
}

/// Quality of the k best-scored architectures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopK {
    pub k: usize,
    /// Highest accuracy among them.
    pub best_accuracy: f64,
    /// Mean accuracy among them.
    pub mean_accuracy: f64,
    /// How many of them are among the k most accurate (ties in accuracy counted generously:
    /// accuracy ≥ the k-th best accuracy).
    pub overlap_with_true_top_k: usize,
}

/// The architecture a score would pick (its best) within a budget, and its regret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// e.g. "all", "params ≤ median (…)".
    pub budget: String,
    /// Architectures within the budget.
    pub eligible: usize,
    /// The best-scored eligible architecture (lowest NATS index on score ties).
    pub chosen: NatsArch,
    pub chosen_score: f64,
    pub chosen_accuracy: f64,
    /// The most accurate eligible architecture (lowest index on ties).
    pub best: NatsArch,
    pub best_accuracy: f64,
    /// best_accuracy − chosen_accuracy (percentage points).
    pub regret: f64,
    /// 1 + eligible architectures strictly more accurate than the chosen one.
    pub accuracy_rank: usize,
}

/// Everything measured for one method (the score or a baseline).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodReport {
    pub name: String,
    pub orientation: Orientation,
    /// Raw statistics of (method value, accuracy).
    pub raw: Correlations,
    /// Oriented statistics (positive = ranks better architectures higher).
    pub oriented: Correlations,
    /// Percentile-bootstrap intervals of the oriented statistics.
    pub oriented_ci: Option<CorrelationIntervals>,
    pub madds_binned: Option<BinnedKendall>,
    pub top_k: Vec<TopK>,
    pub selections: Vec<Selection>,
}

/// Points kept for the scatter plot (not serialised).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScatterPoints {
    pub score: Vec<f64>,
    pub accuracy: Vec<f64>,
}

/// The result of [`correlate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Architectures scored and found in the ground truth (the n of every statistic).
    pub n: usize,
    /// Architectures in the ground-truth file.
    pub n_truth: usize,
    /// Scored architectures absent from the ground truth (ignored).
    pub unmatched: usize,
    pub score_source: String,
    pub score_column: String,
    pub truth_path: String,
    pub accuracy_column: AccuracyColumn,
    /// What data the accuracy was measured on.
    pub data_split: String,
    pub sign_convention: String,
    /// Convention of the params/MAdds baselines.
    pub cost_convention: String,
    pub options: CorrelateOptions,
    pub score: MethodReport,
    pub baselines: Vec<MethodReport>,
    #[serde(skip)]
    pub points: Option<ScatterPoints>,
}

/// Files written by [`Report::write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFiles {
    pub json: PathBuf,
    pub markdown: PathBuf,
    pub png: Option<PathBuf>,
    pub svg: Option<PathBuf>,
}

struct Context<'a> {
    accuracy: &'a [f64],
    madds: Vec<f64>,
    bins: Option<Vec<Vec<usize>>>,
    budgets: Vec<(String, Vec<usize>)>,
    opts: &'a CorrelateOptions,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_unstable_by(f64::total_cmp);
    let m = s.len();
    if m % 2 == 1 {
        s[m / 2]
    } else {
        (s[m / 2 - 1] + s[m / 2]) / 2.0
    }
}

/// Splits positions into `bins` equal-count groups by `key`; tied keys share a bin.
fn quantile_bins(key: &[f64], bins: usize) -> Vec<Vec<usize>> {
    let n = key.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| key[a].total_cmp(&key[b]));
    let mut out = vec![Vec::new(); bins];
    let mut group_start = 0;
    for (pos, &i) in order.iter().enumerate() {
        if pos > 0 && key[i] != key[order[pos - 1]] {
            group_start = pos;
        }
        out[(group_start * bins / n).min(bins - 1)].push(i);
    }
    out
}

fn select(
    values: &[f64],
    orientation: Orientation,
    acc: &[f64],
    rows: &[usize],
    eligible: &[usize],
    budget: String,
) -> Option<Selection> {
    let better_or_first = |cand: usize, cur: usize, v: &[f64], o: Orientation| {
        o.better(v[cand], v[cur]) || (v[cand] == v[cur] && rows[cand] < rows[cur])
    };
    let mut chosen = *eligible.first()?;
    let mut best = chosen;
    for &i in &eligible[1..] {
        if better_or_first(i, chosen, values, orientation) {
            chosen = i;
        }
        if better_or_first(i, best, acc, Orientation::HigherIsBetter) {
            best = i;
        }
    }
    let arch = |i: usize| NatsArch::from_index(rows[i]).expect("row is a NATS index");
    Some(Selection {
        budget,
        eligible: eligible.len(),
        chosen: arch(chosen),
        chosen_score: values[chosen],
        chosen_accuracy: acc[chosen],
        best: arch(best),
        best_accuracy: acc[best],
        regret: acc[best] - acc[chosen],
        accuracy_rank: 1 + eligible.iter().filter(|&&i| acc[i] > acc[chosen]).count(),
    })
}

fn method(
    name: &str,
    values: &[f64],
    orientation: Orientation,
    rows: &[usize],
    ctx: &Context<'_>,
) -> MethodReport {
    let acc = ctx.accuracy;
    let raw = Correlations::compute(values, acc);
    let oriented_ci =
        bootstrap_correlations(values, acc, &ctx.opts.bootstrap).map(|c| c.oriented(orientation));
    let madds_binned = ctx.bins.as_ref().map(|bins| {
        let per: Vec<Option<f64>> = bins
            .iter()
            .map(|b| {
                let x: Vec<f64> = b.iter().map(|&i| values[i]).collect();
                let y: Vec<f64> = b.iter().map(|&i| acc[i]).collect();
                let t = orientation.sign() * kendall_tau_b(&x, &y);
                t.is_finite().then_some(t)
            })
            .collect();
        let defined: Vec<f64> = per.iter().flatten().copied().collect();
        BinnedKendall {
            bins: bins.len(),
            mean_oriented_tau_b: (!defined.is_empty())
                .then(|| defined.iter().sum::<f64>() / defined.len() as f64),
            per_bin_oriented_tau_b: per,
            bin_sizes: bins.iter().map(Vec::len).collect(),
        }
    });
    let n = values.len();
    let mut by_score: Vec<usize> = (0..n).collect();
    by_score.sort_by(|&a, &b| {
        orientation
            .best_first(values[a], values[b])
            .then(rows[a].cmp(&rows[b]))
    });
    let mut by_acc: Vec<usize> = (0..n).collect();
    by_acc.sort_by(|&a, &b| acc[b].total_cmp(&acc[a]).then(rows[a].cmp(&rows[b])));
    let top_k = ctx
        .opts
        .top_k
        .iter()
        .filter(|&&k| k >= 1 && k <= n)
        .map(|&k| {
            let top = &by_score[..k];
            let kth_acc = acc[by_acc[k - 1]];
            TopK {
                k,
                best_accuracy: top
                    .iter()
                    .map(|&i| acc[i])
                    .fold(f64::NEG_INFINITY, f64::max),
                mean_accuracy: top.iter().map(|&i| acc[i]).sum::<f64>() / k as f64,
                overlap_with_true_top_k: top.iter().filter(|&&i| acc[i] >= kth_acc).count(),
            }
        })
        .collect();
    let selections = ctx
        .budgets
        .iter()
        .filter_map(|(label, eligible)| {
            select(values, orientation, acc, rows, eligible, label.clone())
        })
        .collect();
    MethodReport {
        name: name.to_string(),
        orientation,
        raw,
        oriented: raw.oriented(orientation),
        oriented_ci,
        madds_binned,
        top_k,
        selections,
    }
}

/// Correlates `scores` with the ground truth and builds the full report.
///
/// Every statistic uses the `n` scored architectures found in the ground truth; the baselines
/// are computed on the same subset.
pub fn correlate(
    scores: &ScoresInput,
    truth: &GroundTruth,
    opts: &CorrelateOptions,
) -> Result<Report> {
    if !(0.0 < opts.bootstrap.confidence && opts.bootstrap.confidence < 1.0) {
        return Err(Error::Options(format!(
            "bootstrap confidence {} must be in (0, 1)",
            opts.bootstrap.confidence
        )));
    }
    let aligned = scores.align(truth, opts.accuracy)?;
    let rows = &aligned.rows;
    let n = rows.len();
    if aligned.scores.iter().all(|&s| s == aligned.scores[0]) {
        // Every correlation would be undefined (NaN), not a finding.
        return Err(Error::Mismatch(format!(
            "{}: all {n} scores matched to the ground truth are equal ({}); a rank correlation \
             needs scores that differ",
            scores.source, aligned.scores[0]
        )));
    }
    let archs: Vec<NatsArch> = rows.iter().map(|&r| truth.archs[r]).collect();
    let costs: Vec<hytra_space::Cost> = archs
        .iter()
        .map(|a| a.cost(opts.input_size, opts.classes))
        .collect();
    let params: Vec<f64> = costs.iter().map(|c| c.params as f64).collect();
    let madds: Vec<f64> = costs.iter().map(|c| c.madds as f64).collect();
    let width_sum: Vec<f64> = archs
        .iter()
        .map(|a| a.widths().iter().map(|&w| w as f64).sum())
        .collect();

    let bins = (opts.madds_bins > 0 && n >= 2 * opts.madds_bins)
        .then(|| quantile_bins(&madds, opts.madds_bins));
    let (pm, mm) = (median(&params), median(&madds));
    let all: Vec<usize> = (0..n).collect();
    let budgets = vec![
        ("all".to_string(), all),
        (
            format!("params ≤ median ({pm:.0})"),
            (0..n).filter(|&i| params[i] <= pm).collect(),
        ),
        (
            format!("MAdds ≤ median ({mm:.0})"),
            (0..n).filter(|&i| madds[i] <= mm).collect(),
        ),
    ];
    let ctx = Context {
        accuracy: &aligned.accuracy,
        madds: madds.clone(),
        bins,
        budgets,
        opts,
    };
    let score = method(
        &scores.column,
        &aligned.scores,
        opts.orientation,
        rows,
        &ctx,
    );
    let baselines = if opts.baselines {
        let h = Orientation::HigherIsBetter;
        vec![
            method("params", &params, h, rows, &ctx),
            method("madds", &ctx.madds, h, rows, &ctx),
            method("sum_of_widths", &width_sum, h, rows, &ctx),
        ]
    } else {
        Vec::new()
    };
    Ok(Report {
        n,
        n_truth: truth.len(),
        unmatched: aligned.unmatched.len(),
        score_source: scores.source.clone(),
        score_column: scores.column.clone(),
        truth_path: truth.path.display().to_string(),
        accuracy_column: opts.accuracy,
        data_split: opts.accuracy.split_description().to_string(),
        sign_convention: SIGN_CONVENTION.to_string(),
        cost_convention: format!(
            "standalone NATS-SSS network, {0}×{0} input, {1} classes; MAdds count convolutions and the classifier",
            opts.input_size, opts.classes
        ),
        options: opts.clone(),
        score,
        baselines,
        points: opts.keep_points.then(|| ScatterPoints {
            score: aligned.scores.clone(),
            accuracy: aligned.accuracy.clone(),
        }),
    })
}

fn f3(v: f64) -> String {
    if v.is_finite() {
        format!("{v:+.3}")
    } else {
        "n/a".into()
    }
}

fn ci(
    i: &Option<CorrelationIntervals>,
    pick: impl Fn(&CorrelationIntervals) -> crate::stats::Interval,
) -> String {
    match i {
        Some(c) => {
            let v = pick(c);
            format!("[{}, {}]", f3(v.lo), f3(v.hi))
        }
        None => "—".into(),
    }
}

impl Report {
    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serialises")
    }

    /// Methods in table order: the score, then the baselines.
    pub fn methods(&self) -> impl Iterator<Item = &MethodReport> {
        std::iter::once(&self.score).chain(&self.baselines)
    }

    /// A self-contained Markdown summary.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# NATS-Bench SSS rating correlation: `{}`\n",
            self.score_column
        );
        let _ = writeln!(
            s,
            "- scores: `{}` (column `{}`, {})",
            self.score_source, self.score_column, self.score.orientation
        );
        let _ = writeln!(
            s,
            "- ground truth: `{}`, column `{}`; n = {} of {} architectures{}",
            self.truth_path,
            self.accuracy_column.name(),
            self.n,
            self.n_truth,
            if self.unmatched > 0 {
                format!(
                    " ({} scored archs not in the ground truth were ignored)",
                    self.unmatched
                )
            } else {
                String::new()
            }
        );
        let _ = writeln!(s, "- data split: {}", self.data_split);
        let _ = writeln!(s, "- sign convention: {}", self.sign_convention);
        let _ = writeln!(s, "- baselines: {}", self.cost_convention);
        if let Some(c) = &self.score.oriented_ci {
            let _ = writeln!(
                s,
                "- intervals: {:.0} % percentile bootstrap, {} resamples, seed {}",
                c.confidence * 100.0,
                c.resamples,
                self.options.bootstrap.seed
            );
        }
        let _ = writeln!(s, "\n## Correlations (raw and oriented)\n");
        let _ = writeln!(
            s,
            "| method | raw τ-b | raw ρ | raw r | oriented τ-b | 95 % CI | oriented ρ | 95 % CI | oriented r | 95 % CI | mean τ-b in MAdds bins |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|");
        for m in self.methods() {
            let binned = m
                .madds_binned
                .as_ref()
                .and_then(|b| b.mean_oriented_tau_b)
                .map(f3)
                .unwrap_or("—".into());
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                m.name,
                f3(m.raw.kendall_tau_b),
                f3(m.raw.spearman_rho),
                f3(m.raw.pearson_r),
                f3(m.oriented.kendall_tau_b),
                ci(&m.oriented_ci, |c| c.kendall_tau_b),
                f3(m.oriented.spearman_rho),
                ci(&m.oriented_ci, |c| c.spearman_rho),
                f3(m.oriented.pearson_r),
                ci(&m.oriented_ci, |c| c.pearson_r),
                binned
            );
        }
        if let Some(b) = self.score.madds_binned.as_ref() {
            let _ = writeln!(
                s,
                "\nMAdds bins: {} equal-count quantile bins (tied MAdds share a bin).",
                b.bins
            );
        }
        let _ = writeln!(s, "\n## Top-k by score\n");
        let _ = writeln!(
            s,
            "| method | k | best acc | mean acc | overlap with true top-k |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|");
        for m in self.methods() {
            for t in &m.top_k {
                let _ = writeln!(
                    s,
                    "| {} | {} | {:.2} | {:.3} | {}/{} |",
                    m.name, t.k, t.best_accuracy, t.mean_accuracy, t.overlap_with_true_top_k, t.k
                );
            }
        }
        let _ = writeln!(
            s,
            "\n## Chosen architecture (the method's best) and regret\n"
        );
        let _ = writeln!(
            s,
            "| method | budget | eligible | chosen | acc | rank | best in budget | best acc | regret |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
        for m in self.methods() {
            for c in &m.selections {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | `{}` | {:.2} | {} | `{}` | {:.2} | {:.2} |",
                    m.name,
                    c.budget,
                    c.eligible,
                    c.chosen,
                    c.chosen_accuracy,
                    c.accuracy_rank,
                    c.best,
                    c.best_accuracy,
                    c.regret
                );
            }
        }
        s
    }

    /// Writes `report.json`, `report.md` and, when points were kept, `scatter.png` and
    /// `scatter.svg` into `dir` (created if needed).
    pub fn write(&self, dir: impl AsRef<Path>) -> Result<WrittenFiles> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(io_err(dir, "cannot create directory"))?;
        let json = dir.join("report.json");
        std::fs::write(&json, self.to_json()).map_err(io_err(&json, "cannot write"))?;
        let markdown = dir.join("report.md");
        std::fs::write(&markdown, self.to_markdown()).map_err(io_err(&markdown, "cannot write"))?;
        let (mut png, mut svg) = (None, None);
        if let Some(points) = &self.points {
            let chosen = self.score.selections.first();
            let spec = crate::plot::ScatterSpec {
                title: format!(
                    "{} vs {} (n={}, τ-b={}, ρ={}, r={})",
                    self.score_column,
                    self.accuracy_column.name(),
                    self.n,
                    f3(self.score.raw.kendall_tau_b),
                    f3(self.score.raw.spearman_rho),
                    f3(self.score.raw.pearson_r)
                ),
                x_label: format!("{} ({})", self.score_column, self.score.orientation),
                y_label: format!("{} (%)", self.accuracy_column.name()),
                x: &points.score,
                y: &points.accuracy,
                highlights: chosen
                    .map(|c| {
                        vec![(
                            c.chosen_score,
                            c.chosen_accuracy,
                            format!("chosen {} ({:.2} %)", c.chosen, c.chosen_accuracy),
                        )]
                    })
                    .unwrap_or_default(),
                size: (1000, 750),
                text: true,
            };
            let p = dir.join("scatter.png");
            crate::plot::scatter(&p, &spec)?;
            png = Some(p);
            let p = dir.join("scatter.svg");
            crate::plot::scatter(&p, &spec)?;
            svg = Some(p);
        }
        Ok(WrittenFiles {
            json,
            markdown,
            png,
            svg,
        })
    }
}
