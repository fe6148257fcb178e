//! The [`Optimizer`] trait every optimizer implements, what a step reports ([`StepStats`]), and
//! [`OptimizerConfig`]: one serde-readable value that builds any of them.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use saturn_tensor::{Float, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{OptimError, Result};
use crate::param_set::OwnsParamSet;
use crate::state::{self, OptimizerState};
use crate::{Adam, AdamConfig, GroupOptions, NormSgd, RAdam, RAdamConfig, Sgd, SgdConfig};

/// Which update rule an optimizer applies. Written into state files, so that loading the state
/// of one optimizer into another is an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OptimizerKind {
    #[serde(rename = "sgd")]
    Sgd,
    #[serde(rename = "norm_sgd")]
    NormSgd,
    #[serde(rename = "adam")]
    Adam,
    #[serde(rename = "adamw")]
    AdamW,
    #[serde(rename = "radam")]
    RAdam,
}

impl OptimizerKind {
    /// Every kind, in a fixed order.
    pub const ALL: [OptimizerKind; 5] = [
        OptimizerKind::Sgd,
        OptimizerKind::NormSgd,
        OptimizerKind::Adam,
        OptimizerKind::AdamW,
        OptimizerKind::RAdam,
    ];

    /// The name used in configs and state files: `sgd`, `norm_sgd`, `adam`, `adamw`, `radam`.
    pub fn as_str(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::NormSgd => "norm_sgd",
            OptimizerKind::Adam => "adam",
            OptimizerKind::AdamW => "adamw",
            OptimizerKind::RAdam => "radam",
        }
    }
}

impl fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OptimizerKind {
    type Err = OptimError;
    fn from_str(s: &str) -> Result<Self> {
        OptimizerKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            OptimError::InvalidConfig(format!(
                "unknown optimizer kind {s:?} (expected one of sgd, norm_sgd, adam, adamw, radam)"
            ))
        })
    }
}

/// What one [`Optimizer::step`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepStats {
    /// Parameters that had a gradient and were updated.
    pub updated: usize,
    /// Parameters without a gradient, left unchanged (their state and step count too).
    pub skipped: usize,
    /// ‖Δθ‖₂ over all updated parameters (accumulated in f64): the step length δ_t of the
    /// norm-growth argument ‖θ_{t+1}‖² = ‖θ_t‖² + 2⟨θ_t, δ_t⟩ + ‖δ_t‖² (Merrill et al. 2021).
    pub update_norm: f64,
}

