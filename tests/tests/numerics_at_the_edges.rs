//! Numerics at the edges (DESIGN.md, "Tensor and autodiff": numerically stable softmax,
//! log-softmax and cross-entropy by max-subtraction and log-sum-exp; LayerNorm with ε). Saturated
//! and norm-grown models (Merrill et al. 2021) produce exactly such inputs: logits of 10⁴, ties,
//! constant rows.
//!
//! For a row x whose maximum M is attained m times and whose other entries are at least 1000
//! below M, the exact values are (the neglected terms are < e^(−1000) < 10⁻⁴³⁴, below f64's
//! resolution):
//!
//! - softmax(x)_j = 1/m on the ties, 0 elsewhere;
//! - log_softmax(x)_j = (x_j − M) − ln m (finite: never −∞, however far below M);
//! - cross_entropy(x, y) = −log_softmax(x)_y, and its gradient (softmax(x) − e_y)/N.
//!
//! A constant row is the case m = n. For LayerNorm, y = (x − μ)/√(σ² + ε)·γ + β:
//!
//! - a constant row has σ = 0, so y = β exactly (up to the rounding of μ, amplified by 1/√ε);
//! - for rows of magnitude K = 10⁴, LN(K·s) = (s − μ_s)/√(σ_s² + ε/K²) → LN_{ε=0}(s) and
//!   LN(K + s) = LN(s): scale and shift invariance survive the magnitude.

use proptest::prelude::*;
use saturn_tensor::{CrossEntropy, Tensor, grad};
use saturn_theorems::proptest_config;

/// A row of n entries with maximum `max` attained at the positions where `tie` is set (at least
/// one), every other entry `max − gap` with gap in [1000, 20000]; magnitudes up to ~3·10⁴.
fn edge_row(n: usize) -> impl Strategy<Value = (Vec<f64>, f64)> {
    (
        -1e4f64..1e4,
        prop::collection::vec(any::<bool>(), n),
        prop::collection::vec(1e3f64..2e4, n),
        any::<prop::sample::Index>(),
    )
        .prop_map(move |(max, mut tie, gaps, forced)| {
            tie[forced.index(n)] = true;
            let row = (0..n).map(|j| if tie[j] { max } else { max - gaps[j] }).collect();
            (row, max)
        })
}

/// One to three rows of one length n ∈ 2..9, each an edge row or a constant row, with their
/// maxima.
fn edge_rows() -> impl Strategy<Value = Vec<(Vec<f64>, f64)>> {
    (2usize..9).prop_flat_map(|n| {
        prop::collection::vec(
            prop_oneof![edge_row(n), (-1e4f64..1e4).prop_map(move |c| (vec![c; n], c))],
            1..4,
        )
    })
}

fn matrix(rows: &[(Vec<f64>, f64)]) -> Tensor<f64> {
    let n = rows[0].0.len();
    Tensor::from_vec(rows.iter().flat_map(|(r, _)| r.clone()).collect(), &[rows.len(), n]).unwrap()
}

