//! Cross-entropy of logits [N, C] against class indices, as torch.nn.functional.cross_entropy:
//!
//! ℓᵢ = (1 − ε)·(−log pᵢ,ₜᵢ) + ε·(−(1/C) Σ_c log pᵢ,c),  loss = Σ_{i kept} ℓᵢ / #kept,
//!
//! with p = softmax(logits), ε the label smoothing, and rows whose target is `ignore_index`
//! left out of both sums (all rows ignored gives NaN, as PyTorch).
//!
//! One fused operation: the forward pass is a log-sum-exp per row, in the max-shifted logits
//! (row sums accumulated in f64). The
//! gradient is dlogits = g·wᵢ·(softmax(x) − q) with q = (1 − ε)·onehot(t) + ε/C and
//! wᵢ = 1[row kept]/#kept: in one pass per row as a constant when recording is off (first
//! order), and in differentiable operations (softmax, sub, mul) under `create_graph`, so every
//! derivative order follows.

use ndarray::{ArrayD, IxDyn};

use super::layout::standard_copy;
use super::softmax::{exp_floor, exp_or_zero, masked_softmax_rows};
use crate::{Float, Result, Tensor, TensorError, is_grad_enabled, parallel};

/// Options of [`Tensor::cross_entropy`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CrossEntropy {
    /// Targets equal to this are ignored (e.g. padding).
    pub ignore_index: Option<usize>,
    /// Label smoothing ε in [0, 1].
    pub label_smoothing: f64,
}

impl<T: Float> Tensor<T> {
    /// Mean cross-entropy of logits `[N, C]` against `targets` (N class indices).
    pub fn cross_entropy(&self, targets: &[usize], opts: CrossEntropy) -> Result<Tensor<T>> {
        let shape = self.shape();
        let [n, c] = shape[..] else {
            return Err(TensorError::invalid(
                "cross_entropy",
                format!("logits must be [N, C], got {shape:?}"),
            ));
        };
        if targets.len() != n {
            return Err(TensorError::ShapeMismatch {
                op: "cross_entropy",
                lhs: shape,
                rhs: vec![targets.len()],
            });
        }
        if !(0.0..=1.0).contains(&opts.label_smoothing) {
            return Err(TensorError::invalid(
                "cross_entropy",
                format!("label smoothing {} is outside [0, 1]", opts.label_smoothing),
            ));
        }
        let kept: Vec<bool> = targets.iter().map(|&t| Some(t) != opts.ignore_index).collect();
        for (&t, &k) in targets.iter().zip(&kept) {
            if k && t >= c {
                return Err(TensorError::IndexOutOfBounds {
                    op: "cross_entropy",
                    index: t,
                    size: c,
                });
            }
        }
        let count = kept.iter().filter(|&&k| k).count() as f64;
        let eps = opts.label_smoothing;
        // forward, row by row, in the max-shifted logits z = x − m (so large logits lose no
        // digits): ℓᵢ = ln Σ e^z − (1 − ε)·z_t − ε·mean z
        let xd = self.data();
        let xs = xd.as_standard_layout();
        let xs = xs.as_slice().expect("standard layout");
        // the rows' terms in parallel parts, then summed in row order (the same bits on any
        // thread count)
        let floor = exp_floor::<T>();
        let mut terms = vec![0.0f64; n];
        parallel::for_each_wide_part(
            &mut terms,
            1,
            c.max(1),
            #[inline(always)]
            |first, part| {
                let mut exps = vec![T::zero(); c];
                let rows = xs[first * c..].chunks_exact(c.max(1));
                let rows = rows.zip(&targets[first..]).zip(&kept[first..]);
                for (term, ((row, &t), &k)) in part.iter_mut().zip(rows) {
                    if k {
                        let m = row_max(row);
                        // the exponentials in their own loop (vectorized), then the sum in order
                        for (e, &v) in exps.iter_mut().zip(row) {
                            *e = exp_or_zero(v - m, floor);
                        }
                        let lse = exps.iter().fold(T::zero(), |acc, &e| acc + e).ln().as_f64();
                        let mean = row.iter().map(|&v| (v - m).as_f64()).sum::<f64>() / c as f64;
                        *term = lse - (1.0 - eps) * (row[t] - m).as_f64() - eps * mean;
                    }
                }
            },
        );
        // ignored rows hold +0.0, which leaves the sum's bits as they were
        let total = terms.iter().fold(0.0, |acc, t| acc + t);
        let loss = ArrayD::from_elem(IxDyn(&[]), T::cast(total / count));
        let targets = targets.to_vec();
        Ok(Tensor::from_op(loss.into_shared(), "cross_entropy", &[self], move |a| {
            // dx = g·wᵢ/#kept·(softmax(x) − q), q = (1 − ε)·onehot(t) + ε/C
            let target_dist = |i: usize, j: usize| {
                let hit = if j == targets[i] { 1.0 - eps } else { 0.0 };
                T::cast(hit + eps / c as f64)
            };
            let row_weight = |i: usize| if kept[i] { T::cast(1.0 / count) } else { T::zero() };
            if !is_grad_enabled() && a.grad.shape().is_empty() {
                let g = a.grad.data().iter().copied().next().expect("a scalar");
                let mut dx = standard_copy(a.inputs[0].data().view());
                let dx_rows = dx.as_slice_mut().expect("standard layout");
                masked_softmax_rows(dx_rows, c, &[], T::one());
                parallel::for_each_wide_part(
                    dx_rows,
                    c.max(1),
                    1,
                    #[inline(always)]
                    |first, part| {
                        for (i, row) in part.chunks_exact_mut(c.max(1)).enumerate() {
                            let i = first + i;
                            let w = g * row_weight(i);
                            for (j, v) in row.iter_mut().enumerate() {
                                *v = w * (*v - target_dist(i, j));
                            }
                        }
                    },
                );
                return Ok(vec![Some(Tensor::constant(dx))]);
            }
            // q filled flat (ε/C, then the targets' entries), and the per-row factor g·wᵢ
            // formed on [N, 1] before it meets the [N, C] difference
            let mut q = vec![T::cast(eps / c as f64); n * c];
            for (i, &t) in targets.iter().enumerate().filter(|&(_, &t)| t < c) {
                q[i * c + t] = target_dist(i, t);
            }
            let q = Tensor::constant(ArrayD::from_shape_vec(IxDyn(&[n, c]), q).expect("n·c"));
            let w = ArrayD::from_shape_vec(IxDyn(&[n, 1]), (0..n).map(row_weight).collect());
            let gw = Tensor::constant(w.expect("n rows")).mul(a.grad)?;
            let dx = a.inputs[0].softmax(-1)?.sub(&q)?.mul(&gw)?;
            Ok(vec![Some(dx)])
        }))
    }
}

