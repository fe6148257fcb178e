//! Multi-head attention (Vaswani et al. 2017), self or cross, with causal and key-padding masks
//! written as −∞ scores, optional 1/√d_head scaling, and three ways to turn scores into
//! probabilities ([`AttentionMode`]):
//!
//! - `Softmax`: softmax(s);
//! - `Scaled { c }`: softmax(c·s), the attention of the network at cθ along the score direction;
//! - `Saturated { tie_tol }`: lim_{c→∞} softmax(c·s), uniform over the argmax tie set
//!   M = { j : s_max − s_j ≤ tie_tol·|s_max| } (Merrill et al. 2021, §3;
//!   docs/REFERENCES.md#merrill-definitions). Its derivative with respect to the scores is zero
//!   almost everywhere, so it is a constant of the graph; gradients still flow through the values.
//!
//! Head h uses features [h·d_h, (h+1)·d_h) of q, k and v (torch_io's layout).

use saturn_tensor::ndarray::{ArrayD, ArrayView2, Axis, IxDyn};
use saturn_tensor::{Float, Tensor};
use serde::{Deserialize, Serialize};

use crate::ctx::{AttentionTrace, ForwardCtx};
use crate::error::{Result, batch_err, config_err};
use crate::init::Initializer;
use crate::linear::Linear;
use crate::module::{Module, join};

/// The default relative tie tolerance of saturated attention (docs/REFERENCES.md#our-choices).
pub const DEFAULT_TIE_TOL: f64 = 1e-6;

/// How attention scores become probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum AttentionMode {
    /// softmax(s).
    #[default]
    Softmax,
    /// softmax(c·s).
    Scaled { c: f64 },
    /// Uniform over { j : s_max − s_j ≤ tie_tol·|s_max| }.
    Saturated { tie_tol: f64 },
}

/// Exactly saturated attention along the last axis: 1/|M| on the tie set M of each row, 0
/// elsewhere (a constant tensor). −∞ scores are never in M unless the whole row is −∞, which
/// gives NaN, as softmax does.
pub fn saturated_softmax<T: Float>(scores: &Tensor<T>, tie_tol: f64) -> Result<Tensor<T>> {
    let s = scores.data();
    if s.ndim() == 0 {
        return Err(batch_err("saturated attention needs at least one axis"));
    }
    let last = Axis(s.ndim() - 1);
    let mut out = ArrayD::<T>::zeros(s.raw_dim());
    for (row, mut out_row) in s.lanes(last).into_iter().zip(out.lanes_mut(last)) {
        let max = row.iter().fold(T::neg_infinity(), |m, &v| if v > m { v } else { m });
        if max == T::neg_infinity() {
            out_row.fill(T::nan());
            continue;
        }
        let floor = max - T::cast(tie_tol) * max.abs();
        let ties = row.iter().filter(|&&v| v >= floor).count();
        let w = T::one() / T::cast(ties as f64);
        for (o, &v) in out_row.iter_mut().zip(row) {
            *o = if v >= floor { w } else { T::zero() };
        }
    }
    Ok(Tensor::constant(out))
}

/// What a blocked score becomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskFill {
    /// −∞: blocked keys get weight exactly 0 (the correct mask).
    #[default]
    NegInfinity,
    /// 0: the norm-growth reference code's `scores = mask * scores`
    /// (docs/REFERENCES.md#merrill-quirks, quirk 2). Blocked keys keep the weight e⁰ / Z — a causal
    /// LM sees the future — and under saturation they are tied at score 0 and win every row whose
    /// visible scores are all negative. Only for comparing with that code.
    Zero,
}

/// Which keys each query may see.
#[derive(Debug, Clone, Copy, Default)]
pub struct AttentionMask<'a> {
    /// Query t sees keys u ≤ t only.
    pub causal: bool,
    /// [B, T_key], true for a real token: keys that are false are hidden from every query.
    pub keys: Option<ArrayView2<'a, bool>>,
    /// What blocked scores become (−∞ unless reproducing the reference code's bug).
    pub fill: MaskFill,
}

