//! Library side of `bossnas rate --run <dir>` and `bossnas search --run <dir>`.
//!
//! - [`rate_run`]: loads the newest checkpoint of a run and rates the block it is training
//!   (its heads are in the checkpoint; earlier blocks' heads are replaced when a block ends,
//!   so their rankings are written by [`crate::select::PopulationCentreSelector`] during
//!   training, into `<run>/rating/`).
//! - [`search_run`]: reads `<run>/rating/path_rank_{k}.csv` of every block and writes the
//!   greedy architecture, the constrained one (if a budget is given) and, for NATS, the
//!   scores of all 32,768 architectures into `<run>/search/`.

use std::path::{Path, PathBuf};

use bossnas_config::RunConfig;
use bossnas_supernet::Supernet;
use burn::tensor::Device;
use ensemble_bootstrap::checkpoint::RunDir;
use ensemble_bootstrap::setup::{SupernetTask, open_data, spatial_adapters, with_supernet};
use ensemble_bootstrap::trainer::{TrainOptions, Trainer};

use crate::output::{
    RATING_DIR, SEARCH_DIR, SearchSummary, ranking_csv_name, read_ranking_csv, write_arch_json,
    write_nats_scores_csv, write_summary,
};
use crate::search::{
    Budget, MethodUsed, ScoreWeights, SearchMethod, SearchOutcome, composed_score,
    constrained_search, greedy, score_all_nats,
};
use crate::select::{RateOptions, rate_block, space_of, write_rating};
use crate::{Result, SearchError};
use hytra_space::arch::{CostModel, SearchSpace};

/// The run's resolved configuration.
pub fn load_run_config(run: &Path) -> Result<RunConfig> {
    let p = run.join(ensemble_bootstrap::checkpoint::RESOLVED_CONFIG);
    RunConfig::load(&p).map_err(|e| SearchError::Format {
        path: p,
        reason: e.to_string(),
    })
}

/// What [`rate_run`] did.
#[derive(Debug, Clone)]
pub struct RateReport {
    /// The block rated.
    pub block: usize,
    /// Best path.
    pub best: Vec<usize>,
    /// Candidates rated.
    pub candidates: usize,
    /// Files written (CSV, JSON, NATS potential file).
    pub files: Vec<PathBuf>,
}

fn rate_with<S: Supernet>(
    cfg: RunConfig,
    run: &Path,
    device: &Device,
    build: impl FnOnce(&Device) -> S,
    options: &RateOptions,
) -> Result<RateReport> {
    let data = open_data(&cfg).map_err(|e| SearchError::Model(e.to_string()))?;
    let rating = data.rating.clone();
    let run_dir = RunDir::open_locked(run).map_err(|e| SearchError::Model(e.to_string()))?;
    let spatial = spatial_adapters(cfg.space.kind);
    let trainer = Trainer::resume(
        cfg.clone(),
        TrainOptions::default(),
        run_dir,
        data,
        device,
        build,
        spatial,
    )
    .map_err(|e| SearchError::Model(e.to_string()))?;
    let block = trainer.block();
    let s = trainer.siamese();
    if block >= s.online.backbone.num_blocks() {
        return Err(SearchError::Invalid(format!(
            "{}: every block is trained and rated already (see {}/)",
            run.display(),
            RATING_DIR
        )));
    }
    let chosen = trainer.best_paths()[..block].to_vec();
    let population = s.online.backbone.population(block, &chosen);
    let ranking = rate_block(
        &s.online,
        &s.target,
        &chosen,
        &population,
        &cfg,
        &rating,
        trainer.device(),
        options,
    )?;
    let space = space_of(&cfg);
    write_rating(run, space, &ranking, &chosen, options)?;
    let dir = run.join(RATING_DIR);
    let mut files = vec![
        dir.join(ranking_csv_name(block)),
        dir.join(crate::output::ranking_json_name(block)),
    ];
    if matches!(space, SearchSpace::Nats { .. }) {
        files.push(dir.join(format!("path_rank_stage{block}.csv")));
    }
    Ok(RateReport {
        block,
        best: ranking.best().map(|e| e.path.clone()).unwrap_or_default(),
        candidates: ranking.entries.len(),
        files,
    })
}

/// Rates the block the run's newest checkpoint is training, on `device` (plain or autodiff).
pub fn rate_run(run: &Path, device: &Device, options: &RateOptions) -> Result<RateReport> {
    let cfg = load_run_config(run)?;
    let task = RateTask {
        run,
        device,
        options,
    };
    with_supernet(cfg, task).map_err(|e| SearchError::Model(e.to_string()))?
}

/// [`rate_run`]'s work once the space is known.
struct RateTask<'a> {
    run: &'a Path,
    device: &'a Device,
    options: &'a RateOptions,
}

impl SupernetTask for RateTask<'_> {
    type Output = Result<RateReport>;

    fn run<S: Supernet + 'static>(
        self,
        cfg: RunConfig,
        build: impl FnOnce(&Device) -> S,
    ) -> Self::Output {
        rate_with(cfg, self.run, self.device, build, self.options)
    }
}

