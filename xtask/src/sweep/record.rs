//! The small JSON result of one sweep point (`sweeps/<name>/results/<variant>-s<seed>.json`):
//! what it cost and how well it ranked, committed as soon as the point ends.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use bench_nats::potential::PotentialTable;
use bench_nats::stats::kendall_tau_b;
use bench_nats::{AccuracyColumn, GroundTruth};
use bossnas_config::RunConfig;
use bossnas_search::output::{RATING_DIR, ranking_csv_name, read_ranking_csv};
use bossnas_search::search::{BlockRanking, ScoreWeights, score_all_nats};
use bossnas_search::select::space_of;
use hytra_space::nats::{NATS_LAYERS, NatsArch, NatsSplit, layer_costs};
use serde::{Deserialize, Serialize};

use super::meter::Spent;
use super::noise::read_noise_ranking;
use crate::search_suite::ProtocolOutcome;

/// Everything one point reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PointResult {
    pub sweep: String,
    pub variant: String,
    pub family: String,
    #[serde(default)]
    pub note: String,
    pub seed: u64,
    pub git_commit: Option<String>,
    pub compute: PointCompute,
    pub correlation: CorrelationSummary,
    pub blocks: Vec<BlockSummary>,
    /// Re-ratings of the same trained blocks with other views (rating noise).
    pub rerating: Vec<Rerating>,
    pub searched: Searched,
    /// The resolved run config (data root removed: it is machine-specific).
    pub config_toml: String,
}

/// Cost of the point.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PointCompute {
    /// Wall time and process CPU time over all segments, correlation included.
    pub spent: Spent,
    /// What the search cost a user: `spent` less the correlation with NATS-Bench and the
    /// extra re-ratings (which only a benchmark does). The curve's x axis.
    pub search_cpu_s: f64,
    pub search_wall_s: f64,
    /// CPU seconds of the extra re-ratings (rating noise), left out of `search_*`.
    #[serde(default)]
    pub noise_rating_cpu_s: f64,
    pub threads: usize,
    pub cpu_model: Option<String>,
    pub optimizer_steps: u64,
    /// Training images drawn (steps × batch × accumulation).
    pub training_images: u64,
    /// Single-view path forwards (images × 2 views × paths per step).
    pub view_forwards: u64,
    /// Estimated supernet training FLOPs (see [`training_flops`]).
    pub supernet_flops: f64,
    /// Seconds of the last segment in training + rating, search and correlation.
    pub train_s: f64,
    pub search_s: f64,
    pub correlate_s: f64,
}

/// The correlation over all 32,768 architectures (oriented: positive = ranks better ones
/// higher), with 95 % bootstrap intervals over architectures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CorrelationSummary {
    pub n: usize,
    pub kendall_tau_b: f64,
    pub kendall_tau_b_ci: Option<[f64; 2]>,
    pub spearman_rho: f64,
    pub spearman_rho_ci: Option<[f64; 2]>,
    pub pearson_r: f64,
    pub pearson_r_ci: Option<[f64; 2]>,
    /// Mean τ-b within 20 MAdds-quantile bins.
    pub mean_binned_tau_b: Option<f64>,
    /// τ-b against the NATS-Bench `cifar10-valid` validation accuracy (another column).
    pub valid_kendall_tau_b: f64,
    /// The free baselines on the same ground truth (name, τ-b).
    pub baselines: Vec<(String, f64)>,
}

/// One block's rating.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlockSummary {
    pub block: usize,
    pub candidates: usize,
    /// Best path (op indices) and its potential.
    pub best: Vec<usize>,
    /// max − min and standard deviation of the potentials.
    pub potential_spread: f64,
    pub potential_std: f64,
    /// τ-b over all 32,768 architectures when only this block's potential scores them.
    pub tau_b_alone: f64,
    /// τ-b between this block's potentials and the official full-budget run's potentials of
    /// the same candidates (`bossnas-reference/path_rank_stage{k}.csv`; both are losses, so
    /// positive = the same order): how close this budget comes to the paper's block ranking.
    /// `None` when the reference is absent or the split is not CIFAR-10's (results before
    /// 2026-12-04 lack it).
    #[serde(default)]
    pub tau_b_vs_official: Option<f64>,
    /// Every candidate's potential (width index per layer of the block, potential), so later
    /// analyses need no run directory. Empty in results before 2026-12-04.
    #[serde(default)]
    pub potentials: Vec<(Vec<usize>, f64)>,
}

