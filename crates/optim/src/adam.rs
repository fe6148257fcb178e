//! Adam (Kingma & Ba 2015) and AdamW (decoupled weight decay, Loshchilov & Hutter 2019), one
//! update rule with a switch, following `torch.optim.Adam` / `torch.optim.AdamW`.
//!
//! For a parameter θ with gradient g, at its t-th update (t = 1, 2, …), learning rate γ, weight
//! decay λ and decay rates (β₁, β₂):
//!
//! ```text
//! Adam:   g ← g + λ·θ                   (L2 penalty folded into the gradient)
//! AdamW:  θ ← θ·(1 − γλ)                (decoupled decay, before the Adam step)
//! m ← β₁·m + (1 − β₁)·g                 (exp_avg)
//! v ← β₂·v + (1 − β₂)·g²                (exp_avg_sq)
//! m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ)
//! θ ← θ − γ·m̂ / (√v̂ + ε)                (ε added to √v̂, after bias correction)
//! ```
//!
//! Scalars (bias corrections, γ/(1 − β₁ᵗ), 1 − γλ) are computed in `f64`, as PyTorch computes
//! them in Python floats, then rounded to the parameter's type; the element-wise arithmetic runs
//! in the parameter's type in PyTorch's order (θ + (−γ/(1−β₁ᵗ))·m / (√v/√(1−β₂ᵗ) + ε)). PyTorch's
//! kernel writes the m update as `lerp`, equal to the formula above up to rounding.
//!
//! With ε = 0 the step γ·m̂/√v̂ is invariant to multiplying every gradient by c > 0, and its size
//! is about γ per coordinate whatever the gradient scale: the reason parameter norms grow like
//! √t under Adam-type updates (Merrill et al. 2021, §4).

use ndarray::{ArrayD, Zip};
use saturn_tensor::{Data, DataMut, Float, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Result, check_adam_family};
use crate::groups::ParamGroups;
use crate::optimizer::{Optimizer, OptimizerKind, StepStats};
use crate::param_set::{ParamSet, ParamStep, owns_param_set};

/// Hyper-parameters of Adam and AdamW (the learning rate is given to each step).
///
/// Defaults are `torch.optim.Adam`'s: β = (0.9, 0.999), ε = 1e-8. The papers studied here use
/// β = (0.9, 0.98) (Vaswani et al.; Xiong et al. 2020 §3.3). `weight_decay` has no default in
/// configs, since PyTorch's Adam (0) and AdamW (0.01) disagree; [`AdamConfig::default`] uses 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamConfig {
    /// (β₁, β₂), each in [0, 1).
    #[serde(default = "default_betas")]
    pub betas: [f64; 2],
    /// ε ≥ 0, added to √v̂.
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// λ ≥ 0: an L2 term in the gradient for Adam, a decoupled decay for AdamW.
    pub weight_decay: f64,
    /// Per-parameter overrides (weight decay, lr scale), selected by name.
    #[serde(default, skip_serializing_if = "is_empty")]
    pub groups: ParamGroups,
}

pub(crate) fn default_betas() -> [f64; 2] {
    [0.9, 0.999]
}

pub(crate) fn default_eps() -> f64 {
    1e-8
}

pub(crate) fn is_empty(groups: &ParamGroups) -> bool {
    groups.rules.is_empty()
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            betas: default_betas(),
            eps: default_eps(),
            weight_decay: 0.0,
            groups: ParamGroups::none(),
        }
    }
}

impl AdamConfig {
    /// Checks every hyper-parameter (β in [0, 1), ε and λ finite and ≥ 0, group rules).
    pub fn validate(&self, owner: &str) -> Result<()> {
        check_adam_family(owner, self.betas, self.eps, self.weight_decay)?;
        self.groups.validate()
    }
}

/// Adam or AdamW over named parameters (see the module docs for the update).
pub struct Adam<T: Float> {
    config: AdamConfig,
    params: ParamSet<T>,
}

const BUFFERS: &[&str] = &["exp_avg", "exp_avg_sq"];

impl<T: Float> Adam<T> {
    /// Adam: weight decay as an L2 term added to the gradient (`torch.optim.Adam`).
    pub fn new(params: Vec<(String, Tensor<T>)>, config: AdamConfig) -> Result<Self> {
        Self::with_kind(OptimizerKind::Adam, params, config)
    }

