//! Run configuration: every hyper-parameter of a supernet training run, in one serde format,
//! with the learning-rate and EMA-momentum schedules it defines ([`schedule`]). No tensors: the
//! trainer (`ensemble-bootstrap`) turns a [`RunConfig`] into modules and optimizers, and the
//! parsers can be fuzzed without building Burn (`fuzz/`).
//!
//! Files are TOML (`.toml`) or JSON (`.json`). A file may start from a preset and override
//! only some fields: `preset = "tiny"` at the top level, then any subset of the sections
//! below (deep merge: tables merge key by key, everything else replaces). Unknown keys are
//! rejected. After parsing, [`RunConfig::validate`] checks ranges and cross-field constraints
//! and names the offending field (`train.batch_size`, ...) and the allowed values.
//!
//! Presets ([`PRESETS`]): `nats-c10-paper`, `nats-c100-paper`, `hytra-imagenet-paper`,
//! `mbconv-imagenet-paper` (official values, spec §4.5, §6.3), `tiny` (CI smoke run) and
//! `nats-c10-cpu` (a 2-core CPU budget of about 10 minutes, chosen by the search-quality sweep,
//! docs/search-quality.md).
//!
//! # Batch size on one device
//!
//! The official runs use 4096 images per optimizer step: 8 GPUs × 64 × 8 accumulation
//! (ImageNet) or 4 GPUs × 256 × 4 (CIFAR). BN sees one GPU's micro-batch. On a single device
//! we keep the micro-batch (`train.batch_size`, the BN batch) and accumulate
//! `gpus × accumulation` micro-batches (`train.accumulation_steps`: 64 resp. 16), which gives
//! the same gradient as the DDP mean of per-micro-batch losses.

pub mod device;
pub mod schedule;

use crate::schedule::{LrSchedule, LrStepping, MomentumSchedule};
use hytra_space::SpaceKind;
use hytra_space::hytra::AttentionOrientation;
use hytra_space::nats::NatsSplit;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// File name of the resolved config inside a run directory (what `--resume` reads back).
pub const RESOLVED_CONFIG: &str = "config.resolved.toml";

/// Names accepted by [`RunConfig::preset`].
pub const PRESETS: [&str; 6] = [
    "nats-c10-paper",
    "nats-c100-paper",
    "hytra-imagenet-paper",
    "mbconv-imagenet-paper",
    "tiny",
    "nats-c10-cpu",
];

/// Errors from loading or validating a [`RunConfig`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A preset name that does not exist.
    #[error("unknown preset `{name}`; allowed: {}", PRESETS.join(", "))]
    UnknownPreset {
        /// The name given.
        name: String,
    },
    /// A folder given as a run directory has no resolved configuration.
    #[error("{} is not a run directory: {} is missing", dir.display(), missing.display())]
    NotARun {
        /// The folder.
        dir: PathBuf,
        /// The file that is not there.
        missing: PathBuf,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file could not be parsed (syntax, unknown key, wrong type or enum value).
    #[error("{path}: {message}")]
    Parse {
        /// The file (or `<string>`).
        path: PathBuf,
        /// The parser's message, which names the key or line.
        message: String,
    },
    /// A field has an invalid value.
    #[error("invalid `{field}` = {value}: {expected}")]
    Invalid {
        /// Dotted field path, e.g. `train.batch_size`.
        field: String,
        /// The offending value as text.
        value: String,
        /// What is allowed.
        expected: String,
    },
}

/// `[space]`: the search space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpaceConfig {
    /// `hytra` | `mbconv` | `nats`.
    pub kind: SpaceKind,
    /// NATS block split `c10` | `c100`; required for `nats`, ignored otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "split_code")]
    pub nats_split: Option<NatsSplit>,
    /// Channel widths of the supernet. NATS: the 8 candidate widths (official 8..64 step 8).
    /// HyTra/MBConv: per-scale base widths; empty = the space's official widths.
    #[serde(default)]
    pub widths: Vec<usize>,
    /// ResAtt attention orientation (HyTra only): `search` | `paper`.
    #[serde(default = "default_attention", with = "attention_code")]
    pub attention: AttentionOrientation,
}

/// `space.nats_split` keeps its config spelling `c10` | `c100` for hytra-space's [`NatsSplit`]
/// (the one split type; configs written before issue 17 read unchanged).
mod split_code {
    use hytra_space::nats::NatsSplit;
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    const NAMES: &[&str] = &["c10", "c100"];

    pub fn serialize<S: Serializer>(v: &Option<NatsSplit>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(NatsSplit::Cifar10) => s.serialize_some(NAMES[0]),
            Some(NatsSplit::Cifar100) => s.serialize_some(NAMES[1]),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NatsSplit>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| match t.as_str() {
                "c10" => Ok(NatsSplit::Cifar10),
                "c100" => Ok(NatsSplit::Cifar100),
                other => Err(D::Error::unknown_variant(other, NAMES)),
            })
            .transpose()
    }
}

/// `space.attention` keeps its config spelling `search` | `paper` for the kernels'
/// [`AttentionOrientation`] (`SearchCode` | `Standard`), the one orientation type.
mod attention_code {
    use hytra_space::hytra::AttentionOrientation;
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    const NAMES: &[&str] = &["search", "paper"];

