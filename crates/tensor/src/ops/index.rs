//! Indexing: `index_select` (rows by id: the embedding lookup) and `gather` (one index per
//! position: picking target log-probabilities), with their adjoints `index_add` and
//! `scatter_add`, which add a source into a base at the indexed positions.
//!
//! index_select ↔ index_add and gather ↔ scatter_add are each other's backward (for the
//! source); the base of an add passes its gradient through unchanged.

use ndarray::{ArrayD, Axis, IxDyn};

use super::normalize_axis;
use crate::{Float, Result, Tensor, TensorError};

fn check_indices(
    op: &'static str,
    indices: impl IntoIterator<Item = usize>,
    size: usize,
) -> Result<()> {
    for index in indices {
        if index >= size {
            return Err(TensorError::IndexOutOfBounds { op, index, size });
        }
    }
    Ok(())
}

/// Checks that `index` fits a gather from / scatter into a tensor of `shape` along `ax`.
fn check_gather_index(
    op: &'static str,
    shape: &[usize],
    index: &ArrayD<usize>,
    ax: usize,
) -> Result<()> {
    if index.ndim() != shape.len()
        || index.shape().iter().zip(shape).enumerate().any(|(d, (i, s))| d != ax && i > s)
    {
        return Err(TensorError::ShapeMismatch {
            op,
            lhs: shape.to_vec(),
            rhs: index.shape().to_vec(),
        });
    }
    check_indices(op, index.iter().copied(), shape[ax])
}

impl<T: Float> Tensor<T> {
    /// The slices at `indices` along `axis`, in that order (repeats allowed).
    /// `weight.index_select(0, ids)` is an embedding lookup.
    pub fn index_select(&self, axis: isize, indices: &[usize]) -> Result<Tensor<T>> {
        let data = self.data();
        let ax = normalize_axis("index_select", axis, data.ndim())?;
        check_indices("index_select", indices.iter().copied(), data.shape()[ax])?;
        let out = data.select(Axis(ax), indices);
        let (indices, size) = (indices.to_vec(), data.shape()[ax]);
        Ok(Tensor::from_op(out.into_shared(), "index_select", &[self], move |a| {
            let mut shape = a.grad.shape();
            shape[ax] = size;
            Ok(vec![Some(Tensor::zeros(&shape).index_add(ax as isize, &indices, a.grad)?)])
        }))
    }

    /// self with `source`'s slice k added at slice `indices[k]` along `axis` (repeated indices
    /// accumulate).
    pub fn index_add(
        &self,
        axis: isize,
        indices: &[usize],
        source: &Tensor<T>,
    ) -> Result<Tensor<T>> {
        let base = self.data();
        let src = source.data();
        let ax = normalize_axis("index_add", axis, base.ndim())?;
        let mut expected = base.shape().to_vec();
        expected[ax] = indices.len();
        if src.shape() != expected.as_slice() {
            return Err(TensorError::ShapeMismatch {
                op: "index_add",
                lhs: expected,
                rhs: src.shape().to_vec(),
            });
        }
        check_indices("index_add", indices.iter().copied(), base.shape()[ax])?;
        let mut out = base.to_owned();
        for (k, &i) in indices.iter().enumerate() {
            let mut dst = out.index_axis_mut(Axis(ax), i);
            dst += &src.index_axis(Axis(ax), k);
        }
        let indices = indices.to_vec();
        Ok(Tensor::from_op(out.into_shared(), "index_add", &[self, source], move |a| {
            Ok(vec![
                a.needs[0].then(|| a.grad.clone()),
                a.needs[1].then(|| a.grad.index_select(ax as isize, &indices)).transpose()?,
            ])
        }))
    }

    /// out[…, j, …] = self[…, index[…, j, …], …] along `axis` (torch.gather): `index` has the
    /// rank of self and is no larger along the other axes.
    pub fn gather(&self, axis: isize, index: &ArrayD<usize>) -> Result<Tensor<T>> {
        let data = self.data();
        let ax = normalize_axis("gather", axis, data.ndim())?;
        check_gather_index("gather", data.shape(), index, ax)?;
        let out = ArrayD::from_shape_fn(index.raw_dim(), |mut pos: IxDyn| {
            pos[ax] = index[&pos];
            data[&pos]
        });
        let (index, in_shape) = (index.clone(), data.shape().to_vec());
        Ok(Tensor::from_op(out.into_shared(), "gather", &[self], move |a| {
            Ok(vec![Some(Tensor::zeros(&in_shape).scatter_add(ax as isize, &index, a.grad)?)])
        }))
    }

