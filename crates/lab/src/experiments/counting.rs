//! `counting` (Merrill, Sabharwal & Smith, TACL 2022 "Saturated transformers are constant-depth
//! threshold circuits"; Merrill et al. 2021, §6; docs/REFERENCES.md#merrill-definitions "mean heads
//! can compute proportions, which is counting"): a 2-layer transformer classifies MAJORITY and aⁿbⁿ
//! strings, which need counting. The input is `[BOS] x₁ … x_n [=]`; the class is read at `[=]` from
//! the LM head (two class tokens), trained with cross-entropy on that position only (causal, so the
//! right padding is never seen).
//!
//! After training, each counter is tested at the trained lengths:
//!
//! - with softmax attention at θ (its accuracy), and along the scaling curve f(x; cθ) for c in
//!   [`CountingConfig::scales`] (1 … 1000, f64 copies of the model);
//! - in its **saturated limit** sf(x; θ) = lim_{c→∞} f(x; cθ): every parameter at c_∞θ
//!   ([`SATURATION_SCALE`]) and every attention exactly saturated (uniform over its argmax tie
//!   set). Scores grow like c⁴ (weights) + c³ + c² (query/key biases; saturn-saturation's
//!   `scaling` docs), so hard attention at θ (also reported) is not the limit: its argmax can
//!   differ from the limit's;
//! - its heads classified at every c of the curve, read at the `[=]` queries only (the queries
//!   the task uses): an averaging head needs scores that tie *exactly*, which learned positions
//!   make a set of measure zero, while the soft attention at θ can be nearly uniform. The
//!   normalized entropy at θ and the class curve over c show both.
//!
//! **The NoPE control** (`nope_control`): the same counters trained without positional
//! embeddings. Causal attention alone can count (the mean over the prefix), and the keys of
//! equal tokens are then equal in the first layer, so exact ties are possible by construction of
//! the inputs; it tells whether the classification can find averaging heads in a trained model
//! at all.
//!
//! That a saturated transformer *can* count (Merrill, Sabharwal & Smith 2022 is an expressivity
//! result) is the unit test `a_hand_built_averaging_head_solves_majority_in_the_saturated_limit`:
//! true by construction. The claims are what training finds.
//!
//! Claims (one value per seed: the worst over the tasks, as the claims are about every task;
//! the verdict from the 95 % t interval of the mean over seeds, the point value with one
//! seed; thresholds kept from before unless said):
//!
//! - `learns-counting-tasks`: test accuracy > 0.95 (gated only on no run diverging: the claim
//!   is that it learns, so not learning must fail it);
//! - `an-averaging-head`: #averaging heads under saturation (c = 1000) > 0.5 (at least one);
//!   the counts along the curve over c and the heads with entropy ≥ 0.9 at θ are recorded;
//! - `saturated-model-still-counts`: the saturated limit's accuracy > 0.90 — the trained
//!   counter still counts when its attention is saturated;
//! - `nope-control-has-an-averaging-head` (with the control): as `an-averaging-head`, for the
//!   counters without positions (ours: the control of the classification).
//!
//! The claims about a trained counter are gated on every model of their arm learning: accuracy
//! ≥ chance (the test set's more frequent class) + [`ACCURACY_MARGIN`].

use saturn_datasets::formal::{AnBn, FormalLanguage, LengthRange, Majority, Sample, Target};
use saturn_layers::{
    Activation, AttentionMode, DecoderLm, ForwardCtx, InitScheme, LmConfig, PositionKind,
    ResidualScheme, token_cross_entropy,
};
use saturn_optim::{Decay, Schedule};
use saturn_saturation::{
    HEAD_THRESHOLDS, HeadClass, HeadStats, SATURATION_SCALE, TokenBatch, analyze_heads, to_f64,
    with_scaled_parameters,
};
use saturn_tensor::ndarray::Array2;
use saturn_tensor::{Float, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ExperimentConfig, ExperimentCtx};
use crate::cells::Cell;
use crate::claim::{Claim, Evidence, Gate, Rule, Threshold};
use crate::config::Preset;
use crate::error::{LabError, Result};
use crate::plot::{Chart, Series, line_chart};
use crate::run_dir::RunDir;
use crate::summary::Claims;
use crate::tasks::aggregate::{Worst, worst_per_seed};
use crate::tasks::char_lm::adamw;
use crate::tasks::head_report::{class_json, draw_class_map, write_head_table};
use crate::train::{Task, TrainConfig, derive_seed, train};

/// A counting task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CountingTask {
    Majority,
    Anbn,
}