    pub fn serialize<S: Serializer>(v: &AttentionOrientation, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match v {
            AttentionOrientation::SearchCode => NAMES[0],
            AttentionOrientation::Standard => NAMES[1],
        })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<AttentionOrientation, D::Error> {
        match String::deserialize(d)?.as_str() {
            "search" => Ok(AttentionOrientation::SearchCode),
            "paper" => Ok(AttentionOrientation::Standard),
            other => Err(D::Error::unknown_variant(other, NAMES)),
        }
    }
}

/// Standard attention unless a config asks otherwise (the library default, spec §9 B4); the
/// `*-paper` presets set `search` to reproduce the official search code.
fn default_attention() -> AttentionOrientation {
    AttentionOrientation::Standard
}

/// Dataset kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetKind {
    /// CIFAR-10 binary files.
    Cifar10,
    /// CIFAR-100 binary files.
    Cifar100,
    /// An `ImageFolder` tree (`root/<class>/*.jpg`), e.g. ImageNet.
    ImageFolder,
    /// Random images generated in memory (tests, smoke runs).
    Synthetic,
}

/// How train and rating data are split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSplit {
    /// Train on the official training set, rate on the official test/val set.
    Official,
    /// Halve the training set with a seeded permutation (NATS-Bench `cifar10-valid` style);
    /// train on one half and rate on the other.
    NatsHalves,
}

/// Views per training sample (spec §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViewMode {
    /// Two views shared by all sampled paths (NATS, `BYOLDataset`).
    Shared,
    /// One independent view pair per sampled path (HyTra/MBConv `MultiAugBYOLDataset`).
    PerPath,
}

/// Augmentation preset for the views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AugmentPreset {
    /// CIFAR: random crop with padding 4, flip, normalise.
    Cifar,
    /// BossNAS ImageNet pipelines (view 1 blur 0.1 / solar 0; view 2 blur 1.0 / solar 0.2).
    Imagenet,
    /// Flip only (fast smoke runs).
    Minimal,
}

/// `[data]`: the dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// `cifar10` | `cifar100` | `image_folder` | `synthetic`.
    pub dataset: DatasetKind,
    /// Dataset root directory (unused for `synthetic`). Empty (the presets) means "the data
    /// directory": the command resolves it from `--data`, `$BOSSNAS_DATA`, else the user cache.
    /// A relative path in a config file is relative to that file.
    #[serde(default)]
    pub root: PathBuf,
    /// `official` | `nats_halves`.
    pub split: DataSplit,
    /// Use at most this many training images (seeded subset); 0 = all.
    #[serde(default)]
    pub train_subset: usize,
    /// Use at most this many rating images; 0 = all.
    #[serde(default)]
    pub rating_subset: usize,
    /// Square input size in pixels (32 CIFAR, 224 ImageNet).
    pub image_size: usize,
    /// `shared` | `per_path`.
    pub views: ViewMode,
    /// `cifar` | `imagenet` | `minimal`.
    pub augment: AugmentPreset,
    /// Loader worker threads; 0 = load on the training thread.
    #[serde(default)]
    pub num_workers: usize,
    /// Number of images for `synthetic` data.
    #[serde(default)]
    pub synthetic_size: usize,
}

/// Path sampling per step (spec §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sampling {
    /// `paths_per_step` distinct paths uniformly without replacement (HyTra).
    Uniform,
    /// FairNAS strict fairness: one permutation of all ops per layer (MBConv, NATS);
    /// `paths_per_step` must equal the number of ops.
    Fair,
}

/// How `train.lr` is interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrScaling {
    /// `lr` is the learning rate for the configured total batch.
    Absolute,
    /// `lr` is per 256 images: effective lr = lr · total_batch / 256.
    PerBatch256,
}

/// What to do when the loss is not finite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NanPolicy {
    /// Stop the run with an error (the last checkpoint stays valid).
    Abort,
    /// Drop this optimizer step's gradients, log it, and continue.
    SkipStep,
}

/// `[train]`: optimisation of the supernet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Paths sampled per iteration (official: 4 HyTra/MBConv, 8 NATS).
    pub paths_per_step: usize,
    /// `uniform` | `fair`.
    pub sampling: Sampling,
    /// Micro-batch (the BN batch) in images.
    pub batch_size: usize,
    /// Micro-batches accumulated per optimizer step.
    pub accumulation_steps: usize,
    /// Epochs per block (official 6 ImageNet, 50 CIFAR).
    pub epochs_per_block: usize,
    /// Learning rate, see `lr_scaling`.
    pub lr: f64,
    /// `absolute` | `per_batch256`.
    pub lr_scaling: LrScaling,
    /// Warm-up epochs at the start of every block (official 1 ImageNet, 2 NATS).
    pub warmup_epochs: usize,
    /// Warm-up start factor (official 1e-4).
    #[serde(default = "default_warmup_ratio")]
    pub warmup_ratio: f64,
    /// Final learning rate of the cosine (official 0).
    #[serde(default)]
    pub min_lr: f64,
    /// Cosine stepping: `epoch` (official) | `iteration`.
    #[serde(default)]
    pub lr_stepping: LrStepping,
    /// LARS momentum (0.9).
    pub lars_momentum: f64,
    /// LARS weight decay (1e-6).
    pub lars_weight_decay: f64,
    /// LARS trust coefficient η (0.001).
    pub lars_trust_coefficient: f64,
    /// Exclude biases and BN parameters from LARS scaling and decay (true).
    pub lars_exclude_bias_bn: bool,
    /// EMA base momentum m₀ (official 0.99).
    pub ema_momentum: f64,
    /// Freeze the stem and earlier blocks while training block k (spec §9 B5). Official: false.
    pub freeze_earlier_blocks: bool,
    /// `abort` | `skip_step`.
    pub nan_policy: NanPolicy,
}

