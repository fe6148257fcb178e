//! GELU (Hendrycks & Gimpel 2016), exact and tanh forms, as fused operations.
//!
//! | op | y | dy/dx |
//! |---|---|---|
//! | gelu | x·Φ(x) = ½x(1 + erf(x/√2)) | Φ(x) + x·φ(x), φ(x) = e^(−x²/2)/√(2π) |
//! | gelu_tanh | ½x(1 + tanh u), u = k(x + c·x³) | ½(1 + tanh u) + ½x(1 − tanh² u)·k(1 + 3c·x²) |
//!
//! with k = √(2/π) and c = 0.044715 (GPT-2's approximation).
//!
//! and second derivatives
//!
//! | op | d²y/dx² |
//! |---|---|
//! | gelu | φ(x)·(2 − x²) |
//! | gelu_tanh | (1 − tanh² u)·(u′ + ½x·(u″ − 2·tanh u·u′²)), u′ = k(1 + 3c·x²), u″ = 6kc·x |
//!
//! The forward pass is one pass over x (the composite form took five, each allocating). The
//! backward rule has two paths:
//! - first order (recording off, i.e. `backward()` / `grad(…, create_graph = false)`):
//!   dx = g ⊙ gelu′(x) in one fused pass, a constant;
//! - under `create_graph`: g ⊙ `gelu_slope(x)`, where the slope is itself a fused operation with
//!   the same two paths one order up: g′ ⊙ gelu″(x) in one pass, or, when recording again (third
//!   order), gelu″ written with differentiable operations (erf, exp, tanh, mul, …). An exact
//!   Hessian-vector product thus costs two fused passes here instead of a graph of about fifteen
//!   element-wise operations, and every order stays exact.
//!
//! The fused and differentiable forms evaluate the same functions; tests check they agree to
//! 1e-12 in `f64`.
//!
//! GELU-tanh's forward pass and fused slope use ½(1 + tanh u) = σ(2u) = 1/(1 + e^{−2u}):
//! y = x/(1 + e^{−2u}), y′ = s + s(1 − s)·2x·u′ with s = σ(2u) and 1 − s = e^{−2u}·s — one
//! exponential and one division, no cancellation as u → ±∞ (1 + tanh u loses every digit as
//! u → −∞). The exponential is [`Float::exp_fast`]: in `f32` the branch-free kernel of
//! `simd_math` (≤ 1 ulp), so both are straight-line arithmetic that `simd_math::map` /
//! `zip_map` run as SIMD loops; in `f64` libm's `exp`. In `f32` both are within 3 ulp once the
//! rounding of u, which the exponential amplifies |2u|-fold, is allowed for (tested).
//!
//! GELU (erf) uses [`Float::normal_cdf`] for Φ and `exp_fast` for φ: in `f32` a branch-free
//! kernel (erf's odd polynomial near 0, erfc = e^{−z²}·R(1/(1 + z/2)) in the tails, so the lower
//! tail keeps its relative accuracy where ½(1 + erf) cancelled); in `f64` ½(1 + erf(x/√2)) with
//! libm's erf. In `f32`, Φ, y and y′ are within 4·(1 + x²/2) ulp (tested).

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
    x * x.normal_cdf()
}

#[inline(always)]
fn gelu_slope<T: Float>(x: T) -> T {
    let pdf = (T::cast(-0.5) * x * x).exp_fast() * T::cast(INV_SQRT_2PI);
    x.normal_cdf() + x * pdf
}

/// e^{−2u} for GELU-tanh's u = k(x + c·x³).
#[inline(always)]
fn gelu_tanh_exp<T: Float>(x: T) -> T {
    let u = T::cast(K) * (x + T::cast(C) * x * x * x);
    (T::cast(-2.0) * u).exp_fast()
}

/// ½x(1 + tanh u) = x·σ(2u) = x/(1 + e^{−2u}): one exp and one division, and no cancellation for
/// u → −∞ (where 1 + tanh u loses every digit).
#[inline(always)]
fn gelu_tanh_value<T: Float>(x: T) -> T {
    x / (T::one() + gelu_tanh_exp(x))
}

/// ½(1 + tanh u) + ½x(1 − tanh² u)·u′ = s + s(1 − s)·2x·u′ with s = σ(2u) = 1/(1 + e),
/// e = e^{−2u}, u′ = k(1 + 3c·x²). 1 − s = e·s has no cancellation as s → 1; e is capped at the
/// largest finite value so that u → −∞ gives s(1 − s) = 0, not ∞·0.
#[inline(always)]
fn gelu_tanh_slope<T: Float>(x: T) -> T {
    let e = gelu_tanh_exp(x);
    let s = T::one() / (T::one() + e);
    let e = if e < T::max_value() { e } else { T::max_value() };
    let du = T::cast(K) * (T::one() + T::cast(3.0 * C) * x * x);
    s + s * (e * s) * (T::cast(2.0) * x) * du
}

