//! The SLQ spectral density of several models on one common grid, for a figure that compares
//! arms with their seed spread.
//!
//! PyHessian's `density_generate` (`pyhessian/density_plot.py`, docs/REFERENCES.md#hessian):
//! for the Ritz values θ_j and weights τ_j of each Lanczos run, the density on a grid t is
//! φ(t) = (1/n_runs) Σ_runs Σ_j τ_j · N(t; θ_j, σ²), then divided by its Riemann sum so that it
//! has unit area on the grid. Saturn keeps that form with two changes, both for reading the
//! figure:
//!
//! - **one grid for every model**: [λ_min − 5σ, λ_max + 5σ] over all arms and seeds, so that
//!   densities can be averaged over seeds point by point (PyHessian's grid is per model);
//! - **a wider kernel**: σ = [`SIGMA_FRACTION`] of that range. PyHessian passes 10⁻⁵ · range as
//!   the *variance*, which at the full preset's range (≈ 23) is σ ≈ 0.015: one spike per Ritz
//!   value, at a different place in every seed, whose mean over seeds is a comb, not a curve
//!   (the figure before issue 22). At 1 % of the range the bulk merges into one hump and the
//!   outlying eigenvalues stay separate bumps. The Ritz values themselves are in `ritz.csv`.

use saturn_dynamics::hessian::Quadrature;

/// The kernel's standard deviation as a fraction of the common range (ours, see the module
/// docs).
pub const SIGMA_FRACTION: f64 = 0.01;

/// The common grid: `points` equally spaced values over every run's Ritz values ± 5σ, and σ.
/// `None` without a Ritz value.
pub fn common_grid<'a>(
    all: impl IntoIterator<Item = &'a Quadrature>,
    points: usize,
) -> Option<(Vec<f64>, f64)> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for q in all {
        for &x in q.nodes.iter().filter(|x| x.is_finite()) {
            lo = lo.min(x);
            hi = hi.max(x);
        }
    }
    if !(lo.is_finite() && hi.is_finite()) || points < 2 {
        return None;
    }
    let sigma = SIGMA_FRACTION * (hi - lo).max(1e-12);
    let (lo, hi) = (lo - 5.0 * sigma, hi + 5.0 * sigma);
    let step = (hi - lo) / (points - 1) as f64;
    Some(((0..points).map(|k| lo + step * k as f64).collect(), sigma))
}

/// φ on `grid` for one model's runs (see the module docs), unit area on the grid; zeros when
/// there is no run.
pub fn smoothed(runs: &[Quadrature], grid: &[f64], sigma: f64) -> Vec<f64> {
    let mut phi = vec![0.0; grid.len()];
    if runs.is_empty() || grid.len() < 2 || sigma <= 0.0 {
        return phi;
    }
    let c = 1.0 / ((2.0 * std::f64::consts::PI).sqrt() * sigma * runs.len() as f64);
    for q in runs {
        for (&theta, &tau) in q.nodes.iter().zip(&q.weights) {
            for (p, &t) in phi.iter_mut().zip(grid) {
                let z = (t - theta) / sigma;
                if z.abs() < 12.0 {
                    *p += tau * c * (-0.5 * z * z).exp();
                }
            }
        }
    }
    let area: f64 = phi.iter().sum::<f64>() * (grid[1] - grid[0]);
    if area > 0.0 {
        phi.iter_mut().for_each(|p| *p /= area);
    }
    phi
}

/// Point by point over models: (mean, min, max) of their densities on the same grid.
pub fn spread(densities: &[Vec<f64>]) -> Vec<(f64, f64, f64)> {
    let n = densities.iter().map(Vec::len).min().unwrap_or(0);
    (0..n)
        .map(|k| {
            let v: Vec<f64> = densities.iter().map(|d| d[k]).collect();
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let (lo, hi) = v
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
            (mean, lo, hi)
        })
        .collect()
}

/// tr|H| = Σ_i |λ_i| by SLQ: n · Σ_j τ_j |θ_j| per run (the quadrature of f(λ) = |λ| against
/// the spectral measure, Ubaru, Chen & Saad 2017), averaged over runs; NaN without a run.
pub fn abs_trace(runs: &[Quadrature], n: usize) -> f64 {
    if runs.is_empty() {
        return f64::NAN;
    }
    let per_run =
        runs.iter().map(|q| q.nodes.iter().zip(&q.weights).map(|(t, w)| w * t.abs()).sum::<f64>());
    n as f64 * per_run.sum::<f64>() / runs.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(nodes: &[f64], weights: &[f64]) -> Quadrature {
        Quadrature { nodes: nodes.to_vec(), weights: weights.to_vec() }
    }

    #[test]
    fn the_density_has_unit_area_and_peaks_at_the_heavy_node() {
        let runs = [q(&[-1.0, 0.0, 4.0], &[0.1, 0.8, 0.1])];
        let (grid, sigma) = common_grid(&runs, 4001).unwrap();
        assert!((sigma - 0.05).abs() < 1e-12 && grid[0] < -1.0 && grid[4000] > 4.0);
        let phi = smoothed(&runs, &grid, sigma);
        let area: f64 = phi.iter().sum::<f64>() * (grid[1] - grid[0]);
        assert!((area - 1.0).abs() < 1e-9);
        let peak = (0..phi.len()).max_by(|&a, &b| phi[a].total_cmp(&phi[b])).unwrap();
        assert!(grid[peak].abs() < 0.01, "{}", grid[peak]);
    }

    #[test]
    fn spread_brackets_the_mean_and_abs_trace_weights_the_nodes() {
        let s = spread(&[vec![1.0, 0.0], vec![3.0, 2.0]]);
        assert_eq!(s, vec![(2.0, 1.0, 3.0), (1.0, 0.0, 2.0)]);
        // n = 10: 10 · (0.5 · 2 + 0.5 · |−4|) = 30, averaged with a run giving 10
        let runs = [q(&[-4.0, 2.0], &[0.5, 0.5]), q(&[1.0], &[1.0])];
        assert!((abs_trace(&runs, 10) - 20.0).abs() < 1e-12);
        assert!(abs_trace(&[], 10).is_nan());
        assert!(common_grid(&[], 10).is_none());
    }
}