impl AttentionMask<'_> {
    /// The blocked positions as a boolean array (true = −∞) that broadcasts against the scores
    /// [B, H, T_q, T_k]: [B, 1, T_q, T_k] with a key mask, [1, 1, T_q, T_k] for the causal mask
    /// alone; None when nothing is blocked.
    fn blocked(&self, batch: usize, tq: usize, tk: usize) -> Result<Option<ArrayD<bool>>> {
        if let Some(keys) = self.keys.filter(|k| k.dim() != (batch, tk)) {
            return Err(batch_err(format!(
                "key mask is {:?}, attention needs [{batch}, {tk}]",
                keys.dim()
            )));
        }
        if !self.causal && self.keys.is_none() {
            return Ok(None);
        }
        let rows = if self.keys.is_some() { batch } else { 1 };
        let mut blocked = Vec::with_capacity(rows * tq * tk);
        for b in 0..rows {
            for t in 0..tq {
                blocked.extend(
                    (0..tk)
                        .map(|u| (self.causal && u > t) || self.keys.is_some_and(|k| !k[[b, u]])),
                );
            }
        }
        let shape = IxDyn(&[rows, 1, tq, tk]);
        Ok(Some(ArrayD::from_shape_vec(shape, blocked).expect("rows·T_q·T_k entries")))
    }
}

/// How the projections of one attention block are scaled and drawn, beyond the initializer's
/// scheme.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProjectionInit {
    /// Gain on q, k and v: 1, or 1/√2 for a fused Xavier draw ([`crate::init::QkvInit`]).
    pub qkv_gain: f64,
    /// Gain on v and o: DeepNorm's β (1 otherwise).
    pub value_gain: f64,
    /// v and o Xavier-normal (DeepNorm's init) instead of the scheme's draw.
    pub xavier_normal_values: bool,
}

impl Default for ProjectionInit {
    fn default() -> Self {
        ProjectionInit { qkv_gain: 1.0, value_gain: 1.0, xavier_normal_values: false }
    }
}

/// Multi-head attention with projections q, k, v, o.
#[derive(Debug, Clone)]
pub struct MultiHeadAttention<T: Float> {
    pub q: Linear<T>,
    pub k: Linear<T>,
    pub v: Linear<T>,
    pub o: Linear<T>,
    pub n_heads: usize,
    /// Multiply scores by 1/√d_head.
    pub scale_scores: bool,
}

impl<T: Float> MultiHeadAttention<T> {
    /// Attention over `d` features in `n_heads` heads, its projections drawn by `init` and
    /// scaled as `projections` says (q, k: `qkv_gain`; v: `qkv_gain`·`value_gain`; o:
    /// `value_gain`).
    pub fn new(
        init: &mut Initializer,
        d: usize,
        n_heads: usize,
        bias: bool,
        scale_scores: bool,
        projections: ProjectionInit,
    ) -> Result<Self> {
        if n_heads == 0 || !d.is_multiple_of(n_heads) {
            return Err(config_err(format!("d_model {d} is not divisible by {n_heads} heads")));
        }
        let ProjectionInit { qkv_gain, value_gain, xavier_normal_values } = projections;
        let value_linear = |init: &mut Initializer, gain: f64| {
            if xavier_normal_values {
                Linear {
                    weight: init.xavier_normal(d, d, gain),
                    bias: bias.then(|| crate::init::filled(&[d], 0.0)),
                }
            } else {
                Linear::new(init, d, d, bias, gain)
            }
        };
        let q = Linear::new(init, d, d, bias, qkv_gain);
        let k = Linear::new(init, d, d, bias, qkv_gain);
        let v = value_linear(init, qkv_gain * value_gain);
        let o = value_linear(init, value_gain);
        Ok(MultiHeadAttention { q, k, v, o, n_heads, scale_scores })
    }

