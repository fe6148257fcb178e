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

/// Title, axes and scales of a chart: `Chart::new(title).x("c").y("cosine").log_x()`.
#[derive(Debug, Clone)]
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub log_x: bool,
    pub log_y: bool,
}

impl<'a> Chart<'a> {
    /// A chart called `title` with unnamed, linear axes.
    pub fn new(title: &'a str) -> Self {
        Chart { title, x_label: "", y_label: "", log_x: false, log_y: false }
    }

    /// Names the x axis.
    pub fn x(self, label: &'a str) -> Self {
        Chart { x_label: label, ..self }
    }

    /// Names the y axis.
    pub fn y(self, label: &'a str) -> Self {
        Chart { y_label: label, ..self }
    }

    /// A logarithmic x axis.
    pub fn log_x(self) -> Self {
        Chart { log_x: true, ..self }
    }

    /// A logarithmic y axis.
    pub fn log_y(self) -> Self {
        Chart { log_y: true, ..self }
    }
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

/// How many seeds a plotted curve stands for, for its legend: "1 seed" or "mean of n seeds".
pub fn seeds_legend(n: usize) -> String {
    if n == 1 { "1 seed".to_string() } else { format!("mean of {n} seeds") }
}

/// Writes `stem.svg` and `stem.png` in `dir`: one line (with points) per series.
pub fn line_chart(dir: &RunDir, stem: &str, chart: &Chart<'_>, series: &[Series]) -> Result<()> {
    write_figure(dir, stem, SIZE, &Lines { chart, series })
}

/// Something drawn the same way on any backend.
trait Figure {
    fn draw_on<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<(), String>;
}

/// Draws a figure twice, into `stem.svg` and `stem.png` (both atomically).
fn write_figure(dir: &RunDir, stem: &str, size: (u32, u32), fig: &impl Figure) -> Result<()> {
    register_font();
    let err = |e: String| LabError::Plot { path: dir.file(stem).display().to_string(), reason: e };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        fig.draw_on(&root).map_err(err)?;
    }
    dir.write_text(&format!("{stem}.svg"), &svg)?;
    let tmp = dir.file(&format!("{stem}.tmp.png"));
    {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        fig.draw_on(&root).map_err(err)?;
    }
    std::fs::rename(&tmp, dir.file(&format!("{stem}.png"))).map_err(crate::error::io_err(&tmp))
}

struct Lines<'a> {
    chart: &'a Chart<'a>,
    series: &'a [Series],
}

impl Figure for Lines<'_> {
    fn draw_on<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<(), String> {
        draw(root, self.chart, self.series)
    }
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

/// A logarithmic axis over `(lo, hi)`: ticks at powers of 10, or of 2 when the range spans less
/// than two decades (a width sweep d = 64 … 512 or c = 1 … 10 holds no or one power of 10, and
/// would be drawn without a labelled tick).
fn log_axis((lo, hi): (f64, f64)) -> plotters::coord::combinators::LogCoord<f64> {
    (lo..hi).log_scale().base(if hi / lo < 100.0 { 2.0 } else { 10.0 }).into()
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
        (false, true) => {
            body!(builder.build_cartesian_2d(xs.0..xs.1, log_axis(ys)).map_err(|e| e.to_string())?)
        }
        (true, false) => {
            body!(builder.build_cartesian_2d(log_axis(xs), ys.0..ys.1).map_err(|e| e.to_string())?)
        }
        (true, true) => body!(
            builder.build_cartesian_2d(log_axis(xs), log_axis(ys)).map_err(|e| e.to_string())?
        ),
    }
    root.present().map_err(|e| e.to_string())
}

/// Writes `stem.svg` / `stem.png`: a histogram of each series' values over the bins
/// `[edges[i], edges[i+1])` (the last bin closed), the series' bars side by side in each bin.
/// `chart.x_label` names the values; the y axis counts them. Values outside the edges are not
/// drawn.
pub fn histogram(
    dir: &RunDir,
    stem: &str,
    chart: &Chart<'_>,
    edges: &[f64],
    series: &[(String, Vec<f64>)],
) -> Result<()> {
    let increasing = |w: &[f64]| w[1].partial_cmp(&w[0]) == Some(std::cmp::Ordering::Greater);
    if edges.len() < 2 || !edges.windows(2).all(increasing) {
        return Err(LabError::Plot {
            path: dir.file(stem).display().to_string(),
            reason: "histogram edges must increase and number at least 2".into(),
        });
    }
    write_figure(dir, stem, SIZE, &Histogram { chart, edges, series })
}

