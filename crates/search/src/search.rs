//! Block-wise search from per-block rating tables (spec §5.5, §9 D8).
//!
//! - [`greedy`]: the official selection — each block's argmin, where block `k`'s table was
//!   rated with the best paths of blocks `0..k` in front (HyTra scales, NATS input width).
//! - [`composed_score`]: `score(arch) = Σ_k λ_k (L_k(path_k) + offset)` (official λ = 1,
//!   offset 4); [`score_all_nats`] scores all 32,768 NATS-SSS architectures this way.
//! - [`constrained_search`]: the best architecture (lowest composed score) whose MAdds and/or
//!   parameters fit a [`Budget`], by exact branch and bound over the tables (each block sorted
//!   by its term, bounded by the remaining blocks' minima) or, when the product of the table
//!   sizes is too large, by regularised (aging) evolution.
//!
//! The tables of later blocks were rated behind the greedy prefix; combining them with other
//! choices for the earlier blocks is the same approximation the official ranking scripts make.

use std::collections::{HashMap, VecDeque};

use hytra_space::Cost;
use hytra_space::nats::{NATS_SIZE, NatsArch};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::rating::RatedPath;
use crate::{Result, SearchError};
use hytra_space::arch::{Architecture, CostModel, SearchSpace};

/// One block's rating table, sorted ascending (best first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockRanking {
    /// Block index.
    pub block: usize,
    /// Rated candidates, best first.
    pub entries: Vec<RatedPath>,
}

impl BlockRanking {
    /// The best entry.
    pub fn best(&self) -> Option<&RatedPath> {
        self.entries.first()
    }

    /// Score of `path`, if rated.
    pub fn score_of(&self, path: &[usize]) -> Option<f64> {
        self.entries
            .iter()
            .find(|e| e.path == path)
            .map(|e| e.score)
    }
}

/// Official offset added to every block loss (makes each term non-negative).
pub const OFFICIAL_OFFSET: f64 = 4.0;

/// Weights of the composed score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreWeights {
    /// λ_k per block; empty = 1 for every block (official).
    #[serde(default)]
    pub lambdas: Vec<f64>,
    /// Added to each block loss (official 4).
    #[serde(default = "default_offset")]
    pub offset: f64,
}

fn default_offset() -> f64 {
    OFFICIAL_OFFSET
}

impl Default for ScoreWeights {
    fn default() -> Self {
        Self {
            lambdas: Vec::new(),
            offset: OFFICIAL_OFFSET,
        }
    }
}

impl ScoreWeights {
    /// λ of block `k`.
    pub fn lambda(&self, k: usize) -> f64 {
        self.lambdas.get(k).copied().unwrap_or(1.0)
    }

    pub(crate) fn validate(&self, blocks: usize) -> Result<()> {
        if !self.lambdas.is_empty() && self.lambdas.len() != blocks {
            return Err(SearchError::Invalid(format!(
                "{} λ values for {blocks} blocks",
                self.lambdas.len()
            )));
        }
        if self
            .lambdas
            .iter()
            .chain([&self.offset])
            .any(|v| !v.is_finite())
        {
            return Err(SearchError::Invalid("λ and offset must be finite".into()));
        }
        Ok(())
    }
}

/// `Σ_k λ_k (L_k + offset)` from per-block losses.
pub fn composed_score(weights: &ScoreWeights, block_losses: &[f64]) -> f64 {
    block_losses
        .iter()
        .enumerate()
        .map(|(k, l)| weights.lambda(k) * (l + weights.offset))
        .sum()
}

