//! Per-block potentials (the official `path_rank_stage{k}.csv` files), the composed
//! architecture score Σ_k λ_k (L_k + offset) and the greedy per-block winners.
//!
//! The BossNAS ranking code (`ranking_nats/get_model_score_nats.py`) scores an architecture
//! as Σ_k (L_k(path_k) + 4): λ_k = 1 and an offset of 4 that makes each term non-negative.
//! The score is a loss (lower is better). Because it is separable, its argmin over the whole
//! space is exactly the concatenation of the per-block argmins when every λ_k > 0.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use hytra_space::nats::{NATS_LAYERS, NATS_WIDTHS, NatsArch};
use serde::{Deserialize, Serialize};

use crate::csvio::CsvFile;
use crate::error::{Error, Result};
use crate::scores::{ScoreEntry, ScoresInput};

/// How the five NATS layers are grouped into supernet blocks (`SupernetNATS._op_layers_list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockSplit {
    /// Layer ranges, contiguous and covering 0..5.
    pub blocks: Vec<Range<usize>>,
}

impl BlockSplit {
    /// CIFAR-10: layers per block [2, 2, 1] → `[0:2], [2:4], [4:5]`.
    pub fn cifar10() -> Self {
        Self {
            blocks: vec![0..2, 2..4, 4..5],
        }
    }

    /// CIFAR-100: layers per block [2, 1, 2] → `[0:2], [2:3], [3:5]`.
    pub fn cifar100() -> Self {
        Self {
            blocks: vec![0..2, 2..3, 3..5],
        }
    }

    /// Builds a split from layers per block, e.g. `[2, 2, 1]`.
    pub fn from_sizes(sizes: &[usize]) -> Result<Self> {
        let mut start = 0;
        let mut blocks = Vec::new();
        for &s in sizes {
            blocks.push(start..start + s);
            start += s;
        }
        let split = Self { blocks };
        split.validate()?;
        Ok(split)
    }

    /// Checks that the blocks are non-empty, contiguous and cover the five layers.
    pub fn validate(&self) -> Result<()> {
        let mut next = 0;
        for (k, b) in self.blocks.iter().enumerate() {
            if b.start != next || b.is_empty() {
                return Err(Error::Options(format!(
                    "block split {:?}: block {k} must start at layer {next} and be non-empty",
                    self.blocks
                )));
            }
            next = b.end;
        }
        if next != NATS_LAYERS {
            return Err(Error::Options(format!(
                "block split {:?} must cover layers 0..{NATS_LAYERS}",
                self.blocks
            )));
        }
        Ok(())
    }
}

/// One row of a potential table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PotentialEntry {
    /// Rank in the file (0 = best).
    pub rank: usize,
    /// Width indices (0..8) of the block's layers.
    pub ops: Vec<usize>,
    /// The block potential: a loss, lower is better.
    pub potential: f64,
}

/// The potentials of every candidate path of one block.
#[derive(Debug, Clone)]
pub struct PotentialTable {
    /// File it was read from (or a description).
    pub source: PathBuf,
    /// The layers this block covers.
    pub layers: Range<usize>,
    /// Entries in file order.
    pub entries: Vec<PotentialEntry>,
    lookup: HashMap<Vec<usize>, usize>,
}

