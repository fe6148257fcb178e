//! Gradient norms and global-norm gradient clipping (`torch.nn.utils.clip_grad_norm_`).
//!
//! The global norm is ‖g‖ = √(Σ_p Σ_i g_{p,i}²) over every parameter that has a gradient. Clipping
//! to `max_norm` multiplies every gradient by `max_norm / (‖g‖ + 1e-6)` when that factor is
//! below 1, and leaves them alone otherwise (PyTorch's rule). Sums are accumulated in `f64`
//! (PyTorch accumulates in the gradient's type), so the reported norm of `f32` gradients is more
//! accurate than PyTorch's by a few ulps.

use saturn_tensor::{Data, Float, Tensor};

use crate::error::{OptimError, Result};

/// Σ xᵢ² of an array, accumulated in `f64` ([`saturn_tensor::flat::sum_of_squares_of`]). The
/// one place this crate computes a squared norm.
pub fn sum_of_squares<T: Float>(a: &Data<T>) -> f64 {
    saturn_tensor::flat::sum_of_squares_of(a.iter())
}

/// The global ℓ2 norm of the gradients of `params` (parameters without a gradient count as 0).
pub fn grad_norm<T: Float>(params: &[(String, Tensor<T>)]) -> f64 {
    params
        .iter()
        .filter_map(|(_, p)| p.grad())
        .map(|g| sum_of_squares(&g.data()))
        .sum::<f64>()
        .sqrt()
}

/// Clips the gradients of `params` to global norm `max_norm` and returns the norm **before**
/// clipping (the quantity to log: gradient-norm spikes are how Post-LN training blows up).
///
/// `max_norm` must be > 0 (`f64::INFINITY` only measures). When the norm is not finite (a NaN or
/// infinite gradient) the gradients are left as they are and the non-finite norm is returned,
/// so the caller can skip the step; PyTorch would scale every gradient to NaN instead.
///
/// Each clipped gradient is replaced by a new tensor, never scaled in place, since one
/// gradient tensor may be shared by several parameters.
pub fn clip_grad_norm<T: Float>(params: &[(String, Tensor<T>)], max_norm: f64) -> Result<f64> {
    if max_norm.is_nan() || max_norm <= 0.0 {
        return Err(OptimError::InvalidHyperParameter {
            owner: "clip_grad_norm".into(),
            name: "max_norm",
            value: max_norm,
            reason: "must be > 0 (infinity to only measure the norm)",
        });
    }
    let total = grad_norm(params);
    if !total.is_finite() {
        return Ok(total);
    }
    let coef = max_norm / (total + 1e-6);
    if coef < 1.0 {
        let c = T::cast(coef);
        for (_, p) in params {
            if let Some(g) = p.grad() {
                p.set_grad(Some(Tensor::constant(g.data().mapv(|x| x * c))));
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    fn params_with_grads(grads: &[Option<Vec<f64>>]) -> Vec<(String, Tensor<f64>)> {
        grads
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let n = g.as_ref().map_or(1, Vec::len);
                let p = Tensor::param_from_vec(vec![0.0; n], &[n]).unwrap();
                p.set_grad(g.as_ref().map(|g| Tensor::from_vec(g.clone(), &[n]).unwrap()));
                (format!("p{i}"), p)
            })
            .collect()
    }

    #[test]
    fn clipping_reports_the_pre_clip_norm_and_rescales_to_max_norm() {
        // ‖(3, 4, 12)‖ = 13 over two tensors; the third parameter has no gradient.
        let params = params_with_grads(&[Some(vec![3.0, 4.0]), Some(vec![12.0]), None]);
        let norm = clip_grad_norm(&params, 1.0).unwrap();
        assert_relative_eq!(norm, 13.0, max_relative = 1e-15);
        assert_relative_eq!(grad_norm(&params), 13.0 / (13.0 + 1e-6), max_relative = 1e-12);
        let g0 = params[0].1.grad().unwrap().to_vec();
        assert_relative_eq!(g0[0] / g0[1], 0.75, max_relative = 1e-14);
        assert!(params[2].1.grad().is_none());
    }

    #[test]
    fn gradients_below_max_norm_are_left_untouched() {
        let params = params_with_grads(&[Some(vec![0.3, -0.4])]);
        let before = params[0].1.grad().unwrap();
        assert_relative_eq!(clip_grad_norm(&params, 1.0).unwrap(), 0.5, max_relative = 1e-15);
        assert_eq!(params[0].1.grad().unwrap().id(), before.id());
        assert_eq!(clip_grad_norm(&params, f64::INFINITY).unwrap(), 0.5);
    }

    #[test]
    fn a_gradient_shared_by_two_parameters_is_scaled_once_for_each() {
        let g = Tensor::<f64>::from_vec(vec![3.0, 4.0], &[2]).unwrap();
        let a = Tensor::<f64>::param_from_vec(vec![0.0; 2], &[2]).unwrap();
        let b = Tensor::<f64>::param_from_vec(vec![0.0; 2], &[2]).unwrap();
        a.set_grad(Some(g.clone()));
        b.set_grad(Some(g.clone()));
        let params = vec![("a".to_string(), a.clone()), ("b".to_string(), b.clone())];
        let norm = clip_grad_norm(&params, 1.0).unwrap();
        assert_relative_eq!(norm, 50f64.sqrt(), max_relative = 1e-15);
        assert_eq!(a.grad().unwrap().to_vec(), b.grad().unwrap().to_vec());
        assert_eq!(g.to_vec(), vec![3.0, 4.0], "the shared tensor itself is not modified");
    }

    #[test]
    fn non_finite_norms_are_reported_and_leave_gradients_alone() {
        let params = params_with_grads(&[Some(vec![f64::INFINITY, 1.0])]);
        assert_eq!(clip_grad_norm(&params, 1.0).unwrap(), f64::INFINITY);
        assert_eq!(params[0].1.grad().unwrap().to_vec()[1], 1.0);
        let params = params_with_grads(&[Some(vec![f64::NAN])]);
        assert!(clip_grad_norm(&params, 1.0).unwrap().is_nan());
    }

    #[test]
    fn invalid_max_norm_is_an_error() {
        let params = params_with_grads(&[Some(vec![1.0])]);
        for bad in [0.0, -1.0, f64::NAN] {
            assert!(matches!(
                clip_grad_norm(&params, bad),
                Err(OptimError::InvalidHyperParameter { name: "max_norm", .. })
            ));
        }
    }
}
