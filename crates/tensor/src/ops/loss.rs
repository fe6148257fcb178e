//! Cross-entropy of logits [N, C] against class indices, as torch.nn.functional.cross_entropy:
//!
//! ℓᵢ = (1 − ε)·(−log pᵢ,ₜᵢ) + ε·(−(1/C) Σ_c log pᵢ,c),  loss = Σ_{i kept} ℓᵢ / #kept,
//!
//! with p = softmax(logits), ε the label smoothing, and rows whose target is `ignore_index`
//! left out of both sums (all rows ignored gives NaN, as PyTorch). Composed of log_softmax,
//! gather and reductions, so every derivative order follows.

use ndarray::{ArrayD, IxDyn};

use crate::{Float, Result, Tensor, TensorError};

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
        let index =
            ArrayD::from_shape_fn(IxDyn(&[n, 1]), |p| if kept[p[0]] { targets[p[0]] } else { 0 });
        let weight = Tensor::constant(ArrayD::from_shape_fn(IxDyn(&[n, 1]), |p| {
            if kept[p[0]] { T::one() } else { T::zero() }
        }));
        let count = kept.iter().filter(|&&k| k).count() as f64;
        let log_p = self.log_softmax(-1)?;
        let mut per_row = log_p.gather(1, &index)?.neg();
        if opts.label_smoothing > 0.0 {
            let eps = opts.label_smoothing;
            let smooth = log_p.mean_axis(-1, true)?.neg();
            per_row = per_row.mul_scalar(1.0 - eps).add(&smooth.mul_scalar(eps))?;
        }
        Ok(per_row.mul(&weight)?.sum_all().mul_scalar(1.0 / count))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::CrossEntropy;
    use crate::Tensor;
    use crate::check::{gradcheck, gradgradcheck};
    use crate::ops::testing::uniform;

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
