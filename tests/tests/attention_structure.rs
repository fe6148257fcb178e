//! Structural properties of attention (Vaswani et al. 2017, §3.2.3 (masked self-attention in the
//! decoder) and §3.5 (positions are the only source of order); DESIGN.md: a −∞ causal mask,
//! never a multiplicative 0 mask — contrast docs/REFERENCES.md#merrill-quirks, quirk 2 of the
//! norm-growth code).
//!
//! - Causal masking: with scores of keys u > t set to −∞, position t's attention weights on
//!   later keys are exactly 0, so every output at position t is a function of tokens 0..=t only.
//! - Permutation equivariance: self-attention without a mask and without positions treats its
//!   input as a set; every other part of a layer acts token-wise, so for a permutation π of the
//!   positions, Layer(x∘π) = Layer(x)∘π (with a key-padding mask permuted alongside).

use proptest::prelude::*;
use saturn_layers::{
    Activation, AttentionMask, DecoderLm, EncoderLayer, ForwardCtx, InitScheme, Initializer,
    LayerSpec, LmConfig, NormKind, ResidualScheme,
};
use saturn_tensor::ndarray::Array2;
use saturn_tensor::{Tensor, grad};
use saturn_theorems::proptest_config;
use saturn_theorems::random::{any_scheme, max_abs, max_abs_diff, normal};

fn activation() -> impl Strategy<Value = Activation> {
    prop::sample::select(vec![Activation::Relu, Activation::Gelu, Activation::GeluTanh])
}

fn lm(
    scheme: ResidualScheme,
    act: Activation,
    d_per_head: usize,
    heads: usize,
    layers: usize,
    seed: u64,
) -> DecoderLm<f64> {
    let config = LmConfig {
        residual: scheme,
        act,
        init: InitScheme::Normal { std: 0.5 },
        ..LmConfig::new(9, d_per_head * heads, heads, 8, layers, 8)
    };
    DecoderLm::new(config, seed).unwrap()
}

/// A random permutation of 0..n from a list of keys (argsort).
fn permutation(keys: &[u32]) -> Vec<usize> {
    let mut p: Vec<usize> = (0..keys.len()).collect();
    p.sort_by_key(|&i| (keys[i], i));
    p
}

