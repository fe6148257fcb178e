//! Optimizer invariants (Kingma & Ba 2015, Algorithm 1 (Adam); Loshchilov & Hutter 2019,
//! Algorithm 2 (AdamW); Merrill et al. 2021, §4 on why Adam-type steps make norms grow like √t;
//! docs/REFERENCES.md#merrill-norm-growth).
//!
//! - Adam's step γ·m̂/(√v̂ + ε) with ε = 0 is invariant to multiplying every gradient by the same
//!   c > 0: m scales by c, √v by c. So the whole trajectory is the same for gradients g_t and
//!   c·g_t (also for AdamW, whose decay does not involve g). This is why ‖Δθ‖ per step is about γ
//!   whatever the gradient scale (Merrill et al. 2021, §4).
//! - AdamW's decoupled decay θ ← θ·(1 − γλ) happens before, and apart from, the Adam step: each
//!   step's decay term is −γ_t·λ·θ_{t−1} for any gradient history, and the rest of the step is
//!   exactly the step of AdamW with λ = 0 on the same gradients.

use proptest::prelude::*;
use saturn_optim::{Adam, AdamConfig, Optimizer, ParamGroups};
use saturn_tensor::Tensor;
use saturn_theorems::proptest_config;

/// Parameter shapes, initial values, and a gradient history (one list per step).
#[derive(Debug, Clone)]
struct Problem {
    shapes: Vec<Vec<usize>>,
    theta0: Vec<Vec<f64>>,
    grads: Vec<Vec<Vec<f64>>>,
    lrs: Vec<f64>,
}

/// 1–3 parameters of 1–6 entries, 1–8 steps; gradient entries of magnitude 1e-3 to 10 with
/// random signs (never 0: with ε = 0 a coordinate whose gradients are all 0 has m̂/√v̂ = 0/0,
/// in PyTorch as here), learning rates 1e-4 to 1e-1.
fn problem() -> impl Strategy<Value = Problem> {
    let shapes = prop::collection::vec(prop::collection::vec(1usize..4, 1..3), 1..4);
    (shapes, 1usize..9).prop_flat_map(|(shapes, steps)| {
        let sizes: Vec<usize> = shapes.iter().map(|s| s.iter().product()).collect();
        let theta0 =
            sizes.iter().map(|&n| prop::collection::vec(-2.0f64..2.0, n)).collect::<Vec<_>>();
        let entry = (any::<bool>(), -3.0f64..1.0)
            .prop_map(|(neg, e)| if neg { -(10f64.powf(e)) } else { 10f64.powf(e) });
        let step =
            sizes.iter().map(|&n| prop::collection::vec(entry.clone(), n)).collect::<Vec<_>>();
        let grads = prop::collection::vec(step, steps);
        let lrs = prop::collection::vec((-4.0f64..-1.0).prop_map(|e| 10f64.powf(e)), steps);
        (Just(shapes), theta0, grads, lrs).prop_map(|(shapes, theta0, grads, lrs)| Problem {
            shapes,
            theta0,
            grads,
            lrs,
        })
    })
}

/// Runs Adam (or AdamW) on the problem with every gradient multiplied by `scale`; returns θ after
/// each step (θ_0 first).
fn trajectory(p: &Problem, adamw: bool, config: &AdamConfig, scale: f64) -> Vec<Vec<Vec<f64>>> {
    let params: Vec<(String, Tensor<f64>)> = p
        .shapes
        .iter()
        .zip(&p.theta0)
        .enumerate()
        .map(|(i, (s, v))| (format!("p{i}"), Tensor::param_from_vec(v.clone(), s).unwrap()))
        .collect();
    let mut opt = if adamw {
        Adam::adamw(params.clone(), config.clone())
    } else {
        Adam::new(params.clone(), config.clone())
    }
    .unwrap();
    let snapshot = || params.iter().map(|(_, t)| t.to_vec()).collect::<Vec<_>>();
    let mut out = vec![snapshot()];
    for (g, &lr) in p.grads.iter().zip(&p.lrs) {
        for ((_, t), gi) in params.iter().zip(g) {
            let scaled: Vec<f64> = gi.iter().map(|v| v * scale).collect();
            t.set_grad(Some(Tensor::from_vec(scaled, &t.shape()).unwrap()));
        }
        opt.step(lr).unwrap();
        out.push(snapshot());
    }
    out
}