impl PotentialTable {
    /// Builds a table from entries; rejects duplicates, wrong lengths, bad indices, non-finite values.
    pub fn new(
        source: impl Into<PathBuf>,
        layers: Range<usize>,
        entries: Vec<PotentialEntry>,
    ) -> Result<Self> {
        let source = source.into();
        let mut lookup = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            if e.ops.len() != layers.len() || e.ops.iter().any(|&o| o >= NATS_WIDTHS.len()) {
                return Err(Error::Mismatch(format!(
                    "{}: entry {i}: path {:?} must have {} width indices in 0..8",
                    source.display(),
                    e.ops,
                    layers.len()
                )));
            }
            if !e.potential.is_finite() {
                return Err(Error::Mismatch(format!(
                    "{}: entry {i}: potential is not finite",
                    source.display()
                )));
            }
            if lookup.insert(e.ops.clone(), i).is_some() {
                return Err(Error::Mismatch(format!(
                    "{}: path {:?} appears twice",
                    source.display(),
                    e.ops
                )));
            }
        }
        if entries.is_empty() {
            return Err(Error::Mismatch(format!(
                "{}: no potentials",
                source.display()
            )));
        }
        Ok(Self {
            source,
            layers,
            entries,
            lookup,
        })
    }

    /// Reads a `path_rank_stage{k}.csv` file (columns rank, code, channels, potential) for a
    /// block covering `layers`. `code` holds one digit (width index 0..7) per layer; a code
    /// that lost its leading zeros (e.g. in a spreadsheet) is left-padded. `channels`
    /// (`w:w`) is checked against `code` when present.
    pub fn load(path: impl AsRef<Path>, layers: Range<usize>) -> Result<Self> {
        let path = path.as_ref();
        let mut csv = CsvFile::open(path)?;
        let c_code = csv.column("code")?;
        let c_pot = csv.column("potential")?;
        let c_rank = csv.optional_column("rank");
        let c_chan = csv.optional_column("channels");
        let len = layers.len();
        let mut entries = Vec::new();
        let mut seen: HashMap<Vec<usize>, u64> = HashMap::new();
        csv.for_each_row(|row| {
            let code = row.text(c_code);
            if code.is_empty()
                || code.len() > len
                || !code.bytes().all(|b| (b'0'..=b'7').contains(&b))
            {
                return Err(row.err(format!(
                    "column \"code\": {code:?} must be {len} digits in 0..7 (width index per layer)"
                )));
            }
            let mut ops = vec![0usize; len - code.len()];
            ops.extend(code.bytes().map(|b| (b - b'0') as usize));
            if let Some(c) = c_chan {
                let expected: Vec<String> =
                    ops.iter().map(|&o| NATS_WIDTHS[o].to_string()).collect();
                let expected = expected.join(":");
                if row.text(c) != expected {
                    return Err(row.err(format!(
                        "column \"channels\": {:?} disagrees with code {code} ({expected})",
                        row.text(c)
                    )));
                }
            }
            if let Some(first) = seen.insert(ops.clone(), row.line) {
                return Err(row.err(format!("code {code} already appears on line {first}")));
            }
            let potential = row.finite(c_pot, "potential")?;
            let rank = match c_rank {
                Some(c) => row.integer(c, "rank")? as usize,
                None => entries.len(),
            };
            entries.push(PotentialEntry {
                rank,
                ops,
                potential,
            });
            Ok(())
        })?;
        if entries.is_empty() {
            return Err(Error::Data {
                path: path.to_path_buf(),
                line: 2,
                problem: "no data rows".into(),
            });
        }
        Self::new(path, layers, entries)
    }

    /// Potential of a path (the block's slice of width indices).
    pub fn potential(&self, ops: &[usize]) -> Option<f64> {
        self.lookup.get(ops).map(|&i| self.entries[i].potential)
    }

    /// Whether all 8^len paths are present.
    pub fn is_complete(&self) -> bool {
        self.entries.len() == NATS_WIDTHS.len().pow(self.layers.len() as u32)
    }

    /// The path with the lowest potential (first in file order on ties).
    pub fn winner(&self) -> &PotentialEntry {
        let mut best = &self.entries[0];
        for e in &self.entries[1..] {
            if e.potential < best.potential {
                best = e;
            }
        }
        best
    }
}

/// The composed score Σ_k λ_k (L_k + offset).
#[derive(Debug, Clone)]
pub struct ComposedScore {
    pub split: BlockSplit,
    pub tables: Vec<PotentialTable>,
    /// One weight per block; the official code uses 1.
    pub lambdas: Vec<f64>,
    /// Added to each block potential; the official code uses 4.
    pub offset: f64,
}

/// Official offset added to each block potential.
pub const OFFICIAL_OFFSET: f64 = 4.0;

impl ComposedScore {
    /// λ = 1 for every block and offset 4, as in the official code.
    pub fn new(split: BlockSplit, tables: Vec<PotentialTable>) -> Result<Self> {
        let lambdas = vec![1.0; split.blocks.len()];
        Self::with_weights(split, tables, lambdas, OFFICIAL_OFFSET)
    }

    /// Custom λ and offset.
    pub fn with_weights(
        split: BlockSplit,
        tables: Vec<PotentialTable>,
        lambdas: Vec<f64>,
        offset: f64,
    ) -> Result<Self> {
        split.validate()?;
        if tables.len() != split.blocks.len() || lambdas.len() != split.blocks.len() {
            return Err(Error::Options(format!(
                "{} blocks but {} potential tables and {} λ values",
                split.blocks.len(),
                tables.len(),
                lambdas.len()
            )));
        }
        for (k, (t, b)) in tables.iter().zip(&split.blocks).enumerate() {
            if t.layers != *b {
                return Err(Error::Options(format!(
                    "potential table {k} ({}) covers layers {:?}, the split says {:?}",
                    t.source.display(),
                    t.layers,
                    b
                )));
            }
        }
        if lambdas.iter().chain([&offset]).any(|v| !v.is_finite()) {
            return Err(Error::Options("λ and offset must be finite".into()));
        }
        Ok(Self {
            split,
            tables,
            lambdas,
            offset,
        })
    }