fn default_warmup_ratio() -> f64 {
    1e-4
}

/// `[heads]`: projector and predictor widths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadsConfig {
    /// Width after the channel adapter; `None` = no adapter, the block's own channels (MBConv).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projector_in: Option<usize>,
    /// Projector hidden width (4096).
    pub projector_hidden: usize,
    /// Embedding width (256).
    pub projector_out: usize,
    /// Predictor hidden width (4096).
    pub predictor_hidden: usize,
}

/// `[rating]`: architecture rating (spec §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatingConfig {
    /// Images in the BN calibration batch (official 256).
    pub calibration_batch_size: usize,
    /// Batch size while rating (official 256).
    pub batch_size: usize,
    /// Rate every this many epochs of a block (official 2 ImageNet, 10 NATS); the last epoch
    /// of a block is always rated.
    pub interval_epochs: usize,
    /// Reproduce the official predictor-BN quirk (reset, never recalibrated; spec §9 D4).
    pub predictor_bn_quirk: bool,
}

/// `[checkpoint]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Save every this many epochs (and at every block end); 0 = only at block ends.
    pub interval_epochs: usize,
}

/// Every hyper-parameter of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The preset this config started from (informational after resolution).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// Master seed (paths, data order, augmentation, init).
    pub seed: u64,
    /// Device string: `flex` (CPU), `wgpu`, `cuda` (compiled-in backends only).
    pub device: String,
    /// Search space.
    pub space: SpaceConfig,
    /// Data.
    pub data: DataConfig,
    /// Optimisation.
    pub train: TrainConfig,
    /// Projector / predictor.
    pub heads: HeadsConfig,
    /// Rating.
    pub rating: RatingConfig,
    /// Checkpoints.
    pub checkpoint: CheckpointConfig,
}

/// The first integer of `v` (as `section.key`) that a TOML file cannot hold.
fn integer_beyond_toml(v: &serde_json::Value, path: String) -> Option<(String, u64)> {
    match v {
        serde_json::Value::Number(n) => n
            .as_u64()
            .filter(|&u| u > i64::MAX as u64)
            .map(|u| (path, u)),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            let key = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            integer_beyond_toml(v, key)
        }),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| integer_beyond_toml(v, format!("{path}[{i}]"))),
        _ => None,
    }
}

fn invalid(field: &str, value: impl std::fmt::Display, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_string(),
        value: value.to_string(),
        expected: expected.to_string(),
    }
}

/// The allowed range in plain words: `f64::MIN_POSITIVE` as a lower bound means "> 0" (it is
/// not printed: its decimal form has 300 zeros).
fn range_text(lo: f64, hi: f64) -> String {
    let low = if lo == f64::MIN_POSITIVE {
        "> 0".to_string()
    } else {
        format!(">= {lo}")
    };
    if hi.is_infinite() {
        format!("a finite number {low}")
    } else if lo == f64::MIN_POSITIVE {
        format!("a number > 0 and <= {hi}")
    } else {
        format!("a number in [{lo}, {hi}]")
    }
}

fn nats_widths() -> Vec<usize> {
    (1..=8).map(|i| 8 * i).collect()
}

