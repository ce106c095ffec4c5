//! Parallel, deterministic, resumable view-pair loader (spec §3.3, §5.2).
//!
//! Every random choice is derived from the seed by hashing, never from shared RNG state:
//! - the epoch order is a permutation seeded by (seed, epoch);
//! - view `slot` of dataset item `index` in epoch `epoch` uses an RNG seeded by
//!   (seed, epoch, index, slot).
//!
//! So a batch is a pure function of ([`DataPosition`], config, data): it does not depend on how
//! rayon schedules the work, and restoring a saved position reproduces the following batches
//! bit for bit. The same property gives the "fixed views" of the rating stage (§5.2): loading
//! the same indices with the same epoch for every candidate yields identical views.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::augment::{ViewConfig, ViewRng};
use crate::folder::CorruptImagePolicy;
use crate::{DataError, ImageSource};

/// How many view pairs a sample yields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PairMode {
    /// One pair shared by every sampled path (NATS, OpenSelfSup `BYOLDataset`).
    Shared,
    /// `P` independent pairs, pair `p` for path `p` (HyTra/MBConv `MultiAugBYOLDataset`, P = 4).
    PerPath(usize),
}

impl PairMode {
    pub fn num_pairs(self) -> usize {
        match self {
            PairMode::Shared => 1,
            PairMode::PerPath(p) => p,
        }
    }
}

/// Loader settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoaderConfig {
    pub batch_size: usize,
    pub seed: u64,
    /// Shuffle the order each epoch (training); off keeps index order (rating).
    pub shuffle: bool,
    /// Drop the last incomplete batch (keeps BN batch statistics comparable).
    pub drop_last: bool,
    pub pair_mode: PairMode,
    /// `pipeline1`: the first view of every pair.
    pub view1: ViewConfig,
    /// `pipeline2`: the second view of every pair.
    pub view2: ViewConfig,
    pub corrupt_policy: CorruptImagePolicy,
    /// Worker threads for decode + augment; 0 = all available cores.
    pub num_threads: usize,
    /// Repeated augmentation (DeiT's `RASampler`): each epoch takes `⌈n / repeats⌉` items of
    /// the permutation, each `repeats` times in a row with independent views, `n` rows in all.
    /// 1 = every item once.
    #[serde(default = "one_copy")]
    pub repeats: usize,
}

fn one_copy() -> usize {
    1
}

impl LoaderConfig {
    /// NATS/CIFAR training: shuffled, shared pair, CIFAR views.
    pub fn cifar(batch_size: usize, seed: u64) -> Self {
        LoaderConfig {
            batch_size,
            seed,
            shuffle: true,
            drop_last: true,
            pair_mode: PairMode::Shared,
            view1: ViewConfig::cifar(),
            view2: ViewConfig::cifar(),
            corrupt_policy: CorruptImagePolicy::Fail,
            num_threads: 0,
            repeats: 1,
        }
    }

    /// HyTra/MBConv ImageNet training: 4 independent pairs of the official two pipelines.
    pub fn imagenet(batch_size: usize, seed: u64, size: usize) -> Self {
        LoaderConfig {
            pair_mode: PairMode::PerPath(4),
            view1: ViewConfig::imagenet_view1(size),
            view2: ViewConfig::imagenet_view2(size),
            ..Self::cifar(batch_size, seed)
        }
    }
}

/// Where the loader stands: the *next* batch to produce. Save it with a checkpoint and
/// [`ViewLoader::restore`] it to continue with exactly the same batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPosition {
    pub seed: u64,
    pub epoch: u64,
    pub batch: u64,
}

