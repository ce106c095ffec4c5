//! The data of the BossNAS protocols: where it lives, how it gets there, how it is read, and
//! how it becomes training views.
//!
//! Finding and fetching:
//! - [`location`]: the data directory — `--data`, else `$BOSSNAS_DATA`, else the user cache
//!   (`~/.cache/bossnas` on Linux).
//! - [`catalog`]: the datasets the suites need (CIFAR-10, CIFAR-100, ImageNet), the layouts
//!   accepted for each, and their official archives with checksums.
//! - [`fetch`]: streaming download with MD5 verification and atomic extraction, so an
//!   interrupted or corrupt download never leaves a half-written dataset behind.
//! - [`nats`]: the NATS-Bench SSS CIFAR-10 ground truth and the official BossNAS reference
//!   scores, downloaded from the BossNAS repository at a pinned commit (SHA-256) and
//!   converted into the CSV layout the project reads ([`ensure_nats`]).
//!
//! [`ensure`] ties them together: find a dataset under the data directory, else unpack a
//! local copy of its archive, else download it; when nothing works the error says which
//! files, in which layout, where it looked, and how to provide them by hand.
//!
//! Reading (spec §3.3, §4.6, §5.2, §6.5), bottom-up:
//! - [`image`]: [`RgbImage`], [`Sample`] and the [`ImageSource`] trait: indexable labelled
//!   RGB images, decoded on demand ([`cifar::CifarBinary`], [`folder::ImageFolder`],
//!   [`split::Subset`]).
//! - [`split`]: train / held-out splits (official or the NATS-style 25k/25k) and size caps.
//! - [`augment`]: BYOL view augmentations on `u8` HWC images, driven by a seeded RNG;
//!   [`rand_augment`] (timm RandAugment) and [`resample`] (Pillow-style antialiased resize,
//!   resize + centre crop) for supervised retraining views.
//! - [`loader`] (cargo feature `tensors`, on by default; the only module that needs Burn):
//!   parallel decode + augment into `[B, 3, H, W]` view-pair tensors, with a resumable
//!   [`loader::DataPosition`].
//!
//! Everything but the loader is free of Burn, so the parsers of outside files (CIFAR
//! binaries, image files) can be fuzzed without building a tensor library (`fuzz/`).
//!
//! We do not use burn-dataset's `ImageFolderDataset`: in 0.22.1 its item mapper does
//! `image::open(..).unwrap()` (a corrupt file panics instead of returning an error), and its
//! `vision` feature pulls in `network` and the full default `image` codec set (avif/rav1e).
//! The `image` crate with only `jpeg` + `png` is all we need.

pub mod augment;
pub mod catalog;
pub mod cifar;
pub mod fetch;
pub mod folder;
pub mod image;
#[cfg(feature = "tensors")]
pub mod loader;
pub mod location;
pub mod nats;
pub mod rand_augment;
pub mod resample;
pub mod split;

use std::path::{Path, PathBuf};

pub use catalog::{Dataset, RemoteArchive};
pub use fetch::{download_sha256, download_verified, extract_tar_gz, sha256_hex};
pub use location::{DATA_ENV, DataDir, DataDirOrigin};
pub use nats::{NatsData, NatsFetchPolicy, ensure_nats};

pub use augment::{ViewConfig, ViewRng};
pub use cifar::{Cifar100Label, CifarBinary, CifarFileSplit, CifarLayout};
pub use folder::{CorruptImagePolicy, ImageFolder};
pub use image::{ImageSource, RgbImage, Sample, shared_data_dir};
#[cfg(feature = "tensors")]
pub use loader::{DataPosition, LoaderConfig, PairMode, ViewLoader, ViewPairs};
pub use split::{SplitInfo, SplitKind, Subset};