impl RunConfig {
    /// A preset by name (see [`PRESETS`]).
    pub fn preset(name: &str) -> Result<Self, ConfigError> {
        let nats = |split: NatsSplit, dataset: DatasetKind| RunConfig {
            preset: Some(name.to_string()),
            seed: 0,
            device: "wgpu".into(),
            space: SpaceConfig {
                kind: SpaceKind::Nats,
                nats_split: Some(split),
                widths: nats_widths(),
                attention: AttentionOrientation::SearchCode,
            },
            data: DataConfig {
                dataset,
                // The data directory rule finds the dataset (see `DataConfig::root`).
                root: PathBuf::new(),
                split: DataSplit::NatsHalves,
                train_subset: 0,
                rating_subset: 0,
                image_size: 32,
                views: ViewMode::Shared,
                augment: AugmentPreset::Cifar,
                num_workers: 4,
                synthetic_size: 0,
            },
            train: TrainConfig {
                paths_per_step: 8,
                sampling: Sampling::Fair,
                batch_size: 256,
                accumulation_steps: 16,
                epochs_per_block: 50,
                lr: 0.48,
                lr_scaling: LrScaling::Absolute,
                warmup_epochs: 2,
                warmup_ratio: 1e-4,
                min_lr: 0.0,
                lr_stepping: LrStepping::Epoch,
                lars_momentum: 0.9,
                lars_weight_decay: 1e-6,
                lars_trust_coefficient: 1e-3,
                lars_exclude_bias_bn: true,
                ema_momentum: 0.99,
                freeze_earlier_blocks: false,
                nan_policy: NanPolicy::Abort,
            },
            heads: HeadsConfig {
                projector_in: Some(2048),
                projector_hidden: 4096,
                projector_out: 256,
                predictor_hidden: 4096,
            },
            rating: RatingConfig {
                calibration_batch_size: 256,
                batch_size: 256,
                interval_epochs: 10,
                predictor_bn_quirk: true,
            },
            checkpoint: CheckpointConfig { interval_epochs: 1 },
        };
        let imagenet = |kind: SpaceKind| {
            let mut c = nats(NatsSplit::Cifar10, DatasetKind::ImageFolder);
            c.space = SpaceConfig {
                kind,
                nats_split: None,
                widths: Vec::new(),
                attention: AttentionOrientation::SearchCode,
            };
            c.data.split = DataSplit::Official;
            c.data.image_size = 224;
            c.data.views = ViewMode::PerPath;
            c.data.augment = AugmentPreset::Imagenet;
            c.train.paths_per_step = 4;
            c.train.batch_size = 64;
            c.train.accumulation_steps = 64;
            c.train.epochs_per_block = 6;
            c.train.lr = 4.8;
            c.train.warmup_epochs = 1;
            c.rating.interval_epochs = 2;
            c
        };
        let config = match name {
            "nats-c10-paper" => nats(NatsSplit::Cifar10, DatasetKind::Cifar10),
            "nats-c100-paper" => nats(NatsSplit::Cifar100, DatasetKind::Cifar100),
            "hytra-imagenet-paper" => {
                let mut c = imagenet(SpaceKind::Hytra);
                c.train.sampling = Sampling::Uniform;
                c
            }
            "mbconv-imagenet-paper" => {
                let mut c = imagenet(SpaceKind::Mbconv);
                c.train.sampling = Sampling::Fair;
                c.heads.projector_in = None;
                c
            }
            "tiny" => {
                let mut c = nats(NatsSplit::Cifar10, DatasetKind::Synthetic);
                c.device = "flex".into();
                c.space.widths = vec![4, 8];
                c.data.root = PathBuf::new();
                c.data.split = DataSplit::Official;
                c.data.synthetic_size = 32;
                c.data.rating_subset = 8;
                c.data.image_size = 8;
                c.data.augment = AugmentPreset::Minimal;
                c.data.num_workers = 0;
                c.train.paths_per_step = 2;
                c.train.batch_size = 8;
                c.train.accumulation_steps = 1;
                c.train.epochs_per_block = 1;
                c.train.lr = 0.1;
                c.train.warmup_epochs = 0;
                c.heads = HeadsConfig {
                    projector_in: Some(16),
                    projector_hidden: 32,
                    projector_out: 8,
                    predictor_hidden: 32,
                };
                c.rating = RatingConfig {
                    calibration_batch_size: 8,
                    batch_size: 8,
                    interval_epochs: 1,
                    predictor_bn_quirk: true,
                };
                c
            }
            "nats-c10-cpu" => {
                // A quarter-width supernet (candidate i = width 2·(i+1), standing for NATS width
                // 8·(i+1)), 8 fair paths at batch 32, 1,536 images × 4 epochs per block: about
                // 10 minutes on 2 cores (9.6 CPU-minutes, sweep point img1536-ep4-s1). Chosen by
                // the search-quality sweep (docs/search-quality.md): no variant measured there
                // beat it, and four times the images (img6144-ep4) scored lower.
                let mut c = nats(NatsSplit::Cifar10, DatasetKind::Cifar10);
                c.device = "flex".into();
                c.space.widths = (1..=8).map(|i| 2 * i).collect();
                c.data.train_subset = 1536;
                c.data.rating_subset = 256;
                c.data.num_workers = 0;
                c.train.paths_per_step = 8;
                c.train.batch_size = 32;
                c.train.accumulation_steps = 1;
                c.train.epochs_per_block = 4;
                c.train.lr = 0.3;
                c.train.lr_scaling = LrScaling::PerBatch256;
                c.train.warmup_epochs = 1;
                c.heads = HeadsConfig {
                    projector_in: Some(64),
                    projector_hidden: 128,
                    projector_out: 64,
                    predictor_hidden: 128,
                };
                c.rating = RatingConfig {
                    calibration_batch_size: 64,
                    batch_size: 64,
                    interval_epochs: 4,
                    predictor_bn_quirk: true,
                };
                c
            }
            _ => {
                return Err(ConfigError::UnknownPreset {
                    name: name.to_string(),
                });
            }
        };
        Ok(config)
    }

    /// A preset name from [`PRESETS`], or else a path to a `.toml` / `.json` file.
    pub fn from_preset_or_file(spec: &str) -> Result<Self, ConfigError> {
        if PRESETS.contains(&spec) {
            Self::preset(spec)
        } else {
            Self::load(spec)
        }
    }

