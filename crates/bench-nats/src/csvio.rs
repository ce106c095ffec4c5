//! Small helpers over the `csv` crate: header lookup and per-field parsing with file:line errors.

use std::path::{Path, PathBuf};

use hytra_space::nats::NatsArch;

use crate::error::{Error, Result};

/// An opened CSV file with its header.
pub(crate) struct CsvFile {
    pub path: PathBuf,
    pub headers: Vec<String>,
    reader: csv::Reader<std::io::Cursor<Vec<u8>>>,
    /// Byte offsets of every `\n`: line numbers come from these, not from the csv crate's
    /// count, which is one too low in files with CRLF line ends.
    newlines: Vec<u64>,
}

/// One data record with its 1-based line number (the header is line 1).
pub(crate) struct Row<'a> {
    pub path: &'a Path,
    pub line: u64,
    pub record: csv::StringRecord,
}

impl CsvFile {
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(crate::error::io_err(path, "cannot open"))?;
        let newlines = bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i as u64)
            .collect();
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .trim(csv::Trim::All)
            .from_reader(std::io::Cursor::new(bytes));
        let headers = reader
            .headers()
            .map_err(|e| Error::Header {
                path: path.to_path_buf(),
                problem: e.to_string(),
            })?
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').to_string())
            .collect::<Vec<_>>();
        if headers.iter().all(|h| h.is_empty()) {
            return Err(Error::Header {
                path: path.to_path_buf(),
                problem: "file is empty or has no header".into(),
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            headers,
            reader,
            newlines,
        })
    }

    /// Index of a required column.
    pub fn column(&self, name: &str) -> Result<usize> {
        self.optional_column(name).ok_or_else(|| Error::Header {
            path: self.path.clone(),
            problem: format!(
                "missing column {name:?}; columns found: {}",
                self.headers.join(", ")
            ),
        })
    }

    pub fn optional_column(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name)
    }

    /// Calls `f` for every data record, in file order.
    pub fn for_each_row(&mut self, mut f: impl FnMut(&Row<'_>) -> Result<()>) -> Result<()> {
        let width = self.headers.len();
        let mut record = csv::StringRecord::new();
        loop {
            let newlines = &self.newlines;
            // After a CRLF the csv crate starts the next record at the `\n` itself, so a
            // newline at the record's own offset counts too.
            let line_of =
                |p: &csv::Position| newlines.partition_point(|&o| o <= p.byte()) as u64 + 1;
            let more = self.reader.read_record(&mut record).map_err(|e| {
                let line = e.position().map(line_of).unwrap_or(0);
                Error::Data {
                    path: self.path.clone(),
                    line,
                    problem: format!("malformed CSV: {e}"),
                }
            })?;
            if !more {
                return Ok(());
            }
            let line = record.position().map(line_of).unwrap_or(0);
            if record.len() != width {
                return Err(Error::Data {
                    path: self.path.clone(),
                    line,
                    problem: format!("expected {width} fields, found {}", record.len()),
                });
            }
            let row = Row {
                path: &self.path,
                line,
                record: record.clone(),
            };
            f(&row)?;
        }
    }
}

impl Row<'_> {
    pub fn err(&self, problem: impl Into<String>) -> Error {
        Error::Data {
            path: self.path.to_path_buf(),
            line: self.line,
            problem: problem.into(),
        }
    }

    pub fn text(&self, col: usize) -> &str {
        self.record.get(col).unwrap_or("")
    }

    /// A finite floating-point value.
    pub fn finite(&self, col: usize, name: &str) -> Result<f64> {
        let text = self.text(col);
        let v: f64 = text
            .parse()
            .map_err(|_| self.err(format!("column {name:?}: {text:?} is not a number")))?;
        if !v.is_finite() {
            return Err(self.err(format!("column {name:?}: value {text:?} is not finite")));
        }
        Ok(v)
    }

    pub fn integer(&self, col: usize, name: &str) -> Result<u64> {
        let text = self.text(col);
        text.parse().map_err(|_| {
            self.err(format!(
                "column {name:?}: {text:?} is not a non-negative integer"
            ))
        })
    }

    pub fn arch(&self, col: usize, name: &str) -> Result<NatsArch> {
        self.text(col)
            .parse()
            .map_err(|e| self.err(format!("column {name:?}: {e}")))
    }
}
