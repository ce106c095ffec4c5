//! Architecture scores to evaluate: read from any CSV with an `arch` column, or built in code.

use std::collections::HashMap;
use std::path::Path;

use hytra_space::nats::NatsArch;
use serde::{Deserialize, Serialize};

use crate::csvio::CsvFile;
use crate::error::{Error, Result};
use crate::truth::{AccuracyColumn, GroundTruth};

/// Column read when none is named.
pub const DEFAULT_SCORE_COLUMN: &str = "score";

/// One scored architecture.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoreEntry {
    pub arch: NatsArch,
    pub score: f64,
}

/// A set of scores with where they came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoresInput {
    /// File or description.
    pub source: String,
    /// Name of the score (the CSV column).
    pub column: String,
    /// One entry per architecture, no duplicates.
    pub entries: Vec<ScoreEntry>,
}

/// Scores matched to the ground truth, in the order of `entries`.
#[derive(Debug, Clone)]
pub struct Aligned {
    /// Ground-truth row (= NATS index) of each matched entry.
    pub rows: Vec<usize>,
    pub scores: Vec<f64>,
    pub accuracy: Vec<f64>,
    /// Scored architectures absent from the ground truth (possible with a partial truth file).
    pub unmatched: Vec<NatsArch>,
}

impl ScoresInput {
    /// Builds an input from entries (not checked for duplicates; see [`ScoresInput::validate`]).
    pub fn new(
        source: impl Into<String>,
        column: impl Into<String>,
        entries: Vec<ScoreEntry>,
    ) -> Self {
        Self {
            source: source.into(),
            column: column.into(),
            entries,
        }
    }

    /// Reads a CSV with an `arch` column (NATS string `c0:c1:c2:c3:c4`) and the score column
    /// `column` (default [`DEFAULT_SCORE_COLUMN`]). Other columns are ignored. Rejects
    /// malformed archs, non-finite scores and repeated archs, naming file and line.
    pub fn from_csv(path: impl AsRef<Path>, column: Option<&str>) -> Result<Self> {
        let path = path.as_ref();
        let mut csv = CsvFile::open(path)?;
        let ca = csv.column("arch")?;
        let name = column.unwrap_or(DEFAULT_SCORE_COLUMN);
        let cs = csv.optional_column(name).ok_or_else(|| Error::Header {
            path: path.to_path_buf(),
            problem: format!(
                "no score column {name:?}{}; columns found: {} (choose one with --score-column)",
                if column.is_none() {
                    " (the default)"
                } else {
                    ""
                },
                csv.headers.join(", ")
            ),
        })?;
        let mut entries = Vec::new();
        let mut seen = HashMap::new();
        csv.for_each_row(|row| {
            let arch = row.arch(ca, "arch")?;
            if let Some(first) = seen.insert(arch, row.line) {
                return Err(row.err(format!("arch {arch} already appears on line {first}")));
            }
            let score = row.finite(cs, name)?;
            entries.push(ScoreEntry { arch, score });
            Ok(())
        })?;
        if entries.is_empty() {
            return Err(Error::Data {
                path: path.to_path_buf(),
                line: 2,
                problem: "no data rows".into(),
            });
        }
        Ok(Self::new(path.display().to_string(), name, entries))
    }

    /// Checks for repeated architectures and non-finite scores.
    pub fn validate(&self) -> Result<()> {
        let mut seen = HashMap::new();
        for (i, e) in self.entries.iter().enumerate() {
            if !e.score.is_finite() {
                return Err(Error::Mismatch(format!(
                    "{}: score of {} is not finite",
                    self.source, e.arch
                )));
            }
            if let Some(j) = seen.insert(e.arch, i) {
                return Err(Error::Mismatch(format!(
                    "{}: {} scored twice (entries {j} and {i})",
                    self.source, e.arch
                )));
            }
        }
        Ok(())
    }

    /// Matches entries to the ground truth by arch.
    pub fn align(&self, truth: &GroundTruth, column: AccuracyColumn) -> Result<Aligned> {
        self.validate()?;
        if !truth.has(column) {
            return Err(Error::Options(format!(
                "the ground truth {} has no column {:?} (the copy converted from the BossNAS \
                 repository holds only cifar10_test_acc_hp90)",
                truth.path.display(),
                column.name()
            )));
        }
        let acc = truth.accuracy(column);
        let mut out = Aligned {
            rows: Vec::new(),
            scores: Vec::new(),
            accuracy: Vec::new(),
            unmatched: Vec::new(),
        };
        for e in &self.entries {
            match truth.position(&e.arch) {
                Some(r) => {
                    out.rows.push(r);
                    out.scores.push(e.score);
                    out.accuracy.push(acc[r]);
                }
                None => out.unmatched.push(e.arch),
            }
        }
        if out.rows.len() < 2 {
            return Err(Error::Mismatch(format!(
                "{}: only {} scored architectures are in the ground truth {}; need at least 2",
                self.source,
                out.rows.len(),
                truth.path.display()
            )));
        }
        Ok(out)
    }
}
