//! Files written by rating and search. Every write is atomic (temporary file + rename).
//!
//! - per-block ranking CSV `rank,path,score` (rank 0 = best, path = digit key like `5433`)
//!   and the same as JSON;
//! - NATS: additionally `path_rank_stage{k}.csv` in the `bench-nats` potential format
//!   (`rank,code,channels,potential`), so `bench_nats::potential::ComposedScore::load_dir`
//!   reads a rated run directly;
//! - the searched architecture as the bare JSON value `bossnas arch cost --arch` accepts,
//!   plus a `search.json` with score, cost and method;
//! - NATS scores of every architecture, `arch,score`, for
//!   `bossnas nats correlate --scores <csv> --score-column score`.

use std::path::{Path, PathBuf};

use hytra_space::nats::{NATS_WIDTHS, NatsArch};
use serde::{Deserialize, Serialize};

use crate::rating::{RatedPath, rank};
use crate::search::{BlockRanking, SearchOutcome};
use crate::{Result, SearchError};
use hytra_space::arch::{SearchSpace, parse_path_key, path_key};

/// Sub-directory of a run holding the rankings.
pub const RATING_DIR: &str = "rating";
/// Sub-directory of a run holding search results.
pub const SEARCH_DIR: &str = "search";

/// `path_rank_{block}.csv`.
pub fn ranking_csv_name(block: usize) -> String {
    format!("path_rank_{block}.csv")
}

/// `path_rank_{block}.json`.
pub fn ranking_json_name(block: usize) -> String {
    format!("path_rank_{block}.json")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SearchError + '_ {
    move |source| SearchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// [`bossnas_runfs::write_atomic`] with the search's error type.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    bossnas_runfs::write_atomic(path, bytes).map_err(io(path))
}

fn csv_bytes(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| SearchError::Invalid(format!("csv: {e}"));
    w.write_record(header).map_err(err)?;
    for r in rows {
        w.write_record(&r).map_err(err)?;
    }
    w.into_inner()
        .map_err(|e| SearchError::Invalid(format!("csv: {e}")))
}

/// Writes a ranking as `rank,path,score`.
pub fn write_ranking_csv(path: &Path, ranking: &BlockRanking) -> Result<()> {
    let rows = ranking
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| vec![i.to_string(), path_key(&e.path), e.score.to_string()]);
    write_atomic(path, &csv_bytes(&["rank", "path", "score"], rows)?)
}

/// Reads a `rank,path,score` ranking (re-sorted ascending by score).
pub fn read_ranking_csv(path: &Path, block: usize) -> Result<BlockRanking> {
    let fmt = |reason: String| SearchError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let mut r = csv::Reader::from_path(path).map_err(|e| fmt(e.to_string()))?;
    let headers = r.headers().map_err(|e| fmt(e.to_string()))?.clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| fmt(format!("no column {name:?}")))
    };
    let (cp, cs) = (col("path")?, col("score")?);
    let mut entries = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| fmt(e.to_string()))?;
        let line = i + 2;
        let key = rec.get(cp).unwrap_or("");
        let p = parse_path_key(key)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| fmt(format!("line {line}: path {key:?} is not a digit key")))?;
        let s: f64 = rec
            .get(cs)
            .unwrap_or("")
            .trim()
            .parse()
            .map_err(|_| fmt(format!("line {line}: score is not a number")))?;
        entries.push(RatedPath { path: p, score: s });
    }
    Ok(BlockRanking {
        block,
        entries: rank(entries),
    })
}

/// JSON form of a ranking.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RankingFile {
    /// Space name.
    pub space: SearchSpace,
    /// Block index.
    pub block: usize,
    /// Best paths of the blocks before (the prefix the block was rated behind).
    pub prefix: Vec<Vec<usize>>,
    /// Free-form notes (centre mode, epoch, …).
    #[serde(default)]
    pub meta: serde_json::Value,
    /// Entries, best first.
    pub entries: Vec<RankingEntry>,
}

/// One JSON ranking entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RankingEntry {
    /// 0 = best.
    pub rank: usize,
    /// Op indices.
    pub path: Vec<usize>,
    /// Digit key.
    pub key: String,
    /// Population-centre loss.
    pub score: f64,
}

