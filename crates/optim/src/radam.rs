//! RAdam, rectified Adam (Liu et al. 2020, "On the Variance of the Adaptive Learning Rate and
//! Beyond"), following `torch.optim.RAdam`, with the two switches needed to match the RAdam of
//! Transformer-Clinic (`radam_fairseq/radam.py`), the optimizer of the Admin experiments.
//!
//! For a parameter θ with gradient g at its t-th update, learning rate γ, weight decay λ:
//!
//! ```text
//! θ ← θ·(1 − γλ)  if decoupled,  else g ← g + λ·θ      (if λ ≠ 0)
//! m ← β₁·m + (1 − β₁)·g;   v ← β₂·v + (1 − β₂)·g²
//! m̂ = m / (1 − β₁ᵗ)
//! ρ∞ = 2/(1 − β₂) − 1;     ρₜ = ρ∞ − 2t·β₂ᵗ/(1 − β₂ᵗ)
//! if ρₜ > 5:  (the variance of the adaptive lr is tractable)
//!     l = √(1 − β₂ᵗ) / (√v + ε)                   (ε added to √v, not to √v̂ as in Adam)
//!     r = √( (ρₜ − 4)(ρₜ − 2)ρ∞ / ((ρ∞ − 4)(ρ∞ − 2)ρₜ) )
//!     θ ← θ − γ·m̂·l·r
//! else:
//!     θ ← θ − γ·m̂           (un-adapted momentum step; no step at all if !degenerated_to_sgd)
//! ```
//!
//! ρₜ ≤ t, and ρ₁ = 1 for every β₂: the first five updates are never rectified.
//!
//! Transformer-Clinic's RAdam differs from PyTorch's defaults in two ways, both switches here
//! ([`RAdamConfig::transformer_clinic`] sets them): its weight decay is decoupled
//! (θ ← θ − γλθ, applied on every update), and while ρₜ ≤ 5 it takes no step at all (the
//! un-adapted step is commented out). Its test reads ρₜ ≥ 5 where PyTorch reads ρₜ > 5; ρₜ is
//! never exactly 5 at an integer t in practice.

use ndarray::{ArrayD, Zip};
use saturn_tensor::{DataMut, Float, Tensor};
use serde::{Deserialize, Serialize};

use crate::adam::{default_betas, default_eps, is_empty};
use crate::error::{Result, check_adam_family};
use crate::groups::ParamGroups;
use crate::optimizer::{Optimizer, OptimizerKind, StepStats};
use crate::param_set::{ParamSet, ParamStep, owns_param_set};

/// Hyper-parameters of RAdam. Defaults are `torch.optim.RAdam`'s: β = (0.9, 0.999), ε = 1e-8,
/// L2 weight decay, un-adapted steps while ρₜ ≤ 5. `weight_decay` has no default in configs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RAdamConfig {
    /// (β₁, β₂), each in [0, 1).
    #[serde(default = "default_betas")]
    pub betas: [f64; 2],
    /// ε ≥ 0, added to √v.
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// λ ≥ 0.
    pub weight_decay: f64,
    /// Decay θ ← θ·(1 − γλ) (AdamW style) instead of adding λθ to the gradient.
    #[serde(default)]
    pub decoupled_weight_decay: bool,
    /// While ρₜ ≤ 5, step θ ← θ − γ·m̂ (true, PyTorch and the RAdam paper's default) or not at
    /// all (false, Transformer-Clinic).
    #[serde(default = "default_true")]
    pub degenerated_to_sgd: bool,
    /// Per-parameter overrides (weight decay, lr scale), selected by name.
    #[serde(default, skip_serializing_if = "is_empty")]
    pub groups: ParamGroups,
}

fn default_true() -> bool {
    true
}

impl Default for RAdamConfig {
    fn default() -> Self {
        RAdamConfig {
            betas: default_betas(),
            eps: default_eps(),
            weight_decay: 0.0,
            decoupled_weight_decay: false,
            degenerated_to_sgd: true,
            groups: ParamGroups::none(),
        }
    }
}

impl RAdamConfig {
    /// The RAdam of Transformer-Clinic's recipes (Liu et al. 2020, Admin): β = (0.9, 0.98),
    /// ε = 1e-8, decoupled weight decay λ (1e-4 on IWSLT'14, 0 on WMT'14), no step while
    /// ρₜ ≤ 5.
    pub fn transformer_clinic(weight_decay: f64) -> Self {
        RAdamConfig {
            betas: [0.9, 0.98],
            weight_decay,
            decoupled_weight_decay: true,
            degenerated_to_sgd: false,
            ..RAdamConfig::default()
        }
    }

    /// Checks every hyper-parameter and the group rules.
    pub fn validate(&self, owner: &str) -> Result<()> {
        check_adam_family(owner, self.betas, self.eps, self.weight_decay)?;
        self.groups.validate()
    }
}

