//! Saturated attention (Merrill et al. 2021, "Effects of Parameter Norm Growth During
//! Transformer Training", §3, the definition of saturated attention;
//! docs/REFERENCES.md#merrill-definitions).
//!
//! For scores s ∈ ℝⁿ with tie set M = argmax_j s_j and gap = s_max − max_{j∉M} s_j,
//!
//!   lim_{c→∞} softmax(c·s) = uniform over M,  and  |softmax(c·s)_j − 1{j∈M}/|M|| ≤ n·e^(−c·gap).
//!
//! (Proof of the rate: Z = |M| + Σ_{j∉M} e^(−c(s_max−s_j)), so p_j ≤ e^(−c·gap) off M and
//! 0 ≤ 1/|M| − 1/Z ≤ (n − |M|)·e^(−c·gap)/|M|² on M.)
//!
//! An attention layer's scores q·kᵀ are products of two linear maps of the parameters, so the
//! layer at parameters cθ has scores c²·s(θ) and converges, as c → ∞, to the exactly saturated
//! layer (saturn-layers' `AttentionMode::Saturated`) at θ, at the rate above with c² for c.

use proptest::prelude::*;
use saturn_layers::{
    AttentionMask, AttentionMode, ForwardCtx, InitScheme, Initializer, Linear, MultiHeadAttention,
    ProjectionInit, saturated_softmax,
};
use saturn_tensor::Tensor;
use saturn_theorems::proptest_config;
use saturn_theorems::random::{attention_scores, max_abs, max_abs_diff, normal, scaled_copy};

/// The limit of softmax(c·s): 1/|M| on the exact tie set M = { j : s_j = max s }, 0 elsewhere,
/// and the gap to the runner-up (∞ when every entry ties).
fn tie_set_limit(s: &[f64]) -> (Vec<f64>, f64) {
    let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let ties = s.iter().filter(|&&v| v == max).count() as f64;
    let gap = s.iter().filter(|&&v| v < max).map(|&v| max - v).fold(f64::INFINITY, f64::min);
    (s.iter().map(|&v| if v == max { 1.0 / ties } else { 0.0 }).collect(), gap)
}

/// Random score rows with planted exact ties: entry j of a row takes the row's maximum when
/// `tie[j]` is set (so the tie set has one to n members).
fn rows_with_ties() -> impl Strategy<Value = Vec<Vec<f64>>> {
    (2usize..10).prop_flat_map(|n| {
        prop::collection::vec(
            (prop::collection::vec(-5.0f64..5.0, n), prop::collection::vec(any::<bool>(), n)),
            1..4,
        )
        .prop_map(|rows| {
            rows.into_iter()
                .map(|(mut s, tie)| {
                    let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    for (v, t) in s.iter_mut().zip(tie) {
                        if t {
                            *v = max;
                        }
                    }
                    s
                })
                .collect()
        })
    })
}

fn tensor_of_rows(rows: &[Vec<f64>]) -> Tensor<f64> {
    let n = rows[0].len();
    Tensor::from_vec(rows.concat(), &[rows.len(), n]).unwrap()
}

/// A copy of the layer with every parameter multiplied by c (the layer at cθ).
fn scaled_layer(attn: &MultiHeadAttention<f64>, c: f64) -> MultiHeadAttention<f64> {
    let scale = |l: &Linear<f64>| Linear {
        weight: scaled_copy(&l.weight, c),
        bias: l.bias.as_ref().map(|b| scaled_copy(b, c)),
    };
    MultiHeadAttention {
        q: scale(&attn.q),
        k: scale(&attn.k),
        v: scale(&attn.v),
        o: scale(&attn.o),
        ..attn.clone()
    }
}

/// Tokens drawn from a pool of `pool` distinct random vectors (a small pool makes repeated keys,
/// hence exactly tied scores); [1, T, d].
fn tokens_from_pool(picks: &[usize], pool: usize, d: usize, seed: u64) -> Tensor<f64> {
    let vectors = normal(&[pool, d], 1.5, seed);
    let picks: Vec<usize> = picks.iter().map(|p| p % pool).collect();
    vectors.index_select(0, &picks).unwrap().reshape(&[1, picks.len(), d]).unwrap()
}

