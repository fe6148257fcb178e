//! The training loop shared by experiments: batch → loss → backward → clip → step → schedule,
//! with validation and metrics every k steps, checkpoints every m steps, resume, and divergence
//! detection.
//!
//! Determinism and resume: the batch and the dropout mask of step t come from RNGs seeded by
//! (seed, t) alone, so a run is a pure function of its config, seed and thread count, and a
//! checkpoint needs only the parameters, the optimizer state and the metrics so far. A resumed
//! run is bit-identical to an uninterrupted one.
//!
//! Checkpoints live in `checkpoints/step-NNNNNNNN/` (model, optimizer, `state.json`); the file
//! `checkpoints/latest` names the newest complete one and is written last, so a crash while
//! saving leaves the previous checkpoint in force.
//!
//! Divergence: a non-finite training or validation loss, or a validation loss from half of the
//! steps on (and at least 50 steps in) above both the loss of the uniform prediction (ln V) and
//! the run's own loss at step 0, ends the run with `diverged_at_step` set; the caller's sweep
//! goes on. A model that never moves (learning rate 0) keeps its step-0 loss: not learning is
//! not diverging, and gates on learning (`saturn_lab::claim::Gate::learned`) catch it instead.

use rand::SeedableRng;
use rand_pcg::Pcg64;
use saturn_datasets::batch::{LmBatch, LmStream};
use saturn_layers::{DecoderLm, ForwardCtx, Module, checkpoint};
use saturn_optim::{Optimizer, OptimizerConfig, Schedule, clip_grad_norm, grad_norm};
use saturn_tensor::Tensor;
use saturn_tensor::ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result, io_err};
use crate::metrics::Metrics;
use crate::progress::Progress;
use crate::run_dir::RunDir;

fn ten() -> usize {
    10
}

/// The optimization side of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub steps: usize,
    pub optimizer: OptimizerConfig,
    pub schedule: Schedule,
    /// Global gradient-norm clip (none if absent).
    #[serde(default)]
    pub clip: Option<f64>,
    /// Validate every this many steps (and at the end).
    pub eval_every: usize,
    /// Record training metrics every this many steps (the loss is averaged over them).
    #[serde(default = "ten")]
    pub log_every: usize,
    /// Checkpoint every this many steps (0: only at the end).
    #[serde(default)]
    pub checkpoint_every: usize,
}

impl TrainConfig {
    /// Checks the loop's own values.
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 || self.eval_every == 0 || self.log_every == 0 {
            return Err(LabError::Config(
                "steps, eval_every and log_every must be positive".into(),
            ));
        }
        if self.clip.is_some_and(|c| c.is_nan() || c <= 0.0) {
            return Err(LabError::Config("clip must be positive".into()));
        }
        Ok(self.schedule.validate()?)
    }
}

/// What a model is trained on: a loss for step t, a validation loss, and the loss of the
/// uniform prediction.
pub trait Task {
    type Model: Module<f32>;
    /// The training loss of step `step` (its batch is a function of the step).
    fn train_loss(&self, model: &Self::Model, step: usize) -> Result<Tensor<f32>>;
    /// The validation loss on fixed batches.
    fn valid_loss(&self, model: &Self::Model) -> Result<f64>;
    /// ln V: the loss of predicting uniformly.
    fn uniform_loss(&self) -> f64;
}

/// Language modeling on a token stream: random windows for training, fixed windows for
/// validation.
pub struct LmTask<'a> {
    pub train: &'a LmStream,
    pub valid: &'a LmStream,
    pub vocab: usize,
    pub batch_size: usize,
    pub seq_len: usize,
    pub eval_batches: usize,
    pub seed: u64,
}

