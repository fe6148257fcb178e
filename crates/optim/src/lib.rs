//! # saturn-optim
//!
//! The optimizers, learning-rate schedules and gradient clipping that the studies of Saturn
//! train with, written to match `torch.optim` update for update so that results compare with
//! PyTorch runs, and with optimizer state that saves and loads so a run resumes bit for bit.
//!
//! Why this matters here: parameter-norm growth depends on the optimizer (‖θ‖ ∝ √t under
//! Adam-type updates, ∝ t^¼ under plain SGD on scale-invariant weights; Merrill et al. 2021),
//! and the warmup and depth studies need the papers' exact optimizers (Adam β = (0.9, 0.98),
//! RAdam in Transformer-Clinic, fairseq's inverse-sqrt warmup).
//!
//! ```
//! use saturn_optim::{Adam, AdamConfig, Optimizer, ParamGroups, Schedule, clip_grad_norm};
//! use saturn_tensor::Tensor;
//!
//! let w = Tensor::<f32>::param_from_vec(vec![0.5, -1.0, 2.0, 0.1], &[2, 2])?;
//! let b = Tensor::<f32>::param_from_vec(vec![0.0, 0.0], &[2])?;
//! let params = vec![("layer.weight".to_string(), w.clone()), ("layer.bias".to_string(), b.clone())];
//! let config = AdamConfig {
//!     betas: [0.9, 0.98],
//!     weight_decay: 0.01,
//!     groups: ParamGroups::no_decay(["*.bias"]),
//!     ..AdamConfig::default()
//! };
//! let mut opt = Adam::adamw(params.clone(), config)?;
//! let schedule = Schedule::inverse_sqrt(5e-4, 4000, 1e-7)?;
//! let x = Tensor::<f32>::from_vec(vec![1.0, 2.0], &[2, 1])?;
//! for _ in 0..3 {
//!     let loss = w.matmul(&x)?.reshape(&[2])?.add(&b)?.powf(2.0).sum_all();
//!     opt.zero_grad();
//!     loss.backward()?;
//!     let grad_norm = clip_grad_norm(&params, 1.0)?; // the norm before clipping
//!     assert!(grad_norm > 0.0);
//!     opt.step(schedule.lr_at(opt.steps()))?;
//! }
//! # let dir = std::env::temp_dir().join(format!("saturn-optim-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! # let path = dir.join("optim.safetensors");
//! opt.save(&path)?; // … and later, in a fresh optimizer over the same names: opt.load(&path)?
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - [`Optimizer`]: the common trait — `step(lr)`, `zero_grad`, `steps`, `state` / `load_state`,
//!   `save` / `load`. Parameters are `(name, tensor)` pairs in PyTorch `state_dict` style.
//! - [`Sgd`] (momentum, dampening, Nesterov, weight decay), [`NormSgd`] (steps along g/‖g‖ per
//!   tensor, as in the norm-growth reference code), [`Adam`] (Adam and AdamW), [`RAdam`].
//!   Each module's docs give its update formulas and their source.
//! - [`ParamGroups`]: per-parameter options (weight decay, lr scale) by name pattern, the
//!   first matching rule winning.
//! - [`Schedule`]: constant, linear warmup, fairseq inverse-sqrt, linear and cosine decay;
//!   `lr_at(step)` at any step.
//! - [`clip_grad_norm`] / [`grad_norm`]: global-norm clipping that reports the pre-clip norm.
//! - [`OptimizerState`] and the [`state`] module: the safetensors state file.
//! - [`OptimizerConfig`]: any optimizer as one serde value (TOML / JSON configs), with
//!   unknown fields and bad values refused.
//!
//! All element types are generic over [`saturn_tensor::Float`] (`f32`, `f64`). Bad input is an
//! [`OptimError`], never a panic.

mod adam;
mod clip;
mod error;
mod groups;
mod norm_sgd;
mod optimizer;
mod param_set;
mod radam;
mod schedule;
mod sgd;
pub mod state;
#[cfg(test)]
mod testing;

pub use adam::{Adam, AdamConfig};
pub use clip::{clip_grad_norm, grad_norm, sum_of_squares};
pub use error::{OptimError, Result};
pub use groups::{GroupOptions, GroupRule, ParamGroups, glob_matches};
pub use norm_sgd::NormSgd;
pub use optimizer::{Optimizer, OptimizerConfig, OptimizerKind, StepStats};
pub use radam::{RAdam, RAdamConfig, radam_rectification, radam_rho};
pub use schedule::{Decay, Schedule};
pub use sgd::{Sgd, SgdConfig};
pub use state::{OptimizerState, ParamState};