    /// Loads and validates a `.toml` or `.json` file (any other extension is read as TOML).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let json = path.extension().is_some_and(|e| e == "json");
        let mut config = Self::parse(&text, json, path)?;
        // A config file names its data relative to itself, so it works from any folder. A run's
        // own `config.resolved.toml` is left as saved (runs of older versions saved roots
        // relative to the working folder; new runs save absolute ones).
        let resolved = path.file_name().is_some_and(|n| n == RESOLVED_CONFIG);
        if !resolved && config.data.root.is_relative() && !config.data.root.as_os_str().is_empty() {
            let base = path.parent().unwrap_or(Path::new("."));
            config.data.root = std::path::absolute(base.join(&config.data.root))
                .unwrap_or_else(|_| base.join(&config.data.root));
        }
        Ok(config)
    }

    /// Parses TOML text (with optional `preset = ".."` base) and validates it.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        Self::parse(text, false, Path::new("<string>"))
    }

    /// Parses JSON text (with optional `"preset": ".."` base) and validates it.
    pub fn from_json_str(text: &str) -> Result<Self, ConfigError> {
        Self::parse(text, true, Path::new("<string>"))
    }

    fn parse(text: &str, json: bool, path: &Path) -> Result<Self, ConfigError> {
        let perr = |message: String| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        };
        let config: RunConfig = parse_layered(text, json, Self::preset, perr)?;
        config.validate()?;
        Ok(config)
    }

    /// TOML text of the whole (resolved) configuration.
    pub fn to_toml_string(&self) -> String {
        toml::to_string_pretty(self).expect("RunConfig serialises to TOML")
    }

    /// JSON text of the whole (resolved) configuration.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string_pretty(self).expect("RunConfig serialises to JSON")
    }

    /// The configuration of the run directory `dir` (its `config.resolved.toml`), for
    /// `--resume` of `bossnas train` and `cargo xtask reproduce`; a folder without one is
    /// [`ConfigError::NotARun`].
    pub fn load_run(dir: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let dir = dir.as_ref();
        let path = dir.join(RESOLVED_CONFIG);
        if !path.is_file() {
            return Err(ConfigError::NotARun {
                dir: dir.to_path_buf(),
                missing: path,
            });
        }
        Self::load(&path)
    }

    /// Writes `config.resolved.toml` into `dir` atomically; returns its path.
    pub fn save_resolved(&self, dir: impl AsRef<Path>) -> Result<PathBuf, ConfigError> {
        let path = dir.as_ref().join(RESOLVED_CONFIG);
        bossnas_runfs::write_atomic(&path, self.to_toml_string().as_bytes()).map_err(|source| {
            ConfigError::Io {
                path: path.clone(),
                source,
            }
        })?;
        Ok(path)
    }

    /// Checks ranges and cross-field constraints; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        // A JSON config may hold integers TOML cannot write (TOML's are 64-bit signed), and
        // every accepted config is written as `config.resolved.toml` for `--resume`.
        if let Some((field, value)) = integer_beyond_toml(
            &serde_json::to_value(self).expect("RunConfig serialises to JSON"),
            String::new(),
        ) {
            return Err(invalid(&field, value, &format!("<= {}", i64::MAX)));
        }
        if self
            .preset
            .as_deref()
            .is_some_and(|p| !PRESETS.contains(&p))
        {
            return Err(invalid(
                "preset",
                self.preset.as_deref().unwrap_or(""),
                &format!("one of {}", PRESETS.join(", ")),
            ));
        }
        // The device parser's own check and wording (one message for a bad device).
        if let Err(e) = self.device.parse::<crate::device::DeviceSpec>() {
            return Err(ConfigError::Invalid {
                field: "device".into(),
                value: self.device.clone(),
                expected: e.to_string(),
            });
        }
        match self.space.kind {
            SpaceKind::Nats => {
                if self.space.nats_split.is_none() {
                    return Err(invalid(
                        "space.nats_split",
                        "missing",
                        "c10 or c100 for the nats space",
                    ));
                }
                let w = &self.space.widths;
                if !(2..=8).contains(&w.len()) || w.windows(2).any(|p| p[0] >= p[1]) {
                    return Err(invalid(
                        "space.widths",
                        format!("{w:?}"),
                        "2 to 8 increasing NATS widths (official [8, 16, ..., 64])",
                    ));
                }
            }
            SpaceKind::Hytra | SpaceKind::Mbconv => {}
        }
        if self.space.widths.contains(&0) {
            return Err(invalid(
                "space.widths",
                format!("{:?}", self.space.widths),
                "positive widths",
            ));
        }
        let d = &self.data;
        if d.image_size < 4 {
            return Err(invalid("data.image_size", d.image_size, "an integer >= 4"));
        }
        if d.dataset == DatasetKind::Synthetic && d.synthetic_size == 0 {
            return Err(invalid(
                "data.synthetic_size",
                0,
                "> 0 images for the synthetic dataset",
            ));
        }
        let t = &self.train;
        if t.paths_per_step == 0 {
            return Err(invalid("train.paths_per_step", 0, "an integer >= 1"));
        }
        if t.sampling == Sampling::Fair
            && self.space.kind == SpaceKind::Nats
            && t.paths_per_step != self.space.widths.len()
        {
            return Err(invalid(
                "train.paths_per_step",
                t.paths_per_step,
                &format!(
                    "{} (= number of widths) with fair sampling",
                    self.space.widths.len()
                ),
            ));
        }
        for (field, v) in [
            ("train.batch_size", t.batch_size),
            ("train.accumulation_steps", t.accumulation_steps),
            ("train.epochs_per_block", t.epochs_per_block),
        ] {
            if v == 0 {
                return Err(invalid(field, v, "an integer >= 1"));
            }
        }
        if t.batch_size < 2 {
            return Err(invalid(
                "train.batch_size",
                t.batch_size,
                ">= 2 (batch-statistics BN)",
            ));
        }
        if t.warmup_epochs > t.epochs_per_block {
            return Err(invalid(
                "train.warmup_epochs",
                t.warmup_epochs,
                &format!("<= train.epochs_per_block ({})", t.epochs_per_block),
            ));
        }
        for (field, v, lo, hi) in [
            ("train.lr", t.lr, f64::MIN_POSITIVE, f64::INFINITY),
            ("train.warmup_ratio", t.warmup_ratio, 0.0, 1.0),
            ("train.min_lr", t.min_lr, 0.0, t.lr),
            ("train.lars_momentum", t.lars_momentum, 0.0, 1.0),
            ("train.lars_weight_decay", t.lars_weight_decay, 0.0, 1.0),
            (
                "train.lars_trust_coefficient",
                t.lars_trust_coefficient,
                f64::MIN_POSITIVE,
                f64::INFINITY,
            ),
            ("train.ema_momentum", t.ema_momentum, 0.0, 1.0),
        ] {
            if !v.is_finite() || v < lo || v > hi {
                return Err(invalid(field, v, &range_text(lo, hi)));
            }
        }
        let h = &self.heads;
        for (field, v) in [
            ("heads.projector_in", h.projector_in.unwrap_or(1)),
            ("heads.projector_hidden", h.projector_hidden),
            ("heads.projector_out", h.projector_out),
            ("heads.predictor_hidden", h.predictor_hidden),
        ] {
            if v == 0 {
                return Err(invalid(field, v, "an integer >= 1"));
            }
        }
        let r = &self.rating;
        if r.calibration_batch_size < 2 {
            return Err(invalid(
                "rating.calibration_batch_size",
                r.calibration_batch_size,
                ">= 2",
            ));
        }
        if r.batch_size == 0 {
            return Err(invalid("rating.batch_size", 0, "an integer >= 1"));
        }
        if r.interval_epochs == 0 {
            return Err(invalid("rating.interval_epochs", 0, "an integer >= 1"));
        }
        Ok(())
    }

    /// Images per optimizer step: `batch_size · accumulation_steps`.
    pub fn total_batch(&self) -> usize {
        self.train.batch_size * self.train.accumulation_steps
    }

    /// The peak learning rate after `lr_scaling`.
    pub fn effective_lr(&self) -> f64 {
        match self.train.lr_scaling {
            LrScaling::Absolute => self.train.lr,
            LrScaling::PerBatch256 => self.train.lr * self.total_batch() as f64 / 256.0,
        }
    }

    /// The per-block learning-rate schedule for `iters_per_epoch` micro-iterations per epoch.
    pub fn lr_schedule(&self, iters_per_epoch: usize) -> LrSchedule {
        let t = &self.train;
        LrSchedule {
            base_lr: self.effective_lr(),
            min_lr: t.min_lr,
            epochs_per_block: t.epochs_per_block,
            iters_per_epoch,
            warmup_iters: t.warmup_epochs * iters_per_epoch,
            warmup_ratio: t.warmup_ratio,
            stepping: t.lr_stepping,
        }
    }

    /// The per-block EMA momentum schedule over `optimizer_steps_per_block` updates.
    pub fn momentum_schedule(&self, optimizer_steps_per_block: usize) -> MomentumSchedule {
        MomentumSchedule {
            base: self.train.ema_momentum,
            iters_per_block: optimizer_steps_per_block,
        }
    }
}

