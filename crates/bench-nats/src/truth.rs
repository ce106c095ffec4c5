//! NATS-Bench SSS ground truth: `nats_sss_cifar10.csv`.

use std::path::{Path, PathBuf};

use hytra_space::nats::{NATS_SIZE, NatsArch};
use serde::{Deserialize, Serialize};

use crate::csvio::CsvFile;
use crate::error::{Error, Result};

/// Which ground-truth accuracy column to correlate against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum AccuracyColumn {
    /// `cifar10_test_acc_hp90`: the column BossNAS itself used.
    #[default]
    #[serde(rename = "cifar10_test_acc_hp90")]
    Cifar10TestHp90,
    /// `cifar10valid_valid_acc_hp90`.
    #[serde(rename = "cifar10valid_valid_acc_hp90")]
    Cifar10ValidValidHp90,
}

impl AccuracyColumn {
    /// The CSV column name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cifar10TestHp90 => "cifar10_test_acc_hp90",
            Self::Cifar10ValidValidHp90 => "cifar10valid_valid_acc_hp90",
        }
    }

    /// What data the column was measured on.
    pub fn split_description(self) -> &'static str {
        match self {
            Self::Cifar10TestHp90 => {
                "NATS-Bench 'cifar10', hp=90: trained 90 epochs on the full 50k CIFAR-10 train set, \
                 top-1 accuracy on the 10k test set (single trial, seed 777) — the column BossNAS used"
            }
            Self::Cifar10ValidValidHp90 => {
                "NATS-Bench 'cifar10-valid', hp=90: trained on 25k of the CIFAR-10 train set, \
                 top-1 accuracy on the other 25k (validation split)"
            }
        }
    }
}

impl std::str::FromStr for AccuracyColumn {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cifar10_test_acc_hp90" | "test" => Ok(Self::Cifar10TestHp90),
            "cifar10valid_valid_acc_hp90" | "valid" => Ok(Self::Cifar10ValidValidHp90),
            other => Err(Error::Options(format!(
                "unknown accuracy column {other:?}; expected cifar10_test_acc_hp90 or cifar10valid_valid_acc_hp90"
            ))),
        }
    }
}

/// The ground-truth table, row `i` = NATS-Bench index `i`.
///
/// A file may hold a prefix of the space (rows 0..n) — useful for fixtures; the full file has
/// 32,768 rows ([`GroundTruth::is_complete`]).
#[derive(Debug, Clone)]
pub struct GroundTruth {
    /// The file it was read from.
    pub path: PathBuf,
    /// Architectures in index order (`archs[i].index() == i`).
    pub archs: Vec<NatsArch>,
    /// `cifar10_test_acc_hp90`, percent.
    pub cifar10_test_acc_hp90: Vec<f64>,
    /// `cifar10valid_valid_acc_hp90`, percent; empty when the file has no such column (the
    /// copy converted from the BossNAS repository holds only the test accuracy).
    pub cifar10valid_valid_acc_hp90: Vec<f64>,
}

/// Columns the ground-truth file must have (`cifar10valid_valid_acc_hp90` is optional).
pub const TRUTH_COLUMNS: [&str; 3] = ["index", "arch", "cifar10_test_acc_hp90"];

