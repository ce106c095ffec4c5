//! `reports/<suite>/report.{md,json}` of a training suite: our figures beside the paper's, the
//! compute used, the data, the config.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bench_nats::Report as CorrelationReport;
use bossnas_search::output::SearchSummary;
use ensemble_bootstrap::time_budget::BlockRun;
use serde_json::json;

use crate::suites::SearchSuite;

/// Where the data came from.
#[derive(Debug, Clone)]
pub struct DataRecord {
    pub dataset: String,
    pub root: Option<PathBuf>,
    /// `present`, `unpacked …`, `downloaded …`, `generated`.
    pub how: String,
    /// The data directory and the rule that chose it.
    pub data_dir: Option<String>,
}

/// Compute used by the run.
#[derive(Debug, Clone)]
pub struct Compute {
    pub device: String,
    pub threads: usize,
    pub cpu: Option<String>,
    pub wall_s: f64,
    pub train_s: f64,
    pub search_s: f64,
    pub correlate_s: f64,
    pub optimizer_steps: u64,
    /// Training images drawn (optimizer steps × micro-batch × accumulation).
    pub images_seen: u64,
    /// Single-view forward passes through a path (images × 2 views × paths per step).
    pub view_forwards: u64,
    pub resumed: bool,
    pub max_steps: Option<u64>,
    /// `--time-budget` in minutes.
    pub time_budget_min: Option<f64>,
    /// Steps each block ran (of how many planned) and whether the time budget stopped it.
    pub blocks: Vec<BlockRun>,
}

/// NATS-Bench comparison of the searched scores.
#[derive(Debug, Clone)]
pub struct NatsRecord {
    pub chosen_accuracy: Option<f64>,
    pub chosen_rank: Option<usize>,
    pub population: usize,
    pub correlation: CorrelationReport,
    /// The full correlation report (report.md, scatter.png, …).
    pub files: PathBuf,
}

/// Everything a training suite reports.
#[derive(Debug, Clone)]
pub struct SuiteReport {
    pub suite: SearchSuite,
    pub run_dir: PathBuf,
    pub config_toml: String,
    /// `--config`: the file layered on the preset, when one was.
    pub config_file: Option<PathBuf>,
    pub search: SearchSummary,
    pub nats: Option<NatsRecord>,
    pub data: DataRecord,
    pub compute: Compute,
    pub git_commit: Option<String>,
}