    /// Reads `path_rank_stage{k}.csv` for every block of `split` from `dir`.
    pub fn load_dir(dir: impl AsRef<Path>, split: BlockSplit) -> Result<Self> {
        let dir = dir.as_ref();
        let tables = split
            .blocks
            .iter()
            .enumerate()
            .map(|(k, b)| {
                PotentialTable::load(dir.join(format!("path_rank_stage{k}.csv")), b.clone())
            })
            .collect::<Result<Vec<_>>>()?;
        Self::new(split, tables)
    }

    /// Score of one architecture; `None` if a block's path has no potential.
    pub fn score(&self, arch: &NatsArch) -> Option<f64> {
        let ops = arch.op_indices();
        let mut total = 0.0;
        for ((b, t), l) in self
            .split
            .blocks
            .iter()
            .zip(&self.tables)
            .zip(&self.lambdas)
        {
            total += l * (t.potential(&ops[b.clone()])? + self.offset);
        }
        Some(total)
    }

    /// Scores every architecture of the space (index order). Fails, naming the block and
    /// path, if a table misses a path.
    pub fn score_all(&self) -> Result<ScoresInput> {
        let mut entries = Vec::with_capacity(hytra_space::nats::NATS_SIZE);
        for arch in NatsArch::all() {
            let score = self.score(&arch).ok_or_else(|| {
                let ops = arch.op_indices();
                let (k, b) = self
                    .split
                    .blocks
                    .iter()
                    .enumerate()
                    .find(|(k, b)| self.tables[*k].potential(&ops[(*b).clone()]).is_none())
                    .expect("a block is missing");
                Error::Mismatch(format!(
                    "{}: no potential for block {k} path {:?} (needed by {arch})",
                    self.tables[k].source.display(),
                    &ops[b.clone()]
                ))
            })?;
            entries.push(ScoreEntry { arch, score });
        }
        let source = self
            .tables
            .iter()
            .map(|t| t.source.display().to_string())
            .collect::<Vec<_>>()
            .join(" + ");
        Ok(ScoresInput::new(
            format!("composed Σ_k λ_k(L_k + {}) from {source}", self.offset),
            "composed_score",
            entries,
        ))
    }

    /// The greedy per-block winners (argmin potential per block), concatenated.
    /// With all λ_k > 0 this is also the argmin of the composed score.
    pub fn winners(&self) -> NatsArch {
        let mut ops = [0usize; NATS_LAYERS];
        for (b, t) in self.split.blocks.iter().zip(&self.tables) {
            ops[b.clone()].copy_from_slice(&t.winner().ops);
        }
        NatsArch::from_op_indices(ops).expect("validated width indices")
    }
}

/// One row of the official `bossnas_c10_arch_scores.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfficialArchScore {
    pub arch: NatsArch,
    /// Stage codes, e.g. `74|57|6`.
    pub stage_codes: String,
    /// Σ_stage (potential + 4), rounded to 4 decimals.
    pub bossnas_loss_score: f64,
    /// The accuracy the file carries (equal to the ground truth's `cifar10_test_acc_hp90`).
    pub cifar10_test_acc_hp90: f64,
}