    /// Attention of queries from `x_q` [B, T_q, d] over keys and values from `x_kv` [B, T_k, d].
    /// Returns the output [B, T_q, d] and the probabilities [B, H, T_q, T_k]; records the latter
    /// in the trace under `name` when tracing. Softmax modes with a −∞ mask run the fused
    /// [`Tensor::attention`]; the saturated mode and the zero-fill mask run the composition of
    /// per-head operations. Both give the same bits where both apply.
    pub fn forward(
        &self,
        x_q: &Tensor<T>,
        x_kv: &Tensor<T>,
        mask: AttentionMask<'_>,
        ctx: &mut ForwardCtx<T>,
        name: &str,
    ) -> Result<(Tensor<T>, Tensor<T>)> {
        let (sq, skv) = (x_q.shape(), x_kv.shape());
        if sq.len() != 3 || skv.len() != 3 || sq[0] != skv[0] || sq[2] != skv[2] {
            return Err(batch_err(format!(
                "attention needs [B, T, d] inputs with equal B and d, got {sq:?} and {skv:?}"
            )));
        }
        let (b, tq, tk, d) = (sq[0], sq[1], skv[1], sq[2]);
        let dh = d / self.n_heads;
        let score_scale = if self.scale_scores { 1.0 / (dh as f64).sqrt() } else { 1.0 };
        let blocked = mask.blocked(b, tq, tk)?;
        let (q, k, v) = (self.q.forward(x_q)?, self.k.forward(x_kv)?, self.v.forward(x_kv)?);
        // Softmax modes with a −∞ mask: the fused op, the same bits as the composition without
        // its head copies and with each head's scores in cache
        let fused_scale = match ctx.attention {
            AttentionMode::Softmax => Some(score_scale),
            AttentionMode::Scaled { c } if c > 0.0 => Some(score_scale * c),
            AttentionMode::Scaled { .. } | AttentionMode::Saturated { .. } => None,
        };
        let (y, probs) = match fused_scale {
            Some(scale) if mask.fill == MaskFill::NegInfinity => {
                q.attention(&k, &v, self.n_heads, blocked.as_ref(), scale)?
            }
            _ => self.heads_composed(&q, &k, &v, blocked, mask.fill, ctx.attention, score_scale)?,
        };
        if let Some(trace) = ctx.trace.as_mut() {
            trace.attention.push(AttentionTrace { name: name.to_string(), probs: probs.clone() });
        }
        Ok((self.o.forward(&y)?, probs))
    }

    /// Attention of projected q [B, T_q, d] over k, v [B, T_k, d] composed of per-head
    /// operations: every mode and mask fill. Returns y [B, T_q, d] (before the output
    /// projection) and the probabilities.
    #[allow(clippy::too_many_arguments)]
    fn heads_composed(
        &self,
        q: &Tensor<T>,
        k: &Tensor<T>,
        v: &Tensor<T>,
        blocked: Option<ArrayD<bool>>,
        fill_with: MaskFill,
        mode: AttentionMode,
        score_scale: f64,
    ) -> Result<(Tensor<T>, Tensor<T>)> {
        let (b, tq, tk, d) = (q.shape()[0], q.shape()[1], k.shape()[1], q.shape()[2]);
        let (h, dh) = (self.n_heads, d / self.n_heads);
        let q = q.reshape(&[b, tq, h, dh])?.permute(&[0, 2, 1, 3])?;
        let k_t = k.reshape(&[b, tk, h, dh])?.permute(&[0, 2, 3, 1])?;
        let v = v.reshape(&[b, tk, h, dh])?.permute(&[0, 2, 1, 3])?;
        let scores = q.matmul(&k_t)?;
        let (scores, blocked, score_scale) = match fill_with {
            MaskFill::NegInfinity => (scores, blocked, score_scale),
            // the reference code's bug: scaled scores times the 0/1 mask, nothing is hidden
            MaskFill::Zero => {
                (fill(scores.mul_scalar(score_scale), blocked.as_ref(), 0.0)?, None, 1.0)
            }
        };
        // Softmax modes go through the fused masked softmax (one pass, one graph node); the
        // saturated mode needs the masked scores themselves.
        let probs = match mode {
            AttentionMode::Softmax => scores.masked_softmax(blocked.as_ref(), score_scale)?,
            AttentionMode::Scaled { c } if c > 0.0 => {
                scores.masked_softmax(blocked.as_ref(), score_scale * c)?
            }
            AttentionMode::Scaled { c } => {
                fill(scores.mul_scalar(score_scale), blocked.as_ref(), f64::NEG_INFINITY)?
                    .mul_scalar(c)
                    .softmax(-1)?
            }
            AttentionMode::Saturated { tie_tol } => saturated_softmax(
                &fill(scores.mul_scalar(score_scale), blocked.as_ref(), f64::NEG_INFINITY)?,
                tie_tol,
            )?,
        };
        let y = probs.matmul(&v)?.permute(&[0, 2, 1, 3])?.reshape(&[b, tq, d])?;
        Ok((y, probs))
    }
}

