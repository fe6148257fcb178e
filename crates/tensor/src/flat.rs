//! Numerics on flat `f64` vectors (`&[f64]`): the one place the workspace computes a dot
//! product, a norm, a mean, a cosine or a least-squares line of plain numbers.
//!
//! Every sum is a left-to-right fold in slice order (`Iterator::sum`), so a caller that used
//! to compute the same quantity inline gets the same bits — except [`dot`] (and so
//! [`sum_of_squares`] and [`norm`]), which sums in eight interleaved partial sums for speed. Where two older implementations
//! differed (e.g. R² of a closed-form line vs R² of given fitted values), both are kept under
//! their own names with their own conventions.
//!
//! - [`dot`], [`sum_of_squares`], [`norm`], [`axpy`], [`scale`]: the vector-space basics
//!   (the Hessian methods of saturn-dynamics work in this space).
//! - [`sum_of_squares_of`], [`frobenius_norm`]: Σ xᵢ² of `f32`/`f64` values (a tensor's data)
//!   accumulated in `f64`.
//! - [`mean`], [`population_variance`].
//! - [`cosine`], [`cosine_from`]: cos(a, b) with its zero-norm convention.
//! - [`linear_fit`] (closed-form OLS line with its R²) and [`r_squared`] (R² of any fit).

use serde::{Deserialize, Serialize};

use crate::error::{Result, TensorError};
use crate::float::Float;

/// Partial sums of [`dot`]: element i goes to sum i mod `LANES`.
const LANES: usize = 8;

/// ⟨a, b⟩ = Σ aᵢ·bᵢ over the common length.
///
/// Summed in 8 interleaved partial sums (element i into sum i mod 8, in order), added
/// pairwise at the end, then the tail past the last whole group of 8 in order. A single running
/// sum waits on each addition's latency (4 cycles an element); eight independent ones fill a
/// SIMD register, and the order of every addition is fixed, so the bits do not depend on the
/// CPU's vector width. Lanczos' reorthogonalization (saturn-dynamics) is mostly these products.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    crate::simd_math::widest(
        #[inline(always)]
        || {
            let mut sums = [0.0f64; LANES];
            let (ga, gb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
            let (ta, tb) = (ga.remainder(), gb.remainder());
            for (x, y) in ga.zip(gb) {
                for l in 0..LANES {
                    sums[l] += x[l] * y[l];
                }
            }
            let [s0, s1, s2, s3, s4, s5, s6, s7] = sums;
            let grouped = ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7));
            ta.iter().zip(tb).fold(grouped, |s, (x, y)| s + x * y)
        },
    )
}

/// Σ aᵢ² (the same bits as `dot(a, a)`).
pub fn sum_of_squares(a: &[f64]) -> f64 {
    dot(a, a)
}

/// ‖a‖₂ = √⟨a, a⟩.
pub fn norm(a: &[f64]) -> f64 {
    sum_of_squares(a).sqrt()
}

/// y ← y + c·x (compiled for the widest vectors the CPU has; the same bits on any).
pub fn axpy(c: f64, x: &[f64], y: &mut [f64]) {
    crate::simd_math::widest(
        #[inline(always)]
        || {
            for (yi, xi) in y.iter_mut().zip(x) {
                *yi += c * xi;
            }
        },
    )
}

/// x ← c·x.
pub fn scale(c: f64, x: &mut [f64]) {
    for xi in x.iter_mut() {
        *xi *= c;
    }
}

/// Σ xᵢ² of `f32` or `f64` values (e.g. `tensor.data().iter()`), each widened to `f64` before
/// squaring, summed in iteration order.
pub fn sum_of_squares_of<'a, T: Float>(values: impl IntoIterator<Item = &'a T>) -> f64 {
    values.into_iter().map(|x| x.as_f64() * x.as_f64()).sum()
}