/// Reads `bossnas_c10_arch_scores.csv` (columns arch, stage_codes, bossnas_loss_score,
/// cifar10_test_acc_hp90), checking that the stage codes are the arch's width indices split
/// `[0:2], [2:4], [4]` and that no arch repeats. For correlation, the generic
/// [`ScoresInput::from_csv`] with column `bossnas_loss_score` reads the same file.
pub fn load_official_arch_scores(path: impl AsRef<Path>) -> Result<Vec<OfficialArchScore>> {
    let path = path.as_ref();
    let mut csv = CsvFile::open(path)?;
    let [ca, cs, cl, cacc] = [
        "arch",
        "stage_codes",
        "bossnas_loss_score",
        "cifar10_test_acc_hp90",
    ]
    .map(|c| csv.column(c));
    let (ca, cs, cl, cacc) = (ca?, cs?, cl?, cacc?);
    let split = BlockSplit::cifar10();
    let mut out = Vec::new();
    let mut seen = HashMap::new();
    csv.for_each_row(|row| {
        let arch = row.arch(ca, "arch")?;
        let ops = arch.op_indices();
        let expected: Vec<String> = split
            .blocks
            .iter()
            .map(|b| {
                ops[b.clone()]
                    .iter()
                    .map(|o| o.to_string())
                    .collect::<String>()
            })
            .collect();
        let expected = expected.join("|");
        let codes = row.text(cs);
        if codes != expected {
            return Err(row.err(format!(
                "stage_codes {codes:?} disagree with arch {arch} (expected {expected})"
            )));
        }
        if let Some(first) = seen.insert(arch, row.line) {
            return Err(row.err(format!("arch {arch} already appears on line {first}")));
        }
        out.push(OfficialArchScore {
            arch,
            stage_codes: codes.to_string(),
            bossnas_loss_score: row.finite(cl, "bossnas_loss_score")?,
            cifar10_test_acc_hp90: row.finite(cacc, "cifar10_test_acc_hp90")?,
        });
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(layers: Range<usize>, f: impl Fn(&[usize]) -> f64) -> PotentialTable {
        let len = layers.len();
        let entries = (0..8usize.pow(len as u32))
            .map(|i| {
                let ops: Vec<usize> = (0..len)
                    .rev()
                    .map(|k| (i / 8usize.pow(k as u32)) % 8)
                    .collect();
                PotentialEntry {
                    rank: i,
                    potential: f(&ops),
                    ops,
                }
            })
            .collect();
        PotentialTable::new("synthetic", layers, entries).unwrap()
    }

    #[test]
    fn composed_score_sums_offset_blocks_and_winners_are_argmin() {
        let split = BlockSplit::cifar10();
        let t0 = table(0..2, |o| {
            -3.0 + 0.01 * ((o[0] as f64 - 7.0).abs() + (o[1] as f64 - 4.0).abs())
        });
        let t1 = table(2..4, |o| {
            -3.0 + 0.01 * ((o[0] as f64 - 5.0).abs() + (o[1] as f64 - 7.0).abs())
        });
        let t2 = table(4..5, |o| -2.9 + 0.01 * (o[0] as f64 - 6.0).abs());
        let c = ComposedScore::new(split.clone(), vec![t0, t1, t2]).unwrap();
        let w = c.winners();
        assert_eq!(w.to_string(), "64:40:48:64:56");
        let s = c.score(&w).unwrap();
        assert!((s - (1.0 + 1.0 + 1.1)).abs() < 1e-12, "{s}");
        let all = c.score_all().unwrap();
        let best = all
            .entries
            .iter()
            .min_by(|a, b| a.score.total_cmp(&b.score))
            .unwrap();
        assert_eq!(best.arch, w);
        let c2 =
            ComposedScore::with_weights(split, c.tables.clone(), vec![2.0, 1.0, 0.5], 0.0).unwrap();
        let a: NatsArch = "8:8:8:8:8".parse().unwrap();
        let expected = 2.0 * (-3.0 + 0.11) + (-3.0 + 0.12) + 0.5 * (-2.9 + 0.06);
        assert!((c2.score(&a).unwrap() - expected).abs() < 1e-12);
    }

    #[test]
    fn splits_validate() {
        assert_eq!(
            BlockSplit::from_sizes(&[2, 1, 2]).unwrap(),
            BlockSplit::cifar100()
        );
        assert_eq!(
            BlockSplit::from_sizes(&[2, 2, 1]).unwrap(),
            BlockSplit::cifar10()
        );
        assert!(BlockSplit::from_sizes(&[2, 2]).is_err());
        assert!(BlockSplit::from_sizes(&[2, 0, 3]).is_err());
    }

    #[test]
    fn bad_potential_files_name_line_and_problem() {
        let dir = std::env::temp_dir().join(format!("bench-nats-pot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("p.csv");
        std::fs::write(
            &p,
            "rank,code,channels,potential\n0,74,64:40,-3.1\n1,78,64:72,-3.0\n",
        )
        .unwrap();
        let e = PotentialTable::load(&p, 0..2).unwrap_err().to_string();
        assert!(e.contains("p.csv:3") && e.contains("code"), "{e}");
        std::fs::write(&p, "rank,code,channels,potential\n0,74,64:48,-3.1\n").unwrap();
        let e = PotentialTable::load(&p, 0..2).unwrap_err().to_string();
        assert!(e.contains("p.csv:2") && e.contains("channels"), "{e}");
        std::fs::write(&p, "rank,code,channels,potential\n0,74,64:40,nan\n").unwrap();
        let e = PotentialTable::load(&p, 0..2).unwrap_err().to_string();
        assert!(e.contains("p.csv:2") && e.contains("not finite"), "{e}");
        std::fs::write(
            &p,
            "rank,code,channels,potential\n0,4,8:40,-3.1\n1,04,8:40,-3.0\n",
        )
        .unwrap();
        let e = PotentialTable::load(&p, 0..2).unwrap_err().to_string();
        assert!(
            e.contains("p.csv:3") && e.contains("already appears on line 2"),
            "{e}"
        );
        std::fs::write(&p, "rank,cod,potential\n").unwrap();
        let e = PotentialTable::load(&p, 0..2).unwrap_err().to_string();
        assert!(e.contains("missing column \"code\""), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
