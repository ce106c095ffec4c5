//! Retraining recipes: every hyper-parameter of a supervised run, as TOML (or JSON).
//!
//! A file may start from a preset (`preset = "nats-cifar"`) and override any subset of the
//! sections (deep merge, as `bossnas_config`). Unknown keys are rejected and
//! [`Recipe::validate`] names the offending field.
//!
//! Presets ([`PRESETS`]):
//! - `deit`: the HyTra/BossNet retraining recipe of the official DeiT script (spec §7): AdamW
//!   lr 5e-4·batch/512, wd 0.05, 300 epochs, 5 warm-up epochs from 1e-6, cosine to 1e-5,
//!   label smoothing 0.1, mixup 0.8 / cutmix 1.0 (switch 0.5), random erasing 0.25,
//!   RandAugment `rand-m9-mstd0.5-inc1`, repeated augmentation (3 copies), drop-path 0.1,
//!   model EMA 0.99996, 224 random-resized crops, evaluation resize to 256 + centre crop 224
//!   (`eval_crop_pct` 0.875).
//! - `nats-cifar`: the NATS-Bench SSS CIFAR recipe (hp 90): SGD Nesterov momentum 0.9, wd 5e-4
//!   on every parameter, lr 0.1 per-iteration cosine to 0, batch 256, 90 epochs, pad-4 crop +
//!   flip, plain cross-entropy.
//! - `nats-cifar-hp200`: the same with 200 epochs.
//! - `nats-cifar-short`: a CPU budget of the same recipe (4,000 training images, 3 epochs,
//!   batch 64, 2,000 test images) used by the ground-truth sanity run.
//! - `tiny`: seconds on a CPU, for CI (1 epoch over 32 images).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use bossnas_config::parse_layered;
use bossnas_datasets::rand_augment::RandAugment;

use crate::RetrainError;

/// Names accepted by [`Recipe::preset`].
pub const PRESETS: [&str; 5] = [
    "deit",
    "nats-cifar",
    "nats-cifar-hp200",
    "nats-cifar-short",
    "tiny",
];

/// Copies per image under `regularization.repeated_aug` (DeiT's `RASampler(num_repeats=3)`).
pub const REPEATED_AUG_COPIES: usize = 3;

/// File name of the resolved recipe inside a run directory.
pub const RESOLVED_RECIPE: &str = "recipe.resolved.toml";

/// Optimizer kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// SGD with (optionally Nesterov) momentum and L2 weight decay.
    Sgd,
    /// AdamW (decoupled weight decay).
    Adamw,
}

/// Training crop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrainCrop {
    /// Zero-pad by `padding`, random `image_size` crop (CIFAR).
    PadCrop,
    /// `RandomResizedCrop(image_size, scale (0.08, 1), ratio (3/4, 4/3))` (ImageNet; Pillow
    /// bicubic, antialiased, as timm's `--train-interpolation bicubic`).
    RandomResized,
    /// Keep the image (all images must be `image_size` square).
    None,
}

/// Learning-rate stepping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrStepping {
    /// The lr changes every optimizer step (fractional epochs; xautodl).
    Step,
    /// The lr changes at epoch boundaries (timm's scheduler as DeiT uses it).
    Epoch,
}

/// What to do when the loss is not finite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NanPolicy {
    /// Stop with an error (after keeping the last good checkpoint).
    Abort,
    /// Skip the step (no update) and continue.
    Skip,
}

/// Network options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// HyTra networks only (no effect on NATS/MBConv): divide every width by this (tiny test
    /// networks); 1 = the real network.
    pub hytra_width_divisor: usize,
    /// HyTra networks only (no effect on NATS/MBConv): maximum drop-path rate of BossNet's
    /// ResConv layers (spec §2.6).
    pub hytra_drop_path_rate: f64,
}

