//! softmax(x)ᵢ = e^(xᵢ − m) / Σⱼ e^(xⱼ − m) and log_softmax(x)ᵢ = xᵢ − m − ln Σⱼ e^(xⱼ − m),
//! along one axis, with m = maxⱼ xⱼ subtracted first so that no exponential overflows
//! (logits of 10⁴ stay finite). −∞ entries (masked positions) get probability 0.
//!
//! Backward: softmax: dx = y ⊙ (g − Σ g⊙y); log_softmax: dx = g − e^y ⊙ Σ g. Both are written
//! with the output y, so they differentiate again.

use ndarray::{ArrayD, Axis, Zip};

use super::normalize_axis;
use crate::tensor::Data;
use crate::{Float, Result, Tensor};

/// The row maxima along `ax`, kept as a size-1 axis.
fn row_max<T: Float>(x: &Data<T>, ax: usize) -> ArrayD<T> {
    x.fold_axis(Axis(ax), T::neg_infinity(), |&m, &v| if v > m || v.is_nan() { v } else { m })
        .insert_axis(Axis(ax))
}

impl<T: Float> Tensor<T> {
    /// Softmax along `axis`.
    pub fn softmax(&self, axis: isize) -> Result<Tensor<T>> {
        let x = self.data();
        let ax = normalize_axis("softmax", axis, x.ndim())?;
        let m = row_max(&x, ax);
        let mut e = x.to_owned();
        Zip::from(&mut e).and_broadcast(&m).for_each(|v, &m| *v = (*v - m).exp());
        let s = e.sum_axis(Axis(ax)).insert_axis(Axis(ax));
        e /= &s;
        Ok(Tensor::from_op(e.into_shared(), "softmax", &[self], move |a| {
            let y = a.output;
            let inner = a.grad.mul(y)?.sum_axis(ax as isize, true)?;
            Ok(vec![Some(y.mul(&a.grad.sub(&inner)?)?)])
        }))
    }

    /// log(softmax) along `axis`, computed directly (log-sum-exp) rather than as log of a
    /// softmax, so very negative log-probabilities do not round to −∞.
    pub fn log_softmax(&self, axis: isize) -> Result<Tensor<T>> {
        let x = self.data();
        let ax = normalize_axis("log_softmax", axis, x.ndim())?;
        let m = row_max(&x, ax);
        let mut shifted = x.to_owned();
        Zip::from(&mut shifted).and_broadcast(&m).for_each(|v, &m| *v -= m);
        let lse = shifted.mapv(T::exp).sum_axis(Axis(ax)).mapv(T::ln).insert_axis(Axis(ax));
        shifted -= &lse;
        Ok(Tensor::from_op(shifted.into_shared(), "log_softmax", &[self], move |a| {
            let total = a.grad.sum_axis(ax as isize, true)?;
            Ok(vec![Some(a.grad.sub(&a.output.exp().mul(&total)?)?)])
        }))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::Tensor;
    use crate::check::{gradcheck, gradgradcheck};
    use crate::ops::testing::{shape, uniform};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn softmax_passes_gradcheck_and_gradgradcheck(s in shape(3, 5), seed: u64) {
            let x = uniform(&s, -2.0, 2.0, seed);
            gradcheck(|t| t[0].softmax(-1), &[x.clone()]).unwrap();
            gradcheck(|t| t[0].log_softmax(0), &[x.clone()]).unwrap();
            gradgradcheck(|t| t[0].softmax(-1), &[x.clone()]).unwrap();
            gradgradcheck(|t| t[0].log_softmax(-1), &[x]).unwrap();
        }

        #[test]
        fn softmax_rows_sum_to_one_and_ignore_a_shift(s in shape(3, 6), shift in -50.0f64..50.0, seed: u64) {
            let x = uniform(&s, -5.0, 5.0, seed);
            let y = x.softmax(-1).unwrap();
            for row in y.sum_axis(-1, false).unwrap().to_vec() {
                prop_assert!((row - 1.0).abs() < 1e-12);
            }
            let shifted = x.add_scalar(shift).softmax(-1).unwrap();
            for (a, b) in y.to_vec().iter().zip(shifted.to_vec()) {
                prop_assert!((a - b).abs() < 1e-12);
            }
            let logs = x.log_softmax(-1).unwrap().to_vec();
            for (l, p) in logs.iter().zip(y.to_vec()) {
                prop_assert!((l.exp() - p).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn huge_logits_stay_finite() {
        let x = Tensor::<f32>::from_vec(vec![1e4, -1e4, 0.0, 1e4], &[2, 2]).unwrap();
        assert!(x.softmax(-1).unwrap().to_vec().iter().all(|v| v.is_finite()));
        let ls = x.log_softmax(-1).unwrap().to_vec();
        assert!(ls.iter().all(|v| v.is_finite()));
        assert_eq!(ls[0], 0.0);
        assert_eq!(ls[1], -2e4);
    }
}