/// Scores with `value` where `blocked` is true (no mask: the scores unchanged).
fn fill<T: Float>(
    scores: Tensor<T>,
    blocked: Option<&ArrayD<bool>>,
    value: f64,
) -> Result<Tensor<T>> {
    match blocked {
        Some(m) => Ok(scores.masked_fill(m, value)?),
        None => Ok(scores),
    }
}

impl<T: Float> Module<T> for MultiHeadAttention<T> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor<T>)) {
        self.q.visit(&join(prefix, "q"), f);
        self.k.visit(&join(prefix, "k"), f);
        self.v.visit(&join(prefix, "v"), f);
        self.o.visit(&join(prefix, "o"), f);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use saturn_tensor::ndarray::Array2;
    use saturn_tensor::{gradcheck, gradgradcheck};

    use super::*;
    use crate::init::InitScheme;

    /// A fused (3d × d) Xavier draw has bound √(6/(4d)): q, k and v get 1/√2 of a separate
    /// draw's spread, o keeps it.
    #[test]
    fn fused_qkv_init_draws_q_k_v_with_the_fused_matrix_bound() {
        use crate::init::QkvInit;
        let d = 64;
        let scheme = InitScheme::XavierUniform;
        let projections =
            ProjectionInit { qkv_gain: QkvInit::Fused.gain(scheme), ..Default::default() };
        let attn: MultiHeadAttention<f64> = MultiHeadAttention::new(
            &mut Initializer::new(scheme, 3),
            d,
            4,
            true,
            true,
            projections,
        )
        .unwrap();
        let bound = |l: &Linear<f64>| l.weight.to_vec().iter().fold(0.0f64, |m, w| m.max(w.abs()));
        let fused = (6.0 / (4 * d) as f64).sqrt();
        for l in [&attn.q, &attn.k, &attn.v] {
            assert!(bound(l) <= fused && bound(l) > 0.98 * fused);
        }
        let separate = (6.0 / (2 * d) as f64).sqrt();
        assert!(bound(&attn.o) <= separate && bound(&attn.o) > 0.98 * separate);
        assert_eq!(QkvInit::Fused.gain(InitScheme::Normal { std: 0.02 }), 1.0);
        assert_eq!(QkvInit::Separate.gain(scheme), 1.0);
    }

    fn mha(seed: u64, d: usize, h: usize) -> MultiHeadAttention<f64> {
        MultiHeadAttention::new(
            &mut Initializer::new(InitScheme::Normal { std: 0.4 }, seed),
            d,
            h,
            true,
            true,
            ProjectionInit::default(),
        )
        .unwrap()
    }

    fn input(seed: u64, shape: &[usize]) -> Tensor<f64> {
        Initializer::new(InitScheme::Normal { std: 1.0 }, seed).normal(shape, 1.0)
    }

    #[test]
    fn attention_passes_gradcheck_and_gradgradcheck() {
        let attn = mha(1, 4, 2);
        let x = input(2, &[2, 3, 4]);
        let keys = Array2::from_shape_fn((2, 3), |(b, u)| !(b == 1 && u == 2));
        let f = |p: &[Tensor<f64>]| -> Result<Tensor<f64>> {
            let a = MultiHeadAttention {
                q: Linear { weight: p[1].clone(), bias: Some(p[2].clone()) },
                ..attn.clone()
            };
            let mask =
                AttentionMask { causal: true, keys: Some(keys.view()), ..Default::default() };
            Ok(a.forward(&p[0], &p[0], mask, &mut ForwardCtx::eval(), "a")?.0)
        };
        let params = [x, attn.q.weight.clone(), attn.q.bias.clone().unwrap()];
        gradcheck(f, &params).unwrap();
        gradgradcheck(f, &params).unwrap();
    }