/// Data and its augmentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Network input side.
    pub image_size: usize,
    /// Training crop.
    pub train_crop: TrainCrop,
    /// Zero padding of `pad-crop`.
    pub padding: usize,
    /// Horizontal flip probability.
    pub hflip_p: f64,
    /// Normalisation: `cifar` or `imagenet` mean/std.
    pub normalize: String,
    /// Use at most this many training images (0 = all), a seeded random subset.
    pub train_subset: usize,
    /// Evaluate on at most this many test images (0 = all), a seeded random subset.
    pub test_subset: usize,
    /// Images of `--data synthetic` (train, test).
    pub synthetic: [usize; 2],
    /// Decode/augment threads (0 = all cores).
    pub num_threads: usize,
    /// Evaluation: shorter side to `⌊image_size / eval_crop_pct⌋` (bicubic, antialiased), then
    /// the centred `image_size` square (timm/DeiT); 1.0 = use the test images as they are.
    pub eval_crop_pct: f64,
    /// Evaluation batch size.
    pub eval_batch_size: usize,
}

/// Optimizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerSection {
    /// `sgd` or `adamw`.
    pub kind: OptimizerKind,
    /// Base learning rate.
    pub lr: f64,
    /// If > 0: the lr is `lr · batch_size / lr_base_batch` (DeiT: 512).
    pub lr_base_batch: usize,
    /// Weight decay (L2 for SGD, decoupled for AdamW).
    pub weight_decay: f64,
    /// Exclude rank-1 parameters (biases, BN/LN γ β) from weight decay (timm).
    pub no_decay_rank1: bool,
    /// SGD momentum.
    pub momentum: f64,
    /// SGD Nesterov momentum.
    pub nesterov: bool,
    /// AdamW β.
    pub betas: [f64; 2],
    /// AdamW ε.
    pub eps: f64,
}

/// Schedule and length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSection {
    /// Training epochs.
    pub epochs: usize,
    /// Images per optimizer step.
    pub batch_size: usize,
    /// Linear warm-up epochs.
    pub warmup_epochs: usize,
    /// Learning rate at the start of the warm-up.
    pub warmup_lr: f64,
    /// Final learning rate of the cosine.
    pub min_lr: f64,
    /// Per-step or per-epoch lr changes.
    pub stepping: LrStepping,
}

/// Regularisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegularizationSection {
    /// Label smoothing ε.
    pub label_smoothing: f64,
    /// Mixup Beta(α, α); 0 = off.
    pub mixup_alpha: f64,
    /// CutMix Beta(α, α); 0 = off.
    pub cutmix_alpha: f64,
    /// Probability of applying mixup/cutmix to a batch.
    pub mix_prob: f64,
    /// Probability of cutmix rather than mixup when both are on.
    pub mix_switch_prob: f64,
    /// Random erasing probability (per image; pixel mode, 1 box).
    pub random_erase_p: f64,
    /// RandAugment policy string (timm, e.g. `rand-m9-mstd0.5-inc1`: keys `m`, `n`, `mstd`,
    /// `mmax`, `inc`, `p`), applied after the flip; empty = off.
    pub rand_augment: String,
    /// Repeated augmentation (DeiT's RASampler): each epoch draws [`REPEATED_AUG_COPIES`]
    /// independently augmented copies of a third of the images.
    pub repeated_aug: bool,
    /// Model EMA decay per step (timm ModelEmaV2, parameters and BN buffers); 0 = off.
    pub model_ema_decay: f64,
    /// Gradient-norm clipping (global L2 per parameter tensor, Burn's); 0 = off.
    pub clip_grad_norm: f64,
}

/// Checkpoints and logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSection {
    /// Checkpoint every N optimizer steps (0 = at the end of every epoch only).
    pub every_steps: u64,
    /// Checkpoint directories kept.
    pub keep: usize,
    /// Evaluate on the test set every N epochs (0 = only at the end).
    pub eval_every_epochs: usize,
}

