//! One rule for where every command finds its data: `--data`, else `$BOSSNAS_DATA`, else the
//! user cache (`bossnas_datasets::DataDir`). Datasets, the NATS-Bench ground truth and the
//! official reference scores are all looked up (and fetched when missing) under it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bossnas_config::DatasetKind;
use bossnas_datasets::{
    DataDir, Dataset, FetchPolicy, NatsData, NatsFetchPolicy, ensure, ensure_nats,
};

/// The data directory, absolute (a run's saved config must not depend on the working folder).
pub fn data_dir(flag: Option<&Path>) -> DataDir {
    let mut dir = DataDir::resolve(flag);
    if let Ok(abs) = std::path::absolute(&dir.path) {
        dir.path = abs;
    }
    dir
}

/// The folder holding `kind` under the data directory, fetched (with checksum) when missing.
pub fn dataset_root(kind: DatasetKind, flag: Option<&Path>) -> Result<Option<PathBuf>> {
    let dataset = match kind {
        DatasetKind::Synthetic => return Ok(None),
        DatasetKind::Cifar10 => Dataset::Cifar10,
        DatasetKind::Cifar100 => Dataset::Cifar100,
        DatasetKind::ImageFolder => Dataset::ImageNet,
    };
    let dir = data_dir(flag);
    let policy = FetchPolicy {
        download: true,
        ..FetchPolicy::default()
    };
    let located = ensure(dataset, &dir.path, &policy)
        .with_context(|| format!("{} in the data directory {dir}", dataset.name()))?;
    eprintln!(
        "{}: {} ({})",
        dataset.name(),
        located.root.display(),
        located.how
    );
    Ok(Some(located.root))
}

/// The dataset argument of `retrain`, `eval` and `retrain-sanity`: `synthetic` and existing
/// folders are taken as given; a dataset name (`cifar10`, `cifar100`, `imagenet`) is looked
/// up in the data directory (`$BOSSNAS_DATA`, else the user cache) and, for CIFAR, fetched
/// when missing: the same rule as every other command's data. The result is an absolute path,
/// so a run's saved dataset does not depend on the working folder.
pub fn dataset_arg(text: &str) -> Result<String> {
    let path = Path::new(text);
    if text == "synthetic" {
        return Ok(text.to_string());
    }
    if path.exists() {
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        return Ok(abs.to_string_lossy().into_owned());
    }
    let kind = match text.to_ascii_lowercase().replace('-', "").as_str() {
        "cifar10" => DatasetKind::Cifar10,
        "cifar100" => DatasetKind::Cifar100,
        "imagenet" => DatasetKind::ImageFolder,
        // Not a name: the loader says what a dataset argument may be.
        _ => return Ok(text.to_string()),
    };
    let root = dataset_root(kind, None)?.expect("a named dataset has a root");
    Ok(root.to_string_lossy().into_owned())
}

/// The NATS-Bench ground truth and reference scores under the data directory, downloaded
/// from the BossNAS repository (pinned commit, SHA-256) when missing.
pub fn nats_data(flag: Option<&Path>) -> Result<NatsData> {
    let dir = data_dir(flag);
    let policy = NatsFetchPolicy {
        download: true,
        ..NatsFetchPolicy::default()
    };
    let nats = ensure_nats(&dir.path, &policy)
        .with_context(|| format!("NATS-Bench data in the data directory {dir}"))?;
    if nats.how != "present" {
        eprintln!(
            "NATS-Bench ground truth and reference scores: {} ({})",
            nats.dir.display(),
            nats.how
        );
    }
    Ok(nats)
}

/// `--truth <csv>` if given, else the ground truth under the data directory.
pub fn truth_path(truth: Option<PathBuf>, data: Option<&Path>) -> Result<PathBuf> {
    match truth {
        Some(t) => Ok(t),
        None => Ok(nats_data(data)?.truth()),
    }
}

/// The ground truth if it is already in the data directory (`$BOSSNAS_DATA`, else the cache);
/// never downloads (for optional extras such as the figures' accuracy panel).
pub fn present_truth() -> Option<bench_nats::GroundTruth> {
    let path = data_dir(None).path.join(bossnas_datasets::nats::TRUTH_FILE);
    path.is_file()
        .then(|| bench_nats::GroundTruth::load(&path).ok())
        .flatten()
}