/// Settings of [`search_run`].
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    /// Budget (both `None`: the greedy/unconstrained architecture only).
    pub budget: Budget,
    /// λ and offset.
    pub weights: ScoreWeights,
    /// Cost model; `None` = `bossnas arch cost` defaults for the space.
    pub cost_model: Option<CostModel>,
    /// Exploration method for the constrained search.
    pub method: SearchMethod,
}

/// What [`search_run`] wrote.
#[derive(Debug, Clone)]
pub struct SearchReport {
    /// The selected summary (constrained if a budget was given, else greedy).
    pub summary: SearchSummary,
    /// Files written.
    pub files: Vec<PathBuf>,
}

/// Greedy and (optionally) constrained search from a run's per-block rankings.
///
/// Writes `<run>/search/`: `greedy.json` (summary) and `arch_greedy.json` (bare
/// architecture), with a budget also `constrained.json` / `arch_constrained.json`, and
/// `arch.json` / `search.json` for the selected one; NATS also `nats_scores.csv`.
pub fn search_run(run: &Path, request: &SearchRequest) -> Result<SearchReport> {
    let cfg = load_run_config(run)?;
    let space = space_of(&cfg);
    let dir = run.join(RATING_DIR);
    let rankings = (0..space.num_blocks())
        .map(|k| {
            let p = dir.join(ranking_csv_name(k));
            if !p.is_file() {
                return Err(SearchError::Invalid(format!(
                    "no ranking for block {k}: {} is missing (train with the population-centre \
                     selector, which writes every block's ranking, or run `bossnas rate` while \
                     the block is being trained)",
                    p.display()
                )));
            }
            read_ranking_csv(&p, k)
        })
        .collect::<Result<Vec<_>>>()?;
    search_rankings(space, &rankings, &run.join(SEARCH_DIR), request)
}

/// [`search_run`] on rankings already in memory; writes into `out`.
pub fn search_rankings(
    space: SearchSpace,
    rankings: &[crate::search::BlockRanking],
    out: &Path,
    request: &SearchRequest,
) -> Result<SearchReport> {
    // Checked before anything is written, with or without a budget (λ only weighs the
    // constrained search, but a wrong count is a mistake either way).
    request.weights.validate(rankings.len())?;
    let cost_model = request
        .cost_model
        .unwrap_or_else(|| CostModel::default_for(space));
    let mut files = Vec::new();
    let g = greedy(space, rankings)?;
    let blocks = space.split(&g)?;
    let losses: Vec<f64> = rankings
        .iter()
        .map(|r| r.best().map(|e| e.score).unwrap_or(f64::NAN))
        .collect();
    let greedy_outcome = SearchOutcome {
        cost: space.cost(&g, &cost_model)?,
        score: composed_score(&request.weights, &losses),
        arch: g,
        blocks,
        block_losses: losses,
        method: MethodUsed::Exhaustive,
        evaluated: 0,
    };
    let greedy_summary = SearchSummary::new(
        &greedy_outcome,
        "greedy",
        &request.weights,
        cost_model,
        Budget::default(),
    );
    let mut put_summary =
        |name: &str, arch_name: &str, s: &SearchSummary, o: &SearchOutcome| -> Result<()> {
            let p = out.join(name);
            write_summary(&p, s)?;
            files.push(p);
            let a = out.join(arch_name);
            write_arch_json(&a, &o.arch)?;
            files.push(a);
            Ok(())
        };
    put_summary(
        "greedy.json",
        "arch_greedy.json",
        &greedy_summary,
        &greedy_outcome,
    )?;
    let mut selected = (greedy_summary, greedy_outcome);
    if !request.budget.is_unconstrained() {
        let found = constrained_search(
            space,
            rankings,
            &request.weights,
            &request.budget,
            &cost_model,
            &request.method,
        )?
        .ok_or_else(|| {
            SearchError::Invalid(format!(
                "no architecture assembled from the rankings fits the budget {:?}",
                request.budget
            ))
        })?;
        let method = match found.method {
            MethodUsed::Exhaustive => "exhaustive",
            MethodUsed::Evolution => "evolution",
        };
        let summary =
            SearchSummary::new(&found, method, &request.weights, cost_model, request.budget);
        put_summary(
            "constrained.json",
            "arch_constrained.json",
            &summary,
            &found,
        )?;
        selected = (summary, found);
    }
    put_summary("search.json", "arch.json", &selected.0, &selected.1)?;
    // All 32,768 NATS architectures, when the tables cover the official 8 widths.
    let complete = match space {
        SearchSpace::Nats { split } => rankings
            .iter()
            .enumerate()
            .all(|(k, r)| split.population(k).is_ok_and(|n| r.entries.len() == n)),
        _ => false,
    };
    if complete {
        let scores = score_all_nats(space, rankings, &request.weights)?;
        let p = out.join("nats_scores.csv");
        write_nats_scores_csv(&p, &scores)?;
        files.push(p);
    }
    Ok(SearchReport {
        summary: selected.0,
        files,
    })
}