/// How many values fall in each bin `[edges[i], edges[i+1])` (the last bin closed).
pub fn bin_counts(edges: &[f64], values: &[f64]) -> Vec<usize> {
    let n = edges.len().saturating_sub(1);
    let mut counts = vec![0; n];
    for &v in values {
        if let Some(i) = (0..n)
            .find(|&i| v >= edges[i] && (v < edges[i + 1] || (i + 1 == n && v <= edges[i + 1])))
        {
            counts[i] += 1;
        }
    }
    counts
}

struct Histogram<'a> {
    chart: &'a Chart<'a>,
    edges: &'a [f64],
    series: &'a [(String, Vec<f64>)],
}

impl Figure for Histogram<'_> {
    fn draw_on<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<(), String> {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let counts: Vec<Vec<usize>> =
            self.series.iter().map(|(_, v)| bin_counts(self.edges, v)).collect();
        let top = counts.iter().flatten().copied().max().unwrap_or(0).max(1) as f64 * 1.1;
        let (lo, hi) = (self.edges[0], self.edges[self.edges.len() - 1]);
        let mut ctx = ChartBuilder::on(root)
            .caption(self.chart.title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(lo..hi, 0.0..top)
            .map_err(|e| e.to_string())?;
        ctx.configure_mesh()
            .x_desc(self.chart.x_label)
            .y_desc(self.chart.y_label)
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| e.to_string())?;
        let k = self.series.len().max(1) as f64;
        for (g, ((label, _), c)) in self.series.iter().zip(&counts).enumerate() {
            let color = COLORS[g % COLORS.len()];
            let bars = c.iter().enumerate().filter(|(_, n)| **n > 0).map(|(i, &n)| {
                let w = (self.edges[i + 1] - self.edges[i]) / k;
                let x0 = self.edges[i] + w * g as f64;
                Rectangle::new([(x0 + 0.05 * w, 0.0), (x0 + 0.95 * w, n as f64)], color.filled())
            });
            ctx.draw_series(bars).map_err(|e| e.to_string())?.label(label.clone()).legend(
                move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()),
            );
        }
        ctx.configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())
    }
}

/// How heat-map cells are coloured.
#[derive(Debug, Clone)]
pub enum Palette<'a> {
    /// A white-to-blue scale from `lo` to `hi`, with a labelled colour bar.
    Continuous { lo: f64, hi: f64 },
    /// Cell value i is category i (colours of the line charts), with a legend of the names.
    Categories(&'a [&'a str]),
}

/// A matrix of cells: `cells[row][col]`, row 0 drawn at the top.
#[derive(Debug, Clone)]
pub struct HeatMap<'a> {
    pub title: &'a str,
    /// Names the columns (e.g. `head`, `key position`).
    pub x_label: &'a str,
    /// Names the rows (e.g. `layer`, `query position`).
    pub y_label: &'a str,
    pub cells: &'a [Vec<f64>],
    pub palette: Palette<'a>,
}

/// Writes `stem.svg` / `stem.png`: the matrix as coloured cells with a legend (colour bar or
/// category names) on the right. Rows and columns are labelled by their index.
pub fn heat_map(dir: &RunDir, stem: &str, map: &HeatMap<'_>) -> Result<()> {
    let cols = map.cells.first().map_or(0, Vec::len);
    if cols == 0 || map.cells.iter().any(|r| r.len() != cols) {
        return Err(LabError::Plot {
            path: dir.file(stem).display().to_string(),
            reason: "a heat map needs equally long, non-empty rows".into(),
        });
    }
    write_figure(dir, stem, SIZE, map)
}

fn blue_scale(v: f64, lo: f64, hi: f64) -> RGBColor {
    let t = if hi > lo { ((v - lo) / (hi - lo)).clamp(0.0, 1.0) } else { 0.0 };
    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    RGBColor(mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0))
}

impl HeatMap<'_> {
    fn color(&self, v: f64) -> RGBColor {
        match &self.palette {
            _ if !v.is_finite() => RGBColor(200, 200, 200),
            Palette::Continuous { lo, hi } => blue_scale(v, *lo, *hi),
            Palette::Categories(_) => COLORS[(v.max(0.0) as usize) % COLORS.len()],
        }
    }
}

