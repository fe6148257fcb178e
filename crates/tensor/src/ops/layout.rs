//! Operations that move elements without computing: reshape, permute / transpose, narrow (a
//! slice along one axis), zero padding, concatenation and stacking.
//!
//! Reshapes of contiguous tensors, permutations and slices share memory with their input (the
//! value is a copy-on-write `ArcArray`); a transposed matrix reaches GEMM as a transpose flag.
//! Each backward is the inverse movement: reshape back, the inverse permutation, pad ↔ narrow,
//! concat → narrow of each piece.

use std::mem::MaybeUninit;

use ndarray::{ArrayD, ArrayView2, ArrayViewD, Axis, Ix2, Ix3, IxDyn, Slice, s};

use super::normalize_axis;
use crate::parallel;
use crate::tensor::Data;
use crate::{Float, Result, Tensor, TensorError};

/// `data` reshaped to `shape`, without a copy when the layout allows it.
pub(crate) fn reshape_data<T: Float>(data: Data<T>, shape: &[usize]) -> Data<T> {
    if data.is_standard_layout() {
        data.into_shape_with_order(IxDyn(shape)).expect("element count checked")
    } else {
        ArrayD::from_shape_vec(IxDyn(shape), row_major_copy(data.view()))
            .expect("element count checked")
            .into_shared()
    }
}

