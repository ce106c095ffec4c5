//! Training and test data of a retraining run, on top of the `ensemble_bootstrap` data
//! pipeline (CIFAR binaries, the CIFAR-10 JPEG tree, ImageNet-style folders, synthetic images;
//! deterministic parallel [`ViewLoader`] with a resumable position).
//!
//! `--data` is a directory, or `synthetic` (seeded noise images, for CI).

use std::path::Path;
use std::sync::Arc;

use bossnas_datasets::augment::{CropConfig, Interpolation, Normalize};
use bossnas_datasets::rand_augment::RandAugment;
use bossnas_datasets::{
    CorruptImagePolicy, ImageFolder, ImageSource, LoaderConfig, PairMode, Subset, ViewConfig,
    ViewLoader,
};
use ensemble_bootstrap::setup::{SyntheticImages, cifar10_sources};

use crate::RetrainError;
use crate::recipe::{REPEATED_AUG_COPIES, Recipe, TrainCrop};

/// The `--data` value that selects synthetic images.
pub const SYNTHETIC: &str = "synthetic";

/// Train and test images of a run.
#[derive(Clone)]
pub struct Sources {
    /// Training images (after `data.train_subset`).
    pub train: Arc<dyn ImageSource>,
    /// Test images (after `data.test_subset`).
    pub test: Arc<dyn ImageSource>,
    /// Classes (the classifier width).
    pub num_classes: usize,
    /// One line for logs.
    pub description: String,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

/// Opens `data` (a directory or [`SYNTHETIC`]) and applies the recipe's subset caps.
///
/// Directories: CIFAR-10 binaries or JPEG tree (`train/`, `test/`), or an ImageNet-style
/// `train/` + `val/` class-folder tree.
pub fn open_sources(data: &str, recipe: &Recipe) -> Result<Sources, RetrainError> {
    let d = &recipe.data;
    let (train, test): (Arc<dyn ImageSource>, Arc<dyn ImageSource>) = if data == SYNTHETIC {
        let train = SyntheticImages {
            len: d.synthetic[0],
            size: d.image_size,
            seed: recipe.seed ^ 0x5157_7E71,
            classes: 10,
        };
        let test = SyntheticImages {
            len: d.synthetic[1],
            seed: recipe.seed ^ 0x7E57,
            ..train.clone()
        };
        (Arc::new(train), Arc::new(test))
    } else {
        let root = Path::new(data);
        if !root.is_dir() {
            return Err(RetrainError::Data(format!(
                "{data}: not a directory (give a CIFAR-10 directory, an image tree with \
                 train/ and val/, or `{SYNTHETIC}`)"
            )));
        }
        match cifar10_sources(root) {
            Ok(pair) => pair,
            Err(cifar_err) => {
                if root.join("train").is_dir() && root.join("val").is_dir() {
                    let train = ImageFolder::new(root.join("train"))?;
                    let val = ImageFolder::new(root.join("val"))?;
                    (Arc::new(train), Arc::new(val))
                } else {
                    return Err(RetrainError::Data(format!(
                        "{cifar_err}; an ImageNet-style {data}/train/ + {data}/val/ tree is \
                         accepted too"
                    )));
                }
            }
        }
    };
    if train.num_classes() != test.num_classes() {
        return Err(RetrainError::Data(format!(
            "{} has {} classes but {} has {}",
            train.describe(),
            train.num_classes(),
            test.describe(),
            test.num_classes()
        )));
    }
    let cap = |s: Arc<dyn ImageSource>, max: usize, salt: u64| -> Arc<dyn ImageSource> {
        if max == 0 || max >= s.len() {
            s
        } else {
            Arc::new(Subset::all(s).cap(max, recipe.seed ^ salt))
        }
    };
    let train = cap(train, d.train_subset, 0x7121);
    let test = cap(test, d.test_subset, 0x7E57);
    if train.is_empty() || test.is_empty() {
        return Err(RetrainError::Data(format!(
            "{data}: no images (train {}, test {})",
            train.len(),
            test.len()
        )));
    }
    let num_classes = train.num_classes();
    let description = format!(
        "train: {} images; test: {} images; {num_classes} classes",
        train.len(),
        test.len()
    );
    Ok(Sources {
        train,
        test,
        num_classes,
        description,
    })
}

fn normalize(recipe: &Recipe) -> Normalize {
    match recipe.data.normalize.as_str() {
        "imagenet" => Normalize::IMAGENET,
        _ => Normalize::CIFAR,
    }
}

/// timm's fill colour for RandAugment's geometric ops: the normalisation mean × 255, rounded.
fn mean_colour(norm: &Normalize) -> [u8; 3] {
    norm.mean
        .map(|m| (m * 255.0).round().clamp(0.0, 255.0) as u8)
}

/// The training view: crop, flip, RandAugment (if the recipe names a policy), normalisation.
pub fn train_view(recipe: &Recipe) -> Result<ViewConfig, RetrainError> {
    let d = &recipe.data;
    let crop = match d.train_crop {
        TrainCrop::PadCrop => CropConfig::PadCrop {
            size: d.image_size,
            padding: d.padding,
        },
        // timm/DeiT: `--train-interpolation bicubic`.
        TrainCrop::RandomResized => CropConfig::RandomResized {
            size: d.image_size,
            scale: [0.08, 1.0],
            ratio: [3.0 / 4.0, 4.0 / 3.0],
            interpolation: Interpolation::PilBicubic,
        },
        TrainCrop::None => CropConfig::None,
    };
    let norm = normalize(recipe);
    let policy = recipe.regularization.rand_augment.trim();
    let rand_augment = if policy.is_empty() {
        None
    } else {
        Some(
            RandAugment::parse(policy, mean_colour(&norm))
                .map_err(|e| RetrainError::Recipe(format!("regularization.rand_augment: {e}")))?,
        )
    };
    Ok(ViewConfig {
        rand_augment,
        ..ViewConfig::plain(crop, d.hflip_p, norm)
    })
}

/// The evaluation view: with `eval_crop_pct` < 1, shorter side to `⌊size / pct⌋` and a centred
/// `size` square (timm/DeiT); else the image as it is. Normalised.
pub fn eval_view(recipe: &Recipe) -> ViewConfig {
    let d = &recipe.data;
    let crop = if d.eval_crop_pct < 1.0 {
        CropConfig::ResizeCenterCrop {
            resize: (d.image_size as f64 / d.eval_crop_pct).floor() as usize,
            size: d.image_size,
        }
    } else {
        CropConfig::None
    };
    ViewConfig::plain(crop, 0.0, normalize(recipe))
}

/// Shuffled, drop-last training batches (view 1 of a shared pair is the training image).
pub fn train_loader(
    source: Arc<dyn ImageSource>,
    recipe: &Recipe,
) -> Result<ViewLoader, RetrainError> {
    let v = train_view(recipe)?;
    let cfg = LoaderConfig {
        batch_size: recipe.schedule.batch_size,
        seed: recipe.seed,
        shuffle: true,
        drop_last: true,
        pair_mode: PairMode::Shared,
        view1: v.clone(),
        view2: v,
        corrupt_policy: CorruptImagePolicy::Fail,
        num_threads: recipe.data.num_threads,
        repeats: if recipe.regularization.repeated_aug {
            REPEATED_AUG_COPIES
        } else {
            1
        },
    };
    ViewLoader::new(source, cfg).map_err(|e| {
        RetrainError::Data(format!(
            "{e} (schedule.batch_size = {}; lower it or use more images)",
            recipe.schedule.batch_size
        ))
    })
}

/// In-order evaluation batches (every image once).
pub fn eval_loader(
    source: Arc<dyn ImageSource>,
    recipe: &Recipe,
) -> Result<ViewLoader, RetrainError> {
    let v = eval_view(recipe);
    let cfg = LoaderConfig {
        batch_size: recipe.data.eval_batch_size,
        seed: recipe.seed,
        shuffle: false,
        drop_last: false,
        pair_mode: PairMode::Shared,
        // The second view is not used: keep it the same (cheap, same size).
        view1: v.clone(),
        view2: v,
        corrupt_policy: CorruptImagePolicy::Fail,
        num_threads: recipe.data.num_threads,
        repeats: 1,
    };
    Ok(ViewLoader::new(source, cfg)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_and_missing_directories() {
        let r = Recipe::preset("tiny").unwrap();
        let s = open_sources(SYNTHETIC, &r).unwrap();
        assert_eq!((s.train.len(), s.test.len(), s.num_classes), (32, 16, 10));
        let e = open_sources("/nonexistent/cifar", &r)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/cifar"), "{e}");
        let empty = tempfile::tempdir().unwrap();
        let e = open_sources(empty.path().to_str().unwrap(), &r)
            .unwrap_err()
            .to_string();
        assert!(e.contains("CIFAR-10") && e.contains("val/"), "{e}");
    }

    #[test]
    fn deit_views_and_sampler() {
        let r = Recipe::preset("deit").unwrap();
        let v = train_view(&r).unwrap();
        let ra = v.rand_augment.clone().expect("deit uses RandAugment");
        assert_eq!(
            (ra.magnitude, ra.magnitude_std, ra.increasing),
            (9.0, 0.5, true)
        );
        assert_eq!(ra.fill, [124, 116, 104]); // timm's img_mean for ImageNet
        assert!(matches!(
            v.crop,
            CropConfig::RandomResized {
                size: 224,
                interpolation: Interpolation::PilBicubic,
                ..
            }
        ));
        let img = bossnas_datasets::RgbImage::zeros(300, 250);
        let mut rng = <bossnas_datasets::ViewRng as rand::SeedableRng>::seed_from_u64(1);
        let out = v.augment(&img, &mut rng).unwrap();
        assert_eq!((out.width, out.height), (224, 224));
        let e = eval_view(&r).augment(&img, &mut rng).unwrap();
        assert_eq!((e.width, e.height), (224, 224));
        assert_eq!(
            eval_view(&r).crop,
            CropConfig::ResizeCenterCrop {
                resize: 256,
                size: 224
            }
        );
        let nats = Recipe::preset("nats-cifar").unwrap();
        assert!(train_view(&nats).unwrap().rand_augment.is_none());
        assert_eq!(eval_view(&nats).crop, CropConfig::None);
        // Repeated augmentation: batches hold each drawn image three times in a row.
        let mut tiny = Recipe::preset("tiny").unwrap();
        tiny.regularization.repeated_aug = true;
        tiny.schedule.batch_size = 6;
        let s = open_sources(SYNTHETIC, &tiny).unwrap();
        let l = train_loader(s.train, &tiny).unwrap();
        assert_eq!(l.config().repeats, REPEATED_AUG_COPIES);
        let idx = l.batch_indices(0, 0);
        assert!(idx[..3].iter().all(|&i| i == idx[0]) && idx[3..].iter().all(|&i| i == idx[3]));
    }

    #[test]
    fn real_cifar_fixture_through_the_loader() {
        // The 20 exact CIFAR-10 test images in the official binary layout, as every batch.
        let shared = bossnas_datasets::shared_data_dir().unwrap();
        let bin = std::fs::read(shared.join("cifar-exact/cifar10_test_first20.bin")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "data_batch_1.bin",
            "data_batch_2.bin",
            "data_batch_3.bin",
            "data_batch_4.bin",
            "data_batch_5.bin",
            "test_batch.bin",
        ] {
            std::fs::write(dir.path().join(f), &bin).unwrap();
        }
        let mut r = Recipe::preset("tiny").unwrap();
        r.data.train_subset = 0;
        let s = open_sources(dir.path().to_str().unwrap(), &r).unwrap();
        assert_eq!((s.train.len(), s.test.len()), (100, 16));
        let mut l = train_loader(s.train.clone(), &r).unwrap();
        let b = l.next_batch(&burn::tensor::Device::flex()).unwrap();
        assert_eq!(b.pairs[0].0.dims(), [8, 3, 32, 32]);
        assert!(b.labels.iter().all(|&l| l < 10));
    }
}
