//! Cross-entropy of logits [N, C] against class indices, as torch.nn.functional.cross_entropy:
//!
//! ℓᵢ = (1 − ε)·(−log pᵢ,ₜᵢ) + ε·(−(1/C) Σ_c log pᵢ,c),  loss = Σ_{i kept} ℓᵢ / #kept,
//!
//! with p = softmax(logits), ε the label smoothing, and rows whose target is `ignore_index`
//! left out of both sums (all rows ignored gives NaN, as PyTorch).
//!
//! One fused operation: the forward pass is a log-sum-exp per row, in the max-shifted logits
//! (the rows' terms and their total accumulated in f64; each row's maximum and sums taken left
//! to right, four rows interleaved so that the additions overlap). The gradient is
//! dlogits = g·wᵢ·(softmax(x) − q) with q = (1 − ε)·onehot(t) + ε/C and wᵢ = 1[row kept]/#kept:
//! in one vectorized pass per row as a constant when recording is off (first order), and in
//! differentiable operations (softmax, sub, mul) under `create_graph`, so every derivative
//! order follows.

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
                let mut exps = vec![T::zero(); ROWS * c];
                let xs = &xs[first * c..(first + part.len()) * c];
                let (targets, kept) = (&targets[first..], &kept[first..]);
                for (g, terms) in part.chunks_mut(ROWS).enumerate() {
                    let rows: Vec<&[T]> =
                        xs[g * ROWS * c..].chunks_exact(c.max(1)).take(terms.len()).collect();
                    let m = row_folds(&rows, T::neg_infinity(), |_, m, v| {
                        if v > m || v.is_nan() { v } else { m }
                    });
                    // the exponentials in their own loop per row (vectorized), then each row's
                    // sum in order, the rows' sums interleaved
                    for ((e, row), &m) in exps.chunks_exact_mut(c.max(1)).zip(&rows).zip(&m) {
                        for (e, &v) in e.iter_mut().zip(*row) {
                            *e = exp_or_zero(v - m, floor);
                        }
                    }
                    let e_rows: Vec<&[T]> = exps.chunks_exact(c.max(1)).take(rows.len()).collect();
                    let totals = row_folds(&e_rows, T::zero(), |_, acc, e| acc + e);
                    // Σ_c z_c for the smoothing term (f64, as `Iterator::sum`: from −0.0)
                    let sums = if eps == 0.0 {
                        Vec::new()
                    } else {
                        row_folds(&rows, -0.0, |r, acc: f64, v: T| acc + (v - m[r]).as_f64())
                    };
                    for (r, term) in terms.iter_mut().enumerate() {
                        let i = g * ROWS + r;
                        if !kept[i] {
                            continue;
                        }
                        let lse = totals[r].ln().as_f64();
                        let picked = (1.0 - eps) * (rows[r][targets[i]] - m[r]).as_f64();
                        *term = if eps == 0.0 {
                            lse - picked
                        } else {
                            lse - picked - eps * (sums[r] / c as f64)
                        };
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
                // every entry g·wᵢ·(p − ε/C) in one vectorized pass, then the target's, whose q
                // is (1 − ε) + ε/C (the same values, and bits, as q entry by entry)
                let (base, hit) = (T::cast(eps / c as f64), T::cast(1.0 - eps + eps / c as f64));
                parallel::for_each_wide_part(
                    dx_rows,
                    c.max(1),
                    1,
                    #[inline(always)]
                    |first, part| {
                        for (i, row) in part.chunks_exact_mut(c.max(1)).enumerate() {
                            let i = first + i;
                            let w = g * row_weight(i);
                            let t = targets[i];
                            let picked = row.get(t).copied();
                            for v in row.iter_mut() {
                                *v = w * (*v - base);
                            }
                            if let Some(p) = picked {
                                row[t] = w * (p - hit);
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

/// Rows of logits taken together by the forward pass: their folds interleave (see
/// [`row_folds`]).
const ROWS: usize = 4;

/// Each row r's left-to-right fold `f(r, …f(r, f(r, init, x₀), x₁)…)` — the order, and so the
/// bits, of `Iterator::fold` on it — for rows of equal length. One row's fold waits on each step's
/// latency; the rows' steps are independent, so folding several rows in one loop overlaps them.
#[inline(always)]
fn row_folds<T: Copy, A: Copy>(rows: &[&[T]], init: A, f: impl Fn(usize, A, T) -> A) -> Vec<A> {
    let len = rows.first().map_or(0, |r| r.len());
    assert!(rows.iter().all(|r| r.len() == len), "rows of equal length");
    let mut acc = vec![init; rows.len()];
    if let [a, b, c, d] = rows {
        let (mut x, mut y, mut z, mut w) = (init, init, init, init);
        for j in 0..len {
            x = f(0, x, a[j]);
            y = f(1, y, b[j]);
            z = f(2, z, c[j]);
            w = f(3, w, d[j]);
        }
        acc.copy_from_slice(&[x, y, z, w]);
    } else {
        for (r, (acc, row)) in acc.iter_mut().zip(rows).enumerate() {
            *acc = row.iter().fold(init, |a, &v| f(r, a, v));
        }
    }
    acc
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

    /// The fused op's forward and first-order backward, in f32, bit for bit against the formula
    /// evaluated row by row with plain left-to-right sums (the row-interleaved folds and the
    /// two-step backward pass change the speed, not one bit).
    #[test]
    fn fused_cross_entropy_is_bit_identical_to_the_row_by_row_formula() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_pcg::Pcg64::seed_from_u64(11);
        for (n, c, eps) in [
            (1, 1, 0.0),
            (3, 7, 0.0),
            (9, 33, 0.1),
            (13, 40, 0.0),
            (6, 5, 0.37),
            (17, 257, 0.0),
            (7, 1000, 0.1),
        ] {
            let x: Vec<f32> = (0..n * c).map(|_| rng.random_range(-3.0f32..3.0)).collect();
            let targets: Vec<usize> =
                (0..n).map(|i| if i % 5 == 2 { 99 } else { (i * 7) % c }).collect();
            let opts = CrossEntropy { ignore_index: Some(99), label_smoothing: eps };
            let logits = Tensor::<f32>::param_from_vec(x.clone(), &[n, c]).unwrap();
            let loss = logits.cross_entropy(&targets, opts).unwrap();
            let g = grad(&[loss.mul_scalar(1.7)], &[logits.clone()], false).unwrap();
            // the formula row by row
            let kept: Vec<bool> = targets.iter().map(|&t| t != 99).collect();
            let count = kept.iter().filter(|&&k| k).count() as f64;
            let mut total = 0.0f64;
            for (i, row) in x.chunks(c).enumerate().filter(|&(i, _)| kept[i]) {
                let m = row
                    .iter()
                    .fold(f32::NEG_INFINITY, |m, &v| if v > m || v.is_nan() { v } else { m });
                let lse = row
                    .iter()
                    .map(|&v| crate::Float::exp_fast(v - m))
                    .fold(0.0f32, |a, e| a + e)
                    .ln() as f64;
                let mean = row.iter().map(|&v| (v - m) as f64).sum::<f64>() / c as f64;
                total += lse - (1.0 - eps) * (row[targets[i]] - m) as f64 - eps * mean;
            }
            assert_eq!(
                loss.to_vec()[0].to_bits(),
                ((total / count) as f32).to_bits(),
                "loss, n {n} c {c}"
            );
            let p = Tensor::<f32>::constant(ArrayD::from_shape_vec(IxDyn(&[n, c]), x).unwrap())
                .softmax(-1)
                .unwrap()
                .to_vec();
            for (k, (&d, &p)) in g[0].to_vec().iter().zip(&p).enumerate() {
                let (i, j) = (k / c, k % c);
                let w = 1.7f32 * if kept[i] { (1.0 / count) as f32 } else { 0.0 };
                let q = (if j == targets[i] { 1.0 - eps } else { 0.0 } + eps / c as f64) as f32;
                assert_eq!(
                    d.to_bits(),
                    (w * (p - q)).to_bits(),
                    "gradient ({i}, {j}), n {n} c {c}"
                );
            }
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