impl CountingTask {
    fn name(self) -> &'static str {
        match self {
            CountingTask::Majority => "majority",
            CountingTask::Anbn => "anbn",
        }
    }

    fn language(self, lengths: LengthRange) -> Result<Box<dyn FormalLanguage>> {
        Ok(match self {
            CountingTask::Majority => Box::new(Majority::new(lengths)?),
            CountingTask::Anbn => Box::new(AnBn::new(lengths)?),
        })
    }
}

/// The config of `counting`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountingConfig {
    pub tasks: Vec<CountingTask>,
    /// Trained (and tested) lengths of the input strings.
    pub min_len: usize,
    pub max_len: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub d_ff: usize,
    pub n_layers: usize,
    pub scheme: ResidualScheme,
    pub batch_size: usize,
    pub train: TrainConfig,
    pub valid_samples: usize,
    pub test_samples: usize,
    /// Relative tie tolerance of the exactly saturated model.
    pub tie_tol: f64,
    /// The scale of "under saturation" for the head classes.
    pub c: f64,
    /// The scales c of the curve f(x; cθ): accuracy and head classes at each.
    #[serde(default = "default_scales")]
    pub scales: Vec<f64>,
    /// Also train every counter without positional embeddings (the NoPE control).
    #[serde(default)]
    pub nope_control: bool,
}

/// c = 1, 3, 10, …, 1000: from θ to the reference's "infinity", half a decade apart.
fn default_scales() -> Vec<f64> {
    vec![1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0]
}

impl ExperimentConfig for CountingConfig {
    /// quick: lengths up to 16, 500 steps of 64 strings; full: up to 32, 6,000 steps.
    /// AdamW lr 1e-3 with 100 warmup steps, clip 1, d 64, 4 heads, 2 Pre-LN layers.
    fn preset(preset: Preset) -> Self {
        let (max_len, steps) = match preset {
            Preset::Quick => (16, 500),
            Preset::Full => (32, 6000),
        };
        CountingConfig {
            tasks: vec![CountingTask::Majority, CountingTask::Anbn],
            min_len: 2,
            max_len,
            d_model: 64,
            n_heads: 4,
            d_ff: 128,
            n_layers: 2,
            scheme: ResidualScheme::PreLn,
            batch_size: 64,
            train: TrainConfig {
                steps,
                optimizer: adamw(0.0),
                schedule: Schedule::new(1e-3, 100, 0.0, Decay::Constant).expect("valid schedule"),
                clip: Some(1.0),
                eval_every: (steps / 10).max(1),
                log_every: (steps / 50).max(1),
                checkpoint_every: (steps / 10).max(1),
            },
            valid_samples: 256,
            test_samples: 2000,
            tie_tol: saturn_layers::attention::DEFAULT_TIE_TOL,
            c: SATURATION_SCALE,
            scales: default_scales(),
            nope_control: true,
        }
    }
}

/// How far above chance (the test set's more frequent class) a counter's accuracy must be for
/// it to count as trained. Ours: on 2,000 balanced test strings chance is ≈ 0.5 ± 0.01; 0.1
/// above it is far outside that noise and far below the 0.95 the paper's counters reach.
pub const ACCURACY_MARGIN: f64 = 0.1;

/// Token ids: the two input symbols are 0 and 1.
const BOS: usize = 2;
const QUERY: usize = 3;
const PAD: usize = 4;
const CLASS0: usize = 5;
const VOCAB: usize = 7;

/// Strings as `[BOS] x [=] [PAD]…` with the target class token at `[=]`.
struct Encoded {
    ids: Array2<usize>,
    targets: Array2<usize>,
    /// True at the `[=]` positions.
    query: Array2<bool>,
    real: Array2<bool>,
    labels: Vec<usize>,
}

fn encode(samples: &[Sample]) -> Result<Encoded> {
    let t = samples.iter().map(|s| s.input.len() + 2).max().unwrap_or(2);
    let b = samples.len();
    let mut ids = Array2::from_elem((b, t), PAD);
    let mut targets = Array2::zeros((b, t));
    let mut query = Array2::from_elem((b, t), false);
    let mut real = Array2::from_elem((b, t), false);
    let mut labels = Vec::with_capacity(b);
    for (i, s) in samples.iter().enumerate() {
        let Target::Class(label) = s.target else {
            return Err(LabError::Run("counting tasks have class targets".into()));
        };
        let n = s.input.len();
        ids[[i, 0]] = BOS;
        for (j, &x) in s.input.iter().enumerate() {
            ids[[i, j + 1]] = x;
        }
        ids[[i, n + 1]] = QUERY;
        targets[[i, n + 1]] = CLASS0 + label;
        query[[i, n + 1]] = true;
        for j in 0..n + 2 {
            real[[i, j]] = true;
        }
        labels.push(label);
    }
    Ok(Encoded { ids, targets, query, real, labels })
}

