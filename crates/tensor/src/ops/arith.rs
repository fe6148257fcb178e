//! Elementwise arithmetic with numpy broadcasting: a + b, a − b, a·b, a / b, −a, and the
//! scalar forms a + c, c·a.
//!
//! Backward (∂ summed back over broadcast axes with `sum_to`):
//! d(a+b) = (g, g); d(a−b) = (g, −g); d(a·b) = (g·b, g·a); d(a/b) = (g/b, −g·a/b²).

use ndarray::{ArrayD, IxDyn, Zip};

use super::broadcast_shape;
use crate::simd_math;
use crate::tensor::Data;
use crate::{Float, Result, Tensor};

/// Applies `f` elementwise to `a` and `b` broadcast together.
///
/// Fast paths (plain loops over contiguous memory, which the compiler vectorizes) cover the
/// cases a transformer hits: equal shapes, a row vector broadcast over leading axes (biases, LN
/// gains), and a column broadcast over the last axis (LN statistics). Everything else goes
/// through ndarray's general broadcasting `Zip`.
pub(crate) fn zip_broadcast<T: Float>(
    op: &'static str,
    a: &Data<T>,
    b: &Data<T>,
    f: impl Fn(T, T) -> T + Copy + Send + Sync,
) -> Result<ArrayD<T>> {
    let shape = broadcast_shape(op, a.shape(), b.shape())?;
    if let Some(out) = contiguous_fast_path(&shape, a, b, f)
        .or_else(|| contiguous_fast_path(&shape, b, a, |y, x| f(x, y)))
    {
        return Ok(out);
    }
    let dim = IxDyn(&shape);
    let (av, bv) = (a.broadcast(dim.clone()).expect("checked"), b.broadcast(dim).expect("checked"));
    Ok(Zip::from(&av).and(&bv).map_collect(|&x, &y| f(x, y)))
}

/// `f(a, b)` without `Zip` when `a` is standard-layout with the output's shape and `b` is
/// standard-layout and equal, a trailing block of `a` (a row broadcast), or `a`'s shape with
/// trailing ones (a column broadcast). `None` when no fast path applies.
fn contiguous_fast_path<T: Float>(
    shape: &[usize],
    a: &Data<T>,
    b: &Data<T>,
    f: impl Fn(T, T) -> T + Copy + Send + Sync,
) -> Option<ArrayD<T>> {
    if a.shape() != shape {
        return None;
    }
    let (xs, ys) = (a.as_slice()?, b.as_slice()?);
    let out: Vec<T> = if xs.len() == ys.len() {
        simd_math::zip_slices(xs, ys, f)
    } else if ys.is_empty() || xs.is_empty() {
        return None;
    } else {
        // strip b's leading ones; what remains is aligned with a's trailing axes
        let bs = b.shape();
        let bs = &bs[bs.iter().position(|&s| s != 1).unwrap_or(bs.len())..];
        let tail = &shape[shape.len() - bs.len()..];
        if bs == tail {
            // row broadcast: b repeats every ys.len() elements
            simd_math::row_broadcast(xs, ys, f)
        } else {
            // column broadcast: b = a's shape with its last k axes set to 1
            let lead = bs.iter().rposition(|&s| s != 1).map_or(0, |i| i + 1);
            let offset = shape.len() - bs.len();
            let same_lead =
                bs[..lead] == shape[offset..offset + lead] && bs[lead..].iter().all(|&s| s == 1);
            if !same_lead || xs.len() % ys.len() != 0 {
                return None;
            }
            if shape[..offset].iter().product::<usize>() != 1 {
                return None;
            }
            simd_math::column_broadcast(xs, ys, f)
        }
    };
    Some(ArrayD::from_shape_vec(IxDyn(shape), out).expect("length matches the shape"))
}

impl<T: Float> Tensor<T> {
    /// a + b (broadcasting).
    pub fn add(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        let out = zip_broadcast("add", &self.data(), &other.data(), |x, y| x + y)?;
        let (sa, sb) = (self.shape(), other.shape());
        Ok(Tensor::from_op(out.into_shared(), "add", &[self, other], move |a| {
            Ok(vec![
                a.needs[0].then(|| a.grad.sum_to(&sa)).transpose()?,
                a.needs[1].then(|| a.grad.sum_to(&sb)).transpose()?,
            ])
        }))
    }

    /// a − b (broadcasting).
    pub fn sub(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        let out = zip_broadcast("sub", &self.data(), &other.data(), |x, y| x - y)?;
        let (sa, sb) = (self.shape(), other.shape());
        Ok(Tensor::from_op(out.into_shared(), "sub", &[self, other], move |a| {
            Ok(vec![
                a.needs[0].then(|| a.grad.sum_to(&sa)).transpose()?,
                a.needs[1].then(|| a.grad.neg().sum_to(&sb)).transpose()?,
            ])
        }))
    }

    /// a · b elementwise (broadcasting).
    pub fn mul(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        let out = zip_broadcast("mul", &self.data(), &other.data(), |x, y| x * y)?;
        Ok(Tensor::from_op(out.into_shared(), "mul", &[self, other], |a| {
            let [x, y] = [&a.inputs[0], &a.inputs[1]];
            Ok(vec![
                a.needs[0].then(|| a.grad.mul(y)?.sum_to(&x.shape())).transpose()?,
                a.needs[1].then(|| a.grad.mul(x)?.sum_to(&y.shape())).transpose()?,
            ])
        }))
    }