fn hms(s: f64) -> String {
    let t = s.round() as u64;
    format!("{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60)
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or("—".into(), |x| x.to_string())
}

impl SuiteReport {
    pub fn to_json(&self) -> serde_json::Value {
        let s = &self.suite;
        let c = &self.compute;
        json!({
            "suite": s.name,
            "title": s.title,
            "preset": s.preset,
            "git_commit": self.git_commit,
            "run_dir": self.run_dir,
            "config_file": self.config_file,
            "result": {
                "space": self.search.space,
                "arch": self.search.arch,
                "arch_string": self.search.arch_string,
                "method": self.search.method,
                "blocks": self.search.blocks,
                "block_losses": self.search.block_losses,
                "score": self.search.score,
                "params": self.search.params,
                "madds": self.search.madds,
            },
            "nats": self.nats.as_ref().map(|n| json!({
                "chosen_test_accuracy_hp90": n.chosen_accuracy,
                "chosen_accuracy_rank": n.chosen_rank,
                "population": n.population,
                "oriented": n.correlation.score.oriented,
                "oriented_ci95": n.correlation.score.oriented_ci,
                "raw": n.correlation.score.raw,
                "baselines": n.correlation.baselines.iter().map(|b| json!({
                    "name": b.name, "oriented": b.oriented,
                })).collect::<Vec<_>>(),
                "report": n.files.join("report.md"),
            })),
            "paper": s.paper.iter().map(|p| json!({
                "what": p.what, "value": p.value, "source": p.source,
            })).collect::<Vec<_>>(),
            "paper_compute": s.paper_compute,
            "compute": {
                "device": c.device,
                "threads": c.threads,
                "cpu": c.cpu,
                "wall_s": c.wall_s,
                "train_s": c.train_s,
                "search_s": c.search_s,
                "correlate_s": c.correlate_s,
                "optimizer_steps": c.optimizer_steps,
                "images_seen": c.images_seen,
                "view_forwards": c.view_forwards,
                "resumed": c.resumed,
                "max_steps": c.max_steps,
                "time_budget_min": c.time_budget_min,
                "blocks": c.blocks,
            },
            "data": {
                "dataset": self.data.dataset,
                "root": self.data.root,
                "how": self.data.how,
                "data_dir": self.data.data_dir,
            },
            "notes": s.notes,
            "config_toml": self.config_toml,
        })
    }

    pub fn to_markdown(&self) -> String {
        let s = &self.suite;
        let c = &self.compute;
        let r = &self.search;
        let mut md = String::new();
        let _ = writeln!(md, "# Reproduction suite `{}`\n", s.name);
        let _ = writeln!(md, "{}. Preset `{}`.\n", s.title, s.preset);
        if let Some(f) = &self.config_file {
            let _ = writeln!(
                md,
                "_Not the preset as published: fields overridden by `{}`, see Config below._\n",
                f.display()
            );
        }
        if c.resumed {
            let _ = writeln!(
                md,
                "_Resumed from an interrupted run; compute figures cover this invocation's wall time and the whole run's steps._\n"
            );
        }

        let _ = writeln!(md, "## Ours beside the paper\n");
        let _ = writeln!(
            md,
            "| figure | ours | paper | paper source |\n|---|---|---|---|"
        );
        if let Some(n) = &self.nats {
            let o = &n.correlation.score.oriented;
            let ci = n.correlation.score.oriented_ci.as_ref();
            let raw = &n.correlation.score.raw;
            let _ = writeln!(
                md,
                "| Kendall τ-b over {} architectures (oriented; raw) | {:.3}{} ({:+.3}) | {} | {} |",
                n.correlation.n,
                o.kendall_tau_b,
                ci.map_or(String::new(), |c| format!(
                    " [{:.3}, {:.3}]",
                    c.kendall_tau_b.lo, c.kendall_tau_b.hi
                )),
                raw.kendall_tau_b,
                s.paper.first().map_or("—", |p| p.value),
                s.paper.first().map_or("—", |p| p.source),
            );
            let _ = writeln!(
                md,
                "| Spearman ρ / Pearson r (oriented) | {:.3} / {:.3} | {} / {} | {} |",
                o.spearman_rho,
                o.pearson_r,
                s.paper.get(1).map_or("—", |p| p.value),
                s.paper.get(2).map_or("—", |p| p.value),
                s.paper.get(1).map_or("—", |p| p.source),
            );
            let _ = writeln!(
                md,
                "| searched architecture (test acc. hp90, rank of {}) | {} ({} %, #{}) | {} | {} |",
                n.population,
                r.arch_string,
                opt(&n.chosen_accuracy.map(|a| format!("{a:.2}"))),
                opt(&n.chosen_rank),
                s.paper.last().map_or("—", |p| p.value),
                s.paper.last().map_or("—", |p| p.source),
            );
            for b in &n.correlation.baselines {
                let _ = writeln!(
                    md,
                    "| free baseline: τ-b of {} | {:.3} | — | shared/data/README.md |",
                    b.name, b.oriented.kendall_tau_b
                );
            }
        } else {
            let _ = writeln!(
                md,
                "| searched architecture | `{}` ({} params, {:.3} G MAdds) | see below | — |",
                r.arch_string,
                r.params,
                r.madds as f64 / 1e9
            );
            for p in s.paper {
                let _ = writeln!(md, "| {} | — | {} | {} |", p.what, p.value, p.source);
            }
        }
        let _ = writeln!(
            md,
            "| search compute | {} on {} | {} | README |",
            hms(c.wall_s),
            c.device,
            s.paper_compute
        );

        let _ = writeln!(md, "\n## Searched architecture\n");
        let _ = writeln!(
            md,
            "`{}` ({} space, {} selection), {} parameters, {} MAdds under the report's cost model; \
             score Σ(L_k + {}) = {:.5}.\n",
            r.arch_string, r.space, r.method, r.params, r.madds, r.offset, r.score
        );
        let _ = writeln!(md, "| block | path | loss L_k |\n|---|---|---|");
        for (k, (p, l)) in r.blocks.iter().zip(&r.block_losses).enumerate() {
            let _ = writeln!(md, "| {k} | {p:?} | {l:.5} |");
        }
        if self.nats.is_some() {
            let _ = writeln!(
                md,
                "\nThe full correlation report (baselines, MAdds-binned τ-b, top-k, scatter plot) \
                 is in [`correlation/report.md`](correlation/report.md)."
            );
        }

        let _ = writeln!(md, "\n## Compute\n");
        let _ = writeln!(md, "| | |\n|---|---|");
        let _ = writeln!(md, "| device | {} |", c.device);
        let _ = writeln!(
            md,
            "| CPU | {} ({} hardware threads) |",
            opt(&c.cpu),
            c.threads
        );
        let _ = writeln!(md, "| wall time (this invocation) | {} |", hms(c.wall_s));
        let _ = writeln!(
            md,
            "| of which training + per-block rating | {} |",
            hms(c.train_s)
        );
        let _ = writeln!(md, "| search | {:.1} s |", c.search_s);
        let _ = writeln!(md, "| correlation | {:.1} s |", c.correlate_s);
        let _ = writeln!(md, "| optimizer steps | {} |", c.optimizer_steps);
        let _ = writeln!(md, "| training images seen | {} |", c.images_seen);
        let _ = writeln!(
            md,
            "| single-view path forwards (images × 2 views × paths) | {} |",
            c.view_forwards
        );
        if let Some(m) = c.max_steps {
            let _ = writeln!(md, "| --max-steps | {m} |");
        }
        if let Some(m) = c.time_budget_min {
            let _ = writeln!(
                md,
                "| --time-budget (training, split over blocks) | {m} min |"
            );
        }
        for b in &c.blocks {
            let _ = writeln!(
                md,
                "| block {} optimizer steps | {} of {}{} |",
                b.block,
                b.steps,
                b.planned_steps,
                if b.stopped_by_time_budget {
                    " (stopped by the time budget)"
                } else {
                    ""
                }
            );
        }
        let _ = writeln!(md, "| git commit | {} |", opt(&self.git_commit));

        let _ = writeln!(md, "\n## Data\n");
        let _ = writeln!(md, "- dataset: {}", self.data.dataset);
        if let Some(root) = &self.data.root {
            let _ = writeln!(md, "- root: `{}` ({})", root.display(), self.data.how);
        }
        if let Some(d) = &self.data.data_dir {
            let _ = writeln!(md, "- data directory: {d}");
        }
        let _ = writeln!(md, "- run directory: `{}`", self.run_dir.display());

        if !s.notes.is_empty() {
            let _ = writeln!(md, "\n## Notes\n");
            for n in s.notes {
                let _ = writeln!(md, "- {n}");
            }
        }
        let _ = writeln!(md, "\n## Config\n\n```toml\n{}```", self.config_toml);
        md
    }

    /// Writes `report.md` and `report.json` into `dir` (each via a temporary file + rename).
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        write_atomic(&dir.join("report.md"), self.to_markdown().as_bytes())?;
        let json = serde_json::to_string_pretty(&self.to_json())?;
        write_atomic(&dir.join("report.json"), json.as_bytes())?;
        Ok(())
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