fn config(beta1: f64, beta2: f64, eps: f64, weight_decay: f64) -> AdamConfig {
    AdamConfig { betas: [beta1, beta2], eps, weight_decay, groups: ParamGroups::none() }
}

proptest! {
    #![proptest_config(proptest_config(32))]

    /// Kingma & Ba 2015 (Adam), with ε = 0: the update m̂/√v̂ is 0-homogeneous in the gradients,
    /// so running Adam (λ = 0) or AdamW (any λ) on c·g_t gives the same trajectory as on g_t for
    /// every c > 0 (c from 1e-6 to 1e6 here). Equal to 1e-11 of the distance travelled plus
    /// Σγ_t (rounding of c·g, m and √v).
    #[test]
    fn adam_update_is_invariant_to_positive_gradient_scaling_when_eps_is_zero(
        p in problem(),
        log_c in -6.0f64..6.0,
        beta1 in 0.0f64..0.99,
        beta2 in 0.5f64..0.9999,
        adamw: bool,
        weight_decay in 0.0f64..0.1,
    ) {
        let c = 10f64.powf(log_c);
        let cfg = config(beta1, beta2, 0.0, if adamw { weight_decay } else { 0.0 });
        let (a, b) = (trajectory(&p, adamw, &cfg, 1.0), trajectory(&p, adamw, &cfg, c));
        let lr_sum: f64 = p.lrs.iter().sum();
        for (t, (ta, tb)) in a.iter().zip(&b).enumerate() {
            for (i, (x, y)) in ta.iter().zip(tb).enumerate() {
                for (j, (u, v)) in x.iter().zip(y).enumerate() {
                    let travelled = (u - p.theta0[i][j]).abs();
                    prop_assert!(
                        (u - v).abs() <= 1e-11 * (travelled + lr_sum),
                        "THEOREM (Adam with ε = 0 is invariant to gradient scale): trajectories for g and c·g agree; \
                         contradicted at c = {c:e}, step {t}, parameter {i}[{j}]: {u} vs {v} ({})",
                        if adamw { "AdamW" } else { "Adam" }
                    );
                }
            }
        }
    }

    /// Loshchilov & Hutter 2019, Algorithm 2 (AdamW): the decay term of every step,
    /// θ_t − θ_{t−1} − (the step AdamW with λ = 0 takes on the same gradients), equals
    /// −γ_t·λ·θ_{t−1} whatever the gradients: it does not depend on them. Checked along random
    /// gradient histories (and the same history scaled by 10⁴, and with all gradients 0), to
    /// 1e-12 of |θ| + Σγ_t.
    #[test]
    fn adamw_decay_term_is_independent_of_the_gradient(
        p in problem(),
        weight_decay in 0.001f64..0.5,
        beta1 in 0.0f64..0.99,
        beta2 in 0.5f64..0.9999,
        history in 0usize..3,
    ) {
        let mut p = p;
        match history {
            1 => p.grads.iter_mut().flatten().flatten().for_each(|g| *g *= 1e4),
            2 => p.grads.iter_mut().flatten().flatten().for_each(|g| *g = 0.0),
            _ => {}
        }
        let with = trajectory(&p, true, &config(beta1, beta2, 1e-8, weight_decay), 1.0);
        let without = trajectory(&p, true, &config(beta1, beta2, 1e-8, 0.0), 1.0);
        let lr_sum: f64 = p.lrs.iter().sum();
        for t in 1..with.len() {
            let lr = p.lrs[t - 1];
            for i in 0..p.shapes.len() {
                for j in 0..with[t][i].len() {
                    let prev = with[t - 1][i][j];
                    let adam_step = without[t][i][j] - without[t - 1][i][j];
                    let decay = with[t][i][j] - prev - adam_step;
                    let expected = -lr * weight_decay * prev;
                    prop_assert!(
                        (decay - expected).abs() <= 1e-12 * (prev.abs() + lr_sum + 1.0),
                        "THEOREM (AdamW, Loshchilov & Hutter 2019 Alg. 2): the decay term is −γλθ_{{t−1}}, independent of \
                         the gradient; contradicted at step {t}, parameter {i}[{j}]: decay {decay:e}, −γλθ = {expected:e}"
                    );
                }
            }
        }
    }
}
