//! The largest-magnitude eigenvalues by power iteration with deflation (PyHessian
//! `hessian.eigenvalues`).
//!
//! For the k-th eigenpair: v₀ ~ N(0, I) made orthogonal to the k − 1 eigenvectors already found
//! and normalized; then repeat w = P·H·P·v (P projects out the found eigenvectors, i.e.
//! deflation), λ = vᵀw, v ← w/‖w‖, until |λ − λ_prev| < tol·(|λ_prev| + 10⁻⁶) and the residual
//! ‖w − λv‖ ≤ tol·|λ|, or `max_iter`. PyHessian stops on the first test alone, which ends the
//! iteration after two steps whenever the Rayleigh quotient of the start vector barely moves
//! (a large bulk of equal eigenvalues, as a shifted Hessian has): the residual test requires v
//! to be an eigenvector to the same relative accuracy.
//!
//! Power iteration converges to the eigenvalue of largest |λ|, at rate |λ₂/λ₁| per step; that is
//! the "top eigenvalue" PyHessian reports. A loss Hessian at a random init can be indefinite
//! with its most negative eigenvalue the largest in size: [`largest_eigenpair`] then shifts the
//! spectrum to find λ_max, the top of the spectrum. PyHessian projects only the iterate;
//! projecting H·v as well keeps round-off from bringing found directions back.

use rand::SeedableRng;
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};

use super::LinearOperator;
use crate::error::{Result, invalid};
use crate::vector::{dot, gaussian, norm, orthogonalize, scale};

/// Settings of [`top_eigenpairs`]; the defaults are PyHessian's (tol 10⁻³, 100 iterations).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PowerIteration {
    /// How many eigenpairs, largest |λ| first.
    pub top_k: usize,
    pub max_iter: usize,
    /// Stop when the relative change of λ between two iterations is below this.
    pub tol: f64,
    /// Seed of the random start vectors.
    pub seed: u64,
}

impl Default for PowerIteration {
    fn default() -> Self {
        PowerIteration { top_k: 1, max_iter: 100, tol: 1e-3, seed: 0 }
    }
}

/// An eigenvalue estimate with its unit eigenvector.
#[derive(Debug, Clone, PartialEq)]
pub struct Eigenpair {
    pub value: f64,
    pub vector: Vec<f64>,
    /// Operator products spent on this pair.
    pub iterations: usize,
    /// Whether the tolerance was met before `max_iter`.
    pub converged: bool,
}

/// The `cfg.top_k` eigenpairs of largest |λ|, in the order found.
pub fn top_eigenpairs(op: &impl LinearOperator, cfg: &PowerIteration) -> Result<Vec<Eigenpair>> {
    let n = op.dim();
    if cfg.top_k == 0 || cfg.top_k > n || cfg.max_iter == 0 || cfg.tol.is_nan() || cfg.tol <= 0.0 {
        return Err(invalid(
            "top_eigenpairs",
            format!("need 1 ≤ top_k ≤ {n}, max_iter ≥ 1 and tol > 0; got {cfg:?}"),
        ));
    }
    let mut rng = Pcg64::seed_from_u64(cfg.seed);
    let mut found: Vec<Vec<f64>> = Vec::new();
    let mut pairs = Vec::with_capacity(cfg.top_k);
    for _ in 0..cfg.top_k {
        let pair = iterate(op, gaussian(n, &mut rng), &found, cfg)?;
        found.push(pair.vector.clone());
        pairs.push(pair);
    }
    Ok(pairs)
}

/// Power iteration from `start` (projected off `found` and normalized), with `found` deflated.
fn iterate(
    op: &impl LinearOperator,
    start: Vec<f64>,
    found: &[Vec<f64>],
    cfg: &PowerIteration,
) -> Result<Eigenpair> {
    let mut v = start;
    orthogonalize(&mut v, found);
    let start_norm = norm(&v);
    if start_norm == 0.0 || !start_norm.is_finite() {
        return Err(invalid("power iteration", format!("start vector of norm {start_norm}")));
    }
    scale(1.0 / start_norm, &mut v);
    let mut value = 0.0;
    let mut previous: Option<f64> = None;
    let (mut iterations, mut converged) = (0, false);
    while iterations < cfg.max_iter {
        let mut w = op.apply(&v)?;
        iterations += 1;
        orthogonalize(&mut w, found);
        value = dot(&v, &w);
        let len = norm(&w);
        if len == 0.0 || !len.is_finite() {
            converged = len == 0.0; // v spans a null direction: λ = 0 exactly
            break;
        }
        // ‖w − λv‖² = ‖w‖² − λ² for a unit v with λ = vᵀw
        let residual = (len * len - value * value).max(0.0).sqrt();
        scale(1.0 / len, &mut w);
        v = w;
        if let Some(p) = previous
            && (value - p).abs() < cfg.tol * (p.abs() + 1e-6)
            && residual <= cfg.tol * value.abs()
        {
            converged = true;
            break;
        }
        previous = Some(value);
    }
    Ok(Eigenpair { value, vector: v, iterations, converged })
}

