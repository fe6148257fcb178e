//! Stochastic Lanczos quadrature (SLQ) of a spectral density (Golub & Meurant; Ubaru, Chen &
//! Saad 2017; Ghorbani, Krishnan & Xiao 2019; PyHessian `hessian.density` and
//! `density_plot.py`).
//!
//! The spectral density of a symmetric A ∈ ℝⁿˣⁿ is φ(t) = (1/n) Σᵢ δ(t − λᵢ). For a unit vector
//! v, vᵀ g(A) v = Σᵢ (uᵢᵀv)² g(λᵢ), and with v Rademacher/√n the weights (uᵢᵀv)² average 1/n, so
//! vᵀ g(A) v estimates ∫ g φ. m Lanczos steps from v give a tridiagonal T = QᵀAQ (α on the
//! diagonal, β off it) whose eigen-decomposition T = Σₖ θₖ yₖyₖᵀ yields the Gauss quadrature
//! vᵀ g(A) v ≈ Σₖ τₖ² g(θₖ), τₖ = (yₖ)₁ (the first entry of each eigenvector): exact for
//! polynomials of degree < 2m. Nodes θₖ are the Ritz values; weights τₖ² sum to 1.
//!
//! - Lanczos runs with **full re-orthogonalization** (every new vector against all previous
//!   ones, twice), as PyHessian does; without it the Ritz values of a long run duplicate
//!   ("ghost" eigenvalues). It stops early when βⱼ vanishes (an invariant subspace: T is then
//!   exact on it).
//! - T is diagonalized by LAPACK (`ndarray-linalg`'s `eigh`).
//! - Smoothing (PyHessian `density_generate`): φ̃(t) = mean over runs of Σₖ τₖ² 𝒩(t; θₖ, σ²),
//!   on a uniform grid, then divided by its Riemann sum so it has unit area. PyHessian's kernel
//!   takes a *variance*, passed under the name `sigma_squared` but computed as
//!   1e-5·max(1, λ_max − λ_min) in a variable named `sigma`; here it is named what it is:
//!   σ² = `variance_fraction`·max(1, λ_max − λ_min). The grid spans the mean extreme nodes
//!   padded by max(`overhead`, 5σ) (PyHessian pads 0.01 only, which clips the kernels of the
//!   extreme nodes once σ > 0.01) and has at least 2 bins per σ (PyHessian's fixed 10,000 bins
//!   under-resolve σ once λ_max − λ_min > 10³).

use ndarray::Array2;
use ndarray_linalg::{Eigh, UPLO};
use rand::SeedableRng;
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};

use super::LinearOperator;
use crate::error::{DynamicsError, Result, invalid};
use crate::vector::{axpy, dot, norm, orthogonalize, rademacher, scale};

/// The Lanczos tridiagonal matrix: `alpha` on the diagonal, `beta` (one shorter) beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Tridiagonal {
    pub alpha: Vec<f64>,
    pub beta: Vec<f64>,
}

/// A Gauss quadrature rule: nodes (Ritz values, ascending) and weights (summing to 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quadrature {
    pub nodes: Vec<f64>,
    pub weights: Vec<f64>,
}

/// `steps` Lanczos steps (fewer if an invariant subspace is found) from the Rademacher vector
/// drawn from `seed`, normalized.
pub fn lanczos(op: &impl LinearOperator, steps: usize, seed: u64) -> Result<Tridiagonal> {
    Ok(Krylov::run(op, steps, seed)?.tridiagonal)
}

/// A Lanczos run with its orthonormal Krylov basis Q = [q₁ … q_m] kept (full
/// re-orthogonalization needs it anyway), so that Ritz vectors Q·yₖ can be formed: the
/// extreme ones approximate the extreme eigenvectors of A long before power iteration would.
#[derive(Debug, Clone, PartialEq)]
pub struct Krylov {
    pub tridiagonal: Tridiagonal,
    pub basis: Vec<Vec<f64>>,
}