struct CountingTrain<'a> {
    lang: &'a dyn FormalLanguage,
    batch_size: usize,
    seed: u64,
    valid: Encoded,
}

impl Task for CountingTrain<'_> {
    type Model = DecoderLm<f32>;

    fn train_loss(&self, model: &DecoderLm<f32>, step: usize) -> Result<Tensor<f32>> {
        let e =
            encode(&self.lang.samples(self.batch_size, derive_seed(self.seed, 21, step as u64)))?;
        let logits = model.forward(
            e.ids.view(),
            &mut ForwardCtx::train(derive_seed(self.seed, 22, step as u64)),
        )?;
        Ok(token_cross_entropy(&logits, e.targets.view(), Some(e.query.view()))?)
    }

    fn valid_loss(&self, model: &DecoderLm<f32>) -> Result<f64> {
        saturn_tensor::no_grad(|| {
            let logits = model.forward(self.valid.ids.view(), &mut ForwardCtx::eval())?;
            Ok(token_cross_entropy(
                &logits,
                self.valid.targets.view(),
                Some(self.valid.query.view()),
            )?
            .item()? as f64)
        })
    }

    fn uniform_loss(&self) -> f64 {
        (VOCAB as f64).ln()
    }
}

/// The fraction of strings whose class logit at `[=]` is the right one, under `mode` at θ.
fn accuracy<T: Float>(model: &DecoderLm<T>, test: &[Encoded], mode: AttentionMode) -> Result<f64> {
    saturn_tensor::no_grad(|| {
        let (mut right, mut n) = (0usize, 0usize);
        for e in test {
            let logits =
                model.forward(e.ids.view(), &mut ForwardCtx::eval().with_attention(mode))?;
            let l = logits.to_array();
            for (i, &label) in e.labels.iter().enumerate() {
                let q = (0..e.ids.ncols()).find(|&j| e.query[[i, j]]).unwrap_or(0);
                let predicted =
                    usize::from(l[[i, q, CLASS0 + 1]].as_f64() > l[[i, q, CLASS0]].as_f64());
                right += usize::from(predicted == label);
                n += 1;
            }
        }
        Ok(right as f64 / n.max(1) as f64)
    })
}

/// One trained counter, tested: one cell's output.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunResult {
    label: String,
    seed: u64,
    /// Learned positions (the main arm) or none (the NoPE control).
    positions: PositionKind,
    accuracy: f64,
    /// The accuracy of always answering the test set's more frequent class.
    chance: f64,
    /// Hard (exactly saturated) attention at θ: not the saturated limit (module docs).
    saturated_accuracy: f64,
    /// The saturated limit sf(x; θ): c_∞θ with exactly saturated attention.
    limit_accuracy: f64,
    /// (c, accuracy of f(x; cθ)) with softmax attention, over [`CountingConfig::scales`].
    accuracy_over_c: Vec<(f64, f64)>,
    /// The heads at `CountingConfig::c`.
    heads: Vec<HeadStats>,
    /// (c, the heads classified at cθ) over [`CountingConfig::scales`].
    heads_over_c: Vec<(f64, Vec<HeadStats>)>,
    diverged_at_step: Option<usize>,
    valid_loss: Vec<(f64, f64)>,
}

impl RunResult {
    fn averaging_heads(heads: &[HeadStats]) -> usize {
        heads.iter().filter(|h| h.class == HeadClass::Averaging).count()
    }

    /// Heads whose attention at θ is nearly uniform: normalized entropy ≥ [`SOFT_AVERAGING`].
    fn soft_averaging_heads(&self) -> usize {
        self.heads.iter().filter(|h| h.entropy >= SOFT_AVERAGING).count()
    }

    fn learned(&self) -> bool {
        self.diverged_at_step.is_none() && self.accuracy >= self.chance + ACCURACY_MARGIN
    }
}

/// A head whose soft attention at θ has normalized entropy at least this is nearly uniform over
/// its prefix (ours: the averaging class's 0.9 of the prefix, read as entropy).
pub const SOFT_AVERAGING: f64 = 0.9;

/// The accuracy of the saturated limit sf(x; θ) = lim_{c→∞} f(x; cθ): every parameter scaled
/// by [`SATURATION_SCALE`] (on an f64 copy) and every attention uniform over its argmax ties.
fn limit_accuracy(model: &DecoderLm<f64>, test: &[Encoded], tie_tol: f64) -> Result<f64> {
    with_scaled_parameters(model, SATURATION_SCALE, |m| {
        accuracy(m, test, AttentionMode::Saturated { tie_tol })
    })?
}

/// (c, accuracy of f(x; cθ) with softmax attention) for every c of `scales`.
fn accuracy_over_c(
    model: &DecoderLm<f64>,
    test: &[Encoded],
    scales: &[f64],
) -> Result<Vec<(f64, f64)>> {
    scales
        .iter()
        .map(|&c| {
            let acc =
                with_scaled_parameters(model, c, |m| accuracy(m, test, AttentionMode::Softmax))??;
            Ok((c, acc))
        })
        .collect()
}