/// A seed for (run seed, purpose, step): SplitMix64 of the mixed words.
pub fn derive_seed(seed: u64, purpose: u64, step: u64) -> u64 {
    let mut z = seed
        ^ purpose.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ step.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const BATCH: u64 = 1;
const DROPOUT: u64 = 2;
const EVAL: u64 = 3;

fn as_arrays(batch: LmBatch) -> Result<(Array2<usize>, Array2<usize>)> {
    let shape = (batch.batch_size, batch.seq_len);
    let bad = |e: saturn_tensor::ndarray::ShapeError| LabError::Run(format!("batch shape: {e}"));
    Ok((
        Array2::from_shape_vec(shape, batch.inputs).map_err(bad)?,
        Array2::from_shape_vec(shape, batch.targets).map_err(bad)?,
    ))
}

impl LmTask<'_> {
    /// The inputs and targets of training step `step`.
    pub fn batch(&self, step: usize) -> Result<(Array2<usize>, Array2<usize>)> {
        let mut rng = Pcg64::seed_from_u64(derive_seed(self.seed, BATCH, step as u64));
        as_arrays(self.train.random_batch(self.batch_size, self.seq_len, &mut rng)?)
    }

    /// The fixed validation batches.
    pub fn valid_batches(&self) -> Result<Vec<(Array2<usize>, Array2<usize>)>> {
        let mut rng = Pcg64::seed_from_u64(derive_seed(self.seed, EVAL, 0));
        (0..self.eval_batches)
            .map(|_| as_arrays(self.valid.random_batch(self.batch_size, self.seq_len, &mut rng)?))
            .collect()
    }
}

impl Task for LmTask<'_> {
    type Model = DecoderLm<f32>;

    fn train_loss(&self, model: &DecoderLm<f32>, step: usize) -> Result<Tensor<f32>> {
        let (inputs, targets) = self.batch(step)?;
        let mut ctx = ForwardCtx::train(derive_seed(self.seed, DROPOUT, step as u64));
        Ok(model.loss(inputs.view(), targets.view(), &mut ctx)?)
    }

    fn valid_loss(&self, model: &DecoderLm<f32>) -> Result<f64> {
        saturn_tensor::no_grad(|| {
            let batches = self.valid_batches()?;
            let mut total = 0.0;
            for (inputs, targets) in &batches {
                total += model
                    .loss(inputs.view(), targets.view(), &mut ForwardCtx::eval())?
                    .item()? as f64;
            }
            Ok(total / batches.len().max(1) as f64)
        })
    }

    fn uniform_loss(&self) -> f64 {
        (self.vocab as f64).ln()
    }
}

/// How a training run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOutcome {
    pub metrics: Metrics,
    /// The step at which the loss became non-finite or rose above ln V and its step-0 value;
    /// `None` otherwise (which does not mean it learned).
    pub diverged_at_step: Option<usize>,
    /// The last validation loss.
    pub final_valid_loss: Option<f64>,
    /// Steps completed.
    pub steps: usize,
}

/// The state saved with a checkpoint as `state.json` (besides model and optimizer files).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoopState {
    /// The config the run was started with, as JSON: resuming under another config is refused.
    config: String,
    steps_done: usize,
    metrics: Metrics,
    diverged_at_step: Option<usize>,
    window_sum: f64,
    window_count: usize,
}

/// Called at every log step with the number of steps done and the model: extra metrics to
/// record (norms, cosines, …).
pub type Observer<'a, M> = dyn FnMut(usize, &M) -> Result<Vec<(String, f64)>> + 'a;