/// The Ritz pairs (θ, Q·y) of the largest-|θ| and of the largest θ (the same pair when the
/// largest-|θ| value is positive).
#[derive(Debug, Clone, PartialEq)]
pub struct ExtremeRitz {
    pub dominant: (f64, Vec<f64>),
    pub largest: (f64, Vec<f64>),
}

impl Krylov {
    /// [`lanczos`], keeping the basis.
    pub fn run(op: &impl LinearOperator, steps: usize, seed: u64) -> Result<Self> {
        let n = op.dim();
        if steps == 0 || n == 0 {
            return Err(invalid("lanczos", format!("{steps} steps on a space of dimension {n}")));
        }
        let steps = steps.min(n);
        let mut v = rademacher(n, &mut Pcg64::seed_from_u64(seed));
        scale(1.0 / (n as f64).sqrt(), &mut v);
        let mut w = op.apply(&v)?;
        let a = dot(&w, &v);
        axpy(-a, &v, &mut w);
        let mut basis = vec![v];
        orthogonalize(&mut w, &basis);
        let (mut alpha, mut beta) = (vec![a], Vec::new());
        let mut size = a.abs();
        while alpha.len() < steps {
            let b = norm(&w);
            if !b.is_finite() || b <= 1e-10 * size {
                break; // the Krylov space is invariant: T is exact on it
            }
            // w was orthogonalized against the whole basis (twice) when it was made, so
            // v = w/β is orthonormal to it already: no third and fourth pass (they were ≈ 7 %
            // of `hessian --quick`, whose tiny models make the O(m²n) passes show)
            let mut v = w;
            scale(1.0 / b, &mut v);
            w = op.apply(&v)?;
            let a = dot(&w, &v);
            axpy(-a, &v, &mut w);
            axpy(-b, basis.last().expect("one vector at least"), &mut w);
            basis.push(v);
            orthogonalize(&mut w, &basis);
            alpha.push(a);
            beta.push(b);
            size = size.max(a.abs()).max(b);
        }
        Ok(Krylov { tridiagonal: Tridiagonal { alpha, beta }, basis })
    }

    /// The Ritz pairs of the extreme Ritz values.
    pub fn extreme_ritz_vectors(&self) -> Result<ExtremeRitz> {
        let (values, vectors) = self.tridiagonal.to_dense().eigh(UPLO::Lower).map_err(|e| {
            DynamicsError::Linalg { op: "Krylov::extreme_ritz_vectors", reason: e.to_string() }
        })?;
        let ritz = |k: usize| {
            let mut x = vec![0.0; self.basis[0].len()];
            for (q, &y) in self.basis.iter().zip(vectors.column(k)) {
                axpy(y, q, &mut x);
            }
            (values[k], x)
        };
        let last = values.len() - 1; // eigh sorts ascending
        let dominant = if values[0].abs() > values[last].abs() { 0 } else { last };
        Ok(ExtremeRitz { dominant: ritz(dominant), largest: ritz(last) })
    }
}

impl Tridiagonal {
    /// The dense m × m matrix.
    pub fn to_dense(&self) -> Array2<f64> {
        let m = self.alpha.len();
        let mut t = Array2::zeros((m, m));
        for (i, &a) in self.alpha.iter().enumerate() {
            t[[i, i]] = a;
        }
        for (i, &b) in self.beta.iter().enumerate() {
            t[[i, i + 1]] = b;
            t[[i + 1, i]] = b;
        }
        t
    }

    /// The Gauss quadrature of T: nodes θₖ (its eigenvalues) and weights τₖ² (the squared first
    /// entries of its unit eigenvectors).
    pub fn quadrature(&self) -> Result<Quadrature> {
        let (values, vectors) = self.to_dense().eigh(UPLO::Lower).map_err(|e| {
            DynamicsError::Linalg { op: "Tridiagonal::quadrature", reason: e.to_string() }
        })?;
        Ok(Quadrature {
            nodes: values.to_vec(),
            weights: vectors.row(0).iter().map(|y| y * y).collect(),
        })
    }
}