/// Trains the counter of `task` and `seed` (checkpoints and metrics in `dir`), tests it along
/// the scaling curve and in its saturated limit, and classifies its heads at every scale.
#[allow(clippy::too_many_arguments)]
fn train_and_test(
    cfg: &CountingConfig,
    task: CountingTask,
    positions: PositionKind,
    lengths: LengthRange,
    seed: u64,
    label: &str,
    dir: &RunDir,
    resume: bool,
) -> Result<RunResult> {
    let lang = task.language(lengths)?;
    let lm = LmConfig {
        residual: cfg.scheme,
        act: Activation::Relu,
        init: InitScheme::XavierUniform,
        positions,
        ..LmConfig::new(VOCAB, cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.n_layers, cfg.max_len + 2)
    };
    let model = DecoderLm::<f32>::new(lm, seed)?;
    let job = CountingTrain {
        lang: lang.as_ref(),
        batch_size: cfg.batch_size,
        seed,
        valid: encode(&lang.samples(cfg.valid_samples, derive_seed(seed, 23, 0)))?,
    };
    let out = train(&model, &job, &cfg.train, dir, resume, label, &mut |_, _| Ok(Vec::new()))?;
    let test_samples = lang.samples(cfg.test_samples, derive_seed(seed, 24, 0));
    let test: Vec<Encoded> = test_samples.chunks(250).map(encode).collect::<Result<_>>()?;
    let acc = accuracy(&model, &test, AttentionMode::Softmax)?;
    let positives = test.iter().flat_map(|e| &e.labels).filter(|&&l| l == 1).count();
    let n = test.iter().map(|e| e.labels.len()).sum::<usize>().max(1);
    let chance = positives.max(n - positives) as f64 / n as f64;
    let sat_acc = accuracy(&model, &test, AttentionMode::Saturated { tie_tol: cfg.tie_tol })?;
    let exact = to_f64(&model)?;
    let limit = limit_accuracy(&exact, &test, cfg.tie_tol)?;
    let curve = accuracy_over_c(&exact, &test, &cfg.scales)?;
    let batches: Vec<TokenBatch> = test
        .iter()
        .take(2)
        .map(|e| TokenBatch {
            ids: e.ids.clone(),
            real: Some(e.real.clone()),
            analysed: Some(e.query.clone()),
        })
        .collect();
    let heads_over_c = cfg
        .scales
        .iter()
        .map(|&c| Ok((c, analyze_heads(&exact, &batches, c, &HEAD_THRESHOLDS)?)))
        .collect::<Result<Vec<_>>>()?;
    // the classes at `c` are on the curve already when `c` is one of its scales
    let heads = match heads_over_c.iter().find(|(c, _)| *c == cfg.c) {
        Some((_, heads)) => heads.clone(),
        None => analyze_heads(&exact, &batches, cfg.c, &HEAD_THRESHOLDS)?,
    };
    eprintln!(
        "counting: {label}: accuracy {acc:.4}, hard at θ {sat_acc:.4}, saturated limit {limit:.4}, classes {}",
        class_json(&heads)
    );
    Ok(RunResult {
        label: label.to_string(),
        seed,
        positions,
        accuracy: acc,
        chance,
        saturated_accuracy: sat_acc,
        limit_accuracy: limit,
        accuracy_over_c: curve,
        heads,
        heads_over_c,
        diverged_at_step: out.diverged_at_step,
        valid_loss: out.metrics.series("valid_loss"),
    })
}

