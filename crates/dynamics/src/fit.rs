//! Least-squares fits used to read the measurements: a line y = a + b·x with its R².

use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};

/// y ≈ intercept + slope·x by ordinary least squares, with R² = 1 − SS_res/SS_tot.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LinearFit {
    pub slope: f64,
    pub intercept: f64,
    pub r2: f64,
}

/// The OLS line through (x, y); needs ≥ 2 distinct x.
pub fn linear_fit(x: &[f64], y: &[f64]) -> Result<LinearFit> {
    if x.len() != y.len() || x.len() < 2 || x.iter().chain(y).any(|v| !v.is_finite()) {
        return Err(invalid(
            "linear_fit",
            format!("{} x and {} y (finite, ≥ 2)", x.len(), y.len()),
        ));
    }
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    if sxx == 0.0 {
        return Err(invalid("linear_fit", "every x is the same"));
    }
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let ss_res: f64 = x.iter().zip(y).map(|(a, b)| (b - intercept - slope * a).powi(2)).sum();
    let ss_tot: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
    let r2 = if ss_tot > 0.0 { 1.0 - ss_res / ss_tot } else { 1.0 };
    Ok(LinearFit { slope, intercept, r2 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exact_line_fits_with_r2_one_and_noise_lowers_it() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let f = linear_fit(&x, &[3.0, 5.0, 7.0, 9.0]).unwrap();
        assert!((f.slope - 2.0).abs() < 1e-12 && (f.intercept - 1.0).abs() < 1e-12);
        assert!((f.r2 - 1.0).abs() < 1e-12);
        let g = linear_fit(&x, &[3.0, 6.0, 6.0, 9.0]).unwrap();
        assert!(g.r2 < 1.0 && g.r2 > 0.8);
        assert!(linear_fit(&[1.0, 1.0], &[1.0, 2.0]).is_err());
    }
}
