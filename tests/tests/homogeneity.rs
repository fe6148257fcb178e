//! Homogeneity (Merrill et al. 2021, "Effects of Parameter Norm Growth During Transformer
//! Training", §3 (homogeneity and approximate homogeneity);
//! docs/REFERENCES.md#merrill-definitions).
//!
//! f is k-homogeneous in θ when f(cθ) = c^k·f(θ) for all c > 0; differentiating in c at c = 1
//! gives Euler's identity θ·∇_θ f = k·f.
//!
//! - A bias-free ReLU network with k linear layers, f = W_k·ReLU(…ReLU(W_1·x)), is
//!   k-homogeneous in θ = (W_1, …, W_k) (ReLU is positively 1-homogeneous) and 1-homogeneous in x.
//! - Bias-free attention scores s = (x·W_Qᵀ)(x·W_Kᵀ)ᵀ are 2-homogeneous in (W_Q, W_K) and in x;
//!   linear attention (no softmax), y = concat_h(s_h·x·W_V,hᵀ)·W_Oᵀ, is 4-homogeneous in
//!   (W_Q, W_K, W_V, W_O) and 3-homogeneous in x.
//! - A bias-free transformer with softmax attention is only approximately homogeneous: its
//!   attention saturates. For the branch-LN stack x ← x + γ·LN(f(x)) (the norm-growth code's
//!   si-transformer) with embeddings, γ and the output layer all scaled, the logits satisfy
//!   f(x; cθ)/c² → sf(x; θ), the same network with exactly saturated attention, and the error
//!   vanishes as c grows (Merrill et al.: ‖f(cθ) − c^k·f(θ)‖ ≤ e^(−d‖θ‖) beyond some norm).

use proptest::prelude::*;
use saturn_layers::{
    Activation, AttentionMask, AttentionMode, DecoderLm, ForwardCtx, InitScheme, Initializer,
    Linear, LmConfig, Module, MultiHeadAttention, PositionKind, ProjectionInit, ResidualScheme,
};
use saturn_tensor::ndarray::Array2;
use saturn_tensor::{Tensor, grad};
use saturn_theorems::proptest_config;
use saturn_theorems::random::{attention_scores, inner, max_abs, max_abs_diff, normal};

/// Checks Euler's identity Σ_p ⟨p, ∂s/∂p⟩ = k·s for the scalar `s` and the inputs `ps`, to
/// 1e-10 of the size of the terms; returns the message on failure.
fn euler(s: &Tensor<f64>, ps: &[Tensor<f64>], k: f64, what: &str) -> Result<(), String> {
    let g = grad(std::slice::from_ref(s), ps, false).map_err(|e| e.to_string())?;
    let terms: Vec<f64> = ps
        .iter()
        .zip(&g)
        .map(|(p, gp)| inner(std::slice::from_ref(p), std::slice::from_ref(gp)))
        .collect();
    let lhs: f64 = terms.iter().sum();
    let rhs = k * s.item().unwrap();
    let size = terms.iter().map(|t| t.abs()).sum::<f64>() + rhs.abs();
    if (lhs - rhs).abs() <= 1e-10 * size + 1e-300 {
        Ok(())
    } else {
        Err(format!(
            "THEOREM (Euler's identity for a {k}-homogeneous function, Merrill et al. 2021 §3): \
             θ·∇f = {k}·f for {what}; contradicted: θ·∇f = {lhs:e}, {k}·f = {rhs:e} (terms {terms:?})"
        ))
    }
}

fn bias_free_linear(init: &mut Initializer, inp: usize, out: usize) -> Linear<f64> {
    Linear::new(init, inp, out, false, 1.0)
}

/// k linear layers with ReLU between them, no biases.
fn relu_net(layers: &[Linear<f64>], x: &Tensor<f64>) -> Tensor<f64> {
    let mut h = x.clone();
    for (i, l) in layers.iter().enumerate() {
        if i > 0 {
            h = h.relu();
        }
        h = l.forward(&h).unwrap();
    }
    h
}

/// Linear (softmax-free) multi-head attention: concat_h(s_h·V_h)·W_Oᵀ with s = q·kᵀ/√d_h.
fn linear_attention(attn: &MultiHeadAttention<f64>, x: &Tensor<f64>) -> Tensor<f64> {
    let s = x.shape();
    let (b, t, d) = (s[0], s[1], s[2]);
    let (h, dh) = (attn.n_heads, d / attn.n_heads);
    let scores = attention_scores(attn, x, x, false);
    let v =
        attn.v.forward(x).unwrap().reshape(&[b, t, h, dh]).unwrap().permute(&[0, 2, 1, 3]).unwrap();
    let y = scores.matmul(&v).unwrap().permute(&[0, 2, 1, 3]).unwrap().reshape(&[b, t, d]).unwrap();
    attn.o.forward(&y).unwrap()
}