    /// self with source[…, j, …] added at self[…, index[…, j, …], …] along `axis`
    /// (torch.scatter_add); `index` and `source` have one shape.
    pub fn scatter_add(
        &self,
        axis: isize,
        index: &ArrayD<usize>,
        source: &Tensor<T>,
    ) -> Result<Tensor<T>> {
        let base = self.data();
        let src = source.data();
        let ax = normalize_axis("scatter_add", axis, base.ndim())?;
        if src.shape() != index.shape() {
            return Err(TensorError::ShapeMismatch {
                op: "scatter_add",
                lhs: index.shape().to_vec(),
                rhs: src.shape().to_vec(),
            });
        }
        check_gather_index("scatter_add", base.shape(), index, ax)?;
        let mut out = base.to_owned();
        for (pos, &v) in src.indexed_iter() {
            let mut dst = pos.clone();
            dst[ax] = index[&pos];
            out[&dst] += v;
        }
        let index = index.clone();
        Ok(Tensor::from_op(out.into_shared(), "scatter_add", &[self, source], move |a| {
            Ok(vec![
                a.needs[0].then(|| a.grad.clone()),
                a.needs[1].then(|| a.grad.gather(ax as isize, &index)).transpose()?,
            ])
        }))
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{ArrayD, IxDyn};
    use proptest::prelude::*;

    use crate::check::{gradcheck, gradgradcheck};
    use crate::ops::testing::uniform;
    use crate::{Tensor, TensorError};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn indexing_passes_gradcheck_and_gradgradcheck(rows in 1usize..6, cols in 1usize..5, ids in prop::collection::vec(0usize..100, 1..8), seed: u64) {
            let ids: Vec<usize> = ids.iter().map(|i| i % rows).collect();
            let w = uniform(&[rows, cols], -1.0, 1.0, seed);
            gradcheck(|t| t[0].index_select(0, &ids), &[w.clone()]).unwrap();
            gradgradcheck(|t| Ok::<_, crate::TensorError>(t[0].index_select(0, &ids)?.powf(2.0)), &[w.clone()]).unwrap();
            let index = ArrayD::from_shape_fn(IxDyn(&[rows, ids.len().min(cols)]), |p| ids[p[1]] % cols);
            gradcheck(|t| t[0].gather(1, &index), &[w.clone()]).unwrap();
            gradgradcheck(|t| Ok::<_, crate::TensorError>(t[0].gather(1, &index)?.powf(2.0)), &[w.clone()]).unwrap();
            let src = uniform(&[rows, ids.len().min(cols)], -1.0, 1.0, seed ^ 3);
            gradcheck(|t| t[0].scatter_add(1, &index, &t[1]), &[w.clone(), src]).unwrap();
            let src = uniform(&[ids.len(), cols], -1.0, 1.0, seed ^ 5);
            gradcheck(|t| t[0].index_add(0, &ids, &t[1]), &[w, src]).unwrap();
        }
    }

    #[test]
    fn embedding_lookup_gradient_accumulates_repeated_ids() {
        let w = Tensor::<f64>::param_from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2]).unwrap();
        let e = w.index_select(0, &[2, 0, 2]).unwrap();
        assert_eq!(e.to_vec(), vec![5.0, 6.0, 1.0, 2.0, 5.0, 6.0]);
        e.sum_all().backward().unwrap();
        assert_eq!(w.grad().unwrap().to_vec(), vec![1.0, 1.0, 0.0, 0.0, 2.0, 2.0]);
    }

    #[test]
    fn out_of_range_indices_are_errors() {
        let w = Tensor::<f32>::zeros(&[3, 2]);
        assert_eq!(
            w.index_select(0, &[3]).unwrap_err(),
            TensorError::IndexOutOfBounds { op: "index_select", index: 3, size: 3 }
        );
        let bad = ArrayD::from_elem(IxDyn(&[3, 1]), 2usize);
        assert!(w.gather(1, &bad).is_err());
        assert!(w.gather(1, &ArrayD::from_elem(IxDyn(&[3]), 0usize)).is_err());
        assert!(w.index_add(0, &[0], &Tensor::zeros(&[2, 2])).is_err());
    }
}
