//! Numerical checks of derivatives, in `f64`: [`gradcheck`] (first order) and [`gradgradcheck`]
//! (second order, Hessian-vector products).
//!
//! Both reduce a tensor-valued function f to the scalar s(x) = ⟨f(x), r⟩ with a fixed random r
//! (a random projection catches a wrong Jacobian with probability one), then compare
//! - `gradcheck`: ∇s from the backward rules against central differences
//!   (s(x + εeⱼ) − s(x − εeⱼ)) / 2ε, for every element j of every input;
//! - `gradgradcheck`: the exact H·v from double backward ([`hvp`]) against central differences
//!   of the gradient, (∇s(x + εv) − ∇s(x − εv)) / 2ε, for a random direction v.
//!
//! An entry passes when |analytic − numeric| ≤ atol + rtol·max(|analytic|, |numeric|).

use rand::{RngExt, SeedableRng};

use crate::{Result, Tensor, TensorError, grad, hvp, no_grad};

/// Step sizes, tolerances and the seed of the random projection and direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckOptions {
    /// Finite-difference step.
    pub eps: f64,
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Seed of the random projection r (and of the direction v for `gradgradcheck`).
    pub seed: u64,
}

impl CheckOptions {
    /// Defaults for first-order checks: ε = 1e-6, rtol = 1e-5, atol = 1e-7.
    pub const FIRST_ORDER: CheckOptions =
        CheckOptions { eps: 1e-6, rtol: 1e-5, atol: 1e-7, seed: 0 };
    /// Defaults for second-order checks: ε = 1e-5, rtol = 1e-4, atol = 1e-6.
    pub const SECOND_ORDER: CheckOptions =
        CheckOptions { eps: 1e-5, rtol: 1e-4, atol: 1e-6, seed: 0 };
}

/// Why a check failed: the function itself returned an error, or a derivative disagreed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CheckError {
    /// Differentiating the function failed.
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// An analytic derivative disagrees with its finite-difference estimate.
    #[error(
        "{check}: input {input}, element {element}: analytic {analytic:e} vs numeric {numeric:e} (tolerance {tolerance:e})"
    )]
    Mismatch {
        check: &'static str,
        input: usize,
        element: usize,
        analytic: f64,
        numeric: f64,
        tolerance: f64,
    },
}

/// Checks the first derivatives of `f` at `inputs` with [`CheckOptions::FIRST_ORDER`].
pub fn gradcheck<F, E>(f: F, inputs: &[Tensor<f64>]) -> Result<(), CheckError>
where
    F: Fn(&[Tensor<f64>]) -> Result<Tensor<f64>, E>,
    E: std::fmt::Display,
{
    gradcheck_with(f, inputs, CheckOptions::FIRST_ORDER)
}

/// Checks the first derivatives of `f` at `inputs` against central differences.
pub fn gradcheck_with<F, E>(
    f: F,
    inputs: &[Tensor<f64>],
    opts: CheckOptions,
) -> Result<(), CheckError>
where
    F: Fn(&[Tensor<f64>]) -> Result<Tensor<f64>, E>,
    E: std::fmt::Display,
{
    let xs: Vec<Tensor<f64>> = inputs.iter().map(Tensor::detach_param).collect();
    let probe = Projection::new(&f, &xs, opts.seed)?;
    let analytic = probe.gradient(&xs, false)?;
    for (i, x) in xs.iter().enumerate() {
        let base = x.to_vec();
        let shape = x.shape();
        let a = analytic[i].to_vec();
        for j in 0..base.len() {
            let at = |delta: f64| -> Result<f64> {
                let mut moved = base.clone();
                moved[j] += delta;
                let mut point = xs.clone();
                point[i] = Tensor::from_vec(moved, &shape)?;
                no_grad(|| probe.value(&point))
            };
            let numeric = (at(opts.eps)? - at(-opts.eps)?) / (2.0 * opts.eps);
            compare("gradcheck", i, j, a[j], numeric, opts)?;
        }
    }
    Ok(())
}

/// Checks the second derivatives of `f` at `inputs` with [`CheckOptions::SECOND_ORDER`].
pub fn gradgradcheck<F, E>(f: F, inputs: &[Tensor<f64>]) -> Result<(), CheckError>
where
    F: Fn(&[Tensor<f64>]) -> Result<Tensor<f64>, E>,
    E: std::fmt::Display,
{
    gradgradcheck_with(f, inputs, CheckOptions::SECOND_ORDER)
}