/// The greedy architecture: each block's best entry.
pub fn greedy(space: SearchSpace, rankings: &[BlockRanking]) -> Result<Architecture> {
    let blocks = rankings
        .iter()
        .map(|r| {
            r.best().map(|e| e.path.clone()).ok_or_else(|| {
                SearchError::Invalid(format!("block {} has an empty ranking", r.block))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(space.assemble(&blocks)?)
}

/// Composed scores of all 32,768 NATS-SSS architectures (index order). Fails, naming the
/// block and path, if a table lacks a path.
pub fn score_all_nats(
    space: SearchSpace,
    rankings: &[BlockRanking],
    weights: &ScoreWeights,
) -> Result<Vec<(NatsArch, f64)>> {
    let SearchSpace::Nats { split } = space else {
        return Err(SearchError::Invalid(
            "scoring every architecture is only possible for NATS".into(),
        ));
    };
    check_rankings(space, rankings, weights)?;
    let lookup: Vec<HashMap<&[usize], f64>> = rankings
        .iter()
        .map(|r| {
            r.entries
                .iter()
                .map(|e| (e.path.as_slice(), e.score))
                .collect()
        })
        .collect();
    let mut out = Vec::with_capacity(NATS_SIZE);
    for arch in NatsArch::all() {
        let mut losses = Vec::with_capacity(lookup.len());
        for (k, table) in lookup.iter().enumerate() {
            let ops = split.block_ops(&arch, k)?;
            let l = table.get(ops.as_slice()).copied().ok_or_else(|| {
                SearchError::Invalid(format!(
                    "block {k} has no score for path {ops:?} (needed by {arch})"
                ))
            })?;
            losses.push(l);
        }
        out.push((arch, composed_score(weights, &losses)));
    }
    Ok(out)
}

fn check_rankings(
    space: SearchSpace,
    rankings: &[BlockRanking],
    weights: &ScoreWeights,
) -> Result<()> {
    if rankings.len() != space.num_blocks() {
        return Err(SearchError::Invalid(format!(
            "{} has {} blocks, got {} rankings",
            space.name(),
            space.num_blocks(),
            rankings.len()
        )));
    }
    for (k, r) in rankings.iter().enumerate() {
        if r.entries.is_empty() {
            return Err(SearchError::Invalid(format!(
                "block {k} has an empty ranking"
            )));
        }
        if let Some(e) = r.entries.iter().find(|e| !e.score.is_finite()) {
            return Err(SearchError::Invalid(format!(
                "block {k}: path {:?} has a non-finite score",
                e.path
            )));
        }
    }
    weights.validate(rankings.len())
}

/// Resource limits; `None` = unconstrained.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// Maximum multiply-adds.
    pub max_madds: Option<u64>,
    /// Maximum parameters.
    pub max_params: Option<u64>,
}

impl Budget {
    /// Whether `cost` fits.
    pub fn admits(&self, cost: &Cost) -> bool {
        self.max_madds.is_none_or(|m| cost.madds <= m)
            && self.max_params.is_none_or(|m| cost.params <= m)
    }

    /// No limit at all.
    pub fn is_unconstrained(&self) -> bool {
        self.max_madds.is_none() && self.max_params.is_none()
    }
}

/// Aging-evolution settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvolutionConfig {
    /// Population size.
    pub population: usize,
    /// Tournament sample size.
    pub sample: usize,
    /// Number of children.
    pub cycles: usize,
    /// RNG seed.
    pub seed: u64,
    /// Attempts to draw a feasible individual or mutation before giving up.
    pub max_tries: usize,
}

impl Default for EvolutionConfig {
    fn default() -> Self {
        Self {
            population: 100,
            sample: 25,
            cycles: 20_000,
            seed: 0,
            max_tries: 1_000,
        }
    }
}

/// How [`constrained_search`] explores the combinations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum SearchMethod {
    /// Exact branch and bound when at most `max_leaves` complete combinations need checking,
    /// else aging evolution.
    Auto {
        /// Leaf budget of the exact search.
        max_leaves: u64,
        /// Fallback settings.
        evolution: EvolutionConfig,
    },
    /// Exact branch and bound, no limit.
    Exhaustive,
    /// Aging evolution only.
    Evolution(EvolutionConfig),
}

impl Default for SearchMethod {
    fn default() -> Self {
        SearchMethod::Auto {
            max_leaves: 5_000_000,
            evolution: EvolutionConfig::default(),
        }
    }
}

/// Which method produced a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MethodUsed {
    /// Exact: the result is the optimum.
    Exhaustive,
    /// Aging evolution: best found.
    Evolution,
}

