//! Reductions over axes: sum, mean, max and variance, with or without keeping the reduced axes
//! (as size 1). Axes may be negative (−1 is the last).
//!
//! Backward: sum → g broadcast back over the reduced axes; mean → the same divided by the count;
//! max → g shared equally by the elements equal to the maximum (PyTorch's `amax` rule);
//! var is composed of mean, sub and mul, so its derivatives of every order follow.

use ndarray::{ArrayD, Axis};

use super::normalize_axes;
use crate::{Float, Result, Tensor, TensorError};

/// Σ over the leading `lead` axes of a standard-layout array, as one pass over its rows (the
/// gradient of a bias, of a broadcast LN gain): the rows are added in order (for one leading
/// axis the bits equal ndarray's `sum_axis(Axis(0))`). `None` when the layout is not standard or
/// an axis is empty.
pub(crate) fn sum_leading_axes<T: Float>(
    data: &ndarray::ArrayViewD<'_, T>,
    lead: usize,
) -> Option<ArrayD<T>> {
    let xs = data.as_slice()?;
    let tail = &data.shape()[lead..];
    let cols: usize = tail.iter().product();
    if xs.is_empty() || cols == 0 {
        return None;
    }
    let rows = xs.len() / cols;
    let mut acc = xs[..cols].to_vec();
    // columns in parallel parts: each column is still summed over the rows in order
    crate::parallel::for_each_wide_part(
        &mut acc,
        1,
        rows,
        #[inline(always)]
        |first, part| {
            let width = part.len();
            for row in xs.chunks_exact(cols).skip(1) {
                part.iter_mut().zip(&row[first..first + width]).for_each(|(a, &x)| *a += x);
            }
        },
    );
    Some(ArrayD::from_shape_vec(ndarray::IxDyn(tail), acc).expect("the trailing shape"))
}

/// The shape with the reduced `axes` (sorted, in range) set to 1.
fn kept_shape(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    shape.iter().enumerate().map(|(i, &s)| if axes.contains(&i) { 1 } else { s }).collect()
}

/// The shape with the reduced `axes` removed.
fn dropped_shape(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    shape.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &s)| s).collect()
}

impl<T: Float> Tensor<T> {
    /// Σ over `axes`; with `keepdim` the reduced axes stay as size 1.
    pub fn sum_axes(&self, axes: &[isize], keepdim: bool) -> Result<Tensor<T>> {
        let data = self.data();
        let in_shape = data.shape().to_vec();
        let axes = normalize_axes("sum", axes, in_shape.len())?;
        // the first reduction reads the input in place (no copy of it)
        let mut reduced: Option<ArrayD<T>> = None;
        for &ax in axes.iter().rev() {
            reduced = Some(match reduced {
                None if ax == 0 => {
                    sum_leading_axes(&data.view(), 1).unwrap_or_else(|| data.sum_axis(Axis(0)))
                }
                None => data.sum_axis(Axis(ax)),
                Some(r) => r.sum_axis(Axis(ax)),
            });
        }
        let out = reduced.unwrap_or_else(|| data.to_owned());
        let kept = kept_shape(&in_shape, &axes);
        let out_shape = if keepdim { kept.clone() } else { dropped_shape(&in_shape, &axes) };
        let out = out.into_shape_with_order(out_shape).expect("same element count");
        Ok(Tensor::from_op(out.into_shared(), "sum", &[self], move |a| {
            Ok(vec![Some(a.grad.reshape(&kept)?.broadcast_to(&in_shape)?)])
        }))
    }

    /// Σ over one axis.
    pub fn sum_axis(&self, axis: isize, keepdim: bool) -> Result<Tensor<T>> {
        self.sum_axes(&[axis], keepdim)
    }

    /// Σ over all elements, as a 0-dimensional tensor.
    pub fn sum_all(&self) -> Tensor<T> {
        let in_shape = self.shape();
        let total = self.data().sum();
        let out = ArrayD::from_elem(ndarray::IxDyn(&[]), total);
        Tensor::from_op(out.into_shared(), "sum_all", &[self], move |a| {
            Ok(vec![Some(a.grad.broadcast_to(&in_shape)?)])
        })
    }

