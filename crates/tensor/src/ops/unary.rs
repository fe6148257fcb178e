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
//! | gelu | x·Φ(x) = ½x(1 + erf(x/√2)) (Hendrycks & Gimpel 2016) | composite |
//! | gelu_tanh | ½x(1 + tanh(√(2/π)(x + 0.044715x³))) | composite |
//!
//! relu and abs have a piecewise-constant derivative (0 at the kink, as PyTorch); their second
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

    /// eˣ.
    pub fn exp(&self) -> Tensor<T> {
        self.map_op("exp", T::exp, |a| a.grad.mul(a.output))
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
    pub fn powf(&self, p: f64) -> Tensor<T> {
        let pt = T::cast(p);
        self.map_op(
            "powf",
            move |x| x.powf(pt),
            move |a| {
                if p == 0.0 {
                    return Ok(Tensor::zeros(&a.grad.shape()));
                }
                let slope = if p == 1.0 {
                    Tensor::ones(&a.grad.shape())
                } else {
                    a.inputs[0].powf(p - 1.0).mul_scalar(p)
                };
                a.grad.mul(&slope)
            },
        )
    }

    /// tanh x.
    pub fn tanh(&self) -> Tensor<T> {
        self.map_op("tanh", T::tanh, |a| a.grad.mul(&a.output.mul(a.output)?.neg().add_scalar(1.0)))
    }

    /// The logistic sigmoid 1/(1 + e⁻ˣ).
    pub fn sigmoid(&self) -> Tensor<T> {
        let sig = |x: T| {
            // stable on both sides: never exponentiates a large positive number
            if x >= T::zero() {
                T::one() / (T::one() + (-x).exp())
            } else {
                let e = x.exp();
                e / (T::one() + e)
            }
        };
        self.map_op("sigmoid", sig, |a| a.grad.mul(&a.output.mul(&a.output.neg().add_scalar(1.0))?))
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

    /// GELU, exact form: x·Φ(x) = ½·x·(1 + erf(x/√2)) (BERT, PyTorch's default).
    pub fn gelu(&self) -> crate::Result<Tensor<T>> {
        let phi =
            self.mul_scalar(std::f64::consts::FRAC_1_SQRT_2).erf().add_scalar(1.0).mul_scalar(0.5);
        self.mul(&phi)
    }

    /// GELU, tanh approximation: ½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (GPT-2).
    pub fn gelu_tanh(&self) -> crate::Result<Tensor<T>> {
        let k = (2.0 / std::f64::consts::PI).sqrt();
        let inner = self.add(&self.powf(3.0).mul_scalar(0.044715))?.mul_scalar(k);
        self.mul(&inner.tanh().add_scalar(1.0).mul_scalar(0.5))
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
    fn sigmoid_and_exp_are_finite_at_large_inputs() {
        let x = Tensor::<f32>::from_vec(vec![-1e4, 1e4], &[2]).unwrap();
        assert_eq!(x.sigmoid().to_vec(), vec![0.0, 1.0]);
        assert!(x.tanh().to_vec().iter().all(|v| v.is_finite()));
    }
}
