//! The check that exactly saturated attention is the large-c limit of softmax(c·s) (Merrill et
//! al. 2021, §3): layer by layer, on the same layer inputs, exactly saturated attention against
//! softmax(c·s) for a large c, on queries whose two largest scores differ by more than a gap
//! (read off the softmax probabilities: s₁ − s₂ = ln p₁ − ln p₂).

use saturn_layers::{AttentionMask, AttentionMode, ForwardCtx};
use saturn_tensor::{Float, Tensor, no_grad};
use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};
use crate::heads::{Visibility, probs4};
use crate::layered::{Layered, TokenBatch};
use crate::scaling::probe;

/// How far softmax(c·s) is from exactly saturated attention on one attention layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitCheck {
    pub layer: String,
    /// max |saturated − softmax(c·s)| over the checked queries, keys and heads.
    pub max_abs_diff: f64,
    /// Queries (× heads) whose top-two score gap exceeds the minimum gap.
    pub checked: usize,
    /// Queries (× heads) left out as near ties.
    pub near_ties: usize,
}

/// Compares exactly saturated probabilities with softmax(c·s) ones for the same scores s, on
/// the queries whose two largest scores differ by more than `min_gap`; the gap is read off the
/// softmax(s) probabilities (ln p₁ − ln p₂; a query with one visible key has no runner-up and is
/// checked).
pub fn compare_saturated_to_scaled<T: Float>(
    layer: &str,
    saturated: &Tensor<T>,
    scaled: &Tensor<T>,
    softmax: &Tensor<T>,
    min_gap: f64,
    vis: &Visibility<'_>,
) -> Result<LimitCheck> {
    let (sat, big, soft) =
        (probs4(saturated, "saturated")?, probs4(scaled, "scaled")?, probs4(softmax, "softmax")?);
    if sat.dim() != big.dim() || sat.dim() != soft.dim() {
        return Err(invalid(
            "saturated limit",
            format!("shapes {:?}, {:?}, {:?}", sat.dim(), big.dim(), soft.dim()),
        ));
    }
    let (nb, nh, tq, tk) = sat.dim();
    let keys_ok =
        |b: usize, q: usize, k: usize| !(vis.causal && k > q) && vis.keys.is_none_or(|m| m[[b, k]]);
    let query_ok = |b: usize, q: usize| match (&vis.queries, &vis.keys) {
        (Some(m), _) => m[[b, q]],
        (None, Some(m)) if tq == tk => m[[b, q]],
        _ => true,
    };
    let mut out =
        LimitCheck { layer: layer.to_string(), max_abs_diff: 0.0, checked: 0, near_ties: 0 };
    for b in 0..nb {
        for q in 0..tq {
            if !query_ok(b, q) {
                continue;
            }
            for h in 0..nh {
                let (mut p1, mut p2) = (0.0f64, 0.0f64);
                for k in (0..tk).filter(|&k| keys_ok(b, q, k)) {
                    let p = soft[[b, h, q, k]];
                    if p > p1 {
                        p2 = p1;
                        p1 = p;
                    } else if p > p2 {
                        p2 = p;
                    }
                }
                let gap = if p2 > 0.0 { p1.ln() - p2.ln() } else { f64::INFINITY };
                if gap <= min_gap {
                    out.near_ties += 1;
                    continue;
                }
                out.checked += 1;
                for k in 0..tk {
                    out.max_abs_diff =
                        out.max_abs_diff.max((sat[[b, h, q, k]] - big[[b, h, q, k]]).abs());
                }
            }
        }
    }
    Ok(out)
}

/// Layer by layer on the layer inputs of the exactly saturated network at θ: the attention of
/// each layer under `Saturated { tie_tol }`, `Scaled { c }` and `Softmax`, compared by
/// [`compare_saturated_to_scaled`].
pub fn saturated_limit_check<T: Float, M: Layered<T>>(
    model: &M,
    batch: &TokenBatch,
    c: f64,
    tie_tol: f64,
    min_gap: f64,
) -> Result<Vec<LimitCheck>> {
    let saturated = AttentionMode::Saturated { tie_tol };
    let inputs = probe(model, batch, 1.0, saturated)?.representations.layers;
    let mask = AttentionMask {
        causal: model.causal(),
        keys: batch.real.as_ref().map(|m| m.view()),
        fill: model.mask_fill(),
    };
    let vis = Visibility {
        causal: model.sees_only_the_past(),
        keys: batch.real.as_ref().map(|m| m.view()),
        queries: batch.analysed.as_ref().map(|m| m.view()),
    };
    no_grad(|| {
        model
            .layer_stack()
            .iter()
            .zip(&inputs)
            .map(|(layer, x)| {
                let run = |mode| -> Result<Tensor<T>> {
                    let mut ctx = ForwardCtx::eval().with_attention(mode).with_trace();
                    layer.forward(x, mask, &mut ctx)?;
                    let trace = ctx.trace.and_then(|t| t.attention.into_iter().next());
                    Ok(trace
                        .ok_or_else(|| {
                            invalid("saturated limit", "the layer recorded no attention")
                        })?
                        .probs)
                };
                let name = layer.sub_attn.name.clone();
                let (sat, big, soft) = (
                    run(saturated)?,
                    run(AttentionMode::Scaled { c })?,
                    run(AttentionMode::Softmax)?,
                );
                compare_saturated_to_scaled(&name, &sat, &big, &soft, min_gap, &vis)
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use saturn_layers::saturated_softmax;
    use saturn_tensor::ndarray::Array4;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Random scores with a unique maximum: softmax(c·s) → the saturated mode, and the
        /// check agrees once c·gap is large.
        #[test]
        fn the_saturated_mode_is_the_limit_of_scaled_softmax(seed in 0u64..1000, n in 2usize..9) {
            let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let mut next = || { x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); (x >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0 };
            let s = Array4::from_shape_fn((1, 2, 3, n), |_| next());
            let scores = Tensor::<f64>::constant(s.clone().into_dyn());
            let sat = saturated_softmax(&scores, 1e-12).unwrap();
            let soft = scores.softmax(-1).unwrap();
            let mut gaps = Vec::new();
            for lane in s.lanes(saturn_tensor::ndarray::Axis(3)) {
                let mut v: Vec<f64> = lane.to_vec();
                v.sort_by(|a, b| b.total_cmp(a));
                gaps.push(v[0] - v[1]);
            }
            let gap = gaps.iter().copied().fold(f64::INFINITY, f64::min);
            prop_assume!(gap > 1e-3);
            for c in [1e4 / gap, 1e5 / gap] {
                let big = scores.mul_scalar(c).softmax(-1).unwrap();
                let chk = compare_saturated_to_scaled("s", &sat, &big, &soft, 0.0, &Visibility::default()).unwrap();
                prop_assert_eq!(chk.checked, 6);
                prop_assert!(chk.max_abs_diff <= n as f64 * (-c * gap).exp() + 1e-12, "{:?}", chk);
            }
        }
    }
}