/// A fixed random projection ⟨r, y⟩ turning a tensor output into a scalar.
fn project(y: &Tensor<f64>, seed: u64) -> Tensor<f64> {
    y.dot(&normal(&y.shape(), 1.0, seed)).unwrap()
}

const TIE_TOL: f64 = 1e-11;

proptest! {
    #![proptest_config(proptest_config(32))]

    /// Merrill et al. 2021, §3: a bias-free ReLU network of k linear layers is k-homogeneous in
    /// its weights and 1-homogeneous in its input, so θ·∇_θ f = k·f, x·∇_x f = f and
    /// f(cθ) = c^k·f(θ). Random networks of 1 to 4 layers, widths 1 to 5.
    #[test]
    fn euler_identity_holds_for_bias_free_relu_networks(
        widths in prop::collection::vec(1usize..6, 2..6),
        batch in 1usize..4,
        seed in any::<u64>(),
        c in 0.1f64..10.0,
    ) {
        let k = widths.len() - 1;
        let mut init = Initializer::new(InitScheme::Normal { std: 0.8 }, seed);
        let layers: Vec<Linear<f64>> = widths.windows(2).map(|w| bias_free_linear(&mut init, w[0], w[1])).collect();
        let x = normal(&[batch, widths[0]], 1.0, seed ^ 1).detach_param();
        let s = project(&relu_net(&layers, &x), seed ^ 2);
        let weights: Vec<Tensor<f64>> = layers.iter().map(|l| l.weight.clone()).collect();
        euler(&s, &weights, k as f64, "a bias-free ReLU network in its weights").map_err(TestCaseError::fail)?;
        euler(&s, std::slice::from_ref(&x), 1.0, "a bias-free ReLU network in its input").map_err(TestCaseError::fail)?;
        let scaled: Vec<Linear<f64>> = layers.iter().map(|l| Linear { weight: l.weight.mul_scalar(c), bias: None }).collect();
        let (f, fc) = (relu_net(&layers, &x), relu_net(&scaled, &x));
        let err = max_abs_diff(&fc, &f.mul_scalar(c.powi(k as i32)));
        prop_assert!(
            err <= 1e-12 * max_abs(&fc).max(1e-300),
            "THEOREM (k-homogeneity, Merrill et al. 2021 §3): f(cθ) = c^k·f(θ) with k = {k}; contradicted at c = {c}: error {err:e}"
        );
    }

    /// Merrill et al. 2021, §3: bias-free attention scores s = q·kᵀ are products of two linear
    /// maps, 2-homogeneous in (W_Q, W_K) and in x; bias-free linear attention
    /// concat_h(s_h·V_h)·W_Oᵀ is 4-homogeneous in (W_Q, W_K, W_V, W_O) and 3-homogeneous in x.
    /// Euler's identity θ·∇f = k·f, checked on random layers and inputs.
    #[test]
    fn euler_identity_holds_for_bias_free_attention_scores(
        heads in 1usize..3,
        d_per_head in 1usize..4,
        tokens in 1usize..5,
        batch in 1usize..3,
        scale_scores: bool,
        seed in any::<u64>(),
    ) {
        let d = heads * d_per_head;
        let mut init = Initializer::new(InitScheme::Normal { std: 0.7 }, seed);
        let attn = MultiHeadAttention::<f64>::new(&mut init, d, heads, false, scale_scores, ProjectionInit::default()).unwrap();
        let x = normal(&[batch, tokens, d], 1.0, seed ^ 3).detach_param();
        let (wq, wk, wv, wo) = (attn.q.weight.clone(), attn.k.weight.clone(), attn.v.weight.clone(), attn.o.weight.clone());
        let scores = project(&attention_scores(&attn, &x, &x, false), seed ^ 4);
        euler(&scores, &[wq.clone(), wk.clone()], 2.0, "bias-free attention scores in (W_Q, W_K)").map_err(TestCaseError::fail)?;
        euler(&scores, std::slice::from_ref(&x), 2.0, "bias-free attention scores in x").map_err(TestCaseError::fail)?;
        let y = project(&linear_attention(&attn, &x), seed ^ 5);
        euler(&y, &[wq, wk, wv, wo], 4.0, "bias-free linear attention in (W_Q, W_K, W_V, W_O)").map_err(TestCaseError::fail)?;
        euler(&y, std::slice::from_ref(&x), 3.0, "bias-free linear attention in x").map_err(TestCaseError::fail)?;
    }
}

/// A bias-free branch-LN decoder LM (the norm-growth code's si-transformer shape): no biases
/// anywhere (LN β stays 0), no positions (repeated tokens then give exactly tied scores, i.e.
/// mean heads), ReLU FFN, no score scaling, LN ε = 0.
fn si_transformer(d_per_head: usize, heads: usize, layers: usize, seed: u64) -> DecoderLm<f64> {
    let config = LmConfig {
        residual: ResidualScheme::BranchLn,
        act: Activation::Relu,
        bias: false,
        scale_scores: false,
        ln_eps: 0.0,
        positions: PositionKind::None,
        init: InitScheme::Normal { std: 0.5 },
        ..LmConfig::new(4, d_per_head * heads, heads, 16, layers, 8)
    };
    DecoderLm::new(config, seed).unwrap()
}