/// The Frobenius norm ‖W‖_F = √(Σ wᵢ²) of `f32` or `f64` values, in `f64`
/// (= [`sum_of_squares_of`]`.sqrt()`).
pub fn frobenius_norm<'a, T: Float>(values: impl IntoIterator<Item = &'a T>) -> f64 {
    sum_of_squares_of(values).sqrt()
}

/// The arithmetic mean (Σ aᵢ)/n; NaN for no values.
pub fn mean(a: &[f64]) -> f64 {
    a.iter().sum::<f64>() / a.len() as f64
}

/// The population (biased) variance (1/n)·Σ(aᵢ − ā)²; 0 for no values.
pub fn population_variance(a: &[f64]) -> f64 {
    let n = a.len().max(1) as f64;
    let mean = a.iter().sum::<f64>() / n;
    a.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n
}

/// cos(a, b) = ⟨a, b⟩/(‖a‖‖b‖), clamped to [−1, 1]; 1 for two zero vectors, 0 when exactly one
/// is zero.
pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    cosine_from(dot(a, b), dot(a, a), dot(b, b))
}

/// The cosine from ⟨a, b⟩, ‖a‖² and ‖b‖² (same conventions as [`cosine`]), for callers that
/// accumulate the three sums over several pieces.
pub fn cosine_from(ab: f64, aa: f64, bb: f64) -> f64 {
    match (aa > 0.0, bb > 0.0) {
        (true, true) => (ab / (aa.sqrt() * bb.sqrt())).clamp(-1.0, 1.0),
        (false, false) => 1.0,
        _ => 0.0,
    }
}

/// y ≈ intercept + slope·x by ordinary least squares, with R² = 1 − SS_res/SS_tot.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LinearFit {
    pub slope: f64,
    pub intercept: f64,
    /// 1 − SS_res/SS_tot, and 1 when y is constant (SS_tot = 0).
    pub r2: f64,
}

/// The closed-form OLS line through (x, y): slope = Sxy/Sxx, intercept = ȳ − slope·x̄,
/// SS_res = Σ(yᵢ − intercept − slope·xᵢ)². Needs as many finite x as y, at least 2, not all
/// equal.
pub fn linear_fit(x: &[f64], y: &[f64]) -> Result<LinearFit> {
    let invalid = |reason: String| TensorError::InvalidArgument { op: "linear_fit", reason };
    if x.len() != y.len() || x.len() < 2 || x.iter().chain(y).any(|v| !v.is_finite()) {
        return Err(invalid(format!("{} x and {} y (finite, ≥ 2)", x.len(), y.len())));
    }
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    if sxx == 0.0 {
        return Err(invalid("every x is the same".into()));
    }
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let ss_res: f64 = x.iter().zip(y).map(|(a, b)| (b - intercept - slope * a).powi(2)).sum();
    let ss_tot: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
    let r2 = if ss_tot > 0.0 { 1.0 - ss_res / ss_tot } else { 1.0 };
    Ok(LinearFit { slope, intercept, r2 })
}

