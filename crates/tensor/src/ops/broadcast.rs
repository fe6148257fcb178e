//! Broadcasting (numpy's rules) and its adjoint, summing a gradient back to an input's shape.
//!
//! Two shapes broadcast when, aligned at their last axes, each pair of sides is equal or one of
//! them is 1; missing leading axes count as 1. `broadcast_to` copies a tensor out to a larger
//! shape; `sum_to` sums over the broadcast axes. Each is the other's backward.

use ndarray::{ArrayD, Axis, CowArray, IxDyn};

use crate::{Float, Result, Tensor, TensorError};

/// The shape two shapes broadcast to under numpy's rules, or a `ShapeMismatch` naming `op`.
pub fn broadcast_shape(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n { a[i + a.len() - n] } else { 1 };
        let db = if i + b.len() >= n { b[i + b.len() - n] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(TensorError::ShapeMismatch { op, lhs: a.to_vec(), rhs: b.to_vec() }),
        };
    }
    Ok(out)
}

impl<T: Float> Tensor<T> {
    /// Copies the tensor out to `shape` (numpy broadcasting). Backward: [`Tensor::sum_to`].
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor<T>> {
        let data = self.data();
        if data.shape() == shape {
            return Ok(self.clone());
        }
        let target = broadcast_shape("broadcast_to", data.shape(), shape)?;
        if target != shape {
            return Err(TensorError::ShapeMismatch {
                op: "broadcast_to",
                lhs: data.shape().to_vec(),
                rhs: shape.to_vec(),
            });
        }
        let view = data.broadcast(IxDyn(shape)).expect("checked");
        let out = ArrayD::from_shape_vec(IxDyn(shape), super::layout::row_major_copy(view))
            .expect("the target shape");
        let in_shape = data.shape().to_vec();
        Ok(Tensor::from_op(out.into_shared(), "broadcast_to", &[self], move |a| {
            Ok(vec![Some(a.grad.sum_to(&in_shape)?)])
        }))
    }

    /// Sums over the axes along which `shape` was broadcast to this tensor's shape, giving a
    /// tensor of `shape`. Backward: [`Tensor::broadcast_to`].
    pub fn sum_to(&self, shape: &[usize]) -> Result<Tensor<T>> {
        let data = self.data();
        if data.shape() == shape {
            return Ok(self.clone());
        }
        let from = data.shape().to_vec();
        if broadcast_shape("sum_to", shape, &from)? != from {
            return Err(TensorError::ShapeMismatch {
                op: "sum_to",
                lhs: from,
                rhs: shape.to_vec(),
            });
        }
        let lead = from.len() - shape.len();
        // the first reduction reads the input in place (no copy of it)
        let mut out = CowArray::from(data.view());
        if lead > 0 {
            out = match super::reduce::sum_leading_axes(&data.view(), lead) {
                Some(summed) => summed.into(),
                None => {
                    for _ in 0..lead {
                        out = out.sum_axis(Axis(0)).into();
                    }
                    out
                }
            };
        }
        for (ax, &s) in shape.iter().enumerate() {
            if s == 1 && out.shape()[ax] != 1 {
                out = out.sum_axis(Axis(ax)).insert_axis(Axis(ax)).into();
            }
        }
        Ok(Tensor::from_op(out.into_owned().into_shared(), "sum_to", &[self], move |a| {
            Ok(vec![Some(a.grad.broadcast_to(&from)?)])
        }))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::check::{gradcheck, gradgradcheck};
    use crate::ops::testing::{broadcastable_pair, uniform};

    #[test]
    fn broadcast_shape_follows_numpy() {
        assert_eq!(broadcast_shape("t", &[3, 1, 5], &[4, 1]).unwrap(), vec![3, 4, 5]);
        assert_eq!(broadcast_shape("t", &[], &[2, 3]).unwrap(), vec![2, 3]);
        assert!(broadcast_shape("t", &[3, 2], &[3]).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn broadcast_to_and_sum_to_are_adjoint_and_differentiable((small, big) in broadcastable_pair(), seed: u64) {
            let target = broadcast_shape("t", &small, &big).unwrap();
            let x = uniform(&small, -1.0, 1.0, seed);
            gradcheck(|t| t[0].broadcast_to(&target), &[x.clone()]).unwrap();
            gradgradcheck(|t| Ok::<_, crate::TensorError>(t[0].broadcast_to(&target)?.powf(2.0)), &[x.clone()]).unwrap();
            let y = uniform(&target, -1.0, 1.0, seed ^ 1);
            gradcheck(|t| t[0].sum_to(&small), &[y]).unwrap();
        }

        #[test]
        fn broadcast_to_an_incompatible_shape_is_an_error(a in crate::ops::testing::shape(3, 4), b in crate::ops::testing::shape(3, 4)) {
            let x = Tensor::<f64>::zeros(&a);
            match broadcast_shape("t", &a, &b) {
                Ok(s) if s == b => prop_assert!(x.broadcast_to(&b).is_ok()),
                _ => prop_assert!(x.broadcast_to(&b).is_err()),
            }
        }
    }
}