/// ρₜ = ρ∞ − 2t·β₂ᵗ/(1 − β₂ᵗ), the approximate length of the simple moving average that v
/// stands for at step t (Liu et al. 2020, eq. 5); ρ∞ = 2/(1 − β₂) − 1.
pub fn radam_rho(beta2: f64, t: u64) -> f64 {
    let rho_inf = 2.0 / (1.0 - beta2) - 1.0;
    let beta2_t = beta2.powf(t as f64);
    rho_inf - 2.0 * t as f64 * beta2_t / (1.0 - beta2_t)
}

/// The variance rectification term rₜ (Liu et al. 2020, eq. 6), defined for ρₜ > 4.
pub fn radam_rectification(beta2: f64, t: u64) -> f64 {
    let rho_inf = 2.0 / (1.0 - beta2) - 1.0;
    let rho_t = radam_rho(beta2, t);
    ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)).sqrt()
}

/// RAdam over named parameters (see the module docs for the update).
pub struct RAdam<T: Float> {
    config: RAdamConfig,
    params: ParamSet<T>,
}

impl<T: Float> RAdam<T> {
    /// RAdam with the given hyper-parameters (validated).
    pub fn new(params: Vec<(String, Tensor<T>)>, config: RAdamConfig) -> Result<Self> {
        let kind = OptimizerKind::RAdam;
        config.validate(kind.as_str())?;
        let buffers = &["exp_avg", "exp_avg_sq"];
        let params = ParamSet::new(kind, buffers, params, config.weight_decay, &config.groups)?;
        Ok(RAdam { config, params })
    }
}

owns_param_set!(RAdam, RAdamConfig);

impl<T: Float> Optimizer<T> for RAdam<T> {
    fn step(&mut self, lr: f64) -> Result<StepStats> {
        let config = &self.config;
        self.params.step(lr, |s, theta| radam_update(config, s, theta))
    }
}

/// How the parameter moves after the moments are updated.
#[derive(Clone, Copy)]
enum RAdamStep<T> {
    /// θ ← θ − ((m/(1 − β₁ᵗ))·γ)·(√(1 − β₂ᵗ)/(√v + ε))·r  (PyTorch's order of operations).
    Rectified { lr: T, bias_correction2_sqrt: T, rect: T },
    /// θ ← θ − (m/(1 − β₁ᵗ))·γ.
    Unadapted { lr: T },
    /// θ unchanged (Transformer-Clinic while ρₜ ≤ 5).
    None,
}

