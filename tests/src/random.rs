//! Seeded random tensors and the random models the theorems are stated for.

use proptest::prelude::*;
use saturn_layers::{
    Activation, AttentionMask, EncoderLayer, ForwardCtx, InitScheme, Initializer, LayerSpec,
    MultiHeadAttention, Norm, NormKind, ResidualScheme,
};
use saturn_tensor::Tensor;

/// Every residual scheme of saturn-layers.
pub const SCHEMES: [ResidualScheme; 5] = [
    ResidualScheme::PostLn,
    ResidualScheme::PreLn,
    ResidualScheme::Admin,
    ResidualScheme::DeepNorm,
    ResidualScheme::BranchLn,
];

/// Any residual scheme.
pub fn any_scheme() -> impl Strategy<Value = ResidualScheme> {
    prop::sample::select(SCHEMES.to_vec())
}

/// A constant (no gradient) with i.i.d. N(0, std²) entries drawn from `seed`.
pub fn normal(shape: &[usize], std: f64, seed: u64) -> Tensor<f64> {
    normal_param(shape, std, seed).detach()
}

/// A parameter (leaf requiring a gradient) with i.i.d. N(0, std²) entries drawn from `seed`.
pub fn normal_param(shape: &[usize], std: f64, seed: u64) -> Tensor<f64> {
    Initializer::new(InitScheme::Normal { std: 1.0 }, seed).normal(shape, std)
}

/// A new parameter holding c·p (its own storage: changing it leaves p alone).
pub fn scaled_copy(p: &Tensor<f64>, c: f64) -> Tensor<f64> {
    Tensor::param(p.to_array().mapv(|v| c * v))
}

/// The Euclidean inner product of two lists of tensors, Σₖ ⟨aₖ, bₖ⟩.
pub fn inner(a: &[Tensor<f64>], b: &[Tensor<f64>]) -> f64 {
    assert_eq!(a.len(), b.len(), "inner product of lists of different lengths");
    a.iter()
        .zip(b)
        .map(|(x, y)| x.to_vec().iter().zip(y.to_vec()).map(|(p, q)| p * q).sum::<f64>())
        .sum()
}

/// The largest absolute entry of a − b (same shapes).
pub fn max_abs_diff(a: &Tensor<f64>, b: &Tensor<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape(), "comparing tensors of different shapes");
    a.to_vec().iter().zip(b.to_vec()).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// The largest absolute entry.
pub fn max_abs(a: &Tensor<f64>) -> f64 {
    a.to_vec().iter().map(|x| x.abs()).fold(0.0, f64::max)
}

/// The attention scores s = q·kᵀ (divided by √d_head when the layer scales them) of every head,
/// [B, H, T_q, T_k], recomputed from the layer's public projections, with masked keys at −∞.
/// Attention turns these into probabilities by softmax(s), softmax(c·s) or the saturated limit.
pub fn attention_scores(
    attn: &MultiHeadAttention<f64>,
    x_q: &Tensor<f64>,
    x_kv: &Tensor<f64>,
    causal: bool,
) -> Tensor<f64> {
    let (sq, skv) = (x_q.shape(), x_kv.shape());
    let (b, tq, tk, d) = (sq[0], sq[1], skv[1], sq[2]);
    let (h, dh) = (attn.n_heads, d / attn.n_heads);
    let split = |t: Tensor<f64>, len: usize| {
        t.reshape(&[b, len, h, dh]).and_then(|t| t.permute(&[0, 2, 1, 3])).expect("[B, T, d]")
    };
    let q = split(attn.q.forward(x_q).expect("q projection"), tq);
    let k = split(attn.k.forward(x_kv).expect("k projection"), tk);
    let mut s = q.matmul(&k.transpose(2, 3).expect("rank 4")).expect("q·kᵀ");
    if attn.scale_scores {
        s = s.mul_scalar(1.0 / (dh as f64).sqrt());
    }
    if causal {
        let blocked = saturn_tensor::ndarray::ArrayD::from_shape_fn(
            saturn_tensor::ndarray::IxDyn(&[b, h, tq, tk]),
            |p| p[3] > p[2],
        );
        s = s.masked_fill(&blocked, f64::NEG_INFINITY).expect("mask of the scores' shape");
    }
    s
}