/// Everything that can go wrong while locating, fetching, reading or preparing data. Every
/// variant that concerns a file names it, so a bad file in a 60k-image tree can be found
/// without a debugger; the fetch errors say what to do about them.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("downloading {url} failed: {reason}")]
    Download { url: String, reason: String },
    #[error(
        "{url}: checksum mismatch: expected {algorithm} {expected}, got {actual} ({bytes} \
         bytes); the download was discarded"
    )]
    Checksum {
        url: String,
        algorithm: &'static str,
        expected: String,
        actual: String,
        bytes: u64,
    },
    #[error("{path}: not a valid .tar.gz archive: {reason}")]
    Archive { path: PathBuf, reason: String },
    #[error("{0}")]
    Missing(String),
    #[error(
        "{path}: truncated record {record}: file has {len} bytes, not a multiple of the {record_size}-byte record"
    )]
    TruncatedRecord {
        path: PathBuf,
        record: usize,
        len: u64,
        record_size: usize,
    },
    #[error("{path}: record {record}: label {label} out of range (must be < {num_classes})")]
    BadLabel {
        path: PathBuf,
        record: usize,
        label: u8,
        num_classes: usize,
    },
    #[error("{path}: corrupt or unreadable image: {reason}")]
    CorruptImage { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Layout { path: PathBuf, reason: String },
    #[error("index {index} out of range for a dataset of {len} items")]
    IndexOutOfRange { index: usize, len: usize },
    #[error("invalid data configuration: {0}")]
    Config(String),
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How [`ensure`] may obtain a dataset that is not yet in the data directory.
#[derive(Debug, Clone, Default)]
pub struct FetchPolicy {
    /// Local `.tar.gz` copies to try before the network, e.g. the shared CIFAR-10 JPEG archive.
    pub local_archives: Vec<PathBuf>,
    /// Download from the official address when no local copy exists.
    pub download: bool,
    /// Replace the official address (tests serve an archive from 127.0.0.1).
    pub url_override: Option<String>,
    /// Replace the official MD5 (tests; the checksum is always verified).
    pub md5_override: Option<String>,
}

/// Where a dataset was found and how it got there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The directory holding the dataset's files (what a config's `data.root` should be).
    pub root: PathBuf,
    /// `"present"`, `"unpacked <archive>"` or `"downloaded <url>"`.
    pub how: String,
}

/// Finds `dataset` under `dir`, else unpacks one of the policy's local archives into `dir`,
/// else downloads its official archive (with checksum) into `dir`. The error of a dataset that
/// cannot be obtained says where it looked, the expected layout and how to provide it.
pub fn ensure(dataset: Dataset, dir: &Path, policy: &FetchPolicy) -> Result<Located, DataError> {
    if let Some(root) = dataset.find(dir) {
        return Ok(Located {
            root,
            how: "present".into(),
        });
    }
    let mut tried = Vec::new();
    for archive in &policy.local_archives {
        if !archive.is_file() {
            tried.push(format!("{} (no such file)", archive.display()));
            continue;
        }
        extract_tar_gz(archive, dir)?;
        if let Some(root) = dataset.find(dir) {
            return Ok(Located {
                root,
                how: format!("unpacked {}", archive.display()),
            });
        }
        tried.push(format!(
            "{} (unpacked, but it does not hold {})",
            archive.display(),
            dataset.name()
        ));
    }
    let remote = dataset.remote();
    let mut download_error = None;
    if let (Some(remote), true) = (remote, policy.download) {
        let url = policy.url_override.as_deref().unwrap_or(remote.url);
        let md5 = policy.md5_override.as_deref().unwrap_or(remote.md5);
        let archive = dir.join(remote.file_name);
        match download_verified(url, md5, &archive) {
            Ok(_) => {
                let unpacked = extract_tar_gz(&archive, dir);
                // The archive is only a vehicle: keep the cache to the unpacked files.
                let _ = std::fs::remove_file(&archive);
                unpacked?;
                if let Some(root) = dataset.find(dir) {
                    return Ok(Located {
                        root,
                        how: format!("downloaded {url}"),
                    });
                }
                tried.push(format!(
                    "{url} (downloaded, but it does not hold the layout)"
                ));
            }
            Err(e) => download_error = Some(e.to_string()),
        }
    }
    Err(DataError::Missing(dataset.missing_message(
        dir,
        &tried,
        download_error.as_deref(),
        policy.download,
    )))
}