proptest! {
    #![proptest_config(proptest_config(32))]

    /// Softmax and log-softmax of rows with entries up to ~3·10⁴ (ties at the maximum, the rest
    /// 10³–2·10⁴ below) and of constant rows are finite and equal their exact values:
    /// softmax = 1/m on the m ties and 0 elsewhere; log_softmax = (x_j − M) − ln m.
    #[test]
    fn softmax_and_log_softmax_of_huge_or_constant_rows_are_the_exact_limits(rows in edge_rows()) {
        let x = matrix(&rows);
        let (p, lp) = (x.softmax(-1).unwrap().to_vec(), x.log_softmax(-1).unwrap().to_vec());
        let n = rows[0].0.len();
        for (r, (row, max)) in rows.iter().enumerate() {
            let m = row.iter().filter(|&&v| v == *max).count() as f64;
            for j in 0..n {
                let (pj, lpj) = (p[r * n + j], lp[r * n + j]);
                let exact_p = if row[j] == *max { 1.0 / m } else { 0.0 };
                let exact_lp = (row[j] - max) - m.ln();
                prop_assert!(
                    pj.is_finite() && (pj - exact_p).abs() <= 2.0 * f64::EPSILON,
                    "THEOREM (stable softmax): softmax = 1/m on the m ties and 0 below them at magnitude 1e4; contradicted \
                     for row {row:?}, entry {j}: {pj:e} vs {exact_p:e}"
                );
                prop_assert!(
                    lpj.is_finite() && (lpj - exact_lp).abs() <= 4.0 * f64::EPSILON * (1.0 + exact_lp.abs()),
                    "THEOREM (stable log-softmax): log_softmax = (x_j − M) − ln m, finite; contradicted for row {row:?}, \
                     entry {j}: {lpj:e} vs {exact_lp:e}"
                );
            }
        }
    }

    /// Cross-entropy of such rows is finite and equals the mean of (M − x_y) + ln m over the
    /// rows, and its gradient is (softmax − one-hot)/N exactly: 1/(mN) on ties, 0 on the far
    /// entries, and −1/N added at the target.
    #[test]
    fn cross_entropy_of_huge_or_constant_rows_is_the_exact_limit(
        rows in edge_rows(),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 3),
    ) {
        let x = matrix(&rows).detach_param();
        let n = rows[0].0.len();
        let targets: Vec<usize> = (0..rows.len()).map(|r| picks[r].index(n)).collect();
        let loss = x.cross_entropy(&targets, CrossEntropy::default()).unwrap();
        let g = grad(std::slice::from_ref(&loss), std::slice::from_ref(&x), false).unwrap().remove(0).to_vec();
        let big_n = rows.len() as f64;
        let mut exact = 0.0;
        for (r, (row, max)) in rows.iter().enumerate() {
            let m = row.iter().filter(|&&v| v == *max).count() as f64;
            exact += ((max - row[targets[r]]) + m.ln()) / big_n;
            for j in 0..n {
                let p = if row[j] == *max { 1.0 / m } else { 0.0 };
                let expected = (p - if j == targets[r] { 1.0 } else { 0.0 }) / big_n;
                let gj = g[r * n + j];
                prop_assert!(
                    gj.is_finite() && (gj - expected).abs() <= 4.0 * f64::EPSILON,
                    "THEOREM (stable cross-entropy): ∂CE/∂x = (softmax − e_y)/N at magnitude 1e4; contradicted for row \
                     {row:?}, target {}, entry {j}: {gj:e} vs {expected:e}", targets[r]
                );
            }
        }
        let value = loss.item().unwrap();
        prop_assert!(
            value.is_finite() && (value - exact).abs() <= 1e-15 * (1.0 + exact.abs()) * 8.0,
            "THEOREM (stable cross-entropy): CE = mean((M − x_y) + ln m), finite; contradicted: {value:e} vs {exact:e} \
             for rows {rows:?}, targets {targets:?}"
        );
    }

    /// LayerNorm of a constant row (any value up to 1e4 in magnitude) is exactly its bias β:
    /// σ = 0, so (x − μ)/√(0 + ε) = 0 up to the rounding of μ, which 1/√ε amplifies to at most
    /// 4·n·|x|·ε_mach/√ε. Its gradient is finite too.
    #[test]
    fn layer_norm_of_a_constant_row_is_its_bias(
        n in 1usize..9,
        value in -1e4f64..1e4,
        log_eps in -12.0f64..-3.0,
        seed in any::<u64>(),
    ) {
        let eps = 10f64.powf(log_eps);
        let x = Tensor::from_vec(vec![value; n], &[1, n]).unwrap().detach_param();
        let gamma = saturn_theorems::random::normal(&[n], 1.0, seed);
        let beta = saturn_theorems::random::normal(&[n], 1.0, seed ^ 1);
        let y = x.layer_norm(Some(&gamma), Some(&beta), eps).unwrap();
        let tol = 4.0 * n as f64 * value.abs() * f64::EPSILON / eps.sqrt() * saturn_theorems::random::max_abs(&gamma) + 1e-15;
        for (j, (a, b)) in y.to_vec().iter().zip(beta.to_vec()).enumerate() {
            prop_assert!(
                a.is_finite() && (a - b).abs() <= tol,
                "THEOREM (LayerNorm of a constant row is β): contradicted for the row [{value}; {n}], ε = {eps:e}, entry {j}: \
                 {a:e} vs β = {b:e} (tolerance {tol:e})"
            );
        }
        let g = grad(&[y.dot(&gamma.reshape(&[1, n]).unwrap()).unwrap()], &[x], false).unwrap().remove(0);
        prop_assert!(g.to_vec().iter().all(|v| v.is_finite()), "LayerNorm's gradient at a constant row is finite");
    }

    /// LayerNorm at magnitude 10⁴ (K = ±10⁴, ε = 1e-5, random rows s with entries in [−1, 1]):
    /// LN(K·s) = (s − μ_s)/√(σ_s² + ε/K²)·sign K (scale invariance, with ε shrunk by K²: within
    /// ε/(2K²σ_s²) of the normalized row (s − μ_s)/σ_s) and LN(K + s) = LN(s) =
    /// (s − μ_s)/√(σ_s² + ε) (shift invariance): finite and within 1e-9 of these exact values,
    /// computed from s at unit scale.
    #[test]
    fn layer_norm_at_magnitude_ten_thousand_is_the_exact_normalized_row(
        s in prop::collection::vec(-1.0f64..1.0, 2..12),
        negative: bool,
    ) {
        let n = s.len();
        let mean = s.iter().sum::<f64>() / n as f64;
        let sd = (s.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        prop_assume!(sd > 1e-3, "a (nearly) constant row is the other test");
        let k: f64 = if negative { -1e4 } else { 1e4 };
        let exact: Vec<f64> =
            s.iter().map(|v| (v - mean) / (sd * sd + 1e-5 / (k * k)).sqrt() * k.signum()).collect();
        let scaled = Tensor::from_vec(s.iter().map(|v| k * v).collect(), &[1, n]).unwrap();
        let shifted = Tensor::from_vec(s.iter().map(|v| k + v).collect(), &[1, n]).unwrap();
        let ys = scaled.layer_norm(None, None, 1e-5).unwrap().to_vec();
        let yt = shifted.layer_norm(None, None, 1e-5).unwrap().to_vec();
        for j in 0..n {
            let shift_exact = (s[j] - mean) / (sd * sd + 1e-5).sqrt();
            prop_assert!(
                ys[j].is_finite() && (ys[j] - exact[j]).abs() <= 1e-9,
                "THEOREM (LN is scale-invariant at magnitude 1e4): LN(K·s) = LN(s); contradicted at entry {j}: {} vs {}", ys[j], exact[j]
            );
            prop_assert!(
                yt[j].is_finite() && (yt[j] - shift_exact).abs() <= 1e-9,
                "THEOREM (LN is shift-invariant at magnitude 1e4): LN(K + s) = LN(s); contradicted at entry {j}: {} vs {}", yt[j], shift_exact
            );
        }
    }
}