impl Figure for HeatMap<'_> {
    fn draw_on<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<(), String> {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (rows, cols) = (self.cells.len() as i32, self.cells[0].len() as i32);
        let (main, side) = root.split_horizontally(SIZE.0 * 4 / 5);
        // cell (row i, column j) spans [j − ½, j + ½] × [y − ½, y + ½] with y = rows − 1 − i, so
        // integer ticks sit at cell centres
        let (xr, yr) = (-0.5..cols as f64 - 0.5, -0.5..rows as f64 - 0.5);
        let mut ctx = ChartBuilder::on(&main)
            .caption(self.title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(xr, yr)
            .map_err(|e| e.to_string())?;
        let step = |n: i32| (n / 16).max(1);
        let tick = |v: f64, n: i32, flip: bool| {
            let i = v.round();
            if (v - i).abs() > 1e-6 || i < 0.0 || i >= n as f64 {
                return String::new();
            }
            let label = if flip { n - 1 - i as i32 } else { i as i32 };
            if label % step(n) == 0 { label.to_string() } else { String::new() }
        };
        ctx.configure_mesh()
            .disable_mesh()
            .x_desc(self.x_label)
            .y_desc(self.y_label)
            .x_labels(cols as usize + 1)
            .y_labels(rows as usize + 1)
            .x_label_formatter(&|x| tick(*x, cols, false))
            .y_label_formatter(&|y| tick(*y, rows, true))
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| e.to_string())?;
        let cells = self.cells.iter().enumerate().flat_map(|(i, row)| {
            let y = (rows - 1 - i as i32) as f64;
            row.iter().enumerate().map(move |(j, &v)| (j as f64, y, v))
        });
        ctx.draw_series(cells.map(|(x, y, v)| {
            Rectangle::new([(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)], self.color(v).filled())
        }))
        .map_err(|e| e.to_string())?;
        // the legend: a colour bar or the category names
        let entries: Vec<(String, RGBColor)> = match &self.palette {
            Palette::Continuous { lo, hi } => (0..=4)
                .rev()
                .map(|i| {
                    let v = lo + (hi - lo) * i as f64 / 4.0;
                    (format!("{v:.3}"), blue_scale(v, *lo, *hi))
                })
                .collect(),
            Palette::Categories(names) => names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.to_string(), COLORS[i % COLORS.len()]))
                .collect(),
        };
        for (i, (label, color)) in entries.iter().enumerate() {
            let y = 60 + 28 * i as i32;
            side.draw(&Rectangle::new([(10, y), (32, y + 18)], color.filled()))
                .map_err(|e| e.to_string())?;
            side.draw(&Rectangle::new([(10, y), (32, y + 18)], BLACK.stroke_width(1)))
                .map_err(|e| e.to_string())?;
            side.draw(&Text::new(label.clone(), (40, y + 2), ("sans-serif", 14)))
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())
    }
}

/// Writes `stem.svg` / `stem.png`: one panel per claim with evidence — each seed's value as a
/// point, the mean with its 95 % t interval as a bar to the right, and the threshold(s) as red
/// lines — so the spread over seeds behind every verdict is visible.
pub fn claims_chart(dir: &RunDir, stem: &str, claims: &[crate::claim::Claim]) -> Result<()> {
    let panels: Vec<&crate::claim::Claim> =
        claims.iter().filter(|c| c.evidence.is_some()).collect();
    if panels.is_empty() {
        return Ok(());
    }
    let cols = panels.len().min(3);
    let rows = panels.len().div_ceil(cols);
    let size = (380 * cols as u32, 260 * rows as u32);
    write_figure(dir, stem, size, &ClaimPanels { panels, rows, cols })
}

struct ClaimPanels<'a> {
    panels: Vec<&'a crate::claim::Claim>,
    rows: usize,
    cols: usize,
}

