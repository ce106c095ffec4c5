//! `reports/<suite>/report.{md,json}` of a training suite: our figures beside the paper's, the
//! compute used, the data, the config.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hytra_space::SpaceKind;

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
    /// Every config key where this protocol differs from the paper's preset.
    pub protocol_diff: Vec<ConfigDifference>,
    /// What the suite's sweep measured for this protocol and the budgets around it.
    pub sweep: Option<SweepSection>,
    /// Pictures written beside the report (`figures/`, paths relative to the report), shown
    /// inline in report.md.
    pub figures: Vec<bossnas_search::figures::FigureFiles>,
}

/// One config key that differs from the paper's preset.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigDifference {
    pub key: String,
    pub ours: String,
    pub paper: String,
}

/// The sweep's figures in a suite report.
#[derive(Debug, Clone)]
pub struct SweepSection {
    /// Sweep file.
    pub file: String,
    /// The variant that is this suite's protocol.
    pub variant: String,
    /// τ-b of that variant's seeds (the seed spread).
    pub seed_tau_b: Vec<f64>,
    /// The sweep's table (markdown).
    pub table: String,
    /// The curve, relative to the report (`sweep-curve.svg`), when drawn.
    pub curve: Option<String>,
}

/// The leaves of two configs that differ (`data.root`, `preset` and `seed` are skipped:
/// they are not protocol).
pub fn config_diff(ours: &serde_json::Value, paper: &serde_json::Value) -> Vec<ConfigDifference> {
    fn walk(
        prefix: &str,
        a: Option<&serde_json::Value>,
        b: Option<&serde_json::Value>,
        out: &mut Vec<ConfigDifference>,
    ) {
        use serde_json::Value;
        match (a, b) {
            (Some(Value::Object(x)), Some(Value::Object(y))) => {
                let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, x.get(k), y.get(k), out);
                }
            }
            _ if a == b => {}
            _ => {
                if ["preset", "seed", "data.root"].contains(&prefix) {
                    return;
                }
                let show = |v: Option<&Value>| v.map_or("—".into(), |v| v.to_string());
                out.push(ConfigDifference {
                    key: prefix.to_string(),
                    ours: show(a),
                    paper: show(b),
                });
            }
        }
    }
    let mut out = Vec::new();
    walk("", Some(ours), Some(paper), &mut out);
    out
}

fn seed_spread(taus: &[f64]) -> String {
    let lo = taus.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = taus.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("[{lo:.3}, {hi:.3}] over {} seeds", taus.len())
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
            "protocol_diff": self.protocol_diff.iter().map(|d| json!({
                "key": d.key, "ours": d.ours, "paper": d.paper,
            })).collect::<Vec<_>>(),
            "sweep": self.sweep.as_ref().map(|sw| json!({
                "file": sw.file, "variant": sw.variant, "seed_tau_b": sw.seed_tau_b,
            })),
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
                "| Kendall τ-b over {} architectures (oriented; raw) | {:.3}{}{} ({:+.3}) | {} | {} |",
                n.correlation.n,
                o.kendall_tau_b,
                ci.map_or(String::new(), |c| format!(
                    " [{:.3}, {:.3}] bootstrap over architectures",
                    c.kendall_tau_b.lo, c.kendall_tau_b.hi
                )),
                match &self.sweep {
                    Some(sw) if sw.seed_tau_b.len() > 1 => format!(
                        "; seed spread of this protocol {} (sweep `{}`)",
                        seed_spread(&sw.seed_tau_b),
                        sw.variant
                    ),
                    _ => "; seed spread: not measured (one run cannot tell it)".into(),
                },
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
                "| searched architecture | `{}` ({} params, {:.3} G MAdds) | {} | — |",
                r.arch_string,
                r.params,
                r.madds as f64 / 1e9,
                if s.paper.is_empty() {
                    "— (no paper figure for this suite)"
                } else {
                    "the paper's figures are in the rows below"
                }
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
        let kind = r.space.parse::<SpaceKind>().ok();
        let _ = writeln!(
            md,
            "| block | path | candidate indices | loss L_k |\n|---|---|---|---|"
        );
        for (k, (p, l)) in r.blocks.iter().zip(&r.block_losses).enumerate() {
            let label = kind.map_or("—".into(), |kind| kind.path_label(p));
            let _ = writeln!(md, "| {k} | `{label}` | {p:?} | {l:.5} |");
        }
        if self.nats.is_some() {
            let _ = writeln!(
                md,
                "\nThe full correlation report (baselines, MAdds-binned τ-b, top-k, scatter plot) \
                 is in [`correlation/report.md`](correlation/report.md)."
            );
        }

        if !self.protocol_diff.is_empty() {
            let _ = writeln!(
                md,
                "\n## How this protocol differs from the paper's (`{}`)\n",
                s.paper_preset.unwrap_or("—")
            );
            let _ = writeln!(md, "| key | this protocol | paper |\n|---|---|---|");
            for d in &self.protocol_diff {
                let _ = writeln!(md, "| `{}` | {} | {} |", d.key, d.ours, d.paper);
            }
        }
        if let Some(sw) = &self.sweep {
            let _ = writeln!(
                md,
                "\n## Search quality per CPU-minute (sweep `{}`)\n\nThis protocol is variant \
                 `{}`. Medians over seeds; `cargo xtask sweep {}` adds points and seeds.\n",
                sw.file, sw.variant, sw.file
            );
            md.push_str(&sw.table);
            if let Some(c) = &sw.curve {
                let _ = writeln!(md, "\n![τ-b against CPU-minutes]({c})");
            }
        }
        if !self.figures.is_empty() {
            let _ = writeln!(md, "\n## Figures\n");
            let _ = write!(
                md,
                "{}",
                bossnas_search::figures::markdown(&self.figures, Path::new(""))
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

/// A report is never half-written ([`bossnas_runfs::write_atomic`]).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    bossnas_runfs::write_atomic(path, bytes).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod diff_tests {
    use bossnas_config::RunConfig;

    use super::*;

    #[test]
    fn the_cpu_protocol_lists_its_differences_from_the_paper() {
        let cpu = serde_json::to_value(RunConfig::preset("nats-c10-cpu").unwrap()).unwrap();
        let paper = serde_json::to_value(RunConfig::preset("nats-c10-paper").unwrap()).unwrap();
        let d = config_diff(&cpu, &paper);
        let keys: Vec<&str> = d.iter().map(|d| d.key.as_str()).collect();
        for k in [
            "space.widths",
            "data.train_subset",
            "train.batch_size",
            "train.epochs_per_block",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
        for k in ["preset", "seed", "data.root"] {
            assert!(!keys.contains(&k), "{k} is not protocol: {keys:?}");
        }
        let batch = d.iter().find(|d| d.key == "train.batch_size").unwrap();
        assert_eq!((batch.ours.as_str(), batch.paper.as_str()), ("32", "256"));
        assert!(config_diff(&paper, &paper).is_empty());
    }
}