/// Writes a ranking as JSON.
pub fn write_ranking_json(
    path: &Path,
    space: SearchSpace,
    ranking: &BlockRanking,
    prefix: &[Vec<usize>],
    meta: serde_json::Value,
) -> Result<()> {
    let file = RankingFile {
        space,
        block: ranking.block,
        prefix: prefix.to_vec(),
        meta,
        entries: ranking
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| RankingEntry {
                rank: i,
                path: e.path.clone(),
                key: path_key(&e.path),
                score: e.score,
            })
            .collect(),
    };
    let text =
        serde_json::to_string_pretty(&file).map_err(|e| SearchError::Invalid(e.to_string()))?;
    write_atomic(path, text.as_bytes())
}

/// Reads a JSON ranking.
pub fn read_ranking_json(path: &Path) -> Result<RankingFile> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|e| SearchError::Format {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Writes a NATS ranking in the `bench-nats` potential format
/// (`rank,code,channels,potential`, `path_rank_stage{k}.csv`).
pub fn write_nats_potential_csv(path: &Path, ranking: &BlockRanking) -> Result<()> {
    let mut rows = Vec::new();
    for (i, e) in ranking.entries.iter().enumerate() {
        let channels = e
            .path
            .iter()
            .map(|&o| {
                NATS_WIDTHS.get(o).map(|w| w.to_string()).ok_or_else(|| {
                    SearchError::Invalid(format!("NATS width index {o} out of range"))
                })
            })
            .collect::<Result<Vec<_>>>()?
            .join(":");
        rows.push(vec![
            i.to_string(),
            path_key(&e.path),
            channels,
            e.score.to_string(),
        ]);
    }
    write_atomic(
        path,
        &csv_bytes(&["rank", "code", "channels", "potential"], rows)?,
    )
}

/// Writes `arch,score` for NATS architectures.
pub fn write_nats_scores_csv(path: &Path, scores: &[(NatsArch, f64)]) -> Result<()> {
    let rows = scores
        .iter()
        .map(|(a, s)| vec![a.to_string(), s.to_string()]);
    write_atomic(path, &csv_bytes(&["arch", "score"], rows)?)
}

/// Writes the architecture as the bare JSON value of `bossnas arch cost --arch`.
pub fn write_arch_json(path: &Path, arch: &hytra_space::arch::Architecture) -> Result<()> {
    let text =
        serde_json::to_string(&arch.to_json()).map_err(|e| SearchError::Invalid(e.to_string()))?;
    write_atomic(path, format!("{text}\n").as_bytes())
}

/// Summary of a search (`search.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchSummary {
    /// `bossnas arch cost --space` name.
    pub space: String,
    /// How the result was selected: `greedy`, `exhaustive` or `evolution`.
    pub method: String,
    /// The architecture as accepted by `bossnas arch cost --arch`.
    pub arch: serde_json::Value,
    /// Human-readable form.
    pub arch_string: String,
    /// Block paths.
    pub blocks: Vec<Vec<usize>>,
    /// Per-block losses L_k.
    pub block_losses: Vec<f64>,
    /// Σ_k λ_k (L_k + offset).
    pub score: f64,
    /// λ per block.
    pub lambdas: Vec<f64>,
    /// Offset.
    pub offset: f64,
    /// Parameters under the cost model.
    pub params: u64,
    /// MAdds under the cost model.
    pub madds: u64,
    /// The cost model.
    pub cost_model: hytra_space::arch::CostModel,
    /// The budget (null fields: none).
    pub budget: crate::search::Budget,
    /// Combinations checked.
    pub evaluated: u64,
}

impl SearchSummary {
    /// Builds the summary of an outcome.
    pub fn new(
        outcome: &SearchOutcome,
        method: &str,
        weights: &crate::search::ScoreWeights,
        cost_model: hytra_space::arch::CostModel,
        budget: crate::search::Budget,
    ) -> Self {
        Self {
            space: outcome.arch.space_name().to_string(),
            method: method.to_string(),
            arch: outcome.arch.to_json(),
            arch_string: outcome.arch.to_string(),
            blocks: outcome.blocks.clone(),
            block_losses: outcome.block_losses.clone(),
            score: outcome.score,
            lambdas: (0..outcome.blocks.len())
                .map(|k| weights.lambda(k))
                .collect(),
            offset: weights.offset,
            params: outcome.cost.params,
            madds: outcome.cost.madds,
            cost_model,
            budget,
            evaluated: outcome.evaluated,
        }
    }
}

/// Writes a summary as pretty JSON.
pub fn write_summary(path: &Path, summary: &SearchSummary) -> Result<()> {
    let text =
        serde_json::to_string_pretty(summary).map_err(|e| SearchError::Invalid(e.to_string()))?;
    write_atomic(path, text.as_bytes())
}

