//! GELU (Hendrycks & Gimpel 2016), exact and tanh forms, as fused operations.
//!
//! | op | y | dy/dx |
//! |---|---|---|
//! | gelu | x·Φ(x) = ½x(1 + erf(x/√2)) | Φ(x) + x·φ(x), φ(x) = e^(−x²/2)/√(2π) |
//! | gelu_tanh | ½x(1 + tanh u), u = k(x + c·x³) | ½(1 + tanh u) + ½x(1 − tanh² u)·k(1 + 3c·x²) |
//!
//! with k = √(2/π) and c = 0.044715 (GPT-2's approximation).
//!
//! The forward pass is one pass over x (the composite form took five, each allocating). The
//! backward rule has two paths:
//! - first order (recording off, i.e. `backward()` / `grad(…, create_graph = false)`):
//!   dx = g ⊙ gelu′(x) in one fused pass, a constant;
//! - under `create_graph`: the same derivative written with differentiable operations
//!   (erf, exp, tanh, mul, …), so the second derivative is exact.
//!
//! Both paths evaluate the same formula; a test checks they agree to 1e-12 in `f64`.
//!
//! tanh and exp are [`Float::tanh_fast`] / [`Float::exp_fast`]: in `f32` branch-free kernels
//! (tanh within 1.5 ulp, exp within 1 ulp), so the forward pass and the fused slope are
//! straight-line arithmetic that `simd_math::map` runs as SIMD loops; in `f64` the accurate
//! scalar functions. erf stays libm's (GELU-tanh is the one on the training step's path).

use crate::simd_math;
use crate::tensor::BackwardArgs;
use crate::{Float, Result, Tensor, is_grad_enabled};

/// √(2/π).
const K: f64 = 0.797_884_560_802_865_4;
/// The cubic coefficient of the tanh approximation.
const C: f64 = 0.044_715;
/// 1/√(2π).
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

#[inline(always)]
fn gelu_value<T: Float>(x: T) -> T {
    let half = T::cast(0.5);
    half * x * (T::one() + (x * T::cast(std::f64::consts::FRAC_1_SQRT_2)).erf())
}

#[inline(always)]
fn gelu_slope<T: Float>(x: T) -> T {
    let cdf = T::cast(0.5) * (T::one() + (x * T::cast(std::f64::consts::FRAC_1_SQRT_2)).erf());
    let pdf = (T::cast(-0.5) * x * x).exp_fast() * T::cast(INV_SQRT_2PI);
    cdf + x * pdf
}

#[inline(always)]
fn gelu_tanh_value<T: Float>(x: T) -> T {
    let u = T::cast(K) * (x + T::cast(C) * x * x * x);
    T::cast(0.5) * x * (T::one() + u.tanh_fast())
}

#[inline(always)]
fn gelu_tanh_slope<T: Float>(x: T) -> T {
    let half = T::cast(0.5);
    let x2 = x * x;
    let t = (T::cast(K) * (x + T::cast(C) * x2 * x)).tanh_fast();
    half * (T::one() + t)
        + half * x * (T::one() - t * t) * T::cast(K) * (T::one() + T::cast(3.0 * C) * x2)
}

/// g ⊙ f′(x): fused (one pass, a constant) when recording is off and the shapes agree,
/// otherwise `composite(x) ⊙ g` in differentiable operations.
fn slope_rule<T: Float>(
    a: &BackwardArgs<'_, T>,
    fused: impl Fn(T) -> T + Copy,
    composite: fn(&Tensor<T>) -> Result<Tensor<T>>,
) -> Result<Vec<Option<Tensor<T>>>> {
    let x = &a.inputs[0];
    if !is_grad_enabled() && a.grad.shape() == x.shape() {
        let (g, xd) = (a.grad.data(), x.data());
        let dx = simd_math::zip_map(g.view(), xd.view(), |g, x| g * fused(x));
        return Ok(vec![Some(Tensor::constant(dx))]);
    }
    Ok(vec![Some(a.grad.mul(&composite(x)?)?)])
}

/// Φ(x) + x·φ(x) in differentiable operations.
fn gelu_slope_composite<T: Float>(x: &Tensor<T>) -> Result<Tensor<T>> {
    let cdf = x.mul_scalar(std::f64::consts::FRAC_1_SQRT_2).erf().add_scalar(1.0).mul_scalar(0.5);
    let pdf = x.mul(x)?.mul_scalar(-0.5).exp().mul_scalar(INV_SQRT_2PI);
    cdf.add(&x.mul(&pdf)?)
}