/// The elements of `view` in row-major order, a new buffer written in parallel parts on large
/// views ([`parallel::for_each_part`]): a contiguous view is copied as a slice; a matrix (a
/// transposed gradient) in parts of whole rows, tiled ([`copy_matrix`]); rank 3 and 4 (a
/// permuted [B, T, H, d_h] → [B, H, T, d_h] view of attention heads, or its transposed
/// gradient) matrix by matrix in parts of whole leading-axis blocks; other ranks row by row
/// (a broadcast last axis repeats one value per row) or by ndarray's strided copy.
pub(crate) fn row_major_copy<T: Float>(view: ArrayViewD<'_, T>) -> Vec<T> {
    let (ndim, len) = (view.ndim(), view.len());
    if len == 0 {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(len);
    let room = &mut out.spare_capacity_mut()[..len];
    if let Some(xs) = view.as_slice() {
        parallel::for_each_part(room, 1, |first, dst| {
            for (d, &x) in dst.iter_mut().zip(&xs[first..]) {
                d.write(x);
            }
        });
    } else if ndim == 2 {
        // a transposed matrix (a gradient through `transpose` in a double backward): whole
        // rows per part, each part in tiles
        let m = view.into_dimensionality::<Ix2>().expect("two axes");
        let cols = m.ncols();
        parallel::for_each_part(room, cols, |first, part| {
            let rows = part.len() / cols;
            copy_matrix(m.slice(s![first..first + rows, ..]), part);
        });
    } else if ndim == 3 || ndim == 4 {
        // fixed-rank views: ndarray's lanes iterator pays an IxDyn index per lane, which
        // dominated for 32-element lanes
        let block = len / view.shape()[0];
        parallel::for_each_part(room, block, |first, part| {
            for (i, dst) in part.chunks_exact_mut(block).enumerate() {
                copy_rows(view.index_axis(Axis(0), first + i), dst);
            }
        });
    } else {
        match view.strides()[ndim - 1] {
            1 => {
                for lane in view.lanes(Axis(ndim - 1)) {
                    out.extend_from_slice(lane.to_slice().expect("unit stride"));
                }
            }
            // a broadcast last axis (a column [N, 1] → [N, d]): each row repeats one value
            0 => {
                let d = view.shape()[ndim - 1];
                for lane in view.lanes(Axis(ndim - 1)) {
                    out.extend(std::iter::repeat_n(lane[0], d));
                }
            }
            // ndarray's own strided copy (a fold, much faster than pulling its element iterator)
            _ => return view.as_standard_layout().into_owned().into_raw_vec_and_offset().0,
        }
        return out;
    }
    // SAFETY: the parts tile the `len` elements and each was written whole above
    unsafe { out.set_len(len) };
    out
}

/// `view` as a new array in standard layout ([`row_major_copy`]).
pub(crate) fn standard_copy<T: Float>(view: ArrayViewD<'_, T>) -> ArrayD<T> {
    let shape = view.raw_dim();
    ArrayD::from_shape_vec(shape, row_major_copy(view)).expect("one element per element")
}

/// The rows (last axis, any stride) of a rank-2 or rank-3 view, in row-major order, into `dst`
/// (exactly the view's length).
fn copy_rows<T: Copy>(view: ArrayViewD<'_, T>, dst: &mut [MaybeUninit<T>]) {
    if view.ndim() == 3 {
        let view = view.into_dimensionality::<Ix3>().expect("three axes");
        let block = view.shape()[1] * view.shape()[2];
        for (a, dst) in view.outer_iter().zip(dst.chunks_exact_mut(block.max(1))) {
            copy_matrix(a, dst);
        }
    } else {
        copy_matrix(view.into_dimensionality::<Ix2>().expect("two axes"), dst);
    }
}

/// Columns per tile of [`copy_matrix`]: a tile row of a transposed matrix reads this many cache
/// lines, which the next rows then reuse.
const TILE: usize = 32;

/// A matrix view (any strides) in row-major order into `dst` (exactly its length): rows with
/// unit stride as slices; otherwise in tiles of [`TILE`] columns, so that a transposed matrix is
/// read along its memory order a tile at a time instead of one cache line per element.
fn copy_matrix<T: Copy>(m: ArrayView2<'_, T>, dst: &mut [MaybeUninit<T>]) {
    let cols = m.ncols();
    if cols == 0 {
        return;
    }
    if m.strides()[1] == 1 || m.nrows() == 1 {
        for (row, out) in m.outer_iter().zip(dst.chunks_exact_mut(cols)) {
            match row.to_slice() {
                Some(row) => out.iter_mut().zip(row).for_each(|(d, &x)| {
                    d.write(x);
                }),
                None => out.iter_mut().zip(row.iter()).for_each(|(d, &x)| {
                    d.write(x);
                }),
            }
        }
        return;
    }
    let [s0, s1] = [m.strides()[0], m.strides()[1]];
    let base = m.as_ptr();
    for c0 in (0..cols).step_by(TILE) {
        let c1 = (c0 + TILE).min(cols);
        for (r, out) in dst.chunks_exact_mut(cols).enumerate() {
            for (c, d) in (c0..c1).zip(&mut out[c0..c1]) {
                // SAFETY: (r, c) is inside the view (r < rows: one `cols` chunk of `dst` per
                // row; c < cols), so the offset addresses one of its elements
                d.write(unsafe { *base.offset(r as isize * s0 + c as isize * s1) });
            }
        }
    }
}

impl<T: Float> Tensor<T> {
    /// The same elements in row-major order, viewed with `shape`.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor<T>> {
        let data = self.data();
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(TensorError::ShapeMismatch {
                op: "reshape",
                lhs: data.shape().to_vec(),
                rhs: shape.to_vec(),
            });
        }
        if data.shape() == shape {
            return Ok(self.clone());
        }
        let in_shape = data.shape().to_vec();
        Ok(Tensor::from_op(reshape_data(data, shape), "reshape", &[self], move |a| {
            Ok(vec![Some(a.grad.reshape(&in_shape)?)])
        }))
    }

    /// Inserts an axis of size 1 at `axis` (in `-(ndim+1)..=ndim`).
    pub fn unsqueeze(&self, axis: isize) -> Result<Tensor<T>> {
        let mut shape = self.shape();
        let ax = normalize_axis("unsqueeze", axis, shape.len() + 1)?;
        shape.insert(ax, 1);
        self.reshape(&shape)
    }

    /// Removes the axis `axis`, which must have size 1.
    pub fn squeeze(&self, axis: isize) -> Result<Tensor<T>> {
        let mut shape = self.shape();
        let ax = normalize_axis("squeeze", axis, shape.len())?;
        if shape[ax] != 1 {
            return Err(TensorError::invalid(
                "squeeze",
                format!("axis {axis} of shape {shape:?} is not of size 1"),
            ));
        }
        shape.remove(ax);
        self.reshape(&shape)
    }

    /// Reorders the axes: output axis i is input axis `axes[i]`.
    pub fn permute(&self, axes: &[usize]) -> Result<Tensor<T>> {
        let data = self.data();
        let n = data.ndim();
        let mut seen = vec![false; n];
        if axes.len() != n || axes.iter().any(|&a| a >= n || std::mem::replace(&mut seen[a], true))
        {
            return Err(TensorError::invalid(
                "permute",
                format!("{axes:?} is not a permutation of the {n} axes"),
            ));
        }
        let mut inverse = vec![0; n];
        for (i, &a) in axes.iter().enumerate() {
            inverse[a] = i;
        }
        let out = data.permuted_axes(IxDyn(axes));
        Ok(Tensor::from_op(out, "permute", &[self], move |a| {
            Ok(vec![Some(a.grad.permute(&inverse)?)])
        }))
    }

    /// Swaps two axes (negative axes count from the end).
    pub fn transpose(&self, axis0: isize, axis1: isize) -> Result<Tensor<T>> {
        let n = self.ndim();
        let (a0, a1) =
            (normalize_axis("transpose", axis0, n)?, normalize_axis("transpose", axis1, n)?);
        let mut axes: Vec<usize> = (0..n).collect();
        axes.swap(a0, a1);
        self.permute(&axes)
    }

    /// The slice `start..start + len` along `axis`. Backward: zero padding back to full size.
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<Tensor<T>> {
        let mut data = self.data();
        let ax = normalize_axis("narrow", axis, data.ndim())?;
        let size = data.shape()[ax];
        if start.checked_add(len).is_none_or(|end| end > size) {
            return Err(TensorError::invalid(
                "narrow",
                format!("{start}..{start}+{len} is outside axis {axis} of size {size}"),
            ));
        }
        data.slice_axis_inplace(Axis(ax), Slice::from(start..start + len));
        let after = size - start - len;
        Ok(Tensor::from_op(data, "narrow", &[self], move |a| {
            Ok(vec![Some(a.grad.pad_axis(ax as isize, start, after)?)])
        }))
    }

    /// Pads with `before` zeros in front and `after` zeros behind along `axis`. Backward: narrow.
    pub fn pad_axis(&self, axis: isize, before: usize, after: usize) -> Result<Tensor<T>> {
        let data = self.data();
        let ax = normalize_axis("pad_axis", axis, data.ndim())?;
        let mut shape = data.shape().to_vec();
        let len = shape[ax];
        shape[ax] += before + after;
        let mut out = ArrayD::zeros(IxDyn(&shape));
        out.slice_axis_mut(Axis(ax), Slice::from(before..before + len)).assign(&data);
        Ok(Tensor::from_op(out.into_shared(), "pad_axis", &[self], move |a| {
            Ok(vec![Some(a.grad.narrow(ax as isize, before, len)?)])
        }))
    }

    /// Joins tensors along an existing axis; all other sides must agree.
    pub fn concat(tensors: &[Tensor<T>], axis: isize) -> Result<Tensor<T>> {
        let first =
            tensors.first().ok_or_else(|| TensorError::invalid("concat", "no tensors to join"))?;
        let shape0 = first.shape();
        let ax = normalize_axis("concat", axis, shape0.len())?;
        let datas: Vec<Data<T>> = tensors.iter().map(Tensor::data).collect();
        for d in &datas[1..] {
            let same_rank = d.ndim() == shape0.len();
            if !same_rank
                || d.shape().iter().zip(&shape0).enumerate().any(|(i, (a, b))| i != ax && a != b)
            {
                return Err(TensorError::ShapeMismatch {
                    op: "concat",
                    lhs: shape0,
                    rhs: d.shape().to_vec(),
                });
            }
        }
        let views: Vec<_> = datas.iter().map(|d| d.view()).collect();
        let out = ndarray::concatenate(Axis(ax), &views).expect("shapes checked");
        let lens: Vec<usize> = datas.iter().map(|d| d.shape()[ax]).collect();
        let inputs: Vec<&Tensor<T>> = tensors.iter().collect();
        Ok(Tensor::from_op(out.into_shared(), "concat", &inputs, move |a| {
            let mut start = 0;
            let mut grads = Vec::with_capacity(lens.len());
            for (&len, &need) in lens.iter().zip(a.needs) {
                grads.push(need.then(|| a.grad.narrow(ax as isize, start, len)).transpose()?);
                start += len;
            }
            Ok(grads)
        }))
    }

    /// Joins tensors of one shape along a new axis.
    pub fn stack(tensors: &[Tensor<T>], axis: isize) -> Result<Tensor<T>> {
        let first =
            tensors.first().ok_or_else(|| TensorError::invalid("stack", "no tensors to stack"))?;
        let shape0 = first.shape();
        for t in tensors {
            if t.shape() != shape0 {
                return Err(TensorError::ShapeMismatch {
                    op: "stack",
                    lhs: shape0,
                    rhs: t.shape(),
                });
            }
        }
        let ax = normalize_axis("stack", axis, shape0.len() + 1)? as isize;
        let expanded = tensors.iter().map(|t| t.unsqueeze(ax)).collect::<Result<Vec<_>>>()?;
        Tensor::concat(&expanded, ax)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::Tensor;
    use crate::check::{gradcheck, gradgradcheck};
    use crate::ops::testing::{shape, uniform};

    #[test]
    fn row_major_copy_of_permuted_and_strided_views_is_the_standard_layout() {
        let a = ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&[2, 3, 4, 5]), |p| {
            (p[0] * 1000 + p[1] * 100 + p[2] * 10 + p[3]) as f64
        });
        let heads = a.view().permuted_axes(ndarray::IxDyn(&[0, 2, 1, 3])); // unit last stride
        let transposed = a.view().permuted_axes(ndarray::IxDyn(&[3, 2, 1, 0])); // none
        let column = ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&[3, 1]), |p| p[0] as f64);
        let rows = column.broadcast(ndarray::IxDyn(&[2, 3, 4])).unwrap(); // last stride 0
        let three = a.index_axis(ndarray::Axis(0), 1).permuted_axes(ndarray::IxDyn(&[1, 0, 2])); // rank 3
        for v in [heads, transposed, a.view(), rows, three] {
            let expected: Vec<f64> = v.as_standard_layout().iter().copied().collect();
            assert_eq!(super::row_major_copy(v), expected);
        }
    }

    /// Attention-sized head splits (rank 4), merges (rank 3), transposed gradients (rank 4 and
    /// 2), a broadcast column and a contiguous array are copied in parallel parts: the same
    /// elements on 1, 2 and 3 threads.
    #[test]
    fn large_head_copies_are_the_same_on_any_thread_count() {
        let a = ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&[6, 64, 8, 32]), |p| {
            (p[0] * 1_000_000 + p[1] * 1000 + p[2] * 100 + p[3]) as f32
        });
        let heads = a.view().permuted_axes(ndarray::IxDyn(&[0, 2, 1, 3]));
        let b = ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&[128, 24, 64]), |p| {
            (p[0] * 10_000 + p[1] * 100 + p[2]) as f32
        });
        let merged = b.view().permuted_axes(ndarray::IxDyn(&[1, 0, 2]));
        // a head split's transposed gradient: no unit-stride axis last
        let transposed = a.view().permuted_axes(ndarray::IxDyn(&[0, 2, 3, 1]));
        // a transposed [N, C] matrix (logits' gradient through `transpose`), C not a multiple
        // of the tile, and a broadcast column
        let logits = ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&[450, 301]), |p| {
            (p[0] * 1000 + p[1]) as f32
        });
        let logits_t = logits.view().reversed_axes();
        let column = ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&[1500, 1]), |p| p[0] as f32);
        let broadcast = column.broadcast(ndarray::IxDyn(&[1500, 77])).unwrap();
        assert!(
            logits.len() > 2 * crate::parallel::MIN_PART && 1500 * 77 > crate::parallel::MIN_PART
        );
        for v in [heads, merged, transposed, a.view(), logits_t, broadcast] {
            let expected: Vec<f32> = v.as_standard_layout().iter().copied().collect();
            for threads in [1, 2, 3] {
                let got =
                    crate::parallel::with_threads(threads, || super::row_major_copy(v.view()));
                assert!(got == expected, "{threads} threads, shape {:?}", v.shape());
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn movements_pass_gradcheck_and_gradgradcheck(s in shape(4, 4), seed: u64, pick in 0usize..4, cut in 0usize..4) {
            let x = uniform(&s, -1.0, 1.0, seed);
            let n = s.len();
            let ax = pick % n;
            let rev: Vec<usize> = (0..n).rev().collect();
            let flat = [x.len()];
            gradcheck(|t| t[0].reshape(&flat), &[x.clone()]).unwrap();
            gradcheck(|t| t[0].permute(&rev), &[x.clone()]).unwrap();
            gradgradcheck(|t| Ok::<_, crate::TensorError>(t[0].permute(&rev)?.powf(2.0)), &[x.clone()]).unwrap();
            let start = cut % s[ax];
            let len = s[ax] - start;
            gradcheck(|t| t[0].narrow(ax as isize, start, len), &[x.clone()]).unwrap();
            gradgradcheck(|t| Ok::<_, crate::TensorError>(t[0].narrow(ax as isize, start, len)?.powf(2.0)), &[x.clone()]).unwrap();
            gradcheck(|t| t[0].pad_axis(ax as isize, 1, 2), &[x.clone()]).unwrap();
            let y = uniform(&s, -1.0, 1.0, seed ^ 5);
            gradcheck(|t| Tensor::concat(&t[..2], ax as isize), &[x.clone(), y.clone()]).unwrap();
            gradcheck(|t| Tensor::stack(&t[..2], 0), &[x.clone(), y.clone()]).unwrap();
            gradgradcheck(|t| Ok::<_, crate::TensorError>(Tensor::concat(&t[..2], ax as isize)?.powf(2.0)), &[x, y]).unwrap();
        }

        #[test]
        fn transpose_twice_is_the_identity(s in shape(4, 4), seed: u64) {
            let x = uniform(&s, -1.0, 1.0, seed);
            let back = x.transpose(0, -1).unwrap().transpose(0, -1).unwrap();
            prop_assert_eq!(back.to_vec(), x.to_vec());
        }
    }

    #[test]
    fn narrow_shares_memory_and_reads_the_right_elements() {
        let x = Tensor::<f64>::from_vec((0..12).map(f64::from).collect(), &[3, 4]).unwrap();
        assert_eq!(x.narrow(1, 1, 2).unwrap().to_vec(), vec![1.0, 2.0, 5.0, 6.0, 9.0, 10.0]);
        assert_eq!(
            x.transpose(0, 1).unwrap().reshape(&[12]).unwrap().to_vec()[..4],
            [0.0, 4.0, 8.0, 1.0]
        );
    }

    #[test]
    fn bad_layouts_are_errors() {
        let x = Tensor::<f32>::zeros(&[2, 3]);
        assert!(x.reshape(&[4]).is_err());
        assert!(x.permute(&[0, 0]).is_err());
        assert!(x.permute(&[1]).is_err());
        assert!(x.narrow(1, 2, 2).is_err());
        assert!(x.narrow(2, 0, 1).is_err());
        assert!(x.squeeze(0).is_err());
        assert!(Tensor::concat(&[x.clone(), Tensor::zeros(&[3, 3])], 1).is_err());
        assert!(Tensor::<f32>::concat(&[], 0).is_err());
        assert!(Tensor::stack(&[x.clone(), Tensor::zeros(&[3, 2])], 0).is_err());
        assert_eq!(
            Tensor::concat(&[x.clone(), Tensor::zeros(&[2, 1])], 1).unwrap().shape(),
            vec![2, 4]
        );
    }
}
