//! Train / held-out splits and size caps (spec §6.5).
//!
//! BossNAS trains the supernet on a training part and rates candidates on a held-out part.
//! Which CIFAR split the official NATS run used cannot be verified (its "NATS split" download
//! is a Google Drive file), so the choice is explicit here and recorded in [`SplitInfo`].

use std::fmt;
use std::sync::Arc;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::{DataError, ImageSource, Sample};

/// A view of a source restricted to (and re-ordered by) a list of indices.
#[derive(Clone)]
pub struct Subset {
    source: Arc<dyn ImageSource>,
    indices: Vec<usize>,
    label: String,
}

impl Subset {
    /// Errors if any index is out of range for `source`.
    pub fn new(source: Arc<dyn ImageSource>, indices: Vec<usize>) -> Result<Self, DataError> {
        let len = source.len();
        if let Some(&index) = indices.iter().find(|&&i| i >= len) {
            return Err(DataError::IndexOutOfRange { index, len });
        }
        Ok(Self {
            source,
            indices,
            label: "subset".into(),
        })
    }

    /// All items of `source` (the identity view).
    pub fn all(source: Arc<dyn ImageSource>) -> Self {
        let indices = (0..source.len()).collect();
        Self {
            source,
            indices,
            label: "all".into(),
        }
    }

    /// Keeps at most `max` items, chosen by a seeded permutation and then sorted, so a capped
    /// CPU run sees a class-mixed sample rather than the first classes of a sorted folder.
    /// A cap ≥ len keeps everything.
    pub fn cap(self, max: usize, seed: u64) -> Self {
        if max >= self.indices.len() {
            return self;
        }
        let mut pos: Vec<usize> = (0..self.indices.len()).collect();
        pos.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0xCA9_CA9));
        let mut keep: Vec<usize> = pos[..max].to_vec();
        keep.sort_unstable();
        let before = self.indices.len();
        Self {
            indices: keep.into_iter().map(|p| self.indices[p]).collect(),
            label: format!("{} capped {before}->{max} (seed {seed})", self.label),
            source: self.source,
        }
    }

    /// Indices into the underlying source.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }
}

impl ImageSource for Subset {
    fn len(&self) -> usize {
        self.indices.len()
    }
    fn num_classes(&self) -> usize {
        self.source.num_classes()
    }
    fn get(&self, index: usize) -> Result<Sample, DataError> {
        let len = self.indices.len();
        let &i = self
            .indices
            .get(index)
            .ok_or(DataError::IndexOutOfRange { index, len })?;
        self.source.get(i)
    }
    fn describe(&self) -> String {
        format!(
            "{} ({} items) of {}",
            self.label,
            self.len(),
            self.source.describe()
        )
    }
}

/// Which train / held-out split to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SplitKind {
    /// Train on the official training set, rate on the official test set (50k / 10k for CIFAR).
    Official,
    /// NATS-Bench `cifar10-valid` style: the CIFAR-10 *training* set halved (25k / 25k); train
    /// on one half, rate on the other. NATS-Bench's own `cifar-split.txt` is not available
    /// offline, so the halves come from a seeded permutation and differ from NATS-Bench's.
    NatsHalves { seed: u64 },
}

/// What a split was, for logs and reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitInfo {
    pub kind: SplitKind,
    pub train_len: usize,
    pub eval_len: usize,
    pub description: String,
}

impl fmt::Display for SplitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description)
    }
}

/// Splits `0..n` into two sorted halves (first `n / 2` of a seeded permutation, then the rest).
pub fn seeded_halves(n: usize, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut perm: Vec<usize> = (0..n).collect();
    perm.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let mut b = perm.split_off(n / 2);
    perm.sort_unstable();
    b.sort_unstable();
    (perm, b)
}

