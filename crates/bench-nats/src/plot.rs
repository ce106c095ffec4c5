//! Score-vs-accuracy scatter plots (as in the paper's Fig. 6), PNG and SVG, with `plotters`.
//!
//! No system font stack is used (no fontconfig/freetype): plotters is built with the pure-Rust
//! `ab_glyph` text backend and a TrueType font is loaded **at run time** from the first
//! readable of `$BOSSNAS_FONT` and a list of common system paths (DejaVu, Liberation, Noto,
//! FreeFont). If none is found the figure is drawn without any text (points, axes and grid
//! only) instead of failing.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};

/// Font files tried, in order, after `$BOSSNAS_FONT`.
pub const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

const FAMILY: &str = "sans-serif";

/// Registers a font with plotters once per process; returns the file used, if any.
pub fn font() -> Option<&'static Path> {
    static FONT: OnceLock<Option<PathBuf>> = OnceLock::new();
    FONT.get_or_init(|| {
        let env = std::env::var_os("BOSSNAS_FONT").map(PathBuf::from);
        for path in env
            .into_iter()
            .chain(FONT_CANDIDATES.iter().map(PathBuf::from))
        {
            if let Ok(bytes) = std::fs::read(&path) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font(FAMILY, FontStyle::Normal, bytes).is_ok() {
                    return Some(path);
                }
            }
        }
        None
    })
    .as_deref()
}

/// What to draw.
#[derive(Debug, Clone)]
pub struct ScatterSpec<'a> {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x: &'a [f64],
    pub y: &'a [f64],
    /// Points to mark in red with their label, e.g. the chosen architecture.
    pub highlights: Vec<(f64, f64, String)>,
    /// Pixel size.
    pub size: (u32, u32),
    /// Draw text (needs a font; see [`font`]). With `false` no text is drawn.
    pub text: bool,
}

/// Writes the scatter to `path`; the backend follows the extension (`.png` or `.svg`).
/// Returns whether text was drawn.
pub fn scatter(path: &Path, spec: &ScatterSpec<'_>) -> Result<bool> {
    if spec.x.len() != spec.y.len() || spec.x.is_empty() {
        return Err(Error::Plot {
            path: path.into(),
            problem: "x and y must be non-empty and equally long".into(),
        });
    }
    let text = spec.text && font().is_some();
    let fail = |e: String| Error::Plot {
        path: path.to_path_buf(),
        problem: e,
    };
    match path.extension().and_then(|e| e.to_str()) {
        Some("svg") => {
            let root = SVGBackend::new(path, spec.size).into_drawing_area();
            draw(&root, spec, text).map_err(fail)?;
            root.present().map_err(|e| fail(e.to_string()))?;
        }
        Some("png") => {
            let root = BitMapBackend::new(path, spec.size).into_drawing_area();
            draw(&root, spec, text).map_err(fail)?;
            root.present().map_err(|e| fail(e.to_string()))?;
        }
        _ => return Err(fail("unsupported extension; use .png or .svg".into())),
    }
    Ok(text)
}

fn range(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let pad = if hi > lo { (hi - lo) * 0.03 } else { 1.0 };
    (lo - pad, hi + pad)
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    spec: &ScatterSpec<'_>,
    text: bool,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let (x0, x1) = range(spec.x);
    let (y0, y1) = range(spec.y);
    let mut builder = ChartBuilder::on(root);
    builder.margin(16);
    if text {
        builder
            .caption(&spec.title, (FAMILY, 22))
            .x_label_area_size(48)
            .y_label_area_size(64);
    } else {
        builder.x_label_area_size(0).y_label_area_size(0);
    }
    let mut chart = builder.build_cartesian_2d(x0..x1, y0..y1).map_err(e)?;
    if text {
        chart
            .configure_mesh()
            .x_desc(&spec.x_label)
            .y_desc(&spec.y_label)
            .label_style((FAMILY, 15))
            .axis_desc_style((FAMILY, 17))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(e)?;
    } else {
        // Grid and axes only: without a font plotters cannot lay out tick labels.
        chart
            .plotting_area()
            .draw(&Rectangle::new([(x0, y0), (x1, y1)], BLACK.stroke_width(1)))
            .map_err(e)?;
        for i in 1..10 {
            let t = i as f64 / 10.0;
            let (x, y) = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t);
            let grid = RGBColor(225, 225, 225);
            chart
                .draw_series(LineSeries::new([(x, y0), (x, y1)], grid))
                .map_err(e)?;
            chart
                .draw_series(LineSeries::new([(x0, y), (x1, y)], grid))
                .map_err(e)?;
        }
    }
    let dot = RGBColor(31, 119, 180).mix(0.25).filled();
    chart
        .draw_series(
            spec.x
                .iter()
                .zip(spec.y)
                .map(|(&x, &y)| Circle::new((x, y), 2, dot)),
        )
        .map_err(e)?;
    for (x, y, label) in &spec.highlights {
        chart
            .draw_series([Circle::new((*x, *y), 6, RED.stroke_width(2))])
            .map_err(e)?;
        chart
            .draw_series([Cross::new((*x, *y), 4, RED.stroke_width(2))])
            .map_err(e)?;
        if text {
            let style = TextStyle::from((FAMILY, 15).into_font()).color(&RED);
            let element = EmptyElement::at((*x, *y)) + Text::new(label.clone(), (10, -20), style);
            chart.draw_series([element]).map_err(e)?;
        }
    }
    Ok(())
}
