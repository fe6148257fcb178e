//! The affine map of a `Linear` layer, y = x·Wᵀ + b, as one operation (PyTorch's
//! `torch.nn.functional.linear`): x [N, in], W [out, in] (PyTorch's layout), b [out] optional.
//!
//! Forward: with a bias, the output starts as N copies of b and one GEMM adds x·Wᵀ to it
//! (β = 1), so the bias costs no separate pass over y and y needs no zero fill; without one, a
//! plain product.
//!
//! Backward, with g = ∂L/∂y: dx = g·W, dW = gᵀ·x, db = Σ_rows g — written with `matmul`,
//! `transpose_matmul` and `sum_axis`, so it differentiates again (and the double backward's
//! gradients stay row-major: see [`Tensor::transpose_matmul`]).

use ndarray::{ArrayD, Ix2, IxDyn};

use super::matmul::matmul_data;
use crate::blas::gemm;
use crate::{Float, Result, Tensor, TensorError};

impl<T: Float> Tensor<T> {
    /// x·Wᵀ + b for x = self [N, in], `weight` [out, in] and an optional `bias` `[out]`.
    pub fn linear(&self, weight: &Tensor<T>, bias: Option<&Tensor<T>>) -> Result<Tensor<T>> {
        let (xs, ws) = (self.shape(), weight.shape());
        let mismatch =
            |rhs: Vec<usize>| TensorError::ShapeMismatch { op: "linear", lhs: xs.clone(), rhs };
        if xs.len() != 2 || ws.len() != 2 || xs[1] != ws[1] {
            return Err(mismatch(ws));
        }
        if let Some(b) = bias.filter(|b| b.shape() != [ws[0]]) {
            return Err(mismatch(b.shape()));
        }
        let (n, out) = (xs[0], ws[0]);
        let (x, w) = (self.data(), weight.data());
        let wt = w.t();
        let y = match bias {
            Some(b) if n > 0 && out > 0 => {
                let b = b.data();
                let row: Vec<T> = b.iter().copied().collect();
                let rows = crate::simd_math::repeat_rows(&row, n);
                let mut y = ArrayD::from_shape_vec(IxDyn(&[n, out]), rows)
                    .expect("N rows of the bias")
                    .into_dimensionality::<Ix2>()
                    .expect("two axes");
                let x2 = x.view().into_dimensionality::<Ix2>().expect("checked: two axes");
                let wt2 = wt.into_dimensionality::<Ix2>().expect("checked: two axes");
                gemm(T::one(), &x2, &wt2, T::one(), &mut y);
                y.into_dyn()
            }
            _ => {
                let mut y = matmul_data(&x, &wt.to_shared())?;
                if let Some(b) = bias {
                    y += &b.data();
                }
                y
            }
        };
        let mut inputs = vec![self, weight];
        inputs.extend(bias);
        Ok(Tensor::from_op(y.into_shared(), "linear", &inputs, |a| {
            let (x, w, g) = (&a.inputs[0], &a.inputs[1], a.grad);
            let mut grads = vec![
                a.needs[0].then(|| g.matmul(w)).transpose()?,
                a.needs[1].then(|| g.transpose_matmul(x)).transpose()?,
            ];
            if a.inputs.len() == 3 {
                grads.push(a.needs[2].then(|| g.sum_axis(0, false)).transpose()?);
            }
            Ok(grads)
        }))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::check::{gradcheck, gradgradcheck};
    use crate::ops::testing::uniform;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        #[test]
        fn linear_equals_matmul_plus_bias_and_passes_gradcheck_and_gradgradcheck(n in 1usize..5, i in 1usize..5, o in 1usize..5, bias: bool, seed: u64) {
            let x = uniform(&[n, i], -1.0, 1.0, seed);
            let w = uniform(&[o, i], -1.0, 1.0, seed ^ 1);
            let b = uniform(&[o], -1.0, 1.0, seed ^ 2);
            let composite = x.matmul(&w.transpose(0, 1).unwrap()).unwrap();
            let composite = if bias { composite.add(&b).unwrap() } else { composite };
            let got = x.linear(&w, bias.then_some(&b)).unwrap();
            for (p, q) in got.to_vec().iter().zip(composite.to_vec()) {
                prop_assert!((p - q).abs() < 1e-12);
            }
            let inputs = if bias { vec![x, w, b] } else { vec![x, w] };
            gradcheck(|t| t[0].linear(&t[1], t.get(2)), &inputs).unwrap();
            gradgradcheck(|t| t[0].linear(&t[1], t.get(2))?.tanh().linear(&t[1].transpose(0, 1)?, None), &inputs).unwrap();
        }
    }

    #[test]
    fn f32_goes_through_gemm_with_the_bias_as_initial_output() {
        let x = uniform(&[7, 9], -1.0, 1.0, 3);
        let w = uniform(&[11, 9], -1.0, 1.0, 4);
        let b = uniform(&[11], -1.0, 1.0, 5);
        let expected = x.linear(&w, Some(&b)).unwrap().to_vec();
        let got = x.cast::<f32>().linear(&w.cast::<f32>(), Some(&b.cast::<f32>())).unwrap();
        assert!(got.to_vec().iter().zip(&expected).all(|(p, q)| (*p as f64 - q).abs() < 1e-5));
    }

    #[test]
    fn bad_shapes_are_errors_naming_the_op() {
        let x = uniform(&[2, 3], -1.0, 1.0, 0);
        let err = x.linear(&uniform(&[4, 5], -1.0, 1.0, 1), None).unwrap_err().to_string();
        assert!(err.contains("linear"), "{err}");
        let bad_bias = uniform(&[3], -1.0, 1.0, 2);
        assert!(x.linear(&uniform(&[4, 3], -1.0, 1.0, 1), Some(&bad_bias)).is_err());
    }
}
