//! The pictures of a run and a suite report, PNG or SVG (by extension), with `plotters`:
//! training curves per block, the rating of a block, the HyTra fabric with a chosen path and
//! the NATS widths as a bar strip. Text needs a font ([`crate::plot::font`]); without one the
//! figures are drawn without text instead of failing.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::plot::font;

const FAMILY: &str = "sans-serif";
/// ResConv nodes and the chosen path's conv layers.
const CONV: RGBColor = RGBColor(31, 119, 180);
/// ResAtt nodes.
const ATT: RGBColor = RGBColor(255, 127, 14);
const GRID: RGBColor = RGBColor(225, 225, 225);
const WINNER: RGBColor = RGBColor(214, 39, 40);

/// Something that draws itself on any plotters backend.
pub trait Figure {
    /// Pixel size.
    fn size(&self) -> (u32, u32);
    /// Draws on `root`; `text` says whether a font is available.
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        text: bool,
    ) -> std::result::Result<(), String>;
}

/// Writes `figure` to `path` (`.png` or `.svg`); returns whether text was drawn.
pub fn save(path: &Path, figure: &impl Figure) -> Result<bool> {
    let text = font().is_some();
    let fail = |problem: String| Error::Plot {
        path: path.to_path_buf(),
        problem,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| fail(e.to_string()))?;
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("svg") => {
            let root = SVGBackend::new(path, figure.size()).into_drawing_area();
            figure.draw(&root, text).map_err(fail)?;
            root.present().map_err(|e| fail(e.to_string()))?;
        }
        Some("png") => {
            let root = BitMapBackend::new(path, figure.size()).into_drawing_area();
            figure.draw(&root, text).map_err(fail)?;
            root.present().map_err(|e| fail(e.to_string()))?;
        }
        _ => return Err(fail("unsupported extension; use .png or .svg".into())),
    }
    Ok(text)
}

/// Writes `<stem>.png` and `<stem>.svg` in `dir`; returns the two paths.
pub fn save_both(dir: &Path, stem: &str, figure: &impl Figure) -> Result<[std::path::PathBuf; 2]> {
    let png = dir.join(format!("{stem}.png"));
    let svg = dir.join(format!("{stem}.svg"));
    save(&png, figure)?;
    save(&svg, figure)?;
    Ok([png, svg])
}

fn de<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> String {
    e.to_string()
}

/// Tick labels with as many decimals as the axis range needs (scores may differ by 1e-6).
fn ticks(lo: f64, hi: f64) -> impl Fn(&f64) -> String {
    let range = (hi - lo).abs().max(1e-12);
    let decimals = (2.0 - range.log10().floor()).clamp(0.0, 9.0) as usize;
    move |v: &f64| format!("{v:.decimals$}")
}

fn span(v: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = v.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo {
        (hi - lo) * 0.05
    } else {
        0.5 * lo.abs().max(1e-3)
    };
    (lo - pad, hi + pad)
}

// ---------------------------------------------------------------------------------------------

/// One optimizer step of `metrics.jsonl`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    pub block: usize,
    pub global_step: u64,
    pub loss: f64,
    pub lr: f64,
    pub momentum: f64,
}

/// Loss, learning rate and EMA momentum against the optimizer step, one colour per block.
#[derive(Debug, Clone)]
pub struct TrainingCurves {
    pub title: String,
    pub points: Vec<CurvePoint>,
}