/// φ(x)·(2 − x²), the derivative of Φ(x) + x·φ(x).
#[inline(always)]
fn gelu_curvature<T: Float>(x: T) -> T {
    let pdf = (T::cast(-0.5) * x * x).exp_fast() * T::cast(INV_SQRT_2PI);
    pdf * (T::cast(2.0) - x * x)
}

/// (1 − t²)·(u′ + ½x·(u″ − 2t·u′²)) with t = tanh u = s(1 − e), 1 − t² = 4s(1 − s) = 4s·(e·s),
/// s = 1/(1 + e), e = e^{−2u} (capped as in [`gelu_tanh_slope`]).
#[inline(always)]
fn gelu_tanh_curvature<T: Float>(x: T) -> T {
    let e = gelu_tanh_exp(x);
    let s = T::one() / (T::one() + e);
    let e = if e < T::max_value() { e } else { T::max_value() };
    let es = e * s;
    let (t, sech2) = (s - es, T::cast(4.0) * s * es);
    let du = T::cast(K) * (T::one() + T::cast(3.0 * C) * x * x);
    let ddu = T::cast(6.0 * K * C) * x;
    sech2 * (du + T::cast(0.5) * x * (ddu - T::cast(2.0) * t * du * du))
}

/// Declares unit structs running the per-element functions above as `simd_math` kernels
/// (`#[inline(always)]`, so that the slice loops vectorize whatever the body's size).
macro_rules! kernels {
    ($($name:ident => $f:ident),*) => {$(
        #[derive(Clone, Copy)]
        struct $name;
        impl<T: Float> simd_math::Elementwise<T> for $name {
            #[inline(always)]
            fn apply(self, x: T) -> T {
                $f(x)
            }
        }
    )*};
}
kernels!(Gelu => gelu_value, GeluSlope => gelu_slope, GeluCurvature => gelu_curvature,
    GeluTanh => gelu_tanh_value, GeluTanhSlope => gelu_tanh_slope,
    GeluTanhCurvature => gelu_tanh_curvature);

/// g·f′(x) for a slope kernel f′.
#[derive(Clone, Copy)]
struct TimesSlope<K>(K);

impl<T: Float, K: simd_math::Elementwise<T>> simd_math::Elementwise2<T> for TimesSlope<K> {
    #[inline(always)]
    fn apply(self, g: T, x: T) -> T {
        g * self.0.apply(x)
    }
}

/// g ⊙ f′(x): fused (one pass, a constant) when recording is off and the shapes agree,
/// otherwise `composite(x) ⊙ g` in differentiable operations.
fn slope_rule<T: Float>(
    a: &BackwardArgs<'_, T>,
    fused: impl simd_math::Elementwise<T>,
    composite: fn(&Tensor<T>) -> Result<Tensor<T>>,
) -> Result<Vec<Option<Tensor<T>>>> {
    let x = &a.inputs[0];
    if !is_grad_enabled() && a.grad.shape() == x.shape() {
        let (g, xd) = (a.grad.data(), x.data());
        let dx = simd_math::zip_map(g.view(), xd.view(), TimesSlope(fused));
        return Ok(vec![Some(Tensor::constant(dx))]);
    }
    Ok(vec![Some(a.grad.mul(&composite(x)?)?)])
}

/// φ(x)·(2 − x²) in differentiable operations.
fn gelu_curvature_composite<T: Float>(x: &Tensor<T>) -> Result<Tensor<T>> {
    let x2 = x.mul(x)?;
    let pdf = x2.mul_scalar(-0.5).exp().mul_scalar(INV_SQRT_2PI);
    pdf.mul(&x2.neg().add_scalar(2.0))
}

/// (1 − tanh² u)·(u′ + ½x·(u″ − 2·tanh u·u′²)) in differentiable operations.
fn gelu_tanh_curvature_composite<T: Float>(x: &Tensor<T>) -> Result<Tensor<T>> {
    let x2 = x.mul(x)?;
    let t = x.add(&x2.mul(x)?.mul_scalar(C))?.mul_scalar(K).tanh();
    let sech2 = t.mul(&t)?.neg().add_scalar(1.0);
    let du = x2.mul_scalar(3.0 * C).add_scalar(1.0).mul_scalar(K);
    let ddu = x.mul_scalar(6.0 * K * C);
    let bracket = ddu.sub(&t.mul(&du)?.mul(&du)?.mul_scalar(2.0))?;
    sech2.mul(&du.add(&x.mul(&bracket)?.mul_scalar(0.5))?)
}