/// The run re-rated with other views.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rerating {
    pub view_epoch: u64,
    /// τ-b over all 32,768 architectures with the re-rated scores.
    pub kendall_tau_b: f64,
    /// Per block: τ-b between the candidates' potentials of the two ratings.
    pub agreement_tau_b: Vec<f64>,
}

/// The searched (greedy) architecture.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Searched {
    pub arch: String,
    pub accuracy: Option<f64>,
    /// 1 = the most accurate of the population.
    pub rank: Option<usize>,
    pub population: usize,
}

fn interval(i: bench_nats::stats::Interval) -> [f64; 2] {
    [i.lo, i.hi]
}

fn split_of(cfg: &RunConfig) -> NatsSplit {
    match space_of(cfg) {
        hytra_space::arch::SearchSpace::Nats { split } => split,
        _ => NatsSplit::Cifar10,
    }
}

/// Potentials of a block for every architecture, in NATS index order.
fn block_scores(split: NatsSplit, ranking: &BlockRanking) -> Result<Vec<f64>> {
    let table: HashMap<&[usize], f64> = ranking
        .entries
        .iter()
        .map(|e| (e.path.as_slice(), e.score))
        .collect();
    NatsArch::all()
        .map(|a| {
            let ops = split.block_ops(&a, ranking.block)?;
            table
                .get(ops.as_slice())
                .copied()
                .with_context(|| format!("block {} has no potential for {ops:?}", ranking.block))
        })
        .collect()
}

/// τ-b of a loss-like score (lower is better) against accuracy, oriented.
fn oriented_tau(loss: &[f64], accuracy: &[f64]) -> f64 {
    let neg: Vec<f64> = loss.iter().map(|v| -v).collect();
    kendall_tau_b(&neg, accuracy)
}

/// τ-b between a block's potentials and another rating of the same candidates (`other`: a
/// path's potential there), over the candidates both hold.
fn agreement(ranking: &BlockRanking, other: impl Fn(&[usize]) -> Option<f64>) -> f64 {
    let (x, y): (Vec<f64>, Vec<f64>) = ranking
        .entries
        .iter()
        .filter_map(|e| other(&e.path).map(|p| (e.score, p)))
        .unzip();
    kendall_tau_b(&x, &y)
}

fn std_dev(v: &[f64]) -> f64 {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n).sqrt()
}

/// Estimated FLOPs of the supernet's training (2 FLOPs per multiply-add; backward = 2 ×
/// forward). Per optimizer step of block `k`, for each of the `batch × accumulation` images
/// and both views: the prefix along the chosen paths once (online forward + backward unless
/// frozen, target forward) and every sampled path of the block (online forward + backward,
/// target forward), each path at the mean cost of the block's population (exact in
/// expectation for fair and uniform sampling). Heads, losses and the rating are not counted.
pub fn training_flops(cfg: &RunConfig, steps_per_block: &[u64], chosen: &[Vec<usize>]) -> f64 {
    let split = split_of(cfg);
    let widths = &cfg.space.widths;
    let side = cfg.data.image_size;
    let images = (cfg.train.batch_size * cfg.train.accumulation_steps) as f64;
    let prefix_passes = if cfg.train.freeze_earlier_blocks {
        2.0
    } else {
        4.0
    };
    let layer_cost =
        |ops: [usize; NATS_LAYERS]| layer_costs(ops.map(|o| widths[o.min(widths.len() - 1)]), side);
    let mut total = 0.0;
    for (k, range) in split.block_ranges().into_iter().enumerate() {
        let steps = steps_per_block.get(k).copied().unwrap_or(0) as f64;
        // The chosen ops of the earlier blocks, op 0 elsewhere (overwritten below).
        let mut ops = [0usize; NATS_LAYERS];
        for (b, r) in split.block_ranges().into_iter().enumerate().take(k) {
            for (l, &o) in r.zip(chosen.get(b).into_iter().flatten()) {
                ops[l] = o;
            }
        }
        let prefix: f64 = layer_cost(ops)[..range.start]
            .iter()
            .map(|c| c.madds as f64)
            .sum();
        // Mean cost of the block's layers over its population (every op combination).
        let n_layers = range.len();
        let combos = widths.len().pow(n_layers as u32);
        let mut block = 0.0;
        for c in 0..combos {
            let mut o = ops;
            let mut rest = c;
            for l in range.clone() {
                o[l] = rest % widths.len();
                rest /= widths.len();
            }
            block += layer_cost(o)[range.clone()]
                .iter()
                .map(|c| c.madds as f64)
                .sum::<f64>();
        }
        block /= combos as f64;
        let per_image = prefix_passes * prefix + 4.0 * cfg.train.paths_per_step as f64 * block;
        total += steps * images * 2.0 * per_image * 2.0;
    }
    total
}