/// Trains one model per arm (learned positions; none, with the control), task and seed, tests
/// it, classifies its heads.
pub fn run(ctx: &ExperimentCtx) -> Result<Claims> {
    let cfg: CountingConfig = ctx.open()?;
    let lengths = LengthRange::new(cfg.min_len, cfg.max_len)?;
    if cfg.scales.iter().any(|c| !(c.is_finite() && *c > 0.0)) {
        return Err(LabError::Config(format!(
            "counting: every scale must be positive and finite, got {:?}",
            cfg.scales
        )));
    }
    // one cell per model: arm × task × seed; its cost grows with the steps, the strings' length
    // and the model's size
    let minutes = 2.8
        * (cfg.train.steps as f64 / 6000.0)
        * ((cfg.max_len + 2) as f64 / 34.0)
        * (cfg.batch_size as f64 / 64.0)
        * (cfg.d_model as f64 / 64.0).powi(2)
        * (cfg.n_layers as f64 / 2.0);
    let mut arms = vec![(PositionKind::Learned, "")];
    if cfg.nope_control {
        arms.push((PositionKind::None, "-nope"));
    }
    let mut cells = Vec::new();
    for (arm, &(positions, tag)) in arms.iter().enumerate() {
        for (position, &task) in cfg.tasks.iter().enumerate() {
            for &seed in &ctx.seeds {
                let label = format!("{}{tag}-seed{seed}", task.name());
                cells.push(
                    Cell::new(seed, label, ((arm, position), task, positions)).minutes(minutes),
                );
            }
        }
    }
    // a counter does not depend on which other tasks or arms run, nor on the scales it is
    // tested at after training (they are recomputed with the cell)
    let key = CountingConfig { tasks: Vec::new(), nope_control: false, ..cfg.clone() };
    let mut trained = ctx.cells(&key, cells, |cell, dir| {
        let (_, task, positions) = cell.spec;
        train_and_test(&cfg, task, positions, lengths, cell.seed, &cell.label, dir, ctx.resume)
    })?;
    // back to the order of the config (arm, then task outermost), as the tables list them
    trained.sort_by_key(|(cell, _)| cell.spec.0);
    let results: Vec<RunResult> = trained.into_iter().map(|(_, r)| r).collect();
    write_results(ctx, &cfg, &results)?;
    Ok(claims(&cfg, &results, &ctx.seeds))
}

/// Each model's class map, `heads.csv`, `heads_over_c.csv`, `accuracy.csv`,
/// `accuracy_over_c.csv`, and the `valid_loss`, `accuracy_over_c` and `averaging_over_c`
/// figures.
fn write_results(ctx: &ExperimentCtx, cfg: &CountingConfig, results: &[RunResult]) -> Result<()> {
    for r in results {
        let title = format!("{}: heads at the [=] query under saturation (c = {})", r.label, cfg.c);
        draw_class_map(&ctx.dir, &format!("classes_{}", r.label), &title, &r.heads)?;
    }
    let tables: Vec<(String, Vec<HeadStats>)> =
        results.iter().map(|r| (r.label.clone(), r.heads.clone())).collect();
    write_head_table(&ctx.dir, "heads.csv", &tables)?;
    let over_c: Vec<(String, Vec<HeadStats>)> = results
        .iter()
        .flat_map(|r| r.heads_over_c.iter().map(|(c, h)| (format!("{} c={c}", r.label), h.clone())))
        .collect();
    write_head_table(&ctx.dir, "heads_over_c.csv", &over_c)?;
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r.label.clone(),
                r.accuracy.to_string(),
                r.saturated_accuracy.to_string(),
                r.limit_accuracy.to_string(),
            ]
        })
        .collect();
    ctx.dir.write_csv(
        "accuracy.csv",
        &["run", "accuracy", "hard_attention_at_theta_accuracy", "saturated_limit_accuracy"],
        &rows,
    )?;
    let rows: Vec<Vec<String>> = results
        .iter()
        .flat_map(|r| {
            r.accuracy_over_c
                .iter()
                .map(|(c, a)| vec![r.label.clone(), c.to_string(), a.to_string()])
        })
        .collect();
    ctx.dir.write_csv("accuracy_over_c.csv", &["run", "c", "accuracy"], &rows)?;
    let series: Vec<Series> =
        results.iter().map(|r| Series::new(r.label.clone(), r.valid_loss.clone())).collect();
    let chart =
        Chart::new("counting: validation loss at [=]").x("step").y("cross-entropy (nats)").log_y();
    line_chart(&ctx.dir, "valid_loss", &chart, &series)?;
    // the curve, and each run's saturated limit as a flat line over the same range
    let (lo, hi) =
        cfg.scales.iter().fold((f64::INFINITY, 0.0_f64), |(l, h), &c| (l.min(c), h.max(c)));
    let mut series: Vec<Series> =
        results.iter().map(|r| Series::new(r.label.clone(), r.accuracy_over_c.clone())).collect();
    series.extend(results.iter().map(|r| {
        Series::new(
            format!("{} limit", r.label),
            vec![(lo, r.limit_accuracy), (hi, r.limit_accuracy)],
        )
    }));
    let chart = Chart::new("counting: accuracy of f(x; cθ), and of the saturated limit")
        .x("c")
        .y("test accuracy")
        .log_x();
    line_chart(&ctx.dir, "accuracy_over_c", &chart, &series)?;
    let series: Vec<Series> = results
        .iter()
        .map(|r| {
            let points = r
                .heads_over_c
                .iter()
                .map(|(c, h)| (*c, RunResult::averaging_heads(h) as f64))
                .collect();
            Series::new(r.label.clone(), points)
        })
        .collect();
    let chart = Chart::new("counting: averaging heads at the [=] query, at cθ")
        .x("c")
        .y("heads attending to ≥ 0.9 of the prefix")
        .log_x();
    line_chart(&ctx.dir, "averaging_over_c", &chart, &series)
}

