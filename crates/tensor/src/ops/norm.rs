//! RMS norm over the last axis (Zhang & Sennrich 2019): y = x / √(mean(x²) + ε) · γ.
//!
//! Composed of differentiable operations, so derivatives of every order follow. Layer norm,
//! y = (x − μ)/√(σ² + ε)·γ + β, is one fused operation with its own backward in
//! `layer_norm.rs`.

use super::layer_norm::check_affine;
use crate::{Float, Result, Tensor};

impl<T: Float> Tensor<T> {
    /// RMS normalization over the last axis, with optional gain γ of shape `[d]`.
    pub fn rms_norm(&self, gamma: Option<&Tensor<T>>, eps: f64) -> Result<Tensor<T>> {
        check_affine("rms_norm", self, gamma)?;
        let ms = self.mul(self)?.mean_axis(-1, true)?;
        let y = self.mul(&ms.add_scalar(eps).powf(-0.5))?;
        match gamma {
            Some(g) => y.mul(g),
            None => Ok(y),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::Tensor;
    use crate::check::{gradcheck, gradgradcheck};
    use crate::ops::testing::{shape, uniform};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        #[test]
        fn norms_pass_gradcheck_and_gradgradcheck(s in shape(3, 4), seed: u64) {
            let d = *s.last().unwrap();
            let x = uniform(&s, -2.0, 2.0, seed);
            let g = uniform(&[d], 0.5, 1.5, seed ^ 1);
            let b = uniform(&[d], -0.5, 0.5, seed ^ 2);
            gradcheck(|t| t[0].layer_norm(Some(&t[1]), Some(&t[2]), 1e-5), &[x.clone(), g.clone(), b.clone()]).unwrap();
            gradgradcheck(|t| t[0].layer_norm(Some(&t[1]), Some(&t[2]), 1e-5), &[x.clone(), g.clone(), b]).unwrap();
            gradcheck(|t| t[0].rms_norm(Some(&t[1]), 1e-6), &[x.clone(), g.clone()]).unwrap();
            gradgradcheck(|t| t[0].rms_norm(Some(&t[1]), 1e-6), &[x, g]).unwrap();
        }

        #[test]
        fn layer_norm_is_scale_invariant(s in shape(3, 6), c in 0.1f64..100.0, seed: u64) {
            let x = uniform(&s, -2.0, 2.0, seed);
            let y = x.layer_norm(None, None, 0.0).unwrap().to_vec();
            let yc = x.mul_scalar(c).layer_norm(None, None, 0.0).unwrap().to_vec();
            if *s.last().unwrap() > 1 {
                for (a, b) in y.iter().zip(&yc) {
                    prop_assert!((a - b).abs() < 1e-9);
                }
            }
        }
    }

    #[test]
    fn layer_norm_rows_have_zero_mean_and_unit_variance() {
        let x = uniform(&[3, 8], -4.0, 4.0, 1);
        let y = x.layer_norm(None, None, 0.0).unwrap();
        for m in y.mean_axis(-1, false).unwrap().to_vec() {
            assert!(m.abs() < 1e-12);
        }
        for v in y.var_axis(-1, false, false).unwrap().to_vec() {
            assert!((v - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn constant_rows_stay_finite_and_wrong_gains_are_errors() {
        let x = Tensor::<f32>::full(&[2, 4], 3.0);
        assert!(x.layer_norm(None, None, 1e-5).unwrap().to_vec().iter().all(|v| *v == 0.0));
        assert!(x.layer_norm(Some(&Tensor::ones(&[3])), None, 1e-5).is_err());
        assert!(x.rms_norm(Some(&Tensor::ones(&[2, 4])), 1e-5).is_err());
        assert!(Tensor::<f32>::scalar(1.0).layer_norm(None, None, 1e-5).is_err());
    }
}
