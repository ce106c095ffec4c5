//! The sweep's report: one row per variant (median over seeds with the seed spread beside
//! the bootstrap interval) and the curve of τ-b against CPU-minutes, one line per protocol
//! family, the free proxies and the paper's figure as horizontal references.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use plotters::prelude::*;

use super::record::PointResult;
use super::spec::SweepFile;

/// The paper's NATS-SSS CIFAR-10 τ (full protocol, 4 GPUs × 3 h).
pub const PAPER_TAU_B: f64 = 0.534;

/// Reads every result of a sweep (any file `results/*.json`), sorted by file name.
pub fn read_results(results_root: &Path) -> Result<Vec<PointResult>> {
    let dir = results_root.join("results");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
        .iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
        })
        .collect()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One variant over its seeds.
#[derive(Debug, Clone)]
pub struct VariantRow {
    pub variant: String,
    pub family: String,
    pub note: String,
    pub tau_b: Vec<f64>,
    pub median_tau_b: f64,
    /// Median width of the per-run bootstrap interval.
    pub median_ci_width: Option<f64>,
    pub median_rho: f64,
    pub median_binned: Option<f64>,
    pub median_valid_tau_b: f64,
    pub median_cpu_min: f64,
    pub median_wall_min: f64,
    pub median_steps: f64,
    pub median_images: f64,
    pub median_tflops: f64,
    pub searched: Vec<(String, Option<f64>, Option<usize>)>,
    pub block_tau_alone: Vec<f64>,
    pub rerating_agreement: Vec<f64>,
    /// Per block: median τ-b between the potentials and the official full-budget run's
    /// (`None` where no result of the variant recorded it).
    pub official_agreement: Vec<Option<f64>>,
    pub mean_load: f64,
}

/// Groups results by variant, in the order of the sweep file (unknown variants last).
pub fn rows(file: &SweepFile, results: &[PointResult]) -> Vec<VariantRow> {
    let mut by: BTreeMap<(usize, String), Vec<&PointResult>> = BTreeMap::new();
    for r in results {
        let order = file
            .variants
            .iter()
            .position(|v| v.name == r.variant)
            .unwrap_or(usize::MAX);
        by.entry((order, r.variant.clone())).or_default().push(r);
    }
    by.into_values()
        .map(|rs| {
            let col = |f: &dyn Fn(&PointResult) -> f64| {
                median(&mut rs.iter().map(|r| f(r)).collect::<Vec<_>>())
            };
            let opt_col = |f: &dyn Fn(&PointResult) -> Option<f64>| {
                let mut v: Vec<f64> = rs.iter().filter_map(|r| f(r)).collect();
                (!v.is_empty()).then(|| median(&mut v))
            };
            let nblocks = rs.iter().map(|r| r.blocks.len()).max().unwrap_or(0);
            VariantRow {
                variant: rs[0].variant.clone(),
                family: rs[0].family.clone(),
                note: rs[0].note.clone(),
                tau_b: rs.iter().map(|r| r.correlation.kendall_tau_b).collect(),
                median_tau_b: col(&|r| r.correlation.kendall_tau_b),
                median_ci_width: opt_col(&|r| r.correlation.kendall_tau_b_ci.map(|c| c[1] - c[0])),
                median_rho: col(&|r| r.correlation.spearman_rho),
                median_binned: opt_col(&|r| r.correlation.mean_binned_tau_b),
                median_valid_tau_b: col(&|r| r.correlation.valid_kendall_tau_b),
                median_cpu_min: col(&|r| r.compute.search_cpu_s / 60.0),
                median_wall_min: col(&|r| r.compute.search_wall_s / 60.0),
                median_steps: col(&|r| r.compute.optimizer_steps as f64),
                median_images: col(&|r| r.compute.training_images as f64),
                median_tflops: col(&|r| r.compute.supernet_flops / 1e12),
                searched: rs
                    .iter()
                    .map(|r| {
                        (
                            r.searched.arch.clone(),
                            r.searched.accuracy,
                            r.searched.rank,
                        )
                    })
                    .collect(),
                block_tau_alone: (0..nblocks)
                    .map(|k| col(&|r| r.blocks.get(k).map_or(f64::NAN, |b| b.tau_b_alone)))
                    .collect(),
                rerating_agreement: (0..nblocks)
                    .map(|k| {
                        let mut v: Vec<f64> = rs
                            .iter()
                            .flat_map(|r| {
                                r.rerating
                                    .iter()
                                    .filter_map(|x| x.agreement_tau_b.get(k).copied())
                            })
                            .collect();
                        median(&mut v)
                    })
                    .collect(),
                official_agreement: (0..nblocks)
                    .map(|k| opt_col(&|r| r.blocks.get(k).and_then(|b| b.tau_b_vs_official)))
                    .collect(),
                mean_load: rs.iter().map(|r| r.compute.spent.mean_load).sum::<f64>()
                    / rs.len() as f64,
            }
        })
        .collect()
}