/// The outcome of a constrained search.
#[derive(Debug, Clone)]
pub struct SearchOutcome {
    /// The architecture.
    pub arch: Architecture,
    /// Its block paths.
    pub blocks: Vec<Vec<usize>>,
    /// Each block's loss `L_k`.
    pub block_losses: Vec<f64>,
    /// Composed score.
    pub score: f64,
    /// Cost under the search's cost model.
    pub cost: Cost,
    /// How it was found.
    pub method: MethodUsed,
    /// Combinations whose feasibility was checked.
    pub evaluated: u64,
}

/// Index-level result of the search cores.
#[derive(Debug, Clone, PartialEq)]
pub struct CoreResult {
    /// Chosen entry per block.
    pub choice: Vec<usize>,
    /// Sum of the chosen terms.
    pub score: f64,
    /// Feasibility checks made.
    pub evaluated: u64,
    /// Whether the search ran to completion (exact) — always false for evolution.
    pub complete: bool,
}

/// Exact minimisation of `Σ_k terms[k][choice[k]]` over feasible choices, by depth-first
/// branch and bound: every block's entries in ascending term order, a branch is cut when its
/// partial sum plus the remaining blocks' minima cannot beat the best feasible choice so far.
/// Stops after `max_leaves` feasibility checks (then `complete` is false). Ties keep the
/// choice found first (lower terms first, then lower indices).
pub fn branch_and_bound(
    terms: &[Vec<f64>],
    mut feasible: impl FnMut(&[usize]) -> bool,
    max_leaves: Option<u64>,
) -> Option<CoreResult> {
    let n = terms.len();
    if n == 0 || terms.iter().any(|t| t.is_empty()) {
        return None;
    }
    let order: Vec<Vec<usize>> = terms
        .iter()
        .map(|t| {
            let mut idx: Vec<usize> = (0..t.len()).collect();
            idx.sort_by(|&a, &b| t[a].total_cmp(&t[b]).then(a.cmp(&b)));
            idx
        })
        .collect();
    // rest[k] = Σ_{j ≥ k} min terms[j].
    let mut rest = vec![0.0; n + 1];
    for k in (0..n).rev() {
        rest[k] = rest[k + 1] + terms[k][order[k][0]];
    }
    let mut best: Option<(Vec<usize>, f64)> = None;
    let mut evaluated = 0u64;
    let mut pos = vec![0usize; n]; // position in order[k]
    let mut choice = vec![0usize; n];
    let mut partial = vec![0.0; n + 1]; // partial[k] = Σ_{j<k} chosen terms
    let mut k = 0usize;
    let mut complete = true;
    loop {
        if pos[k] >= order[k].len() {
            // exhausted this level: backtrack
            if k == 0 {
                break;
            }
            k -= 1;
            pos[k] += 1;
            continue;
        }
        let i = order[k][pos[k]];
        let value = partial[k] + terms[k][i];
        let bound = value + rest[k + 1];
        if best.as_ref().is_some_and(|(_, b)| bound >= *b) {
            // Sorted: later entries of this level are no better.
            if k == 0 {
                break;
            }
            k -= 1;
            pos[k] += 1;
            continue;
        }
        choice[k] = i;
        if k + 1 < n {
            partial[k + 1] = value;
            k += 1;
            pos[k] = 0;
            continue;
        }
        if max_leaves.is_some_and(|m| evaluated >= m) {
            complete = false;
            break;
        }
        evaluated += 1;
        if feasible(&choice) {
            best = Some((choice.clone(), value));
        }
        pos[k] += 1;
    }
    best.map(|(choice, score)| CoreResult {
        choice,
        score,
        evaluated,
        complete,
    })
    .or(if complete {
        None
    } else {
        Some(CoreResult {
            choice: Vec::new(),
            score: f64::INFINITY,
            evaluated,
            complete,
        })
    })
}

