//! Stochastic gradient descent with momentum, dampening, Nesterov momentum and (L2) weight
//! decay, following `torch.optim.SGD`.
//!
//! For a parameter θ with gradient g, learning rate γ, weight decay λ, momentum μ and
//! dampening τ:
//!
//! ```text
//! g ← g + λ·θ                                  (if λ ≠ 0)
//! if μ ≠ 0:
//!     b ← g                 on the first update (no dampening)
//!     b ← μ·b + (1 − τ)·g   afterwards          (momentum_buffer)
//!     g ← g + μ·b  if Nesterov,  else g ← b
//! θ ← θ − γ·g
//! ```
//!
//! On a scale-invariant loss (‖∇L(cθ)‖ = ‖∇L(θ)‖/c) plain SGD's steps shrink as θ grows, so
//! ‖θ‖⁴ grows ∝ t and ‖θ‖ ∝ t^¼ (Merrill et al. 2021, §4), against √t under Adam.

use ndarray::{ArrayD, Zip};
use saturn_tensor::{DataMut, Float, Tensor};
use serde::{Deserialize, Serialize};

use crate::adam::is_empty;
use crate::error::{OptimError, Result, check_non_negative};
use crate::groups::ParamGroups;
use crate::optimizer::{Optimizer, OptimizerKind, StepStats};
use crate::param_set::{ParamSet, ParamStep, owns_param_set};

/// Hyper-parameters of SGD (and of [`NormSgd`](crate::NormSgd), which shares them).
/// Defaults are `torch.optim.SGD`'s: no momentum, no dampening, no Nesterov, no weight decay.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SgdConfig {
    /// μ ≥ 0.
    #[serde(default)]
    pub momentum: f64,
    /// τ: the momentum buffer takes (1 − τ)·g. Finite.
    #[serde(default)]
    pub dampening: f64,
    /// Nesterov momentum (needs μ > 0 and τ = 0, as in PyTorch).
    #[serde(default)]
    pub nesterov: bool,
    /// λ ≥ 0, added to the gradient as λ·θ.
    #[serde(default)]
    pub weight_decay: f64,
    /// Per-parameter overrides (weight decay, lr scale), selected by name.
    #[serde(default, skip_serializing_if = "is_empty")]
    pub groups: ParamGroups,
}

impl SgdConfig {
    /// Checks every hyper-parameter and the group rules.
    pub fn validate(&self, owner: &str) -> Result<()> {
        check_non_negative(owner, "momentum", self.momentum)?;
        check_non_negative(owner, "weight_decay", self.weight_decay)?;
        if !self.dampening.is_finite() {
            return Err(OptimError::InvalidHyperParameter {
                owner: owner.to_string(),
                name: "dampening",
                value: self.dampening,
                reason: "must be finite",
            });
        }
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(OptimError::InvalidConfig(format!(
                "{owner}: Nesterov momentum needs momentum > 0 and dampening = 0 \
                 (got momentum {}, dampening {})",
                self.momentum, self.dampening
            )));
        }
        self.groups.validate()
    }

    /// The buffers a parameter keeps: a momentum buffer only when μ ≠ 0.
    pub(crate) fn buffers(&self) -> &'static [&'static str] {
        if self.momentum != 0.0 { &["momentum_buffer"] } else { &[] }
    }
}

/// SGD over named parameters (see the module docs for the update).
pub struct Sgd<T: Float> {
    config: SgdConfig,
    params: ParamSet<T>,
}

impl<T: Float> Sgd<T> {
    /// SGD with the given hyper-parameters (validated).
    pub fn new(params: Vec<(String, Tensor<T>)>, config: SgdConfig) -> Result<Self> {
        let kind = OptimizerKind::Sgd;
        config.validate(kind.as_str())?;
        let params =
            ParamSet::new(kind, config.buffers(), params, config.weight_decay, &config.groups)?;
        Ok(Sgd { config, params })
    }
}

owns_param_set!(Sgd, SgdConfig);

impl<T: Float> Optimizer<T> for Sgd<T> {
    fn step(&mut self, lr: f64) -> Result<StepStats> {
        let config = &self.config;
        self.params.step(lr, |s, theta| sgd_update(config, s, theta, T::one()))
    }
}

