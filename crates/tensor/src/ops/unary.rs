//! Elementwise functions and their derivatives.
//!
//! | op | y | dy/dx |
//! |---|---|---|
//! | exp | eˣ | y |
//! | log | ln x | 1/x |
//! | sqrt | √x | 1/(2y) |
//! | powf(p) | xᵖ | p·xᵖ⁻¹ |
//! | tanh | tanh x | 1 − y² |
//! | sigmoid | 1/(1+e⁻ˣ) | y(1 − y) |
//! | relu | max(x, 0) | 1[x > 0] |
//! | abs | \|x\| | sign x |
//! | erf | erf x | 2/√π·e^(−x²) |
//!
//! GELU lives in `gelu.rs` (fused). relu and abs have a piecewise-constant derivative (0 at the kink, as PyTorch); their second
//! derivative is zero.

use crate::{Float, Tensor};

impl<T: Float> Tensor<T> {
    fn map_op(
        &self,
        op: &'static str,
        f: impl Fn(T) -> T,
        rule: impl Fn(&crate::tensor::BackwardArgs<'_, T>) -> crate::Result<Tensor<T>>
        + Send
        + Sync
        + 'static,
    ) -> Tensor<T> {
        let out = self.data().mapv(f);
        Tensor::from_op(out.into_shared(), op, &[self], move |a| Ok(vec![Some(rule(a)?)]))
    }

    /// [`map_op`](Self::map_op) through `simd_math::map`: on contiguous data a slice loop that
    /// LLVM vectorizes (AVX2 / AVX-512 chosen at run time) when `f` is branch-free arithmetic,
    /// as the `f32` kernels behind [`Float::tanh_fast`] and [`Float::exp_fast`] are.
    fn map_op_vectorized(
        &self,
        op: &'static str,
        f: impl Fn(T) -> T + Copy + Send + Sync,
        rule: impl Fn(&crate::tensor::BackwardArgs<'_, T>) -> crate::Result<Tensor<T>>
        + Send
        + Sync
        + 'static,
    ) -> Tensor<T> {
        let out = crate::simd_math::map(self.data().view(), f);
        Tensor::from_op(out.into_shared(), op, &[self], move |a| Ok(vec![Some(rule(a)?)]))
    }

    /// eˣ ([`Float::exp_fast`]: libm's in `f64`; in `f32` a vectorized kernel within 1 ulp).
    pub fn exp(&self) -> Tensor<T> {
        self.map_op_vectorized("exp", T::exp_fast, |a| a.grad.mul(a.output))
    }

    /// ln x.
    pub fn log(&self) -> Tensor<T> {
        self.map_op("log", T::ln, |a| a.grad.div(&a.inputs[0]))
    }

    /// √x.
    pub fn sqrt(&self) -> Tensor<T> {
        self.map_op("sqrt", T::sqrt, |a| a.grad.div(&a.output.mul_scalar(2.0)))
    }

    /// xᵖ for a scalar exponent p.
    ///
    /// The common exponents skip libm's `powf` (≈ 30× the cost of a multiply): p = 1 → x,
    /// 2 → x·x, 3 → x·x·x, 0.5 → √x, −0.5 → 1/√x, −1 → 1/x, −1.5 → 1/(x·√x), 0 → 1. For
    /// p ∈ {0, 1, 2, 0.5, −1} the result is the correctly rounded xᵖ (one IEEE operation); for
    /// 3, −0.5 and −1.5 it is within 2 ulp; for p = 0.5 a −0 or −∞ input gives −0 / NaN, as
    /// `sqrt` does.
    /// The derivative p·xᵖ⁻¹ is again a `powf`, so it takes the same shortcuts.
    pub fn powf(&self, p: f64) -> Tensor<T> {
        let pt = T::cast(p);
        let f: fn(T, T) -> T = match p {
            0.0 => |_, _| T::one(),
            1.0 => |x, _| x,
            2.0 => |x, _| x * x,
            3.0 => |x, _| x * x * x,
            0.5 => |x, _| x.sqrt(),
            -0.5 => |x, _| x.sqrt().recip(),
            -1.0 => |x, _| x.recip(),
            -1.5 => |x, _| (x * x.sqrt()).recip(),
            _ => |x, p| x.powf(p),
        };
        self.map_op(
            "powf",
            move |x| f(x, pt),
            move |a| {
                if p == 0.0 {
                    return Ok(Tensor::zeros(&a.grad.shape()));
                }
                if p == 1.0 {
                    return Ok(a.grad.clone());
                }
                a.grad.mul(&a.inputs[0].powf(p - 1.0).mul_scalar(p))
            },
        )
    }

    /// tanh x ([`Float::tanh_fast`]: in `f64` through the exponential, within 2.2 ulp of libm;
    /// in `f32` a vectorized branch-free kernel within 1.5 ulp of the exact value).
    pub fn tanh(&self) -> Tensor<T> {
        self.map_op_vectorized("tanh", T::tanh_fast, |a| {
            a.grad.mul(&a.output.mul(a.output)?.neg().add_scalar(1.0))
        })
    }

    /// The logistic sigmoid 1/(1 + e⁻ˣ).
    ///
    /// Stable without a branch: for x → −∞, e⁻ˣ overflows to +∞ and the quotient to 0; no
    /// cancellation anywhere (within 2.5 ulp in `f32`, [`Float::exp_fast`] being within 1).
    pub fn sigmoid(&self) -> Tensor<T> {
        let sig = |x: T| T::one() / (T::one() + (-x).exp_fast());
        self.map_op_vectorized("sigmoid", sig, |a| {
            a.grad.mul(&a.output.mul(&a.output.neg().add_scalar(1.0))?)
        })
    }

    /// max(x, 0).
    pub fn relu(&self) -> Tensor<T> {
        self.map_op(
            "relu",
            |x| if x > T::zero() { x } else { T::zero() },
            |a| {
                let mask =
                    a.inputs[0].data().mapv(|x| if x > T::zero() { T::one() } else { T::zero() });
                a.grad.mul(&Tensor::constant(mask))
            },
        )
    }

    /// |x|.
    pub fn abs(&self) -> Tensor<T> {
        self.map_op("abs", T::abs, |a| {
            let sign = a.inputs[0].data().mapv(|x| {
                if x > T::zero() {
                    T::one()
                } else if x < T::zero() {
                    -T::one()
                } else {
                    T::zero()
                }
            });
            a.grad.mul(&Tensor::constant(sign))
        })
    }

    /// The error function erf x.
    pub fn erf(&self) -> Tensor<T> {
        self.map_op("erf", T::erf, |a| {
            let x = &a.inputs[0];
            let slope = x.mul(x)?.neg().exp().mul_scalar(std::f64::consts::FRAC_2_SQRT_PI);
            a.grad.mul(&slope)
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::check::{gradcheck, gradgradcheck};
    use crate::ops::testing::{shape, uniform};
    use crate::{Result, Tensor};

    /// Values in [lo, hi) pushed at least 0.05 away from 0 (the kink of relu and abs).
    fn away_from_zero(s: &[usize], seed: u64) -> Tensor<f64> {
        let x = uniform(s, -2.0, 2.0, seed);
        Tensor::param(
            x.data().mapv(|v| if v.abs() < 0.05 { v + 0.1 * v.signum() + 0.05 } else { v }),
        )
    }

    type Op = fn(&Tensor<f64>) -> Result<Tensor<f64>>;
    const SMOOTH: [(&str, Op); 9] = [
        ("exp", |x| Ok(x.exp())),
        ("tanh", |x| Ok(x.tanh())),
        ("sigmoid", |x| Ok(x.sigmoid())),
        ("erf", |x| Ok(x.erf())),
        ("gelu", |x| x.gelu()),
        ("gelu_tanh", |x| x.gelu_tanh()),
        ("powf(3)", |x| Ok(x.powf(3.0))),
        ("relu", |x| Ok(x.relu())),
        ("abs", |x| Ok(x.abs())),
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        #[test]
        fn unary_ops_pass_gradcheck_and_gradgradcheck(s in shape(3, 4), seed: u64) {
            let x = away_from_zero(&s, seed);
            for (name, f) in SMOOTH {
                gradcheck(|t| f(&t[0]), &[x.clone()]).map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
                gradgradcheck(|t| f(&t[0]), &[x.clone()]).map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
            }
            // positive domain
            let p = uniform(&s, 0.5, 2.0, seed ^ 9);
            for (name, f) in [("log", (|x| Ok(x.log())) as Op), ("sqrt", |x| Ok(x.sqrt())), ("powf(-0.5)", |x| Ok(x.powf(-0.5))), ("powf(2.5)", |x| Ok(x.powf(2.5)))] {
                gradcheck(|t| f(&t[0]), &[p.clone()]).map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
                gradgradcheck(|t| f(&t[0]), &[p.clone()]).map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
            }
        }
    }

    #[test]
    fn gelu_matches_known_values() {
        // GELU(1) = Φ(1) = 0.8413447460685429; GELU(−1) = −(1 − Φ(1))
        let x = Tensor::<f64>::from_vec(vec![1.0, -1.0, 0.0], &[3]).unwrap();
        let y = x.gelu().unwrap().to_vec();
        assert!((y[0] - 0.841_344_746_068_542_9).abs() < 1e-15);
        assert!((y[1] + 0.158_655_253_931_457_05).abs() < 1e-15);
        assert_eq!(y[2], 0.0);
        let yt = x.gelu_tanh().unwrap().to_vec();
        assert!((yt[0] - 0.841_191_990_607_477_2).abs() < 1e-12);
    }

    #[test]
    fn f32_tanh_exp_and_sigmoid_ops_are_within_their_ulp_bounds() {
        use crate::simd_math::ulp_error;
        let xs: Vec<f32> = (0..=400_000).map(|i| (-80.0 + 160.0 * i as f64 / 4e5) as f32).collect();
        let x = Tensor::<f32>::from_vec(xs.clone(), &[xs.len()]).unwrap();
        let sigmoid = |v: f64| 1.0 / (1.0 + (-v).exp());
        for (name, y, exact, bound) in [
            ("tanh", x.tanh(), f64::tanh as fn(f64) -> f64, 1.5),
            ("exp", x.exp(), f64::exp, 1.0),
            ("sigmoid", x.sigmoid(), sigmoid, 2.5),
        ] {
            let worst = xs
                .iter()
                .zip(y.to_vec())
                .map(|(&v, y)| ulp_error(y, exact(v as f64)))
                .fold(0.0, f64::max);
            assert!(worst <= bound, "{name}: {worst} ulp");
        }
    }

    #[test]
    fn sigmoid_and_exp_are_finite_at_large_inputs() {
        let x = Tensor::<f32>::from_vec(vec![-1e4, 1e4], &[2]).unwrap();
        assert_eq!(x.sigmoid().to_vec(), vec![0.0, 1.0]);
        assert!(x.tanh().to_vec().iter().all(|v| v.is_finite()));
    }
}