/// The claims of one arm (learned positions, or the NoPE control), each on the worst task of a
/// seed; the head claims gated on every model of the arm having learned.
fn claims(cfg: &CountingConfig, all: &[RunResult], seeds: &[u64]) -> Claims {
    let main: Vec<RunResult> =
        all.iter().filter(|r| r.positions != PositionKind::None).cloned().collect();
    let nope: Vec<RunResult> =
        all.iter().filter(|r| r.positions == PositionKind::None).cloned().collect();
    let mut claims = Claims::default();
    main_claims(cfg, &main, seeds, &mut claims);
    if !nope.is_empty() {
        claims.push(averaging_claim(
            "nope-control-has-an-averaging-head",
            "Without positional embeddings, a trained counter has a head that averages over the prefix under saturation (the control of the classification: equal tokens' keys tie exactly in the first layer)",
            Threshold::ours("the control shows whether exact ties, and so averaging heads, appear in a trained counter when the inputs allow them; the cut-off is the main claim's"),
            cfg,
            &nope,
            seeds,
        ));
    }
    claims
}

fn per_run(
    results: &[RunResult],
    f: &dyn Fn(&RunResult) -> serde_json::Value,
) -> serde_json::Value {
    serde_json::Value::Object(results.iter().map(|r| (r.label.clone(), f(r))).collect())
}

/// A claim about a trained counter needs a counter that learned.
fn learned_gate(results: &[RunResult]) -> Gate {
    let per = |f: &dyn Fn(&RunResult) -> serde_json::Value| per_run(results, f);
    Gate::new(
        format!(
            "every model learned: test accuracy ≥ chance (the more frequent class's share) + {ACCURACY_MARGIN}"
        ),
        !results.is_empty() && results.iter().all(RunResult::learned),
    )
    .with("accuracy", per(&|r| json!(r.accuracy)))
    .with("chance", per(&|r| json!(r.chance)))
    .with("diverged_at_step", per(&|r| json!(r.diverged_at_step)))
}

/// "At least one head averages under saturation", per seed the fewest over the tasks.
fn averaging_claim(
    id: &str,
    statement: &str,
    threshold: Threshold,
    cfg: &CountingConfig,
    results: &[RunResult],
    seeds: &[u64],
) -> crate::claim::ClaimBuilder {
    let per = |f: &dyn Fn(&RunResult) -> serde_json::Value| per_run(results, f);
    let per_seed =
        |f: &dyn Fn(&RunResult) -> f64| worst_per_seed(results, seeds, |r| r.seed, f, Worst::Min);
    Claim::builder(id)
        .statement(statement)
        .source("Merrill et al. 2021, §5–6; docs/REFERENCES.md#merrill-definitions")
        .expected(format!(
            "per seed, the fewest averaging heads over the tasks (count ≥ 0.9 of the prefix at the [=] queries, c = {}); the 95 % t interval of its mean over seeds > 0.5 (every model has one)",
            cfg.c
        ))
        .threshold(threshold)
        .measured("averaging_heads", per(&|r| json!(RunResult::averaging_heads(&r.heads))))
        .measured("classes", per(&|r| class_json(&r.heads)))
        .measured(
            "averaging_heads_over_c",
            per(&|r| {
                json!(r
                    .heads_over_c
                    .iter()
                    .map(|(c, h)| (*c, RunResult::averaging_heads(h)))
                    .collect::<Vec<_>>())
            }),
        )
        .measured(
            "prefix_fraction",
            per(&|r| json!(r.heads.iter().map(|h| h.prefix_fraction).collect::<Vec<_>>())),
        )
        .measured(
            "entropy_at_theta",
            per(&|r| json!(r.heads.iter().map(|h| h.entropy).collect::<Vec<_>>())),
        )
        .measured(
            "heads_with_entropy_at_least_0.9_at_theta",
            per(&|r| json!(r.soft_averaging_heads())),
        )
        .gate(learned_gate(results))
        .evidence(Evidence::new(
            "fewest averaging heads over the tasks",
            seeds,
            per_seed(&|r| RunResult::averaging_heads(&r.heads) as f64),
            Rule::Above(0.5),
        ))
}