/// Trains `model` on `task` under `cfg`, writing `metrics.csv` and checkpoints into `dir`;
/// with `resume`, continues from the newest checkpoint there.
pub fn train<K: Task>(
    model: &K::Model,
    task: &K,
    cfg: &TrainConfig,
    dir: &RunDir,
    resume: bool,
    label: &str,
    observe: &mut Observer<'_, K::Model>,
) -> Result<TrainOutcome> {
    cfg.validate()?;
    let params = model.named_parameters();
    let mut opt = cfg.optimizer.build(params.clone())?;
    let config_json = serde_json::to_string(cfg).map_err(|e| LabError::Run(e.to_string()))?;
    let mut state = LoopState {
        config: config_json.clone(),
        steps_done: 0,
        metrics: Metrics::default(),
        diverged_at_step: None,
        window_sum: 0.0,
        window_count: 0,
    };
    if resume && let Some(saved) = load_checkpoint(dir, model, opt.as_mut())? {
        if saved.config != config_json {
            return Err(LabError::Run(format!(
                "{}: the checkpoint was made with another training config; remove it or run without --resume",
                dir.path.display()
            )));
        }
        state = saved;
    }
    let mut events = crate::metrics::EventLog::start(&dir.path, &state.metrics)?;
    if state.steps_done == 0 && state.metrics.rows.is_empty() {
        let mut row = vec![("valid_loss".to_string(), task.valid_loss(model)?)];
        row.extend(observe(0, model)?);
        state.metrics.push(0, row);
    }
    let mut progress = Progress::new(label, cfg.steps as u64);
    progress.set(state.steps_done as u64, "");
    while state.steps_done < cfg.steps && state.diverged_at_step.is_none() {
        events.sync(&state.metrics)?; // rows as TensorBoard events, as they come
        let step = state.steps_done;
        let loss = task.train_loss(model, step)?;
        let value = loss.item()? as f64;
        if !value.is_finite() {
            state.diverged_at_step = Some(step);
            state.metrics.push(step, [("train_loss".to_string(), value)]);
            break;
        }
        opt.zero_grad();
        loss.backward()?;
        drop(loss);
        let norm = match cfg.clip {
            Some(c) => clip_grad_norm(&params, c)?,
            None => grad_norm(&params),
        };
        let lr = cfg.schedule.lr_at(step as u64);
        opt.step(lr)?;
        saturn_tensor::failpoint::hit("train:step");
        state.steps_done += 1;
        state.window_sum += value;
        state.window_count += 1;
        let done = state.steps_done;
        let last = done == cfg.steps;
        if done.is_multiple_of(cfg.log_every) || last || done.is_multiple_of(cfg.eval_every) {
            let mut row = vec![("lr".to_string(), lr), ("grad_norm".to_string(), norm)];
            if state.window_count > 0 {
                row.push(("train_loss".to_string(), state.window_sum / state.window_count as f64));
                (state.window_sum, state.window_count) = (0.0, 0);
            }
            if done.is_multiple_of(cfg.eval_every) || last {
                let valid = task.valid_loss(model)?;
                row.push(("valid_loss".to_string(), valid));
                let at_start = state.metrics.series("valid_loss").first().map_or(f64::NAN, |p| p.1);
                let worse_than_start =
                    valid > task.uniform_loss() && (at_start.is_nan() || valid > at_start);
                if !valid.is_finite() || (done >= (cfg.steps / 2).max(50) && worse_than_start) {
                    state.diverged_at_step = Some(done);
                }
                progress.set(done as u64, &format!("valid {valid:.3}"));
            }
            row.extend(observe(done, model)?);
            state.metrics.push(done, row);
        }
        progress.set(done as u64, "");
        if (cfg.checkpoint_every > 0 && done.is_multiple_of(cfg.checkpoint_every))
            || last
            || state.diverged_at_step.is_some()
        {
            save_checkpoint(dir, model, opt.as_ref(), &state)?;
        }
    }
    progress.finish(&match state.diverged_at_step {
        Some(s) => format!("diverged at step {s}"),
        None => format!("valid {:.4}", state.metrics.last("valid_loss").unwrap_or(f64::NAN)),
    });
    events.sync(&state.metrics)?;
    dir.write_metrics("metrics.csv", &state.metrics)?;
    Ok(TrainOutcome {
        final_valid_loss: state.metrics.last("valid_loss"),
        diverged_at_step: state.diverged_at_step,
        steps: state.steps_done,
        metrics: state.metrics,
    })
}

