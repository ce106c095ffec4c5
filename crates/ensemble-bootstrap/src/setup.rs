//! From a [`RunConfig`] to the things a run needs: the supernet of the configured space,
//! the train/rating data and the view loader.
//!
//! The trainer and the rater are generic over [`Supernet`]; [`SpaceKind`] is matched exactly
//! once, in [`with_supernet`], to pick the concrete supernet type.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bossnas_blocks::nats::SlimWidthsConfig;
use bossnas_supernet::Supernet;
use bossnas_supernet::hytra::{HytraSupernet, HytraSupernetConfig};
use bossnas_supernet::mbconv::{MbconvBackboneConfig, MbconvSupernet, MbconvSupernetConfig};
use bossnas_supernet::nats::{NatsSupernet, NatsSupernetConfig};
use burn::tensor::Device;
use hytra_space::SpaceKind;
use hytra_space::nats::NatsSplit;

use bossnas_config::{AugmentPreset, DataSplit, DatasetKind, RunConfig, ViewMode};
use bossnas_datasets::augment::{CropConfig, Normalize};
use bossnas_datasets::split::make_split;
use bossnas_datasets::{
    Cifar100Label, CifarBinary, CifarFileSplit, CorruptImagePolicy, DataError, ImageFolder,
    ImageSource, LoaderConfig, PairMode, RgbImage, Sample, SplitKind, Subset, ViewConfig,
};

/// Errors while setting a run up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The dataset is missing or unreadable; the message says what was looked for and where.
    #[error("dataset: {0}")]
    Data(String),
    /// The configuration cannot be realised.
    #[error("config: {0}")]
    Config(String),
}

impl From<DataError> for SetupError {
    fn from(e: DataError) -> Self {
        SetupError::Data(e.to_string())
    }
}

/// Training and rating data of a run.
#[derive(Clone)]
pub struct DataSetup {
    /// Training images.
    pub train: Arc<dyn ImageSource>,
    /// Held-out images for rating (spec §5.2).
    pub rating: Arc<dyn ImageSource>,
    /// One line for logs.
    pub description: String,
}

impl std::fmt::Debug for DataSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

