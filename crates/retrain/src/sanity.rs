//! Sanity check against NATS-Bench ground truth: retrain a handful of NATS-SSS networks under
//! a small budget and compare their accuracy ordering with `cifar10_test_acc_hp90`
//! (Kendall τ-b, `bench_nats::stats::kendall_tau_b`).
//!
//! Each network gets its own run directory under `out/`; an interrupted sanity run continues
//! where it stopped (finished runs are read back, unfinished ones resumed).

use std::path::{Path, PathBuf};
use std::time::Instant;

use bench_nats::stats::kendall_tau_b;
use bench_nats::{AccuracyColumn, GroundTruth};
use burn::tensor::Device;
use ensemble_bootstrap::checkpoint::RunDir;
use hytra_space::nats::NatsArch;
use serde::{Deserialize, Serialize};

use crate::RetrainError;
use crate::arch::ArchSpec;
use crate::recipe::Recipe;
use crate::trainer::{RUN_FILE, RetrainOptions, create_run, retrain};

/// Six networks spanning the ground-truth range (79.8 % … 93.4 %).
pub const DEFAULT_ARCHS: [&str; 6] = [
    "8:8:8:8:8",
    "16:8:8:8:16",
    "16:16:16:16:16",
    "24:24:24:24:24",
    "40:40:40:40:40",
    "64:64:64:64:64",
];

/// One retrained network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SanityRow {
    /// NATS widths.
    pub arch: String,
    /// Parameters (10 classes).
    pub params: usize,
    /// `cifar10_test_acc_hp90` (%).
    pub ground_truth: f64,
    /// Our top-1 (%).
    pub top1: f64,
    /// Our top-5 (%).
    pub top5: f64,
    /// Wall seconds of training + evaluation in this invocation (0 when read back).
    pub wall_s: f64,
    /// Its run directory.
    pub run_dir: PathBuf,
}

/// The whole sanity run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SanityReport {
    /// Recipe name.
    pub recipe: String,
    /// Data directory.
    pub data: String,
    /// Training / test images per network.
    pub train_images: usize,
    /// Test images.
    pub test_images: usize,
    /// Epochs.
    pub epochs: usize,
    /// Rows in the given order.
    pub rows: Vec<SanityRow>,
    /// Kendall τ-b of our top-1 against the ground truth.
    pub tau_b: f64,
    /// Wall seconds of this invocation.
    pub wall_s: f64,
}

impl SanityReport {
    /// A Markdown table with the τ-b line.
    pub fn to_markdown(&self) -> String {
        let mut s = String::from(
            "| arch | params | ground truth hp90 (%) | our top-1 (%) | our top-5 (%) | wall (s) |\n\
             |---|---:|---:|---:|---:|---:|\n",
        );
        for r in &self.rows {
            s.push_str(&format!(
                "| `{}` | {} | {:.2} | {:.2} | {:.2} | {:.0} |\n",
                r.arch, r.params, r.ground_truth, r.top1, r.top5, r.wall_s
            ));
        }
        s.push_str(&format!(
            "\nKendall τ-b (our top-1 vs `cifar10_test_acc_hp90`, {} networks): **{:.3}**; \
             recipe `{}`, {} training / {} test images, {} epochs; total wall {:.0} s.\n",
            self.rows.len(),
            self.tau_b,
            self.recipe,
            self.train_images,
            self.test_images,
            self.epochs,
            self.wall_s
        ));
        s
    }
}

/// Retrains `archs` with `recipe` on `data` (CIFAR-10) under `out/` and correlates with the
/// ground truth in `truth_csv`.
pub fn run_sanity(
    archs: &[NatsArch],
    truth_csv: &Path,
    data: &str,
    recipe: &Recipe,
    out: &Path,
    device: &Device,
    progress: bool,
) -> Result<SanityReport, RetrainError> {
    if archs.len() < 2 {
        return Err(RetrainError::Arch(
            "the sanity check needs at least 2 networks".into(),
        ));
    }
    let truth = GroundTruth::load(truth_csv)
        .map_err(|e| RetrainError::Data(format!("{}: {e}", truth_csv.display())))?;
    let started = Instant::now();
    let mut rows = Vec::new();
    let (mut train_images, mut test_images) = (0, 0);
    for a in archs {
        let gt = truth
            .accuracy_of(a, AccuracyColumn::Cifar10TestHp90)
            .ok_or_else(|| RetrainError::Data(format!("{a} is not in {}", truth_csv.display())))?;
        let name = a.to_string().replace(':', "-");
        let dir = out.join(&name);
        let run = if dir.join(RUN_FILE).is_file() {
            RunDir::open_locked(&dir)?
        } else {
            // A directory without run.json is a creation that was interrupted: start again.
            let _ = std::fs::remove_dir_all(&dir);
            create_run(out, &name, &ArchSpec::Nats(*a), recipe, data)?
        };
        let t0 = Instant::now();
        let outcome = retrain(
            &run,
            device,
            &RetrainOptions {
                max_steps: None,
                progress,
            },
        )?;
        let eval = outcome
            .eval
            .ok_or_else(|| RetrainError::Train(format!("{}: run did not finish", dir.display())))?;
        let wall_s = t0.elapsed().as_secs_f64();
        eprintln!(
            "{a}: top-1 {:.2} % (ground truth {gt:.2} %), {wall_s:.0} s",
            eval.top1
        );
        test_images = eval.images;
        train_images = crate::data::open_sources(data, recipe)?.train.len();
        rows.push(SanityRow {
            arch: a.to_string(),
            params: outcome.params,
            ground_truth: gt,
            top1: eval.top1,
            top5: eval.top5,
            wall_s,
            run_dir: dir,
        });
    }
    let ours: Vec<f64> = rows.iter().map(|r| r.top1).collect();
    let gt: Vec<f64> = rows.iter().map(|r| r.ground_truth).collect();
    Ok(SanityReport {
        recipe: recipe.preset.clone().unwrap_or_else(|| "<file>".into()),
        data: data.to_string(),
        train_images,
        test_images,
        epochs: recipe.schedule.epochs,
        tau_b: kendall_tau_b(&ours, &gt),
        rows,
        wall_s: started.elapsed().as_secs_f64(),
    })
}