/// R² = 1 − SS_res/SS_tot of `fitted` values against `y`, SS_res = Σ(yᵢ − ŷᵢ)²,
/// SS_tot = Σ(yᵢ − ȳ)². For a constant y (SS_tot = 0): 1 when the residuals vanish too, else
/// −∞.
pub fn r_squared(y: &[f64], fitted: &[f64]) -> f64 {
    let n = y.len().max(1) as f64;
    let mean = y.iter().sum::<f64>() / n;
    let ss_tot: f64 = y.iter().map(|v| (v - mean).powi(2)).sum();
    let ss_res: f64 = y.iter().zip(fitted).map(|(v, f)| (v - f).powi(2)).sum();
    if ss_tot == 0.0 {
        if ss_res == 0.0 { 1.0 } else { f64::NEG_INFINITY }
    } else {
        1.0 - ss_res / ss_tot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length around the groups of eight (the tail included), on integers whose sums are
    /// exact, and on values whose sum depends on the order: the lane order of the doc.
    #[test]
    fn the_dot_product_sums_in_eight_lanes_then_the_tail() {
        for n in 0..40 {
            let a: Vec<f64> = (0..n).map(|i| (i % 7) as f64 - 3.0).collect();
            let b: Vec<f64> = (0..n).map(|i| (i % 5) as f64 + 1.0).collect();
            let exact: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert_eq!(dot(&a, &b), exact, "length {n}");
        }
        let a: Vec<f64> =
            (0..19).map(|i| 1.0 + (i as f64) * 1e-3 + 1e16 * f64::from(i == 3)).collect();
        let ones = vec![1.0; 19];
        let mut s = [0.0; 8];
        for (i, x) in a[..16].iter().enumerate() {
            s[i % 8] += x;
        }
        let want = ((s[0] + s[4]) + (s[2] + s[6]))
            + ((s[1] + s[5]) + (s[3] + s[7]))
            + a[16]
            + a[17]
            + a[18];
        assert_eq!(dot(&a, &ones), want);
        assert_eq!(dot(&a, &ones[..5]), a[..5].iter().sum::<f64>(), "the common length");
    }

    #[test]
    fn norms_and_products_of_a_pythagorean_vector() {
        let a = [3.0, 4.0];
        assert_eq!(dot(&a, &[1.0, 1.0]), 7.0);
        assert_eq!(sum_of_squares(&a), 25.0);
        assert_eq!(norm(&a), 5.0);
        assert_eq!(frobenius_norm(&[3.0f32, 4.0]), 5.0);
        let mut y = [1.0, 1.0];
        axpy(2.0, &a, &mut y);
        assert_eq!(y, [7.0, 9.0]);
        scale(0.5, &mut y);
        assert_eq!(y, [3.5, 4.5]);
    }

    #[test]
    fn mean_and_variance_follow_their_empty_conventions() {
        assert_eq!(mean(&[1.0, 2.0, 6.0]), 3.0);
        assert!(mean(&[]).is_nan());
        assert_eq!(population_variance(&[1.0, 3.0]), 1.0);
        assert_eq!(population_variance(&[]), 0.0);
    }

    #[test]
    fn the_cosine_ignores_scale_and_has_a_zero_norm_convention() {
        assert!((cosine(&[1.0, 2.0], &[10.0, 20.0]) - 1.0).abs() < 1e-15);
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 3.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[0.0, 0.0]), 1.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert_eq!(cosine_from(2.0 + 1e-15, 1.0, 4.0), 1.0, "clamped to [−1, 1]");
    }

    #[test]
    fn an_exact_line_fits_with_r2_one_and_noise_lowers_it() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let f = linear_fit(&x, &[3.0, 5.0, 7.0, 9.0]).unwrap();
        assert!((f.slope - 2.0).abs() < 1e-12 && (f.intercept - 1.0).abs() < 1e-12);
        assert!((f.r2 - 1.0).abs() < 1e-12);
        let g = linear_fit(&x, &[3.0, 6.0, 6.0, 9.0]).unwrap();
        assert!(g.r2 < 1.0 && g.r2 > 0.8);
        assert!(linear_fit(&[1.0, 1.0], &[1.0, 2.0]).is_err());
        assert!(linear_fit(&[1.0, 2.0], &[1.0, f64::NAN]).is_err());
        assert!(linear_fit(&[1.0], &[1.0]).is_err());
    }

    #[test]
    fn r2_is_zero_for_the_mean_and_one_for_a_perfect_fit() {
        let y = [1.0, 2.0, 3.0];
        assert_eq!(r_squared(&y, &[2.0, 2.0, 2.0]), 0.0);
        assert_eq!(r_squared(&y, &y), 1.0);
        assert_eq!(r_squared(&[2.0, 2.0, 2.0], &[2.0, 2.0, 2.0]), 1.0);
        assert_eq!(r_squared(&[2.0, 2.0, 2.0], &[2.0, 2.0, 3.0]), f64::NEG_INFINITY);
    }
}
