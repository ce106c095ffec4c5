//! The reproduction suites: which preset each trains, which data it needs, and the paper's
//! figures it is compared with (spec §8).

use bossnas_datasets::Dataset;
use clap::ValueEnum;

/// A suite name on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Suite {
    /// Sizes of the three spaces and MAdds/params of the named HyTra networks against the
    /// paper's Table 1 (no data, no training; seconds).
    Spaces,
    /// The `tiny` preset end to end (synthetic 8×8 images, a NATS-SSS supernet with widths 4
    /// and 8): train, rate, search, report. Seconds; part of CI.
    Smoke,
    /// NATS-SSS CIFAR-10 search on 2 CPU cores (`nats-c10-cpu` preset, ~10 min) with the
    /// NATS-Bench correlation report.
    NatsC10Cpu,
    /// The official NATS-SSS CIFAR-10 protocol (GPU machines).
    NatsC10Paper,
    /// The official NATS-SSS CIFAR-100 protocol (GPU machines).
    NatsC100Paper,
    /// The official MBConv ImageNet search (GPU machines).
    MbconvImagenetPaper,
    /// The official HyTra ImageNet search (GPU machines).
    HytraImagenetPaper,
}

/// One published figure our run is set beside.
#[derive(Debug, Clone, Copy)]
pub struct PaperFigure {
    pub what: &'static str,
    pub value: &'static str,
    pub source: &'static str,
}

/// A suite that trains a supernet and searches it.
#[derive(Debug, Clone, Copy)]
pub struct SearchSuite {
    pub name: &'static str,
    pub title: &'static str,
    /// Config preset (`bossnas_config::PRESETS`).
    pub preset: &'static str,
    /// Dataset to locate (`None`: synthetic images).
    pub dataset: Option<Dataset>,
    /// Correlate the searched scores with NATS-Bench SSS CIFAR-10 ground truth.
    pub nats_c10_truth: TruthNeed,
    /// What the paper reports for this protocol.
    pub paper: &'static [PaperFigure],
    /// Compute the paper's protocol took.
    pub paper_compute: &'static str,
    /// Notes printed in the report.
    pub notes: &'static [&'static str],
    /// The paper's preset this protocol is a budget of: the report lists every difference.
    pub paper_preset: Option<&'static str>,
    /// The sweep that measured this protocol (its table, curve and seed spread go into the
    /// report when its results are there).
    pub sweep: Option<SweepRef>,
}

/// A sweep file and the variant in it that is this suite's protocol.
#[derive(Debug, Clone, Copy)]
pub struct SweepRef {
    /// Sweep file, relative to the workspace root.
    pub file: &'static str,
    /// The variant equal to the suite's preset.
    pub variant: &'static str,
}

/// Whether a suite needs the NATS-Bench CIFAR-10 ground truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TruthNeed {
    /// Not a NATS CIFAR-10 search.
    None,
    /// Correlate when the file is there (the smoke suite).
    IfPresent,
    /// Refuse to start without it (the correlation is the suite's result).
    Required,
}

const NATS_C10_PAPER: &[PaperFigure] = &[
    PaperFigure {
        what: "Kendall τ (NATS-SSS CIFAR-10, 32,768 architectures)",
        value: "0.53",
        source: "paper Table 4 / README",
    },
    PaperFigure {
        what: "Spearman ρ",
        value: "0.73",
        source: "paper Table 4 / README",
    },
    PaperFigure {
        what: "Pearson r",
        value: "0.72",
        source: "paper Table 4 / README",
    },
    PaperFigure {
        what: "official scores re-rated (τ-b / ρ / r, loss orientation)",
        value: "−0.534 / −0.734 / −0.718",
        source: "spec §8.1, shared/data/bossnas-reference",
    },
    PaperFigure {
        what: "searched architecture (test accuracy, hp90)",
        value: "64:40:48:64:56 (93.29 %)",
        source: "paper Table 4, spec §6.4",
    },
];

const SMOKE_NOTES: &[&str] = &[
    "The `tiny` preset trains a NATS-SSS supernet with two widths per layer (4 and 8 channels) \
     on 32 synthetic 8×8 images for one epoch per block: it checks that every stage of the \
     pipeline runs and writes its files, not that the rating is any good. Its rankings do not \
     cover the 32,768 NATS-Bench architectures, so no correlation is computed.",
];

const NATS_C10_CPU_NOTES: &[&str] = &[
    "A CPU budget of the NATS-SSS protocol: the supernet at a quarter of the widths, a subset of \
     the CIFAR-10 training images and a few epochs per block (`docs/training.md`). Its \
     τ-b is therefore far below the paper's; the paper's protocol is the `nats-c10-paper` suite.",
];

/// The variant of `sweeps/search-quality.toml` that the `nats-c10-cpu` preset equals.
pub const NATS_C10_CPU_VARIANT: &str = "img1536-ep4";