/// One RAdam update of one parameter; returns Σ(Δθ)².
fn radam_update<T: Float>(
    config: &RAdamConfig,
    s: ParamStep<'_, T>,
    theta: &mut DataMut<'_, T>,
) -> f64 {
    let [beta1, beta2] = config.betas;
    let t = s.t as f64;
    let bias_correction1 = T::cast(1.0 - beta1.powf(t));
    let bias_correction2 = 1.0 - beta2.powf(t);
    let lr = T::cast(s.lr);
    let update = if radam_rho(beta2, s.t) > 5.0 {
        RAdamStep::Rectified {
            lr,
            bias_correction2_sqrt: T::cast(bias_correction2.sqrt()),
            rect: T::cast(radam_rectification(beta2, s.t)),
        }
    } else if config.degenerated_to_sgd {
        RAdamStep::Unadapted { lr }
    } else {
        RAdamStep::None
    };
    let (b1, one_minus_b1) = (T::cast(beta1), T::cast(1.0 - beta1));
    let (b2, one_minus_b2) = (T::cast(beta2), T::cast(1.0 - beta2));
    let eps = T::cast(config.eps);
    let has_decay = s.weight_decay != 0.0;
    let l2 = (has_decay && !config.decoupled_weight_decay).then(|| T::cast(s.weight_decay));
    let decay =
        (has_decay && config.decoupled_weight_decay).then(|| T::cast(1.0 - s.lr * s.weight_decay));

    if s.buffers.is_empty() {
        *s.buffers = vec![ArrayD::zeros(theta.raw_dim()); 2];
    }
    let (m, v) = s.buffers.split_at_mut(1);
    let mut sum_sq = 0.0;
    Zip::from(theta.view_mut()).and(s.grad).and(&mut m[0]).and(&mut v[0]).for_each(
        |p, &g, m, v| {
            let old = *p;
            let mut theta = old;
            let mut g = g;
            if let Some(wd) = l2 {
                g += wd * theta;
            }
            if let Some(decay) = decay {
                theta *= decay;
            }
            *m = b1 * *m + one_minus_b1 * g;
            *v = b2 * *v + one_minus_b2 * g * g;
            let m_hat = *m / bias_correction1;
            match update {
                RAdamStep::Rectified { lr, bias_correction2_sqrt, rect } => {
                    let adaptive_lr = bias_correction2_sqrt / (v.sqrt() + eps);
                    theta -= m_hat * lr * adaptive_lr * rect;
                }
                RAdamStep::Unadapted { lr } => theta -= m_hat * lr,
                RAdamStep::None => {}
            }
            let d = theta.as_f64() - old.as_f64();
            sum_sq += d * d;
            *p = theta;
        },
    );
    sum_sq
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{named, set_grads, values};
    use approx::assert_relative_eq;

    fn cfg(betas: [f64; 2], eps: f64) -> RAdamConfig {
        RAdamConfig { betas, eps, ..RAdamConfig::default() }
    }

    #[test]
    fn radam_three_steps_match_the_hand_derivation() {
        // β = (0.5, 0.9): ρ∞ = 2/0.1 − 1 = 19; ρ₁ = 1, ρ₂ = 19 − 4·0.81/0.19 ≈ 1.95,
        // ρ₃ = 19 − 6·0.729/0.271 ≈ 2.86, all ≤ 5: three un-adapted steps θ ← θ − γ·m̂.
        // θ₀ = 1, γ = 0.1, g = 2, −2, 4 (m as in the Adam derivation):
        // t=1: m = 1,     m̂ = 2;     θ = 0.8
        // t=2: m = −0.5,  m̂ = −2/3;  θ = 0.8 + 1/15
        // t=3: m = 1.75,  m̂ = 2;     θ = 0.8 + 1/15 − 0.2 = 2/3
        let (params, p) = named("w", &[1.0], &[1]);
        let mut opt = RAdam::new(params, cfg([0.5, 0.9], 1e-8)).unwrap();
        let expected = [0.8, 0.8 + 1.0 / 15.0, 2.0 / 3.0];
        for (g, want) in [2.0, -2.0, 4.0].into_iter().zip(expected) {
            set_grads(&opt, &[&[g]]);
            opt.step(0.1).unwrap();
            assert_relative_eq!(values(&p)[0], want, max_relative = 1e-14);
        }
        assert!(radam_rho(0.9, 3) < 5.0);
    }

    #[test]
    fn rho_starts_at_one_and_rectification_starts_at_step_six() {
        for beta2 in [0.9, 0.98, 0.999] {
            assert_relative_eq!(radam_rho(beta2, 1), 1.0, max_relative = 1e-9);
        }
        // β₂ = 0.999: ρ₅ ≈ 4.997 ≤ 5 < ρ₆ ≈ 5.996.
        assert!(radam_rho(0.999, 5) <= 5.0 && radam_rho(0.999, 6) > 5.0);
    }

    #[test]
    fn rectified_step_matches_the_formula() {
        // A constant gradient g = 1 and ε = 0 make m̂ = 1 and √(1 − β₂ᵗ)/√v = 1 exactly in exact
        // arithmetic: steps 1–5 are un-adapted steps of −γ·m̂ = −γ, step 6 is −γ·r₆.
        let (beta1, beta2, lr) = (0.9, 0.999, 0.01);
        let (params, p) = named("w", &[0.0], &[1]);
        let mut opt = RAdam::new(params, cfg([beta1, beta2], 0.0)).unwrap();
        for _ in 0..6 {
            set_grads(&opt, &[&[1.0]]);
            opt.step(lr).unwrap();
        }
        let r6 = radam_rectification(beta2, 6);
        assert!(r6 > 0.0 && r6 < 0.1, "r₆ = {r6} is small right after the switch");
        assert_relative_eq!(values(&p)[0], -5.0 * lr - lr * r6, max_relative = 1e-12);
    }

    #[test]
    fn transformer_clinic_radam_takes_no_step_before_rectification_but_decays() {
        // λ = 0.5, γ = 0.1: each of the first five updates only multiplies θ by 0.95.
        let (params, p) = named("w", &[1.0], &[1]);
        let mut opt = RAdam::new(params, RAdamConfig::transformer_clinic(0.5)).unwrap();
        for t in 1..=5 {
            set_grads(&opt, &[&[3.0]]);
            opt.step(0.1).unwrap();
            assert_relative_eq!(values(&p)[0], 0.95f64.powi(t), max_relative = 1e-14);
        }
        set_grads(&opt, &[&[3.0]]);
        opt.step(0.1).unwrap();
        assert!(values(&p)[0] < 0.95f64.powi(6) - 1e-4, "step 6 is rectified and moves θ");
    }

    #[test]
    fn coupled_weight_decay_is_added_to_the_gradient() {
        // θ₀ = 2, λ = 0.5, g = 0: g' = 1, m̂ = 1, first step un-adapted: θ = 2 − 0.1 = 1.9.
        let (params, p) = named("w", &[2.0], &[1]);
        let config = RAdamConfig { weight_decay: 0.5, ..RAdamConfig::default() };
        let mut opt = RAdam::new(params, config).unwrap();
        set_grads(&opt, &[&[0.0]]);
        opt.step(0.1).unwrap();
        assert_relative_eq!(values(&p)[0], 1.9, max_relative = 1e-15);
    }
}