/// An optimizer over named parameters (`layers.3.attn.q.weight` style).
///
/// Every method but [`step`](Optimizer::step) has a default that reads the optimizer's
/// parameter set, so an optimizer's file holds only its update rule and its config.
///
/// [`step`](Optimizer::step) reads each parameter's [`Tensor::grad`], skips parameters that
/// have none, and updates the rest in place (no graph is recorded). The learning rate is an
/// argument so that a [`Schedule`](crate::Schedule) (or anything else) drives it:
///
/// ```
/// use saturn_optim::{Adam, AdamConfig, Optimizer, Schedule};
/// use saturn_tensor::Tensor;
///
/// let w = Tensor::<f64>::param_from_vec(vec![1.0, -2.0], &[2])?;
/// let mut opt = Adam::new(vec![("w".to_string(), w.clone())], AdamConfig::default())?;
/// let schedule = Schedule::inverse_sqrt(1e-3, 4000, 1e-7)?;
/// for _ in 0..3 {
///     let loss = w.mul(&w)?.sum_all();
///     loss.backward()?;
///     opt.step(schedule.lr_at(opt.steps()))?;
///     opt.zero_grad();
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Optimizer<T: Float>: OwnsParamSet<T> {
    /// Which update rule this is.
    fn kind(&self) -> OptimizerKind {
        self.param_set().kind()
    }

    /// Applies one update with learning rate `lr` (≥ 0, finite; each parameter is stepped with
    /// `lr · lr_scale` of its group). Checks every gradient's shape before changing anything.
    /// The one method each optimizer writes: its update rule.
    fn step(&mut self, lr: f64) -> Result<StepStats>;

    /// Clears the gradient of every parameter.
    fn zero_grad(&self) {
        self.param_set().zero_grad()
    }

    /// How many times [`step`](Optimizer::step) has run (restored by [`load`](Optimizer::load)):
    /// the step index to ask a schedule for.
    fn steps(&self) -> u64 {
        self.param_set().steps()
    }

    /// The parameters, in the order given.
    fn params(&self) -> Vec<(&str, &Tensor<T>)> {
        self.param_set().params()
    }

    /// The options each parameter is stepped with, after its group rule.
    fn param_options(&self) -> Vec<(&str, GroupOptions)> {
        self.param_set().options()
    }

    /// A copy of the optimizer's state: step counts and buffers (moments) per parameter name.
    fn state(&self) -> OptimizerState<T> {
        self.param_set().export()
    }

    /// Replaces the state with `state`, after checking that it belongs to an optimizer of the
    /// same kind over parameters of the same names and shapes. On error nothing changes.
    /// Hyper-parameters are not part of the state: they come from the optimizer's config.
    fn load_state(&mut self, state: OptimizerState<T>) -> Result<()> {
        self.param_set_mut().import(state)
    }

    /// Writes the state to a safetensors file (atomically: a temporary file, then a rename).
    fn save(&self, path: &Path) -> Result<()> {
        state::save_state(&self.state(), path)
    }

    /// Reads a state file written by [`save`](Optimizer::save) and loads it.
    fn load(&mut self, path: &Path) -> Result<()> {
        let state = state::load_state::<T>(path)?;
        self.load_state(state).map_err(|e| e.in_file(path))
    }
}

/// Any optimizer with its hyper-parameters, as read from a config file. The `kind` field picks
/// the optimizer; the other fields are those of its config struct.
///
/// ```
/// use saturn_optim::{OptimizerConfig, OptimizerKind};
/// let cfg: OptimizerConfig = serde_json::from_str(
///     r#"{"kind": "adamw", "betas": [0.9, 0.98], "weight_decay": 0.01,
///         "groups": [{"pattern": "*.bias", "weight_decay": 0.0}]}"#,
/// )?;
/// assert_eq!(cfg.kind(), OptimizerKind::AdamW);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum OptimizerConfig {
    #[serde(rename = "sgd")]
    Sgd(SgdConfig),
    #[serde(rename = "norm_sgd")]
    NormSgd(SgdConfig),
    #[serde(rename = "adam")]
    Adam(AdamConfig),
    #[serde(rename = "adamw")]
    AdamW(AdamConfig),
    #[serde(rename = "radam")]
    RAdam(RAdamConfig),
}

impl OptimizerConfig {
    /// Which optimizer this config builds.
    pub fn kind(&self) -> OptimizerKind {
        match self {
            OptimizerConfig::Sgd(_) => OptimizerKind::Sgd,
            OptimizerConfig::NormSgd(_) => OptimizerKind::NormSgd,
            OptimizerConfig::Adam(_) => OptimizerKind::Adam,
            OptimizerConfig::AdamW(_) => OptimizerKind::AdamW,
            OptimizerConfig::RAdam(_) => OptimizerKind::RAdam,
        }
    }

