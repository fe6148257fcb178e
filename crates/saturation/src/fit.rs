//! Growth laws of the parameter norm ρ(t) (the norm-growth code's `t5_norm_regression.py`;
//! docs/REFERENCES.md#merrill-norms, docs/REFERENCES.md#merrill-norm-growth).
//!
//! - [`fit`]: ordinary least squares ρ(t) ≈ a + b·g(t) for g ∈ {t, √t, t^¼, exp(−t/t_max)}
//!   ([`Regressor`]), solved by LAPACK's SVD least squares (`ndarray-linalg`, `gelsd`), with
//!   R² = 1 − Σ(ρ − ρ̂)² / Σ(ρ − ρ̄)². t is divided by its largest value first: R² of t, √t and
//!   t^¼ does not change, and exp(−t) becomes a decay over the whole run instead of over the
//!   first few steps.
//! - [`growth_exponent`]: the p of the law ρ(t)^{1/p} = a + b·t, which holds with p = ½ for
//!   orthogonal steps of constant size (Adam: ‖θ_t‖² = ‖θ_0‖² + t‖δ‖²) and p = ¼ for SGD on a
//!   scale-invariant loss (‖θ_t‖⁴ = ‖θ_0‖⁴ + c·t). The offset a keeps the estimate honest when
//!   ‖θ_0‖ is not small against the growth (a plain log–log slope is biased towards 0 then).
//!   p is the grid value in [0.05, 2] (step 0.005) whose back-transformed fit ρ̂ = (a + b·t)^p
//!   has the largest R² in ρ.

use ndarray_linalg::LeastSquaresSvd;
pub use saturn_tensor::flat::r_squared;
use saturn_tensor::ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SaturationError, invalid};

/// The regressor g(t) of a fit ρ ≈ a + b·g(t); t is normalized to [0, 1] by its maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Regressor {
    /// g = t.
    Linear,
    /// g = √t.
    Sqrt,
    /// g = t^¼.
    QuarterRoot,
    /// g = exp(−t).
    ExpDecay,
}

impl Regressor {
    /// Every regressor of the reference code, in its order.
    pub const ALL: [Regressor; 4] =
        [Regressor::Linear, Regressor::Sqrt, Regressor::QuarterRoot, Regressor::ExpDecay];

    /// `t`, `sqrt_t`, `t^1/4`, `exp(-t)`.
    pub fn name(self) -> &'static str {
        match self {
            Regressor::Linear => "t",
            Regressor::Sqrt => "sqrt_t",
            Regressor::QuarterRoot => "t^1/4",
            Regressor::ExpDecay => "exp(-t)",
        }
    }

    /// g(t) for a normalized t ∈ [0, 1].
    pub fn apply(self, t: f64) -> f64 {
        match self {
            Regressor::Linear => t,
            Regressor::Sqrt => t.sqrt(),
            Regressor::QuarterRoot => t.sqrt().sqrt(),
            Regressor::ExpDecay => (-t).exp(),
        }
    }
}

/// ρ ≈ intercept + slope·g(t/t_max).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    pub regressor: Regressor,
    pub intercept: f64,
    pub slope: f64,
    pub r2: f64,
}

fn check_series(op: &'static str, ts: &[f64], ys: &[f64]) -> Result<f64> {
    if ts.len() != ys.len() {
        return Err(invalid(op, format!("{} times but {} values", ts.len(), ys.len())));
    }
    if ts.len() < 3 {
        return Err(invalid(op, format!("needs at least 3 points, got {}", ts.len())));
    }
    if let Some(bad) = ts.iter().chain(ys).find(|v| !v.is_finite()) {
        return Err(invalid(op, format!("non-finite value {bad}")));
    }
    if let Some(bad) = ts.iter().find(|&&t| t < 0.0) {
        return Err(invalid(op, format!("negative time {bad}")));
    }
    let t_max = ts.iter().copied().fold(0.0, f64::max);
    if t_max <= 0.0 {
        return Err(invalid(op, "every time is 0"));
    }
    Ok(t_max)
}

/// The OLS coefficients (a, b) of y ≈ a + b·x (SVD least squares).
pub fn ordinary_least_squares(x: &[f64], y: &[f64]) -> Result<(f64, f64)> {
    let design = Array2::from_shape_fn((x.len(), 2), |(i, j)| if j == 0 { 1.0 } else { x[i] });
    let rhs = Array1::from(y.to_vec());
    let result =
        design.least_squares(&rhs).map_err(|e| SaturationError::LeastSquares(e.to_string()))?;
    Ok((result.solution[0], result.solution[1]))
}

/// ρ(t) ≈ a + b·g(t/t_max) by OLS, with its R².
pub fn fit(ts: &[f64], ys: &[f64], regressor: Regressor) -> Result<Fit> {
    let t_max = check_series("norm fit", ts, ys)?;
    let x: Vec<f64> = ts.iter().map(|t| regressor.apply(t / t_max)).collect();
    let (intercept, slope) = ordinary_least_squares(&x, ys)?;
    let fitted: Vec<f64> = x.iter().map(|g| intercept + slope * g).collect();
    Ok(Fit { regressor, intercept, slope, r2: r_squared(ys, &fitted) })
}