fn f3(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "—".into()
    }
}

fn spread(v: &[f64]) -> String {
    if v.len() < 2 {
        return "— (1 seed)".into();
    }
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("[{lo:.3}, {hi:.3}] ({} seeds)", v.len())
}

/// The markdown table of the variants.
pub fn table(rows: &[VariantRow], baselines: &[(String, f64)]) -> String {
    let mut s = String::new();
    s.push_str(
        "| variant | family | CPU-min | wall min | steps | images | TFLOPs | τ-b median | seed spread (min, max) | bootstrap CI width | ρ | binned τ-b | τ-b (valid column) | τ-b alone per block | τ-b against the official potentials per block | re-rating agreement per block | searched (acc %, rank) | mean load |\n",
    );
    s.push_str(
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---|---|---|---:|\n",
    );
    for r in rows {
        let searched = r
            .searched
            .iter()
            .map(|(a, acc, rank)| {
                format!(
                    "{a} ({}, {})",
                    acc.map_or("—".into(), |x| format!("{x:.2}")),
                    rank.map_or("—".into(), |x| x.to_string())
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        let list = |v: &[f64]| v.iter().map(|x| f3(*x)).collect::<Vec<_>>().join(" / ");
        let _ = writeln!(
            s,
            "| {} | {} | {:.1} | {:.1} | {:.0} | {:.0} | {:.1} | **{}** | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} |",
            r.variant,
            r.family,
            r.median_cpu_min,
            r.median_wall_min,
            r.median_steps,
            r.median_images,
            r.median_tflops,
            f3(r.median_tau_b),
            spread(&r.tau_b),
            r.median_ci_width.map_or("—".into(), f3),
            f3(r.median_rho),
            r.median_binned.map_or("—".into(), f3),
            f3(r.median_valid_tau_b),
            list(&r.block_tau_alone),
            r.official_agreement
                .iter()
                .map(|x| x.map_or("—".into(), f3))
                .collect::<Vec<_>>()
                .join(" / "),
            list(&r.rerating_agreement),
            searched,
            r.mean_load,
        );
    }
    if !baselines.is_empty() {
        s.push_str("\nFree references on the same ground truth (τ-b): ");
        let refs: Vec<String> = baselines
            .iter()
            .map(|(n, t)| format!("{n} {t:.3}"))
            .chain(std::iter::once(format!(
                "paper (official scores re-rated) {PAPER_TAU_B:.3}"
            )))
            .collect();
        s.push_str(&refs.join(", "));
        s.push_str(".\n");
    }
    s
}

/// Draws τ-b against CPU-minutes: one line per family (median over seeds, the seed range as
/// a vertical bar), dashed horizontal references.
pub fn curve(path: &Path, rows: &[VariantRow], refs: &[(String, f64)]) -> Result<()> {
    let has_font = bench_nats::plot::font().is_some();
    let max_x = rows.iter().map(|r| r.median_cpu_min).fold(1.0, f64::max) * 1.15;
    let max_y = refs
        .iter()
        .map(|r| r.1)
        .chain(rows.iter().flat_map(|r| r.tau_b.iter().copied()))
        .fold(0.6, f64::max)
        .min(1.0)
        + 0.05;
    let min_y = rows
        .iter()
        .flat_map(|r| r.tau_b.iter().copied())
        .fold(0.0, f64::min)
        - 0.02;
    let spec = CurveSpec {
        rows,
        refs,
        has_font,
        max_x,
        min_y,
        max_y,
    };
    let svg = path.with_extension("svg");
    draw_curve(SVGBackend::new(&svg, (900, 560)).into_drawing_area(), &spec)?;
    let png = path.with_extension("png");
    draw_curve(
        BitMapBackend::new(&png, (900, 560)).into_drawing_area(),
        &spec,
    )?;
    Ok(())
}

/// What [`draw_curve`] draws.
struct CurveSpec<'a> {
    rows: &'a [VariantRow],
    refs: &'a [(String, f64)],
    has_font: bool,
    max_x: f64,
    min_y: f64,
    max_y: f64,
}

fn draw_curve<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    spec: &CurveSpec<'_>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let CurveSpec {
        rows,
        refs,
        has_font,
        max_x,
        min_y,
        max_y,
    } = *spec;

    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root);
    chart.margin(15);
    if has_font {
        chart
            .caption(
                "NATS-SSS CIFAR-10: Kendall τ-b against CPU-minutes",
                ("sans-serif", 20),
            )
            .x_label_area_size(40)
            .y_label_area_size(50);
    }
    let mut chart = chart
        .build_cartesian_2d(0.0..max_x, min_y..max_y)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut mesh = chart.configure_mesh();
    if has_font {
        mesh.x_desc("CPU-minutes of the search (process user + system)")
            .y_desc("Kendall τ-b");
    }
    mesh.draw().map_err(|e| anyhow::anyhow!("{e}"))?;
    // Ten distinguishable colours (Tableau 10): a sweep file of up to ten families gets one
    // colour each.
    const ORANGE: RGBColor = RGBColor(255, 127, 14);
    const BROWN: RGBColor = RGBColor(140, 86, 75);
    const GREY: RGBColor = RGBColor(127, 127, 127);
    const OLIVE: RGBColor = RGBColor(188, 189, 34);
    let palette = [
        &BLUE, &RED, &GREEN, &MAGENTA, &CYAN, &BLACK, &ORANGE, &BROWN, &GREY, &OLIVE,
    ];
    let mut families: Vec<&str> = Vec::new();
    for r in rows {
        if !families.contains(&r.family.as_str()) {
            families.push(&r.family);
        }
    }
    for (i, fam) in families.iter().enumerate() {
        let colour = palette[i % palette.len()];
        let mut pts: Vec<&VariantRow> = rows.iter().filter(|r| r.family == *fam).collect();
        pts.sort_by(|a, b| a.median_cpu_min.total_cmp(&b.median_cpu_min));
        let line: Vec<(f64, f64)> = pts
            .iter()
            .map(|r| (r.median_cpu_min, r.median_tau_b))
            .collect();
        let series = chart
            .draw_series(LineSeries::new(line.clone(), colour.stroke_width(2)))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if has_font {
            series.label(fam.to_string()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        }
        chart
            .draw_series(line.iter().map(|&p| Circle::new(p, 4, colour.filled())))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for r in &pts {
            let lo = r.tau_b.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = r.tau_b.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(r.median_cpu_min, lo), (r.median_cpu_min, hi)],
                    colour.stroke_width(1),
                )))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
    }
    for (i, (name, tau)) in refs.iter().enumerate() {
        let grey = RGBColor(90 + 40 * (i as u8 % 3), 90, 90);
        let dashes: Vec<(f64, f64)> = (0..40)
            .filter(|j| j % 2 == 0)
            .flat_map(|j| {
                let a = max_x * j as f64 / 40.0;
                [(a, *tau), (a + max_x / 40.0, *tau)]
            })
            .collect();
        for seg in dashes.chunks(2) {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    seg.to_vec(),
                    grey.stroke_width(1),
                )))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        if has_font {
            chart
                .draw_series(std::iter::once(Text::new(
                    format!("{name} {tau:.3}"),
                    (max_x * 0.02, *tau + 0.012),
                    ("sans-serif", 13).into_font().color(&grey),
                )))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
    }
    if has_font && !families.is_empty() {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// A sweep's results grouped for a report.
pub struct Summary {
    pub results: usize,
    pub rows: Vec<VariantRow>,
    pub baselines: Vec<(String, f64)>,
    /// Horizontal references of the curve.
    pub refs: Vec<(String, f64)>,
}

/// Reads and groups a sweep's results.
pub fn summarise(file: &SweepFile, results_root: &Path) -> Result<Summary> {
    let results = read_results(results_root)?;
    let rows = rows(file, &results);
    let baselines: Vec<(String, f64)> = results
        .iter()
        .find(|r| !r.correlation.baselines.is_empty())
        .map(|r| r.correlation.baselines.clone())
        .unwrap_or_default();
    let mut refs: Vec<(String, f64)> = baselines
        .iter()
        .filter(|(n, _)| n.contains("param") || n.contains("width"))
        .cloned()
        .collect();
    refs.push(("paper".into(), PAPER_TAU_B));
    Ok(Summary {
        results: results.len(),
        rows,
        baselines,
        refs,
    })
}

/// Writes `report.md`, `curve.svg` and `curve.png` into `results_root`; returns the report.
pub fn write(file: &SweepFile, results_root: &Path) -> Result<PathBuf> {
    let Summary {
        results,
        rows,
        baselines,
        refs,
    } = summarise(file, results_root)?;
    std::fs::create_dir_all(results_root)?;
    curve(&results_root.join("curve"), &rows, &refs)?;
    let mut md = format!("# Sweep `{}`\n\n{}\n\n", file.name, file.description.trim());
    let _ = writeln!(
        md,
        "{} results of {} variants. Every τ is Kendall τ-b over all 32,768 NATS-SSS \
         architectures against `cifar10_test_acc_hp90`, oriented (positive = ranks better \
         architectures higher). The *seed spread* is the range over training seeds; the \
         *bootstrap CI width* is the 95 % interval of one run resampling architectures, which \
         is much narrower. CPU-min is the search's process user + system time (2 threads; training, \
         rating and search, without the correlation with NATS-Bench); the wall time was measured on a machine that may have been shared (mean load in the JSON).\n",
        results,
        rows.len()
    );
    md.push_str(&table(&rows, &baselines));
    md.push_str("\n![τ-b against CPU-minutes](curve.svg)\n");
    for r in &rows {
        if !r.note.is_empty() {
            let _ = writeln!(md, "\n- `{}`: {}", r.variant, r.note);
        }
    }
    let path = results_root.join("report.md");
    bossnas_runfs::write_atomic(&path, md.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::meter::Spent;
    use crate::sweep::record::{CorrelationSummary, PointCompute, Searched};

    fn result(variant: &str, seed: u64, tau: f64, cpu_min: f64) -> PointResult {
        PointResult {
            sweep: "t".into(),
            variant: variant.into(),
            family: "f".into(),
            note: String::new(),
            seed,
            git_commit: None,
            compute: PointCompute {
                spent: Spent::default(),
                search_cpu_s: cpu_min * 60.0,
                search_wall_s: cpu_min * 30.0,
                noise_rating_cpu_s: 0.0,
                threads: 2,
                cpu_model: None,
                optimizer_steps: 10,
                training_images: 320,
                view_forwards: 0,
                supernet_flops: 1e12,
                train_s: 0.0,
                search_s: 0.0,
                correlate_s: 0.0,
            },
            correlation: CorrelationSummary {
                n: 32768,
                kendall_tau_b: tau,
                kendall_tau_b_ci: Some([tau - 0.01, tau + 0.01]),
                spearman_rho: tau,
                spearman_rho_ci: None,
                pearson_r: tau,
                pearson_r_ci: None,
                mean_binned_tau_b: None,
                valid_kendall_tau_b: tau,
                baselines: vec![("params".into(), 0.69)],
            },
            blocks: Vec::new(),
            rerating: Vec::new(),
            searched: Searched {
                arch: "64:64:64:64:64".into(),
                accuracy: None,
                rank: None,
                population: 32768,
            },
            config_toml: String::new(),
        }
    }

    #[test]
    fn rows_give_the_median_and_the_seed_spread_in_file_order() {
        let file = SweepFile::parse(
            "name = \"t\"\nseeds = [0]\n[[variant]]\nname = \"b\"\nfamily = \"f\"\nconfig = {}\n\
             [[variant]]\nname = \"a\"\nfamily = \"f\"\nconfig = {}\n",
        )
        .unwrap();
        let results = [
            result("a", 0, 0.1, 4.0),
            result("a", 1, 0.3, 6.0),
            result("a", 2, 0.2, 5.0),
            result("b", 0, 0.5, 9.0),
        ];
        let rows = rows(&file, &results);
        assert_eq!(rows[0].variant, "b", "file order, not name order");
        assert_eq!(rows[1].median_tau_b, 0.2);
        assert_eq!(rows[1].median_cpu_min, 5.0);
        let t = table(&rows, &[("params".into(), 0.69)]);
        assert!(t.contains("[0.100, 0.300] (3 seeds)"), "{t}");
        assert!(t.contains("— (1 seed)"), "{t}");
        assert!(t.contains("params 0.690"), "{t}");
        let dir = tempfile::tempdir().unwrap();
        curve(
            &dir.path().join("curve"),
            &rows,
            &[("paper".into(), PAPER_TAU_B)],
        )
        .unwrap();
        assert!(dir.path().join("curve.svg").is_file());
        assert!(dir.path().join("curve.png").is_file());
    }
}