/// ½(1 + tanh u) + ½x(1 − tanh² u)·k(1 + 3c·x²) in differentiable operations.
fn gelu_tanh_slope_composite<T: Float>(x: &Tensor<T>) -> Result<Tensor<T>> {
    let x2 = x.mul(x)?;
    let t = x.add(&x2.mul(x)?.mul_scalar(C))?.mul_scalar(K).tanh();
    let sech2 = t.mul(&t)?.neg().add_scalar(1.0);
    let du = x2.mul_scalar(3.0 * C).add_scalar(1.0).mul_scalar(K);
    t.add_scalar(1.0).mul_scalar(0.5).add(&x.mul(&sech2)?.mul(&du)?.mul_scalar(0.5))
}

impl<T: Float> Tensor<T> {
    /// GELU, exact form: x·Φ(x) = ½·x·(1 + erf(x/√2)) (BERT, PyTorch's default).
    pub fn gelu(&self) -> Result<Tensor<T>> {
        let y = simd_math::map(self.data().view(), gelu_value);
        Ok(Tensor::from_op(y.into_shared(), "gelu", &[self], |a| {
            slope_rule(a, gelu_slope, gelu_slope_composite)
        }))
    }

    /// GELU, tanh approximation: ½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (GPT-2), with tanh
    /// from [`Float::tanh_fast`].
    pub fn gelu_tanh(&self) -> Result<Tensor<T>> {
        let y = simd_math::map(self.data().view(), gelu_tanh_value);
        Ok(Tensor::from_op(y.into_shared(), "gelu_tanh", &[self], |a| {
            slope_rule(a, gelu_tanh_slope, gelu_tanh_slope_composite)
        }))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::check::{gradcheck, gradgradcheck};
    use crate::ops::testing::{shape, uniform};
    use crate::{Result, Tensor, grad};

    type Op = fn(&Tensor<f64>) -> Result<Tensor<f64>>;
    const GELUS: [(&str, Op); 2] = [("gelu", |x| x.gelu()), ("gelu_tanh", |x| x.gelu_tanh())];

    /// The composite forms the fused operations replace.
    fn composite(name: &str, x: &Tensor<f64>) -> Result<Tensor<f64>> {
        if name == "gelu" {
            let phi =
                x.mul_scalar(std::f64::consts::FRAC_1_SQRT_2).erf().add_scalar(1.0).mul_scalar(0.5);
            x.mul(&phi)
        } else {
            let inner = x.add(&x.powf(3.0).mul_scalar(0.044715))?.mul_scalar(super::K);
            x.mul(&inner.tanh().add_scalar(1.0).mul_scalar(0.5))
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        #[test]
        fn fused_gelus_pass_gradcheck_and_gradgradcheck(s in shape(3, 4), seed: u64) {
            let x = uniform(&s, -3.0, 3.0, seed);
            for (name, f) in GELUS {
                gradcheck(|t| f(&t[0]), &[x.clone()]).map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
                gradgradcheck(|t| f(&t[0]), &[x.clone()]).map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
            }
        }

        #[test]
        fn fused_gelus_match_their_composite_forms(s in shape(3, 5), seed: u64) {
            let x = uniform(&s, -4.0, 4.0, seed);
            let w = uniform(&s, -1.0, 1.0, seed ^ 3).detach();
            for (name, f) in GELUS {
                let (y, yc) = (f(&x).unwrap(), composite(name, &x).unwrap());
                for (a, b) in y.to_vec().iter().zip(yc.to_vec()) {
                    prop_assert!((a - b).abs() < 1e-14, "{name} forward: {a} vs {b}");
                }
                // first order: the fused pass (recording off) and the composite graph
                let g = grad(&[y.mul(&w).unwrap().sum_all()], &[x.clone()], false).unwrap();
                let gc = grad(&[yc.mul(&w).unwrap().sum_all()], &[x.clone()], false).unwrap();
                // create_graph: the differentiable rule gives the same values
                let gg = grad(&[f(&x).unwrap().mul(&w).unwrap().sum_all()], &[x.clone()], true).unwrap();
                for ((a, b), c) in g[0].to_vec().iter().zip(gc[0].to_vec()).zip(gg[0].to_vec()) {
                    prop_assert!((a - b).abs() < 1e-12, "{name} fused grad: {a} vs {b}");
                    prop_assert!((c - b).abs() < 1e-12, "{name} create_graph grad: {c} vs {b}");
                }
            }
        }
    }

    #[test]
    fn gelus_are_finite_and_saturate_at_large_inputs() {
        let x = Tensor::<f32>::from_vec(vec![-1e4, 1e4, 0.0], &[3]).unwrap();
        assert_eq!(x.gelu_tanh().unwrap().to_vec(), [0.0, 1e4, 0.0]);
        assert_eq!(x.gelu().unwrap().to_vec(), [0.0, 1e4, 0.0]);
    }
}
