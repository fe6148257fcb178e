//! Figures as SVG and PNG with plotters, text in the embedded DejaVu Sans (no system fonts
//! needed). Both files are written atomically.

use std::sync::Once;

use plotters::prelude::*;

use crate::error::{LabError, Result};
use crate::run_dir::RunDir;

/// One named line.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series { label: label.into(), points }
    }
}

/// Axes and scale of a line chart.
#[derive(Debug, Clone)]
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub log_x: bool,
    pub log_y: bool,
}

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        // The embedded font is valid TrueType; a failure would only lose text, not the run.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

const SIZE: (u32, u32) = (800, 500);
const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Writes `stem.svg` and `stem.png` in `dir`: one line (with points) per series.
pub fn line_chart(dir: &RunDir, stem: &str, chart: &Chart<'_>, series: &[Series]) -> Result<()> {
    register_font();
    let err = |e: String| LabError::Plot { path: dir.file(stem).display().to_string(), reason: e };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        draw(&root, chart, series).map_err(err)?;
    }
    dir.write_text(&format!("{stem}.svg"), &svg)?;
    let tmp = dir.file(&format!("{stem}.tmp.png"));
    {
        let root = BitMapBackend::new(&tmp, SIZE).into_drawing_area();
        draw(&root, chart, series).map_err(err)?;
    }
    std::fs::rename(&tmp, dir.file(&format!("{stem}.png"))).map_err(crate::error::io_err(&tmp))
}

fn bounds(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && (!log || *v > 0.0))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
    if !lo.is_finite() {
        return if log { (1.0, 10.0) } else { (0.0, 1.0) };
    }
    if log {
        (lo / 1.2, hi * 1.2)
    } else {
        let pad = ((hi - lo) * 0.05).max(1e-12);
        (lo - pad, hi + pad)
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    chart: &Chart<'_>,
    series: &[Series],
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let xs = bounds(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)), chart.log_x);
    let ys = bounds(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)), chart.log_y);
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(chart.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70);
    macro_rules! body {
        ($ctx:expr) => {{
            let mut ctx = $ctx;
            ctx.configure_mesh()
                .x_desc(chart.x_label)
                .y_desc(chart.y_label)
                .label_style(("sans-serif", 14))
                .draw()
                .map_err(|e| e.to_string())?;
            for (i, s) in series.iter().enumerate() {
                let color = COLORS[i % COLORS.len()];
                let pts: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .copied()
                    .filter(|(x, y)| {
                        x.is_finite()
                            && y.is_finite()
                            && (!chart.log_x || *x > 0.0)
                            && (!chart.log_y || *y > 0.0)
                    })
                    .collect();
                ctx.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                    .map_err(|e| e.to_string())?
                    .label(s.label.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                    });
                if pts.len() <= 40 {
                    ctx.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                        .map_err(|e| e.to_string())?;
                }
            }
            ctx.configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 14))
                .draw()
                .map_err(|e| e.to_string())?;
        }};
    }
    match (chart.log_x, chart.log_y) {
        (false, false) => {
            body!(builder.build_cartesian_2d(xs.0..xs.1, ys.0..ys.1).map_err(|e| e.to_string())?)
        }
        (false, true) => body!(
            builder
                .build_cartesian_2d(xs.0..xs.1, (ys.0..ys.1).log_scale())
                .map_err(|e| e.to_string())?
        ),
        (true, false) => body!(
            builder
                .build_cartesian_2d((xs.0..xs.1).log_scale(), ys.0..ys.1)
                .map_err(|e| e.to_string())?
        ),
        (true, true) => body!(
            builder
                .build_cartesian_2d((xs.0..xs.1).log_scale(), (ys.0..ys.1).log_scale())
                .map_err(|e| e.to_string())?
        ),
    }
    root.present().map_err(|e| e.to_string())
}