    /// The mean over `axes`.
    pub fn mean_axes(&self, axes: &[isize], keepdim: bool) -> Result<Tensor<T>> {
        let shape = self.shape();
        let count: usize =
            normalize_axes("mean", axes, shape.len())?.iter().map(|&a| shape[a]).product();
        if count == 0 {
            return Err(TensorError::invalid("mean", "mean over an empty axis"));
        }
        Ok(self.sum_axes(axes, keepdim)?.mul_scalar(1.0 / count as f64))
    }

    /// The mean over one axis.
    pub fn mean_axis(&self, axis: isize, keepdim: bool) -> Result<Tensor<T>> {
        self.mean_axes(&[axis], keepdim)
    }

    /// The mean of all elements, as a 0-dimensional tensor.
    pub fn mean_all(&self) -> Result<Tensor<T>> {
        match self.len() {
            0 => Err(TensorError::invalid("mean_all", "mean of an empty tensor")),
            n => Ok(self.sum_all().mul_scalar(1.0 / n as f64)),
        }
    }

    /// The maximum over `axes` (NaN propagates).
    pub fn max_axes(&self, axes: &[isize], keepdim: bool) -> Result<Tensor<T>> {
        let data = self.data();
        let in_shape = data.shape().to_vec();
        let axes = normalize_axes("max", axes, in_shape.len())?;
        if axes.iter().any(|&a| in_shape[a] == 0) {
            return Err(TensorError::invalid("max", "maximum over an empty axis"));
        }
        let mut out: ArrayD<T> = data.to_owned();
        for &ax in axes.iter().rev() {
            out =
                out.fold_axis(
                    Axis(ax),
                    T::neg_infinity(),
                    |&m, &x| if x > m || x.is_nan() { x } else { m },
                );
        }
        let kept = kept_shape(&in_shape, &axes);
        let out_kept = out.into_shape_with_order(kept.clone()).expect("same element count");
        let out_shape = if keepdim { kept.clone() } else { dropped_shape(&in_shape, &axes) };
        let out = out_kept.into_shape_with_order(out_shape).expect("same element count");
        let axes_i: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
        Ok(Tensor::from_op(out.into_shared(), "max", &[self], move |a| {
            let x = a.inputs[0].data();
            let m =
                a.output.data().into_shape_with_order(kept.clone()).expect("same element count");
            let is_max = ndarray::Zip::from(&x)
                .and(&m.broadcast(x.raw_dim()).expect("kept shape broadcasts"))
                .map_collect(|&v, &mx| if v == mx { T::one() } else { T::zero() });
            let mask = Tensor::constant(is_max.into_shared());
            let count = mask.sum_axes(&axes_i, true)?;
            Ok(vec![Some(a.grad.reshape(&kept)?.broadcast_to(&in_shape)?.mul(&mask.div(&count)?)?)])
        }))
    }

    /// The maximum over one axis.
    pub fn max_axis(&self, axis: isize, keepdim: bool) -> Result<Tensor<T>> {
        self.max_axes(&[axis], keepdim)
    }

    /// The variance over `axes`: Σ(x − μ)² / (n − 1) if `unbiased`, else / n.
    pub fn var_axes(&self, axes: &[isize], unbiased: bool, keepdim: bool) -> Result<Tensor<T>> {
        let shape = self.shape();
        let n: usize =
            normalize_axes("var", axes, shape.len())?.iter().map(|&a| shape[a]).product();
        let dof = if unbiased { n.saturating_sub(1) } else { n };
        if dof == 0 {
            return Err(TensorError::invalid(
                "var",
                format!("variance of {n} element(s) with unbiased = {unbiased}"),
            ));
        }
        let centered = self.sub(&self.mean_axes(axes, true)?)?;
        Ok(centered.mul(&centered)?.sum_axes(axes, keepdim)?.mul_scalar(1.0 / dof as f64))
    }

