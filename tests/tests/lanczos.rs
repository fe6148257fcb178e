//! Lanczos: the extreme eigenvalues of the tridiagonal converge to the matrix's (Lanczos 1950;
//! Paige 1971; Golub & Van Loan, *Matrix Computations*, §10.1; the method behind PyHessian's
//! spectral density, docs/REFERENCES.md#hessian).
//!
//! For a symmetric A ∈ ℝⁿˣⁿ and a start vector v with a component along every eigenvector, m
//! steps of Lanczos give an orthonormal basis Q_m of the Krylov space K_m(A, v) and the
//! tridiagonal T_m = Q_mᵀ A Q_m. Its eigenvalues (the Ritz values θ₁ ≤ … ≤ θ_m) satisfy:
//!
//! - **containment** (Cauchy interlacing for the compression T_m of A): λ_min ≤ θ₁ and
//!   θ_m ≤ λ_max;
//! - **monotone convergence**: θ_m(m) is non-decreasing and θ₁(m) non-increasing in m (K_m grows);
//! - **exactness**: at m = n, T_n is similar to A, so θ₁ = λ_min and θ_n = λ_max.
//!
//! Checked on random symmetric matrices against LAPACK's dense eigensolver (`eigh`), and on the
//! exact Hessian of a small decoder LM (its dense form built column by column from
//! Hessian-vector products), with saturn-dynamics' Lanczos (full re-orthogonalization).

use ndarray_linalg::{Eigh, UPLO};
use proptest::prelude::*;
use saturn_dynamics::hessian::{Hessian, LinearOperator, lanczos};
use saturn_layers::{Activation, DecoderLm, ForwardCtx, InitScheme, LmConfig, Module};
use saturn_tensor::ndarray::{Array2, arr2};
use saturn_theorems::proptest_config;
use saturn_theorems::random::SCHEMES;

/// A random symmetric n × n matrix (A + Aᵀ)/2 with standard normal A, from `entries`.
fn symmetric(n: usize, entries: &[f64]) -> Array2<f64> {
    let a = Array2::from_shape_fn((n, n), |(i, j)| entries[i * n + j]);
    (&a + &a.t()) * 0.5
}

/// (λ_min, λ_max) by LAPACK.
fn dense_extremes(a: &Array2<f64>) -> (f64, f64) {
    let (values, _) = a.eigh(UPLO::Lower).expect("eigh of a symmetric matrix");
    (values[0], values[values.len() - 1])
}

/// (θ₁, θ_m) of m Lanczos steps from the start vector drawn from `seed`.
fn ritz_extremes(op: &impl LinearOperator, m: usize, seed: u64) -> (f64, f64) {
    let q = lanczos(op, m, seed).unwrap().quadrature().unwrap();
    (q.nodes[0], q.nodes[q.nodes.len() - 1])
}

proptest! {
    #![proptest_config(proptest_config(32))]

    /// Lanczos 1950 / Golub & Van Loan §10.1: for symmetric A, the Ritz values of m steps lie in
    /// [λ_min, λ_max] (interlacing), the extreme ones move outwards monotonically as m grows,
    /// and at m = n they equal λ_min and λ_max, to 1e-9·‖A‖.
    #[test]
    fn ritz_values_are_contained_monotone_and_exact_at_full_dimension(
        (n, entries) in (2usize..24).prop_flat_map(|n| {
            (Just(n), prop::collection::vec(-1.0f64..1.0, n * n))
        }),
        seed in any::<u64>(),
    ) {
        let a = symmetric(n, &entries);
        let (lo, hi) = dense_extremes(&a);
        let tol = 1e-9 * lo.abs().max(hi.abs()).max(1.0);
        let mut previous = (f64::INFINITY, f64::NEG_INFINITY);
        for m in 1..=n {
            let (t1, tm) = ritz_extremes(&a, m, seed);
            prop_assert!(
                lo - tol <= t1 && tm <= hi + tol,
                "THEOREM (interlacing): Ritz values lie in [λ_min, λ_max] = [{lo}, {hi}]; \
                 contradicted at n = {n}, m = {m}: θ₁ = {t1}, θ_m = {tm}"
            );
            prop_assert!(
                t1 <= previous.0 + tol && tm >= previous.1 - tol,
                "THEOREM (monotone convergence): θ₁ non-increasing and θ_m non-decreasing in m; \
                 contradicted at n = {n}, m = {m}: ({t1}, {tm}) after {previous:?}"
            );
            previous = (t1, tm);
        }
        let (t1, tn) = previous;
        prop_assert!(
            (t1 - lo).abs() <= tol && (tn - hi).abs() <= tol,
            "THEOREM (exactness at m = n): θ₁ = λ_min, θ_n = λ_max; contradicted at n = {n}: \
             Lanczos ({t1}, {tn}), eigh ({lo}, {hi})"
        );
    }
}