    /// AdamW: decoupled weight decay θ ← θ·(1 − γλ) (`torch.optim.AdamW`; Loshchilov & Hutter
    /// 2019, Algorithm 2).
    pub fn adamw(params: Vec<(String, Tensor<T>)>, config: AdamConfig) -> Result<Self> {
        Self::with_kind(OptimizerKind::AdamW, params, config)
    }

    fn with_kind(
        kind: OptimizerKind,
        params: Vec<(String, Tensor<T>)>,
        config: AdamConfig,
    ) -> Result<Self> {
        config.validate(kind.as_str())?;
        let params = ParamSet::new(kind, BUFFERS, params, config.weight_decay, &config.groups)?;
        Ok(Adam { config, params })
    }
}

owns_param_set!(Adam, AdamConfig);

impl<T: Float> Optimizer<T> for Adam<T> {
    fn step(&mut self, lr: f64) -> Result<StepStats> {
        let decoupled = self.params.kind() == OptimizerKind::AdamW;
        let [beta1, beta2] = self.config.betas;
        let eps = self.config.eps;
        self.params.step(lr, |s, theta| adam_update(s, theta, beta1, beta2, eps, decoupled))
    }
}

/// The constants of one update, in the parameter's type.
#[derive(Clone, Copy)]
struct Coefficients<T> {
    b1: T,
    one_minus_b1: T,
    b2: T,
    one_minus_b2: T,
    /// −γ/(1 − β₁ᵗ)
    neg_step_size: T,
    /// √(1 − β₂ᵗ)
    bias_correction2_sqrt: T,
    eps: T,
    /// λ of Adam's L2 term (used when `L2`)
    l2: T,
    /// 1 − γλ of AdamW's decoupled decay (used when `DECAY`)
    decay: T,
}

/// One Adam / AdamW update of one parameter; returns Σ(Δθ)².
fn adam_update<T: Float>(
    s: ParamStep<'_, T>,
    theta: &mut DataMut<'_, T>,
    beta1: f64,
    beta2: f64,
    eps: f64,
    decoupled: bool,
) -> f64 {
    let t = s.t as f64;
    let bias_correction1 = 1.0 - beta1.powf(t);
    let bias_correction2 = 1.0 - beta2.powf(t);
    let c = Coefficients {
        b1: T::cast(beta1),
        one_minus_b1: T::cast(1.0 - beta1),
        b2: T::cast(beta2),
        one_minus_b2: T::cast(1.0 - beta2),
        neg_step_size: T::cast(-(s.lr / bias_correction1)),
        bias_correction2_sqrt: T::cast(bias_correction2.sqrt()),
        eps: T::cast(eps),
        l2: T::cast(s.weight_decay),
        decay: T::cast(1.0 - s.lr * s.weight_decay),
    };
    let l2 = !decoupled && s.weight_decay != 0.0;
    let decay = decoupled && s.weight_decay != 0.0;

    if s.buffers.is_empty() {
        *s.buffers = vec![ArrayD::zeros(theta.raw_dim()); 2];
    }
    let (m, v) = s.buffers.split_at_mut(1);
    let (m, v) = (&mut m[0], &mut v[0]);
    // the switches as type parameters: the element loop has no branches and vectorizes
    match (l2, decay) {
        (false, false) => update_all::<T, false, false>(theta, s.grad, m, v, &c),
        (true, false) => update_all::<T, true, false>(theta, s.grad, m, v, &c),
        (false, true) => update_all::<T, false, true>(theta, s.grad, m, v, &c),
        (true, true) => update_all::<T, true, true>(theta, s.grad, m, v, &c),
    }
}

/// Elements per block of a parallel update: a block's Σ(Δθ)² is formed on its own and the
/// blocks' sums are added in order, so the sum does not depend on the thread count.
const BLOCK: usize = 1 << 16;

/// Updates every element; Σ(Δθ)² in 8 running sums (fixed order) over contiguous buffers, so
/// that the f64 additions do not serialize the loop. A parameter of more than one [`BLOCK`] is
/// updated in blocks spread over the BLAS thread count ([`saturn_tensor::parallel::map_items`]);
/// θ's bits are those of one pass, and Σ(Δθ)² is the in-order sum of the blocks' sums.
fn update_all<T: Float, const L2: bool, const DECAY: bool>(
    theta: &mut DataMut<'_, T>,
    grad: &Data<T>,
    m: &mut ArrayD<T>,
    v: &mut ArrayD<T>,
    c: &Coefficients<T>,
) -> f64 {
    if let (Some(p), Some(g), Some(m), Some(v)) =
        (theta.as_slice_mut(), grad.as_slice(), m.as_slice_mut(), v.as_slice_mut())
    {
        if p.len() <= BLOCK {
            return update_slices::<T, L2, DECAY>(p, g, m, v, c);
        }
        let blocks: Vec<_> = p
            .chunks_mut(BLOCK)
            .zip(g.chunks(BLOCK))
            .zip(m.chunks_mut(BLOCK).zip(v.chunks_mut(BLOCK)))
            .collect();
        let sums = saturn_tensor::parallel::map_items(blocks, |((p, g), (m, v))| {
            update_slices::<T, L2, DECAY>(p, g, m, v, c)
        });
        return sums.iter().sum();
    }
    let mut sum_sq = 0.0;
    Zip::from(theta.view_mut()).and(grad.view()).and(m).and(v).for_each(|p, &g, m, v| {
        sum_sq += update_one::<T, L2, DECAY>(p, g, m, v, c);
    });
    sum_sq
}

