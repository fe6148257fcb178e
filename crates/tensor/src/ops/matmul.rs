//! Matrix products: 2-D (m×k · k×n) and batched (…×m×k · …×k×n, batch axes broadcast as in
//! numpy), through BLAS GEMM.
//!
//! Each 2-D product goes to [`crate::blas::gemm`], which calls sgemm/dgemm of the selected BLAS
//! backend (OpenBLAS or MKL) for f32/f64 with the transpose flags of the operands' layouts, so a
//! transposed view (`transpose(-2, -1)`) costs no copy. Batched products loop over the batch into
//! GEMM calls.
//!
//! Backward: for C = A·B, dA = dC·Bᵀ and dB = Aᵀ·dC, summed over broadcast batch axes.

use ndarray::{ArrayD, ArrayView2, ArrayViewD, Axis, Dimension, Ix2, Ix3, Ix4, IxDyn};

use super::broadcast_shape;
use crate::blas::{gemm_batched_into, gemm_batched2_into, gemm_into};
use crate::tensor::Data;
use crate::{Float, Result, Tensor, TensorError};

fn matrix<'a, T>(mut v: ArrayViewD<'a, T>, batch_index: &[usize]) -> ArrayView2<'a, T> {
    for &i in batch_index {
        v = v.index_axis_move(Axis(0), i);
    }
    v.into_dimensionality::<Ix2>().expect("two axes remain")
}

/// The product of `a` (…×m×k) and `b` (…×k×n) as a new array.
pub(crate) fn matmul_data<T: Float>(a: &Data<T>, b: &Data<T>) -> Result<ArrayD<T>> {
    let mismatch = || TensorError::ShapeMismatch {
        op: "matmul",
        lhs: a.shape().to_vec(),
        rhs: b.shape().to_vec(),
    };
    let (ra, rb) = (a.ndim(), b.ndim());
    if ra < 2 || rb < 2 {
        return Err(TensorError::invalid(
            "matmul",
            format!(
                "needs operands with at least 2 axes, got shapes {:?} and {:?}",
                a.shape(),
                b.shape()
            ),
        ));
    }
    let (m, k) = (a.shape()[ra - 2], a.shape()[ra - 1]);
    let (k2, n) = (b.shape()[rb - 2], b.shape()[rb - 1]);
    if k != k2 {
        return Err(mismatch());
    }
    let batch = broadcast_shape("matmul", &a.shape()[..ra - 2], &b.shape()[..rb - 2])
        .map_err(|_| mismatch())?;
    let full = |rows, cols| IxDyn(&[batch.as_slice(), &[rows, cols]].concat());
    let len = batch.iter().product::<usize>() * m * n;
    if len == 0 {
        return Ok(ArrayD::zeros(full(m, n)));
    }
    let mut out: Vec<T> = Vec::with_capacity(len);
    let room = &mut out.spare_capacity_mut()[..len];
    let av = a.broadcast(full(m, k)).expect("batch axes broadcast");
    let bv = b.broadcast(full(k, n)).expect("batch axes broadcast");
    // one or two batch axes (attention's [B, H, …]): fixed-rank views, no IxDyn index per GEMM
    match batch.len() {
        0 => gemm_into(&matrix(av, &[]), &matrix(bv, &[]), room),
        1 => {
            let (a3, b3) = (av.into_dimensionality::<Ix3>(), bv.into_dimensionality::<Ix3>());
            gemm_batched_into(a3.expect("three axes"), b3.expect("three axes"), room);
        }
        2 => {
            let a4 = av.into_dimensionality::<Ix4>().expect("four axes");
            let b4 = bv.into_dimensionality::<Ix4>().expect("four axes");
            gemm_batched2_into(a4, b4, room);
        }
        _ => {
            let matrices = ndarray::indices(IxDyn(&batch)).into_iter();
            for (index, o) in matrices.zip(room.chunks_mut(m * n)) {
                let index = index.slice();
                gemm_into(&matrix(av.view(), index), &matrix(bv.view(), index), o);
            }
        }
    }
    // SAFETY: every branch above wrote each of the `len` elements (the products fill their
    // m×n blocks, which tile the output)
    unsafe { out.set_len(len) };
    Ok(ArrayD::from_shape_vec(full(m, n), out).expect("the product's shape"))
}

