//! The uncertainty behind a claim: a Student t interval of a mean over seeds, and per-seed
//! slopes for trends over a grid.
//!
//! Why t and not a bootstrap: the suite runs 1–5 seeds per claim, and a percentile bootstrap
//! of so few values under-covers badly (with 3 values it can only return their range). The t
//! interval is exact for normally distributed per-seed statistics and, at n ≥ 2, says plainly
//! how wide the uncertainty is (t₀.₉₇₅ = 12.7 at 2 seeds, 4.30 at 3, 2.78 at 5).

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// The confidence level of every claim's interval: 95 %, two-sided.
pub const LEVEL: f64 = 0.95;

/// A two-sided confidence interval of a mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// How it was computed: `"student-t"` (mean ± t·s/√n over seeds).
    pub method: String,
    /// Two-sided confidence level, e.g. 0.95.
    pub level: f64,
    /// The mean of the values.
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
    /// How many values it rests on.
    pub n: usize,
}

/// The `level` two-sided Student t interval of the mean of `values`: mean ± t_{(1+level)/2, n−1}
/// · s/√n with s the sample standard deviation. `None` for fewer than 2 values or any
/// non-finite value (an undefined interval is never a pass).
pub fn t_interval(values: &[f64], level: f64) -> Option<Interval> {
    let n = values.len();
    if n < 2 || values.iter().any(|v| !v.is_finite()) || !(0.0..1.0).contains(&level) {
        return None;
    }
    let mean = saturn_tensor::flat::mean(values);
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let t = t_quantile((1.0 + level) / 2.0, (n - 1) as f64);
    let half = t * (var / n as f64).sqrt();
    Some(Interval {
        method: "student-t".into(),
        level,
        estimate: mean,
        low: mean - half,
        high: mean + half,
        n,
    })
}

/// The `p` quantile of Student's t distribution with `dof` degrees of freedom.
pub fn t_quantile(p: f64, dof: f64) -> f64 {
    // the parameters are valid by construction (scale 1, dof ≥ 1)
    StudentsT::new(0.0, 1.0, dof).map_or(f64::NAN, |t| t.inverse_cdf(p))
}

/// The least-squares slope of y on x (NaN with fewer than 2 distinct x or a non-finite value).
pub fn slope(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len());
    if n < 2 || x.iter().chain(y).any(|v| !v.is_finite()) {
        return f64::NAN;
    }
    let (mx, my) = (x[..n].iter().sum::<f64>() / n as f64, y[..n].iter().sum::<f64>() / n as f64);
    let sxx: f64 = x[..n].iter().map(|a| (a - mx).powi(2)).sum();
    let sxy: f64 = x[..n].iter().zip(&y[..n]).map(|(a, b)| (a - mx) * (b - my)).sum();
    if sxx == 0.0 { f64::NAN } else { sxy / sxx }
}

/// The log-log slope of y on x (the exponent p of y ∝ x^p); NaN where a value is ≤ 0.
pub fn log_log_slope(x: &[f64], y: &[f64]) -> f64 {
    if x.iter().chain(y).any(|&v| v <= 0.0 || v.is_nan()) {
        return f64::NAN;
    }
    let lx: Vec<f64> = x.iter().map(|v| v.ln()).collect();
    let ly: Vec<f64> = y.iter().map(|v| v.ln()).collect();
    slope(&lx, &ly)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_the_tables() {
        // two-sided 95 % critical values, any statistics table
        for (dof, t) in [(1.0, 12.706), (2.0, 4.303), (4.0, 2.776), (9.0, 2.262), (29.0, 2.045)] {
            assert!((t_quantile(0.975, dof) - t).abs() < 1e-3, "dof {dof}");
        }
    }

    #[test]
    fn the_t_interval_of_three_values() {
        // mean 2, s = 1, half-width 4.303 / √3
        let i = t_interval(&[1.0, 2.0, 3.0], 0.95).unwrap();
        assert_eq!(i.estimate, 2.0);
        assert!((i.high - 2.0 - 4.3027 / 3f64.sqrt()).abs() < 1e-3);
        assert!((i.low + i.high - 4.0).abs() < 1e-12);
    }

    #[test]
    fn no_interval_from_one_value_or_an_undefined_one() {
        assert!(t_interval(&[1.0], 0.95).is_none());
        assert!(t_interval(&[1.0, f64::NAN], 0.95).is_none());
        assert!(t_interval(&[1.0, f64::INFINITY], 0.95).is_none());
    }

    #[test]
    fn slopes_recover_lines_and_powers() {
        assert!((slope(&[1.0, 2.0, 3.0], &[3.0, 5.0, 7.0]) - 2.0).abs() < 1e-12);
        let x = [6.0, 12.0, 24.0];
        let y: Vec<f64> = x.iter().map(|v: &f64| 3.0 * v.powf(0.5)).collect();
        assert!((log_log_slope(&x, &y) - 0.5).abs() < 1e-12);
        assert!(log_log_slope(&x, &[1.0, -1.0, 2.0]).is_nan());
        assert!(slope(&[1.0, 1.0], &[1.0, 2.0]).is_nan());
    }
}