/// One batch of views. `pairs[p] = (view1_p, view2_p)`, each `[B, 3, H, W]`.
#[derive(Debug)]
pub struct ViewPairs {
    pub pairs: Vec<(Tensor<4>, Tensor<4>)>,
    /// Loader-level indices of the rows, in row order.
    pub indices: Vec<usize>,
    pub labels: Vec<usize>,
    /// Indices dropped as corrupt (only under [`CorruptImagePolicy::Skip`]); `B` shrinks by
    /// that many rather than silently duplicating other samples.
    pub skipped: Vec<usize>,
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The RNG seed of view `slot` (pair p: slot 2p = view 1, 2p + 1 = view 2) of item `index`.
pub fn view_seed(seed: u64, epoch: u64, index: usize, slot: usize) -> u64 {
    let mut h = splitmix64(seed);
    for v in [epoch, index as u64, slot as u64] {
        h = splitmix64(h ^ v);
    }
    h
}

/// Per-item host result: labels and `2P` normalised CHW views with their (h, w).
type ItemViews = (usize, Vec<(Vec<f32>, usize, usize)>);

/// Decodes and augments batches of an [`ImageSource`] on a private rayon pool.
pub struct ViewLoader {
    source: Arc<dyn ImageSource>,
    cfg: LoaderConfig,
    pos: DataPosition,
    pool: rayon::ThreadPool,
    skipped_total: AtomicUsize,
}

impl ViewLoader {
    pub fn new(source: Arc<dyn ImageSource>, cfg: LoaderConfig) -> Result<Self, DataError> {
        cfg.view1.validate()?;
        cfg.view2.validate()?;
        if cfg.batch_size == 0 || cfg.pair_mode.num_pairs() == 0 || cfg.repeats == 0 {
            return Err(DataError::Config(
                "batch_size, repeats and the number of pairs must be positive".into(),
            ));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(cfg.num_threads)
            .thread_name(|i| format!("view-loader-{i}"))
            .build()
            .map_err(|e| DataError::Config(format!("cannot start loader threads: {e}")))?;
        let loader = ViewLoader {
            pos: DataPosition {
                seed: cfg.seed,
                epoch: 0,
                batch: 0,
            },
            source,
            cfg,
            pool,
            skipped_total: AtomicUsize::new(0),
        };
        if loader.batches_per_epoch() == 0 {
            return Err(DataError::Config(format!(
                "{} items give no batch of {} (drop_last = {}): {}",
                loader.source.len(),
                loader.cfg.batch_size,
                loader.cfg.drop_last,
                loader.source.describe()
            )));
        }
        Ok(loader)
    }

    pub fn config(&self) -> &LoaderConfig {
        &self.cfg
    }

    pub fn position(&self) -> DataPosition {
        self.pos
    }

    /// Continues from a saved position. The position's seed wins over the config's (the
    /// checkpoint defines the run); a batch index past the epoch is an error.
    pub fn restore(&mut self, pos: DataPosition) -> Result<(), DataError> {
        if pos.batch > self.batches_per_epoch() as u64 {
            return Err(DataError::Config(format!(
                "position {pos:?} is past the {} batches of an epoch",
                self.batches_per_epoch()
            )));
        }
        self.cfg.seed = pos.seed;
        self.pos = pos;
        Ok(())
    }

    pub fn batches_per_epoch(&self) -> usize {
        let (n, b) = (self.source.len(), self.cfg.batch_size);
        if self.cfg.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// Item order of `epoch`: a seeded permutation, or `0..n` without shuffling (with
    /// `repeats` > 1, each of the first `⌈n / repeats⌉` items of it `repeats` times in a row).
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        self.epoch_items(epoch)
            .into_iter()
            .map(|(i, _)| i)
            .collect()
    }

    /// The epoch order as (item, copy): the copy number (0..repeats) selects independent views.
    fn epoch_items(&self, epoch: u64) -> Vec<(usize, usize)> {
        let n = self.source.len();
        let mut order: Vec<usize> = (0..n).collect();
        if self.cfg.shuffle {
            let s = splitmix64(self.cfg.seed ^ 0x5EED_5EED) ^ epoch;
            order.shuffle(&mut ViewRng::seed_from_u64(splitmix64(s)));
        }
        let r = self.cfg.repeats;
        order
            .into_iter()
            .flat_map(|i| (0..r).map(move |c| (i, c)))
            .take(n)
            .collect()
    }

    /// Item indices of batch `batch` of `epoch`.
    pub fn batch_indices(&self, epoch: u64, batch: u64) -> Vec<usize> {
        self.batch_items(epoch, batch)
            .into_iter()
            .map(|(i, _)| i)
            .collect()
    }

    fn batch_items(&self, epoch: u64, batch: u64) -> Vec<(usize, usize)> {
        let order = self.epoch_items(epoch);
        let start = (batch as usize * self.cfg.batch_size).min(order.len());
        let end = (start + self.cfg.batch_size).min(order.len());
        order[start..end].to_vec()
    }

    /// Produces the batch at the current position and advances (rolling over to the next
    /// epoch after the last batch).
    pub fn next_batch(&mut self, device: &Device) -> Result<ViewPairs, DataError> {
        if self.pos.batch >= self.batches_per_epoch() as u64 {
            self.pos.epoch += 1;
            self.pos.batch = 0;
        }
        let items = self.batch_items(self.pos.epoch, self.pos.batch);
        let out = self.load_items(&items, self.pos.epoch, device)?;
        self.pos.batch += 1;
        Ok(out)
    }

    /// Views of the given items as drawn in `epoch` (does not move the position). Use it with
    /// a fixed epoch to give every rated candidate the same views.
    pub fn load(
        &self,
        indices: &[usize],
        epoch: u64,
        device: &Device,
    ) -> Result<ViewPairs, DataError> {
        let items: Vec<(usize, usize)> = indices.iter().map(|&i| (i, 0)).collect();
        self.load_items(&items, epoch, device)
    }

    /// [`ViewLoader::load`] of (item, copy) rows.
    fn load_items(
        &self,
        items: &[(usize, usize)],
        epoch: u64,
        device: &Device,
    ) -> Result<ViewPairs, DataError> {
        let slots = 2 * self.cfg.pair_mode.num_pairs();
        let results: Vec<Result<Option<ItemViews>, DataError>> = self.pool.install(|| {
            items
                .par_iter()
                .map(|&(i, copy)| self.item_views(i, copy, epoch, slots))
                .collect()
        });
        let mut rows: Vec<(usize, ItemViews)> = Vec::with_capacity(items.len());
        let mut skipped = Vec::new();
        for (&(i, _), r) in items.iter().zip(results) {
            match r? {
                Some(v) => rows.push((i, v)),
                None => skipped.push(i),
            }
        }
        if rows.is_empty() {
            return Err(DataError::Config(format!(
                "batch of {} items has no decodable image",
                items.len()
            )));
        }
        let b = rows.len();
        let mut pairs = Vec::with_capacity(slots / 2);
        for p in 0..slots / 2 {
            let make = |slot: usize| -> Result<Tensor<4>, DataError> {
                let (_, h, w) = rows[0].1.1[slot];
                let mut buf = Vec::with_capacity(b * 3 * h * w);
                for (i, (_, views)) in &rows {
                    let (data, vh, vw) = &views[slot];
                    if (*vh, *vw) != (h, w) {
                        return Err(DataError::Config(format!(
                            "item {i} gives a {vh}x{vw} view but the batch is {h}x{w}; use a \
                             crop that fixes the size"
                        )));
                    }
                    buf.extend_from_slice(data);
                }
                Ok(Tensor::<4>::from_data(
                    TensorData::new(buf, [b, 3, h, w]),
                    device,
                ))
            };
            pairs.push((make(2 * p)?, make(2 * p + 1)?));
        }
        Ok(ViewPairs {
            pairs,
            labels: rows.iter().map(|(_, (l, _))| *l).collect(),
            indices: rows.into_iter().map(|(i, _)| i).collect(),
            skipped,
        })
    }

    fn item_views(
        &self,
        index: usize,
        copy: usize,
        epoch: u64,
        slots: usize,
    ) -> Result<Option<ItemViews>, DataError> {
        let sample = match self.source.get(index) {
            Ok(s) => s,
            Err(e @ DataError::CorruptImage { .. })
                if self.cfg.corrupt_policy == CorruptImagePolicy::Skip =>
            {
                let n = self.skipped_total.fetch_add(1, Ordering::Relaxed) + 1;
                eprintln!("warning: skipping item {index} ({n} skipped so far): {e}");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let views = (0..slots)
            .map(|slot| {
                let cfg = if slot % 2 == 0 {
                    &self.cfg.view1
                } else {
                    &self.cfg.view2
                };
                // Copy 0 keeps the plain seeds; a repeated copy draws its own views.
                let seed = view_seed(self.pos.seed, epoch, index, slot + copy * slots);
                let mut rng = ViewRng::seed_from_u64(seed);
                cfg.view(&sample.image, &mut rng)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some((sample.label, views)))
    }

    /// Corrupt items skipped so far (counted each time one is met).
    pub fn skipped_corrupt(&self) -> usize {
        self.skipped_total.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CifarBinary, CifarLayout, ImageFolder, shared_data_dir};

    fn fixture() -> Arc<dyn ImageSource> {
        let p = shared_data_dir()
            .expect("shared data is required for this test")
            .join("cifar-exact/cifar10_test_first20.bin");
        Arc::new(CifarBinary::from_files(&[p], CifarLayout::Cifar10).unwrap())
    }

    fn values(t: &Tensor<4>) -> Vec<f32> {
        t.to_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn cifar_batch_of_8_gives_two_different_finite_views() {
        let dev = Device::flex();
        let mut l = ViewLoader::new(fixture(), LoaderConfig::cifar(8, 1)).unwrap();
        assert_eq!(l.batches_per_epoch(), 2);
        let b = l.next_batch(&dev).unwrap();
        assert_eq!(b.pairs.len(), 1);
        let (v1, v2) = &b.pairs[0];
        assert_eq!(v1.dims(), [8, 3, 32, 32]);
        assert_eq!(v2.dims(), [8, 3, 32, 32]);
        let (a, c) = (values(v1), values(v2));
        assert!(a.iter().chain(&c).all(|v| v.is_finite()));
        assert_ne!(a, c);
        assert_eq!(b.labels.len(), 8);
        assert!(b.skipped.is_empty());
    }

    #[test]
    fn repeated_augmentation_gives_each_copy_its_own_views() {
        let dev = Device::flex();
        let cfg = LoaderConfig {
            repeats: 3,
            ..LoaderConfig::cifar(6, 4)
        };
        let mut l = ViewLoader::new(fixture(), cfg).unwrap();
        let n = 20;
        let order = l.epoch_order(0);
        // n rows from ⌈20 / 3⌉ = 7 items, each three times in a row (the last one twice).
        assert_eq!(order.len(), n);
        for chunk in order.chunks(3) {
            assert!(chunk.iter().all(|&i| i == chunk[0]), "{order:?}");
        }
        let mut distinct = order.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), 7);
        assert_eq!(l.batches_per_epoch(), 3);
        let b = l.next_batch(&dev).unwrap();
        assert_eq!(b.indices, order[..6]);
        // The three copies of one image are augmented independently.
        let v = values(&b.pairs[0].0);
        let per = v.len() / 6;
        let copies: Vec<&[f32]> = (0..3).map(|r| &v[r * per..(r + 1) * per]).collect();
        assert_ne!(copies[0], copies[1]);
        assert_ne!(copies[1], copies[2]);
        // Copy 0 keeps the views of a loader without repeats.
        let plain = ViewLoader::new(fixture(), LoaderConfig::cifar(6, 4)).unwrap();
        let p = plain.load(&[order[0]], 0, &dev).unwrap();
        assert_eq!(values(&p.pairs[0].0), copies[0]);
        let zero = LoaderConfig {
            repeats: 0,
            ..LoaderConfig::cifar(6, 4)
        };
        assert!(ViewLoader::new(fixture(), zero).is_err());
    }

    #[test]
    fn per_path_pairs_are_independent() {
        let dev = Device::flex();
        let cfg = LoaderConfig {
            pair_mode: PairMode::PerPath(3),
            ..LoaderConfig::cifar(4, 2)
        };
        let l = ViewLoader::new(fixture(), cfg).unwrap();
        let b = l.load(&[0, 5, 7, 19], 0, &dev).unwrap();
        assert_eq!(b.pairs.len(), 3);
        assert_eq!(b.labels, [3, 6, 6, 6]); // labels of official test images 0, 5, 7, 19
        let firsts: Vec<_> = b.pairs.iter().map(|(v, _)| values(v)).collect();
        assert_ne!(firsts[0], firsts[1]);
        assert_ne!(firsts[1], firsts[2]);
    }

    #[test]
    fn deterministic_across_threads_and_resumable() {
        let dev = Device::flex();
        let cfg = |threads| LoaderConfig {
            num_threads: threads,
            drop_last: false,
            ..LoaderConfig::cifar(6, 9)
        };
        let mut a = ViewLoader::new(fixture(), cfg(1)).unwrap();
        assert_eq!(a.batches_per_epoch(), 4); // 6 + 6 + 6 + 2
        let mut saved = None;
        let mut reference = Vec::new();
        for step in 0..6 {
            if step == 2 {
                saved = Some(serde_json::to_string(&a.position()).unwrap());
            }
            let b = a.next_batch(&dev).unwrap();
            reference.push((
                b.indices.clone(),
                values(&b.pairs[0].0),
                values(&b.pairs[0].1),
            ));
        }
        // The epoch rolled over and the second epoch has a different order.
        assert_eq!(a.position().epoch, 1);
        assert_ne!(a.epoch_order(0), a.epoch_order(1));

        let mut b = ViewLoader::new(fixture(), cfg(2)).unwrap();
        b.restore(serde_json::from_str(&saved.unwrap()).unwrap())
            .unwrap();
        for r in &reference[2..] {
            let x = b.next_batch(&dev).unwrap();
            assert_eq!(
                &(
                    x.indices.clone(),
                    values(&x.pairs[0].0),
                    values(&x.pairs[0].1)
                ),
                r
            );
        }
        assert!(
            b.restore(DataPosition {
                seed: 9,
                epoch: 0,
                batch: 99
            })
            .is_err()
        );
    }

    #[test]
    fn corrupt_items_skip_or_fail() {
        let tmp = tempfile::tempdir().unwrap();
        crate::folder::tests::write_tree(tmp.path(), true);
        let src: Arc<dyn ImageSource> = Arc::new(ImageFolder::new(tmp.path()).unwrap());
        let dev = Device::flex();
        let mk = |policy| LoaderConfig {
            corrupt_policy: policy,
            shuffle: false,
            drop_last: false,
            view1: ViewConfig::imagenet_view1(8),
            view2: ViewConfig::imagenet_view2(8),
            ..LoaderConfig::cifar(5, 0)
        };
        let skip = ViewLoader::new(src.clone(), mk(CorruptImagePolicy::Skip)).unwrap();
        let b = skip.load(&[0, 1, 2, 3, 4], 0, &dev).unwrap();
        assert_eq!(b.indices, [0, 1, 2, 3]);
        assert_eq!(b.skipped, [4]);
        assert_eq!(b.pairs[0].0.dims(), [4, 3, 8, 8]);
        assert_eq!(skip.skipped_corrupt(), 1);

        let fail = ViewLoader::new(src, mk(CorruptImagePolicy::Fail)).unwrap();
        let e = fail.load(&[0, 4], 0, &dev).unwrap_err();
        assert!(e.to_string().contains("z_bad.jpg"), "{e}");
    }
}