/// Parses TOML (or JSON) text into a `T`, deep-merged over the preset its top-level `preset`
/// key names (if any): a file may override any subset of a preset. Shared by run configs and
/// the retraining recipes (`bossnas-retrain`). Unknown keys are rejected by `T`'s serde
/// attributes; `err` turns parse messages into the caller's error.
pub fn parse_layered<T, E>(
    text: &str,
    json: bool,
    preset: impl FnOnce(&str) -> Result<T, E>,
    err: impl Fn(String) -> E,
) -> Result<T, E>
where
    T: Serialize + serde::de::DeserializeOwned,
{
    let value: serde_json::Value = if json {
        serde_json::from_str(text).map_err(|e| err(e.to_string()))?
    } else {
        let v: toml::Value = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        // JSON has no NaN or infinity: converted, they would become `null` and be reported
        // as a type error without the key.
        if let Some((key, x)) = non_finite_float(&v, String::new()) {
            return Err(err(format!("`{key}` = {x}: not a finite number")));
        }
        serde_json::to_value(v).map_err(|e| err(e.to_string()))?
    };
    let value = match value.get("preset").and_then(|p| p.as_str()) {
        Some(name) => {
            let base = serde_json::to_value(preset(name)?).map_err(|e| err(e.to_string()))?;
            merge(base, value)
        }
        None => value,
    };
    serde_path_to_error::deserialize(value).map_err(|e| {
        let key = e.path().to_string();
        let message = plain_serde_message(&e.inner().to_string());
        err(if key == "." {
            message
        } else {
            format!("`{key}`: {message}")
        })
    })
}

/// The first non-finite float of a TOML document, with its dotted key.
fn non_finite_float(v: &toml::Value, key: String) -> Option<(String, f64)> {
    let join = |k: &str| {
        if key.is_empty() {
            k.to_string()
        } else {
            format!("{key}.{k}")
        }
    };
    match v {
        toml::Value::Float(x) if !x.is_finite() => Some((key, *x)),
        toml::Value::Table(t) => t.iter().find_map(|(k, v)| non_finite_float(v, join(k))),
        toml::Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, v)| non_finite_float(v, format!("{key}[{i}]"))),
        _ => None,
    }
}

