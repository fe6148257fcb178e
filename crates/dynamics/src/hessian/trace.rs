//! Hutchinson's trace estimator (Hutchinson 1989; PyHessian `hessian.trace`):
//! tr A = E(vᵀAv) for v with independent Rademacher (±1) entries, whose variance
//! 2·Σ_{i≠j} A²ᵢⱼ is the smallest among i.i.d. probes.
//!
//! PyHessian stops when the running mean changes by less than tol relative to the previous mean;
//! its test divides by the signed mean (`/ (trace + 1e-6)`), so a negative trace stops at once,
//! and two close early draws stop it whatever the variance. Here the number of probes is fixed
//! and the standard error of the mean is reported with the estimate.

use rand::SeedableRng;
use rand_pcg::Pcg64;

use super::LinearOperator;
use crate::error::{Result, invalid};
use crate::vector::{dot, rademacher};

/// A Monte-Carlo trace estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceEstimate {
    /// The mean of the probes vᵀAv.
    pub mean: f64,
    /// The standard error of the mean, s/√m (0 for a single probe).
    pub std_error: f64,
    /// Every probe vᵀAv, in order.
    pub probes: Vec<f64>,
}

/// tr A from `probes` Rademacher vectors drawn from `seed`.
pub fn hutchinson_trace(
    op: &impl LinearOperator,
    probes: usize,
    seed: u64,
) -> Result<TraceEstimate> {
    if probes == 0 {
        return Err(invalid("hutchinson_trace", "needs at least one probe"));
    }
    let mut rng = Pcg64::seed_from_u64(seed);
    let mut values = Vec::with_capacity(probes);
    for _ in 0..probes {
        let v = rademacher(op.dim(), &mut rng);
        values.push(dot(&v, &op.apply(&v)?));
    }
    let m = values.len() as f64;
    let mean = values.iter().sum::<f64>() / m;
    let var = if values.len() > 1 {
        values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (m - 1.0)
    } else {
        0.0
    };
    Ok(TraceEstimate { mean, std_error: (var / m).sqrt(), probes: values })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hessian::lanczos::tests::symmetric_with_spectrum;

    #[test]
    fn hutchinson_trace_converges_to_the_trace_of_a_known_matrix() {
        let spectrum: Vec<f64> = (0..40).map(|i| 3.0 - 0.17 * i as f64).collect();
        let exact: f64 = spectrum.iter().sum();
        let a = symmetric_with_spectrum(&spectrum, 2);
        let off: f64 = a.indexed_iter().filter(|((i, j), _)| i != j).map(|(_, x)| x * x).sum();
        let few = hutchinson_trace(&a, 10, 9).unwrap();
        let many = hutchinson_trace(&a, 4000, 9).unwrap();
        // the standard error matches the theory √(2 Σ_{i≠j} A²ᵢⱼ / m) …
        let theory = (2.0 * off / 4000.0).sqrt();
        assert!((many.std_error / theory - 1.0).abs() < 0.1, "{} vs {theory}", many.std_error);
        // … the estimate is within 4 of them, and 400× the probes shrink the error bar 20×
        assert!((many.mean - exact).abs() < 4.0 * many.std_error, "{} vs {exact}", many.mean);
        assert!(many.std_error < few.std_error / 10.0);
    }

    #[test]
    fn a_diagonal_matrix_needs_one_probe() {
        let a = ndarray::Array2::from_diag(&ndarray::arr1(&[1.0, -2.0, 5.0]));
        let t = hutchinson_trace(&a, 1, 0).unwrap();
        assert_eq!((t.mean, t.std_error), (4.0, 0.0));
    }
}