/// Saves a checkpoint as `checkpoints/step-N/` (model, optimizer, then `state.json`, each
/// written atomically), then names it in `checkpoints/latest`. The previous checkpoint is kept
/// as the fallback; older ones are removed.
fn save_checkpoint<M: Module<f32>>(
    dir: &RunDir,
    model: &M,
    opt: &(dyn Optimizer<f32> + Send + Sync),
    state: &LoopState,
) -> Result<()> {
    let root = dir.sub("checkpoints")?;
    let name = format!("step-{:08}", state.steps_done);
    let ck = root.sub(&name)?;
    checkpoint::save(&ck.file("model.safetensors"), model, &Default::default())?;
    opt.save(&ck.file("optimizer.safetensors"))?;
    ck.write_json("state.json", state)?;
    let previous = std::fs::read_to_string(root.file("latest")).ok().map(|s| s.trim().to_string());
    root.write_text("latest", &name)?;
    for old in checkpoint_dirs(&root.path)? {
        if old != name && Some(&old) != previous.as_ref() {
            let _ = std::fs::remove_dir_all(root.file(&old));
        }
    }
    Ok(())
}

/// The `step-N` directories under `root`, newest first.
fn checkpoint_dirs(root: &std::path::Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = match std::fs::read_dir(root) {
        Ok(entries) => entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| n.starts_with("step-"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_err(root)(e)),
    };
    names.sort_unstable_by(|a, b| b.cmp(a));
    Ok(names)
}

/// Restores the newest readable checkpoint: the one `latest` names, else (with a warning naming
/// both) the newest other complete one (with its `state.json`) that reads. `None` only when there is no checkpoint at all; when
/// there are some and none reads, an error — a run never starts over silently.
fn load_checkpoint<M: Module<f32>>(
    dir: &RunDir,
    model: &M,
    opt: &mut (dyn Optimizer<f32> + Send + Sync),
) -> Result<Option<LoopState>> {
    let root = dir.file("checkpoints");
    let latest = std::fs::read_to_string(root.join("latest")).ok().map(|s| s.trim().to_string());
    let mut candidates: Vec<String> = latest.iter().cloned().collect();
    // a directory without `state.json` (written last) is a save that was cut short: not a
    // checkpoint, and the next save removes it
    candidates.extend(
        checkpoint_dirs(&root)?
            .into_iter()
            .filter(|n| Some(n) != latest.as_ref() && root.join(n).join("state.json").exists()),
    );
    let mut failures = Vec::new();
    for name in &candidates {
        match load_one(&root.join(name), model, opt) {
            Ok(state) => {
                if let Some((first, why)) = failures.first() {
                    eprintln!(
                        "saturn: warning: {}: checkpoint {first} is unreadable ({why}); resuming from {name} instead",
                        root.display()
                    );
                }
                return Ok(Some(state));
            }
            Err(e) => failures.push((name.clone(), e.to_string())),
        }
    }
    match failures.first() {
        None => Ok(None),
        Some(_) => Err(LabError::Run(format!(
            "{}: no checkpoint is readable ({}); remove the directory to start over",
            root.display(),
            failures.iter().map(|(n, e)| format!("{n}: {e}")).collect::<Vec<_>>().join("; ")
        ))),
    }
}

impl LoopState {
    /// Parses a checkpoint's `state.json` (`path` names it in errors).
    pub fn from_json(path: &std::path::Path, text: &str) -> Result<LoopState> {
        serde_json::from_str(text).map_err(|e| LabError::Run(format!("{}: {e}", path.display())))
    }
}

fn load_one<M: Module<f32>>(
    ck: &std::path::Path,
    model: &M,
    opt: &mut (dyn Optimizer<f32> + Send + Sync),
) -> Result<LoopState> {
    let state_path = ck.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(io_err(&state_path))?;
    let state = LoopState::from_json(&state_path, &text)?;
    checkpoint::load(&ck.join("model.safetensors"), model, &Default::default())?;
    opt.load(&ck.join("optimizer.safetensors"))?;
    Ok(state)
}