/// The largest entry of a row (NaN if any is NaN, −∞ for an empty row).
fn row_max<T: Float>(row: &[T]) -> T {
    row.iter().copied().fold(T::neg_infinity(), |m, v| if v > m || v.is_nan() { v } else { m })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use ndarray::{ArrayD, IxDyn};

    use super::CrossEntropy;
    use crate::check::{gradcheck, gradgradcheck};
    use crate::ops::testing::uniform;
    use crate::{Tensor, grad};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn cross_entropy_is_the_mean_picked_negative_log_softmax(n in 1usize..6, c in 2usize..6, t in prop::collection::vec(0usize..100, 6), seed: u64) {
            let x = uniform(&[n, c], -3.0, 3.0, seed);
            let targets: Vec<usize> = t[..n].iter().map(|v| v % c).collect();
            let loss = x.cross_entropy(&targets, CrossEntropy::default()).unwrap().item().unwrap();
            let lp = x.log_softmax(-1).unwrap().to_vec();
            let expected = -(0..n).map(|i| lp[i * c + targets[i]]).sum::<f64>() / n as f64;
            prop_assert!((loss - expected).abs() < 1e-12);
        }

        #[test]
        fn fused_cross_entropy_matches_its_composite_form(n in 1usize..7, c in 1usize..7, smooth in 0.0f64..0.5, t in prop::collection::vec(0usize..100, 7), seed: u64) {
            let x = uniform(&[n, c], -4.0, 4.0, seed);
            let targets: Vec<usize> = t[..n].iter().map(|v| v % (c + 1)).collect();
            let opts = CrossEntropy { ignore_index: Some(c), label_smoothing: smooth };
            prop_assume!(targets.iter().any(|&t| t < c));
            // the composite form the fused operation replaces
            let composite = |x: &Tensor<f64>| {
                let kept: Vec<bool> = targets.iter().map(|&t| t < c).collect();
                let index = ArrayD::from_shape_fn(IxDyn(&[n, 1]), |p| if kept[p[0]] { targets[p[0]] } else { 0 });
                let weight = Tensor::constant(ArrayD::from_shape_fn(IxDyn(&[n, 1]), |p| if kept[p[0]] { 1.0 } else { 0.0 }));
                let count = kept.iter().filter(|&&k| k).count() as f64;
                let log_p = x.log_softmax(-1).unwrap();
                let picked = log_p.gather(1, &index).unwrap().neg().mul_scalar(1.0 - smooth);
                let per_row = picked.add(&log_p.mean_axis(-1, true).unwrap().neg().mul_scalar(smooth)).unwrap();
                per_row.mul(&weight).unwrap().sum_all().mul_scalar(1.0 / count)
            };
            let loss = x.cross_entropy(&targets, opts).unwrap();
            let reference = composite(&x);
            prop_assert!((loss.item().unwrap() - reference.item().unwrap()).abs() < 1e-12);
            let fused = grad(&[loss.mul_scalar(1.7)], &[x.clone()], false).unwrap();
            let expected = grad(&[reference.mul_scalar(1.7)], &[x.clone()], false).unwrap();
            let again = x.cross_entropy(&targets, opts).unwrap().mul_scalar(1.7);
            let differentiable = grad(&[again], &[x.clone()], true).unwrap();
            for ((p, q), r) in fused[0].to_vec().iter().zip(expected[0].to_vec()).zip(differentiable[0].to_vec()) {
                prop_assert!((p - q).abs() < 1e-12, "fused: {p} vs {q}");
                prop_assert!((r - q).abs() < 1e-12, "create_graph: {r} vs {q}");
            }
        }

        #[test]
        fn cross_entropy_passes_gradcheck_and_gradgradcheck(n in 2usize..5, c in 2usize..5, smooth in 0.0f64..0.3, seed: u64) {
            let x = uniform(&[n, c], -2.0, 2.0, seed);
            let targets: Vec<usize> = (0..n).map(|i| i % c).collect();
            let opts = CrossEntropy { ignore_index: Some(1), label_smoothing: smooth };
            gradcheck(|t| t[0].cross_entropy(&targets, opts), &[x.clone()]).unwrap();
            gradgradcheck(|t| t[0].cross_entropy(&targets, opts), &[x]).unwrap();
        }
    }

    #[test]
    fn ignored_rows_and_label_smoothing_follow_pytorch() {
        // logits [[0, ln 3]] → p = (1/4, 3/4); target 1 → −ln(3/4)
        let x = Tensor::<f64>::from_vec(vec![0.0, 3f64.ln(), 5.0, 1.0], &[2, 2]).unwrap();
        let opts = CrossEntropy { ignore_index: Some(7), label_smoothing: 0.0 };
        let loss = x.cross_entropy(&[1, 7], opts).unwrap().item().unwrap();
        assert!((loss + (0.75f64).ln()).abs() < 1e-14);
        // ε = 0.2: 0.8·(−ln ¾) + 0.2·(−(ln ¼ + ln ¾)/2)
        let smooth = x
            .cross_entropy(&[1, 7], CrossEntropy { label_smoothing: 0.2, ..opts })
            .unwrap()
            .item()
            .unwrap();
        let expected = 0.8 * -(0.75f64).ln() + 0.2 * -((0.25f64).ln() + (0.75f64).ln()) / 2.0;
        assert!((smooth - expected).abs() < 1e-14);
        assert!(x.cross_entropy(&[7, 7], opts).unwrap().item().unwrap().is_nan());
    }

    #[test]
    fn huge_logits_give_a_finite_loss() {
        let x = Tensor::<f32>::from_vec(vec![1e4, -1e4, 0.0], &[1, 3]).unwrap();
        assert_eq!(x.cross_entropy(&[0], CrossEntropy::default()).unwrap().item().unwrap(), 0.0);
        assert_eq!(x.cross_entropy(&[1], CrossEntropy::default()).unwrap().item().unwrap(), 2e4);
    }

    #[test]
    fn bad_targets_are_errors() {
        let x = Tensor::<f32>::zeros(&[2, 3]);
        assert!(x.cross_entropy(&[0], CrossEntropy::default()).is_err());
        assert!(x.cross_entropy(&[0, 3], CrossEntropy::default()).is_err());
        assert!(
            x.cross_entropy(&[0, 1], CrossEntropy { label_smoothing: 1.5, ..Default::default() })
                .is_err()
        );
        assert!(
            Tensor::<f32>::zeros(&[2, 3, 4])
                .cross_entropy(&[0, 1], CrossEntropy::default())
                .is_err()
        );
    }
}