    /// Builds the optimizer over `params` (validating the hyper-parameters).
    pub fn build<T: Float>(
        &self,
        params: Vec<(String, Tensor<T>)>,
    ) -> Result<Box<dyn Optimizer<T> + Send + Sync>> {
        Ok(match self {
            OptimizerConfig::Sgd(c) => Box::new(Sgd::new(params, c.clone())?),
            OptimizerConfig::NormSgd(c) => Box::new(NormSgd::new(params, c.clone())?),
            OptimizerConfig::Adam(c) => Box::new(Adam::new(params, c.clone())?),
            OptimizerConfig::AdamW(c) => Box::new(Adam::adamw(params, c.clone())?),
            OptimizerConfig::RAdam(c) => Box::new(RAdam::new(params, c.clone())?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip() {
        for k in OptimizerKind::ALL {
            assert_eq!(k.as_str().parse::<OptimizerKind>().unwrap(), k);
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
        }
        assert!("lamb".parse::<OptimizerKind>().is_err());
    }

    #[test]
    fn config_reads_every_kind_and_rejects_unknown_fields() {
        for kind in ["sgd", "norm_sgd", "adam", "radam"] {
            let cfg: OptimizerConfig =
                serde_json::from_str(&format!(r#"{{"kind": "{kind}", "weight_decay": 0.0}}"#))
                    .unwrap();
            assert_eq!(cfg.kind().as_str(), kind);
        }
        let typo = serde_json::from_str::<OptimizerConfig>(
            r#"{"kind": "adam", "weight_decay": 0.0, "beta": [0.9, 0.98]}"#,
        );
        assert!(typo.unwrap_err().to_string().contains("unknown field"), "typo accepted");
        let unknown = serde_json::from_str::<OptimizerConfig>(r#"{"kind": "lamb"}"#);
        assert!(unknown.is_err());
    }

    /// Every optimizer kind, with options that give it state to carry (momentum for SGD).
    fn all_configs() -> Vec<OptimizerConfig> {
        let sgd =
            SgdConfig { momentum: 0.9, nesterov: true, weight_decay: 1e-3, ..SgdConfig::default() };
        let adam = AdamConfig { betas: [0.9, 0.98], weight_decay: 0.01, ..AdamConfig::default() };
        vec![
            OptimizerConfig::Sgd(SgdConfig { dampening: 0.1, nesterov: false, ..sgd.clone() }),
            OptimizerConfig::NormSgd(sgd),
            OptimizerConfig::Adam(adam.clone()),
            OptimizerConfig::AdamW(adam),
            OptimizerConfig::RAdam(RAdamConfig { weight_decay: 1e-4, ..RAdamConfig::default() }),
        ]
    }

    /// Two f32 parameters with fixed values; `c` has no gradient at odd steps.
    fn fresh_params(values: Option<&[Vec<f32>]>) -> Vec<(String, Tensor<f32>)> {
        let default = [vec![0.5, -0.25, 1.5, 2.0, -1.0, 0.75], vec![0.1, -0.2]];
        let values = values.unwrap_or(&default);
        vec![
            ("layers.0.w".into(), Tensor::param_from_vec(values[0].clone(), &[2, 3]).unwrap()),
            ("layers.0.c".into(), Tensor::param_from_vec(values[1].clone(), &[2]).unwrap()),
        ]
    }

    /// A deterministic pseudo-gradient for step `t`.
    fn set_step_grads(params: &[(&str, &Tensor<f32>)], t: u64) {
        for (i, (_, p)) in params.iter().enumerate() {
            if i == 1 && t % 2 == 1 {
                p.set_grad(None);
                continue;
            }
            let g: Vec<f32> = (0..p.len())
                .map(|j| ((t as f32 + 1.0) * (j as f32 + 1.3) * (i as f32 + 0.7)).sin())
                .collect();
            p.set_grad(Some(Tensor::from_vec(g, &p.shape()).unwrap()));
        }
    }

    fn bits(opt: &dyn Optimizer<f32>) -> Vec<u32> {
        opt.params().iter().flat_map(|(_, p)| p.to_vec()).map(f32::to_bits).collect()
    }

    #[test]
    fn save_load_step_equals_step_bit_for_bit() {
        let dir = std::env::temp_dir().join(format!("saturn-optim-resume-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for config in all_configs() {
            let path = dir.join(format!("{}.safetensors", config.kind()));
            // Run A: 4 steps, saving the state after step 3.
            let mut a = config.build(fresh_params(None)).unwrap();
            for t in 0..3 {
                set_step_grads(&a.params(), t);
                a.step(1e-2).unwrap();
            }
            a.save(&path).unwrap();
            let values: Vec<Vec<f32>> = a.params().iter().map(|(_, p)| p.to_vec()).collect();
            // Run B: a new optimizer over parameters with A's values, resumed from the file.
            let mut b = config.build(fresh_params(Some(&values))).unwrap();
            b.load(&path).unwrap();
            assert_eq!(b.steps(), 3);
            assert_eq!(b.state(), a.state());
            for t in 3..6 {
                set_step_grads(&a.params(), t);
                set_step_grads(&b.params(), t);
                a.step(1e-2).unwrap();
                b.step(1e-2).unwrap();
                assert_eq!(bits(&*a), bits(&*b), "{} diverged at step {t}", config.kind());
            }
            assert_eq!(a.state(), b.state());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn loading_a_state_that_does_not_fit_is_a_clear_error() {
        let mut adam =
            OptimizerConfig::Adam(AdamConfig::default()).build(fresh_params(None)).unwrap();
        set_step_grads(&adam.params(), 0);
        adam.step(1e-3).unwrap();
        let state = adam.state();

        // Another optimizer kind.
        let mut radam =
            OptimizerConfig::RAdam(RAdamConfig::default()).build(fresh_params(None)).unwrap();
        let err = radam.load_state(state.clone()).unwrap_err().to_string();
        assert!(err.contains("adam optimizer, this one is radam"), "{err}");

        // Other parameter names.
        let renamed: Vec<_> = fresh_params(None)
            .into_iter()
            .map(|(n, p)| (n.replace("layers", "blocks"), p))
            .collect();
        let mut other = OptimizerConfig::Adam(AdamConfig::default()).build(renamed).unwrap();
        let err = other.load_state(state.clone()).unwrap_err().to_string();
        assert!(err.contains("\"blocks.0.w\"") && err.contains("\"layers.0.w\""), "{err}");

        // Same names, other shapes.
        let reshaped = vec![
            ("layers.0.w".into(), Tensor::<f32>::param_from_vec(vec![0.0; 6], &[3, 2]).unwrap()),
            ("layers.0.c".into(), Tensor::<f32>::param_from_vec(vec![0.0; 2], &[2]).unwrap()),
        ];
        let mut other = OptimizerConfig::Adam(AdamConfig::default()).build(reshaped).unwrap();
        let before = other.state();
        let err = other.load_state(state.clone()).unwrap_err().to_string();
        assert!(err.contains("shape [2, 3]") && err.contains("[3, 2]"), "{err}");
        assert_eq!(other.state(), before, "a refused load changes nothing");

        // SGD without momentum keeps no buffer, so an SGD-with-momentum state does not fit.
        let momentum = OptimizerConfig::Sgd(SgdConfig { momentum: 0.9, ..SgdConfig::default() });
        let mut sgd_m = momentum.build(fresh_params(None)).unwrap();
        set_step_grads(&sgd_m.params(), 0);
        sgd_m.step(1e-3).unwrap();
        let mut plain =
            OptimizerConfig::Sgd(SgdConfig::default()).build(fresh_params(None)).unwrap();
        let err = plain.load_state(sgd_m.state()).unwrap_err().to_string();
        assert!(err.contains("momentum_buffer"), "{err}");

        // From a file: the error names the path.
        let dir = std::env::temp_dir().join(format!("saturn-optim-misfit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("adam.safetensors");
        adam.save(&path).unwrap();
        let err = radam.load(&path).unwrap_err().to_string();
        assert!(err.contains("adam.safetensors") && err.contains("radam"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn build_validates_hyper_parameters() {
        let cfg: OptimizerConfig =
            serde_json::from_str(r#"{"kind": "adam", "betas": [0.9, 1.0], "weight_decay": 0.0}"#)
                .unwrap();
        let p = Tensor::<f32>::param_from_vec(vec![1.0], &[1]).unwrap();
        let err = cfg.build(vec![("p".into(), p)]).err().expect("β2 = 1 must be refused");
        assert!(err.to_string().contains("betas[1]"), "{err}");
    }
}