/// serde's type names in words a config author knows.
fn plain_serde_message(m: &str) -> String {
    m.replace("expected usize", "expected an integer >= 0")
        .replace("expected u64", "expected an integer >= 0")
        .replace("expected u32", "expected an integer >= 0")
        .replace("expected f64", "expected a number")
        .replace("expected f32", "expected a number")
}

/// Deep merge: tables merge key by key, anything else in `over` replaces `base`.
fn merge(base: serde_json::Value, over: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match (base, over) {
        (Value::Object(mut b), Value::Object(o)) => {
            for (k, v) in o {
                let merged = match b.remove(&k) {
                    Some(bv) => merge(bv, v),
                    None => v,
                };
                b.insert(k, merged);
            }
            Value::Object(b)
        }
        (_, o) => o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_presets_validate_and_round_trip() {
        for name in PRESETS {
            let c = RunConfig::preset(name).unwrap();
            c.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
            let t = RunConfig::from_toml_str(&c.to_toml_string()).unwrap();
            assert_eq!(t, c, "{name} TOML");
            let j = RunConfig::from_json_str(&c.to_json_string()).unwrap();
            assert_eq!(j, c, "{name} JSON");
        }
    }

    /// Issue 17 replaced the config's own split and orientation enums by hytra-space's
    /// `NatsSplit` and the kernels' `AttentionOrientation`; files keep their spelling.
    #[test]
    fn space_section_keeps_its_file_format() {
        let c = RunConfig::from_toml_str(
            "preset = \"tiny\"\n[space]\nkind = \"nats\"\nnats_split = \"c100\"\nattention = \"search\"\n",
        )
        .unwrap();
        assert_eq!(c.space.kind, SpaceKind::Nats);
        assert_eq!(c.space.nats_split, Some(NatsSplit::Cifar100));
        assert_eq!(c.space.attention, AttentionOrientation::SearchCode);
        let text = c.to_toml_string();
        assert!(text.contains("nats_split = \"c100\""), "{text}");
        assert!(text.contains("attention = \"search\""), "{text}");
        // The default orientation when a file leaves it out is `paper` (standard attention).
        let h: SpaceConfig = toml::from_str("kind = \"hytra\"").unwrap();
        assert_eq!(h.attention, AttentionOrientation::Standard);
        assert_eq!(h.nats_split, None);
        let e = RunConfig::from_toml_str(
            "preset = \"tiny\"\n[space]\nkind = \"nats\"\nnats_split = \"c1000\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("c1000") && e.contains("c100"), "{e}");
    }

    #[test]
    fn official_values() {
        let h = RunConfig::preset("hytra-imagenet-paper").unwrap();
        assert_eq!(h.total_batch(), 4096);
        assert_eq!(h.effective_lr(), 4.8);
        assert_eq!(h.train.epochs_per_block, 6);
        assert_eq!(h.train.paths_per_step, 4);
        assert_eq!(h.train.sampling, Sampling::Uniform);
        assert_eq!(h.data.views, ViewMode::PerPath);
        assert_eq!(h.train.ema_momentum, 0.99);
        let n = RunConfig::preset("nats-c100-paper").unwrap();
        assert_eq!(n.total_batch(), 4096);
        assert_eq!(n.effective_lr(), 0.48);
        assert_eq!((n.train.epochs_per_block, n.train.warmup_epochs), (50, 2));
        assert_eq!(n.space.nats_split, Some(NatsSplit::Cifar100));
        assert_eq!(n.space.widths, vec![8, 16, 24, 32, 40, 48, 56, 64]);
        let m = RunConfig::preset("mbconv-imagenet-paper").unwrap();
        assert_eq!(m.heads.projector_in, None);
        // Official schedule values through the config.
        let s = h.lr_schedule(10);
        let lr1 = s.lr(crate::schedule::BlockPosition {
            epoch: 1,
            iter_in_epoch: 0,
        });
        assert!((lr1 - 4.478).abs() < 5e-4);
    }

    #[test]
    fn integers_toml_cannot_hold_are_refused_naming_the_key() {
        // Found by the libFuzzer target config_json (fuzz/regressions/config_json/): accepted,
        // its config.resolved.toml could not be read back by --resume.
        let e = RunConfig::from_json_str(r#"{"preset":"tiny","seed":18446744073709551615}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("seed") && e.contains("9223372036854775807"),
            "{e}"
        );
        let e = RunConfig::from_json_str(
            r#"{"preset":"tiny","data":{"train_subset":9223372036854775808}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("data.train_subset"), "{e}");
        let ok =
            RunConfig::from_json_str(r#"{"preset":"tiny","seed":9223372036854775807}"#).unwrap();
        assert_eq!(RunConfig::from_toml_str(&ok.to_toml_string()).unwrap(), ok);
    }

    #[test]
    fn preset_with_overrides_and_errors_name_fields() {
        let c = RunConfig::from_toml_str(
            "preset = \"tiny\"\nseed = 7\n[train]\nepochs_per_block = 3\n",
        )
        .unwrap();
        assert_eq!(c.seed, 7);
        assert_eq!(c.train.epochs_per_block, 3);
        assert_eq!(c.train.batch_size, 8); // from the preset

        let e = RunConfig::from_toml_str("preset = \"tiny\"\n[train]\nbatch_size = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("train.batch_size"), "{e}");

        let e = RunConfig::from_toml_str("preset = \"tiny\"\n[space]\nkind = \"darts\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("hytra") && e.contains("nats") && e.contains("darts"),
            "{e}"
        );

        let e = RunConfig::from_toml_str("preset = \"tiny\"\n[train]\nbatchsize = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("batchsize"), "{e}");

        let e = RunConfig::from_preset_or_file("nats-c10-gpu")
            .unwrap_err()
            .to_string();
        assert!(e.contains("nats-c10-gpu"), "{e}");

        let e = RunConfig::from_json_str(r#"{"preset": "tiny", "train": {"ema_momentum": 1.5}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("train.ema_momentum"), "{e}");
    }

    #[test]
    fn errors_name_the_key_value_and_range() {
        let toml = |body: &str| {
            RunConfig::from_toml_str(&format!("preset = \"tiny\"\n[train]\n{body}\n"))
                .unwrap_err()
                .to_string()
        };
        let e = toml("lr = \"fast\"");
        assert!(e.contains("`train.lr`") && e.contains("\"fast\""), "{e}");
        for v in ["nan", "inf", "-inf"] {
            let e = toml(&format!("lr = {v}"));
            assert!(
                e.contains("`train.lr`") && e.contains("not a finite number"),
                "{e}"
            );
            assert!(!e.contains("null"), "{e}");
        }
        let e = toml("lr = -0.1");
        assert!(e.contains("train.lr") && e.contains("-0.1"), "{e}");
        assert!(e.contains("> 0") && !e.contains("0.000"), "{e}");
        assert!(e.len() < 120, "{e}");
        let e = RunConfig::from_json_str(r#"{"preset": "tiny", "train": {"batch_size": -1}}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`train.batch_size`") && e.contains("-1") && e.contains(">= 0"),
            "{e}"
        );
        let e = RunConfig::from_json_str(r#"{"preset": "tiny", "space": {"widths": [4, "x"]}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`space.widths[1]`"), "{e}");
        // One message per problem: no part of it repeated.
        let first = e.split(": ").next().unwrap();
        assert_eq!(e.matches(first).count(), 1, "{e}");
    }

    #[test]
    fn save_resolved_and_load_file() {
        let dir = tempfile::tempdir().unwrap();
        let c = RunConfig::preset("nats-c10-cpu").unwrap();
        let e = RunConfig::load_run(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("is not a run directory") && e.contains("config.resolved.toml"),
            "{e}"
        );
        let p = c.save_resolved(dir.path()).unwrap();
        assert!(p.ends_with("config.resolved.toml"));
        assert_eq!(RunConfig::load(&p).unwrap(), c);
        assert_eq!(RunConfig::load_run(dir.path()).unwrap(), c);
        assert_eq!(
            RunConfig::from_preset_or_file(p.to_str().unwrap()).unwrap(),
            c
        );
        let j = dir.path().join("c.json");
        std::fs::write(&j, c.to_json_string()).unwrap();
        assert_eq!(RunConfig::load(&j).unwrap(), c);
    }

    #[test]
    fn presets_leave_the_data_to_the_command_and_files_are_relative_to_themselves() {
        for name in PRESETS {
            let c = RunConfig::preset(name).unwrap();
            assert_eq!(c.data.root, PathBuf::new(), "{name}");
            c.validate().unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("configs");
        std::fs::create_dir(&sub).unwrap();
        let p = sub.join("mine.toml");
        std::fs::write(
            &p,
            "preset = \"tiny\"\n[data]\ndataset = \"cifar10\"\nroot = \"../cifar\"\nimage_size = 32\n\
             split = \"official\"\nviews = \"shared\"\naugment = \"cifar\"\n",
        )
        .unwrap();
        let c = RunConfig::load(&p).unwrap();
        assert!(c.data.root.is_absolute(), "{:?}", c.data.root);
        assert_eq!(
            c.data.root,
            std::path::absolute(sub.join("../cifar")).unwrap()
        );
        // Inherited from the preset: still empty, for the command's data-directory rule.
        std::fs::write(&p, "preset = \"nats-c10-cpu\"\n").unwrap();
        assert_eq!(RunConfig::load(&p).unwrap().data.root, PathBuf::new());
        // An absolute root is kept.
        let abs = dir.path().join("abs");
        let c2 = RunConfig {
            data: DataConfig {
                root: abs.clone(),
                ..c.data.clone()
            },
            ..c
        };
        let saved = c2.save_resolved(&sub).unwrap();
        assert_eq!(RunConfig::load(&saved).unwrap().data.root, abs);
        // A run's saved config is read as saved (older runs kept cwd-relative roots).
        let rel = RunConfig {
            data: DataConfig {
                root: PathBuf::from("target/data/cifar10_jpeg"),
                ..c2.data.clone()
            },
            ..c2
        };
        let saved = rel.save_resolved(&sub).unwrap();
        assert_eq!(
            RunConfig::load(&saved).unwrap().data.root,
            PathBuf::from("target/data/cifar10_jpeg")
        );
    }
}