/// Builds (train, eval, info). `Official` needs `test`; `NatsHalves` ignores it.
pub fn make_split(
    kind: SplitKind,
    train: Arc<dyn ImageSource>,
    test: Option<Arc<dyn ImageSource>>,
) -> Result<(Subset, Subset, SplitInfo), DataError> {
    let (tr, ev, description) = match kind {
        SplitKind::Official => {
            let test = test.ok_or_else(|| {
                DataError::Config("the Official split needs a test/held-out source".into())
            })?;
            let d = format!(
                "official split: train on the full training set ({} items), rate on the test set ({} items)",
                train.len(),
                test.len()
            );
            (Subset::all(train), Subset::all(test), d)
        }
        SplitKind::NatsHalves { seed } => {
            let (a, b) = seeded_halves(train.len(), seed);
            let d = format!(
                "NATS-style halves of the training set: train {} / held-out {} items, from a \
                 seeded permutation (seed {seed}); NATS-Bench's cifar-split.txt is not available \
                 offline, so the halves differ from NATS-Bench's cifar10-valid split",
                a.len(),
                b.len()
            );
            let mut tr = Subset::new(train.clone(), a)?;
            let mut ev = Subset::new(train, b)?;
            tr.label = "NATS-style train half".into();
            ev.label = "NATS-style held-out half".into();
            (tr, ev, d)
        }
    };
    let info = SplitInfo {
        kind,
        train_len: tr.len(),
        eval_len: ev.len(),
        description,
    };
    Ok((tr, ev, info))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RgbImage;

    /// Item i is a 1×1 image whose red value and label encode i.
    struct Toy(usize);
    impl ImageSource for Toy {
        fn len(&self) -> usize {
            self.0
        }
        fn num_classes(&self) -> usize {
            256
        }
        fn get(&self, index: usize) -> Result<Sample, DataError> {
            Ok(Sample {
                image: RgbImage::new(1, 1, vec![index as u8, 0, 0])?,
                label: index,
            })
        }
        fn describe(&self) -> String {
            "toy".into()
        }
    }

    #[test]
    fn nats_halves_are_disjoint_complete_and_seeded() {
        let (a, b) = seeded_halves(50_000, 7);
        assert_eq!((a.len(), b.len()), (25_000, 25_000));
        let mut all: Vec<usize> = a.iter().chain(&b).copied().collect();
        all.sort_unstable();
        assert!(all.iter().enumerate().all(|(i, &v)| i == v));
        assert_eq!(seeded_halves(50_000, 7), (a.clone(), b));
        assert_ne!(seeded_halves(50_000, 8).0, a);
    }

    #[test]
    fn make_split_and_info() {
        let src: Arc<dyn ImageSource> = Arc::new(Toy(10));
        let (tr, ev, info) =
            make_split(SplitKind::NatsHalves { seed: 1 }, src.clone(), None).unwrap();
        assert_eq!((tr.len(), ev.len()), (5, 5));
        assert!(info.to_string().contains("not available offline"));
        // Subset maps through to the source's items.
        assert_eq!(tr.get(0).unwrap().label, tr.indices()[0]);
        let json = serde_json::to_string(&info).unwrap();
        assert_eq!(serde_json::from_str::<SplitInfo>(&json).unwrap(), info);

        assert!(make_split(SplitKind::Official, src.clone(), None).is_err());
        let (tr, ev, _) =
            make_split(SplitKind::Official, src.clone(), Some(Arc::new(Toy(3)))).unwrap();
        assert_eq!((tr.len(), ev.len()), (10, 3));
    }

    #[test]
    fn subset_bounds_and_cap() {
        let src: Arc<dyn ImageSource> = Arc::new(Toy(10));
        assert!(Subset::new(src.clone(), vec![0, 10]).is_err());
        let s = Subset::new(src.clone(), vec![9, 3, 5]).unwrap();
        assert_eq!(s.get(0).unwrap().label, 9);
        assert!(matches!(
            s.get(3),
            Err(DataError::IndexOutOfRange { index: 3, len: 3 })
        ));
        let c = Subset::all(src).cap(4, 0);
        assert_eq!(c.len(), 4);
        assert!(c.indices().windows(2).all(|w| w[0] < w[1]));
        assert!(c.describe().contains("capped 10->4"));
        assert_eq!(c.clone().cap(100, 0).indices(), c.indices());
    }
}
