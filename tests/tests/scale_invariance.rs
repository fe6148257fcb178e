//! Scale invariance ⇒ orthogonal gradients ⇒ norm growth (Merrill et al. 2021, §4; the
//! Arora-style argument of docs/REFERENCES.md#merrill-norm-growth).
//!
//! LayerNorm without ε is scale-invariant: LN(c·x) = LN(x) for c > 0. So if a weight W reaches
//! the loss only through a LayerNorm and the map W ↦ (LN input) is positively homogeneous, the
//! loss is 0-homogeneous in W: L(cW) = L(W). Differentiating in c at c = 1 (Euler's identity)
//! gives ⟨∇_W L, W⟩ = 0, and differentiating L(cW) = L(W) in W gives ∇L(cW) = ∇L(W)/c. One SGD
//! step W' = W − η·g then has ‖W'‖² = ‖W‖² − 2η⟨g, W⟩ + η²‖g‖² = ‖W‖² + η²‖g‖²: the norm can
//! only grow.
//!
//! The model: saturn-layers' decoder LM with branch-LN residuals x ← x + LN(f(x)) (the
//! "pre_norm" of the norm-growth reference code, whose si-transformer is built this way), no
//! biases, ReLU FFN and LN ε = 0. Each branch output passes only through its LN, and each of
//! W_V, W_O (attention: f = concat_h(P_h·x·W_V,hᵀ)·W_Oᵀ with P independent of W_V, W_O) and
//! W_1, W_2 (FFN: f = W_2·ReLU(W_1·x)) enters f positively homogeneously, so each of these
//! matrices, alone, is a scale-invariant weight.

use proptest::prelude::*;
use saturn_layers::{
    Activation, DecoderLm, ForwardCtx, InitScheme, LmConfig, Module, ResidualScheme,
};
use saturn_optim::{Optimizer, Sgd, SgdConfig};
use saturn_tensor::ndarray::Array2;
use saturn_tensor::{Tensor, grad};
use saturn_theorems::proptest_config;
use saturn_theorems::random::{max_abs_diff, normal};

/// A bias-free branch-LN ReLU language model with LN ε = 0. (d ≥ 3: over 2 features LN is
/// ±(1, −1), locally constant, and every gradient through it is exactly zero.)
fn scale_invariant_lm(d_per_head: usize, heads: usize, layers: usize, seed: u64) -> DecoderLm<f64> {
    let d = d_per_head * heads;
    let config = LmConfig {
        residual: ResidualScheme::BranchLn,
        act: Activation::Relu,
        bias: false,
        ln_eps: 0.0,
        init: InitScheme::Normal { std: 0.5 },
        ..LmConfig::new(7, d, heads, 16, layers, 6)
    };
    DecoderLm::new(config, seed).unwrap()
}

/// The weights that reach the loss only through a LayerNorm, positively homogeneously.
fn scale_invariant_weights(model: &DecoderLm<f64>) -> Vec<(String, Tensor<f64>)> {
    model
        .named_parameters()
        .into_iter()
        .filter(|(n, _)| {
            ["attn.v.weight", "attn.o.weight", "ffn.w1.weight", "ffn.w2.weight"]
                .iter()
                .any(|s| n.ends_with(s))
        })
        .collect()
}

fn batch(tokens: &[usize]) -> (Array2<usize>, Array2<usize>) {
    let t = tokens.len() - 1;
    (
        Array2::from_shape_vec((1, t), tokens[..t].to_vec()).unwrap(),
        Array2::from_shape_vec((1, t), tokens[1..].to_vec()).unwrap(),
    )
}

fn sq_norm(t: &Tensor<f64>) -> f64 {
    t.to_vec().iter().map(|v| v * v).sum()
}

