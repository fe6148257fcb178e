//! The character-level LM setup of the norm-growth experiments (`norm-growth`,
//! `saturation-training`, `heads`): Merrill et al.'s LM recipe at CPU scale — AdamW at a
//! constant lr 1e-2 with no weight decay (the reference code's defaults,
//! docs/REFERENCES.md#merrill-experiments) — and the [`LmRecipe`] that trains every scheme, on
//! the shipped tiny-shakespeare, and the fixed validation windows that probes read.

use saturn_layers::{Activation, DecoderLm, InitScheme, LmConfig, ResidualScheme};
use saturn_optim::{AdamConfig, Decay, OptimizerConfig, Schedule};
use saturn_saturation::TokenBatch;
use serde::{Deserialize, Serialize};

use super::char_corpus::CharCorpus;
use crate::error::Result;
use crate::train::{LmTask, TrainConfig};

/// The model's shape (the vocabulary and length come from the data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelShape {
    pub d_model: usize,
    pub n_heads: usize,
    pub d_ff: usize,
    pub n_layers: usize,
    pub act: Activation,
    /// How parameters are drawn (fairseq's Xavier-uniform unless set; `torch_default` is what
    /// the norm-growth reference code's modules use).
    #[serde(default)]
    pub init: InitScheme,
}

impl ModelShape {
    /// Width `d`, `n_heads` heads, `n_layers` layers, d_ff = 4d, ReLU and the default init: the
    /// shape the norm-growth LMs start from.
    pub fn of_width(d: usize, n_heads: usize, n_layers: usize) -> Self {
        ModelShape {
            d_model: d,
            n_heads,
            d_ff: 4 * d,
            n_layers,
            act: Activation::Relu,
            init: InitScheme::default(),
        }
    }
}

/// Batch shape and length of a char-LM run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LmData {
    pub batch_size: usize,
    pub seq_len: usize,
    /// Validation batches (of `batch_size` windows) for the loss.
    pub eval_batches: usize,
}

/// The LM config of one scheme (dropout 0, the shape's init, learned positions, biases).
pub fn lm_config(
    shape: &ModelShape,
    scheme: ResidualScheme,
    vocab: usize,
    seq_len: usize,
) -> LmConfig {
    LmConfig {
        residual: scheme,
        act: shape.act,
        init: shape.init,
        ..LmConfig::new(vocab, shape.d_model, shape.n_heads, shape.d_ff, shape.n_layers, seq_len)
    }
}

/// AdamW (PyTorch's defaults β = (0.9, 0.999), ε = 1e-8) with decoupled weight decay `wd`.
pub fn adamw(wd: f64) -> OptimizerConfig {
    OptimizerConfig::AdamW(AdamConfig { weight_decay: wd, ..AdamConfig::default() })
}

/// How a trained char LM of the Merrill experiments is trained (issue 21: the reference's recipe
/// leaves its Post-LN LM on the unigram plateau, so claims about trained heads and saturation
/// use a recipe under which every scheme learns, and the reference's is run as a named variant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LmRecipe {
    /// The norm-growth reference's `finetune_trans.py`: AdamW (wd 0) at a constant lr (1e-2
    /// there), no warmup, no clipping. Its post-norm ("control") LM never trains: the committed
    /// `figs/finetune-trans/penn/control/loss.pdf` sits on the unigram plateau for 5 epochs
    /// (docs/REFERENCES.md#target-11).
    Reference,
    /// lm-baseline's recipe, which trains Post-LN: AdamW (wd 0), the lr warmed up linearly
    /// over the first tenth of the steps and then constant, gradients clipped at norm 1.
    Stable,
}