impl<T: Float> Tensor<T> {
    /// GELU, exact form: x·Φ(x) = ½·x·(1 + erf(x/√2)) (BERT, PyTorch's default).
    pub fn gelu(&self) -> Result<Tensor<T>> {
        let y = simd_math::map(self.data().view(), Gelu);
        Ok(Tensor::from_op(y.into_shared(), "gelu", &[self], |a| {
            slope_rule(a, GeluSlope, Tensor::gelu_slope)
        }))
    }

    /// GELU′(x) = Φ(x) + x·φ(x), the create_graph rule of [`Tensor::gelu`].
    pub(crate) fn gelu_slope(&self) -> Result<Tensor<T>> {
        let y = simd_math::map(self.data().view(), GeluSlope);
        Ok(Tensor::from_op(y.into_shared(), "gelu_slope", &[self], |a| {
            slope_rule(a, GeluCurvature, gelu_curvature_composite)
        }))
    }

    /// GELU, tanh approximation: ½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (GPT-2), computed
    /// as x/(1 + e^{−2u}) with [`Float::exp_fast`] (see the module documentation).
    pub fn gelu_tanh(&self) -> Result<Tensor<T>> {
        let y = simd_math::map(self.data().view(), GeluTanh);
        Ok(Tensor::from_op(y.into_shared(), "gelu_tanh", &[self], |a| {
            slope_rule(a, GeluTanhSlope, Tensor::gelu_tanh_slope)
        }))
    }