/// The saturated forward pass, layer by layer: the logits sf(x; θ) and the smallest gap, over
/// every attention row of every layer, between the tie set and the runner-up score.
fn saturated_logits_and_min_gap(model: &DecoderLm<f64>, ids: &Array2<usize>) -> (Tensor<f64>, f64) {
    let mut ctx = ForwardCtx::eval().with_attention(AttentionMode::Saturated { tie_tol: TIE_TOL });
    let mask = AttentionMask { causal: true, keys: None, ..Default::default() };
    let mut h = model.embed(ids.view()).unwrap();
    let mut min_gap = f64::INFINITY;
    for layer in &model.layers {
        let scores = attention_scores(&layer.attn, &h, &h, true).to_vec();
        let t = ids.ncols();
        for row in scores.chunks(t) {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let floor = max - TIE_TOL * max.abs();
            for &v in row.iter().filter(|&&v| v < floor && v > f64::NEG_INFINITY) {
                min_gap = min_gap.min(max - v);
            }
        }
        h = layer.forward(&h, mask, &mut ctx).unwrap();
    }
    (model.head.forward(&h).unwrap(), min_gap)
}

proptest! {
    #![proptest_config(proptest_config(16))]

    /// Merrill et al. 2021, §3 (approximate homogeneity and saturation): a bias-free
    /// transformer's output at cθ approaches c^k times its saturated network, here
    /// logits(x; cθ)/c² → sf(x; θ) (embeddings, LN gains and the output layer all scale with c).
    /// Each attention row at cθ has scores c⁴·s and is within T·e^(−c⁴·gap) of saturated, so
    /// once c⁴·gap_min ≥ 40 over every row of every layer the relative error must be at
    /// rounding level (≤ 1e-8): along c = 1, 2, 4, …, 32 the error vanishes. (Below that
    /// threshold it need not decrease monotonically: the theorem is asymptotic.) Random 1–3-layer
    /// models, d = 3 to 8 (over 2 features LN is a sign function, locally constant, which would
    /// make the check vacuous), on random sequences from a 4-token vocabulary (repeats make
    /// exact ties, i.e. mean heads).
    #[test]
    fn a_bias_free_transformer_approaches_its_saturated_network_as_the_norm_grows(
        d_per_head in 3usize..5,
        heads in 1usize..3,
        layers in 1usize..4,
        tokens in prop::collection::vec(0usize..4, 2..8),
        seed in any::<u64>(),
    ) {
        let model = si_transformer(d_per_head, heads, layers, seed);
        let ids = Array2::from_shape_vec((1, tokens.len()), tokens.clone()).unwrap();
        let (sat, min_gap) = saturated_logits_and_min_gap(&model, &ids);
        let saturated = AttentionMode::Saturated { tie_tol: TIE_TOL };
        let direct = model.forward(ids.view(), &mut ForwardCtx::eval().with_attention(saturated)).unwrap();
        prop_assume!(sat.to_vec().iter().all(|v| v.is_finite()), "ε = 0 and an all-off ReLU row: LN(0) = 0/0");
        prop_assert_eq!(sat.to_vec(), direct.to_vec(), "the layer-by-layer saturated pass is the model's saturated mode");
        // a near-tie (gap < 4e-5) saturates only beyond c = 32: outside this grid
        prop_assume!(32f64.powi(4) * min_gap >= 40.0, "near-tie: gap below 4e-5");
        let params = model.parameters();
        let originals: Vec<_> = params.iter().map(|p| p.data()).collect();
        let scale = max_abs(&sat).max(1.0);
        let mut errors = Vec::new();
        for c in [1.0f64, 2.0, 4.0, 8.0, 16.0, 32.0] {
            for (p, o) in params.iter().zip(&originals) {
                p.set_data(o.mapv(|v| c * v)).unwrap();
            }
            let logits = model.forward(ids.view(), &mut ForwardCtx::eval()).unwrap();
            errors.push((c, max_abs_diff(&logits.mul_scalar(1.0 / (c * c)), &sat) / scale));
        }
        for (p, o) in params.iter().zip(originals) {
            p.set_data(o).unwrap();
        }
        for &(c, e) in &errors {
            if c.powi(4) * min_gap >= 40.0 {
                prop_assert!(
                    e <= 1e-8,
                    "THEOREM (Merrill et al. 2021 §3, saturation): logits(cθ)/c² → sf(θ) with error ≤ T·e^(−c⁴·gap) per \
                     attention row; contradicted at c = {c} (c⁴·gap_min = {:e}): relative error {e:e}; errors by c: {errors:?}",
                    c.powi(4) * min_gap
                );
            }
        }
    }
}