impl Figure for TrainingCurves {
    fn size(&self) -> (u32, u32) {
        (900, 720)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        text: bool,
    ) -> std::result::Result<(), String> {
        root.fill(&WHITE).map_err(de)?;
        let root = if text {
            root.titled(&self.title, (FAMILY, 20)).map_err(de)?
        } else {
            root.clone()
        };
        let panels = root.split_evenly((3, 1));
        let x_max = self
            .points
            .iter()
            .map(|p| p.global_step)
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let blocks = self
            .points
            .iter()
            .map(|p| p.block)
            .max()
            .map_or(0, |b| b + 1);
        type Get = fn(&CurvePoint) -> f64;
        let rows: [(&str, Get); 3] = [
            ("loss", |p| p.loss),
            ("learning rate", |p| p.lr),
            ("EMA momentum", |p| p.momentum),
        ];
        for (area, (name, get)) in panels.iter().zip(rows) {
            let (y0, y1) = span(self.points.iter().map(get));
            let mut b = ChartBuilder::on(area);
            b.margin(8);
            if text {
                b.x_label_area_size(28).y_label_area_size(95);
            }
            let mut chart = b.build_cartesian_2d(0.0..x_max, y0..y1).map_err(de)?;
            if text {
                chart
                    .configure_mesh()
                    .y_desc(name)
                    .x_desc("optimizer step")
                    .x_label_formatter(&|x| format!("{x:.0}"))
                    .y_label_formatter(&ticks(y0, y1))
                    .label_style((FAMILY, 13))
                    .axis_desc_style((FAMILY, 14))
                    .light_line_style(GRID)
                    .draw()
                    .map_err(de)?;
            }
            for block in 0..blocks {
                let colour = Palette99::pick(block).to_rgba();
                let series: Vec<(f64, f64)> = self
                    .points
                    .iter()
                    .filter(|p| p.block == block)
                    .map(|p| (p.global_step as f64, get(p)))
                    .collect();
                let drawn = chart
                    .draw_series(LineSeries::new(series, colour.stroke_width(2)))
                    .map_err(de)?;
                if text {
                    drawn.label(format!("block {block}")).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
                    });
                }
            }
            if text && name == "loss" {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .label_font((FAMILY, 13))
                    .draw()
                    .map_err(de)?;
            }
        }
        Ok(())
    }
}