    /// GELU-tanh′(x), the create_graph rule of [`Tensor::gelu_tanh`].
    pub(crate) fn gelu_tanh_slope(&self) -> Result<Tensor<T>> {
        let y = simd_math::map(self.data().view(), GeluTanhSlope);
        Ok(Tensor::from_op(y.into_shared(), "gelu_tanh_slope", &[self], |a| {
            slope_rule(a, GeluTanhCurvature, gelu_tanh_curvature_composite)
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
    /// The slopes, operations of their own under create_graph (their gradgradcheck is a third
    /// derivative of GELU).
    const SLOPES: [(&str, Op); 2] =
        [("gelu_slope", |x| x.gelu_slope()), ("gelu_tanh_slope", |x| x.gelu_tanh_slope())];

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
            for (name, f) in GELUS.into_iter().chain(SLOPES) {
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        /// The slope ops' two backward paths (fused gelu″, and gelu″ in differentiable operations
        /// under create_graph) give the same second derivative.
        #[test]
        fn fused_and_composite_curvatures_agree(s in shape(3, 5), seed: u64) {
            let x = uniform(&s, -6.0, 6.0, seed);
            let w = uniform(&s, -1.0, 1.0, seed ^ 5).detach();
            for (name, f) in SLOPES {
                let loss = || f(&x).unwrap().mul(&w).unwrap().sum_all();
                let fused = grad(&[loss()], &[x.clone()], false).unwrap();
                let composite = grad(&[loss()], &[x.clone()], true).unwrap();
                for (a, b) in fused[0].to_vec().iter().zip(composite[0].to_vec()) {
                    prop_assert!((a - b).abs() < 1e-12, "{name}: {a} vs {b}");
                }
            }
        }
    }

    /// The f32 forward and fused slope against the same formulas in f64, in f32 ulps, on
    /// [−9, 12] (below x ≈ −10 the output is under 10⁻³⁸ and flushes to −0). Both errors are
    /// divided by 1 + |2u|: the rounding of u in f32 is amplified |2u|-fold by the exponential
    /// (up to 150 ulp at x = −9, where y ≈ −10⁻³⁰). The slope's ulp is that of
    /// |s| + |s(1 − s)·2x·u′| (its two terms cancel near x = −0.75).
    #[test]
    fn f32_gelu_tanh_and_its_slope_are_accurate() {
        use crate::simd_math::ulp_error;
        let xs: Vec<f32> = (0..=210_000).map(|i| (-9.0 + 21.0 * i as f64 / 2.1e5) as f32).collect();
        let x = Tensor::<f32>::param_from_vec(xs.clone(), &[xs.len()]).unwrap();
        let y = x.gelu_tanh().unwrap();
        let dy = grad(&[y.sum_all()], &[x.clone()], false).unwrap()[0].to_vec();
        let (mut worst_y, mut worst_dy) = ((0.0, 0.0), (0.0, 0.0));
        for ((&xf, yf), dyf) in xs.iter().zip(y.to_vec()).zip(dy) {
            let x = xf as f64;
            let u = super::K * (x + super::C * x * x * x);
            let e = (-2.0 * u).exp();
            let s = 1.0 / (1.0 + e);
            let term = s * (e * s) * 2.0 * x * super::K * (1.0 + 3.0 * super::C * x * x);
            let ey = ulp_error(yf, x * s) / (1.0 + 2.0 * u.abs());
            // |dy − exact| / ulp(scale), ulp(v) = |v| / ulp_error(0, v)
            let scale = s.abs() + term.abs();
            let edy = (dyf as f64 - (s + term)).abs() * ulp_error(0.0, scale)
                / scale
                / (1.0 + 2.0 * u.abs());
            if ey > worst_y.0 {
                worst_y = (ey, x);
            }
            if edy > worst_dy.0 {
                worst_dy = (edy, x);
            }
        }
        // measured: 2.53 (x = −7.36) and 2.42 (x = −6.70)
        assert!(worst_y.0 <= 3.0, "gelu_tanh: {worst_y:?}");
        assert!(worst_dy.0 <= 3.0, "gelu_tanh slope: {worst_dy:?}");
    }

    /// Φ in f32 against ½·erfc(−x/√2) in f64 (libm), on [−12, 8] and the special values; the
    /// error is divided by 1 + x²/2 (the rounding of z² = x²/2 amplified by e^{−z²}).
    #[test]
    fn f32_normal_cdf_and_gelu_are_accurate() {
        use crate::Float;
        use crate::simd_math::ulp_error;
        let (mut worst_cdf, mut worst_y, mut worst_dy) = ((0.0, 0.0), (0.0, 0.0), (0.0, 0.0));
        let xs: Vec<f32> = (0..=400_000).map(|i| (-12.0 + 20.0 * i as f64 / 4e5) as f32).collect();
        let x = Tensor::<f32>::param_from_vec(xs.clone(), &[xs.len()]).unwrap();
        let y = x.gelu().unwrap();
        let dy = grad(&[y.sum_all()], &[x.clone()], false).unwrap()[0].to_vec();
        for ((&xf, yf), dyf) in xs.iter().zip(y.to_vec()).zip(dy) {
            let x = xf as f64;
            let allow = 1.0 + 0.5 * x * x;
            let cdf = 0.5 * libm::erfc(-x * std::f64::consts::FRAC_1_SQRT_2);
            let pdf = (-0.5 * x * x).exp() * super::INV_SQRT_2PI;
            let e = ulp_error(xf.normal_cdf(), cdf) / allow;
            if e > worst_cdf.0 {
                worst_cdf = (e, x);
            }
            let e = ulp_error(yf, x * cdf) / allow;
            if e > worst_y.0 {
                worst_y = (e, x);
            }
            // the slope's two terms cancel near x = −0.75: ulp of |Φ| + |x·φ|
            let scale = cdf + (x * pdf).abs();
            let e = (dyf as f64 - (cdf + x * pdf)).abs() * ulp_error(0.0, scale) / scale / allow;
            if e > worst_dy.0 {
                worst_dy = (e, x);
            }
        }
        // measured: 3.28 (x = −1.54), 3.28 (x = −1.43), 1.85 (x = −0.80)
        assert!(worst_cdf.0 <= 4.0, "normal_cdf: {worst_cdf:?}");
        assert!(worst_y.0 <= 4.0, "gelu: {worst_y:?}");
        assert!(worst_dy.0 <= 3.0, "gelu slope: {worst_dy:?}");
        for (x, y) in [
            (f32::NEG_INFINITY, 0.0),
            (-30.0, 0.0),
            (0.0, 0.5),
            (-0.0, 0.5),
            (6.0, 1.0),
            (f32::INFINITY, 1.0),
        ] {
            assert_eq!(x.normal_cdf(), y, "Φ({x})");
        }
        assert!(f32::NAN.normal_cdf().is_nan());
    }

    #[test]
    fn gelus_are_finite_and_saturate_at_large_inputs() {
        let x = Tensor::<f32>::from_vec(vec![-1e4, 1e4, 0.0], &[3]).unwrap();
        assert_eq!(x.gelu_tanh().unwrap().to_vec(), [0.0, 1e4, 0.0]);
        assert_eq!(x.gelu().unwrap().to_vec(), [0.0, 1e4, 0.0]);
    }
}