/// Writes every output of one block's ranking into `dir`: CSV, JSON and (NATS) the
/// `bench-nats` potential file. Returns the paths written.
pub fn write_block_outputs(
    dir: &Path,
    space: SearchSpace,
    ranking: &BlockRanking,
    prefix: &[Vec<usize>],
    meta: serde_json::Value,
) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let csv = dir.join(ranking_csv_name(ranking.block));
    write_ranking_csv(&csv, ranking)?;
    out.push(csv);
    let json = dir.join(ranking_json_name(ranking.block));
    write_ranking_json(&json, space, ranking, prefix, meta)?;
    out.push(json);
    if matches!(space, SearchSpace::Nats { .. }) {
        let p = dir.join(format!("path_rank_stage{}.csv", ranking.block));
        write_nats_potential_csv(&p, ranking)?;
        out.push(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::{ScoreWeights, greedy, score_all_nats};
    use hytra_space::arch::Architecture;
    use hytra_space::nats::NatsSplit;

    fn ranking(block: usize, entries: &[(&[usize], f64)]) -> BlockRanking {
        BlockRanking {
            block,
            entries: rank(
                entries
                    .iter()
                    .map(|(p, s)| RatedPath {
                        path: p.to_vec(),
                        score: *s,
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn ranking_csv_and_json_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let r = ranking(
            1,
            &[
                (&[5, 4, 3, 3], -3.25),
                (&[0, 0, 1, 0], -3.5),
                (&[1, 1, 1, 1], 0.1),
            ],
        );
        let written = write_block_outputs(
            dir.path(),
            SearchSpace::Hytra,
            &r,
            &[vec![5, 4, 3, 3]],
            serde_json::json!({"centre": "raw"}),
        )
        .unwrap();
        assert_eq!(written.len(), 2);
        let text = std::fs::read_to_string(&written[0]).unwrap();
        assert_eq!(text.lines().next().unwrap(), "rank,path,score");
        assert_eq!(text.lines().nth(1).unwrap(), "0,0010,-3.5");
        let back = read_ranking_csv(&written[0], 1).unwrap();
        assert_eq!(back, r);
        let j = read_ranking_json(&written[1]).unwrap();
        assert_eq!(j.entries[0].key, "0010");
        assert_eq!(j.prefix, vec![vec![5, 4, 3, 3]]);
        // No temporary files left behind.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp")), "{names:?}");
    }

    #[test]
    fn nats_files_are_readable_by_bench_nats() {
        let dir = tempfile::tempdir().unwrap();
        let split = NatsSplit::Cifar10;
        let space = SearchSpace::Nats { split };
        let rankings: Vec<BlockRanking> = (0..3)
            .map(|k| {
                let entries = space
                    .population(k, &[])
                    .unwrap()
                    .into_iter()
                    .map(|p| {
                        let s = -(p.iter().map(|&x| (x * 7 + k) % 8).sum::<usize>() as f64) / 10.0;
                        RatedPath { path: p, score: s }
                    })
                    .collect();
                BlockRanking {
                    block: k,
                    entries: rank(entries),
                }
            })
            .collect();
        for r in &rankings {
            write_block_outputs(dir.path(), space, r, &[], serde_json::Value::Null).unwrap();
        }
        let scores = score_all_nats(space, &rankings, &ScoreWeights::default()).unwrap();
        let csv = dir.path().join("nats_scores.csv");
        write_nats_scores_csv(&csv, &scores).unwrap();
        let loaded = bench_nats::ScoresInput::from_csv(&csv, Some("score")).unwrap();
        assert_eq!(loaded.entries.len(), 32_768);
        // The bench-nats composed score agrees with ours.
        let composed = bench_nats::potential::ComposedScore::load_dir(
            dir.path(),
            bench_nats::potential::BlockSplit::cifar10(),
        )
        .unwrap();
        for (a, s) in scores.iter().step_by(997) {
            assert!((composed.score(a).unwrap() - s).abs() < 1e-9);
        }
        let g = greedy(space, &rankings).unwrap();
        assert_eq!(g, Architecture::Nats(composed.winners()));
        let arch = dir.path().join("arch.json");
        write_arch_json(&arch, &g).unwrap();
        let text = std::fs::read_to_string(&arch).unwrap();
        let parsed: NatsArch = text.trim().trim_matches('"').parse().unwrap();
        assert_eq!(Architecture::Nats(parsed), g);
    }

    #[test]
    fn bad_csv_is_reported_with_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.csv");
        std::fs::write(&p, "rank,path,score\n0,54x3,1.0\n").unwrap();
        let err = read_ranking_csv(&p, 0).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }
}