/// λ_max, the largest (algebraic) eigenvalue, and the dominant (largest-|λ|) one it was
/// found from.
#[derive(Debug, Clone, PartialEq)]
pub struct LargestEigenpair {
    /// λ_max with its eigenvector; `iterations` counts both power iterations.
    pub largest: Eigenpair,
    /// The largest-|λ| eigenpair (what PyHessian reports as the top eigenvalue).
    pub dominant: Eigenpair,
}

/// λ_max by power iteration with a spectral shift: first the dominant eigenvalue λ_d; if it is
/// negative (an indefinite matrix whose most negative eigenvalue is the largest in size, as a
/// loss Hessian at a random init can be), power iteration on A − λ_d·I, whose eigenvalues are
/// λ − λ_d ≥ λ_min − λ_d ≈ 0, converges to λ_max − λ_d. PyHessian reports λ_d either way, which
/// is then not the top of the spectrum. Both iterations start from random vectors.
pub fn largest_eigenpair(
    op: &impl LinearOperator,
    cfg: &PowerIteration,
) -> Result<LargestEigenpair> {
    let n = op.dim();
    let mut rng = Pcg64::seed_from_u64(cfg.seed);
    let dominant = gaussian(n, &mut rng);
    let largest = gaussian(n, &mut Pcg64::seed_from_u64(cfg.seed.wrapping_add(1)));
    largest_eigenpair_from(op, cfg, WarmStart { dominant: &dominant, largest: &largest })
}

/// Where [`largest_eigenpair_from`]'s two power iterations start: approximations of the
/// dominant eigenvector and of the top one, such as the Ritz vectors of a Lanczos run's
/// largest-|θ| and largest Ritz values ([`super::Krylov::extreme_ritz_vectors`]).
#[derive(Debug, Clone, Copy)]
pub struct WarmStart<'a> {
    pub dominant: &'a [f64],
    pub largest: &'a [f64],
}

/// [`largest_eigenpair`] from given start vectors. Power iteration converges from any start
/// that is not orthogonal to the eigenvector, at rate |λ₂/λ₁| per step; from a Ritz vector of a
/// long Lanczos run (whose extreme Ritz values converge much faster than power iteration) it
/// only has to confirm the pair, so a gap too small for 100 steps from a random start no longer
/// matters. The converged eigenvalue is the same.
pub fn largest_eigenpair_from(
    op: &impl LinearOperator,
    cfg: &PowerIteration,
    start: WarmStart<'_>,
) -> Result<LargestEigenpair> {
    let n = op.dim();
    if cfg.max_iter == 0 || cfg.tol.is_nan() || cfg.tol <= 0.0 {
        return Err(invalid(
            "largest_eigenpair",
            format!("need max_iter ≥ 1 and tol > 0; got {cfg:?}"),
        ));
    }
    if start.dominant.len() != n || start.largest.len() != n {
        return Err(invalid(
            "largest_eigenpair",
            format!(
                "start vectors of {} and {} entries for dimension {n}",
                start.dominant.len(),
                start.largest.len()
            ),
        ));
    }
    let dominant = iterate(op, start.dominant.to_vec(), &[], cfg)?;
    if dominant.value >= 0.0 {
        return Ok(LargestEigenpair { largest: dominant.clone(), dominant });
    }
    let shifted = Shifted { op, shift: dominant.value };
    let mut top = iterate(&shifted, start.largest.to_vec(), &[], cfg)?;
    top.value += dominant.value;
    top.iterations += dominant.iterations;
    Ok(LargestEigenpair { largest: top, dominant })
}

/// A − shift·I.
struct Shifted<'a, O> {
    op: &'a O,
    shift: f64,
}

