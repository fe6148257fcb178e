//! NormSGD: SGD along the normalized gradient g/‖g‖ of each parameter tensor, the optimizer of
//! the norm-growth reference code (Merrill et al. 2021; `src/norm_sgd.py` of
//! viking-sudo-rm/norm-growth, used for the second training phase of `finetune_trans.py`).
//!
//! It is `torch.optim.SGD` (see [`crate::sgd`]) with each tensor's gradient first replaced by
//! its direction:
//!
//! ```text
//! d ← g / ‖g‖₂                  (Frobenius norm of this tensor's gradient)
//! d ← d + λ·θ                   (if λ ≠ 0)
//! momentum, dampening, Nesterov and θ ← θ − γ·d exactly as in SGD
//! ```
//!
//! Each step then moves every tensor by γ (without momentum or decay) whatever its gradient's
//! size, so ‖θ‖ grows like √t on a scale-invariant loss, as under Adam.
//!
//! One deviation from the reference: a tensor whose gradient is exactly zero gets d = 0 (no
//! move) where the reference divides 0 by 0 and writes NaN into the parameter.

use saturn_tensor::{Float, Tensor};

use crate::clip::sum_of_squares;
use crate::error::Result;
use crate::optimizer::{Optimizer, OptimizerKind, StepStats};
use crate::param_set::{ParamSet, owns_param_set};
use crate::sgd::{SgdConfig, sgd_update};

/// NormSGD over named parameters (see the module docs for the update).
pub struct NormSgd<T: Float> {
    config: SgdConfig,
    params: ParamSet<T>,
}

impl<T: Float> NormSgd<T> {
    /// NormSGD with SGD's hyper-parameters (validated).
    pub fn new(params: Vec<(String, Tensor<T>)>, config: SgdConfig) -> Result<Self> {
        let kind = OptimizerKind::NormSgd;
        config.validate(kind.as_str())?;
        let params =
            ParamSet::new(kind, config.buffers(), params, config.weight_decay, &config.groups)?;
        Ok(NormSgd { config, params })
    }
}

owns_param_set!(NormSgd, SgdConfig);

impl<T: Float> Optimizer<T> for NormSgd<T> {
    fn step(&mut self, lr: f64) -> Result<StepStats> {
        let config = &self.config;
        self.params.step(lr, |s, theta| {
            let norm = T::cast(sum_of_squares(s.grad).sqrt());
            // A zero gradient has no direction: divide by 1, i.e. step along 0.
            let divisor = if norm > T::zero() { norm } else { T::one() };
            sgd_update(config, s, theta, divisor)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{named, set_grads, values};
    use approx::assert_relative_eq;

    #[test]
    fn norm_sgd_three_steps_match_the_hand_derivation() {
        // θ₀ = (3, 4), γ = 0.5, no momentum or decay: θ ← θ − 0.5·g/‖g‖.
        // t=1: g = (3, 4),     ‖g‖ = 5,    d = (0.6, 0.8): θ = (2.7, 3.6)
        // t=2: g = (0, −2),    ‖g‖ = 2,    d = (0, −1):    θ = (2.7, 4.1)
        // t=3: g = (1e−3, 0),  ‖g‖ = 1e−3, d = (1, 0):     θ = (2.2, 4.1)
        let (params, p) = named("w", &[3.0, 4.0], &[2]);
        let mut opt = NormSgd::new(params, SgdConfig::default()).unwrap();
        let grads: [&[f64]; 3] = [&[3.0, 4.0], &[0.0, -2.0], &[1e-3, 0.0]];
        let expected = [[2.7, 3.6], [2.7, 4.1], [2.2, 4.1]];
        for (g, want) in grads.into_iter().zip(expected) {
            set_grads(&opt, &[g]);
            let stats = opt.step(0.5).unwrap();
            assert_relative_eq!(stats.update_norm, 0.5, max_relative = 1e-14);
            let got = values(&p);
            assert_relative_eq!(got[0], want[0], max_relative = 1e-14);
            assert_relative_eq!(got[1], want[1], max_relative = 1e-14);
        }
    }

    #[test]
    fn each_tensor_is_normalized_separately() {
        let (mut params, a) = named("a", &[0.0, 0.0], &[2]);
        let (more, b) = named("b", &[0.0], &[1]);
        params.extend(more);
        let mut opt = NormSgd::new(params, SgdConfig::default()).unwrap();
        set_grads(&opt, &[&[1e-6, 0.0], &[-1e6]]);
        opt.step(1.0).unwrap();
        assert_relative_eq!(values(&a)[0], -1.0, max_relative = 1e-14);
        assert_relative_eq!(values(&b)[0], 1.0, max_relative = 1e-14);
    }

    #[test]
    fn a_zero_gradient_does_not_move_the_parameter() {
        let (params, p) = named("w", &[1.0, 2.0], &[2]);
        let config = SgdConfig { momentum: 0.9, ..SgdConfig::default() };
        let mut opt = NormSgd::new(params, config).unwrap();
        set_grads(&opt, &[&[0.0, 0.0]]);
        opt.step(0.1).unwrap();
        assert_eq!(values(&p), vec![1.0, 2.0]);
    }

    #[test]
    fn momentum_is_applied_to_the_normalized_gradient() {
        // μ = 0.5, γ = 1, g = (0, 10) twice: d = (0, 1); b₁ = d, θ₁ = −1;
        // b₂ = 0.5·1 + 1 = 1.5, θ₂ = −2.5.
        let (params, p) = named("w", &[0.0, 0.0], &[2]);
        let config = SgdConfig { momentum: 0.5, ..SgdConfig::default() };
        let mut opt = NormSgd::new(params, config).unwrap();
        for _ in 0..2 {
            set_grads(&opt, &[&[0.0, 10.0]]);
            opt.step(1.0).unwrap();
        }
        assert_relative_eq!(values(&p)[1], -2.5, max_relative = 1e-15);
    }
}