impl Figure for ClaimPanels<'_> {
    fn draw_on<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<(), String> {
        use crate::claim::{Rule, Verdict};
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let areas = root.split_evenly((self.rows, self.cols));
        for (claim, area) in self.panels.iter().zip(areas) {
            let Some(e) = &claim.evidence else { continue };
            let thresholds: Vec<f64> = match e.rule {
                Rule::Above(t) | Rule::Below(t) => vec![t],
                Rule::Within(a, b) => vec![a, b],
            };
            let n = e.values.len();
            let interval = e.interval.as_ref().map(|i| (i.low, i.high));
            let ys = bounds(
                e.values
                    .iter()
                    .copied()
                    .chain(thresholds.iter().copied())
                    .chain(interval.into_iter().flat_map(|(a, b)| [a, b])),
                false,
            );
            let verdict = claim.outcome();
            let color = match verdict {
                Verdict::Holds => COLORS[2],
                Verdict::Fails => COLORS[3],
                Verdict::Inconclusive => COLORS[7],
            };
            let mut ctx = ChartBuilder::on(&area)
                .caption(format!("{} — {}", claim.id, verdict.name()), ("sans-serif", 14))
                .margin(8)
                .x_label_area_size(24)
                .y_label_area_size(56)
                .build_cartesian_2d(-0.5..n as f64 + 0.5, ys.0..ys.1)
                .map_err(|e| e.to_string())?;
            ctx.configure_mesh()
                .x_desc("seed index (mean ± 95 % CI at right)")
                .label_style(("sans-serif", 11))
                .x_labels(n + 2)
                .draw()
                .map_err(|e| e.to_string())?;
            for t in thresholds {
                ctx.draw_series(LineSeries::new(
                    vec![(-0.5, t), (n as f64 + 0.5, t)],
                    RED.stroke_width(1),
                ))
                .map_err(|e| e.to_string())?;
            }
            ctx.draw_series(
                e.values
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.is_finite())
                    .map(|(i, &v)| Circle::new((i as f64, v), 4, COLORS[0].filled())),
            )
            .map_err(|e| e.to_string())?;
            if let Some((lo, hi)) = interval {
                let x = n as f64;
                ctx.draw_series(std::iter::once(PathElement::new(
                    vec![(x, lo), (x, hi)],
                    color.stroke_width(3),
                )))
                .map_err(|e| e.to_string())?;
                let mean = e.mean();
                ctx.draw_series(std::iter::once(Circle::new((x, mean), 5, color.filled())))
                    .map_err(|e| e.to_string())?;
            }
        }
        root.present().map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_legend_counts_in_words() {
        assert_eq!(seeds_legend(1), "1 seed");
        assert_eq!(seeds_legend(3), "mean of 3 seeds");
    }

    #[test]
    fn bins_hold_their_left_edge_and_the_last_holds_its_right_edge() {
        assert_eq!(bin_counts(&[0.0, 1.0, 2.0], &[0.0, 0.5, 1.0, 2.0, 2.5, -1.0]), vec![2, 2]);
    }

    #[test]
    fn histograms_and_heat_maps_are_written_as_svg_and_png() {
        let root = std::env::temp_dir().join(format!("saturn-plot-{}", std::process::id()));
        let dir = RunDir::create(&root, "figs").unwrap();
        let chart = Chart::new("t").x("x").y("count");
        let series = vec![("a".to_string(), vec![0.5, 1.5, 1.7]), ("b".to_string(), vec![1.0])];
        histogram(&dir, "hist", &chart, &[0.0, 1.0, 2.0], &series).unwrap();
        let cells = vec![vec![0.0, 1.0, 2.0], vec![3.0, 0.0, f64::NAN]];
        let names = ["hard", "averaging", "sink", "mixed"];
        let map = HeatMap {
            title: "classes",
            x_label: "head",
            y_label: "layer",
            cells: &cells,
            palette: Palette::Categories(&names),
        };
        heat_map(&dir, "classes", &map).unwrap();
        let cont = HeatMap { palette: Palette::Continuous { lo: 0.0, hi: 3.0 }, ..map.clone() };
        heat_map(&dir, "probs", &cont).unwrap();
        for f in ["hist", "classes", "probs"] {
            assert!(
                dir.file(&format!("{f}.svg")).exists() && dir.file(&format!("{f}.png")).exists()
            );
        }
        assert!(heat_map(&dir, "bad", &HeatMap { cells: &[], ..map }).is_err());
        assert!(histogram(&dir, "bad", &chart, &[1.0], &series).is_err());
        let _ = std::fs::remove_dir_all(root);
    }
}
