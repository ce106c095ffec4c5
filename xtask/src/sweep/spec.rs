//! The sweep file: a grid of protocol variants × seeds, each variant a layered run config.
//!
//! ```toml
//! name = "budget-curve"                 # results go to sweeps/<name>/, runs to runs/sweeps/<name>/
//! description = "today's protocol at growing budgets"
//! seeds = [0, 1, 2]                     # default seeds of every variant
//! rerate_view_epochs = [101]            # optional: re-rate every block with other views
//!
//! [[variant]]
//! name = "cpu-8"                        # [a-z0-9_-]+, unique
//! family = "today's protocol"           # one line per family in the curve
//! config = { preset = "nats-c10-cpu" }  # the same layered format as `--config` files
//!
//! [[variant]]
//! name = "cpu-30"
//! family = "today's protocol"
//! seeds = [0]                           # optional, replaces the file's seeds
//! rerate_view_epochs = []               # optional, replaces the file's list
//! [variant.config]
//! preset = "nats-c10-cpu"
//! data = { train_subset = 6144 }
//! ```
//!
//! The seed of a point replaces the config's `seed`. Every variant is parsed and validated
//! before anything runs, so a typo fails at once and names the variant.

use std::path::Path;

use anyhow::{Context, Result, bail};
use bossnas_config::{DatasetKind, RunConfig};
use hytra_space::SpaceKind;
use serde::Deserialize;

/// A parsed sweep file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepFile {
    /// Directory name of the results (`sweeps/<name>/`) and the runs.
    pub name: String,
    /// What the sweep asks, for the report.
    #[serde(default)]
    pub description: String,
    /// Seeds run for every variant that names none.
    pub seeds: Vec<u64>,
    /// After each block's rating, rate it again with the views of these epochs (the rating
    /// noise of one trained supernet).
    #[serde(default)]
    pub rerate_view_epochs: Vec<u64>,
    /// The protocol variants.
    #[serde(rename = "variant")]
    pub variants: Vec<VariantSpec>,
}

/// One protocol variant as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantSpec {
    pub name: String,
    pub family: String,
    /// A sentence on what differs, for the report.
    #[serde(default)]
    pub note: String,
    pub seeds: Option<Vec<u64>>,
    /// Replaces the file's `rerate_view_epochs` for this variant.
    pub rerate_view_epochs: Option<Vec<u64>>,
    /// Layered run config (`preset = …` plus overrides).
    pub config: toml::Table,
}

/// One (variant, seed) point with its resolved config.
#[derive(Debug, Clone)]
pub struct Point {
    pub variant: String,
    pub family: String,
    pub note: String,
    pub seed: u64,
    pub config: RunConfig,
    /// View epochs of the extra ratings (rating noise) of this point.
    pub rerate_view_epochs: Vec<u64>,
}

impl Point {
    /// File stem of the point's result and run directory: `<variant>-s<seed>`.
    pub fn id(&self) -> String {
        format!("{}-s{}", self.variant, self.seed)
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl SweepFile {
    /// Reads and checks a sweep file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading sweep file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("sweep file {}", path.display()))
    }

    /// Parses and checks sweep text.
    pub fn parse(text: &str) -> Result<Self> {
        let file: SweepFile = toml::from_str(text)?;
        if !valid_name(&file.name) {
            bail!(
                "name {:?}: use lower-case letters, digits, '-' and '_'",
                file.name
            );
        }
        if file.variants.is_empty() {
            bail!("no [[variant]]");
        }
        let mut seen = std::collections::BTreeSet::new();
        for v in &file.variants {
            if !valid_name(&v.name) {
                bail!(
                    "variant name {:?}: use lower-case letters, digits, '-' and '_'",
                    v.name
                );
            }
            if !seen.insert(v.name.as_str()) {
                bail!("variant {:?} is named twice", v.name);
            }
            if v.seeds.as_ref().unwrap_or(&file.seeds).is_empty() {
                bail!("variant {:?} has no seeds", v.name);
            }
        }
        Ok(file)
    }

    /// Every point in file order (variant by variant, seeds in the order given), configs
    /// resolved and validated.
    pub fn points(&self) -> Result<Vec<Point>> {
        let mut out = Vec::new();
        for v in &self.variants {
            for &seed in v.seeds.as_ref().unwrap_or(&self.seeds) {
                let mut table = v.config.clone();
                table.insert("seed".into(), toml::Value::Integer(seed as i64));
                let text = toml::to_string(&table)?;
                let config = RunConfig::from_toml_str(&text)
                    .with_context(|| format!("variant {:?} (seed {seed})", v.name))?;
                if config.space.kind != SpaceKind::Nats
                    || !matches!(config.data.dataset, DatasetKind::Cifar10)
                {
                    bail!(
                        "variant {:?}: a sweep rates NATS-SSS on CIFAR-10 against NATS-Bench, \
                         so space.kind must be \"nats\" and data.dataset \"cifar10\"",
                        v.name
                    );
                }
                out.push(Point {
                    variant: v.name.clone(),
                    family: v.family.clone(),
                    note: v.note.clone(),
                    seed,
                    config,
                    rerate_view_epochs: v
                        .rerate_view_epochs
                        .clone()
                        .unwrap_or_else(|| self.rerate_view_epochs.clone()),
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = r#"
name = "t"
seeds = [0, 1]
[[variant]]
name = "a"
family = "f"
config = { preset = "nats-c10-cpu" }
[[variant]]
name = "b"
family = "f"
seeds = [7]
[variant.config]
preset = "nats-c10-cpu"
data = { train_subset = 64 }
"#;

    #[test]
    fn points_resolve_configs_and_seeds_in_file_order() {
        let f = SweepFile::parse(TWO).unwrap();
        let p = f.points().unwrap();
        let ids: Vec<_> = p.iter().map(Point::id).collect();
        assert_eq!(ids, ["a-s0", "a-s1", "b-s7"]);
        assert_eq!(p[1].config.seed, 1);
        assert_eq!(p[2].config.data.train_subset, 64);
        let preset = RunConfig::preset("nats-c10-cpu").unwrap();
        assert_eq!(p[0].config.data.train_subset, preset.data.train_subset);
    }

    #[test]
    fn bad_files_name_the_problem() {
        let dup = TWO.replace("name = \"b\"", "name = \"a\"");
        let e = format!("{:#}", SweepFile::parse(&dup).unwrap_err());
        assert!(e.contains("named twice"), "{e}");
        let bad_key = TWO.replace("train_subset = 64", "train_subsets = 64");
        let e = format!(
            "{:#}",
            SweepFile::parse(&bad_key).unwrap().points().unwrap_err()
        );
        assert!(e.contains("variant \"b\""), "{e}");
        let other_space = TWO.replace(
            "config = { preset = \"nats-c10-cpu\" }",
            "config = { preset = \"tiny\", data = { dataset = \"synthetic\" } }",
        );
        let e = format!(
            "{:#}",
            SweepFile::parse(&other_space)
                .unwrap()
                .points()
                .unwrap_err()
        );
        assert!(e.contains("cifar10"), "{e}");
        let e = format!(
            "{:#}",
            SweepFile::parse("name = \"A b\"\nseeds=[0]\nvariant=[]").unwrap_err()
        );
        assert!(e.contains("lower-case"), "{e}");
    }
}