/// The three claims of the main arm (learned positions).
fn main_claims(cfg: &CountingConfig, results: &[RunResult], seeds: &[u64], claims: &mut Claims) {
    let per = |f: &dyn Fn(&RunResult) -> serde_json::Value| per_run(results, f);
    // one value per seed: the worst of the seed's models (one per task), as the claims are
    // about every task
    let per_seed =
        |f: &dyn Fn(&RunResult) -> f64| worst_per_seed(results, seeds, |r| r.seed, f, Worst::Min);
    let no_divergence =
        Gate::new("no run diverged", results.iter().all(|r| r.diverged_at_step.is_none()))
            .with("diverged_at_step", per(&|r| json!(r.diverged_at_step)));
    claims.push(
        Claim::builder("learns-counting-tasks")
            .statement("A 2-layer transformer learns MAJORITY and aⁿbⁿ at the trained lengths")
            .source("Merrill, Sabharwal & Smith 2022 (saturated transformers count); docs/REFERENCES.md#merrill-definitions, docs/REFERENCES.md#merrill-tc0")
            .expected(format!(
                "per seed, the lowest accuracy over the tasks on {} fresh strings of lengths {}..={}; the 95 % t interval of its mean over seeds > 0.95",
                cfg.test_samples, cfg.min_len, cfg.max_len
            ))
            .threshold(Threshold::as_before())
            .measured("accuracy", per(&|r| json!(r.accuracy)))
            .measured("chance", per(&|r| json!(r.chance)))
            .gate(no_divergence)
            .evidence(Evidence::new(
                "lowest test accuracy over the tasks",
                seeds,
                per_seed(&|r| r.accuracy),
                Rule::Above(0.95),
            )),
    );
    claims.push(averaging_claim(
        "an-averaging-head",
        "The trained counter uses an averaging head: under saturation at least one head averages over the prefix",
        Threshold::as_before(),
        cfg,
        results,
        seeds,
    ));
    claims.push(
        Claim::builder("saturated-model-still-counts")
            .statement("The trained counter's saturated limit sf(x; θ) = lim f(x; cθ) keeps its accuracy (Merrill, Sabharwal & Smith prove that saturated transformers can count; this asks whether training finds such a counter)")
            .source("Merrill, Sabharwal & Smith 2022; docs/REFERENCES.md#merrill-definitions")
            .expected(format!(
                "per seed, the lowest accuracy over the tasks of the saturated limit (c_∞ = {SATURATION_SCALE}, every attention uniform over its argmax ties); the 95 % t interval of its mean over seeds > 0.90"
            ))
            .threshold(Threshold::as_before())
            .measured("saturated_limit_accuracy", per(&|r| json!(r.limit_accuracy)))
            .measured("accuracy_over_c", per(&|r| json!(r.accuracy_over_c)))
            .measured("hard_attention_at_theta_accuracy", per(&|r| json!(r.saturated_accuracy)))
            .measured("accuracy", per(&|r| json!(r.accuracy)))
            .gate(learned_gate(results))
            .evidence(Evidence::new(
                "lowest saturated-limit test accuracy over the tasks",
                seeds,
                per_seed(&|r| r.limit_accuracy),
                Rule::Above(0.90),
            )),
    );
}

#[cfg(test)]
mod tests {
    use saturn_layers::Module;
    use saturn_tensor::ndarray::{ArrayD, IxDyn};

    use super::*;

    /// Every length 1..=10 bit string, labelled by MAJORITY (ties are 0).
    fn every_short_string() -> Vec<Encoded> {
        let mut samples = Vec::new();
        for n in 1..=10usize {
            for bits in 0..1u32 << n {
                let input: Vec<usize> = (0..n).map(|j| ((bits >> j) & 1) as usize).collect();
                let ones = input.iter().sum::<usize>();
                let label = usize::from(2 * ones > n);
                samples.push(Sample { input, target: Target::Class(label) });
            }
        }
        samples.chunks(256).map(|c| encode(c).expect("class targets")).collect()
    }

    fn set(model: &DecoderLm<f64>, name: &str, shape: &[usize], entries: &[((usize, usize), f64)]) {
        let mut a = ArrayD::zeros(IxDyn(shape));
        for &((i, j), v) in entries {
            a[[i, j]] = v;
        }
        let (_, p) = model
            .named_parameters()
            .into_iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no parameter {name}"));
        p.set_data(a.into_shared()).expect("same shape");
    }

