//! Choosing between tensors elementwise: `where_cond` (cond ? a : b) and `masked_fill`.
//!
//! Used for −∞ attention masks: the fill is written directly, never as a product with 0, so
//! 0·∞ never makes a NaN. Backward: the gradient goes to the side that was chosen.

use ndarray::{ArrayD, IxDyn, Zip};

use super::broadcast_shape;
use crate::{Float, Result, Tensor, TensorError};

impl<T: Float> Tensor<T> {
    /// Elementwise `cond ? a : b`, all three broadcast together.
    pub fn where_cond(cond: &ArrayD<bool>, a: &Tensor<T>, b: &Tensor<T>) -> Result<Tensor<T>> {
        let (ad, bd) = (a.data(), b.data());
        let ab = broadcast_shape("where", ad.shape(), bd.shape())?;
        let shape = broadcast_shape("where", cond.shape(), &ab).map_err(|_| {
            TensorError::ShapeMismatch { op: "where", lhs: cond.shape().to_vec(), rhs: ab.clone() }
        })?;
        let dim = IxDyn(&shape);
        let c = cond.broadcast(dim.clone()).expect("checked");
        let out = Zip::from(&c)
            .and(&ad.broadcast(dim.clone()).expect("checked"))
            .and(&bd.broadcast(dim).expect("checked"))
            .map_collect(|&c, &x, &y| if c { x } else { y });
        let chosen = c.mapv(|c| if c { T::one() } else { T::zero() }).into_shared();
        Ok(Tensor::from_op(out.into_shared(), "where", &[a, b], move |args| {
            let take_a = Tensor::constant(chosen.clone());
            let take_b = take_a.neg().add_scalar(1.0);
            let [x, y] = [&args.inputs[0], &args.inputs[1]];
            Ok(vec![
                args.needs[0].then(|| args.grad.mul(&take_a)?.sum_to(&x.shape())).transpose()?,
                args.needs[1].then(|| args.grad.mul(&take_b)?.sum_to(&y.shape())).transpose()?,
            ])
        }))
    }

    /// self with `value` wherever `mask` (broadcast to self's shape) is true; −∞ for attention
    /// masks.
    pub fn masked_fill(&self, mask: &ArrayD<bool>, value: f64) -> Result<Tensor<T>> {
        let shape = self.shape();
        if broadcast_shape("masked_fill", mask.shape(), &shape).ok().as_deref() != Some(&shape[..])
        {
            return Err(TensorError::ShapeMismatch {
                op: "masked_fill",
                lhs: shape,
                rhs: mask.shape().to_vec(),
            });
        }
        Tensor::where_cond(mask, &Tensor::scalar(T::cast(value)), self)
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{ArrayD, IxDyn};
    use proptest::prelude::*;

    use crate::Tensor;
    use crate::check::{gradcheck, gradgradcheck};
    use crate::ops::testing::{broadcastable_pair, uniform};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn where_passes_gradcheck_and_gradgradcheck((sa, sb) in broadcastable_pair(), bits in prop::collection::vec(any::<bool>(), 64), seed: u64) {
            let shape = crate::ops::broadcast_shape("t", &sa, &sb).unwrap();
            let mut k = 0;
            let cond = ArrayD::from_shape_fn(IxDyn(&shape), |_| { k += 1; bits[k % 64] });
            let (a, b) = (uniform(&sa, -1.0, 1.0, seed), uniform(&sb, -1.0, 1.0, seed ^ 1));
            gradcheck(|t| Tensor::where_cond(&cond, &t[0], &t[1]), &[a.clone(), b.clone()]).unwrap();
            gradgradcheck(|t| Ok::<_, crate::TensorError>(Tensor::where_cond(&cond, &t[0], &t[1])?.powf(2.0)), &[a, b]).unwrap();
        }
    }

    #[test]
    fn masked_fill_with_minus_infinity_gives_zero_attention_and_finite_gradients() {
        let x = Tensor::<f64>::param_from_vec(vec![0.1, 0.2, 0.3, 0.4], &[2, 2]).unwrap();
        let causal = ArrayD::from_shape_fn(IxDyn(&[2, 2]), |p| p[1] > p[0]);
        let p = x.masked_fill(&causal, f64::NEG_INFINITY).unwrap().softmax(-1).unwrap();
        assert_eq!(p.to_vec()[1], 0.0);
        p.mul(&Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]).unwrap())
            .unwrap()
            .sum_all()
            .backward()
            .unwrap();
        let g = x.grad().unwrap().to_vec();
        assert!(g.iter().all(|v| v.is_finite()));
        assert_eq!(g[1], 0.0);
    }

    #[test]
    fn a_mask_that_does_not_fit_is_an_error() {
        let x = Tensor::<f32>::zeros(&[2, 3]);
        assert!(x.masked_fill(&ArrayD::from_elem(IxDyn(&[3, 3]), true), 0.0).is_err());
        assert!(x.masked_fill(&ArrayD::from_elem(IxDyn(&[2, 3, 1]), true), 0.0).is_err());
        assert!(x.masked_fill(&ArrayD::from_elem(IxDyn(&[3]), true), 0.0).is_ok());
    }
}