/// The rankings the run wrote, one per block.
pub fn read_rankings(run: &Path, blocks: usize) -> Result<Vec<BlockRanking>> {
    (0..blocks)
        .map(|k| {
            let p = run.join(RATING_DIR).join(ranking_csv_name(k));
            read_ranking_csv(&p, k).with_context(|| format!("reading {}", p.display()))
        })
        .collect()
}

/// Correlation, per-block and re-rating figures of a finished run.
pub fn analyse(
    cfg: &RunConfig,
    outcome: &ProtocolOutcome,
    truth: &GroundTruth,
    official: Option<&[PotentialTable]>,
    rerate_epochs: &[u64],
) -> Result<(CorrelationSummary, Vec<BlockSummary>, Vec<Rerating>)> {
    let nats = outcome
        .nats
        .as_ref()
        .context("the run has no NATS correlation")?;
    let report = &nats.correlation;
    let m = &report.score;
    let split = split_of(cfg);
    let test = truth.accuracy(AccuracyColumn::Cifar10TestHp90);
    let valid = truth.accuracy(AccuracyColumn::Cifar10ValidValidHp90);
    let rankings = read_rankings(outcome.run.root(), 3)?;
    let weights = ScoreWeights::default();
    let space = space_of(cfg);
    let total: Vec<f64> = score_all_nats(space, &rankings, &weights)?
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    let correlation = CorrelationSummary {
        n: report.n,
        kendall_tau_b: m.oriented.kendall_tau_b,
        kendall_tau_b_ci: m.oriented_ci.map(|c| interval(c.kendall_tau_b)),
        spearman_rho: m.oriented.spearman_rho,
        spearman_rho_ci: m.oriented_ci.map(|c| interval(c.spearman_rho)),
        pearson_r: m.oriented.pearson_r,
        pearson_r_ci: m.oriented_ci.map(|c| interval(c.pearson_r)),
        mean_binned_tau_b: m.madds_binned.as_ref().and_then(|b| b.mean_oriented_tau_b),
        valid_kendall_tau_b: oriented_tau(&total, valid),
        baselines: report
            .baselines
            .iter()
            .map(|b| (b.name.clone(), b.oriented.kendall_tau_b))
            .collect(),
    };
    let blocks = rankings
        .iter()
        .map(|r| {
            let pots: Vec<f64> = r.entries.iter().map(|e| e.score).collect();
            let (lo, hi) = pots
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                    (a.min(v), b.max(v))
                });
            Ok(BlockSummary {
                block: r.block,
                candidates: pots.len(),
                best: r.best().map(|e| e.path.clone()).unwrap_or_default(),
                potential_spread: hi - lo,
                potential_std: std_dev(&pots),
                tau_b_alone: oriented_tau(&block_scores(split, r)?, test),
                tau_b_vs_official: official
                    .filter(|_| split == NatsSplit::Cifar10)
                    .and_then(|t| t.get(r.block))
                    .map(|t| agreement(r, |p| t.potential(p))),
                potentials: r
                    .entries
                    .iter()
                    .map(|e| (e.path.clone(), e.score))
                    .collect(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut rerating = Vec::new();
    for &epoch in rerate_epochs {
        let other: Option<Vec<BlockRanking>> = (0..rankings.len())
            .map(|k| read_noise_ranking(outcome.run.root(), k, epoch))
            .collect();
        let Some(other) = other else { continue };
        let scores: Vec<f64> = score_all_nats(space, &other, &weights)?
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        let agreement_tau_b = rankings
            .iter()
            .zip(&other)
            .map(|(a, b)| agreement(a, |p| b.score_of(p)))
            .collect();
        rerating.push(Rerating {
            view_epoch: epoch,
            kendall_tau_b: oriented_tau(&scores, test),
            agreement_tau_b,
        });
    }
    Ok((correlation, blocks, rerating))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_flops_follow_the_formula() {
        let cfg = RunConfig::preset("nats-c10-cpu").unwrap();
        let images = (cfg.train.batch_size * cfg.train.accumulation_steps) as f64;
        // Block 0 only, one step: no prefix; 8 paths at the mean cost of the 64 (c0, c1)
        // combinations, 4 passes (online forward + backward, target forward), 2 views,
        // 2 FLOPs per multiply-add.
        let one = training_flops(&cfg, &[1, 0, 0], &[]);
        let w = &cfg.space.widths;
        let mut mean = 0.0;
        for a in w {
            for b in w {
                let c = layer_costs([*a, *b, w[0], w[0], w[0]], 32);
                mean += (c[0].madds + c[1].madds) as f64;
            }
        }
        mean /= 64.0;
        let expected = images * 2.0 * 4.0 * 8.0 * mean * 2.0;
        assert!(
            (one - expected).abs() <= 1e-9 * expected,
            "{one} vs {expected}"
        );
        // Linear in steps; a later block also pays for its prefix; freezing it costs less.
        assert_eq!(training_flops(&cfg, &[3, 0, 0], &[]), 3.0 * one);
        let chosen = [vec![7, 7], vec![7, 7]];
        let b1 = training_flops(&cfg, &[0, 1, 0], &chosen);
        let mut frozen = cfg.clone();
        frozen.train.freeze_earlier_blocks = true;
        assert!(training_flops(&frozen, &[0, 1, 0], &chosen) < b1);
    }

    #[test]
    fn agreement_with_the_official_potentials_follows_their_order() {
        use bench_nats::potential::PotentialEntry;
        use bossnas_search::rating::RatedPath;
        let paths = [vec![0, 1], vec![2, 3], vec![7, 7], vec![4, 0]];
        let ours = BlockRanking {
            block: 0,
            entries: paths
                .iter()
                .zip([0.1, 0.2, 0.3, 0.4])
                .map(|(p, s)| RatedPath {
                    path: p.clone(),
                    score: s,
                })
                .collect(),
        };
        let table = |pots: [f64; 4]| {
            let entries = paths
                .iter()
                .zip(pots)
                .enumerate()
                .map(|(rank, (p, potential))| PotentialEntry {
                    rank,
                    ops: p.clone(),
                    potential,
                })
                .collect();
            PotentialTable::new("test", 0..2, entries).unwrap()
        };
        let same = table([-3.0, -2.0, -1.0, 0.0]);
        let same = agreement(&ours, |p| same.potential(p));
        assert!((same - 1.0).abs() < 1e-12, "{same}");
        let reversed = table([0.0, -1.0, -2.0, -3.0]);
        let reversed = agreement(&ours, |p| reversed.potential(p));
        assert!((reversed + 1.0).abs() < 1e-12, "{reversed}");
        // One discordant pair of six: τ = (5 − 1) / 6.
        let one_swap = table([-3.0, -2.0, 0.0, -1.0]);
        let one_swap = agreement(&ours, |p| one_swap.potential(p));
        assert!((one_swap - 4.0 / 6.0).abs() < 1e-12, "{one_swap}");
    }
}