proptest! {
    #![proptest_config(proptest_config(32))]

    /// LayerNorm is scale-invariant (Ba et al. 2016; Merrill et al. 2021, §4): LN(c·x) = LN(x)
    /// for every c > 0 when ε = 0, with any gain and bias.
    #[test]
    fn layer_norm_is_scale_invariant(rows in 1usize..5, d in 2usize..12, log_c in -4.0f64..4.0, seed in any::<u64>()) {
        let c = 10f64.powf(log_c);
        let x = normal(&[rows, d], 1.0, seed);
        let (g, b) = (normal(&[d], 1.0, seed ^ 1), normal(&[d], 1.0, seed ^ 2));
        let y = x.layer_norm(Some(&g), Some(&b), 0.0).unwrap();
        let yc = x.mul_scalar(c).layer_norm(Some(&g), Some(&b), 0.0).unwrap();
        let err = max_abs_diff(&y, &yc);
        prop_assert!(
            err <= 1e-12 * (1.0 + d as f64),
            "THEOREM (scale invariance of LayerNorm, ε = 0): LN(c·x) = LN(x); contradicted at c = {c}: max |ΔLN| = {err:e}"
        );
    }

    /// Merrill et al. 2021, §4 / docs/REFERENCES.md#merrill-norm-growth: for a weight W reached
    /// only through a LayerNorm, the loss is 0-homogeneous in W, so L(cW) = L(W), ⟨∇_W L, W⟩ = 0
    /// (Euler's identity with k = 0), and ∇L(cW) = ∇L(W)/c. Checked for every W_V, W_O, W_1, W_2 of
    /// random bias-free branch-LN ReLU language models, to 1e-9 relative.
    #[test]
    fn gradients_of_scale_invariant_weights_are_orthogonal_to_them(
        d_per_head in 3usize..5,
        heads in 1usize..3,
        layers in 1usize..3,
        tokens in prop::collection::vec(0usize..7, 3..7),
        seed in any::<u64>(),
        log_c in -1.0f64..1.0,
    ) {
        let c = 10f64.powf(log_c);
        let model = scale_invariant_lm(d_per_head, heads, layers, seed);
        let (inputs, targets) = batch(&tokens);
        let loss = || model.loss(inputs.view(), targets.view(), &mut ForwardCtx::eval()).unwrap();
        let l0 = loss();
        // ε = 0: a token whose ReLU units are all off gives LN(0) = 0/0 (probability ≈ 2⁻¹⁶)
        prop_assume!(l0.item().unwrap().is_finite());
        for (name, w) in scale_invariant_weights(&model) {
            let g = grad(std::slice::from_ref(&l0), std::slice::from_ref(&w), false).unwrap().remove(0);
            let (gw, gn, wn) = (g.dot(&w).unwrap().item().unwrap(), sq_norm(&g).sqrt(), sq_norm(&w).sqrt());
            prop_assert!(
                gw.abs() <= 1e-9 * gn * wn + 1e-15 * wn,
                "THEOREM (Merrill et al. 2021 §4, Euler with k = 0): ⟨∇_W L, W⟩ = 0 for a scale-invariant W; \
                 contradicted for {name}: ⟨g, W⟩ = {gw:e}, ‖g‖ = {gn:e}, ‖W‖ = {wn:e}"
            );
            let original = w.data();
            w.set_data(original.mapv(|v| c * v)).unwrap();
            let lc = loss();
            let gc = grad(std::slice::from_ref(&lc), std::slice::from_ref(&w), false).unwrap().remove(0);
            w.set_data(original).unwrap();
            let (a, b) = (l0.item().unwrap(), lc.item().unwrap());
            prop_assert!(
                (a - b).abs() <= 1e-10 * (1.0 + a.abs()),
                "THEOREM (0-homogeneity): L(cW) = L(W); contradicted for {name} at c = {c}: {a} vs {b}"
            );
            let err = max_abs_diff(&gc.mul_scalar(c), &g);
            prop_assert!(
                err <= 1e-9 * gn.max(1e-300),
                "THEOREM ((−1)-homogeneity of the gradient): ∇L(cW) = ∇L(W)/c; contradicted for {name} at c = {c}: \
                 max |c·∇L(cW) − ∇L(W)| = {err:e}, ‖∇L(W)‖ = {gn:e}"
            );
        }
    }

    /// Merrill et al. 2021, §4 / docs/REFERENCES.md#merrill-norm-growth (norm growth): since ⟨g, W⟩
    /// = 0 for a scale-invariant weight, one plain SGD step W' = W − η·g raises the squared norm by
    /// exactly η²‖g‖²: ‖W'‖² = ‖W‖² + η²‖g‖². Checked with saturn-optim's SGD on every
    /// scale-invariant weight of random models, with steps η‖g‖ from 0.3% to 30% of ‖W‖, to 1e-8
    /// relative.
    #[test]
    fn an_sgd_step_raises_the_squared_norm_of_a_scale_invariant_weight_by_eta_squared_g_squared(
        d_per_head in 3usize..5,
        heads in 1usize..3,
        layers in 1usize..3,
        tokens in prop::collection::vec(0usize..7, 3..7),
        seed in any::<u64>(),
        step_fraction in 0.003f64..0.3,
    ) {
        let model = scale_invariant_lm(d_per_head, heads, layers, seed);
        let (inputs, targets) = batch(&tokens);
        let loss = model.loss(inputs.view(), targets.view(), &mut ForwardCtx::eval()).unwrap();
        prop_assume!(loss.item().unwrap().is_finite());
        loss.backward().unwrap();
        for (name, w) in scale_invariant_weights(&model) {
            let g = w.grad().unwrap();
            let (w2, g2) = (sq_norm(&w), sq_norm(&g));
            prop_assume!(g2 > 1e-16, "a gradient at rounding level has no direction");
            let eta = step_fraction * (w2 / g2).sqrt();
            let mut sgd = Sgd::new(vec![(name.clone(), w.clone())], SgdConfig::default()).unwrap();
            sgd.step(eta).unwrap();
            let increase = sq_norm(&w) - w2;
            let expected = eta * eta * g2;
            prop_assert!(
                (increase - expected).abs() <= 1e-8 * expected,
                "THEOREM (Merrill et al. 2021 §4, norm growth): one SGD step on a scale-invariant W raises ‖W‖² by \
                 exactly η²‖g‖²; contradicted for {name}: ‖W'‖² − ‖W‖² = {increase:e}, η²‖g‖² = {expected:e} \
                 (η = {eta:e})"
            );
        }
    }
}