proptest! {
    #![proptest_config(proptest_config(24))]

    /// Causal masking (Vaswani et al. 2017, §3.2.3): in a decoder LM of any residual scheme, the
    /// logits at positions 0..=t do not depend on the tokens after t: replacing every later token
    /// leaves them bit-identical (masked keys get probability exactly 0).
    #[test]
    fn causal_attention_makes_position_t_independent_of_later_tokens(
        scheme in any_scheme(),
        act in activation(),
        d_per_head in 1usize..4,
        heads in 1usize..3,
        layers in 1usize..4,
        tokens in prop::collection::vec(0usize..9, 2..9),
        replacement in prop::collection::vec(0usize..9, 8),
        cut in any::<prop::sample::Index>(),
        seed in any::<u64>(),
    ) {
        let model = lm(scheme, act, d_per_head, heads, layers, seed);
        let n = tokens.len();
        let t = cut.index(n - 1);
        let mut changed = tokens.clone();
        for (u, r) in changed.iter_mut().zip(&replacement).skip(t + 1) {
            *u = *r;
        }
        let run = |ids: &[usize]| {
            let ids = Array2::from_shape_vec((1, n), ids.to_vec()).unwrap();
            model.forward(ids.view(), &mut ForwardCtx::eval()).unwrap().to_vec()
        };
        let (a, b) = (run(&tokens), run(&changed));
        let vocab = 9;
        prop_assert_eq!(
            &a[..(t + 1) * vocab], &b[..(t + 1) * vocab],
            "THEOREM (causal masking): position t = {} is independent of tokens after it; the logits at ≤ t changed when \
             tokens {:?} became {:?} ({:?})", t, tokens, changed, scheme
        );
    }

    /// Causal masking, in derivative form: the Jacobian of the outputs at positions ≤ t with
    /// respect to the input vectors at positions > t is exactly zero, through every layer of a
    /// causal stack of any residual scheme.
    #[test]
    fn outputs_up_to_t_have_zero_gradient_with_respect_to_later_inputs(
        scheme in any_scheme(),
        d_per_head in 1usize..4,
        heads in 1usize..3,
        layers in 1usize..4,
        n in 2usize..7,
        cut in any::<prop::sample::Index>(),
        seed in any::<u64>(),
    ) {
        let model = lm(scheme, Activation::GeluTanh, d_per_head, heads, layers, seed);
        let d = d_per_head * heads;
        let t = cut.index(n - 1);
        let x = normal(&[1, n, d], 1.0, seed ^ 7).detach_param();
        let mut h = x.clone();
        let mut ctx = ForwardCtx::eval();
        for layer in &model.layers {
            h = layer.forward(&h, AttentionMask { causal: true, keys: None, ..Default::default() }, &mut ctx).unwrap();
        }
        let early = h.narrow(1, 0, t + 1).unwrap();
        let s = early.dot(&normal(&early.shape(), 1.0, seed ^ 8)).unwrap();
        let g = grad(&[s], &[x], false).unwrap().remove(0);
        let later = g.narrow(1, t + 1, n - t - 1).unwrap().to_vec();
        prop_assert!(
            later.iter().all(|&v| v == 0.0),
            "THEOREM (causal masking): ∂(outputs ≤ t)/∂(inputs > t) = 0; contradicted at t = {}: {:?} ({:?})", t, later, scheme
        );
    }

    /// Permutation equivariance (Vaswani et al. 2017, §3.5: attention has no notion of order
    /// without positions): a stack of unmasked encoder layers of any residual scheme satisfies
    /// Layer(x∘π) = Layer(x)∘π for a random permutation π of the tokens, also with a key-padding
    /// mask permuted alongside. Equal to 1e-12 of the outputs' size (the sums over keys run in a
    /// different order).
    #[test]
    fn unmasked_attention_without_positions_is_permutation_equivariant(
        scheme in any_scheme(),
        act in activation(),
        d_per_head in 1usize..4,
        heads in 1usize..3,
        layers in 1usize..3,
        keys in prop::collection::vec(any::<u32>(), 2..8),
        padded in prop::collection::vec(any::<bool>(), 8),
        use_mask: bool,
        seed in any::<u64>(),
    ) {
        let d = d_per_head * heads;
        let n = keys.len();
        let spec = LayerSpec {
            d_model: d,
            n_heads: heads,
            d_ff: 8,
            act,
            norm: NormKind::LayerNorm,
            ln_eps: 1e-5,
            bias: true,
            scale_scores: true,
            scheme,
            alpha: 1.3,
            beta: 1.0,
            qkv_gain: 1.0,
            omega_init: 1.7,
            dropout: 0.0,
        };
        let mut init = Initializer::new(InitScheme::Normal { std: 0.5 }, seed);
        let stack: Vec<EncoderLayer<f64>> = (0..layers)
            .map(|i| EncoderLayer::new(format!("layers.{i}"), &spec, &mut init).unwrap())
            .collect();
        let perm = permutation(&keys);
        // at least one real key, so no row of scores is all −∞
        let real: Vec<bool> = (0..n).map(|i| i == 0 || !padded[i]).collect();
        let mask = Array2::from_shape_fn((1, n), |(_, j)| real[j]);
        let mask_p = Array2::from_shape_fn((1, n), |(_, j)| real[perm[j]]);
        let x = normal(&[1, n, d], 1.0, seed ^ 9);
        let xp = x.index_select(1, &perm).unwrap();
        let run = |x: &Tensor<f64>, m: &Array2<bool>| {
            let mut h = x.clone();
            let mut ctx = ForwardCtx::eval();
            for layer in &stack {
                let mask = AttentionMask { causal: false, keys: use_mask.then(|| m.view()), ..Default::default() };
                h = layer.forward(&h, mask, &mut ctx).unwrap();
            }
            h
        };
        let (y, yp) = (run(&x, &mask), run(&xp, &mask_p));
        let expected = y.index_select(1, &perm).unwrap();
        let err = max_abs_diff(&yp, &expected);
        prop_assert!(
            err <= 1e-12 * max_abs(&y).max(1.0),
            "THEOREM (permutation equivariance): Layer(x∘π) = Layer(x)∘π without mask or positions; contradicted for \
             π = {:?} ({:?}): error {:e}", perm, scheme, err
        );
    }
}