    /// The fused path and the composed one give the same output, the same probabilities and the
    /// same parameter and input gradients of a loss of the output, to the bit in f32, for causal
    /// self-attention with padding and for cross-attention. (A loss of the probabilities too sums
    /// the two paths' score gradients in another order: equal to rounding, gradchecked in
    /// saturn-tensor.)
    #[test]
    fn fused_and_composed_attention_are_bit_identical() {
        let attn: MultiHeadAttention<f32> = MultiHeadAttention::new(
            &mut Initializer::new(InitScheme::Normal { std: 0.4 }, 5),
            8,
            2,
            true,
            true,
            ProjectionInit::default(),
        )
        .unwrap();
        let init = |seed, shape: &[usize]| {
            Initializer::new(InitScheme::Normal { std: 1.0 }, seed).normal::<f32>(shape, 1.0)
        };
        let (x, memory) = (init(6, &[2, 5, 8]), init(7, &[2, 3, 8]));
        let w = init(8, &[2, 5, 8]).detach();
        let keys = Array2::from_shape_fn((2, 5), |(b, u)| !(b == 1 && u == 4));
        let mut params = Vec::new();
        attn.visit("", &mut |_, p| params.push(p.clone()));
        params.extend([x.clone(), memory.clone()]);
        for (kv, causal) in [(&x, true), (&memory, false)] {
            let keys = (causal).then(|| keys.view());
            let mask = AttentionMask { causal, keys, ..Default::default() };
            let run = |fuse: bool| {
                let (y, p) = if fuse {
                    attn.forward(&x, kv, mask, &mut ForwardCtx::eval(), "a").unwrap()
                } else {
                    let (q, k, v) = (
                        attn.q.forward(&x).unwrap(),
                        attn.k.forward(kv).unwrap(),
                        attn.v.forward(kv).unwrap(),
                    );
                    let blocked = mask.blocked(2, 5, kv.shape()[1]).unwrap();
                    let (fill, mode, scale) =
                        (MaskFill::NegInfinity, AttentionMode::Softmax, 1.0 / 4f64.sqrt());
                    let (y, p) =
                        attn.heads_composed(&q, &k, &v, blocked, fill, mode, scale).unwrap();
                    (attn.o.forward(&y).unwrap(), p)
                };
                let loss = y.mul(&w).unwrap().sum_all();
                let grads = saturn_tensor::grad(&[loss], &params, false).unwrap();
                let mut all = vec![y.to_vec(), p.to_vec()];
                all.extend(grads.iter().map(Tensor::to_vec));
                all.into_iter().map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
            };
            let fused: Vec<_> = run(true).collect();
            let composed: Vec<_> = run(false).collect();
            assert_eq!(fused, composed, "causal: {causal}");
        }
    }

    #[test]
    fn probabilities_are_causal_and_rows_sum_to_one() {
        let attn = mha(3, 4, 2);
        let x = input(4, &[1, 5, 4]);
        let (_, p) = attn
            .forward(
                &x,
                &x,
                AttentionMask { causal: true, keys: None, ..Default::default() },
                &mut ForwardCtx::eval(),
                "a",
            )
            .unwrap();
        let p = p.to_array();
        for h in 0..2 {
            for t in 0..5 {
                let row: f64 = (0..5).map(|u| p[[0, h, t, u]]).sum();
                assert!((row - 1.0).abs() < 1e-12);
                assert!((t + 1..5).all(|u| p[[0, h, t, u]] == 0.0));
            }
        }
    }