    /// One Pre-LN layer, d = 4, no positions, whose only head has q = k = 0: its scores tie
    /// exactly, so at every c it averages the prefix. The values carry ±√2 per symbol (LN of
    /// ±(1, −1, 0, 0)), so the mean at `[=]` is √2·(n₁ − n₀)/(n + 2) and the head reads its sign
    /// (with a margin δ = 0.04 < 2·√2/34 that sends ties to class 0, as MAJORITY does).
    fn hand_built_counter() -> DecoderLm<f64> {
        let lm = LmConfig {
            residual: ResidualScheme::PreLn,
            positions: PositionKind::None,
            ..LmConfig::new(VOCAB, 4, 1, 4, 1, 40)
        };
        let model = DecoderLm::<f64>::new(lm, 0).expect("valid config");
        for (name, p) in model.named_parameters() {
            if !name.ends_with("gamma") {
                p.set_data(p.data().mapv(|_| 0.0).into_shared()).expect("same shape");
            }
        }
        let s = (0.5f64).sqrt(); // any positive scale: LN removes it
        set(
            &model,
            "embed.weight",
            &[VOCAB, 4],
            &[
                ((0, 0), -s),
                ((0, 1), s),
                ((1, 0), s),
                ((1, 1), -s),
                ((BOS, 2), s),
                ((BOS, 3), -s),
                ((QUERY, 2), -s),
                ((QUERY, 3), s),
            ],
        );
        set(&model, "layers.0.attn.v.weight", &[4, 4], &[((0, 0), 1.0), ((1, 1), 1.0)]);
        let identity: Vec<_> = (0..4).map(|i| ((i, i), 1.0)).collect();
        set(&model, "layers.0.attn.o.weight", &[4, 4], &identity);
        set(
            &model,
            "head.weight",
            &[VOCAB, 4],
            &[((CLASS0 + 1, 0), 1.0), ((CLASS0, 1), 1.0), ((CLASS0, 3), 0.04)],
        );
        model
    }

    fn query_batch(test: &[Encoded]) -> Vec<TokenBatch> {
        test.iter()
            .take(2)
            .map(|e| TokenBatch {
                ids: e.ids.clone(),
                real: Some(e.real.clone()),
                analysed: Some(e.query.clone()),
            })
            .collect()
    }

    /// Merrill, Sabharwal & Smith 2022's expressivity result, on MAJORITY: a saturated
    /// transformer can count. True by construction (module docs), so a unit test; the
    /// experiment's claims ask what training finds.
    #[test]
    fn a_hand_built_averaging_head_solves_majority_in_the_saturated_limit() {
        let test = every_short_string();
        let model = hand_built_counter();
        assert_eq!(accuracy(&model, &test, AttentionMode::Softmax).unwrap(), 1.0);
        let limit = limit_accuracy(&model, &test, saturn_layers::attention::DEFAULT_TIE_TOL);
        assert_eq!(limit.unwrap(), 1.0);
        for (c, acc) in accuracy_over_c(&model, &test, &default_scales()).unwrap() {
            assert_eq!(acc, 1.0, "c = {c}");
        }
        let heads = analyze_heads(&model, &query_batch(&test), 1000.0, &HEAD_THRESHOLDS).unwrap();
        assert_eq!(heads.len(), 1);
        assert_eq!(heads[0].class, HeadClass::Averaging, "{:?}", heads[0]);
    }

    /// The same counter with a slight preference for `[BOS]` (score +0.01 over the symbols):
    /// at θ its attention is nearly uniform and it still counts (the symbols keep equal
    /// weights), but in the saturated limit it attends to `[BOS]` alone, a sink, and answers 0
    /// for every string. So the limit's accuracy, not the soft model's, is what tells whether a
    /// trained counter counts under saturation.
    #[test]
    fn a_soft_counter_whose_limit_is_a_sink_head_stops_counting() {
        let test = every_short_string();
        let model = hand_built_counter();
        // q = 0.01·LN(x)₃ e₀, k = LN(x)₂ e₀: the score of [BOS] at the [=] query is 0.01·2/√4
        set(&model, "layers.0.attn.q.weight", &[4, 4], &[((0, 3), 0.01)]);
        set(&model, "layers.0.attn.k.weight", &[4, 4], &[((0, 2), 1.0)]);
        assert_eq!(accuracy(&model, &test, AttentionMode::Softmax).unwrap(), 1.0);
        let limit =
            limit_accuracy(&model, &test, saturn_layers::attention::DEFAULT_TIE_TOL).unwrap();
        let zeros = test.iter().flat_map(|e| &e.labels).filter(|&&l| l == 0).count();
        let n = test.iter().map(|e| e.labels.len()).sum::<usize>();
        assert_eq!(limit, zeros as f64 / n as f64, "the limit answers 0 everywhere");
        let heads = analyze_heads(&model, &query_batch(&test), 1000.0, &HEAD_THRESHOLDS).unwrap();
        assert_eq!(heads[0].class, HeadClass::Sink, "{:?}", heads[0]);
    }

    #[test]
    fn configs_without_the_new_fields_still_load_with_their_defaults() {
        let cfg = CountingConfig::preset(Preset::Quick);
        let mut value = toml::Value::try_from(&cfg).unwrap();
        let table = value.as_table_mut().unwrap();
        table.remove("scales");
        table.remove("nope_control");
        let back: CountingConfig = value.try_into().unwrap();
        assert_eq!(back.scales, default_scales());
        assert!(!back.nope_control, "an old config has no control arm");
    }
}