/// A whole retraining recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// The preset this recipe started from.
    #[serde(default)]
    pub preset: Option<String>,
    /// Seed of initialisation, data order, augmentation and mixing.
    pub seed: u64,
    /// `cpu`, `wgpu[:N]`, `cuda[:N]`.
    pub device: String,
    /// What to do with a non-finite loss.
    pub nan_policy: NanPolicy,
    pub model: ModelSection,
    pub data: DataSection,
    pub optimizer: OptimizerSection,
    pub schedule: ScheduleSection,
    pub regularization: RegularizationSection,
    pub checkpoint: CheckpointSection,
}

fn invalid(field: &str, value: impl std::fmt::Display, expected: &str) -> RetrainError {
    RetrainError::Recipe(format!("{field} = {value}: {expected}"))
}

impl Recipe {
    fn nats(name: &str, epochs: usize) -> Self {
        Recipe {
            preset: Some(name.into()),
            seed: 0,
            device: "cpu".into(),
            nan_policy: NanPolicy::Abort,
            model: ModelSection {
                hytra_width_divisor: 1,
                hytra_drop_path_rate: 0.0,
            },
            data: DataSection {
                image_size: 32,
                train_crop: TrainCrop::PadCrop,
                padding: 4,
                hflip_p: 0.5,
                normalize: "cifar".into(),
                train_subset: 0,
                test_subset: 0,
                synthetic: [64, 32],
                num_threads: 0,
                eval_crop_pct: 1.0,
                eval_batch_size: 250,
            },
            optimizer: OptimizerSection {
                kind: OptimizerKind::Sgd,
                lr: 0.1,
                lr_base_batch: 0,
                weight_decay: 5e-4,
                no_decay_rank1: false,
                momentum: 0.9,
                nesterov: true,
                betas: [0.9, 0.999],
                eps: 1e-8,
            },
            schedule: ScheduleSection {
                epochs,
                batch_size: 256,
                warmup_epochs: 0,
                warmup_lr: 0.0,
                min_lr: 0.0,
                stepping: LrStepping::Step,
            },
            regularization: RegularizationSection {
                label_smoothing: 0.0,
                mixup_alpha: 0.0,
                cutmix_alpha: 0.0,
                mix_prob: 1.0,
                mix_switch_prob: 0.5,
                random_erase_p: 0.0,
                rand_augment: String::new(),
                repeated_aug: false,
                model_ema_decay: 0.0,
                clip_grad_norm: 0.0,
            },
            checkpoint: CheckpointSection {
                every_steps: 0,
                keep: 2,
                eval_every_epochs: 0,
            },
        }
    }