/// Seeded random RGB images (value noise on a coarse grid, so convolutions see some structure)
/// with labels `index % classes`. Deterministic in (seed, index).
#[derive(Debug, Clone)]
pub struct SyntheticImages {
    /// Number of images.
    pub len: usize,
    /// Square size in pixels.
    pub size: usize,
    /// Seed.
    pub seed: u64,
    /// Label count.
    pub classes: usize,
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl ImageSource for SyntheticImages {
    fn len(&self) -> usize {
        self.len
    }
    fn num_classes(&self) -> usize {
        self.classes
    }
    fn get(&self, index: usize) -> Result<Sample, DataError> {
        if index >= self.len {
            return Err(DataError::IndexOutOfRange {
                index,
                len: self.len,
            });
        }
        let s = self.size;
        let base = splitmix(self.seed ^ splitmix(index as u64));
        let cell = (s / 4).max(1);
        let mut data = Vec::with_capacity(s * s * 3);
        for y in 0..s {
            for x in 0..s {
                let coarse = splitmix(base ^ (((y / cell) * 64 + x / cell) as u64));
                let fine = splitmix(base ^ 0xF1E ^ ((y * s + x) as u64));
                for c in 0..3 {
                    let v = ((coarse >> (8 * c)) & 0xFF) as u32 * 3 / 4
                        + ((fine >> (8 * c)) & 0x3F) as u32;
                    data.push(v.min(255) as u8);
                }
            }
        }
        Ok(Sample {
            image: RgbImage::new(s, s, data)?,
            label: index % self.classes,
        })
    }
    fn describe(&self) -> String {
        format!(
            "synthetic {} images {}x{} (seed {})",
            self.len, self.size, self.size, self.seed
        )
    }
}

/// Training and test sources.
pub type SourcePair = (Arc<dyn ImageSource>, Arc<dyn ImageSource>);

/// CIFAR-10 train and test sources under `root`: the binary batches or the JPEG/PNG image
/// tree (see the error message for the accepted layouts).
pub fn cifar10_sources(root: &Path) -> Result<SourcePair, String> {
    // 1. Binary batches: root/data_batch_1.bin or root/cifar-10-batches-bin/data_batch_1.bin.
    let bin_candidates = [root.to_path_buf(), root.join("cifar-10-batches-bin")];
    if bin_candidates
        .iter()
        .any(|d| d.join("data_batch_1.bin").is_file())
    {
        let train = CifarBinary::cifar10(root, CifarFileSplit::Train).map_err(|e| e.to_string())?;
        let test = CifarBinary::cifar10(root, CifarFileSplit::Test).map_err(|e| e.to_string())?;
        return Ok((Arc::new(train), Arc::new(test)));
    }
    // 2. JPEG/PNG ImageFolder tree: root/{train,test}/<class>/*.jpg, also under cifar10_jpeg/.
    for dir in [root.to_path_buf(), root.join("cifar10_jpeg")] {
        if dir.join("train").is_dir() && dir.join("test").is_dir() {
            let train = ImageFolder::new(dir.join("train")).map_err(|e| e.to_string())?;
            let test = ImageFolder::new(dir.join("test")).map_err(|e| e.to_string())?;
            return Ok((Arc::new(train), Arc::new(test)));
        }
    }
    Err(format!(
        "no CIFAR-10 found under {root}. Expected either the binary batches \
         (data_batch_1.bin .. data_batch_5.bin and test_batch.bin in {root} or in \
         {root}/cifar-10-batches-bin/), or an image tree {root}/train/<class>/*.jpg and \
         {root}/test/<class>/*.jpg (also accepted under {root}/cifar10_jpeg/). The JPEG tree \
         comes from unpacking ../shared/data/cifar10-jpeg/cifar10-jpeg.tar.gz, e.g. \
         `mkdir -p target/data && tar xzf ../shared/data/cifar10-jpeg/cifar10-jpeg.tar.gz -C \
         target/data` and then `--data target/data/cifar10_jpeg`",
        root = root.display()
    ))
}

/// Runs using at most this many images decode them all before training (CIFAR-10's 60,000
/// JPEGs take seconds on 2 cores); above it (ImageNet) a bad file is met when loaded and
/// handled per `CorruptImagePolicy`.
pub const VERIFY_IMAGES_UP_TO: usize = 200_000;

/// Decodes every item of `src` (in parallel) so a corrupt file is reported before the first
/// step and before the first checkpoint; the error names the lowest-index bad file.
pub fn verify_images(src: &dyn ImageSource) -> Result<(), DataError> {
    use rayon::prelude::*;
    if src.len() > VERIFY_IMAGES_UP_TO {
        return Ok(());
    }
    match (0..src.len())
        .into_par_iter()
        .filter_map(|i| src.get(i).err().map(|e| (i, e)))
        .min_by_key(|(i, _)| *i)
    {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

/// Opens the configured dataset, applies the split and subset caps, and decodes every image
/// the run uses ([`verify_images`]).
pub fn open_data(cfg: &RunConfig) -> Result<DataSetup, SetupError> {
    let d = &cfg.data;
    let root: PathBuf = d.root.clone();
    if d.dataset != DatasetKind::Synthetic && root.as_os_str().is_empty() {
        return Err(SetupError::Data(
            "data.root is empty: the command resolves it from --data <dir>, else \
             $BOSSNAS_DATA, else the user cache directory; set one of them (or data.root in a \
             config file)"
                .into(),
        ));
    }
    let (train, test): (Arc<dyn ImageSource>, Option<Arc<dyn ImageSource>>) = match d.dataset {
        DatasetKind::Synthetic => {
            let train = SyntheticImages {
                len: d.synthetic_size,
                size: d.image_size,
                seed: cfg.seed ^ 0x5157_7E71,
                classes: 10,
            };
            let test = SyntheticImages {
                len: if d.rating_subset > 0 {
                    d.rating_subset
                } else {
                    d.synthetic_size.div_ceil(4).max(2)
                },
                seed: cfg.seed ^ 0x7E57,
                ..train.clone()
            };
            (Arc::new(train), Some(Arc::new(test)))
        }
        DatasetKind::Cifar10 => {
            let (a, b) = cifar10_sources(&root).map_err(SetupError::Data)?;
            (a, Some(b))
        }
        DatasetKind::Cifar100 => {
            let train = CifarBinary::cifar100(&root, CifarFileSplit::Train, Cifar100Label::Fine)
                .map_err(|e| {
                    SetupError::Data(format!(
                        "{e}; expected CIFAR-100 binaries train.bin and test.bin in {r} or \
                         {r}/cifar-100-binary/",
                        r = root.display()
                    ))
                })?;
            let test = CifarBinary::cifar100(&root, CifarFileSplit::Test, Cifar100Label::Fine)?;
            (Arc::new(train), Some(Arc::new(test)))
        }
        DatasetKind::ImageFolder => {
            let (tr, va) = (root.join("train"), root.join("val"));
            if !tr.is_dir() || !va.is_dir() {
                return Err(SetupError::Data(format!(
                    "expected an ImageFolder tree {}/<class>/*.jpg and {}/<class>/*.jpg",
                    tr.display(),
                    va.display()
                )));
            }
            (
                Arc::new(ImageFolder::new(&tr)?),
                Some(Arc::new(ImageFolder::new(&va)?)),
            )
        }
    };
    let kind = match d.split {
        DataSplit::Official => SplitKind::Official,
        DataSplit::NatsHalves => SplitKind::NatsHalves { seed: cfg.seed },
    };
    let (tr, ev, info) = make_split(kind, train, test)?;
    let tr = if d.train_subset > 0 {
        tr.cap(d.train_subset, cfg.seed)
    } else {
        tr
    };
    let ev: Subset = if d.rating_subset > 0 {
        ev.cap(d.rating_subset, cfg.seed ^ 1)
    } else {
        ev
    };
    verify_images(&tr)?;
    verify_images(&ev)?;
    let description = format!("{info}; training on {}", tr.describe());
    Ok(DataSetup {
        train: Arc::new(tr),
        rating: Arc::new(ev),
        description,
    })
}

/// The training loader configuration for `cfg`.
pub fn loader_config(cfg: &RunConfig) -> LoaderConfig {
    let d = &cfg.data;
    let size = d.image_size;
    let (view1, view2) = match d.augment {
        AugmentPreset::Cifar => {
            let mut v = ViewConfig::cifar();
            v.crop = CropConfig::PadCrop {
                size,
                padding: (size / 8).max(1),
            };
            (v.clone(), v)
        }
        AugmentPreset::Imagenet => (
            ViewConfig::imagenet_view1(size),
            ViewConfig::imagenet_view2(size),
        ),
        AugmentPreset::Minimal => {
            let mut v = ViewConfig::cifar();
            v.crop = CropConfig::None;
            v.normalize = Normalize::CIFAR;
            (v.clone(), v)
        }
    };
    LoaderConfig {
        batch_size: cfg.train.batch_size,
        seed: cfg.seed,
        shuffle: true,
        drop_last: true,
        pair_mode: match d.views {
            ViewMode::Shared => PairMode::Shared,
            ViewMode::PerPath => PairMode::PerPath(cfg.train.paths_per_step),
        },
        view1,
        view2,
        corrupt_policy: CorruptImagePolicy::Fail,
        num_threads: d.num_workers.max(1),
        repeats: 1,
    }
}

/// Whether the space's adapters also reduce space (HyTra `fix_channels`) or only map
/// channels (NATS `channel_fix`).
pub fn spatial_adapters(kind: SpaceKind) -> bool {
    matches!(kind, SpaceKind::Hytra)
}

/// Work to do with the supernet of a run, whatever its space (training, rating): handed the
/// configuration and a builder of the configured space's supernet by [`with_supernet`].
pub trait SupernetTask {
    /// What the task returns.
    type Output;
    /// Runs the task with the supernet `build` makes (on the device the task chooses).
    fn run<S: Supernet + 'static>(
        self,
        cfg: RunConfig,
        build: impl FnOnce(&Device) -> S,
    ) -> Self::Output;
}

/// Runs `task` with the supernet of `cfg`'s space: the one match on [`SpaceKind`] (adding a
/// space adds an arm here and nowhere else in training or rating).
pub fn with_supernet<T: SupernetTask>(cfg: RunConfig, task: T) -> Result<T::Output, SetupError> {
    Ok(match cfg.space.kind {
        SpaceKind::Nats => {
            let c = cfg.clone();
            task.run(cfg, move |d| nats_supernet(&c, d))
        }
        SpaceKind::Hytra => {
            let hc = hytra_config(&cfg)?;
            task.run(cfg, move |d| hc.init(d))
        }
        SpaceKind::Mbconv => {
            let mc = mbconv_config(&cfg)?;
            task.run(cfg, move |d| mc.init(d))
        }
    })
}

/// The NATS supernet of `cfg` (`space.widths` = the candidate widths).
pub fn nats_supernet(cfg: &RunConfig, device: &Device) -> NatsSupernet {
    let split = cfg.space.nats_split.unwrap_or(NatsSplit::Cifar10);
    NatsSupernetConfig::new()
        .with_split(split)
        .with_widths(SlimWidthsConfig::new().with_widths(cfg.space.widths.clone()))
        .init(device)
}

/// The HyTra supernet configuration of `cfg`: `space.widths` empty = official widths, or the
/// four per-scale widths `[2048, 1024, 512, 256] / d` of [`HytraSupernetConfig::reduced`].
pub fn hytra_config(cfg: &RunConfig) -> Result<HytraSupernetConfig, SetupError> {
    let base = match cfg.space.widths.as_slice() {
        [] => HytraSupernetConfig::new(),
        [w0, ..] if cfg.space.widths.len() == 4 && *w0 > 0 && 2048 % w0 == 0 => {
            let d = 2048 / w0;
            let c = HytraSupernetConfig::reduced(d);
            if c.channels.to_vec() != cfg.space.widths || 64 % d != 0 {
                return Err(SetupError::Config(format!(
                    "space.widths = {:?}: HyTra widths must be [2048, 1024, 512, 256] divided \
                     by a divisor of 64",
                    cfg.space.widths
                )));
            }
            c
        }
        w => {
            return Err(SetupError::Config(format!(
                "space.widths = {w:?}: HyTra takes [] (official) or [2048, 1024, 512, 256]/d"
            )));
        }
    };
    Ok(base.with_orientation(cfg.space.attention))
}

/// The MBConv supernet configuration of `cfg`: `space.widths` empty = official, or the five
/// searched block widths.
pub fn mbconv_config(cfg: &RunConfig) -> Result<MbconvSupernetConfig, SetupError> {
    let mut bb = MbconvBackboneConfig::new();
    match cfg.space.widths.len() {
        0 => {}
        5 => bb.block_channels = cfg.space.widths.clone(),
        _ => {
            return Err(SetupError::Config(format!(
                "space.widths = {:?}: MBConv takes [] (official) or the 5 block widths",
                cfg.space.widths
            )));
        }
    }
    Ok(MbconvSupernetConfig::new().with_backbone(bb))
}

/// Builds the HyTra supernet of `cfg`.
pub fn hytra_supernet(cfg: &RunConfig, device: &Device) -> Result<HytraSupernet, SetupError> {
    Ok(hytra_config(cfg)?.init(device))
}

/// Builds the MBConv supernet of `cfg`.
pub fn mbconv_supernet(cfg: &RunConfig, device: &Device) -> Result<MbconvSupernet, SetupError> {
    Ok(mbconv_config(cfg)?.init(device))
}