/// One SGD update of one parameter with gradient `grad / grad_divisor` (1 for SGD, ‖g‖ for
/// NormSGD); returns Σ(Δθ)².
pub(crate) fn sgd_update<T: Float>(
    config: &SgdConfig,
    s: ParamStep<'_, T>,
    theta: &mut DataMut<'_, T>,
    grad_divisor: T,
) -> f64 {
    let neg_lr = T::cast(-s.lr);
    let wd = (s.weight_decay != 0.0).then(|| T::cast(s.weight_decay));
    let normalize = grad_divisor != T::one();
    let direction = |g: T, theta: T| {
        let g = if normalize { g / grad_divisor } else { g };
        match wd {
            Some(wd) => g + wd * theta,
            None => g,
        }
    };
    let mut sum_sq = 0.0;
    let mut apply = |p: &mut T, d: T| {
        let new = *p + neg_lr * d;
        let diff = new.as_f64() - p.as_f64();
        sum_sq += diff * diff;
        *p = new;
    };
    if config.momentum == 0.0 {
        Zip::from(theta.view_mut()).and(s.grad).for_each(|p, &g| {
            let d = direction(g, *p);
            apply(p, d);
        });
        return sum_sq;
    }
    let mu = T::cast(config.momentum);
    let one_minus_dampening = T::cast(1.0 - config.dampening);
    let first = s.buffers.is_empty();
    if first {
        *s.buffers = vec![ArrayD::zeros(theta.raw_dim())];
    }
    let nesterov = config.nesterov;
    Zip::from(theta.view_mut()).and(s.grad).and(&mut s.buffers[0]).for_each(|p, &g, b| {
        let d = direction(g, *p);
        *b = if first { d } else { mu * *b + one_minus_dampening * d };
        let d = if nesterov { d + mu * *b } else { *b };
        apply(p, d);
    });
    sum_sq
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::GroupOptions;
    use crate::testing::{named, set_grads, values};
    use approx::assert_relative_eq;
    use saturn_tensor::Tensor;

    fn three_steps(config: SgdConfig) -> Vec<f64> {
        let (params, p) = named("w", &[1.0], &[1]);
        let mut opt = Sgd::new(params, config).unwrap();
        let mut trajectory = Vec::new();
        for g in [1.0, 2.0, 3.0] {
            set_grads(&opt, &[&[g]]);
            opt.step(0.1).unwrap();
            trajectory.push(values(&p)[0]);
        }
        trajectory
    }

    #[test]
    fn plain_sgd_three_steps_match_the_hand_derivation() {
        // θ ← θ − 0.1·g with g = 1, 2, 3: 0.9, 0.7, 0.4.
        let got = three_steps(SgdConfig::default());
        for (a, b) in got.iter().zip([0.9, 0.7, 0.4]) {
            assert_relative_eq!(*a, b, max_relative = 1e-15);
        }
    }

    #[test]
    fn momentum_dampening_and_weight_decay_three_steps_match_the_hand_derivation() {
        // μ = 0.5, τ = 0.5, λ = 0.1, γ = 0.1, θ₀ = 1, g = 1, 2, 3.
        // t=1: d = 1 + 0.1·1 = 1.1;          b = d = 1.1 (first step: no dampening)
        //      θ = 1 − 0.11 = 0.89
        // t=2: d = 2 + 0.089 = 2.089;        b = 0.5·1.1 + 0.5·2.089 = 1.5945
        //      θ = 0.89 − 0.15945 = 0.73055
        // t=3: d = 3 + 0.073055 = 3.073055;  b = 0.5·1.5945 + 0.5·3.073055 = 2.3337775
        //      θ = 0.73055 − 0.23337775 = 0.49717225
        let got = three_steps(SgdConfig {
            momentum: 0.5,
            dampening: 0.5,
            weight_decay: 0.1,
            ..SgdConfig::default()
        });
        for (a, b) in got.iter().zip([0.89, 0.73055, 0.49717225]) {
            assert_relative_eq!(*a, b, max_relative = 1e-14);
        }
    }

    #[test]
    fn nesterov_three_steps_match_the_hand_derivation() {
        // μ = 0.5, γ = 0.1, θ₀ = 1, g = 1, 2, 3; d = g + μ·b.
        // t=1: b = 1;               d = 1 + 0.5 = 1.5;     θ = 0.85
        // t=2: b = 0.5 + 2 = 2.5;   d = 2 + 1.25 = 3.25;   θ = 0.525
        // t=3: b = 1.25 + 3 = 4.25; d = 3 + 2.125 = 5.125; θ = 0.0125
        let got = three_steps(SgdConfig { momentum: 0.5, nesterov: true, ..SgdConfig::default() });
        for (a, b) in got.iter().zip([0.85, 0.525, 0.0125]) {
            assert_relative_eq!(*a, b, max_relative = 1e-13);
        }
    }

    #[test]
    fn sgd_converges_on_a_convex_quadratic() {
        // f(θ) = ½θᵀAθ − bᵀθ with A = [[3, 1], [1, 2]] (eigenvalues 1.38 and 3.62) and
        // b = (1, 1): the minimum is θ* = A⁻¹b = (0.2, 0.4). Gradients come from autograd.
        let a = Tensor::<f64>::from_vec(vec![3.0, 1.0, 1.0, 2.0], &[2, 2]).unwrap();
        let b = Tensor::<f64>::from_vec(vec![1.0, 1.0], &[2, 1]).unwrap();
        let configs = [
            (SgdConfig::default(), 0.3),
            (SgdConfig { momentum: 0.5, ..SgdConfig::default() }, 0.1),
            (SgdConfig { momentum: 0.5, nesterov: true, ..SgdConfig::default() }, 0.2),
        ];
        for (config, lr) in configs {
            let theta = Tensor::<f64>::param_from_vec(vec![-3.0, 5.0], &[2, 1]).unwrap();
            let mut opt = Sgd::new(vec![("theta".into(), theta.clone())], config.clone()).unwrap();
            for _ in 0..300 {
                let quad = theta.transpose(0, 1).unwrap().matmul(&a.matmul(&theta).unwrap());
                let lin = b.transpose(0, 1).unwrap().matmul(&theta).unwrap();
                let loss = quad.unwrap().mul_scalar(0.5).sub(&lin).unwrap().sum_all();
                opt.zero_grad();
                loss.backward().unwrap();
                opt.step(lr).unwrap();
            }
            let got = values(&theta);
            assert!(
                (got[0] - 0.2).abs() < 1e-8 && (got[1] - 0.4).abs() < 1e-8,
                "{config:?} ended at {got:?}"
            );
        }
    }

    #[test]
    fn nesterov_without_momentum_is_refused() {
        let (params, _) = named("w", &[1.0], &[1]);
        let config = SgdConfig { nesterov: true, ..SgdConfig::default() };
        assert!(matches!(Sgd::new(params, config), Err(OptimError::InvalidConfig(_))));
        let (params, _) = named("w", &[1.0], &[1]);
        let config = SgdConfig { momentum: -0.9, ..SgdConfig::default() };
        assert!(Sgd::new(params, config).is_err());
    }

    #[test]
    fn group_rules_set_weight_decay_and_lr_scale_per_parameter() {
        use crate::GroupRule;
        // λ = 0.5 by default, 0 for biases; lr ×0.5 for the first layer; zero gradients, so
        // the step is the decay alone: θ ← θ − γ·s·λ·θ with γ = 0.1.
        let mk = |name: &str| {
            (name.to_string(), Tensor::<f64>::param_from_vec(vec![1.0], &[1]).unwrap())
        };
        let params = vec![mk("l0.weight"), mk("l0.bias"), mk("l1.weight"), mk("l1.bias")];
        let handles: Vec<_> = params.iter().map(|(_, p)| p.clone()).collect();
        let config = SgdConfig {
            weight_decay: 0.5,
            groups: ParamGroups::new(vec![
                GroupRule::new("*.bias").weight_decay(0.0),
                GroupRule::new("l0.*").lr_scale(0.5),
            ]),
            ..SgdConfig::default()
        };
        let mut opt = Sgd::new(params, config).unwrap();
        set_grads(&opt, &[&[0.0], &[0.0], &[0.0], &[0.0]]);
        opt.step(0.1).unwrap();
        let got: Vec<f64> = handles.iter().map(|p| values(p)[0]).collect();
        assert_eq!(got, vec![1.0 - 0.1 * 0.5 * 0.5, 1.0, 1.0 - 0.1 * 0.5, 1.0]);
        let options = opt.param_options();
        assert_eq!(options[1], ("l0.bias", GroupOptions { weight_decay: 0.0, lr_scale: 1.0 }));
    }

    #[test]
    fn duplicate_names_and_tensors_are_refused() {
        let p = Tensor::<f64>::param_from_vec(vec![1.0], &[1]).unwrap();
        let q = Tensor::<f64>::param_from_vec(vec![1.0], &[1]).unwrap();
        let twice = vec![("a".to_string(), p.clone()), ("a".to_string(), q)];
        assert!(matches!(
            Sgd::new(twice, SgdConfig::default()),
            Err(OptimError::DuplicateName { .. })
        ));
        let aliased = vec![("a".to_string(), p.clone()), ("b".to_string(), p.clone())];
        assert!(matches!(
            Sgd::new(aliased, SgdConfig::default()),
            Err(OptimError::DuplicateTensor { .. })
        ));
        let computed = vec![("c".to_string(), p.mul_scalar(2.0))];
        assert!(matches!(
            Sgd::new(computed, SgdConfig::default()),
            Err(OptimError::NotALeaf { .. })
        ));
    }
}