    /// A preset from [`PRESETS`].
    pub fn preset(name: &str) -> Result<Self, RetrainError> {
        let r = match name {
            "nats-cifar" => Self::nats(name, 90),
            "nats-cifar-hp200" => Self::nats(name, 200),
            "nats-cifar-short" => {
                let mut r = Self::nats(name, 3);
                r.schedule.batch_size = 64;
                r.data.train_subset = 4000;
                r.data.test_subset = 2000;
                r
            }
            "tiny" => {
                let mut r = Self::nats(name, 1);
                r.schedule.batch_size = 8;
                r.data.train_subset = 32;
                r.data.test_subset = 16;
                r.data.synthetic = [32, 16];
                r.data.num_threads = 2;
                r.data.eval_batch_size = 16;
                r.model.hytra_width_divisor = 16;
                r.regularization.label_smoothing = 0.1;
                r.regularization.model_ema_decay = 0.9;
                r
            }
            "deit" => {
                let mut r = Self::nats(name, 300);
                r.model.hytra_drop_path_rate = 0.1;
                r.data = DataSection {
                    image_size: 224,
                    train_crop: TrainCrop::RandomResized,
                    padding: 0,
                    hflip_p: 0.5,
                    normalize: "imagenet".into(),
                    train_subset: 0,
                    test_subset: 0,
                    synthetic: [64, 32],
                    num_threads: 0,
                    eval_crop_pct: 0.875,
                    eval_batch_size: 128,
                };
                r.optimizer = OptimizerSection {
                    kind: OptimizerKind::Adamw,
                    lr: 5e-4,
                    lr_base_batch: 512,
                    weight_decay: 0.05,
                    no_decay_rank1: true,
                    momentum: 0.9,
                    nesterov: false,
                    betas: [0.9, 0.999],
                    eps: 1e-8,
                };
                r.schedule = ScheduleSection {
                    epochs: 300,
                    batch_size: 128,
                    warmup_epochs: 5,
                    warmup_lr: 1e-6,
                    min_lr: 1e-5,
                    stepping: LrStepping::Epoch,
                };
                r.regularization = RegularizationSection {
                    label_smoothing: 0.1,
                    mixup_alpha: 0.8,
                    cutmix_alpha: 1.0,
                    mix_prob: 1.0,
                    mix_switch_prob: 0.5,
                    random_erase_p: 0.25,
                    rand_augment: "rand-m9-mstd0.5-inc1".into(),
                    repeated_aug: true,
                    model_ema_decay: 0.99996,
                    clip_grad_norm: 0.0,
                };
                r
            }
            other => {
                return Err(RetrainError::Recipe(format!(
                    "unknown recipe `{other}`; allowed: {} or a .toml/.json file",
                    PRESETS.join(", ")
                )));
            }
        };
        Ok(r)
    }

    /// A preset name, or else a path to a `.toml`/`.json` file.
    pub fn from_preset_or_file(spec: &str) -> Result<Self, RetrainError> {
        if PRESETS.contains(&spec) {
            return Self::preset(spec);
        }
        let path = Path::new(spec);
        if !path.is_file() {
            return Err(RetrainError::Recipe(format!(
                "`{spec}` is neither a recipe preset ({}) nor a readable file",
                PRESETS.join(", ")
            )));
        }
        Self::load(path)
    }