impl GroundTruth {
    /// Reads and validates the file: required header columns, `index` equal to the row
    /// position and to the arch's NATS index, optional `c0..c4` columns consistent with
    /// `arch`, finite accuracies in [0, 100].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let mut csv = CsvFile::open(path)?;
        let [ci, ca, ct] = TRUTH_COLUMNS.map(|c| csv.column(c));
        let (ci, ca, ct) = (ci?, ca?, ct?);
        let cv = csv.optional_column(AccuracyColumn::Cifar10ValidValidHp90.name());
        let width_cols: Vec<Option<usize>> = (0..5)
            .map(|k| csv.optional_column(&format!("c{k}")))
            .collect();
        let mut archs = Vec::with_capacity(NATS_SIZE);
        let mut test = Vec::with_capacity(NATS_SIZE);
        let mut valid = Vec::with_capacity(NATS_SIZE);
        csv.for_each_row(|row| {
            let expected = archs.len() as u64;
            let index = row.integer(ci, "index")?;
            let arch = row.arch(ca, "arch")?;
            if index != expected {
                return Err(row.err(format!(
                    "index {index} out of order: rows must be in NATS-Bench index order, expected {expected}"
                )));
            }
            if arch.index() as u64 != index {
                return Err(row.err(format!("arch {arch} has NATS-Bench index {}, but the row says {index}", arch.index())));
            }
            for (k, col) in width_cols.iter().enumerate() {
                if let Some(col) = *col {
                    let w = row.integer(col, &format!("c{k}"))?;
                    if w != arch.widths()[k] as u64 {
                        return Err(row.err(format!("column c{k} = {w} disagrees with arch {arch}")));
                    }
                }
            }
            let t = row.finite(ct, "cifar10_test_acc_hp90")?;
            let v = cv.map(|cv| row.finite(cv, "cifar10valid_valid_acc_hp90")).transpose()?;
            for (name, x) in [("cifar10_test_acc_hp90", Some(t)), ("cifar10valid_valid_acc_hp90", v)] {
                let Some(x) = x else { continue };
                if !(0.0..=100.0).contains(&x) {
                    return Err(row.err(format!("column {name:?}: accuracy {x} is outside [0, 100]")));
                }
            }
            if archs.len() >= NATS_SIZE {
                return Err(row.err(format!("more than {NATS_SIZE} rows")));
            }
            archs.push(arch);
            test.push(t);
            valid.extend(v);
            Ok(())
        })?;
        if archs.is_empty() {
            return Err(Error::Data {
                path: path.to_path_buf(),
                line: 2,
                problem: "no data rows".into(),
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            archs,
            cifar10_test_acc_hp90: test,
            cifar10valid_valid_acc_hp90: valid,
        })
    }

    /// Number of architectures.
    pub fn len(&self) -> usize {
        self.archs.len()
    }

    /// Whether the table is empty (never, for a loaded table).
    pub fn is_empty(&self) -> bool {
        self.archs.is_empty()
    }

    /// Whether all 32,768 architectures are present.
    pub fn is_complete(&self) -> bool {
        self.archs.len() == NATS_SIZE
    }

    /// Whether the file had this accuracy column.
    pub fn has(&self, column: AccuracyColumn) -> bool {
        self.accuracy(column).len() == self.archs.len()
    }

    /// The accuracies of one column, in index order (empty when the file lacks it, see
    /// [`GroundTruth::has`]).
    pub fn accuracy(&self, column: AccuracyColumn) -> &[f64] {
        match column {
            AccuracyColumn::Cifar10TestHp90 => &self.cifar10_test_acc_hp90,
            AccuracyColumn::Cifar10ValidValidHp90 => &self.cifar10valid_valid_acc_hp90,
        }
    }

    /// Row of an architecture, if present.
    pub fn position(&self, arch: &NatsArch) -> Option<usize> {
        let i = arch.index();
        (i < self.archs.len()).then_some(i)
    }

    /// Accuracy of one architecture.
    pub fn accuracy_of(&self, arch: &NatsArch, column: AccuracyColumn) -> Option<f64> {
        self.position(arch)
            .and_then(|i| self.accuracy(column).get(i).copied())
    }

    /// 1-based accuracy rank: 1 + the number of architectures with strictly higher accuracy.
    pub fn accuracy_rank(&self, arch: &NatsArch, column: AccuracyColumn) -> Option<usize> {
        let a = self.accuracy_of(arch, column)?;
        Some(1 + self.accuracy(column).iter().filter(|&&x| x > a).count())
    }
}