/// Checks the exact Hessian-vector product of s(x) = ⟨f(x), r⟩ against central differences of
/// its gradient along a random direction.
pub fn gradgradcheck_with<F, E>(
    f: F,
    inputs: &[Tensor<f64>],
    opts: CheckOptions,
) -> Result<(), CheckError>
where
    F: Fn(&[Tensor<f64>]) -> Result<Tensor<f64>, E>,
    E: std::fmt::Display,
{
    let xs: Vec<Tensor<f64>> = inputs.iter().map(Tensor::detach_param).collect();
    let probe = Projection::new(&f, &xs, opts.seed)?;
    let mut rng = rand_pcg::Pcg64::seed_from_u64(opts.seed ^ 0x5eed_0fd1);
    let v: Vec<Tensor<f64>> = xs
        .iter()
        .map(|x| {
            Tensor::from_vec(
                (0..x.len()).map(|_| rng.random_range(-1.0..1.0)).collect(),
                &x.shape(),
            )
        })
        .collect::<Result<_>>()?;
    let s = probe.tracked_value(&xs)?;
    let analytic = if s.requires_grad() {
        hvp(&s, &xs, &v)?
    } else {
        xs.iter().map(|x| Tensor::zeros(&x.shape())).collect()
    };
    let shifted = |sign: f64| -> Result<Vec<Vec<f64>>> {
        let point: Vec<Tensor<f64>> = xs
            .iter()
            .zip(&v)
            .map(|(x, vi)| {
                let moved = x
                    .to_vec()
                    .iter()
                    .zip(vi.to_vec())
                    .map(|(a, b)| a + sign * opts.eps * b)
                    .collect();
                Tensor::param_from_vec(moved, &x.shape())
            })
            .collect::<Result<_>>()?;
        Ok(probe.gradient(&point, false)?.iter().map(Tensor::to_vec).collect())
    };
    let (plus, minus) = (shifted(1.0)?, shifted(-1.0)?);
    for (i, a) in analytic.iter().enumerate() {
        for (j, &aj) in a.to_vec().iter().enumerate() {
            let numeric = (plus[i][j] - minus[i][j]) / (2.0 * opts.eps);
            compare("gradgradcheck", i, j, aj, numeric, opts)?;
        }
    }
    Ok(())
}

/// Checks the first derivatives of `f` with respect to existing leaves (e.g. a model's
/// parameters), perturbing each leaf in place with `set_data` and restoring it afterwards.
/// `f` recomputes its output from the current leaf values.
pub fn gradcheck_leaves<F, E>(
    f: F,
    leaves: &[Tensor<f64>],
    opts: CheckOptions,
) -> Result<(), CheckError>
where
    F: Fn() -> Result<Tensor<f64>, E>,
    E: std::fmt::Display,
{
    let g = |_: &[Tensor<f64>]| f();
    let probe = Projection::new(&g, &[], opts.seed)?;
    let analytic = probe.gradient_wrt(&[], leaves)?;
    for (i, leaf) in leaves.iter().enumerate() {
        let original = leaf.data();
        let base = leaf.to_vec();
        let a = analytic[i].to_vec();
        for j in 0..base.len() {
            let at = |delta: f64| -> Result<f64> {
                let mut moved = base.clone();
                moved[j] += delta;
                leaf.set_data(Tensor::from_vec(moved, &leaf.shape())?.data())?;
                let value = no_grad(|| probe.value(&[]));
                leaf.set_data(original.clone())?;
                value
            };
            let numeric = (at(opts.eps)? - at(-opts.eps)?) / (2.0 * opts.eps);
            compare("gradcheck_leaves", i, j, a[j], numeric, opts)?;
        }
    }
    Ok(())
}

fn compare(
    check: &'static str,
    input: usize,
    element: usize,
    analytic: f64,
    numeric: f64,
    opts: CheckOptions,
) -> Result<(), CheckError> {
    let tolerance = opts.atol + opts.rtol * analytic.abs().max(numeric.abs());
    if (analytic - numeric).abs() <= tolerance {
        Ok(())
    } else {
        Err(CheckError::Mismatch { check, input, element, analytic, numeric, tolerance })
    }
}