impl LmRecipe {
    pub fn name(self) -> &'static str {
        match self {
            LmRecipe::Reference => "reference",
            LmRecipe::Stable => "stable",
        }
    }

    /// The training config of `steps` steps at (peak) learning rate `lr`.
    pub fn train_config(self, steps: usize, lr: f64, log_every: usize) -> Result<TrainConfig> {
        let base = constant_lr(steps, adamw(0.0), lr, log_every);
        Ok(match self {
            LmRecipe::Reference => base,
            LmRecipe::Stable => TrainConfig {
                schedule: Schedule::new(lr, (steps / 10) as u64, 0.0, Decay::Constant)?,
                clip: Some(1.0),
                ..base
            },
        })
    }
}

/// A constant-lr training config with no clipping (Merrill et al.'s LM recipe), checkpointed
/// every tenth of the steps so that a preempted cell's `--resume` loses at most a tenth of its
/// training.
pub fn constant_lr(
    steps: usize,
    optimizer: OptimizerConfig,
    lr: f64,
    log_every: usize,
) -> TrainConfig {
    TrainConfig {
        steps,
        optimizer,
        schedule: Schedule::constant(lr).expect("a positive constant lr"),
        clip: None,
        eval_every: (steps / 10).max(1),
        log_every: log_every.max(1),
        checkpoint_every: (steps / 10).max(1),
    }
}

/// Training cost per token, layer and d²: about 4 ns at one thread, from the recorded runs
/// (lm-baseline quick, saturation-training, heads and norm-growth full: 3–6 ns, the norm
/// tracker's per-step snapshot making norm-growth the dearest).
const SECONDS_PER_TOKEN_LAYER_D2: f64 = 4e-9;

/// A rough estimate of the core-minutes of `steps` training steps of batches of
/// `batch_size × seq_len` characters with `shape`, for a cell's cost.
pub fn training_minutes(
    shape: &ModelShape,
    batch_size: usize,
    seq_len: usize,
    steps: usize,
) -> f64 {
    let per_step = (batch_size * seq_len * shape.n_layers * shape.d_model * shape.d_model) as f64;
    steps as f64 * per_step * SECONDS_PER_TOKEN_LAYER_D2 / 60.0
}

/// The steps of one epoch of the training stream in windows of `batch_size × seq_len`.
pub fn epoch_steps(batch_size: usize, seq_len: usize) -> usize {
    let chars = saturn_datasets::tiny_shakespeare().chars().count();
    let train = (chars as f64 * (1.0 - saturn_datasets::TINY_SHAKESPEARE_VALID_FRACTION)) as usize;
    train.div_ceil(batch_size * seq_len)
}

/// The training task of a run.
pub fn lm_task<'a>(corpus: &'a CharCorpus, data: &LmData, seed: u64) -> LmTask<'a> {
    LmTask {
        train: &corpus.train,
        valid: &corpus.valid,
        vocab: corpus.vocab,
        batch_size: data.batch_size,
        seq_len: data.seq_len,
        eval_batches: data.eval_batches,
        seed,
    }
}

/// The first `windows` validation windows of the run's fixed validation batches, as a probe
/// batch (every token real).
pub fn probe_batch(task: &LmTask<'_>, windows: usize) -> Result<TokenBatch> {
    let rows: Vec<Vec<usize>> = task
        .valid_batches()?
        .into_iter()
        .flat_map(|(inputs, _)| inputs.outer_iter().map(|r| r.to_vec()).collect::<Vec<_>>())
        .take(windows)
        .collect();
    let t = task.seq_len;
    let ids = saturn_tensor::ndarray::Array2::from_shape_fn((rows.len(), t), |(b, j)| rows[b][j]);
    Ok(TokenBatch::new(ids))
}

/// A freshly initialized f32 model.
pub fn new_lm(
    shape: &ModelShape,
    scheme: ResidualScheme,
    corpus: &CharCorpus,
    seq_len: usize,
    seed: u64,
) -> Result<DecoderLm<f32>> {
    Ok(DecoderLm::new(lm_config(shape, scheme, corpus.vocab, seq_len), seed)?)
}

/// `label` for a scheme and seed, e.g. `post-seed0`.
pub fn run_label(scheme: ResidualScheme, seed: u64) -> String {
    format!("{}-seed{seed}", scheme.name())
}