/// `runs` independent Lanczos quadratures of `steps` steps (start vectors from seed, seed + 1, …).
pub fn slq(
    op: &impl LinearOperator,
    runs: usize,
    steps: usize,
    seed: u64,
) -> Result<Vec<Quadrature>> {
    (0..runs as u64).map(|r| lanczos(op, steps, seed.wrapping_add(r))?.quadrature()).collect()
}

/// How [`spectral_density`] smooths the quadrature nodes; defaults are PyHessian's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DensityConfig {
    /// The fewest grid points (PyHessian: 10,000).
    pub min_bins: usize,
    /// Kernel variance σ² = `variance_fraction`·max(1, λ_max − λ_min) (PyHessian: 10⁻⁵).
    pub variance_fraction: f64,
    /// The least padding of the grid beyond the extreme nodes (PyHessian: 0.01).
    pub overhead: f64,
}

impl Default for DensityConfig {
    fn default() -> Self {
        DensityConfig { min_bins: 10_000, variance_fraction: 1e-5, overhead: 0.01 }
    }
}

/// A smoothed spectral density on a uniform grid, with unit area.
#[derive(Debug, Clone, PartialEq)]
pub struct Density {
    pub grid: Vec<f64>,
    pub density: Vec<f64>,
    /// The Gaussian kernel's variance σ².
    pub kernel_variance: f64,
    /// Σ φ̃·Δt before normalization (≈ 1 when the grid resolves the kernels).
    pub raw_area: f64,
}

/// Most grid points [`spectral_density`] uses.
const MAX_BINS: usize = 1_000_000;

/// The Gaussian-smoothed density of the quadrature nodes, averaged over runs, unit area.
pub fn spectral_density(runs: &[Quadrature], cfg: &DensityConfig) -> Result<Density> {
    if runs.is_empty()
        || runs.iter().any(|q| q.nodes.is_empty() || q.nodes.len() != q.weights.len())
    {
        return Err(invalid("spectral_density", "needs at least one non-empty quadrature"));
    }
    let positive = cfg.variance_fraction.is_finite() && cfg.variance_fraction > 0.0;
    if cfg.min_bins < 2 || !positive || cfg.overhead.is_nan() || cfg.overhead < 0.0 {
        return Err(invalid("spectral_density", format!("bad settings {cfg:?}")));
    }
    let mean =
        |f: fn(&[f64]) -> f64| runs.iter().map(|q| f(&q.nodes)).sum::<f64>() / runs.len() as f64;
    let max = mean(|x| x.iter().copied().fold(f64::NEG_INFINITY, f64::max));
    let min = mean(|x| x.iter().copied().fold(f64::INFINITY, f64::min));
    if !(max.is_finite() && min.is_finite()) {
        return Err(invalid("spectral_density", "non-finite quadrature nodes"));
    }
    let variance = cfg.variance_fraction * (max - min).max(1.0);
    let sigma = variance.sqrt();
    let pad = cfg.overhead.max(5.0 * sigma);
    let (lo, hi) = (min - pad, max + pad);
    let bins = (((hi - lo) / (0.5 * sigma)).ceil() as usize).clamp(cfg.min_bins, MAX_BINS);
    let step = (hi - lo) / (bins - 1) as f64;
    let grid: Vec<f64> = (0..bins).map(|j| lo + step * j as f64).collect();
    let mut density = vec![0.0; bins];
    let norm_const = 1.0 / ((2.0 * std::f64::consts::PI * variance).sqrt() * runs.len() as f64);
    for q in runs {
        for (&node, &w) in q.nodes.iter().zip(&q.weights) {
            // the kernel below 8σ is < 1e-14 of its peak: sum only over its support
            let first = (((node - 8.0 * sigma - lo) / step).floor().max(0.0)) as usize;
            let last = ((((node + 8.0 * sigma - lo) / step).ceil()) as usize).min(bins - 1);
            for j in first..=last {
                let d = grid[j] - node;
                density[j] += w * norm_const * (-d * d / (2.0 * variance)).exp();
            }
        }
    }
    let raw_area = density.iter().sum::<f64>() * step;
    if raw_area.is_nan() || raw_area <= 0.0 {
        return Err(invalid("spectral_density", "the smoothed density has no mass"));
    }
    density.iter_mut().for_each(|d| *d /= raw_area);
    Ok(Density { grid, density, kernel_variance: variance, raw_area })
}