fn function_failed(e: impl std::fmt::Display) -> TensorError {
    TensorError::invalid("gradcheck", format!("the checked function failed: {e}"))
}

/// s(x) = ⟨f(x), r⟩ with r drawn once, uniform in [−1, 1], from the seed.
struct Projection<'f, F> {
    f: &'f F,
    r: Tensor<f64>,
}

impl<'f, F, E> Projection<'f, F>
where
    F: Fn(&[Tensor<f64>]) -> Result<Tensor<f64>, E>,
    E: std::fmt::Display,
{
    fn new(f: &'f F, xs: &[Tensor<f64>], seed: u64) -> Result<Self> {
        let shape = no_grad(|| f(xs)).map_err(function_failed)?.shape();
        let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
        let n = shape.iter().product();
        let r = Tensor::from_vec((0..n).map(|_| rng.random_range(-1.0..1.0)).collect(), &shape)?;
        Ok(Projection { f, r })
    }

    fn tracked_value(&self, xs: &[Tensor<f64>]) -> Result<Tensor<f64>> {
        let out = (self.f)(xs).map_err(function_failed)?;
        if out.shape() != self.r.shape() {
            return Err(TensorError::invalid(
                "gradcheck",
                "the function's output shape changed between calls",
            ));
        }
        Ok(out.mul(&self.r)?.sum_all())
    }

    fn value(&self, xs: &[Tensor<f64>]) -> Result<f64> {
        self.tracked_value(xs)?.item()
    }

    fn gradient(&self, xs: &[Tensor<f64>], create_graph: bool) -> Result<Vec<Tensor<f64>>> {
        let s = self.tracked_value(xs)?;
        if !s.requires_grad() {
            return Ok(xs.iter().map(|x| Tensor::zeros(&x.shape())).collect());
        }
        grad(&[s], xs, create_graph)
    }

    /// ∇s with respect to `wrt` (leaves the function reads), evaluated at inputs `xs`.
    fn gradient_wrt(&self, xs: &[Tensor<f64>], wrt: &[Tensor<f64>]) -> Result<Vec<Tensor<f64>>> {
        let s = self.tracked_value(xs)?;
        if !s.requires_grad() {
            return Ok(wrt.iter().map(|x| Tensor::zeros(&x.shape())).collect());
        }
        grad(&[s], wrt, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_backward_rule_is_caught() {
        // sum_to is correct; a function whose "gradient" we corrupt through a detach is not.
        let x = Tensor::<f64>::param_from_vec(vec![0.5, -1.5, 2.0], &[3]).unwrap();
        let wrong = |t: &[Tensor<f64>]| -> Result<Tensor<f64>> {
            // x·detach(x): the true derivative of x² is 2x, backward only sees x.
            t[0].mul(&t[0].detach())
        };
        assert!(matches!(gradcheck(wrong, &[x.clone()]), Err(CheckError::Mismatch { .. })));
        assert!(gradcheck(|t| t[0].mul(&t[0]), &[x]).is_ok());
    }

    #[test]
    fn gradcheck_leaves_perturbs_in_place_and_restores() {
        let w = Tensor::<f64>::param_from_vec(vec![0.3, -0.8], &[2]).unwrap();
        assert!(
            gradcheck_leaves(|| w.tanh().mul(&w), &[w.clone()], CheckOptions::FIRST_ORDER).is_ok()
        );
        assert_eq!(w.to_vec(), vec![0.3, -0.8]);
        let wrong = || w.mul(&w.detach());
        assert!(gradcheck_leaves(wrong, &[w.clone()], CheckOptions::FIRST_ORDER).is_err());
    }

    #[test]
    fn a_wrong_second_derivative_is_caught() {
        // exp(x) with its gradient computed from a detached copy has zero second derivative.
        let x = Tensor::<f64>::param_from_vec(vec![0.1, 0.7], &[2]).unwrap();
        let wrong = |t: &[Tensor<f64>]| t[0].exp().detach().mul(&t[0]);
        assert!(gradgradcheck(wrong, &[x.clone()]).is_err());
        assert!(gradgradcheck(|t| Ok::<_, crate::TensorError>(t[0].exp()), &[x]).is_ok());
    }
}