/// The suites that train and search.
pub fn search_suite(suite: Suite) -> Option<SearchSuite> {
    Some(match suite {
        Suite::Spaces => return None,
        Suite::Smoke => SearchSuite {
            name: "smoke",
            title: "smoke: the tiny preset end to end",
            preset: "tiny",
            dataset: None,
            nats_c10_truth: TruthNeed::IfPresent,
            paper: &[],
            paper_compute: "—",
            notes: SMOKE_NOTES,
            paper_preset: None,
            sweep: None,
        },
        Suite::NatsC10Cpu => SearchSuite {
            name: "nats-c10-cpu",
            title: "NATS-SSS on CIFAR-10 under a 2-core CPU budget",
            preset: "nats-c10-cpu",
            dataset: Some(Dataset::Cifar10),
            nats_c10_truth: TruthNeed::Required,
            paper: NATS_C10_PAPER,
            paper_compute: "4 GPUs × 3 h (README)",
            notes: NATS_C10_CPU_NOTES,
            paper_preset: Some("nats-c10-paper"),
            sweep: Some(SweepRef {
                file: "sweeps/search-quality.toml",
                variant: NATS_C10_CPU_VARIANT,
            }),
        },
        Suite::NatsC10Paper => SearchSuite {
            name: "nats-c10-paper",
            title: "NATS-SSS on CIFAR-10, the official protocol",
            preset: "nats-c10-paper",
            dataset: Some(Dataset::Cifar10),
            nats_c10_truth: TruthNeed::Required,
            paper: NATS_C10_PAPER,
            paper_compute: "4 GPUs × 3 h (README)",
            notes: &[],
            paper_preset: None,
            sweep: None,
        },
        Suite::NatsC100Paper => SearchSuite {
            name: "nats-c100-paper",
            title: "NATS-SSS on CIFAR-100, the official protocol",
            preset: "nats-c100-paper",
            dataset: Some(Dataset::Cifar100),
            nats_c10_truth: TruthNeed::None,
            paper: &[
                PaperFigure {
                    what: "Kendall τ / Spearman ρ / Pearson r (NATS-SSS CIFAR-100)",
                    value: "0.59 / 0.76 / 0.79",
                    source: "paper Table 4 / README (no files shipped)",
                },
                PaperFigure {
                    what: "searched architecture test accuracy",
                    value: "70.86 %",
                    source: "paper Table 4",
                },
            ],
            paper_compute: "4 GPUs × 3 h (README)",
            notes: &[
                "NATS-Bench CIFAR-100 ground truth is not part of shared/data, so the report \
                 gives the search result and writes `nats_scores.csv`; correlate it with \
                 `bossnas nats correlate --truth <csv>` once a CIFAR-100 ground-truth file is \
                 available.",
            ],
            paper_preset: None,
            sweep: None,
        },
        Suite::MbconvImagenetPaper => SearchSuite {
            name: "mbconv-imagenet-paper",
            title: "MBConv space on ImageNet, the official protocol",
            preset: "mbconv-imagenet-paper",
            dataset: Some(Dataset::ImageNet),
            nats_c10_truth: TruthNeed::None,
            paper: &[
                PaperFigure {
                    what: "Kendall τ / Spearman ρ / Pearson r over 23 trained MBConv models",
                    value: "0.65 / 0.78 / 0.85",
                    source: "paper Table 3",
                },
                PaperFigure {
                    what: "BossNet-M1 (w/o SE) / BossNet-M2 (SE) MAdds and top-1",
                    value: "475 M, 76.2 % / 403 M, 77.4 %",
                    source: "paper Table 2",
                },
            ],
            paper_compute: "8 GPUs × 1.5 days (README; paper: 10 GPU-days)",
            notes: &[
                "The 23 retrained MBConv models of the paper's correlation are not available, so \
                 the report gives the searched architecture and its cost; retrain it with \
                 `bossnas retrain`.",
            ],
            paper_preset: None,
            sweep: None,
        },
        Suite::HytraImagenetPaper => SearchSuite {
            name: "hytra-imagenet-paper",
            title: "HyTra space on ImageNet, the official protocol",
            preset: "hytra-imagenet-paper",
            dataset: Some(Dataset::ImageNet),
            nats_c10_truth: TruthNeed::None,
            paper: &[
                PaperFigure {
                    what: "BossNet-T0 (searched) MAdds / params",
                    value: "3.44 G / 38.4 M",
                    source: "spec §8.2",
                },
                PaperFigure {
                    what: "BossNet-T0 top-1 / top-5 after retraining",
                    value: "80.8 / 95.2",
                    source: "paper Table 1",
                },
            ],
            paper_compute: "8 GPUs × 4 days at 24 GB per GPU (README)",
            notes: &[
                "ImageNet accuracy needs the DeiT-recipe retraining of the searched network \
                 (`bossnas retrain --recipe deit`); this suite reports the search result and its \
                 cost.",
            ],
            paper_preset: None,
            sweep: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use bossnas_config::RunConfig;
    use clap::ValueEnum;

    use super::*;

    #[test]
    fn every_training_suite_names_a_valid_preset_and_distinct_report_dir() {
        let mut names = Vec::new();
        for suite in Suite::value_variants() {
            let Some(s) = search_suite(*suite) else {
                assert_eq!(*suite, Suite::Spaces);
                continue;
            };
            let cfg = RunConfig::preset(s.preset)
                .unwrap_or_else(|e| panic!("suite {}: preset {}: {e}", s.name, s.preset));
            assert_eq!(cfg.preset.as_deref(), Some(s.preset));
            // The suite's CLI name is its report directory.
            assert_eq!(suite.to_possible_value().unwrap().get_name(), s.name);
            // A suite that compares with NATS-Bench CIFAR-10 trains on CIFAR-10 or synthetic data.
            if s.nats_c10_truth == TruthNeed::Required {
                assert_eq!(s.dataset, Some(Dataset::Cifar10), "{}", s.name);
            }
            names.push(s.name);
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Suite::value_variants().len() - 1);
    }
}