    /// The variance over one axis.
    pub fn var_axis(&self, axis: isize, unbiased: bool, keepdim: bool) -> Result<Tensor<T>> {
        self.var_axes(&[axis], unbiased, keepdim)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::Tensor;
    use crate::check::{gradcheck, gradgradcheck};
    use crate::ops::testing::{shape, uniform};

    fn axes_of(s: &[usize], pick: &[bool]) -> Vec<isize> {
        let mut axes: Vec<isize> = (0..s.len()).filter(|&i| pick[i]).map(|i| i as isize).collect();
        if axes.is_empty() {
            axes.push(-1);
        }
        axes
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn reductions_pass_gradcheck_and_gradgradcheck(s in shape(3, 4), pick in prop::collection::vec(any::<bool>(), 3), keep: bool, seed: u64) {
            let axes = axes_of(&s, &pick);
            let x = uniform(&s, -1.0, 1.0, seed);
            gradcheck(|t| t[0].sum_axes(&axes, keep), &[x.clone()]).unwrap();
            gradcheck(|t| t[0].mean_axes(&axes, keep), &[x.clone()]).unwrap();
            gradcheck(|t| t[0].max_axes(&axes, keep), &[x.clone()]).unwrap();
            gradgradcheck(|t| Ok::<_, crate::TensorError>(t[0].max_axes(&axes, keep)?.powf(2.0)), &[x.clone()]).unwrap();
            gradgradcheck(|t| Ok::<_, crate::TensorError>(t[0].sum_axes(&axes, keep)?.powf(2.0)), &[x.clone()]).unwrap();
            let n: usize = axes.iter().map(|&a| s[a.rem_euclid(s.len() as isize) as usize]).product();
            if n > 1 {
                gradcheck(|t| t[0].var_axes(&axes, true, keep), &[x.clone()]).unwrap();
                gradgradcheck(|t| t[0].var_axes(&axes, false, keep), &[x.clone()]).unwrap();
            }
        }

        #[test]
        fn sums_and_means_agree_with_a_plain_loop(s in shape(3, 4), seed: u64) {
            let x = uniform(&s, -1.0, 1.0, seed);
            let total: f64 = x.to_vec().iter().sum();
            prop_assert!((x.sum_all().item().unwrap() - total).abs() < 1e-12);
            prop_assert!((x.mean_all().unwrap().item().unwrap() - total / x.len() as f64).abs() < 1e-12);
            let all: Vec<isize> = (0..s.len() as isize).collect();
            prop_assert!((x.sum_axes(&all, false).unwrap().item().unwrap() - total).abs() < 1e-12);
        }
    }

    #[test]
    fn keepdim_keeps_reduced_axes_as_ones() {
        let x = Tensor::<f64>::zeros(&[2, 3, 4]);
        assert_eq!(x.sum_axes(&[0, 2], true).unwrap().shape(), vec![1, 3, 1]);
        assert_eq!(x.sum_axes(&[-1], false).unwrap().shape(), vec![2, 3]);
        assert_eq!(x.max_axis(1, false).unwrap().shape(), vec![2, 4]);
        assert!(x.sum_axes(&[3], false).is_err());
        assert!(x.sum_axes(&[1, -2], false).is_err());
    }

    #[test]
    fn max_shares_the_gradient_among_ties() {
        let x = Tensor::<f64>::param_from_vec(vec![1.0, 3.0, 3.0, 0.0], &[4]).unwrap();
        x.max_axis(0, false).unwrap().backward().unwrap();
        assert_eq!(x.grad().unwrap().to_vec(), vec![0.0, 0.5, 0.5, 0.0]);
    }

    /// The bias-gradient sum over rows gives ndarray's `sum_axis` bits on 1, 2 and 3 threads
    /// (columns are split among threads; each column is still summed in row order).
    #[test]
    fn sum_over_rows_is_bitwise_the_same_on_any_thread_count() {
        let (rows, cols) = (700, 385);
        let x = ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&[rows, cols]), |p| {
            ((p[0] * 7919 + p[1] * 104_729) % 1000) as f32 * 0.0137 - 6.5
        });
        let expected = x.sum_axis(ndarray::Axis(0));
        for threads in [1, 2, 3] {
            let got = crate::parallel::with_threads(threads, || {
                super::sum_leading_axes(&x.view(), 1).unwrap()
            });
            assert_eq!(got, expected, "{threads} threads");
        }
    }

    #[test]
    fn variance_matches_the_textbook_formula() {
        let x = Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[4]).unwrap();
        assert!((x.var_axis(0, false, false).unwrap().item().unwrap() - 1.25).abs() < 1e-15);
        assert!((x.var_axis(0, true, false).unwrap().item().unwrap() - 5.0 / 3.0).abs() < 1e-15);
    }
}
