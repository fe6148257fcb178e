//! The forward-norm lemma (Xiong et al. 2020, "On Layer Normalization in the Transformer
//! Architecture", §3.2, the lemma on E‖x_{l,i}‖² used for Theorem 1;
//! docs/REFERENCES.md#xiong-theorem).
//!
//! In Xiong et al.'s setting at initialization ([`XiongStack`]: d_model = d_ffn = d, weights
//! N(0, 1/d), zero biases, ReLU FFN, LN without affine terms; inputs with E‖x_{0,i}‖² = d):
//!
//! - Post-LN: E‖x_{l,i}‖² = d at every layer l (indeed ‖LN(·)‖² = d surely when ε = 0);
//! - Pre-LN: (1 + l/2)·d ≤ E‖x_{l,i}‖² ≤ (1 + 3l/2)·d, with x_l the residual stream after l
//!   layers (before the final LN) and x_0 the input.
//!
//! Why (the lemma's proof): given the stream, LN(x) has squared norm d; the FFN adds
//! E‖ReLU(u·W^1)·W^2‖² = d/2 (half the ReLU units are on); attention adds E‖Σ_j α_j·u_j·W^V·W^O‖²
//! = E‖Σ_j α_j u_j‖² ∈ [0, d] (a convex combination of vectors of norm √d); the cross terms
//! vanish because W^V, W^O, W^2 are zero-mean and independent of the stream. So each layer adds
//! between d/2 and 3d/2. With one token, attention is the identity combination and each layer
//! adds exactly 3d/2: E‖x_l‖² = (1 + 3l/2)·d, the upper bound.
//!
//! Indexing: docs/REFERENCES.md#xiong-theorem writes the bounds for "x_{l,i}" (marked [paper], to
//! be checked against the PDF); the inequality holds for the stream after l layers, which is what
//! is checked here.
//!
//! Statistical checks: one number per seed (the mean over the seed's tokens of ‖x_{l,i}‖²/d),
//! seeds 0..K fixed (K given per test, ten times more with --full); the mean over seeds must not
//! be more than 4 standard errors outside the bounds (one-sided; a false alarm has probability
//! ≈ 3·10⁻⁵ per comparison under the normal approximation, and the fixed seeds make the verdict
//! reproducible).

use proptest::prelude::*;
use saturn_layers::ResidualScheme;
use saturn_theorems::random::{XiongStack, xiong_input};
use saturn_theorems::{Estimate, proptest_config, seeds};

/// ‖x_{l,i}‖²/d for every token i of x_l [B, T, d].
fn normalized_sq_norms(x: &saturn_tensor::Tensor<f64>, d: usize) -> Vec<f64> {
    x.to_vec().chunks(d).map(|row| row.iter().map(|v| v * v).sum::<f64>() / d as f64).collect()
}

/// For each layer l = 0..=L, the estimate over seeds of E‖x_l‖²/d (each seed contributing the
/// mean over its tokens).
fn forward_norm_estimates(
    scheme: ResidualScheme,
    layers: usize,
    d: usize,
    heads: usize,
    (batch, tokens): (usize, usize),
    default_seeds: u64,
) -> Vec<Estimate> {
    let per_seed: Vec<Vec<f64>> = seeds(default_seeds)
        .map(|s| {
            let stack = XiongStack::new(scheme, layers, d, heads, s);
            let (xs, _) = stack.forward(&xiong_input(batch, tokens, d, s ^ 0x1_0000));
            xs.iter()
                .map(|x| {
                    let v = normalized_sq_norms(x, d);
                    v.iter().sum::<f64>() / v.len() as f64
                })
                .collect()
        })
        .collect();
    (0..=layers).map(|l| Estimate::of(&per_seed.iter().map(|v| v[l]).collect::<Vec<_>>())).collect()
}

