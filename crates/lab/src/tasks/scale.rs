//! A statistic measured at several model widths d, one value per seed at each: the scale trend
//! behind a claim whose effect the paper states for d = 512 while our runs are smaller
//! (issue 22: "show the statistic at d ∈ {64, 128, 256} (and 512 where init-only)").
//!
//! A trend is read two ways:
//! - the figure: the mean over seeds at each d with its 95 % t interval, one line per arm,
//!   on a log₂ d axis ([`scale_chart`]);
//! - a per-seed number a claim can carry: the log-log slope of the statistic against d, seeds
//!   paired across widths ([`ScaleTrend::log_log_slope_per_seed`]), or the value at the widest
//!   d ([`ScaleTrend::widest`]).

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::plot::{Chart, Series, line_chart};
use crate::run_dir::RunDir;
use crate::stats::{LEVEL, log_log_slope, t_interval};

/// The values of one statistic at one width: `per_seed[k]` is seed k's (the same seed order at
/// every width, so that seeds pair across widths).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalePoint {
    pub d: usize,
    pub per_seed: Vec<f64>,
}

/// One statistic (of one arm, e.g. "Post-LN") over widths, in increasing d.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaleTrend {
    pub label: String,
    pub points: Vec<ScalePoint>,
}

impl ScaleTrend {
    /// A trend from `(d, per-seed values)` pairs; sorts by d.
    pub fn new(
        label: impl Into<String>,
        points: impl IntoIterator<Item = (usize, Vec<f64>)>,
    ) -> Self {
        let mut points: Vec<ScalePoint> =
            points.into_iter().map(|(d, per_seed)| ScalePoint { d, per_seed }).collect();
        points.sort_by_key(|p| p.d);
        ScaleTrend { label: label.into(), points }
    }

    /// Per seed, the log-log slope of the statistic against d (the exponent p of value ∝ d^p),
    /// over the widths where that seed has a value. NaN where a value is ≤ 0 or fewer than two
    /// widths exist.
    pub fn log_log_slope_per_seed(&self) -> Vec<f64> {
        let seeds = self.points.iter().map(|p| p.per_seed.len()).min().unwrap_or(0);
        (0..seeds)
            .map(|k| {
                let d: Vec<f64> = self.points.iter().map(|p| p.d as f64).collect();
                let v: Vec<f64> = self.points.iter().map(|p| p.per_seed[k]).collect();
                log_log_slope(&d, &v)
            })
            .collect()
    }

    /// The per-seed values at the widest d (empty when there is no width).
    pub fn widest(&self) -> &[f64] {
        self.points.last().map_or(&[], |p| &p.per_seed)
    }

    /// Mean, lower and upper 95 % t bound at each d (the bounds equal the mean with one seed).
    pub fn bands(&self) -> Vec<(usize, f64, f64, f64)> {
        self.points
            .iter()
            .map(|p| {
                let mean = saturn_tensor::flat::mean(&p.per_seed);
                match t_interval(&p.per_seed, LEVEL) {
                    Some(i) => (p.d, mean, i.low, i.high),
                    None => (p.d, mean, mean, mean),
                }
            })
            .collect()
    }

    /// The mean line and, with ≥ 2 seeds, the two interval bounds as dashed-by-name lines.
    fn series(&self) -> Vec<Series> {
        let bands = self.bands();
        let line = |f: fn(&(usize, f64, f64, f64)) -> f64| -> Vec<(f64, f64)> {
            bands.iter().map(|b| (b.0 as f64, f(b))).collect()
        };
        let mut out = vec![Series::new(format!("{} (mean)", self.label), line(|b| b.1))];
        if self.points.iter().all(|p| p.per_seed.len() >= 2) {
            out.push(Series::new(format!("{} 95 % low", self.label), line(|b| b.2)));
            out.push(Series::new(format!("{} 95 % high", self.label), line(|b| b.3)));
        }
        out
    }
}

/// Writes `stem.svg`/`stem.png`: every trend's mean over seeds against d (log x), with its 95 %
/// t interval bounds.
pub fn scale_chart(
    dir: &RunDir,
    stem: &str,
    title: &str,
    y_label: &str,
    trends: &[ScaleTrend],
) -> Result<()> {
    let series: Vec<Series> = trends.iter().flat_map(ScaleTrend::series).collect();
    line_chart(dir, stem, &Chart::new(title).x("model width d").y(y_label).log_x(), &series)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_per_seed_recovers_an_exact_power_law() {
        // seed 0: value = d^0.5; seed 1: value = 3 d^-1
        let t = ScaleTrend::new(
            "x",
            [64usize, 128, 256].map(|d| {
                let d_f = d as f64;
                (d, vec![d_f.sqrt(), 3.0 / d_f])
            }),
        );
        let s = t.log_log_slope_per_seed();
        assert!((s[0] - 0.5).abs() < 1e-12 && (s[1] + 1.0).abs() < 1e-12, "{s:?}");
        assert_eq!(t.widest(), &[16.0, 3.0 / 256.0]);
    }

    #[test]
    fn points_are_sorted_and_bands_bracket_the_mean() {
        let t = ScaleTrend::new("x", [(256, vec![1.0, 3.0]), (64, vec![2.0, 2.0])]);
        assert_eq!(t.points[0].d, 64);
        let b = t.bands();
        assert_eq!(b[0], (64, 2.0, 2.0, 2.0));
        assert!(b[1].2 < 2.0 && b[1].3 > 2.0 && b[1].1 == 2.0);
    }

    #[test]
    fn one_seed_gives_nan_free_single_line() {
        let t = ScaleTrend::new("x", [(64, vec![1.0]), (128, vec![2.0])]);
        assert_eq!(t.series().len(), 1);
        assert!((t.log_log_slope_per_seed()[0] - 1.0).abs() < 1e-12);
    }
}