    /// a / b elementwise (broadcasting).
    pub fn div(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        let out = zip_broadcast("div", &self.data(), &other.data(), |x, y| x / y)?;
        Ok(Tensor::from_op(out.into_shared(), "div", &[self, other], |a| {
            let [x, y] = [&a.inputs[0], &a.inputs[1]];
            Ok(vec![
                a.needs[0].then(|| a.grad.div(y)?.sum_to(&x.shape())).transpose()?,
                // −g·a/b² = −g·out/b
                a.needs[1]
                    .then(|| a.grad.mul(a.output)?.div(y)?.neg().sum_to(&y.shape()))
                    .transpose()?,
            ])
        }))
    }

    /// −a.
    pub fn neg(&self) -> Tensor<T> {
        let out = simd_math::map(self.data().view(), |x: T| -x);
        Tensor::from_op(out.into_shared(), "neg", &[self], |a| Ok(vec![Some(a.grad.neg())]))
    }

    /// a + c for a scalar c.
    pub fn add_scalar(&self, c: f64) -> Tensor<T> {
        let c = T::cast(c);
        let out = simd_math::map(self.data().view(), move |x: T| x + c);
        Tensor::from_op(out.into_shared(), "add_scalar", &[self], |a| {
            Ok(vec![Some(a.grad.clone())])
        })
    }

    /// c · a for a scalar c.
    pub fn mul_scalar(&self, c: f64) -> Tensor<T> {
        let cf = T::cast(c);
        let out = simd_math::map(self.data().view(), move |x: T| x * cf);
        Tensor::from_op(out.into_shared(), "mul_scalar", &[self], move |a| {
            Ok(vec![Some(a.grad.mul_scalar(c))])
        })
    }

    /// Σ a·b over all elements, for tensors of the same shape.
    pub fn dot(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        if self.shape() != other.shape() {
            return Err(crate::TensorError::ShapeMismatch {
                op: "dot",
                lhs: self.shape(),
                rhs: other.shape(),
            });
        }
        Ok(self.mul(other)?.sum_all())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::check::{gradcheck, gradgradcheck};
    use crate::ops::testing::{broadcastable_pair, uniform};
    use crate::{Tensor, TensorError};

    #[test]
    fn shape_mismatch_names_the_op_and_both_shapes() {
        let a = Tensor::<f32>::zeros(&[2, 3]);
        let b = Tensor::<f32>::zeros(&[4, 5]);
        let err = a.add(&b).unwrap_err();
        assert_eq!(err, TensorError::ShapeMismatch { op: "add", lhs: vec![2, 3], rhs: vec![4, 5] });
        assert_eq!(err.to_string(), "add: shapes [2, 3] and [4, 5] are incompatible");
    }

    #[test]
    fn scalars_broadcast_against_anything() {
        let a = Tensor::<f64>::from_vec(vec![1.0, 2.0], &[2, 1]).unwrap();
        let s = Tensor::scalar(10.0);
        assert_eq!(a.mul(&s).unwrap().to_vec(), vec![10.0, 20.0]);
        assert_eq!(a.add_scalar(1.0).mul_scalar(2.0).to_vec(), vec![4.0, 6.0]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn broadcasting_matches_numpy_elementwise((sa, sb) in broadcastable_pair(), seed: u64) {
            let (a, b) = (uniform(&sa, -1.0, 1.0, seed), uniform(&sb, -1.0, 1.0, seed ^ 7));
            let out = a.add(&b).unwrap();
            let shape = out.shape();
            let (ad, bd, od) = (a.data(), b.data(), out.data());
            // numpy: out[i] = a[i mod a.shape] + b[i mod b.shape], aligned at the last axis.
            for (idx, &v) in od.indexed_iter() {
                let pick = |s: &[usize]| -> Vec<usize> {
                    let off = shape.len() - s.len();
                    s.iter().enumerate().map(|(k, &n)| if n == 1 { 0 } else { idx[k + off] }).collect()
                };
                let expected = ad[ndarray::IxDyn(&pick(&sa))] + bd[ndarray::IxDyn(&pick(&sb))];
                prop_assert_eq!(v, expected);
            }
        }

        #[test]
        fn binary_ops_pass_gradcheck_and_gradgradcheck((sa, sb) in broadcastable_pair(), seed: u64) {
            let a = uniform(&sa, -1.0, 1.0, seed);
            let b = uniform(&sb, 0.5, 1.5, seed ^ 3); // away from 0 for div
            let ins = [a, b];
            gradcheck(|t| t[0].add(&t[1]), &ins).unwrap();
            gradcheck(|t| t[0].sub(&t[1]), &ins).unwrap();
            gradcheck(|t| t[0].mul(&t[1]), &ins).unwrap();
            gradcheck(|t| t[0].div(&t[1]), &ins).unwrap();
            gradcheck(|t| Ok::<_, crate::TensorError>(t[0].neg().add_scalar(2.0).mul_scalar(-3.0)), &ins[..1]).unwrap();
            gradgradcheck(|t| t[0].mul(&t[1]), &ins).unwrap();
            gradgradcheck(|t| t[0].div(&t[1]), &ins).unwrap();
            gradgradcheck(|t| t[0].sub(&t[1])?.mul(&t[0]), &ins).unwrap();
        }
    }
}