/// [`update_one`] over slices of one length; returns Σ(Δθ)² from 8 running sums.
fn update_slices<T: Float, const L2: bool, const DECAY: bool>(
    p: &mut [T],
    g: &[T],
    m: &mut [T],
    v: &mut [T],
    c: &Coefficients<T>,
) -> f64 {
    const LANES: usize = 8;
    let mut sums = [0.0f64; LANES];
    let body = p.len() / LANES * LANES;
    let (p_body, p_tail) = p.split_at_mut(body);
    let (m_body, m_tail) = m.split_at_mut(body);
    let (v_body, v_tail) = v.split_at_mut(body);
    let chunks = p_body
        .chunks_exact_mut(LANES)
        .zip(g[..body].chunks_exact(LANES))
        .zip(m_body.chunks_exact_mut(LANES).zip(v_body.chunks_exact_mut(LANES)));
    for ((p, g), (m, v)) in chunks {
        for l in 0..LANES {
            sums[l] += update_one::<T, L2, DECAY>(&mut p[l], g[l], &mut m[l], &mut v[l], c);
        }
    }
    let mut sum_sq = sums.iter().sum::<f64>();
    for (((p, &g), m), v) in p_tail.iter_mut().zip(&g[body..]).zip(m_tail).zip(v_tail) {
        sum_sq += update_one::<T, L2, DECAY>(p, g, m, v, c);
    }
    sum_sq
}

