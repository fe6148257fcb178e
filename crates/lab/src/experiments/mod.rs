//! The experiments: each turns a published claim into one command with a computed verdict. What
//! they share lives in [`crate::tasks`].

use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cells::CellState;
use crate::config::{Preset, resolve};
use crate::error::{LabError, Result};
use crate::run_dir::RunDir;
use crate::summary::Claims;

pub mod admin_profile;
pub mod amplification;
pub mod counting;
pub mod dependency;
pub mod depth_stability;
pub mod grad_norms;
pub mod heads;
pub mod heads_minilm;
pub mod hessian;
pub mod homogeneity;
pub mod lm_baseline;
pub mod norm_growth;
pub mod saturation_training;
pub mod warmup;

/// What an experiment is given.
pub struct ExperimentCtx {
    pub preset: Preset,
    /// Every seed is run and counted: no picking.
    pub seeds: Vec<u64>,
    /// A TOML file overriding fields of the preset.
    pub config_file: Option<PathBuf>,
    pub dir: RunDir,
    pub resume: bool,
    /// Which cells this run computes, loads or lists (see [`crate::cells`]).
    pub cell_state: CellState,
}

/// An experiment's config: a `quick` and a `full` preset, and the checks a resolved config must
/// pass before anything runs.
pub trait ExperimentConfig: Serialize + DeserializeOwned {
    /// The config of `preset`.
    fn preset(preset: Preset) -> Self;

    /// Refuses a config the experiment cannot run, naming what is wrong.
    fn validate(&self) -> Result<()> {
        Ok(())
    }
}

impl ExperimentCtx {
    /// An experiment's opening: its preset with the `--config` file laid over it, validated, and
    /// written as `config.toml` (by the runs that write results: see
    /// [`ExperimentCtx::write_config`]).
    pub fn open<C: ExperimentConfig>(&self) -> Result<C> {
        let cfg = resolve(C::preset(self.preset), self.config_file.as_deref())?;
        cfg.validate()?;
        self.write_config(&cfg)?;
        Ok(cfg)
    }
}

/// How many seeds an experiment's presets run (every one counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedPlan {
    pub quick: usize,
    pub full: usize,
}

impl SeedPlan {
    pub fn count(self, preset: Preset) -> usize {
        match preset {
            Preset::Quick => self.quick,
            Preset::Full => self.full,
        }
    }
}

/// Init-time measurements (nothing trained): cheap, so 3 seeds at quick and 5 at full.
pub const INIT_TIME: SeedPlan = SeedPlan { quick: 3, full: 5 };
/// Trained models: 1 seed at quick (a smoke run, decided by its point values), 3 at full.
pub const TRAINED: SeedPlan = SeedPlan { quick: 1, full: 3 };
/// One pretrained model, no seed to vary (its intervals resample inputs instead).
pub const SEEDLESS: SeedPlan = SeedPlan { quick: 1, full: 1 };

/// One experiment: a name, a one-line description, its seed counts, and its run.
pub struct Experiment {
    pub name: &'static str,
    pub about: &'static str,
    pub seeds: SeedPlan,
    /// Runs the experiment in `ctx.dir` and returns its checked claims.
    pub run: fn(&ExperimentCtx) -> Result<Claims>,
}

/// Every experiment, in the order `all` runs them.
pub const EXPERIMENTS: &[Experiment] = &[
    Experiment {
        name: "lm-baseline",
        seeds: TRAINED,
        about: "char-level LM on tiny-shakespeare, Post-LN and Pre-LN: the loss falls below the unigram entropy",
        run: lm_baseline::run,
    },
    Experiment {
        name: "norm-growth",
        seeds: TRAINED,
        about: "AdamW (wd 0) grows the parameter norm as √t with orthogonal updates and converging direction; SGD as t^¼; strong wd shrinks it",
        run: norm_growth::run,
    },
    Experiment {
        name: "homogeneity",
        seeds: INIT_TIME,
        about: "at random init, cos(f(x; cθ), f(x; 1000θ)) is monotone in c and higher for branch-LN than Post-LN",
        run: homogeneity::run,
    },
    Experiment {
        name: "saturation-training",
        seeds: TRAINED,
        about: "along training, cos(f(x; θ), f(x; 1000θ)) rises from < 0.6 at init to ≥ 0.95",
        run: saturation_training::run,
    },
    Experiment {
        name: "heads",
        seeds: TRAINED,
        about: "under saturation, the heads of trained char LMs are hard (argmax) or averaging",
        run: heads::run,
    },
    Experiment {
        name: "heads-minilm",
        seeds: SEEDLESS,
        about: "all-MiniLM-L6-v2 on Multi30k val: head classes under saturation; saturated attention is the large-c limit of softmax",
        run: heads_minilm::run,
    },
    Experiment {
        name: "counting",
        seeds: TRAINED,
        about: "a 2-layer transformer learns MAJORITY and aⁿbⁿ; averaging heads under saturation; the saturated model still counts",
        run: counting::run,
    },
    Experiment {
        name: "amplification",
        seeds: INIT_TIME,
        about: "encoder output change under W + η·sign(N(0,1)): linear in depth for Post-LN, sublinear for Pre-LN and Admin",
        run: amplification::run,
    },
    Experiment {
        name: "dependency",
        seeds: INIT_TIME,
        about: "residual dependency β_ii at init, 6-layer encoder: ≈1/√2 for Post-LN, ≈1/√(i+1) for Pre-LN, Admin like Pre-LN",
        run: dependency::run,
    },
    Experiment {
        name: "admin-profile",
        seeds: INIT_TIME,
        about: "Admin's profiled ω: starts at 1, increases, ω² linear in depth; the closed form's values",
        run: admin_profile::run,
    },
    Experiment {
        name: "grad-norms",
        seeds: INIT_TIME,
        about: "at init, ‖∇W²‖ of the last layer is depth-independent for Post-LN and ∝ 1/√L for Pre-LN; per-layer profiles",
        run: grad_norms::run,
    },
    Experiment {
        name: "hessian",
        seeds: INIT_TIME,
        about: "loss Hessian at Xavier init (exact HVPs), paired per seed: Post-LN has a larger top eigenvalue, trace and spectral width than Pre-LN",
        run: hessian::run,
    },
    Experiment {
        name: "warmup",
        seeds: TRAINED,
        about: "translation with Adam at lr 1e-3: Post-LN needs a warmup, Pre-LN does as well without one",
        run: warmup::run,
    },
    Experiment {
        name: "depth-stability",
        seeds: TRAINED,
        about: "Table 1 analogue: deep Post-LN fails while Pre-LN, Admin and DeepNorm train; shallow Post-LN ≥ Pre-LN",
        run: depth_stability::run,
    },
];

/// The experiment called `name`.
pub fn find(name: &str) -> Result<&'static Experiment> {
    EXPERIMENTS
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| LabError::UnknownExperiment(name.to_string()))
}