    #[test]
    fn saturated_attention_is_uniform_over_ties() {
        let s = Tensor::<f64>::from_vec(
            vec![1.0, 3.0, 3.0, -2.0, 0.0, 0.0, 0.0, f64::NEG_INFINITY],
            &[2, 4],
        )
        .unwrap();
        let p = saturated_softmax(&s, DEFAULT_TIE_TOL).unwrap().to_vec();
        assert_eq!(p, vec![0.0, 0.5, 0.5, 0.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0, 0.0]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// softmax(c·s) → saturated(s) with error ≤ n·exp(−c·gap), gap = s_max − (runner-up).
        #[test]
        fn scaled_softmax_approaches_the_saturated_mode(scores in prop::collection::vec(-3i32..3, 2..8), c in 1.0f64..200.0) {
            // integer scores make exact ties common and gaps ≥ 1
            let n = scores.len();
            let s = Tensor::<f64>::from_vec(scores.iter().map(|&v| v as f64).collect(), &[1, n]).unwrap();
            let sat = saturated_softmax(&s, DEFAULT_TIE_TOL).unwrap().to_vec();
            let soft = s.mul_scalar(c).softmax(-1).unwrap().to_vec();
            let max = *scores.iter().max().unwrap();
            let gap = scores.iter().filter(|&&v| v < max).map(|&v| (max - v) as f64).fold(f64::INFINITY, f64::min);
            let err = soft.iter().zip(&sat).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            prop_assert!(err <= n as f64 * (-c * gap).exp() + 1e-15, "err {err} gap {gap}");
        }
    }

    #[test]
    fn saturated_mode_of_a_layer_matches_a_huge_scale() {
        let attn = mha(5, 4, 2);
        let x = input(6, &[1, 4, 4]).mul_scalar(3.0);
        let mask = AttentionMask { causal: true, keys: None, ..Default::default() };
        let run = |mode| {
            attn.forward(&x, &x, mask, &mut ForwardCtx::eval().with_attention(mode), "a").unwrap()
        };
        let (sat_out, sat) = run(AttentionMode::Saturated { tie_tol: 1e-12 });
        let (big_out, big) = run(AttentionMode::Scaled { c: 1e7 });
        let err =
            sat.to_vec().iter().zip(big.to_vec()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(err < 1e-9, "{err}");
        assert!(sat_out.to_vec().iter().zip(big_out.to_vec()).all(|(a, b)| (a - b).abs() < 1e-8));
    }

    /// The reference code's multiplicative mask: a blocked score becomes 0 (after 1/√d_h), so
    /// query 0's weights are softmax(s₀₀, 0, 0, …) — future keys keep weight — while the −∞ mask
    /// gives query 0 all its weight on key 0.
    #[test]
    fn the_zero_fill_mask_keeps_weight_on_the_future() {
        let attn = mha(5, 4, 2);
        let x = input(6, &[1, 3, 4]);
        let probs = |fill| {
            let mask = AttentionMask { causal: true, keys: None, fill };
            attn.forward(&x, &x, mask, &mut ForwardCtx::eval(), "a").unwrap().1
        };
        let (correct, buggy) = (probs(MaskFill::NegInfinity), probs(MaskFill::Zero));
        let q = attn.q.forward(&x).unwrap().to_vec();
        let k = attn.k.forward(&x).unwrap().to_vec();
        // head 0 (d_head 2), query 0: s₀₀ = q₀·k₀/√2
        let s00 = (q[0] * k[0] + q[1] * k[1]) / 2f64.sqrt();
        let z = s00.exp() + 2.0;
        let expected = [s00.exp() / z, 1.0 / z, 1.0 / z];
        let row = &buggy.to_vec()[..3];
        assert!(row.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-12), "{row:?}");
        assert_eq!(&correct.to_vec()[..3], &[1.0, 0.0, 0.0]);
    }

    #[test]
    fn a_mask_of_the_wrong_shape_is_an_error() {
        let attn = mha(0, 4, 2);
        let x = input(0, &[2, 3, 4]);
        let keys = Array2::from_elem((2, 4), true);
        let mask = AttentionMask { causal: false, keys: Some(keys.view()), ..Default::default() };
        assert!(attn.forward(&x, &x, mask, &mut ForwardCtx::eval(), "a").is_err());
        assert!(
            MultiHeadAttention::<f64>::new(
                &mut Initializer::new(InitScheme::XavierUniform, 0),
                5,
                2,
                true,
                true,
                ProjectionInit::default()
            )
            .is_err()
        );
    }
}