const TIE_TOL: f64 = 1e-9;

/// Per score row (flattened over batch, heads and queries): the saturated tie set's gap to the
/// runner-up under the layer's relative tie rule (ties: s ≥ s_max − TIE_TOL·|s_max|), and
/// |s_max|. Masked (−∞) keys never tie and have an infinite gap.
fn row_gaps(scores: &Tensor<f64>) -> Vec<(f64, f64)> {
    let shape = scores.shape();
    let n = *shape.last().unwrap();
    scores
        .to_vec()
        .chunks(n)
        .map(|row| {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let floor = max - TIE_TOL * max.abs();
            let gap =
                row.iter().filter(|&&v| v < floor).map(|&v| max - v).fold(f64::INFINITY, f64::min);
            (gap, max.abs())
        })
        .collect()
}

proptest! {
    #![proptest_config(proptest_config(32))]

    /// Merrill et al. 2021, §3 (saturated attention): softmax(c·s) converges to the uniform
    /// distribution over the argmax tie set M as c → ∞, with every entry within n·e^(−c·gap) of
    /// its limit (gap = distance from the maximum to the runner-up). Checked on random score
    /// rows with planted exact ties, c from 0.1 to 1000.
    #[test]
    fn softmax_at_scale_c_converges_to_the_tie_set(rows in rows_with_ties(), log_c in -1.0f64..3.0) {
        let c = 10f64.powf(log_c);
        let p = tensor_of_rows(&rows).mul_scalar(c).softmax(-1).unwrap().to_vec();
        let n = rows[0].len();
        for (r, s) in rows.iter().enumerate() {
            let (limit, gap) = tie_set_limit(s);
            let bound = n as f64 * (-c * gap).exp() + 4.0 * f64::EPSILON;
            for j in 0..n {
                let err = (p[r * n + j] - limit[j]).abs();
                prop_assert!(
                    err <= bound,
                    "THEOREM (Merrill et al. 2021 §3): |softmax(c·s)_j − 1{{j∈M}}/|M|| ≤ n·e^(−c·gap) \
                     contradicted: s = {s:?}, c = {c}, j = {j}: |{} − {}| = {err:e} > {bound:e} (gap {gap})",
                    p[r * n + j], limit[j]
                );
            }
        }
    }

    /// The exactly saturated attention of saturn-layers (`saturated_softmax` with tie tolerance
    /// 0) is the limit itself: 1/|M| on the tie set M = argmax s, 0 elsewhere (Merrill et al.
    /// 2021, §3).
    #[test]
    fn saturated_softmax_is_uniform_over_the_argmax_tie_set(rows in rows_with_ties()) {
        let sat = saturated_softmax(&tensor_of_rows(&rows), 0.0).unwrap().to_vec();
        let n = rows[0].len();
        for (r, s) in rows.iter().enumerate() {
            let (limit, _) = tie_set_limit(s);
            prop_assert_eq!(
                &sat[r * n..(r + 1) * n], &limit[..],
                "THEOREM (Merrill et al. 2021 §3): the saturated distribution of s = {:?} is uniform on argmax s", s
            );
        }
    }

    /// Merrill et al. 2021, §3: an attention layer whose parameters are all multiplied by c has
    /// scores c²·s(θ) (scores are products of two linear maps), so its attention probabilities
    /// converge to the saturated layer's at θ, each within T·e^(−c²·gap) (T keys) plus the
    /// rounding of near-ties; and for a bias-free layer the output, divided by c², converges to
    /// the saturated layer's output: |out(cθ)/c² − out_sat(θ)| ≤ ‖ΔP‖₁ summed over heads ·
    /// max |(V_h·W_O,hᵀ)|. Random layers (with and without biases, causal or not) on random
    /// tokens with repeats (repeated keys give exact ties, i.e. mean heads).
    #[test]
    fn an_attention_layer_at_c_theta_converges_to_the_saturated_layer(
        heads in 1usize..3,
        d_per_head in 1usize..4,
        picks in prop::collection::vec(0usize..16, 2..7),
        pool in 1usize..6,
        bias: bool,
        causal: bool,
        seed in any::<u64>(),
        c in 1.0f64..30.0,
    ) {
        let d = heads * d_per_head;
        let mut init = Initializer::new(InitScheme::Normal { std: 0.6 }, seed);
        let attn: MultiHeadAttention<f64> = MultiHeadAttention::new(&mut init, d, heads, bias, true, ProjectionInit::default()).unwrap();
        // biases are zero at init; make them random so the scaling of biases is exercised too
        for l in [&attn.q, &attn.k, &attn.v, &attn.o] {
            if let Some(b) = &l.bias {
                b.set_data(normal(&[d], 0.5, seed ^ 0xb1a5).data()).unwrap();
            }
        }
        let x = tokens_from_pool(&picks, pool, d, seed ^ 0x70c);
        let t = picks.len();
        let mask = AttentionMask { causal, keys: None, ..Default::default() };
        let run = |layer: &MultiHeadAttention<f64>, mode| {
            layer.forward(&x, &x, mask, &mut ForwardCtx::eval().with_attention(mode), "attn").unwrap()
        };
        let big = scaled_layer(&attn, c);
        let (out_c, p_c) = run(&big, AttentionMode::Softmax);
        let (out_sat, p_sat) = run(&attn, AttentionMode::Saturated { tie_tol: TIE_TOL });
        let scores = attention_scores(&attn, &x, &x, causal);
        let c2 = c * c;
        let (pc, ps) = (p_c.to_vec(), p_sat.to_vec());
        let mut l1_by_row = Vec::new();
        for (r, &(gap, smax)) in row_gaps(&scores).iter().enumerate() {
            // near-ties inside the tolerance differ by ≤ TIE_TOL·|s_max|, i.e. by a factor
            // e^(c²·TIE_TOL·|s_max|) in probability
            let slack = 2.0 * c2 * TIE_TOL * (1.0 + smax) + 1e-12;
            let bound = t as f64 * (-c2 * gap).exp() + slack;
            let row = r * t..(r + 1) * t;
            let err = pc[row.clone()].iter().zip(&ps[row.clone()]).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            prop_assert!(
                err <= bound,
                "THEOREM (Merrill et al. 2021 §3): the attention of the layer at cθ is within T·e^(−c²·gap) of the \
                 saturated attention at θ; contradicted at c = {c}, score row {r}: error {err:e} > bound {bound:e} \
                 (gap {gap:e}); scores {:?}, probabilities at cθ {:?}, saturated {:?}",
                &scores.to_vec()[row.clone()], &pc[row.clone()], &ps[row]
            );
            l1_by_row.push(pc[row.clone()].iter().zip(&ps[row]).map(|(a, b)| (a - b).abs()).sum::<f64>());
        }
        if !bias {
            // out = concat_h(P_h·V_h)·W_Oᵀ; at cθ, V and W_O carry c each: out(cθ) = c²·(P_c V W_Oᵀ)
            let v = attn.v.forward(&x).unwrap();
            let dh = d / heads;
            let mut bound = 0.0;
            for h in 0..heads {
                let vw = v.narrow(2, h * dh, dh).unwrap()
                    .matmul(&attn.o.weight.narrow(1, h * dh, dh).unwrap().transpose(0, 1).unwrap()).unwrap();
                let rows_h: f64 = l1_by_row.chunks(t).skip(h).step_by(heads).flatten().copied().fold(0.0, f64::max);
                bound += rows_h * max_abs(&vw);
            }
            let scale = max_abs(&out_sat).max(1.0);
            let err = max_abs_diff(&out_c.mul_scalar(1.0 / c2), &out_sat);
            prop_assert!(
                err <= bound + 1e-12 * scale,
                "THEOREM (Merrill et al. 2021 §3): a bias-free attention layer at cθ, divided by c², converges to the \
                 saturated layer at θ; contradicted at c = {c}: |out(cθ)/c² − out_sat(θ)| = {err:e} > {bound:e}"
            );
        }
    }
}