    /// Loads and validates a file (`.json` as JSON, anything else as TOML).
    pub fn load(path: &Path) -> Result<Self, RetrainError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| RetrainError::Recipe(format!("{}: {e}", path.display())))?;
        let json = path.extension().is_some_and(|e| e == "json");
        Self::parse(&text, json)
            .map_err(|e| RetrainError::Recipe(format!("{}: {}", path.display(), e.message())))
    }

    /// Parses TOML (or JSON) text with an optional `preset` base, then validates.
    pub fn parse(text: &str, json: bool) -> Result<Self, RetrainError> {
        let r: Recipe = parse_layered(text, json, Self::preset, RetrainError::Recipe)?;
        r.validate()?;
        Ok(r)
    }

    /// TOML text of the whole recipe.
    pub fn to_toml_string(&self) -> String {
        toml::to_string_pretty(self).expect("Recipe serialises to TOML")
    }

    /// Writes `recipe.resolved.toml` into `dir` atomically.
    pub fn save_resolved(&self, dir: &Path) -> Result<PathBuf, RetrainError> {
        let path = dir.join(RESOLVED_RECIPE);
        bossnas_runfs::write_atomic(&path, self.to_toml_string().as_bytes())
            .map_err(|e| RetrainError::Io(format!("{}: {e}", path.display())))?;
        Ok(path)
    }

    /// The learning rate after batch scaling.
    pub fn effective_lr(&self) -> f64 {
        if self.optimizer.lr_base_batch > 0 {
            self.optimizer.lr * self.schedule.batch_size as f64
                / self.optimizer.lr_base_batch as f64
        } else {
            self.optimizer.lr
        }
    }

    /// Ranges and cross-field checks; the error names the field.
    pub fn validate(&self) -> Result<(), RetrainError> {
        let prob = |name: &str, p: f64| {
            if (0.0..=1.0).contains(&p) {
                Ok(())
            } else {
                Err(invalid(name, p, "must be a probability in [0, 1]"))
            }
        };
        if self.model.hytra_width_divisor == 0 {
            return Err(invalid(
                "model.hytra_width_divisor",
                0,
                "must be at least 1",
            ));
        }
        if !(0.0..1.0).contains(&self.model.hytra_drop_path_rate) {
            return Err(invalid(
                "model.hytra_drop_path_rate",
                self.model.hytra_drop_path_rate,
                "must be in [0, 1)",
            ));
        }
        let d = &self.data;
        if d.image_size == 0 {
            return Err(invalid("data.image_size", 0, "must be positive"));
        }
        prob("data.hflip_p", d.hflip_p)?;
        if !matches!(d.normalize.as_str(), "cifar" | "imagenet") {
            return Err(invalid(
                "data.normalize",
                format!("{:?}", d.normalize),
                "expected \"cifar\" or \"imagenet\"",
            ));
        }
        if !(d.eval_crop_pct > 0.0 && d.eval_crop_pct <= 1.0) {
            return Err(invalid(
                "data.eval_crop_pct",
                d.eval_crop_pct,
                "must be in (0, 1]",
            ));
        }
        if d.eval_batch_size == 0 {
            return Err(invalid("data.eval_batch_size", 0, "must be positive"));
        }
        if d.synthetic.contains(&0) {
            return Err(invalid(
                "data.synthetic",
                format!("{:?}", d.synthetic),
                "both sizes must be positive",
            ));
        }
        let o = &self.optimizer;
        if !(o.lr.is_finite() && o.lr > 0.0) {
            return Err(invalid("optimizer.lr", o.lr, "must be positive"));
        }
        if !(o.weight_decay.is_finite() && o.weight_decay >= 0.0) {
            return Err(invalid(
                "optimizer.weight_decay",
                o.weight_decay,
                "must be >= 0",
            ));
        }
        if !(0.0..1.0).contains(&o.momentum) {
            return Err(invalid(
                "optimizer.momentum",
                o.momentum,
                "must be in [0, 1)",
            ));
        }
        if o.betas.iter().any(|b| !(0.0..1.0).contains(b)) {
            return Err(invalid(
                "optimizer.betas",
                format!("{:?}", o.betas),
                "each must be in [0, 1)",
            ));
        }
        if o.eps.is_nan() || o.eps <= 0.0 {
            return Err(invalid("optimizer.eps", o.eps, "must be positive"));
        }
        let s = &self.schedule;
        if s.epochs == 0 {
            return Err(invalid("schedule.epochs", 0, "must be at least 1"));
        }
        if s.batch_size == 0 {
            return Err(invalid("schedule.batch_size", 0, "must be at least 1"));
        }
        if s.warmup_epochs >= s.epochs {
            return Err(invalid(
                "schedule.warmup_epochs",
                s.warmup_epochs,
                "must be less than schedule.epochs",
            ));
        }
        if !(s.min_lr >= 0.0 && s.min_lr <= self.effective_lr()) {
            return Err(invalid(
                "schedule.min_lr",
                s.min_lr,
                "must be in [0, optimizer lr]",
            ));
        }
        if s.warmup_lr.is_nan() || s.warmup_lr < 0.0 {
            return Err(invalid("schedule.warmup_lr", s.warmup_lr, "must be >= 0"));
        }
        let r = &self.regularization;
        if !(0.0..1.0).contains(&r.label_smoothing) {
            return Err(invalid(
                "regularization.label_smoothing",
                r.label_smoothing,
                "must be in [0, 1)",
            ));
        }
        for (name, a) in [
            ("regularization.mixup_alpha", r.mixup_alpha),
            ("regularization.cutmix_alpha", r.cutmix_alpha),
            ("regularization.clip_grad_norm", r.clip_grad_norm),
        ] {
            if !(a.is_finite() && a >= 0.0) {
                return Err(invalid(name, a, "must be >= 0"));
            }
        }
        prob("regularization.mix_prob", r.mix_prob)?;
        prob("regularization.mix_switch_prob", r.mix_switch_prob)?;
        prob("regularization.random_erase_p", r.random_erase_p)?;
        if !r.rand_augment.trim().is_empty() {
            RandAugment::parse(&r.rand_augment, [0; 3]).map_err(|e| {
                invalid(
                    "regularization.rand_augment",
                    format!("{:?}", r.rand_augment),
                    &format!("{e} (empty = off)"),
                )
            })?;
        }
        if !(0.0..1.0).contains(&r.model_ema_decay) {
            return Err(invalid(
                "regularization.model_ema_decay",
                r.model_ema_decay,
                "must be in [0, 1) (0 = off)",
            ));
        }
        if self.checkpoint.keep == 0 {
            return Err(invalid("checkpoint.keep", 0, "must be at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_round_trip_through_toml() {
        for name in PRESETS {
            let r = Recipe::preset(name).unwrap();
            r.validate().unwrap();
            let back = Recipe::parse(&r.to_toml_string(), false).unwrap();
            assert_eq!(back, r, "{name}");
        }
    }

    #[test]
    fn official_values() {
        let d = Recipe::preset("deit").unwrap();
        assert_eq!(d.optimizer.kind, OptimizerKind::Adamw);
        assert_eq!(d.schedule.epochs, 300);
        // 5e-4 · 1024 / 512 at the official global batch.
        let mut global = d.clone();
        global.schedule.batch_size = 1024;
        assert!((global.effective_lr() - 1e-3).abs() < 1e-12);
        assert_eq!(d.regularization.model_ema_decay, 0.99996);
        let n = Recipe::preset("nats-cifar").unwrap();
        assert_eq!(
            (n.schedule.epochs, n.schedule.batch_size, n.optimizer.lr),
            (90, 256, 0.1)
        );
        assert!(n.optimizer.nesterov);
        assert_eq!(n.optimizer.weight_decay, 5e-4);
        assert_eq!(
            Recipe::preset("nats-cifar-hp200").unwrap().schedule.epochs,
            200
        );
    }

    #[test]
    fn overrides_unknown_keys_and_bad_values() {
        let r = Recipe::parse(
            "preset = \"nats-cifar\"\n[schedule]\nepochs = 3\n[data]\ntrain_subset = 10\n",
            false,
        )
        .unwrap();
        assert_eq!((r.schedule.epochs, r.schedule.batch_size), (3, 256));
        assert_eq!(r.data.train_subset, 10);
        let e = Recipe::parse("preset = \"tiny\"\n[schedule]\nepoch = 3\n", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("epoch"), "{e}");
        let e = Recipe::parse("preset = \"tiny\"\n[optimizer]\nlr = -1.0\n", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("optimizer.lr"), "{e}");
        let e = Recipe::parse("preset = \"tiny\"\n[optimizer]\nkind = \"lamb\"\n", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("lamb"), "{e}");
        assert!(Recipe::from_preset_or_file("no-such").is_err());
    }

    #[test]
    fn deit_turns_on_its_augmentations_and_bad_policies_are_named() {
        let d = Recipe::preset("deit").unwrap();
        assert_eq!(d.regularization.rand_augment, "rand-m9-mstd0.5-inc1");
        assert!(d.regularization.repeated_aug);
        assert_eq!(d.data.eval_crop_pct, 0.875);
        for policy in ["rand-q9", "augmix-m3", "rand-m9-p1.5"] {
            let e = Recipe::parse(
                &format!("preset = \"deit\"\n[regularization]\nrand_augment = \"{policy}\"\n"),
                false,
            )
            .unwrap_err()
            .to_string();
            assert!(
                e.contains("regularization.rand_augment") && e.contains(policy),
                "{e}"
            );
        }
    }
}