/// A known spectrum: diag(1, 3) has eigenvalues 1 and 3, which two Lanczos steps recover to
/// round-off. (The start vector is Rademacher, so it has a component along both e₁ and e₂; for
/// [[2, 1], [1, 2]] it would be an eigenvector, (1, ±1)/√2, and Lanczos would stop after one
/// step at an invariant subspace — the theorem's hypothesis on v matters.)
#[test]
fn two_steps_recover_a_known_two_by_two_spectrum() {
    let (t1, t2) = ritz_extremes(&arr2(&[[1.0, 0.0], [0.0, 3.0]]), 2, 7);
    assert!(
        (t1 - 1.0).abs() < 1e-12 && (t2 - 3.0).abs() < 1e-12,
        "THEOREM (exactness at m = n): eigenvalues 1, 3; Lanczos gave {t1}, {t2}"
    );
}

/// The same theorem on a model's Hessian: for small decoder LMs of every residual scheme (GELU,
/// so the loss is C²), the Hessian H of the cross-entropy over all parameters is formed densely
/// from n Hessian-vector products (columns H·e_k, symmetrized), and n Lanczos steps on the HVP
/// operator give its extreme eigenvalues as LAPACK does on the dense matrix, to
/// 1e-8·max|λ|; after n/2 steps the Ritz extremes already lie inside [λ_min, λ_max].
#[test]
fn lanczos_on_a_model_hessian_matches_the_dense_eigensolver() {
    for (case, scheme) in (0u64..).zip(SCHEMES) {
        let config = LmConfig {
            residual: scheme,
            act: Activation::Gelu,
            init: InitScheme::Normal { std: 0.5 },
            ..LmConfig::new(5, 4, 2, 8, 1, 4)
        };
        let model = DecoderLm::<f64>::new(config, 11 + case).unwrap();
        let inputs = Array2::from_shape_vec((1, 3), vec![1, 4, 2]).unwrap();
        let targets = Array2::from_shape_vec((1, 3), vec![4, 2, 0]).unwrap();
        let loss = |_: usize| model.loss(inputs.view(), targets.view(), &mut ForwardCtx::eval());
        let hessian = Hessian::cached(model.parameters(), vec![1.0], loss).unwrap();
        let n = hessian.dim();
        let mut dense = Array2::zeros((n, n));
        for k in 0..n {
            let mut e = vec![0.0; n];
            e[k] = 1.0;
            for (i, v) in hessian.apply(&e).unwrap().into_iter().enumerate() {
                dense[[i, k]] = v;
            }
        }
        let dense = (&dense + &dense.t()) * 0.5;
        let (lo, hi) = dense_extremes(&dense);
        let tol = 1e-8 * lo.abs().max(hi.abs());
        let (t1, t2) = ritz_extremes(&hessian, n / 2, case);
        assert!(
            lo - tol <= t1 && t2 <= hi + tol,
            "THEOREM (interlacing) on a {scheme:?} LM Hessian (n = {n}): Ritz ({t1}, {t2}) \
             outside eigh's [{lo}, {hi}]"
        );
        let (t1, tn) = ritz_extremes(&hessian, n, case);
        assert!(
            (t1 - lo).abs() <= tol && (tn - hi).abs() <= tol,
            "THEOREM (exactness at m = n) on a {scheme:?} LM Hessian (n = {n}): Lanczos \
             ({t1}, {tn}), eigh ({lo}, {hi})"
        );
    }
}