impl<T: Float> Tensor<T> {
    /// The matrix product self · other over the last two axes, batch axes broadcast.
    pub fn matmul(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        let out = matmul_data(&self.data(), &other.data())?;
        Ok(Tensor::from_op(out.into_shared(), "matmul", &[self, other], |a| {
            let [x, y] = [&a.inputs[0], &a.inputs[1]];
            Ok(vec![
                a.needs[0]
                    .then(|| a.grad.matmul(&y.transpose(-2, -1)?)?.sum_to(&x.shape()))
                    .transpose()?,
                a.needs[1]
                    .then(|| x.transpose(-2, -1)?.matmul(a.grad)?.sum_to(&y.shape()))
                    .transpose()?,
            ])
        }))
    }
}

impl<T: Float> Tensor<T> {
    /// selfᵀ · other for matrices self [k, m] and other [k, n]: the product of the transpose
    /// without a `transpose` node in the graph (GEMM reads self transposed; no copy).
    ///
    /// Backward, for C = Aᵀ·B: dA = B·dCᵀ and dB = A·dC, both written row-major by GEMM. Through
    /// `transpose(0, 1)` + `matmul`, dA would instead come back as a transposed view of dAᵀ, a
    /// strided gradient that has to be copied when it is summed with others. Linear layers'
    /// weight gradient gᵀ·x is this product, so the double backward of every layer has one
    /// strided gradient fewer.
    pub fn transpose_matmul(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        if self.ndim() != 2 || other.ndim() != 2 {
            return Err(TensorError::invalid(
                "transpose_matmul",
                format!(
                    "needs two matrices, got shapes {:?} and {:?}",
                    self.shape(),
                    other.shape()
                ),
            ));
        }
        if self.shape()[0] != other.shape()[0] {
            return Err(TensorError::ShapeMismatch {
                op: "transpose_matmul",
                lhs: self.shape(),
                rhs: other.shape(),
            });
        }
        let out = matmul_data(&self.data().reversed_axes(), &other.data())?;
        Ok(Tensor::from_op(out.into_shared(), "transpose_matmul", &[self, other], |a| {
            let [x, y] = [&a.inputs[0], &a.inputs[1]];
            Ok(vec![
                a.needs[0].then(|| y.matmul(&a.grad.transpose(0, 1)?)).transpose()?,
                a.needs[1].then(|| x.matmul(a.grad)).transpose()?,
            ])
        }))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::Tensor;
    use crate::check::{gradcheck, gradgradcheck};
    use crate::ops::testing::uniform;

    /// The textbook triple loop, for comparison.
    fn naive(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn matmul_equals_the_naive_product_including_transposed_views(m in 1usize..12, k in 1usize..12, n in 1usize..12, seed: u64) {
            let a = uniform(&[m, k], -1.0, 1.0, seed);
            let b = uniform(&[k, n], -1.0, 1.0, seed ^ 1);
            let expected = naive(&a.to_vec(), &b.to_vec(), m, k, n);
            let close = |got: Vec<f64>| got.iter().zip(&expected).all(|(x, y)| (x - y).abs() < 1e-12);
            prop_assert!(close(a.matmul(&b).unwrap().to_vec()));
            // the same product from transposed storage: (Aᵀ)ᵀ·(Bᵀ)ᵀ
            let at = Tensor::constant(a.to_array().reversed_axes().as_standard_layout().into_owned()).transpose(0, 1).unwrap();
            let bt = Tensor::constant(b.to_array().reversed_axes().as_standard_layout().into_owned()).transpose(0, 1).unwrap();
            prop_assert!(close(at.matmul(&bt).unwrap().to_vec()));
            prop_assert!(close(at.matmul(&b).unwrap().to_vec()));
            // f32 goes through sgemm
            let got32 = a.cast::<f32>().matmul(&b.cast::<f32>()).unwrap().to_vec();
            prop_assert!(got32.iter().zip(&expected).all(|(x, y)| (*x as f64 - y).abs() < 1e-4));
        }

        #[test]
        fn batched_matmul_broadcasts_batch_axes(b1 in 1usize..4, b2 in 1usize..4, m in 1usize..6, k in 1usize..6, n in 1usize..6, seed: u64) {
            let a = uniform(&[b1, 1, m, k], -1.0, 1.0, seed);
            let b = uniform(&[b2, k, n], -1.0, 1.0, seed ^ 2);
            let c = a.matmul(&b).unwrap();
            prop_assert_eq!(c.shape(), vec![b1, b2, m, n]);
            let (ad, bd, cd) = (a.to_vec(), b.to_vec(), c.to_vec());
            for i in 0..b1 {
                for j in 0..b2 {
                    let expected = naive(&ad[i * m * k..(i + 1) * m * k], &bd[j * k * n..(j + 1) * k * n], m, k, n);
                    let got = &cd[(i * b2 + j) * m * n..(i * b2 + j + 1) * m * n];
                    prop_assert!(got.iter().zip(&expected).all(|(x, y)| (x - y).abs() < 1e-12));
                }
            }
        }

        #[test]
        fn matmul_passes_gradcheck_and_gradgradcheck(b1 in 1usize..3, m in 1usize..5, k in 1usize..5, n in 1usize..5, seed: u64) {
            let a = uniform(&[b1, m, k], -1.0, 1.0, seed);
            let b = uniform(&[k, n], -1.0, 1.0, seed ^ 4);
            gradcheck(|t| t[0].matmul(&t[1]), &[a.clone(), b.clone()]).unwrap();
            gradgradcheck(|t| t[0].matmul(&t[1]), &[a.clone(), b.clone()]).unwrap();
            gradgradcheck(|t| t[0].matmul(&t[1])?.tanh().matmul(&t[1].transpose(0, 1)?), &[a, b]).unwrap();
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        #[test]
        fn transpose_matmul_equals_transpose_then_matmul_and_passes_gradgradcheck(m in 1usize..5, k in 1usize..5, n in 1usize..5, seed: u64) {
            let a = uniform(&[k, m], -1.0, 1.0, seed);
            let b = uniform(&[k, n], -1.0, 1.0, seed ^ 5);
            let want = a.transpose(0, 1).unwrap().matmul(&b).unwrap().to_vec();
            let got = a.transpose_matmul(&b).unwrap();
            prop_assert_eq!(got.shape(), vec![m, n]);
            prop_assert!(got.to_vec().iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-12));
            gradcheck(|t| t[0].transpose_matmul(&t[1]), &[a.clone(), b.clone()]).unwrap();
            gradgradcheck(|t| t[0].transpose_matmul(&t[1])?.tanh().transpose_matmul(&t[0].transpose(0, 1)?), &[a, b]).unwrap();
        }
    }

    #[test]
    fn transpose_matmul_gradients_are_row_major() {
        let a = uniform(&[6, 3], -1.0, 1.0, 1);
        let b = uniform(&[6, 4], -1.0, 1.0, 2);
        let loss = a.transpose_matmul(&b).unwrap().tanh().sum_all();
        for g in crate::grad(&[loss], &[a, b], false).unwrap() {
            assert!(g.data().is_standard_layout(), "{:?}", g.data().strides());
        }
    }

    #[test]
    fn transpose_matmul_of_bad_shapes_is_an_error() {
        let a = Tensor::<f32>::zeros(&[2, 3]);
        assert!(
            a.transpose_matmul(&Tensor::zeros(&[3, 3])).unwrap_err().to_string().contains("[2, 3]")
        );
        assert!(a.transpose_matmul(&Tensor::zeros(&[2, 2, 3])).is_err());
    }

    #[test]
    fn inner_dimension_mismatch_is_an_error() {
        let a = Tensor::<f32>::zeros(&[2, 3]);
        let b = Tensor::<f32>::zeros(&[4, 5]);
        assert!(a.matmul(&b).unwrap_err().to_string().contains("[2, 3] and [4, 5]"));
        assert!(Tensor::<f32>::zeros(&[3]).matmul(&b).is_err());
        assert!(Tensor::<f32>::zeros(&[2, 2, 3]).matmul(&Tensor::zeros(&[3, 3, 1])).is_err());
        assert_eq!(
            Tensor::<f32>::zeros(&[0, 3]).matmul(&Tensor::zeros(&[3, 2])).unwrap().shape(),
            vec![0, 2]
        );
    }
}