#[cfg(test)]
pub(crate) mod tests {
    use ndarray::{Array1, Array2};
    use ndarray_linalg::QR;

    use super::*;
    use crate::vector::gaussian;

    /// Q·diag(spectrum)·Qᵀ with Q a random orthogonal matrix.
    pub(crate) fn symmetric_with_spectrum(spectrum: &[f64], seed: u64) -> Array2<f64> {
        let n = spectrum.len();
        let g = Array2::from_shape_vec((n, n), gaussian(n * n, &mut Pcg64::seed_from_u64(seed)))
            .unwrap();
        let (q, _) = g.qr().unwrap();
        let a = q.dot(&Array2::from_diag(&Array1::from(spectrum.to_vec()))).dot(&q.t());
        (&a + &a.t()) * 0.5
    }

    fn eigh_ascending(a: &Array2<f64>) -> (Vec<f64>, Array2<f64>) {
        let (values, vectors) = a.eigh(UPLO::Lower).unwrap();
        (values.to_vec(), vectors)
    }

    #[test]
    fn full_lanczos_recovers_every_eigenvalue_and_the_quadrature_weights() {
        let spectrum: Vec<f64> = (0..30).map(|i| ((i * 7) % 30) as f64 * 0.37 - 4.0).collect();
        let a = symmetric_with_spectrum(&spectrum, 3);
        let (values, vectors) = eigh_ascending(&a);
        let q = lanczos(&a, 30, 8).unwrap().quadrature().unwrap();
        assert_eq!(q.nodes.len(), 30);
        for (node, value) in q.nodes.iter().zip(&values) {
            assert!((node - value).abs() < 1e-8, "{node} vs {value}");
        }
        // τₖ² = (uₖᵀv)² for the start vector v
        let mut v = rademacher(30, &mut Pcg64::seed_from_u64(8));
        scale(1.0 / 30f64.sqrt(), &mut v);
        for (k, w) in q.weights.iter().enumerate() {
            let proj = dot(&vectors.column(k).to_vec(), &v);
            assert!((w - proj * proj).abs() < 1e-8, "weight {k}: {w} vs {}", proj * proj);
        }
        assert!((q.weights.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    /// The basis stays orthonormal to rounding over a run long enough for plain Lanczos to lose
    /// it (outliers converge early): each new vector is orthogonalized twice, once.
    #[test]
    fn the_krylov_basis_stays_orthonormal() {
        let mut spectrum: Vec<f64> = (0..200).map(|i| (i as f64 / 100.0) - 1.0).collect();
        spectrum.extend([80.0, 40.0, -25.0]);
        let a = symmetric_with_spectrum(&spectrum, 5);
        let k = Krylov::run(&a, 120, 2).unwrap();
        assert_eq!(k.basis.len(), 120);
        let mut worst = 0.0f64;
        for (i, qi) in k.basis.iter().enumerate() {
            for (j, qj) in k.basis.iter().enumerate().take(i + 1) {
                let want = if i == j { 1.0 } else { 0.0 };
                worst = worst.max((dot(qi, qj) - want).abs());
            }
        }
        assert!(worst < 1e-13, "max |QᵀQ − I| = {worst:e}");
    }

    #[test]
    fn short_lanczos_finds_the_outlying_eigenvalues() {
        // a bulk in [−1, 1] and three outliers, like a Hessian's top eigenvalues
        let mut spectrum: Vec<f64> = (0..297).map(|i| (i as f64 / 148.0) - 1.0).collect();
        spectrum.extend([50.0, 30.0, -20.0]);
        let a = symmetric_with_spectrum(&spectrum, 4);
        let q = lanczos(&a, 40, 1).unwrap().quadrature().unwrap();
        let n = q.nodes.len();
        assert_eq!(n, 40);
        assert!((q.nodes[n - 1] - 50.0).abs() < 1e-6, "{:?}", &q.nodes[n - 2..]);
        assert!((q.nodes[n - 2] - 30.0).abs() < 1e-6);
        assert!((q.nodes[0] + 20.0).abs() < 1e-6);
        // no ghost copies of the outliers (full re-orthogonalization)
        assert!(q.nodes[n - 3] < 1.0 + 1e-6 && q.nodes[1] > -1.0 - 1e-6);
    }

    #[test]
    fn extreme_ritz_vectors_approximate_the_extreme_eigenvectors() {
        // a bulk in [−1, 2] and outliers at −7 (the largest in size) and 5 (the top)
        let mut spectrum: Vec<f64> = (0..200).map(|i| i as f64 / 66.0 - 1.0).collect();
        spectrum.extend([-7.0, 5.0]);
        let a = symmetric_with_spectrum(&spectrum, 9);
        let krylov = Krylov::run(&a, 40, 4).unwrap();
        assert_eq!(krylov.tridiagonal, lanczos(&a, 40, 4).unwrap());
        let ritz = krylov.extreme_ritz_vectors().unwrap();
        for ((value, vector), want) in [(&ritz.dominant, -7.0), (&ritz.largest, 5.0)] {
            assert!((value - want).abs() < 1e-8, "{value} vs {want}");
            let length = norm(vector);
            assert!((length - 1.0).abs() < 1e-10, "|Qy| = {length}");
            let av = a.apply(vector).unwrap();
            let residual: f64 =
                av.iter().zip(vector).map(|(x, y)| (x - want * y).powi(2)).sum::<f64>().sqrt();
            assert!(residual < 1e-6, "residual {residual}");
        }
    }

    #[test]
    fn quadrature_moments_match_the_start_vector() {
        // Σ τ² θ = vᵀAv = α₁ and Σ τ² θ² = ‖Av‖² = α₁² + β₁²
        let a = symmetric_with_spectrum(&[3.0, 1.0, -2.0, 0.5, 4.0, -1.0, 2.0, 0.0], 6);
        let t = lanczos(&a, 4, 2).unwrap();
        let q = t.quadrature().unwrap();
        let m1: f64 = q.nodes.iter().zip(&q.weights).map(|(x, w)| w * x).sum();
        let m2: f64 = q.nodes.iter().zip(&q.weights).map(|(x, w)| w * x * x).sum();
        assert!((m1 - t.alpha[0]).abs() < 1e-12);
        assert!((m2 - (t.alpha[0].powi(2) + t.beta[0].powi(2))).abs() < 1e-10);
    }

    #[test]
    fn lanczos_stops_on_an_invariant_subspace() {
        // the identity: v is an eigenvector, one step is exact
        let t = lanczos(&Array2::<f64>::eye(10), 5, 0).unwrap();
        assert_eq!(t.alpha.len(), 1);
        assert!((t.alpha[0] - 1.0).abs() < 1e-15);
    }

    #[test]
    fn slq_density_integrates_to_one() {
        let spectrum: Vec<f64> = (0..60).map(|i| (i as f64 * 0.9).sin() * 3.0 + 1.0).collect();
        let a = symmetric_with_spectrum(&spectrum, 7);
        let runs = slq(&a, 3, 20, 0).unwrap();
        for q in &runs {
            assert!((q.weights.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        let d = spectral_density(&runs, &DensityConfig::default()).unwrap();
        let step = d.grid[1] - d.grid[0];
        // the kernels are resolved and not clipped: unit mass before normalization too
        assert!((d.raw_area - 1.0).abs() < 1e-6, "raw area {}", d.raw_area);
        assert!((d.density.iter().sum::<f64>() * step - 1.0).abs() < 1e-12);
        assert!(d.density.iter().all(|x| *x >= 0.0));
        // its mean is the average first moment of the runs
        let mean: f64 = d.grid.iter().zip(&d.density).map(|(x, p)| x * p * step).sum();
        let m1: f64 = runs
            .iter()
            .map(|q| q.nodes.iter().zip(&q.weights).map(|(x, w)| x * w).sum::<f64>())
            .sum::<f64>()
            / 3.0;
        assert!((mean - m1).abs() < 1e-6, "{mean} vs {m1}");
    }
}