/// The update of one element (module docs, PyTorch's order of operations); returns (Δθ)².
#[inline(always)]
fn update_one<T: Float, const L2: bool, const DECAY: bool>(
    p: &mut T,
    g: T,
    m: &mut T,
    v: &mut T,
    c: &Coefficients<T>,
) -> f64 {
    let old = *p;
    let mut theta = old;
    let mut g = g;
    if L2 {
        g += c.l2 * theta;
    }
    if DECAY {
        theta *= c.decay;
    }
    *m = c.b1 * *m + c.one_minus_b1 * g;
    *v = c.b2 * *v + c.one_minus_b2 * g * g;
    let denom = v.sqrt() / c.bias_correction2_sqrt + c.eps;
    theta += c.neg_step_size * *m / denom;
    *p = theta;
    let d = theta.as_f64() - old.as_f64();
    d * d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{named, set_grads, values};
    use crate::{OptimError, Optimizer};
    use approx::assert_relative_eq;

    fn cfg(betas: [f64; 2], eps: f64, weight_decay: f64) -> AdamConfig {
        AdamConfig { betas, eps, weight_decay, groups: ParamGroups::none() }
    }

    #[test]
    fn adam_three_steps_match_the_hand_derivation() {
        // θ₀ = 1, γ = 0.1, β = (0.5, 0.75), ε = 0.5 (large, so that its placement matters),
        // gradients 2, −2, 4.
        // t=1: m = 0.5·2 = 1;            v = 0.25·4 = 1;
        //      m̂ = 1/0.5 = 2;             v̂ = 1/0.25 = 4;       Δ = −0.1·2/(2 + 0.5) = −0.08
        // t=2: m = 0.5 − 1 = −0.5;       v = 0.75 + 1 = 1.75;
        //      m̂ = −0.5/0.75 = −2/3;      v̂ = 1.75/0.4375 = 4;  Δ = −0.1·(−2/3)/2.5 = +2/75
        // t=3: m = −0.25 + 2 = 1.75;     v = 1.3125 + 4 = 5.3125;
        //      m̂ = 1.75/0.875 = 2;        v̂ = 5.3125/0.578125 = 340/37;
        //      Δ = −0.1·2/(√(340/37) + 0.5)
        let (params, p) = named("w", &[1.0], &[1]);
        let mut opt = Adam::new(params, cfg([0.5, 0.75], 0.5, 0.0)).unwrap();
        let mut expected = 1.0;
        let deltas = [-0.08, 2.0 / 75.0, -0.2 / ((340.0f64 / 37.0).sqrt() + 0.5)];
        for (g, delta) in [2.0, -2.0, 4.0].into_iter().zip(deltas) {
            set_grads(&opt, &[&[g]]);
            opt.step(0.1).unwrap();
            expected += delta;
            assert_relative_eq!(values(&p)[0], expected, max_relative = 1e-14);
        }
    }

    #[test]
    fn adam_weight_decay_is_added_to_the_gradient() {
        // θ₀ = 2, λ = 0.5, g = 0: g' = g + λθ = 1, so m̂ = 1, v̂ = 1 and with ε = 0 the first
        // step is −γ·1/1 = −0.1 whatever β.
        let (params, p) = named("w", &[2.0], &[1]);
        let mut opt = Adam::new(params, cfg([0.9, 0.98], 0.0, 0.5)).unwrap();
        set_grads(&opt, &[&[0.0]]);
        opt.step(0.1).unwrap();
        assert_relative_eq!(values(&p)[0], 1.9, max_relative = 1e-15);
    }

    #[test]
    fn adamw_three_steps_match_the_hand_derivation() {
        // Same moments as the Adam derivation (decoupled decay leaves g alone), so the same Adam
        // deltas; each step first multiplies θ by 1 − γλ = 1 − 0.1·0.5 = 0.95:
        // θ₁ = 2·0.95 − 0.08 = 1.82
        // θ₂ = 1.82·0.95 + 2/75
        // θ₃ = θ₂·0.95 − 0.2/(√(340/37) + 0.5)
        let (params, p) = named("w", &[2.0], &[1]);
        let mut opt = Adam::adamw(params, cfg([0.5, 0.75], 0.5, 0.5)).unwrap();
        let mut expected = 2.0;
        let deltas = [-0.08, 2.0 / 75.0, -0.2 / ((340.0f64 / 37.0).sqrt() + 0.5)];
        for (g, delta) in [2.0, -2.0, 4.0].into_iter().zip(deltas) {
            set_grads(&opt, &[&[g]]);
            opt.step(0.1).unwrap();
            expected = expected * 0.95 + delta;
            assert_relative_eq!(values(&p)[0], expected, max_relative = 1e-14);
        }
    }

    #[test]
    fn adam_update_is_invariant_to_gradient_scale_when_eps_is_zero() {
        let grads = [[0.3, -1.2, 2.5], [0.1, 0.4, -0.7], [-2.0, 0.05, 1.1], [0.9, -0.3, 0.2]];
        let run = |scale: f64| {
            let (params, p) = named("w", &[0.5, -0.25, 1.0], &[3]);
            let mut opt = Adam::new(params, cfg([0.9, 0.98], 0.0, 0.0)).unwrap();
            for g in &grads {
                let g: Vec<f64> = g.iter().map(|x| x * scale).collect();
                set_grads(&opt, &[&g]);
                opt.step(1e-2).unwrap();
            }
            values(&p)
        };
        let reference = run(1.0);
        for scale in [1e-6, 0.37, 1e5] {
            for (a, b) in run(scale).iter().zip(&reference) {
                assert_relative_eq!(*a, *b, max_relative = 1e-12);
            }
        }
    }

    #[test]
    fn adamw_decay_does_not_depend_on_the_gradient() {
        // One step from the same θ₀ with λ and without: AdamW's difference is −γλθ₀ for any
        // gradient, including none at all (zero) and huge ones; Adam's L2 term is not.
        let theta0 = [1.5, -0.5, 3.0];
        let (lr, wd) = (0.1, 0.2);
        let one_step = |adamw: bool, wd: f64, g: &[f64]| {
            let (params, p) = named("w", &theta0, &[3]);
            let c = cfg([0.9, 0.999], 1e-8, wd);
            let mut opt =
                if adamw { Adam::adamw(params, c) } else { Adam::new(params, c) }.unwrap();
            set_grads(&opt, &[g]);
            opt.step(lr).unwrap();
            values(&p)
        };
        let gradients: [&[f64]; 3] = [&[0.0, 0.0, 0.0], &[-0.1, -2.0, 0.5], &[-1e4, 1e4, -1e4]];
        for g in gradients {
            let with = one_step(true, wd, g);
            let without = one_step(true, 0.0, g);
            for i in 0..3 {
                assert_relative_eq!(with[i] - without[i], -lr * wd * theta0[i], epsilon = 1e-12);
            }
        }
        // Adam's first step is ±γ per coordinate (m̂/√v̂ = sign g'), so its L2 term λθ₀ = 0.3
        // changes the step only where it flips the sign of g: for g = −0.1, not for g = −1e4.
        let l2_small = one_step(false, wd, gradients[1])[0] - one_step(false, 0.0, gradients[1])[0];
        let l2_large = one_step(false, wd, gradients[2])[0] - one_step(false, 0.0, gradients[2])[0];
        assert_relative_eq!(l2_small, -2.0 * lr, max_relative = 1e-6);
        assert_relative_eq!(l2_large, 0.0, epsilon = 1e-12);
    }

    #[test]
    fn parameters_without_a_gradient_are_skipped_and_keep_their_step_count() {
        let (mut params, a) = named("a", &[1.0], &[1]);
        let (more, b) = named("b", &[1.0], &[1]);
        params.extend(more);
        let mut opt = Adam::new(params, cfg([0.9, 0.999], 0.0, 0.0)).unwrap();
        a.set_grad(Some(Tensor::from_vec(vec![1.0], &[1]).unwrap()));
        let stats = opt.step(0.1).unwrap();
        assert_eq!((stats.updated, stats.skipped), (1, 1));
        assert_eq!(values(&b), vec![1.0]);
        // b's first real update is its t = 1 (full bias correction): a step of exactly −γ.
        opt.zero_grad();
        b.set_grad(Some(Tensor::from_vec(vec![3.0], &[1]).unwrap()));
        opt.step(0.1).unwrap();
        assert_relative_eq!(values(&b)[0], 0.9, max_relative = 1e-15);
        assert_eq!(opt.state().params["b"].step, 1);
        assert_eq!(opt.state().params["a"].step, 1);
        assert_eq!(opt.steps(), 2);
    }

    #[test]
    fn update_norm_is_the_length_of_the_step() {
        // ε = 0, first step: every coordinate moves by exactly γ, so ‖Δθ‖ = γ·√n.
        let (params, _) = named("w", &[1.0, 2.0, 3.0, 4.0], &[2, 2]);
        let mut opt = Adam::new(params, cfg([0.9, 0.999], 0.0, 0.0)).unwrap();
        set_grads(&opt, &[&[1.0, -2.0, 3.0, -4.0]]);
        let stats = opt.step(0.01).unwrap();
        assert_relative_eq!(stats.update_norm, 0.02, max_relative = 1e-12);
    }

    #[test]
    fn bad_hyper_parameters_and_gradients_are_errors() {
        let bad = [
            cfg([1.0, 0.999], 1e-8, 0.0),
            cfg([0.9, -0.1], 1e-8, 0.0),
            cfg([0.9, 0.999], -1e-8, 0.0),
            cfg([0.9, 0.999], 1e-8, f64::NAN),
        ];
        for c in bad {
            let (params, _) = named("w", &[1.0], &[1]);
            assert!(matches!(Adam::new(params, c), Err(OptimError::InvalidHyperParameter { .. })));
        }
        let (params, p) = named("w", &[1.0, 2.0], &[2]);
        let mut opt = Adam::new(params, AdamConfig::default()).unwrap();
        set_grads(&opt, &[&[1.0, 1.0]]);
        assert!(opt.step(-1e-3).is_err());
        assert!(opt.step(f64::INFINITY).is_err());
        p.set_grad(Some(Tensor::from_vec(vec![1.0, 1.0, 1.0], &[3]).unwrap()));
        assert!(matches!(opt.step(1e-3), Err(OptimError::GradShape { .. })));
        assert_eq!(values(&p), vec![1.0, 2.0], "a refused step changes nothing");
        assert_eq!(opt.steps(), 0);
    }

    #[test]
    fn works_in_f32() {
        let p = Tensor::<f32>::param_from_vec(vec![1.0, -1.0], &[2]).unwrap();
        let mut opt = Adam::adamw(vec![("p".into(), p.clone())], AdamConfig::default()).unwrap();
        p.set_grad(Some(Tensor::from_vec(vec![0.5, -0.5], &[2]).unwrap()));
        opt.step(0.1).unwrap();
        assert_relative_eq!(p.to_vec()[0], 0.9, max_relative = 1e-6);
        assert_relative_eq!(p.to_vec()[1], -0.9, max_relative = 1e-6);
    }
}