/// The fit of every [`Regressor`], in [`Regressor::ALL`] order.
pub fn fit_all(ts: &[f64], ys: &[f64]) -> Result<Vec<Fit>> {
    Regressor::ALL.iter().map(|&r| fit(ts, ys, r)).collect()
}

/// The exponent p of ρ(t)^{1/p} = a + b·t and the R² of ρ̂ = (a + b·t)^p in ρ.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GrowthExponent {
    pub exponent: f64,
    pub r2: f64,
    /// The best p is an end of the grid (0.05 or 2): the law is not identified (typically the
    /// growth is tiny against ρ(0), and any p fits about equally well).
    pub on_grid_edge: bool,
}

/// The last grid index: p = 0.05 + 0.005·k for k = 0 … 390 spans [0.05, 2].
const LAST: usize = 390;

/// The best p on the grid [0.05, 2] (step 0.005) for ρ(t)^{1/p} = a + b·t (module docs).
/// Needs positive values.
pub fn growth_exponent(ts: &[f64], ys: &[f64]) -> Result<GrowthExponent> {
    let t_max = check_series("growth exponent", ts, ys)?;
    if let Some(bad) = ys.iter().find(|&&y| y <= 0.0) {
        return Err(invalid("growth exponent", format!("needs positive values, got {bad}")));
    }
    let scale = ys.iter().copied().fold(0.0, f64::max);
    let t: Vec<f64> = ts.iter().map(|t| t / t_max).collect();
    let mut best = GrowthExponent { exponent: f64::NAN, r2: f64::NEG_INFINITY, on_grid_edge: true };
    for k in 0..=LAST {
        let p = 0.05 + 0.005 * k as f64;
        let z: Vec<f64> = ys.iter().map(|y| (y / scale).powf(1.0 / p)).collect();
        let (a, b) = ordinary_least_squares(&t, &z)?;
        let fitted: Vec<f64> = t.iter().map(|t| scale * (a + b * t).max(0.0).powf(p)).collect();
        let r2 = r_squared(ys, &fitted);
        if r2 > best.r2 {
            best = GrowthExponent { exponent: p, r2, on_grid_edge: k == 0 || k == LAST };
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(n: usize) -> Vec<f64> {
        (0..n).map(|t| t as f64 * 10.0).collect()
    }

    #[test]
    fn a_root_t_sequence_fits_root_t_with_r2_one() {
        let ts = steps(200);
        let ys: Vec<f64> = ts.iter().map(|t| 3.0 + 0.5 * t.sqrt()).collect();
        let fits = fit_all(&ts, &ys).unwrap();
        let sqrt = fits.iter().find(|f| f.regressor == Regressor::Sqrt).unwrap();
        assert!((sqrt.r2 - 1.0).abs() < 1e-12, "{sqrt:?}");
        assert!((sqrt.intercept - 3.0).abs() < 1e-9);
        // the slope is per unit of √(t / t_max)
        assert!((sqrt.slope - 0.5 * ts[199].sqrt()).abs() < 1e-9);
        for f in &fits {
            if f.regressor != Regressor::Sqrt {
                assert!(f.r2 < sqrt.r2, "{f:?}");
            }
        }
    }

    #[test]
    fn every_regressor_recovers_its_own_law() {
        let ts = steps(100);
        for r in Regressor::ALL {
            let ys: Vec<f64> = ts.iter().map(|t| 1.0 - 2.0 * r.apply(t / ts[99])).collect();
            let f = fit(&ts, &ys, r).unwrap();
            assert!((f.r2 - 1.0).abs() < 1e-12 && (f.slope + 2.0).abs() < 1e-9, "{f:?}");
        }
    }

    #[test]
    fn the_growth_exponent_is_a_half_for_adam_and_a_quarter_for_sgd() {
        let ts = steps(300);
        let adam: Vec<f64> = ts.iter().map(|t| (40.0f64.powi(2) + 3.0 * t).sqrt()).collect();
        let sgd: Vec<f64> = ts.iter().map(|t| (40.0f64.powi(4) + 3000.0 * t).powf(0.25)).collect();
        let a = growth_exponent(&ts, &adam).unwrap();
        let s = growth_exponent(&ts, &sgd).unwrap();
        assert!((a.exponent - 0.5).abs() < 0.006 && a.r2 > 0.999_999, "{a:?}");
        assert!((s.exponent - 0.25).abs() < 0.006 && s.r2 > 0.999_999, "{s:?}");
        assert!(!a.on_grid_edge && !s.on_grid_edge);
        let cubic: Vec<f64> = ts.iter().map(|t| 1.0 + (t / 3000.0).powi(3)).collect();
        assert!(growth_exponent(&ts, &cubic).unwrap().on_grid_edge, "p = 3 is beyond the grid");
    }

    #[test]
    fn bad_series_are_errors() {
        assert!(fit(&[0.0, 1.0], &[1.0, 2.0], Regressor::Linear).is_err());
        assert!(fit(&[0.0, 1.0, 2.0], &[1.0, 2.0], Regressor::Linear).is_err());
        assert!(fit(&[0.0, 0.0, 0.0], &[1.0, 2.0, 3.0], Regressor::Linear).is_err());
        assert!(fit(&[0.0, 1.0, 2.0], &[1.0, f64::NAN, 3.0], Regressor::Linear).is_err());
        assert!(growth_exponent(&[0.0, 1.0, 2.0], &[1.0, 0.0, 3.0]).is_err());
    }
}