/// Reads the step events of a `metrics.jsonl` (other events are skipped).
pub fn read_metrics(path: &Path) -> Result<Vec<CurvePoint>> {
    let text = std::fs::read_to_string(path).map_err(crate::error::io_err(path, "reading"))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| Error::Data {
            path: path.to_path_buf(),
            line: i as u64 + 1,
            problem: e.to_string(),
        })?;
        if v["event"] != "step" {
            continue;
        }
        let num = |k: &str| v[k].as_f64();
        if let (Some(block), Some(step), Some(loss), Some(lr), Some(m)) = (
            v["block"].as_u64(),
            v["global_step"].as_u64(),
            num("loss"),
            num("lr"),
            num("momentum"),
        ) {
            out.push(CurvePoint {
                block: block as usize,
                global_step: step,
                loss,
                lr,
                momentum: m,
            });
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------

/// The rating of one block: every candidate's score, sorted best first, the winner marked, and
/// (NATS) each candidate's ground-truth accuracy beside it in the same order.
#[derive(Debug, Clone)]
pub struct RatingBars {
    pub title: String,
    /// Candidates in rank order (best first), in the space's notation.
    pub labels: Vec<String>,
    /// Their scores (lower is better).
    pub scores: Vec<f64>,
    /// Rank of the chosen candidate (0 for the population-centre winner).
    pub winner: usize,
    /// Per candidate, e.g. the mean NATS-Bench accuracy of the architectures containing it.
    pub accuracy: Option<(String, Vec<f64>)>,
}

impl Figure for RatingBars {
    fn size(&self) -> (u32, u32) {
        (900, if self.accuracy.is_some() { 640 } else { 380 })
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        text: bool,
    ) -> std::result::Result<(), String> {
        root.fill(&WHITE).map_err(de)?;
        let root = if text {
            root.titled(&self.title, (FAMILY, 20)).map_err(de)?
        } else {
            root.clone()
        };
        let n = self.scores.len().max(1);
        let panels: Vec<_> = if self.accuracy.is_some() {
            root.split_evenly((2, 1))
        } else {
            vec![root.clone()]
        };
        let show_labels = n <= 24;
        let labels = self.labels.clone();
        let label_of = move |x: &f64| -> String {
            let i = x.round();
            if show_labels && (x - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        let mut rows: Vec<(&str, &[f64])> = vec![("score (lower is better)", &self.scores)];
        if let Some((name, acc)) = &self.accuracy {
            rows.push((name, acc));
        }
        for (area, (name, values)) in panels.iter().zip(rows) {
            let (mut y0, y1) = span(values.iter().copied());
            if values.iter().all(|v| *v >= 0.0) && name.starts_with("score") {
                y0 = y0.min(0.0);
            }
            let mut b = ChartBuilder::on(area);
            b.margin(10);
            if text {
                b.x_label_area_size(if show_labels { 48 } else { 30 })
                    .y_label_area_size(95);
            }
            let mut chart = b
                .build_cartesian_2d(-0.6..(n as f64 - 0.4), y0..y1)
                .map_err(de)?;
            if text {
                let fmt_y = ticks(y0, y1);
                let mut mesh = chart.configure_mesh();
                mesh.y_desc(name)
                    .y_label_formatter(&fmt_y)
                    .x_desc(if show_labels {
                        "candidate (rank order)"
                    } else {
                        "candidate rank"
                    })
                    .label_style((FAMILY, 12))
                    .axis_desc_style((FAMILY, 14))
                    .light_line_style(GRID);
                if show_labels {
                    mesh.x_labels(n).x_label_formatter(&label_of);
                } else {
                    mesh.x_label_formatter(&|x| format!("{x:.0}"));
                }
                mesh.draw().map_err(de)?;
            }
            let base = if y0 <= 0.0 && y1 >= 0.0 { 0.0 } else { y0 };
            chart
                .draw_series(values.iter().enumerate().map(|(i, &v)| {
                    let colour = if i == self.winner { WINNER } else { CONV };
                    let x = i as f64;
                    Rectangle::new([(x - 0.35, base), (x + 0.35, v)], colour.mix(0.85).filled())
                }))
                .map_err(de)?;
            if text && let Some(&v) = values.get(self.winner) {
                let style = TextStyle::from((FAMILY, 14).into_font()).color(&WINNER);
                let who = self.labels.get(self.winner).cloned().unwrap_or_default();
                chart
                    .draw_series([EmptyElement::at((self.winner as f64, v))
                        + Text::new(format!("chosen: {who}"), (6, -18), style)])
                    .map_err(de)?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------

/// A NATS-SSS architecture as five bars (c0..c4), each as tall as its width (8..64).
#[derive(Debug, Clone)]
pub struct NatsStrip {
    pub title: String,
    pub widths: [u16; 5],
}

impl Figure for NatsStrip {
    fn size(&self) -> (u32, u32) {
        (520, 320)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        text: bool,
    ) -> std::result::Result<(), String> {
        root.fill(&WHITE).map_err(de)?;
        let root = if text {
            root.titled(&self.title, (FAMILY, 18)).map_err(de)?
        } else {
            root.clone()
        };
        let mut b = ChartBuilder::on(&root);
        b.margin(12);
        if text {
            b.x_label_area_size(34).y_label_area_size(48);
        }
        let mut chart = b
            .build_cartesian_2d(-0.5..4.5f64, 0.0..68.0f64)
            .map_err(de)?;
        if text {
            chart
                .configure_mesh()
                .x_labels(5)
                .x_label_formatter(&|x| {
                    let i = x.round();
                    if (x - i).abs() < 1e-6 && (0.0..5.0).contains(&i) {
                        // Cells and reductions of the NATS-SSS network.
                        ["c0 cell", "c1 reduce", "c2 cell", "c3 reduce", "c4 cell"][i as usize]
                            .to_string()
                    } else {
                        String::new()
                    }
                })
                .y_desc("channels")
                .y_label_formatter(&|y| format!("{y:.0}"))
                .y_labels(9)
                .label_style((FAMILY, 13))
                .axis_desc_style((FAMILY, 14))
                .light_line_style(GRID)
                .draw()
                .map_err(de)?;
        }
        chart
            .draw_series(self.widths.iter().enumerate().map(|(i, &w)| {
                let x = i as f64;
                Rectangle::new([(x - 0.38, 0.0), (x + 0.38, w as f64)], CONV.filled())
            }))
            .map_err(de)?;
        if text {
            let style = TextStyle::from((FAMILY, 15).into_font()).color(&BLACK);
            chart
                .draw_series(self.widths.iter().enumerate().map(|(i, &w)| {
                    EmptyElement::at((i as f64, w as f64))
                        + Text::new(w.to_string(), (-8, -18), style.clone())
                }))
                .map_err(de)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------

/// An MBConv-space architecture as one bar per searched layer, grouped by block: the bar's
/// height is the layer's expansion ratio (3 or 6), its colour the depthwise kernel (3×3 or
/// 5×5), as in the paper's drawings of searched MBConv networks.
#[derive(Debug, Clone)]
pub struct MbconvStrip {
    pub title: String,
    /// Per block, per layer: (expansion ratio, depthwise kernel size).
    pub blocks: Vec<Vec<(u8, u8)>>,
}

impl MbconvStrip {
    /// (x position, expansion, kernel) of every layer; blocks are separated by one empty slot.
    fn bars(&self) -> Vec<(f64, u8, u8)> {
        let mut out = Vec::new();
        let mut x = 0.0;
        for block in &self.blocks {
            for &(e, k) in block {
                out.push((x, e, k));
                x += 1.0;
            }
            x += 1.0;
        }
        out
    }

    /// (first x, last x) of every block.
    fn block_spans(&self) -> Vec<(f64, f64)> {
        let mut out = Vec::new();
        let mut x = 0.0;
        for block in &self.blocks {
            let n = block.len().max(1) as f64;
            out.push((x, x + n - 1.0));
            x += n + 1.0;
        }
        out
    }
}

impl Figure for MbconvStrip {
    fn size(&self) -> (u32, u32) {
        (760, 330)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        text: bool,
    ) -> std::result::Result<(), String> {
        root.fill(&WHITE).map_err(de)?;
        let root = if text {
            root.titled(&self.title, (FAMILY, 18)).map_err(de)?
        } else {
            root.clone()
        };
        let bars = self.bars();
        let x_max = bars.last().map_or(1.0, |b| b.0 + 0.5);
        let mut b = ChartBuilder::on(&root);
        b.margin(12);
        if text {
            b.x_label_area_size(30).y_label_area_size(48);
        }
        let mut chart = b.build_cartesian_2d(-0.5..x_max, 0.0..7.5f64).map_err(de)?;
        if text {
            let spans = self.block_spans();
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(64)
                .x_label_formatter(&|x| {
                    // One label per block, under its middle layer.
                    spans
                        .iter()
                        .position(|&(a, b)| ((a + b) / 2.0 - x).abs() < 0.26)
                        .map(|i| format!("block {i}"))
                        .unwrap_or_default()
                })
                .y_desc("expansion ratio")
                .y_labels(8)
                .y_label_formatter(&|y| format!("{y:.0}"))
                .label_style((FAMILY, 13))
                .axis_desc_style((FAMILY, 14))
                .light_line_style(GRID)
                .draw()
                .map_err(de)?;
        }
        let colour = |k: u8| if k <= 3 { CONV } else { ATT };
        chart
            .draw_series(bars.iter().map(|&(x, e, k)| {
                Rectangle::new([(x - 0.38, 0.0), (x + 0.38, e as f64)], colour(k).filled())
            }))
            .map_err(de)?;
        if text {
            let style = TextStyle::from((FAMILY, 12).into_font()).color(&BLACK);
            chart
                .draw_series(bars.iter().map(|&(x, e, k)| {
                    EmptyElement::at((x, e as f64))
                        + Text::new(format!("{k}²"), (-6, -16), style.clone())
                }))
                .map_err(de)?;
            // Legend: the two kernel colours.
            for (i, (k, c)) in [(3u8, CONV), (5u8, ATT)].into_iter().enumerate() {
                let y = 7.2 - 0.55 * i as f64;
                let x = x_max - 3.2;
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x, y - 0.18), (x + 0.5, y + 0.18)],
                        c.filled(),
                    )))
                    .map_err(de)?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!("{k}×{k} depthwise"),
                        (x + 0.7, y + 0.2),
                        style.clone(),
                    )))
                    .map_err(de)?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------

/// The HyTra fabric (the paper's Figure 10): rows are the four scales (1/4 at the top), columns
/// the choice layers (16 in four blocks of four). Every layer offers ResConv at all four
/// scales and ResAtt at 1/16 and 1/32; the chosen architecture is drawn as a path through its
/// layers' nodes.
#[derive(Debug, Clone)]
pub struct HytraFabric {
    pub title: String,
    /// The chosen layers: (scale row 0..3 for 1/4..1/32, is ResAtt).
    pub layers: Vec<(usize, bool)>,
}

impl Figure for HytraFabric {
    fn size(&self) -> (u32, u32) {
        (1000, 400)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        text: bool,
    ) -> std::result::Result<(), String> {
        root.fill(&WHITE).map_err(de)?;
        let cols = self.layers.len().max(16);
        let (w, h) = (self.size().0 as i32, self.size().1 as i32);
        let (left, right, top, bottom) = (70, 20, if text { 40 } else { 14 }, 60);
        let dx = (w - left - right) / cols as i32;
        let dy = (h - top - bottom) / 4;
        let at = |col: usize, row: usize| {
            (
                left + dx * col as i32 + dx / 2,
                top + dy * row as i32 + dy / 2,
            )
        };
        let r = (dx.min(dy) / 5).clamp(4, 12);
        fn font(size: u32, c: &'static RGBColor) -> TextStyle<'static> {
            TextStyle::from((FAMILY, size).into_font()).color(c)
        }
        const GREY: RGBColor = RGBColor(90, 90, 90);
        if text {
            root.draw(&Text::new(self.title.clone(), (left, 10), font(18, &BLACK)))
                .map_err(de)?;
            for (row, name) in ["1/4", "1/8", "1/16", "1/32"].iter().enumerate() {
                let (_, y) = at(0, row);
                root.draw(&Text::new(name.to_string(), (14, y - 8), font(15, &BLACK)))
                    .map_err(de)?;
            }
        }
        // Block separators.
        for b in 1..cols.div_ceil(4) {
            let x = left + dx * (4 * b) as i32;
            root.draw(&PathElement::new(
                vec![(x, top), (x, h - bottom + 10)],
                RGBColor(170, 170, 170).stroke_width(1),
            ))
            .map_err(de)?;
        }
        // Candidate nodes: ResConv (square) at every scale, ResAtt (circle) at 1/16, 1/32.
        for col in 0..cols {
            for row in 0..4 {
                let (x, y) = at(col, row);
                root.draw(&Rectangle::new(
                    [(x - r - r / 2, y - r / 2 - r / 2), (x - r / 2, y + r / 2)],
                    CONV.mix(0.25).filled(),
                ))
                .map_err(de)?;
                if row >= 2 {
                    root.draw(&Circle::new((x + r, y), r / 2 + 1, ATT.mix(0.3).filled()))
                        .map_err(de)?;
                }
            }
        }
        // The chosen path.
        let node = |col: usize, (row, att): (usize, bool)| {
            let (x, y) = at(col, row);
            if att { (x + r, y) } else { (x - r, y) }
        };
        let points: Vec<(i32, i32)> = self
            .layers
            .iter()
            .enumerate()
            .map(|(c, &l)| node(c, l))
            .collect();
        root.draw(&PathElement::new(points.clone(), BLACK.stroke_width(3)))
            .map_err(de)?;
        for (c, &(row, att)) in self.layers.iter().enumerate() {
            let (x, y) = node(c, (row, att));
            if att {
                root.draw(&Circle::new((x, y), r, ATT.filled()))
                    .map_err(de)?;
            } else {
                root.draw(&Rectangle::new(
                    [(x - r, y - r), (x + r, y + r)],
                    CONV.filled(),
                ))
                .map_err(de)?;
            }
        }
        if text {
            let y = h - bottom + 22;
            for b in 0..cols.div_ceil(4) {
                let x = left + dx * (4 * b) as i32 + dx * 2 - 24;
                root.draw(&Text::new(format!("block {b}"), (x, y), font(14, &BLACK)))
                    .map_err(de)?;
            }
            let y = h - 22;
            root.draw(&Rectangle::new(
                [(left, y), (left + 14, y + 14)],
                CONV.filled(),
            ))
            .map_err(de)?;
            root.draw(&Text::new("ResConv", (left + 20, y), font(14, &BLACK)))
                .map_err(de)?;
            root.draw(&Circle::new((left + 127, y + 7), 7, ATT.filled()))
                .map_err(de)?;
            root.draw(&Text::new("ResAtt", (left + 140, y), font(14, &BLACK)))
                .map_err(de)?;
            root.draw(&Text::new(
                "pale: candidates of each layer; bold: the chosen path",
                (left + 230, y),
                font(14, &GREY),
            ))
            .map_err(de)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_figure_writes_png_and_svg() {
        let dir = std::env::temp_dir().join(format!("bench-nats-figures-{}", std::process::id()));
        let points: Vec<CurvePoint> = (0..30)
            .map(|i| CurvePoint {
                block: i / 10,
                global_step: i as u64 + 1,
                loss: -3.0 + (i % 10) as f64 * 0.05,
                lr: 0.1 * (1.0 - (i % 10) as f64 / 10.0),
                momentum: 0.99 + (i % 10) as f64 * 0.001,
            })
            .collect();
        let curves = TrainingCurves {
            title: "t".into(),
            points,
        };
        let bars = RatingBars {
            title: "block 0".into(),
            labels: (0..8).map(|i| format!("{}", 8 * (i + 1))).collect(),
            scores: (0..8).map(|i| 0.1 + i as f64 * 0.01).collect(),
            winner: 0,
            accuracy: Some(("acc".into(), (0..8).map(|i| 90.0 - i as f64).collect())),
        };
        let strip = NatsStrip {
            title: "64:40:48:64:56".into(),
            widths: [64, 40, 48, 64, 56],
        };
        let fabric = HytraFabric {
            title: "f".into(),
            layers: (0..16).map(|i| (i / 4, i >= 8 && i % 2 == 0)).collect(),
        };
        for (stem, files) in [
            ("curves", save_both(&dir, "curves", &curves).unwrap()),
            ("rating", save_both(&dir, "rating", &bars).unwrap()),
            ("strip", save_both(&dir, "strip", &strip).unwrap()),
            ("fabric", save_both(&dir, "fabric", &fabric).unwrap()),
        ] {
            for f in files {
                let bytes = std::fs::read(&f).unwrap();
                assert!(
                    bytes.len() > 500,
                    "{stem}: {} is {} bytes",
                    f.display(),
                    bytes.len()
                );
            }
        }
        let svg = std::fs::read_to_string(dir.join("fabric.svg")).unwrap();
        assert!(svg.contains("<svg"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn metrics_keep_only_steps() {
        let dir = std::env::temp_dir().join(format!("bench-nats-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("metrics.jsonl");
        std::fs::write(
            &p,
            "{\"event\":\"step\",\"block\":0,\"global_step\":1,\"loss\":-1.5,\"lr\":0.1,\"momentum\":0.99}\n\
             {\"event\":\"block_end\",\"block\":0,\"best_path\":[1,0],\"global_step\":1}\n\n",
        )
        .unwrap();
        let m = read_metrics(&p).unwrap();
        assert_eq!(
            m,
            vec![CurvePoint {
                block: 0,
                global_step: 1,
                loss: -1.5,
                lr: 0.1,
                momentum: 0.99
            }]
        );
        std::fs::write(&p, "not json\n").unwrap();
        let e = read_metrics(&p).unwrap_err().to_string();
        assert!(e.contains("metrics.jsonl") && e.contains('1'), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