proptest! {
    #![proptest_config(proptest_config(16))]

    /// Xiong et al. 2020, §3.2 (forward-norm lemma, Post-LN part): every Post-LN layer ends with
    /// an LN without affine terms, so ‖x_{l,i}‖² = d at every layer l ≥ 1 and every token — surely,
    /// not only in expectation (ε = 0). Random stacks of 1–6 layers, d = 4 to 32.
    #[test]
    fn post_ln_forward_norm_is_d_at_every_layer(
        layers in 1usize..7,
        heads in 1usize..3,
        d_per_head in 2usize..17,
        tokens in 1usize..6,
        seed in any::<u64>(),
    ) {
        let d = heads * d_per_head;
        let stack = XiongStack::new(ResidualScheme::PostLn, layers, d, heads, seed);
        let (xs, _) = stack.forward(&xiong_input(2, tokens, d, seed ^ 1));
        for (l, x) in xs.iter().enumerate().skip(1) {
            for (i, n) in normalized_sq_norms(x, d).into_iter().enumerate() {
                prop_assert!(
                    (n - 1.0).abs() <= 1e-12,
                    "THEOREM (Xiong et al. 2020 §3.2, lemma): Post-LN has ‖x_{{l,i}}‖² = d at every layer; contradicted at \
                     layer {l}, token {i}: ‖x‖²/d = {n}"
                );
            }
        }
    }
}

/// Xiong et al. 2020, §3.2 (forward-norm lemma, Pre-LN part): (1 + l/2)·d ≤ E‖x_{l,i}‖² ≤
/// (1 + 3l/2)·d, i.e. the forward norm grows linearly with depth. Statistical check: Pre-LN
/// stacks of 8 layers, d = 32, 4 heads, 4 sequences of 8 tokens per seed; for each l = 0..8 the
/// mean over K = 16 seeds (160 with --full) of E‖x_l‖²/d must lie in [1 + l/2, 1 + 3l/2] up to
/// 4 standard errors.
#[test]
fn pre_ln_forward_norm_grows_linearly_between_the_lemma_bounds() {
    let est = forward_norm_estimates(ResidualScheme::PreLn, 8, 32, 4, (4, 8), 16);
    for (l, e) in est.iter().enumerate() {
        eprintln!(
            "l = {l}: E‖x_l‖²/d = {e}, bounds [{}, {}]",
            1.0 + l as f64 / 2.0,
            1.0 + 1.5 * l as f64
        );
    }
    for (l, e) in est.iter().enumerate() {
        let (lo, hi) = (1.0 + l as f64 / 2.0, 1.0 + 1.5 * l as f64);
        assert!(
            e.not_below(lo, 4.0) && e.not_above(hi, 4.0),
            "THEOREM (Xiong et al. 2020 §3.2, lemma): Pre-LN has (1 + l/2)·d ≤ E‖x_l‖² ≤ (1 + 3l/2)·d; contradicted at \
             l = {l}: E‖x_l‖²/d = {e}, bounds [{lo}, {hi}]; all layers: {est:?}"
        );
    }
}

/// Xiong et al. 2020, §3.2 (the lemma's upper bound is attained): with a single token, attention
/// is the identity combination, so each Pre-LN layer adds exactly 3d/2 in expectation
/// (d through W^V·W^O, d/2 through the ReLU FFN) and E‖x_l‖² = (1 + 3l/2)·d. Statistical check:
/// Pre-LN stacks of 8 layers, d = 128, 16 one-token sequences per seed; for each l the mean over
/// K = 64 seeds (640 with --full) of E‖x_l‖²/d must be within 4 standard errors of 1 + 3l/2
/// (two-sided false alarm ≈ 6·10⁻⁵ per layer; the SE at l = 8 is about 0.5% of the value).
#[test]
fn pre_ln_forward_norm_meets_the_upper_bound_with_one_token() {
    let est = forward_norm_estimates(ResidualScheme::PreLn, 8, 128, 4, (16, 1), 64);
    for (l, e) in est.iter().enumerate() {
        eprintln!("l = {l}: E‖x_l‖²/d = {e}, expected {}", 1.0 + 1.5 * l as f64);
    }
    for (l, e) in est.iter().enumerate() {
        let expected = 1.0 + 1.5 * l as f64;
        assert!(
            e.consistent_with(expected, 4.0),
            "THEOREM (Xiong et al. 2020 §3.2, lemma's proof with T = 1): E‖x_l‖² = (1 + 3l/2)·d; contradicted at l = {l}: \
             E‖x_l‖²/d = {e}, expected {expected}; all layers: {est:?}"
        );
    }
}