/// Xiong et al.'s (2020, §3.2; docs/REFERENCES.md#xiong-theorem) Transformer at initialization, as
/// their lemma and Theorem 1 assume it:
///
/// - d_model = d_ffn = d; every weight matrix (W^Q, W^K, W^V, W^O, W^1, W^2) i.i.d. N(0, 1/d),
///   which is Xavier-Gaussian N(0, 2/(fan_in + fan_out)) for d×d matrices;
/// - biases zero at initialization (left out here: `bias: false`);
/// - ReLU FFN: FFN(x) = ReLU(x·W^1)·W^2;
/// - LayerNorm without affine terms and with ε = 0 (γ = 1, β = 0 at init, so the affine
///   parameters saturn-layers keeps change nothing);
/// - Post-LN: x ← LN(x + Attn(x)), x ← LN(x + FFN(x)); Pre-LN: x ← x + Attn(LN(x)),
///   x ← x + FFN(LN(x)), and a final LN after the last layer.
///
/// Attention is saturn-layers' multi-head softmax attention (1/√d_head scaling, no mask), not a
/// further simplified one: the lemma's argument needs only that each attention output be a
/// convex combination of the value vectors with weights independent of W^V, which holds here.
pub struct XiongStack {
    pub scheme: ResidualScheme,
    pub d: usize,
    pub layers: Vec<EncoderLayer<f64>>,
    /// The final LN of Pre-LN (no affine terms, ε = 0).
    pub final_norm: Option<Norm<f64>>,
}

impl XiongStack {
    /// `n_layers` layers over `d` features with `n_heads` heads, weights from `seed`. The same
    /// seed gives the same weights for Post-LN and Pre-LN, and a deeper stack shares its first
    /// layers with a shallower one of the same seed.
    pub fn new(
        scheme: ResidualScheme,
        n_layers: usize,
        d: usize,
        n_heads: usize,
        seed: u64,
    ) -> Self {
        assert!(
            matches!(scheme, ResidualScheme::PostLn | ResidualScheme::PreLn),
            "Xiong et al. analyse Post-LN and Pre-LN"
        );
        let spec = LayerSpec {
            d_model: d,
            n_heads,
            d_ff: d,
            act: Activation::Relu,
            norm: NormKind::LayerNorm,
            ln_eps: 0.0,
            bias: false,
            scale_scores: true,
            scheme,
            alpha: 1.0,
            beta: 1.0,
            qkv_gain: 1.0,
            omega_init: 1.0,
            dropout: 0.0,
        };
        let mut init = Initializer::new(InitScheme::Normal { std: (1.0 / d as f64).sqrt() }, seed);
        let layers = (0..n_layers)
            .map(|i| {
                EncoderLayer::new(format!("layers.{i}"), &spec, &mut init).expect("valid spec")
            })
            .collect();
        let final_norm = (scheme == ResidualScheme::PreLn)
            .then(|| Norm::new(NormKind::LayerNorm, d, false, 0.0));
        XiongStack { scheme, d, layers, final_norm }
    }

    /// The residual stream x_0 (the input), x_1 … x_L after each layer (Pre-LN: before the final
    /// LN), and the stack's output (Pre-LN: LN(x_L); Post-LN: x_L).
    pub fn forward(&self, x0: &Tensor<f64>) -> (Vec<Tensor<f64>>, Tensor<f64>) {
        let mut ctx = ForwardCtx::eval();
        let mut xs = vec![x0.clone()];
        for layer in &self.layers {
            let next = layer
                .forward(xs.last().expect("x_0"), AttentionMask::default(), &mut ctx)
                .expect("the stack's shapes fit");
            xs.push(next);
        }
        let last = xs.last().expect("x_0").clone();
        let out = match &self.final_norm {
            Some(ln) => ln.forward(&last).expect("final LN"),
            None => last,
        };
        (xs, out)
    }
}

/// Inputs for [`XiongStack`]: [batch, tokens, d] with i.i.d. N(0, 1) entries, so E‖x_{0,i}‖² = d.
pub fn xiong_input(batch: usize, tokens: usize, d: usize, seed: u64) -> Tensor<f64> {
    normal(&[batch, tokens, d], 1.0, seed)
}