/// Regularised (aging) evolution (Real et al. 2019) minimising `Σ_k terms[k][choice[k]]` over
/// feasible choices: a FIFO population of `population` individuals; each cycle samples
/// `sample` individuals, mutates the best one (one block's entry replaced by another, drawn
/// uniformly), appends the child and drops the oldest. Returns the best individual ever seen.
pub fn aging_evolution(
    terms: &[Vec<f64>],
    mut feasible: impl FnMut(&[usize]) -> bool,
    cfg: &EvolutionConfig,
) -> Option<CoreResult> {
    if terms.is_empty() || terms.iter().any(|t| t.is_empty()) || cfg.population == 0 {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let score = |c: &[usize]| -> f64 { c.iter().enumerate().map(|(k, &i)| terms[k][i]).sum() };
    let mut evaluated = 0u64;
    let mut cache: HashMap<Vec<usize>, bool> = HashMap::new();
    let mut check = |c: &[usize], evaluated: &mut u64| -> bool {
        if let Some(&ok) = cache.get(c) {
            return ok;
        }
        *evaluated += 1;
        let ok = feasible(c);
        cache.insert(c.to_vec(), ok);
        ok
    };
    let mut best: Option<(Vec<usize>, f64)> = None;
    let consider = |best: &mut Option<(Vec<usize>, f64)>, c: &[usize], s: f64| {
        if best.as_ref().is_none_or(|(_, b)| s < *b) {
            *best = Some((c.to_vec(), s));
        }
    };
    let mut population: VecDeque<(Vec<usize>, f64)> = VecDeque::with_capacity(cfg.population);
    let mut tries = 0usize;
    let max_init_tries = cfg.max_tries.max(1) * cfg.population;
    while population.len() < cfg.population && tries < max_init_tries {
        tries += 1;
        let c: Vec<usize> = terms.iter().map(|t| rng.random_range(0..t.len())).collect();
        if check(&c, &mut evaluated) {
            let s = score(&c);
            consider(&mut best, &c, s);
            population.push_back((c, s));
        }
    }
    if population.is_empty() {
        return None;
    }
    let mutable: Vec<usize> = (0..terms.len()).filter(|&k| terms[k].len() > 1).collect();
    if !mutable.is_empty() {
        for _ in 0..cfg.cycles {
            let parent = (0..cfg.sample.max(1))
                .map(|_| rng.random_range(0..population.len()))
                .min_by(|&a, &b| population[a].1.total_cmp(&population[b].1))
                .expect("sample ≥ 1");
            let parent = population[parent].0.clone();
            let mut child = None;
            for _ in 0..cfg.max_tries.max(1) {
                let k = mutable[rng.random_range(0..mutable.len())];
                let mut c = parent.clone();
                let mut i = rng.random_range(0..terms[k].len() - 1);
                if i >= c[k] {
                    i += 1;
                }
                c[k] = i;
                if check(&c, &mut evaluated) {
                    child = Some(c);
                    break;
                }
            }
            let Some(c) = child else { continue };
            let s = score(&c);
            consider(&mut best, &c, s);
            population.push_back((c, s));
            if population.len() > cfg.population {
                population.pop_front();
            }
        }
    }
    best.map(|(choice, score)| CoreResult {
        choice,
        score,
        evaluated,
        complete: false,
    })
}

/// The lowest composed score among architectures assembled from the rankings' entries that
/// are valid in `space` and fit `budget` under `cost_model`. `None`: nothing fits.
pub fn constrained_search(
    space: SearchSpace,
    rankings: &[BlockRanking],
    weights: &ScoreWeights,
    budget: &Budget,
    cost_model: &CostModel,
    method: &SearchMethod,
) -> Result<Option<SearchOutcome>> {
    check_rankings(space, rankings, weights)?;
    let terms: Vec<Vec<f64>> = rankings
        .iter()
        .enumerate()
        .map(|(k, r)| {
            r.entries
                .iter()
                .map(|e| weights.lambda(k) * (e.score + weights.offset))
                .collect()
        })
        .collect();
    let blocks_of = |choice: &[usize]| -> Vec<Vec<usize>> {
        choice
            .iter()
            .enumerate()
            .map(|(k, &i)| rankings[k].entries[i].path.clone())
            .collect()
    };
    let feasible = |choice: &[usize]| -> bool {
        let Ok(arch) = space.assemble(&blocks_of(choice)) else {
            return false;
        };
        budget.is_unconstrained()
            || space
                .cost(&arch, cost_model)
                .is_ok_and(|c| budget.admits(&c))
    };
    let (result, used) = match method {
        SearchMethod::Exhaustive => (
            branch_and_bound(&terms, feasible, None),
            MethodUsed::Exhaustive,
        ),
        SearchMethod::Evolution(cfg) => (
            aging_evolution(&terms, feasible, cfg),
            MethodUsed::Evolution,
        ),
        SearchMethod::Auto {
            max_leaves,
            evolution,
        } => {
            let mut feasible = feasible;
            match branch_and_bound(&terms, &mut feasible, Some(*max_leaves)) {
                Some(r) if !r.complete => {
                    let spent = r.evaluated;
                    let mut evo = aging_evolution(&terms, &mut feasible, evolution);
                    // Keep the better of the partial exact search and evolution.
                    if let Some(e) = evo.as_mut() {
                        e.evaluated += spent;
                        if r.score < e.score {
                            e.choice = r.choice;
                            e.score = r.score;
                        }
                    } else if r.score.is_finite() {
                        evo = Some(CoreResult {
                            complete: false,
                            ..r
                        });
                    }
                    (evo, MethodUsed::Evolution)
                }
                r => (r, MethodUsed::Exhaustive),
            }
        }
    };
    let Some(r) = result.filter(|r| !r.choice.is_empty()) else {
        return Ok(None);
    };
    let blocks = blocks_of(&r.choice);
    let arch = space.assemble(&blocks)?;
    let cost = space.cost(&arch, cost_model)?;
    let block_losses: Vec<f64> = r
        .choice
        .iter()
        .enumerate()
        .map(|(k, &i)| rankings[k].entries[i].score)
        .collect();
    Ok(Some(SearchOutcome {
        score: composed_score(weights, &block_losses),
        arch,
        blocks,
        block_losses,
        cost,
        method: used,
        evaluated: r.evaluated,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hytra_space::nats::NatsSplit;

    /// Deterministic pseudo-random table.
    fn table(blocks: usize, entries: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<Vec<u64>>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let terms = (0..blocks)
            .map(|_| (0..entries).map(|_| rng.random_range(0.0..4.0)).collect())
            .collect();
        let costs = (0..blocks)
            .map(|_| (0..entries).map(|_| rng.random_range(1..100)).collect())
            .collect();
        (terms, costs)
    }

    fn brute(terms: &[Vec<f64>], ok: impl Fn(&[usize]) -> bool) -> Option<(Vec<usize>, f64)> {
        let n = terms.len();
        let mut c = vec![0; n];
        let mut best: Option<(Vec<usize>, f64)> = None;
        loop {
            let s: f64 = c.iter().enumerate().map(|(k, &i)| terms[k][i]).sum();
            if ok(&c) && best.as_ref().is_none_or(|(_, b)| s < *b) {
                best = Some((c.clone(), s));
            }
            let mut k = n;
            loop {
                if k == 0 {
                    return best;
                }
                k -= 1;
                c[k] += 1;
                if c[k] < terms[k].len() {
                    break;
                }
                c[k] = 0;
            }
        }
    }

    #[test]
    fn branch_and_bound_is_exact_under_a_budget() {
        let (terms, costs) = table(4, 12, 7);
        let total = |c: &[usize]| -> u64 { c.iter().enumerate().map(|(k, &i)| costs[k][i]).sum() };
        for budget in [60, 120, 200, 400] {
            let ok = |c: &[usize]| total(c) <= budget;
            let want = brute(&terms, ok);
            let got = branch_and_bound(&terms, ok, None);
            match (want, got) {
                (None, None) => {}
                (Some((_, ws)), Some(g)) => {
                    assert!(g.complete);
                    assert!((g.score - ws).abs() < 1e-12, "budget {budget}");
                    assert!(total(&g.choice) <= budget);
                    // Pruning: far fewer checks than the 20,736 combinations.
                    if budget == 400 {
                        assert!(g.evaluated < 100, "{}", g.evaluated);
                    }
                }
                (w, g) => panic!("budget {budget}: {w:?} vs {g:?}"),
            }
        }
    }

    #[test]
    fn evolution_finds_the_separable_optimum() {
        // Unconstrained: the optimum is the per-block argmin. 6 blocks × 40 entries (4e9).
        let (terms, _) = table(6, 40, 3);
        let want: Vec<usize> = terms
            .iter()
            .map(|t| (0..t.len()).min_by(|&a, &b| t[a].total_cmp(&t[b])).unwrap())
            .collect();
        let cfg = EvolutionConfig {
            // Aging evolution needs selection pressure to reach the exact optimum: with
            // sample/population = 0.2 it stalls near it (checked in a Python replica).
            population: 100,
            sample: 50,
            cycles: 20_000,
            seed: 1,
            max_tries: 100,
        };
        let got = aging_evolution(&terms, |_| true, &cfg).unwrap();
        let ws: f64 = want.iter().enumerate().map(|(k, &i)| terms[k][i]).sum();
        assert_eq!(got.choice, want, "{} vs {ws}: {:?}", got.score, terms[5]);
        // Seeded: same result twice.
        assert_eq!(aging_evolution(&terms, |_| true, &cfg).unwrap(), got);
    }

    #[test]
    fn evolution_finds_the_constrained_optimum() {
        let (terms, costs) = table(4, 12, 11);
        let total = |c: &[usize]| -> u64 { c.iter().enumerate().map(|(k, &i)| costs[k][i]).sum() };
        let ok = |c: &[usize]| total(c) <= 150;
        let (want, ws) = brute(&terms, ok).unwrap();
        let cfg = EvolutionConfig {
            population: 40,
            sample: 8,
            cycles: 3_000,
            seed: 5,
            max_tries: 200,
        };
        let got = aging_evolution(&terms, ok, &cfg).unwrap();
        assert!((got.score - ws).abs() < 1e-12, "{got:?} vs {want:?} {ws}");
    }

    #[test]
    fn leaf_limit_reports_incomplete() {
        let (terms, costs) = table(4, 12, 7);
        let total = |c: &[usize]| -> u64 { c.iter().enumerate().map(|(k, &i)| costs[k][i]).sum() };
        let r = branch_and_bound(&terms, |c| total(c) <= 40, Some(3)).unwrap();
        assert!(!r.complete);
        assert_eq!(r.evaluated, 3);
    }

    fn nats_rankings(split: NatsSplit) -> Vec<BlockRanking> {
        let space = SearchSpace::Nats { split };
        (0..3)
            .map(|k| {
                let entries = space
                    .population(k, &[])
                    .unwrap()
                    .into_iter()
                    .map(|p| {
                        // Wider is better, with a block-dependent twist.
                        let s = -(p.iter().sum::<usize>() as f64) / 8.0
                            + 0.01 * (p[0] as f64 * k as f64);
                        RatedPath { path: p, score: s }
                    })
                    .collect();
                BlockRanking {
                    block: k,
                    entries: crate::rating::rank(entries),
                }
            })
            .collect()
    }

    #[test]
    fn nats_scores_greedy_and_budget() {
        let split = NatsSplit::Cifar10;
        let space = SearchSpace::Nats { split };
        let rankings = nats_rankings(split);
        let w = ScoreWeights::default();
        let all = score_all_nats(space, &rankings, &w).unwrap();
        assert_eq!(all.len(), NATS_SIZE);
        // Greedy = unconstrained argmin of the composed score (λ > 0).
        let g = greedy(space, &rankings).unwrap();
        let (best_arch, best_score) = all
            .iter()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(a, s)| (*a, *s))
            .unwrap();
        assert_eq!(g, Architecture::Nats(best_arch));
        let model = CostModel::default_for(space);
        let free = constrained_search(
            space,
            &rankings,
            &w,
            &Budget::default(),
            &model,
            &SearchMethod::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(free.arch, g);
        assert!((free.score - best_score).abs() < 1e-9);
        assert_eq!(free.method, MethodUsed::Exhaustive);
        // Budget: exact traversal of all 32,768 equals the search.
        let budget = Budget {
            max_madds: None,
            max_params: Some(200_000),
        };
        let want = all
            .iter()
            .filter(|(a, _)| a.cost(32, 10).params <= 200_000)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        let got = constrained_search(
            space,
            &rankings,
            &w,
            &budget,
            &model,
            &SearchMethod::Exhaustive,
        )
        .unwrap()
        .unwrap();
        assert!((got.score - want.1).abs() < 1e-9);
        assert!(got.cost.params <= 200_000);
        // Impossible budget.
        let none = Budget {
            max_madds: Some(1),
            max_params: None,
        };
        assert!(
            constrained_search(
                space,
                &rankings,
                &w,
                &none,
                &model,
                &SearchMethod::Exhaustive
            )
            .unwrap()
            .is_none()
        );
    }

    /// Synthetic rankings along the greedy rule: block k's population follows block k−1's
    /// best; scores favour conv ops (low indices) slightly, with a deterministic twist.
    fn greedy_rankings(space: SearchSpace) -> Vec<BlockRanking> {
        let mut chosen: Vec<Vec<usize>> = Vec::new();
        let mut out = Vec::new();
        for k in 0..space.num_blocks() {
            let pop = space.population(k, &chosen).unwrap();
            let entries = pop
                .into_iter()
                .enumerate()
                .map(|(i, p)| {
                    let s = -3.0 + 0.01 * ((i * 37 + k * 11) % 97) as f64
                        - 0.05 * p.iter().filter(|&&o| o % 2 == 0).count() as f64;
                    RatedPath { path: p, score: s }
                })
                .collect();
            let r = BlockRanking {
                block: k,
                entries: crate::rating::rank(entries),
            };
            chosen.push(r.entries[0].path.clone());
            out.push(r);
        }
        out
    }

    #[test]
    fn hytra_budgeted_search_is_valid_and_within_budget() {
        let space = SearchSpace::Hytra;
        let rankings = greedy_rankings(space);
        let w = ScoreWeights::default();
        let model = CostModel::default_for(space);
        let g = greedy(space, &rankings).unwrap();
        let g_cost = space.cost(&g, &model).unwrap();
        let budget = Budget {
            max_madds: Some(g_cost.madds * 9 / 10),
            max_params: None,
        };
        let r = constrained_search(
            space,
            &rankings,
            &w,
            &budget,
            &model,
            &SearchMethod::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.method, MethodUsed::Exhaustive);
        assert!(r.cost.madds <= budget.max_madds.unwrap());
        assert!(matches!(r.arch, Architecture::Hytra(_)));
        // Unconstrained: the greedy architecture.
        let free = constrained_search(
            space,
            &rankings,
            &w,
            &Budget::default(),
            &model,
            &SearchMethod::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(free.arch, g);
    }

    #[test]
    fn mbconv_falls_back_to_evolution() {
        let space = SearchSpace::Mbconv;
        let rankings = greedy_rankings(space);
        let w = ScoreWeights::default();
        let model = CostModel::default_for(space);
        let g = greedy(space, &rankings).unwrap();
        let g_cost = space.cost(&g, &model).unwrap();
        let budget = Budget {
            max_madds: Some(g_cost.madds * 95 / 100),
            max_params: None,
        };
        let method = SearchMethod::Auto {
            max_leaves: 10,
            evolution: EvolutionConfig {
                population: 20,
                sample: 5,
                cycles: 300,
                seed: 2,
                max_tries: 50,
            },
        };
        let r = constrained_search(space, &rankings, &w, &budget, &model, &method)
            .unwrap()
            .unwrap();
        assert!(r.cost.madds <= budget.max_madds.unwrap());
        assert!(r.evaluated > 10);
    }

    #[test]
    fn composed_score_weights() {
        let w = ScoreWeights {
            lambdas: vec![1.0, 2.0],
            offset: 4.0,
        };
        assert_eq!(composed_score(&w, &[-3.0, -1.0]), 1.0 + 6.0);
        assert_eq!(
            composed_score(&ScoreWeights::default(), &[-3.0, -1.0, 0.0]),
            1.0 + 3.0 + 4.0
        );
    }

    #[test]
    fn missing_path_is_named() {
        let split = NatsSplit::Cifar10;
        let space = SearchSpace::Nats { split };
        let mut rankings = nats_rankings(split);
        rankings[2].entries.pop();
        let err = score_all_nats(space, &rankings, &ScoreWeights::default()).unwrap_err();
        assert!(err.to_string().contains("block 2"), "{err}");
    }
}
