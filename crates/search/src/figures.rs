//! The pictures of a trained and searched run (PNG + SVG, `bench_nats::figures`): training
//! curves from `metrics.jsonl`, the rating of every block from `rating/path_rank_<k>.csv` (for
//! NATS with each candidate's mean ground-truth accuracy beside its score) and the searched
//! architecture (HyTra fabric, NATS width strip).

use std::path::{Path, PathBuf};

use bench_nats::GroundTruth;
use bench_nats::figures::{
    HytraFabric, MbconvStrip, NatsStrip, RatingBars, TrainingCurves, read_metrics, save_both,
};
use ensemble_bootstrap::checkpoint::METRICS;
use hytra_space::hytra::{Op, OpKind, Scale};
use hytra_space::mbconv::MbconvArch;
use hytra_space::nats::NatsArch;

use crate::output::{ranking_csv_name, read_ranking_csv};
use crate::run::load_run_config;
use crate::select::space_of;
use crate::{Result, SearchError};
use hytra_space::arch::SearchSpace;

/// A written figure: a caption and its PNG and SVG files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FigureFiles {
    pub caption: String,
    pub png: PathBuf,
    pub svg: PathBuf,
}

fn plot_err(e: bench_nats::Error) -> SearchError {
    SearchError::Invalid(format!("figure: {e}"))
}

/// Draws what `run` has into `out`: curves (if `metrics.jsonl` has steps), one rating figure
/// per rated block, and the searched architecture (`blocks`, when given). `truth` adds the
/// NATS candidates' ground-truth accuracy.
pub fn write_run_figures(
    run: &Path,
    out: &Path,
    blocks: Option<&[Vec<usize>]>,
    truth: Option<&GroundTruth>,
) -> Result<Vec<FigureFiles>> {
    let cfg = load_run_config(run)?;
    let kind = cfg.space.kind;
    let space = space_of(&cfg);
    let mut written = Vec::new();
    let mut add = |caption: String, files: bench_nats::Result<[PathBuf; 2]>| -> Result<()> {
        let [png, svg] = files.map_err(plot_err)?;
        written.push(FigureFiles { caption, png, svg });
        Ok(())
    };

    let metrics = run.join(METRICS);
    if metrics.is_file() {
        let points = read_metrics(&metrics).map_err(plot_err)?;
        if !points.is_empty() {
            let fig = TrainingCurves {
                title: format!(
                    "{}: loss, learning rate, EMA momentum per block",
                    cfg.preset.as_deref().unwrap_or("run")
                ),
                points,
            };
            add(
                "Training curves (one colour per block)".into(),
                save_both(out, "training_curves", &fig),
            )?;
        }
    }

    for k in 0..space.num_blocks() {
        let csv = run
            .join(crate::output::RATING_DIR)
            .join(ranking_csv_name(k));
        if !csv.is_file() {
            continue;
        }
        let ranking = read_ranking_csv(&csv, k)?;
        let labels: Vec<String> = ranking
            .entries
            .iter()
            .map(|e| kind.path_label(&e.path))
            .collect();
        let scores: Vec<f64> = ranking.entries.iter().map(|e| e.score).collect();
        let accuracy = match (space, truth) {
            (SearchSpace::Nats { split }, Some(t)) if t.is_complete() => {
                let mut sum = std::collections::HashMap::<Vec<usize>, (f64, usize)>::new();
                for (i, arch) in t.archs.iter().enumerate() {
                    if let Ok(ops) = split.block_ops(arch, k) {
                        let e = sum.entry(ops).or_default();
                        e.0 += t.cifar10_test_acc_hp90[i];
                        e.1 += 1;
                    }
                }
                let acc: Option<Vec<f64>> = ranking
                    .entries
                    .iter()
                    .map(|e| sum.get(&e.path).map(|(s, n)| s / *n as f64))
                    .collect();
                acc.map(|a| ("mean NATS acc. (%)".to_string(), a))
            }
            _ => None,
        };
        let fig = RatingBars {
            title: format!(
                "block {k}: {} candidates, population-centre score",
                scores.len()
            ),
            labels,
            scores,
            winner: 0,
            accuracy,
        };
        let caption = if fig.accuracy.is_some() {
            format!(
                "Rating of block {k}: scores sorted, the chosen candidate in red; below, the mean \
                 NATS-Bench test accuracy (hp90) of the architectures containing each candidate"
            )
        } else {
            format!("Rating of block {k}: scores sorted, the chosen candidate in red")
        };
        add(caption, save_both(out, &format!("rating_block{k}"), &fig))?;
    }

    if let Some(blocks) = blocks {
        let flat: Vec<usize> = blocks.concat();
        match space {
            SearchSpace::Nats { split } => {
                if let Ok(arch) = split.assemble(blocks) {
                    let fig = arch_strip(&arch);
                    add(
                        format!("Searched architecture {arch} (NATS-SSS widths)"),
                        save_both(out, "arch", &fig),
                    )?;
                }
            }
            SearchSpace::Hytra => {
                let ops: std::result::Result<Vec<Op>, _> =
                    flat.iter().map(|&i| Op::from_index(i)).collect();
                if let Ok(ops) = ops {
                    let fig = fabric(format!("searched: {}", kind.path_label(&flat)), &ops);
                    add(
                        "Searched architecture on the HyTra fabric".into(),
                        save_both(out, "arch", &fig),
                    )?;
                }
            }
            SearchSpace::Mbconv => {}
        }
    }
    Ok(written)
}

/// The NATS widths of `arch` as a bar strip.
pub fn arch_strip(arch: &NatsArch) -> NatsStrip {
    NatsStrip {
        title: format!("NATS-SSS {arch}"),
        widths: arch.widths(),
    }
}

/// An MBConv-space architecture as bars per searched layer (expansion ratio, kernel colour).
pub fn mbconv_strip(arch: &MbconvArch) -> MbconvStrip {
    MbconvStrip {
        title: format!("MBConv {arch}"),
        blocks: arch
            .blocks()
            .iter()
            .map(|ops| {
                ops.iter()
                    .map(|op| (op.expansion() as u8, op.kernel() as u8))
                    .collect()
            })
            .collect(),
    }
}

/// A HyTra layer sequence on the fabric.
pub fn fabric(title: String, ops: &[Op]) -> HytraFabric {
    HytraFabric {
        title,
        layers: ops
            .iter()
            .map(|op| {
                let row = Scale::ALL
                    .iter()
                    .position(|s| *s == op.scale())
                    .unwrap_or(0);
                (row, op.kind() == OpKind::ResAtt)
            })
            .collect(),
    }
}

/// Markdown for a report: each figure inline (PNG) with a link to its SVG; paths relative to
/// `report_dir` when they are inside it.
pub fn markdown(figures: &[FigureFiles], report_dir: &Path) -> String {
    let rel = |p: &Path| {
        p.strip_prefix(report_dir)
            .unwrap_or(p)
            .display()
            .to_string()
    };
    let mut md = String::new();
    for f in figures {
        md.push_str(&format!(
            "**{}** ([SVG]({}))\n\n![{}]({})\n\n",
            f.caption,
            rel(&f.svg),
            f.caption,
            rel(&f.png)
        ));
    }
    md
}