impl<O: LinearOperator> LinearOperator for Shifted<'_, O> {
    fn dim(&self) -> usize {
        self.op.dim()
    }

    fn apply(&self, v: &[f64]) -> Result<Vec<f64>> {
        let mut w = self.op.apply(v)?;
        crate::vector::axpy(-self.shift, v, &mut w);
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use ndarray_linalg::{Eigh, UPLO};

    use super::*;
    use crate::hessian::lanczos::tests::symmetric_with_spectrum;

    #[test]
    fn power_iteration_recovers_the_largest_magnitude_eigenvalues() {
        let spectrum = [9.0, -6.0, 4.0, 2.5, 1.0, 0.5, -0.25, 0.1, 0.0, 0.05, -0.02, 0.3];
        let a = symmetric_with_spectrum(&spectrum, 11);
        let (mut eig, _) = a.eigh(UPLO::Lower).unwrap();
        eig.as_slice_mut().unwrap().sort_by(|x, y| y.abs().total_cmp(&x.abs()));
        let cfg = PowerIteration { top_k: 3, max_iter: 2000, tol: 1e-13, seed: 5 };
        let pairs = top_eigenpairs(&a, &cfg).unwrap();
        for (pair, want) in pairs.iter().zip(eig.iter()) {
            assert!(pair.converged, "{pair:?}");
            assert!((pair.value - want).abs() < 1e-8 * want.abs(), "{} vs {want}", pair.value);
            // A·v = λ·v
            let av = a.apply(&pair.vector).unwrap();
            let residual: f64 =
                av.iter().zip(&pair.vector).map(|(x, y)| (x - want * y).powi(2)).sum();
            assert!(residual.sqrt() < 1e-4, "residual {residual}");
        }
    }

    #[test]
    fn a_negative_dominant_eigenvalue_is_shifted_past_to_find_the_largest() {
        let a = symmetric_with_spectrum(&[-9.0, 5.0, 3.0, 1.0, -2.0, 0.5, 2.0, -0.5], 12);
        let cfg = PowerIteration { top_k: 1, max_iter: 3000, tol: 1e-14, seed: 2 };
        let found = largest_eigenpair(&a, &cfg).unwrap();
        assert!((found.dominant.value + 9.0).abs() < 1e-8, "{}", found.dominant.value);
        assert!((found.largest.value - 5.0).abs() < 1e-8, "{}", found.largest.value);
        assert!(found.largest.iterations > found.dominant.iterations);
        // a positive dominant eigenvalue is the largest one
        let b = symmetric_with_spectrum(&[9.0, -5.0, 3.0], 1);
        let found = largest_eigenpair(&b, &cfg).unwrap();
        assert!((found.largest.value - 9.0).abs() < 1e-8);
        assert_eq!(found.largest, found.dominant);
    }

    #[test]
    fn warm_starts_from_ritz_vectors_confirm_the_pair_in_few_products() {
        // a top eigenvalue 2.00 just above a dense bulk up to 1.98, under a dominant −5: from
        // random vectors the shifted iteration contracts by (1.98 + 5)/(2 + 5) per step
        let mut spectrum: Vec<f64> = (0..300).map(|i| i as f64 / 151.0).collect();
        spectrum.extend([-5.0, 2.0]);
        let a = symmetric_with_spectrum(&spectrum, 21);
        let cfg = PowerIteration { top_k: 1, max_iter: 100, tol: 1e-6, seed: 3 };
        let cold = largest_eigenpair(&a, &cfg).unwrap();
        assert!(!cold.largest.converged, "{cold:?}");
        let ritz = crate::hessian::Krylov::run(&a, 80, 1).unwrap().extreme_ritz_vectors().unwrap();
        let start = WarmStart { dominant: &ritz.dominant.1, largest: &ritz.largest.1 };
        let warm = largest_eigenpair_from(&a, &cfg, start).unwrap();
        assert!(warm.dominant.converged && warm.largest.converged, "{warm:?}");
        assert!((warm.dominant.value + 5.0).abs() < 1e-6, "{}", warm.dominant.value);
        assert!((warm.largest.value - 2.0).abs() < 1e-5, "{}", warm.largest.value);
        assert!(warm.largest.iterations < 20, "{} products", warm.largest.iterations);
        // start vectors of the wrong length are refused
        let short = [1.0; 3];
        assert!(
            largest_eigenpair_from(&a, &cfg, WarmStart { dominant: &short, largest: &short })
                .is_err()
        );
    }

    #[test]
    fn a_slowly_moving_rayleigh_quotient_does_not_stop_the_iteration() {
        // a bulk of 200 eigenvalues at 10 and one at 12 (a shifted spectrum): the start's
        // Rayleigh quotient ≈ 10.01 moves by < 10⁻³ relative in the first step, yet v is far from
        // the top eigenvector (PyHessian's test would stop there)
        let mut spectrum = vec![10.0; 200];
        spectrum[0] = 12.0;
        let a = symmetric_with_spectrum(&spectrum, 3);
        let cfg = PowerIteration { top_k: 1, max_iter: 400, tol: 1e-3, seed: 0 };
        let top = top_eigenpairs(&a, &cfg).unwrap().remove(0);
        assert!(
            top.converged && (top.value - 12.0).abs() < 0.05,
            "{} after {}",
            top.value,
            top.iterations
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        let a = symmetric_with_spectrum(&[1.0, 2.0], 1);
        let cfg = PowerIteration { top_k: 3, ..PowerIteration::default() };
        assert!(top_eigenpairs(&a, &cfg).is_err());
    }
}
